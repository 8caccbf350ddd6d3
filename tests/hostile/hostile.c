/* SPDX-License-Identifier: MIT */
/*
 * hostile - the hostile-client suite and the soak test for poolsrv servers.
 *
 *   hostile --echo server/poolsrv-echo [--http BIN] [--kv BIN] [--cases LIST]
 *       the matrix run by `make test-hostile`: every case against
 *       poolsrv-echo in event and in blocking mode, the protocol cases
 *       against the example servers if they exist, and the EMFILE case.
 *   hostile [--probe echo|http|resp] [--cases LIST] -- SERVER ARGS...
 *       the cases against one server command (it must print
 *       "listening on 127.0.0.1:PORT"; with --probe echo it must take
 *       poolsrv-echo's flags).
 *   hostile --soak SECONDS -- SERVER ARGS...      (or --soak S --echo BIN)
 *
 * LIST is comma-separated case names (see --list).  Prints one line per
 * case and finally "hostile: N passed, N failed"; exit status 1 if any
 * failed, 2 for bad usage.  HOSTILE_TIME_MULTIPLIER scales time bounds.
 */
#include "hostile.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The cases, in the order they run.  (emfile runs once, after the matrix's
 * poolsrv-echo suites; see run_emfile.) */
static const hcase h_cases[] = {
    {"slowloris", true, false, run_slowloris, NULL},
    {"never-read", true, false, run_never_read, NULL},
    {"rst-mid-write", true, false, run_rst, NULL},
    {"flood-block", true, false, run_flood_block, NULL},
    {"flood-reject", true, false, run_flood_reject, NULL},
    {"halfopen-hold", false, false, run_halfopen_hold, NULL},
    {"halfopen-cut", true, false, run_halfopen_cut, NULL},
    {"write-64mib", true, false, run_bigwrite, NULL},
    {"close-immediately", false, false, run_close_immediately, NULL},
    {"garbage", false, true, run_garbage, NULL},
    {"queued-first-byte", true, false, run_queued_first_byte, NULL},
    {"idle-not-early", true, false, run_idle_not_early, NULL},
};
static const int h_ncases = sizeof h_cases / sizeof h_cases[0];

struct run {
    const char *cases; /* NULL = all */
    int passed, failed, xfail;
};

static bool selected(const struct run *r, const char *name)
{
    const char *p;
    size_t n = strlen(name);

    if (!r->cases)
        return true;
    for (p = r->cases; (p = strstr(p, name)); p += n)
        if ((p == r->cases || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static void ctx_init(ctx *c, const char *label, char *const base[], int nbase, probe_kind kind)
{
    int i;

    memset(c, 0, sizeof *c);
    c->label = label;
    c->kind = kind;
    c->is_echo = kind == PROBE_ECHO;
    for (i = 0; i < nbase && i < H_MAX_ARGS; i++) {
        c->base[i] = base[i];
        if (strcmp(base[i], "blocking") == 0 || strcmp(base[i], "--mode=blocking") == 0)
            c->blocking = true;
    }
    c->nbase = i;
}

static void run_one(struct run *r, const char *label, char *const base[], int nbase,
                    probe_kind kind, const hcase *hc)
{
    ctx *c = calloc(1, sizeof *c);

    if (!c)
        return;
    ctx_init(c, label, base, nbase, kind);
    c->name = hc->name;
    c->known_bug = hc->known_bug;
    hc->run(c);
    if (!c->skipped) {
        if (case_end(c))
            r->passed++;
        else if (c->known_bug)
            r->xfail++;
        else
            r->failed++;
    }
    free(c);
}

static void run_suite(struct run *r, const char *label, char *const base[], int nbase,
                      probe_kind kind)
{
    int i;

    for (i = 0; i < h_ncases; i++) {
        const hcase *hc = &h_cases[i];
        if (!selected(r, hc->name))
            continue;
        if (hc->echo_only && kind != PROBE_ECHO)
            continue;
        if (hc->proto_only && kind == PROBE_ECHO)
            continue;
        run_one(r, label, base, nbase, kind, hc);
    }
}

static void run_emfile(struct run *r, const char *label, char *const base[], int nbase)
{
    static const hcase emfile = {"emfile", true, false, case_emfile, NULL};

    if (selected(r, "emfile"))
        run_one(r, label, base, nbase, PROBE_ECHO, &emfile);
}

/* Every name in LIST must be a case: a typo must not pass by running nothing. */
static bool cases_valid(const char *list)
{
    const char *p = list;

    while (p && *p) {
        size_t n = strcspn(p, ",");
        bool ok = n == 6 && strncmp(p, "emfile", 6) == 0;
        int i;
        for (i = 0; i < h_ncases && !ok; i++)
            ok = strlen(h_cases[i].name) == n && strncmp(p, h_cases[i].name, n) == 0;
        if (!ok) {
            fprintf(stderr, "hostile: unknown case '%.*s' (see --list)\n", (int)n, p);
            return false;
        }
        p += n + (p[n] == ',');
    }
    return true;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hostile --echo BIN [--http BIN] [--kv BIN] [--cases LIST]\n"
               "       hostile [--probe echo|http|resp] [--cases LIST] -- SERVER ARGS...\n"
               "       hostile --soak SECONDS (--echo BIN | -- SERVER ARGS...)\n"
               "       hostile --list\n"
               "Attacks a poolsrv server while a probe client checks it stays served; see\n"
               "tests/hostile/README.md.  HOSTILE_TIME_MULTIPLIER=N scales time bounds.\n");
}

static bool usable(const char *what, const char *path)
{
    if (path && access(path, X_OK) == 0)
        return true;
    printf("skip %s: %s not built\n", what, path ? path : "binary");
    return false;
}

struct opts {
    const char *echo, *http, *kv;
    probe_kind kind;
    int soak; /* seconds, -1: no soak */
    int cmd;  /* argv index of the server command after "--", -1: none */
};

static int parse_probe(const char *v, probe_kind *k)
{
    if (strcmp(v, "echo") == 0)
        *k = PROBE_ECHO;
    else if (strcmp(v, "http") == 0)
        *k = PROBE_HTTP;
    else if (strcmp(v, "resp") == 0)
        *k = PROBE_RESP;
    else
        return -1;
    return 0;
}

/* Returns -1 to go on, or the exit status (0 for --help/--list, 2 for bad usage). */
static int parse_opts(int argc, char **argv, struct opts *o, struct run *r)
{
    int i;

    for (i = 1; i < argc; i += 2) { /* every option but "--", --list, --help takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (strcmp(a, "--") == 0) {
            o->cmd = i + 1 < argc ? i + 1 : -1;
            break;
        } else if (strcmp(a, "--list") == 0) {
            for (i = 0; i < h_ncases; i++)
                printf("%s\n", h_cases[i].name);
            printf("emfile\n");
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (v && strcmp(a, "--echo") == 0) {
            o->echo = v;
        } else if (v && strcmp(a, "--http") == 0) {
            o->http = v;
        } else if (v && strcmp(a, "--kv") == 0) {
            o->kv = v;
        } else if (v && strcmp(a, "--cases") == 0) {
            r->cases = v;
        } else if (v && strcmp(a, "--soak") == 0) {
            o->soak = (int)strtol(v, &end, 10);
            if (*end || o->soak < 1 || o->soak > 86400)
                break;
        } else if (!(v && strcmp(a, "--probe") == 0 && parse_probe(v, &o->kind) == 0)) {
            break;
        }
    }
    if ((i < argc && strcmp(argv[i], "--") != 0) || (o->cmd < 0 && !o->echo)) {
        usage(stderr);
        return 2;
    }
    return r->cases && !cases_valid(r->cases) ? 2 : -1;
}

/* `make test-hostile`: poolsrv-echo in both modes, EMFILE, the examples. */
static void run_matrix(struct run *r, const struct opts *o)
{
    char *ev[] = {(char *)o->echo, "--listen", "127.0.0.1:0", "--mode", "event", "--workers", "4"};
    char *bl[] = {(char *)o->echo, "--listen", "127.0.0.1:0", "--mode", "blocking",
                  "--workers",     "8"};
    char *ht[] = {(char *)o->http, "--listen", "127.0.0.1:0", "--workers", "4"};
    char *rs[] = {(char *)o->kv, "--listen", "127.0.0.1:0", "--workers", "4"};

    if (usable("poolsrv-echo", o->echo)) {
        run_suite(r, "echo-event", ev, 7, PROBE_ECHO);
        run_suite(r, "echo-blocking", bl, 7, PROBE_ECHO);
        run_emfile(r, "echo-event", ev, 7);
    }
    if (usable("poolsrv-http cases", o->http))
        run_suite(r, "http", ht, 5, PROBE_HTTP);
    if (usable("poolsrv-kv cases", o->kv))
        run_suite(r, "kv", rs, 5, PROBE_RESP);
}

int main(int argc, char **argv)
{
    struct opts o = {.kind = PROBE_ECHO, .soak = -1, .cmd = -1};
    struct run r = {0};
    int rc = parse_opts(argc, argv, &o, &r);

    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    raise_nofile();
    if (o.soak > 0) {
        char *base[] = {(char *)o.echo, "--listen", "127.0.0.1:0", "--workers", "4", NULL};
        if (o.cmd > 0)
            return run_soak(argv + o.cmd, argc - o.cmd, o.soak) == 0 ? 0 : 1;
        return run_soak(base, 5, o.soak) == 0 ? 0 : 1;
    }
    if (o.cmd > 0) {
        run_suite(&r, probe_kind_name(o.kind), argv + o.cmd, argc - o.cmd, o.kind);
        if (o.kind == PROBE_ECHO)
            run_emfile(&r, "echo", argv + o.cmd, argc - o.cmd);
    } else {
        run_matrix(&r, &o);
    }
    if (r.xfail)
        printf("hostile: %d known library bug(s) reproduced (XFAIL, not counted)\n", r.xfail);
    printf("hostile: %d passed, %d failed\n", r.passed, r.failed);
    return r.failed ? 1 : 0;
}

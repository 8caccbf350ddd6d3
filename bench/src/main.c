/* SPDX-License-Identifier: MIT */
/*
 * main.c - poolsrv-bench: flags, phases, progress and exit status.
 *
 * Exit status: 0 when the run passed (no error or mismatch of any kind,
 * every connection came up, messages were measured); 1 when it did not;
 * 2 for bad usage.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: poolsrv-bench [options] HOST:PORT\n"
            "Load an echo server and verify every byte it echoes.\n"
            "\n"
            "  -a, --address HOST:PORT  target (or as the last argument); IPv6 as [::1]:PORT,\n"
            "                           a Unix stream socket as unix:PATH\n"
            "  -c, --connections N      concurrent connections (default 50)\n"
            "  -p, --pipeline D         messages in flight per connection (default 1)\n"
            "  -l, --size S             bytes per message, suffix k for KiB (default 64)\n"
            "      --size-min S, --size-max S  random sizes instead: each message's size is\n"
            "                           drawn from S..S (suffixes as -l; UDP: at most 65507)\n"
            "      --size-dist D        log (default: each power of two equally likely) or\n"
            "                           uniform\n"
            "      --seed N             seed of the random sizes (default 1): the same flags\n"
            "                           and seed give every connection the same sizes\n"
            "  -t, --duration T         measure for T seconds, suffix ms allowed (default 5)\n"
            "  -m, --messages M         measure until M messages are echoed instead\n"
            "  -r, --rate R             open loop: R messages/s in total on a fixed schedule;\n"
            "                           latency counts from the scheduled time\n"
            "      --connect-rate       repeat connect, echo one message, close on each slot\n"
            "      --hold               open the connections, keep them idle for T seconds\n"
            "      --pid PID            with --hold: report PID's memory per connection;\n"
            "                           with --pubsub: its CPU time per delivery\n"
            "      --pubsub             publish/subscribe against a Redis-protocol server:\n"
            "                           --subscribers S, --publishers P, --channels C; -l is\n"
            "                           the payload (>= 32 B), -p the messages a publisher\n"
            "                           keeps in flight (until every subscriber has them)\n"
            "      --subscribers S      (default 50)  --publishers P (default 4)\n"
            "      --channels C         (default 1); subscriber i listens on channel i %% C\n"
            "  -u, --udp                UDP datagrams instead of TCP\n"
            "      --tls                TLS over every connection (a handshake each; with\n"
            "                           --connect-rate a handshake-rate test); certificates\n"
            "                           are not verified unless --ca\n"
            "      --ca FILE            --tls: verify the server against the CA certificates\n"
            "                           in FILE and its name (--sni, else the target host)\n"
            "      --sni NAME           --tls: the server name to send (and verify)\n"
            "      --tls-resume         --tls: resume each slot's previous session (tickets\n"
            "                           or session IDs) instead of a full handshake\n"
            "  -T, --threads N          load threads (default 1)\n"
            "      --timeout S          seconds without an answer before a connection counts\n"
            "                           as timed out; also bounds the connect phase (default 5)\n"
            "      --sources N          spread IPv4 loopback clients over 127.0.0.1..N\n"
            "                           (default 16; 0 lets the kernel choose)\n"
            "      --max-connecting N   connects in progress at once (default 128)\n"
            "      --json               one JSON object instead of the table\n"
            "      --hgrm FILE          also write the latency distribution to FILE in\n"
            "                           HdrHistogram's .hgrm text format (milliseconds)\n"
            "      --progress / --no-progress  one status line per second on stderr\n"
            "                           (default: when stderr is a tty and not --json)\n"
            "      --self-test          check the histogram and size arithmetic, exit\n"
            "  -h, --help               this text\n"
            "  -V, --version            print the version\n"
            "\n"
            "Exit status: 0 if the run passed (no mismatch or error of any kind, all\n"
            "connections up, something measured), 1 if not, 2 for bad usage.\n");
}

static int bad(const char *what, const char *val)
{
    fprintf(stderr, "poolsrv-bench: invalid %s: '%s' (see --help)\n", what, val);
    return -1;
}

static int parse_long(const char *s, const char *what, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return bad(what, s);
    *out = v;
    return 0;
}

static int parse_int(const char *s, const char *what, long lo, long hi, int *out)
{
    long v;
    if (parse_long(s, what, lo, hi, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_secs(const char *s, const char *what, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && strcmp(end, "ms") == 0)
        v /= 1000;
    else if (end != s && strcmp(end, "s") == 0)
        ;
    else if (end == s || *end)
        return bad(what, s);
    if (errno || !(v > 0) || v > 86400)
        return bad(what, s);
    *out = v;
    return 0;
}

/* -l, --size-min and --size-max: 1 byte to 16 MiB, suffixes k and m. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end != s && (strcmp(end, "k") == 0 || strcmp(end, "K") == 0 || strcmp(end, "KiB") == 0))
        v *= 1024;
    else if (end != s &&
             (strcmp(end, "m") == 0 || strcmp(end, "M") == 0 || strcmp(end, "MiB") == 0))
        v *= 1024ull * 1024;
    else if (end == s || *end)
        return bad("size", s);
    if (errno || v < 1 || v > 16ull * 1024 * 1024 || s[0] == '-')
        return bad("size (1 .. 16M bytes)", s);
    *out = (size_t)v;
    return 0;
}

/* "unix:PATH" into o->target. */
static int parse_unix_target(struct opts *o, const char *s)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&o->target;
    const char *path = s + 5;

    if (!*path || strlen(path) >= sizeof(sun->sun_path))
        return bad("address (unix:PATH, PATH not empty and shorter than 108 bytes)", s);
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, strlen(path) + 1);
    o->target_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    snprintf(o->target_str, sizeof(o->target_str), "%s", s);
    return 0;
}

/* "1.2.3.4:80", "[::1]:80", "localhost:80" or "unix:/path" into o->target. */
static int parse_target(struct opts *o, const char *s)
{
    char host[128];
    const char *port;
    if (strncmp(s, "unix:", 5) == 0)
        return parse_unix_target(o, s);
    if (strlen(s) >= sizeof(host))
        return bad("address", s);
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return bad("address (want [IPv6]:PORT)", s);
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        port = rb + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon)
            return bad("address (want HOST:PORT or [IPv6]:PORT)", s);
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    long p;
    if (!*host || parse_long(port, "port", 1, 65535, &p) < 0)
        return bad("address", s);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "poolsrv-bench: cannot resolve '%s': %s\n", host, gai_strerror(rc));
        return -2; /* not a usage error: exit 1 */
    }
    memcpy(&o->target, ai->ai_addr, ai->ai_addrlen);
    o->target_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(o->host, sizeof(o->host), "%s", host); /* --tls: the name to verify */
    snprintf(o->target_str, sizeof(o->target_str), "%s", s);
    return 0;
}

enum {
    OPT_CONNECT_RATE = 256,
    OPT_HOLD,
    OPT_JSON,
    OPT_TIMEOUT,
    OPT_SOURCES,
    OPT_MAXCONN,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_SELFTEST,
    OPT_PID,
    OPT_SIZE_MIN,
    OPT_SIZE_MAX,
    OPT_SIZE_DIST,
    OPT_SEED,
    OPT_PUBSUB,
    OPT_SUBSCRIBERS,
    OPT_PUBLISHERS,
    OPT_CHANNELS,
    OPT_HGRM,
    OPT_TLS,
    OPT_CA,
    OPT_SNI,
    OPT_TLS_RESUME
};

static const struct option longopts[] = {
    {"address", required_argument, NULL, 'a'},
    {"connections", required_argument, NULL, 'c'},
    {"pipeline", required_argument, NULL, 'p'},
    {"size", required_argument, NULL, 'l'},
    {"duration", required_argument, NULL, 't'},
    {"messages", required_argument, NULL, 'm'},
    {"rate", required_argument, NULL, 'r'},
    {"udp", no_argument, NULL, 'u'},
    {"threads", required_argument, NULL, 'T'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"connect-rate", no_argument, NULL, OPT_CONNECT_RATE},
    {"hgrm", required_argument, NULL, OPT_HGRM},
    {"hold", no_argument, NULL, OPT_HOLD},
    {"json", no_argument, NULL, OPT_JSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"max-connecting", required_argument, NULL, OPT_MAXCONN},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"self-test", no_argument, NULL, OPT_SELFTEST},
    {"pid", required_argument, NULL, OPT_PID},
    {"size-min", required_argument, NULL, OPT_SIZE_MIN},
    {"size-max", required_argument, NULL, OPT_SIZE_MAX},
    {"size-dist", required_argument, NULL, OPT_SIZE_DIST},
    {"seed", required_argument, NULL, OPT_SEED},
    {"pubsub", no_argument, NULL, OPT_PUBSUB},
    {"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
    {"publishers", required_argument, NULL, OPT_PUBLISHERS},
    {"channels", required_argument, NULL, OPT_CHANNELS},
    {"tls", no_argument, NULL, OPT_TLS},
    {"ca", required_argument, NULL, OPT_CA},
    {"sni", required_argument, NULL, OPT_SNI},
    {"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
    {NULL, 0, NULL, 0},
};

/* Flag combinations that make no sense; 0 or -1 after a message.  have
 * says which of -t, -l, --size-min, --size-max, --size-dist/--seed were
 * given. */
struct given {
    bool t, l, min, max, law;
};

static int check_opts(struct opts *o, const struct given *have)
{
    const char *why = NULL;
    bool random = have->min || have->max;
    if (random && !(have->min && have->max))
        why = "--size-min and --size-max go together";
    else if (random && have->l)
        why = "--size and --size-min/--size-max exclude each other";
    else if (have->law && !random)
        why = "--size-dist and --seed need --size-min and --size-max";
    else if (random && o->sizes.min > o->sizes.max)
        why = "--size-min is larger than --size-max";
    else if (random && o->udp && o->sizes.max > 65507)
        why = "--udp messages are at most 65507 bytes (--size-max)";
    else if (o->messages && have->t)
        why = "--duration and --messages exclude each other";
    else if (o->messages && o->mode == MODE_HOLD)
        why = "--hold runs for a --duration, not --messages";
    else if (o->mode != MODE_ECHO && (o->udp || o->rate > 0))
        why = "--connect-rate, --hold and --pubsub are TCP, closed-loop modes";
    else if (o->mode == MODE_CONNECT_RATE && o->pipeline != 1)
        why = "--connect-rate sends one message per connection";
    else if (o->udp && o->rate > 0)
        why = "--udp is closed-loop only (no --rate)";
    else if (o->udp && o->size > 65507)
        why = "--udp messages are at most 65507 bytes";
    else if (o->pid && o->mode != MODE_HOLD && o->mode != MODE_PUBSUB)
        why = "--pid goes with --hold or --pubsub";
    else if (o->mode == MODE_PUBSUB && o->messages)
        why = "--pubsub runs for a --duration, not --messages";
    else if (o->mode == MODE_PUBSUB && (o->size < 32 || o->size > 1024 * 1024))
        why = "--pubsub payloads are 32 B .. 1 MiB (-l)";
    else if (o->mode != MODE_PUBSUB && (o->subscribers || o->publishers || o->channels))
        why = "--subscribers, --publishers and --channels go with --pubsub";
    else if (!o->tls && (o->ca_file || o->sni || o->tls_resume))
        why = "--ca, --sni and --tls-resume need --tls";
    else if (o->tls && (o->udp || o->mode == MODE_PUBSUB))
        why = "--tls goes with TCP and unix: echo modes (not --udp, not --pubsub)";
    else if (o->tls && !tls_available())
        why = "--tls: built without TLS support (OpenSSL was not found at build time)";
    if (why) {
        fprintf(stderr, "poolsrv-bench: %s\n", why);
        return -1;
    }
    if (o->messages)
        o->duration = 0;
    if (o->mode == MODE_PUBSUB) {
        o->subscribers = o->subscribers ? o->subscribers : 50;
        o->publishers = o->publishers ? o->publishers : 4;
        o->channels = o->channels ? o->channels : 1;
        o->connections = o->subscribers + o->publishers; /* for the descriptor limit */
    }
    if (!random)
        o->sizes.max = 0; /* fixed size */
    return 0;
}

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return bad("seed (an integer from 0)", s);
    *out = v;
    return 0;
}

static int parse_dist(const char *s, enum size_dist *out)
{
    if (strcmp(s, "log") == 0)
        *out = DIST_LOG;
    else if (strcmp(s, "uniform") == 0)
        *out = DIST_UNIFORM;
    else
        return bad("size-dist (log or uniform)", s);
    return 0;
}

/* Fills o from argv; returns 0, 1 for "exit 0 now" (help), -1 for usage. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    const char *addr = NULL;
    int progress = -1;
    struct given have = {0};
    long l;
    *o = (struct opts){.connections = 50,
                       .pipeline = 1,
                       .size = 64,
                       .duration = 5,
                       .threads = 1,
                       .timeout = 5,
                       .sources = 16,
                       .max_connecting = 128,
                       .sizes = {.dist = DIST_LOG, .seed = 1}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":a:c:p:l:t:m:r:uT:hV", longopts, NULL)) != -1) {
        int rc = 0;
        switch (ch) {
        case 'a': addr = optarg; break;
        case 'c': rc = parse_int(optarg, "connections", 1, 1000000, &o->connections); break;
        case 'p': rc = parse_int(optarg, "pipeline (1 .. 4096)", 1, 4096, &o->pipeline); break;
        case 'l':
            rc = parse_size(optarg, &o->size);
            have.l = true;
            break;
        case 't':
            rc = parse_secs(optarg, "duration", &o->duration);
            have.t = true;
            break;
        case OPT_SIZE_MIN:
            rc = parse_size(optarg, &o->sizes.min);
            have.min = true;
            break;
        case OPT_SIZE_MAX:
            rc = parse_size(optarg, &o->sizes.max);
            have.max = true;
            break;
        case OPT_SIZE_DIST:
            rc = parse_dist(optarg, &o->sizes.dist);
            have.law = true;
            break;
        case OPT_SEED:
            rc = parse_seed(optarg, &o->sizes.seed);
            have.law = true;
            break;
        case 'm':
            rc = parse_long(optarg, "messages", 1, LONG_MAX, &l);
            if (rc == 0)
                o->messages = (uint64_t)l;
            break;
        case 'r': {
            double r;
            char *end;
            r = strtod(optarg, &end);
            if (end == optarg || *end || !(r > 0) || r > 1e9)
                rc = bad("rate", optarg);
            o->rate = r;
            break;
        }
        case 'u': o->udp = true; break;
        case 'T': rc = parse_int(optarg, "threads (1 .. 256)", 1, 256, &o->threads); break;
        case 'h': usage(stdout); return 1;
        case 'V': printf("poolsrv-bench %s\n", PS_VERSION_STRING); return 1;
        case OPT_CONNECT_RATE: o->mode = MODE_CONNECT_RATE; break;
        case OPT_HOLD: o->mode = MODE_HOLD; break;
        case OPT_JSON: o->json = true; break;
        case OPT_HGRM: o->hgrm = optarg; break;
        case OPT_TIMEOUT: rc = parse_secs(optarg, "timeout", &o->timeout); break;
        case OPT_SOURCES: rc = parse_int(optarg, "sources (0 .. 250)", 0, 250, &o->sources); break;
        case OPT_MAXCONN:
            rc = parse_int(optarg, "max-connecting", 1, 1000000, &o->max_connecting);
            break;
        case OPT_PROGRESS: progress = 1; break;
        case OPT_NO_PROGRESS: progress = 0; break;
        case OPT_SELFTEST: exit(hist_selftest() || size_selftest() ? 1 : 0);
        case OPT_PID: rc = parse_int(optarg, "pid", 1, INT_MAX, &o->pid); break;
        case OPT_PUBSUB: o->mode = MODE_PUBSUB; break;
        case OPT_SUBSCRIBERS:
            rc = parse_int(optarg, "subscribers (1 .. 100000)", 1, 100000, &o->subscribers);
            break;
        case OPT_PUBLISHERS:
            rc = parse_int(optarg, "publishers (1 .. 10000)", 1, 10000, &o->publishers);
            break;
        case OPT_CHANNELS:
            rc = parse_int(optarg, "channels (1 .. 100000)", 1, 100000, &o->channels);
            break;
        case OPT_TLS: o->tls = true; break;
        case OPT_CA: o->ca_file = optarg; break;
        case OPT_SNI:
            if (!*optarg || strlen(optarg) >= sizeof(o->host))
                rc = bad("sni (1 to 127 bytes)", optarg);
            o->sni = optarg;
            break;
        case OPT_TLS_RESUME: o->tls_resume = true; break;
        case ':':
            fprintf(stderr, "poolsrv-bench: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "poolsrv-bench: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    if (optind < argc) {
        if (addr || optind + 1 < argc) {
            fprintf(stderr, "poolsrv-bench: give exactly one target HOST:PORT\n");
            return -1;
        }
        addr = argv[optind];
    }
    if (!addr) {
        fprintf(stderr, "poolsrv-bench: no target given (e.g. 127.0.0.1:7000; see --help)\n");
        return -1;
    }
    int trc = parse_target(o, addr);
    if (trc < 0)
        return trc;
    if (check_opts(o, &have) < 0)
        return -1;
    if (o->threads > o->connections)
        o->threads = o->connections;
    if (o->messages && (uint64_t)o->threads > o->messages)
        o->threads = (int)o->messages; /* every thread needs a share */
    if (o->udp && o->target.ss_family == AF_UNIX) {
        fprintf(stderr, "poolsrv-bench: --udp does not apply to unix: targets\n");
        return -1;
    }
    /* stderr: stdout carries the report (the JSON object with --json) */
    o->progress = progress >= 0 ? progress : (!o->json && isatty(STDERR_FILENO));
    return 0;
}

/* Raise the descriptor limit towards what the connections need. */
static void raise_nofile(const struct opts *o)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)o->connections + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        fprintf(stderr,
                "poolsrv-bench: warning: descriptor limit %llu < %llu needed; "
                "raise the hard limit (ulimit -Hn)\n",
                (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

static long rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            char *end;
            long v = strtol(line + 6, &end, 10);
            if (end != line + 6 && v >= 0)
                kb = v;
            break;
        }
    }
    fclose(f);
    return kb;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct live {
    uint64_t msgs, errors, connected, settled;
    int idle;
};

static struct live sample(const struct bench *b)
{
    struct live l = {0};
    for (int i = 0; i < b->o.threads; i++) {
        struct tstats *s = &b->w[i].st;
        l.msgs += atomic_load_explicit(&s->live_msgs, memory_order_relaxed);
        l.errors += atomic_load_explicit(&s->live_errors, memory_order_relaxed);
        l.connected += atomic_load_explicit(&s->live_connected, memory_order_relaxed);
        l.settled += atomic_load_explicit(&s->live_settled, memory_order_relaxed);
        l.idle += atomic_load(&s->idle);
    }
    return l;
}

static void progress_line(const struct bench *b, const char *what, uint64_t t0, struct live *prev,
                          uint64_t *prev_ns)
{
    uint64_t now = now_ns();
    struct live l = sample(b);
    double dt = (double)(now - *prev_ns) / 1e9;
    fprintf(stderr, "\r%-8s %6.1f s  conns %llu/%d  %10.0f msg/s  errors %llu   ", what,
            (double)(now - t0) / 1e9, (unsigned long long)l.connected, b->o.connections,
            dt > 0 ? (double)(l.msgs - prev->msgs) / dt : 0.0, (unsigned long long)l.errors);
    fflush(stderr);
    *prev = l;
    *prev_ns = now;
}

/* Connect phase: until every connection is up or failed, or --timeout for
 * the phase as a whole; connections still missing then fail the run. */
static void connect_phase(struct bench *b, struct result *r, uint64_t t0)
{
    const struct opts *o = &b->o;
    uint64_t tmo = (uint64_t)(o->timeout * 1e9), prog_ns = t0, next_prog = t0 + 1000000000u;
    struct live prev = {0};
    for (;;) {
        struct live l = sample(b);
        uint64_t now = now_ns();
        if (l.settled >= (uint64_t)o->connections || now - t0 > tmo)
            break;
        if (o->progress && now >= next_prog) {
            progress_line(b, "connect", t0, &prev, &prog_ns);
            next_prog += 1000000000u;
        }
        sleep_ms(2);
    }
    r->connected_at_start = sample(b).connected;
}

/* Run phase: --duration, or until every thread has sent and received its
 * share of --messages (or nothing moved for --timeout). */
static void run_phase(struct bench *b, struct result *r, uint64_t start)
{
    const struct opts *o = &b->o;
    uint64_t tmo = (uint64_t)(o->timeout * 1e9);
    uint64_t end = o->messages ? UINT64_MAX : start + (uint64_t)(o->duration * 1e9);
    uint64_t msgs = 0, last_change = start, prog_ns = start, next_prog = start + 1000000000u;
    struct live prev = sample(b);
    for (;;) {
        uint64_t now = now_ns();
        struct live l = sample(b);
        if (now >= end || l.idle == o->threads)
            break;
        if (l.msgs != msgs) {
            msgs = l.msgs;
            last_change = now;
        } else if (o->messages && now - last_change > tmo) {
            break; /* --messages, but nothing moves any more */
        }
        if (o->progress && now >= next_prog) {
            progress_line(b, o->mode == MODE_HOLD ? "hold" : "run", start, &prev, &prog_ns);
            next_prog += 1000000000u;
        }
        sleep_ms(now + 2000000u < end ? 2 : 0);
    }
    r->run_secs = (double)(now_ns() - start) / 1e9;
    r->held_at_end = sample(b).connected;
    if (o->pid) /* at the end of --hold: the server has accepted them all */
        r->server_rss_kb_after = rss_kb(o->pid);
}

/* Main thread: step the load threads through the phases.  Every wait is
 * bounded: connects and echoes by --timeout, the run by --duration or by
 * --timeout without progress, the drain by --timeout. */
static void drive(struct bench *b, struct result *r)
{
    const struct opts *o = &b->o;
    uint64_t t0 = now_ns();
    r->server_rss_kb_before = o->pid ? rss_kb(o->pid) : -1;
    r->server_rss_kb_after = -1;
    if (o->mode != MODE_CONNECT_RATE)
        connect_phase(b, r, t0);
    uint64_t start = now_ns();
    r->connect_secs = (double)(start - t0) / 1e9;
    b->run_start_ns = start;
    atomic_store(&b->phase, PH_RUN);
    run_phase(b, r, start);
    atomic_store(&b->phase, PH_DRAIN);
    if (o->mode != MODE_HOLD) {
        uint64_t drain_end = now_ns() + (uint64_t)(o->timeout * 1e9);
        while (sample(b).idle < o->threads && now_ns() < drain_end)
            sleep_ms(1);
    }
    atomic_store(&b->phase, PH_DONE);
    if (o->progress)
        fprintf(stderr, "\r%-78s\r", "");
}

/* --hgrm FILE: the message latencies, in milliseconds.  Returns 0 or -1
 * (said on stderr; the run then fails). */
static int write_hgrm(const struct opts *o, const struct hist *lat)
{
    if (!o->hgrm)
        return 0;
    FILE *f = fopen(o->hgrm, "w");
    if (!f) {
        fprintf(stderr, "poolsrv-bench: cannot write %s: %s\n", o->hgrm, strerror(errno));
        return -1;
    }
    int rc = hist_write_hgrm(lat, f, 1e6);
    if (fclose(f) != 0 || rc < 0) {
        fprintf(stderr, "poolsrv-bench: writing %s failed\n", o->hgrm);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench b;
    int rc = parse_args(argc, argv, &b.o);
    if (rc != 0)
        return rc > 0 ? 0 : rc == -2 ? 1 : 2;
    const struct opts *o = &b.o;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(o);
    pattern_init();
    if (o->mode == MODE_PUBSUB)
        return pubsub_run(o);
    if (o->tls && tls_setup(&b.o) < 0)
        return 2; /* --ca unusable: a usage error, as the client has it */

    b.w = calloc((size_t)o->threads, sizeof(*b.w));
    pthread_t *tid = calloc((size_t)o->threads, sizeof(*tid));
    if (!b.w || !tid) {
        fprintf(stderr, "poolsrv-bench: out of memory\n");
        free(b.w);
        free(tid);
        return 1;
    }
    atomic_store(&b.phase, o->mode == MODE_CONNECT_RATE ? PH_RUN : PH_CONNECT);
    b.run_start_ns = now_ns();
    int started = 0, first = 0;
    for (int i = 0; i < o->threads; i++) {
        struct worker *w = &b.w[i];
        w->b = &b;
        w->index = i;
        w->first_conn = first;
        w->nconns = o->connections / o->threads + (i < o->connections % o->threads);
        first += w->nconns;
        if (o->messages)
            w->quota = o->messages / (uint64_t)o->threads +
                       ((uint64_t)i < o->messages % (uint64_t)o->threads);
        hist_init(&w->st.lat);
        hist_init(&w->st.conn_lat);
        int rc = pthread_create(&tid[i], NULL, load_thread, w);
        if (rc != 0) {
            fprintf(stderr, "poolsrv-bench: cannot create load thread %d of %d: %s\n", i + 1,
                    o->threads, strerror(rc));
            break;
        }
        started++;
    }
    struct result r = {0};
    if (started == o->threads)
        drive(&b, &r);
    atomic_store(&b.phase, PH_DONE);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    free(tid);
    if (started < o->threads) {
        free(b.w);
        return 1;
    }

    static struct tstats sum;
    hist_init(&sum.lat);
    hist_init(&sum.conn_lat);
    for (int i = 0; i < o->threads; i++) {
        const struct tstats *s = &b.w[i].st;
        if (s->setup_failed) {
            fprintf(stderr, "poolsrv-bench: thread %d could not set up (memory?)\n", i);
            sum.errors[ERR_OTHER]++;
        }
        hist_merge(&sum.lat, &s->lat);
        hist_merge(&sum.conn_lat, &s->conn_lat);
        sum.msgs += s->msgs;
        sum.bytes += s->bytes;
        sum.connects_ok += s->connects_ok;
        sum.cycles += s->cycles;
        sum.handshakes += s->handshakes;
        sum.handshakes_run += s->handshakes_run;
        sum.tls_resumed += s->tls_resumed;
        if (!sum.tls_version && s->tls_version) {
            sum.tls_version = s->tls_version;
            sum.tls_cipher = s->tls_cipher;
        }
        if (s->stall_max_ns > sum.stall_max_ns)
            sum.stall_max_ns = s->stall_max_ns;
        for (int k = 0; k < ERR_KINDS; k++)
            sum.errors[k] += s->errors[k];
    }
    /* --messages: the run lasted until the last thread got its last echo. */
    if (o->messages) {
        uint64_t fin = 0;
        for (int i = 0; i < o->threads; i++)
            if (b.w[i].st.finish_ns > fin)
                fin = b.w[i].st.finish_ns;
        if (fin > b.run_start_ns)
            r.run_secs = (double)(fin - b.run_start_ns) / 1e9;
    }
    r.sum = &sum;
    int hgrm_rc = write_hgrm(o, &sum.lat);
    if (o->json)
        report_json(&b, &r);
    else
        report_human(&b, &r);
    fflush(stdout);
    free(b.w);
    if (o->tls)
        tls_teardown(&b.o);
    return result_ok(&b, &r) && hgrm_rc == 0 ? 0 : 1;
}

/* SPDX-License-Identifier: MIT */
/* common.c - shared command line, run loop and output batcher (see common.h). */
#include "common.h"
#include "../upgrade.h"
#include "../tls_flags.h"
#include "../sdnotify.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Set by ex_parse_args (main thread) before any other thread runs. */
static char **g_argv;
static const char *g_pid_file;
static tlsf g_tls;         /* --tls-*: ex_parse_args to ex_run */
static ps_log_level g_level = PS_LOG_WARN;
static bool g_journal;     /* stderr is systemd's journal stream */
static const char *g_name; /* the program's name, for log lines */

/* JOURNAL_STREAM ("DEV:INODE") names our stderr: systemd's journal, which
 * stamps each line itself and keeps a "<N>" syslog priority as its level. */
static bool journal_stderr(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* "<3>" (error) under the journal, so it keeps the level; else "". */
static const char *jprio(ps_log_level level)
{
    static const char *prio[] = {"<3>", "<4>", "<6>", "<7>"};
    return g_journal ? prio[level] : "";
}

static void log_stderr(ps_log_level level, const char *msg, void *user)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char ts[32];
    struct timespec now;
    struct tm tm;

    (void)user;
    if (g_journal) { /* the journal stamps and names the line itself */
        fprintf(stderr, "%s%s: %s\n", jprio(level), names[level], msg);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", ts, now.tv_nsec / 1000000, g_name, names[level], msg);
}

void ex_log(ps_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (level > g_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_stderr(level, msg, NULL);
}

void ex_fail(const ex_prog *p, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s%s: ", jprio(PS_LOG_ERROR), p->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void ex_usage_error(const ex_prog *p, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s%s: ", jprio(PS_LOG_ERROR), p->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%sTry '%s --help' for more information.\n", jprio(PS_LOG_ERROR), p->name);
    exit(2);
}

static void usage(const ex_prog *p, const ps_config *cfg, FILE *f)
{
    /* the examples use the program's own default port, so they agree with
     * the default named on the same line */
    const char *colon = strrchr(p->default_listen, ':');
    const char *port = colon ? colon + 1 : "0";
    char workers[16];

    snprintf(workers, sizeof workers, "%d", cfg->workers);

    fprintf(f,
            "Usage: %s [options]\n"
            "%s\n"
            "\n"
            "  -l, --listen ADDR      listen address (repeatable): 127.0.0.1:%s, [::1]:%s,\n"
            "                         0.0.0.0:0 (port 0 = ephemeral); default %s\n"
            "  -w, --workers N        worker threads, 1..1024 (default: %s)\n"
            "  -i, --idle-timeout MS  close connections idle this long (default %d, 0 = never)\n"
            "      --unix-mode OCTAL  permissions of unix: socket files, e.g. 0660\n"
            "                         (default: 0777 minus the umask)\n"
            "      --unix-owner USER  owner of unix: socket files (name or uid)\n"
            "      --unix-group GROUP group of unix: socket files (name or gid)\n"
            "      --request-timeout MS\n"
            "                         a request must arrive within this long, +1 s per %d\n"
            "                         bytes received (default %d, 0 = no limit)\n"
            "      --max-connections N\n"
            "                         refuse connections past N open (default %d, 0 = no limit)\n"
            "      --pid-file FILE    write the process id to FILE once serving (replaced\n"
            "                         atomically; removed at exit if it is still ours)\n"
            "      --log-level LEVEL  error, warn (default), info or debug\n"
            "  -v, --verbose          same as --log-level debug\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n",
            p->name, p->summary, port, port, p->default_listen,
            cfg->workers ? workers : "one per CPU", cfg->idle_timeout_ms,
            cfg->min_rate, cfg->request_timeout_ms, cfg->max_connections);
    tlsf_help(f, 25);
    fprintf(f,
            "%s"
            "\n"
            "Prints 'listening on ADDR' per listener once ready (stdout; not a log line).\n"
            "SIGINT or SIGTERM stops gracefully (a second one at once); SIGHUP re-reads the\n"
            "TLS certificate files.  SIGUSR2 upgrades: the program is started again with the\n"
            "same arguments on the same listening sockets, and once it serves this one stops\n"
            "accepting, drains and exits 0 (if it fails, this one keeps serving).  Every line\n"
            "on stderr is a log line that --log-level filters, start failures aside; under\n"
            "systemd they carry <N> priorities (JOURNAL_STREAM) and readiness goes to\n"
            "NOTIFY_SOCKET.  Exit status: 0 after a clean stop, 1 if the server could not\n"
            "start, 2 for bad usage.\n",
            p->extra_help ? p->extra_help : "");
}

static _Noreturn void die_usage(const ex_prog *p, const char *msg, const char *val)
{
    ex_usage_error(p, "%s%s%s", msg, val ? val : "", val ? "'" : "");
}

/* Strict integer in [lo, hi]; exits with a usage error naming flag and value. */
static int parse_int(const ex_prog *p, const char *flag, const char *v, long lo, long hi)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < lo || n > hi)
        ex_usage_error(p, "invalid %s value '%s': expected an integer from %ld to %ld", flag, v, lo,
                       hi);
    return (int)n;
}

enum { OPT_UNIX_MODE = 256, OPT_UNIX_OWNER, OPT_UNIX_GROUP, OPT_PID_FILE, OPT_LOG_LEVEL };

static ps_log_level parse_level(const ex_prog *p, const char *v)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    int i;

    for (i = 0; i < 4; i++)
        if (strcmp(v, names[i]) == 0)
            return (ps_log_level)i;
    ex_usage_error(p, "invalid --log-level '%s': expected error, warn, info or debug", v);
}

/* --unix-mode / --unix-owner / --unix-group: the library reads the text. */
static void parse_unix_perm(const ex_prog *p, ps_config *cfg, int c, const char *v)
{
    ps_err err;
    char msg[320];

    if (ps_config_set_unix_perms(cfg, c == OPT_UNIX_MODE ? v : NULL, c == OPT_UNIX_OWNER ? v : NULL,
                                 c == OPT_UNIX_GROUP ? v : NULL, &err) < 0) {
        snprintf(msg, sizeof msg, "invalid %s: %s",
                 c == OPT_UNIX_MODE    ? "--unix-mode"
                 : c == OPT_UNIX_OWNER ? "--unix-owner"
                                       : "--unix-group",
                 err.msg);
        die_usage(p, msg, NULL);
    }
}

/* The shared options followed by the program's own. */
static struct option *all_options(const ex_prog *p, const struct option *shared, size_t nshared)
{
    size_t n = 0;
    struct option *o;

    while (p->extra_opts && p->extra_opts[n].name)
        n++;
    o = calloc(nshared + n, sizeof *o); /* nshared counts the zero entry */
    if (!o) {
        ex_fail(p, "out of memory");
        exit(1);
    }
    memcpy(o, shared, (nshared - 1) * sizeof *o);
    if (n)
        memcpy(o + nshared - 1, p->extra_opts, n * sizeof *o);
    return o;
}

void ex_parse_args(const ex_prog *p, int argc, char **argv, ps_config *cfg)
{
    static const struct option shared[] = {
        {"listen", required_argument, 0, 'l'},
        {"workers", required_argument, 0, 'w'},
        {"idle-timeout", required_argument, 0, 'i'},
        {"unix-mode", required_argument, 0, OPT_UNIX_MODE},
        {"unix-owner", required_argument, 0, OPT_UNIX_OWNER},
        {"unix-group", required_argument, 0, OPT_UNIX_GROUP},
        {"request-timeout", required_argument, 0, 'R'},
        {"max-connections", required_argument, 0, 'C'},
        {"pid-file", required_argument, 0, OPT_PID_FILE},
        {"log-level", required_argument, 0, OPT_LOG_LEVEL},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        TLSF_OPTIONS,
        {0, 0, 0, 0},
    };
    struct option *opts;
    struct sockaddr_storage ss;
    socklen_t len;
    ps_err err;
    char msg[320];
    const char *a;
    int c, li = 0;

    g_name = p->name;
    g_journal = journal_stderr();
    opts = all_options(p, shared, sizeof shared / sizeof shared[0]);
    cfg->log = log_stderr;
    cfg->log_level = g_level;
    opterr = 0;
    tlsf_init(&g_tls);
    while ((c = getopt_long(argc, argv, ":l:w:i:vhV", opts, &li)) != -1) {
        int t = tlsf_option(&g_tls, c, optarg);
        if (t < 0)
            die_usage(p, "invalid --tls-min-version value (1.2 or 1.3): '", optarg);
        if (t > 0)
            continue;
        if (c >= 512 && p->extra) {
            if (p->extra(c, optarg, cfg) < 0) {
                /* by name: argv[optind - 1] is the value itself in "--opt VALUE" */
                snprintf(msg, sizeof msg, "invalid --%s value '", opts[li].name);
                die_usage(p, msg, optarg ? optarg : "");
            }
            continue;
        }
        switch (c) {
        case 'l':
            /* "proxy:" (a PROXY protocol header first) and "tls:" go to the
             * library as they are */
            a = strncmp(optarg, "proxy:", 6) == 0 ? optarg + 6 : optarg;
            if (strncmp(a, "tls:", 4) == 0)
                a += 4;
            if (ps_addr_parse(a, &ss, &len, &err) < 0) {
                snprintf(msg, sizeof msg, "invalid --listen address: %s", err.msg);
                die_usage(p, msg, NULL);
            }
            if (ps_config_add_listen(cfg, optarg) < 0)
                die_usage(p, "too many --listen addresses (at most 16)", NULL);
            break;
        case 'w': cfg->workers = parse_int(p, "--workers", optarg, 1, 1024); break;
        case 'i': cfg->idle_timeout_ms = parse_int(p, "--idle-timeout", optarg, 0, INT_MAX); break;
        case OPT_UNIX_MODE:
        case OPT_UNIX_OWNER:
        case OPT_UNIX_GROUP: parse_unix_perm(p, cfg, c, optarg); break;
        case 'R':
            cfg->request_timeout_ms = parse_int(p, "--request-timeout", optarg, 0, INT_MAX);
            break;
        case 'C':
            cfg->max_connections = parse_int(p, "--max-connections", optarg, 0, INT_MAX);
            break;
        case OPT_PID_FILE:
            if (!*optarg)
                die_usage(p, "invalid --pid-file: an empty file name", NULL);
            g_pid_file = optarg;
            break;
        case OPT_LOG_LEVEL: cfg->log_level = g_level = parse_level(p, optarg); break;
        case 'v': cfg->log_level = g_level = PS_LOG_DEBUG; break;
        case 'h': usage(p, cfg, stdout); exit(0);
        case 'V': printf("%s %s\n", p->name, ps_version()); exit(0);
        case ':': die_usage(p, "option needs a value: '", argv[optind - 1]);
        default: die_usage(p, "unknown option '", argv[optind - 1]);
        }
    }
    free(opts);
    g_argv = argv;
    if (optind < argc)
        die_usage(p, "unexpected argument '", argv[optind]);
    if (cfg->nlisten == 0)
        ps_config_add_listen(cfg, p->default_listen);
    {
        bool usage;
        if (tlsf_apply(&g_tls, cfg, msg, sizeof msg, &usage) < 0) {
            if (usage)
                die_usage(p, msg, NULL);
            ex_fail(p, "%s", msg);
            exit(1);
        }
    }
}

static void upg_log(ps_log_level level, const char *msg)
{
    ex_log(level, "%s", msg);
}

/* Signals are taken by one thread with sigwait (not handlers), so that an
 * upgrade may fork, log and start a thread:
 *   SIGINT, SIGTERM  graceful stop (drain; a second one stops at once),
 *                    logged at info and told to systemd
 *   SIGUSR2          upgrade (upgrade.h); also wakes the thread to exit
 * and WATCHDOG=1 when systemd asks for it (WATCHDOG_USEC). */
struct sigctx {
    ps_server *srv;
    sigset_t set;
    atomic_bool done;
};

static void *signal_thread(void *arg)
{
    struct sigctx *sc = arg;
    long wd = sdn_watchdog_ms();
    struct timespec ts = {wd / 1000, (wd % 1000) * 1000000L};
    int stops = 0, sig;

    while (!atomic_load(&sc->done)) {
        sig = wd > 0 ? sigtimedwait(&sc->set, NULL, &ts) : sigwaitinfo(&sc->set, NULL);
        if (atomic_load(&sc->done))
            break;
        if (sig < 0 && wd > 0)
            sdn_notify("WATCHDOG=1");
        if (sig == SIGUSR2) {
            upg_request();
        } else if (sig == SIGINT || sig == SIGTERM) {
            upg_stopping();
            ex_log(PS_LOG_INFO, "%s: %s", strsignal(sig),
                   stops ? "stopping now" : "draining (signal again to stop now)");
            if (!upg_handed_off()) /* else systemd follows the new process */
                sdn_notify(stops ? "STATUS=stopping now" : "STOPPING=1\nSTATUS=draining");
            if (stops++)
                ps_server_stop_now(sc->srv);
            else
                ps_server_stop(sc->srv);
        }
    }
    return NULL;
}

static void start_failed(const ex_prog *p, const char *msg)
{
    ex_fail(p, "%s", msg);
}

int ex_run(const ex_prog *p, const ps_config *cfg_in, const ps_handler *h, void *user)
{
    ps_config cfg = *cfg_in;
    struct sigctx sc = {0};
    pthread_t sig_tid;
    char status[1024];
    ps_stats st;
    ps_err err;
    int i, n, rc;

    if (!cfg.log) { /* a caller that did not go through ex_parse_args */
        cfg.log = log_stderr;
        cfg.log_level = g_level;
    }
    if (!g_name)
        g_name = p->name;
    /* Blocked before any thread exists; signal_thread takes them. */
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
    if (upg_init(g_argv, g_pid_file, 0, upg_log) < 0)
        return 1;
    sc.srv = ps_server_new(&cfg, h, user, &err);
    if (!sc.srv) {
        start_failed(p, err.msg);
        return 2;
    }
    if (cfg.tls && tlsf_reload_on_sighup(cfg.tls, cfg.log, cfg.log_user) < 0)
        ex_log(PS_LOG_WARN, "cannot start the SIGHUP thread: certificates will not reload");
    if (upg_adopt(UPG_MAIN, sc.srv, &err) < 0 || ps_server_start(sc.srv, &err) < 0) {
        start_failed(p, err.msg);
        ps_server_free(sc.srv);
        return 1;
    }
    if ((rc = pthread_create(&sig_tid, NULL, signal_thread, &sc)) != 0) {
        ex_fail(p, "cannot create the signal thread: %s", strerror(rc));
        ps_server_free(sc.srv);
        return 1;
    }
    n = snprintf(status, sizeof status, "READY=1\nSTATUS=serving on");
    for (i = 0; i < ps_server_nlisteners(sc.srv); i++) {
        printf("listening on %s\n", ps_server_listen_name(sc.srv, i));
        if (n > 0 && (size_t)n < sizeof status)
            n += snprintf(status + n, sizeof status - (size_t)n, " %s",
                          ps_server_listen_name(sc.srv, i));
    }
    fflush(stdout);
    upg_set_servers(sc.srv, NULL);
    if (upg_ready(status) < 0) {
        ps_server_stop_now(sc.srv);
        rc = 1;
    }
    ps_server_wait(sc.srv);
    atomic_store(&sc.done, true);
    pthread_kill(sig_tid, SIGUSR2);
    pthread_join(sig_tid, NULL);
    ps_server_stats(sc.srv, &st);
    ex_log(PS_LOG_INFO, "stopped: %llu connections accepted, %llu refused at a limit",
           (unsigned long long)st.accepted, (unsigned long long)st.limit_refused);
    upg_exit();
    ps_server_free(sc.srv);
    return rc;
}

/* ------------------------------------------------------------ ex_out */

void ex_out_init(ex_out *o, ps_conn *c)
{
    o->conn = c;
    o->len = 0;
    o->err = 0;
}

int ex_out_flush(ex_out *o)
{
    int rc;

    if (o->len > 0 && o->err == 0) {
        rc = ps_conn_send(o->conn, o->buf, o->len);
        if (rc < 0)
            o->err = rc;
    }
    o->len = 0;
    return o->err;
}

bool ex_out_full(ex_out *o, size_t high_water)
{
    if (ps_conn_pending(o->conn) + o->len <= high_water)
        return false;
    ex_out_flush(o);
    return ps_conn_pending(o->conn) > high_water;
}

void ex_out_put(ex_out *o, const void *data, size_t len)
{
    int rc;

    if (len <= EX_OUT_CAP - o->len) {
        memcpy(o->buf + o->len, data, len);
        o->len += len;
        return;
    }
    ex_out_flush(o);
    if (len <= EX_OUT_CAP) {
        memcpy(o->buf, data, len);
        o->len = len;
    } else if (o->err == 0 && (rc = ps_conn_send(o->conn, data, len)) < 0) {
        o->err = rc;
    }
}

char *ex_out_reserve(ex_out *o, size_t n)
{
    if (n > EX_OUT_CAP - o->len)
        ex_out_flush(o);
    return o->buf + o->len;
}

void ex_out_commit(ex_out *o, size_t n)
{
    o->len += n;
}

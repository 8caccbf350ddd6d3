/* SPDX-License-Identifier: MIT */
/*
 * poolsrv-echo - the bundled echo server: flags in, library call, summary
 * out.  Everything it serves with is in the library; this file parses the
 * command line, turns signals into ps_server_stop / stats lines, and
 * reports.
 *
 * Signals are taken by one thread with sigwait, not by handlers, so that
 * SIGUSR1 and the periodic stats line may format and log freely:
 *   SIGINT, SIGTERM  graceful stop (drain); a second one stops at once
 *   SIGUSR1          log the counters now (at level info)
 *   SIGUSR2          upgrade: start this program again on the same
 *                    listeners, then drain and exit (upgrade.h)
 *
 * Every line on stderr is a log line with a level that --log-level
 * filters (startup failures and usage errors are errors, always shown).
 * Under systemd's journal (JOURNAL_STREAM names our stderr) a line carries
 * a "<N>" syslog priority instead of our own timestamp.  The "listening on
 * ADDR" / "admin on ADDR" lines go to stdout: they are the program's
 * output that scripts read, not log lines, and are always printed.
 * Under Type=notify (NOTIFY_SOCKET) readiness, stopping and the watchdog
 * are reported to systemd (sdnotify.h).
 */
#include "admin.h"
#include "echo_handlers.h"
#include "poolsrv.h"
#include "sdnotify.h"
#include "upgrade.h"
#include "tls_flags.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PROG "poolsrv-echo"
#define DEFAULT_LISTEN "127.0.0.1:7000"
#define BUSY_MSG "busy: server at capacity, try again later\n"

struct opts {
    bool event_style;
    bool systemd;
    int stats_interval; /* seconds, 0 = off */
    const char *admin;
    const char *pid_file;
    int systemd_fds; /* sockets taken from LISTEN_FDS */
    tlsf tls; /* --tls-* */
};

/* Set once in main before any thread starts, read-only afterwards. */
static ps_log_level g_level = PS_LOG_WARN;
static bool g_journal; /* stderr is systemd's journal stream */

/* "<3>" (error) under the journal, so it keeps the level; else "". */
static const char *jprio(ps_log_level level)
{
    static const char *prio[] = {"<3>", "<4>", "<6>", "<7>"};
    return g_journal ? prio[level] : "";
}

/* JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it is
 * inherited, so it only counts when stderr is still that stream. */
static bool journal_stderr(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [options]\n"
            "Echo every byte back to each client, on a fixed pool of worker threads.\n"
            "\n"
            "  -l, --listen ADDR        listen address (repeatable): 127.0.0.1:7000, [::1]:7000,\n"
            "                           0.0.0.0:0 (port 0 = ephemeral), unix:/path/to.sock,\n"
            "                           udp:ADDR, fd:N (inherited); a proxy: prefix expects a\n"
            "                           PROXY v1/v2 header per connection, tls: serves TLS\n"
            "                           (--tls-cert); default " DEFAULT_LISTEN "\n"
            "  -m, --mode MODE          event (default) or blocking handler style\n"
            "  -w, --workers N          worker threads, 1..1024 (default: event, one per CPU\n"
            "                           it may run on; blocking, 32)\n"
            "  -q, --queue N            work queue capacity, 1..1048576 (default 1024)\n"
            "  -p, --policy POLICY      when the queue is full: block (stop accepting, default)\n"
            "                           or reject (send a busy line and close)\n"
            "  -b, --backlog N          listen backlog (default 4096)\n"
            "  -u, --udp                also echo UDP datagrams on each TCP listener's port\n"
            "      --udp-reply-rate N   UDP: replies per second to one source address,\n"
            "                           0 = no limit (default 1000)\n"
            "      --udp-reply-burst N  UDP: ... of which N may go at once (default 1000)\n"
            "      --udp-any-port       UDP: also answer service source ports (below 1024,\n"
            "                           known amplifiers, our own port); never our own sockets\n"
            "      --systemd            listen on the sockets systemd passes (LISTEN_FDS)\n"
            "      --reuseport          SO_REUSEPORT: several processes share a port\n"
            "      --unix-mode OCTAL    permissions of unix: socket files, e.g. 0660\n"
            "                           (default: 0777 minus the umask)\n"
            "      --unix-owner USER    owner of unix: socket files (name or uid)\n"
            "      --unix-group GROUP   group of unix: socket files (name or gid)\n"
            "  -d, --drain-timeout MS   on SIGINT/SIGTERM, time given to open connections\n"
            "                           before they are shut down (default 5000, -1 = forever);\n"
            "                           a second signal stops at once\n"
            "  -i, --idle-timeout MS    close connections idle this long (default 0 = never)\n"
            "      --first-byte-timeout MS  close connections silent this long after accept\n"
            "      --write-timeout MS   close peers that take no output this long (default 60000)\n"
            "      --max-connections N  refuse connections past N open (default 0 = no limit)\n"
            "      --max-per-client N   refuse connections past N open per client address\n"
            "      --stats-interval S   log the counters every S seconds (default 0 = never)\n"
            "      --admin ADDR         serve counters over HTTP on ADDR: GET /metrics\n"
            "                           (Prometheus text format) and GET /stats\n"
            "      --pid-file FILE      write the process id to FILE once serving (replaced\n"
            "                           atomically; removed at exit if it is still ours)\n"
            "      --no-histograms      keep no latency histograms (they cost a clock\n"
            "                           read per turn, about 30 ns)\n"
            "      --log-level LEVEL    error, warn (default), info or debug\n"
            "  -v, --verbose            same as --log-level debug\n"
            "  -h, --help               this text\n"
            "  -V, --version            print the version\n");
    tlsf_help(f, 27);
    fprintf(f,
            "\n"
            "Prints 'listening on ADDR' per listener once ready (stdout; not a log line).\n"
            "SIGINT or SIGTERM stops gracefully and logs a summary; SIGUSR1 logs the\n"
            "counters (both at level info); SIGHUP re-reads the TLS certificate files.\n"
            "SIGUSR2 upgrades: the program is started again with the same arguments on the\n"
            "same listening sockets, and once it serves (it writes the pid file) this one\n"
            "stops accepting, drains and exits 0; if it fails, this one logs why and keeps\n"
            "serving.  Under systemd, log lines carry <N> priorities (JOURNAL_STREAM) and\n"
            "readiness goes to NOTIFY_SOCKET.  Exit status: 0 after a clean stop, 1 if the\n"
            "server could not start, 2 for bad usage.\n");
}

static _Noreturn void die_usage(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "%s" PROG ": ", jprio(PS_LOG_ERROR));
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n%sTry '" PROG " --help' for more information.\n", jprio(PS_LOG_ERROR));
    exit(2);
}

/* Strict integer in [lo, hi]; exits with a usage error naming the flag. */
static int parse_int(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < lo || n > hi) {
        fprintf(stderr, "%s" PROG ": invalid %s value '%s': expected an integer from %ld to %ld\n",
                jprio(PS_LOG_ERROR), flag, v, lo, hi);
        fprintf(stderr, "%sTry '" PROG " --help' for more information.\n", jprio(PS_LOG_ERROR));
        exit(2);
    }
    return (int)n;
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
    fprintf(stderr, "%s.%03ldZ " PROG " %s: %s\n", ts, now.tv_nsec / 1000000, names[level], msg);
}

enum {
    OPT_SYSTEMD = 256,
    OPT_REUSEPORT,
    OPT_FIRST_BYTE,
    OPT_WRITE_TIMEOUT,
    OPT_MAX_CONN,
    OPT_MAX_PER_CLIENT,
    OPT_STATS_INTERVAL,
    OPT_ADMIN,
    OPT_LOG_LEVEL,
    OPT_UNIX_MODE,
    OPT_UNIX_OWNER,
    OPT_UNIX_GROUP,
    OPT_UDP_RATE,
    OPT_UDP_BURST,
    OPT_UDP_ANY_PORT,
    OPT_PID_FILE,
    OPT_NO_HISTOGRAMS,
};

static const struct option long_opts[] = {
    {"listen", required_argument, 0, 'l'},
    {"mode", required_argument, 0, 'm'},
    {"workers", required_argument, 0, 'w'},
    {"queue", required_argument, 0, 'q'},
    {"policy", required_argument, 0, 'p'},
    {"backlog", required_argument, 0, 'b'},
    {"udp", no_argument, 0, 'u'},
    {"udp-reply-rate", required_argument, 0, OPT_UDP_RATE},
    {"udp-reply-burst", required_argument, 0, OPT_UDP_BURST},
    {"udp-any-port", no_argument, 0, OPT_UDP_ANY_PORT},
    {"systemd", no_argument, 0, OPT_SYSTEMD},
    {"reuseport", no_argument, 0, OPT_REUSEPORT},
    {"unix-mode", required_argument, 0, OPT_UNIX_MODE},
    {"unix-owner", required_argument, 0, OPT_UNIX_OWNER},
    {"unix-group", required_argument, 0, OPT_UNIX_GROUP},
    {"drain-timeout", required_argument, 0, 'd'},
    {"idle-timeout", required_argument, 0, 'i'},
    {"first-byte-timeout", required_argument, 0, OPT_FIRST_BYTE},
    {"write-timeout", required_argument, 0, OPT_WRITE_TIMEOUT},
    {"max-connections", required_argument, 0, OPT_MAX_CONN},
    {"max-per-client", required_argument, 0, OPT_MAX_PER_CLIENT},
    {"stats-interval", required_argument, 0, OPT_STATS_INTERVAL},
    {"admin", required_argument, 0, OPT_ADMIN},
    {"no-histograms", no_argument, 0, OPT_NO_HISTOGRAMS},
    {"log-level", required_argument, 0, OPT_LOG_LEVEL},
    {"pid-file", required_argument, 0, OPT_PID_FILE},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    TLSF_OPTIONS,
    {0, 0, 0, 0},
};

static ps_log_level parse_level(const char *v)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    int i;

    for (i = 0; i < 4; i++)
        if (strcmp(v, names[i]) == 0)
            return (ps_log_level)i;
    die_usage("invalid --log-level '%s': expected error, warn, info or debug%s", v, "");
}

/* Addresses are checked with the rest of the configuration, by the library
 * (ps_config_validate), which knows every form: udp:, fd:N, proxy:. */
static void parse_listen(ps_config *cfg, const char *v)
{
    if (ps_config_add_listen(cfg, v) < 0)
        die_usage("too many --listen addresses (at most %s)%s", "16", "");
}

/* --unix-mode / --unix-owner / --unix-group: the library reads the text. */
static void parse_unix_perm(ps_config *cfg, int c, const char *v)
{
    ps_err err;

    if (ps_config_set_unix_perms(cfg, c == OPT_UNIX_MODE ? v : NULL, c == OPT_UNIX_OWNER ? v : NULL,
                                 c == OPT_UNIX_GROUP ? v : NULL, &err) < 0)
        die_usage("invalid %s: %s",
                  c == OPT_UNIX_MODE    ? "--unix-mode"
                  : c == OPT_UNIX_OWNER ? "--unix-owner"
                                        : "--unix-group",
                  err.msg);
}

static void parse_one(int c, const char *v, ps_config *cfg, struct opts *o)
{
    switch (c) {
    case 'l': parse_listen(cfg, v); break;
    case 'm':
        if (strcmp(v, "event") != 0 && strcmp(v, "blocking") != 0)
            die_usage("invalid --mode '%s': expected event or blocking%s", v, "");
        o->event_style = strcmp(v, "event") == 0;
        break;
    case 'w': cfg->workers = parse_int("--workers", v, 1, 1024); break;
    case 'q': cfg->queue_capacity = parse_int("--queue", v, 1, 1 << 20); break;
    case 'b': cfg->backlog = parse_int("--backlog", v, 1, 1 << 20); break;
    case 'p':
        if (ps_policy_parse(v, &cfg->policy) < 0)
            die_usage("invalid --policy '%s': expected block or reject%s", v, "");
        break;
    case 'u': cfg->udp_same_port = true; break;
    case OPT_UDP_RATE: cfg->dgram_reply_rate = parse_int("--udp-reply-rate", v, 0, 1000000); break;
    case OPT_UDP_BURST:
        cfg->dgram_reply_burst = parse_int("--udp-reply-burst", v, 1, 1000000);
        break;
    case OPT_UDP_ANY_PORT: cfg->dgram_reply_policy &= ~PS_DGRAM_REFUSE_PORTS; break;
    case OPT_SYSTEMD: o->systemd = true; break;
    case OPT_REUSEPORT: cfg->reuseport = true; break;
    case OPT_UNIX_MODE:
    case OPT_UNIX_OWNER:
    case OPT_UNIX_GROUP: parse_unix_perm(cfg, c, v); break;
    case 'd': cfg->drain_timeout_ms = parse_int("--drain-timeout", v, -1, INT_MAX); break;
    case 'i': cfg->idle_timeout_ms = parse_int("--idle-timeout", v, 0, INT_MAX); break;
    case OPT_FIRST_BYTE:
        cfg->first_byte_timeout_ms = parse_int("--first-byte-timeout", v, 0, INT_MAX);
        break;
    case OPT_WRITE_TIMEOUT:
        cfg->write_timeout_ms = parse_int("--write-timeout", v, 0, INT_MAX);
        break;
    case OPT_MAX_CONN: cfg->max_connections = parse_int("--max-connections", v, 0, INT_MAX); break;
    case OPT_MAX_PER_CLIENT:
        cfg->max_per_client = parse_int("--max-per-client", v, 0, INT_MAX);
        break;
    case OPT_STATS_INTERVAL:
        o->stats_interval = parse_int("--stats-interval", v, 0, 86400);
        break;
    case OPT_ADMIN: {
        struct sockaddr_storage ss;
        socklen_t len;
        ps_err err;
        if (ps_addr_parse(v, &ss, &len, &err) < 0)
            die_usage("invalid --admin address: %s%s", err.msg, "");
        o->admin = v;
        break;
    }
    case OPT_NO_HISTOGRAMS: cfg->histograms = false; break;
    case OPT_LOG_LEVEL: cfg->log_level = parse_level(v); break;
    case OPT_PID_FILE:
        if (!*v)
            die_usage("invalid --pid-file: an empty file name%s%s", "", "");
        o->pid_file = v;
        break;
    case 'v': cfg->log_level = PS_LOG_DEBUG; break;
    default:
        if (tlsf_option(&o->tls, c, v) < 0)
            die_usage("invalid --tls-min-version '%s': expected 1.2 or 1.3%s", v, "");
    }
}

static void parse_args(int argc, char **argv, ps_config *cfg, struct opts *o)
{
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:m:w:q:p:b:ud:i:vhV", long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == 'V') {
            printf(PROG " %s\n", ps_version());
            exit(0);
        }
        if (c == ':')
            die_usage("option '%s' needs a value%s", argv[optind - 1], "");
        if (c == '?')
            die_usage("unknown option '%s'%s", argv[optind - 1], "");
        parse_one(c, optarg, cfg, o);
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'%s", argv[optind], "");
    if (o->systemd) {
        int n = ps_config_add_systemd_listeners(cfg);
        if (n <= 0) {
            fprintf(stderr, "%s" PROG ": --systemd: %s\n", jprio(PS_LOG_ERROR),
                    n == 0 ? "no sockets passed (LISTEN_PID/LISTEN_FDS not set for this process)"
                           : "malformed LISTEN_FDS, or too many sockets");
            exit(2);
        }
        o->systemd_fds = n;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
    }
    if (cfg->nlisten == 0)
        ps_config_add_listen(cfg, DEFAULT_LISTEN);
}

/* Usage errors the library finds (addresses, ranges): exit 2 like ours. */
static void validate(const ps_config *cfg, const ps_handler *h)
{
    ps_err err;

    if (ps_config_validate(cfg, h, &err) < 0)
        die_usage("%s%s", err.msg, "");
}

/* ------------------------------------------------------------ signals */

struct sigctx {
    ps_server *srv;
    ps_tls *tls;      /* SIGHUP reloads it; NULL without TLS */
    int interval;     /* seconds, 0 = off */
    long watchdog_ms; /* WATCHDOG=1 this often (sdn_watchdog_ms), 0 = off */
    sigset_t set;
    atomic_bool done;
};

/* Program messages take the same form as the library's log lines. */
static void say(ps_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(ps_log_level level, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;

    if (level > g_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_stderr(level, msg, NULL);
}

static void say_cb(ps_log_level level, const char *msg, void *user)
{
    (void)user;
    say(level, "%s", msg);
}

/* A failure to start: "poolsrv-echo: why", always shown (level error). */
static void start_failed(const char *what, const char *why)
{
    fprintf(stderr, "%s" PROG ": %s%s\n", jprio(PS_LOG_ERROR), what, why);
}

static void log_stats(ps_server *s, const char *why)
{
    char line[1024];
    ps_stats st;

    ps_server_stats(s, &st);
    ps_stats_format(&st, PS_STATS_TEXT, NULL, line, sizeof line);
    say(PS_LOG_INFO, "stats (%s): %s", why, line);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for a signal until `wake` (mono_ms; -1 = no deadline). */
static int wait_signal(const sigset_t *set, int64_t wake)
{
    struct timespec ts;
    int64_t left;

    if (wake < 0)
        return sigwaitinfo(set, NULL);
    left = wake - mono_ms();
    if (left <= 0)
        return -1; /* errno may be stale: the caller looks at the clock */
    ts.tv_sec = left / 1000;
    ts.tv_nsec = (left % 1000) * 1000000;
    return sigtimedwait(set, NULL, &ts);
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* Takes the signals, and keeps the two clocks: the stats interval and the
 * systemd watchdog (a ping proves this thread, which stops the server, is
 * alive; a hung worker pool is the reactor's and the counters' concern). */
static void *signal_thread(void *arg)
{
    struct sigctx *sc = arg;
    int64_t next_stats = sc->interval > 0 ? mono_ms() + sc->interval * 1000LL : -1;
    int64_t next_wd = sc->watchdog_ms > 0 ? mono_ms() + sc->watchdog_ms : -1;
    int stops = 0, sig;

    while (!atomic_load(&sc->done)) {
        int64_t now = mono_ms();
        if (next_wd >= 0 && now >= next_wd) {
            sdn_notify("WATCHDOG=1");
            next_wd = now + sc->watchdog_ms;
        }
        if (next_stats >= 0 && now >= next_stats) {
            log_stats(sc->srv, "interval");
            next_stats = now + sc->interval * 1000LL;
        }
        sig = wait_signal(&sc->set, earliest(next_wd, next_stats));
        if (atomic_load(&sc->done))
            break;
        if (sig == SIGUSR2) {
            upg_request();
        } else if (sig == SIGINT || sig == SIGTERM) {
            upg_stopping();
            say(PS_LOG_INFO, "%s: %s", strsignal(sig),
                stops ? "stopping now" : "draining (signal again to stop now)");
            if (!upg_handed_off()) /* else systemd follows the new process */
                sdn_notify(stops ? "STATUS=stopping now" : "STOPPING=1\nSTATUS=draining");
            if (stops++)
                ps_server_stop_now(sc->srv);
            else
                ps_server_stop(sc->srv);
        } else if (sig == SIGUSR1) {
            log_stats(sc->srv, "SIGUSR1");
        } else if (sig == SIGHUP && sc->tls) {
            tlsf_reload(sc->tls, say_cb, NULL);
        }
    }
    return NULL;
}

/* Once every listener is bound and announced: the pid file, and READY=1
 * with a STATUS line naming the listeners (systemctl status shows it);
 * after an upgrade also MAINPID and the word to the old process
 * (upgrade.h).  Returns upg_ready's result. */
static int notify_ready(ps_server *s)
{
    char msg[1024];
    int i, n = snprintf(msg, sizeof msg, "READY=1\nSTATUS=serving on");

    for (i = 0; i < ps_server_nlisteners(s) && n > 0 && (size_t)n < sizeof msg; i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, " %s", ps_server_listen_name(s, i));
    return upg_ready(msg);
}

static void upg_log(ps_log_level level, const char *msg)
{
    say(level, "%s", msg);
}

/* The main server, and the admin one when asked: each adopts the
 * listeners an upgrade handed over before it starts.  Returns 0, or 1
 * after a start failure (reported). */
static int start_servers(const ps_config *cfg, const ps_handler *h, const struct opts *o,
                         ps_server **srv, ps_server **admin)
{
    ps_err err;

    *srv = ps_server_new(cfg, h, NULL, &err);
    if (!*srv) {
        start_failed("", err.msg);
        return 1;
    }
    if (upg_adopt(UPG_MAIN, *srv, &err) < 0 || ps_server_start(*srv, &err) < 0) {
        start_failed("", err.msg);
        ps_server_free(*srv);
        return 1;
    }
    if (o->admin && (!(*admin = admin_new(o->admin, *srv, cfg, "poolsrv_echo", PROG, &err)) ||
                     upg_adopt(UPG_ADMIN, *admin, &err) < 0 || ps_server_start(*admin, &err) < 0)) {
        start_failed("--admin: ", err.msg);
        ps_server_free(*admin);
        ps_server_free(*srv);
        return 1;
    }
    return 0;
}

static void print_listeners(ps_server *s)
{
    int i;

    for (i = 0; i < ps_server_nlisteners(s); i++)
        printf("listening on %s\n", ps_server_listen_name(s, i));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    ps_config cfg;
    ps_handler h;
    ps_stats st;
    struct opts o = {.event_style = true};
    struct sigctx sc = {0};
    ps_server *admin = NULL;
    pthread_t sig_tid;
    int rc;

    g_journal = journal_stderr();
    ps_config_init(&cfg);
    cfg.log = log_stderr;
    cfg.log_level = PS_LOG_WARN;
    tlsf_init(&o.tls);
    parse_args(argc, argv, &cfg, &o);
    g_level = cfg.log_level;
    echo_handler_init(&h, o.event_style);
    h.busy_msg = BUSY_MSG;
    h.busy_len = strlen(BUSY_MSG);

    /* Block the signals before any thread exists; signal_thread takes them. */
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGUSR1);
    sigaddset(&sc.set, SIGHUP);
    sigaddset(&sc.set, SIGUSR2); /* internal: wakes signal_thread to exit */
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL);

    {
        char msg[400];
        bool usage;
        if (tlsf_apply(&o.tls, &cfg, msg, sizeof msg, &usage) < 0) {
            if (usage)
                die_usage("%s%s", msg, "");
            start_failed("", msg);
            return 1;
        }
    }
    sc.tls = cfg.tls;
    validate(&cfg, &h);
    if (upg_init(argv, o.pid_file, o.systemd_fds, upg_log) < 0 ||
        start_servers(&cfg, &h, &o, &sc.srv, &admin) != 0)
        return 1;
    /* Signals stay blocked in every thread: without this thread nothing
     * would take SIGINT/SIGTERM and only SIGKILL could stop the server
     * (a pids cgroup limit, RLIMIT_AS).  So a failure here fails the start,
     * before the server is announced. */
    sc.interval = o.stats_interval;
    sc.watchdog_ms = sdn_watchdog_ms();
    if ((rc = pthread_create(&sig_tid, NULL, signal_thread, &sc)) != 0) {
        start_failed("cannot create the signal thread: ", strerror(rc));
        ps_server_free(admin);
        ps_server_stop_now(sc.srv);
        ps_server_free(sc.srv);
        return 1;
    }
    print_listeners(sc.srv);
    if (admin)
        printf("admin on %s\n", ps_server_listen_name(admin, 0));
    fflush(stdout);
    upg_set_servers(sc.srv, admin);
    if (notify_ready(sc.srv) < 0) {
        ps_server_stop_now(sc.srv);
        rc = 1;
    }

    ps_server_wait(sc.srv);
    atomic_store(&sc.done, true);
    pthread_kill(sig_tid, SIGUSR2);
    pthread_join(sig_tid, NULL);
    ps_server_free(admin);

    ps_server_stats(sc.srv, &st);
    say(PS_LOG_INFO, "stopped: %llu connections accepted, %llu rejected, %llu bytes echoed",
        (unsigned long long)st.accepted, (unsigned long long)st.rejected + st.limit_refused,
        (unsigned long long)st.bytes_out);
    upg_exit();
    ps_server_free(sc.srv);
    ps_tls_free(cfg.tls);
    return rc;
}

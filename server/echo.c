/*
 * poolsrv-echo - the bundled echo server: flags in, library call, summary
 * out.  Everything it serves with is in the library; this file only parses
 * the command line, wires signals to ps_server_stop, and reports.
 */
#include "echo_handlers.h"
#include "poolsrv.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "poolsrv-echo"
#define DEFAULT_LISTEN "127.0.0.1:7000"
#define BUSY_MSG "busy: server at capacity, try again later\n"

static ps_server *g_server; /* for the signal handler only */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [options]\n"
            "Echo every byte back to each client, on a fixed pool of worker threads.\n"
            "\n"
            "  -l, --listen ADDR      listen address (repeatable): 127.0.0.1:7000, [::1]:7000,\n"
            "                         0.0.0.0:0 (port 0 = ephemeral); default " DEFAULT_LISTEN "\n"
            "  -m, --mode MODE        event (default) or blocking handler style\n"
            "  -w, --workers N        worker threads, 1..1024 (default 4)\n"
            "  -q, --queue N          work queue capacity, 1..1048576 (default 1024)\n"
            "  -p, --policy POLICY    when the queue is full: block (stop accepting, default)\n"
            "                         or reject (send a busy line and close)\n"
            "  -b, --backlog N        listen backlog (default 4096)\n"
            "  -u, --udp              also echo UDP datagrams on each TCP listener's port\n"
            "  -i, --idle-timeout MS  close connections idle this long (default 0 = never)\n"
            "  -d, --drain-timeout MS on SIGINT/SIGTERM, time given to open connections\n"
            "                         before they are shut down (default 5000, -1 = forever)\n"
            "  -v, --verbose          log connections-level events (debug)\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n"
            "\n"
            "Prints 'listening on ADDR' per listener once ready.  SIGINT or SIGTERM stops\n"
            "gracefully and prints a summary.  Exit status: 0 after a clean stop, 1 if the\n"
            "server could not start, 2 for bad usage.\n");
}

static _Noreturn void die_usage(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
    exit(2);
}

/* Strict integer in [lo, hi]; exits with a usage error naming the flag. */
static int parse_int(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    long n;
    char range[64];

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || n < lo || n > hi) {
        snprintf(range, sizeof range, "an integer from %ld to %ld", lo, hi);
        fprintf(stderr, PROG ": invalid %s value '%s': expected %s\n", flag, v, range);
        fprintf(stderr, "Try '" PROG " --help' for more information.\n");
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
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ " PROG " %s: %s\n", ts, now.tv_nsec / 1000000, names[level], msg);
}

static void on_signal(int sig)
{
    (void)sig;
    ps_server_stop(g_server); /* async-signal-safe */
}

static void parse_args(int argc, char **argv, ps_config *cfg, bool *event_style)
{
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},  {"mode", required_argument, 0, 'm'},
        {"workers", required_argument, 0, 'w'}, {"queue", required_argument, 0, 'q'},
        {"policy", required_argument, 0, 'p'},  {"backlog", required_argument, 0, 'b'},
        {"drain-timeout", required_argument, 0, 'd'},
        {"udp", no_argument, 0, 'u'},           {"idle-timeout", required_argument, 0, 'i'},
        {"verbose", no_argument, 0, 'v'},       {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},       {0, 0, 0, 0},
    };
    struct sockaddr_storage ss;
    socklen_t len;
    ps_err err;
    int c;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:m:w:q:p:b:d:ui:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (ps_addr_parse(optarg, &ss, &len, &err) < 0)
                die_usage("invalid --listen address: %s%s", err.msg, "");
            if (ps_config_add_listen(cfg, optarg) < 0)
                die_usage("too many --listen addresses (at most %s)%s", "16", "");
            break;
        case 'm':
            if (strcmp(optarg, "event") != 0 && strcmp(optarg, "blocking") != 0)
                die_usage("invalid --mode '%s': expected event or blocking%s", optarg, "");
            *event_style = strcmp(optarg, "event") == 0;
            break;
        case 'w': cfg->workers = parse_int("--workers", optarg, 1, 1024); break;
        case 'q': cfg->queue_capacity = parse_int("--queue", optarg, 1, 1 << 20); break;
        case 'b': cfg->backlog = parse_int("--backlog", optarg, 1, 1 << 20); break;
        case 'd': cfg->drain_timeout_ms = parse_int("--drain-timeout", optarg, -1, INT_MAX); break;
        case 'p':
            if (ps_policy_parse(optarg, &cfg->policy) < 0)
                die_usage("invalid --policy '%s': expected block or reject%s", optarg, "");
            break;
        case 'u': cfg->udp_same_port = true; break;
        case 'i': cfg->idle_timeout_ms = parse_int("--idle-timeout", optarg, 0, INT_MAX); break;
        case 'v': cfg->log_level = PS_LOG_DEBUG; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf(PROG " %s\n", ps_version()); exit(0);
        case ':': die_usage("option '%s' needs a value%s", argv[optind - 1], "");
        default: die_usage("unknown option '%s'%s", argv[optind - 1], "");
        }
    }
    if (optind < argc)
        die_usage("unexpected argument '%s'%s", argv[optind], "");
    if (cfg->nlisten == 0)
        ps_config_add_listen(cfg, DEFAULT_LISTEN);
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
    ps_err err;
    bool event_style = true;
    struct sigaction sa;
    int rc;

    ps_config_init(&cfg);
    cfg.log = log_stderr;
    cfg.log_level = PS_LOG_WARN;
    parse_args(argc, argv, &cfg, &event_style);
    echo_handler_init(&h, event_style);
    h.busy_msg = BUSY_MSG;
    h.busy_len = strlen(BUSY_MSG);

    g_server = ps_server_new(&cfg, &h, NULL, &err);
    if (!g_server) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if ((rc = ps_server_start(g_server, &err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        ps_server_free(g_server);
        return 1;
    }
    print_listeners(g_server);
    ps_server_wait(g_server);
    ps_server_stats(g_server, &st);
    fprintf(stderr,
            PROG ": stopped: %llu connections accepted, %llu rejected, %llu bytes echoed\n",
            (unsigned long long)st.accepted, (unsigned long long)st.rejected,
            (unsigned long long)st.bytes_out);
    ps_server_free(g_server);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * main.c - poolsrv-client: command line parsing and dispatch to a mode.
 * The flags and exit codes are documented in client/poolsrv-client.md.
 */
#include "client.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#ifndef PS_VERSION_STRING
#define PS_VERSION_STRING "unknown"
#endif

#define DEFAULT_TIMEOUT_S 5.0
#define DEFAULT_INTERVAL_MS 1000
#define DEFAULT_RETRIES 2

static const char usage_text[] =
    "Usage: " PC_PROG " [OPTIONS] HOST PORT [MESSAGE]\n"
    "       " PC_PROG " [OPTIONS] HOST:PORT [MESSAGE]   (IPv6: [ADDR]:PORT)\n"
    "       " PC_PROG " [OPTIONS] unix:PATH [MESSAGE]\n"
    "\n"
    "With MESSAGE, send it plus a newline and print the reply line(s).\n"
    "Without MESSAGE, stream: stdin to the server, the server to stdout;\n"
    "half-close at end of stdin, exit when the server closes.\n"
    "\n"
    "  -c, --count N       ping mode: N round trips with times and a summary\n"
    "  -i, --interval MS   ping mode: milliseconds between probes (default 1000)\n"
    "  -u, --udp           use UDP datagrams (MESSAGE, or one per stdin line)\n"
    "  -r, --retries N     UDP: resend N times when no reply comes (default 2)\n"
    "  -t, --timeout S     seconds for connect and for each reply (default 5, 0 = none)\n"
    "  -4, -6              use IPv4 / IPv6 addresses only\n"
    "      --tls           TLS over TCP or unix: (one-shot, stream, ping); the server's\n"
    "                      certificate must be valid for HOST (or --sni NAME)\n"
    "      --ca FILE       trust the CA certificates in FILE (PEM) instead of the\n"
    "                      system store\n"
    "      --sni NAME      send NAME as the server name and verify the certificate\n"
    "                      against it (default: HOST; an IP address is not sent)\n"
    "      --insecure      do not verify the server's certificate\n"
    "      --alpn LIST     offer these ALPN protocols, comma-separated (h2,http/1.1)\n"
    "  -v, --verbose       report attempts and bytes sent/received on stderr\n"
    "  -h, --help          show this help\n"
    "  -V, --version       show the version\n"
    "\n"
    "Exit status: 0 ok, 1 network error (resolve, connect, timeout, I/O, TLS\n"
    "handshake or certificate), 2 usage (also: --tls in a build without TLS).\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a usage error and return the usage exit status. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs(PC_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" PC_PROG " --help'.\n", stderr);
    return PC_EUSAGE;
}

/* Whole-string integer in [min, max].  Returns false if it is not. */
static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e6)
        return false;
    *out = v;
    return true;
}

/* Long options without a short form. */
enum { OPT_TLS = 256, OPT_CA, OPT_SNI, OPT_INSECURE, OPT_ALPN };

/* The TLS options.  Returns -1 to go on, or the usage exit status. */
static int parse_tls_flag(int ch, const char *arg, struct pc_opts *o)
{
    unsigned char wire[1024];

    switch (ch) {
    case OPT_TLS:
        if (!pc_tls_available())
            return usage_error("--tls: built without TLS support (OpenSSL was not found at "
                               "build time)");
        o->tls = true;
        return -1;
    case OPT_CA:
        o->ca_file = arg;
        return -1;
    case OPT_SNI:
        if (!*arg || strlen(arg) > 253)
            return usage_error("--sni needs a name of 1 to 253 bytes");
        o->sni = arg;
        return -1;
    case OPT_INSECURE:
        o->insecure = true;
        return -1;
    default: /* OPT_ALPN */
        if (pc_alpn_wire(arg, wire, sizeof(wire)) < 0)
            return usage_error("--alpn needs comma-separated names of 1 to 255 bytes "
                               "(at most 1 KiB in all), not '%s'", arg);
        o->alpn = arg;
        return -1;
    }
}

/* One option.  Returns -1 to go on, or an exit status (help, version, error). */
static int parse_flag(int ch, const char *arg, const char *bad, struct pc_opts *o)
{
    if (ch >= OPT_TLS && ch <= OPT_ALPN)
        return parse_tls_flag(ch, arg, o);
    switch (ch) {
    case 'c':
        if (!parse_long(arg, 1, 100000000, &o->count))
            return usage_error("--count needs a number from 1 to 100000000, not '%s'", arg);
        return -1;
    case 'i':
        if (!parse_long(arg, 0, 86400000, &o->interval_ms))
            return usage_error("--interval needs milliseconds (0 to 86400000), not '%s'", arg);
        return -1;
    case 'r':
        if (!parse_long(arg, 0, 1000, &o->retries))
            return usage_error("--retries needs a number from 0 to 1000, not '%s'", arg);
        return -1;
    case 't':
        if (!parse_seconds(arg, &o->timeout_s))
            return usage_error("--timeout needs seconds (0 to 1000000), not '%s'", arg);
        return -1;
    case 'u':
        o->udp = true;
        return -1;
    case 'v':
        o->verbose = true;
        return -1;
    case '4':
        o->family = AF_INET;
        return -1;
    case '6':
        o->family = AF_INET6;
        return -1;
    case 'h':
        fputs(usage_text, stdout);
        return PC_OK;
    case 'V':
        printf("%s %s\n", PC_PROG, PS_VERSION_STRING);
        return PC_OK;
    case ':':
        return usage_error("option '%s' needs a value", bad);
    default:
        return usage_error("unknown option '%s'", bad);
    }
}

/* The text of the option getopt just rejected. */
static const char *bad_option(char **argv, int ind, int ch)
{
    static char buf[3];

    if (ch == '?' && optopt) {
        snprintf(buf, sizeof(buf), "-%c", optopt);
        return buf;
    }
    return argv[ind - 1];
}

/* "HOST:PORT" or "[ADDR]:PORT", the form the servers print and take: split
 * in place (argv strings are writable).  Returns false for anything else: a
 * HOST of the two-argument form (a name, an IPv4 address, or a bare IPv6
 * address, which has more than one colon). */
static bool split_host_port(char *arg, const char **host, const char **port)
{
    char *colon = strrchr(arg, ':');

    if (arg[0] == '[') {
        char *close = strchr(arg, ']');
        if (!close || close[1] != ':')
            return false;
        *close = '\0';
        *host = arg + 1;
        *port = close + 2;
        return true;
    }
    if (!colon || strchr(arg, ':') != colon)
        return false;
    *colon = '\0';
    *host = arg;
    *port = colon + 1;
    return true;
}

/* HOST PORT [MESSAGE], HOST:PORT [MESSAGE] or unix:PATH [MESSAGE]. */
static int parse_target(int argc, char **argv, struct pc_opts *o)
{
    long port;
    int max;

    if (argc < 1)
        return usage_error("missing HOST and PORT");
    if (strncmp(argv[0], "unix:", 5) == 0) {
        o->unix_path = argv[0] + 5;
        if (!*o->unix_path || strlen(o->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return usage_error("bad Unix socket path '%s' (empty or too long)", argv[0]);
        max = 2;
    } else {
        if (split_host_port(argv[0], &o->host, &o->port)) {
            max = 2;
        } else {
            if (argc < 2)
                return usage_error("missing PORT after '%s' (HOST PORT, or HOST:PORT)", argv[0]);
            o->host = argv[0];
            o->port = argv[1];
            max = 3;
        }
        if (!*o->host)
            return usage_error("empty HOST");
        if (!*o->port)
            return usage_error("empty PORT");
        /* Digits must make a port number; anything else is a service name. */
        if (o->port[strspn(o->port, "0123456789")] == '\0' && !parse_long(o->port, 1, 65535, &port))
            return usage_error("bad PORT '%s' (1 to 65535)", o->port);
    }
    if (argc > max)
        return usage_error("too many arguments, starting at '%s' (quote MESSAGE)", argv[max]);
    o->message = argc == max ? argv[max - 1] : NULL;
    return -1;
}

/* TLS flags that make no sense together. */
static int check_tls(const struct pc_opts *o)
{
    if (!o->tls && (o->ca_file || o->sni || o->insecure || o->alpn))
        return usage_error("--ca, --sni, --insecure and --alpn need --tls");
    if (o->tls && o->udp)
        return usage_error("--tls does not apply to --udp (no DTLS)");
    if (o->insecure && o->ca_file)
        return usage_error("--insecure and --ca exclude each other");
    if (o->tls && o->unix_path && !o->sni && !o->insecure)
        return usage_error("--tls over unix: needs --sni NAME (the name to verify) or --insecure");
    return -1;
}

/* Flags that make no sense together. */
static int check_combination(const struct pc_opts *o, bool interval_set, bool retries_set)
{
    if (interval_set && o->count == 0)
        return usage_error("--interval needs --count");
    if (retries_set && !o->udp)
        return usage_error("--retries needs --udp");
    if (o->unix_path && o->udp)
        return usage_error("--udp does not apply to unix: sockets");
    if (o->unix_path && o->family != AF_UNSPEC)
        return usage_error("-4/-6 do not apply to unix: sockets");
    if (o->message && (o->udp || o->count) && strlen(o->message) > PC_DGRAM_MAX)
        return usage_error("MESSAGE is longer than %d bytes", PC_DGRAM_MAX);
    return check_tls(o);
}

static int parse_args(int argc, char **argv, struct pc_opts *o)
{
    static const struct option longopts[] = {
        { "count", required_argument, NULL, 'c' },
        { "interval", required_argument, NULL, 'i' },
        { "udp", no_argument, NULL, 'u' },
        { "retries", required_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "tls", no_argument, NULL, OPT_TLS },
        { "ca", required_argument, NULL, OPT_CA },
        { "sni", required_argument, NULL, OPT_SNI },
        { "insecure", no_argument, NULL, OPT_INSECURE },
        { "alpn", required_argument, NULL, OPT_ALPN },
        { NULL, 0, NULL, 0 },
    };
    bool interval_set = false, retries_set = false;
    int ch, rc;

    opterr = 0; /* we word the errors ourselves */
    while ((ch = getopt_long(argc, argv, ":c:i:ur:t:v46hV", longopts, NULL)) != -1) {
        interval_set |= ch == 'i';
        retries_set |= ch == 'r';
        rc =
            parse_flag(ch, optarg, ch == '?' || ch == ':' ? bad_option(argv, optind, ch) : NULL, o);
        if (rc >= 0)
            return rc;
    }
    rc = parse_target(argc - optind, argv + optind, o);
    if (rc >= 0)
        return rc;
    return check_combination(o, interval_set, retries_set);
}

int main(int argc, char **argv)
{
    struct pc_opts o = {
        .interval_ms = DEFAULT_INTERVAL_MS,
        .retries = DEFAULT_RETRIES,
        .timeout_s = DEFAULT_TIMEOUT_S,
        .family = AF_UNSPEC,
    };
    int rc = parse_args(argc, argv, &o);

    if (rc >= 0)
        return rc;
    if (o.count > 0)
        return pc_run_ping(&o);
    if (o.udp)
        return pc_run_udp(&o);
    if (o.message)
        return pc_run_oneshot(&o);
    return pc_run_stream(&o);
}

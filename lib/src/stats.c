/*
 * stats.c - counters as text: one log line, or Prometheus exposition
 * format (text/plain; version=0.0.4) for an admin endpoint.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FIELDS(X)                                                                        \
    X(accepted, counter, "Connections accepted and admitted")                            \
    X(rejected, counter, "Connections refused because the work queue was full")          \
    X(limit_refused, counter, "Connections refused by max_connections/max_per_client")   \
    X(accept_errors, counter, "accept() failures")                                       \
    X(accept_emfile, counter, "accept() failures for lack of descriptors")               \
    X(queue_full_waits, counter, "Times accepting paused on a full queue")               \
    X(closed, counter, "Connections closed")                                             \
    X(active, gauge, "Connections open now")                                             \
    X(queued, gauge, "Items in the work queue now")                                      \
    X(queue_high_water, gauge, "Most items ever in the work queue")                      \
    X(bytes_in, counter, "Bytes received")                                               \
    X(bytes_out, counter, "Bytes sent")                                                  \
    X(timeouts, counter, "Timeouts (calls and connections)")                             \
    X(io_errors, counter, "Connections ended by an I/O error")                           \
    X(forced_closes, counter, "Connections shut down at the drain deadline")             \
    X(datagrams, counter, "Datagrams received and queued")                               \
    X(datagrams_dropped, counter, "Datagrams dropped: work queue full")                  \
    X(datagrams_truncated, counter, "Datagrams dropped: larger than max_datagram")          \
    X(proxy_errors, counter, "Connections closed for a malformed PROXY header")

/* snprintf that tracks the total and never writes past cap. */
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(*n < cap ? buf + *n : NULL, *n < cap ? cap - *n : 0, fmt, ap);
    va_end(ap);
    if (k > 0)
        *n += (size_t)k;
}

int ps_stats_format(const ps_stats *st, ps_stats_format_kind kind, const char *prefix, char *buf,
                    size_t cap)
{
    size_t n = 0;

    if (!prefix)
        prefix = "poolsrv";
    if (cap > 0)
        buf[0] = '\0';
#define TEXT(f, type, help) put(buf, cap, &n, "%s%s=%llu", n ? " " : "", #f, \
                                (unsigned long long)st->f);
#define PROM(f, type, help)                                                               \
    put(buf, cap, &n, "# HELP %s_%s%s %s\n# TYPE %s_%s%s %s\n%s_%s%s %llu\n", prefix, #f,  \
        #type[0] == 'c' ? "_total" : "", help, prefix, #f, #type[0] == 'c' ? "_total" : "", \
        #type, prefix, #f, #type[0] == 'c' ? "_total" : "", (unsigned long long)st->f);
    if (kind == PS_STATS_TEXT) {
        FIELDS(TEXT)
    } else if (kind == PS_STATS_PROMETHEUS) {
        FIELDS(PROM)
    } else {
        return -EINVAL;
    }
#undef TEXT
#undef PROM
    if (n >= cap)
        return -ENOSPC;
    return (int)n;
}

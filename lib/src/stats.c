/* SPDX-License-Identifier: MIT */
/*
 * stats.c - counters and histograms as text: one log line, or Prometheus
 * exposition format (text/plain; version=0.0.4) for an admin endpoint.
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define FIELDS(X)                                                                        \
    X(accepted, counter, "Connections accepted and admitted")                            \
    X(rejected, counter, "Connections refused because the work queue was full")          \
    X(limit_refused, counter, "Connections refused by max_connections/max_per_client")   \
    X(accept_errors, counter, "accept() failures")                                       \
    X(accept_emfile, counter, "accept() failures for lack of descriptors")               \
    X(queue_full_waits, counter, "Times the queue was full at accept")                   \
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
    X(replies_refused_self, counter, "Datagram replies refused: the source is this server")   \
    X(replies_refused_port, counter, "Datagram replies refused: a service source port")      \
    X(replies_refused_rate, counter, "Datagram replies refused: the source's reply rate")    \
    X(proxy_errors, counter, "Connections closed for a malformed PROXY header")          \
    X(output_closes, counter, "Connections dropped at max_output")                      \
    X(connects, counter, "Outbound connections started (ps_server_connect)")            \
    X(connect_errors, counter, "Outbound connections that failed to connect")            \
    X(tls_handshakes, counter, "TLS handshakes completed")                               \
    X(tls_resumed, counter, "TLS handshakes that resumed a session")                     \
    X(tls_errors, counter, "Connections closed for a failed TLS handshake")              \
    X(workers, gauge, "Worker threads")                                                  \
    X(queue_capacity, gauge, "Work queue slots")

/* One row per field: its name, whether it is a counter (else a gauge),
 * its help text and where it sits in ps_stats. */
static const struct field {
    const char *name;
    bool counter;
    const char *help;
    size_t off;
} fields[] = {
#define ROW(f, type, help) {#f, #type[0] == 'c', help, offsetof(ps_stats, f)},
    FIELDS(ROW)
#undef ROW
};

/* The histograms: name (Prometheus: NAME_seconds), help, place. */
static const struct hist_field {
    const char *name;
    const char *help;
    size_t off;
} hists[] = {
    {"queue_wait", "Time from runnable (accepted, ready, requested) to the start of its turn",
     offsetof(ps_stats, queue_wait)},
    {"turn", "Time a worker spends on one turn (event: callbacks and I/O; blocking: serve)",
     offsetof(ps_stats, turn_time)},
    {"connection_lifetime", "Time from accept to close", offsetof(ps_stats, lifetime)},
};

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

static void put_field(char *buf, size_t cap, size_t *n, const ps_stats *st, const struct field *f,
                      ps_stats_format_kind kind, const char *prefix)
{
    unsigned long long v = *(const uint64_t *)((const char *)st + f->off);
    const char *sfx = f->counter ? "_total" : "";

    if (kind == PS_STATS_TEXT) {
        put(buf, cap, n, "%s%s=%llu", *n ? " " : "", f->name, v);
        return;
    }
    put(buf, cap, n, "# HELP %s_%s%s %s\n", prefix, f->name, sfx, f->help);
    put(buf, cap, n, "# TYPE %s_%s%s %s\n", prefix, f->name, sfx, f->counter ? "counter" : "gauge");
    put(buf, cap, n, "%s_%s%s %llu\n", prefix, f->name, sfx, v);
}

/* Prometheus: cumulative _bucket{le} series in seconds (the bounds are
 * 2^i us, exact in six decimals), then _sum and _count. */
static void put_hist(char *buf, size_t cap, size_t *n, const ps_stats *st,
                     const struct hist_field *f, ps_stats_format_kind kind, const char *prefix)
{
    const ps_histogram *h = (const ps_histogram *)((const char *)st + f->off);
    unsigned long long cum = 0;
    int i;

    if (kind == PS_STATS_TEXT) {
        put(buf, cap, n, "%s%s_count=%llu %s_sum_us=%llu", *n ? " " : "", f->name,
            (unsigned long long)h->count, f->name, (unsigned long long)(h->sum_ns / 1000));
        return;
    }
    put(buf, cap, n, "# HELP %s_%s_seconds %s\n", prefix, f->name, f->help);
    put(buf, cap, n, "# TYPE %s_%s_seconds histogram\n", prefix, f->name);
    for (i = 0; i < PS_HIST_BUCKETS - 1; i++) {
        cum += h->bucket[i];
        put(buf, cap, n, "%s_%s_seconds_bucket{le=\"%.6f\"} %llu\n", prefix, f->name,
            (double)PS_HIST_LE_NS(i) / 1e9, cum);
    }
    cum += h->bucket[PS_HIST_BUCKETS - 1];
    put(buf, cap, n, "%s_%s_seconds_bucket{le=\"+Inf\"} %llu\n", prefix, f->name, cum);
    put(buf, cap, n, "%s_%s_seconds_sum %.9f\n", prefix, f->name, (double)h->sum_ns / 1e9);
    put(buf, cap, n, "%s_%s_seconds_count %llu\n", prefix, f->name, cum);
}

/* Only the fields that lie within the caller's st_size (docs/abi.md): a
 * program built against an older header has no room for the newer ones. */
int ps__stats_format(const ps_stats *st, size_t st_size, ps_stats_format_kind kind,
                     const char *prefix, char *buf, size_t cap)
{
    size_t n = 0, i;

    if (kind != PS_STATS_TEXT && kind != PS_STATS_PROMETHEUS)
        return -EINVAL;
    if (cap > 0)
        buf[0] = '\0';
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].off + sizeof(uint64_t) <= st_size)
            put_field(buf, cap, &n, st, &fields[i], kind, prefix ? prefix : "poolsrv");
    for (i = 0; i < sizeof hists / sizeof hists[0]; i++)
        if (hists[i].off + sizeof(ps_histogram) <= st_size)
            put_hist(buf, cap, &n, st, &hists[i], kind, prefix ? prefix : "poolsrv");
    return n >= cap ? -ENOSPC : (int)n;
}

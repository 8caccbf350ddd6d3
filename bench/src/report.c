/* SPDX-License-Identifier: MIT */
/*
 * report.c - the end-of-run human table and the --json object.  Every
 * figure printed is computed from what the load threads measured.
 */
#include "bench.h"

#include <stdio.h>

static const char *mode_name(const struct opts *o)
{
    return o->mode == MODE_CONNECT_RATE ? "connect-rate" : o->mode == MODE_HOLD ? "hold" : "echo";
}

uint64_t errors_total(const struct tstats *s)
{
    uint64_t n = 0;
    for (int k = 0; k < ERR_KINDS; k++)
        n += s->errors[k];
    return n;
}

/* The run passed: no error of any kind, every connection came up, and
 * something was actually measured. */
bool result_ok(const struct bench *b, const struct result *r)
{
    const struct opts *o = &b->o;
    const struct tstats *s = r->sum;
    if (errors_total(s) != 0)
        return false;
    if (o->mode == MODE_HOLD)
        return r->connected_at_start == (uint64_t)o->connections;
    if (o->mode == MODE_CONNECT_RATE)
        return s->cycles > 0;
    return r->connected_at_start == (uint64_t)o->connections && s->msgs > 0;
}

/* Human-readable duration of a nanosecond value. */
static void fmt_ns(char *buf, size_t n, uint64_t ns)
{
    if (ns < 10000)
        snprintf(buf, n, "%.2f us", (double)ns / 1e3);
    else if (ns < 10000000)
        snprintf(buf, n, "%.1f us", (double)ns / 1e3);
    else if (ns < 10000000000ull)
        snprintf(buf, n, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, n, "%.2f s", (double)ns / 1e9);
}

static void print_hist_line(const char *label, const struct hist *h)
{
    static const double qs[] = {0.5, 0.9, 0.99, 0.999};
    static const char *const names[] = {"p50", "p90", "p99", "p99.9"};
    char v[32];
    if (h->count == 0) {
        printf("%-13s (none)\n", label);
        return;
    }
    printf("%-13s", label);
    for (int i = 0; i < 4; i++) {
        fmt_ns(v, sizeof(v), hist_quantile(h, qs[i]));
        printf(" %s %s ", names[i], v);
    }
    fmt_ns(v, sizeof(v), h->max);
    printf(" max %s  (n=%llu)\n", v, (unsigned long long)h->count);
}

/* --tls: what was agreed, and how many handshakes (per second of the run
 * when the run itself makes them: --connect-rate). */
static void report_tls_human(const struct opts *o, const struct result *r)
{
    const struct tstats *s = r->sum;
    printf("%-13s %s %s, %llu handshakes (%llu resumed)", "tls",
           s->tls_version ? s->tls_version : "-", s->tls_cipher ? s->tls_cipher : "-",
           (unsigned long long)s->handshakes, (unsigned long long)s->tls_resumed);
    if (o->mode == MODE_CONNECT_RATE)
        printf(", %.0f per s", (double)s->handshakes_run / (r->run_secs > 0 ? r->run_secs : 1e-9));
    printf("%s\n", o->ca_file ? ", certificates verified" : ", certificates not verified");
}

void report_human(const struct bench *b, const struct result *r)
{
    const struct opts *o = &b->o;
    const struct tstats *s = r->sum;
    printf("poolsrv-bench %s %s %s: connections %d, pipeline %d, ", o->target_str,
           o->udp ? "udp" : "tcp", mode_name(o), o->connections, o->pipeline);
    if (o->sizes.max)
        printf("size %zu..%zu B %s seed %llu, ", o->sizes.min, o->sizes.max,
               o->sizes.dist == DIST_LOG ? "log-uniform" : "uniform",
               (unsigned long long)o->sizes.seed);
    else
        printf("size %zu B, ", o->size);
    printf("threads %d", o->threads);
    if (o->rate > 0)
        printf(", rate %.0f msg/s", o->rate);
    printf("\n");
    if (o->mode == MODE_CONNECT_RATE)
        printf("%-13s %d slots, %llu connects in all\n", "connections", o->connections,
               (unsigned long long)s->connects_ok);
    else
        printf("%-13s %llu of %d up in %.2f s\n", "connections",
               (unsigned long long)r->connected_at_start, o->connections, r->connect_secs);
    print_hist_line(o->tls ? "connect+tls" : "connect", &s->conn_lat);
    if (o->tls)
        report_tls_human(o, r);
    if (o->mode == MODE_HOLD) {
        printf("%-13s %llu still up after %.2f s\n", "held", (unsigned long long)r->held_at_end,
               r->run_secs);
        if (r->server_rss_kb_before >= 0 && r->server_rss_kb_after >= 0 && r->held_at_end > 0)
            printf("%-13s %ld kB before, %ld kB holding, %.2f kB per connection\n", "server rss",
                   r->server_rss_kb_before, r->server_rss_kb_after,
                   (double)(r->server_rss_kb_after - r->server_rss_kb_before) /
                       (double)r->held_at_end);
    } else {
        double secs = r->run_secs > 0 ? r->run_secs : 1e-9;
        printf("%-13s %llu in %.2f s: %.0f msg/s, %.2f MB/s each way\n", "messages",
               (unsigned long long)s->msgs, r->run_secs, (double)s->msgs / secs,
               (double)s->bytes / secs / 1e6);
        if (o->mode == MODE_CONNECT_RATE)
            printf("%-13s %llu connect+echo+close cycles: %.0f per s\n", "cycles",
                   (unsigned long long)s->cycles, (double)s->cycles / secs);
        print_hist_line("latency", &s->lat);
    }
    if (s->stall_max_ns)
        printf("%-13s the bench itself did not run for up to %.0f ms (not held against "
               "the server's --timeout)\n",
               "bench stall", (double)s->stall_max_ns / 1e6);
    printf("%-13s", "errors");
    for (int k = 0; k < ERR_KINDS; k++)
        printf(" %s %llu", err_names[k], (unsigned long long)s->errors[k]);
    printf("\n%-13s %s\n", "result", result_ok(b, r) ? "OK" : "FAILED");
}

static void json_hist(const char *p, const struct hist *h)
{
    printf("\"%s_count\":%llu,\"%s_mean_us\":%.3f,\"%s_p50_us\":%.3f,\"%s_p90_us\":%.3f,"
           "\"%s_p99_us\":%.3f,\"%s_p999_us\":%.3f,\"%s_max_us\":%.3f,",
           p, (unsigned long long)h->count, p, hist_mean(h) / 1e3, p,
           (double)hist_quantile(h, 0.5) / 1e3, p, (double)hist_quantile(h, 0.9) / 1e3, p,
           (double)hist_quantile(h, 0.99) / 1e3, p, (double)hist_quantile(h, 0.999) / 1e3, p,
           (double)h->max / 1e3);
}

/* One flat JSON object on one line: keys are unique so that simple tools
 * (awk, grep) can pick values out without a JSON parser. */
void report_json(const struct bench *b, const struct result *r)
{
    const struct opts *o = &b->o;
    const struct tstats *s = r->sum;
    double secs = r->run_secs > 0 ? r->run_secs : 1e-9;
    printf("{\"tool\":\"poolsrv-bench\",\"target\":\"%s\",\"proto\":\"%s\",\"mode\":\"%s\","
           "\"connections\":%d,\"pipeline\":%d,\"size\":%zu,\"threads\":%d,"
           "\"duration_s\":%.3f,\"messages_limit\":%llu,\"rate\":%.1f,\"timeout_s\":%.3f,",
           o->target_str, o->udp ? "udp" : "tcp", mode_name(o), o->connections, o->pipeline,
           o->sizes.max ? (size_t)0 : o->size, o->threads, o->duration,
           (unsigned long long)o->messages, o->rate, o->timeout);
    /* Random sizes ("size" is then 0): the law and its seed, to replay the run. */
    printf("\"size_min\":%zu,\"size_max\":%zu,\"size_dist\":\"%s\",\"seed\":%llu,",
           o->sizes.max ? o->sizes.min : o->size, o->sizes.max ? o->sizes.max : o->size,
           o->sizes.max == 0           ? "fixed"
           : o->sizes.dist == DIST_LOG ? "log"
                                       : "uniform",
           (unsigned long long)o->sizes.seed);
    printf("\"connected\":%llu,\"connects_total\":%llu,\"connect_s\":%.3f,\"run_s\":%.3f,"
           "\"held\":%llu,\"server_rss_kb_before\":%ld,\"server_rss_kb_after\":%ld,",
           (unsigned long long)r->connected_at_start, (unsigned long long)s->connects_ok,
           r->connect_secs, r->run_secs, (unsigned long long)r->held_at_end,
           r->server_rss_kb_before, r->server_rss_kb_after);
    printf("\"messages\":%llu,\"msgs_per_sec\":%.1f,\"bytes\":%llu,\"mb_per_sec\":%.3f,"
           "\"cycles\":%llu,\"cycles_per_sec\":%.1f,",
           (unsigned long long)s->msgs, (double)s->msgs / secs, (unsigned long long)s->bytes,
           (double)s->bytes / secs / 1e6, (unsigned long long)s->cycles, (double)s->cycles / secs);
    printf("\"tls\":%s,\"tls_version\":\"%s\",\"tls_cipher\":\"%s\",\"handshakes\":%llu,"
           "\"handshakes_per_sec\":%.1f,\"tls_resumed\":%llu,",
           o->tls ? "true" : "false", s->tls_version ? s->tls_version : "",
           s->tls_cipher ? s->tls_cipher : "", (unsigned long long)s->handshakes,
           (double)s->handshakes_run / secs, (unsigned long long)s->tls_resumed);
    json_hist("lat", &s->lat);
    json_hist("conn", &s->conn_lat);
    for (int k = 0; k < ERR_KINDS; k++)
        printf("\"err_%s\":%llu,", err_names[k], (unsigned long long)s->errors[k]);
    printf("\"bench_stall_max_ms\":%.1f,", (double)s->stall_max_ns / 1e6);
    printf("\"errors_total\":%llu,\"ok\":%s}\n", (unsigned long long)errors_total(s),
           result_ok(b, r) ? "true" : "false");
}

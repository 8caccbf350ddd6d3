/* SPDX-License-Identifier: MIT */
/*
 * ping.c - --count N mode: N request/reply round trips, --interval ms apart
 * (measured send to send, like ping(8)), each printed with its round-trip
 * time, then a loss and min/avg/max/p99 summary.
 *
 * The probe is MESSAGE, or "ping SEQ" by default.  Over TCP it is sent with a
 * newline on one connection and the reply is the next line(s); a missing
 * reply ends the run.  Over UDP it is one datagram; a reply that does not
 * come within --timeout (after --retries resends) is counted as lost and the
 * run goes on.  Exit status is 0 only if every probe got its reply.
 */
#include "client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ping {
    const struct pc_opts *o;
    const char *peer;
    long sent, received;
    int64_t *rtt_ns; /* received round-trip times, o->count slots */
    char probe[PC_DGRAM_BUF];
    size_t probe_len;
};

static void make_probe(struct ping *p, long seq, bool newline)
{
    int n;

    if (p->o->message)
        n = snprintf(p->probe, sizeof(p->probe) - 1, "%s", p->o->message);
    else
        n = snprintf(p->probe, sizeof(p->probe) - 1, "ping %ld", seq);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(p->probe) - 2)
        n = (int)(sizeof(p->probe) - 2); /* main() keeps MESSAGE shorter */
    if (newline)
        p->probe[n++] = '\n';
    p->probe_len = (size_t)n;
}

/* Sleep until probe `seq` (from 1) is due. */
static void wait_turn(const struct ping *p, int64_t start_ns, long seq)
{
    int64_t due = start_ns + (int64_t)(seq - 1) * p->o->interval_ms * 1000000;
    struct timespec ts = { .tv_sec = due / 1000000000, .tv_nsec = due % 1000000000 };

    if (seq == 1 || due <= pc_now_ns())
        return;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void got_reply(struct ping *p, long seq, size_t bytes, int64_t rtt)
{
    p->rtt_ns[p->received++] = rtt;
    printf("%zu bytes from %s: seq=%ld time=%.3f ms\n", bytes, p->peer, seq, rtt / 1e6);
    fflush(stdout);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* The loss line, and min/avg/max/p99 (nearest rank) over the replies. */
static void summary(struct ping *p)
{
    int64_t sum = 0;
    size_t n = (size_t)p->received, rank;

    printf("--- %s ping statistics ---\n", p->peer);
    printf("%ld sent, %ld received, %.1f%% loss\n", p->sent, p->received,
           p->sent ? 100.0 * (double)(p->sent - p->received) / (double)p->sent : 0.0);
    if (n > 0) {
        qsort(p->rtt_ns, n, sizeof(*p->rtt_ns), cmp_i64);
        for (size_t i = 0; i < n; i++)
            sum += p->rtt_ns[i];
        rank = (size_t)ceil(0.99 * (double)n);
        printf("rtt min/avg/max/p99 = %.3f/%.3f/%.3f/%.3f ms\n", p->rtt_ns[0] / 1e6,
               (double)sum / (double)n / 1e6, p->rtt_ns[n - 1] / 1e6, p->rtt_ns[rank - 1] / 1e6);
    }
    fflush(stdout);
}

/* TCP/Unix: one connection; the first failure ends the run. */
static int ping_stream(struct ping *p, struct pc_conn *c)
{
    const struct pc_opts *o = p->o;
    int64_t start = pc_now_ns(), t0;
    size_t got;
    int rc;

    for (long seq = 1; seq <= o->count; seq++) {
        wait_turn(p, start, seq);
        make_probe(p, seq, true);
        t0 = pc_now_ns();
        p->sent++;
        rc = pc_send_all(c, p->probe, p->probe_len, pc_deadline(o->timeout_s));
        if (rc < 0) {
            pc_err_conn(c, rc, "sending to", o->timeout_s);
            return PC_ENET;
        }
        rc = pc_read_lines(c, o->message ? pc_request_lines(o->message) : 1,
                           pc_deadline(o->timeout_s), -1, &got);
        if (rc != 0) {
            if (rc == 1)
                pc_err("connection closed by %s before reply %ld", c->peer, seq);
            else
                pc_err_conn(c, rc, "waiting for reply from", o->timeout_s);
            return PC_ENET;
        }
        got_reply(p, seq, got, pc_now_ns() - t0);
    }
    return PC_OK;
}

/* UDP: lost probes are reported and counted; other errors end the run. */
static int ping_dgram(struct ping *p, struct pc_udp *u, char *reply)
{
    const struct pc_opts *o = p->o;
    int64_t start = pc_now_ns(), rtt;
    size_t rlen;
    int rc;

    for (long seq = 1; seq <= o->count; seq++) {
        wait_turn(p, start, seq);
        make_probe(p, seq, false);
        p->sent++;
        rc = pc_udp_request(o, u, p->probe, p->probe_len, reply, &rlen, &rtt);
        p->peer = u->c.peer; /* may have moved to the next address */
        if (rc == -ETIMEDOUT) {
            printf("no reply from %s: seq=%ld (timed out after %.1f s, %ld attempt%s)\n", p->peer,
                   seq, o->timeout_s, o->retries + 1, o->retries ? "s" : "");
            fflush(stdout);
            continue;
        }
        if (rc < 0) {
            pc_udp_report(o, u, rc);
            return PC_ENET;
        }
        got_reply(p, seq, rlen, rtt);
    }
    return p->received == p->sent ? PC_OK : PC_ENET;
}

static int run_stream(struct ping *p)
{
    struct pc_conn c;
    int status = pc_connect_stream(p->o, &c);

    if (status != PC_OK)
        return status;
    p->peer = c.peer;
    status = ping_stream(p, &c);
    summary(p);
    pc_report_bytes(p->o, &c);
    pc_close(&c);
    return status;
}

static int run_dgram(struct ping *p)
{
    struct pc_udp u;
    char *reply = malloc(PC_DGRAM_BUF);
    int status = PC_ENET;

    if (!reply) {
        pc_err("out of memory");
        return PC_ENET;
    }
    if (pc_udp_open(p->o, &u) != PC_OK)
        goto out_free_reply;
    p->peer = u.c.peer;
    status = ping_dgram(p, &u, reply);
    summary(p);
    pc_report_bytes(p->o, &u.c);
    pc_udp_close(&u);
out_free_reply:
    free(reply);
    return status;
}

int pc_run_ping(const struct pc_opts *o)
{
    struct ping *p = calloc(1, sizeof(*p));
    int status;

    if (!p || !(p->rtt_ns = calloc((size_t)o->count, sizeof(*p->rtt_ns)))) {
        pc_err("out of memory for %ld round-trip times", o->count);
        free(p);
        return PC_ENET;
    }
    p->o = o;
    status = o->udp ? run_dgram(p) : run_stream(p);
    free(p->rtt_ns);
    free(p);
    return status;
}

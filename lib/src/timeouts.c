/* SPDX-License-Identifier: MIT */
/*
 * timeouts.c - defences against slow and silent peers.
 *
 * Connection-level timeouts (idle, first byte, request with minimum rate,
 * stalled output, lifetime) are checked by one reactor scan over the
 * registry, a few times per shortest period.  Workers only store coarse
 * timestamps and byte counts (relaxed atomics, no syscalls) on the data
 * path.  An expired connection is shut down, not closed: its owner (a
 * worker blocked on it, or the next turn) sees end of stream and finishes
 * it the normal way, so the scan never races a worker for the descriptor.
 *
 * Blocking-style reads enforce the request timeout themselves
 * (ps__read_wait_budget), since the worker is the one waiting.
 */
#include "internal.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#define PS_SCAN_MIN_MS 10
#define PS_SCAN_MAX_MS 1000

static int min_pos(int a, int b)
{
    if (a <= 0)
        return b;
    if (b <= 0)
        return a;
    return a < b ? a : b;
}

void ps__timeouts_init(ps_server *s)
{
    const ps_config *c = &s->cfg;
    int p = 0;

    p = min_pos(p, c->idle_timeout_ms);
    p = min_pos(p, c->first_byte_timeout_ms);
    p = min_pos(p, s->event_style ? c->request_timeout_ms : 0);
    p = min_pos(p, s->event_style ? c->write_timeout_ms : 0);
    p = min_pos(p, c->max_lifetime_ms);
    p = min_pos(p, s->event_style ? c->linger_ms : 0);
    for (int i = 0; i < s->nls; i++)
        if (s->ls[i].proxy || s->ls[i].tls)
            p = min_pos(p, c->header_timeout_ms);
    if (p <= 0) {
        s->next_scan = 0;
        return;
    }
    p /= 4;
    s->scan_period = p < PS_SCAN_MIN_MS ? PS_SCAN_MIN_MS : p > PS_SCAN_MAX_MS ? PS_SCAN_MAX_MS : p;
    s->next_scan = ps__now_ms() + s->scan_period;
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Time allowed for a message that began at `since` with `got` bytes so far. */
static int64_t request_allowance(const ps_config *cfg, uint64_t got)
{
    int64_t t = cfg->request_timeout_ms;

    if (cfg->min_rate > 0)
        t += (int64_t)(got * 1000 / (uint64_t)cfg->min_rate);
    return t;
}

/* Input waiting in the kernel means the peer did its part and the server
 * is behind (say, every worker busy and the connection still queued): the
 * input-side timeouts must not blame the peer for that. */
static bool input_waiting(const ps_conn *c)
{
    int n = 0;

    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* Input-side: idle, first byte, PROXY header or TLS handshake,
 * request/min-rate. */
static bool input_expired(ps_server *s, ps_conn *c, int64_t now)
{
    const ps_config *cfg = &s->cfg;
    int64_t since = LD(c->partial_since);

    if (cfg->idle_timeout_ms > 0 && now - LD(c->last_active) >= cfg->idle_timeout_ms)
        return true;
    if (cfg->first_byte_timeout_ms > 0 && LD(c->total_in) == 0 && !c->outbound &&
        now - c->accepted_at >= cfg->first_byte_timeout_ms)
        return true;
    if (LD(c->header_pending) && cfg->header_timeout_ms > 0 &&
        now - c->accepted_at >= cfg->header_timeout_ms)
        return true;
    return s->event_style && cfg->request_timeout_ms > 0 && since &&
           now - since >= request_allowance(cfg, LD(c->total_in) - LD(c->partial_base));
}

static bool expired(ps_server *s, ps_conn *c, int64_t now)
{
    const ps_config *cfg = &s->cfg;
    int64_t since;

    if (cfg->max_lifetime_ms > 0 && now - c->accepted_at >= cfg->max_lifetime_ms)
        return true;
    since = LD(c->out_stall_since);
    if (s->event_style && cfg->write_timeout_ms > 0 && since &&
        now - since >= cfg->write_timeout_ms)
        return true;
    since = LD(c->linger_since);
    if (since && now - since >= cfg->linger_ms)
        return true;
    /* the syscall only for connections that look expired */
    return input_expired(s, c, now) && !input_waiting(c);
}

void ps__timeouts_scan(ps_server *s, int64_t now)
{
    ps_conn *c;
    uint64_t n = 0;

    pthread_mutex_lock(&s->reg_lock);
    for (c = s->reg_head; c; c = c->reg_next) {
        if (LD(c->timed_out) || !expired(s, c, now))
            continue;
        atomic_store_explicit(&c->timed_out, true, memory_order_relaxed);
        ps__count(&s->rst.timeouts, 1); /* counted before the peer can notice */
        shutdown(c->fd, SHUT_RDWR);
        n++;
    }
    pthread_mutex_unlock(&s->reg_lock);
    if (n) {
        ps__log(s, PS_LOG_DEBUG, "timeouts: shutting down %llu connection(s)",
                (unsigned long long)n);
    }
}

/* Blocking style: how long the next read may wait, given the request
 * timeout and minimum rate for this serve call; -1 when unlimited.
 * Returns 0 when the allowance is spent. */
int ps__read_wait_budget(ps_conn *c)
{
    const ps_config *cfg = &c->srv->cfg;
    int64_t left;

    if (cfg->request_timeout_ms <= 0)
        return -1;
    left = request_allowance(cfg, c->turn_in) - c->read_waited_ms;
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* SPDX-License-Identifier: MIT */
/*
 * case_silent.c - peers that say little or nothing: slowloris tricklers,
 * thousands of silent (half-open) connections, and a client that spoke but
 * waits in the server's queue.  Each run() starts the server with the flags
 * that are its defence (case_begin), attacks while the probe keeps talking,
 * checks what the attackers saw and returns; the runner calls case_end.
 * Every loop is bounded by a deadline and a count.
 */
#include "hostile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------ slowloris
 *
 * FAST tricklers send one byte every TRICKLE_MS: for an echo server that is
 * valid (slow) traffic, so they must stay open and have every byte echoed,
 * and in event mode they must cost no worker.  IDLE tricklers send one byte
 * and then nothing for longer than --idle-timeout: they must be cut, within
 * the timeout plus the scan period (timeout / 4) plus scheduling slack.
 * Blocking mode gets workers for all tricklers plus the probe, as a handler
 * that holds its worker while a connection is open would need (poolsrv-echo's
 * parks between bytes, so it would manage with fewer).
 */
#define TRICKLE_MS 100
#define SLOW_IDLE_MS 1000
#define SLOW_ATTACK_MS 3000
#define SLOW_IDLE_N 16

struct slow {
    int n, nfast, ep; /* connections [0, nfast) trickle, [nfast, n) go idle */
    int *fd;
    int64_t *next, *last, *cut; /* next byte due, last byte sent, when cut (0: open) */
    long *sent, *echoed;
};

static void slow_free(struct slow *s)
{
    if (s->ep >= 0)
        close(s->ep);
    if (s->fd)
        close_all(s->fd, s->n);
    free(s->fd), free(s->next), free(s->last), free(s->cut), free(s->sent), free(s->echoed);
}

static int slow_alloc(struct slow *s, int nfast, int nidle)
{
    size_t n = (size_t)nfast + (size_t)nidle;

    memset(s, 0, sizeof *s);
    s->ep = -1;
    s->n = (int)n;
    s->nfast = nfast;
    s->fd = fds_new(s->n);
    s->next = calloc(n, sizeof *s->next);
    s->last = calloc(n, sizeof *s->last);
    s->cut = calloc(n, sizeof *s->cut);
    s->sent = calloc(n, sizeof *s->sent);
    s->echoed = calloc(n, sizeof *s->echoed);
    return s->fd && s->next && s->last && s->cut && s->sent && s->echoed ? 0 : -1;
}

/* Send the bytes that are due: tricklers every TRICKLE_MS, idle ones once. */
static void slow_trickle(struct slow *s, int64_t now)
{
    int i;

    for (i = 0; i < s->n; i++) {
        if (s->cut[i] || s->next[i] > now)
            continue;
        if (send(s->fd[i], "x", 1, MSG_NOSIGNAL) == 1) {
            s->sent[i]++;
            s->last[i] = now;
        }
        s->next[i] = i < s->nfast ? s->next[i] + TRICKLE_MS : INT64_MAX;
    }
}

/* Take the echoes in; note connections the server closed. */
static void slow_collect(struct slow *s, int wait_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int k = epoll_wait(s->ep, evs, MAX_EVENTS, wait_ms), i;

    for (i = 0; i < k; i++) {
        int idx = (int)evs[i].data.u32;
        if (!s->cut[idx] && drain_input(s->fd[idx], &s->echoed[idx])) {
            s->cut[idx] = now_ms();
            epoll_ctl(s->ep, EPOLL_CTL_DEL, s->fd[idx], NULL);
        }
    }
}

/* After the attack: the tricklers' last bytes must come back.  Returns how
 * many tricklers are short of echoes. */
static int slow_settle(struct slow *s)
{
    int i, n = 0;

    for (i = 0; i < s->nfast; i++) {
        int64_t dl = now_ms() + scaled(1000);
        while (!s->cut[i] && s->echoed[i] < s->sent[i] && now_ms() < dl) {
            char b[64];
            ssize_t r = recv_some(s->fd[i], b, sizeof b, dl);
            if (r <= 0)
                break;
            s->echoed[i] += r;
        }
        if (!s->cut[i] && s->echoed[i] != s->sent[i])
            n++;
    }
    return n;
}

static void slow_verdict(ctx *c, struct slow *s, int short_echo)
{
    int64_t min_cut = INT64_MAX, max_cut = 0;
    int i, fast_cut = 0, idle_cut = 0, nidle = s->n - s->nfast;

    for (i = 0; i < s->n; i++) {
        int64_t d = s->cut[i] - s->last[i];
        if (!s->cut[i] || i < s->nfast) {
            fast_cut += s->cut[i] != 0;
            continue;
        }
        idle_cut++;
        min_cut = d < min_cut ? d : min_cut;
        max_cut = d > max_cut ? d : max_cut;
    }
    addf(c, "%d tricklers (1 B/%d ms) open %d, all echoed %s; %d idle cut %d after %lld..%lld ms",
         s->nfast, TRICKLE_MS, s->nfast - fast_cut, short_echo ? "NO" : "yes", nidle, idle_cut,
         idle_cut ? (long long)min_cut : 0LL, (long long)max_cut);
    if (fast_cut)
        fail(c, "%d tricklers sending every %d ms were cut (idle timeout %d ms)", fast_cut,
             TRICKLE_MS, SLOW_IDLE_MS);
    if (short_echo)
        fail(c, "%d tricklers did not get all their bytes echoed", short_echo);
    if (idle_cut < nidle)
        fail(c, "only %d of %d idle connections cut by --idle-timeout %d", idle_cut, nidle,
             SLOW_IDLE_MS);
    if (idle_cut && min_cut < SLOW_IDLE_MS - 50)
        fail(c, "an idle connection was cut after %lld ms, before the %d ms timeout",
             (long long)min_cut, SLOW_IDLE_MS);
    if (max_cut > SLOW_IDLE_MS + SLOW_IDLE_MS / 4 + scaled(600))
        fail(c, "an idle connection was cut only after %lld ms", (long long)max_cut);
}

void run_slowloris(ctx *c)
{
    int nfast = c->blocking ? 64 : 200, i, err;
    char workers[16];
    const char *extra[] = {"--idle-timeout", "1000", "--first-byte-timeout", "1000", "--workers",
                           workers,          NULL};
    uint64_t rs = 0x5107105;
    int64_t t0;
    struct slow s;

    snprintf(workers, sizeof workers, "%d", nfast + SLOW_IDLE_N + 8);
    if (!c->blocking)
        extra[4] = NULL; /* event style: the base worker count */
    if (slow_alloc(&s, nfast, SLOW_IDLE_N) < 0 || case_begin(c, extra, 0) < 0)
        goto out;
    if (open_many(c->s.port, s.fd, s.n, 256, now_ms() + scaled(5000), &err) < s.n) {
        fail(c, "could not open %d connections: %s", s.n, strerror(err));
        goto out;
    }
    s.ep = epoll_create1(EPOLL_CLOEXEC);
    t0 = now_ms();
    for (i = 0; i < s.n; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(s.ep, EPOLL_CTL_ADD, s.fd[i], &ev);
        s.next[i] = i < nfast ? t0 + (int64_t)(rnd_next(&rs) % TRICKLE_MS) : t0;
    }
    while (now_ms() < t0 + SLOW_ATTACK_MS) {
        slow_trickle(&s, now_ms());
        slow_collect(&s, 5);
    }
    slow_verdict(c, &s, slow_settle(&s));
out:
    slow_free(&s);
}

/* ------------------------------------------------------------- half-open
 *
 * HALF_N connections connect and stay silent.  Without a first-byte timeout
 * they hold HALF_HOLD_MS while the probe must stay served and none may be
 * cut (blocking style too: poolsrv-echo parks a connection before its first
 * byte); with --first-byte-timeout each must be cut within the timeout plus
 * one scan period plus slack.  The blocking cut variant runs with a queue
 * (4096) that holds them all: the timeout starts at accept, and connections
 * left in the kernel backlog would be cut in rounds.
 */
#define HALF_N 2000
#define HALF_HOLD_MS 2000
#define HALF_FIRST_BYTE_MS 1000

static void run_halfopen(ctx *c, bool cut_variant)
{
    const char *extra_cut[] = {
        "--first-byte-timeout", "1000", "--queue", "4096", "--workers", "16", NULL};
    int *fds = fds_new(HALF_N), ep = -1, i, err, opened, ncut = 0, maxfds;
    int64_t t0, deadline, first = 0, last = 0, t_open = 0, limit;

    if (!fds)
        return;
    if (!c->blocking)
        extra_cut[2] = NULL;
    /* Blocking: a new client waits for a worker until the silent ones are
     * cut (timeout + one scan period), then the usual bound.  One accepted
     * during the burst waits in the queue as long as they do, and must not
     * be cut itself: it has spoken (see queued-first-byte). */
    if (case_begin(c, cut_variant ? extra_cut : NULL,
                   c->blocking && cut_variant
                       ? (int)(HALF_FIRST_BYTE_MS + HALF_FIRST_BYTE_MS / 4 + scaled(2000))
                       : 0) < 0)
        goto out;
    t0 = now_ms();
    opened = open_many(c->s.port, fds, HALF_N, 512, t0 + scaled(10000), &err);
    t_open = now_ms() - t0;
    if (opened < HALF_N) {
        fail(c, "only %d of %d connected: %s", opened, HALF_N, strerror(err));
        goto out;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    for (i = 0; i < HALF_N; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    deadline = cut_variant ? t0 + HALF_FIRST_BYTE_MS + scaled(3000) : now_ms() + HALF_HOLD_MS;
    while (now_ms() < deadline && (!cut_variant || ncut < HALF_N)) {
        struct epoll_event evs[MAX_EVENTS];
        int k = epoll_wait(ep, evs, MAX_EVENTS, 20);
        for (i = 0; i < k; i++) {
            int idx = (int)evs[i].data.u32;
            if (drain_input(fds[idx], NULL)) {
                int64_t t = now_ms() - t0;
                if (!ncut++)
                    first = t;
                last = t;
                epoll_ctl(ep, EPOLL_CTL_DEL, fds[idx], NULL);
                close(fds[idx]);
                fds[idx] = -1;
            }
        }
    }
    maxfds = atomic_load(&c->mon.max_fds);
    if (cut_variant) {
        addf(c,
             "%d silent connections, %d cut by --first-byte-timeout %d between %lld and "
             "%lld ms after the first connect",
             HALF_N, ncut, HALF_FIRST_BYTE_MS, (long long)first, (long long)last);
        if (ncut < HALF_N)
            fail(c, "%d of %d silent connections not cut", HALF_N - ncut, HALF_N);
        if (ncut && first < HALF_FIRST_BYTE_MS - 50)
            fail(c, "a silent connection was cut after %lld ms, before the timeout",
                 (long long)first);
        /* the last connected t_open after the first; one scan period late at most */
        limit = t_open + HALF_FIRST_BYTE_MS + HALF_FIRST_BYTE_MS / 4 + scaled(1000);
        if (last > limit)
            fail(c,
                 "the last silent connection was cut after %lld ms (connects took %lld ms, "
                 "bound %lld)",
                 (long long)last, (long long)t_open, (long long)limit);
    } else {
        addf(c, "%d silent connections held %d ms, server held up to %d descriptors, %d cut",
             HALF_N, HALF_HOLD_MS, maxfds, ncut);
        if (ncut)
            fail(c, "%d silent connections were cut with no timeout configured", ncut);
    }
out:
    if (ep >= 0)
        close(ep);
    close_all(fds, HALF_N);
    free(fds);
}

/* Blocking style too: poolsrv-echo parks a connection before its first
 * byte, so silent connections hold no worker in either style. */
void run_halfopen_hold(ctx *c)
{
    run_halfopen(c, false);
}

void run_halfopen_cut(ctx *c)
{
    run_halfopen(c, true);
}

/* ---------------------------------------------------- queued first byte
 *
 * A client that sends its first bytes at once must not be cut by
 * --first-byte-timeout only because it waited in the server's own work
 * queue for a worker.  Blocking style, 2 workers, both taken by clients A1
 * and A2 that send a stream and do not read it back: each worker blocks
 * writing the echo (poolsrv-echo parks idle connections, so a quiet client
 * would hold none).  Client B connects and sends a line at once, then
 * waits in the queue.  After the timeout plus a scan period the holders
 * close, the workers free, and B must get its echo.
 */
#define QFB_TIMEOUT_MS 500 /* short: the probe waits for a worker too */
#define QFB_HOLDERS 2

/* Send a stream that is never read back, until the server stops taking it
 * (its worker is then blocked writing the echo); -1 if it never stops. */
static int hold_worker(int port, int64_t t0)
{
    static char junk[1 << 16];
    int fd = tcp_connect(port, t0 + scaled(2000));
    int64_t until = now_ms() + scaled(3000);

    if (fd < 0)
        return -1;
    while (now_ms() < until)
        if (send_all(fd, junk, sizeof junk, now_ms() + 100) == -ETIMEDOUT)
            return fd; /* 100 ms without room: the worker is stuck in its write */
    close(fd);
    return -1;
}

void run_queued_first_byte(ctx *c)
{
    const char *extra[] = {"--first-byte-timeout", "500", "--workers", "2", NULL};
    char line[] = "queued first byte\n", back[sizeof line];
    int a[QFB_HOLDERS], b = -1, rc, i;
    int64_t t0, hold_until;
    ssize_t r;

    if (!c->blocking) {
        printf("skip %s %s: an event-style turn never holds a worker while waiting\n", c->label,
               c->name);
        c->skipped = true;
        return;
    }
    for (i = 0; i < QFB_HOLDERS; i++)
        a[i] = -1;
    c->no_fresh = true; /* a fresh probe connection would queue like B */
    if (case_begin(c, extra, 0) < 0)
        return;
    t0 = now_ms();
    for (i = 0; i < QFB_HOLDERS; i++)
        if ((a[i] = hold_worker(c->s.port, t0)) < 0) {
            fail(c, "client A%d could not take a worker", i + 1);
            goto out;
        }
    b = tcp_connect(c->s.port, t0 + scaled(2000));
    if (b < 0 || send_all(b, line, sizeof line - 1, now_ms() + scaled(2000)) < 0) {
        fail(c, "client B could not connect and send");
        goto out;
    }
    /* B waits while both workers are taken: it must not be cut meanwhile. */
    hold_until = now_ms() + QFB_TIMEOUT_MS + QFB_TIMEOUT_MS / 4 + 250;
    r = recv_some(b, back, sizeof back, hold_until);
    if (r != -ETIMEDOUT) {
        addf(c, "B, which sent %zu bytes at once, got %s after %lld ms in the queue",
             sizeof line - 1, r == 0 ? "end of stream" : r > 0 ? "its echo" : "an error",
             (long long)(now_ms() - t0));
        fail(c, r > 0 ? "B was served while both workers should have been held (the case "
                        "did not set up what it tests)"
                      : "--first-byte-timeout cut a client that had sent its first bytes at "
                        "once but waited in the work queue (server-side delay counted as "
                        "peer silence)");
        goto out;
    }
    for (i = 0; i < QFB_HOLDERS; i++) {
        close(a[i]); /* unread data: a reset, which ends the blocked write */
        a[i] = -1;
    }
    rc = recv_exact(b, back, sizeof line - 1, now_ms() + scaled(2000));
    if (rc < 0 || memcmp(back, line, sizeof line - 1) != 0)
        fail(c, "B got no echo once a worker was free: %s", rc < 0 ? strerror(-rc) : "differs");
    else
        addf(c, "B waited %lld ms in the queue, then was served", (long long)(now_ms() - t0));
out:
    for (i = 0; i < QFB_HOLDERS; i++)
        if (a[i] >= 0)
            close(a[i]);
    if (b >= 0)
        close(b);
}

/* ------------------------------------------------------- idle, not early
 *
 * --idle-timeout promises "no input or output at all for this long".  Blocking
 * style, the reactor quiet (the probe keeps to its persistent connection,
 * which a worker serves): IDLE_N clients connect together, then each sends
 * one byte at its own moment spread over IDLE_SPREAD_MS (more than the
 * timeout's scan period, so the moments fall at every phase of it), reads the
 * echo and stays silent.  No client may be cut less than the timeout after
 * its byte (IDLE_SLACK_MS for clock granularity).
 */
#define IDLE_N 8
#define IDLE_TIMEOUT_MS 1000
#define IDLE_SPREAD_MS 400
#define IDLE_SLACK_MS 20

void run_idle_not_early(ctx *c)
{
    const char *extra[] = {"--idle-timeout", "1000", "--workers", "12", NULL};
    int fds[IDLE_N], i, err, ncut = 0;
    int64_t sent[IDLE_N], cut[IDLE_N] = {0}, t0, lo = INT64_MAX, hi = 0;
    char b;

    c->no_fresh = true; /* keep the server otherwise quiet */
    memset(fds, -1, sizeof fds);
    if (case_begin(c, extra, 0) < 0)
        return;
    if (open_many(c->s.port, fds, IDLE_N, IDLE_N, now_ms() + scaled(2000), &err) < IDLE_N) {
        fail(c, "connect: %s", strerror(err));
        goto out;
    }
    t0 = now_ms();
    for (i = 0; i < IDLE_N; i++) { /* one byte each, at staggered moments */
        int64_t at = t0 + 300 + i * IDLE_SPREAD_MS / IDLE_N;
        while (now_ms() < at)
            sleep_ms((int)(at - now_ms()));
        sent[i] = now_ms();
        if (send_all(fds[i], "x", 1, sent[i] + scaled(1000)) < 0 ||
            recv_exact(fds[i], &b, 1, sent[i] + scaled(1000)) < 0) {
            fail(c, "client %d got no echo", i);
            goto out;
        }
    }
    for (i = 0; i < IDLE_N; i++) { /* then wait for each to be cut */
        ssize_t r = recv_some(fds[i], &b, 1, sent[i] + IDLE_TIMEOUT_MS + scaled(1500));
        if (r == -ETIMEDOUT)
            continue;
        cut[i] = now_ms();
        ncut++;
        lo = cut[i] - sent[i] < lo ? cut[i] - sent[i] : lo;
        hi = cut[i] - sent[i] > hi ? cut[i] - sent[i] : hi;
    }
    addf(c, "%d clients idle after one byte, cut after %lld..%lld ms (timeout %d)", IDLE_N,
         ncut ? (long long)lo : 0LL, (long long)hi, IDLE_TIMEOUT_MS);
    if (ncut < IDLE_N)
        fail(c, "%d of %d idle clients not cut", IDLE_N - ncut, IDLE_N);
    if (ncut && lo < IDLE_TIMEOUT_MS - IDLE_SLACK_MS)
        fail(c, "a client was cut %lld ms after its last byte, before the %d ms idle timeout",
             (long long)lo, IDLE_TIMEOUT_MS);
out:
    close_all(fds, IDLE_N);
}

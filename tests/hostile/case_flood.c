/* SPDX-License-Identifier: MIT */
/*
 * case_flood.c - many connections fast: a connect flood against a small work
 * queue under both full-queue policies, and peers that close at once.
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

/* -------------------------------------------------------- connect flood
 *
 * FLOOD_N clients, up to FLOOD_INFLIGHT at once, against --queue 4: each
 * connects, sends one 16-byte line and waits for the echo (or, with
 * --policy reject, the busy line or a reset: a refused client may see a
 * reset when its line arrived before the server's close).  Every client must
 * get an answer of one of these kinds; with `block` all of them are echoed.
 * The probe's fresh connections queue in the kernel backlog behind the
 * flood with `block`, so their bound is the time to work through a backlog
 * of FLOOD_INFLIGHT clients (measured: well under the bound used).
 */
#define FLOOD_N 3000
#define FLOOD_MAX 8000 /* clients at most, if FLOOD_N took under ATTACK_MIN_MS */
#define FLOOD_INFLIGHT 1000
#define FLOOD_MSG 16

enum fl_state { FL_FREE, FL_CONNECTING, FL_WAITING };
enum fl_outcome { FO_NONE, FO_ECHOED, FO_BUSY, FO_RESET, FO_EOF, FO_REFUSED, FO_WRONG, FO_N };

struct flood {
    int ep, port, started, finished;
    int64_t t0;
    int count[FO_N];
    int fd[FLOOD_INFLIGHT], id[FLOOD_INFLIGHT], gotn[FLOOD_INFLIGHT];
    unsigned char st[FLOOD_INFLIGHT];
    char got[FLOOD_INFLIGHT][64];
};

/* FLOOD_N clients, and more until ATTACK_MIN_MS has passed. */
static bool flood_more(const struct flood *f)
{
    return f->started < FLOOD_N || (now_ms() - f->t0 < ATTACK_MIN_MS && f->started < FLOOD_MAX);
}

static void flood_msg(const struct flood *f, int s, char *msg, size_t cap)
{
    snprintf(msg, cap, "flood%08u..\n", (unsigned)f->id[s] % 100000000u);
}

static void flood_done(struct flood *f, int s, enum fl_outcome o)
{
    f->count[o]++;
    f->finished++;
    if (f->fd[s] >= 0) {
        epoll_ctl(f->ep, EPOLL_CTL_DEL, f->fd[s], NULL);
        close(f->fd[s]);
    }
    f->fd[s] = -1;
    f->st[s] = FL_FREE;
}

/* Start clients in the free slots. */
static void flood_launch(struct flood *f)
{
    int i;

    for (i = 0; i < FLOOD_INFLIGHT && flood_more(f); i++) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        if (f->st[i] != FL_FREE)
            continue;
        f->id[i] = f->started++;
        f->gotn[i] = 0;
        f->fd[i] = tcp_connect_start(f->port);
        if (f->fd[i] < 0) {
            flood_done(f, i, FO_REFUSED);
            continue;
        }
        f->st[i] = FL_CONNECTING;
        epoll_ctl(f->ep, EPOLL_CTL_ADD, f->fd[i], &ev);
    }
}

/* What the server's answer so far amounts to (FO_NONE: not complete yet). */
static enum fl_outcome flood_read(struct flood *f, int s)
{
    char msg[32], *got = f->got[s];
    ssize_t r = recv(f->fd[s], got + f->gotn[s], sizeof f->got[s] - (size_t)f->gotn[s], 0);
    int e = r < 0 ? errno : 0, n;

    if (r > 0)
        f->gotn[s] += (int)r;
    n = f->gotn[s];
    flood_msg(f, s, msg, sizeof msg);
    if (n >= FLOOD_MSG && memcmp(got, msg, FLOOD_MSG) == 0)
        return FO_ECHOED;
    if (n >= 4 && memcmp(got, "busy", 4) == 0 && (r <= 0 || memchr(got, '\n', (size_t)n)))
        return FO_BUSY; /* the reject policy's line, complete or cut by the close */
    if (n >= FLOOD_MSG || (r == 0 && n > 0))
        return FO_WRONG;
    if (r == 0)
        return FO_EOF;
    return r < 0 && e != EAGAIN && e != EWOULDBLOCK ? FO_RESET : FO_NONE;
}

static void flood_event(struct flood *f, int s)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)s};
    enum fl_outcome o;
    char msg[32];

    if (f->st[s] == FL_CONNECTING) {
        flood_msg(f, s, msg, sizeof msg);
        if (tcp_connect_result(f->fd[s]) < 0) {
            flood_done(f, s, FO_REFUSED);
        } else if (send(f->fd[s], msg, FLOOD_MSG, MSG_NOSIGNAL) != FLOOD_MSG) {
            flood_done(f, s, FO_RESET);
        } else {
            f->st[s] = FL_WAITING;
            epoll_ctl(f->ep, EPOLL_CTL_MOD, f->fd[s], &ev);
        }
        return;
    }
    if ((o = flood_read(f, s)) != FO_NONE)
        flood_done(f, s, o);
}

static void flood_verdict(ctx *c, const struct flood *f, const char *policy)
{
    const int *n = f->count;

    addf(c,
         "%d clients (%d at once) in %lld ms: %d echoed, %d busy, %d reset, %d eof, "
         "%d refused, %d unanswered; server rejected=%lld",
         f->started, FLOOD_INFLIGHT, (long long)(now_ms() - f->t0), n[FO_ECHOED], n[FO_BUSY],
         n[FO_RESET], n[FO_EOF], n[FO_REFUSED], f->started - f->finished,
         c->is_echo ? admin_stat(c->s.admin_port, "rejected") : -1LL);
    if (f->finished < f->started || f->started < FLOOD_N)
        fail(c, "%d flood clients got no answer within %lld ms", f->started - f->finished,
             (long long)scaled(20000));
    if (n[FO_WRONG])
        fail(c, "%d flood clients got a wrong reply", n[FO_WRONG]);
    if (n[FO_REFUSED])
        fail(c, "%d flood connects were refused outright", n[FO_REFUSED]);
    if (strcmp(policy, "block") == 0 && n[FO_ECHOED] != f->started)
        fail(c, "with --policy block every client must be echoed (%d of %d)", n[FO_ECHOED],
             f->started);
}

static void run_flood(ctx *c, const char *policy)
{
    const char *extra[] = {"--queue", "4", "--policy", policy, "--workers", "16", NULL};
    struct flood *f = calloc(1, sizeof *f);
    int64_t deadline;

    if (!f)
        return;
    if (!c->blocking)
        extra[4] = NULL;
    c->busy_ok = strcmp(policy, "reject") == 0; /* refusing new clients is that policy */
    if (case_begin(c, extra, 0) < 0)
        goto out;
    memset(f->fd, -1, sizeof f->fd);
    f->port = c->s.port;
    f->ep = epoll_create1(EPOLL_CLOEXEC);
    f->t0 = now_ms();
    deadline = f->t0 + scaled(20000);
    while ((flood_more(f) || f->finished < f->started) && now_ms() < deadline) {
        struct epoll_event evs[MAX_EVENTS];
        int k, i;
        flood_launch(f);
        k = epoll_wait(f->ep, evs, MAX_EVENTS, 10);
        for (i = 0; i < k; i++)
            flood_event(f, (int)evs[i].data.u32);
    }
    close(f->ep);
    close_all(f->fd, FLOOD_INFLIGHT);
    flood_verdict(c, f, policy);
out:
    free(f);
}

void run_flood_block(ctx *c)
{
    run_flood(c, "block");
}

void run_flood_reject(ctx *c)
{
    run_flood(c, "reject");
}

/* --------------------------------------------------- close right away
 *
 * CLOSE_N peers close at once: even ones right after connect() returned
 * (often before the handshake is done), odd ones as soon as it completed.
 */
#define CLOSE_N 3000
#define CLOSE_MAX 8000

#define CLOSE_INFLIGHT 256

struct closer {
    int ep, port, started, target, closed, errors;
    int slot[CLOSE_INFLIGHT]; /* the odd ones, until their connect completes */
};

/* Start connects (up to the target); close the even ones at once. */
static void close_launch(struct closer *k)
{
    int i;

    for (i = 0; i < CLOSE_INFLIGHT && k->started < k->target; i++) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        int fd;
        if (k->slot[i] >= 0)
            continue;
        fd = tcp_connect_start(k->port);
        k->started++;
        if (fd < 0 || k->started % 2 == 0) {
            k->errors += fd < 0;
            k->closed++;
            if (fd >= 0)
                close(fd);
            continue;
        }
        k->slot[i] = fd;
        epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

void run_close_immediately(ctx *c)
{
    struct closer k = {.target = CLOSE_MAX};
    int64_t t0, deadline;
    long long acc0 = -1, acc1;
    int i;

    memset(k.slot, -1, sizeof k.slot);
    if (case_begin(c, NULL, 0) < 0)
        return;
    if (c->is_echo)
        acc0 = admin_stat(c->s.admin_port, "accepted");
    k.port = c->s.port;
    k.ep = epoll_create1(EPOLL_CLOEXEC);
    t0 = now_ms();
    deadline = t0 + scaled(15000);
    while (k.closed < k.target && now_ms() < deadline) {
        struct epoll_event evs[MAX_EVENTS];
        int n;
        if (k.started >= CLOSE_N && now_ms() - t0 >= ATTACK_MIN_MS)
            k.target = k.started;
        close_launch(&k);
        n = epoll_wait(k.ep, evs, MAX_EVENTS, 10);
        for (i = 0; i < n; i++) { /* the odd ones: close as soon as connected */
            int s = (int)evs[i].data.u32;
            close(k.slot[s]); /* also leaves the epoll set */
            k.slot[s] = -1;
            k.closed++;
        }
    }
    close_all(k.slot, CLOSE_INFLIGHT);
    close(k.ep);
    addf(c, "%d connect+close in %lld ms (%d connect errors)", k.started,
         (long long)(now_ms() - t0), k.errors);
    if (acc0 >= 0 && (acc1 = admin_stat(c->s.admin_port, "accepted")) >= 0)
        addf(c, "server accepted +%lld", acc1 - acc0);
    if (k.closed < k.target)
        fail(c, "%d connects did not complete within %lld ms", k.target - k.closed,
             (long long)scaled(15000));
    if (k.errors)
        fail(c, "%d connects failed", k.errors);
}

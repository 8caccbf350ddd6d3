/* SPDX-License-Identifier: MIT */
/*
 * timer.c - one binary min-heap of timers per server, run by the reactor:
 * connections' timers and server timers (ps_timer_*).
 *
 * A connection's timer (ps_conn_timer) lives in the connection record, so
 * arming it allocates nothing but the heap's slot array, which grows to the
 * number of timers armed at once and stays.  Set, cancel and expiry are
 * O(log n) under timer_lock; the reactor sleeps until the root's deadline.
 * An expiry is a request in the connection's mailbox (conn.c), like a post:
 * on_timer then runs on a worker as one of the connection's callbacks.  A
 * server timer's expiry queues the timer itself for a worker; a periodic
 * one is re-armed at once but never runs twice at the same time (an expiry
 * that finds it still queued or running is skipped).
 *
 * Setting a timer wakes the reactor only when the new deadline comes before
 * the reactor wakes anyway (the next timer, the timeout scan, a back-off or
 * the drain deadline, less the timer slack), so re-arming a heartbeat
 * (always later than the root), or a connect timeout while the scan ticks,
 * costs no syscall.
 */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

struct ps_timer {
    enum ps_kind kind; /* PS_KIND_TIMER: a work-queue item; first member */
    ps_server *srv;
    ps_timer_fn fn;
    void *arg;
    /* Under the server's timer_lock: */
    struct ps_tnode node;
    int64_t period;   /* ms; 0 one-shot */
    bool busy;        /* queued for a worker, or running */
    bool doomed;      /* ps_timer_free while busy: the worker frees it */
    struct ps_timer *prev, *next; /* s->timers */
    ps_qlink link;    /* the work queue's overflow (queue.c) */
    int64_t ready_ns; /* expired: queue wait's start (cfg.histograms; else 0) */
};

#define PS_TIMER_BATCH 256 /* expiries handed out per lock hold */

/* ------------------------------------------------------------ the heap */

static void heap_place(ps_server *s, struct ps_tnode *t, size_t i)
{
    s->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(ps_server *s, size_t i)
{
    struct ps_tnode *t = s->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent]->due <= t->due)
            break;
        heap_place(s, s->heap[parent], i);
        i = parent;
    }
    heap_place(s, t, i);
}

static void sift_down(ps_server *s, size_t i)
{
    struct ps_tnode *t = s->heap[i];

    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= s->nheap)
            break;
        if (k + 1 < s->nheap && s->heap[k + 1]->due < s->heap[k]->due)
            k++;
        if (t->due <= s->heap[k]->due)
            break;
        heap_place(s, s->heap[k], i);
        i = k;
    }
    heap_place(s, t, i);
}

static int heap_insert(ps_server *s, struct ps_tnode *t)
{
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap ? s->capheap * 2 : 64;
        struct ps_tnode **h = realloc(s->heap, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        s->heap = h;
        s->capheap = cap;
    }
    heap_place(s, t, s->nheap++);
    sift_up(s, s->nheap - 1);
    return 0;
}

static void heap_remove(ps_server *s, struct ps_tnode *t)
{
    size_t i = t->slot - 1;
    struct ps_tnode *last = s->heap[--s->nheap];

    t->slot = 0;
    if (last == t)
        return;
    heap_place(s, last, i);
    if (i > 0 && s->heap[(i - 1) / 2]->due > last->due)
        sift_up(s, i);
    else
        sift_down(s, i);
}

/* timer_lock held: arm node at now + ms; whether the reactor must wake. */
static bool arm_locked(ps_server *s, struct ps_tnode *n, int64_t ms, int *rc)
{
    n->due = ps__now_ms() + ms;
    *rc = heap_insert(s, n);
    if (*rc < 0 || n->slot != 1 || n->due >= s->timer_sleep_until)
        return false;
    s->timer_sleep_until = n->due;
    return true;
}

/* ---------------------------------------------------------- connections */

int ps_conn_timer(ps_conn *c, int64_t ms)
{
    if (!c->srv->event_style || !c->h->on_timer)
        return -EINVAL; /* (a blocking connection has no mailbox turn to run it) */
    return ps__timer_arm(c, ms);
}

int ps__timer_arm(ps_conn *c, int64_t ms)
{
    ps_server *s = c->srv;
    struct ps_tnode *t = &c->timer;
    bool wake = false;
    int rc = 0;

    pthread_mutex_lock(&s->timer_lock);
    if (t->slot)
        heap_remove(s, t);
    if (ms >= 0) {
        t->conn = c;
        t->id = c->id;
        wake = arm_locked(s, t, ms, &rc);
    }
    pthread_mutex_unlock(&s->timer_lock);
    if (wake)
        ps__reactor_wake(s);
    return rc;
}

/* The owner, closing the connection. */
void ps__timer_cancel(ps_server *s, ps_conn *c)
{
    pthread_mutex_lock(&s->timer_lock);
    if (c->timer.slot)
        heap_remove(s, &c->timer);
    pthread_mutex_unlock(&s->timer_lock);
}

/* ------------------------------------------------------- server timers */

/* Reactor, timer_lock held: a server timer's node expired.  Returns the
 * timer to queue, or NULL when its previous run has not finished. */
static struct ps_timer *server_expired(ps_server *s, struct ps_tnode *n, int64_t now)
{
    struct ps_timer *t = (struct ps_timer *)((char *)n - offsetof(struct ps_timer, node));
    int rc;

    if (t->period > 0) { /* next expiry on the original grid, never in the past */
        int64_t due = n->due + t->period;
        arm_locked(s, n, (due > now ? due : now + t->period) - ps__now_ms(), &rc);
    }
    if (t->busy)
        return NULL;
    t->busy = true;
    return t;
}

ps_timer *ps_timer_new(ps_server *s, ps_timer_fn fn, void *arg)
{
    ps_timer *t;

    if (!s || !fn)
        return NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kind = PS_KIND_TIMER;
    t->srv = s;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&s->timer_lock);
    t->next = s->timers;
    if (s->timers)
        s->timers->prev = t;
    s->timers = t;
    pthread_mutex_unlock(&s->timer_lock);
    return t;
}

int ps_timer_start(ps_timer *t, int64_t ms, int64_t period_ms)
{
    ps_server *s = t->srv;
    bool wake;
    int rc;

    if (ms < 0 || period_ms < 0)
        return -EINVAL;
    pthread_mutex_lock(&s->timer_lock);
    if (t->node.slot)
        heap_remove(s, &t->node);
    t->period = period_ms;
    wake = arm_locked(s, &t->node, ms, &rc);
    pthread_mutex_unlock(&s->timer_lock);
    if (wake)
        ps__reactor_wake(s);
    return rc;
}

void ps_timer_stop(ps_timer *t)
{
    ps_server *s = t->srv;

    pthread_mutex_lock(&s->timer_lock);
    if (t->node.slot)
        heap_remove(s, &t->node);
    t->period = 0;
    pthread_mutex_unlock(&s->timer_lock);
}

/* timer_lock held. */
static void unlink_timer(ps_server *s, ps_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        s->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

void ps_timer_free(ps_timer *t)
{
    ps_server *s;
    bool now;

    if (!t)
        return;
    s = t->srv;
    pthread_mutex_lock(&s->timer_lock);
    if (t->node.slot)
        heap_remove(s, &t->node);
    t->period = 0;
    now = !t->busy;
    if (now)
        unlink_timer(s, t);
    else
        t->doomed = true; /* the worker that has it frees it */
    pthread_mutex_unlock(&s->timer_lock);
    if (now)
        free(t);
}

/* A worker runs a server timer that the reactor queued. */
/* The worker that popped t owns ready_ns until the turn (busy is set). */
int64_t ps__timer_take_stamp(ps_timer *t)
{
    int64_t ns = t->ready_ns;

    t->ready_ns = 0;
    return ns;
}

void ps__timer_turn(struct ps_worker *w, ps_timer *t)
{
    ps_server *s = t->srv;
    bool doomed;

    (void)w;
    pthread_mutex_lock(&s->timer_lock);
    doomed = t->doomed;
    pthread_mutex_unlock(&s->timer_lock);
    if (!doomed)
        t->fn(t, t->arg);
    pthread_mutex_lock(&s->timer_lock);
    t->busy = false;
    doomed = t->doomed;
    if (doomed)
        unlink_timer(s, t);
    pthread_mutex_unlock(&s->timer_lock);
    if (doomed)
        free(t);
}

/* ------------------------------------------------------------- reactor */

/* The reactor is about to sleep until `until` (ms, ps__now_ms clock) at
 * the latest, less the slack a timer may be late: a timer armed due after
 * that needs no wake-up.  Never raised past a root armed since the last
 * run (that one woke the reactor already). */
void ps__timers_note_wake(ps_server *s, int64_t until)
{
    pthread_mutex_lock(&s->timer_lock);
    if (until < s->timer_sleep_until)
        s->timer_sleep_until = until;
    pthread_mutex_unlock(&s->timer_lock);
}

/* Hand every expired timer to its connection.  Returns the next deadline
 * (ms, ps__now_ms clock), or INT64_MAX when none is armed. */
int64_t ps__timers_run(ps_server *s, int64_t now)
{
    struct {
        ps_conn *c;
        uint64_t id;
        struct ps_timer *t;
    } due[PS_TIMER_BATCH];
    int64_t next;

    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&s->timer_lock);
        while (n < PS_TIMER_BATCH && s->nheap > 0 && s->heap[0]->due <= now) {
            struct ps_tnode *t = s->heap[0];
            heap_remove(s, t);
            due[n].c = t->conn;
            due[n].id = t->id;
            due[n].t = t->conn ? NULL : server_expired(s, t, now);
            if (t->conn || due[n].t)
                n++;
        }
        next = s->nheap > 0 ? s->heap[0]->due : INT64_MAX;
        s->timer_sleep_until = next; /* lowered by ps__timers_note_wake */
        pthread_mutex_unlock(&s->timer_lock);
        /* A connection closing meanwhile refuses the request by its id;
         * its record is never freed while the server runs (conn.c). */
        int64_t now_ns = n > 0 && s->cfg.histograms ? ps__now_ns() : 0;
        for (size_t i = 0; i < n; i++) {
            if (due[i].c) {
                ps__conn_request(due[i].c, due[i].id, PS_MAIL_TIMER, NULL);
            } else {
                due[i].t->ready_ns = now_ns;
                ps__queue_push_spill(s->q, &due[i].t->link, due[i].t);
            }
        }
        if (n < PS_TIMER_BATCH)
            return next;
    }
}

void ps__timers_fini(ps_server *s)
{
    while (s->timers) {
        ps_timer *t = s->timers;
        s->timers = t->next;
        free(t);
    }
    free(s->heap);
    s->heap = NULL;
    s->nheap = s->capheap = 0;
}

/*
 * timer.c - one binary min-heap of timers per server, run by the reactor.
 *
 * A connection's timer (ps_conn_timer) lives in the connection record, so
 * arming it allocates nothing but the heap's slot array, which grows to the
 * number of timers armed at once and stays.  Set, cancel and expiry are
 * O(log n) under timer_lock; the reactor sleeps until the root's deadline.
 * An expiry is a request in the connection's mailbox (conn.c), like a post:
 * on_timer then runs on a worker as one of the connection's callbacks.
 *
 * Setting a timer wakes the reactor only when the new deadline comes before
 * the one it sleeps until, so re-arming a heartbeat (always later than the
 * root) costs no syscall.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define PS_TIMER_BATCH 256 /* expiries handed out per lock hold */

/* ------------------------------------------------------------ the heap */

static void heap_place(ps_server *s, struct ps_timer *t, size_t i)
{
    s->heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(ps_server *s, size_t i)
{
    struct ps_timer *t = s->heap[i];

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
    struct ps_timer *t = s->heap[i];

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

static int heap_insert(ps_server *s, struct ps_timer *t)
{
    if (s->nheap == s->capheap) {
        size_t cap = s->capheap ? s->capheap * 2 : 64;
        struct ps_timer **h = realloc(s->heap, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        s->heap = h;
        s->capheap = cap;
    }
    heap_place(s, t, s->nheap++);
    sift_up(s, s->nheap - 1);
    return 0;
}

static void heap_remove(ps_server *s, struct ps_timer *t)
{
    size_t i = t->slot - 1;
    struct ps_timer *last = s->heap[--s->nheap];

    t->slot = 0;
    if (last == t)
        return;
    heap_place(s, last, i);
    if (i > 0 && s->heap[(i - 1) / 2]->due > last->due)
        sift_up(s, i);
    else
        sift_down(s, i);
}

/* ---------------------------------------------------------- connections */

int ps_conn_timer(ps_conn *c, int64_t ms)
{
    ps_server *s = c->srv;
    struct ps_timer *t = &c->timer;
    bool wake = false;
    int rc = 0;

    if (!s->h.on_timer)
        return -EINVAL;
    pthread_mutex_lock(&s->timer_lock);
    if (t->slot)
        heap_remove(s, t);
    if (ms >= 0) {
        t->due = ps__now_ms() + ms;
        t->conn = c;
        t->id = c->id;
        rc = heap_insert(s, t);
        wake = rc == 0 && t->slot == 1 && t->due < s->timer_sleep_until;
        if (wake)
            s->timer_sleep_until = t->due;
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

/* ------------------------------------------------------------- reactor */

/* Hand every expired timer to its connection.  Returns the next deadline
 * (ms, ps__now_ms clock), or INT64_MAX when none is armed. */
int64_t ps__timers_run(ps_server *s, int64_t now)
{
    struct {
        ps_conn *c;
        uint64_t id;
    } due[PS_TIMER_BATCH];
    int64_t next;

    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&s->timer_lock);
        while (n < PS_TIMER_BATCH && s->nheap > 0 && s->heap[0]->due <= now) {
            struct ps_timer *t = s->heap[0];
            heap_remove(s, t);
            due[n].c = t->conn;
            due[n].id = t->id;
            n++;
        }
        next = s->nheap > 0 ? s->heap[0]->due : INT64_MAX;
        s->timer_sleep_until = next;
        pthread_mutex_unlock(&s->timer_lock);
        /* A connection closing meanwhile refuses the request by its id;
         * its record is never freed while the server runs (conn.c). */
        for (size_t i = 0; i < n; i++)
            ps__conn_request(due[i].c, due[i].id, PS_MAIL_TIMER, NULL);
        if (n < PS_TIMER_BATCH)
            return next;
    }
}

void ps__timers_fini(ps_server *s)
{
    free(s->heap);
    s->heap = NULL;
    s->nheap = s->capheap = 0;
}

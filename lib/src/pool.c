/*
 * pool.c - the fixed worker pool: N threads created at start, joined at
 * stop.  Each pops one connection at a time from the work queue and runs
 * the handler; popping one (not a batch) keeps a blocking handler from
 * holding queued connections hostage while other workers sit idle.
 *
 * With nothing queued, a blocking-style worker sleeps on the queue; an
 * event-style one polls briefly (one at a time), then sleeps in epoll_wait
 * on the connections' set, where the queue's bell reaches it too.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define PS_SCRATCH_SIZE 65536
#define PS_HARVEST_MAX 16 /* ready connections a worker collects at once */
#ifndef PS_SPIN_POLLS
#define PS_SPIN_POLLS 100 /* non-blocking polls before a worker sleeps */
#endif

/* Blocking style: serve owns the connection; afterwards park or close. */
static void blocking_turn(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;

    c->flags &= ~(unsigned)PS_CF_PARK;
    c->read_waited_ms = 0; /* each serve call gets a fresh request allowance */
    c->turn_in = 0;
    s->h.serve(c, s->user);
    if ((c->flags & (PS_CF_PARK | PS_CF_CLOSING)) == PS_CF_PARK) {
        ps__conn_arm(c, EPOLLIN); /* no mailbox in this style: always armed */
        return;
    }
    ps__conn_destroy(w, c);
}

static void run_item(struct ps_worker *w, void *item)
{
    ps_conn *c = item;

    if (c->kind == PS_KIND_DGRAM) {
        ps__dgram_turn(w, item);
        return;
    }
    if (c->kind == PS_KIND_TIMER) {
        ps__timer_turn(w, item);
        return;
    }
    c->w = w;
    if ((c->flags & PS_CF_PROXY) && !ps__proxy_step(w, c))
        return;
    if (w->srv->event_style)
        ps__event_turn(w, c);
    else
        blocking_turn(w, c);
}

/* Event style: wake one worker waiting in epoll_wait (the queue calls this
 * after a push or pop, outside its lock, when it would wake a sleeping
 * consumer).  No item is left with every worker asleep: wait_ready counts
 * itself before it takes the queue lock to look, and the queue lock orders
 * that look against the push, so either the worker sees the item or this
 * load sees the worker. */
void ps__pool_ring(void *srv)
{
    ps_server *s = srv;
    uint64_t one = 1;

    if (atomic_load_explicit(&s->ready_waiters, memory_order_acquire) > 0) {
        ssize_t rc = write(s->bellfd, &one, sizeof one);
        (void)rc; /* EAGAIN: the counter is full, the bell is rung anyway */
    }
}

/* Take what one epoll_wait on cepfd returned: the first ready connection
 * is returned to run here, the rest are queued for the other workers. */
static void *take_ready(struct ps_worker *w, struct epoll_event *evs, int n)
{
    ps_server *s = w->srv;
    void *first = NULL;
    int i;

    for (i = 0; i < n; i++) {
        ps_conn *c = evs[i].data.ptr;
        if (*(enum ps_kind *)evs[i].data.ptr == PS_KIND_WAKE) { /* the bell */
            uint64_t v;
            ssize_t rc = read(s->bellfd, &v, sizeof v);
            (void)rc;
            continue;
        }
        if (!ps__conn_collect(c, evs[i].events))
            continue;
        if (!first)
            first = c;
        else if (ps__queue_try_push(s->q, c) < 0)
            run_item(w, c); /* full: serve it here rather than lose it */
    }
    return first;
}

/* Before sleeping, one worker at a time polls for a while: under load the
 * next request is usually a few microseconds away, and a worker that is
 * still awake takes it without a sleep and a wake-up (which also pushes the
 * load generator or another process off its core).  One spinner at most,
 * so the pool never burns more than one core waiting.  Returns an item, or
 * NULL when nothing came (the caller then sleeps). */
static void *spin_ready(struct ps_worker *w, bool *stopped)
{
    ps_server *s = w->srv;
    struct epoll_event evs[PS_HARVEST_MAX];
    void *item = NULL;
    int k, n, rc;

    if (PS_SPIN_POLLS == 0 || atomic_exchange_explicit(&s->spinning, true, memory_order_acquire))
        return NULL;
    for (k = 0; k < PS_SPIN_POLLS && !item; k++) {
        rc = ps__queue_try_pop(s->q, &item);
        if (rc == -ESHUTDOWN) {
            *stopped = true;
            break;
        }
        if (rc == 0)
            break;
        n = epoll_wait(s->cepfd, evs, PS_HARVEST_MAX, 0);
        if (n > 0)
            item = take_ready(w, evs, n);
    }
    atomic_store_explicit(&s->spinning, false, memory_order_release);
    return item;
}

/* Event style, nothing queued: wait in epoll for a ready connection and run
 * it on this thread; further ones collected in the same call are queued for
 * the other workers.  Waiting here rather than on the queue while the
 * reactor waits in epoll saves a thread-to-thread wake-up per ready
 * connection - the dearest step of a hand-off, and one that a busy
 * connection would pay on every request.  Idle connections still wait in
 * epoll and each is owned by one thread at a time (one-shot events).
 * Returns the item to run, or NULL. */
static void *wait_ready(struct ps_worker *w)
{
    ps_server *s = w->srv;
    struct epoll_event evs[PS_HARVEST_MAX];
    void *first;
    bool stopped = false;
    int rc, n;

    first = spin_ready(w, &stopped);
    if (first || stopped)
        return first;
    atomic_fetch_add_explicit(&s->ready_waiters, 1, memory_order_seq_cst);
    rc = ps__queue_try_pop(s->q, &first);
    if (rc != -EAGAIN) { /* an item after all, or shut down */
        atomic_fetch_sub_explicit(&s->ready_waiters, 1, memory_order_relaxed);
        return rc == 0 ? first : NULL;
    }
    n = epoll_wait(s->cepfd, evs, PS_HARVEST_MAX, -1);
    atomic_fetch_sub_explicit(&s->ready_waiters, 1, memory_order_relaxed);
    return take_ready(w, evs, n);
}

_Thread_local struct ps_worker *ps__self;

static void *worker_main(void *arg)
{
    struct ps_worker *w = arg;
    ps_server *s = w->srv;
    void *item;

    ps__self = w;
    for (;;) {
        int rc = ps__queue_try_pop(s->q, &item);
        if (rc == -ESHUTDOWN)
            break;
        if (rc < 0 && s->event_style)
            item = wait_ready(w);
        else if (rc < 0 && ps__queue_pop(s->q, &item) < 0)
            break;
        if (item)
            run_item(w, item);
    }
    if (s->event_style) { /* pass the shutdown on to a worker still in epoll_wait */
        uint64_t one = 1;
        ssize_t rc = write(s->bellfd, &one, sizeof one);
        (void)rc;
    }
    return NULL;
}

/* Threads the library creates block the asynchronous signals, so a
 * process-directed SIGINT/SIGTERM reaches the application's own threads. */
int ps__thread_create(pthread_t *tid, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(tid, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -rc;
}

int ps__pool_start(ps_server *s, ps_err *err)
{
    int i, rc;

    s->workers = calloc((size_t)s->cfg.workers, sizeof *s->workers);
    if (!s->workers)
        return ps__set_err(err, -ENOMEM, "workers: out of memory");
    for (i = 0; i < s->cfg.workers; i++) {
        struct ps_worker *w = &s->workers[i];
        w->srv = s;
        if (s->event_style) {
            w->scratch_cap = PS_SCRATCH_SIZE;
            w->scratch = malloc(w->scratch_cap);
            if (!w->scratch)
                return ps__set_err(err, -ENOMEM, "workers: out of memory");
        }
        rc = ps__thread_create(&w->tid, worker_main, w);
        if (rc < 0)
            return ps__set_err(err, rc, "workers: cannot create thread %d of %d: %s", i + 1,
                               s->cfg.workers, ps_strerror(rc));
        s->nworkers++;
    }
    return 0;
}

/* The queue must have been shut down first.  The worker array (and its
 * counters) stays until ps_server_free. */
void ps__pool_join(ps_server *s)
{
    int i;

    for (i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].tid, NULL);
    s->nworkers = 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * pool.c - the fixed worker pool: N threads created at start, joined at
 * stop.  Each pops one connection at a time from the work queue and runs
 * the handler; popping one (not a batch) keeps a blocking handler from
 * holding queued connections hostage while other workers sit idle.
 *
 * With nothing queued, a blocking-style worker sleeps on the queue.  In
 * the event style only the pollers - one worker, more only while pollers
 * stay saturated - wait on the connections' set: a poller polls briefly,
 * then sleeps in epoll_wait, where the queue's bell reaches it too.  The
 * other idle workers sleep on the bench, one of them (the standby) waking
 * every PS_STANDBY_MS to see whether the pollers went off to run turns and
 * none came back (a handler that blocks): then it becomes a poller itself.
 * How many may poll at the least, trials.c sets by measuring.
 * Had every idle worker waited in epoll_wait, the kernel would wake one
 * for each connection that becomes ready while the others run, and a pool
 * of 2 or 4 spread a load one running worker carries over the CPUs, taking
 * them from everything else (its clients, on a shared machine), and handed
 * connections between cores: 0.6-0.75x the throughput of one worker,
 * docs/benchmarks.md.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define PS_SCRATCH_SIZE 65536
#define PS_HARVEST_MAX 16 /* ready connections a worker collects at once */
#define PS_STANDBY_MS 1 /* how long the pollers may all be gone before the
                           standby steps in: the most a slow handler delays
                           connections that are ready meanwhile */
/* A turn this long (a TLS handshake, a handler that computes) costs more
 * than handing the next ready connection to another core: two of them in
 * one standby tick let one more worker poll, as saturation does. */
#define PS_LONG_TURN_NS 100000
#define PS_LONG_TURNS_PER_TICK 2
/* ... and the extra pollers stay while long turns keep coming: an empty
 * poll takes one back only this long after the last long turn
 * (PS_LONG_HOLD_NS, internal.h). */
#ifndef PS_SPIN_POLLS
#define PS_SPIN_POLLS 100 /* at most so many non-blocking polls before a worker sleeps */
#endif
#define PS_SPIN_MIN 4

/* Blocking style: serve owns the connection; afterwards park or close. */
static void blocking_turn(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;

    c->flags &= ~(unsigned)PS_CF_PARK;
    c->read_waited_ms = 0; /* each serve call gets a fresh request allowance */
    c->turn_in = 0;
    s->h.serve(c, s->user);
    if ((c->flags & (PS_CF_PARK | PS_CF_CLOSING)) == PS_CF_PARK) {
        if (c->in.len > 0 || ps__io_pending(c)) { /* bytes that came with a PROXY
                              header, or that TLS holds, wait where epoll cannot
                              see them: serve again, after the queue */
            ps__conn_stamp(c, 0);
            ps__queue_push_spill(s->q, &c->spill, c);
        } else {
            ps__conn_arm(c, EPOLLIN); /* no mailbox in this style: always armed */
        }
        return;
    }
    ps__conn_destroy(w, c);
}

/* The moment an item became runnable, cleared (0: not stamped). */
static int64_t take_stamp(void *item)
{
    enum ps_kind kind = *(enum ps_kind *)item;
    int64_t t;

    if (kind == PS_KIND_DGRAM)
        return ((struct ps_dgram *)item)->ready_ns;
    if (kind == PS_KIND_TIMER)
        return ps__timer_take_stamp(item);
    t = ((ps_conn *)item)->ready_ns;
    ((ps_conn *)item)->ready_ns = 0;
    return t;
}

static void run_one(struct ps_worker *w, void *item)
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
    if ((c->flags & PS_CF_TLS) && !ps__tls_step(w, c))
        return;
    if (w->srv->event_style)
        ps__event_turn(w, c);
    else
        blocking_turn(w, c);
}

/* Run an item; with cfg.histograms, record its queue wait and its turn.
 * now_ns is a clock reading taken just before, to reuse (0: none): the
 * epoll_wait that collected it, or the end of this worker's previous turn
 * when the item was popped right after it.  A turn's start and its queue
 * wait's end are one reading; so are its end and the next one's start -
 * about one clock read per turn.  Returns the reading at the end (0 when
 * histograms are off). */
static int64_t run_item(struct ps_worker *w, void *item, int64_t now_ns)
{
    ps_server *s = w->srv;
    int64_t stamp, t0;

    /* The event style times its turns even without histograms, for the
     * pool's sizing (PS_LONG_TURN_NS): the clock read is reused as the
     * next turn's start, about one per turn. */
    if (!s->cfg.histograms && (!s->event_style || s->cfg.workers == 1)) {
        run_one(w, item);
        return 0;
    }
    stamp = s->cfg.histograms ? take_stamp(item) : 0; /* before the turn: it may free or
                                                         hand on the item */
    t0 = now_ns ? now_ns : ps__now_ns();
    if (stamp)
        ps__hist_add(&w->queue_wait, t0 - stamp);
    run_one(w, item);
    now_ns = ps__now_ns();
    if (s->cfg.histograms)
        ps__hist_add(&w->turn_time, now_ns - t0);
    if (now_ns - t0 > PS_LONG_TURN_NS && s->event_style) {
        atomic_fetch_add_explicit(&s->long_turns, 1, memory_order_relaxed);
        atomic_store_explicit(&s->long_turn_ns, now_ns, memory_order_relaxed);
    }
    if (now_ns >= atomic_load_explicit(&s->ctl_next_ns, memory_order_relaxed))
        ps__trial_step(s, now_ns);
    return now_ns;
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
 * is returned to run here, the rest are queued for the other workers.
 * With cfg.histograms, one clock reading (*now_ns) stamps them all. */
static void *take_ready(struct ps_worker *w, struct epoll_event *evs, int n, int64_t *now_ns)
{
    ps_server *s = w->srv;
    void *first = NULL;
    int64_t now = n > 0 && s->cfg.histograms ? ps__now_ns() : 0;
    int i;

    *now_ns = now;

    for (i = 0; i < n; i++) {
        ps_conn *c = evs[i].data.ptr;
        enum ps_kind kind = *(enum ps_kind *)evs[i].data.ptr;
        if (kind == PS_KIND_WAKE) { /* the bell */
            uint64_t v;
            ssize_t rc = read(s->bellfd, &v, sizeof v);
            (void)rc;
            continue;
        }
        if (kind == PS_KIND_LISTENER) { /* new connections: acceptor.c */
            ps_conn *held = ps__accept_take(w, evs[i].data.ptr, &first);
            if (held)
                run_item(w, held, 0); /* the queue is full: serve it here */
            continue;
        }
        if (!ps__conn_collect(c, evs[i].events))
            continue;
        c->ready_ns = now;
        if (!first)
            first = c;
        else if (ps__queue_try_push(s->q, c) < 0)
            run_item(w, c, 0); /* full: serve it here rather than lose it */
    }
    return first;
}

/* Before sleeping, one worker at a time polls for a while: under load the
 * next request is usually a few microseconds away, and a worker that is
 * still awake takes it without a sleep and a wake-up (which also pushes the
 * load generator or another process off its core).  One spinner at most,
 * so the pool never burns more than one core waiting.  Returns an item, or
 * NULL when nothing came (the caller then sleeps). */
/* A poller found the connections' set empty: the pollers are keeping up,
 * so one fewer may poll (never fewer than one) - unless long turns are
 * still coming.  Those raised the allowance because a ready connection
 * should not wait for a turn that long, and between two TLS handshakes the
 * set is often empty: taking the poller back each time left a core idle
 * while the next handshake waited for a tick (0.88x the handshake rate of
 * a pool held at two pollers, with twice its idle CPU; docs/benchmarks.md).
 * Returns how many ms the hold lasts yet (then a poller about to sleep
 * sleeps no longer, so that an idle pool is back to one poller), or -1. */
static int note_idle(ps_server *s)
{
    int a = atomic_load_explicit(&s->poll_allowed, memory_order_relaxed), floor = 1, hold = -1;

    atomic_fetch_add_explicit(&s->idle_seq, 1, memory_order_relaxed);
    if (a > 1) {
        int64_t now = ps__now_ns(), left = ps__long_hold_left(s, now);
        if (left > 0)
            return (int)(left / 1000000) + 1;
        floor = ps__floor_held(s, now, &hold);
    }
    while (a > floor && !atomic_compare_exchange_weak_explicit(&s->poll_allowed, &a, a - 1,
                                                               memory_order_relaxed,
                                                               memory_order_relaxed))
        ;
    return hold;
}

static void *spin_ready(struct ps_worker *w, bool *stopped, int64_t *now_ns)
{
    ps_server *s = w->srv;
    struct epoll_event evs[PS_HARVEST_MAX];
    void *item = NULL;
    int k, n, rc, limit;

    if (PS_SPIN_POLLS == 0 || atomic_exchange_explicit(&s->spinning, true, memory_order_acquire))
        return NULL;
    limit = atomic_load_explicit(&s->spin_limit, memory_order_relaxed);
    for (k = 0; k < limit && !item; k++) {
        rc = ps__queue_try_pop(s->q, &item);
        if (rc == -ESHUTDOWN) {
            *stopped = true;
            break;
        }
        if (rc == 0) {
            *now_ns = 0; /* a reading of an earlier round is stale */
            break;
        }
        n = epoll_wait(s->cepfd, evs, PS_HARVEST_MAX, 0);
        if (n > 0)
            item = take_ready(w, evs, n, now_ns);
        else if (k == 0)
            note_idle(s);
    }
    /* Polling pays only while work comes within it: a miss halves the
     * next spin, a hit lets it reach twice as far as this one needed.
     * Request/response keeps it long; a connection rate, whose next
     * arrival is rarely that close, shrinks it to a few polls. */
    if (item || *stopped)
        limit = k * 2 + PS_SPIN_MIN > limit ? k * 2 + PS_SPIN_MIN : limit;
    else
        limit /= 2;
    if (limit < PS_SPIN_MIN)
        limit = PS_SPIN_MIN;
    if (limit > PS_SPIN_POLLS)
        limit = PS_SPIN_POLLS;
    atomic_store_explicit(&s->spin_limit, limit, memory_order_relaxed);
    atomic_store_explicit(&s->spinning, false, memory_order_release);
    return item;
}

/* Event style, nothing queued: wait in epoll for a ready connection and run
 * it on this thread; further ones collected in the same call are queued for
 * the other workers.  Waiting here rather than on the queue while the
 * reactor waits in epoll saves a thread-to-thread wake-up per ready
 * connection - the dearest step of a hand-off, and one that a busy
 * connection would pay on every request.  Idle connections still wait in
 * epoll and each is owned by one thread at a time (conn.c: collect).
 * Returns the item to run, or NULL; *now_ns as take_ready's. */
/* More pollers than allowed (the allowance fell while they polled, or
 * long turns raised it for a while): this one leaves the role instead of
 * sleeping in epoll_wait, so an idle pool has one poller.  A CAS, so that
 * two leaving at once never leave none. */
static bool drop_excess_poller(ps_server *s)
{
    int n = atomic_load(&s->pollers);

    while (n > atomic_load_explicit(&s->poll_allowed, memory_order_relaxed))
        if (atomic_compare_exchange_weak(&s->pollers, &n, n - 1))
            return true;
    return false;
}

/* *left: this worker gave up the poller role itself (drop_excess_poller). */
static void *wait_ready(struct ps_worker *w, int64_t *now_ns, bool *left)
{
    ps_server *s = w->srv;
    struct epoll_event evs[PS_HARVEST_MAX];
    void *first;
    bool stopped = false;
    int rc, n, hold;

    first = spin_ready(w, &stopped, now_ns);
    if (first || stopped)
        return first;
    atomic_fetch_add_explicit(&s->ready_waiters, 1, memory_order_seq_cst);
    rc = ps__queue_try_pop(s->q, &first);
    if (rc != -EAGAIN) { /* an item after all, or shut down */
        atomic_fetch_sub_explicit(&s->ready_waiters, 1, memory_order_relaxed);
        *now_ns = 0;
        return rc == 0 ? first : NULL;
    }
    hold = note_idle(s);
    if (drop_excess_poller(s)) {
        atomic_fetch_sub_explicit(&s->ready_waiters, 1, memory_order_relaxed);
        *now_ns = 0;
        *left = true;
        return NULL;
    }
    /* Held beyond one poller by long turns or the trials' floor: wake when
     * the hold ends, to look again (and leave if it was only the hold). */
    n = epoll_wait(s->cepfd, evs, PS_HARVEST_MAX,
                   hold > 0 && atomic_load_explicit(&s->pollers, memory_order_relaxed) > 1 ? hold
                                                                                            : -1);
    atomic_fetch_sub_explicit(&s->ready_waiters, 1, memory_order_relaxed);
    return take_ready(w, evs, n, now_ns);
}

_Thread_local struct ps_worker *ps__self;

/* ------------------------------------------------------ pollers, bench */

static bool take_poll_role(ps_server *s)
{
    int n = atomic_load_explicit(&s->pollers, memory_order_relaxed);

    while (n < atomic_load_explicit(&s->poll_allowed, memory_order_relaxed))
        if (atomic_compare_exchange_weak_explicit(&s->pollers, &n, n + 1, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            atomic_fetch_add_explicit(&s->poll_seq, 1, memory_order_release);
            return true;
        }
    return false;
}

/* A poller leaves the role (to run what it collected or what the bell
 * announced).  After a quiet spell this wakes the standby from its untimed
 * sleep: from now on it watches that a poller comes back (one wake-up per
 * busy spell, not per turn). */
static void leave_poll_role(ps_server *s)
{
    /* seq_cst, against the standby's store of standby_deep and reload of
     * pollers: either it sees this worker gone or this load sees it deep. */
    atomic_fetch_sub(&s->pollers, 1);
    if (atomic_load(&s->standby_deep)) {
        pthread_mutex_lock(&s->bench_lock);
        atomic_store_explicit(&s->standby_deep, false, memory_order_relaxed);
        pthread_cond_signal(&s->standby_cv);
        pthread_mutex_unlock(&s->bench_lock);
    }
}

static void tick_deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += PS_STANDBY_MS * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The standby (bench_lock held): wake every PS_STANDBY_MS while work runs
 * and return when this worker should poll: no poller came back for a whole
 * tick (a turn is taking long: a handler that blocks), or the pollers
 * never found the set empty during one (they are saturated: one more may
 * poll).  Sleeps untimed while a poller sits idle in epoll_wait. */
static void standby(ps_server *s)
{
    unsigned seq = atomic_load(&s->poll_seq), idle = atomic_load(&s->idle_seq), nseq, nidle;
    unsigned lng = atomic_load(&s->long_turns), nlng;
    struct timespec ts;
    int np;

    while (!s->pool_stop) {
        if (atomic_load_explicit(&s->standby_deep, memory_order_relaxed)) {
            pthread_cond_wait(&s->standby_cv, &s->bench_lock);
        } else {
            tick_deadline(&ts);
            pthread_cond_timedwait(&s->standby_cv, &s->bench_lock, &ts);
        }
        if (s->join_poll) {
            s->join_poll = false;
            return; /* a trial opened a poller's place */
        }
        nseq = atomic_load(&s->poll_seq);
        nidle = atomic_load(&s->idle_seq);
        np = atomic_load(&s->pollers);
        nlng = atomic_load_explicit(&s->long_turns, memory_order_relaxed);
        if (np == 0 && nseq == seq)
            return; /* gone for a tick */
        if ((np > 0 && nseq != seq && nidle == idle) || nlng - lng >= PS_LONG_TURNS_PER_TICK) {
            int a = atomic_load(&s->poll_allowed);
            if (a < s->cfg.workers)
                atomic_compare_exchange_strong(&s->poll_allowed, &a, a + 1);
            return; /* saturated */
        }
        /* A poller has sat in epoll_wait since the last tick: nothing runs,
         * sleep until it leaves (leave_poll_role).  Stored before pollers is
         * looked at again, so that a poller leaving meanwhile is seen. */
        atomic_store(&s->standby_deep, np > 0 && nseq == seq && nidle == idle);
        if (atomic_load(&s->standby_deep) &&
            (atomic_load(&s->pollers) == 0 || atomic_load(&s->poll_seq) != nseq))
            atomic_store(&s->standby_deep, false);
        seq = nseq;
        idle = nidle;
        lng = nlng;
    }
}

/* An idle event-style worker that may not poll.  Returns when it should
 * try again (it became the poller's relief, or the pool stops). */
static void bench_wait(ps_server *s)
{
    pthread_mutex_lock(&s->bench_lock);
    if (s->pool_stop) {
        pthread_mutex_unlock(&s->bench_lock);
        return;
    }
    if (!s->has_standby) {
        s->has_standby = true;
        atomic_store(&s->standby_deep, false);
        standby(s);
        s->has_standby = false;
        if (s->benched > 0)
            pthread_cond_signal(&s->bench_cv); /* the next standby */
    } else {
        s->benched++;
        pthread_cond_wait(&s->bench_cv, &s->bench_lock);
        s->benched--;
    }
    pthread_mutex_unlock(&s->bench_lock);
}

/* Event style, nothing queued: poll if allowed, else wait on the bench.
 * *now_ns: a clock reading to start the item's turn with, or 0. */
static void *event_idle(struct ps_worker *w, int64_t *now_ns)
{
    ps_server *s = w->srv;
    bool left = false;
    void *item;

    if (!take_poll_role(s)) {
        bench_wait(s);
        return NULL;
    }
    item = wait_ready(w, now_ns, &left);
    if (!left)
        leave_poll_role(s);
    return item;
}

static void *worker_main(void *arg)
{
    struct ps_worker *w = arg;
    ps_server *s = w->srv;
    void *item;
    int64_t now = 0; /* the end of the last turn, if nothing came between */

    ps__self = w;
    for (;;) {
        int rc = ps__queue_try_pop(s->q, &item);
        if (rc == -ESHUTDOWN)
            break;
        if (rc < 0) {
            now = 0;
            if (s->event_style)
                item = event_idle(w, &now);
            else if (ps__queue_pop(s->q, &item) < 0)
                break;
        }
        if (item)
            now = run_item(w, item, now);
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

    atomic_store(&s->poll_allowed, 1);
    atomic_store(&s->spin_limit, PS_SPIN_POLLS);
    ps__trials_init(s);
    /* Cache-line aligned (calloc is not), so that no two workers' counters
     * and histograms share a line: each is written on every turn. */
    s->workers = aligned_alloc(_Alignof(struct ps_worker),
                               (size_t)s->cfg.workers * sizeof *s->workers);
    if (!s->workers)
        return ps__set_err(err, -ENOMEM, "workers: out of memory");
    memset(s->workers, 0, (size_t)s->cfg.workers * sizeof *s->workers);
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

    pthread_mutex_lock(&s->bench_lock); /* wake the bench: the queue is shut down */
    s->pool_stop = true;
    pthread_cond_broadcast(&s->bench_cv);
    pthread_cond_signal(&s->standby_cv);
    pthread_mutex_unlock(&s->bench_lock);
    for (i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].tid, NULL);
    s->nworkers = 0;
}

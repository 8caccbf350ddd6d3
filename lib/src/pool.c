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
 * poll takes one back only this long after the last long turn. */
#define PS_LONG_HOLD_NS 10000000
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

/* ------------------------------------------------------------ trials */

/* The allowance follows saturation: one poller more while the pollers
 * never find the set empty, one fewer each time one does.  Under echo load
 * that keeps one poller, as it should: the clients take what it leaves of
 * the two cores (0-2% idle), and a second poller only competes with them
 * (the same throughput, twice the p99).  Under keep-alive HTTPS it keeps
 * one too, but there a core sat 11% idle: the set is empty for a moment
 * between bursts, though a second poller would have had work.  So the pool
 * tries, as .NET's thread pool sizes itself by its throughput: now and
 * then it counts the bytes its connections move in windows of
 * PS_TRIAL_WINDOW_NS, alternately with its floor of pollers and with one
 * more (or one fewer, when it holds more), and keeps the trial only if it
 * moved PS_TRIAL_GAIN_PCT more (or lost less than PS_TRIAL_LOSS_PCT).  A
 * trial of one more needs PS_TRIAL_IDLE_PCT of the CPUs' time idle since
 * the last (/proc/stat): with none spare, the extra poller would only take
 * a core from the clients.  Each failed trial doubles the wait before the
 * next, from PS_TRIAL_GAP_MIN_NS to PS_TRIAL_GAP_MAX_NS.  A step runs at
 * the end of a turn once due (a clock comparison per turn; ctl_next_ns),
 * by one worker at a time (ctl_busy); between trials a step every window
 * keeps the floor, which lapses when they stop (an idle pool, floor_held).
 * Without /proc/stat, no trial adds a poller. */
#define PS_TRIAL_WINDOW_NS 50000000LL
#define PS_TRIAL_SETTLE_NS 2000000LL /* for the standby to join, or a poller to leave */
#define PS_TRIAL_PHASES 4            /* windows: the floor, the trial, the floor, the trial */
#define PS_TRIAL_GAP_MIN_NS 1000000000LL
#define PS_TRIAL_GAP_MAX_NS 8000000000LL
#define PS_TRIAL_GAIN_PCT 5
#define PS_TRIAL_LOSS_PCT 2
#define PS_TRIAL_IDLE_PCT 5 /* of the CPUs' time idle, for a trial of one poller more */

enum { CTL_WAIT, CTL_SETTLE, CTL_MEASURE };

static uint64_t bytes_moved(const ps_server *s)
{
    uint64_t n = 0;
    int i;

    for (i = 0; i < s->cfg.workers; i++)
        n += atomic_load_explicit(&s->workers[i].st.bytes_in, memory_order_relaxed) +
             atomic_load_explicit(&s->workers[i].st.bytes_out, memory_order_relaxed);
    return n;
}

/* The floor becomes f, and the allowance at least f.  A lower floor
 * lowers the allowance to f at once, since a trial's window must run the
 * count it tests (saturation raises it again within a tick), unless long
 * turns hold it up: their hold stands.  A raise opens a poller's place,
 * which the standby takes at once rather than at its next tick. */
void ps__pool_set_floor(ps_server *s, int f)
{
    int old = atomic_exchange(&s->poll_floor, f), a = atomic_load(&s->poll_allowed);

    if (a < f || (f < old && atomic_load_explicit(&s->long_turn_ns, memory_order_relaxed) +
                                     PS_LONG_HOLD_NS <= ps__now_ns()))
        atomic_store(&s->poll_allowed, f);
    if (f > old) {
        pthread_mutex_lock(&s->bench_lock);
        s->join_poll = true;
        pthread_cond_signal(&s->standby_cv);
        pthread_mutex_unlock(&s->bench_lock);
    }
}

/* The floor, while trials keep it (else 1, taking it back: the steps
 * stopped with the turns).  *hold: ms until a poller should look again. */
static int floor_held(ps_server *s, int64_t now, int *hold)
{
    int f = atomic_load_explicit(&s->poll_floor, memory_order_relaxed);
    int64_t left;

    if (f <= 1)
        return 1;
    left = atomic_load_explicit(&s->ctl_last_ns, memory_order_relaxed) +
           3 * PS_TRIAL_WINDOW_NS - now;
    if (left > 0) {
        *hold = (int)(left / 1000000) + 1;
        return f;
    }
    atomic_compare_exchange_strong(&s->poll_floor, &f, 1);
    return 1;
}

/* Wait gap ns before the next trial, noting the CPUs' idle time now. */
static void trial_wait(ps_server *s, int64_t now, int64_t gap)
{
    s->ctl_state = CTL_WAIT;
    s->ctl_t0 = now + gap; /* in CTL_WAIT: when the wait ends */
    s->ctl_looked = ps__cpu_idle(&s->ctl_idle0, &s->ctl_total0) == 0;
}

/* Did the CPUs we may run on spend PS_TRIAL_IDLE_PCT of their time idle
 * since the wait began?  Else a poller more has no core to run on: under
 * echo load the clients take what the one poller leaves (0-2% idle), and
 * trying a second there costs the p99 of its windows; keep-alive HTTPS
 * left 11% idle with one poller. */
static bool cpus_to_spare(const ps_server *s)
{
    uint64_t idle, total;

    if (!s->ctl_looked || ps__cpu_idle(&idle, &total) < 0 || total <= s->ctl_total0)
        return false;
    return (idle - s->ctl_idle0) * 100 >= (total - s->ctl_total0) * PS_TRIAL_IDLE_PCT;
}

/* The next window: set its floor (even phases the floor the trial left,
 * odd ones the trial's) and let it settle before it counts. */
static void trial_phase(ps_server *s, int phase)
{
    s->ctl_phase = phase;
    s->ctl_state = CTL_SETTLE;
    ps__pool_set_floor(s, phase % 2 ? s->ctl_to : s->ctl_from);
}

/* Whether to keep a trial from floor `from` to `to`, given the bytes moved
 * in the floor's windows [0] and the trial's [1], and their lengths in ns. */
bool ps__trial_kept(int from, int to, const uint64_t bytes[2], const int64_t ns[2])
{
    /* rates in bytes per ms; + 1 ms keeps an empty window from dividing by 0 */
    uint64_t b = bytes[0] / (uint64_t)(ns[0] / 1000000 + 1);
    uint64_t t = bytes[1] / (uint64_t)(ns[1] / 1000000 + 1);

    if (to > from)
        return t * 100 > b * (100 + PS_TRIAL_GAIN_PCT);
    return t * 100 >= b * (100 - PS_TRIAL_LOSS_PCT);
}

/* The trial is over: keep its floor or go back. */
static void trial_end(ps_server *s, int64_t now)
{
    atomic_fetch_add_explicit(&s->ctl_ended, 1, memory_order_relaxed);
    if (ps__trial_kept(s->ctl_from, s->ctl_to, s->ctl_bytes, s->ctl_ns)) {
        s->ctl_gap_ns = PS_TRIAL_GAP_MIN_NS;
    } else {
        if (atomic_load(&s->poll_floor) != s->ctl_from)
            ps__pool_set_floor(s, s->ctl_from);
        if (s->ctl_gap_ns < PS_TRIAL_GAP_MAX_NS)
            s->ctl_gap_ns *= 2;
    }
    trial_wait(s, now, s->ctl_gap_ns);
}

static int64_t trial_step_locked(ps_server *s, int64_t now, int64_t last)
{
    int f = atomic_load(&s->poll_floor);
    uint64_t bytes = bytes_moved(s);
    int i;

    if (now - last > 2 * PS_TRIAL_WINDOW_NS) { /* no turn for a while: the
                                                  windows held idle time */
        if (s->ctl_state != CTL_WAIT && f != s->ctl_from)
            ps__pool_set_floor(s, s->ctl_from); /* the trial is void */
        s->ctl_gap_ns = PS_TRIAL_GAP_MIN_NS;
        trial_wait(s, now, PS_TRIAL_GAP_MIN_NS);
        return now + PS_TRIAL_WINDOW_NS;
    }
    switch (s->ctl_state) {
    case CTL_WAIT:
        if (now < s->ctl_t0) /* steps go on meanwhile: they keep the floor */
            return s->ctl_t0 < now + PS_TRIAL_WINDOW_NS ? s->ctl_t0 : now + PS_TRIAL_WINDOW_NS;
        s->ctl_from = f;
        s->ctl_to = f >= s->ctl_max ? f - 1
                    : f == 1        ? f + 1
                    : (s->ctl_up = !s->ctl_up) ? f + 1 : f - 1;
        if (s->ctl_to > f && !cpus_to_spare(s)) {
            trial_wait(s, now, s->ctl_gap_ns);
            return now + PS_TRIAL_WINDOW_NS;
        }
        for (i = 0; i < 2; i++)
            s->ctl_bytes[i] = s->ctl_ns[i] = 0;
        atomic_fetch_add_explicit(&s->ctl_trials, 1, memory_order_relaxed);
        trial_phase(s, 0);
        return now + PS_TRIAL_SETTLE_NS;
    case CTL_SETTLE:
        s->ctl_state = CTL_MEASURE;
        s->ctl_t0 = now;
        s->ctl_bytes0 = bytes;
        return now + PS_TRIAL_WINDOW_NS;
    default:
        i = s->ctl_phase % 2;
        s->ctl_bytes[i] += bytes - s->ctl_bytes0;
        s->ctl_ns[i] += now - s->ctl_t0;
        if (s->ctl_phase + 1 < PS_TRIAL_PHASES) {
            trial_phase(s, s->ctl_phase + 1);
            return now + PS_TRIAL_SETTLE_NS;
        }
        trial_end(s, now);
        return now + PS_TRIAL_WINDOW_NS;
    }
}

static void trial_step(ps_server *s, int64_t now)
{
    int64_t next;

    if (atomic_exchange_explicit(&s->ctl_busy, true, memory_order_acquire))
        return;
    next = trial_step_locked(s, now, atomic_load_explicit(&s->ctl_last_ns, memory_order_relaxed));
    atomic_store_explicit(&s->ctl_last_ns, now, memory_order_relaxed);
    atomic_store_explicit(&s->ctl_next_ns, next, memory_order_relaxed);
    atomic_store_explicit(&s->ctl_busy, false, memory_order_release);
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
        trial_step(s, now_ns);
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
        int64_t now = ps__now_ns();
        int64_t left = atomic_load_explicit(&s->long_turn_ns, memory_order_relaxed) +
                       PS_LONG_HOLD_NS - now;
        if (left > 0)
            return (int)(left / 1000000) + 1;
        floor = floor_held(s, now, &hold);
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
    /* Held beyond one poller by long turns: wake when the hold ends, to
     * look again (and leave if it was only the hold). */
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
    atomic_store(&s->poll_floor, 1);
    atomic_store(&s->spin_limit, PS_SPIN_POLLS);
    /* Trials need turns timed (run_item) and a second CPU to be worth it. */
    s->ctl_max = ps__cpu_count() < s->cfg.workers ? ps__cpu_count() : s->cfg.workers;
    s->ctl_gap_ns = PS_TRIAL_GAP_MIN_NS;
    trial_wait(s, 0, PS_TRIAL_GAP_MIN_NS);
    atomic_store(&s->ctl_next_ns, s->event_style && s->ctl_max > 1 ? 0 : INT64_MAX);
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

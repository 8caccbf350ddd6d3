/* SPDX-License-Identifier: MIT */
/*
 * reactor.c - the acceptor/reactor thread: one epoll set holding the listen
 * sockets, a wake-up eventfd and (blocking style) every parked connection,
 * armed EPOLLONESHOT.  Event-style connections wait, edge-triggered, in a
 * second set that idle workers read themselves (pool.c says why); the
 * reactor creates it.
 *
 * A new or ready connection is pushed to the work queue.  When the queue is full it
 * waits, in order, in the pending list; the queue calls back (via the
 * eventfd) when a slot frees.  Nothing spins: a one-shot connection reports
 * readiness once until a worker re-arms it.
 *
 * Stop: the eventfd wakes the loop; listeners close; connections already
 * accepted keep being served until they end or the drain deadline passes,
 * when the stragglers are shut down (which wakes any worker blocked on
 * them).  When the last connection is gone the queue shuts down and the
 * workers exit.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PS_EVENTS_MAX 256
/* Timers are run in batches: the reactor sleeps until the first deadline
 * plus this much, and then runs every timer due by then, so 10,000
 * heartbeats a second cost a few hundred wake-ups, not 10,000 (measured in
 * docs/benchmarks.md).  No timer fires early; none more than this late
 * (plus scheduling). */
#ifndef PS_TIMER_SLACK_MS
#define PS_TIMER_SLACK_MS 4
#endif

void ps__reactor_wake(ps_server *s)
{
    uint64_t one = 1;
    ssize_t rc = write(s->wakefd, &one, sizeof one); /* async-signal-safe */

    (void)rc; /* EAGAIN means a wake-up is already pending */
}

/* ------------------------------------------------------------- dispatch */

/* Queue a ready connection, or keep it pending (in order) while full. */
void ps__reactor_dispatch(ps_server *s, ps_conn *c)
{
    if (!s->pend_head && ps__queue_try_push(s->q, c) == 0)
        return;
    c->pend_next = NULL;
    if (s->pend_tail)
        s->pend_tail->pend_next = c;
    else
        s->pend_head = c;
    s->pend_tail = c;
}

static void flush_pending(ps_server *s)
{
    while (s->pend_head) {
        ps_conn *c = s->pend_head;
        ps_conn *next = c->pend_next;
        if (ps__queue_try_push(s->q, c) < 0)
            return; /* the queue calls on_space when a slot frees */
        s->pend_head = next;
        if (!s->pend_head)
            s->pend_tail = NULL;
    }
    if (s->accept_paused && !s->draining) {
        s->accept_paused = false;
        if (s->backoff_until == 0)
            ps__listeners_enable(s, true);
    }
}

static void handle_event(ps_server *s, struct epoll_event *ev)
{
    enum ps_kind kind = *(enum ps_kind *)ev->data.ptr;

    if (kind == PS_KIND_WAKE) {
        uint64_t v;
        ssize_t rc = read(s->wakefd, &v, sizeof v);
        (void)rc;
    } else if (kind == PS_KIND_LISTENER) {
        ps_listener *l = ev->data.ptr;
        if (l->type == SOCK_DGRAM)
            ps__dgram_ready(s, l);
        else
            ps__accept_ready(s, l);
    } else {
        ps_conn *c = ev->data.ptr;
        if (ps__conn_collect(c, ev->events)) {
            ps__conn_stamp(c, 0);
            ps__reactor_dispatch(s, c);
        }
    }
}

/* ----------------------------------------------------------------- loop */

static void begin_drain(ps_server *s)
{
    int i;

    s->draining = true;
    atomic_store(&s->accept_closed, true); /* seq_cst: against ps__accept_take */
    for (i = 0; i < s->nls; i++)
        epoll_ctl(s->ls[i].type == SOCK_STREAM ? s->lepfd : s->epfd, EPOLL_CTL_DEL, s->ls[i].fd,
                  NULL);
    while (atomic_load(&s->accepting) > 0) /* a worker mid-batch: a few accepts */
        sched_yield();
    /* UDP sockets stay open until the workers are gone: queued datagrams
     * still reply through them. */
    ps__listeners_close(s, SOCK_STREAM);
    s->drain_deadline =
        s->cfg.drain_timeout_ms >= 0 ? ps__now_ms() + s->cfg.drain_timeout_ms : -1;
    ps__log(s, PS_LOG_INFO, "stopping: %zu connection(s) to drain", ps__registry_count(s));
}

/* epoll_wait timeout: until the next back-off end, drain deadline or
 * timeout scan. */
static int next_timeout(ps_server *s, int64_t now)
{
    int64_t t = INT64_MAX;

    if (s->backoff_until && s->backoff_until - now < t)
        t = s->backoff_until - now;
    if (s->draining && !s->forced && s->drain_deadline >= 0 && s->drain_deadline - now < t)
        t = s->drain_deadline - now;
    if (s->next_scan && s->next_scan - now < t)
        t = s->next_scan - now;
    if (s->next_timer != INT64_MAX && s->next_timer + PS_TIMER_SLACK_MS - now < t)
        t = s->next_timer + PS_TIMER_SLACK_MS - now;
    if (t == INT64_MAX)
        return -1;
    return t < 0 ? 0 : t > INT32_MAX ? INT32_MAX : (int)t;
}

static void on_timers(ps_server *s, int64_t now)
{
    s->next_timer = ps__timers_run(s, now);
    if (s->next_scan && now >= s->next_scan) {
        ps__timeouts_scan(s, ps__coarse_ms()); /* the clock of the stamps */
        s->next_scan = now + s->scan_period;
    }
    if (s->backoff_until && now >= s->backoff_until) {
        s->backoff_until = 0;
        if (!s->accept_paused && !s->draining)
            ps__listeners_enable(s, true);
    }
    if (s->draining && !s->forced && s->drain_deadline >= 0 && now >= s->drain_deadline) {
        s->forced = true;
        ps__registry_shutdown_all(s);
    }
}

static void *reactor_main(void *arg)
{
    ps_server *s = arg;
    struct epoll_event evs[PS_EVENTS_MAX];

    ps__timeouts_init(s);
    s->next_timer = INT64_MAX;

    for (;;) {
        int64_t now = ps__now_ms();
        int timeout = next_timeout(s, now);
        int i, n;

        /* A timer set meanwhile wakes us only if it is due before we wake
         * anyway (timer.c): a connect timeout armed for every outbound
         * connection then costs no wake-up while the timeout scan's tick
         * comes first. */
        ps__timers_note_wake(s, timeout < 0 ? INT64_MAX : now + timeout - PS_TIMER_SLACK_MS);
        n = epoll_wait(s->epfd, evs, PS_EVENTS_MAX, timeout);
        if (n < 0 && errno != EINTR) {
            ps__log(s, PS_LOG_ERROR, "epoll_wait: %s", ps_strerror(errno));
            break;
        }
        for (i = 0; i < n; i++)
            handle_event(s, &evs[i]);
        flush_pending(s);
        ps__accept_emfile_check(s);
        if (!s->draining && atomic_load_explicit(&s->stopping, memory_order_acquire))
            begin_drain(s);
        if (s->draining && !s->forced && atomic_load_explicit(&s->stop_now, memory_order_relaxed))
            s->drain_deadline = 0;
        on_timers(s, ps__now_ms());
        if (s->draining && !s->pend_head && ps__registry_close_if_empty(s))
            break;
    }
    ps__queue_shutdown(s->q);
    return NULL;
}

static void queue_has_space(void *arg)
{
    ps__reactor_wake(arg);
}

/* Event style: the connections' own epoll set, which idle workers wait on
 * (pool.c), with the bell that wakes one of them for a queued item. */
static int conn_set_start(ps_server *s, ps_err *err)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = &s->bell_kind};

    s->lepfd = s->epfd;
    if (!s->event_style) {
        s->cepfd = s->epfd;
        return 0;
    }
    s->cepfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->cepfd < 0)
        return ps__set_err(err, -errno, "epoll_create1: %s", ps_strerror(errno));
    s->bellfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->bellfd < 0)
        return ps__set_err(err, -errno, "eventfd: %s", ps_strerror(errno));
    if (epoll_ctl(s->cepfd, EPOLL_CTL_ADD, s->bellfd, &ev) < 0)
        return ps__set_err(err, -errno, "epoll_ctl: %s", ps_strerror(errno));
    ps__queue_set_ready_fn(s->q, ps__pool_ring, s);
    /* Idle workers accept (acceptor.c), unless the reject policy must
     * answer while every worker is busy: then the reactor does. */
    if (s->cfg.policy == PS_POLICY_BLOCK)
        s->lepfd = s->cepfd;
    return 0;
}

/* Create the queue and epoll set, register wake fd and listeners, start the
 * thread.  On failure the caller tears down. */
int ps__reactor_start(ps_server *s, ps_err *err)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->wake_kind};
    int i;

    s->q = ps__queue_new((size_t)s->cfg.queue_capacity, queue_has_space, s);
    if (!s->q)
        return ps__set_err(err, -ENOMEM, "queue_capacity: cannot allocate %d slots",
                           s->cfg.queue_capacity);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0)
        return ps__set_err(err, -errno, "epoll_create1: %s", ps_strerror(errno));
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev) < 0)
        return ps__set_err(err, -errno, "epoll_ctl: %s", ps_strerror(errno));
    if ((i = conn_set_start(s, err)) < 0)
        return i;
    for (i = 0; i < s->nls; i++) {
        struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &s->ls[i]};
        int set = s->ls[i].type == SOCK_STREAM ? s->lepfd : s->epfd;
        if (epoll_ctl(set, EPOLL_CTL_ADD, s->ls[i].fd, &lev) < 0)
            return ps__set_err(err, -errno, "epoll_ctl: %s", ps_strerror(errno));
    }
    return 0;
}

int ps__reactor_run_thread(ps_server *s, ps_err *err)
{
    int rc = ps__thread_create(&s->reactor_tid, reactor_main, s);

    if (rc < 0)
        return ps__set_err(err, rc, "cannot create the reactor thread: %s", ps_strerror(rc));
    s->reactor_started = true;
    return 0;
}

/*
 * pool.c - the fixed worker pool: N threads created at start, joined at
 * stop.  Each pops one connection at a time from the work queue and runs
 * the handler; popping one (not a batch) keeps a blocking handler from
 * holding queued connections hostage while other workers sit idle.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define PS_SCRATCH_SIZE 65536
#define PS_STEAL_MAX 16 /* ready connections a worker collects at once */

/* Blocking style: serve owns the connection; afterwards park or close. */
static void blocking_turn(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;

    c->flags &= ~(unsigned)PS_CF_PARK;
    c->read_waited_ms = 0; /* each serve call gets a fresh request allowance */
    c->turn_in = 0;
    s->h.serve(c, s->user);
    if ((c->flags & (PS_CF_PARK | PS_CF_CLOSING)) == PS_CF_PARK) {
        ps__conn_arm(c, EPOLLIN);
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
    c->w = w;
    if ((c->flags & PS_CF_PROXY) && !ps__proxy_step(w, c))
        return;
    if (w->srv->event_style)
        ps__event_turn(w, c);
    else
        blocking_turn(w, c);
}

/* The queue is empty and this worker is about to sleep: first collect
 * connections that are ready in epoll without blocking, as the reactor
 * would.  The first is run here; the rest are queued for other workers.
 * Under load this saves the reactor-to-worker wake-up, the dearest step of
 * the hand-off, without changing who may own a connection.  Returns the
 * connection to run, or NULL. */
static ps_conn *steal_ready(struct ps_worker *w)
{
    ps_server *s = w->srv;
    struct epoll_event evs[PS_STEAL_MAX];
    ps_conn *first = NULL;
    int i, n = epoll_wait(s->epfd, evs, PS_STEAL_MAX, 0);

    for (i = 0; i < n; i++) {
        ps_conn *c = evs[i].data.ptr;
        if (*(enum ps_kind *)evs[i].data.ptr != PS_KIND_CONN || !ps__conn_collect(c))
            continue; /* listeners and the wake fd are the reactor's */
        if (!first)
            first = c;
        else if (ps__queue_try_push(s->q, c) < 0)
            run_item(w, c); /* full: serve it here rather than lose it */
    }
    return first;
}

static void *worker_main(void *arg)
{
    struct ps_worker *w = arg;
    ps_server *s = w->srv;
    void *item;

    for (;;) {
        if (ps__queue_try_pop(s->q, &item) == 0) {
            run_item(w, item);
            continue;
        }
        if (s->event_style && (item = steal_ready(w)) != NULL) {
            run_item(w, item);
            continue;
        }
        if (ps__queue_pop(s->q, &item) < 0)
            break;
        run_item(w, item);
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

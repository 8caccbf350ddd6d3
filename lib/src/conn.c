/* SPDX-License-Identifier: MIT */
/*
 * conn.c - a connection's life cycle and ownership, and its accessors.
 *
 * One thread owns a connection at a time (state OWNED): the worker running
 * it, or the queue / the reactor's pending list on its way to one.  Between
 * turns it waits in epoll owned by nobody (IDLE).  Every change of owner is
 * one function here, under c->lock:
 *
 *   ps__conn_arm       OWNED -> IDLE    the owner's last touch, unless its
 *                                       mailbox has something (then it keeps it)
 *   ps__conn_collect   IDLE  -> OWNED   whoever got an epoll event it waits for
 *   ps__conn_request   IDLE  -> OWNED   an outsider left a request (resume,
 *                                       post, timer) and schedules it
 *   ps__conn_close_mailbox OWNED -> CLOSED  before on_close: no more requests
 *   ps__conn_destroy   CLOSED/OWNED -> FREE
 *
 * Outsiders never call epoll_ctl nor change the connection: they leave a
 * request in the mailbox, and only take ownership (to queue it) when nobody
 * has it.  The connection's epoll registration may then still fire, and
 * an event may already sit in another worker's epoll_wait result: such a
 * late event finds the connection OWNED (or FREE, or a later connection in
 * the same memory) and is dropped, or at worst gives that later connection
 * a turn that finds nothing to do.  That is safe only because the memory
 * stays a ps_conn with a live lock: records are recycled through the
 * server's free list and freed only by ps_server_free (the kernel's
 * SLAB_TYPESAFE_BY_RCU idea).  The same makes a ps_conn_ref held by another
 * thread safe to use after the connection closed: the id no longer matches.
 */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define PS_RESET_FROM offsetof(ps_conn, fd) /* fields after this start at zero */

/* Reactor thread (accept). */
ps_conn *ps__conn_new(ps_server *s, int fd, const struct sockaddr_storage *peer, socklen_t len)
{
    ps_conn *c;

    pthread_mutex_lock(&s->free_lock);
    c = s->free_head;
    if (c)
        s->free_head = c->free_next;
    pthread_mutex_unlock(&s->free_lock);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return NULL;
        c->kind = PS_KIND_CONN;
        c->srv = s;
        pthread_mutex_init(&c->lock, NULL);
    }
    /* A late event may lock a recycled record at any time: the reset and
     * the new id are made under the lock, and state OWNED turns it away. */
    pthread_mutex_lock(&c->lock);
    memset((char *)c + PS_RESET_FROM, 0, sizeof *c - PS_RESET_FROM);
    c->state = PS_CS_OWNED;
    c->fd = fd;
    c->id = atomic_fetch_add_explicit(&s->next_id, 1, memory_order_relaxed) + 1;
    c->h = &s->h;
    c->user = s->user;
    c->ready = EPOLLIN; /* a new connection may have bytes already */
    pthread_mutex_unlock(&c->lock);
    c->timeout_ms = s->cfg.io_timeout_ms;
    c->accepted_at = ps__coarse_ms();
    if (s->cfg.histograms) /* the lifetime's start, and the first queue wait's */
        c->opened_ns = c->ready_ns = ps__now_ns();
    atomic_store_explicit(&c->last_active, c->accepted_at, memory_order_relaxed);
    if (len > sizeof c->peer)
        len = sizeof c->peer;
    memcpy(&c->peer, peer, len);
    c->peerlen = len;
    return c;
}

/* Back to the free list; the descriptor is already closed.  Posts left
 * (none once the mailbox was closed) cannot exist here. */
void ps__conn_recycle(ps_conn *c)
{
    ps_server *s = c->srv;

    ps__tls_conn_free(c);
    ps__buf_free(&c->in);
    ps__buf_free(&c->out);
    free(c->peer_str);
    c->peer_str = NULL;
    free(c->h_owned);
    c->h_owned = NULL;
    pthread_mutex_lock(&c->lock);
    c->state = PS_CS_FREE;
    c->id = 0;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_lock(&s->free_lock);
    c->free_next = s->free_head;
    s->free_head = c;
    pthread_mutex_unlock(&s->free_lock);
}

/* ps_server_free: every connection is back on the free list by now. */
void ps__conns_fini(ps_server *s)
{
    while (s->free_head) {
        ps_conn *c = s->free_head;
        s->free_head = c->free_next;
        pthread_mutex_destroy(&c->lock);
        free(c);
    }
}

/* The owner ends a connection.  Unlink from the registry before close():
 * the drain path shuts down fds under reg_lock, and must never reach a
 * descriptor number already reused. */
void ps__conn_destroy(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;

    /* Counters first: a client may look at them as soon as it sees EOF. */
    if (atomic_load_explicit(&c->forced, memory_order_relaxed))
        ps__count(&w->st.forced_closes, 1);
    if (c->opened_ns) /* like the counters, before the peer can see the close */
        ps__hist_add(&w->lifetime, ps__now_ns() - c->opened_ns);
    ps__count(&w->st.closed, 1);
    ps__registry_remove(s, c);
    /* No EPOLL_CTL_DEL: close removes the registration.  Should a forked
     * child keep the socket open (it is close-on-exec), the registration
     * stays and the child's traffic reaches this record as late events,
     * which its state turns away, as above.  One system call fewer per
     * connection. */
    ps__tls_conn_free(c); /* close_notify, when the close is a graceful one */
    close(c->fd);
    ps__conn_recycle(c);
}

static void epoll_apply(ps_conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (epoll_ctl(c->srv->cepfd, op, c->fd, &ev) < 0) {
        /* Cannot happen for a valid fd and epoll set (ENOMEM aside); make
         * it visible rather than lose the connection silently. */
        ps__log(c->srv, PS_LOG_ERROR, "epoll_ctl(fd %d): %s", c->fd, ps_strerror(errno));
        shutdown(c->fd, SHUT_RDWR);
    }
}

/* Events that always matter, whatever the owner waits for. */
#define PS_EV_ALWAYS (EPOLLERR | EPOLLHUP)

/* Blocking style: a parked connection waits one-shot in the reactor's set,
 * re-armed after each serve call. */
static bool arm_oneshot(ps_conn *c, uint32_t events)
{
    int op = (c->flags & PS_CF_REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

    c->ready = 0;
    pthread_mutex_lock(&c->lock);
    if (c->mail || c->posts) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    if (atomic_load_explicit(&c->user_paused, memory_order_relaxed))
        events &= ~(uint32_t)EPOLLIN;
    c->state = PS_CS_IDLE;
    if (!c->live || c->armed != events) {
        c->flags |= PS_CF_REGISTERED;
        c->armed = events;
        c->live = true;
        /* under the lock: a collector must not see IDLE before it */
        epoll_apply(c, op, events | EPOLLONESHOT);
    }
    pthread_mutex_unlock(&c->lock);
    return true;
}

/* The owner hands the connection back to epoll - unless a request arrived
 * during the turn, or an event the turn may not have seen: then it returns
 * false, and the caller still owns the connection and must run it again
 * (c->ready says with which events).  On true this was the caller's last
 * touch.
 *
 * Event style: the registration is edge-triggered and stays: each new
 * readiness (bytes arriving, space freed after a short write) reports once,
 * to one collector.  A collector that finds the connection owned leaves
 * the event in `missed` for the owner, here; one that finds it idle takes
 * it only if the owner waits for such an event (`armed`: EPOLLIN is left
 * out while the user has paused reading - a resume re-reads anyway).  So
 * a turn ends without a system call: no one-shot to re-arm.  epoll_ctl runs
 * only to add the descriptor, and to add EPOLLOUT the first time output is
 * left pending (it then stays: an edge comes only after a short write).
 * What this asks of every turn: stop reading only at EAGAIN, or come back
 * without an event (read budget, pause, backpressure: event.c). */
bool ps__conn_arm(ps_conn *c, uint32_t events)
{
    uint32_t want;

    if (!c->srv->event_style)
        return arm_oneshot(c, events);
    c->ready = 0;
    want = EPOLLIN | PS_EV_READ_MORE | (events & EPOLLOUT) | (c->regd & EPOLLOUT);
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->user_paused, memory_order_relaxed))
        events &= ~(uint32_t)(EPOLLIN | PS_EV_READ_MORE);
    else if (events & EPOLLIN)
        events |= PS_EV_READ_MORE;
    /* (posts to a connection still connecting wait for on_open) */
    if (c->mail || (c->posts && !(c->flags & PS_CF_CONNECTING)) ||
        (c->missed & (events | PS_EV_ALWAYS))) {
        c->ready = c->missed;
        c->missed = 0;
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    c->armed = events; /* (what `missed` holds matters to no one now: it waits) */
    c->state = PS_CS_IDLE;
    if (c->regd != want) { /* under the lock: a collector must not see IDLE before it */
        epoll_apply(c, c->regd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, want | EPOLLET);
        c->regd = want;
    }
    pthread_mutex_unlock(&c->lock);
    return true;
}

/* An epoll event arrived (reactor or idle worker).  True: the caller now
 * owns the connection.  False: the event is not for the caller - a late
 * one (see the top of this file), one the owner will see in `missed`, or
 * one the idle connection does not wait for. */
bool ps__conn_collect(ps_conn *c, uint32_t events)
{
    bool mine;

    pthread_mutex_lock(&c->lock);
    if (!c->srv->event_style) {
        c->live = false; /* one-shot: whatever this event was, the arm is spent */
        mine = c->state == PS_CS_IDLE;
    } else {
        /* Owned, or idle and not waiting for these events: keep them (an
         * edge is reported once) - the owner's arm looks, and a paused
         * connection's next turn learns of the EOF it ignored. */
        mine = c->state == PS_CS_IDLE && (events & (c->armed | PS_EV_ALWAYS));
        if (mine) {
            events |= c->missed;
            c->missed = 0;
        } else if (c->state == PS_CS_OWNED || c->state == PS_CS_IDLE) {
            c->missed |= events;
        }
    }
    if (mine)
        c->state = PS_CS_OWNED;
    pthread_mutex_unlock(&c->lock);
    if (mine)
        c->ready = events;
    return mine;
}

/* Any thread: leave `mail` bits and/or post p for the connection `id` (0:
 * whatever connection c is now, for callers that hold the pointer under the
 * pause/resume contract), and get it run if nobody owns it.  Returns 0,
 * -ESHUTDOWN if that connection is closed or gone (p was not taken), or
 * -ENOBUFS past max_posts. */
int ps__conn_request(ps_conn *c, uint64_t id, unsigned mail, struct ps_post *p)
{
    bool schedule;

    pthread_mutex_lock(&c->lock);
    if ((id && c->id != id) || c->state == PS_CS_FREE || c->state == PS_CS_CLOSED) {
        pthread_mutex_unlock(&c->lock);
        return -ESHUTDOWN;
    }
    if (p) {
        if (c->nposts >= c->srv->cfg.max_posts) {
            pthread_mutex_unlock(&c->lock);
            return -ENOBUFS;
        }
        p->next = NULL;
        if (c->posts_tail)
            c->posts_tail->next = p;
        else
            c->posts = p;
        c->posts_tail = p;
        c->nposts++;
    }
    c->mail |= mail;
    atomic_store_explicit(&c->has_mail, true, memory_order_relaxed);
    schedule = c->state == PS_CS_IDLE;
    if (schedule) {
        c->state = PS_CS_OWNED;
        c->ready = c->missed; /* events it ignored while waiting (conn.c) */
        c->missed = 0;
    }
    pthread_mutex_unlock(&c->lock);
    if (schedule) {
        ps__conn_stamp(c, 0);
        ps__queue_push_spill(c->srv->q, &c->spill, c);
    }
    return 0;
}

/* The owner empties the mailbox: returns the mail bits, *posts the posts in
 * order (to run and free). */
unsigned ps__conn_take_mail(ps_conn *c, struct ps_post **posts)
{
    unsigned mail;

    /* A request set after this look is seen by ps__conn_arm (under the
     * lock), which then keeps the connection for another turn; so a clear
     * flag spares the per-turn lock on the data path. */
    *posts = NULL;
    if (!atomic_load_explicit(&c->has_mail, memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&c->lock);
    atomic_store_explicit(&c->has_mail, false, memory_order_relaxed);
    mail = c->mail;
    *posts = c->posts;
    c->mail = 0;
    c->posts = c->posts_tail = NULL;
    c->nposts = 0;
    pthread_mutex_unlock(&c->lock);
    return mail;
}

bool ps__conn_take_timer(ps_conn *c)
{
    bool t;

    pthread_mutex_lock(&c->lock);
    t = c->mail & PS_MAIL_TIMER;
    c->mail &= ~(unsigned)PS_MAIL_TIMER;
    atomic_store_explicit(&c->has_mail, c->mail || c->posts, memory_order_relaxed);
    pthread_mutex_unlock(&c->lock);
    return t;
}

/* The owner, before on_close: refuse requests from now on.  Returns the
 * posts still waiting (to cancel). */
struct ps_post *ps__conn_close_mailbox(ps_conn *c)
{
    struct ps_post *p;

    pthread_mutex_lock(&c->lock);
    c->state = PS_CS_CLOSED;
    p = c->posts;
    c->posts = c->posts_tail = NULL;
    c->nposts = 0;
    c->mail = 0;
    atomic_store_explicit(&c->has_mail, false, memory_order_relaxed);
    pthread_mutex_unlock(&c->lock);
    return p;
}

/* ----------------------------------------------------------- accessors */

int ps_conn_fd(const ps_conn *c)
{
    return c->fd;
}

uint64_t ps_conn_id(const ps_conn *c)
{
    return c->id;
}

int ps_conn_peer(const ps_conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
    memcpy(ss, &c->peer, c->peerlen);
    *len = c->peerlen;
    return 0;
}

const char *ps_conn_peer_str(ps_conn *c)
{
    char buf[96];

    if (!c->peer_str) {
        ps_addr_format((const struct sockaddr *)&c->peer, c->peerlen, buf, sizeof buf);
        c->peer_str = strdup(buf);
        if (!c->peer_str)
            return "(unknown)";
    }
    return c->peer_str;
}

void ps_conn_set_data(ps_conn *c, void *data)
{
    c->udata = data;
}

void *ps_conn_data(const ps_conn *c)
{
    return c->udata;
}

ps_server *ps_conn_server(const ps_conn *c)
{
    return c->srv;
}

size_t ps_conn_pending(const ps_conn *c)
{
    return c->out.len;
}


/* SPDX-License-Identifier: MIT */
/*
 * event.c - one turn of an event-style connection on a worker thread.
 *
 * A turn: run on_open once, flush pending output, read up to read_budget
 * bytes (handing each chunk to on_data), then either finish the connection,
 * re-queue it (budget used up: let others run first), or re-arm it in epoll.
 *
 * Memory: input is read into the worker's scratch buffer; a connection gets
 * its own input buffer only for bytes on_data left unconsumed, and its own
 * output buffer only for bytes the socket would not take.  Both are freed
 * when they empty, so an idle connection holds no buffer.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define PS_LINGER_MAX (256u << 10) /* bytes discarded in a lingering close */

/* Whether the connection's own state lets it read; the user's pause is
 * applied separately (ps__conn_arm), since another thread may change it. */
static bool wants_read(const ps_conn *c)
{
    return !(c->flags & PS_CF_NO_READ);
}

static bool reading_allowed(const ps_conn *c)
{
    return wants_read(c) && !atomic_load_explicit(&c->user_paused, memory_order_relaxed);
}

static void mark_fatal(ps_conn *c)
{
    if (!(c->flags & PS_CF_FATAL))
        ps__count(&c->w->st.io_errors, 1);
    c->flags |= PS_CF_FATAL;
}

/* Write as much pending output as the socket takes. */
static void flush_out(ps_conn *c)
{
    ps_buf *b = &c->out;

    while (b->len > 0) {
        ssize_t n = ps__io_send(c, b->data + b->off, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                mark_fatal(c);
            return;
        }
        ps__count(&c->w->st.bytes_out, (uint64_t)n);
        b->off += (size_t)n;
        b->len -= (size_t)n;
        atomic_store_explicit(&c->out_stall_since, ps__coarse_ms(), memory_order_relaxed);
        ps__conn_touch(c);
    }
    ps__buf_free(b);
    atomic_store_explicit(&c->out_stall_since, 0, memory_order_relaxed);
}

/* The request clock (request_timeout_ms, min_rate) runs while a message is
 * incomplete: input left unconsumed, or between ps_conn_message_begin and
 * _end.  `got` bytes of the message are already in; it keeps running if
 * already started. */
static void clock_start(ps_conn *c, size_t got)
{
    if (atomic_load_explicit(&c->partial_since, memory_order_relaxed))
        return;
    atomic_store_explicit(&c->partial_since, ps__coarse_ms(), memory_order_relaxed);
    atomic_store_explicit(&c->partial_base,
                          atomic_load_explicit(&c->total_in, memory_order_relaxed) - got,
                          memory_order_relaxed);
}

static void clock_stop(ps_conn *c)
{
    atomic_store_explicit(&c->partial_since, 0, memory_order_relaxed);
}

void ps_conn_message_begin(ps_conn *c)
{
    c->flags |= PS_CF_MESSAGE;
    if (!(c->flags & PS_CF_BACKPRESSURE))
        clock_start(c, c->in.len);
}

void ps_conn_message_end(ps_conn *c)
{
    c->flags &= ~(unsigned)PS_CF_MESSAGE;
    if (c->in.len == 0)
        clock_stop(c);
}

/* Output passed out_high_water: stop reading.  The request clock stops
 * too: while we hold the peer's input back, a slow message is our doing. */
static void backpressure_on(ps_conn *c)
{
    c->flags |= PS_CF_BACKPRESSURE;
    clock_stop(c);
}

/* Output fell to out_low_water: read again, and offer input on_data left
 * unconsumed at once - a handler that stopped answering at high water
 * returned it, and the peer may have nothing more to send. */
static void backpressure_off(ps_conn *c)
{
    c->flags &= ~(unsigned)PS_CF_BACKPRESSURE;
    if (c->in.len > 0 || (c->flags & PS_CF_MESSAGE))
        clock_start(c, c->in.len);
    if (c->in.len > 0)
        c->flags |= PS_CF_IN_UNSEEN;
}

int ps_conn_send(ps_conn *c, const void *data, size_t len)
{
    const char *p = data;
    size_t max = c->srv->cfg.max_output;

    if (!c->srv->event_style)
        return -EINVAL;
    if (c->flags & (PS_CF_CLOSING | PS_CF_FATAL | PS_CF_OUTLIMIT | PS_CF_WR_SHUT | PS_CF_ABORT))
        return -EPIPE;
    while (c->out.len == 0 && len > 0) { /* nothing queued: write directly */
        ssize_t n = ps__io_send(c, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            mark_fatal(c);
            return -EPIPE;
        }
        ps__count(&c->w->st.bytes_out, (uint64_t)n);
        p += n;
        len -= (size_t)n;
    }
    if (len == 0)
        return 0;
    if (max > 0 && c->out.len + len > max) {
        c->flags |= PS_CF_OUTLIMIT;
        ps__count(&c->w->st.output_closes, 1);
        return -ENOBUFS;
    }
    if (c->out.len == 0)
        atomic_store_explicit(&c->out_stall_since, ps__coarse_ms(), memory_order_relaxed);
    if (ps__buf_append(&c->out, p, len) < 0)
        return -ENOMEM;
    if (c->out.len > c->srv->cfg.out_high_water && !(c->flags & PS_CF_BACKPRESSURE))
        backpressure_on(c);
    return 0;
}

/* Keep data[0..len) (which is not in c->in) as unconsumed input. */
static void keep_input(ps_conn *c, const char *data, size_t len)
{
    if (c->in.len + len > c->srv->cfg.max_input) {
        c->flags |= PS_CF_OVERFLOW;
        return;
    }
    if (c->in.len == 0 && !(c->flags & PS_CF_BACKPRESSURE))
        clock_start(c, len); /* a partial message begins */
    if (ps__buf_append(&c->in, data, len) < 0)
        mark_fatal(c);
}

static void input_consumed(ps_conn *c)
{
    ps__buf_free(&c->in);
    if (!(c->flags & PS_CF_MESSAGE))
        clock_stop(c);
}

/* Hand new bytes to on_data, together with any earlier unconsumed input. */
static void deliver(ps_conn *c, const char *data, size_t len)
{
    size_t used;

    if (c->in.len > 0) {
        if (len > 0)
            keep_input(c, data, len);
        if (c->flags & (PS_CF_OVERFLOW | PS_CF_FATAL | PS_CF_OUTLIMIT))
            return;
        used = c->h->on_data(c, c->in.data + c->in.off, c->in.len, c->user);
        if (used >= c->in.len) {
            input_consumed(c);
        } else {
            c->in.off += used;
            c->in.len -= used;
        }
        return;
    }
    used = c->h->on_data(c, data, len, c->user);
    if (used < len)
        keep_input(c, data + used, len - used);
}

/* Read up to read_budget bytes.  Returns true if the budget ran out while
 * the socket may still hold more. */
static bool read_input(struct ps_worker *w, ps_conn *c)
{
    size_t budget = c->srv->cfg.read_budget;

    while (budget > 0 && reading_allowed(c)) {
        size_t room = w->scratch_cap < budget ? w->scratch_cap : budget;
        ssize_t n = ps__io_recv(c, w->scratch, room);
        if (n > 0) {
            ps__conn_got(c, (uint64_t)n);
            budget -= (size_t)n;
            deliver(c, w->scratch, (size_t)n);
            /* drained: a further recv would say EAGAIN, and the edge of
             * whatever comes next is still to be reported - unless the
             * peer's FIN waits behind these bytes (its edge is spent: read
             * on to the EOF), or TLS holds bytes that epoll cannot see */
            if ((size_t)n < room && !(c->flags & PS_CF_READ_ALL) && ps__io_drained(c))
                return false;
            continue;
        }
        if (n == 0) {
            c->flags |= PS_CF_PEER_EOF;
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            mark_fatal(c);
        }
        return false;
    }
    return budget == 0;
}

/* Lingering close: our side is done and flushed; half-close, then read and
 * discard what the peer still sends until it closes (or linger_ms, or
 * PS_LINGER_MAX bytes), so that unread input does not turn our close into a
 * reset that destroys the response in flight.  Returns true when the
 * connection should be finished now. */
static bool linger(struct ps_worker *w, ps_conn *c)
{
    if (c->srv->cfg.linger_ms == 0)
        return true;
    if (!(c->flags & PS_CF_LINGER)) {
        c->flags |= PS_CF_LINGER;
        ps__tls_close_notify(c);
        if (shutdown(c->fd, SHUT_WR) < 0)
            return true;
        atomic_store_explicit(&c->linger_since, ps__coarse_ms(), memory_order_relaxed);
    }
    while (c->lingered < PS_LINGER_MAX) {
        ssize_t n = recv(c->fd, w->scratch, w->scratch_cap, 0);
        if (n > 0) {
            c->lingered += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)); /* EOF, error: done */
    }
    return true;
}

static ps_close_reason close_reason(const ps_conn *c)
{
    if (c->flags & PS_CF_LINGER)
        return PS_CLOSE_LOCAL; /* even when linger_ms cut it */
    if (atomic_load_explicit(&c->forced, memory_order_relaxed))
        return PS_CLOSE_SHUTDOWN;
    if (c->connect_err)
        return c->connect_err == ETIMEDOUT      ? PS_CLOSE_CONNECT_TIMEOUT
               : c->connect_err == ECONNREFUSED ? PS_CLOSE_REFUSED
                                                : PS_CLOSE_UNREACHABLE;
    if (atomic_load_explicit(&c->timed_out, memory_order_relaxed))
        return PS_CLOSE_TIMEOUT;
    if (c->flags & PS_CF_OUTLIMIT)
        return PS_CLOSE_OUTPUT;
    if (c->flags & PS_CF_ABORT)
        return PS_CLOSE_LOCAL;
    if (c->flags & PS_CF_OVERFLOW)
        return PS_CLOSE_OVERFLOW;
    if (c->flags & PS_CF_FATAL)
        return PS_CLOSE_ERROR;
    if (c->flags & PS_CF_CLOSING)
        return PS_CLOSE_LOCAL;
    return PS_CLOSE_EOF;
}

/* The end: refuse requests, cancel what waits (posts get -ECANCELED, the
 * timer is dropped), then on_close, then the socket and the record go. */
static void finish(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;
    struct ps_post *p = ps__conn_close_mailbox(c);

    ps__timer_cancel(s, c);
    while (p) {
        struct ps_post *next = p->next;
        p->fn(c, p->arg, -ECANCELED);
        free(p);
        p = next;
    }
    if (c->h->on_close)
        c->h->on_close(c, close_reason(c), c->user);
    ps__conn_destroy(w, c);
}

void ps__event_fail(struct ps_worker *w, ps_conn *c)
{
    finish(w, c);
}

/* Requests other threads left while nobody ran the connection: a resume
 * re-offers held input, the timer calls on_timer, posts run in order. */
static void open_mailbox(ps_conn *c)
{
    struct ps_post *p;
    unsigned mail = ps__conn_take_mail(c, &p);

    if (mail & PS_MAIL_RESUME) {
        c->ready |= EPOLLIN; /* bytes may have waited while paused */
        if (c->in.len > 0)
            c->flags |= PS_CF_IN_UNSEEN;
    }
    if ((mail & PS_MAIL_TIMER) && c->h->on_timer)
        c->h->on_timer(c, c->user);
    while (p) {
        struct ps_post *next = p->next;
        p->fn(c, p->arg, 0);
        free(p);
        p = next;
    }
}

/* The peer half-closed: tell a handler that asked (once, after on_data has
 * seen everything) - it keeps the connection for sending. */
static void peer_done(ps_conn *c)
{

    if (!(c->flags & PS_CF_PEER_EOF) || (c->flags & PS_CF_EOF_SEEN) || !c->h->on_eof)
        return;
    c->flags |= PS_CF_EOF_SEEN;
    if (!(c->flags & (PS_CF_CLOSING | PS_CF_FATAL | PS_CF_OVERFLOW | PS_CF_OUTLIMIT)))
        c->h->on_eof(c, c->user);
}

/* ps_conn_shutdown_write, event style: the FIN goes once output is out. */
static void write_done(ps_conn *c)
{
    if ((c->flags & (PS_CF_WR_SHUT | PS_CF_WR_DONE)) != PS_CF_WR_SHUT || c->out.len > 0)
        return;
    c->flags |= PS_CF_WR_DONE;
    ps__tls_close_notify(c); /* TLS 1.3 reads on after it (half-close) */
    /* The peer's EOF already came (everything it sent was read): the
     * connection ends in this turn, and its close sends the FIN. */
    if (c->flags & PS_CF_PEER_EOF)
        return;
    if (shutdown(c->fd, SHUT_WR) < 0)
        mark_fatal(c);
}

/* Whether the connection ends now: an error or overflow at once; the
 * peer's EOF once everything queued has been written (with on_eof: once
 * our side is shut too); a close request after that and a lingering close. */
static bool ends_now(struct ps_worker *w, ps_conn *c)
{
    bool flushed = c->out.len == 0;

    if (c->flags & (PS_CF_FATAL | PS_CF_OVERFLOW | PS_CF_OUTLIMIT | PS_CF_ABORT))
        return true;
    /* A timeout or the drain deadline shut the socket down: end it even if
     * the handler, with on_eof, meant to keep it open after the peer's EOF. */
    if (atomic_load_explicit(&c->forced, memory_order_relaxed) ||
        atomic_load_explicit(&c->timed_out, memory_order_relaxed))
        return true;
    if ((c->flags & PS_CF_PEER_EOF) && flushed &&
        (!c->h->on_eof || (c->flags & PS_CF_WR_DONE)))
        return true;
    return (c->flags & PS_CF_CLOSING) && flushed && linger(w, c);
}

/* One turn; returns false when the connection was finished. */
static bool turn(struct ps_worker *w, ps_conn *c, bool *more)
{
    ps_server *s = c->srv;

    open_mailbox(c);
    if (c->out.len > 0)
        flush_out(c);
    if ((c->flags & PS_CF_BACKPRESSURE) && c->out.len <= s->cfg.out_low_water) {
        backpressure_off(c);
        c->ready |= EPOLLIN; /* bytes may have waited while we did not read */
        if (c->h->on_drain)
            c->h->on_drain(c, c->user);
    }
    if ((c->flags & PS_CF_IN_UNSEEN) && reading_allowed(c)) {
        /* bytes that came with the PROXY header, or were held back */
        c->flags &= ~(unsigned)PS_CF_IN_UNSEEN;
        deliver(c, NULL, 0);
    }
    /* The FIN's (the urgent byte's) edge comes once: remembered across
     * pauses and re-queues. */
    if (c->ready & PS_EV_READ_MORE)
        c->flags |= PS_CF_READ_ALL;
    /* Read only when the socket said so: a turn that only a post or a
     * timer started saves the recv that would say EAGAIN. */
    *more = (c->ready & (EPOLLIN | EPOLLHUP | EPOLLERR | PS_EV_READ_MORE | ps__io_read_events(c))) &&
            reading_allowed(c) && read_input(w, c);
    peer_done(c);
    write_done(c);
    if (ends_now(w, c)) {
        finish(w, c);
        return false;
    }
    return true;
}

/* The events a connection waits for after a turn (without the fairness
 * re-queue). */
static uint32_t rest_events(const ps_conn *c)
{
    uint32_t events = 0;

    if (c->flags & PS_CF_LINGER)
        return EPOLLIN;
    if (wants_read(c))
        events |= ps__io_read_events(c); /* EPOLLIN, or what TLS waits for */
    if (c->out.len > 0)
        events |= ps__io_write_events(c);
    return events;
}

void ps__event_turn(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;
    bool more;
    uint32_t events;

    ps__conn_touch(c);
    if ((c->flags & PS_CF_CONNECTING) && !ps__connect_step(w, c))
        return;
    if (!(c->flags & PS_CF_OPENED)) {
        c->flags |= PS_CF_OPENED;
        if (c->h->on_open && c->h->on_open(c, c->user) != 0)
            c->flags |= PS_CF_CLOSING;
    }
    if (!turn(w, c, &more))
        return;
    if (more && reading_allowed(c)) {
        /* fairness: back of the queue, still readable.  Not to epoll: the
         * bytes left behind bring no new edge (conn.c). */
        c->ready = EPOLLIN;
        ps__conn_stamp(c, 0);
        ps__queue_push_spill(s->q, &c->spill, c);
        return;
    }
    events = rest_events(c); /* lingering: the peer's EOF (or linger_ms) ends it */
    if (!ps__conn_arm(c, events)) { /* a request or an event came in: another turn */
        ps__conn_stamp(c, 0);
        ps__queue_push_spill(s->q, &c->spill, c);
    }
}

/* A worker of the same server writes to a connection nobody runs: it owns
 * it for the send (IDLE -> OWNED, as a collector would), then hands it back
 * to epoll - or to the queue, when the send broke it or a request came
 * meanwhile, so that its own turn ends it or applies the request.  Its
 * callbacks never run here. */
ssize_t ps_conn_try_send(ps_conn_ref ref, const void *data, size_t len)
{
    ps_conn *c = ref.conn;
    struct ps_worker *w = ps__self;
    ssize_t rc;

    if (!c || !ref.id)
        return -ESHUTDOWN;
    if (!w || w->srv != c->srv)
        return -EBUSY;
    pthread_mutex_lock(&c->lock);
    if (c->id != ref.id || c->state == PS_CS_FREE || c->state == PS_CS_CLOSED) {
        pthread_mutex_unlock(&c->lock);
        return -ESHUTDOWN;
    }
    if (c->state != PS_CS_IDLE || (c->flags & PS_CF_CONNECTING)) {
        pthread_mutex_unlock(&c->lock);
        return -EBUSY;
    }
    c->state = PS_CS_OWNED;
    pthread_mutex_unlock(&c->lock);
    c->w = w;
    rc = ps_conn_send(c, data, len);
    if (rc == 0) {
        rc = (ssize_t)c->out.len;
        ps__conn_touch(c);
    }
    if ((c->flags & (PS_CF_FATAL | PS_CF_OUTLIMIT | PS_CF_ABORT)) ||
        !ps__conn_arm(c, rest_events(c))) {
        ps__conn_stamp(c, 0);
        ps__queue_push_spill(c->srv->q, &c->spill, c);
    }
    return rc;
}

/* ps_conn_shutdown_write in the event style (blocking.c dispatches). */
int ps__event_shutdown_write(ps_conn *c)
{
    if (c->flags & (PS_CF_FATAL | PS_CF_OUTLIMIT))
        return -ENOTCONN;
    c->flags |= PS_CF_WR_SHUT;
    write_done(c);
    return (c->flags & PS_CF_FATAL) ? -ENOTCONN : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * connect.c - outbound connections (ps_server_connect): a non-blocking
 * connect from any thread that yields an event-style connection on the same
 * pool, with the same callbacks, watermarks, timeouts and counters as an
 * accepted one.
 *
 * The calling thread creates the connection and owns it until it arms it
 * for EPOLLOUT (or queues it, when connect(2) finished or failed at once);
 * the worker that collects it reads SO_ERROR and either opens it (on_open)
 * or ends it (on_close with the reason).  The connect timeout is the
 * connection's own timer, so it is a mailbox request like any expiry.
 * Addresses are those of ps_addr_parse: numeric, "localhost" or unix: -
 * nothing that needs DNS, so nothing here blocks.
 */
#include "internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* owned: h itself when the connection owns a copy (abi.c), freed with it */
int ps__server_connect(ps_server *s, const char *addr, const ps_handler *h, ps_handler *owned,
                       void *user, void *data, ps_conn_ref *ref, ps_err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ps_conn *c;
    int fd, rc;

    if (!s->event_style || !h || !h->on_data || h->serve)
        return ps__set_err(err, -EINVAL, "connect: needs an event-style server and handler");
    if (atomic_load_explicit(&s->state, memory_order_acquire) != PS_STATE_STARTED ||
        atomic_load_explicit(&s->stopping, memory_order_acquire))
        return ps__set_err(err, -ESHUTDOWN, "connect: the server is not running");
    if (!addr)
        return ps__set_err(err, -EINVAL, "connect: no address");
    if (ps_addr_parse(addr, &ss, &len, err) < 0)
        return -EINVAL; /* err->msg names the bad part */
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ps__set_err(err, -errno, "connect %s: socket: %s", addr, ps_strerror(errno));
    c = ps__conn_new(s, fd, &ss, len);
    if (!c) {
        close(fd);
        return ps__set_err(err, -ENOMEM, "connect %s: out of memory", addr);
    }
    c->h = h;
    c->h_owned = owned;
    c->user = user;
    c->udata = data;
    c->outbound = true;
    c->flags |= PS_CF_CONNECTING;
    c->ready = 0;
    if (ps__registry_add(s, c) < 0) { /* (not limited; refused only after the drain) */
        close(fd);
        ps__conn_recycle(c);
        return ps__set_err(err, -ESHUTDOWN, "connect: the server has stopped");
    }
    atomic_fetch_add_explicit(&s->connects, 1, memory_order_relaxed);
    if (ref) { /* before anyone else can own it: on_close may come at once */
        ref->conn = c;
        ref->id = c->id;
    }
    do
        rc = connect(fd, (struct sockaddr *)&ss, len);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EINPROGRESS) {
        c->connect_err = errno; /* the turn reports it through on_close */
    } else if (rc < 0) {
        if (s->cfg.connect_timeout_ms > 0)
            ps__timer_arm(c, s->cfg.connect_timeout_ms);
        if (ps__conn_arm(c, EPOLLOUT))
            goto out;
    } else {
        c->ready = EPOLLOUT; /* connected at once (Unix sockets, often) */
    }
    ps__conn_stamp(c, 0);
    ps__queue_push_spill(s->q, &c->spill, c);
out:
    return 0;
}

/* Where a connect stands, asked of the socket rather than read off the
 * event: an event may be a late one of an earlier connection in this
 * record (conn.c: records are recycled, and an event already taken from
 * epoll_wait by another worker can land on the next one).  Taking its
 * EPOLLHUP for a reset once closed a healthy connect, one proxied
 * connection in about a million.  Connected: the socket has a peer (one
 * call, as many as the SO_ERROR read it replaces).  Failed: the error is
 * in SO_ERROR.  Neither: still connecting (EINPROGRESS). */
static int connect_result(int fd)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer, len = sizeof(int);
    int e = 0;

    if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
        return 0;
    if (errno != ENOTCONN)
        return errno;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        return errno;
    return e ? e : EINPROGRESS;
}

/* A connection still connecting waits for EPOLLOUT again. */
static bool wait_connected(ps_server *s, ps_conn *c)
{
    if (!ps__conn_arm(c, EPOLLOUT)) { /* a post woke it: posts wait for on_open */
        ps__conn_stamp(c, 0);
        ps__queue_push_spill(s->q, &c->spill, c);
    }
    return false;
}

/* The turn of a connection still connecting: true once it is connected;
 * false when it waits on (re-armed) or failed (finished, on_close told). */
bool ps__connect_step(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;
    int e = c->connect_err, one = 1;

    if (!e && ps__conn_take_timer(c))
        e = ETIMEDOUT;
    if (!e && !(c->ready & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return wait_connected(s, c);
    if (!e && (e = connect_result(c->fd)) == EINPROGRESS)
        return wait_connected(s, c);
    if (e) {
        c->connect_err = e;
        atomic_fetch_add_explicit(&s->connect_errors, 1, memory_order_relaxed);
        ps__event_fail(w, c);
        return false;
    }
    c->flags &= ~(unsigned)PS_CF_CONNECTING;
    ps__timer_cancel(s, c);
    if (s->cfg.tcp_nodelay && c->peer.ss_family != AF_UNIX)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ready = EPOLLIN; /* it may have sent already */
    ps__conn_touch(c);
    return true;
}

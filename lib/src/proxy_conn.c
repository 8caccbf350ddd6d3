/* SPDX-License-Identifier: MIT */
/*
 * proxy_conn.c - reading the PROXY protocol header of a connection that
 * came through a load balancer (listeners marked "proxy:"), on a worker,
 * before the handler sees the connection.
 *
 * The header is read (not peeked: unread bytes would keep a level-triggered
 * poller firing) into the connection's input buffer, at most
 * PS__PROXY_MAX_LEN bytes, across as many readiness events as it takes.
 * Bytes after the header stay in that buffer for the handler: event style
 * gets them in its first on_data, blocking style in its first
 * ps_conn_read.  A malformed header closes the connection before any
 * callback runs, counted in proxy_errors.  A peer that never completes its
 * header is cut by the timeout scan (header_timeout_ms).
 *
 * max_per_client applies to the client the header names, not to the load
 * balancer that connected: the connection is counted only here, once the
 * header is read, and a client past its share is closed with the busy
 * message (stats.limit_refused), still before any callback.
 */
#include "internal.h"
#include "proxy.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

static void drop(struct ps_worker *w, ps_conn *c, bool bad)
{
    if (bad) {
        ps__count(&w->st.proxy_errors, 1);
        ps__log(c->srv, PS_LOG_DEBUG, "connection %llu from %s: malformed PROXY header",
                (unsigned long long)c->id, ps_conn_peer_str(c));
    }
    ps__conn_destroy(w, c);
}

/* The client the header named is past max_per_client (or no memory to
 * count it): refuse it as the acceptor refuses a direct client. */
static void refuse(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;

    ps__count(&w->st.limit_refused, 1); /* before the client can see it */
    ps__log(s, PS_LOG_DEBUG, "connection %llu: client %s over max_per_client, refused",
            (unsigned long long)c->id, ps_conn_peer_str(c));
    if (s->h.busy_len > 0 && !(c->flags & PS_CF_TLS)) /* best effort, as at accept */
        send(c->fd, s->h.busy_msg, s->h.busy_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    ps__conn_destroy(w, c);
}

/* Returns true when the header is complete and the turn may go on; false
 * when the connection was re-armed to wait for more, or closed. */
bool ps__proxy_step(struct ps_worker *w, ps_conn *c)
{
    struct sockaddr_storage src;
    socklen_t srclen = 0;
    char buf[PS__PROXY_MAX_LEN];
    size_t room = PS__PROXY_MAX_LEN - c->in.len;
    ssize_t n;
    int rc;

again:
    do
        n = recv(c->fd, buf, room, 0);
    while (n < 0 && errno == EINTR);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        drop(w, c, false); /* gone before the header: nothing to tell the handler */
        return false;
    }
    if (n > 0) {
        ps__conn_got(c, (uint64_t)n);
        if (ps__buf_append(&c->in, buf, (size_t)n) < 0) {
            drop(w, c, false);
            return false;
        }
    }
    rc = ps__proxy_parse(c->in.data + c->in.off, c->in.len, &src, &srclen);
    if (rc < 0) {
        drop(w, c, true);
        return false;
    }
    if (rc == 0 && n > 0) {
        room = PS__PROXY_MAX_LEN - c->in.len;
        goto again; /* to EAGAIN (or the EOF): the next edge may be spent */
    }
    if (rc == 0) {
        if (!ps__conn_arm(c, EPOLLIN)) { /* no handle exists yet: cannot happen */
            ps__conn_stamp(c, 0);
            ps__queue_push_spill(c->srv->q, &c->spill, c);
        }
        return false;
    }
    assert(!c->client_counted); /* the key must not change under a count */
    if (srclen > 0) {
        memcpy(&c->peer, &src, srclen);
        c->peerlen = srclen;
        free(c->peer_str);
        c->peer_str = NULL;
    }
    ps__log(c->srv, PS_LOG_DEBUG, "connection %llu: PROXY header: client %s",
            (unsigned long long)c->id, ps_conn_peer_str(c));
    if (ps__registry_count_client(c->srv, c) < 0) {
        refuse(w, c);
        return false;
    }
    c->in.off += (size_t)rc;
    c->in.len -= (size_t)rc;
    if (c->in.len == 0)
        ps__buf_free(&c->in);
    else
        c->flags |= PS_CF_IN_UNSEEN;
    c->flags &= ~(unsigned)PS_CF_PROXY;
    /* "proxy:tls:": the handshake is still to come, and the bytes after
     * the header are its start (tls.c takes them from c->in) */
    atomic_store_explicit(&c->header_pending, (c->flags & PS_CF_TLS) != 0,
                          memory_order_relaxed);
    return true;
}

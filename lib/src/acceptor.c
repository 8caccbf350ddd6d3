/* SPDX-License-Identifier: MIT */
/*
 * acceptor.c - the accept path (reactor thread only).
 *
 * Admission: an accepted connection is pushed to the work queue.  When the
 * queue is full, the `block` policy keeps it in the reactor's pending list
 * and stops accepting until a slot frees (the kernel backlog absorbs the
 * rest, as in Apache's worker MPM); `reject` writes the busy message and
 * closes it.
 *
 * Out of descriptors (EMFILE/ENFILE): accept would report the same error
 * forever while the connection stays in the backlog, and a level-triggered
 * poller would spin.  We give up a reserved descriptor to accept-and-close
 * one waiting client (it sees a clean close, not a hang) and take the
 * listeners off the poller for a short back-off.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define PS_ACCEPT_BATCH 64    /* accepts per listener per wake-up */
#define PS_EMFILE_BACKOFF 100 /* ms with listeners off after EMFILE */

/* Turn accepting on or off without closing the sockets. */
void ps__listeners_enable(ps_server *s, bool on)
{
    int i;

    for (i = 0; i < s->nls; i++) {
        struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &s->ls[i]};
        if (s->ls[i].fd >= 0 && s->ls[i].type == SOCK_STREAM)
            epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->ls[i].fd, &ev);
    }
}

/* Refuse an accepted connection that is not (or no longer) registered.
 * A TLS client gets no busy message: there is no session to carry it. */
static void refuse(ps_server *s, ps_conn *c)
{
    if (s->h.busy_len > 0 && !(c->flags & PS_CF_TLS)) /* best effort: a fresh socket's
                                                         buffer takes it */
        send(c->fd, s->h.busy_msg, s->h.busy_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(c->fd);
    ps__conn_recycle(c);
}

/* Admit an accepted socket: queue it, or apply the full-queue policy. */
static void admit(ps_server *s, ps_listener *l, int fd, const struct sockaddr_storage *peer,
                  socklen_t len)
{
    ps_conn *c;
    int one = 1;

    if (s->cfg.tcp_nodelay && peer->ss_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c = ps__conn_new(s, fd, peer, len);
    if (!c) {
        close(fd);
        ps__count(&s->rst.accept_errors, 1);
        ps__log(s, PS_LOG_WARN, "accept: out of memory, connection dropped");
        return;
    }
    if (l->proxy || l->tls) {
        c->flags |= (l->proxy ? PS_CF_PROXY : 0) | (l->tls ? PS_CF_TLS : 0);
        atomic_store_explicit(&c->header_pending, true, memory_order_relaxed);
    }
    if (ps__registry_add(s, c) < 0) { /* max_connections, max_per_client */
        ps__count(&s->rst.limit_refused, 1); /* before the client can see it */
        refuse(s, c);
        return;
    }
    /* Counted before the push: a worker may serve it, and its client see
     * the result, before this thread runs again. */
    ps__count(&s->rst.accepted, 1);
    if (!s->pend_head && ps__queue_try_push(s->q, c) == 0)
        return;
    if (s->cfg.policy == PS_POLICY_REJECT) {
        ps__count(&s->rst.accepted, (uint64_t)-1);
        ps__count(&s->rst.rejected, 1);
        ps__registry_remove(s, c);
        refuse(s, c);
        return;
    }
    ps__count(&s->rst.queue_full_waits, 1);
    ps__reactor_dispatch(s, c); /* joins the pending list */
    s->accept_paused = true;
    ps__listeners_enable(s, false);
}

static void out_of_descriptors(ps_server *s, ps_listener *l, int e)
{
    int64_t now = ps__now_ms();

    ps__count(&s->rst.accept_errors, 1);
    ps__count(&s->rst.accept_emfile, 1);
    if (s->reserve_fd >= 0) {
        int fd;
        close(s->reserve_fd);
        fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    s->backoff_until = now + PS_EMFILE_BACKOFF;
    ps__listeners_enable(s, false);
    if (now - s->last_emfile_log >= 1000) {
        s->last_emfile_log = now;
        ps__log(s, PS_LOG_WARN, "accept on %s: %s; backing off %d ms", l->name, ps_strerror(e),
                PS_EMFILE_BACKOFF);
    }
}

void ps__accept_ready(ps_server *s, ps_listener *l)
{
    int i;

    for (i = 0; i < PS_ACCEPT_BATCH && !s->accept_paused && s->backoff_until == 0; i++) {
        struct sockaddr_storage peer = {.ss_family = AF_UNSPEC}; /* glibc's transparent-
                                                                  union accept4 hides the
                                                                  write from analyzers */
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(s, l, fd, &peer, len);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return;
        case EINTR:
            continue;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            out_of_descriptors(s, l, errno);
            return;
        default: /* ECONNABORTED, EPROTO, EPERM (firewall), ...: that client only */
            ps__count(&s->rst.accept_errors, 1);
            ps__log(s, PS_LOG_DEBUG, "accept on %s: %s", l->name, ps_strerror(errno));
            continue;
        }
    }
}

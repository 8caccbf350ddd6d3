/* SPDX-License-Identifier: MIT */
/*
 * acceptor.c - the accept path.
 *
 * Who accepts: in the blocking style the reactor thread does, and pushes
 * each connection to the work queue.  In the event style the stream
 * listeners wait in the connections' own epoll set (lepfd == cepfd), so the
 * idle worker that polls it accepts: it runs the first new connection
 * itself (on_open, its first read) and queues the others of the batch.  A
 * new connection then costs no thread-to-thread hand-off, and the accept
 * rate is bounded by idle workers: while every worker is busy nobody
 * accepts and the kernel backlog holds new clients (docs/architecture.md).
 *
 * Admission: an accepted connection is pushed to the work queue.  When the
 * queue is full, the `block` policy keeps it (reactor: in the pending list,
 * and stops accepting until a slot frees; worker: it runs it itself and
 * stops the batch) while the kernel backlog absorbs the rest, as in
 * Apache's worker MPM; `reject` writes the busy message and closes it.
 *
 * Out of descriptors (EMFILE/ENFILE): accept would report the same error
 * forever while the connection stays in the backlog, and a level-triggered
 * poller would spin.  We give up a reserved descriptor to accept-and-close
 * one waiting client (it sees a clean close, not a hang) and take the
 * listeners off the poller for a short back-off.  A worker that hits it
 * takes the listeners off and leaves the rest to the reactor, which owns
 * the reserve descriptor and the back-off clock.
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

#define PS_ACCEPT_BATCH 64    /* accepts per listener per wake-up (reactor) */
#define PS_WORKER_ACCEPT_BATCH 16 /* accepts per wake-up of a worker, which also
                                     serves them */
#define PS_EMFILE_BACKOFF 100 /* ms with listeners off after EMFILE */

/* Turn accepting on or off without closing the sockets. */
void ps__listeners_enable(ps_server *s, bool on)
{
    int i;

    for (i = 0; i < s->nls; i++) {
        struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.ptr = &s->ls[i]};
        if (s->ls[i].fd >= 0 && s->ls[i].type == SOCK_STREAM)
            epoll_ctl(s->lepfd, EPOLL_CTL_MOD, s->ls[i].fd, &ev);
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

/* cfg.tcp_nodelay.  Linux copies TCP_NODELAY from the listening socket,
 * where listener.c sets it, to every socket it accepts: once an accepted
 * socket is seen to have it, the others are spared a system call each (one
 * in seven of a connect-echo-close cycle).  Sockets queued before the
 * listener had it (a hand-off) lack it; after PS_NODELAY_CHECKS such, or on
 * a kernel that does not copy it, every socket gets its own setsockopt, as
 * before.  Racing accepters may check once more; nothing worse. */
#define PS_NODELAY_CHECKS 16

static void set_nodelay(ps_listener *l, int fd)
{
    int one = 1, v = 0, st = atomic_load_explicit(&l->nodelay, memory_order_relaxed);
    socklen_t len = sizeof v;

    if (st == PS_NODELAY_INHERITED)
        return;
    if (st >= 0) {
        if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v) {
            atomic_store_explicit(&l->nodelay, PS_NODELAY_INHERITED, memory_order_relaxed);
            return;
        }
        atomic_store_explicit(&l->nodelay, st + 1 < PS_NODELAY_CHECKS ? st + 1 : PS_NODELAY_EACH,
                              memory_order_relaxed);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Make a connection of an accepted socket and register it, counting in
 * `ct` (the reactor's or the accepting worker's counters).  NULL when it
 * was refused (max_connections, max_per_client) or no memory: the socket
 * is closed. */
static ps_conn *admission(ps_server *s, ps_listener *l, int fd,
                          const struct sockaddr_storage *peer, socklen_t len, ps_counters *ct)
{
    ps_conn *c;

    if (s->cfg.tcp_nodelay && peer->ss_family != AF_UNIX)
        set_nodelay(l, fd);
    c = ps__conn_new(s, fd, peer, len);
    if (!c) {
        close(fd);
        ps__count(&ct->accept_errors, 1);
        ps__log(s, PS_LOG_WARN, "accept: out of memory, connection dropped");
        return NULL;
    }
    if (l->proxy || l->tls) {
        c->flags |= (l->proxy ? PS_CF_PROXY : 0) | (l->tls ? PS_CF_TLS : 0);
        atomic_store_explicit(&c->header_pending, true, memory_order_relaxed);
    }
    if (ps__registry_add(s, c) < 0) { /* max_connections, max_per_client */
        ps__count(&ct->limit_refused, 1); /* before the client can see it */
        refuse(s, c);
        return NULL;
    }
    /* Counted before the push: a worker may serve it, and its client see
     * the result, before this thread runs again. */
    ps__count(&ct->accepted, 1);
    return c;
}

/* The queue was full: the reject policy turns the connection away. */
static void reject(ps_server *s, ps_conn *c, ps_counters *ct)
{
    ps__count(&ct->accepted, (uint64_t)-1);
    ps__count(&ct->rejected, 1);
    ps__registry_remove(s, c);
    refuse(s, c);
}

/* Reactor: queue an accepted socket, or apply the full-queue policy. */
static void admit(ps_server *s, ps_listener *l, int fd, const struct sockaddr_storage *peer,
                  socklen_t len)
{
    ps_conn *c = admission(s, l, fd, peer, len, &s->rst);

    if (!c)
        return;
    if (!s->pend_head && ps__queue_try_push(s->q, c) == 0)
        return;
    if (s->cfg.policy == PS_POLICY_REJECT) {
        reject(s, c, &s->rst);
        return;
    }
    ps__count(&s->rst.queue_full_waits, 1);
    ps__reactor_dispatch(s, c); /* joins the pending list */
    s->accept_paused = true;
    ps__listeners_enable(s, false);
}

/* Out of descriptors (reactor only: it owns the reserve descriptor and
 * the back-off clock). */
static void out_of_descriptors(ps_server *s, ps_listener *l, int e)
{
    int64_t now = ps__now_ms();

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

/* Out of descriptors or memory: no accept will succeed for a while. */
static bool resource_error(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* One accept4: the new socket, or a negative errno: -EAGAIN when nobody
 * waits, a resource_error (counted here), or -EINTR or another error that
 * concerns one client only (counted here; the caller goes on). */
static int accept_next(ps_server *s, ps_listener *l, struct sockaddr_storage *peer,
                       socklen_t *len, ps_counters *ct)
{
    int fd, e;

    *len = sizeof *peer;
    peer->ss_family = AF_UNSPEC; /* glibc's transparent-union accept4 hides the
                                    write from analyzers */
    fd = accept4(l->fd, (struct sockaddr *)peer, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        return fd;
    e = errno;
    if (e == EWOULDBLOCK)
        e = EAGAIN;
    if (e == EAGAIN || e == EINTR)
        return -e;
    ps__count(&ct->accept_errors, 1);
    if (resource_error(e))
        ps__count(&ct->accept_emfile, 1);
    else /* ECONNABORTED, EPROTO, EPERM (firewall), ...: that client only */
        ps__log(s, PS_LOG_DEBUG, "accept on %s: %s", l->name, ps_strerror(e));
    return -e;
}

void ps__accept_ready(ps_server *s, ps_listener *l)
{
    struct sockaddr_storage peer;
    socklen_t len;
    int i, fd;

    for (i = 0; i < PS_ACCEPT_BATCH && !s->accept_paused && s->backoff_until == 0; i++) {
        fd = accept_next(s, l, &peer, &len, &s->rst);
        if (fd >= 0) {
            admit(s, l, fd, &peer, len);
        } else if (fd == -EAGAIN) {
            return;
        } else if (resource_error(-fd)) {
            out_of_descriptors(s, l, -fd);
            return;
        }
    }
}

/* Reactor: a worker ran out of descriptors on a listener (ps__accept_take). */
void ps__accept_emfile_check(ps_server *s)
{
    int i = atomic_exchange_explicit(&s->emfile_listener, -1, memory_order_acquire);

    if (i >= 0 && !s->draining)
        out_of_descriptors(s, &s->ls[i], atomic_load_explicit(&s->emfile_errno,
                                                              memory_order_relaxed));
}

/* Accept on a worker (event style; the listener was readable in cepfd).
 * The first connection goes to *first unless that is taken, the others to
 * the queue.  Returns a connection the queue had no room for under the
 * block policy, which the caller must run itself (and the batch stops
 * there: the backlog holds the rest), or NULL.  The reactor closes the
 * listeners at the drain only once no worker is in here. */
ps_conn *ps__accept_take(struct ps_worker *w, ps_listener *l, void **first)
{
    ps_server *s = w->srv;
    struct sockaddr_storage peer;
    ps_conn *c, *held = NULL;
    socklen_t len;
    int i, fd;

    atomic_fetch_add(&s->accepting, 1); /* seq_cst: against begin_drain */
    for (i = 0; i < PS_WORKER_ACCEPT_BATCH && !held && !atomic_load(&s->accept_closed); i++) {
        fd = accept_next(s, l, &peer, &len, &w->st);
        if (fd == -EAGAIN)
            break;
        if (fd < 0 && resource_error(-fd)) { /* listeners off now; the reactor does the rest */
            ps__listeners_enable(s, false);
            atomic_store_explicit(&s->emfile_errno, -fd, memory_order_relaxed);
            atomic_store_explicit(&s->emfile_listener, (int)(l - s->ls), memory_order_release);
            ps__reactor_wake(s);
            break;
        }
        if (fd < 0 || !(c = admission(s, l, fd, &peer, len, &w->st)))
            continue;
        if (!*first)
            *first = c;
        else if (ps__queue_try_push(s->q, c) == 0)
            continue;
        else if (s->cfg.policy == PS_POLICY_REJECT)
            reject(s, c, &w->st);
        else {
            ps__count(&w->st.queue_full_waits, 1);
            held = c;
        }
    }
    atomic_fetch_sub(&s->accepting, 1);
    return held;
}

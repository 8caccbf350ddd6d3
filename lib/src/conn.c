/*
 * conn.c - connections: life cycle, accessors, buffers and the blocking-style
 * I/O calls.
 *
 * Sockets are non-blocking from accept4 on.  Blocking-style calls try the
 * syscall first and poll() only on EAGAIN, so a busy connection pays no extra
 * syscall and a quiet one gets an exact per-call timeout.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

ps_conn *ps__conn_new(ps_server *s, int fd, const struct sockaddr_storage *peer, socklen_t len)
{
    ps_conn *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->kind = PS_KIND_CONN;
    c->fd = fd;
    c->srv = s;
    c->id = ++s->next_id;
    c->timeout_ms = s->cfg.io_timeout_ms;
    pthread_mutex_init(&c->lock, NULL);
    c->accepted_at = ps__coarse_ms();
    atomic_store_explicit(&c->last_active, c->accepted_at, memory_order_relaxed);
    if (len > sizeof c->peer)
        len = sizeof c->peer;
    memcpy(&c->peer, peer, len);
    c->peerlen = len;
    return c;
}

/* Unlink from the registry before close(): the drain path shuts down fds
 * under reg_lock, and must never reach a descriptor number already reused. */
void ps__conn_destroy(struct ps_worker *w, ps_conn *c)
{
    ps_server *s = c->srv;

    /* Counters first: a client may look at them as soon as it sees EOF. */
    if (atomic_load_explicit(&c->forced, memory_order_relaxed))
        ps__count(&w->st.forced_closes, 1);
    ps__count(&w->st.closed, 1);
    ps__registry_remove(s, c);
    /* A pause/resume from another thread may still hold the lock. */
    pthread_mutex_lock(&c->lock);
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_destroy(&c->lock);
    if (c->flags & PS_CF_REGISTERED)
        epoll_ctl(s->cepfd, EPOLL_CTL_DEL, c->fd, NULL); /* in case a fork kept the fd open */
    close(c->fd);
    ps__buf_free(&c->in);
    ps__buf_free(&c->out);
    free(c->peer_str);
    free(c);
}

static void epoll_apply(ps_conn *c, int op)
{
    struct epoll_event ev = {.events = c->armed | EPOLLONESHOT, .data.ptr = c};

    if (epoll_ctl(c->srv->cepfd, op, c->fd, &ev) < 0) {
        /* Cannot happen for a valid fd and epoll set (ENOMEM aside); make
         * it visible rather than lose the connection silently. */
        ps__log(c->srv, PS_LOG_ERROR, "epoll_ctl(fd %d): %s", c->fd, ps_strerror(errno));
        shutdown(c->fd, SHUT_RDWR);
    }
}

/* Hand the connection back to epoll (EPOLLIN is dropped while the user has
 * paused reading).  The worker's last touch: as soon as epoll_ctl returns,
 * the reactor may collect the connection for another worker; this one only
 * unlocks, and ps__conn_destroy takes the lock before freeing. */
void ps__conn_arm(ps_conn *c, uint32_t events)
{
    int op = (c->flags & PS_CF_REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

    c->flags |= PS_CF_REGISTERED;
    pthread_mutex_lock(&c->lock);
    if (atomic_load_explicit(&c->user_paused, memory_order_relaxed))
        events &= ~(uint32_t)EPOLLIN;
    c->armed = events;
    c->in_epoll = true;
    epoll_apply(c, op);
    pthread_mutex_unlock(&c->lock);
}

/* Reactor or idle worker: an event arrived.  Returns false for a stale one (a resume
 * re-armed a connection whose event was already on its way), which must
 * be ignored: the connection is already owned by a worker. */
bool ps__conn_collect(ps_conn *c)
{
    bool mine;

    pthread_mutex_lock(&c->lock);
    mine = c->in_epoll;
    c->in_epoll = false;
    pthread_mutex_unlock(&c->lock);
    return mine;
}

void ps_conn_pause_read(ps_conn *c)
{
    pthread_mutex_lock(&c->lock);
    atomic_store_explicit(&c->user_paused, true, memory_order_relaxed);
    if (c->in_epoll && (c->armed & EPOLLIN)) {
        c->armed &= ~(uint32_t)EPOLLIN;
        epoll_apply(c, EPOLL_CTL_MOD);
    }
    pthread_mutex_unlock(&c->lock);
}

void ps_conn_resume_read(ps_conn *c)
{
    pthread_mutex_lock(&c->lock);
    atomic_store_explicit(&c->user_paused, false, memory_order_relaxed);
    /* While in epoll no worker owns the connection, so its flags are stable
     * (the arming worker wrote them before taking this lock). */
    if (c->in_epoll && !(c->armed & EPOLLIN) && !(c->flags & PS_CF_NO_READ)) {
        c->armed |= EPOLLIN;
        epoll_apply(c, EPOLL_CTL_MOD);
    }
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------- buffers */

void ps__buf_free(ps_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Append, compacting or growing (doubling) as needed. */
int ps__buf_append(ps_buf *b, const void *data, size_t len)
{
    if (b->off + b->len + len > b->cap && b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + len)
            cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->off + b->len, data, len);
    b->len += len;
    return 0;
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

/* ------------------------------------------------------ blocking style */

/* Wait up to timeout_ms (-1: forever) for `events`.  Returns 1 when worth
 * retrying the syscall (ready, or HUP/ERR, which the syscall reports), 0 on
 * timeout, or -errno. */
static int poll_fd(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int64_t deadline = timeout_ms >= 0 ? ps__now_ms() + timeout_ms : -1;

    for (;;) {
        int left = -1, n;
        if (deadline >= 0) {
            int64_t d = deadline - ps__now_ms();
            left = d > 0 ? (int)d : 0;
        }
        n = poll(&pfd, 1, left);
        if (n != 0 || left == 0)
            return n > 0 ? 1 : n == 0 ? 0 : errno == EINTR ? 1 : -errno;
    }
}

static int min_timeout(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

static int timed_out(ps_conn *c)
{
    ps__count(&c->w->st.timeouts, 1);
    return -ETIMEDOUT;
}

/* Wait for input within the per-call timeout and what is left of the
 * request allowance (request_timeout_ms + min_rate). */
static int wait_readable(ps_conn *c)
{
    int budget = ps__read_wait_budget(c);
    int64_t t0;
    int rc;

    if (budget == 0)
        return timed_out(c);
    t0 = ps__now_ms();
    rc = poll_fd(c->fd, POLLIN, min_timeout(c->timeout_ms, budget));
    c->read_waited_ms += ps__now_ms() - t0;
    return rc == 0 ? timed_out(c) : rc < 0 ? rc : 0;
}

/* Wait for room to write: a peer that does not read makes no progress. */
static int wait_writable(ps_conn *c)
{
    int t = c->srv->cfg.write_timeout_ms > 0 ? c->srv->cfg.write_timeout_ms : -1;
    int rc = poll_fd(c->fd, POLLOUT, min_timeout(c->timeout_ms, t));

    return rc == 0 ? timed_out(c) : rc < 0 ? rc : 0;
}

/* A connection-ending error (reset, ...): counted once per connection. */
static int io_error(ps_conn *c, int err)
{
    if (!(c->flags & PS_CF_FATAL)) {
        c->flags |= PS_CF_FATAL;
        ps__count(&c->w->st.io_errors, 1);
    }
    return -err;
}

ssize_t ps_conn_read(ps_conn *c, void *buf, size_t len)
{
    if (c->in.len > 0) { /* bytes that came with the PROXY header */
        size_t n = len < c->in.len ? len : c->in.len;
        memcpy(buf, c->in.data + c->in.off, n);
        c->in.off += n;
        c->in.len -= n;
        if (c->in.len == 0)
            ps__buf_free(&c->in);
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        int rc;
        if (n >= 0) {
            ps__conn_got(c, (uint64_t)n);
            c->turn_in += (uint64_t)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error(c, errno);
        rc = wait_readable(c);
        if (rc < 0)
            return rc;
    }
}

ssize_t ps_conn_read_exact(ps_conn *c, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = ps_conn_read(c, (char *)buf + got, len - got);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int ps_conn_write_all(ps_conn *c, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        int rc;
        if (n > 0) {
            ps__count(&c->w->st.bytes_out, (uint64_t)n);
            ps__conn_touch(c);
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error(c, (errno == ECONNRESET || errno == EPIPE) ? EPIPE : errno);
        rc = wait_writable(c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void ps_conn_set_timeout(ps_conn *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

int ps_conn_shutdown_write(ps_conn *c)
{
    return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

void ps_conn_park(ps_conn *c)
{
    c->flags |= PS_CF_PARK;
}

void ps_conn_close(ps_conn *c)
{
    c->flags |= PS_CF_CLOSING;
    if (!c->srv->event_style)
        shutdown(c->fd, SHUT_RDWR);
}

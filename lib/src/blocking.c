/* SPDX-License-Identifier: MIT */
/*
 * blocking.c - the blocking-style I/O calls, made by the serve call that owns
 * the connection (and ps_conn_close / ps_conn_park, which both styles share).
 *
 * Sockets are non-blocking from accept4 on.  These calls try the syscall
 * first and poll() only on EAGAIN, so a busy connection pays no extra
 * syscall and a quiet one gets an exact per-call timeout.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

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
    rc = poll_fd(c->fd, ps__io_read_events(c) == EPOLLIN ? POLLIN : POLLOUT,
                 min_timeout(c->timeout_ms, budget));
    c->read_waited_ms += ps__now_ms() - t0;
    return rc == 0 ? timed_out(c) : rc < 0 ? rc : 0;
}

/* Wait for room to write: a peer that does not read makes no progress. */
static int wait_writable(ps_conn *c)
{
    int t = c->srv->cfg.write_timeout_ms > 0 ? c->srv->cfg.write_timeout_ms : -1;
    int rc = poll_fd(c->fd, ps__io_write_events(c) == EPOLLOUT ? POLLOUT : POLLIN,
                     min_timeout(c->timeout_ms, t));

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
        ssize_t n = ps__io_recv(c, buf, len);
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
        ssize_t n = ps__io_send(c, p, len, MSG_NOSIGNAL);
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
    if (c->srv->event_style)
        return ps__event_shutdown_write(c);
    ps__tls_close_notify(c);
    return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

void ps_conn_park(ps_conn *c)
{
    c->flags |= PS_CF_PARK;
}

/* Both styles: the reset is made at close(2) by a zero linger time, so
 * whatever is still unsent is discarded by the kernel too. */
void ps_conn_abort(ps_conn *c)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    c->flags |= PS_CF_ABORT | PS_CF_CLOSING;
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (!c->srv->event_style)
        shutdown(c->fd, SHUT_RD);
}

void ps_conn_close(ps_conn *c)
{
    c->flags |= PS_CF_CLOSING;
    if (!c->srv->event_style) {
        ps__tls_close_notify(c);
        shutdown(c->fd, SHUT_RDWR);
    }
}

/* SPDX-License-Identifier: MIT */
/*
 * net.c - name resolution, connecting with a timeout, and socket I/O with
 * deadlines for poolsrv-client.  All sockets are non-blocking once open.
 */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* Failed attempts kept for the final error report. */
#define MAX_FAILS 8

struct fail_log {
    int n; /* attempts that failed */
    int err[MAX_FAILS];
    char peer[MAX_FAILS][PC_ADDRLEN];
};

/* Copy "[::1]" without its brackets; other hosts as they are. */
static void strip_brackets(const char *host, char *buf, size_t cap)
{
    size_t n = strlen(host);

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
        snprintf(buf, cap, "%.*s", (int)(n - 2), host + 1);
    else
        snprintf(buf, cap, "%s", host);
}

int pc_resolve(const struct pc_opts *o, struct addrinfo **res)
{
    struct addrinfo hints = { 0 };
    char host[NI_MAXHOST];
    int rc;

    strip_brackets(o->host, host, sizeof(host));
    hints.ai_family = o->family;
    hints.ai_socktype = o->udp ? SOCK_DGRAM : SOCK_STREAM;
    /* No AI_ADDRCONFIG: it hides ::1 on hosts whose only IPv6 is loopback. */
    rc = getaddrinfo(host, o->port, &hints, res);
    if (rc == 0)
        return PC_OK;
    if (rc == EAI_SERVICE)
        pc_err("cannot resolve port '%s' for %s: %s", o->port, o->udp ? "udp" : "tcp",
               gai_strerror(rc));
    else if (rc == EAI_SYSTEM)
        pc_err("cannot resolve '%s': %s", o->host, strerror(errno));
    else
        pc_err("cannot resolve '%s': %s", o->host, gai_strerror(rc));
    return PC_ENET;
}

void pc_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        snprintf(buf, cap, "unix:%s", un->sun_path);
        return;
    }
    if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(buf, cap, "(unprintable address)");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(buf, cap, "[%s]:%s", host, serv);
    else
        snprintf(buf, cap, "%s:%s", host, serv);
}

/* Non-blocking connect to one address within the deadline.
 * Returns the socket, or -errno (-ETIMEDOUT when the deadline passed). */
static int connect_one(const struct sockaddr *sa, socklen_t len, int64_t deadline_ns)
{
    int fd, err = 0, rc;
    socklen_t elen = sizeof(err);

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, sa, len) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        err = -errno;
        goto out_close_fd;
    }
    rc = pc_wait(fd, POLLOUT, deadline_ns);
    if (rc <= 0) {
        err = rc == 0 ? -ETIMEDOUT : rc;
        goto out_close_fd;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    if (err == 0)
        return fd;
    err = -err;
out_close_fd:
    close(fd);
    return err;
}

/* Connect to a Unix stream socket.  A non-blocking connect would fail at once
 * with EAGAIN when the listener's backlog is full, so connect blocking with
 * SO_SNDTIMEO as the limit (Linux bounds the wait with it), then switch to
 * non-blocking.  Returns the socket or -errno. */
static int connect_unix(const struct sockaddr_un *un, double timeout_s)
{
    struct timeval tv = { 0 }, none = { 0 };
    int fd, err;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    tv.tv_sec = (time_t)timeout_s;
    tv.tv_usec = (suseconds_t)((timeout_s - (double)tv.tv_sec) * 1e6);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        goto out_errno;
    if (connect(fd, (const struct sockaddr *)un, sizeof(*un)) < 0) {
        err = (errno == EAGAIN || errno == EINPROGRESS) ? -ETIMEDOUT : -errno;
        goto out_close_fd;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none)) < 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        goto out_errno;
    return fd;
out_errno:
    err = -errno;
out_close_fd:
    close(fd);
    return err;
}

static void fail_note(const struct pc_opts *o, struct fail_log *log, int err, const char *peer)
{
    if (log->n < MAX_FAILS) {
        log->err[log->n] = err;
        snprintf(log->peer[log->n], PC_ADDRLEN, "%s", peer);
    }
    log->n++;
    pc_info(o, "attempt failed: %s: %s", peer, strerror(-err));
}

/* Every address failed: one line per attempt, in the order tried. */
static void fail_report(const struct pc_opts *o, const struct fail_log *log)
{
    for (int i = 0; i < log->n && i < MAX_FAILS; i++)
        pc_err_io(log->err[i], "connecting to", log->peer[i], o->timeout_s);
    if (log->n > MAX_FAILS)
        pc_err("(and %d more failed addresses)", log->n - MAX_FAILS);
}

static int connect_path(const struct pc_opts *o, struct pc_conn *c)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    int fd;

    /* main() has checked that the path fits. */
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", o->unix_path);
    snprintf(c->peer, sizeof(c->peer), "unix:%s", o->unix_path);
    fd = connect_unix(&un, o->timeout_s);
    if (fd < 0) {
        pc_err_io(fd, "connecting to", c->peer, o->timeout_s);
        return PC_ENET;
    }
    c->fd = fd;
    pc_info(o, "connected to %s", c->peer);
    return PC_OK;
}

/* The socket of pc_connect_stream, before any TLS. */
static int connect_plain(const struct pc_opts *o, struct pc_conn *c)
{
    struct fail_log log = { 0 };
    struct addrinfo *res, *ai;
    int fd = -1, one = 1;

    c->fd = -1;
    c->sent = c->received = 0;
    if (o->unix_path)
        return connect_path(o, c);
    if (pc_resolve(o, &res) != PC_OK)
        return PC_ENET;
    for (ai = res; ai; ai = ai->ai_next) {
        pc_format_addr(ai->ai_addr, ai->ai_addrlen, c->peer, sizeof(c->peer));
        pc_info(o, "trying %s", c->peer);
        fd = connect_one(ai->ai_addr, ai->ai_addrlen, pc_deadline(o->timeout_s));
        if (fd >= 0)
            break;
        fail_note(o, &log, fd, c->peer);
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fail_report(o, &log);
        return PC_ENET;
    }
    /* Round trips are what we measure and show; do not let Nagle delay them. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    pc_info(o, "connected to %s", c->peer);
    return PC_OK;
}

int pc_connect_stream(const struct pc_opts *o, struct pc_conn *c)
{
    int status;

    c->tls = NULL;
    c->rd_want = POLLIN;
    c->wr_want = POLLOUT;
    c->tls_err[0] = '\0';
    status = connect_plain(o, c);
    if (status != PC_OK || !o->tls)
        return status;
    /* The handshake has its own --timeout, as a reply does. */
    status = pc_tls_start(o, c, pc_deadline(o->timeout_s));
    if (status != PC_OK)
        pc_close(c);
    return status;
}

int pc_open_dgram(const struct addrinfo *ai, struct pc_conn *c)
{
    c->sent = c->received = 0;
    c->tls = NULL;
    pc_format_addr(ai->ai_addr, ai->ai_addrlen, c->peer, sizeof(c->peer));
    c->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        pc_err("error creating a socket for %s: %s", c->peer, strerror(errno));
        return PC_ENET;
    }
    /* A connected UDP socket only accepts datagrams from the peer, and an
     * ICMP port-unreachable comes back as ECONNREFUSED. */
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        pc_err_io(-errno, "connecting to", c->peer, 0);
        pc_close(c);
        return PC_ENET;
    }
    return PC_OK;
}

ssize_t pc_io_send(struct pc_conn *c, const void *buf, size_t len)
{
    ssize_t n;

    if (c->tls)
        n = pc_tls_send(c, buf, len);
    else if ((n = send(c->fd, buf, len, MSG_NOSIGNAL)) < 0)
        n = errno == EINTR || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n == -EAGAIN && !c->tls)
        c->wr_want = POLLOUT;
    if (n > 0)
        c->sent += (uint64_t)n;
    return n;
}

ssize_t pc_io_recv(struct pc_conn *c, void *buf, size_t cap)
{
    ssize_t n;

    if (c->tls)
        n = pc_tls_recv(c, buf, cap);
    else if ((n = recv(c->fd, buf, cap, 0)) < 0)
        n = errno == EINTR || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (n == -EAGAIN && !c->tls)
        c->rd_want = POLLIN;
    if (n > 0)
        c->received += (uint64_t)n;
    return n;
}

bool pc_io_pending(const struct pc_conn *c)
{
    return c->tls && pc_tls_pending(c);
}

int pc_io_shutdown(struct pc_conn *c)
{
    if (c->tls)
        return pc_tls_shutdown(c);
    return shutdown(c->fd, SHUT_WR) < 0 ? -errno : 0;
}

void pc_err_conn(const struct pc_conn *c, int err, const char *what, double timeout_s)
{
    if (err == -EPROTO && c->tls_err[0])
        pc_err("TLS error %s %s: %s", what, c->peer, c->tls_err);
    else
        pc_err_io(err, what, c->peer, timeout_s);
}

int pc_send_all(struct pc_conn *c, const void *buf, size_t len, int64_t deadline_ns)
{
    const char *p = buf;
    ssize_t n;
    int rc;

    while (len > 0) {
        n = pc_io_send(c, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n != -EAGAIN)
            return n == 0 ? -EPIPE : (int)n;
        rc = pc_wait(c->fd, c->wr_want, deadline_ns);
        if (rc <= 0)
            return rc == 0 ? -ETIMEDOUT : rc;
    }
    return 0;
}

ssize_t pc_recv_some(struct pc_conn *c, void *buf, size_t cap, int64_t deadline_ns)
{
    ssize_t n;
    int rc;

    for (;;) {
        n = pc_io_recv(c, buf, cap);
        if (n != -EAGAIN)
            return n;
        rc = pc_wait(c->fd, c->rd_want, deadline_ns);
        if (rc <= 0)
            return rc == 0 ? -ETIMEDOUT : rc;
    }
}

void pc_close(struct pc_conn *c)
{
    pc_tls_free(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

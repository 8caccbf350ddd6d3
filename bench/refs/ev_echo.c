/* SPDX-License-Identifier: MIT */
/*
 * ev-echo - single-threaded libevent echo server.  Tuned as a libevent user
 * tuning a server would: a persistent read event per connection, each
 * read (up to 64 KiB, into one shared buffer) written straight back, and
 * only what the socket does not take kept and waited on with a write
 * event.  The idiomatic bufferevent version this replaced read at most
 * 4 KiB per readv (libevent 2.1's EVBUFFER_MAX_READ, which
 * bufferevent_set_max_single_read does not lift) and toggled EPOLLOUT
 * with two epoll_ctl calls per message: four readv per 16 KiB message and
 * 0.2-0.4x libuv in bulk echo.
 *
 *   ev-echo HOST:PORT
 */
#include "ref_common.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE 65536

struct conn {
    int fd;
    struct event *rd, *wr;
    char *pend; /* bytes the socket did not take, or NULL */
    size_t off, len;
};

static char buf[BUF_SIZE]; /* single-threaded: the loop's thread only */

static void conn_free(struct conn *c)
{
    event_free(c->rd);
    event_free(c->wr);
    close(c->fd);
    free(c->pend);
    free(c);
}

/* Write what is pending; returns -1 if the connection failed. */
static int flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = write(c->fd, c->pend + c->off, c->len - c->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -1;
        c->off += (size_t)n;
    }
    free(c->pend);
    c->pend = NULL;
    c->off = c->len = 0;
    return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (flush(c) < 0) {
        conn_free(c);
        return;
    }
    if (!c->pend) { /* all out: read again */
        event_del(c->wr);
        event_add(c->rd, NULL);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    ssize_t n, w = 0;
    (void)what;
    n = read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_free(c);
        return;
    }
    while (w < n) {
        ssize_t k = write(fd, buf + w, (size_t)(n - w));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (k < 0) {
            conn_free(c);
            return;
        }
        w += k;
    }
    if (w < n) { /* keep the rest, stop reading until it is out */
        c->pend = malloc((size_t)(n - w));
        if (!c->pend) {
            conn_free(c);
            return;
        }
        memcpy(c->pend, buf + w, (size_t)(n - w));
        c->off = 0;
        c->len = (size_t)(n - w);
        event_del(c->rd);
        event_add(c->wr, NULL);
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)sa;
    (void)salen;
    (void)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);
    struct event_base *base = evconnlistener_get_base(l);
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->fd = fd;
    c->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (!c->rd || !c->wr || event_add(c->rd, NULL) < 0) {
        if (c->rd)
            event_free(c->rd);
        if (c->wr)
            event_free(c->wr);
        free(c);
        evutil_closesocket(fd);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ev-echo HOST:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int fd = ref_listen(argv[1], SOCK_STREAM);
    if (fd < 0)
        return 1;
    evutil_make_socket_nonblocking(fd);
    struct event_base *base = event_base_new();
    struct evconnlistener *l =
        base ? evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, SOMAXCONN, fd)
             : NULL;
    struct event *sterm = base ? evsignal_new(base, SIGTERM, on_signal, base) : NULL;
    struct event *sint = base ? evsignal_new(base, SIGINT, on_signal, base) : NULL;
    if (!l || !sterm || !sint) {
        fprintf(stderr, "ev-echo: libevent setup failed\n");
        return 1;
    }
    evsignal_add(sterm, NULL);
    evsignal_add(sint, NULL);
    ref_announce(fd);
    event_base_dispatch(base);
    /* Open connections are not tracked; process exit releases them. */
    event_free(sterm);
    event_free(sint);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * echo_helper.c - test-only servers for tests/client/run.sh.  Not installed.
 *
 *   echo-helper tcp HOST         TCP echo on HOST, ephemeral port
 *   echo-helper tcp-silent HOST  TCP: accept and read, never reply nor close
 *   echo-helper tcp-once HOST    TCP: echo the first line, then close
 *   echo-helper tcp-stuck HOST   TCP listener with a full backlog: connects hang
 *   echo-helper udp HOST [N]     UDP echo; the first N datagrams are dropped
 *   echo-helper udp-silent HOST  UDP: receive, never reply
 *   echo-helper unix PATH        Unix stream echo on PATH
 *   echo-helper unix-stuck PATH  Unix listener with a full backlog
 *   echo-helper free-port HOST   print a TCP port nobody listens on, exit
 *
 * Once ready it prints "listening on ADDR" (flushed) on stdout; UDP modes
 * then print one line per datagram ("datagram N echoed|dropped|ignored").
 * It runs until killed (SIGTERM).  Exit 1 on setup failure, 3 if tcp-stuck
 * cannot fill the backlog on this system, 2 for usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum conn_mode { ECHO_ALL, SILENT, ECHO_ONE_LINE };

static void die(const char *what)
{
    fprintf(stderr, "echo-helper: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Bind a socket of `type` to HOST port 0 (or PATH for AF_UNIX). */
static int bind_any(const char *host, int type, bool unix_path)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    int fd;

    if (unix_path) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof(un->sun_path), "%s", host);
        len = sizeof(*un);
    } else if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        len = sizeof(struct sockaddr_in6);
    } else {
        fprintf(stderr, "echo-helper: '%s' is not a numeric address\n", host);
        exit(2);
    }
    fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        die("bind");
    return fd;
}

static void print_listening(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname");
    if (ss.ss_family == AF_UNIX) {
        printf("listening on unix:%s\n", ((struct sockaddr_un *)&ss)->sun_path);
    } else {
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n" : "listening on %s:%s\n", host,
               serv);
    }
    fflush(stdout);
}

struct conn {
    int fd;
    enum conn_mode mode;
};

static bool write_all(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Serve one connection until the peer's end of stream (or the first line). */
static void *serve(void *arg)
{
    struct conn *c = arg;
    char buf[65536];
    ssize_t n;

    while ((n = recv(c->fd, buf, sizeof(buf), 0)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        if (c->mode == SILENT)
            continue; /* read and forget */
        if (c->mode == ECHO_ONE_LINE) {
            char *nl = memchr(buf, '\n', (size_t)n);
            if (nl) {
                write_all(c->fd, buf, (size_t)(nl - buf + 1));
                break;
            }
        }
        if (!write_all(c->fd, buf, (size_t)n))
            break;
    }
    if (c->mode == SILENT)
        for (;;)
            pause(); /* never close either: the client must time out */
    close(c->fd);
    free(c);
    return NULL;
}

static void serve_stream(int lfd, enum conn_mode mode)
{
    pthread_t t;
    struct conn *c;
    int fd;

    if (listen(lfd, 64) < 0)
        die("listen");
    print_listening(lfd);
    for (;;) {
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("accept");
        }
        c = malloc(sizeof(*c));
        if (!c)
            die("malloc");
        c->fd = fd;
        c->mode = mode;
        if (pthread_create(&t, NULL, serve, c) != 0)
            die("pthread_create");
        pthread_detach(t);
    }
}

static void serve_dgram(int fd, long drop, bool silent)
{
    struct sockaddr_storage from;
    socklen_t flen;
    char buf[65536];
    ssize_t n;
    long seq = 0;

    print_listening(fd);
    for (;;) {
        flen = sizeof(from);
        n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recvfrom");
        }
        seq++;
        if (silent || seq <= drop) {
            printf("datagram %ld %s\n", seq, silent ? "ignored" : "dropped");
        } else {
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
            printf("datagram %ld echoed\n", seq);
        }
        fflush(stdout);
    }
}

/* Fill the accept queue of a listener that never accepts, so that the next
 * connect gets no answer.  Returns true once a connect stays pending. */
static bool fill_backlog(int lfd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct pollfd p = { .events = POLLOUT };

    if (listen(lfd, 0) < 0 || getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
        die("listen");
    for (int i = 0; i < 256; i++) {
        p.fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p.fd < 0)
            die("socket");
        if (connect(p.fd, (struct sockaddr *)&ss, len) == 0)
            continue; /* accepted into the queue: keep it open, go on */
        if (errno == EAGAIN && ss.ss_family == AF_UNIX)
            return true; /* Unix sockets say at once that the queue is full */
        if (errno != EINPROGRESS)
            die("connect");
        if (poll(&p, 1, 300) == 0)
            return true; /* no answer within 300 ms: the queue is full */
    }
    return false;
}

static void free_port(const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char serv[NI_MAXSERV];
    int fd = bind_any(host, SOCK_STREAM, false);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname");
    getnameinfo((struct sockaddr *)&ss, len, NULL, 0, serv, sizeof(serv), NI_NUMERICSERV);
    close(fd);
    printf("%s\n", serv);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 2 ? argv[1] : "", *arg = argc > 2 ? argv[2] : "";

    if (!strcmp(mode, "tcp"))
        serve_stream(bind_any(arg, SOCK_STREAM, false), ECHO_ALL);
    else if (!strcmp(mode, "tcp-silent"))
        serve_stream(bind_any(arg, SOCK_STREAM, false), SILENT);
    else if (!strcmp(mode, "tcp-once"))
        serve_stream(bind_any(arg, SOCK_STREAM, false), ECHO_ONE_LINE);
    else if (!strcmp(mode, "unix"))
        serve_stream(bind_any(arg, SOCK_STREAM, true), ECHO_ALL);
    else if (!strcmp(mode, "udp"))
        serve_dgram(bind_any(arg, SOCK_DGRAM, false), argc > 3 ? atol(argv[3]) : 0, false);
    else if (!strcmp(mode, "udp-silent"))
        serve_dgram(bind_any(arg, SOCK_DGRAM, false), 0, true);
    else if (!strcmp(mode, "free-port"))
        free_port(arg);
    else if (!strcmp(mode, "tcp-stuck") || !strcmp(mode, "unix-stuck")) {
        int lfd = bind_any(arg, SOCK_STREAM, mode[0] == 'u');
        if (!fill_backlog(lfd))
            return 3;
        print_listening(lfd);
        for (;;)
            pause();
    } else {
        fprintf(stderr, "usage: echo-helper tcp|tcp-silent|tcp-once|tcp-stuck|udp|udp-silent|"
                        "unix|unix-stuck|free-port ADDR [DROP]\n");
        return 2;
    }
    return 0;
}

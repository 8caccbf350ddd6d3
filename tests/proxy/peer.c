/* SPDX-License-Identifier: MIT */
/*
 * peer.c - the far ends of tests/proxy/run.sh: clients and backends that
 * half-close, reset, flood or never read, each checking every byte.
 *
 *   peer backend MODE          listen on 127.0.0.1:0, print "port N", serve
 *                              one connection, print "ok ..." or "FAIL ..."
 *      first    send 1 MiB (pattern 1), half-close, then read to EOF:
 *               1 MiB of pattern 2 expected
 *      reset    read 1 KiB, then reset the connection
 *      flood    send until nothing moves for 1 s; print how much went out
 *   peer client PORT MODE      connect to 127.0.0.1:PORT through the proxy
 *      first    send 1 MiB (pattern 2) and half-close while reading; expect
 *               the same 1 MiB back (an echo backend), then EOF
 *      second   read to EOF: 1 MiB of pattern 1 expected; then send 1 MiB of
 *               pattern 2 and half-close, and wait for EOF
 *      reset    send 64 KiB, then expect EOF or a reset within 5 s
 *      idle     connect, print "connected", and hold the connection, never
 *               reading, until stdin closes
 *
 * Every wait is bounded (10 s); exit status 0 with "ok", 1 with "FAIL".
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MIB (1 << 20)
#define LIMIT_MS 10000

static char pattern(int which, size_t pos)
{
    return (char)((pos * 31 + (size_t)which * 7) % 251);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *what)
{
    printf("FAIL %s (%s)\n", what, strerror(errno));
    return 1;
}

/* Send len bytes of pattern `which` while reading into `in` (up to cap,
 * checked against pattern `expect` if expect > 0), then half-close.  Reads
 * on to EOF.  Returns the bytes read, or -1. */
static long exchange(int fd, int which, size_t len, int expect, int *bad)
{
    char buf[65536];
    size_t sent = 0, got = 0;
    long long end = now_ms() + LIMIT_MS;

    *bad = 0;
    while (now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        if (poll(&p, 1, 100) < 0)
            return -1;
        if (sent < len && (p.revents & POLLOUT)) {
            size_t n = len - sent < sizeof buf ? len - sent : sizeof buf;
            for (size_t i = 0; i < n; i++)
                buf[i] = pattern(which, sent + i);
            ssize_t k = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k > 0)
                sent += (size_t)k;
            if (sent == len && shutdown(fd, SHUT_WR) < 0)
                return -1;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (k == 0 && sent == len)
                return (long)got;
            if (k < 0 && errno != EAGAIN)
                return -1;
            for (ssize_t i = 0; i < k; i++)
                if (expect && buf[i] != pattern(expect, got + (size_t)i))
                    (*bad)++;
            if (k > 0)
                got += (size_t)k;
        }
    }
    errno = ETIMEDOUT;
    return -1;
}

static int backend(const char *mode)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0), fd, bad;
    long got;

    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 8) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0)
        return fail("listen");
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    fd = accept(l, NULL, NULL);
    if (fd < 0)
        return fail("accept");
    if (strcmp(mode, "first") == 0) {
        got = exchange(fd, 1, MIB, 2, &bad);
        if (got != MIB || bad)
            return printf("FAIL backend got %ld bytes, %d wrong\n", got, bad), 1;
        return printf("ok backend sent 1 MiB first, then got 1 MiB\n"), 0;
    }
    if (strcmp(mode, "reset") == 0) {
        char buf[1024];
        struct linger lg = {1, 0};
        size_t n = 0;
        while (n < sizeof buf) {
            ssize_t k = recv(fd, buf, sizeof buf - n, 0);
            if (k <= 0)
                return fail("backend read before reset");
            n += (size_t)k;
        }
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
        return printf("ok backend reset after 1 KiB\n"), 0;
    }
    if (strcmp(mode, "flood") == 0) {
        static char buf[65536];
        long long sent = 0, last = now_ms(), end = now_ms() + LIMIT_MS;
        while (now_ms() - last < 1000 && now_ms() < end) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 100) > 0) {
                ssize_t k = send(fd, buf, sizeof buf, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0 && errno != EAGAIN)
                    return fail("flood send");
                if (k > 0) {
                    sent += k;
                    last = now_ms();
                }
            }
        }
        printf("ok flood stalled after %lld bytes\n", sent);
        fflush(stdout);
        pause(); /* hold the connection until the test ends us */
        return 0;
    }
    return fail("unknown backend mode");
}

static int client(int port, const char *mode)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), bad;
    long got;

    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return fail("connect");
    if (strcmp(mode, "first") == 0) {
        got = exchange(fd, 2, MIB, 2, &bad);
        if (got != MIB || bad)
            return printf("FAIL client got %ld bytes back, %d wrong\n", got, bad), 1;
        return printf("ok client half-closed first, got its 1 MiB back and EOF\n"), 0;
    }
    if (strcmp(mode, "second") == 0) {
        got = exchange(fd, 0, 0, 1, &bad); /* read to EOF; nothing to send yet */
        if (got != MIB || bad)
            return printf("FAIL client got %ld bytes before EOF, %d wrong\n", got, bad), 1;
        got = exchange(fd, 2, MIB, 0, &bad); /* our side now; then the pair ends */
        if (got != 0)
            return printf("FAIL client: %ld bytes after the backend's EOF\n", got), 1;
        return printf("ok backend half-closed first, client sent 1 MiB after it\n"), 0;
    }
    if (strcmp(mode, "reset") == 0) {
        static char buf[65536];
        long long end = now_ms() + 5000;
        if (send(fd, buf, sizeof buf, MSG_NOSIGNAL) < 0)
            return fail("send");
        while (now_ms() < end) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ssize_t k;
            if (poll(&p, 1, 100) <= 0)
                continue;
            k = recv(fd, buf, sizeof buf, 0);
            if (k == 0 || (k < 0 && errno == ECONNRESET))
                return printf("ok client closed after the backend's reset\n"), 0;
        }
        return printf("FAIL client still open 5 s after the backend's reset\n"), 1;
    }
    if (strcmp(mode, "idle") == 0) {
        char c;
        printf("connected\n");
        fflush(stdout);
        while (read(0, &c, 1) > 0)
            ;
        return 0;
    }
    return fail("unknown client mode");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "backend") == 0)
        return backend(argv[2]);
    if (argc == 4 && strcmp(argv[1], "client") == 0)
        return client(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: peer backend MODE | peer client PORT MODE\n");
    return 2;
}

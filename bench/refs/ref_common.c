/* SPDX-License-Identifier: MIT */
/*
 * ref_common.c - address parsing, listening, and the textbook
 * thread-per-connection echo server (blocking I/O, one thread per client).
 */
#include "ref_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

int ref_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *port;
    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s) > sizeof(host))
            goto out_bad;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        port = rb + 2;
    } else {
        const char *c = strrchr(s, ':');
        if (!c || (size_t)(c - s) >= sizeof(host))
            goto out_bad;
        memcpy(host, s, (size_t)(c - s));
        host[c - s] = '\0';
        port = c + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535)
        goto out_bad;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*v6);
        return 0;
    }
out_bad:
    fprintf(stderr, "bad listen address '%s' (want HOST:PORT or [V6]:PORT)\n", s);
    return -1;
}

int ref_listen(const char *addr, int type)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;
    if (ref_parse_addr(addr, &ss, &len) < 0)
        return -1;
    int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out_err;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        goto out_close;
    if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
        goto out_close;
    return fd;
out_close:
    close(fd);
out_err:
    fprintf(stderr, "cannot listen on %s: %s\n", addr, strerror(errno));
    return -1;
}

void ref_announce(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    getsockname(fd, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        printf("listening on [%s]:%u\n", host, ntohs(v6->sin6_port));
    } else {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        printf("listening on %s:%u\n", host, ntohs(v4->sin_port));
    }
    fflush(stdout);
}

int ref_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC);
}

struct tpc_conn {
    int fd;
    ref_hook hook;
};

/* Connection thread: read, (hook), write back, until EOF or error.  The
 * buffer is 64 KiB, the size the event servers read with (it was 16 KiB,
 * four reads per message in bulk echo); its pages are touched only as far
 * as data comes, so an idle connection's thread costs no more memory. */
#define TPC_BUF 65536
static void *tpc_conn_main(void *arg)
{
    struct tpc_conn tc = *(struct tpc_conn *)arg;
    unsigned char buf[TPC_BUF];
    free(arg);
    for (;;) {
        ssize_t n = read(tc.fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (tc.hook && !tc.hook(buf, (size_t)n)) {
            /* Stall: keep the connection open, echo nothing, drain input. */
            while ((n = read(tc.fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
                ;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(tc.fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto out_close;
            off += w;
        }
    }
out_close:
    close(tc.fd);
    return NULL;
}

int ref_tpc_serve(int lfd, ref_hook hook)
{
    int sfd = ref_block_signals();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, TPC_BUF + 64 * 1024); /* the buffer + 64 KiB; 10,000 fit */
    ref_announce(lfd);
    struct pollfd pf[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break; /* SIGTERM or SIGINT */
        if (!(pf[0].revents & POLLIN))
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                poll(NULL, 0, 10); /* let connections close */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct tpc_conn *tc = malloc(sizeof(*tc));
        pthread_t t;
        if (!tc) {
            close(fd);
            continue;
        }
        tc->fd = fd;
        tc->hook = hook;
        if (pthread_create(&t, &attr, tpc_conn_main, tc) != 0) {
            free(tc);
            close(fd);
        }
    }
    /* Connection threads are detached; exiting the process ends them. */
    close(lfd);
    close(sfd);
    pthread_attr_destroy(&attr);
    return 0;
}

int ref_udp_serve(int fd, ref_hook hook)
{
    int sfd = ref_block_signals();
    unsigned char buf[65536];
    ref_announce(fd);
    struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&peer, &plen);
        if (n >= 0 && (!hook || hook(buf, (size_t)n)))
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
    }
    close(fd);
    close(sfd);
    return 0;
}

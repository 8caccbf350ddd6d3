/* SPDX-License-Identifier: MIT */
/*
 * splice-cost - what forwarding bytes between two TCP connections costs
 * with recv/send through a user-space buffer (what poolsrv-proxy does)
 * against splice(2) through a pipe (what HAProxy can do), on this machine:
 * the measurement issue 14 asks for before splice is built into the pairing.
 *
 * A producer thread writes TOTAL bytes, CHUNK at a time, into one loopback
 * connection; the forwarder (this thread) moves them to a second one; a
 * sink thread reads and checks the count.  Reported per mode: wall time,
 * the forwarder thread's CPU time (RUSAGE_THREAD) per MiB, and its system
 * calls per MiB.  Blocking sockets: waiting costs no CPU, so the CPU figure
 * is the moving alone.
 *
 *   bench/splice-cost [MIB [CHUNK_KIB]]   (default 512 MiB, 16 KiB chunks)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)

static size_t total, chunk;

static void die(const char *what)
{
    fprintf(stderr, "splice-cost: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_THREAD, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A connected pair over loopback TCP: *out is the connecting end. */
static void tcp_pair(int *out, int *in)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int l = socket(AF_INET, SOCK_STREAM, 0);

    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        die("listen");
    *out = socket(AF_INET, SOCK_STREAM, 0);
    if (*out < 0 || connect(*out, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    *in = accept(l, NULL, NULL);
    if (*in < 0)
        die("accept");
    close(l);
}

static void *producer(void *arg)
{
    int fd = *(int *)arg;
    char *buf = calloc(1, chunk);
    size_t sent = 0;

    while (buf && sent < total) {
        size_t n = total - sent < chunk ? total - sent : chunk;
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k < 0 && errno != EINTR)
            die("producer send");
        if (k > 0)
            sent += (size_t)k;
    }
    free(buf);
    shutdown(fd, SHUT_WR);
    return NULL;
}

static void *sink(void *arg)
{
    int fd = *(int *)arg;
    static char buf[BUF_SIZE];
    size_t got = 0;
    ssize_t k;

    while ((k = recv(fd, buf, sizeof buf, 0)) != 0) {
        if (k < 0 && errno != EINTR)
            die("sink recv");
        if (k > 0)
            got += (size_t)k;
    }
    if (got != total) {
        fprintf(stderr, "splice-cost: sink got %zu of %zu bytes\n", got, total);
        exit(1);
    }
    return NULL;
}

static long forward_copy(int from, int to)
{
    static char buf[BUF_SIZE];
    long calls = 0;
    ssize_t n;

    for (;;) {
        n = recv(from, buf, sizeof buf, 0);
        calls++;
        if (n == 0)
            return calls;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("recv");
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t k = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            calls++;
            if (k < 0 && errno != EINTR)
                die("send");
            if (k > 0)
                off += k;
        }
    }
}

static long forward_splice(int from, int to)
{
    int p[2];
    long calls = 0;
    ssize_t n;

    if (pipe2(p, O_CLOEXEC) < 0)
        die("pipe2");
    fcntl(p[1], F_SETPIPE_SZ, BUF_SIZE);
    for (;;) {
        n = splice(from, NULL, p[1], NULL, BUF_SIZE, SPLICE_F_MOVE);
        calls++;
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("splice in");
        }
        while (n > 0) {
            ssize_t k = splice(p[0], NULL, to, NULL, (size_t)n, SPLICE_F_MOVE);
            calls++;
            if (k < 0 && errno != EINTR)
                die("splice out");
            if (k > 0)
                n -= k;
        }
    }
    close(p[0]);
    close(p[1]);
    return calls;
}

static void run(const char *name, long (*fwd)(int, int))
{
    int p_out, f_in, f_out, s_in;
    pthread_t tp, ts;
    double t0, c0, wall, cpu;
    long calls;
    double mib = (double)total / (1 << 20);

    tcp_pair(&p_out, &f_in);
    tcp_pair(&f_out, &s_in);
    if (pthread_create(&ts, NULL, sink, &s_in) || pthread_create(&tp, NULL, producer, &p_out))
        die("pthread_create");
    t0 = now_s();
    c0 = thread_cpu_s();
    calls = fwd(f_in, f_out);
    cpu = thread_cpu_s() - c0;
    shutdown(f_out, SHUT_WR);
    pthread_join(tp, NULL);
    pthread_join(ts, NULL);
    wall = now_s() - t0;
    printf("%-7s %6.0f MiB  %6.3f s  %7.1f MiB/s  forwarder CPU %7.1f us/MiB  %6.1f calls/MiB\n",
           name, mib, wall, mib / wall, cpu * 1e6 / mib, (double)calls / mib);
    close(p_out);
    close(f_in);
    close(f_out);
    close(s_in);
}

int main(int argc, char **argv)
{
    total = (size_t)(argc > 1 ? atol(argv[1]) : 512) << 20;
    chunk = (size_t)(argc > 2 ? atol(argv[2]) : 16) << 10;
    if (total == 0 || chunk == 0) {
        fprintf(stderr, "usage: splice-cost [MIB [CHUNK_KIB]]\n");
        return 2;
    }
    run("copy", forward_copy);
    run("splice", forward_splice);
    run("copy", forward_copy);
    run("splice", forward_splice);
    return 0;
}

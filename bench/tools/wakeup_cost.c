/* SPDX-License-Identifier: MIT */
/*
 * wakeup-cost - what a thread-to-thread wake-up costs on this machine,
 * against a plain system call: the number behind the event style's design
 * (docs/architecture.md).  Two threads ping-pong through a pair of eventfds
 * ROUNDS times, each blocking in read() until the other writes; then the
 * same with both threads pinned to one CPU, then a trivial system call.
 *
 *   bench/wakeup-cost [ROUNDS]     (default 100000; prints microseconds)
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int ping_fd, pong_fd;
static long rounds = 100000;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void xfer(int fd_out, int fd_in)
{
    uint64_t v = 1;

    if (write(fd_out, &v, sizeof v) != sizeof v || read(fd_in, &v, sizeof v) != sizeof v) {
        fprintf(stderr, "wakeup-cost: eventfd: %s\n", strerror(errno));
        exit(1);
    }
}

static void *ponger(void *arg)
{
    long i;
    uint64_t v;

    (void)arg;
    for (i = 0; i < rounds; i++) {
        if (read(ping_fd, &v, sizeof v) != sizeof v || write(pong_fd, &v, sizeof v) != sizeof v)
            exit(1);
    }
    return NULL;
}

/* Round trip in microseconds; cpu >= 0 pins the whole process there. */
static double ping_pong(int cpu)
{
    pthread_t t;
    double t0;
    long i;

    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) < 0)
            return -1; /* threads created below inherit the mask */
    }
    if (pthread_create(&t, NULL, ponger, NULL) != 0)
        return -1;
    t0 = now_s();
    for (i = 0; i < rounds; i++)
        xfer(ping_fd, pong_fd);
    t0 = now_s() - t0;
    pthread_join(t, NULL);
    return t0 / (double)rounds * 1e6;
}

int main(int argc, char **argv)
{
    double any, one, sys, t0;
    long i;

    if (argc > 2 || (argc == 2 && (rounds = strtol(argv[1], NULL, 10)) <= 0)) {
        fprintf(stderr, "usage: wakeup-cost [ROUNDS]\n");
        return 2;
    }
    ping_fd = eventfd(0, EFD_CLOEXEC);
    pong_fd = eventfd(0, EFD_CLOEXEC);
    if (ping_fd < 0 || pong_fd < 0) {
        fprintf(stderr, "wakeup-cost: eventfd: %s\n", strerror(errno));
        return 1;
    }
    any = ping_pong(-1);
    one = ping_pong(0);
    t0 = now_s();
    for (i = 0; i < rounds; i++)
        (void)getppid();
    sys = (now_s() - t0) / (double)rounds * 1e6;
    printf("wake-up round trip, threads free to use any CPU: %.2f us\n", any);
    if (one < 0)
        printf("wake-up round trip, both threads on CPU 0: (cannot pin)\n");
    else
        printf("wake-up round trip, both threads on CPU 0: %.2f us\n", one);
    printf("system call (getppid): %.2f us\n", sys);
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * util.c - messages, clocks and waiting for poolsrv-client.
 */
#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void pc_err(const char *fmt, ...)
{
    va_list ap;

    fputs(PC_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void pc_info(const struct pc_opts *o, const char *fmt, ...)
{
    va_list ap;

    if (!o->verbose)
        return;
    fputs(PC_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int64_t pc_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t pc_deadline(double timeout_s)
{
    if (timeout_s <= 0)
        return -1;
    return pc_now_ns() + (int64_t)(timeout_s * 1e9);
}

/* Milliseconds left until the deadline, rounded up so that a wait never
 * ends just before it; -1 for no deadline. */
static int ms_left(int64_t deadline_ns)
{
    int64_t left;

    if (deadline_ns < 0)
        return -1;
    left = deadline_ns - pc_now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int pc_wait(int fd, short events, int64_t deadline_ns)
{
    struct pollfd p = { .fd = fd, .events = events };
    int n;

    for (;;) {
        n = poll(&p, 1, ms_left(deadline_ns));
        if (n > 0)
            return 1;
        if (n == 0) {
            if (deadline_ns >= 0 && pc_now_ns() >= deadline_ns)
                return 0;
            continue; /* woke a little early: poll has ms granularity */
        }
        if (errno != EINTR)
            return -errno;
    }
}

int pc_write_fd(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    ssize_t n;

    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) { /* someone made it non-blocking */
                pc_wait(fd, POLLOUT, -1);
                continue;
            }
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void pc_err_io(int err, const char *what, const char *peer, double timeout_s)
{
    switch (-err) {
    case ECONNREFUSED:
        pc_err("connection refused: %s", peer);
        break;
    case ETIMEDOUT:
        pc_err("timed out after %.1f s %s %s", timeout_s, what, peer);
        break;
    case ECONNRESET:
        pc_err("connection reset by peer: %s", peer);
        break;
    default:
        pc_err("error %s %s: %s", what, peer, strerror(-err));
        break;
    }
}

void pc_report_bytes(const struct pc_opts *o, const struct pc_conn *c)
{
    pc_info(o, "sent %" PRIu64 " bytes, received %" PRIu64 " bytes (%s)", c->sent, c->received,
            c->peer);
}

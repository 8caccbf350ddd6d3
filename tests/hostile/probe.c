/* SPDX-License-Identifier: MIT */
/*
 * probe.c - the well-behaved client that keeps talking to the server while a
 * case attacks it.  One thread: a round trip on its persistent connection
 * every PROBE_PERIOD_MS, and (if asked) every 10th round a fresh connection
 * with one round trip, so admission of new clients is measured too.  Every
 * reply is verified; the worst round-trip times and the first failure are
 * recorded.
 */
#include "hostile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_PERIOD_MS 20
#define PROBE_BOUND_MS 2000

const char *probe_kind_name(probe_kind k)
{
    return k == PROBE_HTTP ? "http" : k == PROBE_RESP ? "resp" : "echo";
}

static int echo_rt(int fd, uint32_t seq, int64_t deadline, char *why, size_t cap)
{
    char msg[48], back[48];
    size_t got;
    ssize_t n;
    int rc;

    memset(msg, '.', sizeof msg);
    snprintf(msg, sizeof msg, "probe %08u ", seq);
    msg[strlen(msg)] = '.';
    msg[sizeof msg - 1] = '\n';
    if ((rc = send_all(fd, msg, sizeof msg, deadline)) < 0)
        goto io_error;
    for (got = 0; got < sizeof back; got += (size_t)n) {
        n = recv_some(fd, back + got, sizeof back - got, deadline);
        if (n <= 0) {
            if (got >= 4 && memcmp(back, "busy", 4) == 0) {
                snprintf(why, cap, "echo: refused with the busy line");
                return PROBE_BUSY; /* refused by the server's policy, cleanly */
            }
            rc = n == 0 ? -ECONNRESET : (int)n;
            goto io_error;
        }
    }
    if (memcmp(msg, back, sizeof msg) != 0) {
        snprintf(why, cap, "echo: reply differs from message %u", seq);
        return -1;
    }
    return 0;
io_error:
    snprintf(why, cap, "echo: %s", strerror(-rc));
    return -1;
}

/* GET / on a keep-alive connection; expects 200 with a Content-Length body. */
static int http_rt(int fd, int64_t deadline, char *why, size_t cap)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[4096], *end, *cl;
    size_t len = 0, head, body;
    int rc;

    if ((rc = send_all(fd, req, sizeof req - 1, deadline)) < 0)
        goto io_error;
    for (;;) {
        ssize_t n = recv_some(fd, buf + len, sizeof buf - 1 - len, deadline);
        if (n <= 0) {
            rc = n == 0 ? -ECONNRESET : (int)n;
            goto io_error;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")))
            break;
        if (len + 1 >= sizeof buf) {
            snprintf(why, cap, "http: response head too long");
            return -1;
        }
    }
    if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0) {
        snprintf(why, cap, "http: status line '%.40s'", buf);
        return -1;
    }
    cl = strcasestr(buf, "\r\nContent-Length:");
    if (!cl || cl > end) {
        snprintf(why, cap, "http: no Content-Length");
        return -1;
    }
    head = (size_t)(end + 4 - buf);
    body = (size_t)strtoul(cl + 17, NULL, 10);
    if (body > sizeof buf - 1 - head) {
        snprintf(why, cap, "http: body of %zu bytes", body);
        return -1;
    }
    if (len < head + body && (rc = recv_exact(fd, buf + len, head + body - len, deadline)) < 0)
        goto io_error;
    if (len > head + body) {
        snprintf(why, cap, "http: %zu unexpected bytes after the response", len - head - body);
        return -1;
    }
    return 0;
io_error:
    snprintf(why, cap, "http: %s", strerror(-rc));
    return -1;
}

static int resp_rt(int fd, int64_t deadline, char *why, size_t cap)
{
    static const char req[] = "*1\r\n$4\r\nPING\r\n";
    char back[7];
    int rc;

    if ((rc = send_all(fd, req, sizeof req - 1, deadline)) < 0 ||
        (rc = recv_exact(fd, back, sizeof back, deadline)) < 0) {
        snprintf(why, cap, "resp: %s", strerror(-rc));
        return -1;
    }
    if (memcmp(back, "+PONG\r\n", 7) != 0) {
        snprintf(why, cap, "resp: reply '%.7s' is not +PONG", back);
        return -1;
    }
    return 0;
}

int probe_roundtrip(probe_kind kind, int fd, uint32_t seq, int64_t deadline, char *why, size_t cap)
{
    switch (kind) {
    case PROBE_HTTP: return http_rt(fd, deadline, why, cap);
    case PROBE_RESP: return resp_rt(fd, deadline, why, cap);
    default: return echo_rt(fd, seq, deadline, why, cap);
    }
}

static void record_failure(probe *p, const char *what, const char *why)
{
    pthread_mutex_lock(&p->lock);
    if (p->failures++ == 0)
        snprintf(p->first_fail, sizeof p->first_fail, "%s: %s", what, why);
    pthread_mutex_unlock(&p->lock);
}

/* One fresh connection: connect, one round trip, close.  The bound covers
 * the whole. */
static void fresh_round(probe *p, uint32_t seq)
{
    int64_t t0 = now_us(), deadline = now_ms() + p->fresh_bound_ms, us;
    char why[160];
    int fd = tcp_connect(p->port, deadline), rc;

    if (fd < 0) {
        snprintf(why, sizeof why, "connect: %s", strerror(-fd));
        record_failure(p, "fresh connection", why);
        return;
    }
    rc = probe_roundtrip(p->kind, fd, seq, deadline, why, sizeof why);
    if (rc == PROBE_BUSY && p->busy_ok) {
        close(fd);
        pthread_mutex_lock(&p->lock);
        p->fresh_busy++;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    if (rc != 0) {
        record_failure(p, "fresh connection", why);
        close(fd);
        return;
    }
    close(fd);
    us = now_us() - t0;
    pthread_mutex_lock(&p->lock);
    p->fresh_ops++;
    if (us > p->worst_fresh_us)
        p->worst_fresh_us = us;
    pthread_mutex_unlock(&p->lock);
}

static void *probe_main(void *arg)
{
    probe *p = arg;
    uint32_t seq = 0;
    int fd = -1;
    char why[160];

    while (!atomic_load(&p->stop)) {
        int64_t t0 = now_us(), deadline = now_ms() + p->bound_ms, us;
        if (fd < 0 && (fd = tcp_connect(p->port, deadline)) < 0) {
            snprintf(why, sizeof why, "connect: %s", strerror(-fd));
            record_failure(p, "persistent connection", why);
            fd = -1;
            sleep_ms(PROBE_PERIOD_MS);
            continue;
        }
        if (probe_roundtrip(p->kind, fd, seq++, deadline, why, sizeof why) != 0) {
            record_failure(p, "persistent connection", why); /* busy: why is the busy line */
            close(fd);
            fd = -1; /* reconnect and carry on, to keep measuring */
            continue;
        }
        us = now_us() - t0;
        pthread_mutex_lock(&p->lock);
        if (us > p->worst_us)
            p->worst_us = us;
        pthread_mutex_unlock(&p->lock);
        atomic_fetch_add(&p->ops, 1);
        if (p->fresh && seq % 10 == 5)
            fresh_round(p, seq);
        sleep_ms(PROBE_PERIOD_MS);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

void probe_start(probe *p, probe_kind kind, int port, bool fresh, int fresh_bound_ms, bool busy_ok)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->port = port;
    p->bound_ms = (int)scaled(PROBE_BOUND_MS);
    p->fresh_bound_ms = fresh_bound_ms > 0 ? fresh_bound_ms : (int)scaled(PROBE_BOUND_MS);
    p->fresh = fresh;
    p->busy_ok = busy_ok;
    pthread_mutex_init(&p->lock, NULL);
    atomic_store(&p->stop, false);
    p->running = pthread_create(&p->tid, NULL, probe_main, p) == 0;
}

bool probe_wait_ops(probe *p, uint64_t n, int64_t deadline)
{
    uint64_t start = atomic_load(&p->ops);

    while (atomic_load(&p->ops) < start + n && now_ms() < deadline)
        sleep_ms(5);
    return atomic_load(&p->ops) >= start + n;
}

void probe_stop(probe *p)
{
    if (!p->running)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->tid, NULL);
    p->running = false;
}

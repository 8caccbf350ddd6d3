/* SPDX-License-Identifier: MIT */
/*
 * udp.c - datagram mode.  The request is MESSAGE as it is (a datagram needs
 * no terminator), or each line of stdin without its newline.  Each reply is
 * printed followed by a newline unless it already ends with one.
 *
 * A lost datagram is only noticed by a timeout, so each request waits up to
 * --timeout for its reply and is resent up to --retries times.
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pc_udp_open(const struct pc_opts *o, struct pc_udp *u)
{
    u->settled = false;
    if (pc_resolve(o, &u->res) != PC_OK)
        return PC_ENET;
    u->cur = u->res;
    if (pc_open_dgram(u->cur, &u->c) != PC_OK) {
        freeaddrinfo(u->res);
        return PC_ENET;
    }
    pc_info(o, "sending datagrams to %s", u->c.peer);
    return PC_OK;
}

void pc_udp_close(struct pc_udp *u)
{
    pc_close(&u->c);
    freeaddrinfo(u->res);
    u->res = u->cur = NULL;
}

/* Discard datagrams (late replies to earlier requests) already queued. */
static void drain_stale(const struct pc_opts *o, struct pc_conn *c, char *buf)
{
    ssize_t n;

    while ((n = recv(c->fd, buf, PC_DGRAM_BUF, 0)) >= 0 || errno == EINTR)
        if (n >= 0)
            pc_info(o, "discarded a late datagram of %zd bytes from %s", n, c->peer);
}

/* One send and one wait.  Returns the reply length, or -errno (-ETIMEDOUT
 * when nothing came within the timeout). */
static ssize_t attempt(const struct pc_opts *o, struct pc_conn *c, const void *req, size_t len,
                       char *reply)
{
    int64_t deadline;
    ssize_t n;
    int rc;

    if (send(c->fd, req, len, 0) < 0)
        return -errno; /* may be ECONNREFUSED left by an earlier ICMP error */
    c->sent += len;
    deadline = pc_deadline(o->timeout_s);
    for (;;) {
        rc = pc_wait(c->fd, POLLIN, deadline);
        if (rc <= 0)
            return rc == 0 ? -ETIMEDOUT : rc;
        n = recv(c->fd, reply, PC_DGRAM_BUF, 0);
        if (n >= 0) {
            c->received += (uint64_t)n;
            return n;
        }
        if (errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

/* Send with retries on one address. */
static int exchange(const struct pc_opts *o, struct pc_conn *c, const void *req, size_t len,
                    char *reply, size_t *reply_len, int64_t *rtt_ns)
{
    int64_t t0;
    ssize_t n = -ETIMEDOUT;

    drain_stale(o, c, reply);
    for (long i = 0; i <= o->retries; i++) {
        if (i > 0)
            pc_info(o, "no reply from %s within %.1f s: resending (%ld of %ld)", c->peer,
                    o->timeout_s, i, o->retries);
        t0 = pc_now_ns();
        n = attempt(o, c, req, len, reply);
        if (n >= 0) {
            *rtt_ns = pc_now_ns() - t0;
            *reply_len = (size_t)n;
            return 0;
        }
        if (n != -ETIMEDOUT)
            break;
    }
    return (int)n;
}

int pc_udp_request(const struct pc_opts *o, struct pc_udp *u, const void *req, size_t len,
                   char *reply, size_t *reply_len, int64_t *rtt_ns)
{
    int rc;

    for (;;) {
        rc = exchange(o, &u->c, req, len, reply, reply_len, rtt_ns);
        if (rc == 0)
            u->settled = true;
        /* Nobody listens there: a port-unreachable is conclusive, so move on
         * to the next address if we have not yet heard from this one. */
        if (rc != -ECONNREFUSED || u->settled || !u->cur->ai_next)
            return rc;
        pc_info(o, "connection refused: %s; trying the next address", u->c.peer);
        pc_close(&u->c);
        u->cur = u->cur->ai_next;
        if (pc_open_dgram(u->cur, &u->c) != PC_OK)
            return -ECONNREFUSED;
        pc_info(o, "sending datagrams to %s", u->c.peer);
    }
}

void pc_udp_report(const struct pc_opts *o, const struct pc_udp *u, int err)
{
    if (err == -ETIMEDOUT)
        pc_err("timed out after %.1f s waiting for reply from %s (%ld attempt%s)", o->timeout_s,
               u->c.peer, o->retries + 1, o->retries ? "s" : "");
    else
        pc_err_io(err, "sending to", u->c.peer, o->timeout_s);
}

/* Write one reply datagram to stdout, newline-terminated. */
static int print_reply(const char *reply, size_t len)
{
    int rc = pc_write_fd(STDOUT_FILENO, reply, len);

    if (rc == 0 && (len == 0 || reply[len - 1] != '\n'))
        rc = pc_write_fd(STDOUT_FILENO, "\n", 1);
    if (rc < 0) {
        pc_err("error writing stdout: %s", strerror(-rc));
        return PC_ENET;
    }
    return PC_OK;
}

/* One request: send, wait, print.  Returns PC_OK or PC_ENET. */
static int request(const struct pc_opts *o, struct pc_udp *u, const char *req, size_t len,
                   char *reply)
{
    size_t rlen;
    int64_t rtt;
    int rc;

    rc = pc_udp_request(o, u, req, len, reply, &rlen, &rtt);
    if (rc < 0) {
        pc_udp_report(o, u, rc);
        return PC_ENET;
    }
    return print_reply(reply, rlen);
}

/* Each stdin line, without its newline, is one request. */
static int request_lines(const struct pc_opts *o, struct pc_udp *u, char *reply)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int status = PC_OK;

    while (status == PC_OK && (n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n > PC_DGRAM_MAX) {
            pc_err("stdin line %zu is %zd bytes: more than a datagram holds (%d)", lineno, n,
                   PC_DGRAM_MAX);
            status = PC_ENET;
            break;
        }
        status = request(o, u, line, (size_t)n, reply);
    }
    if (status == PC_OK && ferror(stdin)) {
        pc_err("error reading stdin: %s", strerror(errno));
        status = PC_ENET;
    }
    free(line);
    return status;
}

int pc_run_udp(const struct pc_opts *o)
{
    struct pc_udp u;
    char *reply;
    int status;

    reply = malloc(PC_DGRAM_BUF);
    if (!reply) {
        pc_err("out of memory");
        return PC_ENET;
    }
    status = pc_udp_open(o, &u);
    if (status != PC_OK)
        goto out_free_reply;
    if (o->message)
        status = request(o, &u, o->message, strlen(o->message), reply);
    else
        status = request_lines(o, &u, reply);
    pc_report_bytes(o, &u.c);
    pc_udp_close(&u);
out_free_reply:
    free(reply);
    return status;
}

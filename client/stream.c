/* SPDX-License-Identifier: MIT */
/*
 * stream.c - TCP/Unix stream mode, a netcat for our servers: stdin goes to
 * the socket and the socket goes to stdout, at the same time, so an echo
 * server that writes back while we still send never deadlocks us.  At end of
 * stdin we half-close (shutdown SHUT_WR; with --tls a TLS close_notify) and
 * keep reading until the peer closes; the peer closing ends the program even
 * if stdin is still open.
 *
 * --timeout bounds the connect and, once stdin has ended, the silence while
 * we wait for the peer to finish; an interactive session is never timed out.
 */
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 65536

struct pump {
    struct pc_conn c;
    char out[BUF_SIZE];    /* read from stdin, not yet sent */
    size_t off, len;       /* unsent bytes are out[off..len) */
    bool in_eof;           /* stdin has ended */
    bool wr_shut;          /* we have half-closed */
    bool shut_wait;        /* TLS: the close_notify waits for the socket */
    bool peer_eof;         /* the peer has closed */
    int64_t idle_deadline; /* after wr_shut: give up if silent until then */
};

/* Read a chunk of stdin.  Returns 0 or PC_ENET after printing why. */
static int pump_stdin(struct pump *p)
{
    ssize_t n = read(STDIN_FILENO, p->out, sizeof(p->out));

    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return 0;
        pc_err("error reading stdin: %s", strerror(errno));
        return PC_ENET;
    }
    if (n == 0)
        p->in_eof = true;
    p->off = 0;
    p->len = (size_t)n;
    return 0;
}

/* Send what the connection takes now of the stdin bytes. */
static int pump_send(const struct pc_opts *o, struct pump *p)
{
    ssize_t n = pc_io_send(&p->c, p->out + p->off, p->len - p->off);

    if (n == -EAGAIN)
        return 0;
    if (n <= 0) {
        pc_err_conn(&p->c, n == 0 ? -EPIPE : (int)n, "sending to", o->timeout_s);
        return PC_ENET;
    }
    p->off += (size_t)n;
    if (p->off == p->len)
        p->off = p->len = 0;
    return 0;
}

/* Copy what the connection has to stdout; notes the peer's end of stream.
 * With TLS, also what OpenSSL has decrypted already: poll() cannot see it. */
static int pump_recv(const struct pc_opts *o, struct pump *p)
{
    char buf[BUF_SIZE];
    ssize_t n;
    int rc;

    do {
        n = pc_io_recv(&p->c, buf, sizeof(buf));
        if (n == -EAGAIN)
            return 0;
        if (n < 0) {
            pc_err_conn(&p->c, (int)n, "receiving from", o->timeout_s);
            return PC_ENET;
        }
        if (n == 0) {
            p->peer_eof = true;
            return 0;
        }
        if (p->wr_shut)
            p->idle_deadline = pc_deadline(o->timeout_s);
        rc = pc_write_fd(STDOUT_FILENO, buf, (size_t)n);
        if (rc < 0) {
            pc_err("error writing stdout: %s", strerror(-rc));
            return PC_ENET;
        }
    } while (pc_io_pending(&p->c));
    return 0;
}

/* stdin done and everything sent: tell the peer with a half-close (TLS: a
 * close_notify, which may have to wait for room in the socket). */
static int maybe_half_close(const struct pc_opts *o, struct pump *p)
{
    int rc;

    if (!p->in_eof || p->len > 0 || p->wr_shut)
        return 0;
    rc = pc_io_shutdown(&p->c);
    if (rc == -EAGAIN) {
        p->shut_wait = true;
        return 0;
    }
    if (rc < 0) {
        pc_err_conn(&p->c, rc, "half-closing", o->timeout_s);
        return PC_ENET;
    }
    p->shut_wait = false;
    p->wr_shut = true;
    p->idle_deadline = pc_deadline(o->timeout_s);
    pc_info(o, "end of stdin: half-closed, waiting for %s to close", p->c.peer);
    return 0;
}

/* The poll events the connection needs: reading always (until the peer's
 * end), writing while stdin bytes or a close_notify wait; TLS may ask for
 * the other direction for either. */
static short conn_events(const struct pump *p)
{
    short ev = p->peer_eof ? 0 : p->c.rd_want;

    if (p->len > 0 || p->shut_wait)
        ev |= p->c.wr_want;
    return ev;
}

/* One poll round.  Returns 0 to go on, PC_ENET after printing why. */
static int pump_once(const struct pc_opts *o, struct pump *p)
{
    struct pollfd fds[2] = {
        { .fd = (p->in_eof || p->len > 0) ? -1 : STDIN_FILENO, .events = POLLIN },
        { .fd = p->c.fd, .events = conn_events(p) },
    };
    int timeout_ms = -1, rc = 0;

    if (p->wr_shut && p->idle_deadline >= 0) {
        int64_t left = p->idle_deadline - pc_now_ns();
        if (left <= 0) {
            pc_err_io(-ETIMEDOUT, "waiting for reply from", p->c.peer, o->timeout_s);
            return PC_ENET;
        }
        timeout_ms = (int)((left + 999999) / 1000000);
    }
    if (poll(fds, 2, timeout_ms) < 0)
        return errno == EINTR ? 0 : (pc_err("poll: %s", strerror(errno)), PC_ENET);
    if (fds[0].revents & POLLNVAL)
        p->in_eof = true; /* stdin is closed: as good as empty */
    else if (fds[0].revents)
        rc = pump_stdin(p);
    /* Receive first: a peer that has closed ends us without a send error.
     * Any readiness may be what TLS waited for, in either direction. */
    if (rc == 0 && fds[1].revents && !p->peer_eof)
        rc = pump_recv(o, p);
    if (rc == 0 && fds[1].revents && !p->peer_eof && p->len > 0)
        rc = pump_send(o, p);
    if (rc == 0 && !p->peer_eof)
        rc = maybe_half_close(o, p);
    return rc;
}

int pc_run_stream(const struct pc_opts *o)
{
    static struct pump p; /* 64 KiB buffer: keep it off the stack */
    int status;

    status = pc_connect_stream(o, &p.c);
    if (status != PC_OK)
        return status;
    while (status == PC_OK && !p.peer_eof)
        status = pump_once(o, &p);
    if (status == PC_OK && !p.in_eof)
        pc_info(o, "%s closed the connection before end of stdin", p.c.peer);
    pc_report_bytes(o, &p.c);
    pc_close(&p.c);
    return status;
}

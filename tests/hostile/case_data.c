/* SPDX-License-Identifier: MIT */
/*
 * case_data.c - hostile traffic: a peer that never reads, resets in the
 * middle of the server's write, one 64 MiB write, garbage at the example
 * protocols' parsers.  Every loop is bounded by a deadline and a count.
 */
#include "hostile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ------------------------------------------------------- never-reading peer
 *
 * NR peers write 64 KiB chunks as fast as the server takes them and never
 * read.  The echo output piles up on the server: event style must stop
 * reading past out_high_water (1 MiB) so each costs at most about 2 MiB
 * (the output buffer grows by doubling past 1 MiB + one 64 KiB read), and
 * --write-timeout must cut them; blocking style blocks its worker in
 * ps_conn_write_all, which --write-timeout must end.
 */
#define NR_PEERS 8
#define NR_WRITE_TIMEOUT_MS 1000
#define NR_PER_PEER_KIB (2 * 1024 + 256)

struct nr {
    int ep, ncut;
    int fd[NR_PEERS];
    int64_t progress[NR_PEERS], cut[NR_PEERS]; /* last byte taken; when cut (0: not) */
    long sent[NR_PEERS];
};

/* Write what the sockets take; note the peers the server cut. */
static void nr_pump(struct nr *p)
{
    static char chunk[64 * 1024];
    struct epoll_event evs[NR_PEERS];
    int k = epoll_wait(p->ep, evs, NR_PEERS, 50), i;

    for (i = 0; i < k; i++) {
        int idx = (int)evs[i].data.u32;
        bool gone = evs[i].events & (EPOLLERR | EPOLLHUP);
        ssize_t w = 0;
        while (!gone && (w = send(p->fd[idx], chunk, sizeof chunk, MSG_NOSIGNAL)) > 0) {
            p->sent[idx] += w;
            p->progress[idx] = now_ms();
        }
        if (gone || (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            p->cut[idx] = now_ms();
            p->ncut++;
            epoll_ctl(p->ep, EPOLL_CTL_DEL, p->fd[idx], NULL);
        }
    }
}

static void nr_verdict(ctx *c, const struct nr *p)
{
    long min_sent = -1, max_sent = 0, bound = c->blocking ? 0 : NR_PEERS * NR_PER_PEER_KIB;
    long grew = atomic_load(&c->mon.max_rss) - c->rss_base;
    int64_t worst = 0;
    int i;

    for (i = 0; i < NR_PEERS; i++) {
        if (p->cut[i] && p->cut[i] - p->progress[i] > worst)
            worst = p->cut[i] - p->progress[i];
        min_sent = min_sent < 0 || p->sent[i] < min_sent ? p->sent[i] : min_sent;
        max_sent = p->sent[i] > max_sent ? p->sent[i] : max_sent;
    }
    addf(c,
         "%d peers wrote %.1f..%.1f MiB unread, %d cut, worst %lld ms after their last "
         "progress; rss during +%.1f MiB (bound +%.1f)",
         NR_PEERS, min_sent / (double)MIB, max_sent / (double)MIB, p->ncut, (long long)worst,
         grew / 1024.0, (bound + rss_slack_kib()) / 1024.0);
    if (p->ncut < NR_PEERS)
        fail(c, "%d of %d never-reading peers still connected after %lld ms", NR_PEERS - p->ncut,
             NR_PEERS, (long long)scaled(10000));
    if (worst > NR_WRITE_TIMEOUT_MS + NR_WRITE_TIMEOUT_MS / 4 + scaled(1500))
        fail(c, "a never-reading peer was cut %lld ms after it stopped making progress",
             (long long)worst);
    if (grew > bound + rss_slack_kib())
        fail(c, "server RSS grew by %.1f MiB under %d never-reading peers", grew / 1024.0,
             NR_PEERS);
}

void run_never_read(ctx *c)
{
    const char *extra[] = {"--write-timeout", "1000", "--workers", "16", NULL};
    struct nr p = {.ep = -1};
    int64_t deadline;
    int i, err;

    if (!c->blocking)
        extra[2] = NULL;
    memset(p.fd, -1, sizeof p.fd);
    if (case_begin(c, extra, 0) < 0)
        return;
    if (open_many(c->s.port, p.fd, NR_PEERS, NR_PEERS, now_ms() + scaled(3000), &err) < NR_PEERS) {
        fail(c, "connect: %s", strerror(err));
        goto out;
    }
    p.ep = epoll_create1(EPOLL_CLOEXEC);
    for (i = 0; i < NR_PEERS; i++) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        epoll_ctl(p.ep, EPOLL_CTL_ADD, p.fd[i], &ev);
        p.progress[i] = now_ms();
    }
    deadline = now_ms() + scaled(10000);
    while (p.ncut < NR_PEERS && now_ms() < deadline)
        nr_pump(&p);
    nr_verdict(c, &p);
out:
    if (p.ep >= 0)
        close(p.ep);
    close_all(p.fd, NR_PEERS);
}

/* ------------------------------------------------------ RST in mid-write
 *
 * RST_TOTAL peers (RST_CONC at a time) each send up to 1 MiB without
 * reading, so the server is in the middle of echoing it back, and once
 * echoed bytes are waiting (FIONREAD > 0) and at least 256 KiB went out,
 * close with SO_LINGER 0: the server's pending or blocked write meets a
 * reset.
 */
#define RST_TOTAL 1000
#define RST_MAX 20000 /* resets leave no TIME_WAIT: no port pressure */
#define RST_CONC 16

struct rst {
    int ep, port, started, done, late, target;
    int64_t t0;
    int fd[RST_CONC];
    long sent[RST_CONC];
    int64_t since[RST_CONC];
};

/* Start connections in the free slots.  Returns -errno if a connect failed. */
static int rst_launch(struct rst *r)
{
    int i;

    for (i = 0; i < RST_CONC && r->started < r->target; i++) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
        if (r->fd[i] >= 0)
            continue;
        r->started++;
        r->fd[i] = tcp_connect_start(r->port);
        if (r->fd[i] < 0)
            return r->fd[i];
        r->sent[i] = 0;
        r->since[i] = now_ms();
        epoll_ctl(r->ep, EPOLL_CTL_ADD, r->fd[i], &ev);
    }
    return 0;
}

/* Send (up to 1 MiB per connection) what the sockets take. */
static void rst_pump(struct rst *r)
{
    static char chunk[64 * 1024];
    struct epoll_event evs[RST_CONC];
    int k = epoll_wait(r->ep, evs, RST_CONC, 5), i;

    if (!chunk[0])
        memset(chunk, 'r', sizeof chunk);
    for (i = 0; i < k; i++) {
        int s = (int)evs[i].data.u32;
        ssize_t w;
        while (r->sent[s] < MIB && (w = send(r->fd[s], chunk, sizeof chunk, MSG_NOSIGNAL)) > 0)
            r->sent[s] += w;
    }
}

/* Reset the connections the server is writing to (echoed bytes waiting,
 * 256 KiB sent), or that took too long. */
static void rst_reset(struct rst *r)
{
    int i;

    for (i = 0; i < RST_CONC; i++) {
        int unread = 0;
        if (r->fd[i] < 0)
            continue;
        ioctl(r->fd[i], FIONREAD, &unread);
        if ((unread > 0 && r->sent[i] >= 256 * KIB) || now_ms() - r->since[i] > scaled(3000)) {
            r->late += unread == 0;
            epoll_ctl(r->ep, EPOLL_CTL_DEL, r->fd[i], NULL);
            close_rst(r->fd[i]);
            r->fd[i] = -1;
            r->done++;
        }
    }
}

void run_rst(ctx *c)
{
    const char *extra[] = {"--workers", "24", NULL};
    struct rst r = {.port = 0, .target = RST_MAX};
    long long io0 = -1, io1;
    int64_t deadline;
    int rc;

    memset(r.fd, -1, sizeof r.fd);
    if (case_begin(c, c->blocking ? extra : NULL, 0) < 0)
        return;
    if (c->is_echo)
        io0 = admin_stat(c->s.admin_port, "io_errors");
    r.port = c->s.port;
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    r.t0 = now_ms();
    deadline = r.t0 + scaled(15000);
    while (r.done < r.target && now_ms() < deadline) {
        if (r.done >= RST_TOTAL && now_ms() - r.t0 >= ATTACK_MIN_MS)
            r.target = r.started; /* finish those under way */
        if ((rc = rst_launch(&r)) < 0) {
            fail(c, "connect: %s", strerror(-rc));
            break;
        }
        rst_pump(&r);
        rst_reset(&r);
    }
    close_all(r.fd, RST_CONC);
    close(r.ep);
    addf(c, "%d resets mid-echo in %lld ms (%d without echoed bytes seen)", r.done,
         (long long)(now_ms() - r.t0), r.late);
    if (r.done < r.target || r.done < RST_TOTAL)
        fail(c, "only %d of %d resets done within %lld ms", r.done, r.target,
             (long long)scaled(15000));
    if (io0 >= 0 && (io1 = admin_stat(c->s.admin_port, "io_errors")) >= 0)
        addf(c, "server io_errors +%lld", io1 - io0);
}

/* -------------------------------------------------------- one 64 MiB write
 *
 * One client hands 64 MiB to a single send() call on a blocking socket (a
 * writer thread; SO_SNDTIMEO bounds it) while the main thread reads the
 * echo and verifies every byte.  The stream is byte i = pat[i % 1 MiB] ^
 * (i >> 20), so a shifted or repeated block is caught.
 */
#define BIG_TOTAL (64L * MIB)

struct big_writer {
    int fd;
    const unsigned char *data;
    long sent;
    int calls, err;
};

static void *big_writer_main(void *arg)
{
    struct big_writer *w = arg;

    while (w->sent < BIG_TOTAL) { /* one call, unless a timeout or signal cuts it short */
        ssize_t n = send(w->fd, w->data + w->sent, (size_t)(BIG_TOTAL - w->sent), MSG_NOSIGNAL);
        w->calls++;
        if (n <= 0) {
            w->err = n < 0 ? errno : EPIPE;
            break;
        }
        w->sent += n;
    }
    return NULL;
}

void run_bigwrite(ctx *c)
{
    unsigned char *data = malloc(BIG_TOTAL), buf[64 * 1024];
    struct big_writer w = {.fd = -1};
    struct timeval tv = {.tv_sec = scaled(30000) / 1000};
    long got = 0, bad_at = -1, i;
    int64_t t0, deadline;
    uint64_t rs = 0xb16b00b5;
    pthread_t tid;
    bool writer = false;

    if (!data)
        return;
    for (i = 0; i < MIB; i++)
        data[i] = (unsigned char)rnd_next(&rs);
    for (i = MIB; i < BIG_TOTAL; i++)
        data[i] = data[i & (MIB - 1)] ^ (unsigned char)(i >> 20);
    if (case_begin(c, NULL, 0) < 0)
        goto out;
    t0 = now_ms();
    deadline = t0 + scaled(30000);
    w.fd = tcp_connect(c->s.port, t0 + scaled(2000));
    if (w.fd < 0) {
        fail(c, "connect: %s", strerror(-w.fd));
        goto out;
    }
    w.data = data;
    fcntl(w.fd, F_SETFL, fcntl(w.fd, F_GETFL) & ~O_NONBLOCK); /* recv below polls */
    setsockopt(w.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    writer = pthread_create(&tid, NULL, big_writer_main, &w) == 0;
    while (writer && got < BIG_TOTAL && bad_at < 0 && now_ms() < deadline) {
        struct pollfd pfd = {.fd = w.fd, .events = POLLIN};
        ssize_t r;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        r = recv(w.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            fail(c, "echo stream ended after %ld of %ld bytes", got, BIG_TOTAL);
            break;
        }
        for (i = 0; i < r && bad_at < 0; i++)
            if (buf[i] != data[got + i])
                bad_at = got + i;
        if (r > 0)
            got += r;
    }
    if (writer) {
        if (got < BIG_TOTAL)
            shutdown(w.fd, SHUT_RDWR); /* unblock the writer */
        pthread_join(tid, NULL);
    }
    addf(c,
         "64 MiB in %d send() call(s), echoed and verified in %lld ms (%.0f MiB/s), rss "
         "during +%.1f MiB",
         w.calls, (long long)(now_ms() - t0), got / (double)MIB / ((now_ms() - t0 + 1) / 1000.0),
         (atomic_load(&c->mon.max_rss) - c->rss_base) / 1024.0);
    if (bad_at >= 0)
        fail(c, "echoed byte %ld differs", bad_at);
    else if (got < BIG_TOTAL && !c->failed)
        fail(c, "only %ld of %ld bytes echoed within %lld ms (writer: %s)", got, BIG_TOTAL,
             (long long)scaled(30000), w.err ? strerror(w.err) : "ok");
out:
    if (w.fd >= 0)
        close(w.fd);
    free(data);
}

/* ---------------------------------------------------------- garbage bytes
 *
 * For the example protocol servers (HTTP, RESP): GARBAGE_N connections in
 * four kinds send what no parser should accept: random bytes; a 1 MiB line
 * without a newline; binary with NULs and stray CR/LF; random bytes in
 * small trickled pieces.  Then each reads (bounded) until the server closes
 * or GARBAGE_WAIT_MS passes, and closes.  The server must stay up, keep
 * serving the probe, and free everything.
 */
#define GARBAGE_N 48
#define GARBAGE_WAIT_MS 1000

static size_t garbage_fill(int kind, unsigned char *buf, size_t cap, uint64_t *rs)
{
    size_t n, i;

    switch (kind) {
    case 0: /* random */
        n = 64 * KIB;
        for (i = 0; i < n; i++)
            buf[i] = (unsigned char)rnd_next(rs);
        return n;
    case 1: /* one long line, no newline */
        n = cap;
        memset(buf, 'A', n);
        return n;
    case 2: /* binary with NULs, CR, LF and protocol characters */
        n = 256 * KIB;
        for (i = 0; i < n; i++) {
            static const unsigned char pick[] = {0, '\r', '\n', '*', '$', ':', ' ', 0xff, 'G'};
            buf[i] = pick[rnd_next(rs) % sizeof pick];
        }
        return n;
    default: /* small random pieces, sent one by one below */
        n = 4 * KIB;
        for (i = 0; i < n; i++)
            buf[i] = (unsigned char)rnd_next(rs);
        return n;
    }
}

/* Send one connection's garbage (small pieces for kind 3).  Returns 0, or
 * -errno when the server closed (or stopped reading) before the end. */
static int garbage_send(int fd, int kind, unsigned char *buf, uint64_t *rs, int64_t deadline)
{
    size_t n = garbage_fill(kind, buf, MIB, rs), off = 0;
    int rc = 0;

    if (kind < 3)
        return send_all(fd, buf, n, deadline);
    while (off < n && rc == 0) {
        size_t piece = 1 + rnd_next(rs) % 200;
        if (piece > n - off)
            piece = n - off;
        rc = send_all(fd, buf + off, piece, deadline);
        off += piece;
    }
    return rc;
}

/* Wait, for all at once, until the server closes them or the time is up;
 * count per kind those left open.  Returns how many the server closed. */
static int garbage_wait(int *fds, int left_open[4])
{
    int64_t dl = now_ms() + GARBAGE_WAIT_MS;
    int ep = epoll_create1(EPOLL_CLOEXEC), open_n = GARBAGE_N, i;

    for (i = 0; i < GARBAGE_N; i++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    while (open_n > 0 && now_ms() < dl) {
        struct epoll_event evs[GARBAGE_N];
        int k = epoll_wait(ep, evs, GARBAGE_N, (int)(dl - now_ms() > 0 ? dl - now_ms() : 0));
        for (i = 0; i < k; i++) {
            int idx = (int)evs[i].data.u32;
            if (drain_input(fds[idx], NULL)) {
                close(fds[idx]); /* also leaves the epoll set */
                fds[idx] = -1;
                open_n--;
            }
        }
    }
    for (i = 0; i < GARBAGE_N; i++)
        left_open[i % 4] += fds[i] >= 0;
    close(ep);
    return GARBAGE_N - open_n;
}

void run_garbage(ctx *c)
{
    unsigned char *buf = malloc(MIB);
    int fds[GARBAGE_N], i, err, closed, send_cut = 0, left_open[4] = {0};
    uint64_t rs = 0x9a5ba9e;
    int64_t t0, deadline;

    for (i = 0; i < GARBAGE_N; i++)
        fds[i] = -1;
    if (!buf || case_begin(c, NULL, 0) < 0)
        goto out;
    t0 = now_ms();
    if (open_many(c->s.port, fds, GARBAGE_N, GARBAGE_N, t0 + scaled(3000), &err) < GARBAGE_N) {
        fail(c, "connect: %s", strerror(err));
        goto out;
    }
    deadline = now_ms() + scaled(5000); /* for all the sending */
    for (i = 0; i < GARBAGE_N; i++)
        send_cut += garbage_send(fds[i], i % 4, buf, &rs, deadline) < 0;
    closed = garbage_wait(fds, left_open);
    addf(c,
         "%d garbage connections in %lld ms: %d closed by the server (%d while we sent), "
         "%d still open after %d ms (random %d, long line %d, binary %d, trickled %d)",
         GARBAGE_N, (long long)(now_ms() - t0), closed, send_cut, GARBAGE_N - closed,
         GARBAGE_WAIT_MS, left_open[0], left_open[1], left_open[2], left_open[3]);
    if (!srv_alive(&c->s))
        fail(c, "the server died");
out:
    close_all(fds, GARBAGE_N);
    free(buf);
}

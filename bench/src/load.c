/* SPDX-License-Identifier: MIT */
/*
 * load.c - one load thread: its connections, its epoll set, its statistics.
 *
 * Every function here runs on the load thread that owns the worker; the
 * only shared state it touches is the bench phase word, run_start_ns (set
 * before PH_RUN is published) and the global count of connects in progress.
 *
 * A connection sends the stream pattern_at(phase + i) and verifies every
 * echoed byte against it.  Message j occupies stream bytes [j*size,
 * (j+1)*size) and is complete when all of them came back.  With random
 * sizes (--size-min/--size-max) messages follow each other in the stream
 * just the same; each in-flight message's offset and size are kept in a
 * ring of --pipeline slots (struct msg), and the fixed-size arithmetic is
 * left as it was.  Any failure
 * (mismatch, reset, timeout, ...) is counted once by kind and the
 * connection is closed; in --connect-rate mode the slot starts over.
 *
 * With --tls a connection stays C_CONNECTING through the handshake (its
 * timeout and the limit of connects in progress cover both), and its bytes
 * go through tls_write/tls_read; either may need the other direction of the
 * socket (tls_wr_in, tls_rd_out), and bytes OpenSSL has already decrypted
 * are read before the thread waits, since epoll cannot see them.
 */
#include "bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

enum cstate { C_IDLE, C_CONNECTING, C_UP, C_DEAD };

/* Random sizes: message j of a connection, at slot j % pipeline. */
struct msg {
    uint64_t off; /* its first byte's stream offset */
    uint32_t len;
};

struct conn {
    int fd;
    uint8_t state;
    bool want_out; /* EPOLLOUT is in the interest set */
    uint32_t id;   /* global id; with gen, picks the pattern phase */
    uint32_t gen;  /* connect-rate: cycles done by this slot */
    uint32_t phase;
    uint64_t t_start; /* connect started */
    uint64_t t_timer; /* connect timeout counts from here (see forgive) */
    uint64_t t_act;   /* last progress while work was pending */
    uint64_t queued;  /* messages queued (sent or to send) */
    uint64_t done;    /* messages fully echoed */
    uint64_t tx_off;  /* bytes written */
    uint64_t rx_off;  /* bytes echoed and verified */
    uint64_t *ts;     /* closed loop: queue time of message j at j % pipeline */
    uint8_t *got;     /* UDP: message j answered, at j % pipeline */
    struct msg *m;    /* random sizes: message j at j % pipeline; else NULL */
    uint64_t q_end;   /* random sizes: stream offset after the last queued message */
    uint64_t d_end;   /* ... after the last done one */
    uint64_t tx_msgs; /* random sizes, UDP: datagrams sent */
    void *ssl;        /* --tls: the session (tls.c), or NULL */
    void *sess;       /* --tls-resume: the slot's last session, or NULL */
    bool handshaking; /* C_CONNECTING: TCP is up, the TLS handshake is not */
    bool tls_wr_in;   /* the last tls_write waits for the socket to be readable */
    bool tls_rd_out;  /* the last tls_read waits for it to be writable */
};

#define RXBUF 64000 /* < PATTERN_PERIOD: one pattern_at() covers a whole read */

struct lt {
    struct worker *w;
    const struct opts *o;
    struct conn *c;
    int ep;
    int ph;
    int open_cursor;    /* slots below this are not C_IDLE */
    uint64_t inflight;  /* messages queued but not done, live connections */
    uint64_t sent;      /* messages queued in PH_RUN, against w->quota */
    uint64_t rate_ival; /* --rate: ns between messages on one connection */
    uint64_t next_scan;
    uint8_t *rx;
};

static void conn_fail(struct lt *t, struct conn *c, enum err_kind k);
static void conn_flush(struct lt *t, struct conn *c);

static void ep_set(struct lt *t, struct conn *c, int op, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    if (epoll_ctl(t->ep, op, c->fd, &ev) == 0)
        c->want_out = out;
}

static void count_err(struct lt *t, enum err_kind k)
{
    t->w->st.errors[k]++;
    atomic_fetch_add_explicit(&t->w->st.live_errors, 1, memory_order_relaxed);
}

static void conn_close(struct lt *t, struct conn *c)
{
    if (c->state == C_CONNECTING)
        atomic_fetch_sub(&t->w->b->connecting, 1);
    if (c->state == C_UP)
        atomic_fetch_sub_explicit(&t->w->st.live_connected, 1, memory_order_relaxed);
    if (c->ssl)
        tls_session_free(c->ssl);
    c->ssl = NULL;
    c->handshaking = c->tls_wr_in = c->tls_rd_out = false;
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    t->inflight -= c->queued - c->done;
    c->queued = c->done = 0;
    c->tx_off = c->rx_off = 0;
    c->q_end = c->d_end = c->tx_msgs = 0;
    if (c->got)
        memset(c->got, 0, (size_t)t->o->pipeline);
}

/* Count the failure, close, and either retire the slot or (connect-rate,
 * while running) make it available for a new cycle. */
static void conn_fail(struct lt *t, struct conn *c, enum err_kind k)
{
    bool was_connecting = c->state == C_CONNECTING;
    count_err(t, k);
    conn_close(t, c);
    if (was_connecting)
        atomic_fetch_add_explicit(&t->w->st.live_settled, 1, memory_order_relaxed);
    if (t->o->mode == MODE_CONNECT_RATE) {
        c->state = C_IDLE;
        int idx = (int)(c - t->c);
        if (idx < t->open_cursor)
            t->open_cursor = idx;
    } else {
        c->state = C_DEAD;
    }
}

static bool is_v4_loopback(const struct opts *o)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&o->target;
    return o->target.ss_family == AF_INET && (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

/* Bind to 127.0.0.x (x = 1 + id % sources) so that many connections to one
 * port do not run out of the ~28k ephemeral ports of a single address. */
static int bind_source(const struct lt *t, int fd, uint32_t id)
{
    int one = 1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000001u + id % (uint32_t)t->o->sources);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 ? 0 : -errno;
}

static void conn_up(struct lt *t, struct conn *c, uint64_t now)
{
    c->state = C_UP;
    c->t_act = now;
    struct tstats *st = &t->w->st;
    st->connects_ok++;
    hist_add(&st->conn_lat, now - c->t_start);
    atomic_fetch_add_explicit(&st->live_connected, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->live_settled, 1, memory_order_relaxed);
}

/* Start connecting slot c.  Returns false if the global limit of connects in
 * progress is reached (the slot stays C_IDLE). */
static bool conn_open(struct lt *t, struct conn *c)
{
    const struct opts *o = t->o;
    if (atomic_fetch_add(&t->w->b->connecting, 1) >= o->max_connecting) {
        atomic_fetch_sub(&t->w->b->connecting, 1);
        return false;
    }
    int type = (o->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    c->state = C_CONNECTING;
    c->phase = pattern_phase(c->id + c->gen * (uint32_t)o->connections);
    c->t_start = c->t_timer = now_ns(); /* not `now`: opening sockets takes a while */
    c->fd = socket(o->target.ss_family, type, 0);
    if (c->fd < 0)
        goto out_fail;
    if (!o->udp) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (o->sources > 0 && is_v4_loopback(o) && bind_source(t, c->fd, c->id) < 0)
        goto out_fail;
    if (connect(c->fd, (const struct sockaddr *)&o->target, o->target_len) < 0 &&
        errno != EINPROGRESS)
        goto out_fail;
    if (!o->udp) {
        ep_set(t, c, EPOLL_CTL_ADD, true); /* writable = connected */
        return true;
    }
    /* A connected UDP socket is usable at once. */
    atomic_fetch_sub(&t->w->b->connecting, 1);
    conn_up(t, c, c->t_start);
    ep_set(t, c, EPOLL_CTL_ADD, false);
    return true;

out_fail:
    conn_fail(t, c, err_from_errno(errno));
    return true;
}

/* Queue n messages on c, closed loop: each stamped with the time now. */
static void conn_queue(struct lt *t, struct conn *c, uint64_t n, uint64_t now)
{
    if (c->queued == c->done)
        c->t_act = now;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t slot = c->queued % (uint64_t)t->o->pipeline;
        if (c->ts)
            c->ts[slot] = now;
        if (c->m) {
            c->m[slot].off = c->q_end;
            c->m[slot].len = (uint32_t)size_draw(&t->o->sizes, c->id, c->gen, c->queued);
            c->q_end += c->m[slot].len;
        }
        c->queued++;
    }
    t->inflight += n;
    t->sent += n;
}

static uint64_t quota_left(const struct lt *t)
{
    if (t->w->quota == 0)
        return UINT64_MAX;
    return t->sent < t->w->quota ? t->w->quota - t->sent : 0;
}

/* Intended send time of message j of c in --rate mode: connections are
 * evenly phased so the total rate is smooth. */
static uint64_t rate_due(const struct lt *t, const struct conn *c, uint64_t j)
{
    uint64_t offs = t->rate_ival * c->id / (uint64_t)t->o->connections;
    return t->w->b->run_start_ns + offs + j * t->rate_ival;
}

static void conn_start_run(struct lt *t, struct conn *c, uint64_t now)
{
    if (t->o->rate > 0 || t->o->mode == MODE_HOLD)
        return;
    uint64_t n = (uint64_t)t->o->pipeline, left = quota_left(t);
    conn_queue(t, c, n < left ? n : left, now);
    conn_flush(t, c);
}

/* Stream offset after the last byte queued on c. */
static uint64_t queued_end(const struct lt *t, const struct conn *c)
{
    return c->m ? c->q_end : c->queued * t->o->size;
}

/* Want EPOLLOUT while bytes wait that the socket's room would let go, or
 * while TLS waits for room to go on reading. */
static void conn_update_out(struct lt *t, struct conn *c)
{
    bool out = (c->tx_off < queued_end(t, c) && !c->tls_wr_in) || c->tls_rd_out;
    if (out != c->want_out)
        ep_set(t, c, EPOLL_CTL_MOD, out);
}

/* One send() or tls_write of buf.  Returns the bytes taken, 0 when the
 * socket has no room now, or -1 after conn_fail. */
static ssize_t conn_send(struct lt *t, struct conn *c, const void *buf, size_t len)
{
    enum err_kind k = ERR_OTHER;
    long n;

    if (c->ssl) {
        n = tls_write(c->ssl, buf, len, &k);
        c->tls_wr_in = n == TLS_WANT_IN;
        if (n > 0)
            return n;
        if (n == TLS_WANT_IN || n == TLS_WANT_OUT)
            return 0;
        conn_fail(t, c, k);
        return -1;
    }
    for (;;) {
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR) {
            conn_fail(t, c, err_from_errno(errno));
            return -1;
        }
    }
}

static void conn_flush(struct lt *t, struct conn *c)
{
    const struct opts *o = t->o;
    uint64_t end = queued_end(t, c);
    while (c->tx_off < end) {
        size_t len = o->udp ? o->size : (size_t)(end - c->tx_off);
        if (o->udp && c->m)
            len = c->m[c->tx_msgs % (uint64_t)o->pipeline].len;
        if (len > PATTERN_PERIOD)
            len = PATTERN_PERIOD;
        ssize_t n = conn_send(t, c, pattern_at(c->phase + c->tx_off), len);
        if (n < 0)
            return;
        if (n == 0)
            break;
        c->tx_off += (uint64_t)n;
        c->tx_msgs += o->udp; /* a datagram goes whole or not at all */
    }
    conn_update_out(t, c);
}

/* Message j of c has come back: record its latency. */
static void msg_done(struct lt *t, struct conn *c, uint64_t j, uint64_t now)
{
    const struct opts *o = t->o;
    struct tstats *st = &t->w->st;
    uint64_t sent_at = o->rate > 0 ? rate_due(t, c, j) : c->ts[j % (uint64_t)o->pipeline];
    hist_add(&st->lat, now > sent_at ? now - sent_at : 0);
    if (t->ph == PH_RUN) {
        st->msgs++;
        st->bytes += c->m ? c->m[j % (uint64_t)o->pipeline].len : o->size;
    }
}

/* c->done moved on by n messages: account, then close (connect-rate) or
 * send as many new ones (closed loop). */
static void conn_advance(struct lt *t, struct conn *c, uint64_t n, uint64_t now)
{
    const struct opts *o = t->o;
    struct tstats *st = &t->w->st;
    t->inflight -= n;
    atomic_fetch_add_explicit(&st->live_msgs, n, memory_order_relaxed);
    if (t->inflight == 0 && quota_left(t) == 0 && st->finish_ns == 0)
        st->finish_ns = now; /* --messages: the last echo of this thread */
    if (o->mode == MODE_CONNECT_RATE) {
        if (t->ph == PH_RUN)
            st->cycles++;
        if (c->ssl) /* a clean end: close_notify, and the session to resume */
            c->sess = tls_finish(c->ssl, o->tls_resume, c->sess);
        conn_close(t, c);
        c->state = C_IDLE;
        c->gen++;
        int idx = (int)(c - t->c);
        if (idx < t->open_cursor)
            t->open_cursor = idx;
        return;
    }
    if (t->ph == PH_RUN && o->rate == 0) {
        uint64_t left = quota_left(t);
        conn_queue(t, c, n < left ? n : left, now);
        conn_flush(t, c);
    }
}

/* TCP: messages of c whose last byte has arrived are done. */
static void conn_complete(struct lt *t, struct conn *c, uint64_t now)
{
    uint64_t n = 0;
    if (c->m) {
        while (c->done < c->queued &&
               c->d_end + c->m[c->done % (uint64_t)t->o->pipeline].len <= c->rx_off) {
            c->d_end += c->m[c->done % (uint64_t)t->o->pipeline].len;
            msg_done(t, c, c->done, now);
            c->done++;
            n++;
        }
    } else {
        while (c->done < c->queued && (c->done + 1) * t->o->size <= c->rx_off) {
            msg_done(t, c, c->done, now);
            c->done++;
            n++;
        }
    }
    if (n)
        conn_advance(t, c, n, now);
}

/* UDP: a datagram may answer any message in flight (a server with several
 * workers can reorder replies), but must equal one of them exactly; a
 * duplicate or a corrupted datagram matches none. */
static void dgram_recv(struct lt *t, struct conn *c, const uint8_t *p, size_t len, uint64_t now)
{
    const uint64_t size = t->o->size, depth = (uint64_t)t->o->pipeline;
    const struct size_law *law = &t->o->sizes;
    if (c->m ? len > law->max : len != size) {
        conn_fail(t, c, len > (c->m ? law->max : size) ? ERR_EXCESS : ERR_MISMATCH);
        return;
    }
    uint64_t sent = c->m ? c->tx_msgs : c->tx_off / size;
    for (uint64_t j = c->done; j < sent; j++) {
        const struct msg *m = c->m ? &c->m[j % depth] : NULL;
        if (c->got[j % depth] || (m && m->len != len) ||
            memcmp(p, pattern_at(c->phase + (m ? m->off : j * size)), len) != 0)
            continue;
        c->got[j % depth] = 1;
        c->t_act = now;
        msg_done(t, c, j, now);
        uint64_t n = 0;
        while (c->done < c->queued && c->got[c->done % depth]) {
            c->got[c->done % depth] = 0;
            c->done++;
            n++;
        }
        if (n)
            conn_advance(t, c, n, now);
        return;
    }
    conn_fail(t, c, ERR_MISMATCH);
}

/* Verify n received bytes against the stream at c->rx_off. */
static bool conn_verify(struct lt *t, struct conn *c, const uint8_t *p, size_t n)
{
    if (c->rx_off + n > c->tx_off) {
        conn_fail(t, c, ERR_EXCESS);
        return false;
    }
    if (memcmp(p, pattern_at(c->phase + c->rx_off), n) != 0) {
        conn_fail(t, c, ERR_MISMATCH);
        return false;
    }
    c->rx_off += n;
    return true;
}

/* --tls: what the session has, verified like conn_read's bytes.  At most
 * 8 reads a turn, like conn_read, except that decrypted bytes are always
 * taken (epoll would not report them again). */
static void conn_read_tls(struct lt *t, struct conn *c, uint64_t now)
{
    for (int round = 0; c->state == C_UP && (round < 8 || tls_pending(c->ssl)); round++) {
        enum err_kind k = ERR_OTHER;
        long n = tls_read(c->ssl, t->rx, RXBUF, &k);
        bool rd_out = n == TLS_WANT_OUT;
        if (rd_out != c->tls_rd_out) {
            c->tls_rd_out = rd_out;
            conn_update_out(t, c);
        }
        if (n == TLS_WANT_IN || n == TLS_WANT_OUT)
            return;
        if (n == TLS_EOF || n == TLS_FAILED) {
            conn_fail(t, c, n == TLS_EOF ? ERR_CLOSED : k);
            return;
        }
        if (!conn_verify(t, c, t->rx, (size_t)n))
            return;
        c->t_act = now;
        conn_complete(t, c, now);
    }
}

static void conn_read(struct lt *t, struct conn *c, uint64_t now)
{
    if (c->ssl) {
        conn_read_tls(t, c, now);
        return;
    }
    for (int round = 0; round < 8 && c->state == C_UP; round++) {
        ssize_t n = recv(c->fd, t->rx, t->o->udp ? 65536 : RXBUF, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            conn_fail(t, c, err_from_errno(errno));
            return;
        }
        if (t->o->udp) {
            dgram_recv(t, c, t->rx, (size_t)n, now);
            continue;
        }
        if (n == 0) {
            conn_fail(t, c, ERR_CLOSED);
            return;
        }
        if (!conn_verify(t, c, t->rx, (size_t)n))
            return;
        c->t_act = now;
        conn_complete(t, c, now);
    }
}

/* The connection is ready for messages (TCP, and TLS if asked for). */
static void conn_ready(struct lt *t, struct conn *c, uint64_t now)
{
    atomic_fetch_sub(&t->w->b->connecting, 1);
    conn_up(t, c, now);
    ep_set(t, c, EPOLL_CTL_MOD, false);
    if (t->ph == PH_RUN)
        conn_start_run(t, c, now);
}

/* One step of the TLS handshake; when it is done, count it. */
static void conn_handshake(struct lt *t, struct conn *c, uint64_t now)
{
    struct tstats *st = &t->w->st;
    enum err_kind k = ERR_TLS;
    int rc = tls_handshake(c->ssl, &k);
    if (rc == TLS_WANT_IN || rc == TLS_WANT_OUT) {
        if ((rc == TLS_WANT_OUT) != c->want_out)
            ep_set(t, c, EPOLL_CTL_MOD, rc == TLS_WANT_OUT);
        return;
    }
    if (rc != 1) {
        conn_fail(t, c, k);
        return;
    }
    c->handshaking = false;
    st->handshakes++;
    st->handshakes_run += t->ph == PH_RUN;
    st->tls_resumed += tls_resumed(c->ssl);
    if (!st->tls_version) {
        st->tls_version = tls_version(c->ssl);
        st->tls_cipher = tls_cipher(c->ssl);
    }
    conn_ready(t, c, now);
}

/* C_CONNECTING: the TCP connect finished (or failed); with --tls the
 * handshake starts. */
static void conn_connected(struct lt *t, struct conn *c, uint32_t ev, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
        conn_fail(t, c, err ? err_from_errno(err) : ERR_OTHER);
        return;
    }
    if (!t->o->tls) {
        conn_ready(t, c, now);
        return;
    }
    c->ssl = tls_session_new(t->o, c->fd, c->sess);
    if (!c->ssl) {
        conn_fail(t, c, ERR_OTHER);
        return;
    }
    c->handshaking = true;
    conn_handshake(t, c, now);
}

static void conn_event(struct lt *t, struct conn *c, uint32_t ev, uint64_t now)
{
    if (c->state == C_CONNECTING) {
        if (c->handshaking)
            conn_handshake(t, c, now);
        else
            conn_connected(t, c, ev, now);
        return;
    }
    if (c->state != C_UP)
        return;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(t, c, now);
    /* TLS: readiness in either direction may be what a write waited for. */
    if (c->state == C_UP && ((ev & EPOLLOUT) || (c->tls_wr_in && (ev & EPOLLIN))))
        conn_flush(t, c);
    if (c->state == C_UP && c->tls_rd_out && (ev & EPOLLOUT))
        conn_read(t, c, now);
}

/* Open idle slots while the limit of connects in progress allows. */
static void open_more(struct lt *t)
{
    /* Connections not yet up when the connect phase ran out of time keep
     * trying during the run (and fail the run). */
    if (t->ph != PH_CONNECT && t->ph != PH_RUN)
        return;
    while (t->open_cursor < t->w->nconns) {
        struct conn *c = &t->c[t->open_cursor];
        if (c->state == C_IDLE && !conn_open(t, c))
            return;
        t->open_cursor++;
    }
}

/* --rate: queue every message whose time has come; returns the next due
 * time over all connections (UINT64_MAX if none). */
static uint64_t rate_schedule(struct lt *t, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < t->w->nconns; i++) {
        struct conn *c = &t->c[i];
        if (c->state != C_UP)
            continue;
        uint64_t n = 0;
        while (quota_left(t) > n && rate_due(t, c, c->queued + n) <= now)
            n++;
        if (n) {
            conn_queue(t, c, n, now);
            conn_flush(t, c);
        }
        if (c->state == C_UP && quota_left(t) > 0) {
            uint64_t due = rate_due(t, c, c->queued);
            if (due < next)
                next = due;
        }
    }
    return next;
}

/* Fail connections that waited longer than --timeout for a connect or an
 * echo; publish whether this thread has nothing left in flight. */
static void scan(struct lt *t, uint64_t now)
{
    uint64_t limit = (uint64_t)(t->o->timeout * 1e9);
    int connecting = 0;
    for (int i = 0; i < t->w->nconns; i++) {
        struct conn *c = &t->c[i];
        if (c->state == C_CONNECTING && now - c->t_timer > limit)
            conn_fail(t, c, ERR_TIMEOUT);
        else if (c->state == C_UP && c->queued > c->done && now - c->t_act > limit)
            conn_fail(t, c, ERR_TIMEOUT);
        connecting += c->state == C_CONNECTING;
    }
    bool idle = t->inflight == 0 && connecting == 0 && (t->ph == PH_DRAIN || quota_left(t) == 0);
    if (idle && !atomic_load(&t->w->st.idle)) {
        if (t->w->st.finish_ns == 0)
            t->w->st.finish_ns = now;
        atomic_store(&t->w->st.idle, true);
    }
}

static void on_phase(struct lt *t, int ph, uint64_t now)
{
    t->ph = ph;
    if (ph != PH_RUN)
        return;
    for (int i = 0; i < t->w->nconns; i++)
        if (t->c[i].state == C_UP)
            conn_start_run(t, &t->c[i], now);
}

static int wait_ms_or_ns(struct lt *t, struct epoll_event *evs, int max, uint64_t until)
{
    uint64_t now = now_ns();
    uint64_t d = until > now ? until - now : 0;
    if (d > 10000000u)
        d = 10000000u; /* wake every 10 ms to follow the phase */
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)d};
    return epoll_pwait2(t->ep, evs, max, &ts, NULL);
}

/* The bench itself did not run for gap ns (descheduled, or a VM pause):
 * answers may have waited for us, so that time does not count towards any
 * connection's --timeout.  Latencies still include it. */
static void forgive(struct lt *t, uint64_t gap)
{
    if (gap > t->w->st.stall_max_ns)
        t->w->st.stall_max_ns = gap;
    for (int i = 0; i < t->w->nconns; i++) {
        struct conn *c = &t->c[i];
        if (c->state == C_UP)
            c->t_act += gap;
        else if (c->state == C_CONNECTING)
            c->t_timer += gap;
    }
}

static void run_loop(struct lt *t)
{
    struct epoll_event evs[256];
    uint64_t last = now_ns();
    for (;;) {
        int ph = atomic_load(&t->w->b->phase);
        uint64_t now = now_ns();
        if (ph == PH_DONE)
            break;
        if (ph != t->ph)
            on_phase(t, ph, now);
        open_more(t);
        uint64_t until = UINT64_MAX;
        if (t->o->rate > 0 && ph == PH_RUN)
            until = rate_schedule(t, now);
        int n = wait_ms_or_ns(t, evs, 256, until);
        now = now_ns();
        /* A loop turn takes at most ~10 ms; far longer means we stalled. */
        if (now - last > 250000000u)
            forgive(t, now - last - 10000000u);
        last = now;
        for (int i = 0; i < n; i++)
            conn_event(t, evs[i].data.ptr, evs[i].events, now);
        if (now >= t->next_scan) {
            scan(t, now);
            t->next_scan = now + 20000000u;
        }
    }
}

void *load_thread(void *arg)
{
    struct worker *w = arg;
    struct lt t = {.w = w, .o = &w->b->o, .ph = -1};
    t.ep = epoll_create1(EPOLL_CLOEXEC);
    t.c = calloc((size_t)w->nconns, sizeof(*t.c));
    t.rx = malloc(65536);
    bool need_ts = t.o->rate == 0;
    uint64_t *ts = need_ts ? calloc((size_t)w->nconns * (size_t)t.o->pipeline, 8) : NULL;
    uint8_t *got = t.o->udp ? calloc((size_t)w->nconns, (size_t)t.o->pipeline) : NULL;
    bool random = t.o->sizes.max > 0;
    struct msg *m = random ? calloc((size_t)w->nconns * (size_t)t.o->pipeline, sizeof(*m)) : NULL;
    if (t.ep < 0 || !t.c || !t.rx || (need_ts && !ts) || (t.o->udp && !got) || (random && !m)) {
        w->st.setup_failed = true;
        goto out;
    }
    if (t.o->rate > 0)
        t.rate_ival = (uint64_t)(1e9 * t.o->connections / t.o->rate);
    for (int i = 0; i < w->nconns; i++) {
        t.c[i].fd = -1;
        t.c[i].id = (uint32_t)(w->first_conn + i);
        t.c[i].ts = ts ? ts + (size_t)i * (size_t)t.o->pipeline : NULL;
        t.c[i].got = got ? got + (size_t)i * (size_t)t.o->pipeline : NULL;
        t.c[i].m = m ? m + (size_t)i * (size_t)t.o->pipeline : NULL;
    }
    run_loop(&t);
    /* Whatever is still unanswered now had its chance: a timeout. */
    for (int i = 0; i < w->nconns; i++) {
        struct conn *c = &t.c[i];
        bool never_tried = c->state == C_IDLE && t.o->mode != MODE_CONNECT_RATE;
        if ((c->state == C_UP && c->queued > c->done) || c->state == C_CONNECTING || never_tried)
            count_err(&t, ERR_TIMEOUT);
        if (c->state == C_UP || c->state == C_CONNECTING)
            conn_close(&t, c);
        tls_saved_free(c->sess);
    }
out:
    if (t.ep >= 0)
        close(t.ep);
    free(ts);
    free(got);
    free(m);
    free(t.rx);
    free(t.c);
    return NULL;
}

/* SPDX-License-Identifier: MIT */
/*
 * pubsub.c - poolsrv-bench --pubsub: publish/subscribe load against a
 * Redis-protocol server (redis-server, poolsrv-kv), every delivery verified.
 *
 * S subscribers, P publishers, C channels "psb:0" .. "psb:C-1".  Subscriber
 * i subscribes to channel i % C.  The load threads split the work into
 * independent groups: thread t owns the channels ch with ch % T == t, the
 * subscribers on them and the publishers p with p % T == t, so every
 * check below is thread-local.  Publisher j of a thread sends its k-th
 * message to the thread's channel (j + k) % n (n: the thread's channels).
 *
 * A message carries its publisher, its sequence number k, its channel and
 * the time it was published; the rest of the payload is a pattern that
 * depends on (publisher, k).  A subscriber checks the frame
 * (["message", channel, payload]), the channel, every payload byte, and
 * that publisher p's messages on its channel come exactly in the order
 * k0, k0 + n, k0 + 2n, ...: a gap is a loss, an older k a duplicate or a
 * reordering.  The PUBLISH reply must name the number of subscribers of
 * the channel.
 *
 * Flow control: a publisher keeps at most --pipeline messages in flight,
 * a message leaving flight once its reply came and every subscriber of its
 * channel received it; so queues stay bounded and latency is what one
 * message waits, not a backlog.  Latency: from the timestamp in the
 * payload (CLOCK_MONOTONIC, taken just before the PUBLISH is written) to
 * the subscriber's read.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define HDR 32            /* payload header: magic, publisher, k, time, channel */
#define MAGIC 0x31425350u /* "PSB1" */

enum { PSE_LOST, PSE_DUP, PSE_ORDER, PSE_CONTENT, PSE_RECEIVERS, PSE_KINDS };
static const char *const pse_names[PSE_KINDS] = {"lost", "duplicated", "out_of_order",
                                                 "content", "receivers"};

struct slot {
    uint64_t k;
    uint32_t remaining; /* deliveries still expected */
    bool replied;
};

struct pconn {
    int fd;
    bool is_pub, confirmed, want_out, dead;
    uint32_t gid;   /* global subscriber or publisher number */
    uint32_t local; /* publisher: index among the thread's publishers */
    uint32_t chan;  /* subscriber: global channel; its index in the thread: chan_ix */
    uint32_t chan_ix;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_off, out_len, out_cap;
    uint64_t *next_k; /* subscriber: next k expected from each local publisher */
    /* publisher */
    uint64_t sent, done, replied;
    struct slot *ring;
    uint64_t t_act; /* last progress while work was pending */
};

struct pthr {
    struct pbench *b;
    int index, ep;
    uint32_t *chans; /* global channel ids of this thread */
    uint32_t *recv;  /* subscribers per local channel */
    int nchans;
    struct pconn *c; /* subscribers first, then publishers */
    int nsubs, npubs;
    struct hist lat;
    uint64_t deliveries, published, pse[PSE_KINDS], errors[ERR_KINDS];
    atomic_uint_fast64_t live_deliveries, live_confirmed, live_errors;
    atomic_bool idle;
    bool setup_failed;
};

struct pbench {
    const struct opts *o;
    atomic_int phase;
    int nthreads;
    struct pthr *t;
};

/* ------------------------------------------------------------- helpers */

static void put_u32(char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static void put_u64(char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static uint32_t get_u32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get_u64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint64_t filler_phase(uint32_t pub, uint64_t k)
{
    return ((uint64_t)pub * 1000003u + k * 7919u) % PATTERN_PERIOD;
}

static bool room(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return false;
    *buf = p;
    *cap = n;
    return true;
}

static void perr(struct pthr *t, struct pconn *c, enum err_kind k)
{
    t->errors[k]++;
    atomic_fetch_add_explicit(&t->live_errors, 1, memory_order_relaxed);
    if (c && !c->dead) {
        c->dead = true;
        close(c->fd);
        c->fd = -1;
    }
}

static void pse(struct pthr *t, int k)
{
    t->pse[k]++;
    atomic_fetch_add_explicit(&t->live_errors, 1, memory_order_relaxed);
}

static void ep_out(struct pthr *t, struct pconn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    if (out != c->want_out && epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = out;
}

static void flush(struct pthr *t, struct pconn *c)
{
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            perr(t, c, err_from_errno(errno));
            return;
        }
        c->out_off += (size_t)n;
        c->out_len -= (size_t)n;
    }
    if (c->out_len == 0)
        c->out_off = 0;
    ep_out(t, c, c->out_len > 0);
}

static bool queue_out(struct pconn *c, const void *p, size_t n)
{
    if (c->out_off > 0 && c->out_off + c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len);
        c->out_off = 0;
    }
    if (!room(&c->out, &c->out_cap, c->out_off + c->out_len + n))
        return false;
    memcpy(c->out + c->out_off + c->out_len, p, n);
    c->out_len += n;
    return true;
}

/* ---------------------------------------------------------- publishers */

static void publish_one(struct pthr *t, struct pconn *c)
{
    const struct opts *o = t->b->o;
    uint64_t k = c->sent;
    uint32_t ix = (uint32_t)((c->local + k) % (uint64_t)t->nchans), ch = t->chans[ix];
    char head[96];
    int hl = snprintf(head, sizeof head, "*3\r\n$7\r\nPUBLISH\r\n$%d\r\npsb:%u\r\n$%zu\r\n",
                      snprintf(NULL, 0, "psb:%u", ch), ch, o->size);
    if (!queue_out(c, head, (size_t)hl) || !room(&c->out, &c->out_cap, c->out_off + c->out_len + o->size + 2)) {
        perr(t, c, ERR_OTHER);
        return;
    }
    char *p = c->out + c->out_off + c->out_len;
    uint64_t ph = filler_phase(c->gid, k);
    for (size_t i = HDR; i < o->size;) {
        size_t n = o->size - i < PATTERN_PERIOD ? o->size - i : PATTERN_PERIOD;
        memcpy(p + i, pattern_at(ph + i), n);
        i += n;
    }
    put_u32(p, MAGIC);
    put_u32(p + 4, c->gid);
    put_u64(p + 8, k);
    put_u32(p + 24, ch);
    put_u32(p + 28, 0);
    put_u64(p + 16, now_ns()); /* last: as close to the write as we can */
    memcpy(p + o->size, "\r\n", 2);
    c->out_len += o->size + 2;
    struct slot *s = &c->ring[k % (uint64_t)o->pipeline];
    s->k = k;
    s->remaining = t->recv[ix];
    s->replied = false;
    if (c->sent == c->done)
        c->t_act = now_ns();
    c->sent++;
    if (atomic_load_explicit(&t->b->phase, memory_order_relaxed) == PH_RUN)
        t->published++;
}

/* Retire the messages at the head of the window that are complete, and
 * send new ones while running. */
static void pub_advance(struct pthr *t, struct pconn *c, uint64_t now)
{
    const struct opts *o = t->b->o;
    uint64_t w = (uint64_t)o->pipeline;
    while (c->done < c->sent) {
        struct slot *s = &c->ring[c->done % w];
        if (!s->replied || s->remaining > 0)
            break;
        c->done++;
        c->t_act = now;
    }
    if (atomic_load_explicit(&t->b->phase, memory_order_relaxed) != PH_RUN || c->dead)
        return;
    bool any = false;
    while (c->sent - c->done < w && !c->dead) {
        publish_one(t, c);
        any = true;
    }
    if (any && !c->dead)
        flush(t, c);
}

/* ------------------------------------------------------------- parsing */

/* A RESP value at p (n bytes): an integer (*num), or an array of up to 4
 * bulk strings (parts).  Returns its length, 0 if incomplete, -1 if
 * malformed. */
struct resp {
    bool is_int;
    long long num;
    int nparts;
    const char *part[4];
    size_t plen[4];
};

static long parse_line(const char *p, size_t n, long long *v)
{
    const char *e = memchr(p, '\r', n);
    if (!e)
        return n > 24 ? -1 : 0;
    if ((size_t)(e - p) + 2 > n)
        return 0;
    if (e[1] != '\n')
        return -1;
    char *end;
    errno = 0;
    *v = strtoll(p + 1, &end, 10);
    if (end != e || errno)
        return -1;
    return (long)(e - p) + 2;
}

static long parse_resp(const char *p, size_t n, struct resp *r)
{
    long long v;
    long l = n ? parse_line(p, n, &v) : 0;
    if (l <= 0)
        return l;
    if (p[0] == ':') {
        r->is_int = true;
        r->num = v;
        return l;
    }
    if (p[0] != '*' || v < 1 || v > 4)
        return -1;
    r->is_int = false;
    r->nparts = (int)v;
    size_t off = (size_t)l;
    for (int i = 0; i < r->nparts; i++) {
        if (off >= n)
            return 0;
        if (p[off] == ':') { /* a (un)subscribe count: kept as text */
            long li = parse_line(p + off, n - off, &v);
            if (li <= 0)
                return li;
            r->part[i] = p + off + 1;
            r->plen[i] = (size_t)li - 3;
            off += (size_t)li;
            continue;
        }
        if (p[off] != '$')
            return -1;
        long lb = parse_line(p + off, n - off, &v);
        if (lb <= 0)
            return lb;
        if (v < 0 || v > (1ll << 30))
            return -1;
        off += (size_t)lb;
        if (n - off < (size_t)v + 2)
            return 0;
        r->part[i] = p + off;
        r->plen[i] = (size_t)v;
        if (p[off + (size_t)v] != '\r' || p[off + (size_t)v + 1] != '\n')
            return -1;
        off += (size_t)v + 2;
    }
    return (long)off;
}

static bool is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* ----------------------------------------------------------- delivery */

static struct pconn *pub_of(struct pthr *t, uint32_t gid)
{
    int T = t->b->nthreads;
    if ((int)(gid % (uint32_t)T) != t->index)
        return NULL;
    uint32_t local = gid / (uint32_t)T;
    return local < (uint32_t)t->npubs ? &t->c[t->nsubs + (int)local] : NULL;
}

static void on_message(struct pthr *t, struct pconn *c, const struct resp *r, uint64_t now)
{
    const struct opts *o = t->b->o;
    char name[32];
    int nl = snprintf(name, sizeof name, "psb:%u", c->chan);
    if (r->nparts != 3 || !is(r->part[0], r->plen[0], "message") || r->plen[1] != (size_t)nl ||
        memcmp(r->part[1], name, (size_t)nl) != 0 || r->plen[2] != o->size) {
        pse(t, PSE_CONTENT);
        return;
    }
    const char *p = r->part[2];
    uint32_t gid = get_u32(p + 4);
    uint64_t k = get_u64(p + 8), ts = get_u64(p + 16);
    struct pconn *pub = get_u32(p) == MAGIC && get_u32(p + 24) == c->chan ? pub_of(t, gid) : NULL;
    if (!pub) {
        pse(t, PSE_CONTENT);
        return;
    }
    uint64_t ph = filler_phase(gid, k);
    for (size_t i = HDR; i < o->size;) {
        size_t n = o->size - i < PATTERN_PERIOD ? o->size - i : PATTERN_PERIOD;
        if (memcmp(p + i, pattern_at(ph + i), n) != 0) {
            pse(t, PSE_CONTENT);
            return;
        }
        i += n;
    }
    uint64_t *want = &c->next_k[pub->local];
    if (k < *want) {
        pse(t, (*want - k) % (uint64_t)t->nchans == 0 ? PSE_DUP : PSE_ORDER);
        return;
    }
    if (k != *want) { /* those between never came */
        t->pse[PSE_LOST] += (k - *want) / (uint64_t)t->nchans;
        atomic_fetch_add_explicit(&t->live_errors, 1, memory_order_relaxed);
    }
    *want = k + (uint64_t)t->nchans;
    struct slot *s = &pub->ring[k % (uint64_t)o->pipeline];
    if (s->k != k || s->remaining == 0 || k >= pub->sent) {
        pse(t, PSE_DUP);
        return;
    }
    s->remaining--;
    hist_add(&t->lat, now > ts ? now - ts : 0);
    if (atomic_load_explicit(&t->b->phase, memory_order_relaxed) == PH_RUN)
        t->deliveries++;
    atomic_fetch_add_explicit(&t->live_deliveries, 1, memory_order_relaxed);
    c->t_act = now;
    if (s->remaining == 0 && s->replied)
        pub_advance(t, pub, now);
}

static void on_reply(struct pthr *t, struct pconn *c, const struct resp *r, uint64_t now)
{
    const struct opts *o = t->b->o;
    if (!r->is_int || c->replied >= c->sent) {
        perr(t, c, ERR_EXCESS);
        return;
    }
    uint64_t k = c->replied++;
    struct slot *s = &c->ring[k % (uint64_t)o->pipeline];
    uint32_t ix = (uint32_t)((c->local + k) % (uint64_t)t->nchans);
    if (r->num != (long long)t->recv[ix])
        pse(t, PSE_RECEIVERS);
    s->replied = true;
    pub_advance(t, c, now);
}

static void on_confirm(struct pthr *t, struct pconn *c, const struct resp *r)
{
    if (r->nparts != 3 || !is(r->part[0], r->plen[0], "subscribe")) {
        perr(t, c, ERR_MISMATCH);
        return;
    }
    c->confirmed = true;
    atomic_fetch_add_explicit(&t->live_confirmed, 1, memory_order_relaxed);
}

static void conn_read(struct pthr *t, struct pconn *c, uint64_t now)
{
    for (int round = 0; round < 16 && !c->dead; round++) {
        if (!room(&c->in, &c->in_cap, c->in_len + 65536)) {
            perr(t, c, ERR_OTHER);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            perr(t, c, n == 0 ? ERR_CLOSED : err_from_errno(errno));
            return;
        }
        c->in_len += (size_t)n;
        size_t off = 0;
        while (!c->dead) {
            struct resp r = {0};
            long l = parse_resp(c->in + off, c->in_len - off, &r);
            if (l == 0)
                break;
            if (l < 0) {
                perr(t, c, ERR_MISMATCH);
                return;
            }
            off += (size_t)l;
            if (c->is_pub)
                on_reply(t, c, &r, now);
            else if (!c->confirmed)
                on_confirm(t, c, &r);
            else
                on_message(t, c, &r, now);
        }
        if (c->dead)
            return;
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if ((size_t)n < 65536)
            return;
    }
}

/* ------------------------------------------------------------ the loop */

/* Fail connections that waited --timeout with work pending; publish idle. */
static void scan(struct pthr *t, uint64_t now, int ph)
{
    uint64_t limit = (uint64_t)(t->b->o->timeout * 1e9);
    bool busy = false;
    for (int i = t->nsubs; i < t->nsubs + t->npubs; i++) {
        struct pconn *c = &t->c[i];
        if (c->dead || c->done == c->sent)
            continue;
        if (now > c->t_act && now - c->t_act > limit) /* t_act may be newer than now */
            perr(t, c, ERR_TIMEOUT);
        else
            busy = true;
    }
    if (ph == PH_DRAIN && !busy)
        atomic_store(&t->idle, true);
}

static void *pthread_main(void *arg)
{
    struct pthr *t = arg;
    struct epoll_event evs[256];
    int ph = PH_CONNECT;
    uint64_t next_scan = 0;
    for (;;) {
        int cur = atomic_load(&t->b->phase);
        uint64_t now = now_ns();
        if (cur == PH_DONE)
            break;
        if (cur != ph) {
            ph = cur;
            if (ph == PH_RUN)
                for (int i = t->nsubs; i < t->nsubs + t->npubs; i++)
                    pub_advance(t, &t->c[i], now);
        }
        int n = epoll_wait(t->ep, evs, 256, 10);
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct pconn *c = evs[i].data.ptr;
            if (c->dead)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(t, c, now);
            if (!c->dead && (evs[i].events & EPOLLOUT))
                flush(t, c);
        }
        if (now >= next_scan) {
            scan(t, now, ph);
            next_scan = now + 20000000u;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- set-up */

static int dial(const struct opts *o)
{
    int fd = socket(o->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)&o->target, o->target_len) < 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, (int)(o->timeout * 1000)) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        close(fd);
        return -(err ? err : ETIMEDOUT);
    }
    return fd;
}

/* Thread t's share: its channels, subscribers and publishers. */
static int setup_thread(struct pbench *b, struct pthr *t)
{
    const struct opts *o = b->o;
    uint32_t T = (uint32_t)b->nthreads, C = (uint32_t)o->channels;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    hist_init(&t->lat);
    for (uint32_t ch = (uint32_t)t->index; ch < C; ch += T)
        t->nchans++;
    t->chans = calloc((size_t)t->nchans, sizeof *t->chans);
    t->recv = calloc((size_t)t->nchans, sizeof *t->recv);
    for (int s = 0; s < o->subscribers; s++)
        t->nsubs += (uint32_t)s % C % T == (uint32_t)t->index;
    for (int p = t->index; p < o->publishers; p += (int)T)
        t->npubs++;
    t->c = calloc((size_t)(t->nsubs + t->npubs), sizeof *t->c);
    if (t->ep < 0 || !t->chans || !t->recv || !t->c)
        return -1;
    for (int i = 0, ch = t->index; ch < (int)C; ch += (int)T, i++)
        t->chans[i] = (uint32_t)ch;
    int k = 0;
    for (int s = 0; s < o->subscribers; s++) {
        if ((uint32_t)s % C % T != (uint32_t)t->index)
            continue;
        struct pconn *c = &t->c[k++];
        c->gid = (uint32_t)s;
        c->chan = (uint32_t)s % C;
        c->chan_ix = c->chan / T;
        t->recv[c->chan_ix]++;
        c->next_k = calloc((size_t)t->npubs, sizeof *c->next_k);
        if (!c->next_k)
            return -1;
        for (int j = 0; j < t->npubs; j++) /* first k with (j + k) % n == chan_ix */
            c->next_k[j] = ((uint64_t)c->chan_ix + (uint64_t)t->nchans * 2 - (uint64_t)j %
                            (uint64_t)t->nchans) % (uint64_t)t->nchans;
    }
    for (int j = 0; j < t->npubs; j++) {
        struct pconn *c = &t->c[t->nsubs + j];
        c->is_pub = true;
        c->gid = (uint32_t)(t->index + j * (int)T);
        c->local = (uint32_t)j;
        c->ring = calloc((size_t)o->pipeline, sizeof *c->ring);
        if (!c->ring)
            return -1;
    }
    return 0;
}

static int connect_thread(struct pbench *b, struct pthr *t)
{
    for (int i = 0; i < t->nsubs + t->npubs; i++) {
        struct pconn *c = &t->c[i];
        c->fd = dial(b->o);
        if (c->fd < 0) {
            perr(t, NULL, err_from_errno(-c->fd));
            c->dead = true;
            c->fd = -1;
            return -1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(t->ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (!c->is_pub) {
            char cmd[64];
            int n = snprintf(cmd, sizeof cmd, "*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\npsb:%u\r\n",
                             snprintf(NULL, 0, "psb:%u", c->chan), c->chan);
            queue_out(c, cmd, (size_t)n);
            flush(t, c);
        }
    }
    return 0;
}

static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* ------------------------------------------------------------- report */

struct psum {
    struct hist lat;
    uint64_t deliveries, published, pse[PSE_KINDS], errors[ERR_KINDS], confirmed;
    double run_s, cpu_s, connect_s;
};

static uint64_t psum_errors(const struct psum *s)
{
    uint64_t n = 0;
    for (int k = 0; k < PSE_KINDS; k++)
        n += s->pse[k];
    for (int k = 0; k < ERR_KINDS; k++)
        n += s->errors[k];
    return n;
}

static bool psum_ok(const struct opts *o, const struct psum *s)
{
    return psum_errors(s) == 0 && s->confirmed == (uint64_t)o->subscribers && s->deliveries > 0;
}

static void report(const struct opts *o, const struct psum *s, int threads)
{
    double secs = s->run_s > 0 ? s->run_s : 1e-9;
    if (o->json) {
        printf("{\"tool\":\"poolsrv-bench\",\"target\":\"%s\",\"mode\":\"pubsub\","
               "\"subscribers\":%d,\"publishers\":%d,\"channels\":%d,\"size\":%zu,"
               "\"window\":%d,\"threads\":%d,\"run_s\":%.3f,\"published\":%llu,"
               "\"publishes_per_sec\":%.1f,\"deliveries\":%llu,\"deliveries_per_sec\":%.1f,",
               o->target_str, o->subscribers, o->publishers, o->channels, o->size, o->pipeline,
               threads, s->run_s, (unsigned long long)s->published, (double)s->published / secs,
               (unsigned long long)s->deliveries, (double)s->deliveries / secs);
        printf("\"lat_count\":%llu,\"lat_p50_us\":%.3f,\"lat_p99_us\":%.3f,\"lat_p999_us\":%.3f,"
               "\"lat_max_us\":%.3f,\"server_cpu_s\":%.3f,\"server_cpu_us_per_delivery\":%.4f,",
               (unsigned long long)s->lat.count, (double)hist_quantile(&s->lat, 0.5) / 1e3,
               (double)hist_quantile(&s->lat, 0.99) / 1e3,
               (double)hist_quantile(&s->lat, 0.999) / 1e3, (double)s->lat.max / 1e3, s->cpu_s,
               s->cpu_s >= 0 && s->deliveries ? s->cpu_s * 1e6 / (double)s->deliveries : -1.0);
        for (int k = 0; k < PSE_KINDS; k++)
            printf("\"err_%s\":%llu,", pse_names[k], (unsigned long long)s->pse[k]);
        for (int k = 0; k < ERR_KINDS; k++)
            printf("\"err_%s\":%llu,", err_names[k], (unsigned long long)s->errors[k]);
        printf("\"errors_total\":%llu,\"ok\":%s}\n", (unsigned long long)psum_errors(s),
               psum_ok(o, s) ? "true" : "false");
        return;
    }
    printf("poolsrv-bench %s pubsub: subscribers %d, publishers %d, channels %d, size %zu B, "
           "window %d, threads %d\n",
           o->target_str, o->subscribers, o->publishers, o->channels, o->size, o->pipeline,
           threads);
    printf("%-13s %llu of %d confirmed in %.2f s\n", "subscribed",
           (unsigned long long)s->confirmed, o->subscribers, s->connect_s);
    printf("%-13s %llu in %.2f s: %.0f msg/s\n", "published", (unsigned long long)s->published,
           s->run_s, (double)s->published / secs);
    printf("%-13s %llu in %.2f s: %.0f deliveries/s, every one verified\n", "deliveries",
           (unsigned long long)s->deliveries, s->run_s, (double)s->deliveries / secs);
    printf("%-13s p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us "
           "(publish to delivery)\n",
           "latency", (double)hist_quantile(&s->lat, 0.5) / 1e3,
           (double)hist_quantile(&s->lat, 0.9) / 1e3, (double)hist_quantile(&s->lat, 0.99) / 1e3,
           (double)hist_quantile(&s->lat, 0.999) / 1e3, (double)s->lat.max / 1e3);
    if (s->cpu_s >= 0 && o->pid)
        printf("%-13s %.2f s user+system: %.3f us per delivery\n", "server cpu", s->cpu_s,
               s->deliveries ? s->cpu_s * 1e6 / (double)s->deliveries : 0.0);
    printf("%-13s", "errors");
    for (int k = 0; k < PSE_KINDS; k++)
        printf(" %s %llu", pse_names[k], (unsigned long long)s->pse[k]);
    for (int k = 0; k < ERR_KINDS; k++)
        printf(" %s %llu", err_names[k], (unsigned long long)s->errors[k]);
    printf("\n%-13s %s\n", "result", psum_ok(o, s) ? "OK" : "FAILED");
}

/* ---------------------------------------------------------------- run */

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint64_t confirmed(const struct pbench *b)
{
    uint64_t n = 0;
    for (int i = 0; i < b->nthreads; i++)
        n += atomic_load(&b->t[i].live_confirmed);
    return n;
}

/* Main thread: connect, subscribe, run, drain, report.  Exit status as the
 * echo modes: 0 passed, 1 not. */
int pubsub_run(const struct opts *o)
{
    static struct pbench b;
    static struct psum s;
    int T = o->threads;
    if (T > o->channels)
        T = o->channels;
    if (T > o->publishers)
        T = o->publishers;
    b.o = o;
    b.nthreads = T;
    b.t = calloc((size_t)T, sizeof *b.t);
    pthread_t *tid = calloc((size_t)T, sizeof *tid);
    if (!b.t || !tid) {
        fprintf(stderr, "poolsrv-bench: out of memory\n");
        return 1;
    }
    atomic_store(&b.phase, PH_CONNECT);
    uint64_t t0 = now_ns();
    int started = 0;
    bool ok = true;
    for (int i = 0; i < T && ok; i++) {
        b.t[i].b = &b;
        b.t[i].index = i;
        ok = setup_thread(&b, &b.t[i]) == 0 && connect_thread(&b, &b.t[i]) == 0;
        if (!ok)
            fprintf(stderr, "poolsrv-bench: could not connect to %s or set up\n", o->target_str);
    }
    for (int i = 0; i < T && ok; i++) {
        if (pthread_create(&tid[i], NULL, pthread_main, &b.t[i]) != 0) {
            fprintf(stderr, "poolsrv-bench: cannot start thread %d\n", i);
            ok = false;
            break;
        }
        started++;
    }
    uint64_t tmo = (uint64_t)(o->timeout * 1e9);
    while (ok && confirmed(&b) < (uint64_t)o->subscribers && now_ns() - t0 < tmo)
        sleep_ms(2);
    s.connect_s = (double)(now_ns() - t0) / 1e9;
    s.cpu_s = o->pid ? proc_cpu_s(o->pid) : -1;
    uint64_t start = now_ns();
    if (ok && confirmed(&b) == (uint64_t)o->subscribers) {
        atomic_store(&b.phase, PH_RUN);
        sleep_ms((long)(o->duration * 1000));
    }
    s.run_s = (double)(now_ns() - start) / 1e9;
    if (o->pid && s.cpu_s >= 0) {
        double end = proc_cpu_s(o->pid);
        s.cpu_s = end >= 0 ? end - s.cpu_s : -1;
    }
    atomic_store(&b.phase, PH_DRAIN);
    uint64_t drain_end = now_ns() + tmo;
    for (;;) {
        int idle = 0;
        for (int i = 0; i < started; i++)
            idle += atomic_load(&b.t[i].idle);
        if (idle == started || now_ns() > drain_end)
            break;
        sleep_ms(1);
    }
    atomic_store(&b.phase, PH_DONE);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    hist_init(&s.lat);
    s.confirmed = confirmed(&b);
    for (int i = 0; i < T; i++) {
        struct pthr *t = &b.t[i];
        hist_merge(&s.lat, &t->lat);
        s.deliveries += t->deliveries;
        s.published += t->published;
        for (int k = 0; k < PSE_KINDS; k++)
            s.pse[k] += t->pse[k];
        for (int k = 0; k < ERR_KINDS; k++)
            s.errors[k] += t->errors[k];
        for (int j = 0; j < t->nsubs + t->npubs; j++) { /* still in flight: lost */
            struct pconn *c = &t->c[j];
            if (c->is_pub && !c->dead && c->sent > c->done)
                s.pse[PSE_LOST] += c->sent - c->done;
            if (c->fd >= 0)
                close(c->fd);
            free(c->in);
            free(c->out);
            free(c->next_k);
            free(c->ring);
        }
        if (t->ep >= 0)
            close(t->ep);
        free(t->c);
        free(t->chans);
        free(t->recv);
    }
    report(o, &s, T);
    fflush(stdout);
    free(tid);
    free(b.t);
    return psum_ok(o, &s) ? 0 : 1;
}

/* SPDX-License-Identifier: MIT */
/*
 * proxy_main.c - poolsrv-proxy, a TCP forwarding proxy (HAProxy's `mode
 * tcp`) built on poolsrv's outbound connections.
 *
 * Each accepted client gets a backend connection (ps_server_connect, round
 * robin over --backend; a backend that refuses or times out is skipped for
 * a while and the next one is tried, up to --retries times, as HAProxy's
 * `retries`: a connect that failed has sent nothing, so it is safe to
 * redo).  Until one is connected, the client's bytes (and its half-close)
 * wait in the pair, so none is lost to a backend that fails.  The two
 * connections are a pair: each side's on_data hands its bytes to the other
 * side with ps_conn_post, so every byte is written by the thread that owns
 * the connection it goes to, with that connection's watermarks, timeouts
 * and counters.
 *
 * Backpressure: bytes handed over and not yet written (in flight) plus the
 * receiver's pending output are what a slow receiver costs; once they pass
 * the high-water mark, the sending side pauses reading until the receiver
 * drains (its on_drain, or the post that brought the in-flight count down).
 * So a client that never reads holds at most about two high-water marks of
 * the backend's output in the proxy.  EOF is forwarded as a half-close
 * (ps_conn_shutdown_write), an error or a reset on one side closes the other.
 */
#include "../common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BACKENDS 64
#define DOWN_MS 2000 /* a backend that failed to connect is skipped this long */
#define MAX_RETRIES 100

enum { OPT_BACKEND = 512, OPT_CONNECT_TIMEOUT, OPT_SEND_PROXY, OPT_RETRIES };

static struct {
    char *addr[MAX_BACKENDS];
    atomic_llong down_until[MAX_BACKENDS]; /* ms, CLOCK_MONOTONIC; 0 = up */
    int n;
    atomic_uint next; /* round robin */
    int retries;      /* connect attempts after a client's first (--retries) */
    atomic_llong gave_up_logged; /* ms: "no backend" is logged once a second */
    bool send_proxy;
    size_t high, low; /* the server's watermarks */
} be;

/* One direction's flow state, for the side that sends into it. */
struct flow {
    atomic_size_t inflight; /* bytes posted to the receiver, not yet sent */
    atomic_bool paused;     /* the sender paused its reading for it */
};

struct chunk;

struct pair {
    atomic_int refs;       /* one per side still open */
    pthread_mutex_t lock;  /* guards client, backend, attempts, opened, stash */
    ps_conn_ref client, backend;
    int attempts;          /* connects started for this client */
    bool opened;           /* a backend is connected */
    bool client_eof;       /* ... and the client half-closed before that */
    struct chunk *stash, *stash_tail; /* the client's bytes until then */
    size_t stashed;
    struct flow to_backend, to_client;
    struct sockaddr_storage src, dst; /* the client, and the address it reached */
    socklen_t srclen, dstlen;
};

struct chunk {
    struct pair *p;
    struct chunk *next; /* in the stash */
    size_t len;
    char data[];
};

static const ps_handler backend_h;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void free_stash(struct chunk *k);

static void pair_unref(struct pair *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) {
        free_stash(p->stash);
        pthread_mutex_destroy(&p->lock);
        free(p);
    }
}

static ps_conn_ref peer_of(struct pair *p, bool client_side)
{
    ps_conn_ref r;

    pthread_mutex_lock(&p->lock);
    r = client_side ? p->backend : p->client;
    pthread_mutex_unlock(&p->lock);
    return r;
}

/* ------------------------------------------------------ posted to a side */

static void do_close(ps_conn *c, void *arg, int status)
{
    (void)arg;
    if (status == 0)
        ps_conn_close(c);
}

static void do_shutdown_write(ps_conn *c, void *arg, int status)
{
    (void)arg;
    if (status == 0)
        ps_conn_shutdown_write(c);
}

static void do_resume(ps_conn *c, void *arg, int status)
{
    (void)arg;
    if (status == 0)
        ps_conn_resume_read(c);
}

/* Which side c is (p->client is written before the backend side exists). */
static bool is_client(ps_conn *c)
{
    return ((struct pair *)ps_conn_data(c))->client.id == ps_conn_id(c);
}

/* The flow that c's sends go into (the other side's receiving flow). */
static struct flow *flow_out(struct pair *p, bool client_side)
{
    return client_side ? &p->to_backend : &p->to_client;
}

/* The receiver has caught up: let the sender read again. */
static void maybe_resume_sender(struct pair *p, bool receiver_is_client, ps_conn *receiver)
{
    struct flow *f = flow_out(p, !receiver_is_client);

    if (atomic_load(&f->inflight) <= be.low && ps_conn_pending(receiver) <= be.low &&
        atomic_exchange(&f->paused, false))
        ps_conn_post(peer_of(p, receiver_is_client), do_resume, NULL);
}

/* On the receiving side's worker: write a chunk the other side read. */
static void deliver(ps_conn *c, void *arg, int status)
{
    struct chunk *k = arg;
    struct pair *p = k->p;
    bool client_side = is_client(c);

    if (status == 0 && ps_conn_send(c, k->data, k->len) < 0)
        ps_conn_post(peer_of(p, client_side), do_close, NULL);
    atomic_fetch_sub(&flow_out(p, !client_side)->inflight, k->len);
    if (status == 0)
        maybe_resume_sender(p, client_side, c);
    pair_unref(p);
    free(k);
}

/* ---------------------------------------------------------- both sides */

/* Until a backend is connected, the client's bytes wait in the pair, so
 * that a backend that fails to connect can be replaced without losing any;
 * the client pauses once they pass high water.  Returns false once a
 * backend is open (then bytes go straight to it). */
static bool stash(ps_conn *c, struct pair *p, const char *data, size_t len)
{
    struct chunk *k;
    bool full;

    pthread_mutex_lock(&p->lock);
    if (p->opened) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    k = malloc(sizeof *k + len);
    if (!k) {
        pthread_mutex_unlock(&p->lock);
        ps_conn_close(c);
        return true;
    }
    k->p = p;
    k->next = NULL;
    k->len = len;
    memcpy(k->data, data, len);
    if (p->stash_tail)
        p->stash_tail->next = k;
    else
        p->stash = k;
    p->stash_tail = k;
    p->stashed += len;
    full = p->stashed > be.high;
    pthread_mutex_unlock(&p->lock);
    if (full) {
        atomic_store(&p->to_backend.paused, true);
        ps_conn_pause_read(c);
    }
    return true;
}

static void free_stash(struct chunk *k)
{
    while (k) {
        struct chunk *next = k->next;
        free(k);
        k = next;
    }
}

/* Hand bytes read on c to the other side; pause c past high water.  When
 * nothing of ours waits in the other side's mailbox and nobody runs it, the
 * bytes are written to it from here (ps_conn_try_send): no copy, no
 * hand-off.  Otherwise they are copied and posted, which keeps the order. */
static size_t forward(ps_conn *c, const char *data, size_t len, void *user)
{
    struct pair *p = ps_conn_data(c);
    bool client_side = is_client(c);
    struct flow *f = flow_out(p, client_side);
    ps_conn_ref peer = peer_of(p, client_side);
    struct chunk *k;
    ssize_t sent;
    int rc;

    (void)user;
    if (client_side && stash(c, p, data, len))
        return len;
    if (atomic_load(&f->inflight) == 0) {
        sent = ps_conn_try_send(peer, data, len);
        if (sent >= 0 && (size_t)sent > be.high) {
            atomic_store(&f->paused, true); /* its on_drain resumes us */
            ps_conn_pause_read(c);
        }
        if (sent >= 0)
            return len;
        if (sent != -EBUSY) { /* the other side is gone or broken */
            ps_conn_close(c);
            return len;
        }
    }
    k = malloc(sizeof *k + len);
    if (!k) {
        ps_conn_close(c);
        return len;
    }
    k->p = p;
    k->len = len;
    memcpy(k->data, data, len);
    atomic_fetch_add(&p->refs, 1);
    atomic_fetch_add(&f->inflight, len);
    rc = ps_conn_post(peer, deliver, k);
    if (rc < 0) { /* the other side is gone */
        atomic_fetch_sub(&f->inflight, len);
        atomic_fetch_sub(&p->refs, 1);
        free(k);
        ps_conn_close(c);
        return len;
    }
    if (atomic_load(&f->inflight) > be.high) {
        atomic_store(&f->paused, true);
        ps_conn_pause_read(c);
    }
    return len;
}

/* c's own output drained: the side sending into it may read again. */
static void drained(ps_conn *c, void *user)
{
    (void)user;
    maybe_resume_sender(ps_conn_data(c), is_client(c), c);
}

/* The peer half-closed: half-close the other side once its output is out. */
static void got_eof(ps_conn *c, void *user)
{
    struct pair *p = ps_conn_data(c);
    bool later = false;

    (void)user;
    if (is_client(c)) { /* no backend yet: its on_open half-closes it */
        pthread_mutex_lock(&p->lock);
        later = p->client_eof = !p->opened;
        pthread_mutex_unlock(&p->lock);
    }
    if (!later)
        ps_conn_post(peer_of(p, is_client(c)), do_shutdown_write, NULL);
}

/* ------------------------------------------------------------- backends */

static int pick_backend(void)
{
    long long now = now_ms();

    for (int k = 0; k < be.n; k++) {
        int i = (int)(atomic_fetch_add(&be.next, 1) % (unsigned)be.n);
        if (atomic_load(&be.down_until[i]) <= now)
            return i;
    }
    return (int)(atomic_fetch_add(&be.next, 1) % (unsigned)be.n); /* all down: try anyway */
}

/* Start a backend connection for p (from the client's on_open, or a failed
 * backend's on_close).  Returns 0, or -1 when nothing could be started. */
static int connect_backend(ps_server *s, struct pair *p)
{
    int i = pick_backend(), rc;

    atomic_fetch_add(&p->refs, 1);
    /* Under the pair's lock: the backend's callbacks may start on another
     * worker before ps_server_connect returns, and must find it in place. */
    pthread_mutex_lock(&p->lock);
    rc = ps_server_connect(s, be.addr[i], &backend_h, (void *)(intptr_t)i, p, &p->backend, NULL);
    if (rc == 0)
        p->attempts++;
    pthread_mutex_unlock(&p->lock);
    if (rc < 0)
        atomic_fetch_sub(&p->refs, 1);
    return rc < 0 ? -1 : 0;
}

/* PROXY protocol v2 header naming the client (HAProxy's send-proxy-v2). */
static size_t proxy_v2(const struct pair *p, char *out)
{
    static const char sig[12] = "\r\n\r\n\0\r\nQUIT\n";
    size_t n = 16;

    memcpy(out, sig, 12);
    out[12] = 0x21; /* version 2, PROXY */
    if (p->src.ss_family == AF_INET && p->dst.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&p->src, *b = (const void *)&p->dst;
        out[13] = 0x11;
        memcpy(out + 16, &a->sin_addr, 4);
        memcpy(out + 20, &b->sin_addr, 4);
        memcpy(out + 24, &a->sin_port, 2);
        memcpy(out + 26, &b->sin_port, 2);
        n += 12;
    } else if (p->src.ss_family == AF_INET6 && p->dst.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&p->src, *b = (const void *)&p->dst;
        out[13] = 0x21;
        memcpy(out + 16, &a->sin6_addr, 16);
        memcpy(out + 32, &b->sin6_addr, 16);
        memcpy(out + 48, &a->sin6_port, 2);
        memcpy(out + 50, &b->sin6_port, 2);
        n += 36;
    } else {
        out[12] = 0x20; /* LOCAL: no address to tell (a Unix socket client) */
        out[13] = 0x00;
    }
    out[14] = (char)((n - 16) >> 8);
    out[15] = (char)((n - 16) & 0xff);
    return n;
}

static int backend_open(ps_conn *c, void *user)
{
    struct pair *p = ps_conn_data(c);
    struct chunk *k;
    bool eof;

    atomic_store(&be.down_until[(intptr_t)user], 0);
    if (be.send_proxy) {
        char hdr[64];
        ps_conn_send(c, hdr, proxy_v2(p, hdr));
    }
    /* What the client sent meanwhile goes first; from now on its bytes come
     * straight here (the flag and the stash change under one lock). */
    pthread_mutex_lock(&p->lock);
    p->opened = true;
    k = p->stash;
    p->stash = p->stash_tail = NULL;
    p->stashed = 0;
    eof = p->client_eof;
    pthread_mutex_unlock(&p->lock);
    for (struct chunk *i = k; i; i = i->next)
        ps_conn_send(c, i->data, i->len);
    free_stash(k);
    if (eof)
        ps_conn_shutdown_write(c);
    if (atomic_exchange(&p->to_backend.paused, false))
        ps_conn_post(p->client, do_resume, NULL);
    return 0;
}

/* A client is closed because no backend could be connected: say so, at
 * most once a second (a dead backend pool must not flood the log). */
static void gave_up(int tries, ps_close_reason why)
{
    long long now = now_ms(), last = atomic_load(&be.gave_up_logged);

    if (now - last >= 1000 && atomic_compare_exchange_strong(&be.gave_up_logged, &last, now))
        ex_log(PS_LOG_WARN, "closing a client: no backend connected after %d attempt%s (last: %s)",
               tries, tries == 1 ? "" : "s", ps_close_reason_str(why));
}

static void backend_close(ps_conn *c, ps_close_reason why, void *user)
{
    struct pair *p = ps_conn_data(c);
    bool retry;

    if (why == PS_CLOSE_REFUSED || why == PS_CLOSE_UNREACHABLE ||
        why == PS_CLOSE_CONNECT_TIMEOUT) { /* never opened: skip it, try the next */
        int tries;
        atomic_store(&be.down_until[(intptr_t)user], now_ms() + DOWN_MS);
        pthread_mutex_lock(&p->lock);
        tries = p->attempts;
        /* Every backend once, and at least 1 + retries attempts: a
         * transient failure (a backend restarting, a local shortage of
         * ports or buffers) must not cost the client of a single
         * backend. */
        retry = tries < be.n || tries <= be.retries;
        pthread_mutex_unlock(&p->lock);
        if (retry && connect_backend(ps_conn_server(c), p) == 0) {
            pair_unref(p);
            return;
        }
        gave_up(tries, why);
    }
    ps_conn_post(peer_of(p, false), do_close, NULL);
    pair_unref(p);
}

static const ps_handler backend_h = {.on_open = backend_open, .on_data = forward,
                                     .on_drain = drained, .on_eof = got_eof,
                                     .on_close = backend_close};

/* --------------------------------------------------------------- clients */

static int client_open(ps_conn *c, void *user)
{
    struct pair *p = calloc(1, sizeof *p);

    (void)user;
    if (!p)
        return -1;
    pthread_mutex_init(&p->lock, NULL);
    atomic_init(&p->refs, 1);
    p->client = ps_conn_ref_of(c);
    p->srclen = sizeof p->src;
    ps_conn_peer(c, &p->src, &p->srclen);
    p->dstlen = sizeof p->dst;
    if (be.send_proxy) /* only the PROXY header needs the address it reached */
        getsockname(ps_conn_fd(c), (struct sockaddr *)&p->dst, &p->dstlen);
    ps_conn_set_data(c, p);
    return connect_backend(ps_conn_server(c), p) == 0 ? 0 : -1;
}

static void client_close(ps_conn *c, ps_close_reason why, void *user)
{
    struct pair *p = ps_conn_data(c);

    (void)why;
    (void)user;
    if (!p)
        return;
    ps_conn_post(peer_of(p, true), do_close, NULL);
    pair_unref(p);
}

/* ---------------------------------------------------------------- options */

static int take_option(int val, const char *arg, ps_config *cfg)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char *end;
    long v;

    switch (val) {
    case OPT_BACKEND:
        if (be.n == MAX_BACKENDS || ps_addr_parse(arg, &ss, &len, NULL) < 0)
            return -1;
        be.addr[be.n++] = (char *)arg;
        return 0;
    case OPT_CONNECT_TIMEOUT:
        v = strtol(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || v < 0 || v > 3600000)
            return -1;
        cfg->connect_timeout_ms = (int)v;
        return 0;
    case OPT_SEND_PROXY:
        be.send_proxy = true;
        return 0;
    case OPT_RETRIES:
        v = strtol(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || v < 0 || v > MAX_RETRIES)
            return -1;
        be.retries = (int)v;
        return 0;
    }
    return -1;
}

static const struct option proxy_opts[] = {
    {"backend", required_argument, 0, OPT_BACKEND},
    {"connect-timeout", required_argument, 0, OPT_CONNECT_TIMEOUT},
    {"send-proxy", no_argument, 0, OPT_SEND_PROXY},
    {"retries", required_argument, 0, OPT_RETRIES},
    {0, 0, 0, 0},
};

int main(int argc, char **argv)
{
    static const ex_prog prog = {
        .name = "poolsrv-proxy",
        .summary = "A TCP forwarding proxy (HAProxy's mode tcp) on a fixed pool of worker\n"
                   "threads: every client is paired with a connection to a backend.",
        .default_listen = "127.0.0.1:7100",
        .extra_help = "      --backend ADDR     a backend (repeatable, round robin; one that fails\n"
                      "                         to connect is skipped for 2 s); at least one\n"
                      "      --connect-timeout MS\n"
                      "                         give up connecting to a backend after this long\n"
                      "                         (default 5000)\n"
                      "      --retries N        connect attempts after a client's first one fails,\n"
                      "                         0..100, each on the next backend (default 3); every\n"
                      "                         backend is tried once in any case\n"
                      "      --send-proxy       send a PROXY protocol v2 header with the client's\n"
                      "                         address to the backend first\n",
        .extra_opts = proxy_opts,
        .extra = take_option,
    };
    ps_config cfg;
    ps_handler h = {.on_open = client_open, .on_data = forward, .on_drain = drained,
                    .on_eof = got_eof, .on_close = client_close};

    ps_config_init(&cfg);
    cfg.connect_timeout_ms = 5000;
    be.retries = 3;
    cfg.workers = 2;
    ex_parse_args(&prog, argc, argv, &cfg);
    if (be.n == 0)
        ex_usage_error(&prog, "at least one --backend is needed");
    be.high = cfg.out_high_water;
    be.low = cfg.out_low_water;
    return ex_run(&prog, &cfg, &h, NULL);
}

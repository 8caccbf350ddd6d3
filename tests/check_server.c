/* SPDX-License-Identifier: MIT */
/*
 * check_server.c - integration tests of the whole server: a real server in
 * this process on an ephemeral 127.0.0.1 port, real client sockets, both
 * handler styles: 64 concurrent verifying clients, a client leaving
 * mid-stream, half-close, full queue under both policies, stop (with
 * clients, from a handler, from a signal), a create/start/stop/free loop
 * with no leaked descriptors, EMFILE at accept, two listeners, logging,
 * 2,000 concurrent connections.  check_event.c and check_blocking.c test
 * each handler style's API.
 *
 * Loop tests run once per style: _i == 0 is blocking (serve), 1 is event
 * (on_data).  Handler threads never call ck_assert; they record what they
 * saw and the test thread asserts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../server/echo_handlers.h"
#include "test_util.h"

/* atomic loads with short names, so failure messages stay readable */
static int ld(atomic_int *p)
{
    return atomic_load(p);
}

#define STYLE_NAME(ev) ((ev) ? "event" : "blocking")

/* ===================================================== 64 concurrent clients */

enum { NCLIENTS = 64, MAX_PAYLOAD = 1 << 20 };

struct echo_client {
    int port;
    int idx;
    int rc;            /* 0, or -errno of the first failure */
    size_t failed_len; /* payload size that failed */
    size_t bad_at;
    uint64_t bytes;
    pthread_t th;
};

static void *echo_client_main(void *arg)
{
    struct echo_client *ec = arg;
    uint64_t rng = 0x1234567ull + (uint64_t)ec->idx;
    size_t sizes[6];
    char *buf = malloc(MAX_PAYLOAD);
    int fd;

    ec->rc = 0;
    if (!buf) {
        ec->rc = -ENOMEM;
        return NULL;
    }
    sizes[0] = 1;
    sizes[1] = 2 + tu_rand(&rng) % 200;
    sizes[2] = 1000 + tu_rand(&rng) % 15000;
    sizes[3] = 65536;
    sizes[4] = MAX_PAYLOAD;
    sizes[5] = 1 + tu_rand(&rng) % 300000;
    fd = tu_connect(ec->port, tu_ms(5000));
    if (fd < 0) {
        ec->rc = fd;
        free(buf);
        return NULL;
    }
    for (int k = 0; k < 6; k++) {
        /* a different order per client, so sizes overlap in time */
        size_t len = sizes[(k + ec->idx) % 6];

        tu_fill(buf, len, tu_rand(&rng));
        ec->rc = tu_echo(fd, buf, len, false, tu_ms(20000), &ec->bad_at);
        if (ec->rc != 0) {
            ec->failed_len = len;
            break;
        }
        ec->bytes += len;
    }
    close(fd);
    free(buf);
    return NULL;
}

START_TEST(test_concurrent_echo)
{
    bool ev = _i;
    struct echo_client *cl = calloc(NCLIENTS, sizeof *cl);
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_stats st;
    uint64_t total = 0;
    int port;

    ck_assert_ptr_nonnull(cl);
    tu_config(&cfg);
    cfg.workers = ev ? 4 : 8; /* blocking: most clients wait in the queue */
    echo_handler_init(&h, ev);
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i].port = port;
        cl[i].idx = i;
        ck_assert_int_eq(pthread_create(&cl[i].th, NULL, echo_client_main, &cl[i]), 0);
    }
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(cl[i].th, NULL);
    for (int i = 0; i < NCLIENTS; i++) {
        ck_assert_msg(cl[i].rc == 0, "%s client %d: %s (payload %zu bytes, offset %zu)",
                      STYLE_NAME(ev), i, ps_strerror(cl[i].rc), cl[i].failed_len, cl[i].bad_at);
        total += cl[i].bytes;
    }
    ck_assert_uint_ge(total, (uint64_t)NCLIENTS * MAX_PAYLOAD); /* each sent 1 MiB and more */
    tu_assert_all_closed(s, NCLIENTS);
    st = tu_stats(s);
    ck_assert_uint_eq(st.accepted, NCLIENTS);
    ck_assert_uint_eq(st.rejected, 0);
    ck_assert_uint_eq(st.bytes_in, total);
    ck_assert_uint_eq(st.bytes_out, total);
    ck_assert_uint_eq(st.queued, 0);
    ps_server_free(s);
    free(cl);
}
END_TEST

/* ===================================================== disconnect mid-stream */

START_TEST(test_disconnect_midstream)
{
    bool ev = _i;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char *big = malloc(1 << 20), small[5000];
    int port, a, x, y, b;
    uint64_t last;

    ck_assert_ptr_nonnull(big);
    tu_fill(big, 1 << 20, 7);
    tu_fill(small, sizeof small, 8);
    tu_config(&cfg);
    echo_handler_init(&h, ev);
    s = tu_server_start(&cfg, &h, NULL, &port);

    a = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(tu_echo(a, small, sizeof small, false, tu_ms(5000), NULL), 0);

    /* x: sends 1 MiB, never reads the echo, resets mid-stream */
    x = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(x, 0);
    tu_write_all(x, big, 1 << 20, tu_ms(300)); /* may stall: nobody reads */
    ck_assert(TU_STAT_GE(s, bytes_in, sizeof small + 65536, tu_ms(5000), &last));
    tu_close_rst(x);
    /* y: reads half of its echo, then closes with the rest unread */
    y = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(y, 0);
    ck_assert_int_eq(tu_write_all(y, small, sizeof small, tu_ms(2000)), 0);
    ck_assert_int_eq(tu_read_exact(y, big, sizeof small / 2, tu_ms(2000)), sizeof small / 2);
    ck_assert_int_eq(tu_write_all(y, big, 100000, tu_ms(2000)), 0);
    close(y);

    /* the others are served as before */
    ck_assert_int_eq(tu_echo(a, small, sizeof small, false, tu_ms(5000), NULL), 0);
    b = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(b, 0);
    ck_assert_int_eq(tu_echo(b, big, 1 << 20, true, tu_ms(10000), NULL), 0);
    close(b);
    ck_assert_int_eq(tu_echo(a, small, sizeof small, true, tu_ms(5000), NULL), 0);
    close(a);

    tu_assert_all_closed(s, 4);
    ck_assert_uint_eq(tu_stats(s).accepted, 4);
    ps_server_free(s);
    free(big);
}
END_TEST

/* ===================================================== queue full */

/* Handlers that hold their worker until the test releases it, then echo:
 * blocking (serve) or event style (the first on_data of each connection
 * waits). */
struct hold {
    tu_latch entered; /* connections that reached the handler */
    tu_latch release; /* >= 1: let them go */
};

static void hold_serve(ps_conn *c, void *user)
{
    struct hold *h = user;

    tu_latch_add(&h->entered, 1);
    tu_latch_wait(&h->release, 1, tu_ms(15000));
    echo_serve_held(c, NULL);
}

static size_t hold_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    struct hold *h = user;

    if (!ps_conn_data(c)) {
        ps_conn_set_data(c, h);
        tu_latch_add(&h->entered, 1);
        tu_latch_wait(&h->release, 1, tu_ms(15000));
    }
    return echo_on_data(c, data, len, NULL);
}

static const char busy[] = "BUSY try later\n";

static ps_server *hold_server(struct hold *hd, ps_policy policy, int *port, int drain_ms, bool ev)
{
    ps_config cfg;
    ps_handler h;

    tu_latch_init(&hd->entered);
    tu_latch_init(&hd->release);
    tu_config(&cfg);
    cfg.workers = 1;
    cfg.queue_capacity = 1;
    cfg.policy = policy;
    cfg.drain_timeout_ms = drain_ms;
    memset(&h, 0, sizeof h);
    if (ev)
        h.on_data = hold_on_data;
    else
        h.serve = hold_serve;
    h.busy_msg = busy;
    h.busy_len = sizeof busy - 1;
    return tu_server_start(&cfg, &h, hd, port);
}

/* Client k sent byte 'A'+k: read it back, then a full echo with EOF. */
static void assert_served(int fd, int k)
{
    char c = 0, msg[3000];

    ck_assert_msg(tu_read_exact(fd, &c, 1, tu_ms(5000)) == 1, "client %d: no echo", k);
    ck_assert_int_eq(c, 'A' + k);
    tu_fill(msg, sizeof msg, (uint64_t)k);
    ck_assert_int_eq(tu_echo(fd, msg, sizeof msg, true, tu_ms(5000), NULL), 0);
}

START_TEST(test_queue_full_reject)
{
    struct hold hd;
    ps_server *s;
    int port, fd[4];
    uint64_t last;
    char buf[64];

    s = hold_server(&hd, PS_POLICY_REJECT, &port, 5000, _i);
    /* 0 occupies the only worker, 1 the only queue slot */
    fd[0] = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd[0], 0);
    ck_assert_int_eq(tu_write_all(fd[0], "A", 1, tu_ms(1000)), 0);
    ck_assert(tu_latch_wait(&hd.entered, 1, tu_ms(3000)));
    fd[1] = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd[1], 0);
    ck_assert_int_eq(tu_write_all(fd[1], "B", 1, tu_ms(1000)), 0);
    ck_assert_msg(TU_STAT_EQ(s, queued, 1, tu_ms(3000), &last), "queued = %llu",
                  (unsigned long long)last);

    /* 2 and 3 are refused: the busy message, then end of stream */
    for (int k = 2; k < 4; k++) {
        fd[k] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[k], 0);
        memset(buf, 0, sizeof buf);
        ck_assert_int_eq(tu_read_exact(fd[k], buf, sizeof busy - 1, tu_ms(3000)), sizeof busy - 1);
        ck_assert_str_eq(buf, busy);
        ck_assert_int_eq(tu_expect_eof(fd[k], tu_ms(3000)), 0);
        close(fd[k]);
    }
    ck_assert(TU_STAT_EQ(s, rejected, 2, tu_ms(3000), &last));
    ck_assert_int_eq(tu_latch_get(&hd.entered), 1);

    tu_latch_add(&hd.release, 1);
    for (int k = 0; k < 2; k++) {
        assert_served(fd[k], k);
        close(fd[k]);
    }
    ck_assert(TU_STAT_EQ(s, active, 0, tu_ms(3000), &last));
    ck_assert_uint_eq(tu_stats(s).accepted, 2);
    ck_assert_uint_eq(tu_stats(s).rejected, 2);
    ck_assert_uint_eq(tu_stats(s).queue_high_water, 1);
    ck_assert_int_eq(tu_latch_get(&hd.entered), 2);
    ps_server_free(s);
    tu_latch_destroy(&hd.entered);
    tu_latch_destroy(&hd.release);
}
END_TEST

START_TEST(test_queue_full_block)
{
    enum { N = 6 };
    struct hold hd;
    ps_server *s;
    int port, fd[N];
    uint64_t last;
    bool ev = _i;

    s = hold_server(&hd, PS_POLICY_BLOCK, &port, 5000, ev);
    fd[0] = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd[0], 0);
    ck_assert_int_eq(tu_write_all(fd[0], "A", 1, tu_ms(1000)), 0);
    ck_assert(tu_latch_wait(&hd.entered, 1, tu_ms(3000)));
    fd[1] = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd[1], 0);
    ck_assert_int_eq(tu_write_all(fd[1], "B", 1, tu_ms(1000)), 0);
    /* Blocking style: the reactor accepts 1 into the only queue slot.
     * Event style: idle workers accept, and the only one is held. */
    if (!ev)
        ck_assert(TU_STAT_EQ(s, queued, 1, tu_ms(3000), &last));
    /* the rest wait in the kernel's backlog (connect completes there) */
    for (int k = 2; k < N; k++) {
        char c = (char)('A' + k);

        fd[k] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[k], 0);
        ck_assert_int_eq(tu_write_all(fd[k], &c, 1, tu_ms(1000)), 0);
    }
    if (!ev)
        ck_assert_msg(TU_STAT_GE(s, queue_full_waits, 1, tu_ms(3000), &last),
                      "queue_full_waits = %llu", (unsigned long long)last);
    else /* nobody accepts while the only worker is busy */
        ck_assert_uint_eq(tu_stats(s).accepted, 1);
    ck_assert_uint_eq(tu_stats(s).rejected, 0);
    ck_assert_int_eq(tu_latch_get(&hd.entered), 1);

    tu_latch_add(&hd.release, 1);
    for (int k = 0; k < N; k++) {
        assert_served(fd[k], k);
        close(fd[k]);
    }
    tu_assert_all_closed(s, N);
    ck_assert_uint_eq(tu_stats(s).accepted, N);
    ck_assert_uint_eq(tu_stats(s).rejected, 0);
    ck_assert_uint_eq(tu_stats(s).queue_high_water, 1);
    ck_assert_int_eq(tu_latch_get(&hd.entered), N);
    ps_server_free(s);
    tu_latch_destroy(&hd.entered);
    tu_latch_destroy(&hd.release);
}
END_TEST

/* ===================================================== half-close */

START_TEST(test_half_close)
{
    bool ev = _i;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    size_t len = 300000;
    char *msg = malloc(len);
    int port, fd;

    ck_assert_ptr_nonnull(msg);
    tu_fill(msg, len, 5);
    tu_config(&cfg);
    echo_handler_init(&h, ev);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    /* send everything, FIN, then all bytes come back followed by EOF */
    ck_assert_int_eq(tu_echo(fd, msg, len, true, tu_ms(10000), NULL), 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ck_assert_uint_eq(tu_stats(s).bytes_out, len);
    ps_server_free(s);
    free(msg);
}
END_TEST

/* Two listeners, IPv4 and IPv6 loopback, one server. */
static int connect6(int port)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    sin6.sin6_addr = in6addr_loopback;
    if (connect(fd, (struct sockaddr *)&sin6, sizeof sin6) < 0) {
        int e = -errno;

        close(fd);
        return e;
    }
    return fd;
}

START_TEST(test_two_listeners)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int p4, p6, fd;

    tu_config(&cfg);
    ck_assert_int_eq(ps_config_add_listen(&cfg, "[::1]:0"), 0);
    echo_handler_init(&h, _i);
    s = tu_server_start(&cfg, &h, NULL, &p4);
    ck_assert_int_eq(ps_server_nlisteners(s), 2);
    p6 = ps_server_port(s, 1);
    ck_assert_int_gt(p6, 0);
    ck_assert_int_eq(ps_server_listen_addr(s, 1, &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    fd = tu_connect(p4, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, "four", 4, true, tu_ms(2000), NULL), 0);
    close(fd);
    fd = connect6(p6);
    ck_assert_msg(fd >= 0, "connect [::1]:%d: %s", p6, ps_strerror(fd));
    ck_assert_int_eq(tu_echo(fd, "six", 3, true, tu_ms(2000), NULL), 0);
    close(fd);
    tu_assert_all_closed(s, 2);
    ps_server_free(s);
}
END_TEST

/* Without a log callback the library writes nothing to stdout or stderr,
 * even on paths that log (bind failure, forced drain). */
START_TEST(test_silent_without_log)
{
    ps_config cfg;
    ps_handler h;
    ps_server *a, *b;
    ps_err err;
    char addr[64], out[256];
    int port, fd, pfd[2], saved[2];
    ssize_t n;

    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    fflush(stdout);
    fflush(stderr);
    saved[0] = dup(1);
    saved[1] = dup(2);
    dup2(pfd[1], 1);
    dup2(pfd[1], 2);

    tu_config(&cfg);
    cfg.drain_timeout_ms = 50;
    echo_handler_init(&h, false);
    a = tu_server_start(&cfg, &h, NULL, &port);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, addr);
    b = ps_server_new(&cfg, &h, NULL, &err);
    if (b)
        ps_server_start(b, &err); /* fails: address in use */
    ps_server_free(b);
    fd = tu_connect(port, tu_ms(2000));
    tu_echo(fd, "x", 1, false, tu_ms(2000), NULL);
    ps_server_free(a); /* with a client still connected: forced at the deadline */
    close(fd);

    fflush(stdout);
    fflush(stderr);
    dup2(saved[0], 1);
    dup2(saved[1], 2);
    close(saved[0]);
    close(saved[1]);
    n = read(pfd[0], out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(pfd[0]);
    close(pfd[1]);
    ck_assert_msg(n < 0 && errno == EAGAIN, "library printed: \"%s\"", out);
}
END_TEST

/* With a log callback, messages arrive without a trailing newline. */
struct logrec {
    pthread_mutex_t mu; /* guards the fields below */
    int n, bad;
    ps_log_level max_level;
    char first_warn[256];
};

static void log_cb(ps_log_level level, const char *msg, void *user)
{
    struct logrec *l = user;
    size_t len = strlen(msg);

    pthread_mutex_lock(&l->mu);
    l->n++;
    if (len == 0 || msg[len - 1] == '\n' || level > l->max_level)
        l->bad++;
    if (level == PS_LOG_WARN && !l->first_warn[0])
        snprintf(l->first_warn, sizeof l->first_warn, "%s", msg);
    pthread_mutex_unlock(&l->mu);
}

START_TEST(test_log_callback)
{
    struct logrec l;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd;

    memset(&l, 0, sizeof l);
    pthread_mutex_init(&l.mu, NULL);
    l.max_level = PS_LOG_WARN;
    tu_config(&cfg);
    cfg.drain_timeout_ms = 50;
    cfg.log = log_cb;
    cfg.log_user = &l;
    cfg.log_level = PS_LOG_WARN;
    echo_handler_init(&h, false);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, "x", 1, false, tu_ms(2000), NULL), 0);
    ps_server_free(s); /* the drain deadline passes with fd still open */
    close(fd);
    pthread_mutex_lock(&l.mu);
    ck_assert_int_eq(l.bad, 0);
    ck_assert_msg(l.first_warn[0] != '\0', "no warning logged for a forced drain (%d messages)",
                  l.n);
    pthread_mutex_unlock(&l.mu);
    pthread_mutex_destroy(&l.mu);
}
END_TEST

/* ===================================================== stop */

/* Clients connected (some in service, some queued or idle) when stop is
 * called: stop returns, wait joins within the drain deadline plus a margin,
 * every client sees EOF. */
START_TEST(test_stop_with_clients)
{
    enum { N = 6, ACTIVE = 3 };
    bool ev = _i;
    tu_rec r;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_stats st;
    int port, fd[N], rc;
    int64_t t0, took;
    uint64_t last;

    tu_rec_init(&r);
    tu_config(&cfg);
    cfg.workers = ACTIVE;
    cfg.drain_timeout_ms = 200;
    if (ev)
        tu_rec_handler(&h);
    else
        echo_handler_init(&h, false);
    s = tu_server_start(&cfg, &h, &r, &port);
    for (int i = 0; i < N; i++) {
        fd[i] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[i], 0);
        /* the first ACTIVE are in service (blocking: hold a worker each);
         * the rest never send (blocking: they wait in the queue) */
        if (i < ACTIVE)
            ck_assert_int_eq(tu_echo(fd[i], "hi", 2, false, tu_ms(3000), NULL), 0);
    }
    ck_assert(TU_STAT_EQ(s, accepted, N, tu_ms(3000), &last));
    t0 = tu_now_ms();
    ps_server_stop(s);
    took = tu_now_ms() - t0;
    ck_assert_int_lt(took, 100); /* stop only asks */
    for (int i = 0; i < N; i++) {
        rc = tu_expect_eof(fd[i], tu_ms(3000));
        ck_assert_msg(rc == 0, "client %d: %s", i, ps_strerror(rc));
    }
    ck_assert_int_eq(tu_server_wait(s, tu_ms(3000)), 0);
    took = tu_now_ms() - t0;
    ck_assert_int_lt(took, tu_ms(2000));
    st = tu_stats(s);
    ck_assert_uint_eq(st.accepted, N);
    ck_assert_uint_eq(st.closed, N);
    ck_assert_uint_eq(st.active, 0);
    ck_assert_uint_eq(st.queued, 0);
    if (!ev)
        ck_assert_uint_ge(st.forced_closes, ACTIVE);
    ck_assert_uint_le(st.forced_closes, N);
    if (ev) {
        tu_rec_assert_clean(&r, N);
        ck_assert_int_eq(ld(&r.reasons[PS_CLOSE_SHUTDOWN]), N);
    }
    /* no longer accepting */
    rc = tu_connect(port, tu_ms(1000));
    ck_assert_msg(rc < 0, "connect after stop succeeded");
    for (int i = 0; i < N; i++)
        close(fd[i]);
    ps_server_free(s);
}
END_TEST

/* Stop is graceful: a connection in service keeps being served after stop
 * until it ends by itself, and then wait returns at once, long before the
 * drain deadline; nothing is forced. */
START_TEST(test_stop_graceful_drain)
{
    bool ev = _i;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char msg[20000];
    int port, fd;
    int64_t t0;

    tu_config(&cfg);
    cfg.drain_timeout_ms = 20000;
    echo_handler_init(&h, ev);
    s = tu_server_start(&cfg, &h, NULL, &port);
    tu_fill(msg, sizeof msg, 11);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, msg, sizeof msg, false, tu_ms(3000), NULL), 0);
    ps_server_stop(s);
    /* still served during the drain */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tu_echo(fd, msg, sizeof msg, false, tu_ms(3000), NULL), 0);
    t0 = tu_now_ms();
    ck_assert_int_eq(tu_echo(fd, msg, 10, true, tu_ms(3000), NULL), 0);
    close(fd);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    ck_assert_int_lt(tu_now_ms() - t0, tu_ms(3000));
    ck_assert_uint_eq(tu_stats(s).forced_closes, 0);
    ck_assert_uint_eq(tu_stats(s).closed, 1);
    ck_assert_uint_eq(tu_stats(s).bytes_out, 4 * sizeof msg + 10);
    ps_server_free(s);
}
END_TEST

/* Clients keep connecting while the server stops: in the event style idle
 * workers accept, and the drain must close the listeners under none of
 * them (a closed descriptor number can be reused at once).  Every client
 * is echoed or refused, never left hanging; ASan and TSan watch the race. */
struct storm {
    int port;
    atomic_int served, refused;
    atomic_bool stop;
};

static void *storm_client(void *arg)
{
    struct storm *st = arg;

    for (int i = 0; i < 400 && !atomic_load(&st->stop); i++) {
        int fd = tu_connect(st->port, tu_ms(2000));

        if (fd < 0) {
            atomic_fetch_add(&st->refused, 1); /* the listener is gone */
            break;
        }
        if (tu_echo(fd, "storm", 5, true, tu_ms(3000), NULL) == 0)
            atomic_fetch_add(&st->served, 1);
        else /* accepted into the backlog, then reset with the listener */
            atomic_fetch_add(&st->refused, 1);
        close(fd);
    }
    return NULL;
}

START_TEST(test_stop_during_connects)
{
    enum { NT = 4 };
    struct storm st = {0};
    pthread_t th[NT];
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    uint64_t last;

    tu_config(&cfg);
    cfg.workers = 2;
    cfg.drain_timeout_ms = 2000;
    echo_handler_init(&h, _i);
    s = tu_server_start(&cfg, &h, NULL, &st.port);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, storm_client, &st), 0);
    ck_assert(TU_STAT_GE(s, accepted, 40, tu_ms(5000), &last));
    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    atomic_store(&st.stop, true);
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_ge(atomic_load(&st.served), 40);
    ck_assert_uint_eq(tu_stats(s).closed, tu_stats(s).accepted);
    ck_assert_uint_ge(tu_stats(s).accepted, (uint64_t)atomic_load(&st.served));
    ps_server_free(s);
}
END_TEST

/* Stop while the queue is full under the block policy: the connection the
 * acceptor holds back and those in the kernel backlog are all released, and
 * everything is freed (ASan checks the leaks). */
START_TEST(test_stop_while_full)
{
    enum { N = 5 };
    struct hold hd;
    ps_server *s;
    int port, fd[N], rc;
    uint64_t last;

    s = hold_server(&hd, PS_POLICY_BLOCK, &port, 200, false);
    for (int k = 0; k < N; k++) {
        char c = (char)('A' + k);

        fd[k] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[k], 0);
        ck_assert_int_eq(tu_write_all(fd[k], &c, 1, tu_ms(1000)), 0);
        if (k == 0)
            ck_assert(tu_latch_wait(&hd.entered, 1, tu_ms(3000)));
    }
    ck_assert(TU_STAT_GE(s, queue_full_waits, 1, tu_ms(3000), &last));
    ps_server_stop(s);
    tu_latch_add(&hd.release, 1);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    for (int k = 0; k < N; k++) {
        char buf[4];
        ssize_t n;

        /* served (its byte back) or refused; either way the stream ends */
        do
            n = tu_read_exact(fd[k], buf, 1, tu_ms(3000));
        while (n == 1);
        ck_assert_msg(n == 0 || n == -ECONNRESET, "client %d: %s", k, ps_strerror((int)n));
        close(fd[k]);
    }
    rc = (int)tu_stats(s).active;
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(tu_stats(s).closed, tu_stats(s).accepted);
    ps_server_free(s);
    tu_latch_destroy(&hd.entered);
    tu_latch_destroy(&hd.release);
}
END_TEST

/* ps_server_run on its own thread serves until ps_server_stop. */
struct runner {
    ps_server *s;
    int rc;
};

static void *run_main(void *arg)
{
    struct runner *r = arg;
    ps_err err;

    r->rc = ps_server_run(r->s, &err);
    return NULL;
}

static bool has_port(void *arg)
{
    return ps_server_port(arg, 0) > 0;
}

START_TEST(test_server_run)
{
    struct runner r = {0};
    ps_config cfg;
    ps_handler h;
    ps_err err;
    pthread_t th;
    struct timespec dl;
    int fd;

    tu_config(&cfg);
    echo_handler_init(&h, true);
    r.s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(r.s);
    r.rc = 12345;
    ck_assert_int_eq(pthread_create(&th, NULL, run_main, &r), 0);
    ck_assert(tu_wait_until(has_port, r.s, tu_ms(3000)));
    fd = tu_connect(ps_server_port(r.s, 0), tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, "run", 3, true, tu_ms(2000), NULL), 0);
    close(fd);
    ps_server_stop(r.s);
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += tu_ms(5000) / 1000;
    ck_assert_msg(pthread_timedjoin_np(th, NULL, &dl) == 0, "ps_server_run did not return");
    ck_assert_int_eq(r.rc, 0);
    ps_server_free(r.s);
}
END_TEST

/* Stop from inside a handler. */
static void quit_serve(ps_conn *c, void *user)
{
    char buf[8];

    (void)user;
    if (ps_conn_read_exact(c, buf, 5) == 5 && memcmp(buf, "quit\n", 5) == 0) {
        ps_server_stop(ps_conn_server(c));
        ps_server_stop(ps_conn_server(c));
        ps_conn_write_all(c, "ok\n", 3);
    }
}

START_TEST(test_stop_from_handler)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char buf[4] = {0};
    int port, fd;

    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.serve = quit_serve;
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "quit\n", 5, tu_ms(1000)), 0);
    ck_assert_int_eq(tu_read_exact(fd, buf, 3, tu_ms(3000)), 3);
    ck_assert_str_eq(buf, "ok\n");
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(3000)), 0);
    close(fd);
    ps_server_free(s);
}
END_TEST

/* Stop from a signal handler. */
static ps_server *sig_server;

static void on_sigusr1(int sig)
{
    (void)sig;
    ps_server_stop(sig_server);
}

START_TEST(test_stop_from_signal)
{
    struct sigaction sa, old;
    ps_config cfg;
    ps_handler h;
    int port, fd;

    tu_config(&cfg);
    cfg.drain_timeout_ms = 200; /* the idle connection is shut down then */
    echo_handler_init(&h, true);
    sig_server = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, "abc", 3, false, tu_ms(2000), NULL), 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    raise(SIGUSR1);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    ck_assert_int_eq(tu_server_wait(sig_server, tu_ms(3000)), 0);
    sigaction(SIGUSR1, &old, NULL);
    close(fd);
    ps_server_free(sig_server);
    sig_server = NULL;
}
END_TEST

/* ===================================================== lifecycle loop */

/* A thousand create/start/stop/free cycles (the TSan criterion:
 * make tsan runs this too), with some connections open at stop. */
START_TEST(test_lifecycle_loop)
{
    enum { ITER = 1000 };
    int fds_before = tu_count_fds();

    for (int i = 0; i < ITER; i++) {
        ps_config cfg;
        ps_handler h;
        ps_server *s;
        int port;

        tu_config(&cfg);
        cfg.workers = 1 + i % 4;
        cfg.drain_timeout_ms = 100;
        echo_handler_init(&h, i & 1);
        s = tu_server_start(&cfg, &h, NULL, &port);
        if (i % 50 == 0) {
            int fd = tu_connect(port, tu_ms(2000));

            ck_assert_int_ge(fd, 0);
            ck_assert_int_eq(tu_echo(fd, "ping", 4, i % 100 == 0, tu_ms(2000), NULL), 0);
            close(fd); /* some still open at stop */
        }
        if (i % 3 == 0) {
            ps_server_stop(s);
            ck_assert_int_eq(tu_server_wait(s, tu_ms(3000)), 0);
        } else if (i % 3 == 1) {
            ps_server_stop(s);
        }
        ps_server_free(s); /* stops and waits if needed */
    }
    ck_assert_int_eq(tu_count_fds(), fds_before);
}
END_TEST

/* ===================================================== out of descriptors */

/* The process runs out of descriptors while clients are waiting: the
 * acceptor counts EMFILE, refuses them cleanly with its reserve descriptor
 * (no busy loop, no hang), and serves again once descriptors are back. */
START_TEST(test_accept_emfile)
{
    enum { NWAIT = 3, MAXFILL = 4096 };
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    struct rlimit old, lim;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    int port, cl[NWAIT], *fill = calloc(MAXFILL, sizeof *fill), nfill = 0, maxfd = 0, rc;
    uint64_t last;

    ck_assert_ptr_nonnull(fill);
    tu_config(&cfg);
    cfg.workers = 2;
    echo_handler_init(&h, _i); /* the reactor accepts; event style: a worker */
    s = tu_server_start(&cfg, &h, NULL, &port);
    /* client sockets exist before the limit bites: connect needs no new fd */
    for (int i = 0; i < NWAIT; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(cl[i], 0);
        if (cl[i] > maxfd)
            maxfd = cl[i];
    }
    /* every descriptor number below the new limit is in use */
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)maxfd + 1;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    while (nfill < MAXFILL && (fill[nfill] = dup(cl[0])) >= 0)
        nfill++;
    ck_assert_int_eq(errno, EMFILE);

    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < NWAIT; i++)
        ck_assert_int_eq(connect(cl[i], (struct sockaddr *)&sin, sizeof sin), 0);
    for (int i = 0; i < NWAIT; i++) {
        rc = tu_expect_eof(cl[i], tu_ms(5000));
        ck_assert_msg(rc == 0 || rc == -ECONNRESET, "waiting client %d: %s", i, ps_strerror(rc));
    }
    ck_assert_msg(TU_STAT_GE(s, accept_emfile, 1, tu_ms(2000), &last), "accept_emfile = %llu",
                  (unsigned long long)last);
    ck_assert_uint_eq(tu_stats(s).accepted, 0);

    /* descriptors back: the acceptor recovers after its back-off */
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (int i = 0; i < NWAIT; i++)
        close(cl[i]);
    {
        int fd = tu_connect(port, tu_ms(2000));

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(tu_echo(fd, "back", 4, true, tu_ms(5000), NULL), 0);
        close(fd);
    }
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
    free(fill);
}
END_TEST

/* ============================================= a slow handler stalls no one */

/* One connection's handler sleeps 200 ms (its first byte is 'S'); meanwhile
 * 50 other connections must keep being echoed at full speed, on the other
 * workers.  The card's promise: a handler that takes long never stalls the
 * other connections, whatever decides which worker waits for readiness. */
enum { SLOW_MS = 200, FAST_CONNS = 50 };

struct slow {
    tu_latch entered; /* the sleeper has started sleeping */
};

static void slow_sleep(struct slow *sl)
{
    struct timespec ts = {0, SLOW_MS * 1000000L};

    tu_latch_add(&sl->entered, 1);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Blocking style: one read per call, echoed, then park (each message here
 * is sent after the previous echo, so nothing is left in the socket). */
static void slow_serve(ps_conn *c, void *user)
{
    char buf[256];
    ssize_t n = ps_conn_read(c, buf, sizeof buf);

    if (n <= 0)
        return;
    if (buf[0] == 'S')
        slow_sleep(user);
    if (ps_conn_write_all(c, buf, (size_t)n) == 0)
        ps_conn_park(c);
}

static size_t slow_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    if (data[0] == 'S')
        slow_sleep(user);
    return echo_on_data(c, data, len, NULL);
}

/* Echo 64-byte messages in lockstep on n connections for ms milliseconds;
 * returns the longest round trip seen (ns), or -1 on an error; *rounds is
 * the fewest round trips any connection completed. */
static int64_t fast_echo(const int *fd, int n, int ms, int *rounds)
{
    struct pollfd pf[FAST_CONNS];
    int64_t sent_at[FAST_CONNS], worst = 0, end = tu_now_ms() + ms;
    int done[FAST_CONNS] = {0}, got[FAST_CONNS] = {0};
    char msg[64], buf[64];

    memset(msg, 'f', sizeof msg);
    for (int i = 0; i < n; i++) {
        pf[i] = (struct pollfd){.fd = fd[i], .events = POLLIN};
        sent_at[i] = tu_now_ns();
        if (send(fd[i], msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg)
            return -1;
    }
    while (tu_now_ms() < end) {
        int k = poll(pf, (nfds_t)n, 50);
        if (k < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n && k > 0; i++) {
            ssize_t r;
            if (!pf[i].revents)
                continue;
            r = recv(fd[i], buf, sizeof buf - (size_t)got[i], MSG_DONTWAIT);
            if (r <= 0)
                return -1;
            got[i] += (int)r;
            if (got[i] < (int)sizeof msg)
                continue;
            got[i] = 0;
            done[i]++;
            if (tu_now_ns() - sent_at[i] > worst)
                worst = tu_now_ns() - sent_at[i];
            sent_at[i] = tu_now_ns();
            if (send(fd[i], msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg)
                return -1;
        }
    }
    *rounds = done[0];
    for (int i = 1; i < n; i++)
        if (done[i] < *rounds)
            *rounds = done[i];
    for (int i = 0; i < n; i++) /* collect the last answers before the next use */
        if (got[i] < (int)sizeof msg &&
            tu_read_exact(fd[i], buf, sizeof msg - (size_t)got[i], tu_ms(2000)) < 0)
            return -1;
    return worst;
}

START_TEST(test_slow_handler_stalls_no_one)
{
    struct slow sl;
    ps_config cfg;
    ps_handler h = {0};
    ps_server *s;
    int port, fd[FAST_CONNS], sleeper, rounds = 0;
    int64_t worst;
    char b;

    tu_latch_init(&sl.entered);
    tu_config(&cfg);
    cfg.workers = 2; /* the fewest that can serve others while one sleeps */
    if (_i)
        h.on_data = slow_on_data;
    else
        h.serve = slow_serve;
    s = tu_server_start(&cfg, &h, &sl, &port);
    for (int i = 0; i < FAST_CONNS; i++) {
        fd[i] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[i], 0);
    }
    ck_assert_int_ge(fast_echo(fd, FAST_CONNS, 100, &rounds), 0); /* all are being served */
    sleeper = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(sleeper, 0);
    ck_assert_int_eq(tu_write_all(sleeper, "S", 1, tu_ms(1000)), 0);
    ck_assert(tu_latch_wait(&sl.entered, 1, tu_ms(3000)));
    worst = fast_echo(fd, FAST_CONNS, SLOW_MS * 3 / 4, &rounds);
    ck_assert_msg(worst >= 0, "echo failed while one handler slept");
    /* A stall would show as a round trip near SLOW_MS; unloaded, one is well
     * under a millisecond. */
    ck_assert_msg(worst < (int64_t)tu_ms(SLOW_MS / 2) * 1000000,
                  "a round trip took %lld us while one handler slept %d ms",
                  (long long)(worst / 1000), SLOW_MS);
    ck_assert_msg(rounds >= 10, "a connection got only %d round trips in %d ms", rounds,
                  SLOW_MS * 3 / 4);
    ck_assert_int_eq(tu_read_exact(sleeper, &b, 1, tu_ms(3000)), 1);
    ck_assert_int_eq(b, 'S');
    for (int i = 0; i < FAST_CONNS; i++)
        close(fd[i]);
    close(sleeper);
    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    ps_server_free(s);
    tu_latch_destroy(&sl.entered);
}
END_TEST

/* ===================================================== 2,000 connections */

enum { MANY = 2000 };

START_TEST(test_many_connections)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_stats st;
    struct pollfd *pfd = calloc(MANY, sizeof *pfd);
    size_t *got = calloc(MANY, sizeof *got);
    char(*msg)[32] = calloc(MANY, sizeof *msg);
    char(*rcv)[32] = calloc(MANY, sizeof *rcv);
    int port, done = 0, rc;
    long lim = tu_raise_nofile();
    int64_t deadline;
    uint64_t last;

    ck_assert_ptr_nonnull(pfd);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(rcv);
    ck_assert_msg(lim >= 2 * MANY + 64, "RLIMIT_NOFILE %ld is too low for %d connections", lim,
                  MANY);
    tu_config(&cfg);
    cfg.workers = 4;
    cfg.drain_timeout_ms = 200;
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);

    for (int i = 0; i < MANY; i++) {
        pfd[i].fd = tu_connect(port, tu_ms(5000));
        ck_assert_msg(pfd[i].fd >= 0, "connect %d: %s", i, ps_strerror(pfd[i].fd));
        pfd[i].events = POLLIN;
        snprintf(msg[i], sizeof msg[i], "client %04d %08x", i, (unsigned)(i * 2654435761u));
        ck_assert_int_eq(tu_write_all(pfd[i].fd, msg[i], sizeof msg[i], tu_ms(2000)), 0);
    }
    /* all connected at once; read every echo */
    deadline = tu_now_ms() + tu_ms(15000);
    while (done < MANY && tu_now_ms() < deadline) {
        int n = poll(pfd, MANY, 100);

        ck_assert_int_ge(n, 0);
        for (int i = 0; i < MANY && n > 0; i++) {
            ssize_t r;

            if (!pfd[i].revents)
                continue;
            n--;
            r = recv(pfd[i].fd, rcv[i] + got[i], sizeof rcv[i] - got[i], MSG_DONTWAIT);
            ck_assert_msg(r > 0, "client %d: recv = %zd after %zu bytes", i, r, got[i]);
            got[i] += (size_t)r;
            if (got[i] == sizeof rcv[i]) {
                ck_assert(memcmp(rcv[i], msg[i], sizeof msg[i]) == 0);
                pfd[i].events = 0;
                done++;
            }
        }
    }
    ck_assert_int_eq(done, MANY);
    ck_assert(TU_STAT_EQ(s, accepted, MANY, tu_ms(3000), &last));
    st = tu_stats(s);
    ck_assert_uint_eq(st.active, MANY);
    ck_assert_uint_eq(st.bytes_in, (uint64_t)MANY * 32);
    ck_assert_uint_eq(st.bytes_out, (uint64_t)MANY * 32);

    /* stop with every connection open: all closed, all freed */
    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    st = tu_stats(s);
    ck_assert_uint_eq(st.closed, MANY);
    ck_assert_uint_eq(st.active, 0);
    for (int i = 0; i < MANY; i++) {
        rc = tu_expect_eof(pfd[i].fd, tu_ms(2000));
        ck_assert_msg(rc == 0, "client %d: %s", i, ps_strerror(rc));
        close(pfd[i].fd);
    }
    ps_server_free(s);
    free(pfd);
    free(got);
    free(msg);
    free(rcv);
}
END_TEST

Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *echo = tcase_create("echo");
    TCase *full = tcase_create("queue_full");
    TCase *server = tcase_create("server");
    TCase *stop = tcase_create("stop");
    TCase *acceptor = tcase_create("acceptor");
    TCase *slow = tcase_create("slow");

    tcase_set_timeout(echo, 30);
    tcase_add_loop_test(echo, test_concurrent_echo, 0, 2);
    tcase_add_loop_test(echo, test_disconnect_midstream, 0, 2);
    tcase_add_loop_test(echo, test_half_close, 0, 2);
    tcase_add_loop_test(echo, test_slow_handler_stalls_no_one, 0, 2);
    suite_add_tcase(s, echo);

    tcase_set_timeout(full, 15);
    tcase_add_loop_test(full, test_queue_full_reject, 0, 2);
    tcase_add_loop_test(full, test_queue_full_block, 0, 2);
    suite_add_tcase(s, full);

    tcase_set_timeout(server, 15);
    tcase_add_loop_test(server, test_two_listeners, 0, 2);
    tcase_add_test(server, test_silent_without_log);
    tcase_add_test(server, test_log_callback);
    suite_add_tcase(s, server);

    tcase_set_timeout(stop, 15);
    tcase_add_loop_test(stop, test_stop_with_clients, 0, 2);
    tcase_add_loop_test(stop, test_stop_graceful_drain, 0, 2);
    tcase_add_test(stop, test_stop_while_full);
    tcase_add_test(stop, test_server_run);
    tcase_add_test(stop, test_stop_from_handler);
    tcase_add_test(stop, test_stop_from_signal);
    tcase_add_test(stop, test_lifecycle_loop);
    suite_add_tcase(s, stop);

    tcase_set_timeout(acceptor, 15);
    tcase_add_loop_test(acceptor, test_accept_emfile, 0, 2);
    tcase_add_loop_test(acceptor, test_stop_during_connects, 0, 2);
    suite_add_tcase(s, acceptor);

    tcase_set_timeout(slow, 60);
    tcase_add_test(slow, test_many_connections);
    suite_add_tcase(s, slow);
    return s;
}

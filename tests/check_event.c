/* SPDX-License-Identifier: MIT */
/*
 * check_event.c - event-style handler semantics against a live in-process
 * server on 127.0.0.1:0: on_open/on_data/on_close ordering and
 * exactly-once close with the right reason, no overlapping callbacks across
 * workers, partial consumption, close-after-flush, reset, input overflow,
 * a refusing on_open.  (check_features.c covers idle timeouts,
 * pause/resume, backpressure, fairness and partial writes.)
 *
 * Handler threads never call ck_assert; they record what they saw and the
 * test thread asserts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h" /* ready_waiters: how many workers sleep in epoll_wait */
#include "test_util.h"

/* atomic loads with short names, so failure messages stay readable */
static int ld(atomic_int *p)
{
    return atomic_load(p);
}

static size_t ldz(atomic_size_t *p)
{
    return atomic_load(p);
}

/* on_close exactly once per connection, reason EOF for a client that
 * closed, ERROR for a client that reset. */
START_TEST(test_on_close_once)
{
    enum { N = 20, NRST = 4 };
    tu_rec r;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd[N];
    char msg[1000];

    tu_rec_init(&r);
    tu_config(&cfg);
    tu_rec_handler(&h);
    s = tu_server_start(&cfg, &h, &r, &port);
    tu_fill(msg, sizeof msg, 3);
    for (int i = 0; i < N; i++) {
        fd[i] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[i], 0);
    }
    for (int i = 0; i < N; i++) {
        bool rst = i < NRST;

        ck_assert_int_eq(tu_echo(fd[i], msg, sizeof msg, !rst, tu_ms(5000), NULL), 0);
        if (rst)
            tu_close_rst(fd[i]);
        else
            close(fd[i]);
    }
    tu_rec_wait_closes(&r, N);
    tu_assert_all_closed(s, N);
    tu_rec_assert_clean(&r, N);
    ck_assert_int_eq(ld(&r.reasons[PS_CLOSE_EOF]), N - NRST);
    ck_assert_int_eq(ld(&r.reasons[PS_CLOSE_ERROR]), NRST);
    ck_assert_int_eq(ld(&r.send_errors), 0);
    ps_server_free(s);
    /* nothing more after free */
    ck_assert_int_eq(ld(&r.closes), N);
}
END_TEST

/* Many workers, pipelined clients, a small read budget: one connection's
 * callbacks must still never overlap, and its bytes arrive in order. */
enum { OVL_CLIENTS = 8, OVL_BYTES = 256 * 1024 };

struct ovl_client {
    int port, rc;
    size_t bad_at;
    const char *data;
    pthread_t th;
};

static void *ovl_client_main(void *arg)
{
    struct ovl_client *oc = arg;
    int fd = tu_connect(oc->port, tu_ms(5000));

    if (fd < 0) {
        oc->rc = fd;
        return NULL;
    }
    oc->rc = tu_echo_chunked(fd, oc->data, OVL_BYTES, 100, true, tu_ms(20000), &oc->bad_at);
    close(fd);
    return NULL;
}

START_TEST(test_no_overlap)
{
    tu_rec r;
    struct ovl_client oc[OVL_CLIENTS];
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char *data = malloc(OVL_BYTES);
    int port;

    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < OVL_BYTES; i++)
        data[i] = (char)tu_pattern_byte(i);
    tu_rec_init(&r);
    r.spin = true;
    r.pattern = true;
    tu_config(&cfg);
    cfg.workers = 8;
    cfg.read_budget = 256;
    tu_rec_handler(&h);
    s = tu_server_start(&cfg, &h, &r, &port);
    for (int i = 0; i < OVL_CLIENTS; i++) {
        oc[i] = (struct ovl_client){.port = port, .data = data};
        ck_assert_int_eq(pthread_create(&oc[i].th, NULL, ovl_client_main, &oc[i]), 0);
    }
    for (int i = 0; i < OVL_CLIENTS; i++)
        pthread_join(oc[i].th, NULL);
    for (int i = 0; i < OVL_CLIENTS; i++)
        ck_assert_msg(oc[i].rc == 0, "client %d: %s at offset %zu", i, ps_strerror(oc[i].rc),
                      oc[i].bad_at);
    tu_rec_wait_closes(&r, OVL_CLIENTS);
    tu_rec_assert_clean(&r, OVL_CLIENTS);
    ck_assert_int_eq(ld(&r.reasons[PS_CLOSE_EOF]), OVL_CLIENTS);
    /* the budget forced many turns per connection */
    ck_assert_int_ge(ld(&r.datas), OVL_CLIENTS * (OVL_BYTES / 256) / 2);
    ps_server_free(s);
    free(data);
}
END_TEST

/* Idle event-style workers sleep: one (the poller) in epoll_wait on the
 * connections' set, one (the standby) untimed on its condition variable,
 * the rest on the bench.  With every one of them asleep, a new connection
 * (queued by the reactor for its on_open turn) must still be served - the
 * queue's bell wakes the poller - and stop must still end them all. */
static bool all_workers_asleep(void *arg)
{
    ps_server *s = arg;
    bool asleep;

    pthread_mutex_lock(&s->bench_lock);
    asleep = atomic_load(&s->ready_waiters) == 1 && atomic_load(&s->pollers) == 1 &&
             s->has_standby && atomic_load(&s->standby_deep) && s->benched == s->cfg.workers - 2;
    pthread_mutex_unlock(&s->bench_lock);
    return asleep;
}

START_TEST(test_event_workers_asleep)
{
    enum { ROUNDS = 3 };
    tu_rec r;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port;
    char msg[1000];

    tu_rec_init(&r);
    tu_config(&cfg);
    cfg.workers = 8;
    tu_rec_handler(&h);
    s = tu_server_start(&cfg, &h, &r, &port);
    tu_fill(msg, sizeof msg, 5);
    for (int i = 0; i < ROUNDS; i++) {
        int fd;
        ck_assert_msg(tu_wait_until(all_workers_asleep, s, tu_ms(5000)),
                      "round %d: %d in epoll_wait, %d benched", i,
                      atomic_load(&s->ready_waiters), s->benched);
        fd = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(tu_echo(fd, msg, sizeof msg, true, tu_ms(5000), NULL), 0);
        close(fd);
        tu_rec_wait_closes(&r, i + 1);
    }
    ck_assert(tu_wait_until(all_workers_asleep, s, tu_ms(5000)));
    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    tu_rec_assert_clean(&r, ROUNDS);
    ps_server_free(s);
}
END_TEST

/* Turns longer than PS_LONG_TURN_NS (a handler that computes, a TLS
 * handshake) let a second worker poll, and the allowance holds while they
 * keep coming; once they stop, the pool must go back to one poller by
 * itself, with no further traffic to prompt it (a held poller asleep in
 * epoll_wait used to stay there). */
static size_t burn_echo_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    int64_t end = ps__now_ns() + 400000;

    (void)user;
    while (ps__now_ns() < end)
        ;
    ps_conn_send(c, data, len);
    return len;
}

START_TEST(test_long_turns_hold_then_release)
{
    enum { CONNS = 2, MSGS = 40 };
    ps_config cfg;
    ps_handler h = {.on_data = burn_echo_on_data};
    ps_server *s;
    int port, fds[CONNS], most = 1;
    char msg[100];

    tu_config(&cfg);
    cfg.workers = 4;
    s = tu_server_start(&cfg, &h, NULL, &port);
    tu_fill(msg, sizeof msg, 7);
    for (int i = 0; i < CONNS; i++) {
        fds[i] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fds[i], 0);
    }
    for (int m = 0; m < MSGS; m++)
        for (int i = 0; i < CONNS; i++) {
            int a;
            ck_assert_int_eq(tu_echo(fds[i], msg, sizeof msg, false, tu_ms(5000), NULL), 0);
            a = atomic_load(&s->poll_allowed);
            most = a > most ? a : most;
        }
    ck_assert_msg(most >= 2, "%d turns of 400 us never let a second worker poll", MSGS * CONNS);
    ck_assert_msg(tu_wait_until(all_workers_asleep, s, tu_ms(5000)),
                  "after the long turns: %d in epoll_wait, %d pollers allowed",
                  atomic_load(&s->ready_waiters), atomic_load(&s->poll_allowed));
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    ps_server_free(s);
}
END_TEST

/* The pool's trials (trials.c): the rule that keeps or undoes one. */
START_TEST(test_trial_kept)
{
    const int64_t ns[2] = {100000000, 100000000};
    const int64_t uneven[2] = {100000000, 50000000};
    uint64_t b[2];

    b[0] = 1000000, b[1] = 1100000; /* 10% more with one poller more */
    ck_assert(ps__trial_kept(1, 2, b, ns));
    b[1] = 1030000; /* 3%: not worth a core */
    ck_assert(!ps__trial_kept(1, 2, b, ns));
    b[1] = 990000; /* one fewer, 1% less: keep the saving */
    ck_assert(ps__trial_kept(2, 1, b, ns));
    b[1] = 950000; /* one fewer, 5% less: undo */
    ck_assert(!ps__trial_kept(2, 1, b, ns));
    b[1] = 600000; /* rates, not totals: 600k in half the time is 20% more */
    ck_assert(ps__trial_kept(1, 2, b, uneven));
    b[0] = b[1] = 0; /* nothing moved: no reason to add a poller */
    ck_assert(!ps__trial_kept(1, 2, b, ns));
}
END_TEST

/* /proc/stat is read for the CPUs this thread may run on only. */
START_TEST(test_cpu_idle_follows_affinity)
{
    cpu_set_t all, one;
    uint64_t idle, total, idle1, total1;
    int cpu = 0;

    ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
    ck_assert_int_eq(ps__cpu_count(), CPU_COUNT(&all));
    ck_assert_int_eq(ps__cpu_idle(&idle, &total), 0);
    ck_assert(total > 0 && idle <= total);
    if (CPU_COUNT(&all) < 2)
        return;
    while (!CPU_ISSET(cpu, &all))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    ck_assert_int_eq(ps__cpu_idle(&idle1, &total1), 0);
    ck_assert_int_eq(sched_setaffinity(0, sizeof all, &all), 0);
    /* One CPU's time since boot, read later, against all of them. */
    ck_assert_msg(total1 < total, "one CPU: %llu ticks, %d CPUs: %llu", (unsigned long long)total1,
                  CPU_COUNT(&all), (unsigned long long)total);
    ck_assert(idle1 <= total1);
}
END_TEST

static bool two_in_epoll(void *arg)
{
    ps_server *s = arg;

    return atomic_load(&s->ready_waiters) == 2 && atomic_load(&s->pollers) == 2;
}

/* A floor of two pollers (as a kept trial sets it) brings the standby in
 * at once; when no turn runs any more, the floor lapses and the pool goes
 * back to one poller by itself. */
START_TEST(test_floor_joins_then_lapses)
{
    ps_config cfg;
    ps_handler h;
    tu_rec r;
    ps_server *s;

    tu_rec_init(&r);
    tu_config(&cfg);
    cfg.workers = 4;
    tu_rec_handler(&h);
    s = tu_server_start(&cfg, &h, &r, NULL);
    ck_assert(tu_wait_until(all_workers_asleep, s, tu_ms(5000)));
    atomic_store(&s->ctl_last_ns, ps__now_ns()); /* as if a trial step just ran */
    ps__pool_set_floor(s, 2);
    ck_assert_msg(tu_wait_until(two_in_epoll, s, tu_ms(5000)),
                  "floor 2: %d pollers, %d in epoll_wait", atomic_load(&s->pollers),
                  atomic_load(&s->ready_waiters));
    ck_assert_msg(tu_wait_until(all_workers_asleep, s, tu_ms(5000)),
                  "the floor did not lapse: floor %d, %d allowed, %d in epoll_wait",
                  atomic_load(&s->poll_floor), atomic_load(&s->poll_allowed),
                  atomic_load(&s->ready_waiters));
    ck_assert_int_eq(atomic_load(&s->poll_floor), 1);
    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    ps_server_free(s);
}
END_TEST

/* Trials under load, raced against connections that close and reset: every
 * byte still comes back, and the pool ends at one poller.  Where the CPUs
 * had time to spare during the load, at least one trial must have run (the
 * first comes about PS_TRIAL_GAP_MIN_NS after the load starts).  One client
 * thread, so that they do: with it the CPUs here were about half idle
 * (47-51%), with two 7-18%. */
struct trial_load {
    int port, id;
    atomic_bool *stop;
    int errors;
};

static void *trial_client(void *arg)
{
    struct trial_load *t = arg;
    char msg[64];
    int fd = -1;

    tu_fill(msg, sizeof msg, (unsigned)t->id);
    for (unsigned n = 0; !atomic_load(t->stop) && n < 2000000; n++) {
        if (fd < 0 && (fd = tu_connect(t->port, tu_ms(2000))) < 0) {
            t->errors++;
            break;
        }
        if (tu_echo(fd, msg, sizeof msg, false, tu_ms(5000), NULL) != 0) {
            t->errors++;
            break;
        }
        if (n % 997 == 996) { /* now and then a reset, or a close */
            if (n % 2)
                tu_close_rst(fd);
            else
                close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static size_t plain_echo_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    ps_conn_send(c, data, len);
    return len;
}

static bool trial_ended(void *arg)
{
    return atomic_load(&((ps_server *)arg)->ctl_ended) > 0;
}

START_TEST(test_trials_under_load)
{
    enum { CLIENTS = 1 };
    ps_config cfg;
    ps_handler h = {.on_data = plain_echo_on_data};
    ps_server *s;
    pthread_t tid[CLIENTS];
    struct trial_load t[CLIENTS];
    atomic_bool stop = false;
    uint64_t i0, t0, i1, t1;
    int port, have_idle;

    tu_config(&cfg);
    cfg.workers = 4;
    s = tu_server_start(&cfg, &h, NULL, &port);
    have_idle = ps__cpu_idle(&i0, &t0) == 0;
    for (int i = 0; i < CLIENTS; i++) {
        t[i] = (struct trial_load){.port = port, .id = i, .stop = &stop};
        ck_assert_int_eq(pthread_create(&tid[i], NULL, trial_client, &t[i]), 0);
    }
    tu_wait_until(trial_ended, s, tu_ms(4000)); /* none, where the CPUs are busy */
    atomic_store(&stop, true);
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(tid[i], NULL);
        ck_assert_msg(t[i].errors == 0, "client %d lost its echo", i);
    }
    if (have_idle && ps__cpu_idle(&i1, &t1) == 0 && s->ctl_max > 1 &&
        (i1 - i0) * 100 >= (t1 - t0) * 20)
        ck_assert_msg(atomic_load(&s->ctl_trials) > 0,
                      "the CPUs were %llu%% idle and no trial ran",
                      (unsigned long long)((i1 - i0) * 100 / (t1 - t0)));
    ck_assert_msg(tu_wait_until(all_workers_asleep, s, tu_ms(5000)),
                  "after the load: floor %d, %d allowed, %d in epoll_wait",
                  atomic_load(&s->poll_floor), atomic_load(&s->poll_allowed),
                  atomic_load(&s->ready_waiters));
    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    ps_server_free(s);
}
END_TEST

/* ===================================================== event: consumption */

struct lines {
    atomic_int calls, partial_calls, lines;
};

/* Consume whole lines only; reply "[line]\n" for each. */
static size_t lines_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    struct lines *l = user;
    size_t used = 0;
    const char *nl;

    atomic_fetch_add(&l->calls, 1);
    while ((nl = memchr(data + used, '\n', len - used)) != NULL) {
        size_t n = (size_t)(nl - (data + used));

        atomic_fetch_add(&l->lines, 1); /* before the reply: the client may assert at once */
        ps_conn_send(c, "[", 1);
        ps_conn_send(c, data + used, n);
        ps_conn_send(c, "]\n", 2);
        used += n + 1;
    }
    if (used < len)
        atomic_fetch_add(&l->partial_calls, 1);
    return used;
}

START_TEST(test_event_partial_consume)
{
    static const char input[] = "hello world\nsecond line\n\nx\nthe last line is longer\n";
    static const char want[] = "[hello world]\n[second line]\n[]\n[x]\n[the last line is longer]\n";
    struct lines l = {0};
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char got[sizeof want];
    int port, fd;
    uint64_t last;

    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.on_data = lines_on_data;
    s = tu_server_start(&cfg, &h, &l, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    /* one byte at a time, each read by the server before the next is sent */
    for (size_t i = 0; i < sizeof input - 1; i++) {
        ck_assert_int_eq(tu_write_all(fd, &input[i], 1, tu_ms(1000)), 0);
        ck_assert_msg(TU_STAT_EQ(s, bytes_in, i + 1, tu_ms(2000), &last),
                      "bytes_in = %llu after %zu bytes", (unsigned long long)last, i + 1);
    }
    memset(got, 0, sizeof got);
    ck_assert_int_eq(tu_read_exact(fd, got, sizeof want - 1, tu_ms(3000)), sizeof want - 1);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(ld(&l.lines), 5);
    ck_assert_int_ge(ld(&l.partial_calls), 5);
    /* a trailing partial line is kept, never echoed */
    ck_assert_int_eq(tu_write_all(fd, "tail", 4, tu_ms(1000)), 0);
    ck_assert(TU_STAT_EQ(s, bytes_in, sizeof input - 1 + 4, tu_ms(2000), &last));
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
}
END_TEST

/* ===================================================== event: close flushes */

enum { FLUSH_BYTES = 4 << 20 };

/* A client whose receive buffer is kept small, so that the kernel cannot
 * absorb FLUSH_BYTES between the two sockets (loopback buffers autotune to
 * megabytes) and the server really has output pending when it closes. */
static int connect_small_rcvbuf(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int small = 16384, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

struct flush {
    const char *data;
    bool keep_open; /* send, but do not close */
    tu_latch closed_by_handler;
    atomic_size_t pending_at_close;
    atomic_int send_rc;
    atomic_int reason;
    atomic_int on_close_calls;
};

static size_t flush_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    struct flush *f = user;
    int rc = 0;

    if (memchr(data, '\n', len)) {
        for (size_t off = 0; off < FLUSH_BYTES && rc == 0; off += 65536)
            rc = ps_conn_send(c, f->data + off, 65536);
        atomic_store(&f->send_rc, rc);
        atomic_store(&f->pending_at_close, ps_conn_pending(c));
        if (!f->keep_open) {
            ps_conn_close(c);
            /* sends after close are refused */
            if (ps_conn_send(c, "late", 4) != -EPIPE)
                atomic_store(&f->send_rc, -1000);
        }
        tu_latch_add(&f->closed_by_handler, 1);
    }
    return len;
}

static void flush_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    struct flush *f = user;

    (void)c;
    atomic_store(&f->reason, (int)why);
    atomic_fetch_add(&f->on_close_calls, 1);
}

START_TEST(test_event_close_flushes)
{
    struct flush f;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char *data = malloc(FLUSH_BYTES), *got = malloc(FLUSH_BYTES);
    int port, fd;

    ck_assert_ptr_nonnull(data);
    ck_assert_ptr_nonnull(got);
    tu_fill(data, FLUSH_BYTES, 99);
    memset(&f, 0, sizeof f);
    f.data = data;
    atomic_store(&f.reason, -1);
    tu_latch_init(&f.closed_by_handler);
    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.on_data = flush_on_data;
    h.on_close = flush_on_close;
    s = tu_server_start(&cfg, &h, &f, &port);
    fd = connect_small_rcvbuf(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "go\n", 3, tu_ms(1000)), 0);
    /* do not read until the handler has closed with output pending */
    ck_assert(tu_latch_wait(&f.closed_by_handler, 1, tu_ms(5000)));
    ck_assert_int_eq(ld(&f.send_rc), 0);
    ck_assert_uint_gt(ldz(&f.pending_at_close), 0);
    ck_assert_int_eq(tu_read_exact(fd, got, FLUSH_BYTES, tu_ms(10000)), FLUSH_BYTES);
    ck_assert(memcmp(got, data, FLUSH_BYTES) == 0);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ck_assert_int_eq(ld(&f.on_close_calls), 1);
    ck_assert_int_eq(ld(&f.reason), PS_CLOSE_LOCAL);
    ck_assert_uint_eq(tu_stats(s).bytes_out, FLUSH_BYTES);
    ps_server_free(s);
    tu_latch_destroy(&f.closed_by_handler);
    free(data);
    free(got);
}
END_TEST

/* ===================================================== event: reset */

/* The peer resets while the server still has megabytes to write: on_close
 * runs once, with PS_CLOSE_ERROR.  (check_features.c covers the same
 * situation in both styles for the server's survival.) */
START_TEST(test_event_peer_reset_during_write)
{
    struct flush f;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char *data = malloc(FLUSH_BYTES);
    int port, fd;
    uint64_t last;

    ck_assert_ptr_nonnull(data);
    tu_fill(data, FLUSH_BYTES, 1);
    memset(&f, 0, sizeof f);
    f.data = data;
    f.keep_open = true;
    atomic_store(&f.reason, -1);
    tu_latch_init(&f.closed_by_handler);
    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.on_data = flush_on_data;
    h.on_close = flush_on_close;
    s = tu_server_start(&cfg, &h, &f, &port);
    fd = connect_small_rcvbuf(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "go\n", 3, tu_ms(1000)), 0);
    ck_assert(tu_latch_wait(&f.closed_by_handler, 1, tu_ms(5000)));
    ck_assert_uint_gt(ldz(&f.pending_at_close), 0);
    ck_assert_int_gt(tu_read_exact(fd, data, 1000, tu_ms(2000)), 0); /* mid-stream */
    tu_close_rst(fd);
    tu_assert_all_closed(s, 1);
    ck_assert_int_eq(ld(&f.on_close_calls), 1);
    ck_assert_int_eq(ld(&f.reason), PS_CLOSE_ERROR);
    ck_assert(TU_STAT_GE(s, io_errors, 1, tu_ms(1000), &last));
    ck_assert_uint_lt(tu_stats(s).bytes_out, FLUSH_BYTES);
    ps_server_free(s);
    tu_latch_destroy(&f.closed_by_handler);
    free(data);
}
END_TEST

/* ===================================================== event: overflow, on_open */

static size_t consume_nothing(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)c;
    (void)data;
    (void)len;
    (void)user;
    return 0;
}

/* Unconsumed input beyond max_input closes the connection (OVERFLOW). */
START_TEST(test_event_overflow)
{
    tu_rec r;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char msg[5000];
    int port, fd, rc;

    tu_rec_init(&r);
    tu_config(&cfg);
    cfg.max_input = 1000;
    tu_rec_handler(&h);
    h.on_data = consume_nothing; /* rec's open/close still count */
    s = tu_server_start(&cfg, &h, &r, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    memset(msg, 'q', sizeof msg);
    rc = tu_write_all(fd, msg, sizeof msg, tu_ms(2000));
    ck_assert_msg(rc == 0 || rc == -EPIPE || rc == -ECONNRESET, "write: %s", ps_strerror(rc));
    rc = tu_expect_eof(fd, tu_ms(3000));
    /* closing with unread input makes the kernel send a reset: either is a close */
    ck_assert_msg(rc == 0 || rc == -ECONNRESET, "client: %s", ps_strerror(rc));
    close(fd);
    tu_rec_wait_closes(&r, 1);
    tu_rec_assert_clean(&r, 1);
    ck_assert_int_eq(ld(&r.reasons[PS_CLOSE_OVERFLOW]), 1);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
}
END_TEST

struct openfail {
    atomic_int opens, datas, closes;
};

static int of_open(ps_conn *c, void *user)
{
    struct openfail *o = user;

    (void)c;
    atomic_fetch_add(&o->opens, 1);
    return -1;
}

static size_t of_data(ps_conn *c, const char *data, size_t len, void *user)
{
    struct openfail *o = user;

    (void)c;
    (void)data;
    atomic_fetch_add(&o->datas, 1);
    return len;
}

static void of_close(ps_conn *c, ps_close_reason why, void *user)
{
    struct openfail *o = user;

    (void)c;
    (void)why;
    atomic_fetch_add(&o->closes, 1);
}

/* on_open refuses: the connection closes, on_data never runs, on_close
 * runs exactly once. */
START_TEST(test_event_open_fails)
{
    struct openfail o = {0};
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd, rc;

    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.on_open = of_open;
    h.on_data = of_data;
    h.on_close = of_close;
    s = tu_server_start(&cfg, &h, &o, &port);
    for (int i = 0; i < 3; i++) {
        fd = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd, 0);
        tu_write_all(fd, "x", 1, tu_ms(1000));
        rc = tu_expect_eof(fd, tu_ms(3000));
        ck_assert_msg(rc == 0 || rc == -ECONNRESET, "client %d: %s", i, ps_strerror(rc));
        close(fd);
    }
    tu_assert_all_closed(s, 3);
    ck_assert_int_eq(ld(&o.opens), 3);
    ck_assert_int_eq(ld(&o.datas), 0);
    ck_assert_int_eq(ld(&o.closes), 3);
    ps_server_free(s);
}
END_TEST

Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("event");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_on_close_once);
    tcase_add_test(tc, test_no_overlap);
    tcase_add_test(tc, test_event_workers_asleep);
    tcase_add_test(tc, test_long_turns_hold_then_release);
    tcase_add_test(tc, test_trial_kept);
    tcase_add_test(tc, test_cpu_idle_follows_affinity);
    tcase_add_test(tc, test_floor_joins_then_lapses);
    tcase_add_test(tc, test_trials_under_load);
    tcase_add_test(tc, test_event_partial_consume);
    tcase_add_test(tc, test_event_close_flushes);
    tcase_add_test(tc, test_event_peer_reset_during_write);
    tcase_add_test(tc, test_event_overflow);
    tcase_add_test(tc, test_event_open_fails);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: MIT */
/*
 * check_anythread.c - calls that other threads make on a connection, raced
 * against its close and reset: resume/pause and posts from any thread, and
 * timers by the thousand.
 *
 * The test threads keep their own table of live connections under one
 * mutex that on_close also takes, so they never name a connection whose
 * on_close has returned - the contract of ps_conn_pause_read/_resume_read.
 * Whatever the library does inside must then never touch freed memory (the
 * ASan and TSan runs of this suite catch that) nor lose a connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

enum { LIVE_MAX = 4096 };

/* The test's own view of the live connections. */
static struct {
    pthread_mutex_t mu; /* guards live, nlive */
    ps_conn *live[LIVE_MAX];
    int nlive;
    atomic_bool stop;
    atomic_long resumes, pauses;
    atomic_int opens, closes, overflow;
} at = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void live_reset(void)
{
    pthread_mutex_lock(&at.mu);
    at.nlive = 0;
    pthread_mutex_unlock(&at.mu);
    atomic_store(&at.stop, false);
    atomic_store(&at.resumes, 0);
    atomic_store(&at.pauses, 0);
    atomic_store(&at.opens, 0);
    atomic_store(&at.closes, 0);
    atomic_store(&at.overflow, 0);
}

static int at_on_open(ps_conn *c, void *user)
{
    (void)user;
    pthread_mutex_lock(&at.mu);
    if (at.nlive < LIVE_MAX)
        at.live[at.nlive++] = c;
    else
        atomic_fetch_add(&at.overflow, 1);
    pthread_mutex_unlock(&at.mu);
    atomic_fetch_add(&at.opens, 1);
    return 0;
}

static void at_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    (void)why;
    (void)user;
    pthread_mutex_lock(&at.mu);
    for (int i = 0; i < at.nlive; i++) {
        if (at.live[i] == c) {
            at.live[i] = at.live[--at.nlive];
            break;
        }
    }
    pthread_mutex_unlock(&at.mu);
    atomic_fetch_add(&at.closes, 1);
}

/* Echo, then stop reading until another thread resumes. */
static size_t at_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    if (ps_conn_send(c, data, len) < 0)
        return len;
    ps_conn_pause_read(c);
    return len;
}

/* Other threads: resume (and now and then pause) random live connections. */
static void *resumer(void *arg)
{
    uint64_t rs = (uint64_t)(uintptr_t)arg;

    while (!atomic_load(&at.stop)) {
        pthread_mutex_lock(&at.mu);
        if (at.nlive > 0) {
            ps_conn *c = at.live[tu_rand(&rs) % (uint64_t)at.nlive];
            if (tu_rand(&rs) % 8 == 0) {
                ps_conn_pause_read(c);
                atomic_fetch_add(&at.pauses, 1);
            } else {
                ps_conn_resume_read(c);
                atomic_fetch_add(&at.resumes, 1);
            }
        }
        pthread_mutex_unlock(&at.mu);
    }
    return NULL;
}

/* A client socket with a 4 KiB receive buffer, so echoed output backs up
 * and the server arms EPOLLOUT while reading is paused. */
static int small_rcvbuf_client(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rcv = 4096;

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* One round: `n` clients each send 1-6 chunks of 100-60,000 bytes (as much
 * as the socket takes now), then reset. */
static void client_round(int port, int n, uint64_t *rs)
{
    static char chunk[60000];
    int fds[128];

    ck_assert_int_le(n, 128);
    for (int i = 0; i < n; i++) {
        fds[i] = small_rcvbuf_client(port);
        ck_assert_int_ge(fds[i], 0);
    }
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLOUT};
        int chunks = 1 + (int)(tu_rand(rs) % 6);
        poll(&p, 1, 1000); /* connected */
        for (int k = 0; k < chunks; k++) {
            size_t len = 100 + tu_rand(rs) % (sizeof chunk - 100);
            if (send(fds[i], chunk, len, MSG_NOSIGNAL) < 0)
                break;
        }
    }
    for (int i = 0; i < n; i++)
        tu_close_rst(fds[i]);
}

/* every client's connection opened and closed (a reset one may still be
 * on its way to on_open when the others are done) */
static bool all_closed(void *arg)
{
    int n = *(int *)arg;

    return atomic_load(&at.opens) == n && atomic_load(&at.closes) == n;
}

/* The reproduction of the use-after-free in any-thread resume: a resume
 * that re-armed a connection whose one-shot event was already collected
 * handed it to a second worker while the first one destroyed it. */
START_TEST(test_resume_races_close_and_reset)
{
    enum { RESUMERS = 2, ROUNDS = 40, PER_ROUND = 100 };
    ps_config cfg;
    ps_handler h = {.on_open = at_on_open, .on_data = at_on_data, .on_close = at_on_close};
    ps_server *s;
    pthread_t tid[RESUMERS];
    uint64_t rs = 12345;
    int port, n = ROUNDS * PER_ROUND;

    live_reset();
    tu_config(&cfg);
    cfg.workers = 4;
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (int i = 0; i < RESUMERS; i++)
        ck_assert_int_eq(pthread_create(&tid[i], NULL, resumer, (void *)(uintptr_t)(i + 1)), 0);
    for (int r = 0; r < ROUNDS; r++)
        client_round(port, PER_ROUND, &rs);
    ck_assert_msg(tu_wait_until(all_closed, &n, tu_ms(10000)), "opens %d closes %d",
                  atomic_load(&at.opens), atomic_load(&at.closes));
    atomic_store(&at.stop, true);
    for (int i = 0; i < RESUMERS; i++)
        pthread_join(tid[i], NULL);
    ck_assert_int_eq(atomic_load(&at.overflow), 0);
    ck_assert_int_eq(atomic_load(&at.opens), ROUNDS * PER_ROUND);
    ck_assert_int_gt(atomic_load(&at.resumes), 0);
    tu_assert_all_closed(s, ROUNDS * PER_ROUND);
    ps_server_free(s);
}
END_TEST

/* ================================================================ posts */

enum { POSTERS = 8, PCONNS = 1000 };

static struct {
    pthread_mutex_t mu; /* guards refs, nrefs */
    ps_conn_ref refs[PCONNS];
    int nrefs;
    atomic_bool stop;
    atomic_long accepted, ran, cancelled, refused, other, order_errors;
} ps = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct post_arg {
    int poster;
    uint64_t seq;
};

/* Per connection: the last sequence number seen from each poster. */
struct post_state {
    uint64_t last[POSTERS];
};

static int post_on_open(ps_conn *c, void *user)
{
    (void)user;
    ps_conn_set_data(c, calloc(1, sizeof(struct post_state)));
    pthread_mutex_lock(&ps.mu);
    if (ps.nrefs < PCONNS)
        ps.refs[ps.nrefs++] = ps_conn_ref_of(c);
    pthread_mutex_unlock(&ps.mu);
    return ps_conn_data(c) ? 0 : -1;
}

static size_t post_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    ps_conn_send(c, data, len);
    return len;
}

static void post_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    (void)why;
    (void)user;
    free(ps_conn_data(c));
}

/* Runs serialized with the connection's callbacks: the per-poster order
 * check needs no lock. */
static void post_fn(ps_conn *c, void *arg, int status)
{
    struct post_arg *a = arg;
    struct post_state *st = ps_conn_data(c);

    if (st && a->seq <= st->last[a->poster])
        atomic_fetch_add(&ps.order_errors, 1);
    if (st)
        st->last[a->poster] = a->seq;
    if (status == 0) {
        atomic_fetch_add(&ps.ran, 1);
        ps_conn_send(c, "posted\n", 7);
    } else {
        atomic_fetch_add(&ps.cancelled, 1);
    }
    free(a);
}

static void *poster(void *arg)
{
    int me = (int)(uintptr_t)arg;
    uint64_t rs = 777 + (uint64_t)me, *seq = calloc(PCONNS, sizeof *seq);

    while (seq && !atomic_load(&ps.stop)) {
        ps_conn_ref r;
        struct post_arg *a;
        int i, rc;
        pthread_mutex_lock(&ps.mu);
        i = ps.nrefs ? (int)(tu_rand(&rs) % (uint64_t)ps.nrefs) : -1;
        if (i >= 0)
            r = ps.refs[i];
        pthread_mutex_unlock(&ps.mu);
        if (i < 0 || !(a = malloc(sizeof *a)))
            continue;
        a->poster = me;
        a->seq = ++seq[i];
        rc = ps_conn_post(r, post_fn, a);
        if (rc == 0) {
            atomic_fetch_add(&ps.accepted, 1);
            continue;
        }
        free(a);
        atomic_fetch_add(rc == -ESHUTDOWN ? &ps.refused : &ps.other, 1);
    }
    free(seq);
    return NULL;
}

static bool posts_settled(void *arg)
{
    (void)arg;
    return atomic_load(&ps.accepted) == atomic_load(&ps.ran) + atomic_load(&ps.cancelled);
}

/* 8 threads post to 1,000 connections while those send, close and reset:
 * every accepted post runs exactly once (or is cancelled once), in order
 * per poster, and posts to closed connections are refused. */
START_TEST(test_posts_race_close_and_reset)
{
    ps_config cfg;
    ps_handler h = {.on_open = post_on_open, .on_data = post_on_data, .on_close = post_on_close};
    ps_server *s;
    pthread_t tid[POSTERS];
    uint64_t rs = 99;
    int port;

    atomic_store(&ps.stop, false);
    ps.nrefs = 0;
    tu_config(&cfg);
    cfg.workers = 4;
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (int i = 0; i < POSTERS; i++)
        ck_assert_int_eq(pthread_create(&tid[i], NULL, poster, (void *)(uintptr_t)i), 0);
    for (int r = 0; r < PCONNS / 100; r++)
        client_round(port, 100, &rs);
    tu_assert_all_closed(s, PCONNS);
    atomic_store(&ps.stop, true);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(tid[i], NULL);
    ck_assert(tu_wait_until(posts_settled, NULL, tu_ms(5000)));
    ck_assert_int_gt(atomic_load(&ps.ran), 0);
    ck_assert_int_gt(atomic_load(&ps.refused), 0);
    ck_assert_int_eq(atomic_load(&ps.other), 0);
    ck_assert_int_eq(atomic_load(&ps.order_errors), 0);
    ck_assert_int_eq(ps.nrefs, PCONNS);
    ps_server_free(s);
}
END_TEST

/* =============================================================== timers */

static atomic_int fired, early;

static int timer_on_open(ps_conn *c, void *user)
{
    int64_t *due = malloc(sizeof *due);
    uint64_t rs = ps_conn_id(c);
    int ms = 1 + (int)(tu_rand(&rs) % 300);

    (void)user;
    if (!due)
        return -1;
    *due = tu_now_ms() + ms;
    ps_conn_set_data(c, due);
    return ps_conn_timer(c, ms);
}

static void timer_on_timer(ps_conn *c, void *user)
{
    (void)user;
    if (tu_now_ms() < *(int64_t *)ps_conn_data(c))
        atomic_fetch_add(&early, 1);
    atomic_fetch_add(&fired, 1);
    ps_conn_send(c, "!", 1);
}

static void timer_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    (void)why;
    (void)user;
    free(ps_conn_data(c));
}

static bool fired_all(void *arg)
{
    return atomic_load(&fired) >= *(int *)arg;
}

/* Many connections, each with a timer 1-300 ms out: every one fires once,
 * none early.  10,000 where the descriptor limit allows (20,000 of them in
 * this process), 2,000 under the sanitizers. */
START_TEST(test_many_timers)
{
    ps_config cfg;
    ps_handler h = {.on_open = timer_on_open, .on_data = post_on_data, .on_timer = timer_on_timer,
                    .on_close = timer_on_close};
    ps_server *s;
    struct rlimit rl = {24576, 24576};
    int port, n = 10000, *fds;
    char b;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    n = 2000;
#endif
    setrlimit(RLIMIT_NOFILE, &rl); /* root may raise the hard limit */
    if (tu_raise_nofile() < 2L * n + 256)
        n = (int)((tu_raise_nofile() - 256) / 2);
    fds = calloc((size_t)n, sizeof *fds);
    ck_assert_ptr_nonnull(fds);
    atomic_store(&fired, 0);
    atomic_store(&early, 0);
    tu_config(&cfg);
    cfg.backlog = 4096;
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (int i = 0; i < n; i++) {
        fds[i] = tu_connect(port, tu_ms(5000));
        ck_assert_msg(fds[i] >= 0, "connection %d: %s", i, ps_strerror(fds[i]));
    }
    ck_assert_msg(tu_wait_until(fired_all, &n, tu_ms(20000)), "%d of %d timers fired",
                  atomic_load(&fired), n);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(tu_read_exact(fds[i], &b, 1, tu_ms(5000)), 1);
    ck_assert_int_eq(atomic_load(&fired), n);
    ck_assert_int_eq(atomic_load(&early), 0);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    tu_assert_all_closed(s, (uint64_t)n);
    ps_server_free(s);
    free(fds);
}
END_TEST

Suite *anythread_suite(void)
{
    Suite *s = suite_create("anythread");
    TCase *tc = tcase_create("resume");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_resume_races_close_and_reset);
    tcase_add_test(tc, test_posts_race_close_and_reset);
    tcase_add_test(tc, test_many_timers);
    suite_add_tcase(s, tc);
    return s;
}

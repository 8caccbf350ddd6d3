/*
 * check_anythread.c - calls that other threads make on a connection, raced
 * against its close and reset: resume/pause from any thread.
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

static bool all_closed(void *arg)
{
    (void)arg;
    return atomic_load(&at.closes) == atomic_load(&at.opens);
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
    int port;

    live_reset();
    tu_config(&cfg);
    cfg.workers = 4;
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (int i = 0; i < RESUMERS; i++)
        ck_assert_int_eq(pthread_create(&tid[i], NULL, resumer, (void *)(uintptr_t)(i + 1)), 0);
    for (int r = 0; r < ROUNDS; r++)
        client_round(port, PER_ROUND, &rs);
    ck_assert_msg(tu_wait_until(all_closed, NULL, tu_ms(10000)), "opens %d closes %d",
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

Suite *anythread_suite(void)
{
    Suite *s = suite_create("anythread");
    TCase *tc = tcase_create("resume");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_resume_races_close_and_reset);
    suite_add_tcase(s, tc);
    return s;
}

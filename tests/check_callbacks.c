/* SPDX-License-Identifier: MIT */
/*
 * check_callbacks.c - what an event handler can do beyond on_data: posts
 * to a connection from elsewhere, its timer, half-close in both directions,
 * on_drain, and resume offering held input again.
 *
 * Handlers never call ck_assert; they record what they saw in `cb`, which
 * the test thread asserts on.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

static struct {
    pthread_mutex_t mu; /* guards ref, have_ref */
    ps_conn_ref ref;
    bool have_ref;
    atomic_int opens, closes, datas, drains, eofs, ticks, early, posts_ran, posts_cancelled;
    atomic_int reasons[8];
    atomic_long bytes_in;
    int64_t due;        /* when the tick was asked for (handler thread only) */
} cb = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void cb_reset(void)
{
    pthread_mutex_t mu = cb.mu;

    memset(&cb, 0, sizeof cb);
    cb.mu = mu;
}

static bool closes_reach(void *arg)
{
    return atomic_load(&cb.closes) >= *(int *)arg;
}

static void wait_closes(int n)
{
    ck_assert_msg(tu_wait_until(closes_reach, &n, tu_ms(5000)), "closes %d, want %d",
                  atomic_load(&cb.closes), n);
}

static int keep_ref(ps_conn *c, void *user)
{
    (void)user;
    pthread_mutex_lock(&cb.mu);
    cb.ref = ps_conn_ref_of(c);
    cb.have_ref = true;
    pthread_mutex_unlock(&cb.mu);
    atomic_fetch_add(&cb.opens, 1);
    return 0;
}

static void count_close(ps_conn *c, ps_close_reason why, void *user)
{
    (void)c;
    (void)user;
    atomic_fetch_add(&cb.reasons[why], 1);
    atomic_fetch_add(&cb.closes, 1);
}

static bool have_ref(void *arg)
{
    bool ok;

    (void)arg;
    pthread_mutex_lock(&cb.mu);
    ok = cb.have_ref;
    pthread_mutex_unlock(&cb.mu);
    return ok;
}

static ps_conn_ref wait_ref(void)
{
    ps_conn_ref r;

    ck_assert(tu_wait_until(have_ref, NULL, tu_ms(3000)));
    pthread_mutex_lock(&cb.mu);
    r = cb.ref;
    cb.have_ref = false;
    pthread_mutex_unlock(&cb.mu);
    return r;
}

/* ================================================================ posts */

/* arg: a NUL-terminated line, freed here whether it ran or not. */
static void post_line(ps_conn *c, void *arg, int status)
{
    if (status == 0) {
        ps_conn_send(c, arg, strlen(arg));
        atomic_fetch_add(&cb.posts_ran, 1);
    } else {
        atomic_fetch_add(&cb.posts_cancelled, 1);
    }
    free(arg);
}

static size_t swallow(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)c;
    (void)data;
    (void)user;
    atomic_fetch_add(&cb.bytes_in, (long)len);
    return len;
}

/* A subscriber that only ever receives: posts from another thread reach it
 * in order, count as output for the idle timeout (it is not closed as idle
 * while messages flow) and in bytes_out; once they stop, it is.  After
 * on_close, posting to the reference fails with -ESHUTDOWN, also once its
 * record serves a new connection. */
START_TEST(test_post_from_another_thread)
{
    ps_config cfg;
    ps_handler h = {.on_open = keep_ref, .on_data = swallow, .on_close = count_close};
    ps_server *s;
    ps_conn_ref r, r2;
    int port, fd, fd2;
    char line[64], want[64];
    uint64_t out0;

    cb_reset();
    tu_config(&cfg);
    cfg.idle_timeout_ms = tu_ms(600);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    r = wait_ref();
    out0 = tu_stats(s).bytes_out;
    for (int i = 0; i < 8; i++) { /* 8 x 200 ms: well past the idle timeout */
        char *msg = malloc(32);
        ck_assert_ptr_nonnull(msg);
        snprintf(msg, 32, "message %d\n", i);
        ck_assert_int_eq(ps_conn_post(r, post_line, msg), 0);
        snprintf(want, sizeof want, "message %d\n", i);
        ck_assert_int_eq(tu_read_line(fd, line, sizeof line, tu_ms(2000)), (ssize_t)strlen(want));
        ck_assert_str_eq(line, want);
        {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            ck_assert_int_eq(poll(&p, 1, tu_ms(200)), 0); /* the pace; nothing else comes */
        }
    }
    ck_assert_int_eq(atomic_load(&cb.closes), 0);
    ck_assert_uint_ge(tu_stats(s).bytes_out - out0, 8 * 10);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0); /* now idle: closed */
    wait_closes(1);
    ck_assert_int_eq(atomic_load(&cb.reasons[PS_CLOSE_TIMEOUT]), 1);
    ck_assert_int_eq(ps_conn_post(r, post_line, NULL), -ESHUTDOWN);

    /* the same record now serves another connection: the old ref still fails */
    fd2 = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd2, 0);
    r2 = wait_ref();
    ck_assert_int_eq(ps_conn_post(r, post_line, NULL), -ESHUTDOWN);
    ck_assert_int_eq(ps_conn_post(r2, post_line, strdup("hi\n")), 0);
    ck_assert_int_eq(tu_read_line(fd2, line, sizeof line, tu_ms(2000)), 3);
    ck_assert_int_eq(ps_conn_post(r2, NULL, NULL), -EINVAL);
    close(fd);
    close(fd2);
    ps_server_free(s);
    ck_assert_int_eq(atomic_load(&cb.posts_ran), 9);
    ck_assert_int_eq(atomic_load(&cb.posts_cancelled), 0);
}
END_TEST

/* A connection that posts to itself and closes in the same callback, with
 * no lingering: it ends in that turn, so the posts are cancelled - each
 * runs once with -ECANCELED, before on_close. */
static size_t post_then_close(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)data;
    (void)user;
    for (int i = 0; i < 3; i++)
        if (ps_conn_post(ps_conn_ref_of(c), post_line, strdup("never\n")) != 0)
            atomic_fetch_add(&cb.early, 1);
    ps_conn_close(c);
    return len;
}

static void close_checks_cancelled(ps_conn *c, ps_close_reason why, void *user)
{
    if (atomic_load(&cb.posts_cancelled) != 3)
        atomic_fetch_add(&cb.early, 1);
    count_close(c, why, user);
}

START_TEST(test_post_cancelled_at_close)
{
    ps_config cfg;
    ps_handler h = {.on_data = post_then_close, .on_close = close_checks_cancelled};
    ps_server *s;
    int port, fd;

    cb_reset();
    tu_config(&cfg);
    cfg.linger_ms = 0;
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "x", 1, tu_ms(2000)), 0);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
    wait_closes(1);
    ck_assert_int_eq(atomic_load(&cb.posts_cancelled), 3);
    ck_assert_int_eq(atomic_load(&cb.posts_ran), 0);
    ck_assert_int_eq(atomic_load(&cb.early), 0);
    close(fd);
    ps_server_free(s);
}
END_TEST

/* max_posts: the mailbox is bounded. */
static void post_noop(ps_conn *c, void *arg, int status)
{
    (void)c;
    (void)arg;
    (void)status;
}

static void block_until_released(ps_conn *c, void *arg, int status)
{
    (void)c;
    (void)status;
    tu_latch_add(arg, 1);        /* "running" */
    tu_latch_wait(arg, 2, 5000); /* released by the test thread */
}

START_TEST(test_max_posts)
{
    ps_config cfg;
    ps_handler h = {.on_open = keep_ref, .on_data = swallow, .on_close = count_close};
    ps_server *s;
    ps_conn_ref r;
    tu_latch l;
    int port, fd;

    cb_reset();
    tu_latch_init(&l);
    tu_config(&cfg);
    cfg.max_posts = 4;
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    r = wait_ref();
    ck_assert_int_eq(ps_conn_post(r, block_until_released, &l), 0);
    ck_assert(tu_latch_wait(&l, 1, tu_ms(2000))); /* its owner is busy in it */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(ps_conn_post(r, post_noop, NULL), 0);
    ck_assert_int_eq(ps_conn_post(r, post_noop, NULL), -ENOBUFS);
    tu_latch_add(&l, 1);
    close(fd);
    wait_closes(1);
    ps_server_free(s);
    tu_latch_destroy(&l);
}
END_TEST

/* ================================================================ timers */

static int tick_open(ps_conn *c, void *user)
{
    (void)user;
    cb.due = tu_now_ms() + 50;
    ps_conn_timer(c, 50);
    return 0;
}

/* Three ticks 50 ms apart, never early; "cancel" stops them; "replace"
 * sets 400 ms and then 30 ms: only the 30 ms one fires. */
static void tick(ps_conn *c, void *user)
{
    char msg[32];
    int n = atomic_fetch_add(&cb.ticks, 1) + 1;

    (void)user;
    if (tu_now_ms() < cb.due)
        atomic_fetch_add(&cb.early, 1);
    snprintf(msg, sizeof msg, "tick %d\n", n);
    ps_conn_send(c, msg, strlen(msg));
    if (n < 3) {
        cb.due = tu_now_ms() + 50;
        ps_conn_timer(c, 50);
    }
}

static size_t tick_cmd(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    if (len >= 6 && memcmp(data, "cancel", 6) == 0) {
        ps_conn_timer(c, 20);
        ps_conn_timer(c, -1);
        ps_conn_send(c, "cancelled\n", 10);
    } else if (len >= 7 && memcmp(data, "replace", 7) == 0) {
        ps_conn_timer(c, 400);
        cb.due = tu_now_ms() + 30;
        ps_conn_timer(c, 30);
    }
    return len;
}

START_TEST(test_conn_timer)
{
    ps_config cfg;
    ps_handler h = {.on_open = tick_open, .on_data = tick_cmd, .on_timer = tick,
                    .on_close = count_close};
    ps_server *s;
    int port, fd;
    char line[32];
    int64_t t0, t;

    cb_reset();
    tu_config(&cfg);
    s = tu_server_start(&cfg, &h, NULL, &port);
    t0 = tu_now_ms();
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    for (int i = 1; i <= 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "tick %d\n", i);
        ck_assert_int_gt(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 0);
        ck_assert_str_eq(line, want);
    }
    t = tu_now_ms() - t0;
    ck_assert_int_ge(t, 150);
    ck_assert_int_eq(atomic_load(&cb.early), 0);
    /* cancel: the "cancelled" reply comes, then a timer that fires later
     * ("replace", 30 ms) - and nothing from the cancelled 20 ms one */
    ck_assert_int_eq(tu_write_all(fd, "cancel", 6, tu_ms(2000)), 0);
    ck_assert_int_gt(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 0);
    ck_assert_str_eq(line, "cancelled\n");
    ck_assert_int_eq(tu_write_all(fd, "replace", 7, tu_ms(2000)), 0);
    t0 = tu_now_ms();
    ck_assert_int_gt(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 0);
    ck_assert_str_eq(line, "tick 4\n");
    ck_assert_int_lt(tu_now_ms() - t0, 350); /* the 30 ms one, not the 400 ms */
    ck_assert_int_eq(atomic_load(&cb.early), 0);
    close(fd);
    wait_closes(1);
    ck_assert_int_eq(atomic_load(&cb.ticks), 4);
    ps_server_free(s);
}
END_TEST

/* ---------------------------------------------------------- server timers */

static struct {
    atomic_int runs, overlaps, running, early;
    int64_t not_before; /* written before start, read by fn */
    int stop_after;     /* fn frees its own timer after this many runs */
} st;

static void periodic_fn(ps_timer *t, void *arg)
{
    int n;

    (void)arg;
    if (atomic_fetch_add(&st.running, 1) != 0)
        atomic_fetch_add(&st.overlaps, 1);
    if (tu_now_ms() < st.not_before)
        atomic_fetch_add(&st.early, 1);
    n = atomic_fetch_add(&st.runs, 1) + 1;
    {
        struct pollfd p = {.fd = -1};
        poll(&p, 0, 30); /* slower than the 10 ms period: expiries must not overlap */
    }
    atomic_fetch_sub(&st.running, 1);
    if (n == st.stop_after)
        ps_timer_free(t); /* from its own run: freed once it returns */
}

static void noop_serve(ps_conn *c, void *user)
{
    (void)c;
    (void)user;
}

/* n runs done, and none running */
static bool runs_reach(void *arg)
{
    return atomic_load(&st.runs) >= *(int *)arg && atomic_load(&st.running) == 0;
}

/* A periodic server timer faster than its function: runs one at a time,
 * never early, and frees itself; a one-shot fires once; a stopped one never
 * does; the rest are freed by ps_server_free.  Both styles. */
START_TEST(test_server_timers)
{
    bool event = _i == 1;
    ps_config cfg;
    ps_handler h = {0};
    ps_server *s;
    ps_timer *periodic, *once, *stopped, *left;
    int port, five = 5, six = 6;

    memset(&st, 0, sizeof st);
    if (event)
        h.on_data = swallow;
    else
        h.serve = noop_serve;
    tu_config(&cfg);
    s = tu_server_start(&cfg, &h, NULL, &port);
    ck_assert_ptr_null(ps_timer_new(s, NULL, NULL));
    periodic = ps_timer_new(s, periodic_fn, NULL);
    once = ps_timer_new(s, periodic_fn, NULL);
    stopped = ps_timer_new(s, periodic_fn, NULL);
    left = ps_timer_new(s, periodic_fn, NULL);
    ck_assert(periodic && once && stopped && left);
    ck_assert_int_eq(ps_timer_start(periodic, -1, 0), -EINVAL);
    st.stop_after = 5;
    st.not_before = tu_now_ms() + 20;
    ck_assert_int_eq(ps_timer_start(stopped, 20, 0), 0);
    ps_timer_stop(stopped);
    ck_assert_int_eq(ps_timer_start(periodic, 20, 10), 0);
    ck_assert(tu_wait_until(runs_reach, &five, tu_ms(5000)));
    /* it freed itself at 5; then the one-shot makes 6, and nothing more comes */
    ck_assert_int_eq(ps_timer_start(once, 0, 0), 0);
    ck_assert(tu_wait_until(runs_reach, &six, tu_ms(5000)));
    ck_assert_int_eq(ps_timer_start(left, 10000, 0), 0); /* never fires: freed with the server */
    ps_timer_free(NULL);
    {
        struct pollfd p = {.fd = -1};
        poll(&p, 0, tu_ms(100)); /* room for a wrong extra run to show */
    }
    ck_assert_int_eq(atomic_load(&st.runs), 6);
    ck_assert_int_eq(atomic_load(&st.overlaps), 0);
    ck_assert_int_eq(atomic_load(&st.early), 0);
    ps_server_free(s);
}
END_TEST

/* ============================================================ half-close */

/* Echo; at the peer's EOF send 1 MiB more, then shut our side. */
static size_t echo_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    atomic_fetch_add(&cb.bytes_in, (long)len);
    ps_conn_send(c, data, len);
    return len;
}

static char *tail_mib;

static void send_tail(ps_conn *c, void *user)
{
    (void)user;
    atomic_fetch_add(&cb.eofs, 1);
    ps_conn_send(c, tail_mib, 1 << 20);
    ps_conn_shutdown_write(c);
    if (ps_conn_send(c, "x", 1) != -EPIPE) /* nothing after the shutdown */
        atomic_fetch_add(&cb.early, 1);
}

struct sender {
    int fd;
    const char *buf;
    size_t len;
    int rc;
};

/* Send everything, then half-close (a thread, so the reader never blocks it). */
static void *send_then_shut(void *arg)
{
    struct sender *x = arg;

    x->rc = tu_write_all(x->fd, x->buf, x->len, tu_ms(10000));
    if (x->rc == 0 && shutdown(x->fd, SHUT_WR) < 0)
        x->rc = -errno;
    return NULL;
}

/* The client half-closes first: its 1 MiB comes back, then the 1 MiB the
 * handler sends after on_eof, then the server's FIN. */
START_TEST(test_half_close_client_first)
{
    enum { MIB = 1 << 20 };
    ps_config cfg;
    ps_handler h = {.on_data = echo_data, .on_eof = send_tail, .on_close = count_close};
    ps_server *s;
    pthread_t tid;
    struct sender x;
    int port, fd;
    char *out = malloc(MIB), *in = malloc(2 * MIB);

    ck_assert(out && in);
    tail_mib = malloc(MIB);
    ck_assert_ptr_nonnull(tail_mib);
    tu_fill(out, MIB, 1);
    tu_fill(tail_mib, MIB, 2);
    cb_reset();
    tu_config(&cfg);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    x = (struct sender){.fd = fd, .buf = out, .len = MIB};
    ck_assert_int_eq(pthread_create(&tid, NULL, send_then_shut, &x), 0);
    ck_assert_int_eq(tu_read_exact(fd, in, 2 * MIB, tu_ms(10000)), 2 * MIB);
    pthread_join(tid, NULL);
    ck_assert_int_eq(x.rc, 0);
    ck_assert(memcmp(in, out, MIB) == 0);
    ck_assert(memcmp(in + MIB, tail_mib, MIB) == 0);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
    wait_closes(1);
    ck_assert_int_eq(atomic_load(&cb.eofs), 1);
    ck_assert_int_eq(atomic_load(&cb.early), 0);
    ck_assert_int_eq(atomic_load(&cb.reasons[PS_CLOSE_EOF]), 1);
    close(fd);
    ps_server_free(s);
    free(out);
    free(in);
    free(tail_mib);
}
END_TEST

/* "BYE\n": answer and shut our side; keep counting what the peer sends. */
static size_t bye_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    if (atomic_fetch_add(&cb.bytes_in, (long)len) == 0 && len >= 4 && memcmp(data, "BYE\n", 4) == 0) {
        ps_conn_send(c, "bye\n", 4);
        ps_conn_shutdown_write(c);
    }
    return len;
}

static void count_eof(ps_conn *c, void *user)
{
    (void)c;
    (void)user;
    atomic_fetch_add(&cb.eofs, 1);
}

/* The server half-closes first: the client reads the answer and EOF, then
 * sends 1 MiB, all of which the handler still receives; the client's FIN
 * then ends the connection (both sides done: PS_CLOSE_EOF). */
START_TEST(test_half_close_server_first)
{
    enum { MIB = 1 << 20 };
    ps_config cfg;
    ps_handler h = {.on_data = bye_data, .on_eof = count_eof, .on_close = count_close};
    ps_server *s;
    int port, fd;
    char line[16], *out = malloc(MIB);

    ck_assert_ptr_nonnull(out);
    tu_fill(out, MIB, 3);
    cb_reset();
    tu_config(&cfg);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "BYE\n", 4, tu_ms(2000)), 0);
    ck_assert_int_eq(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 4);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
    ck_assert_int_eq(tu_write_all(fd, out, MIB, tu_ms(10000)), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    wait_closes(1);
    ck_assert_int_eq(atomic_load(&cb.bytes_in), 4 + MIB);
    ck_assert_int_eq(atomic_load(&cb.eofs), 1);
    ck_assert_int_eq(atomic_load(&cb.reasons[PS_CLOSE_EOF]), 1);
    close(fd);
    ps_server_free(s);
    free(out);
}
END_TEST

/* ============================================================ drain, resume */

static int blast_open(ps_conn *c, void *user)
{
    int snd = 16 << 10; /* so that most of it must wait in user space */

    (void)user;
    setsockopt(ps_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
    ps_conn_send(c, tail_mib, 4 << 20);
    return 0;
}

static void count_drain(ps_conn *c, void *user)
{
    (void)c;
    (void)user;
    atomic_fetch_add(&cb.drains, 1);
}

static bool one_drain(void *arg)
{
    (void)arg;
    return atomic_load(&cb.drains) >= 1;
}

/* 4 MiB sent at once against high water 64 KiB: on_drain comes once the
 * client has read enough, and not before. */
START_TEST(test_on_drain)
{
    enum { TOTAL = 4 << 20 };
    ps_config cfg;
    ps_handler h = {.on_open = blast_open, .on_data = swallow, .on_drain = count_drain,
                    .on_close = count_close};
    ps_server *s;
    int port, fd;
    char *in = malloc(TOTAL);

    tail_mib = malloc(TOTAL);
    ck_assert(in && tail_mib);
    tu_fill(tail_mib, TOTAL, 4);
    cb_reset();
    tu_config(&cfg);
    cfg.out_high_water = 64 << 10;
    cfg.out_low_water = 16 << 10;
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_read_exact(fd, in, TOTAL, tu_ms(10000)), TOTAL);
    ck_assert(memcmp(in, tail_mib, TOTAL) == 0);
    /* the last flush and on_drain may come just after the client has it all */
    ck_assert(tu_wait_until(one_drain, NULL, tu_ms(2000)));
    ck_assert_int_eq(atomic_load(&cb.drains), 1);
    close(fd);
    wait_closes(1);
    ps_server_free(s);
    free(in);
    free(tail_mib);
}
END_TEST

/* "HOLD" is not consumed and pauses reading; a resume from another thread
 * offers it again at once - no new bytes needed - and it is answered. */
static size_t hold_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    if (atomic_load(&cb.datas) == 0) {
        ps_conn_pause_read(c);
        atomic_fetch_add(&cb.datas, 1); /* after the pause: the test resumes on seeing it */
        return 0;
    }
    atomic_fetch_add(&cb.datas, 1);
    ps_conn_send(c, data, len);
    return len;
}

static bool first_data(void *arg)
{
    (void)arg;
    return atomic_load(&cb.datas) >= 1;
}

START_TEST(test_resume_offers_held_input)
{
    ps_config cfg;
    ps_handler h = {.on_open = keep_ref, .on_data = hold_data, .on_close = count_close};
    ps_server *s;
    int port, fd;
    char line[16];
    ps_conn_ref r;

    cb_reset();
    tu_config(&cfg);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    r = wait_ref();
    ck_assert_int_eq(tu_write_all(fd, "HOLD\n", 5, tu_ms(2000)), 0);
    ck_assert(tu_wait_until(first_data, NULL, tu_ms(2000)));
    ps_conn_resume_read(r.conn); /* this thread; on_close cannot have run */
    ck_assert_int_eq(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 5);
    ck_assert_str_eq(line, "HOLD\n");
    ck_assert_int_eq(atomic_load(&cb.datas), 2);
    close(fd);
    wait_closes(1);
    ps_server_free(s);
}
END_TEST

/* A handler with on_eof that never closes after the peer's EOF: the idle
 * timeout and the drain deadline still end the connection (they shut the
 * socket down and the turn must finish it, not wait for the handler). */
static void keep_open_eof(ps_conn *c, void *user)
{
    (void)c;
    (void)user;
    atomic_fetch_add(&cb.eofs, 1);
}

static bool one_eof(void *arg)
{
    (void)arg;
    return atomic_load(&cb.eofs) >= 1;
}

START_TEST(test_half_closed_ends_on_timeout_and_drain)
{
    bool drain = _i == 1;
    ps_config cfg;
    ps_handler h = {.on_data = swallow, .on_eof = keep_open_eof, .on_close = count_close};
    ps_server *s;
    int port, fd;

    cb_reset();
    tu_config(&cfg);
    if (drain)
        cfg.drain_timeout_ms = tu_ms(200);
    else
        cfg.idle_timeout_ms = tu_ms(300);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "x", 1, tu_ms(2000)), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert(tu_wait_until(one_eof, NULL, tu_ms(2000)));
    if (drain) {
        ps_server_stop(s);
        ck_assert_msg(tu_server_wait(s, tu_ms(5000)) == 0, "the drain never ended");
        ck_assert_int_eq(atomic_load(&cb.reasons[PS_CLOSE_SHUTDOWN]), 1);
    } else {
        wait_closes(1);
        ck_assert_int_eq(atomic_load(&cb.reasons[PS_CLOSE_TIMEOUT]), 1);
    }
    close(fd);
    ps_server_free(s);
}
END_TEST

/* =============================================================== abort */

static size_t abort_data(ps_conn *c, const char *data, size_t len, void *user)
{
    int snd = 16 << 10;

    (void)data;
    (void)user;
    setsockopt(ps_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
    ps_conn_send(c, tail_mib, 1 << 20); /* mostly pending: the abort drops it */
    ps_conn_abort(c);
    if (ps_conn_send(c, "x", 1) != -EPIPE)
        atomic_fetch_add(&cb.early, 1);
    return len;
}

static void abort_serve(ps_conn *c, void *user)
{
    char b[16];

    (void)user;
    if (ps_conn_timer(c, 10) != -EINVAL) /* no timers without a mailbox turn */
        atomic_fetch_add(&cb.early, 1);
    ps_conn_resume_read(c); /* a no-op here */
    if (ps_conn_read(c, b, sizeof b) > 0) {
        ps_conn_abort(c);
        if (ps_conn_read(c, b, sizeof b) != 0)
            atomic_fetch_add(&cb.early, 1);
        ps_conn_park(c); /* must not park an aborted connection */
    }
    atomic_fetch_add(&cb.closes, 1);
}

/* ps_conn_abort: the peer sees a reset, not an EOF after the pending
 * output; event style reports PS_CLOSE_LOCAL. */
START_TEST(test_abort)
{
    bool event = _i == 1;
    ps_config cfg;
    ps_handler h = {0};
    ps_server *s;
    int port, fd, rc;
    char buf[65536];
    ssize_t n;
    size_t got = 0;

    cb_reset();
    tail_mib = calloc(1, 1 << 20);
    ck_assert_ptr_nonnull(tail_mib);
    if (event) {
        h.on_data = abort_data;
        h.on_close = count_close;
    } else {
        h.serve = abort_serve;
    }
    tu_config(&cfg);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "go\n", 3, tu_ms(2000)), 0);
    wait_closes(1);
    /* whatever arrived before the reset, then the reset itself */
    rc = 0;
    for (int64_t end = tu_now_ms() + tu_ms(3000); tu_now_ms() < end;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        rc = n == 0 ? 0 : -errno;
        break;
    }
    ck_assert_msg(rc == -ECONNRESET, "the peer saw %d after %zu bytes, not a reset", rc, got);
    ck_assert_uint_lt(got, 1 << 20);
    ck_assert_int_eq(atomic_load(&cb.early), 0);
    if (event)
        ck_assert_int_eq(atomic_load(&cb.reasons[PS_CLOSE_LOCAL]), 1);
    close(fd);
    ps_server_free(s);
    free(tail_mib);
}
END_TEST

Suite *callbacks_suite(void)
{
    Suite *s = suite_create("callbacks");
    TCase *post = tcase_create("post");
    TCase *timer = tcase_create("timer");
    TCase *half = tcase_create("halfclose");

    tcase_set_timeout(post, 30);
    tcase_set_timeout(timer, 30);
    tcase_set_timeout(half, 30);
    tcase_add_test(post, test_post_from_another_thread);
    tcase_add_test(post, test_post_cancelled_at_close);
    tcase_add_test(post, test_max_posts);
    tcase_add_test(timer, test_conn_timer);
    tcase_add_loop_test(timer, test_server_timers, 0, 2);
    tcase_add_test(half, test_half_close_client_first);
    tcase_add_test(half, test_half_close_server_first);
    tcase_add_test(half, test_on_drain);
    tcase_add_test(half, test_resume_offers_held_input);
    tcase_add_loop_test(half, test_abort, 0, 2);
    tcase_add_loop_test(half, test_half_closed_ends_on_timeout_and_drain, 0, 2);
    suite_add_tcase(s, post);
    suite_add_tcase(s, timer);
    suite_add_tcase(s, half);
    return s;
}

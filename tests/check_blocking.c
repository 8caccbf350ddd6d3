/* SPDX-License-Identifier: MIT */
/*
 * check_blocking.c - the blocking handler API against a live in-process
 * server on 127.0.0.1:0: half-close from the handler, -EPIPE to a peer that
 * left (no SIGPIPE), -ETIMEDOUT from per-call and configured timeouts,
 * read_exact at end of stream, parking (a parked connection frees its
 * worker), connection accessors.
 *
 * Handler threads never call ck_assert; they record what they saw and the
 * test thread asserts.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

/* atomic loads with short names, so failure messages stay readable */
static int ld(atomic_int *p)
{
    return atomic_load(p);
}

/* A blocking handler half-closes first: the client sees EOF and can still
 * send; the handler reads what it sent. */
struct hc {
    tu_latch done;
    ssize_t got;
    int shut_rc;
    char buf[16];
};

static void hc_serve(ps_conn *c, void *user)
{
    struct hc *hc = user;

    ps_conn_write_all(c, "bye\n", 4);
    hc->shut_rc = ps_conn_shutdown_write(c);
    hc->got = ps_conn_read_exact(c, hc->buf, 5);
    tu_latch_add(&hc->done, 1);
}

START_TEST(test_server_half_close)
{
    struct hc hc;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char buf[8] = {0};
    int port, fd;

    memset(&hc, 0, sizeof hc);
    tu_latch_init(&hc.done);
    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.serve = hc_serve;
    s = tu_server_start(&cfg, &h, &hc, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_read_exact(fd, buf, 4, tu_ms(2000)), 4);
    ck_assert_str_eq(buf, "bye\n");
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
    ck_assert_int_eq(tu_write_all(fd, "hello", 5, tu_ms(2000)), 0);
    ck_assert(tu_latch_wait(&hc.done, 1, tu_ms(3000)));
    ck_assert_int_eq(hc.shut_rc, 0);
    ck_assert_int_eq(hc.got, 5);
    ck_assert(memcmp(hc.buf, "hello", 5) == 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
    tu_latch_destroy(&hc.done);
}
END_TEST

/* ===================================================== blocking: EPIPE */

struct epipe {
    tu_latch got_byte, client_gone, done;
    int rc;
    int writes;
};

static void epipe_serve(ps_conn *c, void *user)
{
    struct epipe *e = user;
    static const char chunk[16384];
    char b;

    if (ps_conn_read(c, &b, 1) != 1) {
        e->rc = -1000;
        tu_latch_add(&e->done, 1);
        return;
    }
    tu_latch_add(&e->got_byte, 1);
    tu_latch_wait(&e->client_gone, 1, tu_ms(5000));
    /* the first writes may land in the socket buffer; the peer answers
     * them with a reset, and then writing must fail with -EPIPE */
    ps_conn_set_timeout(c, tu_ms(5000));
    for (e->writes = 0; e->writes < 4000; e->writes++) {
        e->rc = ps_conn_write_all(c, chunk, sizeof chunk);
        if (e->rc != 0)
            break;
    }
    tu_latch_add(&e->done, 1);
}

START_TEST(test_epipe)
{
    bool rst = _i;
    struct epipe e;
    struct sigaction sa;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd;

    /* the test relies on SIGPIPE's default action (it would kill us) */
    ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
    ck_assert(sa.sa_handler == SIG_DFL);
    memset(&e, 0, sizeof e);
    tu_latch_init(&e.got_byte);
    tu_latch_init(&e.client_gone);
    tu_latch_init(&e.done);
    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.serve = epipe_serve;
    s = tu_server_start(&cfg, &h, &e, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "x", 1, tu_ms(1000)), 0);
    ck_assert(tu_latch_wait(&e.got_byte, 1, tu_ms(3000)));
    if (rst)
        tu_close_rst(fd);
    else
        close(fd);
    tu_latch_add(&e.client_gone, 1);
    ck_assert(tu_latch_wait(&e.done, 1, tu_ms(10000)));
    ck_assert_msg(e.rc == -EPIPE, "write_all to a gone peer (%s) returned %d (%s) after %d writes",
                  rst ? "reset" : "closed", e.rc, ps_strerror(e.rc), e.writes);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
    /* and the library left SIGPIPE alone */
    ck_assert_int_eq(sigaction(SIGPIPE, NULL, &sa), 0);
    ck_assert(sa.sa_handler == SIG_DFL);
    tu_latch_destroy(&e.got_byte);
    tu_latch_destroy(&e.client_gone);
    tu_latch_destroy(&e.done);
}
END_TEST

/* ===================================================== blocking: timeouts */

struct tmo {
    int variant; /* 0: set_timeout + read, 1: io_timeout_ms + read, 2: read_exact,
                    3: write_all to a peer that does not read */
    tu_latch done;
    ssize_t rc;
    int64_t elapsed_ms;
};

static void tmo_serve(ps_conn *c, void *user)
{
    struct tmo *t = user;
    char buf[16];
    int64_t t0;

    if (t->variant != 1)
        ps_conn_set_timeout(c, 100);
    t0 = tu_now_ms();
    if (t->variant == 3) {
        enum { BIG = 32 << 20 };
        char *big = calloc(1, BIG);

        t->rc = big ? ps_conn_write_all(c, big, BIG) : -ENOMEM;
        free(big);
    } else if (t->variant == 2) {
        t->rc = ps_conn_read_exact(c, buf, sizeof buf);
    } else {
        t->rc = ps_conn_read(c, buf, sizeof buf);
    }
    t->elapsed_ms = tu_now_ms() - t0;
    tu_latch_add(&t->done, 1);
}

/* Per-call timeouts: a silent peer, a trickling peer, a peer that never
 * reads: -ETIMEDOUT after about 100 ms, counted in stats.timeouts. */
START_TEST(test_io_timeout)
{
    struct tmo t;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd;

    memset(&t, 0, sizeof t);
    t.variant = _i;
    tu_latch_init(&t.done);
    tu_config(&cfg);
    if (t.variant == 1)
        cfg.io_timeout_ms = 100;
    memset(&h, 0, sizeof h);
    h.serve = tmo_serve;
    s = tu_server_start(&cfg, &h, &t, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    if (t.variant == 2) /* a trickle: 3 of the 16 bytes wanted */
        ck_assert_int_eq(tu_write_all(fd, "abc", 3, tu_ms(1000)), 0);
    ck_assert(tu_latch_wait(&t.done, 1, tu_ms(5000)));
    ck_assert_msg(t.rc == -ETIMEDOUT, "variant %d: rc = %zd (%s)", t.variant, t.rc,
                  ps_strerror((int)t.rc));
    ck_assert_int_ge(t.elapsed_ms, 90);
    ck_assert_int_lt(t.elapsed_ms, tu_ms(2000));
    /* serve returned: the framework closes the connection */
    if (t.variant != 3)
        ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ck_assert_uint_ge(tu_stats(s).timeouts, 1);
    ps_server_free(s);
    tu_latch_destroy(&t.done);
}
END_TEST

/* ===================================================== blocking: park */

struct park {
    atomic_int serves, eofs, errors;
};

/* Read one line, reply with it and a per-connection count, park. */
static void park_serve(ps_conn *c, void *user)
{
    struct park *p = user;
    char line[128], reply[160];
    size_t got = 0;
    uintptr_t n;

    atomic_fetch_add(&p->serves, 1);
    while (got == 0 || line[got - 1] != '\n') {
        ssize_t r = ps_conn_read(c, line + got, sizeof line - 1 - got);

        if (r == 0 && got == 0) {
            atomic_fetch_add(&p->eofs, 1);
            return; /* not parked: closed */
        }
        if (r <= 0 || got + (size_t)r >= sizeof line - 1) {
            atomic_fetch_add(&p->errors, 1);
            return;
        }
        got += (size_t)r;
    }
    line[got - 1] = '\0';
    n = (uintptr_t)ps_conn_data(c) + 1;
    ps_conn_set_data(c, (void *)n);
    snprintf(reply, sizeof reply, "%s #%u\n", line, (unsigned)n);
    if (ps_conn_write_all(c, reply, strlen(reply)) != 0) {
        atomic_fetch_add(&p->errors, 1);
        return;
    }
    ps_conn_park(c);
}

START_TEST(test_park)
{
    enum { ROUNDS = 5 };
    struct park p = {0};
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd[2];

    tu_config(&cfg);
    cfg.workers = 1; /* without parking the second client would starve */
    memset(&h, 0, sizeof h);
    h.serve = park_serve;
    s = tu_server_start(&cfg, &h, &p, &port);
    for (int k = 0; k < 2; k++) {
        fd[k] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[k], 0);
    }
    for (int round = 1; round <= ROUNDS; round++) {
        for (int k = 0; k < 2; k++) {
            char line[64], want[64], got[64];
            ssize_t n;

            snprintf(line, sizeof line, "%c%d\n", 'a' + k, round);
            snprintf(want, sizeof want, "%c%d #%d\n", 'a' + k, round, round);
            ck_assert_int_eq(tu_write_all(fd[k], line, strlen(line), tu_ms(1000)), 0);
            n = tu_read_line(fd[k], got, sizeof got, tu_ms(3000));
            ck_assert_msg(n > 0, "client %d round %d: no reply (%s)", k, round,
                          ps_strerror((int)n));
            ck_assert_str_eq(got, want);
        }
    }
    for (int k = 0; k < 2; k++)
        close(fd[k]);
    tu_assert_all_closed(s, 2);
    ck_assert_int_eq(ld(&p.errors), 0);
    ck_assert_int_eq(ld(&p.eofs), 2);
    /* called once per line and once for the EOF, never spuriously */
    ck_assert_int_eq(ld(&p.serves), 2 * ROUNDS + 2);
    ck_assert_uint_eq(tu_stats(s).accepted, 2);
    ps_server_free(s);
}
END_TEST

/* Park, then close: ps_conn_close cancels the park. */
struct parkclose {
    atomic_int serves;
};

static void parkclose_serve(ps_conn *c, void *user)
{
    struct parkclose *pc = user;
    char b[8];

    atomic_fetch_add(&pc->serves, 1);
    if (ps_conn_read(c, b, sizeof b) > 0) {
        ps_conn_write_all(c, "ok\n", 3);
        ps_conn_park(c);
        ps_conn_close(c);
    }
}

START_TEST(test_park_then_close)
{
    struct parkclose pc = {0};
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    char buf[4] = {0};
    int port, fd;

    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.serve = parkclose_serve;
    s = tu_server_start(&cfg, &h, &pc, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "x\n", 2, tu_ms(1000)), 0);
    ck_assert_int_eq(tu_read_exact(fd, buf, 3, tu_ms(2000)), 3);
    ck_assert_str_eq(buf, "ok\n");
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ck_assert_int_eq(ld(&pc.serves), 1);
    ps_server_free(s);
}
END_TEST

/* ===================================================== connection accessors */

struct who {
    tu_latch done;
    char peer[64];
    char peer2[64];
    int fd;
    uint64_t id;
    ps_server *srv;
    int peer_rc;
    ssize_t exact; /* read_exact(10) when the peer sends 3 then FIN */
};

static void who_serve(ps_conn *c, void *user)
{
    struct who *w = user;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char buf[10];

    snprintf(w->peer, sizeof w->peer, "%s", ps_conn_peer_str(c));
    w->peer_rc = ps_conn_peer(c, &ss, &len);
    if (w->peer_rc == 0)
        ps_addr_format((struct sockaddr *)&ss, len, w->peer2, sizeof w->peer2);
    w->fd = ps_conn_fd(c);
    w->id = ps_conn_id(c);
    w->srv = ps_conn_server(c);
    w->exact = ps_conn_read_exact(c, buf, sizeof buf);
    tu_latch_add(&w->done, 1);
}

START_TEST(test_conn_accessors)
{
    struct who w;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    struct sockaddr_storage me;
    socklen_t len = sizeof me;
    char want[64];
    int port, fd;

    memset(&w, 0, sizeof w);
    tu_latch_init(&w.done);
    tu_config(&cfg);
    memset(&h, 0, sizeof h);
    h.serve = who_serve;
    s = tu_server_start(&cfg, &h, &w, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    ps_addr_format((struct sockaddr *)&me, len, want, sizeof want);
    ck_assert_int_eq(tu_write_all(fd, "abc", 3, tu_ms(1000)), 0);
    shutdown(fd, SHUT_WR);
    ck_assert(tu_latch_wait(&w.done, 1, tu_ms(3000)));
    ck_assert_str_eq(w.peer, want);
    ck_assert_int_eq(w.peer_rc, 0);
    ck_assert_str_eq(w.peer2, want);
    ck_assert_int_ge(w.fd, 0);
    ck_assert_uint_ge(w.id, 1);
    ck_assert_ptr_eq(w.srv, s);
    ck_assert_int_eq(w.exact, 3); /* the stream ended first: fewer bytes */
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
    tu_latch_destroy(&w.done);
}
END_TEST

Suite *blocking_suite(void)
{
    Suite *s = suite_create("blocking");
    TCase *tc = tcase_create("blocking");

    tcase_set_timeout(tc, 15);
    tcase_add_test(tc, test_server_half_close);
    tcase_add_loop_test(tc, test_epipe, 0, 2);
    tcase_add_loop_test(tc, test_io_timeout, 0, 4);
    tcase_add_test(tc, test_park);
    tcase_add_test(tc, test_park_then_close);
    tcase_add_test(tc, test_conn_accessors);
    suite_add_tcase(s, tc);
    return s;
}

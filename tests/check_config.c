/* SPDX-License-Identifier: MIT */
/* check_config.c - configuration defaults and validation, server lifecycle
 * errors, two servers in one process, port in use. */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../server/echo_handlers.h"
#include "test_util.h"
#include "internal.h" /* the resolved worker count */

START_TEST(test_defaults)
{
    ps_config cfg;

    memset(&cfg, 0x5A, sizeof cfg);
    ps_config_init(&cfg);
    ck_assert_int_eq(cfg.nlisten, 0);
    for (int i = 0; i < PS_MAX_LISTEN; i++)
        ck_assert_ptr_null(cfg.listen[i]);
    ck_assert_int_eq(cfg.backlog, 4096);
    ck_assert_int_eq(cfg.workers, 0); /* resolved by style at ps_server_new */
    ck_assert_int_eq(cfg.queue_capacity, 1024);
    ck_assert_int_eq(cfg.policy, PS_POLICY_BLOCK);
    ck_assert_int_eq(cfg.io_timeout_ms, -1);
    ck_assert_int_eq(cfg.drain_timeout_ms, 5000);
    ck_assert(cfg.tcp_nodelay);
    ck_assert_uint_eq(cfg.read_budget, 65536);
    ck_assert_uint_eq(cfg.max_input, 1u << 20);
    ck_assert_uint_eq(cfg.out_high_water, 1u << 20);
    ck_assert_uint_eq(cfg.out_low_water, 256u << 10);
    ck_assert(cfg.log == NULL);
    ck_assert_int_eq(cfg.log_level, PS_LOG_INFO);
}
END_TEST

START_TEST(test_add_listen)
{
    ps_config cfg;

    ps_config_init(&cfg);
    for (int i = 0; i < PS_MAX_LISTEN; i++) {
        ck_assert_int_eq(ps_config_add_listen(&cfg, "127.0.0.1:0"), 0);
        ck_assert_int_eq(cfg.nlisten, i + 1);
    }
    ck_assert_int_eq(ps_config_add_listen(&cfg, "127.0.0.1:0"), -ENOSPC);
    ck_assert_int_eq(cfg.nlisten, PS_MAX_LISTEN);
}
END_TEST

START_TEST(test_validate_ok)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;

    tu_config(&cfg);
    echo_handler_init(&h, false);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), 0);
    echo_handler_init(&h, true);
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), 0);
    /* the limits themselves are valid */
    cfg.workers = 1;
    cfg.queue_capacity = 1;
    cfg.backlog = 1;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), 0);
    cfg.workers = 1024;
    cfg.queue_capacity = 1048576;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), 0);
    cfg.out_low_water = cfg.out_high_water;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), 0);
    /* several addresses, both families */
    ck_assert_int_eq(ps_config_add_listen(&cfg, "[::1]:0"), 0);
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), 0);
}
END_TEST

/* workers = 0 (the default): the event style gets one worker per CPU the
 * process may run on, the blocking style PS_BLOCKING_WORKERS.  Confined to
 * one CPU (this test runs in its own process), the event style gets 1. */
START_TEST(test_default_workers)
{
    cpu_set_t set, one;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_err err;
    int cpu = -1;

    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    tu_config(&cfg);
    echo_handler_init(&h, true);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->cfg.workers, CPU_COUNT(&set));
    ps_server_free(s);
    echo_handler_init(&h, false);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->cfg.workers, PS_BLOCKING_WORKERS);
    ps_server_free(s);
    cfg.workers = 3; /* an explicit count is kept */
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_int_eq(s->cfg.workers, 3);
    ps_server_free(s);

    for (int i = 0; i < CPU_SETSIZE && cpu < 0; i++)
        if (CPU_ISSET(i, &set))
            cpu = i;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    cfg.workers = 0;
    echo_handler_init(&h, true);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_int_eq(s->cfg.workers, 1);
    ps_server_free(s);
    sched_setaffinity(0, sizeof set, &set);
}
END_TEST

/* One bad configuration per loop index: what to break and which word the
 * message must contain. */
static void serve_noop(ps_conn *c, void *user)
{
    (void)c;
    (void)user;
}

static const char *break_config(int i, ps_config *cfg, ps_handler *h)
{
    tu_config(cfg);
    echo_handler_init(h, true);
    switch (i) {
    case 0: ps_config_init(cfg); return "listen"; /* no address */
    case 1: cfg->workers = 2000; return "workers";
    case 2: cfg->workers = 1025; return "workers";
    case 3: cfg->workers = -3; return "workers";
    case 4: cfg->queue_capacity = 0; return "queue";
    case 5: cfg->queue_capacity = 1048577; return "queue";
    case 6: cfg->backlog = 0; return "backlog";
    case 7: cfg->backlog = -1; return "backlog";
    case 8: h->serve = serve_noop; return "serve"; /* both styles */
    case 9: h->on_data = NULL; return "on_data";   /* neither */
    case 10: cfg->listen[0] = "abc:1"; return "abc:1";
    case 11: cfg->listen[0] = "127.0.0.1:65536"; return "127.0.0.1:65536";
    case 12:
        cfg->out_high_water = 1000;
        cfg->out_low_water = 1001;
        return "water";
    case 13: ps_config_add_listen(cfg, "[::1"); return "[::1";
    case 14: cfg->nlisten = PS_MAX_LISTEN + 1; return "listen";
    case 15: cfg->policy = (ps_policy)7; return "policy";
    }
    return NULL;
}
#define N_BAD_CONFIGS 16

START_TEST(test_validate_bad)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;
    const char *word = break_config(_i, &cfg, &h);
    int rc;

    ck_assert_ptr_nonnull(word);
    memset(&err, 0, sizeof err);
    rc = ps_config_validate(&cfg, &h, &err);
    ck_assert_msg(rc == -EINVAL, "case %d (%s): validate = %d", _i, word, rc);
    ck_assert_int_eq(err.code, -EINVAL);
    ck_assert_msg(strstr(err.msg, word) != NULL, "case %d: message \"%s\" does not name \"%s\"", _i,
                  err.msg, word);
}
END_TEST

START_TEST(test_new_bad)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;
    const char *word = break_config(_i, &cfg, &h);
    ps_server *s;

    memset(&err, 0, sizeof err);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(err.code, -EINVAL);
    ck_assert_msg(strstr(err.msg, word) != NULL, "case %d: message \"%s\" does not name \"%s\"", _i,
                  err.msg, word);
    /* err is optional */
    ck_assert_ptr_null(ps_server_new(&cfg, &h, NULL, NULL));
}
END_TEST

START_TEST(test_free_null)
{
    ps_server_free(NULL);
}
END_TEST

/* Lifecycle edges: port before start, wait before start, stop before start,
 * start twice, the config and strings are copied. */
START_TEST(test_lifecycle_edges)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;
    ps_server *s;
    char addr[32];
    int port, fd;

    ps_config_init(&cfg);
    strcpy(addr, "127.0.0.1:0");
    ck_assert_int_eq(ps_config_add_listen(&cfg, addr), 0);
    echo_handler_init(&h, false);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(s);
    /* new copied everything: scribble over the originals */
    memset(addr, 'z', sizeof addr - 1);
    memset(&cfg, 0, sizeof cfg);
    memset(&h, 0, sizeof h);

    ck_assert_int_eq(ps_server_port(s, 0), -EINVAL);
    ck_assert_int_eq(ps_server_wait(s), -EINVAL);
    ps_server_stop(s); /* no-op before start */
    ck_assert_int_eq(ps_server_start(s, &err), 0);
    ck_assert_int_eq(ps_server_nlisteners(s), 1);
    port = ps_server_port(s, 0);
    ck_assert_int_gt(port, 0);
    ck_assert_int_eq(ps_server_port(s, 1), -EINVAL);
    ck_assert_int_eq(ps_server_port(s, -1), -EINVAL);
    ck_assert_int_eq(ps_server_start(s, &err), -EALREADY);

    /* still serving echo after all that */
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, "ping\n", 5, true, tu_ms(2000), NULL), 0);
    close(fd);

    ps_server_stop(s);
    ps_server_stop(s); /* any number of times */
    ck_assert_int_eq(ps_server_wait(s), 0);
    ck_assert_int_eq(ps_server_start(s, &err), -EALREADY); /* no restart */
    ps_server_free(s);
}
END_TEST

START_TEST(test_listen_addr)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char buf[64], want[64];
    int port;

    tu_config(&cfg);
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    ck_assert_int_eq(ps_server_listen_addr(s, 0, &ss, &len), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ps_addr_format((struct sockaddr *)&ss, len, buf, sizeof buf);
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    ck_assert_str_eq(buf, want);
    ck_assert_int_ne(ps_server_listen_addr(s, 3, &ss, &len), 0);
    ps_server_free(s);
}
END_TEST

/* Two servers in one process, one of each style, each on its own port. */
START_TEST(test_two_servers)
{
    ps_config cfg;
    ps_handler hb, he;
    ps_server *a, *b;
    ps_stats sa, sb;
    int pa, pb;
    char msg[4096];

    tu_config(&cfg);
    echo_handler_init(&hb, false);
    echo_handler_init(&he, true);
    a = tu_server_start(&cfg, &hb, NULL, &pa);
    b = tu_server_start(&cfg, &he, NULL, &pb);
    ck_assert_int_ne(pa, pb);
    tu_fill(msg, sizeof msg, 42);
    for (int round = 0; round < 3; round++) {
        int fa = tu_connect(pa, tu_ms(2000)), fb = tu_connect(pb, tu_ms(2000));

        ck_assert_int_ge(fa, 0);
        ck_assert_int_ge(fb, 0);
        ck_assert_int_eq(tu_echo(fa, msg, sizeof msg, true, tu_ms(5000), NULL), 0);
        ck_assert_int_eq(tu_echo(fb, msg, sizeof msg, true, tu_ms(5000), NULL), 0);
        close(fa);
        close(fb);
    }
    /* stopping one leaves the other serving */
    ps_server_stop(a);
    ck_assert_int_eq(ps_server_wait(a), 0);
    {
        int fb = tu_connect(pb, tu_ms(2000));

        ck_assert_int_ge(fb, 0);
        ck_assert_int_eq(tu_echo(fb, msg, 100, true, tu_ms(5000), NULL), 0);
        close(fb);
    }
    ck_assert(TU_STAT_EQ(b, closed, 4, tu_ms(2000), NULL));
    ps_server_stats(a, &sa);
    ps_server_stats(b, &sb);
    ck_assert_uint_eq(sa.accepted, 3);
    ck_assert_uint_eq(sb.accepted, 4);
    ck_assert_uint_eq(sa.bytes_in, 3 * sizeof msg);
    ck_assert_uint_eq(sb.bytes_in, 3 * sizeof msg + 100);
    ck_assert_uint_eq(sb.bytes_out, 3 * sizeof msg + 100);
    ps_server_free(a);
    ps_server_free(b);
}
END_TEST

START_TEST(test_port_in_use)
{
    ps_config cfg;
    ps_handler h;
    ps_server *a, *b;
    ps_err err;
    char addr[64];
    int port, fds_before, rc;

    tu_config(&cfg);
    echo_handler_init(&h, false);
    a = tu_server_start(&cfg, &h, NULL, &port);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    ps_config_init(&cfg);
    /* a free address first: the failure must undo that bind too */
    ps_config_add_listen(&cfg, "127.0.0.1:0");
    ps_config_add_listen(&cfg, addr);
    fds_before = tu_count_fds();
    b = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(b);
    memset(&err, 0, sizeof err);
    rc = ps_server_start(b, &err);
    ck_assert_int_eq(rc, -EADDRINUSE);
    ck_assert_int_eq(err.code, -EADDRINUSE);
    ck_assert_msg(strstr(err.msg, addr) != NULL, "message \"%s\" does not name %s", err.msg, addr);
    ps_server_free(b);
    ck_assert_int_eq(tu_count_fds(), fds_before);

    /* the first server is unharmed */
    {
        int fd = tu_connect(port, tu_ms(2000));

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(tu_echo(fd, "x", 1, true, tu_ms(2000), NULL), 0);
        close(fd);
    }
    ps_server_free(a);
}
END_TEST

/* --------------------------------------------- size-stamped structs (abi.c)
 * A program built against an older poolsrv.h has shorter structs; one built
 * against a newer header has longer ones.  The *_sized entry points behind
 * the macros must read and write only what the caller's size covers
 * (docs/abi.md). */

/* A ps_config in a buffer with room past it, filled with a sentinel. */
typedef struct {
    ps_config cfg;
    unsigned char tail[64];
} big_config;

START_TEST(test_abi_config_older_caller)
{
    big_config b;
    ps_handler h;
    ps_err err;
    size_t old = offsetof(ps_config, log_level); /* an "older" header ended here */

    memset(&b, 0x5A, sizeof b);
    ps_config_init_sized(&b.cfg, old);
    ck_assert_int_eq(b.cfg.workers, 0); /* the default: one per CPU, resolved at new */
    /* nothing past the caller's size is written */
    for (size_t i = old; i < sizeof b; i++)
        ck_assert_uint_eq(((unsigned char *)&b)[i], 0x5A);
    ck_assert_int_eq(ps_config_add_listen(&b.cfg, "127.0.0.1:0"), 0);
    echo_handler_init(&h, false);
    /* log_level holds 0x5A5A5A5A, invalid, but the older caller has no such
     * field: the default applies */
    ck_assert_int_eq(ps_config_validate_sized(&b.cfg, old, &h, sizeof h, &err), 0);
    ck_assert_int_eq(ps_config_validate(&b.cfg, &h, &err), -EINVAL);
    ck_assert_msg(strstr(err.msg, "log_level") != NULL, "%s", err.msg);
    {
        ps_server *s = ps_server_new_sized(&b.cfg, old, &h, sizeof h, NULL, &err);
        ck_assert_msg(s != NULL, "%s", err.msg);
        ps_server_free(s);
    }
}
END_TEST

START_TEST(test_abi_config_newer_caller)
{
    big_config b;
    ps_handler h;
    ps_err err;

    memset(&b, 0x5A, sizeof b);
    ps_config_init_sized(&b.cfg, sizeof b);
    /* the room this library does not know is zeroed, so unknown fields
     * default to 0 */
    for (size_t i = 0; i < sizeof b.tail; i++)
        ck_assert_uint_eq(b.tail[i], 0);
    ck_assert_int_eq(ps_config_add_listen(&b.cfg, "127.0.0.1:0"), 0);
    echo_handler_init(&h, false);
    ck_assert_int_eq(ps_config_validate_sized(&b.cfg, sizeof b, &h, sizeof h, &err), 0);
    /* a field this library does not have, set: refused, not ignored */
    b.tail[9] = 1;
    ck_assert_int_eq(ps_config_validate_sized(&b.cfg, sizeof b, &h, sizeof h, &err), -EINVAL);
    ck_assert_msg(strstr(err.msg, "newer poolsrv.h") != NULL, "%s", err.msg);
    ck_assert_ptr_null(ps_server_new_sized(&b.cfg, sizeof b, &h, sizeof h, NULL, &err));
    ck_assert_int_eq(err.code, -EINVAL);
    ck_assert_int_eq(ps_config_validate_sized(&b.cfg, 0, &h, sizeof h, &err), -EINVAL);
}
END_TEST

START_TEST(test_abi_handler_sizes)
{
    ps_config cfg;
    struct {
        ps_handler h;
        void *newer_callback;
    } big;
    ps_err err;

    ps_config_init(&cfg);
    ck_assert_int_eq(ps_config_add_listen(&cfg, "127.0.0.1:0"), 0);
    memset(&big, 0, sizeof big);
    echo_handler_init(&big.h, true); /* event style */
    /* an older handler without busy_msg/busy_len: they read as unset */
    big.h.busy_len = 5;
    ck_assert_int_eq(ps_config_validate_sized(&cfg, sizeof cfg, &big.h,
                                              offsetof(ps_handler, busy_msg), &err),
                     0);
    ck_assert_int_eq(ps_config_validate(&cfg, &big.h, &err), -EINVAL); /* busy_msg NULL */
    big.h.busy_len = 0;
    /* a newer handler: unknown callbacks must be NULL */
    ck_assert_int_eq(ps_config_validate_sized(&cfg, sizeof cfg, &big.h, sizeof big, &err), 0);
    big.newer_callback = &big;
    ck_assert_int_eq(ps_config_validate_sized(&cfg, sizeof cfg, &big.h, sizeof big, &err),
                     -EINVAL);
    ck_assert_msg(strstr(err.msg, "handler") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(test_abi_stats_sizes)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;
    ps_server *s;
    struct {
        ps_stats st;
        unsigned char tail[16];
    } b;
    size_t old = offsetof(ps_stats, output_closes); /* an "older" ps_stats */
    char text[2048];

    ps_config_init(&cfg);
    ck_assert_int_eq(ps_config_add_listen(&cfg, "127.0.0.1:0"), 0);
    echo_handler_init(&h, false);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(s);
    memset(&b, 0x5A, sizeof b);
    ps_server_stats_sized(s, &b.st, old);
    ck_assert_uint_eq(b.st.accepted, 0);
    for (size_t i = old; i < sizeof b; i++)
        ck_assert_uint_eq(((unsigned char *)&b)[i], 0x5A);
    ps_server_stats_sized(s, &b.st, sizeof b); /* newer: the extra room is zeroed */
    for (size_t i = 0; i < sizeof b.tail; i++)
        ck_assert_uint_eq(b.tail[i], 0);
    ps_server_free(s);

    /* formatting an older struct leaves out the fields it does not have */
    ck_assert_int_gt(ps_stats_format_sized(&b.st, old, PS_STATS_TEXT, NULL, text, sizeof text), 0);
    ck_assert_ptr_nonnull(strstr(text, "proxy_errors="));
    ck_assert_ptr_null(strstr(text, "output_closes"));
    ck_assert_int_gt(ps_stats_format(&b.st, PS_STATS_TEXT, NULL, text, sizeof text), 0);
    ck_assert_ptr_nonnull(strstr(text, "output_closes=0"));
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("validate");
    TCase *lc = tcase_create("lifecycle");

    tcase_set_timeout(tc, 5);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_add_listen);
    tcase_add_test(tc, test_validate_ok);
    tcase_add_test(tc, test_default_workers);
    tcase_add_loop_test(tc, test_validate_bad, 0, N_BAD_CONFIGS);
    tcase_add_loop_test(tc, test_new_bad, 0, N_BAD_CONFIGS);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_abi_config_older_caller);
    tcase_add_test(tc, test_abi_config_newer_caller);
    tcase_add_test(tc, test_abi_handler_sizes);
    tcase_add_test(tc, test_abi_stats_sizes);
    suite_add_tcase(s, tc);

    tcase_set_timeout(lc, 10);
    tcase_add_test(lc, test_lifecycle_edges);
    tcase_add_test(lc, test_listen_addr);
    tcase_add_test(lc, test_two_servers);
    tcase_add_test(lc, test_port_in_use);
    suite_add_tcase(s, lc);
    return s;
}

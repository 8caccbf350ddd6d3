/* SPDX-License-Identifier: MIT */
/*
 * check_metrics.c - the latency histograms of ps_stats: where a duration
 * lands, that each histogram's count matches what happened (connections
 * closed, turns run), that a slow handler shows up in the right bucket,
 * that cfg.histograms = false keeps them at zero, and their Prometheus form.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../server/echo_handlers.h"
#include "internal.h" /* ps__hist_bucket */
#include "test_util.h"

#define NCONN 20

/* The last turn's queue wait is recorded at its start, its turn time at
 * its end, after the close the test waited for: poll (bounded) until the
 * worker has finished it. */
static bool turns_settled(void *arg)
{
    ps_stats st;

    ps_server_stats(arg, &st);
    return st.queue_wait.count == st.turn_time.count && st.lifetime.count == st.closed;
}

/* Bucket i holds (1 us * 2^(i-1), 1 us * 2^i]; the last one everything past. */
START_TEST(test_bucket_bounds)
{
    int i;

    ck_assert_uint_eq(ps__hist_bucket(0), 0);
    ck_assert_uint_eq(ps__hist_bucket(1000), 0);
    ck_assert_uint_eq(ps__hist_bucket(1001), 1);
    for (i = 1; i < PS_HIST_BUCKETS - 1; i++) {
        ck_assert_uint_eq(ps__hist_bucket(PS_HIST_LE_NS(i)), (unsigned)i);
        ck_assert_uint_eq(ps__hist_bucket(PS_HIST_LE_NS(i - 1) + 1), (unsigned)i);
    }
    ck_assert_uint_eq(ps__hist_bucket(PS_HIST_LE_NS(PS_HIST_BUCKETS - 2) + 1), PS_HIST_BUCKETS - 1);
    ck_assert_uint_eq(ps__hist_bucket(UINT64_MAX), PS_HIST_BUCKETS - 1);
    ck_assert_uint_eq(PS_HIST_LE_NS(PS_HIST_BUCKETS - 2), 67108864000ull); /* 67.1 s */
}
END_TEST

static void assert_consistent(const ps_histogram *h, const char *name)
{
    uint64_t n = 0;
    int i;

    for (i = 0; i < PS_HIST_BUCKETS; i++)
        n += h->bucket[i];
    ck_assert_msg(n == h->count, "%s: buckets sum to %llu, count %llu", name,
                  (unsigned long long)n, (unsigned long long)h->count);
}

/* NCONN connections, one echo each, on both styles: every close is in the
 * lifetime histogram, every turn in turn_time, and each turn's queue wait. */
START_TEST(test_histogram_counts)
{
    bool event = _i == 0;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_stats st;
    int port, i;

    tu_config(&cfg);
    cfg.workers = 2;
    echo_handler_init(&h, event);
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (i = 0; i < NCONN; i++) {
        int fd = tu_connect(port, tu_ms(2000));
        ck_assert_int_eq(tu_echo(fd, "hello", 5, true, tu_ms(2000), NULL), 0);
        close(fd);
    }
    tu_assert_all_closed(s, NCONN);
    tu_wait_until(turns_settled, s, tu_ms(5000));
    ps_server_stats(s, &st);
    ck_assert_uint_eq(st.workers, 2);
    ck_assert_uint_eq(st.queue_capacity, 1024);
    assert_consistent(&st.queue_wait, "queue_wait");
    assert_consistent(&st.turn_time, "turn_time");
    assert_consistent(&st.lifetime, "lifetime");
    ck_assert_uint_eq(st.lifetime.count, NCONN);
    ck_assert_uint_eq(st.lifetime.count, st.closed);
    ck_assert_uint_ge(st.turn_time.count, NCONN); /* >= 1 turn a connection */
    /* Every turn of these connections started from a stamped hand-off. */
    ck_assert_uint_eq(st.queue_wait.count, st.turn_time.count);
    ck_assert_uint_gt(st.lifetime.sum_ns, 0);
    ck_assert_uint_gt(st.turn_time.sum_ns, 0);
    ps_server_free(s);
}
END_TEST

#define SLOW_MS 5 /* lands in (4.096 ms, 8.192 ms]: bucket 13 */

static void slow_serve(ps_conn *c, void *user)
{
    struct timespec ts = {0, SLOW_MS * 1000000L};

    (void)user;
    nanosleep(&ts, NULL);
    echo_serve(c, NULL);
}

/* A serve call that sleeps 5 ms is in the bucket whose bound is 8.192 ms,
 * or one above on a loaded machine, never below. */
START_TEST(test_histogram_slow_turn)
{
    ps_config cfg;
    ps_handler h = {.serve = slow_serve};
    ps_server *s;
    ps_stats st;
    uint64_t below = 0, at = 0;
    int port, fd, i;

    tu_config(&cfg);
    cfg.workers = 1;
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_eq(tu_echo(fd, "x", 1, true, tu_ms(2000), NULL), 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    tu_wait_until(turns_settled, s, tu_ms(5000));
    ps_server_stats(s, &st);
    ck_assert_uint_eq(st.turn_time.count, 1);
    for (i = 0; i < 13; i++)
        below += st.turn_time.bucket[i];
    for (i = 13; i < PS_HIST_BUCKETS; i++)
        at += st.turn_time.bucket[i];
    ck_assert_uint_eq(below, 0);
    ck_assert_uint_eq(at, 1);
    ck_assert_uint_ge(st.turn_time.sum_ns, SLOW_MS * 1000000ull);
    ck_assert_uint_ge(st.lifetime.sum_ns, SLOW_MS * 1000000ull);
    ps_server_free(s);
}
END_TEST

/* cfg.histograms = false: the same load leaves every histogram empty. */
START_TEST(test_histograms_off)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_stats st;
    int port, i;

    tu_config(&cfg);
    ck_assert(cfg.histograms); /* the default */
    cfg.histograms = false;
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (i = 0; i < 5; i++) {
        int fd = tu_connect(port, tu_ms(2000));
        ck_assert_int_eq(tu_echo(fd, "hello", 5, true, tu_ms(2000), NULL), 0);
        close(fd);
    }
    tu_assert_all_closed(s, 5);
    ps_server_stats(s, &st);
    ck_assert_uint_eq(st.queue_wait.count + st.turn_time.count + st.lifetime.count, 0);
    ck_assert_uint_eq(st.queue_wait.sum_ns + st.turn_time.sum_ns + st.lifetime.sum_ns, 0);
    ps_server_free(s);
}
END_TEST

/* Prometheus form: cumulative buckets in seconds, +Inf equal to _count, _sum
 * in seconds; a program built against an older ps_stats gets none. */
START_TEST(test_histogram_format)
{
    ps_stats st;
    char buf[16384];

    memset(&st, 0, sizeof st);
    st.turn_time.bucket[0] = 2;          /* <= 1 us */
    st.turn_time.bucket[3] = 5;          /* (4 us, 8 us] */
    st.turn_time.bucket[PS_HIST_BUCKETS - 1] = 1; /* > 67 s */
    st.turn_time.count = 8;
    st.turn_time.sum_ns = 1500000000;    /* 1.5 s */
    ck_assert_int_gt(ps_stats_format(&st, PS_STATS_PROMETHEUS, "x", buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "# TYPE x_turn_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_turn_seconds_bucket{le=\"0.000001\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_turn_seconds_bucket{le=\"0.000004\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_turn_seconds_bucket{le=\"0.000008\"} 7\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_turn_seconds_bucket{le=\"67.108864\"} 7\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_turn_seconds_bucket{le=\"+Inf\"} 8\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_turn_seconds_sum 1.500000000\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_turn_seconds_count 8\n"));
    ck_assert_ptr_nonnull(strstr(buf, "# TYPE x_queue_wait_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(buf, "# TYPE x_connection_lifetime_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(buf, "x_workers 0\n"));
    ck_assert_int_gt(ps_stats_format(&st, PS_STATS_TEXT, "x", buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "turn_count=8 turn_sum_us=1500000"));
    /* The ps_stats of a program built before the histograms existed. */
    ck_assert_int_gt(ps_stats_format_sized(&st, offsetof(ps_stats, workers), PS_STATS_PROMETHEUS,
                                           "x", buf, sizeof buf),
                     0);
    ck_assert_ptr_null(strstr(buf, "_seconds"));
    ck_assert_ptr_null(strstr(buf, "x_workers"));
    ck_assert_ptr_nonnull(strstr(buf, "x_connect_errors_total 0\n"));
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("histograms");

    tcase_add_test(tc, test_bucket_bounds);
    tcase_add_loop_test(tc, test_histogram_counts, 0, 2);
    tcase_add_test(tc, test_histogram_slow_turn);
    tcase_add_test(tc, test_histograms_off);
    tcase_add_test(tc, test_histogram_format);
    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: MIT */
/* check_queue.c - the bounded MPMC queue (lib/src/queue.h). */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
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

#define ITEM(i) ((void *)(uintptr_t)(i))

/* queue.h does not promise that on_space may be NULL: pass a no-op. */
static void noop_space(void *arg)
{
    (void)arg;
}

/* ------------------------------------------------------------- basics */

START_TEST(test_capacity)
{
    ps_queue *q = ps__queue_new(3, noop_space, NULL);
    void *it;

    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(ps__queue_capacity(q), 3);
    ck_assert_uint_eq(ps__queue_len(q), 0);
    ck_assert_int_eq(ps__queue_try_pop(q, &it), -EAGAIN);
    for (int i = 1; i <= 3; i++) {
        ck_assert_int_eq(ps__queue_try_push(q, ITEM(i)), 0);
        ck_assert_uint_eq(ps__queue_len(q), (size_t)i);
    }
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(4)), -EAGAIN);
    ck_assert_uint_eq(ps__queue_len(q), 3);
    ck_assert_uint_eq(ps__queue_capacity(q), 3);
    ps__queue_shutdown(q);
    ps__queue_free(q);
    ps__queue_free(NULL);
}
END_TEST

START_TEST(test_capacity_one)
{
    ps_queue *q = ps__queue_new(1, noop_space, NULL);
    void *it = NULL;

    ck_assert_ptr_nonnull(q);
    for (int round = 0; round < 5; round++) {
        ck_assert_int_eq(ps__queue_push(q, ITEM(round + 1)), 0);
        ck_assert_int_eq(ps__queue_try_push(q, ITEM(99)), -EAGAIN);
        ck_assert_int_eq(ps__queue_pop(q, &it), 0);
        ck_assert_ptr_eq(it, ITEM(round + 1));
    }
    ps__queue_shutdown(q);
    ps__queue_free(q);
}
END_TEST

START_TEST(test_fifo)
{
    enum { CAP = 8, N = 1000 };
    ps_queue *q = ps__queue_new(CAP, noop_space, NULL);
    int next_in = 1, next_out = 1;
    void *it;

    ck_assert_ptr_nonnull(q);
    /* interleave pushes and pops so the ring wraps many times */
    while (next_out <= N) {
        int burst = 1 + next_in % CAP;

        for (int k = 0; k < burst && next_in <= N; k++) {
            if (ps__queue_try_push(q, ITEM(next_in)) != 0)
                break;
            next_in++;
        }
        for (int k = 0; k < 1 + next_out % 3 && next_out < next_in; k++) {
            ck_assert_int_eq(ps__queue_try_pop(q, &it), 0);
            ck_assert_ptr_eq(it, ITEM(next_out));
            next_out++;
        }
    }
    ck_assert_uint_eq(ps__queue_len(q), 0);
    ck_assert_int_eq(ps__queue_try_pop(q, &it), -EAGAIN);
    ps__queue_shutdown(q);
    ps__queue_free(q);
}
END_TEST

START_TEST(test_high_water)
{
    ps_queue *q = ps__queue_new(10, noop_space, NULL);
    void *it;

    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(ps__queue_high_water(q), 0);
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(ps__queue_push(q, ITEM(i)), 0);
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(ps__queue_pop(q, &it), 0);
    ck_assert_uint_eq(ps__queue_high_water(q), 5);
    ck_assert_int_eq(ps__queue_push(q, ITEM(1)), 0);
    ck_assert_int_eq(ps__queue_push(q, ITEM(2)), 0);
    ck_assert_uint_eq(ps__queue_len(q), 2);
    ck_assert_uint_eq(ps__queue_high_water(q), 5);
    for (int i = 3; i <= 10; i++)
        ck_assert_int_eq(ps__queue_push(q, ITEM(i)), 0);
    ck_assert_uint_eq(ps__queue_high_water(q), 10);
    ps__queue_shutdown(q);
    ps__queue_free(q);
}
END_TEST

/* ------------------------------------------------------------- on_space */

struct space_ctx {
    atomic_int calls;
    ps_queue *q;
    atomic_size_t len_seen; /* ps__queue_len from inside the callback */
};

static void on_space(void *arg)
{
    struct space_ctx *sc = arg;

    /* The callback runs with the queue lock released: taking it again here
     * must not deadlock. */
    atomic_store(&sc->len_seen, ps__queue_len(sc->q));
    atomic_fetch_add(&sc->calls, 1);
}

/* The ready hook (for consumers that wait outside ps__queue_pop): called
 * exactly when a pop would wake a sleeper - a push onto an empty queue, a
 * pop that leaves items behind - and at shutdown; never on other pushes or
 * on the pop that empties the queue. */
static void count_ready(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

START_TEST(test_ready_fn)
{
    ps_queue *q = ps__queue_new(4, noop_space, NULL);
    atomic_int rings = 0;
    void *it;

    ck_assert_ptr_nonnull(q);
    ps__queue_set_ready_fn(q, count_ready, &rings);
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(1)), 0); /* empty -> 1 item */
    ck_assert_int_eq(ld(&rings), 1);
    ck_assert_int_eq(ps__queue_push(q, ITEM(2)), 0); /* not empty: no ring */
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(3)), 0);
    ck_assert_int_eq(ld(&rings), 1);
    ck_assert_int_eq(ps__queue_try_pop(q, &it), 0); /* two left: baton */
    ck_assert_int_eq(ld(&rings), 2);
    ck_assert_int_eq(ps__queue_pop(q, &it), 0); /* one left: baton */
    ck_assert_int_eq(ld(&rings), 3);
    ck_assert_int_eq(ps__queue_try_pop(q, &it), 0); /* empties it: no ring */
    ck_assert_int_eq(ld(&rings), 3);
    ck_assert_int_eq(ps__queue_try_pop(q, &it), -EAGAIN);
    ck_assert_int_eq(ld(&rings), 3);
    ck_assert_int_eq(ps__queue_push(q, ITEM(4)), 0); /* empty again -> ring */
    ck_assert_int_eq(ld(&rings), 4);
    ps__queue_shutdown(q);
    ck_assert_int_eq(ld(&rings), 5);
    ps__queue_free(q);
}
END_TEST

START_TEST(test_on_space)
{
    struct space_ctx sc = {0};
    ps_queue *q = ps__queue_new(2, on_space, &sc);
    void *it;

    ck_assert_ptr_nonnull(q);
    sc.q = q;
    /* successful pushes and pops never call it */
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(1)), 0);
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(2)), 0);
    ck_assert_int_eq(ps__queue_pop(q, &it), 0);
    ck_assert_int_eq(ld(&sc.calls), 0);
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(3)), 0);

    /* full: a failed try_push arms it; the pop that frees a slot fires it */
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(4)), -EAGAIN);
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(5)), -EAGAIN);
    ck_assert_int_eq(ld(&sc.calls), 0);
    ck_assert_int_eq(ps__queue_pop(q, &it), 0);
    ck_assert_ptr_eq(it, ITEM(2));
    ck_assert_int_eq(ld(&sc.calls), 1);
    ck_assert_uint_eq(ldz(&sc.len_seen), 1);

    /* once only: further pops do not fire it again */
    ck_assert_int_eq(ps__queue_pop(q, &it), 0);
    ck_assert_ptr_eq(it, ITEM(3));
    ck_assert_int_eq(ld(&sc.calls), 1);

    /* and it re-arms after the next failure */
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(6)), 0);
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(7)), 0);
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(8)), -EAGAIN);
    ck_assert_int_eq(ps__queue_try_pop(q, &it), 0);
    ck_assert_ptr_eq(it, ITEM(6));
    ck_assert_int_eq(ld(&sc.calls), 2);
    ps__queue_shutdown(q);
    ps__queue_free(q);
}
END_TEST

/* ------------------------------------------------------------- shutdown */

struct waiter {
    ps_queue *q;
    tu_latch *started;
    atomic_int tid;
    int rc;
    void *item;
    pthread_t th;
};

static void *pusher(void *arg)
{
    struct waiter *w = arg;

    atomic_store(&w->tid, tu_gettid());
    tu_latch_add(w->started, 1);
    w->rc = ps__queue_push(w->q, ITEM(1000));
    return NULL;
}

static void *popper(void *arg)
{
    struct waiter *w = arg;

    atomic_store(&w->tid, tu_gettid());
    tu_latch_add(w->started, 1);
    w->rc = ps__queue_pop(w->q, &w->item);
    return NULL;
}

/* Start n threads blocked in push (full queue) or pop (empty queue), shut
 * the queue down and require every one to return -ESHUTDOWN promptly. */
static void shutdown_wakes(bool pushers)
{
    enum { N = 3 };
    struct waiter w[N];
    tu_latch started;
    ps_queue *q = ps__queue_new(1, noop_space, NULL);
    void *it;

    ck_assert_ptr_nonnull(q);
    if (pushers)
        ck_assert_int_eq(ps__queue_push(q, ITEM(1)), 0);
    tu_latch_init(&started);
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].q = q;
        w[i].started = &started;
        w[i].rc = 12345;
        ck_assert_int_eq(pthread_create(&w[i].th, NULL, pushers ? pusher : popper, &w[i]), 0);
    }
    ck_assert(tu_latch_wait(&started, N, tu_ms(2000)));
    for (int i = 0; i < N; i++)
        ck_assert_msg(tu_wait_thread_sleeping(ld(&w[i].tid), tu_ms(2000)),
                      "waiter %d never blocked", i);
    ps__queue_shutdown(q);
    for (int i = 0; i < N; i++) {
        struct timespec dl;

        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += tu_ms(2000) / 1000;
        ck_assert_msg(pthread_timedjoin_np(w[i].th, NULL, &dl) == 0,
                      "waiter %d not woken by shutdown", i);
        ck_assert_int_eq(w[i].rc, -ESHUTDOWN);
    }
    if (pushers) {
        /* the item queued before shutdown is still delivered */
        ck_assert_int_eq(ps__queue_pop(q, &it), 0);
        ck_assert_ptr_eq(it, ITEM(1));
    }
    ck_assert_int_eq(ps__queue_pop(q, &it), -ESHUTDOWN);
    ps__queue_free(q);
    tu_latch_destroy(&started);
}

START_TEST(test_shutdown_wakes_pushers)
{
    shutdown_wakes(true);
}
END_TEST

START_TEST(test_shutdown_wakes_poppers)
{
    shutdown_wakes(false);
}
END_TEST

START_TEST(test_shutdown_drains)
{
    ps_queue *q = ps__queue_new(4, noop_space, NULL);
    void *it;

    ck_assert_ptr_nonnull(q);
    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(ps__queue_push(q, ITEM(i)), 0);
    ps__queue_shutdown(q);
    ps__queue_shutdown(q); /* idempotent */
    ck_assert_int_eq(ps__queue_push(q, ITEM(9)), -ESHUTDOWN);
    ck_assert_int_eq(ps__queue_try_push(q, ITEM(9)), -ESHUTDOWN);
    ck_assert_int_eq(ps__queue_pop(q, &it), 0);
    ck_assert_ptr_eq(it, ITEM(1));
    ck_assert_int_eq(ps__queue_try_pop(q, &it), 0);
    ck_assert_ptr_eq(it, ITEM(2));
    ck_assert_int_eq(ps__queue_pop(q, &it), 0);
    ck_assert_ptr_eq(it, ITEM(3));
    ck_assert_int_eq(ps__queue_pop(q, &it), -ESHUTDOWN);
    ck_assert_int_eq(ps__queue_try_pop(q, &it), -ESHUTDOWN);
    ck_assert_uint_eq(ps__queue_len(q), 0);
    ps__queue_free(q);
}
END_TEST

/* ------------------------------------------------------------- MPMC */

enum { NPROD = 4, NCONS = 4, NITEMS = 200000, PER_PROD = NITEMS / NPROD, MPMC_CAP = 64 };

struct mpmc {
    ps_queue *q;
    _Atomic unsigned char *seen; /* times item i+1 was popped */
    atomic_uint_least64_t sum;
    atomic_int count;
    atomic_int order_errors; /* one producer's items popped out of order */
    atomic_int push_errors;
    atomic_int space_calls;
};

struct mpmc_thread {
    struct mpmc *m;
    int idx;
    pthread_t th;
};

static void mpmc_space(void *arg)
{
    struct mpmc *m = arg;

    atomic_fetch_add(&m->space_calls, 1);
}

static void *mpmc_producer(void *arg)
{
    struct mpmc_thread *t = arg;
    uintptr_t first = (uintptr_t)t->idx * PER_PROD + 1;

    for (uintptr_t i = first; i < first + PER_PROD; i++) {
        int rc;

        /* odd producers fail fast and retry, even ones block */
        if (t->idx & 1) {
            while ((rc = ps__queue_try_push(t->m->q, ITEM(i))) == -EAGAIN)
                sched_yield();
        } else {
            rc = ps__queue_push(t->m->q, ITEM(i));
        }
        if (rc != 0)
            atomic_fetch_add(&t->m->push_errors, 1);
    }
    return NULL;
}

static void *mpmc_consumer(void *arg)
{
    struct mpmc_thread *t = arg;
    uintptr_t last[NPROD] = {0};
    uint64_t sum = 0;
    int count = 0;
    void *it;

    while (ps__queue_pop(t->m->q, &it) == 0) {
        uintptr_t v = (uintptr_t)it;

        if (v >= 1 && v <= NITEMS) {
            int p = (int)((v - 1) / PER_PROD);

            /* FIFO: one consumer sees one producer's items in push order */
            if (v <= last[p])
                atomic_fetch_add(&t->m->order_errors, 1);
            last[p] = v;
            atomic_fetch_add(&t->m->seen[v - 1], 1);
        }
        sum += v;
        count++;
    }
    atomic_fetch_add(&t->m->sum, sum);
    atomic_fetch_add(&t->m->count, count);
    return NULL;
}

START_TEST(test_mpmc)
{
    struct mpmc m = {0};
    struct mpmc_thread prod[NPROD], cons[NCONS];
    uint64_t want_sum = (uint64_t)NITEMS * (NITEMS + 1) / 2;
    int missing = 0, dup = 0;

    m.q = ps__queue_new(MPMC_CAP, mpmc_space, &m);
    ck_assert_ptr_nonnull(m.q);
    m.seen = calloc(NITEMS, sizeof *m.seen);
    ck_assert_ptr_nonnull(m.seen);
    for (int i = 0; i < NCONS; i++) {
        cons[i] = (struct mpmc_thread){.m = &m, .idx = i};
        ck_assert_int_eq(pthread_create(&cons[i].th, NULL, mpmc_consumer, &cons[i]), 0);
    }
    for (int i = 0; i < NPROD; i++) {
        prod[i] = (struct mpmc_thread){.m = &m, .idx = i};
        ck_assert_int_eq(pthread_create(&prod[i].th, NULL, mpmc_producer, &prod[i]), 0);
    }
    for (int i = 0; i < NPROD; i++)
        pthread_join(prod[i].th, NULL);
    /* consumers drain what is left, then see -ESHUTDOWN */
    ps__queue_shutdown(m.q);
    for (int i = 0; i < NCONS; i++)
        pthread_join(cons[i].th, NULL);

    ck_assert_int_eq(ld(&m.push_errors), 0);
    ck_assert_int_eq(ld(&m.count), NITEMS);
    ck_assert_uint_eq(atomic_load(&m.sum), want_sum);
    for (int i = 0; i < NITEMS; i++) {
        unsigned s = atomic_load(&m.seen[i]);

        missing += s == 0;
        dup += s > 1;
    }
    ck_assert_msg(missing == 0 && dup == 0, "%d items lost, %d duplicated", missing, dup);
    ck_assert_int_eq(ld(&m.order_errors), 0);
    ck_assert_uint_eq(ps__queue_len(m.q), 0);
    ck_assert_uint_le(ps__queue_high_water(m.q), MPMC_CAP);
    ck_assert_uint_ge(ps__queue_high_water(m.q), 1);
    ps__queue_free(m.q);
    free((void *)m.seen);
}
END_TEST

Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("basic");
    TCase *sh = tcase_create("shutdown");
    TCase *mp = tcase_create("mpmc");

    tcase_set_timeout(tc, 5);
    tcase_add_test(tc, test_capacity);
    tcase_add_test(tc, test_capacity_one);
    tcase_add_test(tc, test_fifo);
    tcase_add_test(tc, test_high_water);
    tcase_add_test(tc, test_on_space);
    tcase_add_test(tc, test_ready_fn);
    suite_add_tcase(s, tc);

    tcase_set_timeout(sh, 10);
    tcase_add_test(sh, test_shutdown_wakes_pushers);
    tcase_add_test(sh, test_shutdown_wakes_poppers);
    tcase_add_test(sh, test_shutdown_drains);
    suite_add_tcase(s, sh);

    tcase_set_timeout(mp, 20);
    tcase_add_test(mp, test_mpmc);
    suite_add_tcase(s, mp);
    return s;
}

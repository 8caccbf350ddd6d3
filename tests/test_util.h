/* SPDX-License-Identifier: MIT */
/*
 * test_util.h - helpers shared by the Check suites: suite constructors,
 * loopback servers and clients with bounded waits, a deterministic PRNG,
 * a latch, and a bounded "wait until" for conditions that have no event.
 *
 * Helpers that run on client threads never call ck_assert (Check's failure
 * path is only safe on the test's own thread); they return 0 or -errno and
 * the test asserts on the main thread.
 */
#ifndef PS_TEST_UTIL_H
#define PS_TEST_UTIL_H

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "poolsrv.h"

/* One suite per file; run_tests.c adds them all. */
Suite *queue_suite(void);
Suite *addr_suite(void);
Suite *config_suite(void);
Suite *server_suite(void);
Suite *event_suite(void);
Suite *blocking_suite(void);
Suite *features_suite(void);
Suite *proxy_suite(void);
Suite *bounds_suite(void);
Suite *anythread_suite(void);
Suite *callbacks_suite(void);
Suite *connect_suite(void);
Suite *dgram_suite(void);
Suite *handoff_suite(void);
Suite *tls_suite(void);
Suite *metrics_suite(void);

/* ------------------------------------------------------------- time */

/* Monotonic clock in milliseconds / nanoseconds. */
int64_t tu_now_ms(void);
int64_t tu_now_ns(void);

/* ms scaled by CK_TIMEOUT_MULTIPLIER (sanitizer runs are slower), so the
 * helpers' internal deadlines stay below Check's per-test timeout. */
int tu_ms(int ms);

/* Poll pred(arg) until it returns true or timeout_ms passes, backing off
 * from 50 us to 5 ms between polls.  For conditions with no event to block
 * on (server counters); prefer latches, pipes and joins where they exist. */
bool tu_wait_until(bool (*pred)(void *), void *arg, int timeout_ms);

/* Wait until the ps_stats field at `offset` compares to `want`; returns
 * true on success, false at the deadline (with *last = last value seen). */
enum { TU_EQ, TU_GE };
bool tu_wait_stat(ps_server *s, size_t offset, int cmp, uint64_t want, int timeout_ms,
                  uint64_t *last);
#define TU_STAT_EQ(s, field, v, ms, last)                                                          \
    tu_wait_stat((s), offsetof(ps_stats, field), TU_EQ, (v), (ms), (last))
#define TU_STAT_GE(s, field, v, ms, last)                                                          \
    tu_wait_stat((s), offsetof(ps_stats, field), TU_GE, (v), (ms), (last))

/* ------------------------------------------------------------- latch */

/* A counter with a condition variable: threads add, others wait for a
 * value.  Waits are bounded. */
typedef struct tu_latch {
    pthread_mutex_t mu; /* guards n */
    pthread_cond_t cv;
    int n;
} tu_latch;

void tu_latch_init(tu_latch *l);
void tu_latch_destroy(tu_latch *l);
void tu_latch_add(tu_latch *l, int k);
int tu_latch_get(tu_latch *l);
/* Returns true once n >= want, false after timeout_ms. */
bool tu_latch_wait(tu_latch *l, int want, int timeout_ms);

/* ------------------------------------------------------------- PRNG */

/* splitmix64: deterministic, seedable, good enough for payloads. */
uint64_t tu_rand(uint64_t *state);
/* Fill buf with bytes derived from seed (same seed, same bytes). */
void tu_fill(void *buf, size_t len, uint64_t seed);

/* ------------------------------------------------------------- servers */

/* ps_config_init plus the test defaults: listen on 127.0.0.1:0. */
void tu_config(ps_config *cfg);
/* ps_server_new + ps_server_start; asserts (main thread) that both worked
 * and stores the bound port of listener 0 in *port (if not NULL). */
ps_server *tu_server_start(const ps_config *cfg, const ps_handler *h, void *user, int *port);

/* ps_server_wait, bounded: its result, or -ETIMEDOUT if the server's
 * threads did not finish within timeout_ms. */
int tu_server_wait(ps_server *s, int timeout_ms);

/* ------------------------------------------------------------- clients */

/* Connect to 127.0.0.1:port within timeout_ms.  Returns a blocking fd
 * (CLOEXEC, TCP_NODELAY), or -errno. */
int tu_connect(int port, int timeout_ms);
/* Send all len bytes (no SIGPIPE).  0 or -errno (-ETIMEDOUT). */
int tu_write_all(int fd, const void *buf, size_t len, int timeout_ms);
/* Read exactly len bytes.  Returns len, fewer if EOF came first, or -errno
 * (-ETIMEDOUT). */
ssize_t tu_read_exact(int fd, void *buf, size_t len, int timeout_ms);
/* Read until EOF: 0 at EOF, -EPROTO if data arrived instead, -ETIMEDOUT,
 * or -errno (e.g. -ECONNRESET). */
int tu_expect_eof(int fd, int timeout_ms);
/* Read one '\n'-terminated line (the newline kept, NUL added) into buf.
 * Returns its length, 0 at EOF, or -errno (-EMSGSIZE if cap is too small). */
ssize_t tu_read_line(int fd, char *buf, size_t cap, int timeout_ms);

/* Send data and read the same number of bytes back at the same time (a
 * poll loop, so large payloads cannot deadlock on socket buffers); compare
 * byte for byte.  If shut_wr, shutdown(SHUT_WR) after the last byte and
 * then require EOF after the echo.  Returns 0, -EBADMSG on a mismatch (with
 * *bad_at = offset if not NULL), -ECONNRESET / -EPIPE / -ETIMEDOUT / -errno,
 * or -ENODATA if the stream ended early. */
int tu_echo(int fd, const void *data, size_t len, bool shut_wr, int timeout_ms, size_t *bad_at);

/* tu_echo writing at most `chunk` bytes per send (pipelined small writes). */
int tu_echo_chunked(int fd, const void *data, size_t len, size_t chunk, bool shut_wr,
                    int timeout_ms, size_t *bad_at);

/* Close with SO_LINGER 0 so the peer sees a reset. */
void tu_close_rst(int fd);

/* ------------------------------------------------------------- process */

/* Descriptors open in this process (entries of /proc/self/fd). */
int tu_count_fds(void);
/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft
 * limit. */
long tu_raise_nofile(void);
/* Wait until thread `tid` (a Linux TID) is asleep (state S in
 * /proc/self/task/TID/stat), i.e. blocked in the call under test. */
bool tu_wait_thread_sleeping(int tid, int timeout_ms);
int tu_gettid(void);

/* ------------------------------------------------------------- recorder */

/*
 * An event-style echo handler that checks the per-connection guarantees:
 * on_open first, callbacks never overlap (an atomic flag per connection,
 * held across a few yields when `spin`), on_close exactly once, and (with
 * `pattern`) bytes arrive in order.  Pass the tu_rec as the server's user
 * pointer.
 */
enum { TU_REC_MAX_CONNS = 4096 };

typedef struct tu_rec {
    bool spin;    /* yield inside callbacks */
    bool pattern; /* input is tu_pattern_byte(0), tu_pattern_byte(1), ... */
    atomic_int opens, closes, datas;
    atomic_int overlaps, no_open, order_errors, send_errors;
    atomic_int reasons[8]; /* by ps_close_reason */
    pthread_mutex_t mu;    /* guards ids, nids, nclose */
    uint64_t ids[TU_REC_MAX_CONNS];
    int nclose[TU_REC_MAX_CONNS];
    int nids;
} tu_rec;

void tu_rec_init(tu_rec *r);
void tu_rec_handler(ps_handler *h);
/* The byte at stream position pos of the `pattern` input. */
unsigned char tu_pattern_byte(uint64_t pos);
/* Assert (test thread) that on_close ran n times within a few seconds. */
void tu_rec_wait_closes(tu_rec *r, int n);
/* Assert every connection opened once and closed once, callbacks never
 * overlapped, bytes arrived in order. */
void tu_rec_assert_clean(tu_rec *r, int n);

/* Server counters now. */
ps_stats tu_stats(ps_server *s);
/* Assert (test thread) that closed reaches n and active 0 within a few
 * seconds. */
void tu_assert_all_closed(ps_server *s, uint64_t n);

#endif

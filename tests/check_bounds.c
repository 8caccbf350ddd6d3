/* SPDX-License-Identifier: MIT */
/*
 * check_bounds.c - per-connection bounds against handlers that answer many
 * requests from one read: the hard output limit (max_output), input held
 * back at high water and offered again on drain, and the request clock
 * over messages whose bytes the handler consumed (ps_conn_message_begin).
 *
 * Handlers never call ck_assert; they record what they saw in a struct the
 * test thread asserts on.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

/* What the handlers saw, for the test thread. */
static struct {
    atomic_int reasons[8];
    atomic_int send_enobufs;
    atomic_int closes;
    atomic_size_t max_pending; /* most output pending after an on_data */
    size_t reply;              /* bytes answered per request */
    char *big;                 /* reply bytes: 'A' + request number % 26 */
    size_t high;               /* the server's out_high_water */
    bool obey;                 /* stop answering at high water */
} seen;

static void bounds_reset(size_t reply, size_t high, bool obey)
{
    free(seen.big);
    memset(&seen, 0, sizeof seen);
    seen.big = malloc(26 * reply);
    ck_assert_ptr_nonnull(seen.big);
    for (int i = 0; i < 26; i++)
        memset(seen.big + (size_t)i * reply, 'A' + i, reply);
    seen.reply = reply;
    seen.high = high;
    seen.obey = obey;
}

static bool one_closed(void *arg)
{
    (void)arg;
    return atomic_load(&seen.closes) >= 1;
}

static void rec_close(ps_conn *c, ps_close_reason why, void *user)
{
    (void)c;
    (void)user;
    atomic_fetch_add(&seen.reasons[why], 1);
    atomic_fetch_add(&seen.closes, 1);
}

/* Every '\n' is a request answered with seen.reply bytes ('A' + request
 * number % 26).  Obedient: stops once pending output passes high water and
 * returns only what it answered. */
static size_t amp_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    size_t used = 0;
    uint64_t *nreq = ps_conn_data(c);

    (void)user;
    while (used < len) {
        const char *nl = memchr(data + used, '\n', len - used);
        int rc;
        if (!nl)
            break;
        if (seen.obey && ps_conn_pending(c) > seen.high)
            break;
        rc = ps_conn_send(c, seen.big + (*nreq % 26) * seen.reply, seen.reply);
        if (rc == -ENOBUFS)
            atomic_fetch_add(&seen.send_enobufs, 1);
        if (rc < 0)
            return len;
        (*nreq)++;
        used = (size_t)(nl - data) + 1;
    }
    if (ps_conn_pending(c) > atomic_load(&seen.max_pending))
        atomic_store(&seen.max_pending, ps_conn_pending(c));
    return used;
}

static int amp_on_open(ps_conn *c, void *user)
{
    (void)user;
    ps_conn_set_data(c, calloc(1, sizeof(uint64_t)));
    return ps_conn_data(c) ? 0 : -1;
}

static void amp_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    free(ps_conn_data(c));
    rec_close(c, why, user);
}

static ps_server *amp_server(size_t high, size_t max_output, int *port)
{
    ps_config cfg;
    ps_handler h = {.on_open = amp_on_open, .on_data = amp_on_data, .on_close = amp_on_close};

    tu_config(&cfg);
    cfg.out_high_water = high;
    cfg.out_low_water = high / 4;
    cfg.max_output = max_output;
    return tu_server_start(&cfg, &h, NULL, port);
}

/* A client that sends `lines` requests in one write. */
static int lines_client(int port, int lines)
{
    int fd;
    char *req = malloc((size_t)lines);

    ck_assert_ptr_nonnull(req);
    memset(req, '\n', (size_t)lines);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, req, (size_t)lines, tu_ms(2000)), 0);
    free(req);
    return fd;
}

/* 400 requests of 1 MiB each from 400 bytes, never read: a handler that
 * answers without looking is stopped at max_output (-ENOBUFS, then
 * PS_CLOSE_OUTPUT, counted), not buffered to 400 MiB. */
START_TEST(test_max_output_drops_amplifier)
{
    enum { HIGH = 64 << 10, MAX = 4 << 20, REPLY = 1 << 20 };
    ps_server *s;
    int port, fd;

    bounds_reset(REPLY, HIGH, false);
    s = amp_server(HIGH, MAX, &port);
    fd = lines_client(port, 400);
    ck_assert_msg(tu_wait_until(one_closed, NULL, tu_ms(5000)),
                  "the amplifying connection was never dropped");
    ck_assert_int_eq(atomic_load(&seen.reasons[PS_CLOSE_OUTPUT]), 1);
    ck_assert_int_eq(atomic_load(&seen.send_enobufs), 1);
    ck_assert_uint_le(atomic_load(&seen.max_pending), MAX);
    ck_assert_uint_eq(tu_stats(s).output_closes, 1);
    close(fd);
    ps_server_free(s);
}
END_TEST

/* The obedient handler: 40 requests of 256 KiB sent in one write, then
 * nothing more.  It stops at high water each time; the library offers the
 * rest again as the client reads, so every reply arrives, in order, and
 * pending output never passes high water + one reply. */
START_TEST(test_held_input_offered_again_on_drain)
{
    enum { HIGH = 64 << 10, REPLY = 256 << 10, N = 40 };
    ps_server *s;
    int port, fd;
    char *buf = malloc(REPLY);

    ck_assert_ptr_nonnull(buf);
    bounds_reset(REPLY, HIGH, true);
    s = amp_server(HIGH, 0, &port);
    fd = lines_client(port, N);
    for (int i = 0; i < N; i++) {
        ssize_t n = tu_read_exact(fd, buf, REPLY, tu_ms(5000));
        ck_assert_msg(n == REPLY, "reply %d: got %zd bytes", i, n);
        for (size_t k = 0; k < REPLY; k += 4096)
            ck_assert_int_eq(buf[k], 'A' + i % 26);
    }
    ck_assert_uint_le(atomic_load(&seen.max_pending), HIGH + REPLY);
    ck_assert_int_eq(atomic_load(&seen.closes), 0);
    close(fd);
    ps_server_free(s);
    ck_assert_int_eq(atomic_load(&seen.reasons[PS_CLOSE_EOF]), 1);
    free(buf);
}
END_TEST

/* ------------------------------------------------------ message clock */

/* "BODY n\n" starts a body of n bytes, consumed as it arrives and answered
 * with "OK\n" when complete; other lines are echoed. */
struct body_state {
    size_t left;
};

static size_t body_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    struct body_state *b = ps_conn_data(c);
    size_t used = 0;

    (void)user;
    while (used < len) {
        const char *nl;
        if (b->left > 0) {
            size_t k = len - used < b->left ? len - used : b->left;
            b->left -= k;
            used += k;
            if (b->left == 0) {
                ps_conn_message_end(c);
                ps_conn_send(c, "OK\n", 3);
            }
            continue;
        }
        nl = memchr(data + used, '\n', len - used);
        if (!nl)
            break;
        if (strncmp(data + used, "BODY ", 5) == 0) {
            b->left = strtoul(data + used + 5, NULL, 10);
            ps_conn_message_begin(c);
        } else {
            ps_conn_send(c, data + used, (size_t)(nl - data - used) + 1);
        }
        used = (size_t)(nl - data) + 1;
    }
    return used;
}

static int body_on_open(ps_conn *c, void *user)
{
    (void)user;
    ps_conn_set_data(c, calloc(1, sizeof(struct body_state)));
    return ps_conn_data(c) ? 0 : -1;
}

static void body_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    free(ps_conn_data(c));
    rec_close(c, why, user);
}

/* A body trickled one byte per 50 ms against request_timeout 300 ms and
 * min_rate 100 B/s is cut off although every byte was consumed; a body sent
 * at once passes, and so does a connection that idles after its message
 * ended. */
START_TEST(test_message_clock_covers_consumed_body)
{
    ps_config cfg;
    ps_handler h = {.on_open = body_on_open, .on_data = body_on_data, .on_close = body_on_close};
    ps_server *s;
    int port, slow, fast, rc;
    char line[64], body[1000];
    int64_t t0, end;

    bounds_reset(1, 0, false);
    tu_config(&cfg);
    cfg.request_timeout_ms = tu_ms(300);
    cfg.min_rate = 100;
    s = tu_server_start(&cfg, &h, NULL, &port);

    fast = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fast, 0);
    memset(body, 'b', sizeof body);
    ck_assert_int_eq(tu_write_all(fast, "BODY 1000\n", 10, tu_ms(2000)), 0);
    ck_assert_int_eq(tu_write_all(fast, body, sizeof body, tu_ms(2000)), 0);
    ck_assert_int_eq(tu_read_line(fast, line, sizeof line, tu_ms(2000)), 3);

    slow = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(slow, 0);
    ck_assert_int_eq(tu_write_all(slow, "BODY 1000\n", 10, tu_ms(2000)), 0);
    t0 = tu_now_ms();
    end = t0 + tu_ms(5000);
    while (atomic_load(&seen.reasons[PS_CLOSE_TIMEOUT]) == 0 && tu_now_ms() < end) {
        struct pollfd p = {.fd = slow, .events = POLLIN};
        if (send(slow, "b", 1, MSG_NOSIGNAL) < 0)
            break;
        poll(&p, 1, 50); /* the gap between bytes, ended early by the close */
        if ((p.revents & (POLLIN | POLLHUP)) && recv(slow, line, sizeof line, 0) <= 0)
            break;
    }
    rc = tu_expect_eof(slow, tu_ms(2000));
    ck_assert_msg(rc == 0 || rc == -ECONNRESET, "the trickled body was never cut off (%d)", rc);
    ck_assert(tu_wait_until(one_closed, NULL, tu_ms(2000)));
    ck_assert_int_eq(atomic_load(&seen.reasons[PS_CLOSE_TIMEOUT]), 1);

    /* the fast one idled all this time after its message ended: still served */
    ck_assert_int_eq(tu_echo(fast, "ping\n", 5, false, tu_ms(2000), NULL), 0);
    close(slow);
    close(fast);
    ps_server_free(s);
}
END_TEST

Suite *bounds_suite(void)
{
    Suite *s = suite_create("bounds");
    TCase *tc = tcase_create("bounds");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_max_output_drops_amplifier);
    tcase_add_test(tc, test_held_input_offered_again_on_drain);
    tcase_add_test(tc, test_message_clock_covers_consumed_body);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: MIT */
/*
 * check_features.c - idle timeout, cross-thread pause/resume, backpressure,
 * fairness, partial writes, resets, Unix sockets and datagrams, each
 * against a live in-process server on loopback.
 *
 * Handlers never call ck_assert; they record what they saw in a struct the
 * test thread asserts on.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "../server/echo_handlers.h"
#include "test_util.h"

static ps_stats stats_of(ps_server *s)
{
    ps_stats st;

    ps_server_stats(s, &st);
    return st;
}

/* ============================================================ idle timeout */

static atomic_int close_reasons[8];

static void record_close(ps_conn *c, ps_close_reason why, void *user)
{
    (void)c;
    (void)user;
    atomic_fetch_add(&close_reasons[why], 1);
}

/* A silent client is closed after idle_timeout_ms; a chatty one is not. */
START_TEST(test_idle_timeout)
{
    bool event = _i == 1;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, quiet, busy, idle = tu_ms(400);
    char buf[8];
    int64_t t0;

    memset(close_reasons, 0, sizeof close_reasons);
    tu_config(&cfg);
    cfg.idle_timeout_ms = idle;
    echo_handler_init(&h, event);
    if (event)
        h.on_close = record_close;
    s = tu_server_start(&cfg, &h, NULL, &port);

    quiet = tu_connect(port, tu_ms(2000));
    busy = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(quiet, 0);
    ck_assert_int_ge(busy, 0);
    ck_assert_int_eq(tu_echo(quiet, "q", 1, false, tu_ms(2000), NULL), 0);
    /* The busy client talks every idle/8 for 2.5 idle periods. */
    t0 = tu_now_ms();
    while (tu_now_ms() - t0 < idle * 5 / 2) {
        struct pollfd p = {.fd = quiet, .events = POLLIN};
        ck_assert_int_eq(tu_echo(busy, "b", 1, false, tu_ms(2000), NULL), 0);
        poll(&p, 1, idle / 8); /* doubles as the pause between messages */
    }
    ck_assert_int_eq(tu_expect_eof(quiet, tu_ms(3000)), 0);
    ck_assert_int_eq(tu_echo(busy, "b", 1, false, tu_ms(2000), NULL), 0);
    ck_assert_uint_ge(stats_of(s).timeouts, 1);
    if (event)
        ck_assert_int_ge(atomic_load(&close_reasons[PS_CLOSE_TIMEOUT]), 1);
    close(quiet);
    close(busy);
    ps_server_free(s);
    (void)buf;
}
END_TEST

/* ======================================================= pause and resume */

struct pauser {
    atomic_int messages;
    ps_conn *_Atomic conn;
    tu_latch paused;
};

static size_t pause_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    struct pauser *p = user;
    int n = atomic_fetch_add(&p->messages, 1); /* before the echo the test waits for */

    if (n == 0) {
        ps_conn_pause_read(c);
        atomic_store(&p->conn, c);
    }
    ps_conn_send(c, data, len);
    if (n == 0)
        tu_latch_add(&p->paused, 1);
    return len;
}

/* The pause tests' start: a server with handler h (read_budget: 0 keeps
 * the default), one client that sent `first` and got it back, and (with
 * `paused`) the handler's pause done.  Returns the server; *fd is the
 * client. */
static ps_server *pause_start(struct pauser *p, ps_handler *h, size_t read_budget,
                              const char *first, bool paused, int *fd)
{
    ps_config cfg;
    ps_server *s;
    int port;

    tu_latch_init(&p->paused);
    tu_config(&cfg);
    if (read_budget)
        cfg.read_budget = read_budget;
    s = tu_server_start(&cfg, h, p, &port);
    *fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(*fd, 0);
    ck_assert_int_eq(tu_echo(*fd, first, 1, false, tu_ms(2000), NULL), 0);
    if (paused)
        ck_assert(tu_latch_wait(&p->paused, 1, tu_ms(2000)));
    return s;
}

static void pause_end(struct pauser *p, ps_server *s, int fd)
{
    close(fd);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
    tu_latch_destroy(&p->paused);
}

/* A handler pauses reading; input stays unread until another thread (the
 * test's) resumes the connection. */
START_TEST(test_pause_resume_cross_thread)
{
    struct pauser p = {0};
    ps_handler h = {.on_data = pause_on_data};
    ps_server *s;
    int fd, n;
    char buf[2];
    struct pollfd pf;

    s = pause_start(&p, &h, 0, "1", true, &fd);
    ck_assert_int_eq(tu_write_all(fd, "2", 1, tu_ms(2000)), 0);
    /* Nothing may come back while paused: no event exists for "not
     * delivered", so give it a bounded chance to go wrong. */
    pf = (struct pollfd){.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 300), 0);
    n = atomic_load(&p.messages);
    ck_assert_int_eq(n, 1);
    ps_conn_resume_read(atomic_load(&p.conn));
    ck_assert_int_eq(tu_read_exact(fd, buf, 1, tu_ms(2000)), 1);
    ck_assert_int_eq(buf[0], '2');
    n = atomic_load(&p.messages);
    ck_assert_int_eq(n, 2);
    pause_end(&p, s, fd);
}
END_TEST

/* The peer's FIN reached our kernel: its ACK put the client in FIN_WAIT2. */
static bool fin_acked(void *arg)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;

    return getsockopt(*(int *)arg, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
           ti.tcpi_state == TCP_FIN_WAIT2;
}

/* Bytes and the FIN arrive while reading is paused.  Connections wait in
 * epoll edge-triggered: the idle connection ignores that readiness, and a
 * resume must still find both the bytes and the EOF behind them. */
START_TEST(test_pause_hides_no_eof)
{
    struct pauser p = {0};
    ps_handler h = {.on_data = pause_on_data};
    ps_server *s;
    int fd, n;
    char buf[2];
    struct pollfd pf;

    s = pause_start(&p, &h, 0, "1", true, &fd);
    /* Let the turn end (nothing tells when): the bytes and the FIN must
     * find the connection idle in epoll, not still owned. */
    pf = (struct pollfd){.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 100), 0);
    ck_assert_int_eq(tu_write_all(fd, "2", 1, tu_ms(2000)), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert(tu_wait_until(fin_acked, &fd, tu_ms(2000)));
    /* the server holds both; a poller sees the edge and, paused, leaves it */
    ck_assert_int_eq(poll(&pf, 1, 200), 0);
    ps_conn_resume_read(atomic_load(&p.conn));
    ck_assert_int_eq(tu_read_exact(fd, buf, 1, tu_ms(2000)), 1);
    ck_assert_int_eq(buf[0], '2');
    /* then the EOF: the handler has no on_eof, so the server closes */
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    n = atomic_load(&p.messages);
    ck_assert_int_eq(n, 2);
    pause_end(&p, s, fd);
}
END_TEST

/* Pauses on a message that starts with 'P'; echoes everything. */
static size_t pause_on_p(ps_conn *c, const char *data, size_t len, void *user)
{
    struct pauser *p = user;

    atomic_fetch_add(&p->messages, 1);
    if (data[0] == 'P') {
        ps_conn_pause_read(c);
        atomic_store(&p->conn, c);
    }
    ps_conn_send(c, data, len);
    if (data[0] == 'P')
        tu_latch_add(&p->paused, 1);
    return len;
}

/* The FIN's edge is seen once, by a turn that then pauses with bytes still
 * unread: after the resume, and a re-queue for the read budget, the short
 * read that empties the socket must not be taken for "drained" - the EOF
 * is behind it. */
START_TEST(test_pause_keeps_fin)
{
    static const char msg[] = "Pabcdefghi";
    struct pauser p = {0};
    ps_handler h = {.on_data = pause_on_p};
    ps_server *s;
    int fd;
    char buf[sizeof msg];
    struct pollfd pf;

    s = pause_start(&p, &h, 4, "p", false, &fd); /* lower case: no pause yet */
    /* let it go idle in epoll (nothing tells when), so that the bytes and
     * the FIN arrive as one edge */
    pf = (struct pollfd){.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&pf, 1, 100), 0);
    ck_assert_int_eq(tu_write_all(fd, msg, sizeof msg - 1, tu_ms(2000)), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert(tu_latch_wait(&p.paused, 1, tu_ms(2000)));
    ck_assert_int_eq(tu_read_exact(fd, buf, 4, tu_ms(2000)), 4);
    ps_conn_resume_read(atomic_load(&p.conn));
    ck_assert_int_eq(tu_read_exact(fd, buf + 4, sizeof msg - 5, tu_ms(2000)), sizeof msg - 5);
    ck_assert_int_eq(memcmp(buf, msg, sizeof msg - 1), 0);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    pause_end(&p, s, fd);
}
END_TEST

/* Everything this client sent is in the server's receive queue. */
static bool all_acked(void *arg)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;

    return getsockopt(*(int *)arg, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_unacked == 0;
}

/* TCP stops a read at the urgent mark: the short read before it is not
 * the end of what is queued.  Bytes, an urgent byte (out of band, so not
 * echoed) and more bytes arrive while reading is paused; after the resume
 * all the bytes must come back without the peer sending more. */
START_TEST(test_urgent_data_no_stall)
{
    struct pauser p = {0};
    ps_handler h = {.on_data = pause_on_p};
    ps_server *s;
    int fd;
    char buf[8];
    struct pollfd pf;

    s = pause_start(&p, &h, 0, "P", true, &fd);
    pf = (struct pollfd){.fd = fd, .events = POLLIN}; /* let it go idle in epoll */
    ck_assert_int_eq(poll(&pf, 1, 100), 0);
    ck_assert_int_eq(send(fd, "abc", 3, 0), 3);
    ck_assert_int_eq(send(fd, "X", 1, MSG_OOB), 1);
    ck_assert_int_eq(send(fd, "def", 3, 0), 3);
    ck_assert(tu_wait_until(all_acked, &fd, tu_ms(2000)));
    ck_assert_int_eq(poll(&pf, 1, 100), 0); /* paused: nothing comes back */
    ps_conn_resume_read(atomic_load(&p.conn));
    ck_assert_int_eq(tu_read_exact(fd, buf, 6, tu_ms(3000)), 6);
    ck_assert_int_eq(memcmp(buf, "abcdef", 6), 0);
    pause_end(&p, s, fd);
}
END_TEST

/* ================================================= backpressure and bounds */

/* A peer that writes and never reads: the echo server stops reading it once
 * its pending output passes high water, so what the server holds in user
 * space (read but not yet written) stays bounded.  Then the peer reads
 * everything back, byte for byte. */
START_TEST(test_never_reading_peer_is_bounded)
{
    enum { HIGH = 64 << 10, BUDGET = 16 << 10, TOTAL = 24 << 20 };
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_stats st;
    int port, fd, flags;
    char *out = malloc(TOTAL), *in = malloc(TOTAL);
    size_t sent = 0;

    ck_assert(out && in);
    tu_fill(out, TOTAL, 42);
    tu_config(&cfg);
    cfg.out_high_water = HIGH;
    cfg.out_low_water = HIGH / 4;
    cfg.read_budget = BUDGET;
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    for (;;) { /* write until the socket stays full for 300 ms */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        ssize_t n = send(fd, out + sent, TOTAL - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        ck_assert(n < 0 && errno == EAGAIN);
        if (poll(&p, 1, 300) == 0)
            break;
    }
    ck_assert_uint_lt(sent, TOTAL); /* the server really stopped reading */
    st = stats_of(s);
    ck_assert_uint_le(st.bytes_in - st.bytes_out, HIGH + BUDGET);
    /* Now read: everything comes back, in order, while the rest goes out. */
    {
        size_t got = 0;
        int64_t deadline = tu_now_ms() + tu_ms(30000);
        while (got < TOTAL && tu_now_ms() < deadline) {
            struct pollfd p = {.fd = fd, .events = POLLIN | (sent < TOTAL ? POLLOUT : 0)};
            ssize_t n;
            poll(&p, 1, 100);
            if (sent < TOTAL && (p.revents & POLLOUT)) {
                n = send(fd, out + sent, TOTAL - sent, MSG_NOSIGNAL);
                if (n > 0)
                    sent += (size_t)n;
            }
            n = recv(fd, in + got, TOTAL - got, 0);
            if (n > 0)
                got += (size_t)n;
            else
                ck_assert_msg(n < 0 && errno == EAGAIN, "recv %zd errno %d at %zu", n, errno, got);
        }
        ck_assert_uint_eq(got, TOTAL);
        ck_assert(memcmp(in, out, TOTAL) == 0);
    }
    close(fd);
    ps_server_free(s);
    free(out);
    free(in);
}
END_TEST

/* A client with a tiny receive buffer that reads in small, slow bites:
 * every partial write on the server side must resume where it stopped. */
START_TEST(test_partial_writes_slow_reader)
{
    enum { TOTAL = 4 << 20 };
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd, small = 4096;
    char *data = malloc(TOTAL);

    ck_assert(data != NULL);
    tu_fill(data, TOTAL, 7);
    tu_config(&cfg);
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    }
    ck_assert_int_eq(tu_echo_chunked(fd, data, TOTAL, 1000, true, tu_ms(60000), NULL), 0);
    close(fd);
    ps_server_free(s);
    free(data);
}
END_TEST

/* A peer that resets while the server is writing to it: that connection
 * ends (counted as an error), the server and other clients carry on. */
START_TEST(test_reset_during_write)
{
    bool event = _i == 1;
    enum { TOTAL = 8 << 20 };
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd, other;
    char *data = malloc(TOTAL);
    uint64_t last;

    ck_assert(data != NULL);
    tu_fill(data, TOTAL, 9);
    tu_config(&cfg);
    cfg.workers = 1;
    echo_handler_init(&h, event);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    /* Fill both directions without reading, then reset. */
    {
        int fl = fcntl(fd, F_GETFL);
        size_t sent = 0;
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        for (int tries = 0; tries < 100 && sent < TOTAL; tries++) {
            ssize_t n = send(fd, data + sent, TOTAL - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                if (poll(&p, 1, 100) == 0)
                    break;
            }
        }
    }
    tu_close_rst(fd);
    ck_assert(TU_STAT_EQ(s, active, 0, tu_ms(5000), &last));
    other = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(other, 0);
    ck_assert_int_eq(tu_echo(other, data, 100000, true, tu_ms(5000), NULL), 0);
    close(other);
    ps_server_free(s);
    free(data);
}
END_TEST

/* ================================================================ fairness */

struct flooder {
    int port;
    atomic_bool stop;
    int rc;
};

/* Streams data as fast as the server echoes it, until told to stop. */
static void *flood_main(void *arg)
{
    struct flooder *f = arg;
    static char chunk[65536];
    int fd = tu_connect(f->port, 5000);

    if (fd < 0) {
        f->rc = fd;
        return NULL;
    }
    while (!atomic_load(&f->stop)) {
        int rc = tu_echo(fd, chunk, sizeof chunk, false, 10000, NULL);
        if (rc < 0) {
            f->rc = rc;
            break;
        }
    }
    close(fd);
    return NULL;
}

/* With one worker, two connections streaming bulk data must not starve a
 * small request/response client: each turn reads at most read_budget. */
START_TEST(test_fairness_one_worker)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    struct flooder f[2];
    pthread_t th[2];
    int port, fd, i;

    tu_config(&cfg);
    cfg.workers = 1;
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (i = 0; i < 2; i++) {
        f[i] = (struct flooder){.port = port};
        pthread_create(&th[i], NULL, flood_main, &f[i]);
    }
    ck_assert(TU_STAT_GE(s, bytes_out, 4 << 20, tu_ms(10000), NULL)); /* floods running */
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    for (i = 0; i < 50; i++)
        ck_assert_int_eq(tu_echo(fd, "ping\n", 5, false, tu_ms(2000), NULL), 0);
    close(fd);
    for (i = 0; i < 2; i++) {
        atomic_store(&f[i].stop, true);
        pthread_join(th[i], NULL);
        ck_assert_int_eq(f[i].rc, 0);
    }
    ps_server_free(s);
}
END_TEST

/* ============================================================ Unix sockets */

static void unix_path(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/poolsrv-test-%d-%s.sock", (int)getpid(), tag);
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Echo over a Unix socket; a second server on the same live path fails
 * with a clear message; stop removes the file. */
/* cfg.tcp_nodelay reaches every accepted socket, whether the kernel copies
 * it from the listener (Linux: then no setsockopt per connection) or not,
 * and stays off when cleared. */
struct nodelay_seen {
    atomic_int opens, with;
};

static int nodelay_open(ps_conn *c, void *user)
{
    struct nodelay_seen *n = user;
    int v = 0;
    socklen_t len = sizeof v;

    if (getsockopt(ps_conn_fd(c), IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v)
        atomic_fetch_add(&n->with, 1);
    atomic_fetch_add(&n->opens, 1);
    return 0;
}

static size_t nodelay_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    ps_conn_send(c, data, len);
    return len;
}

START_TEST(test_tcp_nodelay)
{
    enum { N = 40 };
    bool on = _i == 0;
    struct nodelay_seen n = {0};
    ps_config cfg;
    ps_handler h = {.on_open = nodelay_open, .on_data = nodelay_data};
    ps_server *s;
    int port, fd[N];

    tu_config(&cfg);
    cfg.tcp_nodelay = on;
    s = tu_server_start(&cfg, &h, &n, &port);
    for (int i = 0; i < N; i++) { /* at once: several accept batches, both workers */
        fd[i] = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd[i], 0);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(tu_echo(fd[i], "x", 1, false, tu_ms(2000), NULL), 0);
        close(fd[i]);
    }
    ck_assert_int_eq(atomic_load(&n.opens), N);
    ck_assert_int_eq(atomic_load(&n.with), on ? N : 0);
    tu_assert_all_closed(s, N);
    ps_server_free(s);
}
END_TEST

START_TEST(test_unix_listener)
{
    char path[108], addr[120], name[120];
    ps_config cfg;
    ps_handler h;
    ps_server *s, *s2;
    ps_err err;
    int fd;
    struct stat st;

    unix_path(path, sizeof path, "live");
    snprintf(addr, sizeof addr, "unix:%s", path);
    unlink(path);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, addr);
    echo_handler_init(&h, _i == 1);
    s = tu_server_start(&cfg, &h, NULL, NULL);
    snprintf(name, sizeof name, "unix:%s", path);
    ck_assert_str_eq(ps_server_listen_name(s, 0), name);
    ck_assert_int_eq(ps_server_port(s, 0), -EINVAL);
    fd = unix_connect(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, "over unix\n", 10, true, tu_ms(2000), NULL), 0);
    close(fd);

    s2 = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(s2);
    ck_assert_int_eq(ps_server_start(s2, &err), -EADDRINUSE);
    ck_assert_ptr_nonnull(strstr(err.msg, "already listening"));
    ps_server_free(s2);
    ck_assert_int_eq(stat(path, &st), 0); /* the failed start did not remove it */

    ps_server_stop(s);
    ck_assert_int_eq(tu_server_wait(s, tu_ms(5000)), 0);
    ck_assert_int_eq(stat(path, &st), -1);
    ps_server_free(s);
}
END_TEST

/* In a forked child that has become uid/gid (no supplementary groups):
 * connect to path and echo a byte.  Returns 0, or the errno that failed
 * (EACCES: the file's mode refused us), or 255 if the child could not
 * drop privileges.  Only async-signal-safe calls after fork (the server's
 * threads are not in the child). */
static int connect_as(const char *path, uid_t uid, gid_t gid)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int status;
    pid_t pid;

    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c = 'x';
        int fd;
        alarm(10); /* bounded whatever happens */
        if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
            _exit(255);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
            _exit(errno);
        if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1 || c != 'x')
            _exit(EPROTO);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* unix_mode / unix_owner / unix_group: the socket file gets them, and
 * another user is refused or let in as they say.  The default is the
 * umask's mode.  Needs root (to become another user and to chown). */
START_TEST(test_unix_perms)
{
    static const struct {
        int mode, owner, group; /* owner/group: -1 leave, 1 = nobody/nogroup */
        int want_err;           /* connecting as nobody:nogroup */
    } cases[] = {
        {0600, -1, -1, EACCES}, /* root's, owner-only: nobody is refused */
        {0666, -1, -1, 0},      /* the same socket open to all */
        {0600, 1, -1, 0},       /* owner-only, nobody owns it */
        {0660, -1, 1, 0},       /* group nogroup may */
        {0606, -1, 1, EACCES},  /* group bits apply to the group: nogroup may not */
    };
    char path[108], addr[120];
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    struct stat st;
    struct passwd *pw;
    mode_t um;
    uid_t nobody;
    gid_t nogroup;
    size_t i;
    int got;

    if (geteuid() != 0) {
        fprintf(stderr, "skip test_unix_perms: needs root (to chown and to connect as nobody)\n");
        return;
    }
    pw = getpwnam("nobody");
    ck_assert_msg(pw != NULL, "no user 'nobody'");
    nobody = pw->pw_uid;
    nogroup = pw->pw_gid;
    unix_path(path, sizeof path, "perms");
    snprintf(addr, sizeof addr, "unix:%s", path);
    echo_handler_init(&h, true);

    /* Default: as bind created it, 0777 minus the umask. */
    um = umask(022);
    unlink(path);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, addr);
    s = tu_server_start(&cfg, &h, NULL, NULL);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0755);
    ck_assert_int_eq(connect_as(path, nobody, nogroup), EACCES); /* no write bit for others */
    ps_server_free(s);
    umask(um);

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ps_config_init(&cfg);
        ps_config_add_listen(&cfg, addr);
        cfg.unix_mode = cases[i].mode;
        cfg.unix_owner = cases[i].owner == 1 ? (int)nobody : -1;
        cfg.unix_group = cases[i].group == 1 ? (int)nogroup : -1;
        s = tu_server_start(&cfg, &h, NULL, NULL);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, (unsigned)cases[i].mode);
        ck_assert_uint_eq(st.st_uid, cases[i].owner == 1 ? nobody : 0);
        ck_assert_uint_eq(st.st_gid, cases[i].group == 1 ? nogroup : getegid());
        got = connect_as(path, nobody, nogroup);
        ck_assert_msg(got == cases[i].want_err, "case %zu (mode %04o): nobody got %d, want %d", i,
                      (unsigned)cases[i].mode, got, cases[i].want_err);
        ps_server_free(s);
    }
}
END_TEST

/* The text forms the programs' --unix-* flags pass, and the bounds. */
START_TEST(test_unix_perms_config)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;

    ps_config_init(&cfg);
    ck_assert_int_eq(cfg.unix_mode, 0);
    ck_assert_int_eq(cfg.unix_owner, -1);
    ck_assert_int_eq(cfg.unix_group, -1);
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "660", "123", "root", &err), 0);
    ck_assert_int_eq(cfg.unix_mode, 0660);
    ck_assert_int_eq(cfg.unix_owner, 123);
    ck_assert_int_eq(cfg.unix_group, 0);
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "0600", "root", NULL, &err), 0);
    ck_assert_int_eq(cfg.unix_mode, 0600);
    ck_assert_int_eq(cfg.unix_owner, 0);
    ck_assert_int_eq(cfg.unix_group, 0); /* NULL left it */
    /* Refused, naming the value, and nothing changed. */
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "0", NULL, NULL, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'0'"));
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "0777x", NULL, NULL, &err), -EINVAL);
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "1777", NULL, NULL, &err), -EINVAL);
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "8", NULL, NULL, &err), -EINVAL);
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "", NULL, NULL, &err), -EINVAL);
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, "640", "no-such-user-here", NULL, &err),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "no such user"));
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, NULL, NULL, "no-such-group-here", &err),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "no such group"));
    ck_assert_int_eq(ps_config_set_unix_perms(&cfg, NULL, "99999999999", NULL, &err), -EINVAL);
    ck_assert_int_eq(cfg.unix_mode, 0600);
    ck_assert_int_eq(cfg.unix_owner, 0);
    /* Direct settings are validated with the rest. */
    tu_config(&cfg);
    echo_handler_init(&h, true);
    cfg.unix_mode = 01000;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "unix_mode"));
    cfg.unix_mode = 0;
    cfg.unix_owner = -2;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "unix_owner"));
    cfg.unix_owner = -1;
    cfg.unix_group = -7;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "unix_group"));
}
END_TEST

/* A socket file left by a dead server is replaced; a regular file is not. */
START_TEST(test_unix_stale_and_not_socket)
{
    char path[108], addr[120];
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    ps_err err;
    int fd;

    unix_path(path, sizeof path, "stale");
    unlink(path);
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    close(fd); /* the file stays: a "dead server" */
    snprintf(addr, sizeof addr, "unix:%s", path);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, addr);
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, NULL);
    fd = unix_connect(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(fd, "x", 1, true, tu_ms(2000), NULL), 0);
    close(fd);
    ps_server_free(s);

    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ps_server_start(s, &err), -EEXIST);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a socket"));
    ps_server_free(s);
    unlink(path);
}
END_TEST

/* =============================================================== datagrams */

static int udp_socket(int timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return sin;
}

static ssize_t udp_roundtrip(int fd, int port, const void *msg, size_t len, void *reply,
                             size_t cap)
{
    struct sockaddr_in to = loopback(port);

    if (sendto(fd, msg, len, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)len)
        return -errno;
    return recv(fd, reply, cap, 0);
}

/* UDP echo on the TCP listener's port (udp_same_port, port 0), and an
 * explicit udp: listener; payloads verified. */
START_TEST(test_udp_echo)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd, i;
    char msg[1400], reply[2048];

    tu_config(&cfg);
    cfg.udp_same_port = true;
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    ck_assert_int_eq(ps_server_nlisteners(s), 2);
    ck_assert_int_eq(ps_server_port(s, 1), port);
    ck_assert_ptr_nonnull(strstr(ps_server_listen_name(s, 1), "udp:127.0.0.1:"));
    fd = udp_socket(tu_ms(2000));
    for (i = 0; i < 20; i++) {
        size_t len = 1 + (size_t)i * 70;
        tu_fill(msg, len, (uint64_t)i);
        ck_assert_int_eq(udp_roundtrip(fd, port, msg, len, reply, sizeof reply), (ssize_t)len);
        ck_assert(memcmp(msg, reply, len) == 0);
    }
    close(fd);
    ck_assert_uint_eq(stats_of(s).datagrams, 20);
    ps_server_free(s);
}
END_TEST

struct gate {
    tu_latch entered;
    tu_latch release;
    atomic_int seen;
};

static void gated_datagram(ps_dgram *d, const void *data, size_t len, const struct sockaddr *from,
                           void *user)
{
    struct gate *g = user;

    (void)from;
    if (atomic_fetch_add(&g->seen, 1) == 0) {
        tu_latch_add(&g->entered, 1);
        tu_latch_wait(&g->release, 1, 20000);
    }
    ps_dgram_reply(d, data, len);
}

/* With the only worker held and a one-slot queue, a burst of datagrams is
 * dropped and counted, never blocking the reactor; afterwards the server
 * still answers. */
START_TEST(test_udp_flood_full_queue)
{
    ps_config cfg;
    struct gate g = {0};
    ps_handler h = {.on_datagram = gated_datagram};
    ps_server *s;
    int port, fd, i;
    struct sockaddr_in to;
    char reply[16];
    uint64_t last;

    tu_latch_init(&g.entered);
    tu_latch_init(&g.release);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "udp:127.0.0.1:0");
    cfg.workers = 1;
    cfg.queue_capacity = 1;
    s = tu_server_start(&cfg, &h, &g, &port);
    to = loopback(port);
    fd = udp_socket(tu_ms(3000));
    sendto(fd, "first", 5, 0, (struct sockaddr *)&to, sizeof to);
    ck_assert(tu_latch_wait(&g.entered, 1, tu_ms(3000)));
    for (i = 0; i < 50; i++)
        sendto(fd, "flood", 5, 0, (struct sockaddr *)&to, sizeof to);
    ck_assert_msg(TU_STAT_GE(s, datagrams_dropped, 40, tu_ms(3000), &last), "dropped %llu",
                  (unsigned long long)last);
    tu_latch_add(&g.release, 1);
    /* drain the replies to the first and the queued one */
    while (recv(fd, reply, sizeof reply, MSG_DONTWAIT) > 0)
        ;
    ck_assert(TU_STAT_EQ(s, queued, 0, tu_ms(3000), &last));
    while (recv(fd, reply, sizeof reply, MSG_DONTWAIT) > 0)
        ;
    /* Late replies to the flood may still arrive: read until ours. */
    {
        struct sockaddr_in to2 = loopback(port);
        ssize_t n = -1;
        sendto(fd, "after", 5, 0, (struct sockaddr *)&to2, sizeof to2);
        for (i = 0; i < 60; i++) {
            n = recv(fd, reply, sizeof reply, 0);
            if (n == 5 && memcmp(reply, "after", 5) == 0)
                break;
        }
        ck_assert_msg(n == 5 && memcmp(reply, "after", 5) == 0, "no reply to the last datagram");
    }
    ck_assert_uint_eq(stats_of(s).datagrams + stats_of(s).datagrams_dropped, 52);
    close(fd);
    ps_server_free(s);
    tu_latch_destroy(&g.entered);
    tu_latch_destroy(&g.release);
}
END_TEST

/* A datagram larger than max_datagram is dropped and counted, never
 * echoed cut short. */
START_TEST(test_udp_oversized)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd;
    char big[300], reply[400];
    ssize_t n;

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "udp:127.0.0.1:0");
    cfg.max_datagram = 200;
    echo_handler_init(&h, true);
    h.on_data = NULL; /* datagrams only */
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = udp_socket(tu_ms(2000));
    memset(big, 'B', sizeof big);
    {
        struct sockaddr_in to = loopback(port);
        sendto(fd, big, sizeof big, 0, (struct sockaddr *)&to, sizeof to);
    }
    n = udp_roundtrip(fd, port, big, 200, reply, sizeof reply);
    ck_assert_int_eq(n, 200); /* the first reply is the 200-byte one */
    ck_assert_uint_eq(stats_of(s).datagrams_truncated, 1);
    close(fd);
    ps_server_free(s);
}
END_TEST

START_TEST(test_udp_config_errors)
{
    ps_config cfg;
    ps_handler h = {.serve = echo_serve};
    ps_err err;

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "udp:127.0.0.1:0");
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "on_datagram"));
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "udp:unix:/tmp/x");
    h.on_datagram = echo_on_datagram;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "udp needs an IP address"));
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "127.0.0.1:0");
    cfg.max_datagram = 70000;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "max_datagram"));
}
END_TEST


/* ============================================= slow peers, limits, stop x2 */

/* Consumes only complete lines: anything after the last '\n' stays as
 * unconsumed input, i.e. a partial message for the request timeout. */
static size_t line_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    const char *nl = memrchr(data, '\n', len);
    size_t used = nl ? (size_t)(nl - data) + 1 : 0;

    (void)user;
    if (used)
        ps_conn_send(c, data, used);
    return used;
}

/* Blocking twin of line_on_data: echoes whatever arrives; its reads are
 * what the request allowance bounds. */
static void slow_serve(ps_conn *c, void *user)
{
    char buf[256];
    ssize_t n;

    (void)user;
    while ((n = ps_conn_read(c, buf, sizeof buf)) > 0)
        if (ps_conn_write_all(c, buf, (size_t)n) < 0)
            return;
    if (n == -ETIMEDOUT)
        atomic_fetch_add(&close_reasons[PS_CLOSE_TIMEOUT], 1);
}

/* Sends one byte every `gap_ms` until the server closes or `limit_ms`
 * passes.  Returns the ms it took for the server to close, or -1. */
static int trickle_until_closed(int fd, int gap_ms, int limit_ms)
{
    int64_t t0 = tu_now_ms();

    while (tu_now_ms() - t0 < limit_ms) {
        int64_t next = tu_now_ms() + gap_ms;
        if (send(fd, "x", 1, MSG_NOSIGNAL) < 0)
            return (int)(tu_now_ms() - t0);
        /* the gap doubles as the wait for the server's close (echoes of
         * our bytes are read and dropped) */
        for (int64_t left; (left = next - tu_now_ms()) > 0;) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            char b[64];
            if (poll(&p, 1, (int)left) > 0 && recv(fd, b, sizeof b, 0) <= 0)
                return (int)(tu_now_ms() - t0);
        }
    }
    return -1;
}

/* Slowloris: a peer trickling a message at 20 B/s against min_rate 100 B/s
 * is cut off; a peer sending whole lines at once is not. */
START_TEST(test_request_timeout_min_rate)
{
    bool event = _i == 1;
    ps_config cfg;
    ps_handler h = {0};
    ps_server *s;
    int port, slow, fast, took;

    memset(close_reasons, 0, sizeof close_reasons);
    tu_config(&cfg);
    cfg.request_timeout_ms = tu_ms(300);
    cfg.min_rate = 100;
    if (event) {
        h.on_data = line_on_data;
        h.on_close = record_close;
    } else {
        h.serve = slow_serve;
    }
    s = tu_server_start(&cfg, &h, NULL, &port);
    slow = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(slow, 0);
    took = trickle_until_closed(slow, 50, tu_ms(5000));
    ck_assert_msg(took >= 0, "the trickling peer was never cut off");
    /* (connected now: a blocking serve counts all its waiting, idle or not) */
    fast = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fast, 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_echo(fast, "whole line\n", 11, false, tu_ms(2000), NULL), 0);
    /* event: on_close saw the reason; blocking: ps_conn_read returned it */
    ck_assert_int_eq(atomic_load(&close_reasons[PS_CLOSE_TIMEOUT]), 1);
    ck_assert_uint_ge(stats_of(s).timeouts, 1);
    close(slow);
    close(fast);
    ps_server_free(s);
}
END_TEST

/* Connected and silent: closed after first_byte_timeout_ms. */
START_TEST(test_first_byte_timeout)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd, talker;

    tu_config(&cfg);
    cfg.first_byte_timeout_ms = tu_ms(200);
    echo_handler_init(&h, _i == 1);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    talker = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_echo(talker, "hi", 2, false, tu_ms(2000), NULL), 0);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    ck_assert_int_eq(tu_echo(talker, "hi", 2, false, tu_ms(2000), NULL), 0);
    close(fd);
    close(talker);
    ps_server_free(s);
}
END_TEST


/* A connection whose bytes wait unread because every worker is busy is not
 * "silent": the first-byte timeout cuts the silent peer holding the only
 * worker, and the queued one that did send is then served. */
START_TEST(test_first_byte_spares_queued)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, silent, queued;

    tu_config(&cfg);
    cfg.workers = 1;
    cfg.first_byte_timeout_ms = tu_ms(300);
    echo_handler_init(&h, false);
    s = tu_server_start(&cfg, &h, NULL, &port);
    silent = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(silent, 0);
    ck_assert(TU_STAT_EQ(s, queued, 0, tu_ms(2000), NULL)); /* the worker holds it */
    queued = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(queued, 0);
    ck_assert_int_eq(tu_write_all(queued, "waiting", 7, tu_ms(1000)), 0);
    ck_assert_int_eq(tu_expect_eof(silent, tu_ms(3000)), 0);
    {
        char buf[8] = {0};
        ck_assert_int_eq(tu_read_exact(queued, buf, 7, tu_ms(3000)), 7);
        ck_assert_str_eq(buf, "waiting");
    }
    ck_assert_int_eq(tu_echo(queued, " served", 7, true, tu_ms(3000), NULL), 0);
    close(silent);
    close(queued);
    ps_server_free(s);
}
END_TEST

/* A peer that never reads while the server has output for it: event style
 * closes it after write_timeout_ms, blocking write_all returns -ETIMEDOUT.
 * Either way the worker is not pinned: another client is served. */
START_TEST(test_write_timeout)
{
    bool event = _i == 1;
    enum { CHUNK = 1 << 20 };
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd, other, fl, i;
    char *data = calloc(1, CHUNK);
    uint64_t last;

    memset(close_reasons, 0, sizeof close_reasons);
    tu_config(&cfg);
    cfg.workers = 1;
    cfg.write_timeout_ms = tu_ms(300);
    cfg.out_high_water = 256 << 10;
    cfg.out_low_water = 64 << 10;
    echo_handler_init(&h, event);
    if (event)
        h.on_close = record_close;
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    for (i = 0; i < 64; i++) { /* fill until the server stops taking it */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (send(fd, data, CHUNK, MSG_NOSIGNAL) < 0 && poll(&p, 1, 200) == 0)
            break;
    }
    ck_assert_msg(TU_STAT_GE(s, timeouts, 1, tu_ms(5000), &last), "timeouts %llu",
                  (unsigned long long)last);
    ck_assert(TU_STAT_EQ(s, active, 0, tu_ms(5000), &last));
    if (event)
        ck_assert_int_eq(atomic_load(&close_reasons[PS_CLOSE_TIMEOUT]), 1);
    other = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(other, 0);
    ck_assert_int_eq(tu_echo(other, "next", 4, true, tu_ms(2000), NULL), 0);
    close(other);
    close(fd);
    ps_server_free(s);
    free(data);
}
END_TEST

START_TEST(test_max_lifetime)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd;
    int64_t t0;

    tu_config(&cfg);
    cfg.max_lifetime_ms = tu_ms(300);
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    t0 = tu_now_ms();
    /* busy all along, and closed all the same */
    while (tu_echo(fd, "x", 1, false, tu_ms(2000), NULL) == 0 && tu_now_ms() - t0 < tu_ms(5000))
        ;
    ck_assert_int_lt(tu_now_ms() - t0, tu_ms(5000));
    ck_assert_int_ge(tu_now_ms() - t0, tu_ms(300) - 50);
    close(fd);
    ps_server_free(s);
}
END_TEST

static int connect_from(const char *src, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct sockaddr_in to = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    inet_pton(AF_INET, src, &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* max_connections and max_per_client refuse the excess with the busy
 * message; room frees when a connection closes. */
START_TEST(test_connection_limits)
{
    bool per_client = _i == 1;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, a, b, c, d;
    char line[64];
    uint64_t last;

    tu_config(&cfg);
    if (per_client)
        cfg.max_per_client = 2;
    else
        cfg.max_connections = 2;
    echo_handler_init(&h, true);
    h.busy_msg = "busy\n";
    h.busy_len = 5;
    s = tu_server_start(&cfg, &h, NULL, &port);
    a = connect_from("127.0.0.1", port);
    b = connect_from("127.0.0.1", port);
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(b, 0);
    ck_assert_int_eq(tu_echo(a, "a", 1, false, tu_ms(2000), NULL), 0);
    ck_assert_int_eq(tu_echo(b, "b", 1, false, tu_ms(2000), NULL), 0);
    c = connect_from("127.0.0.1", port);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(tu_read_line(c, line, sizeof line, tu_ms(2000)), 5);
    ck_assert_str_eq(line, "busy\n");
    ck_assert_int_eq(tu_expect_eof(c, tu_ms(2000)), 0);
    ck_assert_uint_eq(stats_of(s).limit_refused, 1);
    close(c);
    d = connect_from("127.0.0.2", port); /* another client address */
    ck_assert_int_ge(d, 0);
    if (per_client) {
        ck_assert_int_eq(tu_echo(d, "d", 1, false, tu_ms(2000), NULL), 0);
    } else {
        ck_assert_int_eq(tu_read_line(d, line, sizeof line, tu_ms(2000)), 5);
    }
    close(d);
    close(a);
    ck_assert(TU_STAT_EQ(s, active, 1, tu_ms(2000), &last));
    a = connect_from("127.0.0.1", port);
    ck_assert_int_eq(tu_echo(a, "again", 5, false, tu_ms(2000), NULL), 0);
    close(a);
    close(b);
    ps_server_free(s);
}
END_TEST

static void *wait_thread(void *arg)
{
    ps_server_wait(arg);
    return NULL;
}

/* drain_timeout_ms = -1 waits for ever; ps_server_stop_now ends the drain. */
START_TEST(test_stop_now)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    pthread_t th;
    int port, fd;
    struct pollfd p;

    tu_config(&cfg);
    cfg.drain_timeout_ms = -1;
    echo_handler_init(&h, _i == 1);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_eq(tu_echo(fd, "x", 1, false, tu_ms(2000), NULL), 0);
    ps_server_stop(s);
    pthread_create(&th, NULL, wait_thread, s);
    /* still draining: the connection stays served */
    ck_assert_int_eq(tu_echo(fd, "y", 1, false, tu_ms(2000), NULL), 0);
    p = (struct pollfd){.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 200), 0);
    ps_server_stop(s); /* again: still just a drain */
    ck_assert_int_eq(tu_echo(fd, "z", 1, false, tu_ms(2000), NULL), 0);
    ps_server_stop_now(s);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    pthread_join(th, NULL);
    ck_assert_uint_eq(stats_of(s).forced_closes, 1);
    close(fd);
    ps_server_free(s);
}
END_TEST

/* ======================================================= inherited sockets */

/* "fd:N" adopts a socket made elsewhere (a bound TCP socket not yet
 * listening, and a UDP one); the systemd helper reads LISTEN_PID/FDS. */
START_TEST(test_inherited_fd)
{
    struct sockaddr_in sin = loopback(0);
    socklen_t len = sizeof sin;
    char a1[32], a2[32], reply[8];
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int tfd, ufd, port, fd;

    tfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(bind(tfd, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(tfd, (struct sockaddr *)&sin, &len);
    port = ntohs(sin.sin_port);
    ufd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_eq(bind(ufd, (struct sockaddr *)&sin, sizeof sin), 0);
    snprintf(a1, sizeof a1, "fd:%d", tfd);
    snprintf(a2, sizeof a2, "fd:%d", ufd);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, a1);
    ps_config_add_listen(&cfg, a2);
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, NULL);
    ck_assert_int_eq(ps_server_port(s, 0), port);
    ck_assert_ptr_nonnull(strstr(ps_server_listen_name(s, 1), "udp:127.0.0.1:"));
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_eq(tu_echo(fd, "inherited", 9, true, tu_ms(2000), NULL), 0);
    close(fd);
    fd = udp_socket(tu_ms(2000));
    ck_assert_int_eq(udp_roundtrip(fd, port, "dgram", 5, reply, sizeof reply), 5);
    close(fd);
    ps_server_free(s); /* closes the adopted descriptors */
    ck_assert_int_eq(fcntl(tfd, F_GETFD), -1);
}
END_TEST

START_TEST(test_systemd_env)
{
    ps_config cfg;
    char pid[32];
    ps_err err;
    ps_handler h = {.serve = echo_serve};

    ps_config_init(&cfg);
    unsetenv("LISTEN_PID");
    ck_assert_int_eq(ps_config_add_systemd_listeners(&cfg), 0);
    snprintf(pid, sizeof pid, "%d", (int)getpid() + 1);
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    ck_assert_int_eq(ps_config_add_systemd_listeners(&cfg), 0); /* another process's */
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    ck_assert_int_eq(ps_config_add_systemd_listeners(&cfg), 2);
    ck_assert_int_eq(cfg.nlisten, 2);
    ck_assert_str_eq(cfg.listen[0], "fd:3");
    ck_assert_str_eq(cfg.listen[1], "fd:4");
    setenv("LISTEN_FDS", "x", 1);
    ck_assert_int_eq(ps_config_add_systemd_listeners(&cfg), -EINVAL);
    setenv("LISTEN_FDS", "20", 1);
    ck_assert_int_eq(ps_config_add_systemd_listeners(&cfg), -ENOSPC);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "fd:x");
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "fd:N"));
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
}
END_TEST

/* Two servers share one port with SO_REUSEPORT. */
START_TEST(test_reuseport)
{
    ps_config cfg;
    ps_handler h;
    ps_server *a, *b;
    char addr[32];
    int port, i;

    tu_config(&cfg);
    cfg.reuseport = true;
    echo_handler_init(&h, true);
    a = tu_server_start(&cfg, &h, NULL, &port);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    cfg.listen[0] = addr;
    b = tu_server_start(&cfg, &h, NULL, NULL);
    ck_assert_int_eq(ps_server_port(b, 0), port);
    for (i = 0; i < 20; i++) {
        int fd = tu_connect(port, tu_ms(2000));
        ck_assert_int_eq(tu_echo(fd, "r", 1, true, tu_ms(2000), NULL), 0);
        close(fd);
    }
    ck_assert_uint_eq(stats_of(a).accepted + stats_of(b).accepted, 20);
    ps_server_free(a);
    ps_server_free(b);
}
END_TEST

START_TEST(test_stats_format)
{
    ps_stats st = {.accepted = 12, .active = 3, .bytes_in = 99};
    char buf[16384], small[16];

    ck_assert_int_gt(ps_stats_format(&st, PS_STATS_TEXT, NULL, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "accepted=12 "));
    ck_assert_ptr_nonnull(strstr(buf, "active=3 "));
    ck_assert_int_gt(ps_stats_format(&st, PS_STATS_PROMETHEUS, "x", buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "# TYPE x_accepted_total counter\nx_accepted_total 12\n"));
    ck_assert_ptr_nonnull(strstr(buf, "# TYPE x_active gauge\nx_active 3\n"));
    ck_assert_int_eq(ps_stats_format(&st, PS_STATS_TEXT, NULL, small, sizeof small), -ENOSPC);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(ps_stats_format(&st, (ps_stats_format_kind)7, NULL, buf, sizeof buf), -EINVAL);
}
END_TEST

/* ========================================================= lingering close */

/* Answers the first line with an error and closes, whatever follows. */
static size_t refuse_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)data;
    (void)user;
    ps_conn_send(c, "ERR go away\n", 12);
    ps_conn_close(c);
    return len;
}

/* The client sends more than the handler reads, then reads the answer:
 * with a lingering close the answer always arrives intact (without it, the
 * kernel resets the connection because of the unread input, and the answer
 * is often lost).  Then the client half-closes and sees EOF. */
START_TEST(test_lingering_close)
{
    enum { JUNK = 256 << 10, ROUNDS = 20 };
    ps_config cfg;
    ps_handler h = {.on_data = refuse_on_data, .on_close = record_close};
    ps_server *s;
    char *junk = malloc(JUNK), line[64];
    int port, i;

    ck_assert_ptr_nonnull(junk);
    memset(junk, 'j', JUNK);
    memset(close_reasons, 0, sizeof close_reasons);
    tu_config(&cfg);
    s = tu_server_start(&cfg, &h, NULL, &port);
    for (i = 0; i < ROUNDS; i++) {
        int fd = tu_connect(port, tu_ms(2000));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(tu_write_all(fd, "bad\n", 4, tu_ms(1000)), 0);
        ck_assert_int_eq(tu_write_all(fd, junk, JUNK, tu_ms(5000)), 0);
        ck_assert_int_eq(tu_read_line(fd, line, sizeof line, tu_ms(3000)), 12);
        ck_assert_str_eq(line, "ERR go away\n");
        shutdown(fd, SHUT_WR);
        ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
        close(fd);
    }
    ck_assert(TU_STAT_EQ(s, closed, ROUNDS, tu_ms(3000), NULL));
    ck_assert_int_eq(atomic_load(&close_reasons[PS_CLOSE_LOCAL]), ROUNDS);
    ps_server_free(s);
    free(junk);
}
END_TEST

/* ========================================================= PROXY protocol */

static int peer_on_open(ps_conn *c, void *user)
{
    char line[128];
    int n = snprintf(line, sizeof line, "peer %s\n", ps_conn_peer_str(c));

    (void)user;
    return ps_conn_send(c, line, (size_t)n);
}

static void peer_serve(ps_conn *c, void *user)
{
    char line[128];
    int n = snprintf(line, sizeof line, "peer %s\n", ps_conn_peer_str(c));

    if (ps_conn_write_all(c, line, (size_t)n) == 0)
        echo_serve_held(c, user);
}

/* The handler sees the address the PROXY header names and only the bytes
 * after it, even when the header arrives a byte at a time together with
 * data; v1 and v2; a malformed header closes before any callback. */
START_TEST(test_proxy_listener)
{
    bool event = _i == 1;
    static const unsigned char v2[] = {
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, /* signature */
        0x21, 0x11, 0x00, 0x0C,                                                 /* PROXY TCP4 12 */
        192, 0, 2, 7, 127, 0, 0, 1, 0x1F, 0x90, 0x00, 0x50,                     /* 192.0.2.7:8080 */
    };
    const char *v1 = "PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\nhello";
    ps_config cfg;
    ps_handler h = {0};
    ps_server *s;
    int port, fd;
    char line[128], buf[8];
    uint64_t last;

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "proxy:127.0.0.1:0");
    if (event) {
        h.on_open = peer_on_open;
        h.on_data = echo_on_data;
    } else {
        h.serve = peer_serve;
    }
    s = tu_server_start(&cfg, &h, NULL, &port);

    fd = tu_connect(port, tu_ms(2000));
    for (size_t i = 0; i < strlen(v1); i++) /* a byte at a time */
        ck_assert_int_eq(tu_write_all(fd, v1 + i, 1, tu_ms(1000)), 0);
    ck_assert_int_gt(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 0);
    ck_assert_str_eq(line, "peer 203.0.113.9:5555\n");
    ck_assert_int_eq(tu_read_exact(fd, buf, 5, tu_ms(2000)), 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    close(fd);

    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_eq(tu_write_all(fd, v2, sizeof v2, tu_ms(1000)), 0);
    ck_assert_int_gt(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 0);
    ck_assert_str_eq(line, "peer 192.0.2.7:8080\n");
    ck_assert_int_eq(tu_echo(fd, "v2 data", 7, true, tu_ms(2000), NULL), 0);
    close(fd);

    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_eq(tu_write_all(fd, "GET / HTTP/1.0\r\n\r\n", 18, tu_ms(1000)), 0);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
    close(fd);
    ck_assert(TU_STAT_EQ(s, proxy_errors, 1, tu_ms(2000), &last));
    ps_server_free(s);
}
END_TEST

/* A peer that never finishes its header is cut at header_timeout_ms. */
START_TEST(test_proxy_header_timeout)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    int port, fd;

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "proxy:127.0.0.1:0");
    cfg.header_timeout_ms = tu_ms(200);
    echo_handler_init(&h, true);
    s = tu_server_start(&cfg, &h, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_eq(tu_write_all(fd, "PROXY TCP4 ", 11, tu_ms(1000)), 0);
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    close(fd);
    ck_assert_uint_ge(stats_of(s).timeouts, 1);
    ps_server_free(s);
}
END_TEST

Suite *features_suite(void)
{
    Suite *s = suite_create("features");
    TCase *timeouts = tcase_create("timeouts");
    TCase *flow = tcase_create("flow");
    TCase *unix_tc = tcase_create("unix");
    TCase *udp = tcase_create("udp");

    tcase_add_loop_test(timeouts, test_idle_timeout, 0, 2);
    tcase_add_loop_test(timeouts, test_request_timeout_min_rate, 0, 2);
    tcase_add_loop_test(timeouts, test_first_byte_timeout, 0, 2);
    tcase_add_test(timeouts, test_first_byte_spares_queued);
    tcase_add_loop_test(timeouts, test_write_timeout, 0, 2);
    tcase_add_test(timeouts, test_max_lifetime);
    tcase_add_loop_test(timeouts, test_connection_limits, 0, 2);
    tcase_add_loop_test(timeouts, test_stop_now, 0, 2);
    tcase_set_timeout(timeouts, 20);
    tcase_add_test(flow, test_pause_resume_cross_thread);
    tcase_add_test(flow, test_pause_hides_no_eof);
    tcase_add_test(flow, test_pause_keeps_fin);
    tcase_add_test(flow, test_urgent_data_no_stall);
    tcase_add_test(flow, test_never_reading_peer_is_bounded);
    tcase_add_test(flow, test_partial_writes_slow_reader);
    tcase_add_loop_test(flow, test_reset_during_write, 0, 2);
    tcase_add_test(flow, test_fairness_one_worker);
    tcase_add_test(flow, test_lingering_close);
    tcase_set_timeout(flow, 60);
    tcase_add_loop_test(unix_tc, test_unix_listener, 0, 2);
    tcase_add_loop_test(unix_tc, test_tcp_nodelay, 0, 2);
    tcase_add_test(unix_tc, test_unix_stale_and_not_socket);
    tcase_add_test(unix_tc, test_unix_perms);
    tcase_add_test(unix_tc, test_unix_perms_config);
    tcase_set_timeout(unix_tc, 20);
    tcase_add_test(udp, test_udp_echo);
    tcase_add_test(udp, test_udp_flood_full_queue);
    tcase_add_test(udp, test_udp_oversized);
    tcase_add_test(udp, test_udp_config_errors);
    tcase_add_test(udp, test_inherited_fd);
    tcase_add_test(udp, test_systemd_env);
    tcase_add_test(udp, test_reuseport);
    tcase_add_test(udp, test_stats_format);
    tcase_add_loop_test(udp, test_proxy_listener, 0, 2);
    tcase_add_test(udp, test_proxy_header_timeout);
    tcase_set_timeout(udp, 20);
    suite_add_tcase(s, timeouts);
    suite_add_tcase(s, flow);
    suite_add_tcase(s, unix_tc);
    suite_add_tcase(s, udp);
    return s;
}

/* SPDX-License-Identifier: MIT */
/*
 * heartbeat.c - what connection timers cost: N idle connections, each with
 * a heartbeat timer that sends "PING\r\n" every period.  The server runs in
 * a child process (libpoolsrv, event style); the parent opens the
 * connections on loopback, reads and counts every ping, and reads the
 * child's CPU time (utime + stime from /proc/PID/stat) over the window.
 *
 *   bench/heartbeat [-n CONNS] [-p PERIOD_MS] [-w WORKERS] [-s SECONDS] [-u] [-q]
 *
 * -q: the timers fire and re-arm but send nothing (a heartbeat that finds
 * its connection busy): what the timers themselves cost, without the
 * loopback send that dominates a ping.  Firings are counted in memory the
 * parent shares with the server.
 *
 * -u runs the same server written with libuv instead (a uv_timer_t per
 * connection, uv_try_write), the reference to compare with side by side
 * (built when libuv's headers are there).
 *
 * Prints one line: connections, period, pings/s received (expected
 * CONNS * 1000 / PERIOD), server CPU as % of one core, and CPU per ping.
 * Exit 1 if pings went missing (fewer than 90% of those expected).
 */
#include <poolsrv.h>

#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int period_ms = 1000;
static bool quiet;                /* -q */
static _Atomic long *fired;       /* -q: timer firings, shared with the parent */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------- the server */

static int hb_open(ps_conn *c, void *user)
{
    (void)user;
    /* spread the first beat over one period, as clients arriving over time would */
    return ps_conn_timer(c, (int64_t)(ps_conn_id(c) * 7919 % (uint64_t)period_ms));
}

static size_t hb_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)c;
    (void)data;
    (void)user;
    return len;
}

static void hb_timer(ps_conn *c, void *user)
{
    (void)user;
    if (quiet)
        atomic_fetch_add_explicit(fired, 1, memory_order_relaxed);
    else
        ps_conn_send(c, "PING\r\n", 6);
    ps_conn_timer(c, period_ms);
}

#ifdef HAVE_UV
#include <uv.h>

struct uv_hb {
    uv_tcp_t tcp;
    uv_timer_t timer;
};

static char uv_rbuf[65536];

static void uv_hb_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(uv_rbuf, sizeof uv_rbuf);
}

static void uv_hb_closed(uv_handle_t *h)
{
    struct uv_hb *c = h->data;
    if (h == (uv_handle_t *)&c->timer)
        free(c);
}

static void uv_hb_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct uv_hb *c = st->data;

    (void)buf;
    if (n < 0) {
        uv_close((uv_handle_t *)&c->tcp, NULL);
        uv_close((uv_handle_t *)&c->timer, uv_hb_closed);
    }
}

static void uv_hb_beat(uv_timer_t *t)
{
    struct uv_hb *c = t->data;
    uv_buf_t b = uv_buf_init("PING\r\n", 6);

    if (quiet)
        atomic_fetch_add_explicit(fired, 1, memory_order_relaxed);
    else
        uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

static void uv_hb_conn(uv_stream_t *server, int status)
{
    static uint64_t seq;
    struct uv_hb *c;

    if (status < 0 || !(c = calloc(1, sizeof *c)))
        return;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, NULL);
        uv_close((uv_handle_t *)&c->timer, uv_hb_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, uv_hb_alloc, uv_hb_read);
    seq++;
    uv_timer_start(&c->timer, uv_hb_beat, seq * 7919 % (uint64_t)period_ms, (uint64_t)period_ms);
}

static int serve_uv(int pipefd)
{
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof ss, port;

    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (struct sockaddr *)&a, 0) < 0 ||
        uv_listen((uv_stream_t *)&server, 4096, uv_hb_conn) < 0)
        return 1;
    uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (write(pipefd, &port, sizeof port) != sizeof port)
        return 1;
    close(pipefd);
    signal(SIGTERM, SIG_DFL);
    return uv_run(loop, UV_RUN_DEFAULT);
}
#endif

static ps_server *srv;

static void on_term(int sig)
{
    (void)sig;
    ps_server_stop_now(srv);
}

static int serve(int workers, int pipefd)
{
    ps_config cfg;
    ps_err err;
    ps_handler h = {.on_open = hb_open, .on_data = hb_data, .on_timer = hb_timer};
    int port;

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "127.0.0.1:0");
    cfg.workers = workers;
    cfg.drain_timeout_ms = 0;
    srv = ps_server_new(&cfg, &h, NULL, &err);
    if (!srv || ps_server_start(srv, &err) < 0) {
        fprintf(stderr, "heartbeat: server: %s\n", err.msg);
        return 1;
    }
    signal(SIGTERM, on_term);
    port = ps_server_port(srv, 0);
    if (write(pipefd, &port, sizeof port) != sizeof port)
        return 1;
    close(pipefd);
    ps_server_wait(srv);
    ps_server_free(srv);
    return 0;
}

/* ------------------------------------------------------------ the client */

static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int connect_one(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read and count pings until `until`. */
static long drain_until(int ep, int64_t until)
{
    struct epoll_event evs[256];
    char buf[4096];
    long bytes = 0;

    for (int64_t t; (t = now_ms()) < until;) {
        int n = epoll_wait(ep, evs, 256, (int)(until - t));
        for (int i = 0; i < n; i++) {
            ssize_t k;
            while ((k = recv(evs[i].data.fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
                bytes += k;
        }
    }
    return bytes / 6;
}

int main(int argc, char **argv)
{
    int n = 10000, workers = 1, seconds = 10, opt, pfd[2], port = 0, ep;
    bool uv = false;
    struct rlimit rl;
    pid_t pid;
    double c0, c1;
    long pings, f0;
    int64_t t0, t1;

    while ((opt = getopt(argc, argv, "n:p:w:s:uq")) != -1) {
        switch (opt) {
        case 'u': uv = true; break;
        case 'q': quiet = true; break;
        case 'n': n = atoi(optarg); break;
        case 'p': period_ms = atoi(optarg); break;
        case 'w': workers = atoi(optarg); break;
        case 's': seconds = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-n CONNS] [-p PERIOD_MS] [-w WORKERS] [-s SECONDS] [-u] [-q]\n",
                    argv[0]);
            return 2;
        }
    }
    if (n < 1 || period_ms < 1 || workers < 1 || seconds < 1) {
        fprintf(stderr, "heartbeat: every value must be at least 1\n");
        return 2;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)n + 64 > rl.rlim_cur) {
        fprintf(stderr, "heartbeat: %d connections need more descriptors than %llu\n", n,
                (unsigned long long)rl.rlim_cur);
        return 1;
    }
#ifndef HAVE_UV
    if (uv) {
        fprintf(stderr, "heartbeat: built without libuv\n");
        return 2;
    }
#endif
    fired = mmap(NULL, sizeof *fired, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (fired == MAP_FAILED || pipe(pfd) < 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        close(pfd[0]);
#ifdef HAVE_UV
        if (uv)
            return serve_uv(pfd[1]);
#endif
        return serve(workers, pfd[1]);
    }
    close(pfd[1]);
    if (read(pfd[0], &port, sizeof port) != sizeof port) {
        fprintf(stderr, "heartbeat: the server did not start\n");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < n; i++) {
        int fd = connect_one(port);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            fprintf(stderr, "heartbeat: connection %d: %s\n", i, strerror(errno));
            kill(pid, SIGTERM);
            return 1;
        }
    }
    drain_until(ep, now_ms() + 2 * period_ms); /* every timer has beaten at least once */
    c0 = cpu_seconds(pid);
    t0 = now_ms();
    f0 = atomic_load(fired);
    pings = drain_until(ep, t0 + seconds * 1000L);
    if (quiet)
        pings = atomic_load(fired) - f0;
    c1 = cpu_seconds(pid);
    t1 = now_ms();
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    {
        double secs = (double)(t1 - t0) / 1000.0, expect = (double)n * 1000.0 / period_ms;
        double cpu = (c1 - c0) / secs * 100.0;
        char who[32];
        snprintf(who, sizeof who, uv ? "libuv" : "poolsrv, %d worker(s)", workers);
        printf("heartbeat: %s, %d connections, %d ms period: %.0f %s/s "
               "(expected %.0f), server CPU %.2f%% of one core, %.2f us per ping\n",
               who, n, period_ms, pings / secs, quiet ? "silent beats" : "pings", expect, cpu,
               pings ? (c1 - c0) * 1e6 / (double)pings : 0.0);
        return pings / secs >= 0.9 * expect ? 0 : 1;
    }
}

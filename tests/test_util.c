/* SPDX-License-Identifier: MIT */
/* test_util.c - helpers for the Check suites (see test_util.h). */
#include "test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- time */

int64_t tu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t tu_now_ms(void)
{
    return tu_now_ns() / 1000000;
}

int tu_ms(int ms)
{
    const char *env = getenv("CK_TIMEOUT_MULTIPLIER");
    double k = env ? strtod(env, NULL) : 1.0;

    if (!(k >= 1.0))
        k = 1.0;
    return (int)(ms * k);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool tu_wait_until(bool (*pred)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    int64_t backoff = 50 * 1000;

    for (;;) {
        if (pred(arg))
            return true;
        if (tu_now_ms() >= deadline)
            return pred(arg);
        sleep_ns(backoff);
        if (backoff < 5 * 1000 * 1000)
            backoff *= 2;
    }
}

struct stat_wait {
    ps_server *s;
    size_t offset;
    int cmp;
    uint64_t want;
    uint64_t last;
};

static bool stat_pred(void *arg)
{
    struct stat_wait *w = arg;
    ps_stats st;
    uint64_t v;

    ps_server_stats(w->s, &st);
    memcpy(&v, (const char *)&st + w->offset, sizeof v);
    w->last = v;
    return w->cmp == TU_EQ ? v == w->want : v >= w->want;
}

bool tu_wait_stat(ps_server *s, size_t offset, int cmp, uint64_t want, int timeout_ms,
                  uint64_t *last)
{
    struct stat_wait w = {s, offset, cmp, want, 0};
    bool ok = tu_wait_until(stat_pred, &w, timeout_ms);

    if (last)
        *last = w.last;
    return ok;
}

/* ------------------------------------------------------------- latch */

void tu_latch_init(tu_latch *l)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    l->n = 0;
}

void tu_latch_destroy(tu_latch *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

void tu_latch_add(tu_latch *l, int k)
{
    pthread_mutex_lock(&l->mu);
    l->n += k;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

int tu_latch_get(tu_latch *l)
{
    int n;

    pthread_mutex_lock(&l->mu);
    n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

bool tu_latch_wait(tu_latch *l, int want, int timeout_ms)
{
    struct timespec dl;
    bool ok;

    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&l->mu);
    while (l->n < want) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT)
            break;
    }
    ok = l->n >= want;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

/* ------------------------------------------------------------- PRNG */

uint64_t tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tu_fill(void *buf, size_t len, uint64_t seed)
{
    unsigned char *p = buf;
    uint64_t st = seed;

    while (len >= 8) {
        uint64_t r = tu_rand(&st);

        memcpy(p, &r, 8);
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t r = tu_rand(&st);

        memcpy(p, &r, len);
    }
}

/* ------------------------------------------------------------- servers */

void tu_config(ps_config *cfg)
{
    ps_config_init(cfg);
    ck_assert_int_eq(ps_config_add_listen(cfg, "127.0.0.1:0"), 0);
}

ps_server *tu_server_start(const ps_config *cfg, const ps_handler *h, void *user, int *port)
{
    ps_err err;
    ps_server *s;
    int rc;

    memset(&err, 0, sizeof err);
    s = ps_server_new(cfg, h, user, &err);
    ck_assert_msg(s != NULL, "ps_server_new: %d %s", err.code, err.msg);
    rc = ps_server_start(s, &err);
    ck_assert_msg(rc == 0, "ps_server_start: %d %s", rc, err.msg);
    if (port) {
        *port = ps_server_port(s, 0);
        ck_assert_int_gt(*port, 0);
        ck_assert_int_le(*port, 65535);
    }
    return s;
}

/* ------------------------------------------------------------- clients */

/* Wait for events on fd until the absolute deadline: 1 ready, 0 timeout,
 * -errno. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left = deadline_ms - tu_now_ms();
        int n;

        if (left < 0)
            left = 0;
        n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int tu_connect(int port, int timeout_ms)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int64_t deadline = tu_now_ms() + timeout_ms;
    int fd, one = 1, soerr = 0, rc;
    socklen_t sl = sizeof soerr;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out_close;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc <= 0) {
            rc = rc ? rc : -ETIMEDOUT;
            goto out_close;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            rc = soerr ? -soerr : -errno;
            goto out_close;
        }
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;

out_close:
    close(fd);
    return rc;
}

int tu_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    const char *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLOUT, deadline);

            if (rc <= 0)
                return rc ? rc : -ETIMEDOUT;
        } else if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

ssize_t tu_read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, p + got, len - got, MSG_DONTWAIT);

        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0) {
            break;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_fd(fd, POLLIN, deadline);

            if (rc <= 0)
                return rc ? rc : -ETIMEDOUT;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return (ssize_t)got;
}

int tu_expect_eof(int fd, int timeout_ms)
{
    char c;
    ssize_t n = tu_read_exact(fd, &c, 1, timeout_ms);

    if (n == 0)
        return 0;
    if (n == 1)
        return -EPROTO;
    return (int)n;
}

ssize_t tu_read_line(int fd, char *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    size_t got = 0;

    while (got + 1 < cap) {
        int64_t left = deadline - tu_now_ms();
        ssize_t n = tu_read_exact(fd, buf + got, 1, left > 0 ? (int)left : 0);

        if (n < 0)
            return n;
        if (n == 0) {
            buf[got] = '\0';
            return 0;
        }
        if (buf[got++] == '\n') {
            buf[got] = '\0';
            return (ssize_t)got;
        }
    }
    return -EMSGSIZE;
}

int tu_echo(int fd, const void *data, size_t len, bool shut_wr, int timeout_ms, size_t *bad_at)
{
    return tu_echo_chunked(fd, data, len, (size_t)-1, shut_wr, timeout_ms, bad_at);
}

int tu_echo_chunked(int fd, const void *data, size_t len, size_t chunk, bool shut_wr,
                    int timeout_ms, size_t *bad_at)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    const char *src = data;
    size_t sent = 0, got = 0, cap = 65536;
    bool shut_done = false;
    char *rbuf = malloc(cap);
    int rc = 0;

    if (!rbuf)
        return -ENOMEM;
    for (;;) {
        bool want_write = sent < len || (shut_wr && !shut_done);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left;
        int n;

        if (shut_wr && sent == len && !shut_done) {
            if (shutdown(fd, SHUT_WR) < 0) {
                rc = -errno;
                break;
            }
            shut_done = true;
            want_write = false;
        }
        if (got == len) {
            if (!shut_wr)
                break;
            /* all bytes back: now the stream must end */
            left = deadline - tu_now_ms();
            rc = tu_expect_eof(fd, left > 0 ? (int)left : 0);
            if (rc == -EPROTO)
                rc = -EBADMSG;
            break;
        }
        if (want_write)
            p.events |= POLLOUT;
        left = deadline - tu_now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if ((p.revents & POLLOUT) && sent < len) {
            size_t n_send = len - sent < chunk ? len - sent : chunk;
            ssize_t w = send(fd, src + sent, n_send, MSG_NOSIGNAL | MSG_DONTWAIT);

            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                rc = -errno;
                break;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            size_t want = len - got < cap ? len - got : cap;
            ssize_t r = recv(fd, rbuf, want, MSG_DONTWAIT);

            if (r > 0) {
                if (memcmp(rbuf, src + got, (size_t)r) != 0) {
                    size_t i = 0;

                    while (rbuf[i] == src[got + i])
                        i++;
                    if (bad_at)
                        *bad_at = got + i;
                    rc = -EBADMSG;
                    break;
                }
                got += (size_t)r;
            } else if (r == 0) {
                rc = -ENODATA;
                if (bad_at)
                    *bad_at = got;
                break;
            } else if (errno != EAGAIN && errno != EINTR) {
                rc = -errno;
                break;
            }
        }
    }
    free(rbuf);
    return rc;
}

void tu_close_rst(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

struct server_waiter {
    ps_server *s;
    int rc;
};

static void *server_wait_thread(void *arg)
{
    struct server_waiter *w = arg;

    w->rc = ps_server_wait(w->s);
    return NULL;
}

int tu_server_wait(ps_server *s, int timeout_ms)
{
    struct server_waiter *w = malloc(sizeof *w);
    struct timespec dl;
    pthread_t th;
    int rc;

    if (!w)
        return -ENOMEM;
    w->s = s;
    w->rc = -EINPROGRESS;
    if (pthread_create(&th, NULL, server_wait_thread, w) != 0) {
        free(w);
        return -EAGAIN;
    }
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    if (pthread_timedjoin_np(th, NULL, &dl) != 0) {
        pthread_detach(th); /* w leaks: the test fails anyway */
        return -ETIMEDOUT;
    }
    rc = w->rc;
    free(w);
    return rc;
}

/* ------------------------------------------------------------- process */

int tu_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

long tu_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    return (long)rl.rlim_cur;
}

int tu_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

struct sleep_wait {
    char path[64];
};

static bool thread_sleeping(void *arg)
{
    struct sleep_wait *w = arg;
    char buf[512], *rp;
    FILE *f = fopen(w->path, "r");
    size_t n;

    if (!f)
        return false;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "tid (comm) S ...": the state follows the last ')' */
    rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && rp[2] == 'S';
}

bool tu_wait_thread_sleeping(int tid, int timeout_ms)
{
    struct sleep_wait w;

    snprintf(w.path, sizeof w.path, "/proc/self/task/%d/stat", tid);
    return tu_wait_until(thread_sleeping, &w, timeout_ms);
}

/* ------------------------------------------------------------- recorder */

struct rconn {
    atomic_int busy;
    uint64_t pos;
    int slot;
};

unsigned char tu_pattern_byte(uint64_t pos)
{
    return (unsigned char)((pos * 2654435761u) >> 13);
}

void tu_rec_init(tu_rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

static void rec_enter(tu_rec *r, struct rconn *rc)
{
    if (atomic_exchange(&rc->busy, 1))
        atomic_fetch_add(&r->overlaps, 1);
    if (r->spin) {
        for (int k = 0; k < 3; k++)
            sched_yield();
    }
}

static void rec_leave(struct rconn *rc)
{
    atomic_store(&rc->busy, 0);
}

static int rec_open(ps_conn *c, void *user)
{
    tu_rec *r = user;
    struct rconn *rc = calloc(1, sizeof *rc);

    if (!rc)
        return -1;
    pthread_mutex_lock(&r->mu);
    rc->slot = r->nids < TU_REC_MAX_CONNS ? r->nids++ : TU_REC_MAX_CONNS - 1;
    r->ids[rc->slot] = ps_conn_id(c);
    pthread_mutex_unlock(&r->mu);
    ps_conn_set_data(c, rc);
    atomic_fetch_add(&r->opens, 1);
    return 0;
}

static size_t rec_data(ps_conn *c, const char *data, size_t len, void *user)
{
    tu_rec *r = user;
    struct rconn *rc = ps_conn_data(c);

    if (!rc) {
        atomic_fetch_add(&r->no_open, 1);
        return len;
    }
    rec_enter(r, rc);
    atomic_fetch_add(&r->datas, 1);
    if (r->pattern) {
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)data[i] != tu_pattern_byte(rc->pos + i)) {
                atomic_fetch_add(&r->order_errors, 1);
                break;
            }
        }
    }
    rc->pos += len;
    if (ps_conn_send(c, data, len) < 0)
        atomic_fetch_add(&r->send_errors, 1);
    rec_leave(rc);
    return len;
}

static void rec_close(ps_conn *c, ps_close_reason why, void *user)
{
    tu_rec *r = user;
    struct rconn *rc = ps_conn_data(c);

    if (!rc) {
        atomic_fetch_add(&r->no_open, 1);
        return;
    }
    rec_enter(r, rc);
    if ((int)why >= 0 && (int)why < 8)
        atomic_fetch_add(&r->reasons[why], 1);
    pthread_mutex_lock(&r->mu);
    r->nclose[rc->slot]++;
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&r->closes, 1);
    rec_leave(rc);
    ps_conn_set_data(c, NULL);
    free(rc);
}

void tu_rec_handler(ps_handler *h)
{
    memset(h, 0, sizeof h[0]);
    h->on_open = rec_open;
    h->on_data = rec_data;
    h->on_close = rec_close;
}

struct closes_at_least {
    tu_rec *r;
    int n;
};

static bool closes_reached(void *arg)
{
    struct closes_at_least *w = arg;

    return atomic_load(&w->r->closes) >= w->n;
}

void tu_rec_wait_closes(tu_rec *r, int n)
{
    struct closes_at_least w = {r, n};

    ck_assert_msg(tu_wait_until(closes_reached, &w, tu_ms(5000)), "on_close ran %d times, want %d",
                  atomic_load(&r->closes), n);
}

/* Every connection opened once and closed once, callbacks never overlapped. */
void tu_rec_assert_clean(tu_rec *r, int n)
{
    ck_assert_int_eq(atomic_load(&r->opens), n);
    ck_assert_int_eq(atomic_load(&r->closes), n);
    ck_assert_int_eq(atomic_load(&r->overlaps), 0);
    ck_assert_int_eq(atomic_load(&r->no_open), 0);
    ck_assert_int_eq(atomic_load(&r->order_errors), 0);
    pthread_mutex_lock(&r->mu);
    ck_assert_int_eq(r->nids, n);
    for (int i = 0; i < r->nids; i++) {
        ck_assert_msg(r->nclose[i] == 1, "conn %llu: on_close ran %d times",
                      (unsigned long long)r->ids[i], r->nclose[i]);
        ck_assert_uint_ne(r->ids[i], 0);
        for (int j = 0; j < i; j++)
            ck_assert_uint_ne(r->ids[i], r->ids[j]);
    }
    pthread_mutex_unlock(&r->mu);
}

ps_stats tu_stats(ps_server *s)
{
    ps_stats st;

    ps_server_stats(s, &st);
    return st;
}

void tu_assert_all_closed(ps_server *s, uint64_t n)
{
    uint64_t last;

    ck_assert_msg(TU_STAT_EQ(s, closed, n, tu_ms(5000), &last), "closed = %llu, want %llu",
                  (unsigned long long)last, (unsigned long long)n);
    ck_assert_msg(TU_STAT_EQ(s, active, 0, tu_ms(5000), &last), "active = %llu, want 0",
                  (unsigned long long)last);
}

/* SPDX-License-Identifier: MIT */
/*
 * soak.c - `make soak`: SECONDS of mixed load with connection churn against
 * poolsrv-echo, the server's RSS and descriptor count printed every 10 s.
 *
 * Load (all verified, all to 127.0.0.1):
 *   SOAK_STEADY threads  connect, 1..2000 round trips of 1..16 KiB random
 *                        bytes, close (one in 8 with a reset), again;
 *   1 churn thread       connect, one 32-byte round trip, close, about
 *                        SOAK_CHURN_PER_S times a second;
 *   1 hostile thread     every 100 ms one of: 20 silent connections held
 *                        500 ms, a peer that writes 8 MiB and never reads (cut
 *                        by --write-timeout 1000), a reset in mid-echo, 20
 *                        connect-and-close, 64 KiB of random bytes;
 *   the probe            as in the suite (persistent + fresh connections).
 *
 * Drift, precisely.  The server runs with glibc's malloc thresholds pinned
 * (GLIBC_TUNABLES mmap_threshold and trim_threshold 128 KiB): otherwise the
 * first freed 1-2 MiB output buffer raises them and each worker's arena then
 * keeps such buffers, RSS steps up by MiBs at random moments, and a plateau
 * cannot be told from a leak in a minute.  Pinned, RSS follows live memory,
 * which still swings by a few MiB with the never-reading peers' output
 * buffers (each up to 2 MiB until --write-timeout cuts it).  So RSS is
 * sampled every second and each 10 s window keeps its lowest sample (the
 * memory that stays); the first window is warm-up.
 *   RSS  fails if the last window's low exceeds the second window's low by
 *        more than SOAK_RSS_DRIFT_KIB (a leak of 300 bytes per connection at
 *        this churn grows ~1.5 MiB in 40 s), or if RSS after the load does;
 *   fds  fails if any sample exceeds the pre-load baseline by more than the
 *        load's own connection bound (SOAK_FD_BOUND), or if the count is not
 *        back to the baseline within 5 s after the load stops.
 * Any verification error, unexpected reset of a well-behaved client, probe
 * failure or non-zero exit status also fails.
 */
#include "hostile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SOAK_STEADY 3
#define SOAK_CHURN_PER_S 100
#define SOAK_RSS_DRIFT_KIB 1024
#define SOAK_MAX_WINDOWS 400 /* 10 s windows */
#define SOAK_TUNABLES "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072"
#define SOAK_FD_BOUND 64 /* the load holds ~27 at once (steady, churn, hostile, probe) */
#define SOAK_HOLD 20

typedef struct soak {
    int port;
    atomic_bool stop;
    atomic_uint_fast64_t rts, conns, hostile_ops;
    atomic_int errors;
    pthread_mutex_t lock;
    char first_err[200]; /* guarded by lock */
} soak;

static void soak_error(soak *k, const char *what, int err)
{
    pthread_mutex_lock(&k->lock);
    if (atomic_fetch_add(&k->errors, 1) == 0)
        snprintf(k->first_err, sizeof k->first_err, "%s: %s", what, strerror(err));
    pthread_mutex_unlock(&k->lock);
}

static void *steady_main(void *arg)
{
    soak *k = arg;
    uint64_t rs = (uint64_t)now_us() | 1;
    static _Thread_local unsigned char out[16384], in[16384];

    while (!atomic_load(&k->stop)) {
        int fd = tcp_connect(k->port, now_ms() + scaled(2000)), j, n, rc = 0;
        if (fd < 0) {
            soak_error(k, "steady connect", -fd);
            sleep_ms(10);
            continue;
        }
        atomic_fetch_add(&k->conns, 1);
        n = 1 + (int)(rnd_next(&rs) % 2000);
        for (j = 0; j < n && rc == 0 && !atomic_load(&k->stop); j++) {
            size_t len = 1 + rnd_next(&rs) % sizeof out, i;
            int64_t dl = now_ms() + scaled(2000);
            for (i = 0; i < len; i++)
                out[i] = (unsigned char)rnd_next(&rs);
            if ((rc = send_all(fd, out, len, dl)) < 0 || (rc = recv_exact(fd, in, len, dl)) < 0)
                soak_error(k, "steady round trip", -rc);
            else if (memcmp(in, out, len) != 0)
                soak_error(k, "steady round trip", EBADMSG), rc = -EBADMSG;
            else
                atomic_fetch_add(&k->rts, 1), rc = 0;
        }
        if (rnd_next(&rs) % 8 == 0)
            close_rst(fd);
        else
            close(fd);
    }
    return NULL;
}

static void *churn_main(void *arg)
{
    soak *k = arg;
    uint32_t seq = 0;
    char why[160];

    while (!atomic_load(&k->stop)) {
        int64_t dl = now_ms() + scaled(2000);
        int fd = tcp_connect(k->port, dl);
        if (fd < 0) {
            soak_error(k, "churn connect", -fd);
        } else {
            if (probe_roundtrip(PROBE_ECHO, fd, seq++, dl, why, sizeof why) != 0)
                soak_error(k, why, EPROTO);
            else
                atomic_fetch_add(&k->rts, 1);
            atomic_fetch_add(&k->conns, 1);
            close(fd);
        }
        sleep_ms(1000 / SOAK_CHURN_PER_S); /* pacing, not waiting for a condition */
    }
    return NULL;
}

/* Descriptors the hostile thread holds, each until its expiry. */
typedef struct held {
    int fd[SOAK_HOLD + 4];
    int64_t until[SOAK_HOLD + 4];
} held;

static void hold(held *h, int fd, int64_t until)
{
    int i;

    for (i = 0; i < SOAK_HOLD + 4; i++)
        if (h->fd[i] < 0) {
            h->fd[i] = fd;
            h->until[i] = until;
            return;
        }
    close(fd);
}

static void expire(held *h, int64_t now)
{
    int i;

    for (i = 0; i < SOAK_HOLD + 4; i++)
        if (h->fd[i] >= 0 && (now >= h->until[i] || now == INT64_MAX)) {
            close(h->fd[i]);
            h->fd[i] = -1;
        }
}

static void *hostile_main(void *arg)
{
    soak *k = arg;
    static unsigned char junk[512 * 1024];
    uint64_t rs = 0x50a1c, round = 0;
    held h;
    int i;

    for (i = 0; i < SOAK_HOLD + 4; i++)
        h.fd[i] = -1;
    for (i = 0; i < (int)sizeof junk; i++)
        junk[i] = (unsigned char)rnd_next(&rs);
    while (!atomic_load(&k->stop)) {
        int64_t now = now_ms();
        int fd;
        expire(&h, now);
        switch (round++ % 5) {
        case 0: /* silent connections, held 500 ms */
            for (i = 0; i < SOAK_HOLD; i++)
                if ((fd = tcp_connect_start(k->port)) >= 0)
                    hold(&h, fd, now + 500);
            break;
        case 1: /* never reads: fills what the socket takes, held until cut */
            if ((fd = tcp_connect(k->port, now + 1000)) >= 0) {
                size_t off = 0;
                ssize_t w;
                while (off < (size_t)(8 * MIB) &&
                       (w = send(fd, junk, sizeof junk, MSG_NOSIGNAL)) > 0)
                    off += (size_t)w;
                hold(&h, fd, now + 1500);
            }
            break;
        case 2: /* reset while the server echoes */
            if ((fd = tcp_connect(k->port, now + 1000)) >= 0) {
                send_all(fd, junk, sizeof junk / 2, now + 200);
                close_rst(fd);
            }
            break;
        case 3: /* connect and close at once */
            for (i = 0; i < 20; i++)
                if ((fd = tcp_connect_start(k->port)) >= 0)
                    close(fd);
            break;
        default: /* random bytes, then leave */
            if ((fd = tcp_connect(k->port, now + 1000)) >= 0) {
                send_all(fd, junk, (size_t)(64 * KIB), now + 500);
                close(fd);
            }
            break;
        }
        atomic_fetch_add(&k->hostile_ops, 1);
        sleep_ms(100); /* pacing */
    }
    expire(&h, INT64_MAX);
    return NULL;
}

/* Figures of one soak run. */
typedef struct soak_figs {
    int fd_base, fd_max, fd_end, exit_status, nwin;
    long rss_base, rss_end, low[SOAK_MAX_WINDOWS]; /* lowest RSS of each 10 s window */
} soak_figs;

static int soak_start(srv *s, char *const base[], int nbase)
{
    const char *extra[] = {"--admin",
                           "127.0.0.1:0",
                           "--write-timeout",
                           "1000",
                           "--first-byte-timeout",
                           "2000",
                           "--drain-timeout",
                           "2000",
                           NULL};
    char *argv[H_MAX_ARGS + 16], why[256];
    int n = 0, i;

    for (i = 0; i < nbase && n < H_MAX_ARGS; i++)
        argv[n++] = base[i];
    for (i = 0; extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    setenv("GLIBC_TUNABLES", SOAK_TUNABLES, 1); /* the child inherits it */
    n = srv_start(s, argv, 0, true, why, sizeof why);
    unsetenv("GLIBC_TUNABLES");
    if (n < 0) {
        printf("soak: FAIL: server: %s\n", why);
        return -1;
    }
    return 0;
}

/* Every second: descriptors and RSS; every 10 s (and at the end) a line with
 * the window's RSS range and the load's counters. */
static void soak_sample(const srv *s, soak *k, soak_figs *f, int seconds)
{
    int64_t t0 = now_ms(), next = t0 + 1000;
    long lo = -1, hi = 0;

    while (now_ms() < t0 + seconds * 1000LL) {
        long rss;
        int64_t el;
        int fds;
        sleep_ms((int)(next - now_ms() > 0 ? next - now_ms() : 0));
        next += 1000;
        fds = proc_fd_count(s->pid);
        rss = proc_rss_kib(s->pid);
        f->fd_max = fds > f->fd_max ? fds : f->fd_max;
        lo = lo < 0 || rss < lo ? rss : lo;
        hi = rss > hi ? rss : hi;
        el = (now_ms() - t0 + 500) / 1000;
        if (el % 10 != 0 && el < seconds)
            continue;
        if (f->nwin < SOAK_MAX_WINDOWS)
            f->low[f->nwin++] = lo;
        printf("soak: t=%3llds rss %.1f..%.1f MiB  fds %d (max %d)  round trips %llu  "
               "connections %llu  hostile %llu  errors %d\n",
               (long long)el, lo / 1024.0, hi / 1024.0, fds, f->fd_max,
               (unsigned long long)atomic_load(&k->rts), (unsigned long long)atomic_load(&k->conns),
               (unsigned long long)atomic_load(&k->hostile_ops), atomic_load(&k->errors));
        lo = -1;
        hi = 0;
    }
}

/* The drift rules of the header comment; returns the number of failures. */
static int soak_verdict(const soak_figs *f, const soak *k, const probe *p)
{
    int bad = 0;
    int r = f->nwin > 1 ? 1 : 0; /* the first window is warm-up, unless it is the only one */
    long ref = f->low[r], last = f->low[f->nwin - 1];

    printf("soak: RSS drift %+.2f MiB (lowest sample of window %d: %.2f MiB, of the last: %.2f; "
           "after the load %.2f; bound %+.2f)\n",
           (last - ref) / 1024.0, r + 1, ref / 1024.0, last / 1024.0, f->rss_end / 1024.0,
           SOAK_RSS_DRIFT_KIB / 1024.0);
    if (last > ref + SOAK_RSS_DRIFT_KIB || f->rss_end > ref + SOAK_RSS_DRIFT_KIB)
        printf("soak: FAIL: RSS drift above %.1f MiB\n", SOAK_RSS_DRIFT_KIB / 1024.0), bad++;
    if (f->fd_max > f->fd_base + SOAK_FD_BOUND)
        printf("soak: FAIL: %d descriptors during the load, bound %d\n", f->fd_max,
               f->fd_base + SOAK_FD_BOUND),
            bad++;
    if (f->fd_end != f->fd_base)
        printf("soak: FAIL: descriptors %d after the load, baseline %d\n", f->fd_end, f->fd_base),
            bad++;
    if (atomic_load(&k->errors))
        printf("soak: FAIL: %d client errors, first: %s\n", atomic_load(&k->errors), k->first_err),
            bad++;
    if (p->failures)
        printf("soak: FAIL: probe failed %d time(s), first: %s\n", p->failures, p->first_fail),
            bad++;
    if (f->exit_status != 0)
        printf("soak: FAIL: server exit status %d\n", f->exit_status), bad++;
    return bad;
}

int run_soak(char *const base[], int nbase, int seconds)
{
    pthread_t tids[SOAK_STEADY + 2];
    static soak_figs f;
    char st[2048];
    int i, bad;
    srv s;
    probe p;
    soak k;

    if (seconds < 10)
        seconds = 10;
    if (soak_start(&s, base, nbase) < 0)
        return -1;
    memset(&k, 0, sizeof k);
    pthread_mutex_init(&k.lock, NULL);
    k.port = s.port;
    probe_start(&p, PROBE_ECHO, s.port, true, 0, false);
    probe_wait_ops(&p, 5, now_ms() + scaled(3000));
    f.fd_base = fd_baseline(s.pid);
    f.rss_base = proc_rss_kib(s.pid);
    printf("soak: %d s against pid %d; baseline fds %d, rss %.1f MiB\n", seconds, (int)s.pid,
           f.fd_base, f.rss_base / 1024.0);
    for (i = 0; i < SOAK_STEADY; i++)
        pthread_create(&tids[i], NULL, steady_main, &k);
    pthread_create(&tids[SOAK_STEADY], NULL, churn_main, &k);
    pthread_create(&tids[SOAK_STEADY + 1], NULL, hostile_main, &k);
    soak_sample(&s, &k, &f, seconds);
    atomic_store(&k.stop, true);
    for (i = 0; i < SOAK_STEADY + 2; i++)
        pthread_join(tids[i], NULL);
    f.fd_end = wait_fd_count(s.pid, f.fd_base, now_ms() + scaled(5000));
    f.rss_end = proc_rss_kib(s.pid);
    probe_stop(&p);
    if (admin_stats(s.admin_port, st, sizeof st) == 0)
        printf("soak: server stats: %s", st);
    f.exit_status = srv_stop(&s);
    printf("soak: after the load: fds %d (baseline %d), rss %.1f MiB; probe %llu rt worst "
           "%.1f ms, %llu fresh worst %.1f ms; exit %d\n",
           f.fd_end, f.fd_base, f.rss_end / 1024.0, (unsigned long long)atomic_load(&p.ops),
           p.worst_us / 1000.0, (unsigned long long)p.fresh_ops, p.worst_fresh_us / 1000.0,
           f.exit_status);
    bad = soak_verdict(&f, &k, &p);
    if (bad)
        srv_dump_log(&s, "  | ");
    srv_cleanup(&s);
    printf("soak: %s\n", bad ? "FAILED" : "passed");
    return bad ? -1 : 0;
}

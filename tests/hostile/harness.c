/* SPDX-License-Identifier: MIT */
/*
 * harness.c - what every case does around its attack: start the server with
 * the case's flags, start the probe, take the baseline; afterwards wait for
 * the descriptor count to come back, compare RSS, check the probe, stop the
 * server and require exit status 0.
 */
#include "hostile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * RSS may end up to RSS_SLACK_KIB above the baseline after the attackers are
 * gone.  Not a leak: glibc keeps freed memory in its per-thread arenas (up to
 * 8 per core, and each worker that frees a connection's 1-2 MiB output
 * buffer may keep it, since the dynamic mmap threshold moves such sizes
 * from mmap to the heap after the first free), and thread stacks stay
 * resident once touched (blocking echo puts a 16 KiB buffer on each worker's
 * stack).  A leak of the attack's scale (thousands of connections, 64 MiB
 * of traffic) is far beyond it.
 */
#define RSS_SLACK_KIB (8L * 1024)

/* HOSTILE_RSS_SLACK_MIB overrides it: AddressSanitizer's quarantine keeps
 * freed memory on purpose (use e.g. 256 with ASan builds). */
long rss_slack_kib(void)
{
    const char *e = getenv("HOSTILE_RSS_SLACK_MIB");
    long mib = e ? strtol(e, NULL, 10) : 0;

    return mib > 0 ? mib * 1024 : RSS_SLACK_KIB;
}
#define FD_RETURN_MS 5000

/* Append sep (if buf is not empty) and the formatted text; cut at cap. */
static void vappend(char *buf, size_t cap, const char *sep, const char *fmt, va_list ap)
{
    size_t n = strlen(buf);
    int k;

    if (n + 3 >= cap)
        return;
    if (n > 0 && (k = snprintf(buf + n, cap - n, "%s", sep)) > 0)
        n += (size_t)k;
    vsnprintf(buf + n, cap - n, fmt, ap);
}

void fail(ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vappend(c->why, sizeof c->why, "; ", fmt, ap);
    va_end(ap);
    c->failed = true;
}

void addf(ctx *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vappend(c->figures, sizeof c->figures, ", ", fmt, ap);
    va_end(ap);
}

/* Baseline: the smallest of a few samples, so that a probe's fresh
 * connection caught in flight does not count. */
int fd_baseline(pid_t pid)
{
    int i, best = -1;

    for (i = 0; i < 6; i++) {
        int n = proc_fd_count(pid);
        if (n >= 0 && (best < 0 || n < best))
            best = n;
        sleep_ms(15);
    }
    return best;
}

/* Start the server with base + (poolsrv-echo: admin, drain) + extra (NULL-ended),
 * the probe, and the monitor.  Returns 0, or -1 (already marked failed). */
int case_begin(ctx *c, const char *const extra[], int fresh_bound_ms)
{
    char *argv[H_MAX_ARGS + 16];
    char why[256];
    int n = 0, i;

    c->failed = false;
    c->why[0] = c->figures[0] = '\0';
    for (i = 0; i < c->nbase && n < H_MAX_ARGS; i++)
        argv[n++] = c->base[i];
    if (c->is_echo) {
        argv[n++] = "--admin";
        argv[n++] = "127.0.0.1:0";
        argv[n++] = "--drain-timeout";
        argv[n++] = "2000";
        argv[n++] = "--log-level"; /* the SIGUSR1 counters line is info */
        argv[n++] = "info";
    }
    for (i = 0; extra && extra[i] && n < H_MAX_ARGS + 15; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    if (srv_start(&c->s, argv, c->nofile, c->is_echo, why, sizeof why) < 0) {
        fail(c, "server: %s", why);
        srv_dump_log(&c->s, "    | ");
        srv_cleanup(&c->s);
        return -1;
    }
    c->started = true;
    probe_start(&c->p, c->kind, c->s.port, !c->no_fresh, fresh_bound_ms, c->busy_ok);
    if (!probe_wait_ops(&c->p, 5, now_ms() + scaled(3000))) {
        pthread_mutex_lock(&c->p.lock);
        fail(c, "the probe got no answers before the attack (%s)", c->p.first_fail);
        pthread_mutex_unlock(&c->p.lock);
        return -1;
    }
    c->fd_base = fd_baseline(c->s.pid);
    c->rss_base = proc_rss_kib(c->s.pid);
    c->measured = true;
    monitor_start(&c->mon, c->s.pid);
    return 0;
}

/* After the attackers are gone: descriptors back, RSS near baseline, probe
 * clean, clean exit.  Prints the result line; returns true if passed. */
bool case_end(ctx *c)
{
    int64_t t0 = now_ms();
    int fds_after = -1, rc;
    long rss_after = -1;
    char pf[600], busy[48] = "";

    monitor_stop(&c->mon);
    if (c->measured && srv_alive(&c->s)) {
        fds_after = wait_fd_count(c->s.pid, c->fd_base, t0 + scaled(FD_RETURN_MS));
        if (fds_after > c->fd_base)
            fail(c, "descriptors did not return to baseline: %d > %d after %lld ms", fds_after,
                 c->fd_base, (long long)scaled(FD_RETURN_MS));
        rss_after = proc_rss_kib(c->s.pid);
        if (rss_after > c->rss_base + rss_slack_kib())
            fail(c, "RSS %.1f MiB after the attack, baseline %.1f + %ld MiB allowed",
                 rss_after / 1024.0, c->rss_base / 1024.0, rss_slack_kib() / 1024);
    }
    probe_stop(&c->p);
    if (c->p.fresh_busy)
        snprintf(busy, sizeof busy, " (+%llu refused: busy)", (unsigned long long)c->p.fresh_busy);
    if (c->started && c->p.failures > 0)
        fail(c, "probe failed %d time(s), first: %s", c->p.failures, c->p.first_fail);
    snprintf(pf, sizeof pf,
             "probe %llu rt worst %.1f ms, %llu fresh worst %.1f ms%s | fds %d -> max %d -> %d"
             " | rss %.1f -> max %.1f -> %.1f MiB",
             (unsigned long long)atomic_load(&c->p.ops), c->p.worst_us / 1000.0,
             (unsigned long long)c->p.fresh_ops, c->p.worst_fresh_us / 1000.0, busy, c->fd_base,
             atomic_load(&c->mon.max_fds), fds_after, c->rss_base / 1024.0,
             atomic_load(&c->mon.max_rss) / 1024.0, rss_after / 1024.0);
    if (c->started) {
        bool alive = srv_alive(&c->s);
        rc = srv_stop(&c->s);
        if (!alive)
            fail(c, "the server died during the case (status %d)", rc);
        else if (rc != 0)
            fail(c, "server exit status %d after SIGTERM (want 0)", rc);
    }
    printf("%s %s %s: %s%s%s\n",
           c->failed      ? (c->known_bug ? "XFAIL" : "FAIL")
           : c->known_bug ? "XPASS"
                          : "ok  ",
           c->label, c->name, pf, c->figures[0] ? " | " : "", c->figures);
    if (c->known_bug) {
        printf(c->failed ? "     known library bug, not counted: %s\n     why: %s\n"
                         : "     no longer reproduces the known bug (%s): drop its mark in "
                           "hostile.c%s\n",
               c->known_bug, c->failed ? c->why : "");
    } else if (c->failed) {
        printf("     why: %s\n", c->why);
        if (c->started) {
            fprintf(stderr, "     server log (%s):\n", c->s.log);
            srv_dump_log(&c->s, "     | ");
        }
    }
    fflush(stdout);
    if (c->started)
        srv_cleanup(&c->s);
    c->started = false;
    return !c->failed;
}

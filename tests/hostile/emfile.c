/* SPDX-License-Identifier: MIT */
/*
 * emfile.c - the server out of descriptors.
 *
 * poolsrv-echo runs with RLIMIT_NOFILE = EMFILE_NOFILE (set in the child
 * before exec) and we open EMFILE_CONNS connections: the kernel completes
 * every handshake, the server accepts until it has no descriptor left, and
 * the rest wait in the backlog.  The known failure mode is a level-triggered
 * listener reporting the waiting clients forever while accept() fails: 100%
 * CPU.  So for EMFILE_HOLD_MS we measure the server's CPU time (utime +
 * stime from /proc/PID/stat) and require it below EMFILE_MAX_CPU_PCT of one
 * core, and the probe's persistent connection, opened before, must still be
 * served.
 *
 * The accept_emfile counter: the admin listener needs a descriptor for each
 * request too, so GET /stats cannot work while the process is out of them
 * (its own reserve descriptor makes it accept-and-close us).  During the
 * exhaustion we read the counters with SIGUSR1, which poolsrv-echo logs to
 * stderr (already open); after the connections are closed, GET /stats must
 * work again and agree.  Then a new client must be served (recovery).
 */
#include "hostile.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EMFILE_NOFILE 64
#define EMFILE_CONNS 200
#define EMFILE_HOLD_MS 2000
#define EMFILE_MAX_CPU_PCT 30.0

/* The last "stats (SIGUSR1): ..." line of the server's log, into buf. */
static int sigusr1_stats(const srv *s, char *buf, size_t cap, int64_t deadline)
{
    char line[1024];
    int delay = 2;

    kill(s->pid, SIGUSR1);
    for (;;) {
        FILE *f = fopen(s->log, "re");
        bool found = false;
        while (f && fgets(line, sizeof line, f)) {
            char *p = strstr(line, "stats (SIGUSR1): ");
            if (p) {
                snprintf(buf, cap, "%s", p + 17);
                found = true;
            }
        }
        if (f)
            fclose(f);
        if (found)
            return 0;
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(delay);
        delay = delay < 50 ? delay * 2 : 50;
    }
}

/* A new client gets an echo: retried (bounded), since the first tries may
 * meet the back-off or the reserve's accept-and-close. */
static int recovery_ms(int port, int64_t deadline, int *tries)
{
    int64_t t0 = now_ms();
    char why[160];

    *tries = 0;
    while (now_ms() < deadline) {
        int fd = tcp_connect(port, deadline);
        (*tries)++;
        if (fd >= 0) {
            int rc = probe_roundtrip(PROBE_ECHO, fd, 1, now_ms() + 500, why, sizeof why);
            close(fd);
            if (rc == 0)
                return (int)(now_ms() - t0);
        }
        sleep_ms(20);
    }
    return -1;
}

static int open_conns(int port, int *fds, int n, int64_t deadline)
{
    int i, ok = 0;

    for (i = 0; i < n && now_ms() < deadline; i++) {
        fds[i] = tcp_connect(port, deadline);
        if (fds[i] >= 0)
            ok++;
    }
    return ok;
}

void case_emfile(ctx *c)
{
    int fds[EMFILE_CONNS], i, opened, fd_peak, tries, rec;
    long tick = sysconf(_SC_CLK_TCK), cpu0, cpu1;
    int64_t t0, t1;
    uint64_t ops0, ops1;
    char stats[1024];
    long long em_sig = -1, em_admin;
    double pct;

    for (i = 0; i < EMFILE_CONNS; i++)
        fds[i] = -1;
    c->nofile = EMFILE_NOFILE;
    c->no_fresh = true; /* new clients cannot be served while out of descriptors */
    if (case_begin(c, NULL, 0) < 0)
        return;
    opened = open_conns(c->s.port, fds, EMFILE_CONNS, now_ms() + scaled(5000));
    if (opened < EMFILE_CONNS)
        fail(c, "only %d of %d connections opened", opened, EMFILE_CONNS);
    /* The server takes descriptors until none is left. */
    {
        int64_t dl = now_ms() + scaled(3000);
        while ((fd_peak = proc_fd_count(c->s.pid)) < EMFILE_NOFILE - 1 && now_ms() < dl)
            sleep_ms(10);
    }
    cpu0 = proc_cpu_ticks(c->s.pid);
    ops0 = atomic_load(&c->p.ops);
    t0 = now_ms();
    sleep_ms(EMFILE_HOLD_MS); /* the measurement window itself */
    cpu1 = proc_cpu_ticks(c->s.pid);
    t1 = now_ms();
    ops1 = atomic_load(&c->p.ops);
    pct = 100.0 * (double)(cpu1 - cpu0) / (double)tick / ((double)(t1 - t0) / 1000.0);
    if (sigusr1_stats(&c->s, stats, sizeof stats, now_ms() + scaled(2000)) == 0)
        em_sig = stats_value(stats, "accept_emfile");
    for (i = 0; i < EMFILE_CONNS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    rec = recovery_ms(c->s.port, now_ms() + scaled(3000), &tries);
    em_admin = admin_stat(c->s.admin_port, "accept_emfile");
    addf(c,
         "limit %d, %d connections, server fds %d; CPU %.1f%% of a core over %lld ms; "
         "probe %llu rt meanwhile; accept_emfile %lld (SIGUSR1) / %lld (GET /stats after); "
         "recovered in %d ms (%d tries)",
         EMFILE_NOFILE, opened, fd_peak, pct, (long long)(t1 - t0),
         (unsigned long long)(ops1 - ops0), em_sig, em_admin, rec, tries);
    if (fd_peak < EMFILE_NOFILE - 1)
        fail(c, "the server never ran out of descriptors (peak %d of %d)", fd_peak, EMFILE_NOFILE);
    if (pct > EMFILE_MAX_CPU_PCT)
        fail(c, "server CPU %.1f%% of a core while out of descriptors (limit %.0f%%)", pct,
             EMFILE_MAX_CPU_PCT);
    if (ops1 == ops0)
        fail(c, "the probe's open connection got no answer while out of descriptors");
    if (em_sig <= 0)
        fail(c, "SIGUSR1 stats show accept_emfile %lld (want > 0)", em_sig);
    if (em_admin < (em_sig > 0 ? em_sig : 1))
        fail(c, "GET /stats after recovery shows accept_emfile %lld", em_admin);
    if (rec < 0)
        fail(c, "no new client served within %lld ms after the descriptors were freed",
             (long long)scaled(3000));
}

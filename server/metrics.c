/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - see metrics.h.  The process_* names, types and units are
 * those of the Prometheus client libraries (client_golang's process
 * collector), so dashboards made for them work unchanged.
 */
#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(*n < cap ? buf + *n : NULL, *n < cap ? cap - *n : 0, fmt, ap);
    va_end(ap);
    if (k > 0)
        *n += (size_t)k;
}

/* One sample with its HELP and TYPE lines. */
static void metric(char *buf, size_t cap, size_t *n, const char *name, const char *type,
                   const char *help, double v)
{
    put(buf, cap, n, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name, type, name, v);
}

void metrics_build_info(char *buf, size_t cap, size_t *n, const char *program)
{
    put(buf, cap, n,
        "# HELP poolsrv_build_info Versions of the program (its poolsrv.h) and of the "
        "libpoolsrv it runs with; always 1\n"
        "# TYPE poolsrv_build_info gauge\n"
        "poolsrv_build_info{program=\"%s\",version=\"%d.%d.%d\",library_version=\"%s\"} 1\n",
        program, PS_VERSION_MAJOR, PS_VERSION_MINOR, PS_VERSION_PATCH, ps_version());
}

void metrics_config(char *buf, size_t cap, size_t *n, const char *prefix, const ps_config *cfg)
{
    static const struct {
        const char *name, *help;
        size_t off;
        bool ms; /* milliseconds, shown in seconds */
    } rows[] = {
#define INT(f, help) {#f, help, offsetof(ps_config, f), false}
#define MS(f, name, help) {name, help, offsetof(ps_config, f), true}
        INT(backlog, "listen(2) backlog"),
        INT(max_connections, "Open connections at most (0: no limit)"),
        INT(max_per_client, "Open connections per client address at most (0: no limit)"),
        MS(drain_timeout_ms, "drain_timeout_seconds", "Time connections get to finish after stop (negative: no limit)"),
        MS(idle_timeout_ms, "idle_timeout_seconds", "Connections idle this long are closed (0: never)"),
        MS(first_byte_timeout_ms, "first_byte_timeout_seconds", "Connections silent this long after accept are closed (0: never)"),
        MS(request_timeout_ms, "request_timeout_seconds", "A message must arrive within this long (0: no limit)"),
        MS(write_timeout_ms, "write_timeout_seconds", "Output stalled this long closes the connection (0: never)"),
        MS(max_lifetime_ms, "max_lifetime_seconds", "Connections older than this are closed (0: never)"),
#undef INT
#undef MS
    };
    char name[160];
    size_t i;

    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int v = *(const int *)((const char *)cfg + rows[i].off);
        snprintf(name, sizeof name, "%s_config_%s", prefix, rows[i].name);
        metric(buf, cap, n, name, "gauge", rows[i].help, rows[i].ms ? v / 1000.0 : v);
    }
    snprintf(name, sizeof name, "%s_config_max_input_bytes", prefix);
    metric(buf, cap, n, name, "gauge", "Unconsumed input per connection at most (event style)",
           (double)cfg->max_input);
    snprintf(name, sizeof name, "%s_config_max_output_bytes", prefix);
    metric(buf, cap, n, name, "gauge", "Pending output per connection at most (0: no limit)",
           (double)cfg->max_output);
}

/* Fields 14 (utime), 15 (stime), 22 (starttime), 23 (vsize), 24 (rss) of
 * /proc/self/stat (proc(5)); the command name (field 2) may hold spaces,
 * so counting starts after its closing parenthesis (field 3 is next). */
static bool read_stat(unsigned long long *ticks, unsigned long long *start,
                      unsigned long long *vsize, unsigned long long *rss)
{
    char line[1024], *p, *end;
    unsigned long long v[25] = {0};
    FILE *f = fopen("/proc/self/stat", "re");
    bool ok;
    int field;

    if (!f)
        return false;
    ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok || !(p = strrchr(line, ')')) || p[1] != ' ' || !p[2] || !p[3])
        return false;
    p += 4; /* past ") S": field 4 next */
    for (field = 4; field <= 24; field++, p = end) {
        errno = 0;
        v[field] = strtoull(p, &end, 10);
        if (end == p || errno)
            return false;
    }
    *ticks = v[14] + v[15];
    *start = v[22];
    *vsize = v[23];
    *rss = v[24];
    return true;
}

/* The boot time (btime of /proc/stat), seconds since the epoch. */
static bool boot_time(unsigned long long *btime)
{
    char line[256];
    FILE *f = fopen("/proc/stat", "re");
    bool ok = false;

    if (!f)
        return false;
    while (!ok && fgets(line, sizeof line, f)) {
        char *end;
        if (strncmp(line, "btime ", 6) != 0)
            continue;
        errno = 0;
        *btime = strtoull(line + 6, &end, 10);
        ok = end != line + 6 && errno == 0;
    }
    fclose(f);
    return ok;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long k = 0;

    if (!d)
        return -1;
    /* cppcheck-suppress readdirCalled ; one thread reads this DIR (readdir_r is deprecated) */
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            k++;
    closedir(d);
    return k - 1; /* the directory's own descriptor */
}

void metrics_process(char *buf, size_t cap, size_t *n)
{
    double hz = (double)sysconf(_SC_CLK_TCK);
    unsigned long long ticks, start, vsize, btime, rss;
    struct rlimit rl;
    long fds = open_fds();

    if (read_stat(&ticks, &start, &vsize, &rss)) {
        metric(buf, cap, n, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.", ticks / hz);
        metric(buf, cap, n, "process_resident_memory_bytes", "gauge",
               "Resident memory size in bytes.", (double)rss * (double)sysconf(_SC_PAGESIZE));
        metric(buf, cap, n, "process_virtual_memory_bytes", "gauge",
               "Virtual memory size in bytes.", (double)vsize);
        if (boot_time(&btime))
            metric(buf, cap, n, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.",
                   (double)btime + start / hz);
    }
    if (fds >= 0)
        metric(buf, cap, n, "process_open_fds", "gauge", "Number of open file descriptors.",
               (double)fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metric(buf, cap, n, "process_max_fds", "gauge",
               "Maximum number of open file descriptors.",
               rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
}

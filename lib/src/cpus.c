/* SPDX-License-Identifier: MIT */
/*
 * cpus.c - the CPUs this process may run on: how many (the event style's
 * default pool), and how much of their time went idle (the pool's trials
 * of one poller more, trials.c: a second poller can only gain where a CPU
 * has time to spare).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ps__cpu_count(void)
{
    cpu_set_t set;
    long n = 0;

    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n < 1) /* more CPUs than a cpu_set_t holds, or no affinity call */
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

/* One "cpuN user nice system idle iowait irq softirq steal ..." line of
 * /proc/stat: adds its idle (idle + iowait) and total ticks if N is in set. */
static void add_cpu_line(const char *line, const cpu_set_t *set, uint64_t *idle, uint64_t *total)
{
    char *end;
    unsigned long cpu = strtoul(line + 3, &end, 10);
    uint64_t v;
    int i;

    if (end == line + 3 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, set))
        return;
    for (i = 0; i < 8; i++) {
        v = strtoull(end, &end, 10);
        *total += v;
        if (i == 3 || i == 4)
            *idle += v;
    }
}

/* Read /proc/stat a chunk at a time as far as its per-CPU lines go (the
 * "intr" line after them can be long). */
int ps__cpu_idle(uint64_t *idle, uint64_t *total)
{
    char buf[4096];
    size_t have = 0;
    cpu_set_t set;
    int fd, rc = 0;
    bool done = false;

    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return -errno;
    fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    *idle = *total = 0;
    while (!done) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        char *line = buf, *nl;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        have += (size_t)n;
        buf[have] = '\0';
        while ((nl = strchr(line, '\n'))) {
            if (strncmp(line, "cpu", 3) != 0) {
                done = true;
                break;
            }
            if (line[3] != ' ') /* "cpu " is the sum of all */
                add_cpu_line(line, &set, idle, total);
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        if (have == sizeof buf - 1) /* no line ends within the buffer */
            break;
        memmove(buf, line, have);
    }
    close(fd);
    if (rc == 0 && *total == 0)
        rc = -ENOENT;
    return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * server.c - the server under test as a child process, measured through
 * /proc/PID, plus its admin endpoint (GET /stats).
 */
#include "hostile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 8000 /* poolsrv-echo gets --drain-timeout 2000 */

/* Close every descriptor >= lo (in the child, before exec). */
static void close_from(int lo)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lo, ~0U, 0) == 0)
        return;
#endif
    long fd, max = sysconf(_SC_OPEN_MAX);
    for (fd = lo; fd < max; fd++)
        close((int)fd);
}

static void child_exec(char *const argv[], int out_w, int log_fd, int nofile)
{
    sigset_t none;
    int devnull = open("/dev/null", O_RDONLY);

    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the suite */
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(out_w, 1);
    dup2(log_fd, 2);
    close_from(3);            /* descriptors inherited by the suite (make's jobserver, ...) */
    signal(SIGPIPE, SIG_DFL); /* we ignore it; an exec'd program starts default */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (nofile > 0) {
        struct rlimit rl = {.rlim_cur = (rlim_t)nofile, .rlim_max = (rlim_t)nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(126);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* The port in a complete line "PREFIX<port>\n" of text, or 0. */
static int find_port(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    char *end;
    long port;

    if (!p)
        return 0;
    port = strtol(p + strlen(prefix), &end, 10);
    return *end == '\n' && port > 0 && port < 65536 ? (int)port : 0;
}

/* Read the child's stdout until the lines we need arrived (bounded). */
static int read_banner(srv *s, bool want_admin, char *why, size_t cap)
{
    char text[4096];
    size_t len = 0;
    int64_t deadline = now_ms() + scaled(START_TIMEOUT_MS);

    for (;;) {
        struct pollfd pfd = {.fd = s->out_fd, .events = POLLIN};
        int64_t left = deadline - now_ms();
        ssize_t n;
        text[len] = '\0';
        s->port = find_port(text, "listening on 127.0.0.1:");
        s->admin_port = find_port(text, "admin on 127.0.0.1:");
        if (s->port > 0 && (!want_admin || s->admin_port > 0))
            return 0;
        if (left <= 0 || len + 1 >= sizeof text) {
            snprintf(why, cap, "no 'listening on 127.0.0.1:PORT' line within %lld ms",
                     (long long)scaled(START_TIMEOUT_MS));
            return -1;
        }
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        n = read(s->out_fd, text + len, sizeof text - 1 - len);
        if (n <= 0) {
            snprintf(why, cap, "the server exited or closed stdout before listening");
            return -1;
        }
        len += (size_t)n;
    }
}

int srv_start(srv *s, char *const argv[], int nofile, bool want_admin, char *why, size_t cap)
{
    int out[2], log_fd;

    memset(s, 0, sizeof *s);
    s->pid = -1;
    s->out_fd = -1;
    snprintf(s->log, sizeof s->log, "/tmp/hostile-srv-XXXXXX");
    log_fd = mkostemp(s->log, O_CLOEXEC);
    if (log_fd < 0) {
        snprintf(why, cap, "mkostemp: %s", strerror(errno));
        s->log[0] = '\0';
        return -1;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        snprintf(why, cap, "pipe2: %s", strerror(errno));
        close(log_fd);
        return -1;
    }
    s->pid = fork();
    if (s->pid == 0)
        child_exec(argv, out[1], log_fd, nofile);
    close(out[1]);
    close(log_fd);
    s->out_fd = out[0];
    if (s->pid < 0) {
        snprintf(why, cap, "fork: %s", strerror(errno));
        return -1;
    }
    if (read_banner(s, want_admin, why, cap) < 0) {
        srv_stop(s);
        return -1;
    }
    return 0;
}

bool srv_alive(srv *s)
{
    if (s->pid <= 0 || s->reaped)
        return false;
    if (waitpid(s->pid, &s->status, WNOHANG) == 0)
        return true;
    s->reaped = true;
    return false;
}

int srv_stop(srv *s)
{
    int64_t deadline = now_ms() + scaled(STOP_TIMEOUT_MS);
    int st = 0, delay = 1, rc = -1;
    pid_t r = 0;

    if (s->pid <= 0)
        return -1;
    if (s->reaped) {
        r = s->pid;
        st = s->status;
        deadline = 0;
    } else {
        kill(s->pid, SIGTERM);
    }
    while (r == 0 && (r = waitpid(s->pid, &st, WNOHANG)) == 0 && now_ms() < deadline) {
        sleep_ms(delay);
        delay = delay < 50 ? delay * 2 : 50;
    }
    if (r == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
    } else if (r > 0) {
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    s->pid = -1;
    if (s->out_fd >= 0)
        close(s->out_fd);
    s->out_fd = -1;
    return rc;
}

void srv_dump_log(const srv *s, const char *indent)
{
    char line[512];
    FILE *f = s->log[0] ? fopen(s->log, "re") : NULL;
    long n = 0, total = 0;

    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        total++;
    rewind(f);
    while (fgets(line, sizeof line, f))
        if (++n > total - 20)
            fprintf(stderr, "%s%s", indent, line);
    fclose(f);
}

void srv_cleanup(srv *s)
{
    if (s->log[0])
        unlink(s->log);
    s->log[0] = '\0';
}

/* ------------------------------------------------------------ /proc */

int proc_fd_count(pid_t pid)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int n = 0;

    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (!d)
        return -1;
    /* readdir on a stream of our own is thread-safe; readdir_r is deprecated */
    // cppcheck-suppress readdirCalled
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    FILE *f;
    long kib = -1;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

long proc_cpu_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ticks = 0;
    ssize_t n;
    int fd, field;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return -1;
    /* after ')': field 3 is the state, ..., 14 utime, 15 stime */
    for (field = 2; field < 15 && p; field++) {
        p = strchr(p + 1, ' ');
        if (p && field >= 13)
            ticks += strtoul(p + 1, NULL, 10);
    }
    return p ? (long)ticks : -1;
}

int wait_fd_count(pid_t pid, int target, int64_t deadline)
{
    int n, delay = 2;

    while ((n = proc_fd_count(pid)) > target && now_ms() < deadline) {
        sleep_ms(delay);
        delay = delay < 100 ? delay * 2 : 100;
    }
    return n;
}

/* ------------------------------------------------------------- admin */

int admin_stats(int admin_port, char *buf, size_t cap)
{
    static const char req[] = "GET /stats HTTP/1.0\r\n\r\n";
    int64_t deadline = now_ms() + scaled(2000);
    int fd = tcp_connect(admin_port, deadline);
    size_t len = 0;
    char *body;

    if (fd < 0)
        return -1;
    if (send_all(fd, req, sizeof req - 1, deadline) < 0) {
        close(fd);
        return -1;
    }
    while (len + 1 < cap) {
        ssize_t n = recv_some(fd, buf + len, cap - 1 - len, deadline);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    body = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.0 200", 12) != 0 || !body)
        return -1;
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return 0;
}

long long stats_value(const char *text, const char *key)
{
    size_t k = strlen(key);
    const char *p = text;

    while ((p = strstr(p, key))) {
        if ((p == text || p[-1] == ' ' || p[-1] == '\n') && p[k] == '=')
            return strtoll(p + k + 1, NULL, 10);
        p += k;
    }
    return -1;
}

long long admin_stat(int admin_port, const char *key)
{
    char buf[4096];

    if (admin_stats(admin_port, buf, sizeof buf) < 0)
        return -1;
    return stats_value(buf, key);
}

/* ----------------------------------------------------------- monitor */

static void *monitor_main(void *arg)
{
    monitor *m = arg;

    while (!atomic_load(&m->stop)) {
        int fds = proc_fd_count(m->pid);
        long rss = proc_rss_kib(m->pid);
        if (fds > atomic_load(&m->max_fds))
            atomic_store(&m->max_fds, fds);
        if (rss > atomic_load(&m->max_rss))
            atomic_store(&m->max_rss, rss);
        sleep_ms(50);
    }
    return NULL;
}

void monitor_start(monitor *m, pid_t pid)
{
    m->pid = pid;
    atomic_store(&m->stop, false);
    atomic_store(&m->max_fds, proc_fd_count(pid));
    atomic_store(&m->max_rss, proc_rss_kib(pid));
    m->running = pthread_create(&m->tid, NULL, monitor_main, m) == 0;
}

void monitor_stop(monitor *m)
{
    if (!m->running)
        return;
    atomic_store(&m->stop, true);
    pthread_join(m->tid, NULL);
    m->running = false;
}

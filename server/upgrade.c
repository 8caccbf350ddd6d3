/* SPDX-License-Identifier: MIT */
/* upgrade.c - see upgrade.h. */
#include "upgrade.h"
#include "sdnotify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ENV_FD "POOLSRV_UPGRADE_FD"
#define DESC_MAX 8192 /* 32 listeners of long Unix paths, escaped */

static const char *const env_names[UPG_NSERVERS] = {"POOLSRV_LISTENERS",
                                                    "POOLSRV_ADMIN_LISTENERS"};

/* Set by upg_init (main thread, before other threads), then read-only. */
static struct {
    char exe[PATH_MAX];
    char **argv;
    const char *pid_file;
    int systemd_fds;
    upg_log_fn log;
    char *inherited[UPG_NSERVERS]; /* successor: the descriptions for us */
    int ready_fd;                  /* successor: the predecessor's pipe, -1 */
} g = {.ready_fd = -1};

/* lock guards the fields below: the signal thread starts an upgrade, the
 * waiter thread ends it, the main thread joins it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ps_server *servers[UPG_NSERVERS];
static bool busy, handed_off, stopping, have_waiter;
static pid_t child;
static int child_pipe; /* read end of its readiness pipe, for the waiter */
static pthread_t waiter;

static void say(ps_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(ps_log_level level, const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g.log(level, msg);
}

int upg_init(char **argv, const char *pid_file, int systemd_fds, upg_log_fn log)
{
    const char *v = getenv(ENV_FD);
    ssize_t n = readlink("/proc/self/exe", g.exe, sizeof g.exe - 1);
    char *end;
    int i;

    g.argv = argv;
    g.pid_file = pid_file;
    g.systemd_fds = systemd_fds;
    g.log = log;
    /* The path, not /proc/self/exe itself: that names the inode we run,
     * which a package upgrade has replaced (" (deleted)"). */
    g.exe[n > 0 ? n : 0] = '\0';
    if (n > 10 && strcmp(g.exe + n - 10, " (deleted)") == 0)
        g.exe[n - 10] = '\0';
    for (i = 0; i < UPG_NSERVERS; i++) {
        const char *d = getenv(env_names[i]);
        if (d && !(g.inherited[i] = strdup(d)))
            return -ENOMEM;
        unsetenv(env_names[i]);
    }
    if (!v)
        return 0;
    errno = 0;
    g.ready_fd = (int)strtol(v, &end, 10);
    unsetenv(ENV_FD);
    if (errno || *end || end == v || g.ready_fd < 0 || fcntl(g.ready_fd, F_SETFD, FD_CLOEXEC) < 0) {
        say(PS_LOG_ERROR, "upgrade: " ENV_FD "='%s' is not an open descriptor", v);
        g.ready_fd = -1;
        return -EBADF;
    }
    return 0;
}

bool upg_is_successor(void)
{
    return g.ready_fd >= 0;
}

int upg_adopt(int slot, ps_server *s, ps_err *err)
{
    int rc;

    if (!g.inherited[slot])
        return 0;
    rc = ps_server_handoff_adopt(s, g.inherited[slot], err);
    free(g.inherited[slot]);
    g.inherited[slot] = NULL;
    return rc < 0 ? rc : 0;
}

void upg_set_servers(ps_server *main, ps_server *admin)
{
    pthread_mutex_lock(&lock);
    servers[UPG_MAIN] = main;
    servers[UPG_ADMIN] = admin;
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------ pid file */

static int write_pid_file(void)
{
    char tmp[PATH_MAX], line[32];
    int fd, len, e;

    if (!g.pid_file)
        return 0;
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", g.pid_file, (int)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    len = snprintf(line, sizeof line, "%d\n", (int)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (write(fd, line, (size_t)len) != len || fsync(fd) < 0) {
        e = errno ? errno : EIO;
        close(fd);
        unlink(tmp);
        return -e;
    }
    close(fd);
    if (rename(tmp, g.pid_file) < 0) {
        e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

/* The pid the pid file holds, or -1. */
static long pid_file_pid(void)
{
    char line[32] = "";
    FILE *f = fopen(g.pid_file, "re");
    long pid = -1;

    if (!f)
        return -1;
    if (fgets(line, sizeof line, f))
        pid = strtol(line, NULL, 10);
    fclose(f);
    return pid;
}

int upg_ready(const char *notify_status)
{
    char msg[1200];
    int rc = write_pid_file();

    if (rc < 0) {
        say(PS_LOG_ERROR, "--pid-file %s: %s", g.pid_file, strerror(-rc));
        return rc;
    }
    if (g.ready_fd < 0) {
        sdn_notify(notify_status);
        return 0;
    }
    /* MAINPID first: with NotifyAccess=all systemd takes it from any
     * process of the unit, and follows us from here on. */
    snprintf(msg, sizeof msg, "MAINPID=%d\n%s", (int)getpid(), notify_status);
    sdn_notify(msg);
    if (write(g.ready_fd, "R", 1) != 1)
        say(PS_LOG_WARN, "upgrade: cannot tell the previous process we serve: %s",
            strerror(errno));
    close(g.ready_fd);
    g.ready_fd = -1;
    return 0;
}

void upg_exit(void)
{
    bool join;

    pthread_mutex_lock(&lock);
    stopping = true;
    join = have_waiter;
    have_waiter = false;
    pthread_mutex_unlock(&lock);
    if (join)
        pthread_join(waiter, NULL);
    if (g.pid_file && pid_file_pid() == (long)getpid())
        unlink(g.pid_file);
}

bool upg_handed_off(void)
{
    bool v;

    pthread_mutex_lock(&lock);
    v = handed_off;
    pthread_mutex_unlock(&lock);
    return v;
}

void upg_stopping(void)
{
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------ spawning */

/* The environment of the successor: ours without the hand-off variables
 * (and LISTEN_* / WATCHDOG_PID, which name a pid), plus the new ones.
 * Slots whose value is the child's pid hold PID_DIGITS '0's that the child
 * overwrites with its pid and a NUL (after fork only async-signal-safe
 * work is allowed). */
typedef struct spawn_env {
    char **envp;
    char *pid_slots[2];
    int npid;
    char *own[UPG_NSERVERS + 4]; /* strings we allocated */
    int nown;
} spawn_env;

#define PID_DIGITS 10

static bool dropped(const char *e)
{
    static const char *const names[] = {
        "POOLSRV_UPGRADE_FD=", "POOLSRV_LISTENERS=", "POOLSRV_ADMIN_LISTENERS=", "LISTEN_PID=",
        "LISTEN_FDS=",         "LISTEN_FDNAMES=",    "WATCHDOG_PID=",
    };
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(e, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/* Add an allocated "NAME=VALUE" string (NULL: out of memory). */
static int env_put(spawn_env *se, size_t *n, char *str)
{
    if (!str)
        return -ENOMEM;
    se->own[se->nown++] = str;
    se->envp[(*n)++] = str;
    return 0;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *str;
    int rc;

    va_start(ap, f);
    rc = vasprintf(&str, f, ap);
    va_end(ap);
    return rc < 0 ? NULL : str;
}

static int build_env(spawn_env *se, char *desc[UPG_NSERVERS], int ready_w)
{
    size_t n = 0, cap = 0, i;
    bool watchdog = getenv("WATCHDOG_PID") != NULL;

    while (environ[cap])
        cap++;
    memset(se, 0, sizeof *se);
    if (!(se->envp = calloc(cap + UPG_NSERVERS + 6, sizeof *se->envp)))
        return -ENOMEM;
    for (i = 0; i < cap; i++)
        if (!dropped(environ[i]))
            se->envp[n++] = environ[i];
    for (i = 0; i < UPG_NSERVERS; i++)
        if (desc[i] && env_put(se, &n, fmt("%s=%s", env_names[i], desc[i])) < 0)
            return -ENOMEM;
    if (env_put(se, &n, fmt(ENV_FD "=%d", ready_w)) < 0)
        return -ENOMEM;
    if (g.systemd_fds > 0) {
        if (env_put(se, &n, fmt("LISTEN_FDS=%d", g.systemd_fds)) < 0 ||
            env_put(se, &n, fmt("LISTEN_PID=%0*d", PID_DIGITS, 0)) < 0)
            return -ENOMEM;
        se->pid_slots[se->npid++] = se->own[se->nown - 1];
    }
    if (watchdog) {
        if (env_put(se, &n, fmt("WATCHDOG_PID=%0*d", PID_DIGITS, 0)) < 0)
            return -ENOMEM;
        se->pid_slots[se->npid++] = se->own[se->nown - 1];
    }
    return 0;
}

static void free_env(spawn_env *se)
{
    int i;

    for (i = 0; i < se->nown; i++)
        free(se->own[i]);
    free(se->envp);
}

/* In the child, before exec: async-signal-safe only. */
static _Noreturn void child_exec(spawn_env *se, const int *fds, int nfds, int ready_w)
{
    sigset_t none;
    pid_t me = getpid();
    int i, k, e;

    for (i = 0; i < se->npid; i++) { /* "NAME=0000000000" -> "NAME=123" */
        char digits[PID_DIGITS], *d = strchr(se->pid_slots[i], '=') + 1;
        long p = me;
        int nd = 0;
        do
            digits[nd++] = (char)('0' + p % 10);
        while ((p /= 10) > 0 && nd < PID_DIGITS);
        for (k = 0; k < nd; k++)
            d[k] = digits[nd - 1 - k];
        d[nd] = '\0';
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* ours blocks signals for sigwait */
    for (i = 0; i < nfds; i++)
        fcntl(fds[i], F_SETFD, 0);
    fcntl(ready_w, F_SETFD, 0);
    execve(g.exe, g.argv, se->envp);
    e = errno;
    if (write(ready_w, "E", 1) == 1 && write(ready_w, &e, sizeof e) == sizeof e)
        _exit(127);
    _exit(127);
}

/* Collect the descriptors and descriptions of every running server. */
static int describe(char *desc[UPG_NSERVERS], int *fds, int *nfds)
{
    int i, j, rc;

    *nfds = 0;
    for (i = 0; i < UPG_NSERVERS; i++) {
        desc[i] = NULL;
        if (!servers[i])
            continue;
        if (!(desc[i] = malloc(DESC_MAX)))
            return -ENOMEM;
        rc = ps_server_handoff_format(servers[i], desc[i], DESC_MAX);
        if (rc < 0 || rc >= DESC_MAX)
            return rc < 0 ? rc : -E2BIG;
        for (j = 0; j < ps_server_nlisteners(servers[i]) && *nfds < 64; j++)
            if ((rc = ps_server_listener_fd(servers[i], j)) >= 0)
                fds[(*nfds)++] = rc;
    }
    return 0;
}

/* ------------------------------------------------------------ waiting */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the pipe said within the timeout: 'R' ready, 'E' exec failed (with
 * *exec_err), 0 closed (the child exited), -1 timed out. */
static int wait_ready(int r, int *exec_err)
{
    int64_t deadline = now_ms() + UPG_READY_TIMEOUT_MS;
    char c;

    for (;;) {
        struct pollfd p = {.fd = r, .events = POLLIN};
        int64_t left = deadline - now_ms();
        ssize_t n;
        if (left <= 0)
            return -1;
        if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
            return -1;
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        n = read(r, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        if (c == 'E' && read(r, exec_err, sizeof *exec_err) != sizeof *exec_err)
            *exec_err = 0;
        return c;
    }
}

/* Reap a failed successor: SIGTERM (it drains), SIGKILL if it lingers. */
static int reap(pid_t pid, bool stop_it)
{
    int64_t deadline = now_ms() + UPG_STOP_WAIT_MS;
    int status = 0;

    if (stop_it)
        kill(pid, SIGTERM);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        poll(NULL, 0, 20);
    }
    return status;
}

static void describe_status(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "ended (status %#x)", status);
}

static void *waiter_main(void *arg)
{
    int r, exec_err = 0, got, i;
    pid_t pid;
    char why[512];

    (void)arg;
    pthread_mutex_lock(&lock);
    pid = child;
    r = child_pipe;
    pthread_mutex_unlock(&lock);
    got = wait_ready(r, &exec_err);
    close(r);
    if (got == 'R') {
        say(PS_LOG_INFO, "upgrade: new process %d serves; no longer accepting, draining",
            (int)pid);
        pthread_mutex_lock(&lock);
        handed_off = true;
        busy = false;
        for (i = 0; i < UPG_NSERVERS; i++)
            ps_server_handoff_stop(servers[i]);
        pthread_mutex_unlock(&lock);
        return NULL;
    }
    if (got == 'E') {
        reap(pid, false);
        snprintf(why, sizeof why, "cannot run %.300s: %s", g.exe, strerror(exec_err));
    } else if (got == 0) {
        char st[96];
        describe_status(reap(pid, false), st, sizeof st);
        snprintf(why, sizeof why, "new process %d %s before it was ready", (int)pid, st);
    } else {
        reap(pid, true);
        snprintf(why, sizeof why, "new process %d was not ready within %d ms; stopped it",
                 (int)pid, UPG_READY_TIMEOUT_MS);
    }
    say(PS_LOG_ERROR, "upgrade failed: %s; this process keeps serving", why);
    sdn_notify("READY=1\nSTATUS=serving (upgrade failed)");
    pthread_mutex_lock(&lock);
    busy = false;
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Fork and exec the successor; on success the waiter thread owns the
 * pipe's read end.  Called with lock held. */
static int spawn(char *why, size_t cap)
{
    char *desc[UPG_NSERVERS] = {0};
    int fds[64], nfds, pfd[2] = {-1, -1}, rc, i;
    spawn_env se = {0};
    pid_t pid;

    if ((rc = describe(desc, fds, &nfds)) < 0) {
        snprintf(why, cap, "cannot describe the listeners: %s", strerror(-rc));
        goto out;
    }
    if (pipe2(pfd, O_CLOEXEC) < 0 || (rc = build_env(&se, desc, pfd[1])) < 0) {
        rc = rc < 0 ? rc : -errno;
        snprintf(why, cap, "%s", strerror(-rc));
        goto out;
    }
    pid = fork();
    if (pid == 0)
        child_exec(&se, fds, nfds, pfd[1]);
    if (pid < 0) {
        rc = -errno;
        snprintf(why, cap, "fork: %s", strerror(errno));
        goto out;
    }
    child = pid;
    child_pipe = pfd[0];
    close(pfd[1]);
    pfd[1] = -1;
    if ((rc = pthread_create(&waiter, NULL, waiter_main, NULL)) != 0) {
        snprintf(why, cap, "cannot create a thread: %s", strerror(rc));
        rc = -rc;
        close(pfd[0]);
        reap(pid, true);
        goto out;
    }
    have_waiter = true;
    pfd[0] = -1;
    rc = 0;
out:
    for (i = 0; i < 2; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    free_env(&se);
    for (i = 0; i < UPG_NSERVERS; i++)
        free(desc[i]);
    return rc;
}

void upg_request(void)
{
    char why[200], msg[96];
    struct timespec ts;
    bool join;

    pthread_mutex_lock(&lock);
    if (busy || handed_off || stopping) {
        say(PS_LOG_WARN, "SIGUSR2: upgrade refused: %s",
            busy         ? "an upgrade is already in progress"
            : handed_off ? "a new process has taken over; this one is draining"
                         : "this process is stopping");
        pthread_mutex_unlock(&lock);
        return;
    }
    if (!servers[UPG_MAIN]) {
        pthread_mutex_unlock(&lock);
        return;
    }
    join = have_waiter; /* the thread of an earlier, failed upgrade */
    have_waiter = false;
    busy = true;
    pthread_mutex_unlock(&lock);
    if (join)
        pthread_join(waiter, NULL);

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=upgrading",
             (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
    sdn_notify(msg);
    say(PS_LOG_INFO, "SIGUSR2: upgrading: starting %.300s", g.exe);
    pthread_mutex_lock(&lock);
    if (spawn(why, sizeof why) < 0) {
        busy = false;
        pthread_mutex_unlock(&lock);
        say(PS_LOG_ERROR, "upgrade failed: %s; this process keeps serving", why);
        sdn_notify("READY=1\nSTATUS=serving (upgrade failed)");
        return;
    }
    pthread_mutex_unlock(&lock);
}

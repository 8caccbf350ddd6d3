/* SPDX-License-Identifier: MIT */
/*
 * hostile.h - shared declarations of the hostile-client suite (tests/hostile/).
 *
 * The suite starts a real server process, keeps a well-behaved probe client
 * talking to it, attacks it in one way per case, and measures the server
 * from the outside through /proc/PID (descriptor count, VmRSS, CPU time).
 * Only libc and pthreads; all traffic goes to 127.0.0.1.
 */
#ifndef HOSTILE_H
#define HOSTILE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_MAX_ARGS 64

/* ------------------------------------------------------------------ util.c */

int64_t now_ms(void);
int64_t now_us(void);
/* ms scaled by HOSTILE_TIME_MULTIPLIER (default 1; e.g. 3 for sanitizer builds). */
int64_t scaled(int64_t ms);
void sleep_ms(int ms);
uint64_t rnd_next(uint64_t *state); /* xorshift64* */

/* Sockets to 127.0.0.1:port.  All descriptors are non-blocking and close-on-exec.
 * tcp_connect_start: connect begun (or done); returns fd or -errno.
 * tcp_connect: waits for completion until deadline; returns fd or -errno. */
int tcp_connect_start(int port);
int tcp_connect(int port, int64_t deadline);
/* Returns 0 when the connect of fd completed, -errno for a failure. */
int tcp_connect_result(int fd);
/* Deadline-bounded I/O on non-blocking sockets.  send_all: 0 or -errno
 * (-ETIMEDOUT).  recv_some: > 0 bytes, 0 at end of stream, or -errno.
 * recv_exact: len, or -errno / -ECONNRESET for a stream that ended early. */
int send_all(int fd, const void *buf, size_t len, int64_t deadline);
ssize_t recv_some(int fd, void *buf, size_t len, int64_t deadline);
int recv_exact(int fd, void *buf, size_t len, int64_t deadline);
/* Close with SO_LINGER {1, 0}: the peer gets a reset. */
void close_rst(int fd);
void raise_nofile(void);

/* ---------------------------------------------------------------- server.c */

typedef struct srv {
    pid_t pid;
    int port;       /* from "listening on 127.0.0.1:PORT" */
    int admin_port; /* from "admin on 127.0.0.1:PORT", 0 if none */
    int out_fd;     /* the server's stdout (a pipe we keep open) */
    char log[64];   /* the server's stderr, a temporary file */
    bool reaped;    /* srv_alive saw it exit; status holds the wait status */
    int status;
} srv;

/* Start argv[] (argv[0] is the program) with stdout to a pipe, stderr to a
 * temporary file; nofile > 0 sets the child's RLIMIT_NOFILE before exec.
 * Waits (bounded) for the listening line, and the admin line if want_admin.
 * Returns 0, or -1 with a message in why. */
int srv_start(srv *s, char *const argv[], int nofile, bool want_admin, char *why, size_t cap);
/* SIGTERM, wait (bounded), SIGKILL if needed.  Returns the exit status
 * (0..255), 128+signal if it died of a signal, or -1 if it had to be killed. */
int srv_stop(srv *s);
bool srv_alive(srv *s);
/* Print the server's stderr log (last lines) to our stderr. */
void srv_dump_log(const srv *s, const char *indent);
void srv_cleanup(srv *s); /* remove the log file */

/* /proc/PID figures; -1 on failure. */
int proc_fd_count(pid_t pid);
long proc_rss_kib(pid_t pid);
long proc_cpu_ticks(pid_t pid); /* utime + stime, in clock ticks */
/* Poll until the descriptor count is <= target; returns the last count. */
int wait_fd_count(pid_t pid, int target, int64_t deadline);
/* GET /stats from the admin port; value of "key=" or -1. */
long long admin_stat(int admin_port, const char *key);
int admin_stats(int admin_port, char *buf, size_t cap); /* whole body; 0 or -1 */
long long stats_value(const char *text, const char *key);

/* Sample fd count and RSS of pid every 50 ms in a thread; keep maxima. */
typedef struct monitor {
    pid_t pid;
    pthread_t tid;
    atomic_bool stop;
    atomic_int max_fds;
    atomic_long max_rss;
    bool running;
} monitor;
void monitor_start(monitor *m, pid_t pid);
void monitor_stop(monitor *m);

/* ----------------------------------------------------------------- probe.c */

typedef enum probe_kind { PROBE_ECHO, PROBE_HTTP, PROBE_RESP } probe_kind;

typedef struct probe {
    probe_kind kind;
    int port;
    int bound_ms;       /* each persistent round trip must finish within this */
    int fresh_bound_ms; /* ... and each fresh connect + round trip */
    bool fresh;         /* also open a fresh connection every 10th round */
    bool busy_ok;       /* a fresh connection refused with the busy line is no failure */
    pthread_t tid;
    atomic_bool stop;
    atomic_uint_fast64_t ops;
    pthread_mutex_t lock; /* guards the fields below */
    uint64_t fresh_ops, fresh_busy;
    int64_t worst_us, worst_fresh_us;
    int failures;
    char first_fail[200];
    bool running;
} probe;

/* fresh_bound_ms 0: the default bound (PROBE_BOUND_MS, scaled). */
void probe_start(probe *p, probe_kind kind, int port, bool fresh, int fresh_bound_ms, bool busy_ok);
/* Wait until the probe has completed n round trips (bounded); false if not. */
bool probe_wait_ops(probe *p, uint64_t n, int64_t deadline);
void probe_stop(probe *p);
/* 0 = verified reply, -1 = failure (why), PROBE_BUSY = the echo server's
 * busy line instead of the echo (refused by policy). */
#define PROBE_BUSY 1
int probe_roundtrip(probe_kind kind, int fd, uint32_t seq, int64_t deadline, char *why, size_t cap);
const char *probe_kind_name(probe_kind k);

/* ----------------------------------------------------------------- swarm.c */

#define MAX_EVENTS 256
/* The short attacks (flood, resets, close at once) repeat until at least
 * this long has passed, so the probe takes many samples during them. */
#define ATTACK_MIN_MS 1000
#define KIB 1024L
#define MIB (1024L * 1024L)

int *fds_new(int n); /* n descriptors, all -1; NULL if out of memory */
void close_all(int *fds, int n);
/* Open n connections, at most `inflight` connecting at once.  Returns how
 * many connected; the others are -1 in fds[], *err holds the first error. */
int open_many(int port, int *fds, int n, int inflight, int64_t deadline, int *err);
/* Read and drop what is there.  Returns 1 if the peer closed or reset the
 * connection, else 0; adds the bytes to *got (if not NULL). */
int drain_input(int fd, long *got);

/* ---------------------------------------------------------- case_*.c, harness.c */

/* One run of one case against one server configuration. */
typedef struct ctx {
    const char *label; /* e.g. "echo-event" */
    const char *name;  /* case name */
    char *base[H_MAX_ARGS];
    int nbase;
    probe_kind kind;
    bool blocking;
    bool is_echo;  /* poolsrv-echo: has --admin, --queue, timeouts ... */
    int nofile;    /* > 0: the server's RLIMIT_NOFILE */
    bool no_fresh; /* the probe keeps to its persistent connection */
    bool busy_ok;  /* the probe's fresh connections may be refused (reject policy) */
    /* filled by case_begin */
    srv s;
    probe p;
    monitor mon;
    int fd_base;
    long rss_base;
    bool started;
    bool measured;         /* the baseline was taken: the attack ran */
    bool skipped;          /* the case does not apply; run() printed why */
    const char *known_bug; /* from hcase */
    /* results */
    bool failed;
    char why[400];
    char figures[600];
} ctx;

typedef struct hcase {
    const char *name;
    bool echo_only;  /* needs poolsrv-echo's flags */
    bool proto_only; /* only for protocol servers (garbage) */
    void (*run)(ctx *c);
    /* A known library bug this case shows: a failure prints XFAIL and is not
     * counted; a pass prints XPASS (the bug is fixed: drop the mark). */
    const char *known_bug;
} hcase;

/* harness.c: a case's run() calls case_begin (server with base + extra
 * flags, probe, baseline, monitor) and returns; the runner calls case_end. */
int case_begin(ctx *c, const char *const extra[], int fresh_bound_ms);
/* The server's descriptor count: the least of a few samples 15 ms apart,
 * so that a probe's fresh connection caught in flight does not count. */
int fd_baseline(pid_t pid);
/* RSS the server may keep above baseline after a case (see harness.c). */
long rss_slack_kib(void);
bool case_end(ctx *c);

/* The cases (case_silent.c, case_flood.c, case_data.c, emfile.c). */
void run_slowloris(ctx *c);
void run_halfopen_hold(ctx *c);
void run_halfopen_cut(ctx *c);
void run_queued_first_byte(ctx *c);
void run_idle_not_early(ctx *c);
void run_flood_block(ctx *c);
void run_flood_reject(ctx *c);
void run_close_immediately(ctx *c);
void run_never_read(ctx *c);
void run_rst(ctx *c);
void run_bigwrite(ctx *c);
void run_garbage(ctx *c);
void case_emfile(ctx *c);

void fail(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void addf(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------ soak.c */

int run_soak(char *const base[], int nbase, int seconds);

#endif

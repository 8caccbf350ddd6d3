/* SPDX-License-Identifier: MIT */
/*
 * common.h - what the example programs share: the command line of
 * poolsrv-echo (--listen, --workers, --idle-timeout, --max-connections,
 * --log-level, --help, --version) and --request-timeout, --pid-file, the run
 * loop with graceful stop on SIGINT/SIGTERM, upgrade on SIGUSR2 and systemd
 * notifications, log lines, and a small output batcher.
 *
 * Of poolsrv only lib/include/poolsrv.h is used: these files are written
 * the way an outside program embeds the library.  The upgrade (SIGUSR2)
 * and readiness code is poolsrv-echo's (server/upgrade.c, sdnotify.c),
 * which uses nothing else either.
 */
#ifndef EXAMPLES_COMMON_H
#define EXAMPLES_COMMON_H

#include "poolsrv.h"

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ex_prog {
    const char *name;           /* "poolsrv-http" */
    const char *summary;        /* one line for --help */
    const char *default_listen; /* used when no --listen is given */
    const char *extra_help;     /* further --help text, or NULL */
    /* Options of this program alone (NULL, or a list ended by a zero
     * entry; each `val` >= 512), and what takes them: returns 0, or -1 for a
     * bad value (the parser then exits 2 naming the option and value). */
    const struct option *extra_opts;
    int (*extra)(int val, const char *arg, ps_config *cfg);
} ex_prog;

/* Parse the shared flags into cfg (which the caller has initialised with its
 * own defaults).  Prints and exits 0 for --help / --version; exits 2 with a
 * one-line message naming the bad value on a usage error.  Main thread. */
void ex_parse_args(const ex_prog *p, int argc, char **argv, ps_config *cfg);

/* Create and start the server (on the listeners an upgrade handed over, if
 * any), print "listening on ADDR" per listener (flushed), write the
 * --pid-file and tell systemd READY=1 (NOTIFY_SOCKET), serve until SIGINT or
 * SIGTERM (STOPPING=1; a second signal ends the drain at once; WATCHDOG=1
 * when WATCHDOG_USEC asks), then drain and free it.  SIGUSR2 upgrades
 * (server/upgrade.h).  Log and error lines carry "<N>" priorities, no
 * timestamp, when JOURNAL_STREAM names stderr (systemd's journal).
 * Returns the process exit status: 0 after a clean stop, 1 if the server
 * could not start, 2 for a configuration the library refused.  Main thread,
 * once per process (the signal handler needs one server to stop). */
int ex_run(const ex_prog *p, const ps_config *cfg, const ps_handler *h, void *user);

/* The program's own lines.  ex_log: a log line at `level`, shown when
 * --log-level allows, in the library's form ("TIMESTAMP PROG LEVEL: msg",
 * or "<N>LEVEL: msg" under the journal).  ex_fail: "PROG: msg", always
 * shown (a failure to start).  ex_usage_error: the same with the --help
 * hint, then exit(2).  Any thread once ex_parse_args has run. */
void ex_log(ps_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ex_fail(const ex_prog *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void ex_usage_error(const ex_prog *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * An output batcher for event handlers: replies produced by one on_data call
 * are gathered here (on the worker's stack) and handed to ps_conn_send in as
 * few calls as possible, so a pipelined burst of N requests costs one send(2)
 * rather than N.  ps_conn_send never blocks and copies what the socket does
 * not take, so nothing here outlives the on_data call.
 */
#define EX_OUT_CAP 16384

typedef struct ex_out {
    ps_conn *conn;
    size_t len;
    int err; /* first ps_conn_send error (-EPIPE, -ENOMEM), or 0 */
    char buf[EX_OUT_CAP];
} ex_out;

void ex_out_init(ex_out *o, ps_conn *c);
/* Append len bytes (any size: large items bypass the batch). */
void ex_out_put(ex_out *o, const void *data, size_t len);
/* Room for at least n contiguous bytes (n <= EX_OUT_CAP): flushes if needed
 * and returns where to write; commit with ex_out_commit. */
char *ex_out_reserve(ex_out *o, size_t n);
void ex_out_commit(ex_out *o, size_t n);
/* Hand everything batched to ps_conn_send.  Returns 0 or the first error. */
int ex_out_flush(ex_out *o);
/* Whether the connection has more than high_water bytes of output waiting,
 * counting the batch (flushed first when that decides it): the point where
 * a handler answering many requests per on_data stops and returns the rest
 * unconsumed (docs/embedding.md).  A true answer means poolsrv has stopped
 * reading the peer and will offer the rest again once output has drained;
 * a false one never strands requests, since the batch is then what would
 * tip it over and it has been handed to ps_conn_send. */
bool ex_out_full(ex_out *o, size_t high_water);

#endif

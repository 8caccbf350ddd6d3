/* SPDX-License-Identifier: MIT */
/*
 * upgrade.h - the bundled programs' binary upgrade on SIGUSR2 and their
 * --pid-file (docs/deployment.md, "Upgrading without losing a connection").
 *
 * SIGUSR2 starts the program's executable again (the path /proc/self/exe
 * named at start, so a binary replaced since is the one that runs) with the
 * same arguments.  The new process inherits the listening sockets across
 * exec: their numbers and listen texts travel in POOLSRV_LISTENERS (and
 * POOLSRV_ADMIN_LISTENERS for the admin server), in the library's hand-off
 * format (ps_server_handoff_format), and it adopts them instead of binding.
 * Once it serves it writes the pid file, tells systemd its pid (MAINPID=,
 * with READY=1) and writes one byte to the pipe named by POOLSRV_UPGRADE_FD;
 * the old process then stops accepting (ps_server_handoff_stop), drains
 * and exits 0.  If the new one exits, or is not ready within
 * UPG_READY_TIMEOUT_MS, the old one logs why, stops it, and keeps serving.
 *
 * One upgrade at a time per process, and only once per process: a SIGUSR2
 * while one is in progress, or after a successor took over, is refused
 * with a log line.  Uses only poolsrv.h, POSIX and sdnotify.h, so the
 * examples (server/examples) can use it as well.
 */
#ifndef PS_UPGRADE_H
#define PS_UPGRADE_H

#include "poolsrv.h"

#include <stdbool.h>

#define UPG_READY_TIMEOUT_MS 10000 /* the successor must be serving by then */
#define UPG_STOP_WAIT_MS 5000      /* a failed successor gets this long after SIGTERM */

enum { UPG_MAIN = 0, UPG_ADMIN = 1, UPG_NSERVERS };

/* The program's log line writer (level-filtered by the program). */
typedef void (*upg_log_fn)(ps_log_level level, const char *msg);

/* Main thread, before any other thread exists and before any server is
 * created: remember the executable, argv and the pid file (NULL = none);
 * if this process is a successor, take (and remove from the environment)
 * the hand-off variables.  systemd_fds: how many LISTEN_FDS sockets the
 * program listens on (0 if not socket-activated), to pass on.  Returns 0,
 * or -errno with a message logged (a malformed POOLSRV_UPGRADE_FD). */
int upg_init(char **argv, const char *pid_file, int systemd_fds, upg_log_fn log);

/* Whether this process was started by an upgrade. */
bool upg_is_successor(void);

/* Before ps_server_start of server `slot`: adopt the listeners the
 * predecessor handed over for it (none if not a successor).  Returns 0 or
 * the library's -errno, with *err filled. */
int upg_adopt(int slot, ps_server *s, ps_err *err);

/* The running servers (admin may be NULL), for a later SIGUSR2. */
void upg_set_servers(ps_server *main, ps_server *admin);

/* Once every server runs: write the pid file (atomically: a temporary file
 * renamed over it); for a successor, send sd_notify `status` lines with
 * MAINPID= and tell the predecessor we serve.  Else send `status` as is.
 * Returns 0, or -errno when the pid file cannot be written (logged; the
 * program should stop: its supervisor cannot follow it). */
int upg_ready(const char *notify_status);

/* SIGUSR2, on the thread that takes signals: start an upgrade, or refuse
 * it with a log line.  Returns at once; a thread waits for the successor. */
void upg_request(void);

/* Whether a successor has taken over (this process drains): it must not
 * tell systemd STOPPING=1, which would be taken for the service's. */
bool upg_handed_off(void);

/* A stop began: refuse later upgrades. */
void upg_stopping(void);

/* At exit, main thread: wait for the upgrade thread; remove the pid file if
 * it still holds our pid (a successor's pid stays). */
void upg_exit(void);

#endif

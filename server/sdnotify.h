/* SPDX-License-Identifier: MIT */
/*
 * sdnotify.h - systemd's readiness protocol without libsystemd: state
 * lines ("READY=1", "STOPPING=1", "STATUS=...", "WATCHDOG=1") sent as one
 * datagram to the Unix socket named by $NOTIFY_SOCKET (a path, or "@name"
 * for the abstract namespace), as sd_notify(3) does.  Used by the bundled
 * programs; the library itself never talks to systemd.
 */
#ifndef PS_SDNOTIFY_H
#define PS_SDNOTIFY_H

/* Send `state` (newline-separated KEY=VALUE lines).  Returns 1 if sent, 0
 * when NOTIFY_SOCKET is unset (not under Type=notify), -errno when it is
 * malformed or the send fails.  Any thread; never blocks (MSG_DONTWAIT). */
int sdn_notify(const char *state);

/* The watchdog period asked of this process, in milliseconds, halved as
 * sd_watchdog_enabled(3) advises (WATCHDOG_USEC / 2): 0 when WATCHDOG_USEC
 * is unset or malformed, or WATCHDOG_PID names another process. */
long sdn_watchdog_ms(void);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * ref_common.h - shared helpers of the reference and test echo servers in
 * bench/refs/.  They all follow one convention: the listen address is the
 * last argument ("127.0.0.1:0", "[::1]:0"), "listening on HOST:PORT" is
 * printed to stdout (flushed) once the socket listens, and SIGTERM or SIGINT
 * makes them exit 0.
 */
#ifndef REF_COMMON_H
#define REF_COMMON_H

#include <stddef.h>
#include <sys/socket.h>

/* "HOST:PORT" or "[V6]:PORT" (numeric) into *ss; 0 or -1 after a message. */
int ref_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* A bound socket of the given type (SOCK_STREAM listens with SOMAXCONN);
 * fd or -1 after a message on stderr. */
int ref_listen(const char *addr, int type);
/* Print "listening on HOST:PORT" for the bound fd and flush stdout. */
void ref_announce(int fd);

/* Per-chunk hook of the thread-per-connection server: may change the n
 * bytes about to be echoed; returns false to stop echoing (stall). */
typedef int (*ref_hook)(unsigned char *buf, size_t n);

/* Thread-per-connection echo on listening fd until SIGTERM/SIGINT (which
 * must be blocked by the caller's thread before any thread starts; see
 * ref_block_signals).  Returns the exit status. */
int ref_tpc_serve(int lfd, ref_hook hook);
/* One-thread UDP echo on bound fd until SIGTERM/SIGINT; hook as above
 * (returning false drops the datagram). */
int ref_udp_serve(int fd, ref_hook hook);
/* Block SIGTERM/SIGINT (and ignore SIGPIPE); returns a signalfd for them. */
int ref_block_signals(void);

#endif

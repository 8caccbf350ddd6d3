/* SPDX-License-Identifier: MIT */
/*
 * client.h - internals shared by the files of poolsrv-client.
 *
 * poolsrv-client is a plain libc program (it does not link libpoolsrv).  It is
 * single-threaded: every function here runs on the main thread.  Functions
 * that can fail print one line naming what failed and where on stderr and
 * return an exit status (enum pc_exit); nothing here calls exit().
 */
#ifndef PC_CLIENT_H
#define PC_CLIENT_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define PC_PROG "poolsrv-client"

/* Documented exit codes (client/poolsrv-client.md). */
enum pc_exit {
    PC_OK = 0,     /* everything asked for was done */
    PC_ENET = 1,   /* resolution, connection, timeout or I/O failure */
    PC_EUSAGE = 2, /* bad command line */
};

/* Room for "[v6-address%scope]:65535" and for "unix:" plus a sun_path. */
#define PC_ADDRLEN 128

/* Largest payload of one UDP datagram over IPv4 or IPv6. */
#define PC_DGRAM_MAX 65507

/* The parsed command line.  Strings point into argv. */
struct pc_opts {
    const char *host;      /* HOST, or NULL when unix_path is set */
    const char *port;      /* PORT (number or service name) */
    const char *unix_path; /* path after "unix:", or NULL */
    const char *message;   /* MESSAGE, or NULL: use stdin */
    long count;            /* ping mode when > 0 */
    long interval_ms;      /* ping mode: time between probes */
    long retries;          /* UDP: resends after a reply timeout */
    double timeout_s;      /* connect and read limit; 0 = none */
    int family;            /* AF_UNSPEC, or AF_INET / AF_INET6 (-4 / -6) */
    bool udp;
    bool verbose;
    /* --tls (tls.c) */
    bool tls;
    bool insecure;       /* --insecure: do not verify the certificate */
    const char *ca_file; /* --ca FILE, or NULL: the system store */
    const char *sni;     /* --sni NAME, or NULL: the HOST given */
    const char *alpn;    /* --alpn LIST ("h2,http/1.1"), or NULL */
};

struct pc_tls; /* tls.c: the OpenSSL context and session of a connection */

/* One open socket and what went through it.  With --tls, tls is set once the
 * handshake is done and every byte goes through it (sent and received count
 * plaintext); the socket itself is then never read or written directly. */
struct pc_conn {
    int fd;
    char peer[PC_ADDRLEN]; /* "127.0.0.1:7001", "[::1]:7001", "unix:/x" */
    uint64_t sent;         /* payload bytes written to the socket */
    uint64_t received;     /* payload bytes read from the socket */
    struct pc_tls *tls;    /* NULL: plain socket */
    short rd_want;         /* after pc_io_recv's -EAGAIN: POLLIN or POLLOUT to wait for */
    short wr_want;         /* after pc_io_send/pc_io_shutdown's -EAGAIN: likewise */
    char tls_err[200];     /* after an -EPROTO: what TLS said */
};

/* ------------------------------------------------------------ util.c */

/* Print "poolsrv-client: <msg>\n" on stderr. */
void pc_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print to stderr only when o->verbose. */
void pc_info(const struct pc_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t pc_now_ns(void);

/* now + timeout_s, or -1 (no deadline) when timeout_s is 0. */
int64_t pc_deadline(double timeout_s);

/* Wait until fd has `events` or the deadline (-1: never) passes.
 * Returns 1 ready (including error/hangup conditions), 0 timed out, -errno. */
int pc_wait(int fd, short events, int64_t deadline_ns);

/* Write all of buf to a (blocking) descriptor such as stdout.
 * Returns 0 or -errno. */
int pc_write_fd(int fd, const void *buf, size_t len);

/* "connection refused: X", "timed out after T s <what> X", or
 * "error <what> X: <strerror>"
 * for a negative errno `err` met while doing `what` with peer X. */
void pc_err_io(int err, const char *what, const char *peer, double timeout_s);

/* Print "sent N bytes, received M bytes" with -v. */
void pc_report_bytes(const struct pc_opts *o, const struct pc_conn *c);

/* ------------------------------------------------------------- net.c */

/* Resolve o->host/o->port for the socket type of o (TCP or UDP).
 * On success *res must be released with freeaddrinfo().  Returns PC_OK or
 * PC_ENET after printing "cannot resolve 'HOST': reason". */
int pc_resolve(const struct pc_opts *o, struct addrinfo **res);

/* Format a socket address as "1.2.3.4:80", "[::1]:80" or "unix:/path". */
void pc_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap);

/* Open a connected, non-blocking stream socket to the target of o: each
 * resolved address in turn (or the unix: path), each within o->timeout_s.
 * Returns PC_OK with *c filled, or PC_ENET after printing why every attempt
 * failed. */
int pc_connect_stream(const struct pc_opts *o, struct pc_conn *c);

/* Open a connected, non-blocking UDP socket to one resolved address.
 * Returns PC_OK, or PC_ENET after printing why. */
int pc_open_dgram(const struct addrinfo *ai, struct pc_conn *c);

/* Send all of buf on a non-blocking stream socket before the deadline.
 * Returns 0 or -errno (-ETIMEDOUT when the deadline passed). */
int pc_send_all(struct pc_conn *c, const void *buf, size_t len, int64_t deadline_ns);

/* Read from a non-blocking socket into buf, waiting until the deadline.
 * Returns the byte count (0 at end of stream) or -errno (-ETIMEDOUT). */
ssize_t pc_recv_some(struct pc_conn *c, void *buf, size_t cap, int64_t deadline_ns);

/* Close c->fd if open (c->fd becomes -1), and free its TLS state. */
void pc_close(struct pc_conn *c);

/* One non-blocking attempt to send / receive through c (TLS or plain).
 * Return the byte count (pc_io_recv: 0 at end of stream), -EAGAIN after
 * setting c->wr_want / c->rd_want to the poll event to wait for, -EPROTO
 * after a TLS error (c->tls_err says what), or another -errno. */
ssize_t pc_io_send(struct pc_conn *c, const void *buf, size_t len);
ssize_t pc_io_recv(struct pc_conn *c, void *buf, size_t cap);

/* Received bytes that TLS holds decrypted or buffered, so that poll() would
 * not report them: read them before waiting.  False for a plain socket. */
bool pc_io_pending(const struct pc_conn *c);

/* End our direction: shutdown(SHUT_WR), or with TLS a close_notify (the
 * peer may go on sending; we go on reading).  Returns 0, -EAGAIN with
 * c->wr_want set (call again when ready), or -errno / -EPROTO. */
int pc_io_shutdown(struct pc_conn *c);

/* pc_err_io(), or for -EPROTO the TLS error that c->tls_err holds. */
void pc_err_conn(const struct pc_conn *c, int err, const char *what, double timeout_s);

/* ------------------------------------------------------------- tls.c */

/* True when this build has OpenSSL (--tls works). */
bool pc_tls_available(void);

/* Handshake over the connected socket c->fd within the deadline, checking
 * the server's certificate against the system store or o->ca_file and the
 * name o->sni or o->host (IP addresses against the certificate's IP
 * entries) unless o->insecure.  Returns PC_OK with c->tls set; PC_EUSAGE
 * after printing why a setting (--ca, --alpn) is unusable; PC_ENET after
 * printing why the handshake or the verification failed. */
int pc_tls_start(const struct pc_opts *o, struct pc_conn *c, int64_t deadline_ns);

/* The TLS halves of pc_io_*: same contracts (c->tls is set). */
ssize_t pc_tls_send(struct pc_conn *c, const void *buf, size_t len);
ssize_t pc_tls_recv(struct pc_conn *c, void *buf, size_t cap);
bool pc_tls_pending(const struct pc_conn *c);
int pc_tls_shutdown(struct pc_conn *c);

/* Free c->tls (NULL is a no-op); c->tls becomes NULL. */
void pc_tls_free(struct pc_conn *c);

/* Parse an --alpn LIST ("h2,http/1.1") into the wire format (each name
 * preceded by its length) in out[cap].  Returns the length, or -1 if a name
 * is empty or longer than 255 bytes or the result does not fit. */
int pc_alpn_wire(const char *list, unsigned char *out, size_t cap);

/* ------------------------------------------------------- oneshot.c */

/* Number of lines in a request made of msg plus the "\n" we append. */
size_t pc_request_lines(const char *msg);

/* Read from a stream socket until `lines` newlines have arrived, the peer
 * closes, or the deadline passes.  Bytes up to the last expected newline are
 * written to out_fd (when >= 0); anything after it is discarded.  *got is
 * the number of reply bytes kept.
 * Returns 0 when all lines arrived, 1 when the peer closed first, 2 when
 * writing out_fd failed (already reported), or -errno from the socket
 * (-ETIMEDOUT at the deadline). */
int pc_read_lines(struct pc_conn *c, size_t lines, int64_t deadline_ns, int out_fd, size_t *got);

/* ----------------------------------------------------------- modes */

/* TCP/Unix: send MESSAGE plus "\n", print the reply lines (oneshot.c). */
int pc_run_oneshot(const struct pc_opts *o);

/* TCP/Unix netcat: stdin to socket, socket to stdout (stream.c). */
int pc_run_stream(const struct pc_opts *o);

/* UDP: MESSAGE, or each stdin line, as one datagram; print replies (udp.c). */
int pc_run_udp(const struct pc_opts *o);

/* --count N: probes with round-trip times and a summary (ping.c). */
int pc_run_ping(const struct pc_opts *o);

/* ------------------------------------------------------------ udp.c */

/* A UDP peer: the resolved addresses and a socket connected to the current
 * one.  Until a first reply arrives, a peer that refuses (ICMP
 * port-unreachable) is replaced by the next address; after that the client
 * stays with the address that answered. */
struct pc_udp {
    struct addrinfo *res; /* getaddrinfo result, owned */
    struct addrinfo *cur; /* address c is connected to */
    struct pc_conn c;
    bool settled; /* a reply has come from cur */
};

/* Largest datagram we can receive (any UDP payload fits). */
#define PC_DGRAM_BUF 65536

/* Resolve and connect to the first address.  Returns PC_OK, or PC_ENET after
 * printing why.  pc_udp_close() is needed only after PC_OK. */
int pc_udp_open(const struct pc_opts *o, struct pc_udp *u);

/* Send req (at most PC_DGRAM_MAX bytes) and wait up to o->timeout_s for a
 * reply, resending up to o->retries times.  Datagrams queued before the send
 * are discarded as stale.  On success the reply is in reply[0..*reply_len)
 * (reply has PC_DGRAM_BUF bytes) and *rtt_ns counts from the last send.
 * Returns 0, -ETIMEDOUT after the last attempt, or another -errno
 * (-ECONNREFUSED when every address refused).  Prints nothing except -v
 * notes; the caller reports the failure. */
int pc_udp_request(const struct pc_opts *o, struct pc_udp *u, const void *req, size_t len,
                   char *reply, size_t *reply_len, int64_t *rtt_ns);

/* Print a pc_udp_request() failure, naming the peer and the attempts. */
void pc_udp_report(const struct pc_opts *o, const struct pc_udp *u, int err);

void pc_udp_close(struct pc_udp *u);

#endif

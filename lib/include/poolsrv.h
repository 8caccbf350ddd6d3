/* SPDX-License-Identifier: MIT */
/*
 * poolsrv.h - the one public header of poolsrv, a framework for multi-client
 * TCP servers on POSIX threads.
 *
 * Data path: an acceptor/reactor thread accepts connections and feeds them
 * through a bounded work queue to a fixed pool of worker threads, which run
 * the user's handler; idle connections wait in epoll (event style: one
 * idle worker, the poller, collects ready ones itself and the others sleep
 * until it is saturated or stuck in a handler; docs/architecture.md says
 * why).
 * Two handler styles:
 *
 *   blocking  serve(conn) owns the connection until it returns, and reads and
 *             writes it with ps_conn_read()/ps_conn_write_all().  It may park
 *             the connection (ps_conn_park) to free its worker while idle.
 *   event     on_open/on_data/on_close callbacks; the connection waits in
 *             epoll while idle and only ready connections occupy a worker.
 *
 * Conventions
 *   - Functions that act return 0 (or a count) on success and a negative
 *     errno value on failure; ps_strerror() turns one into text.
 *   - Constructors return NULL on failure and fill a caller-supplied ps_err.
 *   - Nothing here keeps global state: several servers can live in one process.
 *   - The library never prints, exits or changes signal dispositions; it
 *     reports through the log callback in ps_config, if one is set.
 *   - Thread-safety is stated at each function.
 */
#ifndef POOLSRV_H
#define POOLSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PS_EXTERN __attribute__((visibility("default")))
#else
#define PS_EXTERN
#endif

typedef struct ps_server ps_server;
typedef struct ps_conn ps_conn;
typedef struct ps_dgram ps_dgram;
typedef struct ps_timer ps_timer;
typedef struct ps_tls ps_tls;

/* A function run on a connection's behalf by ps_conn_post.  status 0: it
 * runs as one of the connection's callbacks (same rules: never concurrently
 * with another, c usable until it returns).  status -ECANCELED: the
 * connection closed first; c may still be read (ps_conn_data, ...) but
 * sends fail; this call comes before on_close.  Either way it runs exactly
 * once, so it can free arg. */
typedef void (*ps_post_fn)(ps_conn *c, void *arg, int status);

/* ---------------------------------------------------------------- basics */

/* The version of this header, from the VERSION file (tools/set-version.sh
 * writes these lines; the library's build refuses a header that disagrees
 * with VERSION).  PS_VERSION_HEX is 0xMMmmpp, for #if comparisons:
 * #if PS_VERSION_HEX >= 0x000200.  ps_version() is the library's version at
 * run time, which may be newer (docs/abi.md). */
#define PS_VERSION_MAJOR 0
#define PS_VERSION_MINOR 1
#define PS_VERSION_PATCH 0
#define PS_VERSION_HEX ((PS_VERSION_MAJOR << 16) | (PS_VERSION_MINOR << 8) | PS_VERSION_PATCH)

/* The library version, e.g. "0.1.0".  Static storage; any thread. */
PS_EXTERN const char *ps_version(void);

/* Text for an error code; accepts -errno or errno.  Static storage (never
 * NULL); any thread. */
PS_EXTERN const char *ps_strerror(int err);

/* Where constructors and start explain a failure: code is a negative errno,
 * msg says which field or address was wrong and why.  Its layout is fixed
 * for the life of the soname (docs/abi.md). */
typedef struct ps_err {
    int code;
    char msg[256];
} ps_err;

/* ------------------------------------------------------------- addresses */

/* Parse a listen or connect address into *ss / *len.  Accepted forms:
 *   "127.0.0.1:7000", "[::1]:7000", "0.0.0.0:0", "[::]:0", "localhost:7000",
 *   "*:7000" (all IPv4 interfaces), "unix:/run/app.sock" (Unix domain
 *   stream socket).  Port 0 asks the kernel for an ephemeral port.  Only
 *   numeric hosts and "localhost" are accepted: a server's listen address
 *   should not depend on DNS.  (ps_config.listen also takes "udp:" before an
 *   IP address, for datagrams; this function does not.)
 * Returns 0, or -EINVAL with err->msg naming the bad part.  Any thread. */
PS_EXTERN int ps_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                            ps_err *err);

/* Format an address as "1.2.3.4:80", "[::1]:80" or "unix:/path" into buf (always
 * NUL-terminated).  Returns buf.  Any thread. */
PS_EXTERN char *ps_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap);

/* --------------------------------------------------------------- logging */

typedef enum ps_log_level {
    PS_LOG_ERROR = 0,
    PS_LOG_WARN = 1,
    PS_LOG_INFO = 2,
    PS_LOG_DEBUG = 3,
} ps_log_level;

/* Called from any of the server's threads, possibly concurrently; msg is
 * valid only during the call and carries no trailing newline. */
typedef void (*ps_log_fn)(ps_log_level level, const char *msg, void *user);

/* -------------------------------------------------------------- handlers */

/* Why an event-style connection closed (passed to on_close). */
typedef enum ps_close_reason {
    PS_CLOSE_EOF = 0,      /* the peer closed its side and all output was sent */
    PS_CLOSE_LOCAL = 1,    /* the handler called ps_conn_close() */
    PS_CLOSE_ERROR = 2,    /* I/O error, e.g. the peer reset the connection */
    PS_CLOSE_OVERFLOW = 3, /* unconsumed input passed ps_config.max_input */
    PS_CLOSE_SHUTDOWN = 4, /* the server stopped and the drain deadline passed */
    PS_CLOSE_TIMEOUT = 5,  /* one of the timeouts in ps_config expired */
    PS_CLOSE_OUTPUT = 6,   /* pending output would have passed ps_config.max_output */
    /* Outbound connections (ps_server_connect) that never opened: */
    PS_CLOSE_REFUSED = 7,         /* the peer refused (ECONNREFUSED) */
    PS_CLOSE_UNREACHABLE = 8,     /* no route, network/host unreachable, or another connect error */
    PS_CLOSE_CONNECT_TIMEOUT = 9, /* not connected within connect_timeout_ms */
} ps_close_reason;

/* "eof", "local", "error", "overflow", "shutdown", "timeout", "output",
 * "refused", "unreachable", "connect_timeout" (or "unknown").
 * Static storage; any thread. */
PS_EXTERN const char *ps_close_reason_str(ps_close_reason why);

/*
 * A stream handler is either blocking (serve set) or event style (on_data
 * set); setting both is a configuration error, and stream listeners need
 * one of them.  `user` is the pointer
 * given to ps_server_new().  Callbacks run on worker threads.  Grows only
 * at the end, and a NULL new callback keeps the old behaviour
 * (docs/abi.md).
 */
typedef struct ps_handler {
    /* Blocking style.  Owns `c` until it returns; the framework then closes
     * the connection, unless serve called ps_conn_park().  Different
     * connections are served concurrently on different workers. */
    void (*serve)(ps_conn *c, void *user);

    /* Event style.  For one connection, callbacks never run concurrently and
     * always run in order: on_open, then on_data any number of times, then
     * on_close exactly once (also when on_open fails). */
    int (*on_open)(ps_conn *c, void *user); /* optional; nonzero return closes */
    /* Bytes arrived.  Return how many were consumed (0..len); the rest is
     * kept and presented again, followed by newer bytes, on the next call.
     * `data` is valid only during the call. */
    size_t (*on_data)(ps_conn *c, const char *data, size_t len, void *user);
    void (*on_close)(ps_conn *c, ps_close_reason why, void *user); /* optional */
    /* Optional, event style.  on_drain: pending output went above
     * out_high_water and has fallen to out_low_water - a producer that
     * stopped can go on (reading this peer has resumed by then).
     * on_eof: the peer will send nothing more (it half-closed, or reset is
     * reported as an error instead); runs once, after on_data has seen
     * every byte.  Without on_eof the connection closes once its output is
     * flushed (PS_CLOSE_EOF); with it, the connection stays open for
     * sending until the handler calls ps_conn_close or
     * ps_conn_shutdown_write.  on_timer: the connection's timer
     * (ps_conn_timer) expired. */
    void (*on_drain)(ps_conn *c, void *user);
    void (*on_eof)(ps_conn *c, void *user);
    void (*on_timer)(ps_conn *c, void *user);

    /* Datagram style, for "udp:" listeners (may be combined with either
     * stream style).  Runs on a worker for each datagram received; `from`
     * and `data` are valid only during the call.  Datagrams that arrive
     * while the work queue is full are dropped and counted, never queued
     * without bound; oversized ones (> max_datagram) are dropped and
     * counted, never delivered cut short. */
    void (*on_datagram)(ps_dgram *d, const void *data, size_t len, const struct sockaddr *from,
                        void *user);

    /* Optional message written (best effort, never blocking) to a
     * connection refused by the `reject` policy before it is closed. */
    const char *busy_msg;
    size_t busy_len;
} ps_handler;

/* ---------------------------------------------------------- configuration */

#define PS_MAX_LISTEN 16
/* The blocking style's pool when ps_config.workers is 0 (see there). */
#define PS_BLOCKING_WORKERS 32

/* ps_config.dgram_reply_policy: replies ps_dgram_reply refuses to send.
 *
 * PS_DGRAM_REFUSE_SELF   the source is one of this server's own sockets: a
 *     local address (loopback, 0.0.0.0/::, the address the datagram was
 *     sent to, or a listener's bound address) with the port of one of the
 *     server's UDP listeners.  Answering it would send the reply to
 *     ourselves, and the answer to that, forever (the echo loop started by
 *     one datagram spoofed from the server's own address).  -ELOOP.
 * PS_DGRAM_REFUSE_PORTS  the source port is 0, below 1024 (echo, chargen,
 *     DNS, NTP, ...), one of the UDP services known as amplifiers (1194,
 *     1434, 1604, 1900, 3283, 3702, 5351, 5353, 5683, 10001, 11211, 27015,
 *     27960, 33848, 37810), or the port the datagram arrived on (a peer
 *     service on our own port number, e.g. two echo servers pointed at
 *     each other).  Clients send from ephemeral ports; such a source is a
 *     spoofed address aiming our replies at a service, as hardened UDP
 *     services refuse it.  -EPERM.
 * Protocols whose peers legitimately use fixed or equal ports (NTP
 * symmetric mode, mDNS, IKE) clear PS_DGRAM_REFUSE_PORTS. */
#define PS_DGRAM_REFUSE_SELF 0x1u
#define PS_DGRAM_REFUSE_PORTS 0x2u

/* What the server does when the work queue is full. */
typedef enum ps_policy {
    PS_POLICY_BLOCK = 0,  /* stop accepting until a slot frees; the kernel backlog absorbs */
    PS_POLICY_REJECT = 1, /* accept, write handler->busy_msg, close at once */
} ps_policy;

/* Parse "block" / "reject".  Returns 0 or -EINVAL.  Any thread. */
PS_EXTERN int ps_policy_parse(const char *text, ps_policy *out);

/* Grows only at the end; zero in a new field keeps the old behaviour
 * (docs/abi.md). */
typedef struct ps_config {
    /* Listen addresses (strings are copied): an address as ps_addr_parse
     * takes it; "udp:" + an IP address, for datagrams; "fd:N", an inherited
     * socket (its type is read from it).  A "proxy:" prefix on a stream
     * listener ("proxy:127.0.0.1:7000", "proxy:fd:3") expects a PROXY
     * protocol v1 or v2 header (HAProxy send-proxy / send-proxy-v2) first
     * on every connection: handlers see the client address it names (from
     * ps_conn_peer) and only the bytes after it; a malformed header closes
     * the connection before any callback (stats.proxy_errors).  A "tls:"
     * prefix ("tls:127.0.0.1:7443", "tls:unix:/run/s", "tls:fd:3";
     * "proxy:tls:ADDR" reads the PROXY header first, then the handshake)
     * serves TLS with the certificates of ps_config.tls: the handshake runs
     * on a worker before on_open / serve, cut by header_timeout_ms, and
     * handlers see plaintext (see "TLS" below).  Not on "udp:". */
    const char *listen[PS_MAX_LISTEN];
    int nlisten;                       /* how many of listen[] are used (>= 1) */
    int backlog;            /* listen(2) backlog, 1..1048576 (the kernel caps it at
                               net.core.somaxconn); default 4096 */
    int workers;            /* pool size, 0..1024; default 0, resolved by
                               ps_server_new from the handler's style.  Event
                               style: one per CPU the process may run on
                               (sched_getaffinity, as nginx's
                               worker_processes auto); a worker only waits for
                               readiness or runs callbacks, so more than the
                               CPUs only adds threads that wake and take
                               turns.  One worker polls at a time, more while
                               they are saturated, and under load the pool
                               now and then tries one more where the CPUs
                               have idle time, keeping it if throughput
                               rises (it reads /proc/stat for that, at most
                               about once a second; without it, it never
                               adds one).  Blocking style: PS_BLOCKING_WORKERS
                               (32), serve calls in progress at once; a
                               worker waiting inside serve (a disk, a
                               database, a slow peer) serves nobody else, so
                               the pool covers requests in progress, not CPUs
                               (park idle connections, ps_conn_park) */
    int queue_capacity;     /* work queue slots, 1..1048576; default 1024 */
    ps_policy policy;       /* default PS_POLICY_BLOCK */
    int io_timeout_ms;      /* blocking style: default per-call timeout, -1 = none (default) */
    int drain_timeout_ms;   /* after stop: time connections get to finish before
                               they are shut down; -1 = forever; default 5000 */
    /* Defences against slow and silent peers.  0 turns each off.  The
     * connection-level ones are enforced by a reactor scan running 4 times
     * per shortest period (10 ms .. 1 s apart), which shuts the socket
     * down: a blocked ps_conn_read sees end of stream, on_close gets
     * PS_CLOSE_TIMEOUT. */
    int idle_timeout_ms;       /* no input or output at all for this long; default 0 */
    int first_byte_timeout_ms; /* nothing received this long after accept; default 0 */
    int request_timeout_ms;    /* a message must arrive within this long
                                  (mod_reqtimeout-style), extended by 1 s per
                                  min_rate bytes received.  Event style: runs
                                  while on_data has left input unconsumed (a
                                  partial message).  Blocking style: bounds the
                                  total time one serve call waits in
                                  ps_conn_read (park between requests; each
                                  serve call starts afresh), -ETIMEDOUT after.
                                  Default 0 */
    int min_rate;              /* bytes/s, see request_timeout_ms; default 0 */
    int write_timeout_ms;      /* output pending with no progress for this long:
                                  event style closes, blocking ps_conn_write_all
                                  returns -ETIMEDOUT; default 60000 */
    int max_lifetime_ms;       /* close connections older than this; default 0 */
    int header_timeout_ms;     /* "proxy:" listeners: the PROXY header must be
                                  complete this long after accept; "tls:"
                                  listeners: the handshake too; default 5000 */
    int linger_ms;             /* event style, ps_conn_close: after the output is
                                  flushed, half-close and read and discard the
                                  peer's input for up to this long (at most
                                  256 KiB) before closing, so unread input does
                                  not make the kernel reset the connection and
                                  destroy the last response (Apache's lingering
                                  close); 0 closes at once; default 2000 */
    int max_connections;       /* open connections at most; more are refused
                                  like the reject policy (busy_msg, close);
                                  default 0 = unlimited */
    int max_per_client;        /* open connections per client IP address at most
                                  (Unix sockets: not limited); default 0.  On
                                  "proxy:" listeners the address is the client
                                  the PROXY header names (LOCAL: the
                                  balancer's), counted once the header is
                                  read: a client past its share is then
                                  closed with busy_msg before any callback
                                  (accepted, closed and limit_refused each
                                  count it) */
    /* "unix:" listeners that this server binds (not inherited "fd:N"
     * sockets, whose file belongs to whoever made it): permissions of the
     * socket file, applied after bind(2) and before listen(2), so no
     * client can connect while the file still has the umask's mode.
     * Connecting needs write permission on the file. */
    int unix_mode;          /* permission bits, 1..0777; default 0 = as created
                               (0777 minus the process umask) */
    int unix_owner;         /* uid to give the file (needs CAP_CHOWN); default
                               -1 = leave it the server's euid */
    int unix_group;         /* gid to give the file (a group the server is in,
                               or CAP_CHOWN); default -1 = leave it */
    bool tcp_nodelay;       /* set TCP_NODELAY on accepted sockets; default true */
    bool reuseport;         /* SO_REUSEPORT on bound sockets, so several processes
                               can share a port; default false */
    bool udp_same_port;     /* also receive datagrams (on_datagram) on every TCP
                               listener's address and port; default false */
    size_t max_datagram;    /* larger datagrams are dropped, 1..65535; default 65535 */
    /* What ps_dgram_reply refuses to answer (see there), PS_DGRAM_REFUSE_*
     * flags, by default PS_DGRAM_REFUSE_SELF | PS_DGRAM_REFUSE_PORTS. */
    unsigned dgram_reply_policy;
    int dgram_reply_rate;   /* ps_dgram_reply: replies per second to one source
                               address (IPv6: one /64), 0..1000000, 0 = no
                               limit; default 1000 */
    int dgram_reply_burst;  /* ... of which this many may go at once, 1..1000000;
                               default 1000 */
    size_t read_budget;     /* event style: bytes read per connection per turn
                               before it yields to others, >= 1; default 65536 */
    size_t max_input;       /* event style: bound on unconsumed input, >= 1;
                               default 1 MiB */
    size_t out_high_water;  /* event style: stop reading a peer whose pending
                               output exceeds this; default 1 MiB */
    size_t out_low_water;   /* ... and resume below this (<= out_high_water);
                               default 256 KiB.  Reading restarts with any
                               input on_data left unconsumed, offered again
                               without waiting for new bytes */
    int connect_timeout_ms; /* ps_server_connect: not connected this long after
                               the call: PS_CLOSE_CONNECT_TIMEOUT; 0 = none;
                               default 10000 */
    size_t max_posts;       /* event style: requests waiting in one connection's
                               mailbox (ps_conn_post) at most; past it
                               ps_conn_post returns -ENOBUFS; default 65536 */
    size_t max_output;      /* event style: hard bound on one connection's
                               pending output.  A ps_conn_send that would pass
                               it fails with -ENOBUFS and the connection is
                               dropped unflushed (PS_CLOSE_OUTPUT,
                               stats.output_closes), like Redis's
                               client-output-buffer-limit.  Handlers that stop
                               at out_high_water never reach it; it catches
                               those that answer without looking.  Default
                               64 MiB; 0 turns it off; else >= out_high_water */
    ps_log_fn log;          /* optional */
    void *log_user;
    ps_log_level log_level; /* messages above this level are not formatted; default INFO */
    /* Certificates and settings for "tls:" listeners (ps_tls_new, below);
     * required when one is configured, ignored otherwise.  ps_server_new
     * takes its own reference: the caller may ps_tls_free its own at any
     * time after.  Default NULL. */
    ps_tls *tls;
    bool histograms;        /* keep the latency histograms of ps_stats (queue_wait,
                               turn_time, lifetime): a clock read per turn and per
                               hand-off, about 30 ns each (docs/benchmarks.md,
                               "Latency histograms"); default true, false: they
                               stay zero (an event-style pool of several workers
                               still times its turns, for its own sizing) */
} ps_config;

/* Fill *cfg with the defaults above and no listen address.  Any thread.
 *
 * ps_config_init, ps_config_validate, ps_server_new, ps_server_stats,
 * ps_stats_format, ps_server_connect, ps_tls_config_init and ps_tls_new
 * are macros: they pass the library the size of ps_config, ps_handler,
 * ps_stats and ps_tls_config as this program was compiled, so that a newer
 * libpoolsrv.so.0, whose structs have grown at the end, reads and writes
 * only the fields the program knows (docs/abi.md).  Call them by these
 * names; the *_sized functions behind them are not meant to be called
 * directly (a wrong size is undefined behaviour). */
PS_EXTERN void ps_config_init_sized(ps_config *cfg, size_t cfg_size);
#define ps_config_init(cfg) ps_config_init_sized((cfg), sizeof(ps_config))

/* Append an address to cfg->listen (the string is not copied until
 * ps_server_new).  Returns 0, or -ENOSPC past PS_MAX_LISTEN.  The thread
 * that owns cfg. */
PS_EXTERN int ps_config_add_listen(ps_config *cfg, const char *addr);

/* systemd socket activation (sd_listen_fds without libsystemd): if
 * LISTEN_PID is this process, append "fd:3" .. "fd:(3+LISTEN_FDS-1)" to
 * cfg->listen.  Returns how many were added (0 when not activated),
 * -EINVAL for a malformed LISTEN_FDS, -ENOSPC past PS_MAX_LISTEN.  The
 * environment is left alone (unset LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES
 * yourself before starting children).  Reads the environment: call it
 * before creating threads that change it. */
PS_EXTERN int ps_config_add_systemd_listeners(ps_config *cfg);

/* Set unix_mode / unix_owner / unix_group from an operator's text (each
 * may be NULL to leave that field): mode in octal ("660", "0660",
 * 1..0777); owner a user name or a numeric uid, group a group name or a
 * numeric gid (names are looked up with getpwnam_r / getgrnam_r, so the
 * system's user database is read).  Returns 0, or -EINVAL with err->msg
 * naming the bad value (no field is changed then).  Any thread. */
PS_EXTERN int ps_config_set_unix_perms(ps_config *cfg, const char *mode, const char *owner,
                                       const char *group, ps_err *err);

/* Check cfg and handler without creating anything.  Returns 0, or -EINVAL
 * with err->msg naming the field and the reason.  Any thread. */
PS_EXTERN int ps_config_validate_sized(const ps_config *cfg, size_t cfg_size, const ps_handler *h,
                                      size_t h_size, ps_err *err);
#define ps_config_validate(cfg, h, err)                                                   \
    ps_config_validate_sized((cfg), sizeof(ps_config), (h), sizeof(ps_handler), (err))

/* --------------------------------------------------------------- servers */

/* Create a server: validates and copies cfg and *h (neither is referenced
 * afterwards); binds nothing yet.  Returns NULL and fills *err (if not NULL)
 * on a bad configuration (-EINVAL), no memory (-ENOMEM), or the eventfd(2)
 * error (-EMFILE, ...).  Any thread; the server is then used from one
 * thread at a time except where a function says otherwise. */
PS_EXTERN ps_server *ps_server_new_sized(const ps_config *cfg, size_t cfg_size, const ps_handler *h,
                                         size_t h_size, void *user, ps_err *err);
#define ps_server_new(cfg, h, user, err)                                                  \
    ps_server_new_sized((cfg), sizeof(ps_config), (h), sizeof(ps_handler), (user), (err))

/* Bind and listen on every address, start the acceptor/reactor thread and
 * the worker pool, and return.  Returns 0; -EALREADY if started before;
 * -EADDRINUSE and other bind/listen/thread errors with err->msg naming the
 * address and the system's reason (nothing is left running or bound;
 * sockets adopted with ps_server_handoff_adopt stay open and adopted, for
 * another start).  Call from one thread at a time, not from a handler. */
PS_EXTERN int ps_server_start(ps_server *s, ps_err *err);

/* Ask the server to stop: stop accepting, let queued and in-service
 * connections finish, shut down the stragglers when the drain deadline
 * passes.  Returns at once.  Async-signal-safe and callable from any
 * thread, including handlers, any number of times; a no-op before start. */
PS_EXTERN void ps_server_stop(ps_server *s);

/* As ps_server_stop, but end the drain now: open connections are shut down
 * at once (for a second Ctrl-C).  Same calling rules. */
PS_EXTERN void ps_server_stop_now(ps_server *s);

/* Wait until a stopped server's threads have all finished and joined.
 * Returns 0, or -EINVAL if the server was never started.  Not from a
 * handler (it would wait for itself). */
PS_EXTERN int ps_server_wait(ps_server *s);

/* ps_server_start, then ps_server_wait: serves until ps_server_stop(). */
PS_EXTERN int ps_server_run(ps_server *s, ps_err *err);

/* Stop (if running), wait, and free everything.  NULL is a no-op.  Not from
 * a handler. */
PS_EXTERN void ps_server_free(ps_server *s);

/* After start: the number of listeners (0 before; numbered in the order of
 * ps_config.listen, and with udp_same_port each TCP address is two, TCP
 * then UDP at consecutive indices), and the bound address / port of
 * listener i (useful when the configured port was 0).  Any thread.
 * ps_server_listen_addr returns 0, or -EINVAL for a bad index or before
 * start.  ps_server_port returns the port, or -EINVAL for a bad index,
 * before start, or for a Unix socket listener. */
PS_EXTERN int ps_server_nlisteners(const ps_server *s);
PS_EXTERN int ps_server_port(const ps_server *s, int i);
PS_EXTERN int ps_server_listen_addr(const ps_server *s, int i, struct sockaddr_storage *ss,
                                    socklen_t *len);
/* Listener i as text, as bound: "127.0.0.1:40123", "[::1]:7000",
 * "unix:/run/x.sock", "udp:127.0.0.1:40123"; NULL for a bad index or before
 * start.  Valid until ps_server_free. */
PS_EXTERN const char *ps_server_listen_name(const ps_server *s, int i);

/* ------------------------------------------------------ listener hand-off
 *
 * A successor process takes the listeners over: a new binary (or the same
 * one, restarted) can take over a running server's listening sockets
 * themselves, not bind new ones beside them, so that no connection is
 * refused or reset during an upgrade: the kernel's accept queue belongs to
 * the socket, and whoever holds it accepts what waits there
 * (docs/architecture.md, "Listener hand-off"; poolsrv-echo's SIGUSR2 and
 * docs/deployment.md show the whole procedure).
 *
 * The old process: ps_server_handoff_format describes the listeners; the
 * successor inherits the descriptors (fork, clear FD_CLOEXEC on each
 * ps_server_listener_fd in the child, exec) or receives them with
 * SCM_RIGHTS, and gets the description (an environment variable, say).
 * The successor: ps_server_handoff_adopt before ps_server_start; each of
 * its configured listen texts that the description names takes those
 * sockets over instead of binding.  Once the successor serves (it tells the
 * old process so, e.g. over a pipe), the old one calls
 * ps_server_handoff_stop.  A step-by-step recipe (the environment built
 * before fork, what to do when the successor fails) is in docs/api.md,
 * "Listener hand-off". */

/* The listen text (ps_config.listen) listener i was made from, as
 * configured: "127.0.0.1:0" where ps_server_listen_name says
 * "127.0.0.1:40123"; a udp_same_port pair shares one text.  NULL for a bad
 * index or before start.  Any thread; valid until ps_server_free. */
PS_EXTERN const char *ps_server_listen_text(const ps_server *s, int i);

/* The descriptor of listener i: -EINVAL for a bad index or before start,
 * -EBADF once it is closed.  The server owns it (do not close it); it is
 * FD_CLOEXEC.  Call it before ps_server_stop: the drain closes stream
 * listeners on the reactor thread. */
PS_EXTERN int ps_server_listener_fd(const ps_server *s, int i);

/* Write the hand-off description, "FD=TEXT" per open listener separated by
 * ',' (TEXT is the listen text, with '%', ',' and bytes outside 0x21..0x7e
 * written %XX), into buf: at most cap bytes including the terminating
 * NUL.  Returns the length of the whole description (as snprintf: cap must
 * exceed it, or the text was cut), or -EINVAL before start or once
 * stopping.  The numbers are this process's descriptors: right for a
 * successor that inherits them at the same numbers (fork + exec).  Any
 * thread, before ps_server_stop. */
PS_EXTERN int ps_server_handoff_format(const ps_server *s, char *buf, size_t cap);

/* Before ps_server_start: take over the listeners a predecessor described
 * (ps_server_handoff_format's text; this process must hold the
 * descriptors it names: inherited at the same numbers, or received with
 * SCM_RIGHTS and the numbers rewritten to the received ones).
 *
 * At start, each configured listen text that has entries uses those
 * sockets instead of binding, checked as fd:N is (a socket, of a type the
 * handler serves) and against the text: a "udp:" text takes one datagram
 * socket, a stream text one stream socket plus, with udp_same_port, the
 * UDP socket of its pair (a pair whose predecessor had no UDP socket gets
 * one bound on the inherited port; without udp_same_port an inherited UDP
 * socket is closed as below).  A socket whose type disagrees with its text,
 * or two of one type, fails the start with -EINVAL (err->msg names the text
 * and the descriptor).  Entries no listen text names are closed at start,
 * with an info log line (an address the new configuration dropped);
 * listen texts without entries are bound as usual.  An inherited Unix
 * socket's file is removed at stop only if nobody listens there any more.
 *
 * Returns the number of entries; 0 for "" (a no-op that does not count as
 * the one call); -EINVAL for a NULL or malformed description, a descriptor
 * that is not open, or one listed twice (err->msg says which; nothing is
 * adopted then); -EALREADY after start or on a second call; -ENOMEM.
 * Ownership: on success the server owns the descriptors.  A failed
 * ps_server_start closes none of them: they stay adopted, for another
 * ps_server_start or for ps_server_free, which closes those not in use.
 * Threads: before ps_server_start and ordered before it, as
 * ps_server_start itself (one thread at a time; in practice the thread
 * that creates and starts the server). */
PS_EXTERN int ps_server_handoff_adopt(ps_server *s, const char *handoff, ps_err *err);

/* The successor now serves on our listeners: stop as ps_server_stop does
 * (stop accepting, let accepted connections finish, shut down stragglers
 * at the drain deadline), but leave Unix socket files in place, since the
 * successor serves on them.  Connections waiting in the accept queue are
 * not lost when we close our copies: the successor accepts them from the
 * same socket.  Async-signal-safe, any thread, as ps_server_stop. */
PS_EXTERN void ps_server_handoff_stop(ps_server *s);

/* A latency histogram with fixed buckets, upper bounds PS_HIST_LE_NS(i) =
 * 1 us * 2^i (1 us, 2 us, 4 us, ... 67.1 s): bucket[0] counts the durations
 * in (0, 1 us], bucket[i] for 0 < i < PS_HIST_BUCKETS - 1 those in
 * (PS_HIST_LE_NS(i - 1), PS_HIST_LE_NS(i)], and the last bucket those
 * longer than PS_HIST_LE_NS(PS_HIST_BUCKETS - 2) (67.1 s).  Counts are per
 * bucket, not cumulative (docs/api.md, "Latency histograms", estimates a
 * quantile from them).  The layout is fixed for the life of the soname. */
#define PS_HIST_BUCKETS 28
#define PS_HIST_LE_NS(i) (1000ull << (i))
typedef struct ps_histogram {
    uint64_t count;  /* observations: the sum of bucket[] */
    uint64_t sum_ns; /* their total duration, nanoseconds */
    uint64_t bucket[PS_HIST_BUCKETS];
} ps_histogram;

/* Counters, summed across threads at the time of the call (each is exact;
 * they are not a consistent snapshot of one instant).  Any thread.  Grows
 * only at the end (docs/abi.md). */
typedef struct ps_stats {
    uint64_t accepted;         /* connections accepted and admitted */
    uint64_t rejected;         /* accepted and closed by the reject policy */
    uint64_t limit_refused;    /* closed at accept: max_connections or max_per_client
                                  ("proxy:" listeners: max_per_client after
                                  the header) */
    uint64_t accept_errors;    /* accept failures other than EAGAIN/EINTR */
    uint64_t accept_emfile;    /* ... of which: out of descriptors (EMFILE/ENFILE) */
    uint64_t queue_full_waits; /* block policy found the queue full at accept */
    uint64_t closed;           /* connections closed by the framework */
    uint64_t active;           /* accepted and not yet closed */
    uint64_t queued;           /* items in the work queue now */
    uint64_t queue_high_water; /* most items ever queued at once */
    uint64_t bytes_in;         /* bytes read through ps_conn_* / on_data */
    uint64_t bytes_out;        /* bytes written */
    uint64_t timeouts;         /* ps_conn_read/write calls that timed out, and
                                  connections closed by a ps_config timeout */
    uint64_t io_errors;        /* connections ended by an I/O error */
    uint64_t forced_closes;    /* connections shut down at the drain deadline */
    uint64_t datagrams;        /* datagrams received and queued */
    uint64_t datagrams_dropped;   /* ... dropped: the work queue was full */
    uint64_t datagrams_truncated; /* ... dropped: larger than max_datagram */
    uint64_t replies_refused_self; /* ps_dgram_reply refused: the source is our own (-ELOOP) */
    uint64_t replies_refused_port; /* ... refused: the source port (-EPERM) */
    uint64_t replies_refused_rate; /* ... refused: the source's reply rate (-EBUSY) */
    uint64_t proxy_errors;     /* connections closed for a malformed PROXY header */
    uint64_t output_closes;    /* connections dropped at max_output */
    uint64_t connects;         /* outbound connections started (ps_server_connect);
                                  accepted counts only inbound ones */
    uint64_t connect_errors;   /* ... of which never opened (refused, unreachable,
                                  connect timeout) */
    uint64_t tls_handshakes;   /* TLS handshakes completed ("tls:" listeners) */
    uint64_t tls_resumed;      /* ... of which resumed a session (ticket or cache) */
    uint64_t tls_errors;       /* connections closed for a failed handshake (not a
                                  TLS client, refused version, bad client
                                  certificate, ...; a handshake timeout counts
                                  in timeouts instead, and a connection closed
                                  before its first byte, a port probe, in
                                  neither) */
    uint64_t workers;          /* worker threads (the pool size as resolved) */
    uint64_t queue_capacity;   /* work queue slots */
    /* Latency histograms, kept per worker and merged here (zero unless
     * cfg.histograms).  Each histogram is exact, but they are read one
     * after the other while workers run, like the counters. */
    ps_histogram queue_wait;   /* from becoming runnable to the start of its turn:
                                  a new connection from accept, a connection from
                                  the readiness a worker collected (event style:
                                  readiness to callback) or a request another
                                  thread left, a datagram from its receipt, a timer
                                  from its expiry */
    ps_histogram turn_time;    /* one turn on a worker: event style, the mailbox,
                                  the reads and writes and every callback of the
                                  turn; blocking style, one serve call (the whole
                                  connection, or up to ps_conn_park); datagrams,
                                  on_datagram */
    ps_histogram lifetime;     /* connections, from accept (outbound: from
                                  ps_server_connect) to close; counts every
                                  connection in `closed` */
} ps_stats;

PS_EXTERN void ps_server_stats_sized(const ps_server *s, ps_stats *out, size_t out_size);
#define ps_server_stats(s, out) ps_server_stats_sized((s), (out), sizeof(ps_stats))

typedef enum ps_stats_format_kind {
    PS_STATS_TEXT = 0,       /* one line: "accepted=12 rejected=0 ..." */
    PS_STATS_PROMETHEUS = 1, /* exposition format 0.0.4: HELP, TYPE, sample per
                                field; counters get a _total suffix */
} ps_stats_format_kind;

/* Format *st into buf (always NUL-terminated when cap > 0), metric names
 * starting with prefix (NULL: "poolsrv").  Returns the length, -ENOSPC if
 * cap was too small (the text is cut), -EINVAL for an unknown kind.  Any
 * thread. */
PS_EXTERN int ps_stats_format_sized(const ps_stats *st, size_t st_size, ps_stats_format_kind kind,
                                    const char *prefix, char *buf, size_t cap);
#define ps_stats_format(st, kind, prefix, buf, cap)                                       \
    ps_stats_format_sized((st), sizeof(ps_stats), (kind), (prefix), (buf), (cap))

/* ------------------------------------------------------------ connections
 *
 * A ps_conn is owned by the framework.  Handlers may use it only while one of
 * its callbacks (or serve) is running on the current thread; after on_close,
 * or after serve returns without parking, the pointer is invalid (to reach a
 * connection from elsewhere, see ps_conn_ref and ps_conn_post below).  The
 * descriptor stays open until on_close (or serve) returns.  Sockets are
 * non-blocking; an event callback holds a worker while it runs and must not
 * block (no sleeps, no blocking I/O of its own): use the blocking style, or
 * another thread that posts its result, for that.
 */

/* Both styles. */
PS_EXTERN int ps_conn_fd(const ps_conn *c);
PS_EXTERN uint64_t ps_conn_id(const ps_conn *c); /* unique per server, from 1 */
/* The peer's address; returns 0 or -errno. */
PS_EXTERN int ps_conn_peer(const ps_conn *c, struct sockaddr_storage *ss, socklen_t *len);
/* The peer as text ("1.2.3.4:5678"), stored in the connection. */
PS_EXTERN const char *ps_conn_peer_str(ps_conn *c);
/* A per-connection pointer for the handler (NULL at first). */
PS_EXTERN void ps_conn_set_data(ps_conn *c, void *data);
PS_EXTERN void *ps_conn_data(const ps_conn *c);
PS_EXTERN ps_server *ps_conn_server(const ps_conn *c);

/* Blocking style.
 *
 * ps_conn_read: up to len bytes.  Returns the count (> 0), 0 at end of
 *   stream, -ETIMEDOUT if nothing arrived within the timeout, or -errno
 *   (-ECONNRESET, ...).
 * ps_conn_read_exact: exactly len bytes.  Returns len, or fewer (0..len-1)
 *   if the stream ended first, or -errno as above (bytes read before a
 *   timeout or error are lost to the caller).
 * ps_conn_write_all: all len bytes.  Returns 0, -ETIMEDOUT, -EPIPE if the
 *   peer has gone (closed or reset; no SIGPIPE is raised), or -errno.
 * ps_conn_set_timeout: per-call timeout in ms for later reads and writes
 *   (-1 = none).  A timeout bounds each wait for the socket, so a trickling
 *   peer can stretch a large read_exact or write_all beyond it.
 * ps_conn_shutdown_write (both styles): half-close (send FIN); reads still
 *   work.  Returns 0 or -errno (-ENOTCONN if the peer is gone).  Event
 *   style: the FIN follows pending output once it is flushed, later
 *   ps_conn_send calls fail with -EPIPE, and the connection closes
 *   (PS_CLOSE_EOF) once the peer has half-closed too.
 * ps_conn_park: once serve returns, hand the connection back to the poller
 *   instead of closing it; serve is called again (on any worker) when it is
 *   readable or the peer closed.  Use it between requests of a keep-alive
 *   protocol so idle clients do not pin workers.  Input must be fully
 *   consumed before parking: the poller only wakes for new bytes.  (Bytes
 *   the library holds are safe: those that came with a PROXY header and
 *   plaintext already decrypted or read ahead inside TLS; a connection
 *   parked with them is served again at once.)
 * Only from the serve call that owns the connection. */
PS_EXTERN ssize_t ps_conn_read(ps_conn *c, void *buf, size_t len);
PS_EXTERN ssize_t ps_conn_read_exact(ps_conn *c, void *buf, size_t len);
PS_EXTERN int ps_conn_write_all(ps_conn *c, const void *buf, size_t len);
PS_EXTERN void ps_conn_set_timeout(ps_conn *c, int timeout_ms);
PS_EXTERN int ps_conn_shutdown_write(ps_conn *c);
PS_EXTERN void ps_conn_park(ps_conn *c);

/* Event style (only from this connection's callbacks).
 *
 * ps_conn_send: queue len bytes for the peer; never blocks.  What cannot be
 *   written now is copied and sent when the socket is writable; while more
 *   than out_high_water bytes are pending the server stops reading from
 *   this peer.  Returns 0, -EPIPE if the connection is closing or broken,
 *   -ENOMEM, -ENOBUFS if it would take pending output past max_output (the
 *   connection is then dropped without flushing: PS_CLOSE_OUTPUT).
 * ps_conn_pending: bytes accepted by ps_conn_send and not yet written.
 * ps_conn_close (both styles): close after pending output is flushed
 *   (event style: then a lingering close, see ps_config.linger_ms; on_close
 *   follows with PS_CLOSE_LOCAL, and no on_data in between); in a blocking
 *   handler, shuts the socket down now and cancels a park.  Send first,
 *   then close: ps_conn_send after ps_conn_close returns -EPIPE.
 *
 * Unconsumed input (on_data returned less than len) is presented again
 * when more bytes arrive, and when reading restarts after backpressure (see
 * out_low_water): consume every complete message you can in one call, but
 * a handler that answers many requests per call should stop once
 * ps_conn_pending() passes out_high_water and return only what it answered;
 * the rest comes back when the peer has read enough.  docs/embedding.md
 * shows the pattern.
 *
 * ps_conn_message_begin / ps_conn_message_end: a message is in progress even
 *   though on_data consumed its bytes (say, a request body streamed to a
 *   file).  request_timeout_ms and min_rate then run from begin (or from when
 *   its first byte was left unconsumed, if earlier) until end, as they do for
 *   unconsumed input; without begin a trickled body whose bytes are consumed
 *   as they come is never timed.  Both idempotent. */
PS_EXTERN int ps_conn_send(ps_conn *c, const void *data, size_t len);
PS_EXTERN size_t ps_conn_pending(const ps_conn *c);
PS_EXTERN void ps_conn_close(ps_conn *c);
/* Both styles, from the connection's callbacks (or serve): end the
 * connection now, without flushing pending output and without a lingering
 * close; the peer gets a reset (TCP RST), not a FIN.  For a peer that does
 * not read (a slow subscriber past its bound) or has misbehaved.  Event
 * style: on_close follows with PS_CLOSE_LOCAL, no on_data in between;
 * ps_conn_send fails with -EPIPE from now on.  Blocking style: later reads
 * return end of stream; the connection is not parked. */
PS_EXTERN void ps_conn_abort(ps_conn *c);
PS_EXTERN void ps_conn_message_begin(ps_conn *c);
PS_EXTERN void ps_conn_message_end(ps_conn *c);

/* Datagram style (only from the on_datagram call that received d).
 * ps_dgram_reply: send a datagram back to the sender, unless the reply
 *   policy refuses it: -ELOOP (the sender is this server itself,
 *   PS_DGRAM_REFUSE_SELF), -EPERM (its source port, PS_DGRAM_REFUSE_PORTS),
 *   -EBUSY (this source address has used its dgram_reply_rate allowance; a
 *   later reply may pass).  Each refusal is counted (replies_refused_*) and
 *   nothing is sent.  A source address can be forged, so these guard the
 *   server against being turned against itself or others.
 * ps_dgram_sendto: to any address, from the same socket; the address is the
 *   handler's choice, so no policy applies (a handler that sends to an
 *   address taken from a datagram should check it, or use ps_dgram_reply).
 * Both never block: return 0, -EAGAIN if the socket buffer is full,
 * -EMSGSIZE, or -errno. */
PS_EXTERN int ps_dgram_reply(ps_dgram *d, const void *data, size_t len);
PS_EXTERN int ps_dgram_sendto(ps_dgram *d, const void *data, size_t len, const struct sockaddr *to,
                              socklen_t tolen);

/* Event style: stop / restart reading from this peer (pending output is
 * still written).  Any thread: from another thread they leave a request for
 * the connection's owner, never touching its socket; the caller must still
 * make sure the call completes before on_close of this connection returns
 * (for instance: a flag under the caller's own lock, cleared in on_close),
 * or use ps_conn_post with a ps_conn_ref, which has no such rule.  Resume
 * offers input that on_data left unconsumed again without waiting for new
 * bytes.  Idempotent; no-ops in the blocking style. */
PS_EXTERN void ps_conn_pause_read(ps_conn *c);
PS_EXTERN void ps_conn_resume_read(ps_conn *c);

/* ------------------------------------------- reaching a connection from afar
 *
 * Event style.  A ps_conn pointer is valid only inside the connection's
 * callbacks; to act on a connection from anywhere else (another thread, a
 * timer, another connection's callback - a chat message fanned out to its
 * subscribers), keep a ps_conn_ref and post to it.  A posted function runs
 * on a worker as one of that connection's callbacks: in order, never
 * concurrently with the others, so it may ps_conn_send (bytes count in
 * bytes_out, refresh the idle timer and obey the watermarks and
 * max_output), close, pause or set the timer like any callback.
 */
/* Passed by value: its layout is fixed for the life of the soname
 * (docs/abi.md). */
typedef struct ps_conn_ref {
    ps_conn *conn; /* not to be dereferenced outside the connection's callbacks */
    uint64_t id;   /* ps_conn_id of the connection meant */
} ps_conn_ref;

/* A reference to c, from c's callbacks.  Any thread may keep and copy it
 * until ps_server_free of c's server, also long after c closed: calls then
 * fail with -ESHUTDOWN, never touch another connection and never touch
 * freed memory. */
PS_EXTERN ps_conn_ref ps_conn_ref_of(ps_conn *c);

/* Any thread, including any handler: run fn(conn, arg, status) on the
 * referenced connection's behalf (see ps_post_fn).  Returns 0: fn will run
 * exactly once, soon (the connection is made runnable even when idle).
 * -ESHUTDOWN: the connection is closed or closing (on_close has begun or
 * ended), and -ENOBUFS: max_posts requests are already waiting - in both
 * cases fn will never run and arg is still the caller's.  -EINVAL for a
 * blocking-style server or a NULL fn.  Allocates one small record (a
 * malloc failure returns -ENOMEM). */
PS_EXTERN int ps_conn_post(ps_conn_ref ref, ps_post_fn fn, void *arg);

/* From a callback (or posted function) of any connection of the same
 * server: send len bytes to the referenced connection now, as ps_conn_send
 * would from its own callbacks - if nobody is running it at this moment.
 * The calling worker then writes them itself (no hand-off, no wake-up; the
 * receiver's callbacks do not run) and the receiver's watermarks, timeouts,
 * counters and max_output apply as usual.  Returns the receiver's pending
 * output after the call (>= 0; past out_high_water the receiver is backed
 * up: pause your producer until its on_drain), -EBUSY when another thread
 * runs it now, it is still connecting, or the caller is not one of this
 * server's workers (then post instead: ps_conn_post keeps order with the
 * posts before it, which this call does not wait for), -ESHUTDOWN when it
 * is closed or closing, or ps_conn_send's errors (-EPIPE, -ENOBUFS,
 * -ENOMEM).  A proxy forwards with it and falls back to a post. */
PS_EXTERN ssize_t ps_conn_try_send(ps_conn_ref ref, const void *data, size_t len);

/* Event style, from c's callbacks: arm c's one timer to call on_timer once,
 * after ms milliseconds (0: on the next turn); a pending expiry is replaced,
 * and a negative ms cancels it.  It is cancelled anyway when the connection
 * closes.  Timers fire on the reactor's clock, a few ms late at most (not
 * early).  Returns 0, -EINVAL without an on_timer handler or in the
 * blocking style, -ENOMEM. */
PS_EXTERN int ps_conn_timer(ps_conn *c, int64_t ms);

/* ---------------------------------------------------- outbound connections
 *
 * Event style.  A connection the server opens (to a backend, an upstream)
 * lives on the same pool as accepted ones: same callbacks, watermarks,
 * timeouts, posts and timers, counted in `connects` rather than `accepted`
 * (and not limited by max_connections or max_per_client).
 */

/* Open an outbound connection to addr (as ps_addr_parse takes it: IPv4,
 * [IPv6], "localhost", "unix:PATH" - never a DNS name, so nothing blocks),
 * served by h's callbacks with `user` as their user pointer and `data` as
 * ps_conn_data from the start.  Any thread, handlers included, between
 * ps_server_start and ps_server_stop.
 * Returns 0 and fills *ref (if not NULL) before the connection can run, so
 * that callbacks on other workers (which may start before this call
 * returns) find it there when the caller fills *ref under a lock they take
 * too; then exactly one of these follows, on a worker: on_open once connected (from then on it is like an accepted
 * connection, ending with on_close), or on_close without on_open, with
 * PS_CLOSE_REFUSED, PS_CLOSE_UNREACHABLE or PS_CLOSE_CONNECT_TIMEOUT
 * (ps_conn_data then gives `data` back to free).  Posts to it wait until it
 * is open.  Returns -EINVAL (a bad address, a blocking-style server, h
 * without on_data), -ESHUTDOWN (not running, or stopping), or socket(2)'s
 * error (-EMFILE, ...), with err->msg (if err is not NULL); then no
 * callback follows.  h must stay valid until that connection's on_close
 * returns.  A macro, like ps_server_new, so that the library knows the size
 * of ps_handler this program was built with (docs/abi.md). */
PS_EXTERN int ps_server_connect_sized(ps_server *s, const char *addr, const ps_handler *h,
                                      size_t h_size, void *user, void *data, ps_conn_ref *ref,
                                      ps_err *err);
#define ps_server_connect(s, addr, h, user, data, ref, err)                                \
    ps_server_connect_sized((s), (addr), (h), sizeof(ps_handler), (user), (data), (ref), (err))

/* -------------------------------------------------------------------- TLS
 *
 * "tls:" listeners (see ps_config.listen) serve TLS 1.2 and 1.3 with
 * OpenSSL 3.  Handlers do not change: ps_conn_read / ps_conn_write_all and
 * on_data / ps_conn_send see plaintext, ps_conn_pending and the watermarks
 * count plaintext not yet written, and the handshake is over before
 * on_open or serve runs.  An idle TLS connection holds no record buffers.
 * ps_conn_fd is still the TCP socket: writing to it directly breaks the
 * TLS stream.  A library built without OpenSSL says so: ps_tls_available
 * is false, ps_tls_new fails with -ENOTSUP.
 *
 * The peer's close: a close_notify, or a FIN without one (as many clients
 * send), is the end of the stream (ps_conn_read returns 0, PS_CLOSE_EOF);
 * a reset is an I/O error (PS_CLOSE_ERROR).  A connection a TLS listener
 * refuses (the reject policy, max_connections, max_per_client) is closed
 * without busy_msg: there is no session to carry it.  stats.tls_errors
 * counts failed handshakes, not connections closed before their first
 * byte (a port probe, a health check).
 */

/* ps_tls_config.min_version: the TLS protocol versions (their wire values). */
#define PS_TLS_1_2 0x0303
#define PS_TLS_1_3 0x0304

/* ps_tls_config.verify_client. */
#define PS_TLS_VERIFY_DEFAULT 0  /* REQUIRE when ca_file is set, else no client certificate */
#define PS_TLS_VERIFY_OPTIONAL 1 /* ask; a certificate that is sent must verify */
#define PS_TLS_VERIFY_REQUIRE 2  /* no verified certificate, no handshake */

/* Settings of a ps_tls (strings are copied by ps_tls_new).  Grows only at
 * the end; zero in a new field keeps the old behaviour (docs/abi.md). */
typedef struct ps_tls_config {
    const char *cert_file;    /* PEM: the certificate, then its chain; required */
    const char *key_file;     /* PEM private key of cert_file; required */
    const char *ca_file;      /* PEM CA certificates that client certificates must
                                 chain to; NULL: none asked for */
    int verify_client;        /* PS_TLS_VERIFY_*; default PS_TLS_VERIFY_DEFAULT */
    const char *alpn;         /* protocols offered for ALPN, in the server's order of
                                 preference, comma-separated ("h2,http/1.1");
                                 a client that offers ALPN and none of these
                                 fails the handshake (no_application_protocol);
                                 NULL: no ALPN */
    int min_version;          /* PS_TLS_1_2 (default) or PS_TLS_1_3 */
    const char *ciphers;      /* TLS 1.2 cipher list (OpenSSL syntax); NULL: ECDHE
                                 with AES-GCM or ChaCha20-Poly1305 only */
    const char *ciphersuites; /* TLS 1.3 suites; NULL: OpenSSL's default */
    int session_cache;        /* sessions kept for resumption by session id
                                 (TLS 1.2), 0..1000000, 0 = none; default 4096 */
    int session_timeout_s;    /* how long a session may be resumed, 1..86400;
                                 session-ticket keys rotate this often and
                                 tickets under the previous key are still
                                 accepted (and renewed); default 300 */
    bool ktls;                /* use kernel TLS after the handshake where the
                                 kernel offers it ("tls" in
                                 /proc/sys/net/ipv4/tcp_available_ulp, read at
                                 ps_tls_new); where not, TLS stays in user
                                 space (ps_tls_ktls says which); default false */
} ps_tls_config;

/* Whether this library was built with TLS support.  Any thread. */
PS_EXTERN bool ps_tls_available(void);

/* Fill *cfg with the defaults above.  Any thread.  A macro, as
 * ps_config_init (docs/abi.md). */
PS_EXTERN void ps_tls_config_init_sized(ps_tls_config *cfg, size_t cfg_size);
#define ps_tls_config_init(cfg) ps_tls_config_init_sized((cfg), sizeof(ps_tls_config))

/* Load the certificate, key and CA files and make a TLS context for
 * ps_config.tls.  Returns it, or NULL with *err (if not NULL) filled:
 * -EINVAL (a bad setting, an unreadable or malformed file, a key that does
 * not match its certificate: err->msg names the file and OpenSSL's
 * reason), -ENOMEM, -ENOTSUP (built without TLS).  Any thread.  A macro,
 * as ps_server_new. */
PS_EXTERN ps_tls *ps_tls_new_sized(const ps_tls_config *cfg, size_t cfg_size, ps_err *err);
#define ps_tls_new(cfg, err) ps_tls_new_sized((cfg), sizeof(ps_tls_config), (err))

/* SNI: add a certificate (and its key), served to clients that ask for one
 * of the DNS names in its subjectAltName (or, without any, its subject's
 * common name); "*.example.com" matches one label, and exact names win
 * over wildcards ("a.example.com" beats "*.example.com", whichever was
 * added first).  Clients that ask for another name, or none, get
 * ps_tls_config.cert_file.  Returns 0, or -EINVAL / -ENOMEM with err->msg
 * (t is unchanged then).  Any thread, also while servers use t: new
 * handshakes see it. */
PS_EXTERN int ps_tls_add_cert(ps_tls *t, const char *cert_file, const char *key_file,
                              ps_err *err);

/* Read every certificate, key and CA file again (after they were renewed
 * on disk).  New handshakes use the new ones; established connections and
 * handshakes in progress keep theirs.  Session tickets stay valid.
 * Returns 0, or -EINVAL / -ENOMEM with err->msg, and then t keeps serving
 * what it had.  Any thread (not from a signal handler). */
PS_EXTERN int ps_tls_reload(ps_tls *t, ps_err *err);

/* Whether kernel TLS is in use (ps_tls_config.ktls, and the kernel offers
 * it).  Any thread. */
PS_EXTERN bool ps_tls_ktls(const ps_tls *t);

/* Drop the caller's reference: t is freed when no server uses it any more
 * (each ps_server_new holds one until ps_server_free).  NULL is a no-op.
 * Any thread; t must not be used by the caller afterwards. */
PS_EXTERN void ps_tls_free(ps_tls *t);

/* About the TLS session of a connection, from its callbacks (or serve),
 * after the handshake (so from on_open / serve on).  Each returns NULL for
 * a connection that is not TLS.  Strings stay valid until the connection
 * closes.
 * ps_conn_tls_version: "TLSv1.2" or "TLSv1.3".
 * ps_conn_tls_cipher: the cipher suite's OpenSSL name.
 * ps_conn_tls_alpn: the protocol ALPN chose, or NULL when none was.
 * ps_conn_tls_sni: the server name the client asked for (SNI), or NULL.
 * ps_conn_tls_peer_subject: the subject of the client's certificate, as
 *   RFC 2253 text ("CN=alice,O=Example"), when one was sent and verified
 *   against ps_tls_config.ca_file; NULL otherwise. */
PS_EXTERN const char *ps_conn_tls_version(const ps_conn *c);
PS_EXTERN const char *ps_conn_tls_cipher(const ps_conn *c);
PS_EXTERN const char *ps_conn_tls_alpn(const ps_conn *c);
PS_EXTERN const char *ps_conn_tls_sni(const ps_conn *c);
PS_EXTERN const char *ps_conn_tls_peer_subject(const ps_conn *c);

/* ---------------------------------------------------------- server timers
 *
 * Work that belongs to no connection (a cache sweep, a stats flush): fn
 * runs on a worker, like a handler, after a delay and optionally every
 * period.  Both styles.  One timer never runs concurrently with itself: a
 * periodic expiry that finds the previous run still queued or running is
 * skipped.  Timers run while the server runs and drains; they fire a few
 * ms late at most, never early.
 */
typedef void (*ps_timer_fn)(ps_timer *t, void *arg);

/* A stopped timer of server s.  Returns NULL for a NULL s or fn, or on
 * ENOMEM.  Any thread.  Freed by ps_timer_free, or by ps_server_free. */
PS_EXTERN ps_timer *ps_timer_new(ps_server *s, ps_timer_fn fn, void *arg);
/* (Re)start: fn runs after ms, then every period_ms if period_ms > 0.
 * Returns 0, -EINVAL for a negative ms or period, -ENOMEM.  Any thread,
 * including fn itself. */
PS_EXTERN int ps_timer_start(ps_timer *t, int64_t ms, int64_t period_ms);
/* fn will not start again until the next ps_timer_start (a run already
 * begun on a worker finishes).  Any thread.  Idempotent. */
PS_EXTERN void ps_timer_stop(ps_timer *t);
/* Stop and free.  A run already begun finishes first (the memory goes
 * after it returns); so fn may free its own timer.  NULL is a no-op.  Any
 * thread; not after ps_server_free. */
PS_EXTERN void ps_timer_free(ps_timer *t);

#ifdef __cplusplus
}
#endif
#endif /* POOLSRV_H */

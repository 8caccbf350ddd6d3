/* SPDX-License-Identifier: MIT */
/*
 * internal.h - private structures shared by the library's files.
 *
 * Threads: one reactor thread (reactor.c, acceptor.c) owns the listen
 * sockets, the timer heap's expiries and the pending list; N worker threads
 * (pool.c) run handlers, and in the event style one of them at a time (the
 * poller) collects ready connections from epoll.  A connection is owned by
 * exactly one thread at a time (its state, conn.c): whoever collected its
 * one-shot event, popped it from the queue, or took it from IDLE to leave
 * it a request or write to it (ps_conn_try_send), until that thread re-arms
 * it in epoll (its last touch), queues it, or destroys it.  Every other
 * thread only leaves requests in its mailbox.
 */
#ifndef PS_INTERNAL_H
#define PS_INTERNAL_H

#include "poolsrv.h"
#include "queue.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#define PS_ALIGN_CACHE _Alignas(64)

/* What an epoll_event's data.ptr points at: every such struct starts with one. */
enum ps_kind { PS_KIND_WAKE = 1, PS_KIND_LISTENER, PS_KIND_CONN, PS_KIND_DGRAM, PS_KIND_TIMER };

/* A growable byte buffer; bytes live at data[off .. off+len). */
typedef struct ps_buf {
    char *data;
    size_t off;
    size_t len;
    size_t cap;
} ps_buf;

/* Connection flags: written only by the thread that owns the connection. */
enum {
    PS_CF_REGISTERED = 1u << 0, /* added to the epoll set */
    PS_CF_OPENED = 1u << 1,     /* on_open has run (event style) */
    PS_CF_PARK = 1u << 2,       /* blocking: park after serve returns */
    PS_CF_CLOSING = 1u << 3,    /* close requested: flush, then close */
    PS_CF_PEER_EOF = 1u << 4,   /* read returned 0 */
    PS_CF_FATAL = 1u << 5,      /* I/O error: close without flushing */
    PS_CF_OVERFLOW = 1u << 6,   /* input bound exceeded */
    PS_CF_BACKPRESSURE = 1u << 7, /* output above high water: not reading */
    PS_CF_PROXY = 1u << 8,        /* PROXY protocol header not yet read */
    PS_CF_IN_UNSEEN = 1u << 9,    /* event: c->in holds bytes on_data has not seen */
    PS_CF_LINGER = 1u << 10,      /* event: closed for writing, discarding input */
    PS_CF_OUTLIMIT = 1u << 11,    /* event: max_output passed: drop unflushed */
    PS_CF_MESSAGE = 1u << 12,     /* event: ps_conn_message_begin, no end yet */
    PS_CF_EOF_SEEN = 1u << 13,    /* event: on_eof has run */
    PS_CF_WR_SHUT = 1u << 14,     /* event: ps_conn_shutdown_write: FIN after the output */
    PS_CF_WR_DONE = 1u << 15,     /* event: ... and it was sent */
    PS_CF_CONNECTING = 1u << 16,  /* outbound: connect(2) not finished */
    PS_CF_ABORT = 1u << 17,       /* ps_conn_abort: end now, unflushed, with a reset */
    PS_CF_TLS = 1u << 18,         /* TLS handshake not yet done (tls.c) */
    PS_CF_READ_ALL = 1u << 19,    /* event: an event said the peer's FIN or urgent
                                     data is queued: a short read is not the end
                                     (event.c) */
};
/* States in which the connection itself does not read (the user's pause aside). */
#define PS_CF_NO_READ                                                                   \
    (PS_CF_CLOSING | PS_CF_PEER_EOF | PS_CF_FATAL | PS_CF_OVERFLOW | PS_CF_BACKPRESSURE | \
     PS_CF_OUTLIMIT | PS_CF_ABORT)

struct ps_worker;

struct ps_listener;

/* A received datagram on its way through the queue to on_datagram. */
struct ps_dgram {
    enum ps_kind kind; /* PS_KIND_DGRAM; first member */
    int fd;            /* the UDP socket it came in on (open until workers exit) */
    struct ps_worker *w;
    const struct ps_listener *l; /* ... and its listener */
    bool have_dst;               /* dst is known (IP_PKTINFO on a wildcard listener) */
    struct in6_addr dst;         /* the address it was sent to; IPv4 as ::ffff:a.b.c.d */
    int64_t ready_ns; /* received (cfg.histograms; else 0) */
    socklen_t fromlen;
    struct sockaddr_storage from;
    size_t len;
    char data[];
};

/* Who may touch a connection: c->state, under c->lock.  Each change has
 * one function in conn.c (docs/architecture.md, "Ownership"). */
enum ps_conn_state {
    PS_CS_FREE = 0, /* on the server's free list (memory is recycled, never freed
                       while the server runs: late events and handles find this) */
    PS_CS_OWNED,    /* one thread runs it, or it waits in the queue / pending list */
    PS_CS_IDLE,     /* armed in epoll and owned by nobody: the thread that collects
                       its event, or an outsider's request, makes it OWNED */
    PS_CS_CLOSED,   /* on_close runs or ran: requests are refused */
};

/* Mailbox requests other than posts (c->mail). */
enum { PS_MAIL_RESUME = 1u << 0, PS_MAIL_TIMER = 1u << 1 };

/* A node in the server's timer heap (timer.c): a connection's timer, or
 * a server timer (conn NULL; the node is inside a ps_timer). */
struct ps_tnode {
    int64_t due;  /* ms, ps__now_ms clock */
    size_t slot;  /* 1 + index in the heap; 0 when not armed */
    ps_conn *conn;
    uint64_t id;  /* conn's id when armed */
};

/* A ps_conn_post waiting in a connection's mailbox. */
struct ps_post {
    struct ps_post *next;
    ps_post_fn fn;
    void *arg;
};

struct ps_conn {
    enum ps_kind kind; /* PS_KIND_CONN; first member */
    /* -- kept across recycling (conn.c) -- */
    /* `lock` guards state and the mailbox (mail, posts, nposts): the hand-offs
     * between the owner, the thread that collects an epoll event, and
     * outsiders (resume, post, timers).  Taken twice per turn (collect, arm),
     * never held across a callback. */
    pthread_mutex_t lock;
    enum ps_conn_state state;
    ps_conn *free_next; /* the server's free list, under free_lock */
    ps_server *srv;
    /* -- reset for every connection (from `fd` on) -- */
    int fd;
    unsigned flags;
    int timeout_ms;
    /* cfg.histograms (ps__now_ns; 0 when not stamped): */
    int64_t opened_ns; /* accept or ps_server_connect */
    int64_t ready_ns;  /* made runnable: set before each push, read and
                          cleared by the worker whose turn it starts */
    unsigned mail;                         /* PS_MAIL_*, under lock */
    atomic_bool has_mail;                  /* mail or posts: set under lock, so the
                                              owner may skip the lock when clear */
    struct ps_post *posts, *posts_tail;    /* under lock, in order */
    size_t nposts;                         /* under lock */
    uint32_t armed;  /* under lock: events the owner waits for (event style: what an
                        event must carry for a collector to take the connection) */
    bool live;       /* blocking style, under lock: that one-shot arm has not fired yet */
    uint32_t regd;   /* event style: events registered, edge-triggered (owner) */
    uint32_t missed; /* event style, under lock: events that came while it was owned */
    uint32_t ready;  /* owner: the readiness that started this turn (EPOLLIN for a new or
                        re-queued connection, 0 when only the mailbox did) */
    atomic_bool user_paused;               /* ps_conn_pause_read */
    atomic_bool forced;                    /* shut down at the drain deadline */
    atomic_bool timed_out;                 /* shut down by a timeout (timeouts.c) */
    atomic_bool header_pending;            /* PROXY header or TLS handshake still
                                              expected (header_timeout_ms) */
    /* Written by the owning worker, read by the timeout scan (coarse ms). */
    atomic_int_least64_t last_active;      /* last I/O */
    atomic_uint_least64_t total_in;        /* bytes received, ever */
    atomic_int_least64_t partial_since;    /* event: input left unconsumed since; 0 none */
    atomic_uint_least64_t partial_base;    /* total_in when that began */
    atomic_int_least64_t out_stall_since;  /* event: output pending, no progress since; 0 none */
    atomic_int_least64_t linger_since;     /* event: lingering close began; 0 none */
    uint64_t lingered;                     /* bytes discarded while lingering (worker) */
    int64_t accepted_at;                   /* immutable */
    /* Blocking style, this serve call (worker only). */
    int64_t read_waited_ms;
    uint64_t turn_in;
    /* Written before the connection is first queued; outsiders holding a
     * ps_conn_ref compare it under lock. */
    uint64_t id;
    const ps_handler *h; /* its callbacks: the server's, or ps_server_connect's */
    ps_handler *h_owned; /* h, when it is a copy this connection frees (abi.c) */
    bool outbound;       /* made by ps_server_connect (immutable once registered) */
    int connect_err;     /* outbound: why connect failed (owner) */
    void *user;          /* ... and their user pointer */
    struct ps_worker *w; /* worker running it now */
    void *udata;
    ps_buf in;  /* event style: unconsumed input, NULL while empty */
    ps_buf out; /* event style: unsent output, NULL while empty */
    struct ps_tls_conn *tls; /* "tls:" listeners: the session, from the
                                handshake's first step on (tls.c) */
    ps_conn *reg_prev, *reg_next; /* registry of live connections, under reg_lock */
    bool client_counted;          /* holds a max_per_client slot under peer's
                                     address (under reg_lock); peer never
                                     changes once it is set */
    ps_conn *pend_next;           /* reactor's pending list (reactor thread only) */
    ps_qlink spill;               /* the queue's overflow list (queue.c) */
    struct ps_tnode timer;        /* ps_conn_timer, under the server's timer_lock */
    socklen_t peerlen;
    struct sockaddr_storage peer;
    char *peer_str; /* formatted on first use */
};

/* Per-thread counters.  Each has a single writer (its thread), so updates
 * are plain relaxed load+store; readers sum them. */
typedef struct ps_counters {
    atomic_uint_least64_t accepted, rejected, limit_refused, accept_errors, accept_emfile;
    atomic_uint_least64_t queue_full_waits;
    atomic_uint_least64_t closed, bytes_in, bytes_out, timeouts, io_errors, forced_closes;
    atomic_uint_least64_t datagrams, datagrams_dropped, datagrams_truncated, proxy_errors;
    atomic_uint_least64_t output_closes;
    atomic_uint_least64_t tls_handshakes, tls_resumed, tls_errors;
    atomic_uint_least64_t replies_refused_self, replies_refused_port, replies_refused_rate;
} ps_counters;

static inline void ps__count(atomic_uint_least64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* A latency histogram (ps_histogram's buckets) with a single writer, like
 * ps_counters; ps_server_stats merges them. */
typedef struct ps_hist {
    atomic_uint_least64_t bucket[PS_HIST_BUCKETS];
    atomic_uint_least64_t sum_ns;
} ps_hist;

/* CLOCK_MONOTONIC in ns: a vDSO read, 28 ns on the machines this project
 * is measured on (tsc clock source).  The coarse clock (4 ms resolution
 * here) cannot fill microsecond buckets. */
static inline int64_t ps__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The bucket of a duration: the first i with ns <= 1000 << i (the last
 * bucket past 67 s).  Integer only: a division by a constant and a clz. */
static inline unsigned ps__hist_bucket(uint64_t ns)
{
    uint64_t us = ns / 1000 + (ns % 1000 != 0); /* the least whole microseconds >= ns */
    unsigned i = us <= 1 ? 0 : 64 - (unsigned)__builtin_clzll(us - 1);

    return i < PS_HIST_BUCKETS - 1 ? i : PS_HIST_BUCKETS - 1;
}

static inline void ps__hist_add(ps_hist *h, int64_t ns)
{
    if (ns < 0) /* readings of two threads, a hand-off apart (pool.c) */
        ns = 0;
    ps__count(&h->bucket[ps__hist_bucket((uint64_t)ns)], 1);
    ps__count(&h->sum_ns, (uint64_t)ns);
}

struct ps_worker {
    PS_ALIGN_CACHE ps_counters st;
    ps_hist queue_wait, turn_time, lifetime; /* cfg.histograms */
    ps_server *srv;
    pthread_t tid;
    char *scratch; /* read buffer: input lands here before it is handed to on_data */
    size_t scratch_cap;
};

enum { PS_NODELAY_INHERITED = -1, PS_NODELAY_EACH = -2 };

/* Readiness after which a recv may come back short with bytes still to
 * read: the peer's FIN behind them, or urgent data (TCP stops a read at the
 * urgent mark).  Registered, and remembered by the turn (PS_CF_READ_ALL). */
#define PS_EV_READ_MORE (EPOLLRDHUP | EPOLLPRI)

typedef struct ps_listener {
    enum ps_kind kind; /* PS_KIND_LISTENER; first member */
    int fd;
    int type;          /* SOCK_STREAM or SOCK_DGRAM */
    bool unlink_path;  /* a Unix socket file we created */
    bool reuseport;
    bool proxy;        /* connections start with a PROXY protocol header */
    bool tls;          /* ... then (or first) a TLS handshake */
    bool any_addr;     /* datagrams, bound to 0.0.0.0 or ::: each datagram's
                          destination comes with it (IP_PKTINFO) */
    bool inherited;    /* taken over from a predecessor (handoff.c): its Unix
                          socket file is removed only if nobody listens there */
    atomic_int nodelay; /* TCP_NODELAY, set on the listener (acceptor.c): >= 0 the
                           accepted sockets that lacked it so far (checking),
                           PS_NODELAY_INHERITED or PS_NODELAY_EACH */
    const char *text;  /* the listen text it was made from (s->listen_copy) */
    socklen_t len;
    struct sockaddr_storage addr; /* as bound (port filled in) */
    char name[80];
} ps_listener;

struct ps_server {
    ps_config cfg;
    char *listen_copy[PS_MAX_LISTEN];
    ps_tls *tls; /* cfg.tls, our reference (ps_server_free drops it) */
    ps_handler h;
    void *user;
    bool event_style;

    atomic_int state;      /* PS_STATE_* */
    atomic_bool stopping;  /* ps_server_stop was called */
    atomic_bool stop_now;  /* ps_server_stop_now: end the drain at once */
    enum ps_kind wake_kind; /* epoll tag for wakefd */
    int wakefd;            /* eventfd: stop, queue space, drain progress */
    int epfd;              /* the reactor's: listeners, wakefd (blocking style: conns) */
    /* Event style: connections wait in their own epoll set, which idle
     * workers wait on directly (pool.c); bellfd (edge-triggered, in cepfd)
     * wakes one of them when the queue gets an item.  Blocking style:
     * cepfd == epfd and there is no bell. */
    int cepfd;
    /* Where the stream listeners wait: epfd (the reactor accepts), or in
     * the event style cepfd (an idle worker accepts: acceptor.c). */
    int lepfd;
    int bellfd;
    enum ps_kind bell_kind;
    int reserve_fd;        /* spare descriptor for EMFILE accept-and-close */

    ps_queue *q;
    struct ps_worker *workers;
    int nworkers; /* started */
    pthread_t reactor_tid;
    bool reactor_started;

    ps_listener ls[PS_MAX_LISTEN * 2]; /* x2: udp_same_port pairs */
    int nls;
    /* Listeners taken over from a predecessor (ps_server_handoff_adopt):
     * main thread before start, then read-only.  handed_off: a successor
     * holds our listeners (ps_server_handoff_stop): keep socket files. */
    struct ps_inherited *inh;
    int ninh;
    atomic_bool handed_off;

    /* reg_lock guards reg_head, reg_count and the per-client counts (taken
     * at connection open and close, by the timeout scan and at the drain
     * deadline; never per message). */
    pthread_mutex_t reg_lock;
    ps_conn *reg_head;
    size_t reg_count;
    bool reg_closed; /* the drain is over: ps__registry_add refuses */
    /* timer_lock guards the timer heap and every ps_timer in it (timer.c). */
    pthread_mutex_t timer_lock;
    struct ps_tnode **heap;
    size_t nheap, capheap;
    struct ps_timer *timers; /* every server timer, for ps_server_free */
    int64_t timer_sleep_until; /* the deadline the reactor sleeps until */
    /* free_lock guards free_head: recycled connection records (conn.c). */
    pthread_mutex_t free_lock;
    ps_conn *free_head;
    struct ps_client **clients; /* max_per_client > 0: hash of IP -> open count */

    /* Workers (about to be) in epoll_wait on cepfd; on a line of its own. */
    PS_ALIGN_CACHE atomic_int ready_waiters;
    atomic_bool spinning; /* a worker is polling before it sleeps (pool.c) */
    atomic_int spin_limit; /* ... up to this many polls, adapted to what they find */
    /* Event style: the pollers, workers that may wait on cepfd (pool.c).
     * At most poll_allowed at a time (1, more while they are saturated);
     * poll_seq counts entries into that role, idle_seq polls that found
     * nothing; the standby reads both to see a poller gone for long. */
    atomic_int pollers, poll_allowed;
    atomic_uint poll_seq, idle_seq;
    atomic_uint long_turns; /* event-style turns longer than PS_LONG_TURN_NS (pool.c) */
    _Atomic int64_t long_turn_ns; /* when the last of them ended (ps__now_ns) */
    atomic_bool standby_deep; /* the standby sleeps untimed: nothing runs */
    /* The poller floor (trials.c): poll_allowed never falls below
     * poll_floor, which trials of one poller more or fewer set by the
     * throughput each gives.  A trial step runs at the end of a turn once
     * ctl_next_ns is due, by whoever sets ctl_busy; the ctl_ fields below
     * it are that step's alone. */
    PS_ALIGN_CACHE atomic_int poll_floor; /* read-mostly: on a line of its own */
    _Atomic int64_t ctl_next_ns, ctl_last_ns; /* next step due; last step ran */
    atomic_bool ctl_busy;
    int ctl_state, ctl_phase, ctl_max; /* ctl_max: the most pollers worth a trial */
    int ctl_from, ctl_to;              /* the floor a trial left, the one it tries */
    bool ctl_up;                       /* the last trial from a middle floor went up */
    int64_t ctl_t0, ctl_gap_ns;        /* a window's start (or a wait's end) */
    uint64_t ctl_bytes0;               /* bytes moved at ctl_t0 */
    uint64_t ctl_bytes[2];             /* bytes moved in the floor's, the trial's windows */
    int64_t ctl_ns[2];                 /* ... and their lengths */
    uint64_t ctl_idle0, ctl_total0;    /* the CPUs' idle, total ticks when a wait began */
    bool ctl_looked;                   /* ... read (/proc/stat could be read) */
    atomic_uint ctl_trials, ctl_ended; /* trials begun, ended (tests look) */
    /* bench_lock guards benched, has_standby, join_poll (a trial opened a
     * poller's place: the standby takes it) and pool_stop; idle workers
     * that may not poll sleep on bench_cv, the standby on standby_cv. */
    PS_ALIGN_CACHE pthread_mutex_t bench_lock;
    pthread_cond_t bench_cv, standby_cv;
    int benched;
    bool has_standby, join_poll, pool_stop;

    /* Workers accepting (event style): begin_drain closes the listeners
     * only after setting accept_closed and seeing accepting at 0.  A worker
     * out of descriptors leaves the listener's index (else -1) and errno
     * for the reactor. */
    atomic_int accepting;
    atomic_bool accept_closed;
    atomic_int emfile_listener, emfile_errno;

    /* Reply policy (dgram_policy.c): set at start, read-only while running,
     * except the rate table's slots (atomics, any worker). */
    uint16_t dgram_ports[PS_MAX_LISTEN * 2]; /* ports of our UDP listeners */
    int ndgram_ports;
    atomic_int_least64_t *rate_tat; /* dgram_reply_rate > 0: PS_RATE_SLOTS slots */
    int64_t rate_interval_ns;       /* 1 s / dgram_reply_rate */
    int64_t rate_depth_ns;          /* rate_interval_ns * dgram_reply_burst */
    uint64_t rate_seed;             /* keys the slot hash */

    /* Reactor thread only. */
    PS_ALIGN_CACHE ps_counters rst;
    char *dgram_buf; /* max_datagram + 1 bytes, to see truncation */
    ps_conn *pend_head, *pend_tail;
    atomic_uint_least64_t next_id; /* connection ids (reactor, ps_server_connect) */
    atomic_uint_least64_t connects, connect_errors; /* ps_server_connect, any thread */
    bool accept_paused;      /* block policy: queue full */
    int64_t backoff_until;   /* EMFILE: listeners off until then (ms, monotonic) */
    bool draining;
    int64_t drain_deadline;  /* ms, monotonic; -1 none */
    bool forced;
    int64_t last_emfile_log;
    int64_t next_scan;       /* ms; 0 when no connection timeout is configured */
    int64_t next_timer;      /* ms; the timer heap's root, INT64_MAX when empty */
    int scan_period;         /* ms */
};

/* NEW -> STARTING (start is binding) -> STARTED -> JOINED (wait returned).
 * STARTED is stored with release once listeners and threads exist, so a
 * thread that reads it with acquire may read the listeners. */
enum { PS_STATE_NEW = 0, PS_STATE_STARTING, PS_STATE_STARTED, PS_STATE_JOINED };

/* log.c */
void ps__log(const ps_server *s, ps_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t ps__now_ms(void);

/* addr.c */
int ps__set_err(ps_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* conn.c: life cycle and ownership */
ps_conn *ps__conn_new(ps_server *s, int fd, const struct sockaddr_storage *peer, socklen_t len);
void ps__conn_recycle(ps_conn *c); /* never registered or queued: back to the free list */
void ps__conn_destroy(struct ps_worker *w, ps_conn *c);
void ps__conns_fini(ps_server *s);
bool ps__conn_arm(ps_conn *c, uint32_t events);
bool ps__conn_collect(ps_conn *c, uint32_t events);
int ps__conn_request(ps_conn *c, uint64_t id, unsigned mail, struct ps_post *p);
unsigned ps__conn_take_mail(ps_conn *c, struct ps_post **posts);
bool ps__conn_take_timer(ps_conn *c); /* owner: a timer expiry waited (cleared) */
struct ps_post *ps__conn_close_mailbox(ps_conn *c);
/* Milliseconds on CLOCK_MONOTONIC_COARSE: a vDSO read of a value the
 * kernel keeps per tick (a few ns, resolution 1-4 ms), cheap enough for the
 * per-turn activity stamps that the timeout scan compares. */
static inline int64_t ps__coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void ps__conn_touch(ps_conn *c)
{
    atomic_store_explicit(&c->last_active, ps__coarse_ms(), memory_order_relaxed);
}

/* Stamp a connection about to be queued by its owner (cfg.histograms). */
static inline void ps__conn_stamp(ps_conn *c, int64_t now_ns)
{
    if (c->srv->cfg.histograms)
        c->ready_ns = now_ns ? now_ns : ps__now_ns();
}

/* n bytes arrived (owning worker only). */
static inline void ps__conn_got(ps_conn *c, uint64_t n)
{
    ps__count(&c->w->st.bytes_in, n);
    ps__count(&c->total_in, n);
    ps__conn_touch(c);
}
void ps__buf_free(ps_buf *b);
int ps__buf_append(ps_buf *b, const void *data, size_t len);

/* server.c and stats.c, on full-size structs; the public entry points are
 * the size-stamped ones of abi.c */
void ps__config_init(ps_config *cfg);
int ps__config_validate(const ps_config *cfg, const ps_handler *h, ps_err *err);
ps_server *ps__server_new(const ps_config *cfg, const ps_handler *h, void *user, ps_err *err);
/* cpus.c: the CPUs this process may run on (sched_getaffinity), 1..1024;
 * their idle and total time since boot (clock ticks, /proc/stat), or -errno. */
int ps__cpu_count(void);
int ps__cpu_idle(uint64_t *idle, uint64_t *total);
void ps__server_stats(const ps_server *s, ps_stats *out);
int ps__stats_format(const ps_stats *st, size_t st_size, ps_stats_format_kind kind,
                     const char *prefix, char *buf, size_t cap);

/* proxy_conn.c */
bool ps__proxy_step(struct ps_worker *w, ps_conn *c);

/* tls.c: the handshake phase, and the I/O of TLS connections.  The
 * ps__io_* wrappers below are the one place where a connection's bytes go
 * through the socket or through its TLS session. */
void ps__tls_config_init(ps_tls_config *cfg);
ps_tls *ps__tls_new(const ps_tls_config *cfg, ps_err *err);
ps_tls *ps__tls_ref(ps_tls *t);
void ps__tls_note(ps_server *s); /* start: log what TLS will do (kTLS or not) */
bool ps__tls_step(struct ps_worker *w, ps_conn *c); /* true: handshake done, go on */
ssize_t ps__tls_recv(ps_conn *c, void *buf, size_t len);
ssize_t ps__tls_send(ps_conn *c, const void *buf, size_t len);
bool ps__tls_pending(const ps_conn *c);      /* input buffered in the session */
bool ps__tls_drained(const ps_conn *c);      /* ... none, and the socket came up short */
uint32_t ps__tls_read_events(const ps_conn *c);  /* epoll events a read waits for */
uint32_t ps__tls_write_events(const ps_conn *c); /* ... and a write */
void ps__tls_close_notify(ps_conn *c);       /* best effort, never blocks */
void ps__tls_conn_free(ps_conn *c);

/* recv/send semantics: n >= 0, or -1 with errno (EAGAIN: wait for
 * ps__io_read_events / ps__io_write_events). */
static inline ssize_t ps__io_recv(ps_conn *c, void *buf, size_t len)
{
    return c->tls ? ps__tls_recv(c, buf, len) : recv(c->fd, buf, len, 0);
}

static inline ssize_t ps__io_send(ps_conn *c, const void *buf, size_t len, int flags)
{
    return c->tls ? ps__tls_send(c, buf, len) : send(c->fd, buf, len, flags);
}

/* Input that epoll cannot see: decrypted or read-ahead bytes in the TLS
 * session.  Whoever waits for readiness must drain it first. */
static inline bool ps__io_pending(const ps_conn *c)
{
    return c->tls && ps__tls_pending(c);
}

/* After a read shorter than asked: nothing is left that a read would get
 * without a new epoll edge.  TLS reads ahead: its last recv must have come
 * short too (a full one may have left bytes in the socket), and no bytes
 * may wait decrypted or undecrypted in the session. */
static inline bool ps__io_drained(const ps_conn *c)
{
    return !c->tls || ps__tls_drained(c);
}

/* What a read (a write) that said EAGAIN waits for: EPOLLIN (EPOLLOUT),
 * unless the TLS session must first write (read) a record of its own. */
static inline uint32_t ps__io_read_events(const ps_conn *c)
{
    return c->tls ? ps__tls_read_events(c) : EPOLLIN;
}

static inline uint32_t ps__io_write_events(const ps_conn *c)
{
    return c->tls ? ps__tls_write_events(c) : EPOLLOUT;
}

/* event.c */
void ps__event_turn(struct ps_worker *w, ps_conn *c);
void ps__event_fail(struct ps_worker *w, ps_conn *c); /* finish: cancel, on_close, destroy */

/* connect.c */
int ps__server_connect(ps_server *s, const char *addr, const ps_handler *h, ps_handler *owned,
                       void *user, void *data, ps_conn_ref *ref, ps_err *err);
bool ps__connect_step(struct ps_worker *w, ps_conn *c);
int ps__event_shutdown_write(ps_conn *c);

/* dgram.c */
void ps__dgram_ready(ps_server *s, ps_listener *l);
void ps__dgram_turn(struct ps_worker *w, struct ps_dgram *d);

/* dgram_policy.c: what ps_dgram_reply may answer */
int ps__dgram_policy_new(ps_server *s);    /* ps_server_new: the rate table; -ENOMEM */
void ps__dgram_policy_start(ps_server *s); /* once the listeners are open */
void ps__dgram_policy_free(ps_server *s);
int ps__dgram_reply_check(struct ps_dgram *d); /* worker: 0, -ELOOP, -EPERM, -EBUSY; counted */

/* pool.c */
extern _Thread_local struct ps_worker *ps__self; /* this thread's worker, or NULL */
int ps__pool_start(ps_server *s, ps_err *err);
/* An empty poll takes back a poller that long turns let in only this long
 * after the last of them (pool.c); a trial's lower floor leaves it too.
 * ps__long_hold_left: ns until that hold ends (<= 0: none). */
#define PS_LONG_HOLD_NS 10000000
static inline int64_t ps__long_hold_left(const ps_server *s, int64_t now)
{
    return atomic_load_explicit(&s->long_turn_ns, memory_order_relaxed) + PS_LONG_HOLD_NS - now;
}

/* trials.c, the poller floor.  ps__trials_init before the workers start;
 * ps__trial_step at a turn's end once ctl_next_ns is due (any worker: one
 * runs it, the others return); ps__floor_held: the floor an empty poll may
 * not go below (1 once the steps have stopped), *hold the ms until a
 * poller held by it should look again.  ps__pool_set_floor sets the floor
 * (and the allowance) to f; ps__trial_kept: whether a trial from floor
 * `from` to `to` is kept, given the bytes moved in the floor's windows [0]
 * and the trial's [1] and their lengths (ns). */
void ps__trials_init(ps_server *s);
void ps__trial_step(ps_server *s, int64_t now);
int ps__floor_held(ps_server *s, int64_t now, int *hold);
void ps__pool_set_floor(ps_server *s, int f);
bool ps__trial_kept(int from, int to, const uint64_t bytes[2], const int64_t ns[2]);
void ps__pool_join(ps_server *s);
int ps__thread_create(pthread_t *tid, void *(*fn)(void *), void *arg);
void ps__pool_ring(void *srv); /* queue ready_fn: wake a worker waiting in epoll */

/* listener.c */
/* A listen string, taken apart:
 * ["proxy:"] ["tls:"] ("udp:" ADDR | "fd:" N | ADDR). */
typedef struct ps_listen_spec {
    int type;     /* SOCK_STREAM or SOCK_DGRAM; 0 for fd:N (read from the socket) */
    int fd;       /* fd:N, else -1 */
    bool proxy;   /* expect a PROXY protocol header on each connection */
    bool tls;     /* ... and a TLS handshake (after the header) */
    socklen_t len;
    struct sockaddr_storage addr; /* unless fd:N */
} ps_listen_spec;
int ps__listen_spec(const char *text, ps_listen_spec *sp, ps_err *err);
int ps__listeners_open(ps_server *s, ps_err *err);
void ps__listeners_close(ps_server *s, int type);
void ps__listeners_release_inherited(ps_server *s); /* a failed start: hand them back */
int ps__listener_adopt(ps_server *s, ps_listener *l, int fd, const char *text, ps_err *err);

/* handoff.c: listeners passed between processes */
struct ps_inherited {
    int fd;     /* -1 once closed */
    bool taken; /* a listener holds fd (it closes it); cleared by a failed start */
    char *text; /* the predecessor's listen text (unescaped) */
};
/* The descriptors inherited for `text` and not yet taken: the first max
 * into fds; returns how many there are (possibly more than max). */
int ps__handoff_find(const ps_server *s, const char *text, int *fds, int max);
void ps__handoff_claim(ps_server *s, int fd); /* a listener now holds fd */
void ps__handoff_release(ps_server *s);      /* a failed start: none is held */
void ps__handoff_close_rest(ps_server *s); /* at start: close (and log) the unclaimed */
void ps__handoff_free(ps_server *s);

/* unix_perms.c */
int ps__unix_perms_apply(const ps_config *cfg, const char *path, const char *text, ps_err *err);

/* acceptor.c */
void ps__listeners_enable(ps_server *s, bool on);
void ps__accept_ready(ps_server *s, ps_listener *l);
void ps__accept_emfile_check(ps_server *s);
ps_conn *ps__accept_take(struct ps_worker *w, ps_listener *l, void **first);

/* reactor.c */
int ps__reactor_start(ps_server *s, ps_err *err);
int ps__reactor_run_thread(ps_server *s, ps_err *err);
void ps__reactor_wake(ps_server *s);
void ps__reactor_dispatch(ps_server *s, ps_conn *c);

/* registry.c: live connections and per-client counts */
int ps__registry_init(ps_server *s);
void ps__registry_fini(ps_server *s);
int ps__registry_add(ps_server *s, ps_conn *c); /* -EMFILE/-EUSERS at a limit */
int ps__registry_count_client(ps_server *s, ps_conn *c); /* proxy: after the header */
void ps__registry_remove(ps_server *s, ps_conn *c);
size_t ps__registry_count(ps_server *s);
bool ps__registry_close_if_empty(ps_server *s); /* reactor: end of the drain */
void ps__registry_shutdown_all(ps_server *s);

/* timer.c */
void ps__timer_cancel(ps_server *s, ps_conn *c);
int ps__timer_arm(ps_conn *c, int64_t ms); /* the connection's timer, no handler check */
int64_t ps__timers_run(ps_server *s, int64_t now); /* reactor: next deadline or INT64_MAX */
void ps__timers_note_wake(ps_server *s, int64_t until);
void ps__timers_fini(ps_server *s);
void ps__timer_turn(struct ps_worker *w, struct ps_timer *t); /* a server timer, on a worker */
int64_t ps__timer_take_stamp(struct ps_timer *t); /* worker: when it expired, cleared; 0 none */

/* timeouts.c */
void ps__timeouts_init(ps_server *s);
void ps__timeouts_scan(ps_server *s, int64_t now);
int ps__read_wait_budget(ps_conn *c); /* blocking style: ms a read may still wait, -1 any */

#endif

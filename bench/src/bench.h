/* SPDX-License-Identifier: MIT */
/*
 * bench.h - private declarations of poolsrv-bench, the verifying load
 * generator.  Depends on libc and pthreads only (not on libpoolsrv), so it
 * can measure any echo server.
 *
 * Threading: main() parses flags, starts nthreads load threads (each with its
 * own epoll set, connections and histograms, sharing nothing writable but the
 * atomic phase word and progress counters), drives the phases, then merges
 * the per-thread results after joining them.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* ------------------------------------------------------------- histogram */

/*
 * Log-linear histogram of nanosecond values (HdrHistogram-style): values
 * below 256 are exact; above, each power of two is split into 128 buckets,
 * so a bucket is at most 1/128 of its lower bound wide and the reported
 * midpoint is within 0.4% of every value in it.  Not thread-safe: one per
 * thread, merged after the threads are joined.
 */
#define HIST_SUB 128
#define HIST_BUCKETS (57 * HIST_SUB + HIST_SUB) /* shift 0..56, plus exact 0..255 */

struct hist {
    uint64_t count;
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    long double sum;
    uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, uint64_t v);
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at quantile q (0..1): the midpoint of its bucket, clamped to the
 * exact min and max.  0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);
double hist_mean(const struct hist *h);
/* Internal check of the bucket arithmetic; returns 0 or prints and returns 1. */
int hist_selftest(void);
/* Write h as an HdrHistogram percentile distribution (the ".hgrm" text of
 * outputPercentileDistribution: header, one row per percentile tick, 5
 * ticks per half distance, then the #[Mean/Max/Buckets] footer), values
 * divided by `scale` (1e6: nanoseconds to milliseconds), 3 decimals.
 * Returns 0, or -1 if writing failed. */
int hist_write_hgrm(const struct hist *h, FILE *f, double scale);

/* ------------------------------------------------------------ the pattern */

/*
 * Every connection sends the byte stream pattern_byte(phase + i) for stream
 * offset i, where phase differs per connection, and checks that the echo is
 * the same stream.  The pattern repeats with a prime period; pattern_at()
 * returns a pointer to PATTERN_PERIOD contiguous bytes starting at any phase.
 */
#define PATTERN_PERIOD 65521u
void pattern_init(void);
const uint8_t *pattern_at(uint64_t off);
uint32_t pattern_phase(uint32_t conn_id);

/* ------------------------------------------------------- message sizes */

/*
 * --size-min/--size-max: message j of a connection slot (id, its connect
 * generation gen) has a size drawn from [min, max], uniformly or
 * log-uniformly (each power of two equally likely), by a hash of (seed,
 * id, gen, j): the same flags and seed give every connection the same
 * sizes in every run, whatever the scheduling.
 */
enum size_dist { DIST_LOG, DIST_UNIFORM };
struct size_law {
    size_t min, max; /* max == 0: fixed size (struct opts.size) */
    enum size_dist dist;
    uint64_t seed;
};
size_t size_draw(const struct size_law *law, uint32_t id, uint32_t gen, uint64_t j);
/* Check bounds, reproducibility and spread of size_draw; returns 0, or
 * prints the fault to stderr and returns 1. */
int size_selftest(void);

/* ------------------------------------------------------------ error kinds */

enum err_kind {
    ERR_MISMATCH,     /* echoed byte differs from the byte sent */
    ERR_EXCESS,       /* more bytes echoed than were sent */
    ERR_REFUSED,      /* ECONNREFUSED */
    ERR_RESET,        /* ECONNRESET, EPIPE */
    ERR_TIMEOUT,      /* connect or message got no answer within --timeout */
    ERR_CLOSED,       /* server closed a connection that had work pending */
    ERR_ADDRNOTAVAIL, /* EADDRNOTAVAIL: ephemeral ports exhausted */
    ERR_FDLIMIT,      /* EMFILE/ENFILE in the bench itself */
    ERR_TLS,          /* --tls: handshake failed, or a TLS protocol error */
    ERR_OTHER,
    ERR_KINDS
};
extern const char *const err_names[ERR_KINDS];
enum err_kind err_from_errno(int e);

/* -------------------------------------------------------------- settings */

enum mode { MODE_ECHO, MODE_CONNECT_RATE, MODE_HOLD, MODE_PUBSUB };

struct opts {
    struct sockaddr_storage target;
    socklen_t target_len;
    char target_str[128];
    int connections;       /* -c */
    int pipeline;          /* messages in flight per connection */
    size_t size;           /* -l, bytes per message */
    struct size_law sizes; /* --size-min/--size-max: random sizes instead */
    double duration;       /* -t seconds; 0 when --messages is used */
    uint64_t messages;     /* total messages; 0 when --duration is used */
    double rate;           /* total messages/s, 0 = closed loop */
    enum mode mode;
    bool udp;
    int threads;
    bool json;
    bool progress;      /* stderr is a tty and not --json, or --progress */
    const char *hgrm;   /* --hgrm FILE: latency distribution, or NULL */
    double timeout;     /* seconds without an answer before ERR_TIMEOUT */
    int sources;        /* spread IPv4 loopback clients over 127.0.0.1..N */
    int max_connecting; /* connects in progress at once, whole run */
    int pid;            /* --pid: server whose VmRSS --hold reports (or, with
                           --pubsub, whose CPU time per delivery), or 0 */
    /* --pubsub (pubsub.c) */
    int subscribers, publishers, channels;
    /* --tls (tls.c) */
    bool tls;
    bool tls_resume;     /* --tls-resume: resume each slot's last session */
    const char *ca_file; /* --ca FILE: verify the server against it */
    const char *sni;     /* --sni NAME: server name sent and verified */
    char host[128];      /* the target's host, for verification without --sni */
    void *tls_ctx;       /* SSL_CTX shared by the load threads (tls_setup) */
};

/* ---------------------------------------------------------------- phases */

enum phase {
    PH_CONNECT, /* open connections, send nothing */
    PH_RUN,     /* send and measure */
    PH_DRAIN,   /* send nothing new, wait for answers in flight */
    PH_DONE     /* close everything and return */
};

/* Everything a load thread writes; read by main only after join, except
 * the atomics, which main reads for progress and phase decisions. */
struct tstats {
    struct hist lat;      /* message latency, ns */
    struct hist conn_lat; /* connect latency, ns */
    uint64_t msgs;        /* messages completed during PH_RUN */
    uint64_t bytes;       /* bytes echoed and verified during PH_RUN */
    uint64_t errors[ERR_KINDS];
    uint64_t connects_ok;           /* connections established (all phases) */
    uint64_t cycles;                /* connect-rate: connect+echo+close cycles in PH_RUN */
    atomic_uint_fast64_t live_msgs; /* progress: messages, all phases */
    atomic_uint_fast64_t live_errors;
    atomic_uint_fast64_t live_connected; /* currently connected */
    atomic_uint_fast64_t live_settled;   /* connections connected or failed */
    atomic_bool idle;                    /* nothing in flight and nothing left to send */
    uint64_t finish_ns;                  /* when idle was first set */
    bool setup_failed;                   /* out of memory or epoll_create1 failed */
    uint64_t stall_max_ns;               /* longest time this thread did not run */
    /* --tls */
    uint64_t handshakes;     /* completed, all phases */
    uint64_t handshakes_run; /* completed during PH_RUN */
    uint64_t tls_resumed;    /* of the handshakes: sessions resumed */
    const char *tls_version; /* of the first handshake (OpenSSL's static strings) */
    const char *tls_cipher;
};

struct bench;

struct worker {
    struct bench *b;
    int index;
    int first_conn; /* global id of this thread's first connection */
    int nconns;
    uint64_t quota; /* --messages share, 0 = unlimited */
    struct tstats st;
};

struct bench {
    struct opts o;
    atomic_int phase;
    uint64_t run_start_ns; /* set by main before PH_RUN is published */
    atomic_int connecting; /* connects in progress, all threads */
    struct worker *w;
};

uint64_t now_ns(void);
/* Load-thread body (load.c); returns when the phase becomes PH_DONE. */
void *load_thread(void *arg);

/* ------------------------------------------------------------- TLS (tls.c)
 *
 * OpenSSL 3 when the build found it (HAVE_OPENSSL); otherwise
 * tls_available() is false, main() refuses --tls, and nothing else here is
 * called.  The context is set up by main before the load threads start and
 * freed after they are joined; a session (void *: an SSL) belongs to the
 * load thread of its connection. */
bool tls_available(void);
/* The shared client context: TLS 1.2 and later; no verification unless
 * --ca (then the chain and --sni or the target's host name / address).
 * Returns 0, or -1 after a message on stderr. */
int tls_setup(struct opts *o);
void tls_teardown(struct opts *o);

/* What a TLS call on a non-blocking socket came to (besides n > 0 bytes). */
enum {
    TLS_EOF = 0,       /* the peer closed (close_notify or plain end of stream) */
    TLS_WANT_IN = -1,  /* retry when the socket is readable */
    TLS_WANT_OUT = -2, /* retry when the socket is writable */
    TLS_FAILED = -3,   /* *kind says why; the session is unusable */
};
/* A client session on connected socket fd, resuming sess (from
 * tls_keep_session) when not NULL.  NULL if out of memory. */
void *tls_session_new(const struct opts *o, int fd, void *sess);
/* One handshake step: 1 done, TLS_WANT_IN/OUT, or TLS_FAILED. */
int tls_handshake(void *ssl, enum err_kind *kind);
/* SSL_write (partial writes allowed; a retry must offer the same bytes
 * again, at least as many) / SSL_read: n > 0, or one of the codes above. */
long tls_write(void *ssl, const void *buf, size_t len, enum err_kind *kind);
long tls_read(void *ssl, void *buf, size_t cap, enum err_kind *kind);
/* Decrypted bytes waiting in the session, which epoll cannot see. */
bool tls_pending(void *ssl);
bool tls_resumed(void *ssl);
const char *tls_version(void *ssl);
const char *tls_cipher(void *ssl);
/* After a clean end: send close_notify (one attempt, no waiting), and with
 * keep return the session for resumption (freeing old), else old. */
void *tls_finish(void *ssl, bool keep, void *old);
void tls_session_free(void *ssl);
void tls_saved_free(void *sess);

/* --pubsub: the whole run, report included (pubsub.c).  Returns the exit
 * status: 0 passed, 1 not. */
int pubsub_run(const struct opts *o);

/* Reports: human table to stdout, or one JSON object. */
struct result {
    struct tstats *sum; /* merged */
    double run_secs;
    double connect_secs;
    uint64_t connected_at_start; /* connections up when PH_RUN began */
    uint64_t held_at_end;        /* --hold: connections still up at the end */
    long server_rss_kb_before;   /* --pid: VmRSS before connecting, or -1 */
    long server_rss_kb_after;    /* --pid: VmRSS at the end of --hold, or -1 */
};
uint64_t errors_total(const struct tstats *s);
void report_human(const struct bench *b, const struct result *r);
void report_json(const struct bench *b, const struct result *r);
bool result_ok(const struct bench *b, const struct result *r);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * pubsub.h - Redis publish/subscribe for poolsrv-kv: SUBSCRIBE,
 * UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH and the rules of a RESP2
 * connection in subscribed mode.
 *
 * A registry of channels and patterns, each with the clients subscribed to
 * it, is shared by every worker behind one reader/writer lock: PUBLISH
 * reads it (several workers publish at once), (un)subscribing and closing
 * write it.  PUBLISH formats the push frame once, in a reference-counted
 * message, and fans it out with ps_conn_post to each subscriber: the
 * posted function runs as one of that subscriber's callbacks, checks the
 * subscriber's output bound, sends, and drops its reference (also when the
 * connection closed first, status -ECANCELED).  Publishers never wait for
 * subscribers and never touch their sockets.
 *
 * Output bound, as Redis's client-output-buffer-limit pubsub: a subscriber
 * whose output (bytes waiting to be sent plus messages posted to it and
 * not yet run) would pass `hard`, or has stayed above `soft` for
 * soft_seconds, is disconnected without flushing; its messages are
 * dropped, never buffered without limit.
 *
 * Threads: every function runs in a callback of the connection it names
 * (the owner of *cl), except pubsub_new / pubsub_free (main thread).
 */
#ifndef KV_PUBSUB_H
#define KV_PUBSUB_H

#include "../common.h"
#include "resp.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct pubsub pubsub;
typedef struct pubsub_client pubsub_client;

typedef struct pubsub_limits {
    size_t hard;      /* bytes; 0 = no hard limit */
    size_t soft;      /* bytes; 0 = no soft limit */
    int soft_seconds; /* how long output may stay above soft */
} pubsub_limits;

/* Redis's defaults: client-output-buffer-limit pubsub 32mb 8mb 60. */
#define PUBSUB_HARD_DEFAULT (32u << 20)
#define PUBSUB_SOFT_DEFAULT (8u << 20)
#define PUBSUB_SOFT_SECONDS_DEFAULT 60

/* Parse Redis's form "HARD SOFT SECONDS" (or "HARD" alone: no soft limit),
 * sizes as redis.conf writes them (bytes, or 1k = 1000, 1kb = 1024, m, mb,
 * g, gb).  Returns 0 or -1. */
int pubsub_parse_limits(const char *text, pubsub_limits *out);

/* NULL if out of memory.  free: after the server stopped. */
pubsub *pubsub_new(const pubsub_limits *lim);
void pubsub_free(pubsub *ps);

/*
 * The connection's data pointer (ps_conn_data) must point at a struct whose
 * first member is the connection's `pubsub_client *` (NULL until its first
 * SUBSCRIBE): the functions run by ps_conn_post find the subscriber there.
 */

/* Whether name is one of the commands below (lower case). */
bool pubsub_is_command(const char *name);

/* What a command asks of the caller's command loop. */
enum pubsub_after {
    PUBSUB_GO_ON = 0, /* answered in out; go on with the next command */
    PUBSUB_HOLD = 1,  /* the answer was posted behind the messages still on
                         their way to this connection (an UNSUBSCRIBE must not
                         be overtaken by them); reading is paused: stop here,
                         leave the next commands unconsumed.  Reading resumes
                         after the answer was sent */
};

/* Run a pub/sub command (name as pubsub_is_command accepted it; arity
 * already checked).  *cl is created on the first subscription. */
enum pubsub_after pubsub_command(pubsub *ps, pubsub_client **cl, ps_conn *c, ex_out *out,
                                 const char *name, size_t argc, const resp_str *argv);

/* Subscribed mode (RESP2): a connection with a subscription may only run
 * (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING and QUIT; PING answers ["pong", arg].
 * Returns true if the command was answered here (an error, or PING). */
bool pubsub_gate(const pubsub_client *cl, ex_out *out, const char *name, size_t argc,
                 const resp_str *argv);

/* on_close: leave every channel and pattern, and free cl (NULL: no-op). */
void pubsub_client_free(pubsub *ps, pubsub_client *cl);

/* Redis's glob (stringmatchlen): * ? [abc] [^a] [a-z] and \ escapes.
 * Exposed for tests. */
bool pubsub_glob_match(const char *pat, size_t plen, const char *s, size_t slen);

#endif

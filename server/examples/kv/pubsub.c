/* SPDX-License-Identifier: MIT */
/*
 * pubsub.c - publish/subscribe for poolsrv-kv (see pubsub.h).
 *
 * Data: a topic is a channel (in a hash table) or a pattern (in a list that
 * PUBLISH scans, as Redis does), with the array of clients subscribed to
 * it; a client keeps the array of its own topics.  ps->lock guards all of
 * it.  Besides, each client has two atomics that publishers read and
 * write under the read lock: queued (bytes posted, not yet run) and doomed
 * (closing for its output bound).  A client is freed in on_close, after it left every topic
 * under the write lock: no publisher can hold it then, and every function
 * posted to it has run (cancelled ones run before on_close).
 *
 * Ordering: a message posted to a subscriber before it unsubscribed may
 * still wait in its mailbox.  Redis would have written it before the
 * UNSUBSCRIBE reply, and a RESP2 client that leaves subscribed mode would
 * take a late message for the reply to its next command; so the reply to
 * (P)UNSUBSCRIBE is itself posted, behind those messages (publishers post
 * under the read lock, the unsubscribe takes the write lock), and the
 * command loop stops reading until it has been sent.
 */
#include "pubsub.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

struct topic {
    struct topic *next; /* hash chain (channels) */
    uint64_t hash;
    pubsub_client **subs;
    size_t nsubs, cap;
    size_t len;
    char name[];
};

#define PUBSUB_MAILBOX_FACTOR 4 /* messages waiting to run: at most 4 x hard (post_to) */
#define PUBSUB_STAGE 16384      /* deliver_fn gathers up to this much per send */
#define PUBSUB_STAGE_KEEP 4096  /* ... and keeps a buffer this size between batches */

struct pubsub_client {
    ps_conn_ref ref;
    const pubsub_limits *lim;
    struct topic **chans, **pats; /* what this client is subscribed to */
    size_t nchans, capchans, npats, cappats;
    atomic_size_t queued; /* bytes posted to it, not yet run */
    atomic_bool doomed;   /* over its output bound: being closed */
    int64_t soft_since;   /* ms; above the soft limit since (owner only) */
    /* Owner only: messages gathered for one ps_conn_send (deliver_fn). */
    char *stage;
    size_t stage_len, stage_cap;
};

struct pubsub {
    pthread_rwlock_t lock; /* guards everything below and every topic / client list */
    struct topic **buckets;
    size_t nbuckets, nchans;
    struct topic **pats;
    size_t npats, cappats;
    uint64_t seed;
    pubsub_limits lim;
};

/* A push frame shared by every subscriber it was posted to. */
struct msg {
    atomic_size_t refs;
    size_t len;
    char data[];
};

/* ------------------------------------------------------------- helpers */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, seeded per registry so channel names cannot be aimed at a chain
 * from outside without knowing the seed. */
static uint64_t hash_name(const pubsub *ps, const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ ps->seed;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static bool grow(void *arr, size_t *cap, size_t need, size_t elem)
{
    void **a = arr;
    size_t n = *cap ? *cap * 2 : 4;
    void *p;

    if (need <= *cap)
        return true;
    while (n < need)
        n *= 2;
    p = realloc(*a, n * elem);
    if (!p)
        return false;
    *a = p;
    *cap = n;
    return true;
}

/* Remove x from arr[0..*n) by swapping the last one in; returns whether it was there. */
static bool remove_ptr(void **arr, size_t *n, const void *x)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (arr[i] == x) {
            arr[i] = arr[--*n];
            return true;
        }
    }
    return false;
}

/* Remove x from arr[0..*n) keeping the order (a client's own list, so that
 * UNSUBSCRIBE without names answers in subscription order). */
static void remove_ptr_ordered(void **arr, size_t *n, const void *x)
{
    size_t i;

    for (i = 0; i < *n; i++) {
        if (arr[i] == x) {
            memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof *arr);
            --*n;
            return;
        }
    }
}

static bool name_is(const struct topic *t, const resp_str *s)
{
    return t->len == s->n && memcmp(t->name, s->p, s->n) == 0;
}

/* ---------------------------------------------------------------- glob */

/* One [...] set at p (after the '['), against c.  Advances *pp past the
 * closing ']' (an unterminated set takes the rest of the pattern, as
 * Redis's stringmatchlen does).  Chars compare as signed, as there. */
static bool set_match(const char **pp, const char *end, signed char c)
{
    const char *p = *pp;
    bool neg = p < end && *p == '^', match = false;

    if (neg)
        p++;
    while (p < end && *p != ']') {
        if (*p == '\\' && end - p >= 2) {
            p++;
            match |= (signed char)*p == c;
        } else if (end - p >= 3 && p[1] == '-') {
            signed char lo = (signed char)p[0], hi = (signed char)p[2];
            if (lo > hi) {
                signed char t = lo;
                lo = hi;
                hi = t;
            }
            match |= c >= lo && c <= hi;
            p += 2;
        } else {
            match |= (signed char)*p == c;
        }
        p++;
    }
    *pp = p < end ? p + 1 : end;
    return match != neg;
}

/* Redis's glob, without recursion: on a mismatch, the last '*' takes one
 * more character (the classic two-pointer walk, O(len(p) x len(s)) at
 * worst).  Redis matches nothing against an empty string unless the
 * pattern is empty too (its loop never starts); so do we. */
bool pubsub_glob_match(const char *pat, size_t plen, const char *s, size_t slen)
{
    const char *p = pat, *pend = pat + plen, *send = s + slen;
    const char *star_p = NULL, *star_s = NULL;

    if (slen == 0)
        return plen == 0;
    while (s < send) {
        if (p < pend && *p == '*') {
            while (p < pend && *p == '*')
                p++;
            if (p == pend)
                return true;
            star_p = p;
            star_s = s;
            continue;
        }
        if (p < pend) {
            const char *q = p;
            bool ok;
            if (*q == '?') {
                ok = true;
                q++;
            } else if (*q == '[') {
                q++;
                ok = set_match(&q, pend, (signed char)*s);
            } else {
                if (*q == '\\' && pend - q >= 2)
                    q++;
                ok = *q == *s;
                q++;
            }
            if (ok) {
                p = q;
                s++;
                continue;
            }
        }
        if (!star_p)
            return false;
        p = star_p; /* the last '*' takes one more character */
        s = ++star_s;
    }
    while (p < pend && *p == '*')
        p++;
    return p == pend;
}

/* ------------------------------------------------------------ registry */

pubsub *pubsub_new(const pubsub_limits *lim)
{
    pthread_rwlockattr_t attr;
    pubsub *ps = calloc(1, sizeof *ps);
    struct timespec ts;

    if (!ps)
        return NULL;
    ps->nbuckets = 64;
    ps->buckets = calloc(ps->nbuckets, sizeof *ps->buckets);
    if (!ps->buckets) {
        free(ps);
        return NULL;
    }
    /* Prefer writers: a stream of PUBLISH from every worker must not keep
     * a SUBSCRIBE (or a closing subscriber) waiting for ever. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&ps->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    clock_gettime(CLOCK_REALTIME, &ts);
    ps->seed = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)ps;
    ps->lim = *lim;
    return ps;
}

static void topic_free(struct topic *t)
{
    free(t->subs);
    free(t);
}

void pubsub_free(pubsub *ps)
{
    size_t i;

    if (!ps)
        return;
    for (i = 0; i < ps->nbuckets; i++) {
        while (ps->buckets[i]) {
            struct topic *t = ps->buckets[i];
            ps->buckets[i] = t->next;
            topic_free(t);
        }
    }
    for (i = 0; i < ps->npats; i++)
        topic_free(ps->pats[i]);
    free(ps->pats);
    free(ps->buckets);
    pthread_rwlock_destroy(&ps->lock);
    free(ps);
}

/* Under the read or write lock. */
static struct topic *chan_find(const pubsub *ps, const char *name, size_t len, uint64_t h)
{
    struct topic *t;

    for (t = ps->buckets[h & (ps->nbuckets - 1)]; t; t = t->next)
        if (t->hash == h && t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

static struct topic *topic_new(const resp_str *name, uint64_t h)
{
    struct topic *t = calloc(1, sizeof *t + name->n + 1);

    if (!t)
        return NULL;
    t->hash = h;
    t->len = name->n;
    memcpy(t->name, name->p, name->n);
    return t;
}

/* Write lock.  Doubles the table past one channel per bucket. */
static void chans_grow(pubsub *ps)
{
    size_t n = ps->nbuckets * 2, i;
    struct topic **b = calloc(n, sizeof *b);

    if (!b)
        return; /* longer chains, still correct */
    for (i = 0; i < ps->nbuckets; i++) {
        while (ps->buckets[i]) {
            struct topic *t = ps->buckets[i];
            ps->buckets[i] = t->next;
            t->next = b[t->hash & (n - 1)];
            b[t->hash & (n - 1)] = t;
        }
    }
    free(ps->buckets);
    ps->buckets = b;
    ps->nbuckets = n;
}

/* Write lock: the channel or pattern named, created if missing; NULL when
 * out of memory. */
static struct topic *topic_get(pubsub *ps, bool pattern, const resp_str *name)
{
    uint64_t h = pattern ? 0 : hash_name(ps, name->p, name->n);
    struct topic *t;
    size_t i;

    if (pattern) {
        for (i = 0; i < ps->npats; i++)
            if (name_is(ps->pats[i], name))
                return ps->pats[i];
        if (!grow(&ps->pats, &ps->cappats, ps->npats + 1, sizeof *ps->pats))
            return NULL;
        t = topic_new(name, 0);
        if (t)
            ps->pats[ps->npats++] = t;
        return t;
    }
    t = chan_find(ps, name->p, name->n, h);
    if (t)
        return t;
    t = topic_new(name, h);
    if (!t)
        return NULL;
    t->next = ps->buckets[h & (ps->nbuckets - 1)];
    ps->buckets[h & (ps->nbuckets - 1)] = t;
    if (++ps->nchans > ps->nbuckets)
        chans_grow(ps);
    return t;
}

/* Write lock: a topic nobody subscribes to any more goes. */
static void topic_drop_if_empty(pubsub *ps, bool pattern, struct topic *t)
{
    struct topic **pp;

    if (t->nsubs > 0)
        return;
    if (pattern) {
        remove_ptr((void **)ps->pats, &ps->npats, t);
    } else {
        for (pp = &ps->buckets[t->hash & (ps->nbuckets - 1)]; *pp != t; pp = &(*pp)->next)
            ;
        *pp = t->next;
        ps->nchans--;
    }
    topic_free(t);
}

/* ------------------------------------------------------------- replies */

/* Replies are built in a small growable buffer: a (P)UNSUBSCRIBE answer
 * is posted as a whole (see the top of this file), the others are copied
 * into the connection's batch. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed; /* out of memory */
} sbuf;

static void sb_put(sbuf *b, const void *data, size_t n)
{
    if (b->failed || !grow(&b->p, &b->cap, b->len + n, 1)) {
        b->failed = true;
        return;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void sb_bulk(sbuf *b, const char *s, size_t n)
{
    char head[32];

    sb_put(b, head, (size_t)snprintf(head, sizeof head, "$%zu\r\n", n));
    sb_put(b, s, n);
    sb_put(b, "\r\n", 2);
}

/* ["subscribe", name, count] and its kin; name NULL: a null bulk string. */
static void sb_ack(sbuf *b, const char *kind, const char *name, size_t n, size_t count)
{
    char num[32];

    sb_put(b, "*3\r\n", 4);
    sb_bulk(b, kind, strlen(kind));
    if (name)
        sb_bulk(b, name, n);
    else
        sb_put(b, "$-1\r\n", 5);
    sb_put(b, num, (size_t)snprintf(num, sizeof num, ":%zu\r\n", count));
}

static void put_bulk(ex_out *o, const char *s, size_t n)
{
    char *p = ex_out_reserve(o, 32);

    ex_out_commit(o, (size_t)snprintf(p, 32, "$%zu\r\n", n));
    ex_out_put(o, s, n);
    ex_out_put(o, "\r\n", 2);
}

static size_t client_count(const pubsub_client *cl)
{
    return cl ? cl->nchans + cl->npats : 0;
}

/* ------------------------------------------------------ fan-out (posts) */

static void msg_unref(struct msg *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

/* A frame: "*N" then the bulk strings parts[0..n). */
static struct msg *msg_new(const resp_str *parts, size_t n)
{
    size_t len = 16, i, off;
    struct msg *m;

    for (i = 0; i < n; i++)
        len += parts[i].n + 32;
    m = malloc(sizeof *m + len);
    if (!m)
        return NULL;
    off = (size_t)sprintf(m->data, "*%zu\r\n", n);
    for (i = 0; i < n; i++) {
        off += (size_t)sprintf(m->data + off, "$%zu\r\n", parts[i].n);
        memcpy(m->data + off, parts[i].p, parts[i].n);
        off += parts[i].n;
        memcpy(m->data + off, "\r\n", 2);
        off += 2;
    }
    m->len = off;
    atomic_init(&m->refs, 1);
    return m;
}

static pubsub_client *client_of(ps_conn *c)
{
    return *(pubsub_client **)ps_conn_data(c);
}

/* Close now, dropping what waits (ps_conn_close would first flush output
 * the peer is not reading): as Redis does, the subscriber gets a reset. */
static void drop_subscriber(ps_conn *c, pubsub_client *cl, const char *why)
{
    atomic_store_explicit(&cl->doomed, true, memory_order_relaxed);
    fprintf(stderr, "poolsrv-kv: closing subscriber %s: %s\n", ps_conn_peer_str(c), why);
    ps_conn_abort(c);
}

/* Posted by a publisher that found the subscriber over its hard limit. */
static void doom_fn(ps_conn *c, void *arg, int status)
{
    (void)arg;
    if (status == 0)
        drop_subscriber(c, client_of(c), "pubsub output limit (hard, messages waiting)");
}

/* Whether sending len more bytes keeps c's output (what it has not read
 * yet) within its bounds; past one, c is dropped.  Messages still waiting
 * in its mailbox do not count here: they wait for a worker, not for the
 * peer (a worker the kernel preempted for a few ms leaves a few MiB
 * there under a busy publisher), and post_to bounds them apart. */
static bool within_limits(ps_conn *c, pubsub_client *cl, size_t len)
{
    const pubsub_limits *lim = cl->lim;
    size_t out = ps_conn_pending(c) + cl->stage_len + len;

    if (lim->hard && out > lim->hard) {
        drop_subscriber(c, cl, "pubsub output limit (hard)");
        return false;
    }
    if (!lim->soft || out <= lim->soft) {
        cl->soft_since = 0;
        return true;
    }
    if (cl->soft_since == 0) {
        cl->soft_since = now_ms();
    } else if (now_ms() - cl->soft_since >= (int64_t)lim->soft_seconds * 1000) {
        drop_subscriber(c, cl, "pubsub output limit (soft)");
        return false;
    }
    return true;
}

/* Hand the gathered messages to ps_conn_send, in one call.  A buffer of
 * PUBSUB_STAGE_KEEP bytes is kept for the next batch (as Redis keeps a
 * 16 KiB reply buffer per client): a malloc and free per batch cost more
 * than the copy, and allocations that size make glibc consolidate its
 * small bins.  A larger one goes. */
static void flush_stage(ps_conn *c, pubsub_client *cl)
{
    if (cl->stage_len > 0 && !atomic_load_explicit(&cl->doomed, memory_order_relaxed))
        ps_conn_send(c, cl->stage, cl->stage_len); /* a failure closes c: nothing to add */
    cl->stage_len = 0;
    if (cl->stage_cap > PUBSUB_STAGE_KEEP) {
        free(cl->stage);
        cl->stage = NULL;
        cl->stage_cap = 0;
    }
}

static void flush_fn(ps_conn *c, void *arg, int status)
{
    pubsub_client *cl = client_of(c);

    (void)arg;
    if (status == 0)
        flush_stage(c, cl);
}

/* Gather m for the next flush; false if out of memory. */
static bool stage(pubsub_client *cl, const struct msg *m)
{
    size_t need = cl->stage_len + m->len;

    if (need > cl->stage_cap) {
        size_t cap = cl->stage_cap ? cl->stage_cap * 2 : PUBSUB_STAGE_KEEP;
        if (cap < need)
            cap = need;
        char *p = realloc(cl->stage, cap);
        if (!p)
            return false;
        cl->stage = p;
        cl->stage_cap = cap;
    }
    memcpy(cl->stage + cl->stage_len, m->data, m->len);
    cl->stage_len = need;
    return true;
}

/* Runs as one of the subscriber's callbacks (ps_post_fn).  Messages posted
 * together run one after the other; one send(2) each would cost more than
 * the rest of a delivery, so they are gathered and sent once no more are
 * on their way (queued reaches 0) or PUBSUB_STAGE bytes are gathered, as
 * Redis writes a client's replies once per event-loop turn.  "More on
 * their way" is a post already counted: it runs next, in this turn or the
 * following one (a connection with posts waiting is not put to sleep);
 * post_to covers a post that fails after counting. */
static void deliver_fn(ps_conn *c, void *arg, int status)
{
    struct msg *m = arg;
    pubsub_client *cl = client_of(c);
    size_t left = atomic_fetch_sub_explicit(&cl->queued, m->len, memory_order_relaxed) - m->len;

    if (status == 0 && !atomic_load_explicit(&cl->doomed, memory_order_relaxed) &&
        within_limits(c, cl, m->len)) {
        if (!stage(cl, m)) {
            flush_stage(c, cl);
            ps_conn_send(c, m->data, m->len);
        } else if (left == 0 || cl->stage_len >= PUBSUB_STAGE) {
            flush_stage(c, cl);
        }
    } else if (status != 0) {
        flush_stage(c, cl); /* nothing to send now; frees the buffer */
    }
    msg_unref(m);
}

/* Under the read lock: post m to cl (m holds a reference for it already;
 * it is dropped here if the post fails).  Messages pile up in a mailbox
 * only while no worker runs the subscriber, not because its peer is slow
 * (deliver_fn catches that), so their bound is generous:
 * PUBSUB_MAILBOX_FACTOR times the hard limit, besides the library's
 * max_posts.  A subscriber thus holds at most hard bytes of output plus
 * that many waiting; and the messages are shared with every other
 * subscriber of the channel, not copies. */
static void post_to(pubsub_client *cl, struct msg *m)
{
    size_t hard = cl->lim->hard;
    int rc;

    if (atomic_load_explicit(&cl->doomed, memory_order_relaxed))
        goto out_unref;
    if (hard && atomic_load_explicit(&cl->queued, memory_order_relaxed) + m->len >
                    hard * PUBSUB_MAILBOX_FACTOR)
        goto out_doom;
    atomic_fetch_add_explicit(&cl->queued, m->len, memory_order_relaxed);
    rc = ps_conn_post(cl->ref, deliver_fn, m);
    if (rc == 0)
        return;
    if (atomic_fetch_sub_explicit(&cl->queued, m->len, memory_order_relaxed) == m->len &&
        rc == -ENOMEM)
        ps_conn_post(cl->ref, flush_fn, NULL); /* deliver_fn may be waiting for this one */
    if (rc == -ENOBUFS) /* max_posts waiting: it does not keep up either */
        goto out_doom;
    goto out_unref; /* -ESHUTDOWN: closing; -ENOMEM: this message is lost for it */

out_doom:
    if (!atomic_exchange_explicit(&cl->doomed, true, memory_order_relaxed) &&
        ps_conn_post(cl->ref, doom_fn, NULL) < 0)
        atomic_store_explicit(&cl->doomed, false, memory_order_relaxed); /* try again later */
out_unref:
    msg_unref(m);
}

/* Under the read lock: post m to every subscriber of t; m's own reference
 * (the publisher's) is dropped. */
static void fan_out(const struct topic *t, struct msg *m)
{
    size_t i;

    atomic_fetch_add_explicit(&m->refs, t->nsubs, memory_order_relaxed);
    for (i = 0; i < t->nsubs; i++)
        post_to(t->subs[i], m);
    msg_unref(m);
}

/* PUBLISH channel message: the number of receivers, counted as Redis does
 * (each subscription that matched, even one whose connection is closing). */
static void cmd_publish(pubsub *ps, ex_out *out, const resp_str *argv)
{
    const resp_str *ch = &argv[1], *payload = &argv[2];
    uint64_t h = hash_name(ps, ch->p, ch->n);
    size_t receivers = 0, i;
    struct topic *t;
    char *p;

    pthread_rwlock_rdlock(&ps->lock);
    t = chan_find(ps, ch->p, ch->n, h);
    if (t && t->nsubs > 0) {
        resp_str parts[3] = {{"message", 7}, *ch, *payload};
        struct msg *m = msg_new(parts, 3);
        if (m) {
            receivers += t->nsubs;
            fan_out(t, m);
        }
    }
    for (i = 0; i < ps->npats; i++) {
        t = ps->pats[i];
        if (t->nsubs > 0 && pubsub_glob_match(t->name, t->len, ch->p, ch->n)) {
            resp_str parts[4] = {{"pmessage", 8}, {t->name, t->len}, *ch, *payload};
            struct msg *m = msg_new(parts, 4);
            if (m) {
                receivers += t->nsubs;
                fan_out(t, m);
            }
        }
    }
    pthread_rwlock_unlock(&ps->lock);
    p = ex_out_reserve(out, 32);
    ex_out_commit(out, (size_t)snprintf(p, 32, ":%zu\r\n", receivers));
}

/* ------------------------------------------------------- subscriptions */

static pubsub_client *client_new(pubsub *ps, ps_conn *c)
{
    pubsub_client *cl = calloc(1, sizeof *cl);

    if (!cl)
        return NULL;
    cl->ref = ps_conn_ref_of(c);
    cl->lim = &ps->lim;
    atomic_init(&cl->queued, 0);
    atomic_init(&cl->doomed, false);
    return cl;
}

/* Write lock: subscribe cl to the channel or pattern.  Returns 0 (also if
 * it already was), -ENOMEM. */
static int subscribe_one(pubsub *ps, pubsub_client *cl, bool pattern, const resp_str *name)
{
    struct topic ***mine = pattern ? &cl->pats : &cl->chans;
    size_t *n = pattern ? &cl->npats : &cl->nchans, *cap = pattern ? &cl->cappats : &cl->capchans;
    struct topic *t = topic_get(ps, pattern, name);
    size_t i;

    if (!t)
        return -ENOMEM;
    /* Already subscribed?  Look through the shorter of the two lists. */
    if (*n <= t->nsubs) {
        for (i = 0; i < *n; i++)
            if ((*mine)[i] == t)
                return 0;
    } else {
        for (i = 0; i < t->nsubs; i++)
            if (t->subs[i] == cl)
                return 0;
    }
    if (!grow(mine, cap, *n + 1, sizeof **mine) ||
        !grow(&t->subs, &t->cap, t->nsubs + 1, sizeof *t->subs)) {
        topic_drop_if_empty(ps, pattern, t);
        return -ENOMEM;
    }
    (*mine)[(*n)++] = t;
    t->subs[t->nsubs++] = cl;
    return 0;
}

/* Write lock: take cl off topic t (which it is on). */
static void leave(pubsub *ps, pubsub_client *cl, bool pattern, struct topic *t)
{
    remove_ptr_ordered((void **)(pattern ? cl->pats : cl->chans), pattern ? &cl->npats : &cl->nchans,
                       t);
    remove_ptr((void **)t->subs, &t->nsubs, cl);
    topic_drop_if_empty(ps, pattern, t);
}

static void cmd_subscribe(pubsub *ps, pubsub_client **clp, ps_conn *c, ex_out *out, bool pattern,
                          size_t argc, const resp_str *argv)
{
    const char *kind = pattern ? "psubscribe" : "subscribe";
    sbuf b = {0};
    size_t i;
    int rc;

    if (!*clp && !(*clp = client_new(ps, c))) {
        ex_out_put(out, "-OOM out of memory\r\n", 20);
        return;
    }
    for (i = 1; i < argc; i++) {
        pthread_rwlock_wrlock(&ps->lock);
        rc = subscribe_one(ps, *clp, pattern, &argv[i]);
        pthread_rwlock_unlock(&ps->lock);
        b.len = 0;
        sb_ack(&b, kind, argv[i].p, argv[i].n, client_count(*clp));
        if (rc < 0 || b.failed)
            ex_out_put(out, "-OOM out of memory\r\n", 20);
        else
            ex_out_put(out, b.p, b.len);
    }
    free(b.p);
}

/* Runs the posted reply to an UNSUBSCRIBE (arg: an sbuf's bytes). */
static void held_reply_fn(ps_conn *c, void *arg, int status)
{
    sbuf *b = arg;
    pubsub_client *cl = client_of(c);

    if (status == 0) {
        if (cl)
            flush_stage(c, cl); /* messages gathered before it go first */
        ps_conn_send(c, b->p, b->len);
        ps_conn_resume_read(c);
    }
    free(b->p);
    free(b);
}

/* Post the reply in b behind the messages already on their way to c, and
 * pause reading until it is sent.  Returns PUBSUB_HOLD; or PUBSUB_GO_ON
 * after answering directly when it cannot (no memory, mailbox full). */
static enum pubsub_after hold_reply(ps_conn *c, ex_out *out, sbuf *b)
{
    sbuf *held = malloc(sizeof *held);

    if (held) {
        *held = *b;
        if (ps_conn_post(ps_conn_ref_of(c), held_reply_fn, held) == 0) {
            ps_conn_pause_read(c);
            return PUBSUB_HOLD;
        }
        free(held);
    }
    ex_out_put(out, b->p, b->len);
    free(b->p);
    return PUBSUB_GO_ON;
}

/* (P)UNSUBSCRIBE [name ...]: no name leaves every channel (pattern); a
 * client on none gets one reply with a null name. */
static enum pubsub_after cmd_unsubscribe(pubsub *ps, pubsub_client *cl, ps_conn *c, ex_out *out,
                                         bool pattern, size_t argc, const resp_str *argv)
{
    const char *kind = pattern ? "punsubscribe" : "unsubscribe";
    sbuf b = {0};
    size_t i, k;

    pthread_rwlock_wrlock(&ps->lock);
    if (argc > 1) {
        for (i = 1; i < argc; i++) {
            struct topic **mine = cl ? (pattern ? cl->pats : cl->chans) : NULL;
            size_t n = cl ? (pattern ? cl->npats : cl->nchans) : 0;
            for (k = 0; k < n; k++) {
                if (name_is(mine[k], &argv[i])) {
                    leave(ps, cl, pattern, mine[k]);
                    break;
                }
            }
            sb_ack(&b, kind, argv[i].p, argv[i].n, client_count(cl));
        }
    } else if (!cl || (pattern ? cl->npats : cl->nchans) == 0) {
        sb_ack(&b, kind, NULL, 0, client_count(cl));
    } else {
        while (pattern ? cl->npats : cl->nchans) {
            struct topic *t = pattern ? cl->pats[0] : cl->chans[0];
            /* the name is copied into the reply before the topic may go */
            sb_ack(&b, kind, t->name, t->len, client_count(cl) - 1);
            leave(ps, cl, pattern, t);
        }
    }
    pthread_rwlock_unlock(&ps->lock);
    if (b.failed) {
        free(b.p);
        ex_out_put(out, "-OOM out of memory\r\n", 20);
        return PUBSUB_GO_ON;
    }
    ex_out_flush(out); /* the replies before this one go first */
    return hold_reply(c, out, &b);
}

bool pubsub_is_command(const char *name)
{
    return strcmp(name, "subscribe") == 0 || strcmp(name, "unsubscribe") == 0 ||
           strcmp(name, "psubscribe") == 0 || strcmp(name, "punsubscribe") == 0 ||
           strcmp(name, "publish") == 0;
}

enum pubsub_after pubsub_command(pubsub *ps, pubsub_client **cl, ps_conn *c, ex_out *out,
                                 const char *name, size_t argc, const resp_str *argv)
{
    bool pattern = name[0] == 'p' && strcmp(name, "publish") != 0; /* p(un)subscribe */

    if (strcmp(name, "publish") == 0)
        cmd_publish(ps, out, argv);
    else if (strstr(name, "unsubscribe"))
        return cmd_unsubscribe(ps, *cl, c, out, pattern, argc, argv);
    else
        cmd_subscribe(ps, cl, c, out, pattern, argc, argv);
    return PUBSUB_GO_ON;
}

bool pubsub_gate(const pubsub_client *cl, ex_out *out, const char *name, size_t argc,
                 const resp_str *argv)
{
    char msg[160];

    if (client_count(cl) == 0)
        return false;
    if (strcmp(name, "ping") == 0) {
        ex_out_put(out, "*2\r\n$4\r\npong\r\n", 14);
        if (argc > 1)
            put_bulk(out, argv[1].p, argv[1].n);
        else
            ex_out_put(out, "$0\r\n\r\n", 6);
        return true;
    }
    if (strcmp(name, "quit") == 0 || (pubsub_is_command(name) && strcmp(name, "publish") != 0))
        return false;
    snprintf(msg, sizeof msg,
             "-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
             "RESET are allowed in this context\r\n",
             name);
    ex_out_put(out, msg, strlen(msg));
    return true;
}

void pubsub_client_free(pubsub *ps, pubsub_client *cl)
{
    if (!cl)
        return;
    pthread_rwlock_wrlock(&ps->lock);
    while (cl->nchans) /* from the end: no moving */
        leave(ps, cl, false, cl->chans[cl->nchans - 1]);
    while (cl->npats)
        leave(ps, cl, true, cl->pats[cl->npats - 1]);
    pthread_rwlock_unlock(&ps->lock);
    free(cl->stage);
    free(cl->chans);
    free(cl->pats);
    free(cl);
}

/* ------------------------------------------------------------- options */

/* A size as redis.conf writes it: 123, 1k (1000), 1kb (1024), m, mb, g, gb. */
static int parse_mem(const char *s, size_t n, size_t *out)
{
    static const struct {
        const char *unit;
        unsigned long long mul;
    } units[] = {{"", 1},           {"b", 1},       {"k", 1000},       {"kb", 1024},
                 {"m", 1000000},    {"mb", 1 << 20}, {"g", 1000000000}, {"gb", 1ull << 30}};
    unsigned long long v = 0;
    size_t i = 0, u;

    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (v > (ULLONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (unsigned long long)(s[i++] - '0');
    }
    if (i == 0)
        return -1;
    for (u = 0; u < sizeof units / sizeof units[0]; u++) {
        if (n - i == strlen(units[u].unit) && strncasecmp(s + i, units[u].unit, n - i) == 0) {
            if (v > SIZE_MAX / units[u].mul)
                return -1;
            *out = (size_t)(v * units[u].mul);
            return 0;
        }
    }
    return -1;
}

int pubsub_parse_limits(const char *text, pubsub_limits *out)
{
    const char *w[4];
    size_t wl[4], n = 0;
    const char *p = text;
    pubsub_limits lim = {0, 0, 0};
    size_t secs;

    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        if (n == 3)
            return -1;
        w[n] = p;
        while (*p && *p != ' ')
            p++;
        wl[n] = (size_t)(p - w[n]);
        n++;
    }
    if (n != 1 && n != 3)
        return -1;
    if (parse_mem(w[0], wl[0], &lim.hard) < 0)
        return -1;
    if (n == 3) {
        char *end;
        if (parse_mem(w[1], wl[1], &lim.soft) < 0 || w[2][0] < '0' || w[2][0] > '9')
            return -1;
        secs = strtoul(w[2], &end, 10);
        if (end != w[2] + wl[2] || secs > 86400 * 365)
            return -1;
        lim.soft_seconds = (int)secs;
    }
    *out = lim;
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * store.c - sharded hash table with lazy expiry (see store.h).
 *
 * Why a mutex per shard: every command is a handful of pointer chases and a
 * memcpy, so critical sections are a few hundred nanoseconds.  With S shards
 * and W workers, two commands collide only when they hash to the same shard
 * (about W/S of the time: 4/256 here), so an uncontended mutex -- one atomic
 * exchange to lock and one to unlock -- is nearly all the cost.  A single
 * global lock would serialise the workers; a reader/writer lock costs more
 * than a mutex even uncontended, and GET is not read-only anyway (lazy expiry
 * deletes); lock-free tables need safe memory reclamation (hazard pointers or
 * epochs) for values that SET frees while another worker reads them.  Each
 * shard sits on its own cache lines so the shards' locks do not false-share.
 *
 * Hashing: SipHash-1-3 with a random key chosen at startup, so clients cannot
 * pick keys that all land in one chain (hash flooding).
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define KV_SHARDS 256 /* power of two */
#define KV_MIN_BUCKETS 16

typedef struct kv_entry {
    struct kv_entry *next;
    uint64_t hash;
    int64_t expire_at; /* 0: never */
    size_t klen, vlen;
    char data[]; /* key, then value */
} kv_entry;

typedef struct kv_shard {
    alignas(64) pthread_mutex_t lock; /* guards every field below */
    kv_entry **buckets;
    size_t nbuckets; /* power of two, or 0 before the first insert */
    size_t count;
    size_t sweep; /* next bucket the insert-time sweep looks at */
} kv_shard;

struct kv_store {
    uint64_t k0, k1; /* SipHash key */
    kv_shard shards[KV_SHARDS];
};

/* ------------------------------------------------------------- hashing */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 (one compression round, three finalisation rounds). */
static uint64_t siphash13(const kv_store *s, const char *in, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ s->k0, v1 = 0x646f72616e646f6dULL ^ s->k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ s->k0, v3 = 0x7465646279746573ULL ^ s->k1;
    uint64_t b = (uint64_t)n << 56, m;
    size_t i, left = n & 7, end = n - left;
    int r;

    for (i = 0; i < end; i += 8) {
        memcpy(&m, in + i, 8); /* little-endian hosts; the hash need not be portable */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (i = 0; i < left; i++)
        b |= (uint64_t)(unsigned char)in[end + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (r = 0; r < 3; r++)
        SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* --------------------------------------------------------------- table */

int64_t kv_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

kv_store *kv_store_new(void)
{
    kv_store *s = aligned_alloc(64, (sizeof *s + 63) / 64 * 64);
    int i;

    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    if (getrandom(&s->k0, sizeof s->k0, 0) != sizeof s->k0 ||
        getrandom(&s->k1, sizeof s->k1, 0) != sizeof s->k1) {
        s->k0 = (uint64_t)kv_now_ms() * 0x9e3779b97f4a7c15ULL; /* no entropy: still works */
        s->k1 = (uint64_t)(uintptr_t)s;
    }
    for (i = 0; i < KV_SHARDS; i++)
        pthread_mutex_init(&s->shards[i].lock, NULL);
    return s;
}

static void free_chain(kv_entry *e)
{
    kv_entry *next;

    for (; e; e = next) {
        next = e->next;
        free(e);
    }
}

/* Drop every entry of a shard (lock held). */
static void shard_clear(kv_shard *sh)
{
    size_t i;

    for (i = 0; i < sh->nbuckets; i++)
        free_chain(sh->buckets[i]);
    free(sh->buckets);
    sh->buckets = NULL;
    sh->nbuckets = 0;
    sh->count = 0;
    sh->sweep = 0;
}

void kv_store_free(kv_store *s)
{
    int i;

    if (!s)
        return;
    for (i = 0; i < KV_SHARDS; i++) {
        shard_clear(&s->shards[i]);
        pthread_mutex_destroy(&s->shards[i].lock);
    }
    free(s);
}

/* The shard for a hash, locked.  High bits pick the shard, low bits the
 * bucket, so the two choices are independent. */
static kv_shard *lock_shard(kv_store *s, uint64_t h)
{
    kv_shard *sh = &s->shards[h >> 56 & (KV_SHARDS - 1)];

    pthread_mutex_lock(&sh->lock);
    return sh;
}

static bool expired(const kv_entry *e, int64_t now)
{
    return e->expire_at != 0 && e->expire_at <= now;
}

/* Find key; removes it and returns NULL if it has expired.  *link is set to
 * the pointer that points at the result (for unlinking).  Lock held. */
static kv_entry *find(kv_shard *sh, uint64_t h, const char *key, size_t klen, kv_entry ***link)
{
    kv_entry **pp, *e;

    if (sh->nbuckets == 0)
        return NULL;
    for (pp = &sh->buckets[h & (sh->nbuckets - 1)]; (e = *pp) != NULL; pp = &e->next) {
        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0)
            break;
    }
    if (e && e->expire_at != 0 && expired(e, kv_now_ms())) {
        *pp = e->next;
        free(e);
        sh->count--;
        return NULL;
    }
    if (link)
        *link = pp;
    return e;
}

/* Double the bucket array (lock held); on no memory the chains just grow. */
static void grow(kv_shard *sh)
{
    size_t n = sh->nbuckets ? sh->nbuckets * 2 : KV_MIN_BUCKETS, i;
    kv_entry **b = calloc(n, sizeof(kv_entry *)), *e, *next;

    if (!b)
        return;
    for (i = 0; i < sh->nbuckets; i++) {
        for (e = sh->buckets[i]; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = n;
    sh->sweep = 0;
}

/* Reclaim expired entries of one bucket, round robin (lock held). */
static void sweep_one(kv_shard *sh)
{
    kv_entry **pp, *e;
    int64_t now = 0;

    if (sh->nbuckets == 0)
        return;
    sh->sweep = (sh->sweep + 1) & (sh->nbuckets - 1);
    for (pp = &sh->buckets[sh->sweep]; (e = *pp) != NULL;) {
        if (e->expire_at != 0 && now == 0)
            now = kv_now_ms();
        if (expired(e, now)) {
            *pp = e->next;
            free(e);
            sh->count--;
        } else {
            pp = &e->next;
        }
    }
}

static kv_entry *new_entry(uint64_t h, const char *key, size_t klen, const char *val, size_t vlen,
                           int64_t expire_at)
{
    kv_entry *e = malloc(sizeof *e + klen + vlen);

    if (!e)
        return NULL;
    e->hash = h;
    e->expire_at = expire_at;
    e->klen = klen;
    e->vlen = vlen;
    memcpy(e->data, key, klen);
    if (vlen)
        memcpy(e->data + klen, val, vlen);
    return e;
}

/* Put e in place of old (at *link), or add it (lock held). */
static void install(kv_shard *sh, kv_entry *e, kv_entry *old, kv_entry **link)
{
    if (old) {
        e->next = old->next;
        *link = e;
        free(old);
        return;
    }
    if (sh->count >= sh->nbuckets)
        grow(sh);
    e->next = sh->buckets[e->hash & (sh->nbuckets - 1)];
    sh->buckets[e->hash & (sh->nbuckets - 1)] = e;
    sh->count++;
}

int kv_get(kv_store *s, const char *key, size_t klen, kv_value_fn fn, void *ctx)
{
    uint64_t h = siphash13(s, key, klen);
    kv_shard *sh = lock_shard(s, h);
    kv_entry *e = find(sh, h, key, klen, NULL);

    if (e)
        fn(e->data + e->klen, e->vlen, ctx);
    pthread_mutex_unlock(&sh->lock);
    return e != NULL;
}

int kv_set(kv_store *s, const char *key, size_t klen, const char *val, size_t vlen,
           int64_t expire_at, int flags)
{
    uint64_t h = siphash13(s, key, klen);
    kv_entry *e = new_entry(h, key, klen, val, vlen, expire_at), *old, **link = NULL;
    kv_shard *sh;

    if (!e) /* allocate before locking: malloc stays out of the critical section */
        return -ENOMEM;
    sh = lock_shard(s, h);
    old = find(sh, h, key, klen, &link);
    if ((flags & KV_SET_NX && old) || (flags & KV_SET_XX && !old)) {
        pthread_mutex_unlock(&sh->lock);
        free(e);
        return 0;
    }
    install(sh, e, old, link);
    sweep_one(sh);
    pthread_mutex_unlock(&sh->lock);
    return 1;
}

int kv_del(kv_store *s, const char *key, size_t klen)
{
    uint64_t h = siphash13(s, key, klen);
    kv_shard *sh = lock_shard(s, h);
    kv_entry **link = NULL, *e = find(sh, h, key, klen, &link);

    if (e) {
        *link = e->next;
        free(e);
        sh->count--;
    }
    pthread_mutex_unlock(&sh->lock);
    return e != NULL;
}

int kv_exists(kv_store *s, const char *key, size_t klen)
{
    uint64_t h = siphash13(s, key, klen);
    kv_shard *sh = lock_shard(s, h);
    int found = find(sh, h, key, klen, NULL) != NULL;

    pthread_mutex_unlock(&sh->lock);
    return found;
}

int kv_parse_i64(const char *p, size_t n, int64_t *out)
{
    uint64_t v = 0, lim;
    bool neg = false;
    size_t i = 0;

    if (n == 0 || n > 20)
        return -EINVAL;
    if (p[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == n || (p[i] == '0' && n - i > 1) || (neg && p[i] == '0'))
        return -EINVAL;
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        if (v > (lim - (uint64_t)(p[i] - '0')) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int kv_incr(kv_store *s, const char *key, size_t klen, int64_t delta, int64_t *out)
{
    uint64_t h = siphash13(s, key, klen);
    kv_entry **link = NULL, *old, *e;
    kv_shard *sh;
    int64_t cur = 0;
    char num[24];
    int n, rc = 0;

    sh = lock_shard(s, h);
    old = find(sh, h, key, klen, &link);
    if (old && kv_parse_i64(old->data + old->klen, old->vlen, &cur) < 0) {
        rc = -EINVAL;
        goto out_unlock;
    }
    if ((delta > 0 && cur > INT64_MAX - delta) || (delta < 0 && cur < INT64_MIN - delta)) {
        rc = -ERANGE;
        goto out_unlock;
    }
    cur += delta;
    n = snprintf(num, sizeof num, "%lld", (long long)cur);
    if (old && old->vlen >= (size_t)n && old->vlen - (size_t)n < 8) {
        memcpy(old->data + old->klen, num, (size_t)n); /* rewrite in place */
        old->vlen = (size_t)n;
    } else if ((e = new_entry(h, key, klen, num, (size_t)n, old ? old->expire_at : 0)) != NULL) {
        install(sh, e, old, link);
    } else {
        rc = -ENOMEM;
        goto out_unlock;
    }
    *out = cur;
out_unlock:
    pthread_mutex_unlock(&sh->lock);
    return rc;
}

uint64_t kv_size(kv_store *s)
{
    uint64_t n = 0;
    int i;

    for (i = 0; i < KV_SHARDS; i++) {
        pthread_mutex_lock(&s->shards[i].lock);
        n += s->shards[i].count;
        pthread_mutex_unlock(&s->shards[i].lock);
    }
    return n;
}

void kv_flush(kv_store *s)
{
    int i;

    for (i = 0; i < KV_SHARDS; i++) {
        pthread_mutex_lock(&s->shards[i].lock);
        shard_clear(&s->shards[i]);
        pthread_mutex_unlock(&s->shards[i].lock);
    }
}

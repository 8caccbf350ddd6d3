/* SPDX-License-Identifier: MIT */
/*
 * store.h - the key/value store shared by every worker of poolsrv-kv.
 *
 * Keys and values are byte strings.  A key may carry an expiry time; an
 * expired key is removed when it is next touched (lazy expiry), and inserts
 * also sweep one bucket of their shard, so keys nobody reads again are
 * reclaimed over time.
 *
 * Concurrency: the table is split into KV_SHARDS shards by key hash, each a
 * chained hash table behind its own mutex.  All functions may be called from
 * any thread.  Multi-key commands (MGET, MSET, DEL k1 k2) take one shard at a
 * time, so they are atomic per key, not as a whole.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv_store kv_store;

#define KV_SET_NX 1 /* only if the key does not exist */
#define KV_SET_XX 2 /* only if the key exists */

/* A new empty store, or NULL (out of memory). */
kv_store *kv_store_new(void);
void kv_store_free(kv_store *s); /* NULL: no-op */

/* Milliseconds on the monotonic clock, the time base of expire_at. */
int64_t kv_now_ms(void);

/* Look a key up; if it is present, call fn with its value.  fn runs with
 * the shard locked, so it must be short and must not call back into the
 * store.  Returns 1 if found, 0 if not. */
typedef void (*kv_value_fn)(const char *val, size_t len, void *ctx);
int kv_get(kv_store *s, const char *key, size_t klen, kv_value_fn fn, void *ctx);

/* Store a value.  expire_at: kv_now_ms()-based deadline in ms, or 0 for none.
 * flags: KV_SET_NX / KV_SET_XX.  Returns 1 if stored, 0 if the NX/XX
 * condition refused it, -ENOMEM. */
int kv_set(kv_store *s, const char *key, size_t klen, const char *val, size_t vlen,
           int64_t expire_at, int flags);

/* Remove a key; returns 1 if it existed. */
int kv_del(kv_store *s, const char *key, size_t klen);

/* Whether the key exists (1 or 0). */
int kv_exists(kv_store *s, const char *key, size_t klen);

/* Add delta to the integer stored at key (missing: 0), keeping its expiry.
 * Returns 0 with *out set, -EINVAL if the value is not a 64-bit decimal
 * integer, -ERANGE on overflow, -ENOMEM. */
int kv_incr(kv_store *s, const char *key, size_t klen, int64_t delta, int64_t *out);

/* Keys stored, including expired ones not yet reclaimed. */
uint64_t kv_size(kv_store *s);

/* Remove every key. */
void kv_flush(kv_store *s);

/* Strict decimal int64 ("-12", not "+12", " 12", "012" or "1.0"). */
int kv_parse_i64(const char *p, size_t n, int64_t *out);

#endif

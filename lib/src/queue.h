/* SPDX-License-Identifier: MIT */
/*
 * queue.h - bounded multi-producer multi-consumer FIFO of pointers (private).
 *
 * One mutex guards the ring; consumers sleep on a condition variable.  A
 * push wakes one sleeper only when it finds the queue empty; a consumer
 * that leaves items behind wakes the next one (a baton), so a burst costs
 * as many wake-ups as consumers it really needs, never a broadcast except
 * at shutdown.  Producers either block (ps__queue_push) or fail fast
 * (ps__queue_try_push) and may ask for a callback when space frees, which is
 * how the reactor thread waits for space without blocking.
 */
#ifndef PS_QUEUE_H
#define PS_QUEUE_H

#include <stddef.h>

typedef struct ps_queue ps_queue;

/* A link the item carries for ps__queue_push_spill (no allocation). */
typedef struct ps_qlink {
    struct ps_qlink *next;
    void *item;
} ps_qlink;

/* Called (with the queue lock released) by the consumer whose pop frees the
 * first slot after a failed ps__queue_try_push.  Must not block. */
typedef void (*ps_queue_space_fn)(void *arg);

/* For consumers that wait somewhere other than in ps__queue_pop (the event
 * style's workers wait in epoll_wait and only ever try_pop): called, with
 * the lock released, whenever ps__queue_pop would wake a sleeper - a push
 * found the queue empty, a pop left items behind - and at shutdown.  It is
 * called without knowing whether anyone waits, so it must be cheap when
 * nobody does, and must not block.  Set before the queue is shared. */
typedef void (*ps_queue_ready_fn)(void *arg);

/* capacity >= 1.  Returns NULL on ENOMEM. */
ps_queue *ps__queue_new(size_t capacity, ps_queue_space_fn on_space, void *arg);
void ps__queue_set_ready_fn(ps_queue *q, ps_queue_ready_fn fn, void *arg);
/* The queue must have no waiters left (shut down and joined). NULL ok. */
void ps__queue_free(ps_queue *q);

/* Blocks while full.  Returns 0, or -ESHUTDOWN once the queue is shut down. */
int ps__queue_push(ps_queue *q, void *item);
/* Returns 0, -EAGAIN if full (then on_space fires once a slot frees), or
 * -ESHUTDOWN. */
int ps__queue_try_push(ps_queue *q, void *item);
/* Never blocks, never fails: past capacity the item waits in an overflow
 * list threaded through its own link, popped after the ring.  Only for
 * items that exist anyway and can be queued at most once each (a
 * connection that an outsider's request made runnable), so the overflow is
 * bounded by their number, not by the rate of requests. */
void ps__queue_push_spill(ps_queue *q, ps_qlink *link, void *item);
/* Blocks while empty.  Returns 0 with *item set, or -ESHUTDOWN when the
 * queue is shut down and empty (items queued before shutdown are still
 * delivered). */
int ps__queue_pop(ps_queue *q, void **item);
/* Non-blocking pop: 0, or -EAGAIN if empty, or -ESHUTDOWN. */
int ps__queue_try_pop(ps_queue *q, void **item);

/* Wake every waiter; later pushes fail, pops drain what is left. */
void ps__queue_shutdown(ps_queue *q);

size_t ps__queue_len(ps_queue *q);
size_t ps__queue_capacity(const ps_queue *q);
size_t ps__queue_high_water(ps_queue *q);

#endif

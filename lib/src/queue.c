/* SPDX-License-Identifier: MIT */
/*
 * queue.c - bounded MPMC queue of pointers (see queue.h).
 *
 * A ring under one mutex.  The critical sections are a few loads and stores;
 * condition variables are signalled after the unlock and only when a thread
 * is known to sleep on them, and consumers are woken one at a time (see
 * queue.h), so a busy pool takes no wake-up per item.
 */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct ps_queue {
    pthread_mutex_t lock; /* guards every field below except cap/on_space/arg */
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    void **ring;
    size_t cap;
    size_t head;
    size_t len;
    size_t high;
    int consumers_waiting;
    int producers_waiting;
    bool shutdown;
    bool space_wanted; /* a try_push failed: call on_space when a slot frees */
    ps_queue_space_fn on_space;
    void *arg;
    ps_queue_ready_fn on_ready; /* consumers that wait elsewhere (see queue.h) */
    void *ready_arg;
    ps_qlink *spill_head, *spill_tail; /* ps__queue_push_spill past capacity */
};

ps_queue *ps__queue_new(size_t capacity, ps_queue_space_fn on_space, void *arg)
{
    ps_queue *q;

    if (capacity == 0)
        return NULL;
    q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->ring = calloc(capacity, sizeof *q->ring);
    if (!q->ring)
        goto out_free_q;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        goto out_free_ring;
    if (pthread_cond_init(&q->not_empty, NULL) != 0)
        goto out_destroy_lock;
    if (pthread_cond_init(&q->not_full, NULL) != 0)
        goto out_destroy_not_empty;
    q->cap = capacity;
    q->on_space = on_space;
    q->arg = arg;
    return q;

out_destroy_not_empty:
    pthread_cond_destroy(&q->not_empty);
out_destroy_lock:
    pthread_mutex_destroy(&q->lock);
out_free_ring:
    free(q->ring);
out_free_q:
    free(q);
    return NULL;
}

void ps__queue_free(ps_queue *q)
{
    if (!q)
        return;
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q);
}

void ps__queue_set_ready_fn(ps_queue *q, ps_queue_ready_fn fn, void *arg)
{
    q->on_ready = fn;
    q->ready_arg = arg;
}

/* Append under the lock; returns whether a consumer should be woken. */
static bool enqueue_locked(ps_queue *q, void *item)
{
    q->ring[(q->head + q->len) % q->cap] = item;
    q->len++;
    if (q->len > q->high)
        q->high = q->len;
    /* One wake-up per burst: only the push that finds the queue empty
     * wakes a sleeper; the consumer it wakes passes the baton on if it
     * leaves items behind (dequeue_locked). */
    return q->len == 1;
}

/* After a push that found the queue empty, or a pop that left items behind
 * (the baton); the lock is released. */
static void notify_item(ps_queue *q, bool became_nonempty, bool cond_sleepers)
{
    if (!became_nonempty)
        return;
    if (cond_sleepers)
        pthread_cond_signal(&q->not_empty);
    if (q->on_ready)
        q->on_ready(q->ready_arg);
}

int ps__queue_push(ps_queue *q, void *item)
{
    bool wake, sleepers;

    pthread_mutex_lock(&q->lock);
    while (q->len == q->cap && !q->shutdown) {
        q->producers_waiting++;
        pthread_cond_wait(&q->not_full, &q->lock);
        q->producers_waiting--;
    }
    if (q->shutdown) {
        pthread_mutex_unlock(&q->lock);
        return -ESHUTDOWN;
    }
    wake = enqueue_locked(q, item);
    sleepers = q->consumers_waiting > 0;
    pthread_mutex_unlock(&q->lock);
    notify_item(q, wake, sleepers);
    return 0;
}

void ps__queue_push_spill(ps_queue *q, ps_qlink *link, void *item)
{
    bool wake, sleepers;

    pthread_mutex_lock(&q->lock);
    if (q->len < q->cap) { /* then the overflow is empty (see dequeue_locked) */
        wake = enqueue_locked(q, item);
    } else {
        link->item = item;
        link->next = NULL;
        if (q->spill_tail)
            q->spill_tail->next = link;
        else
            q->spill_head = link;
        q->spill_tail = link;
        wake = false; /* the ring is full: its consumers pass the baton */
    }
    sleepers = q->consumers_waiting > 0;
    pthread_mutex_unlock(&q->lock);
    notify_item(q, wake, sleepers);
}

int ps__queue_try_push(ps_queue *q, void *item)
{
    bool wake, sleepers;

    pthread_mutex_lock(&q->lock);
    if (q->shutdown) {
        pthread_mutex_unlock(&q->lock);
        return -ESHUTDOWN;
    }
    if (q->len == q->cap) {
        q->space_wanted = true;
        pthread_mutex_unlock(&q->lock);
        return -EAGAIN;
    }
    wake = enqueue_locked(q, item);
    sleepers = q->consumers_waiting > 0;
    pthread_mutex_unlock(&q->lock);
    notify_item(q, wake, sleepers);
    return 0;
}

/* Remove the head under the lock and tell the caller whom to notify.  The
 * slot it frees goes to the first overflow item, if any, so the overflow
 * keeps its place in line and is non-empty only while the ring is full. */
static void *dequeue_locked(ps_queue *q, bool *wake_consumer, bool *wake_producer,
                            bool *fire_space)
{
    void *item = q->ring[q->head];

    q->head = (q->head + 1) % q->cap;
    q->len--;
    if (q->spill_head) {
        ps_qlink *l = q->spill_head;
        q->spill_head = l->next;
        if (!q->spill_head)
            q->spill_tail = NULL;
        enqueue_locked(q, l->item);
        *wake_consumer = true;
        *wake_producer = false;
        *fire_space = false; /* still full */
        return item;
    }
    *wake_consumer = q->len > 0; /* the baton */
    *wake_producer = q->producers_waiting > 0;
    *fire_space = q->space_wanted;
    q->space_wanted = false;
    return item;
}

static void after_dequeue(ps_queue *q, bool wake_consumer, bool cond_sleepers, bool wake_producer,
                          bool fire_space)
{
    if (wake_consumer)
        notify_item(q, true, cond_sleepers);
    if (wake_producer)
        pthread_cond_signal(&q->not_full);
    if (fire_space && q->on_space)
        q->on_space(q->arg);
}

int ps__queue_pop(ps_queue *q, void **item)
{
    bool wake_consumer, cond_sleepers, wake_producer, fire_space;

    pthread_mutex_lock(&q->lock);
    while (q->len == 0 && !q->shutdown) {
        q->consumers_waiting++;
        pthread_cond_wait(&q->not_empty, &q->lock);
        q->consumers_waiting--;
    }
    if (q->len == 0) {
        pthread_mutex_unlock(&q->lock);
        return -ESHUTDOWN;
    }
    *item = dequeue_locked(q, &wake_consumer, &wake_producer, &fire_space);
    cond_sleepers = q->consumers_waiting > 0;
    pthread_mutex_unlock(&q->lock);
    after_dequeue(q, wake_consumer, cond_sleepers, wake_producer, fire_space);
    return 0;
}

int ps__queue_try_pop(ps_queue *q, void **item)
{
    bool wake_consumer, cond_sleepers, wake_producer, fire_space;

    pthread_mutex_lock(&q->lock);
    if (q->len == 0) {
        int rc = q->shutdown ? -ESHUTDOWN : -EAGAIN;
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    *item = dequeue_locked(q, &wake_consumer, &wake_producer, &fire_space);
    cond_sleepers = q->consumers_waiting > 0;
    pthread_mutex_unlock(&q->lock);
    after_dequeue(q, wake_consumer, cond_sleepers, wake_producer, fire_space);
    return 0;
}

void ps__queue_shutdown(ps_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->shutdown = true;
    pthread_mutex_unlock(&q->lock);
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    if (q->on_ready)
        q->on_ready(q->ready_arg);
}

size_t ps__queue_len(ps_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t ps__queue_capacity(const ps_queue *q)
{
    return q->cap;
}

size_t ps__queue_high_water(ps_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->lock);
    n = q->high;
    pthread_mutex_unlock(&q->lock);
    return n;
}

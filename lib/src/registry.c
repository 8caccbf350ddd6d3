/* SPDX-License-Identifier: MIT */
/*
 * registry.c - the set of live connections, and per-client counts.
 *
 * The registry lets the reactor reach every connection at the drain
 * deadline and in the timeout scan.  It is touched when a connection opens
 * and closes, never per message, so one mutex (reg_lock) is enough.  A
 * connection leaves the registry before its descriptor is closed, so
 * nothing here can shut down a reused descriptor number.
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define PS_CLIENT_BUCKETS 4096

/* One client address with open connections (max_per_client). */
struct ps_client {
    struct ps_client *next;
    int family;
    int n;
    unsigned char ip[16];
};

static int client_key(const ps_conn *c, unsigned char ip[16])
{
    if (c->peer.ss_family == AF_INET) {
        memset(ip, 0, 16);
        memcpy(ip, &((const struct sockaddr_in *)&c->peer)->sin_addr, 4);
        return AF_INET;
    }
    if (c->peer.ss_family == AF_INET6) {
        memcpy(ip, &((const struct sockaddr_in6 *)&c->peer)->sin6_addr, 16);
        return AF_INET6;
    }
    return 0; /* Unix sockets: no address to limit by */
}

static struct ps_client **bucket(ps_server *s, int family, const unsigned char ip[16])
{
    uint32_t h = 2166136261u ^ (uint32_t)family; /* FNV-1a */
    int i;

    for (i = 0; i < 16; i++)
        h = (h ^ ip[i]) * 16777619u;
    return &s->clients[h % PS_CLIENT_BUCKETS];
}

static struct ps_client **find(ps_server *s, int family, const unsigned char ip[16])
{
    struct ps_client **pp = bucket(s, family, ip);

    while (*pp && ((*pp)->family != family || memcmp((*pp)->ip, ip, 16) != 0))
        pp = &(*pp)->next;
    return pp;
}

/* Count c against its client; -EUSERS past max_per_client.  reg_lock held.
 * c remembers that it holds a slot, and its peer address (the key) does not
 * change afterwards, so the release finds the same entry. */
static int client_acquire(ps_server *s, ps_conn *c)
{
    unsigned char ip[16];
    int family = client_key(c, ip);
    struct ps_client **pp, *cl;

    if (!s->clients || !family)
        return 0;
    pp = find(s, family, ip);
    if (*pp) {
        if ((*pp)->n >= s->cfg.max_per_client)
            return -EUSERS;
        (*pp)->n++;
        c->client_counted = true;
        return 0;
    }
    cl = calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    cl->family = family;
    cl->n = 1;
    memcpy(cl->ip, ip, 16);
    *pp = cl;
    c->client_counted = true;
    return 0;
}

/* reg_lock held. */
static void client_release(ps_server *s, ps_conn *c)
{
    unsigned char ip[16];
    int family = client_key(c, ip);
    struct ps_client **pp, *cl;

    if (!c->client_counted)
        return;
    c->client_counted = false;
    pp = find(s, family, ip);
    cl = *pp;
    assert(cl && cl->n > 0); /* counted under this very key */
    if (cl && --cl->n == 0) {
        *pp = cl->next;
        free(cl);
    }
}

int ps__registry_init(ps_server *s)
{
    pthread_mutex_init(&s->reg_lock, NULL);
    if (s->cfg.max_per_client > 0) {
        s->clients = calloc(PS_CLIENT_BUCKETS, sizeof(struct ps_client *));
        if (!s->clients)
            return -ENOMEM;
    }
    return 0;
}

void ps__registry_fini(ps_server *s)
{
    int i;

    if (s->clients) {
        for (i = 0; i < PS_CLIENT_BUCKETS; i++) {
            while (s->clients[i]) {
                struct ps_client *cl = s->clients[i];
                s->clients[i] = cl->next;
                free(cl);
            }
        }
        free(s->clients);
    }
    pthread_mutex_destroy(&s->reg_lock);
}

/* Returns 0, or -EMFILE (max_connections) / -EUSERS (max_per_client) /
 * -ENOMEM, in which case c is not registered.  A connection that still
 * expects a PROXY header (PS_CF_PROXY) is not counted against its client
 * here: its peer is the load balancer, and the client it stands for is
 * counted by ps__registry_count_client once the header names it. */
int ps__registry_add(ps_server *s, ps_conn *c)
{
    int rc = 0;

    pthread_mutex_lock(&s->reg_lock);
    if (s->reg_closed)
        rc = -ESHUTDOWN; /* the drain is over: nobody would serve it */
    else if (c->outbound)
        rc = 0; /* the limits are for clients */
    else if (s->cfg.max_connections > 0 && s->reg_count >= (size_t)s->cfg.max_connections)
        rc = -EMFILE;
    else if (!(c->flags & PS_CF_PROXY))
        rc = client_acquire(s, c);
    if (rc == 0) {
        c->reg_prev = NULL;
        c->reg_next = s->reg_head;
        if (s->reg_head)
            s->reg_head->reg_prev = c;
        s->reg_head = c;
        s->reg_count++;
    }
    pthread_mutex_unlock(&s->reg_lock);
    return rc;
}

/* "proxy:" listeners, the owning worker, once the header has set c->peer
 * (to the client it names, or left it the load balancer's for LOCAL):
 * count c against that client.  Returns 0, or -EUSERS past max_per_client /
 * -ENOMEM; c stays registered either way (the caller closes it, and the
 * release then finds nothing counted). */
int ps__registry_count_client(ps_server *s, ps_conn *c)
{
    int rc;

    if (!s->clients)
        return 0;
    pthread_mutex_lock(&s->reg_lock);
    rc = client_acquire(s, c);
    pthread_mutex_unlock(&s->reg_lock);
    return rc;
}

void ps__registry_remove(ps_server *s, ps_conn *c)
{
    bool last;

    pthread_mutex_lock(&s->reg_lock);
    if (c->reg_prev)
        c->reg_prev->reg_next = c->reg_next;
    else
        s->reg_head = c->reg_next;
    if (c->reg_next)
        c->reg_next->reg_prev = c->reg_prev;
    client_release(s, c);
    last = --s->reg_count == 0;
    pthread_mutex_unlock(&s->reg_lock);
    if (last && atomic_load_explicit(&s->stopping, memory_order_acquire))
        ps__reactor_wake(s); /* the drain may be complete */
}

/* Reactor, draining: true (and no connection may join any more) once the
 * registry is empty.  A ps_server_connect racing the end of the drain is
 * refused rather than registered on a server whose workers are leaving. */
bool ps__registry_close_if_empty(ps_server *s)
{
    bool empty;

    pthread_mutex_lock(&s->reg_lock);
    empty = s->reg_count == 0;
    if (empty)
        s->reg_closed = true;
    pthread_mutex_unlock(&s->reg_lock);
    return empty;
}

size_t ps__registry_count(ps_server *s)
{
    size_t n;

    pthread_mutex_lock(&s->reg_lock);
    n = s->reg_count;
    pthread_mutex_unlock(&s->reg_lock);
    return n;
}

/* Drain deadline: shut every remaining connection down.  Workers blocked on
 * one wake up with end of stream; idle ones become readable and get a last
 * turn. */
void ps__registry_shutdown_all(ps_server *s)
{
    ps_conn *c;
    size_t n = 0;

    pthread_mutex_lock(&s->reg_lock);
    for (c = s->reg_head; c; c = c->reg_next) {
        atomic_store_explicit(&c->forced, true, memory_order_relaxed);
        shutdown(c->fd, SHUT_RDWR);
        n++;
    }
    pthread_mutex_unlock(&s->reg_lock);
    if (n)
        ps__log(s, PS_LOG_WARN, "drain deadline passed: shutting down %zu connection(s)", n);
}

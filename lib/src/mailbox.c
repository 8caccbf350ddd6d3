/* SPDX-License-Identifier: MIT */
/*
 * mailbox.c - the calls other threads make on an event-style connection:
 * pause, resume and post.  None of them touches the socket or the epoll
 * set; each leaves a request that the connection's owner applies in order,
 * serialized with the callbacks (ps__conn_request in conn.c makes an idle
 * connection runnable; event.c's open_mailbox applies the requests).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

/* Event style only: a blocking serve call reads when it wants to, and its
 * connection has no mailbox turn. */
void ps_conn_pause_read(ps_conn *c)
{
    if (!c->srv->event_style)
        return;
    /* Takes effect at the owner's next arm; an event already armed for
     * input costs at most one turn that reads nothing. */
    atomic_store_explicit(&c->user_paused, true, memory_order_relaxed);
}

void ps_conn_resume_read(ps_conn *c)
{
    if (!c->srv->event_style)
        return;
    if (atomic_exchange_explicit(&c->user_paused, false, memory_order_relaxed))
        ps__conn_request(c, 0, PS_MAIL_RESUME, NULL);
}

ps_conn_ref ps_conn_ref_of(ps_conn *c)
{
    ps_conn_ref r = {.conn = c, .id = c->id};

    return r;
}

int ps_conn_post(ps_conn_ref ref, ps_post_fn fn, void *arg)
{
    struct ps_post *p;
    int rc;

    if (!ref.conn || !fn || !ref.conn->srv->event_style)
        return -EINVAL;
    if (!ref.id)
        return -ESHUTDOWN;
    p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    p->fn = fn;
    p->arg = arg;
    rc = ps__conn_request(ref.conn, ref.id, 0, p);
    if (rc < 0)
        free(p);
    return rc;
}

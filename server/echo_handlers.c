/* SPDX-License-Identifier: MIT */
/* echo_handlers.c - echo in both handler styles (see echo_handlers.h). */
#include "echo_handlers.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

void echo_serve_held(ps_conn *c, void *user)
{
    char buf[16384];
    ssize_t n;

    (void)user;
    while ((n = ps_conn_read(c, buf, sizeof buf)) > 0) {
        if (ps_conn_write_all(c, buf, (size_t)n) < 0)
            return;
    }
}

/* Whether a read now would not wait: bytes, end of stream or an error are
 * there for ps_conn_read to report. */
static bool input_ready(ps_conn *c)
{
    char b;
    ssize_t n = recv(ps_conn_fd(c), &b, 1, MSG_PEEK | MSG_DONTWAIT);

    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Echo holds no partial message, so the connection can be parked whenever
 * the socket is empty: a new one before its first byte (so silent clients
 * hold no worker), a served one as soon as it has nothing more to say.
 * Otherwise serve reads (a parked connection is called back when bytes or
 * end of stream arrived, and with bytes that came with a PROXY header),
 * echoes while more is waiting, then parks.  A worker is held only while
 * bytes flow, so 64 workers serve 1,000 clients (they served 64, the rest
 * starving in the queue, when this read until end of stream). */
void echo_serve(ps_conn *c, void *user)
{
    static char seen; /* ps_conn_data: this connection was served before */
    char buf[16384];
    ssize_t n;

    (void)user;
    if (ps_conn_data(c) != &seen) {
        ps_conn_set_data(c, &seen);
        if (!input_ready(c)) {
            ps_conn_park(c);
            return;
        }
    }
    do {
        n = ps_conn_read(c, buf, sizeof buf);
        if (n <= 0 || ps_conn_write_all(c, buf, (size_t)n) < 0)
            return; /* end of stream, timeout or error: the connection closes */
    } while (input_ready(c));
    ps_conn_park(c); /* wait in epoll, not on a worker */
}

size_t echo_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    if (ps_conn_send(c, data, len) < 0)
        ps_conn_close(c);
    return len;
}

void echo_on_datagram(ps_dgram *d, const void *data, size_t len, const struct sockaddr *from,
                      void *user)
{
    (void)from;
    (void)user;
    ps_dgram_reply(d, data, len); /* a full socket buffer drops it, as UDP may */
}

void echo_handler_init(ps_handler *h, bool event_style)
{
    memset(h, 0, sizeof *h);
    if (event_style)
        h->on_data = echo_on_data;
    else
        h->serve = echo_serve;
    h->on_datagram = echo_on_datagram;
}

/* echo_handlers.c - echo in both handler styles (see echo_handlers.h). */
#include "echo_handlers.h"

#include <string.h>

void echo_serve(ps_conn *c, void *user)
{
    char buf[16384];
    ssize_t n;

    (void)user;
    while ((n = ps_conn_read(c, buf, sizeof buf)) > 0) {
        if (ps_conn_write_all(c, buf, (size_t)n) < 0)
            return;
    }
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

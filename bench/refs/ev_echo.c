/*
 * ev-echo - single-threaded libevent echo server: bufferevents, each input
 * buffer moved to the output buffer as it arrives.  Idiomatic and untuned:
 * note that libevent 2.1 reads at most 4 KiB per readv (strace shows four
 * readv calls per 16 KiB message), which is why it trails in bulk echo.
 *
 *   ev-echo HOST:PORT
 */
#include "ref_common.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)sa;
    (void)salen;
    (void)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ev-echo HOST:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int fd = ref_listen(argv[1], SOCK_STREAM);
    if (fd < 0)
        return 1;
    evutil_make_socket_nonblocking(fd);
    struct event_base *base = event_base_new();
    struct evconnlistener *l =
        base ? evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, SOMAXCONN, fd)
             : NULL;
    struct event *sterm = base ? evsignal_new(base, SIGTERM, on_signal, base) : NULL;
    struct event *sint = base ? evsignal_new(base, SIGINT, on_signal, base) : NULL;
    if (!l || !sterm || !sint) {
        fprintf(stderr, "ev-echo: libevent setup failed\n");
        return 1;
    }
    evsignal_add(sterm, NULL);
    evsignal_add(sint, NULL);
    ref_announce(fd);
    event_base_dispatch(base);
    /* Open bufferevents are not tracked; process exit releases them. */
    event_free(sterm);
    event_free(sint);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}

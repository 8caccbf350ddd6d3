/* SPDX-License-Identifier: MIT */
/*
 * uv-echo - single-threaded libuv echo server, the main reference: one
 * event loop, every read answered by a uv_write of the same buffer.
 *
 * Tuned as a libuv user tuning a server would: read buffers (64 KiB) are
 * recycled through a free list instead of malloc/free per read.  Freeing a
 * 64 KiB block per message lets glibc trim the heap and grow it again
 * (under strace, 2,548 brk calls beside 7,923 reads in 2 s), which cost
 * this reference 40% of its throughput before (issue 17).
 *
 *   uv-echo HOST:PORT
 */
#include "ref_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

struct wreq {
    uv_write_t req;
    uv_buf_t buf;
};

static void on_close(uv_handle_t *h)
{
    free(h);
}

#define BUF_SIZE 65536
#define FREE_MAX 1024 /* buffers kept for reuse (64 MiB at most) */

/* Single-threaded: the loop's thread is the only user. */
static void *free_bufs[FREE_MAX];
static int nfree;

static void buf_put(char *base)
{
    if (base && nfree < FREE_MAX)
        free_bufs[nfree++] = base;
    else
        free(base);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    buf->base = nfree > 0 ? free_bufs[--nfree] : malloc(BUF_SIZE);
    buf->len = buf->base ? BUF_SIZE : 0;
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    uv_handle_t *h = (uv_handle_t *)req->handle;
    buf_put(w->buf.base);
    free(w);
    if (status < 0 && !uv_is_closing(h))
        uv_close(h, on_close);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n <= 0) {
        buf_put(buf->base);
        if (n < 0 && !uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    struct wreq *w = malloc(sizeof(*w));
    if (!w) {
        buf_put(buf->base);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    w->buf = uv_buf_init(buf->base, (unsigned)n);
    if (uv_write(&w->req, s, &w->buf, 1, on_write) < 0) {
        buf_put(buf->base);
        free(w);
        uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_conn(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof(*c));
    if (!c)
        return;
    uv_tcp_init(server->loop, c);
    c->data = NULL; /* heap handle: close_any frees it */
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        uv_tcp_nodelay(c, 1);
        uv_read_start((uv_stream_t *)c, on_alloc, on_read);
    } else {
        uv_close((uv_handle_t *)c, on_close);
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_stop(sig->loop);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->data == (void *)1 ? NULL : on_close);
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uv_tcp_t server;
    uv_signal_t sterm, sint;
    if (argc != 2) {
        fprintf(stderr, "usage: uv-echo HOST:PORT\n");
        return 2;
    }
    if (ref_parse_addr(argv[1], &ss, &len) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_conn);
    if (rc < 0) {
        fprintf(stderr, "uv-echo: cannot listen on %s: %s\n", argv[1], uv_strerror(rc));
        return 1;
    }
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&server, &fd);
    /* Handles on the stack are marked so close_any does not free them. */
    server.data = sterm.data = sint.data = (void *)1;
    uv_signal_init(loop, &sterm);
    uv_signal_start(&sterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sint);
    uv_signal_start(&sint, on_signal, SIGINT);
    ref_announce(fd);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_walk(loop, close_any, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}

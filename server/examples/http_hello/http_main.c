/* SPDX-License-Identifier: MIT */
/*
 * poolsrv-http - a small HTTP/1.1 server on poolsrv's event handlers.
 *
 *   GET or HEAD /       200 "hello\n"
 *   GET or HEAD /stats  200, the server's counters (ps_server_stats) as text
 *   other paths         404;  other methods on / and /stats: 405
 *
 * Keep-alive (HTTP/1.1 by default, HTTP/1.0 with "Connection: keep-alive"),
 * pipelining (answers leave in request order: one connection's callbacks
 * never run concurrently), Content-Length bodies read and discarded.  Errors
 * (400, 413, 414, 431, 501, 505) are answered with "Connection: close" and
 * the connection is closed once the rest of the bad head has arrived.
 *
 * Each connection's parser state is allocated in on_open, kept with
 * ps_conn_set_data and freed in on_close.
 */
#include "../common.h"
#include "http_parser.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HELLO "hello\n"

/* Application state shared by all workers (the `user` pointer). */
typedef struct http_app {
    size_t max_head;
    uint64_t max_body;
    size_t high_water;              /* ps_config.out_high_water: stop answering past it */
    atomic_uint_least64_t requests; /* requests answered (any status) */
    atomic_uint_least64_t errors;   /* ... of which 4xx/5xx that closed the connection */
} http_app;

/* After an error answer, input is discarded until the end of the offending
 * head has arrived (or this much more input), and only then is the
 * connection closed: closing a socket with unread input makes the kernel
 * send RST, which can destroy the answer before the client reads it.  An
 * early error (say 505 on the request line) would otherwise race the rest of
 * the head.  A body sent after an error head is absorbed by ps_conn_close's
 * lingering close (ps_config.linger_ms). */
#define HTTP_ERROR_DRAIN (64u << 10)

/* Per-connection state. */
typedef struct http_conn {
    http_parser parser;
    bool closing;      /* answered a non-keep-alive request: discard its body, then close */
    bool draining;     /* answered an error: discard to the end of the head, then close */
    bool in_message;   /* ps_conn_message_begin is in force (a body or an error head) */
    unsigned char eol; /* blank-line scanner: 0, 1 after LF, 2 after LF CR */
    size_t drain_left; /* bytes still allowed to be discarded */
} http_conn;

/* Scan for the blank line that ends a head ("\n\n" or "\n\r\n"), carrying
 * the state across calls.  Returns true once it is seen. */
static bool scan_head_end(http_conn *hc, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (p[i] == '\n') {
            if (hc->eol != 0)
                return true;
            hc->eol = 1;
        } else {
            hc->eol = p[i] == '\r' && hc->eol == 1 ? 2 : 0;
        }
    }
    return false;
}

/* The Date header value, formatted at most once a second per worker thread. */
static const char *http_date(void)
{
    static _Thread_local time_t cached = -1;
    static _Thread_local char text[40];
    time_t now = time(NULL);
    struct tm tm;

    if (now != cached) {
        cached = now;
        gmtime_r(&now, &tm);
        strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
    return text;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Append one response.  keep: 1 keep-alive, 0 close; minor selects whether
 * keep-alive must be announced (HTTP/1.0). */
static void respond(ex_out *o, int status, const char *ctype, const char *body, size_t blen,
                    bool send_body, bool keep, int minor)
{
    char *p = ex_out_reserve(o, 512);
    int n;

    n = snprintf(p, 512,
                 "HTTP/1.1 %d %s\r\nServer: poolsrv\r\nDate: %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\n%s%s\r\n",
                 status, status_text(status), http_date(), ctype, blen,
                 keep ? (minor == 0 ? "Connection: keep-alive\r\n" : "") : "Connection: close\r\n",
                 status == 405 ? "Allow: GET, HEAD\r\n" : "");
    ex_out_commit(o, (size_t)n);
    if (send_body)
        ex_out_put(o, body, blen);
}

/* The hot path: GET / on a keep-alive HTTP/1.1 connection, by memcpy. */
static void respond_hello(ex_out *o, bool send_body, bool keep, int minor)
{
    static const char a[] = "HTTP/1.1 200 OK\r\nServer: poolsrv\r\nDate: ";
    static const char b[] = "\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n";
    const char *date = http_date();
    size_t dlen = strlen(date);
    const char *conn =
        keep ? (minor == 0 ? "Connection: keep-alive\r\n" : "") : "Connection: close\r\n";
    size_t clen = strlen(conn);
    size_t total = sizeof a - 1 + dlen + sizeof b - 1 + clen + 2 + (send_body ? 6 : 0);
    char *p = ex_out_reserve(o, total);

    memcpy(p, a, sizeof a - 1);
    p += sizeof a - 1;
    memcpy(p, date, dlen);
    p += dlen;
    memcpy(p, b, sizeof b - 1);
    p += sizeof b - 1;
    memcpy(p, conn, clen);
    p += clen;
    memcpy(p, "\r\n", 2);
    if (send_body)
        memcpy(p + 2, HELLO, 6);
    ex_out_commit(o, total);
}

static void respond_stats(ex_out *o, ps_conn *c, http_app *app, bool send_body, bool keep,
                          int minor)
{
    ps_stats st;
    char body[1536];
    int n;

    ps_server_stats(ps_conn_server(c), &st);
    n = snprintf(body, sizeof body,
                 "accepted %" PRIu64 "\nrejected %" PRIu64 "\naccept_errors %" PRIu64
                 "\naccept_emfile %" PRIu64 "\nqueue_full_waits %" PRIu64 "\nclosed %" PRIu64
                 "\nactive %" PRIu64 "\nqueued %" PRIu64 "\nqueue_high_water %" PRIu64
                 "\nbytes_in %" PRIu64 "\nbytes_out %" PRIu64 "\ntimeouts %" PRIu64
                 "\nio_errors %" PRIu64 "\nforced_closes %" PRIu64 "\nhttp_requests %" PRIu64
                 "\nhttp_errors %" PRIu64 "\n",
                 st.accepted, st.rejected, st.accept_errors, st.accept_emfile, st.queue_full_waits,
                 st.closed, st.active, st.queued, st.queue_high_water, st.bytes_in, st.bytes_out,
                 st.timeouts, st.io_errors, st.forced_closes,
                 (uint64_t)atomic_load_explicit(&app->requests, memory_order_relaxed),
                 (uint64_t)atomic_load_explicit(&app->errors, memory_order_relaxed));
    respond(o, 200, "text/plain", body, (size_t)n, send_body, keep, minor);
}

/* Route one request and append its response. */
static void handle(ex_out *o, ps_conn *c, http_app *app, const http_request *r)
{
    size_t plen = r->target_len;
    const char *q = memchr(r->target, '?', plen);
    bool body = r->method != HTTP_HEAD;
    bool root, stats;

    if (q)
        plen = (size_t)(q - r->target);
    root = plen == 1 && r->target[0] == '/';
    stats = plen == 6 && memcmp(r->target, "/stats", 6) == 0;
    atomic_fetch_add_explicit(&app->requests, 1, memory_order_relaxed);
    if (!root && !stats)
        respond(o, 404, "text/plain", "not found\n", 10, body, r->keep_alive, r->minor);
    else if (r->method == HTTP_OTHER)
        respond(o, 405, "text/plain", "method not allowed\n", 19, true, r->keep_alive, r->minor);
    else if (root)
        respond_hello(o, body, r->keep_alive, r->minor);
    else
        respond_stats(o, c, app, body, r->keep_alive, r->minor);
}

static int http_on_open(ps_conn *c, void *user)
{
    http_app *app = user;
    http_conn *hc = malloc(sizeof *hc);

    if (!hc)
        return -1; /* closes the connection; on_close still runs */
    http_parser_init(&hc->parser, app->max_head, app->max_body);
    hc->closing = false;
    hc->draining = false;
    hc->in_message = false;
    hc->eol = 0;
    hc->drain_left = HTTP_ERROR_DRAIN;
    ps_conn_set_data(c, hc);
    return 0;
}

/* Bytes of a message that on_data consumes as they arrive (a body being
 * discarded, the rest of a head after an error) do not start poolsrv's
 * request timer, which watches unconsumed input: say that a message is in
 * progress, so that request_timeout_ms and min_rate cover it too. */
static void message_begin(ps_conn *c, http_conn *hc)
{
    if (!hc->in_message)
        ps_conn_message_begin(c);
    hc->in_message = true;
}

static void message_end(ps_conn *c, http_conn *hc)
{
    if (hc->in_message)
        ps_conn_message_end(c);
    hc->in_message = false;
}

/* Answers the complete requests in data, in order, and returns how many
 * bytes it used: the rest (a partial head, or requests left unanswered
 * because the output passed high water) is presented again. */
static size_t http_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    http_app *app = user;
    http_conn *hc = ps_conn_data(c);
    http_request req;
    ex_out o;
    size_t off = 0, used;
    bool close_now = false;
    int rc;

    ex_out_init(&o, c);
    if (hc->draining) {
        close_now = scan_head_end(hc, data, len) || len >= hc->drain_left;
        hc->drain_left -= close_now ? 0 : len;
        off = len;
    }
    while (off < len) {
        if (hc->closing) { /* discard the last body, then close */
            http_skip_body(&hc->parser, len - off);
            close_now = !http_body_pending(&hc->parser);
            off = len;
            break;
        }
        if (ex_out_full(&o, app->high_water))
            break; /* the peer is not reading: the rest waits until it does */
        rc = http_parse(&hc->parser, data + off, len - off, &used, &req);
        if (rc < 0) {
            atomic_fetch_add_explicit(&app->requests, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&app->errors, 1, memory_order_relaxed);
            respond(&o, -rc, "text/plain", status_text(-rc), strlen(status_text(-rc)), true, false,
                    1);
            /* The head in error starts at data + off (unconsumed input
             * always starts at a head): has all of it arrived? */
            hc->draining = true;
            close_now = scan_head_end(hc, data + off, len - off);
            if (!close_now)
                message_begin(c, hc); /* the rest of the bad head is timed too */
            off = len; /* the rest is never read */
            break;
        }
        off += used;
        if (rc == HTTP_REQUEST || !http_body_pending(&hc->parser))
            message_end(c, hc); /* the previous body, if any, is complete */
        if (rc == HTTP_NEED_MORE)
            break;
        if (http_body_pending(&hc->parser))
            message_begin(c, hc); /* its body follows: consumed, but timed */
        handle(&o, c, app, &req);
        if (!req.keep_alive) {
            hc->closing = true;
            if (!http_body_pending(&hc->parser)) {
                close_now = true;
                off = len;
            }
        }
    }
    /* Flush first: ps_conn_send refuses output once the close is requested
     * (ps_conn_close itself flushes what was sent before it). */
    if (ex_out_flush(&o) < 0 || close_now)
        ps_conn_close(c);
    return off;
}

static void http_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    (void)why;
    (void)user;
    free(ps_conn_data(c));
    ps_conn_set_data(c, NULL);
}

int main(int argc, char **argv)
{
    static const ex_prog prog = {
        .name = "poolsrv-http",
        .summary = "Serve \"hello\" over HTTP/1.1 (keep-alive, pipelining) on a fixed pool of\n"
                   "worker threads; GET /stats shows the server's counters.",
        .default_listen = "127.0.0.1:8080",
        .extra_help = "\nLimits: request head 8192 bytes (431), request body 1 MiB (413).\n",
    };
    static http_app app;
    ps_config cfg;
    ps_handler h;

    ps_config_init(&cfg);
    cfg.idle_timeout_ms = 60000; /* like a web server's keep-alive timeout */
    /* Slowloris: a request (its head and body) must arrive within 20 s,
     * extended by 1 s per 500 bytes: Apache mod_reqtimeout's defaults.  The
     * head is timed while it is unconsumed input, the body (consumed as it
     * arrives) through ps_conn_message_begin / _end. */
    cfg.request_timeout_ms = 20000;
    cfg.min_rate = 500;
    ex_parse_args(&prog, argc, argv, &cfg);
    app.max_head = HTTP_MAX_HEAD_DEFAULT;
    app.max_body = HTTP_MAX_BODY_DEFAULT;
    app.high_water = cfg.out_high_water;
    memset(&h, 0, sizeof h);
    h.on_open = http_on_open;
    h.on_data = http_on_data;
    h.on_close = http_on_close;
    return ex_run(&prog, &cfg, &h, &app);
}

/* SPDX-License-Identifier: MIT */
/*
 * admin.c - see admin.h.  Event style, so that a connection that sends
 * nothing, or trickles its request, holds no worker: it costs a descriptor
 * and a registry entry until the timeouts below cut it, and a scrape that
 * arrives meanwhile is answered on the next turn.  (It used to be one
 * blocking worker with a 2 s read timeout, where six idle connections held
 * a scrape back 11.7 s, past Prometheus's 10 s default scrape timeout.)
 *
 * One request per connection (HTTP/1.0, "Connection: close"): the head is
 * gathered by on_data, which consumes nothing until the blank line that
 * ends it has arrived (the library presents unconsumed input again with
 * the newer bytes), then answered, then the connection is closed.
 */
#include "admin.h"
#include "metrics.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define ADMIN_REQ_MAX 4096 /* request head, bytes; more: 431 */
#define ADMIN_WORKERS 1
/* Descriptors the admin port may hold at once: far above what scrapers
 * use, low enough that a flood of it cannot take every descriptor the
 * main server needs (refused past it, like --max-connections). */
#define ADMIN_MAX_CONNECTIONS 4096
/* A scraper sends its request at once; these cut peers that do not. */
#define ADMIN_FIRST_BYTE_MS 5000 /* silent since accept */
#define ADMIN_REQUEST_MS 5000    /* the whole head must arrive within this */
#define ADMIN_IDLE_MS 10000      /* no progress at all (an answer not read) */

#define ADMIN_BODY_MAX (64u << 10) /* /metrics is about 12 KiB */

struct admin {
    ps_server *target;
    const char *prefix, *program;
    ps_config cfg; /* the target's, for the configuration gauges */
    char *body;    /* ADMIN_BODY_MAX: one answer at a time (one worker) */
};
_Static_assert(ADMIN_WORKERS == 1, "one worker shares admin.body");

enum { REQ_PARTIAL, REQ_OK, REQ_BAD, REQ_TOO_LARGE };

typedef struct admin_req {
    const char *method, *path; /* not terminated; path without the query */
    size_t method_len, path_len;
} admin_req;

/* Scan buf[*scanned..len) for the end of the head ("\n\n" or "\n\r\n"),
 * carrying *scanned across calls so a trickled head is scanned once.  On
 * REQ_OK, *r points into buf at the request line's method and path. */
static int parse_request(const char *buf, size_t len, size_t *scanned, admin_req *r)
{
    const char *end = NULL, *sp1, *sp2, *eol, *q;
    size_t i, lim = len < ADMIN_REQ_MAX ? len : ADMIN_REQ_MAX;

    for (i = *scanned; i < lim && !end; i++)
        if (buf[i] == '\n' && i > 0 &&
            (buf[i - 1] == '\n' || (buf[i - 1] == '\r' && i > 1 && buf[i - 2] == '\n')))
            end = buf + i;
    *scanned = i;
    if (!end)
        return lim == ADMIN_REQ_MAX ? REQ_TOO_LARGE : REQ_PARTIAL; /* the head, whole or not */
    /* Request line: METHOD SP TARGET SP HTTP/x.y */
    eol = memchr(buf, '\n', len);
    if (eol > buf && eol[-1] == '\r')
        eol--;
    sp1 = memchr(buf, ' ', (size_t)(eol - buf));
    if (!sp1 || sp1 == buf)
        return REQ_BAD;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || sp1[1] != '/' || eol - sp2 - 1 < 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return REQ_BAD;
    for (q = buf; q < sp1; q++)
        if (*q < 'A' || *q > 'Z')
            return REQ_BAD;
    r->method = buf;
    r->method_len = (size_t)(sp1 - buf);
    r->path = sp1 + 1;
    for (q = r->path; q < sp2 && *q != '?' && *q != '#'; q++)
        ;
    r->path_len = (size_t)(q - r->path);
    return REQ_OK;
}

static bool is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* Send the answer (the body unless HEAD) and close after it is flushed. */
static void reply(ps_conn *c, bool head_only, const char *status, const char *extra,
                  const char *type, const char *body)
{
    char head[320];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, extra, type, blen);

    if (ps_conn_send(c, head, (size_t)n) == 0 && !head_only)
        ps_conn_send(c, body, blen);
    ps_conn_close(c);
}

/* GET /metrics: the library's counters and histograms, then the build,
 * the configuration and the process. */
static void metrics_body(struct admin *a, const ps_stats *st)
{
    char *body = a->body;
    size_t cap = ADMIN_BODY_MAX;
    int k = ps_stats_format(st, PS_STATS_PROMETHEUS, a->prefix, body, cap);
    size_t n = k < 0 ? 0 : (size_t)k;

    if (k < 0)
        body[0] = '\0';
    metrics_build_info(body, cap, &n, a->program);
    metrics_config(body, cap, &n, a->prefix, &a->cfg);
    metrics_process(body, cap, &n);
}

static void answer(ps_conn *c, struct admin *a, const admin_req *r)
{
    bool head = is(r->method, r->method_len, "HEAD");
    char *body = a->body;
    ps_stats st;
    int n;

    if (!head && !is(r->method, r->method_len, "GET")) {
        reply(c, false, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", "text/plain",
              "only GET and HEAD\n");
        return;
    }
    ps_server_stats(a->target, &st);
    if (is(r->path, r->path_len, "/metrics")) {
        metrics_body(a, &st);
        reply(c, head, "200 OK", "", "text/plain; version=0.0.4", body);
    } else if (is(r->path, r->path_len, "/stats")) {
        n = ps_stats_format(&st, PS_STATS_TEXT, a->prefix, body, ADMIN_BODY_MAX - 1);
        if (n < 0)
            n = 0;
        body[n] = '\n';
        body[n + 1] = '\0';
        reply(c, head, "200 OK", "", "text/plain", body);
    } else {
        reply(c, head, "404 Not Found", "", "text/plain", "try GET /metrics or GET /stats\n");
    }
}

/* Consume nothing until the head is complete; the scan position is kept in
 * the connection's data pointer (no allocation per connection). */
static size_t admin_data(ps_conn *c, const char *data, size_t len, void *user)
{
    size_t scanned = (size_t)(uintptr_t)ps_conn_data(c);
    admin_req r;

    switch (parse_request(data, len, &scanned, &r)) {
    case REQ_PARTIAL: ps_conn_set_data(c, (void *)(uintptr_t)scanned); return 0;
    case REQ_OK: answer(c, user, &r); break;
    case REQ_TOO_LARGE:
        reply(c, false, "431 Request Header Fields Too Large", "", "text/plain",
              "request head over 4096 bytes\n");
        break;
    default: reply(c, false, "400 Bad Request", "", "text/plain", "bad request line\n"); break;
    }
    return len;
}

ps_server *admin_new(const char *addr, ps_server *target, const ps_config *target_cfg,
                     const char *prefix, const char *program, ps_err *err)
{
    static struct admin a; /* one admin listener per process */
    ps_handler h = {.on_data = admin_data};
    ps_config cfg;

    a.target = target;
    a.prefix = prefix;
    a.program = program;
    a.cfg = *target_cfg;
    if (!a.body && !(a.body = malloc(ADMIN_BODY_MAX))) {
        snprintf(err->msg, sizeof err->msg, "admin: out of memory");
        err->code = -ENOMEM;
        return NULL;
    }
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, addr);
    cfg.workers = ADMIN_WORKERS;
    cfg.max_connections = ADMIN_MAX_CONNECTIONS;
    cfg.first_byte_timeout_ms = ADMIN_FIRST_BYTE_MS;
    cfg.request_timeout_ms = ADMIN_REQUEST_MS;
    cfg.idle_timeout_ms = ADMIN_IDLE_MS;
    cfg.drain_timeout_ms = 0;
    return ps_server_new(&cfg, &h, &a, err);
}

ps_server *admin_start(const char *addr, ps_server *target, const ps_config *target_cfg,
                       const char *prefix, const char *program, ps_err *err)
{
    ps_server *s = admin_new(addr, target, target_cfg, prefix, program, err);

    if (s && ps_server_start(s, err) < 0) {
        ps_server_free(s);
        s = NULL;
    }
    return s;
}

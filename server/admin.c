/* SPDX-License-Identifier: MIT */
/* admin.c - see admin.h.  One blocking worker; requests are tiny. */
#include "admin.h"

#include <stdio.h>
#include <string.h>

#define ADMIN_REQ_MAX 4096

struct admin {
    ps_server *target;
    const char *prefix;
};

static void reply(ps_conn *c, const char *status, const char *type, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, strlen(body));

    if (ps_conn_write_all(c, head, (size_t)n) == 0)
        ps_conn_write_all(c, body, strlen(body));
}

/* Read the request head (bounded), answer one request, close. */
static void admin_serve(ps_conn *c, void *user)
{
    struct admin *a = user;
    char req[ADMIN_REQ_MAX + 1], body[8192];
    size_t len = 0;
    ps_stats st;

    ps_conn_set_timeout(c, 2000);
    while (len < ADMIN_REQ_MAX) {
        ssize_t n = ps_conn_read(c, req + len, ADMIN_REQ_MAX - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    ps_server_stats(a->target, &st);
    if (strncmp(req, "GET /metrics ", 13) == 0) {
        ps_stats_format(&st, PS_STATS_PROMETHEUS, a->prefix, body, sizeof body);
        reply(c, "200 OK", "text/plain; version=0.0.4", body);
    } else if (strncmp(req, "GET /stats ", 11) == 0) {
        int n = ps_stats_format(&st, PS_STATS_TEXT, a->prefix, body, sizeof body - 1);
        if (n >= 0) {
            body[n] = '\n';
            body[n + 1] = '\0';
        }
        reply(c, "200 OK", "text/plain", body);
    } else {
        reply(c, "404 Not Found", "text/plain", "try GET /metrics or GET /stats\n");
    }
}

ps_server *admin_start(const char *addr, ps_server *target, const char *prefix, ps_err *err)
{
    static struct admin a; /* one admin listener per process */
    ps_handler h = {.serve = admin_serve};
    ps_config cfg;
    ps_server *s;

    a.target = target;
    a.prefix = prefix;
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, addr);
    cfg.workers = 1;
    cfg.queue_capacity = 64;
    cfg.policy = PS_POLICY_REJECT;
    cfg.drain_timeout_ms = 0;
    s = ps_server_new(&cfg, &h, &a, err);
    if (s && ps_server_start(s, err) < 0) {
        ps_server_free(s);
        s = NULL;
    }
    return s;
}

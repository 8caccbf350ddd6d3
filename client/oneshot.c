/* SPDX-License-Identifier: MIT */
/*
 * oneshot.c - TCP/Unix one-shot mode: send MESSAGE and a newline, print the
 * reply.  Our servers speak lines, so the reply is complete when as many
 * lines have come back as were sent (one, unless MESSAGE holds newlines).
 */
#include "client.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t pc_request_lines(const char *msg)
{
    size_t n = 1;

    for (; *msg; msg++)
        n += *msg == '\n';
    return n;
}

int pc_read_lines(struct pc_conn *c, size_t lines, int64_t deadline_ns, int out_fd, size_t *got)
{
    char buf[65536];
    size_t keep, seen = 0;
    ssize_t n;
    int rc;

    *got = 0;
    while (seen < lines) {
        n = pc_recv_some(c, buf, sizeof(buf), deadline_ns);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 1;
        for (keep = 0; keep < (size_t)n && seen < lines; keep++)
            seen += buf[keep] == '\n';
        *got += keep;
        if (out_fd >= 0 && (rc = pc_write_fd(out_fd, buf, keep)) < 0) {
            pc_err("error writing stdout: %s", strerror(-rc));
            return 2;
        }
    }
    return 0;
}

/* MESSAGE plus the newline that ends the request line.  NULL if out of
 * memory. */
static char *request_line(const char *msg, size_t *len)
{
    size_t n = strlen(msg);
    char *req = malloc(n + 1);

    if (!req)
        return NULL;
    memcpy(req, msg, n);
    req[n] = '\n';
    *len = n + 1;
    return req;
}

/* Send the request and copy the reply to stdout.  Returns PC_OK or PC_ENET
 * after printing why. */
static int exchange(const struct pc_opts *o, struct pc_conn *c, const char *req, size_t len)
{
    size_t got;
    int rc;

    rc = pc_send_all(c, req, len, pc_deadline(o->timeout_s));
    if (rc < 0) {
        pc_err_conn(c, rc, "sending to", o->timeout_s);
        return PC_ENET;
    }
    rc = pc_read_lines(c, pc_request_lines(o->message), pc_deadline(o->timeout_s), STDOUT_FILENO,
                       &got);
    if (rc < 0) {
        pc_err_conn(c, rc, "waiting for reply from", o->timeout_s);
        return PC_ENET;
    }
    if (rc == 2)
        return PC_ENET;
    if (rc == 1 && got == 0) {
        pc_err("connection closed by %s before any reply", c->peer);
        return PC_ENET;
    }
    return PC_OK;
}

int pc_run_oneshot(const struct pc_opts *o)
{
    struct pc_conn c;
    size_t len;
    char *req;
    int status;

    req = request_line(o->message, &len);
    if (!req) {
        pc_err("out of memory");
        return PC_ENET;
    }
    status = pc_connect_stream(o, &c);
    if (status != PC_OK)
        goto out_free_req;
    status = exchange(o, &c, req, len);
    pc_report_bytes(o, &c);
    pc_close(&c);
out_free_req:
    free(req);
    return status;
}

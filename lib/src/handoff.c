/* SPDX-License-Identifier: MIT */
/*
 * handoff.c - passing listening sockets to a successor process (a new
 * binary taking over, docs/deployment.md) without refusing or resetting a
 * connection.
 *
 * The successor gets the very same sockets (inherited across exec, or sent
 * with SCM_RIGHTS), not new ones bound beside them: a listening socket's
 * accept queue belongs to the socket, so while any process holds it open,
 * connections that wait in it are accepted by whoever holds it.  The old
 * server can then stop accepting and close its copy at any moment; nothing
 * waiting is lost, whereas two sockets on one port (SO_REUSEPORT) each have
 * their own queue, and closing one resets what waits in it.
 *
 * The description that travels with the descriptors names, for each, the
 * listen text it was made from ("FD=TEXT,FD=TEXT"), so that the successor,
 * configured with the same texts (the same command line), takes each
 * address over instead of binding it, even for port 0.  TEXT is escaped
 * (%XX for '%', ',' and bytes outside 0x21..0x7e) so that any path fits in
 * an environment variable.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PS_HANDOFF_MAX ((size_t)PS_MAX_LISTEN * 2)

static bool plain(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '%' && ch != ',';
}

/* Append one "FD=TEXT" entry at *n, snprintf style (counts past cap). */
static void put_entry(char *buf, size_t cap, size_t *n, int fd, const char *text)
{
    char tmp[16];
    const unsigned char *p;
    int k;

    k = snprintf(tmp, sizeof tmp, "%s%d=", *n ? "," : "", fd);
    for (p = (const unsigned char *)tmp; k > 0; k--, p++, (*n)++)
        if (*n + 1 < cap)
            buf[*n] = (char)*p;
    for (p = (const unsigned char *)text; *p; p++) {
        if (plain(*p)) {
            if (*n + 1 < cap)
                buf[*n] = (char)*p;
            (*n)++;
            continue;
        }
        snprintf(tmp, sizeof tmp, "%%%02X", *p);
        for (k = 0; k < 3; k++, (*n)++)
            if (*n + 1 < cap)
                buf[*n] = tmp[k];
    }
}

int ps_server_handoff_format(const ps_server *s, char *buf, size_t cap)
{
    size_t n = 0;
    int i;

    if (ps_server_nlisteners(s) == 0 || atomic_load(&((ps_server *)s)->stopping))
        return -EINVAL;
    for (i = 0; i < s->nls; i++)
        if (s->ls[i].fd >= 0)
            put_entry(buf, cap, &n, s->ls[i].fd, s->ls[i].text);
    if (cap > 0)
        buf[n < cap ? n : cap - 1] = '\0';
    return n > INT32_MAX ? -EOVERFLOW : (int)n;
}

const char *ps_server_listen_text(const ps_server *s, int i)
{
    if (i < 0 || i >= ps_server_nlisteners(s))
        return NULL;
    return s->ls[i].text;
}

int ps_server_listener_fd(const ps_server *s, int i)
{
    if (i < 0 || i >= ps_server_nlisteners(s))
        return -EINVAL;
    return s->ls[i].fd >= 0 ? s->ls[i].fd : -EBADF;
}

void ps_server_handoff_stop(ps_server *s)
{
    if (!s)
        return;
    /* Before the stop request, whose release store the reactor's acquire
     * load pairs with: the drain that closes the listeners sees it. */
    atomic_store(&s->handed_off, true);
    ps_server_stop(s);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

/* One "FD=TEXT" entry of len bytes at e into *out (text malloc'd). */
static int parse_entry(const char *e, size_t len, struct ps_inherited *out, ps_err *err)
{
    const char *eq = memchr(e, '=', len);
    char *end, *t;
    size_t i, k = 0;
    long fd;

    if (!eq || eq == e || !(eq[-1] >= '0' && eq[-1] <= '9'))
        return ps__set_err(err, -EINVAL, "handoff: '%.*s': expected FD=TEXT", (int)len, e);
    fd = strtol(e, &end, 10);
    if (end != eq || fd < 0 || fd > 65535 || e[0] < '0' || e[0] > '9')
        return ps__set_err(err, -EINVAL, "handoff: '%.*s': bad descriptor number", (int)len, e);
    if (fcntl((int)fd, F_GETFD) < 0)
        return ps__set_err(err, -EINVAL, "handoff: descriptor %ld is not open", fd);
    if (!(t = malloc(len)))
        return ps__set_err(err, -ENOMEM, "handoff: out of memory");
    for (i = (size_t)(eq - e) + 1; i < len; i++) {
        int hi, lo;
        if (e[i] != '%') {
            t[k++] = e[i];
            continue;
        }
        if (i + 2 >= len || (hi = hexval(e[i + 1])) < 0 || (lo = hexval(e[i + 2])) < 0 ||
            hi * 16 + lo == 0) {
            free(t);
            return ps__set_err(err, -EINVAL, "handoff: '%.*s': bad %%XX escape", (int)len, e);
        }
        t[k++] = (char)(hi * 16 + lo);
        i += 2;
    }
    t[k] = '\0';
    out->fd = (int)fd;
    out->text = t;
    return 0;
}

static int check_unique(const struct ps_inherited *v, int n, ps_err *err)
{
    int i;

    for (i = 0; i < n; i++)
        if (v[i].fd == v[n].fd)
            return ps__set_err(err, -EINVAL, "handoff: descriptor %d is listed twice", v[n].fd);
    return 0;
}

int ps_server_handoff_adopt(ps_server *s, const char *handoff, ps_err *err)
{
    struct ps_inherited *v;
    const char *p = handoff;
    size_t n = 0;
    int rc;

    if (atomic_load(&s->state) != PS_STATE_NEW)
        return ps__set_err(err, -EALREADY, "handoff: adopt before ps_server_start");
    if (!handoff)
        return ps__set_err(err, -EINVAL, "handoff: missing description");
    if (!*handoff) /* a predecessor with nothing to pass: not the one call */
        return 0;
    if (s->inh)
        return ps__set_err(err, -EALREADY, "handoff: adopt once");
    if (!(v = calloc(PS_HANDOFF_MAX, sizeof *v)))
        return ps__set_err(err, -ENOMEM, "handoff: out of memory");
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (n == PS_HANDOFF_MAX) {
            rc = ps__set_err(err, -EINVAL, "handoff: more than %zu descriptors", PS_HANDOFF_MAX);
            goto out_free;
        }
        if ((rc = parse_entry(p, len, &v[n], err)) < 0)
            goto out_free;
        if ((rc = check_unique(v, (int)n, err)) < 0) {
            free(v[n].text);
            goto out_free;
        }
        n++;
        p += len + (comma != NULL);
    }
    s->inh = v;
    s->ninh = (int)n;
    return (int)n;

out_free:
    while (n > 0)
        free(v[--n].text);
    free(v);
    return rc;
}

int ps__handoff_find(const ps_server *s, const char *text, int *fds, int max)
{
    int i, n = 0;

    for (i = 0; i < s->ninh; i++)
        if (s->inh[i].fd >= 0 && !s->inh[i].taken && strcmp(s->inh[i].text, text) == 0) {
            if (n < max)
                fds[n] = s->inh[i].fd;
            n++;
        }
    return n;
}

void ps__handoff_claim(ps_server *s, int fd)
{
    int i;

    for (i = 0; i < s->ninh; i++)
        if (s->inh[i].fd == fd)
            s->inh[i].taken = true;
}

/* A start that failed closed none of the inherited sockets (listener.c
 * hands them back): they are ours again, for a later start or for
 * ps_server_free to close. */
void ps__handoff_release(ps_server *s)
{
    int i;

    for (i = 0; i < s->ninh; i++)
        s->inh[i].taken = false;
}

/* An inherited socket that no listen text claims is an address the new
 * configuration dropped (or the UDP half of a udp_same_port pair, now
 * off): close it (our predecessor closes its copy too, and the socket goes
 * away). */
void ps__handoff_close_rest(ps_server *s)
{
    int i;

    for (i = 0; i < s->ninh; i++)
        if (s->inh[i].fd >= 0 && !s->inh[i].taken) {
            ps__log(s, PS_LOG_INFO,
                    "handoff: nothing in this configuration takes '%s' fd %d any more: closing it",
                    s->inh[i].text, s->inh[i].fd);
            close(s->inh[i].fd);
            s->inh[i].fd = -1;
        }
}

void ps__handoff_free(ps_server *s)
{
    int i;

    for (i = 0; i < s->ninh; i++) {
        if (s->inh[i].fd >= 0 && !s->inh[i].taken)
            close(s->inh[i].fd);
        free(s->inh[i].text);
    }
    free(s->inh);
    s->inh = NULL;
    s->ninh = 0;
}

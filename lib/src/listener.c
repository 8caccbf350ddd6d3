/* SPDX-License-Identifier: MIT */
/*
 * listener.c - creating and closing listen sockets (TCP over IPv4/IPv6,
 * Unix stream sockets, UDP).  Runs in ps_server_start, the reactor's drain
 * and ps_server_wait, never concurrently with itself.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PS_PORT_PAIR_TRIES 32 /* udp_same_port with port 0: rebind attempts */

/* "fd:N" -> N, or -1 if text is not of that form. */
static int parse_fd(const char *text)
{
    char *end;
    long n;

    if (strncmp(text, "fd:", 3) != 0 || text[3] < '0' || text[3] > '9')
        return -1;
    n = strtol(text + 3, &end, 10);
    return (*end || n > 65535) ? -1 : (int)n;
}

int ps__listen_spec(const char *text, ps_listen_spec *sp, ps_err *err)
{
    const char *t = text;

    memset(sp, 0, sizeof *sp);
    sp->fd = -1;
    if (!t)
        return ps__set_err(err, -EINVAL, "listen: missing address");
    if (strncmp(t, "proxy:", 6) == 0) {
        sp->proxy = true;
        t += 6;
    }
    if (strncmp(t, "tls:", 4) == 0) {
        sp->tls = true;
        t += 4;
    }
    if (strncmp(t, "fd:", 3) == 0) {
        if ((sp->fd = parse_fd(t)) < 0)
            return ps__set_err(err, -EINVAL, "listen: '%s': expected fd:N with N a descriptor",
                               text);
        return 0;
    }
    sp->type = SOCK_STREAM;
    if (strncmp(t, "udp:", 4) == 0) {
        if (sp->proxy)
            return ps__set_err(err, -EINVAL, "listen: '%s': PROXY headers are for streams", text);
        if (sp->tls)
            return ps__set_err(err, -EINVAL, "listen: '%s': TLS is for streams (no DTLS)", text);
        sp->type = SOCK_DGRAM;
        t += 4;
    }
    if (ps_addr_parse(t, &sp->addr, &sp->len, err) < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return ps__set_err(err, -EINVAL, "listen: %s", msg);
    }
    if (sp->type == SOCK_DGRAM && sp->addr.ss_family == AF_UNIX)
        return ps__set_err(err, -EINVAL, "listen: '%s': udp needs an IP address", text);
    return 0;
}

/* A socket file left by a dead server is removed; a live server's is not.
 * We tell them apart by connecting: refused means nobody listens. */
static int clear_unix_path(const struct sockaddr_un *sun, socklen_t len, const char *text,
                           ps_err *err)
{
    struct stat st;
    int fd, rc;

    if (lstat(sun->sun_path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode))
        return ps__set_err(err, -EEXIST, "listen %s: path exists and is not a socket", text);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ps__set_err(err, -errno, "listen %s: socket: %s", text, ps_strerror(errno));
    rc = connect(fd, (const struct sockaddr *)sun, len);
    close(fd);
    if (rc == 0)
        return ps__set_err(err, -EADDRINUSE, "listen %s: a server is already listening there",
                           text);
    if (errno != ECONNREFUSED)
        return ps__set_err(err, -errno, "listen %s: cannot check existing socket: %s", text,
                           ps_strerror(errno));
    unlink(sun->sun_path); /* stale */
    return 0;
}

/* The bound (or adopted) socket is ready: name it ("udp:" for datagrams)
 * and fill in the rest of l. */
static void listener_ready(ps_listener *l, int fd, int type)
{
    ps_addr_format((struct sockaddr *)&l->addr, l->len, l->name, sizeof l->name);
    if (type == SOCK_DGRAM && strlen(l->name) + 4 < sizeof l->name) {
        memmove(l->name + 4, l->name, strlen(l->name) + 1);
        memcpy(l->name, "udp:", 4);
    }
    l->kind = PS_KIND_LISTENER;
    l->type = type;
    l->fd = fd;
    l->inherited = false;
    atomic_store_explicit(&l->nodelay, PS_NODELAY_EACH, memory_order_relaxed);
}

/* cfg.tcp_nodelay on a TCP listener: accepted sockets inherit it (acceptor.c
 * checks that they do). */
static void listener_nodelay(ps_listener *l, const ps_config *cfg)
{
    int one = 1;

    if (cfg->tcp_nodelay && l->type == SOCK_STREAM && l->addr.ss_family != AF_UNIX &&
        setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0)
        atomic_store_explicit(&l->nodelay, 0, memory_order_relaxed);
}

/* Bind and (streams) listen.  A Unix socket file gets cfg's unix_mode /
 * owner / group between the two (unix_perms.c says why there). */
static int bind_one(ps_listener *l, int type, const char *text, const ps_config *cfg, ps_err *err)
{
    int fd, one = 1, e;

    fd = socket(l->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ps__set_err(err, -errno, "listen %s: socket: %s", text, ps_strerror(errno));
    if (l->addr.ss_family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        e = ps__set_err(err, -errno, "listen %s: SO_REUSEPORT: %s", text, ps_strerror(errno));
        goto out_close;
    }
    if (l->addr.ss_family == AF_INET6) /* [::]:N is IPv6 only; list 0.0.0.0:N too for both */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (l->addr.ss_family == AF_UNIX &&
        (e = clear_unix_path((struct sockaddr_un *)&l->addr, l->len, text, err)) < 0)
        goto out_close;
    if (bind(fd, (struct sockaddr *)&l->addr, l->len) < 0) {
        e = ps__set_err(err, -errno, "listen %s: cannot bind: %s", text, ps_strerror(errno));
        goto out_close;
    }
    l->unlink_path = l->addr.ss_family == AF_UNIX;
    if (l->unlink_path &&
        (e = ps__unix_perms_apply(cfg, ((struct sockaddr_un *)&l->addr)->sun_path, text, err)) < 0)
        goto out_close;
    if (type == SOCK_STREAM && listen(fd, cfg->backlog) < 0) {
        e = ps__set_err(err, -errno, "listen %s: listen: %s", text, ps_strerror(errno));
        goto out_close;
    }
    if (l->addr.ss_family != AF_UNIX) {
        l->len = sizeof l->addr;
        getsockname(fd, (struct sockaddr *)&l->addr, &l->len);
    }
    listener_ready(l, fd, type);
    listener_nodelay(l, cfg);
    return 0;

out_close:
    if (l->unlink_path)
        unlink(((struct sockaddr_un *)&l->addr)->sun_path);
    l->unlink_path = false;
    close(fd);
    return e;
}

/* Whether a server listens on the Unix socket file at `sun` (connecting
 * succeeds or would block); a refused or missing one is dead. */
static bool unix_path_live(const struct sockaddr_un *sun, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc, e;

    if (fd < 0)
        return true; /* cannot tell: keep the file */
    rc = connect(fd, (const struct sockaddr *)sun, len);
    e = errno;
    close(fd);
    return rc == 0 || (e != ECONNREFUSED && e != ENOENT);
}

/* Close a listener and remove the socket file we own, unless keep_file
 * (a successor serves on it).  An inherited socket's file is shared with
 * the process we took it from, which may still hold the socket (a start
 * that failed, or a successor that was not ready in time): it is removed
 * only once nobody listens there, checked after our own close. */
static void close_one(ps_listener *l, bool keep_file)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&l->addr;

    if (l->fd < 0)
        return;
    close(l->fd);
    l->fd = -1;
    if (l->unlink_path && !keep_file && (!l->inherited || !unix_path_live(sun, l->len)))
        unlink(sun->sun_path);
    l->unlink_path = false;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* udp_same_port: a TCP listener plus a UDP socket on the same port.  With
 * port 0 the kernel picks the TCP port, which UDP may already use: retry. */
static int open_pair(ps_server *s, const char *text, ps_err *err)
{
    ps_listener *tl = &s->ls[s->nls], *ul = &s->ls[s->nls + 1];
    struct sockaddr_storage want = tl->addr;
    bool ephemeral = port_of(&want) == 0;
    int tries, rc = -EINVAL;

    if (s->nls + 2 > PS_MAX_LISTEN * 2)
        return ps__set_err(err, -ENOSPC, "listen %s: too many listeners", text);
    for (tries = 0; tries < PS_PORT_PAIR_TRIES; tries++) {
        tl->addr = want;
        if ((rc = bind_one(tl, SOCK_STREAM, text, &s->cfg, err)) < 0)
            return rc;
        ul->addr = tl->addr;
        ul->len = tl->len;
        ul->proxy = false;
        ul->tls = false;
        rc = bind_one(ul, SOCK_DGRAM, text, &s->cfg, err);
        if (rc == 0) {
            s->nls += 2;
            return 0;
        }
        close_one(tl, false);
        if (rc != -EADDRINUSE || !ephemeral)
            return rc;
        set_port(&want, 0);
    }
    return rc;
}

/* Adopt an inherited socket (systemd socket activation, or a parent's):
 * its type and address come from the socket itself; a stream socket not yet
 * listening is put in listening state.  The file of an inherited Unix
 * socket belongs to whoever created it and is not removed (take_over
 * changes that for a predecessor's own socket). */
int ps__listener_adopt(ps_server *s, ps_listener *l, int fd, const char *text, ps_err *err)
{
    int type, listening = 0, fl;
    socklen_t len = sizeof type;

    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return ps__set_err(err, -errno, "listen %s: not a socket: %s", text, ps_strerror(errno));
    if (type != SOCK_STREAM && type != SOCK_DGRAM)
        return ps__set_err(err, -EINVAL, "listen %s: socket type %d is neither stream nor datagram",
                           text, type);
    if (type == SOCK_DGRAM && l->proxy)
        return ps__set_err(err, -EINVAL, "listen %s: PROXY headers are for stream sockets", text);
    if (type == SOCK_DGRAM && l->tls)
        return ps__set_err(err, -EINVAL, "listen %s: TLS is for stream sockets", text);
    if (type == SOCK_DGRAM ? !s->h.on_datagram : !(s->h.serve || s->h.on_data))
        return ps__set_err(err, -EINVAL, "listen %s: a %s socket, and the handler has no %s", text,
                           type == SOCK_DGRAM ? "datagram" : "stream",
                           type == SOCK_DGRAM ? "on_datagram" : "serve or on_data");
    len = sizeof listening;
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
    if (type == SOCK_STREAM && !listening && listen(fd, s->cfg.backlog) < 0)
        return ps__set_err(err, -errno, "listen %s: listen: %s", text, ps_strerror(errno));
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return ps__set_err(err, -errno, "listen %s: fcntl: %s", text, ps_strerror(errno));
    l->len = sizeof l->addr;
    if (getsockname(fd, (struct sockaddr *)&l->addr, &l->len) < 0)
        return ps__set_err(err, -errno, "listen %s: getsockname: %s", text, ps_strerror(errno));
    l->unlink_path = false;
    listener_ready(l, fd, type);
    listener_nodelay(l, &s->cfg);
    return 0;
}

static const char *type_name(int type)
{
    return type == SOCK_DGRAM ? "a datagram (UDP)" : "a stream";
}

/* Choose, among the descriptors inherited for `text`, those it takes over,
 * checked against what the text names: a udp: text takes one datagram
 * socket; a stream text one stream socket and, with want_pair
 * (udp_same_port), the datagram socket of its pair (without, that one stays
 * unclaimed and is closed at start, as a dropped address); fd:N one socket
 * of either type.  Fills fds (stream first) and returns how many (0: none
 * inherited), or -EINVAL / -ENOTSOCK with *err naming text and descriptor. */
static int pick_inherited(ps_server *s, const char *text, const ps_listen_spec *sp, bool want_pair,
                          int fds[2], ps_err *err)
{
    int cand[3], n = ps__handoff_find(s, text, cand, 3), i, stream = -1, dgram = -1;
    int max = sp->fd < 0 && sp->type == SOCK_STREAM ? 2 : 1;
    socklen_t len;

    if (n > max)
        return ps__set_err(err, -EINVAL,
                           "handoff: listen text '%s': descriptors %d and %d%s "
                           "both name it, it takes %d",
                           text, cand[0], cand[1], n > 2 ? " (and more)" : "", max);
    for (i = 0; i < n; i++) {
        int type, *slot;
        len = sizeof type;
        if (getsockopt(cand[i], SOL_SOCKET, SO_TYPE, &type, &len) < 0)
            return ps__set_err(err, -errno, "handoff: listen text '%s': descriptor %d: %s", text,
                               cand[i], ps_strerror(errno));
        if (sp->fd >= 0) { /* fd:N: any type, ps__listener_adopt checks the rest */
            fds[0] = cand[i];
            return 1;
        }
        if (sp->type == SOCK_DGRAM && type != SOCK_DGRAM)
            return ps__set_err(err, -EINVAL,
                               "handoff: listen text '%s': descriptor %d is %s "
                               "socket, the text names a datagram (UDP) one",
                               text, cand[i], type_name(type));
        slot = type == SOCK_DGRAM ? &dgram : &stream;
        if (*slot >= 0)
            return ps__set_err(err, -EINVAL,
                               "handoff: listen text '%s': descriptors %d and %d "
                               "are both %s socket",
                               text, *slot, cand[i], type_name(type));
        *slot = cand[i];
    }
    if (n == 0 || sp->type == SOCK_DGRAM) {
        fds[0] = dgram;
        return n;
    }
    if (stream < 0)
        return ps__set_err(err, -EINVAL,
                           "handoff: listen text '%s': descriptor %d is %s socket, "
                           "the text names a stream one",
                           text, dgram, type_name(SOCK_DGRAM));
    fds[0] = stream;
    fds[1] = dgram;
    return dgram >= 0 && want_pair ? 2 : 1;
}

/* Listen text `text` (taken apart in sp) on the descriptors a predecessor
 * made from the same text (handoff.c), instead of binding again: the same
 * socket, so its backlog and port carry over.  A udp_same_port address
 * missing its UDP socket (the predecessor ran without it) gets one bound
 * on the inherited port.  Returns 1 when taken over, 0 when nothing was
 * inherited for text, or -errno.  On failure nothing inherited is closed:
 * the caller hands the sockets back (ps__listeners_release_inherited). */
static int take_over(ps_server *s, const char *text, const ps_listen_spec *sp, ps_err *err)
{
    bool want_pair = sp->fd < 0 && sp->type == SOCK_STREAM && s->cfg.udp_same_port &&
                     sp->addr.ss_family != AF_UNIX;
    int fds[2], n = pick_inherited(s, text, sp, want_pair, fds, err), i, rc;

    if (n <= 0)
        return n;
    for (i = 0; i < n; i++) {
        ps_listener *l = &s->ls[s->nls];
        if (s->nls >= PS_MAX_LISTEN * 2)
            return ps__set_err(err, -ENOSPC, "listen %s: too many listeners", text);
        ps__handoff_claim(s, fds[i]);
        l->reuseport = s->cfg.reuseport;
        l->proxy = sp->proxy;
        l->tls = sp->tls;
        if ((rc = ps__listener_adopt(s, l, fds[i], text, err)) < 0)
            return rc;
        l->inherited = true;
        l->text = text;
        l->unlink_path = l->addr.ss_family == AF_UNIX && sp->fd < 0; /* ours, not systemd's */
        s->nls++;
    }
    if (want_pair && n == 1) {
        ps_listener *tl = &s->ls[s->nls - 1], *ul = &s->ls[s->nls];
        if (s->nls >= PS_MAX_LISTEN * 2)
            return ps__set_err(err, -ENOSPC, "listen %s: too many listeners", text);
        ul->addr = tl->addr;
        ul->len = tl->len;
        ul->text = text;
        if ((rc = bind_one(ul, SOCK_DGRAM, text, &s->cfg, err)) < 0)
            return rc;
        s->nls++;
    }
    return 1;
}

/* Bind every configured address (or take it over from a predecessor); on
 * failure close what was opened. */
int ps__listeners_open(ps_server *s, ps_err *err)
{
    int i, rc = 0;

    for (i = 0; i < s->cfg.nlisten && rc == 0; i++) {
        const char *text = s->cfg.listen[i];
        ps_listener *l = &s->ls[s->nls];
        int first = s->nls, j;
        ps_listen_spec sp;

        if ((rc = ps__listen_spec(text, &sp, err)) < 0)
            break;
        if ((rc = take_over(s, text, &sp, err)) != 0) {
            rc = rc > 0 ? 0 : rc;
            continue;
        }
        l->reuseport = s->cfg.reuseport;
        l->proxy = sp.proxy;
        l->tls = sp.tls;
        if (sp.fd >= 0) {
            if ((rc = ps__listener_adopt(s, l, sp.fd, text, err)) == 0)
                s->nls++;
        } else {
            l->addr = sp.addr;
            l->len = sp.len;
            if (sp.type == SOCK_STREAM && s->cfg.udp_same_port && l->addr.ss_family != AF_UNIX)
                rc = open_pair(s, text, err);
            else if ((rc = bind_one(l, sp.type, text, &s->cfg, err)) == 0)
                s->nls++;
        }
        for (j = first; j < s->nls; j++)
            s->ls[j].text = text;
    }
    if (rc < 0) {
        ps__listeners_release_inherited(s);
        ps__listeners_close(s, 0);
        s->nls = 0;
        return rc;
    }
    ps__handoff_close_rest(s);
    for (i = 0; i < s->nls; i++)
        if (s->ls[i].tls) {
            ps__tls_note(s);
            break;
        }
    return 0;
}

/* Close listeners of one type (SOCK_STREAM, SOCK_DGRAM) or all (0). */
void ps__listeners_close(ps_server *s, int type)
{
    int i;

    for (i = 0; i < s->nls; i++)
        if (type == 0 || s->ls[i].type == type)
            close_one(&s->ls[i], atomic_load(&s->handed_off));
}

/* A start that failed: the sockets taken over from a predecessor go back
 * to the adopted set, open (ps_server_handoff_adopt promises that a failed
 * start closes none), for a later start or ps_server_free.  Their files
 * stay: the predecessor may still serve on them. */
void ps__listeners_release_inherited(ps_server *s)
{
    int i;

    for (i = 0; i < s->nls; i++)
        if (s->ls[i].inherited && s->ls[i].fd >= 0) {
            s->ls[i].fd = -1;
            s->ls[i].unlink_path = false;
        }
    ps__handoff_release(s);
}

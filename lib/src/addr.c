/* SPDX-License-Identifier: MIT */
/*
 * addr.c - parsing and formatting of "host:port" addresses.
 *
 * Hosts are numeric (or "localhost" / "*"): a server's listen address should
 * not depend on a resolver, and a typo should fail loudly, not bind
 * somewhere unexpected.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

int ps__set_err(ps_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err) {
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Strict decimal port 0..65535: no sign, no spaces, no trailing bytes. */
static int parse_port(const char *p, uint16_t *out)
{
    unsigned long v = 0;

    if (*p == '\0' || strlen(p) > 5)
        return -EINVAL;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v > 65535)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

static int fill_v4(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;

    memset(ss, 0, sizeof *ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (strcmp(host, "*") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -EINVAL;
    *len = sizeof *sin;
    return 0;
}

static int fill_v6(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof *ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
        return -EINVAL;
    *len = sizeof *sin6;
    return 0;
}

static int parse_unix(const char *text, struct sockaddr_storage *ss, socklen_t *len, ps_err *err)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    const char *path = text + 5;
    size_t n = strlen(path);

    if (n == 0)
        return ps__set_err(err, -EINVAL, "'%s': missing socket path after 'unix:'", text);
    if (n >= sizeof sun->sun_path)
        return ps__set_err(err, -EINVAL, "'%s': socket path longer than %zu bytes", text,
                           sizeof sun->sun_path - 1);
    memset(ss, 0, sizeof *ss);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n + 1);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int ps_addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, ps_err *err)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *hstart;
    size_t hlen;
    uint16_t port;
    bool v6 = false;

    if (!text || !*text)
        return ps__set_err(err, -EINVAL, "empty address (expected HOST:PORT, e.g. 127.0.0.1:7000)");
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text, ss, len, err);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return ps__set_err(err, -EINVAL, "'%s': missing ']' after IPv6 address", text);
        if (close[1] != ':')
            return ps__set_err(err, -EINVAL, "'%s': expected ':PORT' after ']'", text);
        hstart = text + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
        v6 = true;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return ps__set_err(err, -EINVAL, "'%s': missing ':PORT' (e.g. 127.0.0.1:7000)", text);
        hstart = text;
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen))
            return ps__set_err(err, -EINVAL, "'%s': IPv6 addresses need brackets, e.g. [::1]:7000",
                               text);
    }
    if (hlen == 0 || hlen >= sizeof host)
        return ps__set_err(err, -EINVAL, "'%s': %s host", text, hlen ? "overlong" : "missing");
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    if (parse_port(colon + 1, &port) < 0)
        return ps__set_err(err, -EINVAL, "'%s': port must be a number from 0 to 65535", text);
    if ((v6 ? fill_v6 : fill_v4)(host, port, ss, len) < 0)
        return ps__set_err(err, -EINVAL, "'%s': '%s' is not a numeric IPv%c address", text, host,
                           v6 ? '6' : '4');
    return 0;
}

char *ps_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
    char host[INET6_ADDRSTRLEN];

    if (cap == 0)
        return buf;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        snprintf(buf, cap, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        snprintf(buf, cap, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? strnlen(sun->sun_path, len - offsetof(struct sockaddr_un, sun_path))
                       : 0;
        snprintf(buf, cap, "unix:%.*s", (int)n, sun->sun_path);
    } else {
        snprintf(buf, cap, "(family %d)", sa->sa_family);
    }
    return buf;
}

int ps_policy_parse(const char *text, ps_policy *out)
{
    if (text && strcmp(text, "block") == 0)
        *out = PS_POLICY_BLOCK;
    else if (text && strcmp(text, "reject") == 0)
        *out = PS_POLICY_REJECT;
    else
        return -EINVAL;
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * proxy.c - PROXY protocol v1/v2 header parser (see proxy.h for the
 * contract).
 *
 * Both versions are parsed from the bytes available so far.  Whenever the
 * input runs out before the header is complete the answer is "need more",
 * and every byte seen is checked as it comes, so garbage is refused as soon
 * as it is seen rather than after a timeout: the spec asks receivers to
 * abort a bad header as early as possible.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Internal verdicts of the field scanners; ps__proxy_parse maps them. */
enum { V_NEED = 0, V_OK = 1, V_BAD = -1 };

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum { V2_CMD_LOCAL = 0x0, V2_CMD_PROXY = 0x1 };
enum {
    V2_UNSPEC = 0x00,
    V2_TCP4 = 0x11,
    V2_UDP4 = 0x12,
    V2_TCP6 = 0x21,
    V2_UDP6 = 0x22,
    V2_UNIX_STREAM = 0x31,
    V2_UNIX_DGRAM = 0x32,
};

/* ------------------------------------------------------------------ v1 */

/* Does p[0..avail) match the literal lit?  V_OK if all of lit is there,
 * V_NEED if what is there is a proper prefix of it, V_BAD otherwise. */
static int v1_literal(const char *p, size_t avail, const char *lit)
{
    size_t n = strlen(lit);
    size_t m = avail < n ? avail : n;

    if (memcmp(p, lit, m) != 0)
        return V_BAD;
    return m == n ? V_OK : V_NEED;
}

/* Scan one field at p[*i..len): 1..max bytes from `set`, ended by `delim`.
 * On V_OK the field is copied NUL-terminated into out (max + 1 bytes) and
 * *i moves past the delimiter. */
static int v1_field(const char *p, size_t len, size_t *i, const char *set, size_t max, char delim,
                    char *out)
{
    size_t j;

    for (j = *i; j < len; j++) {
        size_t n = j - *i;

        if (p[j] == delim) {
            if (n == 0)
                return V_BAD;
            memcpy(out, p + *i, n);
            out[n] = '\0';
            *i = j + 1;
            return V_OK;
        }
        if (n == max || p[j] == '\0' || !strchr(set, p[j]))
            return V_BAD;
    }
    return V_NEED;
}

/* A decimal port 0..65535 without sign or leading zeros. */
static bool v1_port(const char *s, uint16_t *out)
{
    unsigned long v = 0;

    if (s[0] == '0' && s[1] != '\0')
        return false;
    for (; *s; s++)
        v = v * 10 + (unsigned long)(*s - '0'); /* at most 5 digits: no overflow */
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* "PROXY UNKNOWN" seen at p[0..i): skip anything up to the first CRLF. */
static int v1_unknown(const char *p, size_t len, size_t i)
{
    for (; i < len && i < PS__PROXY_V1_MAX; i++) {
        if (p[i] == '\n' && i > 0 && p[i - 1] == '\r')
            return (int)(i + 1);
    }
    return len >= PS__PROXY_V1_MAX ? -EPROTO : 0;
}

/* "PROXY TCP4 " or "PROXY TCP6 " seen at p[0..i): addresses, ports, CRLF. */
static int v1_inet(const char *p, size_t len, size_t i, int af, struct sockaddr_storage *src,
                   socklen_t *srclen)
{
    /* The spec's forms: dotted quad (15 chars max) or hex groups (39). */
    const char *set = af == AF_INET ? "0123456789." : "0123456789abcdefABCDEF:";
    size_t amax = af == AF_INET ? 15 : 39;
    char sa[40], da[40], sp[6], dp[6];
    unsigned char sbin[16], dbin[16];
    uint16_t sport, dport;
    int r;

    if ((r = v1_field(p, len, &i, set, amax, ' ', sa)) != V_OK ||
        (r = v1_field(p, len, &i, set, amax, ' ', da)) != V_OK ||
        (r = v1_field(p, len, &i, "0123456789", 5, ' ', sp)) != V_OK ||
        (r = v1_field(p, len, &i, "0123456789", 5, '\r', dp)) != V_OK)
        return r == V_NEED ? 0 : -EPROTO;
    if (i == len)
        return 0;
    if (p[i] != '\n')
        return -EPROTO;
    if (inet_pton(af, sa, sbin) != 1 || inet_pton(af, da, dbin) != 1 || !v1_port(sp, &sport) ||
        !v1_port(dp, &dport))
        return -EPROTO;

    memset(src, 0, sizeof *src);
    if (af == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)src;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(sport);
        memcpy(&sin->sin_addr, sbin, 4);
        *srclen = (socklen_t)sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)src;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(sport);
        memcpy(&sin6->sin6_addr, sbin, 16);
        *srclen = (socklen_t)sizeof *sin6;
    }
    return (int)(i + 1);
}

static int v1_parse(const char *p, size_t len, struct sockaddr_storage *src, socklen_t *srclen)
{
    static const struct {
        const char *lit;
        int af;
    } protos[] = {{"TCP4 ", AF_INET}, {"TCP6 ", AF_INET6}, {"UNKNOWN", AF_UNSPEC}};
    size_t k;
    int r;

    if ((r = v1_literal(p, len, "PROXY ")) != V_OK)
        return r == V_NEED ? 0 : -EPROTO;
    for (k = 0; k < sizeof protos / sizeof protos[0]; k++) {
        size_t at = 6 + strlen(protos[k].lit);

        r = v1_literal(p + 6, len - 6, protos[k].lit);
        if (r == V_NEED)
            return 0; /* a prefix of this keyword (earlier ones ruled out) */
        if (r == V_BAD)
            continue;
        if (protos[k].af != AF_UNSPEC)
            return v1_inet(p, len, at, protos[k].af, src, srclen);
        /* "UNKNOWN" must be followed by CRLF or by a space. */
        if (len == at)
            return 0;
        if (p[at] != ' ' && p[at] != '\r')
            return -EPROTO;
        *srclen = 0;
        return v1_unknown(p, len, at);
    }
    return -EPROTO;
}

/* ------------------------------------------------------------------ v2 */

static size_t v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case V2_UNSPEC: return 0;
    case V2_TCP4:
    case V2_UDP4: return 12;
    case V2_TCP6:
    case V2_UDP6: return 36;
    case V2_UNIX_STREAM:
    case V2_UNIX_DGRAM: return 216;
    default: return SIZE_MAX; /* not a combination the spec defines */
    }
}

/* TLVs (type, 16-bit length, value) must tile p[0..n) exactly. */
static bool v2_tlvs_ok(const uint8_t *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        size_t vlen;

        if (n - off < 3)
            return false;
        vlen = ((size_t)p[off + 1] << 8) | p[off + 2];
        if (n - off - 3 < vlen)
            return false;
        off += 3 + vlen;
    }
    return true;
}

static void v2_fill(const uint8_t *a, uint8_t fam, struct sockaddr_storage *src, socklen_t *srclen)
{
    uint16_t port;

    memset(src, 0, sizeof *src);
    if (fam == V2_TCP4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)src;
        memcpy(&port, a + 8, 2); /* already in network order */
        sin->sin_family = AF_INET;
        sin->sin_port = port;
        memcpy(&sin->sin_addr, a, 4);
        *srclen = (socklen_t)sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)src;
        memcpy(&port, a + 32, 2);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = port;
        memcpy(&sin6->sin6_addr, a, 16);
        *srclen = (socklen_t)sizeof *sin6;
    }
}

static int v2_parse(const uint8_t *p, size_t len, struct sockaddr_storage *src, socklen_t *srclen)
{
    size_t m = len < sizeof v2_sig ? len : sizeof v2_sig;
    size_t total, alen;
    unsigned cmd;

    if (memcmp(p, v2_sig, m) != 0)
        return -EPROTO;
    if (len < 13)
        return 0;
    cmd = p[12] & 0x0Fu;
    if ((p[12] >> 4) != 2 || (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY))
        return -EPROTO;
    /* LOCAL: the family byte and the block are ignored (health checks). */
    if (len < 14)
        return 0;
    alen = cmd == V2_CMD_PROXY ? v2_addr_len(p[13]) : 0;
    if (alen == SIZE_MAX)
        return -EPROTO;
    if (len < 16)
        return 0;
    total = 16 + (((size_t)p[14] << 8) | p[15]);
    if (total > PS__PROXY_V2_MAX || total - 16 < alen)
        return -EPROTO;
    if (len < total)
        return 0;

    *srclen = 0;
    if (cmd == V2_CMD_LOCAL || p[13] == V2_UNSPEC)
        return (int)total; /* the block's content is unspecified: skip it */
    if (!v2_tlvs_ok(p + 16 + alen, total - 16 - alen))
        return -EPROTO;
    if (p[13] == V2_TCP4 || p[13] == V2_TCP6)
        v2_fill(p + 16, p[13], src, srclen);
    return (int)total;
}

/* ---------------------------------------------------------------- entry */

int ps__proxy_parse(const void *buf, size_t len, struct sockaddr_storage *src, socklen_t *srclen)
{
    const uint8_t *p = buf;

    if (!src || !srclen || (!buf && len > 0))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (p[0] == 'P')
        return v1_parse(buf, len, src, srclen);
    if (p[0] == v2_sig[0])
        return v2_parse(p, len, src, srclen);
    return -EPROTO;
}

/* SPDX-License-Identifier: MIT */
/* check_proxy.c - the PROXY protocol v1/v2 header parser (lib/src/proxy.c):
 * valid headers of each kind, every prefix of a valid header asks for more,
 * malformed and foreign input is refused, bytes after the header are left
 * alone.  And max_per_client on "proxy:" listeners (lib/src/proxy_conn.c,
 * registry.c), against a live server on loopback. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../lib/src/proxy.h"
#include "../server/echo_handlers.h"
#include "test_util.h"

/* ===================================== max_per_client on proxy: listeners */

/* Connect to the proxy: listener and send a v1 header naming client ip. */
static int proxy_connect(int port, const char *ip)
{
    char hdr[96];
    int n = snprintf(hdr, sizeof hdr, "PROXY TCP4 %s 127.0.0.1 40000 80\r\n", ip);
    int fd = tu_connect(port, tu_ms(2000));

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, hdr, (size_t)n, tu_ms(1000)), 0);
    return fd;
}

static ps_server *limited_server(bool event, int *proxy_port, int *plain_port)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "proxy:127.0.0.1:0");
    ps_config_add_listen(&cfg, "127.0.0.1:0");
    cfg.max_per_client = 2;
    cfg.workers = 8; /* blocking style: a worker per open connection */
    echo_handler_init(&h, event);
    h.busy_msg = "busy\n";
    h.busy_len = 5;
    s = tu_server_start(&cfg, &h, NULL, proxy_port);
    *plain_port = ps_server_port(s, 1);
    ck_assert_int_gt(*plain_port, 0);
    return s;
}

/* Expect the busy line, then end of stream. */
static void assert_refused(int fd)
{
    char line[16];

    ck_assert_int_eq(tu_read_line(fd, line, sizeof line, tu_ms(2000)), 5);
    ck_assert_str_eq(line, "busy\n");
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(2000)), 0);
}

/* The issue-12 reproduction: three short connections through the proxy
 * listener, naming three clients, used to leave their slots counted under
 * 127.0.0.1 (counted under the connecting address, released under the
 * header's), after which every connection from 127.0.0.1 was refused on
 * both listeners.  Every slot must come back. */
START_TEST(test_proxy_limit_no_leak)
{
    bool event = _i == 1;
    static const char *clients[] = {"10.9.9.1", "10.9.9.2", "10.9.9.3"};
    int pport, lport, i, a, b;
    uint64_t last;
    ps_server *s = limited_server(event, &pport, &lport);

    for (i = 0; i < 3; i++) {
        int fd = proxy_connect(pport, clients[i]);
        ck_assert_int_eq(tu_echo(fd, "x", 1, true, tu_ms(2000), NULL), 0);
        close(fd);
        ck_assert(TU_STAT_EQ(s, closed, (uint64_t)i + 1, tu_ms(2000), &last));
    }
    a = tu_connect(lport, tu_ms(2000)); /* two at once: the whole share of 127.0.0.1 */
    b = tu_connect(lport, tu_ms(2000));
    ck_assert_int_ge(a, 0);
    ck_assert_int_ge(b, 0);
    ck_assert_int_eq(tu_echo(a, "a", 1, false, tu_ms(2000), NULL), 0);
    ck_assert_int_eq(tu_echo(b, "b", 1, false, tu_ms(2000), NULL), 0);
    close(a);
    close(b);
    a = proxy_connect(pport, clients[0]);
    ck_assert_int_eq(tu_echo(a, "again", 5, true, tu_ms(2000), NULL), 0);
    close(a);
    ck_assert(TU_STAT_EQ(s, active, 0, tu_ms(2000), &last));
    ck_assert_uint_eq(tu_stats(s).limit_refused, 0);
    ps_server_free(s);
}
END_TEST

/* Behind a load balancer every connection comes from one address; the
 * limit applies to the client each header names, and its slot is released
 * under that same name. */
START_TEST(test_proxy_limit_per_header_client)
{
    bool event = _i == 1;
    int pport, lport, a1, a2, a3, b1, d1, d2;
    uint64_t last;
    ps_server *s = limited_server(event, &pport, &lport);

    a1 = proxy_connect(pport, "10.9.9.1");
    a2 = proxy_connect(pport, "10.9.9.1");
    ck_assert_int_eq(tu_echo(a1, "1", 1, false, tu_ms(2000), NULL), 0);
    ck_assert_int_eq(tu_echo(a2, "2", 1, false, tu_ms(2000), NULL), 0);
    a3 = proxy_connect(pport, "10.9.9.1"); /* a third from the same client */
    assert_refused(a3);
    close(a3);
    ck_assert(TU_STAT_EQ(s, limit_refused, 1, tu_ms(2000), &last));
    /* Other clients through the same balancer, and the balancer's own
     * address on the plain listener, still have their whole share. */
    b1 = proxy_connect(pport, "10.9.9.2");
    ck_assert_int_eq(tu_echo(b1, "b", 1, false, tu_ms(2000), NULL), 0);
    d1 = tu_connect(lport, tu_ms(2000));
    d2 = tu_connect(lport, tu_ms(2000));
    ck_assert_int_eq(tu_echo(d1, "d", 1, false, tu_ms(2000), NULL), 0);
    ck_assert_int_eq(tu_echo(d2, "d", 1, false, tu_ms(2000), NULL), 0);
    /* Closing one of 10.9.9.1's connections gives it a slot again. */
    close(a1);
    ck_assert(TU_STAT_EQ(s, active, 4, tu_ms(2000), &last));
    a1 = proxy_connect(pport, "10.9.9.1");
    ck_assert_int_eq(tu_echo(a1, "again", 5, false, tu_ms(2000), NULL), 0);
    ck_assert_uint_eq(tu_stats(s).limit_refused, 1);
    close(a1);
    close(a2);
    close(b1);
    close(d1);
    close(d2);
    ck_assert(TU_STAT_EQ(s, active, 0, tu_ms(2000), &last));
    ps_server_free(s);
}
END_TEST

Suite *proxy_suite(void);

/* Byte tables read best one field a literal: not reflowed. */
/* clang-format off */
/* A byte string that may hold NULs: the literal and its length. */
typedef struct bytes {
    const char *b;
    size_t n;
} bytes;
#define B(lit) {(lit), sizeof(lit) - 1}

/* The v2 signature, split so no hex escape runs into the next byte. */
#define SIG "\x0D\x0A\x0D\x0A" "\x00\x0D\x0A" "QUIT" "\x0A"
/* 192.0.2.1:54321 -> 198.51.100.2:443 */
#define V4_BLOCK "\xC0\x00\x02\x01" "\xC6\x33\x64\x02" "\xD4\x31" "\x01\xBB"
/* [2001:db8::1]:54321 -> [2001:db8::2]:443 */
#define V6_SRC "\x20\x01\x0d\xb8" "\0\0\0\0" "\0\0\0\0" "\0\0\0\x01"
#define V6_DST "\x20\x01\x0d\xb8" "\0\0\0\0" "\0\0\0\0" "\0\0\0\x02"
#define V6_BLOCK V6_SRC V6_DST "\xD4\x31" "\x01\xBB"
/* ALPN "h2", AUTHORITY "example.com", an empty NOOP: 5 + 14 + 3 = 22 bytes */
#define TLVS "\x01\x00\x02" "h2" "\x02\x00\x0B" "example.com" "\x04\x00\x00"
/* clang-format on */

static const char PAYLOAD[] = "GET / HTTP/1.1\r\n\r\n";

static int parse(const void *buf, size_t len, struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0xA5, sizeof *ss);
    *sl = 12345;
    return ps__proxy_parse(buf, len, ss, sl);
}

static void assert_addr(const struct sockaddr_storage *ss, socklen_t sl, int af, const char *ip,
                        int port)
{
    char buf[INET6_ADDRSTRLEN];

    ck_assert_int_eq(ss->ss_family, af);
    if (af == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        ck_assert_uint_eq(sl, sizeof *sin);
        ck_assert_int_eq(ntohs(sin->sin_port), port);
        ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        ck_assert_uint_eq(sl, sizeof *sin6);
        ck_assert_int_eq(ntohs(sin6->sin6_port), port);
        ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf));
    }
    ck_assert_str_eq(buf, ip);
}

/* Parse hdr followed by PAYLOAD; require exactly hdr's length back. */
static void parse_with_payload(bytes hdr, struct sockaddr_storage *ss, socklen_t *sl)
{
    char buf[512];
    int rc;

    ck_assert_uint_le(hdr.n + sizeof PAYLOAD, sizeof buf);
    memcpy(buf, hdr.b, hdr.n);
    memcpy(buf + hdr.n, PAYLOAD, sizeof PAYLOAD);
    rc = parse(buf, hdr.n + sizeof PAYLOAD - 1, ss, sl);
    ck_assert_msg(rc == (int)hdr.n, "header of %zu bytes: parse = %d", hdr.n, rc);
}

/* ------------------------------------------------------------------ v1 */

START_TEST(test_v1_tcp4)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    parse_with_payload((bytes)B("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"), &ss, &sl);
    assert_addr(&ss, sl, AF_INET, "192.168.0.1", 56324);
    parse_with_payload((bytes)B("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"), &ss,
                       &sl);
    assert_addr(&ss, sl, AF_INET, "255.255.255.255", 65535);
    parse_with_payload((bytes)B("PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n"), &ss, &sl);
    assert_addr(&ss, sl, AF_INET, "0.0.0.0", 0);
}
END_TEST

START_TEST(test_v1_tcp6)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    parse_with_payload((bytes)B("PROXY TCP6 2001:db8::1 ::1 1234 80\r\n"), &ss, &sl);
    assert_addr(&ss, sl, AF_INET6, "2001:db8::1", 1234);
    parse_with_payload((bytes)B("PROXY TCP6 FFFF:ffff:FFFF:ffff:FFFF:ffff:FFFF:fffe "
                                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
                       &ss, &sl);
    assert_addr(&ss, sl, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
    parse_with_payload((bytes)B("PROXY TCP6 :: :: 0 0\r\n"), &ss, &sl);
    assert_addr(&ss, sl, AF_INET6, "::", 0);
}
END_TEST

START_TEST(test_v1_unknown)
{
    /* clang-format off */
    static const bytes ok[] = {
        B("PROXY UNKNOWN\r\n"),
        B("PROXY UNKNOWN ffff:f::f:ffff ffff:f::f:ffff 65535 65535\r\n"),
        /* anything before the CRLF is ignored, a lone CR included */
        B("PROXY UNKNOWN what\rever\r\n"),
        /* the longest line allowed: 107 bytes */
        B("PROXY UNKNOWN "
          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
          "\r\n"),
    };
    /* clang-format on */
    struct sockaddr_storage ss;
    socklen_t sl;
    size_t i;

    ck_assert_uint_eq(ok[3].n, PS__PROXY_V1_MAX);
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        parse_with_payload(ok[i], &ss, &sl);
        ck_assert_uint_eq(sl, 0);
        ck_assert_uint_eq(((unsigned char *)&ss)[0], 0xA5); /* untouched */
    }
}
END_TEST

/* ------------------------------------------------------------------ v2 */

START_TEST(test_v2_proxy_v4)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    parse_with_payload((bytes)B(SIG "\x21\x11\x00\x0C" V4_BLOCK), &ss, &sl);
    assert_addr(&ss, sl, AF_INET, "192.0.2.1", 54321);
    parse_with_payload((bytes)B(SIG "\x21\x11\x00\x22" V4_BLOCK TLVS), &ss, &sl);
    assert_addr(&ss, sl, AF_INET, "192.0.2.1", 54321);
}
END_TEST

START_TEST(test_v2_proxy_v6)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    parse_with_payload((bytes)B(SIG "\x21\x21\x00\x24" V6_BLOCK), &ss, &sl);
    assert_addr(&ss, sl, AF_INET6, "2001:db8::1", 54321);
    parse_with_payload((bytes)B(SIG "\x21\x21\x00\x3A" V6_BLOCK TLVS), &ss, &sl);
    assert_addr(&ss, sl, AF_INET6, "2001:db8::1", 54321);
}
END_TEST

/* LOCAL, UNSPEC and the families we do not map: accepted, no address. */
START_TEST(test_v2_addressless)
{
    char unix_block[16 + 216];
    /* clang-format off */
    const bytes ok[] = {
        B(SIG "\x20\x00\x00\x00"),                  /* LOCAL, as HAProxy health checks send */
        B(SIG "\x20\x11\x00\x0C" V4_BLOCK),         /* LOCAL with a block: skipped */
        B(SIG "\x20\xFF\x00\x03" "abc"),            /* LOCAL ignores the family byte */
        B(SIG "\x21\x00\x00\x00"),                  /* PROXY, UNSPEC */
        B(SIG "\x21\x00\x00\x05" "\x01\x02\x03zz"), /* UNSPEC: block not parsed */
        B(SIG "\x21\x12\x00\x0C" V4_BLOCK),         /* UDP over IPv4 */
        B(SIG "\x21\x22\x00\x24" V6_BLOCK),         /* UDP over IPv6 */
        {unix_block, sizeof unix_block},            /* UNIX stream */
    };
    /* clang-format on */
    struct sockaddr_storage ss;
    socklen_t sl;
    size_t i;

    memset(unix_block, 0, sizeof unix_block);
    memcpy(unix_block, SIG "\x21\x31\x00\xD8", 16);
    memcpy(unix_block + 16, "/run/client.sock", 16);
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        parse_with_payload(ok[i], &ss, &sl);
        ck_assert_msg(sl == 0, "case %zu: srclen %u", i, (unsigned)sl);
        ck_assert_uint_eq(((unsigned char *)&ss)[0], 0xA5);
    }
}
END_TEST

/* ------------------------------------------------------ prefixes, bounds */

/* clang-format off */
static const bytes valid[] = {
    B("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
    B("PROXY TCP6 2001:db8::1 ::1 1234 80\r\n"),
    B("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
    B("PROXY UNKNOWN\r\n"),
    B("PROXY UNKNOWN ffff:f::f:ffff ffff:f::f:ffff 65535 65535\r\n"),
    B(SIG "\x21\x11\x00\x0C" V4_BLOCK),
    B(SIG "\x21\x11\x00\x22" V4_BLOCK TLVS),
    B(SIG "\x21\x21\x00\x3A" V6_BLOCK TLVS),
    B(SIG "\x20\x00\x00\x00"),
    B(SIG "\x20\x00\x00\x04" "\x04\x00\x01z"),
};
/* clang-format on */

START_TEST(test_every_prefix_needs_more)
{
    const bytes h = valid[_i];
    struct sockaddr_storage ss;
    socklen_t sl;
    size_t n;

    for (n = 0; n < h.n; n++) {
        int rc = parse(h.b, n, &ss, &sl);
        ck_assert_msg(rc == 0, "valid[%d]: prefix of %zu/%zu bytes: parse = %d", _i, n, h.n, rc);
    }
    ck_assert_int_eq(parse(h.b, h.n, &ss, &sl), (int)h.n);
}
END_TEST

/* Bytes after the header are not consumed, whatever they are. */
START_TEST(test_trailing_bytes_untouched)
{
    const bytes h = valid[_i];
    char buf[512];
    struct sockaddr_storage ss;
    socklen_t sl;
    size_t k;

    memcpy(buf, h.b, h.n);
    for (k = 1; k < 64; k++) {
        memset(buf + h.n, (int)(k * 37), k); /* NULs, CRLFs, 'P', 0x0D... */
        buf[h.n] = (k & 1) ? '\r' : 'P';
        ck_assert_int_eq(parse(buf, h.n + k, &ss, &sl), (int)h.n);
    }
}
END_TEST

/* ------------------------------------------------------------ malformed */

/* clang-format off */
static const bytes bad[] = {
    /* not PROXY at all */
    B("GET / HTTP/1.1\r\n"),
    B("G"),
    B("\x00"),
    B("\r\n\r\n\r\n"),
    B("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY\r\n"),
    B("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    /* v1 keyword and spacing */
    B("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
    B("PROXY TCP4 1.2.3.4\r\n"),
    B("PROXY TCP4\r\n"),
    B("PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
    B("PROXY UNKNOWNX\r\n"),
    B("PROXY UNKNOWN\n"),
    /* v1 line ends */
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"),
    /* v1 addresses */
    B("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
    B("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"),
    B("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.x 1 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n"),
    B("PROXY TCP4 ::1 ::1 1 2\r\n"),
    B("PROXY TCP4 0000000000001.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"),
    B("PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n"),
    B("PROXY TCP6 1::2::3 ::1 1 2\r\n"),
    B("PROXY TCP6 12345::1 ::1 1 2\r\n"),
    B("PROXY TCP6 ::1 ::g 1 2\r\n"),
    B("PROXY TCP6 [::1] ::1 1 2\r\n"),
    B("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"),
    B("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:0 ::1 1 2\r\n"),
    /* v1 ports */
    B("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n"),
    B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2a\r\n"),
    /* v1 NUL inside, and too long without CRLF */
    B("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n"),
    B("PROXY UNKNOWN "
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "\r\n"),
    B("PROXY UNKNOWN "
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    /* v2 signature, one byte off at either end and in the middle */
    B("\x0D\x0A\x0D\x0A" "\x01\x0D\x0A" "QUIT" "\x0A" "\x21\x11\x00\x0C" V4_BLOCK),
    B("\x0D\x0A\x0D\x0A" "\x00\x0D\x0A" "QUIT" "\x0D" "\x21\x11\x00\x0C" V4_BLOCK),
    B("\x0D\x0A\x0D\x0A" "\x00\x0D\x0A" "quit" "\x0A" "\x21\x11\x00\x0C" V4_BLOCK),
    B("\x0D\x0B"),
    /* v2 version and command */
    B(SIG "\x11\x11\x00\x0C" V4_BLOCK),
    B(SIG "\x31\x11\x00\x0C" V4_BLOCK),
    B(SIG "\x01\x11\x00\x0C" V4_BLOCK),
    B(SIG "\x22\x11\x00\x0C" V4_BLOCK),
    B(SIG "\x2F\x11\x00\x0C" V4_BLOCK),
    /* v2 family / transport outside the spec's list */
    B(SIG "\x21\x41\x00\x0C" V4_BLOCK),
    B(SIG "\x21\x13\x00\x0C" V4_BLOCK),
    B(SIG "\x21\x10\x00\x0C" V4_BLOCK),
    B(SIG "\x21\x01\x00\x0C" V4_BLOCK),
    B(SIG "\x21\xFF\x00\x0C" V4_BLOCK),
    /* v2 length shorter than the family's addresses */
    B(SIG "\x21\x11\x00\x0B" V4_BLOCK),
    B(SIG "\x21\x11\x00\x00"),
    B(SIG "\x21\x21\x00\x0C" V4_BLOCK),
    B(SIG "\x21\x31\x00\x24" V6_BLOCK),
    /* v2 TLVs that do not tile the rest of the header */
    B(SIG "\x21\x11\x00\x0E" V4_BLOCK "\x01\x00"),
    B(SIG "\x21\x11\x00\x0F" V4_BLOCK "\x01\x00\x01"),
    B(SIG "\x21\x11\x00\x11" V4_BLOCK "\x01\x00\x01z" "\x04"),
    B(SIG "\x21\x11\x00\x10" V4_BLOCK "\x01\xFF\xFFz"),
    /* v2 longer than our cap: refused from the preamble alone */
    B(SIG "\x21\x11\x0F\xF1"),
    B(SIG "\x20\x00\xFF\xFF"),
};
/* clang-format on */

START_TEST(test_malformed)
{
    const bytes m = bad[_i];
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = parse(m.b, m.n, &ss, &sl);

    ck_assert_msg(rc == -EPROTO, "bad[%d] (%zu bytes): parse = %d, want -EPROTO", _i, m.n, rc);
}
END_TEST

/* The largest header we accept, and one byte more. */
START_TEST(test_v2_cap)
{
    static unsigned char buf[PS__PROXY_V2_MAX + 1];
    struct sockaddr_storage ss;
    socklen_t sl;
    size_t tlv = PS__PROXY_V2_MAX - 16 - 12 - 3; /* one NOOP TLV fills the rest */

    memset(buf, 0, sizeof buf);
    memcpy(buf, SIG "\x21\x11", 14);
    buf[14] = (unsigned char)((PS__PROXY_V2_MAX - 16) >> 8);
    buf[15] = (unsigned char)((PS__PROXY_V2_MAX - 16) & 0xFF);
    memcpy(buf + 16, V4_BLOCK, 12);
    buf[28] = 0x04;
    buf[29] = (unsigned char)(tlv >> 8);
    buf[30] = (unsigned char)(tlv & 0xFF);
    ck_assert_int_eq(parse(buf, PS__PROXY_V2_MAX - 1, &ss, &sl), 0);
    ck_assert_int_eq(parse(buf, PS__PROXY_V2_MAX, &ss, &sl), PS__PROXY_V2_MAX);
    assert_addr(&ss, sl, AF_INET, "192.0.2.1", 54321);

    buf[15]++; /* one byte over the cap */
    buf[30]++;
    ck_assert_int_eq(parse(buf, 16, &ss, &sl), -EPROTO);
    ck_assert_int_eq(parse(buf, sizeof buf, &ss, &sl), -EPROTO);
}
END_TEST

/* Random input never reads past len, never claims more than len, and a
 * caller holding PS__PROXY_MAX_LEN bytes always gets a verdict. */
START_TEST(test_random_input)
{
    static unsigned char buf[PS__PROXY_MAX_LEN];
    struct sockaddr_storage ss;
    socklen_t sl;
    uint64_t seed = 0x5eed;
    int i;

    for (i = 0; i < 20000; i++) {
        size_t n = (size_t)(tu_rand(&seed) % sizeof buf);
        int rc;

        tu_fill(buf, sizeof buf, tu_rand(&seed));
        switch (i % 4) { /* steer a share of the cases past the first byte */
        case 1: memcpy(buf, "PROXY TCP4 ", 11); break;
        case 2: memcpy(buf, SIG "\x21", 13); break;
        case 3:
            memcpy(buf, SIG "\x21\x11", 14);
            buf[14] = 0;
            break;
        default: break;
        }
        rc = parse(buf, n, &ss, &sl);
        ck_assert_int_le(rc, (int)n);
        ck_assert(rc == -EPROTO || rc >= 0);
        ck_assert_int_ne(parse(buf, sizeof buf, &ss, &sl), 0);
    }
}
END_TEST

START_TEST(test_bad_arguments)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    ck_assert_int_eq(ps__proxy_parse(NULL, 0, &ss, &sl), 0);
    ck_assert_int_eq(ps__proxy_parse(NULL, 5, &ss, &sl), -EINVAL);
    ck_assert_int_eq(ps__proxy_parse("PROXY", 5, NULL, &sl), -EINVAL);
    ck_assert_int_eq(ps__proxy_parse("PROXY", 5, &ss, NULL), -EINVAL);
}
END_TEST

Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *tc = tcase_create("proxy");
    TCase *limits = tcase_create("limits");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_v1_tcp4);
    tcase_add_test(tc, test_v1_tcp6);
    tcase_add_test(tc, test_v1_unknown);
    tcase_add_test(tc, test_v2_proxy_v4);
    tcase_add_test(tc, test_v2_proxy_v6);
    tcase_add_test(tc, test_v2_addressless);
    tcase_add_loop_test(tc, test_every_prefix_needs_more, 0, (int)(sizeof valid / sizeof valid[0]));
    tcase_add_loop_test(tc, test_trailing_bytes_untouched, 0,
                        (int)(sizeof valid / sizeof valid[0]));
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, test_v2_cap);
    tcase_add_test(tc, test_random_input);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);
    tcase_set_timeout(limits, 20);
    tcase_add_loop_test(limits, test_proxy_limit_no_leak, 0, 2);
    tcase_add_loop_test(limits, test_proxy_limit_per_header_client, 0, 2);
    suite_add_tcase(s, limits);
    return s;
}

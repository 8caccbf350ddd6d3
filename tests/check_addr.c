/* SPDX-License-Identifier: MIT */
/* check_addr.c - address parsing and formatting, policy names, error text,
 * version. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "test_util.h"

static int parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, ps_err *err)
{
    memset(ss, 0xA5, sizeof *ss);
    memset(err, 0, sizeof *err);
    *len = 0;
    return ps_addr_parse(text, ss, len, err);
}

static void assert_v4(const char *text, const char *ip, int port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    socklen_t len;
    ps_err err;
    char buf[INET_ADDRSTRLEN];
    int rc = parse(text, &ss, &len, &err);

    ck_assert_msg(rc == 0, "parse(\"%s\") = %d (%s)", text, rc, err.msg);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(ntohs(sin->sin_port), port);
    ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
    ck_assert_str_eq(buf, ip);
}

static void assert_v6(const char *text, const char *ip, int port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    ps_err err;
    char buf[INET6_ADDRSTRLEN];
    int rc = parse(text, &ss, &len, &err);

    ck_assert_msg(rc == 0, "parse(\"%s\") = %d (%s)", text, rc, err.msg);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_int_eq(ntohs(sin6->sin6_port), port);
    ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf));
    ck_assert_str_eq(buf, ip);
}

START_TEST(test_parse_good)
{
    assert_v4("127.0.0.1:7000", "127.0.0.1", 7000);
    assert_v4("0.0.0.0:0", "0.0.0.0", 0);
    assert_v4("*:7000", "0.0.0.0", 7000);
    assert_v4("10.1.2.3:65535", "10.1.2.3", 65535);
    assert_v4("1.2.3.4:1", "1.2.3.4", 1);
    assert_v6("[::1]:7000", "::1", 7000);
    assert_v6("[::]:0", "::", 0);
    assert_v6("[2001:db8::17]:443", "2001:db8::17", 443);
}
END_TEST

START_TEST(test_parse_localhost)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ps_err err;
    int rc = parse("localhost:80", &ss, &len, &err);

    ck_assert_msg(rc == 0, "parse(localhost:80) = %d (%s)", rc, err.msg);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        ck_assert_uint_eq(len, sizeof *sin);
        ck_assert_int_eq(ntohs(sin->sin_port), 80);
        ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        ck_assert_int_eq(ss.ss_family, AF_INET6);
        ck_assert_uint_eq(len, sizeof *sin6);
        ck_assert_int_eq(ntohs(sin6->sin6_port), 80);
        ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
    }
}
END_TEST

static const char *const bad_inputs[] = {
    "",           /* empty */
    "127.0.0.1",  /* no port */
    "127.0.0.1:", /* empty port */
    "1.2.3.4:",   /* empty port */
    "[::1]",      /* no port */
    "127.0.0.1:65536",
    "127.0.0.1:99999999999999999999", /* overflows any integer */
    "abc:1",                          /* not numeric, not localhost: no DNS */
    "example.com:80",
    "[::1:80",       /* unclosed bracket */
    "[::1]80",       /* no colon after the bracket */
    "127.0.0.1:+80", /* sign */
    "127.0.0.1:-1",
    "127.0.0.1:8a", /* letters */
    "127.0.0.1:0x50",
    "127.0.0.1: 80",
    "127.0.0.1:80 ",
    "300.1.1.1:80", /* octet out of range */
    "[zz::1]:80",
};

START_TEST(test_parse_bad)
{
    const char *text = bad_inputs[_i];
    struct sockaddr_storage ss;
    socklen_t len;
    ps_err err;
    int rc = parse(text, &ss, &len, &err);

    ck_assert_msg(rc == -EINVAL, "parse(\"%s\") = %d, want -EINVAL", text, rc);
    ck_assert_msg(err.code == -EINVAL, "parse(\"%s\"): err.code = %d", text, err.code);
    ck_assert_msg(err.msg[0] != '\0', "parse(\"%s\"): empty err.msg", text);
    ck_assert_msg(strlen(err.msg) < sizeof err.msg, "err.msg not terminated");
}
END_TEST

/* err.msg names the bad part of the input */
START_TEST(test_parse_msg_names_part)
{
    static const struct {
        const char *text, *part;
    } cases[] = {
        {"abc:1", "abc"},
        {"127.0.0.1:65536", "65536"},
        {"300.1.1.1:80", "300.1.1.1"},
        {"127.0.0.1:8a", "8a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        ps_err err;

        ck_assert_int_eq(parse(cases[i].text, &ss, &len, &err), -EINVAL);
        ck_assert_msg(strstr(err.msg, cases[i].part) != NULL, "\"%s\": msg \"%s\" lacks \"%s\"",
                      cases[i].text, err.msg, cases[i].part);
    }
}
END_TEST

START_TEST(test_format_roundtrip)
{
    static const char *const texts[] = {
        "127.0.0.1:7000", "0.0.0.0:0",        "255.255.255.255:65535", "[::1]:7000",
        "[::]:0",         "[2001:db8::1]:80", "[fe80::1:2]:1",         "[::ffff:1.2.3.4]:80",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        ps_err err;
        char buf[128], *r;

        ck_assert_msg(parse(texts[i], &ss, &len, &err) == 0, "%s: %s", texts[i], err.msg);
        memset(buf, 'x', sizeof buf);
        r = ps_addr_format((struct sockaddr *)&ss, len, buf, sizeof buf);
        ck_assert_ptr_eq(r, buf);
        ck_assert_str_eq(buf, texts[i]);
    }
}
END_TEST

START_TEST(test_format_truncates)
{
    struct sockaddr_storage ss;
    socklen_t len;
    ps_err err;
    char buf[8];

    ck_assert_int_eq(parse("[2001:db8::1]:8080", &ss, &len, &err), 0);
    memset(buf, 'x', sizeof buf);
    ps_addr_format((struct sockaddr *)&ss, len, buf, 6);
    ck_assert_uint_le(strlen(buf), 5);
    ck_assert_int_eq(buf[6], 'x'); /* nothing written past cap */
    ck_assert_int_eq(buf[7], 'x');
}
END_TEST

START_TEST(test_policy_parse)
{
    ps_policy p = (ps_policy)77;

    ck_assert_int_eq(ps_policy_parse("block", &p), 0);
    ck_assert_int_eq(p, PS_POLICY_BLOCK);
    ck_assert_int_eq(ps_policy_parse("reject", &p), 0);
    ck_assert_int_eq(p, PS_POLICY_REJECT);
    p = PS_POLICY_REJECT;
    ck_assert_int_eq(ps_policy_parse("", &p), -EINVAL);
    ck_assert_int_eq(ps_policy_parse("blocks", &p), -EINVAL);
    ck_assert_int_eq(ps_policy_parse("rej", &p), -EINVAL);
    ck_assert_int_eq(ps_policy_parse("drop", &p), -EINVAL);
    ck_assert_int_eq(p, PS_POLICY_REJECT); /* untouched on failure */
}
END_TEST

START_TEST(test_strerror)
{
    const char *a = ps_strerror(-EPIPE), *b = ps_strerror(EPIPE);

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, strerror(EPIPE));
    ck_assert_str_eq(ps_strerror(-EADDRINUSE), strerror(EADDRINUSE));
    ck_assert_str_ne(ps_strerror(-ETIMEDOUT), ps_strerror(-EPIPE));
    ck_assert_ptr_nonnull(ps_strerror(0));
    ck_assert_ptr_nonnull(ps_strerror(-987654));
    ck_assert_ptr_nonnull(ps_strerror(INT_MIN)); /* no overflow negating it */
    ck_assert_ptr_nonnull(ps_strerror(INT_MAX));
    ck_assert_uint_gt(strlen(ps_strerror(-987654)), 0);
}
END_TEST

START_TEST(test_close_reason_str)
{
    const char *s[5];

    for (int i = 0; i < 5; i++) {
        s[i] = ps_close_reason_str((ps_close_reason)i);
        ck_assert_ptr_nonnull(s[i]);
        ck_assert_uint_gt(strlen(s[i]), 0);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(s[i], s[j]);
    }
    ck_assert_ptr_nonnull(ps_close_reason_str((ps_close_reason)99));
}
END_TEST

START_TEST(test_version)
{
    const char *v = ps_version();
    unsigned a, b, c;
    char tail;

    ck_assert_ptr_nonnull(v);
    ck_assert_uint_gt(strlen(v), 0);
    ck_assert_msg(sscanf(v, "%u.%u.%u%c", &a, &b, &c, &tail) == 3,
                  "version \"%s\" is not MAJOR.MINOR.PATCH", v);
    ck_assert_ptr_eq(ps_version(), v);
    /* the header's macros name the library they came with */
    ck_assert_uint_eq(a, PS_VERSION_MAJOR);
    ck_assert_uint_eq(b, PS_VERSION_MINOR);
    ck_assert_uint_eq(c, PS_VERSION_PATCH);
    ck_assert_uint_eq(PS_VERSION_HEX, (a << 16) | (b << 8) | c);
}
END_TEST

Suite *addr_suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("addr");

    tcase_set_timeout(tc, 5);
    tcase_add_test(tc, test_parse_good);
    tcase_add_test(tc, test_parse_localhost);
    tcase_add_loop_test(tc, test_parse_bad, 0, (int)(sizeof bad_inputs / sizeof bad_inputs[0]));
    tcase_add_test(tc, test_parse_msg_names_part);
    tcase_add_test(tc, test_format_roundtrip);
    tcase_add_test(tc, test_format_truncates);
    tcase_add_test(tc, test_policy_parse);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_close_reason_str);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);
    return s;
}

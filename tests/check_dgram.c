/* SPDX-License-Identifier: MIT */
/*
 * check_dgram.c - the datagram reply policy (dgram_policy.c): a datagram
 * spoofed from the server's own address must not start an echo loop,
 * service source ports are not answered, and replies to one source are
 * rate limited; each refusal is counted and returned.
 *
 * Spoofing needs a raw socket (CAP_NET_RAW), and the tests that spoof or
 * bind service ports run in a private network namespace of their own
 * (CAP_SYS_ADMIN, or an unprivileged user namespace), with lo up and a
 * second local address, 10.11.12.13, on it: nothing they send can leave
 * the namespace.  Where neither is allowed those tests print "skip: ..."
 * and pass; CI runs them as root.  Each test
 * runs in its own forked child, so the namespace ends with it (with
 * CK_FORK=no the rest of the run stays in the namespace, which still has
 * 127.0.0.1 and ::1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define OTHER_LOCAL "10.11.12.13" /* a non-loopback address of the private namespace */

static ps_stats stats_of(ps_server *s)
{
    ps_stats st;

    ps_server_stats(s, &st);
    return st;
}

/* ------------------------------------------------------------ a handler */

/* Echo, recording what ps_dgram_reply returned. */
static struct {
    atomic_int ok, loop, perm, busy, other;
} rc_seen;

static void recording_echo(ps_dgram *d, const void *data, size_t len, const struct sockaddr *from,
                           void *user)
{
    int rc = ps_dgram_reply(d, data, len);

    (void)from;
    (void)user;
    atomic_fetch_add(rc == 0        ? &rc_seen.ok
                     : rc == -ELOOP ? &rc_seen.loop
                     : rc == -EPERM ? &rc_seen.perm
                     : rc == -EBUSY ? &rc_seen.busy
                                    : &rc_seen.other,
                     1);
}

/* With one worker (the default here) datagrams are handled in order, so
 * a marker's echo means everything sent before it was handled. */
static ps_server *start(ps_config *cfg, const char *l1, const char *l2)
{
    ps_handler h = {.on_datagram = recording_echo};

    memset(&rc_seen, 0, sizeof rc_seen);
    ps_config_add_listen(cfg, l1);
    if (l2)
        ps_config_add_listen(cfg, l2);
    return tu_server_start(cfg, &h, NULL, NULL);
}

/* ---------------------------------------------------------- privileges */

/* A private network namespace with lo up, and OTHER_LOCAL on lo.  0, or
 * -errno (-EPERM without CAP_SYS_ADMIN where unprivileged user namespaces
 * are off).  Without the capability, a new user namespace grants the ones
 * the test needs inside the new network namespace (the process is still
 * single-threaded here, as unshare(CLONE_NEWUSER) requires). */
static int private_net(void)
{
    struct ifreq ifr;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    int fd, rc = 0;

    if (unshare(CLONE_NEWNET) < 0 && unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
        return -errno;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        rc = -errno;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (rc == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        rc = -errno;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo:1");
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, OTHER_LOCAL, &sin->sin_addr);
    if (rc == 0 && ioctl(fd, SIOCSIFADDR, &ifr) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Enter the private namespace; false (after saying why) if this process
 * may not, and the test should end as skipped. */
static bool enter_private_net(const char *test)
{
    int rc = private_net();

    if (rc == -EPERM || rc == -EACCES) {
        fprintf(stderr,
                "skip: %s needs root or user namespaces (a private network namespace "
                "and a raw socket)\n",
                test);
        return false;
    }
    ck_assert_msg(rc == 0, "private network namespace: %s", strerror(-rc));
    return true;
}

/* --------------------------------------------------------------- sockets */

static void sockaddr_of(const char *ip, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
        *len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
        *len = sizeof *s4;
    }
}

/* Send one UDP datagram from src_ip:sport to dst_ip:dport, whatever
 * sockets own those ports: a raw socket bound to src_ip writes the UDP
 * header itself, which is what a sender forging its source does. */
static void spoof(const char *src_ip, int sport, const char *dst_ip, int dport, const char *msg)
{
    struct sockaddr_storage src, dst;
    socklen_t slen, dlen;
    char pkt[256];
    struct udphdr uh;
    size_t len = strlen(msg);
    int fd;

    sockaddr_of(src_ip, 0, &src, &slen);
    sockaddr_of(dst_ip, 0, &dst, &dlen); /* a raw socket takes no port */
    fd = socket(src.ss_family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
    ck_assert_msg(fd >= 0, "raw socket: %s", strerror(errno));
    if (src.ss_family == AF_INET6) { /* mandatory over IPv6: let the kernel compute it */
        int off = 6;
        ck_assert_int_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &off, sizeof off), 0);
    }
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, slen), 0);
    uh.source = htons((uint16_t)sport);
    uh.dest = htons((uint16_t)dport);
    uh.len = htons((uint16_t)(sizeof uh + len));
    uh.check = 0; /* IPv4: no checksum */
    memcpy(pkt, &uh, sizeof uh);
    memcpy(pkt + sizeof uh, msg, len);
    ck_assert_int_eq(sendto(fd, pkt, sizeof uh + len, 0, (struct sockaddr *)&dst, dlen),
                     (ssize_t)(sizeof uh + len));
    close(fd);
}

/* A UDP socket bound to ip:port (0 = any port), with a receive timeout. */
static int udp_from(const char *ip, int port)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 0};
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, ms = tu_ms(2000);

    sockaddr_of(ip, port, &ss, &len);
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(bind(fd, (struct sockaddr *)&ss, len) == 0, "bind %s:%d: %s", ip, port,
                  strerror(errno));
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_to(int fd, const char *ip, int port, const char *msg)
{
    struct sockaddr_storage ss;
    socklen_t len;

    sockaddr_of(ip, port, &ss, &len);
    ck_assert_int_eq(sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&ss, len),
                     (ssize_t)strlen(msg));
}

/* Send msg to ip:port from fd and wait for the same bytes back. */
static void roundtrip(int fd, const char *ip, int port, const char *msg)
{
    char buf[256];
    ssize_t n;

    send_to(fd, ip, port, msg);
    n = recv(fd, buf, sizeof buf, 0);
    ck_assert_msg(n == (ssize_t)strlen(msg) && memcmp(buf, msg, (size_t)n) == 0,
                  "no echo of '%s' (recv %zd: %s)", msg, n, n < 0 ? strerror(errno) : "");
}

static bool datagrams_above(void *arg)
{
    ps_server *s = ((void **)arg)[0];
    uint64_t limit = *(uint64_t *)((void **)arg)[1];

    return stats_of(s).datagrams > limit;
}

/* Two markers echoed from an ordinary client (with one worker, everything
 * received before them has been handled), then a bounded window in which
 * the datagram count must not move: a loop would keep it climbing
 * (63,000 a second before the policy).  Returns the count. */
static uint64_t settle(ps_server *s, const char *ip, int port)
{
    int fd = udp_from(strchr(ip, ':') ? "::1" : "127.0.0.1", 0);
    uint64_t n;
    void *arg[2] = {s, &n};

    roundtrip(fd, ip, port, "marker 1");
    roundtrip(fd, ip, port, "marker 2");
    close(fd);
    n = stats_of(s).datagrams;
    if (tu_wait_until(datagrams_above, arg, 200)) {
        uint64_t was = n;
        int64_t t0 = tu_now_ns();
        n += 1000; /* how fast: time the next thousand (bounded) */
        tu_wait_until(datagrams_above, arg, 2000);
        ck_abort_msg("the server is answering itself: %llu datagrams after the markers, then "
                     "%llu more in %.0f ms",
                     (unsigned long long)was, (unsigned long long)(stats_of(s).datagrams - was),
                     (double)(tu_now_ns() - t0) / 1e6);
    }
    return n;
}

/* ------------------------------------------------------------ the loop */

/*
 * One datagram whose source is forged to be the server's own listener
 * starts an echo to itself that never ends, unless the reply is refused.
 * Cases: a listener on 127.0.0.1; on 0.0.0.0; on [::1]; two listeners, the
 * datagram to one from the other (a loop between them); a wildcard
 * listener sent a datagram from and to the non-loopback address
 * OTHER_LOCAL (only the datagram's destination, IP_PKTINFO, shows it is
 * ours).
 */
START_TEST(test_spoofed_self_loop)
{
    static const struct {
        const char *listen, *listen2, *src, *dst;
    } cases[] = {
        {"udp:127.0.0.1:0", NULL, "127.0.0.1", "127.0.0.1"},
        {"udp:0.0.0.0:0", NULL, "127.0.0.1", "127.0.0.1"},
        {"udp:[::1]:0", NULL, "::1", "::1"},
        {"udp:127.0.0.1:0", "udp:127.0.0.1:0", "127.0.0.1", "127.0.0.1"},
        {"udp:0.0.0.0:0", NULL, OTHER_LOCAL, OTHER_LOCAL},
    };
    const char *dst = cases[_i].dst;
    ps_config cfg;
    ps_server *s;
    int port, sport;
    ps_stats st;

    if (!enter_private_net("spoofed self loop"))
        return;
    ps_config_init(&cfg);
    cfg.workers = 1;
    cfg.dgram_reply_rate = 0; /* the rate limit would only slow a loop down */
    s = start(&cfg, cases[_i].listen, cases[_i].listen2);
    port = ps_server_port(s, 0);
    sport = cases[_i].listen2 ? ps_server_port(s, 1) : port;
    spoof(cases[_i].src, sport, dst, port, "spoofed-16-bytes");
    ck_assert_int_eq(settle(s, dst, port), 3);
    st = stats_of(s);
    ck_assert_uint_eq(st.replies_refused_self, 1);
    ck_assert_int_eq(atomic_load(&rc_seen.loop), 1);
    ck_assert_int_eq(atomic_load(&rc_seen.ok), 2); /* the markers */
    ps_server_free(s);
}
END_TEST

/* A wildcard listener sent a datagram from OTHER_LOCAL:port to
 * 127.0.0.1:port.  With the port rule the source port (ours) is refused
 * at once.  With the self rule alone the one reply goes to OTHER_LOCAL,
 * which the kernel sends from OTHER_LOCAL: it comes back with source ==
 * destination and is refused, one datagram later (the bound documented in
 * dgram_policy.c). */
START_TEST(test_spoofed_other_local_address)
{
    bool self_only = _i == 1;
    ps_config cfg;
    ps_server *s;
    int port;
    ps_stats st;

    if (!enter_private_net("spoofed other local address"))
        return;
    ps_config_init(&cfg);
    cfg.workers = 1;
    cfg.dgram_reply_rate = 0;
    if (self_only)
        cfg.dgram_reply_policy = PS_DGRAM_REFUSE_SELF;
    s = start(&cfg, "udp:0.0.0.0:0", NULL);
    port = ps_server_port(s, 0);
    spoof(OTHER_LOCAL, port, "127.0.0.1", port, "spoofed-16-bytes");
    ck_assert_int_eq(settle(s, "127.0.0.1", port), self_only ? 4 : 3);
    st = stats_of(s);
    ck_assert_uint_eq(st.replies_refused_self, self_only ? 1 : 0);
    ck_assert_uint_eq(st.replies_refused_port, self_only ? 0 : 1);
    ck_assert_int_eq(atomic_load(&rc_seen.ok), self_only ? 3 : 2);
    ps_server_free(s);
}
END_TEST

/* ----------------------------------------------------------- the ports */

/* Datagrams from service ports (echo, chargen, DNS, NTP, 1023, memcached,
 * mDNS) and from another address on the server's own port are not
 * answered (-EPERM, counted); an ephemeral port is; with the rule cleared,
 * a service port is answered too. */
START_TEST(test_service_source_ports)
{
    static const int ports[] = {7, 19, 53, 123, 1023, 11211, 5353};
    const int nports = (int)(sizeof ports / sizeof ports[0]);
    ps_config cfg;
    ps_server *s;
    int port, i, fd;
    char buf[64];

    if (!enter_private_net("service source ports"))
        return;
    ps_config_init(&cfg);
    cfg.workers = 1;
    cfg.dgram_reply_rate = 0;
    s = start(&cfg, "udp:127.0.0.1:0", NULL);
    port = ps_server_port(s, 0);
    for (i = 0; i < nports; i++) {
        fd = udp_from("127.0.0.1", ports[i]);
        send_to(fd, "127.0.0.1", port, "from a service port");
        close(fd);
    }
    fd = udp_from(OTHER_LOCAL, port); /* another address, our port: not self, but refused */
    send_to(fd, "127.0.0.1", port, "from our own port number");
    close(fd);
    ck_assert_int_eq(settle(s, "127.0.0.1", port), (uint64_t)nports + 3);
    ck_assert_uint_eq(stats_of(s).replies_refused_port, (uint64_t)nports + 1);
    ck_assert_uint_eq(stats_of(s).replies_refused_self, 0);
    ck_assert_int_eq(atomic_load(&rc_seen.perm), nports + 1);
    ck_assert_int_eq(atomic_load(&rc_seen.ok), 2);
    ps_server_free(s);

    ps_config_init(&cfg);
    cfg.workers = 1;
    cfg.dgram_reply_rate = 0;
    cfg.dgram_reply_policy = PS_DGRAM_REFUSE_SELF;
    s = start(&cfg, "udp:127.0.0.1:0", NULL);
    port = ps_server_port(s, 0);
    fd = udp_from("127.0.0.1", 53);
    roundtrip(fd, "127.0.0.1", port, "port rule off");
    ck_assert_int_eq(recv(fd, buf, sizeof buf, MSG_DONTWAIT), -1);
    close(fd);
    ck_assert_uint_eq(stats_of(s).replies_refused_port, 0);
    ps_server_free(s);
}
END_TEST

/* ------------------------------------------------------------ the rate */

struct counted {
    ps_server *s;
    int want;
};

static bool all_handled(void *arg)
{
    struct counted *c = arg;

    return atomic_load(&rc_seen.ok) + atomic_load(&rc_seen.busy) >= c->want;
}

/* One source sends 1,000 datagrams as fast as the server takes them: it
 * gets at most burst + rate x elapsed replies, the rest are refused with
 * -EBUSY and counted, and exactly the answered ones arrive.  Another source
 * is not held back by the first; the first is answered again once its
 * bucket refills. */
START_TEST(test_reply_rate_limit)
{
    enum { RATE = 100, BURST = 20, TOTAL = 1000, STEP = 100 };
    ps_config cfg;
    ps_server *s;
    struct counted c;
    int port, fd, i, got = 0, others = 0;
    int64_t t0, t1;
    double allowed;
    struct timespec tick;
    char buf[64];
    ps_stats st;

    ps_config_init(&cfg);
    cfg.workers = 2; /* two workers take from the same bucket */
    cfg.dgram_reply_rate = RATE;
    cfg.dgram_reply_burst = BURST;
    s = start(&cfg, "udp:127.0.0.1:0", NULL);
    port = ps_server_port(s, 0);
    fd = udp_from("127.0.0.1", 0);
    c.s = s;
    t0 = tu_now_ns();
    for (i = 1; i <= TOTAL; i++) {
        send_to(fd, "127.0.0.1", port, "rate");
        if (i % STEP == 0) { /* never overrun the server's socket buffer */
            c.want = i;
            ck_assert_msg(tu_wait_until(all_handled, &c, tu_ms(3000)), "only %d of %d handled",
                          atomic_load(&rc_seen.ok) + atomic_load(&rc_seen.busy), i);
        }
    }
    t1 = tu_now_ns();
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) == 4)
        got++;
    /* The bucket runs on the coarse clock: one tick of slack (dgram_policy.c). */
    clock_getres(CLOCK_MONOTONIC_COARSE, &tick);
    allowed = BURST + RATE * ((double)(t1 - t0) / 1e9 + (double)tick.tv_nsec / 1e9) + 1;
    st = stats_of(s);
    ck_assert_msg(atomic_load(&rc_seen.ok) <= allowed, "%d replies in %.3f s, at most %.1f allowed",
                  atomic_load(&rc_seen.ok), (double)(t1 - t0) / 1e9, allowed);
    ck_assert_int_ge(atomic_load(&rc_seen.ok), BURST);
    ck_assert_int_eq(got, atomic_load(&rc_seen.ok));
    ck_assert_uint_eq(st.replies_refused_rate, (uint64_t)atomic_load(&rc_seen.busy));
    ck_assert_uint_eq(st.datagrams, TOTAL);
    ck_assert_int_eq(atomic_load(&rc_seen.busy), TOTAL - atomic_load(&rc_seen.ok));

    /* Other sources have their own allowance (sources hashed to the same
     * slot share one: allow one such collision among four). */
    for (i = 2; i <= 5; i++) {
        char ip[24];
        int ofd;
        snprintf(ip, sizeof ip, "127.0.0.%d", i);
        ofd = udp_from(ip, 0);
        send_to(ofd, "127.0.0.1", port, "other");
        others += recv(ofd, buf, sizeof buf, 0) == 5;
        close(ofd);
    }
    ck_assert_int_ge(others, 3);

    /* The first source's bucket refills at RATE per second. */
    for (i = 0, got = 0; i < 40 && !got; i++) {
        struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        send_to(fd, "127.0.0.1", port, "again");
        got = recv(fd, buf, sizeof buf, 0) == 5;
    }
    ck_assert_msg(got, "the source was never answered again");
    close(fd);
    ps_server_free(s);
}
END_TEST

/* ------------------------------------------------------ configuration */

START_TEST(test_policy_config)
{
    ps_config cfg;
    ps_handler h = {.on_datagram = recording_echo};
    ps_err err;
    ps_stats st = {.replies_refused_self = 1, .replies_refused_port = 2, .replies_refused_rate = 3};
    char buf[8192];

    ps_config_init(&cfg);
    ck_assert_uint_eq(cfg.dgram_reply_policy, PS_DGRAM_REFUSE_SELF | PS_DGRAM_REFUSE_PORTS);
    ck_assert_int_eq(cfg.dgram_reply_rate, 1000);
    ck_assert_int_eq(cfg.dgram_reply_burst, 1000);
    ps_config_add_listen(&cfg, "udp:127.0.0.1:0");
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), 0);
    cfg.dgram_reply_rate = -1;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "dgram_reply_rate"));
    cfg.dgram_reply_rate = 0;
    cfg.dgram_reply_burst = 0;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "dgram_reply_burst"));
    cfg.dgram_reply_burst = 1;
    cfg.dgram_reply_policy = 0x4;
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "dgram_reply_policy"));

    ck_assert_int_gt(ps_stats_format(&st, PS_STATS_TEXT, NULL, buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(
        strstr(buf, "replies_refused_self=1 replies_refused_port=2 replies_refused_rate=3"));
    ck_assert_int_gt(ps_stats_format(&st, PS_STATS_PROMETHEUS, "x", buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "x_replies_refused_rate_total 3\n"));
}
END_TEST

Suite *dgram_suite(void)
{
    Suite *s = suite_create("dgram");
    TCase *loop = tcase_create("loop");
    TCase *policy = tcase_create("policy");

    tcase_add_loop_test(loop, test_spoofed_self_loop, 0, 5);
    tcase_add_loop_test(loop, test_spoofed_other_local_address, 0, 2);
    tcase_set_timeout(loop, 15);
    tcase_add_test(policy, test_service_source_ports);
    tcase_add_test(policy, test_reply_rate_limit);
    tcase_add_test(policy, test_policy_config);
    tcase_set_timeout(policy, 20);
    suite_add_tcase(s, loop);
    suite_add_tcase(s, policy);
    return s;
}

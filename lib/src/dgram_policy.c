/* SPDX-License-Identifier: MIT */
/*
 * dgram_policy.c - what ps_dgram_reply may answer.
 *
 * A datagram's source address is whatever the sender wrote, so a reply is
 * aimed wherever a hostile sender likes.  Three rules, in this order
 * (poolsrv.h says what each refuses and returns):
 *
 *   self   the source is one of this server's own sockets.  One datagram
 *          spoofed from the server's own address and port otherwise starts
 *          an echo to itself that never ends (measured: 63,000 datagrams/s
 *          and 1.4 cores until SIGTERM).  Checked as: the source port is
 *          the port of one of our UDP listeners, and the source address is
 *          local.  "Local" is what we can know without asking the kernel
 *          for its address list (which changes at run time): loopback,
 *          0.0.0.0/::, the address the datagram was sent to (IP_PKTINFO on
 *          wildcard listeners), or a listener's bound address.  A spoofed
 *          source that is another of the host's interface addresses gets
 *          one reply, sent to ourselves; the kernel gives that reply the
 *          destination's own address as its source, so it arrives with
 *          source == destination and is refused: at most one extra
 *          datagram, never a loop.
 *   ports  the source port is a service port (below 1024, or a known UDP
 *          amplifier) or the port the datagram arrived on: real clients use
 *          ephemeral ports.
 *   rate   a token bucket per source address (IPv6: per /64), so a flood
 *          with a forged source cannot aim more than dgram_reply_rate
 *          replies a second at one victim.
 *
 * The rate state is a fixed table of PS_RATE_SLOTS 64-bit words (32 KiB,
 * allocated with the server), one GCRA "theoretical arrival time" each,
 * updated with compare-and-swap by whichever worker replies: no lock, no
 * allocation per datagram.  Sources are hashed to slots with a per-server
 * random key; sources that share a slot share its allowance, so a
 * collision makes the limit stricter, never looser (an attacker who cycles
 * through many forged sources cannot reset anyone's bucket).
 *
 * The clock is CLOCK_MONOTONIC_COARSE (a vDSO read of the kernel's tick,
 * 1-4 ms resolution): about 6 ns here against 30-40 ns for
 * CLOCK_MONOTONIC.  Within one tick the time stands still, which can only
 * refuse, so over any window of W seconds one source gets at most
 * burst + rate x (W + one tick) replies.
 *
 * Cost per reply with the defaults: a scan of the server's UDP ports (one
 * compare per UDP listener), a switch on the source port, a coarse clock
 * read, a hash and one compare-and-swap on the source's slot: 18-35 ns in
 * all (docs/benchmarks.md).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define PS_RATE_SLOTS 4096 /* power of two */

/* The address of an AF_INET/AF_INET6 sockaddr as IPv6 (IPv4 mapped) and
 * its port; false for other families. */
static bool ip_of(const struct sockaddr_storage *ss, struct in6_addr *a, uint16_t *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        memset(a, 0, sizeof *a);
        a->s6_addr[10] = a->s6_addr[11] = 0xff;
        memcpy(&a->s6_addr[12], &sin->sin_addr, 4);
        *port = ntohs(sin->sin_port);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        *a = sin6->sin6_addr;
        *port = ntohs(sin6->sin6_port);
        return true;
    }
    return false;
}

/* Loopback or unspecified, in either family: a reply there reaches this host. */
static bool is_loopback_or_any(const struct in6_addr *a)
{
    if (IN6_IS_ADDR_V4MAPPED(a))
        return a->s6_addr[12] == 127 ||
               (a->s6_addr[12] | a->s6_addr[13] | a->s6_addr[14] | a->s6_addr[15]) == 0;
    return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a);
}

static bool is_own_port(const ps_server *s, uint16_t port)
{
    int i;

    for (i = 0; i < s->ndgram_ports; i++)
        if (s->dgram_ports[i] == port)
            return true;
    return false;
}

/* An address of this host, as far as we know without the kernel's list
 * (see the head of the file).  Only asked once the port matched one of ours. */
static bool is_local(const ps_server *s, const struct ps_dgram *d, const struct in6_addr *a)
{
    struct in6_addr la;
    uint16_t lport;
    int i;

    if (is_loopback_or_any(a) || (d->have_dst && memcmp(a, &d->dst, sizeof *a) == 0))
        return true;
    for (i = 0; i < s->nls; i++)
        if (s->ls[i].type == SOCK_DGRAM && ip_of(&s->ls[i].addr, &la, &lport) &&
            memcmp(a, &la, sizeof *a) == 0)
            return true;
    return false;
}

/* Service ports: below 1024 (echo 7, daytime 13, qotd 17, chargen 19, DNS
 * 53, NTP 123, SNMP 161, LDAP 389, ...), and the UDP services above 1023
 * listed as reflection/amplification vectors by US-CERT alert TA14-017A
 * and its updates. */
static bool is_service_port(uint16_t port)
{
    if (port < 1024)
        return true;
    switch (port) {
    case 1194:  /* OpenVPN */
    case 1434:  /* MS-SQL monitor */
    case 1604:  /* Citrix ICA browser */
    case 1900:  /* SSDP */
    case 3283:  /* Apple Remote Desktop */
    case 3702:  /* WS-Discovery */
    case 5351:  /* NAT-PMP */
    case 5353:  /* mDNS */
    case 5683:  /* CoAP */
    case 10001: /* Ubiquiti discovery */
    case 11211: /* memcached */
    case 27015: /* Steam / Source engine */
    case 27960: /* Quake 3 */
    case 33848: /* Jenkins discovery */
    case 37810: /* DVR DHCPDiscover */ return true;
    default: return false;
    }
}

static uint16_t listener_port(const ps_listener *l)
{
    struct in6_addr a;
    uint16_t port = 0;

    ip_of(&l->addr, &a, &port);
    return port;
}

/* splitmix64's finaliser: a keyed hash good enough to spread addresses;
 * the key is secret, so a sender cannot aim at another source's slot. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* One reply for the source a, if its bucket allows (GCRA: a slot holds
 * the time at which its bucket will be full again; a reply moves it one
 * interval on, unless that would put it more than the burst ahead of now). */
static bool rate_take(const ps_server *s, const struct in6_addr *a)
{
    uint64_t key;
    atomic_int_least64_t *slot;
    int64_t now, tat, next;
    struct timespec ts;

    if (IN6_IS_ADDR_V4MAPPED(a)) {
        uint32_t v4;
        memcpy(&v4, &a->s6_addr[12], 4);
        key = (1ull << 32) | v4;
    } else {
        memcpy(&key, a->s6_addr, 8); /* the /64 */
    }
    slot = &s->rate_tat[mix(key ^ s->rate_seed) & (PS_RATE_SLOTS - 1)];
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* see the head of the file */
    now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    tat = atomic_load_explicit(slot, memory_order_relaxed);
    do {
        next = (tat > now ? tat : now) + s->rate_interval_ns;
        if (next - now > s->rate_depth_ns)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(slot, &tat, next, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

int ps__dgram_reply_check(struct ps_dgram *d)
{
    const ps_server *s = d->w->srv;
    unsigned policy = s->cfg.dgram_reply_policy;
    struct in6_addr a;
    uint16_t port;

    if (!ip_of(&d->from, &a, &port))
        return 0;
    if ((policy & PS_DGRAM_REFUSE_SELF) && is_own_port(s, port) && is_local(s, d, &a)) {
        ps__count(&d->w->st.replies_refused_self, 1);
        return -ELOOP;
    }
    if ((policy & PS_DGRAM_REFUSE_PORTS) &&
        (is_service_port(port) || port == listener_port(d->l))) {
        ps__count(&d->w->st.replies_refused_port, 1);
        return -EPERM;
    }
    if (s->rate_tat && !rate_take(s, &a)) {
        ps__count(&d->w->st.replies_refused_rate, 1);
        return -EBUSY;
    }
    return 0;
}

int ps__dgram_policy_new(ps_server *s)
{
    int i;

    if (!s->h.on_datagram || s->cfg.dgram_reply_rate == 0)
        return 0;
    s->rate_tat = malloc(PS_RATE_SLOTS * sizeof *s->rate_tat);
    if (!s->rate_tat)
        return -ENOMEM;
    for (i = 0; i < PS_RATE_SLOTS; i++)
        atomic_init(&s->rate_tat[i], 0);
    s->rate_interval_ns = 1000000000 / s->cfg.dgram_reply_rate;
    s->rate_depth_ns = s->rate_interval_ns * s->cfg.dgram_reply_burst;
    if (getrandom(&s->rate_seed, sizeof s->rate_seed, GRND_NONBLOCK) != sizeof s->rate_seed)
        s->rate_seed = mix((uint64_t)(uintptr_t)s ^ (uint64_t)ps__now_ms());
    return 0;
}

/* Ask for each datagram's destination on wildcard UDP listeners, so that
 * a source equal to it is known to be ours.  Without it (setsockopt
 * refused) the other tests of is_local still hold. */
static void want_destination(ps_listener *l)
{
    struct in6_addr a;
    uint16_t port;
    int one = 1;

    l->any_addr = ip_of(&l->addr, &a, &port) &&
                  (IN6_IS_ADDR_UNSPECIFIED(&a) ||
                   (IN6_IS_ADDR_V4MAPPED(&a) &&
                    (a.s6_addr[12] | a.s6_addr[13] | a.s6_addr[14] | a.s6_addr[15]) == 0));
    if (!l->any_addr)
        return;
    if (l->addr.ss_family == AF_INET)
        setsockopt(l->fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    else /* also reports IPv4 datagrams on a dual-stack socket, mapped */
        setsockopt(l->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
}

void ps__dgram_policy_start(ps_server *s)
{
    int i;

    s->ndgram_ports = 0;
    for (i = 0; i < s->nls; i++) {
        if (s->ls[i].type != SOCK_DGRAM)
            continue;
        want_destination(&s->ls[i]);
        s->dgram_ports[s->ndgram_ports++] = listener_port(&s->ls[i]);
    }
}

void ps__dgram_policy_free(ps_server *s)
{
    free(s->rate_tat);
    s->rate_tat = NULL;
}

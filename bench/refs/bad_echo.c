/* SPDX-License-Identifier: MIT */
/*
 * bad-echo - a deliberately broken thread-per-connection echo server, for
 * testing that poolsrv-bench notices.
 *
 *   bad-echo [--udp] --flip N HOST:PORT   echo, but flip one bit in every
 *                                         Nth byte (counted over all clients)
 *   bad-echo [--udp] --stall N HOST:PORT  echo the first N bytes (all clients
 *                                         together), then stop echoing: TCP
 *                                         connections stay open and silent,
 *                                         datagrams are dropped
 */
#include "ref_common.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes seen by all connection threads. */
static atomic_ullong total;
static unsigned long long every;
static int stall;

static int hook(unsigned char *buf, size_t n)
{
    unsigned long long before = atomic_fetch_add(&total, n);
    if (stall)
        return before + n <= every;
    /* Flip the byte at each multiple of `every` inside this chunk. */
    unsigned long long next = (before / every + 1) * every;
    for (; next <= before + n; next += every)
        buf[next - before - 1] ^= 0x20;
    return 1;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    int udp = argc == 5 && strcmp(argv[1], "--udp") == 0;
    if (argc == 4 + udp)
        every = strtoull(argv[2 + udp], &end, 10);
    if (argc != 4 + udp || !end || *end || every == 0 ||
        (strcmp(argv[1 + udp], "--flip") != 0 && strcmp(argv[1 + udp], "--stall") != 0)) {
        fprintf(stderr, "usage: bad-echo [--udp] --flip N | --stall N HOST:PORT\n");
        return 2;
    }
    stall = strcmp(argv[1 + udp], "--stall") == 0;
    int fd = ref_listen(argv[3 + udp], udp ? SOCK_DGRAM : SOCK_STREAM);
    if (fd < 0)
        return 1;
    return udp ? ref_udp_serve(fd, hook) : ref_tpc_serve(fd, hook);
}

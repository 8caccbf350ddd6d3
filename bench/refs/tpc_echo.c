/* SPDX-License-Identifier: MIT */
/*
 * tpc-echo - the textbook thread-per-connection echo server: one detached
 * thread with blocking read/write per client.  --udp: a one-thread UDP echo.
 *
 *   tpc-echo [--udp] HOST:PORT
 */
#include "ref_common.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int udp = argc == 3 && strcmp(argv[1], "--udp") == 0;
    if (argc != 2 + udp) {
        fprintf(stderr, "usage: tpc-echo [--udp] HOST:PORT\n");
        return 2;
    }
    int fd = ref_listen(argv[argc - 1], udp ? SOCK_DGRAM : SOCK_STREAM);
    if (fd < 0)
        return 1;
    return udp ? ref_udp_serve(fd, NULL) : ref_tpc_serve(fd, NULL);
}

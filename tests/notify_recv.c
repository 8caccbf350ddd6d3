/* SPDX-License-Identifier: MIT */
/*
 * notify_recv.c - a stand-in for systemd's notification socket in tests:
 * binds a Unix datagram socket at PATH ("@name": abstract) and prints each
 * datagram received, its lines joined by '|', one per line (flushed), for
 * at most SECONDS; then exits 0.  Exit 1 if the socket cannot be bound.
 *
 *   notify_recv PATH SECONDS
 */
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[4096];
    size_t n;
    time_t end;
    int fd;

    if (argc != 3 || (n = strlen(argv[1])) >= sizeof sa.sun_path) {
        fprintf(stderr, "usage: notify_recv PATH SECONDS\n");
        return 2;
    }
    memcpy(sa.sun_path, argv[1], n);
    if (argv[1][0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
        perror("notify_recv: bind");
        return 1;
    }
    printf("bound\n");
    fflush(stdout);
    end = time(NULL) + atoi(argv[2]);
    while (time(NULL) < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t got, i;
        if (poll(&p, 1, 100) <= 0)
            continue;
        got = recv(fd, buf, sizeof buf - 1, 0);
        if (got < 0)
            continue;
        for (i = 0; i < got; i++)
            if (buf[i] == '\n')
                buf[i] = '|';
        buf[got] = '\0';
        printf("%s\n", buf);
        fflush(stdout);
    }
    return 0;
}

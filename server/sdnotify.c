/* SPDX-License-Identifier: MIT */
/* sdnotify.c - see sdnotify.h. */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdn_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n;
    socklen_t len;
    ssize_t sent;
    int fd, e;

    if (!path || !*path)
        return 0;
    n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
        return -EINVAL;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract: the name is not terminated */
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    sent =
        sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, len);
    e = errno;
    close(fd);
    return sent < 0 ? -e : 1;
}

long sdn_watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end;
    unsigned long long us, p;

    if (!usec || !*usec)
        return 0;
    errno = 0;
    us = strtoull(usec, &end, 10);
    if (errno || *end || us == 0)
        return 0;
    if (pid && *pid) {
        p = strtoull(pid, &end, 10);
        if (*end || p != (unsigned long long)getpid())
            return 0;
    }
    us /= 2000; /* half the period, in ms */
    return us > 0 ? (long)us : 1;
}

/* SPDX-License-Identifier: MIT */
/* swarm.c - many attacking connections at once: open them, drain them. */
#include "hostile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int *fds_new(int n)
{
    int *fds = malloc((size_t)n * sizeof *fds);
    int i;

    for (i = 0; fds && i < n; i++)
        fds[i] = -1;
    return fds;
}

void close_all(int *fds, int n)
{
    int i;

    for (i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* Open n connections, at most `inflight` connecting at once.  Returns how
 * many connected; the others are -1 in fds[], and *err holds the first
 * error. */
int open_many(int port, int *fds, int n, int inflight, int64_t deadline, int *err)
{
    struct epoll_event evs[MAX_EVENTS];
    int ep = epoll_create1(EPOLL_CLOEXEC), next = 0, pending = 0, ok = 0, i;

    *err = 0;
    if (ep < 0) {
        *err = errno;
        return 0;
    }
    while ((next < n || pending > 0) && now_ms() < deadline) {
        while (next < n && pending < inflight) {
            struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)next};
            int fd = tcp_connect_start(port);
            if (fd < 0) {
                if (!*err)
                    *err = -fd;
                next++;
                continue;
            }
            fds[next++] = fd;
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            pending++;
        }
        int k = epoll_wait(ep, evs, MAX_EVENTS, 10);
        for (i = 0; i < k; i++) {
            int idx = (int)evs[i].data.u32, rc = tcp_connect_result(fds[idx]);
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[idx], NULL);
            pending--;
            if (rc < 0) {
                if (!*err)
                    *err = -rc;
                close(fds[idx]);
                fds[idx] = -1;
            } else {
                ok++;
            }
        }
    }
    for (i = 0; i < n; i++) { /* still connecting at the deadline */
        if (fds[i] >= 0 && tcp_connect_result(fds[i]) < 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    if (pending > 0 && !*err)
        *err = ETIMEDOUT;
    close(ep);
    return ok;
}

/* Read and drop what is there.  Returns 1 if the peer closed or reset the
 * connection, else 0; *got counts the bytes. */
int drain_input(int fd, long *got)
{
    char buf[16384];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (got)
                *got += n;
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
    }
}

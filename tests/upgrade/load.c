/* SPDX-License-Identifier: MIT */
/*
 * load.c - the client side of tests/upgrade/run.sh: verifying echo load
 * that counts every way a connection can be lost across a server restart.
 *
 *   upgrade-load PORT SECONDS CONNECT_THREADS CONNECTS_PER_SEC PERSISTENT
 *
 * Connect-rate load: CONNECT_THREADS threads, CONNECTS_PER_SEC in all, each
 * connection sends a payload of 1..2048 bytes derived from its own seed,
 * reads the same bytes back, compares them and closes.  Persistent load:
 * PERSISTENT clients, each keeping a connection for 0.5..1.5 s of
 * continuous verified round trips (64..512 bytes, 2 ms apart), then
 * closing it and connecting again, so that they move to the newest server.
 *
 * Prints one line of counts and exits 0 if nothing was lost, 1 otherwise:
 *   refused   connect(2) refused (nobody listening on the port)
 *   reset     ECONNRESET/EPIPE on a connection (a backlog reset, say)
 *   eof       the server closed before echoing everything
 *   wrong     an echoed byte differed
 *   timeout   no progress for 3 s
 *   other     any other error
 * Loopback only; every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OP_TIMEOUT_MS 3000
#define MAX_PAYLOAD 2048

enum { L_OK, L_REFUSED, L_RESET, L_EOF, L_WRONG, L_TIMEOUT, L_OTHER, L_N };
static const char *const names[L_N] = {"ok", "refused", "reset", "eof", "wrong", "timeout", "other"};

static int g_port;
static int64_t g_end_ms;
static double g_interval_ms; /* per connect thread */
static atomic_ulong counts[L_N], persistent_msgs, persistent_conns, bytes;
static atomic_int first_other;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int classify(int e)
{
    switch (e) {
    case ECONNREFUSED: return L_REFUSED;
    case ECONNRESET:
    case EPIPE: return L_RESET;
    case ETIMEDOUT: return L_TIMEOUT;
    default: {
        int zero = 0;
        atomic_compare_exchange_strong(&first_other, &zero, e);
        return L_OTHER;
    }
    }
}

static int wait_fd(int fd, short ev)
{
    struct pollfd p = {.fd = fd, .events = ev};
    int rc;

    do
        rc = poll(&p, 1, OP_TIMEOUT_MS);
    while (rc < 0 && errno == EINTR);
    return rc == 0 ? -ETIMEDOUT : rc < 0 ? -errno : 0;
}

/* Connect to 127.0.0.1:g_port; returns a non-blocking fd or -errno. */
static int dial(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), e, one = 1;
    socklen_t len = sizeof e;

    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        if (errno != EINPROGRESS) {
            e = errno;
            close(fd);
            return -e;
        }
        if ((e = wait_fd(fd, POLLOUT)) < 0 ||
            (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0 && e != 0 && (e = -e))) {
            close(fd);
            return e;
        }
    }
    return fd;
}

/* Send buf and read it back, compared.  Returns L_OK or a loss kind. */
static int round_trip(int fd, const unsigned char *buf, size_t len)
{
    unsigned char in[MAX_PAYLOAD];
    size_t sent = 0, got = 0;

    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        int rc = poll(&p, 1, OP_TIMEOUT_MS);
        ssize_t n;
        if (rc == 0)
            return L_TIMEOUT;
        if (rc < 0 && errno != EINTR)
            return classify(errno);
        if (sent < len && (p.revents & POLLOUT)) {
            n = send(fd, buf + sent, len - sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return classify(errno);
            if (n > 0)
                sent += (size_t)n;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            n = recv(fd, in + got, len - got, 0);
            if (n == 0)
                return L_EOF;
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return classify(errno);
            if (n > 0) {
                if (memcmp(in + got, buf + got, (size_t)n) != 0)
                    return L_WRONG;
                got += (size_t)n;
            }
        }
    }
    atomic_fetch_add(&bytes, len);
    return L_OK;
}

static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
    size_t i;

    for (i = 0; i < len; i++)
        buf[i] = (unsigned char)rnd(&seed);
}

static void *connect_main(void *arg)
{
    uint64_t seed = 0x5eed0000ull + (uintptr_t)arg * 0x10000ull;
    unsigned char buf[MAX_PAYLOAD];
    double next = (double)now_ms();

    while (now_ms() < g_end_ms) {
        size_t len = 1 + rnd(&seed) % MAX_PAYLOAD;
        int fd, r;
        int64_t wait = (int64_t)next - now_ms();
        if (wait > 0)
            poll(NULL, 0, (int)wait);
        next += g_interval_ms;
        fill(buf, len, rnd(&seed));
        fd = dial();
        if (fd < 0) {
            atomic_fetch_add(&counts[classify(-fd)], 1);
            continue;
        }
        r = round_trip(fd, buf, len);
        atomic_fetch_add(&counts[r], 1);
        close(fd);
    }
    return NULL;
}

static void *persistent_main(void *arg)
{
    uint64_t seed = 0xfeed0000ull + (uintptr_t)arg * 0x10000ull;
    unsigned char buf[512];

    while (now_ms() < g_end_ms) {
        int64_t until = now_ms() + 500 + (int64_t)(rnd(&seed) % 1000);
        int fd = dial(), r = L_OK;
        if (fd < 0) {
            atomic_fetch_add(&counts[classify(-fd)], 1);
            poll(NULL, 0, 10);
            continue;
        }
        atomic_fetch_add(&persistent_conns, 1);
        while (r == L_OK && now_ms() < until && now_ms() < g_end_ms) {
            size_t len = 64 + rnd(&seed) % 449;
            fill(buf, len, rnd(&seed));
            if ((r = round_trip(fd, buf, len)) == L_OK)
                atomic_fetch_add(&persistent_msgs, 1);
            poll(NULL, 0, 2);
        }
        if (r != L_OK)
            atomic_fetch_add(&counts[r], 1);
        else
            atomic_fetch_add(&counts[L_OK], 1);
        close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int secs, nconn, rate, npers, i, n = 0, lost = 0;
    pthread_t th[1100];

    if (argc != 6 || (g_port = atoi(argv[1])) <= 0 || (secs = atoi(argv[2])) <= 0 ||
        (nconn = atoi(argv[3])) < 0 || nconn > 64 || (rate = atoi(argv[4])) <= 0 ||
        (npers = atoi(argv[5])) < 0 || npers > 1000) {
        fprintf(stderr, "usage: %s PORT SECONDS CONNECT_THREADS CONNECTS_PER_SEC PERSISTENT\n",
                argv[0]);
        return 2;
    }
    g_end_ms = now_ms() + secs * 1000LL;
    g_interval_ms = nconn ? 1000.0 * nconn / rate : 0;
    for (i = 0; i < nconn; i++)
        if (pthread_create(&th[n], NULL, connect_main, (void *)(uintptr_t)i) == 0)
            n++;
    for (i = 0; i < npers; i++)
        if (pthread_create(&th[n], NULL, persistent_main, (void *)(uintptr_t)i) == 0)
            n++;
    if (n != nconn + npers) {
        fprintf(stderr, "%s: cannot create the client threads\n", argv[0]);
        return 2;
    }
    for (i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    {
        unsigned long total = 0;
        for (i = 0; i < L_N; i++)
            total += atomic_load(&counts[i]);
        printf("connections=%lu", total);
    }
    for (i = 0; i < L_N; i++) {
        unsigned long v = atomic_load(&counts[i]);
        printf(" %s=%lu", names[i], v);
        if (i != L_OK)
            lost += v > 0;
    }
    printf(" persistent_conns=%lu persistent_msgs=%lu bytes=%lu",
           atomic_load(&persistent_conns), atomic_load(&persistent_msgs), atomic_load(&bytes));
    if (atomic_load(&first_other))
        printf(" first_other=%s", strerror(atomic_load(&first_other)));
    printf("\n");
    return lost ? 1 : 0;
}

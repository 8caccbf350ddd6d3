/* SPDX-License-Identifier: MIT */
/*
 * tls_echo_helper.c - a test-only TLS echo server that does not use
 * libpoolsrv, so that poolsrv-client --tls and poolsrv-bench --tls are
 * tested against a TLS peer of their own (OpenSSL, one blocking thread per
 * connection).  Not installed; built only when OpenSSL is.
 *
 *   tls-echo-helper [--flip N] [--no-notify] CERT KEY HOST
 *
 * Serves TLS 1.2 and 1.3 with the certificate chain CERT and key KEY (PEM)
 * on HOST (numeric), ephemeral port, and prints "listening on ADDR" (flushed)
 * once ready.  Every byte is echoed; at the client's close_notify it sends
 * its own and closes (the client's end of stream: the TLS half-close).
 *   --flip N      flip one bit in every Nth echoed byte (counted over all
 *                 connections), for tests that must notice corruption
 *   --no-notify   close without a close_notify of its own
 * A failed handshake (the client refused the certificate) closes that
 * connection only.  Runs until killed.  Exit 1 on setup failure, 2 for usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static SSL_CTX *ctx;
static unsigned long long flip_every; /* 0: echo faithfully */
static atomic_ullong echoed;          /* bytes echoed, all connections */
static bool no_notify;

static void die(const char *what)
{
    fprintf(stderr, "tls-echo-helper: %s: %s\n", what, errno ? strerror(errno) : "failed");
    ERR_print_errors_fp(stderr);
    exit(1);
}

static int listen_on(const char *host)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    int fd, one = 1;

    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        len = sizeof(struct sockaddr_in6);
    } else {
        fprintf(stderr, "tls-echo-helper: '%s' is not a numeric address\n", host);
        exit(2);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0)
        die("bind/listen");
    return fd;
}

static void announce(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        die("getsockname");
    printf(ss.ss_family == AF_INET6 ? "listening on [%s]:%s\n" : "listening on %s:%s\n", host,
           serv);
    fflush(stdout);
}

/* --flip: corrupt the bytes of buf[0..n) that fall on a multiple of N. */
static void corrupt(unsigned char *buf, size_t n)
{
    unsigned long long before = atomic_fetch_add(&echoed, n), next;

    if (!flip_every)
        return;
    for (next = (before / flip_every + 1) * flip_every; next <= before + n; next += flip_every)
        buf[next - before - 1] ^= 0x20;
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg, n, one = 1;
    unsigned char buf[16384];
    SSL *ssl = SSL_new(ctx);

    /* Echoes go out at once, not after the ACK of the session tickets. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1)
        goto out;
    while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0) {
        corrupt(buf, (size_t)n);
        if (SSL_write(ssl, buf, n) != n) /* blocking, no partial writes */
            goto out;
    }
    if (SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN && !no_notify)
        SSL_shutdown(ssl);
out:
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static void setup(const char *cert, const char *key)
{
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        die("SSL_CTX_new");
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        die(cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        die(key);
    /* TLS 1.2 session IDs need a context to be resumable. */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tls-echo-helper", 15);
}

int main(int argc, char **argv)
{
    pthread_attr_t attr;
    pthread_t tid;
    int i = 1, lfd, fd;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--flip") == 0 && i + 1 < argc)
            flip_every = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--no-notify") == 0)
            no_notify = true;
        else
            break;
    }
    if (argc - i != 3) {
        fprintf(stderr, "usage: tls-echo-helper [--flip N] [--no-notify] CERT KEY HOST\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setup(argv[i], argv[i + 1]);
    lfd = listen_on(argv[i + 2]);
    announce(lfd);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                usleep(1000); /* until a connection ends */
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
                continue;
            die("accept");
        }
        if (pthread_create(&tid, &attr, serve, (void *)(intptr_t)fd) != 0)
            close(fd); /* out of threads: refuse this one, keep serving */
    }
}

/* SPDX-License-Identifier: MIT */
/* check_tls.c - "tls:" listeners (lib/src/tls.c) against OpenSSL clients on
 * loopback: handshake and echo in both styles, plaintext watermarks with a
 * slow reader, versions, the handshake timeout with one worker, garbage,
 * resets mid-handshake and mid-record, renegotiation, SNI, ALPN, client
 * certificates, reload, resumption, PROXY header before the handshake,
 * 2,000 concurrent connections, configuration errors.  Certificates (ECDSA
 * P-256) are made by each test into a temporary directory.  Without TLS
 * support in the build, the suite has one test, which says so. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../server/echo_handlers.h"
#include "test_util.h"

#ifdef PS_HAVE_TLS

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ============================================================ certificates */

typedef struct certs {
    char dir[64];
    char ca[96], cert[96], key[96], other_cert[96], other_key[96], client_cert[96],
        client_key[96];
    EVP_PKEY *ca_key;
    X509 *ca_x;
} certs;

static void write_pem(const char *path, EVP_PKEY *k, X509 *x)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    if (k)
        ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    if (x)
        ck_assert_int_eq(PEM_write_X509(f, x), 1);
    fclose(f);
}

/* A certificate for cn (SAN: the names, comma-separated "DNS:a,IP:..."),
 * signed by the CA (or self-signed when ca is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, certs *ca, long serial)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    ck_assert_ptr_nonnull(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca->ca_x) : X509_get_subject_name(x));
    X509V3_set_ctx(&v3, ca ? ca->ca_x : x, x, NULL, NULL, 0);
    if (san) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        ck_assert_ptr_nonnull(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, ca ? "CA:FALSE" : "CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ck_assert_int_gt(X509_sign(x, ca ? ca->ca_key : key, EVP_sha256()), 0);
    return x;
}

static void make_pair(certs *c, const char *cn, const char *san, const char *cert_path,
                      const char *key_path, long serial)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x;

    ck_assert_ptr_nonnull(k);
    x = make_cert(k, cn, san, c, serial);
    write_pem(cert_path, NULL, x);
    write_pem(key_path, k, NULL);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* A CA, the server's certificate (localhost), another (other.test, for
 * SNI) and a client certificate (CN=alice), all under a new directory. */
static void certs_make(certs *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/ps-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(c->dir));
#define P(f, name) snprintf(c->f, sizeof c->f, "%s/%s", c->dir, name)
    P(ca, "ca.pem");
    P(cert, "cert.pem");
    P(key, "key.pem");
    P(other_cert, "other.pem");
    P(other_key, "other.key");
    P(client_cert, "client.pem");
    P(client_key, "client.key");
#undef P
    c->ca_key = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(c->ca_key);
    c->ca_x = make_cert(c->ca_key, "poolsrv test CA", NULL, NULL, 1);
    write_pem(c->ca, NULL, c->ca_x);
    make_pair(c, "localhost", "DNS:localhost,IP:127.0.0.1", c->cert, c->key, 2);
    make_pair(c, "other.test", "DNS:other.test,DNS:*.wild.test", c->other_cert, c->other_key, 3);
    make_pair(c, "alice", NULL, c->client_cert, c->client_key, 4);
}

static void certs_free(certs *c)
{
    const char *files[] = {c->ca, c->cert, c->key, c->other_cert, c->other_key, c->client_cert,
                           c->client_key};

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(c->dir);
    X509_free(c->ca_x);
    EVP_PKEY_free(c->ca_key);
}

static ps_tls *tls_new(const certs *c, void (*tweak)(ps_tls_config *, const certs *))
{
    ps_tls_config tc;
    ps_tls *t;
    ps_err err = {0};

    ps_tls_config_init(&tc);
    tc.cert_file = c->cert;
    tc.key_file = c->key;
    if (tweak)
        tweak(&tc, c);
    t = ps_tls_new(&tc, &err);
    ck_assert_msg(t != NULL, "ps_tls_new: %s", err.msg);
    return t;
}

/* ================================================================ clients */

typedef struct copts {
    int max_version; /* 0: any */
    const char *sni;
    const char *alpn_wire; /* ALPN list in wire form, NUL-terminated */
    const char *cert, *key;
    const char *ca; /* verify the server against it */
    SSL_SESSION *session;
} copts;

static SSL_CTX *client_ctx(const copts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    ck_assert_ptr_nonnull(ctx);
    if (o->max_version) {
        if (o->max_version < TLS1_2_VERSION) { /* let the client try what we refuse */
            SSL_CTX_set_security_level(ctx, 0);
            SSL_CTX_set_cipher_list(ctx, "DEFAULT@SECLEVEL=0");
            SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
        }
        SSL_CTX_set_max_proto_version(ctx, o->max_version);
    }
    if (o->ca) {
        ck_assert_int_eq(SSL_CTX_load_verify_locations(ctx, o->ca, NULL), 1);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (o->cert) {
        ck_assert_int_eq(SSL_CTX_use_certificate_file(ctx, o->cert, SSL_FILETYPE_PEM), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM), 1);
    }
    if (o->alpn_wire)
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)o->alpn_wire,
                                (unsigned)strlen(o->alpn_wire));
    return ctx;
}

/* A blocking TLS client on fd (already connected).  Returns the SSL, or
 * NULL if the handshake failed (fd then still belongs to the caller). */
static SSL *tls_on_fd(int fd, const copts *o)
{
    SSL_CTX *ctx = client_ctx(o);
    SSL *ssl = SSL_new(ctx);

    SSL_CTX_free(ctx); /* the SSL holds it */
    ck_assert_ptr_nonnull(ssl);
    SSL_set_fd(ssl, fd);
    if (o->sni)
        SSL_set_tlsext_host_name(ssl, o->sni);
    if (o->session)
        SSL_set_session(ssl, o->session);
    if (SSL_connect(ssl) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

static SSL *tls_connect(int port, const copts *o)
{
    int fd = tu_connect(port, tu_ms(2000));
    SSL *ssl;
    struct timeval tv = {.tv_sec = 5};

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* bounded reads */
    ssl = tls_on_fd(fd, o);
    if (!ssl)
        close(fd);
    return ssl;
}

static void tls_close(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);

    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

static int tls_write(SSL *ssl, const void *p, size_t n)
{
    return SSL_write(ssl, p, (int)n) == (int)n ? 0 : -EIO;
}

/* Read exactly n bytes; returns n, fewer at EOF, -EIO on an error. */
static ssize_t tls_read(SSL *ssl, void *p, size_t n)
{
    size_t got = 0;

    while (got < n) {
        int k = SSL_read(ssl, (char *)p + got, (int)(n - got));
        if (k <= 0)
            return SSL_get_error(ssl, k) == SSL_ERROR_ZERO_RETURN ? (ssize_t)got : -EIO;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* One line, '\n' kept, NUL added. */
static ssize_t tls_line(SSL *ssl, char *buf, size_t cap)
{
    size_t n = 0;

    while (n + 1 < cap) {
        if (tls_read(ssl, buf + n, 1) != 1)
            return -EIO;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = 0;
    return (ssize_t)n;
}

static int fcntl_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* Echo len bytes through ssl, writing and reading at once on a
 * non-blocking socket; the reader takes at most 4 KiB per 1 ms when slow.
 * Returns 0 or -errno. */
static int tls_echo(SSL *ssl, const unsigned char *data, size_t len, bool slow)
{
    int fd = SSL_get_fd(ssl);
    size_t sent = 0, got = 0;
    unsigned char *back = malloc(len);
    int64_t deadline = tu_now_ms() + tu_ms(20000);
    int rc = 0;

    ck_assert_ptr_nonnull(back);
    if (slow) { /* a small window, so that the server's output backs up */
        int small = 65536;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    }
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    ck_assert_int_eq(fcntl_nonblock(fd), 0);
    while (got < len && rc == 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        int k;
        if (tu_now_ms() > deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        if (sent < len) {
            k = SSL_write(ssl, data + sent, (int)(len - sent > 16384 ? 16384 : len - sent));
            if (k > 0)
                sent += (size_t)k;
            else if (SSL_get_error(ssl, k) != SSL_ERROR_WANT_WRITE &&
                     SSL_get_error(ssl, k) != SSL_ERROR_WANT_READ)
                rc = -EPIPE;
        }
        k = SSL_read(ssl, back + got, (int)(len - got > (slow ? 4096 : 65536) ? (slow ? 4096 : 65536)
                                                                            : len - got));
        if (k > 0) {
            got += (size_t)k;
            if (slow)
                usleep(1000);
            continue;
        }
        if (SSL_get_error(ssl, k) == SSL_ERROR_WANT_READ ||
            SSL_get_error(ssl, k) == SSL_ERROR_WANT_WRITE)
            poll(&pfd, 1, 10);
        else
            rc = -ECONNRESET;
    }
    if (rc == 0 && memcmp(back, data, len) != 0)
        rc = -EBADMSG;
    free(back);
    ERR_clear_error();
    return rc;
}

/* The first bytes of a ClientHello, as a client would send them. */
static size_t client_hello(unsigned char *buf, size_t cap)
{
    SSL_CTX *ctx = client_ctx(&(copts){0});
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    int n;

    SSL_set_bio(ssl, rb, wb);
    SSL_connect(ssl); /* writes the ClientHello, then wants to read */
    n = BIO_read(wb, buf, (int)cap);
    ck_assert_int_gt(n, 100);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return (size_t)n;
}


/* =============================================================== handlers */

static bool g_keep; /* tls_server leaves the caller its reference */
static atomic_size_t g_max_pending; /* most ps_conn_pending seen by info_on_data */
static atomic_int g_opens;
static bool g_small_sndbuf;

static int info_line(ps_conn *c, char *buf, size_t cap)
{
    const char *v = ps_conn_tls_version(c), *a = ps_conn_tls_alpn(c), *n = ps_conn_tls_sni(c),
               *s = ps_conn_tls_peer_subject(c);

    return snprintf(buf, cap, "I %s %s %s %s %s\n", v ? v : "-", a ? a : "-", n ? n : "-",
                    s ? s : "-", ps_conn_tls_cipher(c) ? "cipher" : "-");
}

static int info_on_open(ps_conn *c, void *user)
{
    char line[512];
    int n = info_line(c, line, sizeof line);

    (void)user;
    atomic_fetch_add(&g_opens, 1);
    if (g_small_sndbuf) { /* so that output backs up in poolsrv, not the kernel */
        int small = 16384;
        setsockopt(ps_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    }
    return ps_conn_send(c, line, (size_t)n);
}

static size_t info_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    size_t p, m;

    (void)user;
    if (ps_conn_send(c, data, len) < 0)
        ps_conn_close(c);
    p = ps_conn_pending(c);
    m = atomic_load(&g_max_pending);
    while (p > m && !atomic_compare_exchange_weak(&g_max_pending, &m, p))
        ;
    return len;
}

static void info_serve(ps_conn *c, void *user)
{
    char buf[16384];
    int n = info_line(c, buf, sizeof buf);
    ssize_t k;

    (void)user;
    atomic_fetch_add(&g_opens, 1);
    if (ps_conn_write_all(c, buf, (size_t)n) < 0)
        return;
    while ((k = ps_conn_read(c, buf, sizeof buf)) > 0)
        if (ps_conn_write_all(c, buf, (size_t)k) < 0)
            return;
}

static void info_handler(ps_handler *h, bool event)
{
    memset(h, 0, sizeof *h);
    if (event) {
        h->on_open = info_on_open;
        h->on_data = info_on_data;
    } else {
        h->serve = info_serve;
    }
}

/* A server on "tls:127.0.0.1:0" with t (the config keeps its own ref). */
static ps_server *tls_server(ps_tls *t, bool event, const char *listen,
                             void (*tweak)(ps_config *), int *port)
{
    ps_config cfg;
    ps_handler h;
    ps_server *s;

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, listen ? listen : "tls:127.0.0.1:0");
    cfg.tls = t;
    cfg.workers = event ? 2 : 8;
    if (tweak)
        tweak(&cfg);
    info_handler(&h, event);
    s = tu_server_start(&cfg, &h, NULL, port);
    if (!g_keep)
        ps_tls_free(t); /* the server holds it now */
    return s;
}

/* Connect, read the info line into line (if not NULL). */
static SSL *open_info(int port, const copts *o, char *line, size_t cap)
{
    SSL *ssl = tls_connect(port, o);
    char tmp[512];

    if (ssl) {
        ck_assert_int_gt(tls_line(ssl, line ? line : tmp, line ? cap : sizeof tmp), 0);
    }
    return ssl;
}

/* ================================================================== tests */

static void small_water(ps_config *cfg)
{
    cfg->out_high_water = 64 << 10;
    cfg->out_low_water = 16 << 10;
    cfg->max_output = 256 << 10;
}

/* Handshake, the handler's view (TLS 1.3, no ALPN/SNI/subject), a short
 * echo, then 1 MiB with a slow reader: output stays within the watermarks
 * (plaintext counted) and arrives intact, in both styles. */
START_TEST(test_tls_echo)
{
    bool event = _i == 1;
    certs c;
    int port;
    char line[512];
    unsigned char *big = malloc(1 << 20);
    ps_server *s;
    SSL *ssl;
    ps_stats st;

    certs_make(&c);
    g_small_sndbuf = true;
    s = tls_server(tls_new(&c, NULL), event, NULL, small_water, &port);
    ssl = open_info(port, &(copts){.ca = c.ca, .sni = "localhost"}, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 - localhost - cipher\n");
    ck_assert_int_eq(tls_write(ssl, "hello\n", 6), 0);
    ck_assert_int_eq(tls_line(ssl, line, sizeof line), 6);
    ck_assert_str_eq(line, "hello\n");
    tu_fill(big, 1 << 20, 7);
    ck_assert_int_eq(tls_echo(ssl, big, 1 << 20, true), 0);
    if (event) {
        size_t m = atomic_load(&g_max_pending);
        ck_assert_msg(m > (16u << 10), "watermark never engaged (max pending %zu)", m);
        ck_assert_msg(m <= (64u << 10) + (64u << 10), "pending %zu past high water + a read", m);
    }
    tls_close(ssl);
    tu_assert_all_closed(s, 1);
    st = tu_stats(s);
    ck_assert_uint_eq(st.tls_handshakes, 1);
    ck_assert_uint_eq(st.tls_errors, 0);
    ck_assert_uint_eq(st.output_closes, 0);
    ck_assert_uint_eq(st.bytes_in, 6 + (1 << 20));
    ps_server_free(s);
    certs_free(&c);
    free(big);
}
END_TEST

/* TLS 1.2 is served; TLS 1.1 and 1.0 are refused and counted; with
 * min_version 1.3, TLS 1.2 is refused too. */
static void only13(ps_tls_config *tc, const certs *c)
{
    (void)c;
    tc->min_version = PS_TLS_1_3;
}

START_TEST(test_tls_versions)
{
    certs c;
    int port, port13;
    char line[512];
    ps_server *s, *s13;
    SSL *ssl;
    uint64_t last;

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), true, NULL, NULL, &port);
    s13 = tls_server(tls_new(&c, only13), true, NULL, NULL, &port13);
    ssl = open_info(port, &(copts){.max_version = TLS1_2_VERSION}, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.2 - - - cipher\n");
    tls_close(ssl);
    ck_assert_ptr_null(tls_connect(port, &(copts){.max_version = TLS1_1_VERSION}));
    ck_assert_ptr_null(tls_connect(port, &(copts){.max_version = TLS1_VERSION}));
    ck_assert(TU_STAT_EQ(s, tls_errors, 2, tu_ms(2000), &last));
    ck_assert_ptr_null(tls_connect(port13, &(copts){.max_version = TLS1_2_VERSION}));
    ck_assert(TU_STAT_EQ(s13, tls_errors, 1, tu_ms(2000), &last));
    ssl = open_info(port13, &(copts){0}, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 - - - cipher\n");
    tls_close(ssl);
    ck_assert_int_eq(atomic_load(&g_opens), 2); /* refused ones never reached the handler */
    ps_server_free(s);
    ps_server_free(s13);
    certs_free(&c);
}
END_TEST

/* One worker.  A client sends half a ClientHello and stalls; meanwhile
 * other clients are served by that worker; the staller is closed at the
 * handshake timeout (header_timeout_ms), counted as a timeout, not a TLS
 * error. */
static void one_worker(ps_config *cfg)
{
    cfg->workers = 1;
    cfg->header_timeout_ms = 400;
}

START_TEST(test_tls_handshake_timeout)
{
    bool event = _i == 1;
    certs c;
    int port, fd, i;
    unsigned char hello[2048];
    size_t n = client_hello(hello, sizeof hello);
    int64_t t0;
    ps_server *s;
    ps_stats st;

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), event, NULL, one_worker, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    t0 = tu_now_ms();
    ck_assert_int_eq(tu_write_all(fd, hello, n / 2, tu_ms(1000)), 0);
    for (i = 0; i < 3; i++) { /* served while the staller waits */
        SSL *ssl = open_info(port, &(copts){0}, NULL, 0);
        ck_assert_ptr_nonnull(ssl);
        ck_assert_int_eq(tls_write(ssl, "x\n", 2), 0);
        ck_assert_int_eq(tls_read(ssl, hello + 1024, 2), 2);
        tls_close(ssl);
    }
    ck_assert_int_lt(tu_now_ms() - t0, 400); /* before the staller's timeout */
    ck_assert_int_eq(tu_expect_eof(fd, tu_ms(3000)), 0);
    ck_assert_int_ge(tu_now_ms() - t0, 390);
    close(fd);
    tu_assert_all_closed(s, 4);
    st = tu_stats(s);
    ck_assert_uint_eq(st.timeouts, 1);
    ck_assert_uint_eq(st.tls_errors, 0);
    ck_assert_uint_eq(st.tls_handshakes, 3);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* Not TLS at all (an HTTP request): closed before any callback, counted. */
START_TEST(test_tls_garbage)
{
    bool event = _i == 1;
    certs c;
    int port, fd;
    ps_server *s;
    uint64_t last;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), event, NULL, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, req, sizeof req - 1, tu_ms(1000)), 0);
    {
        char b[256];
        ssize_t k;
        int64_t end = tu_now_ms() + tu_ms(3000);
        do /* an alert may come first, then the end */
            k = read(fd, b, sizeof b);
        while (k > 0 && tu_now_ms() < end);
        ck_assert_int_le(k, 0);
    }
    close(fd);
    ck_assert(TU_STAT_EQ(s, tls_errors, 1, tu_ms(2000), &last));
    tu_assert_all_closed(s, 1);
    ck_assert_int_eq(atomic_load(&g_opens), 0);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* A reset in the middle of the ClientHello, and one in the middle of an
 * application record after the handshake: both connections end, the
 * second as an I/O error, and nothing leaks (ASan). */
START_TEST(test_tls_resets)
{
    bool event = _i == 1;
    certs c;
    int port, fd;
    unsigned char hello[2048], rec[5 + 100] = {0x17, 0x03, 0x03, 0x40, 0x00};
    size_t n = client_hello(hello, sizeof hello);
    ps_server *s;
    SSL *ssl;
    uint64_t last;

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), event, NULL, NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, hello, n / 2, tu_ms(1000)), 0);
    ck_assert(TU_STAT_EQ(s, accepted, 1, tu_ms(2000), &last)); /* the server holds it */
    tu_close_rst(fd);
    tu_assert_all_closed(s, 1);

    ssl = open_info(port, &(copts){0}, NULL, 0);
    ck_assert_ptr_nonnull(ssl);
    fd = SSL_get_fd(ssl);
    /* a record header announcing 16 KiB, and 100 bytes of it */
    ck_assert_int_eq(tu_write_all(fd, rec, sizeof rec, tu_ms(1000)), 0);
    /* No counter shows the server has read the partial record; a pause makes
     * that likely, and the assertions hold either way. */
    usleep(20000);
    SSL_free(ssl);
    tu_close_rst(fd);
    tu_assert_all_closed(s, 2);
    ck_assert_uint_eq(tu_stats(s).tls_handshakes, 1);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* A peer that ends with a plain FIN, no close_notify (a killed process,
 * many HTTP clients): an end of stream, as docs/api.md says, not an I/O
 * error, in both styles; and a port probe that sends nothing is not a TLS
 * error.  (Before bio_ctrl answered BIO_CTRL_EOF, OpenSSL
 * reported it as a system-call error and the connection closed as one.) */
START_TEST(test_tls_eof_without_close_notify)
{
    bool event = _i == 1;
    certs c;
    int port, fd;
    char line[64];
    ps_server *s;
    SSL *ssl;

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), event, NULL, NULL, &port);
    /* a port probe (connect, close, no byte) is no TLS error either */
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    close(fd);
    tu_assert_all_closed(s, 1);
    ck_assert_uint_eq(tu_stats(s).tls_errors, 0);

    ssl = open_info(port, &(copts){0}, NULL, 0);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(tls_write(ssl, "hi\n", 3), 0);
    ck_assert_int_eq(tls_line(ssl, line, sizeof line), 3);
    fd = SSL_get_fd(ssl);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    tu_assert_all_closed(s, 2);
    ck_assert_uint_eq(tu_stats(s).io_errors, 0);
    ck_assert_uint_eq(tu_stats(s).tls_errors, 0);
    SSL_free(ssl);
    close(fd);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* A TLS 1.2 client asks to renegotiate: refused, and no second handshake
 * happens. */
START_TEST(test_tls_no_renegotiation)
{
    certs c;
    int port;
    ps_server *s;
    SSL *ssl;
    char b[8];

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), true, NULL, NULL, &port);
    ssl = open_info(port, &(copts){.max_version = TLS1_2_VERSION}, NULL, 0);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(SSL_renegotiate(ssl), 1);
    ck_assert_int_ne(SSL_do_handshake(ssl), 1);
    ERR_clear_error();
    ck_assert_int_le(SSL_read(ssl, b, sizeof b), 0); /* the session is over */
    ERR_clear_error();
    SSL_free(ssl);
    tu_assert_all_closed(s, 1);
    ck_assert_uint_eq(tu_stats(s).tls_handshakes, 1);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* SNI: other.test and *.wild.test get the added certificate, other names
 * and none get the default; the handler sees the name asked for. */
static void peer_cn(SSL *ssl, char *cn, size_t cap)
{
    X509 *x = SSL_get1_peer_certificate(ssl);

    ck_assert_ptr_nonnull(x);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, (int)cap);
    X509_free(x);
}

START_TEST(test_tls_sni)
{
    certs c;
    int port;
    char line[512], cn[64];
    ps_server *s;
    SSL *ssl;
    ps_tls *t;
    ps_err err;
    static const struct {
        const char *sni, *cn, *line;
    } cases[] = {
        {"other.test", "other.test", "I TLSv1.3 - other.test - cipher\n"},
        {"a.wild.test", "other.test", "I TLSv1.3 - a.wild.test - cipher\n"},
        {"localhost", "localhost", "I TLSv1.3 - localhost - cipher\n"},
        {"unknown.test", "localhost", "I TLSv1.3 - unknown.test - cipher\n"},
        {NULL, "localhost", "I TLSv1.3 - - - cipher\n"},
    };

    certs_make(&c);
    t = tls_new(&c, NULL);
    ck_assert_int_eq(ps_tls_add_cert(t, c.other_cert, c.other_key, &err), 0);
    ck_assert_int_eq(ps_tls_add_cert(t, c.dir, c.other_key, &err), -EINVAL); /* not a file */
    s = tls_server(t, true, NULL, NULL, &port);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssl = open_info(port, &(copts){.sni = cases[i].sni}, line, sizeof line);
        ck_assert_ptr_nonnull(ssl);
        peer_cn(ssl, cn, sizeof cn);
        ck_assert_str_eq(cn, cases[i].cn);
        ck_assert_str_eq(line, cases[i].line);
        tls_close(ssl);
    }
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* ALPN: our preference wins among what the client offers; the handler
 * sees it; a client offering none of ours is refused. */
static void alpn(ps_tls_config *tc, const certs *c)
{
    (void)c;
    tc->alpn = "h2,http/1.1";
}

START_TEST(test_tls_alpn)
{
    bool event = _i == 1;
    certs c;
    int port;
    char line[512];
    ps_server *s;
    SSL *ssl;

    certs_make(&c);
    s = tls_server(tls_new(&c, alpn), event, NULL, NULL, &port);
    ssl = open_info(port, &(copts){.alpn_wire = "\x08http/1.1\x02h2"}, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 h2 - - cipher\n");
    tls_close(ssl);
    ssl = open_info(port, &(copts){.alpn_wire = "\x08http/1.1"}, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 http/1.1 - - cipher\n");
    tls_close(ssl);
    ssl = open_info(port, &(copts){0}, line, sizeof line); /* no ALPN offered: fine */
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 - - - cipher\n");
    tls_close(ssl);
    ck_assert_ptr_null(tls_connect(port, &(copts){.alpn_wire = "\x03" "foo"}));
    tu_assert_all_closed(s, 4);
    ck_assert_uint_eq(tu_stats(s).tls_errors, 1);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* Client certificates: required -> refused without one, subject visible
 * with one; optional -> served without one (subject NULL). */
static void require_client(ps_tls_config *tc, const certs *c)
{
    tc->ca_file = c->ca;
}

static void optional_client(ps_tls_config *tc, const certs *c)
{
    tc->ca_file = c->ca;
    tc->verify_client = PS_TLS_VERIFY_OPTIONAL;
}

START_TEST(test_tls_client_cert)
{
    bool event = _i == 1;
    certs c;
    int port, oport;
    char line[512];
    ps_server *s, *so;
    SSL *ssl;
    uint64_t last;
    copts with = {.cert = NULL};

    certs_make(&c);
    with.cert = c.client_cert;
    with.key = c.client_key;
    s = tls_server(tls_new(&c, require_client), event, NULL, NULL, &port);
    so = tls_server(tls_new(&c, optional_client), event, NULL, NULL, &oport);
    /* TLS 1.3: the client learns of the refusal at its first read */
    ssl = tls_connect(port, &(copts){0});
    if (ssl) {
        ck_assert_int_lt(tls_line(ssl, line, sizeof line), 0);
        SSL_free(ssl);
    }
    ck_assert(TU_STAT_EQ(s, tls_errors, 1, tu_ms(2000), &last));
    ssl = open_info(port, &with, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 - - CN=alice cipher\n");
    tls_close(ssl);
    ssl = open_info(oport, &(copts){0}, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 - - - cipher\n");
    tls_close(ssl);
    ssl = open_info(oport, &with, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_str_eq(line, "I TLSv1.3 - - CN=alice cipher\n");
    tls_close(ssl);
    ps_server_free(s);
    ps_server_free(so);
    certs_free(&c);
}
END_TEST

/* Reload: new connections get the new certificate, an open one keeps
 * working; a reload from broken files fails and changes nothing. */
START_TEST(test_tls_reload)
{
    bool event = _i == 1;
    certs c;
    int port;
    char line[512];
    ps_server *s;
    ps_tls *t;
    SSL *old, *ssl;
    X509 *a, *b;
    ps_err err;
    FILE *f;

    certs_make(&c);
    t = tls_new(&c, NULL);
    g_keep = true;
    s = tls_server(t, event, NULL, NULL, &port);
    old = open_info(port, &(copts){0}, NULL, 0);
    ck_assert_ptr_nonnull(old);
    a = SSL_get1_peer_certificate(old);
    make_pair(&c, "localhost", "DNS:localhost", c.cert, c.key, 42); /* renewed on disk */
    ck_assert_int_eq(ps_tls_reload(t, &err), 0);
    ssl = open_info(port, &(copts){.ca = c.ca}, NULL, 0);
    ck_assert_ptr_nonnull(ssl);
    b = SSL_get1_peer_certificate(ssl);
    ck_assert_int_ne(X509_cmp(a, b), 0);
    ck_assert_int_eq(ASN1_INTEGER_get(X509_get0_serialNumber(b)), 42);
    tls_close(ssl);
    ck_assert_int_eq(tls_write(old, "still\n", 6), 0); /* the open one is untouched */
    ck_assert_int_eq(tls_line(old, line, sizeof line), 6);
    ck_assert_str_eq(line, "still\n");
    f = fopen(c.key, "w"); /* a broken key: the reload fails, serving goes on */
    fputs("garbage\n", f);
    fclose(f);
    ck_assert_int_eq(ps_tls_reload(t, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, c.key));
    ssl = open_info(port, &(copts){.ca = c.ca}, NULL, 0);
    ck_assert_ptr_nonnull(ssl);
    X509_free(b);
    b = SSL_get1_peer_certificate(ssl);
    ck_assert_int_eq(ASN1_INTEGER_get(X509_get0_serialNumber(b)), 42);
    tls_close(ssl);
    tls_close(old);
    X509_free(a);
    X509_free(b);
    ps_server_free(s);
    ps_tls_free(t);
    certs_free(&c);
}
END_TEST

/* ps_tls_reload and ps_tls_add_cert are safe from any thread: one thread
 * swaps the certificates in a loop while four clients handshake, echo,
 * close cleanly, reset after the handshake, or reset in the middle of the
 * ClientHello.  Every completed handshake echoes, every connection ends,
 * and ASan/TSan watch the generations change hands. */
struct rstress {
    ps_tls *t;
    const certs *c;
    int port;
    atomic_bool stop;
    atomic_int connects, echoed, bad;
};

static void *reloader(void *arg)
{
    struct rstress *r = arg;
    ps_err err;

    for (int i = 0; !atomic_load(&r->stop) && i < 2000; i++) {
        int rc = i % 8 == 7 && i < 32 /* a few: each rebuilds every certificate */
                     ? ps_tls_add_cert(r->t, r->c->other_cert, r->c->other_key, &err)
                     : ps_tls_reload(r->t, &err);
        if (rc != 0)
            atomic_fetch_add(&r->bad, 1);
    }
    return NULL;
}

static void *stress_client(void *arg)
{
    struct rstress *r = arg;
    unsigned char hello[2048];
    size_t n = client_hello(hello, sizeof hello);

    for (int i = 0; i < 30; i++) {
        if (i % 5 == 4) { /* half a ClientHello, then a reset */
            int fd = tu_connect(r->port, tu_ms(2000));
            if (fd < 0) {
                atomic_fetch_add(&r->bad, 1);
                continue;
            }
            atomic_fetch_add(&r->connects, 1);
            tu_write_all(fd, hello, n / 2, tu_ms(1000));
            tu_close_rst(fd);
            continue;
        }
        SSL *ssl = open_info(r->port, &(copts){0}, NULL, 0);
        char line[64];
        if (!ssl) {
            atomic_fetch_add(&r->bad, 1);
            continue;
        }
        atomic_fetch_add(&r->connects, 1);
        if (tls_write(ssl, "ping\n", 5) == 0 && tls_line(ssl, line, sizeof line) == 5)
            atomic_fetch_add(&r->echoed, 1);
        else
            atomic_fetch_add(&r->bad, 1);
        if (i % 5 == 3) { /* a reset after the handshake */
            int fd = SSL_get_fd(ssl);
            SSL_free(ssl);
            tu_close_rst(fd);
        } else {
            tls_close(ssl);
        }
    }
    return NULL;
}

START_TEST(test_tls_reload_stress)
{
    enum { NC = 4 };
    struct rstress r = {0};
    pthread_t rt, ct[NC];
    certs c;
    ps_server *s;

    certs_make(&c);
    r.c = &c;
    r.t = tls_new(&c, NULL);
    g_keep = true;
    s = tls_server(r.t, _i == 1, NULL, NULL, &r.port);
    ck_assert_int_eq(pthread_create(&rt, NULL, reloader, &r), 0);
    for (int i = 0; i < NC; i++)
        ck_assert_int_eq(pthread_create(&ct[i], NULL, stress_client, &r), 0);
    for (int i = 0; i < NC; i++)
        pthread_join(ct[i], NULL);
    atomic_store(&r.stop, true);
    pthread_join(rt, NULL);
    ck_assert_int_eq(atomic_load(&r.bad), 0);
    ck_assert_int_eq(atomic_load(&r.echoed), NC * 24);
    tu_assert_all_closed(s, (uint64_t)atomic_load(&r.connects));
    ps_server_free(s);
    ps_tls_free(r.t);
    certs_free(&c);
}
END_TEST

/* Resumption: a TLS 1.3 ticket and a TLS 1.2 session both resume; a resumed
 * TLS 1.3 connection gets a fresh ticket, which resumes again. */
START_TEST(test_tls_resume)
{
    certs c;
    int port, v;
    ps_server *s;
    SSL *ssl;
    SSL_SESSION *sess;
    uint64_t last;

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), true, NULL, NULL, &port);
    for (v = 0; v < 2; v++) {
        int maxv = v ? TLS1_2_VERSION : 0;
        ssl = open_info(port, &(copts){.max_version = maxv}, NULL, 0); /* tickets came by now */
        ck_assert_ptr_nonnull(ssl);
        sess = SSL_get1_session(ssl);
        tls_close(ssl);
        ssl = open_info(port, &(copts){.max_version = maxv, .session = sess}, NULL, 0);
        ck_assert_ptr_nonnull(ssl);
        ck_assert_int_eq(SSL_session_reused(ssl), 1);
        if (v == 0) { /* TLS 1.3: a resumed connection gets a fresh ticket (one use each) */
            SSL_SESSION *fresh = SSL_get1_session(ssl);
            const unsigned char *t0, *t1;
            size_t n0, n1;
            SSL_SESSION_get0_ticket(sess, &t0, &n0);
            SSL_SESSION_get0_ticket(fresh, &t1, &n1);
            ck_assert_msg(n1 > 0 && (n0 != n1 || memcmp(t0, t1, n0) != 0),
                          "no new ticket after a resumption");
            SSL_SESSION_free(sess);
            sess = fresh;
            tls_close(ssl);
            ssl = open_info(port, &(copts){.session = sess}, NULL, 0);
            ck_assert_ptr_nonnull(ssl);
            ck_assert_int_eq(SSL_session_reused(ssl), 1);
        }
        SSL_SESSION_free(sess);
        tls_close(ssl);
        ck_assert(TU_STAT_EQ(s, tls_resumed, (uint64_t)v + 2, tu_ms(2000), &last));
    }
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* proxy:tls: the PROXY header comes first, in the same segment as the
 * ClientHello; the handler sees the client the header names. */
static size_t g_pre_len;
static const char *g_pre;

static long buffered_first(BIO *b)
{
    return BIO_write(b, g_pre, (int)g_pre_len);
}

START_TEST(test_tls_after_proxy_header)
{
    bool event = _i == 1;
    certs c;
    int port, fd;
    char line[512];
    ps_server *s;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *sock, *buf;
    static const char hdr[] = "PROXY TCP4 10.1.2.3 127.0.0.1 40000 443\r\n";

    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), event, "proxy:tls:127.0.0.1:0", NULL, &port);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ctx = client_ctx(&(copts){0});
    ssl = SSL_new(ctx);
    sock = BIO_new_socket(fd, BIO_NOCLOSE);
    buf = BIO_new(BIO_f_buffer()); /* header + ClientHello leave in one write */
    BIO_push(buf, sock);
    g_pre = hdr;
    g_pre_len = sizeof hdr - 1;
    ck_assert_int_eq(buffered_first(buf), (long)g_pre_len);
    SSL_set_bio(ssl, buf, buf);
    ck_assert_int_eq(SSL_connect(ssl), 1);
    ck_assert_int_gt(tls_line(ssl, line, sizeof line), 0);
    ck_assert_str_eq(line, "I TLSv1.3 - - - cipher\n");
    ck_assert_int_eq(tls_write(ssl, "via proxy\n", 10), 0);
    BIO_flush(buf);
    ck_assert_int_eq(tls_line(ssl, line, sizeof line), 10);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* Many small records in one TCP segment: OpenSSL reads them all ahead
 * while the first is handed over, so the rest wait where epoll cannot see
 * them.  The event turn must drain them before re-arming, and a parked
 * blocking connection must be served again: else the echo stalls. */
START_TEST(test_tls_records_in_one_segment)
{
    bool event = _i == 1;
    certs c;
    int port, fd, i;
    ps_config cfg;
    ps_handler h;
    ps_server *s;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *sock, *buf;
    char want[200], got[200];
    ps_tls *t;

    certs_make(&c);
    t = tls_new(&c, NULL);
    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, "tls:127.0.0.1:0");
    cfg.tls = t;
    echo_handler_init(&h, event); /* blocking: echo_serve parks between reads */
    s = tu_server_start(&cfg, &h, NULL, &port);
    ps_tls_free(t);
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    {
        struct timeval tv = {.tv_sec = 3};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ctx = client_ctx(&(copts){0});
    ssl = SSL_new(ctx);
    sock = BIO_new_socket(fd, BIO_NOCLOSE);
    buf = BIO_new(BIO_f_buffer());
    BIO_push(buf, sock);
    SSL_set_bio(ssl, buf, buf);
    ck_assert_int_eq(SSL_connect(ssl), 1);
    ck_assert_int_eq(SSL_write(ssl, "0123456789", 10), 10); /* settle the session first */
    ck_assert_int_eq(BIO_flush(buf), 1);
    ck_assert_int_eq(tls_read(ssl, got, 10), 10);
    for (i = 0; i < 20; i++) { /* 20 records, buffered: one write(2) at the flush */
        memset(want + 10 * i, 'a' + i, 10);
        ck_assert_int_eq(SSL_write(ssl, want + 10 * i, 10), 10);
    }
    ck_assert_int_eq(BIO_flush(buf), 1);
    ck_assert_int_eq(tls_read(ssl, got, sizeof got), (ssize_t)sizeof got);
    ck_assert_int_eq(memcmp(got, want, sizeof want), 0);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    tu_assert_all_closed(s, 1);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* 2,000 TLS connections open at once on an event server, each echoing. */
#define MANY 2000

START_TEST(test_tls_many)
{
    certs c;
    int port, i;
    ps_server *s;
    SSL **ssl = calloc(MANY, sizeof *ssl);
    SSL_SESSION *sess = NULL;
    char b[4];
    uint64_t last;

    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_ge(tu_raise_nofile(), 2 * MANY + 100);
    certs_make(&c);
    s = tls_server(tls_new(&c, NULL), true, NULL, NULL, &port);
    for (i = 0; i < MANY; i++) {
        ssl[i] = open_info(port, &(copts){.session = sess}, NULL, 0);
        ck_assert_msg(ssl[i] != NULL, "connection %d failed", i);
        if (!sess)
            sess = SSL_get1_session(ssl[i]); /* resume the rest: the client's CPU is ours too */
    }
    ck_assert(TU_STAT_EQ(s, active, MANY, tu_ms(5000), &last));
    for (i = 0; i < MANY; i++) {
        ck_assert_int_eq(tls_write(ssl[i], "ok\n", 3), 0);
    }
    for (i = 0; i < MANY; i++) {
        ck_assert_int_eq(tls_read(ssl[i], b, 3), 3);
        tls_close(ssl[i]);
    }
    tu_assert_all_closed(s, MANY);
    ck_assert_uint_eq(tu_stats(s).tls_handshakes, MANY);
    SSL_SESSION_free(sess);
    free(ssl);
    ps_server_free(s);
    certs_free(&c);
}
END_TEST

/* Configuration errors name the problem; kTLS asked for falls back here
 * when the kernel does not offer it, and connections work either way. */
static bool kernel_has_ktls(void)
{
    char buf[256] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");

    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = 0;
        fclose(f);
    }
    return strstr(buf, "tls") != NULL;
}

static void ktls(ps_tls_config *tc, const certs *c)
{
    (void)c;
    tc->ktls = true;
}

START_TEST(test_tls_config)
{
    certs c;
    ps_tls_config tc;
    ps_config cfg;
    ps_handler h;
    ps_err err;
    ps_tls *t;
    ps_server *s;
    int port;
    char line[512];
    SSL *ssl;
    static const struct {
        const char *cert, *key, *ca, *alpn;
        int verify, minv;
        const char *msg;
    } bad[] = {
        {NULL, NULL, NULL, NULL, 0, 0, "cert_file and key_file are required"},
        {"/nonexistent.pem", "K", NULL, NULL, 0, 0, "/nonexistent.pem: No such file"},
        {"C", "O", NULL, NULL, 0, 0, "mismatch"},
        {"C", "K", NULL, NULL, PS_TLS_VERIFY_REQUIRE, 0, "verify_client needs ca_file"},
        {"C", "K", NULL, "h2,,x", 0, 0, "alpn"},
        {"C", "K", NULL, NULL, 0, 0x0302, "min_version"},
        {"C", "K", "K", NULL, 0, 0, "ca_file"},
    };

    ck_assert(ps_tls_available());
    certs_make(&c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
#define F(x) (!(x) ? NULL : strcmp((x), "C") == 0 ? c.cert : strcmp((x), "K") == 0 ? c.key \
              : strcmp((x), "O") == 0 ? c.other_key : (x))
        ps_tls_config_init(&tc);
        tc.cert_file = F(bad[i].cert);
        tc.key_file = F(bad[i].key);
        tc.ca_file = F(bad[i].ca);
        tc.alpn = bad[i].alpn;
        tc.verify_client = bad[i].verify;
        if (bad[i].minv)
            tc.min_version = bad[i].minv;
#undef F
        err.msg[0] = 0;
        ck_assert_ptr_null(ps_tls_new(&tc, &err));
        ck_assert_int_eq(err.code, -EINVAL);
        ck_assert_msg(strstr(err.msg, bad[i].msg), "case %zu: '%s'", i, err.msg);
    }
    /* a tls: listener needs a context; udp cannot have one */
    ps_config_init(&cfg);
    echo_handler_init(&h, true);
    ps_config_add_listen(&cfg, "tls:127.0.0.1:0");
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "needs ps_config.tls"));
    cfg.listen[0] = "tls:udp:127.0.0.1:0";
    ck_assert_int_eq(ps_config_validate(&cfg, &h, &err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "TLS is for streams"));
    /* kTLS: on where offered, else the fallback; served either way */
    t = tls_new(&c, ktls);
    ck_assert_int_eq(ps_tls_ktls(t), kernel_has_ktls());
    s = tls_server(t, true, NULL, NULL, &port);
    ssl = open_info(port, &(copts){0}, line, sizeof line);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(tls_write(ssl, "k\n", 2), 0);
    ck_assert_int_eq(tls_line(ssl, line, sizeof line), 2);
    tls_close(ssl);
    ps_server_free(s);
    ps_tls_free(NULL);
    certs_free(&c);
}
END_TEST

Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");

    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_tls_echo, 0, 2);
    tcase_add_test(tc, test_tls_versions);
    tcase_add_loop_test(tc, test_tls_handshake_timeout, 0, 2);
    tcase_add_loop_test(tc, test_tls_garbage, 0, 2);
    tcase_add_loop_test(tc, test_tls_resets, 0, 2);
    tcase_add_loop_test(tc, test_tls_eof_without_close_notify, 0, 2);
    tcase_add_test(tc, test_tls_no_renegotiation);
    tcase_add_test(tc, test_tls_sni);
    tcase_add_loop_test(tc, test_tls_alpn, 0, 2);
    tcase_add_loop_test(tc, test_tls_client_cert, 0, 2);
    tcase_add_loop_test(tc, test_tls_reload, 0, 2);
    tcase_add_test(tc, test_tls_resume);
    tcase_add_loop_test(tc, test_tls_reload_stress, 0, 2);
    tcase_add_loop_test(tc, test_tls_after_proxy_header, 0, 2);
    tcase_add_loop_test(tc, test_tls_records_in_one_segment, 0, 2);
    tcase_add_test(tc, test_tls_many);
    tcase_add_test(tc, test_tls_config);
    suite_add_tcase(s, tc);
    return s;
}

#else /* !PS_HAVE_TLS */

START_TEST(test_tls_unavailable)
{
    ps_tls_config tc;
    ps_err err;

    fprintf(stderr, "check_tls: built without TLS support (OpenSSL 3 not found): TLS tests "
                    "skipped; install libssl-dev for them\n");
    ck_assert(!ps_tls_available());
    ps_tls_config_init(&tc);
    tc.cert_file = tc.key_file = "x";
    ck_assert_ptr_null(ps_tls_new(&tc, &err));
    ck_assert_int_eq(err.code, -ENOTSUP);
}
END_TEST

Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");

    tcase_add_test(tc, test_tls_unavailable);
    suite_add_tcase(s, tc);
    return s;
}

#endif

/* SPDX-License-Identifier: MIT */
/*
 * tls.c - --tls for poolsrv-bench: the OpenSSL 3 calls, kept out of the load
 * loop (load.c), which sees sessions as void * and the outcome of each call
 * as the TLS_* codes of bench.h.
 *
 * One SSL_CTX is shared by the load threads (OpenSSL allows SSL_new from
 * several threads on a context nobody changes any more); each session is
 * used only by the thread that owns its connection.  Verification is off
 * unless --ca: the bench measures the server, and a certificate check per
 * handshake on the client side would only slow the client down.
 */
#include "bench.h"

#ifndef HAVE_OPENSSL

bool tls_available(void)
{
    return false;
}

/* Nothing below is reached: main() refuses --tls first. */
int tls_setup(struct opts *o)
{
    (void)o;
    return -1;
}

void tls_teardown(struct opts *o)
{
    (void)o;
}

void *tls_session_new(const struct opts *o, int fd, void *sess)
{
    (void)o, (void)fd, (void)sess;
    return NULL;
}

int tls_handshake(void *ssl, enum err_kind *kind)
{
    (void)ssl;
    *kind = ERR_TLS;
    return TLS_FAILED;
}

long tls_write(void *ssl, const void *buf, size_t len, enum err_kind *kind)
{
    (void)ssl, (void)buf, (void)len;
    *kind = ERR_TLS;
    return TLS_FAILED;
}

long tls_read(void *ssl, void *buf, size_t cap, enum err_kind *kind)
{
    (void)ssl, (void)buf, (void)cap;
    *kind = ERR_TLS;
    return TLS_FAILED;
}

bool tls_pending(void *ssl)
{
    (void)ssl;
    return false;
}

bool tls_resumed(void *ssl)
{
    (void)ssl;
    return false;
}

const char *tls_version(void *ssl)
{
    (void)ssl;
    return "";
}

const char *tls_cipher(void *ssl)
{
    (void)ssl;
    return "";
}

void *tls_finish(void *ssl, bool keep, void *old)
{
    (void)ssl, (void)keep;
    return old;
}

void tls_session_free(void *ssl)
{
    (void)ssl;
}

void tls_saved_free(void *sess)
{
    (void)sess;
}

#else

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

bool tls_available(void)
{
    return true;
}

int tls_setup(struct opts *o)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[160] = "out of memory";

    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        goto out_fail;
    /* SSL_write takes what the socket takes, as send() does, and the
     * retry after WANT_WRITE may start at another address (the pattern
     * buffer) as long as the bytes are the same. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
            snprintf(why, sizeof(why), "cannot load CA certificates from '%s'", o->ca_file);
            goto out_fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    o->tls_ctx = ctx;
    return 0;
out_fail:;
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    fprintf(stderr, "poolsrv-bench: --tls: %s%s%s\n", why, reason ? ": " : "", reason ? reason : "");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return -1;
}

void tls_teardown(struct opts *o)
{
    SSL_CTX_free(o->tls_ctx);
    o->tls_ctx = NULL;
}

/* SNI for a name (not an address); with --ca, the name or address the
 * certificate must match.  Returns 1, or 0 if OpenSSL refused. */
static int set_names(const struct opts *o, SSL *ssl)
{
    const char *name = o->sni ? o->sni : o->host;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    int ok = 1;

    if (!*name)
        return 1; /* unix: without --sni */
    if (!is_ip)
        ok &= SSL_set_tlsext_host_name(ssl, name);
    if (o->ca_file)
        ok &= is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name)
                    : SSL_set1_host(ssl, name);
    return ok;
}

void *tls_session_new(const struct opts *o, int fd, void *sess)
{
    SSL *ssl = SSL_new(o->tls_ctx);

    if (!ssl || SSL_set_fd(ssl, fd) != 1 || !set_names(o, ssl) ||
        (sess && SSL_set_session(ssl, sess) != 1)) {
        ERR_clear_error();
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}

/* The outcome of an SSL call that returned ret <= 0. */
static int outcome(SSL *ssl, int ret, enum err_kind *kind)
{
    int saved = errno;

    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_IN;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_OUT;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        *kind = saved ? err_from_errno(saved) : ERR_RESET;
        return TLS_FAILED;
    default:
        /* OpenSSL 3: the peer closed without close_notify. */
        if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return TLS_EOF;
        }
        ERR_clear_error();
        *kind = ERR_TLS;
        return TLS_FAILED;
    }
}

int tls_handshake(void *ssl, enum err_kind *kind)
{
    int ret;

    ERR_clear_error();
    ret = SSL_connect(ssl);
    if (ret == 1)
        return 1;
    ret = outcome(ssl, ret, kind);
    if (ret == TLS_EOF) { /* closed during the handshake */
        *kind = ERR_TLS;
        return TLS_FAILED;
    }
    return ret;
}

long tls_write(void *ssl, const void *buf, size_t len, enum err_kind *kind)
{
    int ret;

    ERR_clear_error();
    ret = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (ret > 0)
        return ret;
    ret = outcome(ssl, ret, kind);
    if (ret == TLS_EOF) { /* the peer's close_notify: nothing more goes */
        *kind = ERR_CLOSED;
        return TLS_FAILED;
    }
    return ret;
}

long tls_read(void *ssl, void *buf, size_t cap, enum err_kind *kind)
{
    int ret;

    ERR_clear_error();
    ret = SSL_read(ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    return ret > 0 ? ret : outcome(ssl, ret, kind);
}

bool tls_pending(void *ssl)
{
    return SSL_pending(ssl) > 0;
}

bool tls_resumed(void *ssl)
{
    return SSL_session_reused(ssl) == 1;
}

const char *tls_version(void *ssl)
{
    return SSL_get_version(ssl);
}

const char *tls_cipher(void *ssl)
{
    return SSL_get_cipher_name(ssl);
}

void *tls_finish(void *ssl, bool keep, void *old)
{
    SSL_SESSION *s;

    ERR_clear_error();
    SSL_shutdown(ssl); /* one try: a full socket just means no close_notify */
    ERR_clear_error();
    if (!keep)
        return old;
    /* TLS 1.3 tickets come after the handshake; by the end of an echo they
     * have been read, and the session they made is the one to resume. */
    s = SSL_get1_session(ssl);
    if (!s || !SSL_SESSION_is_resumable(s)) {
        SSL_SESSION_free(s);
        return old;
    }
    SSL_SESSION_free(old);
    return s;
}

void tls_session_free(void *ssl)
{
    SSL_free(ssl);
}

void tls_saved_free(void *sess)
{
    SSL_SESSION_free(sess);
}

#endif /* HAVE_OPENSSL */

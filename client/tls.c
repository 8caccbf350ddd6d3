/* SPDX-License-Identifier: MIT */
/*
 * tls.c - --tls for poolsrv-client: an OpenSSL 3 client session over the
 * connected, non-blocking stream socket of a pc_conn.
 *
 * The handshake runs right after the connect, bounded by --timeout; then
 * every byte of the mode (one-shot, stream, ping) goes through SSL_read and
 * SSL_write one non-blocking attempt at a time (pc_io_* in net.c), and the
 * caller waits for whichever poll event OpenSSL asked for.  TLS 1.2 is the
 * oldest version offered; certificates are verified against the system
 * store (or --ca) and the name given, unless --insecure.
 *
 * Built without OpenSSL (pkg-config found no openssl), pc_tls_available()
 * says so and main() refuses --tls before anything is connected; the other
 * functions are never called then.
 */
#include "client.h"

#include <string.h>

int pc_alpn_wire(const char *list, unsigned char *out, size_t cap)
{
    size_t len = 0, n;

    for (;;) {
        n = strcspn(list, ",");
        if (n == 0 || n > 255 || len + 1 + n > cap)
            return -1;
        out[len++] = (unsigned char)n;
        memcpy(out + len, list, n);
        len += n;
        if (list[n] == '\0')
            return (int)len;
        list += n + 1;
    }
}

#ifndef HAVE_OPENSSL

#include <errno.h>

bool pc_tls_available(void)
{
    return false;
}

/* Never reached: main() refuses --tls first, and c->tls stays NULL. */
int pc_tls_start(const struct pc_opts *o, struct pc_conn *c, int64_t deadline_ns)
{
    (void)o, (void)c, (void)deadline_ns;
    pc_err("built without TLS support");
    return PC_EUSAGE;
}

ssize_t pc_tls_send(struct pc_conn *c, const void *buf, size_t len)
{
    (void)c, (void)buf, (void)len;
    return -ENOTSUP;
}

ssize_t pc_tls_recv(struct pc_conn *c, void *buf, size_t cap)
{
    (void)c, (void)buf, (void)cap;
    return -ENOTSUP;
}

bool pc_tls_pending(const struct pc_conn *c)
{
    (void)c;
    return false;
}

int pc_tls_shutdown(struct pc_conn *c)
{
    (void)c;
    return -ENOTSUP;
}

void pc_tls_free(struct pc_conn *c)
{
    c->tls = NULL;
}

#else

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

/* Longest --alpn list in wire format that we pass on. */
#define ALPN_MAX 1024

struct pc_tls {
    SSL_CTX *ctx;
    SSL *ssl;
    bool eof_warned; /* the peer's missing close_notify has been reported */
};

bool pc_tls_available(void)
{
    return true;
}

/* What OpenSSL last queued, as "reason" text, into buf; the queue is
 * cleared.  fallback when it queued nothing. */
static void take_error(char *buf, size_t cap, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    snprintf(buf, cap, "%s", reason ? reason : fallback);
    ERR_clear_error();
}

/* The outcome of an SSL_* call that returned ret <= 0, as pc_io_* report
 * it: -EAGAIN with *want set, 0 for the peer's close_notify, -EPROTO with
 * c->tls_err set, or -errno. */
static ssize_t io_result(struct pc_conn *c, int ret, short *want)
{
    int saved = errno;

    switch (SSL_get_error(c->tls->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return saved ? -saved : -ECONNRESET;
    default:
        /* OpenSSL 3 reports a TCP end of stream without close_notify as an
         * error; the caller decides what it means (see pc_tls_recv). */
        if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return -EPIPE;
        }
        take_error(c->tls_err, sizeof(c->tls_err), "TLS error");
        return -EPROTO;
    }
}

/* The context: TLS 1.2 or later, partial writes (the modes hand over what
 * the socket takes, as with send()), and the trust store.  Returns PC_OK,
 * PC_EUSAGE (--ca unusable) or PC_ENET, after printing why. */
static int make_ctx(const struct pc_opts *o, struct pc_tls *t)
{
    char why[160];

    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx || SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1) {
        take_error(why, sizeof(why), "out of memory");
        pc_err("cannot set up TLS: %s", why);
        return PC_ENET;
    }
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->insecure)
        return PC_OK;
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    if (o->ca_file && SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL) != 1) {
        take_error(why, sizeof(why), "no certificate in it");
        pc_err("cannot load CA certificates from '%s': %s", o->ca_file,
               errno == ENOENT ? strerror(ENOENT) : why);
        return PC_EUSAGE;
    }
    if (!o->ca_file && SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        take_error(why, sizeof(why), "unknown error");
        pc_err("cannot load the system's CA certificates: %s", why);
        return PC_ENET;
    }
    return PC_OK;
}

/* The name the certificate must match: --sni, or HOST without brackets.
 * NULL for unix: without --sni. */
static const char *peer_name(const struct pc_opts *o, char *buf, size_t cap)
{
    size_t n;

    if (o->sni || !o->host)
        return o->sni;
    n = strlen(o->host);
    if (n >= 2 && o->host[0] == '[' && o->host[n - 1] == ']')
        snprintf(buf, cap, "%.*s", (int)(n - 2), o->host + 1);
    else
        snprintf(buf, cap, "%s", o->host);
    return buf;
}

/* SNI (names only: RFC 6066 has no IP addresses in it), the name or IP
 * address to verify, and ALPN.  Returns PC_OK, or PC_ENET after printing
 * why. */
static int set_names(const struct pc_opts *o, SSL *ssl, const char *name)
{
    unsigned char ip[16], alpn[ALPN_MAX];
    bool is_ip = name && (inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1);
    int ok = 1, len;

    if (name && !is_ip)
        ok &= SSL_set_tlsext_host_name(ssl, name);
    if (name && !o->insecure) {
        if (is_ip) {
            ok &= X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
        } else {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok &= SSL_set1_host(ssl, name);
        }
    }
    if (o->alpn) {
        len = pc_alpn_wire(o->alpn, alpn, sizeof(alpn)); /* main() has checked it */
        ok &= len > 0 && SSL_set_alpn_protos(ssl, alpn, (unsigned)len) == 0;
    }
    if (!ok) {
        char why[160];
        take_error(why, sizeof(why), "out of memory");
        pc_err("cannot set up TLS for '%s': %s", name ? name : "(no name)", why);
        return PC_ENET;
    }
    return PC_OK;
}

/* The handshake failed with err (from io_result): say why, naming the
 * certificate problem when verification was the cause. */
static void report_failure(const struct pc_opts *o, const struct pc_conn *c, const char *name,
                           ssize_t err)
{
    long v = SSL_get_verify_result(c->tls->ssl);

    if (err == -ETIMEDOUT) {
        pc_err_io(-ETIMEDOUT, "in the TLS handshake with", c->peer, o->timeout_s);
    } else if (!o->insecure && v == X509_V_ERR_HOSTNAME_MISMATCH) {
        pc_err("TLS: the certificate of %s is not valid for the name '%s'", c->peer, name);
    } else if (!o->insecure && v == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        pc_err("TLS: the certificate of %s is not valid for the address %s", c->peer, name);
    } else if (!o->insecure && v != X509_V_OK) {
        pc_err("TLS: the certificate of %s is not trusted: %s (--ca FILE names the CA to trust; "
               "--insecure skips the check)",
               c->peer, X509_verify_cert_error_string(v));
    } else if (err == 0 || err == -EPIPE) {
        pc_err("TLS handshake with %s failed: the server closed the connection", c->peer);
    } else if (err == -EPROTO) {
        pc_err("TLS handshake with %s failed: %s", c->peer, c->tls_err);
    } else {
        pc_err_io((int)err, "in the TLS handshake with", c->peer, o->timeout_s);
    }
}

/* -v: what was agreed. */
static void report_session(const struct pc_opts *o, const struct pc_conn *c, const char *name)
{
    const unsigned char *proto = NULL;
    unsigned plen = 0;

    pc_info(o, "TLS %s %s with %s; certificate %s%s%s", SSL_get_version(c->tls->ssl),
            SSL_get_cipher_name(c->tls->ssl), c->peer,
            o->insecure ? "not verified (--insecure)" : "verified for '",
            o->insecure ? "" : (name ? name : "?"), o->insecure ? "" : "'");
    if (o->alpn) {
        SSL_get0_alpn_selected(c->tls->ssl, &proto, &plen);
        if (plen)
            pc_info(o, "ALPN: %.*s", (int)plen, (const char *)proto);
        else
            pc_info(o, "ALPN: the server chose no protocol");
    }
}

int pc_tls_start(const struct pc_opts *o, struct pc_conn *c, int64_t deadline_ns)
{
    char namebuf[NI_MAXHOST];
    const char *name = peer_name(o, namebuf, sizeof(namebuf));
    struct pc_tls *t = calloc(1, sizeof(*t));
    ssize_t err;
    int status, ret, rc;
    short want = POLLIN;

    if (!t) {
        pc_err("out of memory");
        return PC_ENET;
    }
    c->tls = t;
    ERR_clear_error();
    status = make_ctx(o, t);
    if (status != PC_OK)
        goto out_free;
    t->ssl = SSL_new(t->ctx);
    if (!t->ssl || SSL_set_fd(t->ssl, c->fd) != 1) {
        pc_err("cannot set up TLS: out of memory");
        status = PC_ENET;
        goto out_free;
    }
    status = set_names(o, t->ssl, name);
    if (status != PC_OK)
        goto out_free;
    for (;;) {
        ret = SSL_connect(t->ssl);
        if (ret == 1)
            break;
        err = io_result(c, ret, &want);
        if (err == -EAGAIN) {
            rc = pc_wait(c->fd, want, deadline_ns);
            if (rc > 0)
                continue;
            err = rc == 0 ? -ETIMEDOUT : rc;
        }
        report_failure(o, c, name, err);
        status = PC_ENET;
        goto out_free;
    }
    report_session(o, c, name);
    return PC_OK;
out_free:
    pc_tls_free(c);
    return status;
}

ssize_t pc_tls_send(struct pc_conn *c, const void *buf, size_t len)
{
    int ret;
    ssize_t err;

    ERR_clear_error();
    ret = SSL_write(c->tls->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (ret > 0)
        return ret;
    err = io_result(c, ret, &c->wr_want);
    return err == 0 ? -EPIPE : err; /* close_notify does not end our direction */
}

ssize_t pc_tls_recv(struct pc_conn *c, void *buf, size_t cap)
{
    int ret;
    ssize_t err;

    ERR_clear_error();
    ret = SSL_read(c->tls->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (ret > 0)
        return ret;
    err = io_result(c, ret, &c->rd_want);
    if (err != -EPIPE)
        return err;
    /* Many servers close without close_notify; a truncation would look the
     * same, so say it, and take it as the end of the stream. */
    if (!c->tls->eof_warned)
        pc_err("warning: %s closed the connection without a TLS close_notify "
               "(what came before may be truncated)",
               c->peer);
    c->tls->eof_warned = true;
    return 0;
}

bool pc_tls_pending(const struct pc_conn *c)
{
    return SSL_pending(c->tls->ssl) > 0;
}

int pc_tls_shutdown(struct pc_conn *c)
{
    int ret;

    ERR_clear_error();
    ret = SSL_shutdown(c->tls->ssl);
    if (ret >= 0)
        return 0; /* our close_notify is out; the peer's may come later */
    ssize_t err = io_result(c, ret, &c->wr_want);
    return err == 0 ? 0 : (int)err;
}

void pc_tls_free(struct pc_conn *c)
{
    if (!c->tls)
        return;
    SSL_free(c->tls->ssl);
    SSL_CTX_free(c->tls->ctx);
    free(c->tls);
    c->tls = NULL;
}

#endif /* HAVE_OPENSSL */

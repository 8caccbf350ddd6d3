/* SPDX-License-Identifier: MIT */
/*
 * tls_conn.c - a TLS connection: our socket BIO, the handshake phase and
 * the I/O every byte of a "tls:" connection goes through (the contexts are
 * in tls.c, whose comment says how the two fit).
 */
#include "tls_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PS_HAVE_TLS

#include <unistd.h>

/* -------------------------------------------------------------- BIO */

static int bio_write(BIO *b, const char *buf, int len)
{
    ps_conn *c = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len)
{
    ps_conn *c = BIO_get_data(b);
    ps_buf *pre = &c->tls->pre;
    ssize_t n;

    BIO_clear_retry_flags(b);
    if (pre->len > 0) {
        size_t k = (size_t)len < pre->len ? (size_t)len : pre->len;
        memcpy(buf, pre->data + pre->off, k);
        pre->off += k;
        pre->len -= k;
        if (pre->len == 0)
            ps__buf_free(pre);
        return (int)k;
    }
    do
        n = recv(c->fd, buf, (size_t)len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    c->tls->short_read = n < len;
    if (n == 0)
        c->tls->eof = true;
    return (int)n;
}

/* OpenSSL asks BIO_eof after a read of 0 bytes: only a true answer lets
 * SSL_OP_IGNORE_UNEXPECTED_EOF make a FIN without close_notify an end of
 * stream rather than an error. */
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    ps_conn *c = BIO_get_data(b);

    (void)num;
    (void)ptr;
    if (cmd == BIO_CTRL_EOF)
        return c && c->tls && c->tls->eof;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

BIO_METHOD *ps__tls_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "poolsrv socket");

    if (m && (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
              !BIO_meth_set_ctrl(m, bio_ctrl))) {
        BIO_meth_free(m);
        m = NULL;
    }
    return m;
}

/* ------------------------------------------------------- connections */

/* The first handshake step: a session on the generation in use now. */
static int conn_start(ps_conn *c)
{
    ps_tls *t = c->srv->tls;
    struct ps_tls_conn *tc = calloc(1, sizeof *tc);
    struct gen *g;
    BIO *b = NULL;

    if (!tc)
        return -ENOMEM;
    pthread_mutex_lock(&t->lock);
    g = t->gen;
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&t->lock);
    tc->gen = g;
    c->tls = tc;
    tc->ssl = SSL_new(g->ctx);
    if (!tc->ssl)
        return -ENOMEM; /* ps__tls_conn_free undoes the rest */
    SSL_set_app_data(tc->ssl, c);
    if (c->in.len > 0) { /* came with the PROXY header: ciphertext */
        tc->pre = c->in;
        memset(&c->in, 0, sizeof c->in);
        c->flags &= ~(unsigned)PS_CF_IN_UNSEEN;
    }
    if (t->ktls && tc->pre.len == 0) {
        if (!SSL_set_fd(tc->ssl, c->fd))
            return -ENOMEM;
    } else {
        if (!(b = BIO_new(t->bio)))
            return -ENOMEM;
        BIO_set_data(b, c);
        BIO_set_init(b, 1);
        SSL_set_bio(tc->ssl, b, b);
    }
    SSL_set_accept_state(tc->ssl);
    return 0;
}

static void handshake_failed(struct ps_worker *w, ps_conn *c, int e, int sys_errno)
{
    char r[160];
    bool cut = atomic_load_explicit(&c->timed_out, memory_order_relaxed) ||
               atomic_load_explicit(&c->forced, memory_order_relaxed);
    /* Closed before sending a byte: a port probe or a load balancer's
     * health check, not a failed handshake. */
    bool probe = e != SSL_ERROR_SSL && !sys_errno && c->tls->pre.len == 0 &&
                 BIO_number_read(SSL_get_rbio(c->tls->ssl)) == 0;

    if (!cut && !probe) /* a timeout is counted as one already */
        ps__count(&w->st.tls_errors, 1);
    if (c->srv->cfg.log_level >= PS_LOG_DEBUG)
        ps__log(c->srv, PS_LOG_DEBUG, "connection %llu from %s: TLS handshake failed: %s",
                (unsigned long long)c->id, ps_conn_peer_str(c),
                e == SSL_ERROR_SSL ? ps__tls_reason(r, sizeof r)
                : sys_errno       ? ps_strerror(sys_errno)
                : cut             ? "timed out"
                                  : "closed by the peer");
    ERR_clear_error();
    ps__conn_destroy(w, c);
}

static void handshake_done(struct ps_worker *w, ps_conn *c)
{
    SSL *ssl = c->tls->ssl;

    c->flags &= ~(unsigned)PS_CF_TLS;
    atomic_store_explicit(&c->header_pending, false, memory_order_relaxed);
    ps__count(&w->st.tls_handshakes, 1);
    if (SSL_session_reused(ssl))
        ps__count(&w->st.tls_resumed, 1);
    c->ready |= EPOLLIN; /* application data may have come with the client's Finished */
    if (c->srv->cfg.log_level >= PS_LOG_DEBUG)
        ps__log(c->srv, PS_LOG_DEBUG, "connection %llu: %s %s%s", (unsigned long long)c->id,
                SSL_get_version(ssl), SSL_get_cipher_name(ssl),
                SSL_session_reused(ssl) ? " (resumed)" : "");
}

bool ps__tls_step(struct ps_worker *w, ps_conn *c)
{
    int rc, e, sys_errno;

    if (!c->tls && conn_start(c) < 0) {
        ps__log(c->srv, PS_LOG_WARN, "connection %llu: TLS: out of memory",
                (unsigned long long)c->id);
        ps__conn_destroy(w, c);
        return false;
    }
    ERR_clear_error();
    errno = 0;
    rc = SSL_do_handshake(c->tls->ssl);
    sys_errno = errno;
    if (rc == 1) {
        handshake_done(w, c);
        return true;
    }
    e = SSL_get_error(c->tls->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (!ps__conn_arm(c, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT))
            ps__queue_push_spill(c->srv->q, &c->spill, c); /* no handle exists yet */
        return false;
    }
    handshake_failed(w, c, e, e == SSL_ERROR_SYSCALL ? sys_errno : 0);
    return false;
}

/* SSL_read / SSL_write's result as recv / send give it. */
static ssize_t io_result(ps_conn *c, int n, int *want, int sys_errno, bool writing)
{
    int e = SSL_get_error(c->tls->ssl, n);

    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        *want = e;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
        *want = 0;
        if (!writing)
            return 0;
        errno = EPIPE;
        return -1;
    case SSL_ERROR_SYSCALL:
        if (!sys_errno && c->tls->eof && !writing) { /* the peer's FIN, no close_notify */
            *want = 0;
            return 0;
        }
        errno = sys_errno ? sys_errno : ECONNRESET;
        return -1;
    default: /* SSL_ERROR_SSL: a bad record, an alert */
        if (c->srv->cfg.log_level >= PS_LOG_DEBUG) {
            char r[160];
            ps__log(c->srv, PS_LOG_DEBUG, "connection %llu: TLS: %s", (unsigned long long)c->id,
                    ps__tls_reason(r, sizeof r));
        }
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

ssize_t ps__tls_recv(ps_conn *c, void *buf, size_t len)
{
    struct ps_tls_conn *tc = c->tls;
    int n;

    ERR_clear_error();
    errno = 0;
    n = SSL_read(tc->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        tc->rd_want = 0;
        return n;
    }
    return io_result(c, n, &tc->rd_want, errno, false);
}

ssize_t ps__tls_send(ps_conn *c, const void *buf, size_t len)
{
    struct ps_tls_conn *tc = c->tls;
    int n;

    ERR_clear_error();
    errno = 0;
    n = SSL_write(tc->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        tc->wr_want = 0;
        return n;
    }
    return io_result(c, n, &tc->wr_want, errno, true);
}

bool ps__tls_pending(const ps_conn *c)
{
    return !(c->flags & PS_CF_TLS) && SSL_has_pending(c->tls->ssl);
}

bool ps__tls_drained(const ps_conn *c)
{
    return c->tls->short_read && !SSL_has_pending(c->tls->ssl);
}

uint32_t ps__tls_read_events(const ps_conn *c)
{
    return c->tls->rd_want == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN;
}

uint32_t ps__tls_write_events(const ps_conn *c)
{
    return c->tls->wr_want == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
}

void ps__tls_close_notify(ps_conn *c)
{
    struct ps_tls_conn *tc = c->tls;

    if (!tc || tc->notified || (c->flags & (PS_CF_TLS | PS_CF_FATAL | PS_CF_ABORT)))
        return;
    tc->notified = true;
    ERR_clear_error();
    SSL_shutdown(tc->ssl); /* one try: a full socket buffer loses it, as nginx's would */
    ERR_clear_error();
}

void ps__tls_conn_free(ps_conn *c)
{
    struct ps_tls_conn *tc = c->tls;

    if (!tc)
        return;
    if (!(c->flags & PS_CF_OUTLIMIT) && !atomic_load_explicit(&c->timed_out, memory_order_relaxed) &&
        !atomic_load_explicit(&c->forced, memory_order_relaxed))
        ps__tls_close_notify(c);
    SSL_free(tc->ssl);
    ps__tls_gen_unref(tc->gen);
    ps__buf_free(&tc->pre);
    free(tc->alpn);
    free(tc->subject);
    free(tc);
    c->tls = NULL;
}

/* -------------------------------------------------------- accessors */

static SSL *open_ssl(const ps_conn *c)
{
    return c->tls && !(c->flags & PS_CF_TLS) ? c->tls->ssl : NULL;
}

const char *ps_conn_tls_version(const ps_conn *c)
{
    SSL *ssl = open_ssl(c);

    return ssl ? SSL_get_version(ssl) : NULL;
}

const char *ps_conn_tls_cipher(const ps_conn *c)
{
    SSL *ssl = open_ssl(c);

    return ssl ? SSL_get_cipher_name(ssl) : NULL;
}

const char *ps_conn_tls_alpn(const ps_conn *c)
{
    SSL *ssl = open_ssl(c);
    const unsigned char *p;
    unsigned n;

    if (!ssl)
        return NULL;
    if (!c->tls->alpn) {
        SSL_get0_alpn_selected(ssl, &p, &n);
        if (n == 0)
            return NULL;
        c->tls->alpn = strndup((const char *)p, n);
    }
    return c->tls->alpn;
}

const char *ps_conn_tls_sni(const ps_conn *c)
{
    SSL *ssl = open_ssl(c);

    return ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *ps_conn_tls_peer_subject(const ps_conn *c)
{
    SSL *ssl = open_ssl(c);
    X509 *x;
    BIO *b;
    char *p;
    long n;

    if (!ssl || !(x = SSL_get0_peer_certificate(ssl)) || SSL_get_verify_result(ssl) != X509_V_OK)
        return NULL;
    if (c->tls->subject)
        return c->tls->subject;
    if (!(b = BIO_new(BIO_s_mem())))
        return NULL;
    if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0 &&
        (n = BIO_get_mem_data(b, &p)) >= 0)
        c->tls->subject = strndup(p, (size_t)n);
    BIO_free(b);
    return c->tls->subject;
}

#else /* !PS_HAVE_TLS */

/* Never reached: no "tls:" listener passes validation. */
bool ps__tls_step(struct ps_worker *w, ps_conn *c)
{
    ps__conn_destroy(w, c);
    return false;
}

ssize_t ps__tls_recv(ps_conn *c, void *buf, size_t len)
{
    (void)c;
    (void)buf;
    (void)len;
    errno = EPROTO;
    return -1;
}

ssize_t ps__tls_send(ps_conn *c, const void *buf, size_t len)
{
    return ps__tls_recv(c, (void *)buf, len);
}

bool ps__tls_pending(const ps_conn *c)
{
    (void)c;
    return false;
}

bool ps__tls_drained(const ps_conn *c)
{
    (void)c;
    return true;
}

uint32_t ps__tls_read_events(const ps_conn *c)
{
    (void)c;
    return EPOLLIN;
}

uint32_t ps__tls_write_events(const ps_conn *c)
{
    (void)c;
    return EPOLLOUT;
}

void ps__tls_close_notify(ps_conn *c)
{
    (void)c;
}

void ps__tls_conn_free(ps_conn *c)
{
    (void)c;
}

const char *ps_conn_tls_version(const ps_conn *c)
{
    (void)c;
    return NULL;
}

const char *ps_conn_tls_cipher(const ps_conn *c)
{
    (void)c;
    return NULL;
}

const char *ps_conn_tls_alpn(const ps_conn *c)
{
    (void)c;
    return NULL;
}

const char *ps_conn_tls_sni(const ps_conn *c)
{
    (void)c;
    return NULL;
}

const char *ps_conn_tls_peer_subject(const ps_conn *c)
{
    (void)c;
    return NULL;
}

#endif

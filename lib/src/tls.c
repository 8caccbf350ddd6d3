/* SPDX-License-Identifier: MIT */
/*
 * tls.c - TLS on "tls:" listeners, with OpenSSL 3: the contexts (ps_tls).
 * A connection's handshake phase and its I/O are in tls_conn.c.
 *
 * A ps_tls holds a *generation*: the SSL_CTX of the default certificate and
 * one per SNI certificate, built together from the files.  ps_tls_reload
 * and ps_tls_add_cert build a new generation and swap it in under `lock`;
 * a connection takes a reference on the generation it started with, so
 * established connections keep their certificates and the old generation
 * goes with the last of them.  Session-ticket keys belong to the ps_tls,
 * not to a generation, so tickets survive a reload; they rotate every
 * session_timeout_s, and tickets under the previous key are still
 * accepted (and renewed).
 *
 * The handshake runs like the PROXY header phase (proxy_conn.c): on a
 * worker, before the handler sees the connection, one step per readiness
 * event, the connection re-armed for whatever OpenSSL waits for in between,
 * so a stalled client holds no worker; header_timeout_ms cuts it (the
 * timeout scan sees header_pending).  Afterwards every byte of the
 * connection goes through SSL_read / SSL_write (the ps__io_* wrappers in
 * internal.h), so handlers see plaintext.  Bytes that came with a PROXY
 * header are the start of the ClientHello: our BIO hands them to OpenSSL
 * before it reads the socket.  The BIO also sends with MSG_NOSIGNAL, so a
 * peer that left yields EPIPE, never SIGPIPE (OpenSSL's socket BIO uses
 * write(2)); with kernel TLS the socket BIO is needed, and the library's
 * threads block SIGPIPE anyway.
 *
 * Memory: SSL_MODE_RELEASE_BUFFERS frees a session's record buffers
 * whenever they are empty, so an idle TLS connection holds its SSL object
 * and nothing more (docs/benchmarks.md has the figure).
 */
#include "tls_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef PS_HAVE_TLS

#include <strings.h>
#include <unistd.h>

/* ------------------------------------------------------------ errors */

/* OpenSSL's reason for the earliest error queued on this thread, and clear
 * the queue. */
const char *ps__tls_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;

    if (r)
        snprintf(buf, cap, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "unknown error");
    ERR_clear_error();
    return buf;
}

static int ssl_fail(ps_err *err, const char *what, const char *file)
{
    char r[160];

    return ps__set_err(err, -EINVAL, "tls: %s %s: %s", what, file, ps__tls_reason(r, sizeof r));
}

/* A clear message for the usual mistake, before OpenSSL's. */
static int check_file(ps_err *err, const char *what, const char *file)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return ps__set_err(err, -EINVAL, "tls: %s %s: %s", what, file, ps_strerror(errno));
    close(fd);
    return 0;
}

/* ------------------------------------------------------- ticket keys */

static int new_key(struct tkey *k)
{
    return RAND_bytes((unsigned char *)k, sizeof *k) == 1 ? 0 : -EIO;
}

/* Under key_lock: a new current key every session_timeout_s. */
static void rotate_if_due(ps_tls *t)
{
    int64_t now = ps__now_ms();
    struct tkey k;

    if (now - t->rotated_at < (int64_t)t->cfg.session_timeout_s * 1000 || new_key(&k) < 0)
        return;
    t->prev = t->cur;
    t->have_prev = true;
    t->cur = k;
    t->rotated_at = now;
}

/* OpenSSL's ticket callback: 1 = key found, 2 = found but renew the ticket
 * (the previous key), 0 = unknown key (full handshake), -1 = error. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    ps_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    struct tkey k;
    OSSL_PARAM params[3];
    int rc = 0, ok;

    pthread_mutex_lock(&t->key_lock);
    rotate_if_due(t);
    if (enc || memcmp(name, t->cur.name, 16) == 0) {
        k = t->cur;
        /* TLS 1.3 clients use a ticket once: without a fresh one after each
         * resumption (2: "renew"; OpenSSL issues none when this callback
         * answers 1), every other connection was a full handshake. */
        rc = !enc && SSL_version(s) >= TLS1_3_VERSION ? 2 : 1;
    } else if (t->have_prev && memcmp(name, t->prev.name, 16) == 0) {
        k = t->prev;
        rc = 2;
    }
    pthread_mutex_unlock(&t->key_lock);
    if (rc == 0)
        return 0;
    if (enc) {
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, k.name, 16);
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof k.hmac);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    ok = EVP_MAC_CTX_set_params(hctx, params) &&
         (enc ? EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv)
              : EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k.aes, iv));
    OPENSSL_cleanse(&k, sizeof k);
    return ok ? rc : -1;
}

/* ------------------------------------------------------ ALPN and SNI */

/* The first of our protocols (our order of preference) that the client
 * offers. */
static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    ps_tls *t = arg;
    size_t i;
    unsigned j;

    (void)s;
    for (i = 0; i < t->alpn_len; i += 1u + t->alpn_wire[i])
        for (j = 0; j < inlen; j += 1u + in[j])
            if (in[j] == t->alpn_wire[i] && j + 1u + in[j] <= inlen &&
                memcmp(in + j + 1, t->alpn_wire + i + 1, in[j]) == 0) {
                *out = t->alpn_wire + i + 1;
                *outlen = t->alpn_wire[i];
                return SSL_TLSEXT_ERR_OK;
            }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol, RFC 7301 */
}

/* "*.example.com" matches exactly one label in front of example.com. */
static bool name_matches(const char *pat, const char *name)
{
    const char *dot;

    if (pat[0] == '*' && pat[1] == '.') {
        dot = strchr(name, '.');
        return dot && dot != name && strcasecmp(dot, pat + 1) == 0;
    }
    return strcasecmp(pat, name) == 0;
}

static int sni_cb(SSL *s, int *alert, void *arg)
{
    ps_conn *c = SSL_get_app_data(s);
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    struct gen *g = c->tls->gen;
    size_t i, j;

    (void)alert;
    (void)arg;
    if (!name)
        return SSL_TLSEXT_ERR_OK;
    /* exact names first, so a.example.com beats *.example.com */
    for (int wild = 0; wild < 2; wild++)
        for (i = 0; i < g->nsni; i++)
            for (j = 0; j < g->sni[i].nnames; j++) {
                const char *pat = g->sni[i].names[j];
                if ((pat[0] == '*') == wild && name_matches(pat, name)) {
                    SSL_set_SSL_CTX(s, g->sni[i].ctx);
                    return SSL_TLSEXT_ERR_OK;
                }
            }
    return SSL_TLSEXT_ERR_OK; /* unknown names get the default certificate */
}

/* The DNS names of ctx's certificate: subjectAltName, else the CN. */
static int cert_names(SSL_CTX *ctx, struct sni_cert *sc)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int i, n = gens ? sk_GENERAL_NAME_num(gens) : 0;
    char cn[256];

    sc->names = calloc((size_t)n + 1, sizeof *sc->names);
    if (!sc->names)
        goto out_free;
    for (i = 0; i < n; i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        sc->names[sc->nnames] = strndup((const char *)ASN1_STRING_get0_data(g->d.dNSName),
                                        (size_t)ASN1_STRING_length(g->d.dNSName));
        if (!sc->names[sc->nnames])
            goto out_free;
        sc->nnames++;
    }
    if (sc->nnames == 0 &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0) {
        if (!(sc->names[0] = strdup(cn)))
            goto out_free;
        sc->nnames = 1;
    }
    GENERAL_NAMES_free(gens);
    return 0;

out_free:
    GENERAL_NAMES_free(gens);
    return -ENOMEM;
}

/* -------------------------------------------------------- contexts */

static int ctx_settings(ps_tls *t, SSL_CTX *ctx, ps_err *err)
{
    const ps_tls_config *cfg = &t->cfg;
    /* The server's cipher order, not the client's: our list puts forward
     * secrecy and AEAD first, and a client that prefers a weaker suite it
     * also offers does not get it (testssl.sh rates its absence HIGH). */
    uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE;

    if (t->ktls)
        opts |= SSL_OP_ENABLE_KTLS;
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1); /* whole records per recv; ps__tls_pending sees the rest */
    SSL_CTX_set_app_data(ctx, t);
    if (!SSL_CTX_set_min_proto_version(ctx, cfg->min_version))
        return ssl_fail(err, "min_version", "");
    if (!SSL_CTX_set_cipher_list(ctx, cfg->ciphers ? cfg->ciphers : PS_TLS_CIPHERS))
        return ssl_fail(err, "ciphers", cfg->ciphers ? cfg->ciphers : PS_TLS_CIPHERS);
    if (cfg->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, cfg->ciphersuites))
        return ssl_fail(err, "ciphersuites", cfg->ciphersuites);
    SSL_CTX_set_session_cache_mode(ctx, cfg->session_cache > 0 ? SSL_SESS_CACHE_SERVER
                                                               : SSL_SESS_CACHE_OFF);
    SSL_CTX_sess_set_cache_size(ctx, cfg->session_cache);
    SSL_CTX_set_timeout(ctx, cfg->session_timeout_s);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"poolsrv", 7);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    if (t->alpn_len)
        SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, t);
    if (cfg->ca_file) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
        int mode = cfg->verify_client == PS_TLS_VERIFY_OPTIONAL
                       ? SSL_VERIFY_PEER
                       : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        if (!names || !SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL)) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return ssl_fail(err, "ca_file", cfg->ca_file);
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, mode, NULL);
    }
    return 0;
}

/* A context serving cert_file with key_file and t's settings. */
static SSL_CTX *ctx_new(ps_tls *t, const char *cert, const char *key, ps_err *err)
{
    SSL_CTX *ctx;

    if (check_file(err, "cert_file", cert) < 0 || check_file(err, "key_file", key) < 0 ||
        (t->cfg.ca_file && check_file(err, "ca_file", t->cfg.ca_file) < 0))
        return NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ps__set_err(err, -ENOMEM, "tls: SSL_CTX_new: out of memory");
        return NULL;
    }
    if (ctx_settings(t, ctx, err) < 0)
        goto out_free;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_fail(err, "cert_file", cert);
        goto out_free;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        ssl_fail(err, "key_file", key);
        goto out_free;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_fail(err, "key_file does not match cert_file:", key);
        goto out_free;
    }
    return ctx;

out_free:
    SSL_CTX_free(ctx);
    return NULL;
}

void ps__tls_gen_unref(struct gen *g)
{
    size_t i, j;

    if (!g || atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (i = 0; i < g->nsni; i++) {
        SSL_CTX_free(g->sni[i].ctx);
        for (j = 0; j < g->sni[i].nnames; j++)
            free(g->sni[i].names[j]);
        free(g->sni[i].names);
    }
    free(g->sni);
    SSL_CTX_free(g->ctx);
    free(g);
}

/* Under build_lock: every context from the files, as they are now. */
static struct gen *gen_build(ps_tls *t, ps_err *err)
{
    struct gen *g = calloc(1, sizeof *g);
    size_t i;

    if (!g || (t->nextra && !(g->sni = calloc(t->nextra, sizeof *g->sni)))) {
        free(g);
        ps__set_err(err, -ENOMEM, "tls: out of memory");
        return NULL;
    }
    atomic_init(&g->refs, 1);
    if (!(g->ctx = ctx_new(t, t->cert_file, t->key_file, err)))
        goto out_free;
    if (t->nextra)
        SSL_CTX_set_tlsext_servername_callback(g->ctx, sni_cb);
    for (i = 0; i < t->nextra; i++) {
        struct sni_cert *sc = &g->sni[g->nsni];
        if (!(sc->ctx = ctx_new(t, t->extra[i].cert, t->extra[i].key, err)))
            goto out_free;
        g->nsni++;
        if (cert_names(sc->ctx, sc) < 0) {
            ps__set_err(err, -ENOMEM, "tls: out of memory");
            goto out_free;
        }
    }
    return g;

out_free:
    ps__tls_gen_unref(g);
    return NULL;
}

/* Under build_lock: build and swap in a new generation. */
static int rebuild(ps_tls *t, ps_err *err)
{
    struct gen *g = gen_build(t, err), *old;

    if (!g)
        return err ? err->code : -EINVAL;
    pthread_mutex_lock(&t->lock);
    old = t->gen;
    t->gen = g;
    pthread_mutex_unlock(&t->lock);
    ps__tls_gen_unref(old);
    return 0;
}

/* ------------------------------------------------------------ ps_tls */

/* "h2,http/1.1" -> "\2h2\10http/1.1". */
static int alpn_wire(ps_tls *t, const char *list, ps_err *err)
{
    const char *p = list;

    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n > 255 || t->alpn_len + 1 + n > PS_ALPN_MAX)
            return ps__set_err(err, -EINVAL,
                               "tls: alpn '%s': each protocol 1..255 bytes, %d in all", list,
                               PS_ALPN_MAX);
        t->alpn_wire[t->alpn_len++] = (unsigned char)n;
        memcpy(t->alpn_wire + t->alpn_len, p, n);
        t->alpn_len += n;
        p += n + (e ? 1 : 0);
        if (e && !*p)
            return ps__set_err(err, -EINVAL, "tls: alpn '%s': empty protocol", list);
    }
    return 0;
}

/* Whether the kernel offers kernel TLS: "tls" among the TCP upper-layer
 * protocols it has loaded. */
static bool kernel_offers_ktls(void)
{
    char buf[256], *tok, *save = NULL;
    int fd = open("/proc/sys/net/ipv4/tcp_available_ulp", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
        if (strcmp(tok, "tls") == 0)
            return true;
    return false;
}

static int validate(const ps_tls_config *cfg, ps_err *err)
{
    if (!cfg->cert_file || !cfg->key_file)
        return ps__set_err(err, -EINVAL, "tls: cert_file and key_file are required");
    if (cfg->verify_client < PS_TLS_VERIFY_DEFAULT || cfg->verify_client > PS_TLS_VERIFY_REQUIRE)
        return ps__set_err(err, -EINVAL, "tls: verify_client: %d is not a PS_TLS_VERIFY_*",
                           cfg->verify_client);
    if (cfg->verify_client != PS_TLS_VERIFY_DEFAULT && !cfg->ca_file)
        return ps__set_err(err, -EINVAL, "tls: verify_client needs ca_file");
    if (cfg->min_version != 0 && cfg->min_version != PS_TLS_1_2 && cfg->min_version != PS_TLS_1_3)
        return ps__set_err(err, -EINVAL,
                           "tls: min_version: %#x is neither PS_TLS_1_2 nor PS_TLS_1_3",
                           (unsigned)cfg->min_version);
    if (cfg->session_cache < 0 || cfg->session_cache > 1000000)
        return ps__set_err(err, -EINVAL, "tls: session_cache: %d is out of range (0..1000000)",
                           cfg->session_cache);
    if (cfg->session_timeout_s < 0 || cfg->session_timeout_s > 86400)
        return ps__set_err(err, -EINVAL, "tls: session_timeout_s: %d is out of range (1..86400)",
                           cfg->session_timeout_s);
    return 0;
}

static int copy_str(char **dst, const char **field)
{
    if (!*field)
        return 0;
    if (!(*dst = strdup(*field)))
        return -ENOMEM;
    *field = *dst;
    return 0;
}

void ps__tls_config_init(ps_tls_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->min_version = PS_TLS_1_2;
    cfg->session_cache = 4096;
    cfg->session_timeout_s = 300;
}

bool ps_tls_available(void)
{
    return true;
}

static void tls_destroy(ps_tls *t)
{
    size_t i;

    ps__tls_gen_unref(t->gen);
    for (i = 0; i < t->nextra; i++) {
        free(t->extra[i].cert);
        free(t->extra[i].key);
    }
    free(t->extra);
    BIO_meth_free(t->bio);
    free(t->cert_file);
    free(t->key_file);
    free(t->ca_file);
    free(t->alpn);
    free(t->ciphers);
    free(t->ciphersuites);
    pthread_mutex_destroy(&t->build_lock);
    pthread_mutex_destroy(&t->lock);
    pthread_mutex_destroy(&t->key_lock);
    OPENSSL_cleanse(&t->cur, sizeof t->cur);
    OPENSSL_cleanse(&t->prev, sizeof t->prev);
    free(t);
}

ps_tls *ps__tls_new(const ps_tls_config *cfg, ps_err *err)
{
    ps_tls *t;

    if (validate(cfg, err) < 0)
        return NULL;
    t = calloc(1, sizeof *t);
    if (!t) {
        ps__set_err(err, -ENOMEM, "tls: out of memory");
        return NULL;
    }
    atomic_init(&t->refs, 1);
    pthread_mutex_init(&t->build_lock, NULL);
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->key_lock, NULL);
    t->cfg = *cfg;
    if (t->cfg.min_version == 0)
        t->cfg.min_version = PS_TLS_1_2;
    if (t->cfg.session_timeout_s == 0)
        t->cfg.session_timeout_s = 300;
    if (copy_str(&t->cert_file, &t->cfg.cert_file) < 0 ||
        copy_str(&t->key_file, &t->cfg.key_file) < 0 ||
        copy_str(&t->ca_file, &t->cfg.ca_file) < 0 || copy_str(&t->alpn, &t->cfg.alpn) < 0 ||
        copy_str(&t->ciphers, &t->cfg.ciphers) < 0 ||
        copy_str(&t->ciphersuites, &t->cfg.ciphersuites) < 0 || !(t->bio = ps__tls_bio_method())) {
        ps__set_err(err, -ENOMEM, "tls: out of memory");
        goto out_free;
    }
    if (t->alpn && alpn_wire(t, t->alpn, err) < 0)
        goto out_free;
    if (new_key(&t->cur) < 0) {
        ps__set_err(err, -EIO, "tls: no random bytes for the ticket key");
        goto out_free;
    }
    t->rotated_at = ps__now_ms();
    t->ktls = t->cfg.ktls && kernel_offers_ktls();
    if (rebuild(t, err) < 0)
        goto out_free;
    return t;

out_free:
    tls_destroy(t);
    return NULL;
}

int ps_tls_add_cert(ps_tls *t, const char *cert_file, const char *key_file, ps_err *err)
{
    struct file_pair *x, *p;
    int rc = -ENOMEM;

    if (!t || !cert_file || !key_file)
        return ps__set_err(err, -EINVAL, "tls: add_cert needs a context, cert_file and key_file");
    pthread_mutex_lock(&t->build_lock);
    x = realloc(t->extra, (t->nextra + 1) * sizeof *x);
    if (!x)
        goto out_unlock;
    t->extra = x;
    p = &x[t->nextra];
    p->cert = strdup(cert_file);
    p->key = strdup(key_file);
    if (!p->cert || !p->key)
        goto out_undo;
    t->nextra++;
    if ((rc = rebuild(t, err)) == 0)
        goto out_unlock;
    t->nextra--;
out_undo:
    free(p->cert);
    free(p->key);
out_unlock:
    pthread_mutex_unlock(&t->build_lock);
    return rc == -ENOMEM ? ps__set_err(err, rc, "tls: out of memory") : rc;
}

int ps_tls_reload(ps_tls *t, ps_err *err)
{
    int rc;

    if (!t)
        return ps__set_err(err, -EINVAL, "tls: reload: no context");
    pthread_mutex_lock(&t->build_lock);
    rc = rebuild(t, err);
    pthread_mutex_unlock(&t->build_lock);
    return rc;
}

bool ps_tls_ktls(const ps_tls *t)
{
    return t && t->ktls;
}

ps_tls *ps__tls_ref(ps_tls *t)
{
    if (t)
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void ps_tls_free(ps_tls *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        tls_destroy(t);
}

void ps__tls_note(ps_server *s)
{
    ps_tls *t = s->tls;

    if (!t || !t->cfg.ktls)
        return;
    if (t->ktls)
        ps__log(s, PS_LOG_DEBUG, "tls: kernel TLS after each handshake, where the cipher allows");
    else
        ps__log(s, PS_LOG_DEBUG,
                "tls: kernel TLS asked for, but this kernel does not offer it ('tls' is not in "
                "/proc/sys/net/ipv4/tcp_available_ulp): TLS stays in user space");
}

#else /* !PS_HAVE_TLS: everything else builds; "tls:" listeners are refused */

struct ps_tls {
    int unused;
};

void ps__tls_config_init(ps_tls_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->min_version = PS_TLS_1_2;
    cfg->session_cache = 4096;
    cfg->session_timeout_s = 300;
}

bool ps_tls_available(void)
{
    return false;
}

ps_tls *ps__tls_new(const ps_tls_config *cfg, ps_err *err)
{
    (void)cfg;
    ps__set_err(err, -ENOTSUP, "tls: this libpoolsrv was built without TLS support");
    return NULL;
}

int ps_tls_add_cert(ps_tls *t, const char *cert_file, const char *key_file, ps_err *err)
{
    (void)t;
    (void)cert_file;
    (void)key_file;
    return ps__set_err(err, -ENOTSUP, "tls: this libpoolsrv was built without TLS support");
}

int ps_tls_reload(ps_tls *t, ps_err *err)
{
    (void)t;
    return ps__set_err(err, -ENOTSUP, "tls: this libpoolsrv was built without TLS support");
}

bool ps_tls_ktls(const ps_tls *t)
{
    (void)t;
    return false;
}

void ps_tls_free(ps_tls *t)
{
    (void)t;
}

ps_tls *ps__tls_ref(ps_tls *t)
{
    return t;
}

void ps__tls_note(ps_server *s)
{
    (void)s;
}

#endif

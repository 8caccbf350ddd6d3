/* SPDX-License-Identifier: MIT */
/*
 * tls_internal.h - what the two halves of the TLS code share: the context
 * (tls.c) and a connection's handshake and I/O (tls_conn.c).  Only with
 * OpenSSL (PS_HAVE_TLS).
 */
#ifndef PS_TLS_INTERNAL_H
#define PS_TLS_INTERNAL_H

#include "internal.h"

#ifdef PS_HAVE_TLS

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <strings.h>
#include <unistd.h>

#define PS_TLS_CIPHERS                                                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                         \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                         \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define PS_ALPN_MAX 512 /* bytes of the ALPN list in wire form */

/* A session-ticket key: name, AES-256-CBC key, HMAC-SHA256 key. */
struct tkey {
    unsigned char name[16], aes[32], hmac[32];
};

/* One certificate's context and the names SNI selects it by. */
struct sni_cert {
    SSL_CTX *ctx;
    char **names;
    size_t nnames;
};

/* The contexts built from the files at one time (see the top). */
struct gen {
    atomic_int refs; /* t->gen's, and one per connection that uses it */
    SSL_CTX *ctx;    /* the default certificate's */
    struct sni_cert *sni;
    size_t nsni;
};

struct file_pair {
    char *cert, *key;
};

struct ps_tls {
    atomic_int refs; /* the creator's, and one per server using it */
    ps_tls_config cfg; /* strings point at the copies below */
    char *cert_file, *key_file, *ca_file, *alpn, *ciphers, *ciphersuites;
    unsigned char alpn_wire[PS_ALPN_MAX];
    size_t alpn_len;
    bool ktls;       /* asked for, and the kernel offers it */
    BIO_METHOD *bio; /* our socket BIO (see the top) */
    /* build_lock serializes the builders (reload, add_cert) and guards
     * extra[]; lock guards `gen` (taken per handshake, for a pointer copy). */
    pthread_mutex_t build_lock, lock;
    struct file_pair *extra;
    size_t nextra;
    struct gen *gen;
    /* key_lock guards the ticket keys (taken per ticket issued or read). */
    pthread_mutex_t key_lock;
    struct tkey cur, prev;
    bool have_prev;
    int64_t rotated_at; /* ms, ps__now_ms */
};

/* A connection's TLS state (c->tls). */
struct ps_tls_conn {
    SSL *ssl;
    struct gen *gen;
    ps_buf pre;  /* bytes that came with the PROXY header: the ClientHello's start */
    int rd_want; /* SSL_ERROR_WANT_* that the last SSL_read stopped on, else 0 */
    int wr_want; /* ... the last SSL_write */
    bool notified; /* close_notify sent (or tried) */
    bool eof;      /* recv returned 0: the peer's FIN (BIO_CTRL_EOF reports it) */
    bool short_read; /* the last recv got less than asked (or EAGAIN, or EOF) */
    char *alpn, *subject; /* formatted on first use */
};

/* OpenSSL's reason for the earliest error queued on this thread, and clear
 * the queue (tls.c). */
const char *ps__tls_reason(char *buf, size_t cap);
/* Drop a reference on a generation (tls.c). */
void ps__tls_gen_unref(struct gen *g);
/* Our socket BIO's method, made once per ps_tls (tls_conn.c). */
BIO_METHOD *ps__tls_bio_method(void);

#endif /* PS_HAVE_TLS */
#endif

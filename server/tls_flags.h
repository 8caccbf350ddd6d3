/* SPDX-License-Identifier: MIT */
/*
 * tls_flags.h - the --tls-* command-line flags that poolsrv-echo and the
 * examples (poolsrv-http, poolsrv-kv, poolsrv-proxy) share, and certificate
 * reload on SIGHUP.  Uses only the public header.
 */
#ifndef SERVER_TLS_FLAGS_H
#define SERVER_TLS_FLAGS_H

#include "poolsrv.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/* getopt values of the flags (above both programs' own). */
enum {
    TLSF_CERT = 600,
    TLSF_KEY,
    TLSF_CA,
    TLSF_ALPN,
    TLSF_MIN_VERSION,
    TLSF_KTLS,
};

#define TLSF_OPTIONS                                                                       \
    {"tls-cert", required_argument, 0, TLSF_CERT}, {"tls-key", required_argument, 0, TLSF_KEY}, \
        {"tls-ca", required_argument, 0, TLSF_CA}, {"tls-alpn", required_argument, 0, TLSF_ALPN}, \
        {"tls-min-version", required_argument, 0, TLSF_MIN_VERSION},                       \
        {"ktls", no_argument, 0, TLSF_KTLS}
#define TLSF_NOPTIONS 6

typedef struct tlsf {
    ps_tls_config cfg;
    bool any; /* a --tls-* flag was given */
} tlsf;

void tlsf_init(tlsf *f);

/* Take flag `opt` with value v.  Returns 1 when it was one of ours, 0 when
 * it is not a TLS flag, -1 for a bad value. */
int tlsf_option(tlsf *f, int opt, const char *v);

/* The flags' --help lines, the descriptions starting at column `col`. */
void tlsf_help(FILE *out, int col);

/* After parsing: make cfg->tls when --tls-cert was given, and check that
 * "tls:" listeners have it.  Returns 0, or -1 with msg filled (exit 1 or 2
 * as the program does for a bad configuration: *usage tells which). */
int tlsf_apply(tlsf *f, ps_config *cfg, char *msg, size_t cap, bool *usage);

/* SIGHUP re-reads the certificate and key files of t (ps_tls_reload),
 * logging the outcome through log(level, text, user).  Blocks SIGHUP in
 * the calling thread (call before creating other threads, so they inherit
 * it) and starts a thread that takes it.  Returns 0 or -errno. */
int tlsf_reload_on_sighup(ps_tls *t, ps_log_fn log, void *user);

/* Reload now, logging as above (for a program with its own signal thread). */
void tlsf_reload(ps_tls *t, ps_log_fn log, void *user);

#endif

/* SPDX-License-Identifier: MIT */
/* tls_flags.c - the shared --tls-* flags and SIGHUP reload (tls_flags.h). */
#include "tls_flags.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

void tlsf_init(tlsf *f)
{
    memset(f, 0, sizeof *f);
    ps_tls_config_init(&f->cfg);
}

int tlsf_option(tlsf *f, int opt, const char *v)
{
    switch (opt) {
    case TLSF_CERT: f->cfg.cert_file = v; break;
    case TLSF_KEY: f->cfg.key_file = v; break;
    case TLSF_CA: f->cfg.ca_file = v; break;
    case TLSF_ALPN: f->cfg.alpn = v; break;
    case TLSF_MIN_VERSION:
        if (strcmp(v, "1.2") == 0)
            f->cfg.min_version = PS_TLS_1_2;
        else if (strcmp(v, "1.3") == 0)
            f->cfg.min_version = PS_TLS_1_3;
        else
            return -1;
        break;
    case TLSF_KTLS: f->cfg.ktls = true; break;
    default: return 0;
    }
    f->any = true;
    return 1;
}

void tlsf_help(FILE *out, int col)
{
    static const char *const rows[][2] = {
        {"--tls-cert FILE", "tls: listeners: certificate chain (PEM); SIGHUP re-reads\n"
                            "the files"},
        {"--tls-key FILE", "tls: listeners: private key of --tls-cert (PEM)"},
        {"--tls-ca FILE", "require client certificates signed by these CAs (PEM)"},
        {"--tls-alpn LIST", "ALPN protocols, preferred first, e.g. h2,http/1.1"},
        {"--tls-min-version V", "1.2 (default) or 1.3"},
        {"--ktls", "kernel TLS where the kernel offers it"},
    };
    size_t i;

    for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *d = rows[i][1], *nl;
        int n = fprintf(out, "      %s", rows[i][0]);
        if (n + 1 > col) {
            fprintf(out, "\n");
            n = 0;
        }
        for (;;) {
            fprintf(out, "%*s", col - n, "");
            nl = strchr(d, '\n');
            fprintf(out, "%.*s\n", nl ? (int)(nl - d) : (int)strlen(d), d);
            if (!nl)
                break;
            d = nl + 1;
            n = 0;
        }
    }
}

static bool is_tls_listen(const char *a)
{
    if (strncmp(a, "proxy:", 6) == 0)
        a += 6;
    return strncmp(a, "tls:", 4) == 0;
}

int tlsf_apply(tlsf *f, ps_config *cfg, char *msg, size_t cap, bool *usage)
{
    ps_err err;
    int i;

    *usage = true;
    for (i = 0; i < cfg->nlisten; i++)
        if (is_tls_listen(cfg->listen[i]) && !f->cfg.cert_file) {
            snprintf(msg, cap, "--listen %s: needs --tls-cert and --tls-key", cfg->listen[i]);
            return -1;
        }
    if (!f->any)
        return 0;
    if (!f->cfg.cert_file || !f->cfg.key_file) {
        snprintf(msg, cap, "--tls-* flags need both --tls-cert and --tls-key");
        return -1;
    }
    *usage = false;
    cfg->tls = ps_tls_new(&f->cfg, &err);
    if (!cfg->tls) {
        snprintf(msg, cap, "%s", err.msg);
        return -1;
    }
    return 0;
}

void tlsf_reload(ps_tls *t, ps_log_fn log, void *user)
{
    ps_err err;
    char msg[320];

    if (ps_tls_reload(t, &err) == 0) {
        log(PS_LOG_INFO, "SIGHUP: certificates reloaded", user);
        return;
    }
    snprintf(msg, sizeof msg, "SIGHUP: certificates not reloaded, still serving the old ones: %s",
             err.msg);
    log(PS_LOG_ERROR, msg, user);
}

struct reloader {
    ps_tls *t;
    ps_log_fn log;
    void *user;
};

static void *reload_thread(void *arg)
{
    struct reloader *r = arg;
    sigset_t set;
    int sig;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    for (;;)
        if (sigwait(&set, &sig) == 0)
            tlsf_reload(r->t, r->log, r->user);
    return NULL;
}

int tlsf_reload_on_sighup(ps_tls *t, ps_log_fn log, void *user)
{
    static struct reloader r; /* one per process: the signal is */
    sigset_t set;
    pthread_t tid;
    int rc;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    r = (struct reloader){t, log, user};
    if ((rc = pthread_create(&tid, NULL, reload_thread, &r)) != 0)
        return -rc;
    pthread_detach(tid);
    return 0;
}

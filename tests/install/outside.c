/* SPDX-License-Identifier: MIT */
/*
 * outside.c - a program that knows poolsrv only as an installed package: it
 * includes <poolsrv.h> and nothing else of the project, and is built by
 * tests/install/run.sh with the flags pkg-config gives for the installed
 * poolsrv.pc (shared, and static).
 *
 * An event-style echo server:  outside [ADDR]  (default 127.0.0.1:0).
 * Prints "version V" and then "listening on ADDR" per listener, as bound;
 * SIGINT or SIGTERM stops it gracefully.  Exit status: 0 after a clean stop,
 * 1 if it could not start, 2 for a bad configuration.
 */
#include <poolsrv.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

static ps_server *g_server; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    ps_server_stop(g_server); /* async-signal-safe */
}

/* Echo what arrived; a peer that is gone (-EPIPE) or no memory closes it. */
static size_t on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    (void)user;
    if (ps_conn_send(c, data, len) < 0)
        ps_conn_close(c);
    return len;
}

int main(int argc, char **argv)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;
    struct sigaction sa;
    int i, rc;

    ps_config_init(&cfg);
    if (ps_config_add_listen(&cfg, argc > 1 ? argv[1] : "127.0.0.1:0") < 0)
        return 2;
    cfg.workers = 2;
    memset(&h, 0, sizeof h);
    h.on_data = on_data;

    g_server = ps_server_new(&cfg, &h, NULL, &err);
    if (!g_server) {
        fprintf(stderr, "outside: %s (%s)\n", err.msg, ps_strerror(err.code));
        return 2;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if ((rc = ps_server_start(g_server, &err)) < 0) {
        fprintf(stderr, "outside: %s\n", err.msg);
        ps_server_free(g_server);
        return 1;
    }
    printf("version %s\n", ps_version());
    for (i = 0; i < ps_server_nlisteners(g_server); i++)
        printf("listening on %s\n", ps_server_listen_name(g_server, i));
    fflush(stdout);

    rc = ps_server_wait(g_server);
    ps_server_free(g_server);
    return rc < 0 ? 1 : 0;
}

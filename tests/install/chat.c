/* SPDX-License-Identifier: MIT */
/*
 * chat.c - a small pub/sub chat server written as a stranger would write it,
 * against the installed <poolsrv.h> only (built by tests/install/run.sh).
 *
 *   chat [ADDR [HEARTBEAT_MS]]     (defaults 127.0.0.1:0 and 5000)
 *
 * Line protocol:  "SUB room" -> "OK room";  "PUB room text" -> "SENT n"
 * (n subscribers reached), and each subscriber of room gets "MSG room
 * text";  a connection silent for HEARTBEAT_MS in both directions gets
 * "PING".  Prints "listening on ADDR"; SIGINT/SIGTERM stop it.
 *
 * What it uses beyond on_data: ps_conn_ref_of + ps_conn_post to write to
 * other connections from the publisher's callback (a message shared by
 * reference count, freed by the last delivery, cancelled or not), and
 * ps_conn_timer + on_timer for the heartbeat.
 */
#include <poolsrv.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUBS 1024

static ps_server *g_server;
static int heartbeat_ms = 5000;

/* One subscription: a room name and who listens. */
struct sub {
    char room[32];
    ps_conn_ref ref;
};

static pthread_mutex_t subs_lock = PTHREAD_MUTEX_INITIALIZER; /* guards subs, nsubs */
static struct sub subs[MAX_SUBS];
static int nsubs;

/* A published line, shared by every delivery. */
struct msg {
    atomic_int refs;
    size_t len;
    char text[];
};

static void msg_unref(struct msg *m)
{
    if (atomic_fetch_sub(&m->refs, 1) == 1)
        free(m);
}

static void deliver(ps_conn *c, void *arg, int status)
{
    struct msg *m = arg;

    if (status == 0) {
        ps_conn_send(c, m->text, m->len);
        ps_conn_timer(c, heartbeat_ms); /* it was not silent */
    }
    msg_unref(m);
}

static int publish(const char *room, const char *text, size_t textlen)
{
    size_t roomlen = strlen(room);
    struct msg *m = malloc(sizeof *m + roomlen + textlen + 7);
    int sent = 0;

    if (!m)
        return -ENOMEM;
    m->len = (size_t)sprintf(m->text, "MSG %s ", room);
    memcpy(m->text + m->len, text, textlen);
    m->len += textlen;
    m->text[m->len++] = '\n';
    atomic_init(&m->refs, 1); /* ours, while we post */
    pthread_mutex_lock(&subs_lock);
    for (int i = 0; i < nsubs; i++) {
        if (strcmp(subs[i].room, room) != 0)
            continue;
        atomic_fetch_add(&m->refs, 1);
        if (ps_conn_post(subs[i].ref, deliver, m) == 0)
            sent++;
        else
            atomic_fetch_sub(&m->refs, 1); /* gone meanwhile: deliver will not run */
    }
    pthread_mutex_unlock(&subs_lock);
    msg_unref(m);
    return sent;
}

static void reply(ps_conn *c, const char *fmt, const char *a, int n)
{
    char buf[96];
    int len = snprintf(buf, sizeof buf, fmt, a, n);

    ps_conn_send(c, buf, (size_t)len < sizeof buf ? (size_t)len : sizeof buf - 1);
}

static void command(ps_conn *c, char *line, size_t len)
{
    char room[32];

    if (len > 4 && strncmp(line, "SUB ", 4) == 0 && len - 4 < sizeof room) {
        memcpy(room, line + 4, len - 4);
        room[len - 4] = '\0';
        pthread_mutex_lock(&subs_lock);
        if (nsubs < MAX_SUBS) {
            strcpy(subs[nsubs].room, room);
            subs[nsubs++].ref = ps_conn_ref_of(c);
        }
        pthread_mutex_unlock(&subs_lock);
        reply(c, "OK %s\n", room, 0);
    } else if (len > 4 && strncmp(line, "PUB ", 4) == 0) {
        char *sp = memchr(line + 4, ' ', len - 4);
        if (!sp || (size_t)(sp - line - 4) >= sizeof room) {
            reply(c, "ERR %s\n", "usage: PUB room text", 0);
            return;
        }
        memcpy(room, line + 4, (size_t)(sp - line - 4));
        room[sp - line - 4] = '\0';
        reply(c, "SENT %.0s%d\n", "", publish(room, sp + 1, len - (size_t)(sp + 1 - line)));
    } else {
        reply(c, "ERR %s\n", "unknown command", 0);
    }
}

static int on_open(ps_conn *c, void *user)
{
    (void)user;
    return ps_conn_timer(c, heartbeat_ms);
}

static size_t on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    size_t used = 0;
    const char *nl;
    char line[512];

    (void)user;
    while ((nl = memchr(data + used, '\n', len - used)) != NULL) {
        size_t n = (size_t)(nl - data - used);
        if (n > 0 && data[used + n - 1] == '\r')
            n--;
        if (n < sizeof line) {
            memcpy(line, data + used, n);
            line[n] = '\0';
            command(c, line, n);
        }
        used = (size_t)(nl - data) + 1;
    }
    ps_conn_timer(c, heartbeat_ms);
    return used;
}

static void on_timer(ps_conn *c, void *user)
{
    (void)user;
    ps_conn_send(c, "PING\n", 5);
    ps_conn_timer(c, heartbeat_ms);
}

static void on_close(ps_conn *c, ps_close_reason why, void *user)
{
    uint64_t id = ps_conn_id(c);

    (void)why;
    (void)user;
    pthread_mutex_lock(&subs_lock);
    for (int i = 0; i < nsubs;) {
        if (subs[i].ref.id == id)
            subs[i] = subs[--nsubs];
        else
            i++;
    }
    pthread_mutex_unlock(&subs_lock);
}

static void on_signal(int sig)
{
    (void)sig;
    ps_server_stop(g_server);
}

int main(int argc, char **argv)
{
    ps_config cfg;
    ps_err err;
    ps_handler h = {.on_open = on_open, .on_data = on_data, .on_timer = on_timer,
                    .on_close = on_close};

    ps_config_init(&cfg);
    ps_config_add_listen(&cfg, argc > 1 ? argv[1] : "127.0.0.1:0");
    if (argc > 2)
        heartbeat_ms = atoi(argv[2]);
    g_server = ps_server_new(&cfg, &h, NULL, &err);
    if (!g_server) {
        fprintf(stderr, "chat: %s\n", err.msg);
        return 2;
    }
    if (ps_server_start(g_server, &err) < 0) {
        fprintf(stderr, "chat: %s\n", err.msg);
        ps_server_free(g_server);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on %s\n", ps_server_listen_name(g_server, 0));
    fflush(stdout);
    ps_server_wait(g_server);
    ps_server_free(g_server);
    return 0;
}

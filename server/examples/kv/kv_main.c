/*
 * poolsrv-kv - a Redis-protocol (RESP2) in-memory store on poolsrv's event
 * handlers.  Commands: PING ECHO SET (EX/PX/NX/XX) GET DEL EXISTS INCR MGET
 * MSET DBSIZE FLUSHALL SELECT 0 QUIT, the publish/subscribe commands
 * (pubsub.c), and COMMAND / CONFIG GET answered with an empty array so
 * that redis-cli and redis-benchmark are content.
 *
 * One connection's callbacks never run concurrently, so pipelined commands
 * are answered in order from one on_data call; the store (store.c) and the
 * pub/sub registry (pubsub.c) are the only state shared between workers.
 */
#include "../common.h"
#include "pubsub.h"
#include "resp.h"
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Shared by every worker (the `user` pointer). */
typedef struct kv_app {
    kv_store *store;
    pubsub *pubsub;
    pubsub_limits limits; /* --pubsub-limit */
} kv_app;

typedef struct kv_conn {
    pubsub_client *sub; /* first: pubsub.c finds it through ps_conn_data */
    resp_parser parser;
} kv_conn;

/* What a command handler sees. */
typedef struct kv_ctx {
    kv_store *store;
    ex_out *out;
    size_t argc;
    resp_str *argv;
    bool quit;
    bool hold; /* pub/sub: stop here, the rest of the input waits (pubsub.h) */
    kv_app *app;
    ps_conn *conn;
    kv_conn *kc;
} kv_ctx;

/* ------------------------------------------------------------- replies */

static void reply_raw(kv_ctx *x, const char *s)
{
    ex_out_put(x->out, s, strlen(s));
}

static void reply_int(kv_ctx *x, long long v)
{
    char *p = ex_out_reserve(x->out, 32);

    ex_out_commit(x->out, (size_t)snprintf(p, 32, ":%lld\r\n", v));
}

static void reply_bulk(ex_out *o, const char *s, size_t n)
{
    char *p = ex_out_reserve(o, 32);

    ex_out_commit(o, (size_t)snprintf(p, 32, "$%zu\r\n", n));
    ex_out_put(o, s, n);
    ex_out_put(o, "\r\n", 2);
}

static void reply_err(kv_ctx *x, const char *msg)
{
    ex_out_put(x->out, "-", 1);
    ex_out_put(x->out, msg, strlen(msg));
    ex_out_put(x->out, "\r\n", 2);
}

/* Runs with the shard locked (see kv_get): copy the value into the batch.
 * A value that does not fit is handed to ps_conn_send under the lock; that
 * call never blocks (what the socket refuses is copied), so the lock is held
 * for a copy, never for the peer. */
static void put_value(const char *val, size_t len, void *ctx)
{
    reply_bulk(ctx, val, len);
}

static void reply_value_of(kv_ctx *x, const resp_str *key)
{
    if (!kv_get(x->store, key->p, key->n, put_value, x->out))
        reply_raw(x, "$-1\r\n");
}

static bool arg_is(const resp_str *a, const char *lit)
{
    return a->n == strlen(lit) && strncasecmp(a->p, lit, a->n) == 0;
}

/* ------------------------------------------------------------ commands */

static void cmd_ping(kv_ctx *x)
{
    if (x->argc == 2)
        reply_bulk(x->out, x->argv[1].p, x->argv[1].n);
    else
        reply_raw(x, "+PONG\r\n");
}

static void cmd_echo(kv_ctx *x)
{
    reply_bulk(x->out, x->argv[1].p, x->argv[1].n);
}

/* SET key value [NX|XX] [EX seconds|PX milliseconds] */
static void cmd_set(kv_ctx *x)
{
    int64_t expire_at = 0, t;
    int flags = 0, rc;
    size_t i;

    for (i = 3; i < x->argc; i++) {
        const resp_str *a = &x->argv[i];
        bool has_next = i + 1 < x->argc;
        if (arg_is(a, "nx") && !(flags & KV_SET_XX)) {
            flags |= KV_SET_NX;
        } else if (arg_is(a, "xx") && !(flags & KV_SET_NX)) {
            flags |= KV_SET_XX;
        } else if ((arg_is(a, "ex") || arg_is(a, "px")) && has_next && expire_at == 0) {
            bool sec = arg_is(a, "ex");
            i++;
            if (kv_parse_i64(x->argv[i].p, x->argv[i].n, &t) < 0) {
                reply_err(x, "ERR value is not an integer or out of range");
                return;
            }
            if (t <= 0 || (sec && t > INT64_MAX / 1000 / 2) || t > INT64_MAX / 2) {
                reply_err(x, "ERR invalid expire time in 'set' command");
                return;
            }
            expire_at = kv_now_ms() + (sec ? t * 1000 : t);
        } else {
            reply_err(x, "ERR syntax error");
            return;
        }
    }
    rc = kv_set(x->store, x->argv[1].p, x->argv[1].n, x->argv[2].p, x->argv[2].n, expire_at, flags);
    if (rc < 0)
        reply_err(x, "OOM command not allowed when used memory > 'maxmemory'");
    else
        reply_raw(x, rc ? "+OK\r\n" : "$-1\r\n");
}

static void cmd_get(kv_ctx *x)
{
    reply_value_of(x, &x->argv[1]);
}

static void cmd_del(kv_ctx *x)
{
    long long n = 0;
    size_t i;

    for (i = 1; i < x->argc; i++)
        n += kv_del(x->store, x->argv[i].p, x->argv[i].n);
    reply_int(x, n);
}

static void cmd_exists(kv_ctx *x)
{
    long long n = 0;
    size_t i;

    for (i = 1; i < x->argc; i++)
        n += kv_exists(x->store, x->argv[i].p, x->argv[i].n);
    reply_int(x, n);
}

static void cmd_incr(kv_ctx *x)
{
    int64_t v;
    int rc = kv_incr(x->store, x->argv[1].p, x->argv[1].n, 1, &v);

    if (rc == -EINVAL)
        reply_err(x, "ERR value is not an integer or out of range");
    else if (rc == -ERANGE)
        reply_err(x, "ERR increment or decrement would overflow");
    else if (rc < 0)
        reply_err(x, "OOM command not allowed when used memory > 'maxmemory'");
    else
        reply_int(x, (long long)v);
}

static void cmd_mget(kv_ctx *x)
{
    char *p = ex_out_reserve(x->out, 32);
    size_t i;

    ex_out_commit(x->out, (size_t)snprintf(p, 32, "*%zu\r\n", x->argc - 1));
    for (i = 1; i < x->argc; i++)
        reply_value_of(x, &x->argv[i]);
}

static void cmd_mset(kv_ctx *x)
{
    size_t i;

    if (x->argc % 2 == 0) {
        reply_err(x, "ERR wrong number of arguments for 'mset' command");
        return;
    }
    for (i = 1; i < x->argc; i += 2) {
        if (kv_set(x->store, x->argv[i].p, x->argv[i].n, x->argv[i + 1].p, x->argv[i + 1].n, 0, 0) <
            0) {
            reply_err(x, "OOM command not allowed when used memory > 'maxmemory'");
            return;
        }
    }
    reply_raw(x, "+OK\r\n");
}

static void cmd_dbsize(kv_ctx *x)
{
    reply_int(x, (long long)kv_size(x->store));
}

static void cmd_flushall(kv_ctx *x)
{
    if (x->argc == 2 && !arg_is(&x->argv[1], "sync") && !arg_is(&x->argv[1], "async")) {
        reply_err(x, "ERR syntax error");
        return;
    }
    kv_flush(x->store);
    reply_raw(x, "+OK\r\n");
}

static void cmd_select(kv_ctx *x)
{
    if (arg_is(&x->argv[1], "0"))
        reply_raw(x, "+OK\r\n");
    else
        reply_err(x, "ERR DB index is out of range");
}

static void cmd_quit(kv_ctx *x)
{
    reply_raw(x, "+OK\r\n");
    x->quit = true;
}

/* COMMAND and COMMAND DOCS: redis-cli asks at startup for command hints;
 * an empty array says "none" and keeps it going. */
static void cmd_empty_array(kv_ctx *x)
{
    reply_raw(x, "*0\r\n");
}

/* CONFIG GET: redis-benchmark reads "save" and "appendonly" to warn about
 * persistence; we have none.  Other parameters: an empty array (unknown). */
static void cmd_config(kv_ctx *x)
{
    if (!arg_is(&x->argv[1], "get")) {
        reply_err(x, "ERR CONFIG subcommand not supported by poolsrv-kv");
        return;
    }
    if (x->argc != 3) {
        reply_err(x, "ERR wrong number of arguments for 'config|get' command");
        return;
    }
    if (arg_is(&x->argv[2], "save"))
        reply_raw(x, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    else if (arg_is(&x->argv[2], "appendonly"))
        reply_raw(x, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    else
        cmd_empty_array(x);
}

typedef struct kv_command {
    const char *name; /* lower case */
    int arity;        /* as Redis: n = exactly n words, -n = at least n */
    void (*run)(kv_ctx *x);
} kv_command;

static const kv_command commands[] = {
    {"get", 2, cmd_get},
    {"set", -3, cmd_set},
    {"ping", -1, cmd_ping},
    {"echo", 2, cmd_echo},
    {"del", -2, cmd_del},
    {"exists", -2, cmd_exists},
    {"incr", 2, cmd_incr},
    {"mget", -2, cmd_mget},
    {"mset", -3, cmd_mset},
    {"dbsize", 1, cmd_dbsize},
    {"flushall", -1, cmd_flushall},
    {"select", 2, cmd_select},
    {"quit", -1, cmd_quit},
    {"command", -1, cmd_empty_array},
    {"config", -2, cmd_config},
    /* pubsub.c: run = NULL */
    {"subscribe", -2, NULL},
    {"unsubscribe", -1, NULL},
    {"psubscribe", -2, NULL},
    {"punsubscribe", -1, NULL},
    {"publish", 3, NULL},
};

/* Redis's text for an unknown command: name and the first arguments,
 * each cut to 128 bytes. */
static void reply_unknown(kv_ctx *x)
{
    char msg[1024];
    size_t i;
    int n = snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args beginning with: ",
                     (int)(x->argv[0].n > 128 ? 128 : x->argv[0].n), x->argv[0].p);

    for (i = 1; i < x->argc && n < (int)sizeof msg - 140; i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "'%.*s' ",
                      (int)(x->argv[i].n > 128 ? 128 : x->argv[i].n), x->argv[i].p);
    for (i = 0; msg[i]; i++) /* an error reply is one line */
        if (msg[i] == '\r' || msg[i] == '\n')
            msg[i] = ' ';
    reply_err(x, msg);
}

static void dispatch(kv_ctx *x)
{
    const kv_command *c = NULL;
    char msg[96];
    size_t i;

    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (arg_is(&x->argv[0], commands[i].name)) {
            c = &commands[i];
            break;
        }
    }
    if (!c) {
        reply_unknown(x);
        return;
    }
    if ((c->arity > 0 && x->argc != (size_t)c->arity) ||
        (c->arity < 0 && x->argc < (size_t)-c->arity)) {
        snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", c->name);
        reply_err(x, msg);
        return;
    }
    if (c->run == cmd_ping && x->argc > 2) {
        reply_err(x, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if ((c->run == cmd_flushall || c->run == cmd_quit) && x->argc > 2) {
        reply_err(x, "ERR syntax error");
        return;
    }
    if (pubsub_gate(x->kc->sub, x->out, c->name, x->argc, x->argv))
        return; /* subscribed mode */
    if (!c->run)
        x->hold = pubsub_command(x->app->pubsub, &x->kc->sub, x->conn, x->out, c->name, x->argc,
                                 x->argv) == PUBSUB_HOLD;
    else
        c->run(x);
}

/* --------------------------------------------------------- the handlers */

static int kv_on_open(ps_conn *c, void *user)
{
    kv_conn *kc = malloc(sizeof *kc);

    (void)user;
    if (!kc)
        return -1;
    kc->sub = NULL;
    resp_parser_init(&kc->parser);
    ps_conn_set_data(c, kc);
    return 0;
}

static size_t kv_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    kv_app *app = user;
    kv_conn *kc = ps_conn_data(c);
    ex_out out;
    kv_ctx x = {.store = app->store, .out = &out, .app = app, .conn = c, .kc = kc};
    size_t off = 0, used;
    int rc;

    ex_out_init(&out, c);
    while (off < len) {
        rc = resp_parse(&kc->parser, data + off, len - off, &used, &x.argc, &x.argv);
        if (rc == RESP_NEED_MORE)
            break;
        if (rc < 0) { /* like Redis: answer, then close; the rest is unread */
            char msg[128];
            snprintf(msg, sizeof msg, "%s %s", rc == RESP_ERR_NOMEM ? "OOM" : "ERR",
                     resp_strerror(rc));
            reply_err(&x, msg);
            x.quit = true;
            off = len;
            break;
        }
        off += used;
        if (x.argc == 0)
            continue; /* empty line or "*0": Redis ignores it */
        dispatch(&x);
        if (x.quit) {
            off = len;
            break;
        }
        if (x.hold)
            break;
    }
    /* Flush first: ps_conn_send refuses output once the close is requested
     * (ps_conn_close itself flushes what was sent before it). */
    if (ex_out_flush(&out) < 0 || x.quit)
        ps_conn_close(c);
    return off;
}

static void kv_on_close(ps_conn *c, ps_close_reason why, void *user)
{
    kv_app *app = user;
    kv_conn *kc = ps_conn_data(c);

    (void)why;
    if (kc) {
        pubsub_client_free(app->pubsub, kc->sub);
        resp_parser_free(&kc->parser);
        free(kc);
    }
    ps_conn_set_data(c, NULL);
}

static int set_pubsub_limit(const char *value, void *ctx)
{
    return pubsub_parse_limits(value, ctx);
}

int main(int argc, char **argv)
{
    static kv_app app = {.limits = {PUBSUB_HARD_DEFAULT, PUBSUB_SOFT_DEFAULT,
                                    PUBSUB_SOFT_SECONDS_DEFAULT}};
    static const ex_opt opts[] = {{"pubsub-limit", set_pubsub_limit, &app.limits}};
    static const ex_prog prog = {
        .name = "poolsrv-kv",
        .summary = "A Redis-protocol (RESP2) in-memory key/value store on a fixed pool of worker\n"
                   "threads: PING ECHO SET GET DEL EXISTS INCR MGET MSET DBSIZE FLUSHALL QUIT,\n"
                   "and SUBSCRIBE UNSUBSCRIBE PSUBSCRIBE PUNSUBSCRIBE PUBLISH.",
        .default_listen = "127.0.0.1:6380",
        .extra_help =
            "      --pubsub-limit 'HARD [SOFT SECONDS]'\n"
            "                         disconnect a subscriber whose pending output passes\n"
            "                         HARD, or stays above SOFT for SECONDS (Redis's\n"
            "                         client-output-buffer-limit pubsub; sizes as 32mb, 8mb;\n"
            "                         0 turns one off); default '32mb 8mb 60'\n"
            "\nLimits: bulk argument 8 MiB, command 16 MiB, inline line 64 KiB.\n",
        .opts = opts,
        .nopts = 1,
    };
    ps_config cfg;
    ps_handler h;
    int rc;

    ps_config_init(&cfg);
    ex_parse_args(&prog, argc, argv, &cfg);
    /* A command may be up to RESP_MAX_COMMAND bytes before it can be
     * parsed; allow that much unconsumed input plus one read. */
    cfg.max_input = RESP_MAX_COMMAND + (1u << 20);
    app.store = kv_store_new();
    app.pubsub = pubsub_new(&app.limits);
    if (!app.store || !app.pubsub) {
        fprintf(stderr, "%s: out of memory\n", prog.name);
        return 1;
    }
    memset(&h, 0, sizeof h);
    h.on_open = kv_on_open;
    h.on_data = kv_on_data;
    h.on_close = kv_on_close;
    rc = ex_run(&prog, &cfg, &h, &app);
    pubsub_free(app.pubsub);
    kv_store_free(app.store);
    return rc;
}

/* SPDX-License-Identifier: MIT */
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
 *
 * Bounds (docs/man/poolsrv-kv.1): one small request can ask for a huge
 * answer (MGET k k k ... of a large value; a pipeline of GETs), so on_data
 * stops answering once the connection's pending output passes
 * out_high_water and returns the commands it has not answered; poolsrv
 * offers them again when the output has drained.  A reply that alone would
 * take pending output past max_output is answered with an error instead.
 */
#include "../common.h"
#include "pubsub.h"
#include "resp.h"
#include "store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Shared by every worker (the `user` pointer); read-only after start. */
typedef struct kv_app {
    kv_store *store;
    pubsub *pubsub;
    pubsub_limits limits; /* --pubsub-limit */
    size_t high_water;    /* ps_config.out_high_water: stop answering past it */
    size_t max_reply;     /* larger replies are refused with ERR_TOO_LARGE */
} kv_app;

#define ERR_TOO_LARGE "ERR reply too large for this connection's output limit"
#define BULK_HEAD 32 /* room for "$<len>\r\n" or "*<n>\r\n", and the CRLF after */

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
    size_t reply_left; /* what this command's reply may still add */
    bool mget_overflow; /* MGET's reply did not fit in the batch */
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
 * for a copy, never for the peer.  A value larger than what the reply may
 * still add is answered with an error instead (in an MGET, as that element:
 * RESP2 allows errors inside arrays). */
static void put_value(const char *val, size_t len, void *ctx)
{
    kv_ctx *x = ctx;

    if (len > x->reply_left || x->reply_left - len < BULK_HEAD) {
        reply_err(x, ERR_TOO_LARGE);
        x->reply_left = 0;
        return;
    }
    x->reply_left -= len + BULK_HEAD;
    reply_bulk(x->out, val, len);
}

static void reply_value_of(kv_ctx *x, const resp_str *key)
{
    if (!kv_get(x->store, key->p, key->n, put_value, x))
        reply_raw(x, "$-1\r\n");
}

/* Runs with the shard locked: add the size of a value's reply to *ctx. */
static void add_reply_size(const char *val, size_t len, void *ctx)
{
    size_t *total = ctx;

    (void)val;
    *total += len + BULK_HEAD;
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

/* Runs with the shard locked: the optimistic pass of MGET, which appends a
 * value only if it fits in what is left of the batch (never flushing it). */
static void put_value_in_batch(const char *val, size_t len, void *ctx)
{
    kv_ctx *x = ctx;
    char *p;

    if (x->mget_overflow || len > EX_OUT_CAP - x->out->len ||
        EX_OUT_CAP - x->out->len - len < BULK_HEAD) {
        x->mget_overflow = true;
        return;
    }
    p = x->out->buf + x->out->len;
    x->out->len += (size_t)snprintf(p, BULK_HEAD, "$%zu\r\n", len);
    ex_out_put(x->out, val, len); /* fits: a copy into the batch */
    ex_out_put(x->out, "\r\n", 2);
}

/* Most MGET replies fit in the output batch: build it there in one pass,
 * and if it does not fit, take it back out and go the sized way. */
static bool mget_in_batch(kv_ctx *x)
{
    size_t mark = x->out->len, i;

    if (EX_OUT_CAP - mark < BULK_HEAD || x->reply_left < EX_OUT_CAP)
        return false;
    x->mget_overflow = false;
    x->out->len += (size_t)snprintf(x->out->buf + mark, BULK_HEAD, "*%zu\r\n", x->argc - 1);
    for (i = 1; i < x->argc && !x->mget_overflow; i++) {
        if (kv_get(x->store, x->argv[i].p, x->argv[i].n, put_value_in_batch, x))
            continue;
        if (EX_OUT_CAP - x->out->len < 5)
            x->mget_overflow = true;
        else
            ex_out_put(x->out, "$-1\r\n", 5);
    }
    if (x->mget_overflow)
        x->out->len = mark;
    return !x->mget_overflow;
}

/* Larger MGET replies are sized first (a lock per key, no copy), so one
 * request of 800 bytes naming a large value 400 times is refused, not
 * buffered.  A value that grows between the two passes becomes an error
 * element. */
static void cmd_mget(kv_ctx *x)
{
    size_t total = BULK_HEAD, i;
    char *p;

    if (mget_in_batch(x))
        return;
    for (i = 1; i < x->argc && total <= x->reply_left; i++) {
        if (!kv_get(x->store, x->argv[i].p, x->argv[i].n, add_reply_size, &total))
            total += BULK_HEAD;
    }
    if (total > x->reply_left) {
        reply_err(x, ERR_TOO_LARGE);
        return;
    }
    p = ex_out_reserve(x->out, BULK_HEAD);
    ex_out_commit(x->out, (size_t)snprintf(p, BULK_HEAD, "*%zu\r\n", x->argc - 1));
    x->reply_left -= BULK_HEAD;
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

/* Answers the complete commands in data, in order, and returns how many
 * bytes they took: the rest (a partial command, or commands left unanswered
 * at high water) is presented again. */
static size_t kv_on_data(ps_conn *c, const char *data, size_t len, void *user)
{
    kv_app *app = user;
    kv_conn *kc = ps_conn_data(c);
    ex_out out;
    kv_ctx x = {.store = app->store, .out = &out, .app = app, .conn = c, .kc = kc};
    size_t off = 0, used;
    int rc;

    ex_out_init(&out, c);
    while (off < len && !ex_out_full(&out, app->high_water)) {
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
        x.reply_left = app->max_reply;
        dispatch(&x);
        if (x.quit) {
            off = len;
            break;
        }
        if (x.hold)
            break;
    }
    resp_release(&kc->parser); /* a large argv is not kept while idle */
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

static kv_app app = {.limits = {PUBSUB_HARD_DEFAULT, PUBSUB_SOFT_DEFAULT,
                                PUBSUB_SOFT_SECONDS_DEFAULT}};

enum { OPT_PUBSUB_LIMIT = 512 };

static int take_option(int val, const char *arg, ps_config *cfg)
{
    (void)cfg;
    return val == OPT_PUBSUB_LIMIT ? pubsub_parse_limits(arg, &app.limits) : -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pubsub-limit", required_argument, 0, OPT_PUBSUB_LIMIT},
        {0, 0, 0, 0},
    };
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
            "\nLimits: bulk argument 8 MiB, command 16 MiB, inline line 64 KiB; replies\n"
            "stop at 1 MiB of pending output, one reply may add up to 63 MiB (larger:\n"
            "an error), and 64 MiB of pending output closes the connection.\n",
        .extra_opts = opts,
        .extra = take_option,
    };
    size_t reserved;
    ps_config cfg;
    ps_handler h;
    int rc;

    ps_config_init(&cfg);
    /* A command (with its arguments) must arrive within 20 s, extended by
     * 1 s per 500 bytes (as poolsrv-http), and at most 10,000 clients at
     * once (Redis's maxclients). */
    cfg.request_timeout_ms = 20000;
    cfg.min_rate = 500;
    cfg.max_connections = 10000;
    ex_parse_args(&prog, argc, argv, &cfg);
    /* A command may be up to RESP_MAX_COMMAND bytes before it can be
     * parsed; allow that much unconsumed input plus one read. */
    cfg.max_input = RESP_MAX_COMMAND + (1u << 20);
    /* Answering stops once pending output passes out_high_water, with at
     * most one batch on top, so a reply may add what max_output leaves
     * above that; past max_output poolsrv would drop the connection. */
    app.high_water = cfg.out_high_water;
    reserved = cfg.out_high_water + EX_OUT_CAP;
    app.max_reply = cfg.max_output == 0 ? SIZE_MAX
                    : cfg.max_output > reserved ? cfg.max_output - reserved
                                                : 0;
    app.store = kv_store_new();
    app.pubsub = pubsub_new(&app.limits);
    if (!app.store || !app.pubsub) {
        ex_fail(&prog, "out of memory");
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

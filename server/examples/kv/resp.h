/* SPDX-License-Identifier: MIT */
/*
 * resp.h - an incremental parser for Redis protocol (RESP2) requests: arrays
 * of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") and inline commands
 * ("GET k\r\n", words split on blanks, with "..." and '...' quoting as in
 * redis-cli).
 *
 * Like http_parser.h, the parser is handed the connection's unconsumed input
 * (what on_data receives); until a command is complete it consumes nothing,
 * and poolsrv presents the same bytes again with newer ones behind them.
 * The parser remembers how far it got, so a long command arriving in many
 * pieces is scanned once, and the result never depends on the split.
 *
 * Memory: while a command arrives the parser keeps no state per argument
 * (a "*1048576" followed by a trickle of "$0" arguments costs the parser
 * nothing but its struct; the bytes themselves are the connection's
 * unconsumed input, at most RESP_MAX_COMMAND).  Only a complete command gets
 * its argv: 16 bytes per argument it really has, given back by
 * resp_release (or the next resp_parse) when that array is large.
 */
#ifndef KV_RESP_H
#define KV_RESP_H

#include <stddef.h>

#define RESP_MAX_BULK (8u << 20)     /* one argument, bytes */
#define RESP_MAX_COMMAND (16u << 20) /* one whole command, bytes */
#define RESP_MAX_ARGS (1u << 20)     /* arguments of one command */
#define RESP_MAX_INLINE (64u << 10)  /* one inline command line, bytes */

typedef struct resp_str {
    const char *p;
    size_t n;
} resp_str;

/* Per-connection parser state.  Zero-initialise with resp_parser_init. */
typedef struct resp_parser {
    size_t pos;       /* bytes of the current command already parsed */
    long long want;   /* arguments announced by '*', -1 before the '*' line */
    long long bulk;   /* length of the argument being read, -1 before its '$' line */
    size_t first;     /* multibulk: offset of the first argument's '$' line */
    size_t argc;      /* arguments complete so far */
    int done;         /* the last call returned a command */
    size_t cap;       /* capacity of argv[] */
    resp_str *argv;   /* the finished command's arguments */
    char *line;       /* inline: unquoted copy of the arguments */
    size_t line_cap;
    resp_str small_argv[8];
} resp_parser;

enum {
    RESP_NEED_MORE = 0, /* nothing consumed: the command is not complete */
    RESP_COMMAND = 1,   /* a command (possibly empty: argc 0, ignore it) */
    /* Protocol errors (the connection must be answered and closed). */
    RESP_ERR_MULTIBULK = -1,
    RESP_ERR_BULK = -2,
    RESP_ERR_DOLLAR = -3,
    RESP_ERR_INLINE_TOO_BIG = -4,
    RESP_ERR_QUOTES = -5,
    RESP_ERR_TOO_BIG = -6,
    RESP_ERR_NOMEM = -7,
    RESP_ERR_CRLF = -8,
};

void resp_parser_init(resp_parser *p);
void resp_parser_free(resp_parser *p);

/*
 * Parse at most one command from buf[0..len) (the unconsumed input).
 * Returns RESP_COMMAND with *consumed = its length and *argc / *argv set
 * (valid until the next call or until buf changes), RESP_NEED_MORE with
 * *consumed = 0, or a negative RESP_ERR_* code.
 */
int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *consumed, size_t *argc,
               resp_str **argv);

/* The command last returned is done with: give back its large arrays now
 * rather than at the next resp_parse, so an idle connection holds only the
 * parser struct.  Its argv is invalid afterwards. */
void resp_release(resp_parser *p);

/* The Redis error text for a RESP_ERR_* code, "Protocol error: ...". */
const char *resp_strerror(int code);

#endif

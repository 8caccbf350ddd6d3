/* SPDX-License-Identifier: MIT */
/* resp.c - incremental RESP2 request parser (see resp.h). */
#include "resp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void resp_parser_init(resp_parser *p)
{
    memset(p, 0, sizeof *p);
    p->want = -1;
    p->bulk = -1;
    p->cap = sizeof p->small_argv / sizeof p->small_argv[0];
    p->argv = p->small_argv;
}

static void free_argv(resp_parser *p)
{
    if (p->argv != p->small_argv)
        free(p->argv);
    p->cap = sizeof p->small_argv / sizeof p->small_argv[0];
    p->argv = p->small_argv;
}

void resp_parser_free(resp_parser *p)
{
    free_argv(p);
    free(p->line);
    p->line = NULL;
    p->line_cap = 0;
}

/* Forget the finished command; large buffers are given back so an idle
 * connection keeps only the parser itself. */
static void reset(resp_parser *p)
{
    if (p->cap > 64)
        free_argv(p);
    if (p->line_cap > 4096) {
        free(p->line);
        p->line = NULL;
        p->line_cap = 0;
    }
    p->pos = 0;
    p->want = -1;
    p->bulk = -1;
    p->argc = 0;
}

void resp_release(resp_parser *p)
{
    if (p->done) {
        reset(p);
        p->done = false;
    }
}

/* Room for n arguments in argv[], keeping its first `keep` entries (inline
 * fills argv as it goes; multibulk fills it once the count is known). */
static int reserve(resp_parser *p, size_t n, size_t keep)
{
    size_t cap = p->cap;
    resp_str *argv;

    if (n <= p->cap)
        return 0;
    while (cap < n)
        cap *= 2;
    argv = malloc(cap * sizeof *argv);
    if (!argv)
        return RESP_ERR_NOMEM;
    memcpy(argv, p->argv, keep * sizeof *argv);
    free_argv(p);
    p->argv = argv;
    p->cap = cap;
    return 0;
}

/* A decimal line "<prefix><digits>\r\n" starting at buf[pos].  Returns 1 and
 * sets *val and *next, 0 if the line is incomplete, or -1 if it is not a
 * plain integer.  The CR must come within NUMBER_LINE_MAX bytes of the
 * prefix; the answer depends only on those bytes, so it is the same however
 * the input was split. */
#define NUMBER_LINE_MAX 32

static int read_number_line(const char *buf, size_t len, size_t pos, long long *val, size_t *next)
{
    size_t avail = len - pos, view = avail < NUMBER_LINE_MAX + 1 ? avail : NUMBER_LINE_MAX + 1;
    const char *cr = memchr(buf + pos, '\r', view);
    size_t i = pos + 1, end;
    long long v = 0;
    bool neg = false;

    if (!cr)
        return avail > NUMBER_LINE_MAX ? -1 : 0;
    end = (size_t)(cr - buf);
    if (end + 1 >= len)
        return 0; /* the LF has not arrived */
    if (buf[end + 1] != '\n' || end - i > 20)
        return -1;
    if (i < end && buf[i] == '-') {
        neg = true;
        i++;
    }
    if (i == end)
        return -1;
    for (; i < end; i++) {
        if (buf[i] < '0' || buf[i] > '9' || v > (1LL << 40))
            return -1;
        v = v * 10 + (buf[i] - '0');
    }
    *val = neg ? -v : v;
    *next = end + 2;
    return 1;
}

/* The next argument of a multibulk command: its "$<len>" line, then len
 * bytes and CRLF.  Returns 1 when it is complete, RESP_NEED_MORE or an
 * error. */
static int read_bulk(resp_parser *p, const char *buf, size_t len)
{
    long long v;
    size_t next;
    int rc;

    if (p->bulk < 0) {
        if (p->pos >= len)
            return RESP_NEED_MORE;
        if (buf[p->pos] != '$')
            return RESP_ERR_DOLLAR;
        rc = read_number_line(buf, len, p->pos, &v, &next);
        if (rc <= 0)
            return rc < 0 ? RESP_ERR_BULK : RESP_NEED_MORE;
        if (v < 0 || v > (long long)RESP_MAX_BULK)
            return RESP_ERR_BULK;
        if (next + (size_t)v + 2 > RESP_MAX_COMMAND)
            return RESP_ERR_TOO_BIG;
        p->pos = next;
        p->bulk = v;
    }
    if (len - p->pos < (size_t)p->bulk + 2)
        return RESP_NEED_MORE;
    if (buf[p->pos + (size_t)p->bulk] != '\r' || buf[p->pos + (size_t)p->bulk + 1] != '\n')
        return RESP_ERR_CRLF;
    p->argc++; /* nothing stored: argv is built once the command is complete */
    p->pos += (size_t)p->bulk + 2;
    p->bulk = -1;
    return 1;
}

/* The command in buf is complete and valid: point argv at its p->argc
 * arguments, walking their "$<len>" lines again from p->first.  Keeping no
 * offsets while the command arrives is what bounds the parser's memory by
 * the arguments actually sent rather than announced or trickled. */
static int build_argv(resp_parser *p, const char *buf)
{
    size_t pos = p->first, next, i;
    long long v;

    if (reserve(p, p->argc, 0) < 0)
        return RESP_ERR_NOMEM;
    for (i = 0; i < p->argc; i++) {
        read_number_line(buf, p->pos, pos, &v, &next); /* accepted once: 1 */
        p->argv[i].p = buf + next;
        p->argv[i].n = (size_t)v;
        pos = next + (size_t)v + 2;
    }
    return 0;
}

static int parse_multibulk(resp_parser *p, const char *buf, size_t len, size_t *consumed)
{
    long long v;
    size_t next;
    int rc;

    if (p->want < 0) {
        rc = read_number_line(buf, len, 0, &v, &next);
        if (rc <= 0)
            return rc < 0 ? RESP_ERR_MULTIBULK : RESP_NEED_MORE;
        if (v > (long long)RESP_MAX_ARGS)
            return RESP_ERR_MULTIBULK;
        p->pos = next;
        p->first = next;
        p->want = v < 0 ? 0 : v;
    }
    while ((long long)p->argc < p->want) {
        if ((rc = read_bulk(p, buf, len)) != 1)
            return rc;
    }
    if ((rc = build_argv(p, buf)) < 0)
        return rc;
    *consumed = p->pos;
    return RESP_COMMAND;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A backslash escape inside "...", at s[i] (the backslash, with at least one
 * byte after it): stores the byte it stands for and returns its length. */
static size_t escape(const char *s, size_t n, size_t i, char *out)
{
    char e = s[i + 1];

    if (e == 'x' && i + 3 < n && hex_val(s[i + 2]) >= 0 && hex_val(s[i + 3]) >= 0) {
        *out = (char)(hex_val(s[i + 2]) * 16 + hex_val(s[i + 3]));
        return 4;
    }
    switch (e) {
    case 'n': *out = '\n'; break;
    case 'r': *out = '\r'; break;
    case 't': *out = '\t'; break;
    case 'b': *out = '\b'; break;
    case 'a': *out = '\a'; break;
    default: *out = e; break;
    }
    return 2;
}

/* One quoted word starting at s[*i] (the quote); unquoted text goes to out.
 * As redis-cli: "..." knows \n \r \t \b \a \\ \" \xHH, '...' knows \';
 * the closing quote must be followed by a blank or the end. */
static int unquote(const char *s, size_t n, size_t *i, char *out, size_t *olen)
{
    char q = s[(*i)++];
    size_t k = *olen;

    while (*i < n && s[*i] != q) {
        bool esc = s[*i] == '\\' && *i + 1 < n;
        if (esc && q == '"') {
            *i += escape(s, n, *i, &out[k++]);
        } else if (esc && s[*i + 1] == '\'') {
            out[k++] = '\'';
            *i += 2;
        } else {
            out[k++] = s[(*i)++]; /* also a backslash that escapes nothing */
        }
    }
    if (*i >= n)
        return RESP_ERR_QUOTES;
    (*i)++;
    if (*i < n && s[*i] != ' ' && s[*i] != '\t')
        return RESP_ERR_QUOTES;
    *olen = k;
    return 0;
}

static int parse_inline(resp_parser *p, const char *buf, size_t len, size_t *consumed)
{
    size_t view = len < RESP_MAX_INLINE ? len : RESP_MAX_INLINE;
    const char *nl = memchr(buf + p->pos, '\n', view - p->pos);
    size_t n, i = 0, olen = 0, start;
    int rc;

    if (!nl) {
        p->pos = view;
        return len >= RESP_MAX_INLINE ? RESP_ERR_INLINE_TOO_BIG : RESP_NEED_MORE;
    }
    n = (size_t)(nl - buf);
    *consumed = n + 1;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (n + 1 > p->line_cap) {
        char *line = realloc(p->line, n + 1);
        if (!line)
            return RESP_ERR_NOMEM;
        p->line = line;
        p->line_cap = n + 1;
    }
    p->argc = 0;
    for (;;) {
        while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'))
            i++;
        if (i >= n)
            break;
        if (reserve(p, p->argc + 1, p->argc) < 0)
            return RESP_ERR_NOMEM;
        start = olen;
        if (buf[i] == '"' || buf[i] == '\'') {
            if ((rc = unquote(buf, n, &i, p->line, &olen)) < 0)
                return rc;
        } else {
            while (i < n && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r')
                p->line[olen++] = buf[i++];
        }
        p->argv[p->argc].p = p->line + start;
        p->argv[p->argc].n = olen - start;
        p->argc++;
    }
    return RESP_COMMAND;
}

int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *consumed, size_t *argc,
               resp_str **argv)
{
    int rc;

    if (p->done) { /* the previous command's argv is no longer needed */
        reset(p);
        p->done = false;
    }
    *consumed = 0;
    if (len == 0)
        return RESP_NEED_MORE;
    /* The first byte decides the kind; it is the same on every call until
     * the command completes, since unconsumed bytes are presented again. */
    if (buf[0] == '*')
        rc = parse_multibulk(p, buf, len, consumed);
    else
        rc = parse_inline(p, buf, len, consumed);
    if (rc != RESP_COMMAND)
        return rc;
    p->done = true;
    *argc = p->argc;
    *argv = p->argv;
    return RESP_COMMAND;
}

const char *resp_strerror(int code)
{
    switch (code) {
    case RESP_ERR_MULTIBULK: return "Protocol error: invalid multibulk length";
    case RESP_ERR_BULK: return "Protocol error: invalid bulk length";
    case RESP_ERR_DOLLAR: return "Protocol error: expected '$'";
    case RESP_ERR_INLINE_TOO_BIG: return "Protocol error: too big inline request";
    case RESP_ERR_QUOTES: return "Protocol error: unbalanced quotes in request";
    case RESP_ERR_TOO_BIG: return "Protocol error: command too large";
    case RESP_ERR_NOMEM: return "out of memory";
    case RESP_ERR_CRLF: return "Protocol error: expected CRLF after bulk data";
    default: return "Protocol error";
    }
}

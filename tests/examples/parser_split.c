/* SPDX-License-Identifier: MIT */
/*
 * parser_split.c - unit test of the two example parsers
 * (server/examples/http_hello/http_parser.c, server/examples/kv/resp.c).
 *
 * Each case is a byte stream with the outcome it must have.  The stream is
 * delivered whole, split in two at every byte boundary, and one byte at a
 * time, the way poolsrv delivers it (unconsumed bytes are presented again,
 * followed by newer ones); every delivery must give the expected outcome.
 * Last line: "parser-split: N passed, N failed"; exit status 1 on failure.
 */
#include "http_parser.h"
#include "resp.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

/* An outcome as text: one line per request/command, then "end=<result>". */
typedef struct trace {
    char *s;
    size_t len, cap;
} trace;

static void tr_add(trace *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < t->cap - t->len)
            break;
        t->cap = (t->cap + (size_t)n + 64) * 2;
        if (!(t->s = realloc(t->s, t->cap)))
            abort();
    }
    t->len += (size_t)n;
}

static void tr_bytes(trace *t, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            tr_add(t, "%c", ch);
        else
            tr_add(t, "\\x%02x", ch);
    }
}

/* Delivery plan: the end offset of each delivery. */
typedef struct plan {
    size_t *cuts;
    size_t n;
} plan;

/* ---------------------------------------------------------------- HTTP */

static void http_run(const char *data, size_t size, const plan *pl, trace *t)
{
    http_parser p;
    http_request r;
    char *pending = malloc(size + 1);
    size_t have = 0, fed = 0, used, k;
    int rc = 0;

    if (!pending)
        abort();
    t->len = 0;
    tr_add(t, "%s", "");
    http_parser_init(&p, HTTP_MAX_HEAD_DEFAULT, HTTP_MAX_BODY_DEFAULT);
    for (k = 0; k < pl->n && rc >= 0; k++) {
        memcpy(pending + have, data + fed, pl->cuts[k] - fed);
        have += pl->cuts[k] - fed;
        fed = pl->cuts[k];
        for (;;) {
            rc = http_parse(&p, pending, have, &used, &r);
            if (rc < 0)
                break;
            if (rc == HTTP_REQUEST) { /* r points into pending: record it first */
                tr_add(t, "%.*s ", (int)r.method_len, r.method_str);
                tr_bytes(t, r.target, r.target_len);
                tr_add(t, " 1.%d %s cl=%llu\n", r.minor, r.keep_alive ? "keep" : "close",
                       (unsigned long long)r.content_length);
            }
            memmove(pending, pending + used, have - used);
            have -= used;
            if (rc != HTTP_REQUEST)
                break;
        }
    }
    if (rc < 0)
        tr_add(t, "end=%d", rc);
    else
        tr_add(t, "end=left%zu%s", have, http_body_pending(&p) ? "+body" : "");
    free(pending);
}

/* ---------------------------------------------------------------- RESP */

static void resp_run(const char *data, size_t size, const plan *pl, trace *t)
{
    resp_parser p;
    resp_str *argv;
    char *pending = malloc(size + 1);
    size_t have = 0, fed = 0, used, argc, k, i;
    int rc = 0;

    if (!pending)
        abort();
    t->len = 0;
    tr_add(t, "%s", "");
    resp_parser_init(&p);
    for (k = 0; k < pl->n && rc >= 0; k++) {
        memcpy(pending + have, data + fed, pl->cuts[k] - fed);
        have += pl->cuts[k] - fed;
        fed = pl->cuts[k];
        for (;;) {
            rc = resp_parse(&p, pending, have, &used, &argc, &argv);
            if (rc != RESP_COMMAND)
                break;
            tr_add(t, "[%zu]", argc);
            for (i = 0; i < argc; i++) {
                tr_add(t, " '");
                tr_bytes(t, argv[i].p, argv[i].n);
                tr_add(t, "'");
            }
            tr_add(t, "\n");
            memmove(pending, pending + used, have - used);
            have -= used;
        }
    }
    if (rc < 0)
        tr_add(t, "end=%d", rc);
    else
        tr_add(t, "end=left%zu", have);
    resp_parser_free(&p);
    free(pending);
}

/* --------------------------------------------------------------- driver */

typedef void (*run_fn)(const char *data, size_t size, const plan *pl, trace *t);

/* Every delivery plan must produce `expect`.  One test result per case. */
static void check(const char *name, run_fn run, const char *data, size_t size, const char *expect)
{
    size_t cuts[2], k, *bytes = malloc((size + 1) * sizeof *bytes);
    plan pl;
    trace t = {0}, ref = {0};
    const char *how = NULL;
    size_t where = 0;

    if (!bytes)
        abort();
    cuts[0] = size;
    pl.cuts = cuts;
    pl.n = 1;
    run(data, size, &pl, &ref);
    if (strcmp(ref.s, expect) != 0) {
        how = "whole";
    } else {
        for (k = 0; k <= size && !how; k++) { /* two deliveries, split at k */
            cuts[0] = k;
            cuts[1] = size;
            pl.n = 2;
            run(data, size, &pl, &t);
            if (strcmp(t.s, expect) != 0) {
                how = "split";
                where = k;
            }
        }
        for (k = 0; k < size; k++) /* one byte at a time */
            bytes[k] = k + 1;
        pl.cuts = bytes;
        pl.n = size;
        if (!how && size > 0) {
            run(data, size, &pl, &t);
            if (strcmp(t.s, expect) != 0)
                how = "byte-by-byte";
        }
    }
    if (!how) {
        passed++;
        printf("ok   %s\n", name);
    } else {
        failed++;
        printf("FAIL %s (%s delivery, split at %zu)\n       expected: %s\n       got:      %s\n",
               name, how, where, expect, strcmp(how, "whole") == 0 ? ref.s : t.s);
    }
    free(t.s);
    free(ref.s);
    free(bytes);
}

#define CHECK(name, run, lit, expect) check(name, run, lit, sizeof lit - 1, expect)

static char *repeat(const char *head, char fill, size_t n, const char *tail, size_t *len)
{
    size_t h = strlen(head), tl = strlen(tail);
    char *s = malloc(h + n + tl + 1);

    if (!s)
        abort();
    memcpy(s, head, h);
    memset(s + h, fill, n);
    memcpy(s + h + n, tail, tl + 1);
    *len = h + n + tl;
    return s;
}

static void http_cases(void)
{
    char *big;
    size_t n;

    CHECK("http: simple GET", http_run, "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
          "GET / 1.1 keep cl=0\nend=left0");
    CHECK("http: pipelined, body, 1.0 keep-alive", http_run,
          "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
          "GET /stats HTTP/1.0\r\n\r\n"
          "HEAD /?q=1 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
          "GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
          "POST /x 1.1 keep cl=5\nGET /stats 1.0 close cl=0\nHEAD /?q=1 1.0 keep cl=0\n"
          "GET / 1.1 close cl=0\nend=left0");
    CHECK("http: bare LF, leading empty lines, HTTP/1.2", http_run,
          "\r\n\nGET /a HTTP/1.2\nhost:  a  \nX-Empty:\n\n", "GET /a 1.1 keep cl=0\nend=left0");
    CHECK("http: incomplete head and body wait", http_run,
          "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n1234567890GET / HTTP/1.1\r\nHo",
          "GET / 1.1 keep cl=10\nend=left18");
    CHECK("http: body still pending", http_run,
          "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345",
          "PUT / 1.1 keep cl=10\nend=left0+body");
    CHECK("http: 400 garbage request line", http_run, "hello world\r\n", "end=-400");
    CHECK("http: 400 after a good request", http_run,
          "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET  / HTTP/1.1\r\n", "GET / 1.1 keep cl=0\nend=-400");
    CHECK("http: 400 missing Host in 1.1", http_run, "GET / HTTP/1.1\r\n\r\n", "end=-400");
    CHECK("http: 400 two Hosts", http_run, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
          "end=-400");
    CHECK("http: 400 space before colon", http_run, "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
          "end=-400");
    CHECK("http: 400 obsolete line folding", http_run,
          "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n", "end=-400");
    CHECK("http: 400 CR inside a line", http_run, "GET / HTTP/1.1\rX\r\n", "end=-400");
    CHECK("http: 400 control byte in value", http_run, "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
          "end=-400");
    CHECK("http: 400 conflicting Content-Length", http_run,
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
          "end=-400");
    CHECK("http: 400 bad Content-Length", http_run,
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", "end=-400");
    CHECK("http: 400 Content-Length with Transfer-Encoding", http_run,
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
          "end=-400");
    CHECK("http: 400 bad version syntax", http_run, "GET / HTTP/1.10\r\n", "end=-400");
    CHECK("http: 505 HTTP/2.0", http_run, "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "end=-505");
    CHECK("http: 505 HTTP/0.9", http_run, "GET / HTTP/0.9\r\n", "end=-505");
    CHECK("http: 501 chunked body", http_run,
          "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", "end=-501");
    CHECK("http: 413 body over the limit", http_run,
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", "end=-413");
    CHECK("http: body at the limit", http_run,
          "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n",
          "POST / 1.1 keep cl=1048576\nend=left0+body");

    big = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'x', 9000, "\r\n\r\n", &n);
    check("http: 431 head over 8 KiB", http_run, big, n, "end=-431");
    free(big);
    big = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'x', 8192 - 32, "\r\n\r\n", &n);
    check("http: head of exactly 8 KiB", http_run, big, n, "GET / 1.1 keep cl=0\nend=left0");
    free(big);
    big = repeat("GET / HTTP/1.1\r\nHost: a\r\nX: ", 'x', 8192 - 31, "\r\n\r\n", &n);
    check("http: head of 8 KiB + 1", http_run, big, n, "end=-431");
    free(big);
    big = repeat("GET /", 'a', 9000, " HTTP/1.1\r\n\r\n", &n);
    check("http: 414 request line over 8 KiB", http_run, big, n, "end=-414");
    free(big);
    {
        char *many = malloc(4096);
        size_t m = 0, i;
        if (!many)
            abort();
        m += (size_t)sprintf(many + m, "GET / HTTP/1.1\r\n");
        for (i = 0; i < 101; i++)
            m += (size_t)sprintf(many + m, "H%zu: v\r\n", i);
        m += (size_t)sprintf(many + m, "\r\n");
        check("http: 431 more than 100 headers", http_run, many, m, "end=-431");
        free(many);
    }
}

static void resp_cases(void)
{
    char *big;
    size_t n;

    CHECK("resp: multibulk PING", resp_run, "*1\r\n$4\r\nPING\r\n", "[1] 'PING'\nend=left0");
    CHECK("resp: pipeline of inline and multibulk", resp_run,
          "PING\r\nSET a \"b c\"\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n\r\n*0\r\nget  x\n",
          "[1] 'PING'\n[3] 'SET' 'a' 'b c'\n[3] 'SET' 'k' ''\n[0]\n[0]\n[2] 'get' 'x'\nend=left0");
    CHECK("resp: binary-safe bulk", resp_run, "*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n",
          "[2] 'GET' 'a\\x0d\\x0ab'\nend=left0");
    CHECK("resp: inline quoting", resp_run, "ECHO \"a\\x41\\n\" 'it\\'s'\r\n",
          "[3] 'ECHO' 'aA\\x0a' 'it's'\nend=left0");
    CHECK("resp: inline command with 11 words (argv grows)", resp_run,
          "MSET a 1 b 2 c 3 d 4 e 5\r\n",
          "[11] 'MSET' 'a' '1' 'b' '2' 'c' '3' 'd' '4' 'e' '5'\nend=left0");
    CHECK("resp: multibulk with 10 arguments (argv grows)", resp_run,
          "*10\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n"
          "$1\r\nf\r\n$1\r\ng\r\n$1\r\nh\r\n$1\r\ni\r\nPING\r\n",
          "[10] 'MGET' 'a' 'b' 'c' 'd' 'e' 'f' 'g' 'h' 'i'\n[1] 'PING'\nend=left0");
    CHECK("resp: incomplete command waits", resp_run, "*2\r\n$3\r\nGET\r\n$5\r\nab", "end=left19");
    CHECK("resp: incomplete inline waits", resp_run, "PING\r\nPIN", "[1] 'PING'\nend=left3");
    CHECK("resp: bad multibulk length", resp_run, "*x\r\n", "end=-1");
    CHECK("resp: multibulk length too large", resp_run, "*2000000\r\n", "end=-1");
    CHECK("resp: negative bulk length", resp_run, "*1\r\n$-5\r\n", "end=-2");
    CHECK("resp: bulk length too large", resp_run, "*1\r\n$100000000\r\n", "end=-2");
    CHECK("resp: expected $", resp_run, "*1\r\nfoo\r\n", "end=-3");
    CHECK("resp: unbalanced quotes", resp_run, "SET \"abc\r\n", "end=-5");
    CHECK("resp: no CRLF after bulk", resp_run, "*1\r\n$1\r\naXY", "end=-8");
    CHECK("resp: error after a good command", resp_run, "PING\r\n*1\r\n$x\r\n",
          "[1] 'PING'\nend=-2");
    big = repeat("*", '9', 40, "\r", &n); /* a count line with no CR in 33 bytes */
    check("resp: overlong count line, CR last", resp_run, big, n, "end=-1");
    free(big);
    big = repeat("SET k ", 'v', 70000, "", &n);
    check("resp: inline line over 64 KiB", resp_run, big, n, "end=-4");
    free(big);
    big = repeat("*2\r\n$3\r\nGET\r\n$3000\r\n", 'k', 3000, "\r\n", &n);
    {
        size_t m;
        char *expect = repeat("[2] 'GET' '", 'k', 3000, "'\nend=left0", &m);
        check("resp: 3000-byte argument", resp_run, big, n, expect);
        free(expect);
    }
    free(big);
}

/* Issue 12: an unfinished "*N" of "$0" arguments made the parser hold
 * 32 bytes per argument received (16 MiB of arrays for 6 MB of input).  It
 * must hold nothing per argument until the command is complete, and give a
 * large argv back on resp_release. */
static void resp_memory_case(void)
{
    const size_t nargs = 100000;
    size_t len = 0, used, argc = 0, i, cap_waiting, cap_done, cap_released;
    char *buf = malloc(16 + nargs * 6);
    resp_parser p;
    resp_str *argv = NULL;
    int rc_waiting, rc_done;
    bool args_ok = true;

    if (!buf)
        abort();
    len += (size_t)sprintf(buf, "*%zu\r\n", nargs);
    for (i = 0; i + 1 < nargs; i++) {
        memcpy(buf + len, "$0\r\n\r\n", 6);
        len += 6;
    }
    resp_parser_init(&p);
    rc_waiting = resp_parse(&p, buf, len, &used, &argc, &argv); /* one argument short */
    cap_waiting = p.cap;
    memcpy(buf + len, "$0\r\n\r\n", 6);
    len += 6;
    rc_done = resp_parse(&p, buf, len, &used, &argc, &argv);
    cap_done = p.cap;
    for (i = 0; rc_done == RESP_COMMAND && i < argc; i++)
        args_ok = args_ok && argv[i].n == 0 && argv[i].p >= buf && argv[i].p <= buf + len;
    resp_release(&p);
    cap_released = p.cap;
    if (rc_waiting == RESP_NEED_MORE && cap_waiting <= 8 && rc_done == RESP_COMMAND &&
        used == len && argc == nargs && args_ok && cap_done >= nargs && cap_released <= 8) {
        passed++;
        printf("ok   resp: no per-argument memory until a command is complete\n");
    } else {
        failed++;
        printf("FAIL resp: no per-argument memory until a command is complete\n"
               "       waiting: rc %d, argv capacity %zu (want <= 8); done: rc %d argc %zu "
               "used %zu of %zu args_ok %d capacity %zu; released: capacity %zu\n",
               rc_waiting, cap_waiting, rc_done, argc, used, len, args_ok, cap_done, cap_released);
    }
    resp_parser_free(&p);
    free(buf);
}

int main(void)
{
    http_cases();
    resp_cases();
    resp_memory_case();
    printf("parser-split: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * http_parser.c - incremental HTTP/1.x request heads (RFC 9112), see
 * http_parser.h for the contract.
 *
 * Line endings: CRLF, or a bare LF (RFC 9112 2.2 lets a recipient accept
 * it); a CR anywhere else is an error.  Header values may hold SP, HTAB,
 * visible ASCII and obs-text; other control bytes are an error.
 */
#include "http_parser.h"

#include <string.h>

/* tchar of RFC 9110 5.6.2: the characters of a token. */
static bool is_tchar(unsigned char ch)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr(extra, ch) != NULL;
}

static bool is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Case-insensitive comparison of s[0..n) with a lower-case literal. */
static bool eq_lower(const char *s, size_t n, const char *lit)
{
    size_t i;

    if (strlen(lit) != n)
        return false;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        if (ch != (unsigned char)lit[i])
            return false;
    }
    return true;
}

void http_parser_init(http_parser *p, size_t max_head, uint64_t max_body)
{
    memset(p, 0, sizeof *p);
    p->max_head = max_head;
    p->max_body = max_body;
}

static void reset_head(http_parser *p)
{
    size_t max_head = p->max_head;
    uint64_t max_body = p->max_body, body_left = p->body_left;

    memset(p, 0, sizeof *p);
    p->max_head = max_head;
    p->max_body = max_body;
    p->body_left = body_left;
}

/* method SP request-target SP HTTP-version, without the line ending. */
static int parse_request_line(http_parser *p, const char *line, size_t n)
{
    size_t i = 0, t;

    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= n || line[i] != ' ')
        return -400;
    p->method_len = i++;
    t = i;
    while (i < n && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f)
        i++;
    if (i == t || i >= n || line[i] != ' ')
        return -400;
    p->target_off = t;
    p->target_len = i - t;
    i++;
    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive */
    if (n - i != 8 || memcmp(line + i, "HTTP/", 5) != 0 || !is_digit((unsigned char)line[i + 5]) ||
        line[i + 6] != '.' || !is_digit((unsigned char)line[i + 7]))
        return -400;
    if (line[i + 5] != '1')
        return -505;
    p->minor = line[i + 7] == '0' ? 0 : 1;
    return 0;
}

/* Content-Length: 1*DIGIT; repeats must agree (RFC 9112 6.3). */
static int parse_content_length(http_parser *p, const char *v, size_t n)
{
    uint64_t x = 0;
    size_t i;

    if (n == 0 || n > 19)
        return n > 19 ? -413 : -400;
    for (i = 0; i < n; i++) {
        if (!is_digit((unsigned char)v[i]))
            return -400;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    if (p->have_cl && p->content_length != x)
        return -400;
    p->have_cl = true;
    p->content_length = x;
    return 0;
}

/* Connection: a comma-separated list of options. */
static void parse_connection(http_parser *p, const char *v, size_t n)
{
    size_t i = 0, s, e;

    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (eq_lower(v + s, e - s, "close"))
            p->conn_close = true;
        else if (eq_lower(v + s, e - s, "keep-alive"))
            p->conn_keep_alive = true;
    }
}

/* field-name ":" OWS field-value OWS, without the line ending. */
static int parse_header_line(http_parser *p, const char *line, size_t n)
{
    size_t i = 0, name_len, vs, ve;

    if (++p->nheaders > HTTP_MAX_HEADERS)
        return -431;
    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == 0 || i >= n || line[i] != ':')
        return -400; /* also a leading SP/HTAB: obsolete line folding */
    name_len = i++;
    for (vs = i; vs < n && (line[vs] == ' ' || line[vs] == '\t');)
        vs++;
    for (ve = n; ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t');)
        ve--;
    for (i = vs; i < ve; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return -400;
    }
    if (eq_lower(line, name_len, "content-length"))
        return parse_content_length(p, line + vs, ve - vs);
    if (eq_lower(line, name_len, "transfer-encoding"))
        p->have_te = true;
    else if (eq_lower(line, name_len, "connection"))
        parse_connection(p, line + vs, ve - vs);
    else if (eq_lower(line, name_len, "host"))
        p->nhost++;
    return 0;
}

/* The blank line ended the head: final checks, fill *req. */
static int finish_head(http_parser *p, const char *buf, http_request *req)
{
    if (p->have_te)
        return p->have_cl ? -400 : -501;
    if (p->nhost > 1 || (p->minor == 1 && p->nhost == 0))
        return -400;
    if (p->have_cl && p->content_length > p->max_body)
        return -413;
    req->method_str = buf;
    req->method_len = p->method_len;
    req->method = HTTP_OTHER;
    if (p->method_len == 3 && memcmp(buf, "GET", 3) == 0)
        req->method = HTTP_GET;
    else if (p->method_len == 4 && memcmp(buf, "HEAD", 4) == 0)
        req->method = HTTP_HEAD;
    req->target = buf + p->target_off;
    req->target_len = p->target_len;
    req->minor = p->minor;
    req->keep_alive = p->minor == 1 ? !p->conn_close : p->conn_keep_alive && !p->conn_close;
    req->content_length = p->have_cl ? p->content_length : 0;
    req->nheaders = p->nheaders;
    p->body_left = req->content_length;
    return HTTP_REQUEST;
}

size_t http_skip_body(http_parser *p, size_t avail)
{
    size_t take = p->body_left < avail ? (size_t)p->body_left : avail;

    p->body_left -= take;
    return take;
}

int http_parse(http_parser *p, const char *buf, size_t len, size_t *consumed, http_request *req)
{
    size_t off, view, start, end;
    const char *nl;
    int rc;

    off = http_skip_body(p, len);
    *consumed = off;
    if (p->body_left > 0)
        return HTTP_NEED_MORE;
    /* Empty lines before a request line are ignored (RFC 9112 2.2). */
    while (p->scanned == 0 && off < len && (buf[off] == '\n' || buf[off] == '\r')) {
        if (buf[off] == '\r' && off + 1 < len && buf[off + 1] != '\n')
            return -400;
        if (buf[off] == '\r' && off + 1 == len)
            break; /* the LF may follow */
        off += buf[off] == '\r' ? 2 : 1;
        *consumed = off;
    }
    buf += off;
    len -= off;
    view = len < p->max_head ? len : p->max_head; /* a head must fit in max_head */
    for (;;) {
        start = p->scanned;
        nl = memchr(buf + start, '\n', view - start);
        if (!nl) {
            if (len < p->max_head)
                return HTTP_NEED_MORE;
            return start == 0 ? -414 : -431;
        }
        end = (size_t)(nl - buf);
        p->scanned = end + 1;
        if (end > start && buf[end - 1] == '\r')
            end--;
        if (memchr(buf + start, '\r', end - start))
            return -400;
        if (start == 0)
            rc = parse_request_line(p, buf, end);
        else if (end == start)
            break; /* the empty line: end of the head */
        else
            rc = parse_header_line(p, buf + start, end - start);
        if (rc < 0)
            return rc;
    }
    rc = finish_head(p, buf, req);
    if (rc < 0)
        return rc;
    *consumed = off + p->scanned;
    reset_head(p);
    return HTTP_REQUEST;
}

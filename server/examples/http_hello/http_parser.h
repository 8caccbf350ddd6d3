/* SPDX-License-Identifier: MIT */
/*
 * http_parser.h - an incremental HTTP/1.x request parser for event handlers.
 *
 * The parser never copies the request: it is handed the connection's
 * unconsumed input (what on_data receives) and says how much of it it used.
 * Bytes it did not use must be presented again, followed by newer bytes, on
 * the next call -- exactly what poolsrv does with the part of `data` that
 * on_data does not consume.  A head is validated line by line as lines
 * complete, so the outcome never depends on where the input was split.
 *
 * Request bodies (Content-Length only) are consumed and discarded; a request
 * with Transfer-Encoding is refused with 501 (we implement no transfer
 * coding, so we cannot find where its body ends; see docs/embedding.md).
 */
#ifndef HTTP_PARSER_H
#define HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD_DEFAULT 8192       /* request line + headers, bytes */
#define HTTP_MAX_BODY_DEFAULT (1u << 20) /* Content-Length limit, bytes */
#define HTTP_MAX_HEADERS 100             /* header lines per request */

enum http_method { HTTP_GET, HTTP_HEAD, HTTP_OTHER };

/* One parsed request head.  The pointers point into the buffer given to
 * http_parse and are valid only until that buffer changes. */
typedef struct http_request {
    enum http_method method;
    const char *method_str;
    size_t method_len;
    const char *target; /* request-target as sent, e.g. "/stats?x=1" */
    size_t target_len;
    int minor;               /* HTTP/1.minor: 0 or 1 (1.2+ is served as 1.1) */
    bool keep_alive;         /* the connection stays open after this request */
    uint64_t content_length; /* body bytes that follow (discarded by the parser) */
    unsigned nheaders;
} http_request;

/* Parser state of one connection.  Zero it with http_parser_init. */
typedef struct http_parser {
    size_t max_head;
    uint64_t max_body;
    uint64_t body_left; /* bytes of the current body still to discard */
    /* Progress through the current head (which starts at buf[0] on every
     * call until it is complete): bytes already validated, always at a line
     * boundary, and what those lines said. */
    size_t scanned;
    size_t method_len, target_off, target_len;
    int minor;
    unsigned nheaders, nhost;
    bool have_cl, have_te, conn_close, conn_keep_alive;
    uint64_t content_length;
} http_parser;

/* Results of http_parse (errors are negative HTTP status codes). */
enum {
    HTTP_NEED_MORE = 0, /* everything not consumed is the start of a head */
    HTTP_REQUEST = 1,   /* a head is complete: *req describes it */
};

void http_parser_init(http_parser *p, size_t max_head, uint64_t max_body);

/*
 * Parse input.  buf[0..len) is the connection's unconsumed input; *consumed
 * is set to how many of those bytes were used: the rest of a body being
 * discarded, empty lines before a request, and a complete head.
 * Returns:
 *   HTTP_REQUEST    a complete head (at most one per call); its body, if
 *                   any, is discarded by the following calls.  Call again
 *                   with the remaining bytes.
 *   HTTP_NEED_MORE  no complete head in the remaining bytes yet.
 *   -400  malformed request line or header (also: HTTP/1.1 without exactly
 *         one Host, a bad or conflicting Content-Length, both Content-Length
 *         and Transfer-Encoding, obsolete line folding);
 *   -413  Content-Length above max_body;
 *   -414  request line longer than max_head;
 *   -431  head longer than max_head or more than HTTP_MAX_HEADERS headers;
 *   -501  Transfer-Encoding (not implemented);
 *   -505  an HTTP version other than 1.x.
 * After an error the connection should answer with that status and close;
 * the parser state is then undefined.
 */
int http_parse(http_parser *p, const char *buf, size_t len, size_t *consumed, http_request *req);

/* Discard up to avail bytes of the current body; returns how many were
 * taken (0 when no body is pending). */
size_t http_skip_body(http_parser *p, size_t avail);

/* Whether the previous request's body is still being discarded. */
static inline bool http_body_pending(const http_parser *p)
{
    return p->body_left > 0;
}

#endif

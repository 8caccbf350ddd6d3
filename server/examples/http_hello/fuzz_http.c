/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http.c - libFuzzer entry point for the HTTP request parser.  Not
 * built by default; for example:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iserver/examples/http_hello \
 *       server/examples/http_hello/fuzz_http.c server/examples/http_hello/http_parser.c \
 *       -o fuzz-http && ./fuzz-http -max_total_time=60
 *
 * The first input byte chooses where to split the rest into two deliveries;
 * the parse of the whole and of the two parts must agree, which checks the
 * "any split parses the same" promise as well as memory safety.
 */
#include "http_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct trace {
    int results[64];
    size_t n;
    int final;
};

/* Feed data in the given deliveries the way poolsrv does: unconsumed bytes
 * are presented again, followed by the next delivery. */
static void run(const uint8_t *data, size_t size, size_t split, struct trace *t)
{
    http_parser p;
    http_request req;
    char *pending = malloc(size + 1);
    const size_t cuts[2] = {split, size};
    size_t have = 0, used, fed = 0, k;
    int rc = 0;

    if (!pending)
        abort();
    memset(t, 0, sizeof *t);
    http_parser_init(&p, 256, 1000);
    for (k = 0; k < 2 && rc >= 0; k++) {
        memcpy(pending + have, data + fed, cuts[k] - fed);
        have += cuts[k] - fed;
        fed = cuts[k];
        for (;;) {
            rc = http_parse(&p, pending, have, &used, &req);
            if (used > have)
                abort();
            memmove(pending, pending + used, have - used);
            have -= used;
            if (rc != HTTP_REQUEST)
                break;
            if (t->n < 64)
                t->results[t->n++] = (int)req.method * 1000 + (int)req.target_len;
        }
    }
    t->final = rc < 0 ? rc : (int)have;
    free(pending);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace whole, parts;
    size_t split;

    if (size < 1)
        return 0;
    split = data[0] % size;
    data++;
    size--;
    if (split > size)
        split = size;
    run(data, size, size, &whole);
    run(data, size, split, &parts);
    if (whole.n != parts.n || whole.final != parts.final ||
        memcmp(whole.results, parts.results, whole.n * sizeof whole.results[0]) != 0)
        abort();
    return 0;
}

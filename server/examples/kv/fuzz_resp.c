/* SPDX-License-Identifier: MIT */
/*
 * fuzz_resp.c - libFuzzer entry point for the RESP request parser.  Not
 * built by default (`make fuzz-examples` builds it with clang), or:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iserver/examples/kv \
 *       server/examples/kv/fuzz_resp.c server/examples/kv/resp.c -o fuzz-resp
 *   ./fuzz-resp -max_total_time=60
 *
 * The first input byte chooses where to split the rest into two deliveries;
 * the commands parsed from the whole and from the two parts must agree.
 */
#include "resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A digest of the commands seen: FNV-1a over argc, lengths and bytes. */
struct trace {
    uint64_t digest;
    size_t ncmds;
    int final;
};

static void mix(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

static void run(const uint8_t *data, size_t size, size_t split, struct trace *t)
{
    resp_parser p;
    resp_str *argv;
    char *pending = malloc(size + 1);
    const size_t cuts[2] = {split, size};
    size_t have = 0, used, fed = 0, argc, k, i;
    int rc = 0;

    if (!pending)
        abort();
    t->digest = 0xcbf29ce484222325ULL;
    t->ncmds = 0;
    resp_parser_init(&p);
    for (k = 0; k < 2 && rc >= 0; k++) {
        memcpy(pending + have, data + fed, cuts[k] - fed);
        have += cuts[k] - fed;
        fed = cuts[k];
        for (;;) {
            rc = resp_parse(&p, pending, have, &used, &argc, &argv);
            if (rc != RESP_COMMAND)
                break;
            if (used == 0 || used > have)
                abort();
            t->ncmds++;
            mix(&t->digest, &argc, sizeof argc);
            for (i = 0; i < argc; i++) {
                mix(&t->digest, &argv[i].n, sizeof argv[i].n);
                mix(&t->digest, argv[i].p, argv[i].n);
            }
            memmove(pending, pending + used, have - used);
            have -= used;
        }
    }
    t->final = rc < 0 ? rc : (int)have;
    resp_parser_free(&p);
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
    if (whole.ncmds != parts.ncmds || whole.digest != parts.digest || whole.final != parts.final)
        abort();
    return 0;
}

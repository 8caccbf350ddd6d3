/* SPDX-License-Identifier: MIT */
/*
 * fuzz_addr.c - libFuzzer target for ps_addr_parse, ps_addr_format and
 * ps_policy_parse (lib/src/addr.c).
 *
 * The input is the address text (NUL added).  Checks: errors are -EINVAL
 * with a NUL-terminated message; an accepted address formats to text that
 * parses back to the same bytes.  The raw input is also handed to
 * ps_addr_format as a socket address of arbitrary family and length.
 */
#include "poolsrv.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_format_raw(const uint8_t *data, size_t size)
{
    struct sockaddr_storage raw;
    char out[300];
    size_t n = size < sizeof raw ? size : sizeof raw;
    size_t cap;

    memset(&raw, 0, sizeof raw);
    memcpy(&raw, data, n);
    for (cap = 1; cap <= sizeof out; cap += 97) {
        ps_addr_format((struct sockaddr *)&raw, (socklen_t)n, out, cap);
        if (!memchr(out, '\0', cap))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss, ss2;
    socklen_t len = 0, len2 = 0;
    ps_policy pol;
    ps_err err;
    char out[300];
    char *text = malloc(size + 1);
    int rc;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&err, 0x5A, sizeof err);
    memset(&ss, 0, sizeof ss);
    rc = ps_addr_parse(text, &ss, &len, &err);
    if (rc == 0) {
        if (len == 0 || len > sizeof ss)
            abort();
        ps_addr_format((struct sockaddr *)&ss, len, out, sizeof out);
        memset(&ss2, 0, sizeof ss2);
        if (ps_addr_parse(out, &ss2, &len2, NULL) != 0 || len2 != len ||
            memcmp(&ss, &ss2, len) != 0)
            abort();
    } else if (rc != -EINVAL || err.code != -EINVAL || !memchr(err.msg, '\0', sizeof err.msg)) {
        abort();
    }
    (void)ps_policy_parse(text, &pol);
    check_format_raw(data, size);
    free(text);
    return 0;
}

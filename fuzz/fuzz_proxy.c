/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proxy.c - libFuzzer target for ps__proxy_parse (lib/src/proxy.c).
 *
 * Besides memory safety (the input buffer is exactly `size` bytes, so ASan
 * sees any over-read) it checks the contract in proxy.h: the result never
 * exceeds the input, errors are -EPROTO, a full PS__PROXY_MAX_LEN buffer
 * always gets a verdict, a header parses the same when cut right after it,
 * and its prefixes ask for more.
 */
#include "proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int rc = ps__proxy_parse(data, size, &ss, &sl);

    if (rc < 0 && rc != -EPROTO)
        abort();
    if (rc == 0 && size >= PS__PROXY_MAX_LEN)
        abort();
    if (rc > 0) {
        size_t n = (size_t)rc;
        socklen_t sl2 = 0;

        if (n > size || n > PS__PROXY_MAX_LEN)
            abort();
        if (sl != 0 && !(ss.ss_family == AF_INET && sl == sizeof(struct sockaddr_in)) &&
            !(ss.ss_family == AF_INET6 && sl == sizeof(struct sockaddr_in6)))
            abort();
        if (ps__proxy_parse(data, n, &ss, &sl2) != rc || sl2 != sl)
            abort();
        /* Every proper prefix asks for more (all of them for short headers,
         * the longest otherwise, to keep each run cheap). */
        for (size_t k = n <= 256 ? 0 : n - 1; k < n; k++)
            if (ps__proxy_parse(data, k, &ss, &sl2) != 0)
                abort();
    }
    return 0;
}

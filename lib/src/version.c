/* SPDX-License-Identifier: MIT */
/* version.c - version string (from the VERSION file, via the Makefile) and
 * error texts. */
#include "internal.h"

#include <limits.h>
#include <string.h>

#ifndef PS_VERSION_STRING
#error "PS_VERSION_STRING must come from the VERSION file (see Makefile)"
#endif
/* The header's macros must say the same as VERSION: an installed poolsrv.h
 * that claims another version would mislead every #if PS_VERSION_HEX. */
#if !defined(PS_BUILD_VERSION_HEX) || PS_BUILD_VERSION_HEX != PS_VERSION_HEX
#error "PS_VERSION_* in poolsrv.h disagree with VERSION: run tools/set-version.sh"
#endif

const char *ps_version(void)
{
    return PS_VERSION_STRING;
}

const char *ps_strerror(int err)
{
    /* strerror() is not thread-safe and strerror_r() needs a buffer; the
     * glibc descriptions table behind strerrordesc_np is static. */
    const char *s = err == INT_MIN ? NULL : strerrordesc_np(err < 0 ? -err : err);

    return s ? s : "Unknown error";
}

const char *ps_close_reason_str(ps_close_reason why)
{
    switch (why) {
    case PS_CLOSE_EOF: return "eof";
    case PS_CLOSE_LOCAL: return "local";
    case PS_CLOSE_ERROR: return "error";
    case PS_CLOSE_OVERFLOW: return "overflow";
    case PS_CLOSE_SHUTDOWN: return "shutdown";
    case PS_CLOSE_TIMEOUT: return "timeout";
    case PS_CLOSE_OUTPUT: return "output";
    case PS_CLOSE_REFUSED: return "refused";
    case PS_CLOSE_UNREACHABLE: return "unreachable";
    case PS_CLOSE_CONNECT_TIMEOUT: return "connect_timeout";
    }
    return "unknown";
}

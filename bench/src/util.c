/*
 * util.c - clock, verification pattern and error classification.
 */
#include "bench.h"

#include <errno.h>
#include <time.h>

const char *const err_names[ERR_KINDS] = {
    [ERR_MISMATCH] = "mismatch",
    [ERR_EXCESS] = "excess",
    [ERR_REFUSED] = "refused",
    [ERR_RESET] = "reset",
    [ERR_TIMEOUT] = "timeout",
    [ERR_CLOSED] = "closed",
    [ERR_ADDRNOTAVAIL] = "addrnotavail",
    [ERR_FDLIMIT] = "fdlimit",
    [ERR_OTHER] = "other",
};

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Two periods back to back, so any phase has PATTERN_PERIOD bytes after it.
 * Written once by pattern_init() before the threads start; read-only after. */
static uint8_t pattern[2 * PATTERN_PERIOD];

void pattern_init(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull; /* xorshift64: fixed, reproducible */
    for (uint32_t i = 0; i < PATTERN_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = pattern[i + PATTERN_PERIOD] = (uint8_t)(x >> 32);
    }
}

const uint8_t *pattern_at(uint64_t off)
{
    return pattern + off % PATTERN_PERIOD;
}

uint32_t pattern_phase(uint32_t conn_id)
{
    return (uint32_t)(((uint64_t)conn_id * 2654435761u) % PATTERN_PERIOD);
}

enum err_kind err_from_errno(int e)
{
    switch (e) {
    case ECONNREFUSED: return ERR_REFUSED;
    case ECONNRESET:
    case EPIPE: return ERR_RESET;
    case ETIMEDOUT: return ERR_TIMEOUT;
    case EADDRNOTAVAIL:
    case EADDRINUSE: return ERR_ADDRNOTAVAIL;
    case EMFILE:
    case ENFILE: return ERR_FDLIMIT;
    default: return ERR_OTHER;
    }
}

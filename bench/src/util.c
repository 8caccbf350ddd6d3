/* SPDX-License-Identifier: MIT */
/*
 * util.c - clock, verification pattern and error classification.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
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
    [ERR_TLS] = "tls",
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

/* splitmix64's finaliser. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

size_t size_draw(const struct size_law *law, uint32_t id, uint32_t gen, uint64_t j)
{
    uint64_t h = mix64(law->seed + mix64(((uint64_t)id << 32 | gen) + 0x9e3779b97f4a7c15ull) +
                       j * 0xd1b54a32d192ed03ull);
    if (law->dist == DIST_UNIFORM)
        return law->min + (size_t)(h % (law->max - law->min + 1));
    /* log-uniform over [min, max + 1), floored */
    double u = (double)(h >> 11) * 0x1.0p-53;
    double lo = log((double)law->min), hi = log1p((double)law->max);
    size_t v = (size_t)exp(lo + u * (hi - lo));
    return v < law->min ? law->min : v > law->max ? law->max : v;
}

int size_selftest(void)
{
    static const struct size_law laws[] = {{1, 1048576, DIST_LOG, 1},
                                           {1, 1048576, DIST_UNIFORM, 7},
                                           {5, 5, DIST_LOG, 3},
                                           {100, 101, DIST_UNIFORM, 9}};
    enum { DRAWS = 200000 };
    for (size_t k = 0; k < sizeof(laws) / sizeof(laws[0]); k++) {
        const struct size_law *l = &laws[k];
        uint64_t octave[64] = {0};
        for (uint64_t j = 0; j < DRAWS; j++) {
            size_t v = size_draw(l, (uint32_t)(j % 7), (uint32_t)(j % 3), j);
            if (v < l->min || v > l->max ||
                v != size_draw(l, (uint32_t)(j % 7), (uint32_t)(j % 3), j)) {
                fprintf(stderr, "size: law %zu draw %llu: %zu outside %zu..%zu or not repeatable\n",
                        k, (unsigned long long)j, v, l->min, l->max);
                return 1;
            }
            octave[63 - __builtin_clzll((unsigned long long)v)]++;
        }
        /* log-uniform 1..1 MiB: each of the 20 octaves gets about 1/20 of the draws */
        if (k == 0)
            for (int o = 0; o < 20; o++)
                if (octave[o] < DRAWS / 20 * 8 / 10 || octave[o] > DRAWS / 20 * 12 / 10) {
                    fprintf(stderr, "size: octave %d got %llu of %d log-uniform draws\n", o,
                            (unsigned long long)octave[o], DRAWS);
                    return 1;
                }
    }
    return 0;
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

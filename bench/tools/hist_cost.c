/* SPDX-License-Identifier: MIT */
/*
 * hist_cost.c - what the latency histograms add to a worker's turn, in
 * isolation: the steady-state sequence of pool.c's run_item (one
 * CLOCK_MONOTONIC read, a queue-wait add and a turn add), 20 M times, five
 * rounds; then the two adds alone.  docs/benchmarks.md, "Latency
 * histograms", sets it against the CPU a turn costs.
 *
 *   bench/hist-turn-cost
 */
#include "internal.h"

#include <stdio.h>
static ps_hist qw, tt;
int main(void)
{
    const int N = 20000000;
    for (int round = 0; round < 5; round++) {
        int64_t t0 = ps__now_ns(), prev = t0, stamp = t0;
        volatile int64_t sink = 0;
        for (int i = 0; i < N; i++) {
            int64_t now = ps__now_ns();
            ps__hist_add(&qw, prev - stamp);
            ps__hist_add(&tt, now - prev);
            stamp = prev;
            prev = now;
            sink += now;
        }
        int64_t t1 = ps__now_ns();
        /* the adds alone, without the clock */
        for (int i = 0; i < N; i++) {
            ps__hist_add(&qw, i * 37);
            ps__hist_add(&tt, i * 101);
        }
        int64_t t2 = ps__now_ns();
        printf("per turn: %.1f ns (of which two histogram adds %.1f ns)\n", (double)(t1 - t0) / N,
               (double)(t2 - t1) / N);
    }
    return 0;
}

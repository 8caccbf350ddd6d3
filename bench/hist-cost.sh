#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/hist-cost.sh - what the latency histograms cost: the bench matrix
# (bench/run.sh) with each poolsrv server twice, as is and with
# --no-histograms ("NAME-nohist"), the two taking turns within every repeat
# so that a shared machine's noise falls on both alike.  Prints, per
# scenario and server, the medians with and without, the median of the
# per-repeat ratios (with / without), CPU per message for both, and the
# geometric mean of every paired ratio; the load average before and after.
#
#   HIST_SERVERS ["poolsrv-event poolsrv-event-1 poolsrv-blocking"]
#   BENCH_SCENARIOS, BENCH_REPEATS [5], BENCH_DURATION, ... as bench/run.sh
#   BENCH_OUT [bench/results/hist-cost]
# Needs jq.  On a shared machine wrap it in flock: see docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v jq >/dev/null || { echo "error: hist-cost.sh needs jq" >&2; exit 1; }
read -r -a base <<<"${HIST_SERVERS:-poolsrv-event poolsrv-event-1 poolsrv-blocking}"
servers=""
for s in "${base[@]}"; do servers+="$s $s-nohist "; done
export BENCH_OUT=${BENCH_OUT:-bench/results/hist-cost}
BENCH_SERVERS=$servers BENCH_REPEATS=${BENCH_REPEATS:-5} BENCH_HOLD=0 bench/run.sh >&2

jq -r '.machine.loadavg_start as $a | .machine.loadavg_end as $b |
       "load average at start \($a), at end \($b)"' "$BENCH_OUT/latest.json" 2>/dev/null || true
jq -r '.runs[] | [.scenario, .server, .repeat,
        (if .scenario == "f" then .bench.cycles_per_sec else .bench.msgs_per_sec end // "NA"),
        (.cpu_us_per_msg // "NA")] | @tsv' "$BENCH_OUT/latest.json" |
    awk -F'\t' '
    function median(s,   n, a, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n == 0 ? "NA" : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
    }
    $4 != "NA" { thr[$1 "|" $2 "|" $3] = $4; cpu[$1 "|" $2 "|" $3] = $5; seen[$1 "|" $2] = 1; rep[$3] = 1
                 if (!($1 in sc)) { sc[$1] = 1; order[++nsc] = $1 } }
    END {
        printf "| scenario | server | msg/s with | msg/s without | ratio (median of paired) | CPU us/msg with | without |\n"
        printf "|---|---|---:|---:|---:|---:|---:|\n"
        for (k = 1; k <= nsc; k++) {
            s = order[k]
            for (key in seen) {
                split(key, p, "|")
                if (p[1] != s || p[2] ~ /-nohist$/ || !((s "|" p[2] "-nohist") in seen)) continue
                w = wo = r = cw = cwo = ""
                for (i in rep) {
                    a = s "|" p[2] "|" i; b = s "|" p[2] "-nohist|" i
                    if (a in thr) { w = w " " thr[a]; cw = cw " " cpu[a] }
                    if (b in thr) { wo = wo " " thr[b]; cwo = cwo " " cpu[b] }
                    if ((a in thr) && (b in thr) && thr[b] > 0) { x = thr[a] / thr[b]; r = r " " x; lsum += log(x); nr++ }
                }
                printf "| %s | %s | %.0f | %.0f | %.3f | %s | %s |\n", s, p[2], median(w), median(wo), median(r), median(cw), median(cwo)
            }
        }
        if (nr) printf "\ngeometric mean of %d paired throughput ratios (with / without): %.3f\n", nr, exp(lsum / nr)
    }'

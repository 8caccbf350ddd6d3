#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/compare-echo.sh - echo servers side by side, round after round, with
# the server's CPU and context switches per message: the tool behind the
# worker-count figures in docs/benchmarks.md.
#
# Each round runs every scenario against every server (the server order
# rotates from round to round), each time with a fresh server on an
# ephemeral 127.0.0.1 port; ratios are taken within a round, to BASE.  Prints
# one line per run and, at the end, per scenario and server: the range over
# rounds of throughput, of the ratio to BASE, of p99, of server CPU per
# message (user+system, /proc/PID/stat) and of voluntary / involuntary
# context switches per message (/proc/PID/task/*/status).
#
#   ROUNDS [3]  DURATION [2]  TIMEOUT [2]  BASE [libuv]
#   SCENARIOS ["a b c d f g"]: the letters of bench/run.sh (f and g are connect-rate,
#       counted per connect+echo+close cycle)
#   SERVERS ["poolsrv-event-1 poolsrv-event-2 poolsrv-event-4 poolsrv-event libuv"]:
#       poolsrv-event (poolsrv-echo's default --workers), poolsrv-event-N,
#       poolsrv-blocking-N, libuv, libevent, thread-per-conn; NAME@BIN runs
#       the binary BIN (a poolsrv-echo, or that reference) instead: an A/B of
#       two builds
#   ECHO_BIN, REFS_DIR, BENCH_BIN as in bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
ECHO_BIN=${ECHO_BIN:-server/poolsrv-echo}
REFS_DIR=${REFS_DIR:-bench/refs}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2}
TIMEOUT=${TIMEOUT:-2}
BASE=${BASE:-libuv}
read -r -a SCENARIOS <<<"${SCENARIOS:-a b c d f g}"
read -r -a SERVERS <<<"${SERVERS:-poolsrv-event-1 poolsrv-event-2 poolsrv-event-4 poolsrv-event libuv}"

# shellcheck source=bench/lib.sh
. bench/lib.sh
trap srv_cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

declare -A SC_ARGS=(
    [a]="-c 50 -p 1 -l 64" [b]="-c 50 -p 16 -l 64" [c]="-c 10 -p 4 -l 16k"
    [d]="-c 1000 -p 1 -l 64" [e]="-c 10000 -p 1 -l 64" [f]="--connect-rate -c 50 -l 64"
    [g]="--connect-rate -c 50 -l 64 --threads 2"
)

server_cmd() {
    local name=${1%@*} bin="" listen=127.0.0.1:0
    [[ $1 == *@* ]] && bin=${1#*@}
    case $name in
    poolsrv-*) bin=${bin:-$ECHO_BIN} ;;
    esac
    case $name in
    poolsrv-event) echo "$bin --listen $listen --mode event" ;;
    poolsrv-event-[0-9]*) echo "$bin --listen $listen --mode event --workers ${name#poolsrv-event-}" ;;
    poolsrv-blocking-[0-9]*) echo "$bin --listen $listen --mode blocking --workers ${name#poolsrv-blocking-}" ;;
    libuv) echo "${bin:-$REFS_DIR/uv-echo} $listen" ;;
    libevent) echo "${bin:-$REFS_DIR/ev-echo} $listen" ;;
    thread-per-conn) echo "${bin:-$REFS_DIR/tpc-echo} $listen" ;;
    *) echo "error: unknown server '$1'" >&2; return 1 ;;
    esac
}

for s in "${SERVERS[@]}"; do server_cmd "$s" >/dev/null; done
for sc in "${SCENARIOS[@]}"; do
    [[ -n ${SC_ARGS[$sc]:-} ]] || { echo "error: unknown scenario '$sc'" >&2; exit 2; }
done

declare -A THR P99 CPU VCS NCS BAD
echo "compare-echo: $(date -u +%Y-%m-%dT%H:%M:%SZ), git $(git rev-parse --short HEAD 2>/dev/null || echo none)," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg), ${ROUNDS} rounds of ${DURATION}s"
n=${#SERVERS[@]}
for ((r = 0; r < ROUNDS; r++)); do
    for sc in "${SCENARIOS[@]}"; do
        for ((i = 0; i < n; i++)); do
            srv=${SERVERS[$(((i + r) % n))]}
            # shellcheck disable=SC2046  # the command is a word list
            srv_start $(server_cmd "$srv") || { BAD[$sc|$srv]=1; continue; }
            c0=$(proc_cpu_us "$SRV_PID")
            read -r v0 n0 <<<"$(proc_ctxsw "$SRV_PID")"
            rc=0
            # shellcheck disable=SC2086  # scenario arguments are a word list
            out=$("$BENCH_BIN" --json --no-progress --timeout "$TIMEOUT" -t "$DURATION" \
                ${SC_ARGS[$sc]} "$SRV_ADDR") || rc=$?
            c1=$(proc_cpu_us "$SRV_PID")
            read -r v1 n1 <<<"$(proc_ctxsw "$SRV_PID")"
            srv_stop
            if [[ $sc == [fg] ]]; then
                thr=$(json_get cycles_per_sec "$out") msgs=$(json_get cycles "$out")
            else
                thr=$(json_get msgs_per_sec "$out") msgs=$(json_get messages "$out")
            fi
            p99=$(json_get lat_p99_us "$out")
            cpu=$(per_msg "$c0" "$c1" "$msgs")
            vcs=$(per_msg "$v0" "$v1" "$msgs")
            ncs=$(per_msg "$n0" "$n1" "$msgs")
            ((rc == 0)) || BAD[$sc|$srv]=1
            k="$sc|$srv|$r"
            THR[$k]=${thr:-NA} P99[$k]=${p99:-NA} CPU[$k]=$cpu VCS[$k]=$vcs NCS[$k]=$ncs
            printf '%s %-28s r%d %10.0f/s p99 %8.1f us cpu %6s us/msg csw %s/%s %s load %s\n' \
                "$sc" "$srv" "$r" "${thr:-0}" "${p99:-0}" "$cpu" "$vcs" "$ncs" \
                "$( ((rc == 0)) && echo ok || echo FAILED)" "$(cut -d' ' -f1 /proc/loadavg)"
        done
    done
done

# range LIST: "min-max" of the numeric words (NA ignored).
range() {
    printf '%s\n' "$@" | awk '$1 != "NA" { v = $1 + 0; if (!n++ || v < lo) lo = v; if (n == 1 || v > hi) hi = v }
        END { if (!n) print "-"; else if (hi >= 1000) printf "%.0f-%.0f\n", lo, hi; else printf "%.2f-%.2f\n", lo, hi }'
}

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for sc in "${SCENARIOS[@]}"; do
    echo
    echo "($sc) poolsrv-bench ${SC_ARGS[$sc]} -t $DURATION --timeout $TIMEOUT"
    echo
    echo "| server | per s | vs $BASE | p99 us | CPU us/msg | vol. csw/msg | invol. csw/msg | status |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    for srv in "${SERVERS[@]}"; do
        t=() ra=() p=() c=() v=() w=()
        for ((r = 0; r < ROUNDS; r++)); do
            k="$sc|$srv|$r" b="$sc|$BASE|$r"
            t+=("${THR[$k]:-NA}") p+=("${P99[$k]:-NA}") c+=("${CPU[$k]:-NA}")
            v+=("${VCS[$k]:-NA}") w+=("${NCS[$k]:-NA}")
            ra+=("$(awk -v a="${THR[$k]:-NA}" -v b="${THR[$b]:-NA}" 'BEGIN {
                if (a == "NA" || b == "NA" || b + 0 == 0) print "NA"; else printf "%.3f\n", a / b }')")
        done
        echo "| $srv | $(range "${t[@]}") | $(range "${ra[@]}") | $(range "${p[@]}") | $(range "${c[@]}")" \
            "| $(range "${v[@]}") | $(range "${w[@]}") | $([[ -n ${BAD[$sc|$srv]:-} ]] && echo FAILED || echo ok) |"
    done
done

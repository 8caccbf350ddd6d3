#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/compare-proxy.sh - poolsrv-proxy against HAProxy (mode tcp), side by
# side in one run: both forward to the same backend (poolsrv-echo, 1 worker),
# and poolsrv-bench drives each through three loads, every byte verified:
#   rr     request/response, 50 connections, depth 1, 64 B
#   bulk   10 connections, depth 4, 16 KiB
#   conn   connection rate: connect, echo 64 B, close, on 50 slots
# The proxies are measured in turn, alternating over ROUNDS rounds; each row
# gives messages/s, p99 latency and the proxy's CPU (user+system from
# /proc/PID/stat over the run) per message.  Writes bench/results/proxy.md.
#
# Knobs (environment): WORKERS=2 (poolsrv-proxy --workers = HAProxy
#   nbthread)  DURATION=3 (seconds per run)  ROUNDS=3  KINDS="rr bulk conn"
#   (which loads to run)
#   PROXY_BIN=server/examples/poolsrv-proxy  OUT=bench/results/proxy.md
# Every run is limited by timeout(1).  Needs haproxy (Debian package
# haproxy): installed with apt-get when run as root, else named.  Servers
# listen on 127.0.0.1 only and are stopped by their PIDs.

set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh

WORKERS=${WORKERS:-2}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
PROXY_BIN=${PROXY_BIN:-server/examples/poolsrv-proxy}
ECHO_BIN=${ECHO_BIN:-server/poolsrv-echo}
BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
OUT=${OUT:-bench/results/proxy.md}
READY_LIMIT=10

die() {
    echo "compare-proxy: $*" >&2
    exit 1
}

for v in WORKERS DURATION ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
for b in "$PROXY_BIN" "$ECHO_BIN" "$BENCH_BIN"; do
    [[ -x $b ]] || die "$b is missing: run make first"
done
command -v haproxy >/dev/null || apt_ensure compare-proxy haproxy || exit 1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare-proxy.XXXXXX") || exit 1
PIDS=()
warn_stale "$PROXY_BIN" "$ECHO_BIN"
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

cpu_ticks() {
    awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
start_announced backend "$ECHO_BIN" --listen 127.0.0.1:0 --workers 1 ||
    die "poolsrv-echo did not start"
BACKEND=$PORT
start_announced proxy "$PROXY_BIN" --listen 127.0.0.1:0 --workers "$WORKERS" \
    --backend "127.0.0.1:$BACKEND" || die "poolsrv-proxy did not start"
PROXY_PORT=$PORT PROXY_PID=$PID

# A free port for HAProxy: one the kernel gave poolsrv-echo, released.
start_announced probe "$ECHO_BIN" --listen 127.0.0.1:0 || die "no free port"
HAP_PORT=$PORT
stop_pid "$PID"
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$HAP_PORT
    default_backend be
backend be
    server echo 127.0.0.1:$BACKEND
EOF
haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.out" 2>&1 &
HAP_PID=$!
PIDS+=("$HAP_PID")
for ((i = 0; i < READY_LIMIT * 20; i++)); do
    timeout 2 "$BENCH_BIN" -c 1 --messages 1 -t 2 "127.0.0.1:$HAP_PORT" >/dev/null 2>&1 && break
    kill -0 "$HAP_PID" 2>/dev/null || die "haproxy exited: $(tail -3 "$TMP/haproxy.out")"
    sleep 0.05
done

declare -A LOADS=(
    [rr]="-c 50 -p 1 -l 64"
    [bulk]="-c 10 -p 4 -l 16k"
    [conn]="--connect-rate -c 50 -l 64"
)
NAMES=(poolsrv-proxy haproxy)
PORTS=("$PROXY_PORT" "$HAP_PORT")
SPIDS=("$PROXY_PID" "$HAP_PID")

# run NAME PORT PID LOAD: one verified run; appends "LOAD NAME msgs/s p99 cpu_us" to rows.
run() {
    local name=$1 port=$2 pid=$3 load=$4 json c0 c1 rate p99 msgs cpu
    c0=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086 # LOADS entries are word lists
    json=$(timeout $((DURATION + 30)) "$BENCH_BIN" ${LOADS[$load]} -t "$DURATION" --json \
        "127.0.0.1:$port" 2>"$TMP/bench.err") || die "$load against $name failed: $(tail -2 "$TMP/bench.err") $json"
    c1=$(cpu_ticks "$pid")
    [[ $(json_get ok "$json") == true ]] || die "$load against $name: errors: $json"
    msgs=$(json_get messages "$json")
    if [[ $load == conn ]]; then
        rate=$(json_get cycles_per_sec "$json")
        msgs=$(json_get cycles "$json")
    else
        rate=$(json_get msgs_per_sec "$json")
    fi
    p99=$(json_get lat_p99_us "$json")
    cpu=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v m="$msgs" \
        'BEGIN { printf "%.2f", (m > 0 ? t / hz * 1e6 / m : 0) }')
    echo "$load $name $rate $p99 $cpu" | tee -a "$TMP/rows" |
        awk '{printf "  %-5s %-14s %12.0f /s  p99 %8.0f us  cpu %6.2f us/msg\n", $1, $2, $3, $4, $5}'
}

echo "compare-proxy: poolsrv-proxy --workers $WORKERS vs haproxy nbthread $WORKERS," \
    "backend poolsrv-echo; $DURATION s per run x $ROUNDS rounds; load $LOAD"
: >"$TMP/rows"
read -r -a KIND_LIST <<<"${KINDS:-rr bulk conn}"
for ((r = 0; r < ROUNDS; r++)); do
    for load in "${KIND_LIST[@]}"; do
        for ((k = 0; k < 2; k++)); do # alternate which proxy goes first
            i=$(((r + k) % 2))
            run "${NAMES[i]}" "${PORTS[i]}" "${SPIDS[i]}" "$load"
        done
    done
done

# median COLUMN LOAD NAME: the median of a column of $TMP/rows over the rounds.
median() {
    awk -v c="$1" -v l="$2" -v n="$3" '$1 == l && $2 == n { print $c }' "$TMP/rows" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%g", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

mkdir -p "$(dirname "$OUT")"
{
    echo "# poolsrv-proxy against HAProxy ($(date -u +%Y-%m-%d), load $LOAD)"
    echo
    echo "WORKERS=$WORKERS DURATION=$DURATION ROUNDS=$ROUNDS; medians over the rounds, ranges in"
    echo "brackets; the ratio is of the median rates."
    echo
    echo "| load | proxy | rate (/s) | p99 (us) | CPU per message (us) | rate vs HAProxy |"
    echo "|---|---|---|---|---|---|"
    for load in "${KIND_LIST[@]}"; do
        for name in "${NAMES[@]}"; do
            awk -v l="$load" -v n="$name" -v mr="$(median 3 "$load" "$name")" \
                -v mp="$(median 4 "$load" "$name")" -v mu="$(median 5 "$load" "$name")" \
                -v hr="$(median 3 "$load" haproxy)" '
                $1 == l && $2 == n {
                    c++; rate = $3; p = $4; u = $5
                    if (c == 1 || rate < rlo) rlo = rate; if (c == 1 || rate > rhi) rhi = rate
                    if (c == 1 || p < plo) plo = p; if (c == 1 || p > phi) phi = p
                    if (c == 1 || u < ulo) ulo = u; if (c == 1 || u > uhi) uhi = u
                }
                END {
                    printf "| %s | %s | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %.2f (%.2f-%.2f) | %.2f |\n",
                        l, n, mr, rlo, rhi, mp, plo, phi, mu, ulo, uhi, mr / hr
                }' "$TMP/rows"
        done
    done
    echo
    echo "Every round (load, proxy, rate, p99 us, CPU us per message):"
    echo
    echo '```'
    cat "$TMP/rows"
    echo '```'
} >"$OUT"
cat "$OUT"

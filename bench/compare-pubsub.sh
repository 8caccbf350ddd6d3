#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/compare-pubsub.sh - publish/subscribe: poolsrv-kv against redis-server
# in one run, measured by `poolsrv-bench --pubsub` (every delivery verified:
# content, per-publisher order, no loss or duplicate, the receiver count of
# each PUBLISH).  redis-server runs on 127.0.0.1 on an ephemeral port (bound
# through poolsrv-kv, then released) with --save '' --appendonly no, and is
# stopped by its PID.  The servers are measured in turn, alternating over
# ROUNDS rounds, each round starting with the next server.  Reported per
# server: deliveries/s, p50/p99 publish-to-delivery latency, and the
# server's CPU time (user + system, /proc/PID/stat over the run) per
# delivery.  Writes bench/results/pubsub.md.
#
# Knobs (environment): WORKERS="1 2" (poolsrv-kv --workers; redis-server
#   executes commands on one thread, so --workers 1 is the equal-thread
#   comparison)  SUBSCRIBERS=50  PUBLISHERS=4  CHANNELS=1  SIZE=64 (payload
#   bytes)  WINDOW=16 (messages a publisher keeps in flight)  THREADS=1
#   (bench threads)  DURATION=3 (s per measurement)  ROUNDS=3
#   KV_BIN=server/examples/poolsrv-kv  BENCH_BIN=bench/poolsrv-bench
#   OUT=bench/results/pubsub.md
# Each measurement is limited by timeout(1) to DURATION + 30 s; with the
# defaults the whole script takes about 30 s.  Needs redis-server (Debian
# package redis-server) and redis-cli (redis-tools): installed with apt-get
# when run as root, else named.  Loopback only.

set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh

WORKERS=${WORKERS:-1 2}
SUBSCRIBERS=${SUBSCRIBERS:-50}
PUBLISHERS=${PUBLISHERS:-4}
CHANNELS=${CHANNELS:-1}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-16}
THREADS=${THREADS:-1}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
KV_BIN=${KV_BIN:-server/examples/poolsrv-kv}
BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
OUT=${OUT:-bench/results/pubsub.md}
READY_LIMIT=10

die() {
    echo "compare-pubsub: $*" >&2
    exit 1
}

for v in SUBSCRIBERS PUBLISHERS CHANNELS SIZE WINDOW THREADS DURATION ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ $WORKERS =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] ||
    die "WORKERS must be worker counts separated by spaces (\"1 2\"), not '$WORKERS'"
read -r -a WCOUNTS <<<"$WORKERS"
[[ -x $KV_BIN ]] || die "$KV_BIN is missing: run make first"
[[ -x $BENCH_BIN ]] || die "$BENCH_BIN is missing: run make first"
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
apt_ensure compare-pubsub "${missing[@]}" || exit 1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare-pubsub.XXXXXX") || exit 1
PIDS=()
warn_stale "$KV_BIN" "$BENCH_BIN"
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

BENCH_ARGS=(--pubsub --subscribers "$SUBSCRIBERS" --publishers "$PUBLISHERS"
    --channels "$CHANNELS" -l "$SIZE" -p "$WINDOW" -T "$THREADS" -t "$DURATION" --json)

# run_bench NAME PORT PID: appends "NAME deliveries/s p50_us p99_us
# cpu_us_per_delivery" to $TMP/rows.
run_bench() {
    local name=$1 port=$2 pid=$3 out
    out=$(timeout $((DURATION + 30)) "$BENCH_BIN" "${BENCH_ARGS[@]}" --pid "$pid" \
        "127.0.0.1:$port" 2>&1) ||
        die "poolsrv-bench failed against $name: $(tail -c 600 <<<"$out")"
    printf '%s %s %s %s %s\n' "$name" "$(json_get deliveries_per_sec "$out")" \
        "$(json_get lat_p50_us "$out")" "$(json_get lat_p99_us "$out")" \
        "$(json_get server_cpu_us_per_delivery "$out")" | tee -a "$TMP/rows" |
        awk '{printf "  %-16s %12.0f deliveries/s  p50 %8.1f us  p99 %8.1f us  cpu %.3f us/delivery\n",
            $1, $2, $3, $4, $5}'
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
redis_vs_kv_start

echo "compare-pubsub: poolsrv-kv --workers {${WORKERS// /,}} vs redis-server;" \
    "poolsrv-bench ${BENCH_ARGS[*]} x $ROUNDS rounds"
: >"$TMP/rows"
N=${#NAMES[@]}
for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < N; k++)); do
        i=$(((r + k) % N))
        run_bench "${NAMES[i]}" "${PORTS[i]}" "${SPIDS[i]}"
    done
done
for pid in "${SPIDS[@]}"; do
    stop_pid "$pid"
done

# median NAME FIELD: the median of column FIELD (2..5) over the rounds.
median() {
    awk -v n="$1" -v f="$2" '$1 == n {print $f}' "$TMP/rows" | sort -g |
        awk '{v[NR] = $1} END {if (!NR) print 0; else if (NR % 2) print v[(NR + 1) / 2];
            else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
REDIS_VER=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
mkdir -p "$(dirname "$OUT")"
{
    echo "# pub/sub: poolsrv-kv vs redis-server"
    echo
    echo "Written by \`bench/compare-pubsub.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
    echo "$(nproc) cores, $(uname -sr), redis-server $REDIS_VER (one command thread,"
    echo "\`--save '' --appendonly no\`) vs poolsrv-kv \`--workers N\` for N in {${WORKERS// /,}},"
    echo "all on 127.0.0.1; \`poolsrv-bench ${BENCH_ARGS[*]} --pid PID\`"
    echo "($SUBSCRIBERS subscribers, $PUBLISHERS publishers, $CHANNELS channel(s), $SIZE-byte payloads,"
    echo "$WINDOW messages in flight per publisher), $ROUNDS rounds, each server in turn, each round"
    echo "starting with the next one; the bench runs on the same cores.  Server CPU: user + system"
    echo "time of the server process over the measured seconds, divided by the deliveries."
    echo "Load average when the run began: $LOAD (other work on the machine skews the figures)."
    echo
    echo "| server | deliveries/s | ratio | p50 us | p99 us | server CPU us/delivery |"
    echo "|---|---:|---:|---:|---:|---:|"
    q=$(median redis-server 2)
    for name in "${NAMES[@]}"; do
        d=$(median "$name" 2)
        awk -v n="$name" -v d="$d" -v q="$q" -v p50="$(median "$name" 3)" \
            -v p99="$(median "$name" 4)" -v cpu="$(median "$name" 5)" \
            'BEGIN {printf "| %s | %.0f | %s | %.1f | %.1f | %.3f |\n", n, d,
                (q > 0 ? sprintf("%.2f", d / q) : "n/a"), p50, p99, cpu}'
    done
    echo
    echo "Medians over the rounds (the ratio is deliveries/s against redis-server).  Every"
    echo "measurement:"
    echo
    echo "| round | server | deliveries/s | p50 us | p99 us | CPU us/delivery |"
    echo "|---|---|---:|---:|---:|---:|"
    awk '{printf "| %d | %s | %.0f | %.1f | %.1f | %.3f |\n", ++r[$1], $1, $2, $3, $4, $5}' \
        "$TMP/rows"
} >"$OUT"
echo "compare-pubsub: wrote $OUT"
sed -n '/^| server/,/^$/p' "$OUT"

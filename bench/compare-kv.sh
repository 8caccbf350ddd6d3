#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/compare-kv.sh - redis-benchmark against poolsrv-kv and redis-server,
# side by side in one run: `redis-benchmark -t ping,set,get -P 16 -q` with the
# same request count and clients for both.  redis-server runs on 127.0.0.1 on
# an ephemeral port (the kernel picks it: we bind port 0 first and release
# it), with --save '' --appendonly no, and is stopped by its PID.  The servers
# are measured in turn, alternating over ROUNDS rounds.  Writes
# bench/results/kv.md.
#
# Knobs (environment): WORKERS="1 2" (poolsrv-kv --workers: one server per
#   count, each compared with redis-server, which runs one command thread, so
#   --workers 1 is the equal-thread comparison)  REQUESTS=500000 (per test)
#   CLIENTS=50  PIPELINE=16  ROUNDS=3  KV_BIN=server/examples/poolsrv-kv
#   OUT=bench/results/kv.md
# Each redis-benchmark run is limited to 30 s by timeout(1); with the defaults
# the whole script takes about 20 s.  Needs redis-server and redis-benchmark
# (Debian packages redis-server, redis-tools): installed with apt-get when run
# as root, else named.  Loopback only.

set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh

WORKERS=${WORKERS:-1 2}
REQUESTS=${REQUESTS:-500000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
ROUNDS=${ROUNDS:-3}
KV_BIN=${KV_BIN:-server/examples/poolsrv-kv}
OUT=${OUT:-bench/results/kv.md}
READY_LIMIT=10
TESTS=(PING_INLINE PING_MBULK SET GET)

die() {
    echo "compare-kv: $*" >&2
    exit 1
}

ensure_tools() {
    local missing=()
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v redis-server >/dev/null || missing+=(redis-server)
    apt_ensure compare-kv "${missing[@]}" || exit 1
}

for v in REQUESTS CLIENTS PIPELINE ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ $WORKERS =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] ||
    die "WORKERS must be worker counts separated by spaces (\"1 2\"), not '$WORKERS'"
read -r -a WCOUNTS <<<"$WORKERS"
[[ -x $KV_BIN ]] || die "$KV_BIN is missing: run make first"
ensure_tools

TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare-kv.XXXXXX") || exit 1
PIDS=()
warn_stale "$KV_BIN"
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

# run_bench NAME PORT PID: appends "NAME TEST rps p50" lines to $TMP/rows,
# and "NAME us" to $TMP/cpu: the server's user+system CPU per request over
# the whole redis-benchmark run (its tests together).
run_bench() {
    local name=$1 port=$2 pid=$3 out c0 c1 ntests
    c0=$(proc_cpu_us "$pid")
    out=$(timeout 30 redis-benchmark -h 127.0.0.1 -p "$port" -t ping,set,get -P "$PIPELINE" \
        -c "$CLIENTS" -n "$REQUESTS" -q 2>&1 | tr '\r' '\n') ||
        die "redis-benchmark failed or timed out against $name: $(tail -3 <<<"$out")"
    awk -v n="$name" '/requests per second/ {
            t = $1; sub(/:$/, "", t); p50 = "?";
            for (i = 1; i <= NF; i++) if ($i ~ /^p50=/) { p50 = $i; sub(/^p50=/, "", p50) }
            print n, t, $2, p50 }' <<<"$out" | tee -a "$TMP/rows" |
        awk '{printf "  %-12s %-12s %12.0f req/s  p50 %s ms\n", $1, $2, $3, $4}'
    c1=$(proc_cpu_us "$pid")
    ntests=$(grep -c 'requests per second' <<<"$out")
    echo "$name $(per_msg "$c0" "$c1" "$((ntests * REQUESTS))")" | tee -a "$TMP/cpu" |
        awk '{printf "  %-12s server CPU %s us/request\n", $1, $2}'
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
redis_vs_kv_start # bench/lib.sh: the servers under test, redis-server first

echo "compare-kv: poolsrv-kv --workers {${WORKERS// /,}} vs redis-server;" \
    "redis-benchmark -P $PIPELINE -c $CLIENTS -n $REQUESTS x $ROUNDS rounds"
: >"$TMP/rows"
: >"$TMP/cpu"
N=${#NAMES[@]}
for ((r = 0; r < ROUNDS; r++)); do
    for ((k = 0; k < N; k++)); do # each round starts with the next server
        i=$(((r + k) % N))
        run_bench "${NAMES[i]}" "${PORTS[i]}" "${SPIDS[i]}"
    done
done
for pid in "${SPIDS[@]}"; do
    stop_pid "$pid"
done

# median NAME TEST: the median req/s of that test over the rounds.
median() {
    awk -v n="$1" -v t="$2" '$1 == n && $2 == t {print $3}' "$TMP/rows" | sort -g |
        awk '{v[NR] = $1} END {if (!NR) print 0; else if (NR % 2) printf "%.0f", v[(NR + 1) / 2];
            else printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
REDIS_VER=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
mkdir -p "$(dirname "$OUT")"
{
    echo "# poolsrv-kv vs redis-server"
    echo
    echo "Written by \`bench/compare-kv.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
    echo "$(nproc) cores, $(uname -sr), redis-server $REDIS_VER (one command thread,"
    echo "\`--save '' --appendonly no\`) vs poolsrv-kv \`--workers N\` for N in {${WORKERS// /,}},"
    echo "all on 127.0.0.1; \`redis-benchmark -t ping,set,get -P $PIPELINE -c $CLIENTS -n $REQUESTS -q\`,"
    echo "$ROUNDS rounds, each server in turn, each round starting with the next one;"
    echo "redis-benchmark runs on the same cores.  The ratio is poolsrv-kv / redis-server."
    echo "Load average when the run began: $LOAD (other work on the machine skews the figures)."
    echo
    head="| test | redis-server req/s |" rule="|---|---:|"
    for w in "${WCOUNTS[@]}"; do
        head+=" poolsrv-kv -w $w req/s | ratio |" rule+="---:|---:|"
    done
    echo "$head"
    echo "$rule"
    for t in "${TESTS[@]}"; do
        q=$(median redis-server "$t")
        line="| $t | $q |"
        for w in "${WCOUNTS[@]}"; do
            p=$(median "poolsrv-kv-w$w" "$t")
            line+=$(awk -v p="$p" -v q="$q" \
                'BEGIN {printf " %d | %s |", p, ((q > 0) ? sprintf("%.2f", p / q) : "n/a")}')
        done
        echo "$line"
    done
    echo
    echo "Server CPU (user+system, /proc/PID/stat) per request, over each round's tests"
    echo "together, range over the rounds:"
    echo
    echo "| server | CPU us/request |"
    echo "|---|---:|"
    awk '$2 != "NA" { v = $2 + 0; if (!($1 in lo) || v < lo[$1]) lo[$1] = v; if (!($1 in hi) || v > hi[$1]) hi[$1] = v }
        END { for (n in lo) printf "| %s | %.3f-%.3f |\n", n, lo[n], hi[n] }' "$TMP/cpu" | sort
    echo
    echo "Medians over the rounds.  Every measurement (p50 latency in ms):"
    echo
    echo "| round | server | test | req/s | p50 ms |"
    echo "|---|---|---|---:|---:|"
    awk '{printf "| %d | %s | %s | %.0f | %s |\n", ++r[$1 " " $2], $1, $2, $3, $4}' "$TMP/rows"
} >"$OUT"
echo "compare-kv: wrote $OUT"
sed -n '/^| test/,/^$/p' "$OUT"

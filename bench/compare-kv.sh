#!/usr/bin/env bash
# bench/compare-kv.sh - redis-benchmark against poolsrv-kv and redis-server,
# side by side in one run: `redis-benchmark -t ping,set,get -P 16 -q` with the
# same request count and clients for both.  redis-server runs on 127.0.0.1 on
# an ephemeral port (the kernel picks it: we bind port 0 first and release
# it), with --save '' --appendonly no, and is stopped by its PID.  The servers
# are measured in turn, alternating over ROUNDS rounds.  Writes
# bench/results/kv.md.
#
# Knobs (environment): WORKERS=2 (poolsrv-kv --workers; redis-server runs its
#   one command thread)  REQUESTS=500000 (per test)  CLIENTS=50  PIPELINE=16
#   ROUNDS=3  KV_BIN=server/examples/poolsrv-kv  OUT=bench/results/kv.md
# Each redis-benchmark run is limited to 30 s by timeout(1); with the defaults
# the whole script takes about 15 s.  Needs redis-server and redis-benchmark
# (Debian packages redis-server, redis-tools): installed with apt-get when run
# as root, else named.  Loopback only.

set -u
cd "$(dirname "$0")/.." || exit 1

WORKERS=${WORKERS:-2}
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
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "compare-kv: installing ${missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
            { apt-get update -q >/dev/null &&
                apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
            die "apt-get could not install ${missing[*]}"
    else
        die "needs ${missing[*]}: run sudo apt-get install ${missing[*]}"
    fi
}

for v in WORKERS REQUESTS CLIENTS PIPELINE ROUNDS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ -x $KV_BIN ]] || die "$KV_BIN is missing: run make first"
ensure_tools

TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare-kv.XXXXXX") || exit 1
PIDS=()
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

# start_kv: poolsrv-kv on an ephemeral port; sets PORT and PID.
start_kv() {
    start_announced kv "$KV_BIN" --listen 127.0.0.1:0 --workers "$WORKERS" ||
        die "poolsrv-kv did not announce 'listening on' within ${READY_LIMIT}s"
}

# wait_ping PORT NAME: PING must answer PONG within READY_LIMIT seconds.
wait_ping() {
    local i
    for ((i = 0; i < READY_LIMIT * 20; i++)); do
        [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.05
    done
    die "$2 did not answer PING on 127.0.0.1:$1 within ${READY_LIMIT}s"
}

# run_bench NAME PORT: appends "NAME TEST rps p50" lines to $TMP/rows.
run_bench() {
    local name=$1 port=$2 out
    out=$(timeout 30 redis-benchmark -h 127.0.0.1 -p "$port" -t ping,set,get -P "$PIPELINE" \
        -c "$CLIENTS" -n "$REQUESTS" -q 2>&1 | tr '\r' '\n') ||
        die "redis-benchmark failed or timed out against $name: $(tail -3 <<<"$out")"
    awk -v n="$name" '/requests per second/ {
            t = $1; sub(/:$/, "", t); p50 = "?";
            for (i = 1; i <= NF; i++) if ($i ~ /^p50=/) { p50 = $i; sub(/^p50=/, "", p50) }
            print n, t, $2, p50 }' <<<"$out" | tee -a "$TMP/rows" |
        awk '{printf "  %-12s %-12s %12.0f req/s  p50 %s ms\n", $1, $2, $3, $4}'
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
# An ephemeral port for redis-server: bind 0 (through poolsrv-kv), note the
# port the kernel chose, release it.
start_kv
REDIS_PORT=$PORT
stop_pid "$PID"

start_kv
KV_PID=$PID KV_PORT=$PORT
wait_ping "$KV_PORT" poolsrv-kv
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize no --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_ping "$REDIS_PORT" redis-server

echo "compare-kv: poolsrv-kv --workers $WORKERS vs redis-server;" \
    "redis-benchmark -P $PIPELINE -c $CLIENTS -n $REQUESTS x $ROUNDS rounds"
: >"$TMP/rows"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        run_bench poolsrv-kv "$KV_PORT"
        run_bench redis-server "$REDIS_PORT"
    else
        run_bench redis-server "$REDIS_PORT"
        run_bench poolsrv-kv "$KV_PORT"
    fi
done
stop_pid "$KV_PID"
stop_pid "$REDIS_PID"

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
    echo "\`--save '' --appendonly no\`) vs poolsrv-kv \`--workers $WORKERS\`, both on 127.0.0.1;"
    echo "\`redis-benchmark -t ping,set,get -P $PIPELINE -c $CLIENTS -n $REQUESTS -q\`, $ROUNDS"
    echo "alternating rounds; redis-benchmark runs on the same cores."
    echo "Load average when the run began: $LOAD (other work on the machine skews the figures)."
    echo
    echo "| test | poolsrv-kv req/s | redis-server req/s | ratio |"
    echo "|---|---:|---:|---:|"
    for t in "${TESTS[@]}"; do
        p=$(median poolsrv-kv "$t")
        q=$(median redis-server "$t")
        awk -v t="$t" -v p="$p" -v q="$q" \
            'BEGIN {printf "| %s | %d | %d | %s |\n", t, p, q, ((q > 0) ? sprintf("%.2f", p / q) : "n/a")}'
    done
    echo
    echo "Medians over the rounds.  Every measurement (p50 latency in ms):"
    echo
    echo "| round | server | test | req/s | p50 ms |"
    echo "|---|---|---|---:|---:|"
    awk '{printf "| %d | %s | %s | %.0f | %s |\n", ++r[$1 " " $2], $1, $2, $3, $4}' "$TMP/rows"
} >"$OUT"
echo "compare-kv: wrote $OUT"
sed -n '/^| test/,/^$/p' "$OUT"

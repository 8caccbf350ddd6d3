#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/compare-http.sh - wrk against poolsrv-http and nginx, side by side in
# one run: the same machine, the same worker count, the same wrk settings.
# nginx serves `return 200 "hello\n"` with keep-alive and no access log, from
# a config generated in a temporary directory and run as a non-daemon.  The
# two servers are measured in turn (never at once), alternating over ROUNDS
# rounds so that neither always goes first.  Writes bench/results/http.md.
#
# Knobs (environment): WORKERS=2 (poolsrv --workers = nginx worker_processes)
#   DURATION=3 (s per measurement)  ROUNDS=4  CONNS=64  WRK_THREADS=2
#   HTTP_BIN=server/examples/poolsrv-http  OUT=bench/results/http.md
# Total time: about 2 * ROUNDS * DURATION + 4 s (28 s with the defaults).
# Short alternating rounds and the median keep a burst of other work on the
# machine from deciding the comparison.
# Needs wrk and nginx (Debian packages wrk, nginx-light or nginx): installed
# with apt-get when run as root, else named.  Loopback only.

set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh

WORKERS=${WORKERS:-2}
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-4}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-2}
HTTP_BIN=${HTTP_BIN:-server/examples/poolsrv-http}
OUT=${OUT:-bench/results/http.md}
READY_LIMIT=10

die() {
    echo "compare-http: $*" >&2
    exit 1
}

find_nginx() {
    command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }
}

# wrk and nginx: install as root, otherwise say what to install.
ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    [[ -n $(find_nginx) ]] || missing+=(nginx-light)
    apt_ensure compare-http "${missing[@]}" || exit 1
}

[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, not '$WORKERS'"
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer, not '$DURATION'"
[[ -x $HTTP_BIN ]] || die "$HTTP_BIN is missing: run make first"
ensure_tools
NGINX=$(find_nginx)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare-http.XXXXXX") || exit 1
PIDS=()
warn_stale "$HTTP_BIN"
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

# start_poolsrv: runs poolsrv-http on an ephemeral port; sets PORT, PID.
start_poolsrv() {
    start_announced poolsrv "$HTTP_BIN" --listen 127.0.0.1:0 --workers "$WORKERS" ||
        die "poolsrv-http did not announce 'listening on' within ${READY_LIMIT}s"
}

# An ephemeral port for nginx: bind 0 (through poolsrv-http), note the port
# the kernel chose, release it.
free_port() {
    start_poolsrv
    stop_pid "$PID"
    echo "$PORT"
}

# check_hello PORT: one GET over bash's /dev/tcp must answer "hello".
check_hello() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
    reply=$(timeout 5 cat <&3)
    exec 3<&-
    [[ $reply == "HTTP/1.1 200"* && $reply == *$'\r\n\r\nhello' ]]
}

start_nginx() {
    nginx_start "$1" "" "" check_hello "$1"
}

# run_wrk NAME PORT SECONDS: appends "NAME rps avg p50 p99 non2xx errors" to $TMP/rows.
run_wrk() {
    local name=$1 port=$2 secs=$3 out
    out=$(timeout $((secs + 10)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${secs}s" --latency \
        "http://127.0.0.1:$port/" 2>&1) || die "wrk failed against $name: $out"
    wrk_parse "$out"
    [[ -n $WRK_RPS ]] || die "could not read wrk's output for $name: $out"
    echo "$name $WRK_RPS ${WRK_AVG:-?} ${WRK_P50:-?} ${WRK_P99:-?} $WRK_NON2XX $WRK_ERRS" >>"$TMP/rows"
    printf '  %-12s %12s req/s  avg %-9s p50 %-9s p99 %-9s non-2xx %s\n' \
        "$name" "$WRK_RPS" "$WRK_AVG" "$WRK_P50" "$WRK_P99" "$WRK_NON2XX"
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
NGINX_PORT=$(free_port)
start_poolsrv
POOLSRV_PID=$PID POOLSRV_PORT=$PORT
check_hello "$POOLSRV_PORT" || die "poolsrv-http did not answer GET / with hello"
start_nginx "$NGINX_PORT"
NGINX_PID=$PID

echo "compare-http: $WORKERS workers each, wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s x $ROUNDS rounds"
: >"$TMP/rows"
# Warm-up (not recorded): fault in pages, fill caches, grow the accept queue.
timeout 10 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$POOLSRV_PORT/" >/dev/null 2>&1
timeout 10 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        run_wrk poolsrv-http "$POOLSRV_PORT" "$DURATION"
        run_wrk nginx "$NGINX_PORT" "$DURATION"
    else
        run_wrk nginx "$NGINX_PORT" "$DURATION"
        run_wrk poolsrv-http "$POOLSRV_PORT" "$DURATION"
    fi
done
stop_pid "$POOLSRV_PID"
stop_pid "$NGINX_PID"

# median NAME: the median req/s of a server's rounds.
median() {
    awk -v n="$1" '$1 == n {print $2}' "$TMP/rows" | sort -g |
        awk '{v[NR] = $1} END {if (!NR) print 0; else if (NR % 2) printf "%.0f", v[(NR + 1) / 2];
            else printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
P_RPS=$(median poolsrv-http)
N_RPS=$(median nginx)
RATIO=$(awk -v a="$P_RPS" -v b="$N_RPS" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}')
NGINX_VER=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
WRK_VER=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')

mkdir -p "$(dirname "$OUT")"
{
    echo "# poolsrv-http vs nginx"
    echo
    echo "Written by \`bench/compare-http.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
    echo "$(nproc) cores, $(uname -sr), $NGINX_VER, $WRK_VER; both servers on 127.0.0.1 with"
    echo "**$WORKERS workers** (poolsrv \`--workers $WORKERS\`, nginx \`worker_processes $WORKERS\`),"
    echo "keep-alive, measured in turn with \`wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency\`,"
    echo "$ROUNDS alternating rounds after a 1 s warm-up each.  wrk runs on the same cores."
    echo "Load average when the run began: $LOAD (other work on the machine skews the figures)."
    echo
    echo "| round | server | req/s | avg latency | p50 | p99 | non-2xx |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    awk '{r[$1]++; printf "| %d | %s | %.0f | %s | %s | %s | %s |\n", r[$1], $1, $2, $3, $4, $5, $6}' "$TMP/rows"
    echo
    echo "Median req/s over the rounds: poolsrv-http **$P_RPS**, nginx **$N_RPS**;"
    echo "ratio poolsrv/nginx **$RATIO**."
} >"$OUT"
echo "compare-http: poolsrv-http $P_RPS req/s, nginx $N_RPS req/s, ratio $RATIO -> $OUT"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/compare-https.sh - HTTPS: poolsrv-http (--listen tls:) against nginx,
# side by side in one run, as bench/compare-http.sh does for plain HTTP: the
# same machine, the same worker count, the same certificate (a throw-away
# ECDSA P-256 one from a test CA, made in a temporary directory), TLS 1.2 and
# 1.3 on both, session cache and tickets on both.  nginx serves
# `return 200 "hello\n"` from a config generated in the temporary directory.
# Three measurements per round, the servers in turn (never at once), the
# order alternating over ROUNDS rounds:
#   keep-alive   wrk over HTTPS, CONNS connections kept open: TLS record
#                cost on the request path
#   close        wrk with "Connection: close": a new connection (and
#                handshake, full or resumed as wrk does it) per request
#   handshake    openssl s_time -new, S_TIME_PROCS processes at once: a full
#                handshake (never resumed) and one GET per connection
# Writes bench/results/https.md with every round and the ratio of medians.
#
# Knobs (environment): WORKERS=2 (poolsrv --workers = nginx worker_processes)
#   DURATION=3 (s per measurement)  ROUNDS=4  CONNS=64  WRK_THREADS=2
#   S_TIME_PROCS=2  HTTP_BIN=server/examples/poolsrv-http
#   CLIENT_BIN=client/poolsrv-client (checks each server's certificate and
#   reply)  OUT=bench/results/https.md
# Writes the server CPU per request too.
# Total time: about 3 * 2 * ROUNDS * DURATION + 6 s (78 s with the defaults).
# Needs poolsrv-http with TLS (--tls-cert), poolsrv-client with --tls, wrk,
# nginx and openssl (Debian: wrk, nginx-light or nginx, openssl): installed
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
S_TIME_PROCS=${S_TIME_PROCS:-2}
HTTP_BIN=${HTTP_BIN:-server/examples/poolsrv-http}
CLIENT_BIN=${CLIENT_BIN:-client/poolsrv-client}
OUT=${OUT:-bench/results/https.md}
READY_LIMIT=10

die() {
    echo "compare-https: $*" >&2
    exit 1
}

find_nginx() {
    command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }
}

ensure_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v openssl >/dev/null || missing+=(openssl)
    [[ -n $(find_nginx) ]] || missing+=(nginx-light)
    apt_ensure compare-https "${missing[@]}" || exit 1
}

for v in WORKERS DURATION ROUNDS CONNS WRK_THREADS S_TIME_PROCS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ -x $HTTP_BIN ]] || die "$HTTP_BIN is missing: run make first"
[[ -x $CLIENT_BIN ]] || die "$CLIENT_BIN is missing: run make first"
"$HTTP_BIN" --help 2>&1 | grep -q -- --tls-cert ||
    die "$HTTP_BIN has no --tls-cert: it was built without TLS (OpenSSL, libssl-dev)"
ensure_tools
NGINX=$(find_nginx)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare-https.XXXXXX") || exit 1
PIDS=()
warn_stale "$HTTP_BIN"
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

CERTS=$TMP/certs
{ mkdir -p "$CERTS" && tls_make_certs "$CERTS"; } || die "could not make the test certificates"

# start_poolsrv [LISTEN]: poolsrv-http on an ephemeral port, TLS unless
# LISTEN says otherwise; sets PORT, PID.
start_poolsrv() {
    start_announced poolsrv "$HTTP_BIN" --listen "${1:-tls:127.0.0.1:0}" --workers "$WORKERS" \
        --tls-cert "$CERTS/chain.pem" --tls-key "$CERTS/server.key" ||
        die "poolsrv-http did not announce 'listening on' within ${READY_LIMIT}s"
}

# An ephemeral port for nginx: bind 0 (through poolsrv-http), note the port
# the kernel chose, release it.
free_port() {
    start_poolsrv 127.0.0.1:0
    stop_pid "$PID"
    echo "$PORT"
}

# check_https NAME PORT: a GET through poolsrv-client --tls, the certificate
# verified against the test CA for "localhost", must answer 200 "hello".
# Appends "NAME: VERSION CIPHER" (what poolsrv-client -v saw) to $TMP/tls.
check_https() {
    local reply
    reply=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        "$CLIENT_BIN" --tls --ca "$CERTS/ca.pem" --timeout 5 -v "localhost:$2" 2>"$TMP/client.err")
    [[ $reply == "HTTP/1.1 200"* && $reply == *$'\r\n\r\nhello'* ]] || return 1
    sed -n "s/^poolsrv-client: TLS \([^ ]*\) \([^ ]*\) with .*/$1: \1 \2/p" "$TMP/client.err" \
        >>"$TMP/tls"
}

start_nginx() {
    nginx_start "$1" ssl "        ssl_certificate $CERTS/chain.pem;
        ssl_certificate_key $CERTS/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;" check_https nginx "$1"
}

# srv_cpu_us NAME: the server's user+system CPU so far, in microseconds
# (nginx: the master and its workers).
srv_cpu_us() {
    local pid t=0 p
    if [[ $1 == nginx ]]; then pid=$NGINX_PID; else pid=$POOLSRV_PID; fi
    for p in "$pid" $(pgrep -P "$pid"); do
        t=$((t + $(proc_cpu_us "$p")))
    done
    echo "$t"
}

# run_wrk NAME PORT MODE: MODE keepalive or close; appends
# "MODE NAME rps avg p50 p99 non2xx errors cpu_us_per_request" to $TMP/rows.
run_wrk() {
    local name=$1 port=$2 mode=$3 out hdr=() c0 c1 cpu
    [[ $mode == close ]] && hdr=(-H 'Connection: close')
    c0=$(srv_cpu_us "$name")
    out=$(timeout $((DURATION + 10)) wrk -t "$WRK_THREADS" -c "$CONNS" -d "${DURATION}s" \
        --latency "${hdr[@]}" "https://127.0.0.1:$port/" 2>&1) ||
        die "wrk failed against $name: $out"
    c1=$(srv_cpu_us "$name")
    wrk_parse "$out"
    [[ -n $WRK_RPS ]] || die "could not read wrk's output for $name: $out"
    cpu=$(per_msg "$c0" "$c1" "$(awk -v r="$WRK_RPS" -v d="$DURATION" 'BEGIN {printf "%.0f", r * d}')")
    echo "$mode $name $WRK_RPS ${WRK_AVG:-?} ${WRK_P50:-?} ${WRK_P99:-?} $WRK_NON2XX $WRK_ERRS $cpu" \
        >>"$TMP/rows"
    printf '  %-9s %-12s %12s req/s  avg %-9s p50 %-9s p99 %-9s non-2xx %s errors %s cpu %s us/req\n' \
        "$mode" "$name" "$WRK_RPS" "$WRK_AVG" "$WRK_P50" "$WRK_P99" "$WRK_NON2XX" "$WRK_ERRS" "$cpu"
}

# run_stime NAME PORT: S_TIME_PROCS `openssl s_time -new -www /` at once for
# DURATION s; appends "handshake NAME conns/s - - - - - cpu_us_per_conn" to $TMP/rows.
run_stime() {
    local name=$1 port=$2 i t0 t1 n=0 c rate pids=() c0 c1 cpu
    c0=$(srv_cpu_us "$name")
    t0=${EPOCHREALTIME/./}
    for ((i = 0; i < S_TIME_PROCS; i++)); do
        timeout $((DURATION + 10)) openssl s_time -connect "127.0.0.1:$port" -new -www / \
            -time "$DURATION" >"$TMP/stime.$i" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || die "openssl s_time failed against $name: $(tail -3 "$TMP/stime.$i")"
    done
    t1=${EPOCHREALTIME/./}
    c1=$(srv_cpu_us "$name")
    for ((i = 0; i < S_TIME_PROCS; i++)); do
        c=$(sed -n 's/^\([0-9]*\) connections in [0-9.]*s;.*/\1/p' "$TMP/stime.$i" | head -1)
        [[ -n $c ]] || die "could not read openssl s_time's output for $name: $(cat "$TMP/stime.$i")"
        n=$((n + c))
    done
    rate=$(awk -v n="$n" -v us=$((t1 - t0)) 'BEGIN {printf "%.0f", n / (us / 1e6)}')
    cpu=$(per_msg "$c0" "$c1" "$n")
    echo "handshake $name $rate - - - - - $cpu" >>"$TMP/rows"
    printf '  %-9s %-12s %12s full handshakes+GET/s (%d in %d ms) cpu %s us/conn\n' handshake \
        "$name" "$rate" "$n" $(((t1 - t0) / 1000)) "$cpu"
}

# round NAME PORT: the three measurements of one server.
round() {
    run_wrk "$1" "$2" keepalive
    run_wrk "$1" "$2" close
    run_stime "$1" "$2"
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
NGINX_PORT=$(free_port)
: >"$TMP/tls"
start_poolsrv
POOLSRV_PID=$PID POOLSRV_PORT=$PORT
check_https poolsrv-http "$POOLSRV_PORT" ||
    die "poolsrv-http did not answer GET / with hello over TLS: $(head -c 300 "$TMP/client.err")"
start_nginx "$NGINX_PORT"
NGINX_PID=$PID

echo "compare-https: $WORKERS workers each, wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s (keep-alive," \
    "then Connection: close), $S_TIME_PROCS x openssl s_time -new; $ROUNDS rounds"
: >"$TMP/rows"
# Warm-up (not recorded).
timeout 10 wrk -t1 -c"$CONNS" -d1s "https://127.0.0.1:$POOLSRV_PORT/" >/dev/null 2>&1
timeout 10 wrk -t1 -c"$CONNS" -d1s "https://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then
        round poolsrv-http "$POOLSRV_PORT"
        round nginx "$NGINX_PORT"
    else
        round nginx "$NGINX_PORT"
        round poolsrv-http "$POOLSRV_PORT"
    fi
done
stop_pid "$POOLSRV_PID"
POOLSRV_EXIT=$STOP_STATUS
stop_pid "$NGINX_PID"

# median MODE NAME [FIELD]: the median rate (FIELD 3) or CPU per request
# (FIELD 9) of a server's rounds in one measurement.
median() {
    awk -v m="$1" -v n="$2" -v f="${3:-3}" '$1 == m && $2 == n && $f != "NA" {print $f}' "$TMP/rows" |
        sort -g |
        awk '{v[NR] = $1} END {if (!NR) print 0; else if (NR % 2) printf "%.1f", v[(NR + 1) / 2];
            else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'
}
NGINX_VER=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
WRK_VER=$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')
SSL_VER=$(openssl version | awk '{print $1, $2}')

mkdir -p "$(dirname "$OUT")"
{
    echo "# poolsrv-http vs nginx over HTTPS"
    echo
    echo "Written by \`bench/compare-https.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
    echo "$(nproc) cores, $(uname -sr), $NGINX_VER, $WRK_VER, $SSL_VER; both servers on"
    echo "127.0.0.1 with **$WORKERS workers** (poolsrv \`--workers $WORKERS\`, nginx"
    echo "\`worker_processes $WORKERS\`), the same ECDSA P-256 certificate, TLS 1.2 and 1.3,"
    echo "measured in turn, $ROUNDS alternating rounds after a 1 s warm-up each; the"
    echo "load generators run on the same cores.  Negotiated (poolsrv-client -v):"
    sed 's/^/- /' "$TMP/tls"
    echo
    echo "Load average when the run began: $LOAD (other work on the machine skews the figures)."
    echo "poolsrv-http's exit status after SIGTERM: $POOLSRV_EXIT."
    echo
    echo "- **keep-alive**: \`wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency https://...\`"
    echo "- **close**: the same with \`-H 'Connection: close'\`: a connection and a handshake"
    echo "  per request (wrk decides whether it resumes sessions)"
    echo "- **handshake**: $S_TIME_PROCS \`openssl s_time -new -www / -time $DURATION\` at once:"
    echo "  full handshakes (never resumed), one GET each; connections per second of wall time"
    echo "- **CPU**: the server's user+system time (/proc, nginx with its workers) over the"
    echo "  measurement, per request (keep-alive, close) or per connection (handshake)"
    echo
    echo "| measurement | round | server | per s | avg latency | p50 | p99 | non-2xx | socket errors | CPU us |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---|---:|"
    awk '{r[$1 $2]++; printf "| %s | %d | %s | %.0f | %s | %s | %s | %s | %s | %s |\n",
          $1, r[$1 $2], $2, $3, $4, $5, $6, $7, $8, $9}' "$TMP/rows"
    echo
    echo "| measurement | poolsrv-http (median) | nginx (median) | ratio poolsrv/nginx | CPU us: poolsrv-http | nginx |"
    echo "|---|---:|---:|---:|---:|---:|"
    for m in keepalive close handshake; do
        p=$(median "$m" poolsrv-http) n=$(median "$m" nginx)
        echo "| $m | ${p%.*} | ${n%.*} | **$(ratio "$p" "$n")** | $(median "$m" poolsrv-http 9) | $(median "$m" nginx 9) |"
    done
} >"$OUT"
for m in keepalive close handshake; do
    p=$(median "$m" poolsrv-http) n=$(median "$m" nginx)
    echo "compare-https: $m: poolsrv-http ${p%.*}/s, nginx ${n%.*}/s, ratio $(ratio "$p" "$n")," \
        "CPU $(median "$m" poolsrv-http 9) against $(median "$m" nginx 9) us"
done
echo "compare-https: -> $OUT"

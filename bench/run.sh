#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/run.sh - the benchmark matrix behind `make bench`.
#
# For each scenario, repeat and server: start the server fresh on an
# ephemeral loopback port, run poolsrv-bench against it, stop it by PID.
# Servers take turns within each repeat (the order rotates), so noise on a
# shared machine falls on all of them alike.  Writes $BENCH_OUT/latest.md,
# latest.json (with every run's poolsrv-bench JSON), chart.svg and chart.dat.
#
# Environment (defaults in brackets):
#   BENCH_REPEATS [3]   runs per point; the median is reported
#   BENCH_DURATION [2]  seconds per run
#   BENCH_TIMEOUT [2]   seconds without an answer before a connection fails
#   BENCH_WORKERS []    poolsrv-event's --workers (empty: poolsrv-echo's default,
#                       one per CPU the process may run on)
#   BENCH_BLOCKING_WORKERS [64]  poolsrv-blocking's --workers
#   BENCH_THREADS [1]   poolsrv-bench --threads
#   BENCH_HOLD [10000]  idle connections for the memory-per-connection table
#                       (0 skips it)
#   BENCH_SCENARIOS ["a b c d e f g"]
#   BENCH_SERVERS ["poolsrv-event poolsrv-event-1 poolsrv-blocking libuv libevent
#                  thread-per-conn"]  (poolsrv-event-1: --mode event --workers 1,
#                  the one-thread comparison with libuv and libevent;
#                  NAME-nohist: poolsrv server NAME with --no-histograms)
#   BENCH_BIN, ECHO_BIN, REFS_DIR, BENCH_OUT [bench/results]
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
ECHO_BIN=${ECHO_BIN:-server/poolsrv-echo}
REFS_DIR=${REFS_DIR:-bench/refs}
BENCH_OUT=${BENCH_OUT:-bench/results}
REPEATS=${BENCH_REPEATS:-3}
DURATION=${BENCH_DURATION:-2}
TIMEOUT=${BENCH_TIMEOUT:-2}
WORKERS=${BENCH_WORKERS:-}
BLOCKING_WORKERS=${BENCH_BLOCKING_WORKERS:-64}
THREADS=${BENCH_THREADS:-1}
HOLD=${BENCH_HOLD:-10000}
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-a b c d e f g}"
read -r -a SERVERS <<<"${BENCH_SERVERS:-poolsrv-event poolsrv-event-1 poolsrv-blocking libuv libevent thread-per-conn}"

# shellcheck source=bench/lib.sh
. bench/lib.sh
warn_stale "$ECHO_BIN"
trap srv_cleanup EXIT

declare -A SC_ARGS=(
    [a]="-c 50 -p 1 -l 64"
    [b]="-c 50 -p 16 -l 64"
    [c]="-c 10 -p 4 -l 16k"
    [d]="-c 1000 -p 1 -l 64"
    [e]="-c 10000 -p 1 -l 64"
    [f]="--connect-rate -c 50 -l 64"
    [g]="--connect-rate -c 50 -l 64 --threads 2"
)
declare -A SC_DESC=(
    [a]="request/response: 50 connections, depth 1, 64 B"
    [b]="pipelined: 50 connections, depth 16, 64 B"
    [c]="bulk: 10 connections, depth 4, 16 KiB"
    [d]="1,000 connections, depth 1, 64 B"
    [e]="10,000 connections, depth 1, 64 B"
    [f]="connect-rate: 50 concurrent connect+echo+close"
    [g]="connect-rate with 2 load threads: as f, the load generator no longer the limit"
)

declare -A SC_SHORT=(
    [a]="a:50c/d1/64B" [b]="b:50c/d16/64B" [c]="c:10c/d4/16KiB"
    [d]="d:1000c/d1/64B" [e]="e:10000c/d1/64B" [f]="f:connect-rate" [g]="g:connect-rate/T2"
)

# server_cmd NAME: the command line of server NAME (empty if not built).
server_cmd() {
    local listen=127.0.0.1:0
    case $1 in
    poolsrv-event) [[ -x $ECHO_BIN ]] && echo "$ECHO_BIN --listen $listen --mode event${WORKERS:+ --workers $WORKERS}" ;;
    poolsrv-event-1) [[ -x $ECHO_BIN ]] && echo "$ECHO_BIN --listen $listen --mode event --workers 1" ;;
    poolsrv-blocking) [[ -x $ECHO_BIN ]] && echo "$ECHO_BIN --listen $listen --mode blocking --workers $BLOCKING_WORKERS" ;;
    libuv) [[ -x $REFS_DIR/uv-echo ]] && echo "$REFS_DIR/uv-echo $listen" ;;
    libevent) [[ -x $REFS_DIR/ev-echo ]] && echo "$REFS_DIR/ev-echo $listen" ;;
    thread-per-conn) [[ -x $REFS_DIR/tpc-echo ]] && echo "$REFS_DIR/tpc-echo $listen" ;;
    poolsrv-*-nohist) # the same server without latency histograms (their cost)
        local base
        base=$(server_cmd "${1%-nohist}") || return 1
        [[ -n $base ]] && echo "$base --no-histograms" ;;
    *) echo "error: unknown server '$1'" >&2; return 1 ;;
    esac
    return 0
}

[[ -x $BENCH_BIN ]] || { echo "error: $BENCH_BIN not built (make bench/poolsrv-bench)" >&2; exit 1; }
for s in "${SERVERS[@]}"; do
    [[ -n $(server_cmd "$s") ]] || echo "warning: $s is not built; its points are recorded as missing" >&2
done
for sc in "${SCENARIOS[@]}"; do
    [[ -n ${SC_ARGS[$sc]:-} ]] || { echo "error: unknown scenario '$sc'" >&2; exit 2; }
done

# 10,000 connections: raise the descriptor limit as far as allowed.  Servers
# started from here inherit it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 10100)); then
    echo "warning: descriptor limit $(ulimit -n) < 10100; scenario e will fail (raise ulimit -Hn)" >&2
fi

mkdir -p "$BENCH_OUT"
RAW=$BENCH_OUT/raw.jsonl.tmp
: >"$RAW"
declare -A THR P99 CPU OK ERRS NOTE
started=$SECONDS
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
nserv=${#SERVERS[@]}

# one_run SCENARIO SERVER REP: run one point, append its record to $RAW.
one_run() {
    local sc=$1 srv=$2 rep=$3 cmd out rc=0 thr p99 ok errs note="" key t0=$EPOCHREALTIME
    local c0 c1 n cpu
    cmd=$(server_cmd "$srv")
    key="$sc|$srv"
    if [[ -z $cmd ]]; then
        NOTE[$key]="not built"
        return 0
    fi
    # shellcheck disable=SC2086  # cmd and scenario arguments are word lists
    if ! srv_start $cmd; then
        OK[$key]+="0 "
        THR[$key]+="NA "
        P99[$key]+="NA "
        CPU[$key]+="NA "
        NOTE[$key]="server did not start"
        printf '%-3s %-17s %d/%d  server did not start\n' "$sc" "$srv" "$rep" "$REPEATS"
        return 0
    fi
    c0=$(proc_cpu_us "$SRV_PID")
    # shellcheck disable=SC2086
    out=$("$BENCH_BIN" --json --no-progress --threads "$THREADS" --timeout "$TIMEOUT" \
        -t "$DURATION" ${SC_ARGS[$sc]} "$SRV_ADDR") || rc=$?
    c1=$(proc_cpu_us "$SRV_PID") # the server's user+system time over the run
    srv_stop
    if [[ -z $out ]]; then
        out="{\"ok\":false,\"bench_exit\":$rc}"
    fi
    if [[ $sc == [fg] ]]; then
        thr=$(json_get cycles_per_sec "$out") n=$(json_get cycles "$out")
    else
        thr=$(json_get msgs_per_sec "$out") n=$(json_get messages "$out")
    fi
    cpu=$(per_msg "$c0" "$c1" "$n")
    printf '{"scenario":"%s","server":"%s","repeat":%d,"server_exit":"%s","server_cpu_us":%s,"cpu_us_per_msg":%s,"bench":%s}\n' \
        "$sc" "$srv" "$rep" "$SRV_STATUS" "$(per_msg "$c0" "$c1" 1 | sed 's/NA/null/')" \
        "${cpu/NA/null}" "$out" >>"$RAW"
    p99=$(json_get lat_p99_us "$out")
    ok=$([[ $rc == 0 && $(json_get ok "$out") == true ]] && echo 1 || echo 0)
    errs=""
    for k in mismatch excess refused reset timeout closed addrnotavail fdlimit tls other; do
        local v
        v=$(json_get "err_$k" "$out")
        if [[ -n $v && $v != 0 ]]; then errs+="$k=$v "; fi
    done
    if [[ $sc != f && $(json_get connected "$out") != "$(json_get connections "$out")" ]]; then
        errs+="connected=$(json_get connected "$out")/$(json_get connections "$out") "
    fi
    if [[ $SRV_STATUS != 0 ]]; then
        note="server exit $SRV_STATUS after SIGTERM"
        NOTE[$key]=$note
    fi
    OK[$key]+="$ok "
    THR[$key]+="${thr:-NA} "
    P99[$key]+="${p99:-NA} "
    CPU[$key]+="$cpu "
    ERRS[$key]+="$errs"
    printf '%-3s %-17s %d/%d %12s /s  p99 %10s us  cpu %6s us/msg  %4.1fs  %s %s%s\n' "$sc" "$srv" "$rep" \
        "$REPEATS" "${thr:-NA}" "${p99:-NA}" "$cpu" "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" \
        "$([[ $ok == 1 ]] && echo ok || echo FAILED)" "$errs" "$note"
}

echo "poolsrv benchmark matrix: ${#SCENARIOS[@]} scenarios x $nserv servers x $REPEATS repeats, ${DURATION}s each"
for sc in "${SCENARIOS[@]}"; do
    for ((rep = 1; rep <= REPEATS; rep++)); do
        for ((i = 0; i < nserv; i++)); do
            one_run "$sc" "${SERVERS[$(((i + rep - 1) % nserv))]}" "$rep"
        done
    done
done

# Memory per idle connection: the server's RSS growth while it holds $HOLD
# idle connections (user-space memory only; kernel socket buffers are not in
# RSS).
declare -A HOLD_TXT
HOLD_JSON=""
if ((HOLD > 0)); then
    for srv in "${SERVERS[@]}"; do
        cmd=$(server_cmd "$srv")
        [[ -n $cmd ]] || continue
        # shellcheck disable=SC2086
        srv_start $cmd || { HOLD_TXT[$srv]="| $srv | - | - | - | server did not start |"; continue; }
        rc=0
        out=$("$BENCH_BIN" --json --no-progress --hold -c "$HOLD" -t 1 --timeout "$TIMEOUT" \
            --pid "$SRV_PID" "$SRV_ADDR") || rc=$?
        srv_stop
        held=$(json_get held "$out")
        before=$(json_get server_rss_kb_before "$out")
        after=$(json_get server_rss_kb_after "$out")
        per=$(awk -v a="$after" -v b="$before" -v n="$held" 'BEGIN { if (n > 0 && a >= 0 && b >= 0) printf "%.2f", (a - b) / n; else print "NA" }')
        status=ok
        ((rc == 0)) || status="FAILED: $held of $HOLD held"
        HOLD_TXT[$srv]="| $srv | ${held:-0} | ${before:-?} kB | ${after:-?} kB | ${per/NA/-} | $status |"
        HOLD_JSON+="${HOLD_JSON:+,}{\"server\":\"$srv\",\"held\":${held:-0},\"rss_kb_before\":${before:--1},\"rss_kb_after\":${after:--1},\"kb_per_conn\":${per/NA/null},\"ok\":$([[ $status == ok ]] && echo true || echo false)}"
        printf 'hold %-17s %6s conns  %8s kB/conn  %s\n' "$srv" "${held:-0}" "$per" "$status"
    done
fi
elapsed=$((SECONDS - started))

# median WORDS...: median of the numeric words ("NA" ignored); "NA" if none.
median() {
    local -a v
    mapfile -t v < <(printf '%s\n' "$@" | grep -v '^NA$' | sort -g)
    local n=${#v[@]}
    if ((n == 0)); then echo "NA"; return; fi
    if ((n % 2)); then echo "${v[n / 2]}"; else awk -v a="${v[n / 2 - 1]}" -v b="${v[n / 2]}" 'BEGIN { print (a + b) / 2 }'; fi
}

# sum_errs "k=v k=v ...": totals per kind, "k=total ..."
sum_errs() {
    printf '%s\n' "$@" | tr ' ' '\n' | awk -F= '
        NF != 2 { next }
        $1 == "connected" { if (!($1 in c) || $2 + 0 < c[$1] + 0) c[$1] = $2; next }
        { t[$1] += $2 }
        END { for (k in t) printf "%s=%d ", k, t[k]; for (k in c) printf "min %s=%s ", k, c[k] }'
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cores=$(nproc)
kernel=$(uname -sr)
os=$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null || true)
when=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
if ! git diff --quiet HEAD -- lib server 2>/dev/null; then
    commit+="-dirty" # the poolsrv-echo measured has uncommitted changes
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
cmdline="BENCH_REPEATS=$REPEATS BENCH_DURATION=$DURATION BENCH_TIMEOUT=$TIMEOUT BENCH_WORKERS=$WORKERS BENCH_BLOCKING_WORKERS=$BLOCKING_WORKERS BENCH_THREADS=$THREADS"
[[ -n ${BENCH_SCENARIOS:-} ]] && cmdline+=" BENCH_SCENARIOS=\"${SCENARIOS[*]}\""
[[ -n ${BENCH_SERVERS:-} ]] && cmdline+=" BENCH_SERVERS=\"${SERVERS[*]}\""
cmdline+=" make bench"

EVENT_WORKERS_TXT="the default --workers (one per CPU it may run on: $(nproc) here)"
[[ -n $WORKERS ]] && EVENT_WORKERS_TXT="--workers $WORKERS"
md=$BENCH_OUT/latest.md.tmp
js=$BENCH_OUT/latest.json.tmp
dat=$BENCH_OUT/chart.dat.tmp
{
    echo "# poolsrv benchmark results"
    echo
    echo "Generated by \`$cmdline\` on $when (git $commit), in ${elapsed}s."
    echo
    echo "Machine: $cpu, $cores cores, $kernel${os:+, $os}; load average $load_start when the run"
    echo "started (the machine may be shared: compare servers within a scenario)."
    echo "Each point: a fresh server on an ephemeral 127.0.0.1 port, poolsrv-bench with"
    echo "$THREADS thread(s) (g: 2), ${DURATION}s, median of $REPEATS runs.  poolsrv-event runs with"
    echo "$EVENT_WORKERS_TXT, poolsrv-blocking with --workers $BLOCKING_WORKERS."
    echo "Throughput is echoed messages per second (scenarios f and g: connect+echo+close cycles per"
    echo "second); p99 is the message round trip; CPU is the server's user+system time"
    echo "(/proc/PID/stat, all threads) over the run divided by the messages (f, g: cycles).  A point is FAILED if any run had an error or"
    echo "mismatch, or did not get all its connections up; its figures are still the measured medians."
    echo
} >"$md"
{
    printf '{"generated":"%s","commit":"%s","elapsed_s":%d,\n' "$when" "$commit" "$elapsed"
    printf ' "machine":{"cpu":"%s","cores":%d,"kernel":"%s","os":"%s","loadavg_start":"%s","loadavg_end":"%s"},\n' \
        "$cpu" "$cores" "$kernel" "$os" "$load_start" "$load_end"
    printf ' "config":{"repeats":%d,"duration_s":%s,"timeout_s":%s,"poolsrv_workers":"%s","blocking_workers":%d,"bench_threads":%d,"command":"%s"},\n' \
        "$REPEATS" "$DURATION" "$TIMEOUT" "${WORKERS:-default}" "$BLOCKING_WORKERS" "$THREADS" "${cmdline//\"/\\\"}"
    printf ' "results":['
} >"$js"
printf 'scenario' >"$dat"
for srv in "${SERVERS[@]}"; do printf ' %s %s' "$srv" "$srv" >>"$dat"; done
echo >>"$dat"

first=1
for sc in "${SCENARIOS[@]}"; do
    unit="msg/s"
    [[ $sc == [fg] ]] && unit="conn/s"
    # shellcheck disable=SC2086  # a word list of per-run values
    base=$(median ${THR["$sc|libuv"]:-NA})
    {
        echo "## ($sc) ${SC_DESC[$sc]}"
        echo
        echo "\`poolsrv-bench ${SC_ARGS[$sc]} -t $DURATION --timeout $TIMEOUT\`"
        echo
        echo "| server | throughput ($unit) | vs libuv | p99 latency | CPU us/msg | runs | status |"
        echo "|---|---:|---:|---:|---:|---|---|"
    } >>"$md"
    printf '%s' "${SC_SHORT[$sc]}" >>"$dat"
    for srv in "${SERVERS[@]}"; do
        key="$sc|$srv"
        if [[ -z ${OK[$key]:-} ]]; then
            echo "| $srv | - | - | - | - | - | ${NOTE[$key]:-not run} |" >>"$md"
            printf ' ? ?' >>"$dat"
            continue
        fi
        # shellcheck disable=SC2086  # word lists of per-run values
        {
            thr=$(median ${THR[$key]})
            p99=$(median ${P99[$key]})
            cpu=$(median ${CPU[$key]})
            runs=$(wc -w <<<"${OK[$key]}")
            good=$(tr -cd 1 <<<"${OK[$key]}" | wc -c)
            errs=$(sum_errs ${ERRS[$key]:-})
        }
        ratio="NA"
        if [[ $thr != NA && $base != NA ]]; then
            ratio=$(awk -v a="$thr" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "NA" }')
        fi
        status="ok"
        errs=${errs% }
        if ((good < runs)); then status="FAILED $((runs - good))/$runs runs${errs:+: $errs}"; fi
        [[ -n ${NOTE[$key]:-} ]] && status+="; ${NOTE[$key]}"
        p99txt=$(awk -v v="$p99" 'BEGIN { if (v == "NA") print "-"; else if (v >= 1000) printf "%.2f ms", v / 1000; else printf "%.1f us", v }')
        thrtxt=$(awk -v v="$thr" 'BEGIN { if (v == "NA") print "-"; else printf "%.0f", v }')
        ratiotxt="-"
        [[ $ratio != NA ]] && ratiotxt="${ratio}x"
        runstxt=$(awk '{ for (i = 1; i <= NF; i++) printf "%s%s", (i > 1 ? " " : ""), ($i == "NA" ? "-" : sprintf("%.0f", $i)) }' <<<"${THR[$key]}")
        echo "| $srv | $thrtxt | $ratiotxt | $p99txt | ${cpu/NA/-} | $runstxt | $status |" >>"$md"
        # The chart shows passing points only.
        if [[ $status == ok ]]; then printf ' %s %s' "$thr" "$p99" >>"$dat"; else printf ' ? ?' >>"$dat"; fi
        ((first)) || printf ',' >>"$js"
        first=0
        printf '\n  {"scenario":"%s","description":"%s","args":"%s","server":"%s","unit":"%s","throughput":%s,"p99_us":%s,"cpu_us_per_msg":%s,"ratio_to_libuv":%s,"runs":%d,"passed_runs":%d,"throughput_runs":[%s],"cpu_us_per_msg_runs":[%s],"errors":"%s","ok":%s}' \
            "$sc" "${SC_DESC[$sc]}" "${SC_ARGS[$sc]}" "$srv" "$unit" \
            "${thr/NA/null}" "${p99/NA/null}" "${cpu/NA/null}" "${ratio/NA/null}" "$runs" "$good" \
            "$(tr -s ' ' <<<"${THR[$key]% }" | tr ' ' ',' | sed 's/NA/null/g')" \
            "$(tr -s ' ' <<<"${CPU[$key]% }" | tr ' ' ',' | sed 's/NA/null/g')" "$errs" \
            "$([[ $status == ok ]] && echo true || echo false)" >>"$js"
    done
    echo >>"$md"
    echo >>"$dat"
done
if ((HOLD > 0)); then
    {
        echo "## Memory per idle connection"
        echo
        echo "\`poolsrv-bench --hold -c $HOLD -t 1 --pid SERVER_PID\`: server VmRSS before connecting and after"
        echo "holding the connections for 1 s (user-space memory only; kernel socket buffers are not in RSS)."
        echo
        echo "| server | held | RSS before | RSS holding | kB per connection | status |"
        echo "|---|---:|---:|---:|---:|---|"
        for srv in "${SERVERS[@]}"; do
            [[ -n ${HOLD_TXT[$srv]:-} ]] && echo "${HOLD_TXT[$srv]}"
        done
        echo
    } >>"$md"
fi
{
    printf '\n ],\n "memory_per_connection":[%s],' "$HOLD_JSON"
    printf '\n "runs":[\n'
    sed '$!s/$/,/' "$RAW"
    printf ' ]}\n'
} >>"$js"

if command -v gnuplot >/dev/null; then
    nser=${#SERVERS[@]}
    if gnuplot -e "dat='$dat'; out='$BENCH_OUT/chart.svg'; n=$nser" bench/chart.gp 2>"$BENCH_OUT/gnuplot.log.tmp"; then
        echo "Chart: [chart.svg](chart.svg) (throughput and p99 per server, log scales; failed points left out)." >>"$md"
        rm -f "$BENCH_OUT/gnuplot.log.tmp"
    else
        echo "warning: gnuplot failed; see $BENCH_OUT/gnuplot.log.tmp" >&2
    fi
else
    echo "note: gnuplot not installed, no chart (apt-get install gnuplot-nox)" >&2
fi

mv "$md" "$BENCH_OUT/latest.md"
mv "$js" "$BENCH_OUT/latest.json"
rm -f "$RAW"
mv "$dat" "$BENCH_OUT/chart.dat"
echo "wrote $BENCH_OUT/latest.md, latest.json${nser:+, chart.svg} (${elapsed}s)"

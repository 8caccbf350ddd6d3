#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/integration/metrics/run.sh - what a Prometheus server scrapes.
#
# poolsrv-echo (event and blocking style) with --admin, loaded with
# poolsrv-bench (persistent pipelined connections, then a connect-rate run),
# then scraped once everything closed.  Checks:
#   1. `promtool check metrics` accepts the exposition (Debian package
#      prometheus).  Without promtool the suite fails under CI=true; outside
#      CI it skips that check with a loud message;
#   2. every histogram is consistent: cumulative buckets never decrease,
#      _count equals the +Inf bucket, the bounds are 1 us * 2^i;
#   3. the lifetime histogram counts exactly the connections closed (and
#      accepted), the queue wait one observation per turn;
#   4. poolsrv_build_info names VERSION; the configuration gauges show the
#      flags given; the process_* metrics are there and sane;
#   5. --no-histograms: the same load leaves every histogram at zero.
# Loopback only, ephemeral ports, bounded waits; processes stopped by PID.
set -u

ECHO=${ECHO:-server/poolsrv-echo}
BENCH=${BENCH:-bench/poolsrv-bench}
PROMTOOL=${PROMTOOL:-promtool}
# shellcheck source=tests/harness.sh
. "$(dirname "$0")/../../harness.sh"

if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
    if [[ ${CI:-} == true ]]; then
        fail "promtool is installed" "CI=true: install the Debian package prometheus (.ci/run does)"
    else
        echo "**********************************************************************"
        echo "** metrics: promtool not found (Debian package prometheus):         **"
        echo "** SKIPPING the promtool check; the other checks still run.         **"
        echo "** Under CI=true this is a failure.                                 **"
        echo "**********************************************************************"
    fi
    PROMTOOL=""
fi

# start NAME ARGS...: run poolsrv-echo; sets PID, PORT, APORT.
start() {
    local name=$1 i
    shift
    "$ECHO" --listen 127.0.0.1:0 --admin 127.0.0.1:0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PID=$!
    PIDS+=("$PID")
    for ((i = 0; i < 200; i++)); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/$name.out")
        APORT=$(sed -n 's/^admin on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/$name.out")
        [[ -n $PORT && -n $APORT ]] && return 0
        kill -0 "$PID" 2>/dev/null || return 1
        read -r -t 0.05 <> <(:) || true
    done
    return 1
}

stop() {
    local i
    kill -TERM "$PID" 2>/dev/null
    for ((i = 0; i < 200; i++)); do
        kill -0 "$PID" 2>/dev/null || break
        read -r -t 0.05 <> <(:) || true
    done
    kill -KILL "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
}

scrape() { curl -s --max-time 10 "http://127.0.0.1:$APORT/metrics" >"$1"; }

# value FILE NAME: the sample of a metric without labels.
value() { awk -v n="$2" '$1 == n { print $2; exit }' "$1"; }

# Scrape until no connection is open (the bench has closed them all) and
# the last turns have ended: a turn's queue wait is recorded at its start,
# its time at its end, after the close counted.
scrape_idle() {
    local i
    for ((i = 0; i < 100; i++)); do
        scrape "$1"
        [[ $(value "$1" poolsrv_echo_active) == 0 &&
            $(value "$1" poolsrv_echo_turn_seconds_count) == \
            "$(value "$1" poolsrv_echo_queue_wait_seconds_count)" ]] && return 0
        read -r -t 0.05 <> <(:) || true
    done
    return 1
}

load() {
    "$BENCH" -c 20 -p 4 -l 256 -m 20000 --timeout 10 --no-progress "127.0.0.1:$PORT" \
        >"$TMP/bench1" 2>&1 &&
        "$BENCH" --connect-rate -c 10 -l 64 -m 500 --timeout 10 --no-progress \
            "127.0.0.1:$PORT" >"$TMP/bench2" 2>&1
}

# check_hist FILE NAME: buckets cumulative and non-decreasing, le = 2^i us,
# then +Inf, _count = +Inf.  Prints the count.
check_hist() {
    awk -v n="$2" '
        index($0, n "_bucket{le=\"") == 1 {
            le = $0; sub(/^[^"]*"/, "", le); sub(/".*/, "", le)
            v = $NF + 0
            if (v < prev) { print "bucket " le " decreases: " v " < " prev; bad = 1 }
            prev = v
            if (le == "+Inf") inf = v
            else {
                want = 2 ^ i / 1e6; i++
                if (le + 0 < want * 0.999999 || le + 0 > want * 1.000001) {
                    print "bucket " i - 1 " has le " le ", want " want; bad = 1
                }
            }
            nb++
        }
        $1 == n "_count" { count = $2 + 0; seen = 1 }
        $1 == n "_sum" { sum = $2 + 0 }
        END {
            if (nb != 28) { print nb " buckets, want 28 (27 bounds, +Inf)"; bad = 1 }
            if (!seen) { print "no _count"; bad = 1 }
            if (count != inf) { print "_count " count " != +Inf bucket " inf; bad = 1 }
            if (sum < 0) { print "negative _sum"; bad = 1 }
            if (bad) exit 1
            print count
        }' "$1"
}

run_style() {
    local mode=$1 f got n closed accepted turns waits
    if ! start "$mode" --mode "$mode" --workers 2 --max-connections 500 --idle-timeout 30000; then
        fail "$mode: starts" "$(cat "$TMP/$mode.err")"
        return
    fi
    if load; then ok "$mode: load ran (every byte verified)"; else
        fail "$mode: load ran" "$(tail -3 "$TMP/bench1" "$TMP/bench2")"
    fi
    f=$TMP/$mode.metrics
    if scrape_idle "$f"; then ok "$mode: scraped with every connection closed"; else
        fail "$mode: scraped with every connection closed" "active $(value "$f" poolsrv_echo_active)"
    fi
    if [[ -n $PROMTOOL ]]; then
        if got=$("$PROMTOOL" check metrics <"$f" 2>&1); then ok "$mode: promtool check metrics"
        else fail "$mode: promtool check metrics" "$got"; fi
    fi
    for h in queue_wait turn connection_lifetime; do
        if got=$(check_hist "$f" "poolsrv_echo_${h}_seconds"); then
            ok "$mode: ${h} histogram consistent (count $got)"
        else
            fail "$mode: ${h} histogram consistent" "$got"
        fi
    done
    n=$(value "$f" poolsrv_echo_connection_lifetime_seconds_count)
    closed=$(value "$f" poolsrv_echo_closed_total)
    accepted=$(value "$f" poolsrv_echo_accepted_total)
    if [[ -n $n && $n == "$closed" && $n == "$accepted" && $n -ge 520 ]]; then
        ok "$mode: lifetime count = connections closed = accepted ($n)"
    else
        fail "$mode: lifetime count = connections closed = accepted" \
            "lifetime $n, closed $closed, accepted $accepted (>= 520 expected)"
    fi
    turns=$(value "$f" poolsrv_echo_turn_seconds_count)
    waits=$(value "$f" poolsrv_echo_queue_wait_seconds_count)
    if [[ -n $turns && $turns == "$waits" && $turns -ge $n ]]; then
        ok "$mode: one queue wait per turn ($turns)"
    else
        fail "$mode: one queue wait per turn" "turns $turns, queue waits $waits, connections $n"
    fi
    if grep -qx "poolsrv_build_info{program=\"poolsrv-echo\",version=\"$(cat VERSION)\",library_version=\"$(cat VERSION)\"} 1" "$f"; then
        ok "$mode: poolsrv_build_info names VERSION"
    else
        fail "$mode: poolsrv_build_info names VERSION" "$(grep build_info "$f")"
    fi
    got="$(value "$f" poolsrv_echo_workers) $(value "$f" poolsrv_echo_config_max_connections) $(value "$f" poolsrv_echo_config_idle_timeout_seconds) $(value "$f" poolsrv_echo_queue_capacity)"
    if [[ $got == "2 500 30 1024" ]]; then ok "$mode: configuration gauges ($got)"
    else fail "$mode: configuration gauges" "workers, max_connections, idle_timeout, queue: $got"; fi
    if awk -v now="$(date +%s)" -v pid="$PID" '
        $1 == "process_open_fds" { fds = $2 } $1 == "process_max_fds" { max = $2 }
        $1 == "process_resident_memory_bytes" { rss = $2 } $1 == "process_virtual_memory_bytes" { vm = $2 }
        $1 == "process_start_time_seconds" { st = $2 } $1 == "process_cpu_seconds_total" { cpu = $2; c = 1 }
        END { exit !(fds > 3 && fds < max && rss > 0 && vm >= rss && st > now - 600 && st <= now + 1 && c && cpu >= 0) }' "$f"
    then
        ok "$mode: process_* metrics sane"
    else
        fail "$mode: process_* metrics sane" "$(grep '^process_' "$f" | tr '\n' ' ')"
    fi
    stop
}

run_style event
run_style blocking

if start off --no-histograms; then
    load >/dev/null 2>&1
    f=$TMP/off.metrics
    scrape_idle "$f"
    got=$(awk '/_seconds_(count|sum) / { s += $2 } END { print s + 0 }' "$f")
    if [[ $got == 0 && $(value "$f" poolsrv_echo_closed_total) -ge 520 ]]; then
        ok "--no-histograms: the histograms stay at zero"
    else
        fail "--no-histograms: the histograms stay at zero" "sum of counts and sums: $got"
    fi
    stop
else
    fail "--no-histograms: starts" "$(cat "$TMP/off.err")"
fi

echo "metrics: $PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]

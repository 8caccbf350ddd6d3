#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/bench_smoke.sh - a few seconds of verified load on server/poolsrv-echo
# in both modes.  Asserts correctness (no mismatch, no error of any kind, a
# clean exit 0 on SIGTERM), never speed.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
ECHO_BIN=${ECHO_BIN:-server/poolsrv-echo}
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap srv_cleanup EXIT

if [[ ! -x $ECHO_BIN ]]; then
    echo "error: $ECHO_BIN is not built; the bench smoke test runs against it (run make first)" >&2
    exit 1
fi
[[ -x $BENCH_BIN ]] || { echo "error: $BENCH_BIN not built" >&2; exit 1; }

fails=0
# check DESC ARGS...: one bench run that must pass (exit 0).
check() {
    local desc=$1 out rc=0
    shift
    out=$("$BENCH_BIN" --json --no-progress --timeout 3 "$@" "$SRV_ADDR") || rc=$?
    if [[ $rc == 0 ]]; then
        echo "  ok    $desc: $(json_get messages "$out") messages verified"
    else
        echo "  FAIL  $desc: exit $rc: $out"
        fails=$((fails + 1))
    fi
}

echo "bench smoke test against $ECHO_BIN"
for mode in event blocking; do
    if ! srv_start "$ECHO_BIN" --listen 127.0.0.1:0 --mode "$mode" --workers 4; then
        fails=$((fails + 1))
        continue
    fi
    conns=32
    check "$mode: $conns conns, depth 4, 64 B" -c "$conns" -p 4 -l 64 -t 0.7
    check "$mode: 4 conns, depth 2, 16 KiB" -c 4 -p 2 -l 16k -t 0.7
    check "$mode: connect-rate, 4 slots" --connect-rate -c 4 -t 0.5
    check "$mode: 4 conns, depth 2, sizes 1 B..1 MiB" -c 4 -p 2 --size-min 1 --size-max 1048576 -t 0.7
    srv_stop
    if [[ $SRV_STATUS == 0 ]]; then
        echo "  ok    $mode: SIGTERM, exit 0"
    else
        echo "  FAIL  $mode: server exit status $SRV_STATUS after SIGTERM"
        fails=$((fails + 1))
    fi
done
# Blocking mode with many more clients than workers: the echo handler parks
# each connection whenever its socket is empty, so 8 workers serve 250
# clients that all stay connected, each answered within the --timeout bound
# (3 s).  (A handler that held its worker until end of stream served 8 and
# left 242 waiting in the queue until they timed out.)  The backlog and the
# queue are large enough that connects never wait for a SYN retry (a backlog
# of 16 made this flaky on a loaded machine: connects took 2 s of the 3).
if srv_start "$ECHO_BIN" --listen 127.0.0.1:0 --mode blocking --workers 8 --queue 64 --backlog 512; then
    check "blocking, 8 workers: 250 conns, depth 1, 64 B, all served" -c 250 -p 1 -l 64 -t 1
    srv_stop
else
    fails=$((fails + 1))
fi
# UDP: replies may come back in any order from several workers.  The
# reply rate limit (1000/s per source by default) would refuse most of a
# load test's replies; the other reply rules stay on.
if srv_start "$ECHO_BIN" --listen udp:127.0.0.1:0 --workers 4 --udp-reply-rate 0; then
    SRV_ADDR=${SRV_ADDR#udp:}
    check "udp: 8 sockets, depth 4, 64 B" --udp -c 8 -p 4 -l 64 -t 0.7
    # Large datagrams: few in flight, so the socket buffers never overflow.
    check "udp: 2 sockets, sizes 1..65507 B" --udp -c 2 --size-min 1 --size-max 65507 -t 0.7
    srv_stop
else
    fails=$((fails + 1))
fi
# A Unix socket target; --json with --progress keeps stdout one JSON object
# (progress goes to stderr); --hgrm writes HdrHistogram's .hgrm format.
if srv_start "$ECHO_BIN" --listen "unix:$SRV_TMP/echo.sock" --workers 2; then
    check "unix:PATH target, 4 conns, depth 2" -c 4 -p 2 -t 0.5
    rc=0
    "$BENCH_BIN" --json --progress --hgrm "$SRV_TMP/lat.hgrm" --timeout 3 -c 4 -t 1.2 "$SRV_ADDR" \
        >"$SRV_TMP/run.json" 2>"$SRV_TMP/run.err" || rc=$?
    out=$(cat "$SRV_TMP/run.json")
    if [[ $rc == 0 && $(wc -l <"$SRV_TMP/run.json") == 1 && $out == "{"*"}" && $out != *$'\r'* ]] &&
        grep -q "conns 4/4" "$SRV_TMP/run.err"; then
        echo "  ok    --json --progress: stdout is one JSON object, progress on stderr"
    else
        echo "  FAIL  --json --progress: exit $rc, stdout: $(head -c 300 "$SRV_TMP/run.json" | tr '\r' '|')"
        fails=$((fails + 1))
    fi
    # The format of HdrHistogram's outputPercentileDistribution: header,
    # blank line, rows "%12.3f %2.12f %10d %14.2f" with percentiles rising,
    # the 100% row without the last column, three #[...] footer lines; the
    # last TotalCount is the run's latency count.  (No {n} in the awk
    # regexps: mawk does not take them.)
    if awk -v n="$(json_get lat_count "$out")" '
        NR == 1 { if ($0 != "       Value     Percentile TotalCount 1/(1-Percentile)") bad = "header"; next }
        NR == 2 { if ($0 != "") bad = "blank line"; next }
        /^#/ { foot++; next }
        $0 ~ /^ *[0-9]+\.[0-9][0-9][0-9] [01]\.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9] +[0-9]+ +[0-9]+\.[0-9][0-9]$/ && length($0) == 53 {
            if ($2 < last || $3 < cnt) bad = "not rising at row " NR; last = $2; cnt = $3; rows++; next }
        $0 ~ /^ *[0-9]+\.[0-9][0-9][0-9] 1\.000000000000 +[0-9]+$/ { final = $3; next }
        { if (!bad) bad = "row " NR ": " $0 }
        END {
            if (!bad && final != n) bad = "last TotalCount " final ", lat_count " n
            if (!bad && rows < 10) bad = rows " rows"
            if (bad) { print bad; exit 1 }
        }' "$SRV_TMP/lat.hgrm" >"$SRV_TMP/hgrm.why" &&
        grep -qE '^#\[Mean    = +[0-9]+\.[0-9]{3}, StdDeviation   = +[0-9]+\.[0-9]{3}\]$' "$SRV_TMP/lat.hgrm" &&
        grep -qE '^#\[Max     = +[0-9]+\.[0-9]{3}, Total count    = +[0-9]+\]$' "$SRV_TMP/lat.hgrm" &&
        grep -qE '^#\[Buckets = +[0-9]+, SubBuckets     = +[0-9]+\]$' "$SRV_TMP/lat.hgrm"; then
        echo "  ok    --hgrm: HdrHistogram percentile distribution ($(wc -l <"$SRV_TMP/lat.hgrm") lines)"
    else
        echo "  FAIL  --hgrm: $(cat "$SRV_TMP/hgrm.why")"
        sed -n '1,4p;$p' "$SRV_TMP/lat.hgrm" | sed 's/^/        /'
        fails=$((fails + 1))
    fi
    srv_stop
else
    fails=$((fails + 1))
fi
if ((fails)); then
    echo "bench smoke test: $fails FAILED"
    exit 1
fi
echo "bench smoke test: passed"

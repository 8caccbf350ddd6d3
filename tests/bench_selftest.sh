#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/bench_selftest.sh - proves that poolsrv-bench passes a correct echo
# server and catches broken ones: a byte-flipping server (mismatch), a
# stalling server (timeout), a closed port (refused), the same over UDP and
# with random message sizes (--size-min/--size-max, reproducible by --seed),
# and bad flags (exit 2); --tls against the OpenSSL echo of tests/client
# (TLS_HELPER; skipped when the build has no OpenSSL) with certificates made
# here: verified echo, handshake rate, resumption, a corrupting server, a
# refused certificate.
# Uses bench/refs/tpc-echo and bench/refs/bad-echo (and TLS_HELPER).  About
# 10 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
REFS_DIR=${REFS_DIR:-bench/refs}
TLS_HELPER=${TLS_HELPER-build/tests/client/tls-echo-helper}
# shellcheck source=bench/lib.sh
. bench/lib.sh
trap srv_cleanup EXIT

fails=0
pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; fails=$((fails + 1)); }

# run_bench ARGS...: sets OUT (the --json line) and RC.
run_bench() {
    RC=0
    OUT=$("$BENCH_BIN" --json --no-progress "$@") || RC=$?
}

# expect_usage DESC ARGS...: the bench must refuse ARGS with exit 2.
expect_usage() {
    local desc=$1 rc=0
    shift
    "$BENCH_BIN" "$@" >/dev/null 2>&1 || rc=$?
    if [[ $rc == 2 ]]; then pass "rejects $desc"; else fail "$desc: exit $rc, want 2"; fi
}

echo "bench self-test"
for bin in "$BENCH_BIN" "$REFS_DIR/tpc-echo" "$REFS_DIR/bad-echo"; do
    [[ -x $bin ]] || { echo "error: $bin not built (make bench/poolsrv-bench bench-refs)" >&2; exit 1; }
done

if "$BENCH_BIN" --self-test; then pass "histogram error bound"; else fail "histogram self-test"; fi

expect_usage "an unknown flag" --bogus 127.0.0.1:1
expect_usage "zero connections" -c 0 127.0.0.1:1
expect_usage "a bad size" -l 12q 127.0.0.1:1
expect_usage "a missing target" -c 1
expect_usage "a bad address" -c 1 127.0.0.1
expect_usage "--duration with --messages" -t 1 -m 10 127.0.0.1:1
expect_usage "--size-min without --size-max" --size-min 1 127.0.0.1:1
expect_usage "--size-min above --size-max" --size-min 10 --size-max 5 127.0.0.1:1
expect_usage "--size with --size-min/--size-max" -l 5 --size-min 1 --size-max 9 127.0.0.1:1
expect_usage "--seed without random sizes" --seed 3 127.0.0.1:1
expect_usage "a bad --size-dist" --size-dist normal --size-min 1 --size-max 9 127.0.0.1:1
expect_usage "--udp sizes above 65507" --udp --size-min 1 --size-max 65508 127.0.0.1:1

# A correct server passes: otherwise the failures below would prove nothing.
srv_start "$REFS_DIR/tpc-echo" 127.0.0.1:0
run_bench -c 4 -p 4 -t 0.5 "$SRV_ADDR"
if [[ $RC == 0 && $(json_get errors_total "$OUT") == 0 && $(json_get messages "$OUT") -gt 0 ]]; then
    pass "correct server: $(json_get messages "$OUT") messages, no errors, exit 0"
else
    fail "correct server: exit $RC: $OUT"
fi
run_bench -c 20 --connect-rate -t 0.5 "$SRV_ADDR"
if [[ $RC == 0 && $(json_get cycles "$OUT") -gt 0 ]]; then
    pass "connect-rate against a correct server"
else
    fail "connect-rate: exit $RC: $OUT"
fi
run_bench -c 2 -m 1000 -l 100k "$SRV_ADDR"
if [[ $RC == 0 && $(json_get messages "$OUT") == 1000 ]]; then
    pass "--messages 1000 of 100 KiB counted exactly"
else
    fail "--messages: exit $RC: $OUT"
fi
# Random sizes: one connection, a fixed number of messages: the same seed
# sends the same bytes, another seed other ones.
bytes=()
for seed in 5 5 6; do
    run_bench -c 1 -p 4 -m 300 --size-min 1 --size-max 1048576 --seed "$seed" "$SRV_ADDR"
    [[ $RC == 0 ]] || fail "random sizes, seed $seed: exit $RC: $OUT"
    bytes+=("$(json_get bytes "$OUT")")
done
if [[ ${bytes[0]} == "${bytes[1]}" && ${bytes[0]} != "${bytes[2]}" && ${bytes[0]} -gt 0 ]]; then
    pass "random sizes: seed 5 gives ${bytes[0]} B twice, seed 6 ${bytes[2]} B"
else
    fail "random sizes not reproducible: ${bytes[*]}"
fi
port=${SRV_ADDR##*:}
srv_stop

# A closed port: connections refused.
run_bench -c 2 -t 0.5 --timeout 1 "127.0.0.1:$port"
if [[ $RC == 1 && $(json_get err_refused "$OUT") -gt 0 ]]; then
    pass "closed port: refused=$(json_get err_refused "$OUT"), exit 1"
else
    fail "closed port: exit $RC: $OUT"
fi

# One flipped bit every 50,000 bytes.
srv_start "$REFS_DIR/bad-echo" --flip 50000 127.0.0.1:0
run_bench -c 4 -t 0.5 "$SRV_ADDR"
if [[ $RC == 1 && $(json_get err_mismatch "$OUT") -gt 0 ]]; then
    pass "flipping server: mismatch=$(json_get err_mismatch "$OUT"), exit 1"
else
    fail "flipping server not detected: exit $RC: $OUT"
fi
run_bench -c 4 -p 2 -t 0.5 --size-min 1 --size-max 1048576 "$SRV_ADDR"
if [[ $RC == 1 && $(json_get err_mismatch "$OUT") -gt 0 ]]; then
    pass "flipping server, sizes 1 B..1 MiB: mismatch=$(json_get err_mismatch "$OUT"), exit 1"
else
    fail "flipping server not detected with random sizes: exit $RC: $OUT"
fi
srv_stop

# Echoes 20,000 bytes, then goes silent with the connections open.
srv_start "$REFS_DIR/bad-echo" --stall 20000 127.0.0.1:0
run_bench -c 4 -t 1 --timeout 0.4 "$SRV_ADDR"
if [[ $RC == 1 && $(json_get err_timeout "$OUT") -gt 0 && $(json_get err_mismatch "$OUT") == 0 ]]; then
    pass "stalling server: timeout=$(json_get err_timeout "$OUT"), exit 1"
else
    fail "stalling server not detected: exit $RC: $OUT"
fi
srv_stop

srv_start "$REFS_DIR/tpc-echo" --udp 127.0.0.1:0
run_bench --udp -c 2 -p 2 -t 0.5 "$SRV_ADDR"
if [[ $RC == 0 && $(json_get messages "$OUT") -gt 0 ]]; then
    pass "udp echo"
else
    fail "udp echo: exit $RC: $OUT"
fi
srv_stop

srv_start "$REFS_DIR/bad-echo" --udp --flip 50000 127.0.0.1:0
run_bench --udp -c 2 -p 2 -t 0.5 "$SRV_ADDR"
if [[ $RC == 1 && $(json_get err_mismatch "$OUT") -gt 0 ]]; then
    pass "flipping udp server: mismatch=$(json_get err_mismatch "$OUT"), exit 1"
else
    fail "flipping udp server not detected: exit $RC: $OUT"
fi
srv_stop
srv_start "$REFS_DIR/bad-echo" --udp --flip 500000 127.0.0.1:0
run_bench --udp -c 2 -t 0.5 --size-min 1 --size-max 65507 "$SRV_ADDR"
if [[ $RC == 1 && $(json_get err_mismatch "$OUT") -gt 0 ]]; then
    pass "flipping udp server, sizes 1..65507 B: mismatch=$(json_get err_mismatch "$OUT"), exit 1"
else
    fail "flipping udp server not detected with random sizes: exit $RC: $OUT"
fi
srv_stop

srv_start "$REFS_DIR/bad-echo" --udp --stall 20000 127.0.0.1:0
run_bench --udp -c 2 -p 2 -t 0.6 --timeout 0.3 "$SRV_ADDR"
if [[ $RC == 1 && $(json_get err_timeout "$OUT") -gt 0 && $(json_get err_mismatch "$OUT") == 0 ]]; then
    pass "udp server dropping replies: timeout=$(json_get err_timeout "$OUT"), exit 1"
else
    fail "dropped udp replies not detected: exit $RC: $OUT"
fi
srv_stop

if srv_start "$REFS_DIR/tpc-echo" '[::1]:0' 2>/dev/null; then
    run_bench -c 2 -t 0.5 "$SRV_ADDR"
    if [[ $RC == 0 ]]; then pass "IPv6 $SRV_ADDR"; else fail "IPv6: exit $RC: $OUT"; fi
    srv_stop
else
    echo "  skip  IPv6 (no ::1 here)"
fi

# ------------------------------------------------------------------ --tls
expect_usage "--ca without --tls" --ca /x -c 1 127.0.0.1:1
expect_usage "--tls-resume without --tls" --tls-resume -c 1 127.0.0.1:1
if "$BENCH_BIN" --tls -c 1 127.0.0.1:1 2>&1 | grep -q "built without TLS support"; then
    expect_usage "--tls in a build without TLS" --tls -c 1 127.0.0.1:1
    echo "  skip  --tls: this bench was built without OpenSSL"
elif [[ -z $TLS_HELPER || ! -x $TLS_HELPER ]]; then
    echo "  skip  --tls: no TLS echo helper (TLS_HELPER) built"
else
    expect_usage "--tls with --udp" --tls --udp -c 1 127.0.0.1:1
    expect_usage "--tls with a --ca that does not exist" --tls --ca /nonexistent/ca.pem -c 1 127.0.0.1:1
    srv_tmpdir
    certs=$SRV_TMP/certs
    mkdir -p "$certs" && tls_make_certs "$certs"
    srv_start "$TLS_HELPER" "$certs/chain.pem" "$certs/server.key" 127.0.0.1
    run_bench --tls --ca "$certs/ca.pem" -c 4 -p 4 -t 0.5 "$SRV_ADDR"
    if [[ $RC == 0 && $(json_get handshakes "$OUT") == 4 && $(json_get messages "$OUT") -gt 0 &&
        $(json_get tls "$OUT") == true ]]; then
        pass "tls echo, certificate verified: 4 handshakes, $(json_get messages "$OUT") messages"
    else
        fail "tls echo: exit $RC: $OUT"
    fi
    run_bench --tls -c 2 -m 200 -l 100k "$SRV_ADDR"
    if [[ $RC == 0 && $(json_get messages "$OUT") == 200 ]]; then
        pass "tls --messages 200 of 100 KiB counted exactly (bytes $(json_get bytes "$OUT"))"
    else
        fail "tls --messages: exit $RC: $OUT"
    fi
    run_bench --tls --connect-rate -c 8 -t 0.5 "$SRV_ADDR"
    if [[ $RC == 0 && $(json_get cycles "$OUT") -gt 0 && $(json_get tls_resumed "$OUT") == 0 &&
        $(json_get handshakes_per_sec "$OUT") != 0.0 ]]; then
        pass "tls --connect-rate: $(json_get handshakes_per_sec "$OUT") full handshakes/s"
    else
        fail "tls --connect-rate: exit $RC: $OUT"
    fi
    run_bench --tls --tls-resume --connect-rate -c 8 -t 0.5 "$SRV_ADDR"
    if [[ $RC == 0 && $(json_get tls_resumed "$OUT") -gt 0 ]]; then
        pass "tls --tls-resume: $(json_get tls_resumed "$OUT") of $(json_get handshakes "$OUT") resumed"
    else
        fail "tls --tls-resume: exit $RC: $OUT"
    fi
    run_bench --tls --ca "$certs/self.pem" -c 2 -t 0.5 --timeout 1 "$SRV_ADDR"
    if [[ $RC == 1 && $(json_get err_tls "$OUT") -gt 0 ]]; then
        pass "tls --ca of another CA: certificate refused, tls=$(json_get err_tls "$OUT"), exit 1"
    else
        fail "tls with the wrong CA not refused: exit $RC: $OUT"
    fi
    run_bench --tls --ca "$certs/ca.pem" --sni wrong.example -c 2 -t 0.5 --timeout 1 "$SRV_ADDR"
    if [[ $RC == 1 && $(json_get err_tls "$OUT") -gt 0 ]]; then
        pass "tls --sni wrong.example: name refused, exit 1"
    else
        fail "tls with the wrong name not refused: exit $RC: $OUT"
    fi
    srv_stop

    srv_start "$TLS_HELPER" --flip 50000 "$certs/chain.pem" "$certs/server.key" 127.0.0.1
    run_bench --tls -c 4 -t 0.5 "$SRV_ADDR"
    if [[ $RC == 1 && $(json_get err_mismatch "$OUT") -gt 0 ]]; then
        pass "tls server flipping a bit: mismatch=$(json_get err_mismatch "$OUT"), exit 1"
    else
        fail "tls flipping server not detected: exit $RC: $OUT"
    fi
    srv_stop

    srv_start "$REFS_DIR/tpc-echo" 127.0.0.1:0
    run_bench --tls -c 2 -t 0.5 --timeout 1 "$SRV_ADDR"
    if [[ $RC == 1 && $(json_get err_tls "$OUT") -gt 0 ]]; then
        pass "tls against a plain echo server: tls=$(json_get err_tls "$OUT"), exit 1"
    else
        fail "tls against a plain server: exit $RC: $OUT"
    fi
    srv_stop
fi

if ((fails)); then
    echo "bench self-test: $fails FAILED"
    exit 1
fi
echo "bench self-test: all passed"

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/proxy/run.sh - poolsrv-proxy end to end, on loopback: forwarding
# verified by poolsrv-bench, half-close in both orders with 1 MiB after the
# EOF, a backend reset, a client that never reads (the proxy pauses the
# backend and stays small), failover past a refused backend, --send-proxy
# against poolsrv-echo's proxy: listener, 2,000 concurrent clients, and the
# drain with pairs open.
#
# Environment: PROXY_BIN, ECHO_BIN, BENCH_BIN, PEER_BIN (defaults: a normal
# build).  Every server listens on 127.0.0.1 port 0 and is stopped by its
# PID; every wait is bounded.  Last line: "proxy: N passed, N failed"; the
# exit status is non-zero if any check failed.

set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh # term_wait, start_announced

PROXY_BIN=${PROXY_BIN:-server/examples/poolsrv-proxy}
ECHO_BIN=${ECHO_BIN:-server/poolsrv-echo}
BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
PEER_BIN=${PEER_BIN:-build/tests/proxy/peer}
READY_LIMIT=10
PASSED=0
FAILED=0
PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/poolsrv-proxy-test.XXXXXX") || exit 1
trap pids_cleanup EXIT
trap 'exit 130' INT TERM
exec </dev/null

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $1"
    shift
    local l
    for l in "$@"; do sed 's/^/     /' <<<"$l"; done
}

for b in "$PROXY_BIN" "$ECHO_BIN" "$BENCH_BIN" "$PEER_BIN"; do
    [[ -x $b ]] || {
        echo "proxy: $b is missing: run make"
        exit 1
    }
done

# proxy_to BACKEND_PORT [ARGS...]: start a proxy in front of it; sets
# PPORT and PPID.
proxy_to() {
    local be=$1
    shift
    start_announced "proxy$be" "$PROXY_BIN" --listen 127.0.0.1:0 --backend "127.0.0.1:$be" "$@" ||
        return 1
    PPORT=$PORT PPID_=$PID
}

# backend_peer MODE: start a peer backend; sets BPORT, BPID, BOUT.
backend_peer() {
    BOUT=$TMP/backend-$1.out
    "$PEER_BIN" backend "$1" >"$BOUT" 2>&1 &
    BPID=$!
    PIDS+=("$BPID")
    BPORT=""
    for ((i = 0; i < READY_LIMIT * 20; i++)); do
        BPORT=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$BOUT")
        [[ -n $BPORT ]] && return 0
        sleep 0.05
    done
    return 1
}

# wait_line FILE REGEX: until FILE has a matching line (bounded).
wait_line() {
    for ((i = 0; i < READY_LIMIT * 20; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# ---------------------------------------------------------- forwarding

start_announced echo "$ECHO_BIN" --listen 127.0.0.1:0 --workers 2 || {
    echo "proxy: poolsrv-echo did not start"
    exit 1
}
ECHO_PORT=$PORT
proxy_to "$ECHO_PORT" --workers 2 || {
    echo "proxy: poolsrv-proxy did not start: $(cat "$TMP"/proxy*.err)"
    exit 1
}
MAIN_PORT=$PPORT MAIN_PID=$PPID_

for load in "-c 50 -p 1 -l 64" "-c 10 -p 4 -l 16k" "-c 4 --size-min 1 --size-max 1m" \
    "--connect-rate -c 20"; do
    # shellcheck disable=SC2086
    out=$(timeout 60 "$BENCH_BIN" $load -t 1 "127.0.0.1:$MAIN_PORT" 2>&1)
    if grep -q '^result *OK' <<<"$out"; then
        pass "every byte through the proxy: poolsrv-bench $load"
    else
        fail "every byte through the proxy: poolsrv-bench $load" "$(tail -4 <<<"$out")"
    fi
done

out=$(timeout 60 "$BENCH_BIN" -c 2000 -p 1 -l 64 -t 2 --max-connecting 256 "127.0.0.1:$MAIN_PORT" 2>&1)
if grep -q '^result *OK' <<<"$out"; then
    pass "2,000 concurrent clients through the proxy, every byte checked"
else
    fail "2,000 concurrent clients through the proxy" "$(tail -4 <<<"$out")"
fi

# ------------------------------------------------------------ half-close

out=$(timeout 30 "$PEER_BIN" client "$MAIN_PORT" first 2>&1)
if [[ $out == ok* ]]; then
    pass "client half-closes first: its 1 MiB comes back through the echo, then EOF"
else
    fail "client half-closes first" "$out"
fi

backend_peer first && proxy_to "$BPORT" || fail "backend peer and its proxy start"
out=$(timeout 30 "$PEER_BIN" client "$PPORT" second 2>&1)
wait_line "$BOUT" '^ok\|^FAIL'
if [[ $out == ok* ]] && grep -q '^ok' "$BOUT"; then
    pass "backend half-closes first: 1 MiB to the client, then 1 MiB back after the EOF"
else
    fail "backend half-closes first" "client: $out" "backend: $(cat "$BOUT")"
fi
term_wait "$PPID_" 5

# ----------------------------------------------------------------- reset

backend_peer reset && proxy_to "$BPORT" || fail "reset backend and its proxy start"
out=$(timeout 30 "$PEER_BIN" client "$PPORT" reset 2>&1)
if [[ $out == ok* ]]; then
    pass "a backend reset mid-stream closes the client side"
else
    fail "a backend reset mid-stream closes the client side" "$out"
fi
term_wait "$PPID_" 5

# ---------------------------------------------- a client that never reads

backend_peer flood && proxy_to "$BPORT" || fail "flood backend and its proxy start"
rss0=$(rss_kib "$PPID_")
coproc IDLE { "$PEER_BIN" client "$PPORT" idle; }
idle_pid=$IDLE_PID # bash unsets IDLE_PID when the coprocess ends
PIDS+=("$idle_pid")
if wait_line "$BOUT" '^ok flood stalled'; then
    flooded=$(sed -n 's/^ok flood stalled after \([0-9]*\) bytes$/\1/p' "$BOUT")
    rss1=$(rss_kib "$PPID_")
    grow=$(((rss1 - rss0) / 1024))
    # the proxy holds about 2 MiB; the rest sits in the kernel's socket buffers
    if ((flooded < 64 * 1024 * 1024 && grow <= 8)); then
        pass "a client that never reads pauses the backend ($((flooded >> 20)) MiB sent, proxy RSS +$grow MiB)"
    else
        fail "a client that never reads pauses the backend" "backend sent $flooded bytes" \
            "proxy RSS $rss0 -> $rss1 KiB"
    fi
else
    fail "a client that never reads pauses the backend" "the backend never stalled: $(cat "$BOUT")"
fi
exec {IDLE[1]}>&-
term_wait "$idle_pid" 5
term_wait "$BPID" 5
term_wait "$PPID_" 5

# ------------------------------------------------------------- failover

# A backend port that refuses (bound once, released), then the echo.
start_announced probe "$ECHO_BIN" --listen 127.0.0.1:0 || fail "probe port"
DEAD=$PORT
term_wait "$PID" 5
start_announced failover "$PROXY_BIN" --listen 127.0.0.1:0 --backend "127.0.0.1:$DEAD" \
    --backend "127.0.0.1:$ECHO_PORT" || fail "failover proxy starts"
ok=0
for i in 1 2 3 4; do
    got=$(timeout 10 client/poolsrv-client --timeout 5 127.0.0.1 "$PORT" "try $i" 2>&1)
    [[ $got == "try $i" ]] && ok=$((ok + 1))
done
if ((ok == 4)); then
    pass "a refused backend is skipped: 4 of 4 clients answered by the other"
else
    fail "a refused backend is skipped" "$ok of 4 answered"
fi
term_wait "$PID" 5

# One backend that refuses: the client is retried on it --retries times,
# then closed, and the proxy says why (once a second at most).
for r in 2 default; do
    args=(--listen 127.0.0.1:0 --backend "127.0.0.1:$DEAD")
    want=4
    [[ $r == default ]] || args+=(--retries "$r") want=$((r + 1))
    start_announced "retries$r" "$PROXY_BIN" "${args[@]}" || fail "retries proxy ($r) starts"
    got=$(timeout 10 client/poolsrv-client --timeout 5 127.0.0.1 "$PORT" "hello" 2>&1)
    term_wait "$PID" 5
    line=$(grep 'no backend connected' "$TMP/retries$r.err")
    if [[ $got == *"closed by"* && $line == *"after $want attempts (last: refused)"* ]]; then
        pass "retries $r: $want connects to a refused backend, then the client is closed"
    else
        fail "retries $r: $want connects to a refused backend, then the client is closed" \
            "client: $got" "proxy: $(cat "$TMP/retries$r.err")"
    fi
done
out=$("$PROXY_BIN" --backend 127.0.0.1:1 --retries 101 2>&1)
rc=$?
if ((rc == 2)) && [[ $out == *"invalid --retries value '101'"* ]]; then
    pass "--retries 101 is refused by name"
else
    fail "--retries 101 is refused by name" "exit $rc: $out"
fi

# ------------------------------------------------------------ send-proxy

start_announced pecho "$ECHO_BIN" --listen proxy:127.0.0.1:0 --workers 1 || fail "proxy: listener"
PECHO=$PORT
start_announced sendproxy "$PROXY_BIN" --listen 127.0.0.1:0 --backend "127.0.0.1:$PECHO" \
    --send-proxy || fail "--send-proxy proxy starts"
got=$(timeout 10 client/poolsrv-client --timeout 5 127.0.0.1 "$PORT" "behind a proxy" 2>&1)
if [[ $got == "behind a proxy" ]]; then
    pass "--send-proxy: a PROXY v2 header that poolsrv-echo's proxy: listener accepts"
else
    fail "--send-proxy" "got '$got'" "$(cat "$TMP/pecho.err")"
fi

# ----------------------------------------------------------------- drain

coproc HOLD { "$PEER_BIN" client "$MAIN_PORT" idle; }
hold_pid=$HOLD_PID
PIDS+=("$hold_pid")
read -r -t 5 line <&"${HOLD[0]}"
kill -TERM "$MAIN_PID"
got=$(timeout 10 "$BENCH_BIN" -c 1 --messages 1 -t 2 "127.0.0.1:$MAIN_PORT" 2>&1 | grep -c '^result *OK')
if [[ $line == connected ]] && kill -0 "$MAIN_PID" 2>/dev/null && ((got == 0)); then
    pass "stopping: new clients refused, the open pair keeps the proxy draining"
else
    fail "stopping: new clients refused, the open pair keeps the proxy draining" "line '$line' got $got"
fi
exec {HOLD[1]}>&-
term_wait "$hold_pid" 5
for ((i = 0; i < 200; i++)); do # by itself, within 10 s (the drain lasts 5 s at most)
    kill -0 "$MAIN_PID" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$MAIN_PID" 2>/dev/null; then
    term_wait "$MAIN_PID" 1
    STOP_STATUS="still running 10 s after its last pair ($STOP_STATUS)"
else
    wait "$MAIN_PID"
    STOP_STATUS=$?
fi
if [[ $STOP_STATUS == 0 ]]; then
    pass "the proxy exits 0 once its last pair is gone"
else
    fail "the proxy exits 0 once its last pair is gone" "status $STOP_STATUS"
fi

echo "proxy: $PASSED passed, $FAILED failed"
((FAILED == 0))

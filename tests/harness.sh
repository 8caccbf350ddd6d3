# SPDX-License-Identifier: MIT
# tests/harness.sh - sourced by the shell suites: PASS/FAIL counters, a
# temporary directory, the PIDs this suite started (killed, and the
# directory removed, at exit), and the ok/fail lines every suite prints.
PASS=0
FAIL=0
TMP=$(mktemp -d)
PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok   $1"; }
fail() { FAIL=$((FAIL + 1)); echo "FAIL $1${2:+: $2}"; }

# start_server NAME BIN ARGS...: run a server that prints "listening on
# 127.0.0.1:PORT" first, output in $TMP/NAME.out and .err, and wait for that
# line; sets PID and PORT (false if it exited or 10 s passed first).
start_server() {
    local name=$1 bin=$2 i
    shift 2
    "$bin" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PID=$!
    PIDS+=("$PID")
    PORT=""
    for ((i = 0; i < 200; i++)); do
        PORT=$(sed -n '1s/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/$name.out" 2>/dev/null)
        [[ -n $PORT ]] && return 0
        kill -0 "$PID" 2>/dev/null || return 1
        read -r -t 0.05 <> <(:) || true
    done
    return 1
}

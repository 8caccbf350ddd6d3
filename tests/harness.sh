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

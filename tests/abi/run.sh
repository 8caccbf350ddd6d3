#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/abi/run.sh - `make abi-check` applies the rules of docs/abi.md: in a
# scratch copy of the tree, each case below changes the public header (and
# the library to match), rebuilds, and expects abi-check to pass or fail.
# About 10 library builds: run by `make test-abi` (not part of `make test`).
# Needs abidw/abidiff (abigail-tools); skips without them.  Last line:
# "abi: N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
MAKE=${MAKE:-make}
if ! command -v abidw >/dev/null 2>&1 || ! command -v abidiff >/dev/null 2>&1; then
    echo "skip: abidw/abidiff are not installed (apt-get install abigail-tools)"
    echo "abi: 0 passed, 0 failed"
    exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/poolsrv-abi-test.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
# the tree as it is now (tracked and new files), without build outputs
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$TMP" -xf - || exit 1
H=lib/include/poolsrv.h
cp "$TMP/$H" "$TMP/header.orig"
cp "$TMP/lib/src/conn.c" "$TMP/conn.orig"

PASSED=0
FAILED=0

# edit FILE OLD NEW: replace the first OLD (must exist) by NEW in FILE.
edit() {
    python3 - "$TMP/$1" "$2" "$3" <<'PY' || exit 1
import sys
p, old, new = sys.argv[1:]
s = open(p).read()
if old not in s:
    sys.exit("tests/abi/run.sh: '%s' not found in %s" % (old, p))
open(p, "w").write(s.replace(old, new, 1))
PY
}

# case EXPECT NAME: run abi-check on the edited copy; EXPECT is pass/fail.
case_() {
    local expect=$1 name=$2 got
    # a pass says so; a fail must be abi-check's verdict, not a build error
    (cd "$TMP" && "$MAKE" -s --no-print-directory abi-check) >"$TMP/out" 2>&1
    if grep -q '^abi-check: libpoolsrv.so.* is compatible' "$TMP/out"; then
        got=pass
    elif grep -q '^abi-check: FAIL' "$TMP/out"; then
        got=fail
    else
        got=error
    fi
    if [[ $got == "$expect" ]]; then
        PASSED=$((PASSED + 1))
        echo "ok   $name: abi-check: $got"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $name: abi-check: $got, expected $expect"
        tail -n 15 "$TMP/out" | sed 's/^/     | /'
    fi
    cp "$TMP/header.orig" "$TMP/$H"
    cp "$TMP/conn.orig" "$TMP/lib/src/conn.c"
}

case_ pass "unchanged"
edit $H '    ps_log_level log_level;' '    ps_log_level log_level; int appended;'
case_ pass "member appended to ps_config"
edit $H '    size_t busy_len;
} ps_handler;' '    size_t busy_len;
    void (*on_appended)(ps_conn *c, void *user);
} ps_handler;'
case_ pass "callback appended to ps_handler"
edit $H '    uint64_t output_closes;' '    uint64_t output_closes; uint64_t appended;'
case_ pass "counter appended to ps_stats"
edit $H 'PS_EXTERN int ps_conn_fd(const ps_conn *c);' \
    'PS_EXTERN int ps_conn_fd(const ps_conn *c); PS_EXTERN int ps_conn_fd2(const ps_conn *c);'
printf 'int ps_conn_fd2(const ps_conn *c) { return ps_conn_fd(c); }\n' >>"$TMP/lib/src/conn.c"
case_ pass "function added"
edit $H '    int backlog;' '    int inserted; int backlog;'
case_ fail "member inserted in the middle of ps_config"
edit $H '    ps_log_level log_level;' '    long log_level; int appended;'
case_ fail "ps_config member retyped (and one appended)"
edit $H '    char msg[256];' '    char msg[256]; int line;'
case_ fail "member appended to ps_err (fixed layout)"
edit $H '    uint64_t id;' '    uint64_t id; uint64_t gen;'
case_ fail "member appended to ps_conn_ref (passed by value)"
edit $H 'PS_EXTERN int ps_conn_fd(const ps_conn *c);' 'PS_EXTERN long ps_conn_fd(const ps_conn *c);'
edit lib/src/conn.c 'int ps_conn_fd(const ps_conn *c)' 'long ps_conn_fd(const ps_conn *c)'
case_ fail "return type changed"
edit $H 'PS_EXTERN int ps_conn_fd(const ps_conn *c);' ''
edit lib/src/conn.c 'int ps_conn_fd(const ps_conn *c)' '__attribute__((unused)) static int ps_conn_fd_gone(const ps_conn *c)'
case_ fail "function removed"

echo "abi: $PASSED passed, $FAILED failed"
((FAILED == 0))

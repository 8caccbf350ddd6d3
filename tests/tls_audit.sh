#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/tls_audit.sh - testssl.sh against poolsrv-echo on a tls: listener;
# fails on any HIGH or CRITICAL finding (or a FATAL one: the scan itself
# failed).  Run by `make test-tls-audit` (CI runs it after `make test`; it
# takes minutes, so it is not part of `make test`).
#
# The certificate is a throw-away ECDSA P-256 one from a test CA made here
# (bench/lib.sh tls_make_certs), valid for 200 days (testssl rates a
# certificate that expires within 30 days HIGH), for localhost and
# 127.0.0.1; testssl is told to trust the test CA (--add-ca) and scans
# localhost:PORT at 127.0.0.1, so the chain and the name are checked as a
# client would.  poolsrv-echo is not an HTTP server, so testssl's HTTP header
# checks do not apply.
#
# Environment: ECHO (default server/poolsrv-echo), TESTSSL (default testssl,
# else testssl.sh), AUDIT_LIMIT=900 (seconds for the whole scan).  The
# flat JSON of the scan and testssl's output are kept in AUDIT_KEEP (a
# directory) when set.  Loopback only.  Exit 0 if no HIGH or CRITICAL
# finding, 1 otherwise or if anything failed.
set -u
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh

ECHO=${ECHO:-server/poolsrv-echo}
AUDIT_LIMIT=${AUDIT_LIMIT:-900}
READY_LIMIT=10
PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/poolsrv-tls-audit.XXXXXX") || exit 1
trap pids_cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "tls-audit: $*" >&2
    exit 1
}

find_testssl() {
    local t
    for t in ${TESTSSL:-} testssl testssl.sh /usr/bin/testssl; do
        command -v "$t" 2>/dev/null && return 0
    done
    return 1
}

[[ -x $ECHO ]] || die "$ECHO is missing: run make first"
"$ECHO" --help 2>&1 | grep -q -- --tls-cert ||
    die "$ECHO has no --tls-cert: it was built without TLS (OpenSSL, libssl-dev)"
TESTSSL=$(find_testssl) || { apt_ensure tls-audit testssl.sh && TESTSSL=$(find_testssl); } ||
    die "testssl.sh is needed (Debian package testssl.sh)"
command -v openssl >/dev/null || die "openssl(1) is needed to make the test certificates"

{ mkdir -p "$TMP/certs" && TLS_CERT_DAYS=200 tls_make_certs "$TMP/certs"; } ||
    die "could not make the test certificates"
start_announced echo "$ECHO" --listen tls:127.0.0.1:0 --tls-cert "$TMP/certs/chain.pem" \
    --tls-key "$TMP/certs/server.key" ||
    die "poolsrv-echo did not announce a tls: listener within ${READY_LIMIT}s"
ECHO_PID=$PID

echo "tls-audit: testssl $("$TESTSSL" --version 2>/dev/null | sed -n 's/^ *testssl[.sh]* *\([0-9][^ ]*\).*/\1/p' | head -1)" \
    "against $ECHO on localhost:$PORT (127.0.0.1), at most ${AUDIT_LIMIT}s"
t0=$SECONDS
timeout -k 10 "$AUDIT_LIMIT" "$TESTSSL" --quiet --color 0 --warnings off --ip 127.0.0.1 \
    --add-ca "$TMP/certs/ca.pem" --connect-timeout 10 --openssl-timeout 10 \
    --jsonfile "$TMP/audit.json" "localhost:$PORT" >"$TMP/audit.log" 2>&1
rc=$?
echo "tls-audit: testssl exit status $rc after $((SECONDS - t0)) s"
[[ -n ${AUDIT_KEEP:-} ]] && mkdir -p "$AUDIT_KEEP" && cp "$TMP/audit.json" "$TMP/audit.log" "$AUDIT_KEEP/"
((rc == 124 || rc == 137)) && die "testssl did not finish within ${AUDIT_LIMIT}s"
[[ -s $TMP/audit.json ]] || die "testssl wrote no JSON: $(tail -5 "$TMP/audit.log")"

# The flat JSON has one finding per object, one field per line:
#   "id" : "...", "severity" : "...", "finding" : "..."
# Print "SEVERITY id: finding" for each.
awk '
    /"id"[ \t]*:/       { id = $0; sub(/^[^:]*:[ \t]*"/, "", id); sub(/",?[ \t]*$/, "", id) }
    /"severity"[ \t]*:/ { sev = $0; sub(/^[^:]*:[ \t]*"/, "", sev); sub(/",?[ \t]*$/, "", sev) }
    /"finding"[ \t]*:/  { f = $0; sub(/^[^:]*:[ \t]*"/, "", f); sub(/",?[ \t]*$/, "", f)
                          print sev, id ": " f }
' "$TMP/audit.json" >"$TMP/findings"

# The scan must have reached the protocols: otherwise it proved nothing.
{ grep -qE '^[A-Z]+ TLS1_2: ' "$TMP/findings" && grep -qE '^[A-Z]+ TLS1_3: ' "$TMP/findings"; } ||
    die "the scan did not report on TLS 1.2 and 1.3: $(tail -5 "$TMP/audit.log")"

echo "tls-audit: findings by severity: $(awk '{n[$1]++} END {for (s in n) printf "%s %d  ", s, n[s]}' \
    "$TMP/findings")"
grep -E '^(MEDIUM|LOW) ' "$TMP/findings" | sed 's/^/  note: /'
bad=$(grep -cE '^(HIGH|CRITICAL|FATAL) ' "$TMP/findings")
grep -E '^(HIGH|CRITICAL|FATAL) ' "$TMP/findings" | sed 's/^/  FAIL: /'

kill -0 "$ECHO_PID" 2>/dev/null || die "poolsrv-echo died during the scan: $(tail -5 "$TMP/echo.err")"
stop_pid "$ECHO_PID"
[[ $STOP_STATUS == 0 ]] || die "poolsrv-echo exited with $STOP_STATUS after SIGTERM"
if ((bad)); then
    echo "tls-audit: $bad HIGH/CRITICAL/FATAL finding(s): FAILED"
    exit 1
fi
echo "tls-audit: no HIGH or CRITICAL finding: OK"

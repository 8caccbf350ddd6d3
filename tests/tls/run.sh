#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/tls/run.sh - poolsrv-echo and poolsrv-http on tls: listeners against
# the openssl and curl command-line clients: echo over s_client in both
# styles, TLS 1.1 refused, renegotiation ('R' in s_client) refused, HTTPS
# with curl --cacert (ALPN http/1.1), SIGHUP swapping the certificate for
# new connections while an open one goes on, and the operator's errors
# (tls: without --tls-cert, an unreadable key).  Certificates (ECDSA P-256)
# are made here with openssl, into a temporary directory.  Loopback only,
# ephemeral ports, bounded waits; processes stopped by PID.  Skips (exit 0)
# when the build has no TLS or openssl/curl are missing.
set -u

ECHO=${ECHO:-server/poolsrv-echo}
HTTP=${HTTP:-server/examples/poolsrv-http}
# shellcheck source=tests/harness.sh
. "$(dirname "$0")/../harness.sh"

for tool in openssl curl; do
    if ! command -v $tool >/dev/null; then
        echo "skip tls tests: no $tool (apt-get install openssl curl)"
        exit 0
    fi
done
if ! "$ECHO" --help | grep -q -- --tls-cert || { "$ECHO" --listen tls:127.0.0.1:0 --tls-cert /dev/null \
    --tls-key /dev/null 2>&1 | grep -q "without TLS support"; }; then
    if [[ ${CI:-} == true ]]; then # CI installs libssl-dev: a build without TLS is a defect
        echo "FAIL poolsrv built without TLS support under CI (libssl-dev is installed)"
        echo "tls: 0 passed, 1 failed"
        exit 1
    fi
    echo "skip tls tests: poolsrv built without TLS support (apt-get install libssl-dev)"
    exit 0
fi

# cert NAME CN: an ECDSA P-256 key and a certificate signed by the test CA.
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/ca.key" 2>/dev/null
openssl req -new -x509 -key "$TMP/ca.key" -out "$TMP/ca.pem" -days 2 -subj "/CN=poolsrv test CA" \
    2>/dev/null
cert() {
    openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/$1.key" 2>/dev/null
    openssl req -new -key "$TMP/$1.key" -subj "/CN=$2" -out "$TMP/$1.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s,IP:127.0.0.1\n' "$2" >"$TMP/$1.ext"
    openssl x509 -req -in "$TMP/$1.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
        -days 2 -extfile "$TMP/$1.ext" -out "$TMP/$1.pem" 2>/dev/null
}
cert a localhost
cert b localhost
cp "$TMP/a.pem" "$TMP/srv.pem"
cp "$TMP/a.key" "$TMP/srv.key"

stop() {
    kill -TERM "$1" 2>/dev/null
    timeout 10 tail --pid="$1" -f /dev/null
}

# sclient PORT ARGS...: openssl s_client verifying against the test CA.
sclient() {
    local port=$1
    shift
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
        -CAfile "$TMP/ca.pem" -verify_return_error "$@"
}

# session_open NAME PORT ARGS...: sclient in the background, its input a
# FIFO held open on fd 7 (write lines with >&7), its output in
# $TMP/NAME.out and $TMP/NAME.err; sets SESSION_PID.
session_open() {
    local name=$1 port=$2
    shift 2
    rm -f "$TMP/$name.in"
    mkfifo "$TMP/$name.in"
    (sclient "$port" "$@" <"$TMP/$name.in" >"$TMP/$name.out" 2>"$TMP/$name.err") &
    SESSION_PID=$!
    exec 7>"$TMP/$name.in"
}

# session_wait NAME PATTERN: until the session's output (either stream)
# has a line matching PATTERN (grep -E); false if s_client ended or 5 s
# passed first.
session_wait() {
    local i
    for ((i = 0; i < 100; i++)); do
        cat "$TMP/$1.out" "$TMP/$1.err" 2>/dev/null | grep -qE -- "$2" && return 0
        kill -0 "$SESSION_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# session_close: end the input; s_client ends at its end.
session_close() {
    exec 7>&-
    wait "$SESSION_PID"
}

# fingerprint of the certificate a new connection gets
served_fp() {
    sclient "$1" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null
}

for mode in event blocking; do
    if ! start_server "echo-$mode" "$ECHO" --mode "$mode" --listen tls:127.0.0.1:0 --tls-cert "$TMP/srv.pem" \
        --tls-key "$TMP/srv.key" --log-level info; then
        fail "$mode: poolsrv-echo starts on tls:" "$(cat "$TMP/echo-$mode.err")"
        continue
    fi
    session_open "hello-$mode" "$PORT" -quiet -no_ign_eof
    echo "hello over tls" >&7
    session_wait "hello-$mode" '^hello over tls$'
    session_close
    out=$(cat "$TMP/hello-$mode.out")
    if [[ $out == "hello over tls" ]]; then ok "$mode: s_client echo"; else
        fail "$mode: s_client echo" "got '$out'"
    fi
    if sclient "$PORT" -tls1_1 </dev/null >"$TMP/t11" 2>&1; then
        fail "$mode: TLS 1.1 refused" "$(tail -3 "$TMP/t11")"
    else ok "$mode: TLS 1.1 refused"; fi
    # 'R' asks s_client to renegotiate (TLS 1.2); the server refuses, so no
    # second handshake completes and the line after it is not echoed
    # (s_client gives up on the refusal: its exit ends the wait).
    session_open "reneg-$mode" "$PORT" -tls1_2
    echo first >&7
    session_wait "reneg-$mode" '^first$'
    echo R >&7
    # s_client gives up on the refusal and exits; one that did not would
    # get "second" now (in a subshell: a pipe with no reader ends only that)
    if ! session_wait "reneg-$mode" 'no renegotiation'; then
        (echo second >&7) 2>/dev/null
        session_wait "reneg-$mode" '^second$'
    fi
    session_close
    out=$(cat "$TMP/reneg-$mode.out" "$TMP/reneg-$mode.err")
    if [[ $out == *RENEGOTIATING* && $out == *first* && $out != *$'\n'second* ]]; then
        ok "$mode: renegotiation refused"
    else
        fail "$mode: renegotiation refused" "$(echo "$out" | tail -5 | tr '\n' '|')"
    fi
    # SIGHUP: the files now hold certificate b; an open connection stays.
    fa=$(served_fp "$PORT")
    session_open "open-$mode" "$PORT" -quiet -no_ign_eof
    echo "before" >&7
    cp "$TMP/b.pem" "$TMP/srv.pem"
    cp "$TMP/b.key" "$TMP/srv.key"
    kill -HUP "$PID"
    for ((i = 0; i < 100; i++)); do
        grep -q "certificates reloaded" "$TMP/echo-$mode.err" && break
        sleep 0.05
    done
    fb=$(served_fp "$PORT")
    echo "after" >&7
    session_wait "open-$mode" '^after$' # its echo came back
    session_close
    want_b=$(openssl x509 -in "$TMP/b.pem" -noout -fingerprint -sha256)
    if [[ -n $fa && $fb == "$want_b" && $fa != "$fb" ]]; then ok "$mode: SIGHUP serves the new certificate"
    else fail "$mode: SIGHUP serves the new certificate" "before '$fa' after '$fb'"; fi
    if [[ $(tr '\n' ' ' <"$TMP/open-$mode.out") == "before after " ]]; then
        ok "$mode: a connection open across SIGHUP goes on"
    else fail "$mode: a connection open across SIGHUP goes on" "$(cat "$TMP/open-$mode.out")"; fi
    # a reload from a broken key keeps the certificate
    echo garbage >"$TMP/srv.key"
    kill -HUP "$PID"
    for ((i = 0; i < 100; i++)); do
        grep -q "not reloaded" "$TMP/echo-$mode.err" && break
        sleep 0.05
    done
    if grep -q "not reloaded.*srv.key" "$TMP/echo-$mode.err" && [[ $(served_fp "$PORT") == "$want_b" ]]; then
        ok "$mode: a failed reload is logged and keeps serving"
    else fail "$mode: a failed reload is logged and keeps serving" "$(tail -2 "$TMP/echo-$mode.err")"; fi
    cp "$TMP/a.pem" "$TMP/srv.pem"
    cp "$TMP/a.key" "$TMP/srv.key"
    stop "$PID"
done

# poolsrv-http over HTTPS with curl: verified against the CA, ALPN http/1.1
if start_server http "$HTTP" --listen tls:127.0.0.1:0 --tls-cert "$TMP/a.pem" --tls-key "$TMP/a.key" \
    --tls-alpn http/1.1; then
    out=$(timeout 10 curl -sS --cacert "$TMP/ca.pem" -o "$TMP/body" -w '%{http_code} %{http_version}' \
        "https://localhost:$PORT/" --resolve "localhost:$PORT:127.0.0.1" 2>&1)
    if [[ $out == "200 1.1" && -s $TMP/body ]]; then ok "curl --cacert https:// to poolsrv-http"; else
        fail "curl --cacert https:// to poolsrv-http" "$out"
    fi
    out=$(timeout 10 curl -sS -o /dev/null "https://localhost:$PORT/" \
        --resolve "localhost:$PORT:127.0.0.1" 2>&1)
    if [[ $out == *"certificate"* ]]; then ok "curl without the CA refuses the certificate"; else
        fail "curl without the CA refuses the certificate" "$out"
    fi
    stop "$PID"
else
    fail "poolsrv-http starts on tls:" "$(cat "$TMP/http.err")"
fi

# operator errors
timeout 5 "$ECHO" --listen tls:127.0.0.1:0 >"$TMP/o" 2>"$TMP/e"
rc=$?
if [[ $rc == 2 ]] && grep -q "needs --tls-cert and --tls-key" "$TMP/e"; then ok "tls: without --tls-cert: exit 2"
else fail "tls: without --tls-cert: exit 2" "exit $rc: $(cat "$TMP/e")"; fi
timeout 5 "$ECHO" --listen tls:127.0.0.1:0 --tls-cert "$TMP/a.pem" --tls-key "$TMP/nonexistent.key" \
    >"$TMP/o" 2>"$TMP/e"
rc=$?
if [[ $rc == 1 ]] && grep -q "nonexistent.key: No such file" "$TMP/e"; then ok "missing key file named: exit 1"
else fail "missing key file named: exit 1" "exit $rc: $(cat "$TMP/e")"; fi

echo "tls: $PASS passed, $FAIL failed"
[[ $FAIL == 0 ]]

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/client/run.sh - poolsrv-client against poolsrv-echo (TCP over IPv4 and
# IPv6; Unix socket and UDP when it supports them) and the test-only servers
# of tests/client/echo_helper.c (Unix and UDP echo, servers that drop, never
# answer or never accept).  gai_shim.so gives a test name two addresses.
# --tls runs against tests/client/tls_echo_helper.c (OpenSSL, not libpoolsrv)
# with certificates made here, and against poolsrv-echo's tls: listener once
# it has one.
# Run by `make test-client` (and so by `make test`).
#
# Environment: CLIENT, ECHO_SERVER, HELPER, SHIM, TLS_HELPER name the binaries
# (defaults: the paths of a normal build; TLS_HELPER empty: a build without
# OpenSSL, whose --tls must refuse with exit 2).  Only loopback addresses and ephemeral ports are
# used; every client run is limited by timeout(1); every server started here
# is stopped by its PID.  Last line: "client: N passed, N failed"; the exit
# status is non-zero if any test failed.

set -u
cd "$(dirname "$0")/../.." || exit 1

CLIENT=${CLIENT:-client/poolsrv-client}
ECHO_SERVER=${ECHO_SERVER:-server/poolsrv-echo}
HELPER=${HELPER:-build/tests/client/echo-helper}
SHIM=${SHIM:-build/tests/client/gai_shim.so}
TLS_HELPER=${TLS_HELPER-build/tests/client/tls-echo-helper}
RUN_LIMIT=30   # seconds any one client run may take
READY_LIMIT=10 # seconds a server may take to print "listening on"

PASSED=0
FAILED=0
SERVER_PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/poolsrv-client-test.XXXXXX") || exit 1

# stop_pid PID (sets STOP_STATUS): SIGTERM, a bounded join, then SIGKILL.
# shellcheck source=bench/lib.sh
. bench/lib.sh

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        stop_pid "$pid"
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

exec </dev/null

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}

# fail NAME [DETAIL...]
fail() {
    local line
    FAILED=$((FAILED + 1))
    echo "FAIL $1"
    shift
    for line in "$@"; do
        echo "       $line"
    done
}

skip() {
    echo "skip $1"
}

for bin in "$CLIENT" "$ECHO_SERVER" "$HELPER"; do
    if [[ ! -x $bin ]]; then
        echo "client: $bin is missing: run make first" >&2
        echo "client: 0 passed, 1 failed"
        exit 1
    fi
done

# start_server NAME NLINES CMD...: start CMD in the background and wait (at
# most READY_LIMIT s) for NLINES "listening on ADDR" lines.  Sets SRV_PID,
# SRV_FD (its stdout, still open for later lines) and SRV_ADDRS.
start_server() {
    local name=$1 want=$2 line waited=0
    shift 2
    mkfifo "$TMP/$name.fifo" || return 1
    "$@" >"$TMP/$name.fifo" 2>"$TMP/$name.err" &
    SRV_PID=$!
    SERVER_PIDS+=("$SRV_PID")
    exec {SRV_FD}<>"$TMP/$name.fifo"
    SRV_ADDRS=()
    while ((${#SRV_ADDRS[@]} < want)); do
        if read -r -t 1 -u "$SRV_FD" line; then
            [[ $line == "listening on "* ]] && SRV_ADDRS+=("${line#listening on }")
            continue
        fi
        waited=$((waited + 1))
        if ! kill -0 "$SRV_PID" 2>/dev/null || ((waited >= READY_LIMIT)); then
            echo "       server '$*' not ready: $(head -c 300 "$TMP/$name.err")"
            return 1
        fi
    done
}

# server_line: the next stdout line of the last started server, within 5 s,
# into SRV_LINE.
server_line() {
    SRV_LINE=""
    read -r -t 5 -u "$SRV_FD" SRV_LINE
}

port_of() {
    echo "${1##*:}"
}

# client ARGS...: run the client; sets RC and ELAPSED_MS, output in OUT/ERR.
client() {
    local t0=${EPOCHREALTIME/./}
    timeout -k 2 "$RUN_LIMIT" "$CLIENT" "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    ELAPSED_MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

# check NAME WANT_RC WANT_STDOUT WANT_STDERR: the last client run exited with
# WANT_RC, printed exactly WANT_STDOUT ('*': anything) and WANT_STDERR
# somewhere on stderr ('': not checked).
check() {
    local name=$1 want_rc=$2 want_out=$3 want_err=$4 got problems=()
    got=$(
        cat "$TMP/out"
        echo x
    )
    got=${got%x}
    [[ $RC == "$want_rc" ]] || problems+=("exit status $RC, want $want_rc")
    [[ $want_out == '*' || $got == "$want_out" ]] ||
        problems+=("stdout '$(head -c 200 <<<"$got")', want '$want_out'")
    [[ -z $want_err ]] || grep -qF -- "$want_err" "$TMP/err" ||
        problems+=("stderr lacks '$want_err'")
    if ((${#problems[@]})); then
        fail "$name" "${problems[@]}" "stderr: $(head -c 400 "$TMP/err")"
        return 1
    fi
    pass "$name"
}

# A port nobody listens on: bound to port 0 and closed again.
free_port() {
    "$HELPER" free-port "$1"
}

# ------------------------------------------------------------------ usage
test_usage() {
    local args
    while IFS='|' read -r want args; do
        # shellcheck disable=SC2086 # word splitting of the case is intended
        client $args
        check "usage: poolsrv-client $args" 2 "" "$want"
    done <<'EOF'
missing HOST and PORT|
missing PORT|127.0.0.1
unknown option '--bogus'|--bogus 127.0.0.1 7
--count needs a number|--count 0 127.0.0.1 7 x
--count needs a number|--count x 127.0.0.1 7
option '--count' needs a value|127.0.0.1 7 --count
bad PORT '70000'|127.0.0.1 70000 x
bad PORT '0'|127.0.0.1 0 x
--timeout needs seconds|--timeout -1 127.0.0.1 7
--timeout needs seconds|--timeout nan 127.0.0.1 7
--interval needs --count|--interval 10 127.0.0.1 7 x
--retries needs --udp|--retries 1 127.0.0.1 7 x
--udp does not apply to unix|--udp unix:/tmp/x.sock x
bad Unix socket path|unix: x
too many arguments|127.0.0.1 7 a b
too many arguments|unix:/tmp/x.sock a b
too many arguments|127.0.0.1:7 a b
empty PORT|127.0.0.1: x
empty HOST|:7 x
bad PORT '0'|127.0.0.1:0 x
bad PORT '70000'|[::1]:70000 x
EOF
    client --help
    if [[ $RC == 0 ]] && grep -q '^Usage: poolsrv-client' "$TMP/out" &&
        grep -q 'Exit status: 0 ok, 1 network error' "$TMP/out"; then
        pass "--help prints usage and exit codes, exit 0"
    else
        fail "--help" "exit $RC, stdout: $(head -c 200 "$TMP/out")"
    fi
    client --version
    check "--version" 0 "poolsrv-client $(cat VERSION 2>/dev/null)"$'\n' ""
}

# ------------------------------------------- TCP against poolsrv-echo
test_tcp_echo() {
    local have_v6=$1 listens=(--listen 127.0.0.1:0) p4 p6 want
    [[ $have_v6 == yes ]] && listens+=(--listen '[::1]:0')
    if ! start_server echo "$((${#listens[@]} / 2))" "$ECHO_SERVER" "${listens[@]}" \
        --drain-timeout 1000; then
        fail "poolsrv-echo starts on ${listens[*]}"
        return
    fi
    p4=$(port_of "${SRV_ADDRS[0]}")

    client 127.0.0.1 "$p4" "hello poolsrv"
    check "tcp ipv4 one-shot: reply is MESSAGE plus newline" 0 $'hello poolsrv\n' ""
    client 127.0.0.1 "$p4" $'two\nlines'
    check "tcp one-shot: a two-line MESSAGE gets both lines back" 0 $'two\nlines\n' ""
    client -v 127.0.0.1 "$p4" hello
    check "tcp -v: bytes sent and received on stderr" 0 $'hello\n' \
        "sent 6 bytes, received 6 bytes (127.0.0.1:$p4)"
    client -6 127.0.0.1 "$p4" hello
    check "tcp -6 with an IPv4 address fails to resolve" 1 "" "cannot resolve '127.0.0.1'"
    # the address as the servers print it: one argument
    client "127.0.0.1:$p4" "one arg"
    check "tcp HOST:PORT one-shot (127.0.0.1:$p4)" 0 $'one arg\n' ""
    client -v "localhost:$p4" </dev/null
    check "tcp HOST:PORT stream (localhost:PORT)" 0 "" "received 0 bytes"

    if [[ $have_v6 == yes ]]; then
        p6=$(port_of "${SRV_ADDRS[1]}")
        client ::1 "$p6" "hello six"
        check "tcp ipv6 one-shot (::1)" 0 $'hello six\n' ""
        client -v '[::1]' "$p6" "bracketed"
        check "tcp ipv6 one-shot ([::1], -v names the peer)" 0 $'bracketed\n' "connected to [::1]:$p6"
        client "[::1]:$p6" "v6 one arg"
        check "tcp [ADDR]:PORT one-shot ([::1]:$p6)" 0 $'v6 one arg\n' ""
    else
        skip "tcp ipv6: ::1 is not available on this host"
    fi

    head -c $((10 * 1024 * 1024)) /dev/urandom >"$TMP/random.bin"
    client -v 127.0.0.1 "$p4" <"$TMP/random.bin"
    if [[ $RC == 0 ]] && cmp -s "$TMP/random.bin" "$TMP/out" &&
        grep -qF "sent 10485760 bytes, received 10485760 bytes" "$TMP/err"; then
        pass "tcp stream: 10 MiB of random stdin echoed byte for byte (${ELAPSED_MS} ms)"
    else
        fail "tcp stream: 10 MiB of random stdin" "exit $RC; $(cmp "$TMP/random.bin" "$TMP/out" 2>&1)" \
            "stderr: $(head -c 400 "$TMP/err")"
    fi
    client 127.0.0.1 "$p4" </dev/null
    check "tcp stream: empty stdin half-closes, exit when the server closes" 0 "" ""

    client --count 5 --interval 50 127.0.0.1 "$p4"
    check_ping "tcp ping" "$p4" 5 200

    client --count 3 --interval 0 127.0.0.1 "$p4" "PING me"
    want="8 bytes from 127.0.0.1:$p4: seq=3 time="
    if [[ $RC == 0 ]] && grep -qF "$want" "$TMP/out"; then
        pass "tcp ping with MESSAGE: reply size is MESSAGE plus newline"
    else
        fail "tcp ping with MESSAGE" "exit $RC, stdout: $(head -c 300 "$TMP/out")"
    fi
}

# check_ping NAME PORT N MIN_MS: N numbered replies, a 0% loss summary with
# min <= avg <= max and p99 <= max, and at least MIN_MS elapsed (intervals).
check_ping() {
    local name=$1 port=$2 n=$3 min_ms=$4 seqs stats problems=()
    [[ $RC == 0 ]] || problems+=("exit status $RC")
    seqs=$(grep -cE "^[0-9]+ bytes from [^ ]+:$port: seq=[0-9]+ time=[0-9]+\.[0-9]{3} ms$" "$TMP/out")
    [[ $seqs == "$n" ]] || problems+=("$seqs reply lines, want $n")
    grep -qxF "$n sent, $n received, 0.0% loss" "$TMP/out" || problems+=("no 0% loss line")
    stats=$(sed -n 's|^rtt min/avg/max/p99 = \([0-9./]*\) ms$|\1|p' "$TMP/out")
    if ! awk -F/ 'NF == 4 && $1 <= $2 && $2 <= $3 && $4 <= $3 && $1 > 0 { ok = 1 }
                  END { exit !ok }' <<<"$stats"; then
        problems+=("bad rtt summary '$stats'")
    fi
    ((ELAPSED_MS >= min_ms)) || problems+=("took ${ELAPSED_MS} ms, intervals need ${min_ms}")
    if ((${#problems[@]})); then
        fail "$name" "${problems[@]}" "stdout: $(head -c 600 "$TMP/out")"
    else
        pass "$name: $n replies, summary min/avg/max/p99 = $stats ms"
    fi
}

# ------------------------------------------------------------ Unix socket
test_unix() {
    local sock=$TMP/echo.sock stale=$TMP/stale.sock pid
    if ! start_server unix 1 "$HELPER" unix "$sock"; then
        fail "unix echo helper starts"
        return
    fi
    client "unix:$sock" "over unix"
    check "unix one-shot" 0 $'over unix\n' ""
    head -c $((1024 * 1024)) /dev/urandom >"$TMP/random1.bin"
    client "unix:$sock" <"$TMP/random1.bin"
    if [[ $RC == 0 ]] && cmp -s "$TMP/random1.bin" "$TMP/out"; then
        pass "unix stream: 1 MiB echoed byte for byte"
    else
        fail "unix stream: 1 MiB" "exit $RC; $(cmp "$TMP/random1.bin" "$TMP/out" 2>&1)"
    fi
    client --count 3 --interval 0 "unix:$sock"
    check_ping "unix ping" "$sock" 3 0

    if start_server unix-stuck 1 "$HELPER" unix-stuck "$TMP/stuck.sock"; then
        client --timeout 0.5 "unix:$TMP/stuck.sock" x
        check "unix connect timeout (full backlog): message and exit 1" 1 "" \
            "timed out after 0.5 s connecting to unix:$TMP/stuck.sock"
    else
        skip "unix connect timeout: this kernel does not fill a Unix backlog"
    fi

    client "unix:$TMP/nobody.sock" x
    check "unix: missing socket file" 1 "" "error connecting to unix:$TMP/nobody.sock: No such file"

    # A socket file whose server is gone refuses connections.
    start_server stale 1 "$HELPER" unix "$stale" || return
    pid=$SRV_PID
    stop_pid "$pid"
    client "unix:$stale" x
    check "unix: stale socket file" 1 "" "connection refused: unix:$stale"
}

# -------------------------------------------------------------------- UDP
test_udp() {
    local host=$1 port line want
    if ! start_server "udp-$host" 1 "$HELPER" udp "$host"; then
        fail "udp echo helper starts on $host"
        return
    fi
    port=$(port_of "${SRV_ADDRS[0]}")
    client --udp "$host" "$port" "datagram"
    check "udp one-shot ($host)" 0 $'datagram\n' ""
    printf 'one\ntwo\n\nthree\n' >"$TMP/lines"
    client --udp -v "$host" "$port" <"$TMP/lines"
    check "udp: each stdin line is a datagram, replies in order" 0 $'one\ntwo\n\nthree\n' \
        "sent 11 bytes, received 11 bytes"
    client --udp --count 4 --interval 20 "$host" "$port"
    want=$port
    check_ping "udp ping ($host)" "$want" 4 60
    # The server saw each request exactly once: 1 + 4 + 4 datagrams.
    while server_line && [[ $SRV_LINE != "datagram 9 echoed" ]]; do :; done
    if [[ $SRV_LINE == "datagram 9 echoed" ]] && ! read -r -t 0.2 -u "$SRV_FD" line; then
        pass "udp: the server got 9 datagrams, no duplicates"
    else
        fail "udp: server datagram count" "last line '$SRV_LINE' then '${line:-}'"
    fi
}

test_udp_loss() {
    local port line seen=()
    # Drops the first datagram: one retry recovers.
    start_server udp-drop 1 "$HELPER" udp 127.0.0.1 1 || {
        fail "udp drop helper starts"
        return
    }
    port=$(port_of "${SRV_ADDRS[0]}")
    client --udp --timeout 0.3 --retries 1 127.0.0.1 "$port" again
    check "udp: a lost datagram is resent after the timeout" 0 $'again\n' ""
    server_line && seen+=("$SRV_LINE")
    server_line && seen+=("$SRV_LINE")
    if [[ ${seen[*]} == "datagram 1 dropped datagram 2 echoed" ]]; then
        pass "udp: server saw the drop then the resend"
    else
        fail "udp: server saw the drop then the resend" "got '${seen[*]}'"
    fi

    # Never replies: 1 + 2 retries, then the timeout message and exit 1.
    start_server udp-silent 1 "$HELPER" udp-silent 127.0.0.1 || {
        fail "udp silent helper starts"
        return
    }
    port=$(port_of "${SRV_ADDRS[0]}")
    client --udp --timeout 0.3 --retries 2 127.0.0.1 "$port" hello
    check "udp reply timeout: message and exit 1" 1 "" \
        "timed out after 0.3 s waiting for reply from 127.0.0.1:$port (3 attempts)"
    if ((ELAPSED_MS >= 850 && ELAPSED_MS < 5000)); then
        pass "udp reply timeout: 3 x 0.3 s took ${ELAPSED_MS} ms"
    else
        fail "udp reply timeout duration" "took ${ELAPSED_MS} ms, want about 900"
    fi
    seen=()
    while server_line && [[ -n $SRV_LINE ]]; do
        seen+=("$SRV_LINE")
        ((${#seen[@]} == 3)) && break
    done
    if ((${#seen[@]} == 3)) && ! read -r -t 0.2 -u "$SRV_FD" line; then
        pass "udp reply timeout: exactly 3 attempts reached the server"
    else
        fail "udp reply timeout attempts" "server saw: ${seen[*]} ${line:-}"
    fi

    client --udp --timeout 0.2 --retries 0 --count 2 --interval 0 127.0.0.1 "$port"
    if [[ $RC == 1 ]] && grep -qxF "2 sent, 0 received, 100.0% loss" "$TMP/out" &&
        grep -qF "no reply from 127.0.0.1:$port: seq=2" "$TMP/out"; then
        pass "udp ping: lost probes counted, exit 1"
    else
        fail "udp ping with loss" "exit $RC, stdout: $(head -c 300 "$TMP/out")"
    fi

    port=$(free_port 127.0.0.1)
    client --udp --timeout 2 127.0.0.1 "$port" x
    check "udp to a closed port: connection refused" 1 "" "connection refused: 127.0.0.1:$port"
}

# ------------------- poolsrv-echo over Unix sockets and UDP, once it can
# Issue 5 adds these listeners to the framework; until poolsrv-echo accepts
# them the helpers above stand in, and these tests say they were skipped.
test_echo_extras() {
    local sock=$TMP/real.sock port
    if start_server real-unix 1 "$ECHO_SERVER" --listen "unix:$sock" --drain-timeout 1000 \
        >/dev/null; then
        client "unix:$sock" "real unix"
        check "poolsrv-echo over a Unix socket: one-shot" 0 $'real unix\n' ""
        client "unix:$sock" <"$TMP/random1.bin"
        if [[ $RC == 0 ]] && cmp -s "$TMP/random1.bin" "$TMP/out"; then
            pass "poolsrv-echo over a Unix socket: 1 MiB stream"
        else
            fail "poolsrv-echo over a Unix socket: 1 MiB stream" "exit $RC"
        fi
    else
        skip "poolsrv-echo over a Unix socket: it does not accept --listen unix: yet"
    fi
    if start_server real-udp 1 "$ECHO_SERVER" --udp --listen 127.0.0.1:0 \
        --drain-timeout 1000 >/dev/null; then
        port=$(port_of "${SRV_ADDRS[0]}")
        client --udp --timeout 2 127.0.0.1 "$port" "real udp"
        check "poolsrv-echo --udp: datagram echoed" 0 $'real udp\n' ""
        client --udp --timeout 2 --count 3 --interval 0 127.0.0.1 "$port"
        check_ping "poolsrv-echo --udp: ping" "$port" 3 0
    else
        skip "poolsrv-echo --udp: not supported yet"
    fi
}

# --------------------------------------- several addresses for one name
# The shim makes "multi.poolsrv.test" resolve to "$other,127.0.0.1"; only
# 127.0.0.1 has a server, so the first address refuses and the client must
# go on to the second.
shim_client() {
    PC_TEST_ADDRS=$SHIM_ADDRS LD_PRELOAD=$SHIM ASAN_OPTIONS=verify_asan_link_order=0 \
        client "$@"
}

test_multi_address() {
    local have_v6=$1 other shown port
    if [[ -z ${SHIM:-} || ! -f $SHIM ]]; then
        skip "several addresses per name: no resolver shim (SHIM) given"
        return
    fi
    if [[ $have_v6 == yes ]]; then
        other=::1 shown='[::1]'
    else
        other=127.0.0.2 shown=127.0.0.2
    fi
    SHIM_ADDRS="$other,127.0.0.1"
    start_server multi 1 "$ECHO_SERVER" --listen 127.0.0.1:0 --drain-timeout 1000 || {
        fail "poolsrv-echo starts on 127.0.0.1"
        return
    }
    port=$(port_of "${SRV_ADDRS[0]}")
    shim_client -v multi.poolsrv.test "$port" "second address"
    check "tcp: name with 2 addresses, the refused first is skipped" 0 $'second address\n' \
        "attempt failed: $shown:$port: Connection refused"
    grep -qF "connected to 127.0.0.1:$port" "$TMP/err" ||
        fail "tcp: 2 addresses: connected to the second" "stderr: $(head -c 400 "$TMP/err")"

    port=$(free_port 127.0.0.1)
    shim_client multi.poolsrv.test "$port" x
    if [[ $RC == 1 ]] && [[ $(cat "$TMP/err") == "poolsrv-client: connection refused: $shown:$port
poolsrv-client: connection refused: 127.0.0.1:$port" ]]; then
        pass "tcp: every address refused: one line per address, exit 1"
    else
        fail "tcp: every address refused" "exit $RC, stderr: $(head -c 400 "$TMP/err")"
    fi

    start_server multi-udp 1 "$HELPER" udp 127.0.0.1 || {
        fail "udp echo helper starts"
        return
    }
    port=$(port_of "${SRV_ADDRS[0]}")
    shim_client --udp -v --timeout 2 multi.poolsrv.test "$port" "udp second"
    check "udp: name with 2 addresses, the refusing first is skipped" 0 $'udp second\n' \
        "connection refused: $shown:$port; trying the next address"
}

# ------------------------------------------------------ TCP failure paths
test_tcp_errors() {
    local have_v6=$1 port fifo
    port=$(free_port 127.0.0.1)
    client 127.0.0.1 "$port" x
    check "tcp connection refused: message and exit 1" 1 "" "connection refused: 127.0.0.1:$port"
    if [[ $have_v6 == yes ]]; then
        port=$(free_port ::1)
        client ::1 "$port" x
        check "tcp ipv6 connection refused" 1 "" "connection refused: [::1]:$port"
    fi

    # Through the shim, which fails ".invalid" names itself: no DNS query
    # leaves this machine.
    if [[ -n ${SHIM:-} && -f $SHIM ]]; then
        shim_client nosuchhost.invalid 7000 x
        check "resolution failure: message and exit 1" 1 "" "cannot resolve 'nosuchhost.invalid': "
    else
        skip "resolution failure: no resolver shim (SHIM) given"
    fi

    start_server silent 1 "$HELPER" tcp-silent 127.0.0.1 || {
        fail "tcp silent helper starts"
        return
    }
    port=$(port_of "${SRV_ADDRS[0]}")
    client --timeout 0.5 127.0.0.1 "$port" hello
    check "tcp reply timeout: message and exit 1" 1 "" \
        "timed out after 0.5 s waiting for reply from 127.0.0.1:$port"
    if ((ELAPSED_MS >= 450 && ELAPSED_MS < 5000)); then
        pass "tcp reply timeout took ${ELAPSED_MS} ms"
    else
        fail "tcp reply timeout duration" "took ${ELAPSED_MS} ms, want about 500"
    fi
    echo data >"$TMP/data"
    client --timeout 0.5 127.0.0.1 "$port" <"$TMP/data"
    check "tcp stream: peer silent after our half-close times out" 1 "" \
        "timed out after 0.5 s waiting for reply from 127.0.0.1:$port"
    client --timeout 0.3 --count 3 --interval 0 127.0.0.1 "$port"
    check "tcp ping: missing reply ends the run, exit 1" 1 \
        $'--- 127.0.0.1:'"$port"$' ping statistics ---\n1 sent, 0 received, 100.0% loss\n' \
        "timed out after 0.3 s waiting for reply from 127.0.0.1:$port"

    if start_server stuck 1 "$HELPER" tcp-stuck 127.0.0.1 2>/dev/null; then
        port=$(port_of "${SRV_ADDRS[0]}")
        client --timeout 0.5 127.0.0.1 "$port" x
        check "tcp connect timeout: message and exit 1" 1 "" \
            "timed out after 0.5 s connecting to 127.0.0.1:$port"
    else
        skip "tcp connect timeout: this kernel answers connects to a full backlog"
    fi

    # Stream mode ends when the server closes, even with stdin still open.
    start_server once 1 "$HELPER" tcp-once 127.0.0.1 || {
        fail "tcp once helper starts"
        return
    }
    port=$(port_of "${SRV_ADDRS[0]}")
    fifo=$TMP/stdin.fifo
    mkfifo "$fifo"
    exec {w}<>"$fifo"
    echo "only line" >&"$w"
    client --timeout 0 127.0.0.1 "$port" <"$fifo"
    exec {w}>&-
    check "tcp stream: exits when the server closes while stdin is open" 0 $'only line\n' ""
}

# -------------------------------------------------------------------- TLS
test_tls_usage() {
    local args
    while IFS='|' read -r want args; do
        # shellcheck disable=SC2086 # word splitting of the case is intended
        client $args
        check "tls usage: poolsrv-client $args" 2 "" "$want"
    done <<'EOF'
need --tls|--ca /x 127.0.0.1 7 x
need --tls|--insecure 127.0.0.1 7 x
need --tls|--sni a 127.0.0.1 7 x
--tls does not apply to --udp|--tls --udp 127.0.0.1 7 x
--insecure and --ca exclude each other|--tls --insecure --ca /x 127.0.0.1 7 x
--tls over unix: needs --sni NAME|--tls unix:/tmp/x.sock x
--alpn needs comma-separated names|--tls --alpn h2,,x 127.0.0.1 7 x
EOF
}

# TLS against the OpenSSL helper: verification, refusals, the stream.
test_tls() {
    local d=$TMP/certs port self_port
    client --tls 127.0.0.1 1 x
    if grep -qF "built without TLS support" "$TMP/err"; then
        check "--tls in a build without TLS: message and exit 2" 2 "" "built without TLS support"
        skip "tls: this client was built without OpenSSL"
        return
    fi
    test_tls_usage
    if [[ -z $TLS_HELPER || ! -x $TLS_HELPER ]]; then
        skip "tls: no TLS echo helper (TLS_HELPER) built"
        return
    fi
    { mkdir -p "$d" && tls_make_certs "$d"; } || {
        fail "tls: make test certificates with openssl"
        return
    }
    start_server tls 1 "$TLS_HELPER" "$d/chain.pem" "$d/server.key" 127.0.0.1 || {
        fail "tls echo helper starts"
        return
    }
    port=$(port_of "${SRV_ADDRS[0]}")

    client --tls --ca "$d/ca.pem" -v 127.0.0.1 "$port" "over tls"
    check "tls one-shot, --ca: certificate verified for the IP address" 0 $'over tls\n' \
        "certificate verified for '127.0.0.1'"
    client --tls --ca "$d/ca.pem" -v "localhost:$port" "by name"
    check "tls one-shot to localhost: verified for the name" 0 $'by name\n' \
        "certificate verified for 'localhost'"
    client --tls 127.0.0.1 "$port" x
    check "tls: a CA the system store lacks is refused, exit 1" 1 "" \
        "poolsrv-client: TLS: the certificate of 127.0.0.1:$port is not trusted: "
    client --tls --insecure -v 127.0.0.1 "$port" x
    check "tls --insecure: the same server accepted" 0 $'x\n' "certificate not verified (--insecure)"
    client --tls --ca "$d/ca.pem" --sni wrong.example 127.0.0.1 "$port" x
    check "tls --sni wrong.example: name mismatch refused, exit 1" 1 "" \
        "TLS: the certificate of 127.0.0.1:$port is not valid for the name 'wrong.example'"
    client --tls --ca "$d/ca.pem" --sni localhost 127.0.0.1 "$port" x
    check "tls --sni localhost: verified against the name" 0 $'x\n' ""
    client --tls --ca "$TMP/no-such-ca.pem" 127.0.0.1 "$port" x
    check "tls --ca missing file: message and exit 2" 2 "" "cannot load CA certificates from"
    client --tls --ca "$d/ca.pem" --alpn h2,http/1.1 -v 127.0.0.1 "$port" x
    check "tls --alpn: offered, the server chose none" 0 $'x\n' "ALPN: the server chose no protocol"

    head -c $((1024 * 1024)) /dev/urandom >"$TMP/tls1.bin"
    client --tls --ca "$d/ca.pem" -v 127.0.0.1 "$port" <"$TMP/tls1.bin"
    if [[ $RC == 0 ]] && cmp -s "$TMP/tls1.bin" "$TMP/out" &&
        grep -qF "sent 1048576 bytes, received 1048576 bytes" "$TMP/err" &&
        grep -qF "end of stdin: half-closed" "$TMP/err"; then
        pass "tls stream: 1 MiB echoed byte for byte, close_notify at end of stdin (${ELAPSED_MS} ms)"
    else
        fail "tls stream: 1 MiB" "exit $RC; $(cmp "$TMP/tls1.bin" "$TMP/out" 2>&1)" \
            "stderr: $(head -c 400 "$TMP/err")"
    fi
    client --tls --ca "$d/ca.pem" --count 3 --interval 0 127.0.0.1 "$port"
    check_ping "tls ping" "$port" 3 0

    start_server tls-self 1 "$TLS_HELPER" "$d/self.pem" "$d/self.key" 127.0.0.1 || {
        fail "tls echo helper starts with a self-signed certificate"
        return
    }
    self_port=$(port_of "${SRV_ADDRS[0]}")
    client --tls --ca "$d/ca.pem" 127.0.0.1 "$self_port" x
    check "tls: a self-signed certificate is refused, exit 1" 1 "" \
        "is not trusted: self-signed certificate (--ca FILE names the CA to trust"
    client --tls --insecure 127.0.0.1 "$self_port" x
    check "tls --insecure: the self-signed certificate accepted" 0 $'x\n' ""

    start_server tls-nonotify 1 "$TLS_HELPER" --no-notify "$d/chain.pem" "$d/server.key" \
        127.0.0.1 || {
        fail "tls echo helper starts with --no-notify"
        return
    }
    echo "cut short" >"$TMP/data"
    client --tls --ca "$d/ca.pem" 127.0.0.1 "$(port_of "${SRV_ADDRS[0]}")" <"$TMP/data"
    check "tls: a close without close_notify ends the stream, with a warning" 0 $'cut short\n' \
        "closed the connection without a TLS close_notify"

    # A server that accepts and never answers: the handshake times out.
    start_server tls-silent 1 "$HELPER" tcp-silent 127.0.0.1 || return
    port=$(port_of "${SRV_ADDRS[0]}")
    client --tls --insecure --timeout 0.5 127.0.0.1 "$port" x
    check "tls handshake timeout: message and exit 1" 1 "" \
        "timed out after 0.5 s in the TLS handshake with 127.0.0.1:$port"
    # A plain echo server sends the ClientHello back: that is no TLS.
    start_server tls-plain 1 "$HELPER" tcp 127.0.0.1 || return
    port=$(port_of "${SRV_ADDRS[0]}")
    client --tls --insecure 127.0.0.1 "$port" x
    check "tls to a plain echo server: handshake failure, exit 1" 1 "" \
        "TLS handshake with 127.0.0.1:$port failed: "
    test_tls_echo "$d"
}

# poolsrv-echo's own tls: listener (issue 15), once it has one.
test_tls_echo() {
    local d=$1 port
    if ! start_server echo-tls 1 "$ECHO_SERVER" --listen tls:127.0.0.1:0 \
        --tls-cert "$d/chain.pem" --tls-key "$d/server.key" --drain-timeout 1000 >/dev/null; then
        skip "poolsrv-echo --listen tls: not supported by this build"
        return
    fi
    port=$(port_of "${SRV_ADDRS[0]}")
    client --tls --ca "$d/ca.pem" 127.0.0.1 "$port" "poolsrv tls"
    check "poolsrv-echo tls: one-shot, certificate verified" 0 $'poolsrv tls\n' ""
    client --tls --ca "$d/ca.pem" -v 127.0.0.1 "$port" <"$TMP/tls1.bin"
    if [[ $RC == 0 ]] && cmp -s "$TMP/tls1.bin" "$TMP/out"; then
        pass "poolsrv-echo tls: 1 MiB stream byte for byte, half-close by close_notify"
    else
        fail "poolsrv-echo tls: 1 MiB stream" "exit $RC; $(cmp "$TMP/tls1.bin" "$TMP/out" 2>&1)" \
            "stderr: $(head -c 400 "$TMP/err")"
    fi
}

HAVE_V6=no
"$HELPER" free-port ::1 >/dev/null 2>&1 && HAVE_V6=yes

test_usage
test_tcp_echo "$HAVE_V6"
test_unix
test_udp 127.0.0.1
if [[ $HAVE_V6 == yes ]]; then
    test_udp ::1
else
    skip "udp over ipv6: ::1 is not available on this host"
fi
test_udp_loss
test_echo_extras
test_multi_address "$HAVE_V6"
test_tcp_errors "$HAVE_V6"
test_tls

echo "client: $PASSED passed, $FAILED failed"
((FAILED == 0))

#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/install/run.sh - install poolsrv into a temporary DESTDIR, check every
# file a packager expects, build a program from outside the tree against the
# installed package with pkg-config (shared and static), run it, then
# uninstall and check that nothing is left.  Run by `make test-install` (and
# so by `make test`).
#
# Environment: MAKE, CC, CXX, PKG_CONFIG (defaults: make, cc, c++,
# pkg-config).  Servers listen on 127.0.0.1 port 0 only and are stopped by
# their PID; every wait is bounded.  Last line: "install: N passed, N failed";
# the exit status is non-zero if any check failed.

set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh # term_wait
ROOT=$PWD

MAKE=${MAKE:-make}
CC=${CC:-cc}
CXX=${CXX:-c++}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
PREFIX=/usr/local
MAKE_LIMIT=600 # seconds for `make install` (it may have to build first)
RUN_LIMIT=30   # seconds for any other one command
READY_LIMIT=10 # seconds a server may take to print "listening on"
STOP_LIMIT=10  # seconds a server may take to exit after SIGTERM

VERSION=$(cat VERSION) || exit 1
MAJOR=${VERSION%%.*}

PASSED=0
FAILED=0
SERVER_PIDS=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/poolsrv-install-test.XXXXXX") || exit 1
DEST=$TMP/dest
BIN=$DEST$PREFIX/bin
LIB=$DEST$PREFIX/lib
INC=$DEST$PREFIX/include
PC=$LIB/pkgconfig
MAN=$DEST$PREFIX/share/man

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
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

# fail NAME [DETAIL...]: details are printed indented under the name.
fail() {
    local line l
    FAILED=$((FAILED + 1))
    echo "FAIL $1"
    shift
    for line in "$@"; do
        while IFS= read -r l; do
            printf '     %s\n' "$l"
        done <<<"$line"
    done
}

# check NAME COMMAND...: pass if COMMAND succeeds.
check() {
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name" "failed: $*"; fi
}

# show FILE: the last lines of a log, for a failure message.
show() {
    tail -n 15 "$1" 2>/dev/null | sed 's/^/| /'
}

# ------------------------------------------------------------ servers

# start_server OUTFILE COMMAND...: run COMMAND in the background with
# stdout in OUTFILE and stderr in OUTFILE.err; sets SERVER_PID.
start_server() {
    local out=$1
    shift
    "$@" >"$out" 2>"$out.err" &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
}

# await_listen PID OUTFILE: wait until the server prints its first
# "listening on ADDR" line; sets ADDR, HOST and PORT.
await_listen() {
    local pid=$1 out=$2 line deadline=$((SECONDS + READY_LIMIT))
    while ((SECONDS <= deadline)); do
        line=$(grep -m1 '^listening on ' "$out" 2>/dev/null)
        if [[ -n $line ]]; then
            ADDR=${line#listening on }
            HOST=${ADDR%:*}
            PORT=${ADDR##*:}
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# stop_server PID: SIGTERM, wait for the exit (a join bounded by
# STOP_LIMIT), return its status (124 if it had to be killed).
stop_server() {
    term_wait "$1" "$STOP_LIMIT"
    case $STOP_STATUS in
    killed) return 124 ;;
    gone) return 127 ;;
    esac
    return "$STOP_STATUS"
}

# echo_line HOST PORT TEXT: send TEXT and a newline over TCP with bash's
# /dev/tcp, and check that the same line comes back within RUN_LIMIT.
echo_line() {
    local host=$1 port=$2 text=$3 reply="" fd
    exec {fd}<>"/dev/tcp/$host/$port" || return 1
    printf '%s\n' "$text" >&"$fd"
    IFS= read -r -t "$RUN_LIMIT" reply <&"$fd"
    exec {fd}>&-
    [[ $reply == "$text" ]]
}

# run_outside NAME BINARY [ENV...]: start the outside program, check its
# version line, echo a line through it, stop it, expect exit status 0.
run_outside() {
    local name=$1 exe=$2 out rc
    shift 2
    out=$TMP/$name.out
    start_server "$out" env "$@" "$exe" 127.0.0.1:0
    if ! await_listen "$SERVER_PID" "$out"; then
        fail "$name: prints 'listening on ADDR'" "$(show "$out.err")"
        stop_server "$SERVER_PID"
        return
    fi
    pass "$name: listening on $ADDR"
    if grep -qx "version $VERSION" "$out"; then
        pass "$name: ps_version() is $VERSION"
    else
        fail "$name: ps_version() is $VERSION" "$(head -n 1 "$out")"
    fi
    if [[ $name == outside-shared ]]; then
        if grep -q "$LIB/libpoolsrv.so.$VERSION" "/proc/$SERVER_PID/maps" 2>/dev/null; then
            pass "$name: runs on the installed libpoolsrv.so.$VERSION"
        else
            fail "$name: runs on the installed libpoolsrv.so.$VERSION" \
                "$(grep libpoolsrv "/proc/$SERVER_PID/maps" 2>/dev/null | head -n 1)"
        fi
    fi
    check "$name: echoes a line over TCP" echo_line "$HOST" "$PORT" "hello from $name"
    stop_server "$SERVER_PID"
    rc=$?
    if ((rc == 0)); then
        pass "$name: SIGTERM stops it, exit status 0"
    else
        fail "$name: SIGTERM stops it, exit status 0" "exit status $rc" "$(show "$out.err")"
    fi
}

# ------------------------------------------------------------- install

echo "install: make install DESTDIR=$DEST PREFIX=$PREFIX"
if timeout "$MAKE_LIMIT" "$MAKE" --no-print-directory -C "$ROOT" install \
    DESTDIR="$DEST" PREFIX="$PREFIX" >"$TMP/install.log" 2>&1; then
    pass "make install"
else
    fail "make install" "$(show "$TMP/install.log")"
    echo "install: $PASSED passed, $FAILED failed"
    exit 1
fi

EXPECTED=(
    "$INC/poolsrv.h"
    "$LIB/libpoolsrv.a"
    "$LIB/libpoolsrv.so.$VERSION"
    "$LIB/libpoolsrv.so.$MAJOR"
    "$LIB/libpoolsrv.so"
    "$PC/poolsrv.pc"
    "$LIB/cmake/poolsrv/poolsrvConfig.cmake"
    "$LIB/cmake/poolsrv/poolsrvConfigVersion.cmake"
    "$BIN/poolsrv-echo"
    "$BIN/poolsrv-client"
    "$BIN/poolsrv-bench"
    "$MAN/man1/poolsrv-echo.1"
    "$MAN/man1/poolsrv-client.1"
    "$MAN/man1/poolsrv-bench.1"
    "$MAN/man1/poolsrv-http.1"
    "$MAN/man1/poolsrv-kv.1"
    "$MAN/man1/poolsrv-proxy.1"
    "$MAN/man3/poolsrv.3"
)
for f in "${EXPECTED[@]}"; do
    check "installed ${f#"$DEST"}" test -e "$f"
done
for f in "$BIN/poolsrv-echo" "$BIN/poolsrv-client" "$BIN/poolsrv-bench"; do
    check "executable ${f#"$DEST"}" test -x "$f"
done
# Informational: programs installed without a man page of their own.
for f in "$BIN"/*; do
    [[ -e $MAN/man1/${f##*/}.1 ]] || echo "note ${f#"$DEST"} has no man page"
done
check "installed header is lib/include/poolsrv.h" cmp -s "$INC/poolsrv.h" lib/include/poolsrv.h

for link in "libpoolsrv.so.$MAJOR" libpoolsrv.so; do
    target=$(readlink "$LIB/$link")
    if [[ -L $LIB/$link && $target == "libpoolsrv.so.$VERSION" ]]; then
        pass "$link -> libpoolsrv.so.$VERSION"
    else
        fail "$link -> libpoolsrv.so.$VERSION" "points to '${target}'"
    fi
done

soname=$(readelf -d "$LIB/libpoolsrv.so.$VERSION" 2>/dev/null |
    sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [[ $soname == "libpoolsrv.so.$MAJOR" ]]; then
    pass "soname libpoolsrv.so.$MAJOR"
else
    fail "soname libpoolsrv.so.$MAJOR" "readelf -d says '$soname'"
fi

# Only the ps_ API leaves the shared library (internal ps__ and helpers stay
# hidden); the version script's node names (POOLSRV_*, absolute symbols) are
# the only others.
foreign=$(nm -D --defined-only "$LIB/libpoolsrv.so.$VERSION" 2>/dev/null |
    awk '{print $NF}' | grep -Ev '^(ps_[a-z]|POOLSRV_[0-9.]+$)' | head -n 5)
unversioned=$(nm -D --defined-only --with-symbol-versions "$LIB/libpoolsrv.so.$VERSION" \
    2>/dev/null | awk '$NF ~ /^ps_/ && $NF !~ /@@?POOLSRV_/ {print $NF}' | head -n 5)
if [[ -z $unversioned ]]; then
    pass "every exported ps_ symbol has a POOLSRV_ version (lib/libpoolsrv.map)"
else
    fail "every exported ps_ symbol has a POOLSRV_ version (lib/libpoolsrv.map)" "$unversioned"
fi
nexported=$(nm -D --defined-only "$LIB/libpoolsrv.so.$VERSION" 2>/dev/null | grep -c ' ps_[a-z]')
if [[ -z $foreign && $nexported -gt 0 ]]; then
    pass "shared library exports only ps_ symbols ($nexported)"
else
    fail "shared library exports only ps_ symbols" "$foreign"
fi

for prog in poolsrv-echo poolsrv-client; do
    got=$(timeout "$RUN_LIMIT" "$BIN/$prog" --version 2>&1)
    if [[ $got == "$prog $VERSION" ]]; then
        pass "$prog --version"
    else
        fail "$prog --version" "got '$got'"
    fi
done
if timeout "$RUN_LIMIT" "$BIN/poolsrv-bench" --help >/dev/null 2>&1; then
    pass "poolsrv-bench --help"
else
    fail "poolsrv-bench --help"
fi

# -------------------------------------------------------------- pkg-config

# poolsrv.pc names absolute paths ($PREFIX/...); the sysroot variable makes
# pkg-config prefix them with DESTDIR.  PKG_CONFIG_LIBDIR (not only _PATH)
# keeps any poolsrv installed on this machine out of the way.
export PKG_CONFIG_LIBDIR=$PC PKG_CONFIG_PATH=$PC PKG_CONFIG_SYSROOT_DIR=$DEST
# ... but never for the project's own make: with this pkg-config it would not
# find OpenSSL, and rebuild the tree's library without TLS.
tree_make() {
    env -u PKG_CONFIG_LIBDIR -u PKG_CONFIG_PATH -u PKG_CONFIG_SYSROOT_DIR \
        timeout "$MAKE_LIMIT" "$MAKE" --no-print-directory -C "$ROOT" "$@"
}

modversion=$("$PKG_CONFIG" --modversion poolsrv 2>&1)
if [[ $modversion == "$VERSION" ]]; then
    pass "pkg-config --modversion poolsrv is $VERSION"
else
    fail "pkg-config --modversion poolsrv is $VERSION" "got '$modversion'"
fi
read -ra PC_CFLAGS <<<"$("$PKG_CONFIG" --cflags poolsrv)"
read -ra PC_LIBS <<<"$("$PKG_CONFIG" --libs poolsrv)"
read -ra PC_STATIC <<<"$("$PKG_CONFIG" --static --libs poolsrv)"
if [[ " ${PC_CFLAGS[*]} " == *" -I$INC "* && " ${PC_LIBS[*]} " == *" -L$LIB "* ]]; then
    pass "pkg-config flags point into DESTDIR"
else
    fail "pkg-config flags point into DESTDIR" "cflags: ${PC_CFLAGS[*]}" "libs: ${PC_LIBS[*]}"
fi

# The outside program is compiled from a copy in a directory of its own, so
# nothing of the source tree (lib/include) can be picked up by accident.
OUT=$TMP/outside
mkdir -p "$OUT"
cp tests/install/outside.c "$OUT/"
STRICT=(-std=c11 -Wall -Wextra -Wpedantic -Werror)

# The header on its own, in strict C11 without feature-test macros.
printf '#include <poolsrv.h>\nint main(void) { return ps_version()[0] == 0; }\n' >"$OUT/bare.c"
if (cd "$OUT" && timeout "$RUN_LIMIT" "$CC" "${STRICT[@]}" -c bare.c "${PC_CFLAGS[@]}" \
    -o bare.o) >"$TMP/bare.log" 2>&1; then
    pass "<poolsrv.h> compiles alone with ${STRICT[*]}"
else
    fail "<poolsrv.h> compiles alone with ${STRICT[*]}" "$(show "$TMP/bare.log")"
fi

# ... and from C++ (extern "C"), when a C++ compiler is there.
if command -v "$CXX" >/dev/null 2>&1; then
    cp "$OUT/bare.c" "$OUT/bare.cc"
    if (cd "$OUT" && timeout "$RUN_LIMIT" "$CXX" -Wall -Wextra -Werror -c bare.cc \
        "${PC_CFLAGS[@]}" -o bare-cc.o) >"$TMP/bare-cc.log" 2>&1; then
        pass "<poolsrv.h> compiles as C++"
    else
        fail "<poolsrv.h> compiles as C++" "$(show "$TMP/bare-cc.log")"
    fi
else
    echo "skip <poolsrv.h> as C++: no $CXX"
fi

# needed_lib BINARY: the libpoolsrv entry of its NEEDED list, if any.
needed_lib() {
    readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(libpoolsrv[^]]*\)\].*/\1/p'
}

# Shared: cc outside.c $(pkg-config --cflags --libs poolsrv).
if (cd "$OUT" && timeout "$RUN_LIMIT" "$CC" "${STRICT[@]}" -D_POSIX_C_SOURCE=200809L \
    outside.c "${PC_CFLAGS[@]}" "${PC_LIBS[@]}" -o outside-shared) >"$TMP/shared.log" 2>&1; then
    pass "build outside.c against the shared library (pkg-config --libs)"
    needed=$(needed_lib "$OUT/outside-shared")
    if [[ $needed == "libpoolsrv.so.$MAJOR" ]]; then
        pass "outside-shared needs libpoolsrv.so.$MAJOR"
    else
        fail "outside-shared needs libpoolsrv.so.$MAJOR" "NEEDED: '$needed'"
    fi
    run_outside outside-shared "$OUT/outside-shared" "LD_LIBRARY_PATH=$LIB"
else
    fail "build outside.c against the shared library (pkg-config --libs)" "$(show "$TMP/shared.log")"
fi

# Static: cc -static outside.c $(pkg-config --static --cflags --libs poolsrv),
# which also proves Libs.private is complete.  Without a static libc, only
# libpoolsrv is linked statically.
STATIC_LINK=(-static "${PC_STATIC[@]}")
libc_a=$("$CC" -print-file-name=libc.a 2>/dev/null)
if [[ $libc_a != /* || ! -e $libc_a ]]; then
    STATIC_LINK=("${PC_STATIC[@]/#-lpoolsrv/-l:libpoolsrv.a}")
    echo "note: no static libc; linking only libpoolsrv statically"
fi
if (cd "$OUT" && timeout "$RUN_LIMIT" "$CC" "${STRICT[@]}" -D_POSIX_C_SOURCE=200809L \
    outside.c "${PC_CFLAGS[@]}" "${STATIC_LINK[@]}" -o outside-static) >"$TMP/static.log" 2>&1; then
    pass "build outside.c statically (pkg-config --static --libs)"
    needed=$(needed_lib "$OUT/outside-static")
    if [[ -z $needed ]]; then
        pass "outside-static does not need libpoolsrv.so"
    else
        fail "outside-static does not need libpoolsrv.so" "NEEDED: '$needed'"
    fi
    run_outside outside-static "$OUT/outside-static" -u LD_LIBRARY_PATH
else
    fail "build outside.c statically (pkg-config --static --libs)" "$(show "$TMP/static.log")"
fi

# ----------------------------------------------------------- CMake package

# find_package(poolsrv) and poolsrv::poolsrv from a project outside the
# tree; CMAKE_PREFIX_PATH points into DESTDIR (the config file computes its
# paths from its own location).  cmake is optional for a user: skip if absent.
CMAKE=${CMAKE:-cmake}
if command -v "$CMAKE" >/dev/null 2>&1; then
    CM=$TMP/cmake-app
    mkdir -p "$CM/src"
    cp tests/install/outside.c "$CM/src/"
    cat >"$CM/src/CMakeLists.txt" <<CMEOF
cmake_minimum_required(VERSION 3.10)
project(outside C)
find_package(poolsrv $VERSION REQUIRED)
add_executable(outside-cmake outside.c)
target_compile_definitions(outside-cmake PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(outside-cmake PRIVATE poolsrv::poolsrv)
add_executable(outside-cmake-static outside.c)
target_compile_definitions(outside-cmake-static PRIVATE _POSIX_C_SOURCE=200809L)
target_link_libraries(outside-cmake-static PRIVATE poolsrv::poolsrv_static)
CMEOF
    if (cd "$CM" && timeout "$RUN_LIMIT" "$CMAKE" -S src -B build -DCMAKE_PREFIX_PATH="$DEST$PREFIX" &&
        timeout "$RUN_LIMIT" "$CMAKE" --build build) >"$TMP/cmake.log" 2>&1; then
        pass "cmake: find_package(poolsrv $VERSION) and poolsrv::poolsrv, poolsrv::poolsrv_static"
        needed=$(needed_lib "$CM/build/outside-cmake")
        if [[ $needed == "libpoolsrv.so.$MAJOR" ]]; then
            pass "outside-cmake needs libpoolsrv.so.$MAJOR"
        else
            fail "outside-cmake needs libpoolsrv.so.$MAJOR" "NEEDED: '$needed'"
        fi
        run_outside outside-cmake "$CM/build/outside-cmake" "LD_LIBRARY_PATH=$LIB"
        run_outside outside-cmake-static "$CM/build/outside-cmake-static" -u LD_LIBRARY_PATH
    else
        fail "cmake: find_package(poolsrv $VERSION) and poolsrv::poolsrv" "$(show "$TMP/cmake.log")"
    fi
    # a request for the next major version must not be satisfied
    sed -i "s/find_package(poolsrv $VERSION REQUIRED)/find_package(poolsrv $((MAJOR + 1)).0 REQUIRED)/" \
        "$CM/src/CMakeLists.txt"
    if (cd "$CM" && timeout "$RUN_LIMIT" "$CMAKE" -S src -B build2 -DCMAKE_PREFIX_PATH="$DEST$PREFIX") \
        >"$TMP/cmake2.log" 2>&1; then
        fail "cmake: find_package(poolsrv $((MAJOR + 1)).0) is refused (another soname)"
    elif grep -q "compatible with requested version" "$TMP/cmake2.log"; then
        pass "cmake: find_package(poolsrv $((MAJOR + 1)).0) is refused (another soname)"
    else
        fail "cmake: find_package(poolsrv $((MAJOR + 1)).0) is refused (another soname)" \
            "$(show "$TMP/cmake2.log")"
    fi
else
    echo "skip CMake package test: no cmake (apt-get install cmake)"
fi

# ------------------------------------------------- a chat server, as a stranger

# chat.c posts to other connections (ps_conn_ref_of, ps_conn_post) and keeps a
# heartbeat (ps_conn_timer, on_timer), knowing only the installed header.
# chat_session HOST PORT: two subscribers and a publisher over /dev/tcp.
chat_session() {
    local host=$1 port=$2 a b p line
    exec {a}<>"/dev/tcp/$host/$port" || return 1
    exec {b}<>"/dev/tcp/$host/$port" || return 1
    exec {p}<>"/dev/tcp/$host/$port" || return 1
    printf 'SUB news\n' >&"$a"
    printf 'SUB news\n' >&"$b"
    IFS= read -r -t "$RUN_LIMIT" line <&"$a" && [[ $line == "OK news" ]] || return 2
    IFS= read -r -t "$RUN_LIMIT" line <&"$b" && [[ $line == "OK news" ]] || return 3
    printf 'PUB news hello all\n' >&"$p"
    IFS= read -r -t "$RUN_LIMIT" line <&"$p" && [[ $line == "SENT 2" ]] || return 4
    IFS= read -r -t "$RUN_LIMIT" line <&"$a" && [[ $line == "MSG news hello all" ]] || return 5
    IFS= read -r -t "$RUN_LIMIT" line <&"$b" && [[ $line == "MSG news hello all" ]] || return 6
    exec {b}>&- # one subscriber leaves: the next message reaches one
    printf 'PUB news again\n' >&"$p"
    IFS= read -r -t "$RUN_LIMIT" line <&"$p" && [[ $line == "SENT 1" ]] || return 7
    IFS= read -r -t "$RUN_LIMIT" line <&"$a" && [[ $line == "MSG news again" ]] || return 8
    # silent now: the heartbeat (300 ms) comes
    IFS= read -r -t "$RUN_LIMIT" line <&"$a" && [[ $line == "PING" ]] || return 9
    exec {a}>&- {p}>&-
}

cp tests/install/chat.c "$OUT/"
if (cd "$OUT" && timeout "$RUN_LIMIT" "$CC" "${STRICT[@]}" -D_POSIX_C_SOURCE=200809L \
    chat.c "${PC_CFLAGS[@]}" "${PC_LIBS[@]}" -lpthread -o chat) >"$TMP/chat.log" 2>&1; then
    pass "build chat.c (posts, timers) against the installed header"
    start_server "$TMP/chat.out" env "LD_LIBRARY_PATH=$LIB" "$OUT/chat" 127.0.0.1:0 300
    if await_listen "$SERVER_PID" "$TMP/chat.out"; then
        chat_session "$HOST" "$PORT"
        rc=$?
        if ((rc == 0)); then
            pass "chat: SUB/PUB fan-out through ps_conn_post, heartbeat through on_timer"
        else
            fail "chat: SUB/PUB fan-out through ps_conn_post, heartbeat through on_timer" \
                "step $rc failed" "$(show "$TMP/chat.out.err")"
        fi
        stop_server "$SERVER_PID"
        rc=$?
        if ((rc == 0)); then
            pass "chat: SIGTERM stops it, exit status 0"
        else
            fail "chat: SIGTERM stops it, exit status 0" "exit status $rc"
        fi
    else
        fail "chat prints 'listening on ADDR'" "$(show "$TMP/chat.out.err")"
        stop_server "$SERVER_PID"
    fi
else
    fail "build chat.c (posts, timers) against the installed header" "$(show "$TMP/chat.log")"
fi

# --------------------------------------------- installed programs together

# The installed poolsrv-echo answers the installed poolsrv-client.
start_server "$TMP/echo.out" "$BIN/poolsrv-echo" --listen 127.0.0.1:0
if await_listen "$SERVER_PID" "$TMP/echo.out"; then
    got=$(timeout "$RUN_LIMIT" "$BIN/poolsrv-client" --timeout 5 "$HOST" "$PORT" "installed" 2>&1)
    if [[ $got == installed ]]; then
        pass "installed poolsrv-client through installed poolsrv-echo"
    else
        fail "installed poolsrv-client through installed poolsrv-echo" "got '$got'"
    fi
    stop_server "$SERVER_PID"
    rc=$?
    if ((rc == 0)); then
        pass "installed poolsrv-echo: SIGTERM stops it, exit status 0"
    else
        fail "installed poolsrv-echo: SIGTERM stops it, exit status 0" "exit status $rc"
    fi
else
    fail "installed poolsrv-echo prints 'listening on ADDR'" "$(show "$TMP/echo.out.err")"
    stop_server "$SERVER_PID"
fi

# ------------------------------------------------------ live install, ldconfig

# Without DESTDIR, `make install` refreshes the linker cache (as root) or
# says what to do.  LDCONFIG is a stand-in that logs its calls, so this test
# leaves the machine's cache alone; PREFIX is in $TMP, which the real linker
# does not search, so the note about rpath / LD_LIBRARY_PATH must appear.
LIVE=$TMP/live
printf '#!/bin/sh\necho "$@" >>"%s/ldconfig.calls"\n' "$TMP" >"$TMP/fake-ldconfig"
chmod +x "$TMP/fake-ldconfig"
if tree_make install PREFIX="$LIVE" \
    LDCONFIG="$TMP/fake-ldconfig" >"$TMP/live.log" 2>&1; then
    if [[ $(id -u) == 0 ]]; then
        if [[ -s $TMP/ldconfig.calls ]]; then
            pass "live install as root runs ldconfig"
        else
            fail "live install as root runs ldconfig" "$(show "$TMP/live.log")"
        fi
    fi
    if grep -q "rpath" "$TMP/live.log" && grep -q "LD_LIBRARY_PATH=$LIVE/lib" "$TMP/live.log"; then
        pass "live install outside the linker's path says to use an rpath or LD_LIBRARY_PATH"
    else
        fail "live install outside the linker's path says to use an rpath or LD_LIBRARY_PATH" \
            "$(show "$TMP/live.log")"
    fi
    rm -f "$TMP/ldconfig.calls"
    tree_make install PREFIX="$LIVE" \
        DESTDIR="$TMP/staged" LDCONFIG="$TMP/fake-ldconfig" >"$TMP/staged.log" 2>&1
    if [[ ! -e $TMP/ldconfig.calls ]] && ! grep -q rpath "$TMP/staged.log"; then
        pass "a staged install (DESTDIR) neither runs ldconfig nor prints the note"
    else
        fail "a staged install (DESTDIR) neither runs ldconfig nor prints the note" \
            "$(show "$TMP/staged.log")"
    fi
    tree_make uninstall PREFIX="$LIVE" \
        >/dev/null 2>&1
else
    fail "make install PREFIX=$LIVE" "$(show "$TMP/live.log")"
fi

# --------------------------------------------------------------- uninstall

if tree_make uninstall \
    DESTDIR="$DEST" PREFIX="$PREFIX" >"$TMP/uninstall.log" 2>&1; then
    pass "make uninstall"
else
    fail "make uninstall" "$(show "$TMP/uninstall.log")"
fi
for f in "${EXPECTED[@]}"; do
    if [[ -e $f || -L $f ]]; then
        fail "uninstall removed ${f#"$DEST"}"
    fi
done
left=$(find "$DEST" \( -type f -o -type l \) 2>/dev/null | sed "s|^$DEST||" | head -n 10)
if [[ -z $left ]]; then
    pass "uninstall left no file or link in DESTDIR"
else
    mapfile -t left_lines <<<"$left"
    fail "uninstall left no file or link in DESTDIR" "${left_lines[@]}"
fi

echo "install: $PASSED passed, $FAILED failed"
((FAILED == 0))

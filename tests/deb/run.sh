#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tests/deb/run.sh - the Debian packages, as a user of them: in a scratch copy
# of the tree, `dpkg-buildpackage -us -uc -b`; lintian must report no error
# and no warning; each package holds what it should; the three packages are
# unpacked into a scratch root (dpkg -x, nothing is installed on this
# machine), and a program from outside the tree is built against that root
# with pkg-config and with CMake, and run.  Run by `make test-deb` (not part
# of `make test`: it builds everything once more, about a minute).
#
# Needs dpkg-buildpackage, debhelper, lintian, check (apt-get install
# debhelper devscripts lintian dpkg-dev check); skips without them.
# Last line: "deb: N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=bench/lib.sh
. bench/lib.sh # term_wait
VERSION=$(cat VERSION) || exit 1
MAJOR=${VERSION%%.*}
BUILD_LIMIT=900 # seconds for the package build
RUN_LIMIT=30

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   $1"; }
fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL $1"
    shift
    local l
    for l in "$@"; do printf '%s\n' "$l" | sed 's/^/     | /'; done
}
finish() {
    echo "deb: $PASSED passed, $FAILED failed"
    ((FAILED == 0))
    exit
}

for tool in dpkg-buildpackage dh lintian dpkg-architecture; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skip: $tool is not installed (apt-get install debhelper devscripts lintian dpkg-dev)"
        finish
    fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/poolsrv-deb-test.XXXXXX") || exit 1
SERVER_PID=
cleanup() {
    [[ -n $SERVER_PID ]] && kill -KILL "$SERVER_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
exec </dev/null

# The tree as it is now (tracked and new files), without build outputs: the
# build happens there, so its outputs (../*.deb, debian/tmp) stay out of
# this tree.
SRC=$TMP/poolsrv-$VERSION
mkdir -p "$SRC"
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$SRC" -xf - || exit 1

start=$SECONDS
if (cd "$SRC" && timeout "$BUILD_LIMIT" dpkg-buildpackage -us -uc -b -j2) >"$TMP/build.log" 2>&1; then
    pass "dpkg-buildpackage -us -uc -b ($((SECONDS - start)) s)"
else
    fail "dpkg-buildpackage -us -uc -b" "$(tail -n 25 "$TMP/build.log")"
    finish
fi
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
CHANGES=$TMP/poolsrv_${VERSION}_$ARCH.changes
declare -A DEB
for p in libpoolsrv$MAJOR libpoolsrv-dev poolsrv-tools; do
    DEB[$p]=$TMP/${p}_${VERSION}_$ARCH.deb
    if [[ -e ${DEB[$p]} ]]; then pass "built $p"; else fail "built $p" "$(ls "$TMP")"; fi
done
((FAILED == 0)) || finish

# ------------------------------------------------------------- lintian
lintian --fail-on error,warning --info --display-info --pedantic "$CHANGES" >"$TMP/lintian.log" 2>&1
rc=$?
ew=$(grep -E '^[EW]: ' "$TMP/lintian.log")
if ((rc == 0)) && [[ -z $ew ]]; then
    pass "lintian: no errors or warnings"
else
    fail "lintian: no errors or warnings (status $rc)" "$ew"
fi
rest=$(grep -E '^[IPX]: ' "$TMP/lintian.log" | sed -E 's/^([IPX]): [^ ]+: /\1: /' | sort -u)
[[ -n $rest ]] && printf 'note: lintian info/pedantic/experimental tags:\n%s\n' "$rest" | sed '2,$s/^/  /'

# --------------------------------------------------- package contents
# has PACKAGE PATH...: every PATH is in PACKAGE (dpkg-deb -c).
has() {
    local pkg=$1 path missing=()
    shift
    dpkg-deb -c "${DEB[$pkg]}" | awk '{print $6}' | sed 's|^\./|/|' >"$TMP/$pkg.list"
    for path in "$@"; do grep -qxF "$path" "$TMP/$pkg.list" || missing+=("$path"); done
    if ((${#missing[@]} == 0)); then pass "$pkg holds $*"; else fail "$pkg holds what it should" "missing: ${missing[*]}"; fi
}
has "libpoolsrv$MAJOR" "/usr/lib/$MA/libpoolsrv.so.$VERSION" "/usr/lib/$MA/libpoolsrv.so.$MAJOR"
has libpoolsrv-dev /usr/include/poolsrv.h "/usr/lib/$MA/libpoolsrv.so" "/usr/lib/$MA/libpoolsrv.a" \
    "/usr/lib/$MA/pkgconfig/poolsrv.pc" "/usr/lib/$MA/cmake/poolsrv/poolsrvConfig.cmake" \
    "/usr/lib/$MA/cmake/poolsrv/poolsrvConfigVersion.cmake" /usr/share/man/man3/poolsrv.3.gz
has poolsrv-tools /usr/bin/poolsrv-echo /usr/bin/poolsrv-client /usr/bin/poolsrv-bench \
    /usr/share/man/man1/poolsrv-echo.1.gz /usr/share/man/man1/poolsrv-client.1.gz \
    /usr/share/man/man1/poolsrv-bench.1.gz
if grep -q "libpoolsrv$MAJOR" <(dpkg-deb -f "${DEB[poolsrv-tools]}" Depends); then
    fail "poolsrv-tools links libpoolsrv statically (no dependency)" "$(dpkg-deb -f "${DEB[poolsrv-tools]}" Depends)"
else
    pass "poolsrv-tools links libpoolsrv statically (no dependency)"
fi
# the symbols file went into the package, with every exported symbol
dpkg-deb --ctrl-tarfile "${DEB[libpoolsrv$MAJOR]}" | tar -xO ./symbols >"$TMP/symbols" 2>/dev/null
nsym=$(grep -c '^ ' "$TMP/symbols")
nexp=$(dpkg-deb --fsys-tarfile "${DEB[libpoolsrv$MAJOR]}" | tar -xO "./usr/lib/$MA/libpoolsrv.so.$VERSION" >"$TMP/lib.so" &&
    nm -D --defined-only "$TMP/lib.so" | wc -l)
if ((nsym > 0 && nsym == nexp)); then
    pass "libpoolsrv$MAJOR symbols file lists all $nexp exported symbols"
else
    fail "libpoolsrv$MAJOR symbols file lists all exported symbols" "symbols: $nsym, exported: $nexp"
fi

# ------------------------------------------------- an outside program
ROOT=$TMP/root
for p in "${!DEB[@]}"; do dpkg -x "${DEB[$p]}" "$ROOT"; done
OUT=$TMP/outside
mkdir -p "$OUT"
cp tests/install/outside.c "$OUT/"
export PKG_CONFIG_LIBDIR=$ROOT/usr/lib/$MA/pkgconfig PKG_CONFIG_SYSROOT_DIR=$ROOT
read -ra PC <<<"$(pkg-config --cflags --libs poolsrv)"
# run_outside NAME EXE: start it, expect "version V" and "listening on", stop it.
run_outside() {
    local name=$1 exe=$2
    LD_LIBRARY_PATH=$ROOT/usr/lib/$MA "$exe" 127.0.0.1:0 >"$TMP/$name.out" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + 10))
    until grep -qs '^listening on ' "$TMP/$name.out" || ((SECONDS > deadline)); do
        read -r -t 0.05 <> <(:) || true
    done
    if grep -qx "version $VERSION" "$TMP/$name.out" && grep -q '^listening on ' "$TMP/$name.out" &&
        grep -q "$ROOT/usr/lib/$MA/libpoolsrv.so.$VERSION" "/proc/$SERVER_PID/maps"; then
        pass "$name runs on the packaged libpoolsrv.so.$VERSION"
    else
        fail "$name runs on the packaged libpoolsrv.so.$VERSION" "$(cat "$TMP/$name.out")"
    fi
    kill -TERM "$SERVER_PID"
    term_wait "$SERVER_PID" 10 || fail "$name stops on SIGTERM"
    SERVER_PID=
}
if (cd "$OUT" && timeout "$RUN_LIMIT" cc -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L \
    outside.c "${PC[@]}" -o outside) >"$TMP/cc.log" 2>&1; then
    pass "outside.c builds against the packages with pkg-config"
    run_outside outside "$OUT/outside"
else
    fail "outside.c builds against the packages with pkg-config" "$(cat "$TMP/cc.log")"
fi
if command -v cmake >/dev/null 2>&1; then
    mkdir -p "$OUT/cm"
    printf 'cmake_minimum_required(VERSION 3.10)\nproject(o C)\nfind_package(poolsrv %s REQUIRED)\nadd_executable(outside-cmake ../outside.c)\ntarget_compile_definitions(outside-cmake PRIVATE _POSIX_C_SOURCE=200809L)\ntarget_link_libraries(outside-cmake PRIVATE poolsrv::poolsrv)\n' \
        "$VERSION" >"$OUT/cm/CMakeLists.txt"
    if (cd "$OUT/cm" && timeout "$RUN_LIMIT" cmake -S . -B b -DCMAKE_PREFIX_PATH="$ROOT/usr" \
        -DCMAKE_LIBRARY_ARCHITECTURE="$MA" && timeout "$RUN_LIMIT" cmake --build b) >"$TMP/cm.log" 2>&1; then
        pass "outside.c builds against the packages with find_package(poolsrv)"
        run_outside outside-cmake "$OUT/cm/b/outside-cmake"
    else
        fail "outside.c builds against the packages with find_package(poolsrv)" "$(tail -n 20 "$TMP/cm.log")"
    fi
else
    echo "skip CMake: no cmake"
fi
got=$("$ROOT/usr/bin/poolsrv-echo" --version 2>&1)
if [[ $got == *"$VERSION"* ]]; then pass "packaged poolsrv-echo --version"; else fail "packaged poolsrv-echo --version" "$got"; fi
finish

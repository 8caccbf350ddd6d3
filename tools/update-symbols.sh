#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/update-symbols.sh [LIBRARY] - write debian/libpoolsrv0.symbols from
# the symbols the shared library exports (default: the one `make` built).
#
# Every symbol keeps the version it already has in the file (the release
# that first had it); new ones get the current VERSION.  Symbols that are
# gone are dropped, and the script says so: within one soname that is an
# ABI break (docs/abi.md), which `make abi-check` also reports.
# debian/rules builds with dpkg-gensymbols -c4, so the package build fails
# until this file matches the library exactly.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(cat VERSION)
major=${version%%.*}
lib=${1:-lib/libpoolsrv.so.$version}
out=debian/libpoolsrv$major.symbols
if [[ ! -e $lib ]]; then
    echo "update-symbols: $lib is not built (run make)" >&2
    exit 1
fi
declare -A since
if [[ -e $out ]]; then
    while read -r sym ver; do
        since[$sym]=$ver
    done < <(sed -n 's/^ \([^ ]*\) \([^ ]*\)$/\1 \2/p' "$out")
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
    echo "libpoolsrv.so.$major libpoolsrv$major #MINVER#"
    echo "* Build-Depends-Package: libpoolsrv-dev"
    # "ps_foo@@POOLSRV_0.1" and the node itself "POOLSRV_0.1" (absolute)
    nm -D --defined-only --with-symbol-versions "$lib" | awk '{print $NF}' |
        sed -E 's/@@/@/; s/^(POOLSRV_[0-9.]+)$/\1@\1/' | LC_ALL=C sort |
        while read -r sym; do
            echo " $sym ${since[$sym]:-$version}"
        done
} >"$tmp"
for sym in "${!since[@]}"; do
    grep -qF " $sym " "$tmp" || echo "update-symbols: $sym is gone: an ABI break (docs/abi.md)" >&2
done
mv "$tmp" "$out"
trap - EXIT
echo "update-symbols: $(grep -c '^ ' "$out") symbols in $out"

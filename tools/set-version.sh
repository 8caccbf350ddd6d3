#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/set-version.sh X.Y.Z - set the project version: writes VERSION and the
# PS_VERSION_MAJOR/MINOR/PATCH lines of lib/include/poolsrv.h from it.  The
# library's build (lib/src/version.c) fails if the two disagree, and the
# unit test test_version compares the macros with ps_version().
# Without an argument: rewrite the macros from the current VERSION file.
# Then add a NEWS.md section; a new MAJOR also means a new soname (docs/abi.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# > 1)); then
    echo "usage: tools/set-version.sh [MAJOR.MINOR.PATCH]" >&2
    exit 2
fi
version=${1:-$(cat VERSION)}
if [[ ! $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
    echo "set-version: '$version' is not MAJOR.MINOR.PATCH" >&2
    exit 2
fi
for n in "${BASH_REMATCH[@]:1}"; do
    if ((10#$n > 255)); then
        echo "set-version: each part must be 0..255 (PS_VERSION_HEX has a byte each)" >&2
        exit 2
    fi
done
printf '%s\n' "$version" >VERSION
sed -i -E \
    -e "s/^(#define PS_VERSION_MAJOR )[0-9]+$/\1$((10#${BASH_REMATCH[1]}))/" \
    -e "s/^(#define PS_VERSION_MINOR )[0-9]+$/\1$((10#${BASH_REMATCH[2]}))/" \
    -e "s/^(#define PS_VERSION_PATCH )[0-9]+$/\1$((10#${BASH_REMATCH[3]}))/" \
    lib/include/poolsrv.h
grep -E '^#define PS_VERSION_(MAJOR|MINOR|PATCH) ' lib/include/poolsrv.h

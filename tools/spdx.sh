#!/usr/bin/env bash
# tools/spdx.sh [--check] - every source file of the tree starts with
#   /* SPDX-License-Identifier: MIT */       (C, headers, the linker script)
#   # SPDX-License-Identifier: MIT           (shell, make, CMake, gnuplot)
# as its first line, or its second after a #! line.
#
# Without --check, adds the line to files that lack it (idempotent: a file
# that has an SPDX-License-Identifier line among its first three lines is
# left alone), and lists them.  With --check, changes nothing and exits 1
# naming the files that lack it (docs/check-docs.sh runs this).
#
# Which files: tracked and new (not ignored) files named *.c, *.h, *.sh,
# *.mk, Makefile, *.cmake.in, *.map, *.gp, and files whose first line is a
# #! for sh, bash or make (.ci/run, debian/rules).  Documentation, data,
# test corpora and configuration files are not sources.
set -euo pipefail
cd "$(dirname "$0")/.."
check=no
if [[ ${1:-} == --check ]]; then
    check=yes
elif (($#)); then
    echo "usage: tools/spdx.sh [--check]" >&2
    exit 2
fi
TAG='SPDX-License-Identifier: MIT'

# style FILE: c, hash, or nothing for a file that is not a source.
style() {
    case $1 in
    *.c | *.h | *.map) echo c ;;
    *.sh | *.mk | */Makefile | Makefile | *.cmake.in | *.gp) echo hash ;;
    *)
        if head -n 1 "$1" 2>/dev/null | grep -qE '^#!.*(/|env )(ba)?sh\b|^#!.*make\b'; then
            echo hash
        fi
        ;;
    esac
}

missing=()
while IFS= read -r -d '' f; do
    [[ -f $f && ! -L $f ]] || continue
    case $f in */corpus/* | */corpus-*/*) continue ;; esac
    s=$(style "$f")
    [[ -n $s ]] || continue
    head -n 3 "$f" | grep -qF "$TAG" && continue
    missing+=("$f")
    [[ $check == yes ]] && continue
    if [[ $s == c ]]; then line="/* $TAG */"; else line="# $TAG"; fi
    tmp=$(mktemp)
    if head -n 1 "$f" | grep -q '^#!'; then
        { head -n 1 "$f"; printf '%s\n' "$line"; tail -n +2 "$f"; } >"$tmp"
    else
        { printf '%s\n' "$line"; cat "$f"; } >"$tmp"
    fi
    chmod --reference="$f" "$tmp"
    mv "$tmp" "$f"
    echo "spdx: added to $f"
done < <(git ls-files -z -co --exclude-standard)

if [[ $check == yes ]]; then
    if ((${#missing[@]})); then
        echo "spdx: no '$TAG' line in: ${missing[*]}"
        echo "spdx: run tools/spdx.sh to add it"
        exit 1
    fi
    echo "spdx: every source file has '$TAG'"
fi

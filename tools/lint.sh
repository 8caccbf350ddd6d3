#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/lint.sh - static analysis of poolsrv's C sources: cppcheck and
# clang-tidy, with the checked-in .cppcheck-suppressions and .clang-tidy.
#
# Usage: tools/lint.sh [--cppcheck|--clang-tidy] [FILE.c ...]
#   no files   every .c under lib/src, server (examples included), client,
#              bench/src and fuzz that exists.  Not linted: tests (Check
#              macros), bench/refs (reference servers, one of them broken on
#              purpose), fuzz/fuzz_echo_args.c (it #includes server/echo.c,
#              which is linted itself).
#   --cppcheck / --clang-tidy   run only that tool.
# Environment: CPPCHECK, CLANG_TIDY (tool commands), JOBS (default: nproc).
#
# Exit status: 0 clean; 1 findings (any cppcheck finding; a clang-tidy check
# listed in WarningsAsErrors, or a file clang-tidy could not compile);
# 2 usage error or a tool missing.  clang-tidy readability warnings are
# printed but do not fail.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CPPCHECK=${CPPCHECK:-cppcheck}
CLANG_TIDY=${CLANG_TIDY:-clang-tidy}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

run_cppcheck=1
run_tidy=1
files=()
for arg in "$@"; do
    case $arg in
    --cppcheck) run_tidy=0 ;;
    --clang-tidy) run_cppcheck=0 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "lint: unknown option '$arg' (try --help)" >&2
        exit 2
        ;;
    *) files+=("$arg") ;;
    esac
done

if ((${#files[@]} == 0)); then
    dirs=()
    for d in lib/src server client bench/src fuzz; do
        [[ -d $d ]] && dirs+=("$d")
    done
    mapfile -t files < <(find "${dirs[@]}" -name '*.c' ! -path 'fuzz/fuzz_echo_args.c' | sort)
fi
if ((${#files[@]} == 0)); then
    echo "lint: no C files to check" >&2
    exit 2
fi

# The flags the Makefile builds with, as far as the analysis needs them.
# version.c checks the header's PS_VERSION_HEX against the build's, as the
# Makefile passes it (from VERSION).
IFS=. read -r vmaj vmin vpat <VERSION
defs=(-D_GNU_SOURCE '-DPS_VERSION_STRING="lint"'
    "-DPS_BUILD_VERSION_HEX=$(printf '0x%02x%02x%02x' "$vmaj" "$vmin" "$vpat")")
incs=()
for d in lib/include lib/src server server/examples client bench/src; do
    [[ -d $d ]] && incs+=("-I$d")
done

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "lint: '$1' not found; install it: sudo apt-get install $2" >&2
        exit 2
    fi
}

status=0

if ((run_cppcheck)); then
    need "$CPPCHECK" cppcheck
    echo "lint: cppcheck, ${#files[@]} files"
    # --library=posix models libc/POSIX; -D limits the check to the one
    # configuration we build.
    if ! "$CPPCHECK" --quiet --std=c11 --library=posix \
        --enable=warning,style,performance,portability \
        --inline-suppr --suppressions-list=.cppcheck-suppressions \
        --error-exitcode=1 -j "$JOBS" \
        --template='{file}:{line}:{column}: {severity}: {message} [cppcheck-{id}]' \
        "${defs[@]}" "${incs[@]}" "${files[@]}"; then
        status=1
    fi
fi

if ((run_tidy)); then
    need "$CLANG_TIDY" clang-tidy
    echo "lint: clang-tidy, ${#files[@]} files"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # One clang-tidy per file, JOBS at a time; each writes its own log so
    # the reports do not interleave, and leaves a marker when it fails.
    # shellcheck disable=SC2016 # the script is for sh -c, expanded there
    printf '%s\n' "${files[@]}" |
        xargs -P "$JOBS" -I{} sh -c '
            tmp=$1 file=$2 tool=$3
            shift 3
            log="$tmp/$(printf %s "$file" | tr / _).log"
            "$tool" --quiet "$file" -- "$@" >"$log" 2>&1 || : >"$log.failed"
        ' sh "$tmp" {} "$CLANG_TIDY" -std=c11 "${defs[@]}" "${incs[@]}"
    for f in "${files[@]}"; do
        log="$tmp/$(printf %s "$f" | tr / _).log"
        # clang-tidy's own chatter ("N warnings generated.", suppressed counts).
        grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter' \
            "$log" || true
        if [[ -e $log.failed ]]; then status=1; fi
    done
fi

if ((status)); then
    echo "lint: findings above" >&2
else
    echo "lint: clean"
fi
exit "$status"

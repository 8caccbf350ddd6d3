#!/usr/bin/env bash
# docs/check-docs.sh - keep the documentation honest.  Run by `make check-docs`.
#
#   - every man page in docs/man renders without a warning (groff -ww);
#   - every long option in a program's --help appears in its man page;
#   - every public function, every ps_config field and every ps_stats field
#     of lib/include/poolsrv.h appears in poolsrv(3) and in docs/api.md;
#   - docs/architecture.svg is well-formed XML;
#   - relative links in docs/*.md point at files that exist.
#
# Environment: ECHO_BIN, CLIENT_BIN, BENCH_BIN, KV_BIN (defaults: the paths of a
# normal build).  Last line: "docs: N passed, N failed"; the exit status is
# non-zero if any check failed.

set -u
cd "$(dirname "$0")/.." || exit 1

ECHO_BIN=${ECHO_BIN:-server/poolsrv-echo}
CLIENT_BIN=${CLIENT_BIN:-client/poolsrv-client}
BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
KV_BIN=${KV_BIN:-server/examples/poolsrv-kv}
HEADER=lib/include/poolsrv.h

PASSED=0
FAILED=0

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   $1"
}

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

# ------------------------------------------------------------ man pages

if command -v groff >/dev/null 2>&1; then
    for page in docs/man/*.[0-9]; do
        out=$(groff -t -man -ww -z "$page" 2>&1)
        if [[ -z $out ]]; then
            pass "$page renders without warnings"
        else
            mapfile -t lines <<<"$out"
            fail "$page renders without warnings" "${lines[@]:0:5}"
        fi
    done
else
    echo "skip man page rendering: no groff"
fi

# options_in_help BINARY: the long options its --help lists, one a line.
options_in_help() {
    "$1" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

# check_options BINARY PAGE
check_options() {
    local bin=$1 page=$2 opt escaped missing=()
    if [[ ! -x $bin ]]; then
        fail "$page: options of $bin" "$bin is not built"
        return
    fi
    while read -r opt; do
        escaped=${opt//-/\\-}
        grep -qF -- "$escaped" "$page" || missing+=("$opt")
    done < <(options_in_help "$bin")
    if ((${#missing[@]} == 0)); then
        pass "$page has every option of $(basename "$bin") --help"
    else
        fail "$page has every option of $(basename "$bin") --help" "missing: ${missing[*]}"
    fi
}

check_options "$ECHO_BIN" docs/man/poolsrv-echo.1
check_options "$CLIENT_BIN" docs/man/poolsrv-client.1
check_options "$BENCH_BIN" docs/man/poolsrv-bench.1
check_options "$KV_BIN" docs/man/poolsrv-kv.1

# ------------------------------------------------------------------ API

mapfile -t FUNCS < <(grep -A1 '^PS_EXTERN' "$HEADER" | grep -oE '\bps_[a-z0-9_]+\(' |
    tr -d '(' | sort -u)
# Fields: the member names inside the ps_config and ps_stats structs.
struct_fields() {
    sed -n "/^typedef struct $1 {/,/^} $1;/p" "$HEADER" | sed 's|/\*.*||' |
        grep -oE '[a-z_0-9]+(\[[A-Z_]+\])?;' | sed 's/\[.*//; s/;//' | sort -u
}
mapfile -t CFG_FIELDS < <(struct_fields ps_config)
mapfile -t STATS_FIELDS < <(struct_fields ps_stats)

# check_names WHAT FILE NAME...: every NAME occurs in FILE as a word.
check_names() {
    local what=$1 file=$2 name missing=()
    shift 2
    for name in "$@"; do
        grep -qw -- "$name" "$file" || missing+=("$name")
    done
    if ((${#missing[@]} == 0)); then
        pass "$file covers all $# $what"
    else
        fail "$file covers all $# $what" "missing: ${missing[*]}"
    fi
}

for doc in docs/man/poolsrv.3 docs/api.md; do
    check_names "public functions" "$doc" "${FUNCS[@]}"
    check_names "ps_config fields" "$doc" "${CFG_FIELDS[@]}"
    check_names "ps_stats fields" "$doc" "${STATS_FIELDS[@]}"
done

# ------------------------------------------------------------ the diagram

if [[ -e docs/architecture.svg ]]; then
    if command -v xmllint >/dev/null 2>&1; then
        if out=$(xmllint --noout docs/architecture.svg 2>&1); then
            pass "docs/architecture.svg is well-formed"
        else
            fail "docs/architecture.svg is well-formed" "$out"
        fi
    else
        echo "skip docs/architecture.svg: no xmllint"
    fi
fi

# ----------------------------------------------------------------- links

broken=()
for md in docs/*.md; do
    dir=$(dirname "$md")
    while read -r target; do
        target=${target%%#*}
        [[ -z $target || $target == *://* || $target == mailto:* ]] && continue
        [[ -e $dir/$target ]] || broken+=("$md -> $target")
    done < <(grep -oE '\]\([^)]+\)' "$md" | sed 's/^](//; s/)$//')
done
if ((${#broken[@]} == 0)); then
    pass "relative links in docs/*.md resolve"
else
    fail "relative links in docs/*.md resolve" "${broken[@]}"
fi

echo "docs: $PASSED passed, $FAILED failed"
((FAILED == 0))

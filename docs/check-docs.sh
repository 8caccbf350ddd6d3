#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# docs/check-docs.sh - keep the documentation honest.  Run by `make check-docs`.
#
#   - every man page in docs/man renders without a warning (groff -ww);
#   - every long option in a program's --help appears in its man page, and
#     every default its --help states appears there too; --listen's example
#     addresses use the program's default port; docs/deployment.md's flag
#     table names only real flags, with the defaults --help states;
#   - every public function, every ps_config field and every ps_stats field
#     of lib/include/poolsrv.h appears in poolsrv(3) and in docs/api.md;
#   - docs/architecture.svg is well-formed XML;
#   - every source file has an SPDX-License-Identifier line (tools/spdx.sh);
#   - relative links in docs/*.md point at files that exist.
#
# Environment: ECHO_BIN, CLIENT_BIN, BENCH_BIN, HTTP_BIN, KV_BIN (defaults:
# the paths of a normal build).  Last line: "docs: N passed, N failed"; the exit status is
# non-zero if any check failed.

set -u
cd "$(dirname "$0")/.." || exit 1

ECHO_BIN=${ECHO_BIN:-server/poolsrv-echo}
CLIENT_BIN=${CLIENT_BIN:-client/poolsrv-client}
BENCH_BIN=${BENCH_BIN:-bench/poolsrv-bench}
HTTP_BIN=${HTTP_BIN:-server/examples/poolsrv-http}
KV_BIN=${KV_BIN:-server/examples/poolsrv-kv}
PROXY_BIN=${PROXY_BIN:-server/examples/poolsrv-proxy}
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
check_options "$HTTP_BIN" docs/man/poolsrv-http.1
check_options "$KV_BIN" docs/man/poolsrv-kv.1
check_options "$PROXY_BIN" docs/man/poolsrv-proxy.1


# ------------------------------------------------- defaults against --help

# help_defaults BINARY: "--flag default" for each option whose --help text
# names a default ("(default X", "default X", "X (default)", "X (..., default)").
help_defaults() {
    "$1" --help 2>/dev/null | awk '
        function flush() {
            if (flag != "" && def != "") print flag, def
            flag = ""; def = ""; text = ""
        }
        /^ +(-[a-zA-Z0-9], )?--[a-z]/ {
            flush()
            match($0, /--[a-z][a-z0-9-]*/)
            flag = substr($0, RSTART, RLENGTH)
        }
        /^ *$/ { flush(); next }
        flag != "" {
            text = text " " $0
            if (def == "" && match(text, /default:? [^ ,;)]+/)) {
                def = substr(text, RSTART, RLENGTH); sub(/^default:? /, "", def)
            }
            if (def == "" && match(text, /[a-z]+ \((default|[^)]*, default)\)/)) {
                def = substr(text, RSTART, RLENGTH); sub(/ .*/, "", def)
            }
        }
        END { flush() }'
}

# The defaults each program's --help states are the ones its man page
# gives: the value appears in the page.
check_defaults() {
    local bin=$1 page=$2 flag def missing=()
    [[ -x $bin ]] || return # check_options reported it
    while read -r flag def; do
        grep -qwF -- "${def//-/\\-}" "$page" || missing+=("$flag $def")
    done < <(help_defaults "$bin")
    if ((${#missing[@]} == 0)); then
        pass "$page names every default of $(basename "$bin") --help"
    else
        fail "$page names every default of $(basename "$bin") --help" "missing: ${missing[*]}"
    fi
}

# --listen's example addresses use the program's own default port (ports 0
# are ephemeral examples).
check_listen_examples() {
    local bin=$1 text def port bad=()
    [[ -x $bin ]] || return
    text=$("$bin" --help 2>/dev/null | awk '/--listen/ {on = 1} on && /^ +-/ && !/--listen/ {exit} on')
    def=$(help_defaults "$bin" | awk '$1 == "--listen" {print $2}')
    [[ -n $def ]] || return
    while read -r port; do
        [[ $port == 0 || $port == "${def##*:}" ]] || bad+=("$port")
    done < <(grep -oE '(\]|[0-9]):[0-9]+' <<<"$text" | sed 's/.*://')
    if ((${#bad[@]} == 0)); then
        pass "$(basename "$bin") --help: --listen examples use its default port ${def##*:}"
    else
        fail "$(basename "$bin") --help: --listen examples use its default port ${def##*:}" \
            "other ports: ${bad[*]}"
    fi
}

for pair in "$ECHO_BIN docs/man/poolsrv-echo.1" "$CLIENT_BIN docs/man/poolsrv-client.1" \
    "$BENCH_BIN docs/man/poolsrv-bench.1" "$HTTP_BIN docs/man/poolsrv-http.1" \
    "$KV_BIN docs/man/poolsrv-kv.1"; do
    # shellcheck disable=SC2086 # two words
    check_defaults $pair
    check_listen_examples "${pair%% *}"
done

# docs/deployment.md's table of flags: each flag exists in poolsrv-echo
# --help, and the default column holds the default --help states.
if [[ -x $ECHO_BIN ]]; then
    declare -A ECHO_DEF
    while read -r flag def; do ECHO_DEF[$flag]=$def; done < <(help_defaults "$ECHO_BIN")
    echo_help=$("$ECHO_BIN" --help 2>/dev/null)
    problems=()
    while IFS='|' read -r _ col1 col2 _; do
        while read -r flag; do
            [[ -z $flag ]] && continue
            grep -qF -- "$flag" <<<"$echo_help" || problems+=("$flag is not in --help")
            def=${ECHO_DEF[$flag]:-}
            [[ -z $def ]] || grep -qwF -- "$def" <<<"$col2" ||
                problems+=("$flag: table says '${col2# }', --help says default $def")
        done < <(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$col1")
    done < <(sed -n '/^## Flags that matter in production/,/^## /p' docs/deployment.md | grep '^| `')
    if ((${#problems[@]} == 0)); then
        pass "docs/deployment.md's flag table agrees with poolsrv-echo --help"
    else
        fail "docs/deployment.md's flag table agrees with poolsrv-echo --help" "${problems[@]}"
    fi
fi

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

# ------------------------------------------------------------- licence

# Every source file names its licence (LICENSE, MIT): tools/spdx.sh adds the
# line where it is missing.
if out=$(tools/spdx.sh --check 2>&1); then
    pass "every source file has an SPDX-License-Identifier line"
else
    fail "every source file has an SPDX-License-Identifier line" "$out"
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

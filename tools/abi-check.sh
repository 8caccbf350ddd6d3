#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# tools/abi-check.sh BASELINE CURRENT SUPPRESSIONS - is the ABI dump CURRENT
# (abidw) compatible with BASELINE under the rules of docs/abi.md?  Run by
# `make abi-check`.  Exit 0 if so, 1 if not (the report says why).
#
# Two passes, because a libabigail suppression of a type suppresses every
# change to it once one member was appended:
#   1. abidiff with the suppressions (members appended to ps_config,
#      ps_handler, ps_stats are allowed) and without added functions: any
#      other change fails;
#   2. abidiff without suppressions: a member of any type that was changed,
#      moved, renamed or deleted fails, even next to an allowed append.
set -u
if (($# != 3)); then
    echo "usage: tools/abi-check.sh BASELINE CURRENT SUPPRESSIONS" >&2
    exit 2
fi
ABIDIFF=${ABIDIFF:-abidiff}
base=$1 cur=$2 sup=$3
out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT

"$ABIDIFF" --no-added-syms --suppressions "$sup" "$base" "$cur" >"$out" 2>&1
rc=$?
if ((rc != 0)); then
    cat "$out"
    echo "abi-check: abidiff reports a change the rules do not allow (status $rc)"
    exit 1
fi
"$ABIDIFF" --no-added-syms "$base" "$cur" >"$out" 2>&1
bad=$(grep -E "data members? (change|deletion)|offset changed|type of '|name of '" "$out")
if [[ -n $bad ]]; then
    cat "$out"
    echo "abi-check: existing members changed (only appending to ps_config, ps_handler, ps_stats is allowed)"
    exit 1
fi
exit 0

# SPDX-License-Identifier: MIT
# abi/abi.mk - the ABI of libpoolsrv.so against the recorded baseline
# (docs/abi.md); included by the top Makefile.  Needs libabigail's abidw and
# abidiff (Debian: abigail-tools).
#
#   make abi-check      build the library with debug information in build/abi/
#                       and compare its ABI with abi/libpoolsrv.$(MAJOR).abi:
#                       fails on any change the rules of docs/abi.md do not
#                       allow (part of `make test` when abidiff is installed)
#   make abi-baseline   record the current ABI as the baseline (only at a
#                       release, after a soname bump, or for an addition the
#                       rules allow: docs/abi.md says when)

ABIDW   ?= abidw
ABIDIFF ?= abidiff
ABI_BASELINE := abi/libpoolsrv.$(MAJOR).abi
ABI_SUPPR    := abi/suppressions.abignore
# Its own build, so that the user's CFLAGS (without -g, say) cannot change
# what abidw sees.
ABI_SO       := build/abi/lib/libpoolsrv.so.$(VERSION)
# Only the types of the public header; no paths or line numbers, so the
# baseline changes only when the ABI does.
ABIDW_FLAGS  := --headers-dir lib/include --drop-private-types --no-corpus-path \
                --no-comp-dir-path --no-show-locs

.PHONY: abi-check abi-baseline abi-so

abi-so:
	$(Q)$(MAKE) --no-print-directory B=build/abi O=build/abi/ CFLAGS="-O2 -g" SAN= $(ABI_SO)

abi-baseline: abi-so
	$(ABIDW) $(ABIDW_FLAGS) --out-file $(ABI_BASELINE) $(ABI_SO)
	@echo "abi: recorded $(ABI_BASELINE); commit it with the change that made it necessary"

# Both sides are abidw dumps made with the same flags (comparing a dump
# without locations with the library itself would count every change to a
# public type as private, and hide it).  tools/abi-check.sh applies the
# rules.  With no baseline for this soname but one for an older soname, the
# soname was bumped: anything goes until `make abi-baseline` records the new
# one at the release.
abi-check:
	@if ! command -v $(ABIDIFF) >/dev/null 2>&1 || ! command -v $(ABIDW) >/dev/null 2>&1; then \
	  echo "abi-check: skipped, abidw/abidiff are not installed (apt-get install abigail-tools)"; \
	  exit 0; \
	fi; \
	if [ ! -e $(ABI_BASELINE) ]; then \
	  if ls abi/libpoolsrv.*.abi >/dev/null 2>&1; then \
	    echo "abi-check: no baseline for libpoolsrv.so.$(MAJOR) (soname bumped): nothing to compare"; \
	    exit 0; \
	  fi; \
	  echo "abi-check: $(ABI_BASELINE) is missing: run make abi-baseline" >&2; exit 1; \
	fi; \
	$(MAKE) --no-print-directory abi-so || exit 1; \
	$(ABIDW) $(ABIDW_FLAGS) --out-file build/abi/current.abi $(ABI_SO) || exit 1; \
	if ABIDIFF=$(ABIDIFF) tools/abi-check.sh $(ABI_BASELINE) build/abi/current.abi $(ABI_SUPPR); then \
	  echo "abi-check: libpoolsrv.so.$(MAJOR) is compatible with $(ABI_BASELINE)"; \
	else \
	  echo "abi-check: FAIL: undo the change, or bump the soname (docs/abi.md)" >&2; exit 1; \
	fi

test-extra:: abi-check

# The rules themselves: abi-check must pass on allowed changes and fail on
# the others (about 10 library builds, so not part of `make test`).
.PHONY: test-abi
test-abi:
	MAKE="$(MAKE)" tests/abi/run.sh

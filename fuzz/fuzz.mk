# SPDX-License-Identifier: MIT
# fuzz/fuzz.mk - libFuzzer targets, included by the top Makefile.
#
#   make fuzz                     build every target and run each for FUZZ_SECONDS
#   make fuzz FUZZ_SECONDS=600    longer runs
#   make fuzz FUZZ_TARGETS=proxy  one target
#   make fuzz-build               build only: build/fuzz/fuzz-<target>
#   make fuzz FUZZ_ARGS=-jobs=2   extra libFuzzer flags
#
# Needs clang and its libFuzzer/sanitizer runtime (Debian 12:
# apt-get install clang-14 libclang-rt-14-dev).  The library sources a
# target needs are compiled here with the sanitizers, into build/fuzz/; the
# normal lib/libpoolsrv.a is not used.
#
# Seeds are checked in under fuzz/corpus/<target>/ and never written to;
# what a run learns goes to build/fuzz/corpus/<target>/ (kept between runs,
# removed by make clean).  Crashing inputs are written to
# fuzz-out/<target>-crash-<sha1> (and leak-, timeout-, oom-); reproduce one
# with build/fuzz/fuzz-<target> fuzz-out/<file>, and add it to the matching
# Check suite as a regression test.
#
# Targets:
#   addr       ps_addr_parse / ps_addr_format / ps_policy_parse (lib/src/addr.c)
#   proxy      ps__proxy_parse, PROXY protocol v1/v2 (lib/src/proxy.c)
#   echo_args  poolsrv-echo's command line (server/echo.c, included whole)
#   http       server/examples/http_hello/fuzz_http.c, if that file exists
#   resp       server/examples/kv/fuzz_resp.c, if that file exists
# An example target is built from its fuzz_*.c plus every other .c file in
# its directory that does not define main(); override with FUZZ_HTTP_SRCS /
# FUZZ_RESP_SRCS.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_ARGS    ?=
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  ?= -g -O1 -fno-omit-frame-pointer
# Not -Werror: this is a second compiler over code that other people change;
# `make` (with -Werror) and tools/lint.sh are where warnings fail the build.
# Only the errors that would make a harness test the wrong thing are fatal.
FUZZ_WARN    := -std=c11 -Wall -Wextra -Werror=incompatible-pointer-types \
	-Werror=implicit-function-declaration -Werror=int-conversion
FUZZ_CPPFLAGS := -D_GNU_SOURCE -Ilib/include -Ilib/src -Iserver \
	-DPS_VERSION_STRING='"$(VERSION)"'
FUZZ_B       := build/fuzz
FUZZ_STAMP   := $(FUZZ_B)/.toolchain-$(subst /,_,$(FUZZ_CC)).ok

# The fuzz file of an example, then every other .c beside it without main().
# (The pattern sits in a variable: make would count its parentheses.)
FUZZ_MAIN_RE := ^(int|static int)[[:space:]]+main[[:space:]]*[(]
fuzz_example_srcs = $(1) $(filter-out $(dir $(1))fuzz_%.c /dev/null, \
	$(shell grep -L -E '$(FUZZ_MAIN_RE)' $(wildcard $(dir $(1))*.c) /dev/null 2>/dev/null))

FUZZ_HTTP_MAIN := $(wildcard server/examples/http_hello/fuzz_http.c)
FUZZ_RESP_MAIN := $(wildcard server/examples/kv/fuzz_resp.c)
FUZZ_HTTP_SRCS ?= $(if $(FUZZ_HTTP_MAIN),$(call fuzz_example_srcs,$(FUZZ_HTTP_MAIN)))
FUZZ_RESP_SRCS ?= $(if $(FUZZ_RESP_MAIN),$(call fuzz_example_srcs,$(FUZZ_RESP_MAIN)))

FUZZ_SRCS_addr      := fuzz/fuzz_addr.c lib/src/addr.c
FUZZ_SRCS_proxy     := fuzz/fuzz_proxy.c lib/src/proxy.c
# echo.c is included by the harness; its helpers are every other server/*.c.
FUZZ_SRCS_echo_args := fuzz/fuzz_echo_args.c $(filter-out server/echo.c,$(wildcard server/*.c)) \
	$(wildcard lib/src/*.c)
FUZZ_SRCS_http      := $(FUZZ_HTTP_SRCS)
FUZZ_SRCS_resp      := $(FUZZ_RESP_SRCS)

FUZZ_TARGETS ?= addr proxy echo_args $(if $(FUZZ_HTTP_SRCS),http) $(if $(FUZZ_RESP_SRCS),resp)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz-%)

.PHONY: fuzz fuzz-build

# Say what to install instead of failing on a cryptic link error.
$(FUZZ_STAMP):
	@mkdir -p $(@D)
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
	  echo "error: '$(FUZZ_CC)' not found; make fuzz needs clang with libFuzzer." >&2; \
	  echo "       run: sudo apt-get install clang-14 libclang-rt-14-dev" >&2; \
	  echo "       (or point FUZZ_CC at another clang)" >&2; exit 1; }
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)%s\n' \
	  '{ (void)d; (void)n; return 0; }' > $(@D)/toolchain-probe.c
	@$(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(@D)/toolchain-probe.c \
	  -o $(@D)/toolchain-probe >/dev/null 2>&1 || { \
	  echo "error: $(FUZZ_CC) cannot link -fsanitize=fuzzer,address,undefined:" >&2; \
	  echo "       the libFuzzer/sanitizer runtime is missing." >&2; \
	  echo "       run: sudo apt-get install libclang-rt-14-dev" >&2; \
	  echo "       (the package matching your clang: clang --version)" >&2; exit 1; }
	@touch $@

# Objects: instrumented for coverage (fuzzer-no-link) and sanitized.
$(FUZZ_B)/%.o: %.c | $(FUZZ_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_WARN) $(FUZZ_CFLAGS) $(FUZZ_SAN) \
		-fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

define fuzz_link_rule
$(FUZZ_B)/fuzz-$(1): $(patsubst %.c,$(FUZZ_B)/%.o,$(FUZZ_SRCS_$(1)))
	@$$(if $$(Q),echo "  FUZZLD  $$@")
	$$(Q)$$(FUZZ_CC) $$(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $$@ $$^
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_link_rule,$(t))))

fuzz-build: $(FUZZ_BINS)

# Run every target for FUZZ_SECONDS; a crash fails `make fuzz` after the
# others have run.  Each run's log is build/fuzz/<target>.log.
fuzz: fuzz-build
	@mkdir -p fuzz-out
	@fail=; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_B)/corpus/$$t; \
	  seeds=; if [ -d fuzz/corpus/$$t ]; then seeds=fuzz/corpus/$$t; fi; \
	  dict=; if [ -f fuzz/$$t.dict ]; then dict=-dict=fuzz/$$t.dict; fi; \
	  echo "  FUZZ    $$t for $(FUZZ_SECONDS) s"; \
	  if UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	     $(FUZZ_B)/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	       -artifact_prefix=fuzz-out/$$t- $$dict $(FUZZ_ARGS) \
	       $(FUZZ_B)/corpus/$$t $$seeds > $(FUZZ_B)/$$t.log 2>&1; then \
	    sed -n -e 's/^stat::number_of_executed_units: */          executions: /p' \
	        -e 's/^stat::peak_rss_mb: */          peak RSS MB: /p' $(FUZZ_B)/$$t.log; \
	    echo "          corpus: $$(ls $(FUZZ_B)/corpus/$$t | wc -l) inputs"; \
	  else \
	    fail="$$fail $$t"; \
	    echo "fuzz: $$t FAILED (log: $(FUZZ_B)/$$t.log); report:" >&2; \
	    sed -n '/^==[0-9]*==ERROR\|runtime error\|^SUMMARY\|Test unit written/,+24p' \
	        $(FUZZ_B)/$$t.log | head -60 >&2; \
	  fi; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: failed:$$fail (inputs in fuzz-out/)" >&2; exit 1; fi

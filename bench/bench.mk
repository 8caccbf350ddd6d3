# SPDX-License-Identifier: MIT
# bench/bench.mk - poolsrv-bench, the reference echo servers and the
# benchmark targets.  Included by the top-level Makefile.
#
#   make bench          build everything, run the matrix, write bench/results/latest.*
#   make bench-smoke    harness self-test + a short verified run against poolsrv-echo
#   make bench-sweep    cost versus message size and connections (bench/results/sweep.md)
#   make bench-refs     build the reference and misbehaving test servers, and
#                       bench/wakeup-cost (thread wake-up against system call),
#                       bench/heartbeat (what 10,000 connection timers cost),
#                       bench/hist-turn-cost (what the latency histograms add to a turn)
#   make bench-deps     install (as root) or name the packages `make bench` needs
#
# Knobs for `make bench` (environment or make variables):
#   BENCH_REPEATS=3  BENCH_DURATION=2  BENCH_SERVERS="..."  BENCH_SCENARIOS="a b ..."
#   BENCH_WORKERS=   (poolsrv-event's --workers; empty: poolsrv-echo's default)
#   BENCH_BLOCKING_WORKERS=64  (poolsrv-blocking's --workers)

BENCH      := $(O)bench/poolsrv-bench
BENCH_SRC  := $(wildcard bench/src/*.c)
BENCH_OBJ  := $(BENCH_SRC:%.c=$(B)/%.o)
PROGRAMS   += $(BENCH)

# --tls with OpenSSL 3 when pkg-config finds it (the test client/client.mk
# makes; NO_OPENSSL=1 builds without, and --tls then says so, exit 2).
HAVE_OPENSSL   := $(if $(NO_OPENSSL),,$(shell $(PKG_CONFIG) --atleast-version=3.0 openssl 2>/dev/null && echo 1))
OPENSSL_CFLAGS := $(if $(HAVE_OPENSSL),-DHAVE_OPENSSL $(shell $(PKG_CONFIG) --cflags openssl))
OPENSSL_LIBS   := $(if $(HAVE_OPENSSL),$(shell $(PKG_CONFIG) --libs openssl))

$(BENCH_OBJ): ALL_CPPFLAGS += $(OPENSSL_CFLAGS)

# What a thread-to-thread wake-up costs here (docs/architecture.md); built
# with the references, not installed.
WAKEUP     := $(O)bench/wakeup-cost

# What connection timers cost: N idle connections with a heartbeat each
# (docs/benchmarks.md); built with the references, not installed.
HEARTBEAT  := $(O)bench/heartbeat

$(B)/bench/tools/heartbeat.o: ALL_CPPFLAGS += $(if $(HAVE_UV),-DHAVE_UV $(UV_CFLAGS))

$(HEARTBEAT): $(B)/bench/tools/heartbeat.o $(LIBA)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lpthread $(if $(HAVE_UV),$(UV_LIBS)) $(TLS_LIBS)

# What the latency histograms add to a turn (docs/benchmarks.md); built with
# the references, not installed.
HISTCOST   := $(O)bench/hist-turn-cost

$(B)/bench/tools/hist_cost.o: ALL_CPPFLAGS += -Ilib/src

$(HISTCOST): $(B)/bench/tools/hist_cost.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

# What forwarding costs with recv/send against splice(2) (docs/benchmarks.md,
# the proxy); built with the references, not installed.
SPLICECOST := $(O)bench/splice-cost

$(SPLICECOST): $(B)/bench/tools/splice_cost.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

$(WAKEUP): $(B)/bench/tools/wakeup_cost.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

REFS_DIR   := $(O)bench/refs
# Always built: they need only libc and pthreads.
REFS_PLAIN := $(REFS_DIR)/tpc-echo $(REFS_DIR)/bad-echo
UV_CFLAGS   = $(shell $(PKG_CONFIG) --cflags libuv 2>/dev/null)
UV_LIBS     = $(shell $(PKG_CONFIG) --libs libuv 2>/dev/null)
EV_CFLAGS   = $(shell $(PKG_CONFIG) --cflags libevent 2>/dev/null)
EV_LIBS     = $(shell $(PKG_CONFIG) --libs libevent 2>/dev/null)
HAVE_UV    := $(shell $(PKG_CONFIG) --exists libuv 2>/dev/null && echo 1)
HAVE_EV    := $(shell $(PKG_CONFIG) --exists libevent 2>/dev/null && echo 1)
REFS       := $(REFS_PLAIN) $(if $(HAVE_UV),$(REFS_DIR)/uv-echo) $(if $(HAVE_EV),$(REFS_DIR)/ev-echo)

BENCH_PKGS := libuv1-dev libevent-dev gnuplot-nox pkg-config

.PHONY: bench bench-smoke bench-refs bench-deps bench-sweep

$(BENCH): $(BENCH_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lm $(OPENSSL_LIBS)

# --version prints the project version.
$(B)/bench/src/main.o: ALL_CPPFLAGS += -DPS_VERSION_STRING='"$(VERSION)"'
$(B)/bench/src/main.o: VERSION

$(B)/bench/refs/uv_echo.o: ALL_CPPFLAGS += $(UV_CFLAGS)
$(B)/bench/refs/ev_echo.o: ALL_CPPFLAGS += $(EV_CFLAGS)

$(REFS_DIR)/uv-echo: $(B)/bench/refs/uv_echo.o $(B)/bench/refs/ref_common.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(UV_LIBS)

$(REFS_DIR)/ev-echo: $(B)/bench/refs/ev_echo.o $(B)/bench/refs/ref_common.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(EV_LIBS)

$(REFS_DIR)/%-echo: $(B)/bench/refs/%_echo.o $(B)/bench/refs/ref_common.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

bench-refs: $(REFS) $(WAKEUP) $(HEARTBEAT) $(HISTCOST) $(SPLICECOST)
	@$(if $(HAVE_UV),,echo "note: libuv missing, bench/refs/uv-echo not built (make bench-deps)" >&2)
	@$(if $(HAVE_EV),,echo "note: libevent missing, bench/refs/ev-echo not built (make bench-deps)" >&2)

# libuv and libevent for the references, gnuplot for the chart.  As root
# with apt-get we install them; otherwise we say what to run.
bench-deps:
	@missing=""; \
	$(PKG_CONFIG) --version >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	$(PKG_CONFIG) --exists libuv 2>/dev/null || missing="$$missing libuv1-dev"; \
	$(PKG_CONFIG) --exists libevent 2>/dev/null || missing="$$missing libevent-dev"; \
	command -v gnuplot >/dev/null || missing="$$missing gnuplot-nox"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "bench: installing$$missing with apt-get"; \
	    apt-get install -y -q $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; } || \
	      { echo "error: apt-get could not install$$missing" >&2; exit 1; }; \
	  else \
	    echo "error: make bench needs:$$missing" >&2; \
	    echo "       run: sudo apt-get install $(BENCH_PKGS)" >&2; exit 1; \
	  fi; \
	fi

BENCH_ENV = BENCH_BIN=$(BENCH) ECHO_BIN=$(ECHO) REFS_DIR=$(REFS_DIR)

# Re-invoke make after bench-deps so that freshly installed libraries are
# seen by HAVE_UV/HAVE_EV.
bench: bench-deps
	$(Q)$(MAKE) --no-print-directory all bench-refs
	$(Q)$(BENCH_ENV) bench/run.sh

bench-sweep: bench-deps
	$(Q)$(MAKE) --no-print-directory all bench-refs
	$(Q)$(BENCH_ENV) bench/sweep.sh

bench-smoke: $(BENCH) $(REFS_PLAIN) $(TLS_HELPER_IF)
	$(Q)$(BENCH_ENV) TLS_HELPER=$(TLS_HELPER_IF) tests/bench_selftest.sh
	$(Q)$(BENCH_ENV) tests/bench_smoke.sh

test-extra::
	$(Q)$(MAKE) --no-print-directory bench-smoke

# Keep the reference objects (built through the pattern rule above).
.SECONDARY: $(patsubst bench/refs/%.c,$(B)/bench/refs/%.o,$(wildcard bench/refs/*.c))

clean-extra::
	rm -f $(REFS_DIR)/uv-echo $(REFS_DIR)/ev-echo $(REFS_DIR)/tpc-echo $(REFS_DIR)/bad-echo $(WAKEUP) $(HISTCOST) $(SPLICECOST) \
	      bench/results/*.tmp

# SPDX-License-Identifier: MIT
# poolsrv - GNU Make build.
#
#   make            library (static + shared), poolsrv-echo, poolsrv-client, poolsrv-bench
#   make run        build and serve echo on $(RUN_ADDR)
#   make test       unit + integration tests (Check) and the bench smoke test
#   make asan       the tests under AddressSanitizer + UBSan
#   make tsan       the tests under ThreadSanitizer
#   make dist       source tarball from HEAD; make distcheck builds and tests it
#   make install    PREFIX=/usr/local DESTDIR= (header, libraries, poolsrv.pc, CMake
#                   package, binaries; ldconfig after a live install as root)
#
# Objects go to $(B)/; V=1 shows the commands.

VERSION := $(shell cat VERSION)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
# 0xMMmmpp, as PS_VERSION_HEX in poolsrv.h (lib/src/version.c compares them).
VERSION_HEX := $(shell printf '0x%02x%02x%02x' $(subst ., ,$(VERSION)))

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
PCDIR   ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/poolsrv
# Run after a live install (no DESTDIR) as root, so the new soname is found.
LDCONFIG ?= ldconfig

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wpedantic -Werror
SAN     ?=
PKG_CONFIG ?= pkg-config
ALL_CFLAGS   = $(WARN) $(CFLAGS) $(SAN) -pthread -MMD -MP
ALL_CPPFLAGS = -D_GNU_SOURCE -Ilib/include $(CPPFLAGS)
ALL_LDFLAGS  = $(SAN) -pthread $(LDFLAGS)

RUN_ADDR ?= 127.0.0.1:7000

# TLS ("tls:" listeners) needs OpenSSL 3 (Debian: libssl-dev).  Found by
# pkg-config; TLS=no builds without it (a "tls:" listener is then refused
# with "built without TLS support").  TLS_LIBS goes on every link line that
# takes libpoolsrv.a.
TLS ?= $(shell $(PKG_CONFIG) --exists 'openssl >= 3.0' 2>/dev/null && echo yes || echo no)
ifeq ($(TLS),yes)
TLS_CPPFLAGS := -DPS_HAVE_TLS $(shell $(PKG_CONFIG) --cflags openssl)
TLS_LIBS     := $(shell $(PKG_CONFIG) --libs openssl)
CMAKE_TLS_LIBS := ;OpenSSL::SSL;OpenSSL::Crypto
CMAKE_TLS_FIND := find_package(OpenSSL 3 QUIET)
else
TLS_CPPFLAGS :=
TLS_LIBS     :=
CMAKE_TLS_LIBS :=
CMAKE_TLS_FIND :=
endif

# B: object directory; O: prefix of the output directories.  Sanitizer
# builds set both to build/<name>/ so they never mix with the normal build.
B ?= build
O ?=

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_SRC := $(wildcard lib/src/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
LIBA    := $(O)lib/libpoolsrv.a
LIBSO_REAL := $(O)lib/libpoolsrv.so.$(VERSION)
LIBSO   := $(O)lib/libpoolsrv.so
ECHO    := $(O)server/poolsrv-echo
TESTBIN := $(B)/tests/run-tests
TEST_SRC := $(wildcard tests/check_*.c) tests/test_util.c tests/run_tests.c
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o)
# LD_PRELOAD shim for the shell suites: the Nth pthread_create fails.
THREAD_SHIM := $(B)/tests/thread_shim.so
NOTIFY_RECV := $(B)/tests/notify_recv

.PHONY: all run test check unit test-extra asan tsan valgrind lint clean install uninstall deps \
	install-extra uninstall-extra clean-extra
.DEFAULT_GOAL := all

# Fragments for the other programs append to PROGRAMS (installed to BINDIR)
# and may add recipes to the double-colon rules test-extra, install-extra,
# uninstall-extra and clean-extra.
PROGRAMS := $(ECHO)
-include client/client.mk bench/bench.mk server/examples/examples.mk docs/docs.mk fuzz/fuzz.mk \
	tests/hostile/hostile.mk tests/upgrade/upgrade.mk abi/abi.mk tools/dist.mk tests/tls_audit.mk

CMAKE_FILES := $(O)lib/cmake/poolsrvConfig.cmake $(O)lib/cmake/poolsrvConfigVersion.cmake

all: $(LIBA) $(LIBSO) $(PROGRAMS) $(O)lib/poolsrv.pc $(CMAKE_FILES)

# ------------------------------------------------------------------ library
$(B)/lib/src/%.o: lib/src/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(TLS_CPPFLAGS) -DPS_VERSION_STRING='"$(VERSION)"' \
		-DPS_BUILD_VERSION_HEX=$(VERSION_HEX) $(ALL_CFLAGS) \
		-fPIC -fvisibility=hidden -c $< -o $@

# ps_version() and the header check come from VERSION.
$(B)/lib/src/version.o: VERSION
# Rebuilt when TLS=yes/no changes.
$(B)/lib/src/tls.o $(B)/lib/src/tls_conn.o: $(B)/tls-$(TLS)
$(B)/tls-$(TLS):
	@mkdir -p $(@D)
	$(Q)rm -f $(B)/tls-yes $(B)/tls-no && touch $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# The version script names the exported symbols' version nodes (docs/abi.md).
LIBMAP := lib/libpoolsrv.map

$(LIBSO_REAL): $(LIB_OBJ) $(LIBMAP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,libpoolsrv.so.$(MAJOR) -Wl,--version-script=$(LIBMAP) \
		$(ALL_LDFLAGS) -o $@ $(LIB_OBJ) $(TLS_LIBS)

$(LIBSO): $(LIBSO_REAL)
	$(Q)ln -sf libpoolsrv.so.$(VERSION) $(O)lib/libpoolsrv.so.$(MAJOR)
	$(Q)ln -sf libpoolsrv.so.$(VERSION) $@

PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	-e 's|@VERSION@|$(VERSION)|' -e 's|@TLS_LIBS@|$(TLS_LIBS)|'
$(O)lib/poolsrv.pc: lib/poolsrv.pc.in VERSION $(B)/tls-$(TLS)
	@mkdir -p $(@D)
	$(Q)$(PC_SED) $< > $@

# CMake package files: paths relative to CMAKEDIR, so that a staged
# (DESTDIR) or moved tree still works.
SIZEOF_VOID_P = $(shell printf '__SIZEOF_POINTER__\n' | $(CC) -E -P - 2>/dev/null | tr -d ' ')
$(O)lib/cmake/%.cmake: lib/%.cmake.in VERSION $(B)/tls-$(TLS)
	@mkdir -p $(@D)
	$(Q)sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' \
		-e 's|@TLS_LIBS@|$(CMAKE_TLS_LIBS)|g' -e 's|@TLS_FIND@|$(CMAKE_TLS_FIND)|g' \
		-e "s|@REL_INCDIR@|$$(realpath -m --relative-to=$(CMAKEDIR) $(INCDIR))|" \
		-e "s|@REL_LIBDIR@|$$(realpath -m --relative-to=$(CMAKEDIR) $(LIBDIR))|" \
		-e 's|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|g' $< > $@

# ----------------------------------------------------------------- programs
$(B)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(ECHO): $(B)/server/echo.o $(B)/server/echo_handlers.o $(B)/server/admin.o $(B)/server/metrics.o \
		$(B)/server/sdnotify.o $(B)/server/upgrade.o $(B)/server/tls_flags.o $(LIBA)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TLS_LIBS)

run: $(ECHO)
	./$(ECHO) --listen $(RUN_ADDR)

# -------------------------------------------------------------------- tests
# Check is the one test dependency.  Missing?  As root we install it; otherwise
# we say what to run.
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

deps:
	@if ! $(PKG_CONFIG) --exists check 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Check unit-test library missing: installing it with apt-get"; \
	    apt-get install -y -q check pkg-config >/dev/null || \
	      { apt-get update -q >/dev/null && apt-get install -y -q check pkg-config >/dev/null; } ; \
	  else \
	    echo "error: the Check unit-test library is missing." >&2; \
	    echo "       run: sudo apt-get install check pkg-config" >&2; exit 1; \
	  fi; \
	fi
	@if [ "$(TLS)" != yes ]; then \
	  echo "note: OpenSSL 3 not found: building without TLS (\"tls:\" listeners refused," \
	       "TLS tests skipped); for TLS run: sudo apt-get install libssl-dev"; \
	fi

$(B)/tests/%.o: tests/%.c | deps
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(TLS_CPPFLAGS) -Ilib/src $(CHECK_CFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(TESTBIN): $(TEST_OBJ) $(B)/server/echo_handlers.o $(LIBA)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(TLS_LIBS)

unit: $(TESTBIN)
	$(TESTBIN)

# The test command of the README: the Check suite, then the bench smoke test.
test check: all
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory test-extra

test-extra::

# Its own rule (not tests/%.o, which brings in Check); never sanitized: it
# is preloaded into the programs under test.
$(THREAD_SHIM): tests/thread_shim.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

# systemd's notification socket, for the sd_notify checks in echo_cli.sh
# and tests/examples (NOTIFY_RECV is set near the top, before the .mk files
# that name it as a prerequisite).
$(NOTIFY_RECV): tests/notify_recv.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $<

# poolsrv-echo's command line, errors and signals, as an operator meets them.
.PHONY: test-echo-cli
test-echo-cli: $(ECHO) $(THREAD_SHIM) $(NOTIFY_RECV)
	ECHO=$(ECHO) THREAD_SHIM=$(THREAD_SHIM) NOTIFY_RECV=$(NOTIFY_RECV) tests/echo_cli.sh

test-extra:: test-echo-cli

# tls: listeners of poolsrv-echo and poolsrv-http against openssl s_client
# and curl (skips without TLS support, openssl or curl).
.PHONY: test-tls
test-tls: $(ECHO) $(O)server/examples/poolsrv-http
	ECHO=$(ECHO) HTTP=$(O)server/examples/poolsrv-http tests/tls/run.sh

test-extra:: test-tls

# The admin endpoint as Prometheus scrapes it: promtool (package prometheus;
# required under CI=true), histogram consistency, build/config/process metrics.
.PHONY: test-metrics
test-metrics: $(ECHO) $(O)bench/poolsrv-bench
	ECHO=$(ECHO) BENCH=$(O)bench/poolsrv-bench tests/integration/metrics/run.sh

test-extra:: test-metrics

# poolsrv-echo behind HAProxy (send-proxy-v2): verified load, real client
# addresses, drain of one backend.  Needs the haproxy package.
.PHONY: test-haproxy
test-haproxy: $(ECHO) $(O)bench/poolsrv-bench $(O)client/poolsrv-client $(B)/tests/client/echo-helper
	ECHO=$(ECHO) BENCH=$(O)bench/poolsrv-bench CLIENT=$(O)client/poolsrv-client \
		HELPER=$(B)/tests/client/echo-helper tests/integration/haproxy/run.sh

test-extra:: test-haproxy

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN_FLAGS := -fsanitize=thread

# A sanitizer report fails the test that caused it: each test runs in its
# own forked child, and the sanitizers make that child exit non-zero.
asan:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	$(MAKE) --no-print-directory B=build/asan O=build/asan/ SAN="$(ASAN_FLAGS)" CFLAGS="-O1 -g" unit
tsan:
	TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1 \
	$(MAKE) --no-print-directory B=build/tsan O=build/tsan/ SAN="$(TSAN_FLAGS)" CFLAGS="-O1 -g" unit

# Memcheck over the Check suite (each forked test child is checked; a
# definite leak or an invalid access fails that test).
VALGRIND ?= valgrind
valgrind: $(TESTBIN)
	CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-10} $(VALGRIND) -q --error-exitcode=99 \
		--leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
		$(TESTBIN)

# cppcheck and clang-tidy with the checked-in configuration (.clang-tidy,
# .cppcheck-suppressions); libFuzzer targets: make fuzz (fuzz/fuzz.mk).
lint:
	tools/lint.sh

# ------------------------------------------------------------------ install
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(PCDIR) \
		$(DESTDIR)$(CMAKEDIR)
	install -m 644 lib/include/poolsrv.h $(DESTDIR)$(INCDIR)/poolsrv.h
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/libpoolsrv.a
	install -m 755 $(LIBSO_REAL) $(DESTDIR)$(LIBDIR)/libpoolsrv.so.$(VERSION)
	ln -sf libpoolsrv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpoolsrv.so.$(MAJOR)
	ln -sf libpoolsrv.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpoolsrv.so
	$(PC_SED) lib/poolsrv.pc.in > $(DESTDIR)$(PCDIR)/poolsrv.pc
	chmod 644 $(DESTDIR)$(PCDIR)/poolsrv.pc
	install -m 644 $(CMAKE_FILES) $(DESTDIR)$(CMAKEDIR)/
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	$(MAKE) --no-print-directory install-extra
	$(Q)$(MAKE) --no-print-directory install-ldconfig

# A live install (no DESTDIR) as root refreshes the dynamic linker's cache,
# or programs linked with -lpoolsrv fail with "libpoolsrv.so.$(MAJOR): cannot
# open shared object file".  Staged installs (packages) leave that to the
# package manager.  A LIBDIR outside the linker's search path needs an rpath
# or LD_LIBRARY_PATH: say so.
.PHONY: install-ldconfig
install-ldconfig:
	@if [ -n "$(DESTDIR)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v $(LDCONFIG) >/dev/null 2>&1; then \
	  echo "$(LDCONFIG)"; $(LDCONFIG) || exit 1; \
	  if $(LDCONFIG) -p 2>/dev/null | grep -qF "$(LIBDIR)/libpoolsrv.so.$(MAJOR)"; then exit 0; fi; \
	fi; \
	echo "note: $(LIBDIR) is not in the dynamic linker's search path (or ldconfig was not run):"; \
	echo "      link with -Wl,-rpath,$(LIBDIR), or run programs with LD_LIBRARY_PATH=$(LIBDIR),"; \
	echo "      or (as root) add $(LIBDIR) to /etc/ld.so.conf.d/ and run ldconfig"

install-extra::
uninstall-extra::
clean-extra::

uninstall:
	rm -f $(DESTDIR)$(INCDIR)/poolsrv.h $(DESTDIR)$(LIBDIR)/libpoolsrv.a \
	      $(DESTDIR)$(LIBDIR)/libpoolsrv.so $(DESTDIR)$(LIBDIR)/libpoolsrv.so.$(MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libpoolsrv.so.$(VERSION) $(DESTDIR)$(PCDIR)/poolsrv.pc \
	      $(DESTDIR)$(CMAKEDIR)/poolsrvConfig.cmake $(DESTDIR)$(CMAKEDIR)/poolsrvConfigVersion.cmake \
	      $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(PROGRAMS)))
	-rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null
	$(MAKE) --no-print-directory uninstall-extra

clean: clean-extra
	rm -rf build lib/libpoolsrv.a lib/libpoolsrv.so lib/libpoolsrv.so.* lib/poolsrv.pc lib/cmake \
	       $(PROGRAMS)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

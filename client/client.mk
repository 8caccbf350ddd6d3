# SPDX-License-Identifier: MIT
# client/client.mk - poolsrv-client and its tests; included by the top Makefile.
#
#   make client/poolsrv-client   the client (libc only: no libpoolsrv)
#   make test-client             tests/client/run.sh against poolsrv-echo and
#                                the test-only servers of tests/client/

CLIENT        := $(O)client/poolsrv-client
CLIENT_OBJ    := $(patsubst %.c,$(B)/%.o,$(wildcard client/*.c))
CLIENT_HELPER := $(B)/tests/client/echo-helper
CLIENT_SHIM   := $(B)/tests/client/gai_shim.so
# TLS echo for the --tls tests (and poolsrv-bench's): OpenSSL, no libpoolsrv.
CLIENT_TLS_HELPER := $(B)/tests/client/tls-echo-helper

PROGRAMS += $(CLIENT)

# TLS (--tls) with OpenSSL 3, when pkg-config finds it (Debian: libssl-dev).
# Without it, or with NO_OPENSSL=1, the client still builds and --tls says
# "built without TLS support" (exit 2).  bench/bench.mk makes the same test.
HAVE_OPENSSL   := $(if $(NO_OPENSSL),,$(shell $(PKG_CONFIG) --atleast-version=3.0 openssl 2>/dev/null && echo 1))
OPENSSL_CFLAGS := $(if $(HAVE_OPENSSL),-DHAVE_OPENSSL $(shell $(PKG_CONFIG) --cflags openssl))
OPENSSL_LIBS   := $(if $(HAVE_OPENSSL),$(shell $(PKG_CONFIG) --libs openssl))

$(CLIENT_OBJ) $(B)/tests/client/tls_echo_helper.o: ALL_CPPFLAGS += $(OPENSSL_CFLAGS)
# Built only with OpenSSL; the TLS tests are skipped without it.
TLS_HELPER_IF := $(if $(HAVE_OPENSSL),$(CLIENT_TLS_HELPER))

# --version prints the project version.
$(B)/client/main.o: ALL_CPPFLAGS += -DPS_VERSION_STRING='"$(VERSION)"'
$(B)/client/main.o: VERSION

$(CLIENT): $(CLIENT_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lm $(OPENSSL_LIBS)

# Test-only servers.  Their own rule, so that the tests/%.o rule of the top
# Makefile (which brings in Check) does not apply.
$(B)/tests/client/%.o: tests/client/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(CLIENT_HELPER): $(B)/tests/client/echo_helper.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

$(CLIENT_TLS_HELPER): $(B)/tests/client/tls_echo_helper.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(OPENSSL_LIBS)

# LD_PRELOAD shim: a test host name that resolves to several addresses.
# Never sanitized: it is preloaded into whatever client is under test.
$(CLIENT_SHIM): tests/client/gai_shim.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

.PHONY: test-client
test-client: $(CLIENT) $(CLIENT_HELPER) $(CLIENT_SHIM) $(ECHO) $(TLS_HELPER_IF)
	CLIENT=$(CLIENT) ECHO_SERVER=$(ECHO) HELPER=$(CLIENT_HELPER) SHIM=$(CLIENT_SHIM) \
		TLS_HELPER=$(TLS_HELPER_IF) tests/client/run.sh

test-extra:: test-client

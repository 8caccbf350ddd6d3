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

PROGRAMS += $(CLIENT)

# --version prints the project version.
$(B)/client/main.o: ALL_CPPFLAGS += -DPS_VERSION_STRING='"$(VERSION)"'
$(B)/client/main.o: VERSION

$(CLIENT): $(CLIENT_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lm

# Test-only servers.  Their own rule, so that the tests/%.o rule of the top
# Makefile (which brings in Check) does not apply.
$(B)/tests/client/%.o: tests/client/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(CLIENT_HELPER): $(B)/tests/client/echo_helper.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

# LD_PRELOAD shim: a test host name that resolves to several addresses.
# Never sanitized: it is preloaded into whatever client is under test.
$(CLIENT_SHIM): tests/client/gai_shim.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

.PHONY: test-client
test-client: $(CLIENT) $(CLIENT_HELPER) $(CLIENT_SHIM) $(ECHO)
	CLIENT=$(CLIENT) ECHO_SERVER=$(ECHO) HELPER=$(CLIENT_HELPER) SHIM=$(CLIENT_SHIM) \
		tests/client/run.sh

test-extra:: test-client

# SPDX-License-Identifier: MIT
# tests/upgrade/upgrade.mk - the binary upgrade test (tests/upgrade/run.sh):
# poolsrv-echo upgraded four times under verified load, and the naive
# SO_REUSEPORT restart that it is compared with.  Included by the Makefile.

UPG_LOAD := $(B)/tests/upgrade/upgrade-load

$(B)/tests/upgrade/load.o: tests/upgrade/load.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(UPG_LOAD): $(B)/tests/upgrade/load.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

.PHONY: test-upgrade
test-upgrade: $(ECHO) $(EX_HTTP) $(EX_KV) $(UPG_LOAD) $(B)/tests/notify_recv
	ECHO=$(ECHO) HTTP_BIN=$(EX_HTTP) KV_BIN=$(EX_KV) LOAD=$(UPG_LOAD) \
		NOTIFY_RECV=$(B)/tests/notify_recv tests/upgrade/run.sh

test-extra:: test-upgrade

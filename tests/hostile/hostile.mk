# SPDX-License-Identifier: MIT
# tests/hostile/hostile.mk - the hostile-client suite and the soak test;
# included by the top Makefile (variables B, O, Q, CC, ALL_* and ECHO come
# from there).  The program depends only on libc and pthreads.
#
#   make test-hostile   every case against poolsrv-echo (event and blocking
#                       mode), the example servers if built, and the EMFILE
#                       case; ends with "hostile: N passed, N failed".
#                       HOSTILE_CASES=slowloris,emfile selects cases;
#                       HOSTILE_TIME_MULTIPLIER=3 for sanitizer builds.
#   make soak           SOAK_SECONDS (default 60) of mixed load with churn;
#                       RSS and descriptors every 10 s; fails on drift.
#                       Not part of `make test`.

HOSTILE       := $(B)/tests/hostile/hostile
HOSTILE_SRC   := $(wildcard tests/hostile/*.c)
HOSTILE_OBJ   := $(HOSTILE_SRC:%.c=$(B)/%.o)
HOSTILE_EX    := $(filter %/poolsrv-http %/poolsrv-kv,$(PROGRAMS))
SOAK_SECONDS  ?= 60
HOSTILE_CASES ?=

.PHONY: test-hostile soak

# More specific than the top Makefile's $(B)/tests/%.o rule (no Check here).
$(B)/tests/hostile/%.o: tests/hostile/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(HOSTILE): $(HOSTILE_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

test-hostile: $(HOSTILE) $(ECHO) $(HOSTILE_EX)
	$(HOSTILE) --echo $(ECHO) --http $(O)server/examples/poolsrv-http \
		--kv $(O)server/examples/poolsrv-kv $(if $(HOSTILE_CASES),--cases $(HOSTILE_CASES))

soak: $(HOSTILE) $(ECHO)
	$(HOSTILE) --soak $(SOAK_SECONDS) --echo $(ECHO)

test-extra:: test-hostile

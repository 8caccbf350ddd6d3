# SPDX-License-Identifier: MIT
# server/examples/examples.mk - the embedding examples poolsrv-http and
# poolsrv-kv, their tests and fuzz targets; included by the top Makefile.
# Both programs use only the public header lib/include/poolsrv.h.
#
#   make server/examples/poolsrv-http server/examples/poolsrv-kv
#   make test-examples     tests/examples/run.sh (HTTP over raw sockets, KV with
#                          redis-cli, parser split tests, docs/embedding.md listings)
#   make fuzz-examples     libFuzzer binaries for both parsers (needs clang)

EX_DIR   := server/examples
EX_HTTP  := $(O)$(EX_DIR)/poolsrv-http
EX_KV    := $(O)$(EX_DIR)/poolsrv-kv
EX_PROXY := $(O)$(EX_DIR)/poolsrv-proxy
EX_SPLIT := $(B)/tests/examples/parser-split

EX_COMMON_OBJ := $(B)/$(EX_DIR)/common.o $(B)/server/upgrade.o $(B)/server/sdnotify.o \
	$(B)/server/tls_flags.o
EX_HTTP_OBJ   := $(B)/$(EX_DIR)/http_hello/http_main.o $(B)/$(EX_DIR)/http_hello/http_parser.o
EX_KV_OBJ     := $(B)/$(EX_DIR)/kv/kv_main.o $(B)/$(EX_DIR)/kv/resp.o $(B)/$(EX_DIR)/kv/store.o \
                 $(B)/$(EX_DIR)/kv/pubsub.o

EX_PROXY_OBJ  := $(B)/$(EX_DIR)/proxy/proxy_main.o

PROGRAMS += $(EX_HTTP) $(EX_KV) $(EX_PROXY)

.PHONY: test-examples fuzz-examples

$(EX_HTTP): $(EX_HTTP_OBJ) $(EX_COMMON_OBJ) $(LIBA)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TLS_LIBS)

$(EX_PROXY): $(EX_PROXY_OBJ) $(EX_COMMON_OBJ) $(LIBA)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lpthread $(TLS_LIBS)

$(EX_KV): $(EX_KV_OBJ) $(EX_COMMON_OBJ) $(LIBA)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TLS_LIBS)

# The parser unit test: its own rule, so that the tests/%.o rule of the top
# Makefile (which brings in Check) does not apply.
$(B)/tests/examples/%.o: tests/examples/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) -I$(EX_DIR)/http_hello -I$(EX_DIR)/kv $(ALL_CFLAGS) -c $< -o $@

$(EX_SPLIT): $(B)/tests/examples/parser_split.o $(B)/$(EX_DIR)/http_hello/http_parser.o \
		$(B)/$(EX_DIR)/kv/resp.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

test-examples: $(EX_HTTP) $(EX_KV) $(EX_PROXY) $(EX_SPLIT) $(LIBA) $(THREAD_SHIM) $(NOTIFY_RECV)
	HTTP_BIN=$(EX_HTTP) KV_BIN=$(EX_KV) PROXY_BIN=$(EX_PROXY) SPLIT_BIN=$(EX_SPLIT) LIBA=$(LIBA) \
		SAN="$(SAN)" THREAD_SHIM=$(THREAD_SHIM) NOTIFY_RECV=$(NOTIFY_RECV) TLS_LIBS="$(TLS_LIBS)" \
		tests/examples/run.sh

test-extra:: test-examples

# poolsrv-proxy end to end (tests/proxy/run.sh) with its peer program.
EX_PEER := $(B)/tests/proxy/peer

$(B)/tests/proxy/peer.o: tests/proxy/peer.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(EX_PEER): $(B)/tests/proxy/peer.o
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

.PHONY: test-proxy
test-proxy: $(EX_PROXY) $(ECHO) $(O)bench/poolsrv-bench $(O)client/poolsrv-client $(EX_PEER)
	PROXY_BIN=$(EX_PROXY) ECHO_BIN=$(ECHO) BENCH_BIN=$(O)bench/poolsrv-bench PEER_BIN=$(EX_PEER) \
		tests/proxy/run.sh

test-extra:: test-proxy

# libFuzzer targets (not part of `all`): build/fuzz-examples/fuzz-{http,resp}.
FUZZ_CC    ?= clang
FUZZ_FLAGS ?= -g -O1 -fsanitize=fuzzer,address,undefined
fuzz-examples: build/fuzz-examples/fuzz-http build/fuzz-examples/fuzz-resp

build/fuzz-examples/fuzz-http: $(EX_DIR)/http_hello/fuzz_http.c $(EX_DIR)/http_hello/http_parser.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -D_GNU_SOURCE -I$(EX_DIR)/http_hello -o $@ $^

build/fuzz-examples/fuzz-resp: $(EX_DIR)/kv/fuzz_resp.c $(EX_DIR)/kv/resp.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -D_GNU_SOURCE -I$(EX_DIR)/kv -o $@ $^

# SPDX-License-Identifier: MIT
# docs/docs.mk - man pages (install/uninstall), the documentation checks and
# the install test; included by the top Makefile.
#
#   make install / uninstall   also install / remove the man pages in
#                              $(MANDIR)/man1 and man3 (MANDIR ?= $(PREFIX)/share/man)
#   make test-install          tests/install/run.sh: install into a temporary
#                              DESTDIR, build an outside program with
#                              pkg-config (shared and static) and with CMake
#                              (find_package; skipped without cmake), run it,
#                              a live install's ldconfig step, uninstall
#                              (part of `make test`)
#   make check-docs            docs/check-docs.sh: the man pages render without
#                              warnings, every flag of each program's --help is
#                              in its man page, every public function is in
#                              poolsrv(3) and docs/api.md, the SVG is well formed

MANDIR ?= $(PREFIX)/share/man
MAN1   := docs/man/poolsrv-echo.1 docs/man/poolsrv-client.1 docs/man/poolsrv-bench.1 \
          docs/man/poolsrv-http.1 docs/man/poolsrv-kv.1 \
          docs/man/poolsrv-proxy.1
MAN3   := docs/man/poolsrv.3

.PHONY: test-install check-docs

install-extra::
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(MAN3) $(DESTDIR)$(MANDIR)/man3/

uninstall-extra::
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1))) \
	      $(addprefix $(DESTDIR)$(MANDIR)/man3/,$(notdir $(MAN3)))

# MAKE is passed on so that the script's `make install` is a recursive make
# of this one (jobserver, command-line variables).  A line that names $(MAKE)
# runs even under `make -n`, so a dry run only says what it would do.
DRY_RUN = $(findstring n,$(firstword -$(MAKEFLAGS)))
test-install:
	$(if $(DRY_RUN),@echo "would run: tests/install/run.sh",MAKE="$(MAKE)" CC="$(CC)" \
		PKG_CONFIG="$(PKG_CONFIG)" tests/install/run.sh)

test-extra:: test-install

check-docs: $(PROGRAMS)
	ECHO_BIN=$(ECHO) CLIENT_BIN=$(O)client/poolsrv-client BENCH_BIN=$(O)bench/poolsrv-bench \
		HTTP_BIN=$(EX_HTTP) KV_BIN=$(EX_KV) PROXY_BIN=$(EX_PROXY) docs/check-docs.sh
test-extra:: check-docs

# SPDX-License-Identifier: MIT
# tools/dist.mk - source tarballs; included by the top Makefile.
#
#   make dist       poolsrv-$(VERSION).tar.gz from the committed tree (git
#                   archive HEAD: uncommitted changes are not in it, and a
#                   warning says so)
#   make distcheck  make dist, then unpack it in a temporary directory, build
#                   it there with `make`, run the Check suite and a staged
#                   install: proves the tarball is complete

DIST_NAME := poolsrv-$(VERSION)
DIST_TAR  := $(DIST_NAME).tar.gz

.PHONY: dist distcheck

dist:
	@git rev-parse --git-dir >/dev/null 2>&1 || \
	  { echo "dist: needs a git checkout (the tarball is made from HEAD)" >&2; exit 1; }
	@git diff --quiet HEAD -- 2>/dev/null || \
	  echo "dist: warning: uncommitted changes are not in $(DIST_TAR) (it is made from HEAD)" >&2
	$(Q)git archive --format=tar --prefix=$(DIST_NAME)/ HEAD | gzip -9n > $(DIST_TAR).tmp
	$(Q)mv $(DIST_TAR).tmp $(DIST_TAR)
	@echo "dist: $(DIST_TAR) ($$(git rev-parse --short HEAD))"

distcheck: dist
	@d=$$(mktemp -d "$${TMPDIR:-/tmp}/poolsrv-distcheck.XXXXXX") && \
	trap 'rm -rf "$$d"' EXIT && \
	tar -C "$$d" -xzf $(DIST_TAR) && \
	echo "distcheck: building $(DIST_NAME) in $$d" && \
	$(MAKE) --no-print-directory -C "$$d/$(DIST_NAME)" all && \
	$(MAKE) --no-print-directory -C "$$d/$(DIST_NAME)" unit && \
	$(MAKE) --no-print-directory -C "$$d/$(DIST_NAME)" install DESTDIR="$$d/stage" && \
	test -e "$$d/stage/usr/local/include/poolsrv.h" && \
	echo "distcheck: $(DIST_TAR) builds, passes the Check suite and installs"

# The Debian packages (debian/), built in a scratch copy, checked with
# lintian, unpacked into a scratch root and used from an outside program:
# tests/deb/run.sh (about a minute, so not part of `make test`).
.PHONY: test-deb
test-deb:
	tests/deb/run.sh

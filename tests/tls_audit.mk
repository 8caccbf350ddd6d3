# SPDX-License-Identifier: MIT
# tests/tls_audit.mk - make test-tls-audit: testssl.sh against poolsrv-echo on
# a tls: listener, failing on any HIGH or CRITICAL finding
# (tests/tls_audit.sh).  Takes minutes, so it is not part of `make test`;
# .ci/run runs it after `make test`.  Included by the top Makefile.
#
#   make test-tls-audit                       the poolsrv-echo of this tree
#   make test-tls-audit AUDIT_ECHO=path/to/poolsrv-echo   another binary (not
#                                             rebuilt here)

AUDIT_ECHO ?=

.PHONY: test-tls-audit
test-tls-audit: $(if $(AUDIT_ECHO),,$(ECHO))
	ECHO=$(or $(AUDIT_ECHO),$(ECHO)) tests/tls_audit.sh

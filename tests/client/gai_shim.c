/* SPDX-License-Identifier: MIT */
/*
 * gai_shim.c - LD_PRELOAD shim for tests/client/run.sh: the name
 * "multi.poolsrv.test" resolves to every numeric address listed in
 * $PC_TEST_ADDRS ("::1,127.0.0.1"), in that order, so that the client's
 * "try each address in turn" can be tested without DNS or /etc/hosts.
 * Names under ".invalid" (reserved by RFC 6761, never resolvable) fail
 * with EAI_NONAME here, so the resolution-failure test sends no DNS query
 * off this machine.  Every other name goes to the real getaddrinfo.
 *
 * The list is spliced from one real getaddrinfo result per address; glibc
 * frees a result node by node, so the real freeaddrinfo releases it.
 */
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SHIM_NAME "multi.poolsrv.test"

typedef int gai_fn(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static gai_fn *real_gai(void)
{
    gai_fn *fn;

    *(void **)&fn = dlsym(RTLD_NEXT, "getaddrinfo");
    return fn;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    struct addrinfo *head = NULL, **tail = &head, *one;
    const char *list = getenv("PC_TEST_ADDRS");
    char buf[512], *save, *addr;
    gai_fn *real = real_gai();
    int rc;

    if (node && strlen(node) > 8 && strcmp(node + strlen(node) - 8, ".invalid") == 0)
        return EAI_NONAME;
    if (!node || strcmp(node, SHIM_NAME) != 0 || !list)
        return real(node, service, hints, res);
    snprintf(buf, sizeof(buf), "%s", list);
    for (addr = strtok_r(buf, ",", &save); addr; addr = strtok_r(NULL, ",", &save)) {
        rc = real(addr, service, hints, &one);
        if (rc == EAI_ADDRFAMILY || rc == EAI_NONAME || rc == EAI_FAMILY)
            continue; /* filtered out by -4 / -6 */
        if (rc != 0) {
            if (head)
                freeaddrinfo(head);
            return rc;
        }
        *tail = one;
        while (*tail)
            tail = &(*tail)->ai_next;
    }
    if (!head)
        return EAI_NONAME;
    *res = head;
    return 0;
}

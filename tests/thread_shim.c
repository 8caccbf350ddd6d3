/* SPDX-License-Identifier: MIT */
/*
 * thread_shim.c - LD_PRELOAD shim for the shell suites (tests/echo_cli.sh,
 * tests/examples/run.sh): with PS_TEST_FAIL_THREAD=N in the environment,
 * the Nth pthread_create of the process (counting from 1) and every later
 * one fail with EAGAIN, as they do under a pids cgroup limit or an
 * address-space limit too small for another stack.  The thread creation
 * order of a program is fixed (its server's workers, its reactor, then the
 * program's own threads), so N picks the thread that cannot start,
 * deterministically, whatever user runs the test.  Without the variable
 * every call goes to the real pthread_create.
 *
 * Never sanitized: it is preloaded into a normal build of the program.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static atomic_long calls;

int pthread_create(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    const char *from = getenv("PS_TEST_FAIL_THREAD");
    long n = atomic_fetch_add(&calls, 1) + 1;
    create_fn *real;

    if (from && *from && n >= atol(from))
        return EAGAIN;
    *(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
    return real(tid, attr, fn, arg);
}

/* SPDX-License-Identifier: MIT */
/*
 * run_tests.c - runs every Check suite of poolsrv.
 *
 * Each test runs in a forked child (Check's default fork mode), so a crash
 * or a hang fails that test alone; every TCase sets a timeout, which Check
 * multiplies by CK_TIMEOUT_MULTIPLIER.
 *
 * Debugging:
 *   CK_FORK=no build/tests/run-tests     run in-process (gdb, valgrind): a
 *                                        crash then ends the whole run, and
 *                                        a failed test may leave threads
 *   CK_RUN_SUITE=server                  only the suite named "server"
 *                                        (queue addr config server event
 *                                        blocking features proxy dgram bounds
 *                                        anythread callbacks connect)
 *   CK_RUN_CASE=stop                     only the test cases named "stop"
 *   CK_VERBOSITY=verbose                 print every test, not just failures
 *   CK_XML_LOG_FILE_NAME=/tmp/ck.xml     per-test results with durations
 *   CK_TIMEOUT_MULTIPLIER=4              stretch every timeout (slow machines;
 *                                        set to 5 here by default under TSan,
 *                                        3 under ASan)
 * Exit status: 0 when every test passed, 1 otherwise.
 */
#include <stdlib.h>

#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define TU_SAN_MULTIPLIER "5"
#elif defined(__SANITIZE_ADDRESS__)
#define TU_SAN_MULTIPLIER "3"
#endif

int main(void)
{
    SRunner *sr;
    int failed;

#ifdef TU_SAN_MULTIPLIER
    /* Sanitizers slow everything down; an explicit setting wins.  Must be
     * set before the suites are built: tcase_set_timeout reads it. */
    setenv("CK_TIMEOUT_MULTIPLIER", TU_SAN_MULTIPLIER, 0);
#endif
    sr = srunner_create(queue_suite());
    srunner_add_suite(sr, addr_suite());
    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, server_suite());
    srunner_add_suite(sr, event_suite());
    srunner_add_suite(sr, blocking_suite());
    srunner_add_suite(sr, features_suite());
    srunner_add_suite(sr, proxy_suite());
    srunner_add_suite(sr, bounds_suite());
    srunner_add_suite(sr, anythread_suite());
    srunner_add_suite(sr, callbacks_suite());
    srunner_add_suite(sr, connect_suite());
    srunner_add_suite(sr, dgram_suite());
    srunner_add_suite(sr, handoff_suite());
    srunner_add_suite(sr, tls_suite());
    srunner_add_suite(sr, metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

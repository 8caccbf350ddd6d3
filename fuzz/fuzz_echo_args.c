/* SPDX-License-Identifier: MIT */
/*
 * fuzz_echo_args.c - libFuzzer target for poolsrv-echo's command line
 * (parse_args in server/echo.c).
 *
 * parse_args is static and ends bad usage with exit(2), so this file
 * includes echo.c whole, with exit() turned into a longjmp back here and
 * the output calls into formatting without printing (the format strings
 * and their arguments are still evaluated).  main() becomes echo_main and
 * is never called.  The input is split at NUL bytes into argv[1..] (a
 * trailing NUL adds no empty argument; at most 64 arguments).
 * Checks: an accepted command line leaves every field in its documented
 * range and at least one listen address that ps_addr_parse accepts.
 *
 * This reaches into echo.c's private parse_args(argc, argv, cfg, &opts);
 * when that signature changes, change the call below (the build fails
 * loudly: fuzz.mk makes incompatible pointer types an error).
 */
#include "echo_handlers.h"
#include "poolsrv.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static jmp_buf fuzz_exit_env;

static _Noreturn void fuzz_exit(int code)
{
    longjmp(fuzz_exit_env, code + 1);
}

__attribute__((format(printf, 2, 3))) static int fuzz_fprintf(FILE *f, const char *fmt, ...)
{
    char sink[512];
    va_list ap;
    int n;

    (void)f;
    va_start(ap, fmt);
    n = vsnprintf(sink, sizeof sink, fmt, ap);
    va_end(ap);
    return n;
}

#define exit(code) fuzz_exit(code)
#define fprintf(...) fuzz_fprintf(__VA_ARGS__)
#define printf(...) fuzz_fprintf(stdout, __VA_ARGS__)
#define main echo_main
#include "../server/echo.c" /* NOLINT(bugprone-suspicious-include): see above */
#undef main
#undef printf
#undef fprintf
#undef exit

#define MAX_ARGS 64

/* What main() goes on to serve with must be a configuration the library
 * accepts, with every field in its documented range. */
static void check_config(const ps_config *cfg, const ps_handler *h)
{
    if (cfg->nlisten < 1 || cfg->nlisten > PS_MAX_LISTEN)
        abort();
    if (ps_config_validate(cfg, h, NULL) != 0)
        abort();
    if (cfg->workers < 1 || cfg->workers > 1024 || cfg->queue_capacity < 1 ||
        cfg->queue_capacity > (1 << 20) || cfg->backlog < 1 || cfg->backlog > (1 << 20) ||
        cfg->drain_timeout_ms < -1 || cfg->idle_timeout_ms < 0)
        abort();
    if (cfg->policy != PS_POLICY_BLOCK && cfg->policy != PS_POLICY_REJECT)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[MAX_ARGS + 2];
    char *copy = malloc(size + 1);
    ps_config cfg;
    struct opts o = {.event_style = true}; /* as echo.c's main() starts */
    int argc = 1;
    size_t i, start = 0;

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    argv[0] = (char *)"poolsrv-echo";
    for (i = 0; i < size && argc < MAX_ARGS; i++) {
        if (copy[i] == '\0') {
            argv[argc++] = copy + start;
            start = i + 1;
        }
    }
    if (start < size && argc <= MAX_ARGS)
        argv[argc++] = copy + start;
    argv[argc] = NULL;

    ps_config_init(&cfg);
    optind = 0; /* glibc: start a fresh scan */
    if (setjmp(fuzz_exit_env) == 0) {
        ps_handler h;
        parse_args(argc, argv, &cfg, &o);
        echo_handler_init(&h, o.event_style); /* as main() does next */
        validate(&cfg, &h);                   /* exits (longjmps) on a usage error */
        check_config(&cfg, &h);
    }
    free(copy);
    return 0;
}

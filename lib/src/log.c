/* SPDX-License-Identifier: MIT */
/*
 * log.c - the library's only way to speak: the user's log callback.
 * Messages above the configured level are never formatted, so disabled
 * debug lines cost one comparison.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void ps__log(const ps_server *s, ps_log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!s->cfg.log || level > s->cfg.log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->cfg.log(level, msg, s->cfg.log_user);
}

int64_t ps__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - the Prometheus lines the admin endpoint adds to the
 * library's counters: poolsrv_build_info, the configuration as gauges, and
 * the standard process_* metrics of Prometheus's client libraries, read
 * from /proc (Linux).
 */
#ifndef PS_METRICS_H
#define PS_METRICS_H

#include "poolsrv.h"

#include <stddef.h>

/* Append to buf (cap bytes, *n used so far; *n grows past cap when the
 * text does not fit, like snprintf's return, and buf stays terminated).
 * program: the label of poolsrv_build_info; cfg: the served
 * configuration, its gauges named PREFIX_config_*.  A /proc file that
 * cannot be read leaves its metric out.  Any thread. */
void metrics_build_info(char *buf, size_t cap, size_t *n, const char *program);
void metrics_config(char *buf, size_t cap, size_t *n, const char *prefix, const ps_config *cfg);
void metrics_process(char *buf, size_t cap, size_t *n);

#endif

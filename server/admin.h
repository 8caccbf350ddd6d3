/* SPDX-License-Identifier: MIT */
/*
 * admin.h - a tiny admin listener for the bundled servers: a second
 * ps_server in the same process answering "GET /metrics" with the main
 * server's counters in Prometheus text format (and "GET /stats" with one
 * text line).  Two servers in one process, as the library allows.
 */
#ifndef PS_ADMIN_H
#define PS_ADMIN_H

#include "poolsrv.h"

/* Start an admin server on addr reporting on `target`, which runs with
 * *target_cfg (copied; its limits become gauges).  Metric names start with
 * prefix; program labels poolsrv_build_info.  Returns NULL and fills *err
 * on failure.  Free with ps_server_free. */
ps_server *admin_start(const char *addr, ps_server *target, const ps_config *target_cfg,
                       const char *prefix, const char *program, ps_err *err);

/* The same server, created but not started (to adopt listeners an upgrade
 * handed over first, upgrade.h).  Start it with ps_server_start. */
ps_server *admin_new(const char *addr, ps_server *target, const ps_config *target_cfg,
                     const char *prefix, const char *program, ps_err *err);

#endif

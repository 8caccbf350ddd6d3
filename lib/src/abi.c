/* SPDX-License-Identifier: MIT */
/*
 * abi.c - the size-stamped entry points behind the macros ps_config_init,
 * ps_config_validate, ps_server_new, ps_server_stats and ps_stats_format
 * and ps_tls_config_init, ps_tls_new (docs/abi.md).
 *
 * The caller passes sizeof(ps_config), sizeof(ps_handler), sizeof(ps_stats)
 * as its compiler saw them.  The structs only ever grow at the end, so the
 * caller's struct is a prefix of ours (an older program) or ours is a
 * prefix of the caller's (a program built against a newer header than this
 * library).  The rules are the Linux kernel's for extensible structs
 * (copy_struct_from_user, used by openat2 and clone3):
 *   - reading a shorter struct: the fields it lacks take their defaults;
 *   - reading a longer struct: its extra bytes must be zero, or the caller
 *     asked for something this library cannot do: -EINVAL, never ignored;
 *   - writing: only the caller's size is written; the extra room of a
 *     longer struct is zeroed.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Copy our full *src out to the caller's struct of `size` bytes. */
static void copy_out(void *dst, size_t size, const void *src, size_t ours)
{
    memcpy(dst, src, min_size(size, ours));
    if (size > ours)
        memset((char *)dst + ours, 0, size - ours);
}

/* Offset of the first non-zero byte past `ours` in a caller's struct of
 * `size` bytes, or 0 when there is none. */
static size_t unknown_tail(const void *p, size_t size, size_t ours)
{
    size_t i;

    for (i = ours; i < size; i++)
        if (((const unsigned char *)p)[i])
            return i;
    return 0;
}

/* *dst: the caller's config over our defaults, and the caller's handler over
 * zeros.  Returns 0 or -EINVAL (h may be NULL: validation says so). */
static int import(ps_config *dst_cfg, const ps_config *cfg, size_t cfg_size, ps_handler *dst_h,
                  const ps_handler *h, size_t h_size, ps_err *err)
{
    size_t off;

    if (!cfg)
        return ps__set_err(err, -EINVAL, "config: missing");
    if (cfg_size == 0 || (h && h_size == 0))
        return ps__set_err(err, -EINVAL, "config: struct size 0 (use the ps_server_new macro)");
    if ((off = unknown_tail(cfg, cfg_size, sizeof *dst_cfg)) != 0)
        return ps__set_err(err, -EINVAL,
                           "config: byte %zu is set but libpoolsrv %s knows only %zu bytes of "
                           "ps_config (built against a newer poolsrv.h?)",
                           off, ps_version(), sizeof *dst_cfg);
    if (h && (off = unknown_tail(h, h_size, sizeof *dst_h)) != 0)
        return ps__set_err(err, -EINVAL,
                           "handler: byte %zu is set but libpoolsrv %s knows only %zu bytes of "
                           "ps_handler (built against a newer poolsrv.h?)",
                           off, ps_version(), sizeof *dst_h);
    ps__config_init(dst_cfg);
    memcpy(dst_cfg, cfg, min_size(cfg_size, sizeof *dst_cfg));
    memset(dst_h, 0, sizeof *dst_h);
    if (h)
        memcpy(dst_h, h, min_size(h_size, sizeof *dst_h));
    return 0;
}

void ps_config_init_sized(ps_config *cfg, size_t cfg_size)
{
    ps_config full;

    ps__config_init(&full);
    copy_out(cfg, cfg_size, &full, sizeof full);
}

int ps_config_validate_sized(const ps_config *cfg, size_t cfg_size, const ps_handler *h,
                             size_t h_size, ps_err *err)
{
    ps_config c;
    ps_handler hh;
    int rc = import(&c, cfg, cfg_size, &hh, h, h_size, err);

    return rc < 0 ? rc : ps__config_validate(&c, h ? &hh : NULL, err);
}

ps_server *ps_server_new_sized(const ps_config *cfg, size_t cfg_size, const ps_handler *h,
                               size_t h_size, void *user, ps_err *err)
{
    ps_config c;
    ps_handler hh;

    if (import(&c, cfg, cfg_size, &hh, h, h_size, err) < 0)
        return NULL;
    return ps__server_new(&c, h ? &hh : NULL, user, err);
}

/* ps_server_connect keeps a pointer to the caller's handler for the life
 * of the connection.  A handler of our size is used in place; a shorter
 * (older) one is copied, zero-extended, for that connection alone. */
int ps_server_connect_sized(ps_server *s, const char *addr, const ps_handler *h, size_t h_size,
                            void *user, void *data, ps_conn_ref *ref, ps_err *err)
{
    ps_handler *copy;
    size_t off;
    int rc;

    if (!h || h_size == sizeof *h)
        return ps__server_connect(s, addr, h, NULL, user, data, ref, err);
    if (h_size == 0 || (off = unknown_tail(h, h_size, sizeof *h)) != 0)
        return ps__set_err(err, -EINVAL,
                           "connect: handler of %zu bytes; libpoolsrv %s knows %zu (use the "
                           "ps_server_connect macro)",
                           h_size, ps_version(), sizeof *h);
    copy = calloc(1, sizeof *copy);
    if (!copy)
        return ps__set_err(err, -ENOMEM, "connect: out of memory");
    memcpy(copy, h, min_size(h_size, sizeof *copy));
    rc = ps__server_connect(s, addr, copy, copy, user, data, ref, err);
    if (rc < 0)
        free(copy);
    return rc;
}

void ps_server_stats_sized(const ps_server *s, ps_stats *out, size_t out_size)
{
    ps_stats full;

    ps__server_stats(s, &full);
    copy_out(out, out_size, &full, sizeof full);
}

void ps_tls_config_init_sized(ps_tls_config *cfg, size_t cfg_size)
{
    ps_tls_config full;

    ps__tls_config_init(&full);
    copy_out(cfg, cfg_size, &full, sizeof full);
}

ps_tls *ps_tls_new_sized(const ps_tls_config *cfg, size_t cfg_size, ps_err *err)
{
    ps_tls_config full;
    size_t off;

    if (!cfg || cfg_size == 0) {
        ps__set_err(err, -EINVAL, "tls: config missing (use the ps_tls_new macro)");
        return NULL;
    }
    if ((off = unknown_tail(cfg, cfg_size, sizeof full)) != 0) {
        ps__set_err(err, -EINVAL,
                    "tls: config byte %zu is set but libpoolsrv %s knows only %zu bytes of "
                    "ps_tls_config (built against a newer poolsrv.h?)",
                    off, ps_version(), sizeof full);
        return NULL;
    }
    ps__tls_config_init(&full);
    memcpy(&full, cfg, min_size(cfg_size, sizeof full));
    return ps__tls_new(&full, err);
}

int ps_stats_format_sized(const ps_stats *st, size_t st_size, ps_stats_format_kind kind,
                          const char *prefix, char *buf, size_t cap)
{
    return ps__stats_format(st, st_size, kind, prefix, buf, cap);
}

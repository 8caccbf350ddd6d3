/* SPDX-License-Identifier: MIT */
/*
 * unix_perms.c - permissions of the socket files of "unix:" listeners
 * (ps_config unix_mode / unix_owner / unix_group): reading them from an
 * operator's text, and applying them to a socket just bound.
 *
 * When: after bind(2), before listen(2).  bind creates the file with 0777
 * minus the umask, but a connect to a socket that is not listening yet is
 * refused, so no client gets in under that mode.  The alternatives are
 * worse: the umask is per process, and changing it around bind would
 * change it under every other thread of the application; fchmod(2) on a
 * socket descriptor changes the socket's own inode, not the file's.
 *
 * How: the file is changed by path, so the calls must not follow a
 * symlink (someone who can write to the directory could swap the socket
 * for a link to another file between bind and chmod, and a server run as
 * root would then change that file).  The path is checked to be a socket
 * (lstat) and changed with fchmodat / fchownat and AT_SYMLINK_NOFOLLOW.
 * Keep the socket in a directory only the server's user can write to
 * (/run/NAME): that directory is the real guard.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PS_PW_BUF 16384 /* getpwnam_r/getgrnam_r scratch; ERANGE past it */

/* All digits, at most 10 of them, <= INT32_MAX: a numeric id. */
static int parse_id(const char *text, long *out)
{
    char *end;
    long v;

    if (!*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 10)
        return -EINVAL;
    v = strtol(text, &end, 10);
    if (v > INT32_MAX)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_mode(const char *text, int *mode, ps_err *err)
{
    char *end;
    long v;

    if (!*text || strspn(text, "01234567") != strlen(text) || strlen(text) > 4)
        return ps__set_err(err, -EINVAL,
                           "unix mode '%s': expected octal permission bits, "
                           "1 to 0777 (e.g. 0660)",
                           text);
    v = strtol(text, &end, 8);
    if (v < 1 || v > 0777)
        return ps__set_err(err, -EINVAL,
                           "unix mode '%s': expected octal permission bits, "
                           "1 to 0777 (e.g. 0660)",
                           text);
    *mode = (int)v;
    return 0;
}

/* A user name or uid (owner) / a group name or gid (group) to an id. */
static int lookup(const char *text, bool user, int *id, ps_err *err)
{
    const char *what = user ? "unix owner" : "unix group";
    bool found = false;
    char *buf;
    long n;
    int rc;

    if (parse_id(text, &n) == 0) {
        *id = (int)n;
        return 0;
    }
    if (!*text)
        return ps__set_err(err, -EINVAL, "%s: empty", what);
    buf = malloc(PS_PW_BUF);
    if (!buf)
        return ps__set_err(err, -ENOMEM, "%s '%s': out of memory", what, text);
    if (user) {
        struct passwd pw, *res = NULL;
        rc = getpwnam_r(text, &pw, buf, PS_PW_BUF, &res);
        if (res) {
            found = true;
            *id = (int)pw.pw_uid;
        }
    } else {
        struct group gr, *res = NULL;
        rc = getgrnam_r(text, &gr, buf, PS_PW_BUF, &res);
        if (res) {
            found = true;
            *id = (int)gr.gr_gid;
        }
    }
    free(buf);
    if (found)
        return 0;
    if (rc != 0 && rc != ENOENT && rc != ESRCH) /* not-found codes some NSS modules give */
        return ps__set_err(err, -EINVAL, "%s '%s': cannot look it up: %s", what, text,
                           ps_strerror(rc));
    return ps__set_err(err, -EINVAL, "%s '%s': no such %s", what, text, user ? "user" : "group");
}

int ps_config_set_unix_perms(ps_config *cfg, const char *mode, const char *owner, const char *group,
                             ps_err *err)
{
    int m = cfg->unix_mode, uid = cfg->unix_owner, gid = cfg->unix_group, rc;

    if ((mode && (rc = parse_mode(mode, &m, err)) < 0) ||
        (owner && (rc = lookup(owner, true, &uid, err)) < 0) ||
        (group && (rc = lookup(group, false, &gid, err)) < 0))
        return rc;
    cfg->unix_mode = m;
    cfg->unix_owner = uid;
    cfg->unix_group = gid;
    return 0;
}

/* Listener setup: give the socket file just bound at path the configured
 * owner and group, then mode.
 * Returns 0, or -errno with err->msg naming the listener (text), the call
 * and the reason. */
int ps__unix_perms_apply(const ps_config *cfg, const char *path, const char *text, ps_err *err)
{
    struct stat st;

    if (cfg->unix_mode == 0 && cfg->unix_owner < 0 && cfg->unix_group < 0)
        return 0;
    if (lstat(path, &st) < 0)
        return ps__set_err(err, -errno, "listen %s: stat: %s", text, ps_strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return ps__set_err(err, -EEXIST, "listen %s: the path is no longer our socket", text);
    if ((cfg->unix_owner >= 0 || cfg->unix_group >= 0) &&
        fchownat(AT_FDCWD, path, (uid_t)cfg->unix_owner, (gid_t)cfg->unix_group,
                 AT_SYMLINK_NOFOLLOW) < 0)
        return ps__set_err(err, -errno, "listen %s: cannot set owner %d group %d: %s", text,
                           cfg->unix_owner, cfg->unix_group, ps_strerror(errno));
    if (cfg->unix_mode > 0 &&
        fchmodat(AT_FDCWD, path, (mode_t)cfg->unix_mode, AT_SYMLINK_NOFOLLOW) < 0)
        return ps__set_err(err, -errno, "listen %s: cannot set mode %04o: %s", text,
                           (unsigned)cfg->unix_mode, ps_strerror(errno));
    return 0;
}

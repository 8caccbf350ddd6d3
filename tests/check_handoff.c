/* SPDX-License-Identifier: MIT */
/*
 * check_handoff.c - listener hand-off (handoff.c) within one process: a
 * successor server adopts duplicates of the old server's listening sockets,
 * the old one stops with ps_server_handoff_stop, and a connection made while
 * nobody accepts (it waits in the shared accept queue) is served by the
 * successor, on the same port, with the Unix socket file still in place.
 * Also: the description's format and escapes, malformed descriptions, and
 * an inherited socket no listen text claims being closed.  The whole
 * procedure across processes is tests/upgrade/run.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../server/echo_handlers.h"
#include "test_util.h"

/* A unique Unix socket path under /tmp with a ',' and a '%' in it, so the
 * description has to escape both. */
static void unix_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "unix:/tmp/ps-handoff-%d,%%x.sock", (int)getpid());
}

/* The description of s, with each descriptor replaced by a duplicate (what
 * a successor would inherit), built from ps_server_listener_fd and
 * ps_server_listen_text. */
static void dup_description(ps_server *s, char *buf, size_t cap)
{
    size_t n = 0;
    int i;

    buf[0] = '\0';
    for (i = 0; i < ps_server_nlisteners(s); i++) {
        int fd = fcntl(ps_server_listener_fd(s, i), F_DUPFD_CLOEXEC, 100);
        const char *t = ps_server_listen_text(s, i);
        ck_assert_int_ge(fd, 0);
        n += (size_t)snprintf(buf + n, cap - n, "%s%d=", n ? "," : "", fd);
        for (; *t; t++)
            n += (size_t)(*t == ',' || *t == '%' ? snprintf(buf + n, cap - n, "%%%02X", *t)
                                                 : snprintf(buf + n, cap - n, "%c", *t));
    }
}

static ps_server *start_echo(const char *unix_text, const char *adopt, int *port)
{
    ps_config cfg;
    ps_handler h;
    ps_err err;
    ps_server *s;

    tu_config(&cfg);
    cfg.udp_same_port = true;
    ps_config_add_listen(&cfg, unix_text);
    echo_handler_init(&h, true);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    if (adopt)
        ck_assert_msg(ps_server_handoff_adopt(s, adopt, &err) >= 0, "%s", err.msg);
    ck_assert_msg(ps_server_start(s, &err) == 0, "%s", err.msg);
    *port = ps_server_port(s, 0);
    return s;
}

START_TEST(test_format)
{
    char text[128], want[256], got[512];
    int port, n;
    ps_server *s;

    unix_path(text, sizeof text);
    s = start_echo(text, NULL, &port);
    ck_assert_int_eq(ps_server_nlisteners(s), 3); /* TCP, UDP, unix */
    ck_assert_str_eq(ps_server_listen_text(s, 0), "127.0.0.1:0");
    ck_assert_str_eq(ps_server_listen_text(s, 1), "127.0.0.1:0");
    ck_assert_str_eq(ps_server_listen_text(s, 2), text);
    ck_assert_ptr_null(ps_server_listen_text(s, 3));
    ck_assert_int_eq(ps_server_listener_fd(s, 3), -EINVAL);
    snprintf(want, sizeof want, "%d=127.0.0.1:0,%d=127.0.0.1:0,%d=unix:/tmp/ps-handoff-%d%%2C%%25x.sock",
             ps_server_listener_fd(s, 0), ps_server_listener_fd(s, 1), ps_server_listener_fd(s, 2),
             (int)getpid());
    n = ps_server_handoff_format(s, got, sizeof got);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(n, (int)strlen(want));
    /* too small: cut, NUL-terminated, full length returned */
    ck_assert_int_eq(ps_server_handoff_format(s, got, 5), n);
    ck_assert_int_eq(strlen(got), 4);
    ps_server_free(s);
}
END_TEST

/* The old server hands off and is gone before anybody accepts; a client
 * that connects in between waits in the shared queue and the successor
 * serves it.  Before ps_server_handoff_stop kept the file, the old server's
 * stop removed the Unix socket file the successor listens on. */
START_TEST(test_takeover)
{
    char text[128], desc[512], buf[8];
    const char *path;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int port, port2, fd, ufd;
    ps_server *a, *b;
    ps_config cfg;
    ps_handler h;
    ps_err err;

    unix_path(text, sizeof text);
    path = text + 5;
    a = start_echo(text, NULL, &port);
    dup_description(a, desc, sizeof desc);

    tu_config(&cfg);
    cfg.udp_same_port = true;
    ps_config_add_listen(&cfg, text);
    echo_handler_init(&h, true);
    b = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_msg(b != NULL, "%s", err.msg);
    ck_assert_int_eq(ps_server_handoff_adopt(b, desc, &err), 3);
    ck_assert_int_eq(ps_server_handoff_adopt(b, desc, &err), -EALREADY);

    ps_server_handoff_stop(a);
    ck_assert_int_eq(tu_server_wait(a, tu_ms(5000)), 0);
    ck_assert_msg(stat(path, &st) == 0, "the old server removed %s", path);

    /* Nobody accepts now: the connection waits in the queue. */
    fd = tu_connect(port, tu_ms(2000));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "hello", 5, tu_ms(2000)), 0);
    ufd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(sun.sun_path, sizeof sun.sun_path, "%.80s", path);
    ck_assert_int_eq(connect(ufd, (struct sockaddr *)&sun, sizeof sun), 0);
    ck_assert_int_eq(tu_write_all(ufd, "world", 5, tu_ms(2000)), 0);

    ck_assert_msg(ps_server_start(b, &err) == 0, "%s", err.msg);
    port2 = ps_server_port(b, 0);
    ck_assert_int_eq(port2, port);
    ck_assert_int_eq(ps_server_nlisteners(b), 3);
    ck_assert_int_eq(tu_read_exact(fd, buf, 5, tu_ms(5000)), 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    ck_assert_int_eq(tu_read_exact(ufd, buf, 5, tu_ms(5000)), 5);
    ck_assert_int_eq(memcmp(buf, "world", 5), 0);
    close(fd);
    close(ufd);
    ps_server_free(a);

    /* The successor, last to hold the socket, removes the file at stop. */
    ps_server_free(b);
    ck_assert_msg(stat(path, &st) < 0 && errno == ENOENT, "%s left behind", path);
}
END_TEST

/* A successor whose start fails (here: a second listen address that is
 * already taken) must not remove the file the old server still serves. */
START_TEST(test_failed_successor_keeps_file)
{
    char text[128], desc[512];
    const char *path;
    struct stat st;
    int port;
    ps_server *a, *b, *blocker;
    ps_config cfg;
    ps_handler h;
    ps_err err;
    char busy[64];

    unix_path(text, sizeof text);
    path = text + 5;
    a = start_echo(text, NULL, &port);
    dup_description(a, desc, sizeof desc);
    tu_config(&cfg);
    echo_handler_init(&h, true);
    blocker = tu_server_start(&cfg, &h, NULL, &port);
    snprintf(busy, sizeof busy, "127.0.0.1:%d", port);

    tu_config(&cfg);
    cfg.udp_same_port = true;
    ps_config_add_listen(&cfg, text);
    ps_config_add_listen(&cfg, busy);
    b = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_msg(b != NULL, "%s", err.msg);
    ck_assert_int_eq(ps_server_handoff_adopt(b, desc, &err), 3);
    ck_assert_int_lt(ps_server_start(b, &err), 0);
    ps_server_free(b);
    ck_assert_msg(stat(path, &st) == 0, "the failed successor removed %s", path);
    ps_server_free(blocker);
    ps_server_free(a);
    ck_assert_msg(stat(path, &st) < 0, "%s left behind", path);
}
END_TEST

START_TEST(test_unclaimed_closed)
{
    int sp[2], port;
    char desc[64], c;
    ps_server *s;
    ps_config cfg;
    ps_handler h;
    ps_err err;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    snprintf(desc, sizeof desc, "%d=127.0.0.1:1", sp[0]);
    tu_config(&cfg);
    echo_handler_init(&h, true);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_int_eq(ps_server_handoff_adopt(s, desc, &err), 1);
    ck_assert_msg(ps_server_start(s, &err) == 0, "%s", err.msg);
    port = ps_server_port(s, 0);
    ck_assert_int_gt(port, 1); /* bound anew: nothing inherited for 127.0.0.1:0 */
    ck_assert_int_eq(read(sp[1], &c, 1), 0); /* the other end was closed */
    close(sp[1]);
    ps_server_free(s);
}
END_TEST

START_TEST(test_bad_descriptions)
{
    static const char *bad[] = {"3", "=x", "x=1", "99999=a", "1000=a", "%d=a%%zz", "%d=a%%00",
                                "%d=a,%d=b"};
    char desc[64];
    ps_config cfg;
    ps_handler h;
    ps_err err;
    size_t i;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    tu_config(&cfg);
    echo_handler_init(&h, true);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ps_server *s = ps_server_new(&cfg, &h, NULL, &err);
        snprintf(desc, sizeof desc, bad[i], fd, fd);
        err.msg[0] = '\0';
        ck_assert_msg(ps_server_handoff_adopt(s, desc, &err) == -EINVAL, "'%s' accepted", desc);
        ck_assert_msg(strncmp(err.msg, "handoff: ", 9) == 0, "'%s': message '%s'", desc, err.msg);
        ps_server_free(s);
    }
    /* an empty description adopts nothing */
    {
        ps_server *s = ps_server_new(&cfg, &h, NULL, &err);
        ck_assert_int_eq(ps_server_handoff_adopt(s, "", &err), 0);
        ps_server_free(s);
    }
    ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* a refused description closes nothing */
    close(fd);
}
END_TEST

Suite *handoff_suite(void)
{
    Suite *s = suite_create("handoff");
    TCase *tc = tcase_create("handoff");

    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_takeover);
    tcase_add_test(tc, test_failed_successor_keeps_file);
    tcase_add_test(tc, test_unclaimed_closed);
    tcase_add_test(tc, test_bad_descriptions);
    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);
    return s;
}

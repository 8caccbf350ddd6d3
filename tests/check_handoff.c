/* SPDX-License-Identifier: MIT */
/*
 * check_handoff.c - listener hand-off (handoff.c) within one process: a
 * successor server adopts duplicates of the old server's listening sockets,
 * the old one stops with ps_server_handoff_stop, and a connection made while
 * nobody accepts (it waits in the shared accept queue) is served by the
 * successor, on the same port, with the Unix socket file still in place.
 * Also: the description's format and escapes, malformed descriptions, an
 * inherited socket no listen text claims being closed, a socket whose type
 * disagrees with its listen text being refused, adopted sockets surviving a
 * failed start, and an empty description not using up the one call.  The whole
 * procedure across processes is tests/upgrade/run.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

/* The port a socket is bound to, or -1 if fd is not an open socket. */
static int fd_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != AF_INET)
        return -1;
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A failed start leaves the adopted descriptors open and adopted: a second
 * start takes them over.  Before, the sockets a listen text had claimed were
 * closed by the failed start, so a retry could not take them over. */
START_TEST(test_failed_start_keeps_adopted)
{
    char text[128], desc[512], busy[64];
    int port, bport, fds[3], i;
    ps_server *a, *b, *blocker;
    ps_config cfg;
    ps_handler h;
    ps_err err;

    unix_path(text, sizeof text);
    a = start_echo(text, NULL, &port);
    dup_description(a, desc, sizeof desc);
    ck_assert_int_eq(sscanf(desc, "%d=%*[^,],%d=%*[^,],%d=", &fds[0], &fds[1], &fds[2]), 3);
    tu_config(&cfg);
    echo_handler_init(&h, true);
    blocker = tu_server_start(&cfg, &h, NULL, &bport);
    snprintf(busy, sizeof busy, "127.0.0.1:%d", bport);

    tu_config(&cfg);
    cfg.udp_same_port = true;
    ps_config_add_listen(&cfg, text);
    ps_config_add_listen(&cfg, busy);
    b = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_msg(b != NULL, "%s", err.msg);
    ck_assert_int_eq(ps_server_handoff_adopt(b, desc, &err), 3);
    ck_assert_int_eq(ps_server_start(b, &err), -EADDRINUSE);
    for (i = 0; i < 2; i++)
        ck_assert_msg(fd_port(fds[i]) == port, "adopted fd %d closed by the failed start", fds[i]);
    ck_assert_int_ge(fcntl(fds[2], F_GETFD), 0);

    ps_server_free(blocker);
    ck_assert_msg(ps_server_start(b, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(ps_server_port(b, 0), port); /* taken over, not bound anew */
    ck_assert_int_eq(ps_server_listener_fd(b, 0), fds[0]);
    ps_server_free(a);
    ps_server_free(b);
}
END_TEST

/* A descriptor whose socket type disagrees with its listen text is refused
 * at start, naming both; before, a TCP listener was served under a udp:
 * text (and a UDP socket under a stream text). */
START_TEST(test_type_mismatch)
{
    static const struct {
        const char *text; /* the successor's listen text */
        int type;         /* the socket handed over under it */
    } cases[] = {{"udp:127.0.0.1:0", SOCK_STREAM}, {"127.0.0.1:0", SOCK_DGRAM}};
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char desc[64], want[32];
    ps_config cfg;
    ps_handler h;
    ps_err err;
    size_t i;

    echo_handler_init(&h, true);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = socket(AF_INET, cases[i].type | SOCK_CLOEXEC, 0);
        ps_server *s;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
        if (cases[i].type == SOCK_STREAM)
            ck_assert_int_eq(listen(fd, 8), 0);
        snprintf(desc, sizeof desc, "%d=%s", fd, cases[i].text);
        ps_config_init(&cfg);
        ps_config_add_listen(&cfg, cases[i].text);
        s = ps_server_new(&cfg, &h, NULL, &err);
        ck_assert_msg(s != NULL, "%s", err.msg);
        ck_assert_int_eq(ps_server_handoff_adopt(s, desc, &err), 1);
        err.msg[0] = '\0';
        ck_assert_msg(ps_server_start(s, &err) == -EINVAL, "'%s' served on a %s socket",
                      cases[i].text, cases[i].type == SOCK_STREAM ? "stream" : "datagram");
        snprintf(want, sizeof want, "descriptor %d", fd);
        ck_assert_msg(strstr(err.msg, cases[i].text) && strstr(err.msg, want), "message '%s'",
                      err.msg);
        ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* still adopted, closed by ps_server_free */
        ps_server_free(s);
        ck_assert_int_lt(fcntl(fd, F_GETFD), 0);
    }
}
END_TEST

/* A successor without udp_same_port takes the TCP socket of its
 * predecessor's pair and closes the UDP one (a dropped address). */
START_TEST(test_pair_dropped)
{
    char text[128], desc[512];
    int port, fds[3];
    ps_server *a, *b;
    ps_config cfg;
    ps_handler h;
    ps_err err;

    unix_path(text, sizeof text);
    a = start_echo(text, NULL, &port);
    dup_description(a, desc, sizeof desc);
    ck_assert_int_eq(sscanf(desc, "%d=%*[^,],%d=%*[^,],%d=", &fds[0], &fds[1], &fds[2]), 3);
    tu_config(&cfg);
    ps_config_add_listen(&cfg, text);
    echo_handler_init(&h, true);
    b = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_msg(b != NULL, "%s", err.msg);
    ck_assert_int_eq(ps_server_handoff_adopt(b, desc, &err), 3);
    ck_assert_msg(ps_server_start(b, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(ps_server_nlisteners(b), 2); /* TCP, unix */
    ck_assert_int_eq(ps_server_listener_fd(b, 0), fds[0]);
    ck_assert_int_eq(ps_server_listener_fd(b, 1), fds[2]);
    ck_assert_int_lt(fcntl(fds[1], F_GETFD), 0); /* the UDP one, closed */
    ps_server_free(a);
    ps_server_free(b);
}
END_TEST

/* An empty description (no listeners to pass: the variable set but empty)
 * is a no-op that leaves the one call for a real description. */
START_TEST(test_empty_description)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    char desc[64];
    ps_config cfg;
    ps_handler h;
    ps_err err;
    ps_server *s;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    snprintf(desc, sizeof desc, "%d=127.0.0.1:0", fd);
    tu_config(&cfg);
    echo_handler_init(&h, true);
    s = ps_server_new(&cfg, &h, NULL, &err);
    ck_assert_int_eq(ps_server_handoff_adopt(s, "", &err), 0);
    ck_assert_msg(ps_server_handoff_adopt(s, desc, &err) == 1, "after an empty one: %s", err.msg);
    ck_assert_int_eq(ps_server_handoff_adopt(s, desc, &err), -EALREADY);
    ck_assert_msg(ps_server_start(s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(ps_server_port(s, 0), port);
    ck_assert_int_eq(ps_server_handoff_adopt(s, "", &err), -EALREADY);
    ps_server_free(s);
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
    tcase_add_test(tc, test_failed_start_keeps_adopted);
    tcase_add_test(tc, test_type_mismatch);
    tcase_add_test(tc, test_pair_dropped);
    tcase_add_test(tc, test_empty_description);
    tcase_add_test(tc, test_unclaimed_closed);
    tcase_add_test(tc, test_bad_descriptions);
    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);
    return s;
}

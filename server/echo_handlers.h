/* SPDX-License-Identifier: MIT */
/*
 * echo_handlers.h - the echo protocol as poolsrv handlers, in both styles.
 * Used by poolsrv-echo and by the test suite.
 */
#ifndef PS_ECHO_HANDLERS_H
#define PS_ECHO_HANDLERS_H

#include "poolsrv.h"

/* Blocking style: read, write back, and again while more input is waiting;
 * then park the connection until more comes.  Closes at end of stream. */
void echo_serve(ps_conn *c, void *user);

/* Blocking style without parking: read and write back until end of stream,
 * holding the worker all along (tests that need a busy worker use it). */
void echo_serve_held(ps_conn *c, void *user);

/* Event style: on_data sends every byte back and consumes it. */
size_t echo_on_data(ps_conn *c, const char *data, size_t len, void *user);

/* Datagram style: send each datagram back to its sender. */
void echo_on_datagram(ps_dgram *d, const void *data, size_t len, const struct sockaddr *from,
                      void *user);

/* Fill *h with the echo handler of the given stream style ("blocking" or
 * "event" mode) plus on_datagram; busy_msg is left empty.  */
void echo_handler_init(ps_handler *h, bool event_style);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * proxy.h - PROXY protocol (v1 text and v2 binary) header parser (private).
 *
 * A load balancer in TCP mode (HAProxy "send-proxy" / "send-proxy-v2")
 * prepends one header to each connection naming the real client.  The
 * accept path of a listener configured for it reads the first bytes of the
 * connection, calls ps__proxy_parse() until it returns non-zero, uses the
 * source address as the connection's peer and hands the bytes after the
 * header to the handler.  Reference: HAProxy's doc/proxy-protocol.txt.
 */
#ifndef PS_PROXY_H
#define PS_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

/* A v1 line is at most 107 bytes including its CRLF (the spec's bound). */
#define PS__PROXY_V1_MAX 107
/* Our cap on a whole v2 header (16-byte preamble + addresses + TLVs).  The
 * wire format allows 16 + 65535 bytes; real senders use a few hundred at
 * most (a UNIX address block is 216), and a header must be buffered before
 * the connection is served, so anything longer is rejected. */
#define PS__PROXY_V2_MAX 4096
/* The most bytes ps__proxy_parse() ever needs to decide: a read buffer this
 * large always suffices. */
#define PS__PROXY_MAX_LEN PS__PROXY_V2_MAX

/*
 * Parse a PROXY protocol header (v1 or v2) at the start of buf[0..len).
 * A pure function: no I/O, no allocation, no global state; any thread.
 *
 * Returns:
 *   > 0      the header's length in bytes (bytes after it are not looked at
 *            and belong to the application protocol).  *src / *srclen hold
 *            the original client's address (sockaddr_in or sockaddr_in6,
 *            port included), or *srclen is 0 and *src is untouched when the
 *            header carries no usable address: v1 "UNKNOWN", v2 LOCAL, v2
 *            UNSPEC, and the v2 families we do not map (UDP over IPv4/IPv6,
 *            UNIX stream/datagram; the spec asks receivers to fall back to
 *            the real endpoints for valid combinations they do not
 *            support).  The caller then keeps the socket's own peer.
 *   0        need more bytes: buf[0..len) is a prefix of what could still be
 *            a valid header (len 0 included).  Call again with more; a
 *            caller that already holds PS__PROXY_MAX_LEN bytes never gets 0.
 *   -EPROTO  not a PROXY header, or a malformed one (wrong signature or
 *            keyword, v2 version other than 2, unknown command, family or
 *            transport, address length too short for the family, TLVs that
 *            overrun the header, v2 header above PS__PROXY_V2_MAX, v1 line
 *            without CRLF in 107 bytes, bad address or port text, ...).
 *            The connection must be closed (and counted).
 *   -EINVAL  src or srclen is NULL, or buf is NULL with len > 0.
 *
 * v1 is parsed strictly: single spaces, IPv4 as four decimal numbers without
 * leading zeros, IPv6 as hex groups and colons only (no embedded IPv4 form),
 * ports 0..65535 without sign or leading zeros, CRLF (never a lone CR or LF).
 * After "UNKNOWN" anything up to the first CRLF is ignored, as the spec says.
 * v2 TLVs (after the address block of a known family) are checked to tile
 * the rest of the header exactly, then skipped; PP2_TYPE_CRC32C is not
 * verified.  For LOCAL the whole block after the preamble is skipped unread.
 */
int ps__proxy_parse(const void *buf, size_t len, struct sockaddr_storage *src, socklen_t *srclen);

#endif

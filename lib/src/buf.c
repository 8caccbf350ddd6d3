/* SPDX-License-Identifier: MIT */
/*
 * buf.c - the growable byte buffers behind a connection's unconsumed input
 * and unsent output (owner thread only).  An empty buffer holds no memory,
 * so an idle connection costs no buffer.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ps__buf_free(ps_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Append, compacting or growing (doubling) as needed. */
int ps__buf_append(ps_buf *b, const void *data, size_t len)
{
    if (b->off + b->len + len > b->cap && b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + len)
            cap *= 2;
        p = realloc(b->data, cap);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->off + b->len, data, len);
    b->len += len;
    return 0;
}


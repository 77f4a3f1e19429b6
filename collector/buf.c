/*
 * th_buf: the growable heap byte buffer the encoders write into. Growth doubles so that
 * appending byte by byte stays amortised O(1); every failure is TH_ENOMEM and leaves the
 * buffer as it was.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "th/otlp.h"

int th_buf_reserve(th_buf_t *b, size_t extra)
{
    /* No object may be larger than PTRDIFF_MAX; asking for more is a failure, not a call. */
    if (extra > (size_t)PTRDIFF_MAX - b->len) {
        return TH_ENOMEM;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > (size_t)PTRDIFF_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = th_realloc(b->ptr, cap);
    if (!p) {
        return TH_ENOMEM;
    }
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int th_buf_append(th_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int rc = th_buf_reserve(b, n);
    if (rc) {
        return rc;
    }
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
    return 0;
}

int th_buf_printf(th_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    /* Try in the space there is; only when it is too small grow to the exact size. */
    size_t room = b->cap - b->len;
    va_start(ap, fmt);
    int n = vsnprintf(room ? (char *)b->ptr + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return TH_EINVAL;
    }
    if ((size_t)n >= room) {
        int rc = th_buf_reserve(b, (size_t)n + 1);
        if (rc) {
            return rc;
        }
        va_start(ap, fmt);
        vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
    return 0;
}

void th_buf_free(th_buf_t *b)
{
    th_free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

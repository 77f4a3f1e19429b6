/*
 * Capped decompression (gzip, zlib/deflate, zstd) for everything that takes compressed
 * input from the network: OTLP/HTTP request bodies, OTLP/gRPC messages, gRPC responses.
 * The output buffer grows by doubling but never past the cap, and the decoder is asked for
 * at most one byte more than the cap so an oversized input is detected without inflating
 * it: a 10 KiB gzip bomb that would expand to 10 GiB costs at most the cap in memory.
 */
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "th/decompress.h"

/* The first output buffer for an input of n bytes: compressed OTLP typically expands
 * 4-10x. */
#define FIRST_CAP_MIN ((size_t)16 * 1024)

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen > 0) {
        snprintf(err, errlen, "%s", msg);
    }
}

/* The output of one decompression: a buffer that may hold up to max_out + 1 bytes, the
 * extra byte being how an oversized body is noticed. */
struct outbuf {
    uint8_t *ptr;
    size_t len;
    size_t cap;
    size_t max_out;
};

/* Make room for more output. @return 0, TH_E2BIG (already holding max_out + 1 bytes),
 * TH_ENOMEM. */
static int out_grow(struct outbuf *o, size_t hint)
{
    size_t limit = o->max_out + 1;
    if (o->cap >= limit) {
        return TH_E2BIG;
    }
    size_t cap = o->cap ? o->cap : TH_MAX(hint, FIRST_CAP_MIN);
    if (o->cap) {
        cap = o->cap > SIZE_MAX / 2 ? SIZE_MAX : o->cap * 2;
    }
    if (cap >= o->max_out / 4 * 3) {
        /* Close to the cap: go straight to it. Growing to just under the cap and then once
         * more would hold two nearly cap-sized buffers while realloc copies; this way the
         * peak stays under 1.75x the cap. */
        cap = limit;
    }
    uint8_t *p = th_realloc(o->ptr, cap);
    if (!p) {
        return TH_ENOMEM;
    }
    o->ptr = p;
    o->cap = cap;
    return 0;
}

/* Room for more output when the buffer is full. @return 0, or out_grow's error with the
 * reason in @p err. */
static int out_room(struct outbuf *o, size_t hint, char *err, size_t errlen)
{
    int ret = o->len < o->cap ? 0 : out_grow(o, hint);
    if (ret == TH_E2BIG) {
        set_err(err, errlen, "decompressed body exceeds max_request_body_size");
    }
    return ret;
}

/* zlib allocates through th_malloc, so allocation failures can be injected in tests. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    return th_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    th_free(p);
}

/* A zlib header: CM 8 (deflate), a window of at most 32 KiB, and the FCHECK bits right. */
static bool looks_like_zlib(const uint8_t *in, size_t len)
{
    return len >= 2 && (in[0] & 0x0f) == 8 && (in[0] >> 4) <= 7 &&
           ((unsigned)in[0] * 256 + in[1]) % 31 == 0;
}

/*
 * Inflate with window_bits 15 (zlib), -15 (raw deflate) or 31 (gzip). Gzip bodies may hold
 * several members back to back (RFC 1952 §2.2), as Go's reader accepts; anything else after
 * the end of the stream is an error for gzip and ignored for zlib, as in Go.
 */
static int inflate_all(int window_bits, const uint8_t *in, size_t in_len, struct outbuf *o,
                       char *err, size_t errlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    int ret = 0;
    int zr = inflateInit2(&zs, window_bits);
    if (zr != Z_OK) {
        return zr == Z_MEM_ERROR ? TH_ENOMEM : TH_EINVAL;
    }
    const bool gzip = window_bits > 15;
    /* zlib counts in uInt; bodies here are capped far below 4 GiB, but stay honest. */
    if (in_len > UINT32_MAX) {
        set_err(err, errlen, "compressed body too large");
        ret = TH_E2BIG;
        goto out;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    for (;;) {
        if ((ret = out_room(o, in_len * 4, err, errlen)) != 0) {
            goto out;
        }
        size_t room = o->cap - o->len;
        zs.next_out = o->ptr + o->len;
        zs.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        uInt before = zs.avail_out;
        zr = inflate(&zs, Z_NO_FLUSH);
        o->len += before - zs.avail_out;
        if (o->len > o->max_out) {
            set_err(err, errlen, "decompressed body exceeds max_request_body_size");
            ret = TH_E2BIG;
            goto out;
        }
        if (zr == Z_STREAM_END) {
            if (gzip && zs.avail_in > 0) {
                /* Another member must follow, starting with the gzip magic. */
                if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
                    inflateReset(&zs);
                    continue;
                }
                set_err(err, errlen, "invalid gzip data: trailing bytes after the stream");
                ret = TH_EDECODE;
            }
            goto out;
        }
        if (zr == Z_OK) {
            if (zs.avail_in == 0 && zs.avail_out > 0) {
                set_err(err, errlen, "truncated compressed body");
                ret = TH_EDECODE;
                goto out;
            }
            continue;
        }
        if (zr == Z_BUF_ERROR) {
            if (zs.avail_out > 0) {
                set_err(err, errlen, "truncated compressed body");
                ret = TH_EDECODE;
                goto out;
            }
            continue;
        }
        if (zr == Z_MEM_ERROR) {
            ret = TH_ENOMEM;
            goto out;
        }
        if (err && errlen > 0) {
            snprintf(err, errlen, "invalid %s data: %s", gzip ? "gzip" : "deflate",
                     zs.msg ? zs.msg : "corrupt stream");
        }
        ret = TH_EDECODE;
        goto out;
    }
out:
    inflateEnd(&zs);
    return ret;
}

/* The largest zstd window accepted: enough for any frame whose content fits the cap, and at
 * least 8 MiB so frames from streaming compressors at default levels always pass. */
static int zstd_window_log(size_t max_out)
{
    int wlog = 23;
    while (wlog < 27 && ((size_t)1 << wlog) < max_out) {
        wlog++;
    }
    return wlog;
}

static int zstd_all(const uint8_t *in, size_t in_len, struct outbuf *o, char *err, size_t errlen)
{
    int ret = 0;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) {
        return TH_ENOMEM;
    }
    size_t zr = ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, zstd_window_log(o->max_out));
    if (ZSTD_isError(zr)) {
        ret = TH_EINVAL;
        goto out;
    }
    ZSTD_inBuffer ib = {in, in_len, 0};
    for (;;) {
        if ((ret = out_room(o, in_len * 4, err, errlen)) != 0) {
            goto out;
        }
        ZSTD_outBuffer ob = {o->ptr + o->len, o->cap - o->len, 0};
        zr = ZSTD_decompressStream(dctx, &ob, &ib);
        o->len += ob.pos;
        if (ZSTD_isError(zr)) {
            if (ZSTD_getErrorCode(zr) == ZSTD_error_frameParameter_windowTooLarge) {
                set_err(err, errlen, "zstd frame window exceeds the receiver's memory limit");
                ret = TH_E2BIG;
            } else if (ZSTD_getErrorCode(zr) == ZSTD_error_memory_allocation) {
                ret = TH_ENOMEM;
            } else {
                if (err && errlen > 0) {
                    snprintf(err, errlen, "invalid zstd data: %s", ZSTD_getErrorName(zr));
                }
                ret = TH_EDECODE;
            }
            goto out;
        }
        if (o->len > o->max_out) {
            set_err(err, errlen, "decompressed body exceeds max_request_body_size");
            ret = TH_E2BIG;
            goto out;
        }
        if (zr == 0 && ib.pos == ib.size) {
            goto out; /* the last frame is complete */
        }
        if (ib.pos == ib.size && ob.pos < ob.size) {
            /* All input consumed, room left, and the frame still wants more. */
            set_err(err, errlen, "truncated compressed body");
            ret = TH_EDECODE;
            goto out;
        }
    }
out:
    ZSTD_freeDCtx(dctx);
    return ret;
}

int th_decompress(enum th_codec codec, const uint8_t *in, size_t in_len, size_t max_out,
                  uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    struct outbuf o = {.max_out = max_out};
    int ret;
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    switch (codec) {
    case TH_CODEC_GZIP:
        ret = inflate_all(15 + 16, in, in_len, &o, err, errlen);
        break;
    case TH_CODEC_DEFLATE:
        /* "deflate" is zlib by RFC 9110 and gRPC, but some clients send raw deflate: try
         * zlib when the header says so, and raw deflate when it does not or zlib fails. */
        ret = TH_EDECODE;
        if (looks_like_zlib(in, in_len)) {
            ret = inflate_all(15, in, in_len, &o, err, errlen);
        }
        if (ret == TH_EDECODE) {
            o.len = 0;
            ret = inflate_all(-15, in, in_len, &o, err, errlen);
        }
        break;
    case TH_CODEC_ZSTD:
        ret = zstd_all(in, in_len, &o, err, errlen);
        break;
    default:
        set_err(err, errlen, "not a compressed encoding");
        ret = TH_EINVAL;
        break;
    }
    if (ret != 0) {
        th_free(o.ptr);
        return ret;
    }
    if (!o.ptr) {
        /* Valid input that decompresses to nothing still returns a buffer. */
        o.ptr = th_malloc(1);
        if (!o.ptr) {
            return TH_ENOMEM;
        }
    }
    *out = o.ptr;
    *out_len = o.len;
    return 0;
}

/*
 * Request bodies of the otlp_http exporter: the helper hands over protobuf bytes, which are
 * re-encoded as OTLP/JSON when `encoding: json` (decoded into a throwaway arena, then the
 * project's encoder) and compressed with zlib or zstd as `compression` says. The compressor
 * keeps its zlib stream and zstd context between requests (it runs on one thread).
 */
#include <string.h>
#include <strings.h>

#include <zlib.h>
#include <zstd.h>

#include "exporters/otlp_http/otlp_http.h"

int th__otlphttp_codec_parse(const char *name)
{
    static const struct {
        const char *name;
        int codec;
    } codecs[] = {
        {"", TH_OTLPHTTP_NONE},           {"none", TH_OTLPHTTP_NONE},
        {"gzip", TH_OTLPHTTP_GZIP},       {"zlib", TH_OTLPHTTP_ZLIB},
        {"deflate", TH_OTLPHTTP_DEFLATE}, {"zstd", TH_OTLPHTTP_ZSTD},
        {"snappy", TH_EUNSUPPORTED},      {"x-snappy-framed", TH_EUNSUPPORTED},
        {"lz4", TH_EUNSUPPORTED},
    };
    if (name == NULL) {
        return TH_OTLPHTTP_NONE;
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(codecs); i++) {
        if (strcmp(name, codecs[i].name) == 0) {
            return codecs[i].codec;
        }
    }
    return TH_EINVAL;
}

const char *th__otlphttp_codec_header(enum th_otlphttp_codec codec)
{
    switch (codec) {
    case TH_OTLPHTTP_GZIP:
        return "gzip";
    case TH_OTLPHTTP_ZLIB:
        return "zlib";
    case TH_OTLPHTTP_DEFLATE:
        return "deflate";
    case TH_OTLPHTTP_ZSTD:
        return "zstd";
    default:
        return NULL;
    }
}

/* zlib allocates through th_malloc, so tests can inject failures. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    return th_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    th_free(p);
}

/* One-shot deflate into @p out: gzip framing (window bits 31) or zlib (15). Go's
 * compress/flate calls level 0 "no compression"; the Collector's config uses 0 for "not
 * set", so 0 is the default level here, and -2 is Huffman-only coding. */
static int deflate_into(struct th_otlphttp_compressor *z, const uint8_t *in, size_t len,
                        th_buf_t *out)
{
    z_stream *zs = z->zs;
    if (zs == NULL) {
        zs = th_calloc(1, sizeof(*zs));
        if (zs == NULL) {
            return TH_ENOMEM;
        }
        zs->zalloc = z_alloc;
        zs->zfree = z_free;
        int level = z->level == 0 || z->level == -2 ? Z_DEFAULT_COMPRESSION : z->level;
        int strategy = z->level == -2 ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY;
        int bits = z->codec == TH_OTLPHTTP_GZIP ? 31 : 15;
        int zr = deflateInit2(zs, level, Z_DEFLATED, bits, 8, strategy);
        if (zr != Z_OK) {
            th_free(zs);
            return zr == Z_MEM_ERROR ? TH_ENOMEM : TH_EIO;
        }
        z->zs = zs;
    } else if (deflateReset(zs) != Z_OK) {
        return TH_EIO;
    }
    out->len = 0;
    /* deflateBound is exact for one deflate(Z_FINISH) call with the stream's own settings;
     * gzip adds its 18-byte header and trailer on top of the zlib 6. */
    size_t bound = deflateBound(zs, (uLong)len) + 32;
    if (th_buf_reserve(out, bound) != 0) {
        return TH_ENOMEM;
    }
    zs->next_in = (Bytef *)(uintptr_t)in;
    zs->avail_in = (uInt)len;
    zs->next_out = out->ptr;
    zs->avail_out = (uInt)bound;
    int zr = deflate(zs, Z_FINISH);
    if (zr != Z_STREAM_END) {
        return zr == Z_MEM_ERROR ? TH_ENOMEM : TH_EIO;
    }
    out->len = bound - zs->avail_out;
    return 0;
}

static int zstd_into(struct th_otlphttp_compressor *z, const uint8_t *in, size_t len, th_buf_t *out)
{
    if (z->zctx == NULL) {
        z->zctx = ZSTD_createCCtx();
        if (z->zctx == NULL) {
            return TH_ENOMEM;
        }
    }
    out->len = 0;
    size_t bound = ZSTD_compressBound(len);
    if (th_buf_reserve(out, bound) != 0) {
        return TH_ENOMEM;
    }
    size_t n = ZSTD_compressCCtx(z->zctx, out->ptr, bound, in, len, z->level);
    if (ZSTD_isError(n)) {
        return TH_EIO;
    }
    out->len = n;
    return 0;
}

int th__otlphttp_compress(struct th_otlphttp_compressor *z, const uint8_t *in, size_t len,
                          th_buf_t *out)
{
    /* zlib counts in uInt; bodies past 4 GiB are not something an OTLP server accepts. */
    if (len > UINT32_MAX / 2) {
        return TH_E2BIG;
    }
    switch (z->codec) {
    case TH_OTLPHTTP_GZIP:
    case TH_OTLPHTTP_ZLIB:
    case TH_OTLPHTTP_DEFLATE:
        return deflate_into(z, in, len, out);
    case TH_OTLPHTTP_ZSTD:
        return zstd_into(z, in, len, out);
    default:
        out->len = 0;
        return th_buf_append(out, in, len);
    }
}

void th__otlphttp_compressor_deinit(struct th_otlphttp_compressor *z)
{
    if (z->zs != NULL) {
        deflateEnd(z->zs);
        th_free(z->zs);
        z->zs = NULL;
    }
    if (z->zctx != NULL) {
        ZSTD_freeCCtx(z->zctx);
        z->zctx = NULL;
    }
}

int th__otlphttp_pb_to_json(const uint8_t *pb, size_t len, th_buf_t *out)
{
    /* The bytes come from our own encoder, so the hostile-input limits are opened wide; the
     * arena budget (8x the body) still bounds what a corrupt queue entry could cost. */
    struct th_otlp_limits lim = {
        .max_depth = TH_OTLP_MAX_DEPTH_CAP,
        .max_spans = UINT64_MAX,
        .max_attributes = UINT64_MAX,
        .max_string_len = UINT64_MAX,
    };
    th_otlp_request_t *req = NULL;
    int ret;
    th_arena_t *a = th_arena_create(len < 8192 ? 0 : len * 2, 0);
    if (a == NULL) {
        return TH_ENOMEM;
    }
    ret = th_otlp_decode_pb(pb, len, &lim, a, &req, NULL);
    if (ret != 0) {
        ret = ret == TH_ENOMEM ? TH_ENOMEM : TH_EDECODE;
        goto out;
    }
    out->len = 0;
    ret = th_otlp_encode_json(req, out);
out:
    th_arena_destroy(a);
    return ret;
}

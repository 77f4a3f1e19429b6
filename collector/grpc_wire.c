/*
 * gRPC wire helpers shared by the OTLP/gRPC receiver, the OTLP/gRPC exporter and the fuzzers
 * (include/th/grpc.h): Length-Prefixed-Message reassembly, per-message compression with an
 * output cap, status names and the OTLP retry table, grpc-timeout, grpc-message percent
 * coding and google.rpc.Status/RetryInfo in grpc-status-details-bin. Nothing here touches a
 * socket or nghttp2.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>
#include <zstd.h>

#include "th/base64.h"
#include "th/decompress.h"
#include "th/grpc.h"
#include "collector/rpc_status.h"

/* ---- Status codes ---------------------------------------------------------------------- */

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *th_grpc_status_name(int code)
{
    if (code < 0 || (size_t)code >= TH_ARRAY_SIZE(status_names)) {
        return "UNKNOWN";
    }
    return status_names[code];
}

bool th_grpc_status_retryable(int code, bool has_retry_info)
{
    switch (code) {
    case TH_GRPC_CANCELLED:
    case TH_GRPC_DEADLINE_EXCEEDED:
    case TH_GRPC_ABORTED:
    case TH_GRPC_OUT_OF_RANGE:
    case TH_GRPC_UNAVAILABLE:
    case TH_GRPC_DATA_LOSS:
        return true;
    case TH_GRPC_RESOURCE_EXHAUSTED:
        return has_retry_info;
    default:
        return false;
    }
}

/* ---- grpc-timeout ---------------------------------------------------------------------- */

static int64_t unit_ns(char u)
{
    switch (u) {
    case 'H':
        return (int64_t)3600 * 1000000000;
    case 'M':
        return (int64_t)60 * 1000000000;
    case 'S':
        return 1000000000;
    case 'm':
        return 1000000;
    case 'u':
        return 1000;
    case 'n':
        return 1;
    }
    return 0;
}

int th_grpc_timeout_parse(const char *s, size_t len, int64_t *ns)
{
    if (!s || len < 2 || len > 9) {
        return TH_EINVAL;
    }
    int64_t unit = unit_ns(s[len - 1]);
    if (unit == 0) {
        return TH_EINVAL;
    }
    int64_t v = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return TH_EINVAL;
        }
        v = v * 10 + (s[i] - '0'); /* at most 8 digits: no overflow */
    }
    *ns = v > INT64_MAX / unit ? INT64_MAX : v * unit;
    return 0;
}

size_t th_grpc_timeout_format(int64_t ns, char *buf)
{
    /* The finest unit whose value fits in 8 digits, rounded up so a deadline never shrinks
     * on the wire. */
    static const char units[] = "numSMH";
    if (ns < 0) {
        ns = 0;
    }
    for (size_t i = 0; i < sizeof(units) - 1; i++) {
        int64_t u = unit_ns(units[i]);
        int64_t v = ns / u + (ns % u != 0);
        if (v <= 99999999) {
            return (size_t)snprintf(buf, 16, "%lld%c", (long long)v, units[i]);
        }
    }
    return (size_t)snprintf(buf, 16, "99999999H");
}

/* ---- grpc-message ---------------------------------------------------------------------- */

char *th_grpc_message_encode(th_arena_t *arena, const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t len = msg ? strlen(msg) : 0;
    char *out = th_arena_alloc(arena, len * 3 + 1);
    if (!out) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c > 0x7e || c == '%') {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 0xf];
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return out;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

char *th_grpc_message_decode(th_arena_t *arena, const char *s, size_t len)
{
    char *out = th_arena_alloc(arena, len + 1);
    if (!out) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_val(s[i + 1])) >= 0 &&
            (lo = hex_val(s[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}

/* ---- base64 (for -bin metadata) -------------------------------------------------------- */

/* Unpadded, as gRPC emits -bin values; NUL-terminated, in @p arena. */
static char *b64_encode(th_arena_t *arena, const uint8_t *p, size_t len)
{
    char *out = th_arena_alloc(arena, th_base64_encoded_len(len, false) + 1);
    if (!out) {
        return NULL;
    }
    out[th_base64_encode(p, len, out, false)] = '\0';
    return out;
}

/* ---- grpc-status-details-bin ----------------------------------------------------------- */

char *th_grpc_status_details_encode(th_arena_t *arena, int code, const char *msg,
                                    int64_t retry_delay_ns)
{
    struct th__rpc_status m;
    th__rpc_status_init(&m, code, msg, retry_delay_ns);
    size_t n = google__rpc__status__get_packed_size(&m.st);
    uint8_t *packed = th_arena_alloc(arena, n ? n : 1);
    if (!packed) {
        return NULL;
    }
    google__rpc__status__pack(&m.st, packed);
    return b64_encode(arena, packed, n);
}

int th_grpc_status_details_retry(const char *s, size_t len, int64_t *retry_delay_ns)
{
    *retry_delay_ns = -1;
    int ret = TH_EDECODE;
    uint8_t small[512];
    uint8_t *raw =
        TH_BASE64_DECODED_MAX(len) <= sizeof(small) ? small : th_malloc(TH_BASE64_DECODED_MAX(len));
    Google__Rpc__Status *st = NULL;
    if (!raw) {
        return TH_ENOMEM;
    }
    size_t n;
    if (th_base64_decode(s, len, raw, &n) != 0) {
        goto out;
    }
    st = google__rpc__status__unpack(NULL, n, raw);
    if (!st) {
        goto out;
    }
    ret = 0;
    for (size_t i = 0; i < st->n_details; i++) {
        const Google__Rpc__Any *a = st->details[i];
        if (!a->type_url || strcmp(a->type_url, TH__RETRY_INFO_TYPE) != 0) {
            continue;
        }
        Google__Rpc__RetryInfo *ri =
            google__rpc__retry_info__unpack(NULL, a->value.len, a->value.data);
        if (!ri) {
            continue;
        }
        int64_t d = 0;
        if (ri->retry_delay) {
            int64_t sec = ri->retry_delay->seconds;
            int64_t nanos = ri->retry_delay->nanos;
            if (sec < 0 || nanos < 0) {
                d = 0;
            } else if (sec > (INT64_MAX - nanos) / 1000000000) {
                d = INT64_MAX;
            } else {
                d = sec * 1000000000 + nanos;
            }
        }
        google__rpc__retry_info__free_unpacked(ri, NULL);
        *retry_delay_ns = d;
        break;
    }
out:
    if (st) {
        google__rpc__status__free_unpacked(st, NULL);
    }
    if (raw != small) {
        th_free(raw);
    }
    return ret;
}

/* ---- Length-Prefixed-Message reader ----------------------------------------------------- */

void th_grpc_reader_init(struct th_grpc_reader *r, uint64_t max_len)
{
    memset(r, 0, sizeof(*r));
    r->max_len = max_len;
}

int th_grpc_reader_feed(struct th_grpc_reader *r, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (r->messages > 0) {
            return TH_EINVAL; /* unary: anything after the one message is a second one */
        }
        if (r->hdr_len < TH_GRPC_PREFIX_LEN) {
            size_t k = TH_MIN(n, TH_GRPC_PREFIX_LEN - r->hdr_len);
            memcpy(r->hdr + r->hdr_len, p, k);
            r->hdr_len += k;
            p += k;
            n -= k;
            if (r->hdr_len < TH_GRPC_PREFIX_LEN) {
                return 0;
            }
            if (r->hdr[0] > 1) {
                return TH_EINVAL;
            }
            r->compressed = r->hdr[0] == 1;
            r->msg_len = (size_t)((uint32_t)r->hdr[1] << 24 | (uint32_t)r->hdr[2] << 16 |
                                  (uint32_t)r->hdr[3] << 8 | r->hdr[4]);
            if ((uint64_t)r->msg_len > r->max_len) {
                return TH_E2BIG;
            }
            r->msg_got = 0;
            r->msg = th_malloc(r->msg_len ? r->msg_len : 1);
            if (!r->msg) {
                return TH_ENOMEM;
            }
            if (r->msg_len == 0) {
                r->messages++;
                continue;
            }
        }
        size_t k = TH_MIN(n, r->msg_len - r->msg_got);
        memcpy(r->msg + r->msg_got, p, k);
        r->msg_got += k;
        p += k;
        n -= k;
        if (r->msg_got == r->msg_len) {
            r->messages++;
        }
    }
    return 0;
}

uint8_t *th_grpc_reader_take(struct th_grpc_reader *r, size_t *len, bool *compressed)
{
    if (!r->msg || r->hdr_len < TH_GRPC_PREFIX_LEN || r->msg_got != r->msg_len) {
        return NULL;
    }
    uint8_t *m = r->msg;
    *len = r->msg_len;
    *compressed = r->compressed;
    r->msg = NULL;
    return m;
}

void th_grpc_reader_free(struct th_grpc_reader *r)
{
    th_free(r->msg);
    r->msg = NULL;
}

/* ---- Compression ----------------------------------------------------------------------- */

enum codec { C_IDENTITY, C_GZIP, C_DEFLATE, C_ZSTD, C_UNKNOWN };

static enum codec codec_of(const char *e)
{
    if (!e || !*e || !strcasecmp(e, "identity")) {
        return C_IDENTITY;
    }
    if (!strcasecmp(e, "gzip")) {
        return C_GZIP;
    }
    if (!strcasecmp(e, "deflate")) {
        return C_DEFLATE;
    }
    if (!strcasecmp(e, "zstd")) {
        return C_ZSTD;
    }
    return C_UNKNOWN;
}

int th_grpc_decompress(const char *encoding, const uint8_t *in, size_t in_len, uint64_t max_out,
                       uint8_t **out, size_t *out_len)
{
    static const enum th_codec codecs[] = {
        [C_GZIP] = TH_CODEC_GZIP, [C_DEFLATE] = TH_CODEC_DEFLATE, [C_ZSTD] = TH_CODEC_ZSTD};
    enum codec c = codec_of(encoding);
    *out = NULL;
    *out_len = 0;
    if (c == C_UNKNOWN) {
        return TH_EUNSUPPORTED;
    }
    if (c != C_IDENTITY) {
        /* The receivers' capped decompressor: the same limits as OTLP/HTTP bodies. */
        return th_decompress(codecs[c], in, in_len, (size_t)TH_MIN(max_out, (uint64_t)SIZE_MAX),
                             out, out_len, NULL, 0);
    }
    if (in_len > max_out) {
        return TH_E2BIG;
    }
    uint8_t *copy = th_malloc(in_len ? in_len : 1);
    if (!copy) {
        return TH_ENOMEM;
    }
    if (in_len) {
        memcpy(copy, in, in_len);
    }
    *out = copy;
    *out_len = in_len;
    return 0;
}

static int gzip_or_zlib(const uint8_t *msg, size_t len, int window_bits, uint8_t *dst,
                        size_t *dst_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        return TH_ENOMEM;
    }
    z.next_in = (Bytef *)msg;
    z.avail_in = (uInt)len;
    z.next_out = dst;
    z.avail_out = (uInt)*dst_len;
    int zr = deflate(&z, Z_FINISH);
    *dst_len = *dst_len - z.avail_out;
    deflateEnd(&z);
    return zr == Z_STREAM_END ? 0 : TH_ENOMEM;
}

int th_grpc_frame(const char *encoding, const uint8_t *msg, size_t len, uint8_t **out,
                  size_t *out_len)
{
    enum codec c = codec_of(encoding);
    size_t bound;
    *out = NULL;
    *out_len = 0;
    switch (c) {
    case C_IDENTITY:
        bound = len;
        break;
    case C_GZIP:
    case C_DEFLATE:
        bound = (size_t)compressBound((uLong)len) + 32; /* + the gzip header and trailer */
        break;
    case C_ZSTD:
        bound = ZSTD_compressBound(len);
        break;
    default:
        return TH_EUNSUPPORTED;
    }
    if (len > UINT32_MAX) {
        return TH_E2BIG;
    }
    uint8_t *f = th_malloc(TH_GRPC_PREFIX_LEN + bound);
    if (!f) {
        return TH_ENOMEM;
    }
    size_t n = bound;
    int ret = 0;
    if (c == C_IDENTITY) {
        if (len) {
            memcpy(f + TH_GRPC_PREFIX_LEN, msg, len);
        }
    } else if (c == C_ZSTD) {
        n = ZSTD_compress(f + TH_GRPC_PREFIX_LEN, bound, msg, len, 3);
        if (ZSTD_isError(n)) {
            ret = TH_ENOMEM;
        }
    } else {
        ret = gzip_or_zlib(msg, len, c == C_GZIP ? 16 + MAX_WBITS : MAX_WBITS,
                           f + TH_GRPC_PREFIX_LEN, &n);
    }
    if (ret == 0 && n > UINT32_MAX) {
        ret = TH_E2BIG;
    }
    if (ret != 0) {
        th_free(f);
        return ret;
    }
    f[0] = c == C_IDENTITY ? 0 : 1;
    f[1] = (uint8_t)(n >> 24);
    f[2] = (uint8_t)(n >> 16);
    f[3] = (uint8_t)(n >> 8);
    f[4] = (uint8_t)n;
    *out = f;
    *out_len = TH_GRPC_PREFIX_LEN + n;
    return 0;
}

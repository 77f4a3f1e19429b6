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
#include <zstd_errors.h>

#include "th/grpc.h"
#include "google/rpc/status.pb-c.h"

#define RETRY_INFO_TYPE "type.googleapis.com/google.rpc.RetryInfo"

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

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Unpadded, as gRPC emits -bin values. */
static char *b64_encode(th_arena_t *arena, const uint8_t *p, size_t len)
{
    char *out = th_arena_alloc(arena, (len + 2) / 3 * 4 + 1);
    if (!out) {
        return NULL;
    }
    size_t n = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[n++] = b64_alphabet[v >> 18 & 63];
        out[n++] = b64_alphabet[v >> 12 & 63];
        out[n++] = b64_alphabet[v >> 6 & 63];
        out[n++] = b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[n++] = b64_alphabet[v >> 18 & 63];
        out[n++] = b64_alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[n++] = b64_alphabet[v >> 18 & 63];
        out[n++] = b64_alphabet[v >> 12 & 63];
        out[n++] = b64_alphabet[v >> 6 & 63];
    }
    out[n] = '\0';
    return out;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

/* Padded or not; @p out needs len * 3 / 4 + 3 bytes. @return the length, or -1. */
static long b64_decode(const char *s, size_t len, uint8_t *out)
{
    while (len > 0 && s[len - 1] == '=') {
        len--;
    }
    if (len % 4 == 1) {
        return -1;
    }
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_val(s[i]);
        if (v < 0) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)n;
}

/* ---- grpc-status-details-bin ----------------------------------------------------------- */

char *th_grpc_status_details_encode(th_arena_t *arena, int code, const char *msg,
                                    int64_t retry_delay_ns)
{
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    Google__Rpc__Any any = GOOGLE__RPC__ANY__INIT;
    Google__Rpc__Any *details[1] = {&any};
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    Google__Rpc__Duration delay = GOOGLE__RPC__DURATION__INIT;
    uint8_t inner[32]; /* RetryInfo{Duration{int64, int32}}: at most 2 + 2 + 11 + 11 bytes */
    st.code = code;
    st.message = (char *)(msg ? msg : "");
    if (retry_delay_ns >= 0) {
        delay.seconds = retry_delay_ns / 1000000000;
        delay.nanos = (int32_t)(retry_delay_ns % 1000000000);
        ri.retry_delay = &delay;
        any.type_url = (char *)RETRY_INFO_TYPE;
        any.value.len = google__rpc__retry_info__pack(&ri, inner);
        any.value.data = inner;
        st.n_details = 1;
        st.details = details;
    }
    size_t n = google__rpc__status__get_packed_size(&st);
    uint8_t *packed = th_arena_alloc(arena, n ? n : 1);
    if (!packed) {
        return NULL;
    }
    google__rpc__status__pack(&st, packed);
    return b64_encode(arena, packed, n);
}

int th_grpc_status_details_retry(const char *s, size_t len, int64_t *retry_delay_ns)
{
    *retry_delay_ns = -1;
    int ret = TH_EDECODE;
    uint8_t small[512];
    uint8_t *raw = len / 4 * 3 + 3 <= sizeof(small) ? small : th_malloc(len / 4 * 3 + 3);
    Google__Rpc__Status *st = NULL;
    if (!raw) {
        return TH_ENOMEM;
    }
    long n = b64_decode(s, len, raw);
    if (n < 0) {
        goto out;
    }
    st = google__rpc__status__unpack(NULL, (size_t)n, raw);
    if (!st) {
        goto out;
    }
    ret = 0;
    for (size_t i = 0; i < st->n_details; i++) {
        const Google__Rpc__Any *a = st->details[i];
        if (!a->type_url || strcmp(a->type_url, RETRY_INFO_TYPE) != 0) {
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

/* A growing output buffer that refuses to pass max_out: it is allowed one byte more than
 * max_out, so "the output would exceed the cap" is seen without inflating the whole bomb. */
struct outbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    uint64_t max;
};

static int outbuf_grow(struct outbuf *o, size_t hint)
{
    uint64_t limit = o->max + 1;
    if (o->cap >= limit) {
        return TH_E2BIG;
    }
    size_t want = o->cap ? o->cap * 2 : TH_MAX(hint, (size_t)4096);
    if (want > limit) {
        want = (size_t)limit;
    }
    uint8_t *np = th_realloc(o->p, want);
    if (!np) {
        return TH_ENOMEM;
    }
    o->p = np;
    o->cap = want;
    return 0;
}

static int inflate_all(const uint8_t *in, size_t in_len, int window_bits, bool members,
                       struct outbuf *o)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, window_bits) != Z_OK) {
        return TH_ENOMEM;
    }
    int ret = 0;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    for (;;) {
        if (o->len == o->cap && (ret = outbuf_grow(o, in_len * 4)) != 0) {
            goto out;
        }
        z.next_out = o->p + o->len;
        z.avail_out = (uInt)(o->cap - o->len);
        int zr = inflate(&z, Z_NO_FLUSH);
        o->len = o->cap - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0) {
                break;
            }
            /* More bytes: a further gzip member, or trailing garbage. */
            if (!members || inflateReset(&z) != Z_OK) {
                ret = TH_EDECODE;
                goto out;
            }
            continue;
        }
        if (zr == Z_MEM_ERROR) {
            ret = TH_ENOMEM;
            goto out;
        }
        if (zr == Z_BUF_ERROR && z.avail_out > 0) {
            ret = TH_EDECODE; /* input ended inside the stream: truncated */
            goto out;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            ret = TH_EDECODE;
            goto out;
        }
    }
    if (o->len > o->max) {
        ret = TH_E2BIG;
    }
out:
    inflateEnd(&z);
    return ret;
}

static int zstd_all(const uint8_t *in, size_t in_len, struct outbuf *o)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d) {
        return TH_ENOMEM;
    }
    /* A frame may ask for a window up to 2 GiB; nothing legitimate needs more than the
     * message cap (and the default limit of 128 MiB still applies below that). */
    int wlog = 10;
    while (wlog < 27 && ((uint64_t)1 << wlog) < o->max) {
        wlog++;
    }
    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, wlog);
    int ret = 0;
    ZSTD_inBuffer ib = {in, in_len, 0};
    size_t last = 1;
    while (ib.pos < ib.size || last != 0) {
        if (o->len == o->cap && (ret = outbuf_grow(o, in_len * 4)) != 0) {
            goto out;
        }
        ZSTD_outBuffer ob = {o->p, o->cap, o->len};
        size_t before_in = ib.pos;
        last = ZSTD_decompressStream(d, &ob, &ib);
        o->len = ob.pos;
        if (ZSTD_isError(last)) {
            ret = ZSTD_getErrorCode(last) == ZSTD_error_memory_allocation ? TH_ENOMEM : TH_EDECODE;
            goto out;
        }
        if (ib.pos == ib.size && last != 0 && ob.pos < ob.size && before_in == ib.pos) {
            ret = TH_EDECODE; /* input ended inside a frame: truncated */
            goto out;
        }
    }
    if (o->len > o->max) {
        ret = TH_E2BIG;
    }
out:
    ZSTD_freeDCtx(d);
    return ret;
}

int th_grpc_decompress(const char *encoding, const uint8_t *in, size_t in_len, uint64_t max_out,
                       uint8_t **out, size_t *out_len)
{
    enum codec c = codec_of(encoding);
    struct outbuf o = {.max = max_out};
    int ret = 0;
    *out = NULL;
    *out_len = 0;
    switch (c) {
    case C_UNKNOWN:
        return TH_EUNSUPPORTED;
    case C_IDENTITY:
        if (in_len > max_out) {
            return TH_E2BIG;
        }
        o.p = th_malloc(in_len ? in_len : 1);
        if (!o.p) {
            return TH_ENOMEM;
        }
        if (in_len) {
            memcpy(o.p, in, in_len);
        }
        o.len = in_len;
        break;
    case C_GZIP:
        ret = inflate_all(in, in_len, 16 + MAX_WBITS, true, &o);
        break;
    case C_DEFLATE:
        /* gRPC's deflate is zlib (RFC 1950); some senders mean raw deflate. */
        ret = inflate_all(in, in_len, MAX_WBITS, false, &o);
        if (ret == TH_EDECODE) {
            o.len = 0;
            ret = inflate_all(in, in_len, -MAX_WBITS, false, &o);
        }
        break;
    case C_ZSTD:
        ret = zstd_all(in, in_len, &o);
        break;
    }
    if (ret == 0 && !o.p) {
        o.p = th_malloc(1); /* an empty result is still a buffer */
        if (!o.p) {
            ret = TH_ENOMEM;
        }
    }
    if (ret != 0) {
        th_free(o.p);
        return ret;
    }
    *out = o.p;
    *out_len = o.len;
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

/*
 * The OTLP protobuf unpacker: builds the same protobuf-c structs that protobuf-c's generic
 * export_trace_service_request__unpack builds, but with code written for this one schema.
 * protobuf-c interprets field descriptors at run time, scans every message twice into a
 * table of "scanned members" and allocates that table in slabs; here each message is read in
 * one pass with a switch on the tag byte, and the repeated fields of a message are counted
 * (with a cheap scan of its own bytes, from the first repeated field on) only so that each
 * gets its pointer array and one block for all its elements, at the right size. A key/value
 * comes with the room for its value, and a value that is just a string or an int is read
 * without a call. All memory comes from the request's budget (th__otlp_mem), so max_arena
 * holds as before.
 *
 * The result matches protobuf-c's field for field, including its corner cases, so the two
 * can be compared byte for byte after packing (tests/unit/collector/otlp_pb_unpack_test.c
 * and the otlp_pb fuzz target do):
 * - a non-repeated scalar, string or bytes field given twice: the last one wins;
 * - a non-repeated message field given twice: the occurrences are merged as protobuf-c's
 *   merge_messages does (repeated fields concatenated, scalars from the last occurrence,
 *   strings and bytes from the last occurrence that has them, the oneof from the last
 *   occurrence that sets it; unknown fields only from the last occurrence);
 * - a oneof member given twice, or two members: the last wins, with no merging;
 * - unknown fields are kept (tag, wire type and raw bytes), so pack re-emits them;
 * - strings always get a fresh NUL-terminated copy, even when empty (merging tells an empty
 *   string that was sent from one that was not by that); bytes are copied too (the receive
 *   buffer does not outlive the request), and an empty bytes value is {0, NULL}.
 *
 * th_otlp_decode_pb runs the validating walk first, but this code does not rely on it: every
 * read is bounds-checked, nesting is capped, and anything malformed is TH_EDECODE.
 */
#include <string.h>

#include "collector/otlp_internal.h"

/* The initial value of every message: what protobuf-c's generated __init gives. */
static const th_otlp_request_t req_init =
    OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
static const th_otlp_resource_spans_t rs_init =
    OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
static const resource_t res_init = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT;
static const entity_t entity_init = OPENTELEMETRY__PROTO__COMMON__V1__ENTITY_REF__INIT;
static const th_otlp_scope_spans_t ss_init = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
static const scope_t scope_init = OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT;
static const th_otlp_span_t span_init = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
static const event_t event_init = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__EVENT__INIT;
static const link_t link_init = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__LINK__INIT;
static const status_t status_init = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
static const th_otlp_kv_t kv_init = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
static const th_otlp_any_t any_init = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
static const array_t array_init = OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT;
static const kvlist_t kvlist_init = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT;

/* Wire types. */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

#define TAG(fno, wt) (((fno) << 3) | (wt))

/* The field numbers each message knows, as bit masks: everything else is an unknown field. */
#define BIT(n)       (1u << (n))
#define KNOWN_REQ    BIT(1)
#define KNOWN_RS     (BIT(1) | BIT(2) | BIT(3))
#define KNOWN_RES    (BIT(1) | BIT(2) | BIT(3))
#define KNOWN_ENTITY (BIT(1) | BIT(2) | BIT(3) | BIT(4))
#define KNOWN_SS     (BIT(1) | BIT(2) | BIT(3))
#define KNOWN_SCOPE  (BIT(1) | BIT(2) | BIT(3) | BIT(4))
#define KNOWN_SPAN   0x1fffeu /* 1..16 */
#define KNOWN_EVENT  (BIT(1) | BIT(2) | BIT(3) | BIT(4))
#define KNOWN_LINK   (BIT(1) | BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6))
#define KNOWN_STATUS (BIT(2) | BIT(3))
#define KNOWN_KV     (BIT(1) | BIT(2) | BIT(3))
#define KNOWN_ANY    0x1feu /* 1..8 */
#define KNOWN_ARRAY  BIT(1)
#define KNOWN_KVLIST BIT(1)

/* Repeated fields are numbered below this, so counts fit a small array. */
#define MAX_REPEATED_FNO 16

struct dec {
    struct th__otlp_mem *mem;
    unsigned nest; /* array and kvlist values open around the current one */
};

/* Where a message keeps the capacity of its unknown-field array, allocated on first need. */
struct unk {
    uint32_t known;
    size_t cap;
};

static inline void *alloc(struct dec *d, size_t n)
{
    return th__otlp_mem_alloc(d->mem, n);
}

/* ---- Reading the wire ------------------------------------------------------------------ */

/*
 * Read a varint of at most @p max bytes at *pp, advancing past it.
 * @return 0, or TH_EDECODE when it is truncated or longer than @p max bytes.
 */
static int rd_varint_slow(const uint8_t **pp, const uint8_t *end, int max, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t r = 0;
    for (int i = 0; i < max && p + i < end; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            *pp = p + i + 1;
            return 0;
        }
    }
    return TH_EDECODE;
}

static inline int rd_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    if (*pp < end && **pp < 0x80) {
        *v = *(*pp)++;
        return 0;
    }
    return rd_varint_slow(pp, end, 10, v);
}

/*
 * A bool as protobuf-c reads it: true when any of the varint's 7-bit groups is non-zero
 * (which differs from "the value is non-zero" only for a tenth byte above bit 63).
 */
static inline int rd_bool(const uint8_t **pp, const uint8_t *end, protobuf_c_boolean *b)
{
    const uint8_t *p = *pp;
    unsigned any = 0;
    for (int i = 0; i < 10 && p + i < end; i++) {
        any |= p[i] & 0x7fu;
        if (!(p[i] & 0x80)) {
            *b = any != 0;
            *pp = p + i + 1;
            return 0;
        }
    }
    return TH_EDECODE;
}

/* A tag: at most 5 bytes, field number 1 .. 2^29-1 (what protobuf-c accepts). */
static inline int rd_tag(const uint8_t **pp, const uint8_t *end, uint32_t *tag)
{
    const uint8_t *p = *pp;
    uint64_t v = p[0];
    if (v < 0x80) {
        /* Fields 1-15: one byte. */
        *pp = p + 1;
    } else if (end - p >= 2 && p[1] < 0x80) {
        /* Fields 16-2047 (Span.flags): two. */
        v = (v & 0x7f) | (uint64_t)p[1] << 7;
        *pp = p + 2;
    } else if (rd_varint_slow(pp, end, 5, &v) != 0 || v > UINT32_MAX) {
        return TH_EDECODE;
    }
    *tag = (uint32_t)v;
    return v < 8 ? TH_EDECODE : 0;
}

/* A length prefix: at most 5 bytes, and within the enclosing message. */
static inline int rd_len(const uint8_t **pp, const uint8_t *end, size_t *len)
{
    const uint8_t *p = *pp;
    uint64_t v;
    if (p < end && p[0] < 0x80) {
        v = p[0];
        p += 1;
    } else if (end - p >= 2 && p[1] < 0x80) {
        v = (p[0] & 0x7fu) | (uint64_t)p[1] << 7;
        p += 2;
    } else if (rd_varint_slow(&p, end, 5, &v) != 0 || v > UINT32_MAX) {
        return TH_EDECODE;
    }
    if (v > (uint64_t)(end - p)) {
        return TH_EDECODE;
    }
    *pp = p;
    *len = (size_t)v;
    return 0;
}

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline int rd_fixed64(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    if (end - *pp < 8) {
        return TH_EDECODE;
    }
    *v = ld64(*pp);
    *pp += 8;
    return 0;
}

static inline int rd_fixed32(const uint8_t **pp, const uint8_t *end, uint32_t *v)
{
    if (end - *pp < 4) {
        return TH_EDECODE;
    }
    *v = ld32(*pp);
    *pp += 4;
    return 0;
}

/* A varint field stored in 32 bits: the low 32 bits of the value, as protobuf-c keeps. */
static inline int rd_u32(const uint8_t **pp, const uint8_t *end, uint32_t *v)
{
    uint64_t x = 0;
    int rc = rd_varint(pp, end, &x);
    *v = (uint32_t)x;
    return rc;
}

static inline int rd_i32(const uint8_t **pp, const uint8_t *end, int32_t *v)
{
    uint32_t x = 0;
    int rc = rd_u32(pp, end, &x);
    *v = (int32_t)x;
    return rc;
}

/* Skip the value of a field of wire type @p wt. */
static int skip_value(const uint8_t **pp, const uint8_t *end, unsigned wt)
{
    uint64_t v;
    size_t n;
    switch (wt) {
    case WT_VARINT:
        return rd_varint(pp, end, &v);
    case WT_I64:
        if (end - *pp < 8) {
            return TH_EDECODE;
        }
        *pp += 8;
        return 0;
    case WT_I32:
        if (end - *pp < 4) {
            return TH_EDECODE;
        }
        *pp += 4;
        return 0;
    case WT_LEN:
        if (rd_len(pp, end, &n) != 0) {
            return TH_EDECODE;
        }
        *pp += n;
        return 0;
    default:
        /* Groups (3, 4) are not in proto3 and protobuf-c refuses them; 6 and 7 do not exist. */
        return TH_EDECODE;
    }
}

static inline bool is_known(uint32_t known, uint32_t fno)
{
    return fno < 32 && (known >> fno & 1u);
}

/*
 * Count the fields in [p, end): @p cnt[fno] for known fields numbered up to
 * MAX_REPEATED_FNO, and the unknown ones in *unknown (when not NULL).
 */
static int count_fields(const uint8_t *p, const uint8_t *end, uint32_t known,
                        uint32_t cnt[MAX_REPEATED_FNO + 1], size_t *unknown)
{
    while (p < end) {
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        uint32_t fno = tag >> 3;
        if (is_known(known, fno)) {
            if (fno <= MAX_REPEATED_FNO) {
                cnt[fno]++;
            }
        } else if (unknown) {
            (*unknown)++;
        }
        if (skip_value(&p, end, tag & 7) != 0) {
            return TH_EDECODE;
        }
    }
    return 0;
}

/* ---- Building the structs -------------------------------------------------------------- */

/*
 * Copy @p n bytes; short ones (most keys and values) with fixed-size moves that the compiler
 * inlines, instead of a call to memcpy.
 */
static inline void copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n > 32) {
        memcpy(dst, src, n);
    } else if (n >= 16) {
        memcpy(dst, src, 16);
        memcpy(dst + n - 16, src + n - 16, 16);
    } else if (n >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[i];
        }
    }
}

/* A string field: a fresh NUL-terminated copy (even when empty, as protobuf-c makes). */
static inline int get_string(struct dec *d, const uint8_t **pp, const uint8_t *end, char **out)
{
    size_t n;
    if (rd_len(pp, end, &n) != 0) {
        return TH_EDECODE;
    }
    char *s = alloc(d, n + 1);
    if (!s) {
        return TH_ENOMEM;
    }
    copy((uint8_t *)s, *pp, n);
    s[n] = '\0';
    *pp += n;
    *out = s;
    return 0;
}

/* A bytes field: copied; empty is {0, NULL}. */
static inline int get_bytes(struct dec *d, const uint8_t **pp, const uint8_t *end,
                            ProtobufCBinaryData *out)
{
    size_t n;
    if (rd_len(pp, end, &n) != 0) {
        return TH_EDECODE;
    }
    if (n == 0) {
        out->data = NULL;
        out->len = 0;
        return 0;
    }
    uint8_t *b = alloc(d, n);
    if (!b) {
        return TH_ENOMEM;
    }
    copy(b, *pp, n);
    *pp += n;
    out->data = b;
    out->len = n;
    return 0;
}

/*
 * A field the message does not expect with this tag: a known field with the wrong wire type
 * is malformed; anything else is an unknown field, kept in @p base as protobuf-c keeps it
 * (tag number, wire type, and the bytes after the tag, length prefix included). The array
 * is sized on the first unknown field by counting the rest of the message.
 */
static int other_field(struct dec *d, ProtobufCMessage *base, struct unk *u, uint32_t tag,
                       const uint8_t *at, const uint8_t **pp, const uint8_t *end)
{
    uint32_t fno = tag >> 3;
    unsigned wt = tag & 7;
    if (is_known(u->known, fno)) {
        return TH_EDECODE;
    }
    const uint8_t *val = *pp;
    if (skip_value(pp, end, wt) != 0) {
        return TH_EDECODE;
    }
    if (base->n_unknown_fields == u->cap) {
        /* First time (or a miscount, which cannot happen): size the array for the rest. */
        uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
        size_t more = 0;
        if (count_fields(at, end, u->known, cnt, &more) != 0 || more == 0) {
            return TH_EDECODE;
        }
        size_t cap = base->n_unknown_fields + more;
        ProtobufCMessageUnknownField *f = alloc(d, cap * sizeof(*f));
        if (!f) {
            return TH_ENOMEM;
        }
        if (base->n_unknown_fields) {
            memcpy(f, base->unknown_fields, base->n_unknown_fields * sizeof(*f));
        }
        base->unknown_fields = f;
        u->cap = cap;
    }
    size_t len = (size_t)(*pp - val);
    uint8_t *data = alloc(d, len);
    if (!data) {
        return TH_ENOMEM;
    }
    memcpy(data, val, len);
    ProtobufCMessageUnknownField *f = &base->unknown_fields[base->n_unknown_fields++];
    f->tag = fno;
    f->wire_type = (ProtobufCWireType)wt;
    f->len = len;
    f->data = data;
    return 0;
}

/*
 * Merging two occurrences of a non-repeated message field, with protobuf-c's rules (its
 * merge_messages): @p e is the earlier occurrence, @p l the later one that is kept.
 */

/* Repeated fields: the earlier elements, then the later ones; *out is the array to keep. */
static int concat(struct dec *d, void *e, size_t ne, void *l, size_t nl, void **out)
{
    if (ne == 0 || nl == 0) {
        *out = ne ? e : l;
        return 0;
    }
    uint8_t *a = alloc(d, (ne + nl) * sizeof(void *));
    if (!a) {
        return TH_ENOMEM;
    }
    memcpy(a, e, ne * sizeof(void *));
    memcpy(a + ne * sizeof(void *), l, nl * sizeof(void *));
    *out = a;
    return 0;
}

#define CONCAT(d, e, l, field)                                                                     \
    do {                                                                                           \
        void *a_;                                                                                  \
        int rc_ = concat(d, (e)->field, (e)->n_##field, (l)->field, (l)->n_##field, &a_);          \
        if (rc_ != 0) {                                                                            \
            return rc_;                                                                            \
        }                                                                                          \
        (l)->field = a_;                                                                           \
        (l)->n_##field += (e)->n_##field;                                                          \
    } while (0)

/* A string the later occurrence did not carry is taken from the earlier one. */
static inline void merge_str(char *e, char **l)
{
    if (*l == protobuf_c_empty_string && e != protobuf_c_empty_string) {
        *l = e;
    }
}

static int merge_resource(struct dec *d, resource_t *e, resource_t *l)
{
    CONCAT(d, e, l, attributes);
    CONCAT(d, e, l, entity_refs);
    return 0;
}

static int merge_scope(struct dec *d, scope_t *e, scope_t *l)
{
    merge_str(e->name, &l->name);
    merge_str(e->version, &l->version);
    CONCAT(d, e, l, attributes);
    return 0;
}

static void merge_status(status_t *e, status_t *l)
{
    merge_str(e->message, &l->message);
}

static void merge_any(th_otlp_any_t *e, th_otlp_any_t *l)
{
    if (l->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET) {
        return; /* the later value wins whole: oneof members are not merged */
    }
    switch (e->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET:
    default:
        /* protobuf-c compares the later (unset, NULL) member with the string default and
         * finds them different, so an earlier string is not carried over. */
        return;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        l->bool_value = e->bool_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        l->int_value = e->int_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        l->double_value = e->double_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        l->array_value = e->array_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        l->kvlist_value = e->kvlist_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE:
        if (e->bytes_value.data == NULL) {
            return; /* an empty earlier bytes value counts as unset */
        }
        l->bytes_value = e->bytes_value;
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX:
        l->string_value_strindex = e->string_value_strindex;
        break;
    }
    l->value_case = e->value_case;
}

/* ---- The messages ---------------------------------------------------------------------- */

static int dec_any(struct dec *d, const uint8_t *p, const uint8_t *end, th_otlp_any_t *m);
static int dec_kv(struct dec *d, const uint8_t *p, const uint8_t *end, th_otlp_kv_t *m,
                  th_otlp_any_t *slot);

#define A16(n) (((n) + 15u) & ~(size_t)15u)

/* A key/value and the room for its value: the elements of attributes and kvlist values. */
#define KV_STRIDE (A16(sizeof(th_otlp_kv_t)) + A16(sizeof(th_otlp_any_t)))

/*
 * A sub-message field at *pp: allocate it, initialise it with @p init, decode it with @p fn
 * and advance past it.
 */
#define SUBMSG(d, pp, end, type, init, fn, out)                                                    \
    do {                                                                                           \
        size_t n_;                                                                                 \
        if (rd_len(pp, end, &n_) != 0) {                                                           \
            return TH_EDECODE;                                                                     \
        }                                                                                          \
        type *m_ = alloc(d, sizeof(type));                                                         \
        if (!m_) {                                                                                 \
            return TH_ENOMEM;                                                                      \
        }                                                                                          \
        *m_ = init;                                                                                \
        int rc_ = fn(d, *(pp), *(pp) + n_, m_);                                                    \
        if (rc_ != 0) {                                                                            \
            return rc_;                                                                            \
        }                                                                                          \
        *(pp) += n_;                                                                               \
        (out) = m_;                                                                                \
    } while (0)

/* Count the repeated fields from the first one on, and allocate their arrays. */
#define COUNT_ONCE(known, at, end, counted, cnt)                                                   \
    do {                                                                                           \
        if (!(counted)) {                                                                          \
            if (count_fields(at, end, known, cnt, NULL) != 0) {                                    \
                return TH_EDECODE;                                                                 \
            }                                                                                      \
            (counted) = true;                                                                      \
        }                                                                                          \
    } while (0)

/* Append one element to a repeated field (of strings) whose array was sized by COUNT_ONCE. */
#define APPEND(d, m, field, cnt_n, elem)                                                           \
    do {                                                                                           \
        if ((m)->n_##field == 0) {                                                                 \
            (m)->field = alloc(d, (size_t)(cnt_n) * sizeof(*(m)->field));                          \
            if (!(m)->field) {                                                                     \
                return TH_ENOMEM;                                                                  \
            }                                                                                      \
        }                                                                                          \
        if ((m)->n_##field >= (cnt_n)) {                                                           \
            return TH_EDECODE;                                                                     \
        }                                                                                          \
        (m)->field[(m)->n_##field++] = (elem);                                                     \
    } while (0)

/*
 * One element of a repeated message field whose count COUNT_ONCE took: on the first, the
 * pointer array and one block @p blk for all the elements are allocated (one allocation
 * each instead of one per element); the element is initialised, decoded and appended.
 */
#define REPEATED(d, pp, end, m, field, cnt_n, blk, type, init, fn)                                 \
    do {                                                                                           \
        if ((m)->n_##field == 0) {                                                                 \
            (m)->field = alloc(d, (size_t)(cnt_n) * sizeof(*(m)->field));                          \
            (blk) = alloc(d, (size_t)(cnt_n)*A16(sizeof(type)));                                   \
            if (!(m)->field || !(blk)) {                                                           \
                return TH_ENOMEM;                                                                  \
            }                                                                                      \
        }                                                                                          \
        if ((m)->n_##field >= (cnt_n)) {                                                           \
            return TH_EDECODE;                                                                     \
        }                                                                                          \
        type *e_ = (type *)(void *)((blk) + (m)->n_##field * A16(sizeof(type)));                   \
        size_t n_;                                                                                 \
        if (rd_len(pp, end, &n_) != 0) {                                                           \
            return TH_EDECODE;                                                                     \
        }                                                                                          \
        *e_ = init;                                                                                \
        int rc_ = fn(d, *(pp), *(pp) + n_, e_);                                                    \
        if (rc_ != 0) {                                                                            \
            return rc_;                                                                            \
        }                                                                                          \
        *(pp) += n_;                                                                               \
        (m)->field[(m)->n_##field++] = e_;                                                         \
    } while (0)

/*
 * One key/value of an attributes or kvlist values field (@p n of @p cap so far). The
 * elements come in one block, each followed by the AnyValue its value will most likely use.
 */
static int dec_attr(struct dec *d, const uint8_t **pp, const uint8_t *end, th_otlp_kv_t ***arr,
                    size_t *n, uint32_t cap, uint8_t **blk)
{
    if (*n == 0) {
        *arr = alloc(d, (size_t)cap * sizeof(**arr));
        *blk = alloc(d, (size_t)cap * KV_STRIDE);
        if (!*arr || !*blk) {
            return TH_ENOMEM;
        }
    }
    if (*n >= cap) {
        return TH_EDECODE;
    }
    th_otlp_kv_t *kv = (th_otlp_kv_t *)(void *)(*blk + *n * KV_STRIDE);
    th_otlp_any_t *slot = (th_otlp_any_t *)(void *)((uint8_t *)kv + A16(sizeof(th_otlp_kv_t)));
    size_t len;
    if (rd_len(pp, end, &len) != 0) {
        return TH_EDECODE;
    }
    *kv = kv_init;
    int rc = dec_kv(d, *pp, *pp + len, kv, slot);
    if (rc != 0) {
        return rc;
    }
    *pp += len;
    (*arr)[(*n)++] = kv;
    return 0;
}

#define ATTR(d, p, end, m, field, n, blk)                                                          \
    do {                                                                                           \
        int rc_ = dec_attr(d, &(p), end, &(m)->field, &(m)->n_##field, n, &(blk));                 \
        if (rc_ != 0) {                                                                            \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

static int dec_array(struct dec *d, const uint8_t *p, const uint8_t *end, array_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_ARRAY, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc;
        if (tag == TAG(1, WT_LEN)) {
            COUNT_ONCE(KNOWN_ARRAY, at, end, counted, cnt);
            REPEATED(d, &p, end, m, values, cnt[1], blk, th_otlp_any_t, any_init, dec_any);
        } else if ((rc = other_field(d, &m->base, &u, tag, at, &p, end)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int dec_kvlist(struct dec *d, const uint8_t *p, const uint8_t *end, kvlist_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_KVLIST, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc;
        if (tag == TAG(1, WT_LEN)) {
            COUNT_ONCE(KNOWN_KVLIST, at, end, counted, cnt);
            ATTR(d, p, end, m, values, cnt[1], blk);
        } else if ((rc = other_field(d, &m->base, &u, tag, at, &p, end)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int dec_any(struct dec *d, const uint8_t *p, const uint8_t *end, th_otlp_any_t *m)
{
    struct unk u = {KNOWN_ANY, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        /* A oneof: each member replaces whatever was there; protobuf-c frees the old one and
         * clears the union, so a shorter member does not leave bytes of a longer one. */
        if (m->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET &&
            (tag >> 3) >= 1 && (tag >> 3) <= 8) {
            memset(&m->bytes_value, 0, sizeof(m->bytes_value));
        }
        switch (tag) {
        case TAG(1, WT_LEN): {
            char *s;
            if ((rc = get_string(d, &p, end, &s)) == 0) {
                m->string_value = s;
                m->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            }
            break;
        }
        case TAG(2, WT_VARINT): {
            protobuf_c_boolean b;
            if ((rc = rd_bool(&p, end, &b)) == 0) {
                m->bool_value = b;
                m->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
            }
            break;
        }
        case TAG(3, WT_VARINT): {
            uint64_t v;
            if ((rc = rd_varint(&p, end, &v)) == 0) {
                m->int_value = (int64_t)v;
                m->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
            }
            break;
        }
        case TAG(4, WT_I64): {
            uint64_t v;
            if ((rc = rd_fixed64(&p, end, &v)) == 0) {
                memcpy(&m->double_value, &v, sizeof(v));
                m->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
            }
            break;
        }
        case TAG(5, WT_LEN): {
            if (d->nest >= TH_OTLP_MAX_DEPTH_CAP) {
                return TH_EDECODE;
            }
            array_t *a;
            d->nest++;
            SUBMSG(d, &p, end, array_t, array_init, dec_array, a);
            d->nest--;
            m->array_value = a;
            m->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
            break;
        }
        case TAG(6, WT_LEN): {
            if (d->nest >= TH_OTLP_MAX_DEPTH_CAP) {
                return TH_EDECODE;
            }
            kvlist_t *l;
            d->nest++;
            SUBMSG(d, &p, end, kvlist_t, kvlist_init, dec_kvlist, l);
            d->nest--;
            m->kvlist_value = l;
            m->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
            break;
        }
        case TAG(7, WT_LEN): {
            ProtobufCBinaryData b;
            if ((rc = get_bytes(d, &p, end, &b)) == 0) {
                m->bytes_value = b;
                m->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
            }
            break;
        }
        case TAG(8, WT_VARINT): {
            int32_t v;
            if ((rc = rd_i32(&p, end, &v)) == 0) {
                m->string_value_strindex = v;
                m->value_case =
                    OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE_STRINDEX;
            }
            break;
        }
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_kv(struct dec *d, const uint8_t *p, const uint8_t *end, th_otlp_kv_t *m,
                  th_otlp_any_t *slot)
{
    struct unk u = {KNOWN_KV, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        switch (tag) {
        case TAG(1, WT_LEN):
            rc = get_string(d, &p, end, &m->key);
            break;
        case TAG(2, WT_LEN): {
            th_otlp_any_t *v;
            if (!m->value) {
                /* The usual case: one value, in the room next to the key/value. */
                size_t n;
                if (rd_len(&p, end, &n) != 0) {
                    return TH_EDECODE;
                }
                *slot = any_init;
                const uint8_t *q = p;
                uint64_t iv;
                if (n >= 2 && n - 2 < 0x80 && q[0] == TAG(1, WT_LEN) && q[1] == n - 2) {
                    /* Nothing but a string_value, the most common value: no call. */
                    q++;
                    if ((rc = get_string(d, &q, p + n, &slot->string_value)) != 0) {
                        return rc;
                    }
                    slot->value_case =
                        OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
                } else if (n >= 2 && q[0] == TAG(3, WT_VARINT) && (q++, true) &&
                           rd_varint(&q, p + n, &iv) == 0 && q == p + n) {
                    /* Nothing but an int_value, the next most common. */
                    slot->int_value = (int64_t)iv;
                    slot->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
                } else if ((rc = dec_any(d, p, p + n, slot)) != 0) {
                    return rc;
                }
                p += n;
                m->value = slot;
                break;
            }
            SUBMSG(d, &p, end, th_otlp_any_t, any_init, dec_any, v);
            merge_any(m->value, v);
            m->value = v;
            break;
        }
        case TAG(3, WT_VARINT):
            rc = rd_i32(&p, end, &m->key_strindex);
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_status(struct dec *d, const uint8_t *p, const uint8_t *end, status_t *m)
{
    struct unk u = {KNOWN_STATUS, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc;
        int32_t code;
        switch (tag) {
        case TAG(2, WT_LEN):
            rc = get_string(d, &p, end, &m->message);
            break;
        case TAG(3, WT_VARINT):
            rc = rd_i32(&p, end, &code);
            m->code = (Opentelemetry__Proto__Trace__V1__Status__StatusCode)code;
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_event(struct dec *d, const uint8_t *p, const uint8_t *end, event_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_EVENT, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        switch (tag) {
        case TAG(1, WT_I64):
            rc = rd_fixed64(&p, end, &m->time_unix_nano);
            break;
        case TAG(2, WT_LEN):
            rc = get_string(d, &p, end, &m->name);
            break;
        case TAG(3, WT_LEN):
            COUNT_ONCE(KNOWN_EVENT, at, end, counted, cnt);
            ATTR(d, p, end, m, attributes, cnt[3], blk);
            break;
        case TAG(4, WT_VARINT):
            rc = rd_u32(&p, end, &m->dropped_attributes_count);
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_link(struct dec *d, const uint8_t *p, const uint8_t *end, link_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_LINK, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        switch (tag) {
        case TAG(1, WT_LEN):
            rc = get_bytes(d, &p, end, &m->trace_id);
            break;
        case TAG(2, WT_LEN):
            rc = get_bytes(d, &p, end, &m->span_id);
            break;
        case TAG(3, WT_LEN):
            rc = get_string(d, &p, end, &m->trace_state);
            break;
        case TAG(4, WT_LEN):
            COUNT_ONCE(KNOWN_LINK, at, end, counted, cnt);
            ATTR(d, p, end, m, attributes, cnt[4], blk);
            break;
        case TAG(5, WT_VARINT):
            rc = rd_u32(&p, end, &m->dropped_attributes_count);
            break;
        case TAG(6, WT_I32):
            rc = rd_fixed32(&p, end, &m->flags);
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_span(struct dec *d, const uint8_t *p, const uint8_t *end, th_otlp_span_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk_attrs = NULL;  /* the elements of a repeated field */
    uint8_t *blk_events = NULL; /* the elements of a repeated field */
    uint8_t *blk_links = NULL;  /* the elements of a repeated field */
    struct unk u = {KNOWN_SPAN, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        int32_t kind;
        switch (tag) {
        case TAG(1, WT_LEN):
            rc = get_bytes(d, &p, end, &m->trace_id);
            break;
        case TAG(2, WT_LEN):
            rc = get_bytes(d, &p, end, &m->span_id);
            break;
        case TAG(3, WT_LEN):
            rc = get_string(d, &p, end, &m->trace_state);
            break;
        case TAG(4, WT_LEN):
            rc = get_bytes(d, &p, end, &m->parent_span_id);
            break;
        case TAG(5, WT_LEN):
            rc = get_string(d, &p, end, &m->name);
            break;
        case TAG(6, WT_VARINT):
            rc = rd_i32(&p, end, &kind);
            m->kind = (Opentelemetry__Proto__Trace__V1__Span__SpanKind)kind;
            break;
        case TAG(7, WT_I64):
            rc = rd_fixed64(&p, end, &m->start_time_unix_nano);
            break;
        case TAG(8, WT_I64):
            rc = rd_fixed64(&p, end, &m->end_time_unix_nano);
            break;
        case TAG(9, WT_LEN):
            COUNT_ONCE(KNOWN_SPAN, at, end, counted, cnt);
            ATTR(d, p, end, m, attributes, cnt[9], blk_attrs);
            break;
        case TAG(10, WT_VARINT):
            rc = rd_u32(&p, end, &m->dropped_attributes_count);
            break;
        case TAG(11, WT_LEN): {
            COUNT_ONCE(KNOWN_SPAN, at, end, counted, cnt);
            REPEATED(d, &p, end, m, events, cnt[11], blk_events, event_t, event_init, dec_event);
            break;
        }
        case TAG(12, WT_VARINT):
            rc = rd_u32(&p, end, &m->dropped_events_count);
            break;
        case TAG(13, WT_LEN): {
            COUNT_ONCE(KNOWN_SPAN, at, end, counted, cnt);
            REPEATED(d, &p, end, m, links, cnt[13], blk_links, link_t, link_init, dec_link);
            break;
        }
        case TAG(14, WT_VARINT):
            rc = rd_u32(&p, end, &m->dropped_links_count);
            break;
        case TAG(15, WT_LEN): {
            status_t *s;
            SUBMSG(d, &p, end, status_t, status_init, dec_status, s);
            if (m->status) {
                merge_status(m->status, s);
            }
            m->status = s;
            break;
        }
        default:
            /* flags, field 16, is the one field with a two-byte tag. */
            if (tag == TAG(16, WT_I32)) {
                rc = rd_fixed32(&p, end, &m->flags);
            } else {
                rc = other_field(d, &m->base, &u, tag, at, &p, end);
            }
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_scope(struct dec *d, const uint8_t *p, const uint8_t *end, scope_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_SCOPE, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        switch (tag) {
        case TAG(1, WT_LEN):
            rc = get_string(d, &p, end, &m->name);
            break;
        case TAG(2, WT_LEN):
            rc = get_string(d, &p, end, &m->version);
            break;
        case TAG(3, WT_LEN):
            COUNT_ONCE(KNOWN_SCOPE, at, end, counted, cnt);
            ATTR(d, p, end, m, attributes, cnt[3], blk);
            break;
        case TAG(4, WT_VARINT):
            rc = rd_u32(&p, end, &m->dropped_attributes_count);
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_scope_spans(struct dec *d, const uint8_t *p, const uint8_t *end,
                           th_otlp_scope_spans_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_SS, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        switch (tag) {
        case TAG(1, WT_LEN): {
            scope_t *s;
            SUBMSG(d, &p, end, scope_t, scope_init, dec_scope, s);
            if (m->scope && (rc = merge_scope(d, m->scope, s)) != 0) {
                return rc;
            }
            m->scope = s;
            break;
        }
        case TAG(2, WT_LEN): {
            COUNT_ONCE(KNOWN_SS, at, end, counted, cnt);
            REPEATED(d, &p, end, m, spans, cnt[2], blk, th_otlp_span_t, span_init, dec_span);
            break;
        }
        case TAG(3, WT_LEN):
            rc = get_string(d, &p, end, &m->schema_url);
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_entity(struct dec *d, const uint8_t *p, const uint8_t *end, entity_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    struct unk u = {KNOWN_ENTITY, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        char *s = NULL;
        switch (tag) {
        case TAG(1, WT_LEN):
            rc = get_string(d, &p, end, &m->schema_url);
            break;
        case TAG(2, WT_LEN):
            rc = get_string(d, &p, end, &m->type);
            break;
        case TAG(3, WT_LEN):
            COUNT_ONCE(KNOWN_ENTITY, at, end, counted, cnt);
            if ((rc = get_string(d, &p, end, &s)) == 0) {
                APPEND(d, m, id_keys, cnt[3], s);
            }
            break;
        case TAG(4, WT_LEN):
            COUNT_ONCE(KNOWN_ENTITY, at, end, counted, cnt);
            if ((rc = get_string(d, &p, end, &s)) == 0) {
                APPEND(d, m, description_keys, cnt[4], s);
            }
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_resource(struct dec *d, const uint8_t *p, const uint8_t *end, resource_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk_attrs = NULL;    /* the elements of a repeated field */
    uint8_t *blk_entities = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_RES, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        switch (tag) {
        case TAG(1, WT_LEN):
            COUNT_ONCE(KNOWN_RES, at, end, counted, cnt);
            ATTR(d, p, end, m, attributes, cnt[1], blk_attrs);
            break;
        case TAG(2, WT_VARINT):
            rc = rd_u32(&p, end, &m->dropped_attributes_count);
            break;
        case TAG(3, WT_LEN): {
            COUNT_ONCE(KNOWN_RES, at, end, counted, cnt);
            REPEATED(d, &p, end, m, entity_refs, cnt[3], blk_entities, entity_t, entity_init,
                     dec_entity);
            break;
        }
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_resource_spans(struct dec *d, const uint8_t *p, const uint8_t *end,
                              th_otlp_resource_spans_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_RS, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc = 0;
        switch (tag) {
        case TAG(1, WT_LEN): {
            resource_t *r;
            SUBMSG(d, &p, end, resource_t, res_init, dec_resource, r);
            if (m->resource && (rc = merge_resource(d, m->resource, r)) != 0) {
                return rc;
            }
            m->resource = r;
            break;
        }
        case TAG(2, WT_LEN): {
            COUNT_ONCE(KNOWN_RS, at, end, counted, cnt);
            REPEATED(d, &p, end, m, scope_spans, cnt[2], blk, th_otlp_scope_spans_t, ss_init,
                     dec_scope_spans);
            break;
        }
        case TAG(3, WT_LEN):
            rc = get_string(d, &p, end, &m->schema_url);
            break;
        default:
            rc = other_field(d, &m->base, &u, tag, at, &p, end);
            break;
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int dec_request(struct dec *d, const uint8_t *p, const uint8_t *end, th_otlp_request_t *m)
{
    uint32_t cnt[MAX_REPEATED_FNO + 1] = {0};
    bool counted = false;
    uint8_t *blk = NULL; /* the elements of a repeated field */
    struct unk u = {KNOWN_REQ, 0};
    while (p < end) {
        const uint8_t *at = p;
        uint32_t tag;
        if (rd_tag(&p, end, &tag) != 0) {
            return TH_EDECODE;
        }
        int rc;
        if (tag == TAG(1, WT_LEN)) {
            COUNT_ONCE(KNOWN_REQ, at, end, counted, cnt);
            REPEATED(d, &p, end, m, resource_spans, cnt[1], blk, th_otlp_resource_spans_t, rs_init,
                     dec_resource_spans);
        } else if ((rc = other_field(d, &m->base, &u, tag, at, &p, end)) != 0) {
            return rc;
        }
    }
    return 0;
}

int th__otlp_unpack(const uint8_t *buf, size_t len, struct th__otlp_mem *mem,
                    th_otlp_request_t **out)
{
    if (!buf) {
        if (len) {
            return TH_EDECODE;
        }
        buf = (const uint8_t *)"";
    }
    struct dec d = {.mem = mem, .nest = 0};
    th_otlp_request_t *req = alloc(&d, sizeof(*req));
    if (!req) {
        return TH_ENOMEM;
    }
    *req = req_init;
    int rc = dec_request(&d, buf, buf + len, req);
    if (rc) {
        return rc;
    }
    *out = req;
    return 0;
}

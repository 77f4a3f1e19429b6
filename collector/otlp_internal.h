/*
 * Internals shared by the OTLP codecs (otlp_pb.c, otlp_json_decode.c, otlp_json_encode.c,
 * otlp_validate.c, otlp_response.c): the budgeted arena allocator both decoders use, the
 * checks they share after decoding, UTF-8 validation, and error formatting. Not a public
 * header: nothing outside the codecs includes it.
 */
#ifndef TH_OTLP_INTERNAL_H
#define TH_OTLP_INTERNAL_H

#include <stdarg.h>

#include "th/otlp.h"

/* Short names of the OTLP messages the codecs walk (those without a th_otlp_ name). */
typedef Opentelemetry__Proto__Resource__V1__Resource resource_t;
typedef Opentelemetry__Proto__Common__V1__EntityRef entity_t;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope scope_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Event event_t;
typedef Opentelemetry__Proto__Trace__V1__Span__Link link_t;
typedef Opentelemetry__Proto__Trace__V1__Status status_t;
typedef Opentelemetry__Proto__Common__V1__ArrayValue array_t;
typedef Opentelemetry__Proto__Common__V1__KeyValueList kvlist_t;

/* Config key names of the limits, used in every limit message so an operator knows what
 * to raise. */
#define TH_OTLP_KEY_DEPTH  "max_nesting_depth"
#define TH_OTLP_KEY_SPANS  "max_spans_per_request"
#define TH_OTLP_KEY_ATTRS  "max_attributes_per_item"
#define TH_OTLP_KEY_STRLEN "max_string_length"

/** Blocks the decoders take from the arena and then bump-allocate from, inline. */
#define TH__OTLP_BLOCK 16384u

/** Big blocks remembered so that a free of one can be recognised (mem_free, otlp_validate.c). */
#define TH__OTLP_BIG 32u

/**
 * A decode's view of the arena: every allocation is counted against a budget, so a request
 * whose decoded form would outgrow max_arena fails cleanly instead of growing memory.
 * Small allocations are bumped out of TH__OTLP_BLOCK-sized blocks taken from the arena (the
 * fast path is inline in both decoders). protobuf-c's scan slabs (power-of-two sizes of 1 KiB
 * and up, freed at the end of each message it unpacks) are recycled through free lists, so
 * a request of a hundred spans reuses one warm slab instead of allocating a hundred.
 */
struct th__otlp_mem {
    th_arena_t *arena;
    uint8_t *cur; /**< the free part of the current block */
    uint8_t *end;
    size_t used;     /**< bytes taken from the arena by this decode */
    size_t limit;    /**< the budget in bytes */
    bool over_limit; /**< an allocation was refused because of the budget */
    bool oom;        /**< an allocation failed because the arena could not get memory */
    unsigned nbig;
    struct {
        void *p;
        uint32_t log2;
    } big[TH__OTLP_BIG]; /**< live power-of-two blocks of 1 KiB and more */
    void *slabs[32];     /**< freed power-of-two blocks, by log2 of their size */
};

/** Start a budget of @p limit bytes over @p a. */
void th__otlp_mem_init(struct th__otlp_mem *m, th_arena_t *a, size_t limit);

/** The slow path of th__otlp_mem_alloc: a new block, a big allocation, or a recycled slab. */
void *th__otlp_mem_alloc_slow(struct th__otlp_mem *m, size_t n);

/** @return @p n bytes (aligned to 16, uninitialised) counted against the budget, or NULL. */
static inline void *th__otlp_mem_alloc(struct th__otlp_mem *m, size_t n)
{
    size_t rounded = (n + 15u) & ~(size_t)15u;
    if (n < 1024 && rounded <= (uintptr_t)m->end - (uintptr_t)m->cur) {
        void *p = m->cur;
        m->cur += rounded;
        return p;
    }
    return th__otlp_mem_alloc_slow(m, n);
}

/**
 * Fill a protobuf-c allocator that allocates through th__otlp_mem_alloc; frees are ignored
 * except for recycling slabs.
 */
void th__otlp_mem_pbc(struct th__otlp_mem *m, ProtobufCAllocator *out);

/**
 * The result for a failed allocation: TH_ENOMEM with a message saying whether the budget
 * (err->arena_limit set) or the process ran out.
 */
int th__otlp_mem_fail(const struct th__otlp_mem *m, struct th_otlp_error *err);

/**
 * The limits a decode runs with: @p in (or the defaults when NULL) with 0 fields replaced by
 * their defaults, max_depth capped at TH_OTLP_MAX_DEPTH_CAP, and max_arena resolved
 * against the body length.
 */
void th__otlp_limits_resolve(const struct th_otlp_limits *in, size_t body_len,
                             struct th_otlp_limits *out);

/**
 * Checks both decoders run on the decoded request: trace and span ids of spans and links
 * (16 and 8 bytes, not all zero; parent span id empty or 8 bytes).
 * @return 0 or TH_EDECODE with a message naming the place.
 */
int th__otlp_validate(const th_otlp_request_t *req, struct th_otlp_error *err);

/**
 * Unpack an ExportTraceServiceRequest into the protobuf-c structs, allocating through
 * @p mem: the same result protobuf-c's generated unpack gives (each message initialised
 * with its __INIT value, so protobuf_c_message_get_packed_size and pack work on it; unknown
 * fields kept; a repeated non-repeated message field merged as protobuf-c merges it), in
 * one pass per message. Strings and bytes are copied, so @p buf may go away afterwards.
 * Safe on any input (bounds-checked, nesting capped at TH_OTLP_MAX_DEPTH_CAP), but it
 * checks no limits and no UTF-8: th_otlp_decode_pb runs its validating walk first.
 * @param[out] out the request, set only on success.
 * @return 0; TH_EDECODE for malformed input; TH_ENOMEM when @p mem refused an allocation
 *         (its over_limit or oom says which).
 */
int th__otlp_unpack(const uint8_t *buf, size_t len, struct th__otlp_mem *mem,
                    th_otlp_request_t **out);

/**
 * The validating walk th_otlp_decode_pb runs before unpacking: well-formed wire format,
 * the schema's wire types, limits, UTF-8 (see th_otlp_decode_pb).
 * @param[in] lim resolved limits (th__otlp_limits_resolve).
 * @param[out] estimate a lower bound of the bytes the decoded request needs.
 * @return 0, TH_EDECODE or TH_E2BIG with a message in @p err (may be NULL).
 */
int th__otlp_prewalk(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                     struct th_otlp_error *err, uint64_t *estimate);

/** Result of th__utf8_check. */
enum th__utf8 {
    TH__UTF8_OK = 0,
    TH__UTF8_INVALID = 1, /**< not well-formed UTF-8 (RFC 3629) */
    TH__UTF8_NUL = 2,     /**< well-formed so far, but contains a 0x00 byte */
};

/** The slow path of th__utf8_check: from the first byte that is not plain ASCII. */
enum th__utf8 th__utf8_check_slow(const uint8_t *p, const uint8_t *end);

/**
 * Check that @p len bytes at @p p are well-formed UTF-8 without NUL bytes (no overlong forms,
 * no surrogates, nothing above U+10FFFF). Pure ASCII is checked eight bytes at a time,
 * inline; anything else goes to th__utf8_check_slow.
 * @param[in] limit the end of readable memory (>= p + len): a short tail may be loaded as a
 *            whole word when 8 bytes are readable, which is what makes short strings cheap.
 */
static inline enum th__utf8 th__utf8_check_in(const uint8_t *p, size_t len, const uint8_t *limit)
{
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t highs = 0x8080808080808080ull;
    const uint8_t *end = p + len;
    while (end - p >= 8) {
        uint64_t v;
        __builtin_memcpy(&v, p, 8);
        /* A high bit set, or a zero byte. */
        if ((v & highs) || ((v - ones) & ~v & highs)) {
            return th__utf8_check_slow(p, end);
        }
        p += 8;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (p < end && limit - p >= 8) {
        /* The tail as one word, the bytes past the end replaced by spaces. */
        uint64_t v;
        uint64_t keep = ~0ull >> (8 * (8 - (size_t)(end - p)));
        __builtin_memcpy(&v, p, 8);
        v = (v & keep) | (0x2020202020202020ull & ~keep);
        if ((v & highs) || ((v - ones) & ~v & highs)) {
            return th__utf8_check_slow(p, end);
        }
        return TH__UTF8_OK;
    }
#endif
    while (p < end) {
        if (*p == 0 || *p >= 0x80) {
            return th__utf8_check_slow(p, end);
        }
        p++;
    }
    return TH__UTF8_OK;
}

/** th__utf8_check_in when nothing past the string may be read. */
static inline enum th__utf8 th__utf8_check(const uint8_t *p, size_t len)
{
    return th__utf8_check_in(p, len, p + len);
}

/** Append @p s (NUL-terminated, NULL as "") as a JSON string. @return 0 or TH_ENOMEM. */
int th__otlp_json_string(th_buf_t *out, const char *s);

/** Format a message into err->msg (truncated to fit). @p err may be NULL. */
void th__otlp_errf(struct th_otlp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Append to err->msg (truncated to fit). */
void th__otlp_errcat(struct th_otlp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif

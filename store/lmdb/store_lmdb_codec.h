/*
 * Codecs of the LMDB span store (internal): a msgpack writer and a bounds-checked msgpack
 * reader, LEB128 varints, the 64-bit hash and the tag table of the search index, the string
 * forms of attribute values that tag search compares (Jaeger's AsString), and the block
 * record: resources and scopes stored once per block, spans grouped by trace. Everything
 * that reads stored bytes returns TH_EIO on malformed input and never reads out of bounds:
 * a store file can be corrupted, and tests/fuzz/store_codec proves these decoders against it.
 */
#ifndef TH_STORE_LMDB_CODEC_H
#define TH_STORE_LMDB_CODEC_H

#include <stdlib.h>
#include <string.h>

#include "th/arena.h"
#include "th/batch.h"
#include "th/common.h"

/** qsort that accepts an empty array (qsort(NULL, 0, ...) is undefined behaviour). */
static inline void th__qsort(void *base, size_t n, size_t size,
                             int (*cmp)(const void *, const void *))
{
    if (n > 1) {
        qsort(base, n, size, cmp);
    }
}

/* ---- msgpack writer ------------------------------------------------------------------- */

/** A growable output buffer with a sticky error (TH_ENOMEM), so encoders need no checks. */
typedef struct th__mpw {
    uint8_t *p;
    size_t len, cap;
    int err;
} th__mpw_t;

/** Make room for @p n more bytes. @return the write position, or NULL (err set). */
uint8_t *th__mpw_grow(th__mpw_t *w, size_t n);

static inline uint8_t *th__mpw_room(th__mpw_t *w, size_t n)
{
    if (w->cap - w->len >= n) {
        return w->p + w->len;
    }
    return th__mpw_grow(w, n);
}

/** Free the buffer; it is empty and reusable afterwards. */
void th__mpw_free(th__mpw_t *w);

void th__mpw_raw(th__mpw_t *w, const void *p, size_t n);
void th__mpw_nil(th__mpw_t *w);
void th__mpw_bool(th__mpw_t *w, bool b);
void th__mpw_uint(th__mpw_t *w, uint64_t v);
void th__mpw_int(th__mpw_t *w, int64_t v);
void th__mpw_double(th__mpw_t *w, double d);
void th__mpw_str(th__mpw_t *w, const char *s, size_t n);
/** A NUL-terminated string; NULL is written as "". */
void th__mpw_cstr(th__mpw_t *w, const char *s);
void th__mpw_bin(th__mpw_t *w, const uint8_t *p, size_t n);
void th__mpw_array(th__mpw_t *w, uint32_t n);
void th__mpw_map(th__mpw_t *w, uint32_t n);
/** The marker of an AnyValue with no value set (ext 8, type 0, length 0). */
void th__mpw_empty_any(th__mpw_t *w);

/** Append an unsigned LEB128 varint. */
void th__mpw_varint(th__mpw_t *w, uint64_t v);

/* ---- msgpack reader ------------------------------------------------------------------- */

/** A cursor over stored bytes; every read checks the bounds. */
typedef struct th__mpr {
    const uint8_t *p, *end;
} th__mpr_t;

enum th__mp_type {
    TH_MP_BAD = 0,
    TH_MP_NIL,
    TH_MP_BOOL,
    TH_MP_UINT,
    TH_MP_INT, /* negative */
    TH_MP_FLOAT,
    TH_MP_STR,
    TH_MP_BIN,
    TH_MP_ARRAY,
    TH_MP_MAP,
    TH_MP_EXT,
};

/** @return the type of the next object without consuming it (TH_MP_BAD at the end). */
enum th__mp_type th__mpr_peek(const th__mpr_t *r);

/* Each returns 0, or TH_EIO when the next object is not of that type or is truncated. */
int th__mpr_nil(th__mpr_t *r);
int th__mpr_bool(th__mpr_t *r, bool *b);
int th__mpr_uint(th__mpr_t *r, uint64_t *v);
int th__mpr_int(th__mpr_t *r, int64_t *v);
int th__mpr_double(th__mpr_t *r, double *d);
int th__mpr_str(th__mpr_t *r, const char **s, size_t *n);
int th__mpr_bin(th__mpr_t *r, const uint8_t **p, size_t *n);
int th__mpr_array(th__mpr_t *r, uint32_t *n);
int th__mpr_map(th__mpr_t *r, uint32_t *n);
/** Read an ext object. */
int th__mpr_ext(th__mpr_t *r, int8_t *type, const uint8_t **p, size_t *n);
/** Skip one object of any type, nested up to TH_MP_MAX_DEPTH. */
int th__mpr_skip(th__mpr_t *r);
/** A uint that must fit 32 bits. */
int th__mpr_u32(th__mpr_t *r, uint32_t *v);

/** Nesting of arrays and maps inside one attribute value that the codec accepts (above the
 *  OTLP decoder's cap of 128, so whatever was accepted can be stored). */
#define TH_MP_MAX_DEPTH 160

/** Read an unsigned LEB128 varint (at most 10 bytes). @return 0 or TH_EIO. */
int th__varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* ---- Hashing and the tag table ------------------------------------------------------- */

/** A fast 64-bit hash (not cryptographic) of @p n bytes. */
uint64_t th__hash64(const void *p, size_t n, uint64_t seed);

/** The kinds of value a tag hash covers. Doubles are hashed by their bits so that writing
 *  needs no float formatting; every other value is hashed by its AsString text. */
#define TH_TAGH_STR    0
#define TH_TAGH_DOUBLE 1
#define TH_TAGH_MARK   2 /* pseudo tags: operation, span kind, status ERROR */

/** Marker keys (hashed with TH_TAGH_MARK). */
#define TH_MARK_OP    "op"    /* value: kind byte, then the span name */
#define TH_MARK_KIND  "kind"  /* value: kind byte */
#define TH_MARK_ERROR "error" /* value: "true" */

/** The 32-bit hash of one key=value pair, as the tag table keeps it. */
uint32_t th__tag_hash(const char *key, size_t klen, int kind, const void *v, size_t vlen);

/*
 * A block's tag table lists every distinct attribute value (span, event, link, scope and
 * resource attributes, in AsString form), operation, kind and error marker of its spans,
 * each with the newest start of a span that has it. It is a sorted array of (u32 hash,
 * u32 microseconds after the block's first start) pairs, split by hash range into parts
 * that each fit half an LMDB page; each part is stored under tags block|part. A search
 * learns from it both whether a block can match and how new its best match can be, which is
 * what lets newest-first search skip blocks without decompressing them.
 */
#define TH_TAGS_ENTRY      8
#define TH_TAGS_PART_BYTES 1600 /* the expected fill; a part may hold up to TH_TAGS_PART_MAX */
#define TH_TAGS_PART_MAX   1984
#define TH_TAGS_DELTA_NONE UINT32_MAX /* start too far after the first: use the block's max */

/** @return the part a hash lives in. */
static inline unsigned th__tags_part(uint32_t h, unsigned n_parts)
{
    return (unsigned)(((uint64_t)h * n_parts) >> 32);
}

/**
 * Binary search a part's sorted entries.
 * @param[out] delta the newest start of the value (µs after the block's first start).
 * @return true when @p h is there.
 */
bool th__tags_find(const uint8_t *entries, size_t len, uint32_t h, uint32_t *delta);

/* ---- AsString forms ------------------------------------------------------------------- */

/** Decimal text of @p v. @param[out] buf at least 24 bytes. @return the length. */
size_t th__fmt_i64(int64_t v, char *buf);

/** Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest text that reads back to @p v,
 *  without exponent; "NaN", "+Inf", "-Inf". @param[out] buf at least 400 bytes.
 *  @return the length. */
size_t th__fmt_double(double v, char *buf);

/** Append standard padded base64 of @p n bytes. */
void th__base64(th__mpw_t *w, const uint8_t *p, size_t n);

/**
 * Append the AsString text of a value as the OpenTelemetry Collector's pdata gives it:
 * strings as they are, bools true/false, ints in decimal, doubles as th__fmt_double, bytes
 * as base64, arrays and kvlists as JSON (kvlist keys sorted, as Go's encoding/json does),
 * an empty value as "".
 */
void th__any_as_string(th__mpw_t *w, const th_otlp_any_t *v);

/* ---- The block record ----------------------------------------------------------------- */

/*
 * A block's uncompressed payload is a msgpack stream:
 *   [version, n_resources, n_scopes, n_groups]
 *   n_resources × resource   [present, attrs, dropped, entity_refs, schema_url]
 *   n_scopes × scope         [resource_idx, present, name, version, attrs, dropped, schema_url]
 *   n_groups × group         [trace_id, base_start, [span, ...]]
 * span: [scope_idx, span_id, trace_state, parent_span_id, flags, name, kind,
 *        start - base_start, end - start, attrs, dropped_attrs, events, dropped_events,
 *        links, dropped_links, status]
 * attrs is a map key → value; a value is nil (no value), the empty marker, str, bool, int,
 * float64, bin, an array of values or a map (kvlist). status is nil or [code, message].
 */
#define TH_BLOCK_VERSION   1
#define TH_SPAN_FIELDS     16
#define TH_GROUP_MAX_SPANS 64 /* a trace's spans in one block are split into groups of this */

/** Encode a resource record (the resource of @p rs and its schema_url). */
void th__blk_enc_resource(th__mpw_t *w, const th_otlp_resource_spans_t *rs);
/** Encode a scope record. */
void th__blk_enc_scope(th__mpw_t *w, uint32_t res_idx, const th_otlp_scope_spans_t *ss);
/** Encode one span of a group whose base start is @p base. */
void th__blk_enc_span(th__mpw_t *w, uint32_t scope_idx, uint64_t base, const th_otlp_span_t *sp);

/** The tables of a decoded block payload. */
struct th__blk_view {
    const uint8_t *buf;
    size_t len;
    uint32_t n_res, n_scopes, n_groups;
    /* byte offsets of each record and its end; allocated with th_malloc */
    uint32_t *res_off, *res_end;
    uint32_t *scope_off, *scope_end, *scope_res;
    uint32_t groups_off; /* where the first group starts */
};

/**
 * Parse the header and walk the resource and scope tables of a payload (or its prefix: the
 * groups need not all be there).
 * @return 0, TH_EIO (malformed), TH_ENOMEM. Free with th__blk_view_free().
 */
int th__blk_view_open(struct th__blk_view *v, const uint8_t *buf, size_t len);
void th__blk_view_free(struct th__blk_view *v);

/** Decode resource record @p idx into a new ResourceSpans (no scope spans) in @p a. */
int th__blk_dec_resource(const struct th__blk_view *v, uint32_t idx, th_arena_t *a,
                         th_otlp_resource_spans_t **out);
/** Decode scope record @p idx into a new ScopeSpans (no spans) in @p a. */
int th__blk_dec_scope(const struct th__blk_view *v, uint32_t idx, th_arena_t *a,
                      th_otlp_scope_spans_t **out);

/**
 * Decode one group at @p r (positioned at the group record): each span is allocated in @p a
 * with the group's trace id and handed to @p on_span with its scope index.
 * @return 0, TH_EIO, TH_ENOMEM, or what on_span returned.
 */
int th__blk_dec_group(th__mpr_t *r, uint32_t n_scopes, th_arena_t *a,
                      int (*on_span)(void *ctx, uint32_t scope_idx, th_otlp_span_t *sp), void *ctx);

/** Decode a map of attributes into @p a. */
int th__dec_attrs(th__mpr_t *r, th_arena_t *a, th_otlp_kv_t ***out, size_t *n);

/** Decode one AnyValue (nil gives NULL) into @p a. */
int th__dec_any(th__mpr_t *r, th_arena_t *a, int depth, th_otlp_any_t **out);

/* ---- Compressed payloads -------------------------------------------------------------- */

/** A block payload bigger than this is not something this store wrote. */
#define TH_PAYLOAD_MAX (256ull << 20)

/**
 * Decompress the first @p need bytes (all of it when need is SIZE_MAX) of one zstd frame
 * into @p out (replacing its contents), stopping as soon as they are out.
 * @return 0, TH_EIO (not a frame this store wrote, truncated, damaged), TH_ENOMEM.
 */
int th__zstd_partial(const uint8_t *comp, size_t len, size_t need, th__mpw_t *out);

/* ---- The trace entry: the value of a traces key --------------------------------------- */

/*
 * u8 version; varint raw_off, raw_len, n_spans; u64 min_start; varint max_end - min_start;
 * varint n_runs, then n_runs × (varint svc, varint count): the services of the spans, in
 * the order of the ids that follow; n_spans × 8-byte span ids; varint n_roots, then
 * n_roots × (8-byte parent span id, varint svc, varint minute): spans whose parent was not
 * in the same block, kept so that a later block holding the parent can count the call.
 */
#define TH_TRACE_ENTRY_VERSION 1

struct th__trace_entry {
    uint32_t raw_off, raw_len, n_spans;
    uint64_t min_start, max_end;
    uint32_t n_runs;
    const uint8_t *runs, *runs_end;
    const uint8_t *ids; /* n_spans × 8 */
    uint32_t n_roots;
    const uint8_t *roots, *roots_end;
};

/** Parse and check a trace entry. @return 0 or TH_EIO. */
int th__trace_entry_parse(const uint8_t *p, size_t len, struct th__trace_entry *e);

/** Service of each span id, in order: iterate runs. @return 0 or TH_EIO. */
int th__trace_entry_svcs(const struct th__trace_entry *e, uint32_t *svcs);

/** One unresolved root. */
struct th__root {
    uint64_t parent; /* the parent span id, as a big-endian integer of its 8 bytes */
    uint32_t svc;
    uint32_t minute;
};

/** Read root @p *p (advancing it). @return 0 or TH_EIO. */
int th__trace_entry_root(const uint8_t **p, const uint8_t *end, struct th__root *out);

#endif

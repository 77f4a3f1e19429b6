/*
 * OTLP codecs: protobuf and OTLP/JSON decoding of ExportTraceServiceRequest into an arena,
 * with the limits that keep hostile input from crashing the process or growing memory; the
 * OTLP/JSON encoder (file exporter, debug output, JSON responses); and the encoders for the
 * response and google.rpc.Status bodies a receiver sends back.
 */
#ifndef TH_OTLP_H
#define TH_OTLP_H

#include "th/arena.h"
#include "th/batch.h"
#include "th/common.h"

/** The largest max_depth honoured; bigger values are capped (the unpacker recurses per level). */
#define TH_OTLP_MAX_DEPTH_CAP 128

/**
 * Limits applied while decoding; each is a config key of the receiver. A field left 0 takes
 * its default.
 */
struct th_otlp_limits {
    uint32_t max_depth;      /**< `max_nesting_depth`: arrays/kvlists nested inside one
                                  attribute value (default 32, capped at
                                  TH_OTLP_MAX_DEPTH_CAP) */
    uint64_t max_spans;      /**< `max_spans_per_request`: spans in one request (default
                                  1,000,000) */
    uint64_t max_attributes; /**< `max_attributes_per_item`: attributes on one span, event,
                                  link, scope or resource, and entries of one kvlist value
                                  (default 16,384) */
    uint64_t max_string_len; /**< `max_string_length`: bytes in one string or bytes value
                                  (default 4 MiB) */
    uint64_t max_arena;      /**< bytes of decoded structs per request (default 8x the body +
                                  1 MiB) */
};

/**
 * Fill @p l with the defaults above (max_arena 0, meaning "8x the body + 1 MiB").
 * @param[out] l the limits to fill.
 */
void th_otlp_limits_default(struct th_otlp_limits *l);

/** What went wrong in a decode, for the 400 body. */
struct th_otlp_error {
    char msg[256];    /**< a message a person can act on: what and where, e.g.
                           `resource_spans[0].scope_spans[1].spans[7].span_id: must be 8
                           bytes, got 3` */
    bool arena_limit; /**< set with TH_ENOMEM when the request's own decoded size hit
                           max_arena (the request is too big: answer 413, not 503) */
};

/**
 * Decode a protobuf ExportTraceServiceRequest.
 * Before unpacking, a non-recursive walk of the wire format over the OTLP schema rejects
 * truncated or invalid tags and lengths, wrong wire types for known fields, nesting past
 * max_depth, strings that are not UTF-8 or contain NUL, and counts spans, attributes and
 * string lengths against the limits, all before anything is allocated. An unpacker written
 * for the OTLP schema then builds the same protobuf-c structs protobuf-c's unpack would, in
 * @p arena (never malloc per field) under the max_arena budget; afterwards span and link ids
 * are checked (16/8 bytes, not all zero; parent span id empty or 8 bytes). Unknown fields
 * are kept (protobuf_c_message_pack re-emits them); key_strindex and string_value_strindex
 * are accepted and ignored.
 * @param[in] buf,len the body (already decompressed). len 0 is the empty request.
 * @param[in] lim the limits; NULL means the defaults.
 * @param[in] arena where the request is allocated.
 * @param[out] out the request, valid while @p arena lives; untouched on failure.
 * @param[out] err the reason on failure (may be NULL).
 * @return 0; TH_EDECODE (malformed: answer 400); TH_E2BIG (a limit, named with its config
 *         key in err->msg: answer 400 or 413); TH_ENOMEM (out of memory: answer 503, or
 *         err->arena_limit set: the request exceeds max_arena, answer 413).
 * @note On failure the arena may hold partial allocations; they go with the arena.
 */
int th_otlp_decode_pb(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                      th_arena_t *arena, th_otlp_request_t **out, struct th_otlp_error *err);

/**
 * Decode an OTLP/JSON ExportTraceServiceRequest into the same protobuf-c structs, allocated
 * in @p arena: hex ids (any case; "" is no id), enums as integers or their names, 64-bit
 * integers as strings or numbers, 32-bit integers as numbers or strings, doubles as numbers
 * or "NaN"/"Infinity"/"-Infinity", bytes as base64 (standard or URL-safe, padded or not),
 * `null` as unset, unknown fields skipped (within the nesting limit), lowerCamelCase and
 * snake_case keys, duplicate keys last-wins. The input must be valid RFC 8259 JSON in UTF-8
 * (a leading BOM is skipped).
 * Same checks, limits, results and ownership as th_otlp_decode_pb.
 */
int th_otlp_decode_json(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                        th_arena_t *arena, th_otlp_request_t **out, struct th_otlp_error *err);

/** A growable byte buffer (heap), for encoders. Zero-initialise it before first use. */
typedef struct th_buf {
    uint8_t *ptr; /**< the bytes (not NUL-terminated) */
    size_t len;   /**< bytes used */
    size_t cap;   /**< bytes allocated */
} th_buf_t;

/**
 * Make room for @p extra more bytes after len.
 * @return 0 or TH_ENOMEM (the buffer is unchanged).
 */
int th_buf_reserve(th_buf_t *b, size_t extra);

/**
 * Append @p n bytes.
 * @return 0 or TH_ENOMEM (the buffer is unchanged).
 */
int th_buf_append(th_buf_t *b, const void *p, size_t n);

/**
 * Append printf-formatted text (without its NUL; one spare byte after len is written).
 * @return 0, TH_ENOMEM, or TH_EINVAL for an encoding error in the format.
 */
int th_buf_printf(th_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Free the memory; the buffer is empty and reusable afterwards. */
void th_buf_free(th_buf_t *b);

/**
 * Encode a request as OTLP/JSON on one line, appended to @p out with no trailing newline:
 * lowerCamelCase keys, lowercase hex ids, enums as integers, 64-bit integers as decimal
 * strings, doubles as the shortest text that reads back to the same value (NaN and
 * infinities as strings), bytes as padded standard base64, default values and empty
 * repeated fields omitted, present-but-empty messages as `{}`, control characters as
 * \u00XX (invalid UTF-8 as U+FFFD). th_otlp_decode_json reads it back to the same message.
 * @param[in] req the request; NULL encodes as `{}`.
 * @return 0 or TH_ENOMEM (@p out keeps what it had, plus possibly a partial tail).
 */
int th_otlp_encode_json(const th_otlp_request_t *req, th_buf_t *out);

/**
 * Encode an ExportTraceServiceResponse, appended to @p out. With rejected == 0 and msg NULL
 * it is the empty message (0 bytes protobuf, `{}` JSON); otherwise partial_success carries
 * the count and the message, e.g. `{"partialSuccess":{"rejectedSpans":"1","errorMessage":"x"}}`.
 * @param[in] json true for OTLP/JSON, false for protobuf.
 * @param[in] msg the error message (UTF-8), or NULL.
 * @return 0 or TH_ENOMEM.
 */
int th_otlp_encode_response(bool json, int64_t rejected, const char *msg, th_buf_t *out);

/**
 * Encode a google.rpc.Status, appended to @p out: code, message and, when
 * retry_after_s > 0, a google.rpc.RetryInfo detail (type_url
 * `type.googleapis.com/google.rpc.RetryInfo`). JSON form:
 * `{"code":14,"message":"...","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo",
 * "retryDelay":"5s"}]}`. The protobuf form is what goes (base64) in grpc-status-details-bin.
 * @param[in] code a google.rpc.Code (0 is omitted, as proto3 omits defaults).
 * @param[in] msg the message (UTF-8), or NULL.
 * @return 0 or TH_ENOMEM.
 */
int th_otlp_encode_status(bool json, int code, const char *msg, int retry_after_s, th_buf_t *out);

/**
 * Write @p len bytes as lowercase hex into @p out.
 * @param[out] out room for 2*len chars plus a NUL.
 */
void th_hex_encode(const uint8_t *p, size_t len, char *out);

#endif

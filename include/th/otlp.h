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

/** Limits applied while decoding; each is a config key of the receiver. */
struct th_otlp_limits {
    uint32_t max_depth;      /**< nesting of AnyValue arrays/kvlists (default 32) */
    uint64_t max_spans;      /**< spans in one request (default 1,000,000) */
    uint64_t max_attributes; /**< attributes on one span, event, link, scope or resource */
    uint64_t max_string_len; /**< bytes in one string or bytes value (default 4 MiB) */
    uint64_t max_arena;      /**< bytes of decoded structs per request (0: 8x the body + 1 MiB) */
};

/** The defaults above. */
void th_otlp_limits_default(struct th_otlp_limits *l);

/** What went wrong in a decode, for the 400 body. */
struct th_otlp_error {
    char msg[256]; /**< a message a person can act on: what and where */
};

/**
 * Decode a protobuf ExportTraceServiceRequest.
 * Before unpacking, a non-recursive walk of the wire format rejects nesting past
 * max_depth, truncated fields and absurd counts, so protobuf-c never recurses deeply.
 * After unpacking, span and trace ids are checked (16/8 bytes, not all zero), strings are
 * checked for UTF-8 and NUL bytes.
 * @param[in] buf,len the body (already decompressed).
 * @param[in] arena where the request is allocated.
 * @param[out] out the request.
 * @param[out] err the reason on failure.
 * @return 0, TH_EDECODE (malformed: answer 400), TH_E2BIG (a limit: answer 400 or 413),
 *         TH_ENOMEM (memory, or the arena limit: answer 503 unless the arena limit).
 */
int th_otlp_decode_pb(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                      th_arena_t *arena, th_otlp_request_t **out, struct th_otlp_error *err);

/**
 * Decode an OTLP/JSON ExportTraceServiceRequest (hex ids, integer enums, 64-bit integers as
 * strings or numbers, base64 bytes, unknown fields ignored, lowerCamelCase and snake_case).
 * Same checks and results as th_otlp_decode_pb.
 */
int th_otlp_decode_json(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                        th_arena_t *arena, th_otlp_request_t **out, struct th_otlp_error *err);

/** A growable byte buffer (heap), for encoders. */
typedef struct th_buf {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} th_buf_t;

/** @return 0 or TH_ENOMEM. */
int th_buf_reserve(th_buf_t *b, size_t extra);
/** @return 0 or TH_ENOMEM. */
int th_buf_append(th_buf_t *b, const void *p, size_t n);
/** @return 0 or TH_ENOMEM. */
int th_buf_printf(th_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Free the memory; the buffer is empty and reusable afterwards. */
void th_buf_free(th_buf_t *b);

/**
 * Encode a request as OTLP/JSON (lowerCamelCase, hex ids, enums as integers, 64-bit
 * integers as strings, bytes as padded base64, defaults omitted) on one line, appended to
 * @p out with no trailing newline.
 * @return 0 or TH_ENOMEM.
 */
int th_otlp_encode_json(const th_otlp_request_t *req, th_buf_t *out);

/**
 * Encode an ExportTraceServiceResponse. With rejected == 0 and msg NULL it is the empty
 * message (0 bytes protobuf, "{}" JSON).
 * @param[in] json true for OTLP/JSON, false for protobuf.
 * @return 0 or TH_ENOMEM.
 */
int th_otlp_encode_response(bool json, int64_t rejected, const char *msg, th_buf_t *out);

/**
 * Encode a google.rpc.Status (code, message and, when retry_after_s > 0, a RetryInfo detail).
 * @return 0 or TH_ENOMEM.
 */
int th_otlp_encode_status(bool json, int code, const char *msg, int retry_after_s, th_buf_t *out);

/** Write @p len bytes as lowercase hex into @p out (2*len chars plus a NUL). */
void th_hex_encode(const uint8_t *p, size_t len, char *out);

#endif

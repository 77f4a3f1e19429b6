/*
 * gRPC over HTTP/2, the parts both ends of OTLP/gRPC share: the length-prefixed message
 * framing, message compression, status codes and their trailers, google.rpc.RetryInfo in
 * grpc-status-details-bin, and grpc-timeout. The HTTP/2 layer itself is nghttp2's; this
 * module never touches a socket, so the receiver, the exporter and the fuzzers share it.
 */
#ifndef TH_GRPC_H
#define TH_GRPC_H

#include "th/arena.h"
#include "th/common.h"
#include "th/otlp.h"

/** The OTLP trace Export method's :path. */
#define TH_GRPC_TRACE_EXPORT_PATH "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

/** Bytes of the Length-Prefixed-Message header: compressed flag + 4-byte big-endian length. */
#define TH_GRPC_PREFIX_LEN 5

/** gRPC status codes (google.rpc.Code). */
enum th_grpc_status {
    TH_GRPC_OK = 0,
    TH_GRPC_CANCELLED = 1,
    TH_GRPC_UNKNOWN = 2,
    TH_GRPC_INVALID_ARGUMENT = 3,
    TH_GRPC_DEADLINE_EXCEEDED = 4,
    TH_GRPC_NOT_FOUND = 5,
    TH_GRPC_ALREADY_EXISTS = 6,
    TH_GRPC_PERMISSION_DENIED = 7,
    TH_GRPC_RESOURCE_EXHAUSTED = 8,
    TH_GRPC_FAILED_PRECONDITION = 9,
    TH_GRPC_ABORTED = 10,
    TH_GRPC_OUT_OF_RANGE = 11,
    TH_GRPC_UNIMPLEMENTED = 12,
    TH_GRPC_INTERNAL = 13,
    TH_GRPC_UNAVAILABLE = 14,
    TH_GRPC_DATA_LOSS = 15,
    TH_GRPC_UNAUTHENTICATED = 16,
};

/** @return the code's name ("UNAVAILABLE"), or "UNKNOWN" for a number out of range. */
const char *th_grpc_status_name(int code);

/**
 * Whether an OTLP client retries a failed Export with this status (the OTLP specification's
 * table): CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS
 * always; RESOURCE_EXHAUSTED only when the status carried RetryInfo.
 */
bool th_grpc_status_retryable(int code, bool has_retry_info);

/**
 * Parse a grpc-timeout value: at most 8 ASCII digits and one unit of H, M, S, m, u, n.
 * @return 0 with *ns set (saturating at INT64_MAX), or TH_EINVAL.
 */
int th_grpc_timeout_parse(const char *s, size_t len, int64_t *ns);

/** Write a grpc-timeout value for @p ns into @p buf (at least 16 bytes); returns its length. */
size_t th_grpc_timeout_format(int64_t ns, char *buf);

/**
 * Percent-encode a grpc-message (bytes outside 0x20..0x7E and '%' become %XX).
 * @return the encoded text in @p arena, or NULL when memory is short.
 */
char *th_grpc_message_encode(th_arena_t *arena, const char *msg);

/**
 * Decode a percent-encoded grpc-message; invalid escapes are kept as they are.
 * @return the decoded text in @p arena, or NULL when memory is short.
 */
char *th_grpc_message_decode(th_arena_t *arena, const char *s, size_t len);

/**
 * Build the value of grpc-status-details-bin: unpadded base64 of a google.rpc.Status with
 * @p code and @p msg, and, when @p retry_delay_ns >= 0, one Any holding a
 * google.rpc.RetryInfo with that delay.
 * @return the text in @p arena, or NULL when memory is short.
 */
char *th_grpc_status_details_encode(th_arena_t *arena, int code, const char *msg,
                                    int64_t retry_delay_ns);

/**
 * Read a grpc-status-details-bin value (base64, padded or not) and find a RetryInfo in it.
 * @param[out] retry_delay_ns the delay, or -1 when the status holds no RetryInfo.
 * @return 0, or TH_EDECODE when the value is not a valid base64 google.rpc.Status.
 */
int th_grpc_status_details_retry(const char *s, size_t len, int64_t *retry_delay_ns);

/**
 * A reassembler for one stream's Length-Prefixed-Messages: DATA frames arrive in any split.
 * Unary calls take exactly one message; a second one is an error the caller reports.
 */
struct th_grpc_reader {
    uint8_t hdr[TH_GRPC_PREFIX_LEN];
    size_t hdr_len;   /**< bytes of hdr received so far */
    uint8_t *msg;     /**< the message being received (th_malloc), or NULL */
    size_t msg_len;   /**< its length from the prefix */
    size_t msg_got;   /**< bytes received */
    bool compressed;  /**< the prefix's flag */
    size_t messages;  /**< complete messages seen */
    uint64_t max_len; /**< refuse a prefix announcing more than this (before allocating) */
};

/** Start a reader refusing messages longer than @p max_len bytes. */
void th_grpc_reader_init(struct th_grpc_reader *r, uint64_t max_len);

/**
 * Feed DATA bytes.
 * @return 0 (need more, or a message completed: check r->messages), TH_E2BIG (the announced
 *         length is over max_len: answer RESOURCE_EXHAUSTED), TH_EINVAL (a second message on a
 *         unary call, or a flag other than 0/1), TH_ENOMEM.
 */
int th_grpc_reader_feed(struct th_grpc_reader *r, const uint8_t *p, size_t n);

/**
 * Take the completed message (ownership passes: th_free it).
 * @param[out] len its length; @param[out] compressed its flag.
 * @return the bytes, or NULL when no message is complete.
 */
uint8_t *th_grpc_reader_take(struct th_grpc_reader *r, size_t *len, bool *compressed);

/** Free what the reader holds. */
void th_grpc_reader_free(struct th_grpc_reader *r);

/**
 * Decompress a message sent with grpc-encoding @p encoding ("gzip", "deflate", "zstd";
 * "identity" is a copy), refusing output above @p max_out bytes. The codecs are
 * th_decompress() (include/th/decompress.h), the OTLP/HTTP receiver's, with its limits.
 * @param[out] out,out_len the result (th_malloc; the caller frees).
 * @return 0, TH_EUNSUPPORTED (unknown encoding: UNIMPLEMENTED with grpc-accept-encoding),
 *         TH_E2BIG (over max_out, or a zstd window over the memory allowed:
 *         RESOURCE_EXHAUSTED), TH_EDECODE (corrupt: INTERNAL), TH_ENOMEM.
 */
int th_grpc_decompress(const char *encoding, const uint8_t *in, size_t in_len, uint64_t max_out,
                       uint8_t **out, size_t *out_len);

/**
 * Frame one message: the 5-byte prefix followed by @p msg, compressed with @p encoding
 * ("gzip", "zstd", or NULL/"identity" for none).
 * @param[out] out,out_len the frame (th_malloc; the caller frees).
 * @return 0, TH_EUNSUPPORTED, TH_ENOMEM.
 */
int th_grpc_frame(const char *encoding, const uint8_t *msg, size_t len, uint8_t **out,
                  size_t *out_len);

#endif

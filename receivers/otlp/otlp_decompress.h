/*
 * Request body decompression for the OTLP/HTTP receiver: the Content-Encoding values the
 * receiver understands (gzip, deflate, zlib, zstd, identity) and a decompressor whose
 * output is capped, so a small hostile body (a "gzip bomb") can never grow memory past the
 * configured max_request_body_size.
 */
#ifndef TH_OTLP_DECOMPRESS_H
#define TH_OTLP_DECOMPRESS_H

#include "th/common.h"

/** The Content-Encoding values the receiver knows. Values are bits, for allow-lists. */
enum th_otlp_encoding {
    TH_OTLP_ENC_IDENTITY = 0x1, /**< no header, "identity", "none" or "" */
    TH_OTLP_ENC_GZIP = 0x2,     /**< "gzip" and "x-gzip" (RFC 1952; several members allowed) */
    TH_OTLP_ENC_DEFLATE = 0x4,  /**< "deflate": zlib (RFC 1950), raw deflate as a fallback */
    TH_OTLP_ENC_ZLIB = 0x8,     /**< "zlib": as deflate (the Collector's name) */
    TH_OTLP_ENC_ZSTD = 0x10,    /**< "zstd" (RFC 8878; several frames allowed) */
};

/** Every encoding the receiver can decode. */
#define TH_OTLP_ENC_ALL                                                                            \
    (TH_OTLP_ENC_IDENTITY | TH_OTLP_ENC_GZIP | TH_OTLP_ENC_DEFLATE | TH_OTLP_ENC_ZLIB |            \
     TH_OTLP_ENC_ZSTD)

/**
 * Parse a Content-Encoding value (case-insensitive, surrounding spaces ignored).
 * @param[in] s,len the header value; len 0 means identity.
 * @param[out] out the encoding.
 * @return 0; TH_EUNSUPPORTED for a name the Collector knows but Tracehouse cannot decode
 *         (snappy, x-snappy-framed, lz4); TH_EINVAL for anything else, including lists of
 *         several codings ("gzip, zstd").
 */
int th_otlp_encoding_parse(const char *s, size_t len, enum th_otlp_encoding *out);

/** @return the canonical name of @p enc ("gzip", "identity", ...). */
const char *th_otlp_encoding_name(enum th_otlp_encoding enc);

/**
 * Decompress a request body.
 * @param[in] enc the body's encoding; must not be TH_OTLP_ENC_IDENTITY (nothing to do).
 * @param[in] in,in_len the compressed body.
 * @param[in] max_out the most bytes the output may have (the decompressed-size cap).
 * @param[out] out the decompressed bytes, allocated with th_malloc (never NULL on success,
 *             even for an empty result).
 * @param[out] out_len their length (at most @p max_out).
 * @param[out] err a NUL-terminated reason on failure, for the 400/413 body; may be NULL.
 * @param[in] errlen size of @p err.
 * @return 0; TH_E2BIG when the output would pass @p max_out (answer 413); TH_EDECODE for
 *         corrupt or truncated input (answer 400); TH_ENOMEM; TH_EINVAL for a bad @p enc.
 * @note On success the caller owns *out and frees it with th_free(). On failure nothing
 *       is allocated. Memory held while decoding is bounded by max_out plus the codec's
 *       own state (zstd's window is capped near max_out).
 */
int th_otlp_decompress(enum th_otlp_encoding enc, const uint8_t *in, size_t in_len, size_t max_out,
                       uint8_t **out, size_t *out_len, char *err, size_t errlen);

#endif

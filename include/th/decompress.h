/*
 * Capped decompression for input from the network (OTLP/HTTP bodies, gRPC messages and
 * responses): gzip, zlib/deflate and zstd, with an output cap enforced while decoding so a
 * small hostile input (a "gzip bomb") never grows memory past the cap.
 */
#ifndef TH_DECOMPRESS_H
#define TH_DECOMPRESS_H

#include "th/common.h"

/** The compressed formats th_decompress() reads. */
enum th_codec {
    TH_CODEC_NONE = 0, /**< not a compressed format: th_decompress() refuses it */
    TH_CODEC_GZIP,     /**< gzip (RFC 1952); several members back to back allowed */
    TH_CODEC_DEFLATE,  /**< zlib (RFC 1950), raw deflate (RFC 1951) as a fallback */
    TH_CODEC_ZSTD,     /**< zstd (RFC 8878); several frames allowed */
};

/**
 * Decompress @p in, refusing output past @p max_out bytes.
 * @param[in] codec the format.
 * @param[in] in,in_len the compressed bytes (empty input is truncated, hence TH_EDECODE).
 * @param[in] max_out the most bytes the output may have.
 * @param[out] out the decompressed bytes, allocated with th_malloc (never NULL on success,
 *             even for an empty result).
 * @param[out] out_len their length (at most @p max_out).
 * @param[out] err a NUL-terminated reason on failure, worded for an OTLP/HTTP answer body
 *             (the cap is called max_request_body_size); may be NULL.
 * @param[in] errlen size of @p err.
 * @return 0; TH_E2BIG when the output would pass @p max_out, or a zstd frame asks for a
 *         window larger than the memory allowed (at least 8 MiB, more up to 128 MiB when
 *         @p max_out is larger); TH_EDECODE for corrupt or truncated input (for gzip,
 *         anything after the last member; for zlib, trailing bytes are ignored); TH_ENOMEM;
 *         TH_EINVAL for TH_CODEC_NONE or an unknown @p codec.
 * @note On success the caller owns *out and frees it with th_free(); on failure nothing is
 *       allocated and *out is untouched. Memory held while decoding is bounded by @p max_out
 *       plus the codec's own state. zlib's allocations go through th_malloc.
 */
int th_decompress(enum th_codec codec, const uint8_t *in, size_t in_len, size_t max_out,
                  uint8_t **out, size_t *out_len, char *err, size_t errlen);

#endif

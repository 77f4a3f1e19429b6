/*
 * Base64 (RFC 4648) for the places that meet it: gRPC -bin metadata, bytes in OTLP/JSON and
 * in the store's JSON, trace ids in Jaeger query parameters. One encoder (standard
 * alphabet, padded or not) and one lenient decoder (either alphabet, padding optional).
 */
#ifndef TH_BASE64_H
#define TH_BASE64_H

#include "th/common.h"

/**
 * How many characters th_base64_encode() writes for @p len bytes.
 * @param[in] len the input length.
 * @param[in] pad true: padded with '=' to a multiple of 4; false: unpadded.
 * @return the length, without any terminator.
 */
size_t th_base64_encoded_len(size_t len, bool pad);

/**
 * Encode @p len bytes with the standard alphabet ("+/").
 * @param[in] in,len the bytes.
 * @param[out] out room for th_base64_encoded_len(len, pad) characters; no NUL is written.
 * @param[in] pad whether to pad with '='.
 * @return the number of characters written.
 */
size_t th_base64_encode(const uint8_t *in, size_t len, char *out, bool pad);

/**
 * The value of one base64 character in either alphabet (standard "+/" or URL-safe "-_").
 * @param[in] c the character (as an unsigned char value).
 * @return 0..63, or -1 when @p c is not a base64 character ('=' included).
 */
int th_base64_value(int c);

/** The most bytes th_base64_decode() writes for @p len characters. */
#define TH_BASE64_DECODED_MAX(len) ((len) / 4 * 3 + 2)

/**
 * Decode base64 in either alphabet, padded or not: trailing '=' are dropped, then every
 * character must be a base64 one. Bits left over in the last character are ignored.
 * @param[in] s,len the text.
 * @param[out] out room for TH_BASE64_DECODED_MAX(len) bytes.
 * @param[out] out_len the bytes written.
 * @return 0, or TH_EINVAL (a character outside the alphabets, or a length that leaves one
 *         lone character in the last group). On failure @p out may hold partial output.
 */
int th_base64_decode(const char *s, size_t len, uint8_t *out, size_t *out_len);

#endif

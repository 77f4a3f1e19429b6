/*
 * The Content-Encoding names of the OTLP/HTTP receiver, and its body decompression: a thin
 * layer over the capped decompressor of collector/decompress.c (shared with gRPC).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "th/decompress.h"
#include "receivers/otlp/otlp_decompress.h"

struct enc_name {
    const char *name;
    enum th_otlp_encoding enc;
};

static const struct enc_name enc_names[] = {
    {"identity", TH_OTLP_ENC_IDENTITY}, {"none", TH_OTLP_ENC_IDENTITY},
    {"gzip", TH_OTLP_ENC_GZIP},         {"x-gzip", TH_OTLP_ENC_GZIP},
    {"deflate", TH_OTLP_ENC_DEFLATE},   {"zlib", TH_OTLP_ENC_ZLIB},
    {"zstd", TH_OTLP_ENC_ZSTD},
};

/* Names the Collector accepts that Tracehouse does not decode (yet). */
static const char *const unsupported_names[] = {"snappy", "x-snappy-framed", "lz4"};

int th_otlp_encoding_parse(const char *s, size_t len, enum th_otlp_encoding *out)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
        len--;
    }
    if (len == 0) {
        *out = TH_OTLP_ENC_IDENTITY;
        return 0;
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(enc_names); i++) {
        if (strlen(enc_names[i].name) == len && !strncasecmp(enc_names[i].name, s, len)) {
            *out = enc_names[i].enc;
            return 0;
        }
    }
    for (size_t i = 0; i < TH_ARRAY_SIZE(unsupported_names); i++) {
        if (strlen(unsupported_names[i]) == len && !strncasecmp(unsupported_names[i], s, len)) {
            return TH_EUNSUPPORTED;
        }
    }
    return TH_EINVAL;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen > 0) {
        snprintf(err, errlen, "%s", msg);
    }
}

const char *th_otlp_encoding_name(enum th_otlp_encoding enc)
{
    switch (enc) {
    case TH_OTLP_ENC_IDENTITY:
        return "identity";
    case TH_OTLP_ENC_GZIP:
        return "gzip";
    case TH_OTLP_ENC_DEFLATE:
        return "deflate";
    case TH_OTLP_ENC_ZLIB:
        return "zlib";
    case TH_OTLP_ENC_ZSTD:
        return "zstd";
    }
    return "unknown";
}

int th_otlp_decompress(enum th_otlp_encoding enc, const uint8_t *in, size_t in_len, size_t max_out,
                       uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    if (!(enc & (TH_OTLP_ENC_ALL & ~TH_OTLP_ENC_IDENTITY))) {
        set_err(err, errlen, "not a compressed encoding");
        return TH_EINVAL;
    }
    if (in_len == 0) {
        if (err && errlen > 0) {
            snprintf(err, errlen, "empty body is not valid %s data", th_otlp_encoding_name(enc));
        }
        return TH_EDECODE;
    }
    /* A value that is not one encoding falls to th_decompress's refusal. */
    enum th_codec codec = TH_CODEC_NONE;
    switch (enc) {
    case TH_OTLP_ENC_GZIP:
        codec = TH_CODEC_GZIP;
        break;
    case TH_OTLP_ENC_DEFLATE:
    case TH_OTLP_ENC_ZLIB:
        codec = TH_CODEC_DEFLATE;
        break;
    case TH_OTLP_ENC_ZSTD:
        codec = TH_CODEC_ZSTD;
        break;
    default:
        break;
    }
    return th_decompress(codec, in, in_len, max_out, out, out_len, err, errlen);
}

/*
 * A streaming JSON writer for the Jaeger query API. Its output is what Go's encoding/json
 * produces for the same values, because Jaeger's clients (and people diffing against a real
 * Jaeger) see those bytes: HTML-safe escaping (<, >, & as \u003c...), U+2028/U+2029 escaped,
 * invalid UTF-8 replaced by U+FFFD, floats in Go's shortest form, and json.MarshalIndent's
 * layout when indenting.
 *
 * Errors are sticky: the first failure (out of memory, nesting too deep, a key where a value
 * belongs) is kept, every later call does nothing, and th_jaeger_json_finish() reports it.
 * So a caller writes a whole document and checks once.
 */
#ifndef TH_JAEGER_JSON_WRITER_H
#define TH_JAEGER_JSON_WRITER_H

#include "th/common.h"
#include "th/otlp.h"

/** The deepest nesting the writer tracks. */
#define TH_JAEGER_JSON_MAX_DEPTH 64

typedef struct th_jaeger_json {
    th_buf_t *out;  /**< where the text goes (appended) */
    int indent;     /**< spaces per level; 0 writes compact JSON */
    size_t max_len; /**< the buffer may not grow past this many bytes (TH_E2BIG); 0 = no cap */
    int depth;      /**< open containers */
    int err;        /**< 0 or the first error (sticky) */
    bool after_key; /**< a key was written and its value is due */
    /** per level: how many members or elements were written so far */
    uint32_t count[TH_JAEGER_JSON_MAX_DEPTH];
} th_jaeger_json_t;

/**
 * Start writing into @p out.
 * @param[out] w the writer.
 * @param[in] out the buffer, appended to; it stays the caller's.
 * @param[in] indent spaces per level (Jaeger's prettyPrint uses 4), or 0 for compact output.
 */
void th_jaeger_json_init(th_jaeger_json_t *w, th_buf_t *out, int indent);

/**
 * Cap the output: once the buffer would hold more than @p max_len bytes the writer stops with
 * TH_E2BIG (so an answer too big to send is refused before it eats the memory).
 */
void th_jaeger_json_set_limit(th_jaeger_json_t *w, size_t max_len);

/** Open an object. */
void th_jaeger_json_obj_begin(th_jaeger_json_t *w);
/** Close an object. */
void th_jaeger_json_obj_end(th_jaeger_json_t *w);
/** Open an array. */
void th_jaeger_json_arr_begin(th_jaeger_json_t *w);
/** Close an array. */
void th_jaeger_json_arr_end(th_jaeger_json_t *w);

/** Write an object key of @p len bytes (escaped like a string). */
void th_jaeger_json_key(th_jaeger_json_t *w, const char *k, size_t len);
/** Write a NUL-terminated object key. */
void th_jaeger_json_keyz(th_jaeger_json_t *w, const char *k);

/** Write a string value of @p len bytes (may contain NUL and invalid UTF-8). */
void th_jaeger_json_str(th_jaeger_json_t *w, const char *s, size_t len);
/** Write a NUL-terminated string value; NULL writes "". */
void th_jaeger_json_strz(th_jaeger_json_t *w, const char *s);
/** Write a signed integer. */
void th_jaeger_json_int(th_jaeger_json_t *w, int64_t v);
/** Write an unsigned integer. */
void th_jaeger_json_uint(th_jaeger_json_t *w, uint64_t v);
/** Write a double as Go does; NaN and infinities, which JSON cannot hold, as the strings
 *  "NaN", "+Inf" and "-Inf". */
void th_jaeger_json_double(th_jaeger_json_t *w, double v);
/** Write true or false. */
void th_jaeger_json_bool(th_jaeger_json_t *w, bool v);
/** Write null. */
void th_jaeger_json_null(th_jaeger_json_t *w);
/** Write bytes as a string of standard base64 with padding (Go's []byte encoding). */
void th_jaeger_json_base64(th_jaeger_json_t *w, const uint8_t *p, size_t len);
/**
 * Write an already encoded JSON value as is (it is not re-indented).
 * @param[in] json valid JSON text, e.g. from th_otlp_encode_json().
 */
void th_jaeger_json_raw(th_jaeger_json_t *w, const void *json, size_t len);

/**
 * End writing.
 * @return 0; TH_ENOMEM; TH_EINVAL when the document is not complete or calls were out of
 *         order (a bug in the caller); TH_E2BIG when nesting passed TH_JAEGER_JSON_MAX_DEPTH
 *         or the output passed the limit.
 */
int th_jaeger_json_finish(th_jaeger_json_t *w);

/**
 * Append @p s escaped as Go's encoding/json escapes strings, without the quotes.
 * @return 0 or TH_ENOMEM.
 */
int th_jaeger_json_escape(th_buf_t *out, const char *s, size_t len);

/**
 * Format a double as Go's encoding/json does: the shortest text that reads back to the same
 * value, in 'f' form, or in 'e' form (exponent without leading zero) when |v| < 1e-6 or
 * |v| >= 1e21.
 * @param[out] out room for 32 chars plus NUL.
 * @return the length written; 0 for NaN and infinities (nothing is written).
 */
size_t th_jaeger_format_double(double v, char *out);

#endif

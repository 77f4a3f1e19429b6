/*
 * A small pull-style JSON tokenizer (RFC 8259). The caller asks for one token at a time;
 * tokens point into the input (zero copy), and strings are validated as they are scanned
 * (UTF-8, escapes, \u surrogate pairs), so a string token can be unescaped later without
 * any further checks. Nesting is limited explicitly and tracked without recursion, so no
 * input can exhaust the stack. Used by the OTLP/JSON decoder; not tied to OTLP.
 */
#ifndef TH_JSON_READER_H
#define TH_JSON_READER_H

#include "th/common.h"

/** The deepest nesting a reader can track; larger limits are capped to it. */
#define TH_JSON_MAX_DEPTH 4096

enum th_json_type {
    TH_JSON_NONE = 0,  /**< no token (before the first call, or after an error) */
    TH_JSON_OBJ_BEGIN, /**< `{` */
    TH_JSON_OBJ_END,   /**< `}` */
    TH_JSON_ARR_BEGIN, /**< `[` */
    TH_JSON_ARR_END,   /**< `]` */
    TH_JSON_KEY,       /**< an object key (the `:` after it is consumed) */
    TH_JSON_STRING,    /**< a string value */
    TH_JSON_NUMBER,    /**< a number, its text checked against the RFC 8259 grammar */
    TH_JSON_TRUE,
    TH_JSON_FALSE,
    TH_JSON_NULL,
    TH_JSON_END, /**< the end of the input, after the one top-level value */
};

/** A token: a view into the input. */
typedef struct th_json_tok {
    enum th_json_type type;
    const uint8_t *ptr; /**< KEY/STRING: the bytes between the quotes, escapes not decoded;
                             NUMBER: its text; otherwise the token's first byte */
    size_t len;         /**< length of ptr */
    bool escaped;       /**< KEY/STRING: contains backslash escapes (see th_json_unescape) */
} th_json_tok_t;

/** The reader's state. Treat as opaque; it lives on the caller's stack. */
typedef struct th_json_reader {
    const uint8_t *buf;
    const uint8_t *p;
    const uint8_t *end;
    uint32_t depth;
    uint32_t max_depth;
    uint8_t state;
    int err;                                /**< 0, or the error of the failed call (sticky) */
    const char *errmsg;                     /**< what was wrong, when err != 0 */
    size_t erroff;                          /**< byte offset of the error in the input */
    uint64_t kinds[TH_JSON_MAX_DEPTH / 64]; /**< per level: 1 = object, 0 = array */
} th_json_reader_t;

/**
 * Start reading @p len bytes of JSON. A leading UTF-8 byte order mark is skipped.
 * @param[out] r the reader to initialise.
 * @param[in] buf the input; it must outlive the reader and every token taken from it.
 * @param[in] max_depth the deepest nesting of arrays and objects allowed (1 allows `{}` or
 *            `[]` with no container inside); capped at TH_JSON_MAX_DEPTH.
 */
void th_json_reader_init(th_json_reader_t *r, const uint8_t *buf, size_t len, uint32_t max_depth);

/**
 * Read the next token.
 * @param[out] t the token.
 * @return 0; TH_EDECODE for invalid JSON (syntax, bad escape, invalid UTF-8, control
 *         characters in a string, trailing garbage); TH_E2BIG when nesting exceeds
 *         max_depth. Errors are sticky: every later call returns the same error.
 */
int th_json_next(th_json_reader_t *r, th_json_tok_t *t);

/**
 * Skip a value whose first token @p first was just read: for `{` or `[` read up to and
 * including the matching close; for a scalar do nothing.
 * @return 0, or the error of th_json_next.
 */
int th_json_skip(th_json_reader_t *r, const th_json_tok_t *first);

/** @return the current nesting depth (0 at top level). */
static inline uint32_t th_json_depth(const th_json_reader_t *r)
{
    return r->depth;
}

/**
 * Decode the escapes of a KEY or STRING token.
 * @param[in] t a token returned by th_json_next (validated, so this cannot fail).
 * @param[out] out room for t->len bytes (decoding never grows a string).
 * @return the number of bytes written (UTF-8, possibly containing NUL from \u0000).
 */
size_t th_json_unescape(const th_json_tok_t *t, uint8_t *out);

#endif

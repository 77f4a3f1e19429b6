/*
 * Internal: the W3C tracestate and its OpenTelemetry `ot` entry, parsed and written back as
 * the Collector's pkg/sampling does (W3CTraceState, OTelTraceState), for the probabilistic
 * sampler. Parsed entries point into the input string, which must outlive the struct.
 */
#ifndef TH_PROCESSORS_PROBABILISTIC_SAMPLER_TRACESTATE_H
#define TH_PROCESSORS_PROBABILISTIC_SAMPLER_TRACESTATE_H

#include "th/common.h"

/** 2^56: thresholds and randomness are 56-bit; a threshold of 2^56 never samples. */
#define TH__PS_MAX_ADJUSTED ((uint64_t)1 << 56)

/** W3C allows 32 entries; the Collector's scanner refuses the 32nd, and so does this. */
#define TH__PS_MAX_MEMBERS 32

struct th__ps_kv {
    const char *key, *val;
    size_t klen, vlen;
};

struct th__ps_tracestate {
    /* The `ot` entry. */
    bool has_rv;
    uint64_t rv; /**< randomness, < 2^56 */
    char rv_text[15];
    bool has_th;
    uint64_t th; /**< threshold, <= 2^56 */
    char th_text[15];
    struct th__ps_kv ot_extra[TH__PS_MAX_MEMBERS * 4]; /**< other ot sub-keys, in order */
    size_t n_ot_extra;
    /* Every other vendor entry, in order. */
    struct th__ps_kv members[TH__PS_MAX_MEMBERS];
    size_t n_members;
};

/**
 * Parse a tracestate: the W3C syntax (keys, values, optional whitespace around commas, empty
 * members), at most 1024 bytes and fewer than 32 members; the `ot` value's syntax
 * (`key:value` pairs separated by `;`, at most 256 bytes); `rv` exactly 14 hex digits; `th`
 * 1 to 14 hex digits.
 * @param[in] s,len the text ("" is valid and empty).
 * @return 0, or TH_EINVAL when any of that fails (the struct is then not to be used).
 */
int th__ps_tracestate_parse(const char *s, size_t len, struct th__ps_tracestate *out);

/** Set the randomness (`rv`, written as 14 lowercase hex digits). */
void th__ps_tracestate_set_rv(struct th__ps_tracestate *ts, uint64_t rv);

/**
 * Serialize as the Collector does: `ot=` first when it has any value (rv, th, then the other
 * sub-keys), then the other members, comma-separated, without whitespace.
 * @param[out] out room for @p cap bytes (2 KiB always suffices for parsed input).
 * @return the length (NUL-terminated), or 0 when it does not fit.
 */
size_t th__ps_tracestate_write(const struct th__ps_tracestate *ts, char *out, size_t cap);

#endif

/*
 * The probabilistic sampler's decisions, as the Collector's processor makes them
 * (sampler_mode.go, tracesprocessor.go, pkg/sampling): randomness from the trace id (hashed
 * in hash_seed mode, its low 56 bits otherwise) or the tracestate's `rv`, a threshold from
 * the mode, sampling.priority on top, keep when threshold <= randomness; then the kept
 * span's tracestate records the threshold. And the batch walk that removes dropped spans.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "processors/probabilistic_sampler/probabilistic_sampler.h"
#include "processors/probabilistic_sampler/probabilistic_sampler_tracestate.h"

#define ALWAYS         0u                  /* threshold that keeps everything */
#define NEVER          TH__PS_MAX_ADJUSTED /* threshold that keeps nothing */
#define ALL_RANDOMNESS (TH__PS_MAX_ADJUSTED - 1)

struct th_probabilistic_sampler {
    enum th_probabilistic_sampler_mode mode;
    bool never; /* 0%: every span is dropped unless sampling.priority keeps it */
    bool fail_closed;
    uint32_t seed;
    uint64_t threshold; /* hash_seed and equalizing */
    double ratio;       /* proportional */
    int precision;
    struct th_probabilistic_sampler_stats stats;
};

uint32_t th__probabilistic_sampler_fnv(uint32_t seed, const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 4; i++) {
        h ^= (seed >> (8 * i)) & 0xffu;
        h *= 16777619u;
    }
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

int th__probabilistic_sampler_threshold(double prob, int precision, uint64_t *out)
{
    if (precision == 0) {
        precision = 14;
    }
    if (!(prob >= 0x1p-56 && prob <= 1)) {
        return TH_EINVAL;
    }
    if (prob == 1) {
        *out = ALWAYS;
        return 0;
    }
    /* More digits near 0 and 1, where leading 0s or fs would eat the precision: one per
     * factor of 16 (Go's integer division truncates toward zero, as C's does). */
    int ef, er;
    frexp(prob, &ef);
    frexp(1 - prob, &er);
    int p = TH_MAX(precision + ef / -4, precision + er / -4);
    p = TH_MIN(14, p);
    uint64_t scaled = (uint64_t)round(prob * (double)TH__PS_MAX_ADJUSTED);
    uint64_t th = TH__PS_MAX_ADJUSTED - scaled;
    int shift = 4 * (14 - p);
    if (shift != 0) {
        th += (uint64_t)1 << (shift - 1);
        th >>= shift;
        th <<= shift;
    }
    *out = th;
    return 0;
}

void th__probabilistic_sampler_tvalue(uint64_t threshold, char *out)
{
    if (threshold == ALWAYS) {
        strcpy(out, "0");
        return;
    }
    if (threshold >= NEVER) {
        out[0] = '\0';
        return;
    }
    snprintf(out, 15, "%014llx", (unsigned long long)threshold);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '0') {
        out[--n] = '\0';
    }
}

int th_probabilistic_sampler_create(const struct th_probabilistic_sampler_settings *s,
                                    th_probabilistic_sampler_t **out, char *err, size_t errlen)
{
    int ret = th_probabilistic_sampler_settings_check(s, err, errlen);
    if (ret != 0) {
        return ret;
    }
    th_probabilistic_sampler_t *ps = th_calloc(1, sizeof(*ps));
    if (!ps) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    ps->mode = s->mode;
    ps->fail_closed = s->fail_closed;
    ps->seed = s->hash_seed;
    ps->precision = s->sampling_precision;
    /* makeSampler: above 100% is 100%; 0% never samples; tiny ratios round up to 2^-56. */
    float pct = s->sampling_percentage > 100.0f ? 100.0f : s->sampling_percentage;
    if (pct == 0) {
        ps->never = true;
    } else {
        double ratio = (double)pct / 100.0;
        if (ratio < 0x1p-56) {
            ratio = 0x1p-56;
        }
        ps->ratio = ratio;
        switch (s->mode) {
        case TH_PSAMPLER_EQUALIZING:
            th__probabilistic_sampler_threshold(ratio, ps->precision, &ps->threshold);
            break;
        case TH_PSAMPLER_PROPORTIONAL:
            break;
        default: {
            /* The legacy arithmetic, kept for identical decisions: a float32 product,
             * truncated. (163.84f is the float32 the Go constant converts to.) */
            float scaled_f = pct * 163.84f;
            uint32_t scaled = (uint32_t)scaled_f;
            if (scaled == 0) {
                ps->never = true;
            }
            /* Accept when hashed < scaled, i.e. reject the top 16384 - scaled buckets. */
            ps->threshold = (uint64_t)(16384u - TH_MIN(scaled, 16384u)) << 42;
            break;
        }
        }
    }
    *out = ps;
    return 0;
}

void th_probabilistic_sampler_destroy(th_probabilistic_sampler_t *ps)
{
    th_free(ps);
}

struct th_probabilistic_sampler_stats
th_probabilistic_sampler_get_stats(const th_probabilistic_sampler_t *ps)
{
    return ps->stats;
}

/* randomnessFromBytes: the 32-bit FNV hash laid out as a 56-bit randomness whose top 14 bits
 * decide exactly as "hashed < scaled" does against the threshold above. */
static uint64_t hash_randomness(uint32_t seed, const uint8_t *id, size_t len)
{
    uint32_t h32 = th__probabilistic_sampler_fnv(seed, id, len);
    uint64_t hashed = h32 & 0x3fffu;
    uint64_t rprime14 = 0x3fffu - hashed;
    uint64_t unused18 = h32 >> 14;
    uint64_t mixed28 = unused18 ^ (unused18 << 10);
    return (rprime14 << 42) | (mixed28 << 14) | hashed;
}

static bool trace_id_empty(const th_otlp_span_t *span)
{
    if (span->trace_id.len != 16) {
        return true;
    }
    for (size_t i = 0; i < 16; i++) {
        if (span->trace_id.data[i]) {
            return false;
        }
    }
    return true;
}

/* W3C trace-context level 2: the low 56 bits of the trace id are random. */
static uint64_t trace_id_randomness(const th_otlp_span_t *span)
{
    uint64_t v = 0;
    for (size_t i = 9; i < 16; i++) {
        v = (v << 8) | span->trace_id.data[i];
    }
    return v;
}

enum priority { DEFER, MUST_KEEP, MUST_DROP };

/* parseSpanSamplingPriority: an int, a double, or a string that parses as a float; 0 drops,
 * above 0 keeps, anything else defers. */
static enum priority span_priority(const th_otlp_span_t *span)
{
    for (size_t i = 0; i < span->n_attributes; i++) {
        const th_otlp_kv_t *kv = span->attributes[i];
        if (!kv->key || strcmp(kv->key, "sampling.priority") != 0) {
            continue;
        }
        const th_otlp_any_t *v = kv->value;
        double d;
        if (!v) {
            return DEFER;
        }
        switch (v->value_case) {
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
            d = (double)v->int_value;
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
            d = v->double_value;
            break;
        case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE: {
            const char *s = v->string_value ? v->string_value : "";
            char *end;
            /* strconv.ParseFloat takes no surrounding whitespace. */
            if (!*s || s[0] == ' ' || s[0] == '\t' || s[0] == '\n') {
                return DEFER;
            }
            d = strtod(s, &end);
            if (*end || (isinf(d) && !strchr("iI+-", s[0]))) {
                return DEFER;
            }
            break;
        }
        default:
            return DEFER;
        }
        return d == 0 ? MUST_DROP : d > 0 ? MUST_KEEP : DEFER;
    }
    return DEFER;
}

static int write_tracestate(th_arena_t *a, th_otlp_span_t *span, const struct th__ps_tracestate *ts)
{
    char buf[2048];
    size_t n = th__ps_tracestate_write(ts, buf, sizeof(buf));
    if (n == 0 && (ts->has_rv || ts->has_th || ts->n_ot_extra || ts->n_members)) {
        return 0; /* cannot happen for parsed input: leave the tracestate as it was */
    }
    char *s = th_arena_strndup(a, buf, n);
    if (!s) {
        return TH_ENOMEM;
    }
    span->trace_state = s;
    return 0;
}

int th_probabilistic_sampler_span(th_probabilistic_sampler_t *ps, th_arena_t *a,
                                  th_otlp_span_t *span, bool *keep)
{
    struct th__ps_tracestate ts;
    const char *raw = span->trace_state ? span->trace_state : "";
    bool parsed = th__ps_tracestate_parse(raw, strlen(raw), &ts) == 0;
    bool carrier = parsed; /* whether the tracestate is updated when the span is kept */
    bool missing = false;  /* no randomness at all */
    bool error = !parsed;
    uint64_t rnd;

    /* randomnessFromSpan, per mode. */
    if (ps->never) {
        rnd = ALL_RANDOMNESS; /* not used by a never-threshold, and not "missing" */
    } else if (ps->mode == TH_PSAMPLER_HASH_SEED) {
        missing = trace_id_empty(span);
        rnd = missing ? ALL_RANDOMNESS : hash_randomness(ps->seed, span->trace_id.data, 16);
        if (parsed && (ts.has_rv || ts.has_th)) {
            /* Consistent sampling information is present: this mode must leave it alone
             * (ErrRandomnessInUse / ErrThresholdInUse). */
            error = true;
            carrier = false;
        } else if (parsed) {
            th__ps_tracestate_set_rv(&ts, rnd);
        }
    } else if (parsed && ts.has_rv) {
        rnd = ts.rv;
    } else if (!trace_id_empty(span)) {
        rnd = trace_id_randomness(span);
    } else {
        missing = true;
        rnd = ALL_RANDOMNESS;
    }

    /* consistencyCheck: an arriving threshold the randomness does not pass is a lie. */
    if (!error && !ps->never) {
        if (missing) {
            error = true;
        } else if (carrier && ts.has_th && !(ts.th <= rnd)) {
            ts.has_th = false;
            error = true;
        }
    }

    uint64_t threshold;
    if (error) {
        threshold = ps->fail_closed ? NEVER : ALWAYS;
        __atomic_add_fetch(&ps->stats.errors, 1, __ATOMIC_RELAXED);
    } else if (ps->never) {
        threshold = NEVER;
    } else if (ps->mode == TH_PSAMPLER_EQUALIZING) {
        threshold = carrier && ts.has_th && ps->threshold < ts.th ? ts.th : ps->threshold;
    } else if (ps->mode == TH_PSAMPLER_PROPORTIONAL) {
        double incoming = carrier && ts.has_th
                              ? (double)(TH__PS_MAX_ADJUSTED - ts.th) / (double)TH__PS_MAX_ADJUSTED
                              : 1.0;
        if (th__probabilistic_sampler_threshold(incoming * ps->ratio, ps->precision, &threshold) !=
            0) {
            threshold = NEVER; /* the product fell below 2^-56 */
        }
    } else {
        threshold = ps->threshold;
    }

    switch (span_priority(span)) {
    case MUST_DROP:
        threshold = NEVER;
        __atomic_add_fetch(&ps->stats.priority, 1, __ATOMIC_RELAXED);
        break;
    case MUST_KEEP:
        threshold = ALWAYS;
        __atomic_add_fetch(&ps->stats.priority, 1, __ATOMIC_RELAXED);
        break;
    default:
        break;
    }

    *keep = threshold <= rnd;
    if (*keep) {
        __atomic_add_fetch(&ps->stats.kept, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&ps->stats.dropped, 1, __ATOMIC_RELAXED);
    }
    if (!*keep || !carrier) {
        return 0;
    }
    /* updateThreshold: the threshold may only rise (probability only fall). */
    if (!(ts.has_th && ts.th > threshold)) {
        ts.th = threshold;
        ts.has_th = true;
        th__probabilistic_sampler_tvalue(threshold, ts.th_text);
    }
    return write_tracestate(a, span, &ts);
}

int th_probabilistic_sampler_batch(th_probabilistic_sampler_t *ps, th_batch_t *b, size_t *dropped)
{
    th_otlp_request_t *req = b->req;
    size_t gone = 0, kept_rs = 0;
    int first_err = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        size_t kept_ss = 0;
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            size_t kept = 0;
            for (size_t k = 0; k < ss->n_spans; k++) {
                bool keep = false;
                int ret = th_probabilistic_sampler_span(ps, b->arena, ss->spans[k], &keep);
                if (ret != 0 && first_err == 0) {
                    first_err = ret;
                }
                if (keep) {
                    ss->spans[kept++] = ss->spans[k];
                } else {
                    gone++;
                }
            }
            ss->n_spans = kept;
            if (kept > 0) {
                rs->scope_spans[kept_ss++] = ss;
            }
        }
        rs->n_scope_spans = kept_ss;
        if (kept_ss > 0) {
            req->resource_spans[kept_rs++] = rs;
        }
    }
    req->n_resource_spans = kept_rs;
    b->span_count -= TH_MIN(gone, b->span_count);
    *dropped = gone;
    return first_err;
}

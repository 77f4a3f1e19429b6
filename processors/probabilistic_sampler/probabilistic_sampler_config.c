/*
 * The probabilistic sampler's config layer: the field table with the Collector's keys and
 * defaults, and its Validate() checks with its wording.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "processors/probabilistic_sampler/probabilistic_sampler.h"

#define F(field) offsetof(struct th_probabilistic_sampler_cfg, field)

const struct th_cfg_field th_probabilistic_sampler_config_fields[] = {
    {.name = "sampling_percentage",
     .type = TH_CFG_DOUBLE,
     .def = "0",
     .offset = F(sampling_percentage),
     .desc = "percent of traces kept (a float32); 100 or more keeps all, 0 (the Collector's "
             "default) keeps none"},
    {.name = "hash_seed",
     .type = TH_CFG_INT,
     .def = "0",
     .offset = F(hash_seed),
     .min = 0,
     .max = 4294967295.0,
     .desc = "seed of the trace id hash (hash_seed mode); every collector of a tier must use "
             "the same"},
    {.name = "mode",
     .type = TH_CFG_STRING,
     .def = "hash_seed",
     .offset = F(mode),
     .desc = "hash_seed (FNV hash of seed and trace id), proportional or equalizing (OTEP 235 "
             "consistent sampling)"},
    {.name = "fail_closed",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = F(fail_closed),
     .desc = "drop spans whose sampling information is unusable (bad tracestate, no "
             "randomness); false keeps them"},
    {.name = "sampling_precision",
     .type = TH_CFG_INT,
     .def = "4",
     .offset = F(sampling_precision),
     .desc = "hex digits of the threshold written to tracestate (1..14; consistent modes)"},
    {.name = "attribute_source",
     .type = TH_CFG_STRING,
     .def = "traceID",
     .offset = F(attribute_source),
     .desc = "logs only: traceID or record (accepted; traces always use the trace id)"},
    {.name = "from_attribute",
     .type = TH_CFG_STRING,
     .offset = F(from_attribute),
     .desc = "logs only: attribute hashed instead of the trace id (accepted, unused for traces)"},
    {.name = "sampling_priority",
     .type = TH_CFG_STRING,
     .offset = F(sampling_priority),
     .desc = "logs only: attribute holding a priority (accepted; spans use sampling.priority)"},
    {.name = NULL},
};

/* Go's %f of a float32 infinity or NaN. */
static const char *nonfinite(float f)
{
    return isnan(f) ? "NaN" : f > 0 ? "+Inf" : "-Inf";
}

int th_probabilistic_sampler_settings_check(const struct th_probabilistic_sampler_settings *s,
                                            char *err, size_t errlen)
{
    float pct = s->sampling_percentage;
    if (!isfinite(pct)) {
        snprintf(err, errlen, "sampling_percentage: sampling rate is invalid: %s%%",
                 nonfinite(pct));
        return TH_ECONFIG;
    }
    double ratio = (double)pct / 100.0;
    if (ratio < 0) {
        snprintf(err, errlen, "sampling_percentage: sampling rate is negative: %f%%", (double)pct);
        return TH_ECONFIG;
    }
    if (ratio != 0 && ratio < 0x1p-56) {
        snprintf(err, errlen, "sampling_percentage: sampling rate is too small: %g%%", (double)pct);
        return TH_ECONFIG;
    }
    if (s->sampling_precision == 0) {
        snprintf(err, errlen, "sampling_precision: invalid sampling precision: 0");
        return TH_ECONFIG;
    }
    if (s->sampling_precision > 14) {
        snprintf(err, errlen,
                 "sampling_precision: sampling precision is too great, should be <= 14: %d",
                 s->sampling_precision);
        return TH_ECONFIG;
    }
    if (s->sampling_precision < 0) {
        snprintf(err, errlen, "sampling_precision: invalid sampling precision: %d",
                 s->sampling_precision);
        return TH_ECONFIG;
    }
    if (s->mode != TH_PSAMPLER_HASH_SEED && s->mode != TH_PSAMPLER_PROPORTIONAL &&
        s->mode != TH_PSAMPLER_EQUALIZING) {
        snprintf(err, errlen, "mode: unsupported sampler mode %d", (int)s->mode);
        return TH_ECONFIG;
    }
    return 0;
}

int th_probabilistic_sampler_settings_from_cfg(const struct th_probabilistic_sampler_cfg *cfg,
                                               struct th_probabilistic_sampler_settings *out,
                                               char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    /* float32 as the Collector stores it (mapstructure rounds to nearest; beyond the range
     * it is an infinity, refused below). */
    double d = cfg->sampling_percentage;
    out->sampling_percentage = fabs(d) > FLT_MAX ? (d > 0 ? INFINITY : -INFINITY) : (float)d;
    out->hash_seed = (uint32_t)cfg->hash_seed;
    out->fail_closed = cfg->fail_closed;
    out->sampling_precision = (int)TH_MAX(TH_MIN(cfg->sampling_precision, 1000), -1000);
    /* The Collector's SamplerMode.UnmarshalText: exact names; "" means the default. */
    const char *mode = cfg->mode ? cfg->mode : "";
    if (!*mode || !strcmp(mode, "hash_seed")) {
        out->mode = TH_PSAMPLER_HASH_SEED;
    } else if (!strcmp(mode, "proportional")) {
        out->mode = TH_PSAMPLER_PROPORTIONAL;
    } else if (!strcmp(mode, "equalizing")) {
        out->mode = TH_PSAMPLER_EQUALIZING;
    } else {
        snprintf(err, errlen, "mode: unsupported sampler mode \"%s\"", mode);
        return TH_ECONFIG;
    }
    const char *src = cfg->attribute_source ? cfg->attribute_source : "";
    if (*src && strcmp(src, "traceID") && strcmp(src, "record")) {
        snprintf(err, errlen,
                 "attribute_source: invalid attribute source: %s. Expected: traceID or record",
                 src);
        return TH_ECONFIG;
    }
    return th_probabilistic_sampler_settings_check(out, err, errlen);
}

int th_probabilistic_sampler_config_check(const void *cfg, const char **err)
{
    /* Config checks run once, at start-up, on the main thread. */
    static _Thread_local char msg[512];
    struct th_probabilistic_sampler_settings s;
    int ret = th_probabilistic_sampler_settings_from_cfg(cfg, &s, msg, sizeof(msg));
    if (ret != 0) {
        *err = msg;
    }
    return ret;
}

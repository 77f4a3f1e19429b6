/*
 * Evaluating the tail sampling policies on a buffered trace: one function per policy type,
 * each following the Collector's evaluator of the same name (contrib
 * processor/tailsamplingprocessor/internal/sampling), plus the helpers they share: walking
 * the spans of a trace, attribute lookup, a string hash set, the regex LRU, the token bucket
 * and the probabilistic threshold. Nothing here allocates per decision except the regex
 * cache, which allocates an entry only until it is full and then recycles the oldest.
 *
 * invert_match (string, numeric and boolean attributes) follows the Collector since contrib
 * v0.144, where the feature gate processor.tailsamplingprocessor.disableinvertdecisions is on
 * by default: a match anywhere gives plain NotSampled, no match (the key absent everywhere
 * included) gives plain Sampled. The old InvertSampled / InvertNotSampled results, with their
 * special precedence in the final decision, are never produced.
 */
#include <math.h>
#include <string.h>

#include "processors/tail_sampling/tail_sampling_policy.h"

/* ---- Hashing ----------------------------------------------------------------------------- */

#define FNV_PRIME 0x100000001b3ull

uint64_t th__ts_fnv1a(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* FNV-1a of a NUL-terminated string and its length in one pass (protobuf-c strings carry no
 * length, so this is the one read of the value). */
static uint64_t hash_cstr(const char *s, size_t *len)
{
    uint64_t h = TH__TS_FNV_OFFSET;
    const uint8_t *p = (const uint8_t *)s;
    while (*p) {
        h ^= *p++;
        h *= FNV_PRIME;
    }
    *len = (size_t)((const char *)p - s);
    return h;
}

/* ---- Probabilistic threshold ------------------------------------------------------------- */

static int bitlen128(unsigned __int128 v)
{
    uint64_t hi = (uint64_t)(v >> 64);
    if (hi) {
        return 128 - __builtin_clzll(hi);
    }
    uint64_t lo = (uint64_t)v;
    return lo ? 64 - __builtin_clzll(lo) : 0;
}

/* big.Float: MaxUint64 (precision 64) times the float64 ratio, rounded to nearest-even at 64
 * bits of mantissa, then truncated by Uint64(). The ratio is m × 2^(e-53) with a 53-bit m, so
 * the exact product fits in 128 bits and the rounding can be done on integers. */
uint64_t th__ts_prob_threshold(double pct)
{
    double ratio = pct / 100;
    if (!(ratio > 0)) {
        return 0; /* Uint64() of a negative number (or zero) is 0 */
    }
    if (ratio >= 1) {
        return UINT64_MAX;
    }
    int e;
    double f = frexp(ratio, &e); /* ratio = f × 2^e, f in [0.5, 1) */
    uint64_t m = (uint64_t)ldexp(f, 53);
    unsigned __int128 prod = (unsigned __int128)UINT64_MAX * m;
    int shift = bitlen128(prod) - 64;
    if (shift < 0) {
        shift = 0;
    }
    unsigned __int128 q = prod >> shift;
    if (shift > 0) {
        unsigned __int128 rem = prod & (((unsigned __int128)1 << shift) - 1);
        unsigned __int128 half = (unsigned __int128)1 << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) {
            q++; /* may carry to 2^64: still exact, with one bit more */
        }
    }
    int exp2 = shift + e - 53; /* the rounded product is q × 2^exp2 */
    unsigned __int128 v;
    if (exp2 >= 0) {
        if (exp2 >= 64 || bitlen128(q) + exp2 > 64) {
            return UINT64_MAX;
        }
        v = q << exp2;
    } else {
        v = -exp2 >= 128 ? 0 : q >> -exp2;
    }
    return v > UINT64_MAX ? UINT64_MAX : (uint64_t)v;
}

/* ---- String set -------------------------------------------------------------------------- */

int th__ts_strset_init(struct th__ts_strset *s, th_arena_t *a, const char *const *v, size_t n,
                       bool (*keep)(const char *s, size_t len, const void *arg), const void *arg)
{
    size_t cap = 4;
    while (cap < n * 2) {
        cap *= 2;
    }
    s->slots = th_arena_calloc(a, cap, sizeof(*s->slots));
    if (!s->slots) {
        return TH_ENOMEM;
    }
    s->mask = cap - 1;
    s->n = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint64_t h = hash_cstr(v[i], &len);
        if (len == 0 || (keep && !keep(v[i], len, arg)) || th__ts_strset_has(s, h, v[i], len)) {
            continue;
        }
        size_t j = (size_t)h & s->mask;
        while (s->slots[j].s) {
            j = (j + 1) & s->mask;
        }
        s->slots[j] = (struct th__ts_strslot){.h = h, .s = v[i], .len = len};
        s->n++;
    }
    return 0;
}

bool th__ts_strset_has(const struct th__ts_strset *s, uint64_t h, const char *str, size_t len)
{
    for (size_t j = (size_t)h & s->mask; s->slots[j].s; j = (j + 1) & s->mask) {
        const struct th__ts_strslot *e = &s->slots[j];
        if (e->h == h && e->len == len && memcmp(e->s, str, len) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- Regex result cache (LRU) ------------------------------------------------------------ */

int th__ts_rcache_init(struct th__ts_rcache *c, size_t cap)
{
    memset(c, 0, sizeof(*c));
    size_t nb = 16;
    while (nb < cap && nb < ((size_t)1 << 16)) {
        nb *= 2;
    }
    c->buckets = th_calloc(nb, sizeof(*c->buckets));
    if (!c->buckets) {
        return TH_ENOMEM;
    }
    c->mask = nb - 1;
    c->cap = cap;
    return 0;
}

void th__ts_rcache_deinit(struct th__ts_rcache *c)
{
    struct th__ts_rc_entry *e = c->head;
    while (e) {
        struct th__ts_rc_entry *next = e->next;
        th_free(e->s);
        th_free(e);
        e = next;
    }
    th_free(c->buckets);
    memset(c, 0, sizeof(*c));
}

static void lru_unlink(struct th__ts_rcache *c, struct th__ts_rc_entry *e)
{
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        c->head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    } else {
        c->tail = e->prev;
    }
    e->prev = e->next = NULL;
}

static void lru_push_front(struct th__ts_rcache *c, struct th__ts_rc_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) {
        c->head->prev = e;
    }
    c->head = e;
    if (!c->tail) {
        c->tail = e;
    }
}

struct th__ts_rc_entry *th__ts_rcache_get(struct th__ts_rcache *c, uint64_t h, const char *s,
                                          size_t len)
{
    for (struct th__ts_rc_entry *e = c->buckets[h & c->mask]; e; e = e->hnext) {
        if (e->h == h && e->len == len && memcmp(e->s, s, len) == 0) {
            if (c->head != e) {
                lru_unlink(c, e);
                lru_push_front(c, e);
            }
            return e;
        }
    }
    return NULL;
}

static void bucket_remove(struct th__ts_rcache *c, struct th__ts_rc_entry *e)
{
    struct th__ts_rc_entry **pp = &c->buckets[e->h & c->mask];
    while (*pp && *pp != e) {
        pp = &(*pp)->hnext;
    }
    if (*pp) {
        *pp = e->hnext;
    }
    e->hnext = NULL;
}

void th__ts_rcache_put(struct th__ts_rcache *c, uint64_t h, const char *s, size_t len, bool match)
{
    struct th__ts_rc_entry *e;
    if (c->n >= c->cap && c->tail) {
        e = c->tail;
        lru_unlink(c, e);
        bucket_remove(c, e);
        c->n--;
    } else {
        e = th_calloc(1, sizeof(*e));
        if (!e) {
            return;
        }
    }
    if (e->cap < len + 1) {
        size_t cap = len + 1 < 32 ? 32 : len + 1;
        char *p = th_realloc(e->s, cap);
        if (!p) {
            th_free(e->s);
            th_free(e);
            return;
        }
        e->s = p;
        e->cap = cap;
    }
    memcpy(e->s, s, len);
    e->s[len] = '\0';
    e->len = len;
    e->h = h;
    e->match = match;
    e->hnext = c->buckets[h & c->mask];
    c->buckets[h & c->mask] = e;
    lru_push_front(c, e);
    c->n++;
}

/* ---- Token bucket -------------------------------------------------------------------------- */

void th__ts_bucket_init(struct th__ts_bucket *b, int64_t rate, int64_t burst)
{
    memset(b, 0, sizeof(*b));
    b->rate = rate > 0 ? (double)rate : 0;
    b->burst = burst > 0 ? (double)burst : 0;
}

/* x/time/rate's AllowN(now, n): refill for the time since the last success (never backwards),
 * cap at the burst, and take n tokens when they are there. A request larger than the burst
 * never passes. The Limiter allows a deficit too small to wait a whole nanosecond for; that
 * rounding is kept so decisions match. */
bool th__ts_bucket_allow(struct th__ts_bucket *b, uint64_t now_ns, uint64_t n)
{
    if (!b->started) {
        b->started = true;
        b->tokens = b->burst;
        b->last_ns = now_ns;
    }
    uint64_t last = b->last_ns < now_ns ? b->last_ns : now_ns;
    double tokens = b->tokens + (double)(now_ns - last) / 1e9 * b->rate;
    if (tokens > b->burst) {
        tokens = b->burst;
    }
    tokens -= (double)n;
    if ((double)n > b->burst) {
        return false;
    }
    if (tokens < 0) {
        if (b->rate <= 0) {
            return false;
        }
        double wait_ns = 1e9 * (-tokens / b->rate);
        if (wait_ns >= 1) {
            return false;
        }
    }
    b->tokens = tokens;
    b->last_ns = now_ns;
    return true;
}

/* ---- Walking a trace ----------------------------------------------------------------------- */

struct span_it {
    const struct th_ts_chunk *c;
    uint32_t i;
};

static inline const struct th_ts_span *next_span(struct span_it *it)
{
    while (it->c && it->i >= it->c->n) {
        it->c = it->c->next;
        it->i = 0;
    }
    return it->c ? &it->c->v[it->i++] : NULL;
}

/* The first attribute named @p key (pcommon.Map.Get), or NULL. The first byte is compared
 * before the whole key, which settles most misses without a call. */
static const th_otlp_any_t *find_attr(th_otlp_kv_t *const *kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        const th_otlp_kv_t *kv = kvs[i];
        if (kv && kv->key && kv->key[0] == key[0] && strcmp(kv->key, key) == 0) {
            return kv->value;
        }
    }
    return NULL;
}

/* An attribute test: 1 match, 0 no match, TH_TS_ERROR-worthy negative on failure. */
typedef int (*attr_test_fn)(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx,
                            const th_otlp_any_t *v, bool resource);

/* Does any resource or span of the trace carry the policy's key with a matching value?
 * (hasResourceOrSpanWithCondition.) A resource shared by consecutive spans is looked at once. */
static int any_resource_or_span(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx,
                                const char *key, attr_test_fn test)
{
    struct span_it it = {cx->t->first, 0};
    const th_otlp_resource_spans_t *last_rs = NULL;
    const struct th_ts_span *s;
    while ((s = next_span(&it)) != NULL) {
        if (s->rs && s->rs != last_rs) {
            last_rs = s->rs;
            const Opentelemetry__Proto__Resource__V1__Resource *res = s->rs->resource;
            if (res) {
                const th_otlp_any_t *v = find_attr(res->attributes, res->n_attributes, key);
                if (v) {
                    int r = test(p, cx, v, true);
                    if (r != 0) {
                        return r;
                    }
                }
            }
        }
        if (s->span) {
            const th_otlp_any_t *v = find_attr(s->span->attributes, s->span->n_attributes, key);
            if (v) {
                int r = test(p, cx, v, false);
                if (r != 0) {
                    return r;
                }
            }
        }
    }
    return 0;
}

/* A match result under invert_match (see the top of the file). */
static enum th_ts_decision matched(int r, bool invert)
{
    if (r < 0) {
        return TH_TS_ERROR;
    }
    return (r > 0) != invert ? TH_TS_SAMPLED : TH_TS_NOT_SAMPLED;
}

/* ---- The simple policies ------------------------------------------------------------------- */

/* The trace's duration is max(end) - min(start) over all its spans, which the buffer keeps as
 * spans arrive, so the order spans came in does not matter. (The Collector checks the running
 * duration span by span; with an upper bound that can sample a trace whose final duration is
 * above it, depending on arrival order. The whole-trace duration is what the README
 * describes.) A trace without any start or end time has no duration and is not sampled. */
static enum th_ts_decision eval_latency(struct th__ts_policy *p, const struct th_ts_trace *t)
{
    if (!t->first || t->min_start_ns == UINT64_MAX || t->max_end_ns == 0) {
        return TH_TS_NOT_SAMPLED;
    }
    int64_t d_ns = t->max_end_ns >= t->min_start_ns ? (int64_t)(t->max_end_ns - t->min_start_ns)
                                                    : -(int64_t)(t->min_start_ns - t->max_end_ns);
    int64_t d_ms = d_ns / 1000000; /* Duration.Milliseconds() truncates toward zero */
    bool yes;
    if (p->u.latency.upper_ms == 0) {
        yes = d_ms >= p->u.latency.threshold_ms;
    } else {
        yes = p->u.latency.threshold_ms < d_ms && d_ms <= p->u.latency.upper_ms;
    }
    return yes ? TH_TS_SAMPLED : TH_TS_NOT_SAMPLED;
}

/* Only int values are compared. The Collector reads any value with Int(), which is 0 for a
 * string, double or bool, so `http.status_code: "500"` would count as 0 there; a range
 * containing 0 would then match values that are not numbers at all. Treating them as absent
 * is the behaviour users expect and the same for every valid int attribute. */
static int test_numeric(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx,
                        const th_otlp_any_t *v, bool resource)
{
    (void)cx;
    (void)resource;
    if (v->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE) {
        return 0;
    }
    return v->int_value >= p->u.numeric.min && v->int_value <= p->u.numeric.max;
}

/* Only bool values are compared (the Collector's Bool() is false for other types, so with
 * `value: false` a string attribute would match there). */
static int test_boolean(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx,
                        const th_otlp_any_t *v, bool resource)
{
    (void)cx;
    (void)resource;
    if (v->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE) {
        return 0;
    }
    return (v->bool_value != 0) == p->u.boolean.value;
}

static int regex_match(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx, const char *s,
                       size_t len, uint64_t h)
{
    struct th__ts_rc_entry *e = th__ts_rcache_get(&p->u.string.cache, h, s, len);
    if (e) {
        return e->match;
    }
    bool m = false;
    for (size_t i = 0; i < p->u.string.n_re && !m; i++) {
        int r = th__attributes_regex_search(cx->matcher, p->u.string.re[i], s, len, 0);
        if (r < 0) {
            return r; /* match limit: an evaluation error, and nothing is cached */
        }
        m = r > 0;
    }
    th__ts_rcache_put(&p->u.string.cache, h, s, len, m);
    return m;
}

/* String values only, and never the empty string (the Collector skips empty span values, and
 * an empty resource value can only match a regex that matches anything). */
static int test_string(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx,
                       const th_otlp_any_t *v, bool resource)
{
    (void)resource;
    if (v->value_case != OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE ||
        !v->string_value || !v->string_value[0]) {
        return 0;
    }
    size_t len;
    uint64_t h = hash_cstr(v->string_value, &len);
    if (p->u.string.regex) {
        return regex_match(p, cx, v->string_value, len, h);
    }
    return th__ts_strset_has(&p->u.string.set, h, v->string_value, len);
}

static enum th_ts_decision eval_status(struct th__ts_policy *p, const struct th_ts_trace *t)
{
    struct span_it it = {t->first, 0};
    const struct th_ts_span *s;
    while ((s = next_span(&it)) != NULL) {
        unsigned code = s->span && s->span->status ? (unsigned)s->span->status->code : 0;
        if (code < 32 && (p->u.status.mask & (1u << code))) {
            return TH_TS_SAMPLED;
        }
    }
    return TH_TS_NOT_SAMPLED;
}

static enum th_ts_decision eval_trace_flags(const struct th_ts_trace *t)
{
    struct span_it it = {t->first, 0};
    const struct th_ts_span *s;
    while ((s = next_span(&it)) != NULL) {
        if (s->span && (s->span->flags & 0x1u)) {
            return TH_TS_SAMPLED;
        }
    }
    return TH_TS_NOT_SAMPLED;
}

/* W3C tracestate key and value rules, as the OpenTelemetry Go SDK's ParseTraceState checks
 * them: a tracestate that does not parse matches nothing. */
static bool ts_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool ts_key_part(const char *k, size_t n, size_t max, bool tenant)
{
    if (n == 0 || n > max) {
        return false;
    }
    if (!(ts_lcalpha(k[0]) || (tenant && k[0] >= '0' && k[0] <= '9'))) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        char c = k[i];
        if (!(ts_lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
              c == '/')) {
            return false;
        }
    }
    return true;
}

static bool ts_key_ok(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (!at) {
        return ts_key_part(k, n, 256, true);
    }
    size_t tl = (size_t)(at - k);
    return ts_key_part(k, tl, 241, true) && ts_key_part(at + 1, n - tl - 1, 14, false);
}

static bool ts_value_ok(const char *v, size_t n)
{
    if (n == 0 || n > 256) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        bool last = i + 1 == n;
        if (c < (last ? 0x21 : 0x20) || c > 0x7e || c == ',' || c == '=') {
            return false;
        }
    }
    return true;
}

/* Parse one span's tracestate; *val gets the value of @p key when present.
 * @return false when the tracestate is invalid. */
static bool ts_lookup(const char *ts, const char *key, size_t klen, const char **val, size_t *vlen)
{
    *val = NULL;
    unsigned members = 0;
    const char *p = ts;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t mlen = end ? (size_t)(end - p) : strlen(p);
        if (mlen > 0) {
            const char *eq = memchr(p, '=', mlen);
            if (!eq) {
                return false;
            }
            const char *k = p;
            size_t kn = (size_t)(eq - p);
            while (kn > 0 && (*k == ' ' || *k == '\t')) {
                k++;
                kn--;
            }
            const char *v = eq + 1;
            size_t vn = mlen - (size_t)(v - p);
            while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) {
                vn--;
            }
            if (!ts_key_ok(k, kn) || !ts_value_ok(v, vn) || ++members > 32) {
                return false;
            }
            if (kn == klen && memcmp(k, key, klen) == 0) {
                if (*val) {
                    return false; /* a duplicate key makes the whole tracestate invalid */
                }
                *val = v;
                *vlen = vn;
            }
        }
        if (!end) {
            break;
        }
        p = end + 1;
    }
    return true;
}

static enum th_ts_decision eval_trace_state(struct th__ts_policy *p, const struct th_ts_trace *t)
{
    struct span_it it = {t->first, 0};
    const struct th_ts_span *s;
    while ((s = next_span(&it)) != NULL) {
        const char *ts = s->span ? s->span->trace_state : NULL;
        if (!ts || !ts[0]) {
            continue;
        }
        const char *v;
        size_t vn = 0;
        if (ts_lookup(ts, p->u.trace_state.key, p->u.trace_state.klen, &v, &vn) && v &&
            th__ts_strset_has(&p->u.trace_state.set, th__ts_fnv1a(TH__TS_FNV_OFFSET, v, vn), v,
                              vn)) {
            return TH_TS_SAMPLED;
        }
    }
    return TH_TS_NOT_SAMPLED;
}

/* ---- Combinators --------------------------------------------------------------------------- */

/* and / drop: every sub-policy must sample; the first that does not stops the loop with
 * NotSampled, and an error from any sub-policy is the combinator's error. */
static enum th_ts_decision eval_all(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx,
                                    enum th_ts_decision all_yes)
{
    for (size_t i = 0; i < p->u.list.n; i++) {
        enum th_ts_decision d = th__ts_policy_eval(p->u.list.subs[i], cx);
        if (d == TH_TS_ERROR) {
            return TH_TS_ERROR;
        }
        if (d == TH_TS_NOT_SAMPLED || d == TH_TS_INVERT_NOT_SAMPLED) {
            return TH_TS_NOT_SAMPLED;
        }
    }
    return all_yes;
}

static enum th_ts_decision eval_not(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx)
{
    enum th_ts_decision d = th__ts_policy_eval(p->u.not_.sub, cx);
    if (d == TH_TS_SAMPLED) {
        return TH_TS_NOT_SAMPLED;
    }
    if (d == TH_TS_NOT_SAMPLED) {
        return TH_TS_SAMPLED;
    }
    return d;
}

/* The first sub-policy (in evaluation order) that samples decides: Sampled when its own
 * per-second budget and the composite's total budget both still fit the trace's spans, else
 * NotSampled without trying the others. Counters restart at each wall-clock second. The
 * Collector compares each sub-policy's own count with the total; a true running total is kept
 * here, which is the same whenever the allocations add up to at most 100%. */
static enum th_ts_decision eval_composite(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx)
{
    int64_t second = (int64_t)(cx->now_ns / 1000000000u);
    if (second != p->u.composite.second) {
        p->u.composite.second = second;
        p->u.composite.total = 0;
        for (size_t i = 0; i < p->u.composite.n; i++) {
            p->u.composite.subs[i].used = 0;
        }
    }
    int64_t spans = cx->t->span_count > INT64_MAX ? INT64_MAX : (int64_t)cx->t->span_count;
    for (size_t i = 0; i < p->u.composite.n; i++) {
        struct th__ts_comp_sub *sub = &p->u.composite.subs[i];
        enum th_ts_decision d = th__ts_policy_eval(sub->p, cx);
        if (d == TH_TS_ERROR) {
            return TH_TS_ERROR;
        }
        if (d != TH_TS_SAMPLED && d != TH_TS_INVERT_SAMPLED) {
            continue;
        }
        if (sub->used + spans <= sub->allocated &&
            p->u.composite.total + spans <= p->u.composite.max_total) {
            sub->used += spans;
            p->u.composite.total += spans;
            return TH_TS_SAMPLED;
        }
        return TH_TS_NOT_SAMPLED;
    }
    return TH_TS_NOT_SAMPLED;
}

/* ---- Dispatch ------------------------------------------------------------------------------ */

enum th_ts_decision th__ts_policy_eval(struct th__ts_policy *p, const struct th__ts_eval_ctx *cx)
{
    const struct th_ts_trace *t = cx->t;
    switch (p->type) {
    case TH__TS_ALWAYS_SAMPLE:
        return TH_TS_SAMPLED;
    case TH__TS_LATENCY:
        return eval_latency(p, t);
    case TH__TS_NUMERIC_ATTRIBUTE:
        return matched(any_resource_or_span(p, cx, p->u.numeric.key, test_numeric),
                       p->u.numeric.invert);
    case TH__TS_PROBABILISTIC: {
        uint64_t h = th__ts_fnv1a(p->u.prob.salt_state, t->trace_id, 16);
        return h <= p->u.prob.threshold ? TH_TS_SAMPLED : TH_TS_NOT_SAMPLED;
    }
    case TH__TS_STATUS_CODE:
        return eval_status(p, t);
    case TH__TS_STRING_ATTRIBUTE:
        return matched(any_resource_or_span(p, cx, p->u.string.key, test_string),
                       p->u.string.invert);
    case TH__TS_RATE_LIMITING:
        return th__ts_bucket_allow(&p->u.bucket, cx->now_ns, t->span_count) ? TH_TS_SAMPLED
                                                                            : TH_TS_NOT_SAMPLED;
    case TH__TS_BYTES_LIMITING:
        return th__ts_bucket_allow(&p->u.bucket, cx->now_ns, t->bytes) ? TH_TS_SAMPLED
                                                                       : TH_TS_NOT_SAMPLED;
    case TH__TS_SPAN_COUNT: {
        /* The Collector compares as int; a count past INT64_MAX cannot happen. */
        int64_t n = (int64_t)t->span_count;
        bool yes =
            n >= p->u.span_count.min && (p->u.span_count.max == 0 || n <= p->u.span_count.max);
        return yes ? TH_TS_SAMPLED : TH_TS_NOT_SAMPLED;
    }
    case TH__TS_TRACE_STATE:
        return eval_trace_state(p, t);
    case TH__TS_TRACE_FLAGS:
        return eval_trace_flags(t);
    case TH__TS_BOOLEAN_ATTRIBUTE:
        return matched(any_resource_or_span(p, cx, p->u.boolean.key, test_boolean),
                       p->u.boolean.invert);
    case TH__TS_AND:
        return eval_all(p, cx, TH_TS_SAMPLED);
    case TH__TS_DROP:
        return eval_all(p, cx, TH_TS_DROPPED);
    case TH__TS_NOT:
        return eval_not(p, cx);
    case TH__TS_COMPOSITE:
        return eval_composite(p, cx);
    }
    return TH_TS_ERROR;
}

void th__ts_policy_release(struct th__ts_policy *p)
{
    if (!p || p->type != TH__TS_STRING_ATTRIBUTE) {
        return;
    }
    for (size_t i = 0; i < p->u.string.n_re; i++) {
        pcre2_code_free(p->u.string.re[i]);
        p->u.string.re[i] = NULL;
    }
    p->u.string.n_re = 0;
    th__ts_rcache_deinit(&p->u.string.cache);
}

/*
 * What the protobuf and JSON decoders share: the budgeted arena allocator (so the decoded
 * size of one request is bounded), limit defaults, UTF-8 validation, error formatting, and
 * the checks run on the decoded request (trace and span ids), so both decoders accept and
 * reject exactly the same requests with the same messages.
 */
#include <stdio.h>
#include <string.h>

#include "collector/otlp_internal.h"

#define ALIGN 16u

void th__otlp_mem_init(struct th__otlp_mem *m, th_arena_t *a, size_t limit)
{
    memset(m, 0, sizeof(*m));
    m->arena = a;
    m->limit = limit;
}

/* Take @p n bytes from the arena itself, within the budget. */
static void *from_arena(struct th__otlp_mem *m, size_t n)
{
    if (n > m->limit - m->used) {
        m->over_limit = true;
        return NULL;
    }
    void *p = th_arena_alloc(m->arena, n);
    if (!p) {
        m->oom = true;
        return NULL;
    }
    m->used += n;
    return p;
}

static unsigned log2_exact(size_t n)
{
    return (unsigned)__builtin_ctzll((unsigned long long)n);
}

void *th__otlp_mem_alloc_slow(struct th__otlp_mem *m, size_t n)
{
    if (n > SIZE_MAX - ALIGN) {
        m->over_limit = true;
        return NULL;
    }
    size_t rounded = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    void *p;
    bool pow2 = n >= 1024 && (n & (n - 1)) == 0 && log2_exact(n) < 32;
    if (pow2 && m->slabs[log2_exact(n)]) {
        /* A recycled slab: its first word links the free list. */
        p = m->slabs[log2_exact(n)];
        memcpy(&m->slabs[log2_exact(n)], p, sizeof(void *));
    } else if (rounded >= TH__OTLP_BLOCK / 4) {
        /* Big: straight from the arena, leaving the current block to small allocations. */
        p = from_arena(m, rounded);
    } else if (rounded <= (uintptr_t)m->end - (uintptr_t)m->cur) {
        p = m->cur;
        m->cur += rounded;
    } else {
        uint8_t *b = from_arena(m, TH__OTLP_BLOCK);
        if (!b) {
            return NULL;
        }
        m->cur = b + rounded;
        m->end = b + TH__OTLP_BLOCK;
        p = b;
    }
    if (p && pow2) {
        if (m->nbig == TH__OTLP_BIG) {
            /* Forget one: its free, if it comes, is then simply ignored. */
            memmove(&m->big[0], &m->big[1], sizeof(m->big[0]) * (TH__OTLP_BIG - 1));
            m->nbig--;
        }
        m->big[m->nbig].p = p;
        m->big[m->nbig].log2 = log2_exact(n);
        m->nbig++;
    }
    return p;
}

/*
 * protobuf-c frees only memory it no longer references (scan slabs at the end of each
 * message, values replaced by a later duplicate). Remembered power-of-two blocks go on a
 * free list for reuse; everything else stays in the arena until it is destroyed.
 */
static void mem_free(struct th__otlp_mem *m, void *p)
{
    for (unsigned i = m->nbig; i-- > 0;) {
        if (m->big[i].p == p) {
            unsigned k = m->big[i].log2;
            memcpy(p, &m->slabs[k], sizeof(void *));
            m->slabs[k] = p;
            m->big[i] = m->big[--m->nbig];
            return;
        }
    }
}

static void *pbc_alloc(void *data, size_t size)
{
    return th__otlp_mem_alloc(data, size);
}

static void pbc_free(void *data, void *p)
{
    if (p) {
        mem_free(data, p);
    }
}

void th__otlp_mem_pbc(struct th__otlp_mem *m, ProtobufCAllocator *out)
{
    out->alloc = pbc_alloc;
    out->free = pbc_free;
    out->allocator_data = m;
}

int th__otlp_mem_fail(const struct th__otlp_mem *m, struct th_otlp_error *err)
{
    if (m->over_limit) {
        th__otlp_errf(err,
                      "decoded request needs more than %zu bytes of memory (the limit is 8x "
                      "the body + 1 MiB unless configured); send smaller requests",
                      m->limit);
        if (err) {
            err->arena_limit = true;
        }
    } else {
        th__otlp_errf(err, "out of memory while decoding the request");
    }
    return TH_ENOMEM;
}

void th__otlp_limits_resolve(const struct th_otlp_limits *in, size_t body_len,
                             struct th_otlp_limits *out)
{
    struct th_otlp_limits d;
    th_otlp_limits_default(&d);
    *out = in ? *in : d;
    if (!out->max_depth) {
        out->max_depth = d.max_depth;
    }
    if (out->max_depth > TH_OTLP_MAX_DEPTH_CAP) {
        out->max_depth = TH_OTLP_MAX_DEPTH_CAP;
    }
    if (!out->max_spans) {
        out->max_spans = d.max_spans;
    }
    if (!out->max_attributes) {
        out->max_attributes = d.max_attributes;
    }
    if (!out->max_string_len) {
        out->max_string_len = d.max_string_len;
    }
    if (!out->max_arena) {
        uint64_t b = body_len;
        out->max_arena = b > (UINT64_MAX - (1u << 20)) / 8 ? UINT64_MAX : b * 8 + (1u << 20);
    }
    if (out->max_arena > SIZE_MAX) {
        out->max_arena = SIZE_MAX;
    }
}

/* ---- UTF-8 --------------------------------------------------------------------------- */

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

enum th__utf8 th__utf8_check_slow(const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
        /* Back on the fast path for runs of ASCII without zero bytes. */
        if (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            if (!(v & HIGHS) && !((v - ONES) & ~v & HIGHS)) {
                p += 8;
                continue;
            }
        }
        uint8_t c = *p;
        if (c < 0x80) {
            if (c == 0) {
                return TH__UTF8_NUL;
            }
            p++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return TH__UTF8_INVALID; /* continuation byte, overlong lead C0/C1, or > F4 */
        }
        if ((size_t)(end - p) < n) {
            return TH__UTF8_INVALID;
        }
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return TH__UTF8_INVALID;
            }
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Overlong 3- and 4-byte forms, surrogates, and beyond U+10FFFF. */
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return TH__UTF8_INVALID;
        }
        p += n;
    }
    return TH__UTF8_OK;
}

/* ---- Errors -------------------------------------------------------------------------- */

void th__otlp_errf(struct th_otlp_error *err, const char *fmt, ...)
{
    if (!err) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void th__otlp_errcat(struct th_otlp_error *err, const char *fmt, ...)
{
    if (!err) {
        return;
    }
    size_t n = strnlen(err->msg, sizeof(err->msg));
    if (n >= sizeof(err->msg) - 1) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof(err->msg) - n, fmt, ap);
    va_end(ap);
}

/* ---- Checks on the decoded request ----------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

enum id_kind {
    ID_TRACE,  /* 16 bytes, not zero */
    ID_SPAN,   /* 8 bytes, not zero */
    ID_PARENT, /* empty, or 8 bytes */
};

static const char *const id_field[] = {"trace_id", "span_id", "parent_span_id"};

/*
 * Check one id; on failure write the message. The Go Collector rejects the same things
 * (pdata/internal/traceid.go): any non-empty id of the wrong length, and zero ids.
 */
static int check_id(const ProtobufCBinaryData *id, enum id_kind kind, size_t i, size_t j, size_t k,
                    long link, struct th_otlp_error *err)
{
    size_t want = kind == ID_TRACE ? 16 : 8;
    bool len_ok = id->len == want || (kind == ID_PARENT && id->len == 0);
    bool zero = kind != ID_PARENT && len_ok && all_zero(id->data, id->len);
    if (len_ok && !zero) {
        return 0;
    }
    char path[128];
    if (link >= 0) {
        snprintf(path, sizeof(path), "resource_spans[%zu].scope_spans[%zu].spans[%zu].links[%ld]",
                 i, j, k, link);
    } else {
        snprintf(path, sizeof(path), "resource_spans[%zu].scope_spans[%zu].spans[%zu]", i, j, k);
    }
    if (zero) {
        th__otlp_errf(err, "%s.%s: must not be all zero", path, id_field[kind]);
    } else if (kind == ID_PARENT) {
        th__otlp_errf(err, "%s.%s: must be empty or 8 bytes, got %zu", path, id_field[kind],
                      id->len);
    } else {
        th__otlp_errf(err, "%s.%s: must be %zu bytes, got %zu", path, id_field[kind], want,
                      id->len);
    }
    return TH_EDECODE;
}

int th__otlp_validate(const th_otlp_request_t *req, struct th_otlp_error *err)
{
    int rc;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                const th_otlp_span_t *sp = ss->spans[k];
                if ((rc = check_id(&sp->trace_id, ID_TRACE, i, j, k, -1, err)) ||
                    (rc = check_id(&sp->span_id, ID_SPAN, i, j, k, -1, err)) ||
                    (rc = check_id(&sp->parent_span_id, ID_PARENT, i, j, k, -1, err))) {
                    return rc;
                }
                for (size_t l = 0; l < sp->n_links; l++) {
                    const Opentelemetry__Proto__Trace__V1__Span__Link *lk = sp->links[l];
                    if ((rc = check_id(&lk->trace_id, ID_TRACE, i, j, k, (long)l, err)) ||
                        (rc = check_id(&lk->span_id, ID_SPAN, i, j, k, (long)l, err))) {
                        return rc;
                    }
                }
            }
        }
    }
    return 0;
}

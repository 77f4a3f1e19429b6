/*
 * OTLP protobuf decoding. An iterative walk over the wire format, driven by a table of the
 * OTLP schema, first proves the input well-formed and within the limits (nesting depth,
 * spans, attributes, string lengths, UTF-8 without NUL) and estimates the decoded size, all
 * before anything is allocated; then th__otlp_unpack (otlp_pb_unpack.c) builds the
 * protobuf-c structs in the arena, and th__otlp_validate checks the ids. The walk is what
 * makes the limits hold, and it kept protobuf-c's generic unpack safe while that was used:
 * protobuf-c recurses once per nesting level with no limit, does not check UTF-8, truncates
 * strings at a NUL, and allocates whatever the counts on the wire ask for.
 */
#include <stdio.h>
#include <string.h>

#include "collector/otlp_internal.h"

void th_otlp_limits_default(struct th_otlp_limits *l)
{
    l->max_depth = 32;
    l->max_spans = 1000000;
    l->max_attributes = 16384;
    l->max_string_len = 4u << 20;
    l->max_arena = 0;
}

/* ---- The schema the walk follows --------------------------------------------------------- */

enum msg {
    M_REQ,
    M_RS,
    M_RES,
    M_ENTITY,
    M_SS,
    M_SCOPE,
    M_SPAN,
    M_EVENT,
    M_LINK,
    M_STATUS,
    M_KV,
    M_ANY,
    M_ARRAY,
    M_KVLIST,
};

enum kind {
    F_UNKNOWN = 0, /* not in the schema: skipped (the unpacker keeps it as an unknown field) */
    F_VARINT,
    F_I64,
    F_I32,
    F_STRING,
    F_BYTES,
    F_MSG,
};

#define R     0x1u /* repeated */
#define ATTRS 0x2u /* each element counts against max_attributes */
#define SPAN  0x4u /* each element is a span (max_spans) */
#define NEST  0x8u /* an array or kvlist value: one more level of nesting (max_depth) */

struct fdesc {
    uint8_t kind;
    uint8_t sub; /* F_MSG: the message */
    uint8_t flags;
    const char *name;
};

struct mdesc {
    uint8_t nfields; /* highest field number + 1 */
    size_t size;     /* sizeof the protobuf-c struct, for the memory estimate */
    const struct fdesc *f;
};

static const struct fdesc f_req[] = {
    [1] = {F_MSG, M_RS, R, "resource_spans"},
};
static const struct fdesc f_rs[] = {
    [1] = {F_MSG, M_RES, 0, "resource"},
    [2] = {F_MSG, M_SS, R, "scope_spans"},
    [3] = {F_STRING, 0, 0, "schema_url"},
};
static const struct fdesc f_res[] = {
    [1] = {F_MSG, M_KV, R | ATTRS, "attributes"},
    [2] = {F_VARINT, 0, 0, "dropped_attributes_count"},
    [3] = {F_MSG, M_ENTITY, R, "entity_refs"},
};
static const struct fdesc f_entity[] = {
    [1] = {F_STRING, 0, 0, "schema_url"},
    [2] = {F_STRING, 0, 0, "type"},
    [3] = {F_STRING, 0, R, "id_keys"},
    [4] = {F_STRING, 0, R, "description_keys"},
};
static const struct fdesc f_ss[] = {
    [1] = {F_MSG, M_SCOPE, 0, "scope"},
    [2] = {F_MSG, M_SPAN, R | SPAN, "spans"},
    [3] = {F_STRING, 0, 0, "schema_url"},
};
static const struct fdesc f_scope[] = {
    [1] = {F_STRING, 0, 0, "name"},
    [2] = {F_STRING, 0, 0, "version"},
    [3] = {F_MSG, M_KV, R | ATTRS, "attributes"},
    [4] = {F_VARINT, 0, 0, "dropped_attributes_count"},
};
static const struct fdesc f_span[] = {
    [1] = {F_BYTES, 0, 0, "trace_id"},
    [2] = {F_BYTES, 0, 0, "span_id"},
    [3] = {F_STRING, 0, 0, "trace_state"},
    [4] = {F_BYTES, 0, 0, "parent_span_id"},
    [5] = {F_STRING, 0, 0, "name"},
    [6] = {F_VARINT, 0, 0, "kind"},
    [7] = {F_I64, 0, 0, "start_time_unix_nano"},
    [8] = {F_I64, 0, 0, "end_time_unix_nano"},
    [9] = {F_MSG, M_KV, R | ATTRS, "attributes"},
    [10] = {F_VARINT, 0, 0, "dropped_attributes_count"},
    [11] = {F_MSG, M_EVENT, R, "events"},
    [12] = {F_VARINT, 0, 0, "dropped_events_count"},
    [13] = {F_MSG, M_LINK, R, "links"},
    [14] = {F_VARINT, 0, 0, "dropped_links_count"},
    [15] = {F_MSG, M_STATUS, 0, "status"},
    [16] = {F_I32, 0, 0, "flags"},
};
static const struct fdesc f_event[] = {
    [1] = {F_I64, 0, 0, "time_unix_nano"},
    [2] = {F_STRING, 0, 0, "name"},
    [3] = {F_MSG, M_KV, R | ATTRS, "attributes"},
    [4] = {F_VARINT, 0, 0, "dropped_attributes_count"},
};
static const struct fdesc f_link[] = {
    [1] = {F_BYTES, 0, 0, "trace_id"},
    [2] = {F_BYTES, 0, 0, "span_id"},
    [3] = {F_STRING, 0, 0, "trace_state"},
    [4] = {F_MSG, M_KV, R | ATTRS, "attributes"},
    [5] = {F_VARINT, 0, 0, "dropped_attributes_count"},
    [6] = {F_I32, 0, 0, "flags"},
};
static const struct fdesc f_status[] = {
    [2] = {F_STRING, 0, 0, "message"},
    [3] = {F_VARINT, 0, 0, "code"},
};
static const struct fdesc f_kv[] = {
    [1] = {F_STRING, 0, 0, "key"},
    [2] = {F_MSG, M_ANY, 0, "value"},
    [3] = {F_VARINT, 0, 0, "key_strindex"},
};
static const struct fdesc f_any[] = {
    [1] = {F_STRING, 0, 0, "string_value"},      [2] = {F_VARINT, 0, 0, "bool_value"},
    [3] = {F_VARINT, 0, 0, "int_value"},         [4] = {F_I64, 0, 0, "double_value"},
    [5] = {F_MSG, M_ARRAY, NEST, "array_value"}, [6] = {F_MSG, M_KVLIST, NEST, "kvlist_value"},
    [7] = {F_BYTES, 0, 0, "bytes_value"},        [8] = {F_VARINT, 0, 0, "string_value_strindex"},
};
static const struct fdesc f_array[] = {
    [1] = {F_MSG, M_ANY, R, "values"},
};
static const struct fdesc f_kvlist[] = {
    [1] = {F_MSG, M_KV, R | ATTRS, "values"},
};

#define MD(fields, type)                                                                           \
    {                                                                                              \
        TH_ARRAY_SIZE(fields), sizeof(type), fields                                                \
    }

static const struct mdesc schema[] = {
    [M_REQ] = MD(f_req, th_otlp_request_t),
    [M_RS] = MD(f_rs, th_otlp_resource_spans_t),
    [M_RES] = MD(f_res, Opentelemetry__Proto__Resource__V1__Resource),
    [M_ENTITY] = MD(f_entity, Opentelemetry__Proto__Common__V1__EntityRef),
    [M_SS] = MD(f_ss, th_otlp_scope_spans_t),
    [M_SCOPE] = MD(f_scope, Opentelemetry__Proto__Common__V1__InstrumentationScope),
    [M_SPAN] = MD(f_span, th_otlp_span_t),
    [M_EVENT] = MD(f_event, Opentelemetry__Proto__Trace__V1__Span__Event),
    [M_LINK] = MD(f_link, Opentelemetry__Proto__Trace__V1__Span__Link),
    [M_STATUS] = MD(f_status, Opentelemetry__Proto__Trace__V1__Status),
    [M_KV] = MD(f_kv, th_otlp_kv_t),
    [M_ANY] = MD(f_any, th_otlp_any_t),
    [M_ARRAY] = MD(f_array, Opentelemetry__Proto__Common__V1__ArrayValue),
    [M_KVLIST] = MD(f_kvlist, Opentelemetry__Proto__Common__V1__KeyValueList),
};

static const struct fdesc unknown_field = {F_UNKNOWN, 0, 0, NULL};

/* The wire type each kind must arrive with. */
static const uint8_t wire_of[] = {
    [F_UNKNOWN] = 0xff, [F_VARINT] = 0, [F_I64] = 1, [F_I32] = 5,
    [F_STRING] = 2,     [F_BYTES] = 2,  [F_MSG] = 2,
};

/* ---- The walk --------------------------------------------------------------------------- */

/*
 * Frames of the walk: the request, then at most request → resource_spans → scope_spans →
 * span → event → key/value → value (7), then three per level of nesting (kvlist → key/value
 * → value).
 */
#define MAX_FRAMES (8 + 3 * (TH_OTLP_MAX_DEPTH_CAP + 1))

/* An open message. Its parent resumes at its end, so no read position is kept. */
struct frame {
    const uint8_t *start; /* first byte of the message */
    const uint8_t *end;   /* one past its last byte */
    const uint8_t *tag;   /* where the field that opened it starts, in the parent */
    uint64_t counted;     /* elements counted against max_attributes */
    uint32_t depth;       /* AnyValue nesting at this message */
    uint8_t msg;
    uint8_t field; /* the parent's field number that opened it */
};

struct walk {
    const struct th_otlp_limits *lim;
    struct th_otlp_error *err;
    uint64_t spans;
    uint64_t estimate; /* a lower bound of what unpacking will allocate */
    unsigned sp;
    struct frame fr[MAX_FRAMES];
};

#define ALIGN16(n) (((uint64_t)(n) + 15u) & ~(uint64_t)15u)

/*
 * Read a varint of at most @p max bytes.
 * @return its length, 0 when the input ends first, or -1 when it runs past @p max bytes.
 */
static inline int rd_varint(const uint8_t *p, const uint8_t *end, int max, uint64_t *v)
{
    uint64_t r = 0;
    int avail = end - p < max ? (int)(end - p) : max;
    for (int i = 0; i < avail; i++) {
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return avail == max ? -1 : 0;
}

/* Skip one field whose tag has been read. Only used over bytes the walk already accepted. */
static const uint8_t *skip_value(const uint8_t *p, const uint8_t *end, unsigned wt)
{
    uint64_t v;
    int n;
    switch (wt) {
    case 0:
        n = rd_varint(p, end, 10, &v);
        return n > 0 ? p + n : end;
    case 1:
        return end - p >= 8 ? p + 8 : end;
    case 5:
        return end - p >= 4 ? p + 4 : end;
    case 2:
        n = rd_varint(p, end, 5, &v);
        if (n <= 0 || v > (uint64_t)(end - p - n)) {
            return end;
        }
        return p + n + v;
    default:
        return end;
    }
}

/* @return how many times field @p fno occurs in [start, stop): the index of the one at stop. */
static size_t index_of(const uint8_t *start, const uint8_t *stop, unsigned fno)
{
    size_t n = 0;
    const uint8_t *p = start;
    while (p < stop) {
        uint64_t tag;
        int len = rd_varint(p, stop, 5, &tag);
        if (len <= 0) {
            break;
        }
        p += len;
        if ((tag >> 3) == fno) {
            n++;
        }
        p = skip_value(p, stop, tag & 7);
    }
    return n;
}

static const struct fdesc *field_of(uint8_t msg, unsigned fno)
{
    const struct mdesc *md = &schema[msg];
    if (fno < md->nfields && md->f[fno].kind != F_UNKNOWN) {
        return &md->f[fno];
    }
    return &unknown_field;
}

/* Append one path component: `name`, `name[i]` or `field N` for unknown fields. */
static void path_add(char *buf, size_t cap, size_t *len, const struct fdesc *fd, unsigned fno,
                     bool indexed, size_t idx)
{
    if (*len >= cap) {
        return;
    }
    const char *dot = *len ? "." : "";
    int n;
    if (!fd->name) {
        n = snprintf(buf + *len, cap - *len, "%sfield %u", dot, fno);
    } else if (indexed && (fd->flags & R)) {
        n = snprintf(buf + *len, cap - *len, "%s%s[%zu]", dot, fd->name, idx);
    } else {
        n = snprintf(buf + *len, cap - *len, "%s%s", dot, fd->name);
    }
    *len = n < 0 ? cap : TH_MIN(cap, *len + (size_t)n);
}

/*
 * Write where the walk is into @p buf: the path of open messages, then the field whose tag
 * starts at @p at in the top frame (with its index) when @p fno is non-zero.
 * Indexes are found by rescanning the parents (already validated), so the hot path keeps
 * no per-field counters.
 */
static void where(const struct walk *w, unsigned fno, const uint8_t *at, bool indexed, char *buf,
                  size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (unsigned i = 1; i < w->sp; i++) {
        const struct frame *parent = &w->fr[i - 1];
        const struct frame *child = &w->fr[i];
        const struct fdesc *fd = field_of(parent->msg, child->field);
        path_add(buf, cap, &len, fd, child->field, true,
                 index_of(parent->start, child->tag, child->field));
    }
    if (fno) {
        const struct frame *top = &w->fr[w->sp - 1];
        path_add(buf, cap, &len, field_of(top->msg, fno), fno, indexed,
                 indexed ? index_of(top->start, at, fno) : 0);
    }
    if (len == 0) {
        snprintf(buf, cap, "request");
    }
}

/* Fail with a message prefixed by the place (the field at @p at, when fno != 0). */
static int fail(struct walk *w, int rc, unsigned fno, const uint8_t *at, bool indexed,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail(struct walk *w, int rc, unsigned fno, const uint8_t *at, bool indexed,
                const char *fmt, ...)
{
    if (!w->err) {
        return rc;
    }
    char path[200];
    where(w, fno, at, indexed, path, sizeof(path));
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    th__otlp_errf(w->err, "%s: %s", path, what);
    return rc;
}

static const char *wire_name(unsigned wt)
{
    static const char *const names[] = {
        "varint", "64-bit", "length-delimited", "group start", "group end", "32-bit", "6", "7"};
    return names[wt & 7];
}

/* Check a string field's bytes: length limit, UTF-8, no NUL (protobuf-c would cut there). */
static inline int check_string(struct walk *w, unsigned fno, const uint8_t *at, const uint8_t *s,
                               uint64_t len, const uint8_t *limit)
{
    if (len > w->lim->max_string_len) {
        return fail(w, TH_E2BIG, fno, at, true,
                    "string of %llu bytes is longer than %llu (" TH_OTLP_KEY_STRLEN ")",
                    (unsigned long long)len, (unsigned long long)w->lim->max_string_len);
    }
    switch (th__utf8_check_in(s, len, limit)) {
    case TH__UTF8_OK:
        return 0;
    case TH__UTF8_NUL:
        return fail(w, TH_EDECODE, fno, at, true, "string contains a NUL byte");
    default:
        return fail(w, TH_EDECODE, fno, at, true, "string is not valid UTF-8");
    }
}

/* Count a sub-message against the limits before it is opened. */
static inline int count(struct walk *w, struct frame *top, const struct fdesc *fd, unsigned fno,
                        const uint8_t *at, uint32_t *depth)
{
    if ((fd->flags & SPAN) && ++w->spans > w->lim->max_spans) {
        th__otlp_errf(w->err, "request has more than %llu spans (" TH_OTLP_KEY_SPANS ")",
                      (unsigned long long)w->lim->max_spans);
        return TH_E2BIG;
    }
    if ((fd->flags & ATTRS) && ++top->counted > w->lim->max_attributes) {
        return fail(w, TH_E2BIG, fno, at, false, "more than %llu entries (" TH_OTLP_KEY_ATTRS ")",
                    (unsigned long long)w->lim->max_attributes);
    }
    if ((fd->flags & NEST) && ++*depth > w->lim->max_depth) {
        return fail(w, TH_E2BIG, fno, at, false,
                    "values nested deeper than %u (" TH_OTLP_KEY_DEPTH ")",
                    (unsigned)w->lim->max_depth);
    }
    return 0;
}

/*
 * The most common message, a key/value, in one go: `key`, then `value` with one string,
 * bool, int, double or string_value_strindex member (or none), one-byte tags and lengths.
 * Everything the general walk checks inside it is checked here too (string length limit,
 * UTF-8, varint lengths, the fields filling the message exactly) and the estimate gets what
 * the walk would add inside it; anything else, valid or not, returns false and the general
 * walk takes the key/value apart as before, so every error keeps its message.
 * @param[in] p,end the key/value's bytes; @p limit the end of readable input.
 */
static inline bool kv_fast(const struct walk *w, const uint8_t *p, const uint8_t *end,
                           const uint8_t *limit, uint64_t *est)
{
    if (end - p < 4 || p[0] != 0x0a || p[1] >= 0x80) {
        return false;
    }
    size_t klen = p[1];
    const uint8_t *key = p + 2;
    if (klen > (size_t)(end - key) - 2) {
        return false;
    }
    const uint8_t *val = key + klen;
    if (val[0] != 0x12 || val[1] >= 0x80 || (size_t)val[1] != (size_t)(end - val) - 2) {
        return false;
    }
    size_t vlen = val[1];
    val += 2;
    if (klen > w->lim->max_string_len || th__utf8_check_in(key, klen, limit) != TH__UTF8_OK) {
        return false;
    }
    uint64_t add = ALIGN16(klen + 1) + ALIGN16(sizeof(th_otlp_any_t));
    uint64_t v;
    int n;
    if (vlen > 0) {
        switch (val[0]) {
        case 0x0a: /* string_value */
            if (vlen < 2 || val[1] >= 0x80 || (size_t)val[1] != vlen - 2 ||
                val[1] > w->lim->max_string_len ||
                th__utf8_check_in(val + 2, val[1], limit) != TH__UTF8_OK) {
                return false;
            }
            add += ALIGN16((uint64_t)val[1] + 1);
            break;
        case 0x10: /* bool_value */
        case 0x18: /* int_value */
        case 0x40: /* string_value_strindex */
            n = rd_varint(val + 1, end, 10, &v);
            if (n <= 0 || (size_t)n != vlen - 1) {
                return false;
            }
            break;
        case 0x21: /* double_value */
            if (vlen != 9) {
                return false;
            }
            break;
        default:
            return false;
        }
    }
    *est += add;
    return true;
}

/*
 * The walk: one loop, one explicit stack. Each turn reads one field of the innermost open
 * message; a sub-message pushes a frame and the walk continues inside it, and when its
 * bytes are used up the frame is popped and the parent continues right after it. The
 * innermost message's bounds and field table live in locals; frames are touched only on
 * push and pop.
 */
static int prewalk(struct walk *w, const uint8_t *buf, size_t len)
{
    const uint8_t *p = buf;
    const uint8_t *end = buf + len;
    struct frame *top = &w->fr[0];
    *top = (struct frame){.start = buf, .end = end, .msg = M_REQ};
    w->sp = 1;
    const struct fdesc *fields = schema[M_REQ].f;
    unsigned nfields = schema[M_REQ].nfields;
    uint64_t est = ALIGN16(sizeof(th_otlp_request_t));
    int rc;
    for (;;) {
        if (p >= end) {
            if (w->sp == 1) {
                break;
            }
            w->sp--;
            top--;
            end = top->end;
            fields = schema[top->msg].f;
            nfields = schema[top->msg].nfields;
            continue;
        }
        const uint8_t *at = p;
        uint64_t tag;
        if (*p < 0x80) {
            tag = *p++;
            if (tag < 8) {
                goto bad_field;
            }
        } else {
            int n = rd_varint(p, end, 5, &tag);
            if (n <= 0) {
                return fail(w, TH_EDECODE, 0, NULL, false, "%s field tag at byte %zu",
                            n == 0 ? "truncated" : "overlong", (size_t)(at - buf));
            }
            p += n;
            if (tag < 8 || (tag >> 3) > 0x1fffffff) {
                goto bad_field;
            }
        }
        unsigned fno = (unsigned)(tag >> 3);
        unsigned wt = tag & 7;
        const struct fdesc *fd = fno < nfields ? &fields[fno] : &unknown_field;
        uint64_t v;
        int n;
        /* Known fields: one switch on the kind, each case checking its wire type. */
        switch (fd->kind) {
        case F_VARINT:
            if (wt != 0) {
                goto wrong_wire;
            }
            if (p < end && *p < 0x80) {
                p++;
            } else {
                n = rd_varint(p, end, 10, &v);
                if (n <= 0) {
                    return fail(w, TH_EDECODE, fno, at, true, "%s varint",
                                n == 0 ? "truncated" : "overlong");
                }
                p += n;
            }
            continue;
        case F_I64:
            if (wt != 1) {
                goto wrong_wire;
            }
            if (end - p < 8) {
                return fail(w, TH_EDECODE, fno, at, true, "truncated 64-bit value");
            }
            p += 8;
            continue;
        case F_I32:
            if (wt != 5) {
                goto wrong_wire;
            }
            if (end - p < 4) {
                return fail(w, TH_EDECODE, fno, at, true, "truncated 32-bit value");
            }
            p += 4;
            continue;
        case F_UNKNOWN:
            break;
        default:
            if (wt != 2) {
                goto wrong_wire;
            }
            break;
        }
        /* Length-delimited fields, and every unknown field. */
        switch (wt) {
        case 0:
            n = rd_varint(p, end, 10, &v);
            if (n <= 0) {
                return fail(w, TH_EDECODE, fno, at, true, "%s varint",
                            n == 0 ? "truncated" : "overlong");
            }
            p += n;
            est += ALIGN16((size_t)(p - at));
            continue;
        case 1:
        case 5:
            if (end - p < (wt == 1 ? 8 : 4)) {
                return fail(w, TH_EDECODE, fno, at, true, "truncated %s value", wire_name(wt));
            }
            p += wt == 1 ? 8 : 4;
            est += ALIGN16((size_t)(p - at));
            continue;
        case 2:
            break;
        default:
            return fail(w, TH_EDECODE, fno, at, true, "unsupported wire type %s", wire_name(wt));
        }
        /* protobuf-c reads lengths as at most 5 bytes into a uint32. */
        if (p < end && *p < 0x80) {
            v = *p++;
        } else {
            n = rd_varint(p, end, 5, &v);
            if (n <= 0 || v > UINT32_MAX) {
                return fail(w, TH_EDECODE, fno, at, true, "%s length",
                            n == 0 ? "truncated" : "invalid");
            }
            p += n;
        }
        if (v > (uint64_t)(end - p)) {
            return fail(w, TH_EDECODE, fno, at, true,
                        "length %llu runs past the end of its message (%zu bytes left)",
                        (unsigned long long)v, (size_t)(end - p));
        }
        const uint8_t *body = p;
        p += v;
        switch (fd->kind) {
        case F_STRING:
            if ((rc = check_string(w, fno, at, body, v, buf + len))) {
                return rc;
            }
            est += ALIGN16(v + 1) + ((fd->flags & R) ? sizeof(void *) : 0);
            break;
        case F_BYTES:
            if (v > w->lim->max_string_len) {
                return fail(w, TH_E2BIG, fno, at, true,
                            "bytes value of %llu bytes is longer than %llu "
                            "(" TH_OTLP_KEY_STRLEN ")",
                            (unsigned long long)v, (unsigned long long)w->lim->max_string_len);
            }
            est += ALIGN16(v);
            break;
        case F_MSG: {
            uint32_t depth = top->depth;
            if (fd->flags & (SPAN | ATTRS | NEST)) {
                if ((rc = count(w, top, fd, fno, at, &depth))) {
                    return rc;
                }
            }
            th_assert(w->sp < MAX_FRAMES);
            est += ALIGN16(schema[fd->sub].size) + ((fd->flags & R) ? sizeof(void *) : 0);
            if (fd->sub == M_KV && kv_fast(w, body, p, buf + len, &est)) {
                break; /* checked whole: no frame for it or its value */
            }
            top++;
            w->sp++;
            top->start = body;
            top->end = p;
            top->tag = at;
            top->counted = 0;
            top->depth = depth;
            top->msg = fd->sub;
            top->field = (uint8_t)fno;
            fields = schema[fd->sub].f;
            nfields = schema[fd->sub].nfields;
            end = p;
            p = body;
            break;
        }
        default:
            est += ALIGN16(v + (size_t)(body - at));
            break;
        }
        continue;
    bad_field:
        return fail(w, TH_EDECODE, 0, NULL, false, "invalid field number %llu at byte %zu",
                    (unsigned long long)(tag >> 3), (size_t)(at - buf));
    wrong_wire:
        return fail(w, TH_EDECODE, fno, at, true, "wrong wire type %s, expected %s", wire_name(wt),
                    wire_name(wire_of[fd->kind]));
    }
    w->estimate = est;
    return 0;
}

int th__otlp_prewalk(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                     struct th_otlp_error *err, uint64_t *estimate)
{
    if (!buf) {
        buf = (const uint8_t *)"";
        len = 0;
    }
    /* The walk's stack is about 16 KB: on the C stack, so no malloc per request. */
    struct walk w;
    w.lim = lim;
    w.err = err;
    w.spans = 0;
    w.estimate = 0;
    int rc = prewalk(&w, buf, len);
    if (rc == 0) {
        *estimate = w.estimate;
    }
    return rc;
}

int th_otlp_decode_pb(const uint8_t *buf, size_t len, const struct th_otlp_limits *lim,
                      th_arena_t *arena, th_otlp_request_t **out, struct th_otlp_error *err)
{
    if (!buf) {
        buf = (const uint8_t *)"";
        len = 0;
    }
    struct th_otlp_limits l;
    th__otlp_limits_resolve(lim, len, &l);
    if (err) {
        err->msg[0] = '\0';
        err->arena_limit = false;
    }

    struct th__otlp_mem mem;
    th__otlp_mem_init(&mem, arena, (size_t)l.max_arena);
    uint64_t estimate = 0;
    int rc = th__otlp_prewalk(buf, len, &l, err, &estimate);
    if (rc) {
        return rc;
    }
    if (estimate > l.max_arena) {
        /* Certain to fail: say so before allocating anything. */
        mem.over_limit = true;
        return th__otlp_mem_fail(&mem, err);
    }

    th_otlp_request_t *req = NULL;
    rc = th__otlp_unpack(buf, len, &mem, &req);
    if (rc == TH_ENOMEM) {
        return th__otlp_mem_fail(&mem, err);
    }
    if (rc) {
        /* The walk accepts only what the unpacker can read; this is a bug if it happens. */
        th__otlp_errf(err, "could not unpack the request");
        return TH_EDECODE;
    }
    rc = th__otlp_validate(req, err);
    if (rc) {
        return rc;
    }
    *out = req;
    return 0;
}

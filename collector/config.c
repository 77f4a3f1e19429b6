/*
 * The Collector's YAML config: libyaml events built into a th_node_t tree (with ${...}
 * substitution in values, anchors, aliases and merge keys), then the checks that need no
 * component registry: top-level keys, component id syntax, the shape of service::pipelines
 * and service::telemetry. Everything lives in one arena owned by the th_config_t.
 *
 * The loader is strict because it reads untrusted text: nesting, node count (alias copies
 * included, so an alias bomb fails fast) and input size are bounded, duplicate keys are an
 * error as in yaml.v3, and NUL bytes inside values are refused so C strings stay whole.
 */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "th/config.h"
#include "th/log.h"
#include "th/tls.h"

#define MAX_TEXT  (16u << 20)
#define MAX_DEPTH 64
#define MAX_NODES 100000

/* ---- A set of strings, for duplicate checks that stay linear on hostile input ------------ */

struct strset {
    const char **slot;
    size_t cap; /* a power of two, at least twice the entries */
};

static int strset_init(struct strset *s, size_t n)
{
    s->cap = 16;
    while (s->cap < 2 * n + 2) {
        s->cap *= 2;
    }
    s->slot = th_calloc(s->cap, sizeof(*s->slot));
    return s->slot ? 0 : TH_ENOMEM;
}

static void strset_free(struct strset *s)
{
    th_free(s->slot);
    s->slot = NULL;
}

/* Insert key; returns the index of an equal key already there, or -1 after inserting. The
 * index is the slot, which callers only test against -1. */
static long strset_add(struct strset *s, const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    size_t i = (size_t)h & (s->cap - 1);
    while (s->slot[i]) {
        if (!strcmp(s->slot[i], key)) {
            return (long)i;
        }
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = key;
    return -1;
}

/* ---- The YAML loader --------------------------------------------------------------------- */

struct anchor {
    char *name;
    th_node_t *node;
};

/* A map entry while its map is being read: the key's line is kept for duplicate messages. */
struct tmp_pair {
    const char *key;
    th_node_t *value;
    int line;
};

struct loader {
    yaml_parser_t parser;
    th_arena_t *a;
    const char *source;
    char *err;
    size_t errlen;
    size_t nodes;
    struct anchor *anchors;
    size_t n_anchors;
    size_t cap_anchors;
    /* The key path of the node being read, for messages: a key, or an index in a list. */
    const char *keys[MAX_DEPTH + 2];
    size_t index[MAX_DEPTH + 2];
    int depth;
};

/* Write the current key path ("a::b::0") into buf. */
static const char *cur_path(const struct loader *ld, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < ld->depth && n < cap; i++) {
        if (ld->keys[i]) {
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "::" : "", ld->keys[i]);
        } else {
            n += (size_t)snprintf(buf + n, cap - n, "%s%zu", n ? "::" : "", ld->index[i]);
        }
    }
    return buf;
}

static int lfail(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "path: line N: message" (the path is left out at the top). */
static int lfail(struct loader *ld, int line, const char *fmt, ...)
{
    char path[512];
    cur_path(ld, path, sizeof(path));
    int n;
    if (*path) {
        n = snprintf(ld->err, ld->errlen, "%s: line %d: ", path, line);
    } else {
        n = snprintf(ld->err, ld->errlen, "%s: line %d: ", ld->source, line);
    }
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return TH_ECONFIG;
}

static int loom(struct loader *ld)
{
    snprintf(ld->err, ld->errlen, "out of memory");
    return TH_ENOMEM;
}

/* The next event, or a syntax error with the line and column libyaml reports. */
static int next_event(struct loader *ld, yaml_event_t *ev)
{
    if (yaml_parser_parse(&ld->parser, ev)) {
        return 0;
    }
    yaml_parser_t *p = &ld->parser;
    if (p->error == YAML_MEMORY_ERROR) {
        return loom(ld);
    }
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->error == YAML_READER_ERROR) {
        snprintf(ld->err, ld->errlen, "%s: yaml: byte %zu: %s", ld->source, p->problem_offset,
                 problem);
    } else if (p->context) {
        snprintf(ld->err, ld->errlen, "%s: yaml: line %zu, column %zu: %s (%s at line %zu)",
                 ld->source, p->problem_mark.line + 1, p->problem_mark.column + 1, problem,
                 p->context, p->context_mark.line + 1);
    } else {
        snprintf(ld->err, ld->errlen, "%s: yaml: line %zu, column %zu: %s", ld->source,
                 p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
    }
    return TH_ECONFIG;
}

static th_node_t *new_node(struct loader *ld, enum th_node_kind kind, int line, int *ret)
{
    if (++ld->nodes > MAX_NODES) {
        *ret = lfail(ld, line, "more than %d values (is an alias expanding too much?)", MAX_NODES);
        return NULL;
    }
    th_node_t *n = th_arena_calloc(ld->a, 1, sizeof(*n));
    if (!n) {
        *ret = loom(ld);
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    return n;
}

static int add_anchor(struct loader *ld, const yaml_char_t *name, th_node_t *node)
{
    if (!name) {
        return 0;
    }
    if (ld->n_anchors == ld->cap_anchors) {
        size_t cap = ld->cap_anchors ? ld->cap_anchors * 2 : 8;
        struct anchor *a = th_realloc(ld->anchors, cap * sizeof(*a));
        if (!a) {
            return loom(ld);
        }
        ld->anchors = a;
        ld->cap_anchors = cap;
    }
    char *copy = th_strdup((const char *)name);
    if (!copy) {
        return loom(ld);
    }
    ld->anchors[ld->n_anchors].name = copy;
    ld->anchors[ld->n_anchors].node = node;
    ld->n_anchors++;
    return 0;
}

/* Copy an anchored tree for an alias. Copies count towards MAX_NODES and MAX_DEPTH, which is
 * what stops "billion laughs" documents. Strings are shared: they never change. */
static int copy_tree(struct loader *ld, const th_node_t *src, int depth, th_node_t **out)
{
    int ret = 0;
    if (depth > MAX_DEPTH) {
        return lfail(ld, src->line, "nesting deeper than %d levels (through an alias)", MAX_DEPTH);
    }
    th_node_t *n = new_node(ld, src->kind, src->line, &ret);
    if (!n) {
        return ret;
    }
    *n = *src;
    if (src->kind == TH_NODE_MAP && src->n) {
        n->pairs = th_arena_alloc(ld->a, src->n * sizeof(*n->pairs));
        if (!n->pairs) {
            return loom(ld);
        }
        for (size_t i = 0; i < src->n; i++) {
            n->pairs[i].key = src->pairs[i].key;
            ret = copy_tree(ld, src->pairs[i].value, depth + 1, &n->pairs[i].value);
            if (ret != 0) {
                return ret;
            }
        }
    } else if (src->kind == TH_NODE_SEQ && src->n) {
        n->items = th_arena_alloc(ld->a, src->n * sizeof(*n->items));
        if (!n->items) {
            return loom(ld);
        }
        for (size_t i = 0; i < src->n; i++) {
            ret = copy_tree(ld, src->items[i], depth + 1, &n->items[i]);
            if (ret != 0) {
                return ret;
            }
        }
    }
    *out = n;
    return 0;
}

static bool is_null_text(const char *s, size_t len)
{
    return len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static int load_scalar(struct loader *ld, yaml_event_t *ev, int line, th_node_t **out)
{
    int ret = 0;
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (memchr(text, '\0', len)) {
        return lfail(ld, line, "a NUL character inside a value is not allowed");
    }
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    bool str_tag = tag && (!strcmp(tag, YAML_STR_TAG) || !strcmp(tag, "!"));
    bool null_tag = tag && !strcmp(tag, YAML_NULL_TAG);
    if (null_tag || (plain && !tag && is_null_text(text, len))) {
        *out = new_node(ld, TH_NODE_NULL, line, &ret);
        return *out ? 0 : ret;
    }
    th_node_t *n = new_node(ld, TH_NODE_SCALAR, line, &ret);
    if (!n) {
        return ret;
    }
    n->quoted = !plain || str_tag;
    if (memchr(text, '$', len)) {
        char msg[400];
        bool whole = false;
        bool is_null = false;
        ret = th_config_expand(text, ld->a, &n->text, &whole, &is_null, msg, sizeof(msg));
        if (ret == TH_ENOMEM) {
            return loom(ld);
        }
        if (ret != 0) {
            return lfail(ld, line, "%s", msg);
        }
        n->len = strlen(n->text);
        if (whole) {
            /* One ${...} and nothing else: typed from the value, whatever the YAML quotes. */
            n->expanded = true;
            n->quoted = false;
            if (is_null) {
                n->kind = TH_NODE_NULL;
            }
        }
    } else {
        n->text = th_arena_strndup(ld->a, text, len);
        if (!n->text) {
            return loom(ld);
        }
        n->len = len;
    }
    *out = n;
    return 0;
}

static int load_node(struct loader *ld, yaml_event_t *ev, th_node_t **out);

static int load_seq(struct loader *ld, yaml_event_t *start, th_node_t **out)
{
    int ret = 0;
    int line = (int)start->start_mark.line + 1;
    th_node_t **items = NULL;
    size_t n = 0, cap = 0;
    yaml_event_t ev;
    th_node_t *node = new_node(ld, TH_NODE_SEQ, line, &ret);
    if (!node) {
        return ret;
    }
    for (;;) {
        ret = next_event(ld, &ev);
        if (ret != 0) {
            goto out;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            th_node_t **p = th_realloc(items, cap * sizeof(*p));
            if (!p) {
                yaml_event_delete(&ev);
                ret = loom(ld);
                goto out;
            }
            items = p;
        }
        ld->keys[ld->depth] = NULL;
        ld->index[ld->depth] = n;
        ld->depth++;
        ret = load_node(ld, &ev, &items[n]);
        ld->depth--;
        if (ret != 0) {
            goto out;
        }
        n++;
    }
    if (n) {
        node->items = th_arena_memdup(ld->a, items, n * sizeof(*items));
        if (!node->items) {
            ret = loom(ld);
            goto out;
        }
    }
    node->n = n;
    *out = node;
out:
    th_free(items);
    return ret;
}

/*
 * Build the pairs of a finished map: explicit keys must be unique; `<<` merge sources add
 * only keys not given explicitly (the first source wins among several), as in yaml.v3.
 */
static int finish_map(struct loader *ld, th_node_t *node, struct tmp_pair *pairs, size_t n,
                      th_node_t **merges, size_t n_merges)
{
    size_t total = n;
    for (size_t i = 0; i < n_merges; i++) {
        total += merges[i]->n;
    }
    struct strset set;
    if (strset_init(&set, total) != 0) {
        return loom(ld);
    }
    int ret = 0;
    struct th_node_pair *out = total ? th_arena_alloc(ld->a, total * sizeof(*out)) : NULL;
    if (total && !out) {
        ret = loom(ld);
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strset_add(&set, pairs[i].key) >= 0) {
            int first = 0;
            for (size_t j = 0; j < i; j++) {
                if (!strcmp(pairs[j].key, pairs[i].key)) {
                    first = pairs[j].line;
                    break;
                }
            }
            ld->keys[ld->depth] = pairs[i].key;
            ld->depth++;
            ret = lfail(ld, pairs[i].line, "mapping key already defined at line %d", first);
            ld->depth--;
            goto out;
        }
        out[k].key = pairs[i].key;
        out[k].value = pairs[i].value;
        k++;
    }
    for (size_t m = 0; m < n_merges; m++) {
        for (size_t i = 0; i < merges[m]->n; i++) {
            if (strset_add(&set, merges[m]->pairs[i].key) < 0) {
                out[k++] = merges[m]->pairs[i];
            }
        }
    }
    node->pairs = out;
    node->n = k;
out:
    strset_free(&set);
    return ret;
}

static int load_map(struct loader *ld, yaml_event_t *start, th_node_t **out)
{
    int ret = 0;
    int line = (int)start->start_mark.line + 1;
    struct tmp_pair *pairs = NULL;
    size_t n = 0, cap = 0;
    th_node_t **merges = NULL;
    size_t n_merges = 0, cap_merges = 0;
    yaml_event_t ev;
    th_node_t *node = new_node(ld, TH_NODE_MAP, line, &ret);
    if (!node) {
        return ret;
    }
    for (;;) {
        ret = next_event(ld, &ev);
        if (ret != 0) {
            goto out;
        }
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        int kline = (int)ev.start_mark.line + 1;
        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            ret = lfail(ld, kline, "a map key must be a plain string");
            goto out;
        }
        const char *ktext = (const char *)ev.data.scalar.value;
        size_t klen = ev.data.scalar.length;
        bool merge =
            ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && klen == 2 && !memcmp(ktext, "<<", 2);
        if (memchr(ktext, '\0', klen)) {
            yaml_event_delete(&ev);
            ret = lfail(ld, kline, "a NUL character inside a key is not allowed");
            goto out;
        }
        const char *key = th_arena_strndup(ld->a, ktext, klen);
        yaml_event_delete(&ev);
        if (!key) {
            ret = loom(ld);
            goto out;
        }
        ret = next_event(ld, &ev);
        if (ret != 0) {
            goto out;
        }
        th_node_t *value;
        ld->keys[ld->depth] = key;
        ld->depth++;
        ret = load_node(ld, &ev, &value);
        ld->depth--;
        if (ret != 0) {
            goto out;
        }
        if (merge) {
            /* `<<: *base` or `<<: [*a, *b]`: every source must be a map. */
            th_node_t **src = value->kind == TH_NODE_SEQ ? value->items : &value;
            size_t ns = value->kind == TH_NODE_SEQ ? value->n : 1;
            for (size_t i = 0; i < ns; i++) {
                if (src[i]->kind != TH_NODE_MAP) {
                    ret = lfail(ld, kline,
                                "the value of a << merge key must be a map or a list "
                                "of maps");
                    goto out;
                }
                if (n_merges == cap_merges) {
                    cap_merges = cap_merges ? cap_merges * 2 : 4;
                    th_node_t **p = th_realloc(merges, cap_merges * sizeof(*p));
                    if (!p) {
                        ret = loom(ld);
                        goto out;
                    }
                    merges = p;
                }
                merges[n_merges++] = src[i];
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            struct tmp_pair *p = th_realloc(pairs, cap * sizeof(*p));
            if (!p) {
                ret = loom(ld);
                goto out;
            }
            pairs = p;
        }
        pairs[n].key = key;
        pairs[n].value = value;
        pairs[n].line = kline;
        n++;
    }
    ret = finish_map(ld, node, pairs, n, merges, n_merges);
    if (ret == 0) {
        *out = node;
    }
out:
    th_free(pairs);
    th_free(merges);
    return ret;
}

/* Read the node that starts with *ev (which this function deletes). */
static int load_node(struct loader *ld, yaml_event_t *ev, th_node_t **out)
{
    int ret;
    int line = (int)ev->start_mark.line + 1;
    yaml_char_t *anchor = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        ret = load_scalar(ld, ev, line, out);
        if (ret == 0) {
            ret = add_anchor(ld, ev->data.scalar.anchor, *out);
        }
        break;
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        const th_node_t *target = NULL;
        for (size_t i = ld->n_anchors; i-- > 0;) {
            if (!strcmp(ld->anchors[i].name, name)) {
                target = ld->anchors[i].node;
                break;
            }
        }
        if (!target) {
            /* Also the case of an alias inside its own anchor, which would be a cycle. */
            ret = lfail(ld, line, "unknown anchor \"%.100s\" referenced", name);
            break;
        }
        ret = copy_tree(ld, target, ld->depth, out);
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (ld->depth >= MAX_DEPTH) {
            ret = lfail(ld, line, "nesting deeper than %d levels", MAX_DEPTH);
            break;
        }
        anchor = ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
                                                       : ev->data.mapping_start.anchor;
        ret = ev->type == YAML_SEQUENCE_START_EVENT ? load_seq(ld, ev, out) : load_map(ld, ev, out);
        if (ret == 0) {
            /* Registered only now, so an alias inside its own anchor is "unknown". */
            ret = add_anchor(ld, anchor, *out);
        }
        break;
    default:
        ret = lfail(ld, line, "unexpected YAML event");
        break;
    }
    yaml_event_delete(ev);
    return ret;
}

int th_yaml_parse(const char *yaml, size_t len, const char *source, th_arena_t *arena,
                  th_node_t **out, char *err, size_t errlen)
{
    int ret;
    yaml_event_t ev;
    struct loader *ld = th_calloc(1, sizeof(*ld));
    if (!ld) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    ld->a = arena;
    ld->source = source ? source : "<config>";
    ld->err = err;
    ld->errlen = errlen;
    if (len > MAX_TEXT) {
        snprintf(err, errlen, "%s: the configuration is larger than %u MiB", ld->source,
                 MAX_TEXT >> 20);
        th_free(ld);
        return TH_ECONFIG;
    }
    if (!yaml_parser_initialize(&ld->parser)) {
        th_free(ld);
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    yaml_parser_set_input_string(&ld->parser, (const unsigned char *)yaml, len);
    th_node_t *root = NULL;
    /* STREAM-START, then DOCUMENT-START node DOCUMENT-END, or STREAM-END when empty. */
    ret = next_event(ld, &ev);
    if (ret != 0) {
        goto out;
    }
    yaml_event_delete(&ev);
    ret = next_event(ld, &ev);
    if (ret != 0) {
        goto out;
    }
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        yaml_event_delete(&ev);
        ret = next_event(ld, &ev);
        if (ret != 0) {
            goto out;
        }
        ret = load_node(ld, &ev, &root);
        if (ret != 0) {
            goto out;
        }
        ret = next_event(ld, &ev); /* DOCUMENT-END */
        if (ret != 0) {
            goto out;
        }
        yaml_event_delete(&ev);
        ret = next_event(ld, &ev);
        if (ret != 0) {
            goto out;
        }
        if (ev.type != YAML_STREAM_END_EVENT) {
            ret = lfail(ld, (int)ev.start_mark.line + 1,
                        "only one YAML document is allowed in a configuration");
            yaml_event_delete(&ev);
            goto out;
        }
    }
    yaml_event_delete(&ev);
    if (!root) {
        root = new_node(ld, TH_NODE_NULL, 1, &ret);
        if (!root) {
            goto out;
        }
    }
    *out = root;
out:
    for (size_t i = 0; i < ld->n_anchors; i++) {
        th_free(ld->anchors[i].name);
    }
    th_free(ld->anchors);
    yaml_parser_delete(&ld->parser);
    th_free(ld);
    return ret;
}

const th_node_t *th_node_get(const th_node_t *map, const char *key)
{
    if (!map || map->kind != TH_NODE_MAP) {
        return NULL;
    }
    for (size_t i = 0; i < map->n; i++) {
        if (!strcmp(map->pairs[i].key, key)) {
            return map->pairs[i].value;
        }
    }
    return NULL;
}

/* ---- Component ids ----------------------------------------------------------------------- */

/* Decode one UTF-8 code point; 0 on invalid or overlong sequences. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2;
        v = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        v = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (len < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return n;
}

/*
 * Whether a code point is one the Collector refuses in a name: Unicode separators (\pZ),
 * control and format characters (\pC) and symbols (\pS). ASCII is exact; beyond it this is an
 * approximation by ranges (the common symbol blocks, emoji, private use), not the full
 * Unicode tables.
 */
static bool bad_name_char(uint32_t c)
{
    if (c < 0x80) {
        return c < 0x21 || c == 0x7f || strchr("$+<=>^`|~", (int)c) != NULL;
    }
    static const uint32_t ranges[][2] = {
        {0x80, 0xa0},       {0xa2, 0xa6},       {0xa8, 0xa9},        {0xac, 0xb1},
        {0xb4, 0xb4},       {0xb8, 0xb8},       {0xd7, 0xd7},        {0xf7, 0xf7},
        {0x2c2, 0x2c5},     {0x2d2, 0x2df},     {0x2e5, 0x2eb},      {0x2ed, 0x2ed},
        {0x2ef, 0x2ff},     {0x600, 0x605},     {0x61c, 0x61c},      {0x6dd, 0x6dd},
        {0x70f, 0x70f},     {0x1680, 0x1680},   {0x180e, 0x180e},    {0x2000, 0x200f},
        {0x2028, 0x202f},   {0x2044, 0x2044},   {0x205f, 0x206f},    {0x207a, 0x207c},
        {0x208a, 0x208c},   {0x20a0, 0x20cf},   {0x2190, 0x2307},    {0x230c, 0x2328},
        {0x232b, 0x2767},   {0x2794, 0x27c4},   {0x27c7, 0x27e5},    {0x27f0, 0x2982},
        {0x2999, 0x29d7},   {0x29dc, 0x29fb},   {0x29fe, 0x2bff},    {0x3000, 0x3000},
        {0xe000, 0xf8ff},   {0xfdd0, 0xfdef},   {0xfeff, 0xfeff},    {0xfff9, 0xffff},
        {0x1f000, 0x1faff}, {0xe0000, 0xe007f}, {0xf0000, 0x10ffff},
    };
    for (size_t i = 0; i < TH_ARRAY_SIZE(ranges); i++) {
        if (c >= ranges[i][0] && c <= ranges[i][1]) {
            return true;
        }
    }
    return (c & 0xfffe) == 0xfffe; /* noncharacters at the end of every plane */
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim ASCII white space around s[0..*len), returning the new start. */
static const char *trim(const char *s, size_t *len)
{
    while (*len && is_space(s[0])) {
        s++;
        (*len)--;
    }
    while (*len && is_space(s[*len - 1])) {
        (*len)--;
    }
    return s;
}

int th_config_split_id(const char *id, th_arena_t *a, const char **type, const char **name,
                       char *err, size_t errlen)
{
    const char *slash = strchr(id, '/');
    size_t tlen = slash ? (size_t)(slash - id) : strlen(id);
    const char *t = trim(id, &tlen);
    if (!slash && tlen == 0) {
        snprintf(err, errlen, "id must not be empty");
        return TH_ECONFIG;
    }
    if (tlen == 0) {
        snprintf(err, errlen, "the part before / should not be empty");
        return TH_ECONFIG;
    }
    bool ok = tlen <= 63 && ((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z'));
    for (size_t i = 1; ok && i < tlen; i++) {
        char c = t[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (!ok) {
        snprintf(err, errlen,
                 "invalid character(s) in type \"%.*s\" (a letter, then up to 62 letters, digits "
                 "or _)",
                 (int)TH_MIN(tlen, 100), t);
        return TH_ECONFIG;
    }
    const char *n = NULL;
    size_t nlen = 0;
    if (slash) {
        nlen = strlen(slash + 1);
        n = trim(slash + 1, &nlen);
        if (nlen == 0) {
            snprintf(err, errlen, "the part after / should not be empty");
            return TH_ECONFIG;
        }
        if (nlen > 1024) {
            snprintf(err, errlen, "the name after / is longer than 1024 characters");
            return TH_ECONFIG;
        }
        for (size_t i = 0; i < nlen;) {
            uint32_t cp;
            size_t step = utf8_next((const unsigned char *)n + i, nlen - i, &cp);
            if (!step || bad_name_char(cp)) {
                snprintf(err, errlen,
                         "invalid character(s) in name \"%.*s\" (no spaces, control characters "
                         "or symbols)",
                         (int)TH_MIN(nlen, 100), n);
                return TH_ECONFIG;
            }
            i += step;
        }
    }
    if (!a) {
        return 0;
    }
    const char *tc = th_arena_strndup(a, t, tlen);
    const char *nc = th_arena_strndup(a, n ? n : "", nlen);
    if (!tc || !nc) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    if (type) {
        *type = tc;
    }
    if (name) {
        *name = nc;
    }
    return 0;
}

/* ---- The whole file ---------------------------------------------------------------------- */

struct cctx {
    th_config_t *cfg;
    char *err;
    size_t errlen;
};

static int cfail(struct cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cfail(struct cctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return TH_ECONFIG;
}

static int coom(struct cctx *c)
{
    snprintf(c->err, c->errlen, "out of memory");
    return TH_ENOMEM;
}

static const char *node_noun(const th_node_t *v)
{
    switch (v->kind) {
    case TH_NODE_MAP:
        return "a map";
    case TH_NODE_SEQ:
        return "a list";
    case TH_NODE_NULL:
        return "null";
    case TH_NODE_SCALAR:
        break;
    }
    return "a scalar";
}

/* Check an id and return its normalised form "type" or "type/name" (spaces trimmed). */
static int normalize_id(struct cctx *c, const char *id, const char *path, const char **out)
{
    char why[256];
    const char *type, *name;
    int ret = th_config_split_id(id, c->cfg->arena, &type, &name, why, sizeof(why));
    if (ret == TH_ENOMEM) {
        return coom(c);
    }
    if (ret != 0) {
        return cfail(c, "%s: %s", path, why);
    }
    if (!*name) {
        *out = type;
        return 0;
    }
    size_t tl = strlen(type), nl = strlen(name);
    char *s = th_arena_alloc(c->cfg->arena, tl + nl + 2);
    if (!s) {
        return coom(c);
    }
    memcpy(s, type, tl);
    s[tl] = '/';
    memcpy(s + tl + 1, name, nl + 1);
    *out = s;
    return 0;
}

/* A top-level component section: a map (or null) whose keys are ids, normalised in place. */
static int check_components(struct cctx *c, const char *section, th_node_t *map)
{
    if (map->kind == TH_NODE_NULL) {
        return 0;
    }
    if (map->kind != TH_NODE_MAP) {
        return cfail(c, "%s: expected a map of component ids, got %s", section, node_noun(map));
    }
    struct strset set;
    if (strset_init(&set, map->n) != 0) {
        return coom(c);
    }
    int ret = 0;
    for (size_t i = 0; i < map->n; i++) {
        char path[1200];
        snprintf(path, sizeof(path), "%s::%s", section, map->pairs[i].key);
        const char *id;
        ret = normalize_id(c, map->pairs[i].key, path, &id);
        if (ret != 0) {
            break;
        }
        map->pairs[i].key = id;
        if (strset_add(&set, id) >= 0) {
            ret = cfail(c, "%s: duplicate id \"%s\" (after trimming spaces)", section, id);
            break;
        }
    }
    strset_free(&set);
    return ret;
}

/* A list of ids: a YAML list, or one string split at commas (the Collector's string-to-slice
 * hook). Entries are normalised. */
static int id_list(struct cctx *c, const th_node_t *v, const char *path, th_strlist_t *out)
{
    memset(out, 0, sizeof(*out));
    if (v->kind == TH_NODE_NULL || (v->kind == TH_NODE_SCALAR && v->len == 0)) {
        return 0;
    }
    if (v->kind == TH_NODE_MAP) {
        return cfail(c, "%s: expected a list of component ids, got a map", path);
    }
    th_arena_t *a = c->cfg->arena;
    size_t n = v->kind == TH_NODE_SEQ ? v->n : 1;
    if (v->kind == TH_NODE_SCALAR) {
        for (size_t i = 0; i < v->len; i++) {
            n += v->text[i] == ',';
        }
    }
    out->v = th_arena_calloc(a, n ? n : 1, sizeof(*out->v));
    if (!out->v) {
        return coom(c);
    }
    const char *s = v->kind == TH_NODE_SCALAR ? v->text : NULL;
    for (size_t i = 0; i < n; i++) {
        char ipath[1200];
        snprintf(ipath, sizeof(ipath), "%s::%zu", path, i);
        const char *raw;
        if (v->kind == TH_NODE_SEQ) {
            const th_node_t *it = v->items[i];
            if (it->kind != TH_NODE_SCALAR) {
                return cfail(c, "%s: expected a component id, got %s", ipath, node_noun(it));
            }
            raw = it->text;
        } else {
            const char *comma = strchr(s, ',');
            size_t l = comma ? (size_t)(comma - s) : strlen(s);
            raw = th_arena_strndup(a, s, l);
            if (!raw) {
                return coom(c);
            }
            s = comma ? comma + 1 : s + l;
        }
        int ret = normalize_id(c, raw, ipath, &out->v[out->n]);
        if (ret != 0) {
            return ret;
        }
        out->n++;
    }
    return 0;
}

/* Report an id listed twice in one list ("references processor "batch" multiple times"). */
static int no_duplicates(struct cctx *c, const th_strlist_t *l, const char *path, const char *what)
{
    struct strset set;
    if (strset_init(&set, l->n) != 0) {
        return coom(c);
    }
    int ret = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (strset_add(&set, l->v[i]) >= 0) {
            ret = cfail(c, "%s: references %s \"%s\" multiple times", path, what, l->v[i]);
            break;
        }
    }
    strset_free(&set);
    return ret;
}

static int parse_pipeline(struct cctx *c, const char *key, const th_node_t *v,
                          struct th_pipeline_cfg *p)
{
    char path[1200];
    snprintf(path, sizeof(path), "service::pipelines::%s", key);
    const char *id;
    int ret = normalize_id(c, key, path, &id);
    if (ret != 0) {
        return ret;
    }
    /* Metrics pipelines carry what connectors (span_metrics) make of traces. */
    size_t tl = strcspn(id, "/");
    if (!(tl == 6 && !strncmp(id, "traces", 6)) && !(tl == 7 && !strncmp(id, "metrics", 7))) {
        static const char *const others[] = {"logs", "profiles"};
        for (size_t i = 0; i < TH_ARRAY_SIZE(others); i++) {
            if (strlen(others[i]) == tl && !strncmp(id, others[i], tl)) {
                return cfail(c,
                             "%s: only traces and metrics pipelines are supported (Tracehouse "
                             "is a trace collector; %s is not)",
                             path, others[i]);
            }
        }
        return cfail(c, "%s: unknown signal \"%.*s\" (only traces and metrics are supported)", path,
                     (int)tl, id);
    }
    p->id = id;
    if (v->kind != TH_NODE_NULL && v->kind != TH_NODE_MAP) {
        return cfail(c, "%s: expected a map with receivers, processors and exporters, got %s", path,
                     node_noun(v));
    }
    for (size_t i = 0; v->kind == TH_NODE_MAP && i < v->n; i++) {
        const char *k = v->pairs[i].key;
        char kpath[1300];
        snprintf(kpath, sizeof(kpath), "%s::%s", path, k);
        th_strlist_t *dst = !strcmp(k, "receivers")    ? &p->receivers
                            : !strcmp(k, "processors") ? &p->processors
                            : !strcmp(k, "exporters")  ? &p->exporters
                                                       : NULL;
        if (!dst) {
            return cfail(c, "%s: unknown key (expected receivers, processors, exporters)", kpath);
        }
        ret = id_list(c, v->pairs[i].value, kpath, dst);
        if (ret != 0) {
            return ret;
        }
    }
    if (p->receivers.n == 0) {
        return cfail(c, "%s: must have at least one receiver", path);
    }
    if (p->exporters.n == 0) {
        return cfail(c, "%s: must have at least one exporter", path);
    }
    return no_duplicates(c, &p->processors, path, "processor");
}

static int parse_pipelines(struct cctx *c, const th_node_t *v)
{
    if (v->kind != TH_NODE_MAP && v->kind != TH_NODE_NULL) {
        return cfail(c, "service::pipelines: expected a map of pipelines, got %s", node_noun(v));
    }
    if (v->kind == TH_NODE_NULL || v->n == 0) {
        return 0; /* "at least one pipeline" is checked once the whole service is read */
    }
    th_config_t *cfg = c->cfg;
    cfg->pipelines = th_arena_calloc(cfg->arena, v->n, sizeof(*cfg->pipelines));
    if (!cfg->pipelines) {
        return coom(c);
    }
    struct strset set;
    if (strset_init(&set, v->n) != 0) {
        return coom(c);
    }
    int ret = 0;
    for (size_t i = 0; i < v->n; i++) {
        struct th_pipeline_cfg *p = &cfg->pipelines[cfg->n_pipelines];
        ret = parse_pipeline(c, v->pairs[i].key, v->pairs[i].value, p);
        if (ret != 0) {
            break;
        }
        if (strset_add(&set, p->id) >= 0) {
            ret = cfail(c, "service::pipelines: duplicate pipeline \"%s\" (after trimming spaces)",
                        p->id);
            break;
        }
        cfg->n_pipelines++;
    }
    strset_free(&set);
    return ret;
}

/* ---- service::telemetry ------------------------------------------------------------------ */

struct tel_sampling {
    bool enabled;
    int64_t tick;
    int64_t initial;
    int64_t thereafter;
};

struct tel_logs {
    const char *level;
    const char *encoding;
    bool development;
    bool disable_caller;
    bool disable_stacktrace;
    struct tel_sampling sampling;
    th_strlist_t output_paths;
    th_strlist_t error_output_paths;
    const th_node_t *initial_fields;
    const th_node_t *processors;
};

struct tel_metrics {
    const char *level;
    const th_node_t *readers;
    const char *address;
    const th_node_t *views;
};

struct tel {
    struct tel_logs logs;
    struct tel_metrics metrics;
    const th_node_t *traces;
    const th_node_t *resource;
};

struct tel_prom {
    const char *host;
    int64_t port;
    bool without_scope_info;
    bool without_units;
    bool without_type_suffix;
    const th_node_t *with_resource_constant_labels;
    const char *translation_strategy;
    bool tls_enabled; /* Tracehouse's own key */
    struct th_tls_server_cfg tls;
};

struct tel_pull {
    const th_node_t *exporter;
    const th_node_t *producers;
    const th_node_t *cardinality_limits;
};

static const char *const log_levels[] = {"debug",  "info",  "warn",  "error",
                                         "dpanic", "panic", "fatal", NULL};
static const char *const log_encodings[] = {"json", "console", NULL};
static const char *const metric_levels[] = {"none", "basic", "normal", "detailed", NULL};

static const struct th_cfg_field sampling_fields[] = {
    {.name = "enabled",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = offsetof(struct tel_sampling, enabled),
     .desc = "sample repeated log lines"},
    {.name = "tick",
     .type = TH_CFG_DURATION,
     .def = "10s",
     .offset = offsetof(struct tel_sampling, tick),
     .min = 0,
     .max = INFINITY,
     .desc = "sampling interval"},
    {.name = "initial",
     .type = TH_CFG_INT,
     .def = "10",
     .offset = offsetof(struct tel_sampling, initial),
     .min = 0,
     .max = INFINITY,
     .desc = "lines logged per tick before sampling starts"},
    {.name = "thereafter",
     .type = TH_CFG_INT,
     .def = "100",
     .offset = offsetof(struct tel_sampling, thereafter),
     .min = 0,
     .max = INFINITY,
     .desc = "then one line in this many"},
    {0},
};

static const struct th_cfg_field logs_fields[] = {
    {.name = "level",
     .type = TH_CFG_ENUM,
     .def = "info",
     .offset = offsetof(struct tel_logs, level),
     .choices = log_levels,
     .desc = "lowest level logged (dpanic, panic and fatal mean error)"},
    {.name = "encoding",
     .type = TH_CFG_ENUM,
     .def = "json",
     .offset = offsetof(struct tel_logs, encoding),
     .choices = log_encodings,
     .desc = "json (one object per line, Tracehouse's default) or console"},
    {.name = "development",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct tel_logs, development),
     .flags = TH_CFG_F_NOOP,
     .desc = "zap development mode (no effect)"},
    {.name = "disable_caller",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct tel_logs, disable_caller),
     .flags = TH_CFG_F_NOOP,
     .desc = "omit the caller (no effect; never logged)"},
    {.name = "disable_stacktrace",
     .type = TH_CFG_BOOL,
     .def = "false",
     .offset = offsetof(struct tel_logs, disable_stacktrace),
     .flags = TH_CFG_F_NOOP,
     .desc = "omit stack traces (no effect; never logged)"},
    {.name = "sampling",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct tel_logs, sampling),
     .sub = sampling_fields,
     .flags = TH_CFG_F_NOOP,
     .desc = "log sampling (no effect yet)"},
    {.name = "output_paths",
     .type = TH_CFG_STRLIST,
     .def = "[stderr]",
     .offset = offsetof(struct tel_logs, output_paths),
     .flags = TH_CFG_F_NOOP,
     .desc = "where logs go (no effect yet: always stderr)"},
    {.name = "error_output_paths",
     .type = TH_CFG_STRLIST,
     .def = "[stderr]",
     .offset = offsetof(struct tel_logs, error_output_paths),
     .flags = TH_CFG_F_NOOP,
     .desc = "where internal logger errors go (no effect yet: always stderr)"},
    {.name = "initial_fields",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_logs, initial_fields),
     .flags = TH_CFG_F_NOOP,
     .desc = "fields added to every record (no effect yet)"},
    {.name = "processors",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_logs, processors),
     .flags = TH_CFG_F_NOOP,
     .desc = "OTLP log record processors (no effect yet)"},
    {0},
};

static const struct th_cfg_field metrics_fields[] = {
    {.name = "level",
     .type = TH_CFG_ENUM,
     .def = "normal",
     .offset = offsetof(struct tel_metrics, level),
     .choices = metric_levels,
     .desc = "detail of internal metrics; none turns them off"},
    {.name = "readers",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_metrics, readers),
     .desc = "metric readers; a pull reader with a prometheus exporter sets the endpoint"},
    {.name = "address",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct tel_metrics, address),
     .desc = "legacy host:port of the Prometheus endpoint (use readers)"},
    {.name = "views",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_metrics, views),
     .flags = TH_CFG_F_NOOP,
     .desc = "metric views (no effect yet)"},
    {0},
};

static const struct th_cfg_field tel_fields[] = {
    {.name = "logs",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct tel, logs),
     .sub = logs_fields,
     .desc = "the collector's own logs"},
    {.name = "metrics",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct tel, metrics),
     .sub = metrics_fields,
     .desc = "the collector's own metrics"},
    {.name = "traces",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel, traces),
     .flags = TH_CFG_F_NOOP,
     .desc = "the collector's own traces (no effect yet)"},
    {.name = "resource",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel, resource),
     .desc = "resource attributes of the collector's own telemetry"},
    {0},
};

static const struct th_cfg_field prom_fields[] = {
    {.name = "host",
     .type = TH_CFG_STRING,
     .def = "localhost",
     .offset = offsetof(struct tel_prom, host),
     .desc = "interface the metrics endpoint binds"},
    {.name = "port",
     .type = TH_CFG_INT,
     .def = "8888",
     .offset = offsetof(struct tel_prom, port),
     .min = 1,
     .max = 65535,
     .desc = "port of the metrics endpoint"},
    {.name = "without_scope_info",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = offsetof(struct tel_prom, without_scope_info),
     .flags = TH_CFG_F_NOOP,
     .desc = "no otel_scope labels (always so)"},
    {.name = "without_units",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = offsetof(struct tel_prom, without_units),
     .flags = TH_CFG_F_NOOP,
     .desc = "no unit suffixes (always so)"},
    {.name = "without_type_suffix",
     .type = TH_CFG_BOOL,
     .def = "true",
     .offset = offsetof(struct tel_prom, without_type_suffix),
     .flags = TH_CFG_F_NOOP,
     .desc = "no _total suffixes (always so)"},
    {.name = "with_resource_constant_labels",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_prom, with_resource_constant_labels),
     .flags = TH_CFG_F_NOOP,
     .desc = "resource attributes as labels (no effect yet)"},
    {.name = "translation_strategy",
     .type = TH_CFG_STRING,
     .offset = offsetof(struct tel_prom, translation_strategy),
     .flags = TH_CFG_F_NOOP,
     .desc = "metric name translation (no effect yet)"},
    {.name = "tls",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct tel_prom, tls),
     .aux = offsetof(struct tel_prom, tls_enabled),
     .sub = th_tls_server_config_fields,
     .desc = "Tracehouse key (not in the Collector): TLS for the metrics endpoint (HTTPS); "
             "absent: plaintext"},
    {0},
};

static const struct th_cfg_field pull_fields[] = {
    {.name = "exporter",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_pull, exporter),
     .flags = TH_CFG_F_REQUIRED,
     .desc = "the pull exporter: {prometheus: {host, port}}"},
    {.name = "producers",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_pull, producers),
     .flags = TH_CFG_F_NOOP,
     .desc = "metric producers (no effect yet)"},
    {.name = "cardinality_limits",
     .type = TH_CFG_NODE,
     .offset = offsetof(struct tel_pull, cardinality_limits),
     .flags = TH_CFG_F_NOOP,
     .desc = "cardinality limits (no effect yet)"},
    {0},
};

/* "host:port", with brackets around an IPv6 host. */
static const char *host_port(th_arena_t *a, const char *host, int64_t port)
{
    bool v6 = strchr(host, ':') && host[0] != '[';
    size_t cap = strlen(host) + 16;
    char *s = th_arena_alloc(a, cap);
    if (s) {
        snprintf(s, cap, v6 ? "[%s]:%lld" : "%s:%lld", host, (long long)port);
    }
    return s;
}

/* One entry of metrics::readers: a pull reader with a prometheus exporter gives the
 * endpoint; a periodic (push) reader is accepted with a warning. */
static int parse_reader(struct cctx *c, const th_node_t *r, const char *path, const char **endpoint,
                        const struct th_tls_server_cfg **tls)
{
    th_arena_t *a = c->cfg->arena;
    if (r->kind != TH_NODE_MAP) {
        return cfail(c, "%s: expected a map with pull or periodic, got %s", path, node_noun(r));
    }
    for (size_t i = 0; i < r->n; i++) {
        const char *k = r->pairs[i].key;
        const th_node_t *v = r->pairs[i].value;
        char kpath[1300];
        snprintf(kpath, sizeof(kpath), "%s::%s", path, k);
        if (!strcmp(k, "periodic")) {
            th_log_warn(NULL,
                        "%s: push metric readers have no effect yet (metrics are served "
                        "for Prometheus to pull)",
                        kpath);
            continue;
        }
        if (strcmp(k, "pull") != 0) {
            return cfail(c, "%s: unknown key (expected pull or periodic)", kpath);
        }
        struct tel_pull pull;
        int ret = th_cfg_decode(pull_fields, v, &pull, a, kpath, c->err, c->errlen);
        if (ret != 0) {
            return ret;
        }
        char epath[1400];
        snprintf(epath, sizeof(epath), "%s::exporter", kpath);
        if (pull.exporter->kind != TH_NODE_MAP) {
            return cfail(c, "%s: expected a map with prometheus, got %s", epath,
                         node_noun(pull.exporter));
        }
        for (size_t j = 0; j < pull.exporter->n; j++) {
            const char *ek = pull.exporter->pairs[j].key;
            char ppath[1500];
            snprintf(ppath, sizeof(ppath), "%s::%s", epath, ek);
            if (strcmp(ek, "prometheus") != 0 && strcmp(ek, "prometheus/development") != 0) {
                return cfail(c, "%s: unsupported pull exporter (only prometheus is supported)",
                             ppath);
            }
            if (*endpoint) {
                return cfail(c, "%s: only one prometheus reader is supported", ppath);
            }
            struct tel_prom prom;
            ret = th_cfg_decode(prom_fields, pull.exporter->pairs[j].value, &prom, a, ppath, c->err,
                                c->errlen);
            if (ret != 0) {
                return ret;
            }
            *endpoint = host_port(a, prom.host, prom.port);
            if (!*endpoint) {
                return coom(c);
            }
            if (prom.tls_enabled) {
                char tpath[1600];
                snprintf(tpath, sizeof(tpath), "%s::tls", ppath);
                if (th_tls_server_cfg_check(&prom.tls, tpath, c->err, c->errlen) != 0) {
                    return TH_ECONFIG;
                }
                struct th_tls_server_cfg *copy = th_arena_memdup(a, &prom.tls, sizeof(prom.tls));
                if (!copy) {
                    return coom(c);
                }
                *tls = copy;
            }
        }
    }
    return 0;
}

/* service::telemetry::resource: the legacy map {key: value|null} or {attributes: [...]}. */
static int parse_resource(struct cctx *c, const th_node_t *r, th_strmap_t *out)
{
    th_arena_t *a = c->cfg->arena;
    const char *path = "service::telemetry::resource";
    memset(out, 0, sizeof(*out));
    if (!r || r->kind == TH_NODE_NULL) {
        return 0;
    }
    if (r->kind != TH_NODE_MAP) {
        return cfail(c, "%s: expected a map, got %s", path, node_noun(r));
    }
    const th_node_t *attrs = th_node_get(r, "attributes");
    bool list_form = attrs && attrs->kind == TH_NODE_SEQ;
    const th_node_t *src = list_form ? attrs : r;
    out->keys = th_arena_calloc(a, src->n + 1, sizeof(*out->keys));
    out->vals = th_arena_calloc(a, src->n + 1, sizeof(*out->vals));
    if (!out->keys || !out->vals) {
        return coom(c);
    }
    for (size_t i = 0; i < src->n; i++) {
        const char *k;
        const th_node_t *v;
        char ipath[1200];
        if (list_form) {
            /* otelconf's [{name, value, type}]; type is accepted and not needed here. */
            const th_node_t *it = src->items[i];
            snprintf(ipath, sizeof(ipath), "%s::attributes::%zu", path, i);
            const th_node_t *name = th_node_get(it, "name");
            if (!name || name->kind != TH_NODE_SCALAR || !name->len) {
                return cfail(c, "%s: each attribute needs a name", ipath);
            }
            for (size_t j = 0; j < it->n; j++) {
                const char *ik = it->pairs[j].key;
                if (strcmp(ik, "name") && strcmp(ik, "value") && strcmp(ik, "type")) {
                    return cfail(c, "%s::%s: unknown key (expected name, value, type)", ipath, ik);
                }
            }
            k = name->text;
            v = th_node_get(it, "value");
        } else {
            k = src->pairs[i].key;
            v = src->pairs[i].value;
            snprintf(ipath, sizeof(ipath), "%s::%s", path, k);
            if (!strcmp(k, "schema_url") || !strcmp(k, "attributes_list") ||
                !strcmp(k, "detection/development")) {
                th_log_warn(NULL, "%s: has no effect yet", ipath);
                continue;
            }
        }
        if (!v || v->kind == TH_NODE_NULL) {
            continue; /* a null value removes the attribute in the Collector */
        }
        if (v->kind != TH_NODE_SCALAR) {
            return cfail(c, "%s: expected a string, got %s", ipath, node_noun(v));
        }
        for (size_t j = 0; j < out->n; j++) {
            if (!strcmp(out->keys[j], k)) {
                return cfail(c, "%s: duplicate attribute \"%s\"", path, k);
            }
        }
        out->keys[out->n] = k;
        out->vals[out->n] = v->text;
        out->n++;
    }
    if (list_form) {
        for (size_t i = 0; i < r->n; i++) {
            const char *k = r->pairs[i].key;
            if (strcmp(k, "attributes") != 0) {
                th_log_warn(NULL, "%s::%s: has no effect yet", path, k);
            }
        }
    }
    return 0;
}

static int parse_telemetry(struct cctx *c, const th_node_t *v)
{
    th_config_t *cfg = c->cfg;
    const char *path = "service::telemetry";
    struct tel t;
    int ret = th_cfg_decode(tel_fields, v, &t, cfg->arena, path, c->err, c->errlen);
    if (ret != 0) {
        return ret;
    }
    struct th_telemetry_cfg *out = &cfg->telemetry;
    /* Our logger has no levels above error; those that log less map to error. */
    out->log_level = (!strcmp(t.logs.level, "dpanic") || !strcmp(t.logs.level, "panic") ||
                      !strcmp(t.logs.level, "fatal"))
                         ? "error"
                         : t.logs.level;
    out->log_encoding = t.logs.encoding;
    out->metrics_level = t.metrics.level;
    out->metrics_endpoint = NULL;
    out->metrics_tls = NULL;
    const th_node_t *readers = t.metrics.readers;
    if (readers && readers->kind != TH_NODE_NULL) {
        const char *rpath = "service::telemetry::metrics::readers";
        if (readers->kind != TH_NODE_SEQ) {
            return cfail(c, "%s: expected a list of readers, got %s", rpath, node_noun(readers));
        }
        if (*t.metrics.address) {
            return cfail(c, "service::telemetry::metrics: use either readers or the legacy "
                            "address, not both");
        }
        for (size_t i = 0; i < readers->n; i++) {
            char ipath[128];
            snprintf(ipath, sizeof(ipath), "%s::%zu", rpath, i);
            ret = parse_reader(c, readers->items[i], ipath, &out->metrics_endpoint,
                               &out->metrics_tls);
            if (ret != 0) {
                return ret;
            }
        }
    } else if (*t.metrics.address) {
        th_log_warn(NULL, "service::telemetry::metrics::address is deprecated in the Collector; "
                          "use readers with a pull prometheus exporter");
        out->metrics_endpoint = t.metrics.address;
    }
    if (!out->metrics_endpoint) {
        out->metrics_endpoint = "localhost:8888";
    }
    return parse_resource(c, t.resource, &out->resource);
}

static int parse_service(struct cctx *c, const th_node_t *v)
{
    th_config_t *cfg = c->cfg;
    const th_node_t *tel = NULL;
    if (v && v->kind != TH_NODE_NULL && v->kind != TH_NODE_MAP) {
        return cfail(c, "service: expected a map, got %s", node_noun(v));
    }
    for (size_t i = 0; v && v->kind == TH_NODE_MAP && i < v->n; i++) {
        const char *k = v->pairs[i].key;
        const th_node_t *val = v->pairs[i].value;
        int ret;
        if (!strcmp(k, "extensions")) {
            ret = id_list(c, val, "service::extensions", &cfg->service_extensions);
            if (ret == 0) {
                ret =
                    no_duplicates(c, &cfg->service_extensions, "service::extensions", "extension");
            }
        } else if (!strcmp(k, "pipelines")) {
            ret = parse_pipelines(c, val);
        } else if (!strcmp(k, "telemetry")) {
            tel = val;
            ret = 0;
        } else {
            ret =
                cfail(c, "service::%s: unknown key (expected extensions, pipelines, telemetry)", k);
        }
        if (ret != 0) {
            return ret;
        }
    }
    int ret = parse_telemetry(c, tel);
    if (ret != 0) {
        return ret;
    }
    if (cfg->n_pipelines == 0) {
        return cfail(c, "service::pipelines: must have at least one pipeline");
    }
    return 0;
}

static int check_root(struct cctx *c)
{
    th_config_t *cfg = c->cfg;
    th_node_t *root = cfg->root;
    if (root->kind == TH_NODE_NULL) {
        return cfail(c, "%s: the configuration is empty", cfg->source);
    }
    if (root->kind != TH_NODE_MAP) {
        return cfail(c,
                     "%s: the configuration must be a map with receivers, processors, exporters, "
                     "extensions, connectors and service",
                     cfg->source);
    }
    const th_node_t *service = NULL;
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->pairs[i].key;
        th_node_t *v = root->pairs[i].value;
        const th_node_t **slot = !strcmp(k, "receivers")    ? &cfg->receivers
                                 : !strcmp(k, "processors") ? &cfg->processors
                                 : !strcmp(k, "exporters")  ? &cfg->exporters
                                 : !strcmp(k, "extensions") ? &cfg->extensions
                                 : !strcmp(k, "connectors") ? &cfg->connectors
                                                            : NULL;
        if (slot) {
            int ret = check_components(c, k, v);
            if (ret != 0) {
                return ret;
            }
            *slot = v;
        } else if (!strcmp(k, "service")) {
            service = v;
        } else {
            return cfail(c,
                         "%s: unknown top-level key (expected receivers, processors, exporters, "
                         "extensions, connectors, service)",
                         k);
        }
    }
    return parse_service(c, service);
}

int th_config_parse(const char *yaml, size_t len, const char *source, th_config_t **out, char *err,
                    size_t errlen)
{
    int ret = TH_ENOMEM;
    *out = NULL;
    th_arena_t *a = th_arena_create(0, 0);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return TH_ENOMEM;
    }
    th_config_t *cfg = th_arena_calloc(a, 1, sizeof(*cfg));
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    cfg->arena = a;
    source = source ? source : "<embedded>";
    cfg->source = th_arena_strndup(a, source, strlen(source));
    if (!cfg->source) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    ret = th_yaml_parse(yaml, len, cfg->source, a, &cfg->root, err, errlen);
    if (ret != 0) {
        goto fail;
    }
    struct cctx c = {cfg, err, errlen};
    ret = check_root(&c);
    if (ret != 0) {
        goto fail;
    }
    *out = cfg;
    return 0;
fail:
    th_arena_destroy(a);
    return ret;
}

int th_config_load_file(const char *path, th_config_t **out, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    int ret = th_file_read(path, MAX_TEXT, &buf, &n);
    if (ret == TH_E2BIG) {
        snprintf(err, errlen, "%s: the configuration is larger than %u MiB", path, MAX_TEXT >> 20);
        return TH_ECONFIG;
    }
    if (ret == TH_ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return ret;
    }
    if (ret != 0) {
        snprintf(err, errlen, "cannot %s config file \"%s\": %s",
                 ret == TH_ENOENT ? "open" : "read", path, strerror(errno));
        return ret;
    }
    ret = th_config_parse(buf, n, path, out, err, errlen);
    th_free(buf);
    return ret;
}

void th_config_destroy(th_config_t *cfg)
{
    if (cfg) {
        th_arena_destroy(cfg->arena); /* cfg itself lives in the arena */
    }
}

/*
 * libFuzzer target for the Jaeger query API's parameter parsing (ui-api/jaeger/
 * jaeger_params.c): the input is a query string, parsed as every route parses it (v1 search,
 * trace by id, dependencies; api_v3 search and trace by id), and each scalar parser also gets
 * the raw input. Nothing may crash, leak (the arena holds everything) or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ui-api/jaeger/jaeger_params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* bounded so one input cannot spend the arena on a pathological size */
    th_arena_t *a = th_arena_create(0, 64 * 1024 * 1024);
    if (!a) {
        return 0;
    }
    char err[1024];
    th_jaeger_params_t p;
    if (th_jaeger_params_parse((const char *)data, size, a, &p) == 0) {
        struct th_jaeger_search s;
        bool raw;
        int64_t end, lookback;
        th_jaeger_parse_v1_search(&p, 1700000000000000000, a, &s, err, sizeof(err));
        th_jaeger_parse_v1_get_trace(&p, &raw, err, sizeof(err));
        th_jaeger_parse_v1_dependencies(&p, 1700000000000000000, &end, &lookback, err, sizeof(err));
        th_jaeger_parse_v3_search(&p, a, &s, err, sizeof(err));
        th_jaeger_parse_v3_get_trace(&p, &raw, err, sizeof(err));
    }
    /* the scalar parsers on the whole input, as one value */
    char *z = malloc(size + 1);
    if (z) {
        memcpy(z, data, size);
        z[size] = '\0';
        int64_t v;
        bool b;
        uint8_t id[16];
        th_jaeger_parse_int("ParseInt", z, 32, &v, err, sizeof(err));
        th_jaeger_parse_bool(z, &b, err, sizeof(err));
        th_jaeger_parse_go_duration(z, &v, err, sizeof(err));
        th_jaeger_parse_trace_id(z, true, id, err, sizeof(err));
        th_jaeger_parse_rfc3339(z, &v, err, sizeof(err));
        th_jaeger_span_kind_parse(z);
        struct th_jaeger_tags t = {0};
        th_jaeger_parse_tags_json((const char *)data, size, a, &t, err, sizeof(err));
        char *u;
        size_t ul;
        th_jaeger_unescape((const char *)data, size, false, a, &u, &ul);
        free(z);
    }
    th_arena_destroy(a);
    return 0;
}

/*
 * Processor benchmark: the cost of the attributes, redaction and probabilistic_sampler
 * processors, each measured as a pipeline "decode an OTLP request → processor → discard"
 * against the same pipeline without it. Spans carry 20 attributes (a few with card numbers,
 * e-mails and tokens); redaction runs with 10 blocked_values patterns.
 *
 *   th_processors_bench [-n REQUESTS] [-s SPANS_PER_REQUEST]
 *
 * CPU time comes from clock_gettime(CLOCK_PROCESS_CPUTIME_ID) (single-threaded here, so
 * spans per CPU-second is spans per second per core). Build with -DCMAKE_BUILD_TYPE=Release
 * for meaningful figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "th/component.h"
#include "th/log.h"
#include "th/otlp.h"

extern const struct th_component_ops th_processor_attributes_ops;
extern const struct th_component_ops th_processor_redaction_ops;
extern const struct th_component_ops th_processor_probabilistic_sampler_ops;

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static th_otlp_any_t *str_value(th_arena_t *a, const char *s)
{
    th_otlp_any_t *v = th_arena_alloc(a, sizeof(*v));
    opentelemetry__proto__common__v1__any_value__init(v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = th_arena_strndup(a, s, strlen(s));
    return v;
}

static th_otlp_kv_t *kv(th_arena_t *a, const char *k, th_otlp_any_t *v)
{
    th_otlp_kv_t *p = th_arena_alloc(a, sizeof(*p));
    opentelemetry__proto__common__v1__key_value__init(p);
    p->key = th_arena_strndup(a, k, strlen(k));
    p->value = v;
    return p;
}

/* A request of @p n spans (distinct trace ids), 20 attributes each, packed to protobuf. */
static uint8_t *make_request(size_t n, size_t *len)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = th_arena_alloc(a, sizeof(*rs->resource));
    opentelemetry__proto__resource__v1__resource__init(rs->resource);
    rs->resource->attributes = th_arena_alloc(a, 3 * sizeof(th_otlp_kv_t *));
    rs->resource->attributes[0] = kv(a, "service.name", str_value(a, "checkout"));
    rs->resource->attributes[1] = kv(a, "host.name", str_value(a, "web-42.prod.example.net"));
    rs->resource->attributes[2] = kv(a, "owner.email", str_value(a, "team@example.com"));
    rs->resource->n_attributes = 3;
    th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->spans = th_arena_alloc(a, n * sizeof(*ss->spans));
    static const char *const vals[20] = {
        "GET",
        "https://shop.example.com/cart?id=123",
        "200",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "10.1.2.3",
        "paid with card 4111111111111111",
        "user alice@example.com logged in",
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        "SELECT * FROM orders WHERE id = ?",
        "postgresql",
        "orders",
        "checkout-7d9f8c6b5-x2x9z",
        "eu-west-1a",
        "v1.24.3",
        "cache miss for key cart:123",
        "retry 2 of 5",
        "application/json",
        "gzip",
        "trace sampled by head sampler",
        "ok",
    };
    for (size_t i = 0; i < n; i++) {
        th_otlp_span_t *s = th_arena_alloc(a, sizeof(*s));
        opentelemetry__proto__trace__v1__span__init(s);
        uint8_t *tid = th_arena_alloc(a, 16), *sid = th_arena_alloc(a, 8);
        for (int b = 0; b < 16; b++) {
            tid[b] = (uint8_t)((i * 2654435761u) >> (b % 4 * 8)) ^ (uint8_t)(b * 37 + 1);
        }
        memcpy(tid, &i, sizeof(i) < 8 ? sizeof(i) : 8);
        tid[15] |= 1;
        for (int b = 0; b < 8; b++) {
            sid[b] = (uint8_t)(i + b + 1);
        }
        s->trace_id = (ProtobufCBinaryData){16, tid};
        s->span_id = (ProtobufCBinaryData){8, sid};
        s->name = "HTTP GET /cart";
        s->kind = 2;
        s->start_time_unix_nano = 1700000000000000000ull + i;
        s->end_time_unix_nano = 1700000000000100000ull + i;
        s->attributes = th_arena_alloc(a, 20 * sizeof(th_otlp_kv_t *));
        for (int k = 0; k < 20; k++) {
            char key[32];
            snprintf(key, sizeof(key), "attr.%02d", k);
            s->attributes[k] = kv(a, key, str_value(a, vals[k]));
        }
        s->n_attributes = 20;
        ss->spans[ss->n_spans++] = s;
    }
    rs->scope_spans = th_arena_alloc(a, sizeof(*rs->scope_spans));
    rs->scope_spans[0] = ss;
    rs->n_scope_spans = 1;
    req->resource_spans = th_arena_alloc(a, sizeof(*req->resource_spans));
    req->resource_spans[0] = rs;
    req->n_resource_spans = 1;
    *len = protobuf_c_message_get_packed_size(&req->base);
    uint8_t *buf = malloc(*len);
    protobuf_c_message_pack(&req->base, buf);
    th_arena_destroy(a);
    return buf;
}

static int discard(struct th_consumer *self, th_batch_t *b)
{
    (void)self;
    th_batch_release(b);
    return 0;
}

static struct th_consumer sink = {.consume = discard};

struct setup {
    const char *name;
    const struct th_component_ops *ops;
    const char *yaml;
};

static const struct setup setups[] = {
    {"baseline (decode → discard)", NULL, NULL},
    {"attributes (6 actions)", &th_processor_attributes_ops,
     "actions:\n"
     "  - {key: env, action: insert, value: prod}\n"
     "  - {key: attr.02, action: convert, converted_type: int}\n"
     "  - {key: attr.04, action: hash}\n"
     "  - {key: attr.01, action: extract, pattern: '^(?P<scheme>https?)://(?P<host>[^/]+)'}\n"
     "  - {pattern: '^attr\\.1[5-9]$', action: delete}\n"
     "  - {key: attr.19, action: upsert, from_attribute: attr.00}\n"},
    {"redaction (10 blocked_values, silent)", &th_processor_redaction_ops,
     "allow_all_keys: true\n"
     "blocked_values:\n"
     "  - '4[0-9]{12}(?:[0-9]{3})?'\n"
     "  - '5[1-5][0-9]{14}'\n"
     "  - '3[47][0-9]{13}'\n"
     "  - '6(?:011|5[0-9]{2})[0-9]{12}'\n"
     "  - '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}'\n"
     "  - 'Bearer [A-Za-z0-9._~+/-]+'\n"
     "  - '\\b\\d{3}-\\d{2}-\\d{4}\\b'\n"
     "  - '(?i)password=[^&\\s]+'\n"
     "  - 'AKIA[0-9A-Z]{16}'\n"
     "  - '\\b(?:\\d{1,3}\\.){3}\\d{1,3}\\b'\n"},
    {"redaction (10 blocked_values, debug, allow list)", &th_processor_redaction_ops,
     "allowed_keys: [attr.00, attr.01, attr.02, attr.03, attr.04, attr.05, attr.06, attr.07, "
     "attr.08, attr.09, attr.10, attr.11, attr.12, attr.13, attr.14, service.name, host.name]\n"
     "summary: debug\n"
     "blocked_values:\n"
     "  - '4[0-9]{12}(?:[0-9]{3})?'\n"
     "  - '5[1-5][0-9]{14}'\n"
     "  - '3[47][0-9]{13}'\n"
     "  - '6(?:011|5[0-9]{2})[0-9]{12}'\n"
     "  - '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}'\n"
     "  - 'Bearer [A-Za-z0-9._~+/-]+'\n"
     "  - '\\b\\d{3}-\\d{2}-\\d{4}\\b'\n"
     "  - '(?i)password=[^&\\s]+'\n"
     "  - 'AKIA[0-9A-Z]{16}'\n"
     "  - '\\b(?:\\d{1,3}\\.){3}\\d{1,3}\\b'\n"},
    {"redaction (10 blocked_values, sha3)", &th_processor_redaction_ops,
     "allow_all_keys: true\nhash_function: sha3\n"
     "blocked_values:\n"
     "  - '4[0-9]{12}(?:[0-9]{3})?'\n"
     "  - '5[1-5][0-9]{14}'\n"
     "  - '3[47][0-9]{13}'\n"
     "  - '6(?:011|5[0-9]{2})[0-9]{12}'\n"
     "  - '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}'\n"
     "  - 'Bearer [A-Za-z0-9._~+/-]+'\n"
     "  - '\\b\\d{3}-\\d{2}-\\d{4}\\b'\n"
     "  - '(?i)password=[^&\\s]+'\n"
     "  - 'AKIA[0-9A-Z]{16}'\n"
     "  - '\\b(?:\\d{1,3}\\.){3}\\d{1,3}\\b'\n"},
    {"probabilistic_sampler (hash_seed 50%)", &th_processor_probabilistic_sampler_ops,
     "sampling_percentage: 50\nhash_seed: 7\n"},
    {"probabilistic_sampler (proportional 50%)", &th_processor_probabilistic_sampler_ops,
     "sampling_percentage: 50\nmode: proportional\n"},
};

int main(int argc, char **argv)
{
    long requests = 2000;
    size_t per = 100;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n")) {
            requests = atol(argv[i + 1]);
        } else if (!strcmp(argv[i], "-s")) {
            per = (size_t)atol(argv[i + 1]);
        }
    }
    th_log_configure(TH_LOG_ERROR, TH_LOG_CONSOLE);
    size_t len;
    uint8_t *buf = make_request(per, &len);
    struct th_otlp_limits lim;
    th_otlp_limits_default(&lim);
    printf("%ld requests of %zu spans (20 attributes each, %zu bytes protobuf)\n", requests, per,
           len);
    printf("%-48s %14s %12s %12s\n", "pipeline", "spans/s/core", "ns/span", "processor");
    double base_ns = 0;
    for (size_t k = 0; k < TH_ARRAY_SIZE(setups); k++) {
        const struct setup *st = &setups[k];
        th_arena_t *ca = th_arena_create(0, 0);
        struct th_component *c = NULL;
        if (st->ops) {
            th_node_t *node;
            char err[512];
            void *cfg = th_arena_calloc(ca, 1, st->ops->config_size);
            if (th_yaml_parse(st->yaml, strlen(st->yaml), "<bench>", ca, &node, err, sizeof(err)) !=
                    0 ||
                th_cfg_decode(st->ops->config, node, cfg, ca, st->name, err, sizeof(err)) != 0 ||
                th_component_create(st->ops, st->ops->type, cfg, &sink, &c) != 0) {
                fprintf(stderr, "%s: cannot set up: %s\n", st->name, err);
                return 1;
            }
        }
        /* warm up, then measure */
        uint64_t t0 = 0;
        for (long it = -requests / 10; it < requests; it++) {
            if (it == 0) {
                t0 = cpu_ns();
            }
            size_t chunk = TH_MIN(TH_MAX(len * 8, (size_t)16 * 1024), (size_t)1 << 20);
            th_arena_t *a = th_arena_create(chunk, 0);
            th_otlp_request_t *req;
            struct th_otlp_error e;
            if (th_otlp_decode_pb(buf, len, &lim, a, &req, &e) != 0) {
                fprintf(stderr, "decode: %s\n", e.msg);
                return 1;
            }
            th_batch_t *b = th_batch_create(a, req);
            if (c) {
                th_consumer_consume(&c->consumer, b);
            } else {
                th_batch_release(b);
            }
        }
        uint64_t dt = cpu_ns() - t0;
        double spans = (double)requests * (double)per;
        double ns = (double)dt / spans;
        if (!st->ops) {
            base_ns = ns;
            printf("%-48s %14.0f %12.1f %12s\n", st->name, 1e9 / ns, ns, "-");
        } else {
            double cost = ns - base_ns;
            printf("%-48s %14.0f %12.1f %9.1f ns (%.0f spans/s/core alone)\n", st->name, 1e9 / ns,
                   ns, cost, cost > 0 ? 1e9 / cost : 0);
        }
        th_component_destroy(c);
        th_arena_destroy(ca);
    }
    free(buf);
    return 0;
}

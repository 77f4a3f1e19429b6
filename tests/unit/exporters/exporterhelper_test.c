/*
 * The exporter helper against a transport written here that answers by script on the
 * exporter's loop (the helper's collaborator; the real transports are tested by their
 * owners): config tables and checks, delivery and when acks settle, a full queue, blocking,
 * retry timing against the backoff's bounds, Retry-After, giving up, permanent errors,
 * splitting a request the server finds too large, parallel consumers, shutdown, and the
 * persistent queue across a restart and across a SIGKILL of a child process.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "exporters/helper/exporterhelper_internal.h"
#include "th/file_storage.h"
#include "th/log.h"

#define MS 1000000ll

/* ---- Batches ---------------------------------------------------------------------------- */

static char *astr(th_arena_t *a, const char *s)
{
    return th_arena_strndup(a, s, strlen(s));
}

static th_otlp_kv_t *kv_str(th_arena_t *a, const char *k, const char *v)
{
    th_otlp_kv_t *kv = th_arena_alloc(a, sizeof(*kv));
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = astr(a, k);
    kv->value = th_arena_alloc(a, sizeof(*kv->value));
    opentelemetry__proto__common__v1__any_value__init(kv->value);
    kv->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    kv->value->string_value = astr(a, v);
    return kv;
}

/* @p n spans with ids first..first+n-1 spread over @p groups resources (service "svc-G",
 * scope "scope-svc-G"); each span repeats its service in attribute "svc" so a receiver can
 * check that a split kept every span with its own resource and scope. @p pad adds that many
 * bytes to each span. */
static th_batch_t *mk_batch(uint64_t first, size_t n, size_t groups, size_t pad)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *req = th_arena_alloc(a, sizeof(*req));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    req->resource_spans = th_arena_calloc(a, groups, sizeof(void *));
    req->n_resource_spans = groups;
    char *padding = NULL;
    if (pad) {
        padding = th_arena_alloc(a, pad + 1);
        memset(padding, 'x', pad);
        padding[pad] = '\0';
    }
    for (size_t g = 0; g < groups; g++) {
        char svc[32], scope[48];
        snprintf(svc, sizeof(svc), "svc-%zu", g);
        snprintf(scope, sizeof(scope), "scope-%s", svc);
        th_otlp_resource_spans_t *rs = th_arena_alloc(a, sizeof(*rs));
        opentelemetry__proto__trace__v1__resource_spans__init(rs);
        rs->resource = th_arena_alloc(a, sizeof(*rs->resource));
        opentelemetry__proto__resource__v1__resource__init(rs->resource);
        rs->resource->attributes = th_arena_alloc(a, sizeof(void *));
        rs->resource->attributes[0] = kv_str(a, "service.name", svc);
        rs->resource->n_attributes = 1;
        th_otlp_scope_spans_t *ss = th_arena_alloc(a, sizeof(*ss));
        opentelemetry__proto__trace__v1__scope_spans__init(ss);
        ss->scope = th_arena_alloc(a, sizeof(*ss->scope));
        opentelemetry__proto__common__v1__instrumentation_scope__init(ss->scope);
        ss->scope->name = astr(a, scope);
        size_t lo = g * n / groups, hi = (g + 1) * n / groups;
        ss->spans = th_arena_calloc(a, hi - lo + 1, sizeof(void *));
        ss->n_spans = hi - lo;
        for (size_t i = lo; i < hi; i++) {
            th_otlp_span_t *s = th_arena_alloc(a, sizeof(*s));
            opentelemetry__proto__trace__v1__span__init(s);
            uint8_t *tid = th_arena_calloc(a, 1, 16), *sid = th_arena_alloc(a, 8);
            tid[15] = 1;
            uint64_t id = first + i;
            for (int k = 7; k >= 0; k--) {
                sid[k] = (uint8_t)id;
                id >>= 8;
            }
            s->trace_id = (ProtobufCBinaryData){.len = 16, .data = tid};
            s->span_id = (ProtobufCBinaryData){.len = 8, .data = sid};
            s->name = "op";
            s->n_attributes = pad ? 2 : 1;
            s->attributes = th_arena_alloc(a, 2 * sizeof(void *));
            s->attributes[0] = kv_str(a, "svc", svc);
            if (pad) {
                s->attributes[1] = kv_str(a, "pad", padding);
            }
            ss->spans[i - lo] = s;
        }
        rs->scope_spans = th_arena_alloc(a, sizeof(void *));
        rs->scope_spans[0] = ss;
        rs->n_scope_spans = 1;
        req->resource_spans[g] = rs;
    }
    return th_batch_create(a, req);
}

/* ---- Acks -------------------------------------------------------------------------------- */

struct ackst {
    int settled;
    int result;
};

static void on_ack(th_ack_t *ack, int result)
{
    struct ackst *s = ack->data;
    __atomic_store_n(&s->result, result, __ATOMIC_RELEASE);
    __atomic_add_fetch(&s->settled, 1, __ATOMIC_ACQ_REL);
}

static th_batch_t *tracked(th_batch_t *b, struct ackst *s)
{
    memset(s, 0, sizeof(*s));
    th_ack_t *ack = th_ack_create(on_ack, s);
    th_batch_add_ack(b, ack);
    th_ack_settle(ack, 0);
    return b;
}

static int settled(struct ackst *s)
{
    return __atomic_load_n(&s->settled, __ATOMIC_ACQUIRE);
}

/* Poll @p cond every millisecond for up to @p ms. */
#define WAIT_FOR(cond, ms)                                                                         \
    ({                                                                                             \
        uint64_t until_ = th_now_mono_ns() + (uint64_t)(ms) * (uint64_t)MS;                        \
        while (!(cond) && th_now_mono_ns() < until_) {                                             \
            usleep(1000);                                                                          \
        }                                                                                          \
        (cond);                                                                                    \
    })

/* ---- The scripted transport --------------------------------------------------------------- */

struct script;

/** How to answer one send. */
struct answer {
    struct th_export_result r;
    uint64_t delay_ms;
    bool hold; /* wait for script_release() */
};

typedef void (*decide_fn)(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                          struct answer *a);

struct pending {
    struct pending *next;
    uv_timer_t timer;
    struct script *sc;
    th_export_done_cb done;
    void *arg;
    struct answer a;
    th_otlp_request_t *req;
};

#define MAX_IDS 8192

struct script {
    decide_fn decide;
    int mode; /* for deciders that change behaviour during a test; atomic */
    uv_loop_t *loop;
    uv_async_t release;
    pthread_mutex_t mu;
    struct pending *held;
    /* what happened, read by the test under mu */
    size_t n_sends;
    uint64_t send_ns[64];
    size_t send_spans[64];
    int in_flight, max_in_flight;
    unsigned delivered[MAX_IDS]; /* per span id: times delivered */
    size_t n_delivered_spans;
    size_t max_request_spans;
    int bad_headers; /* spans delivered with a resource or scope not their own */
    bool started, stopped, destroyed;
};

static uint64_t span_id_of(const th_otlp_span_t *s)
{
    uint64_t v = 0;
    for (size_t i = 0; i < s->span_id.len; i++) {
        v = v << 8 | s->span_id.data[i];
    }
    return v;
}

static const char *attr(th_otlp_kv_t **kvs, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(kvs[i]->key, key) && kvs[i]->value) {
            return kvs[i]->value->string_value;
        }
    }
    return NULL;
}

/* Record what a delivered request held (under mu). */
static void record_delivery(struct script *sc, const th_otlp_request_t *req)
{
    size_t spans = 0;
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const th_otlp_resource_spans_t *rs = req->resource_spans[i];
        const char *svc = rs->resource ? attr(rs->resource->attributes, rs->resource->n_attributes,
                                              "service.name")
                                       : NULL;
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            char scope[64];
            snprintf(scope, sizeof(scope), "scope-%s", svc ? svc : "?");
            bool scope_ok = ss->scope && ss->scope->name && !strcmp(ss->scope->name, scope);
            for (size_t k = 0; k < ss->n_spans; k++) {
                const th_otlp_span_t *s = ss->spans[k];
                const char *own = attr(s->attributes, s->n_attributes, "svc");
                if (!svc || !own || strcmp(own, svc) || !scope_ok) {
                    sc->bad_headers++;
                }
                uint64_t id = span_id_of(s);
                if (id < MAX_IDS) {
                    sc->delivered[id]++;
                }
                spans++;
            }
        }
    }
    sc->n_delivered_spans += spans;
    sc->max_request_spans = TH_MAX(sc->max_request_spans, spans);
}

static void pending_closed(uv_handle_t *t)
{
    struct pending *p = t->data;
    protobuf_c_message_free_unpacked(&p->req->base, NULL);
    free(p);
}

static void answer(struct pending *p)
{
    struct script *sc = p->sc;
    pthread_mutex_lock(&sc->mu);
    sc->in_flight--;
    if (p->a.r.err == 0) {
        record_delivery(sc, p->req);
    }
    pthread_mutex_unlock(&sc->mu);
    p->done(p->arg, &p->a.r);
    uv_close((uv_handle_t *)&p->timer, pending_closed);
}

static void on_answer_timer(uv_timer_t *t)
{
    answer(t->data);
}

/* Answer every held send (on the loop). */
static void on_release(uv_async_t *a)
{
    struct script *sc = a->data;
    pthread_mutex_lock(&sc->mu);
    struct pending *p = sc->held;
    sc->held = NULL;
    pthread_mutex_unlock(&sc->mu);
    while (p) {
        struct pending *next = p->next;
        answer(p);
        p = next;
    }
}

static int tr_start(void *self, uv_loop_t *loop)
{
    struct script *sc = self;
    sc->loop = loop;
    uv_async_init(loop, &sc->release, on_release);
    sc->release.data = sc;
    sc->started = true;
    return 0;
}

static int tr_send(void *self, const uint8_t *pb, size_t len, th_export_done_cb done, void *arg)
{
    struct script *sc = self;
    th_otlp_request_t *req = (th_otlp_request_t *)protobuf_c_message_unpack(
        &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor, NULL,
        len, pb);
    if (!req) {
        return TH_EINVAL;
    }
    struct pending *p = calloc(1, sizeof(*p));
    p->sc = sc;
    p->done = done;
    p->arg = arg;
    p->req = req;
    p->a.r.retry_after_ns = -1;
    size_t spans = th_otlp_request_span_count(req);
    pthread_mutex_lock(&sc->mu);
    size_t nth = sc->n_sends++;
    if (nth < 64) {
        sc->send_ns[nth] = th_now_mono_ns();
        sc->send_spans[nth] = spans;
    }
    sc->in_flight++;
    sc->max_in_flight = TH_MAX(sc->max_in_flight, sc->in_flight);
    pthread_mutex_unlock(&sc->mu);
    decide_fn decide = __atomic_load_n(&sc->decide, __ATOMIC_ACQUIRE);
    if (decide) {
        decide(sc, req, spans, nth, &p->a);
    }
    uv_timer_init(sc->loop, &p->timer);
    p->timer.data = p;
    if (p->a.hold) {
        pthread_mutex_lock(&sc->mu);
        p->next = sc->held;
        sc->held = p;
        pthread_mutex_unlock(&sc->mu);
    } else {
        uv_timer_start(&p->timer, on_answer_timer, p->a.delay_ms, 0);
    }
    return 0;
}

static void tr_stop(void *self)
{
    struct script *sc = self;
    /* cancel what is held, as a real transport cancels what is in flight */
    pthread_mutex_lock(&sc->mu);
    struct pending *p = sc->held;
    sc->held = NULL;
    pthread_mutex_unlock(&sc->mu);
    while (p) {
        struct pending *next = p->next;
        p->a.r.err = TH_ESHUTDOWN;
        answer(p);
        p = next;
    }
    uv_close((uv_handle_t *)&sc->release, NULL);
    sc->stopped = true;
}

static void tr_destroy(void *self)
{
    struct script *sc = self;
    sc->destroyed = true; /* the test owns the script and reads it afterwards */
}

static const struct th_export_transport_ops script_ops = {
    .start = tr_start,
    .send = tr_send,
    .stop = tr_stop,
    .destroy = tr_destroy,
};

static struct script *script_new(decide_fn decide)
{
    struct script *sc = calloc(1, sizeof(*sc));
    sc->decide = decide;
    pthread_mutex_init(&sc->mu, NULL);
    return sc;
}

static void script_free(struct script *sc)
{
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

static void script_release(struct script *sc)
{
    uv_async_send(&sc->release);
}

#define LOCKED(sc, expr)                                                                           \
    ({                                                                                             \
        pthread_mutex_lock(&(sc)->mu);                                                             \
        __typeof__(expr) v_ = (expr);                                                              \
        pthread_mutex_unlock(&(sc)->mu);                                                           \
        v_;                                                                                        \
    })

/* Every span id in [first, first+n) delivered at least once; *dups counts extra copies. */
static bool all_delivered(struct script *sc, uint64_t first, size_t n, size_t *dups)
{
    bool ok = true;
    size_t d = 0;
    pthread_mutex_lock(&sc->mu);
    for (uint64_t i = first; i < first + n; i++) {
        ok = ok && sc->delivered[i] > 0;
        d += sc->delivered[i] > 1 ? sc->delivered[i] - 1 : 0;
    }
    pthread_mutex_unlock(&sc->mu);
    if (dups) {
        *dups = d;
    }
    return ok;
}

/* ---- Deciders --------------------------------------------------------------------------- */

static void ok_now(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                   struct answer *a)
{
}

static void hold_all(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                     struct answer *a)
{
    a->hold = true;
}

static void ok_slowly(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                      struct answer *a)
{
    a->delay_ms = 20;
}

static void fail_retry(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                       struct answer *a)
{
    a->r.err = TH_ERETRY;
    snprintf(a->r.message, sizeof(a->r.message), "503 Service Unavailable");
}

/* mode 0: retryable failures; 1: delivered */
static void fail_until_mode(struct script *sc, const th_otlp_request_t *req, size_t spans,
                            size_t nth, struct answer *a)
{
    if (__atomic_load_n(&sc->mode, __ATOMIC_ACQUIRE) == 0) {
        fail_retry(sc, req, spans, nth, a);
    }
}

/* the first four sends fail */
static void fail_four(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                      struct answer *a)
{
    if (nth < 4) {
        fail_retry(sc, req, spans, nth, a);
    }
}

static void throttle_once(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                          struct answer *a)
{
    if (nth == 0) {
        fail_retry(sc, req, spans, nth, a);
        a->r.retry_after_ns = (int64_t)__atomic_load_n(&sc->mode, __ATOMIC_ACQUIRE) * MS;
    }
}

static void perm(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                 struct answer *a)
{
    a->r.err = TH_EPERM;
    snprintf(a->r.message, sizeof(a->r.message), "400 Bad Request");
}

/* requests of more than two spans are too large */
static void too_big(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                    struct answer *a)
{
    if (spans > (size_t)__atomic_load_n(&sc->mode, __ATOMIC_ACQUIRE)) {
        a->r.err = TH_E2BIG;
        snprintf(a->r.message, sizeof(a->r.message), "413 Request Entity Too Large");
    }
}

/* span id 1000 fails forever; everything else is delivered */
static void one_fails(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                      struct answer *a)
{
    if (span_id_of(req->resource_spans[0]->scope_spans[0]->spans[0]) == 1000) {
        fail_retry(sc, req, spans, nth, a);
    }
}

/* ---- Set-up ------------------------------------------------------------------------------ */

static struct th_component comp;

/* The helper's counters, read while its thread may write them. */
#define STAT(f) __atomic_load_n(&comp.stats.f, __ATOMIC_ACQUIRE)

static void comp_reset(void)
{
    memset(&comp, 0, sizeof(comp));
    comp.id = "otlp_http/test";
    comp.kind_name = "exporter";
    comp.log_level = -1;
}

static struct th_retry_cfg retry_cfg(int64_t initial_ms, int64_t max_ms, int64_t elapsed_ms,
                                     double mult, double rf)
{
    return (struct th_retry_cfg){.enabled = true,
                                 .initial_interval_ns = initial_ms * MS,
                                 .max_interval_ns = max_ms * MS,
                                 .max_elapsed_time_ns = elapsed_ms * MS,
                                 .multiplier = mult,
                                 .randomization_factor = rf};
}

static struct th_queue_cfg queue_cfg(int64_t consumers, int64_t size)
{
    return (struct th_queue_cfg){
        .enabled = true, .num_consumers = consumers, .queue_size = size, .sizer = "requests"};
}

static th_exporterhelper_t *helper(const struct th_retry_cfg *r, const struct th_queue_cfg *q,
                                   struct script *sc, struct th_host *host)
{
    th_exporterhelper_t *h = NULL;
    assert_int_equal(th_exporterhelper_create(&comp, r, q, &script_ops, sc, &h), 0);
    assert_int_equal(th_exporterhelper_start(h, host), 0);
    return h;
}

/* ---- Config ------------------------------------------------------------------------------ */

struct wrap {
    struct th_retry_cfg retry;
    struct th_queue_cfg queue;
};

static const struct th_cfg_field wrap_fields[] = {
    {.name = "retry_on_failure",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct wrap, retry),
     .sub = th_retry_cfg_fields,
     .desc = "retry"},
    {.name = "sending_queue",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct wrap, queue),
     .aux = offsetof(struct wrap, queue.enabled),
     .flags = TH_CFG_F_SOME,
     .sub = th_queue_cfg_fields,
     .desc = "queue"},
    {.name = NULL},
};

static int decode(const char *yaml, struct wrap *w, th_arena_t *a, char *err, size_t errlen)
{
    th_node_t *node = NULL;
    int ret = th_yaml_parse(yaml, strlen(yaml), "<test>", a, &node, err, errlen);
    if (ret == 0) {
        ret = th_cfg_decode(wrap_fields, node, w, a, "exporters::otlp_http", err, errlen);
    }
    return ret;
}

static void test_config(void **state)
{
    (void)state;
    th_arena_t *a = th_arena_create(0, 0);
    struct wrap w;
    char err[512];
    const char *why = NULL;
    assert_int_equal(decode("{}", &w, a, err, sizeof(err)), 0);
    assert_true(w.retry.enabled);
    assert_int_equal(w.retry.initial_interval_ns, 5000 * MS);
    assert_int_equal(w.retry.max_interval_ns, 30000 * MS);
    assert_int_equal(w.retry.max_elapsed_time_ns, 300000 * MS);
    assert_true(w.retry.multiplier == 1.5);
    assert_true(w.retry.randomization_factor == 0.5);
    assert_true(w.queue.enabled); /* the Some flavor: on when absent */
    assert_int_equal(w.queue.num_consumers, 10);
    assert_int_equal(w.queue.queue_size, 1000);
    assert_string_equal(w.queue.sizer, "requests");
    assert_false(w.queue.block_on_overflow);
    assert_false(w.queue.wait_for_result);
    assert_true(!w.queue.storage || !*w.queue.storage);
    assert_int_equal(th_exporterhelper_config_check(&w.retry, &w.queue, &why), 0);

    assert_int_equal(decode("sending_queue: {enabled: false}", &w, a, err, sizeof(err)), 0);
    assert_false(w.queue.enabled);
    assert_int_equal(decode("sending_queue:", &w, a, err, sizeof(err)), 0);
    assert_true(w.queue.enabled);
    assert_int_equal(decode("sending_queue: {storage: file_storage/q, sizer: bytes, "
                            "queue_size: 5000000, batch: {flush_timeout: 1s}}\n"
                            "retry_on_failure: {initial_interval: 1s, max_elapsed_time: 0}",
                            &w, a, err, sizeof(err)),
                     0);
    assert_string_equal(w.queue.storage, "file_storage/q");
    assert_string_equal(w.queue.sizer, "bytes");
    assert_int_equal(w.retry.max_elapsed_time_ns, 0);
    assert_int_equal(th_exporterhelper_config_check(&w.retry, &w.queue, &why), 0);
    assert_int_not_equal(decode("sending_queue: {sizer: spans}", &w, a, err, sizeof(err)), 0);
    assert_int_not_equal(decode("sending_queue: {nope: 1}", &w, a, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "nope"));

    /* the Collector's rules */
    struct th_retry_cfg r = retry_cfg(5000, 30000, 300000, 1.5, 0.5);
    struct th_queue_cfg q = queue_cfg(10, 1000);
    r.max_elapsed_time_ns = 1000 * MS; /* < initial_interval */
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "initial_interval"));
    r = retry_cfg(1000, 30000, 10000, 1.5, 0.5); /* < max_interval */
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "max_interval"));
    r = retry_cfg(1000, 30000, 0, 1.5, 0.5); /* 0 = forever: no rule */
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), 0);
    r.randomization_factor = 1.5;
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "randomization_factor"));
    r.enabled = false; /* not checked when disabled, as in the Collector */
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), 0);
    r = retry_cfg(1000, 30000, 0, -1, 0.5);
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    r = retry_cfg(-1, 30000, 0, 1.5, 0.5);
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    r = retry_cfg(1000, 30000, 0, 1.5, 0.5);
    q.num_consumers = 0;
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "num_consumers"));
    q = queue_cfg(10, 0);
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "queue_size"));
    q = queue_cfg(10, 1000);
    q.storage = "file_storage/q";
    q.wait_for_result = true;
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    assert_non_null(strstr(why, "wait_for_result"));
    q.wait_for_result = false;
    q.storage = "file storage";
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), TH_ECONFIG);
    q.enabled = false; /* a disabled queue is not checked */
    q.queue_size = 0;
    assert_int_equal(th_exporterhelper_config_check(&r, &q, &why), 0);
    th_arena_destroy(a);
}

/* ---- Memory queue ------------------------------------------------------------------------ */

static void test_acks_settle_when_queued(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(hold_all);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(2, 100);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst acks[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(10 * i, 3, 1, 0), &acks[i])),
                         TH_HELD);
    }
    /* queued (encoded) means answered, although nothing is delivered yet */
    for (int i = 0; i < 3; i++) {
        assert_true(WAIT_FOR(settled(&acks[i]) == 1, 2000));
        assert_int_equal(acks[i].result, 0);
    }
    assert_true(WAIT_FOR(LOCKED(sc, sc->in_flight) == 2, 2000));
    assert_int_equal(LOCKED(sc, sc->n_delivered_spans), 0);
    uint64_t size, cap;
    th_exporterhelper_queue_stats(h, &size, &cap);
    assert_int_equal(size, 1); /* two in flight, one waiting */
    assert_int_equal(cap, 100);
    __atomic_store_n(&sc->decide, ok_now, __ATOMIC_RELEASE);
    script_release(sc);
    assert_true(WAIT_FOR(all_delivered(sc, 0, 3, NULL) && all_delivered(sc, 10, 3, NULL) &&
                             all_delivered(sc, 20, 3, NULL),
                         2000));
    assert_true(WAIT_FOR(STAT(sent) == 9, 2000));
    assert_int_equal(STAT(failed), 0);
    th_exporterhelper_destroy(h);
    assert_true(sc->stopped && sc->destroyed);
    script_free(sc);
}

static void test_wait_for_result(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(hold_all);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(2, 100);
    q.wait_for_result = true;
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst a1, a2;
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(0, 2, 1, 0), &a1)), TH_HELD);
    assert_true(WAIT_FOR(LOCKED(sc, sc->in_flight) == 1, 2000));
    usleep(50000);
    assert_int_equal(settled(&a1), 0); /* not before delivery */
    __atomic_store_n(&sc->decide, ok_now, __ATOMIC_RELEASE);
    script_release(sc);
    assert_true(WAIT_FOR(settled(&a1) == 1, 2000));
    assert_int_equal(a1.result, 0);
    assert_true(all_delivered(sc, 0, 2, NULL));
    /* failed for good: the ack carries the error */
    __atomic_store_n(&sc->decide, perm, __ATOMIC_RELEASE);
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(10, 2, 1, 0), &a2)), TH_HELD);
    assert_true(WAIT_FOR(settled(&a2) == 1, 2000));
    assert_int_equal(a2.result, TH_EPERM);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_queue_full(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(hold_all);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 2);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst a[4];
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(0, 3, 1, 0), &a[0])), TH_HELD);
    assert_true(WAIT_FOR(LOCKED(sc, sc->in_flight) == 1, 2000)); /* left the queue */
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(10, 3, 1, 0), &a[1])), TH_HELD);
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(20, 3, 1, 0), &a[2])), TH_HELD);
    uint64_t size;
    th_exporterhelper_queue_stats(h, &size, NULL);
    assert_int_equal(size, 2);
    /* full: refused at once, the sender is told to retry */
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(30, 3, 1, 0), &a[3])),
                     TH_ERETRY);
    assert_int_equal(settled(&a[3]), 1);
    assert_int_equal(a[3].result, TH_ERETRY);
    assert_int_equal(th_exporterhelper_enqueue_failed(h), 3);
    __atomic_store_n(&sc->decide, ok_now, __ATOMIC_RELEASE);
    script_release(sc);
    assert_true(WAIT_FOR(all_delivered(sc, 0, 3, NULL) && all_delivered(sc, 10, 3, NULL) &&
                             all_delivered(sc, 20, 3, NULL),
                         2000));
    assert_false(all_delivered(sc, 30, 1, NULL));
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* sizer items: queue_size counts spans */
    comp_reset();
    sc = script_new(hold_all);
    q = queue_cfg(1, 5);
    q.sizer = "items";
    h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 3, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(LOCKED(sc, sc->in_flight) == 1, 2000));
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(10, 3, 1, 0)), TH_HELD);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(20, 3, 1, 0)), TH_ERETRY);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(30, 2, 1, 0)), TH_HELD);
    th_exporterhelper_queue_stats(h, &size, NULL);
    assert_int_equal(size, 5);
    __atomic_store_n(&sc->decide, ok_now, __ATOMIC_RELEASE);
    script_release(sc); /* shutdown waits for what is in flight */
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_block_on_overflow(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(hold_all);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 2);
    q.block_on_overflow = true;
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst a[5];
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(0, 1, 1, 0), &a[0])), TH_HELD);
    assert_true(WAIT_FOR(LOCKED(sc, sc->in_flight) == 1, 2000));
    for (int i = 1; i < 5; i++) {
        assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(10 * i, 1, 1, 0), &a[i])),
                         TH_HELD);
    }
    assert_true(WAIT_FOR(settled(&a[2]) == 1, 2000));
    usleep(50000);
    /* two queued and answered; the last two held, unanswered */
    assert_int_equal(settled(&a[1]), 1);
    assert_int_equal(settled(&a[3]), 0);
    assert_int_equal(settled(&a[4]), 0);
    assert_int_equal(th_exporterhelper_enqueue_failed(h), 0);
    __atomic_store_n(&sc->decide, ok_now, __ATOMIC_RELEASE);
    script_release(sc);
    assert_true(WAIT_FOR(settled(&a[3]) == 1 && settled(&a[4]) == 1, 2000));
    assert_int_equal(a[3].result, 0);
    for (int i = 0; i < 5; i++) {
        assert_true(WAIT_FOR(all_delivered(sc, 10 * (uint64_t)i, 1, NULL), 2000));
    }
    th_exporterhelper_destroy(h);
    script_free(sc);
}

/* ---- Retries ----------------------------------------------------------------------------- */

static int64_t gap_ms(struct script *sc, size_t i)
{
    return (int64_t)(sc->send_ns[i + 1] - sc->send_ns[i]) / MS;
}

/* A delay was within [lo, hi] ms, allowing for timers' millisecond rounding and a busy CI
 * machine (the upper side). */
static void assert_gap(struct script *sc, size_t i, double lo, double hi)
{
    int64_t g = gap_ms(sc, i);
    if (g < (int64_t)lo - 1 || g > (int64_t)hi + 40) {
        fail_msg("retry %zu came after %lld ms, expected %.0f..%.0f", i + 1, (long long)g, lo, hi);
    }
}

static void test_retry_timing(void **state)
{
    (void)state;
    comp_reset();
    /* randomised: each delay within interval × (1 ± 0.5), the interval doubling */
    struct script *sc = script_new(fail_four);
    struct th_retry_cfg r = retry_cfg(40, 10000, 0, 2, 0.5);
    struct th_queue_cfg q = queue_cfg(1, 10);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 2, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(all_delivered(sc, 0, 2, NULL), 5000));
    assert_int_equal(sc->n_sends, 5);
    assert_gap(sc, 0, 20, 60);
    assert_gap(sc, 1, 40, 120);
    assert_gap(sc, 2, 80, 240);
    assert_gap(sc, 3, 160, 480);
    assert_true(WAIT_FOR(STAT(sent) == 2, 1000));
    assert_int_equal(STAT(failed), 0);
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* without randomisation: exactly ×3 each time, up to max_interval */
    comp_reset();
    sc = script_new(fail_four);
    r = retry_cfg(20, 100, 0, 3, 0);
    h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 2, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(all_delivered(sc, 0, 2, NULL), 5000));
    assert_gap(sc, 0, 20, 20);
    assert_gap(sc, 1, 60, 60);
    assert_gap(sc, 2, 100, 100);
    assert_gap(sc, 3, 100, 100);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_retry_after(void **state)
{
    (void)state;
    comp_reset();
    /* the server's delay wins when longer than the backoff */
    struct script *sc = script_new(throttle_once);
    sc->mode = 250; /* Retry-After in ms */
    struct th_retry_cfg r = retry_cfg(10, 1000, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 10);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 1, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(all_delivered(sc, 0, 1, NULL), 3000));
    assert_gap(sc, 0, 250, 250);
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* and the backoff wins when longer than the server's delay */
    comp_reset();
    sc = script_new(throttle_once);
    sc->mode = 1;
    r = retry_cfg(150, 1000, 0, 1.5, 0);
    h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 1, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(all_delivered(sc, 0, 1, NULL), 3000));
    assert_gap(sc, 0, 150, 150);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_max_elapsed_time(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(fail_retry);
    struct th_retry_cfg r = retry_cfg(20, 20, 100, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 10);
    q.wait_for_result = true;
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst a;
    uint64_t t0 = th_now_mono_ns();
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(0, 4, 1, 0), &a)), TH_HELD);
    assert_true(WAIT_FOR(settled(&a) == 1, 3000));
    uint64_t took = (th_now_mono_ns() - t0) / MS;
    assert_int_equal(a.result, TH_ERETRY); /* the last error */
    assert_int_equal(STAT(failed), 4);
    assert_int_equal(STAT(sent), 0);
    /* attempts at 0, 20, 40, 60, 80 ms: the next would pass 100 ms */
    size_t sends = LOCKED(sc, sc->n_sends);
    if (sends < 4 || sends > 6 || took > 1000) {
        fail_msg("%zu attempts in %llu ms", sends, (unsigned long long)took);
    }
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* retry_on_failure disabled: one attempt */
    comp_reset();
    sc = script_new(fail_retry);
    r.enabled = false;
    h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(0, 4, 1, 0), &a)), TH_HELD);
    assert_true(WAIT_FOR(settled(&a) == 1, 3000));
    assert_int_equal(sc->n_sends, 1);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_permanent_error(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(perm);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 10);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 3, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(STAT(failed) == 3, 2000));
    usleep(50000);
    assert_int_equal(LOCKED(sc, sc->n_sends), 1); /* never retried */
    assert_int_equal(STAT(sent), 0);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_split_too_large(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(too_big);
    sc->mode = 2; /* more than two spans: 413 */
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(2, 10);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst a;
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(0, 7, 3, 0), &a)), TH_HELD);
    assert_true(WAIT_FOR(STAT(sent) == 7, 3000));
    size_t dups = 0;
    assert_true(all_delivered(sc, 0, 7, &dups));
    assert_int_equal(dups, 0);
    assert_int_equal(sc->bad_headers, 0); /* every span kept its resource and scope */
    assert_true(sc->max_request_spans <= 2);
    assert_int_equal(STAT(failed), 0);
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* with wait_for_result the ack settles once every half is delivered */
    comp_reset();
    sc = script_new(too_big);
    sc->mode = 1;
    q.wait_for_result = true;
    h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(100, 5, 2, 0), &a)), TH_HELD);
    assert_true(WAIT_FOR(settled(&a) == 1, 3000));
    assert_int_equal(a.result, 0);
    assert_true(all_delivered(sc, 100, 5, NULL));
    assert_int_equal(sc->bad_headers, 0);
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* one span that is still too large: dropped as a permanent failure */
    comp_reset();
    sc = script_new(too_big);
    sc->mode = 0;
    q.wait_for_result = false;
    h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 1, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(STAT(failed) == 1, 2000));
    assert_int_equal(LOCKED(sc, sc->n_sends), 1);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_consumers_in_parallel(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(hold_all);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(3, 10);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(th_exporterhelper_consume(h, mk_batch(10 * (uint64_t)i, 1, 1, 0)),
                         TH_HELD);
    }
    assert_true(WAIT_FOR(LOCKED(sc, sc->in_flight) == 3, 2000));
    usleep(50000);
    assert_int_equal(LOCKED(sc, sc->max_in_flight), 3);
    __atomic_store_n(&sc->decide, ok_now, __ATOMIC_RELEASE);
    script_release(sc);
    assert_true(WAIT_FOR(STAT(sent) == 5, 2000));
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* a request waiting for its retry does not hold the others up; at shutdown it gets one
     * more attempt at once instead of its 10 s wait, then is dropped */
    comp_reset();
    sc = script_new(one_fails);
    r = retry_cfg(10000, 10000, 0, 1.5, 0);
    q = queue_cfg(2, 10);
    h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(1000, 2, 1, 0)), TH_HELD);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(th_exporterhelper_consume(h, mk_batch(10 * (uint64_t)i, 1, 1, 0)),
                         TH_HELD);
    }
    assert_true(WAIT_FOR(STAT(sent) == 4, 2000));
    assert_int_equal(LOCKED(sc, sc->n_sends), 5);
    uint64_t t0 = th_now_mono_ns();
    assert_int_equal(th_exporterhelper_shutdown(h), 0);
    assert_true((th_now_mono_ns() - t0) / MS < 2000);
    assert_int_equal(sc->n_sends, 6); /* the one more attempt */
    assert_int_equal(STAT(failed), 2);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 1, 1, 0)), TH_ESHUTDOWN);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

/* A memory queue whose backend keeps failing: after the first failed final attempt the rest
 * is dropped at once (counted, senders waiting for the result told), instead of SIGTERM
 * waiting for one timeout per queued request. */
static void test_shutdown_gives_up_on_dead_backend(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(fail_retry);
    struct th_retry_cfg r = retry_cfg(10000, 10000, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 100);
    q.wait_for_result = true;
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst a[20];
    for (int i = 0; i < 20; i++) {
        assert_int_equal(
            th_exporterhelper_consume(h, tracked(mk_batch(10 * (uint64_t)i, 2, 1, 0), &a[i])),
            TH_HELD);
    }
    assert_true(WAIT_FOR(LOCKED(sc, sc->n_sends) >= 1, 2000));
    assert_int_equal(th_exporterhelper_shutdown(h), 0);
    /* one request in its retry wait got its final attempt; the other 19 were never tried */
    assert_true(LOCKED(sc, sc->n_sends) <= 2);
    assert_int_equal(STAT(failed), 40);
    assert_int_equal(STAT(sent), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(settled(&a[i]), 1);
        assert_true(a[i].result < 0);
    }
    th_exporterhelper_destroy(h);
    script_free(sc);
}

static void test_shutdown_drains(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(ok_slowly);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 100);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    struct ackst a[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(
            th_exporterhelper_consume(h, tracked(mk_batch(10 * (uint64_t)i, 2, 1, 0), &a[i])),
            TH_HELD);
    }
    assert_int_equal(th_exporterhelper_shutdown(h), 0);
    /* everything queued was sent before shutdown returned */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(settled(&a[i]), 1);
        assert_true(all_delivered(sc, 10 * (uint64_t)i, 2, NULL));
    }
    assert_int_equal(STAT(sent), 10);
    assert_true(sc->stopped);
    assert_int_equal(th_exporterhelper_shutdown(h), 0); /* idempotent */
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* never started: shutdown and destroy still work, the transport is freed */
    comp_reset();
    sc = script_new(ok_now);
    th_exporterhelper_t *h2 = NULL;
    assert_int_equal(th_exporterhelper_create(&comp, &r, &q, &script_ops, sc, &h2), 0);
    assert_int_equal(th_exporterhelper_shutdown(h2), 0);
    th_exporterhelper_destroy(h2);
    assert_true(sc->destroyed && !sc->started);
    script_free(sc);
    th_exporterhelper_destroy(NULL);
}

static void partial(struct script *sc, const th_otlp_request_t *req, size_t spans, size_t nth,
                    struct answer *a)
{
    a->r.rejected_spans = 2;
    snprintf(a->r.message, sizeof(a->r.message), "2 spans had no name");
}

static void test_partial_success(void **state)
{
    (void)state;
    comp_reset();
    struct script *sc = script_new(partial);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = queue_cfg(1, 10);
    th_exporterhelper_t *h = helper(&r, &q, sc, NULL);
    assert_int_equal(th_exporterhelper_consume(h, mk_batch(0, 5, 1, 0)), TH_HELD);
    assert_true(WAIT_FOR(STAT(sent) == 3, 2000));
    assert_int_equal(STAT(failed), 2);
    assert_int_equal(LOCKED(sc, sc->n_sends), 1);
    th_exporterhelper_destroy(h);
    script_free(sc);
}

/* ---- Persistent queue -------------------------------------------------------------------- */

static char dir[256];
static struct th_component *fs_ext;

static struct th_component *host_ext(struct th_host *host, const char *id)
{
    return fs_ext && !strcmp(id, fs_ext->id) ? fs_ext : NULL;
}

static struct th_host host = {.get_extension = host_ext};
static th_arena_t *fs_arena;

/* A started file_storage/q on @p directory. */
static void storage_start(const char *directory)
{
    fs_arena = th_arena_create(0, 0);
    char yaml[512], err[512];
    snprintf(yaml, sizeof(yaml), "directory: %s\n", directory);
    th_node_t *node = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "<t>", fs_arena, &node, err, sizeof(err)),
                     0);
    struct th_file_storage_cfg *cfg = th_arena_calloc(fs_arena, 1, sizeof(*cfg));
    assert_int_equal(th_cfg_decode(th_extension_file_storage_ops.config, node, cfg, fs_arena,
                                   "file_storage/q", err, sizeof(err)),
                     0);
    assert_int_equal(
        th_component_create(&th_extension_file_storage_ops, "file_storage/q", cfg, NULL, &fs_ext),
        0);
    assert_int_equal(fs_ext->ops->start(fs_ext, &host), 0);
    fs_ext->started = true;
}

static void storage_stop(void)
{
    th_component_destroy(fs_ext);
    fs_ext = NULL;
    th_arena_destroy(fs_arena);
    fs_arena = NULL;
}

static void new_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/th-exph-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static struct th_queue_cfg pqueue_cfg(int64_t consumers, int64_t size)
{
    struct th_queue_cfg q = queue_cfg(consumers, size);
    q.storage = "file_storage/q";
    return q;
}

static void test_persistent_restart(void **state)
{
    (void)state;
    new_dir();
    storage_start(dir);
    comp_reset();
    struct script *sc = script_new(fail_retry);
    struct th_retry_cfg r = retry_cfg(10000, 10000, 0, 1.5, 0);
    struct th_queue_cfg q = pqueue_cfg(2, 100);
    th_exporterhelper_t *h = helper(&r, &q, sc, &host);
    struct ackst a[6];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(
            th_exporterhelper_consume(h, tracked(mk_batch(10 * (uint64_t)i, 3, 2, 0), &a[i])),
            TH_HELD);
    }
    for (int i = 0; i < 6; i++) {
        assert_true(WAIT_FOR(settled(&a[i]) == 1, 3000)); /* committed */
        assert_int_equal(a[i].result, 0);
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/exporter_otlp_http_test_traces", dir);
    assert_int_equal(access(path, F_OK), 0);
    th_exporterhelper_destroy(h); /* nothing delivered: all stays on disk */
    assert_int_equal(STAT(sent), 0);
    assert_int_equal(STAT(failed), 0);
    script_free(sc);

    /* the next start sends what was left */
    comp_reset();
    sc = script_new(ok_now);
    h = helper(&r, &q, sc, &host);
    uint64_t req, spans;
    th__eh_redelivered(h, &req, &spans);
    assert_int_equal(req, 0); /* a clean shutdown leaves nothing marked in flight */
    size_t dups = 0;
    for (int i = 0; i < 6; i++) {
        assert_true(WAIT_FOR(all_delivered(sc, 10 * (uint64_t)i, 3, NULL), 3000));
    }
    assert_true(WAIT_FOR(STAT(sent) == 18, 2000));
    for (int i = 0; i < 6; i++) {
        all_delivered(sc, 10 * (uint64_t)i, 3, &dups);
        assert_int_equal(dups, 0);
    }
    assert_int_equal(sc->bad_headers, 0);
    th_exporterhelper_destroy(h);
    script_free(sc);

    /* and nothing is left for a third start */
    comp_reset();
    sc = script_new(ok_now);
    h = helper(&r, &q, sc, &host);
    usleep(50000);
    assert_int_equal(LOCKED(sc, sc->n_sends), 0);
    uint64_t size;
    th_exporterhelper_queue_stats(h, &size, NULL);
    assert_int_equal(size, 0);
    th_exporterhelper_destroy(h);
    script_free(sc);
    storage_stop();
    remove_dir();
}

static void test_persistent_errors(void **state)
{
    (void)state;
    new_dir();
    comp_reset();
    /* no such storage extension */
    struct script *sc = script_new(ok_now);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = pqueue_cfg(1, 100);
    th_exporterhelper_t *h = NULL;
    assert_int_equal(th_exporterhelper_create(&comp, &r, &q, &script_ops, sc, &h), 0);
    assert_int_equal(th_exporterhelper_start(h, &host), TH_ECONFIG);
    th_exporterhelper_destroy(h);
    assert_true(sc->destroyed);
    script_free(sc);

    /* one process at a time per queue: a second helper on the same file is refused */
    storage_start(dir);
    struct script *sc1 = script_new(ok_now), *sc2 = script_new(ok_now);
    th_exporterhelper_t *h1 = helper(&r, &q, sc1, &host), *h2 = NULL;
    assert_int_equal(th_exporterhelper_create(&comp, &r, &q, &script_ops, sc2, &h2), 0);
    assert_int_equal(th_exporterhelper_start(h2, &host), TH_EEXIST);
    th_exporterhelper_destroy(h2);
    th_exporterhelper_destroy(h1);
    script_free(sc1);
    script_free(sc2);

    /* the map cannot grow past its maximum: the queue is full, senders retry, no crash */
    comp_reset();
    sc = script_new(fail_until_mode);
    r = retry_cfg(20, 20, 0, 1, 0);
    q = pqueue_cfg(1, 100000);
    h = NULL;
    assert_int_equal(th_exporterhelper_create(&comp, &r, &q, &script_ops, sc, &h), 0);
    th__eh_set_max_map_size(h, 1 << 20);
    assert_int_equal(th_exporterhelper_start(h, &host), 0);
    struct ackst a[64];
    int refused_at = -1;
    for (int i = 0; i < 64 && refused_at < 0; i++) {
        int ret =
            th_exporterhelper_consume(h, tracked(mk_batch(10 * (uint64_t)i, 1, 1, 60000), &a[i]));
        if (ret == TH_ERETRY) {
            refused_at = i;
            break;
        }
        assert_int_equal(ret, TH_HELD);
        assert_true(WAIT_FOR(settled(&a[i]) == 1, 3000));
        if (a[i].result == TH_ERETRY) {
            refused_at = i; /* the commit did not fit: the sender retries */
        }
    }
    assert_true(refused_at > 1);
    assert_true(th_exporterhelper_enqueue_failed(h) >= 1);
    /* once deliveries free room, the queue takes data again */
    __atomic_store_n(&sc->mode, 1, __ATOMIC_RELEASE);
    assert_true(WAIT_FOR(STAT(sent) >= 2, 3000));
    struct ackst last;
    uint64_t size = 1;
    assert_true(WAIT_FOR((th_exporterhelper_queue_stats(h, &size, NULL), size == 0), 3000));
    usleep(50000);
    assert_int_equal(th_exporterhelper_consume(h, tracked(mk_batch(5000, 1, 1, 60000), &last)),
                     TH_HELD);
    assert_true(WAIT_FOR(settled(&last) == 1, 3000));
    assert_int_equal(last.result, 0);
    th_exporterhelper_destroy(h);
    script_free(sc);
    storage_stop();
    remove_dir();
}

/* The child: queue N batches through a transport that never answers, say when every ack
 * has settled, and wait to be killed. No cmocka here: failures exit non-zero. */
#define CRASH_BATCHES 40

static void crash_child(int wfd)
{
    storage_start(dir);
    comp_reset();
    struct script *sc = script_new(hold_all);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = pqueue_cfg(4, 1000);
    th_exporterhelper_t *h = NULL;
    if (th_exporterhelper_create(&comp, &r, &q, &script_ops, sc, &h) != 0 ||
        th_exporterhelper_start(h, &host) != 0) {
        _exit(2);
    }
    static struct ackst a[CRASH_BATCHES];
    for (int i = 0; i < CRASH_BATCHES; i++) {
        if (th_exporterhelper_consume(h, tracked(mk_batch(10 * (uint64_t)i, 3, 2, 0), &a[i])) !=
            TH_HELD) {
            _exit(3);
        }
    }
    for (int i = 0; i < CRASH_BATCHES; i++) {
        if (!WAIT_FOR(settled(&a[i]) == 1, 5000) || a[i].result != 0) {
            _exit(4);
        }
    }
    /* acknowledged: now they must survive anything; let the sends start too */
    WAIT_FOR(LOCKED(sc, sc->in_flight) == 4, 2000);
    if (write(wfd, "ok", 2) != 2) {
        _exit(5);
    }
    for (;;) {
        pause();
    }
}

static void test_persistent_survives_kill(void **state)
{
    (void)state;
    new_dir();
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(fds[1]);
    }
    close(fds[1]);
    char buf[2] = {0};
    ssize_t n = read(fds[0], buf, 2);
    close(fds[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (n != 2) {
        fail_msg("the child failed before its acks settled (status %d)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* a new process on the same directory delivers every acknowledged span */
    storage_start(dir);
    comp_reset();
    struct script *sc = script_new(ok_now);
    struct th_retry_cfg r = retry_cfg(10, 100, 0, 1.5, 0);
    struct th_queue_cfg q = pqueue_cfg(4, 1000);
    th_exporterhelper_t *h = helper(&r, &q, sc, &host);
    for (int i = 0; i < CRASH_BATCHES; i++) {
        assert_true(WAIT_FOR(all_delivered(sc, 10 * (uint64_t)i, 3, NULL), 5000));
    }
    uint64_t req, spans;
    th__eh_redelivered(h, &req, &spans);
    /* the four in flight at the kill are counted as possible duplicates */
    assert_int_equal(req, 4);
    assert_int_equal(spans, 12);
    th_exporterhelper_destroy(h);
    assert_int_equal(sc->bad_headers, 0);
    script_free(sc);
    storage_stop();
    remove_dir();
}

int main(void)
{
    /* TH_TEST_LOG=debug shows the helper's own log lines */
    const char *lvl = getenv("TH_TEST_LOG");
    th_log_configure(lvl ? th_log_level_parse(lvl) : TH_LOG_OFF, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_acks_settle_when_queued),
        cmocka_unit_test(test_wait_for_result),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_block_on_overflow),
        cmocka_unit_test(test_retry_timing),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_max_elapsed_time),
        cmocka_unit_test(test_permanent_error),
        cmocka_unit_test(test_split_too_large),
        cmocka_unit_test(test_partial_success),
        cmocka_unit_test(test_consumers_in_parallel),
        cmocka_unit_test(test_shutdown_drains),
        cmocka_unit_test(test_shutdown_gives_up_on_dead_backend),
        cmocka_unit_test(test_persistent_restart),
        cmocka_unit_test(test_persistent_errors),
        cmocka_unit_test(test_persistent_survives_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Store benchmark: writes the bench payloads into an LMDB span store, each round with its
 * trace ids rewritten (the first 4 bytes become the round number) so every write is a new
 * trace, in transactions of several requests as the exporter's writer commits them; then
 * times trace-by-id lookups and searches over random queries.
 *
 *   th_store_bench [-n SPANS] [-b REQUESTS_PER_TXN] [-q QUERIES] [-d DIR] [-s] [-k] [-t]
 *
 * -n spans to write (default 1,000,000); -b requests per write transaction (10); -q lookups
 * and searches of each kind (1000); -d the store directory (default a new one under /tmp,
 * deleted at the end unless -k); -s fsync every commit (LMDB's default; without it the
 * store runs with sync: false); -t moves every time forward by one second per round, as live
 * traffic would (by default the payloads' timestamps repeat each round, the worst case for
 * newest-first search, which must then rank ties by ingest order). Prints spans per CPU-second of
 * ingest (CPU of the whole process, so the figure holds on a busy machine), bytes per span on disk
 * against the protobuf size of the same spans, and p50/p99 latencies. Build with
 * -DCMAKE_BUILD_TYPE=Release for meaningful figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "th/otlp.h"
#include "th/store.h"

#define N_PAYLOADS 10

struct payload {
    uint8_t *buf;
    size_t len;
    th_arena_t *arena;
    th_otlp_request_t *req;
    size_t spans;
};

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int load(const char *path, struct payload *p)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p->buf = malloc((size_t)n);
    p->len = (size_t)n;
    int rc = p->buf && fread(p->buf, 1, p->len, f) == p->len ? 0 : -1;
    fclose(f);
    if (rc == 0) {
        p->arena = th_arena_create(0, 0);
        struct th_otlp_error err;
        rc = th_otlp_decode_pb(p->buf, p->len, NULL, p->arena, &p->req, &err);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", path, err.msg);
        }
        p->spans = p->req ? th_otlp_request_span_count(p->req) : 0;
    }
    return rc;
}

/* Every trace id of the request gets @p round in its first 4 bytes; with @p shift_ns, every
 * time moves forward by that much (as if the same traffic came again later). */
static void stamp(th_otlp_request_t *req, uint32_t round, uint64_t shift_ns)
{
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        th_otlp_resource_spans_t *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            th_otlp_scope_spans_t *ss = rs->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                th_otlp_span_t *sp = ss->spans[k];
                sp->start_time_unix_nano += shift_ns;
                sp->end_time_unix_nano += shift_ns;
                for (size_t e = 0; e < sp->n_events; e++) {
                    sp->events[e]->time_unix_nano += shift_ns;
                }
                uint8_t *t = sp->trace_id.data;
                t[0] = (uint8_t)(round >> 24);
                t[1] = (uint8_t)(round >> 16);
                t[2] = (uint8_t)(round >> 8);
                t[3] = (uint8_t)round;
            }
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, size_t n, size_t found)
{
    if (!n) {
        return;
    }
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("%-28s p50 %8.3f ms  p99 %8.3f ms  max %8.3f ms  (%zu queries, %zu with results)\n",
           what, ns[n / 2] / 1e6, ns[n * 99 / 100] / 1e6, ns[n - 1] / 1e6, n, found);
}

/* A random span of a random payload. */
static const th_otlp_span_t *pick_span(struct payload *ps, const char **service)
{
    struct payload *p = &ps[rand() % N_PAYLOADS];
    th_otlp_resource_spans_t *rs = p->req->resource_spans[0];
    th_otlp_scope_spans_t *ss = rs->scope_spans[0];
    *service = "";
    for (size_t i = 0; i < rs->resource->n_attributes; i++) {
        if (!strcmp(rs->resource->attributes[i]->key, "service.name")) {
            *service = rs->resource->attributes[i]->value->string_value;
        }
    }
    return ss->spans[(size_t)rand() % ss->n_spans];
}

int main(int argc, char **argv)
{
    uint64_t target = 1000000;
    size_t per_txn = 10;
    size_t queries = 1000;
    bool sync = false, keep = false;
    uint64_t shift = 0;
    char dir[512] = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) {
            target = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "-b") && i + 1 < argc) {
            per_txn = strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "-q") && i + 1 < argc) {
            queries = strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "-d") && i + 1 < argc) {
            snprintf(dir, sizeof(dir), "%s", argv[++i]);
        } else if (!strcmp(argv[i], "-s")) {
            sync = true;
        } else if (!strcmp(argv[i], "-k")) {
            keep = true;
        } else if (!strcmp(argv[i], "-t")) {
            shift = 1000000000ull;
        } else {
            fprintf(stderr,
                    "usage: %s [-n SPANS] [-b REQ_PER_TXN] [-q QUERIES] [-d DIR] [-s] [-k] [-t]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!*dir) {
        snprintf(dir, sizeof(dir), "/tmp/th-store-bench-%d", (int)getpid());
    }
    struct payload ps[N_PAYLOADS];
    size_t pb_bytes_per_round = 0, spans_per_round = 0;
    for (int i = 0; i < N_PAYLOADS; i++) {
        char path[256];
        snprintf(path, sizeof(path), "/work/shared/bench/payloads/otlp-100spans-%02d.pb", i + 1);
        if (load(path, &ps[i]) != 0) {
            fprintf(stderr, "cannot load %s\n", path);
            return 1;
        }
        pb_bytes_per_round += ps[i].len;
        spans_per_round += ps[i].spans;
    }
    struct th_store_cfg cfg = {.path = dir, .sync = sync, .ttl_ns = 0};
    th_store_t *st;
    char err[512];
    int rc = th_store_open(&th_store_lmdb_ops, &cfg, &st, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", err);
        return 1;
    }

    /* ---- ingest ---- */
    th_batch_t batches[N_PAYLOADS];
    th_batch_t *group[64];
    per_txn = per_txn < 1 ? 1 : per_txn > 64 ? 64 : per_txn;
    uint64_t spans = 0, pb_bytes = 0, txns = 0;
    uint32_t round = 0;
    uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), wall0 = clock_ns(CLOCK_MONOTONIC);
    size_t next = 0;
    while (spans < target) {
        size_t n = 0;
        while (n < per_txn) {
            if (next == 0) {
                round++;
                for (int i = 0; i < N_PAYLOADS; i++) {
                    stamp(ps[i].req, round, round > 1 ? shift : 0);
                }
            }
            /* a group never holds the same payload twice: they share structs */
            batches[next] = (th_batch_t){.req = ps[next].req, .span_count = ps[next].spans};
            group[n++] = &batches[next];
            spans += ps[next].spans;
            pb_bytes += ps[next].len;
            next = (next + 1) % N_PAYLOADS;
            if (next == 0) {
                break;
            }
        }
        rc = th_store_write(st, group, n);
        if (rc != 0) {
            fprintf(stderr, "write: %s\n", th_strerror(rc));
            return 1;
        }
        txns++;
    }
    uint64_t cpu1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID), wall1 = clock_ns(CLOCK_MONOTONIC);
    double cpu_s = (double)(cpu1 - cpu0) / 1e9, wall_s = (double)(wall1 - wall0) / 1e9;
    struct th_store_stats stats;
    st->ops->stats(st, &stats);
    printf("ingest: %llu spans in %llu txns: %.0f spans/CPU-s (%.2f CPU-s), %.0f spans/s wall\n",
           (unsigned long long)spans, (unsigned long long)txns, spans / cpu_s, cpu_s,
           spans / wall_s);
    printf("disk: %llu bytes used = %.1f bytes/span (file %.1f bytes/span, preallocated); "
           "protobuf %.1f bytes/span; ratio %.2f\n",
           (unsigned long long)stats.bytes_used, (double)stats.bytes_used / spans,
           (double)stats.bytes_on_disk / spans, (double)pb_bytes / spans,
           (double)stats.bytes_used / pb_bytes);

    /* ---- trace by id ---- */
    uint64_t *ns = calloc(queries, sizeof(*ns));
    size_t found = 0;
    th_arena_t *a = th_arena_create(0, 0);
    for (size_t q = 0; q < queries; q++) {
        const char *svc;
        const th_otlp_span_t *sp = pick_span(ps, &svc);
        uint8_t tid[16];
        memcpy(tid, sp->trace_id.data, 16);
        uint32_t r = 1 + (uint32_t)rand() % (round > 1 ? round - 1 : 1);
        tid[0] = (uint8_t)(r >> 24);
        tid[1] = (uint8_t)(r >> 16);
        tid[2] = (uint8_t)(r >> 8);
        tid[3] = (uint8_t)r;
        th_otlp_request_t *req = NULL;
        uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
        rc = th_store_get_trace(st, tid, 0, 0, a, &req);
        ns[q] = clock_ns(CLOCK_MONOTONIC) - t0;
        if (rc == 0 && th_otlp_request_span_count(req) == 10) {
            found++;
        } else if (rc != 0) {
            fprintf(stderr, "get_trace: %s\n", th_strerror(rc));
        }
        th_arena_destroy(a);
        a = th_arena_create(0, 0);
    }
    report("trace by id", ns, queries, found);

    /* ---- searches ---- */
    const char *kinds[] = {"search by service",   "search by operation",
                           "search by attribute", "search by attribute (none)",
                           "search error=true",   "search min duration 100ms"};
    uint8_t(*ids)[16] = calloc(20, 16);
    for (size_t kind = 0; kind < TH_ARRAY_SIZE(kinds); kind++) {
        found = 0;
        for (size_t q = 0; q < queries; q++) {
            const char *svc;
            const th_otlp_span_t *sp = pick_span(ps, &svc);
            struct th_trace_query tq = {.service = svc, .limit = 20};
            const char *keys[1], *vals[1];
            char num[32];
            if (kind == 1) {
                tq.operation = sp->name;
            } else if (kind == 2 || kind == 3) {
                const th_otlp_kv_t *kv = sp->attributes[(size_t)rand() % sp->n_attributes];
                keys[0] = kv->key;
                const th_otlp_any_t *v = kv->value;
                if (v->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE) {
                    snprintf(num, sizeof(num), "%lld", (long long)v->int_value);
                    vals[0] = num;
                } else if (v->value_case ==
                           OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE) {
                    vals[0] = v->bool_value ? "true" : "false";
                } else if (v->value_case ==
                           OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE) {
                    vals[0] = v->string_value;
                } else {
                    vals[0] = "x";
                }
                if (kind == 3) {
                    vals[0] = "no-such-value";
                }
                tq.tag_keys = keys;
                tq.tag_values = vals;
                tq.n_tags = 1;
            } else if (kind == 4) {
                keys[0] = "error";
                vals[0] = "true";
                tq.tag_keys = keys;
                tq.tag_values = vals;
                tq.n_tags = 1;
            } else if (kind == 5) {
                tq.duration_min_ns = 100000000;
            }
            size_t n = 0;
            uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
            rc = th_store_find_trace_ids(st, &tq, ids, &n);
            ns[q] = clock_ns(CLOCK_MONOTONIC) - t0;
            if (rc != 0) {
                fprintf(stderr, "find: %s\n", th_strerror(rc));
            }
            found += n > 0;
        }
        report(kinds[kind], ns, queries, found);
    }
    /* ---- retention of the whole store, for its cost ---- */
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    th_store_close(st);
    printf("close: %.1f ms\n", (clock_ns(CLOCK_MONOTONIC) - t0) / 1e6);
    if (!keep) {
        char f[600];
        snprintf(f, sizeof(f), "%s/data.mdb", dir);
        unlink(f);
        snprintf(f, sizeof(f), "%s/lock.mdb", dir);
        unlink(f);
        rmdir(dir);
    }
    th_arena_destroy(a);
    free(ids);
    free(ns);
    for (int i = 0; i < N_PAYLOADS; i++) {
        th_arena_destroy(ps[i].arena);
        free(ps[i].buf);
    }
    (void)pb_bytes_per_round;
    (void)spans_per_round;
    return 0;
}

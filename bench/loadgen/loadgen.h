/*
 * th_loadgen, the project's OTLP load generator: its parts share this header. loadgen_gen.c
 * builds realistic trace payloads once (templates) and stamps fresh trace ids into a copy
 * for every request; loadgen_http.c and loadgen_grpc.c send them over OTLP/HTTP (HTTP/1.1
 * keep-alive) and OTLP/gRPC (HTTP/2 via nghttp2); loadgen.c schedules requests (open loop
 * at a rate, or closed loop at full speed), counts answers and prints the report.
 */
#ifndef TH_LOADGEN_H
#define TH_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- Trace shape ------------------------------------------------------------------------ */

struct lg_shape {
    uint64_t seed;
    unsigned services;          /**< distinct service.name values */
    unsigned spans_per_trace;   /**< spans in one trace */
    unsigned max_depth;         /**< deepest nesting of a span under the root */
    unsigned max_fanout;        /**< most children of one span */
    unsigned spans_per_request; /**< spans in one ExportTraceServiceRequest */
    unsigned attrs;             /**< attributes per span */
    unsigned attr_size;         /**< bytes of a string attribute value */
    unsigned resource_attrs;    /**< attributes per resource besides service.name */
    double event_share;         /**< share of spans with an event */
    double error_share;         /**< share of traces with an ERROR span */
    double slow_share;          /**< share of traces whose root lasts slow_ms */
    unsigned slow_ms;
    unsigned templates; /**< distinct payloads generated up front */
    bool json;          /**< OTLP/JSON instead of protobuf */
};

/** One pre-built request body and where its trace ids sit in it. */
struct lg_template {
    uint8_t *body;
    size_t len;
    size_t spans;
    size_t *id_off; /**< byte offsets of every trace id occurrence */
    size_t n_id_off;
    size_t *ts_off; /**< byte offsets of every timestamp (fixed64, or 19 decimal digits) */
    size_t n_ts_off;
    uint64_t base_ns; /**< wall clock the timestamps were generated against */
};

/**
 * Build @p shape->templates payloads.
 * @return 0, or -1 with a message on stderr.
 */
int lg_gen_templates(const struct lg_shape *shape, struct lg_template **out, size_t *n);

/**
 * Copy template @p t into @p dst (t->len bytes), stamp @p seq into the first 4 bytes of
 * every trace id, so each request carries traces never seen before, and move every timestamp
 * forward by @p shift_ns, so spans are dated when they are sent (retention sees real ages).
 */
void lg_stamp(const struct lg_template *t, bool json, uint32_t seq, uint64_t shift_ns,
              uint8_t *dst);

/**
 * Build one request holding the first or second half of a single trace (the late-span
 * scenario): part 0 is the root and half the spans, part 1 the rest, sent minutes later.
 * @param[out] trace_hex the trace id in hex (33 bytes).
 */
int lg_gen_split_trace(const struct lg_shape *shape, int part, uint8_t **body, size_t *len,
                       size_t *spans, char *trace_hex);

void lg_templates_free(struct lg_template *t, size_t n);

/* ---- Transports ------------------------------------------------------------------------- */

struct lg_conn;

/** How one request ended. */
struct lg_answer {
    int status;           /**< HTTP status, or 200 + grpc_status for gRPC; 0 on a transport error */
    int grpc_status;      /**< -1 for HTTP */
    uint64_t intended_ns; /**< when the scheduler meant to send it */
};

/** Called when a request on @p c ends; the connection can take the next one. */
typedef void (*lg_done_cb)(struct lg_conn *c, const struct lg_answer *a, void *arg);

struct lg_transport {
    const char *name;
    /** Open a connection (asynchronously); requests wait until it is up. */
    struct lg_conn *(*open)(uv_loop_t *loop, const struct sockaddr *addr, const char *authority,
                            bool json, lg_done_cb done, void *arg);
    /** Requests the connection can carry at once (1 for HTTP/1.1). */
    unsigned (*capacity)(struct lg_conn *c);
    /** Requests in flight. */
    unsigned (*inflight)(struct lg_conn *c);
    /** Send a body (the transport copies what it needs). @return 0 or -1 when not ready. */
    int (*send)(struct lg_conn *c, const uint8_t *body, size_t len, uint64_t intended_ns);
    void (*close)(struct lg_conn *c);
};

extern const struct lg_transport lg_http_transport;
extern const struct lg_transport lg_grpc_transport;

/** gRPC: how many requests one connection carries at once. */
void lg_grpc_set_streams(struct lg_conn *c, unsigned n);

#endif

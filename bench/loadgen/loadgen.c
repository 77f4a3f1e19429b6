/*
 * th_loadgen: sends realistic OTLP traces to a collector and reports what it accepted.
 *
 *   th_loadgen [options]        (th_loadgen --help lists them)
 *
 * Open loop (--rate SPANS_PER_S): requests are due at fixed times whatever the server does;
 * a request that waits for a free connection is timed from when it was due, so a slow server
 * shows as latency rather than as a lower rate (no coordinated omission). Closed loop (no
 * --rate): every connection sends again as soon as it is answered. The report gives spans/s
 * sent and accepted, answers by status, and latency percentiles, then one `RESULT k=v ...`
 * line for scripts, and with --json a machine-readable copy.
 */
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/loadgen/loadgen.h"
#include "th/common.h"

/* Latency histogram in microseconds: bucket (e, i) holds values v with v >> e == i, where e
 * is 0 below 128 and otherwise picks i in 64..127: under 1.6% error up to hours. */
#define SUB  128
#define EXPS 40
struct histo {
    uint64_t b[EXPS][SUB];
    uint64_t n, max_us;
};

static void histo_add(struct histo *h, uint64_t us)
{
    unsigned e = 0;
    uint64_t v = us;
    while (v >= SUB && e < EXPS - 1) {
        v >>= 1;
        e++;
    }
    h->b[e][v < SUB ? v : SUB - 1]++;
    h->n++;
    if (us > h->max_us) {
        h->max_us = us;
    }
}

static double histo_pct(const struct histo *h, double p)
{
    if (h->n == 0) {
        return 0;
    }
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)h->n), seen = 0;
    for (unsigned e = 0; e < EXPS; e++) {
        for (unsigned i = 0; i < SUB; i++) {
            seen += h->b[e][i];
            if (seen >= want) {
                return (double)((uint64_t)i << e) / 1000.0;
            }
        }
    }
    return (double)h->max_us / 1000.0;
}

struct opts {
    const char *endpoint;
    const char *protocol;
    double rate; /* spans/s; 0 = closed loop */
    double duration_s;
    unsigned connections;
    unsigned streams; /* gRPC: requests in flight per connection */
    const char *json_out;
    double late_after_s;  /* 0 = off */
    uint64_t total_spans; /* stop after sending this many (0 = run for the duration) */
    bool quiet;
    struct lg_shape shape;
};

struct run {
    struct opts o;
    const struct lg_transport *tr;
    uv_loop_t *loop;
    struct lg_conn **conns;
    struct lg_template *tpl;
    size_t n_tpl;
    double body_bytes_per_span; /* of the templates, uncompressed, in the chosen encoding */
    uint8_t *scratch;
    size_t scratch_cap;
    uint32_t seq;
    uint64_t start_ns, end_ns;
    uint64_t due;    /* requests the schedule has made due so far (open loop) */
    uint64_t issued; /* requests sent */
    uint64_t backlog_first_ns;
    /* counters */
    uint64_t sent_req, sent_spans, ok_req, ok_spans, answered;
    uint64_t by_class[6]; /* 0: transport error, 2xx..5xx at [2..5] */
    uint64_t s429, s503, grpc_nonok;
    struct histo lat;
    uv_timer_t tick, report, late;
    uint64_t last_report_ns, last_ok_spans;
    bool stopping;
    /* late-span scenario */
    char late_trace[33];
    int late_part;
    /* per-request span counts of what is in flight, by intended time is not needed: keep
     * the span count of the template each connection carries */
};

/* Requests per connection in flight with their span counts: a small ring per connection
 * would do, but every template of a run has the same span count except the late trace's
 * parts, which are counted when sent. */
static size_t spans_per_request(struct run *r)
{
    return r->n_tpl ? r->tpl[0].spans : 0;
}

static bool send_one(struct run *r, struct lg_conn *c, uint64_t intended)
{
    const struct lg_template *t = &r->tpl[r->seq % r->n_tpl];
    if (r->scratch_cap < t->len) {
        free(r->scratch);
        r->scratch = malloc(t->len);
        r->scratch_cap = r->scratch ? t->len : 0;
        if (!r->scratch) {
            return false;
        }
    }
    uint64_t now = th_now_unix_ns();
    lg_stamp(t, r->o.shape.json, r->seq, now > t->base_ns ? now - t->base_ns : 0, r->scratch);
    if (r->tr->send(c, r->scratch, t->len, intended) != 0) {
        return false;
    }
    r->seq++;
    r->issued++;
    r->sent_req++;
    r->sent_spans += t->spans;
    return true;
}

/* Send whatever is due on connections that have room. */
static void pump(struct run *r)
{
    if (r->stopping) {
        return;
    }
    uint64_t now = th_now_mono_ns();
    for (unsigned k = 0; k < r->o.connections; k++) {
        struct lg_conn *c = r->conns[k];
        while (r->tr->inflight(c) < r->tr->capacity(c)) {
            if (r->o.total_spans && r->sent_spans >= r->o.total_spans) {
                return;
            }
            uint64_t intended;
            if (r->o.rate > 0) {
                if (r->issued >= r->due) {
                    return;
                }
                /* When the (issued+1)th request was due. */
                double per_req_ns = 1e9 * (double)spans_per_request(r) / r->o.rate;
                intended = r->start_ns + (uint64_t)((double)r->issued * per_req_ns);
            } else {
                intended = now;
            }
            if (!send_one(r, c, intended)) {
                break;
            }
        }
    }
}

static void on_done(struct lg_conn *c, const struct lg_answer *a, void *arg)
{
    (void)c;
    struct run *r = arg;
    if (a->status >= 0) {
        uint64_t now = th_now_mono_ns();
        r->answered++;
        unsigned cls = a->status >= 200 && a->status < 600 ? (unsigned)a->status / 100 : 0;
        bool ok = cls == 2 && a->grpc_status <= 0;
        if (cls == 2 && a->grpc_status > 0) {
            r->grpc_nonok++;
        }
        r->by_class[ok ? 2 : (cls == 2 ? 0 : cls)]++;
        r->s429 += a->status == 429;
        r->s503 += a->status == 503 || a->grpc_status == 14;
        if (ok) {
            r->ok_req++;
            r->ok_spans += spans_per_request(r);
        }
        if (now > a->intended_ns) {
            histo_add(&r->lat, (now - a->intended_ns) / 1000);
        }
        if (r->o.total_spans && r->sent_spans >= r->o.total_spans && r->answered == r->sent_req) {
            r->stopping = true;
            uv_stop(r->loop); /* everything sent has been answered */
            return;
        }
    }
    pump(r);
}

static void on_tick(uv_timer_t *t)
{
    struct run *r = t->data;
    uint64_t now = th_now_mono_ns();
    if (now >= r->end_ns) {
        r->stopping = true;
        uv_timer_stop(&r->tick);
        uv_timer_stop(&r->report);
        /* Give in-flight requests a moment, then close everything. */
        uv_stop(r->loop);
        return;
    }
    if (r->o.rate > 0) {
        double reqs_per_s = r->o.rate / (double)(spans_per_request(r) ? spans_per_request(r) : 1);
        r->due = (uint64_t)((double)(now - r->start_ns) / 1e9 * reqs_per_s) + 1;
    }
    pump(r);
}

static void on_report(uv_timer_t *t)
{
    struct run *r = t->data;
    uint64_t now = th_now_mono_ns();
    double dt = (double)(now - r->last_report_ns) / 1e9;
    if (!r->o.quiet) {
        fprintf(stderr, "  %6.1fs  accepted %9.0f spans/s  sent %llu req  non-2xx %llu\n",
                (double)(now - r->start_ns) / 1e9, (double)(r->ok_spans - r->last_ok_spans) / dt,
                (unsigned long long)r->sent_req, (unsigned long long)(r->answered - r->ok_req));
    }
    r->last_report_ns = now;
    r->last_ok_spans = r->ok_spans;
}

/* The late-span scenario: the first half of one trace now, the rest after late_after_s. */
static void send_late_part(struct run *r, int part)
{
    uint8_t *body = NULL;
    size_t len = 0, spans = 0;
    if (lg_gen_split_trace(&r->o.shape, part, &body, &len, &spans, r->late_trace) != 0) {
        fprintf(stderr, "th_loadgen: cannot build the late trace\n");
        return;
    }
    /* Any connection with room; retried by the timer when none has. */
    for (unsigned k = 0; k < r->o.connections; k++) {
        struct lg_conn *c = r->conns[k];
        if (r->tr->inflight(c) < r->tr->capacity(c) &&
            r->tr->send(c, body, len, th_now_mono_ns()) == 0) {
            fprintf(stderr, "th_loadgen: late trace %s part %d sent (%zu spans)\n", r->late_trace,
                    part + 1, spans);
            r->late_part = part + 1;
            r->sent_spans += spans;
            break;
        }
    }
    free(body);
}

static void on_late(uv_timer_t *t)
{
    struct run *r = t->data;
    uint64_t now = th_now_mono_ns();
    if (r->late_part == 0) {
        send_late_part(r, 0);
    } else if (r->late_part == 1 && now - r->start_ns >= (uint64_t)(r->o.late_after_s * 1e9)) {
        send_late_part(r, 1);
    }
    if (r->late_part >= 2) {
        uv_timer_stop(t);
    }
}

static int resolve(const char *endpoint, struct sockaddr_storage *out, char *authority, size_t alen)
{
    char host[256];
    const char *p = endpoint;
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    }
    const char *colon = strrchr(p, ':');
    if (!colon || colon == p) {
        fprintf(stderr, "th_loadgen: --endpoint wants host:port, got \"%s\"\n", endpoint);
        return -1;
    }
    size_t hl = (size_t)(colon - p);
    if (hl >= sizeof(host)) {
        return -1;
    }
    memcpy(host, p, hl);
    host[hl] = 0;
    const char *port = colon + 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "th_loadgen: cannot resolve %s: %s\n", endpoint, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    snprintf(authority, alen, "%s:%s", host, port);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: th_loadgen [options]\n"
               "  -e, --endpoint HOST:PORT   where to send (default 127.0.0.1:4318; gRPC 4317)\n"
               "  -p, --protocol P           http/protobuf (default), http/json or grpc\n"
               "  -r, --rate SPANS           open loop at this many spans/s (default: closed "
               "loop)\n"
               "  -d, --duration S           seconds to run (default 10)\n"
               "  -c, --connections N        connections (default 4)\n"
               "      --streams N            gRPC requests in flight per connection (default 8)\n"
               "      --seed N               PRNG seed (default 1)\n"
               "      --services N           services (default 10)\n"
               "      --spans-per-trace N    (default 10)\n"
               "      --depth N              deepest nesting (default 4)\n"
               "      --fanout N             most children of a span (default 4)\n"
               "      --spans-per-request N  (default 100)\n"
               "      --attrs N              attributes per span (default 8)\n"
               "      --attr-size N          bytes of a string attribute (default 16)\n"
               "      --resource-attrs N     resource attributes besides service.name (default 4)\n"
               "      --events F             share of spans with an event (default 0.17)\n"
               "      --errors F             share of traces with an error span (default 0.02)\n"
               "      --slow F               share of slow traces (default 0)\n"
               "      --slow-ms N            duration of a slow trace's root (default 2000)\n"
               "      --templates N          distinct payloads (default 16)\n"
               "      --late-after S         send half of one extra trace at start and the rest "
               "S seconds later\n"
               "      --total-spans N        stop once N spans are sent and answered (the "
               "duration is then a limit)\n"
               "      --json FILE            write the results as JSON too\n"
               "  -q, --quiet                no per-second lines\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
    enum {
        O_STREAMS = 256,
        O_SEED,
        O_SERVICES,
        O_SPT,
        O_DEPTH,
        O_FANOUT,
        O_SPR,
        O_ATTRS,
        O_ATTR_SIZE,
        O_RATTRS,
        O_EVENTS,
        O_ERRORS,
        O_SLOW,
        O_SLOW_MS,
        O_TEMPLATES,
        O_LATE,
        O_JSON,
        O_TOTAL
    };
    static const struct option lo[] = {
        {"endpoint", required_argument, 0, 'e'},
        {"protocol", required_argument, 0, 'p'},
        {"rate", required_argument, 0, 'r'},
        {"duration", required_argument, 0, 'd'},
        {"connections", required_argument, 0, 'c'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {"streams", required_argument, 0, O_STREAMS},
        {"seed", required_argument, 0, O_SEED},
        {"services", required_argument, 0, O_SERVICES},
        {"spans-per-trace", required_argument, 0, O_SPT},
        {"depth", required_argument, 0, O_DEPTH},
        {"fanout", required_argument, 0, O_FANOUT},
        {"spans-per-request", required_argument, 0, O_SPR},
        {"attrs", required_argument, 0, O_ATTRS},
        {"attr-size", required_argument, 0, O_ATTR_SIZE},
        {"resource-attrs", required_argument, 0, O_RATTRS},
        {"events", required_argument, 0, O_EVENTS},
        {"errors", required_argument, 0, O_ERRORS},
        {"slow", required_argument, 0, O_SLOW},
        {"slow-ms", required_argument, 0, O_SLOW_MS},
        {"templates", required_argument, 0, O_TEMPLATES},
        {"late-after", required_argument, 0, O_LATE},
        {"json", required_argument, 0, O_JSON},
        {"total-spans", required_argument, 0, O_TOTAL},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "e:p:r:d:c:qh", lo, NULL)) != -1) {
        switch (ch) {
        case 'e':
            o->endpoint = optarg;
            break;
        case 'p':
            o->protocol = optarg;
            break;
        case 'r':
            o->rate = atof(optarg);
            break;
        case 'd':
            o->duration_s = atof(optarg);
            break;
        case 'c':
            o->connections = (unsigned)atoi(optarg);
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case O_STREAMS:
            o->streams = (unsigned)atoi(optarg);
            break;
        case O_SEED:
            o->shape.seed = strtoull(optarg, NULL, 10);
            break;
        case O_SERVICES:
            o->shape.services = (unsigned)atoi(optarg);
            break;
        case O_SPT:
            o->shape.spans_per_trace = (unsigned)atoi(optarg);
            break;
        case O_DEPTH:
            o->shape.max_depth = (unsigned)atoi(optarg);
            break;
        case O_FANOUT:
            o->shape.max_fanout = (unsigned)atoi(optarg);
            break;
        case O_SPR:
            o->shape.spans_per_request = (unsigned)atoi(optarg);
            break;
        case O_ATTRS:
            o->shape.attrs = (unsigned)atoi(optarg);
            break;
        case O_ATTR_SIZE:
            o->shape.attr_size = (unsigned)atoi(optarg);
            break;
        case O_RATTRS:
            o->shape.resource_attrs = (unsigned)atoi(optarg);
            break;
        case O_EVENTS:
            o->shape.event_share = atof(optarg);
            break;
        case O_ERRORS:
            o->shape.error_share = atof(optarg);
            break;
        case O_SLOW:
            o->shape.slow_share = atof(optarg);
            break;
        case O_SLOW_MS:
            o->shape.slow_ms = (unsigned)atoi(optarg);
            break;
        case O_TEMPLATES:
            o->shape.templates = (unsigned)atoi(optarg);
            break;
        case O_LATE:
            o->late_after_s = atof(optarg);
            break;
        case O_JSON:
            o->json_out = optarg;
            break;
        case O_TOTAL:
            o->total_spans = strtoull(optarg, NULL, 10);
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (strcmp(o->protocol, "http/protobuf") && strcmp(o->protocol, "http/json") &&
        strcmp(o->protocol, "grpc")) {
        fprintf(stderr, "th_loadgen: --protocol is http/protobuf, http/json or grpc\n");
        return -1;
    }
    if (o->connections == 0 || o->streams == 0 || o->shape.services == 0 ||
        o->shape.templates == 0 || o->shape.spans_per_request == 0 || o->duration_s <= 0) {
        fprintf(stderr, "th_loadgen: connections, streams, services, templates, "
                        "spans-per-request and duration must be positive\n");
        return -1;
    }
    o->shape.json = strcmp(o->protocol, "http/json") == 0;
    return 0;
}

static void report(struct run *r, double secs)
{
    double p50 = histo_pct(&r->lat, 50), p90 = histo_pct(&r->lat, 90), p99 = histo_pct(&r->lat, 99),
           p999 = histo_pct(&r->lat, 99.9);
    uint64_t non2xx = r->answered - r->ok_req;
    printf("th_loadgen: %s to %s, %s, %u connections, %.1f s\n", r->o.protocol, r->o.endpoint,
           r->o.rate > 0 ? "open loop" : "closed loop", r->o.connections, secs);
    printf("  sent      %10.0f spans/s  (%llu requests, %llu spans)\n",
           (double)r->sent_spans / secs, (unsigned long long)r->sent_req,
           (unsigned long long)r->sent_spans);
    printf("  accepted  %10.0f spans/s  (%llu requests, %llu spans)\n", (double)r->ok_spans / secs,
           (unsigned long long)r->ok_req, (unsigned long long)r->ok_spans);
    printf("  answers   2xx %llu, 4xx %llu, 5xx %llu (429: %llu, 503/UNAVAILABLE: %llu), "
           "gRPC errors %llu, transport errors %llu, unanswered %llu\n",
           (unsigned long long)r->by_class[2], (unsigned long long)r->by_class[4],
           (unsigned long long)r->by_class[5], (unsigned long long)r->s429,
           (unsigned long long)r->s503, (unsigned long long)r->grpc_nonok,
           (unsigned long long)r->by_class[0], (unsigned long long)(r->sent_req - r->answered));
    printf("  latency   p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n", p50,
           p90, p99, p999, (double)r->lat.max_us / 1000.0);
    if (r->late_part) {
        printf("  late trace %s: %d of 2 parts sent\n", r->late_trace, r->late_part);
    }
    printf("RESULT protocol=%s sent_spans_per_s=%.0f accepted_spans_per_s=%.0f requests=%llu "
           "non2xx=%llu errors=%llu p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
           "body_bytes_per_span=%.1f\n",
           r->o.protocol, (double)r->sent_spans / secs, (double)r->ok_spans / secs,
           (unsigned long long)r->sent_req, (unsigned long long)non2xx,
           (unsigned long long)r->by_class[0], p50, p99, p999, (double)r->lat.max_us / 1000.0,
           r->body_bytes_per_span);
    if (r->o.json_out) {
        FILE *f = fopen(r->o.json_out, "w");
        if (!f) {
            perror(r->o.json_out);
            return;
        }
        fprintf(f,
                "{\"protocol\":\"%s\",\"endpoint\":\"%s\",\"open_loop\":%s,\"rate\":%.0f,"
                "\"connections\":%u,\"seconds\":%.3f,\"sent_spans\":%llu,\"accepted_spans\":%llu,"
                "\"sent_spans_per_s\":%.0f,\"accepted_spans_per_s\":%.0f,\"requests\":%llu,"
                "\"status_2xx\":%llu,\"status_4xx\":%llu,\"status_5xx\":%llu,\"status_429\":%llu,"
                "\"unavailable\":%llu,\"grpc_errors\":%llu,\"transport_errors\":%llu,"
                "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
                "\"max\":%.3f},\"body_bytes_per_span\":%.1f}\n",
                r->o.protocol, r->o.endpoint, r->o.rate > 0 ? "true" : "false", r->o.rate,
                r->o.connections, secs, (unsigned long long)r->sent_spans,
                (unsigned long long)r->ok_spans, (double)r->sent_spans / secs,
                (double)r->ok_spans / secs, (unsigned long long)r->sent_req,
                (unsigned long long)r->by_class[2], (unsigned long long)r->by_class[4],
                (unsigned long long)r->by_class[5], (unsigned long long)r->s429,
                (unsigned long long)r->s503, (unsigned long long)r->grpc_nonok,
                (unsigned long long)r->by_class[0], p50, p90, p99, p999,
                (double)r->lat.max_us / 1000.0, r->body_bytes_per_span);
        fclose(f);
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

int main(int argc, char **argv)
{
    static struct run r; /* the histogram is large: not on the stack */
    r.o = (struct opts){
        .endpoint = NULL,
        .protocol = "http/protobuf",
        .duration_s = 10,
        .connections = 4,
        .streams = 8,
        .shape = {.seed = 1,
                  .services = 10,
                  .spans_per_trace = 10,
                  .max_depth = 4,
                  .max_fanout = 4,
                  .spans_per_request = 100,
                  .attrs = 8,
                  .attr_size = 16,
                  .resource_attrs = 4,
                  .event_share = 0.17,
                  .error_share = 0.02,
                  .slow_share = 0,
                  .slow_ms = 2000,
                  .templates = 16},
    };
    if (parse(argc, argv, &r.o) != 0) {
        return 2;
    }
    bool grpc = strcmp(r.o.protocol, "grpc") == 0;
    if (!r.o.endpoint) {
        r.o.endpoint = grpc ? "127.0.0.1:4317" : "127.0.0.1:4318";
    }
    r.tr = grpc ? &lg_grpc_transport : &lg_http_transport;
    struct sockaddr_storage addr;
    char authority[300];
    if (resolve(r.o.endpoint, &addr, authority, sizeof(authority)) != 0) {
        return 2;
    }
    if (lg_gen_templates(&r.o.shape, &r.tpl, &r.n_tpl) != 0) {
        return 1;
    }
    size_t tpl_bytes = 0, tpl_spans = 0;
    for (size_t k = 0; k < r.n_tpl; k++) {
        tpl_bytes += r.tpl[k].len;
        tpl_spans += r.tpl[k].spans;
    }
    r.body_bytes_per_span = tpl_spans ? (double)tpl_bytes / (double)tpl_spans : 0;
    r.loop = uv_default_loop();
    r.conns = calloc(r.o.connections, sizeof(*r.conns));
    if (!r.conns) {
        return 1;
    }
    for (unsigned k = 0; k < r.o.connections; k++) {
        r.conns[k] =
            r.tr->open(r.loop, (struct sockaddr *)&addr, authority, r.o.shape.json, on_done, &r);
        if (!r.conns[k]) {
            fprintf(stderr, "th_loadgen: out of memory\n");
            return 1;
        }
        if (grpc) {
            lg_grpc_set_streams(r.conns[k], r.o.streams);
        }
    }
    /* Each run starts its request numbers at a random point, so two runs with the same seed
     * (the same payload shapes) still send different trace ids to the same store. */
    r.seq = (uint32_t)(th_now_unix_ns() / 1000u * 2654435761u);
    r.start_ns = r.last_report_ns = th_now_mono_ns();
    r.end_ns = r.start_ns + (uint64_t)(r.o.duration_s * 1e9);
    uv_timer_init(r.loop, &r.tick);
    uv_timer_init(r.loop, &r.report);
    uv_timer_init(r.loop, &r.late);
    r.tick.data = r.report.data = r.late.data = &r;
    uv_timer_start(&r.tick, on_tick, 1, 1);
    uv_timer_start(&r.report, on_report, 1000, 1000);
    if (r.o.late_after_s > 0) {
        uv_timer_start(&r.late, on_late, 100, 100);
    }
    uv_run(r.loop, UV_RUN_DEFAULT);
    double secs = (double)(th_now_mono_ns() - r.start_ns) / 1e9;
    if (r.sent_req == 0) {
        fprintf(stderr, "th_loadgen: nothing was sent: no connection to %s could be made\n",
                r.o.endpoint);
    }
    report(&r, secs);
    for (unsigned k = 0; k < r.o.connections; k++) {
        r.tr->close(r.conns[k]);
    }
    uv_walk(r.loop, close_walk, NULL);
    uv_run(r.loop, UV_RUN_DEFAULT);
    lg_templates_free(r.tpl, r.n_tpl);
    free(r.conns);
    free(r.scratch);
    return r.answered == 0 ? 1 : 0;
}

/*
 * The component model. Every receiver, processor, exporter and extension is a const ops
 * table registered at build time; the core allocates instance_size bytes per configured
 * instance, and the instance embeds struct th_component as its first member.
 *
 * Data moves through consumers. consume() hands a batch over: the callee forwards it, keeps
 * it or releases it, and the caller must not touch it afterwards. The result tells the
 * receiver what to answer: 0 (accepted), TH_ERETRY (overloaded or a transient failure: the
 * client should retry; HTTP 503/429, gRPC UNAVAILABLE), TH_EPERM or TH_EINVAL (bad data:
 * HTTP 400, gRPC INVALID_ARGUMENT), TH_ENOMEM (HTTP 503), or TH_HELD (kept for later).
 */
#ifndef TH_COMPONENT_H
#define TH_COMPONENT_H

#include <uv.h>

#include "th/batch.h"
#include "th/common.h"
#include "th/config.h"
#include "th/metrics.h"

#define TH_COMPONENT_ABI 1

enum th_kind {
    TH_KIND_RECEIVER,
    TH_KIND_PROCESSOR,
    TH_KIND_EXPORTER,
    TH_KIND_EXTENSION,
    TH_KIND_CONNECTOR,
};

enum th_stability {
    TH_STABILITY_DEVELOPMENT,
    TH_STABILITY_ALPHA,
    TH_STABILITY_BETA,
    TH_STABILITY_STABLE,
};

/** Signals a component handles. */
#define TH_SIGNAL_TRACES  0x1u
#define TH_SIGNAL_METRICS 0x2u

/** The consumer changes the batches it is given: a fan-out hands it its own copy. */
#define TH_CAP_MUTATES 0x1u

/**
 * The consumer settles acks only once the data is durable: committed to disk or delivered
 * downstream (a store exporter, an exporter without an in-memory queue). A component that
 * holds acks for its senders (the batch processor) does so only when this is set: holding
 * them in front of a consumer that settles at enqueue anyway only delays the answer.
 * @note Processors that pass batches on synchronously, acks included, inherit it from their
 *       next consumer; one that settles acks itself (tail sampling) must not.
 */
#define TH_CAP_DURABLE 0x2u

struct th_component;
struct th_host;
struct th_auth_ops;

/**
 * Something that takes batches: a processor, an exporter, or a fan-out to several.
 */
struct th_consumer {
    /**
     * Take a batch.
     * @note Ownership of @p batch passes to the callee whatever the result.
     * @return 0, TH_HELD, TH_ERETRY, TH_EPERM, TH_EINVAL, TH_ENOMEM, TH_ESHUTDOWN.
     */
    int (*consume)(struct th_consumer *self, th_batch_t *batch);
    unsigned caps; /**< TH_CAP_* of whatever is behind it */
};

/** Hand a batch to a consumer (see struct th_consumer). */
static inline int th_consumer_consume(struct th_consumer *c, th_batch_t *b)
{
    return c->consume(c, b);
}

struct th_component_ops {
    uint32_t abi; /**< TH_COMPONENT_ABI */
    enum th_kind kind;
    const char *type;  /**< the Collector's type name: "otlp", "batch", "debug" */
    const char *alias; /**< a deprecated type name that means the same, or NULL */
    unsigned signals;  /**< TH_SIGNAL_* */
    enum th_stability stability;
    unsigned caps;           /**< TH_CAP_* */
    const char *description; /**< one line for --help */

    size_t config_size;                /**< bytes of the typed config struct */
    const struct th_cfg_field *config; /**< its field table */
    /** Rules across several fields. @return 0 or TH_ECONFIG with *err set to a message. */
    int (*config_check)(const void *cfg, const char **err);

    size_t instance_size; /**< bytes of the instance, whose first member is th_component */
    /** Set up from config; no I/O. @p next is NULL for exporters and extensions. */
    int (*init)(struct th_component *c, const void *cfg, struct th_consumer *next);
    /** Bind, connect, start timers; return quickly. */
    int (*start)(struct th_component *c, struct th_host *host);
    /** Stop accepting data, flush downstream; idempotent and safe without start. */
    int (*shutdown)(struct th_component *c);
    /** Free what init and start made (not the instance itself); accepts a never-started one. */
    void (*destroy)(struct th_component *c);
    /** Processors and exporters: take a batch (struct th_consumer's contract). */
    int (*consume_traces)(struct th_component *c, th_batch_t *batch);
    /** Processors, exporters and connectors that take metrics (TH_SIGNAL_METRICS in signals):
     *  take a snapshot (struct th_metrics_consumer's contract). */
    int (*consume_metrics)(struct th_component *c, th_metrics_t *m);
    /** Connectors: the signals emitted into the pipelines that name the connector as a
     *  receiver (signals is what it takes as an exporter). span_metrics: traces → metrics. */
    unsigned signals_out;
    /** Extensions that authenticate requests (bearertokenauth, basicauth): their
     *  authenticator (th/auth.h); NULL for every other component. */
    const struct th_auth_ops *auth;
};

/** Counters every component keeps (exported as the Collector's internal metrics). */
struct th_component_stats {
    uint64_t accepted; /**< spans taken in */
    uint64_t refused;  /**< spans refused with an error the sender saw */
    uint64_t dropped;  /**< spans dropped on purpose (sampling, filters) */
    uint64_t sent;     /**< spans handed on successfully (exporters) */
    uint64_t failed;   /**< spans that could not be handed on */
};

struct th_component {
    const struct th_component_ops *ops;
    const char *id;              /**< as the user wrote it: "otlp", "batch/fast" */
    const char *kind_name;       /**< "receiver", "processor", ... for logs and metrics */
    int log_level;               /**< -1: the process level */
    struct th_consumer consumer; /**< how upstream reaches this component */
    struct th_consumer *next;    /**< downstream, for receivers and processors */
    struct th_host *host;        /**< set by start */
    struct th_component_stats stats;
    bool started;
    bool shut_down;
    /** How upstream reaches this component with metrics (consume_metrics). */
    struct th_metrics_consumer metrics_consumer;
    /** Downstream for metrics: processors of a metrics pipeline and connectors that emit
     *  metrics; NULL otherwise. Set before init (th_component_create_metrics). */
    struct th_metrics_consumer *metrics_next;
    /** An exporter's sending queue, set by th_exporterhelper_create (for queue metrics and
     *  health_check); NULL otherwise. */
    struct th_exporterhelper *exporterhelper;
    /** Runtime health: see th_component_set_status(). Accessed atomically. */
    int status_err;
    const char *status_reason;
};

/**
 * Report whether a component can currently do its work, for health_check (a component that
 * cannot write its store, say). Safe from any thread; cheap enough to call per batch.
 * @param[in] c the component.
 * @param[in] err 0 when healthy again, else the error that makes it unhealthy (TH_ESPACE,
 *            TH_EIO, ...).
 * @param[in] reason what is wrong, in a few words ("the store is full"); a static string or
 *            one that lives as long as @p c; ignored when @p err is 0.
 */
void th_component_set_status(struct th_component *c, int err, const char *reason);

/**
 * Read what th_component_set_status() last reported. Safe from any thread.
 * @param[out] reason the reason, or NULL when healthy; may be NULL.
 * @return 0 when healthy, else the error.
 */
int th_component_status(const struct th_component *c, const char **reason);

/** What a component can reach while it runs. */
struct th_host {
    uv_loop_t *loop; /**< the I/O loop the component's callbacks run on */
    /** Find an extension by id ("health_check"). @return NULL when not configured. */
    struct th_component *(*get_extension)(struct th_host *self, const char *id);
    /** Report a fatal runtime error: the collector logs it and shuts down. */
    void (*report_fatal)(struct th_host *self, struct th_component *c, int err);
    void *data; /**< the collector behind the host */
    /** The wall clock (ns) when every component had started; 0 before that and again from
     *  the moment shutdown begins (health_check answers from it). Read with
     *  __atomic_load_n. */
    uint64_t ready_since_ns;
    /** The monotonic clock (ns) at the same moment, for uptime: a wall clock step must not
     *  change it. Written before ready_since_ns. */
    uint64_t ready_since_mono_ns;
};

/** The built-in components, NULL-terminated (generated components.c). */
extern const struct th_component_ops *const th_builtin[];

/**
 * Find the ops for a kind and type name (or its alias).
 * @return the ops, or NULL when no such component is built in.
 */
const struct th_component_ops *th_registry_find(enum th_kind kind, const char *type);

/** @return "receiver", "processor", "exporter", "extension" or "connector". */
const char *th_kind_name(enum th_kind kind);
/** @return "development", "alpha", "beta" or "stable". */
const char *th_stability_name(enum th_stability s);

/**
 * Create an instance: allocate instance_size bytes, set the base, run init.
 * @param[in] id the component id as written ("batch/fast"); copied.
 * @param[in] cfg the decoded config struct (must outlive the instance).
 * @param[in] next downstream consumer, or NULL.
 * @param[out] out the instance.
 * @return 0, or init's error, TH_ENOMEM.
 */
int th_component_create(const struct th_component_ops *ops, const char *id, const void *cfg,
                        struct th_consumer *next, struct th_component **out);

/**
 * Create an instance whose downstream is a metrics consumer: a processor in a metrics
 * pipeline, or a connector that emits metrics. @p metrics_next is set in the base before init
 * runs, and init gets next == NULL, which is how a processor knows it serves metrics.
 * @return as th_component_create().
 */
int th_component_create_metrics(const struct th_component_ops *ops, const char *id, const void *cfg,
                                struct th_metrics_consumer *metrics_next,
                                struct th_component **out);

/** Shut down (when started and not yet shut down), destroy and free. NULL is allowed. */
void th_component_destroy(struct th_component *c);

#endif

/*
 * The otlp receiver component: the ops table the registry lists, and the accessor tests and
 * the collector use to learn the port an instance bound.
 */
#ifndef TH_RECEIVER_OTLP_H
#define TH_RECEIVER_OTLP_H

#include "th/component.h"
#include "receivers/otlp/otlp_config.h"

/** The `otlp` receiver (OTLP/gRPC and OTLP/HTTP). */
extern const struct th_component_ops th_receiver_otlp_ops;

/**
 * The TCP port the OTLP/HTTP server of an otlp receiver instance listens on.
 * @param[in] c an instance made from th_receiver_otlp_ops.
 * @return the port (useful with `endpoint: 127.0.0.1:0`), or -1 when HTTP is disabled or
 *         the instance is not started.
 */
int th_otlp_receiver_http_port(const struct th_component *c);

/**
 * The TCP port the OTLP/gRPC server of an otlp receiver instance listens on.
 * @param[in] c an instance made from th_receiver_otlp_ops.
 * @return the port, or -1 when gRPC is disabled or the instance is not started.
 */
int th_otlp_receiver_grpc_port(const struct th_component *c);

/**
 * The span counters of one transport of an otlp receiver instance, for the internal metrics
 * (otelcol_receiver_{accepted,refused,failed}_spans{transport}). Safe from any thread.
 * @param[in] c an instance made from th_receiver_otlp_ops.
 * @param[in] grpc true for the gRPC server, false for HTTP.
 * @param[out] out a copy of the counters (the component's own stats sum both transports).
 * @return 0, or TH_ENOENT when that protocol is not enabled.
 */
int th_otlp_receiver_transport_stats(const struct th_component *c, bool grpc,
                                     struct th_component_stats *out);

#endif

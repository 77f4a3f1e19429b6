/*
 * The embedded default config, used when tracehouse runs without --config: OTLP in, the LMDB
 * span store at ./tracehouse-data, the Jaeger query API on 16686, internal metrics on 8888 and
 * the health check on 13133. It listens on localhost
 * only; TRACEHOUSE_HOST=0.0.0.0 opens it to every interface. docs/default-config.yaml holds
 * the same text (a unit test checks they match).
 */
#include "th/collector.h"

static const char default_config[] =
    "# Tracehouse embedded default config: OTLP in, the LMDB span store, the Jaeger query API.\n"
    "# Every endpoint listens on localhost; set TRACEHOUSE_HOST=0.0.0.0 to listen on every\n"
    "# interface. TRACEHOUSE_DATA moves the store (default ./tracehouse-data).\n"
    "extensions:\n"
    "  jaeger_storage:\n"
    "    backends:\n"
    "      tracehouse:\n"
    "        lmdb:\n"
    "          path: ${env:TRACEHOUSE_DATA:-./tracehouse-data}\n"
    "          ttl:\n"
    "            spans: 72h\n"
    "  jaeger_query:\n"
    "    storage:\n"
    "      traces: tracehouse\n"
    "    http:\n"
    "      endpoint: ${env:TRACEHOUSE_HOST:-localhost}:16686\n"
    "  # 200 once every pipeline runs; 503 while the store cannot write.\n"
    "  health_check:\n"
    "    endpoint: ${env:TRACEHOUSE_HOST:-localhost}:13133\n"
    "\n"
    "receivers:\n"
    "  otlp:\n"
    "    protocols:\n"
    "      grpc:\n"
    "        endpoint: ${env:TRACEHOUSE_HOST:-localhost}:4317\n"
    "      http:\n"
    "        endpoint: ${env:TRACEHOUSE_HOST:-localhost}:4318\n"
    "\n"
    "processors:\n"
    "  # Refuses data (503, the sender retries) before the process grows past its memory budget.\n"
    "  memory_limiter:\n"
    "    check_interval: 1s\n"
    "    limit_mib: 256\n"
    "    spike_limit_mib: 64\n"
    "\n"
    "exporters:\n"
    "  # Writes through one thread with group commit; a sender's request is answered once its\n"
    "  # spans are committed, so batching in front of it would only add latency.\n"
    "  jaeger_storage_exporter:\n"
    "    trace_storage: tracehouse\n"
    "\n"
    "service:\n"
    "  extensions: [jaeger_storage, jaeger_query, health_check]\n"
    "  pipelines:\n"
    "    traces:\n"
    "      receivers: [otlp]\n"
    "      processors: [memory_limiter]\n"
    "      exporters: [jaeger_storage_exporter]\n"
    "  telemetry:\n"
    "    logs:\n"
    "      level: info\n"
    "      encoding: json\n"
    "    # Internal metrics for Prometheus at http://localhost:8888/metrics.\n"
    "    metrics:\n"
    "      readers:\n"
    "        - pull:\n"
    "            exporter:\n"
    "              prometheus:\n"
    "                host: ${env:TRACEHOUSE_HOST:-localhost}\n"
    "                port: 8888\n";

const char *th_default_config(void)
{
    return default_config;
}

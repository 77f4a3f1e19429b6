/*
 * The embedded default config, used when tracehouse runs without --config. It listens on
 * localhost only; TRACEHOUSE_HOST=0.0.0.0 opens it to every interface. docs/default-config.yaml
 * holds the same text (a unit test checks they match).
 */
#include "th/collector.h"

static const char default_config[] =
    "# Tracehouse embedded default config.\n"
    "# Set TRACEHOUSE_HOST=0.0.0.0 to listen on every interface instead of localhost.\n"
    "receivers:\n"
    "  otlp:\n"
    "    protocols:\n"
    "      grpc:\n"
    "        endpoint: ${env:TRACEHOUSE_HOST:-localhost}:4317\n"
    "      http:\n"
    "        endpoint: ${env:TRACEHOUSE_HOST:-localhost}:4318\n"
    "\n"
    "exporters:\n"
    "  debug:\n"
    "    verbosity: basic\n"
    "\n"
    "service:\n"
    "  pipelines:\n"
    "    traces:\n"
    "      receivers: [otlp]\n"
    "      exporters: [debug]\n"
    "  telemetry:\n"
    "    logs:\n"
    "      level: info\n"
    "      encoding: json\n";

const char *th_default_config(void)
{
    return default_config;
}

/*
 * The nop exporter: takes every batch and releases it. It is the ceiling the benchmarks
 * compare the real pipelines against (receive + decode + nothing), and a sink for pipelines
 * that only feed connectors.
 */
#ifndef TH_EXPORTER_NOP_H
#define TH_EXPORTER_NOP_H

#include "th/component.h"

/**
 * The nop exporter's config. It has no keys; C11 has no empty structs, so it carries one
 * unused member to keep config_size non-zero.
 */
struct th_nop_cfg {
    int unused; /**< always 0; no YAML key fills it */
};

/** The ops table registered as exporter "nop". */
extern const struct th_component_ops th_exporter_nop_ops;

#endif

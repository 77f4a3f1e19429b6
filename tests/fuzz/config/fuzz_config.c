/*
 * libFuzzer target for the configuration layer: th_config_parse on arbitrary bytes (YAML
 * syntax, anchors and aliases, merge keys, ${...} substitution, the service and telemetry
 * checks), then th_cfg_decode of every component section with a table that has every field
 * type, so the decoders see hostile trees too. Any crash, leak or sanitizer report is a bug.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "th/config.h"
#include "th/log.h"

struct sub {
    int64_t a;
    const char *b;
};

struct all {
    bool flag;
    int64_t count;
    double ratio;
    const char *name;
    const char *mode;
    int64_t timeout;
    int64_t size;
    th_strlist_t list;
    th_strmap_t headers;
    struct sub section;
    struct sub opt;
    bool opt_on;
    const th_node_t *raw;
};

static const char *const modes[] = {"fast", "slow", NULL};

static const struct th_cfg_field sub_fields[] = {
    {.name = "a",
     .type = TH_CFG_INT,
     .def = "1",
     .offset = offsetof(struct sub, a),
     .min = 0,
     .max = 100,
     .desc = "int"},
    {.name = "b", .type = TH_CFG_STRING, .offset = offsetof(struct sub, b), .desc = "string"},
    {0},
};

static const struct th_cfg_field all_fields[] = {
    {.name = "flag", .type = TH_CFG_BOOL, .offset = offsetof(struct all, flag), .desc = "bool"},
    {.name = "count",
     .type = TH_CFG_INT,
     .offset = offsetof(struct all, count),
     .min = 1,
     .max = INFINITY,
     .desc = "int"},
    {.name = "ratio",
     .type = TH_CFG_DOUBLE,
     .offset = offsetof(struct all, ratio),
     .min = 0,
     .max = 1,
     .desc = "double"},
    {.name = "name", .type = TH_CFG_STRING, .offset = offsetof(struct all, name), .desc = "string"},
    {.name = "mode",
     .type = TH_CFG_ENUM,
     .def = "fast",
     .offset = offsetof(struct all, mode),
     .choices = modes,
     .desc = "enum"},
    {.name = "timeout",
     .type = TH_CFG_DURATION,
     .offset = offsetof(struct all, timeout),
     .desc = "duration"},
    {.name = "size", .type = TH_CFG_SIZE, .offset = offsetof(struct all, size), .desc = "size"},
    {.name = "list", .type = TH_CFG_STRLIST, .offset = offsetof(struct all, list), .desc = "list"},
    {.name = "headers",
     .type = TH_CFG_STRMAP,
     .offset = offsetof(struct all, headers),
     .desc = "map"},
    {.name = "section",
     .type = TH_CFG_SECTION,
     .offset = offsetof(struct all, section),
     .sub = sub_fields,
     .desc = "section"},
    {.name = "opt",
     .type = TH_CFG_OPTIONAL,
     .offset = offsetof(struct all, opt),
     .aux = offsetof(struct all, opt_on),
     .sub = sub_fields,
     .desc = "optional"},
    {.name = "raw", .type = TH_CFG_NODE, .offset = offsetof(struct all, raw), .desc = "node"},
    {0},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Warnings about unset variables and no-op keys would flood the fuzzer's output. */
    th_log_configure(TH_LOG_OFF, TH_LOG_JSON);
    return 0;
}

static void decode_section(const th_config_t *cfg, const th_node_t *section)
{
    if (!section || section->kind != TH_NODE_MAP) {
        return;
    }
    char err[512];
    for (size_t i = 0; i < section->n; i++) {
        struct all out;
        th_cfg_decode(all_fields, section->pairs[i].value, &out, cfg->arena, section->pairs[i].key,
                      err, sizeof(err));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    th_config_t *cfg = NULL;
    char err[1024];
    if (th_config_parse((const char *)data, size, "fuzz.yaml", &cfg, err, sizeof(err)) == 0) {
        decode_section(cfg, cfg->receivers);
        decode_section(cfg, cfg->processors);
        decode_section(cfg, cfg->exporters);
        decode_section(cfg, cfg->extensions);
        decode_section(cfg, cfg->connectors);
        th_config_destroy(cfg);
    }
    return 0;
}

/*
 * The file exporter's ops table, config tables and lifecycle glue. The work is in
 * file_writer.c (encoding, buffering, the writer thread, rotation) and the cross-field
 * rules in file_config.c.
 */
#include <math.h>
#include <string.h>

#include "exporters/file/file.h"
#include "th/log.h"

static const char *const format_names[] = {"json", "proto", NULL};

static const struct th_cfg_field rotation_config[] = {
    {
        .name = "max_megabytes",
        .type = TH_CFG_INT,
        .def = "100",
        .offset = offsetof(struct th_file_rotation_cfg, max_megabytes),
        .min = 0,
        .max = 1 << 30,
        .desc = "Rotate before the file would grow past this many MiB (0: 100)",
    },
    {
        .name = "max_days",
        .type = TH_CFG_INT,
        .def = "0",
        .offset = offsetof(struct th_file_rotation_cfg, max_days),
        .min = 0,
        .max = 1 << 20,
        .desc = "Delete backups older than this many days, by the time in their name (0: keep)",
    },
    {
        .name = "max_backups",
        .type = TH_CFG_INT,
        .def = "100",
        .offset = offsetof(struct th_file_rotation_cfg, max_backups),
        .min = 0,
        .max = 1 << 20,
        .desc = "Keep at most this many rotated files (0: keep all)",
    },
    {
        .name = "localtime",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_file_rotation_cfg, localtime),
        .desc = "Name backups with local time instead of UTC",
    },
    {.name = NULL},
};

static const struct th_cfg_field group_by_config[] = {
    {
        .name = "enabled",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_file_group_by_cfg, enabled),
        .desc = "One file per value of a resource attribute (not supported: must be false)",
    },
    {
        .name = "resource_attribute",
        .type = TH_CFG_STRING,
        .def = "fileexporter.path_segment",
        .offset = offsetof(struct th_file_group_by_cfg, resource_attribute),
        .desc = "The resource attribute whose value replaces the * in path",
    },
    {
        .name = "max_open_files",
        .type = TH_CFG_INT,
        .def = "100",
        .offset = offsetof(struct th_file_group_by_cfg, max_open_files),
        .min = 1,
        .max = 1 << 20,
        .desc = "Most files kept open at once",
    },
    {.name = NULL},
};

static const struct th_cfg_field file_config[] = {
    {
        .name = "path",
        .type = TH_CFG_STRING,
        .offset = offsetof(struct th_file_cfg, path),
        .flags = TH_CFG_F_REQUIRED,
        .desc = "The file to write (relative to the working directory)",
    },
    {
        .name = "append",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_file_cfg, append),
        .desc = "Append to the file; false truncates it at start",
    },
    {
        .name = "format",
        .type = TH_CFG_ENUM,
        .def = "json",
        .offset = offsetof(struct th_file_cfg, format),
        .choices = format_names,
        .desc = "json: one OTLP/JSON request per line; proto: 4-byte big-endian length + "
                "OTLP protobuf",
    },
    {
        .name = "compression",
        .type = TH_CFG_STRING,
        .def = "",
        .offset = offsetof(struct th_file_cfg, compression),
        .desc = "\"\" or zstd: each record compressed alone and written length-prefixed",
    },
    {
        .name = "flush_interval",
        .type = TH_CFG_DURATION,
        .def = "1s",
        .offset = offsetof(struct th_file_cfg, flush_interval),
        .min = 0,
        .max = INFINITY,
        .desc = "How often buffered records are written to the file (0: 1s)",
    },
    {
        .name = "rotation",
        .type = TH_CFG_OPTIONAL,
        .offset = offsetof(struct th_file_cfg, rotation),
        .aux = offsetof(struct th_file_cfg, rotation_enabled),
        .sub = rotation_config,
        .desc = "Rotate the file by size (present, even empty, enables it)",
    },
    {
        .name = "group_by",
        .type = TH_CFG_SECTION,
        .offset = offsetof(struct th_file_cfg, group_by),
        .sub = group_by_config,
        .flags = TH_CFG_F_NOOP,
        .desc = "Accepted for compatibility; enabled: true is refused",
    },
    {
        .name = "create_directory",
        .type = TH_CFG_BOOL,
        .def = "false",
        .offset = offsetof(struct th_file_cfg, create_directory),
        .desc = "Create the file's directory (and its parents) at start",
    },
    {
        .name = "directory_permissions",
        .type = TH_CFG_STRING,
        .def = "",
        .offset = offsetof(struct th_file_cfg, directory_permissions),
        .desc = "Octal mode of created directories, before the umask (\"\": 0755)",
    },
    {.name = NULL},
};

static int file_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    struct th_file_exporter *f = (struct th_file_exporter *)c;
    const char *err = NULL;
    if (th__file_config_check(cfg, &err) != 0) {
        th_log_error(c, "%s", err);
        return TH_ECONFIG;
    }
    return th__file_writer_create(cfg, c, &f->writer);
}

/* Map a file error to the project's codes: errno values that th_err names keep their code,
 * the rest are I/O. */
static int file_err(int err)
{
    switch (err) {
    case 0:
    case TH_ENOMEM:
    case TH_ENOENT:
        return err;
    default:
        return TH_EIO;
    }
}

static int file_start(struct th_component *c, struct th_host *host)
{
    struct th_file_exporter *f = (struct th_file_exporter *)c;
    c->host = host;
    int ret = th__file_writer_start(f->writer);
    if (ret == 0) {
        c->started = true;
    }
    return file_err(ret);
}

static int file_shutdown(struct th_component *c)
{
    struct th_file_exporter *f = (struct th_file_exporter *)c;
    c->shut_down = true;
    return file_err(th__file_writer_shutdown(f->writer));
}

static void file_destroy(struct th_component *c)
{
    struct th_file_exporter *f = (struct th_file_exporter *)c;
    th__file_writer_destroy(f->writer);
    f->writer = NULL;
}

/* Every failure is either "try again" (full buffer, disk error, memory) or permanent (a
 * record too big for the framing); shutdown is reported as such. */
static int file_consume(struct th_component *c, th_batch_t *batch)
{
    struct th_file_exporter *f = (struct th_file_exporter *)c;
    int ret = th__file_writer_push(f->writer, batch->req);
    if (ret == 0) {
        __atomic_add_fetch(&c->stats.sent, batch->span_count, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&c->stats.failed, batch->span_count, __ATOMIC_RELAXED);
        if (ret == TH_E2BIG) {
            ret = TH_EPERM;
        } else if (ret != TH_ESHUTDOWN) {
            ret = TH_ERETRY;
        }
    }
    th_batch_release(batch);
    return ret;
}

const struct th_component_ops th_exporter_file_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXPORTER,
    .type = "file",
    .signals = TH_SIGNAL_TRACES,
    .stability = TH_STABILITY_ALPHA,
    .description = "Writes batches to a file as OTLP/JSON lines (or length-prefixed protobuf)",
    .config_size = sizeof(struct th_file_cfg),
    .config = file_config,
    .config_check = th__file_config_check,
    .instance_size = sizeof(struct th_file_exporter),
    .init = file_init,
    .start = file_start,
    .shutdown = file_shutdown,
    .destroy = file_destroy,
    .consume_traces = file_consume,
};

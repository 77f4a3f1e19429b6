/*
 * tracehouse: the command line. Thin on purpose: it reads a config (or the embedded
 * default), then hands it to the collector library.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "th/collector.h"
#include "th/help.h"
#include "th/log.h"
#include "th/telemetry.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage:\n"
                 "  tracehouse [--config FILE]            run (without --config: the embedded "
                 "default)\n"
                 "  tracehouse validate --config FILE     check a config and exit\n"
                 "  tracehouse print-default-config       print the embedded default config\n"
                 "  tracehouse help TYPE                  the config keys of a component type\n"
                 "  tracehouse docs                       every component's keys, as Markdown\n"
                 "  tracehouse --version | --help\n"
                 "\n"
                 "The config is the OpenTelemetry Collector's YAML format; ${env:VAR}, ${VAR},\n"
                 "${env:VAR:-default} and $$ are expanded.\n\n");
    th_help_components(out);
}

/* Find --config FILE or --config=FILE; more than one is refused (no merging yet). */
static int config_arg(int argc, char **argv, int from, const char **path)
{
    *path = NULL;
    for (int i = from; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tracehouse: --config needs a file name\n");
                return -1;
            }
            v = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            v = argv[i] + 9;
        } else {
            fprintf(stderr, "tracehouse: unknown argument \"%s\" (see tracehouse --help)\n",
                    argv[i]);
            return -1;
        }
        if (*path) {
            fprintf(stderr, "tracehouse: only one --config is supported\n");
            return -1;
        }
        if (!strncmp(v, "file:", 5)) {
            v += 5;
        }
        *path = v;
    }
    return 0;
}

static int load(const char *path, th_config_t **cfg)
{
    char err[1024];
    int ret;
    if (path) {
        ret = th_config_load_file(path, cfg, err, sizeof(err));
    } else {
        const char *def = th_default_config();
        ret = th_config_parse(def, strlen(def), "<embedded default>", cfg, err, sizeof(err));
    }
    if (ret != 0) {
        fprintf(stderr, "tracehouse: invalid configuration: %s\n", err);
    }
    return ret;
}

static void apply_telemetry(const th_config_t *cfg)
{
    int level = cfg->telemetry.log_level ? th_log_level_parse(cfg->telemetry.log_level) : -1;
    enum th_log_encoding enc = TH_LOG_JSON;
    if (cfg->telemetry.log_encoding && !strcmp(cfg->telemetry.log_encoding, "console")) {
        enc = TH_LOG_CONSOLE;
    }
    th_log_configure(level >= 0 ? level : TH_LOG_INFO, enc);
}

static int cmd_validate(int argc, char **argv)
{
    const char *path;
    if (config_arg(argc, argv, 2, &path) != 0) {
        return 2;
    }
    if (!path) {
        fprintf(stderr, "tracehouse: validate needs --config FILE\n");
        return 2;
    }
    th_config_t *cfg;
    if (load(path, &cfg) != 0) {
        return 1;
    }
    th_collector_t *c;
    char err[1024];
    if (th_collector_create(cfg, NULL, &c, err, sizeof(err)) != 0) {
        fprintf(stderr, "tracehouse: invalid configuration: %s\n", err);
        return 1;
    }
    th_collector_destroy(c);
    printf("%s: configuration is valid\n", path);
    return 0;
}

/* Stops the internal metrics endpoint when shutdown begins: it must not read components that
 * are shutting down. */
static void stop_telemetry(void *data)
{
    th_telemetry_t **t = data;
    th_telemetry_stop(*t);
    *t = NULL;
}

/*
 * The internal metrics endpoint. Unlike the Collector, which refuses to start, a port that
 * cannot be bound only costs the metrics (logged as an error): several collectors on one host
 * with the default :8888 keep collecting traces.
 */
static void start_telemetry(th_collector_t *c, const struct th_telemetry_cfg *cfg,
                            th_telemetry_t **telemetry)
{
    char err[512];
    int ret = th_telemetry_start(c, cfg, telemetry, err, sizeof(err));
    if (ret != 0) {
        th_log_error(NULL, "internal metrics are off: %s", err);
        return;
    }
    if (*telemetry) {
        th_log_info(NULL, "internal metrics on %s://%s/metrics",
                    cfg->metrics_tls ? "https" : "http", cfg->metrics_endpoint);
        th_collector_on_shutdown(c, stop_telemetry, telemetry);
    }
}

/*
 * Every connection costs a descriptor, and the usual soft limit (1024) would let a few
 * hundred idle clients starve the store and real senders; the hard limit is what the
 * administrator granted, so take all of it (as Go's runtime does since 1.19) and say how
 * much there is, since it bounds how many connections can be open at once.
 */
static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        th_log_warn(NULL, "cannot read the open files limit: %s", strerror(errno));
        return;
    }
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            th_log_warn(NULL, "open files limit stays at %llu: raising it to %llu failed: %s",
                        (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
            return;
        }
    }
    th_log_info(NULL, "open files limit: %llu (was %llu; the hard limit is %llu)",
                (unsigned long long)rl.rlim_cur, (unsigned long long)was,
                (unsigned long long)rl.rlim_max);
}

static int cmd_run(int argc, char **argv)
{
    const char *path;
    if (config_arg(argc, argv, 1, &path) != 0) {
        return 2;
    }
    th_config_t *cfg;
    if (load(path, &cfg) != 0) {
        return 1;
    }
    apply_telemetry(cfg);
    th_log_info(NULL, "starting tracehouse %s with %s", TH_VERSION,
                path ? path : "the embedded default config");
    raise_nofile_limit();
    /* A client that hangs up before its answer is written must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    th_collector_t *c;
    char err[1024];
    if (th_collector_create(cfg, loop, &c, err, sizeof(err)) != 0) {
        th_log_error(NULL, "invalid configuration: %s", err);
        return 1;
    }
    th_telemetry_t *telemetry = NULL;
    start_telemetry(c, &cfg->telemetry, &telemetry);
    int ret = th_collector_run(c);
    stop_telemetry(&telemetry); /* already stopped, unless the collector never shut down */
    th_collector_destroy(c);
    /* Let handles closed by the destroy finish closing before the loop goes. */
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return ret == 0 ? 0 : 1;
}

/*
 * Every request decodes into an arena of a few hundred KiB that is freed when the request is
 * answered. With glibc's defaults those chunks are mmapped and unmapped, or the heap top is
 * trimmed, on every request, and the next request faults the pages back in: measured at
 * 215k-226k spans per CPU-second into the nop exporter, 770k-795k with these thresholds
 * (bench/store-http.sh, docs/benchmarks.md), with the same peak RSS. The memory_limiter
 * still hands memory back with malloc_trim when it runs short.
 */
static void tune_allocator(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
#endif
}

int main(int argc, char **argv)
{
    tune_allocator();
    if (argc > 1) {
        const char *a = argv[1];
        if (!strcmp(a, "--version") || !strcmp(a, "version")) {
            printf("tracehouse version %s\n", TH_VERSION);
            return 0;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "validate")) {
            return cmd_validate(argc, argv);
        }
        if (!strcmp(a, "print-default-config")) {
            fputs(th_default_config(), stdout);
            return 0;
        }
        if (!strcmp(a, "help")) {
            if (argc < 3) {
                usage(stdout);
                return 0;
            }
            return th_help_component(stdout, argv[2]) == 0 ? 0 : 1;
        }
        if (!strcmp(a, "docs")) {
            th_help_markdown(stdout);
            return 0;
        }
    }
    return cmd_run(argc, argv);
}

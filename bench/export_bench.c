/*
 * Benchmark of the otlp_http exporter: spans per second, and CPU per span, sending to a second
 * Tracehouse (a separate process: otlp receiver -> nop exporter) over loopback.
 *
 *   th_export_bench -b path/to/tracehouse [-n BATCHES] [-e proto|json] [-z gzip|zstd|none]
 *                   [-c CONSUMERS] [-t] [FILE.pb ...]
 *
 * The exporter runs in this process exactly as in the collector (component -> exporter helper
 * thread -> libcurl transport). Batches go in rounds of 500: each round's payloads are decoded
 * first (untimed, and the exporter is idle then, so the CPU it takes is subtracted), then
 * consumed and waited for until the exporter counts every span as sent. Reported: spans/s over
 * the timed part, the exporter's spans per CPU-second (this process: the helper thread, curl,
 * encoding and compression), and the receiving instance's spans per CPU-second (from
 * /proc/PID/stat). -t measures the transport alone instead: the payloads' protobuf bytes are
 * posted directly (no batches, no helper), CONSUMERS requests kept in flight on one loop in
 * this thread, which is the transport's ceiling. Without files it uses
 * /work/shared/bench/payloads/otlp-100spans-01..10.pb.
 * Build with -DCMAKE_BUILD_TYPE=Release.
 */
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exporters/otlp_http/otlp_http.h"
#include "th/log.h"

#define ROUND 500

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)n + 1);
    *len = fread(*buf, 1, (size_t)n, f);
    fclose(f);
    return *len == (size_t)n ? 0 : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* The receiving instance: otlp (HTTP) -> nop, started from a temporary config. */
static pid_t start_sink(const char *bin, int port, char *cfg_path)
{
    snprintf(cfg_path, 64, "/tmp/th-export-bench-XXXXXX");
    int fd = mkstemp(cfg_path);
    if (fd < 0) {
        return -1;
    }
    dprintf(fd,
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:%d\n"
            "exporters:\n  nop:\n"
            "service:\n  telemetry:\n    logs: {level: warn}\n    metrics: {level: none}\n"
            "  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [nop]\n",
            port);
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        execl(bin, bin, "--config", cfg_path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && pid > 0; i++) {
        if (port_open(port)) {
            return pid;
        }
        usleep(25000);
    }
    kill(pid, SIGKILL);
    return -1;
}

/* utime + stime of a process in ns. */
static uint64_t proc_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
        return 0;
    }
    return (uint64_t)(ut + st) * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
}

/* ---- -t: the transport alone ---------------------------------------------------------- */

struct direct {
    th_otlphttp_transport_t *t;
    uint8_t **pb;
    size_t *pb_len;
    size_t n_payloads;
    long sent, done, total, failed;
};

static void on_direct_done(void *arg, const struct th_export_result *r)
{
    struct direct *d = arg;
    d->done++;
    d->failed += r->err != 0;
    if (d->sent < d->total) {
        size_t k = (size_t)d->sent++ % d->n_payloads;
        if (th__otlphttp_transport_ops.send(d->t, d->pb[k], d->pb_len[k], on_direct_done, d) != 0) {
            d->done++;
            d->failed++;
        }
    }
}

/* Keep @p consumers requests in flight until @p total are done; @return wall ns. */
static uint64_t run_direct(const struct th_otlphttp_cfg *cfg, struct direct *d, long consumers,
                           uint64_t *cpu)
{
    const char *err = NULL;
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (th__otlphttp_transport_create(cfg, NULL, &d->t, &err) != 0 ||
        th__otlphttp_transport_ops.start(d->t, &loop) != 0) {
        fprintf(stderr, "transport: %s\n", err ? err : "does not start");
        exit(1);
    }
    uint64_t w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < consumers && d->sent < d->total; i++) {
        size_t k = (size_t)d->sent++ % d->n_payloads;
        th__otlphttp_transport_ops.send(d->t, d->pb[k], d->pb_len[k], on_direct_done, d);
    }
    while (d->done < d->total) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uint64_t wall = clock_ns(CLOCK_MONOTONIC) - w0;
    *cpu = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
    th__otlphttp_transport_ops.stop(d->t);
    uv_run(&loop, UV_RUN_DEFAULT);
    th__otlphttp_transport_ops.destroy(d->t);
    uv_loop_close(&loop);
    return wall;
}

static struct th_component *no_ext(struct th_host *h, const char *id)
{
    return NULL;
}

static void on_fatal(struct th_host *h, struct th_component *c, int err)
{
    fprintf(stderr, "fatal: %s\n", th_strerror(err));
    exit(1);
}

int main(int argc, char **argv)
{
    const char *bin = getenv("TRACEHOUSE_BIN");
    const char *encoding = "proto", *compression = "gzip";
    long batches = 20000, consumers = 10;
    bool direct = false;
    int opt;
    while ((opt = getopt(argc, argv, "b:n:e:z:c:t")) != -1) {
        switch (opt) {
        case 'b':
            bin = optarg;
            break;
        case 'n':
            batches = atol(optarg);
            break;
        case 'e':
            encoding = optarg;
            break;
        case 'z':
            compression = optarg;
            break;
        case 'c':
            consumers = atol(optarg);
            break;
        case 't':
            direct = true;
            break;
        default:
            fprintf(stderr,
                    "usage: %s -b tracehouse [-n batches] [-e proto|json] "
                    "[-z gzip|zstd|none] [-c consumers] [-t] [FILE.pb ...]\n",
                    argv[0]);
            return 2;
        }
    }
    if (bin == NULL) {
        fprintf(stderr, "-b path/to/tracehouse (or TRACEHOUSE_BIN) is needed\n");
        return 2;
    }
    /* The collector's allocator settings (collector/main.c), so arenas cost what they do
     * there. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    th_log_configure(TH_LOG_WARN, TH_LOG_CONSOLE);
    size_t n_payloads = argc > optind ? (size_t)(argc - optind) : 10;
    uint8_t **pb = calloc(n_payloads, sizeof(*pb));
    size_t *pb_len = calloc(n_payloads, sizeof(*pb_len));
    for (size_t i = 0; i < n_payloads; i++) {
        char def[128];
        snprintf(def, sizeof(def), "/work/shared/bench/payloads/otlp-100spans-%02zu.pb", i + 1);
        const char *path = argc > optind ? argv[optind + (int)i] : def;
        if (read_file(path, &pb[i], &pb_len[i]) != 0) {
            fprintf(stderr, "cannot read %s\n", path);
            return 1;
        }
    }

    int port = free_port();
    char cfg_path[64];
    pid_t sink = start_sink(bin, port, cfg_path);
    if (sink < 0) {
        fprintf(stderr, "the receiving tracehouse (%s) did not start\n", bin);
        return 1;
    }

    char yaml[512], err[256];
    snprintf(yaml, sizeof(yaml),
             "endpoint: http://127.0.0.1:%d\nencoding: %s\ncompression: %s\n"
             "sending_queue: {num_consumers: %ld, queue_size: 100000}\n",
             port, encoding, compression, consumers);
    th_arena_t *ca = th_arena_create(0, 0);
    th_node_t *node = NULL;
    struct th_otlphttp_cfg cfg;
    struct th_component *c = NULL;
    const char *why = NULL;
    if (th_yaml_parse(yaml, strlen(yaml), "bench", ca, &node, err, sizeof(err)) != 0 ||
        th_cfg_decode(th_exporter_otlp_http_ops.config, node, &cfg, ca, "otlp_http", err,
                      sizeof(err)) != 0 ||
        th_exporter_otlp_http_ops.config_check(&cfg, &why) != 0) {
        fprintf(stderr, "config: %s\n", why ? why : err);
        return 1;
    }
    if (direct) {
        struct direct d = {.pb = pb, .pb_len = pb_len, .n_payloads = n_payloads, .total = batches};
        uint64_t sink0 = proc_cpu_ns(sink), dcpu = 0;
        uint64_t dwall = run_direct(&cfg, &d, consumers, &dcpu);
        uint64_t dsink = proc_cpu_ns(sink) - sink0;
        kill(sink, SIGTERM);
        waitpid(sink, NULL, 0);
        unlink(cfg_path);
        /* The payloads hold 100 spans each. */
        double dspans = (double)batches * 100;
        printf("transport alone %s/%s, %ld in flight: %ld requests (%ld failed)\n", encoding,
               compression, consumers, batches, d.failed);
        printf("  throughput        %10.0f spans/s  %8.0f requests/s\n", dspans * 1e9 / dwall,
               batches * 1e9 / (double)dwall);
        printf("  transport CPU     %10.0f spans per CPU-second\n", dspans * 1e9 / (double)dcpu);
        printf("  receiver CPU      %10.0f spans per CPU-second\n",
               dsink ? dspans * 1e9 / (double)dsink : 0.0);
        return d.failed == 0 ? 0 : 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct th_host host = {.loop = &loop, .get_extension = no_ext, .report_fatal = on_fatal};
    if (th_component_create(&th_exporter_otlp_http_ops, "otlp_http", &cfg, NULL, &c) != 0 ||
        c->ops->start(c, &host) != 0) {
        fprintf(stderr, "the exporter did not start\n");
        return 1;
    }
    c->started = true;

    th_batch_t **round = calloc(ROUND, sizeof(*round));
    uint64_t wall = 0, cpu = 0, spans = 0;
    uint64_t sink_cpu0 = proc_cpu_ns(sink);
    for (long done = 0; done < batches;) {
        long n = TH_MIN((long)ROUND, batches - done);
        for (long i = 0; i < n; i++) {
            size_t k = (size_t)(done + i) % n_payloads;
            th_arena_t *a = th_arena_create(0, 0);
            th_otlp_request_t *req = NULL;
            if (th_otlp_decode_pb(pb[k], pb_len[k], NULL, a, &req, NULL) != 0) {
                fprintf(stderr, "payload %zu does not decode\n", k);
                return 1;
            }
            round[i] = th_batch_create(a, req);
            spans += round[i]->span_count;
        }
        uint64_t w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
        for (long i = 0; i < n; i++) {
            int ret = c->ops->consume_traces(c, round[i]);
            if (ret != 0 && ret != TH_HELD) {
                fprintf(stderr, "consume: %s\n", th_strerror(ret));
                return 1;
            }
        }
        while (__atomic_load_n(&c->stats.sent, __ATOMIC_RELAXED) +
                   __atomic_load_n(&c->stats.failed, __ATOMIC_RELAXED) <
               spans) {
            usleep(200);
        }
        wall += clock_ns(CLOCK_MONOTONIC) - w0;
        cpu += clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
        done += n;
    }
    uint64_t sink_cpu = proc_cpu_ns(sink) - sink_cpu0;
    uint64_t failed = __atomic_load_n(&c->stats.failed, __ATOMIC_RELAXED);
    c->ops->shutdown(c);
    c->shut_down = true;
    th_component_destroy(c);
    uv_loop_close(&loop);
    kill(sink, SIGTERM);
    waitpid(sink, NULL, 0);
    unlink(cfg_path);

    printf("otlp_http %s/%s, %ld consumers: %llu spans in %ld requests (%llu failed)\n", encoding,
           compression, consumers, (unsigned long long)spans, batches, (unsigned long long)failed);
    printf("  throughput        %10.0f spans/s  %8.0f requests/s\n", spans * 1e9 / (double)wall,
           batches * 1e9 / (double)wall);
    printf("  exporter CPU      %10.0f spans per CPU-second (%.2f cores busy)\n",
           spans * 1e9 / (double)cpu, (double)cpu / (double)wall);
    printf("  receiver CPU      %10.0f spans per CPU-second (%.2f cores busy)\n",
           sink_cpu ? spans * 1e9 / (double)sink_cpu : 0.0, (double)sink_cpu / (double)wall);
    for (size_t i = 0; i < n_payloads; i++) {
        free(pb[i]);
    }
    free(pb);
    free(pb_len);
    free(round);
    th_arena_destroy(ca);
    return failed == 0 ? 0 : 1;
}

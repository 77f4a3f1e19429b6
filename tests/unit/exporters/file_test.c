/*
 * Tests of the file exporter: what lands in the file, byte for byte (JSON lines decoded
 * back with th_otlp_decode_json and compared as protobuf; length-prefixed protobuf; zstd
 * records), truncate and append, the flush interval and the flush at shutdown, write errors
 * (/dev/full) that refuse new data without losing what was accepted, recovery, a reader
 * that stalls (consume never blocks), rotation with backup pruning, directory creation,
 * concurrent producers, the config rules and the lifecycle.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "exporters/file/file.h"
#include "exporter_fixture.h"
#include "th/log.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/th-file-test-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *path_in(const char *name)
{
    static char p[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, name);
    return p[i];
}

static struct th_file_cfg base_cfg(const char *path)
{
    return (struct th_file_cfg){
        .path = path,
        .format = "json",
        .compression = "",
        .flush_interval = 10 * 1000000ll,
        .rotation = {.max_megabytes = 100, .max_backups = 100},
        .directory_permissions = "",
    };
}

static struct th_component *start(const struct th_file_cfg *cfg)
{
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_exporter_file_ops, "file", cfg, NULL, &c), 0);
    static struct th_host host;
    assert_int_equal(c->ops->start(c, &host), 0);
    return c;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Decode @p len bytes of OTLP/JSON and check it packs to the same protobuf as @p want. */
static void assert_json_equals(const uint8_t *json, size_t len, const th_otlp_request_t *want)
{
    th_arena_t *a = th_arena_create(0, 0);
    th_otlp_request_t *got = NULL;
    struct th_otlp_error err;
    memset(&err, 0, sizeof(err));
    int ret = th_otlp_decode_json(json, len, NULL, a, &got, &err);
    if (ret != 0) {
        fail_msg("decoding the written line: %s: %.*s", err.msg, (int)TH_MIN(len, 300), json);
    }
    size_t wl, gl;
    uint8_t *wp = fx_pack(want, &wl);
    uint8_t *gp = fx_pack(got, &gl);
    assert_int_equal(gl, wl);
    assert_memory_equal(gp, wp, wl);
    free(wp);
    free(gp);
    th_arena_destroy(a);
}

static void test_json_lines_round_trip(void **state)
{
    (void)state;
    struct th_file_cfg cfg = base_cfg(path_in("out.jsonl"));
    struct th_component *c = start(&cfg);
    th_batch_t *want = fx_batch();
    struct fx_acks acks[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        th_batch_t *b = fx_batch();
        fx_track(b, &acks[i]);
        assert_int_equal(th_consumer_consume(&c->consumer, b), 0);
        /* The batch is encoded in consume and released at once. */
        assert_int_equal(acks[i].settled, 1);
        assert_int_equal(acks[i].result, 0);
    }
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(c->stats.sent, 9);

    size_t len;
    uint8_t *text = slurp(cfg.path, &len);
    /* Each line is exactly th_otlp_encode_json of the batch plus '\n'. */
    th_buf_t line = {0};
    assert_int_equal(th_otlp_encode_json(want->req, &line), 0);
    th_buf_append(&line, "\n", 1);
    assert_int_equal(len, 3 * line.len);
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(text + (size_t)i * line.len, line.ptr, line.len);
        assert_json_equals(text + (size_t)i * line.len, line.len - 1, want->req);
    }
    /* Values that JSON could bend are intact in the text itself. */
    assert_non_null(strstr((char *)text, "\"intValue\":\"9007199254740993\""));
    assert_non_null(strstr((char *)text, "\"traceId\":\"" FX_TRACE_ID "\""));
    assert_non_null(strstr((char *)text, "\"startTimeUnixNano\":\"1544712660100000321\""));
    th_buf_free(&line);
    free(text);
    th_batch_release(want);
    th_component_destroy(c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_truncate_and_append(void **state)
{
    (void)state;
    const char *p = path_in("trunc.jsonl");
    write_file(p, "old line\n");
    struct th_file_cfg cfg = base_cfg(p);
    struct th_component *c = start(&cfg);
    /* append: false truncates at start, before any data. */
    size_t len;
    uint8_t *text = slurp(p, &len);
    assert_int_equal(len, 0);
    free(text);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    th_component_destroy(c);
    text = slurp(p, &len);
    assert_true(len > 0);
    assert_int_equal(text[0], '{');
    free(text);

    write_file(p, "old line\n");
    cfg.append = true;
    c = start(&cfg);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    th_component_destroy(c);
    text = slurp(p, &len);
    assert_memory_equal(text, "old line\n{", 10);
    int lines = 0;
    for (size_t i = 0; i < len; i++) {
        lines += text[i] == '\n';
    }
    assert_int_equal(lines, 3);
    free(text);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_proto_format(void **state)
{
    (void)state;
    struct th_file_cfg cfg = base_cfg(path_in("out.pb"));
    cfg.format = "proto";
    struct th_component *c = start(&cfg);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    th_component_destroy(c);

    th_batch_t *want = fx_batch();
    size_t wl;
    uint8_t *wp = fx_pack(want->req, &wl);
    size_t len;
    uint8_t *data = slurp(cfg.path, &len);
    assert_int_equal(len, 2 * (4 + wl));
    for (int i = 0; i < 2; i++) {
        const uint8_t *rec = data + (size_t)i * (4 + wl);
        assert_int_equal(be32(rec), wl);
        assert_memory_equal(rec + 4, wp, wl);
        /* And it unpacks as an ExportTraceServiceRequest with the three spans. */
        th_otlp_request_t *r =
            opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
                NULL, wl, rec + 4);
        assert_non_null(r);
        assert_int_equal(th_otlp_request_span_count(r), 3);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    free(data);
    free(wp);
    th_batch_release(want);
}

static void test_zstd(void **state)
{
    (void)state;
    th_batch_t *want = fx_batch();
    for (int proto = 0; proto < 2; proto++) {
        struct th_file_cfg cfg = base_cfg(path_in(proto ? "out.pb.zst" : "out.json.zst"));
        cfg.compression = "zstd";
        cfg.format = proto ? "proto" : "json";
        struct th_component *c = start(&cfg);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
        }
        th_component_destroy(c);
        size_t len;
        uint8_t *data = slurp(cfg.path, &len);
        size_t pos = 0;
        int records = 0;
        while (pos < len) {
            assert_true(pos + 4 <= len);
            uint32_t n = be32(data + pos);
            assert_true(pos + 4 + n <= len);
            unsigned long long size = ZSTD_getFrameContentSize(data + pos + 4, n);
            assert_true(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN);
            uint8_t *plain = malloc(size + 1);
            assert_int_equal(ZSTD_decompress(plain, size, data + pos + 4, n), size);
            if (proto) {
                size_t wl;
                uint8_t *wp = fx_pack(want->req, &wl);
                assert_int_equal(size, wl);
                assert_memory_equal(plain, wp, wl);
                free(wp);
            } else {
                /* Compressed JSON carries no newline: the length prefix frames it. */
                assert_int_not_equal(plain[size - 1], '\n');
                assert_json_equals(plain, size, want->req);
            }
            free(plain);
            pos += 4 + n;
            records++;
        }
        assert_int_equal(records, 3);
        /* Compression pays on this repetitive data. */
        size_t wl;
        free(fx_pack(want->req, &wl));
        assert_true(len < 3 * (wl + 4) + 64);
        free(data);
    }
    th_batch_release(want);
}

static size_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

static void test_flush_interval(void **state)
{
    (void)state;
    /* A long interval: nothing reaches the file until shutdown, which writes it all. */
    struct th_file_cfg cfg = base_cfg(path_in("slow.jsonl"));
    cfg.flush_interval = 3600ll * 1000000000ll;
    struct th_component *c = start(&cfg);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    sleep_ms(100);
    assert_int_equal(file_size(cfg.path), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_true(file_size(cfg.path) > 0);
    th_component_destroy(c);

    /* A short interval: the data is in the file soon, without shutdown. */
    cfg = base_cfg(path_in("fast.jsonl"));
    cfg.flush_interval = 20 * 1000000ll;
    c = start(&cfg);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    size_t size = 0;
    for (int i = 0; i < 200 && size == 0; i++) {
        sleep_ms(10);
        size = file_size(cfg.path);
    }
    assert_true(size > 0);
    th_component_destroy(c);

    /* A megabyte waiting wakes the writer before a long interval ends. */
    cfg = base_cfg(path_in("big.jsonl"));
    cfg.flush_interval = 3600ll * 1000000000ll;
    c = start(&cfg);
    char *big = malloc(TH_FILE_WAKE_BYTES + 1);
    memset(big, 'x', TH_FILE_WAKE_BYTES);
    big[TH_FILE_WAKE_BYTES] = '\0';
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch_big(big)), 0);
    /* (The size grows while the kernel copies the megabyte in: wait for all of it.) */
    size = 0;
    for (int i = 0; i < 300 && size <= TH_FILE_WAKE_BYTES; i++) {
        sleep_ms(10);
        size = file_size(cfg.path);
    }
    assert_true(size > TH_FILE_WAKE_BYTES);
    free(big);
    th_component_destroy(c);
}

/* Run @p fn with stderr going to a temp file; return what was written. */
static char *capture_stderr_begin(int *saved, int *tmp, char *path)
{
    strcpy(path, "/tmp/th-file-err-XXXXXX");
    *tmp = mkstemp(path);
    fflush(stderr);
    *saved = dup(STDERR_FILENO);
    dup2(*tmp, STDERR_FILENO);
    return path;
}

static char *capture_stderr_end(int saved, int tmp, const char *path)
{
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t size = lseek(tmp, 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    assert_int_equal(pread(tmp, text, (size_t)size, 0), size);
    close(tmp);
    unlink(path);
    return text;
}

static void test_disk_full(void **state)
{
    (void)state;
    int saved, tmp;
    char errpath[64];
    capture_stderr_begin(&saved, &tmp, errpath);
    /* /dev/full fails every write with ENOSPC, as a full disk does. */
    struct th_file_cfg cfg = base_cfg("/dev/full");
    cfg.append = true;
    struct th_component *c = start(&cfg);
    th_file_writer_t *w = ((struct th_file_exporter *)c)->writer;
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    int accepted = 1;
    /* After the writer's attempt, new data is refused with "retry", not dropped. */
    int ret = 0;
    for (int i = 0; i < 300 && ret == 0; i++) {
        sleep_ms(10);
        th_batch_t *b = fx_batch();
        struct fx_acks acks = {0};
        fx_track(b, &acks);
        ret = th_consumer_consume(&c->consumer, b);
        assert_int_equal(acks.settled, 1);
        accepted += ret == 0;
    }
    assert_int_equal(ret, TH_ERETRY);
    assert_true(c->stats.refused >= 1);
    assert_true(c->stats.failed >= 3);

    /* The disk comes back (the fd now points at a real file): the kept bytes are written
     * whole and new data is accepted again. */
    const char *real = path_in("recovered.jsonl");
    int fd = open(real, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    dup2(fd, w->fd);
    close(fd);
    for (int i = 0; i < 300 && ret != 0; i++) {
        sleep_ms(10);
        ret = th_consumer_consume(&c->consumer, fx_batch());
    }
    assert_int_equal(ret, 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    th_component_destroy(c);
    char *log = capture_stderr_end(saved, tmp, errpath);
    /* The error was logged with the path and the reason. */
    assert_non_null(strstr(log, "/dev/full"));
    assert_non_null(strstr(log, "No space left on device"));
    free(log);

    size_t len;
    uint8_t *text = slurp(real, &len);
    th_batch_t *want = fx_batch();
    int lines = 0;
    for (char *p = (char *)text, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        assert_json_equals((uint8_t *)p, (size_t)(nl - p), want->req);
        lines++;
    }
    /* Those accepted before the failure was seen, and the one after recovery. */
    assert_int_equal(lines, accepted + 1);
    th_batch_release(want);
    free(text);
}

static void test_disk_full_at_shutdown(void **state)
{
    (void)state;
    int saved, tmp;
    char errpath[64];
    capture_stderr_begin(&saved, &tmp, errpath);
    struct th_file_cfg cfg = base_cfg("/dev/full");
    cfg.append = true;
    cfg.flush_interval = 3600ll * 1000000000ll;
    struct th_component *c = start(&cfg);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    /* Shutdown cannot write: it says so, and how much was lost. */
    assert_int_equal(c->ops->shutdown(c), TH_EIO);
    assert_int_equal(c->ops->shutdown(c), TH_EIO);
    th_component_destroy(c);
    char *log = capture_stderr_end(saved, tmp, errpath);
    assert_non_null(strstr(log, "bytes not written to /dev/full"));
    free(log);
}

struct drain {
    int fd;
    size_t bytes;
};

static void *drain_main(void *arg)
{
    struct drain *d = arg;
    char buf[65536];
    for (;;) {
        ssize_t n = read(d->fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        d->bytes += (size_t)n;
    }
    return NULL;
}

/* A reader that stops reading stands for a disk that stops: the writer thread blocks, and
 * consume keeps returning at once, refusing with "retry" once the buffer is full. */
static void test_stalled_disk_never_blocks(void **state)
{
    (void)state;
    const char *fifo = path_in("stall.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(rd >= 0);
    struct th_file_cfg cfg = base_cfg(fifo);
    cfg.append = true;
    struct th_component *c = start(&cfg);
    char *big = malloc((1u << 20) + 1);
    memset(big, 'y', 1u << 20);
    big[1u << 20] = '\0';
    int accepted = 0;
    int ret = 0;
    uint64_t worst = 0;
    while (ret == 0 && accepted < 200) {
        th_batch_t *b = fx_batch_big(big);
        uint64_t t0 = th_now_mono_ns();
        ret = th_consumer_consume(&c->consumer, b);
        uint64_t dt = th_now_mono_ns() - t0;
        worst = TH_MAX(worst, dt);
        accepted += ret == 0;
    }
    assert_int_equal(ret, TH_ERETRY);
    /* About TH_FILE_MAX_PENDING of ~1 MiB records, plus what the pipe holds. */
    assert_true(accepted >= (int)(TH_FILE_MAX_PENDING >> 20) - 2);
    assert_true(accepted < (int)(TH_FILE_MAX_PENDING >> 20) + 8);
    /* No call waited on the disk: the writer stays blocked until the reader resumes below,
     * so a consume that waited for it would never have returned. The bound only allows for
     * encoding a megabyte on a loaded machine under sanitizers. */
    assert_true(worst < 5000ull * 1000000ull);
    /* The reader resumes: shutdown writes everything that was accepted. */
    int flags = fcntl(rd, F_GETFL);
    fcntl(rd, F_SETFL, flags & ~O_NONBLOCK);
    struct drain d = {.fd = rd};
    pthread_t t;
    pthread_create(&t, NULL, drain_main, &d);
    assert_int_equal(c->ops->shutdown(c), 0);
    th_component_destroy(c);
    pthread_join(t, NULL);
    close(rd);
    th_batch_t *one = fx_batch_big(big);
    th_buf_t line = {0};
    th_otlp_encode_json(one->req, &line);
    assert_int_equal(d.bytes, (size_t)accepted * (line.len + 1));
    th_buf_free(&line);
    th_batch_release(one);
    free(big);
}

static int count_backups(const char *dir, const char *prefix, size_t *max_size)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            *max_size = TH_MAX(*max_size, file_size(p));
            n++;
        }
    }
    closedir(d);
    return n;
}

static void test_rotation(void **state)
{
    (void)state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/rot", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    char path[160];
    snprintf(path, sizeof(path), "%s/spans.jsonl", dir);
    struct th_file_cfg cfg = base_cfg(path);
    cfg.rotation_enabled = true;
    cfg.rotation.max_megabytes = 1;
    cfg.rotation.max_backups = 2;
    struct th_component *c = start(&cfg);
    /* Records of ~300 KB: three fit in a MiB, the fourth goes to a new file. */
    char *big = malloc(300001);
    memset(big, 'r', 300000);
    big[300000] = '\0';
    for (int i = 0; i < 14; i++) {
        assert_int_equal(th_consumer_consume(&c->consumer, fx_batch_big(big)), 0);
        sleep_ms(5);
    }
    th_component_destroy(c);
    size_t max_size = 0;
    /* 14 records, 3 per file: 5 files made; the live one plus the 2 newest backups stay. */
    assert_int_equal(count_backups(dir, "spans-", &max_size), 2);
    assert_true(max_size <= (1u << 20));
    size_t len;
    uint8_t *text = slurp(path, &len);
    assert_true(len <= (1u << 20));
    int lines = 0;
    for (size_t i = 0; i < len; i++) {
        lines += text[i] == '\n';
    }
    assert_int_equal(lines, 14 - 12); /* records 13 and 14 */
    free(text);
    /* Every backup holds whole records. */
    DIR *d = opendir(dir);
    struct dirent *de;
    th_batch_t *want = fx_batch_big(big);
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "spans-", 6) != 0) {
            continue;
        }
        /* lumberjack's name: <prefix>-YYYY-MM-DDTHH-MM-SS.mmm<ext> */
        assert_int_equal(strlen(de->d_name), strlen("spans-2006-01-02T15-04-05.000.jsonl"));
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        uint8_t *b = slurp(p, &len);
        int n = 0;
        for (char *q = (char *)b, *nl; (nl = strchr(q, '\n')) != NULL; q = nl + 1) {
            assert_json_equals((uint8_t *)q, (size_t)(nl - q), want->req);
            n++;
        }
        assert_int_equal(n, 3);
        assert_int_equal(b[len - 1], '\n');
        free(b);
    }
    closedir(d);
    th_batch_release(want);

    /* Starting again appends to the live file (lumberjack), and a record bigger than the
     * limit still goes whole into a file of its own. */
    cfg.rotation.max_backups = 0;
    c = start(&cfg);
    char *huge = malloc((1u << 20) + 100);
    memset(huge, 'h', (1u << 20) + 99);
    huge[(1u << 20) + 99] = '\0';
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch_big(huge)), 0);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch_big(big)), 0);
    th_component_destroy(c);
    max_size = 0;
    assert_int_equal(count_backups(dir, "spans-", &max_size), 4);
    assert_true(max_size > (1u << 20));
    free(huge);
    free(big);
}

static void test_backup_name(void **state)
{
    (void)state;
    char *n = th__file_backup_name("/var/log/th/out.jsonl", 1581452772123456789ull, false);
    assert_string_equal(n, "/var/log/th/out-2020-02-11T20-26-12.123.jsonl");
    th_free(n);
    n = th__file_backup_name("spans", 1581452772000000000ull, false);
    assert_string_equal(n, "spans-2020-02-11T20-26-12.000");
    th_free(n);
    n = th__file_backup_name("a.b/c.tar.gz", 0, false);
    assert_string_equal(n, "a.b/c.tar-1970-01-01T00-00-00.000.gz");
    th_free(n);
}

static void test_create_directory(void **state)
{
    (void)state;
    char p[256];
    snprintf(p, sizeof(p), "%s/made/by/exporter/out.jsonl", tmpdir);
    struct th_file_cfg cfg = base_cfg(p);
    struct th_component *c = NULL;
    /* Without create_directory, a missing directory fails start with the path logged. */
    assert_int_equal(th_component_create(&th_exporter_file_ops, "file", &cfg, NULL, &c), 0);
    struct th_host host = {0};
    assert_int_equal(c->ops->start(c, &host), TH_ENOENT);
    th_component_destroy(c);
    cfg.create_directory = true;
    cfg.directory_permissions = "0700";
    c = start(&cfg);
    assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
    th_component_destroy(c);
    assert_true(file_size(p) > 0);
    struct stat st;
    snprintf(p, sizeof(p), "%s/made/by", tmpdir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

struct producer {
    struct th_component *c;
    int n;
    int ok;
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < p->n; i++) {
        if (th_consumer_consume(&p->c->consumer, fx_batch()) == 0) {
            p->ok++;
        }
    }
    return NULL;
}

static void test_concurrent_producers(void **state)
{
    (void)state;
    struct th_file_cfg cfg = base_cfg(path_in("many.jsonl"));
    cfg.flush_interval = 1000000;
    struct th_component *c = start(&cfg);
    struct producer p[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (struct producer){.c = c, .n = 150};
        pthread_create(&t[i], NULL, producer_main, &p[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ok += p[i].ok;
    }
    assert_int_equal(ok, 600);
    th_component_destroy(c);
    size_t len;
    uint8_t *text = slurp(cfg.path, &len);
    th_batch_t *want = fx_batch();
    int lines = 0;
    for (char *q = (char *)text, *nl; (nl = strchr(q, '\n')) != NULL; q = nl + 1) {
        assert_json_equals((uint8_t *)q, (size_t)(nl - q), want->req);
        lines++;
    }
    assert_int_equal(lines, 600);
    th_batch_release(want);
    free(text);
}

static void expect_config_error(struct th_file_cfg cfg, const char *msg)
{
    const char *err = NULL;
    assert_int_equal(th_exporter_file_ops.config_check(&cfg, &err), TH_ECONFIG);
    assert_string_equal(err, msg);
    struct th_component *c = NULL;
    assert_int_equal(th_component_create(&th_exporter_file_ops, "file", &cfg, NULL, &c),
                     TH_ECONFIG);
}

static void test_config(void **state)
{
    (void)state;
    assert_ptr_equal(th_registry_find(TH_KIND_EXPORTER, "file"), &th_exporter_file_ops);
    /* The defaults through the config layer. */
    th_arena_t *a = th_arena_create(0, 0);
    struct th_file_cfg d;
    char err[256] = "";
    assert_int_equal(th_cfg_defaults(th_exporter_file_ops.config, &d, a, err, sizeof(err)), 0);
    assert_string_equal(d.format, "json");
    assert_string_equal(d.compression, "");
    assert_int_equal(d.flush_interval, 1000000000ll);
    assert_false(d.append);
    assert_false(d.rotation_enabled);
    assert_int_equal(d.rotation.max_megabytes, 100);
    assert_int_equal(d.rotation.max_backups, 100);
    assert_false(d.group_by.enabled);
    for (const struct th_cfg_field *f = th_exporter_file_ops.config; f->name; f++) {
        assert_non_null(f->desc);
    }
    /* path is required (the table says so, and the check too). */
    const char *msg = NULL;
    assert_int_equal(th_exporter_file_ops.config_check(&d, &msg), TH_ECONFIG);
    assert_string_equal(msg, "path must be non-empty");

    /* A YAML config as a user writes it, through the config layer. */
    const char *yaml = "path: ./x.jsonl\nformat: proto\nflush_interval: 250ms\n"
                       "rotation:\n  max_megabytes: 5\ngroup_by:\n  enabled: false\n";
    th_node_t *root = NULL;
    assert_int_equal(th_yaml_parse(yaml, strlen(yaml), "t", a, &root, err, sizeof(err)), 0);
    assert_int_equal(th_cfg_decode(th_exporter_file_ops.config, root, &d, a, "exporters::file", err,
                                   sizeof(err)),
                     0);
    assert_string_equal(d.path, "./x.jsonl");
    assert_string_equal(d.format, "proto");
    assert_int_equal(d.flush_interval, 250000000ll);
    assert_true(d.rotation_enabled);
    assert_int_equal(d.rotation.max_megabytes, 5);
    assert_int_equal(d.rotation.max_backups, 100);
    assert_int_equal(th_exporter_file_ops.config_check(&d, &msg), 0);
    const char *bad = "path: x\nformat: xml\n";
    assert_int_equal(th_yaml_parse(bad, strlen(bad), "t", a, &root, err, sizeof(err)), 0);
    assert_int_equal(th_cfg_decode(th_exporter_file_ops.config, root, &d, a, "exporters::file", err,
                                   sizeof(err)),
                     TH_ECONFIG);
    assert_non_null(strstr(err, "format"));
    th_arena_destroy(a);

    struct th_file_cfg cfg = base_cfg("x");
    cfg.append = true;
    cfg.compression = "zstd";
    expect_config_error(cfg, "append and compression enabled at the same time is not supported");
    cfg = base_cfg("x");
    cfg.append = true;
    cfg.rotation_enabled = true;
    expect_config_error(cfg, "append and rotation enabled at the same time is not supported");
    cfg = base_cfg("x");
    cfg.format = "xml";
    expect_config_error(cfg, "format type is not supported");
    cfg = base_cfg("x");
    cfg.compression = "gzip";
    expect_config_error(cfg, "compression is not supported");
    cfg = base_cfg("x");
    cfg.flush_interval = -1;
    expect_config_error(cfg, "flush_interval must be larger than zero");
    cfg = base_cfg("x");
    cfg.group_by.enabled = true;
    expect_config_error(
        cfg, "group_by is not supported yet (the key is accepted only with enabled: false)");
    cfg = base_cfg("x");
    cfg.directory_permissions = "0755";
    expect_config_error(cfg, "directory_permissions requires create_directory to be true");
    cfg.create_directory = true;
    cfg.directory_permissions = "rwx";
    expect_config_error(cfg, "directory_permissions value must be a valid octal representation");
    cfg.directory_permissions = "7777";
    expect_config_error(cfg, "directory_permissions contain invalid bits for file access");
    assert_int_equal(th__file_parse_permissions("0750"), 0750);
    assert_int_equal(th__file_parse_permissions("8"), -1);
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct th_file_cfg cfg = base_cfg(path_in("life.jsonl"));
    struct th_component *c = NULL;
    /* init does no I/O: the file does not exist until start. */
    assert_int_equal(th_component_create(&th_exporter_file_ops, "file", &cfg, NULL, &c), 0);
    assert_int_equal(access(cfg.path, F_OK), -1);
    /* Shutdown without start is fine, twice; then destroy. */
    assert_int_equal(c->ops->shutdown(c), 0);
    assert_int_equal(c->ops->shutdown(c), 0);
    th_component_destroy(c);
    /* Consume before start is refused, and the batch is released. */
    assert_int_equal(th_component_create(&th_exporter_file_ops, "file", &cfg, NULL, &c), 0);
    struct fx_acks acks = {0};
    th_batch_t *b = fx_batch();
    fx_track(b, &acks);
    assert_int_equal(th_consumer_consume(&c->consumer, b), TH_ESHUTDOWN);
    assert_int_equal(acks.settled, 1);
    th_component_destroy(c);
    /* create → start → shutdown → destroy → create → start: nothing held over. */
    for (int i = 0; i < 2; i++) {
        c = start(&cfg);
        assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), 0);
        assert_int_equal(c->ops->shutdown(c), 0);
        /* After shutdown, refused. */
        assert_int_equal(th_consumer_consume(&c->consumer, fx_batch()), TH_ESHUTDOWN);
        th_component_destroy(c);
    }
}

int main(void)
{
    th_log_configure(TH_LOG_INFO, TH_LOG_CONSOLE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines_round_trip),
        cmocka_unit_test(test_truncate_and_append),
        cmocka_unit_test(test_proto_format),
        cmocka_unit_test(test_zstd),
        cmocka_unit_test(test_flush_interval),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_disk_full_at_shutdown),
        cmocka_unit_test(test_stalled_disk_never_blocks),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_backup_name),
        cmocka_unit_test(test_create_directory),
        cmocka_unit_test(test_concurrent_producers),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_lifecycle),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

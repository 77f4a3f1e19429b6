/*
 * The jaeger_storage extension: opens the configured stores at start, runs their retention
 * on a background thread, hands them out by name (th_jaeger_storage_find) and closes them
 * at shutdown, after every exporter has flushed into them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/jaeger_storage/jaeger_storage.h"
#include "th/log.h"

static int js_init(struct th_component *c, const void *cfg, struct th_consumer *next)
{
    (void)next;
    struct th_jaeger_storage *js = (struct th_jaeger_storage *)c;
    js->cfg = cfg;
    js->arena = th_arena_create(0, 0);
    if (!js->arena) {
        return TH_ENOMEM;
    }
    pthread_mutex_init(&js->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&js->wake, &ca);
    pthread_condattr_destroy(&ca);
    char err[768];
    int ret = th__js_decode(cfg, js->arena, &js->backends, &js->n_backends, err, sizeof(err));
    if (ret != 0) {
        th_log_error(c, "%s%s", c->id, err);
    }
    return ret;
}

/* Retention for every store, each at its own interval, until shutdown. */
static void *retention_main(void *arg)
{
    struct th_jaeger_storage *js = arg;
    uint64_t *due = th_calloc(js->n_backends ? js->n_backends : 1, sizeof(*due));
    pthread_mutex_lock(&js->lock);
    while (!js->stopping) {
        uint64_t now = th_now_mono_ns(), next = now + 60000000000ull;
        for (size_t i = 0; due && i < js->n_backends; i++) {
            struct th__js_backend *b = &js->backends[i];
            uint64_t every =
                (uint64_t)(b->store.retention_interval_ns > 0 ? b->store.retention_interval_ns
                                                              : 30000000000ll);
            if (!due[i]) {
                due[i] = now + every;
            }
            if (now >= due[i] && b->opened && b->opened->ops->retention) {
                pthread_mutex_unlock(&js->lock);
                int ret = b->opened->ops->retention(b->opened, th_now_unix_ns());
                pthread_mutex_lock(&js->lock);
                if (ret != 0) {
                    th_log_error(&js->base, "backend %s: retention failed: %s", b->name,
                                 th_strerror(ret));
                }
                due[i] = th_now_mono_ns() + every;
            }
            next = TH_MIN(next, due[i]);
        }
        if (js->stopping) {
            break;
        }
        struct timespec ts = {(time_t)(next / 1000000000u), (long)(next % 1000000000u)};
        pthread_cond_timedwait(&js->wake, &js->lock, &ts);
    }
    pthread_mutex_unlock(&js->lock);
    th_free(due);
    return NULL;
}

static void close_stores(struct th_jaeger_storage *js)
{
    for (size_t i = 0; i < js->n_backends; i++) {
        struct th__js_backend *b = &js->backends[i];
        th_store_close(b->opened);
        b->opened = NULL;
        if (b->tmpdir) {
            rmdir(b->tmpdir); /* the store removed its files (ephemeral) */
            th_free(b->tmpdir);
            b->tmpdir = NULL;
        }
    }
}

static int js_start(struct th_component *c, struct th_host *host)
{
    (void)host;
    struct th_jaeger_storage *js = (struct th_jaeger_storage *)c;
    int ret = 0;
    for (size_t i = 0; i < js->n_backends && ret == 0; i++) {
        struct th__js_backend *b = &js->backends[i];
        struct th_store_cfg sc = b->store;
        if (!sc.path) {
            /* memory, or ephemeral badger: a directory of our own, gone at shutdown */
            const char *tmp = getenv("TMPDIR");
            size_t n = strlen(tmp && *tmp ? tmp : "/tmp") + 64;
            b->tmpdir = th_malloc(n);
            if (!b->tmpdir) {
                ret = TH_ENOMEM;
                break;
            }
            snprintf(b->tmpdir, n, "%s/tracehouse-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", b->type);
            if (!mkdtemp(b->tmpdir)) {
                th_log_error(c, "backend %s: cannot make a temporary directory %s: %s", b->name,
                             b->tmpdir, strerror(errno));
                th_free(b->tmpdir);
                b->tmpdir = NULL;
                ret = TH_EIO;
                break;
            }
            sc.path = b->tmpdir;
        }
        char err[512] = "";
        ret = th_store_open(&th_store_lmdb_ops, &sc, &b->opened, err, sizeof(err));
        if (ret != 0) {
            th_log_error(c, "backend %s (%s): %s", b->name, b->type, err);
            b->opened = NULL;
            break;
        }
        th_log_info(c, "backend %s (%s) open at %s", b->name, b->type, sc.path);
    }
    if (ret == 0 && js->n_backends) {
        js->stopping = false;
        if (pthread_create(&js->thread, NULL, retention_main, js) != 0) {
            ret = TH_EIO;
        } else {
            js->thread_running = true;
        }
    }
    if (ret != 0) {
        close_stores(js);
    }
    return ret;
}

static int js_shutdown(struct th_component *c)
{
    struct th_jaeger_storage *js = (struct th_jaeger_storage *)c;
    if (js->thread_running) {
        pthread_mutex_lock(&js->lock);
        js->stopping = true;
        pthread_cond_broadcast(&js->wake);
        pthread_mutex_unlock(&js->lock);
        pthread_join(js->thread, NULL);
        js->thread_running = false;
    }
    close_stores(js);
    return 0;
}

static void js_destroy(struct th_component *c)
{
    struct th_jaeger_storage *js = (struct th_jaeger_storage *)c;
    js_shutdown(c);
    if (js->arena) {
        pthread_cond_destroy(&js->wake);
        pthread_mutex_destroy(&js->lock);
    }
    th_arena_destroy(js->arena);
    js->arena = NULL;
}

int th_jaeger_storage_find(struct th_host *host, const char *backend, th_store_t **out)
{
    if (!host || !backend || !out || !host->get_extension) {
        return TH_EINVAL;
    }
    struct th_component *c = host->get_extension(host, "jaeger_storage");
    if (!c || c->ops != &th_extension_jaeger_storage_ops) {
        return TH_ENOENT;
    }
    struct th_jaeger_storage *js = (struct th_jaeger_storage *)c;
    for (size_t i = 0; i < js->n_backends; i++) {
        if (!strcmp(js->backends[i].name, backend) && js->backends[i].opened) {
            *out = js->backends[i].opened;
            return 0;
        }
    }
    return TH_ENOENT;
}

void th_jaeger_storage_foreach(const struct th_component *c, th_jaeger_storage_each_fn fn,
                               void *data)
{
    if (!c || c->ops != &th_extension_jaeger_storage_ops) {
        return;
    }
    const struct th_jaeger_storage *js = (const struct th_jaeger_storage *)c;
    for (size_t i = 0; i < js->n_backends; i++) {
        if (js->backends[i].opened) {
            fn(data, js->backends[i].name, js->backends[i].opened);
        }
    }
}

const struct th_component_ops th_extension_jaeger_storage_ops = {
    .abi = TH_COMPONENT_ABI,
    .kind = TH_KIND_EXTENSION,
    .type = "jaeger_storage",
    .stability = TH_STABILITY_ALPHA,
    .description = "Trace stores by name (Jaeger v2's jaeger_storage), served by LMDB",
    .config_size = sizeof(struct th_jaeger_storage_cfg),
    .config = th__js_config,
    .config_check = th__js_config_check,
    .instance_size = sizeof(struct th_jaeger_storage),
    .init = js_init,
    .start = js_start,
    .shutdown = js_shutdown,
    .destroy = js_destroy,
};

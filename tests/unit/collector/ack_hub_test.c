/*
 * The ack hub (collector/ack_hub.c): a settle on the loop thread completes at once; settles
 * from another thread complete on the loop thread in arrival order; the hub outlives its
 * creator's release while entries wait and closes after the last one; release completes
 * what already arrived; an unattached entry completes where it settles; the loop thread can
 * be moved; allocation failure is TH_ENOMEM.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "th/ack_hub.h"

#define N_ENTRIES 64

struct item {
    struct th_ack_hub_entry e; /* first: the completion casts back */
    int id;
};

/* What the completions saw, in order. */
static int order[N_ENTRIES + 8];
static int results[N_ENTRIES + 8];
static pthread_t where[N_ENTRIES + 8];
static int n_done;

static void on_complete(struct th_ack_hub_entry *e, int result)
{
    struct item *it = (struct item *)e;
    order[n_done] = it->id;
    results[n_done] = result;
    where[n_done] = pthread_self();
    n_done++;
    free(it);
}

static struct item *item_new(th_ack_hub_t *hub, int id)
{
    struct item *it = calloc(1, sizeof(*it));
    assert_non_null(it);
    th_ack_hub_entry_init(&it->e, on_complete);
    th_ack_hub_attach(hub, &it->e);
    it->id = id;
    return it;
}

static int setup(void **state)
{
    (void)state;
    n_done = 0;
    memset(order, 0, sizeof(order));
    return 0;
}

/* Every handle is closed: the hub did not leak its uv_async_t, nor close it twice. */
static void loop_finish(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A fresh loop and a hub on it, made on this thread. */
static th_ack_hub_t *hub_on(uv_loop_t *loop)
{
    th_ack_hub_t *hub = NULL;
    assert_int_equal(uv_loop_init(loop), 0);
    assert_int_equal(th_ack_hub_create(loop, &hub), 0);
    assert_non_null(hub);
    return hub;
}

/* Settle items[0..n) from another thread, in index order. */
struct settler {
    struct item **items;
    int n;
    int result_base;
};

static void *settle_thread(void *arg)
{
    struct settler *st = arg;
    for (int i = 0; i < st->n; i++) {
        th_ack_hub_settle(&st->items[i]->e, st->result_base - i);
    }
    return NULL;
}

static void settle_elsewhere(struct item **items, int n, int result_base)
{
    struct settler st = {items, n, result_base};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, settle_thread, &st), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void on_idle(uv_idle_t *h)
{
    (void)h;
}

/* The hub's uv_async_t is unreferenced; an idle handle keeps the loop turning meanwhile. */
static void run_until(uv_loop_t *loop, int want)
{
    uv_idle_t idle;
    uv_idle_init(loop, &idle);
    uv_idle_start(&idle, on_idle);
    for (int spins = 0; n_done < want && spins < 100000; spins++) {
        uv_run(loop, UV_RUN_NOWAIT);
    }
    uv_idle_stop(&idle);
    uv_close((uv_handle_t *)&idle, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_int_equal(n_done, want);
}

static void test_loop_thread_completes_at_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    th_ack_hub_t *hub = hub_on(&loop);
    assert_non_null(hub);
    struct item *it = item_new(hub, 7);
    th_ack_hub_settle(&it->e, TH_ERETRY);
    assert_int_equal(n_done, 1);
    assert_int_equal(order[0], 7);
    assert_int_equal(results[0], TH_ERETRY);
    assert_true(pthread_equal(where[0], pthread_self()));
    th_ack_hub_release(hub);
    loop_finish(&loop);
}

static void test_other_thread_in_arrival_order(void **state)
{
    (void)state;
    uv_loop_t loop;
    th_ack_hub_t *hub = hub_on(&loop);
    struct item *items[N_ENTRIES];
    for (int i = 0; i < N_ENTRIES; i++) {
        items[i] = item_new(hub, i);
    }
    /* Settled in a shuffled order: the completions follow the settles, not the attaches. */
    struct item *shuffled[N_ENTRIES];
    for (int i = 0; i < N_ENTRIES; i++) {
        shuffled[i] = items[(i * 37) % N_ENTRIES];
    }
    settle_elsewhere(shuffled, N_ENTRIES, 0);
    assert_int_equal(n_done, 0); /* nothing runs off the loop thread */
    run_until(&loop, N_ENTRIES);
    for (int i = 0; i < N_ENTRIES; i++) {
        assert_int_equal(order[i], (i * 37) % N_ENTRIES);
        assert_int_equal(results[i], -i);
        assert_true(pthread_equal(where[i], pthread_self()));
    }
    th_ack_hub_release(hub);
    loop_finish(&loop);
}

static void test_outlives_release(void **state)
{
    (void)state;
    uv_loop_t loop;
    th_ack_hub_t *hub = hub_on(&loop);
    struct item *items[3] = {item_new(hub, 1), item_new(hub, 2), item_new(hub, 3)};
    th_ack_hub_release(hub); /* the receiver is gone; three acks are still out */
    assert_int_equal(uv_loop_alive(&loop), 0);
    settle_elsewhere(items, 3, 0);
    run_until(&loop, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[2], 3);
    loop_finish(&loop); /* the last completion closed the hub */
}

static void test_release_completes_what_arrived(void **state)
{
    (void)state;
    uv_loop_t loop;
    th_ack_hub_t *hub = hub_on(&loop);
    struct item *items[4];
    for (int i = 0; i < 4; i++) {
        items[i] = item_new(hub, 10 + i);
    }
    settle_elsewhere(items, 2, 0);
    th_ack_hub_release(hub); /* the first two complete here, without the loop running */
    assert_int_equal(n_done, 2);
    assert_int_equal(order[0], 10);
    assert_int_equal(order[1], 11);
    /* The rest settle on the loop thread after the release: at once. */
    th_ack_hub_settle(&items[2]->e, 0);
    th_ack_hub_settle(&items[3]->e, 0);
    assert_int_equal(n_done, 4);
    assert_int_equal(order[3], 13);
    loop_finish(&loop);
}

static void *settle_one_thread(void *arg)
{
    th_ack_hub_settle(arg, 5);
    return NULL;
}

static void test_unattached_completes_where_settled(void **state)
{
    (void)state;
    struct item *it = item_new(NULL, 42);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, settle_one_thread, &it->e), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(n_done, 1);
    assert_int_equal(order[0], 42);
    assert_int_equal(results[0], 5);
    assert_true(pthread_equal(where[0], t));
}

struct creator {
    uv_loop_t *loop;
    th_ack_hub_t *hub;
    int ret;
};

static void *create_thread(void *arg)
{
    struct creator *c = arg;
    c->ret = th_ack_hub_create(c->loop, &c->hub);
    return NULL;
}

static void test_set_loop_thread(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct creator c = {&loop, NULL, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, create_thread, &c), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(c.ret, 0);
    /* Created elsewhere: a settle here is queued until this thread is named the loop's. */
    struct item *a = item_new(c.hub, 1);
    th_ack_hub_settle(&a->e, 0);
    assert_int_equal(n_done, 0);
    run_until(&loop, 1);
    th_ack_hub_set_loop_thread(c.hub);
    struct item *b = item_new(c.hub, 2);
    th_ack_hub_settle(&b->e, 0);
    assert_int_equal(n_done, 2);
    th_ack_hub_release(c.hub);
    th_ack_hub_release(NULL);
    loop_finish(&loop);
}

static void *no_calloc(size_t n, size_t s)
{
    return NULL;
}

static void test_oom(void **state)
{
    (void)state;
    static const struct th_mem_methods failing = {malloc, no_calloc, realloc, free};
    uv_loop_t loop;
    uv_loop_init(&loop);
    th_ack_hub_t *hub = NULL;
    th_mem_set_methods(&failing);
    int ret = th_ack_hub_create(&loop, &hub);
    th_mem_set_methods(NULL);
    assert_int_equal(ret, TH_ENOMEM);
    assert_null(hub);
    loop_finish(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_loop_thread_completes_at_once, setup),
        cmocka_unit_test_setup(test_other_thread_in_arrival_order, setup),
        cmocka_unit_test_setup(test_outlives_release, setup),
        cmocka_unit_test_setup(test_release_completes_what_arrived, setup),
        cmocka_unit_test_setup(test_unattached_completes_where_settled, setup),
        cmocka_unit_test_setup(test_set_loop_thread, setup),
        cmocka_unit_test_setup(test_oom, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

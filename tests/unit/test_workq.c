/* Unit tests for the work queue (gateway/workq.c). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/workq.h"

#define MAX_ITEMS 2000

struct item {
    struct sl_work work;
    int id;
    pthread_t run_thread;
    atomic_bool ran;
    int runs;                            /* on the worker */
    bool done_after_run;
    bool done_on_loop;
    pthread_barrier_t *barrier;          /* run waits here first, if set */
    atomic_bool *gate;                   /* run waits until *gate, if set */
    int sleep_us;
};

static pthread_t loop_thread;
static struct event_base *base;
static int done_ids[MAX_ITEMS];
static int n_done;

static struct item *item_of(struct sl_work *w)
{
    return (struct item *)((char *)w - offsetof(struct item, work));
}

static void item_run(struct sl_work *w)
{
    struct item *it = item_of(w);

    if (it->barrier != NULL) {
        pthread_barrier_wait(it->barrier);
    }
    while (it->gate != NULL && !atomic_load(it->gate)) {
        usleep(1000);
    }
    if (it->sleep_us > 0) {
        usleep((useconds_t)it->sleep_us);
    }
    it->run_thread = pthread_self();
    it->runs++;
    atomic_store(&it->ran, true);
}

static void item_done(struct sl_work *w)
{
    struct item *it = item_of(w);

    it->done_after_run = atomic_load(&it->ran);
    it->done_on_loop = pthread_equal(pthread_self(), loop_thread);
    if (n_done < MAX_ITEMS) {
        done_ids[n_done] = it->id;
    }
    n_done++;
}

static struct item *items_new(int n)
{
    struct item *v = calloc((size_t)n, sizeof(*v));

    assert_non_null(v);
    for (int i = 0; i < n; i++) {
        v[i].id = i;
        v[i].work.run = item_run;
        v[i].work.done = item_done;
    }
    return v;
}

/* Run the loop until n dones have run (at most ~10 s). */
static void loop_until(int n)
{
    for (int i = 0; i < 10000 && n_done < n; i++) {
        struct timeval tv = {0, 1000};

        event_base_loopexit(base, &tv);
        event_base_loop(base, 0);
    }
    assert_int_equal(n_done, n);
}

static int setup(void **state)
{
    base = event_base_new();
    n_done = 0;
    memset(done_ids, 0, sizeof(done_ids));
    return base != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    event_base_free(base);
    base = NULL;
    return 0;
}

static void test_run_on_worker_done_on_loop(void **state)
{
    struct sl_workq *q = sl_workq_new(base, 2, "test-workq", NULL);
    struct item *v = items_new(8);

    assert_non_null(q);
    for (int i = 0; i < 8; i++) {
        sl_workq_submit(q, &v[i].work);
    }
    loop_until(8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(v[i].runs, 1);
        assert_false(pthread_equal(v[i].run_thread, loop_thread));
        assert_true(v[i].done_after_run);
        assert_true(v[i].done_on_loop);
    }
    sl_workq_free(&q);
    assert_null(q);
    assert_int_equal(n_done, 8);
    free(v);
}

/* One worker completes in submission order, and the dones follow completion order. */
static void test_done_order(void **state)
{
    struct sl_workq *q = sl_workq_new(base, 1, "test-workq", NULL);
    struct item *v = items_new(200);

    assert_non_null(q);
    for (int i = 0; i < 200; i++) {
        v[i].sleep_us = i % 7 == 0 ? 100 : 0;
        sl_workq_submit(q, &v[i].work);
    }
    loop_until(200);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(done_ids[i], i);
    }
    sl_workq_free(&q);
    free(v);
}

/* Several workers at once: the first items only finish once two workers hold them. */
static void test_many_threads(void **state)
{
    enum { N = 1000, T = 4 };
    struct sl_workq *q = sl_workq_new(base, T, "test-workq", NULL);
    struct item *v = items_new(N);
    pthread_barrier_t barrier;
    int seen[N];

    assert_non_null(q);
    pthread_barrier_init(&barrier, NULL, T);
    for (int i = 0; i < N; i++) {
        v[i].barrier = i < T ? &barrier : NULL;
        sl_workq_submit(q, &v[i].work);
    }
    loop_until(N);
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < N; i++) {
        assert_int_equal(v[i].runs, 1);
        assert_true(v[i].done_on_loop);
        assert_true(v[i].done_after_run);
        seen[done_ids[i]]++;
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);    /* every done exactly once */
    }
    for (int i = 0; i < T; i++) {        /* the barrier items ran on T distinct threads */
        for (int j = i + 1; j < T; j++) {
            assert_false(pthread_equal(v[i].run_thread, v[j].run_thread));
        }
    }
    sl_workq_free(&q);
    pthread_barrier_destroy(&barrier);
    free(v);
}

/* Free with work queued and the loop never run: it all runs, then every done here. */
static void test_free_drains(void **state)
{
    enum { N = 100 };
    struct sl_workq *q = sl_workq_new(base, 2, "test-workq", NULL);
    struct item *v = items_new(N);
    atomic_bool gate = false;

    assert_non_null(q);
    for (int i = 0; i < N; i++) {
        v[i].gate = i < 2 ? &gate : NULL;   /* both workers busy: the rest stay queued */
        v[i].sleep_us = 50;
        sl_workq_submit(q, &v[i].work);
    }
    atomic_store(&gate, true);
    sl_workq_free(&q);
    assert_null(q);
    assert_int_equal(n_done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(v[i].runs, 1);
        assert_true(v[i].done_after_run);
        assert_true(v[i].done_on_loop);
    }
    free(v);
}

static void test_free_empty_and_null(void **state)
{
    struct sl_workq *q = sl_workq_new(base, 3, "test-workq", NULL);

    assert_non_null(q);
    sl_workq_free(&q);
    assert_null(q);
    sl_workq_free(&q);                   /* *q NULL */
    sl_workq_free(NULL);
    assert_int_equal(n_done, 0);
}

static void *release_later(void *arg)
{
    usleep(50000);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static int64_t ns_of(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* sl_workq_wait blocks for work in flight and runs its done; 0 with nothing left. It
 * sleeps while it waits: the ~50 ms until the work is released cost the calling thread
 * next to no CPU (a wait that spun would spend all of them). */
static void test_wait(void **state)
{
    struct sl_workq *q = sl_workq_new(base, 1, "test-workq", NULL);
    struct item *v = items_new(1);
    atomic_bool gate = false;
    int64_t wall, cpu;
    pthread_t t;

    assert_non_null(q);
    assert_int_equal(sl_workq_wait(q), 0);
    v[0].gate = &gate;
    sl_workq_submit(q, &v[0].work);
    assert_int_equal(pthread_create(&t, NULL, release_later, &gate), 0);
    wall = ns_of(CLOCK_MONOTONIC);
    cpu = ns_of(CLOCK_THREAD_CPUTIME_ID);
    assert_int_equal(sl_workq_wait(q), 1);
    wall = ns_of(CLOCK_MONOTONIC) - wall;
    cpu = ns_of(CLOCK_THREAD_CPUTIME_ID) - cpu;
    assert_true(wall >= 20 * 1000000);          /* it did wait for the release */
    if (cpu * 4 > wall) {
        fail_msg("sl_workq_wait used %lld us of CPU in %lld us", (long long)(cpu / 1000),
                 (long long)(wall / 1000));
    }
    assert_int_equal(n_done, 1);
    assert_true(v[0].done_on_loop);
    assert_int_equal(sl_workq_wait(q), 0);
    pthread_join(t, NULL);
    sl_workq_free(&q);
    assert_int_equal(n_done, 1);
    free(v);
}

static void test_new_no_threads(void **state)
{
    char *err = NULL;
    struct sl_workq *q = sl_workq_new(base, 0, "test-workq", &err);

    assert_null(q);
    assert_non_null(err);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_on_worker_done_on_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_empty_and_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_no_threads, setup, teardown),
    };

    loop_thread = pthread_self();
    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

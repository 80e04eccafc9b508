/*
 * MQTT password checks off the loop (adapters/mqtt/mqtt_auth.c): real worker threads
 * (its sl_workq), verdicts back on an event base spun by the test; the queue bound, the
 * cache of successes, stop and free with checks queued, running or completed but not yet
 * delivered, inline mode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "adapters/mqtt/mqtt_auth.h"
#include "gateway/metrics.h"

/* hashlib.pbkdf2_hmac("sha256", b"s3cret", b"saltsaltsaltsalt", N) */
static const char fast[] = "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$"
                           "8W5yLmqTx7pmJ5+3qp/ZOQP9vTuo+lMNfP/lMdTb9u8=";
static const char slow[] = "pbkdf2-sha256$200000$c2FsdHNhbHRzYWx0c2FsdA==$"
                           "GipAJ8WzPlaqypdW/dyW8/bs5h8WHa1CxKO4A/H6TAs=";

#define PW(s) (const uint8_t *)(s), strlen(s)

struct verdicts {
    uint64_t ticket[64];
    bool ok[64];
    int n;
};

struct env {
    struct event_base *base;
    struct verdicts v;
};

static void on_done(void *arg, uint64_t ticket, bool ok)
{
    struct verdicts *v = arg;
    assert_true(v->n < 64);
    v->ticket[v->n] = ticket;
    v->ok[v->n] = ok;
    v->n++;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    evthread_use_pthreads();
    e->base = event_base_new();
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    event_base_free(e->base);
    free(e);
    return 0;
}

/* Spin the loop until n verdicts arrived (bounded: 10 s). */
static void wait_verdicts(struct env *e, int n)
{
    for (int i = 0; i < 10000 && e->v.n < n; i++) {
        event_base_loop(e->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(e->v.n, n);
}

static bool verdict_of(const struct env *e, uint64_t ticket)
{
    for (int i = 0; i < e->v.n; i++) {
        if (e->v.ticket[i] == ticket) {
            return e->v.ok[i];
        }
    }
    fail_msg("no verdict for ticket %llu", (unsigned long long)ticket);
    return false;
}

/* CPU time, in microseconds, of this thread (CLOCK_THREAD_CPUTIME_ID) or of the whole
 * process, workers included (CLOCK_PROCESS_CPUTIME_ID). The checks below compare work
 * done in CPU time, not wall time: a loaded machine (CI, a parallel make) stretches
 * wall time, never the CPU time one hash costs. */
static int64_t cpu_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void test_worker_verdicts(void **state)
{
    struct env *e = *state;
    struct mqtt_auth *a = mqtt_auth_new(e->base, 2, 16, 0, on_done, &e->v);
    int64_t t0, one_hash;

    assert_non_null(a);
    t0 = cpu_us(CLOCK_THREAD_CPUTIME_ID);
    assert_true(mqtt_password_ok(slow, PW("s3cret")));
    one_hash = cpu_us(CLOCK_THREAD_CPUTIME_ID) - t0;
    t0 = cpu_us(CLOCK_THREAD_CPUTIME_ID);
    assert_int_equal(mqtt_auth_check(a, 1, slow, PW("s3cret")), MQTT_AUTH_PENDING);
    assert_int_equal(mqtt_auth_check(a, 2, slow, PW("s3cres")), MQTT_AUTH_PENDING);
    assert_int_equal(mqtt_auth_check(a, 3, fast, PW("s3cret")), MQTT_AUTH_PENDING);
    assert_int_equal(mqtt_auth_check(a, 4, "pbkdf2-sha256$x", PW("s3cret")), MQTT_AUTH_PENDING);
    /* submitting took no hash time on this thread (inline, it would be two slow hashes) */
    if (cpu_us(CLOCK_THREAD_CPUTIME_ID) - t0 >= one_hash / 2) {
        fail_msg("submitting took %lld us of CPU, one hash %lld us",
                 (long long)(cpu_us(CLOCK_THREAD_CPUTIME_ID) - t0), (long long)one_hash);
    }
    assert_int_equal(mqtt_auth_pending(a), 4);
    wait_verdicts(e, 4);
    assert_true(verdict_of(e, 1));
    assert_false(verdict_of(e, 2));
    assert_true(verdict_of(e, 3));
    assert_false(verdict_of(e, 4));
    assert_int_equal(mqtt_auth_pending(a), 0);
    mqtt_auth_free(&a);
    assert_null(a);
}

static void test_queue_bound(void **state)
{
    struct env *e = *state;
    struct mqtt_auth *a = mqtt_auth_new(e->base, 1, 3, 0, on_done, &e->v);
    struct sl_metric *refused = sl_metric_counter("sluice_mqtt_auth_refused_total", "", "");
    int64_t before = sl_metric_value(refused);

    for (uint64_t t = 1; t <= 3; t++) {
        assert_int_equal(mqtt_auth_check(a, t, slow, PW("s3cret")), MQTT_AUTH_PENDING);
    }
    /* full: refused at once with Server busy, counted; nothing queued */
    assert_int_equal(mqtt_auth_check(a, 4, slow, PW("s3cret")), 0x89);
    assert_int_equal(mqtt_auth_check(a, 5, fast, PW("s3cret")), 0x89);
    assert_int_equal(sl_metric_value(refused) - before, 2);
    assert_int_equal(mqtt_auth_pending(a), 3);
    wait_verdicts(e, 3);
    /* room again once verdicts were delivered */
    assert_int_equal(mqtt_auth_check(a, 6, fast, PW("s3cret")), MQTT_AUTH_PENDING);
    wait_verdicts(e, 4);
    assert_true(verdict_of(e, 6));
    mqtt_auth_free(&a);
}

static void test_cache(void **state)
{
    struct env *e = *state;
    struct mqtt_auth *a = mqtt_auth_new(e->base, 2, 16, 64, on_done, &e->v);
    struct sl_metric *hits = sl_metric_counter("sluice_mqtt_auth_cache_hits_total", "", "");
    int64_t before = sl_metric_value(hits);

    assert_int_equal(mqtt_auth_check(a, 1, slow, PW("s3cret")), MQTT_AUTH_PENDING);
    assert_int_equal(mqtt_auth_check(a, 2, slow, PW("wrong")), MQTT_AUTH_PENDING);
    wait_verdicts(e, 2);
    /* a verified password is accepted at once; a wrong one is never remembered */
    assert_int_equal(mqtt_auth_check(a, 3, slow, PW("s3cret")), 0);
    assert_int_equal(mqtt_auth_check(a, 4, slow, PW("s3cret")), 0);
    assert_int_equal(sl_metric_value(hits) - before, 2);
    assert_int_equal(mqtt_auth_check(a, 5, slow, PW("wrong")), MQTT_AUTH_PENDING);
    /* another stored hash (a changed user) does not match the remembered entry */
    assert_int_equal(mqtt_auth_check(a, 6, fast, PW("s3cret")), MQTT_AUTH_PENDING);
    wait_verdicts(e, 4);
    assert_false(verdict_of(e, 5));
    assert_true(verdict_of(e, 6));
    mqtt_auth_cache_clear(a);
    assert_int_equal(mqtt_auth_check(a, 7, slow, PW("s3cret")), MQTT_AUTH_PENDING);
    wait_verdicts(e, 5);
    mqtt_auth_free(&a);
}

static void test_stop_in_flight(void **state)
{
    struct env *e = *state;
    struct mqtt_auth *a = mqtt_auth_new(e->base, 2, 16, 16, on_done, &e->v);
    int64_t t0, one_hash, took;

    t0 = cpu_us(CLOCK_THREAD_CPUTIME_ID);
    assert_true(mqtt_password_ok(slow, PW("s3cret")));
    one_hash = cpu_us(CLOCK_THREAD_CPUTIME_ID) - t0;
    for (uint64_t t = 1; t <= 8; t++) {
        assert_int_equal(mqtt_auth_check(a, t, slow, PW("s3cret")), MQTT_AUTH_PENDING);
    }
    usleep(20000);    /* the workers are inside a hash each */
    t0 = cpu_us(CLOCK_PROCESS_CPUTIME_ID);
    mqtt_auth_stop(a);
    took = cpu_us(CLOCK_PROCESS_CPUTIME_ID) - t0;
    /* joined after the hash each worker is in (at most 2 hashes of CPU), not the six
     * more the queue holds */
    if (took >= one_hash * 4) {
        fail_msg("stop took %lld us of CPU, one hash %lld us", (long long)took,
                 (long long)one_hash);
    }
    assert_int_equal(mqtt_auth_check(a, 9, fast, PW("s3cret")), 0x89);
    mqtt_auth_free(&a);
    /* the verdicts the workers had posted ran inside stop, dropped (ASan: no use after
     * free); the loop has nothing of the checker's left to run */
    for (int i = 0; i < 50; i++) {
        event_base_loop(e->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_int_equal(e->v.n, 0);
}

/* Free without a stop first, with checks in every state: a verdict already computed but
 * not delivered (the loop was not spun), one hash running, more queued. Nothing reaches
 * done, nothing is left in flight, the gauge is back to 0, the queued ones skip their
 * hash (free is about one hash, not the queue), and ASan sees no use after free. */
static void test_free_in_flight(void **state)
{
    struct env *e = *state;
    struct mqtt_auth *a = mqtt_auth_new(e->base, 1, 16, 16, on_done, &e->v);
    struct sl_metric *pending = sl_metric_gauge("sluice_mqtt_auth_pending", "", "");
    struct sl_metric *ok = sl_metric_counter("sluice_mqtt_auth_checks_total", "", "result=\"ok\"");
    int64_t ok0 = sl_metric_value(ok), t0, one_hash, took;

    assert_non_null(a);
    t0 = cpu_us(CLOCK_THREAD_CPUTIME_ID);
    assert_true(mqtt_password_ok(slow, PW("s3cret")));
    one_hash = cpu_us(CLOCK_THREAD_CPUTIME_ID) - t0;
    assert_int_equal(mqtt_auth_check(a, 1, fast, PW("s3cret")), MQTT_AUTH_PENDING);
    usleep(50000);    /* ticket 1 computed; its verdict waits for the loop */
    for (uint64_t t = 2; t <= 6; t++) {
        assert_int_equal(mqtt_auth_check(a, t, slow, PW("s3cret")), MQTT_AUTH_PENDING);
    }
    assert_int_equal(mqtt_auth_pending(a), 6);
    assert_int_equal(sl_metric_value(pending), 6);
    usleep(20000);    /* the worker is inside ticket 2's hash */
    t0 = cpu_us(CLOCK_PROCESS_CPUTIME_ID);
    mqtt_auth_free(&a);
    took = cpu_us(CLOCK_PROCESS_CPUTIME_ID) - t0;
    assert_null(a);
    /* the rest of ticket 2's hash (at most one hash of CPU), not the four queued */
    if (took >= one_hash * 5 / 2) {
        fail_msg("free took %lld us of CPU, one hash %lld us", (long long)took,
                 (long long)one_hash);
    }
    assert_int_equal(sl_metric_value(pending), 0);
    assert_int_equal(sl_metric_value(ok) - ok0, 0);   /* dropped verdicts are not counted */
    for (int i = 0; i < 50; i++) {
        event_base_loop(e->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_int_equal(e->v.n, 0);
}

static void test_inline_mode(void **state)
{
    struct env *e = *state;
    struct mqtt_auth *a = mqtt_auth_new(NULL, 2, 16, 16, on_done, &e->v);

    assert_non_null(a);
    assert_int_equal(mqtt_auth_check(a, 1, fast, PW("s3cret")), 0);
    assert_int_equal(mqtt_auth_check(a, 2, fast, PW("s3cres")), 0x86);
    assert_int_equal(mqtt_auth_check(a, 3, fast, PW("")), 0x86);
    assert_int_equal(mqtt_auth_pending(a), 0);
    assert_int_equal(e->v.n, 0);
    mqtt_auth_free(&a);
}

static void test_password_ok(void **state)
{
    (void)state;
    assert_true(mqtt_password_ok(fast, PW("s3cret")));
    assert_false(mqtt_password_ok(fast, PW("s3cres")));
    assert_false(mqtt_password_ok("pbkdf2-sha256$1000$c2FsdA==", PW("s3cret")));
    assert_false(mqtt_password_ok("pbkdf2-sha256$99999999$c2FsdA==$AAAA", PW("x")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_verdicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_mode, setup, teardown),
        cmocka_unit_test(test_password_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

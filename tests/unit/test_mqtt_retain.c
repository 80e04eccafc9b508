/*
 * Unit tests for the retained store's compaction (adapters/mqtt/mqtt_retain.c): when it
 * triggers, that the topic stays bounded, that sets arriving meanwhile keep their order,
 * and that a copy of the data directory taken at each stage (what kill -9 there leaves)
 * replays to the same retained messages.
 */
#include <errno.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "adapters/mqtt/mqtt_retain.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/log/log.h"

#include "fixture.h"

#define N_STAGES 3

struct fixture {
    char dir[64];
    struct sl_gateway gw;
    struct sl_config *cfg;
    struct mqtt_retain *r;
    /* stage copies (hook) */
    char stage_dir[N_STAGES + 1][96];
    char stage_mid[96];                  /* stage 2 plus the start file: mid-deletion */
    bool started;                        /* the hook saw a compaction begin */
    char expect[N_STAGES + 1][4][48];    /* dev/0..2 and dev/gone at each stage */
};

static struct fixture *hook_fixture;

static const char *const topics[4] = { "dev/0", "dev/1", "dev/2", "dev/gone" };

static void open_store(struct fixture *f, const char *dir)
{
    char *err = NULL;

    memset(&f->gw, 0, sizeof(f->gw));
    fx_gw_open(&f->gw, &f->cfg, dir, 1);
    f->r = mqtt_retain_open(&f->gw, &err);
    if (f->r == NULL) {
        fprintf(stderr, "mqtt_retain_open: %s\n", err ? err : "?");
    }
    free(err);
    assert_non_null(f->r);
}

static void close_store(struct fixture *f)
{
    mqtt_retain_free(&f->r);
    fx_gw_close(&f->gw, &f->cfg);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_non_null(fx_tmpdir(f->dir, "/tmp/test_mqtt_retain."));
    open_store(f, f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mqtt_retain_compact_hook = NULL;
    hook_fixture = NULL;
    if (f->r != NULL) {
        close_store(f);
    }
    fx_rm_tree(f->dir);
    for (int i = 1; i <= N_STAGES; i++) {
        if (f->stage_dir[i][0] != '\0') {
            fx_rm_tree(f->stage_dir[i]);
        }
    }
    if (f->stage_mid[0] != '\0') {
        fx_rm_tree(f->stage_mid);
    }
    free(f);
    return 0;
}

struct acks {
    int n;
    int errors;
    int issued;
    struct fixture *late_f;              /* issue one more set from inside a callback */
    int late_at;
};

static void set_value(struct fixture *f, const char *topic, const char *value,
                      struct acks *a);

static void on_set(void *arg, int status)
{
    struct acks *a = arg;

    a->n++;
    a->errors += status != 0;
    if (a->late_f != NULL && a->n == a->late_at) {
        struct fixture *f = a->late_f;

        a->late_f = NULL;
        set_value(f, "dev/1", "late", a);
    }
}

/* A retained set of topic to value ("" clears). */
static void set_env(struct fixture *f, struct sl_env *env, const char *topic, const char *value,
                    struct acks *a)
{
    assert_int_equal(sl_env_set_attr(env, "subject", topic, strlen(topic)), 0);
    if (value[0] != '\0') {
        assert_int_equal(sl_env_set_data(env, value, strlen(value)), 0);
    }
    assert_int_equal(sl_env_add_header(env, "mqtt-retain", "1", 1), 0);
    a->issued++;
    assert_int_equal(mqtt_retain_set(f->r, env, on_set, a), 0);
}

static void set_value(struct fixture *f, const char *topic, const char *value, struct acks *a)
{
    struct sl_env *env = sl_env_new();

    assert_non_null(env);
    set_env(f, env, topic, value, a);
    sl_env_unref(&env);
}

static void pump(struct fixture *f, const int *flag, int want)
{
    for (int i = 0; i < 5000 && *flag < want; i++) {
        event_base_loop(f->gw.base, EVLOOP_NONBLOCK);
        if (*flag < want) {
            usleep(1000);
        }
    }
    assert_true(*flag >= want);
}

/* A few more loop turns: completions of a compaction still in flight. */
static void settle(struct fixture *f)
{
    for (int i = 0; i < 50; i++) {
        event_base_loop(f->gw.base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

/* The retained value of topic as text ("" if none). */
static const char *value_of(struct fixture *f, const char *topic, char *buf, size_t cap)
{
    const struct sl_env *env = mqtt_retain_get(f->r, topic);
    size_t n;

    buf[0] = '\0';
    if (env == NULL || env->data == NULL) {
        return buf;
    }
    n = env->data->len < cap - 1 ? env->data->len : cap - 1;
    memcpy(buf, env->data->data, n);
    buf[n] = '\0';
    return buf;
}

static struct sl_partition_info info(struct fixture *f)
{
    struct sl_partition_info pi;

    assert_int_equal(sl_log_partition_info(f->gw.log, MQTT_RETAIN_TOPIC, 0, &pi), 0);
    return pi;
}

/* Publish n sets round robin over dev/0..2 (value "v<i>"), with dev/gone set at 50 and
 * cleared at 60; acknowledged `every` at a time. */
static void fleet(struct fixture *f, int from, int n, int every, struct acks *a)
{
    for (int i = from; i < from + n; i++) {
        char v[32];

        snprintf(v, sizeof(v), "v%d", i);
        set_value(f, topics[i % 3], v, a);
        if (i == 50) {
            set_value(f, "dev/gone", "here", a);
        } else if (i == 60) {
            set_value(f, "dev/gone", "", a);
        }
        if ((i + 1) % every == 0) {
            pump(f, &a->n, a->issued);
        }
    }
}

static void check_latest(struct fixture *f, int last)
{
    char buf[48], want[32];

    for (int k = 0; k < 3; k++) {
        int i = last - ((last - k) % 3 + 3) % 3;     /* the last i <= last with i % 3 == k */

        snprintf(want, sizeof(want), "v%d", i);
        assert_string_equal(value_of(f, topics[k], buf, sizeof(buf)), want);
    }
    assert_null(mqtt_retain_get(f->r, "dev/gone"));
    assert_int_equal(mqtt_retain_count(f->r), 3);
}

/* ---- tests ---- */

static void test_compaction_bounds_the_topic(void **state)
{
    struct fixture *f = *state;
    struct acks a = { 0 };
    struct sl_partition_info pi;

    fleet(f, 0, 3000, 100, &a);
    pump(f, &a.n, 3002);
    settle(f);
    assert_int_equal(a.errors, 0);
    pi = info(f);
    assert_true(mqtt_retain_compactions(f->r) >= 2);
    assert_true(pi.log_start_offset > 0);
    /* every set, plus the 3 live records each compaction re-appended */
    assert_int_equal(pi.high_watermark, 3002 + 3 * (int64_t)mqtt_retain_compactions(f->r));
    /* bounded: at most the trigger (2 x 3 + 1000) plus one acknowledged batch */
    assert_true(pi.high_watermark - pi.log_start_offset <= 2 * 3 + 1000 + 100);
    assert_true(pi.segments <= 2);
    check_latest(f, 2999);

    /* a normal restart replays the same */
    close_store(f);
    open_store(f, f->dir);
    check_latest(f, 2999);
    pi = info(f);
    assert_true(pi.log_start_offset > 0);
}

static void test_no_compaction_below_floor(void **state)
{
    struct fixture *f = *state;
    struct acks a = { 0 };

    fleet(f, 0, 900, 100, &a);
    pump(f, &a.n, 902);
    settle(f);
    assert_int_equal(mqtt_retain_compactions(f->r), 0);
    assert_int_equal(info(f).log_start_offset, 0);
    check_latest(f, 899);
}

/* Settings applied on every open: a topic found on disk gets the log's defaults first
 * (7 days of retention), which must not stay. */
static int on_cfg(void *arg, const char *topic, const struct sl_topic_config *cfg,
                  const struct sl_partition_info *parts, int32_t n)
{
    (void)topic;
    (void)parts;
    (void)n;
    *(struct sl_topic_config *)arg = *cfg;
    return 0;
}

static void test_topic_settings_on_reopen(void **state)
{
    struct fixture *f = *state;
    struct acks a = { 0 };
    struct sl_topic_config c;

    set_value(f, "dev/0", "x", &a);
    pump(f, &a.n, 1);
    close_store(f);
    open_store(f, f->dir);
    assert_int_equal(sl_log_describe(f->gw.log, MQTT_RETAIN_TOPIC, on_cfg, &c), 0);
    assert_int_equal(c.retention_ms, -1);
    assert_int_equal(c.retention_bytes, -1);
    assert_int_equal(c.flush, SL_FLUSH_ALWAYS);
    assert_int_equal(c.partitions, 1);
}

/* A set arriving while the store drains is held and lands after the live set. */
static void test_set_during_compaction_keeps_order(void **state)
{
    struct fixture *f = *state;
    struct acks a = { 0 };
    char buf[48];

    a.late_f = f;
    a.late_at = 500;                     /* inside the drain: 1100 sets in one fsync */
    for (int i = 0; i < 1100; i++) {
        char v[32];

        snprintf(v, sizeof(v), "v%d", i);
        set_value(f, topics[i % 3], v, &a);
    }
    pump(f, &a.n, 1101);
    settle(f);
    assert_int_equal(a.errors, 0);
    assert_int_equal(mqtt_retain_compactions(f->r), 1);
    assert_string_equal(value_of(f, "dev/1", buf, sizeof(buf)), "late");
    /* the log agrees: "late" follows the re-appended v1099-era value of dev/1 */
    assert_int_equal(info(f).high_watermark - info(f).log_start_offset, 4);
    close_store(f);
    open_store(f, f->dir);
    assert_string_equal(value_of(f, "dev/1", buf, sizeof(buf)), "late");
    assert_string_equal(value_of(f, "dev/0", buf, sizeof(buf)), "v1098");
    assert_string_equal(value_of(f, "dev/2", buf, sizeof(buf)), "v1097");
}

static void copy_dir(const char *from, const char *to)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
    assert_int_equal(system(cmd), 0);
}

/* At each stage: copy the data directory (a kill -9 there leaves exactly that: written
 * data survives in the page cache) and note what the store holds. */
static void stage_hook(struct mqtt_retain *r, int stage)
{
    struct fixture *f = hook_fixture;
    char buf[48];
    char base[64];

    if (f == NULL || stage < 1 || stage > N_STAGES || f->stage_dir[stage][0] != '\0') {
        return;
    }
    f->started = true;
    memcpy(base, f->dir, sizeof(base));
    snprintf(f->stage_dir[stage], sizeof(f->stage_dir[stage]), "%s-stage%d", base, stage);
    copy_dir(f->dir, f->stage_dir[stage]);
    for (int k = 0; k < 4; k++) {
        strcpy(f->expect[stage][k], value_of(f, topics[k], buf, sizeof(buf)));
    }
    if (stage == MQTT_RETAIN_STAGE_DURABLE) {
        /* mid-deletion: the start file committed, no segment deleted yet */
        struct sl_partition_info pi;
        char path[160];
        FILE *fp;

        assert_int_equal(sl_log_partition_info(f->gw.log, MQTT_RETAIN_TOPIC, 0, &pi), 0);
        snprintf(f->stage_mid, sizeof(f->stage_mid), "%s-mid", base);
        copy_dir(f->dir, f->stage_mid);
        snprintf(path, sizeof(path), "%s/%s-0/log-start-offset", f->stage_mid,
                 MQTT_RETAIN_TOPIC);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp, "%lld\n", (long long)(pi.high_watermark - (int64_t)mqtt_retain_count(r)));
        fclose(fp);
    }
}

static void check_copy(struct fixture *f, const char *dir, char expect[4][48])
{
    struct fixture g;
    char buf[48];
    size_t live = 0;

    memset(&g, 0, sizeof(g));
    open_store(&g, dir);
    for (int k = 0; k < 4; k++) {
        assert_string_equal(value_of(&g, topics[k], buf, sizeof(buf)), expect[k]);
        live += expect[k][0] != '\0';
    }
    assert_int_equal(mqtt_retain_count(g.r), live);
    close_store(&g);
    (void)f;
}

static void test_crash_at_each_stage(void **state)
{
    struct fixture *f = *state;
    struct acks a = { 0 };

    hook_fixture = f;
    mqtt_retain_compact_hook = stage_hook;
    /* one at a time, so nothing is in flight or held when it triggers, and none after
     * (a set written after the live set may show in a copy before it is acknowledged) */
    for (int i = 0; i < 1010 && !f->started; i++) {
        char v[32];

        snprintf(v, sizeof(v), "v%d", i);
        set_value(f, topics[i % 3], v, &a);
        if (i == 50) {
            set_value(f, "dev/gone", "here", &a);
        } else if (i == 60) {
            set_value(f, "dev/gone", "", &a);
        }
        pump(f, &a.n, a.issued);
    }
    settle(f);
    mqtt_retain_compact_hook = NULL;
    assert_int_equal(mqtt_retain_compactions(f->r), 1);
    for (int s = 1; s <= N_STAGES; s++) {
        assert_true(f->stage_dir[s][0] != '\0');
        assert_string_equal(f->expect[s][3], "");           /* dev/gone cleared */
        assert_true(f->expect[s][0][0] != '\0');
        check_copy(f, f->stage_dir[s], f->expect[s]);
    }
    check_copy(f, f->stage_mid, f->expect[MQTT_RETAIN_STAGE_DURABLE]);
}

static void test_expired_dropped(void **state)
{
    struct fixture *f = *state;
    struct acks a = { 0 };
    struct sl_env *env = sl_env_new();

    assert_non_null(env);
    assert_int_equal(sl_env_set_attr(env, "time", "2020-01-01T00:00:00Z", 20), 0);
    assert_int_equal(sl_env_add_header(env, "mqtt-message-expiry", "60", 2), 0);
    set_env(f, env, "old/expired", "stale", &a);
    sl_env_unref(&env);
    env = sl_env_new();
    assert_non_null(env);
    assert_int_equal(sl_env_add_header(env, "mqtt-message-expiry", "3600", 4), 0);
    set_env(f, env, "new/expiring", "fresh", &a);
    sl_env_unref(&env);
    pump(f, &a.n, 2);
    assert_int_equal(mqtt_retain_count(f->r), 2);
    fleet(f, 0, 1100, 100, &a);
    pump(f, &a.n, 1104);
    settle(f);
    assert_true(mqtt_retain_compactions(f->r) >= 1);
    assert_null(mqtt_retain_get(f->r, "old/expired"));
    assert_non_null(mqtt_retain_get(f->r, "new/expiring"));
    close_store(f);
    open_store(f, f->dir);
    assert_null(mqtt_retain_get(f->r, "old/expired"));
    assert_non_null(mqtt_retain_get(f->r, "new/expiring"));
    assert_int_equal(mqtt_retain_count(f->r), 4);
}

/* Freed with appends pending: their callbacks still answer the caller (ASan: no use
 * after free). */
static void test_free_with_pending(void **state)
{
    struct fixture *f = *state;
    struct acks a = { 0 };

    set_value(f, "dev/0", "x", &a);
    set_value(f, "dev/1", "y", &a);
    mqtt_retain_free(&f->r);
    assert_null(f->r);
    assert_int_equal(a.n, 0);
    fx_gw_close(&f->gw, &f->cfg);        /* fires the pending callbacks */
    assert_int_equal(a.n, 2);
    assert_int_equal(a.errors, 0);
    open_store(f, f->dir);
    assert_int_equal(mqtt_retain_count(f->r), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compaction_bounds_the_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_compaction_below_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topic_settings_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_during_compaction_keeps_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_at_each_stage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Bridges without a broker: reconnect backoff, loop-prevention marks, the egress
 * acknowledgement window, URL mapping, the kind registry.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/mqtt/mqtt_bridge.h"
#include "gateway/bridge.h"
#include "gateway/envelope.h"
#include "gateway/log/recordbatch.h"

static void test_backoff_bounds(void **state)
{
    (void)state;
    /* attempt 0: within [min/2, min] */
    for (uint32_t r = 0; r < 1000; r += 7) {
        int64_t d = sl_bridge_backoff_ms(100, 30000, 0, r);
        assert_true(d >= 50 && d <= 100);
    }
    /* doubling: attempt 3 of 100 ms is within [400, 800] */
    for (uint32_t r = 0; r < 1000; r += 13) {
        int64_t d = sl_bridge_backoff_ms(100, 30000, 3, r);
        assert_true(d >= 400 && d <= 800);
    }
    /* capped: any large attempt stays within [max/2, max], no overflow */
    for (unsigned a = 10; a < 200; a += 17) {
        int64_t d = sl_bridge_backoff_ms(100, 30000, a, 0xffffffffu);
        assert_true(d >= 15000 && d <= 30000);
    }
    /* jitter actually varies with the random input */
    assert_int_not_equal(sl_bridge_backoff_ms(1000, 1000, 0, 1),
                         sl_bridge_backoff_ms(1000, 1000, 0, 300));
    /* degenerate inputs: max < min acts as min; min < 1 as 1 */
    assert_true(sl_bridge_backoff_ms(500, 10, 5, 0) >= 250);
    assert_true(sl_bridge_backoff_ms(500, 10, 5, 0) <= 500);
    assert_true(sl_bridge_backoff_ms(0, 0, 0, 12345) >= 1);
    assert_true(sl_bridge_backoff_ms(INT64_MAX / 2, INT64_MAX, 70, 99) <= INT64_MAX);
}

/* Encode one record with the given headers and decode it back into *rec (views into
 * the builder's buffer). */
static struct sl_rb_batch batch;         /* the iterator keeps a pointer to it */

static void make_record(struct sl_rb_builder *bld, const struct sl_hdr *hdrs, size_t n,
                        struct sl_record *rec)
{
    struct sl_rec_in in = {.timestamp = 1, .key_len = -1, .value = (const uint8_t *)"v",
                           .value_len = 1, .headers = hdrs, .n_headers = n};
    struct sl_rb_iter it;
    const uint8_t *buf;
    size_t len;

    sl_rb_builder_reset(bld, 0);
    assert_int_equal(sl_rb_builder_add(bld, &in), 0);
    buf = sl_rb_builder_finish(bld, &len);
    assert_int_equal(sl_rb_parse(buf, len, &batch), 0);
    sl_rb_iter_init(&it, &batch);
    assert_int_equal(sl_rb_iter_next(&it, rec), 1);
}

static void test_record_from(void **state)
{
    struct sl_rb_builder bld;
    struct sl_record rec;
    struct sl_hdr h[2] = {
        {.name = "x", .name_len = 1, .value = (const uint8_t *)"edge", .value_len = 4},
        {.name = SL_BRIDGE_HEADER, .name_len = strlen(SL_BRIDGE_HEADER),
         .value = (const uint8_t *)"edge", .value_len = 4},
    };
    (void)state;
    sl_rb_builder_init(&bld);
    make_record(&bld, h, 2, &rec);
    assert_true(sl_bridge_record_from(&rec, "edge"));
    assert_false(sl_bridge_record_from(&rec, "edg"));
    assert_false(sl_bridge_record_from(&rec, "edge2"));
    assert_false(sl_bridge_record_from(&rec, "other"));
    make_record(&bld, h, 1, &rec);      /* "x: edge" alone is not the mark */
    assert_false(sl_bridge_record_from(&rec, "edge"));
    make_record(&bld, NULL, 0, &rec);
    assert_false(sl_bridge_record_from(&rec, "edge"));
    sl_rb_builder_free(&bld);
}

static void test_env_from(void **state)
{
    struct sl_env *env = sl_env_new();
    (void)state;
    assert_non_null(env);
    assert_false(sl_bridge_env_from(env, "edge"));
    assert_int_equal(sl_env_add_header(env, SL_BRIDGE_HEADER, "edge", 4), 0);
    assert_true(sl_bridge_env_from(env, "edge"));
    assert_false(sl_bridge_env_from(env, "legacy"));
    assert_int_equal(sl_env_add_header(env, SL_BRIDGE_HEADER, NULL, -1), 0);
    assert_false(sl_bridge_env_from(env, ""));
    sl_env_unref(&env);
    assert_null(env);
}

static void test_group_and_kinds(void **state)
{
    char g[32];
    (void)state;
    assert_int_equal(sl_bridge_group_name("edge", g, sizeof(g)), 13);
    assert_string_equal(g, "__bridge.edge");
    assert_ptr_equal(sl_bridge_kind("mqtt"), &mqtt_bridge_ops);
    assert_null(sl_bridge_kind("amqp"));
    assert_null(sl_bridge_kind("kafka"));
    assert_null(sl_bridge_kind(NULL));
    assert_string_equal(sl_bridge_type_name(SL_BRIDGE_MQTT), "mqtt");
    assert_string_equal(sl_bridge_type_name(SL_BRIDGE_AMQP), "amqp");
}

static void test_url(void **state)
{
    char out[64];
    bool tls = true;
    (void)state;
    assert_int_equal(mqtt_bridge_url("mqtt://127.0.0.1:1883", out, sizeof(out), &tls), 0);
    assert_string_equal(out, "tcp://127.0.0.1:1883");
    assert_false(tls);
    assert_int_equal(mqtt_bridge_url("mqtts://broker:8883", out, sizeof(out), &tls), 0);
    assert_string_equal(out, "ssl://broker:8883");
    assert_true(tls);
    assert_int_equal(mqtt_bridge_url("wss://h/mqtt", out, sizeof(out), &tls), 0);
    assert_string_equal(out, "wss://h/mqtt");
    assert_int_equal(mqtt_bridge_url("ws://h:80", out, sizeof(out), &tls), 0);
    assert_false(tls);
    assert_int_equal(mqtt_bridge_url("amqp://h", out, sizeof(out), &tls), -EINVAL);
    assert_int_equal(mqtt_bridge_url("mqtt://", out, sizeof(out), &tls), -EINVAL);
    assert_int_equal(mqtt_bridge_url("mqtt://:1883", out, sizeof(out), &tls), -EINVAL);
    assert_int_equal(mqtt_bridge_url("mqtt://a-very-long-host-name:1883", out, 12, &tls),
                     -ENOSPC);
}

static void test_window_in_order(void **state)
{
    struct mqtt_bridge_window w;
    (void)state;
    assert_int_equal(mqtt_bridge_window_init(&w, 3, 10), 0);
    assert_int_equal(w.acked, 10);
    assert_int_equal(mqtt_bridge_window_push(&w, 10, 1), 0);
    assert_int_equal(mqtt_bridge_window_push(&w, 11, 1), 0);
    assert_int_equal(mqtt_bridge_window_push(&w, 12, 2), 0);
    assert_true(mqtt_bridge_window_full(&w));
    assert_int_equal(mqtt_bridge_window_push(&w, 13, 1), -ENOSPC);
    /* acks out of order: 11 first does not move acked past 10 */
    assert_true(mqtt_bridge_window_ack(&w, 11));
    assert_int_equal(w.acked, 10);
    assert_true(mqtt_bridge_window_ack(&w, 10));
    assert_int_equal(w.acked, 12);          /* 10 and 11 done */
    assert_true(mqtt_bridge_window_ack(&w, 12));
    assert_int_equal(w.acked, 12);          /* one of two sends of 12 */
    assert_false(mqtt_bridge_window_ack(&w, 11));   /* stale */
    assert_true(mqtt_bridge_window_ack(&w, 12));
    assert_int_equal(w.acked, 13);
    assert_false(mqtt_bridge_window_full(&w));
    assert_false(mqtt_bridge_window_ack(&w, 12));   /* already done */
    mqtt_bridge_window_free(&w);
    mqtt_bridge_window_free(NULL);
}

static void test_window_skips_and_wrap(void **state)
{
    struct mqtt_bridge_window w;
    (void)state;
    assert_int_equal(mqtt_bridge_window_init(&w, 2, 0), 0);
    /* a record with nothing to send, on an empty window, is done at once */
    assert_int_equal(mqtt_bridge_window_push(&w, 0, 0), 0);
    assert_int_equal(w.acked, 1);
    /* behind an unconfirmed one it waits its turn */
    assert_int_equal(mqtt_bridge_window_push(&w, 1, 1), 0);
    assert_int_equal(mqtt_bridge_window_push(&w, 2, 0), 0);
    assert_int_equal(w.acked, 1);
    assert_true(mqtt_bridge_window_ack(&w, 1));
    assert_int_equal(w.acked, 3);
    /* many rounds through the ring: bounded loop */
    for (int64_t off = 3; off < 103; off++) {
        assert_int_equal(mqtt_bridge_window_push(&w, off, 1), 0);
        assert_true(mqtt_bridge_window_ack(&w, off));
        assert_int_equal(w.acked, off + 1);
    }
    /* a connection loss: forget the in-flight, keep the confirmed position */
    assert_int_equal(mqtt_bridge_window_push(&w, 103, 1), 0);
    assert_int_equal(mqtt_bridge_window_push(&w, 104, 1), 0);
    assert_true(mqtt_bridge_window_ack(&w, 104));
    mqtt_bridge_window_reset(&w);
    assert_int_equal(w.acked, 103);          /* 103 unconfirmed: resend from it */
    assert_false(mqtt_bridge_window_ack(&w, 103));   /* late ack of the old round */
    assert_int_equal(w.acked, 103);
    mqtt_bridge_window_free(&w);
    assert_int_equal(mqtt_bridge_window_init(&w, 0, 0), -EINVAL);   /* no room at all */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_record_from),
        cmocka_unit_test(test_env_from),
        cmocka_unit_test(test_group_and_kinds),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_window_in_order),
        cmocka_unit_test(test_window_skips_and_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

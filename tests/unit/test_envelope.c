/* Envelope: refcounting, CloudEvents attributes, RFC 3339, the Kafka binding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/envelope.h"
#include "gateway/log/recordbatch.h"

static void test_buf_refcount_shared(void **state)
{
    (void)state;
    struct sl_buf *b = sl_buf_new("hello", 5);
    assert_non_null(b);
    assert_int_equal(b->len, 5);
    assert_int_equal(b->data[5], '\0');
    struct sl_buf *r = sl_buf_ref(b);
    assert_ptr_equal(r, b);                      /* shared, not copied */
    assert_int_equal(atomic_load(&b->refs), 2);
    sl_buf_unref(&r);
    assert_null(r);
    assert_int_equal(atomic_load(&b->refs), 1);
    sl_buf_unref(&b);
    assert_null(b);
    sl_buf_unref(&b);                            /* NULL is a no-op */
}

static void test_env_data_shared_across_envelopes(void **state)
{
    (void)state;
    struct sl_buf *payload = sl_buf_new("payload", 7);
    struct sl_env *a = sl_env_new();
    struct sl_env *b = sl_env_new();
    sl_env_set_data_buf(a, payload);
    sl_env_set_data_buf(b, payload);
    assert_ptr_equal(a->data, b->data);
    assert_int_equal(atomic_load(&payload->refs), 3);
    sl_env_unref(&a);
    assert_int_equal(atomic_load(&payload->refs), 2);
    struct sl_env *b2 = sl_env_ref(b);
    sl_env_unref(&b);
    assert_int_equal(atomic_load(&payload->refs), 2);   /* b2 keeps the envelope alive */
    sl_env_unref(&b2);
    assert_int_equal(atomic_load(&payload->refs), 1);
    sl_buf_unref(&payload);
}

static void test_attrs(void **state)
{
    (void)state;
    struct sl_env *e = sl_env_new();
    assert_int_equal(sl_env_set_attr(e, "id", "abc", 3), 0);
    assert_int_equal(sl_env_set_attr(e, "specversion", "1.0", 3), 0);
    assert_int_equal(sl_env_set_attr(e, "specversion", "0.3", 3), -EINVAL);
    assert_int_equal(sl_env_set_attr(e, "id", "", 0), -EINVAL);
    assert_int_equal(sl_env_set_attr(e, "time", "yesterday", 9), -EINVAL);
    assert_int_equal(sl_env_set_attr(e, "time", "2024-02-29T12:00:00.5+01:00", 27), 0);
    assert_int_equal(e->timestamp_ms, 1709204400500LL);
    assert_int_equal(sl_env_set_attr(e, "traceparent", "00-ab", 5), 0);
    assert_int_equal(sl_env_set_attr(e, "Bad-Name", "x", 1), -EINVAL);
    assert_int_equal(sl_env_set_attr(e, "waytoolongextensionname", "x", 1), -EINVAL);
    assert_int_equal(sl_env_set_attr(e, "traceparent", "00-cd", 5), 0);  /* replaces */
    assert_int_equal(e->n_ext, 1);
    assert_string_equal(sl_env_get_attr(e, "traceparent"), "00-cd");
    assert_string_equal(sl_env_get_attr(e, "id"), "abc");
    assert_string_equal(sl_env_get_attr(e, "specversion"), "1.0");
    assert_null(sl_env_get_attr(e, "subject"));
    sl_env_unref(&e);
}

/* Strings live in a small arena inside the envelope while they fit, on the heap beyond
 * it; replacing, overflowing and freeing must all work (run under ASan too). */
static void test_attr_storage(void **state)
{
    (void)state;
    struct sl_env *e = sl_env_new();
    char big[600];
    char name[16];

    memset(big, 'b', sizeof(big));
    assert_int_equal(sl_env_set_attr(e, "id", "first", 5), 0);
    assert_int_equal(sl_env_set_attr(e, "id", "second", 6), 0);
    assert_int_equal(sl_env_set_attr(e, "source", big, sizeof(big)), 0);   /* heap */
    assert_int_equal(sl_env_set_attr(e, "source", "/small", 6), 0);        /* arena */
    assert_int_equal(sl_env_set_attr(e, "subject", big, 200), 0);
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "ext%d", i);
        assert_int_equal(sl_env_set_attr(e, name, big, (size_t)(i * 7)), 0);
        assert_int_equal(sl_env_add_header(e, name, "v", 1), 0);
    }
    assert_int_equal(sl_env_set_origin(e, "http", "listener", "/topics/t"), 0);
    assert_int_equal(sl_env_set_attr(e, "ext3", "again", 5), 0);
    assert_int_equal(sl_env_finalize(e), 0);
    assert_string_equal(sl_env_get_attr(e, "id"), "second");
    assert_string_equal(sl_env_get_attr(e, "source"), "/small");
    assert_int_equal(strlen(sl_env_get_attr(e, "subject")), 200);
    assert_string_equal(sl_env_get_attr(e, "ext3"), "again");
    assert_int_equal(strlen(sl_env_get_attr(e, "ext11")), 77);
    assert_string_equal(e->ext[11].header_name, "ce_ext11");
    assert_string_equal(e->headers[11].name, "ext11");
    assert_string_equal(e->origin_name, "listener");
    assert_string_equal(e->destination, "/topics/t");
    assert_string_equal(sl_env_get_attr(e, "type"), "io.sluice.message");
    {
        struct sl_env *r = sl_env_ref(e);
        sl_env_unref(&e);
        assert_null(e);
        assert_string_equal(sl_env_get_attr(r, "id"), "second");
        sl_env_unref(&r);
    }
}

/* sl_env_set_attr_at sets the same field, with the same checks, as sl_env_set_attr. */
static void test_attr_at(void **state)
{
    (void)state;
    struct sl_env *e = sl_env_new();
    static const char *const names[] = {"id", "source", "type", "subject", "time",
                                        "datacontenttype", "dataschema"};

    for (int a = SL_ATTR_ID; a <= SL_ATTR_DATASCHEMA; a++) {
        const char *v = a == SL_ATTR_TIME ? "2024-01-02T03:04:05.678Z" : names[a];
        assert_int_equal(sl_env_set_attr_at(e, (enum sl_env_attr)a, v, strlen(v), true), 0);
        assert_string_equal(sl_env_get_attr(e, names[a]), v);
    }
    assert_int_equal(e->timestamp_ms, 1704164645678LL);
    assert_int_equal(sl_env_set_attr_at(e, SL_ATTR_SUBJECT, "a\0b", 3, false), -EINVAL);
    assert_string_equal(e->subject, "subject");
    assert_int_equal(sl_env_set_attr_at(e, SL_ATTR_ID, "", 0, true), -EINVAL);
    assert_int_equal(sl_env_set_attr_at(e, SL_ATTR_TIME, "yesterday", 9, true), -EINVAL);
    assert_int_equal(sl_env_set_attr_at(e, (enum sl_env_attr)99, "x", 1, true), -EINVAL);
    assert_int_equal(sl_env_set_attr_at(e, SL_ATTR_SUBJECT, "s/2xyz", 3, true), 0);
    assert_string_equal(e->subject, "s/2");
    sl_env_unref(&e);
}

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ms;
    char buf[32];
    assert_int_equal(sl_rfc3339_parse_ms("1970-01-01T00:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(sl_rfc3339_parse_ms("2026-11-25T16:01:35.123Z", 24, &ms), 0);
    sl_rfc3339_format_ms(ms, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-25T16:01:35.123Z");
    assert_int_equal(sl_rfc3339_parse_ms("2026-11-25T17:01:35.123+01:00", 29, &ms), 0);
    sl_rfc3339_format_ms(ms, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-25T16:01:35.123Z");
    assert_int_equal(sl_rfc3339_parse_ms("2026-13-01T00:00:00Z", 20, &ms), -EINVAL);
    assert_int_equal(sl_rfc3339_parse_ms("2026-02-30T00:00:00Z", 20, &ms), -EINVAL);
    assert_int_equal(sl_rfc3339_parse_ms("2026-01-01 00:00:00Z", 20, &ms), -EINVAL);
    assert_int_equal(sl_rfc3339_parse_ms("2026-01-01T00:00:00", 19, &ms), -EINVAL);
    assert_int_equal(sl_rfc3339_parse_ms("2026-01-01T00:00:00.Z", 21, &ms), -EINVAL);
    assert_int_equal(sl_rfc3339_parse_ms("2026-01-01T00:00:00Zjunk", 24, &ms), -EINVAL);
}

/* The hand-written formatter agrees with gmtime_r over a wide range. */
static void test_rfc3339_format_matches_gmtime(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t)(x % 253402300799000ULL);      /* 1970 .. 9999 */
        char mine[32], ref[96];
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(ref, sizeof(ref), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
        sl_rfc3339_format_ms(ms, mine, sizeof(mine));
        assert_string_equal(mine, ref);
        int64_t back;
        assert_int_equal(sl_rfc3339_parse_ms(mine, strlen(mine), &back), 0);
        assert_int_equal(back, ms);
    }
    char small[8];
    sl_rfc3339_format_ms(0, small, sizeof(small));
    assert_string_equal(small, "1970-01");                  /* truncated, terminated */
    char neg[32];
    sl_rfc3339_format_ms(-1, neg, sizeof(neg));
    assert_string_equal(neg, "1969-12-31T23:59:59.999Z");
}

static void test_ids_unique_v4(void **state)
{
    (void)state;
    enum { N = 5000 };
    char (*ids)[37] = calloc(N, 37);
    for (int i = 0; i < N; i++) {
        struct sl_env *e = sl_env_new();
        assert_int_equal(sl_env_finalize(e), 0);
        assert_int_equal(strlen(e->id), 36);
        assert_int_equal(e->id[8], '-');
        assert_int_equal(e->id[14], '4');
        assert_non_null(strchr("89ab", e->id[19]));
        memcpy(ids[i], e->id, 37);
        sl_env_unref(&e);
    }
    qsort(ids, N, 37, (int (*)(const void *, const void *))strcmp);
    for (int i = 1; i < N; i++) {
        assert_string_not_equal(ids[i - 1], ids[i]);
    }
    free(ids);
}

static void test_finalize_fills_missing(void **state)
{
    (void)state;
    struct sl_env *e = sl_env_new();
    sl_env_set_origin(e, "mqtt", "mqtt", "a/b");
    assert_int_equal(sl_env_finalize(e), 0);
    assert_non_null(e->id);
    assert_int_equal(strlen(e->id), 36);
    assert_int_equal(e->id[14], '4');                     /* UUID v4 */
    assert_string_equal(e->source, "/sluice/mqtt/mqtt");
    assert_string_equal(e->type, "io.sluice.message");
    assert_non_null(e->time);
    assert_true(e->timestamp_ms > 1700000000000LL);
    char *id = strdup(e->id);
    assert_int_equal(sl_env_finalize(e), 0);              /* idempotent */
    assert_string_equal(e->id, id);
    free(id);
    struct sl_env *f = sl_env_new();
    sl_env_finalize(f);
    assert_string_not_equal(f->id, e->id);
    sl_env_unref(&e);
    sl_env_unref(&f);
}

/* The generated id's layout (8-4-4-4-12 lower-case hex, version 4, RFC 4122 variant) and
 * the default source: no origin, a long origin name (heap, cut at 299 bytes). */
static void test_finalize_id_and_source(void **state)
{
    (void)state;
    char name[400];
    struct sl_env *e = sl_env_new();

    assert_int_equal(sl_env_finalize(e), 0);
    assert_int_equal(strlen(e->id), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(e->id[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", e->id[i]));
        }
    }
    assert_int_equal(e->id[14], '4');
    assert_non_null(strchr("89ab", e->id[19]));
    assert_string_equal(e->source, "/sluice/core/default");
    sl_env_unref(&e);

    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    e = sl_env_new();
    assert_int_equal(sl_env_set_origin(e, "http", name, NULL), 0);
    assert_int_equal(sl_env_finalize(e), 0);
    assert_int_equal(strlen(e->source), 299);
    assert_memory_equal(e->source, "/sluice/http/nnn", 16);
    sl_env_unref(&e);

    name[299 - 13] = '\0';                /* exactly 299: still whole */
    e = sl_env_new();
    assert_int_equal(sl_env_set_origin(e, "http", name, NULL), 0);
    assert_int_equal(sl_env_finalize(e), 0);
    assert_int_equal(strlen(e->source), 299);
    assert_int_equal(e->source[298], 'n');
    sl_env_unref(&e);
}

/* Build the record, encode it into a real RecordBatch, decode, map back. */
static void test_kafka_binding_round_trip(void **state)
{
    (void)state;
    struct sl_env *e = sl_env_new();
    assert_int_equal(sl_env_set_attr(e, "id", "id-1", 4), 0);
    assert_int_equal(sl_env_set_attr(e, "source", "/src", 4), 0);
    assert_int_equal(sl_env_set_attr(e, "type", "t.x", 3), 0);
    assert_int_equal(sl_env_set_attr(e, "subject", "orders/eu", 9), 0);
    assert_int_equal(sl_env_set_attr(e, "time", "2025-01-02T03:04:05.678Z", 24), 0);
    assert_int_equal(sl_env_set_attr(e, "datacontenttype", "application/json", 16), 0);
    assert_int_equal(sl_env_set_attr(e, "partitionkey", "k1", 2), 0);
    assert_int_equal(sl_env_add_header(e, "x-trace", "t1", 2), 0);
    assert_int_equal(sl_env_add_header(e, "x-null", NULL, -1), 0);
    assert_int_equal(sl_env_add_header(e, "x-trace", "t2", 2), 0);   /* repeated, ordered */
    assert_int_equal(sl_env_set_key(e, "k1", 2), 0);
    assert_int_equal(sl_env_set_data(e, "{\"a\":1}", 7), 0);
    assert_int_equal(sl_env_finalize(e), 0);

    size_t nh = sl_env_record_headers(e);
    struct sl_hdr *hdrs = calloc(nh, sizeof(*hdrs));
    struct sl_rec_in rec;
    sl_env_to_record(e, hdrs, &rec);
    assert_true(rec.n_headers <= nh);
    assert_int_equal(rec.timestamp, 1735787045678LL);
    assert_memory_equal(hdrs[0].name, "ce_specversion", 14);

    struct sl_rb_builder b;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, 42);
    assert_int_equal(sl_rb_builder_add(&b, &rec), 0);
    size_t len;
    const uint8_t *bytes = sl_rb_builder_finish(&b, &len);
    struct sl_rb_batch batch;
    assert_int_equal(sl_rb_parse(bytes, len, &batch), SL_RB_OK);
    struct sl_rb_iter it;
    struct sl_record out;
    sl_rb_iter_init(&it, &batch);
    assert_int_equal(sl_rb_iter_next(&it, &out), 1);

    struct sl_env *d = sl_env_from_record(&out, 3);
    assert_non_null(d);
    assert_int_equal(d->partition, 3);
    assert_int_equal(d->offset, 42);
    assert_string_equal(d->id, "id-1");
    assert_string_equal(d->source, "/src");
    assert_string_equal(d->type, "t.x");
    assert_string_equal(d->subject, "orders/eu");
    assert_string_equal(d->time, "2025-01-02T03:04:05.678Z");
    assert_string_equal(d->datacontenttype, "application/json");
    assert_string_equal(sl_env_get_attr(d, "partitionkey"), "k1");
    assert_int_equal(d->timestamp_ms, 1735787045678LL);
    assert_int_equal(d->n_headers, 3);
    assert_string_equal(d->headers[0].name, "x-trace");
    assert_string_equal((const char *)d->headers[0].value->data, "t1");
    assert_null(d->headers[1].value);
    assert_string_equal((const char *)d->headers[2].value->data, "t2");
    assert_int_equal(d->key->len, 2);
    assert_memory_equal(d->key->data, "k1", 2);
    assert_int_equal(d->data->len, 7);
    assert_memory_equal(d->data->data, "{\"a\":1}", 7);
    sl_env_unref(&d);
    sl_rb_builder_free(&b);
    free(hdrs);
    sl_env_unref(&e);
}

/* A record from a foreign producer: no ce_ headers, a non-attribute ce_ header. */
static void test_foreign_record(void **state)
{
    (void)state;
    struct sl_hdr h[2] = {
        {.name = "ce_Bad", .name_len = 6, .value = (const uint8_t *)"v", .value_len = 1},
        {.name = "app", .name_len = 3, .value = (const uint8_t *)"1", .value_len = 1},
    };
    struct sl_rec_in rec = {.timestamp = 5, .key = NULL, .key_len = -1,
                            .value = (const uint8_t *)"x", .value_len = 1,
                            .headers = h, .n_headers = 2};
    struct sl_rb_builder b;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, 0);
    assert_int_equal(sl_rb_builder_add(&b, &rec), 0);
    size_t len;
    const uint8_t *bytes = sl_rb_builder_finish(&b, &len);
    struct sl_rb_batch batch;
    struct sl_rb_iter it;
    struct sl_record out;
    assert_int_equal(sl_rb_parse(bytes, len, &batch), SL_RB_OK);
    sl_rb_iter_init(&it, &batch);
    assert_int_equal(sl_rb_iter_next(&it, &out), 1);
    struct sl_env *d = sl_env_from_record(&out, 0);
    assert_non_null(d);
    assert_null(d->id);
    assert_null(d->key);
    assert_int_equal(d->n_headers, 2);                   /* kept as plain headers */
    assert_string_equal(d->headers[0].name, "ce_Bad");
    assert_string_equal(d->headers[1].name, "app");
    sl_env_unref(&d);
    sl_rb_builder_free(&b);
}

/* The arrival time given by the caller, formatted per millisecond: a finalize in the
 * next millisecond (also across a second) gets that millisecond's text, not the last
 * one formatted; an event that has its time reads no clock. */
static void test_finalize_now_time(void **state)
{
    (void)state;
    const int64_t ms[] = {1700000000999LL, 1700000000999LL, 1700000001000LL,
                          1700000000999LL, 1700006400000LL, 1700006399999LL};
    const char *want[] = {"2023-11-14T22:13:20.999Z", "2023-11-14T22:13:20.999Z",
                          "2023-11-14T22:13:21.000Z", "2023-11-14T22:13:20.999Z",
                          "2023-11-15T00:00:00.000Z", "2023-11-14T23:59:59.999Z"};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        struct sl_env *e = sl_env_new();
        int64_t now = ms[i];
        assert_int_equal(sl_env_finalize_now(e, &now), 0);
        assert_string_equal(e->time, want[i]);
        assert_int_equal(e->timestamp_ms, ms[i]);
        assert_int_equal(now, ms[i]);
        sl_env_unref(&e);
    }
    /* -1: the clock is read once, kept for the next envelope */
    int64_t now = -1;
    struct sl_env *a = sl_env_new();
    struct sl_env *b = sl_env_new();
    assert_int_equal(sl_env_set_attr(a, "time", "2025-01-02T03:04:05.678Z", 24), 0);
    assert_int_equal(sl_env_finalize_now(a, &now), 0);
    assert_int_equal(now, -1);                              /* not needed: not read */
    assert_int_equal(sl_env_finalize_now(b, &now), 0);
    assert_true(now > 1700000000000LL);
    assert_int_equal(b->timestamp_ms, now);
    char text[32];
    sl_rfc3339_format_ms(now, text, sizeof(text));
    assert_string_equal(b->time, text);
    sl_env_unref(&a);
    sl_env_unref(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_refcount_shared),
        cmocka_unit_test(test_env_data_shared_across_envelopes),
        cmocka_unit_test(test_attrs),
        cmocka_unit_test(test_attr_storage),
        cmocka_unit_test(test_attr_at),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_rfc3339_format_matches_gmtime),
        cmocka_unit_test(test_ids_unique_v4),
        cmocka_unit_test(test_finalize_fills_missing),
        cmocka_unit_test(test_finalize_now_time),
        cmocka_unit_test(test_finalize_id_and_source),
        cmocka_unit_test(test_kafka_binding_round_trip),
        cmocka_unit_test(test_foreign_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

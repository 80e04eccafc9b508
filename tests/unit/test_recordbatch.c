/* Unit tests for the RecordBatch v2 codec (gateway/log/recordbatch.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/log/recordbatch.h"

/* ---- helpers ---- */

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Bit-at-a-time CRC-32C (reflected polynomial 0x82F63B78): an independent reference. */
static uint32_t ref_crc32c(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
        }
    }
    return ~crc;
}

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* Re-seal a hand-edited batch so that only the edit (not the CRC) is under test. */
static void reseal(uint8_t *buf, size_t len)
{
    put32(buf + 17, sl_crc32c(buf + 21, len - 21));
}

/* ---- CRC-32C ---- */

static void test_crc32c_vectors(void **state)
{
    (void)state;
    uint8_t buf[32];

    assert_int_equal(sl_crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(sl_crc32c("", 0), 0x00000000u);
    /* RFC 3720 appendix B.4 */
    memset(buf, 0, sizeof(buf));
    assert_int_equal(sl_crc32c(buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof(buf));
    assert_int_equal(sl_crc32c(buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)i;
    }
    assert_int_equal(sl_crc32c(buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(sl_crc32c(buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_matches_reference(void **state)
{
    (void)state;
    uint8_t buf[1000];
    uint32_t seed = 12345;

    for (size_t len = 0; len < sizeof(buf); len += 37) {
        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)xorshift(&seed);
        }
        assert_int_equal(sl_crc32c(buf, len), ref_crc32c(buf, len));
    }
}

/* ---- murmur2 ---- */

static void test_murmur2_known_values(void **state)
{
    (void)state;
    /* librdkafka src/rdmurmur2.c unittest_murmur2 (Java client results). */
    static const char unaligned[] = "PreAmbleWillBeRemoved,ThePrePartThatIs";
    static const struct {
        const char *key;
        uint32_t hash;
    } rdk[] = {
        {"kafka", 0xd067cf64u},
        {"giberish123456789", 0x8f552b0cu},
        {"1234", 0x9fc97b14u},
        {"234", 0xe7c009cau},
        {"34", 0x873930dau},
        {"4", 0x5a4b5ca1u},
        {unaligned, 0x78424f1cu},
        {unaligned + 1, 0x4a62b377u},
        {unaligned + 2, 0xe0e4e09eu},
        {unaligned + 3, 0x62b8b43fu},
        {"", 0x106e08d9u},
    };
    for (size_t i = 0; i < sizeof(rdk) / sizeof(rdk[0]); i++) {
        assert_int_equal((uint32_t)sl_murmur2(rdk[i].key, strlen(rdk[i].key)), rdk[i].hash);
    }
    assert_int_equal((uint32_t)sl_murmur2(NULL, 0), 0x106e08d9u);

    /* Kafka clients UtilsTest.testMurmur2 */
    static const struct {
        const char *key;
        int32_t hash;
    } java[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
    };
    for (size_t i = 0; i < sizeof(java) / sizeof(java[0]); i++) {
        assert_int_equal(sl_murmur2(java[i].key, strlen(java[i].key)), java[i].hash);
    }
}

static void test_murmur2_partition(void **state)
{
    (void)state;
    /* kafka-python test_murmur2_java_compatibility: output of Kafka's Java partitioner
     * with 1000 partitions. */
    static const struct {
        const char *key;
        size_t len;
        int32_t partition;
    } v[] = {
        {"", 0, 681},   {"a", 1, 524},         {"ab", 2, 434},
        {"abc", 3, 107}, {"123456789", 9, 566}, {"\x00 ", 2, 742},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        assert_int_equal(sl_murmur2_partition(v[i].key, v[i].len, 1000), v[i].partition);
    }
    assert_true(sl_murmur2_partition("x", 1, 0) < 0);

    /* Own murmur2 and librdkafka's partitioner agree on random keys and counts. */
    uint8_t key[64];
    uint32_t seed = 777;
    for (int i = 0; i < 2000; i++) {
        size_t len = xorshift(&seed) % sizeof(key);
        for (size_t j = 0; j < len; j++) {
            key[j] = (uint8_t)xorshift(&seed);
        }
        int32_t parts = (int32_t)(xorshift(&seed) % 1000) + 1;
        int32_t mine = (int32_t)(((uint32_t)sl_murmur2(key, len) & 0x7fffffffu) % (uint32_t)parts);
        assert_int_equal(sl_murmur2_partition(key, len, parts), mine);
    }
}

/* ---- varints ---- */

static void test_varint_edges(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        size_t n;
    } cases[] = {
        {0, 1},          {-1, 1},        {1, 1},         {63, 1},         {-64, 1},
        {64, 2},         {-65, 2},       {INT32_MAX, 5}, {INT32_MIN, 5},  {INT64_MAX, 10},
        {INT64_MIN, 10},
    };
    uint8_t buf[16];
    int64_t out;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = sl_varint_put(buf, cases[i].v);
        assert_int_equal(n, cases[i].n);
        assert_int_equal(sl_varint_get(buf, buf + n, &out), n);
        assert_true(out == cases[i].v);
        /* Truncated input is rejected. */
        assert_int_equal(sl_varint_get(buf, buf + n - 1, &out), 0);
    }
    /* Exact encodings: zig-zag. */
    assert_int_equal(sl_varint_put(buf, 0), 1);
    assert_int_equal(buf[0], 0x00);
    sl_varint_put(buf, -1);
    assert_int_equal(buf[0], 0x01);
    sl_varint_put(buf, 1);
    assert_int_equal(buf[0], 0x02);
    sl_varint_put(buf, 150);
    assert_int_equal(buf[0], 0xAC);
    assert_int_equal(buf[1], 0x02);

    /* 11 continuation bytes: overlong. */
    memset(buf, 0x80, 11);
    buf[11] = 0x00;
    assert_int_equal(sl_varint_get(buf, buf + 12, &out), 0);
    /* 10 bytes whose last carries more than the 64th bit: overflow. */
    memset(buf, 0xFF, 9);
    buf[9] = 0x02;
    assert_int_equal(sl_varint_get(buf, buf + 10, &out), 0);
    /* A redundant but in-range 10-byte encoding of 0 is accepted (Kafka accepts it). */
    memset(buf, 0x80, 9);
    buf[9] = 0x00;
    assert_int_equal(sl_varint_get(buf, buf + 10, &out), 10);
    assert_true(out == 0);
    assert_int_equal(sl_varint_get(buf, buf, &out), 0);
}

/* ---- round trips ---- */

static void check_batch(const uint8_t *buf, size_t len, int64_t base, const struct sl_rec_in *in,
                        size_t n)
{
    struct sl_rb_batch b;
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_OK);
    assert_true(b.base_offset == base);
    assert_int_equal(b.record_count, (int32_t)n);
    assert_int_equal(b.total_len, len);
    assert_int_equal(b.magic, 2);

    struct sl_rb_iter it;
    struct sl_record r;
    sl_rb_iter_init(&it, &b);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sl_rb_iter_next(&it, &r), 1);
        assert_true(r.offset == base + (int64_t)i);
        assert_true(r.timestamp == in[i].timestamp);
        assert_int_equal(r.key_len, in[i].key_len);
        if (in[i].key_len > 0) {
            assert_memory_equal(r.key, in[i].key, (size_t)in[i].key_len);
        } else if (in[i].key_len < 0) {
            assert_null(r.key);
        }
        assert_int_equal(r.value_len, in[i].value_len);
        if (in[i].value_len > 0) {
            assert_memory_equal(r.value, in[i].value, (size_t)in[i].value_len);
        } else if (in[i].value_len < 0) {
            assert_null(r.value);
        }
        assert_int_equal(r.n_headers, in[i].n_headers);
        struct sl_rb_hdr_iter hi;
        struct sl_hdr h;
        sl_rb_hdr_iter_init(&hi, &r);
        for (size_t k = 0; k < in[i].n_headers; k++) {
            assert_int_equal(sl_rb_hdr_iter_next(&hi, &h), 1);
            assert_int_equal(h.name_len, in[i].headers[k].name_len);
            assert_memory_equal(h.name, in[i].headers[k].name, h.name_len);
            assert_int_equal(h.value_len, in[i].headers[k].value_len);
            if (h.value_len > 0) {
                assert_memory_equal(h.value, in[i].headers[k].value, (size_t)h.value_len);
            } else if (h.value_len < 0) {
                assert_null(h.value);
            }
        }
        assert_int_equal(sl_rb_hdr_iter_next(&hi, &h), 0);
    }
    assert_int_equal(sl_rb_iter_next(&it, &r), 0);
}

static void test_roundtrip_special(void **state)
{
    (void)state;
    struct sl_hdr hdrs[40];
    char names[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "h%d", i);
        hdrs[i].name = names[i];
        hdrs[i].name_len = strlen(names[i]);
        if (i % 3 == 0) {
            hdrs[i].value = NULL;
            hdrs[i].value_len = -1;
        } else {
            hdrs[i].value = (const uint8_t *)names[i];
            hdrs[i].value_len = (int32_t)strlen(names[i]);
        }
    }
    const struct sl_rec_in in[] = {
        {1000, NULL, -1, (const uint8_t *)"value", 5, NULL, 0},        /* null key */
        {999, (const uint8_t *)"k", 1, NULL, -1, NULL, 0},             /* null value */
        {1500, (const uint8_t *)"", 0, (const uint8_t *)"", 0, NULL, 0}, /* empty */
        {-5, (const uint8_t *)"key", 3, (const uint8_t *)"v", 1, hdrs, 40},
        {INT64_C(1700000000000), NULL, -1, NULL, -1, hdrs + 1, 1},
    };
    size_t n = sizeof(in) / sizeof(in[0]);
    struct sl_rb_builder b;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, 42);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sl_rb_builder_add(&b, &in[i]), 0);
    }
    size_t len;
    const uint8_t *buf = sl_rb_builder_finish(&b, &len);
    assert_non_null(buf);
    check_batch(buf, len, 42, in, n);

    struct sl_rb_batch pb;
    assert_int_equal(sl_rb_parse(buf, len, &pb), SL_RB_OK);
    assert_true(pb.base_timestamp == 1000);
    assert_true(pb.max_timestamp == INT64_C(1700000000000));
    assert_int_equal(pb.last_offset_delta, 4);

    /* Bad input is refused without touching the batch. */
    struct sl_rec_in bad = {0, NULL, -2, NULL, 0, NULL, 0};
    assert_int_equal(sl_rb_builder_add(&b, &bad), -EINVAL);
    bad.key_len = 3; /* NULL key with a length */
    assert_int_equal(sl_rb_builder_add(&b, &bad), -EINVAL);
    assert_int_equal(b.count, (int32_t)n);
    sl_rb_builder_free(&b);
    sl_rb_builder_free(&b); /* freeing twice is harmless */
}

static void roundtrip_n(size_t n)
{
    struct sl_rec_in *in = calloc(n, sizeof(*in));
    uint8_t *vals = malloc(n * 100);
    char (*keys)[32] = calloc(n, 32);
    assert_non_null(in);
    assert_non_null(vals);
    assert_non_null(keys);
    struct sl_hdr h = {"ce_type", 7, (const uint8_t *)"demo", 4};
    for (size_t i = 0; i < n; i++) {
        memset(vals + i * 100, (int)(i & 0xff), 100);
        snprintf(keys[i], 32, "key-%zu", i);
        in[i].timestamp = 1700000000000 + (int64_t)i;
        in[i].key = (const uint8_t *)keys[i];
        in[i].key_len = (int32_t)strlen(keys[i]);
        in[i].value = vals + i * 100;
        in[i].value_len = 100;
        in[i].headers = (i % 2) ? &h : NULL;
        in[i].n_headers = (i % 2) ? 1 : 0;
    }
    struct sl_rb_builder b;
    sl_rb_builder_init(&b);
    /* Twice: the builder is reusable after reset. */
    for (int round = 0; round < 2; round++) {
        sl_rb_builder_reset(&b, 1000 * round);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(sl_rb_builder_add(&b, &in[i]), 0);
        }
        size_t len;
        const uint8_t *buf = sl_rb_builder_finish(&b, &len);
        check_batch(buf, len, 1000 * round, in, n);
    }
    sl_rb_builder_free(&b);
    free(in);
    free(vals);
    free(keys);
}

static void test_roundtrip_1(void **state)
{
    (void)state;
    roundtrip_n(1);
}

static void test_roundtrip_1000(void **state)
{
    (void)state;
    roundtrip_n(1000);
}

static void test_empty_batch(void **state)
{
    (void)state;
    struct sl_rb_builder b;
    size_t len;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, 7);
    const uint8_t *buf = sl_rb_builder_finish(&b, &len);
    assert_non_null(buf);
    assert_int_equal(len, SL_RB_HEADER_SIZE);
    check_batch(buf, len, 7, NULL, 0);
    sl_rb_builder_free(&b);
}

/* Encoded by kafka-python 2.0.2's DefaultRecordBatchBuilder (an independent encoder):
 * 3 records, ts 1700000000000/+5/+2, keys "k1"/null/"k3", values "value-one"/"value-two"/
 * null, headers [ce_type=order, nullh=null], [], [a="", b="x"*20]. */
static const uint8_t kafka_python_batch[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8b,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x77, 0x41, 0x9e, 0x35, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00,
    0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00,
    0x03, 0x4c, 0x00, 0x00, 0x00, 0x04, 0x6b, 0x31, 0x12, 0x76, 0x61, 0x6c,
    0x75, 0x65, 0x2d, 0x6f, 0x6e, 0x65, 0x04, 0x0e, 0x63, 0x65, 0x5f, 0x74,
    0x79, 0x70, 0x65, 0x0a, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x0a, 0x6e, 0x75,
    0x6c, 0x6c, 0x68, 0x01, 0x1e, 0x00, 0x0a, 0x02, 0x01, 0x12, 0x76, 0x61,
    0x6c, 0x75, 0x65, 0x2d, 0x74, 0x77, 0x6f, 0x00, 0x44, 0x00, 0x04, 0x04,
    0x04, 0x6b, 0x33, 0x01, 0x04, 0x02, 0x61, 0x00, 0x02, 0x62, 0x28, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
};

static void test_kafka_python_batch(void **state)
{
    (void)state;
    static const struct sl_hdr h1[] = {
        {"ce_type", 7, (const uint8_t *)"order", 5},
        {"nullh", 5, NULL, -1},
    };
    static const char xs[] = "xxxxxxxxxxxxxxxxxxxx";
    static const struct sl_hdr h3[] = {
        {"a", 1, (const uint8_t *)"", 0},
        {"b", 1, (const uint8_t *)xs, 20},
    };
    const struct sl_rec_in in[] = {
        {INT64_C(1700000000000), (const uint8_t *)"k1", 2, (const uint8_t *)"value-one", 9, h1, 2},
        {INT64_C(1700000000005), NULL, -1, (const uint8_t *)"value-two", 9, NULL, 0},
        {INT64_C(1700000000002), (const uint8_t *)"k3", 2, NULL, -1, h3, 2},
    };
    /* Our decoder reads theirs... */
    check_batch(kafka_python_batch, sizeof(kafka_python_batch), 0, in, 3);
    /* ...and our encoder produces the very same bytes. */
    struct sl_rb_builder b;
    size_t len;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_rb_builder_add(&b, &in[i]), 0);
    }
    const uint8_t *buf = sl_rb_builder_finish(&b, &len);
    assert_int_equal(len, sizeof(kafka_python_batch));
    assert_memory_equal(buf, kafka_python_batch, len);
    sl_rb_builder_free(&b);
}

/* ---- exact layout ---- */

static void test_layout(void **state)
{
    (void)state;
    struct sl_hdr h = {"a", 1, (const uint8_t *)"b", 1};
    struct sl_rec_in r = {1000, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, &h, 1};
    struct sl_rb_builder b;
    size_t len;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, 5);
    assert_int_equal(sl_rb_builder_add(&b, &r), 0);
    r.timestamp = 1003;
    r.n_headers = 0;
    assert_int_equal(sl_rb_builder_add(&b, &r), 0);
    const uint8_t *p = sl_rb_builder_finish(&b, &len);

    /* record 1: len=12 attr ts=0 off=0 klen=1 'k' vlen=1 'v' nh=1 (1 'a' 1 'b') */
    static const uint8_t rec1[] = {0x18, 0x00, 0x00, 0x00, 0x02, 'k', 0x02, 'v',
                                   0x02, 0x02, 'a', 0x02, 'b'};
    /* record 2: len=8 attr ts=+3 off=1 klen=1 'k' vlen=1 'v' nh=0 */
    static const uint8_t rec2[] = {0x10, 0x00, 0x06, 0x02, 0x02, 'k', 0x02, 'v', 0x00};
    assert_int_equal(len, 61 + sizeof(rec1) + sizeof(rec2));
    assert_true(be64(p + 0) == 5);                              /* baseOffset */
    assert_int_equal(be32(p + 8), len - 12);                    /* batchLength */
    assert_int_equal(be32(p + 12), 0);                          /* partitionLeaderEpoch */
    assert_int_equal(p[16], 2);                                 /* magic */
    assert_int_equal(be32(p + 17), ref_crc32c(p + 21, len - 21)); /* crc */
    assert_int_equal(p[21], 0);                                 /* attributes */
    assert_int_equal(p[22], 0);
    assert_int_equal(be32(p + 23), 1);                          /* lastOffsetDelta */
    assert_true(be64(p + 27) == 1000);                          /* baseTimestamp */
    assert_true(be64(p + 35) == 1003);                          /* maxTimestamp */
    assert_true(be64(p + 43) == UINT64_MAX);                    /* producerId -1 */
    assert_int_equal(p[51], 0xff);                              /* producerEpoch -1 */
    assert_int_equal(p[52], 0xff);
    assert_int_equal(be32(p + 53), 0xffffffffu);                /* baseSequence -1 */
    assert_int_equal(be32(p + 57), 2);                          /* records count */
    assert_memory_equal(p + 61, rec1, sizeof(rec1));
    assert_memory_equal(p + 61 + sizeof(rec1), rec2, sizeof(rec2));
    sl_rb_builder_free(&b);
}

/* ---- corruption ---- */

static uint8_t *build_sample(size_t *len)
{
    struct sl_hdr h = {"hk", 2, (const uint8_t *)"hv", 2};
    struct sl_rec_in r[3] = {
        {100, (const uint8_t *)"k1", 2, (const uint8_t *)"value-1", 7, &h, 1},
        {101, NULL, -1, (const uint8_t *)"value-2", 7, NULL, 0},
        {102, (const uint8_t *)"k3", 2, NULL, -1, &h, 1},
    };
    struct sl_rb_builder b;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, 10);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_rb_builder_add(&b, &r[i]), 0);
    }
    const uint8_t *p = sl_rb_builder_finish(&b, len);
    uint8_t *copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, p, *len);
    sl_rb_builder_free(&b);
    return copy;
}

static void test_corrupt_crc(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_sample(&len);
    struct sl_rb_batch b;

    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_OK);
    buf[len - 3] ^= 0x40; /* inside the last record */
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_CORRUPT);
    assert_int_equal(sl_rb_parse_header(buf, len, &b), SL_RB_OK); /* no CRC check */
    buf[len - 3] ^= 0x40;
    buf[18] ^= 1; /* the CRC itself */
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_CORRUPT);
    buf[18] ^= 1;
    buf[16] = 1; /* magic */
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_CORRUPT);
    assert_int_equal(sl_rb_parse_header(buf, len, &b), SL_RB_CORRUPT);
    buf[16] = 2;
    buf[22] = 2; /* snappy: CRC still right after reseal, reported unsupported */
    reseal(buf, len);
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_UNSUPPORTED);
    buf[22] = 5; /* no such codec */
    reseal(buf, len);
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_UNSUPPORTED);
    buf[22] = 0x20; /* a control batch */
    reseal(buf, len);
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_UNSUPPORTED);
    buf[22] = 1; /* gzip: parses, but the records are no gzip member */
    reseal(buf, len);
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_OK);
    struct sl_rb_zbuf z = {0};
    struct sl_rb_batch d;
    assert_int_equal(sl_rb_decompress(&b, &z, &d), SL_RB_CORRUPT);
    sl_rb_zbuf_free(&z);
    free(buf);
}

static void test_truncated_short(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_sample(&len);
    struct sl_rb_batch b;

    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut ? cut : 1); /* exact size so ASan catches overreads */
        assert_non_null(part);
        memcpy(part, buf, cut);
        assert_int_equal(sl_rb_parse(part, cut, &b), SL_RB_SHORT);
        free(part);
    }
    /* Extra bytes after a batch belong to the next one. */
    uint8_t *more = malloc(len + 5);
    assert_non_null(more);
    memcpy(more, buf, len);
    memset(more + len, 0xAA, 5);
    assert_int_equal(sl_rb_parse(more, len + 5, &b), SL_RB_OK);
    assert_int_equal(b.total_len, len);
    /* A batchLength below the header size is corrupt, not short. */
    put32(more + 8, 10);
    assert_int_equal(sl_rb_parse(more, len, &b), SL_RB_CORRUPT);
    free(more);
    free(buf);
}

/* A batch whose header is valid but whose records are malformed: the iterator fails. */
static int iterate_all(const uint8_t *buf, size_t len)
{
    struct sl_rb_batch b;
    struct sl_rb_iter it;
    struct sl_record r;
    int rc;
    int n = 0;
    if (sl_rb_parse(buf, len, &b) != SL_RB_OK) {
        return -100;
    }
    sl_rb_iter_init(&it, &b);
    while ((rc = sl_rb_iter_next(&it, &r)) == 1) {
        struct sl_rb_hdr_iter hi;
        struct sl_hdr h;
        sl_rb_hdr_iter_init(&hi, &r);
        while ((rc = sl_rb_hdr_iter_next(&hi, &h)) == 1) {
        }
        if (rc != 0) {
            return rc;
        }
        n++;
    }
    return rc == 0 ? n : rc;
}

static void test_record_framing(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = build_sample(&len);
    assert_int_equal(iterate_all(buf, len), 3);

    /* record count larger than the records present */
    put32(buf + 57, 4);
    put32(buf + 23, 3);
    reseal(buf, len);
    assert_int_equal(iterate_all(buf, len), SL_RB_CORRUPT);
    /* count below the records present: trailing bytes */
    put32(buf + 57, 2);
    reseal(buf, len);
    assert_int_equal(iterate_all(buf, len), SL_RB_CORRUPT);
    put32(buf + 57, 3);
    put32(buf + 23, 2);
    /* count beyond lastOffsetDelta + 1 is caught by the header parser */
    put32(buf + 23, 1);
    reseal(buf, len);
    struct sl_rb_batch b;
    assert_int_equal(sl_rb_parse(buf, len, &b), SL_RB_CORRUPT);
    put32(buf + 23, 2);
    /* key length -2 in the first record (byte 61 is its length, 62 attrs, 63 ts, 64 off,
     * 65 key length) */
    assert_int_equal(buf[65], 0x04);
    buf[65] = 0x03; /* zig-zag -2 */
    reseal(buf, len);
    assert_int_equal(iterate_all(buf, len), SL_RB_CORRUPT);
    buf[65] = 0x04;
    /* offset delta beyond lastOffsetDelta */
    buf[64] = 0x0A; /* 5 */
    reseal(buf, len);
    assert_int_equal(iterate_all(buf, len), SL_RB_CORRUPT);
    buf[64] = 0x00;
    reseal(buf, len);
    assert_int_equal(iterate_all(buf, len), 3);
    free(buf);
}

static void test_mutation_loop(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = build_sample(&len);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    uint32_t seed = 2024;
    int ok = 0;
    int bad = 0;

    for (int i = 0; i < 20000; i++) {
        memcpy(buf, orig, len);
        int flips = 1 + (int)(xorshift(&seed) % 4);
        for (int f = 0; f < flips; f++) {
            buf[xorshift(&seed) % len] = (uint8_t)xorshift(&seed);
        }
        size_t cut = (xorshift(&seed) % 8 == 0) ? xorshift(&seed) % len : len;
        /* Reseal half of the time so the record walker gets exercised too. */
        if (cut >= 61 && (i & 1)) {
            reseal(buf, cut);
        }
        int rc = iterate_all(buf, cut);
        if (rc >= 0) {
            assert_true(rc <= 3 + 1000);
            ok++;
        } else {
            bad++;
        }
    }
    /* The loop did hit both sides. */
    assert_true(bad > 0);
    assert_true(ok > 0);
    free(buf);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_crc32c_matches_reference),
        cmocka_unit_test(test_murmur2_known_values),
        cmocka_unit_test(test_murmur2_partition),
        cmocka_unit_test(test_varint_edges),
        cmocka_unit_test(test_roundtrip_special),
        cmocka_unit_test(test_roundtrip_1),
        cmocka_unit_test(test_roundtrip_1000),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_kafka_python_batch),
        cmocka_unit_test(test_corrupt_crc),
        cmocka_unit_test(test_truncated_short),
        cmocka_unit_test(test_record_framing),
        cmocka_unit_test(test_mutation_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The log with per-topic compression (gateway/log/log.c write paths, partition.c read
 * path): batches land compressed on disk, reads from the middle of a batch, record by
 * record reads decompress once, recovery after close / a torn tail, reload of the
 * setting, flush always (the open batch) and the read cache across partitions.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/log/log.h"
#include "gateway/log/recordbatch.h"
#include "tests/unit/fixture.h"

#define BATCH 100

static int setup(void **state)
{
    *state = fx_log_new("/tmp/test_log_compress.");
    return 0;
}

static int teardown(void **state)
{
    fx_log_free(*state);
    return 0;
}

static void value_of(int i, char *buf, size_t size)
{
    snprintf(buf, size, "reading-%06d-celsius-21.5-sensor-eu", i);
}

/* Append records first..first+n-1 as one batch (values value_of(i), a header each). */
static void append_batch(struct fx_log *f, const char *topic, int first, int n, struct fx_acks *a)
{
    struct sl_rec_in *r = calloc((size_t)n, sizeof(*r));
    char (*vals)[48] = calloc((size_t)n, sizeof(*vals));
    static const struct sl_hdr hdr = {"ce-type", 7, (const uint8_t *)"reading", 7};

    assert_non_null(r);
    assert_non_null(vals);
    for (int i = 0; i < n; i++) {
        value_of(first + i, vals[i], sizeof(vals[i]));
        r[i].timestamp = 1700000000000LL + first + i;
        r[i].key = (const uint8_t *)"k";
        r[i].key_len = 1;
        r[i].value = (const uint8_t *)vals[i];
        r[i].value_len = (int32_t)strlen(vals[i]);
        r[i].headers = &hdr;
        r[i].n_headers = 1;
    }
    assert_int_equal(sl_log_append(f->log, topic, 0, r, (size_t)n, fx_on_ack, a), 0);
    free(vals);
    free(r);
}

static void configure(struct fx_log *f, const char *topic, enum sl_flush flush,
                      enum sl_rb_codec codec)
{
    struct sl_topic_config cfg;

    sl_topic_config_defaults(&cfg);
    cfg.flush = flush;
    cfg.compression = codec;
    assert_int_equal(sl_log_topic_configure(f->log, topic, &cfg), 0);
}

/* The codec of each batch in the partition's first segment, in order; returns count. */
static int disk_codecs(struct fx_log *f, const char *topic, int *codecs, int max)
{
    char path[256];
    struct stat st;
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s-0/00000000000000000000.log", f->dir, topic);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    size_t pos = 0;
    while (pos < (size_t)st.st_size && n < max) {
        struct sl_rb_batch b;
        if (sl_rb_parse(buf + pos, (size_t)st.st_size - pos, &b) != SL_RB_OK) {
            break;                           /* preallocated zeros, or the end */
        }
        codecs[n++] = sl_rb_codec_of(&b);
        pos += b.total_len;
    }
    free(buf);
    return n;
}

static uint64_t decompressions(struct fx_log *f)
{
    struct sl_log_stats st;

    sl_log_get_stats(f->log, &st);
    return st.batches_decompressed;
}

/* Every record from 0 to hw, checked against value_of. */
static void check_all(struct fx_log *f, const char *topic, int hw)
{
    struct fx_collected *c = malloc(sizeof(*c));

    assert_non_null(c);
    assert_int_equal(fx_read_all(f, topic, 0, 0, c), hw);
    for (int i = 0; i < hw; i++) {
        char want[48];
        value_of(i, want, sizeof(want));
        assert_int_equal(c->offsets[i], i);
        assert_string_equal(c->values[i], want);
        assert_true(c->timestamps[i] == 1700000000000LL + i);
    }
    free(c);
}

/* One codec with flush os: batches compressed on disk, a read from the middle of a
 * batch, record-by-record reads, close / reopen, a torn tail. */
static void run_codec(struct fx_log *f, const char *topic, enum sl_rb_codec codec)
{
    struct fx_acks a = {0};
    struct fx_collected *c = malloc(sizeof(*c));
    int codecs[16];
    int64_t next;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    configure(f, topic, SL_FLUSH_OS, codec);
    append_batch(f, topic, 0, BATCH, &a);
    append_batch(f, topic, BATCH, BATCH, &a);
    append_batch(f, topic, 2 * BATCH, 10, &a);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.errors, 0);
    assert_int_equal(a.last_offset, 2 * BATCH + 9);
    assert_int_equal(disk_codecs(f, topic, codecs, 16), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(codecs[i], codec);
    }
    struct sl_log_stats st;
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.batches_compressed, 3);
    assert_true(fx_describe(f, topic).bytes < 2 * BATCH * 40); /* smaller than the values */

    /* from the middle of the second batch */
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_log_read(f->log, topic, 0, BATCH + 37, 5, 0, fx_collect, c, &next), 5);
    assert_int_equal(next, BATCH + 42);
    for (int i = 0; i < 5; i++) {
        char want[48];
        value_of(BATCH + 37 + i, want, sizeof(want));
        assert_int_equal(c->offsets[i], BATCH + 37 + i);
        assert_string_equal(c->values[i], want);
    }
    /* record by record through the first batch: one decompression */
    uint64_t before = decompressions(f);
    next = 0;
    for (int i = 0; i < BATCH; i++) {
        char want[48];
        memset(c, 0, sizeof(*c));
        assert_int_equal(sl_log_read(f->log, topic, 0, next, 1, 0, fx_collect, c, &next), 1);
        value_of(i, want, sizeof(want));
        assert_int_equal(c->offsets[0], i);
        assert_string_equal(c->values[0], want);
    }
    assert_int_equal(next, BATCH);
    assert_true(decompressions(f) == before + 1);
    check_all(f, topic, 2 * BATCH + 10);

    /* close / reopen: recovery scans the compressed batches */
    sl_log_close(&f->log);
    fx_log_open_flush(f, SL_FLUSH_OS);
    assert_int_equal(fx_describe(f, topic).hw, 2 * BATCH + 10);
    check_all(f, topic, 2 * BATCH + 10);

    /* a torn tail: half of the last batch is lost */
    sl_log_close(&f->log);
    char path[256];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s-0/00000000000000000000.log", f->dir, topic);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 20), 0);
    fx_log_open_flush(f, SL_FLUSH_OS);
    sl_log_get_stats(f->log, &st);
    assert_true(st.recovered_truncated_bytes > 0);
    assert_int_equal(fx_describe(f, topic).hw, 2 * BATCH);
    configure(f, topic, SL_FLUSH_OS, codec);
    append_batch(f, topic, 2 * BATCH, 10, &a);
    assert_int_equal(a.last_offset, 2 * BATCH + 9);
    check_all(f, topic, 2 * BATCH + 10);
    free(c);
}

static void test_gzip(void **state)
{
    run_codec(*state, "gz", SL_RB_CODEC_GZIP);
}

static void test_lz4(void **state)
{
    run_codec(*state, "lz", SL_RB_CODEC_LZ4);
}

static void test_zstd(void **state)
{
    run_codec(*state, "zs", SL_RB_CODEC_ZSTD);
}

/* flush always: the open batch of a loop turn is compressed when written. */
static void test_flush_always(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = {0};
    int codecs[16];

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    configure(f, "al", SL_FLUSH_ALWAYS, SL_RB_CODEC_ZSTD);
    for (int i = 0; i < 50; i++) {
        append_batch(f, "al", i, 1, &a);     /* one turn: one batch of 50 */
    }
    fx_run_until(f, &a.n, 50);
    assert_int_equal(a.n, 50);
    assert_int_equal(a.errors, 0);
    append_batch(f, "al", 50, 30, &a);
    fx_run_until(f, &a.n, 51);
    assert_int_equal(a.errors, 0);
    int n = disk_codecs(f, "al", codecs, 16);
    assert_true(n >= 2);
    for (int i = 0; i < n; i++) {
        assert_int_equal(codecs[i], SL_RB_CODEC_ZSTD);
    }
    check_all(f, "al", 80);
    sl_log_close(&f->log);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    check_all(f, "al", 80);
}

/* A reload applies to the batches written after it; older ones stay as they are. */
static void test_reload(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = {0};
    int codecs[16];

    fx_log_open_flush(f, SL_FLUSH_OS);
    configure(f, "rl", SL_FLUSH_OS, SL_RB_CODEC_NONE);
    append_batch(f, "rl", 0, 20, &a);
    configure(f, "rl", SL_FLUSH_OS, SL_RB_CODEC_LZ4);
    append_batch(f, "rl", 20, 20, &a);
    configure(f, "rl", SL_FLUSH_OS, SL_RB_CODEC_GZIP);
    append_batch(f, "rl", 40, 20, &a);
    configure(f, "rl", SL_FLUSH_OS, SL_RB_CODEC_NONE);
    append_batch(f, "rl", 60, 20, &a);
    assert_int_equal(disk_codecs(f, "rl", codecs, 16), 4);
    assert_int_equal(codecs[0], SL_RB_CODEC_NONE);
    assert_int_equal(codecs[1], SL_RB_CODEC_LZ4);
    assert_int_equal(codecs[2], SL_RB_CODEC_GZIP);
    assert_int_equal(codecs[3], SL_RB_CODEC_NONE);
    check_all(f, "rl", 80);

    /* snappy and unknown codecs are refused */
    struct sl_topic_config cfg;
    sl_topic_config_defaults(&cfg);
    cfg.compression = SL_RB_CODEC_SNAPPY;
    assert_int_equal(sl_log_topic_configure(f->log, "rl", &cfg), -EINVAL);
    cfg.compression = (enum sl_rb_codec)9;
    assert_int_equal(sl_log_topic_configure(f->log, "rl", &cfg), -EINVAL);
}

/* Record-by-record readers of two partitions taking turns, over batches with the same
 * bytes (same codec, offsets, records: same CRC and size): each read decompresses its
 * own partition's batch, as the cache is keyed by partition too; DeleteRecords and new
 * batches after the cached one. */
static void test_cache_two_partitions(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = {0};
    struct fx_collected *c = malloc(sizeof(*c));
    int64_t next_a = 0, next_b = 0;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    configure(f, "ca", SL_FLUSH_OS, SL_RB_CODEC_LZ4);
    configure(f, "cb", SL_FLUSH_OS, SL_RB_CODEC_LZ4);
    append_batch(f, "ca", 0, 40, &a);
    append_batch(f, "cb", 0, 40, &a);
    uint64_t first = decompressions(f);
    for (int i = 0; i < 40; i++) {
        char want[48];
        value_of(i, want, sizeof(want));
        memset(c, 0, sizeof(*c));
        assert_int_equal(sl_log_read(f->log, "ca", 0, next_a, 1, 0, fx_collect, c, &next_a), 1);
        assert_string_equal(c->values[0], want);
        memset(c, 0, sizeof(*c));
        assert_int_equal(sl_log_read(f->log, "cb", 0, next_b, 1, 0, fx_collect, c, &next_b), 1);
        assert_string_equal(c->values[0], want);
    }
    assert_true(decompressions(f) == first + 80);
    /* DeleteRecords past the cached batch, a roll and new batches at new offsets */
    uint64_t before = decompressions(f);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_log_read(f->log, "ca", 0, 39, 1, 0, fx_collect, c, &next_a), 1);
    assert_true(decompressions(f) == before + 1);
    assert_int_equal(sl_log_delete_records(f->log, "ca", 0, 40), 0);
    append_batch(f, "ca", 40, 10, &a);
    assert_int_equal(fx_describe(f, "ca").log_start, 40);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_log_read(f->log, "ca", 0, 0, 10, 0, fx_collect, c, &next_a), 10);
    assert_int_equal(c->offsets[0], 40);
    assert_string_equal(c->values[9], "reading-000049-celsius-21.5-sensor-eu");
    free(c);
}

struct big_seen {
    int n;
    int32_t len;
    uint8_t first, last;
};

static int on_big(void *arg, const char *topic, int32_t partition, const struct sl_record *rec)
{
    struct big_seen *b = arg;

    (void)topic;
    (void)partition;
    b->n++;
    b->len = rec->value_len;
    if (rec->value_len > 0) {
        b->first = rec->value[0];
        b->last = rec->value[rec->value_len - 1];
    }
    return 0;
}

/* A record beyond what a read would decompress (SL_RB_MAX_DECOMPRESSED) is stored
 * uncompressed, and so stays readable. */
static void test_over_cap_uncompressed(void **state)
{
    struct fx_log *f = *state;
    size_t big = (size_t)SL_RB_MAX_DECOMPRESSED + 1024 * 1024;
    uint8_t *v = malloc(big);
    struct fx_acks a = {0};
    struct big_seen seen = {0};
    struct sl_rec_in r;
    struct sl_log_stats st;
    int codecs[4];
    int64_t next;

    assert_non_null(v);
    memset(v, 'z', big);
    v[0] = 'A';
    v[big - 1] = 'Z';
    memset(&r, 0, sizeof(r));
    r.timestamp = 1700000000000LL;
    r.key_len = -1;
    r.value = v;
    r.value_len = (int32_t)big;
    fx_log_open_flush(f, SL_FLUSH_OS);
    configure(f, "big", SL_FLUSH_OS, SL_RB_CODEC_ZSTD);
    assert_int_equal(sl_log_append(f->log, "big", 0, &r, 1, fx_on_ack, &a), 0);
    fx_run_until(f, &a.n, 1);
    assert_int_equal(a.errors, 0);
    assert_int_equal(disk_codecs(f, "big", codecs, 4), 1);
    assert_int_equal(codecs[0], SL_RB_CODEC_NONE);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.batches_compressed, 0);
    assert_int_equal(st.batches_uncompressed, 1);
    assert_int_equal(sl_log_read(f->log, "big", 0, 0, 1, 0, on_big, &seen, &next), 1);
    assert_int_equal(seen.len, (int32_t)big);
    assert_int_equal(seen.first, 'A');
    assert_int_equal(seen.last, 'Z');
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lz4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_always, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_two_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_cap_uncompressed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

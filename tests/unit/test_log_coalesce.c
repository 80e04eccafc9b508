/*
 * Unit tests for the log's coalesced appends (sl_log_options.coalesce, gateway/log/log.c):
 * with flush `os` or `interval`, a loop turn's appends to a partition become one
 * RecordBatch and one write, acknowledged at the end of the turn.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/log/log.h"

#include "fixture.h"

struct acks {
    int n;
    int errors;
    int64_t offsets[256];              /* base offset of each ack, in ack order */
};

static void on_ack(void *arg, const struct sl_append_result *res)
{
    struct acks *a = arg;

    if (res->status != 0) {
        a->errors++;
    }
    if (a->n < 256) {
        a->offsets[a->n] = res->base_offset;
    }
    a->n++;
}

static void open_log(struct fx_log *f, enum sl_flush flush)
{
    struct sl_log_options o = fx_log_options(f, flush);

    o.coalesce = true;
    fx_log_open(f, &o);
}

static int setup(void **state)
{
    *state = fx_log_new("/tmp/test_log_coalesce.");
    return 0;
}

static int teardown(void **state)
{
    fx_log_free(*state);
    return 0;
}

/* Run the loop until a->n reaches want (bounded: about 5 s). */
static void append_one(struct fx_log *f, const char *topic, int i, struct acks *a)
{
    char val[64];
    struct sl_rec_in r;

    memset(&r, 0, sizeof(r));
    snprintf(val, sizeof(val), "value-%06d-padding-padding-padding", i);
    r.timestamp = 1700000000000LL + i;
    r.key_len = -1;
    r.value = (const uint8_t *)val;
    r.value_len = (int32_t)strlen(val);
    assert_int_equal(sl_log_append(f->log, topic, 0, &r, 1, on_ack, a), 0);
}

static int count_values(void *arg, const char *topic, int32_t partition,
                        const struct sl_record *rec)
{
    int *expect = arg;
    char want[64];

    (void)topic;
    (void)partition;
    snprintf(want, sizeof(want), "value-%06d-padding-padding-padding", *expect);
    assert_int_equal(rec->offset, *expect);
    assert_int_equal(rec->value_len, (int32_t)strlen(want));
    assert_memory_equal(rec->value, want, strlen(want));
    (*expect)++;
    return 0;
}

/* Every record of partition 0 of topic, in order, with the values append_one wrote. */
static int read_back(struct fx_log *f, const char *topic)
{
    int expect = 0;
    int64_t next = 0;

    for (int i = 0; i < 1000; i++) {
        int n = sl_log_read(f->log, topic, 0, next, 1000, 0, count_values, &expect, &next);
        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
    }
    return expect;
}

/* RecordBatches in the segment file at path (walking baseOffset + batchLength). */
static int batches_in(const char *path)
{
    uint8_t head[12];
    off_t pos = 0;
    int n = 0;
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    while (pread(fd, head, sizeof(head), pos) == (ssize_t)sizeof(head)) {
        uint32_t len = (uint32_t)head[8] << 24 | (uint32_t)head[9] << 16 |
                       (uint32_t)head[10] << 8 | head[11];
        pos += 12 + (off_t)len;
        n++;
    }
    close(fd);
    return n;
}

/* RecordBatches in the first segment of topic-0. */
static int count_batches(struct fx_log *f, const char *topic)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s-0/00000000000000000000.log", f->dir, topic);
    return batches_in(path);
}

static int64_t hw(struct fx_log *f, const char *topic)
{
    return sl_log_high_watermark(f->log, topic, 0);
}

/* flush os: three appends in one turn are acked together at its end, as one batch. */
static void test_os_one_batch_per_turn(void **state)
{
    struct fx_log *f = *state;
    struct acks a = {0};

    open_log(f, SL_FLUSH_OS);
    for (int i = 0; i < 3; i++) {
        append_one(f, "co", i, &a);
    }
    assert_int_equal(a.n, 0);                /* nothing acked before the turn ends */
    assert_int_equal(hw(f, "co"), 0);        /* nor visible */
    fx_run_until(f, &a.n, 3);
    assert_int_equal(a.n, 3);
    assert_int_equal(a.errors, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a.offsets[i], i);   /* in append order */
    }
    assert_int_equal(hw(f, "co"), 3);
    assert_int_equal(count_batches(f, "co"), 1);
    /* the next turn's appends make a second batch */
    append_one(f, "co", 3, &a);
    append_one(f, "co", 4, &a);
    fx_run_until(f, &a.n, 5);
    assert_int_equal(a.offsets[4], 4);
    assert_int_equal(count_batches(f, "co"), 2);
    assert_int_equal(read_back(f, "co"), 5);
}

/* A small segment size still rolls: a turn's appends never overfill a segment. */
static void test_os_roll(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config c;
    struct acks a = {0};
    int64_t n_segs = 0;

    open_log(f, SL_FLUSH_OS);
    sl_topic_config_defaults(&c);
    c.flush = SL_FLUSH_OS;
    c.segment_bytes = 400;
    assert_int_equal(sl_log_topic_configure(f->log, "roll", &c), 0);
    for (int i = 0; i < 40; i++) {
        append_one(f, "roll", i, &a);
    }
    fx_run_until(f, &a.n, 40);
    assert_int_equal(a.errors, 0);
    assert_int_equal(read_back(f, "roll"), 40);
    {
        char path[256];
        for (int64_t base = 0; base < 40; base++) {
            snprintf(path, sizeof(path), "%s/roll-0/%020lld.log", f->dir, (long long)base);
            if (access(path, F_OK) == 0) {
                struct stat st;
                assert_int_equal(stat(path, &st), 0);
                /* one batch may exceed the size alone; several never do */
                assert_true(st.st_size <= 400 || batches_in(path) == 1);
                n_segs++;
            }
        }
    }
    assert_true(n_segs > 1);
}

/* flush interval: acked at the end of the turn (no fsync wait), synced by the timer;
 * appends made while that fsync is in flight are acked on their own turn, once. */
static void test_interval_acks_once(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config c;
    struct acks a = {0};
    struct sl_log_stats st;

    open_log(f, SL_FLUSH_OS);
    sl_topic_config_defaults(&c);
    c.flush = SL_FLUSH_INTERVAL;
    c.flush_interval_ms = 1;
    assert_int_equal(sl_log_topic_configure(f->log, "iv", &c), 0);
    for (int i = 0; i < 60; i++) {
        append_one(f, "iv", i, &a);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        if (i % 7 == 0) {
            usleep(1500);                    /* let the interval timer start a job */
        }
    }
    fx_run_until(f, &a.n, 60);
    for (int i = 0; i < 20; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(a.n, 60);               /* each append acked exactly once */
    assert_int_equal(a.errors, 0);
    for (int i = 0; i < 60; i++) {
        assert_int_equal(a.offsets[i], i);
    }
    sl_log_get_stats(f->log, &st);
    assert_true(st.fsyncs >= 1);
    assert_int_equal(read_back(f, "iv"), 60);
}

/* always -> os while appends wait for an fsync: every append is acked once, in order. */
static void test_policy_change_keeps_order(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config c;
    struct acks a = {0};

    open_log(f, SL_FLUSH_ALWAYS);
    for (int i = 0; i < 5; i++) {
        append_one(f, "pc", i, &a);
    }
    event_base_loop(f->base, EVLOOP_NONBLOCK);     /* written; the fsync may be running */
    sl_topic_config_defaults(&c);
    c.flush = SL_FLUSH_OS;
    assert_int_equal(sl_log_topic_configure(f->log, "pc", &c), 0);
    for (int i = 5; i < 10; i++) {
        append_one(f, "pc", i, &a);
    }
    fx_run_until(f, &a.n, 10);
    for (int i = 0; i < 20; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(a.n, 10);
    assert_int_equal(a.errors, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(a.offsets[i], i);
    }
    assert_int_equal(read_back(f, "pc"), 10);
}

/* Closing with a turn's appends still gathered writes them and fires their callbacks;
 * they are there after reopening. */
static void test_close_writes_gathered(void **state)
{
    struct fx_log *f = *state;
    struct acks a = {0};

    open_log(f, SL_FLUSH_OS);
    for (int i = 0; i < 4; i++) {
        append_one(f, "cl", i, &a);
    }
    assert_int_equal(a.n, 0);
    sl_log_close(&f->log);
    assert_int_equal(a.n, 4);
    assert_int_equal(a.errors, 0);
    open_log(f, SL_FLUSH_OS);
    assert_int_equal(hw(f, "cl"), 4);
    assert_int_equal(read_back(f, "cl"), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_os_one_batch_per_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_os_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interval_acks_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_change_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_writes_gathered, setup, teardown),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

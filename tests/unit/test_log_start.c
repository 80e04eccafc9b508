/*
 * Unit tests for the log start offset: sl_log_delete_records (Kafka's DeleteRecords),
 * sl_log_roll, sl_log_partition_info, the <partition>/log-start-offset file and what a
 * crash between its steps leaves (gateway/log/partition.c, log.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "gateway/log/log.h"

#include "fixture.h"

/* ---- interposed fdatasync (held while `hold`) and fsync (directories counted) ---- */

static atomic_int hold;
static atomic_int datasyncs_entered;
static atomic_int datasyncs_done;
static atomic_int dir_syncs;

int fdatasync(int fd)
{
    int rc;

    atomic_fetch_add(&datasyncs_entered, 1);
    for (int i = 0; i < 10000 && atomic_load(&hold); i++) {
        usleep(1000);
    }
    rc = (int)syscall(SYS_fdatasync, fd);
    atomic_fetch_add(&datasyncs_done, 1);
    return rc;
}

int fsync(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        atomic_fetch_add(&dir_syncs, 1);
    }
    return (int)syscall(SYS_fsync, fd);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void open_log(struct fx_log *f)
{
    struct sl_log_options o = fx_log_options(f, SL_FLUSH_ALWAYS);

    fx_log_open(f, &o);
}

static int setup(void **state)
{
    *state = fx_log_new("/tmp/test_log_start.");
    return 0;
}

static int teardown(void **state)
{
    atomic_store(&hold, 0);
    fx_log_free(*state);
    return 0;
}

/* Small segments (about 60 records each), no retention, the given flush policy. */
static void make_topic(struct fx_log *f, const char *topic, enum sl_flush flush)
{
    struct sl_topic_config c;

    sl_topic_config_defaults(&c);
    c.flush = flush;
    c.flush_interval_ms = 5;
    c.segment_bytes = 4096;
    c.retention_bytes = -1;
    c.retention_ms = -1;
    assert_int_equal(sl_log_topic_configure(f->log, topic, &c), 0);
}

static void append_n(struct fx_log *f, const char *topic, int from, int n, struct fx_acks *a)
{
    for (int i = from; i < from + n; i++) {
        char val[64];
        struct sl_rec_in r;

        memset(&r, 0, sizeof(r));
        snprintf(val, sizeof(val), "value-%06d-padding-padding-padding", i);
        r.timestamp = now_ms();
        r.key_len = -1;
        r.value = (const uint8_t *)val;
        r.value_len = (int32_t)strlen(val);
        assert_int_equal(sl_log_append(f->log, topic, 0, &r, 1, fx_on_ack, a), 0);
    }
}

struct seen {
    int n;
    int64_t first, last;
};

static int on_record(void *arg, const char *topic, int32_t partition, const struct sl_record *rec)
{
    struct seen *s = arg;

    (void)topic;
    (void)partition;
    if (s->n++ == 0) {
        s->first = rec->offset;
    }
    s->last = rec->offset;
    return 0;
}

/* Every visible record from offset on. */
static struct seen read_from(struct fx_log *f, const char *topic, int64_t offset)
{
    struct seen s = { 0, -1, -1 };
    int64_t next = offset;

    for (int i = 0; i < 1000; i++) {
        int n = sl_log_read(f->log, topic, 0, next, 100, 0, on_record, &s, &next);

        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
    }
    return s;
}

static struct sl_partition_info info(struct fx_log *f, const char *topic)
{
    struct sl_partition_info pi;

    assert_int_equal(sl_log_partition_info(f->log, topic, 0, &pi), 0);
    return pi;
}

/* Base offsets of the .log files in <dir>/<topic>-0, sorted (at most max). */
static int segment_files(struct fx_log *f, const char *topic, int64_t *bases, int max)
{
    char path[160];
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s-0", f->dir, topic);
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len == 24 && strcmp(de->d_name + 20, ".log") == 0 && n < max) {
            int64_t b = strtoll(de->d_name, NULL, 10);
            int at = n++;

            while (at > 0 && bases[at - 1] > b) {
                bases[at] = bases[at - 1];
                at--;
            }
            bases[at] = b;
        }
    }
    closedir(d);
    return n;
}

static void write_start_file(struct fx_log *f, const char *topic, const char *text)
{
    char path[160];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s-0/log-start-offset", f->dir, topic);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void read_start_file(struct fx_log *f, const char *topic, char *buf, size_t cap)
{
    char path[160];
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s-0/log-start-offset", f->dir, topic);
    fp = fopen(path, "r");
    assert_non_null(fp);
    n = fread(buf, 1, cap - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

static void reopen(struct fx_log *f)
{
    sl_log_close(&f->log);
    open_log(f);
}

/* ---- tests ---- */

static void wake_noop(struct sl_cursor *cur, void *arg)
{
    (void)cur;
    (void)arg;
}

static void test_delete_records(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct sl_partition_info before, after;
    struct sl_log_stats st0, st1;
    struct sl_cursor *early, *old;
    struct seen s;
    int64_t bases[64];
    char text[32];
    int err = 0, n;

    open_log(f);
    make_topic(f, "dr", SL_FLUSH_OS);
    append_n(f, "dr", 0, 500, &a);
    assert_int_equal(a.errors, 0);
    before = info(f, "dr");
    assert_true(before.segments >= 5);
    assert_int_equal(before.log_start_offset, 0);
    old = sl_cursor_open(f->log, "dr", 0, (struct sl_start){ SL_START_OFFSET, 50 }, wake_noop,
                         NULL, &err);
    assert_non_null(old);
    sl_log_get_stats(f->log, &st0);

    assert_int_equal(sl_log_delete_records(f->log, "dr", 0, 300), 0);
    after = info(f, "dr");
    sl_log_get_stats(f->log, &st1);
    assert_int_equal(after.log_start_offset, 300);
    assert_int_equal(after.high_watermark, 500);
    assert_true(after.segments < before.segments);
    assert_true(after.bytes < before.bytes);
    assert_int_equal(st1.segments_deleted - st0.segments_deleted,
                     before.segments - after.segments);
    /* what is left: the segment holding 300 first, nothing entirely below it */
    n = segment_files(f, "dr", bases, 64);
    assert_int_equal(n, (int)after.segments);
    assert_true(bases[0] <= 300);
    assert_true(n == 1 || bases[1] > 300);
    read_start_file(f, "dr", text, sizeof(text));
    assert_string_equal(text, "300\n");

    /* reads below the start begin at it, as after retention */
    s = read_from(f, "dr", 0);
    assert_int_equal(s.first, 300);
    assert_int_equal(s.n, 200);
    assert_int_equal(read_from(f, "dr", 299).first, 300);
    assert_int_equal(read_from(f, "dr", 450).first, 450);
    assert_int_equal(sl_log_offset_for_time(f->log, "dr", 0, 0), 300);
    early = sl_cursor_open(f->log, "dr", 0, (struct sl_start){ SL_START_EARLIEST, 0 }, wake_noop,
                           NULL, &err);
    assert_non_null(early);
    assert_int_equal(sl_cursor_position(early), 300);
    assert_int_equal(sl_cursor_position(old), 300);      /* moved up with the start */
    s = (struct seen){ 0, -1, -1 };
    assert_int_equal(sl_cursor_poll(old, 10, 0, on_record, &s), 10);
    assert_int_equal(s.first, 300);
    sl_cursor_seek(old, 5);
    assert_int_equal(sl_cursor_position(old), 300);
    sl_cursor_close(&early);
    sl_cursor_close(&old);

    /* at or below the start: no-op; beyond the high watermark: refused */
    assert_int_equal(sl_log_delete_records(f->log, "dr", 0, 100), 0);
    assert_int_equal(sl_log_delete_records(f->log, "dr", 0, 300), 0);
    assert_int_equal(info(f, "dr").log_start_offset, 300);
    assert_int_equal(sl_log_delete_records(f->log, "dr", 0, 501), -EINVAL);
    assert_int_equal(sl_log_delete_records(f->log, "dr", 0, -1), -EINVAL);
    assert_int_equal(sl_log_delete_records(f->log, "nope", 0, 1), -ENOENT);
    assert_int_equal(sl_log_delete_records(f->log, "dr", 3, 1), -ENOENT);

    /* appends go on after it */
    append_n(f, "dr", 500, 1, &a);
    assert_int_equal(a.last_offset, 500);
}

static void test_delete_records_reopen(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct sl_partition_info pi;
    uint32_t segs;

    open_log(f);
    make_topic(f, "keep", SL_FLUSH_ALWAYS);
    append_n(f, "keep", 0, 400, &a);
    fx_run_until(f, &a.n, 400);
    assert_int_equal(a.errors, 0);
    assert_int_equal(sl_log_delete_records(f->log, "keep", 0, 250), 0);
    segs = info(f, "keep").segments;
    reopen(f);
    pi = info(f, "keep");
    assert_int_equal(pi.log_start_offset, 250);       /* not the first segment's base */
    assert_int_equal(pi.high_watermark, 400);
    assert_int_equal(pi.segments, segs);
    assert_int_equal(read_from(f, "keep", 0).first, 250);
    assert_int_equal(read_from(f, "keep", 0).n, 150);
    a.n = 0;
    append_n(f, "keep", 400, 1, &a);
    fx_run_until(f, &a.n, 1);
    assert_int_equal(a.last_offset, 400);
}

/* The whole log below the start: the active segment is rolled and goes too. */
static void test_delete_records_all(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct sl_partition_info pi;
    int64_t bases[8];

    open_log(f);
    make_topic(f, "all", SL_FLUSH_ALWAYS);
    append_n(f, "all", 0, 20, &a);
    fx_run_until(f, &a.n, 20);
    assert_int_equal(info(f, "all").segments, 1);
    assert_int_equal(sl_log_delete_records(f->log, "all", 0, 20), 0);
    pi = info(f, "all");
    assert_int_equal(pi.log_start_offset, 20);
    assert_int_equal(pi.high_watermark, 20);
    assert_int_equal(pi.segments, 1);
    assert_int_equal(pi.bytes, 0);
    assert_int_equal(segment_files(f, "all", bases, 8), 1);
    assert_int_equal(bases[0], 20);
    assert_int_equal(read_from(f, "all", 0).n, 0);

    /* a crash that lost the new (empty, unsynced) segment's entry: the start file
     * still places the log */
    reopen(f);
    assert_int_equal(info(f, "all").high_watermark, 20);
    sl_log_close(&f->log);
    {
        char path[160];

        snprintf(path, sizeof(path), "%s/all-0/%020d.log", f->dir, 20);
        assert_int_equal(unlink(path), 0);
    }
    open_log(f);
    pi = info(f, "all");
    assert_int_equal(pi.log_start_offset, 20);
    assert_int_equal(pi.high_watermark, 20);
    a.n = 0;
    append_n(f, "all", 20, 1, &a);
    fx_run_until(f, &a.n, 1);
    assert_int_equal(a.errors, 0);
    assert_int_equal(a.last_offset, 20);
}

static void test_roll(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct sl_partition_info pi;
    int64_t bases[8];

    open_log(f);
    make_topic(f, "rl", SL_FLUSH_ALWAYS);
    assert_int_equal(sl_log_roll(f->log, "rl", 0), 0);     /* empty active: no-op */
    assert_int_equal(info(f, "rl").segments, 1);
    append_n(f, "rl", 0, 10, &a);
    fx_run_until(f, &a.n, 10);
    assert_int_equal(sl_log_roll(f->log, "rl", 0), 0);
    assert_int_equal(sl_log_roll(f->log, "rl", 0), 0);
    assert_int_equal(info(f, "rl").segments, 2);
    assert_int_equal(sl_log_roll(f->log, "nope", 0), -ENOENT);
    append_n(f, "rl", 10, 5, &a);
    fx_run_until(f, &a.n, 15);
    assert_int_equal(segment_files(f, "rl", bases, 8), 2);
    assert_int_equal(bases[1], 10);                          /* the roll's base */
    /* everything before the roll goes whole; the start is exact */
    assert_int_equal(sl_log_delete_records(f->log, "rl", 0, 10), 0);
    pi = info(f, "rl");
    assert_int_equal(pi.segments, 1);
    assert_int_equal(pi.log_start_offset, 10);
    assert_int_equal(read_from(f, "rl", 0).n, 5);
}

/* A crash after the start file was renamed in but before (or while) the segments below
 * were deleted: the next open finishes the job. */
static void test_start_file_leftovers(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct sl_partition_info pi;
    int64_t bases[64];
    int n;

    open_log(f);
    make_topic(f, "lo", SL_FLUSH_OS);
    append_n(f, "lo", 0, 500, &a);
    sl_log_close(&f->log);
    write_start_file(f, "lo", "300\n");
    open_log(f);
    pi = info(f, "lo");
    assert_int_equal(pi.log_start_offset, 300);
    assert_int_equal(pi.high_watermark, 500);
    n = segment_files(f, "lo", bases, 64);
    assert_int_equal(n, (int)pi.segments);
    assert_true(bases[0] <= 300);
    assert_true(n == 1 || bases[1] > 300);
    assert_int_equal(read_from(f, "lo", 0).first, 300);

    /* damaged: ignored (the first segment's base is the start) */
    sl_log_close(&f->log);
    write_start_file(f, "lo", "12x\n");
    open_log(f);
    assert_int_equal(info(f, "lo").log_start_offset, bases[0]);

    /* beyond the end (a torn tail cut at recovery): clamped to the high watermark */
    sl_log_close(&f->log);
    write_start_file(f, "lo", "100000\n");
    open_log(f);
    pi = info(f, "lo");
    assert_int_equal(pi.log_start_offset, 500);
    assert_int_equal(read_from(f, "lo", 0).n, 0);
    a.n = 0;
    append_n(f, "lo", 500, 1, &a);
    fx_run_until(f, &a.n, 1);
    assert_int_equal(a.last_offset, 500);
}

/* Segments an fsync in flight holds stay until a later maintain pass. */
static void test_delete_records_fsync_held(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct sl_partition_info pi;
    int done;

    open_log(f);
    make_topic(f, "iv", SL_FLUSH_INTERVAL);
    atomic_store(&hold, 1);
    atomic_store(&datasyncs_entered, 0);
    append_n(f, "iv", 0, 300, &a);                 /* visible now, synced by the timer */
    assert_int_equal(a.n, 300);
    for (int i = 0; i < 2000 && atomic_load(&datasyncs_entered) == 0; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_true(atomic_load(&datasyncs_entered) > 0);
    pi = info(f, "iv");
    assert_true(pi.segments > 2);
    assert_int_equal(sl_log_delete_records(f->log, "iv", 0, 300), 0);
    assert_int_equal(info(f, "iv").log_start_offset, 300);
    assert_true(info(f, "iv").segments > 1);       /* held by the fsync job */
    assert_int_equal(read_from(f, "iv", 0).n, 0);

    done = atomic_load(&datasyncs_done);
    atomic_store(&hold, 0);
    for (int i = 0; i < 2000 && atomic_load(&datasyncs_done) < done + (int)pi.segments; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    for (int i = 0; i < 50; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    sl_log_maintain(f->log);
    pi = info(f, "iv");
    assert_int_equal(pi.segments, 1);
    assert_int_equal(pi.bytes, 0);
    assert_int_equal(pi.log_start_offset, 300);
}

/* The start is durable before anything is deleted: its directory is fsynced. */
static void test_delete_records_durable(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    int before;

    open_log(f);
    make_topic(f, "du", SL_FLUSH_OS);
    append_n(f, "du", 0, 200, &a);
    before = atomic_load(&dir_syncs);
    assert_int_equal(sl_log_delete_records(f->log, "du", 0, 150), 0);
    assert_true(atomic_load(&dir_syncs) > before);
    /* no leftover temp file */
    {
        char path[160];

        snprintf(path, sizeof(path), "%s/du-0/log-start-offset.tmp", f->dir);
        assert_int_equal(access(path, F_OK), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delete_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_records_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_records_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_file_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_records_fsync_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_records_durable, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

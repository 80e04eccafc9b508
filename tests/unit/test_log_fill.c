/*
 * Unit tests for preallocation with flush: always (gateway/log/log.c, partition.c,
 * segment.c): the zero-fill ahead of the active segment runs on the partition's fsync
 * worker after its fsyncs; writes that would reach it, rolls and close wait for it.
 * An interposed pwritev (only the zero-fill calls it) records which thread wrote the
 * zeros, and can hold or fail the workers' fills.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/log/log.h"
#include "gateway/log/recordbatch.h"

#include "fixture.h"

/* ---- interposed pwritev: only the segments' zero-fill (preallocation) calls it ---- */

static pthread_t loop_thread;              /* the tests' thread, which runs the loop */
static atomic_llong zeros_by_loop;         /* bytes zero-filled on the loop thread */
static atomic_llong zeros_by_worker;       /* ... and on the fsync workers */
static atomic_int pwritev_hold;            /* workers' calls wait while this is set */
static atomic_int pwritev_waiting;         /* ... how many wait now */
static atomic_int pwritev_fail;            /* fail this many workers' calls with EIO */

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
    bool on_loop = pthread_equal(pthread_self(), loop_thread);
    ssize_t n;

    if (!on_loop) {
        if (atomic_load(&pwritev_hold)) {
            atomic_fetch_add(&pwritev_waiting, 1);
            while (atomic_load(&pwritev_hold)) {
                usleep(1000);
            }
            atomic_fetch_sub(&pwritev_waiting, 1);
        }
        if (atomic_load(&pwritev_fail) > 0) {
            atomic_fetch_sub(&pwritev_fail, 1);
            errno = EIO;
            return -1;
        }
    }
    n = syscall(SYS_pwritev, fd, iov, iovcnt, (long)offset, (long)((uint64_t)offset >> 32));
    if (n > 0) {
        atomic_fetch_add(on_loop ? &zeros_by_loop : &zeros_by_worker, (long long)n);
    }
    return n;
}

/* fdatasync that fails with EIO while fdatasync_fail is set (any thread). */
static atomic_int fdatasync_fail;

int fdatasync(int fd)
{
    if (atomic_load(&fdatasync_fail)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

/* CLOCK_REALTIME that jumps 2 h forward on every other call while rt_toggle is set: a
 * segment's age crosses segment_ms between two checks of one loop turn. */
static atomic_int rt_toggle;
static atomic_int rt_calls;
int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = (int)syscall(SYS_clock_gettime, id, ts);

    if (rc == 0 && id == CLOCK_REALTIME && atomic_load(&rt_toggle)) {
        if (atomic_fetch_add(&rt_calls, 1) % 2 == 1) {
            ts->tv_sec += 7200;
        }
    }
    return rc;
}

/* ---- setup ---- */

static int setup(void **state)
{
    *state = fx_log_new("/tmp/test_log_fill.");
    loop_thread = pthread_self();
    atomic_store(&zeros_by_loop, 0);
    atomic_store(&zeros_by_worker, 0);
    return 0;
}

static int teardown(void **state)
{
    atomic_store(&pwritev_hold, 0);         /* let a held fill finish */
    fx_log_free(*state);
    atomic_store(&pwritev_fail, 0);
    atomic_store(&fdatasync_fail, 0);
    return 0;
}

/* ---- fill helpers ---- */

#define STEP (64 * 1024)                     /* the fill tests' preallocate */

/* Acks that must come in offset order. */
struct seq {
    int n;
    int errors;
    int disorder;                            /* acks not starting where the last ended */
    int64_t next;
};

static void on_seq(void *arg, const struct sl_append_result *res)
{
    struct seq *s = arg;

    s->n++;
    if (res->status != 0) {
        s->errors++;
    } else if (res->base_offset != s->next) {
        s->disorder++;
    }
    s->next = res->last_offset + 1;
}

/* One append of n records to partition 0, values as append_one writes them for
 * first .. first + n - 1. */
static void append_n(struct fx_log *f, const char *topic, int first, int n, struct seq *s)
{
    struct sl_rec_in r[64];
    char vals[64][48];

    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "value-%06d-padding-padding-padding", first + i);
        memset(&r[i], 0, sizeof(r[i]));
        r[i].timestamp = fx_now_ms();
        r[i].key_len = -1;
        r[i].value = (const uint8_t *)vals[i];
        r[i].value_len = (int32_t)strlen(vals[i]);
    }
    assert_int_equal(sl_log_append(f->log, topic, 0, r, n, on_seq, s), 0);
}

/* Records 0 .. n-1 of partition 0 read back (CRCs checked by the reads), each with its
 * value. */
static void check_values(struct fx_log *f, const char *topic, int n)
{
    struct fx_collected *c = malloc(sizeof(*c));

    assert_non_null(c);
    assert_true(n <= 4096);
    assert_int_equal(fx_read_all(f, topic, 0, 0, c), n);
    for (int i = 0; i < n; i++) {
        char want[48];

        snprintf(want, sizeof(want), "value-%06d-padding-padding-padding", i);
        assert_int_equal(c->offsets[i], i);
        assert_string_equal(c->values[i], want);
    }
    free(c);
}

/* An `always` topic zero-filled STEP bytes at a time, rolling at segment_bytes. */
static void fill_topic(struct fx_log *f, const char *topic, uint64_t segment_bytes)
{
    struct sl_topic_config cfg;

    sl_topic_config_defaults(&cfg);
    cfg.preallocate = STEP;
    cfg.segment_bytes = segment_bytes;
    assert_int_equal(sl_log_topic_configure(f->log, topic, &cfg), 0);
}

static uint64_t file_len(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* Walk the batches of a .log file as recovery would: each parses with a good CRC right
 * after the previous one; whatever follows the last must be zeros. Returns the bytes the
 * batches cover; *records (if not NULL) their records. */
static uint64_t walk_log(const char *path, int64_t *records)
{
    int fd = open(path, O_RDONLY);
    uint64_t len = file_len(path), pos = 0;
    uint8_t *buf = malloc(len + 1);
    int64_t n = 0;

    assert_true(fd >= 0);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
    close(fd);
    while (pos < len) {
        struct sl_rb_batch b;

        if (sl_rb_parse(buf + pos, len - pos, &b) != SL_RB_OK) {
            break;
        }
        n += b.record_count;
        pos += b.total_len;
    }
    for (uint64_t i = pos; i < len; i++) {
        assert_int_equal(buf[i], 0);
    }
    free(buf);
    if (records != NULL) {
        *records = n;
    }
    return pos;
}

/* Hold the workers' zero-fills, then append turns of 50 records (each acked) from
 * offset first until a job plans a fill and its worker waits in it (that turn's ack
 * waits with it). Returns the next offset. */
static int append_until_fill_held(struct fx_log *f, const char *topic, int first,
                                  struct seq *s)
{
    atomic_store(&pwritev_hold, 1);
    for (int turn = 0; turn < 500; turn++) {
        int want = s->n + 1;

        append_n(f, topic, first, 50, s);
        first += 50;
        for (int i = 0; i < 5000 && s->n < want && atomic_load(&pwritev_waiting) == 0; i++) {
            event_base_loop(f->base, EVLOOP_NONBLOCK);
            if (s->n < want) {
                usleep(200);
            }
        }
        if (atomic_load(&pwritev_waiting) > 0) {
            assert_int_equal(s->n, want - 1);
            return first;
        }
        assert_int_equal(s->n, want);
    }
    fail_msg("no zero-fill was planned");
    return first;
}

/* ---- tests ---- */

/* Once less than one step of zeros is left, the next job's worker writes the next step
 * after its fsyncs; the loop writes zeros only for the segment's first append. */
static void test_fill_on_worker(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    struct sl_log_stats st;
    char path[256];
    uint64_t len, data;
    int next = 0;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "fw", 1 << 30);
    snprintf(path, sizeof(path), "%s/fw-0/%020d.log", f->dir, 0);
    for (int turn = 0; turn < 60; turn++) {
        append_n(f, "fw", next, 50, &s);
        next += 50;
        fx_run_until(f, &s.n, turn + 1);
        assert_int_equal(s.n, turn + 1);
        len = file_len(path);
        data = fx_describe(f, "fw").bytes;
        assert_int_equal(len % STEP, 0);
        assert_true(len >= data + STEP);      /* after each job: a step ahead */
    }
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.disorder, 0);
    assert_true(data > 2 * STEP);
    assert_int_equal(atomic_load(&zeros_by_loop), STEP);   /* the first append's */
    assert_int_equal(atomic_load(&zeros_by_worker), (long long)(len - STEP));
    assert_int_equal(walk_log(path, NULL), data);
    check_values(f, "fw", next);

    sl_log_close(&f->log);
    assert_int_equal(file_len(path), data);  /* close cut the zeros */
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.recovered_truncated_bytes, 0);
    check_values(f, "fw", next);
}

/* While a fill is in flight, appends are written up to where it starts and wait in the
 * open batch from there on (none overwritten by its zeros); once the job is back they
 * are written and acknowledged in order. */
static void test_fill_defers_writes(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    struct sl_log_stats st;
    char path[256];
    uint64_t held_data, data;
    int next, acked, appended;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "fd", 1 << 30);
    snprintf(path, sizeof(path), "%s/fd-0/%020d.log", f->dir, 0);
    next = append_until_fill_held(f, "fd", 0, &s);
    acked = s.n;
    appended = acked + 1;
    held_data = fx_describe(f, "fd").bytes;
    assert_int_equal(file_len(path), STEP);
    assert_true(held_data < STEP);

    for (int turn = 0; turn < 30; turn++) {   /* ~65 KiB: past the fill's start */
        append_n(f, "fd", next, 50, &s);
        next += 50;
        appended++;
        fx_run_turns(f, 2);
    }
    data = fx_describe(f, "fd").bytes;
    assert_true(data > held_data);            /* what fits below the fill is written */
    assert_true(data <= STEP);                /* nothing at or past it */
    assert_int_equal(file_len(path), STEP);   /* and the loop wrote no zeros */
    assert_int_equal(s.n, acked);
    assert_int_equal(fx_describe(f, "fd").hw, acked * 50);
    assert_int_equal(atomic_load(&zeros_by_loop), STEP);

    atomic_store(&pwritev_hold, 0);
    fx_run_until(f, &s.n, appended);
    assert_int_equal(s.n, appended);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.disorder, 0);
    assert_int_equal(fx_describe(f, "fd").hw, next);
    data = fx_describe(f, "fd").bytes;
    assert_true(data > STEP && data < 2 * STEP);
    assert_int_equal(atomic_load(&zeros_by_loop), STEP);   /* the worker filled them */
    assert_true(file_len(path) >= 2 * STEP);
    assert_int_equal(walk_log(path, NULL), data);
    check_values(f, "fd", next);

    sl_log_close(&f->log);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.recovered_truncated_bytes, 0);
    check_values(f, "fd", next);
}

/* A roll that comes due during a fill (asked for, or by size) is made after it: the old
 * segment ends at its last batch, the new one gets what waited. */
static void test_fill_then_roll(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    char dir[256];
    char **files;
    int n_files, next, roll_at, appended;
    int64_t recs0, recs1;
    uint64_t covered;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "fr", 96 * 1024);          /* fills stop at 96 KiB, it rolls there */
    snprintf(dir, sizeof(dir), "%s/fr-0", f->dir);

    /* asked for (sl_log_roll, as the MQTT retained store's compaction does) */
    next = append_until_fill_held(f, "fr", 0, &s);
    appended = s.n + 1;
    roll_at = next;
    assert_int_equal(sl_log_roll(f->log, "fr", 0), 0);
    assert_int_equal(fx_describe(f, "fr").segments, 1);
    for (int turn = 0; turn < 5; turn++) {
        append_n(f, "fr", next, 50, &s);
        next += 50;
        appended++;
        fx_run_turns(f, 2);
    }
    assert_int_equal(fx_describe(f, "fr").segments, 1);
    assert_int_equal(fx_describe(f, "fr").hw, (appended - 6) * 50);
    atomic_store(&pwritev_hold, 0);
    fx_run_until(f, &s.n, appended);
    assert_int_equal(s.n, appended);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.disorder, 0);
    files = fx_segment_files(dir, &n_files);
    assert_int_equal(n_files, 2);
    assert_int_equal(walk_log(files[0], &recs0), file_len(files[0]));   /* no zeros */
    assert_int_equal(recs0, roll_at);
    assert_int_equal(atoll(strrchr(files[1], '/') + 1), roll_at);
    fx_free_files(files, n_files);

    /* by size (another topic): the batch that would pass 96 KiB waits for the fill,
     * then rolls */
    memset(&s, 0, sizeof(s));
    fill_topic(f, "fs", 96 * 1024);
    snprintf(dir, sizeof(dir), "%s/fs-0", f->dir);
    next = append_until_fill_held(f, "fs", 0, &s);
    appended = s.n + 1;
    for (int turn = 0; turn < 45; turn++) {   /* ~100 KiB in all */
        append_n(f, "fs", next, 50, &s);
        next += 50;
        appended++;
        fx_run_turns(f, 2);
    }
    assert_int_equal(fx_describe(f, "fs").segments, 1);
    assert_true(fx_describe(f, "fs").bytes <= STEP);
    files = fx_segment_files(dir, &n_files);
    assert_int_equal(n_files, 1);
    assert_int_equal(file_len(files[0]), STEP);
    fx_free_files(files, n_files);
    atomic_store(&pwritev_hold, 0);
    fx_run_until(f, &s.n, appended);
    assert_int_equal(s.n, appended);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.disorder, 0);
    files = fx_segment_files(dir, &n_files);
    assert_int_equal(n_files, 2);
    covered = walk_log(files[0], &recs0);
    assert_int_equal(covered, file_len(files[0]));          /* cut at its last batch */
    assert_true(covered <= 96 * 1024);
    assert_int_equal(atoll(strrchr(files[1], '/') + 1), recs0);
    (void)walk_log(files[1], &recs1);
    assert_int_equal(recs0 + recs1, next);
    fx_free_files(files, n_files);
    check_values(f, "fs", next);
}

static void *release_fills_later(void *arg)
{
    (void)arg;
    usleep(200 * 1000);
    atomic_store(&pwritev_hold, 0);
    return NULL;
}

/* Closing with a fill in flight: close waits for it, writes and syncs what waited,
 * acknowledges everything, and cuts the segment at its last batch. */
static void test_fill_close(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    struct sl_log_stats st;
    char path[256];
    pthread_t t;
    int next, appended;
    int64_t written;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "fc", 1 << 30);
    snprintf(path, sizeof(path), "%s/fc-0/%020d.log", f->dir, 0);
    next = append_until_fill_held(f, "fc", 0, &s);
    appended = s.n + 1;
    for (int turn = 0; turn < 35; turn++) {   /* ~77 KiB: some wait in the open batch */
        append_n(f, "fc", next, 50, &s);
        next += 50;
        appended++;
        fx_run_turns(f, 1);
    }
    (void)walk_log(path, &written);
    assert_true(written < next);              /* some wait in the open batch */
    assert_int_equal(atomic_load(&pwritev_waiting), 1);
    assert_int_equal(pthread_create(&t, NULL, release_fills_later, NULL), 0);
    sl_log_close(&f->log);
    pthread_join(t, NULL);
    assert_int_equal(s.n, appended);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.disorder, 0);
    assert_int_equal(walk_log(path, NULL), file_len(path));
    assert_true(file_len(path) > STEP);

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.recovered_truncated_bytes, 0);
    assert_int_equal(fx_describe(f, "fc").hw, next);
    check_values(f, "fc", next);
}

/* A fill that fails is no fsync failure: the partition carries on, the next fill is
 * planned again. */
static void test_fill_fails(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    struct sl_log_stats st;
    char path[256];
    int next = 0, turn;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "ff", 1 << 30);
    snprintf(path, sizeof(path), "%s/ff-0/%020d.log", f->dir, 0);
    atomic_store(&pwritev_fail, 1);
    for (turn = 0; turn < 100 && atomic_load(&pwritev_fail) > 0; turn++) {
        append_n(f, "ff", next, 50, &s);
        next += 50;
        fx_run_until(f, &s.n, turn + 1);
    }
    assert_int_equal(atomic_load(&pwritev_fail), 0);
    assert_int_equal(file_len(path), STEP);  /* cut back */
    assert_false(fx_part_info(f, "ff").failed);
    for (int i = 0; i < 20; i++, turn++) {
        append_n(f, "ff", next, 50, &s);
        next += 50;
        fx_run_until(f, &s.n, turn + 1);
    }
    assert_int_equal(s.n, turn);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.disorder, 0);
    assert_true(file_len(path) >= 2 * STEP);
    assert_true(atomic_load(&zeros_by_worker) >= STEP);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.fsync_errors, 0);
    assert_int_equal(st.append_errors, 0);
    check_values(f, "ff", next);
}

/* A job whose fsync fails does not write the zero-fill it planned: the partition has
 * failed, nothing more is written to it (the loop wrote only the first step). */
static void test_fill_not_after_failed_fsync(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "nf", 1 << 30);
    atomic_store(&fdatasync_fail, 1);
    append_n(f, "nf", 0, 50, &s);        /* less than a step left: its job plans a fill */
    fx_run_until(f, &s.n, 1);
    atomic_store(&fdatasync_fail, 0);
    assert_int_equal(s.errors, 1);
    assert_true(fx_part_info(f, "nf").failed);
    assert_int_equal(atomic_load(&zeros_by_loop), STEP);
    assert_int_equal(atomic_load(&zeros_by_worker), 0);
}

/* A reload from always to os (preallocate 0, segment_bytes shrunk below what is
 * written) while a fill is in flight: the os appends made meanwhile wait for the fill
 * instead of failing, then everything is acknowledged in order and reads back, also
 * after a reopen. */
static void test_fill_reload_to_os(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    struct sl_topic_config cfg;
    int next, appended;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "ro", 1 << 30);
    next = append_until_fill_held(f, "ro", 0, &s);
    appended = s.n + 1;
    sl_topic_config_defaults(&cfg);
    cfg.preallocate = 0;
    cfg.flush = SL_FLUSH_OS;
    cfg.segment_bytes = 32 * 1024;
    assert_int_equal(sl_log_topic_configure(f->log, "ro", &cfg), 0);
    for (int turn = 0; turn < 40; turn++) {
        append_n(f, "ro", next, 50, &s);
        next += 50;
        appended++;
        fx_run_turns(f, 2);
    }
    atomic_store(&pwritev_hold, 0);
    fx_run_until(f, &s.n, appended);
    assert_int_equal(s.n, appended);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.disorder, 0);
    check_values(f, "ro", next);
    sl_log_close(&f->log);
    fx_log_open_flush(f, SL_FLUSH_OS);
    check_values(f, "ro", next);
}

/* Advancing the log start (sl_log_delete_records, MQTT retained compaction) during a
 * fill: accepted, and the appends held by the fill are all acknowledged. */
static void test_fill_delete_records(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    int appended;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "dr", 1 << 30);
    (void)append_until_fill_held(f, "dr", 0, &s);
    appended = s.n + 1;
    assert_int_equal(sl_log_delete_records(f->log, "dr", 0, fx_describe(f, "dr").hw), 0);
    atomic_store(&pwritev_hold, 0);
    fx_run_until(f, &s.n, appended);
    assert_int_equal(s.n, appended);
    assert_int_equal(s.errors, 0);
}

/* A roll that comes due by age between write_open's check and sl_partition_write's
 * (the clock jumps between the two) while a fill is in flight: the batch waits for the
 * fill, it does not fail with -EAGAIN. */
static void test_fill_roll_due_between_checks(void **state)
{
    struct fx_log *f = *state;
    struct seq s = { 0 };
    struct sl_topic_config cfg;
    int next, appended;

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    fill_topic(f, "tt", 1 << 30);
    next = append_until_fill_held(f, "tt", 0, &s);
    appended = s.n + 1;
    sl_topic_config_defaults(&cfg);
    cfg.preallocate = STEP;
    cfg.segment_bytes = 1 << 30;
    cfg.segment_ms = 3600 * 1000;
    assert_int_equal(sl_log_topic_configure(f->log, "tt", &cfg), 0);
    append_n(f, "tt", next, 5, &s);
    next += 5;
    appended++;
    atomic_store(&rt_calls, 0);
    atomic_store(&rt_toggle, 1);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    atomic_store(&rt_toggle, 0);
    assert_true(atomic_load(&rt_calls) >= 2);     /* both checks read the clock */
    atomic_store(&pwritev_hold, 0);
    fx_run_until(f, &s.n, appended);
    assert_int_equal(s.n, appended);
    assert_int_equal(s.errors, 0);
    check_values(f, "tt", next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fill_on_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_defers_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_then_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_not_after_failed_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_reload_to_os, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_delete_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_roll_due_between_checks, setup, teardown),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

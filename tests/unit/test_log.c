/* Unit tests for the embedded log core (gateway/log/log.c, partition.c, cursor.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
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
#include <event2/thread.h>

#include "gateway/log/log.h"
#include "gateway/log/segment.h"

#include "fixture.h"

/* ---- interposed fdatasync / fsync (the log's segments call these) ---- */

/* The length each file (by inode) had at its last successful fdatasync. */
#define MAX_SYNCED 64
static pthread_mutex_t synced_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { ino_t ino; off_t size; } synced[MAX_SYNCED];
static int n_synced;

static void note_synced(int fd)
{
    struct stat st;
    int i;

    if (fstat(fd, &st) != 0) {
        return;
    }
    pthread_mutex_lock(&synced_mu);
    for (i = 0; i < n_synced && synced[i].ino != st.st_ino; i++) {
    }
    if (i < MAX_SYNCED) {
        synced[i].ino = st.st_ino;
        synced[i].size = st.st_size;
        n_synced += i == n_synced;
    }
    pthread_mutex_unlock(&synced_mu);
}

/* The length the file at path had when last fdatasynced, -1 if never. */
static off_t synced_size(const char *path)
{
    struct stat st;
    off_t size = -1;

    assert_int_equal(stat(path, &st), 0);
    pthread_mutex_lock(&synced_mu);
    for (int i = 0; i < n_synced; i++) {
        if (synced[i].ino == st.st_ino) {
            size = synced[i].size;
        }
    }
    pthread_mutex_unlock(&synced_mu);
    return size;
}

static atomic_int fdatasync_fail;        /* fail this many calls with EIO */
static atomic_int fdatasync_hold;        /* ... each one only once this is 0 again */

int fdatasync(int fd)
{
    if (atomic_load(&fdatasync_fail) > 0) {
        atomic_fetch_sub(&fdatasync_fail, 1);
        while (atomic_load(&fdatasync_hold)) {
            usleep(1000);
        }
        errno = EIO;
        return -1;
    }
    int rc = (int)syscall(SYS_fdatasync, fd);
    if (rc == 0) {
        note_synced(fd);
    }
    return rc;
}

/* Directories fsynced (by real path), for the durability-of-entries test. */
#define MAX_DIR_SYNCS 256
static pthread_mutex_t dir_sync_mu = PTHREAD_MUTEX_INITIALIZER;
static char dir_syncs[MAX_DIR_SYNCS][PATH_MAX];
static int n_dir_syncs;

int fsync(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        char link[64];
        char path[PATH_MAX];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof(path) - 1);
        if (n > 0) {
            path[n] = '\0';
            pthread_mutex_lock(&dir_sync_mu);
            if (n_dir_syncs < MAX_DIR_SYNCS) {
                strcpy(dir_syncs[n_dir_syncs++], path);
            }
            pthread_mutex_unlock(&dir_sync_mu);
        }
    }
    return (int)syscall(SYS_fsync, fd);
}

static void dir_syncs_reset(void)
{
    pthread_mutex_lock(&dir_sync_mu);
    n_dir_syncs = 0;
    pthread_mutex_unlock(&dir_sync_mu);
}

/* How often the directory at path was fsynced since the last reset. */
static int dir_sync_count(const char *path)
{
    char real[PATH_MAX];
    int n = 0;

    assert_non_null(realpath(path, real));
    pthread_mutex_lock(&dir_sync_mu);
    for (int i = 0; i < n_dir_syncs; i++) {
        n += strcmp(dir_syncs[i], real) == 0;
    }
    pthread_mutex_unlock(&dir_sync_mu);
    return n;
}

static int setup(void **state)
{
    *state = fx_log_new("/tmp/test_log.");
    return 0;
}

static int teardown(void **state)
{
    atomic_store(&fdatasync_hold, 0);       /* let a held fsync worker finish */
    fx_log_free(*state);
    atomic_store(&fdatasync_fail, 0);
    sl_segment_max_bytes = UINT32_MAX;
    return 0;
}

/* Append one record with value "v<i>" (and a key when key != NULL). */
static void append_one(struct fx_log *f, const char *topic, int32_t part, const char *key,
                       int i, int64_t ts, struct fx_acks *a)
{
    char val[64];
    struct sl_rec_in r;

    memset(&r, 0, sizeof(r));
    snprintf(val, sizeof(val), "value-%06d-padding-padding-padding", i);
    r.timestamp = ts;
    r.key = (const uint8_t *)key;
    r.key_len = key ? (int32_t)strlen(key) : -1;
    r.value = (const uint8_t *)val;
    r.value_len = (int32_t)strlen(val);
    assert_int_equal(sl_log_append(f->log, topic, part, &r, 1, fx_on_ack, a), 0);
}

/* ---- tests ---- */

static void test_names_and_defaults(void **state)
{
    struct sl_topic_config c;

    (void)state;
    sl_topic_config_defaults(&c);
    assert_int_equal(c.partitions, 1);
    assert_int_equal(c.flush, SL_FLUSH_ALWAYS);
    assert_true(sl_log_topic_name_valid("orders"));
    assert_true(sl_log_topic_name_valid("a-b.c_d-1"));
    assert_false(sl_log_topic_name_valid(""));
    assert_false(sl_log_topic_name_valid("."));
    assert_false(sl_log_topic_name_valid(".."));
    assert_false(sl_log_topic_name_valid("a/b"));
    assert_false(sl_log_topic_name_valid("a b"));
    assert_false(sl_log_topic_name_valid(NULL));
    assert_true(sl_log_topic_name_valid("..."));
    assert_true(sl_log_topic_name_valid(".a"));
    assert_true(sl_log_topic_name_valid("ZZ-09_az.AZ"));
    assert_false(sl_log_topic_name_valid("ab\xc3\xa9"));
    assert_false(sl_log_topic_name_valid("a:b"));
    {
        char name[252];
        memset(name, 'x', sizeof(name));
        name[249] = '\0';
        assert_true(sl_log_topic_name_valid(name));      /* 249 bytes: the longest */
        name[249] = 'x';
        name[250] = '\0';
        assert_false(sl_log_topic_name_valid(name));
        name[250] = 'x';
        name[251] = '\0';
        assert_false(sl_log_topic_name_valid(name));
    }
}

struct rt_check {
    int n;
    int bad;
};

static int check_roundtrip(void *arg, const char *topic, int32_t partition,
                           const struct sl_record *rec)
{
    struct rt_check *c = arg;
    struct sl_rb_hdr_iter it;
    struct sl_hdr h;
    char want[32];
    int nh = 0;

    snprintf(want, sizeof(want), "val-%d", c->n);
    if (strcmp(topic, "rt") != 0 || partition != 0 || rec->offset != c->n ||
        rec->timestamp != 1700000000000LL + c->n || rec->key_len != 3 ||
        memcmp(rec->key, "key", 3) != 0 || rec->value_len != (int32_t)strlen(want) ||
        memcmp(rec->value, want, strlen(want)) != 0 || rec->n_headers != 2) {
        c->bad++;
    }
    sl_rb_hdr_iter_init(&it, rec);
    while (sl_rb_hdr_iter_next(&it, &h) == 1) {
        if (nh == 0 && (h.name_len != 2 || memcmp(h.name, "h1", 2) != 0 || h.value_len != 2 ||
                        memcmp(h.value, "v1", 2) != 0)) {
            c->bad++;
        }
        if (nh == 1 && (h.name_len != 2 || memcmp(h.name, "h2", 2) != 0 || h.value_len != -1)) {
            c->bad++;
        }
        nh++;
    }
    if (nh != 2) {
        c->bad++;
    }
    c->n++;
    return 0;
}

static void test_roundtrip(void **state)
{
    struct fx_log *f = *state;
    struct sl_hdr hdrs[2] = {
        { .name = "h1", .name_len = 2, .value = (const uint8_t *)"v1", .value_len = 2 },
        { .name = "h2", .name_len = 2, .value = NULL, .value_len = -1 },
    };
    struct sl_rec_in recs[10];
    char vals[10][16];
    struct fx_acks a = { 0 };
    struct rt_check chk = { 0 };
    int64_t next = -1;

    fx_log_open_flush(f, SL_FLUSH_OS);
    for (int i = 0; i < 10; i++) {
        snprintf(vals[i], sizeof(vals[i]), "val-%d", i);
        recs[i] = (struct sl_rec_in){ .timestamp = 1700000000000LL + i,
                                      .key = (const uint8_t *)"key", .key_len = 3,
                                      .value = (const uint8_t *)vals[i],
                                      .value_len = (int32_t)strlen(vals[i]),
                                      .headers = hdrs, .n_headers = 2 };
    }
    assert_int_equal(sl_log_append(f->log, "rt", 0, recs, 4, fx_on_ack, &a), 0);
    assert_int_equal(sl_log_append(f->log, "rt", 0, recs + 4, 6, fx_on_ack, &a), 0);
    assert_int_equal(a.n, 2);                /* flush os: acked right away */
    assert_int_equal(a.errors, 0);
    assert_int_equal(a.last_offset, 9);
    assert_int_equal(sl_log_read(f->log, "rt", 0, 0, 100, 0, check_roundtrip, &chk, &next), 10);
    assert_int_equal(chk.n, 10);
    assert_int_equal(chk.bad, 0);
    assert_int_equal(next, 10);
    /* from the middle: records below the offset are skipped */
    chk.n = 6;
    assert_int_equal(sl_log_read(f->log, "rt", 0, 6, 100, 0, check_roundtrip, &chk, &next), 4);
    assert_int_equal(chk.bad, 0);
    /* max_records */
    chk.n = 0;
    assert_int_equal(sl_log_read(f->log, "rt", 0, 0, 3, 0, check_roundtrip, &chk, &next), 3);
    assert_int_equal(next, 3);
    /* at the end, unknown topic, bad partition */
    assert_int_equal(sl_log_read(f->log, "rt", 0, 10, 100, 0, check_roundtrip, &chk, &next), 0);
    assert_int_equal(sl_log_read(f->log, "nope", 0, 0, 100, 0, check_roundtrip, &chk, &next),
                     -ENOENT);
    assert_int_equal(sl_log_read(f->log, "rt", 5, 0, 100, 0, check_roundtrip, &chk, &next),
                     -EINVAL);
}

static void test_partitioner(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config c;
    struct fx_acks a = { 0 };
    int seen[4] = { 0 };

    fx_log_open_flush(f, SL_FLUSH_OS);
    sl_topic_config_defaults(&c);
    c.partitions = 4;
    c.flush = SL_FLUSH_OS;
    assert_int_equal(sl_log_topic_configure(f->log, "keyed", &c), 0);
    assert_int_equal(sl_log_partitions(f->log, "keyed"), 4);
    assert_int_equal(sl_log_partitions(f->log, "missing"), -ENOENT);
    assert_int_equal(sl_log_high_watermark(f->log, "keyed", 3), 0);
    assert_int_equal(sl_log_high_watermark(f->log, "keyed", 4), -ENOENT);
    assert_int_equal(sl_log_high_watermark(f->log, "keyed", -1), -ENOENT);
    assert_int_equal(sl_log_high_watermark(f->log, "missing", 0), -ENOENT);
    /* Kafka's Java client: murmur2("foobar") = -790332482 -> partition 2 of 4 */
    assert_int_equal(sl_log_partition_for(f->log, "keyed", (const uint8_t *)"foobar", 6), 2);
    for (int i = 0; i < 5; i++) {
        append_one(f, "keyed", -1, "foobar", i, fx_now_ms(), &a);
        assert_int_equal(a.partition, 2);
    }
    append_one(f, "keyed", -1, "device-17", 0, fx_now_ms(), &a);
    int32_t p17 = a.partition;
    append_one(f, "keyed", -1, "device-17", 1, fx_now_ms(), &a);
    assert_int_equal(a.partition, p17);
    /* keyless records are spread over all partitions */
    for (int i = 0; i < 8; i++) {
        append_one(f, "keyed", -1, NULL, i, fx_now_ms(), &a);
        seen[a.partition]++;
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(seen[i], 2);
    }
    assert_int_equal(a.errors, 0);
    assert_int_equal(sl_log_partition_for(f->log, "missing", NULL, -1), -ENOENT);
    /* 5 x foobar, then the keyless ones: 2 per partition */
    assert_int_equal(sl_log_high_watermark(f->log, "keyed", 2), 5 + 2 + (p17 == 2 ? 2 : 0));

    /* the same through a topic handle */
    struct sl_topic *t = sl_log_find_topic(f->log, "keyed");
    struct sl_rec_in r;
    assert_non_null(t);
    assert_null(sl_log_find_topic(f->log, "missing"));
    assert_null(sl_log_find_topic(f->log, NULL));
    assert_int_equal(sl_log_topic_partitions(t), 4);
    assert_int_equal(sl_log_topic_partition_for(t, (const uint8_t *)"foobar", 6), 2);
    assert_int_equal(sl_log_topic_partition_for(t, (const uint8_t *)"device-17", 9), p17);
    memset(&r, 0, sizeof(r));
    r.timestamp = fx_now_ms();
    r.key = (const uint8_t *)"foobar";
    r.key_len = 6;
    r.value = (const uint8_t *)"v";
    r.value_len = 1;
    assert_int_equal(sl_log_append_topic(f->log, t, -1, &r, 1, fx_on_ack, &a), 0);
    assert_int_equal(a.partition, 2);
    assert_int_equal(a.last_offset, 5 + 2 + (p17 == 2 ? 2 : 0));
    assert_int_equal(sl_log_append_topic(f->log, t, 4, &r, 1, fx_on_ack, &a), -EINVAL);
    assert_int_equal(sl_log_append_topic(f->log, NULL, 0, &r, 1, fx_on_ack, &a), -EINVAL);
    assert_int_equal(a.errors, 0);
}

static void small_segments(struct fx_log *f, const char *topic, int64_t retention_bytes,
                           int64_t retention_ms)
{
    struct sl_topic_config c;

    sl_topic_config_defaults(&c);
    c.flush = SL_FLUSH_OS;
    c.segment_bytes = 4096;
    c.retention_bytes = retention_bytes;
    c.retention_ms = retention_ms;
    assert_int_equal(sl_log_topic_configure(f->log, topic, &c), 0);
}

static void test_roll_by_size(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct fx_info in;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    small_segments(f, "roll", -1, -1);
    for (int i = 0; i < 500; i++) {
        append_one(f, "roll", 0, NULL, i, fx_now_ms(), &a);
    }
    assert_int_equal(a.n, 500);
    assert_int_equal(a.errors, 0);
    in = fx_describe(f, "roll");
    assert_true(in.segments >= 5);
    assert_int_equal(in.hw, 500);
    assert_int_equal(fx_read_all(f, "roll", 0, 0, c), 500);
    for (int i = 0; i < 500; i++) {
        char want[48];

        snprintf(want, sizeof(want), "value-%06d-padding-padding-padding", i);
        assert_int_equal(c->offsets[i], i);
        assert_string_equal(c->values[i], want);
    }
    /* from a later segment */
    assert_int_equal(fx_read_all(f, "roll", 0, 333, c), 167);
    assert_int_equal(c->offsets[0], 333);
    free(c);
}

static void test_retention_bytes(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct sl_log_stats st;
    struct fx_info before, after;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    small_segments(f, "rb", 8192, -1);
    for (int i = 0; i < 600; i++) {
        append_one(f, "rb", 0, NULL, i, fx_now_ms(), &a);
    }
    before = fx_describe(f, "rb");
    assert_int_equal(before.log_start, 0);
    assert_true(before.bytes > 8192);
    sl_log_maintain(f->log);
    after = fx_describe(f, "rb");
    assert_true(after.log_start > 0);
    assert_true(after.segments < before.segments);
    assert_true(after.bytes <= 8192);
    assert_int_equal(after.hw, 600);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.segments_deleted, before.segments - after.segments);
    /* reading from 0 starts at the new log start */
    assert_int_equal(fx_read_all(f, "rb", 0, 0, c), 600 - after.log_start);
    assert_int_equal(c->offsets[0], after.log_start);
    free(c);
}

static void test_retention_age(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_info before, after;
    int64_t old = fx_now_ms() - 10LL * 24 * 3600 * 1000;

    fx_log_open_flush(f, SL_FLUSH_OS);
    small_segments(f, "ra", -1, 24LL * 3600 * 1000);
    for (int i = 0; i < 300; i++) {
        append_one(f, "ra", 0, NULL, i, old, &a);        /* ten days old */
    }
    for (int i = 300; i < 400; i++) {
        append_one(f, "ra", 0, NULL, i, fx_now_ms(), &a);   /* fresh */
    }
    before = fx_describe(f, "ra");
    sl_log_maintain(f->log);
    after = fx_describe(f, "ra");
    assert_true(after.segments < before.segments);
    assert_true(after.log_start > 0);
    assert_true(after.log_start <= 300);                  /* fresh records stay */
    assert_true(sl_log_offset_for_time(f->log, "ra", 0, fx_now_ms() - 60000) >= after.log_start);
}

static void test_reopen(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    small_segments(f, "re-open-me", -1, -1);
    for (int i = 0; i < 200; i++) {
        append_one(f, "re-open-me", 0, NULL, i, fx_now_ms(), &a);
    }
    sl_log_close(&f->log);
    assert_null(f->log);
    fx_log_open_flush(f, SL_FLUSH_OS);
    assert_int_equal(sl_log_partitions(f->log, "re-open-me"), 1);
    assert_int_equal(fx_describe(f, "re-open-me").hw, 200);
    assert_true(fx_describe(f, "re-open-me").segments > 1);
    assert_int_equal(fx_read_all(f, "re-open-me", 0, 0, c), 200);
    assert_int_equal(c->offsets[199], 199);
    append_one(f, "re-open-me", 0, NULL, 200, fx_now_ms(), &a);
    assert_int_equal(a.last_offset, 200);
    free(c);
}

static void test_recovery(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct sl_log_stats st;
    char path[256];
    char garbage[333];
    int fd;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    for (int i = 0; i < 50; i++) {
        append_one(f, "rec", 0, NULL, i, fx_now_ms(), &a);
    }
    sl_log_close(&f->log);
    snprintf(path, sizeof(path), "%s/rec-0/00000000000000000000.log", f->dir);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    memset(garbage, 0xA5, sizeof(garbage));
    assert_int_equal(write(fd, garbage, sizeof(garbage)), (ssize_t)sizeof(garbage));
    close(fd);

    fx_log_open_flush(f, SL_FLUSH_OS);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.recovered_truncated_bytes, sizeof(garbage));
    assert_int_equal(fx_describe(f, "rec").hw, 50);
    append_one(f, "rec", 0, NULL, 50, fx_now_ms(), &a);
    assert_int_equal(a.last_offset, 50);
    assert_int_equal(fx_read_all(f, "rec", 0, 0, c), 51);
    assert_int_equal(c->offsets[50], 50);
    assert_string_equal(c->values[50], "value-000050-padding-padding-padding");
    free(c);
}

static void test_flush_always_group_commit(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct sl_log_stats st;
    struct fx_collected *c = malloc(sizeof(*c));
    int64_t next = 0;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    for (int i = 0; i < 200; i++) {
        append_one(f, "durable", 0, NULL, i, fx_now_ms(), &a);
    }
    /* nothing acked nor visible before the fsync */
    assert_int_equal(a.n, 0);
    assert_int_equal(fx_describe(f, "durable").hw, 0);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_log_read(f->log, "durable", 0, 0, 100, 0, fx_collect, c, &next), 0);
    fx_run_until(f, &a.n, 200);
    assert_int_equal(a.n, 200);
    assert_int_equal(a.errors, 0);
    assert_int_equal(a.last_offset, 199);
    assert_int_equal(fx_describe(f, "durable").hw, 200);
    sl_log_get_stats(f->log, &st);
    assert_true(st.fsyncs >= 1);
    assert_true(st.fsyncs < 200);             /* shared fsyncs */
    assert_true(st.fsync_seconds_sum > 0);
    assert_true(st.fsync_bucket[SL_LOG_FSYNC_BUCKETS - 1] <= st.fsyncs);
    assert_int_equal(fx_read_all(f, "durable", 0, 0, c), 200);
    free(c);
}

static int is_log_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);

    return n > 4 && strcmp(d->d_name + n - 4, ".log") == 0;
}

/* Lengths of the .log files of dir in offset order; returns how many (at most max). */
static int log_file_sizes(const char *dir, uint64_t *sizes, off_t *synced_at, int max)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_log_file, alphasort);

    assert_true(n > 0 && n <= max);
    for (int i = 0; i < n; i++) {
        char path[512];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        assert_int_equal(stat(path, &st), 0);
        sizes[i] = (uint64_t)st.st_size;
        if (synced_at != NULL) {
            synced_at[i] = synced_size(path);
        }
        free(names[i]);
    }
    free(names);
    return n;
}

/* flush: always with preallocation: the active segment runs ahead in zeros; a roll
 * cuts the old one back to its last batch and syncs that length with the next job;
 * close cuts the active one; everything reads back after a reopen. */
static void test_preallocate_roll(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct sl_topic_config cfg;
    char dir[512];
    uint64_t sizes[64];
    off_t synced_at[64];
    int n;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    sl_topic_config_defaults(&cfg);
    cfg.segment_bytes = 4096;
    cfg.preallocate = 64 * 1024;
    assert_int_equal(sl_log_topic_configure(f->log, "pre", &cfg), 0);
    for (int i = 0; i < 300; i++) {
        append_one(f, "pre", 0, NULL, i, fx_now_ms(), &a);
        if (i % 10 == 9) {
            fx_run_until(f, &a.n, i + 1);          /* ten per turn, each turn acked */
        }
    }
    /* a roll of a segment whose appends are all synced already (as the age roll does):
     * the cut is synced with the next append's job, before that append is acked */
    assert_int_equal(sl_log_roll(f->log, "pre", 0), 0);
    append_one(f, "pre", 0, NULL, 300, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 301);
    assert_int_equal(a.n, 301);
    assert_int_equal(a.errors, 0);
    snprintf(dir, sizeof(dir), "%s/pre-0", f->dir);
    n = log_file_sizes(dir, sizes, synced_at, 64);
    assert_true(n >= 3);
    for (int i = 0; i < n - 1; i++) {
        assert_true(sizes[i] <= 4096);          /* cut at the roll ... */
        assert_int_equal(synced_at[i], (off_t)sizes[i]);   /* ... and that length synced */
    }
    /* the active one is zero-filled ahead, but not past segment_bytes (it rolls there) */
    assert_int_equal(sizes[n - 1], 4096);
    assert_int_equal(synced_at[n - 1], 4096);

    sl_log_close(&f->log);
    assert_int_equal(log_file_sizes(dir, sizes, NULL, 64), n);
    assert_true(sizes[n - 1] > 0 && sizes[n - 1] <= 4096);     /* close cut it */
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    assert_int_equal(fx_describe(f, "pre").hw, 301);
    assert_int_equal(fx_read_all(f, "pre", 0, 0, c), 301);
    for (int i = 0; i < 301; i++) {
        char want[48];

        snprintf(want, sizeof(want), "value-%06d-padding-padding-padding", i);
        assert_string_equal(c->values[i], want);
    }
    free(c);
}

/* Each ack issues the next append: a closed loop of producers, like the bench. */
struct chain {
    struct fx_log *f;
    int left;
    int done;
};

static void chain_ack(void *arg, const struct sl_append_result *res)
{
    struct chain *ch = arg;
    struct sl_rec_in r = { .timestamp = 1, .key_len = -1, .value = (const uint8_t *)"x",
                           .value_len = 1 };

    assert_int_equal(res->status, 0);
    ch->done++;
    if (ch->left > 0) {
        ch->left--;
        assert_int_equal(sl_log_append(ch->f->log, "chain", 0, &r, 1, chain_ack, ch), 0);
    }
}

static void test_flush_always_chained(void **state)
{
    struct fx_log *f = *state;
    struct chain ch = { .f = f, .left = 300, .done = 0 };
    struct sl_log_stats st;
    struct sl_rec_in r = { .timestamp = 1, .key_len = -1, .value = (const uint8_t *)"x",
                           .value_len = 1 };

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sl_log_append(f->log, "chain", 0, &r, 1, chain_ack, &ch), 0);
    }
    fx_run_until(f, &ch.done, 320);
    assert_int_equal(ch.done, 320);
    assert_int_equal(fx_describe(f, "chain").hw, 320);
    sl_log_get_stats(f->log, &st);
    assert_true(st.fsyncs < 320);
}

static void test_close_fires_pending(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };

    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    for (int i = 0; i < 10; i++) {
        append_one(f, "pend", 0, NULL, i, fx_now_ms(), &a);
    }
    assert_int_equal(a.n, 0);
    sl_log_close(&f->log);
    assert_int_equal(a.n, 10);
    assert_int_equal(a.errors, 0);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    assert_int_equal(fx_describe(f, "pend").hw, 10);
}

static void test_flush_interval(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config c;
    struct fx_acks a = { 0 };
    struct sl_log_stats st;

    fx_log_open_flush(f, SL_FLUSH_OS);
    sl_topic_config_defaults(&c);
    c.flush = SL_FLUSH_INTERVAL;
    c.flush_interval_ms = 10;
    assert_int_equal(sl_log_topic_configure(f->log, "iv", &c), 0);
    append_one(f, "iv", 0, NULL, 0, fx_now_ms(), &a);
    assert_int_equal(a.n, 1);                 /* acked after write() */
    assert_int_equal(fx_describe(f, "iv").hw, 1);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.fsyncs, 0);
    for (int i = 0; i < 500 && st.fsyncs == 0; i++) {
        fx_run_turns(f, 1);
        sl_log_get_stats(f->log, &st);
    }
    assert_int_equal(st.fsyncs, 1);           /* the timer synced the dirty partition */
    fx_run_turns(f, 30);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.fsyncs, 1);           /* clean: no more fsyncs */
}

static void test_corrupt_read_eio(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    char path[256];
    int64_t next = 0;
    int fd;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    for (int i = 0; i < 5; i++) {
        append_one(f, "bad", 0, NULL, i, fx_now_ms(), &a);
    }
    snprintf(path, sizeof(path), "%s/bad-0/00000000000000000000.log", f->dir);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "XX", 2, 70), 2);   /* inside the first batch's records */
    close(fd);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_log_read(f->log, "bad", 0, 0, 100, 0, fx_collect, c, &next), -EIO);
    assert_int_equal(c->n, 0);
    free(c);
}

/* ---- cursors ---- */

struct wake_count {
    int wakes;
    struct sl_cursor *close_me;
};

static void on_wake(struct sl_cursor *cur, void *arg)
{
    struct wake_count *w = arg;

    (void)cur;
    w->wakes++;
    if (w->close_me != NULL) {
        sl_cursor_close(&w->close_me);
    }
}

static void test_cursor_starts(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct sl_cursor *cur;
    int64_t t0 = fx_now_ms() - 100000;
    int err = 0;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    for (int i = 0; i < 30; i++) {
        append_one(f, "cur", 0, NULL, i, t0 + i * 1000, &a);
    }
    cur = sl_cursor_open(f->log, "cur", 0, (struct sl_start){ SL_START_EARLIEST, 0 },
                         NULL, NULL, &err);
    assert_non_null(cur);
    assert_int_equal(sl_cursor_position(cur), 0);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_cursor_poll(cur, 10, 0, fx_collect, c), 10);
    assert_int_equal(sl_cursor_position(cur), 10);
    assert_int_equal(c->offsets[9], 9);
    sl_cursor_close(&cur);
    assert_null(cur);

    cur = sl_cursor_open(f->log, "cur", 0, (struct sl_start){ SL_START_LATEST, 0 },
                         NULL, NULL, &err);
    assert_int_equal(sl_cursor_position(cur), 30);
    assert_int_equal(sl_cursor_poll(cur, 10, 0, fx_collect, c), 0);
    sl_cursor_close(&cur);

    cur = sl_cursor_open(f->log, "cur", 0, (struct sl_start){ SL_START_OFFSET, 17 },
                         NULL, NULL, &err);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_cursor_poll(cur, 100, 0, fx_collect, c), 13);
    assert_int_equal(c->offsets[0], 17);
    sl_cursor_seek(cur, 5);
    assert_int_equal(sl_cursor_position(cur), 5);
    sl_cursor_close(&cur);

    /* timestamp t0 + 12.5 s: first record at or after it is offset 13 */
    assert_int_equal(sl_log_offset_for_time(f->log, "cur", 0, t0 + 12500), 13);
    assert_int_equal(sl_log_offset_for_time(f->log, "cur", 0, t0 + 1000000), 30);
    cur = sl_cursor_open(f->log, "cur", 0, (struct sl_start){ SL_START_TIME, t0 + 12500 },
                         NULL, NULL, &err);
    assert_non_null(cur);
    assert_int_equal(sl_cursor_position(cur), 13);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_cursor_poll(cur, 1, 0, fx_collect, c), 1);
    assert_int_equal(c->timestamps[0], t0 + 13000);
    sl_cursor_close(&cur);

    /* auto-create off: unknown topic */
    assert_null(sl_cursor_open(f->log, "cur", 3, (struct sl_start){ SL_START_EARLIEST, 0 },
                               NULL, NULL, &err));
    assert_int_equal(err, -EINVAL);
    free(c);
}

static void test_cursor_wake(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct wake_count w = { 0 };
    struct wake_count w2 = { 0 };
    struct sl_cursor *cur, *victim;
    int err = 0;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    cur = sl_cursor_open(f->log, "wake", 0, (struct sl_start){ SL_START_LATEST, 0 },
                         on_wake, &w, &err);
    assert_non_null(cur);
    append_one(f, "wake", 0, NULL, 0, fx_now_ms(), &a);
    append_one(f, "wake", 0, NULL, 1, fx_now_ms(), &a);
    assert_int_equal(w.wakes, 0);             /* never inside sl_log_append */
    fx_run_until(f, &a.n, 2);
    fx_run_turns(f, 3);
    assert_int_equal(w.wakes, 1);             /* once per arming */
    append_one(f, "wake", 0, NULL, 2, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 3);
    fx_run_turns(f, 3);
    assert_int_equal(w.wakes, 1);             /* not re-armed until polled to the end */
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_cursor_poll(cur, 100, 0, fx_collect, c), 3);
    assert_int_equal(sl_cursor_poll(cur, 100, 0, fx_collect, c), 0);
    append_one(f, "wake", 0, NULL, 3, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 4);
    fx_run_turns(f, 3);
    assert_int_equal(w.wakes, 2);

    /* close inside its own wake callback */
    victim = sl_cursor_open(f->log, "wake", 0, (struct sl_start){ SL_START_LATEST, 0 },
                            on_wake, &w2, &err);
    assert_non_null(victim);
    w2.close_me = victim;
    append_one(f, "wake", 0, NULL, 4, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 5);
    fx_run_turns(f, 3);
    assert_int_equal(w2.wakes, 1);
    assert_null(w2.close_me);
    sl_cursor_close(&cur);
    free(c);
}


/* ---- fsync errors, segment limits, damaged older segments, directory durability ---- */

/*
 * An fdatasync that fails (EIO) must not let anything become visible or acknowledged
 * on that partition afterwards: Linux reports a writeback error once, and the next
 * fdatasync returns 0 even though the lost pages never reached the disk.
 */
static void test_fsync_error_fails_partition(void **state)
{
    struct fx_log *f = *state;
    struct fx_acks a = { 0 }, b = { 0 }, o = { 0 };
    struct sl_rec_in r = { .timestamp = 1, .key_len = -1, .value = (const uint8_t *)"x",
                           .value_len = 1 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct sl_log_stats st;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    append_one(f, "fs", 0, NULL, 0, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 1);
    assert_int_equal(a.errors, 0);
    assert_int_equal(fx_describe(f, "fs").hw, 1);

    /* the next fdatasync fails, once released; meanwhile more appends queue behind it */
    atomic_store(&fdatasync_hold, 1);
    atomic_store(&fdatasync_fail, 1);
    append_one(f, "fs", 0, NULL, 1, fx_now_ms(), &b);
    fx_run_turns(f, 1);                          /* written, its fsync job started */
    append_one(f, "fs", 0, NULL, 2, fx_now_ms(), &b);
    fx_run_turns(f, 1);                          /* written, waits for the next fsync */
    append_one(f, "fs", 0, NULL, 3, fx_now_ms(), &b);   /* still in the open batch */
    assert_int_equal(b.n, 0);
    atomic_store(&fdatasync_hold, 0);
    fx_run_until(f, &b.n, 3);
    assert_int_equal(b.n, 3);
    assert_int_equal(b.errors, 3);            /* none acknowledged */
    assert_int_equal(atomic_load(&fdatasync_fail), 0);
    fx_run_turns(f, 20);                         /* a later (successful) fsync changes nothing */
    assert_int_equal(fx_describe(f, "fs").hw, 1);
    assert_int_equal(fx_read_all(f, "fs", 0, 0, c), 1);
    assert_true(fx_part_info(f, "fs").failed);

    /* every later append on the partition is refused */
    assert_int_equal(sl_log_append(f->log, "fs", 0, &r, 1, fx_on_ack, &b), -EIO);
    assert_int_equal(b.n, 3);
    fx_run_turns(f, 5);
    assert_int_equal(fx_describe(f, "fs").hw, 1);
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.fsync_errors, 1);
    assert_true(st.append_errors >= 4);

    /* other partitions carry on */
    append_one(f, "other", 0, NULL, 0, fx_now_ms(), &o);
    fx_run_until(f, &o.n, 1);
    assert_int_equal(o.errors, 0);
    assert_false(fx_part_info(f, "other").failed);

    /* a restart validates the files and makes the partition writable again */
    sl_log_close(&f->log);
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    assert_false(fx_part_info(f, "fs").failed);
    memset(&a, 0, sizeof(a));
    append_one(f, "fs", 0, NULL, 4, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 1);
    assert_int_equal(a.errors, 0);
    assert_true(a.last_offset >= 1);
    assert_int_equal(fx_describe(f, "fs").hw, a.last_offset + 1);
    free(c);
}

/* A segment that reaches the index's addressable limit rolls instead of refusing. */
static void test_roll_on_eoverflow(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config cfg;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));

    assert_non_null(c);
    sl_segment_max_bytes = 2048;              /* stands for 4 GiB */
    fx_log_open_flush(f, SL_FLUSH_OS);
    sl_topic_config_defaults(&cfg);
    cfg.flush = SL_FLUSH_OS;
    cfg.segment_bytes = 1 << 20;              /* never reached: only the limit rolls */
    assert_int_equal(sl_log_topic_configure(f->log, "ovf", &cfg), 0);
    for (int i = 0; i < 100; i++) {
        append_one(f, "ovf", 0, NULL, i, fx_now_ms(), &a);
    }
    assert_int_equal(a.n, 100);
    assert_int_equal(a.errors, 0);
    assert_true(fx_describe(f, "ovf").segments >= 3);
    assert_int_equal(fx_read_all(f, "ovf", 0, 0, c), 100);
    assert_int_equal(c->offsets[99], 99);

    /* the group-commit path too */
    cfg.flush = SL_FLUSH_ALWAYS;
    assert_int_equal(sl_log_topic_configure(f->log, "ovf-always", &cfg), 0);
    memset(&a, 0, sizeof(a));
    for (int i = 0; i < 60; i++) {
        append_one(f, "ovf-always", 0, NULL, i, fx_now_ms(), &a);
        fx_run_until(f, &a.n, i + 1);
    }
    assert_int_equal(a.n, 60);
    assert_int_equal(a.errors, 0);
    assert_true(fx_describe(f, "ovf-always").segments >= 2);
    assert_int_equal(fx_read_all(f, "ovf-always", 0, 0, c), 60);
    free(c);
}

/* segment_bytes is capped at 2 GiB - 1, like Kafka's segment.bytes (an Int). */
static void test_segment_bytes_limit(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config cfg;
    struct sl_log_options o;
    char *err = NULL;

    fx_log_open_flush(f, SL_FLUSH_OS);
    sl_topic_config_defaults(&cfg);
    cfg.segment_bytes = 2147483648ULL;
    assert_int_equal(sl_log_topic_configure(f->log, "big", &cfg), -EINVAL);
    cfg.segment_bytes = 8ULL << 30;
    assert_int_equal(sl_log_topic_configure(f->log, "big", &cfg), -EINVAL);
    cfg.segment_bytes = 2147483647ULL;
    assert_int_equal(sl_log_topic_configure(f->log, "big", &cfg), 0);
    sl_log_close(&f->log);

    o = fx_log_options(f, SL_FLUSH_OS);
    o.defaults.segment_bytes = 8ULL << 30;
    assert_null(sl_log_open(f->base, &o, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "segment_bytes"));
    free(err);
}

/* Zero the last n bytes of a file. */
static void zero_tail(const char *path, size_t n)
{
    struct stat st;
    char z[256];
    int fd = open(path, O_WRONLY);

    assert_true(n <= sizeof(z));
    memset(z, 0, sizeof(z));
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true((size_t)st.st_size > n);
    assert_int_equal(pwrite(fd, z, n, st.st_size - (off_t)n), (ssize_t)n);
    close(fd);
}

/*
 * A damaged tail in an older segment (power loss before its data reached the disk):
 * the last two segments are recovered at open, and reads step over a segment whose
 * valid data ends before the next segment's base instead of stalling there.
 */
static void test_damaged_older_segment(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config cfg;
    struct fx_acks a = { 0 };
    struct fx_collected *c = malloc(sizeof(*c));
    struct sl_log_stats st;
    struct sl_cursor *cur;
    char pdir[128];
    char **files;
    int n_files, total, err = 0, polled = 0;
    int64_t hw, prev = -1;

    assert_non_null(c);
    fx_log_open_flush(f, SL_FLUSH_OS);
    sl_topic_config_defaults(&cfg);
    cfg.flush = SL_FLUSH_OS;
    cfg.segment_bytes = 350;                  /* three records per segment */
    assert_int_equal(sl_log_topic_configure(f->log, "dmg", &cfg), 0);
    for (int i = 0; i < 40; i++) {
        append_one(f, "dmg", 0, NULL, i, fx_now_ms(), &a);
    }
    assert_int_equal(a.errors, 0);
    assert_true(fx_describe(f, "dmg").segments >= 10);
    sl_log_close(&f->log);

    snprintf(pdir, sizeof(pdir), "%s/dmg-0", f->dir);
    files = fx_segment_files(pdir, &n_files);
    assert_true(n_files >= 10);
    zero_tail(files[0], 64);                  /* an old segment: found by reads */
    zero_tail(files[n_files - 2], 64);        /* the one before the active: recovered */
    fx_free_files(files, n_files);

    fx_log_open_flush(f, SL_FLUSH_OS);
    assert_int_equal(sl_log_topic_configure(f->log, "dmg", &cfg), 0);
    sl_log_get_stats(f->log, &st);
    assert_true(st.recovered_truncated_bytes > 0);
    hw = fx_describe(f, "dmg").hw;
    assert_int_equal(hw, 40);

    total = fx_read_all(f, "dmg", 0, 0, c);      /* asserts every read returns >= 0 */
    assert_true(total >= 40 - 6);
    assert_true(total <= 40 - 2);             /* two batches lost */
    assert_int_equal(c->offsets[0], 0);
    assert_int_equal(c->offsets[total - 1], 39);
    for (int i = 0; i < total; i++) {
        assert_true(c->offsets[i] > prev);
        prev = c->offsets[i];
    }
    sl_log_get_stats(f->log, &st);
    assert_int_equal(st.read_skipped_offsets, (uint64_t)(40 - total));

    /* a cursor from the earliest offset reaches the end */
    cur = sl_cursor_open(f->log, "dmg", 0, (struct sl_start){ SL_START_EARLIEST, 0 },
                         NULL, NULL, &err);
    assert_non_null(cur);
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 100; i++) {
        int n = sl_cursor_poll(cur, 2, 0, fx_collect, c);

        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
        polled += n;
    }
    assert_int_equal(polled, total);
    assert_int_equal(sl_cursor_position(cur), hw);

    /* and new records land after it */
    append_one(f, "dmg", 0, NULL, 40, fx_now_ms(), &a);
    assert_int_equal(a.last_offset, 40);
    memset(c, 0, sizeof(*c));
    assert_int_equal(sl_cursor_poll(cur, 10, 0, fx_collect, c), 1);
    assert_int_equal(c->offsets[0], 40);
    sl_cursor_close(&cur);
    free(c);
}

/* New directories and segment files are made durable in their parent directories. */
static void test_dir_sync(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config cfg;
    struct sl_log_options o;
    struct fx_acks a = { 0 };
    char data[128], sub[128], pdir[160], rdir[160];
    char *err = NULL;
    int before;

    /* a nested data_dir: each created level is synced in its parent */
    snprintf(sub, sizeof(sub), "%s/a", f->dir);
    snprintf(data, sizeof(data), "%s/a/b", f->dir);
    dir_syncs_reset();
    o = fx_log_options(f, SL_FLUSH_ALWAYS);
    o.data_dir = data;
    f->log = sl_log_open(f->base, &o, &err);
    free(err);
    assert_non_null(f->log);
    assert_true(dir_sync_count(f->dir) >= 1);
    assert_true(dir_sync_count(sub) >= 1);

    /* a new partition directory (data_dir synced) and its first segment (dir synced
     * before the first acknowledgement) */
    dir_syncs_reset();
    append_one(f, "ds", 0, NULL, 0, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 1);
    assert_int_equal(a.errors, 0);
    snprintf(pdir, sizeof(pdir), "%s/ds-0", data);
    assert_true(dir_sync_count(data) >= 1);
    assert_int_equal(dir_sync_count(pdir), 1);
    append_one(f, "ds", 0, NULL, 1, fx_now_ms(), &a);
    fx_run_until(f, &a.n, 2);
    assert_int_equal(dir_sync_count(pdir), 1);      /* not on the hot path */

    /* every rolled segment: once */
    sl_topic_config_defaults(&cfg);
    cfg.segment_bytes = 350;
    assert_int_equal(sl_log_topic_configure(f->log, "dr", &cfg), 0);
    snprintf(rdir, sizeof(rdir), "%s/dr-0", data);
    memset(&a, 0, sizeof(a));
    for (int i = 0; i < 12; i++) {
        append_one(f, "dr", 0, NULL, i, fx_now_ms(), &a);
        fx_run_until(f, &a.n, i + 1);
    }
    assert_int_equal(a.errors, 0);
    before = dir_sync_count(rdir);
    assert_int_equal(before, (int)fx_describe(f, "dr").segments);
}

/* The topic's settings as sl_log_describe reports them. */
static int on_cfg(void *arg, const char *topic, const struct sl_topic_config *cfg,
                  const struct sl_partition_info *parts, int32_t n)
{
    (void)topic;
    (void)parts;
    (void)n;
    *(struct sl_topic_config *)arg = *cfg;
    return 0;
}

static bool keep_pinned(void *arg, const char *topic)
{
    return strcmp(topic, (const char *)arg) == 0;
}

/* A reload of the log section reaches existing topics without an override (keeping
 * their partition counts), not the overridden ones, and the topics created after it. */
static void test_set_defaults(void **state)
{
    struct fx_log *f = *state;
    struct sl_topic_config d, got;
    struct fx_acks a = { 0 };
    struct sl_rec_in r;

    memset(&r, 0, sizeof(r));
    r.value = (const uint8_t *)"v";
    r.value_len = 1;
    r.key_len = -1;
    fx_log_open_flush(f, SL_FLUSH_ALWAYS);
    assert_int_equal(sl_log_topic_configure(f->log, "plain", NULL), 0);  /* the defaults */
    sl_topic_config_defaults(&d);
    d.partitions = 3;
    d.flush = SL_FLUSH_ALWAYS;
    assert_int_equal(sl_log_topic_configure(f->log, "pinned", &d), 0);
    sl_topic_config_defaults(&d);
    d.partitions = 2;
    d.flush = SL_FLUSH_OS;
    d.retention_ms = 60000;
    assert_int_equal(sl_log_set_defaults(f->log, &d, true, keep_pinned, (void *)"pinned"), 0);
    assert_int_equal(sl_log_describe(f->log, "plain", on_cfg, &got), 0);
    assert_int_equal(got.flush, SL_FLUSH_OS);
    assert_int_equal(got.retention_ms, 60000);
    assert_int_equal(got.partitions, 1);                            /* kept, not grown */
    assert_int_equal(sl_log_partitions(f->log, "plain"), 1);
    assert_int_equal(sl_log_describe(f->log, "pinned", on_cfg, &got), 0);
    assert_int_equal(got.flush, SL_FLUSH_ALWAYS);
    assert_int_equal(sl_log_partitions(f->log, "pinned"), 3);
    append_one(f, "later", -1, NULL, 0, fx_now_ms(), &a);           /* auto-created */
    assert_int_equal(sl_log_describe(f->log, "later", on_cfg, &got), 0);
    assert_int_equal(got.flush, SL_FLUSH_OS);
    assert_int_equal(sl_log_partitions(f->log, "later"), 2);
    /* auto_create off: unknown topics are refused from now on */
    assert_int_equal(sl_log_set_defaults(f->log, &d, false, NULL, NULL), 0);
    assert_int_equal(sl_log_append(f->log, "refused", -1, &r, 1, fx_on_ack, &a), -ENOENT);
    assert_int_equal(sl_log_describe(f->log, "pinned", on_cfg, &got), 0);
    assert_int_equal(got.flush, SL_FLUSH_OS);                       /* keep NULL: all */
    /* a bad config changes nothing */
    d.partitions = 0;
    assert_int_equal(sl_log_set_defaults(f->log, &d, true, NULL, NULL), -EINVAL);
    assert_int_equal(sl_log_append(f->log, "refused", -1, &r, 1, fx_on_ack, &a), -ENOENT);
    assert_int_equal(sl_log_describe(f->log, "refused", on_cfg, &got), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_defaults),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitioner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_always_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_always_chained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preallocate_roll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_fires_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_read_eio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_error_fails_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roll_on_eoverflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_bytes_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_older_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_defaults, setup, teardown),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

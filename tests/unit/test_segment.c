/*
 * Unit tests for log segments (gateway/log/segment.c).
 *
 * With SL_KEEP_SEGMENT=DIR set, test_keep_for_kafka_check leaves a segment
 * (DIR/00000000000000000000.log) and DIR/expect.json behind for
 * tests/integration/check_segment_kafka.py to decode independently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>

#include "gateway/log/recordbatch.h"
#include "gateway/log/segment.h"

#include "fixture.h"

#define VALUE_LEN 100
#define MAX_BATCHES 400

/* Interposed fsync: counts directory syncs (sl_segment_sync of a new segment). */
static atomic_int dir_fsyncs;

int fsync(int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        atomic_fetch_add(&dir_fsyncs, 1);
    }
    return (int)syscall(SYS_fsync, fd);
}

/* Interposed pwritev (the segment's zero-fill): the next pwritev_fail calls fail (EIO). */
static atomic_int pwritev_fail;

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset)
{
    if (atomic_load(&pwritev_fail) > 0) {
        atomic_fetch_sub(&pwritev_fail, 1);
        errno = EIO;
        return -1;
    }
    return syscall(SYS_pwritev, fd, iov, iovcnt, (long)offset, (long)((uint64_t)offset >> 32));
}

struct fixture {
    char dir[64];
    struct sl_rb_builder b;
    /* what was appended: batch i covers [first[i], last[i]] at pos[i], max ts maxts[i] */
    int n;
    int64_t first[MAX_BATCHES];
    int64_t last[MAX_BATCHES];
    uint64_t pos[MAX_BATCHES];
    uint64_t len[MAX_BATCHES];
    int64_t maxts[MAX_BATCHES];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    if (fx_tmpdir(f->dir, "/tmp/sl_segtest.") == NULL) {
        free(f);
        return -1;
    }
    sl_rb_builder_init(&f->b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fx_rm_tree(f->dir);
    sl_rb_builder_free(&f->b);
    free(f);
    return 0;
}

static void fill_value(uint8_t *v, int64_t offset)
{
    for (int i = 0; i < VALUE_LEN; i++) {
        v[i] = (uint8_t)(offset * 31 + i);
    }
}

/* Append one batch of n records (timestamps ts, ts+1, ...) and note it in f; or
 * return sl_segment_append's error, noting nothing. */
static int try_append_batch(struct fixture *f, struct sl_segment *seg, int n, int64_t ts)
{
    uint8_t vals[64][VALUE_LEN];
    int64_t base = sl_segment_next_offset(seg);
    assert_true(n <= 64);
    assert_true(f->n < MAX_BATCHES);
    sl_rb_builder_reset(&f->b, base);
    for (int i = 0; i < n; i++) {
        fill_value(vals[i], base + i);
        struct sl_rec_in r = {ts + i, (const uint8_t *)"key", 3, vals[i], VALUE_LEN, NULL, 0};
        assert_int_equal(sl_rb_builder_add(&f->b, &r), 0);
    }
    size_t len;
    const uint8_t *buf = sl_rb_builder_finish(&f->b, &len);
    uint64_t at = sl_segment_size(seg);
    int rc = sl_segment_append(seg, buf, len, base, base + n - 1, ts + n - 1);
    if (rc != 0) {
        assert_int_equal(sl_segment_size(seg), at);
        assert_int_equal(sl_segment_next_offset(seg), base);
        return rc;
    }
    f->first[f->n] = base;
    f->last[f->n] = base + n - 1;
    f->pos[f->n] = at;
    f->len[f->n] = len;
    f->maxts[f->n] = ts + n - 1;
    f->n++;
    assert_true(sl_segment_next_offset(seg) == base + n);
    assert_int_equal(sl_segment_size(seg), at + len);
    return 0;
}

/* Append one batch of n records; record timestamps are ts, ts+1, ... */
static void append_batch(struct fixture *f, struct sl_segment *seg, int n, int64_t ts)
{
    assert_int_equal(try_append_batch(f, seg, n, ts), 0);
}

static char *path_of(struct fixture *f, int64_t base, const char *ext)
{
    char *p;
    assert_true(asprintf(&p, "%s/%020" PRId64 "%s", f->dir, base, ext) > 0);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0) {
        return NULL;
    }
    assert_int_equal(fstat(fd, &st), 0);
    *len = (size_t)st.st_size;
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, *len), (ssize_t)*len);
    close(fd);
    return buf;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Every offset the fixture appended is found in the right batch. */
static void check_find_all(struct fixture *f, struct sl_segment *seg)
{
    uint64_t pos;
    for (int i = 0; i < f->n; i++) {
        for (int64_t o = f->first[i]; o <= f->last[i]; o++) {
            assert_int_equal(sl_segment_find(seg, o, &pos), 0);
            assert_int_equal(pos, f->pos[i]);
        }
    }
    assert_int_equal(sl_segment_find(seg, f->last[f->n - 1] + 1, &pos), 0);
    assert_int_equal(pos, sl_segment_size(seg));
    assert_int_equal(sl_segment_find(seg, INT64_MAX, &pos), 0);
    assert_int_equal(pos, sl_segment_size(seg));
}

static struct sl_segment *open_seg(struct fixture *f, int64_t base, bool create, uint32_t ivl)
{
    char *err = NULL;
    struct sl_segment *seg = sl_segment_open(f->dir, base, create, ivl, &err);
    if (seg == NULL) {
        fail_msg("open: %s", err ? err : "?");
    }
    assert_null(err);
    return seg;
}

/* ---- tests ---- */

static void test_append_find_read(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 1000, true, 4096);

    assert_true(sl_segment_base_offset(seg) == 1000);
    assert_true(sl_segment_next_offset(seg) == 1000);
    assert_true(sl_segment_max_timestamp(seg) == -1);
    assert_int_equal(sl_segment_size(seg), 0);
    for (int i = 0; i < 150; i++) {
        append_batch(f, seg, 1 + i % 20, 5000 + i * 100);
    }
    assert_true(sl_segment_max_timestamp(seg) == f->maxts[f->n - 1]);
    check_find_all(f, seg);
    uint64_t pos;
    assert_int_equal(sl_segment_find(seg, 0, &pos), 0); /* before the base */
    assert_int_equal(pos, 0);

    /* Read back every batch through sl_segment_read and check every record. */
    uint64_t size = sl_segment_size(seg);
    uint8_t *all = malloc(size);
    assert_non_null(all);
    assert_int_equal(sl_segment_read(seg, 0, all, size), (ssize_t)size);
    assert_int_equal(sl_segment_read(seg, size - 10, all, 100), 10); /* short at EOF */
    assert_int_equal(sl_segment_read(seg, 0, all, size), (ssize_t)size);
    uint64_t p = 0;
    int64_t expect = 1000;
    for (int i = 0; i < f->n; i++) {
        struct sl_rb_batch b;
        struct sl_rb_iter it;
        struct sl_record r;
        uint8_t v[VALUE_LEN];
        assert_int_equal(sl_rb_parse(all + p, size - p, &b), SL_RB_OK);
        sl_rb_iter_init(&it, &b);
        while (sl_rb_iter_next(&it, &r) == 1) {
            assert_true(r.offset == expect);
            fill_value(v, expect);
            assert_int_equal(r.value_len, VALUE_LEN);
            assert_memory_equal(r.value, v, VALUE_LEN);
            expect++;
        }
        p += b.total_len;
    }
    assert_int_equal(p, size);
    assert_true(expect == sl_segment_next_offset(seg));
    free(all);

    /* Offsets must increase. */
    uint8_t dummy[SL_RB_HEADER_SIZE] = {0};
    assert_int_equal(sl_segment_append(seg, dummy, sizeof(dummy), 1000, 1000, 0), -EINVAL);
    assert_int_equal(sl_segment_sync(seg), 0);

    /* Reopen: the state comes back from the indexes and the tail of the log. */
    sl_segment_close(&seg);
    assert_null(seg);
    sl_segment_close(&seg); /* NULL: no-op */
    seg = open_seg(f, 1000, false, 4096);
    assert_true(sl_segment_next_offset(seg) == expect);
    assert_int_equal(sl_segment_size(seg), size);
    assert_true(sl_segment_max_timestamp(seg) == f->maxts[f->n - 1]);
    check_find_all(f, seg);
    /* And appending continues where it stopped, indexes included. */
    for (int i = 0; i < 20; i++) {
        append_batch(f, seg, 10, 100000 + i * 10);
    }
    check_find_all(f, seg);
    sl_segment_close(&seg);
}

/* The .index has one entry per index_interval_bytes (plus the first batch). */
static void check_sparse(struct fixture *f, uint32_t ivl)
{
    char *ip = path_of(f, 0, ".index");
    char *tp = path_of(f, 0, ".timeindex");
    size_t il;
    size_t tl;
    uint8_t *ib = slurp(ip, &il);
    uint8_t *tb = slurp(tp, &tl);
    assert_non_null(ib);
    assert_non_null(tb);
    assert_int_equal(il % 8, 0);
    assert_int_equal(tl % 12, 0);

    /* Simulate the rule on the appended batches. */
    size_t expect = 0;
    uint64_t since = 0;
    for (int i = 0; i < f->n; i++) {
        if (expect == 0 || since >= ivl) {
            /* entry: relative last offset, position */
            assert_true(expect < il / 8);
            assert_int_equal(be32(ib + expect * 8), (uint32_t)f->last[i]);
            assert_int_equal(be32(ib + expect * 8 + 4), (uint32_t)f->pos[i]);
            expect++;
            since = 0;
        }
        since += f->len[i];
    }
    assert_int_equal(il / 8, expect);
    if (ivl > 0) {
        assert_true(expect < (size_t)f->n); /* really sparse */
    } else {
        assert_int_equal(expect, (size_t)f->n);
    }
    /* time index: increasing timestamps */
    assert_true(tl / 12 >= 1);
    for (size_t i = 1; i < tl / 12; i++) {
        uint64_t a = ((uint64_t)be32(tb + (i - 1) * 12) << 32) | be32(tb + (i - 1) * 12 + 4);
        uint64_t b = ((uint64_t)be32(tb + i * 12) << 32) | be32(tb + i * 12 + 4);
        assert_true(b > a);
    }
    free(ib);
    free(tb);
    free(ip);
    free(tp);
}

static void test_index_sparse(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 4096);
    for (int i = 0; i < 100; i++) {
        append_batch(f, seg, 5, 1000 + i * 5);
    }
    check_sparse(f, 4096);
    sl_segment_close(&seg);
}

static void test_index_every_batch(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 0);
    for (int i = 0; i < 30; i++) {
        append_batch(f, seg, 3, 1000 + i * 3);
    }
    check_sparse(f, 0);
    check_find_all(f, seg);
    sl_segment_close(&seg);
}

static int64_t brute_find_time(struct fixture *f, int64_t ts)
{
    for (int i = 0; i < f->n; i++) {
        if (f->maxts[i] >= ts) {
            return f->first[i];
        }
    }
    return -1;
}

static void test_find_time(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 2048);
    /* Mostly increasing time with a few batches from the past. */
    for (int i = 0; i < 120; i++) {
        int64_t ts = (i % 9 == 4) ? 10000 + i * 20 : 20000 + i * 50;
        append_batch(f, seg, 4, ts);
    }
    assert_int_equal(sl_segment_find_time(seg, 0), 0);
    for (int64_t ts = 9000; ts < 20000 + 121 * 50; ts += 7) {
        assert_true(sl_segment_find_time(seg, ts) == brute_find_time(f, ts));
    }
    assert_int_equal(sl_segment_find_time(seg, INT64_MAX), -1);
    /* The same after a reopen (indexes from file). */
    sl_segment_close(&seg);
    seg = open_seg(f, 0, false, 2048);
    for (int64_t ts = 9000; ts < 20000 + 121 * 50; ts += 13) {
        assert_true(sl_segment_find_time(seg, ts) == brute_find_time(f, ts));
    }
    sl_segment_close(&seg);
    /* Empty segment */
    seg = open_seg(f, 5000, true, 2048);
    assert_int_equal(sl_segment_find_time(seg, 0), -1);
    sl_segment_close(&seg);
}

static void append_raw(struct fixture *f, int64_t base, const void *buf, size_t len)
{
    char *lp = path_of(f, base, ".log");
    int fd = open(lp, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
    free(lp);
}

/* What recovery reports as cut for n bytes p past the last good batch: zeros at the
 * end of the file are preallocated space, not torn data. */
static int64_t cut_len(const uint8_t *p, size_t n)
{
    while (n > 0 && p[n - 1] == 0) {
        n--;
    }
    return (int64_t)n;
}

static void test_recover_torn_tail(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 1024);
    for (int i = 0; i < 40; i++) {
        append_batch(f, seg, 5, 1000 + i * 5);
    }
    uint64_t good = sl_segment_size(seg);
    int64_t next = sl_segment_next_offset(seg);
    /* Build one more batch but only write half of it, as a crash would. */
    sl_rb_builder_reset(&f->b, next);
    uint8_t v[VALUE_LEN] = {0};
    struct sl_rec_in r = {1, NULL, -1, v, VALUE_LEN, NULL, 0};
    assert_int_equal(sl_rb_builder_add(&f->b, &r), 0);
    size_t len;
    const uint8_t *half = sl_rb_builder_finish(&f->b, &len);
    sl_segment_close(&seg);
    append_raw(f, 0, half, len / 2);

    seg = open_seg(f, 0, false, 1024);
    assert_int_equal(sl_segment_recover(seg), cut_len(half, len / 2));
    assert_int_equal(sl_segment_size(seg), good);
    assert_true(sl_segment_next_offset(seg) == next);
    check_find_all(f, seg);
    /* The file really was truncated, and appends carry on. */
    struct stat st;
    char *lp = path_of(f, 0, ".log");
    assert_int_equal(stat(lp, &st), 0);
    assert_int_equal((uint64_t)st.st_size, good);
    append_batch(f, seg, 5, 9000);
    check_find_all(f, seg);
    sl_segment_close(&seg);

    /* Garbage (not a batch at all) after good batches. */
    uint64_t good2 = f->pos[f->n - 1] + f->len[f->n - 1];
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)(i * 7 + 3);
    }
    append_raw(f, 0, junk, sizeof(junk));
    seg = open_seg(f, 0, false, 1024);
    assert_int_equal(sl_segment_recover(seg), (int64_t)sizeof(junk));
    assert_int_equal(sl_segment_size(seg), good2);
    assert_true(sl_segment_next_offset(seg) == f->last[f->n - 1] + 1);
    /* Recovery of a clean segment truncates nothing. */
    assert_int_equal(sl_segment_recover(seg), 0);
    check_find_all(f, seg);
    sl_segment_close(&seg);
    free(lp);
}

static uint64_t file_size(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void put_file(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_TRUNC);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* Preallocation: the file runs ahead in zeros, but reads, trim, close and recovery see
 * only the batches; the zeros a crash leaves are not counted as torn. */
static void test_preallocate(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 4096);
    char *lp = path_of(f, 0, ".log");
    const uint64_t chunk = 64 * 1024;
    uint8_t buf[256];

    sl_segment_set_preallocate(seg, (uint32_t)chunk, UINT64_MAX);
    for (int i = 0; i < 120; i++) {
        append_batch(f, seg, 1 + i % 20, 1000 + i * 100);
        assert_true(file_size(lp) > sl_segment_size(seg));
        assert_int_equal(file_size(lp) % chunk, 0);
    }
    uint64_t good = sl_segment_size(seg);
    int n_good = f->n;
    assert_true(good > 2 * chunk);                  /* extended several times */
    /* reads end at the last batch, not at the end of the zeros */
    assert_int_equal(sl_segment_read(seg, good - 10, buf, sizeof(buf)), 10);
    assert_int_equal(sl_segment_read(seg, good, buf, sizeof(buf)), 0);
    check_find_all(f, seg);

    /* what a crash would leave on disk: the batches, then zeros */
    size_t crash_len;
    uint8_t *crash = slurp(lp, &crash_len);
    assert_non_null(crash);
    assert_true(crash_len > good);
    for (size_t i = good; i < crash_len; i++) {
        assert_int_equal(crash[i], 0);
    }

    assert_int_equal(sl_segment_trim(seg), 1);
    assert_int_equal(file_size(lp), good);
    assert_int_equal(sl_segment_trim(seg), 0);
    append_batch(f, seg, 3, 99000);                 /* extends again after a trim */
    assert_true(file_size(lp) > sl_segment_size(seg));
    uint64_t closed = sl_segment_size(seg);
    sl_segment_close(&seg);
    assert_int_equal(file_size(lp), closed);        /* a closed segment has no zeros */

    /* The crash image: recovery drops the zeros and reports nothing torn. */
    put_file(lp, crash, crash_len);
    seg = open_seg(f, 0, false, 4096);
    assert_int_equal(sl_segment_recover(seg), 0);
    assert_int_equal(sl_segment_size(seg), good);
    assert_int_equal(file_size(lp), good);
    f->n = n_good;
    check_find_all(f, seg);
    sl_segment_close(&seg);

    /* A batch torn inside the zeros is torn: counted up to its last non-zero byte. */
    int64_t next = f->last[n_good - 1] + 1;
    sl_rb_builder_reset(&f->b, next);
    uint8_t v[VALUE_LEN];
    fill_value(v, next);
    struct sl_rec_in r = {1, NULL, -1, v, VALUE_LEN, NULL, 0};
    assert_int_equal(sl_rb_builder_add(&f->b, &r), 0);
    size_t len;
    const uint8_t *whole = sl_rb_builder_finish(&f->b, &len);
    int64_t torn = cut_len(whole, len / 2);
    assert_true(torn > 0);
    memcpy(crash + good, whole, len / 2);
    put_file(lp, crash, crash_len);
    seg = open_seg(f, 0, false, 4096);
    assert_int_equal(sl_segment_recover(seg), torn);
    assert_int_equal(sl_segment_size(seg), good);
    assert_int_equal(file_size(lp), good);
    sl_segment_close(&seg);

    /* Never zero-filled past the roll size given, unless one append needs more. */
    struct sl_segment *small = open_seg(f, 900000, true, 4096);
    char *sp = path_of(f, 900000, ".log");
    sl_segment_set_preallocate(small, (uint32_t)chunk, 10000);
    f->n = 0;
    append_batch(f, small, 1, 5);
    assert_int_equal(file_size(sp), 10000);
    while (sl_segment_size(small) < 10000) {
        append_batch(f, small, 20, 5);
    }
    assert_int_equal(file_size(sp), sl_segment_size(small));   /* no zeros past it */
    sl_segment_close(&small);
    free(sp);

    /* Never zero-filled past the largest segment the index can address. */
    sl_segment_max_bytes = good + 1000;
    seg = open_seg(f, 0, false, 4096);
    sl_segment_set_preallocate(seg, (uint32_t)chunk, UINT64_MAX);
    append_batch(f, seg, 1, 100000);
    assert_int_equal(file_size(lp), good + 1000);
    sl_segment_close(&seg);
    sl_segment_max_bytes = UINT32_MAX;
    free(crash);
    free(lp);
}

/*
 * The zero-fill planned ahead for another thread (the log's fsync worker): planned only
 * when less than one step of zeros is left; while it is in flight appends that would
 * reach it are refused untouched and trim is refused; once it is over, appends write over
 * its zeros without extending. A failed fill is cut back and leaves the room as it was:
 * the append that runs out then extends itself.
 */
static void test_fill_ahead(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 4096);
    char *lp = path_of(f, 0, ".log");
    const uint64_t chunk = 64 * 1024;
    uint64_t from = 0, to = 0, x, y;
    int64_t ts = 1000;
    int rc;

    sl_segment_set_preallocate(seg, (uint32_t)chunk, UINT64_MAX);
    append_batch(f, seg, 20, ts);                    /* the first one extends itself */
    assert_int_equal(file_size(lp), chunk);
    assert_true(sl_segment_fill_begin(seg, &from, &to));
    assert_int_equal(from, chunk);
    assert_int_equal(to, 2 * chunk);
    assert_false(sl_segment_fill_begin(seg, &x, &y));        /* one at a time */
    assert_int_equal(sl_segment_trim(seg), -EBUSY);

    /* appends below the fill go on; the one that would reach it is refused untouched */
    while ((rc = try_append_batch(f, seg, 20, ts += 100)) == 0) {
    }
    assert_int_equal(rc, -EAGAIN);
    assert_true(sl_segment_size(seg) <= from);
    assert_int_equal(file_size(lp), chunk);                  /* nothing written past it */

    assert_int_equal(sl_segment_fill(seg, from, to), 0);     /* on any thread */
    assert_int_equal(file_size(lp), 2 * chunk);
    sl_segment_fill_end(seg, 0);
    assert_false(sl_segment_fill_begin(seg, &x, &y));        /* a step ahead now */
    append_batch(f, seg, 20, ts += 100);                     /* over the new zeros */
    assert_true(sl_segment_size(seg) > from);
    assert_int_equal(file_size(lp), 2 * chunk);
    check_find_all(f, seg);

    /* a failed fill: cut back, no room gained, the next append extends itself */
    while (file_size(lp) - sl_segment_size(seg) >= chunk) {
        assert_false(sl_segment_fill_begin(seg, &x, &y));
        append_batch(f, seg, 20, ts += 100);
    }
    assert_true(sl_segment_fill_begin(seg, &from, &to));
    assert_int_equal(from, 2 * chunk);
    atomic_store(&pwritev_fail, 1);
    assert_int_equal(sl_segment_fill(seg, from, to), -EIO);
    assert_int_equal(file_size(lp), from);
    sl_segment_fill_end(seg, -EIO);
    sl_segment_fill_end(seg, 0);                             /* no fill: no-op */
    assert_int_equal(file_size(lp), from);
    while (sl_segment_size(seg) <= from) {
        append_batch(f, seg, 20, ts += 100);
    }
    assert_int_equal(file_size(lp), 3 * chunk);
    check_find_all(f, seg);

    /* the same limits as an append's own fill: never past the roll size given */
    while (file_size(lp) - sl_segment_size(seg) >= chunk) {
        append_batch(f, seg, 20, ts += 100);
    }
    sl_segment_set_preallocate(seg, (uint32_t)chunk, 3 * chunk + 100);
    assert_true(sl_segment_fill_begin(seg, &from, &to));
    assert_int_equal(from, 3 * chunk);
    assert_int_equal(to, 3 * chunk + 100);
    sl_segment_fill_end(seg, -ECANCELED);                    /* planned, never run */
    assert_int_equal(file_size(lp), 3 * chunk);
    sl_segment_set_preallocate(seg, (uint32_t)chunk, 3 * chunk);
    assert_false(sl_segment_fill_begin(seg, &from, &to));    /* at the roll size */

    uint64_t good = sl_segment_size(seg);
    int n_good = f->n;
    sl_segment_close(&seg);
    assert_int_equal(file_size(lp), good);
    seg = open_seg(f, 0, false, 4096);
    assert_int_equal(sl_segment_recover(seg), 0);
    assert_int_equal(sl_segment_size(seg), good);
    f->n = n_good;
    check_find_all(f, seg);
    sl_segment_close(&seg);
    free(lp);
}

static void test_recover_corrupt_middle(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 512);
    for (int i = 0; i < 5; i++) {
        append_batch(f, seg, 3, 1000 + i * 3);
    }
    uint64_t total = sl_segment_size(seg);
    sl_segment_close(&seg);
    /* Flip one value byte inside batch 2 (0-based). */
    char *lp = path_of(f, 0, ".log");
    int fd = open(lp, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    off_t at = (off_t)(f->pos[2] + f->len[2] - 20);
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x55;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);

    seg = open_seg(f, 0, false, 512);
    size_t file_len;
    uint8_t *file = slurp(lp, &file_len);
    assert_int_equal(file_len, total);
    assert_int_equal(sl_segment_recover(seg), cut_len(file + f->pos[2], total - f->pos[2]));
    free(file);
    assert_int_equal(sl_segment_size(seg), f->pos[2]);
    assert_true(sl_segment_next_offset(seg) == f->last[1] + 1);
    assert_true(sl_segment_max_timestamp(seg) == f->maxts[1]);
    f->n = 2;
    check_find_all(f, seg);
    sl_segment_close(&seg);

    /* A batch whose offsets go backwards is cut as well. */
    seg = open_seg(f, 0, false, 512);
    sl_rb_builder_reset(&f->b, 1); /* overlaps batch 0 */
    uint8_t v[VALUE_LEN] = {0};
    struct sl_rec_in r = {1, NULL, -1, v, VALUE_LEN, NULL, 0};
    assert_int_equal(sl_rb_builder_add(&f->b, &r), 0);
    size_t len;
    const uint8_t *buf = sl_rb_builder_finish(&f->b, &len);
    sl_segment_close(&seg);
    append_raw(f, 0, buf, len);
    seg = open_seg(f, 0, false, 512);
    assert_int_equal(sl_segment_recover(seg), cut_len(buf, len));
    assert_true(sl_segment_next_offset(seg) == f->last[1] + 1);
    sl_segment_close(&seg);
    free(lp);
}

static void test_index_rebuilt(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 1024);
    for (int i = 0; i < 80; i++) {
        append_batch(f, seg, 2 + i % 5, 1000 + i * 10);
    }
    int64_t next = sl_segment_next_offset(seg);
    int64_t maxts = sl_segment_max_timestamp(seg);
    sl_segment_close(&seg);

    char *ip = path_of(f, 0, ".index");
    char *tp = path_of(f, 0, ".timeindex");
    size_t il;
    size_t tl;
    uint8_t *orig_i = slurp(ip, &il);
    uint8_t *orig_t = slurp(tp, &tl);
    assert_non_null(orig_i);
    assert_non_null(orig_t);
    assert_true(il > 8);

    /* 1: both deleted */
    assert_int_equal(unlink(ip), 0);
    assert_int_equal(unlink(tp), 0);
    seg = open_seg(f, 0, false, 1024);
    assert_true(sl_segment_next_offset(seg) == next);
    assert_true(sl_segment_max_timestamp(seg) == maxts);
    check_find_all(f, seg);
    for (int64_t ts = 990; ts < 1000 + 81 * 10; ts += 3) {
        assert_true(sl_segment_find_time(seg, ts) == brute_find_time(f, ts));
    }
    sl_segment_close(&seg);
    size_t nl;
    uint8_t *now = slurp(ip, &nl);
    assert_non_null(now);
    assert_int_equal(nl, il);
    assert_memory_equal(now, orig_i, il);
    free(now);
    now = slurp(tp, &nl);
    assert_non_null(now);
    assert_int_equal(nl, tl);
    assert_memory_equal(now, orig_t, tl);
    free(now);

    /* 2: a torn index entry (size not a multiple of 8) */
    assert_int_equal(truncate(ip, (off_t)il - 3), 0);
    seg = open_seg(f, 0, false, 1024);
    check_find_all(f, seg);
    sl_segment_close(&seg);
    now = slurp(ip, &nl);
    assert_int_equal(nl, il);
    assert_memory_equal(now, orig_i, il);
    free(now);

    /* 3: an entry pointing past the log */
    int fd = open(ip, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t bad[8] = {0x00, 0x00, 0x10, 0x00, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal(pwrite(fd, bad, 8, (off_t)il - 8), 8);
    close(fd);
    seg = open_seg(f, 0, false, 1024);
    check_find_all(f, seg);
    assert_true(sl_segment_next_offset(seg) == next);
    sl_segment_close(&seg);
    now = slurp(ip, &nl);
    assert_int_equal(nl, il);
    assert_memory_equal(now, orig_i, il);
    free(now);

    /* 4: entries not increasing (swap the first two) */
    fd = open(ip, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, orig_i + 8, 8, 0), 8);
    assert_int_equal(pwrite(fd, orig_i, 8, 8), 8);
    close(fd);
    seg = open_seg(f, 0, false, 1024);
    check_find_all(f, seg);
    sl_segment_close(&seg);
    now = slurp(ip, &nl);
    assert_memory_equal(now, orig_i, il);
    free(now);

    free(orig_i);
    free(orig_t);
    free(ip);
    free(tp);
}

static void test_delete(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 77, true, 4096);
    append_batch(f, seg, 3, 1000);
    char *paths[3] = {path_of(f, 77, ".log"), path_of(f, 77, ".index"),
                      path_of(f, 77, ".timeindex")};
    struct stat st;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(stat(paths[i], &st), 0);
    }
    assert_int_equal(sl_segment_delete(&seg), 0);
    assert_null(seg);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(stat(paths[i], &st), -1);
        assert_int_equal(errno, ENOENT);
        free(paths[i]);
    }
    assert_int_equal(sl_segment_delete(&seg), 0); /* NULL: no-op */

    /* Opening a missing segment without create fails with a message. */
    char *err = NULL;
    assert_null(sl_segment_open(f->dir, 77, false, 4096, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "00000000000000000077.log"));
    free(err);
}

static void test_created_ms(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 4096);
    append_batch(f, seg, 1, 1000);
    int64_t c = sl_segment_created_ms(seg);
    assert_true(c > INT64_C(1600000000000));
    sl_segment_close(&seg);
    /* An existing segment's age is its .log mtime. */
    char *lp = path_of(f, 0, ".log");
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, lp, ts, 0), 0);
    seg = open_seg(f, 0, false, 4096);
    assert_true(sl_segment_created_ms(seg) == INT64_C(1000000000000));
    sl_segment_close(&seg);
    free(lp);
}

/* A segment this process created: its first sync also syncs the directory, once. */
static void test_new_segment_syncs_dir(void **state)
{
    struct fixture *f = *state;
    struct sl_segment *seg = open_seg(f, 0, true, 4096);

    atomic_store(&dir_fsyncs, 0);
    append_batch(f, seg, 2, 1000);
    assert_int_equal(sl_segment_sync(seg), 0);
    assert_int_equal(atomic_load(&dir_fsyncs), 1);
    append_batch(f, seg, 2, 2000);
    assert_int_equal(sl_segment_sync(seg), 0);
    assert_int_equal(atomic_load(&dir_fsyncs), 1);   /* not on every sync */
    sl_segment_close(&seg);

    /* an existing segment's entry is already durable */
    seg = open_seg(f, 0, false, 4096);
    append_batch(f, seg, 1, 3000);
    assert_int_equal(sl_segment_sync(seg), 0);
    assert_int_equal(atomic_load(&dir_fsyncs), 1);
    sl_segment_close(&seg);

    assert_int_equal(sl_sync_dir(f->dir), 0);
    assert_int_equal(atomic_load(&dir_fsyncs), 2);
    assert_int_equal(sl_sync_dir("/nonexistent-sluice-dir"), -ENOENT);
}

/* ---- a segment for the independent (kafka-python) decoder ---- */

static json_t *hex_or_null(const uint8_t *p, int32_t len)
{
    if (len < 0) {
        return json_null();
    }
    char *s = malloc((size_t)len * 2 + 1);
    assert_non_null(s);
    for (int32_t i = 0; i < len; i++) {
        snprintf(s + i * 2, 3, "%02x", p[i]);
    }
    s[len * 2] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

static void test_keep_for_kafka_check(void **state)
{
    struct fixture *f = *state;
    const char *keep = getenv("SL_KEEP_SEGMENT");
    const char *dir = keep != NULL ? keep : f->dir;
    char *err = NULL;
    if (keep != NULL) {
        mkdir(keep, 0755);
    }
    struct sl_segment *seg = sl_segment_open(dir, 0, true, 256, &err);
    assert_non_null(seg);
    assert_int_equal(sl_segment_size(seg), 0); /* must start from an empty segment */

    json_t *recs = json_array();
    uint8_t bin[256];
    for (int i = 0; i < 256; i++) {
        bin[i] = (uint8_t)i;
    }
    const struct sl_hdr hdrs[3] = {
        {"ce_type", 7, (const uint8_t *)"com.example.order", 17},
        {"nullhdr", 7, NULL, -1},
        {"empty", 5, (const uint8_t *)"", 0},
    };
    int64_t off = 0;
    for (int batch = 0; batch < 12; batch++) {
        int n = 1 + batch % 5;
        sl_rb_builder_reset(&f->b, off);
        for (int i = 0; i < n; i++) {
            int k = batch * 10 + i;
            struct sl_rec_in r = {
                .timestamp = INT64_C(1700000000000) + k * 3 - (i == 2 ? 500 : 0),
                .key = (k % 4 == 0) ? NULL : bin + k % 50,
                .key_len = (k % 4 == 0) ? -1 : k % 7,
                .value = (k % 5 == 1) ? NULL : bin + k % 100,
                .value_len = (k % 5 == 1) ? -1 : (k * 13) % 150,
                .headers = hdrs,
                .n_headers = (size_t)(k % 4),
            };
            if (r.n_headers > 3) {
                r.n_headers = 3;
            }
            assert_int_equal(sl_rb_builder_add(&f->b, &r), 0);
            json_t *o = json_object();
            json_object_set_new(o, "offset", json_integer(off + i));
            json_object_set_new(o, "timestamp", json_integer(r.timestamp));
            json_object_set_new(o, "key", hex_or_null(r.key, r.key_len));
            json_object_set_new(o, "value", hex_or_null(r.value, r.value_len));
            json_t *ha = json_array();
            for (size_t h = 0; h < r.n_headers; h++) {
                json_t *pair = json_array();
                json_array_append_new(pair, json_stringn(hdrs[h].name, hdrs[h].name_len));
                json_array_append_new(pair, hex_or_null(hdrs[h].value, hdrs[h].value_len));
                json_array_append_new(ha, pair);
            }
            json_object_set_new(o, "headers", ha);
            json_array_append_new(recs, o);
        }
        size_t len;
        const uint8_t *buf = sl_rb_builder_finish(&f->b, &len);
        assert_int_equal(sl_segment_append(seg, buf, len, off, off + n - 1, f->b.max_timestamp), 0);
        off += n;
    }
    assert_int_equal(sl_segment_sync(seg), 0);
    sl_segment_close(&seg);

    json_t *doc = json_object();
    json_object_set_new(doc, "batches", json_integer(12));
    json_object_set_new(doc, "records", recs);
    char path[512];
    snprintf(path, sizeof(path), "%s/expect.json", dir);
    assert_int_equal(json_dump_file(doc, path, JSON_INDENT(1)), 0);
    json_decref(doc);

    /* Our own decoder agrees with the expectation count. */
    seg = sl_segment_open(dir, 0, false, 256, &err);
    assert_non_null(seg);
    assert_int_equal(sl_segment_recover(seg), 0);
    assert_true(sl_segment_next_offset(seg) == off);
    if (keep == NULL) {
        assert_int_equal(sl_segment_delete(&seg), 0);
        unlink(path);
    } else {
        sl_segment_close(&seg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_find_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_sparse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_every_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_corrupt_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_preallocate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_created_ms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_segment_syncs_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_for_kafka_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Unit tests for consumer groups (gateway/log/group.c). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/log/log.h"

#include "fixture.h"

/* ---- interposed fsync: the group saves call it (file, then directory) ---- */

static pthread_t loop_thread;            /* the thread running the tests and the loop */
static atomic_int group_fsyncs;          /* fsyncs of files under __groups */
static atomic_int group_fsyncs_on_loop;  /* ... of those, made on the loop thread */
static atomic_int group_fsync_hold;      /* nonzero: group fsyncs wait until it is 0 */
static atomic_int group_fsync_fail;      /* fail this many group fsyncs with EIO */

static bool under_groups(int fd)
{
    char link[64];
    char path[PATH_MAX];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0) {
        return false;
    }
    path[n] = '\0';
    return strstr(path, "/__groups") != NULL;
}

int fsync(int fd)
{
    if (under_groups(fd)) {
        atomic_fetch_add(&group_fsyncs, 1);
        if (pthread_equal(pthread_self(), loop_thread)) {
            atomic_fetch_add(&group_fsyncs_on_loop, 1);
        }
        while (atomic_load(&group_fsync_hold)) {
            usleep(1000);
        }
        if (atomic_load(&group_fsync_fail) > 0) {
            atomic_fetch_sub(&group_fsync_fail, 1);
            errno = EIO;
            return -1;
        }
    }
    return (int)syscall(SYS_fsync, fd);
}

static void open_log(struct fx_log *f)
{
    struct sl_log_options o = fx_log_options(f, SL_FLUSH_OS);

    o.defaults.partitions = 6;
    fx_log_open(f, &o);
}

static int setup(void **state)
{
    struct fx_log *f = fx_log_new("/tmp/test_group.");

    open_log(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    atomic_store(&group_fsync_hold, 0);
    atomic_store(&group_fsync_fail, 0);
    fx_log_free(*state);
    return 0;
}

static void run_turns(struct fx_log *f, int n)
{
    for (int i = 0; i < n; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
}

struct member {
    struct sl_group_member *m;
    int calls;
    int32_t parts[16];
    size_t n;
};

static void on_assign(struct sl_group_member *m, void *arg, const int32_t *parts, size_t n)
{
    struct member *me = arg;

    assert_ptr_equal(me->m, m);
    assert_true(n <= 16);
    me->calls++;
    me->n = n;
    memcpy(me->parts, parts, n * sizeof(*parts));
}

/* Assert that member me holds partitions [first, first + n). */
static void assert_range(const struct member *me, int32_t first, size_t n)
{
    assert_int_equal(me->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(me->parts[i], first + (int32_t)i);
    }
}

static void test_assignment_1_to_4(void **state)
{
    struct fx_log *f = *state;
    struct member ms[4];

    memset(ms, 0, sizeof(ms));
    ms[0].m = sl_group_join(f->log, "g", "t6", on_assign, &ms[0]);
    assert_non_null(ms[0].m);
    assert_int_equal(ms[0].calls, 0);         /* deferred, never inside join */
    run_turns(f, 3);
    assert_int_equal(ms[0].calls, 1);
    assert_range(&ms[0], 0, 6);

    ms[1].m = sl_group_join(f->log, "g", "t6", on_assign, &ms[1]);
    run_turns(f, 3);
    assert_int_equal(ms[0].calls, 2);
    assert_range(&ms[0], 0, 3);
    assert_range(&ms[1], 3, 3);

    ms[2].m = sl_group_join(f->log, "g", "t6", on_assign, &ms[2]);
    run_turns(f, 3);
    assert_range(&ms[0], 0, 2);
    assert_range(&ms[1], 2, 2);
    assert_range(&ms[2], 4, 2);

    ms[3].m = sl_group_join(f->log, "g", "t6", on_assign, &ms[3]);
    run_turns(f, 3);
    assert_range(&ms[0], 0, 2);
    assert_range(&ms[1], 2, 2);
    assert_range(&ms[2], 4, 1);
    assert_range(&ms[3], 5, 1);
    assert_int_equal(ms[0].calls, 3);         /* unchanged by the 4th join: no callback */
    assert_int_equal(ms[3].calls, 1);

    for (int i = 0; i < 4; i++) {
        sl_group_leave(&ms[i].m);
        assert_null(ms[i].m);
    }
}

static void test_rebalance_on_leave(void **state)
{
    struct fx_log *f = *state;
    struct member ms[3];
    struct member other;

    memset(ms, 0, sizeof(ms));
    memset(&other, 0, sizeof(other));
    for (int i = 0; i < 3; i++) {
        ms[i].m = sl_group_join(f->log, "workers", "jobs", on_assign, &ms[i]);
        assert_non_null(ms[i].m);
    }
    /* another group on the same topic is independent */
    other.m = sl_group_join(f->log, "audit", "jobs", on_assign, &other);
    run_turns(f, 3);
    assert_range(&ms[0], 0, 2);
    assert_range(&ms[1], 2, 2);
    assert_range(&ms[2], 4, 2);
    assert_range(&other, 0, 6);

    sl_group_leave(&ms[1].m);
    int c0 = ms[0].calls, c2 = ms[2].calls, co = other.calls;
    run_turns(f, 3);
    assert_range(&ms[0], 0, 3);
    assert_range(&ms[2], 3, 3);
    assert_int_equal(ms[0].calls, c0 + 1);
    assert_int_equal(ms[2].calls, c2 + 1);
    assert_int_equal(other.calls, co);

    sl_group_leave(&ms[0].m);
    run_turns(f, 3);
    assert_range(&ms[2], 0, 6);

    /* growing the topic rebalances its groups */
    struct sl_topic_config c;
    sl_topic_config_defaults(&c);
    c.partitions = 8;
    c.flush = SL_FLUSH_OS;
    assert_int_equal(sl_log_topic_configure(f->log, "jobs", &c), 0);
    run_turns(f, 3);
    assert_range(&ms[2], 0, 8);

    sl_group_leave(&ms[2].m);
    sl_group_leave(&other.m);
    sl_group_leave(&other.m);                 /* NULL: no-op */
}

static void test_leave_before_callback(void **state)
{
    struct fx_log *f = *state;
    struct member a, b;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.m = sl_group_join(f->log, "g", "t", on_assign, &a);
    b.m = sl_group_join(f->log, "g", "t", on_assign, &b);
    sl_group_leave(&b.m);                     /* its pending callback is dropped */
    run_turns(f, 3);
    assert_int_equal(b.calls, 0);
    assert_int_equal(a.calls, 1);
    assert_range(&a, 0, 6);
    sl_group_leave(&a.m);
}

static void test_commit_durable(void **state)
{
    struct fx_log *f = *state;

    assert_int_equal(sl_group_committed(f->log, "billing", "orders", 0), -1);
    assert_int_equal(sl_group_commit(f->log, "billing", "orders", 0, 42), 0);
    assert_int_equal(sl_group_commit(f->log, "billing", "orders", 3, 7), 0);
    assert_int_equal(sl_group_commit(f->log, "billing", "orders", 0, 43), 0);
    assert_int_equal(sl_group_commit(f->log, "odd name/with spaces", "orders", 1, 5), 0);
    assert_int_equal(sl_group_commit(f->log, "billing", "bad topic", 0, 1), -EINVAL);
    assert_int_equal(sl_group_commit(f->log, "billing", "orders", -1, 1), -EINVAL);
    assert_int_equal(sl_group_committed(f->log, "billing", "orders", 0), 43);

    sl_log_close(&f->log);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, "billing", "orders", 0), 43);
    assert_int_equal(sl_group_committed(f->log, "billing", "orders", 3), 7);
    assert_int_equal(sl_group_committed(f->log, "billing", "orders", 1), -1);
    assert_int_equal(sl_group_committed(f->log, "odd name/with spaces", "orders", 1), 5);
    assert_int_equal(sl_group_committed(f->log, "nobody", "orders", 0), -1);
}

static int on_long(void *arg, const char *group, const char *topic, int32_t partition,
                   int64_t committed, int members)
{
    const char *want = arg;

    if (strlen(group) == strlen(want)) {
        assert_string_equal(group, want);
        assert_string_equal(topic, "orders");
        assert_int_equal(partition, 2);
        assert_int_equal(committed, 77);
    }
    return 0;
}

/* Group names up to 255 bytes: long ones are hashed into the file name (which must fit
 * NAME_MAX with ".tmp"), the real name is kept inside. */
static void test_long_group_name(void **state)
{
    struct fx_log *f = *state;
    char name[250];
    char mid[102];
    char dir[128];
    DIR *d;
    struct dirent *de;
    int files = 0;

    for (int i = 0; i < 249; i++) {
        name[i] = (char)('a' + i % 26);
    }
    name[249] = '\0';
    memset(mid, 'm', 101);                    /* just past the hashing threshold */
    mid[101] = '\0';
    assert_int_equal(sl_group_commit(f->log, name, "orders", 2, 77), 0);
    assert_int_equal(sl_group_commit(f->log, mid, "orders", 0, 5), 0);
    assert_int_equal(sl_group_commit(f->log, "short", "orders", 0, 6), 0);
    assert_int_equal(sl_group_committed(f->log, name, "orders", 2), 77);

    sl_log_close(&f->log);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, name, "orders", 2), 77);
    assert_int_equal(sl_group_committed(f->log, name, "orders", 0), -1);
    assert_int_equal(sl_group_committed(f->log, mid, "orders", 0), 5);
    assert_int_equal(sl_group_committed(f->log, "short", "orders", 0), 6);
    assert_int_equal(sl_group_foreach(f->log, on_long, name), 0);

    /* a second commit rewrites the same file */
    assert_int_equal(sl_group_commit(f->log, name, "orders", 2, 78), 0);
    snprintf(dir, sizeof(dir), "%s/__groups", f->dir);
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            assert_true(strlen(de->d_name) + 4 <= 255);
            files++;
        }
    }
    closedir(d);
    assert_int_equal(files, 3);
    sl_log_close(&f->log);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, name, "orders", 2), 78);
}

struct seen {
    int rows;
    int billing_rows;
    int64_t committed_p3;
    int members_workers;
    int workers_rows;
};

static int on_group(void *arg, const char *group, const char *topic, int32_t partition,
                    int64_t committed, int members)
{
    struct seen *s = arg;

    s->rows++;
    if (strcmp(group, "billing") == 0) {
        assert_string_equal(topic, "orders");
        assert_int_equal(members, 0);
        s->billing_rows++;
        if (partition == 3) {
            s->committed_p3 = committed;
        }
    }
    if (strcmp(group, "workers") == 0) {
        s->members_workers = members;
        s->workers_rows++;
        if (partition == 0) {
            assert_int_equal(committed, 9);
        } else {
            assert_int_equal(committed, -1);
        }
    }
    return 0;
}

static int stop_first(void *arg, const char *group, const char *topic, int32_t partition,
                      int64_t committed, int members)
{
    (*(int *)arg)++;
    return 1;
}

static void test_foreach(void **state)
{
    struct fx_log *f = *state;
    struct member a, b;
    struct seen s;
    int calls = 0;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&s, 0, sizeof(s));
    assert_int_equal(sl_group_commit(f->log, "billing", "orders", 0, 10), 0);
    assert_int_equal(sl_group_commit(f->log, "billing", "orders", 3, 30), 0);
    a.m = sl_group_join(f->log, "workers", "jobs", on_assign, &a);
    b.m = sl_group_join(f->log, "workers", "jobs", on_assign, &b);
    assert_int_equal(sl_group_commit(f->log, "workers", "jobs", 0, 9), 0);
    assert_int_equal(sl_group_foreach(f->log, on_group, &s), 0);
    assert_int_equal(s.billing_rows, 2);      /* only committed partitions, no members */
    assert_int_equal(s.committed_p3, 30);
    assert_int_equal(s.members_workers, 2);
    assert_int_equal(s.workers_rows, 6);      /* every partition of a group with members */
    assert_int_equal(sl_group_foreach(f->log, stop_first, &calls), 1);
    assert_int_equal(calls, 1);
    sl_group_leave(&a.m);
    sl_group_leave(&b.m);
}

/* ---- saves off the loop ---- */

static struct sl_group_stats stats(struct fx_log *f)
{
    struct sl_group_stats st;

    sl_group_get_stats(f->log, &st);
    return st;
}

/* Run the loop until the log made `saves` saves (bounded: about 5 s). */
static void run_until_saves(struct fx_log *f, uint64_t saves)
{
    for (int i = 0; i < 5000 && stats(f).saves < saves; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_true(stats(f).saves >= saves);
}

static void append_ignore(void *arg, const struct sl_append_result *res)
{
    assert_int_equal(res->status, 0);
}

/* Append n records to t/partition (flush os: visible at once). */
static void append_n(struct fx_log *f, const char *t, int32_t partition, int n)
{
    for (int i = 0; i < n; i++) {
        struct sl_rec_in r;

        memset(&r, 0, sizeof(r));
        r.key_len = -1;
        r.value = (const uint8_t *)"v";
        r.value_len = 1;
        assert_int_equal(sl_log_append(f->log, t, partition, &r, 1, append_ignore, NULL),
                         0);
    }
    run_turns(f, 2);
}

struct done {
    int calls;
    int status;
};

static void on_done(void *arg, int status)
{
    struct done *d = arg;

    d->calls++;
    d->status = status;
}

/* A commit is visible at once and durable only after a save off the loop thread. */
static void test_commit_saved_off_loop(void **state)
{
    struct fx_log *f = *state;
    int before = atomic_load(&group_fsyncs);

    atomic_store(&group_fsyncs_on_loop, 0);
    assert_int_equal(sl_group_commit(f->log, "off", "orders", 1, 5), 0);
    assert_int_equal(sl_group_committed(f->log, "off", "orders", 1), 5);
    assert_int_equal(stats(f).saves, 0);      /* nothing written inside the call */
    assert_int_equal(atomic_load(&group_fsyncs), before);
    run_until_saves(f, 1);
    assert_int_equal(stats(f).save_errors, 0);
    assert_int_equal(atomic_load(&group_fsyncs), before + 2);   /* file, directory */
    assert_int_equal(atomic_load(&group_fsyncs_on_loop), 0);

    sl_log_close(&f->log);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, "off", "orders", 1), 5);
    assert_int_equal(atomic_load(&group_fsyncs_on_loop), 0);
}

/* Many commits of one group in one turn make one save; commits made while that save is
 * in flight make one follow-up save, not one each. */
static void test_commits_coalesce(void **state)
{
    struct fx_log *f = *state;

    for (int i = 0; i < 100; i++) {
        assert_int_equal(sl_group_commit(f->log, "co", "orders", i % 6, i), 0);
    }
    assert_int_equal(stats(f).commits, 100);
    run_until_saves(f, 1);
    run_turns(f, 5);
    assert_int_equal(stats(f).saves, 1);

    atomic_store(&group_fsync_hold, 1);       /* the next save stays in flight */
    assert_int_equal(sl_group_commit(f->log, "co", "orders", 0, 1000), 0);
    run_turns(f, 3);                          /* started, held in its fsync */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(sl_group_commit(f->log, "co", "orders", 1, 2000 + i), 0);
        run_turns(f, 1);
    }
    assert_int_equal(stats(f).saves, 1);
    atomic_store(&group_fsync_hold, 0);
    run_until_saves(f, 3);
    run_turns(f, 5);
    usleep(20000);
    run_turns(f, 5);
    assert_int_equal(stats(f).saves, 3);      /* the held one and a single follow-up */
    assert_int_equal(sl_group_committed(f->log, "co", "orders", 1), 2049);

    sl_log_close(&f->log);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, "co", "orders", 0), 1000);
    assert_int_equal(sl_group_committed(f->log, "co", "orders", 1), 2049);
}

/* sl_group_commit_many checks every offset against its partition first: nothing changes
 * on a refusal; an accepted commit is visible at once and calls back once durable. */
static void test_commit_many_checked(void **state)
{
    struct fx_log *f = *state;
    struct done d = {0, 1};
    size_t bad = 77;
    struct sl_group_offset beyond[] = {{0, 1}, {1, 3}};     /* p1's high watermark: 2 */
    struct sl_group_offset negative[] = {{0, -1}};
    struct sl_group_offset unknown[] = {{0, 1}, {6, 0}};
    struct sl_group_offset ok[] = {{0, 3}, {1, 2}, {2, 0}, {0, 4}};

    append_n(f, "v", 0, 4);
    append_n(f, "v", 1, 2);
    assert_int_equal(sl_log_high_watermark(f->log, "v", 1), 2);
    assert_int_equal(sl_group_commit(f->log, "chk", "v", 0, 1), 0);
    run_until_saves(f, 1);

    assert_int_equal(sl_group_commit_many(f->log, "chk", "v", beyond, 2, on_done, &d, &bad),
                     -ERANGE);
    assert_int_equal(bad, 1);
    assert_int_equal(sl_group_commit_many(f->log, "chk", "v", negative, 1, on_done, &d, &bad),
                     -ERANGE);
    assert_int_equal(bad, 0);
    assert_int_equal(sl_group_commit_many(f->log, "chk", "v", unknown, 2, on_done, &d, &bad),
                     -ENOENT);
    assert_int_equal(bad, 1);
    assert_int_equal(sl_group_commit_many(f->log, "chk", "nope", ok, 1, on_done, &d, NULL),
                     -ENOENT);
    assert_int_equal(sl_group_commit_many(f->log, "chk", "v", ok, 0, on_done, &d, NULL),
                     -EINVAL);
    assert_int_equal(sl_group_commit_many(f->log, "", "v", ok, 1, on_done, &d, NULL), -EINVAL);
    run_turns(f, 5);
    assert_int_equal(d.calls, 0);
    assert_int_equal(stats(f).saves, 1);      /* refusals save nothing */
    assert_int_equal(stats(f).commits, 1);
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 0), 1);
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 1), -1);
    assert_int_equal(sl_group_committed(f->log, "other", "v", 0), -1);

    assert_int_equal(sl_group_commit_many(f->log, "chk", "v", ok, 4, on_done, &d, &bad), 0);
    assert_int_equal(d.calls, 0);             /* never inside the call */
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 0), 4);   /* the last for p0 */
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 1), 2);
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 2), 0);
    run_until_saves(f, 2);
    run_turns(f, 2);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);

    sl_log_close(&f->log);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 0), 4);
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 1), 2);
    assert_int_equal(sl_group_committed(f->log, "chk", "v", 2), 0);
}

/* Closing right after commits (the loop never ran) writes them and fires the callback. */
static void test_close_drains(void **state)
{
    struct fx_log *f = *state;
    struct done d = {0, 1};
    struct sl_group_offset o[] = {{3, 2}};

    append_n(f, "dr", 3, 2);
    assert_int_equal(sl_group_commit(f->log, "drain", "dr", 0, 0), 0);
    assert_int_equal(sl_group_commit_many(f->log, "drain", "dr", o, 1, on_done, &d, NULL), 0);
    assert_int_equal(sl_group_commit(f->log, "drain2", "orders", 5, 9), 0);
    sl_log_close(&f->log);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, "drain", "dr", 0), 0);
    assert_int_equal(sl_group_committed(f->log, "drain", "dr", 3), 2);
    assert_int_equal(sl_group_committed(f->log, "drain2", "orders", 5), 9);
}

/* A failed save is reported to its callbacks and counted; the offsets stay committed and
 * the group's next save writes them. */
static void test_save_failure(void **state)
{
    struct fx_log *f = *state;
    struct done d = {0, 0};
    struct sl_group_offset o[] = {{0, 1}};

    append_n(f, "sf", 0, 1);
    atomic_store(&group_fsync_fail, 1);
    assert_int_equal(sl_group_commit_many(f->log, "fail", "sf", o, 1, on_done, &d, NULL), 0);
    run_until_saves(f, 1);
    run_turns(f, 2);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, -EIO);
    assert_int_equal(stats(f).save_errors, 1);
    assert_int_equal(sl_group_committed(f->log, "fail", "sf", 0), 1);
    run_turns(f, 5);
    assert_int_equal(stats(f).saves, 1);      /* no retry loop on its own */

    assert_int_equal(sl_group_commit(f->log, "fail", "orders", 2, 3), 0);
    run_until_saves(f, 2);
    assert_int_equal(stats(f).save_errors, 1);
    sl_log_close(&f->log);
    open_log(f);
    assert_int_equal(sl_group_committed(f->log, "fail", "sf", 0), 1);
    assert_int_equal(sl_group_committed(f->log, "fail", "orders", 2), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_assignment_1_to_4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebalance_on_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_before_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_group_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_saved_off_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commits_coalesce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_many_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_failure, setup, teardown),
    };

    loop_thread = pthread_self();
    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

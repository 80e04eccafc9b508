/* Unit tests for consumer groups (gateway/log/group.c). */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/log/log.h"

#include "fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_assignment_1_to_4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebalance_on_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_before_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_group_name, setup, teardown),
    };

    evthread_use_pthreads();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

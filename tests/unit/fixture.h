/*
 * Fixture code shared by the unit tests (test-only; every function is static inline so a
 * test that includes this header and uses only part of it compiles under -Werror).
 *
 *   fx_tmpdir(buf, prefix)         mkdtemp() of prefix "XXXXXX" into buf[64]
 *   fx_rm_tree(dir)                remove dir and everything under it
 *   fx_gw_open(gw, cfg, dir, n)    a gateway on a real log in dir: event_base (pthreads),
 *                                  config from sl_config_defaults(), n partitions, routes
 *   fx_gw_close(gw, cfg)           the reverse of fx_gw_open (dir is left to fx_rm_tree)
 *   fx_log_new(prefix)             a struct fx_log: a fresh tmp dir and event base, no log
 *   fx_log_options(f, flush)       sl_log_options for f's dir: topic defaults, flush, auto-create
 *   fx_log_open(f, opts)           f->log = sl_log_open(), failing the test if it cannot
 *   fx_log_free(f)                 close the log, free the base, remove the dir, free f
 *   fx_on_ack                      sl_log_append callback counting into a struct fx_acks
 *   fx_read_all(f, topic, part, from, c)   sl_log_read from offset from to the end into c
 *                                  (struct fx_collected: offsets, timestamps, values)
 *   fx_collect                     the sl_log_read / sl_cursor_poll callback behind it
 *   fx_segment_files(dir, &n)      the .log files of a partition dir, sorted; fx_free_files
 *   fx_describe(f, topic)          partition 0's log start, hw, segments, bytes (struct fx_info)
 */
#ifndef SLUICE_TESTS_UNIT_FIXTURE_H
#define SLUICE_TESTS_UNIT_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/log/log.h"
#include "routing/route.h"

/* mkdtemp() of "<prefix>XXXXXX" in buf; buf on success, NULL on failure (or too long). */
static inline char *fx_tmpdir(char buf[static 64], const char *prefix)
{
    int n = snprintf(buf, 64, "%sXXXXXX", prefix);

    if (n < 0 || n >= 64) {
        buf[0] = '\0';
        return NULL;
    }
    return mkdtemp(buf);
}

static inline int fx_rm_entry(const char *path, const struct stat *st, int flag,
                              struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove dir recursively (depth first, symlinks not followed); nftw()'s result. */
static inline int fx_rm_tree(const char *dir)
{
    return nftw(dir, fx_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A gateway on a real log in dir: evthread_use_pthreads(), gw->base, *cfg from
 * sl_config_defaults() with data_dir = dir and topic_defaults.partitions = partitions
 * (gw->cfg = *cfg), gw->log opened with sl_gateway_log_options(), an empty gw->routes.
 */
static inline void fx_gw_open(struct sl_gateway *gw, struct sl_config **cfg, const char *dir,
                              int32_t partitions)
{
    struct sl_log_options lo;
    char *err = NULL;

    evthread_use_pthreads();
    gw->base = event_base_new();
    *cfg = sl_config_defaults();
    assert_non_null(*cfg);
    free((*cfg)->data_dir);
    (*cfg)->data_dir = strdup(dir);
    (*cfg)->topic_defaults.partitions = partitions;
    gw->cfg = *cfg;
    sl_gateway_log_options(*cfg, &lo);
    gw->log = sl_log_open(gw->base, &lo, &err);
    assert_non_null(gw->log);
    gw->routes = rt_table_new();
}

/* Close what fx_gw_open() opened: the log, the routes, the config, the event base. */
static inline void fx_gw_close(struct sl_gateway *gw, struct sl_config **cfg)
{
    sl_log_close(&gw->log);
    rt_table_free(&gw->routes);
    sl_config_free(cfg);
    event_base_free(gw->base);
}

/* A log of its own in a temporary directory, on its own event base (the log tests). */
struct fx_log {
    char dir[64];
    struct event_base *base;
    struct sl_log *log;
};

static inline struct fx_log *fx_log_new(const char *prefix)
{
    struct fx_log *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_non_null(fx_tmpdir(f->dir, prefix));
    f->base = event_base_new();
    assert_non_null(f->base);
    return f;
}

static inline struct sl_log_options fx_log_options(const struct fx_log *f, enum sl_flush flush)
{
    struct sl_log_options o;

    memset(&o, 0, sizeof(o));
    o.data_dir = f->dir;
    sl_topic_config_defaults(&o.defaults);
    o.defaults.flush = flush;
    o.auto_create = true;
    return o;
}

static inline void fx_log_open(struct fx_log *f, const struct sl_log_options *o)
{
    char *err = NULL;

    f->log = sl_log_open(f->base, o, &err);
    if (f->log == NULL) {
        fprintf(stderr, "sl_log_open: %s\n", err != NULL ? err : "?");
    }
    free(err);
    assert_non_null(f->log);
}

static inline int fx_on_partition0(void *arg, const char *topic,
                                   const struct sl_topic_config *cfg,
                                   const struct sl_partition_info *parts, int32_t n)
{
    (void)topic;
    (void)cfg;
    (void)n;
    *(struct sl_partition_info *)arg = parts[0];
    return 0;
}

/* Partition 0 of topic as sl_log_describe reports it (the topic must exist). */
static inline struct sl_partition_info fx_part_info(struct fx_log *f, const char *topic)
{
    struct sl_partition_info pi;

    memset(&pi, 0, sizeof(pi));
    assert_int_equal(sl_log_describe(f->log, topic, fx_on_partition0, &pi), 0);
    return pi;
}

/* Acknowledgements of sl_log_append, counted by fx_on_ack (its arg: a struct fx_acks). */
struct fx_acks {
    int n;
    int errors;
    int64_t last_offset;
    int32_t partition;
};

static inline void fx_on_ack(void *arg, const struct sl_append_result *res)
{
    struct fx_acks *a = arg;

    a->n++;
    if (res->status != 0) {
        a->errors++;
    }
    a->last_offset = res->last_offset;
    a->partition = res->partition;
}

/* Run f's loop until *flag reaches want (bounded: about 5 s). */
static inline void fx_run_until(struct fx_log *f, const int *flag, int want)
{
    for (int i = 0; i < 5000 && *flag < want; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        if (*flag < want) {
            usleep(1000);
        }
    }
}

/* n turns of f's loop, 1 ms apart. */
static inline void fx_run_turns(struct fx_log *f, int n)
{
    for (int i = 0; i < n; i++) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

/* fx_log_open with fx_log_options(f, flush). */
static inline void fx_log_open_flush(struct fx_log *f, enum sl_flush flush)
{
    struct sl_log_options o = fx_log_options(f, flush);

    fx_log_open(f, &o);
}

/* Wall-clock milliseconds since the epoch, as the log stamps records. */
static inline int64_t fx_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void fx_log_free(struct fx_log *f)
{
    sl_log_close(&f->log);
    event_base_free(f->base);
    fx_rm_tree(f->dir);
    free(f);
}

/* ---- reading a log back ---- */

struct fx_collected {
    int n;
    int64_t offsets[4096];
    int64_t timestamps[4096];
    char values[4096][48];
};

static inline int fx_collect(void *arg, const char *topic, int32_t partition,
                             const struct sl_record *rec)
{
    struct fx_collected *c = arg;

    (void)topic;
    (void)partition;
    if (c->n < 4096) {
        size_t len = rec->value_len > 0 ? (size_t)rec->value_len : 0;

        if (len > 47) {
            len = 47;
        }
        c->offsets[c->n] = rec->offset;
        c->timestamps[c->n] = rec->timestamp;
        memcpy(c->values[c->n], rec->value, len);
        c->values[c->n][len] = '\0';
    }
    c->n++;
    return 0;
}

static inline int fx_read_all(struct fx_log *f, const char *topic, int32_t part, int64_t from,
                              struct fx_collected *c)
{
    int64_t next = from;
    int total = 0;

    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 10000; i++) {
        int n = sl_log_read(f->log, topic, part, next, 1000, 0, fx_collect, c, &next);

        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
        total += n;
    }
    return total;
}

struct fx_info {
    int64_t log_start, hw;
    uint32_t segments;
    uint64_t bytes;
    int32_t n_parts;
};

static inline int fx_on_describe(void *arg, const char *topic,
                                 const struct sl_topic_config *cfg,
                                 const struct sl_partition_info *parts, int32_t n)
{
    struct fx_info *in = arg;

    (void)topic;
    (void)cfg;
    in->log_start = parts[0].log_start_offset;
    in->hw = parts[0].high_watermark;
    in->segments = parts[0].segments;
    in->bytes = parts[0].bytes;
    in->n_parts = n;
    return 0;
}

static inline struct fx_info fx_describe(struct fx_log *f, const char *topic)
{
    struct fx_info in;

    memset(&in, 0, sizeof(in));
    assert_int_equal(sl_log_describe(f->log, topic, fx_on_describe, &in), 0);
    return in;
}

static inline int fx_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .log files of dir, sorted (base-offset order); *n gets their count. */
static inline char **fx_segment_files(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = calloc(256, sizeof(*v));

    assert_non_null(d);
    assert_non_null(v);
    *n = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);

        if (len > 4 && strcmp(de->d_name + len - 4, ".log") == 0 && *n < 256) {
            assert_true(asprintf(&v[(*n)++], "%s/%s", dir, de->d_name) > 0);
        }
    }
    closedir(d);
    qsort(v, (size_t)*n, sizeof(*v), fx_cmp_str);
    return v;
}

static inline void fx_free_files(char **v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

#endif

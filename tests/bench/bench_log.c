/*
 * Log core benchmark: (1) flush always, 64 producers x 32 single-record appends in
 * flight, each ack issuing the next append; (2) flush os, appends of 100 records of
 * 100 bytes; (3) sequential read of (2) through sl_log_read and through a cursor.
 *
 *   build/bench/bench_log [seconds-for-always (default 3)] [records-for-os (default 5000000)]
 *                         [none|gzip|lz4|zstd]
 *
 * With a codec named, (2) and (3) run on a topic with that compression and JSON-like
 * 100-byte values (a sensor reading each, as MQTT devices send), so `none` is the
 * baseline on the same data; without it, the values are 100 x 'v' as before. For CPU
 * cost use instruction counts, e.g.
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=sl_log_append \
 *       build/bench/bench_log 0 200000 zstd
 *
 * Data goes to a mkdtemp() directory under $TMPDIR (default /tmp), removed at the end.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "gateway/log/log.h"

#define PRODUCERS 64
#define IN_FLIGHT 32

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct bench {
    struct sl_log *log;
    uint8_t value[100];
    double deadline;
    uint64_t acked;
    uint64_t errors;
    int outstanding;
};

static void issue(struct bench *b, int producer);

static void on_ack(void *arg, const struct sl_append_result *res)
{
    struct bench *b = *(struct bench **)arg;
    int producer = (int)((intptr_t *)arg)[1];

    b->outstanding--;
    if (res->status != 0) {
        b->errors++;
    } else {
        b->acked++;
    }
    if (now_s() < b->deadline) {
        issue(b, producer);
    }
}

static intptr_t producer_ctx[PRODUCERS][2];

static void issue(struct bench *b, int producer)
{
    struct sl_rec_in r = { .timestamp = 1700000000000LL, .key_len = -1, .value = b->value,
                           .value_len = sizeof(b->value) };

    if (sl_log_append(b->log, "always", 0, &r, 1, on_ack, producer_ctx[producer]) == 0) {
        b->outstanding++;
    } else {
        b->errors++;
    }
}

static int count_rec(void *arg, const char *topic, int32_t partition, const struct sl_record *rec)
{
    (void)topic;
    (void)partition;
    *(uint64_t *)arg += (uint64_t)rec->value_len;
    return 0;
}

static int sum_bytes(void *arg, const char *topic, const struct sl_topic_config *cfg,
                     const struct sl_partition_info *parts, int32_t n)
{
    (void)topic;
    (void)cfg;
    for (int32_t i = 0; i < n; i++) {
        *(uint64_t *)arg += parts[i].bytes;
    }
    return 0;
}

/* Bytes of the "os" topic's segments. */
static uint64_t os_bytes(struct sl_log *log)
{
    uint64_t sum = 0;

    sl_log_describe(log, "os", sum_bytes, &sum);
    return sum;
}

static void os_ack(void *arg, const struct sl_append_result *res)
{
    if (res->status != 0) {
        (*(uint64_t *)arg)++;
    }
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    uint64_t os_records = argc > 2 ? strtoull(argv[2], NULL, 10) : 5000000;
    const char *codec_name = argc > 3 ? argv[3] : NULL;
    static const char *const codec_names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    enum sl_rb_codec codec = SL_RB_CODEC_NONE;
    static char values[100][101];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512];
    struct event_base *base;
    struct sl_log_options o;
    struct sl_log_stats st;
    struct bench b;
    struct sl_rec_in recs[100];
    struct sl_cursor *cur;
    char *err = NULL;
    uint64_t os_errors = 0, sum = 0, got;
    int64_t next = 0;
    double t0, t1;
    int e = 0;

    snprintf(dir, sizeof(dir), "%s/bench_log.XXXXXX", tmp);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    evthread_use_pthreads();
    base = event_base_new();
    memset(&o, 0, sizeof(o));
    o.data_dir = dir;
    sl_topic_config_defaults(&o.defaults);
    o.auto_create = true;
    b = (struct bench){ 0 };
    memset(b.value, 'v', sizeof(b.value));
    b.log = sl_log_open(base, &o, &err);
    if (b.log == NULL) {
        fprintf(stderr, "open: %s\n", err ? err : "?");
        return 1;
    }

    /* (1) flush always, closed loop */
    t0 = now_s();
    b.deadline = t0 + secs;
    for (int p = 0; p < PRODUCERS; p++) {
        producer_ctx[p][0] = (intptr_t)&b;
        producer_ctx[p][1] = p;
        for (int i = 0; i < IN_FLIGHT; i++) {
            issue(&b, p);
        }
    }
    while (b.outstanding > 0) {
        event_base_loop(base, EVLOOP_ONCE);
    }
    t1 = now_s();
    sl_log_get_stats(b.log, &st);
    printf("always: %d producers x %d in flight, 100-byte records: %.0f records/s "
           "(%llu acked, %llu errors, %llu fsyncs, %.1f records/fsync, mean fsync %.3f ms)\n",
           PRODUCERS, IN_FLIGHT, (double)b.acked / (t1 - t0), (unsigned long long)b.acked,
           (unsigned long long)b.errors, (unsigned long long)st.fsyncs,
           st.fsyncs ? (double)b.acked / (double)st.fsyncs : 0.0,
           st.fsyncs ? st.fsync_seconds_sum / (double)st.fsyncs * 1000 : 0.0);

    /* (2) flush os, 100 records per append */
    {
        struct sl_topic_config c;

        sl_topic_config_defaults(&c);
        c.flush = SL_FLUSH_OS;
        for (int i = 0; codec_name != NULL && i < 5; i++) {
            if (strcmp(codec_name, codec_names[i]) == 0) {
                codec = (enum sl_rb_codec)i;
            }
        }
        c.compression = codec;
        if (sl_log_topic_configure(b.log, "os", &c) != 0) {
            fprintf(stderr, "bad codec %s\n", codec_name);
            return 1;
        }
    }
    for (int i = 0; i < 100; i++) {
        recs[i] = (struct sl_rec_in){ .timestamp = 1700000000000LL + i, .key_len = -1,
                                      .value = b.value, .value_len = sizeof(b.value) };
        if (codec_name != NULL) {
            int n = snprintf(values[i], sizeof(values[i]),
                             "{\"device\":\"sensor-%03d\",\"temp\":%d.%d,\"hum\":%d,"
                             "\"unit\":\"celsius\",\"seq\":%d,\"ok\":true}",
                             (i * 37) % 1000, 15 + (i * 7) % 20, (i * 3) % 10, 30 + i % 50,
                             1000 + i * 13);
            while (n < 100) {
                values[i][n++] = ' ';
            }
            recs[i].value = (const uint8_t *)values[i];
            recs[i].value_len = 100;
        }
    }
    t0 = now_s();
    for (uint64_t n = 0; n < os_records; n += 100) {
        if (sl_log_append(b.log, "os", 0, recs, 100, os_ack, &os_errors) != 0) {
            os_errors++;
        }
    }
    t1 = now_s();
    printf("os: appends of 100 x 100-byte records, compression %s: %.0f records/s "
           "(%llu records, %llu errors, %llu bytes on disk)\n",
           codec_names[codec], (double)os_records / (t1 - t0), (unsigned long long)os_records,
           (unsigned long long)os_errors, (unsigned long long)os_bytes(b.log));

    /* (3) sequential reads */
    t0 = now_s();
    got = 0;
    for (;;) {
        int n = sl_log_read(b.log, "os", 0, next, 10000, 0, count_rec, &sum, &next);

        if (n <= 0) {
            break;
        }
        got += (uint64_t)n;
    }
    t1 = now_s();
    printf("read: sl_log_read: %.0f records/s (%llu records)\n", (double)got / (t1 - t0),
           (unsigned long long)got);

    cur = sl_cursor_open(b.log, "os", 0, (struct sl_start){ SL_START_EARLIEST, 0 }, NULL, NULL,
                         &e);
    t0 = now_s();
    got = 0;
    for (;;) {
        int n = sl_cursor_poll(cur, 10000, 0, count_rec, &sum);

        if (n <= 0) {
            break;
        }
        got += (uint64_t)n;
    }
    t1 = now_s();
    printf("read: cursor: %.0f records/s (%llu records)\n", (double)got / (t1 - t0),
           (unsigned long long)got);
    sl_cursor_close(&cur);

    sl_log_close(&b.log);
    event_base_free(base);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

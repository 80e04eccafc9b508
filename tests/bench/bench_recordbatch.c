/*
 * RecordBatch v2 codec throughput: encode 100-byte records in batches of 100, then
 * parse (with CRC) and iterate them. Prints records/s for each.
 *
 * Usage: bench_recordbatch [total_records]   (default 5,000,000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/log/recordbatch.h"

#define PER_BATCH 100
#define VALUE_LEN 100

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 5000000;
    long batches = total / PER_BATCH;
    uint8_t value[VALUE_LEN];
    char key[16];
    struct sl_rb_builder b;

    if (batches < 1) {
        batches = 1;
    }
    memset(value, 'v', sizeof(value));
    sl_rb_builder_init(&b);

    /* Keep every encoded batch so decoding reads realistic (not cache-hot) bytes. */
    size_t cap = (size_t)batches * (PER_BATCH * (VALUE_LEN + 24) + SL_RB_HEADER_SIZE);
    uint8_t *store = malloc(cap);
    if (store == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    size_t used = 0;

    /* Pass 1: the builder alone (one reused buffer, as the log's append path uses it). */
    double tb0 = now_s();
    size_t bytes = 0;
    for (long i = 0; i < batches; i++) {
        sl_rb_builder_reset(&b, i * PER_BATCH);
        for (int r = 0; r < PER_BATCH; r++) {
            struct sl_rec_in rec = {1700000000000 + r, (const uint8_t *)"key", 3, value,
                                    VALUE_LEN, NULL, 0};
            if (sl_rb_builder_add(&b, &rec) != 0) {
                fprintf(stderr, "add failed\n");
                return 1;
            }
        }
        size_t len;
        sl_rb_builder_finish(&b, &len);
        bytes += len;
    }
    double tb1 = now_s();

    /* Pass 2: encode and keep every batch (for the decode pass). */
    double t0 = now_s();
    for (long i = 0; i < batches; i++) {
        sl_rb_builder_reset(&b, i * PER_BATCH);
        for (int r = 0; r < PER_BATCH; r++) {
            int kl = snprintf(key, sizeof(key), "k%d", r);
            struct sl_rec_in rec = {1700000000000 + r, (const uint8_t *)key, kl, value,
                                    VALUE_LEN, NULL, 0};
            if (sl_rb_builder_add(&b, &rec) != 0) {
                fprintf(stderr, "add failed\n");
                return 1;
            }
        }
        size_t len;
        const uint8_t *buf = sl_rb_builder_finish(&b, &len);
        if (used + len > cap) {
            fprintf(stderr, "store too small\n");
            return 1;
        }
        memcpy(store + used, buf, len);
        used += len;
    }
    double t1 = now_s();

    long seen = 0;
    uint64_t sum = 0;
    size_t pos = 0;
    while (pos < used) {
        struct sl_rb_batch bt;
        struct sl_rb_iter it;
        struct sl_record rec;
        if (sl_rb_parse(store + pos, used - pos, &bt) != SL_RB_OK) {
            fprintf(stderr, "parse failed at %zu\n", pos);
            return 1;
        }
        sl_rb_iter_init(&it, &bt);
        while (sl_rb_iter_next(&it, &rec) == 1) {
            sum += (uint64_t)rec.value_len + rec.value[0];
            seen++;
        }
        pos += bt.total_len;
    }
    double t2 = now_s();

    long n = batches * PER_BATCH;
    printf("encode (builder only, CRC included): %.2f s, %.0f records/s, %.0f MB/s\n",
           tb1 - tb0, (double)(batches * PER_BATCH) / (tb1 - tb0), (double)bytes / (tb1 - tb0) / 1e6);
    printf("encode + copy out: %ld records of %d B in batches of %d: %.2f s, %.0f records/s, %.0f MB/s\n",
           n, VALUE_LEN, PER_BATCH, t1 - t0, (double)n / (t1 - t0),
           (double)used / (t1 - t0) / 1e6);
    printf("decode: %ld records (parse + CRC + iterate): %.2f s, %.0f records/s, %.0f MB/s\n",
           seen, t2 - t1, (double)seen / (t2 - t1), (double)used / (t2 - t1) / 1e6);
    if (seen != n || sum == 0) {
        fprintf(stderr, "decoded %ld of %ld\n", seen, n);
        return 1;
    }
    free(store);
    sl_rb_builder_free(&b);
    return 0;
}

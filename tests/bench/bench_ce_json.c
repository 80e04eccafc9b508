/*
 * CloudEvents JSON batch decode throughput: one batch of 100 structured events (about
 * 19 KB, each with 100 bytes of string data, as a batch-mode REST publish carries)
 * decoded by ce_json_parse_batch again and again. Five runs; prints the median.
 *
 * Usage: bench_ce_json [--telemetry] [batches_per_run]   (default 2000)
 *
 * --telemetry decodes the body of post_batch_telemetry.lua instead (tests/bench/
 * telemetry_body.h: 100 realistic events, each with its own subject and JSON data).
 * For instruction counts (the transport thread's decode only):
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=ce_json_parse_batch \
 *       build/bench/bench_ce_json --telemetry 200
 * and divide the total by 5 x 100 x batches_per_run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/ce_json.h"
#include "tests/bench/telemetry_body.h"

#define PER_BATCH 100
#define DATA_LEN 100
#define RUNS 5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The batch as a malloc'd, NOT NUL-terminated buffer of *len bytes (as a body arrives). */
static char *make_batch(size_t *len)
{
    size_t cap = PER_BATCH * 512 + 16;
    char *text = malloc(cap);
    char data[DATA_LEN + 1];
    size_t used = 0;

    if (text == NULL) {
        return NULL;
    }
    for (int i = 0; i < DATA_LEN; i++) {
        data[i] = (char)('a' + i % 26);
    }
    data[DATA_LEN] = '\0';
    text[used++] = '[';
    for (int i = 0; i < PER_BATCH; i++) {
        used += (size_t)snprintf(text + used, cap - used,
                                 "%s{\"specversion\":\"1.0\",\"id\":\"evt-%06d\","
                                 "\"source\":\"/bench\",\"type\":\"com.example.created\","
                                 "\"data\":\"%s\"}",
                                 i == 0 ? "" : ",", i, data);
    }
    text[used++] = ']';
    *len = used;
    return realloc(text, used);
}

int main(int argc, char **argv)
{
    bool telemetry = argc > 1 && strcmp(argv[1], "--telemetry") == 0;
    long per_run = argc > 1 + telemetry ? atol(argv[1 + telemetry]) : 2000;
    double rates[RUNS];
    char err[256];
    size_t len;
    char *batch = telemetry ? telemetry_batch(0, &len) : make_batch(&len);

    if (batch == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    if (per_run < 1) {
        per_run = 1;
    }
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_s();
        for (long i = 0; i < per_run; i++) {
            struct sl_env **envs = NULL;
            size_t n = 0;
            int rc = ce_json_parse_batch(batch, len, PER_BATCH, &envs, &n, err, sizeof(err));
            if (rc != 0 || n != PER_BATCH) {
                fprintf(stderr, "parse failed (%d): %s\n", rc, err);
                free(batch);
                return 1;
            }
            ce_json_free_batch(&envs, n);
        }
        rates[r] = (double)per_run * PER_BATCH / (now_s() - t0);
    }
    qsort(rates, RUNS, sizeof(rates[0]), cmp_double);
    printf("%s batch of %d events, %zu bytes; %ld batches per run, %d runs\n",
           telemetry ? "telemetry" : "one-letter", PER_BATCH, len, per_run, RUNS);
    printf("ce_json_parse_batch events_per_s=%.0f\n", rates[RUNS / 2]);
    free(batch);
    return 0;
}

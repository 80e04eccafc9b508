/*
 * Route lookup cost with 10 rules vs 10,000 rules: the trie's promise is that the second
 * is not much slower than the first (goal: ratio <= 2).
 *
 * Rules (listener "mqtt"): "site{i}/+/temp" -> "t{i}", every tenth "site{i}/alerts/#"
 * -> "alerts-{1}", plus one broad "+/+/hum" at the end. Subjects, the same mix for both
 * tables (drawn from that table's site range): 50% hits on a site rule, 15% hits on
 * "+/+/hum", 15% misses inside a known site (default addressing), 20% unknown first level
 * (default addressing). 1,000,000 lookups per run over a pool of 65,536 subjects, 5 runs
 * per table, interleaved; prints the median of each and the ratio.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routing/route.h"

#define POOL 65536
#define LOOKUPS 1000000
#define RUNS 5

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct rt_table *build(int n)
{
    struct rt_table *t = rt_table_new();
    if (t == NULL) {
        return NULL;
    }
    char pat[64], topic[64];
    for (int i = 0; i <= n; i++) {
        const char *topics[] = { topic };
        if (i == n) {
            snprintf(pat, sizeof(pat), "+/+/hum");
            snprintf(topic, sizeof(topic), "hum");
        } else if (i % 10 == 9) {
            snprintf(pat, sizeof(pat), "site%d/alerts/#", i);
            snprintf(topic, sizeof(topic), "alerts-{1}");
        } else {
            snprintf(pat, sizeof(pat), "site%d/+/temp", i);
            snprintf(topic, sizeof(topic), "t%d", i);
        }
        struct rt_ingress r = { .listener = "mqtt", .match = pat, .topics = topics,
                                .n_topics = 1, .line = i + 1 };
        char *err = NULL;
        if (rt_add_ingress(t, &r, &err) != 0) {
            fprintf(stderr, "bench_route: %s\n", err ? err : "add failed");
            free(err);
            rt_table_free(&t);
            return NULL;
        }
    }
    return t;
}

static char **make_subjects(int n)
{
    char **pool = calloc(POOL, sizeof(*pool));
    if (pool == NULL) {
        return NULL;
    }
    for (int i = 0; i < POOL; i++) {
        char buf[96];
        int site = (int)(rng() % (uint64_t)n);
        int dev = (int)(rng() % 1000);
        int kind = (int)(rng() % 100);
        if (kind < 50) {
            if (site % 10 == 9) {
                snprintf(buf, sizeof(buf), "site%d/alerts/dev%d/fire", site, dev);
            } else {
                snprintf(buf, sizeof(buf), "site%d/dev%d/temp", site, dev);
            }
        } else if (kind < 65) {
            snprintf(buf, sizeof(buf), "site%d/dev%d/hum", site, dev);
        } else if (kind < 80) {
            snprintf(buf, sizeof(buf), "site%d/dev%d/pressure", site, dev);
        } else {
            snprintf(buf, sizeof(buf), "zone%d/dev%d/temp", site, dev);
        }
        pool[i] = strdup(buf);
        if (pool[i] == NULL) {
            return NULL;
        }
    }
    return pool;
}

/* One run: LOOKUPS lookups; returns ns per lookup; *sum collects a checksum. */
static double run(const struct rt_table *t, char **pool, uint64_t *sum)
{
    struct rt_decision d;
    double t0 = now_ns();
    for (int i = 0; i < LOOKUPS; i++) {
        const char *s = pool[(unsigned)i & (POOL - 1)];
        if (rt_route_ingress(t, "mqtt", NULL, s, NULL, NULL, &d) == 0) {
            *sum += d.rule != NULL ? (uint64_t)d.rule->line : (uint64_t)d.topics[0][0];
        }
    }
    return (now_ns() - t0) / LOOKUPS;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    struct rt_table *small = build(10);
    struct rt_table *big = build(10000);
    char **pool_small = make_subjects(10);
    char **pool_big = make_subjects(10000);
    if (small == NULL || big == NULL || pool_small == NULL || pool_big == NULL) {
        fprintf(stderr, "bench_route: setup failed\n");
        return 1;
    }
    uint64_t sum = 0;
    double ns_small[RUNS], ns_big[RUNS];
    run(small, pool_small, &sum);   /* warm-up */
    run(big, pool_big, &sum);
    for (int r = 0; r < RUNS; r++) {
        ns_small[r] = run(small, pool_small, &sum);
        ns_big[r] = run(big, pool_big, &sum);
    }
    qsort(ns_small, RUNS, sizeof(double), cmp_double);
    qsort(ns_big, RUNS, sizeof(double), cmp_double);
    double a = ns_small[RUNS / 2], b = ns_big[RUNS / 2];
    printf("route_lookup rules=10 ns_per_lookup=%.1f rules=10000 ns_per_lookup=%.1f "
           "ratio=%.2f (median of %d runs of %d lookups; checksum %llu)\n",
           a, b, b / a, RUNS, LOOKUPS, (unsigned long long)sum);
    for (int i = 0; i < POOL; i++) {
        free(pool_small[i]);
        free(pool_big[i]);
    }
    free(pool_small);
    free(pool_big);
    rt_table_free(&small);
    rt_table_free(&big);
    return b / a <= 2.0 ? 0 : 2;
}

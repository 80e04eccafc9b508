/*
 * The body of tests/bench/post_batch_telemetry.lua, made in C with a fixed seed: a batch
 * of 100 structured CloudEvents, each a JSON reading from a different device (so a
 * different subject, keyed by subject over the partitions), about 280 bytes an event.
 * Shared by the benches; header-only (static).
 */
#ifndef SL_BENCH_TELEMETRY_BODY_H
#define SL_BENCH_TELEMETRY_BODY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define TELEMETRY_EVENTS 100

/* xorshift64*: deterministic across runs and machines. */
static uint64_t telemetry_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void telemetry_hex(uint64_t *s, char *out, int n)
{
    for (int i = 0; i < n; i++) {
        out[i] = "0123456789abcdef"[telemetry_rand(s) & 15];
    }
    out[n] = '\0';
}

/* A malloc'd batch, NOT NUL-terminated (as a body arrives), of *len bytes; NULL on out
 * of memory. Devices are 100 distinct numbers in 1..1000. */
static char *telemetry_batch(uint64_t seed, size_t *len)
{
    size_t cap = TELEMETRY_EVENTS * 512 + 16;
    char *text = malloc(cap);
    uint64_t s = seed != 0 ? seed : 20261126;
    size_t used = 0;
    int devs[TELEMETRY_EVENTS];

    if (text == NULL) {
        return NULL;
    }
    for (int i = 0; i < TELEMETRY_EVENTS; i++) {
        int dev;
        bool dup;
        do {
            dev = (int)(telemetry_rand(&s) % 1000) + 1;
            dup = false;
            for (int j = 0; j < i; j++) {
                dup = dup || devs[j] == dev;
            }
        } while (dup);
        devs[i] = dev;
    }
    text[used++] = '[';
    for (int i = 0; i < TELEMETRY_EVENTS; i++) {
        char id[13];
        char trace[17];
        int dev = devs[i];
        double temp = (double)(telemetry_rand(&s) % 4000) / 100.0 - 5.0;
        double hum = (double)(telemetry_rand(&s) % 1000) / 10.0;
        double hpa = 950.0 + (double)(telemetry_rand(&s) % 1000) / 10.0;

        telemetry_hex(&s, id, 12);
        telemetry_hex(&s, trace, 16);
        used += (size_t)snprintf(
            text + used, cap - used,
            "%s{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/site/%d\","
            "\"type\":\"telemetry.reading\",\"subject\":\"sensor-%04d\","
            "\"datacontenttype\":\"application/json\",\"data\":{\"device\":\"sensor-%04d\","
            "\"seq\":%d,\"temp_c\":%.2f,\"humidity\":%.1f,\"hpa\":%.1f,\"trace\":\"%s\"}}",
            i == 0 ? "" : ",", id, dev % 10, dev, dev, i + 1, temp, hum, hpa, trace);
    }
    text[used++] = ']';
    *len = used;
    return text;
}

#endif

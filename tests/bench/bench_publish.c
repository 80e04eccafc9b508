/*
 * REST batch publish on the core loop thread, in process: POST /topics/benchbatch with
 * application/cloudevents-batch+json, 100 events of ~100 bytes each (the body of
 * tests/bench/post_batch.lua), through rest_api_handle on a real log (flush os, the
 * daemon's coalescing) in a temp dir, each request answered before the next. The JSON
 * is decoded ahead of the handler (rest_api_preparse), as the transport thread does, so
 * the figure is the loop thread's part: route, finalize, encode, append, write, ack.
 *
 *   build/bench/bench_publish [--telemetry] [requests (default 10000)]
 *
 * --telemetry posts the body of post_batch_telemetry.lua instead (tests/bench/
 * telemetry_body.h: 100 realistic events, each its own subject, so keyed by subject
 * over the 4 partitions) to /topics/telemetry.
 *
 * Prints one line. For instruction counts (the machine's timing is noisy), count only
 * the loop thread's work:
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=rest_api_handle \
 *       --toggle-collect=event_base_loop build/bench/bench_publish [--telemetry] 2000
 * and divide the total by 100 x requests.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "adapters/rest/rest_api.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/log/log.h"
#include "routing/route.h"
#include "tests/bench/telemetry_body.h"

#define EVENTS 100

struct answer {
    int calls;
    int status;
};

static void on_done(void *arg, struct rest_resp *resp)
{
    struct answer *a = arg;
    a->calls++;
    a->status = resp->status;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    bool telemetry = argc > 1 && strcmp(argv[1], "--telemetry") == 0;
    long requests = argc > 1 + telemetry ? atol(argv[1 + telemetry]) : 10000;
    const char *path = telemetry ? "/topics/telemetry" : "/topics/benchbatch";
    const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    char dir[256];
    struct sl_gateway gw;
    struct sl_config *cfg;
    struct sl_log_options lo;
    struct rest_api *api;
    struct rest_api_opts opts = {.listener = "http", .max_body = 1 << 20};
    char *err = NULL;
    char *body;
    size_t len = 0;
    struct rest_hdr hdr = {.name = "content-type",
                           .value = "application/cloudevents-batch+json"};
    struct sl_buf *buf;
    long failed = 0;
    double t0, t1;

    snprintf(dir, sizeof(dir), "%s/sl_bench_publish_XXXXXX", tmp);
    if (requests <= 0 || mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench_publish: bad arguments or no temp dir\n");
        return 1;
    }
    memset(&gw, 0, sizeof(gw));
    evthread_use_pthreads();
    gw.base = event_base_new();
    cfg = sl_config_defaults();
    if (gw.base == NULL || cfg == NULL) {
        return 1;
    }
    free(cfg->data_dir);
    cfg->data_dir = strdup(dir);
    cfg->topic_defaults.partitions = 4;
    cfg->topic_defaults.flush = SL_FLUSH_OS;
    gw.cfg = cfg;
    sl_gateway_log_options(cfg, &lo);
    gw.log = sl_log_open(gw.base, &lo, &err);
    gw.routes = rt_table_new();
    api = rest_api_new(&gw, &opts);
    if (gw.log == NULL || gw.routes == NULL || api == NULL) {
        fprintf(stderr, "bench_publish: setup failed: %s\n", err != NULL ? err : "?");
        return 1;
    }

    body = telemetry ? telemetry_batch(0, &len) : malloc(EVENTS * 256 + 2);
    if (body == NULL) {
        return 1;
    }
    if (!telemetry) {
        body[len++] = '[';
    }
    for (int i = 1; i <= EVENTS && !telemetry; i++) {
        char data[101];
        memset(data, 'y', 100);
        data[100] = '\0';
        len += (size_t)sprintf(body + len, "%s{\"specversion\":\"1.0\",\"id\":\"e%d\","
                               "\"source\":\"/bench\",\"type\":\"bench\",\"subject\":\"bench\","
                               "\"data\":\"%s\"}", i > 1 ? "," : "", i, data);
    }
    if (!telemetry) {
        body[len++] = ']';
    }
    buf = sl_buf_new(body, len);

    t0 = now_s();
    for (long r = 0; r < requests; r++) {
        struct rest_req req = {.method = "POST", .path = path,
                               .headers = &hdr, .n_headers = 1, .body = buf};
        struct answer ans = {0};

        req.parsed = rest_api_preparse(&req);
        rest_api_handle(api, &req, on_done, &ans);
        while (ans.calls == 0) {
            event_base_loop(gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        }
        if (ans.status != 201) {
            failed++;
        }
        rest_parsed_free(&req.parsed);
    }
    t1 = now_s();
    printf("bench_publish %s requests=%ld failed=%ld events_per_s=%.0f "
           "ns_per_event=%.1f (loop thread, preparse included)\n",
           telemetry ? "telemetry_100" : "batch_100", requests, failed, (double)requests * EVENTS / (t1 - t0),
           (t1 - t0) * 1e9 / ((double)requests * EVENTS));

    sl_buf_unref(&buf);
    free(body);
    rest_api_free(&api);
    sl_log_close(&gw.log);
    rt_table_free(&gw.routes);
    sl_config_free(&cfg);
    event_base_free(gw.base);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failed != 0;
}

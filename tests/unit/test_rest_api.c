/* The REST handlers (adapters/rest/rest_api.c) on a real log and event loop, no sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "adapters/rest/rest_api.h"
#include "gateway/gateway.h"
#include "gateway/log/log.h"
#include "gateway/metrics.h"
#include "routing/route.h"

#include "fixture.h"

struct fixture {
    char dir[64];
    char web[96];
    struct sl_gateway gw;
    struct sl_config *cfg;
    struct rest_api *api;
};

struct result {
    int calls;
    int status;
    char ctype[64];
    char *body;
    json_t *json;
    char extra[128];
};

static void on_done(void *arg, struct rest_resp *resp)
{
    struct result *r = arg;

    r->calls++;
    r->status = resp->status;
    snprintf(r->ctype, sizeof(r->ctype), "%s", resp->content_type);
    free(r->body);
    r->body = strndup(resp->body != NULL ? resp->body : "", resp->body_len);
    json_decref(r->json);
    r->json = json_loadb(resp->body, resp->body_len, JSON_DECODE_ANY, NULL);
    r->extra[0] = '\0';
    if (resp->n_extra > 0) {
        snprintf(r->extra, sizeof(r->extra), "%s %s", resp->extra[0].name, resp->extra[0].value);
    }
}

static void result_clear(struct result *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct rest_api_opts opts = {.listener = "http", .max_body = 4096, .max_wait_ms = 2000};
    FILE *fp;

    assert_non_null(fx_tmpdir(f->dir, "/tmp/sl_rest_"));
    snprintf(f->web, sizeof(f->web), "%s/web", f->dir);
    assert_int_equal(mkdir(f->web, 0700), 0);
    fp = fopen(strcat(strcpy((char[128]){0}, f->web), "/index.html"), "w");
    assert_non_null(fp);
    fputs("<html>hello</html>", fp);
    fclose(fp);
    fx_gw_open(&f->gw, &f->cfg, f->dir, 2);
    opts.web_root = f->web;
    f->api = rest_api_new(&f->gw, &opts);
    assert_non_null(f->api);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    rest_api_free(&f->api);
    assert_null(f->api);
    fx_gw_close(&f->gw, &f->cfg);
    fx_rm_tree(f->dir);
    free(f);
    return 0;
}

static void run_until(struct fixture *f, struct result *r, int max_ms)
{
    for (int i = 0; i < max_ms && r->calls == 0; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        if (r->calls == 0) {
            usleep(1000);
        }
    }
}

/* When set, request() decodes JSON bodies with rest_api_preparse first, as the lws
 * thread does. */
static bool use_preparse;

/* Issue a request; headers as "name", "value" pairs ending with NULL. */
static void request(struct fixture *f, struct result *r, const char *method, const char *path,
                    const char *query, const char *body, ...)
{
    struct rest_hdr hdrs[8];
    struct rest_req req = {.method = method, .path = path, .query = query, .headers = hdrs};
    va_list ap;
    const char *name;

    result_clear(r);
    va_start(ap, body);
    while ((name = va_arg(ap, const char *)) != NULL && req.n_headers < 8) {
        hdrs[req.n_headers].name = (char *)name;
        hdrs[req.n_headers].value = va_arg(ap, char *);
        req.n_headers++;
    }
    va_end(ap);
    req.body = body != NULL ? sl_buf_new(body, strlen(body)) : NULL;
    req.parsed = use_preparse ? rest_api_preparse(&req) : NULL;
    rest_api_handle(f->api, &req, on_done, r);
    rest_parsed_free(&req.parsed);
    sl_buf_unref(&req.body);
    run_until(f, r, 2000);
    assert_int_equal(r->calls, 1);
}

static void assert_error(struct result *r, int status)
{
    if (r->status != status) {
        fail_msg("want %d, got %d: %s", status, r->status, r->body);
    }
    assert_string_equal(r->ctype, "application/json");
    assert_non_null(r->json);
    assert_int_equal(json_integer_value(json_object_get(r->json, "code")), status);
    assert_true(json_is_string(json_object_get(r->json, "error")));
}

static int64_t counter(const char *name, const char *labels)
{
    return sl_metric_value(sl_metric_counter(name, "", labels));
}

static void test_health_metrics_static(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};

    request(f, &r, "GET", "/healthz", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ok");
    request(f, &r, "GET", "/metrics", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4");
    assert_non_null(strstr(r.body, "sluice_http_requests_total{code=\"200\"}"));
    request(f, &r, "GET", "/", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/html; charset=utf-8");
    assert_string_equal(r.body, "<html>hello</html>");
    request(f, &r, "GET", "/../web/index.html", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "GET", "/.hidden", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "GET", "/missing.js", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "POST", "/healthz", NULL, NULL, NULL);
    assert_error(&r, 405);
    assert_string_equal(r.extra, "allow: GET, HEAD");
    request(f, &r, "PUT", "/whatever", NULL, NULL, NULL);
    assert_error(&r, 404);
    result_clear(&r);
}

static void test_publish_binary_and_read(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *ev;
    int64_t part;
    char path[64];

    request(f, &r, "POST", "/topics/orders", "key=k%201&subject=orders%2Feu", "payload",
            "content-type", "text/plain", "ce-id", "id-1", "ce-source", "%2Fdev%2F1", "ce-type",
            "com.example", "ce-myext", "v", "x-trace", "t1", NULL);
    if (r.status != 201) {
        fail_msg("publish: %d %s", r.status, r.body);
    }
    assert_string_equal(json_string_value(json_object_get(r.json, "topic")), "orders");
    assert_int_equal(json_integer_value(json_object_get(r.json, "offset")), 0);
    part = json_integer_value(json_object_get(r.json, "partition"));
    assert_true(part == 0 || part == 1);

    snprintf(path, sizeof(path), "/topics/orders/partitions/%d/records", (int)part);
    request(f, &r, "GET", path, "offset=0&max=10", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_array(r.json));
    assert_int_equal(json_array_size(r.json), 1);
    ev = json_array_get(r.json, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "id")), "id-1");
    assert_string_equal(json_string_value(json_object_get(ev, "source")), "/dev/1");
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "com.example");
    assert_string_equal(json_string_value(json_object_get(ev, "subject")), "orders/eu");
    assert_string_equal(json_string_value(json_object_get(ev, "myext")), "v");
    assert_string_equal(json_string_value(json_object_get(ev, "partitionkey")), "k 1");
    assert_string_equal(json_string_value(json_object_get(ev, "data")), "payload");
    assert_int_equal(json_integer_value(json_object_get(ev, "offset")), 0);
    assert_int_equal(json_integer_value(json_object_get(ev, "partition")), part);

    /* The same key lands on the same partition. */
    request(f, &r, "POST", "/topics/orders", "key=k%201", "second", NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_integer_value(json_object_get(r.json, "partition")), part);
    assert_int_equal(json_integer_value(json_object_get(r.json, "offset")), 1);

    /* At the end: [] at once without wait_ms; past it: 416. */
    request(f, &r, "GET", path, "offset=2", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    request(f, &r, "GET", path, "offset=100", NULL, NULL);
    assert_error(&r, 416);

    request(f, &r, "GET", "/topics", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    ev = json_array_get(json_object_get(r.json, "topics"), 0);
    assert_string_equal(json_string_value(json_object_get(ev, "name")), "orders");
    assert_int_equal(json_integer_value(json_object_get(ev, "partitions")), 2);

    request(f, &r, "GET", "/topics/orders", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    ev = json_array_get(json_object_get(r.json, "partitions"), (size_t)part);
    assert_int_equal(json_integer_value(json_object_get(ev, "high_watermark")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "config"),
                                                          "flush")),
                        "always");
    result_clear(&r);
}

static void test_publish_structured_and_batch(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    json_t *offs, *ev;

    request(f, &r, "POST", "/topics/evt", NULL,
            "{\"specversion\":\"1.0\",\"id\":\"s1\",\"partitionkey\":\"pk\",\"data\":{\"x\":1}}",
            "content-type", "application/cloudevents+json; charset=utf-8", NULL);
    if (r.status != 201) {
        fail_msg("structured: %d %s", r.status, r.body);
    }
    request(f, &r, "POST", "/topics/evt", "key=bk",
            "[{\"specversion\":\"1.0\",\"data\":\"a\",\"datacontenttype\":\"text/plain\"},"
            "{\"specversion\":\"1.0\",\"data\":2},{\"specversion\":\"1.0\",\"data_base64\":\"AP8=\"}]",
            "content-type", "application/cloudevents-batch+json", NULL);
    if (r.status != 201) {
        fail_msg("batch: %d %s", r.status, r.body);
    }
    assert_int_equal(json_integer_value(json_object_get(r.json, "count")), 3);
    offs = json_object_get(r.json, "offsets");
    assert_int_equal(json_array_size(offs), 3);
    /* one key: one partition, consecutive offsets */
    assert_int_equal(json_integer_value(json_object_get(json_array_get(offs, 1), "offset")),
                     json_integer_value(json_object_get(json_array_get(offs, 0), "offset")) + 1);
    {
        /* the answer is formatted directly: exactly what jansson's compact form was */
        char want[256];
        int p0 = (int)json_integer_value(json_object_get(json_array_get(offs, 0), "partition"));
        long long o0 = json_integer_value(json_object_get(json_array_get(offs, 0), "offset"));
        snprintf(want, sizeof(want),
                 "{\"topic\":\"evt\",\"count\":3,\"offsets\":[{\"partition\":%d,\"offset\":%lld},"
                 "{\"partition\":%d,\"offset\":%lld},{\"partition\":%d,\"offset\":%lld}]}",
                 p0, o0, p0, o0 + 1, p0, o0 + 2);
        assert_string_equal(r.body, want);
    }
    {
        char path[64];
        int p = (int)json_integer_value(json_object_get(json_array_get(offs, 0), "partition"));
        int64_t o = json_integer_value(json_object_get(json_array_get(offs, 0), "offset"));
        char q[64];
        snprintf(path, sizeof(path), "/topics/evt/partitions/%d/records", p);
        snprintf(q, sizeof(q), "offset=%lld", (long long)o);
        request(f, &r, "GET", path, q, NULL, NULL);
    }
    assert_int_equal(json_array_size(r.json), 3);
    ev = json_array_get(r.json, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "data")), "a");
    assert_string_equal(json_string_value(json_object_get(ev, "partitionkey")), "bk");
    ev = json_array_get(r.json, 1);
    assert_int_equal(json_integer_value(json_object_get(ev, "data")), 2);
    ev = json_array_get(r.json, 2);
    assert_string_equal(json_string_value(json_object_get(ev, "data_base64")), "AP8=");
    result_clear(&r);
}

/* A batch answer's offsets as the formatter writes them, across 1, 2 and 3 digits
 * (offsets 0..149 of a fresh topic, one key: one partition), exactly as snprintf.
 * (150 bare events: the fixture's body limit is 4 KiB.) */
static void test_publish_batch_answer_digits(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    size_t cap = 150 * 80 + 256, len = 0;
    char *body = malloc(cap), *want = malloc(cap);
    int p;

    len += (size_t)snprintf(body + len, cap - len, "[");
    for (int i = 0; i < 150; i++) {
        len += (size_t)snprintf(body + len, cap - len, "%s{\"specversion\":\"1.0\"}",
                                i > 0 ? "," : "");
    }
    snprintf(body + len, cap - len, "]");
    request(f, &r, "POST", "/topics/digits", "key=k", body, "content-type",
            "application/cloudevents-batch+json", NULL);
    if (r.status != 201) {
        fail_msg("batch: %d %s", r.status, r.body);
    }
    p = (int)json_integer_value(json_object_get(
        json_array_get(json_object_get(r.json, "offsets"), 0), "partition"));
    len = (size_t)snprintf(want, cap, "{\"topic\":\"digits\",\"count\":150,\"offsets\":[");
    for (int i = 0; i < 150; i++) {
        len += (size_t)snprintf(want + len, cap - len, "%s{\"partition\":%d,\"offset\":%d}",
                                i > 0 ? "," : "", p, i);
    }
    snprintf(want + len, cap - len, "]}");
    assert_string_equal(r.body, want);
    free(body);
    free(want);
    result_clear(&r);
}

/* The same with the JSON decoded ahead (on the transport thread in the daemon), plus
 * the decoder's errors coming through req->parsed. */
static void test_publish_preparsed(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct rest_req get = {.method = "GET", .path = "/topics/x"};

    assert_null(rest_api_preparse(&get));          /* nothing to decode */
    use_preparse = true;
    test_publish_structured_and_batch(state);
    request(f, &r, "POST", "/topics/evt", NULL, "[{\"specversion\":\"1.0\"", "content-type",
            "application/cloudevents-batch+json", NULL);
    assert_error(&r, 400);
    assert_non_null(strstr(r.body, "JSON"));
    request(f, &r, "POST", "/topics/evt", NULL, "{\"specversion\":\"0.3\"}", "content-type",
            "application/cloudevents+json", NULL);
    assert_error(&r, 400);
    use_preparse = false;
    result_clear(&r);
}

static double now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0;
}

static void test_long_poll(void **state)
{
    struct fixture *f = *state;
    struct result r = {0}, poll = {0};
    struct sl_topic_config tc;
    struct rest_req req = {.method = "GET", .path = "/topics/lp/partitions/0/records",
                           .query = "offset=0&wait_ms=1500"};
    double t0;

    sl_topic_config_defaults(&tc);
    tc.partitions = 1;
    assert_int_equal(sl_log_topic_configure(f->gw.log, "lp", &tc), 0);

    /* Timeout: [] after about wait_ms (capped at max_wait_ms = 2000). */
    t0 = now_ms();
    request(f, &r, "GET", "/topics/lp/partitions/0/records", "offset=0&wait_ms=60", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    assert_true(now_ms() - t0 >= 50);

    /* Woken by a later publish. */
    rest_api_handle(f->api, &req, on_done, &poll);
    for (int i = 0; i < 20; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(poll.calls, 0);
    t0 = now_ms();
    request(f, &r, "POST", "/topics/lp", NULL, "wake", NULL);
    assert_int_equal(r.status, 201);
    run_until(f, &poll, 1000);
    assert_int_equal(poll.calls, 1);
    assert_true(now_ms() - t0 < 1000);
    assert_int_equal(poll.status, 200);
    assert_int_equal(json_array_size(poll.json), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(poll.json, 0), "data")),
                        "wake");

    /* A wait still pending at shutdown is answered by rest_api_free. */
    result_clear(&poll);
    req.query = "offset=1&wait_ms=2000";
    rest_api_handle(f->api, &req, on_done, &poll);
    event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(poll.calls, 0);
    rest_api_free(&f->api);
    assert_int_equal(poll.calls, 1);
    assert_int_equal(json_array_size(poll.json), 0);
    result_clear(&poll);
    result_clear(&r);
}

static void test_group_read_commit(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_topic_config tc;

    sl_topic_config_defaults(&tc);
    tc.partitions = 1;
    assert_int_equal(sl_log_topic_configure(f->gw.log, "g", &tc), 0);
    for (int i = 0; i < 3; i++) {
        char body[16];
        snprintf(body, sizeof(body), "m%d", i);
        request(f, &r, "POST", "/topics/g", NULL, body, NULL);
        assert_int_equal(r.status, 201);
    }
    request(f, &r, "GET", "/topics/g/records", "group=app&max=2", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r.json, 1), "offset")), 1);
    /* no auto-commit: the same again */
    request(f, &r, "GET", "/topics/g/records", "group=app&max=2", NULL, NULL);
    assert_int_equal(json_array_size(r.json), 2);
    request(f, &r, "POST", "/topics/g/offsets", "group=app",
            "{\"offsets\":[{\"partition\":0,\"offset\":2}]}", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(sl_group_committed(f->gw.log, "app", "g", 0), 2);
    request(f, &r, "GET", "/topics/g/records", "group=app", NULL, NULL);
    assert_int_equal(json_array_size(r.json), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.json, 0), "data")),
                        "m2");
    /* caught up, with a short wait: [] */
    request(f, &r, "GET", "/topics/g/records", "group=app&wait_ms=20&max=5", NULL, NULL);
    request(f, &r, "POST", "/topics/g/offsets", "group=app",
            "{\"offsets\":[{\"partition\":0,\"offset\":3}]}", NULL);
    request(f, &r, "GET", "/topics/g/records", "group=app&wait_ms=20", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    result_clear(&r);
}

/* Reads write JSON payloads byte for byte and show the record headers; a read event
 * posted back unchanged is stored the same. */
static void test_read_raw_data_and_headers(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_topic_config tc;
    const char *data = "{\"id\":12345678901234567890123, \"x\":1e2,\"y\":0.1}";
    const char *hdrs = "\"headers\":[{\"name\":\"device\",\"value\":\"d-17\"},"
                       "{\"name\":\"unit\",\"value\":\"celsius\"},"
                       "{\"name\":\"device\",\"value\":\"again\"},"
                       "{\"name\":\"n\",\"value\":null},"
                       "{\"name\":\"b\",\"value_base64\":\"AP8=\"}]";
    char body[1200];
    char first[1024];
    char *at;
    json_t *arr;
    int64_t bad_events;

    sl_topic_config_defaults(&tc);
    tc.partitions = 1;
    assert_int_equal(sl_log_topic_configure(f->gw.log, "rh", &tc), 0);
    snprintf(body, sizeof(body), "{\"specversion\":\"1.0\",\"id\":\"h1\",\"source\":\"/s\","
             "\"type\":\"t\",%s,\"data\":%s}", hdrs, data);
    request(f, &r, "POST", "/topics/rh", NULL, body, "content-type",
            "application/cloudevents+json", NULL);
    if (r.status != 201) {
        fail_msg("structured: %d %s", r.status, r.body);
    }
    request(f, &r, "GET", "/topics/rh/partitions/0/records", "offset=0", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    /* jansson refuses integers beyond 64 bits unless read as reals: still one array. */
    arr = json_loads(r.body, JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 1);
    json_decref(arr);
    snprintf(body, sizeof(body), ",\"data\":%s}]", data);
    at = strstr(r.body, body);
    if (at == NULL || strlen(at) != strlen(body)) {
        fail_msg("data not verbatim and last: %s", r.body);
    }
    snprintf(body, sizeof(body), ",%s,", hdrs);
    if (strstr(r.body, body) == NULL) {
        fail_msg("headers missing: %s", r.body);
    }
    /* Posted back as it was read: the same event at the next offset. */
    assert_true(r.body[0] == '[' && strlen(r.body) < sizeof(first));
    snprintf(first, sizeof(first), "%.*s", (int)strlen(r.body) - 2, r.body + 1);
    request(f, &r, "POST", "/topics/rh", NULL, first, "content-type",
            "application/cloudevents+json", NULL);
    if (r.status != 201) {
        fail_msg("re-post: %d %s", r.status, r.body);
    }
    request(f, &r, "GET", "/topics/rh/partitions/0/records", "offset=1", NULL, NULL);
    at = strstr(first, "\"offset\":0,");
    assert_non_null(at);
    at[9] = '1';
    snprintf(body, sizeof(body), "[%s]", first);
    assert_string_equal(r.body, body);
    /* Group reads render the same way. */
    request(f, &r, "GET", "/topics/rh/records", "group=rg&max=5", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, hdrs));
    snprintf(body, sizeof(body), ",\"data\":%s},{", data);
    assert_non_null(strstr(r.body, body));
    /* A bad "headers" shape is a bad event. */
    bad_events = counter("sluice_http_invalid_requests_total", "reason=\"bad_event\"");
    request(f, &r, "POST", "/topics/rh", NULL,
            "{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":1}]}",
            "content-type", "application/cloudevents+json", NULL);
    assert_error(&r, 400);
    assert_non_null(strstr(r.body, "header 0"));
    assert_int_equal(counter("sluice_http_invalid_requests_total", "reason=\"bad_event\""),
                     bad_events + 1);
    request(f, &r, "POST", "/topics/rh", NULL,
            "[{\"specversion\":\"1.0\",\"headers\":{}}]",
            "content-type", "application/cloudevents-batch+json", NULL);
    assert_error(&r, 400);
    assert_non_null(strstr(r.body, "event 0: \\\"headers\\\" must be an array"));
    result_clear(&r);
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    char big[5000];
    int64_t bad_json = counter("sluice_http_invalid_requests_total", "reason=\"bad_json\"");

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    request(f, &r, "POST", "/topics/ok", NULL, "x", NULL);
    assert_int_equal(r.status, 201);

    request(f, &r, "POST", "/topics/bad%20name", NULL, "x", NULL);
    assert_error(&r, 400);
    request(f, &r, "GET", "/topics/nope", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "GET", "/topics/nope/partitions/0/records", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "GET", "/topics/ok/partitions/9/records", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "GET", "/topics/ok/partitions/x/records", NULL, NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "GET", "/topics/ok/partitions/0/records", "offset=-1", NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "GET", "/topics/ok/partitions/0/records", "offset=1x", NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "GET", "/topics/ok/partitions/0/records", "max=0", NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "GET", "/topics/ok/partitions/0/records", "wait_ms=soon", NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "GET", "/topics/ok/partitions/0/other", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "DELETE", "/topics/ok", NULL, NULL, NULL);
    assert_error(&r, 405);
    request(f, &r, "POST", "/topics/ok", NULL, "{bad", "content-type",
            "application/cloudevents+json", NULL);
    assert_error(&r, 400);
    assert_int_equal(counter("sluice_http_invalid_requests_total", "reason=\"bad_json\""),
                     bad_json + 1);
    request(f, &r, "POST", "/topics/ok", NULL, "{\"specversion\":\"2.0\"}", "content-type",
            "application/cloudevents+json", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", NULL, "{\"specversion\":\"1.0\"}", "content-type",
            "application/cloudevents-batch+json", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", NULL, "[]", "content-type",
            "application/cloudevents-batch+json", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", NULL, "x", "content-type",
            "application/cloudevents-bundle+json", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", NULL, "x", "ce-time", "not-a-time", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", NULL, "x", "ce-specversion", "0.3", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", NULL, "x", "ce-id", "bad%zz", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", "key=%zz", "x", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", "partition=one", "x", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok", "partition=99", "x", NULL);
    assert_error(&r, 404);
    request(f, &r, "POST", "/topics/ok", NULL, big, NULL);
    assert_error(&r, 413);
    request(f, &r, "GET", "/topics/ok/records", NULL, NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "GET", "/topics/ok/records", "group=bad%01group", NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok/offsets", "group=g", "{}", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok/offsets", "group=g",
            "{\"offsets\":[{\"partition\":0,\"offset\":-4}]}", NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/ok/offsets", "group=g",
            "{\"offsets\":[{\"partition\":7,\"offset\":1}]}", NULL);
    assert_error(&r, 404);
    request(f, &r, "POST", "/topics/nope/offsets", "group=g",
            "{\"offsets\":[{\"partition\":0,\"offset\":1}]}", NULL);
    assert_error(&r, 404);
    request(f, &r, "GET", "/topics/ok/offsets", "group=g", NULL, NULL);
    assert_error(&r, 405);
    request(f, &r, "GET", "/topics/a/b/c/d/e/f", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "GET", "relative", NULL, NULL, NULL);
    assert_error(&r, 400);
    assert_true(counter("sluice_http_requests_total", "code=\"400\"") >= 20);
    result_clear(&r);
}

/* HEAD is answered as GET wherever GET is allowed: same status, headers and body length
 * (the transport, rest.c, leaves the body out). */
static void test_head(void **state)
{
    struct fixture *f = *state;
    struct result r = {0}, g = {0};
    static const char *const paths[] = {
        "/healthz", "/", "/index.html", "/topics", "/topics/h", "/topics/h/partitions/0/records",
        NULL,
    };

    request(f, &r, "POST", "/topics/h", NULL, "x", NULL);
    assert_int_equal(r.status, 201);
    for (size_t i = 0; paths[i] != NULL; i++) {
        request(f, &g, "GET", paths[i], NULL, NULL, NULL);
        request(f, &r, "HEAD", paths[i], NULL, NULL, NULL);
        if (r.status != 200 || g.status != 200) {
            fail_msg("HEAD %s: %d, GET: %d", paths[i], r.status, g.status);
        }
        assert_string_equal(r.ctype, g.ctype);
        assert_string_equal(r.extra, g.extra);
        assert_int_equal(strlen(r.body), strlen(g.body));
    }
    /* The static file's real length, not 0. */
    request(f, &r, "HEAD", "/", NULL, NULL, NULL);
    assert_int_equal(strlen(r.body), strlen("<html>hello</html>"));
    assert_string_equal(r.extra, "cache-control: no-cache");
    request(f, &r, "HEAD", "/metrics", NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4");
    request(f, &r, "HEAD", "/topics/h/records", "group=app", NULL, NULL);
    assert_int_equal(r.status, 200);
    request(f, &r, "HEAD", "/missing.js", NULL, NULL, NULL);
    assert_error(&r, 404);
    request(f, &r, "HEAD", "/topics/h/offsets", "group=app", NULL, NULL);
    assert_error(&r, 405);
    assert_string_equal(r.extra, "allow: POST");
    request(f, &r, "DELETE", "/topics/h", NULL, NULL, NULL);
    assert_error(&r, 405);
    assert_string_equal(r.extra, "allow: GET, HEAD, POST");
    request(f, &r, "POST", "/topics", NULL, NULL, NULL);
    assert_error(&r, 405);
    assert_string_equal(r.extra, "allow: GET, HEAD");
    result_clear(&g);
    result_clear(&r);
}

/* A read from beyond the high watermark is refused with 416 at once, with or without
 * wait_ms (it used to wait, then hand back records from the high watermark on);
 * offset == high watermark still waits for the next record. */
static void test_offset_beyond_hw(void **state)
{
    struct fixture *f = *state;
    struct result r = {0}, poll = {0};
    struct sl_topic_config tc;
    struct rest_req req = {.method = "GET", .path = "/topics/hw/partitions/0/records",
                           .query = "offset=10&wait_ms=3000"};
    int64_t refused = counter("sluice_http_invalid_requests_total",
                              "reason=\"offset_out_of_range\"");
    double t0;

    sl_topic_config_defaults(&tc);
    tc.partitions = 1;
    assert_int_equal(sl_log_topic_configure(f->gw.log, "hw", &tc), 0);
    for (int i = 0; i < 3; i++) {
        request(f, &r, "POST", "/topics/hw", NULL, "old", NULL);
        assert_int_equal(r.status, 201);
    }

    /* The reviewer's case: offset 10, high watermark 3, a long poll, then a publish. */
    t0 = now_ms();
    rest_api_handle(f->api, &req, on_done, &poll);
    run_until(f, &poll, 1000);
    assert_int_equal(poll.calls, 1);
    assert_true(now_ms() - t0 < 1000);
    assert_error(&poll, 416);
    assert_string_equal(poll.body,
                        "{\"error\":\"offset 10 is beyond the high watermark 3\",\"code\":416}");
    request(f, &r, "POST", "/topics/hw", NULL, "new", NULL);
    assert_int_equal(r.status, 201);
    assert_int_equal(json_integer_value(json_object_get(r.json, "offset")), 3);
    for (int i = 0; i < 20; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_int_equal(poll.calls, 1);                 /* answered once, not again */
    assert_int_equal(counter("sluice_http_invalid_requests_total",
                             "reason=\"offset_out_of_range\""), refused + 1);

    /* Without wait_ms too; one past the high watermark (now 4). */
    request(f, &r, "GET", "/topics/hw/partitions/0/records", "offset=5", NULL, NULL);
    assert_error(&r, 416);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")),
                        "offset 5 is beyond the high watermark 4");

    /* offset == high watermark: waits, then gets exactly the next record. */
    result_clear(&poll);
    req.query = "offset=4&wait_ms=1500";
    rest_api_handle(f->api, &req, on_done, &poll);
    for (int i = 0; i < 20; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(poll.calls, 0);
    request(f, &r, "POST", "/topics/hw", NULL, "next", NULL);
    assert_int_equal(r.status, 201);
    run_until(f, &poll, 1000);
    assert_int_equal(poll.status, 200);
    assert_int_equal(json_array_size(poll.json), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(poll.json, 0), "offset")),
                     4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(poll.json, 0), "data")),
                        "next");
    assert_int_equal(counter("sluice_http_invalid_requests_total",
                             "reason=\"offset_out_of_range\""), refused + 2);
    result_clear(&poll);
    result_clear(&r);
}

/* Group names: 1..249 bytes of printable UTF-8; anything else is a 400 with JSON. */
static void test_group_names(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_topic_config tc;
    char q[1024], name[300];
    int64_t bad = counter("sluice_http_invalid_requests_total", "reason=\"bad_group\"");
    static const char *const bad_queries[] = {
        "group=", "group", "group=a%01b", "group=a%0Ab", "group=tab%09", "group=del%7F",
        "group=c1%C2%85", "group=bad%FFutf8", "group=overlong%C0%AF", "group=surrogate%ED%A0%80",
        "group=short%C3", NULL,
    };

    sl_topic_config_defaults(&tc);
    tc.partitions = 1;
    assert_int_equal(sl_log_topic_configure(f->gw.log, "gn", &tc), 0);
    request(f, &r, "POST", "/topics/gn", NULL, "m0", NULL);
    assert_int_equal(r.status, 201);

    for (size_t i = 0; bad_queries[i] != NULL; i++) {
        request(f, &r, "GET", "/topics/gn/records", bad_queries[i], NULL, NULL);
        assert_error(&r, 400);
        request(f, &r, "POST", "/topics/gn/offsets", bad_queries[i],
                "{\"offsets\":[{\"partition\":0,\"offset\":1}]}", NULL);
        assert_error(&r, 400);
    }
    assert_int_equal(counter("sluice_http_invalid_requests_total", "reason=\"bad_group\""),
                     bad + 22);

    /* 249 bytes: fine; 250: refused. */
    memset(name, 'g', 250);
    name[249] = '\0';
    snprintf(q, sizeof(q), "group=%s", name);
    request(f, &r, "GET", "/topics/gn/records", q, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 1);
    name[249] = 'g';
    name[250] = '\0';
    snprintf(q, sizeof(q), "group=%s", name);
    request(f, &r, "GET", "/topics/gn/records", q, NULL, NULL);
    assert_error(&r, 400);
    request(f, &r, "POST", "/topics/gn/offsets", q, "{\"offsets\":[{\"partition\":0,\"offset\":1}]}",
            NULL);
    assert_error(&r, 400);
    /* 249 bytes as 83 three-byte characters (U+20AC), all percent-encoded: 747 bytes of
     * query value. One more byte is too long; a cut character is not UTF-8. */
    strcpy(q, "group=");
    for (int i = 0; i < 83; i++) {
        strcat(q, "%E2%82%AC");
    }
    request(f, &r, "GET", "/topics/gn/records", q, NULL, NULL);
    if (r.status != 200) {
        fail_msg("83 x U+20AC: %d %s", r.status, r.body);
    }
    strcat(q, "x");
    request(f, &r, "GET", "/topics/gn/records", q, NULL, NULL);
    assert_error(&r, 400);
    q[strlen(q) - 4] = '\0';                   /* 82 characters and "%E2%82" */
    request(f, &r, "GET", "/topics/gn/records", q, NULL, NULL);
    assert_error(&r, 400);

    /* Printable but not a topic name: spaces, '/', '$', non-ASCII; commit and read. */
    request(f, &r, "POST", "/topics/gn/offsets", "group=%24share%2Fmy+group%2F%C3%A9t%C3%A9",
            "{\"offsets\":[{\"partition\":0,\"offset\":1}]}", NULL);
    if (r.status != 200) {
        fail_msg("commit: %d %s", r.status, r.body);
    }
    assert_string_equal(json_string_value(json_object_get(r.json, "group")),
                        "$share/my group/\xc3\xa9t\xc3\xa9");
    assert_int_equal(sl_group_committed(f->gw.log, "$share/my group/\xc3\xa9t\xc3\xa9", "gn", 0),
                     1);
    request(f, &r, "GET", "/topics/gn/records", "group=%24share%2Fmy+group%2F%C3%A9t%C3%A9",
            NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    result_clear(&r);
}

/* rest_api_drain (graceful stop): parked reads answer at once, later reads do not
 * wait, and a publish in flight still completes with 201. */
static void test_drain(void **state)
{
    struct fixture *f = *state;
    struct result r = {0}, poll = {0}, pub = {0};
    struct sl_topic_config tc;
    struct rest_req rd = {.method = "GET", .path = "/topics/dr/partitions/0/records",
                          .query = "offset=0&wait_ms=2000"};
    struct rest_req pr = {.method = "POST", .path = "/topics/dr"};
    double t0;

    sl_topic_config_defaults(&tc);
    tc.partitions = 1;
    assert_int_equal(sl_log_topic_configure(f->gw.log, "dr", &tc), 0);
    rest_api_handle(f->api, &rd, on_done, &poll);
    event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(poll.calls, 0);
    pr.body = sl_buf_new("kept", 4);
    rest_api_handle(f->api, &pr, on_done, &pub);   /* flush always: answered after fsync */
    sl_buf_unref(&pr.body);

    t0 = now_ms();
    rest_api_drain(f->api);
    assert_int_equal(poll.calls, 1);
    assert_int_equal(poll.status, 200);
    run_until(f, &pub, 2000);
    assert_int_equal(pub.calls, 1);
    assert_int_equal(pub.status, 201);
    assert_int_equal(json_integer_value(json_object_get(pub.json, "offset")), 0);

    /* Reads no longer park. */
    request(f, &r, "GET", "/topics/dr/partitions/0/records", "offset=1&wait_ms=2000", NULL,
            NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 0);
    assert_true(now_ms() - t0 < 1000);
    request(f, &r, "GET", "/topics/dr/partitions/0/records", "offset=0", NULL, NULL);
    assert_int_equal(json_array_size(r.json), 1);
    result_clear(&poll);
    result_clear(&pub);
    result_clear(&r);
}

static void test_pct_decode(void **state)
{
    char out[32];

    (void)state;
    assert_int_equal(rest_pct_decode("a%2Fb+c", 7, out, 1), 5);
    assert_string_equal(out, "a/b c");
    assert_int_equal(rest_pct_decode("a+b", 3, out, 0), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(rest_pct_decode("%4", 2, out, 0), -1);
    assert_int_equal(rest_pct_decode("%00", 3, out, 0), -1);
    assert_int_equal(rest_pct_decode("%g1", 3, out, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_metrics_static, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_binary_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_structured_and_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_batch_answer_digits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_preparsed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_read_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_raw_data_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_beyond_hw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test(test_pct_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * libFuzzer harness for the HTTP request handling (adapters/rest/rest_api.c) on a real
 * log in a temp dir and a real event_base. Input:
 *   METHOD SP PATH[?QUERY] LF
 *   (name: value LF)*        header names lower-cased here, as the transport does
 *   LF
 *   body...
 * Oracle: exactly one answer, soon (long-poll waits are capped at a few ms), with a
 * status in 200..599 and, for 4xx/5xx, a JSON body holding "error" and "code".
 */
#include <ctype.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <ftw.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters/rest/rest_api.h"
#include "gateway/gateway.h"
#include "gateway/log/log.h"
#include "routing/route.h"

#define MAX_HDRS 16

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static struct sl_gateway gw;
static struct sl_config *cfg;
static struct rest_api *api;

struct answer {
    int calls;
    int status;
};

static void on_done(void *arg, struct rest_resp *resp)
{
    struct answer *a = arg;

    a->calls++;
    a->status = resp->status;
    if (resp->status < 200 || resp->status > 599 || resp->content_type == NULL) {
        abort();
    }
    if (resp->status >= 400) {
        json_t *j = json_loadb(resp->body, resp->body_len, 0, NULL);
        if (j == NULL || !json_is_string(json_object_get(j, "error")) ||
            json_integer_value(json_object_get(j, "code")) != resp->status) {
            abort();
        }
        json_decref(j);
    }
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    rest_api_free(&api);
    sl_log_close(&gw.log);
    rt_table_free(&gw.routes);
    sl_config_free(&cfg);
    event_base_free(gw.base);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sl_log_options lo;
    char web[96];
    char *err = NULL;
    FILE *f;
    struct rest_api_opts opts = {.listener = "http", .max_body = 65536, .max_wait_ms = 3};

    (void)argc;
    (void)argv;
    strcpy(dir, "/tmp/sl_fuzz_http_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    snprintf(web, sizeof(web), "%s/web", dir);
    mkdir(web, 0700);
    snprintf(web, sizeof(web), "%s/web/index.html", dir);
    f = fopen(web, "w");
    if (f != NULL) {
        fputs("<html></html>", f);
        fclose(f);
    }
    snprintf(web, sizeof(web), "%s/web", dir);
    opts.web_root = web;
    evthread_use_pthreads();
    gw.base = event_base_new();
    cfg = sl_config_defaults();
    if (gw.base == NULL || cfg == NULL) {
        abort();
    }
    free(cfg->data_dir);
    cfg->data_dir = strdup(dir);
    cfg->topic_defaults.partitions = 2;
    cfg->topic_defaults.flush = SL_FLUSH_OS;          /* no fsync per input */
    cfg->topic_defaults.segment_bytes = 256 * 1024;
    cfg->topic_defaults.retention_bytes = 1024 * 1024;
    gw.cfg = cfg;
    sl_gateway_log_options(cfg, &lo);
    gw.log = sl_log_open(gw.base, &lo, &err);
    gw.routes = rt_table_new();
    api = rest_api_new(&gw, &opts);
    if (gw.log == NULL || gw.routes == NULL || api == NULL) {
        abort();
    }
    atexit(cleanup);
    return 0;
}

/* Next line of [*p, end) as a NUL-terminated copy (CR stripped), or NULL at the end. */
static char *next_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl;
    size_t n;
    char *s;

    if (*p >= end) {
        return NULL;
    }
    nl = memchr(*p, '\n', (size_t)(end - *p));
    n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
    s = malloc(n + 1);
    if (s == NULL) {
        abort();
    }
    memcpy(s, *p, n);
    s[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0') {
            s[i] = ' ';          /* the transport never hands over NUL bytes */
        }
    }
    if (n > 0 && s[n - 1] == '\r') {
        s[n - 1] = '\0';
    }
    *p = nl != NULL ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    struct rest_hdr hdrs[MAX_HDRS];
    struct rest_req req = {.headers = hdrs};
    struct answer ans = {0};
    char *first = next_line(&p, end);
    char *sp, *q, *line;

    if (first == NULL) {
        return 0;
    }
    sp = strchr(first, ' ');
    if (sp == NULL) {
        free(first);
        return 0;
    }
    *sp = '\0';
    req.method = first;
    req.path = sp + 1;
    q = strchr(sp + 1, '?');
    if (q != NULL) {
        *q = '\0';
        req.query = q + 1;
    }
    while ((line = next_line(&p, end)) != NULL) {
        char *colon = strchr(line, ':');
        if (line[0] == '\0' || colon == NULL || req.n_headers == MAX_HDRS) {
            free(line);
            break;
        }
        *colon = '\0';
        for (char *c = line; *c != '\0'; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        colon++;
        while (*colon == ' ') {
            colon++;
        }
        hdrs[req.n_headers].name = line;
        hdrs[req.n_headers].value = strdup(colon);
        req.n_headers++;
    }
    if (p < end) {
        req.body = sl_buf_new(p, (size_t)(end - p));
    }
    rest_api_handle(api, &req, on_done, &ans);
    for (int i = 0; i < 5000 && ans.calls == 0; i++) {
        event_base_loop(gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        if (ans.calls == 0) {
            usleep(100);
        }
    }
    if (ans.calls != 1) {
        abort();                 /* no answer: a stalled request */
    }
    sl_buf_unref(&req.body);
    for (size_t i = 0; i < req.n_headers; i++) {
        free(hdrs[i].name);
        free(hdrs[i].value);
    }
    free(first);
    return 0;
}

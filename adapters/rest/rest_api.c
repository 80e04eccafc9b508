#include "adapters/rest/rest_api.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "adapters/rest/rest_internal.h"
#include "gateway/ce_json.h"
#include "gateway/gateway.h"
#include "gateway/log/log.h"
#include "gateway/metrics.h"
#include "gateway/strutil.h"

#define REST_DEFAULT_MAX_BODY (1024u * 1024u)
#define REST_DEFAULT_MAX_WAIT 30000
#define REST_BATCH_MAX 10000
#define REST_STATIC_MAX (16u * 1024u * 1024u)

#define CT_PROM "text/plain; version=0.0.4"

/* ---------- responses ---------- */

void rest_resp_clear(struct rest_resp *resp)
{
    if (resp != NULL) {
        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
    }
}

/* Per-code counters, created on first use and then updated without a lookup (the
 * registry's sl_metric_incr takes a lock and scans: too slow per request). The cache
 * assumes no sl_metrics_reset while the process serves requests. */
static _Atomic(struct sl_metric *) code_counters[600];

void rest_api_count_response(int status)
{
    struct sl_metric *m;
    char labels[32];

    if (status < 100 || status > 599) {
        status = 500;
    }
    m = atomic_load_explicit(&code_counters[status], memory_order_acquire);
    if (m == NULL) {
        snprintf(labels, sizeof(labels), "code=\"%d\"", status);
        m = sl_metric_counter("sluice_http_requests_total",
                              "HTTP requests answered, by status code", labels);
        atomic_store_explicit(&code_counters[status], m, memory_order_release);
    }
    sl_metric_add(m, 1);
}

void rest_api_error(struct rest_resp *resp, int status, const char *reason, const char *msg)
{
    json_t *obj = json_pack("{s:s, s:i}", "error", msg != NULL ? msg : reason, "code", status);

    memset(resp, 0, sizeof(*resp));
    resp->status = status;
    resp->content_type = CT_JSON;
    if (obj != NULL) {
        resp->body = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
    }
    if (resp->body == NULL) {
        /* msg was not UTF-8 or memory is short: a fixed text still says what happened. */
        char text[64];
        snprintf(text, sizeof(text), "{\"error\":\"request failed\",\"code\":%d}", status);
        resp->body = strdup(text);
    }
    resp->body_len = resp->body != NULL ? strlen(resp->body) : 0;
    if (status >= 400 && status < 500) {
        rest_api_count_invalid(reason);
    }
}

void rest_api_count_invalid(const char *reason)
{
    char labels[64];

    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    sl_metric_incr("sluice_http_invalid_requests_total",
                   "HTTP requests refused as invalid, by reason", labels);
}

/* Deliver a response: count it, call done, free what done left. */
void rest_finish(rest_done_fn done, void *arg, struct rest_resp *resp)
{
    rest_api_count_response(resp->status);
    done(arg, resp);
    rest_resp_clear(resp);
}

void rest_reply_error(rest_done_fn done, void *arg, int status, const char *reason,
                      const char *msg)
{
    struct rest_resp resp;

    rest_api_error(&resp, status, reason, msg);
    rest_finish(done, arg, &resp);
}

/* Takes the reference to obj. */
void rest_reply_json(rest_done_fn done, void *arg, int status, json_t *obj)
{
    struct rest_resp resp;

    memset(&resp, 0, sizeof(resp));
    if (obj != NULL) {
        resp.body = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(obj);
    }
    if (resp.body == NULL) {
        rest_reply_error(done, arg, 503, "no_memory", "out of memory");
        return;
    }
    resp.status = status;
    resp.content_type = CT_JSON;
    resp.body_len = strlen(resp.body);
    rest_finish(done, arg, &resp);
}

/*
 * The one mapping from internal errors (-errno) to HTTP status and reason
 * (STYLE.md: exactly one place per protocol).
 */
static int status_for_errno(int err, const char **reason)
{
    switch (err) {
    case -EINVAL:
        *reason = "invalid";
        return 400;
    case -ENOENT:
        *reason = "unknown_topic";
        return 404;
    case -E2BIG:
    case -EMSGSIZE:
        *reason = "too_large";
        return 413;
    case -ENOMEM:
    case -EAGAIN:
    case -ESHUTDOWN:
        *reason = "unavailable";
        return 503;
    case -ENOSPC:
        *reason = "no_space";
        return 507;
    default:
        *reason = "internal";
        return 500;
    }
}

void rest_reply_errno(rest_done_fn done, void *arg, int err, const char *msg)
{
    const char *reason;
    int status = status_for_errno(err, &reason);
    char text[REST_ERR_LEN];

    snprintf(text, sizeof(text), "%s: %s", msg, strerror(-err));
    rest_reply_error(done, arg, status, reason, text);
}

/* ---------- small parsers ---------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

long rest_pct_decode(const char *src, size_t len, char *dst, int plus)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len) {
                return -1;
            }
            hi = hexval((unsigned char)src[i + 1]);
            lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return -1;
            }
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus) {
            dst[o++] = ' ';
        } else if (c == '\0') {
            return -1;
        } else {
            dst[o++] = c;
        }
    }
    dst[o] = '\0';
    return (long)o;
}

/* Find name in the raw query. 1: found (decoded into out), 0: absent, -1: bad. */
int rest_query_get(const char *query, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    const char *p = query;

    while (p != NULL && *p != '\0') {
        const char *amp = strchrnul(p, '&');
        size_t seg = (size_t)(amp - p);
        /* seg >= nlen bytes are there to compare; name holds no NUL before nlen */
        if (seg > nlen && p[nlen] == '=' && memcmp(p, name, nlen) == 0) {
            size_t vlen = seg - nlen - 1;
            if (vlen + 1 > outsz) {
                return -1;
            }
            return rest_pct_decode(p + nlen + 1, vlen, out, 1) < 0 ? -1 : 1;
        }
        if (seg == nlen && memcmp(p, name, nlen) == 0) {
            out[0] = '\0';
            return 1;
        }
        p = *amp != '\0' ? amp + 1 : NULL;
    }
    return 0;
}

bool rest_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (*s == '\0' || isspace((unsigned char)*s) || *s == '+') {
        return false;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* A numeric query parameter. 1 found, 0 absent (out = dflt), -1 bad. */
int rest_query_num(const char *query, const char *name, int64_t min, int64_t max,
                   int64_t dflt, int64_t *out)
{
    char buf[32];
    int rc = rest_query_get(query, name, buf, sizeof(buf));

    *out = dflt;
    if (rc <= 0) {
        return rc;
    }
    return rest_parse_i64(buf, min, max, out) ? 1 : -1;
}

static const char *find_header(const struct rest_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, name) == 0) {
            return req->headers[i].value;
        }
    }
    return NULL;
}

/* Lower-cased media type without parameters into out. */
static void media_type(const char *ct, char *out, size_t outsz)
{
    size_t n = 0;

    out[0] = '\0';
    if (ct == NULL) {
        return;
    }
    while (*ct == ' ') {
        ct++;
    }
    while (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ' && n + 1 < outsz) {
        out[n] = (char)tolower((unsigned char)ct[n]);
        n++;
    }
    out[n] = '\0';
}

/* ---------- pre-decoding (any thread) ---------- */

struct rest_parsed {
    int rc;                        /* 0, or the decoder's -errno */
    const char *reason;            /* metric reason when rc != 0 */
    char err[REST_ERR_LEN];
    struct sl_env **envs;
    size_t n;
};

struct rest_parsed *rest_api_preparse(const struct rest_req *req)
{
    struct rest_parsed *p;
    char mt[64];
    bool batch;

    if (req->method == NULL || req->path == NULL || strcmp(req->method, "POST") != 0 ||
        strncmp(req->path, "/topics/", 8) != 0 ||
        req->body == NULL) {
        return NULL;
    }
    media_type(find_header(req, "content-type"), mt, sizeof(mt));
    batch = strcmp(mt, "application/cloudevents-batch+json") == 0;
    if (!batch && strcmp(mt, "application/cloudevents+json") != 0) {
        return NULL;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;                /* the handler decodes it itself */
    }
    if (batch) {
        p->rc = ce_json_parse_batch((const char *)req->body->data, req->body->len,
                                    REST_BATCH_MAX, &p->envs, &p->n, p->err, sizeof(p->err));
    } else {
        p->envs = calloc(1, sizeof(*p->envs));
        if (p->envs == NULL) {
            free(p);
            return NULL;
        }
        p->envs[0] = ce_json_parse_event((const char *)req->body->data, req->body->len,
                                         p->err, sizeof(p->err));
        p->n = p->envs[0] != NULL ? 1 : 0;
        p->rc = p->envs[0] != NULL ? 0 : -EINVAL;
    }
    p->reason = strncmp(p->err, "bad JSON", 8) == 0 ? "bad_json" : "bad_event";
    return p;
}

void rest_parsed_free(struct rest_parsed **pp)
{
    struct rest_parsed *p = pp != NULL ? *pp : NULL;
    if (p == NULL) {
        return;
    }
    ce_json_free_batch(&p->envs, p->n);
    free(p);
    *pp = NULL;
}

/* Take the pre-decoded envelopes, or the decoder's error. 1 if req had them. */
static int take_parsed(const struct rest_req *req, struct sl_env ***envs, size_t *n, int *rc,
                       char *err, size_t errsz, const char **reason)
{
    struct rest_parsed *p = req->parsed;
    if (p == NULL) {
        return 0;
    }
    *rc = p->rc;
    if (p->rc != 0) {
        snprintf(err, errsz, "%s", p->err);
        *reason = p->reason;
        return 1;
    }
    *envs = p->envs;
    *n = p->n;
    p->envs = NULL;
    p->n = 0;
    return 1;
}

/* ---------- pending list ---------- */

struct pending *rest_pending_new(struct rest_api *api, enum pending_kind kind,
                                 const char *topic, rest_done_fn done, void *arg)
{
    struct pending *p = api->spare;

    if (p != NULL) {
        api->spare = p->next;
        api->n_spare--;
        memset(p, 0, sizeof(*p));
    } else {
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            return NULL;
        }
    }
    p->api = api;
    p->kind = kind;
    p->done = done;
    p->arg = arg;
    sl_strlcpy(p->topic, topic, sizeof(p->topic));
    p->next = api->pending;
    if (api->pending != NULL) {
        api->pending->prev = p;
    }
    api->pending = p;
    return p;
}

void rest_pending_unlink(struct pending *p)
{
    if (p->api == NULL) {
        return;
    }
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        p->api->pending = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    p->prev = p->next = NULL;
}

void rest_pending_free(struct pending *p)
{
    for (size_t i = 0; i < p->n_curs; i++) {
        sl_cursor_close(&p->curs[i]);
    }
    free(p->curs);
    if (p->timer != NULL) {
        event_free(p->timer);
    }
    ce_json_buf_free(&p->out);
    if (p->api != NULL && p->api->n_spare + 1 <= REST_SPARE_PENDING) {   /* may be 0 */
        p->next = p->api->spare;           /* kept for the next request */
        p->api->spare = p;
        p->api->n_spare++;
        return;
    }
    free(p);
}

/* ---------- publish ---------- */

static bool is_transport_header(const char *name)
{
    static const char *const skip[] = {
        "host", "content-length", "content-type", "connection", "keep-alive",
        "transfer-encoding", "te", "trailer", "upgrade", "expect", "accept",
        "accept-encoding", "accept-language", "user-agent", "authorization", "cookie",
        "proxy-authorization", "origin", "referer", "cache-control", "pragma", NULL,
    };

    for (size_t i = 0; skip[i] != NULL; i++) {
        if (strcmp(skip[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Binary content mode: ce-* headers, Content-Type, body = data. 0 or 400 with err set. */
static int binary_event(const struct rest_req *req, struct sl_env *env, char *err,
                        size_t errsz, const char **reason)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct rest_hdr *h = &req->headers[i];
        size_t vlen = strlen(h->value);
        int rc;

        if (strncmp(h->name, "ce-", 3) == 0) {
            char *dec = malloc(vlen + 1);
            long n = dec != NULL ? rest_pct_decode(h->value, vlen, dec, 0) : -2;
            if (n == -2) {
                return -ENOMEM;
            }
            if (n < 0) {
                free(dec);
                snprintf(err, errsz, "bad percent-encoding in header %.40s", h->name);
                *reason = "bad_percent_encoding";
                return -EINVAL;
            }
            rc = sl_env_set_attr(env, h->name + 3, dec, (size_t)n);
            free(dec);
            if (rc == -EINVAL) {
                snprintf(err, errsz, "bad CloudEvents header %.40s", h->name);
                *reason = "bad_ce_header";
            }
        } else if (strcmp(h->name, "content-type") == 0) {
            rc = sl_env_set_attr_at(env, SL_ATTR_DATACONTENTTYPE, h->value, vlen, true);
            if (rc == -EINVAL) {
                snprintf(err, errsz, "bad content-type");
                *reason = "bad_content_type";
            }
        } else if (is_transport_header(h->name)) {
            rc = 0;
        } else {
            rc = sl_env_add_header(env, h->name, h->value, (int32_t)vlen);
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (req->body != NULL) {
        sl_env_set_data_buf(env, req->body);
    }
    return 0;
}

/* Subject, key and origin common to every mode. 0 or -errno. */
static int complete_event(struct rest_api *api, struct sl_env *env, const char *topic,
                          const char *subject, const char *key, const char *dest)
{
    int rc;

    /* C strings: no NUL inside, so the attribute is set by index without a search */
    if (subject != NULL) {
        rc = sl_env_set_attr_at(env, SL_ATTR_SUBJECT, subject, strlen(subject), true);
    } else if (env->subject == NULL) {
        rc = sl_env_set_attr_at(env, SL_ATTR_SUBJECT, topic, strlen(topic), true);
    } else {
        rc = 0;
    }
    if (rc == 0 && key != NULL) {
        rc = sl_env_set_key(env, key, strlen(key));
    } else if (rc == 0 && env->key == NULL) {
        const char *pk = sl_env_get_attr(env, "partitionkey");
        if (pk != NULL) {
            rc = sl_env_set_key(env, pk, strlen(pk));
        }
    }
    if (rc == 0) {
        rc = sl_env_set_origin(env, "http", api->listener, dest);
    }
    return rc;
}

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Append {"partition":P,"offset":O} (after a comma if comma) into out[0..cap); returns
 * the length written, or cap when it did not fit. */
static size_t fmt_offset(char *out, size_t cap, bool comma, int32_t partition, int64_t offset)
{
    char tmp[64];
    char *o = tmp + sizeof(tmp);
    uint64_t v = offset < 0 ? (uint64_t)0 - (uint64_t)offset : (uint64_t)offset;
    uint32_t pv = partition < 0 ? (uint32_t)0 - (uint32_t)partition : (uint32_t)partition;
    size_t n;

    *--o = '}';
    while (v >= 100) {              /* two digits per division: offsets run long */
        o -= 2;
        memcpy(o, digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        o -= 2;
        memcpy(o, digit_pairs + 2 * v, 2);
    } else {
        *--o = (char)('0' + v);
    }
    if (offset < 0) {
        *--o = '-';
    }
    o -= 9;
    memcpy(o, "\"offset\":", 9);
    *--o = ',';
    do {
        *--o = (char)('0' + pv % 10);
        pv /= 10;
    } while (pv != 0);
    if (partition < 0) {
        *--o = '-';
    }
    o -= 13;
    memcpy(o, "{\"partition\":", 13);
    if (comma) {
        *--o = ',';
    }
    n = (size_t)(tmp + sizeof(tmp) - o);
    if (n >= cap) {
        return cap;
    }
    memcpy(out, o, n);
    return n;
}

/* Is topic a valid topic name (so it needs no JSON escaping)? The path's topic, p->topic,
 * was checked by handle_topics: the usual answer's topic is that one. */
static bool topic_name_valid(const struct pending *p, const char *topic)
{
    return strcmp(topic, p->topic) == 0 || sl_log_topic_name_valid(topic);
}

static void publish_done(void *arg, const struct sl_publish_result *res)
{
    struct pending *p = arg;
    json_t *obj;

    if (p->api == NULL) {
        rest_pending_free(p);  /* orphaned: already answered 503 at shutdown */
        return;
    }
    rest_pending_unlink(p);
    if (res->status != 0) {
        rest_reply_errno(p->done, p->arg, res->status,
                         res->error != NULL ? res->error : "publish");
        rest_pending_free(p);
        return;
    }
    if (!p->batch && res->n >= 1 && topic_name_valid(p, res->items[0].topic)) {
        /* The hot path: a valid topic name needs no JSON escaping, so format directly. */
        struct rest_resp resp = {.status = 201, .content_type = CT_JSON};
        size_t tlen = strlen(res->items[0].topic);
        char *body = malloc(tlen + 80), *o = body;
        if (body == NULL) {
            rest_reply_errno(p->done, p->arg, -ENOMEM, "publish");
        } else {
            memcpy(o, "{\"topic\":\"", 10);
            memcpy(o + 10, res->items[0].topic, tlen);
            o += 10 + tlen;
            memcpy(o, "\",\"partition\":", 14);
            o = sl_put_i64(o + 14, res->items[0].partition);
            memcpy(o, ",\"offset\":", 10);
            o = sl_put_i64(o + 10, res->items[0].offset);
            *o++ = '}';
            *o = '\0';
            resp.body = body;
            resp.body_len = (size_t)(o - body);
            rest_finish(p->done, p->arg, &resp);
        }
        rest_pending_free(p);
        return;
    }
    if (p->batch && res->n >= 1 && topic_name_valid(p, res->items[0].topic)) {
        /* Batch answer, formatted directly (as jansson's JSON_COMPACT would print it):
         * building it as jansson objects cost several allocations per event. */
        size_t cap = 96 + strlen(res->items[0].topic) + res->n * 64;
        char *body = malloc(cap);
        size_t len = 0;
        if (body != NULL) {
            len = (size_t)snprintf(body, cap, "{\"topic\":\"%s\",\"count\":%zu,\"offsets\":[",
                                   res->items[0].topic, res->n);
            for (size_t i = 0; i < res->n && len < cap; i++) {
                len += fmt_offset(body + len, cap - len, i > 0, res->items[i].partition,
                                  res->items[i].offset);
            }
            if (len + 3 <= cap) {
                memcpy(body + len, "]}", 3);
                len += 2;
            } else {
                free(body);
                body = NULL;
            }
        }
        if (body == NULL) {
            rest_reply_errno(p->done, p->arg, -ENOMEM, "publish");
        } else {
            struct rest_resp resp = {.status = 201, .content_type = CT_JSON, .body = body,
                                     .body_len = len};
            rest_finish(p->done, p->arg, &resp);
        }
        rest_pending_free(p);
        return;
    }
    {
        json_t *offs = json_array();
        for (size_t i = 0; offs != NULL && i < res->n; i++) {
            json_array_append_new(offs, json_pack("{s:i, s:I}", "partition",
                                                  (int)res->items[i].partition, "offset",
                                                  (json_int_t)res->items[i].offset));
        }
        obj = json_pack("{s:s, s:I, s:o}", "topic", res->n > 0 ? res->items[0].topic : p->topic,
                        "count", (json_int_t)res->n, "offsets", offs);
    }
    rest_reply_json(p->done, p->arg, 201, obj);
    rest_pending_free(p);
}

/* Drop the references in envs[0..n) and free the array unless it is the caller's
 * single-event array one. */
static void free_envs(struct sl_env **envs, size_t n, struct sl_env **one)
{
    if (envs == one) {
        for (size_t i = 0; i < n; i++) {
            sl_env_unref(&envs[i]);
        }
    } else {
        ce_json_free_batch(&envs, n);
    }
}

static void handle_publish(struct rest_api *api, const struct rest_req *req, const char *topic,
                           rest_done_fn done, void *arg)
{
    char err[REST_ERR_LEN] = "";
    char mt[64];
    char *subject = NULL;
    char *key = NULL;
    char qbuf[2][256];             /* subject and key of a short query */
    char *qmem = NULL;             /* both of a longer one */
    char dest[300];
    const char *reason = "bad_event";
    struct sl_env *one[1] = {NULL};   /* a single event's array: no allocation */
    struct sl_env **envs = NULL;
    size_t n = 0;
    bool batch = false;
    bool ce;
    /* publish.c keeps the listener pointer in a cache: it must be a static string. */
    struct sl_pub_source src = {.listener = "http", .topic = topic};
    struct pending *p;
    size_t qlen = req->query != NULL ? strlen(req->query) + 1 : 1;
    int rc;

    if (req->body != NULL && req->body->len > api->max_body) {
        rest_reply_error(done, arg, 413, "body_too_big", "request body too large");
        return;
    }
    if (qlen <= sizeof(qbuf[0])) {
        subject = qbuf[0];
        key = qbuf[1];
    } else {
        qmem = malloc(2 * qlen);
        if (qmem == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        subject = qmem;
        key = qmem + qlen;
    }
    rc = rest_query_get(req->query, "subject", subject, qlen);
    if (rc >= 0) {
        int krc = rest_query_get(req->query, "key", key, qlen);
        if (rc == 0) {
            subject = NULL;
        }
        if (krc == 0) {
            key = NULL;
        }
        rc = krc < 0 ? -1 : 0;
    }
    if (rc < 0) {
        reason = "bad_percent_encoding";
        snprintf(err, sizeof(err), "bad percent-encoding in the query");
        rc = -EINVAL;
        goto fail;
    }
    {
        int64_t part;
        int prc = rest_query_num(req->query, "partition", 0, INT32_MAX, -1, &part);
        if (prc < 0) {
            reason = "bad_param";
            snprintf(err, sizeof(err), "bad partition");
            rc = -EINVAL;
            goto fail;
        }
        src.has_partition = prc == 1;
        src.partition = (int32_t)part;
    }
    memcpy(dest, "/topics/", 8);
    sl_strlcpy(dest + 8, topic, sizeof(dest) - 8);

    media_type(find_header(req, "content-type"), mt, sizeof(mt));
    ce = strncmp(mt, "application/cloudevents", 23) == 0;
    if (ce && strcmp(mt + 23, "-batch+json") == 0) {
        batch = true;
        if (req->body == NULL) {
            snprintf(err, sizeof(err), "a batch needs a body");
            reason = "bad_json";
            rc = -EINVAL;
            goto fail;
        }
        if (!take_parsed(req, &envs, &n, &rc, err, sizeof(err), &reason)) {
            rc = ce_json_parse_batch((const char *)req->body->data, req->body->len,
                                     REST_BATCH_MAX, &envs, &n, err, sizeof(err));
            reason = strncmp(err, "bad JSON", 8) == 0 ? "bad_json" : "bad_event";
        }
        if (rc != 0) {
            goto fail;
        }
    } else if (ce && strcmp(mt + 23, "+json") == 0 &&
               take_parsed(req, &envs, &n, &rc, err, sizeof(err), &reason)) {
        if (rc != 0) {
            goto fail;
        }
    } else if (ce && strcmp(mt + 23, "+json") == 0) {
        envs = one;
        envs[0] = ce_json_parse_event(req->body != NULL ? (const char *)req->body->data : "",
                                      req->body != NULL ? req->body->len : 0, err, sizeof(err));
        if (envs[0] == NULL) {
            reason = strncmp(err, "bad JSON", 8) == 0 ? "bad_json" : "bad_event";
            rc = -EINVAL;
            goto fail;
        }
        n = 1;
    } else if (ce) {
        snprintf(err, sizeof(err), "unsupported CloudEvents format %.60s", mt);
        reason = "bad_content_type";
        rc = -EINVAL;
        goto fail;
    } else {
        envs = one;
        if ((envs[0] = sl_env_new()) == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        n = 1;
        rc = binary_event(req, envs[0], err, sizeof(err), &reason);
        if (rc != 0) {
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) {
        rc = complete_event(api, envs[i], topic, subject, key, dest);
        if (rc != 0) {
            snprintf(err, sizeof(err), "bad subject or key");
            reason = "bad_subject";
            goto fail;
        }
    }
    p = rest_pending_new(api, PENDING_PUBLISH, topic, done, arg);
    if (p == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    p->batch = batch;
    rc = sl_gateway_publish(api->gw, &src, envs, n, publish_done, p);
    if (rc != 0) {
        rest_pending_unlink(p);
        rest_pending_free(p);
        if (rc == -ERANGE) {
            snprintf(err, sizeof(err), "unknown partition");
            reason = "unknown_partition";
            rc = -ENOENT;          /* 404, as for reads */
        } else if (rc == -ENOTSUP) {
            snprintf(err, sizeof(err), "partition= names a partition of the topic in the "
                     "path, but an ingress route sends this subject elsewhere");
            reason = "bad_param";
            rc = -EINVAL;
        } else {
            snprintf(err, sizeof(err), "%s",
                     rc == -ENOENT ? "unknown topic" : "cannot publish");
            reason = rc == -ENOENT ? "unknown_topic" : "bad_subject";
        }
        goto fail;
    }
    free_envs(envs, n, one);
    free(qmem);
    return;

fail:
    free_envs(envs, n, one);
    free(qmem);
    if (rc == -EINVAL) {
        rest_reply_error(done, arg, 400, reason, err[0] != '\0' ? err : "invalid request");
    } else if (rc == -E2BIG) {
        rest_reply_error(done, arg, 413, "too_many_events", err);
    } else if (rc == -ENOENT) {
        rest_reply_error(done, arg, 404, reason, err);
    } else {
        rest_reply_errno(done, arg, rc, "publish");
    }
}

/* ---------- topics, health, metrics ---------- */

static const char *flush_name(enum sl_flush f)
{
    switch (f) {
    case SL_FLUSH_ALWAYS:
        return "always";
    case SL_FLUSH_INTERVAL:
        return "interval";
    default:
        return "os";
    }
}

static int list_topic_fn(void *arg, const char *topic, const struct sl_topic_config *cfg,
                         const struct sl_partition_info *parts, int32_t n_parts)
{
    json_t *hw = json_array();

    (void)cfg;
    for (int32_t i = 0; hw != NULL && i < n_parts; i++) {
        json_array_append_new(hw, json_integer(parts[i].high_watermark));
    }
    json_array_append_new(arg, json_pack("{s:s, s:i, s:o}", "name", topic, "partitions",
                                         (int)n_parts, "high_watermarks", hw));
    return 0;
}

static int describe_fn(void *arg, const char *topic, const struct sl_topic_config *cfg,
                       const struct sl_partition_info *parts, int32_t n_parts)
{
    json_t **out = arg;
    json_t *arr = json_array();

    for (int32_t i = 0; arr != NULL && i < n_parts; i++) {
        json_array_append_new(arr, json_pack("{s:i, s:I, s:I, s:I, s:I}", "partition",
                                             (int)parts[i].partition, "log_start_offset",
                                             (json_int_t)parts[i].log_start_offset,
                                             "high_watermark", (json_int_t)parts[i].high_watermark,
                                             "bytes", (json_int_t)parts[i].bytes, "segments",
                                             (json_int_t)parts[i].segments));
    }
    *out = json_pack("{s:s, s:o, s:{s:i, s:I, s:I, s:I, s:I, s:s, s:I, s:s}}", "name", topic,
                     "partitions", arr, "config", "partitions", (int)cfg->partitions,
                     "segment_bytes", (json_int_t)cfg->segment_bytes, "segment_ms",
                     (json_int_t)cfg->segment_ms, "retention_bytes",
                     (json_int_t)cfg->retention_bytes, "retention_ms",
                     (json_int_t)cfg->retention_ms, "flush", flush_name(cfg->flush),
                     "flush_interval_ms", (json_int_t)cfg->flush_interval_ms,
                     "compression", sl_rb_codec_name(cfg->compression));
    return 1;
}

static void handle_metrics(rest_done_fn done, void *arg)
{
    struct evbuffer *eb = evbuffer_new();
    struct rest_resp resp;

    memset(&resp, 0, sizeof(resp));
    if (eb == NULL) {
        rest_reply_errno(done, arg, -ENOMEM, "metrics");
        return;
    }
    sl_metrics_render(eb);
    resp.body_len = evbuffer_get_length(eb);
    resp.body = malloc(resp.body_len + 1);
    if (resp.body == NULL) {
        evbuffer_free(eb);
        rest_reply_errno(done, arg, -ENOMEM, "metrics");
        return;
    }
    evbuffer_remove(eb, resp.body, resp.body_len);
    resp.body[resp.body_len] = '\0';
    evbuffer_free(eb);
    resp.status = 200;
    resp.content_type = CT_PROM;
    rest_finish(done, arg, &resp);
}

/* ---------- static files ---------- */

static const char *content_type_for(const char *path)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".json", "application/json"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},
        {".ico", "image/x-icon"},              {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcasecmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* Only plain names: no "..", no dot-files, no '%', '\\' or empty segments. */
static bool static_path_ok(const char *path)
{
    const char *seg = path + 1;

    if (strlen(path) > 512 || strpbrk(path, "%\\") != NULL) {
        return false;
    }
    while (*seg != '\0') {
        size_t n = strcspn(seg, "/");
        if (n == 0 || seg[0] == '.') {
            return false;
        }
        seg += n;
        if (*seg == '/') {
            seg++;
        }
    }
    return true;
}

static void handle_static(struct rest_api *api, const char *path, rest_done_fn done, void *arg)
{
    char full[PATH_MAX];
    struct stat st;
    struct rest_resp resp;
    int fd;

    if (api->web_root == NULL || !static_path_ok(path)) {
        rest_reply_error(done, arg, 404, "not_found", "not found");
        return;
    }
    if (strcmp(path, "/") == 0) {
        path = "/index.html";
    }
    if ((size_t)snprintf(full, sizeof(full), "%s%s", api->web_root, path) >= sizeof(full)) {
        rest_reply_error(done, arg, 404, "not_found", "not found");
        return;
    }
    fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > REST_STATIC_MAX) {
        if (fd >= 0) {
            close(fd);
        }
        rest_reply_error(done, arg, 404, "not_found", "not found");
        return;
    }
    memset(&resp, 0, sizeof(resp));
    resp.body = malloc((size_t)st.st_size + 1);
    if (resp.body == NULL) {
        close(fd);
        rest_reply_errno(done, arg, -ENOMEM, "static");
        return;
    }
    while (resp.body_len < (size_t)st.st_size) {
        ssize_t r = read(fd, resp.body + resp.body_len, (size_t)st.st_size - resp.body_len);
        if (r <= 0) {
            break;
        }
        resp.body_len += (size_t)r;
    }
    close(fd);
    resp.status = 200;
    resp.content_type = content_type_for(full);
    resp.n_extra = 1;
    resp.extra[0].name = "cache-control:";
    snprintf(resp.extra[0].value, sizeof(resp.extra[0].value), "no-cache");
    rest_finish(done, arg, &resp);
}

/* ---------- routing ---------- */

static void method_not_allowed(rest_done_fn done, void *arg, const char *allow)
{
    struct rest_resp resp;

    rest_api_error(&resp, 405, "method_not_allowed", "method not allowed");
    resp.n_extra = 1;
    resp.extra[0].name = "allow:";
    snprintf(resp.extra[0].value, sizeof(resp.extra[0].value), "%s", allow);
    rest_finish(done, arg, &resp);
}

enum rest_method { METHOD_OTHER, METHOD_GET, METHOD_POST };

/* The method, compared once per request. GET and HEAD are both METHOD_GET: HEAD is
 * answered exactly as GET (status, headers, Content-Length of the body GET would send);
 * the transport leaves the body out (RFC 9110, 9.3.2). */
static enum rest_method method_of(const char *m)
{
    switch (m[0]) {
    case 'G':
        return strcmp(m, "GET") == 0 ? METHOD_GET : METHOD_OTHER;
    case 'H':
        return strcmp(m, "HEAD") == 0 ? METHOD_GET : METHOD_OTHER;
    case 'P':
        return strcmp(m, "POST") == 0 ? METHOD_POST : METHOD_OTHER;
    default:
        return METHOD_OTHER;
    }
}

/* Split "/topics/..." into at most 5 segments. Returns the count, or -1 if too many. */
static int split_path(const char *path, char segs[5][256])
{
    int n = 0;
    const char *p = path;

    while (*p == '/') {
        size_t len;
        p++;
        len = (size_t)(strchrnul(p, '/') - p);
        if (len == 0 && *p == '\0') {
            break;             /* trailing slash */
        }
        if (n == 5 || len >= 256) {
            return -1;
        }
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        p += len;
    }
    return *p == '\0' ? n : -1;
}

static void handle_topics(struct rest_api *api, const struct rest_req *req,
                          enum rest_method method, char segs[5][256], int n, rest_done_fn done,
                          void *arg)
{
    bool get = method == METHOD_GET;
    bool post = method == METHOD_POST;
    const char *topic = segs[1];

    if (n == 1) {
        json_t *arr;
        if (!get) {
            method_not_allowed(done, arg, "GET, HEAD");
            return;
        }
        arr = json_array();
        sl_log_foreach_topic(api->gw->log, list_topic_fn, arr);
        rest_reply_json(done, arg, 200, json_pack("{s:o}", "topics", arr));
        return;
    }
    if (!sl_log_topic_name_valid(topic)) {
        rest_reply_error(done, arg, 400, "bad_topic", "bad topic name: [a-zA-Z0-9._-]{1,249}");
        return;
    }
    if (n == 2) {
        json_t *obj = NULL;
        if (post) {
            handle_publish(api, req, topic, done, arg);
        } else if (get) {
            if (sl_log_describe(api->gw->log, topic, describe_fn, &obj) < 0) {
                json_decref(obj);
                rest_reply_error(done, arg, 404, "unknown_topic", "unknown topic");
            } else {
                rest_reply_json(done, arg, 200, obj);
            }
        } else {
            method_not_allowed(done, arg, "GET, HEAD, POST");
        }
    } else if (n == 3 && strcmp(segs[2], "records") == 0) {
        if (get) {
            rest_read_group(api, req, topic, done, arg);
        } else {
            method_not_allowed(done, arg, "GET, HEAD");
        }
    } else if (n == 3 && strcmp(segs[2], "offsets") == 0) {
        if (post) {
            rest_read_commit(api, req, topic, done, arg);
        } else {
            method_not_allowed(done, arg, "POST");
        }
    } else if (n == 5 && strcmp(segs[2], "partitions") == 0 && strcmp(segs[4], "records") == 0) {
        if (get) {
            rest_read_partition(api, req, topic, segs[3], done, arg);
        } else {
            method_not_allowed(done, arg, "GET, HEAD");
        }
    } else {
        rest_reply_error(done, arg, 404, "not_found", "no such endpoint");
    }
}

void rest_api_handle(struct rest_api *api, const struct rest_req *req, rest_done_fn done,
                     void *arg)
{
    char segs[5][256];
    enum rest_method method = method_of(req->method);
    bool get = method == METHOD_GET;
    int n;

    if (req->path == NULL || req->path[0] != '/') {
        rest_reply_error(done, arg, 400, "bad_path", "bad request path");
        return;
    }
    /* "/topics" or "/topics/..." first: the publish path */
    if (strncmp(req->path, "/topics", 7) == 0 && (req->path[7] == '\0' || req->path[7] == '/')) {
        n = split_path(req->path, segs);
        if (n < 1) {
            rest_reply_error(done, arg, 404, "not_found", "no such endpoint");
            return;
        }
        handle_topics(api, req, method, segs, n, done, arg);
        return;
    }
    if (strcmp(req->path, "/healthz") == 0) {
        if (get) {
            rest_reply_json(done, arg, 200, json_pack("{s:s}", "status", "ok"));
        } else {
            method_not_allowed(done, arg, "GET, HEAD");
        }
        return;
    }
    if (strcmp(req->path, "/metrics") == 0) {
        if (get) {
            handle_metrics(done, arg);
        } else {
            method_not_allowed(done, arg, "GET, HEAD");
        }
        return;
    }
    if (get) {
        handle_static(api, req->path, done, arg);
        return;
    }
    rest_reply_error(done, arg, 404, "not_found", "no such endpoint");
}

/* ---------- lifetime ---------- */

struct rest_api *rest_api_new(struct sl_gateway *gw, const struct rest_api_opts *opts)
{
    struct rest_api *api = calloc(1, sizeof(*api));

    if (api == NULL) {
        return NULL;
    }
    api->gw = gw;
    api->listener = strdup(opts->listener != NULL ? opts->listener : "http");
    api->max_body = opts->max_body > 0 ? opts->max_body : REST_DEFAULT_MAX_BODY;
    api->max_wait_ms = opts->max_wait_ms > 0 ? opts->max_wait_ms : REST_DEFAULT_MAX_WAIT;
    if (opts->web_root != NULL) {
        api->web_root = strdup(opts->web_root);
    }
    if (api->listener == NULL || (opts->web_root != NULL && api->web_root == NULL)) {
        free(api->listener);
        free(api->web_root);
        free(api);
        return NULL;
    }
    return api;
}

void rest_api_drain(struct rest_api *api)
{
    struct pending *p, *next;

    if (api == NULL) {
        return;
    }
    api->draining = true;
    for (p = api->pending; p != NULL; p = next) {
        next = p->next;
        if (p->kind == PENDING_READ) {
            rest_read_answer(p);    /* unlinks and frees p only */
        }
    }
}

void rest_api_free(struct rest_api **apip)
{
    struct rest_api *api = apip != NULL ? *apip : NULL;

    if (api == NULL) {
        return;
    }
    while (api->pending != NULL) {
        struct pending *p = api->pending;
        if (p->kind == PENDING_READ) {
            rest_read_answer(p);    /* unlinks and frees p */
        } else {
            rest_pending_unlink(p);
            p->api = NULL;     /* publish_done frees it when the log answers */
            rest_reply_error(p->done, p->arg, 503, "shutting_down", "shutting down");
        }
    }
    while (api->spare != NULL) {
        struct pending *p = api->spare;
        api->spare = p->next;
        free(p);
    }
    free(api->listener);
    free(api->web_root);
    free(api);
    *apip = NULL;
}

/*
 * The read side of the REST handlers (see rest_api.h for the endpoints): partition
 * reads, stateless group reads from the committed offsets and their explicit commits,
 * long-poll parking on cursors, and rendering records as a JSON array of events.
 * Loop thread only.
 */
#include "adapters/rest/rest_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "gateway/ce_json.h"
#include "gateway/gateway.h"
#include "gateway/log/log.h"
#include "gateway/metrics.h"

#define REST_READ_MAX_DEFAULT 100
#define REST_READ_MAX_CAP 10000
#define REST_READ_MAX_BYTES (8u * 1024u * 1024u)
#define REST_GROUP_MAX 249                       /* bytes, as Kafka's topic names */
#define REST_GROUP_BUF (REST_GROUP_MAX * 3 + 1)  /* room for it percent-encoded */

/* Append one record to the read answer: its event, or an error object if it does not
 * decode. A record that cannot be rendered for want of memory is left out. */
static int record_to_json(void *arg, const char *topic, int32_t partition,
                          const struct sl_record *rec)
{
    struct pending *p = arg;
    struct sl_env *env = sl_env_from_record(rec, partition);
    size_t mark = p->out.len;
    int rc;

    (void)topic;
    rc = p->n_out > 0 ? ce_json_buf_add(&p->out, ",", 1) : 0;
    if (env == NULL) {
        char text[128];
        sl_metric_incr("sluice_http_undecodable_records_total",
                       "records a read could not decode", "");
        snprintf(text, sizeof(text),
                 "{\"error\":\"undecodable record\",\"partition\":%" PRId32
                 ",\"offset\":%" PRId64 "}",
                 partition, rec->offset);
        rc = rc == 0 ? ce_json_buf_add(&p->out, text, strlen(text)) : rc;
    } else {
        env->partition = partition;
        env->offset = rec->offset;
        rc = rc == 0 ? ce_json_render_event(env, &p->out) : rc;
        sl_env_unref(&env);
    }
    if (rc == 0) {
        p->n_out++;
    } else {
        p->out.len = mark;     /* out of memory: the record is left out */
        p->out.data[mark] = '\0';
    }
    p->bytes += (size_t)(rec->value_len > 0 ? rec->value_len : 0) + 64;
    return p->n_out >= p->max || p->bytes >= REST_READ_MAX_BYTES;
}

/* Answer 200 with the JSON in p->out (handed over to the answer) and free p. */
static void answer_out(struct pending *p)
{
    struct rest_resp resp;

    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    resp.content_type = CT_JSON;
    resp.body = p->out.data;
    resp.body_len = p->out.len;
    p->out.data = NULL;
    p->out.len = p->out.cap = 0;
    rest_finish(p->done, p->arg, &resp);
    rest_pending_free(p);
}

/* Answer 200 with the events gathered (a JSON array), or 503 if it cannot be closed. */
void rest_read_answer(struct pending *p)
{
    rest_pending_unlink(p);
    if (ce_json_buf_add(&p->out, "]", 1) != 0) {
        rest_reply_error(p->done, p->arg, 503, "no_memory", "out of memory");
        rest_pending_free(p);
        return;
    }
    answer_out(p);
}

static void read_poll_cursors(struct pending *p)
{
    for (size_t i = 0; i < p->n_curs && p->n_out < p->max; i++) {
        int rc = sl_cursor_poll(p->curs[i], p->max - p->n_out,
                                REST_READ_MAX_BYTES, record_to_json, p);
        (void)rc;
    }
}

static void read_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;

    (void)fd;
    (void)what;
    rest_read_answer(p);
}

static void read_wake_cb(struct sl_cursor *cur, void *arg)
{
    struct pending *p = arg;

    (void)cur;
    read_poll_cursors(p);
    if (p->n_out > 0) {
        /* Answer from the timer callback, not inside the cursor's own callback. */
        event_active(p->timer, EV_TIMEOUT, 1);
    }
}

struct read_spec {
    int32_t partition;
    int64_t offset;              /* -1: earliest */
};

/* Read now; if nothing and wait_ms > 0, park on cursors. Takes specs. */
static void start_read(struct rest_api *api, const char *topic, struct read_spec *specs,
                       size_t n, size_t max, int64_t wait_ms, rest_done_fn done, void *arg)
{
    struct pending *p = rest_pending_new(api, PENDING_READ, topic, done, arg);
    int rc = 0;

    if (p == NULL || ce_json_buf_add(&p->out, "[", 1) != 0) {
        if (p != NULL) {
            rest_pending_unlink(p);
            rest_pending_free(p);
        }
        free(specs);
        rest_reply_errno(done, arg, -ENOMEM, "read");
        return;
    }
    p->max = max;
    for (size_t i = 0; i < n && p->n_out < max; i++) {
        int64_t next;
        rc = sl_log_read(api->gw->log, topic, specs[i].partition,
                         specs[i].offset < 0 ? 0 : specs[i].offset,
                         max - p->n_out, REST_READ_MAX_BYTES, record_to_json, p,
                         &next);
        if (rc == -EINVAL) {
            rc = 0;            /* past the high watermark: nothing yet */
        }
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0) {
        rest_pending_unlink(p);
        rest_pending_free(p);
        free(specs);
        rest_reply_errno(done, arg, rc, "read");
        return;
    }
    if (p->n_out > 0 || wait_ms <= 0) {
        free(specs);
        rest_read_answer(p);
        return;
    }
    p->curs = calloc(n, sizeof(*p->curs));
    p->timer = evtimer_new(api->gw->base, read_timer_cb, p);
    if (p->curs == NULL || p->timer == NULL) {
        rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct sl_start st = {.kind = specs[i].offset < 0 ? SL_START_EARLIEST : SL_START_OFFSET,
                              .value = specs[i].offset};
        int err = 0;
        p->curs[i] = sl_cursor_open(api->gw->log, topic, specs[i].partition, st, read_wake_cb, p,
                                    &err);
        if (p->curs[i] == NULL) {
            rc = err != 0 ? err : -ENOMEM;
            break;
        }
        p->n_curs = i + 1;
    }
    free(specs);
    if (rc != 0) {
        rest_pending_unlink(p);
        rest_pending_free(p);
        rest_reply_errno(done, arg, rc, "read");
        return;
    }
    {
        struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
        evtimer_add(p->timer, &tv);
    }
}

/* Common read parameters: max and wait_ms. false after answering 400. */
static bool read_params(struct rest_api *api, const struct rest_req *req, size_t *max,
                        int64_t *wait_ms, rest_done_fn done, void *arg)
{
    int64_t m, w;

    if (rest_query_num(req->query, "max", 1, INT32_MAX, REST_READ_MAX_DEFAULT, &m) < 0) {
        rest_reply_error(done, arg, 400, "bad_number", "max must be a positive integer");
        return false;
    }
    if (rest_query_num(req->query, "wait_ms", 0, INT64_MAX / 2, 0, &w) < 0) {
        rest_reply_error(done, arg, 400, "bad_number", "wait_ms must be a non-negative integer");
        return false;
    }
    *max = m > REST_READ_MAX_CAP ? REST_READ_MAX_CAP : (size_t)m;
    *wait_ms = api->draining ? 0 : (w > api->max_wait_ms ? api->max_wait_ms : w);
    return true;
}

/* The partition's high watermark, or -1 if unknown. */
static int64_t partition_hw(struct rest_api *api, const char *topic, int32_t partition)
{
    int64_t hw = sl_log_high_watermark(api->gw->log, topic, partition);

    return hw < 0 ? -1 : hw;
}

void rest_read_partition(struct rest_api *api, const struct rest_req *req,
                         const char *topic, const char *pstr, rest_done_fn done,
                         void *arg)
{
    int32_t parts = sl_log_partitions(api->gw->log, topic);
    struct read_spec *spec;
    int64_t p, off, wait_ms, hw;
    size_t max;

    if (parts < 0) {
        rest_reply_error(done, arg, 404, "unknown_topic", "unknown topic");
        return;
    }
    if (!rest_parse_i64(pstr, 0, INT32_MAX, &p)) {
        rest_reply_error(done, arg, 400, "bad_number", "partition must be a non-negative integer");
        return;
    }
    if (p >= parts) {
        rest_reply_error(done, arg, 404, "unknown_partition", "unknown partition");
        return;
    }
    if (rest_query_num(req->query, "offset", 0, INT64_MAX, 0, &off) < 0) {
        rest_reply_error(done, arg, 400, "bad_number", "offset must be a non-negative integer");
        return;
    }
    if (!read_params(api, req, &max, &wait_ms, done, arg)) {
        return;
    }
    hw = partition_hw(api, topic, (int32_t)p);
    if (hw >= 0 && off > hw) {
        /* Not "nothing yet": a cursor would clamp to the high watermark and hand back
         * records the client did not ask for. offset == hw waits as usual. */
        char text[REST_ERR_LEN];
        snprintf(text, sizeof(text), "offset %lld is beyond the high watermark %lld",
                 (long long)off, (long long)hw);
        rest_reply_error(done, arg, 416, "offset_out_of_range", text);
        return;
    }
    spec = malloc(sizeof(*spec));
    if (spec == NULL) {
        rest_reply_errno(done, arg, -ENOMEM, "read");
        return;
    }
    spec->partition = (int32_t)p;
    spec->offset = off;
    start_read(api, topic, spec, 1, max, wait_ms, done, arg);
}

/* Length of the UTF-8 sequence at s[0..len) if well formed (shortest form, no
 * surrogates, <= U+10FFFF) and not a control character (C0, DEL, C1), else 0. */
static size_t printable_utf8_len(const unsigned char *s, size_t len)
{
    uint32_t cp;
    size_t n;

    if (s[0] < 0x80) {
        return s[0] >= 0x20 && s[0] != 0x7f ? 1 : 0;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n > len) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f)) {
        return 0;
    }
    return n;
}

/* Consumer group names: 1..REST_GROUP_MAX bytes of printable UTF-8. Wider than topic
 * names (other adapters' groups, MQTT shared subscriptions for one, use other
 * characters); the log stores any such name. */
static bool group_valid(const char *g)
{
    const unsigned char *s = (const unsigned char *)g;
    size_t len = strlen(g);

    if (len == 0 || len > REST_GROUP_MAX) {
        return false;
    }
    for (size_t i = 0; i < len;) {
        size_t n = printable_utf8_len(s + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

/* The group= parameter into group (REST_GROUP_BUF bytes). false after answering 400. */
static bool group_param(const struct rest_req *req, char *group, rest_done_fn done, void *arg)
{
    if (rest_query_get(req->query, "group", group, REST_GROUP_BUF) != 1 || !group_valid(group)) {
        rest_reply_error(done, arg, 400, "bad_group",
                         "group= is required: 1 to 249 bytes of printable UTF-8, no control "
                         "characters");
        return false;
    }
    return true;
}

void rest_read_group(struct rest_api *api, const struct rest_req *req,
                     const char *topic, rest_done_fn done, void *arg)
{
    int32_t parts = sl_log_partitions(api->gw->log, topic);
    char group[REST_GROUP_BUF];
    struct read_spec *specs;
    int64_t wait_ms;
    size_t max;

    if (!group_param(req, group, done, arg)) {
        return;
    }
    if (parts < 0) {
        rest_reply_error(done, arg, 404, "unknown_topic", "unknown topic");
        return;
    }
    if (!read_params(api, req, &max, &wait_ms, done, arg)) {
        return;
    }
    specs = calloc((size_t)parts, sizeof(*specs));
    if (specs == NULL) {
        rest_reply_errno(done, arg, -ENOMEM, "read");
        return;
    }
    for (int32_t i = 0; i < parts; i++) {
        specs[i].partition = i;
        specs[i].offset = sl_group_committed(api->gw->log, group, topic, i);
    }
    start_read(api, topic, specs, (size_t)parts, max, wait_ms, done, arg);
}

/* The group's save covering a commit finished: answer 200 with the body rendered at
 * the request (in p->out), or the save's error. An orphaned p (rest_api_free answered
 * 503 already) is only freed. */
static void commit_done(void *arg, int status)
{
    struct pending *p = arg;

    if (p->api == NULL) {
        rest_pending_free(p);
        return;
    }
    rest_pending_unlink(p);
    if (status != 0) {
        rest_reply_errno(p->done, p->arg, status, "commit: saving the offsets");
        rest_pending_free(p);
        return;
    }
    answer_out(p);
}

/* Answer a refused sl_group_commit_many: 404 unknown partition, 400 an offset out of
 * range (with the partition's high watermark), else the errno mapping. */
static void commit_refused(struct rest_api *api, const char *topic,
                           const struct sl_group_offset *o, int rc, rest_done_fn done,
                           void *arg)
{
    char text[REST_ERR_LEN];

    if (rc == -ENOENT) {
        rest_reply_error(done, arg, 404, "unknown_partition", "unknown partition");
    } else if (rc == -ERANGE) {
        snprintf(text, sizeof(text),
                 "offset %lld of partition %ld is beyond the high watermark %lld",
                 (long long)o->offset, (long)o->partition,
                 (long long)partition_hw(api, topic, o->partition));
        rest_reply_error(done, arg, 400, "offset_out_of_range", text);
    } else {
        rest_reply_errno(done, arg, rc, "commit");
    }
}

void rest_read_commit(struct rest_api *api, const struct rest_req *req, const char *topic,
                      rest_done_fn done, void *arg)
{
    int32_t parts = sl_log_partitions(api->gw->log, topic);
    char group[REST_GROUP_BUF];
    json_t *root, *offs, *item, *answer;
    struct sl_group_offset *v;
    struct pending *p;
    char *body;
    size_t i, n, bad = 0;
    int rc;

    if (!group_param(req, group, done, arg)) {
        return;
    }
    if (parts < 0) {
        rest_reply_error(done, arg, 404, "unknown_topic", "unknown topic");
        return;
    }
    root = req->body != NULL ? json_loadb((const char *)req->body->data, req->body->len, 0, NULL)
                             : NULL;
    offs = json_object_get(root, "offsets");
    if (root == NULL || !json_is_array(offs) || json_array_size(offs) == 0) {
        json_decref(root);
        rest_reply_error(done, arg, 400, "bad_json",
                         "want {\"offsets\":[{\"partition\":P,\"offset\":N}, ...]}");
        return;
    }
    n = json_array_size(offs);
    v = calloc(n, sizeof(*v));
    if (v == NULL) {
        json_decref(root);
        rest_reply_errno(done, arg, -ENOMEM, "commit");
        return;
    }
    json_array_foreach(offs, i, item) {
        json_t *jp = json_object_get(item, "partition");
        json_t *jo = json_object_get(item, "offset");
        if (!json_is_integer(jp) || !json_is_integer(jo) || json_integer_value(jo) < 0) {
            json_decref(root);
            free(v);
            rest_reply_error(done, arg, 400, "bad_json",
                             "partition and offset must be integers >= 0");
            return;
        }
        if (json_integer_value(jp) < 0 || json_integer_value(jp) >= parts) {
            json_decref(root);
            free(v);
            rest_reply_error(done, arg, 404, "unknown_partition", "unknown partition");
            return;
        }
        v[i].partition = (int32_t)json_integer_value(jp);
        v[i].offset = json_integer_value(jo);
    }
    /* The answer, rendered now (the request is borrowed until we return), waits in a
     * pending of the kind rest_api_free answers 503 and orphans, as a publish does. */
    answer = json_pack("{s:s, s:s, s:O}", "topic", topic, "group", group, "offsets", offs);
    body = answer != NULL ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    json_decref(root);
    p = body != NULL ? rest_pending_new(api, PENDING_PUBLISH, topic, done, arg) : NULL;
    if (p == NULL || ce_json_buf_add(&p->out, body, strlen(body)) != 0) {
        if (p != NULL) {
            rest_pending_unlink(p);
            rest_pending_free(p);
        }
        free(body);
        free(v);
        rest_reply_errno(done, arg, -ENOMEM, "commit");
        return;
    }
    free(body);
    /* All or nothing: checked against the high watermarks first; answered once durable. */
    rc = sl_group_commit_many(api->gw->log, group, topic, v, n, commit_done, p, &bad);
    if (rc != 0) {
        rest_pending_unlink(p);
        rest_pending_free(p);
        commit_refused(api, topic, &v[bad < n ? bad : 0], rc, done, arg);
    }
    free(v);
}

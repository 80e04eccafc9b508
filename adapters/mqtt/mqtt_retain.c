/*
 * Retained messages: a topic -> envelope map, rebuilt at start from the internal log
 * topic __mqtt_retained (records keyed by MQTT topic, an empty value clears).
 *
 * Compaction keeps that topic bounded. When it holds more than RETAIN_COMPACT_RATIO x
 * the live retained messages (+ RETAIN_COMPACT_MIN_RECORDS), or as many bytes (+
 * RETAIN_COMPACT_MIN_BYTES), the store:
 *   1. drains: new sets are held back (in order) until every set already appended has
 *      completed, so the map is exactly what replaying the whole log gives;
 *   2. rolls the active segment and re-appends the live map at the tail, starting at
 *      offset C (expired messages are left out), then appends the held sets after it;
 *   3. once the re-appended records are durable, advances the log start to C
 *      (sl_log_delete_records: a durable start, then whole segments below it deleted).
 * A crash before 3 leaves the whole history followed by copies of the latest values
 * (replay converges on the same map); after 3 the log starts with the live set. Either
 * way nothing acknowledged is lost and a cleared topic stays cleared.
 */
#include "adapters/mqtt/mqtt_retain.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/metrics.h"

#define RETAIN_BUCKETS 1024
#define RETAIN_READ_BATCH 512
#define RETAIN_CHUNK 256                     /* records per append of a compaction */
#define RETAIN_SEGMENT_BYTES (64u << 20)     /* bounds one RecordBatch of a compaction */
#define RETAIN_COMPACT_RATIO 2
#define RETAIN_COMPACT_MIN_RECORDS 1000
#define RETAIN_COMPACT_MIN_BYTES (16u << 20)

void (*mqtt_retain_compact_hook)(struct mqtt_retain *r, int stage);

struct rentry {
    struct rentry *next;
    struct sl_env *env;              /* env->subject is the key */
    size_t bytes;                    /* about what its record takes in the log */
};

/* A set that arrived while draining, appended once the compaction's records are. */
struct held {
    struct held *next;
    struct sl_env *env;
    mqtt_retain_cb cb;
    void *arg;
};

enum compact_phase { COMPACT_IDLE, COMPACT_DRAINING, COMPACT_WRITING };

struct mqtt_retain {
    struct sl_gateway *gw;
    struct rentry *buckets[RETAIN_BUCKETS];
    size_t count;
    uint64_t live_bytes;             /* sum of rentry.bytes */
    size_t inflight;                 /* sets appended, callback not yet run */
    bool freed;                      /* mqtt_retain_free ran; the last callback frees */
    bool map_incomplete;             /* a record could not be mapped: never compact */

    enum compact_phase phase;
    struct held *held_head, *held_tail;
    size_t compact_pending;          /* compaction appends not completed */
    int compact_status;
    int64_t compact_base;            /* first re-appended offset, -1: none yet */
    int64_t compact_end;             /* the high watermark when the live set was taken */
    size_t compact_records;
    uint64_t compactions;

    struct sl_metric *m_compactions;
    struct sl_metric *m_expired;
};

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h % RETAIN_BUCKETS;
}

static struct rentry **slot(struct mqtt_retain *r, const char *topic)
{
    struct rentry **p = &r->buckets[hash_str(topic)];
    while (*p != NULL && strcmp((*p)->env->subject, topic) != 0) {
        p = &(*p)->next;
    }
    return p;
}

static void entry_free(struct mqtt_retain *r, struct rentry *e)
{
    r->count--;
    r->live_bytes -= e->bytes;
    sl_env_unref(&e->env);
    free(e);
}

/* Put env (a reference is taken) or clear the topic when it has no data. bytes: about
 * what its record takes in the log. */
static void map_put(struct mqtt_retain *r, struct sl_env *env, size_t bytes)
{
    struct rentry **p;
    if (env->subject == NULL) {
        return;
    }
    p = slot(r, env->subject);
    if (env->data == NULL || env->data->len == 0) {
        if (*p != NULL) {
            struct rentry *e = *p;
            *p = e->next;
            entry_free(r, e);
        }
        return;
    }
    if (*p != NULL) {
        sl_env_unref(&(*p)->env);
        (*p)->env = sl_env_ref(env);
        r->live_bytes += bytes;
        r->live_bytes -= (*p)->bytes;
        (*p)->bytes = bytes;
        return;
    }
    struct rentry *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        /* the map no longer mirrors the log: compacting would lose this message */
        r->map_incomplete = true;
        return;
    }
    e->env = sl_env_ref(env);
    e->bytes = bytes;
    *p = e;
    r->count++;
    r->live_bytes += bytes;
}

/* The record of env as the store writes it (keyed by its subject); hdrs has room for
 * sl_env_record_headers(env). Returns about the bytes it takes in the log. */
static size_t env_record(struct sl_env *env, struct sl_hdr *hdrs, struct sl_rec_in *rec)
{
    size_t bytes;

    sl_env_to_record(env, hdrs, rec);
    rec->key = (const uint8_t *)env->subject;
    rec->key_len = (int32_t)strlen(env->subject);
    bytes = 16 + (size_t)rec->key_len + (size_t)(rec->value_len > 0 ? rec->value_len : 0);
    for (size_t i = 0; i < rec->n_headers; i++) {
        bytes += 4 + hdrs[i].name_len + (size_t)(hdrs[i].value_len > 0 ? hdrs[i].value_len : 0);
    }
    return bytes;
}

static int replay_record(void *arg, const char *topic, int32_t partition,
                         const struct sl_record *rec)
{
    struct mqtt_retain *r = arg;
    struct sl_env *env = sl_env_from_record(rec, partition);
    (void)topic;
    if (env == NULL) {
        r->map_incomplete = true;
        return 0;
    }
    map_put(r, env, 16 + (size_t)(rec->key_len > 0 ? rec->key_len : 0) +
                    (size_t)(rec->value_len > 0 ? rec->value_len : 0) + rec->headers_len);
    sl_env_unref(&env);
    return 0;
}

static void maybe_compact(struct mqtt_retain *r);

struct mqtt_retain *mqtt_retain_open(struct sl_gateway *gw, char **err)
{
    struct mqtt_retain *r = calloc(1, sizeof(*r));
    struct sl_topic_config tc;
    int64_t off = 0, next = 0;
    int n, rc;

    if (r == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    r->gw = gw;
    r->compact_base = -1;
    r->m_compactions = sl_metric_counter("sluice_mqtt_retained_compactions_total",
                                         "compactions of the retained store "
                                         "(__mqtt_retained)", "");
    r->m_expired = sl_metric_counter("sluice_mqtt_retained_expired_total",
                                     "expired retained messages dropped by compaction", "");
    /* Applied on every open: a topic found on disk was opened with the log's defaults,
     * whose retention (7 days) could delete retained messages. */
    sl_topic_config_defaults(&tc);
    tc.partitions = 1;
    tc.segment_bytes = RETAIN_SEGMENT_BYTES;
    tc.segment_ms = 0;                   /* compaction rolls */
    tc.retention_ms = -1;
    tc.retention_bytes = -1;
    tc.flush = SL_FLUSH_ALWAYS;
    tc.preallocate = 64 * 1024;          /* compaction rolls often: little zero-fill */
    rc = sl_log_topic_configure(gw->log, MQTT_RETAIN_TOPIC, &tc);
    if (rc != 0) {
        if (asprintf(err, "cannot create %s: %s", MQTT_RETAIN_TOPIC, strerror(-rc)) < 0) {
            *err = NULL;
        }
        free(r);
        return NULL;
    }
    /* From the log start; bounded by the high watermark: each round advances or ends. */
    while ((n = sl_log_read(gw->log, MQTT_RETAIN_TOPIC, 0, off, RETAIN_READ_BATCH, 0,
                            replay_record, r, &next)) > 0) {
        off = next;
    }
    if (n < 0) {
        sl_warn("[mqtt:retain] reading %s: %s", MQTT_RETAIN_TOPIC, strerror(-n));
        r->map_incomplete = true;
    }
    sl_info("[mqtt:retain] %zu retained message(s) loaded", r->count);
    maybe_compact(r);
    return r;
}

static void held_fail_all(struct mqtt_retain *r, int status)
{
    while (r->held_head != NULL) {
        struct held *h = r->held_head;
        r->held_head = h->next;
        if (h->cb != NULL) {
            h->cb(h->arg, status);
        }
        sl_env_unref(&h->env);
        free(h);
    }
    r->held_tail = NULL;
}

static void map_clear(struct mqtt_retain *r)
{
    for (size_t i = 0; i < RETAIN_BUCKETS; i++) {
        while (r->buckets[i] != NULL) {
            struct rentry *e = r->buckets[i];
            r->buckets[i] = e->next;
            entry_free(r, e);
        }
    }
}

/* After mqtt_retain_free: free once no append callback can reach r any more. */
static void free_if_done(struct mqtt_retain *r)
{
    if (r->freed && r->inflight == 0 && r->compact_pending == 0) {
        held_fail_all(r, -ESHUTDOWN);
        free(r);
    }
}

void mqtt_retain_free(struct mqtt_retain **pr)
{
    struct mqtt_retain *r;
    if (pr == NULL || *pr == NULL) {
        return;
    }
    r = *pr;
    *pr = NULL;
    map_clear(r);
    r->freed = true;
    held_fail_all(r, -ESHUTDOWN);
    free_if_done(r);                     /* else the last pending append's callback */
}

/* ---- sets ---- */

struct set_op {
    struct mqtt_retain *r;
    struct sl_env *env;
    size_t bytes;
    mqtt_retain_cb cb;
    void *arg;
};

static void compact_write(struct mqtt_retain *r);

static void set_done(void *arg, const struct sl_append_result *res)
{
    struct set_op *op = arg;
    struct mqtt_retain *r = op->r;

    r->inflight--;
    if (r->freed) {
        /* the store is gone; the caller still gets its answer */
    } else if (res->status == 0) {
        map_put(r, op->env, op->bytes);
    } else {
        sl_warn("[mqtt:retain] retained message for %s not stored: %s", op->env->subject,
                strerror(-res->status));
    }
    if (op->cb != NULL) {
        op->cb(op->arg, res->status);
    }
    sl_env_unref(&op->env);
    free(op);
    if (r->freed) {
        free_if_done(r);
    } else if (r->phase == COMPACT_DRAINING && r->inflight == 0) {
        compact_write(r);
    } else if (res->status == 0) {
        maybe_compact(r);
    }
}

/* Append env's record; as mqtt_retain_set, without the draining check. */
static int append_set(struct mqtt_retain *r, struct sl_env *env, mqtt_retain_cb cb, void *arg)
{
    size_t nh = sl_env_record_headers(env);
    struct sl_hdr stack[32];
    struct sl_hdr *hdrs = nh <= 32 ? stack : malloc(nh * sizeof(*hdrs));
    struct sl_rec_in rec;
    struct set_op *op = calloc(1, sizeof(*op));
    int rc;

    if (hdrs == NULL || op == NULL) {
        if (hdrs != stack) {
            free(hdrs);
        }
        free(op);
        if (cb != NULL) {
            cb(arg, -ENOMEM);
        }
        return -ENOMEM;
    }
    op->bytes = env_record(env, hdrs, &rec);
    op->r = r;
    op->env = sl_env_ref(env);
    op->cb = cb;
    op->arg = arg;
    r->inflight++;                       /* the callback may run inside the append */
    rc = sl_log_append(r->gw->log, MQTT_RETAIN_TOPIC, 0, &rec, 1, set_done, op);
    if (hdrs != stack) {
        free(hdrs);
    }
    if (rc != 0) {
        r->inflight--;
        sl_env_unref(&op->env);
        free(op);
        if (cb != NULL) {
            cb(arg, rc);
        }
    }
    return rc;
}

int mqtt_retain_set(struct mqtt_retain *r, struct sl_env *env, mqtt_retain_cb cb, void *arg)
{
    struct held *h;

    if (env->subject == NULL) {
        if (cb != NULL) {
            cb(arg, -EINVAL);
        }
        return -EINVAL;
    }
    if (env->id == NULL) {
        sl_env_finalize(env);
    }
    if (r->phase != COMPACT_DRAINING) {
        return append_set(r, env, cb, arg);
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        if (cb != NULL) {
            cb(arg, -ENOMEM);
        }
        return -ENOMEM;
    }
    h->env = sl_env_ref(env);
    h->cb = cb;
    h->arg = arg;
    if (r->held_tail != NULL) {
        r->held_tail->next = h;
    } else {
        r->held_head = h;
    }
    r->held_tail = h;
    return 0;
}

/* ---- compaction ---- */

/* The topic holds much more than the live set (records or bytes). */
static bool compact_due(struct mqtt_retain *r)
{
    struct sl_partition_info pi;
    uint64_t records;

    if (r->phase != COMPACT_IDLE || r->map_incomplete ||
        sl_log_partition_info(r->gw->log, MQTT_RETAIN_TOPIC, 0, &pi) != 0 || pi.failed) {
        return false;
    }
    records = (uint64_t)(pi.high_watermark - pi.log_start_offset);
    return records > RETAIN_COMPACT_RATIO * (uint64_t)r->count + RETAIN_COMPACT_MIN_RECORDS ||
           pi.bytes > RETAIN_COMPACT_RATIO * r->live_bytes + RETAIN_COMPACT_MIN_BYTES;
}

/* Start a compaction if one is due: drain, then compact_write. */
static void maybe_compact(struct mqtt_retain *r)
{
    if (!compact_due(r)) {
        return;
    }
    r->phase = COMPACT_DRAINING;
    if (r->inflight == 0) {
        compact_write(r);
    }
}

static void stage(struct mqtt_retain *r, int n)
{
    if (mqtt_retain_compact_hook != NULL) {
        mqtt_retain_compact_hook(r, n);
    }
}

/* Step 3: the re-appended records are durable (or failed): advance the log start. */
static void compact_finish(struct mqtt_retain *r)
{
    int64_t start = r->compact_records > 0 ? r->compact_base : r->compact_end;
    int rc = r->compact_status;

    if (rc == 0) {
        stage(r, MQTT_RETAIN_STAGE_DURABLE);
        rc = sl_log_delete_records(r->gw->log, MQTT_RETAIN_TOPIC, 0, start);
    }
    if (rc == 0) {
        r->compactions++;
        sl_metric_add(r->m_compactions, 1);
        sl_info("[mqtt:retain] compacted %s: %zu live record(s), log start %" PRId64,
                MQTT_RETAIN_TOPIC, r->compact_records, start);
        stage(r, MQTT_RETAIN_STAGE_DONE);
    } else {
        /* the history stays: replay still gives the same map */
        sl_warn("[mqtt:retain] compaction of %s abandoned: %s", MQTT_RETAIN_TOPIC,
                strerror(-rc));
    }
    r->phase = COMPACT_IDLE;
}

static void compact_chunk_done(void *arg, const struct sl_append_result *res)
{
    struct mqtt_retain *r = arg;

    r->compact_pending--;
    if (res->status != 0) {
        if (r->compact_status == 0) {
            r->compact_status = res->status;
        }
    } else if (r->compact_base < 0 || res->base_offset < r->compact_base) {
        r->compact_base = res->base_offset;
    }
    if (r->freed) {
        free_if_done(r);
    } else if (r->compact_pending == 0) {
        compact_finish(r);
    }
}

static bool expired(const struct sl_env *env, int64_t now_ms)
{
    const struct sl_env_hdr *h = sl_env_find_header(env, MQTT_H_EXPIRY);
    char buf[24];
    long long secs;
    int64_t age;

    if (h == NULL || h->value == NULL || h->value->len == 0 || h->value->len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, h->value->data, h->value->len);
    buf[h->value->len] = '\0';
    secs = strtoll(buf, NULL, 10);
    age = (now_ms - env->timestamp_ms) / 1000;
    return secs - (age > 0 ? age : 0) <= 0;
}

/* Append recs[0..n) (hdr memory borrowed for the call) as one compaction chunk. */
static void compact_append(struct mqtt_retain *r, const struct sl_rec_in *recs, size_t n)
{
    int rc;

    if (n == 0 || r->compact_status != 0) {
        return;
    }
    r->compact_pending++;
    rc = sl_log_append(r->gw->log, MQTT_RETAIN_TOPIC, 0, recs, n, compact_chunk_done, r);
    if (rc != 0) {
        r->compact_pending--;
        r->compact_status = rc;
    }
}

/* Drop expired entries, then re-append the rest in chunks. */
static void compact_live_set(struct mqtt_retain *r)
{
    struct sl_rec_in recs[RETAIN_CHUNK];
    struct sl_hdr *hdrs[RETAIN_CHUNK];
    int64_t now = mqtt_now_ms();
    size_t n = 0;

    for (size_t i = 0; i < RETAIN_BUCKETS && r->compact_status == 0; i++) {
        struct rentry **p = &r->buckets[i];
        while (*p != NULL && r->compact_status == 0) {
            struct rentry *e = *p;
            if (expired(e->env, now)) {
                *p = e->next;
                entry_free(r, e);
                sl_metric_add(r->m_expired, 1);
                continue;
            }
            hdrs[n] = malloc(sl_env_record_headers(e->env) * sizeof(struct sl_hdr));
            if (hdrs[n] == NULL) {
                r->compact_status = -ENOMEM;
                break;
            }
            (void)env_record(e->env, hdrs[n], &recs[n]);
            n++;
            r->compact_records++;
            if (n == RETAIN_CHUNK) {
                compact_append(r, recs, n);
                while (n > 0) {
                    free(hdrs[--n]);
                }
            }
            p = &e->next;
        }
    }
    compact_append(r, recs, n);
    while (n > 0) {
        free(hdrs[--n]);
    }
}

/*
 * Step 2, with nothing of ours in flight: the map is what the log replays to. Roll, so
 * the old records lie in closed segments; re-append the live set; then the held sets.
 */
static void compact_write(struct mqtt_retain *r)
{
    struct held *h = r->held_head;
    int rc;

    r->held_head = r->held_tail = NULL;
    r->phase = COMPACT_WRITING;
    r->compact_status = 0;
    r->compact_base = -1;
    r->compact_records = 0;
    r->compact_pending = 1;              /* completions may run inside the appends */
    r->compact_end = sl_log_high_watermark(r->gw->log, MQTT_RETAIN_TOPIC, 0);
    rc = r->compact_end < 0 ? (int)r->compact_end
                            : sl_log_roll(r->gw->log, MQTT_RETAIN_TOPIC, 0);
    if (rc != 0) {
        r->compact_status = rc;
    } else {
        stage(r, MQTT_RETAIN_STAGE_ROLLED);
        compact_live_set(r);
    }
    if (--r->compact_pending == 0) {
        compact_finish(r);
    }
    /* after the live set: their offsets follow it */
    while (h != NULL) {
        struct held *next = h->next;
        (void)append_set(r, h->env, h->cb, h->arg);
        sl_env_unref(&h->env);
        free(h);
        h = next;
    }
}

/* ---- reads ---- */

void mqtt_retain_deliver(struct mqtt_retain *r, struct mqtt_session *s,
                         const struct mqtt_sub_entry *sub)
{
    size_t flen = strlen(sub->filter);
    for (size_t i = 0; i < RETAIN_BUCKETS; i++) {
        for (struct rentry *e = r->buckets[i]; e != NULL; e = e->next) {
            const char *t = e->env->subject;
            if (mqtt_filter_match(sub->filter, flen, t, strlen(t))) {
                mqtt_subs_send_retained(s, e->env, sub->qos, sub->sub_id);
            }
        }
    }
}

size_t mqtt_retain_count(const struct mqtt_retain *r)
{
    return r != NULL ? r->count : 0;
}

uint64_t mqtt_retain_compactions(const struct mqtt_retain *r)
{
    return r != NULL ? r->compactions : 0;
}

const struct sl_env *mqtt_retain_get(const struct mqtt_retain *r, const char *topic)
{
    struct rentry *e = r->buckets[hash_str(topic)];
    for (; e != NULL; e = e->next) {
        if (strcmp(e->env->subject, topic) == 0) {
            return e->env;
        }
    }
    return NULL;
}

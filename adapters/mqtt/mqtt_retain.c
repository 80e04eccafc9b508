/*
 * Retained messages: a topic -> envelope map, rebuilt at start from the internal log
 * topic __mqtt_retained (records keyed by MQTT topic, an empty value clears).
 */
#include "adapters/mqtt/mqtt_retain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"

#define RETAIN_BUCKETS 1024
#define RETAIN_READ_BATCH 512

struct rentry {
    struct rentry *next;
    struct sl_env *env;              /* env->subject is the key */
};

struct mqtt_retain {
    struct sl_gateway *gw;
    struct rentry *buckets[RETAIN_BUCKETS];
    size_t count;
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

/* Put env (a reference is taken) or clear the topic when it has no data. */
static void map_put(struct mqtt_retain *r, struct sl_env *env)
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
            sl_env_unref(&e->env);
            free(e);
            r->count--;
        }
        return;
    }
    if (*p != NULL) {
        sl_env_unref(&(*p)->env);
        (*p)->env = sl_env_ref(env);
        return;
    }
    struct rentry *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return;
    }
    e->env = sl_env_ref(env);
    *p = e;
    r->count++;
}

static int replay_record(void *arg, const char *topic, int32_t partition,
                         const struct sl_record *rec)
{
    struct mqtt_retain *r = arg;
    struct sl_env *env = sl_env_from_record(rec, partition);
    (void)topic;
    if (env != NULL) {
        map_put(r, env);
        sl_env_unref(&env);
    }
    return 0;
}

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
    if (sl_log_partitions(gw->log, MQTT_RETAIN_TOPIC) < 0) {
        sl_topic_config_defaults(&tc);
        tc.partitions = 1;
        tc.retention_ms = -1;
        tc.retention_bytes = -1;
        tc.flush = SL_FLUSH_ALWAYS;
        rc = sl_log_topic_configure(gw->log, MQTT_RETAIN_TOPIC, &tc);
        if (rc != 0) {
            if (asprintf(err, "cannot create %s: %s", MQTT_RETAIN_TOPIC, strerror(-rc)) < 0) {
                *err = NULL;
            }
            free(r);
            return NULL;
        }
    }
    /* Bounded by the high watermark: each round advances or ends. */
    while ((n = sl_log_read(gw->log, MQTT_RETAIN_TOPIC, 0, off, RETAIN_READ_BATCH, 0,
                            replay_record, r, &next)) > 0) {
        off = next;
    }
    sl_info("[mqtt:retain] %zu retained message(s) loaded", r->count);
    return r;
}

void mqtt_retain_free(struct mqtt_retain **pr)
{
    struct mqtt_retain *r;
    if (pr == NULL || *pr == NULL) {
        return;
    }
    r = *pr;
    for (size_t i = 0; i < RETAIN_BUCKETS; i++) {
        while (r->buckets[i] != NULL) {
            struct rentry *e = r->buckets[i];
            r->buckets[i] = e->next;
            sl_env_unref(&e->env);
            free(e);
        }
    }
    free(r);
    *pr = NULL;
}

struct set_op {
    struct mqtt_retain *r;
    struct sl_env *env;
    mqtt_retain_cb cb;
    void *arg;
};

static void set_done(void *arg, const struct sl_append_result *res)
{
    struct set_op *op = arg;
    if (res->status == 0) {
        map_put(op->r, op->env);
    } else {
        sl_warn("[mqtt:retain] retained message for %s not stored: %s", op->env->subject,
                strerror(-res->status));
    }
    if (op->cb != NULL) {
        op->cb(op->arg, res->status);
    }
    sl_env_unref(&op->env);
    free(op);
}

int mqtt_retain_set(struct mqtt_retain *r, struct sl_env *env, mqtt_retain_cb cb, void *arg)
{
    size_t nh = sl_env_record_headers(env);
    struct sl_hdr stack[32];
    struct sl_hdr *hdrs = nh <= 32 ? stack : malloc(nh * sizeof(*hdrs));
    struct sl_rec_in rec;
    struct set_op *op = calloc(1, sizeof(*op));
    int rc;

    if (hdrs == NULL || op == NULL || env->subject == NULL) {
        if (hdrs != stack) {
            free(hdrs);
        }
        free(op);
        if (cb != NULL) {
            cb(arg, -ENOMEM);
        }
        return -ENOMEM;
    }
    if (env->id == NULL) {
        sl_env_finalize(env);
    }
    sl_env_to_record(env, hdrs, &rec);
    rec.key = (const uint8_t *)env->subject;
    rec.key_len = (int32_t)strlen(env->subject);
    op->r = r;
    op->env = sl_env_ref(env);
    op->cb = cb;
    op->arg = arg;
    rc = sl_log_append(r->gw->log, MQTT_RETAIN_TOPIC, 0, &rec, 1, set_done, op);
    if (hdrs != stack) {
        free(hdrs);
    }
    if (rc != 0) {
        sl_env_unref(&op->env);
        free(op);
        if (cb != NULL) {
            cb(arg, rc);
        }
    }
    return rc;
}

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

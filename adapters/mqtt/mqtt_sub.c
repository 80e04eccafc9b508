/*
 * MQTT subscriptions: shared per-topic readers, fan-out with shared encodings, lagging
 * sessions catching up from the log, outbound QoS 1/2 windows. Shared subscriptions are
 * in mqtt_share.c (they deliver through mqtt_subs_deliver).
 */
#include "adapters/mqtt/mqtt_sub.h"
#include "adapters/mqtt/mqtt_share.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/metrics.h"

#define READ_BATCH 256
#define CATCHUP_BATCH 64
#define CATCHUP_ROUNDS 64
#define MAX_PROPS 64

/* A distinct filter and the sessions subscribed with it. */
struct fnode {
    struct fnode *next;
    char *filter;
    struct mqtt_session **mem;
    uint32_t n, cap;
};

struct rpart {
    struct mqtt_reader *r;           /* the shared reader this partition belongs to */
    int32_t partition;
    struct sl_cursor *cur;
};

struct mqtt_reader {
    struct mqtt_reader *next;
    struct mqtt_subs *m;
    char *topic;
    int32_t n_parts;
    struct rpart *parts;
    struct fnode *filters;           /* filters whose first level is this topic */
};


struct mqtt_subs {
    struct mqtt_broker *b;
    struct mqtt_reader *readers;
    struct fnode *wild;              /* filters starting with + or # */
    struct mqtt_shares sh;           /* $share groups and members (mqtt_share.c) */
    uint64_t stamp;
    struct mqtt_session **targets;
    size_t n_targets, cap_targets;
};

static bool topic_internal(const char *topic)
{
    return strncmp(topic, "__", 2) == 0;
}

static bool filter_wild_first(const char *f)
{
    return (f[0] == '+' || f[0] == '#') && (f[1] == '\0' || f[1] == '/');
}

/* Does the filter's literal first level equal topic? */
static bool filter_first_is(const char *f, const char *topic)
{
    size_t n = strlen(topic);
    return strncmp(f, topic, n) == 0 && (f[n] == '\0' || f[n] == '/');
}

const char *mqtt_reader_topic(const struct mqtt_reader *r)
{
    return r->topic;
}

/* ------------------------------------------------------------- encodings ---- */

static const char *const mapped_headers[] = {
    MQTT_H_QOS, MQTT_H_RETAIN, MQTT_H_RESPONSE_TOPIC, MQTT_H_CORRELATION,
    MQTT_H_PAYLOAD_FORMAT, MQTT_H_EXPIRY, NULL,
};

static bool header_mapped(const char *name)
{
    for (size_t i = 0; mapped_headers[i] != NULL; i++) {
        if (strcmp(name, mapped_headers[i]) == 0) {
            return true;
        }
    }
    return false;
}

void mqtt_enc_init(struct mqtt_enc *e, const struct sl_env *env, const char *fallback_subject)
{
    const struct sl_env_hdr *h;
    memset(e, 0, sizeof(*e));
    e->env = env;
    e->subject = env->subject != NULL ? env->subject : fallback_subject;
    e->msg_qos = 1;       /* events from other protocols were acknowledged durably */
    e->expiry_left = -1;
    h = sl_env_find_header(env, MQTT_H_QOS);
    if (h != NULL && h->value != NULL && h->value->len == 1 && h->value->data[0] >= '0' &&
        h->value->data[0] <= '2') {
        e->msg_qos = (uint8_t)(h->value->data[0] - '0');
    }
    h = sl_env_find_header(env, MQTT_H_RETAIN);
    e->msg_retain = h != NULL && h->value != NULL && h->value->len == 1 &&
                    h->value->data[0] == '1';
    h = sl_env_find_header(env, MQTT_H_EXPIRY);
    if (h != NULL && h->value != NULL) {
        long long secs = strtoll((const char *)h->value->data, NULL, 10);
        int64_t age = (mqtt_now_ms() - env->timestamp_ms) / 1000;
        e->expiry_left = secs - (age > 0 ? age : 0);
    }
}

void mqtt_enc_clear(struct mqtt_enc *e)
{
    for (int v = 0; v < 2; v++) {
        for (int q = 0; q < 2; q++) {
            sl_buf_unref(&e->pkt[v][q]);
        }
    }
}

static struct sl_buf *buf_alloc(size_t len)
{
    struct sl_buf *b = malloc(sizeof(*b) + len + 1);
    if (b != NULL) {
        atomic_init(&b->refs, 1);
        b->len = len;
        b->data[len] = '\0';
    }
    return b;
}

/* Encode the record as a PUBLISH for version v (with a placeholder packet id when
 * with_pid), retain and dup clear. sub_id > 0 adds a subscription identifier (not
 * cached). Returns a new buffer or NULL; *pid_off gets the packet id's offset. */
static struct sl_buf *enc_build(const struct mqtt_enc *e, bool v5, bool with_pid, uint32_t sub_id,
                                size_t *pid_off)
{
    const struct sl_env *env = e->env;
    struct mqtt_packet p;
    struct mqtt_user_prop ups[MAX_PROPS];
    size_t n_up = 0, len;
    struct mqtt_props *pr = &p.u.publish.props;
    struct sl_buf *b;
    uint32_t sid = sub_id;
    int rc;

    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = with_pid ? 1 : 0;
    p.u.publish.packet_id = with_pid ? 1 : 0;
    p.u.publish.topic.ptr = e->subject;
    p.u.publish.topic.len = strlen(e->subject);
    if (env->data != NULL) {
        p.u.publish.payload.ptr = env->data->data;
        p.u.publish.payload.len = env->data->len;
    }
    if (v5) {
        for (size_t i = 0; i < env->n_headers && n_up < MAX_PROPS; i++) {
            const struct sl_env_hdr *h = &env->headers[i];
            if (h->value == NULL || header_mapped(h->name) ||
                !mqtt_utf8_valid((const uint8_t *)h->name, strlen(h->name)) ||
                !mqtt_utf8_valid(h->value->data, h->value->len)) {
                continue;
            }
            ups[n_up].name.ptr = h->name;
            ups[n_up].name.len = strlen(h->name);
            ups[n_up].value.ptr = (const char *)h->value->data;
            ups[n_up].value.len = h->value->len;
            n_up++;
        }
        if (n_up > 0) {
            pr->user.items = ups;
            pr->user.count = n_up;
            mqtt_prop_set(pr, MQTT_PROP_USER);
        }
        if (env->datacontenttype != NULL) {
            pr->content_type.ptr = env->datacontenttype;
            pr->content_type.len = strlen(env->datacontenttype);
            mqtt_prop_set(pr, MQTT_PROP_CONTENT_TYPE);
        }
        const struct sl_env_hdr *h = sl_env_find_header(env, MQTT_H_RESPONSE_TOPIC);
        if (h != NULL && h->value != NULL &&
            mqtt_topic_name_valid((const char *)h->value->data, h->value->len)) {
            pr->response_topic.ptr = (const char *)h->value->data;
            pr->response_topic.len = h->value->len;
            mqtt_prop_set(pr, MQTT_PROP_RESPONSE_TOPIC);
        }
        h = sl_env_find_header(env, MQTT_H_CORRELATION);
        if (h != NULL && h->value != NULL) {
            pr->correlation_data.ptr = h->value->data;
            pr->correlation_data.len = h->value->len;
            mqtt_prop_set(pr, MQTT_PROP_CORRELATION_DATA);
        }
        h = sl_env_find_header(env, MQTT_H_PAYLOAD_FORMAT);
        if (h != NULL && h->value != NULL && h->value->len == 1) {
            pr->payload_format = h->value->data[0] == '1';
            mqtt_prop_set(pr, MQTT_PROP_PAYLOAD_FORMAT);
        }
        if (e->expiry_left >= 0) {
            pr->message_expiry = (uint32_t)(e->expiry_left > 0 ? e->expiry_left : 1);
            mqtt_prop_set(pr, MQTT_PROP_MESSAGE_EXPIRY);
        }
        if (sid > 0) {
            pr->sub_ids.items = &sid;
            pr->sub_ids.count = 1;
            mqtt_prop_set(pr, MQTT_PROP_SUBSCRIPTION_ID);
        }
    }
    len = mqtt_encoded_size(&p, v5 ? MQTT_V5 : MQTT_V311);
    if (len == 0 || (b = buf_alloc(len)) == NULL) {
        return NULL;
    }
    rc = mqtt_encode(&p, v5 ? MQTT_V5 : MQTT_V311, b->data, len);
    if (rc <= 0) {
        sl_buf_unref(&b);
        return NULL;
    }
    b->len = (size_t)rc;
    {
        size_t i = 1;
        while (i < 5 && (b->data[i] & 0x80)) {
            i++;
        }
        *pid_off = i + 1 + 2 + p.u.publish.topic.len;
    }
    return b;
}

static struct sl_buf *enc_get(struct mqtt_enc *e, bool v5, bool with_pid, size_t *pid_off)
{
    if (e->pkt[v5][with_pid] == NULL) {
        e->pkt[v5][with_pid] = enc_build(e, v5, with_pid, 0, &e->pid_off[v5]);
    }
    *pid_off = e->pid_off[v5];
    return e->pkt[v5][with_pid];
}

/* Write pkt (qos bits, dup and retain patched into the first byte) with packet id pid. */
static int write_publish(struct mqtt_session *s, struct sl_buf *pkt, size_t pid_off,
                         uint8_t qos, bool dup, bool retain, uint16_t pid)
{
    uint8_t b0 = (uint8_t)(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0));
    int rc;
    if (qos == 0) {
        if (b0 == pkt->data[0]) {
            return s->t.ops->write_buf(s->t.conn, pkt, 0, pkt->len);
        }
        rc = s->t.ops->write(s->t.conn, &b0, 1);
        return rc != 0 ? rc : s->t.ops->write_buf(s->t.conn, pkt, 1, pkt->len - 1);
    }
    uint8_t stack[256];
    uint8_t *h = pid_off + 2 <= sizeof(stack) ? stack : malloc(pid_off + 2);
    if (h == NULL) {
        return -ENOMEM;
    }
    memcpy(h, pkt->data, pid_off);
    h[0] = b0;
    h[pid_off] = (uint8_t)(pid >> 8);
    h[pid_off + 1] = (uint8_t)pid;
    rc = s->t.ops->write(s->t.conn, h, pid_off + 2);
    if (h != stack) {
        free(h);
    }
    if (rc == 0 && pkt->len > pid_off + 2) {
        rc = s->t.ops->write_buf(s->t.conn, pkt, pid_off + 2, pkt->len - pid_off - 2);
    }
    return rc;
}

/*
 * Write a new (not resent) PUBLISH to s: pkt as write_publish() does, or, when s takes
 * outbound topic aliases, with an alias for topic (the pkt's topic): the head rewritten
 * per client, the rest of pkt by reference. The window keeps pkt itself (full topic), so
 * a resend on a later connection never depends on this connection's aliases.
 */
#define ALIAS_COPY_MAX 512   /* a whole aliased PUBLISH up to this size: one copied write */

static int write_new(struct mqtt_session *s, struct sl_buf *pkt, size_t pid_off, uint8_t qos,
                     bool retain, uint16_t pid, const char *topic)
{
    uint8_t stack[ALIAS_COPY_MAX], *h = stack;
    size_t hlen, tail = 0, hpid = 0;
    enum mqtt_alias_use use;
    uint16_t alias;
    int rc;

    if (s->alias_out.max == 0 ||
        (use = mqtt_alias_out_get(&s->alias_out, topic, strlen(topic), &alias)) ==
            MQTT_ALIAS_NONE) {
        return write_publish(s, pkt, pid_off, qos, false, retain, pid);
    }
    hlen = mqtt_publish_alias_head(pkt->data, pkt->len, qos > 0, alias, use == MQTT_ALIAS_ASSIGN,
                                   h, sizeof(stack), &tail, &hpid);
    if (hlen > sizeof(stack)) {
        h = malloc(hlen);
        hlen = h == NULL ? 0
                         : mqtt_publish_alias_head(pkt->data, pkt->len, qos > 0, alias,
                                                   use == MQTT_ALIAS_ASSIGN, h, hlen, &tail,
                                                   &hpid);
    }
    if (hlen == 0 ||
        (s->max_packet_out != 0 && hlen + pkt->len - tail > s->max_packet_out)) {
        /* cannot carry the alias (an assignment over the client's size limit): plain */
        if (use == MQTT_ALIAS_ASSIGN) {
            mqtt_alias_out_forget(&s->alias_out, alias);
        }
        if (h != stack) {
            free(h);
        }
        return write_publish(s, pkt, pid_off, qos, false, retain, pid);
    }
    h[0] = (uint8_t)(0x30 | (qos << 1) | (retain ? 1 : 0));
    if (qos > 0) {
        h[hpid] = (uint8_t)(pid >> 8);
        h[hpid + 1] = (uint8_t)pid;
    }
    if (h == stack && hlen + pkt->len - tail <= sizeof(stack)) {
        /* small: copying beats a second, by-reference write */
        memcpy(h + hlen, pkt->data + tail, pkt->len - tail);
        rc = s->t.ops->write(s->t.conn, h, hlen + pkt->len - tail);
        tail = pkt->len;
    } else {
        rc = s->t.ops->write(s->t.conn, h, hlen);
    }
    if (h != stack) {
        free(h);
    }
    if (rc == 0 && pkt->len > tail) {
        rc = s->t.ops->write_buf(s->t.conn, pkt, tail, pkt->len - tail);
    }
    if (rc != 0 && use == MQTT_ALIAS_ASSIGN) {
        mqtt_alias_out_forget(&s->alias_out, alias);
    }
    return rc;
}

static int out_add(struct mqtt_session *s, const struct mqtt_out *o)
{
    if (s->n_out == s->cap_out) {
        uint16_t cap = s->cap_out ? (uint16_t)(s->cap_out * 2) : 4;
        struct mqtt_out *n;
        if (cap < s->cap_out) {
            return -ENOSPC;
        }
        n = realloc(s->out, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        s->out = n;
        s->cap_out = cap;
    }
    s->out[s->n_out++] = *o;
    return 0;
}

/* The source attribute sluice gives events published by this client (no-local). */
static bool from_self(const struct mqtt_session *s, const struct sl_env *env)
{
    return env->source != NULL && s->client_id != NULL &&
           strncmp(env->source, "/sluice/mqtt/", 13) == 0 &&
           strcmp(env->source + 13, s->client_id) == 0;
}

bool mqtt_subs_can_take(struct mqtt_session *s, uint8_t qos)
{
    if (!s->connected || s->state != MQTT_S_ACTIVE) {
        return false;
    }
    if (s->t.ops->pending(s->t.conn) >= s->b->lim.high_water) {
        s->output_paused = true;
        return false;
    }
    return qos == 0 || s->n_out < s->send_quota_max;
}

/*
 * Deliver one record to s at qos. Returns 0 (sent or deliberately skipped), or -EAGAIN
 * when the session cannot take it now (the caller makes the session lag there).
 */
int mqtt_subs_deliver(struct mqtt_session *s, struct mqtt_enc *e, uint8_t qos, bool retain,
                      uint32_t sub_id, struct mqtt_reader *r, int32_t partition, int64_t offset)
{
    struct sl_buf *pkt, *own = NULL;
    size_t pid_off = 0;
    bool v5 = s->version == MQTT_V5;
    int rc;

    if (e->expiry_left == 0 || (e->expiry_left < 0 && e->expiry_left != -1)) {
        sl_metric_add(s->b->m_dropped, 1);
        return 0;
    }
    if (!mqtt_subs_can_take(s, qos)) {
        return -EAGAIN;
    }
    if (sub_id > 0 && v5) {
        own = enc_build(e, true, qos > 0, sub_id, &pid_off);
        pkt = own;
    } else {
        pkt = enc_get(e, v5, qos > 0, &pid_off);
    }
    if (pkt == NULL || (s->max_packet_out != 0 && pkt->len > s->max_packet_out)) {
        sl_metric_add(s->b->m_dropped, 1);   /* too large for this client: skipped */
        sl_buf_unref(&own);
        return 0;
    }
    if (qos == 0) {
        rc = write_new(s, pkt, pid_off, 0, retain, 0, e->subject);
    } else {
        struct mqtt_out o = {
            .packet_id = mqtt_session_pid(s), .qos = qos,
            .state = qos == 1 ? MQTT_OUT_WAIT_ACK : MQTT_OUT_WAIT_REC,
            .reader = r, .partition = partition, .offset = offset,
            .pkt = sl_buf_ref(pkt), .pid_off = pid_off,
        };
        if (o.packet_id == 0 || out_add(s, &o) != 0) {
            sl_buf_unref(&o.pkt);
            sl_buf_unref(&own);
            return -EAGAIN;
        }
        rc = write_new(s, pkt, pid_off, qos, retain, o.packet_id, e->subject);
        s->dirty = true;
    }
    sl_buf_unref(&own);
    if (rc == 0) {
        sl_metric_add(s->b->m_out, 1);
    }
    return 0;
}

/* The QoS of the best subscription of s matching subject (non-shared), or -1. */
static int best_match(const struct mqtt_session *s, const char *subject, const struct mqtt_enc *e,
                      uint32_t *sub_id, bool *retain)
{
    int best = -1;
    *sub_id = 0;
    *retain = false;
    for (uint32_t i = 0; i < s->n_subs; i++) {
        const struct mqtt_sub_entry *se = &s->subs[i];
        if (se->share_group != NULL ||
            !mqtt_filter_match(se->filter, strlen(se->filter), subject, strlen(subject))) {
            continue;
        }
        if (se->no_local && from_self(s, e->env)) {
            continue;
        }
        if ((int)se->qos > best) {
            best = se->qos;
        }
        if (se->sub_id > *sub_id) {
            *sub_id = se->sub_id;
        }
        if (se->rap && e->msg_retain) {
            *retain = true;
        }
    }
    return best;
}

/* ------------------------------------------------------------ positions ---- */

static struct mqtt_tp *find_tp(struct mqtt_session *s, const struct mqtt_reader *r, int32_t p)
{
    for (uint32_t i = 0; i < s->n_tps; i++) {
        if (s->tps[i].reader == r && s->tps[i].partition == p) {
            return &s->tps[i];
        }
    }
    return NULL;
}

static int ensure_tps(struct mqtt_session *s, struct mqtt_reader *r, int64_t lag)
{
    for (int32_t p = 0; p < r->n_parts; p++) {
        if (find_tp(s, r, p) != NULL) {
            continue;
        }
        if (s->n_tps == s->cap_tps) {
            uint32_t cap = s->cap_tps ? s->cap_tps * 2 : 4;
            struct mqtt_tp *n = realloc(s->tps, cap * sizeof(*n));
            if (n == NULL) {
                return -ENOMEM;
            }
            s->tps = n;
            s->cap_tps = cap;
        }
        s->tps[s->n_tps].reader = r;
        s->tps[s->n_tps].partition = p;
        s->tps[s->n_tps].lag_from = s->connected ? lag
                                                 : sl_cursor_position(r->parts[p].cur);
        s->n_tps++;
    }
    return 0;
}

static bool covers(const struct mqtt_session *s, const struct mqtt_reader *r)
{
    for (uint32_t i = 0; i < s->n_subs; i++) {
        const struct mqtt_sub_entry *e = &s->subs[i];
        if (e->share_group != NULL) {
            continue;
        }
        if (filter_wild_first(e->filter) ? !topic_internal(r->topic)
                                         : filter_first_is(e->filter, r->topic)) {
            return true;
        }
    }
    return false;
}

static void drop_uncovered_tps(struct mqtt_session *s)
{
    for (uint32_t i = 0; i < s->n_tps;) {
        if (!covers(s, s->tps[i].reader)) {
            s->tps[i] = s->tps[--s->n_tps];
        } else {
            i++;
        }
    }
}

/* --------------------------------------------------------------- readers ---- */

static void reader_wake(struct sl_cursor *cur, void *arg);

static void fnode_free(struct fnode *f)
{
    free(f->filter);
    free(f->mem);
    free(f);
}

static struct mqtt_reader *reader_find(struct mqtt_subs *m, const char *topic)
{
    for (struct mqtt_reader *r = m->readers; r != NULL; r = r->next) {
        if (strcmp(r->topic, topic) == 0) {
            return r;
        }
    }
    return NULL;
}

static struct mqtt_reader *reader_get(struct mqtt_subs *m, const char *topic, bool earliest)
{
    struct mqtt_reader *r = reader_find(m, topic);
    struct sl_log *log = m->b->gw->log;
    struct sl_start st = {.kind = earliest ? SL_START_EARLIEST : SL_START_LATEST};
    int err = 0;
    int32_t n;

    if (r != NULL) {
        return r;
    }
    if (!sl_log_topic_name_valid(topic)) {
        return NULL;
    }
    n = sl_log_partitions(log, topic);
    if (n < 0) {
        struct sl_cursor *c = sl_cursor_open(log, topic, 0, st, NULL, NULL, &err);
        if (c == NULL) {
            return NULL;
        }
        sl_cursor_close(&c);
        n = sl_log_partitions(log, topic);
        if (n <= 0) {
            return NULL;
        }
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->topic = strdup(topic)) == NULL ||
        (r->parts = calloc((size_t)n, sizeof(*r->parts))) == NULL) {
        if (r != NULL) {
            free(r->topic);
        }
        free(r);
        return NULL;
    }
    r->m = m;
    r->n_parts = n;
    for (int32_t p = 0; p < n; p++) {
        r->parts[p].r = r;
        r->parts[p].partition = p;
        r->parts[p].cur = sl_cursor_open(log, topic, p, st, reader_wake, &r->parts[p], &err);
    }
    r->next = m->readers;
    m->readers = r;
    return r;
}

static void reader_free(struct mqtt_reader *r)
{
    for (int32_t p = 0; p < r->n_parts; p++) {
        sl_cursor_close(&r->parts[p].cur);
    }
    while (r->filters != NULL) {
        struct fnode *f = r->filters;
        r->filters = f->next;
        fnode_free(f);
    }
    free(r->parts);
    free(r->topic);
    free(r);
}

static int fnode_add(struct fnode **list, const char *filter, struct mqtt_session *s)
{
    struct fnode *f;
    for (f = *list; f != NULL; f = f->next) {
        if (strcmp(f->filter, filter) == 0) {
            break;
        }
    }
    if (f == NULL) {
        f = calloc(1, sizeof(*f));
        if (f == NULL || (f->filter = strdup(filter)) == NULL) {
            free(f);
            return -ENOMEM;
        }
        f->next = *list;
        *list = f;
    }
    for (uint32_t i = 0; i < f->n; i++) {
        if (f->mem[i] == s) {
            return 0;
        }
    }
    if (f->n == f->cap) {
        uint32_t cap = f->cap ? f->cap * 2 : 4;
        struct mqtt_session **n = realloc(f->mem, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        f->mem = n;
        f->cap = cap;
    }
    f->mem[f->n++] = s;
    return 0;
}

static void fnode_del(struct fnode **list, const char *filter, struct mqtt_session *s)
{
    for (struct fnode **pf = list; *pf != NULL; pf = &(*pf)->next) {
        struct fnode *f = *pf;
        if (strcmp(f->filter, filter) != 0) {
            continue;
        }
        for (uint32_t i = 0; i < f->n; i++) {
            if (f->mem[i] == s) {
                f->mem[i] = f->mem[--f->n];
                break;
            }
        }
        if (f->n == 0) {
            *pf = f->next;
            fnode_free(f);
        }
        return;
    }
}

static int push_target(struct mqtt_subs *m, struct mqtt_session *s)
{
    if (m->n_targets == m->cap_targets) {
        size_t cap = m->cap_targets ? m->cap_targets * 2 : 64;
        struct mqtt_session **n = realloc(m->targets, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        m->targets = n;
        m->cap_targets = cap;
    }
    m->targets[m->n_targets++] = s;
    return 0;
}

static void collect(struct mqtt_subs *m, struct fnode *list, const char *subject, size_t slen,
                    uint64_t stamp)
{
    for (struct fnode *f = list; f != NULL; f = f->next) {
        if (!mqtt_filter_match(f->filter, strlen(f->filter), subject, slen)) {
            continue;
        }
        for (uint32_t i = 0; i < f->n; i++) {
            struct mqtt_session *s = f->mem[i];
            if (s->stamp != stamp) {
                s->stamp = stamp;
                push_target(m, s);
            }
        }
    }
}

/* The shared reader: one decode per record, every matching session. */
static int reader_record(void *arg, const char *topic, int32_t partition,
                         const struct sl_record *rec)
{
    struct rpart *rp = arg;
    struct mqtt_reader *r = rp->r;
    struct mqtt_subs *m = r->m;
    struct sl_env *env;
    struct mqtt_enc e;
    size_t slen;
    uint64_t stamp;

    if (r->filters == NULL && (m->wild == NULL || topic_internal(topic))) {
        return 0;
    }
    env = sl_env_from_record(rec, partition);
    if (env == NULL) {
        sl_metric_add(m->b->m_dropped, 1);
        return 0;
    }
    mqtt_enc_init(&e, env, topic);
    slen = strlen(e.subject);
    stamp = ++m->stamp;
    m->n_targets = 0;
    collect(m, r->filters, e.subject, slen, stamp);
    if (!topic_internal(topic)) {
        collect(m, m->wild, e.subject, slen, stamp);
    }
    for (size_t i = 0; i < m->n_targets; i++) {
        struct mqtt_session *s = m->targets[i];
        struct mqtt_tp *tp = find_tp(s, r, partition);
        uint32_t sub_id;
        bool retain;
        int q;

        if (tp == NULL || tp->lag_from >= 0) {
            continue;    /* lagging: it reads this record itself later */
        }
        q = best_match(s, e.subject, &e, &sub_id, &retain);
        if (q < 0) {
            continue;
        }
        if (q > e.msg_qos) {
            q = e.msg_qos;
        }
        if (mqtt_subs_deliver(s, &e, (uint8_t)q, retain, sub_id, r, partition, rec->offset) ==
            -EAGAIN) {
            tp->lag_from = rec->offset;
            sl_metric_add(m->b->m_lagging, 1);
        }
    }
    mqtt_enc_clear(&e);
    sl_env_unref(&env);
    return 0;
}

static void reader_wake(struct sl_cursor *cur, void *arg)
{
    /* Bounded by the high watermark at this moment: nothing is appended meanwhile. */
    while (sl_cursor_poll(cur, READ_BATCH, 0, reader_record, arg) > 0) {
    }
}

/* -------------------------------------------------------------- catch-up ---- */

struct catchup {
    struct mqtt_session *s;
    struct mqtt_reader *r;
    int64_t next;
    int64_t stop_at;
    bool blocked;
    bool past;
};

static int catchup_record(void *arg, const char *topic, int32_t partition,
                          const struct sl_record *rec)
{
    struct catchup *c = arg;
    struct sl_env *env;
    struct mqtt_enc e;
    uint32_t sub_id;
    bool retain;
    int q;

    if (rec->offset >= c->stop_at) {
        c->past = true;
        return 1;
    }
    env = sl_env_from_record(rec, partition);
    if (env == NULL) {
        c->next = rec->offset + 1;
        return 0;
    }
    mqtt_enc_init(&e, env, topic);
    q = best_match(c->s, e.subject, &e, &sub_id, &retain);
    if (q >= 0) {
        if (q > e.msg_qos) {
            q = e.msg_qos;
        }
        if (mqtt_subs_deliver(c->s, &e, (uint8_t)q, retain, sub_id, c->r, partition,
                              rec->offset) == -EAGAIN) {
            c->blocked = true;
            mqtt_enc_clear(&e);
            sl_env_unref(&env);
            return 1;
        }
    }
    c->next = rec->offset + 1;
    mqtt_enc_clear(&e);
    sl_env_unref(&env);
    return 0;
}

void mqtt_subs_kick(struct mqtt_session *s)
{
    struct sl_log *log = s->b->gw->log;

    if (!s->connected || s->state != MQTT_S_ACTIVE) {
        return;
    }
    s->output_paused = false;
    if (s->b->subs->sh.members != NULL) {
        mqtt_share_kick(&s->b->subs->sh, s);
    }
    for (uint32_t i = 0; i < s->n_tps; i++) {
        struct mqtt_tp *tp = &s->tps[i];
        struct mqtt_reader *r = tp->reader;
        int rounds = 0;

        while (tp->lag_from >= 0 && rounds++ < CATCHUP_ROUNDS) {
            struct catchup c = {.s = s, .r = r, .next = tp->lag_from};
            int64_t next_off = 0;
            int n;
            c.stop_at = sl_cursor_position(r->parts[tp->partition].cur);
            if (tp->lag_from >= c.stop_at) {
                tp->lag_from = -1;       /* caught up: the shared reader takes over */
                break;
            }
            n = sl_log_read(log, r->topic, tp->partition, tp->lag_from, CATCHUP_BATCH, 0,
                            catchup_record, &c, &next_off);
            if (n <= 0) {
                tp->lag_from = n == 0 ? -1 : tp->lag_from;
                break;
            }
            if (!c.blocked && !c.past && next_off > c.next) {
                c.next = next_off;
            }
            tp->lag_from = c.next;
            s->dirty = true;
            if (c.blocked) {
                return;
            }
        }
    }
}

/* --------------------------------------------------------- subscriptions ---- */

static int topic_cb_collect(void *arg, const char *topic, const struct sl_topic_config *cfg,
                            const struct sl_partition_info *parts, int32_t n_parts)
{
    struct mqtt_subs *m = arg;
    (void)cfg;
    (void)parts;
    (void)n_parts;
    if (!topic_internal(topic) && reader_find(m, topic) == NULL) {
        struct mqtt_reader *r = reader_get(m, topic, true);
        if (r != NULL) {
            /* every session with a wildcard subscription covers it, from the start */
            for (struct fnode *f = m->wild; f != NULL; f = f->next) {
                for (uint32_t i = 0; i < f->n; i++) {
                    ensure_tps(f->mem[i], r, -1);
                }
            }
        }
    }
    return 0;
}

void mqtt_subs_topic_seen(struct mqtt_subs *m, const char *topic)
{
    if (m->wild != NULL && topic[0] != '\0' && reader_find(m, topic) == NULL) {
        topic_cb_collect(m, topic, NULL, NULL, 0);
    }
}

void mqtt_subs_discover(struct mqtt_subs *m)
{
    if (m->wild != NULL) {
        sl_log_foreach_topic(m->b->gw->log, topic_cb_collect, m);
    }
}

static int64_t start_offset(struct sl_log *log, const char *topic, int32_t p,
                            const struct sl_start *from)
{
    switch (from->kind) {
    case SL_START_EARLIEST: return 0;
    case SL_START_OFFSET: return from->value;
    case SL_START_TIME: {
        int64_t o = sl_log_offset_for_time(log, topic, p, from->value);
        return o < 0 ? 0 : o;
    }
    default: return -1;
    }
}

static void apply_from(struct mqtt_session *s, struct mqtt_reader *r, const struct sl_start *from)
{
    if (from == NULL || from->kind == SL_START_LATEST) {
        return;
    }
    for (int32_t p = 0; p < r->n_parts; p++) {
        struct mqtt_tp *tp = find_tp(s, r, p);
        int64_t o = start_offset(s->b->gw->log, r->topic, p, from);
        if (tp != NULL && o >= 0 && (tp->lag_from < 0 || o < tp->lag_from)) {
            tp->lag_from = o;
        }
    }
}

/* A $share subscription: join the group on the topic of its first level. */
static int share_add(struct mqtt_subs *m, struct mqtt_session *s, struct mqtt_sub_entry *e)
{
    char topic[256];
    size_t n = strcspn(e->filter, "/");
    if (filter_wild_first(e->filter)) {
        return -ENOTSUP;   /* a group per topic would be needed for every topic */
    }
    if (n >= sizeof(topic)) {
        return -EINVAL;
    }
    memcpy(topic, e->filter, n);
    topic[n] = '\0';
    if (!sl_log_topic_name_valid(topic)) {
        return -EINVAL;
    }
    if (sl_log_partitions(m->b->gw->log, topic) < 0 && reader_get(m, topic, false) == NULL) {
        return -ENOENT;
    }
    return mqtt_share_join(&m->sh, s, e, topic);
}

struct wild_add {
    struct mqtt_session *s;
    const struct sl_start *from;
};

int mqtt_subs_add(struct mqtt_subs *m, struct mqtt_session *s, uint32_t i,
                  const struct sl_start *from)
{
    struct mqtt_sub_entry *e = &s->subs[i];
    int rc;

    if (e->share_group != NULL) {
        return share_add(m, s, e);
    }
    if (filter_wild_first(e->filter)) {
        rc = fnode_add(&m->wild, e->filter, s);
        if (rc != 0) {
            return rc;
        }
        mqtt_subs_discover(m);
        for (struct mqtt_reader *r = m->readers; r != NULL; r = r->next) {
            if (!topic_internal(r->topic)) {
                ensure_tps(s, r, -1);
                apply_from(s, r, from);
            }
        }
    } else {
        char topic[256];
        size_t n = strcspn(e->filter, "/");
        struct mqtt_reader *r;
        if (n >= sizeof(topic)) {
            return 0;    /* cannot be a log topic: matches nothing */
        }
        memcpy(topic, e->filter, n);
        topic[n] = '\0';
        if (topic_internal(topic) || !sl_log_topic_name_valid(topic)) {
            return 0;
        }
        r = reader_get(m, topic, false);
        if (r == NULL) {
            return 0;
        }
        rc = fnode_add(&r->filters, e->filter, s);
        if (rc != 0) {
            return rc;
        }
        ensure_tps(s, r, -1);
        apply_from(s, r, from);
    }
    if (from != NULL && from->kind != SL_START_LATEST) {
        mqtt_subs_kick(s);
    }
    return 0;
}

static void unlink_filter(struct mqtt_subs *m, struct mqtt_session *s, const char *filter)
{
    if (filter_wild_first(filter)) {
        fnode_del(&m->wild, filter, s);
    } else {
        for (struct mqtt_reader *r = m->readers; r != NULL; r = r->next) {
            if (filter_first_is(filter, r->topic)) {
                fnode_del(&r->filters, filter, s);
            }
        }
    }
}

void mqtt_subs_remove(struct mqtt_subs *m, struct mqtt_session *s, uint32_t i)
{
    struct mqtt_sub_entry *e = &s->subs[i];
    char *saved;

    if (e->share_group != NULL) {
        mqtt_share_remove(&m->sh, s, e->share_group, e->filter);
        return;
    }
    unlink_filter(m, s, e->filter);
    /* the entry is going: recompute coverage without it */
    saved = e->filter;
    e->share_group = (char *)"";   /* temporarily excluded from covers() */
    drop_uncovered_tps(s);
    e->share_group = NULL;
    e->filter = saved;
}

void mqtt_subs_session_gone(struct mqtt_subs *m, struct mqtt_session *s)
{
    for (uint32_t i = 0; i < s->n_subs; i++) {
        if (s->subs[i].share_group != NULL) {
            mqtt_share_remove(&m->sh, s, s->subs[i].share_group, s->subs[i].filter);
        } else {
            unlink_filter(m, s, s->subs[i].filter);
        }
    }
    s->n_tps = 0;
    for (uint16_t i = 0; i < s->n_out; i++) {
        sl_buf_unref(&s->out[i].pkt);
    }
    s->n_out = 0;
}

void mqtt_subs_offline(struct mqtt_session *s)
{
    if (s->b->subs->sh.members != NULL) {
        mqtt_share_offline(&s->b->subs->sh, s);
    }
    for (uint32_t i = 0; i < s->n_tps; i++) {
        struct mqtt_tp *tp = &s->tps[i];
        if (tp->lag_from < 0) {
            tp->lag_from = sl_cursor_position(tp->reader->parts[tp->partition].cur);
        }
    }
}

static int resend(struct mqtt_session *s, struct mqtt_out *o);

void mqtt_subs_resume(struct mqtt_session *s)
{
    for (uint16_t i = 0; i < s->n_out; i++) {
        resend(s, &s->out[i]);
    }
    mqtt_subs_kick(s);
}

/* ------------------------------------------------------------ outbound acks ---- */

struct reread {
    struct mqtt_session *s;
    struct mqtt_out *o;
    int rc;
};

static int reread_record(void *arg, const char *topic, int32_t partition,
                         const struct sl_record *rec)
{
    struct reread *rr = arg;
    struct sl_env *env;
    struct mqtt_enc e;
    (void)partition;
    if (rec->offset != rr->o->offset) {
        return 1;
    }
    env = sl_env_from_record(rec, partition);
    if (env == NULL) {
        return 1;
    }
    mqtt_enc_init(&e, env, topic);
    e.expiry_left = -1;
    rr->o->pkt = enc_build(&e, rr->s->version == MQTT_V5, true, 0, &rr->o->pid_off);
    rr->rc = rr->o->pkt != NULL ? 0 : -ENOMEM;
    sl_env_unref(&env);
    return 1;
}

static int resend(struct mqtt_session *s, struct mqtt_out *o)
{
    if (o->state == MQTT_OUT_WAIT_COMP) {
        struct mqtt_packet p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_PUBREL;
        p.u.ack.packet_id = o->packet_id;
        return mqtt_session_send(s, &p);
    }
    if (o->pkt == NULL && o->reader != NULL) {
        struct reread rr = {.s = s, .o = o, .rc = -ENOENT};
        int64_t next;
        sl_log_read(s->b->gw->log, o->reader->topic, o->partition, o->offset, 1, 0,
                    reread_record, &rr, &next);
        if (rr.rc != 0) {
            return rr.rc;
        }
    }
    if (o->pkt == NULL) {
        return -ENOENT;
    }
    return write_publish(s, o->pkt, o->pid_off, o->qos, true, false, o->packet_id);
}

void mqtt_subs_ack(struct mqtt_session *s, enum mqtt_type type, uint16_t pid, uint8_t reason)
{
    for (uint16_t i = 0; i < s->n_out; i++) {
        struct mqtt_out *o = &s->out[i];
        bool done = false;
        if (o->packet_id != pid) {
            continue;
        }
        if (type == MQTT_PUBACK && o->state == MQTT_OUT_WAIT_ACK) {
            done = true;
        } else if (type == MQTT_PUBREC && o->state == MQTT_OUT_WAIT_REC) {
            if (reason >= 0x80) {
                done = true;
            } else {
                struct mqtt_packet p;
                o->state = MQTT_OUT_WAIT_COMP;
                sl_buf_unref(&o->pkt);
                memset(&p, 0, sizeof(p));
                p.type = MQTT_PUBREL;
                p.u.ack.packet_id = pid;
                mqtt_session_send(s, &p);
            }
        } else if (type == MQTT_PUBREC && o->state == MQTT_OUT_WAIT_COMP) {
            struct mqtt_packet p;
            memset(&p, 0, sizeof(p));
            p.type = MQTT_PUBREL;
            p.u.ack.packet_id = pid;
            mqtt_session_send(s, &p);
        } else if (type == MQTT_PUBCOMP && o->state == MQTT_OUT_WAIT_COMP) {
            done = true;
        }
        if (done) {
            if (o->share != NULL) {
                mqtt_share_acked(o);
            }
            sl_buf_unref(&o->pkt);
            /* Keep the window in send order: shift (windows are small). */
            memmove(o, o + 1, (size_t)(s->n_out - i - 1) * sizeof(*o));
            s->n_out--;
            s->dirty = true;
            mqtt_subs_kick(s);
        }
        return;
    }
}

int mqtt_subs_send_retained(struct mqtt_session *s, const struct sl_env *env, uint8_t qos,
                            uint32_t sub_id)
{
    struct mqtt_enc e;
    int rc;
    mqtt_enc_init(&e, env, env->subject != NULL ? env->subject : "");
    if (qos > e.msg_qos) {
        qos = e.msg_qos;
    }
    /* retained messages bypass the lag logic: best effort within the window */
    if (!s->connected) {
        mqtt_enc_clear(&e);
        return -EAGAIN;
    }
    if (qos > 0 && s->n_out >= s->send_quota_max) {
        qos = 0;
    }
    {
        struct sl_buf *pkt, *own = NULL;
        size_t pid_off = 0;
        bool v5 = s->version == MQTT_V5;
        if (sub_id > 0 && v5) {
            own = enc_build(&e, true, qos > 0, sub_id, &pid_off);
            pkt = own;
        } else {
            pkt = enc_get(&e, v5, qos > 0, &pid_off);
        }
        if (pkt == NULL) {
            mqtt_enc_clear(&e);
            return -ENOMEM;
        }
        if (qos == 0) {
            rc = write_new(s, pkt, pid_off, 0, true, 0, e.subject);
        } else {
            struct mqtt_out o = {
                .packet_id = mqtt_session_pid(s), .qos = qos,
                .state = qos == 1 ? MQTT_OUT_WAIT_ACK : MQTT_OUT_WAIT_REC,
                .reader = NULL, .partition = -1, .offset = -1,
                .pkt = sl_buf_ref(pkt), .pid_off = pid_off,
            };
            rc = out_add(s, &o);
            if (rc == 0) {
                rc = write_new(s, pkt, pid_off, qos, true, o.packet_id, e.subject);
            } else {
                sl_buf_unref(&o.pkt);
            }
        }
        sl_buf_unref(&own);
    }
    mqtt_enc_clear(&e);
    return rc;
}


/* ------------------------------------------------------------------ store ---- */

int mqtt_subs_restore_out(struct mqtt_session *s, const char *topic, int32_t partition,
                          int64_t offset, uint16_t pid, uint8_t qos, uint8_t state)
{
    struct mqtt_reader *r = topic != NULL ? reader_get(s->b->subs, topic, false) : NULL;
    struct mqtt_out o = {
        .packet_id = pid, .qos = qos, .state = state, .reader = r,
        .partition = partition, .offset = offset,
    };
    if (r == NULL && state != MQTT_OUT_WAIT_COMP) {
        return -ENOENT;
    }
    return out_add(s, &o);
}

int mqtt_subs_restore_pos(struct mqtt_session *s, const char *topic, int32_t partition,
                          int64_t offset)
{
    struct mqtt_reader *r = reader_get(s->b->subs, topic, false);
    struct mqtt_tp *tp;
    if (r == NULL || partition < 0 || partition >= r->n_parts) {
        return -ENOENT;
    }
    if (ensure_tps(s, r, -1) != 0) {
        return -ENOMEM;
    }
    tp = find_tp(s, r, partition);
    if (tp != NULL) {
        tp->lag_from = offset;
    }
    return 0;
}

void mqtt_subs_positions(struct mqtt_session *s, mqtt_pos_fn fn, void *arg)
{
    for (uint32_t i = 0; i < s->n_tps; i++) {
        const struct mqtt_tp *tp = &s->tps[i];
        int64_t next = tp->lag_from >= 0
                           ? tp->lag_from
                           : sl_cursor_position(tp->reader->parts[tp->partition].cur);
        fn(arg, tp->reader->topic, tp->partition, next);
    }
}

/* ---------------------------------------------------------------- lifetime ---- */

struct mqtt_subs *mqtt_subs_new(struct mqtt_broker *b)
{
    struct mqtt_subs *m = calloc(1, sizeof(*m));
    if (m != NULL) {
        m->b = b;
        mqtt_share_init(&m->sh, b);
    }
    return m;
}

void mqtt_subs_free(struct mqtt_subs **pm)
{
    struct mqtt_subs *m;
    if (pm == NULL || *pm == NULL) {
        return;
    }
    m = *pm;
    mqtt_share_fini(&m->sh);
    while (m->readers != NULL) {
        struct mqtt_reader *r = m->readers;
        m->readers = r->next;
        reader_free(r);
    }
    while (m->wild != NULL) {
        struct fnode *f = m->wild;
        m->wild = f->next;
        fnode_free(f);
    }
    free(m->targets);
    free(m);
    *pm = NULL;
}

void mqtt_subs_commit(struct mqtt_subs *m)
{
    mqtt_share_commit(&m->sh);
}

/*
 * The MQTT bridge: paho MQTTAsync client, ingress through the routing table, egress
 * from log cursors. See mqtt_bridge.h for the delivery guarantees and the threads.
 * Message <-> envelope conversions are in mqtt_bridge_env.c.
 */
#include "adapters/mqtt/mqtt_bridge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- pure helpers (also in fuzz builds) ---- */

int mqtt_bridge_url(const char *url, char *out, size_t outsz, bool *tls)
{
    static const struct {
        const char *from, *to;
        bool tls;
    } map[] = {
        {"mqtt://", "tcp://", false}, {"mqtts://", "ssl://", true},
        {"tcp://", "tcp://", false},  {"ssl://", "ssl://", true},
        {"ws://", "ws://", false},    {"wss://", "wss://", true},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        size_t fl = strlen(map[i].from);
        if (strncmp(url, map[i].from, fl) == 0) {
            size_t tl = strlen(map[i].to), rl = strlen(url + fl);
            if (rl == 0 || url[fl] == '/' || url[fl] == ':') {
                return -EINVAL;
            }
            if (tl + rl + 1 > outsz) {
                return -ENOSPC;
            }
            memcpy(out, map[i].to, tl);
            memcpy(out + tl, url + fl, rl + 1);
            if (tls != NULL) {
                *tls = map[i].tls;
            }
            return 0;
        }
    }
    return -EINVAL;
}

int mqtt_bridge_window_init(struct mqtt_bridge_window *w, size_t cap, int64_t start)
{
    memset(w, 0, sizeof(*w));
    if (cap == 0) {
        return -EINVAL;
    }
    w->offset = calloc(cap, sizeof(*w->offset));
    w->pending = calloc(cap, sizeof(*w->pending));
    if (w->offset == NULL || w->pending == NULL) {
        mqtt_bridge_window_free(w);
        return -ENOMEM;
    }
    w->cap = cap;
    w->acked = start;
    return 0;
}

void mqtt_bridge_window_free(struct mqtt_bridge_window *w)
{
    if (w == NULL) {
        return;
    }
    free(w->offset);
    free(w->pending);
    w->offset = NULL;
    w->pending = NULL;
    w->cap = w->count = w->head = 0;
}

bool mqtt_bridge_window_full(const struct mqtt_bridge_window *w)
{
    return w->count >= w->cap;
}

/* Drop the confirmed records at the head; acked follows them. */
static void window_advance(struct mqtt_bridge_window *w)
{
    while (w->count > 0 && w->pending[w->head] == 0) {
        w->acked = w->offset[w->head] + 1;
        w->head = (w->head + 1) % w->cap;
        w->count--;
    }
}

int mqtt_bridge_window_push(struct mqtt_bridge_window *w, int64_t offset, uint32_t sends)
{
    size_t i;

    if (w->count == 0 && sends == 0) {
        if (offset + 1 > w->acked) {
            w->acked = offset + 1;
        }
        return 0;
    }
    if (mqtt_bridge_window_full(w)) {
        return -ENOSPC;
    }
    i = (w->head + w->count) % w->cap;
    w->offset[i] = offset;
    w->pending[i] = sends;
    w->count++;
    window_advance(w);
    return 0;
}

bool mqtt_bridge_window_ack(struct mqtt_bridge_window *w, int64_t offset)
{
    for (size_t k = 0; k < w->count; k++) {
        size_t i = (w->head + k) % w->cap;
        if (w->offset[i] == offset) {
            if (w->pending[i] == 0) {
                return false;
            }
            w->pending[i]--;
            window_advance(w);
            return true;
        }
        if (w->offset[i] > offset) {
            break;
        }
    }
    return false;
}

void mqtt_bridge_window_reset(struct mqtt_bridge_window *w)
{
    w->head = 0;
    w->count = 0;
}


#include <MQTTAsync.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "adapters/mqtt/mqtt_bridge_env.h"
#include "adapters/mqtt/mqtt_codec.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/mailbox.h"
#include "gateway/metrics.h"
#include "routing/route.h"

#define COMMIT_EVERY_MS 200
#define RETRY_SEND_MS 1000
#define POLL_BATCH 64

enum mqb_state { ST_IDLE = 0, ST_CONNECTING, ST_CONNECTED, ST_BACKOFF, ST_STOPPED };
static const char *const state_names[] = {"idle", "connecting", "connected", "backoff",
                                          "stopped"};

struct mqb;

struct eg_part {
    struct mqb *b;
    char topic[RT_TOPIC_MAX + 1];
    int32_t partition;
    struct sl_cursor *cur;
    struct mqtt_bridge_window win;
    int64_t committed;
};

enum cmd_kind { CMD_CONNECT, CMD_SUBSCRIBE, CMD_SEND };

struct send_ctx;

struct cmd {
    struct cmd *next;
    enum cmd_kind kind;
    /* CMD_SEND */
    char *dest;
    struct sl_buf *payload;
    MQTTProperties props;
    struct send_ctx *sc;
};

struct mqb {
    atomic_uint refs;
    struct sl_gateway *gw;
    char name[64];
    char group[96];
    /* configuration (copied) */
    char url[512];
    bool tls;
    char *client_id, *username, *password;
    char **filters;
    size_t n_filters;
    int qos, version;
    bool clean_start;
    int64_t session_expiry_ms, keepalive_ms, rmin_ms, rmax_ms;
    int32_t max_inflight;
    MQTTAsync client;
    bool client_made;
    /* worker thread: the only caller of paho after create */
    pthread_t worker;
    bool worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cmd_cond;
    pthread_cond_t ing_cond;         /* ingress hand-off results, and abandon */
    struct cmd *cmd_head, *cmd_tail;
    bool worker_quit;
    atomic_bool abandon;             /* shutting down: parked callbacks never ack */
    atomic_bool dead;                /* destroyed: paho callbacks post nothing */
    unsigned ticks;
    atomic_int in_callback;
    atomic_uint epoch;               /* sends of older epochs are stale */
    /* loop thread */
    enum mqb_state state;
    unsigned attempt;
    uint32_t rng;
    struct event *reconnect;
    struct event *tick;
    struct event *retry;
    struct eg_part **parts;
    size_t n_parts;
    const struct sl_config *scanned;
    pthread_mutex_t err_mu;
    char last_error[200];
    /* metrics */
    struct sl_metric *m_connected, *m_inflight, *m_in, *m_out, *m_loop, *m_reconnects,
        *m_retries, *m_drop_in, *m_drop_out;
};

struct loop_msg {                    /* paho thread -> loop: connection events */
    struct sl_msg m;
    struct mqb *b;
    int kind;
    int code;
};
enum { EV_CONNECTED, EV_CONNECT_FAILED, EV_LOST, EV_SUB_FAILED };

struct send_ctx {                    /* one egress publish, then its completion */
    struct sl_msg m;
    struct mqb *b;
    struct eg_part *part;
    int64_t offset;
    unsigned epoch;
    int ok;                          /* 1 confirmed, 0 failed (transient), -1 rejected */
    int code;
};

struct ing {                         /* one ingress message handed to the loop */
    struct sl_msg m;
    struct mqb *b;
    struct sl_env *env;
    atomic_uint refs;
    bool done;
    int status;
};

static void mqb_loop_event(struct sl_msg *m);
static void mqb_send_done(struct sl_msg *m);

static struct mqb *mqb_ref(struct mqb *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

static void mqb_unref(struct mqb **bp)
{
    struct mqb *b = *bp;
    *bp = NULL;
    if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < b->n_parts; i++) {
        mqtt_bridge_window_free(&b->parts[i]->win);
        free(b->parts[i]);
    }
    free(b->parts);
    for (size_t i = 0; i < b->n_filters; i++) {
        free(b->filters[i]);
    }
    free(b->filters);
    free(b->client_id);
    free(b->username);
    free(b->password);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->err_mu);
    pthread_cond_destroy(&b->cmd_cond);
    pthread_cond_destroy(&b->ing_cond);
    free(b);
}

static void set_error(struct mqb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct mqb *b, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&b->err_mu);
    va_start(ap, fmt);
    vsnprintf(b->last_error, sizeof(b->last_error), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&b->err_mu);
}

static uint32_t next_rand(struct mqb *b)
{
    /* xorshift32: jitter only, not security */
    uint32_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b->rng = x != 0 ? x : 0x9e3779b9u;
    return b->rng;
}

/* ---- worker thread ---- */

static void cmd_free(struct cmd *c)
{
    if (c == NULL) {
        return;
    }
    free(c->dest);
    sl_buf_unref(&c->payload);
    MQTTProperties_free(&c->props);
    free(c);
}

static void post_cmd(struct mqb *b, struct cmd *c)
{
    pthread_mutex_lock(&b->mu);
    c->next = NULL;
    if (b->cmd_tail != NULL) {
        b->cmd_tail->next = c;
    } else {
        b->cmd_head = c;
    }
    b->cmd_tail = c;
    pthread_cond_signal(&b->cmd_cond);
    pthread_mutex_unlock(&b->mu);
}

static void post_loop(struct mqb *b, int kind, int code)
{
    struct loop_msg *lm;
    if (atomic_load(&b->dead)) {
        return;
    }
    lm = calloc(1, sizeof(*lm));
    if (lm == NULL) {
        sl_error("[%s:bridge] out of memory: connection event lost", b->name);
        return;
    }
    lm->kind = kind;
    lm->code = code;
    lm->b = mqb_ref(b);
    lm->m.fn = mqb_loop_event;
    sl_mailbox_post(b->gw->mailbox, &lm->m);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    post_loop(ctx, EV_CONNECTED, 0);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *d)
{
    struct mqb *b = ctx;
    set_error(b, "connect: %s (code %d)", d != NULL && d->message ? d->message :
              MQTTAsync_strerror(d != NULL ? d->code : MQTTASYNC_FAILURE),
              d != NULL ? d->code : -1);
    post_loop(b, EV_CONNECT_FAILED, d != NULL ? d->code : -1);
}

static void on_connect_ok5(void *ctx, MQTTAsync_successData5 *d)
{
    (void)d;
    post_loop(ctx, EV_CONNECTED, 0);
}

static void on_connect_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
    struct mqb *b = ctx;
    set_error(b, "connect: %s (code %d, reason %d)", d != NULL && d->message ? d->message :
              MQTTAsync_strerror(d != NULL ? d->code : MQTTASYNC_FAILURE),
              d != NULL ? d->code : -1, d != NULL ? (int)d->reasonCode : 0);
    post_loop(b, EV_CONNECT_FAILED, d != NULL ? d->code : -1);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *d)
{
    struct mqb *b = ctx;
    set_error(b, "subscribe failed (code %d)", d != NULL ? d->code : -1);
    post_loop(b, EV_SUB_FAILED, d != NULL ? d->code : -1);
}

static void on_sub_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
    struct mqb *b = ctx;
    set_error(b, "subscribe failed (code %d, reason %d)", d != NULL ? d->code : -1,
              d != NULL ? (int)d->reasonCode : 0);
    post_loop(b, EV_SUB_FAILED, d != NULL ? d->code : -1);
}

static void on_sub_ok5(void *ctx, MQTTAsync_successData5 *d)
{
    struct mqb *b = ctx;
    /* a SUBACK with failure reason codes still reports success at the API level; with
     * one filter paho gives its code in reasonCode and no array */
    if (d != NULL && b->n_filters == 1 && d->reasonCode >= 0x80) {
        set_error(b, "subscribe: broker refused the filter (reason %d)", (int)d->reasonCode);
        post_loop(b, EV_SUB_FAILED, (int)d->reasonCode);
        return;
    }
    for (int i = 0; d != NULL && b->n_filters > 1 && d->alt.sub.reasonCodes != NULL &&
                    i < d->alt.sub.reasonCodeCount; i++) {
        if (d->alt.sub.reasonCodes[i] >= 0x80) {
            set_error(b, "subscribe: broker refused filter %d (reason %d)", i,
                      (int)d->alt.sub.reasonCodes[i]);
            post_loop(b, EV_SUB_FAILED, (int)d->alt.sub.reasonCodes[i]);
            return;
        }
    }
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *d)
{
    struct mqb *b = ctx;
    if (d != NULL && b->n_filters == 1 && d->alt.qos >= 0x80) {
        set_error(b, "subscribe: broker refused the filter");
        post_loop(b, EV_SUB_FAILED, d->alt.qos);
    }
}

static void post_send_done(struct send_ctx *sc, int ok, int code)
{
    if (atomic_load(&sc->b->dead)) {
        mqb_unref(&sc->b);
        free(sc);
        return;
    }
    sc->ok = ok;
    sc->code = code;
    sc->m.fn = mqb_send_done;
    sl_mailbox_post(sc->b->gw->mailbox, &sc->m);
}

static void on_send_ok(void *ctx, MQTTAsync_successData *d)
{
    (void)d;
    post_send_done(ctx, 1, 0);
}

static void on_send_fail(void *ctx, MQTTAsync_failureData *d)
{
    post_send_done(ctx, 0, d != NULL ? d->code : -1);
}

static void on_send_ok5(void *ctx, MQTTAsync_successData5 *d)
{
    /* MQTT 5: a PUBACK with a reason code >= 0x80 reaches onFailure5 or here */
    if (d != NULL && d->reasonCode >= 0x80) {
        post_send_done(ctx, -1, (int)d->reasonCode);
        return;
    }
    post_send_done(ctx, 1, 0);
}

static void on_send_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
    if (d != NULL && d->reasonCode >= 0x80) {
        post_send_done(ctx, -1, (int)d->reasonCode);
        return;
    }
    post_send_done(ctx, 0, d != NULL ? d->code : -1);
}

static void do_connect(struct mqb *b)
{
    MQTTAsync_connectOptions o5 = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_connectOptions o3 = MQTTAsync_connectOptions_initializer;
    MQTTAsync_connectOptions *o = b->version == 5 ? &o5 : &o3;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    int rc;

    o->keepAliveInterval = (int)(b->keepalive_ms / 1000);
    o->username = b->username;
    o->password = b->password;
    o->context = b;
    o->connectTimeout = 10;
    o->maxInflight = b->max_inflight;
    o->automaticReconnect = 0;
    if (b->tls) {
        o->ssl = &ssl;
    }
    if (b->version == 5) {
        MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
        int64_t secs = b->clean_start ? 0 : b->session_expiry_ms / 1000;
        p.value.integer4 = (unsigned int)(secs > 0xffffffffLL ? 0xffffffffLL : secs);
        MQTTProperties_add(&props, &p);
        o->cleanstart = b->clean_start;
        o->connectProperties = &props;
        o->onSuccess5 = on_connect_ok5;
        o->onFailure5 = on_connect_fail5;
    } else {
        o->cleansession = b->clean_start;
        o->MQTTVersion = MQTTVERSION_3_1_1;
        o->onSuccess = on_connect_ok;
        o->onFailure = on_connect_fail;
    }
    rc = MQTTAsync_connect(b->client, o);
    MQTTProperties_free(&props);
    if (rc != MQTTASYNC_SUCCESS) {
        set_error(b, "connect: %s", MQTTAsync_strerror(rc));
        post_loop(b, EV_CONNECT_FAILED, rc);
    }
}

static void do_subscribe(struct mqb *b)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    MQTTSubscribe_options *so = NULL;
    int *qos = calloc(b->n_filters, sizeof(*qos));
    int rc;

    if (b->n_filters == 0) {
        free(qos);
        return;
    }
    if (qos == NULL) {
        post_loop(b, EV_SUB_FAILED, MQTTASYNC_FAILURE);
        return;
    }
    for (size_t i = 0; i < b->n_filters; i++) {
        qos[i] = b->qos;
    }
    ro.context = b;
    if (b->version == 5) {
        so = calloc(b->n_filters, sizeof(*so));
        if (so == NULL) {
            free(qos);
            post_loop(b, EV_SUB_FAILED, MQTTASYNC_FAILURE);
            return;
        }
        for (size_t i = 0; i < b->n_filters; i++) {
            MQTTSubscribe_options init = MQTTSubscribe_options_initializer;
            so[i] = init;
            so[i].noLocal = 1;       /* never receive what this bridge published */
        }
        ro.subscribeOptionsCount = (int)b->n_filters;
        ro.subscribeOptionsList = so;
        ro.onSuccess5 = on_sub_ok5;
        ro.onFailure5 = on_sub_fail5;
    } else {
        ro.onSuccess = on_sub_ok;
        ro.onFailure = on_sub_fail;
    }
    rc = MQTTAsync_subscribeMany(b->client, (int)b->n_filters, b->filters, qos, &ro);
    free(qos);
    free(so);
    if (rc != MQTTASYNC_SUCCESS) {
        set_error(b, "subscribe: %s", MQTTAsync_strerror(rc));
        post_loop(b, EV_SUB_FAILED, rc);
    }
}

static void do_send(struct mqb *b, struct cmd *c)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    struct send_ctx *sc = c->sc;
    int rc;

    c->sc = NULL;
    if (sc->epoch != atomic_load(&b->epoch)) {
        post_send_done(sc, 0, MQTTASYNC_COMMAND_IGNORED);   /* stale: the loop ignores it */
        return;
    }
    msg.payload = c->payload != NULL ? c->payload->data : NULL;
    msg.payloadlen = c->payload != NULL ? (int)c->payload->len : 0;
    msg.qos = b->qos;
    msg.retained = 0;
    ro.context = sc;
    if (b->version == 5) {
        msg.properties = c->props;
        ro.onSuccess5 = on_send_ok5;
        ro.onFailure5 = on_send_fail5;
    } else {
        ro.onSuccess = on_send_ok;
        ro.onFailure = on_send_fail;
    }
    rc = MQTTAsync_sendMessage(b->client, c->dest, &msg, &ro);
    if (rc == MQTTASYNC_BAD_UTF8_STRING || rc == MQTTASYNC_BAD_QOS ||
        rc == MQTTASYNC_TOPICNAME_TRUNCATED || rc == MQTTASYNC_BAD_STRUCTURE) {
        post_send_done(sc, -1, rc);
    } else if (rc != MQTTASYNC_SUCCESS) {
        post_send_done(sc, 0, rc);
    }
}

static void *worker_main(void *arg)
{
    struct mqb *b = arg;

    for (;;) {
        struct cmd *c;
        pthread_mutex_lock(&b->mu);
        while (b->cmd_head == NULL && !b->worker_quit) {
            pthread_cond_wait(&b->cmd_cond, &b->mu);
        }
        if (b->worker_quit) {
            pthread_mutex_unlock(&b->mu);
            break;
        }
        c = b->cmd_head;
        b->cmd_head = c->next;
        if (b->cmd_head == NULL) {
            b->cmd_tail = NULL;
        }
        pthread_mutex_unlock(&b->mu);
        switch (c->kind) {
        case CMD_CONNECT:
            do_connect(b);
            break;
        case CMD_SUBSCRIBE:
            do_subscribe(b);
            break;
        case CMD_SEND:
            do_send(b, c);
            break;
        }
        cmd_free(c);
    }
    return NULL;
}

/* ---- ingress (paho's thread) ---- */

static void ing_unref(struct ing *in)
{
    if (atomic_fetch_sub(&in->refs, 1) == 1) {
        sl_env_unref(&in->env);
        mqb_unref(&in->b);
        free(in);
    }
}

/* Loop thread: the publish finished (durable or failed). */
static void ing_done(void *arg, const struct sl_publish_result *res)
{
    struct ing *in = arg;
    struct mqb *b = in->b;

    pthread_mutex_lock(&b->mu);
    in->status = res->status;
    in->done = true;
    pthread_cond_broadcast(&b->ing_cond);
    pthread_mutex_unlock(&b->mu);
    ing_unref(in);
}

/* Loop thread: publish the handed-over message. */
static void ing_run(struct sl_msg *m)
{
    struct ing *in = (struct ing *)(void *)((char *)m - offsetof(struct ing, m));
    struct mqb *b = in->b;
    struct sl_pub_source src = {.bridge = b->name};
    struct sl_publish_result res = {.status = -ESHUTDOWN};
    int rc;

    if (b->gw->log == NULL) {
        ing_done(in, &res);
        return;
    }
    rc = sl_gateway_publish(b->gw, &src, &in->env, 1, ing_done, in);
    if (rc != 0) {
        res.status = rc;
        ing_done(in, &res);
    }
}

/* Wait on ing_cond until `until` (CLOCK_REALTIME), or for ever when until is NULL. */
static void park(struct mqb *b, const struct timespec *until)
{
    if (until != NULL) {
        pthread_cond_timedwait(&b->ing_cond, &b->mu, until);
    } else {
        pthread_cond_wait(&b->ing_cond, &b->mu);
    }
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

/* Never returns: the process is shutting down and this message must stay unacked. */
static void park_forever(struct mqb *b)
{
    pthread_mutex_lock(&b->mu);
    for (;;) {
        park(b, NULL);
    }
}

static bool permanent_error(int status)
{
    return status == -EINVAL || status == -EMSGSIZE || status == -E2BIG;
}

/*
 * paho's receive thread. paho sends the PUBACK (QoS 1) when this returns, so it
 * returns 1 only once the message is durable in the log (or was refused for good and
 * counted); until then it waits, retrying failed appends with backoff. At shutdown a
 * message not yet durable parks this thread for good: the process exits without the
 * PUBACK and the broker redelivers.
 */
static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
    struct mqb *b = ctx;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    int ret = 1;

    atomic_fetch_add(&b->in_callback, 1);
    for (unsigned attempt = 0;; attempt++) {
        bool loop = false;
        const char *why = NULL;
        struct sl_env *env;
        struct ing *in;
        struct timespec until;

        if (atomic_load(&b->abandon)) {
            park_forever(b);
        }
        env = mqtt_bridge_env_from_msg(b->name, topic, tlen, msg, &loop, &why);
        if (env == NULL && strcmp(why, "oom") != 0) {
            sl_warn("[%s:bridge] dropped a message from '%.*s': %s", b->name, (int)tlen,
                    topic, why);
            sl_metric_add(b->m_drop_in, 1);
            break;
        }
        if (loop) {
            sl_env_unref(&env);
            sl_metric_add(b->m_loop, 1);
            break;
        }
        in = env != NULL ? calloc(1, sizeof(*in)) : NULL;
        if (in == NULL) {
            sl_env_unref(&env);
            sl_metric_add(b->m_retries, 1);
        } else {
            int status;
            in->env = env;
            in->b = mqb_ref(b);
            atomic_init(&in->refs, 2);
            in->m.fn = ing_run;
            sl_mailbox_post(b->gw->mailbox, &in->m);
            pthread_mutex_lock(&b->mu);
            while (!in->done && !atomic_load(&b->abandon)) {
                deadline_in(&until, 1000);
                park(b, &until);
            }
            if (!in->done) {
                pthread_mutex_unlock(&b->mu);
                ing_unref(in);
                park_forever(b);
            }
            status = in->status;
            pthread_mutex_unlock(&b->mu);
            ing_unref(in);
            if (status == 0) {
                sl_metric_add(b->m_in, 1);
                break;
            }
            if (permanent_error(status)) {
                sl_warn("[%s:bridge] refused a message from '%.*s': %s", b->name, (int)tlen,
                        topic, strerror(-status));
                sl_metric_add(b->m_drop_in, 1);
                break;
            }
            set_error(b, "ingest into the log: %s (retrying)", strerror(-status));
            if (attempt == 0) {
                sl_warn("[%s:bridge] append failed: %s; retrying before acknowledging",
                        b->name, strerror(-status));
            }
            sl_metric_add(b->m_retries, 1);
        }
        pthread_mutex_lock(&b->mu);
        deadline_in(&until, sl_bridge_backoff_ms(100, 2000, attempt, attempt * 2654435761u));
        if (!atomic_load(&b->abandon)) {
            park(b, &until);
        }
        pthread_mutex_unlock(&b->mu);
    }
    atomic_fetch_sub(&b->in_callback, 1);
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic);
    return ret;
}

static void on_lost(void *ctx, char *cause)
{
    struct mqb *b = ctx;
    set_error(b, "connection lost%s%s", cause != NULL ? ": " : "", cause != NULL ? cause : "");
    post_loop(b, EV_LOST, 0);
}

/* ---- loop thread: connection state ---- */

static void pump(struct eg_part *p);
static void rewind_all(struct mqb *b);

static void set_state(struct mqb *b, enum mqb_state st)
{
    b->state = st;
    sl_metric_set(b->m_connected, st == ST_CONNECTED ? 1 : 0);
}

static void schedule_reconnect(struct mqb *b)
{
    int64_t ms = sl_bridge_backoff_ms(b->rmin_ms, b->rmax_ms, b->attempt, next_rand(b));
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};

    if (b->attempt < 64) {
        b->attempt++;
    }
    set_state(b, ST_BACKOFF);
    sl_info("[%s:bridge] reconnecting in %lld ms", b->name, (long long)ms);
    evtimer_add(b->reconnect, &tv);
}

static void connect_now(struct mqb *b)
{
    struct cmd *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        schedule_reconnect(b);
        return;
    }
    c->kind = CMD_CONNECT;
    set_state(b, ST_CONNECTING);
    post_cmd(b, c);
}

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mqb *b = arg;
    (void)fd;
    (void)what;
    if (b->state == ST_BACKOFF) {
        sl_metric_add(b->m_reconnects, 1);
        connect_now(b);
    }
}

static void mqb_loop_event(struct sl_msg *m)
{
    struct loop_msg *lm = (struct loop_msg *)(void *)((char *)m - offsetof(struct loop_msg, m));
    struct mqb *b = lm->b;

    if (b->state == ST_STOPPED) {
        goto out;
    }
    switch (lm->kind) {
    case EV_CONNECTED: {
        struct cmd *c = calloc(1, sizeof(*c));
        sl_info("[%s:bridge] connected to %s", b->name, b->url);
        b->attempt = 0;
        set_state(b, ST_CONNECTED);
        set_error(b, "%s", "");
        if (c != NULL) {
            c->kind = CMD_SUBSCRIBE;
            post_cmd(b, c);
        }
        for (size_t i = 0; i < b->n_parts; i++) {
            pump(b->parts[i]);
        }
        break;
    }
    case EV_CONNECT_FAILED:
        if (b->state == ST_CONNECTING) {
            char e[200];
            pthread_mutex_lock(&b->err_mu);
            snprintf(e, sizeof(e), "%s", b->last_error);
            pthread_mutex_unlock(&b->err_mu);
            sl_warn("[%s:bridge] %s", b->name, e);
            schedule_reconnect(b);
        }
        break;
    case EV_LOST:
        if (b->state == ST_CONNECTED) {
            sl_warn("[%s:bridge] connection to %s lost", b->name, b->url);
            rewind_all(b);
            schedule_reconnect(b);
        }
        break;
    case EV_SUB_FAILED:
        sl_warn("[%s:bridge] subscribe failed (code %d)", b->name, lm->code);
        break;
    }
out:
    mqb_unref(&lm->b);
    free(lm);
}

/* ---- loop thread: egress ---- */

static void rewind_all(struct mqb *b)
{
    atomic_fetch_add(&b->epoch, 1);
    sl_metric_set(b->m_inflight, 0);
    for (size_t i = 0; i < b->n_parts; i++) {
        struct eg_part *p = b->parts[i];
        mqtt_bridge_window_reset(&p->win);
        if (p->cur != NULL) {
            sl_cursor_seek(p->cur, p->win.acked);
        }
    }
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mqb *b = arg;
    (void)fd;
    (void)what;
    for (size_t i = 0; i < b->n_parts; i++) {
        pump(b->parts[i]);
    }
}

static void mqb_send_done(struct sl_msg *m)
{
    struct send_ctx *sc = (struct send_ctx *)(void *)((char *)m - offsetof(struct send_ctx, m));
    struct mqb *b = sc->b;
    struct eg_part *p = sc->part;

    if (b->state == ST_STOPPED || sc->epoch != atomic_load(&b->epoch)) {
        goto out;
    }
    sl_metric_inc_gauge(b->m_inflight, -1);
    if (sc->ok == 1 || sc->ok == -1) {
        if (sc->ok == 1) {
            sl_metric_add(b->m_out, 1);
        } else {
            sl_warn("[%s:bridge] the broker refused record %s/%d@%lld (code %d); skipped",
                    b->name, p->topic, (int)p->partition, (long long)sc->offset, sc->code);
            set_error(b, "publish refused (code %d)", sc->code);
            sl_metric_add(b->m_drop_out, 1);
        }
        mqtt_bridge_window_ack(&p->win, sc->offset);
        pump(p);
    } else {
        struct timeval tv = {.tv_sec = RETRY_SEND_MS / 1000,
                             .tv_usec = (RETRY_SEND_MS % 1000) * 1000};
        set_error(b, "publish failed: %s", MQTTAsync_strerror(sc->code));
        sl_warn("[%s:bridge] publish failed (%s); resending from the last acknowledged "
                "record", b->name, MQTTAsync_strerror(sc->code));
        rewind_all(b);
        evtimer_add(b->retry, &tv);
    }
out:
    mqb_unref(&sc->b);
    free(sc);
}

struct rec_ctx {
    struct eg_part *p;
    const struct sl_env *env;
    const char *subject;
    uint32_t sends;
};

static void on_binding(void *arg, const struct rt_egress *bind)
{
    struct rec_ctx *rc = arg;
    struct eg_part *p = rc->p;
    struct mqb *b = p->b;
    char dest[RT_MAX_SUBJECT + 1];
    struct cmd *c;
    int n;

    if (bind->bridge == NULL || strcmp(bind->bridge, b->name) != 0) {
        return;
    }
    n = rt_render_destination(bind, p->topic, rc->subject, dest, sizeof(dest));
    if (n <= 0 || !mqtt_topic_name_valid(dest, (size_t)n)) {
        sl_warn("[%s:bridge] record %s/%d: destination of the rule at line %d is not an "
                "MQTT topic name; skipped", b->name, p->topic, (int)p->partition, bind->line);
        sl_metric_add(b->m_drop_out, 1);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->sc = calloc(1, sizeof(*c->sc));
        c->dest = strdup(dest);
    }
    if (c == NULL || c->sc == NULL || c->dest == NULL) {
        if (c != NULL) {
            free(c->sc);
            cmd_free(c);
        }
        sl_error("[%s:bridge] out of memory; record %s/%d skipped", b->name, p->topic,
                 (int)p->partition);
        sl_metric_add(b->m_drop_out, 1);
        return;
    }
    c->kind = CMD_SEND;
    c->payload = sl_buf_ref(rc->env->data);
    if (b->version == 5) {
        mqtt_bridge_env_props(b->name, rc->env, &c->props);
    }
    c->sc->b = mqb_ref(b);
    c->sc->part = p;
    c->sc->offset = rc->env->offset;
    c->sc->epoch = atomic_load(&b->epoch);
    rc->sends++;
    sl_metric_inc_gauge(b->m_inflight, 1);
    post_cmd(b, c);
}

static int on_record(void *arg, const char *topic, int32_t partition, const struct sl_record *rec)
{
    struct eg_part *p = arg;
    struct mqb *b = p->b;
    struct rec_ctx rc = {.p = p};
    struct sl_env *env;

    (void)topic;
    if (sl_bridge_record_from(rec, b->name)) {
        sl_metric_add(b->m_loop, 1);
        mqtt_bridge_window_push(&p->win, rec->offset, 0);
        return 0;
    }
    env = sl_env_from_record(rec, partition);
    if (env == NULL) {
        sl_warn("[%s:bridge] record %s/%d@%lld cannot be decoded; skipped", b->name, p->topic,
                (int)partition, (long long)rec->offset);
        sl_metric_add(b->m_drop_out, 1);
        mqtt_bridge_window_push(&p->win, rec->offset, 0);
        return 0;
    }
    rc.env = env;
    rc.subject = env->subject != NULL ? env->subject : p->topic;
    rt_route_egress(b->gw->routes, p->topic, rc.subject, on_binding, &rc);
    mqtt_bridge_window_push(&p->win, rec->offset, rc.sends);
    sl_env_unref(&env);
    return 0;
}

static void pump(struct eg_part *p)
{
    struct mqb *b = p->b;

    while (b->state == ST_CONNECTED && p->cur != NULL && !mqtt_bridge_window_full(&p->win)) {
        size_t room = p->win.cap - p->win.count;
        int n = sl_cursor_poll(p->cur, room < POLL_BATCH ? room : POLL_BATCH, 0, on_record, p);
        if (n <= 0) {
            if (n < 0) {
                sl_warn("[%s:bridge] reading %s/%d: %s", b->name, p->topic, (int)p->partition,
                        strerror(-n));
            }
            break;
        }
    }
}

static void on_wake(struct sl_cursor *cur, void *arg)
{
    (void)cur;
    pump(arg);
}

static void commit_all(struct mqb *b)
{
    for (size_t i = 0; i < b->n_parts; i++) {
        struct eg_part *p = b->parts[i];
        if (p->win.acked > p->committed && b->gw->log != NULL) {
            int rc = sl_group_commit(b->gw->log, b->group, p->topic, p->partition,
                                     p->win.acked);
            if (rc == 0) {
                p->committed = p->win.acked;
            } else {
                sl_warn("[%s:bridge] commit %s/%d: %s", b->name, p->topic, (int)p->partition,
                        strerror(-rc));
            }
        }
    }
}

static struct eg_part *find_part(struct mqb *b, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < b->n_parts; i++) {
        if (b->parts[i]->partition == partition && strcmp(b->parts[i]->topic, topic) == 0) {
            return b->parts[i];
        }
    }
    return NULL;
}

static void open_part(struct mqb *b, const char *topic, int32_t partition)
{
    struct eg_part *p = calloc(1, sizeof(*p));
    struct eg_part **arr = realloc(b->parts, (b->n_parts + 1) * sizeof(*arr));
    int64_t committed = sl_group_committed(b->gw->log, b->group, topic, partition);
    struct sl_start start = {.kind = committed >= 0 ? SL_START_OFFSET : SL_START_LATEST,
                             .value = committed};
    int err = 0;

    if (arr != NULL) {
        b->parts = arr;
    }
    if (p == NULL || arr == NULL) {
        free(p);
        sl_error("[%s:bridge] out of memory", b->name);
        return;
    }
    p->b = b;
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->committed = committed;
    p->cur = sl_cursor_open(b->gw->log, topic, partition, start, on_wake, p, &err);
    if (p->cur == NULL ||
        mqtt_bridge_window_init(&p->win, (size_t)b->max_inflight,
                                sl_cursor_position(p->cur)) != 0) {
        sl_warn("[%s:bridge] cannot read %s/%d: %s", b->name, topic, (int)partition,
                strerror(err != 0 ? -err : ENOMEM));
        sl_cursor_close(&p->cur);
        free(p);
        return;
    }
    b->parts[b->n_parts++] = p;
    if (committed < 0) {
        /* first start: from the end, and remember it so a crash skips nothing after it */
        p->committed = -1;
        commit_all(b);
    }
    sl_info("[%s:bridge] egress %s/%d from offset %lld", b->name, topic, (int)partition,
            (long long)p->win.acked);
}

/* Open cursors for every partition of every topic bound to this bridge (again after a
 * reload or when partitions grew). */
static void scan_bindings(struct mqb *b)
{
    const struct sl_config *cfg = b->gw->cfg;

    b->scanned = cfg;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct sl_route_cfg *r = &cfg->routes[i];
        int32_t n;
        if (!r->egress || r->to_bridge == NULL || r->from_topic == NULL ||
            strcmp(r->to_bridge, b->name) != 0) {
            continue;
        }
        n = sl_log_partitions(b->gw->log, r->from_topic);
        if (n == -ENOENT && cfg->auto_create &&
            sl_log_topic_configure(b->gw->log, r->from_topic, NULL) == 0) {
            n = sl_log_partitions(b->gw->log, r->from_topic);
        }
        for (int32_t p = 0; p < n; p++) {
            if (find_part(b, r->from_topic, p) == NULL) {
                open_part(b, r->from_topic, p);
                if (b->state == ST_CONNECTED && b->n_parts > 0) {
                    pump(b->parts[b->n_parts - 1]);
                }
            }
        }
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct mqb *b = arg;
    (void)fd;
    (void)what;
    if (b->state == ST_STOPPED) {
        return;
    }
    commit_all(b);
    if (b->gw->cfg != b->scanned || ++b->ticks % 25 == 0) {
        scan_bindings(b);
    }
}

/* ---- ops ---- */

static char *dup_or_null(const char *s, bool *oom)
{
    char *d;
    if (s == NULL) {
        return NULL;
    }
    d = strdup(s);
    if (d == NULL) {
        *oom = true;
    }
    return d;
}

static int mqb_create(struct sl_bridge *br, const struct sl_bridge_cfg *cfg, char **err)
{
    struct mqb *b = calloc(1, sizeof(*b));
    MQTTAsync_createOptions co5 = MQTTAsync_createOptions_initializer5;
    MQTTAsync_createOptions co3 = MQTTAsync_createOptions_initializer;
    bool oom = false;
    char labels[160];
    int rc;

    if (b == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    atomic_init(&b->refs, 1);
    atomic_init(&b->abandon, false);
    atomic_init(&b->dead, false);
    atomic_init(&b->in_callback, 0);
    atomic_init(&b->epoch, 1);
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->err_mu, NULL);
    pthread_cond_init(&b->cmd_cond, NULL);
    pthread_cond_init(&b->ing_cond, NULL);
    br->ctx = b;
    b->gw = br->gw;
    snprintf(b->name, sizeof(b->name), "%s", br->name);
    sl_bridge_group_name(b->name, b->group, sizeof(b->group));
    if (cfg->url == NULL || mqtt_bridge_url(cfg->url, b->url, sizeof(b->url), &b->tls) != 0) {
        if (asprintf(err, "url '%s' is not mqtt://, mqtts://, tcp://, ssl://, ws:// or wss://",
                     cfg->url != NULL ? cfg->url : "") < 0) {
            *err = NULL;
        }
        goto fail;
    }
    b->client_id = dup_or_null(cfg->client_id, &oom);
    b->username = dup_or_null(cfg->username, &oom);
    b->password = dup_or_null(cfg->password, &oom);
    b->filters = cfg->n_subscribe > 0 ? calloc(cfg->n_subscribe, sizeof(*b->filters)) : NULL;
    for (size_t i = 0; b->filters != NULL && i < cfg->n_subscribe; i++) {
        b->filters[b->n_filters++] = dup_or_null(cfg->subscribe[i], &oom);
    }
    if (oom || b->client_id == NULL || (cfg->n_subscribe > 0 && b->filters == NULL)) {
        *err = strdup("out of memory");
        goto fail;
    }
    b->qos = cfg->qos;
    b->version = cfg->mqtt_version == 5 ? 5 : 3;
    b->clean_start = cfg->clean_start;
    b->session_expiry_ms = cfg->session_expiry_ms;
    b->keepalive_ms = cfg->keepalive_ms >= 1000 ? cfg->keepalive_ms : 30000;
    b->rmin_ms = cfg->reconnect_min_ms > 0 ? cfg->reconnect_min_ms : 500;
    b->rmax_ms = cfg->reconnect_max_ms >= b->rmin_ms ? cfg->reconnect_max_ms : b->rmin_ms;
    b->max_inflight = cfg->max_inflight > 0 ? cfg->max_inflight : 64;
    b->rng = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)b;
    if (b->rng == 0) {
        b->rng = 1;
    }
    rc = MQTTAsync_createWithOptions(&b->client, b->url, b->client_id,
                                     MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                     b->version == 5 ? &co5 : &co3);
    if (rc != MQTTASYNC_SUCCESS) {
        if (asprintf(err, "paho: %s", MQTTAsync_strerror(rc)) < 0) {
            *err = NULL;
        }
        goto fail;
    }
    b->client_made = true;
    rc = MQTTAsync_setCallbacks(b->client, b, on_lost, on_message, NULL);
    if (rc != MQTTASYNC_SUCCESS) {
        if (asprintf(err, "paho: %s", MQTTAsync_strerror(rc)) < 0) {
            *err = NULL;
        }
        goto fail;
    }
    b->reconnect = evtimer_new(b->gw->base, on_reconnect_timer, b);
    b->retry = evtimer_new(b->gw->base, on_retry_timer, b);
    b->tick = event_new(b->gw->base, -1, EV_PERSIST, on_tick, b);
    if (b->reconnect == NULL || b->retry == NULL || b->tick == NULL) {
        *err = strdup("out of memory");
        goto fail;
    }
    snprintf(labels, sizeof(labels), "bridge=\"%s\"", b->name);
    b->m_connected = sl_metric_gauge("sluice_bridge_connected",
                                     "1 while the bridge is connected to its broker.", labels);
    b->m_inflight = sl_metric_gauge("sluice_bridge_inflight",
                                    "Egress messages sent and not yet acknowledged.", labels);
    b->m_in = sl_metric_counter("sluice_bridge_messages_in_total",
                                "Messages received and durably appended to the log.", labels);
    b->m_out = sl_metric_counter("sluice_bridge_messages_out_total",
                                 "Log records published and acknowledged by the broker.",
                                 labels);
    b->m_loop = sl_metric_counter("sluice_bridge_loop_skipped_total",
                                  "Messages not echoed back over the bridge they came from.",
                                  labels);
    b->m_reconnects = sl_metric_counter("sluice_bridge_reconnects_total",
                                        "Reconnect attempts.", labels);
    b->m_retries = sl_metric_counter("sluice_bridge_ingest_retries_total",
                                     "Appends retried before acknowledging the broker.",
                                     labels);
    snprintf(labels, sizeof(labels), "bridge=\"%s\",direction=\"in\"", b->name);
    b->m_drop_in = sl_metric_counter("sluice_bridge_dropped_total",
                                     "Messages refused for good (invalid or rejected).", labels);
    snprintf(labels, sizeof(labels), "bridge=\"%s\",direction=\"out\"", b->name);
    b->m_drop_out = sl_metric_counter("sluice_bridge_dropped_total",
                                      "Messages refused for good (invalid or rejected).", labels);
    return 0;
fail:
    if (*err == NULL) {
        *err = strdup("cannot create the bridge");
    }
    if (b->client_made) {
        MQTTAsync_destroy(&b->client);
    }
    if (b->reconnect != NULL) {
        event_free(b->reconnect);
    }
    if (b->retry != NULL) {
        event_free(b->retry);
    }
    if (b->tick != NULL) {
        event_free(b->tick);
    }
    br->ctx = NULL;
    mqb_unref(&b);
    return -1;
}

static int mqb_start(struct sl_bridge *br, char **err)
{
    struct mqb *b = br->ctx;
    struct timeval tv = {.tv_sec = 0, .tv_usec = COMMIT_EVERY_MS * 1000};

    if (pthread_create(&b->worker, NULL, worker_main, b) != 0) {
        *err = strdup("cannot start the worker thread");
        return -1;
    }
    b->worker_started = true;
    scan_bindings(b);
    event_add(b->tick, &tv);
    sl_info("[%s:bridge] mqtt %s, client id %s, MQTT %s, %zu filter(s) at QoS %d, "
            "%zu egress partition(s)", b->name, b->url, b->client_id,
            b->version == 5 ? "5" : "3.1.1", b->n_filters, b->qos, b->n_parts);
    connect_now(b);
    return 0;
}

static void mqb_stop(struct sl_bridge *br)
{
    struct mqb *b = br->ctx;

    if (b->state == ST_STOPPED) {
        return;
    }
    commit_all(b);
    set_state(b, ST_STOPPED);
    atomic_fetch_add(&b->epoch, 1);
    if (b->reconnect != NULL) {
        evtimer_del(b->reconnect);
    }
    if (b->retry != NULL) {
        evtimer_del(b->retry);
    }
    if (b->tick != NULL) {
        event_del(b->tick);
    }
    for (size_t i = 0; i < b->n_parts; i++) {
        sl_cursor_close(&b->parts[i]->cur);
    }
    sl_metric_set(b->m_inflight, 0);
}

/* Join with a deadline; false if the thread is still running. */
static bool join_within(pthread_t t, int64_t ms)
{
    struct timespec until;
    deadline_in(&until, ms);
    return pthread_timedjoin_np(t, NULL, &until) == 0;
}

static void mqb_destroy(struct sl_bridge *br)
{
    struct mqb *b = br->ctx;
    bool clean = true;

    if (b == NULL) {
        return;
    }
    mqb_stop(br);
    br->ctx = NULL;
    /* From here a message not yet durable is never acknowledged (see on_message). */
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->abandon, true);
    atomic_store(&b->dead, true);
    pthread_cond_broadcast(&b->ing_cond);
    b->worker_quit = true;
    pthread_cond_signal(&b->cmd_cond);
    while (b->cmd_head != NULL) {
        struct cmd *c = b->cmd_head;
        b->cmd_head = c->next;
        if (c->sc != NULL) {
            mqb_unref(&c->sc->b);
            free(c->sc);
        }
        cmd_free(c);
    }
    b->cmd_tail = NULL;
    pthread_mutex_unlock(&b->mu);
    if (b->worker_started && !join_within(b->worker, 2000)) {
        clean = false;
    }
    if (clean && atomic_load(&b->in_callback) == 0 && b->client_made) {
        MQTTAsync_disconnectOptions d5 = MQTTAsync_disconnectOptions_initializer5;
        MQTTAsync_disconnectOptions d3 = MQTTAsync_disconnectOptions_initializer;
        MQTTAsync_disconnect(b->client, b->version == 5 ? &d5 : &d3);
        for (int i = 0; i < 100 && MQTTAsync_isConnected(b->client); i++) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        MQTTAsync_destroy(&b->client);
    } else if (b->client_made) {
        /* a paho callback is parked with a message that is not durable: leave the
         * connection to the process exit, so that message is never acknowledged */
        sl_warn("[%s:bridge] a message still in hand-off stays unacknowledged; the broker "
                "redelivers it", b->name);
        return;                      /* b stays referenced by the parked thread */
    }
    if (b->reconnect != NULL) {
        event_free(b->reconnect);
    }
    if (b->retry != NULL) {
        event_free(b->retry);
    }
    if (b->tick != NULL) {
        event_free(b->tick);
    }
    mqb_unref(&b);
}

static void mqb_status(struct sl_bridge *br, struct sl_bridge_status *st)
{
    struct mqb *b = br->ctx;
    if (b == NULL) {
        st->state = "stopped";
        return;
    }
    st->state = state_names[b->state];
    pthread_mutex_lock(&b->err_mu);
    snprintf(st->last_error, sizeof(st->last_error), "%s", b->last_error);
    pthread_mutex_unlock(&b->err_mu);
}

const struct sl_bridge_ops mqtt_bridge_ops = {
    .type = "mqtt",
    .create = mqb_create,
    .start = mqb_start,
    .stop = mqb_stop,
    .destroy = mqb_destroy,
    .status = mqb_status,
};


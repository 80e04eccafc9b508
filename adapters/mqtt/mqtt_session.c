/*
 * MQTT session: the per-connection state machine (CONNECT, PUBLISH in with QoS 0/1/2,
 * acks, SUBSCRIBE / UNSUBSCRIBE, PINGREQ, DISCONNECT, wills). Packets are framed and
 * decoded by mqtt_codec; the only place codec errors become wire reason codes is
 * protocol_error() (through mqtt_err_reason).
 */
#include "adapters/mqtt/mqtt_session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "adapters/mqtt/mqtt_auth.h"
#include "adapters/mqtt/mqtt_retain.h"
#include "adapters/mqtt/mqtt_store.h"
#include "adapters/mqtt/mqtt_subscribe.h"
#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/metrics.h"

#define MQTT_PKT_STACK 512
#define MQTT_MAX_USER_PROPS 64

/* An inbound QoS 0/1/2 publish waiting for durability. Acks leave in arrival order. */
struct pub_wait {
    struct pub_wait *next;
    struct mqtt_session *s;
    struct sl_env *retain_env;       /* retained publish: stored after the append */
    uint16_t pid;
    uint8_t qos;
    bool done;
    bool ok;
    uint8_t reason;
};


static void sess_free(struct mqtt_session *s);

/* ------------------------------------------------------------------ helpers ---- */

static void sess_unref(struct mqtt_session *s)
{
    if (--s->refs > 0) {
        return;
    }
    /* s->b NULL: orphaned by a broker freed while appends were pending. */
    if (s->b == NULL || (s->state == MQTT_S_CLOSING && !s->connected && s->prev == NULL &&
                         s->next == NULL && s->b->all != s)) {
        sess_free(s);
    }
}

int mqtt_session_send(struct mqtt_session *s, const struct mqtt_packet *p)
{
    uint8_t stack[MQTT_PKT_STACK];
    size_t n;
    uint8_t *buf = stack;
    int rc;

    if (!s->connected) {
        return -EPIPE;
    }
    n = mqtt_encoded_size(p, (enum mqtt_version)s->version);
    if (n == 0) {
        return -EINVAL;
    }
    if (s->max_packet_out != 0 && n > s->max_packet_out) {
        return -EMSGSIZE;
    }
    if (n > sizeof(stack)) {
        buf = malloc(n);
        if (buf == NULL) {
            return -ENOMEM;
        }
    }
    rc = mqtt_encode(p, (enum mqtt_version)s->version, buf, n);
    if (rc > 0) {
        rc = sl_transport_write(&s->t, buf, (size_t)rc);
    }
    if (buf != stack) {
        free(buf);
    }
    return rc < 0 ? rc : 0;
}

uint16_t mqtt_session_pid(struct mqtt_session *s)
{
    /* Bounded: at most n_out + 1 candidates are in use or tried. */
    for (uint32_t tries = 0; tries <= (uint32_t)s->n_out + 1; tries++) {
        uint16_t pid = ++s->next_pid;
        bool used = false;
        if (pid == 0) {
            pid = s->next_pid = 1;
        }
        for (uint16_t i = 0; i < s->n_out; i++) {
            if (s->out[i].packet_id == pid) {
                used = true;
                break;
            }
        }
        if (!used) {
            return pid;
        }
    }
    return 0;
}

static void send_ack(struct mqtt_session *s, enum mqtt_type type, uint16_t pid, uint8_t reason,
                     const char *why)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = type;
    p.u.ack.packet_id = pid;
    p.u.ack.reason = reason;
    if (why != NULL && s->version == MQTT_V5 && reason >= 0x80) {
        p.u.ack.props.reason_string.ptr = why;
        p.u.ack.props.reason_string.len = strlen(why);
        mqtt_prop_set(&p.u.ack.props, MQTT_PROP_REASON_STRING);
    }
    mqtt_session_send(s, &p);
}

void mqtt_session_kick(struct mqtt_session *s, uint8_t reason, const char *why)
{
    if (!s->connected || s->state == MQTT_S_CLOSING) {
        return;
    }
    if (s->version == MQTT_V5 && s->state == MQTT_S_ACTIVE) {
        struct mqtt_packet p;
        memset(&p, 0, sizeof(p));
        p.type = MQTT_DISCONNECT;
        p.u.disconnect.reason = reason;
        if (why != NULL) {
            p.u.disconnect.props.reason_string.ptr = why;
            p.u.disconnect.props.reason_string.len = strlen(why);
            mqtt_prop_set(&p.u.disconnect.props, MQTT_PROP_REASON_STRING);
        }
        mqtt_session_send(s, &p);
    }
    s->state = MQTT_S_CLOSING;
    s->t.ops->close(s->t.conn, true);
}

/* The one place a codec or session error becomes a wire reason: count it, tell a v5
 * client why, close. */
static void protocol_error(struct mqtt_session *s, int err, const char *why)
{
    uint8_t reason = err < 0 ? mqtt_err_reason(err) : (uint8_t)err;
    mqtt_count_error(reason);
    sl_debug("[mqtt:session] %s (%s): %s, reason 0x%02x", s->client_id ? s->client_id : "-",
             s->connected ? s->t.ops->peer(s->t.conn) : "-",
             why != NULL ? why : mqtt_err_str(err), reason);
    if (s->state == MQTT_S_CONNECT) {
        /* No CONNACK yet: nothing else may be sent but a CONNACK. */
        s->state = MQTT_S_CLOSING;
        s->t.ops->close(s->t.conn, true);
        return;
    }
    mqtt_session_kick(s, reason, why != NULL ? why : mqtt_err_str(err));
}

/* ---------------------------------------------------------------- parking ---- */

static void park_link(struct mqtt_session *s)
{
    struct mqtt_broker *b = s->b;
    s->pk_prev = NULL;
    s->pk_next = b->parked;
    if (b->parked != NULL) {
        b->parked->pk_prev = s;
    }
    b->parked = s;
    b->n_parked++;
}

static void park_unlink(struct mqtt_session *s)
{
    struct mqtt_broker *b = s->b;
    if (s->pk_prev != NULL) {
        s->pk_prev->pk_next = s->pk_next;
    } else if (b->parked == s) {
        b->parked = s->pk_next;
    }
    if (s->pk_next != NULL) {
        s->pk_next->pk_prev = s->pk_prev;
    }
    s->pk_next = s->pk_prev = NULL;
    s->auth_ticket = 0;
    b->n_parked--;
    s->state = MQTT_S_CONNECT;
}

/* --------------------------------------------------------------- lifecycle ---- */

struct mqtt_session *mqtt_session_new(struct mqtt_broker *b, const struct sl_transport *t)
{
    struct mqtt_session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->b = b;
    s->t = *t;
    s->connected = true;
    s->state = MQTT_S_CONNECT;
    s->last_rx_ms = mqtt_now_ms();
    s->refs = 1;   /* the transport's */
    mqtt_session_take_limits(s);
    b->n_connected++;
    sl_metric_set(b->m_conns, (int64_t)b->n_connected);
    return s;
}

void mqtt_session_take_limits(struct mqtt_session *s)
{
    s->max_packet_in = s->b->lim.max_packet_size;
    s->receive_max_in = s->b->lim.receive_max;
    s->alias_max_in = s->b->lim.topic_alias_max;
    s->max_subs = s->b->lim.max_subscriptions;
}

static void will_clear(struct mqtt_session *s)
{
    sl_env_unref(&s->will);
    s->will_pending = false;
    s->will_at_ms = 0;
}

/* Topic aliases, both ways, belong to one network connection: drop them. */
static void aliases_drop(struct mqtt_session *s)
{
    for (uint16_t i = 0; i < s->n_alias; i++) {
        free(s->alias[i]);
    }
    free(s->alias);
    s->alias = NULL;
    s->n_alias = 0;
    mqtt_alias_out_clear(&s->alias_out);
}

static void sess_free(struct mqtt_session *s)
{
    will_clear(s);
    for (uint32_t i = 0; i < s->n_subs; i++) {
        free(s->subs[i].filter);
        free(s->subs[i].share_group);
    }
    free(s->subs);
    free(s->tps);
    for (uint16_t i = 0; i < s->n_out; i++) {
        sl_buf_unref(&s->out[i].pkt);
    }
    free(s->out);
    free(s->q2);
    aliases_drop(s);
    free(s->client_id);
    free(s->auth_pkt);
    if (s->held != NULL) {
        evbuffer_free(s->held);
    }
    free(s);
}

static void sess_unlink(struct mqtt_session *s)
{
    struct mqtt_broker *b = s->b;
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else if (b->all == s) {
        b->all = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
}

void mqtt_session_destroy(struct mqtt_session *s)
{
    struct mqtt_broker *b = s->b;
    mqtt_subs_session_gone(b->subs, s);
    if (s->in_store && b->store != NULL) {
        mqtt_store_remove(b->store, s->client_id);
        s->in_store = false;
    }
    if (s->client_id != NULL && mqtt_broker_find(b, s->client_id) == s) {
        mqtt_broker_unindex(b, s);
    }
    sess_unlink(s);
    s->state = MQTT_S_CLOSING;
    s->refs++;
    sess_unref(s);
}

static void will_done(void *arg, const struct sl_publish_result *res)
{
    struct mqtt_broker *b = arg;
    if (res->status == 0 && b != NULL && res->n > 0 && b->subs != NULL) {
        mqtt_subs_topic_seen(b->subs, res->items[0].topic);
    }
    if (res->status != 0) {
        sl_warn("[mqtt:session] will message not stored: %s",
                res->error != NULL ? res->error : "error");
    }
}

void mqtt_session_fire_will(struct mqtt_session *s)
{
    struct mqtt_broker *b = s->b;
    struct sl_pub_source src = {.listener = b->listener};
    struct sl_env *env = s->will;

    if (env == NULL) {
        will_clear(s);
        return;
    }
    if (sl_gateway_publish(b->gw, &src, &env, 1, will_done, b) != 0) {
        sl_warn("[mqtt:session] %s: will message refused", s->client_id);
    }
    if (s->will_retain && b->retain != NULL) {
        mqtt_retain_set(b->retain, env, NULL, NULL);
    }
    will_clear(s);
}

void mqtt_session_closed(void *sess)
{
    struct mqtt_session *s = sess;
    struct mqtt_broker *b = s->b;
    int64_t now = mqtt_now_ms();

    if (s->state == MQTT_S_AUTH) {
        park_unlink(s);   /* its verdict will find nothing */
    }
    s->connected = false;
    aliases_drop(s);
    b->n_connected--;
    sl_metric_set(b->m_conns, (int64_t)b->n_connected);
    if (s->version == 0 || s->client_id == NULL || mqtt_broker_find(b, s->client_id) != s) {
        /* never got past CONNECT, or a blank object replaced by a resumed session */
        s->state = MQTT_S_CLOSING;
        sess_unref(s);
        return;
    }
    if (s->will_pending && s->will != NULL) {
        uint32_t delay = s->will_delay < s->session_expiry ? s->will_delay : s->session_expiry;
        if (delay == 0 || b->stopping) {
            mqtt_session_fire_will(s);
        } else {
            s->will_at_ms = now + (int64_t)delay * 1000;
        }
    }
    if (s->session_expiry == 0) {
        if (s->will != NULL) {
            mqtt_session_fire_will(s);
        }
        mqtt_session_destroy(s);
        sess_unref(s);
        return;
    }
    s->state = MQTT_S_OFFLINE;
    s->expire_at_ms = s->session_expiry == 0xFFFFFFFFu ? 0
                                                       : now + (int64_t)s->session_expiry * 1000;
    mqtt_subs_offline(s);
    if (b->store != NULL) {
        mqtt_store_save(b->store, s);
    }
    s->refs--;   /* the transport's reference; the broker's list keeps the object */
}

/* --------------------------------------------------------------- CONNECT ---- */

static void send_connack(struct mqtt_session *s, uint8_t version, uint8_t reason, bool present,
                         const char *assigned, uint16_t server_ka)
{
    struct mqtt_packet p;
    uint8_t saved = s->version;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNACK;
    p.u.connack.session_present = present;
    if (version == MQTT_V5) {
        struct mqtt_props *pr = &p.u.connack.props;
        p.u.connack.reason = reason;
        if (reason == 0) {
            pr->receive_max = s->receive_max_in;
            mqtt_prop_set(pr, MQTT_PROP_RECEIVE_MAX);
            pr->topic_alias_max = s->alias_max_in;
            mqtt_prop_set(pr, MQTT_PROP_TOPIC_ALIAS_MAX);
            pr->max_packet_size = s->max_packet_in;
            mqtt_prop_set(pr, MQTT_PROP_MAX_PACKET_SIZE);
            pr->retain_available = 1;
            mqtt_prop_set(pr, MQTT_PROP_RETAIN_AVAILABLE);
            pr->shared_sub_available = 1;
            mqtt_prop_set(pr, MQTT_PROP_SHARED_SUB_AVAILABLE);
            if (assigned != NULL) {
                pr->assigned_client_id.ptr = assigned;
                pr->assigned_client_id.len = strlen(assigned);
                mqtt_prop_set(pr, MQTT_PROP_ASSIGNED_CLIENT_ID);
            }
            if (server_ka != 0) {
                pr->server_keep_alive = server_ka;
                mqtt_prop_set(pr, MQTT_PROP_SERVER_KEEP_ALIVE);
            }
            if (s->expiry_capped) {
                /* MQTT 5 3.2.2.3.2: a server using another value than the client's
                 * must send it */
                pr->session_expiry = s->session_expiry;
                mqtt_prop_set(pr, MQTT_PROP_SESSION_EXPIRY);
            }
        }
    } else {
        /* 3.1.1 return codes */
        switch (reason) {
        case 0x00: p.u.connack.reason = 0; break;
        case 0x84: p.u.connack.reason = 1; break;
        case 0x85: p.u.connack.reason = 2; break;
        case 0x88: case 0x89: p.u.connack.reason = 3; break;
        case 0x86: p.u.connack.reason = 4; break;
        case 0x87: p.u.connack.reason = 5; break;
        default: p.u.connack.reason = 3; break;
        }
    }
    s->version = version;
    mqtt_session_send(s, &p);
    if (reason != 0) {
        s->version = saved;
    }
}

static void refuse_connect(struct mqtt_session *s, uint8_t version, uint8_t reason,
                           const char *why)
{
    mqtt_count_error(reason);
    sl_info("[mqtt:session] %s: CONNECT refused (0x%02x %s)", s->t.ops->peer(s->t.conn),
            reason, why);
    send_connack(s, version == MQTT_V5 ? MQTT_V5 : MQTT_V311, reason, false, NULL, 0);
    s->state = MQTT_S_CLOSING;
    s->t.ops->close(s->t.conn, true);
}

static int env_add_props(struct sl_env *env, const struct mqtt_props *pr)
{
    struct mqtt_iter it;
    struct mqtt_user_prop up;
    char name[256];
    int rc = 0;

    memset(&it, 0, sizeof(it));
    while (rc == 0 && mqtt_user_prop_next(&pr->user, &it, &up)) {
        if (up.name.len >= sizeof(name)) {
            continue;
        }
        memcpy(name, up.name.ptr, up.name.len);
        name[up.name.len] = '\0';
        rc = sl_env_add_header(env, name, up.value.ptr, (int32_t)up.value.len);
    }
    if (rc == 0 && mqtt_prop_has(pr, MQTT_PROP_CONTENT_TYPE)) {
        if (sl_env_set_attr(env, "datacontenttype", pr->content_type.ptr,
                            pr->content_type.len) == -ENOMEM) {
            rc = -ENOMEM;
        }
    }
    if (rc == 0 && mqtt_prop_has(pr, MQTT_PROP_PAYLOAD_FORMAT)) {
        rc = sl_env_add_header(env, MQTT_H_PAYLOAD_FORMAT, pr->payload_format ? "1" : "0", 1);
    }
    if (rc == 0 && mqtt_prop_has(pr, MQTT_PROP_RESPONSE_TOPIC)) {
        rc = sl_env_add_header(env, MQTT_H_RESPONSE_TOPIC, pr->response_topic.ptr,
                               (int32_t)pr->response_topic.len);
    }
    if (rc == 0 && mqtt_prop_has(pr, MQTT_PROP_CORRELATION_DATA)) {
        rc = sl_env_add_header(env, MQTT_H_CORRELATION, pr->correlation_data.ptr,
                               (int32_t)pr->correlation_data.len);
    }
    if (rc == 0 && mqtt_prop_has(pr, MQTT_PROP_MESSAGE_EXPIRY)) {
        char v[16];
        int n = snprintf(v, sizeof(v), "%u", pr->message_expiry);
        rc = sl_env_add_header(env, MQTT_H_EXPIRY, v, n);
    }
    return rc;
}

/* Build the envelope of a PUBLISH (or a will). NULL on out of memory. */
static struct sl_env *make_env(struct mqtt_session *s, const char *topic, size_t tlen,
                               const uint8_t *data, size_t len, const struct mqtt_props *pr,
                               uint8_t qos, bool retain)
{
    struct sl_env *env = sl_env_new();
    char q[2] = {(char)('0' + qos), 0};
    if (env == NULL) {
        return NULL;
    }
    if (sl_env_set_attr(env, "subject", topic, tlen) != 0 ||
        sl_env_set_data(env, data, len) != 0 ||
        sl_env_set_origin(env, "mqtt", s->b->listener, NULL) != 0 ||
        (s->version == MQTT_V5 && env_add_props(env, pr) != 0) ||
        sl_env_add_header(env, MQTT_H_QOS, q, 1) != 0 ||
        (retain && sl_env_add_header(env, MQTT_H_RETAIN, "1", 1) != 0)) {
        sl_env_unref(&env);
        return NULL;
    }
    if (s->client_id != NULL) {
        char src[300];
        int n = snprintf(src, sizeof(src), "/sluice/mqtt/%s", s->client_id);
        if (n > 0 && (size_t)n < sizeof(src)) {
            sl_env_set_attr(env, "source", src, (size_t)n);   /* best effort */
        }
    }
    return env;
}

/* Move the connection of blank session `s` onto the stored session `old`. */
static struct mqtt_session *take_over(struct mqtt_session *s, struct mqtt_session *old)
{
    old->t = s->t;
    old->connected = true;
    old->t.ops->rebind(old->t.conn, old);
    old->refs++;          /* the transport's */
    aliases_drop(old);    /* a new network connection: no alias carries over */
    if (old->held != NULL) {
        /* nor bytes: a partial packet the previous connection left would otherwise lead
         * this one's stream (or leak, replaced by the parked CONNECT's held bytes) */
        evbuffer_free(old->held);
        old->held = NULL;
    }
    old->state = MQTT_S_CONNECT;
    old->expire_at_ms = 0;
    old->will_at_ms = 0;
    sl_env_unref(&old->will);
    old->will_pending = false;
    /* The blank object has no transport any more and is freed once unreferenced. */
    s->connected = false;
    s->state = MQTT_S_CLOSING;
    s->b->n_connected--;   /* counted twice otherwise: old now carries the connection */
    s->refs--;
    s->b->n_connected++;
    return old;
}

/* Park s until the verdict for ticket: keep a copy of the CONNECT (pkt, len), read
 * nothing more from the client (what arrives meanwhile waits in s->held). Takes cid. */
static void park(struct mqtt_session *s, const uint8_t *pkt, size_t len, uint64_t ticket,
                 uint8_t version, char *cid)
{
    s->auth_pkt = malloc(len);
    if (s->held == NULL) {
        s->held = evbuffer_new();
    }
    if (s->auth_pkt == NULL || s->held == NULL) {
        free(cid);
        refuse_connect(s, version, 0x97, "out of memory");
        return;
    }
    memcpy(s->auth_pkt, pkt, len);
    s->auth_len = len;
    s->auth_version = version;
    s->auth_ticket = ticket;
    s->client_id = cid;       /* to find it by client id; version stays 0 (not connected) */
    park_link(s);
    s->state = MQTT_S_AUTH;
    s->t.ops->pause_read(s->t.conn, true);
}

/* The newest accepted CONNECT for a client id wins: an older one still waiting for its
 * password verdict would otherwise take this session over once it arrives. Close those
 * (no CONNACK code says "taken over"). */
static void supersede_parked(struct mqtt_broker *b, const struct mqtt_session *s,
                             const char *cid)
{
    struct mqtt_session *p = b->parked, *next;
    for (; p != NULL; p = next) {
        next = p->pk_next;
        if (p != s && p->client_id != NULL && strcmp(p->client_id, cid) == 0) {
            park_unlink(p);
            mqtt_count_error(0x8E);
            sl_info("[mqtt:session] %s: CONNECT of %s dropped while its password was "
                    "checked: a newer connection took the client id", p->t.ops->peer(p->t.conn),
                    cid);
            p->state = MQTT_S_CLOSING;
            p->t.ops->close(p->t.conn, true);
        }
    }
}

/* CONNECT c (the raw packet pkt, len: kept when the session parks). verdict: -1 not
 * decided yet (ask b->auth), else the credentials' verdict already reached (0 allow, or
 * a CONNACK reason). Returns the session now carrying the connection. */
static struct mqtt_session *handle_connect(struct mqtt_session *s, const struct mqtt_connect *c,
                                           const uint8_t *pkt, size_t len, int verdict)
{
    struct mqtt_broker *b = s->b;
    struct mqtt_session *old;
    char assigned[40];
    const char *assigned_id = NULL;
    uint16_t server_ka = 0;
    bool present = false;
    uint8_t v = c->protocol_level;
    char *cid;

    if (c->client_id.len == 0) {
        if (v == MQTT_V311 && !c->clean_start) {
            refuse_connect(s, v, 0x85, "empty client id needs a clean session");
            return s;
        }
        snprintf(assigned, sizeof(assigned), "sluice-%llx-%llx",
                 (unsigned long long)mqtt_now_ms(), (unsigned long long)++b->next_anon);
        assigned_id = assigned;
        cid = strdup(assigned);
    } else {
        cid = mqtt_str_dup(&c->client_id);
    }
    if (cid == NULL) {
        refuse_connect(s, v, 0x97, "out of memory");
        return s;
    }
    if (mqtt_prop_has(&c->props, MQTT_PROP_AUTH_METHOD)) {
        free(cid);
        refuse_connect(s, v, 0x8C, "enhanced authentication is not supported");
        return s;
    }
    if (verdict < 0) {
        verdict = 0;
        if (b->auth != NULL) {
            uint64_t ticket = ++b->next_ticket;
            verdict = b->auth(b->auth_arg, ticket, cid, c->has_username ? &c->username : NULL,
                              c->has_password ? &c->password : NULL);
            if (verdict == MQTT_AUTH_PENDING) {
                park(s, pkt, len, ticket, v, cid);
                return s;
            }
        } else if (!b->lim.allow_anonymous && !c->has_username) {
            verdict = 0x87;
        }
    }
    if (verdict != 0) {
        free(cid);
        refuse_connect(s, v, verdict > 0 && verdict < 0x100 ? (uint8_t)verdict : 0x87,
                       verdict == 0x89 ? "server busy: too many password checks pending"
                       : verdict == 0x87 && b->auth == NULL ? "anonymous clients are not allowed"
                                                            : "not authorized");
        return s;
    }
    supersede_parked(b, s, cid);
    mqtt_session_take_limits(s);   /* the limits in force now, announced in CONNACK */
    s->version = v;
    s->client_id = cid;
    s->clean_start = c->clean_start;
    s->keepalive = c->keep_alive;
    if (b->lim.max_keepalive != 0 &&
        (s->keepalive == 0 || s->keepalive > b->lim.max_keepalive)) {
        s->keepalive = b->lim.max_keepalive;
        server_ka = s->keepalive;
    }
    if (v == MQTT_V5) {
        s->session_expiry = mqtt_prop_has(&c->props, MQTT_PROP_SESSION_EXPIRY)
                                ? c->props.session_expiry : 0;
        s->send_quota_max = mqtt_prop_has(&c->props, MQTT_PROP_RECEIVE_MAX)
                                ? c->props.receive_max : 65535;
        s->max_packet_out = mqtt_prop_has(&c->props, MQTT_PROP_MAX_PACKET_SIZE)
                                ? c->props.max_packet_size : 0;
    } else {
        s->session_expiry = c->clean_start ? 0 : 0xFFFFFFFFu;
        s->send_quota_max = b->lim.max_inflight;
    }
    if (s->send_quota_max > b->lim.max_inflight) {
        s->send_quota_max = b->lim.max_inflight;
    }
    s->expiry_capped = s->session_expiry > b->lim.max_session_expiry;
    if (s->expiry_capped) {
        s->session_expiry = b->lim.max_session_expiry;
    }
    if (c->will) {
        s->will = make_env(s, c->will_topic.ptr, c->will_topic.len, c->will_payload.ptr,
                           c->will_payload.len, &c->will_props, c->will_qos, c->will_retain);
        s->will_qos = c->will_qos;
        s->will_retain = c->will_retain;
        s->will_delay = mqtt_prop_has(&c->will_props, MQTT_PROP_WILL_DELAY)
                            ? c->will_props.will_delay : 0;
        s->will_pending = s->will != NULL;
    }

    old = mqtt_broker_find(b, cid);
    if (old != NULL) {
        if (old->connected) {
            /* Take-over: the old connection goes (its will too if not delayed). */
            struct sl_transport ot = old->t;
            if (old->version == MQTT_V5 && old->state == MQTT_S_ACTIVE) {
                struct mqtt_packet p;
                memset(&p, 0, sizeof(p));
                p.type = MQTT_DISCONNECT;
                p.u.disconnect.reason = 0x8E;
                mqtt_session_send(old, &p);
            }
            ot.ops->rebind(ot.conn, NULL);
            ot.ops->close(ot.conn, true);
            old->connected = false;
            b->n_connected--;
            old->refs--;
            if (old->will_pending && old->will != NULL && old->will_delay == 0) {
                mqtt_session_fire_will(old);
            }
            if (old->session_expiry == 0) {
                mqtt_session_destroy(old);
                old = NULL;
            } else {
                old->state = MQTT_S_OFFLINE;
                mqtt_subs_offline(old);
            }
        }
    }
    if (old != NULL && c->clean_start) {
        if (old->will != NULL && old->will_at_ms != 0) {
            mqtt_session_fire_will(old);
        }
        mqtt_session_destroy(old);
        old = NULL;
    }
    if (old != NULL) {
        struct sl_env *will = s->will;
        s->will = NULL;
        old->version = s->version;
        old->keepalive = s->keepalive;
        old->clean_start = false;
        old->session_expiry = s->session_expiry;
        old->send_quota_max = s->send_quota_max;
        old->max_packet_out = s->max_packet_out;
        old->max_packet_in = s->max_packet_in;
        old->receive_max_in = s->receive_max_in;
        old->alias_max_in = s->alias_max_in;
        old->max_subs = s->max_subs;
        old->last_rx_ms = mqtt_now_ms();
        s = take_over(s, old);
        s->will = will;
        s->will_qos = will != NULL ? s->will_qos : 0;
        s->will_pending = will != NULL;
        if (will != NULL) {
            /* copy the will settings from the CONNECT */
            s->will_qos = c->will_qos;
            s->will_retain = c->will_retain;
            s->will_delay = mqtt_prop_has(&c->will_props, MQTT_PROP_WILL_DELAY)
                                ? c->will_props.will_delay : 0;
        }
        present = true;
    } else {
        s->next = b->all;
        if (b->all != NULL) {
            b->all->prev = s;
        }
        b->all = s;
        mqtt_broker_index(b, s);
    }
    s->state = MQTT_S_ACTIVE;
    /* Outbound aliases on this connection: the client's maximum, capped; resends of
     * unacknowledged messages below carry full topics. */
    mqtt_alias_out_reset(&s->alias_out,
                         v == MQTT_V5 && mqtt_prop_has(&c->props, MQTT_PROP_TOPIC_ALIAS_MAX)
                             ? c->props.topic_alias_max : 0);
    send_connack(s, v, 0, present, assigned_id, server_ka);
    if (present) {
        mqtt_subs_resume(s);
    }
    if (b->store != NULL && s->session_expiry != 0) {
        mqtt_store_save(b->store, s);
    } else if (b->store != NULL && s->in_store) {
        mqtt_store_remove(b->store, s->client_id);
        s->in_store = false;
    }
    return s;
}

/* --------------------------------------------------------------- PUBLISH in ---- */


static bool q2_has(const struct mqtt_session *s, uint16_t pid)
{
    for (uint16_t i = 0; i < s->n_q2; i++) {
        if (s->q2[i] == pid) {
            return true;
        }
    }
    return false;
}

static int q2_add(struct mqtt_session *s, uint16_t pid)
{
    if (s->n_q2 == s->cap_q2) {
        uint16_t cap = s->cap_q2 ? (uint16_t)(s->cap_q2 * 2) : 4;
        uint16_t *n = realloc(s->q2, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        s->q2 = n;
        s->cap_q2 = cap;
    }
    s->q2[s->n_q2++] = pid;
    return 0;
}

static bool q2_del(struct mqtt_session *s, uint16_t pid)
{
    for (uint16_t i = 0; i < s->n_q2; i++) {
        if (s->q2[i] == pid) {
            s->q2[i] = s->q2[--s->n_q2];
            return true;
        }
    }
    return false;
}

/* Send the acks at the head of the queue that are complete, in arrival order. */
static void pubq_flush(struct mqtt_session *s)
{
    while (s->pq_head != NULL && s->pq_head->done) {
        struct pub_wait *w = s->pq_head;
        s->pq_head = w->next;
        if (s->pq_head == NULL) {
            s->pq_tail = NULL;
        }
        if (s->connected && s->state == MQTT_S_ACTIVE) {
            if (w->qos == 1) {
                if (w->ok || s->version == MQTT_V5) {
                    send_ack(s, MQTT_PUBACK, w->pid, w->ok ? 0 : w->reason,
                             w->ok ? NULL : "not stored");
                } else {
                    protocol_error(s, w->reason, "publish not stored");
                }
            } else if (w->qos == 2) {
                if (!w->ok) {
                    q2_del(s, w->pid);
                }
                if (w->ok || s->version == MQTT_V5) {
                    send_ack(s, MQTT_PUBREC, w->pid, w->ok ? 0 : w->reason,
                             w->ok ? NULL : "not stored");
                } else {
                    protocol_error(s, w->reason, "publish not stored");
                }
            }
        } else if (w->qos == 2 && !w->ok) {
            q2_del(s, w->pid);
        }
        if (s->inflight_in > 0 && w->qos > 0) {
            s->inflight_in--;
        }
        free(w);
    }
    if (s->read_paused && s->connected && s->inflight_in < s->receive_max_in) {
        s->read_paused = false;
        s->t.ops->pause_read(s->t.conn, false);
    }
}

static uint8_t reason_for_status(int status)
{
    switch (status) {
    case -EINVAL: return 0x90;
    case -ENOENT: return 0x90;
    case -ENOSPC: return 0x97;
    case -ENOMEM: return 0x97;
    default: return 0x80;
    }
}

static void retain_stored(void *arg, int status)
{
    struct pub_wait *w = arg;
    struct mqtt_session *s = w->s;
    if (s->b == NULL) {
        free(w);
        sess_unref(s);
        return;
    }
    w->done = true;
    w->ok = status == 0;
    w->reason = reason_for_status(status);
    pubq_flush(s);
    sess_unref(s);
}

static void publish_done(void *arg, const struct sl_publish_result *res)
{
    struct pub_wait *w = arg;
    struct mqtt_session *s = w->s;

    if (s->b == NULL) {
        sl_env_unref(&w->retain_env);
        free(w);
        sess_unref(s);
        return;
    }
    if (res->status == 0 && res->n > 0) {
        mqtt_subs_topic_seen(s->b->subs, res->items[0].topic);
    }
    if (res->status == 0 && w->retain_env != NULL && s->b->retain != NULL) {
        struct sl_env *env = w->retain_env;
        w->retain_env = NULL;
        mqtt_retain_set(s->b->retain, env, retain_stored, w);
        sl_env_unref(&env);
        return;
    }
    sl_env_unref(&w->retain_env);
    if (res->status != 0) {
        sl_metric_add(s->b->m_dropped, 1);
    }
    w->done = true;
    w->ok = res->status == 0;
    w->reason = reason_for_status(res->status);
    pubq_flush(s);
    sess_unref(s);
}

/* Publishes read in one burst from one session go to the log as one call (one
 * RecordBatch per partition): the loop thread only, flushed at the end of each read, before
 * any other packet and when full. */
#define PUB_BATCH 64
static struct {
    struct mqtt_session *s;
    size_t n;
    struct sl_env *envs[PUB_BATCH];
    struct pub_wait *ws[PUB_BATCH];      /* NULL for QoS 0 */
} batch;

struct batch_cb {
    struct mqtt_broker *b;
    struct mqtt_session *s;
    size_t n;
    struct pub_wait *ws[];
};

static void batch_done(void *arg, const struct sl_publish_result *res)
{
    struct batch_cb *cb = arg;
    struct mqtt_session *s = cb->s;
    size_t n_waits = 0;

    if (s->b != NULL) {
        if (res->status == 0) {
            for (size_t i = 0; i < res->n; i++) {
                mqtt_subs_topic_seen(s->b->subs, res->items[i].topic);
            }
        } else {
            sl_metric_add(s->b->m_dropped, cb->n);
        }
    }
    for (size_t i = 0; i < cb->n; i++) {
        struct pub_wait *w = cb->ws[i];
        if (w == NULL) {
            continue;
        }
        n_waits++;
        if (s->b == NULL) {
            free(w);
            continue;
        }
        w->done = true;
        w->ok = res->status == 0;
        w->reason = reason_for_status(res->status);
    }
    if (s->b != NULL) {
        pubq_flush(s);
    }
    free(cb);
    for (size_t i = 0; i < n_waits; i++) {
        sess_unref(s);
    }
    sess_unref(s);      /* the callback's own reference */
}

static void batch_flush(void)
{
    struct mqtt_session *s = batch.s;
    struct batch_cb *cb;
    size_t n = batch.n;
    int rc;

    if (n == 0) {
        return;
    }
    batch.n = 0;
    cb = malloc(sizeof(*cb) + n * sizeof(cb->ws[0]));
    if (cb == NULL) {
        struct sl_publish_result res = {.status = -ENOMEM, .error = "out of memory"};
        struct batch_cb tmp = {.b = s->b, .s = s, .n = 0};
        for (size_t i = 0; i < n; i++) {
            sl_env_unref(&batch.envs[i]);
            if (batch.ws[i] != NULL) {
                struct batch_cb *one = malloc(sizeof(*one) + sizeof(one->ws[0]));
                if (one != NULL) {
                    *one = tmp;
                    one->n = 1;
                    one->ws[0] = batch.ws[i];
                    s->refs++;
                    batch_done(one, &res);
                }
            }
        }
        return;
    }
    cb->b = s->b;
    cb->s = s;
    cb->n = n;
    memcpy(cb->ws, batch.ws, n * sizeof(cb->ws[0]));
    s->refs++;
    {
        struct sl_pub_source src = {.listener = s->b->listener};
        rc = sl_gateway_publish(s->b->gw, &src, batch.envs, n, batch_done, cb);
        if (rc != 0 && n > 1) {
            /* One bad event (a topic that cannot be routed) must not refuse the others:
             * publish them one by one. */
            free(cb);
            s->refs--;          /* cb's reference; each `one` takes its own */
            for (size_t i = 0; i < n; i++) {
                struct batch_cb *one = malloc(sizeof(*one) + sizeof(one->ws[0]));
                if (one == NULL) {
                    struct pub_wait *w = batch.ws[i];
                    if (w != NULL) {
                        w->done = true;
                        w->reason = 0x97;
                        pubq_flush(s);
                        sess_unref(s);
                    }
                    continue;
                }
                one->b = s->b;
                one->s = s;
                one->n = 1;
                one->ws[0] = batch.ws[i];
                s->refs++;
                rc = sl_gateway_publish(s->b->gw, &src, &batch.envs[i], 1, batch_done, one);
                if (rc != 0) {
                    struct sl_publish_result res = {.status = rc, .error = "refused"};
                    batch_done(one, &res);
                }
            }
            cb = NULL;
            rc = 0;
        }
    }
    for (size_t i = 0; i < n; i++) {
        sl_env_unref(&batch.envs[i]);
    }
    if (rc != 0) {
        struct sl_publish_result res = {.status = rc, .error = "refused"};
        batch_done(cb, &res);
    }
}

/* Queue env (ownership taken) and w (may be NULL) for the session's batch. */
static void batch_add(struct mqtt_session *s, struct sl_env *env, struct pub_wait *w)
{
    if (batch.s != s) {
        batch_flush();
        batch.s = s;
    }
    batch.envs[batch.n] = env;
    batch.ws[batch.n] = w;
    if (++batch.n == PUB_BATCH) {
        batch_flush();
    }
}

static void handle_publish(struct mqtt_session *s, const struct mqtt_publish *p)
{
    struct mqtt_broker *b = s->b;
    struct sl_pub_source src = {.listener = b->listener};
    const char *topic = p->topic.ptr;
    size_t tlen = p->topic.len;
    struct pub_wait *w;
    struct sl_env *env;
    int rc;

    if (s->version == MQTT_V5 && mqtt_prop_has(&p->props, MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = p->props.topic_alias;
        if (a == 0 || a > (s->alias != NULL ? s->n_alias : s->alias_max_in)) {
            protocol_error(s, 0x94, "topic alias out of range");
            return;
        }
        if (s->alias == NULL) {
            s->alias = calloc(s->alias_max_in, sizeof(*s->alias));
            if (s->alias == NULL) {
                protocol_error(s, 0x97, "out of memory");
                return;
            }
            s->n_alias = s->alias_max_in;
        }
        if (tlen == 0) {
            if (s->alias[a - 1] == NULL) {
                protocol_error(s, 0x82, "unknown topic alias");
                return;
            }
            topic = s->alias[a - 1];
            tlen = strlen(topic);
        } else {
            char *t = mqtt_str_dup(&p->topic);
            if (t == NULL) {
                protocol_error(s, 0x97, "out of memory");
                return;
            }
            free(s->alias[a - 1]);
            s->alias[a - 1] = t;
        }
    } else if (tlen == 0) {
        protocol_error(s, MQTT_ERR_TOPIC_NAME, "empty topic without alias");
        return;
    }
    if (p->qos == 2 && q2_has(s, p->packet_id)) {
        /* A resend of a QoS 2 message already stored: acknowledge again, no duplicate. */
        send_ack(s, MQTT_PUBREC, p->packet_id, 0, NULL);
        return;
    }
    if (p->qos > 0) {
        if (s->inflight_in >= s->receive_max_in) {
            if (s->version == MQTT_V5) {
                protocol_error(s, 0x93, "receive maximum exceeded");
                return;
            }
        }
    }
    sl_metric_add(b->m_in, 1);
    env = make_env(s, topic, tlen, p->payload.ptr, p->payload.len, &p->props, p->qos,
                   p->retain);
    if (env == NULL) {
        if (p->qos == 1 && s->version == MQTT_V5) {
            send_ack(s, MQTT_PUBACK, p->packet_id, 0x97, "out of memory");
        } else if (p->qos == 2 && s->version == MQTT_V5) {
            send_ack(s, MQTT_PUBREC, p->packet_id, 0x97, "out of memory");
        } else if (p->qos > 0) {
            protocol_error(s, 0x97, "out of memory");
        }
        return;
    }
    if (p->qos == 0 && !p->retain) {
        /* Fire and forget: the append still happens, nobody waits for it. */
        batch_add(s, env, NULL);
        return;
    }
    if (p->retain) {
        batch_flush();     /* keep the order: the retained one goes on its own */
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        free(w);
        sl_env_unref(&env);
        protocol_error(s, 0x97, "out of memory");
        return;
    }
    w->s = s;
    w->pid = p->packet_id;
    w->qos = p->qos;
    if (p->retain && b->retain != NULL) {
        w->retain_env = sl_env_ref(env);
    }
    if (p->qos == 2 && q2_add(s, p->packet_id) != 0) {
        sl_env_unref(&w->retain_env);
        free(w);
        sl_env_unref(&env);
        protocol_error(s, 0x97, "out of memory");
        return;
    }
    if (s->pq_tail != NULL) {
        s->pq_tail->next = w;
    } else {
        s->pq_head = w;
    }
    s->pq_tail = w;
    if (p->qos > 0) {
        s->inflight_in++;
        if (s->inflight_in >= s->receive_max_in && !s->read_paused) {
            s->read_paused = true;
            s->t.ops->pause_read(s->t.conn, true);
        }
    }
    s->refs++;
    if (w->retain_env == NULL) {
        batch_add(s, env, w);
        return;
    }
    rc = sl_gateway_publish(b->gw, &src, &env, 1, publish_done, w);
    sl_env_unref(&env);
    if (rc != 0) {
        struct sl_publish_result res = {.status = rc, .error = "refused"};
        publish_done(w, &res);
    }
}

/* --------------------------------------------------------------- dispatch ---- */

static struct mqtt_session *handle_packet(struct mqtt_session *s, const uint8_t *pkt, size_t len)
{
    struct mqtt_packet p;
    int rc;

    if (s->state == MQTT_S_CONNECT) {
        rc = mqtt_decode(pkt, len, MQTT_V5, &p);
        if ((pkt[0] >> 4) != MQTT_CONNECT) {
            protocol_error(s, MQTT_ERR_PROTOCOL, "first packet is not CONNECT");
            return s;
        }
        if (rc == MQTT_ERR_UNSUPPORTED_VERSION) {
            refuse_connect(s, p.u.connect.protocol_level == MQTT_V5 ? MQTT_V5 : MQTT_V311, 0x84,
                           "unsupported protocol version");
            return s;
        }
        if (rc < 0) {
            if (p.u.connect.protocol_level == MQTT_V5 || p.u.connect.protocol_level == MQTT_V311) {
                refuse_connect(s, p.u.connect.protocol_level, mqtt_err_reason(rc),
                               mqtt_err_str(rc));
            } else {
                protocol_error(s, rc, NULL);
            }
            return s;
        }
        return handle_connect(s, &p.u.connect, pkt, len, -1);
    }
    rc = mqtt_decode(pkt, len, (enum mqtt_version)s->version, &p);
    if (rc < 0) {
        protocol_error(s, rc, NULL);
        return s;
    }
    switch (p.type) {
    case MQTT_PUBLISH:
        handle_publish(s, &p.u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        mqtt_subs_ack(s, p.type, p.u.ack.packet_id, p.u.ack.reason);
        break;
    case MQTT_PUBREL:
        if (q2_del(s, p.u.ack.packet_id) || s->version != MQTT_V5) {
            send_ack(s, MQTT_PUBCOMP, p.u.ack.packet_id, 0, NULL);
        } else {
            send_ack(s, MQTT_PUBCOMP, p.u.ack.packet_id, 0x92, "packet identifier not found");
        }
        break;
    case MQTT_SUBSCRIBE:
        mqtt_session_subscribe(s, &p.u.subscribe);
        break;
    case MQTT_UNSUBSCRIBE:
        mqtt_session_unsubscribe(s, &p.u.subscribe);
        break;
    case MQTT_PINGREQ: {
        struct mqtt_packet r;
        memset(&r, 0, sizeof(r));
        r.type = MQTT_PINGRESP;
        mqtt_session_send(s, &r);
        break;
    }
    case MQTT_DISCONNECT:
        if (s->version == MQTT_V5 && p.u.disconnect.reason == 0x04) {
            /* disconnect with will message: keep it armed */
        } else {
            will_clear(s);
        }
        if (s->version == MQTT_V5 &&
            mqtt_prop_has(&p.u.disconnect.props, MQTT_PROP_SESSION_EXPIRY)) {
            if (s->session_expiry == 0 && p.u.disconnect.props.session_expiry != 0) {
                protocol_error(s, 0x82, "session expiry set on DISCONNECT after 0");
                return s;
            }
            s->session_expiry = p.u.disconnect.props.session_expiry;
            if (s->session_expiry > s->b->lim.max_session_expiry) {
                s->session_expiry = s->b->lim.max_session_expiry;
            }
        }
        s->state = MQTT_S_CLOSING;
        s->t.ops->close(s->t.conn, true);
        break;
    case MQTT_CONNECT:
        protocol_error(s, MQTT_ERR_PROTOCOL, "second CONNECT");
        break;
    default:
        /* CONNACK, SUBACK, UNSUBACK, PINGRESP, AUTH: not from a client (or unsupported) */
        protocol_error(s, MQTT_ERR_PROTOCOL, "unexpected packet type");
        break;
    }
    return s;
}

void mqtt_session_data(void *sess, struct evbuffer *in)
{
    struct mqtt_session *s = sess;
    struct mqtt_session *blank = s;
    size_t len = evbuffer_get_length(in), off = 0;
    uint8_t *buf;

    if (s->held != NULL && in != s->held) {
        /* bytes held since a parked CONNECT come first */
        evbuffer_add_buffer(s->held, in);
        in = s->held;
        len = evbuffer_get_length(in);
    }
    if (len == 0 || s->state == MQTT_S_AUTH) {
        return;   /* parked: the bytes wait in s->held for the verdict */
    }
    buf = evbuffer_pullup(in, -1);
    if (buf == NULL) {
        protocol_error(s, 0x97, "out of memory");
        return;
    }
    if (s->state == MQTT_S_CONNECT && (buf[0] >> 4) != MQTT_CONNECT) {
        /* not MQTT (or not a CONNECT first): no need to wait for a whole "packet" */
        protocol_error(s, MQTT_ERR_PROTOCOL, "first packet is not CONNECT");
        evbuffer_drain(in, len);
        return;
    }
    blank->refs++;
    s->last_rx_ms = mqtt_now_ms();
    /* Bounded by len: every iteration consumes a whole packet or stops. */
    while (off < len && s->connected &&
           (s->state == MQTT_S_CONNECT || s->state == MQTT_S_ACTIVE)) {
        size_t plen = 0;
        int rc = mqtt_frame(buf + off, len - off, s->max_packet_in, &plen);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            protocol_error(s, rc, rc == MQTT_ERR_TOO_LARGE ? "packet too large" : NULL);
            off = len;
            break;
        }
        if ((buf[off] >> 4) != MQTT_PUBLISH) {
            batch_flush();
        }
        s = handle_packet(s, buf + off, plen);
        off += plen;
    }
    batch_flush();
    if (s->state == MQTT_S_CLOSING || !s->connected) {
        off = len;
    }
    evbuffer_drain(in, off);
    if (s->state == MQTT_S_AUTH && in != s->held) {
        /* parked mid-buffer: keep the rest for after the verdict */
        evbuffer_add_buffer(s->held, in);
    } else if (s->held != NULL && s->state != MQTT_S_AUTH && evbuffer_get_length(s->held) == 0) {
        evbuffer_free(s->held);
        s->held = NULL;
    }
    sess_unref(blank);
}

void mqtt_broker_auth_done(struct mqtt_broker *b, uint64_t ticket, int verdict)
{
    struct mqtt_session *s = b->parked, *n;
    struct mqtt_packet p;
    uint8_t *pkt;
    size_t len;

    while (s != NULL && s->auth_ticket != ticket) {
        s = s->pk_next;
    }
    if (s == NULL || ticket == 0) {
        return;   /* the client went away, or a newer connection took its client id */
    }
    park_unlink(s);
    free(s->client_id);
    s->client_id = NULL;
    s->refs++;
    /* ours now: a verdict of -1 may park the session again with a fresh copy */
    pkt = s->auth_pkt;
    len = s->auth_len;
    s->auth_pkt = NULL;
    if (mqtt_decode(pkt, len, MQTT_V5, &p) < 0 || p.type != MQTT_CONNECT) {
        protocol_error(s, 0x80, "parked CONNECT does not decode");   /* decoded before */
        n = s;
    } else {
        n = handle_connect(s, &p.u.connect, pkt, len, verdict < 0 ? -1 : verdict);
    }
    free(pkt);
    if (n != s) {
        /* took over a stored session: the held bytes follow the connection */
        n->held = s->held;
        s->held = NULL;
    }
    if (n->connected && n->state == MQTT_S_ACTIVE) {
        if (n->inflight_in < n->receive_max_in) {
            n->read_paused = false;
            n->t.ops->pause_read(n->t.conn, false);
        }
        if (n->held != NULL) {
            mqtt_session_data(n, n->held);
        }
    }
    sess_unref(s);
}

void mqtt_broker_refuse_parked(struct mqtt_broker *b, uint8_t reason)
{
    /* Bounded by the list: each iteration unlinks its head. */
    while (b->parked != NULL) {
        struct mqtt_session *s = b->parked;
        park_unlink(s);
        refuse_connect(s, s->auth_version, reason, "server shutting down");
        /* No closed event will come (the loop may not run again): detach and let go. */
        s->t.ops->rebind(s->t.conn, NULL);
        s->connected = false;
        b->n_connected--;
        sl_metric_set(b->m_conns, (int64_t)b->n_connected);
        sess_unref(s);
    }
}

void mqtt_session_drained(void *sess)
{
    struct mqtt_session *s = sess;
    if (s->connected && s->state == MQTT_S_ACTIVE) {
        mqtt_subs_kick(s);
    }
}

const struct sl_transport_events mqtt_transport_events = {
    .data = mqtt_session_data,
    .drained = mqtt_session_drained,
    .closed = mqtt_session_closed,
};

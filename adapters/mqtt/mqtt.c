/*
 * The "mqtt" listener kind: ops table, broker lifetime, client id index, housekeeping
 * (keepalive 1.5x, will delay, session expiry, new topics for wildcard subscriptions,
 * persistent session positions), metrics.
 */
#include "adapters/mqtt/mqtt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "adapters/mqtt/mqtt_retain.h"
#include "adapters/mqtt/mqtt_store.h"
#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/metrics.h"
#include "gateway/tcp.h"

#define MQTT_BUCKETS 4096
#define MQTT_STORE_EVERY_MS 5000
#define MQTT_CONNECT_TIMEOUT_MS 10000

struct mqtt_user {
    char *name;
    char *hash;
};

struct mqtt_ctx {
    struct sl_adapter *a;
    struct mqtt_user *users;
    size_t n_users;
    char *host;
    int port;
    uint32_t max_connections;
    struct mqtt_limits lim;
    struct mqtt_broker *b;
    struct sl_tcp_server *tcp;
    struct mqtt_auth *auth;          /* password checks; NULL until users are set */
    struct sl_ratelimit refused_log; /* max_connections warnings */
    uint64_t stale_ticket;           /* checks up to this ticket ran against users a
                                        reload replaced: their verdicts are re-decided */
};

int64_t mqtt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mqtt_count_error(uint8_t reason)
{
    char labels[48];
    snprintf(labels, sizeof(labels), "reason=\"0x%02x\"", reason);
    sl_metric_incr("sluice_mqtt_protocol_errors_total",
                   "MQTT sessions closed or refused for bad input, by reason code", labels);
}

void mqtt_limits_defaults(struct mqtt_limits *lim)
{
    memset(lim, 0, sizeof(*lim));
    lim->max_connections = 100000;
    lim->max_packet_size = 1024 * 1024;
    lim->receive_max = 1024;
    lim->max_inflight = 1024;
    lim->topic_alias_max = 64;
    lim->max_subscriptions = 1000;
    lim->max_session_expiry = 0xFFFFFFFFu;
    lim->max_keepalive = 0;
    lim->high_water = 1024 * 1024;
    lim->allow_anonymous = true;
}

void mqtt_limits_from_config(const struct sl_listener_cfg *cfg, struct mqtt_limits *lim)
{
    mqtt_limits_defaults(lim);
    if (cfg->max_connections) {
        lim->max_connections = cfg->max_connections;
    }
    if (cfg->mqtt_max_packet_size) {
        lim->max_packet_size = (uint32_t)cfg->mqtt_max_packet_size;
    }
    if (cfg->mqtt_receive_maximum) {
        lim->receive_max = (uint16_t)cfg->mqtt_receive_maximum;
    }
    if (cfg->mqtt_max_inflight) {
        lim->max_inflight = (uint16_t)cfg->mqtt_max_inflight;
    }
    lim->topic_alias_max = (uint16_t)cfg->mqtt_topic_alias_maximum;
    if (cfg->mqtt_max_subscriptions) {
        lim->max_subscriptions = cfg->mqtt_max_subscriptions;
    }
    if (cfg->mqtt_max_session_expiry_ms >= 0) {
        int64_t s = cfg->mqtt_max_session_expiry_ms / 1000;
        lim->max_session_expiry = s >= 0xFFFFFFFFll ? 0xFFFFFFFFu : (uint32_t)s;
    }
    lim->max_keepalive = (uint16_t)(cfg->mqtt_max_keepalive_ms / 1000);
    if (cfg->mqtt_high_water) {
        lim->high_water = (size_t)cfg->mqtt_high_water;
    }
    lim->allow_anonymous = cfg->mqtt_allow_anonymous;
}

/* ------------------------------------------------------------------ index ---- */

static size_t hash_id(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

struct mqtt_session *mqtt_broker_find(struct mqtt_broker *b, const char *client_id)
{
    struct mqtt_session *s = b->by_id[hash_id(client_id) % b->n_buckets];
    for (; s != NULL; s = s->hnext) {
        if (strcmp(s->client_id, client_id) == 0) {
            return s;
        }
    }
    return NULL;
}

void mqtt_broker_index(struct mqtt_broker *b, struct mqtt_session *s)
{
    size_t h = hash_id(s->client_id) % b->n_buckets;
    s->hnext = b->by_id[h];
    b->by_id[h] = s;
}

void mqtt_broker_unindex(struct mqtt_broker *b, struct mqtt_session *s)
{
    struct mqtt_session **p = &b->by_id[hash_id(s->client_id) % b->n_buckets];
    for (; *p != NULL; p = &(*p)->hnext) {
        if (*p == s) {
            *p = s->hnext;
            s->hnext = NULL;
            return;
        }
    }
}

/* ---------------------------------------------------------- housekeeping ---- */

void mqtt_broker_tick(struct mqtt_broker *b, int64_t now)
{
    static int64_t last_store;
    bool store_now = now - last_store >= MQTT_STORE_EVERY_MS;
    size_t n_sessions = 0;
    struct mqtt_session *s = b->all, *next;

    if (store_now) {
        last_store = now;
    }
    mqtt_subs_discover(b->subs);
    mqtt_subs_commit(b->subs);
    /* Bounded by the list; a destroyed session leaves it. */
    while (s != NULL) {
        next = s->next;
        n_sessions++;
        if (s->connected && s->state == MQTT_S_ACTIVE && s->keepalive > 0 &&
            now - s->last_rx_ms > (int64_t)s->keepalive * 1500) {
            mqtt_count_error(0x8D);
            s->will_pending = s->will != NULL;
            mqtt_session_kick(s, 0x8D, "keep alive timeout");
        } else if (s->connected && s->output_paused) {
            mqtt_subs_kick(s);
        }
        if (!s->connected && s->will_at_ms != 0 && now >= s->will_at_ms) {
            mqtt_session_fire_will(s);
        }
        if (!s->connected && s->state == MQTT_S_OFFLINE && s->expire_at_ms != 0 &&
            now >= s->expire_at_ms) {
            if (s->will != NULL) {
                mqtt_session_fire_will(s);
            }
            mqtt_session_destroy(s);
        } else if (store_now && s->dirty && b->store != NULL && s->session_expiry != 0 &&
                   s->client_id != NULL && s->state != MQTT_S_CLOSING) {
            mqtt_store_save(b->store, s);
        }
        s = next;
    }
    sl_metric_set(b->m_sessions, (int64_t)n_sessions);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    mqtt_broker_tick(arg, mqtt_now_ms());
}

/* ------------------------------------------------------------------ broker ---- */

struct mqtt_broker *mqtt_broker_new(struct sl_gateway *gw, const struct mqtt_limits *lim,
                                    const char *data_dir, char **err)
{
    struct mqtt_broker *b = calloc(1, sizeof(*b));
    struct timeval sec = {1, 0};
    int n;

    if (b == NULL || (b->by_id = calloc(MQTT_BUCKETS, sizeof(*b->by_id))) == NULL) {
        free(b);
        *err = strdup("out of memory");
        return NULL;
    }
    b->gw = gw;
    b->lim = *lim;
    b->listener = "mqtt";
    b->n_buckets = MQTT_BUCKETS;
    b->m_conns = sl_metric_gauge("sluice_mqtt_connections", "open MQTT connections", "");
    b->m_sessions = sl_metric_gauge("sluice_mqtt_sessions",
                                    "MQTT sessions (connected and stored)", "");
    b->m_in = sl_metric_counter("sluice_mqtt_publish_received_total",
                                "PUBLISH packets received from clients", "");
    b->m_out = sl_metric_counter("sluice_mqtt_publish_sent_total",
                                 "PUBLISH packets sent to subscribers", "");
    b->m_dropped = sl_metric_counter("sluice_mqtt_dropped_total",
                                     "MQTT messages not stored or not delivered (expired, "
                                     "too large for the client, refused)", "");
    b->m_lagging = sl_metric_counter("sluice_mqtt_subscriber_lag_events_total",
                                     "times a subscriber fell behind and read from the log", "");
    b->subs = mqtt_subs_new(b);
    b->tick = event_new(gw->base, -1, EV_PERSIST, on_tick, b);
    if (b->subs == NULL || b->tick == NULL) {
        *err = strdup("out of memory");
        mqtt_broker_free(&b);
        return NULL;
    }
    b->retain = mqtt_retain_open(gw, err);
    if (b->retain == NULL) {
        mqtt_broker_free(&b);
        return NULL;
    }
    if (data_dir != NULL) {
        b->store = mqtt_store_open(data_dir, err);
        if (b->store == NULL) {
            mqtt_broker_free(&b);
            return NULL;
        }
        n = mqtt_store_load_all(b->store, b);
        if (n > 0) {
            sl_info("[mqtt:listener] %d persistent session(s) restored", n);
        }
    }
    event_add(b->tick, &sec);
    return b;
}

void mqtt_broker_free(struct mqtt_broker **pb)
{
    struct mqtt_broker *b;
    if (pb == NULL || *pb == NULL) {
        return;
    }
    b = *pb;
    b->stopping = true;
    mqtt_broker_refuse_parked(b, 0x88);
    if (b->tick != NULL) {
        event_free(b->tick);
    }
    if (b->subs != NULL) {
        mqtt_subs_commit(b->subs);
    }
    /* Persist, then free every session (connections were closed by stop). */
    while (b->all != NULL) {
        struct mqtt_session *s = b->all;
        if (b->store != NULL && s->session_expiry != 0 && s->client_id != NULL) {
            mqtt_store_save(b->store, s);
        }
        s->in_store = false;     /* keep the file: the session outlives the process */
        if (s->connected) {
            s->t.ops->rebind(s->t.conn, NULL);
            s->connected = false;
            s->refs--;           /* the transport's */
        }
        bool orphan = s->refs > 0;   /* appends still pending hold it */
        mqtt_session_destroy(s);
        if (orphan) {
            s->b = NULL;
        }
    }
    mqtt_subs_free(&b->subs);
    mqtt_retain_free(&b->retain);
    mqtt_store_free(&b->store);
    free(b->by_id);
    free(b);
    *pb = NULL;
}

/* ------------------------------------------------------------------ auth ---- */

/* The listener's auth hook: configured users, else allow_anonymous. A user with a hash
 * goes to the auth workers (MQTT_AUTH_PENDING) unless the cache knows the password;
 * everything else is decided here at once. */
static int users_auth(void *arg, uint64_t ticket, const char *client_id,
                      const struct mqtt_str *user, const struct mqtt_bin *password)
{
    struct mqtt_ctx *ctx = arg;
    (void)client_id;
    if (user == NULL) {
        return ctx->lim.allow_anonymous ? 0 : 0x87;
    }
    for (size_t i = 0; i < ctx->n_users; i++) {
        const struct mqtt_user *u = &ctx->users[i];
        if (strlen(u->name) == user->len && memcmp(u->name, user->ptr, user->len) == 0) {
            if (password == NULL) {
                return 0x86;
            }
            if (ctx->auth == NULL) {
                return mqtt_password_ok(u->hash, password->ptr, password->len) ? 0 : 0x86;
            }
            return mqtt_auth_check(ctx->auth, ticket, u->hash, password->ptr, password->len);
        }
    }
    /* an unknown user: only where anonymous clients are welcome and no users are set */
    return ctx->lim.allow_anonymous && ctx->n_users == 0 ? 0 : 0x86;
}

/* A worker's verdict, on the loop thread: finish the parked CONNECT, if still there. A
 * check queued before a reload changed the users was made against the old hash: decide
 * that CONNECT again against the users now configured. */
static void on_auth_verdict(void *arg, uint64_t ticket, bool ok)
{
    struct mqtt_ctx *ctx = arg;
    if (ctx->b != NULL) {
        mqtt_broker_auth_done(ctx->b, ticket, ticket <= ctx->stale_ticket ? -1 : ok ? 0 : 0x86);
    }
}

static void users_free(struct mqtt_user *users, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(users[i].name);
        free(users[i].hash);
    }
    free(users);
}

/* A copy of cfg's users: 0, or -1 out of memory (*out untouched). */
static int users_copy(const struct sl_listener_cfg *cfg, struct mqtt_user **out, size_t *n_out)
{
    struct mqtt_user *u = NULL;
    size_t n = 0;
    if (cfg->n_mqtt_users > 0) {
        u = calloc(cfg->n_mqtt_users, sizeof(*u));
        if (u == NULL) {
            return -1;
        }
        for (; n < cfg->n_mqtt_users; n++) {
            u[n].name = strdup(cfg->mqtt_users[n].key);
            u[n].hash = strdup(cfg->mqtt_users[n].value);
            if (u[n].name == NULL || u[n].hash == NULL) {
                users_free(u, n + 1);
                return -1;
            }
        }
    }
    *out = u;
    *n_out = n;
    return 0;
}

static bool users_eq(const struct mqtt_user *a, size_t na, const struct mqtt_user *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].hash, b[i].hash) != 0) {
            return false;
        }
    }
    return true;
}

/* --------------------------------------------------------------- adapter ---- */

static void *on_accept(void *arg, const struct sl_transport *t)
{
    struct mqtt_ctx *ctx = arg;
    if (ctx->b == NULL || ctx->b->stopping) {
        return NULL;
    }
    /* here rather than in the TCP server, so a reload can change it */
    if (ctx->b->n_connected >= ctx->b->lim.max_connections) {
        sl_listener_refused(&ctx->refused_log, "mqtt", ctx->b->lim.max_connections,
                            t->ops->peer(t->conn));
        return NULL;
    }
    return mqtt_session_new(ctx->b, t);
}

static void mqtt_destroy(struct sl_adapter *a);

static int mqtt_create(struct sl_adapter *a, const struct sl_listener_cfg *cfg, char **err)
{
    struct mqtt_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL || (ctx->host = strdup(cfg->host != NULL ? cfg->host : "127.0.0.1")) == NULL) {
        free(ctx);
        *err = strdup("out of memory");
        return -1;
    }
    ctx->a = a;
    ctx->port = cfg->port;
    mqtt_limits_from_config(cfg, &ctx->lim);
    a->ctx = ctx;
    /* the hashes' shape was checked by the config loader (listeners.mqtt.users) */
    if (users_copy(cfg, &ctx->users, &ctx->n_users) != 0) {
        *err = strdup("out of memory");
        mqtt_destroy(a);
        return -1;
    }
    return 0;
}

static int mqtt_start(struct sl_adapter *a, char **err)
{
    struct mqtt_ctx *ctx = a->ctx;
    struct sl_gateway *gw = a->gw;
    struct sl_tcp_options o = {
        .host = ctx->host, .port = ctx->port, .max_connections = 0,   /* on_accept's */
        .write_low_water = 64 * 1024, .name = "mqtt",
    };
    ctx->b = mqtt_broker_new(gw, &ctx->lim, gw->cfg != NULL ? gw->cfg->data_dir : NULL, err);
    if (ctx->b == NULL) {
        return -1;
    }
    if (ctx->n_users > 0) {
        ctx->auth = mqtt_auth_new(gw->base, MQTT_AUTH_THREADS, MQTT_AUTH_MAX_PENDING,
                                  MQTT_AUTH_CACHE_SIZE, on_auth_verdict, ctx);
        if (ctx->auth == NULL) {
            *err = strdup("cannot start the password check workers");
            mqtt_broker_free(&ctx->b);
            return -1;
        }
    }
    ctx->b->auth = users_auth;
    ctx->b->auth_arg = ctx;
    ctx->tcp = sl_tcp_server_new(gw->base, &o, &mqtt_transport_events, on_accept, ctx, err);
    if (ctx->tcp == NULL) {
        mqtt_auth_free(&ctx->auth);
        mqtt_broker_free(&ctx->b);
        return -1;
    }
    sl_info("[mqtt:listener] listening on %s:%d", ctx->host, sl_tcp_server_port(ctx->tcp));
    return 0;
}

static void mqtt_stop(struct sl_adapter *a)
{
    struct mqtt_ctx *ctx = a->ctx;
    if (ctx == NULL || ctx->b == NULL) {
        return;
    }
    sl_tcp_server_stop_accepting(ctx->tcp);
    ctx->b->stopping = true;
    /* Checks in flight: the workers finish at most one hash each, the queue is dropped
     * and the workers joined; the parked CONNECTs get CONNACK 0x88 Server unavailable. */
    mqtt_auth_stop(ctx->auth);
    mqtt_broker_refuse_parked(ctx->b, 0x88);
    /* Tell every client why (0x8B server shutting down); flushed right away. */
    for (struct mqtt_session *s = ctx->b->all; s != NULL; s = s->next) {
        if (s->connected) {
            mqtt_session_kick(s, 0x8B, "server shutting down");
        }
    }
}

static void mqtt_destroy(struct sl_adapter *a)
{
    struct mqtt_ctx *ctx = a->ctx;
    if (ctx == NULL) {
        return;
    }
    mqtt_auth_free(&ctx->auth);
    if (ctx->b != NULL) {
        mqtt_broker_free(&ctx->b);
    }
    sl_tcp_server_free(&ctx->tcp);
    users_free(ctx->users, ctx->n_users);
    free(ctx->host);
    free(ctx);
    a->ctx = NULL;
}

/* SIGHUP: the users, allow_anonymous and the per-client limits of cfg (validated by
 * the config loader) apply to CONNECTs from now on; connected clients keep what their
 * CONNACK announced (see struct mqtt_limits). bind and enabled need a restart (the
 * core's restart-changes warning names them). */
static void mqtt_reload(struct sl_adapter *a, const struct sl_listener_cfg *cfg)
{
    struct mqtt_ctx *ctx = a->ctx;
    struct mqtt_user *users;
    size_t n_users;
    bool changed;

    if (ctx == NULL || ctx->b == NULL || ctx->b->stopping) {
        return;
    }
    if (users_copy(cfg, &users, &n_users) != 0) {
        sl_error("[mqtt:listener] reload: out of memory; users and limits unchanged");
        return;
    }
    changed = !users_eq(ctx->users, ctx->n_users, users, n_users);
    if (n_users > 0 && ctx->auth == NULL) {
        ctx->auth = mqtt_auth_new(ctx->a->gw->base, MQTT_AUTH_THREADS,
                                  MQTT_AUTH_MAX_PENDING, MQTT_AUTH_CACHE_SIZE,
                                  on_auth_verdict, ctx);
        if (ctx->auth == NULL) {
            sl_warn("[mqtt:listener] reload: cannot start the password check workers; "
                    "passwords are checked on the loop thread");
        }
    }
    users_free(ctx->users, ctx->n_users);
    ctx->users = users;
    ctx->n_users = n_users;
    if (changed) {
        /* no password verified against the old users is trusted again, and checks
         * still running against them are decided anew when they finish */
        mqtt_auth_cache_clear(ctx->auth);
        ctx->stale_ticket = ctx->b->next_ticket;
    }
    mqtt_limits_from_config(cfg, &ctx->lim);
    ctx->b->lim = ctx->lim;
    sl_info("[mqtt:listener] reloaded: %zu user(s)%s, anonymous %s, max_connections %u, "
            "max_packet_size %u (new connections)", n_users, changed ? " (changed)" : "",
            ctx->lim.allow_anonymous ? "allowed" : "refused", ctx->lim.max_connections,
            ctx->lim.max_packet_size);
}

int mqtt_adapter_port(const struct sl_adapter *a)
{
    const struct mqtt_ctx *ctx = a->ctx;
    return ctx != NULL ? sl_tcp_server_port(ctx->tcp) : -1;
}

struct mqtt_broker *mqtt_adapter_broker(const struct sl_adapter *a)
{
    const struct mqtt_ctx *ctx = a->ctx;
    return ctx != NULL ? ctx->b : NULL;
}

const struct sl_adapter_ops mqtt_adapter_ops = {
    .name = "mqtt",
    .create = mqtt_create,
    .start = mqtt_start,
    .reload = mqtt_reload,
    .stop = mqtt_stop,
    .destroy = mqtt_destroy,
};

/*
 * The listeners, bridges and routes sections of the configuration: their option tables,
 * the custom options they use (bind, mqtt_version, key, the bridges mapping, the routes
 * list) and the checks on them (keys a bridge type does not use, URL schemes, a route's
 * ingress or egress shape, the bridges it names). Applied by gateway/config.c through
 * the tables of gateway/config_opt.h.
 */
#include "gateway/config_sections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config_yaml.h"

static void bind_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                    const char *, int);
static bool bind_eq(const struct opt *, const void *, const void *);
static void key_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                   const char *, int);

static const struct enum_name bridge_types[] = {
    {"amqp", SL_BRIDGE_AMQP}, {"mqtt", SL_BRIDGE_MQTT}, {"kafka", SL_BRIDGE_KAFKA},
    {NULL, 0},
};
static const struct enum_name listener_names[] = {
    {"http", 0}, {"mqtt", 0}, {"amqp", 0}, {"stomp", 0}, {"kafka", 0}, {"websocket", 0},
    {NULL, 0},
};

static const char *check_password_hash(const char *s);

static const struct opt listener_opts[] = {
    {.name = "bind", .type = OPT_CUSTOM, .fn = bind_fn, .eq = bind_eq, .type_name = "HOST:PORT",
     .help = "Address to listen on: IPv4:PORT, [IPv6]:PORT or HOSTNAME:PORT."},
    {.name = "enabled", .type = OPT_BOOL, FIELD(struct sl_listener_cfg, enabled),
     .def = "true", .help = "false turns the listener off while keeping its settings."},
    {.name = NULL},
};

static const struct opt http_opts[] = {
    {.name = "max_body", .type = OPT_SIZE, FIELD(struct sl_listener_cfg, max_body),
     .def = "1MiB", .min = 1, .max = INT64_MAX,
     .help = "Largest request body accepted (413 beyond)."},
    {.name = "web_root", .type = OPT_STRING, FIELD(struct sl_listener_cfg, web_root),
     .def = "web", .help = "Directory served at / (the live topic view)."},
    {.name = "max_wait", .type = OPT_DURATION, FIELD(struct sl_listener_cfg, max_wait_ms),
     .def = "30s", .min = 0, .max = INT64_MAX,
     .help = "Upper bound for wait_ms of long-poll reads."},
    {.name = "max_connections", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, max_connections), .def = "10000", .min = 1,
     .max = 1000000, .help = "Connections beyond this are refused."},
    {.name = NULL},
};

static const struct opt mqtt_opts[] = {
    {.name = "max_connections", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, max_connections), .def = "100000", .min = 1,
     .max = 10000000, .flags = OPT_RELOAD,
     .help = "Connections beyond this are refused."},
    {.name = "max_packet_size", .type = OPT_SIZE,
     FIELD(struct sl_listener_cfg, mqtt_max_packet_size), .def = "1MiB", .min = 64,
     .max = 268435460, .flags = OPT_RELOAD,
     .help = "Largest packet accepted (bigger: DISCONNECT 0x95)."},
    {.name = "receive_maximum", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_receive_maximum), .def = "1024", .min = 1,
     .max = 65535, .flags = OPT_RELOAD,
     .help = "Inbound QoS 1/2 publishes in flight per client."},
    {.name = "max_inflight", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_max_inflight), .def = "1024", .min = 1, .max = 65535,
     .flags = OPT_RELOAD,
     .help = "Outbound QoS 1/2 messages unacknowledged per client (at most the client's "
             "receive maximum)."},
    {.name = "topic_alias_maximum", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_topic_alias_maximum), .def = "64", .min = 0,
     .max = 65535, .flags = OPT_RELOAD,
     .help = "Topic aliases a v5 client may set (0: none)."},
    {.name = "max_subscriptions", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_max_subscriptions), .def = "1000", .min = 1,
     .max = 1000000, .flags = OPT_RELOAD,
     .help = "Subscriptions per client (more: SUBACK 0x97)."},
    {.name = "max_session_expiry", .type = OPT_DURATION,
     FIELD(struct sl_listener_cfg, mqtt_max_session_expiry_ms), .def = "-1", .min = 0,
     .max = INT64_MAX, .flags = OPT_UNLIMITED | OPT_RELOAD,
     .help = "Cap on the session expiry clients ask for (-1: none)."},
    {.name = "max_keepalive", .type = OPT_DURATION,
     FIELD(struct sl_listener_cfg, mqtt_max_keepalive_ms), .def = "0", .min = 0,
     .max = 65535000, .flags = OPT_RELOAD,
     .help = "Cap on keep alive (0: what the client asks)."},
    {.name = "high_water", .type = OPT_SIZE, FIELD(struct sl_listener_cfg, mqtt_high_water),
     .def = "1MiB", .min = 4096, .max = INT64_MAX,
     .flags = OPT_RELOAD,
     .help = "Output bytes queued before a slow subscriber lags and reads from the log."},
    {.name = "allow_anonymous", .type = OPT_BOOL,
     FIELD(struct sl_listener_cfg, mqtt_allow_anonymous), .def = "true",
     .flags = OPT_RELOAD,
     .help = "Accept clients without a user name."},
    {.name = "users", .type = OPT_KV, LIST(struct sl_listener_cfg, mqtt_users, n_mqtt_users),
     .check = check_password_hash, .flags = OPT_RELOAD,
     .help = "user: pbkdf2-sha256$ITERATIONS$SALT_BASE64$HASH_BASE64 (see README MQTT)."},
    {.name = NULL},
};

static const struct table listener_tabs[] = {{listener_opts, 0}, {NULL, 0}};
static const struct table mqtt_tabs[] = {{listener_opts, 0}, {mqtt_opts, 0}, {NULL, 0}};
static const struct table http_tabs[] = {{listener_opts, 0}, {http_opts, 0}, {NULL, 0}};

const struct opt config_listeners_opts[] = {
    {.name = "http", .type = OPT_CUSTOM, FIELD(struct sl_config, http), .fn = config_listener_fn,
     .def = "127.0.0.1:8080", .sub = http_tabs, .elem = "",
     .help = "HTTP: REST, WebSocket, Server-Sent Events, /metrics and the web page. "
             "Present by default."},
    {.name = "mqtt", .type = OPT_CUSTOM, FIELD(struct sl_config, mqtt), .fn = config_listener_fn,
     .def = "127.0.0.1:1883", .sub = mqtt_tabs, .elem = "", .help = "MQTT 3.1.1 and 5."},
    {.name = "amqp", .type = OPT_CUSTOM, FIELD(struct sl_config, amqp), .fn = config_listener_fn,
     .def = "127.0.0.1:5672", .sub = listener_tabs, .elem = "", .help = "AMQP 0-9-1."},
    {.name = "stomp", .type = OPT_CUSTOM, FIELD(struct sl_config, stomp), .fn = config_listener_fn,
     .def = "127.0.0.1:61613", .sub = listener_tabs, .elem = "", .help = "STOMP 1.2."},
    {.name = "kafka", .type = OPT_CUSTOM, FIELD(struct sl_config, kafka), .fn = config_listener_fn,
     .def = "127.0.0.1:9092", .sub = listener_tabs, .elem = "",
     .help = "Kafka wire protocol."},
    {.name = NULL},
};

const struct opt config_bridge_opts[] = {
    {.name = "type", .type = OPT_ENUM, FIELD(struct sl_bridge_cfg, type),
     .enums = bridge_types, .flags = OPT_REQUIRED, .help = "Which client: required."},
    {.name = "url", .type = OPT_STRING, FIELD(struct sl_bridge_cfg, url),
     .help = "amqp: amqp:// or amqps://; mqtt: mqtt:// mqtts:// tcp:// ssl:// ws:// wss://."},
    {.name = "client_id", .type = OPT_STRING, FIELD(struct sl_bridge_cfg, client_id),
     .def = "sluice-<name>", .help = "MQTT client identifier."},
    {.name = "mqtt_version", .type = OPT_CUSTOM, FIELD(struct sl_bridge_cfg, mqtt_version),
     .fn = config_mqtt_version_fn, .type_name = "3 | 3.1.1 | 5", .def = "5",
     .help = "MQTT protocol version (mqtt bridges)."},
    {.name = "properties", .type = OPT_KV,
     LIST(struct sl_bridge_cfg, properties, n_properties),
     .help = "kafka: librdkafka properties (bootstrap.servers, ...)."},
    {.name = "consume", .type = OPT_STRLIST, LIST(struct sl_bridge_cfg, consume, n_consume),
     .help = "amqp: queues to consume; kafka: topics to consume."},
    {.name = "subscribe", .type = OPT_STRLIST,
     LIST(struct sl_bridge_cfg, subscribe, n_subscribe), .check = cy_check_pattern,
     .help = "mqtt: topic filters to subscribe to."},
    {.name = "username", .type = OPT_STRING, FIELD(struct sl_bridge_cfg, username),
     .help = "mqtt: user name sent in CONNECT."},
    {.name = "password", .type = OPT_STRING, FIELD(struct sl_bridge_cfg, password),
     .help = "mqtt: password sent in CONNECT."},
    {.name = "qos", .type = OPT_INT, FIELD(struct sl_bridge_cfg, qos), .def = "1", .min = 0,
     .max = 2, .help = "mqtt: QoS of the subscriptions and of egress publishes."},
    {.name = "clean_start", .type = OPT_BOOL, FIELD(struct sl_bridge_cfg, clean_start),
     .def = "false",
     .help = "mqtt: false keeps a session on the broker, which redelivers what sluice did "
             "not acknowledge."},
    {.name = "session_expiry", .type = OPT_DURATION,
     FIELD(struct sl_bridge_cfg, session_expiry_ms), .def = "1d", .min = 0,
     .max = 4294967295000, .help = "mqtt 5: how long the broker keeps the session."},
    {.name = "keepalive", .type = OPT_DURATION, FIELD(struct sl_bridge_cfg, keepalive_ms),
     .def = "30s", .min = 1000, .max = 65535000, .help = "mqtt: keep-alive interval."},
    {.name = "reconnect_min", .type = OPT_DURATION,
     FIELD(struct sl_bridge_cfg, reconnect_min_ms), .def = "500ms", .min = 1,
     .max = INT64_MAX, .help = "Reconnect backoff: the first delay (doubles, with jitter)."},
    {.name = "reconnect_max", .type = OPT_DURATION,
     FIELD(struct sl_bridge_cfg, reconnect_max_ms), .def = "30s", .min = 1, .max = INT64_MAX,
     .help = "Reconnect backoff: the longest delay."},
    {.name = "max_inflight", .type = OPT_INT, FIELD(struct sl_bridge_cfg, max_inflight),
     .def = "64", .min = 1, .max = 65535,
     .help = "mqtt: egress messages sent and not yet acknowledged by the broker."},
    {.name = NULL},
};

static const struct opt from_opts[] = {
    {.name = "listener", .type = OPT_STRING, FIELD(struct sl_route_cfg, from_listener),
     .enums = listener_names, .help = "Ingress from a listener."},
    {.name = "bridge", .type = OPT_STRING, FIELD(struct sl_route_cfg, from_bridge),
     .check = cy_check_name, .help = "Ingress from a bridge named in bridges."},
    {.name = "topic", .type = OPT_STRING, FIELD(struct sl_route_cfg, from_topic),
     .check = cy_check_topic, .help = "Egress: records of this log topic."},
    {.name = "match", .type = OPT_STRING, FIELD(struct sl_route_cfg, match), .def = "#",
     .check = cy_check_pattern,
     .help = "Subject pattern: '/'-separated, '+' or '*' one level, '#' the rest."},
    {.name = "headers", .type = OPT_KV,
     LIST(struct sl_route_cfg, when_headers, n_when_headers),
     .help = "Ingress: only events whose header NAME equals VALUE."},
    {.name = NULL},
};

static const struct opt to_opts[] = {
    {.name = "topic", .type = OPT_STRLIST, LIST(struct sl_route_cfg, to_topics, n_to_topics),
     .flags = OPT_SINGLE, .check = cy_check_topic, .help = "Ingress: the log topic."},
    {.name = "topics", .type = OPT_STRLIST,
     LIST(struct sl_route_cfg, to_topics, n_to_topics), .check = cy_check_topic,
     .help = "Ingress: several log topics."},
    {.name = "key", .type = OPT_CUSTOM, .fn = key_fn, .type_name = "subject | none | header:NAME",
     .def = "subject", .help = "Ingress: the partition key."},
    {.name = "set_headers", .type = OPT_KV,
     LIST(struct sl_route_cfg, set_headers, n_set_headers),
     .help = "Ingress: set header NAME to VALUE."},
    {.name = "bridge", .type = OPT_STRING, FIELD(struct sl_route_cfg, to_bridge),
     .check = cy_check_name, .help = "Egress: a bridge named in bridges."},
    {.name = "listener", .type = OPT_STRING, FIELD(struct sl_route_cfg, to_listener),
     .enums = listener_names, .help = "Egress: that listener's subscribers."},
    {.name = "destination", .type = OPT_STRING, FIELD(struct sl_route_cfg, destination),
     .def = "{subject}", .check = cy_check_template,
     .help = "Egress: destination template with {subject} and {topic}."},
    {.name = NULL},
};

static const struct table from_tabs[] = {{from_opts, 0}, {NULL, 0}};
static const struct table to_tabs[] = {{to_opts, 0}, {NULL, 0}};

static const struct opt route_opts[] = {
    {.name = "from", .type = OPT_SECTION, .sub = from_tabs, .flags = OPT_REQUIRED,
     .help = "Exactly one of listener, bridge (ingress) or topic (egress)."},
    {.name = "to", .type = OPT_SECTION, .sub = to_tabs, .flags = OPT_REQUIRED,
     .help = "Ingress: topic(s), key, set_headers; egress: bridge or listener, destination."},
    {.name = NULL},
};

const struct table config_listeners_tabs[] = {{config_listeners_opts, 0}, {NULL, 0}};
const struct table config_bridge_tabs[] = {{config_bridge_opts, 0}, {NULL, 0}};
const struct table config_route_tabs[] = {{route_opts, 0}, {NULL, 0}};

/* ------------------------------------------------------------ custom options ---- */

void config_listener_init(struct cy_ctx *c, const struct opt *o, struct sl_listener_cfg *l)
{
    l->present = true;
    l->enabled = true;
    const char *why = cy_parse_bind(o->def, &l->host, &l->port);
    if (why) {
        cy_err(c, 0, o->name, "built-in default: %s", why);
    }
    config_apply_defaults(c, o->sub, l);
}

void config_listener_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                        const char *path, int keyline)
{
    struct sl_listener_cfg *l = field;
    config_listener_init(c, o, l);
    l->line = keyline;
    config_apply_map(c, v, o->sub, l, path, keyline);
}

static void bind_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                    const char *path, int keyline)
{
    struct sl_listener_cfg *l = field;
    const char *s = config_expect_scalar(c, v, path, keyline);
    if (!s) {
        return;
    }
    const char *why = cy_parse_bind(s, &l->host, &l->port);
    if (why) {
        cy_err(c, config_node_line(v, keyline), path, "'" CY_VAL_FMT "': %s", s, why);
    }
}

/* The reload diff's comparison of two listeners' bind (a and b: the listeners). */
static bool bind_eq(const struct opt *o, const void *a, const void *b)
{
    const struct sl_listener_cfg *la = a, *lb = b;
    (void)o;
    return la->port == lb->port && (la->host == lb->host ||
                                    (la->host && lb->host && strcmp(la->host, lb->host) == 0));
}

/* Standard base64 of 1 to `max` bytes (what OpenSSL's EVP_DecodeBlock in
 * adapters/mqtt/mqtt_auth.c decodes into its 128-byte buffers)? */
static bool is_base64(const char *s, size_t len, size_t min, size_t max)
{
    size_t pad = 0;
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > 128) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '=') {
            if (i + 2 < len) {
                return false;
            }
            pad++;
        } else if (pad > 0 || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                                (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')) {
            return false;
        }
    }
    size_t n = len / 4 * 3 - pad;
    return n >= min && n <= max;
}

/* listeners.mqtt.users.<name>: a hash adapters/mqtt/mqtt_auth.c's mqtt_password_ok can
 * use, so a bad entry fails the load (and a SIGHUP reload keeps the running users)
 * instead of refusing that user's every CONNECT. The value is not echoed. */
static const char *check_password_hash(const char *s)
{
    static const char prefix[] = "pbkdf2-sha256$";
    static const char shape[] = "the hash must look like "
                                "pbkdf2-sha256$ITERATIONS$SALT_BASE64$HASH_BASE64";
    const char *p, *salt, *hash;
    long iter = 0;

    if (strncmp(s, prefix, sizeof(prefix) - 1) != 0) {
        return shape;
    }
    p = s + sizeof(prefix) - 1;
    for (; *p >= '0' && *p <= '9' && iter <= 10000000; p++) {
        iter = iter * 10 + (*p - '0');
    }
    if (*p != '$') {
        return shape;
    }
    if (iter < 1 || iter > 10000000) {
        return "the iteration count must be from 1 to 10000000";
    }
    salt = p + 1;
    hash = strchr(salt, '$');
    if (hash == NULL) {
        return shape;
    }
    if (!is_base64(salt, (size_t)(hash - salt), 1, 128)) {
        return "the salt is not standard base64 of 1 to 126 bytes";
    }
    hash++;
    if (!is_base64(hash, strlen(hash), 16, 128)) {
        return "the hash is not standard base64 of 16 to 126 bytes";
    }
    return NULL;
}

void config_mqtt_version_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                            void *field, const char *path, int keyline)
{
    static const struct enum_name versions[] = {
        {"3", 3}, {"3.1.1", 3}, {"5", 5}, {"5.0", 5}, {NULL, 0},
    };
    const char *s = config_expect_scalar(c, v, path, keyline);
    if (!s) {
        return;
    }
    const struct enum_name *e = config_enum_find(versions, s);
    if (!e) {
        cy_err(c, config_node_line(v, keyline), path,
               "'" CY_VAL_FMT "' is not one of: 3, 3.1.1, 5", s);
        return;
    }
    *(int *)field = e->value;
}

static void key_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                   const char *path, int keyline)
{
    struct sl_route_cfg *r = field;
    const char *s = config_expect_scalar(c, v, path, keyline);
    if (!s) {
        return;
    }
    if (strcmp(s, "subject") == 0) {
        r->key = SL_KEY_SUBJECT;
    } else if (strcmp(s, "none") == 0) {
        r->key = SL_KEY_NONE;
    } else if (strncmp(s, "header:", 7) == 0 && s[7] != '\0') {
        char *h = cy_strdup(c, s + 7);
        if (h) {
            free(r->key_header);
            r->key_header = h;
            r->key = SL_KEY_HEADER;
        }
    } else {
        cy_err(c, config_node_line(v, keyline), path,
               "'" CY_VAL_FMT "' is not one of: subject, none, header:NAME", s);
    }
}

static bool has_prefix(const char *s, const char *const *prefixes)
{
    for (size_t i = 0; prefixes[i]; i++) {
        size_t l = strlen(prefixes[i]);
        if (strncmp(s, prefixes[i], l) == 0 && s[l] != '\0') {
            return true;
        }
    }
    return false;
}

/* Keys that make no sense for a bridge of this type. */
static void bridge_check(struct cy_ctx *c, struct sl_bridge_cfg *b, const struct cy_node *m,
                         const char *path, int keyline)
{
    static const char *const amqp_schemes[] = {"amqp://", "amqps://", NULL};
    static const char *const mqtt_schemes[] = {
        "mqtt://", "mqtts://", "tcp://", "ssl://", "ws://", "wss://", NULL,
    };
    static const char *const not_amqp[] = {
        "subscribe", "properties", "mqtt_version", "username", "password", "qos",
        "clean_start", "session_expiry", "keepalive", "max_inflight", NULL,
    };
    static const char *const not_mqtt[] = {"consume", "properties", NULL};
    static const char *const not_kafka[] = {
        "url", "subscribe", "mqtt_version", "username", "password", "qos", "clean_start",
        "session_expiry", "keepalive", "max_inflight", NULL,
    };
    static const char *const *const forbidden[] = {
        [SL_BRIDGE_AMQP] = not_amqp, [SL_BRIDGE_MQTT] = not_mqtt, [SL_BRIDGE_KAFKA] = not_kafka,
    };
    char kp[CY_PATH_LEN];
    if (!cy_map_get(m, "type", NULL) || (unsigned)b->type > SL_BRIDGE_KAFKA) {
        return;                      /* missing or bad type: already reported */
    }
    const char *tname = bridge_types[b->type].name;
    for (const char *const *k = forbidden[b->type]; *k; k++) {
        const struct cy_node *kn = NULL;
        if (cy_map_get(m, *k, &kn)) {
            cy_join_path(kp, path, *k);
            cy_err(c, kn->line, kp, "not used by %s bridges", tname);
        }
    }
    if (b->type == SL_BRIDGE_KAFKA) {
        return;
    }
    const char *const *schemes = b->type == SL_BRIDGE_AMQP ? amqp_schemes : mqtt_schemes;
    cy_join_path(kp, path, "url");
    if (!b->url) {
        if (!cy_map_get(m, "url", NULL)) {
            cy_err(c, keyline, kp, "required for %s bridges", tname);
        }
    } else if (!has_prefix(b->url, schemes)) {
        cy_err(c, cy_key_line(m, "url", keyline), kp, "'" CY_VAL_FMT "' must start with %s",
               b->url, b->type == SL_BRIDGE_AMQP ? "amqp:// or amqps://" :
               "mqtt://, mqtts://, tcp://, ssl://, ws:// or wss://");
    }
}

void config_bridges_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                       const char *path, int keyline)
{
    struct sl_config *cfg = field;
    if (cy_is_null(v) || !config_expect_map(c, v, path, keyline)) {
        return;
    }
    config_check_keys(c, v, path);
    cfg->bridges = cy_calloc(c, v->n / 2, sizeof(*cfg->bridges));
    if (!cfg->bridges) {
        return;
    }
    char kp[CY_PATH_LEN];
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const struct cy_node *k = v->kids[i], *bv = v->kids[i + 1];
        if (k->kind != CY_SCALAR) {
            continue;
        }
        cy_join_path(kp, path, k->str);
        const char *why = cy_check_name(k->str);
        if (why) {
            cy_err(c, k->line, kp, "%s", why);
            continue;
        }
        struct sl_bridge_cfg *b = &cfg->bridges[cfg->n_bridges++];
        b->name = cy_strdup(c, k->str);
        b->line = k->line;
        b->mqtt_version = 5;
        b->type = (enum sl_bridge_type)-1;   /* until `type` sets it */
        config_apply_defaults(c, o->sub, b);
        if (cy_is_null(bv)) {
            cy_err(c, k->line, kp, "expected a mapping with at least type");
            continue;
        }
        config_apply_map(c, bv, o->sub, b, kp, k->line);
        if (!b->client_id && b->name && asprintf(&b->client_id, "sluice-%s", b->name) < 0) {
            b->client_id = NULL;
            c->oom = true;
        }
        if (bv->kind == CY_MAP) {
            bridge_check(c, b, bv, kp, k->line);
        }
    }
}

static const struct sl_bridge_cfg *find_bridge(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_bridges; i++) {
        if (cfg->bridges[i].name && strcmp(cfg->bridges[i].name, name) == 0) {
            return &cfg->bridges[i];
        }
    }
    return NULL;
}

/* `key` of map m is present: report it as not allowed here. */
static void forbid_key(struct cy_ctx *c, const struct cy_node *m, const char *key, const char *path,
                       const char *why)
{
    const struct cy_node *kn = NULL;
    char kp[CY_PATH_LEN];
    if (cy_map_get(m, key, &kn)) {
        cy_join_path(kp, path, key);
        cy_err(c, kn->line, kp, "%s", why);
    }
}

static void route_check(struct cy_ctx *c, const struct sl_config *cfg, struct sl_route_cfg *r,
                        const struct cy_node *item, const char *path)
{
    const struct cy_node *fk = NULL, *tk = NULL;
    const struct cy_node *from = cy_map_get(item, "from", &fk), *to = cy_map_get(item, "to", &tk);
    char fp[CY_PATH_LEN], tp[CY_PATH_LEN], kp[CY_PATH_LEN];
    if (!from || !to || (!cy_is_null(from) && from->kind != CY_MAP) ||
        (!cy_is_null(to) && to->kind != CY_MAP)) {
        return;                      /* already reported */
    }
    cy_join_path(fp, path, "from");
    cy_join_path(tp, path, "to");
    int nsrc = !!cy_map_get(from, "listener", NULL) + !!cy_map_get(from, "bridge", NULL) +
               !!cy_map_get(from, "topic", NULL);
    if (nsrc != 1) {
        cy_err(c, fk->line, fp, nsrc ? "give only one of listener, bridge or topic" :
               "needs one of listener, bridge (ingress) or topic (egress)");
        return;
    }
    if (r->from_bridge && !find_bridge(cfg, r->from_bridge)) {
        cy_join_path(kp, fp, "bridge");
        cy_err(c, cy_key_line(from, "bridge", fk->line), kp, "no bridge named '" CY_VAL_FMT
               "' in bridges", r->from_bridge);
    }
    r->egress = cy_map_get(from, "topic", NULL) != NULL;
    if (r->egress) {
        static const char *const in_only[] = {"topic", "topics", "key", "set_headers", NULL};
        const char *why = "not allowed in an egress route (from.topic)";
        for (size_t i = 0; in_only[i]; i++) {
            forbid_key(c, to, in_only[i], tp, why);
        }
        forbid_key(c, from, "headers", fp, why);
        int ndst = !!cy_map_get(to, "bridge", NULL) + !!cy_map_get(to, "listener", NULL);
        if (ndst != 1) {
            cy_err(c, tk->line, tp, ndst ? "give only one of bridge or listener" :
                   "an egress route needs bridge or listener");
        }
        if (r->to_bridge && !find_bridge(cfg, r->to_bridge)) {
            cy_join_path(kp, tp, "bridge");
            cy_err(c, cy_key_line(to, "bridge", tk->line), kp, "no bridge named '" CY_VAL_FMT
                   "' in bridges", r->to_bridge);
        }
        if (!r->destination) {
            r->destination = cy_strdup(c, "{subject}");
        }
        return;
    }
    static const char *const out_only[] = {"bridge", "listener", "destination", NULL};
    for (size_t i = 0; out_only[i]; i++) {
        forbid_key(c, to, out_only[i], tp, "not allowed in an ingress route (from.listener "
                   "or from.bridge)");
    }
    if (cy_map_get(to, "topic", NULL) && cy_map_get(to, "topics", NULL)) {
        cy_join_path(kp, tp, "topics");
        cy_err(c, cy_key_line(to, "topics", tk->line), kp, "give topic or topics, not both");
    } else if (!cy_map_get(to, "topic", NULL) && !cy_map_get(to, "topics", NULL)) {
        cy_err(c, tk->line, tp, "an ingress route needs topic or topics");
    }
}

void config_routes_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                      const char *path, int keyline)
{
    struct sl_config *cfg = field;
    if (cy_is_null(v)) {
        return;
    }
    if (v->kind != CY_SEQ) {
        cy_err(c, config_node_line(v, keyline), path, "expected a list of routes, not %s",
               config_kind_name(v));
        return;
    }
    cfg->routes = cy_calloc(c, v->n, sizeof(*cfg->routes));
    if (!cfg->routes) {
        return;
    }
    char ip[CY_PATH_LEN];
    for (size_t i = 0; i < v->n; i++) {
        const struct cy_node *item = v->kids[i];
        snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
        if (!config_expect_map(c, item, ip, item->line)) {
            continue;
        }
        struct sl_route_cfg *r = &cfg->routes[cfg->n_routes++];
        r->line = item->line;
        config_apply_map(c, item, o->sub, r, ip, item->line);
        if (!r->match) {
            r->match = cy_strdup(c, "#");
        }
        route_check(c, cfg, r, item, ip);
    }
}

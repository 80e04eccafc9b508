/*
 * sluice configuration loader.
 *
 * Two stages: gateway/config_yaml.c turns the text into a small node tree (each node
 * keeps its line), then the option tables here map the tree onto struct sl_config. The
 * tables carry name, type, offset, default, reloadable flag and help; the same tables
 * apply the defaults and print --help-config. Every error is collected as
 * "FILE:LINE: KEY: message" and all of them are returned together, sorted by line.
 */
#include "gateway/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config_yaml.h"

#define MAX_FILE_BYTES (16u << 20)

/* ------------------------------------------------------------ option tables ---- */

enum opt_type {
    OPT_STRING, OPT_BOOL, OPT_INT, OPT_SIZE, OPT_DURATION, OPT_ENUM,
    OPT_KV,           /* mapping of string -> string: struct sl_kv *, size_t count */
    OPT_STRLIST,      /* list of strings (or one string): char **, size_t count; appends */
    OPT_SECTION,      /* a nested mapping applied with `sub` to the same base */
    OPT_CUSTOM,       /* `fn` does the work */
};

#define OPT_RELOAD    0x1u   /* SIGHUP applies it without a restart */
#define OPT_UNLIMITED 0x2u   /* "-1" or "unlimited" store -1 */
#define OPT_REQUIRED  0x4u
#define OPT_SINGLE    0x8u   /* OPT_STRLIST: one scalar only (e.g. to.topic) */

struct enum_name {
    const char *name;
    int value;
};

struct opt;

struct table {
    const struct opt *opts;
    size_t base_off;           /* added to the base pointer for this table's offsets */
};

typedef void (*opt_fn)(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                       void *field, const char *path, int keyline);

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;                /* offsetof the field in the table's base */
    size_t size;               /* sizeof the field: ints, sizes, durations, enums */
    size_t count_off;          /* OPT_KV, OPT_STRLIST: offsetof the size_t count */
    const char *def;           /* default, written as in YAML; NULL: none */
    int64_t min, max;          /* OPT_INT, OPT_SIZE, OPT_DURATION */
    unsigned flags;
    const struct enum_name *enums; /* OPT_ENUM; OPT_STRING: the allowed values */
    const char *(*check)(const char *s); /* OPT_STRING, OPT_STRLIST: NULL or why not */
    const struct table *sub;   /* OPT_SECTION, and OPT_CUSTOM elements (for help) */
    const char *elem;          /* OPT_CUSTOM: path element in help: "<topic>", "[]" */
    opt_fn fn;                 /* OPT_CUSTOM */
    const char *type_name;     /* OPT_CUSTOM: the type shown in help */
    const char *help;
};

#define FIELD(T, f) .off = offsetof(T, f), .size = sizeof(((T *)0)->f)
#define LIST(T, f, n) .off = offsetof(T, f), .count_off = offsetof(T, n)

static void listener_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                        const char *, int);
static void bind_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                    const char *, int);
static void topics_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                      const char *, int);
static void bridges_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                       const char *, int);
static void mqtt_version_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                            const char *, int);
static void routes_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                      const char *, int);
static void key_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                   const char *, int);

static const struct enum_name log_levels[] = {
    {"error", SL_LL_ERROR}, {"warn", SL_LL_WARN}, {"info", SL_LL_INFO},
    {"debug", SL_LL_DEBUG}, {NULL, 0},
};
static const struct enum_name backends[] = {
    {"embedded", SL_BACKEND_EMBEDDED}, {"kafka", SL_BACKEND_KAFKA}, {NULL, 0},
};
static const struct enum_name flushes[] = {
    {"always", SL_FLUSH_ALWAYS}, {"interval", SL_FLUSH_INTERVAL}, {"os", SL_FLUSH_OS},
    {NULL, 0},
};
static const struct enum_name bridge_types[] = {
    {"amqp", SL_BRIDGE_AMQP}, {"mqtt", SL_BRIDGE_MQTT}, {"kafka", SL_BRIDGE_KAFKA},
    {NULL, 0},
};
static const struct enum_name listener_names[] = {
    {"http", 0}, {"mqtt", 0}, {"amqp", 0}, {"stomp", 0}, {"kafka", 0}, {"websocket", 0},
    {NULL, 0},
};

static const struct opt gateway_opts[] = {
    {.name = "data_dir", .type = OPT_STRING, FIELD(struct sl_config, data_dir),
     .def = "./data",
     .help = "Directory of the embedded log: one <topic>-<partition>/ directory each."},
    {.name = "log_level", .type = OPT_ENUM, FIELD(struct sl_config, log_level),
     .def = "info", .enums = log_levels, .flags = OPT_RELOAD,
     .help = "Diagnostics written to stderr / the journal."},
    {.name = NULL},
};

static const struct opt log_opts[] = {
    {.name = "backend", .type = OPT_ENUM, FIELD(struct sl_config, backend),
     .def = "embedded", .enums = backends,
     .help = "embedded: segments on local disk; kafka: every topic lives in a Kafka cluster."},
    {.name = "kafka", .type = OPT_KV,
     LIST(struct sl_config, kafka_properties, n_kafka_properties),
     .help = "librdkafka properties (bootstrap.servers, ...), for backend kafka only."},
    {.name = "auto_create", .type = OPT_BOOL, FIELD(struct sl_config, auto_create),
     .def = "true", .flags = OPT_RELOAD,
     .help = "Create an unknown topic on its first publish or subscribe."},
    {.name = "retention_check_interval", .type = OPT_DURATION,
     FIELD(struct sl_config, retention_check_ms), .def = "5m", .min = 1, .max = INT64_MAX,
     .help = "How often retention and age-based segment roll run."},
    {.name = NULL},
};

/* Per-topic settings: the log section's defaults, and each topics.<name> override. */
static const struct opt topic_opts[] = {
    {.name = "partitions", .type = OPT_INT, FIELD(struct sl_topic_config, partitions),
     .def = "1", .min = 1, .max = 100000, .flags = OPT_RELOAD,
     .help = "Partitions of a topic (an existing topic can only grow)."},
    {.name = "flush", .type = OPT_ENUM, FIELD(struct sl_topic_config, flush),
     .def = "always", .enums = flushes, .flags = OPT_RELOAD,
     .help = "always: fsync before the ack (appends share one fsync); interval: fsync "
             "every flush_interval; os: leave it to the page cache."},
    {.name = "flush_interval", .type = OPT_DURATION,
     FIELD(struct sl_topic_config, flush_interval_ms), .def = "1s", .min = 1,
     .max = INT64_MAX, .flags = OPT_RELOAD, .help = "fsync period for flush: interval."},
    {.name = "segment_bytes", .type = OPT_SIZE, FIELD(struct sl_topic_config, segment_bytes),
     .def = "1GiB", .min = 1, .max = SL_SEGMENT_BYTES_MAX, .flags = OPT_RELOAD,
     .help = "Roll the active segment past this size."},
    {.name = "segment_age", .type = OPT_DURATION, FIELD(struct sl_topic_config, segment_ms),
     .def = "7d", .min = 0, .max = INT64_MAX, .flags = OPT_RELOAD,
     .help = "Roll a segment older than this (0: never)."},
    {.name = "retention_bytes", .type = OPT_SIZE,
     FIELD(struct sl_topic_config, retention_bytes), .def = "-1", .min = 0,
     .max = INT64_MAX, .flags = OPT_RELOAD | OPT_UNLIMITED,
     .help = "Per partition: delete the oldest segments beyond this size (-1: unlimited)."},
    {.name = "retention", .type = OPT_DURATION, FIELD(struct sl_topic_config, retention_ms),
     .def = "7d", .min = 0, .max = INT64_MAX, .flags = OPT_RELOAD | OPT_UNLIMITED,
     .help = "Delete segments whose newest record is older than this (-1: unlimited)."},
    {.name = "index_interval_bytes", .type = OPT_SIZE,
     FIELD(struct sl_topic_config, index_interval_bytes), .def = "4KiB", .min = 1,
     .max = UINT32_MAX, .flags = OPT_RELOAD,
     .help = "One .index entry per this many bytes of log."},
    {.name = NULL},
};

static const struct opt listener_opts[] = {
    {.name = "bind", .type = OPT_CUSTOM, .fn = bind_fn, .type_name = "HOST:PORT",
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
     .max = 10000000, .help = "Connections beyond this are refused."},
    {.name = "max_packet_size", .type = OPT_SIZE,
     FIELD(struct sl_listener_cfg, mqtt_max_packet_size), .def = "1MiB", .min = 64,
     .max = 268435460, .help = "Largest packet accepted (bigger: DISCONNECT 0x95)."},
    {.name = "receive_maximum", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_receive_maximum), .def = "1024", .min = 1,
     .max = 65535, .help = "Inbound QoS 1/2 publishes in flight per client."},
    {.name = "max_inflight", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_max_inflight), .def = "1024", .min = 1, .max = 65535,
     .help = "Outbound QoS 1/2 messages unacknowledged per client (at most the client's "
             "receive maximum)."},
    {.name = "topic_alias_maximum", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_topic_alias_maximum), .def = "64", .min = 0,
     .max = 65535, .help = "Topic aliases a v5 client may set (0: none)."},
    {.name = "max_subscriptions", .type = OPT_INT,
     FIELD(struct sl_listener_cfg, mqtt_max_subscriptions), .def = "1000", .min = 1,
     .max = 1000000, .help = "Subscriptions per client (more: SUBACK 0x97)."},
    {.name = "max_session_expiry", .type = OPT_DURATION,
     FIELD(struct sl_listener_cfg, mqtt_max_session_expiry_ms), .def = "-1", .min = 0,
     .max = INT64_MAX, .flags = OPT_UNLIMITED,
     .help = "Cap on the session expiry clients ask for (-1: none)."},
    {.name = "max_keepalive", .type = OPT_DURATION,
     FIELD(struct sl_listener_cfg, mqtt_max_keepalive_ms), .def = "0", .min = 0,
     .max = 65535000, .help = "Cap on keep alive (0: what the client asks)."},
    {.name = "high_water", .type = OPT_SIZE, FIELD(struct sl_listener_cfg, mqtt_high_water),
     .def = "1MiB", .min = 4096, .max = INT64_MAX,
     .help = "Output bytes queued before a slow subscriber lags and reads from the log."},
    {.name = "allow_anonymous", .type = OPT_BOOL,
     FIELD(struct sl_listener_cfg, mqtt_allow_anonymous), .def = "true",
     .help = "Accept clients without a user name."},
    {.name = "users", .type = OPT_KV, LIST(struct sl_listener_cfg, mqtt_users, n_mqtt_users),
     .help = "user: pbkdf2-sha256$ITERATIONS$SALT_BASE64$HASH_BASE64 (see README MQTT)."},
    {.name = NULL},
};

static const struct table listener_tabs[] = {{listener_opts, 0}, {NULL, 0}};
static const struct table mqtt_tabs[] = {{listener_opts, 0}, {mqtt_opts, 0}, {NULL, 0}};
static const struct table http_tabs[] = {{listener_opts, 0}, {http_opts, 0}, {NULL, 0}};

static const struct opt listeners_opts[] = {
    {.name = "http", .type = OPT_CUSTOM, FIELD(struct sl_config, http), .fn = listener_fn,
     .def = "127.0.0.1:8080", .sub = http_tabs, .elem = "",
     .help = "HTTP: REST, WebSocket, Server-Sent Events, /metrics and the web page. "
             "Present by default."},
    {.name = "mqtt", .type = OPT_CUSTOM, FIELD(struct sl_config, mqtt), .fn = listener_fn,
     .def = "127.0.0.1:1883", .sub = mqtt_tabs, .elem = "", .help = "MQTT 3.1.1 and 5."},
    {.name = "amqp", .type = OPT_CUSTOM, FIELD(struct sl_config, amqp), .fn = listener_fn,
     .def = "127.0.0.1:5672", .sub = listener_tabs, .elem = "", .help = "AMQP 0-9-1."},
    {.name = "stomp", .type = OPT_CUSTOM, FIELD(struct sl_config, stomp), .fn = listener_fn,
     .def = "127.0.0.1:61613", .sub = listener_tabs, .elem = "", .help = "STOMP 1.2."},
    {.name = "kafka", .type = OPT_CUSTOM, FIELD(struct sl_config, kafka), .fn = listener_fn,
     .def = "127.0.0.1:9092", .sub = listener_tabs, .elem = "",
     .help = "Kafka wire protocol."},
    {.name = NULL},
};

static const struct opt bridge_opts[] = {
    {.name = "type", .type = OPT_ENUM, FIELD(struct sl_bridge_cfg, type),
     .enums = bridge_types, .flags = OPT_REQUIRED, .help = "Which client: required."},
    {.name = "url", .type = OPT_STRING, FIELD(struct sl_bridge_cfg, url),
     .help = "amqp: amqp:// or amqps://; mqtt: mqtt:// mqtts:// tcp:// ssl:// ws:// wss://."},
    {.name = "client_id", .type = OPT_STRING, FIELD(struct sl_bridge_cfg, client_id),
     .def = "sluice-<name>", .help = "MQTT client identifier."},
    {.name = "mqtt_version", .type = OPT_CUSTOM, FIELD(struct sl_bridge_cfg, mqtt_version),
     .fn = mqtt_version_fn, .type_name = "3 | 3.1.1 | 5", .def = "5",
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

static const struct table gateway_tabs[] = {{gateway_opts, 0}, {NULL, 0}};
static const struct table log_tabs[] = {
    {log_opts, 0}, {topic_opts, offsetof(struct sl_config, topic_defaults)}, {NULL, 0},
};
static const struct table topic_elem_tabs[] = {
    {topic_opts, offsetof(struct sl_topic_override, cfg)}, {NULL, 0},
};
static const struct table listeners_tabs[] = {{listeners_opts, 0}, {NULL, 0}};
static const struct table bridge_tabs[] = {{bridge_opts, 0}, {NULL, 0}};
static const struct table route_tabs[] = {{route_opts, 0}, {NULL, 0}};

/* Sections are applied in this order whatever their order in the file: topics see the
 * final log defaults, routes see every bridge. */
static const struct opt top_opts[] = {
    {.name = "gateway", .type = OPT_SECTION, .sub = gateway_tabs, .help = "The daemon."},
    {.name = "log", .type = OPT_SECTION, .sub = log_tabs,
     .help = "The partitioned log, and the defaults of every topic."},
    {.name = "topics", .type = OPT_CUSTOM, .fn = topics_fn, .sub = topic_elem_tabs,
     .elem = "<topic>", .flags = OPT_RELOAD,
     .help = "Per-topic overrides; each starts from the log section's values."},
    {.name = "listeners", .type = OPT_SECTION, .sub = listeners_tabs,
     .help = "Servers; http is on 127.0.0.1:8080 unless disabled."},
    {.name = "bridges", .type = OPT_CUSTOM, .fn = bridges_fn, .sub = bridge_tabs,
     .elem = "<name>", .help = "Named outbound clients that routes refer to."},
    {.name = "routes", .type = OPT_CUSTOM, .fn = routes_fn, .sub = route_tabs, .elem = "[]",
     .flags = OPT_RELOAD, .help = "Ingress rules and egress bindings, in order."},
    {.name = NULL},
};
static const struct table top_tabs[] = {{top_opts, 0}, {NULL, 0}};

/* ------------------------------------------------------------ applying ---- */

static void store_int(void *p, size_t size, int64_t v)
{
    if (size == sizeof(int64_t)) {
        memcpy(p, &v, sizeof(v));
    } else if (size == sizeof(int32_t) && v < 0) {
        int32_t x = (int32_t)v;
        memcpy(p, &x, sizeof(x));
    } else if (size == sizeof(uint32_t)) {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, sizeof(x));
    }
}

static const struct opt *find_opt(const struct table *tabs, const char *name, size_t *base_off)
{
    for (const struct table *t = tabs; t->opts; t++) {
        for (const struct opt *o = t->opts; o->name; o++) {
            if (strcmp(o->name, name) == 0) {
                if (base_off) {
                    *base_off = t->base_off;
                }
                return o;
            }
        }
    }
    return NULL;
}

static void enum_list(const struct enum_name *e, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (; e->name && off < size; e++) {
        off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", e->name);
    }
}

static const struct enum_name *enum_find(const struct enum_name *e, const char *s)
{
    for (; e->name; e++) {
        if (strcmp(e->name, s) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Set a scalar-valued option from text; 0, or -1 with the error recorded. */
static int set_scalar(struct cy_ctx *c, const struct opt *o, const char *s, void *base,
                      const char *path, int line)
{
    void *p = (char *)base + o->off;
    char list[160];
    switch (o->type) {
    case OPT_STRING: {
        if (!*s) {
            cy_err(c, line, path, "must not be empty");
            return -1;
        }
        if (o->enums && !enum_find(o->enums, s)) {
            enum_list(o->enums, list, sizeof(list));
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not one of: %s", s, list);
            return -1;
        }
        const char *why = o->check ? o->check(s) : NULL;
        if (why) {
            cy_err(c, line, path, "'" CY_VAL_FMT "': %s", s, why);
            return -1;
        }
        char *d = cy_strdup(c, s);
        if (!d) {
            return -1;
        }
        free(*(char **)p);
        *(char **)p = d;
        return 0;
    }
    case OPT_BOOL: {
        bool b;
        if (cy_parse_bool(s, &b) != 0) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not a boolean (true or false)", s);
            return -1;
        }
        *(bool *)p = b;
        return 0;
    }
    case OPT_INT: {
        int64_t v;
        if (cy_parse_int(s, &v) != 0 || v < o->min || v > o->max) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not an integer from %" PRId64 " to %" PRId64,
                   s, o->min, o->max);
            return -1;
        }
        store_int(p, o->size, v);
        return 0;
    }
    case OPT_SIZE: {
        uint64_t v;
        if ((o->flags & OPT_UNLIMITED) && cy_is_unlimited(s)) {
            store_int(p, o->size, -1);
            return 0;
        }
        if (sl_parse_size(s, &v) != 0) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not a size (like 4096, 64KiB, 128MiB, "
                   "1GB)%s", s, (o->flags & OPT_UNLIMITED) ? " or -1 / unlimited" : "");
            return -1;
        }
        if (v < (uint64_t)o->min || v > (uint64_t)o->max) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is out of range (%" PRId64 " to %" PRId64
                   " bytes)", s, o->min, o->max);
            return -1;
        }
        store_int(p, o->size, (int64_t)v);
        return 0;
    }
    case OPT_DURATION: {
        int64_t v;
        if ((o->flags & OPT_UNLIMITED) && cy_is_unlimited(s)) {
            store_int(p, o->size, -1);
            return 0;
        }
        if (sl_parse_duration_ms(s, &v) != 0) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not a duration (like 50ms, 30s, 5m, 12h, "
                   "7d, 2w; a bare number is milliseconds)%s", s,
                   (o->flags & OPT_UNLIMITED) ? " or -1 / unlimited" : "");
            return -1;
        }
        if (v < o->min || v > o->max) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is out of range (at least %" PRId64 " ms)",
                   s, o->min);
            return -1;
        }
        store_int(p, o->size, v);
        return 0;
    }
    case OPT_ENUM: {
        const struct enum_name *e = enum_find(o->enums, s);
        if (!e) {
            enum_list(o->enums, list, sizeof(list));
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not one of: %s", s, list);
            return -1;
        }
        store_int(p, o->size, e->value);
        return 0;
    }
    default:
        return -1;
    }
}

static const char *kind_name(const struct cy_node *v)
{
    switch (v->kind) {
    case CY_MAP:
        return "a mapping";
    case CY_SEQ:
        return "a list";
    case CY_ALIAS:
        return "an alias";
    default:
        return "a value";
    }
}

static int node_line(const struct cy_node *v, int keyline)
{
    return (!v || cy_is_null(v)) && keyline > 0 ? keyline : (v ? v->line : keyline);
}

/* The text of a non-null scalar, or NULL with the error recorded. */
static const char *expect_scalar(struct cy_ctx *c, const struct cy_node *v, const char *path,
                                 int keyline)
{
    int line = node_line(v, keyline);
    if (v->kind == CY_ALIAS) {
        cy_err(c, line, path, "aliases (*" CY_VAL_FMT ") are not supported", v->str);
        return NULL;
    }
    if (v->kind != CY_SCALAR) {
        cy_err(c, line, path, "expected a single value, not %s", kind_name(v));
        return NULL;
    }
    if (cy_is_null(v)) {
        cy_err(c, line, path, "missing value");
        return NULL;
    }
    return v->str;
}

static bool expect_map(struct cy_ctx *c, const struct cy_node *v, const char *path, int keyline)
{
    if (v->kind == CY_MAP) {
        return true;
    }
    if (v->kind == CY_ALIAS) {
        cy_err(c, node_line(v, keyline), path, "aliases (*" CY_VAL_FMT ") are not supported",
               v->str);
    } else {
        cy_err(c, node_line(v, keyline), path, "expected a mapping, not %s", kind_name(v));
    }
    return false;
}

struct keyref {
    const char *s;
    int line;
    size_t idx;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int r = strcmp(x->s, y->s);
    if (r) {
        return r;
    }
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Mapping keys must be scalars and unique. */
static void check_keys(struct cy_ctx *c, const struct cy_node *m, const char *path)
{
    size_t n = m->n / 2, k = 0;
    struct keyref *refs = cy_calloc(c, n, sizeof(*refs));
    if (!refs) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cy_node *key = m->kids[2 * i];
        if (key->kind != CY_SCALAR) {
            cy_err(c, key->line, path, "a mapping key must be a plain value, not %s",
                   kind_name(key));
            continue;
        }
        refs[k].s = key->str;
        refs[k].line = key->line;
        refs[k].idx = i;
        k++;
    }
    qsort(refs, k, sizeof(*refs), keyref_cmp);
    char kp[CY_PATH_LEN];
    for (size_t i = 1; i < k; i++) {
        size_t first = i - 1;
        while (i < k && strcmp(refs[i].s, refs[first].s) == 0) {
            cy_join_path(kp, path, refs[i].s);
            cy_err(c, refs[i].line, kp, "duplicate key (first at line %d)", refs[first].line);
            i++;
        }
    }
    free(refs);
}

static void apply_map(struct cy_ctx *c, const struct cy_node *m, const struct table *tabs,
                      void *base, const char *path, int keyline);

static void free_kv(struct sl_kv *kv, size_t n)
{
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void set_kv(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *base,
                   const char *path, int keyline)
{
    struct sl_kv **pv = (struct sl_kv **)(void *)((char *)base + o->off);
    size_t *pn = (size_t *)(void *)((char *)base + o->count_off);
    if (cy_is_null(v) || !expect_map(c, v, path, keyline)) {
        return;
    }
    check_keys(c, v, path);
    struct sl_kv *kv = cy_calloc(c, v->n / 2, sizeof(*kv));
    if (!kv) {
        return;
    }
    free_kv(*pv, *pn);
    *pv = kv;
    *pn = 0;
    char kp[CY_PATH_LEN];
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const struct cy_node *k = v->kids[i], *val = v->kids[i + 1];
        if (k->kind != CY_SCALAR) {
            continue;
        }
        cy_join_path(kp, path, k->str);
        const char *s = expect_scalar(c, val, kp, k->line);
        if (!s) {
            continue;
        }
        kv[*pn].key = cy_strdup(c, k->str);
        kv[*pn].value = cy_strdup(c, s);
        kv[*pn].line = k->line;
        (*pn)++;
    }
}

static void strlist_add(struct cy_ctx *c, const struct opt *o, const struct cy_node *item,
                        void *base, const char *path, int keyline)
{
    char ***pv = (char ***)(void *)((char *)base + o->off);
    size_t *pn = (size_t *)(void *)((char *)base + o->count_off);
    const char *s = expect_scalar(c, item, path, keyline);
    if (!s) {
        return;
    }
    int line = node_line(item, keyline);
    if (!*s) {
        cy_err(c, line, path, "empty value");
        return;
    }
    const char *why = o->check ? o->check(s) : NULL;
    if (why) {
        cy_err(c, line, path, "'" CY_VAL_FMT "': %s", s, why);
        return;
    }
    char **nv = realloc(*pv, (*pn + 1) * sizeof(*nv));
    if (!nv) {
        c->oom = true;
        return;
    }
    *pv = nv;
    nv[*pn] = cy_strdup(c, s);
    if (nv[*pn]) {
        (*pn)++;
    }
}

static void set_strlist(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *base,
                        const char *path, int keyline)
{
    if (v->kind != CY_SEQ || (o->flags & OPT_SINGLE)) {
        strlist_add(c, o, v, base, path, keyline);
        return;
    }
    char ip[CY_PATH_LEN];
    for (size_t i = 0; i < v->n; i++) {
        snprintf(ip, sizeof(ip), "%.*s[%zu]", CY_PATH_LEN - 30, path, i);
        strlist_add(c, o, v->kids[i], base, ip, v->kids[i]->line);
    }
}

static void apply_opt(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *base,
                      const char *path, int keyline)
{
    switch (o->type) {
    case OPT_SECTION:
        apply_map(c, v, o->sub, base, path, keyline);
        return;
    case OPT_CUSTOM:
        o->fn(c, o, v, (char *)base + o->off, path, keyline);
        return;
    case OPT_KV:
        set_kv(c, o, v, base, path, keyline);
        return;
    case OPT_STRLIST:
        set_strlist(c, o, v, base, path, keyline);
        return;
    default: {
        const char *s = expect_scalar(c, v, path, keyline);
        if (s) {
            set_scalar(c, o, s, base, path, node_line(v, keyline));
        }
        return;
    }
    }
}

/* Apply mapping m to base through tabs: unknown keys and duplicates are errors; options
 * are applied in table order; a null m is an empty mapping. */
static void apply_map(struct cy_ctx *c, const struct cy_node *m, const struct table *tabs,
                      void *base, const char *path, int keyline)
{
    char kp[CY_PATH_LEN];
    if (cy_is_null(m) || !expect_map(c, m, path, keyline)) {
        m = NULL;
    } else {
        check_keys(c, m, path);
        for (size_t i = 0; i + 1 < m->n; i += 2) {
            const struct cy_node *k = m->kids[i];
            if (k->kind == CY_SCALAR && !find_opt(tabs, k->str, NULL)) {
                cy_join_path(kp, path, k->str);
                cy_err(c, k->line, kp, "unknown key");
            }
        }
    }
    for (const struct table *t = tabs; t->opts; t++) {
        for (const struct opt *o = t->opts; o->name; o++) {
            const struct cy_node *k = NULL;
            const struct cy_node *v = cy_map_get(m, o->name, &k);
            cy_join_path(kp, path, o->name);
            if (v) {
                apply_opt(c, o, v, (char *)base + t->base_off, kp, k->line);
            } else if (o->flags & OPT_REQUIRED) {
                cy_err(c, keyline > 0 ? keyline : 1, kp, "required key is missing");
            }
        }
    }
}

/* Defaults from the tables' `def` texts (sections recursively). */
static void apply_defaults(struct cy_ctx *c, const struct table *tabs, void *base)
{
    for (const struct table *t = tabs; t->opts; t++) {
        void *b = (char *)base + t->base_off;
        for (const struct opt *o = t->opts; o->name; o++) {
            if (o->type == OPT_SECTION) {
                apply_defaults(c, o->sub, b);
            } else if (o->def && o->type <= OPT_ENUM && o->def[0] != '\0' &&
                       !strchr(o->def, '<')) {
                set_scalar(c, o, o->def, b, o->name, 0);
            }
        }
    }
}

/* ------------------------------------------------------------ custom options ---- */

static void listener_init(struct cy_ctx *c, const struct opt *o, struct sl_listener_cfg *l)
{
    l->present = true;
    l->enabled = true;
    const char *why = cy_parse_bind(o->def, &l->host, &l->port);
    if (why) {
        cy_err(c, 0, o->name, "built-in default: %s", why);
    }
    apply_defaults(c, o->sub, l);
}

static void listener_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                        const char *path, int keyline)
{
    struct sl_listener_cfg *l = field;
    listener_init(c, o, l);
    l->line = keyline;
    apply_map(c, v, o->sub, l, path, keyline);
}

static void bind_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                    const char *path, int keyline)
{
    struct sl_listener_cfg *l = field;
    const char *s = expect_scalar(c, v, path, keyline);
    if (!s) {
        return;
    }
    const char *why = cy_parse_bind(s, &l->host, &l->port);
    if (why) {
        cy_err(c, node_line(v, keyline), path, "'" CY_VAL_FMT "': %s", s, why);
    }
}

static void mqtt_version_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                            void *field, const char *path, int keyline)
{
    static const struct enum_name versions[] = {
        {"3", 3}, {"3.1.1", 3}, {"5", 5}, {"5.0", 5}, {NULL, 0},
    };
    const char *s = expect_scalar(c, v, path, keyline);
    if (!s) {
        return;
    }
    const struct enum_name *e = enum_find(versions, s);
    if (!e) {
        cy_err(c, node_line(v, keyline), path, "'" CY_VAL_FMT "' is not one of: 3, 3.1.1, 5", s);
        return;
    }
    *(int *)field = e->value;
}

static void key_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                   const char *path, int keyline)
{
    struct sl_route_cfg *r = field;
    const char *s = expect_scalar(c, v, path, keyline);
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
        cy_err(c, node_line(v, keyline), path,
               "'" CY_VAL_FMT "' is not one of: subject, none, header:NAME", s);
    }
}

static void topics_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                      const char *path, int keyline)
{
    struct sl_config *cfg = field;
    if (cy_is_null(v) || !expect_map(c, v, path, keyline)) {
        return;
    }
    check_keys(c, v, path);
    cfg->topics = cy_calloc(c, v->n / 2, sizeof(*cfg->topics));
    if (!cfg->topics) {
        return;
    }
    char kp[CY_PATH_LEN];
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const struct cy_node *k = v->kids[i];
        if (k->kind != CY_SCALAR) {
            continue;
        }
        cy_join_path(kp, path, k->str);
        const char *why = cy_check_topic(k->str);
        if (why) {
            cy_err(c, k->line, kp, "%s", why);
            continue;
        }
        struct sl_topic_override *t = &cfg->topics[cfg->n_topics++];
        t->name = cy_strdup(c, k->str);
        t->cfg = cfg->topic_defaults;
        t->line = k->line;
        apply_map(c, v->kids[i + 1], o->sub, t, kp, k->line);
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

static void bridges_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                       const char *path, int keyline)
{
    struct sl_config *cfg = field;
    if (cy_is_null(v) || !expect_map(c, v, path, keyline)) {
        return;
    }
    check_keys(c, v, path);
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
        apply_defaults(c, o->sub, b);
        if (cy_is_null(bv)) {
            cy_err(c, k->line, kp, "expected a mapping with at least type");
            continue;
        }
        apply_map(c, bv, o->sub, b, kp, k->line);
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

static void routes_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                      const char *path, int keyline)
{
    struct sl_config *cfg = field;
    if (cy_is_null(v)) {
        return;
    }
    if (v->kind != CY_SEQ) {
        cy_err(c, node_line(v, keyline), path, "expected a list of routes, not %s",
               kind_name(v));
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
        if (!expect_map(c, item, ip, item->line)) {
            continue;
        }
        struct sl_route_cfg *r = &cfg->routes[cfg->n_routes++];
        r->line = item->line;
        apply_map(c, item, o->sub, r, ip, item->line);
        if (!r->match) {
            r->match = cy_strdup(c, "#");
        }
        route_check(c, cfg, r, item, ip);
    }
}

/* Checks across sections, once everything is applied. */
static void config_check(struct cy_ctx *c, struct sl_config *cfg, const struct cy_node *root)
{
    const struct cy_node *lk = NULL;
    const struct cy_node *logn = cy_map_get(root, "log", &lk);
    if (cfg->backend == SL_BACKEND_KAFKA) {
        static const char *const brokers[] = {
            "bootstrap.servers", "metadata.broker.list", "test.mock.num.brokers", NULL,
        };
        bool servers = false;
        for (size_t i = 0; i < cfg->n_kafka_properties; i++) {
            for (size_t j = 0; brokers[j]; j++) {
                servers |= strcmp(cfg->kafka_properties[i].key, brokers[j]) == 0;
            }
        }
        if (!servers) {
            cy_err(c, cy_key_line(logn, "backend", lk ? lk->line : 1), "log.kafka",
                   "backend kafka needs bootstrap.servers");
        }
    }
    struct sl_listener_cfg *ls[] = {&cfg->http, &cfg->mqtt, &cfg->amqp, &cfg->stomp,
                                    &cfg->kafka};
    for (size_t i = 0; i < 5; i++) {
        for (size_t j = 0; j < i; j++) {
            struct sl_listener_cfg *a = ls[i], *b = ls[j];
            if (a->present && a->enabled && b->present && b->enabled && a->port != 0 &&
                a->port == b->port && a->host && b->host && strcmp(a->host, b->host) == 0) {
                char kp[64];
                snprintf(kp, sizeof(kp), "listeners.%s.bind", listeners_opts[i].name);
                cy_err(c, a->line ? a->line : 1, kp, "%s:%d is also used by listeners.%s",
                       a->host, a->port, listeners_opts[j].name);
            }
        }
    }
}

/* ------------------------------------------------------------ public API ---- */

static struct sl_config *config_new(struct cy_ctx *c)
{
    struct sl_config *cfg = cy_calloc(c, 1, sizeof(*cfg));
    if (!cfg) {
        return NULL;
    }
    apply_defaults(c, top_tabs, cfg);
    listener_init(c, &listeners_opts[0], &cfg->http);
    return cfg;
}

int sl_parse_size(const char *s, uint64_t *out)
{
    return cy_parse_size(s, out);
}

int sl_parse_duration_ms(const char *s, int64_t *out)
{
    return cy_parse_duration_ms(s, out);
}

struct sl_config *sl_config_defaults(void)
{
    struct cy_ctx c = {.name = "defaults"};
    struct sl_config *cfg = config_new(&c);
    if (c.oom || c.n_errs) {
        sl_config_free(&cfg);
    }
    cy_ctx_clear(&c);
    return cfg;
}

struct sl_config *sl_config_parse(const char *name, const char *text, size_t len,
                                  char **errors)
{
    struct cy_ctx c = {.name = name ? name : "<config>"};
    struct cy_node *root = NULL;
    struct sl_config *cfg = config_new(&c);
    if (cfg) {
        cfg->path = cy_strdup(&c, c.name);
    }
    if (cfg && !c.oom && cy_load_tree(&c, text ? text : "", text ? len : 0, &root)) {
        if (!cy_is_null(root)) {
            apply_map(&c, root, top_tabs, cfg, "", 0);
            if (root->kind == CY_MAP) {
                config_check(&c, cfg, root);
            }
        }
    }
    cy_node_free(root);
    char *text_err = cy_errors_text(&c);
    bool failed = c.oom || c.n_errs > 0;
    cy_ctx_clear(&c);
    if (failed) {
        sl_config_free(&cfg);
    }
    if (errors) {
        *errors = text_err;
    } else {
        free(text_err);
    }
    return cfg;
}

struct sl_config *sl_config_load(const char *path, char **errors)
{
    char *msg = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (asprintf(&msg, "%s:0: cannot open: %s\n", path, strerror(errno)) < 0) {
            msg = NULL;
        }
        goto fail;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    errno = 0;
    while (buf) {
        if (len == cap) {
            char *nb = cap >= MAX_FILE_BYTES ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            break;
        }
    }
    int read_errno = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!buf || read_errno) {
        free(buf);
        if (asprintf(&msg, "%s:0: cannot read: %s\n", path,
                     read_errno ? strerror(read_errno) : "larger than 16 MiB or out of memory")
            < 0) {
            msg = NULL;
        }
        goto fail;
    }
    struct sl_config *cfg = sl_config_parse(path, buf, len, errors);
    free(buf);
    return cfg;
fail:
    if (errors) {
        *errors = msg;
    } else {
        free(msg);
    }
    return NULL;
}

static void free_listener(struct sl_listener_cfg *l)
{
    free(l->host);
    free(l->web_root);
    free_kv(l->mqtt_users, l->n_mqtt_users);
}

void sl_config_free(struct sl_config **pcfg)
{
    if (!pcfg || !*pcfg) {
        return;
    }
    struct sl_config *cfg = *pcfg;
    free(cfg->path);
    free(cfg->data_dir);
    free_kv(cfg->kafka_properties, cfg->n_kafka_properties);
    for (size_t i = 0; i < cfg->n_topics; i++) {
        free(cfg->topics[i].name);
    }
    free(cfg->topics);
    free_listener(&cfg->http);
    free_listener(&cfg->mqtt);
    free_listener(&cfg->amqp);
    free_listener(&cfg->stomp);
    free_listener(&cfg->kafka);
    for (size_t i = 0; i < cfg->n_bridges; i++) {
        struct sl_bridge_cfg *b = &cfg->bridges[i];
        free(b->name);
        free(b->url);
        free(b->client_id);
        free_kv(b->properties, b->n_properties);
        free_strv(b->consume, b->n_consume);
        free_strv(b->subscribe, b->n_subscribe);
        free(b->username);
        free(b->password);
    }
    free(cfg->bridges);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct sl_route_cfg *r = &cfg->routes[i];
        free(r->from_listener);
        free(r->from_bridge);
        free(r->from_topic);
        free(r->match);
        free_kv(r->when_headers, r->n_when_headers);
        free_strv(r->to_topics, r->n_to_topics);
        free(r->key_header);
        free_kv(r->set_headers, r->n_set_headers);
        free(r->to_bridge);
        free(r->to_listener);
        free(r->destination);
    }
    free(cfg->routes);
    free(cfg);
    *pcfg = NULL;
}

/* ------------------------------------------------------------ reload ---- */

struct diff {
    char *buf;
    size_t len, off;
    int n;
};

static void diff_add(struct diff *d, const char *path)
{
    if (d->buf && d->len > d->off) {
        int r = snprintf(d->buf + d->off, d->len - d->off, "%s%s", d->n ? ", " : "", path);
        d->off = r < 0 ? d->off : d->off + (size_t)r;
        if (d->off >= d->len) {
            d->off = d->len;
        }
    }
    d->n++;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool kv_eq(const struct sl_kv *a, size_t na, const struct sl_kv *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!str_eq(a[i].key, b[i].key) || !str_eq(a[i].value, b[i].value)) {
            return false;
        }
    }
    return true;
}

static bool strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!str_eq(a[i], b[i])) {
            return false;
        }
    }
    return true;
}

static bool listener_eq(const struct sl_listener_cfg *a, const struct sl_listener_cfg *b)
{
    return a->present == b->present && a->enabled == b->enabled && a->port == b->port &&
           str_eq(a->host, b->host) && a->max_body == b->max_body &&
           str_eq(a->web_root, b->web_root) && a->max_wait_ms == b->max_wait_ms &&
           a->max_connections == b->max_connections;
}

/* One option's values in two bases equal? */
static bool opt_eq(const struct opt *o, const void *a, const void *b)
{
    const char *pa = (const char *)a + o->off, *pb = (const char *)b + o->off;
    switch (o->type) {
    case OPT_STRING:
        return str_eq(*(char *const *)(const void *)pa, *(char *const *)(const void *)pb);
    case OPT_KV:
        return kv_eq(*(struct sl_kv *const *)(const void *)pa,
                     *(const size_t *)(const void *)((const char *)a + o->count_off),
                     *(struct sl_kv *const *)(const void *)pb,
                     *(const size_t *)(const void *)((const char *)b + o->count_off));
    case OPT_STRLIST:
        return strv_eq(*(char **const *)(const void *)pa,
                       *(const size_t *)(const void *)((const char *)a + o->count_off),
                       *(char **const *)(const void *)pb,
                       *(const size_t *)(const void *)((const char *)b + o->count_off));
    case OPT_CUSTOM:
        if (o->fn == listener_fn) {
            return listener_eq((const void *)pa, (const void *)pb);
        }
        if (o->fn == mqtt_version_fn) {
            return memcmp(pa, pb, o->size) == 0;
        }
        return true;
    default:
        return memcmp(pa, pb, o->size) == 0;
    }
}

static bool bridge_eq(const struct sl_bridge_cfg *a, const struct sl_bridge_cfg *b)
{
    if (!str_eq(a->name, b->name)) {
        return false;
    }
    for (const struct opt *o = bridge_opts; o->name; o++) {
        if (!opt_eq(o, a, b)) {
            return false;
        }
    }
    return true;
}

static void diff_tabs(struct diff *d, const struct table *tabs, const void *a, const void *b,
                      const char *prefix)
{
    char path[CY_PATH_LEN];
    for (const struct table *t = tabs; t->opts; t++) {
        const char *ba = (const char *)a + t->base_off, *bb = (const char *)b + t->base_off;
        for (const struct opt *o = t->opts; o->name; o++) {
            cy_join_path(path, prefix, o->name);
            if (o->flags & OPT_RELOAD) {
                continue;
            }
            if (o->type == OPT_SECTION) {
                diff_tabs(d, o->sub, ba, bb, path);
            } else if (o->fn == bridges_fn) {
                const struct sl_config *ca = (const void *)ba, *cb = (const void *)bb;
                bool same = ca->n_bridges == cb->n_bridges;
                for (size_t i = 0; same && i < ca->n_bridges; i++) {
                    same = bridge_eq(&ca->bridges[i], &cb->bridges[i]);
                }
                if (!same) {
                    diff_add(d, path);
                }
            } else if (!opt_eq(o, ba, bb)) {
                diff_add(d, path);
            }
        }
    }
}

int sl_config_restart_changes(const struct sl_config *old, const struct sl_config *cur,
                              char *buf, size_t len)
{
    struct diff d = {.buf = buf, .len = len};
    if (buf && len) {
        buf[0] = '\0';
    }
    if (!old || !cur) {
        return 0;
    }
    diff_tabs(&d, top_tabs, old, cur, "");
    return d.n;
}

/* ------------------------------------------------------------ help ---- */

static const char *type_name(const struct opt *o)
{
    static const char *const names[] = {
        [OPT_STRING] = "string", [OPT_BOOL] = "bool", [OPT_INT] = "integer",
        [OPT_SIZE] = "size", [OPT_DURATION] = "duration", [OPT_ENUM] = "enum",
        [OPT_KV] = "map of string: string", [OPT_STRLIST] = "list of strings",
        [OPT_SECTION] = "section", [OPT_CUSTOM] = "custom",
    };
    if (o->type == OPT_CUSTOM && o->type_name) {
        return o->type_name;
    }
    if (o->type == OPT_STRLIST && (o->flags & OPT_SINGLE)) {
        return "string";
    }
    return names[o->type];
}

/* parent_reload: the enclosing section is reloadable as a whole; parent_def: the
 * enclosing element's default (a listener's bind). */
static void print_tabs(FILE *out, const struct table *tabs, const char *prefix, int depth,
                       bool parent_reload, const char *parent_def)
{
    char path[CY_PATH_LEN], list[160];
    if (depth > 8) {
        return;
    }
    for (const struct table *t = tabs; t->opts; t++) {
        for (const struct opt *o = t->opts; o->name; o++) {
            cy_join_path(path, prefix, o->name);
            bool nested = o->type == OPT_SECTION || (o->type == OPT_CUSTOM && o->sub);
            bool reload = parent_reload || (o->flags & OPT_RELOAD);
            const char *def = o->def ? o->def : (o->type == OPT_CUSTOM ? parent_def : NULL);
            if (nested) {
                char sub[CY_PATH_LEN];
                if (o->elem && o->elem[0] == '<') {
                    snprintf(sub, sizeof(sub), "%.*s.%s", CY_PATH_LEN - 20, path, o->elem);
                } else {
                    snprintf(sub, sizeof(sub), "%.*s%s", CY_PATH_LEN - 20, path,
                             o->elem ? o->elem : "");
                }
                fprintf(out, "\n%s  [%s%s%s]\n    %s\n", sub,
                        reload ? "reloadable" : "restart",
                        o->def ? "; default bind: " : "", o->def ? o->def : "", o->help);
                print_tabs(out, o->sub, sub, depth + 1, reload, o->def);
                continue;
            }
            fprintf(out, "  %-40s %s", path, type_name(o));
            if (o->type == OPT_ENUM || (o->type == OPT_STRING && o->enums)) {
                enum_list(o->enums, list, sizeof(list));
                fprintf(out, " (%s)", list);
            }
            if (o->flags & OPT_UNLIMITED) {
                fprintf(out, " or -1 (unlimited)");
            }
            fprintf(out, "; default: %s%s%s\n      %s\n", def ? def : "none",
                    (o->flags & OPT_REQUIRED) ? "; required" : "",
                    reload ? "; reloadable" : "", o->help);
        }
    }
}

void sl_config_print_help(FILE *out)
{
    fprintf(out, "sluice configuration (YAML). Sizes: 4096, 64KiB, 128MiB, 1GiB, 1GB; "
                 "durations: 50ms, 30s, 5m, 12h, 7d, 2w (a bare number is ms).\n"
                 "Options marked reloadable take effect on SIGHUP; the others need a "
                 "restart.\n");
    print_tabs(out, top_tabs, "", 0, false, NULL);
}

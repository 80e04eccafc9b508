/*
 * sluice configuration: YAML (libyaml) mapped onto the structs below through option
 * tables. Every error names file:line and the key; unknown keys are errors; sizes
 * ("128MiB", "1GB", "4096") and durations ("50ms", "30s", "5m", "12h", "7d", "2w";
 * a bare number is milliseconds) parse; "-1" / "unlimited" means no limit where allowed.
 *
 * Thread affinity: none (pure: reads the file, builds the structs). The loader is
 * called on the loop thread at start and on SIGHUP.
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gateway/log/log.h"

enum sl_log_level { SL_LL_ERROR = 0, SL_LL_WARN, SL_LL_INFO, SL_LL_DEBUG };
enum sl_backend { SL_BACKEND_EMBEDDED = 0, SL_BACKEND_KAFKA };

struct sl_kv {                 /* an ordered string pair from a YAML mapping */
    char *key;
    char *value;
    int line;
};

struct sl_listener_cfg {
    bool present;              /* the section appeared in the file */
    bool enabled;              /* `enabled: false` turns a present listener off */
    char *host;                /* from bind: HOST:PORT */
    int port;
    int line;
    /* http only */
    uint64_t max_body;         /* bytes, default 1 MiB */
    char *web_root;            /* directory served at /, default "web" */
    int64_t max_wait_ms;       /* upper bound for wait_ms of long-poll reads, default 30 s */
    uint32_t max_connections;  /* default 10000 (http), 100000 (mqtt) */
    /* mqtt only (see conf/sluice.yaml) */
    uint64_t mqtt_max_packet_size;       /* bytes, default 1 MiB */
    uint32_t mqtt_receive_maximum;       /* inbound QoS 1/2 unacked per client, 1024 */
    uint32_t mqtt_max_inflight;          /* outbound QoS 1/2 unacked per client, 1024 */
    uint32_t mqtt_topic_alias_maximum;   /* inbound topic aliases per client, 64 */
    uint32_t mqtt_max_subscriptions;     /* per client, 1000 */
    int64_t mqtt_max_session_expiry_ms;  /* cap on session expiry, -1 none */
    int64_t mqtt_max_keepalive_ms;       /* cap on keep alive, 0 none */
    uint64_t mqtt_high_water;            /* output bytes before a subscriber lags, 1 MiB */
    bool mqtt_allow_anonymous;           /* default true */
    struct sl_kv *mqtt_users;            /* user -> "pbkdf2-sha256$ITER$SALT$HASH" */
    size_t n_mqtt_users;
};

struct sl_topic_override {
    char *name;
    struct sl_topic_config cfg;  /* log defaults with this topic's keys applied */
    int line;
};

enum sl_bridge_type { SL_BRIDGE_AMQP = 0, SL_BRIDGE_MQTT, SL_BRIDGE_KAFKA };

struct sl_bridge_cfg {
    char *name;
    enum sl_bridge_type type;
    char *url;                 /* amqp, mqtt */
    char *client_id;           /* mqtt; default "sluice-<name>" */
    int mqtt_version;          /* 3 (3.1.1) or 5; default 5 */
    struct sl_kv *properties;  /* kafka: librdkafka properties */
    size_t n_properties;
    char **consume;            /* amqp queues or kafka topics */
    size_t n_consume;
    char **subscribe;          /* mqtt filters */
    size_t n_subscribe;
    int line;
    /* mqtt bridges (adapters/mqtt/mqtt_bridge.c) */
    char *username;            /* NULL: none */
    char *password;            /* NULL: none */
    int qos;                   /* subscriptions and egress publishes: 0, 1 (default) or 2 */
    bool clean_start;          /* default false: a persistent session the broker keeps */
    int64_t session_expiry_ms; /* MQTT 5 session expiry interval; default 1 day */
    int64_t keepalive_ms;      /* default 30 s */
    int64_t reconnect_min_ms;  /* reconnect backoff: first delay, default 500 ms */
    int64_t reconnect_max_ms;  /* reconnect backoff: cap, default 30 s */
    int32_t max_inflight;      /* egress messages awaiting the broker's ack; default 64 */
};

enum sl_key_kind { SL_KEY_SUBJECT = 0, SL_KEY_HEADER, SL_KEY_NONE };

struct sl_route_cfg {
    int line;
    bool egress;               /* from: {topic: ...} */
    /* from */
    char *from_listener;       /* ingress: exactly one of from_listener / from_bridge */
    char *from_bridge;
    char *from_topic;          /* egress */
    char *match;               /* subject pattern with + / * and #; default "#" */
    struct sl_kv *when_headers; /* ingress predicates: header NAME equals VALUE */
    size_t n_when_headers;
    /* to */
    char **to_topics;          /* ingress: `topic: X` or `topics: [X, Y]` */
    size_t n_to_topics;
    enum sl_key_kind key;      /* ingress: subject (default) | header:NAME | none */
    char *key_header;
    struct sl_kv *set_headers; /* ingress header rewrites: set NAME to VALUE */
    size_t n_set_headers;
    char *to_bridge;           /* egress: exactly one of to_bridge / to_listener */
    char *to_listener;
    char *destination;         /* egress template, may contain {subject} and {topic} */
};

struct sl_config {
    char *path;
    /* gateway */
    char *data_dir;            /* default "./data" */
    enum sl_log_level log_level; /* default info */
    /* log */
    enum sl_backend backend;   /* default embedded */
    struct sl_kv *kafka_properties;
    size_t n_kafka_properties;
    struct sl_topic_config topic_defaults; /* partitions, flush, segment, retention */
    bool auto_create;          /* default true */
    int64_t retention_check_ms; /* default 5 min */
    /* topics */
    struct sl_topic_override *topics;
    size_t n_topics;
    /* listeners (defaults: http present on 127.0.0.1:8080; others absent) */
    struct sl_listener_cfg http, mqtt, amqp, stomp, kafka;
    /* bridges, routes: in file order */
    struct sl_bridge_cfg *bridges;
    size_t n_bridges;
    struct sl_route_cfg *routes;
    size_t n_routes;
};

/*
 * Load and validate a file. Returns a new config (free with sl_config_free), or NULL
 * with *errors set to a malloc'd text of one "file:line: message" per line (all the
 * errors found, not only the first). Any thread.
 */
struct sl_config *sl_config_load(const char *path, char **errors);

/* The same from memory; `name` is used in messages in place of a file name. */
struct sl_config *sl_config_parse(const char *name, const char *text, size_t len,
                                  char **errors);

/* A config with every default and no file (what an empty file gives). */
struct sl_config *sl_config_defaults(void);

/* Free everything; *cfg set to NULL; NULL is a no-op. */
void sl_config_free(struct sl_config **cfg);

/* Parse helpers, exported for tests and other modules. 0 or -EINVAL. */
int sl_parse_size(const char *s, uint64_t *out);
int sl_parse_duration_ms(const char *s, int64_t *out);

/* Print every option with its type, default and help (for --help-config). */
void sl_config_print_help(FILE *out);

/*
 * For a reload: the options that differ between `old` and `cur` but take effect only
 * after a restart (data_dir, log.backend, log.kafka, a listener added or removed, a
 * listener's bind or enabled, bridges, ...; every option --help-config does not mark
 * reloadable, such as listeners.mqtt.users is). Writes their dotted names,
 * comma-separated, into buf (NUL-terminated, truncated to len; buf may be NULL) and
 * returns how many; 0 means `cur` can be applied in full. Borrows both. Any thread.
 */
int sl_config_restart_changes(const struct sl_config *old, const struct sl_config *cur,
                              char *buf, size_t len);

#endif

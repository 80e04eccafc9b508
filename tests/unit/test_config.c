/* Unit tests for gateway/config.c: defaults, every section, sizes and durations, error
 * texts with file:line and key, and the shipped configuration files. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"

#include "fixture.h"

static struct sl_config *parse_ok(const char *text)
{
    char *errors = NULL;
    struct sl_config *cfg = sl_config_parse("t.yaml", text, strlen(text), &errors);
    if (!cfg) {
        fprintf(stderr, "unexpected errors:\n%s", errors ? errors : "(none)\n");
    }
    assert_non_null(cfg);
    assert_null(errors);
    return cfg;
}

/* Parse text that must fail; returns the malloc'd error text. */
static char *parse_bad(const char *text)
{
    char *errors = NULL;
    struct sl_config *cfg = sl_config_parse("t.yaml", text, strlen(text), &errors);
    assert_null(cfg);
    assert_non_null(errors);
    return errors;
}

/* The text must fail with exactly this one error line. */
static void expect_only(const char *text, const char *line)
{
    char *errors = parse_bad(text);
    char want[1024];
    snprintf(want, sizeof(want), "%s\n", line);
    if (strcmp(errors, want) != 0) {
        fprintf(stderr, "want: %sgot:  %s", want, errors);
    }
    assert_string_equal(errors, want);
    free(errors);
}

/* The text must fail with an error containing `part` (others may be there too). */
static void expect_has(const char *text, const char *part)
{
    char *errors = parse_bad(text);
    if (!strstr(errors, part)) {
        fprintf(stderr, "want a line with: %s\ngot:\n%s", part, errors);
    }
    assert_non_null(strstr(errors, part));
    free(errors);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

static void check_defaults(const struct sl_config *cfg)
{
    assert_string_equal(cfg->data_dir, "./data");
    assert_int_equal(cfg->log_level, SL_LL_INFO);
    assert_int_equal(cfg->backend, SL_BACKEND_EMBEDDED);
    assert_int_equal(cfg->n_kafka_properties, 0);
    assert_true(cfg->auto_create);
    assert_int_equal(cfg->retention_check_ms, 5 * 60 * 1000);
    /* mirrors sl_topic_config_defaults in log.c */
    assert_int_equal(cfg->topic_defaults.partitions, 1);
    assert_true(cfg->topic_defaults.segment_bytes == 1ull << 30);
    assert_true(cfg->topic_defaults.segment_ms == 7LL * 86400000);
    assert_true(cfg->topic_defaults.retention_bytes == -1);
    assert_true(cfg->topic_defaults.retention_ms == 7LL * 86400000);
    assert_int_equal(cfg->topic_defaults.flush, SL_FLUSH_ALWAYS);
    assert_int_equal(cfg->topic_defaults.flush_interval_ms, 1000);
    assert_int_equal(cfg->topic_defaults.index_interval_bytes, 4096);
    assert_int_equal(cfg->topic_defaults.preallocate, 1024 * 1024);
    assert_int_equal(cfg->topic_defaults.compression, SL_RB_CODEC_NONE);
    assert_true(cfg->http.present);
    assert_true(cfg->http.enabled);
    assert_string_equal(cfg->http.host, "127.0.0.1");
    assert_int_equal(cfg->http.port, 8080);
    assert_int_equal(cfg->http.max_body, 1 << 20);
    assert_string_equal(cfg->http.web_root, "web");
    assert_int_equal(cfg->http.max_wait_ms, 30000);
    assert_int_equal(cfg->http.max_connections, 10000);
    assert_false(cfg->mqtt.present);
    assert_false(cfg->amqp.present);
    assert_false(cfg->stomp.present);
    assert_false(cfg->kafka.present);
    assert_int_equal(cfg->n_topics, 0);
    assert_int_equal(cfg->n_bridges, 0);
    assert_int_equal(cfg->n_routes, 0);
}

static void test_defaults(void **state)
{
    static const char *const empties[] = {
        "", "\n", "# only a comment\n", "---\n", "---\n...\n", "~\n",
        "gateway:\nlog:\ntopics:\nlisteners:\nbridges:\nroutes:\n", "{}\n",
    };
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct sl_config *cfg = parse_ok(empties[i]);
        check_defaults(cfg);
        assert_string_equal(cfg->path, "t.yaml");
        sl_config_free(&cfg);
        assert_null(cfg);
    }
    struct sl_config *cfg = sl_config_defaults();
    assert_non_null(cfg);
    check_defaults(cfg);
    sl_config_free(&cfg);
    assert_null(cfg);
    sl_config_free(&cfg);           /* NULL is a no-op */
    sl_config_free(NULL);
}

static void test_sizes(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } good[] = {
        {"0", 0}, {"4096", 4096}, {"1B", 1}, {"1KiB", 1024}, {"128MiB", 128ull << 20},
        {"1GiB", 1ull << 30}, {"2TiB", 2ull << 40}, {"1KB", 1000}, {"3MB", 3000000},
        {"5GB", 5000000000ull}, {"1TB", 1000000000000ull}, {"4k", 4096}, {"4K", 4096},
        {"2m", 2ull << 20}, {"3M", 3ull << 20}, {"1g", 1ull << 30}, {"1G", 1ull << 30},
        {"1 MiB", 1ull << 20}, {"18446744073709551615", UINT64_MAX},
        {"16777215TiB", 16777215ull << 40},
    };
    static const char *const bad[] = {
        "", "-1", "+1", "abc", "12x", "1.5GiB", "MiB", " 1", "1 ", "1  MiB", "1kib",
        "18446744073709551616", "16777216TiB", "99999999999GB", "1 0", "0x10", "1MiBs",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        uint64_t v = 12345;
        assert_int_equal(sl_parse_size(good[i].s, &v), 0);
        assert_true(v == good[i].v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 12345;
        if (sl_parse_size(bad[i], &v) != -EINVAL) {
            fail_msg("size '%s' should be rejected", bad[i]);
        }
        assert_true(v == 12345);
    }
}

static void test_durations(void **state)
{
    static const struct {
        const char *s;
        int64_t v;
    } good[] = {
        {"0", 0}, {"100", 100}, {"50ms", 50}, {"30s", 30000}, {"5m", 300000},
        {"12h", 43200000}, {"7d", 604800000}, {"2w", 1209600000}, {"1 s", 1000},
        {"9223372036854775807", INT64_MAX},
    };
    static const char *const bad[] = {
        "", "-5s", "5y", "s", "ms", "1.5s", "5 ", "9223372036854775808",
        "1000000000000000d", "30S", "1h30m", "10 msx",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t v = 12345;
        assert_int_equal(sl_parse_duration_ms(good[i].s, &v), 0);
        assert_true(v == good[i].v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 12345;
        if (sl_parse_duration_ms(bad[i], &v) != -EINVAL) {
            fail_msg("duration '%s' should be rejected", bad[i]);
        }
        assert_true(v == 12345);
    }
}

static const char full_yaml[] =
    "gateway:\n"
    "  data_dir: /var/lib/sluice\n"
    "  log_level: debug\n"
    "log:\n"
    "  backend: kafka\n"
    "  kafka: {bootstrap.servers: \"k1:9092,k2:9092\", acks: all, linger.ms: 5}\n"
    "  partitions: 6\n"
    "  auto_create: false\n"
    "  flush: interval\n"
    "  flush_interval: 250ms\n"
    "  segment_bytes: 128MiB\n"
    "  segment_age: 1d\n"
    "  retention_bytes: 10GB\n"
    "  retention: unlimited\n"
    "  index_interval_bytes: 8KiB\n"
    "  retention_check_interval: 30s\n"
    "topics:\n"
    "  orders: {partitions: 12, retention: 30d, compression: lz4}\n"
    "  audit.log:\n"
    "    flush: always\n"
    "    retention_bytes: -1\n"
    "    segment_bytes: 1GB\n"
    "  metrics:\n"
    "listeners:\n"
    "  http:\n"
    "    bind: 0.0.0.0:8081\n"
    "    max_body: 4MiB\n"
    "    web_root: /usr/share/sluice/web\n"
    "    max_wait: 1m\n"
    "    max_connections: 500\n"
    "  mqtt: {bind: \"[::1]:1884\"}\n"
    "  amqp:\n"
    "  stomp: {bind: broker.example.com:61614, enabled: false}\n"
    "  kafka: {enabled: yes}\n"
    "bridges:\n"
    "  legacy:\n"
    "    type: amqp\n"
    "    url: amqp://guest:guest@127.0.0.1:5672/%2f\n"
    "    consume: [orders, jobs]\n"
    "  edge:\n"
    "    type: mqtt\n"
    "    url: mqtts://edge.example.com:8883\n"
    "    client_id: gw-1\n"
    "    mqtt_version: 3.1.1\n"
    "    subscribe: [\"sensors/#\", \"alarms/+/high\"]\n"
    "  cluster:\n"
    "    type: kafka\n"
    "    properties: {bootstrap.servers: \"k9:9092\"}\n"
    "    consume: events\n"
    "routes:\n"
    "  - from: {bridge: legacy, match: \"orders\"}\n"
    "    to: {topic: orders, key: subject}\n"
    "  - from: {listener: mqtt, match: \"sensors/+/temp\", headers: {tenant: acme}}\n"
    "    to:\n"
    "      topics: [telemetry, audit.log]\n"
    "      key: \"header:device\"\n"
    "      set_headers: {source: mqtt, tier: \"1\"}\n"
    "  - from: {topic: orders, match: \"orders/eu/#\"}\n"
    "    to: {bridge: edge, destination: \"out/{topic}/{subject}\"}\n"
    "  - from: {topic: telemetry}\n"
    "    to: {listener: websocket}\n"
    "  - from: {listener: http}\n"
    "    to: {topic: misc, key: none}\n";

static void test_full(void **state)
{
    struct sl_config *cfg = parse_ok(full_yaml);
    assert_string_equal(cfg->data_dir, "/var/lib/sluice");
    assert_int_equal(cfg->log_level, SL_LL_DEBUG);
    assert_int_equal(cfg->backend, SL_BACKEND_KAFKA);
    assert_int_equal(cfg->n_kafka_properties, 3);
    assert_string_equal(cfg->kafka_properties[0].key, "bootstrap.servers");
    assert_string_equal(cfg->kafka_properties[0].value, "k1:9092,k2:9092");
    assert_int_equal(cfg->kafka_properties[0].line, 6);
    assert_string_equal(cfg->kafka_properties[2].key, "linger.ms");
    assert_string_equal(cfg->kafka_properties[2].value, "5");
    assert_false(cfg->auto_create);
    assert_int_equal(cfg->retention_check_ms, 30000);
    const struct sl_topic_config *d = &cfg->topic_defaults;
    assert_int_equal(d->partitions, 6);
    assert_int_equal(d->flush, SL_FLUSH_INTERVAL);
    assert_int_equal(d->flush_interval_ms, 250);
    assert_true(d->segment_bytes == 128ull << 20);
    assert_true(d->segment_ms == 86400000);
    assert_true(d->retention_bytes == 10000000000LL);
    assert_true(d->retention_ms == -1);
    assert_int_equal(d->index_interval_bytes, 8192);

    assert_int_equal(cfg->n_topics, 3);
    assert_string_equal(cfg->topics[0].name, "orders");
    assert_int_equal(cfg->topics[0].line, 18);
    assert_int_equal(cfg->topics[0].cfg.partitions, 12);
    assert_true(cfg->topics[0].cfg.retention_ms == 30LL * 86400000);
    assert_int_equal(cfg->topics[0].cfg.flush, SL_FLUSH_INTERVAL);   /* inherited */
    assert_int_equal(cfg->topics[0].cfg.compression, SL_RB_CODEC_LZ4);
    assert_int_equal(cfg->topics[1].cfg.compression, SL_RB_CODEC_NONE);
    assert_string_equal(cfg->topics[1].name, "audit.log");
    assert_int_equal(cfg->topics[1].cfg.flush, SL_FLUSH_ALWAYS);
    assert_true(cfg->topics[1].cfg.retention_bytes == -1);
    assert_true(cfg->topics[1].cfg.segment_bytes == 1000000000ull);
    assert_int_equal(cfg->topics[1].cfg.partitions, 6);
    assert_string_equal(cfg->topics[2].name, "metrics");
    assert_memory_equal(&cfg->topics[2].cfg, d, sizeof(*d));

    assert_true(cfg->http.present && cfg->http.enabled);
    assert_string_equal(cfg->http.host, "0.0.0.0");
    assert_int_equal(cfg->http.port, 8081);
    assert_int_equal(cfg->http.max_body, 4 << 20);
    assert_string_equal(cfg->http.web_root, "/usr/share/sluice/web");
    assert_int_equal(cfg->http.max_wait_ms, 60000);
    assert_int_equal(cfg->http.max_connections, 500);
    assert_int_equal(cfg->http.line, 25);
    assert_true(cfg->mqtt.present && cfg->mqtt.enabled);
    assert_string_equal(cfg->mqtt.host, "::1");
    assert_int_equal(cfg->mqtt.port, 1884);
    assert_true(cfg->amqp.present && cfg->amqp.enabled);
    assert_string_equal(cfg->amqp.host, "127.0.0.1");
    assert_int_equal(cfg->amqp.port, 5672);
    assert_true(cfg->stomp.present);
    assert_false(cfg->stomp.enabled);
    assert_string_equal(cfg->stomp.host, "broker.example.com");
    assert_int_equal(cfg->stomp.port, 61614);
    assert_true(cfg->kafka.present && cfg->kafka.enabled);
    assert_int_equal(cfg->kafka.port, 9092);

    assert_int_equal(cfg->n_bridges, 3);
    const struct sl_bridge_cfg *b = &cfg->bridges[0];
    assert_string_equal(b->name, "legacy");
    assert_int_equal(b->type, SL_BRIDGE_AMQP);
    assert_string_equal(b->url, "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_string_equal(b->client_id, "sluice-legacy");
    assert_int_equal(b->n_consume, 2);
    assert_string_equal(b->consume[1], "jobs");
    assert_int_equal(b->line, 36);
    b = &cfg->bridges[1];
    assert_int_equal(b->type, SL_BRIDGE_MQTT);
    assert_string_equal(b->client_id, "gw-1");
    assert_int_equal(b->mqtt_version, 3);
    assert_int_equal(b->n_subscribe, 2);
    assert_string_equal(b->subscribe[0], "sensors/#");
    b = &cfg->bridges[2];
    assert_int_equal(b->type, SL_BRIDGE_KAFKA);
    assert_int_equal(b->mqtt_version, 5);
    assert_int_equal(b->n_properties, 1);
    assert_string_equal(b->properties[0].value, "k9:9092");
    assert_int_equal(b->n_consume, 1);
    assert_string_equal(b->consume[0], "events");

    assert_int_equal(cfg->n_routes, 5);
    const struct sl_route_cfg *r = &cfg->routes[0];
    assert_int_equal(r->line, 51);
    assert_false(r->egress);
    assert_string_equal(r->from_bridge, "legacy");
    assert_null(r->from_listener);
    assert_string_equal(r->match, "orders");
    assert_int_equal(r->n_to_topics, 1);
    assert_string_equal(r->to_topics[0], "orders");
    assert_int_equal(r->key, SL_KEY_SUBJECT);
    r = &cfg->routes[1];
    assert_string_equal(r->from_listener, "mqtt");
    assert_string_equal(r->match, "sensors/+/temp");
    assert_int_equal(r->n_when_headers, 1);
    assert_string_equal(r->when_headers[0].key, "tenant");
    assert_string_equal(r->when_headers[0].value, "acme");
    assert_int_equal(r->n_to_topics, 2);
    assert_string_equal(r->to_topics[1], "audit.log");
    assert_int_equal(r->key, SL_KEY_HEADER);
    assert_string_equal(r->key_header, "device");
    assert_int_equal(r->n_set_headers, 2);
    assert_string_equal(r->set_headers[1].key, "tier");
    assert_string_equal(r->set_headers[1].value, "1");
    r = &cfg->routes[2];
    assert_true(r->egress);
    assert_string_equal(r->from_topic, "orders");
    assert_string_equal(r->match, "orders/eu/#");
    assert_string_equal(r->to_bridge, "edge");
    assert_string_equal(r->destination, "out/{topic}/{subject}");
    r = &cfg->routes[3];
    assert_true(r->egress);
    assert_string_equal(r->match, "#");
    assert_string_equal(r->to_listener, "websocket");
    assert_string_equal(r->destination, "{subject}");
    r = &cfg->routes[4];
    assert_int_equal(r->key, SL_KEY_NONE);
    sl_config_free(&cfg);
}

static void test_topic_inherits_log(void **state)
{
    /* topics comes before log in the file: overrides still start from log's values */
    struct sl_config *cfg = parse_ok("topics:\n"
                                     "  a: {partitions: 3}\n"
                                     "  b: ~\n"
                                     "log:\n"
                                     "  partitions: 4\n"
                                     "  flush: os\n"
                                     "  retention: 1h\n");
    assert_int_equal(cfg->n_topics, 2);
    assert_int_equal(cfg->topics[0].cfg.partitions, 3);
    assert_int_equal(cfg->topics[0].cfg.flush, SL_FLUSH_OS);
    assert_int_equal(cfg->topics[0].cfg.retention_ms, 3600000);
    assert_int_equal(cfg->topics[1].cfg.partitions, 4);
    assert_true(cfg->topics[1].cfg.segment_bytes == 1ull << 30);
    sl_config_free(&cfg);
}

static void test_error_texts(void **state)
{
    expect_only("log:\n  partitions: 2\n  flsh: always\n", "t.yaml:3: log.flsh: unknown key");
    expect_only("log:\n  partitions: abc\n",
                "t.yaml:2: log.partitions: 'abc' is not an integer from 1 to 100000");
    expect_only("log:\n  partitions: 0\n",
                "t.yaml:2: log.partitions: '0' is not an integer from 1 to 100000");
    expect_only("log:\n  flush: sometimes\n",
                "t.yaml:2: log.flush: 'sometimes' is not one of: always, interval, os");
    expect_only("log:\n  compression: snappy\n",
                "t.yaml:2: log.compression: 'snappy' is not one of: none, gzip, lz4, zstd");
    expect_only("log:\n  partitions: 2\ntopics:\n  t1:\n    compression: LZ4\n",
                "t.yaml:5: topics.t1.compression: 'LZ4' is not one of: none, gzip, lz4, zstd");
    expect_only("gateway:\n  log_level: loud\n",
                "t.yaml:2: gateway.log_level: 'loud' is not one of: error, warn, info, debug");
    expect_only("log:\n  auto_create: maybe\n",
                "t.yaml:2: log.auto_create: 'maybe' is not a boolean (true or false)");
    expect_only("log:\n  partitions: 2\n  partitions: 3\n",
                "t.yaml:3: log.partitions: duplicate key (first at line 2)");
    expect_only("log: 5\n", "t.yaml:1: log: expected a mapping, not a value");
    expect_only("log: [a, b]\n", "t.yaml:1: log: expected a mapping, not a list");
    expect_only("log:\n  partitions: [1]\n",
                "t.yaml:2: log.partitions: expected a single value, not a list");
    expect_only("log:\n  partitions:\n", "t.yaml:2: log.partitions: missing value");
    expect_only("- a\n- b\n", "t.yaml:1: expected a mapping, not a list");
    expect_only("log:\n  segment_bytes: 12 parsecs\n",
                "t.yaml:2: log.segment_bytes: '12 parsecs' is not a size "
                "(like 4096, 64KiB, 128MiB, 1GB)");
    expect_only("log:\n  retention_bytes: lots\n",
                "t.yaml:2: log.retention_bytes: 'lots' is not a size "
                "(like 4096, 64KiB, 128MiB, 1GB) or -1 / unlimited");
    expect_only("log:\n  index_interval_bytes: 8GiB\n",
                "t.yaml:2: log.index_interval_bytes: '8GiB' is out of range "
                "(1 to 4294967295 bytes)");
    expect_only("log:\n  preallocate: 16MiB\n",
                "t.yaml:2: log.preallocate: '16MiB' is out of range "
                "(0 to 8388608 bytes)");
    expect_only("log:\n  segment_age: -1\n",
                "t.yaml:2: log.segment_age: '-1' is not a duration (like 50ms, 30s, 5m, 12h, "
                "7d, 2w; a bare number is milliseconds)");
    expect_only("log:\n  flush_interval: 0\n",
                "t.yaml:2: log.flush_interval: '0' is out of range (at least 1 ms)");
    expect_only("topics:\n  bad/name: {}\n",
                "t.yaml:2: topics.bad/name: invalid topic name (1 to 249 characters of "
                "a-z A-Z 0-9 . _ -, not '.' or '..')");
    expect_only("topics:\n  '..': {}\n", "t.yaml:2: topics...: invalid topic name (1 to 249 "
                "characters of a-z A-Z 0-9 . _ -, not '.' or '..')");
    expect_only("listeners:\n  http: {bind: localhost}\n",
                "t.yaml:2: listeners.http.bind: 'localhost': expected HOST:PORT "
                "(for IPv6: [ADDRESS]:PORT)");
    expect_only("listeners:\n  mqtt: {bind: \"127.0.0.1:99999\"}\n",
                "t.yaml:2: listeners.mqtt.bind: '127.0.0.1:99999': port must be a number "
                "from 0 to 65535");
    expect_only("listeners:\n  mqtt: {bind: \"::1:1883\"}\n",
                "t.yaml:2: listeners.mqtt.bind: '::1:1883': IPv6 addresses go in brackets: "
                "[ADDRESS]:PORT");
    expect_only("listeners:\n  mqtt: {bind: \"300.1.1.1:1883\"}\n",
                "t.yaml:2: listeners.mqtt.bind: '300.1.1.1:1883': not an IPv4 address");
    expect_only("listeners:\n  amqp: {bind: \"127.0.0.1:8080\"}\n",
                "t.yaml:2: listeners.amqp.bind: 127.0.0.1:8080 is also used by "
                "listeners.http");
    expect_only("listeners:\n  websocket: {}\n", "t.yaml:2: listeners.websocket: unknown key");
    expect_only("log: &x {partitions: 2}\ngateway: *x\n",
                "t.yaml:2: gateway: aliases (*x) are not supported");
    expect_only("log:\n  backend: kafka\n",
                "t.yaml:2: log.kafka: backend kafka needs bootstrap.servers");
    expect_has("a: &x {b: 1}\nlog: *x\n", "t.yaml:1: a: unknown key");
    /* YAML syntax errors carry libyaml's line */
    expect_has("log:\n  partitions: 1\n bad indent: [\n", "t.yaml:3: YAML syntax error: ");
    expect_has("log: {partitions: 1\n", "t.yaml:2: YAML syntax error: ");
    expect_only("log: {}\n---\nlog: {}\n", "t.yaml:2: only one YAML document is allowed");
    expect_has("log:\n  \"a\\0b\": 1\n", "t.yaml:2: a NUL character in a value is not allowed");
}

static void test_multiple_errors(void **state)
{
    char *errors = parse_bad("gateway:\n"
                             "  log_level: loud\n"
                             "  colour: blue\n"
                             "log:\n"
                             "  partitions: -2\n"
                             "  flush: sometimes\n"
                             "routes:\n"
                             "  - from: {bridge: nowhere}\n"
                             "    to: {topic: x}\n"
                             "extra: 1\n");
    assert_int_equal(count_lines(errors), 6);
    const char *want[] = {
        "t.yaml:2: gateway.log_level: ", "t.yaml:3: gateway.colour: unknown key",
        "t.yaml:5: log.partitions: ", "t.yaml:6: log.flush: ",
        "t.yaml:8: routes[0].from.bridge: no bridge named 'nowhere' in bridges",
        "t.yaml:10: extra: unknown key",
    };
    const char *p = errors;
    for (size_t i = 0; i < 6; i++) {         /* in line order */
        const char *q = strstr(p, want[i]);
        if (!q) {
            fail_msg("missing or out of order: %s\nin:\n%s", want[i], errors);
        }
        p = q + 1;
    }
    free(errors);
}

static void test_unknown_keys_everywhere(void **state)
{
    char *errors = parse_bad("top: 1\n"                                   /* 1 */
                             "gateway: {g: 1}\n"                          /* 2 */
                             "log: {l: 1}\n"                              /* 3 */
                             "topics:\n  t: {x: 1}\n"                     /* 5 */
                             "listeners:\n  http: {y: 1}\n  ftp: {}\n"    /* 7, 8 */
                             "bridges:\n  b: {type: kafka, z: 1}\n"       /* 10 */
                             "routes:\n"
                             "  - from: {listener: http, f: 1}\n"         /* 12 */
                             "    to: {topic: t, q: 1}\n"                 /* 13 */
                             "    w: 1\n");                               /* 14 */
    static const char *const want[] = {
        "t.yaml:1: top: unknown key\n", "t.yaml:2: gateway.g: unknown key\n",
        "t.yaml:3: log.l: unknown key\n", "t.yaml:5: topics.t.x: unknown key\n",
        "t.yaml:7: listeners.http.y: unknown key\n", "t.yaml:8: listeners.ftp: unknown key\n",
        "t.yaml:10: bridges.b.z: unknown key\n", "t.yaml:12: routes[0].from.f: unknown key\n",
        "t.yaml:13: routes[0].to.q: unknown key\n", "t.yaml:14: routes[0].w: unknown key\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(errors, want[i])) {
            fail_msg("missing: %sin:\n%s", want[i], errors);
        }
    }
    assert_int_equal(count_lines(errors), sizeof(want) / sizeof(want[0]));
    free(errors);
}

static void test_bridge_errors(void **state)
{
    expect_only("bridges:\n  b:\n    url: amqp://h/\n",
                "t.yaml:2: bridges.b.type: required key is missing");
    expect_only("bridges:\n  b: {type: amqp}\n",
                "t.yaml:2: bridges.b.url: required for amqp bridges");
    expect_only("bridges:\n  b: {type: amqp, url: \"http://x\"}\n",
                "t.yaml:2: bridges.b.url: 'http://x' must start with amqp:// or amqps://");
    expect_only("bridges:\n  b: {type: mqtt, url: \"amqp://x\"}\n",
                "t.yaml:2: bridges.b.url: 'amqp://x' must start with mqtt://, mqtts://, "
                "tcp://, ssl://, ws:// or wss://");
    expect_only("bridges:\n  b:\n    type: kafka\n    url: mqtt://x\n",
                "t.yaml:4: bridges.b.url: not used by kafka bridges");
    expect_only("bridges:\n  b: {type: mqtt, url: \"tcp://h:1883\", mqtt_version: 4}\n",
                "t.yaml:2: bridges.b.mqtt_version: '4' is not one of: 3, 3.1.1, 5");
    expect_only("bridges:\n  b:\n    type: mqtt\n    url: \"ws://h\"\n"
                "    subscribe: [\"a/#\", \"a/#/b\"]\n",
                "t.yaml:5: bridges.b.subscribe[1]: 'a/#/b': '#' must be a whole level and the "
                "last one");
    expect_only("bridges:\n  b: {type: rabbit}\n",
                "t.yaml:2: bridges.b.type: 'rabbit' is not one of: amqp, mqtt, kafka");
    expect_only("bridges:\n  b:\n", "t.yaml:2: bridges.b: expected a mapping with at least type");
}

static void test_route_errors(void **state)
{
    const char *b = "bridges:\n  edge: {type: mqtt, url: \"mqtt://h\"}\nroutes:\n";
    char buf[1024];
#define ROUTE(text) (snprintf(buf, sizeof(buf), "%s%s", b, text), buf)
    expect_only(ROUTE("  - from: {listener: mqtt}\n    to: {topic: a, key: random}\n"),
                "t.yaml:5: routes[0].to.key: 'random' is not one of: subject, none, "
                "header:NAME");
    expect_only(ROUTE("  - from: {listener: mqtt}\n    to: {topic: a, key: \"header:\"}\n"),
                "t.yaml:5: routes[0].to.key: 'header:' is not one of: subject, none, "
                "header:NAME");
    expect_only(ROUTE("  - from: {listener: pigeon}\n    to: {topic: a}\n"),
                "t.yaml:4: routes[0].from.listener: 'pigeon' is not one of: http, mqtt, amqp, "
                "stomp, kafka, websocket");
    expect_only(ROUTE("  - from: {bridge: edgy}\n    to: {topic: a}\n"),
                "t.yaml:4: routes[0].from.bridge: no bridge named 'edgy' in bridges");
    expect_only(ROUTE("  - from: {topic: a}\n    to: {bridge: nope}\n"),
                "t.yaml:5: routes[0].to.bridge: no bridge named 'nope' in bridges");
    expect_only(ROUTE("  - to: {topic: a}\n"), "t.yaml:4: routes[0].from: required key is "
                "missing");
    expect_only(ROUTE("  - from: {listener: mqtt}\n"),
                "t.yaml:4: routes[0].to: required key is missing");
    expect_only(ROUTE("  - from: {match: \"a\"}\n    to: {topic: a}\n"),
                "t.yaml:4: routes[0].from: needs one of listener, bridge (ingress) or topic "
                "(egress)");
    expect_only(ROUTE("  - from: {listener: mqtt, topic: a}\n    to: {topic: a}\n"),
                "t.yaml:4: routes[0].from: give only one of listener, bridge or topic");
    expect_only(ROUTE("  - from: {listener: mqtt}\n    to: {key: none}\n"),
                "t.yaml:5: routes[0].to: an ingress route needs topic or topics");
    expect_only(ROUTE("  - from: {listener: mqtt}\n    to: {topic: a, topics: [b]}\n"),
                "t.yaml:5: routes[0].to.topics: give topic or topics, not both");
    expect_only(ROUTE("  - from: {listener: mqtt}\n    to:\n      topic: a\n"
                      "      destination: x\n"),
                "t.yaml:7: routes[0].to.destination: not allowed in an ingress route "
                "(from.listener or from.bridge)");
    expect_only(ROUTE("  - from: {topic: a}\n    to:\n      bridge: edge\n      key: none\n"),
                "t.yaml:7: routes[0].to.key: not allowed in an egress route (from.topic)");
    expect_only(ROUTE("  - from: {topic: a}\n    to: {topic: b}\n"),
                "t.yaml:5: routes[0].to.topic: not allowed in an egress route (from.topic)\n"
                "t.yaml:5: routes[0].to: an egress route needs bridge or listener");
    expect_only(ROUTE("  - from: {topic: a}\n    to: {bridge: edge, listener: mqtt}\n"),
                "t.yaml:5: routes[0].to: give only one of bridge or listener");
    expect_only(ROUTE("  - from: {listener: mqtt, match: \"a/b+/c\"}\n    to: {topic: a}\n"),
                "t.yaml:4: routes[0].from.match: 'a/b+/c': '+' and '*' must be a whole level");
    expect_only(ROUTE("  - from: {listener: mqtt, match: \"a/#/c\"}\n    to: {topic: a}\n"),
                "t.yaml:4: routes[0].from.match: 'a/#/c': '#' must be a whole level and the "
                "last one");
    expect_only(ROUTE("  - from: {listener: mqtt}\n    to: {topic: \"a b\"}\n"),
                "t.yaml:5: routes[0].to.topic: 'a b': invalid topic name (1 to 249 characters "
                "of a-z A-Z 0-9 . _ -, not '.' or '..')");
    expect_only(ROUTE("  - from: {topic: a}\n    to: {bridge: edge, destination: \"x/{subj}\"}\n"),
                "t.yaml:5: routes[0].to.destination: 'x/{subj}': unknown placeholder "
                "(use {subject} or {topic})");
    expect_only(ROUTE("  - just a string\n"),
                "t.yaml:4: routes[0]: expected a mapping, not a value");
    expect_only("routes: {from: x}\n", "t.yaml:1: routes: expected a list of routes, not a "
                "mapping");
    /* the second route is wrong: index and line name it */
    expect_only(ROUTE("  - from: {listener: mqtt}\n    to: {topic: a}\n"
                      "  - from: {listener: mqtt}\n    to: {topic: a, key: \"hdr:x\"}\n"),
                "t.yaml:7: routes[1].to.key: 'hdr:x' is not one of: subject, none, header:NAME");
#undef ROUTE
}

static void test_patterns_accepted(void **state)
{
    struct sl_config *cfg = parse_ok("routes:\n"
                                     "  - from: {listener: amqp, match: \"*/eu/#\"}\n"
                                     "    to: {topic: a}\n"
                                     "  - from: {listener: mqtt, match: \"#\"}\n"
                                     "    to: {topic: a}\n"
                                     "  - from: {listener: mqtt, match: \"+/+\"}\n"
                                     "    to: {topic: a}\n");
    assert_int_equal(cfg->n_routes, 3);
    assert_string_equal(cfg->routes[0].match, "*/eu/#");
    sl_config_free(&cfg);
}

static void test_depth_and_junk(void **state)
{
    char deep[400];
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        deep[n++] = '[';
    }
    for (int i = 0; i < 100; i++) {
        deep[n++] = ']';
    }
    deep[n++] = '\n';
    deep[n] = '\0';
    expect_has(deep, "t.yaml:1: nesting deeper than 64 levels");
    char *errors = NULL;
    static const char junk[] = "\x00\xff\xfe{[:::\x01";
    assert_null(sl_config_parse("j", junk, sizeof(junk) - 1, &errors));
    assert_non_null(errors);
    assert_true(strncmp(errors, "j:", 2) == 0);
    free(errors);
    /* NULL errors pointer is allowed */
    assert_null(sl_config_parse("j", "log: 1\n", 7, NULL));
}

static char *root_path(const char *rel)
{
    const char *root = getenv("SLUICE_ROOT");
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", root && *root ? root : ".", rel) > 0);
    return p;
}

static void load_clean(const char *rel)
{
    char *path = root_path(rel);
    char *errors = NULL;
    struct sl_config *cfg = sl_config_load(path, &errors);
    if (!cfg) {
        fprintf(stderr, "%s", errors ? errors : "(no errors)\n");
    }
    assert_non_null(cfg);
    assert_null(errors);
    assert_string_equal(cfg->path, path);
    sl_config_free(&cfg);
    free(path);
}

static void test_shipped_files(void **state)
{
    load_clean("conf/sluice.yaml");
    char *path = root_path("conf/sluice.yaml");
    struct sl_config *cfg = sl_config_load(path, NULL);
    assert_non_null(cfg);
    /* the shipped file needs no external service */
    assert_int_equal(cfg->backend, SL_BACKEND_EMBEDDED);
    assert_string_equal(cfg->data_dir, "./data");
    assert_true(cfg->http.present && cfg->http.enabled);
    assert_string_equal(cfg->http.host, "127.0.0.1");
    assert_int_equal(cfg->http.port, 8080);
    assert_false(cfg->mqtt.present || cfg->amqp.present || cfg->stomp.present ||
                 cfg->kafka.present);
    assert_int_equal(cfg->n_bridges, 0);
    sl_config_free(&cfg);
    free(path);

    load_clean("conf/examples/routes.yaml");
    path = root_path("conf/examples/routes.yaml");
    cfg = sl_config_load(path, NULL);
    assert_non_null(cfg);
    assert_true(cfg->n_topics > 0);
    assert_true(cfg->n_bridges > 0);
    assert_true(cfg->n_routes > 0);
    sl_config_free(&cfg);
    free(path);
}

static void test_load_file(void **state)
{
    char dir[64];
    assert_non_null(fx_tmpdir(dir, "/tmp/test_config."));
    char path[256];
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# comment\nlog:\n  flush: never\n", f);
    fclose(f);
    char *errors = NULL;
    assert_null(sl_config_load(path, &errors));
    char want[512];
    snprintf(want, sizeof(want), "%s:3: log.flush: 'never' is not one of: always, interval, "
             "os\n", path);
    assert_non_null(errors);
    assert_string_equal(errors, want);
    free(errors);
    assert_int_equal(unlink(path), 0);

    snprintf(path, sizeof(path), "%s/missing.yaml", dir);
    errors = NULL;
    assert_null(sl_config_load(path, &errors));
    assert_non_null(errors);
    assert_non_null(strstr(errors, "missing.yaml:0: cannot open: No such file"));
    free(errors);
    assert_int_equal(rmdir(dir), 0);
}

static void test_help(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    sl_config_print_help(f);
    fclose(f);
    static const char *const want[] = {
        "gateway.data_dir", "log.flush", "enum (always, interval, os)", "log.segment_bytes",
        "topics.<topic>.partitions", "listeners.http.max_body", "listeners.kafka.bind",
        "bridges.<name>.type", "routes[].from.match", "routes[].to.key", "default: 1GiB",
        "log.retention_bytes", "or -1 (unlimited)",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(buf, want[i])) {
            fail_msg("help lacks '%s'", want[i]);
        }
    }
    /* the mqtt listener's reloadable keys are marked so, its bind is not */
    static const char *const mqtt_reload[] = {
        "users", "allow_anonymous", "max_packet_size", "receive_maximum", "max_inflight",
        "topic_alias_maximum", "max_subscriptions", "max_session_expiry", "max_keepalive",
        "high_water", "max_connections",
    };
    for (size_t i = 0; i < sizeof(mqtt_reload) / sizeof(mqtt_reload[0]); i++) {
        char key[80];
        snprintf(key, sizeof(key), "  listeners.mqtt.%s ", mqtt_reload[i]);
        const char *at = strstr(buf, key), *eol = at ? strchr(at, '\n') : NULL;
        if (!at || !eol || !memmem(at, (size_t)(eol - at), "; reloadable", 12)) {
            fail_msg("help does not mark listeners.mqtt.%s reloadable", mqtt_reload[i]);
        }
    }
    {
        const char *at = strstr(buf, "  listeners.mqtt.bind "), *eol = at ? strchr(at, '\n') : NULL;
        assert_non_null(eol);
        assert_null(memmem(at, (size_t)(eol - at), "reloadable", 10));
        at = strstr(buf, "  listeners.http.max_connections ");
        eol = at ? strchr(at, '\n') : NULL;
        assert_non_null(eol);
        assert_null(memmem(at, (size_t)(eol - at), "reloadable", 10));
    }
    /* conf/sluice.yaml documents every option the tables know ("  NAME:" somewhere) */
    char *path = root_path("conf/sluice.yaml");
    f = fopen(path, "r");
    assert_non_null(f);
    char yaml[16384];
    size_t n = fread(yaml, 1, sizeof(yaml) - 1, f);
    fclose(f);
    free(path);
    yaml[n] = '\0';
    size_t checked = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "  ", 2) != 0 || line[2] == ' ') {
            continue;                     /* option lines start with exactly 2 spaces */
        }
        char name[128], key[140];
        assert_int_equal(sscanf(line + 2, "%127s", name), 1);
        const char *last = strrchr(name, '.');
        snprintf(key, sizeof(key), " %s:", last ? last + 1 : name);
        if (!strstr(yaml, key)) {
            fail_msg("conf/sluice.yaml does not mention option %s", name);
        }
        checked++;
    }
    assert_true(checked > 40);
    free(buf);
}

static void test_restart_changes(void **state)
{
    struct sl_config *a = parse_ok(full_yaml);
    struct sl_config *b = parse_ok(full_yaml);
    char buf[256];
    assert_int_equal(sl_config_restart_changes(a, b, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    sl_config_free(&b);
    /* routes, topics, log level and topic defaults reload; the rest needs a restart */
    char *text = strdup(full_yaml);
    assert_non_null(text);
    char *p = strstr(text, "log_level: debug");
    memcpy(p, "log_level: error", 16);
    p = strstr(text, "partitions: 12");
    memcpy(p, "partitions: 13", 14);
    p = strstr(text, "retention: 30d, compression: lz4");
    memcpy(p, "retention: 3d, compression: zstd", 32);
    p = strstr(text, "out/{topic}");
    memcpy(p, "own/{topic}", 11);
    b = parse_ok(text);
    assert_string_equal(b->routes[2].destination, "own/{topic}/{subject}");
    assert_int_equal(b->topics[0].cfg.partitions, 13);
    assert_int_equal(b->topics[0].cfg.compression, SL_RB_CODEC_ZSTD);
    assert_int_equal(sl_config_restart_changes(a, b, buf, sizeof(buf)), 0);
    sl_config_free(&b);
    p = strstr(text, "data_dir: /var/lib/sluice");
    memcpy(p, "data_dir: /var/lib/sluicX", 25);
    p = strstr(text, "bind: 0.0.0.0:8081");
    memcpy(p, "bind: 0.0.0.0:8082", 18);
    p = strstr(text, "client_id: gw-1");
    memcpy(p, "client_id: gw-2", 15);
    b = parse_ok(text);
    assert_int_equal(sl_config_restart_changes(a, b, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "gateway.data_dir, listeners.http.bind, bridges");
    assert_int_equal(sl_config_restart_changes(a, b, buf, 10), 3);   /* truncated */
    assert_string_equal(buf, "gateway.d");
    assert_int_equal(sl_config_restart_changes(a, b, NULL, 0), 3);
    sl_config_free(&b);
    free(text);
    sl_config_free(&a);
}

/* A valid hash: hashlib.pbkdf2_hmac("sha256", b"s3cret", b"saltsaltsaltsalt", 1000) */
#define HASH1 "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$" \
              "8W5yLmqTx7pmJ5+3qp/ZOQP9vTuo+lMNfP/lMdTb9u8="

static const char mqtt_a[] =
    "listeners:\n"
    "  mqtt:\n"
    "    bind: 127.0.0.1:1883\n"
    "    max_packet_size: 1MiB\n"
    "    allow_anonymous: true\n"
    "    users:\n"
    "      a: \"" HASH1 "\"\n";

/* The mqtt listener's users, allow_anonymous and per-client limits reload; its bind and
 * enabled, a listener added or removed, and the http listener's keys do not. */
static void test_restart_changes_mqtt(void **state)
{
    struct sl_config *a = parse_ok(mqtt_a), *b;
    char buf[512];
    (void)state;
    b = parse_ok("listeners:\n"
                 "  mqtt:\n"
                 "    bind: 127.0.0.1:1883\n"
                 "    max_packet_size: 2MiB\n"
                 "    receive_maximum: 10\n"
                 "    max_inflight: 20\n"
                 "    topic_alias_maximum: 0\n"
                 "    max_subscriptions: 5\n"
                 "    max_session_expiry: 1h\n"
                 "    max_keepalive: 60s\n"
                 "    high_water: 64KiB\n"
                 "    max_connections: 3\n"
                 "    allow_anonymous: false\n"
                 "    users:\n"
                 "      a: \"pbkdf2-sha256$1000$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA==\"\n"
                 "      b: \"" HASH1 "\"\n");
    assert_int_equal(sl_config_restart_changes(a, b, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    sl_config_free(&b);
    b = parse_ok("listeners:\n"
                 "  mqtt:\n"
                 "    bind: 127.0.0.1:1884\n"
                 "    enabled: false\n"
                 "    users:\n"
                 "      a: \"" HASH1 "\"\n"
                 "  http:\n"
                 "    max_connections: 7\n"
                 "  stomp:\n");
    assert_int_equal(sl_config_restart_changes(a, b, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "listeners.http.max_connections, listeners.mqtt.bind, "
                             "listeners.mqtt.enabled, listeners.stomp");
    sl_config_free(&b);
    b = parse_ok("gateway: {log_level: warn}\n");   /* mqtt removed */
    assert_int_equal(sl_config_restart_changes(a, b, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "listeners.mqtt");
    sl_config_free(&b);
    sl_config_free(&a);
}

/* A users entry whose hash mqtt_password_ok could never use fails the load (so a reload
 * with one keeps the running config), without echoing the value. */
static void test_mqtt_users_checked(void **state)
{
    static const struct {
        const char *hash, *why;
    } bad[] = {
        {"plain", "the hash must look like pbkdf2-sha256$ITERATIONS$SALT_BASE64$HASH_BASE64"},
        {"pbkdf2-sha256$x$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA==", "the hash must look like"},
        {"pbkdf2-sha256$0$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA==", "the iteration count"},
        {"pbkdf2-sha256$99999999$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA==", "the iteration count"},
        {"pbkdf2-sha256$1000$c2FsdA==", "the hash must look like"},
        {"pbkdf2-sha256$1000$c2F*dA==$AAAAAAAAAAAAAAAAAAAAAA==", "the salt"},
        {"pbkdf2-sha256$1000$$AAAAAAAAAAAAAAAAAAAAAA==", "the salt"},
        {"pbkdf2-sha256$1000$c2FsdA==$AAAA", "the hash is not"},
        {"pbkdf2-sha256$1000$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAA=A", "the hash is not"},
    };
    char text[512], want[256];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "listeners:\n  mqtt:\n    users:\n      ok: \"%s\"\n"
                 "      dev: \"%s\"\n", HASH1, bad[i].hash);
        char *errors = parse_bad(text);
        snprintf(want, sizeof(want), "t.yaml:5: listeners.mqtt.users.dev: %s", bad[i].why);
        if (strncmp(errors, want, strlen(want)) != 0 || count_lines(errors) != 1 ||
            (strlen(bad[i].hash) > 8 && strstr(errors, bad[i].hash + 8))) {
            fail_msg("hash '%s': got '%s', want '%s...'", bad[i].hash, errors, want);
        }
        free(errors);
    }
    struct sl_config *cfg = parse_ok(mqtt_a);
    assert_int_equal(cfg->mqtt.n_mqtt_users, 1);
    assert_string_equal(cfg->mqtt.mqtt_users[0].value, HASH1);
    sl_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_topic_inherits_log),
        cmocka_unit_test(test_error_texts),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_unknown_keys_everywhere),
        cmocka_unit_test(test_bridge_errors),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_patterns_accepted),
        cmocka_unit_test(test_depth_and_junk),
        cmocka_unit_test(test_shipped_files),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_restart_changes),
        cmocka_unit_test(test_restart_changes_mqtt),
        cmocka_unit_test(test_mqtt_users_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

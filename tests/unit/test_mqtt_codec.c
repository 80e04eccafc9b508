/* Unit tests for the MQTT 3.1.1 / 5.0 packet codec (adapters/mqtt/mqtt_codec.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/mqtt/mqtt_codec.h"

/* ---- helpers ---- */

/* Hex string (spaces allowed) to bytes; returns the length. */
static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (*s != '\0') {
        if (*s == ' ') {
            s++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

#define S(lit) ((struct mqtt_str){(lit), sizeof(lit) - 1})
#define BIN(lit) ((struct mqtt_bin){(const uint8_t *)(lit), sizeof(lit) - 1})

static bool str_is(struct mqtt_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static const uint64_t LIST_BITS = (1ull << MQTT_PROP_USER) | (1ull << MQTT_PROP_SUBSCRIPTION_ID);

static void assert_props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    assert_int_equal(a->present & ~LIST_BITS, b->present & ~LIST_BITS);
#define SCALAR(id, f)                        \
    if (mqtt_prop_has(a, id)) {              \
        assert_int_equal(a->f, b->f);        \
    }
#define STR(id, f)                           \
    if (mqtt_prop_has(a, id)) {              \
        assert_true(str_eq(a->f, b->f));     \
    }
#define BINF(id, f)                          \
    if (mqtt_prop_has(a, id)) {              \
        assert_true(bin_eq(a->f, b->f));     \
    }
    SCALAR(MQTT_PROP_PAYLOAD_FORMAT, payload_format);
    SCALAR(MQTT_PROP_MESSAGE_EXPIRY, message_expiry);
    STR(MQTT_PROP_CONTENT_TYPE, content_type);
    STR(MQTT_PROP_RESPONSE_TOPIC, response_topic);
    BINF(MQTT_PROP_CORRELATION_DATA, correlation_data);
    SCALAR(MQTT_PROP_SESSION_EXPIRY, session_expiry);
    STR(MQTT_PROP_ASSIGNED_CLIENT_ID, assigned_client_id);
    SCALAR(MQTT_PROP_SERVER_KEEP_ALIVE, server_keep_alive);
    STR(MQTT_PROP_AUTH_METHOD, auth_method);
    BINF(MQTT_PROP_AUTH_DATA, auth_data);
    SCALAR(MQTT_PROP_REQUEST_PROBLEM_INFO, request_problem_info);
    SCALAR(MQTT_PROP_WILL_DELAY, will_delay);
    SCALAR(MQTT_PROP_REQUEST_RESPONSE_INFO, request_response_info);
    STR(MQTT_PROP_RESPONSE_INFO, response_info);
    STR(MQTT_PROP_SERVER_REFERENCE, server_reference);
    STR(MQTT_PROP_REASON_STRING, reason_string);
    SCALAR(MQTT_PROP_RECEIVE_MAX, receive_max);
    SCALAR(MQTT_PROP_TOPIC_ALIAS_MAX, topic_alias_max);
    SCALAR(MQTT_PROP_TOPIC_ALIAS, topic_alias);
    SCALAR(MQTT_PROP_MAX_QOS, max_qos);
    SCALAR(MQTT_PROP_RETAIN_AVAILABLE, retain_available);
    SCALAR(MQTT_PROP_MAX_PACKET_SIZE, max_packet_size);
    SCALAR(MQTT_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available);
    SCALAR(MQTT_PROP_SUB_ID_AVAILABLE, sub_id_available);
    SCALAR(MQTT_PROP_SHARED_SUB_AVAILABLE, shared_sub_available);
#undef SCALAR
#undef STR
#undef BINF
    struct mqtt_iter ia = {0};
    struct mqtt_iter ib = {0};
    struct mqtt_user_prop ua;
    struct mqtt_user_prop ub;
    size_t n = 0;
    while (mqtt_user_prop_next(&a->user, &ia, &ua)) {
        assert_true(mqtt_user_prop_next(&b->user, &ib, &ub));
        assert_true(str_eq(ua.name, ub.name));
        assert_true(str_eq(ua.value, ub.value));
        n++;
    }
    assert_false(mqtt_user_prop_next(&b->user, &ib, &ub));
    assert_int_equal(n, a->user.count);
    assert_int_equal(a->user.count, b->user.count);
    struct mqtt_iter sa = {0};
    struct mqtt_iter sb = {0};
    uint32_t xa;
    uint32_t xb;
    while (mqtt_sub_id_next(&a->sub_ids, &sa, &xa)) {
        assert_true(mqtt_sub_id_next(&b->sub_ids, &sb, &xb));
        assert_int_equal(xa, xb);
    }
    assert_false(mqtt_sub_id_next(&b->sub_ids, &sb, &xb));
    assert_int_equal(a->sub_ids.count, b->sub_ids.count);
}

static void assert_packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b,
                             enum mqtt_version v)
{
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *x = &a->u.connect;
        const struct mqtt_connect *y = &b->u.connect;
        assert_int_equal(x->clean_start, y->clean_start);
        assert_int_equal(x->keep_alive, y->keep_alive);
        assert_true(str_eq(x->client_id, y->client_id));
        assert_int_equal(x->will, y->will);
        if (x->will) {
            assert_int_equal(x->will_qos, y->will_qos);
            assert_int_equal(x->will_retain, y->will_retain);
            assert_true(str_eq(x->will_topic, y->will_topic));
            assert_true(bin_eq(x->will_payload, y->will_payload));
            if (v == MQTT_V5) {
                assert_props_eq(&x->will_props, &y->will_props);
            }
        }
        assert_int_equal(x->has_username, y->has_username);
        assert_int_equal(x->has_password, y->has_password);
        assert_true(str_eq(x->username, y->username));
        assert_true(bin_eq(x->password, y->password));
        if (v == MQTT_V5) {
            assert_props_eq(&x->props, &y->props);
        }
        break;
    }
    case MQTT_CONNACK:
        assert_int_equal(a->u.connack.session_present, b->u.connack.session_present);
        assert_int_equal(a->u.connack.reason, b->u.connack.reason);
        if (v == MQTT_V5) {
            assert_props_eq(&a->u.connack.props, &b->u.connack.props);
        }
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish;
        const struct mqtt_publish *y = &b->u.publish;
        assert_int_equal(x->dup, y->dup);
        assert_int_equal(x->qos, y->qos);
        assert_int_equal(x->retain, y->retain);
        assert_true(str_eq(x->topic, y->topic));
        if (x->qos > 0) {
            assert_int_equal(x->packet_id, y->packet_id);
        }
        assert_true(bin_eq(x->payload, y->payload));
        if (v == MQTT_V5) {
            assert_props_eq(&x->props, &y->props);
        }
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        assert_int_equal(a->u.ack.packet_id, b->u.ack.packet_id);
        if (v == MQTT_V5) {
            assert_int_equal(a->u.ack.reason, b->u.ack.reason);
            assert_props_eq(&a->u.ack.props, &b->u.ack.props);
        }
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        bool opts = a->type == MQTT_SUBSCRIBE;
        assert_int_equal(a->u.subscribe.packet_id, b->u.subscribe.packet_id);
        if (v == MQTT_V5) {
            assert_props_eq(&a->u.subscribe.props, &b->u.subscribe.props);
        }
        struct mqtt_iter ia = {0};
        struct mqtt_iter ib = {0};
        struct mqtt_subscription sa;
        struct mqtt_subscription sb;
        while (mqtt_sub_next(&a->u.subscribe.subs, opts, &ia, &sa)) {
            assert_true(mqtt_sub_next(&b->u.subscribe.subs, opts, &ib, &sb));
            assert_true(str_eq(sa.filter, sb.filter));
            if (opts) {
                assert_int_equal(sa.qos, sb.qos);
                if (v == MQTT_V5) {
                    assert_int_equal(sa.no_local, sb.no_local);
                    assert_int_equal(sa.retain_as_published, sb.retain_as_published);
                    assert_int_equal(sa.retain_handling, sb.retain_handling);
                }
            }
        }
        assert_false(mqtt_sub_next(&b->u.subscribe.subs, opts, &ib, &sb));
        assert_int_equal(a->u.subscribe.subs.count, b->u.subscribe.subs.count);
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        assert_int_equal(a->u.suback.packet_id, b->u.suback.packet_id);
        if (v == MQTT_V5 || a->type == MQTT_SUBACK) {
            assert_true(bin_eq(a->u.suback.reasons, b->u.suback.reasons));
        }
        if (v == MQTT_V5) {
            assert_props_eq(&a->u.suback.props, &b->u.suback.props);
        }
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (v == MQTT_V5) {
            assert_int_equal(a->u.disconnect.reason, b->u.disconnect.reason);
            assert_props_eq(&a->u.disconnect.props, &b->u.disconnect.props);
        }
        break;
    default:
        break;
    }
}

/* Encode p, check the size function agrees, decode, compare; returns the length. */
static size_t round_trip(const struct mqtt_packet *p, enum mqtt_version v, uint8_t *buf,
                         size_t cap)
{
    size_t need = mqtt_encoded_size(p, v);
    assert_true(need > 0);
    int n = mqtt_encode(p, v, buf, cap);
    assert_int_equal(n, (int)need);
    if (need > 2) {
        assert_int_equal(mqtt_encode(p, v, buf, need - 1), -ENOSPC);
        n = mqtt_encode(p, v, buf, cap);
    }
    size_t plen = 0;
    assert_int_equal(mqtt_frame(buf, (size_t)n, 0, &plen), 1);
    assert_int_equal(plen, (size_t)n);
    struct mqtt_packet d;
    int rc = mqtt_decode(buf, (size_t)n, v, &d);
    assert_int_equal(rc, 0);
    assert_packet_eq(p, &d, v);
    /* The decoded packet re-encodes to the same bytes (iterators over wire views). */
    uint8_t again[1024];
    assert_true((size_t)n <= sizeof(again));
    assert_int_equal(mqtt_encode(&d, v, again, sizeof(again)), n);
    assert_memory_equal(again, buf, (size_t)n);
    return (size_t)n;
}

static int decode_hex(const char *hexs, enum mqtt_version v, struct mqtt_packet *out,
                      uint8_t *buf, size_t cap)
{
    size_t n = unhex(hexs, buf, cap);
    return mqtt_decode(buf, n, v, out);
}

/* Decoding hexs must fail with err (and err must map to reason). A one-byte Remaining
 * Length in a hand-written vector is set from the vector's length. */
static void expect_err(const char *hexs, enum mqtt_version v, int err, uint8_t reason)
{
    uint8_t buf[512];
    struct mqtt_packet p;
    size_t n = unhex(hexs, buf, sizeof(buf));
    if (n >= 2 && buf[1] < 0x80) {
        buf[1] = (uint8_t)(n - 2);
    }
    int rc = mqtt_decode(buf, n, v, &p);
    if (rc != err) {
        fail_msg("%s (v%d): got %d (%s), want %d (%s)", hexs, (int)v, rc, mqtt_err_str(rc), err,
                 mqtt_err_str(err));
    }
    assert_int_equal(mqtt_err_reason(rc), reason);
}

static void expect_ok(const char *hexs, enum mqtt_version v)
{
    expect_err(hexs, v, 0, 0x80);
}

/* ---- captured from real clients (mosquitto 2.0.11 clients against mosquitto, through a
 * loopback proxy; see the report) ---- */

static void check_exact(const char *hexs, enum mqtt_version v, struct mqtt_packet *p,
                        uint8_t *buf, size_t cap)
{
    size_t n = unhex(hexs, buf, cap);
    size_t plen = 0;
    assert_int_equal(mqtt_frame(buf, n, 0, &plen), 1);
    assert_int_equal(plen, n);
    assert_int_equal(mqtt_decode(buf, n, v, p), 0);
    uint8_t out[512];
    assert_int_equal(mqtt_encode(p, v, out, sizeof(out)), (int)n);
    assert_memory_equal(out, buf, n);
}

static void test_captured_v311(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct mqtt_packet p;
    /* mosquitto_pub -V mqttv311 -i pub311 -u user -P pass */
    check_exact("101e00044d51545404c2003c0006707562333131000475736572000470617373", MQTT_V311,
                &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_CONNECT);
    assert_int_equal(p.u.connect.protocol_level, 4);
    assert_true(p.u.connect.clean_start);
    assert_int_equal(p.u.connect.keep_alive, 60);
    assert_true(str_is(p.u.connect.client_id, "pub311"));
    assert_true(p.u.connect.has_username && str_is(p.u.connect.username, "user"));
    assert_true(p.u.connect.has_password);
    assert_memory_equal(p.u.connect.password.ptr, "pass", 4);
    assert_false(p.u.connect.will);

    check_exact("20020000", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_CONNACK);
    assert_int_equal(p.u.connack.reason, 0);

    check_exact("320c0003612f62000168656c6c6f", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_PUBLISH);
    assert_int_equal(p.u.publish.qos, 1);
    assert_int_equal(p.u.publish.packet_id, 1);
    assert_true(str_is(p.u.publish.topic, "a/b"));
    assert_int_equal(p.u.publish.payload.len, 5);
    assert_memory_equal(p.u.publish.payload.ptr, "hello", 5);

    check_exact("40020001", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_PUBACK);
    assert_int_equal(p.u.ack.packet_id, 1);

    check_exact("820800010003612f2b02", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_SUBSCRIBE);
    assert_int_equal(p.u.subscribe.subs.count, 1);
    struct mqtt_iter it = {0};
    struct mqtt_subscription s;
    assert_true(mqtt_sub_next(&p.u.subscribe.subs, true, &it, &s));
    assert_true(str_is(s.filter, "a/+"));
    assert_int_equal(s.qos, 2);
    assert_false(mqtt_sub_next(&p.u.subscribe.subs, true, &it, &s));

    check_exact("9003000102", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_SUBACK);
    assert_int_equal(p.u.suback.reasons.len, 1);
    assert_int_equal(p.u.suback.reasons.ptr[0], 2);

    check_exact("a20700020003612f2b", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_UNSUBSCRIBE);
    assert_int_equal(p.u.subscribe.packet_id, 2);
    check_exact("b0020002", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_UNSUBACK);
    check_exact("e000", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_DISCONNECT);
}

static void test_captured_v5(void **state)
{
    (void)state;
    uint8_t buf[512];
    struct mqtt_packet p;
    /* mosquitto_pub -V mqttv5 -D connect session-expiry-interval 30 */
    check_exact("101900044d5154540502003c08110000001e210014000470756235", MQTT_V5, &p, buf,
                sizeof(buf));
    assert_int_equal(p.u.connect.protocol_level, 5);
    assert_true(mqtt_prop_has(&p.u.connect.props, MQTT_PROP_SESSION_EXPIRY));
    assert_int_equal(p.u.connect.props.session_expiry, 30);
    assert_int_equal(p.u.connect.props.receive_max, 20);
    assert_true(str_is(p.u.connect.client_id, "pub5"));

    /* mosquitto's CONNACK: Topic Alias Maximum 10, Receive Maximum 20 (in that order; we
     * write properties in ascending identifier order) */
    size_t cn = unhex("200900000622000a210014", buf, sizeof(buf));
    assert_int_equal(mqtt_decode(buf, cn, MQTT_V5, &p), 0);
    assert_int_equal(p.u.connack.props.topic_alias_max, 10);
    assert_int_equal(p.u.connack.props.receive_max, 20);
    assert_false(mqtt_prop_has(&p.u.connack.props, MQTT_PROP_MAX_QOS));
    uint8_t canon[16];
    assert_int_equal(mqtt_encode(&p, MQTT_V5, canon, sizeof(canon)), 11);
    assert_memory_equal(canon, "\x20\x09\x00\x00\x06\x21\x00\x14\x22\x00\x0a", 11);

    /* PUBLISH QoS 2 with user property, content type, payload format, expiry: mosquitto
     * writes properties in its own order, so compare fields, then our canonical form. */
    size_t n = unhex("34280003612f6200011b2600016b00017603000a746578742f706c61696e0101020000003c"
                     "68656c6c6f",
                     buf, sizeof(buf));
    assert_int_equal(mqtt_decode(buf, n, MQTT_V5, &p), 0);
    const struct mqtt_publish *pb = &p.u.publish;
    assert_int_equal(pb->qos, 2);
    assert_int_equal(pb->packet_id, 1);
    assert_int_equal(pb->props.payload_format, 1);
    assert_int_equal(pb->props.message_expiry, 60);
    assert_true(str_is(pb->props.content_type, "text/plain"));
    assert_int_equal(pb->props.user.count, 1);
    struct mqtt_iter it = {0};
    struct mqtt_user_prop up;
    assert_true(mqtt_user_prop_next(&pb->props.user, &it, &up));
    assert_true(str_is(up.name, "k") && str_is(up.value, "v"));
    assert_false(mqtt_user_prop_next(&pb->props.user, &it, &up));
    uint8_t out[128];
    uint8_t want[128];
    size_t wn = unhex("34280003612f6200011b0101020000003c03000a746578742f706c61696e2600016b000176"
                      "68656c6c6f",
                      want, sizeof(want));
    assert_int_equal(mqtt_encode(&p, MQTT_V5, out, sizeof(out)), (int)wn);
    assert_memory_equal(out, want, wn);

    check_exact("50020001", MQTT_V5, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_PUBREC);
    assert_int_equal(p.u.ack.reason, 0);
    check_exact("62020001", MQTT_V5, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_PUBREL);
    check_exact("70020001", MQTT_V5, &p, buf, sizeof(buf));
    assert_int_equal(p.type, MQTT_PUBCOMP);

    /* SUBSCRIBE a/+ and x/# QoS 1 with a user property s=t */
    check_exact("8216000107260001730001740003612f2b010003782f2301", MQTT_V5, &p, buf,
                sizeof(buf));
    assert_int_equal(p.u.subscribe.subs.count, 2);
    assert_int_equal(p.u.subscribe.props.user.count, 1);
    check_exact("90050001000101", MQTT_V5, &p, buf, sizeof(buf));
    assert_int_equal(p.u.suback.reasons.len, 2);

    /* Server PUBLISH with empty properties; retained QoS 1; empty retained (clear) */
    check_exact("320d0003612f63000100776f726c64", MQTT_V5, &p, buf, sizeof(buf));
    assert_int_equal(p.u.publish.props.present, 0);
    check_exact("330d0003612f63000100776f726c64", MQTT_V5, &p, buf, sizeof(buf));
    assert_true(p.u.publish.retain);
    check_exact("31060003612f6300", MQTT_V5, &p, buf, sizeof(buf));
    assert_int_equal(p.u.publish.payload.len, 0);

    /* UNSUBSCRIBE a/+, UNSUBACK "No subscription existed" (0x11) */
    check_exact("a2080002000003612f2b", MQTT_V5, &p, buf, sizeof(buf));
    check_exact("b00400020011", MQTT_V5, &p, buf, sizeof(buf));
    assert_int_equal(p.u.suback.reasons.ptr[0], 0x11);
    check_exact("e000", MQTT_V5, &p, buf, sizeof(buf));
}

/* ---- specification examples ---- */

static void test_spec_examples(void **state)
{
    (void)state;
    uint8_t buf[128];
    struct mqtt_packet p;
    /* 3.1.1 Figure 3.6: variable header 00 04 'MQTT' 04 CE 00 0A (user, password, will
     * QoS 1, will, clean session; keep alive 10) */
    int rc = decode_hex("10 1a 0004 4d515454 04 ce 000a 0001 63 0001 74 0001 77 0001 75 0002 7077",
                        MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(rc, 0);
    assert_int_equal(p.u.connect.keep_alive, 10);
    assert_true(p.u.connect.will);
    assert_int_equal(p.u.connect.will_qos, 1);
    assert_false(p.u.connect.will_retain);
    assert_true(p.u.connect.clean_start);
    assert_true(str_is(p.u.connect.will_topic, "t"));
    assert_true(str_is(p.u.connect.username, "u"));

    /* v5 3.1.2.12 example: 00 04 'MQTT' 05 C2 00 0A, properties length 5, Session Expiry
     * Interval (17) = 10 */
    struct mqtt_packet c;
    memset(&c, 0, sizeof(c));
    c.type = MQTT_CONNECT;
    c.u.connect.clean_start = true;
    c.u.connect.keep_alive = 10;
    c.u.connect.has_username = true;
    c.u.connect.username = S("u");
    c.u.connect.has_password = true;
    c.u.connect.password = BIN("p");
    c.u.connect.client_id = S("c");
    mqtt_prop_set(&c.u.connect.props, MQTT_PROP_SESSION_EXPIRY);
    c.u.connect.props.session_expiry = 10;
    uint8_t want[64];
    size_t wn = unhex("10 19 0004 4d515454 05 c2 000a 05 11 0000000a 0001 63 0001 75 0001 70",
                      want, sizeof(want));
    assert_int_equal(mqtt_encode(&c, MQTT_V5, buf, sizeof(buf)), (int)wn);
    assert_memory_equal(buf, want, wn);

    /* 2.2.3 Remaining Length examples (both specs): 321 = c1 02 */
    struct mqtt_packet pub;
    memset(&pub, 0, sizeof(pub));
    pub.type = MQTT_PUBLISH;
    pub.u.publish.topic = S("t");
    static uint8_t payload[318];
    pub.u.publish.payload.ptr = payload;
    pub.u.publish.payload.len = sizeof(payload); /* 3 + 318 = 321 */
    static uint8_t big[400];
    assert_int_equal(mqtt_encode(&pub, MQTT_V311, big, sizeof(big)), 324);
    assert_int_equal(big[0], 0x30);
    assert_int_equal(big[1], 0xc1);
    assert_int_equal(big[2], 0x02);
}

/* ---- round trips with every property ---- */

static const struct mqtt_user_prop UPS[] = {
    {{"a", 1}, {"1", 1}}, {{"b", 1}, {"", 0}}, {{"a", 1}, {"2", 1}},
};

static void props_common(struct mqtt_props *p)
{
    p->user.items = UPS;
    p->user.count = 3;
}

static void props_connect(struct mqtt_props *p)
{
    memset(p, 0, sizeof(*p));
    props_common(p);
    mqtt_prop_set(p, MQTT_PROP_SESSION_EXPIRY);
    p->session_expiry = 0xFFFFFFFF;
    mqtt_prop_set(p, MQTT_PROP_AUTH_METHOD);
    p->auth_method = S("SCRAM-SHA-1");
    mqtt_prop_set(p, MQTT_PROP_AUTH_DATA);
    p->auth_data = BIN("\x00\x01\x02");
    mqtt_prop_set(p, MQTT_PROP_REQUEST_PROBLEM_INFO);
    p->request_problem_info = 0;
    mqtt_prop_set(p, MQTT_PROP_REQUEST_RESPONSE_INFO);
    p->request_response_info = 1;
    mqtt_prop_set(p, MQTT_PROP_RECEIVE_MAX);
    p->receive_max = 100;
    mqtt_prop_set(p, MQTT_PROP_TOPIC_ALIAS_MAX);
    p->topic_alias_max = 0;
    mqtt_prop_set(p, MQTT_PROP_MAX_PACKET_SIZE);
    p->max_packet_size = 1u << 20;
}

static void props_will(struct mqtt_props *p)
{
    memset(p, 0, sizeof(*p));
    props_common(p);
    mqtt_prop_set(p, MQTT_PROP_PAYLOAD_FORMAT);
    p->payload_format = 1;
    mqtt_prop_set(p, MQTT_PROP_MESSAGE_EXPIRY);
    p->message_expiry = 3600;
    mqtt_prop_set(p, MQTT_PROP_CONTENT_TYPE);
    p->content_type = S("text/plain");
    mqtt_prop_set(p, MQTT_PROP_RESPONSE_TOPIC);
    p->response_topic = S("reply/here");
    mqtt_prop_set(p, MQTT_PROP_CORRELATION_DATA);
    p->correlation_data = BIN("\xde\xad");
    mqtt_prop_set(p, MQTT_PROP_WILL_DELAY);
    p->will_delay = 5;
}

static void props_connack(struct mqtt_props *p)
{
    memset(p, 0, sizeof(*p));
    props_common(p);
    mqtt_prop_set(p, MQTT_PROP_SESSION_EXPIRY);
    p->session_expiry = 7;
    mqtt_prop_set(p, MQTT_PROP_ASSIGNED_CLIENT_ID);
    p->assigned_client_id = S("auto-1");
    mqtt_prop_set(p, MQTT_PROP_SERVER_KEEP_ALIVE);
    p->server_keep_alive = 30;
    mqtt_prop_set(p, MQTT_PROP_AUTH_METHOD);
    p->auth_method = S("m");
    mqtt_prop_set(p, MQTT_PROP_AUTH_DATA);
    p->auth_data = BIN("");
    mqtt_prop_set(p, MQTT_PROP_RESPONSE_INFO);
    p->response_info = S("resp/");
    mqtt_prop_set(p, MQTT_PROP_SERVER_REFERENCE);
    p->server_reference = S("other:1883");
    mqtt_prop_set(p, MQTT_PROP_REASON_STRING);
    p->reason_string = S("ok");
    mqtt_prop_set(p, MQTT_PROP_RECEIVE_MAX);
    p->receive_max = 65535;
    mqtt_prop_set(p, MQTT_PROP_TOPIC_ALIAS_MAX);
    p->topic_alias_max = 10;
    mqtt_prop_set(p, MQTT_PROP_MAX_QOS);
    p->max_qos = 1;
    mqtt_prop_set(p, MQTT_PROP_RETAIN_AVAILABLE);
    p->retain_available = 0;
    mqtt_prop_set(p, MQTT_PROP_MAX_PACKET_SIZE);
    p->max_packet_size = 268435460;
    mqtt_prop_set(p, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    p->wildcard_sub_available = 1;
    mqtt_prop_set(p, MQTT_PROP_SUB_ID_AVAILABLE);
    p->sub_id_available = 1;
    mqtt_prop_set(p, MQTT_PROP_SHARED_SUB_AVAILABLE);
    p->shared_sub_available = 0;
}

static const uint32_t SUB_IDS[] = {1, 268435455, 128};

static void test_round_trip_all_types(void **state)
{
    (void)state;
    uint8_t buf[1024];
    enum mqtt_version vs[] = {MQTT_V311, MQTT_V5};
    for (size_t vi = 0; vi < 2; vi++) {
        enum mqtt_version v = vs[vi];
        struct mqtt_packet p;

        memset(&p, 0, sizeof(p));
        p.type = MQTT_CONNECT;
        struct mqtt_connect *c = &p.u.connect;
        c->clean_start = false;
        c->keep_alive = 65535;
        c->client_id = S("client-\xc3\xa9");
        c->will = true;
        c->will_qos = 2;
        c->will_retain = true;
        c->will_topic = S("dead/client");
        c->will_payload = BIN("gone");
        c->has_username = true;
        c->username = S("alice");
        c->has_password = true;
        c->password = BIN("\x00\xff");
        props_connect(&c->props);
        props_will(&c->will_props);
        round_trip(&p, v, buf, sizeof(buf));
        const uint8_t *mq = memmem(buf, 16, "\x00\x04MQTT", 6);
        assert_non_null(mq);
        assert_int_equal(mq[6], v); /* protocol level */

        memset(&p, 0, sizeof(p));
        p.type = MQTT_CONNACK;
        p.u.connack.session_present = true;
        props_connack(&p.u.connack.props);
        round_trip(&p, v, buf, sizeof(buf));
        p.u.connack.session_present = false;
        p.u.connack.reason = v == MQTT_V5 ? 0x87 : 5;
        round_trip(&p, v, buf, sizeof(buf));

        for (uint8_t qos = 0; qos < 3; qos++) {
            memset(&p, 0, sizeof(p));
            p.type = MQTT_PUBLISH;
            struct mqtt_publish *pb = &p.u.publish;
            pb->qos = qos;
            pb->dup = qos > 0;
            pb->retain = qos == 1;
            pb->topic = S("s/\xe2\x82\xac/x");
            pb->packet_id = (uint16_t)(qos == 2 ? 65535 : 1);
            pb->payload = BIN("{\"v\":1}");
            props_will(&pb->props);
            pb->props.present &= ~(1ull << MQTT_PROP_WILL_DELAY);
            pb->props.sub_ids.items = SUB_IDS;
            pb->props.sub_ids.count = 3;
            mqtt_prop_set(&pb->props, MQTT_PROP_TOPIC_ALIAS);
            pb->props.topic_alias = 3;
            round_trip(&p, v, buf, sizeof(buf));
        }

        for (enum mqtt_type t = MQTT_PUBACK; t <= MQTT_PUBCOMP; t++) {
            memset(&p, 0, sizeof(p));
            p.type = t;
            p.u.ack.packet_id = 0x1234;
            assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 4);
            if (v == MQTT_V5) {
                p.u.ack.reason = (t == MQTT_PUBREL || t == MQTT_PUBCOMP) ? 0x92 : 0x10;
                assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 5);
                props_common(&p.u.ack.props);
                mqtt_prop_set(&p.u.ack.props, MQTT_PROP_REASON_STRING);
                p.u.ack.props.reason_string = S("why");
                round_trip(&p, v, buf, sizeof(buf));
                p.u.ack.reason = 0;
                round_trip(&p, v, buf, sizeof(buf));
            }
        }

        static const struct mqtt_subscription subs[] = {
            {{"a/+/c", 5}, 0, false, false, 0},
            {{"#", 1}, 1, true, true, 2},
            {{"$share/g1/x/#", 13}, 2, false, true, 1},
        };
        for (enum mqtt_type t = MQTT_SUBSCRIBE; t <= MQTT_UNSUBSCRIBE; t += 2) {
            memset(&p, 0, sizeof(p));
            p.type = t;
            p.u.subscribe.packet_id = 7;
            p.u.subscribe.subs.items = subs;
            p.u.subscribe.subs.count = 3;
            props_common(&p.u.subscribe.props);
            if (t == MQTT_SUBSCRIBE) {
                p.u.subscribe.props.sub_ids.items = SUB_IDS + 1;
                p.u.subscribe.props.sub_ids.count = 1;
            }
            round_trip(&p, v, buf, sizeof(buf));
        }

        for (enum mqtt_type t = MQTT_SUBACK; t <= MQTT_UNSUBACK; t += 2) {
            memset(&p, 0, sizeof(p));
            p.type = t;
            p.u.suback.packet_id = 9;
            p.u.suback.reasons = t == MQTT_SUBACK ? BIN("\x00\x01\x02\x80")
                                                  : BIN("\x00\x11\x8f");
            props_common(&p.u.suback.props);
            mqtt_prop_set(&p.u.suback.props, MQTT_PROP_REASON_STRING);
            p.u.suback.props.reason_string = S("r");
            size_t n = round_trip(&p, v, buf, sizeof(buf));
            if (v == MQTT_V311 && t == MQTT_UNSUBACK) {
                assert_int_equal(n, 4);
            }
        }

        memset(&p, 0, sizeof(p));
        p.type = MQTT_PINGREQ;
        assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 2);
        assert_int_equal(buf[0], 0xC0);
        p.type = MQTT_PINGRESP;
        assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 2);
        assert_int_equal(buf[0], 0xD0);

        memset(&p, 0, sizeof(p));
        p.type = MQTT_DISCONNECT;
        assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 2);
        if (v == MQTT_V5) {
            p.u.disconnect.reason = 0x04;
            assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 3);
            props_common(&p.u.disconnect.props);
            mqtt_prop_set(&p.u.disconnect.props, MQTT_PROP_SESSION_EXPIRY);
            mqtt_prop_set(&p.u.disconnect.props, MQTT_PROP_SERVER_REFERENCE);
            mqtt_prop_set(&p.u.disconnect.props, MQTT_PROP_REASON_STRING);
            p.u.disconnect.props.server_reference = S("b:1883");
            p.u.disconnect.props.reason_string = S("bye");
            round_trip(&p, v, buf, sizeof(buf));

            memset(&p, 0, sizeof(p));
            p.type = MQTT_AUTH;
            assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 2);
            p.u.disconnect.reason = 0x18;
            assert_int_equal(round_trip(&p, v, buf, sizeof(buf)), 4); /* f0 02 18 00 */
            props_common(&p.u.disconnect.props);
            mqtt_prop_set(&p.u.disconnect.props, MQTT_PROP_AUTH_METHOD);
            mqtt_prop_set(&p.u.disconnect.props, MQTT_PROP_AUTH_DATA);
            mqtt_prop_set(&p.u.disconnect.props, MQTT_PROP_REASON_STRING);
            p.u.disconnect.props.auth_method = S("SCRAM");
            p.u.disconnect.props.auth_data = BIN("xyz");
            p.u.disconnect.props.reason_string = S("more");
            round_trip(&p, v, buf, sizeof(buf));
        } else {
            p.type = MQTT_AUTH;
            assert_int_equal(mqtt_encoded_size(&p, v), 0);
            assert_int_equal(mqtt_encode(&p, v, buf, sizeof(buf)), MQTT_ERR_INVALID);
        }
    }
}

static void test_encode_invalid(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.topic = S("t");
    p.u.publish.qos = 3;
    assert_int_equal(mqtt_encode(&p, MQTT_V5, buf, sizeof(buf)), MQTT_ERR_INVALID);
    p.u.publish.qos = 0;
    static char longtopic[65536];
    memset(longtopic, 'a', sizeof(longtopic));
    p.u.publish.topic.ptr = longtopic;
    p.u.publish.topic.len = sizeof(longtopic);
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V311), 0);
    p.u.publish.topic.len = 65535;
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V311), 1 + 3 + 2 + 65535);
    assert_int_equal(mqtt_encode(&p, MQTT_V311, buf, sizeof(buf)), -ENOSPC);
    static const uint32_t zero = 0;
    p.u.publish.topic = S("t");
    p.u.publish.props.sub_ids.items = &zero;
    p.u.publish.props.sub_ids.count = 1;
    assert_int_equal(mqtt_encode(&p, MQTT_V5, buf, sizeof(buf)), MQTT_ERR_INVALID);
    p.type = (enum mqtt_type)0;
    assert_int_equal(mqtt_encode(&p, MQTT_V5, buf, sizeof(buf)), MQTT_ERR_INVALID);
    assert_int_equal(mqtt_encoded_size(&p, (enum mqtt_version)3), 0);
}

/* ---- framing ---- */

static void test_frame_partial(void **state)
{
    (void)state;
    uint8_t pkt[64];
    size_t n = unhex("34280003612f6200011b2600016b00017603000a746578742f706c61696e0101020000003c"
                     "68656c6c6f",
                     pkt, sizeof(pkt));
    for (size_t i = 0; i < n; i++) {
        size_t plen = 12345;
        assert_int_equal(mqtt_frame(pkt, i, 0, &plen), 0);
        assert_int_equal(plen, 12345);
    }
    size_t plen = 0;
    assert_int_equal(mqtt_frame(pkt, n, 0, &plen), 1);
    assert_int_equal(plen, n);
    /* extra bytes of the next packet do not change the answer */
    uint8_t two[128];
    memcpy(two, pkt, n);
    memcpy(two + n, "\xc0\x00", 2);
    assert_int_equal(mqtt_frame(two, n + 2, 0, &plen), 1);
    assert_int_equal(plen, n);
    assert_int_equal(mqtt_frame(two + n, 2, 0, &plen), 1);
    assert_int_equal(plen, 2);
    /* too large: known as soon as the length is */
    assert_int_equal(mqtt_frame(pkt, 2, n - 1, &plen), MQTT_ERR_TOO_LARGE);
    assert_int_equal(mqtt_frame(pkt, 2, n, &plen), 0);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_TOO_LARGE), 0x95);
}

static void check_len(uint32_t rl, const char *enc)
{
    uint8_t hdr[8];
    size_t hn = unhex(enc, hdr + 1, sizeof(hdr) - 1);
    hdr[0] = 0x30;
    size_t plen = 0;
    /* only the header: need more (rl > 0) */
    assert_int_equal(mqtt_frame(hdr, 1 + hn, 0, &plen), rl == 0 ? 1 : 0);
    if (rl > 0) {
        assert_int_equal(mqtt_frame(hdr, 1 + hn, hn + rl, &plen), MQTT_ERR_TOO_LARGE);
    }
    /* a fake buffer length: mqtt_frame reads only the header */
    static uint8_t body[2097160];
    memcpy(body, hdr, 1 + hn);
    if (1 + hn + rl <= sizeof(body)) {
        assert_int_equal(mqtt_frame(body, 1 + hn + rl, 0, &plen), 1);
        assert_int_equal(plen, 1 + hn + rl);
    }
    /* our encoder produces the same header */
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.topic = S("t");
    if (rl >= 3) {
        p.u.publish.payload.ptr = body;
        p.u.publish.payload.len = rl - 3;
        assert_int_equal(mqtt_encoded_size(&p, MQTT_V311), 1 + hn + rl);
    }
}

static void test_frame_boundaries(void **state)
{
    (void)state;
    check_len(0, "00");
    check_len(127, "7f");
    check_len(128, "8001");
    check_len(16383, "ff7f");
    check_len(16384, "808001");
    check_len(2097151, "ffff7f");
    check_len(2097152, "80808001");
    check_len(268435455, "ffffff7f");
    uint8_t five[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x7f};
    size_t plen;
    assert_int_equal(mqtt_frame(five, sizeof(five), 0, &plen), MQTT_ERR_MALFORMED);
    assert_int_equal(mqtt_frame(five, 5, 0, &plen), MQTT_ERR_MALFORMED);
    assert_int_equal(mqtt_frame(five, 4, 0, &plen), 0);
    /* The largest packet overflows nothing and is too large for a small limit. */
    assert_int_equal(mqtt_frame(five, 5, 1000, &plen), MQTT_ERR_MALFORMED);
    /* Non-minimal length: accepted by framing and by 3.1.1, malformed in v5. */
    uint8_t nm[] = {0xc0, 0x80, 0x00};
    assert_int_equal(mqtt_frame(nm, sizeof(nm), 0, &plen), 1);
    assert_int_equal(plen, 3);
    struct mqtt_packet p;
    assert_int_equal(mqtt_decode(nm, 3, MQTT_V311, &p), 0);
    assert_int_equal(mqtt_decode(nm, 3, MQTT_V5, &p), MQTT_ERR_MALFORMED);
    /* A length that disagrees with the buffer given to decode. */
    assert_int_equal(mqtt_decode(nm, 2, MQTT_V311, &p), MQTT_ERR_MALFORMED);
}

/* ---- validation ---- */

static void test_reject_fixed_header(void **state)
{
    (void)state;
    expect_err("0000", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);         /* type 0 */
    expect_err("f000", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);       /* AUTH in 3.1.1 */
    expect_ok("f000", MQTT_V5);
    expect_err("c100", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);         /* PINGREQ flags */
    expect_err("c10100", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);
    expect_err("c00100", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);     /* PINGREQ body */
    expect_err("d00100", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_err("60020001", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);     /* PUBREL flags 0 */
    expect_err("80070001 0001 61 00", MQTT_V311, MQTT_ERR_MALFORMED, 0x81); /* SUBSCRIBE */
    expect_err("a0050001 0001 61", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);   /* UNSUBSCRIBE */
    expect_err("41020001", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);   /* PUBACK flags */
    expect_err("e100", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);         /* DISCONNECT flags */
    expect_err("e00100", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);     /* 3.1.1 DISCONNECT body */
    expect_err("30030001 61", (enum mqtt_version)3, MQTT_ERR_UNSUPPORTED_VERSION, 0x84);
}

static void test_reject_connect(void **state)
{
    (void)state;
    uint8_t buf[128];
    struct mqtt_packet p;
    /* level 3 under "MQIsdp", level 6 and 3 under "MQTT": unsupported, level reported */
    int rc = decode_hex("100f 0006 4d5149736470 03 02 003c 0001 63", MQTT_V5, &p, buf,
                        sizeof(buf));
    assert_int_equal(rc, MQTT_ERR_UNSUPPORTED_VERSION);
    assert_int_equal(mqtt_err_reason(rc), 0x84);
    assert_int_equal(p.u.connect.protocol_level, 3);
    rc = decode_hex("100d 0004 4d515454 06 02 003c 0001 63", MQTT_V311, &p, buf, sizeof(buf));
    assert_int_equal(rc, MQTT_ERR_UNSUPPORTED_VERSION);
    assert_int_equal(p.u.connect.protocol_level, 6);
    expect_err("100d 0004 4d515454 03 02 003c 0001 63", MQTT_V5,
               MQTT_ERR_UNSUPPORTED_VERSION, 0x84);
    expect_err("100d 0004 4d515457 04 02 003c 0001 63", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    /* the CONNECT's own level wins over the v argument */
    expect_ok("100d 0004 4d515454 04 02 003c 0001 63", MQTT_V5);
    expect_ok("100e 0004 4d515454 05 02 003c 00 0001 63", MQTT_V311);
    /* reserved flag bit */
    expect_err("100d 0004 4d515454 04 03 003c 0001 63", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);
    /* will QoS 3 */
    expect_err("1015 0004 4d515454 04 1e 003c 0001 63 0001 74 0001 78", MQTT_V311,
               MQTT_ERR_MALFORMED, 0x81);
    /* will QoS / retain without will flag */
    expect_err("100d 0004 4d515454 04 0a 003c 0001 63", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("100e 0004 4d515454 05 22 003c 00 0001 63", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    /* 3.1.1 password without user name; allowed in v5 */
    expect_err("1010 0004 4d515454 04 42 003c 0001 63 0001 70", MQTT_V311, MQTT_ERR_PROTOCOL,
               0x82);
    expect_ok("1011 0004 4d515454 05 42 003c 00 0001 63 0001 70", MQTT_V5);
    /* 3.1.1 empty client id with clean session 0; fine with clean session 1 / in v5 */
    expect_err("100c 0004 4d515454 04 00 003c 0000", MQTT_V311, MQTT_ERR_CLIENT_ID, 0x85);
    expect_ok("100c 0004 4d515454 04 02 003c 0000", MQTT_V311);
    expect_ok("100d 0004 4d515454 05 00 003c 00 0000", MQTT_V5);
    /* will topic with a wildcard */
    expect_err("1015 0004 4d515454 04 06 003c 0001 63 0001 23 0001 78", MQTT_V311,
               MQTT_ERR_TOPIC_NAME, 0x90);
    /* will payload not UTF-8 with payload format indicator 1 (will properties 02 01 01) */
    expect_err("1019 0004 4d515454 05 06 003c 00 0001 63 02 0101 0001 74 0001 ff", MQTT_V5,
               MQTT_ERR_PAYLOAD_FORMAT, 0x99);
    expect_ok("1019 0004 4d515454 05 06 003c 00 0001 63 02 0101 0001 74 0001 41", MQTT_V5);
    /* Will Delay Interval is a will property, not a CONNECT property */
    expect_err("1013 0004 4d515454 05 02 003c 05 1800000001 0001 63", MQTT_V5,
               MQTT_ERR_PROTOCOL, 0x82);
    /* trailing garbage, truncated user name */
    expect_err("100e 0004 4d515454 04 02 003c 0001 63 00", MQTT_V311, MQTT_ERR_MALFORMED,
               0x81);
    expect_err("100f 0004 4d515454 04 82 003c 0001 63 0005 61", MQTT_V311, MQTT_ERR_MALFORMED,
               0x81);
    /* client id with a surrogate (ed a0 80) and with U+0000 */
    expect_err("100f 0004 4d515454 04 02 003c 0003 eda080", MQTT_V311, MQTT_ERR_MALFORMED,
               0x81);
    expect_err("100d 0004 4d515454 04 02 003c 0001 00", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);
    /* non-minimal remaining length in a v5 CONNECT */
    expect_err("108e00 0004 4d515454 05 02 003c 00 0001 63", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_ok("108d00 0004 4d515454 04 02 003c 0001 63", MQTT_V311);
}

static void test_reject_publish(void **state)
{
    (void)state;
    expect_err("36050001 61 0001", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);    /* QoS 3 */
    expect_err("38030001 61", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);          /* DUP, QoS 0 */
    expect_err("32050001 61 0000", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);     /* packet id 0 */
    expect_err("32040001 61 00", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);      /* short id */
    expect_err("30050003 612f2b", MQTT_V311, MQTT_ERR_TOPIC_NAME, 0x90);    /* '+' */
    expect_err("30060003 612f23 00", MQTT_V5, MQTT_ERR_TOPIC_NAME, 0x90);      /* '#' */
    expect_err("30040002 6100 00", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);      /* U+0000 */
    expect_err("30050002 c0af 00", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);     /* overlong */
    expect_err("30050002 eda0 00", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);     /* truncated */
    expect_err("30020000", MQTT_V311, MQTT_ERR_TOPIC_NAME, 0x90);           /* empty topic */
    expect_err("300300 0000", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);            /* empty, no alias */
    expect_ok("30060000 03 230005", MQTT_V5);                               /* empty + alias */
    expect_err("30060000 03 230000", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);     /* alias 0 */
    expect_ok("300c0001 61 00 e282ac f48fbfbf", MQTT_V5);                   /* UTF-8 payload */
    /* payload format indicator */
    expect_err("30070001 61 02 0101 ff", MQTT_V5, MQTT_ERR_PAYLOAD_FORMAT, 0x99);
    expect_err("30080001 61 02 0101 eda080", MQTT_V5, MQTT_ERR_PAYLOAD_FORMAT, 0x99);
    expect_ok("30070001 61 02 0100 ff", MQTT_V5);
    expect_err("30060001 61 02 0102", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);    /* value 2 */
    expect_err("30080001 61 04 01000101", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* twice */
    /* properties: not for PUBLISH, unknown id, truncated, longer than the packet */
    expect_err("30080001 61 04 04000000", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_err("30090001 61 05 1100000001", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("30060001 61 02 0200", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_err("30050001 61 05", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    /* subscription identifier: several allowed in PUBLISH, 0 is an error, VBI minimal */
    expect_ok("30090001 61 04 0b010b02", MQTT_V5);
    expect_err("30070001 61 02 0b00", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("30080001 61 03 0b8100", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_err("300a0001 61 05 0bffffffff", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    /* response topic must not hold wildcards; correlation data is binary */
    expect_err("30090001 61 04 080001 23", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_ok("30090001 61 04 090001 ff", MQTT_V5);
    /* user property with invalid UTF-8 in the value */
    expect_err("300b0001 61 07 2600 0161 0001ff", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    /* property length with a non-minimal VBI */
    expect_err("30050001 61 8000", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
}

static void test_reject_acks(void **state)
{
    (void)state;
    expect_err("40020000", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);        /* id 0 */
    expect_err("4003000100", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);     /* 3.1.1 length 2 */
    expect_err("400100", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_ok("4003000110", MQTT_V5);                                  /* reason only */
    expect_err("4003000192", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);        /* not a PUBACK code */
    expect_ok("6203000192", MQTT_V5);
    expect_err("7003000110", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);        /* not a PUBCOMP code */
    expect_ok("500400018000", MQTT_V5);                                /* empty props */
    expect_err("50070001 80 03 1f0005", MQTT_V5, MQTT_ERR_MALFORMED, 0x81); /* short prop */
    expect_err("5008000180051100000001", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("50080001800004deadbeef", MQTT_V5, MQTT_ERR_MALFORMED, 0x81); /* trailing */
    expect_err("500a000180061f0000 1f0000", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* dup */
}

static void test_reject_subscribe(void **state)
{
    (void)state;
    expect_err("82020001", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);              /* no filters */
    expect_err("8203000100", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("82060000 0001 61 00", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);  /* id 0 */
    expect_err("82060001 0001 61 03", MQTT_V311, MQTT_ERR_MALFORMED, 0x81); /* QoS 3 */
    expect_err("82060001 0001 61 04", MQTT_V311, MQTT_ERR_MALFORMED, 0x81); /* 3.1.1 bits */
    expect_ok("820700 01 00 0001 61 2d", MQTT_V5);                           /* v5 options */
    expect_err("820700 01 00 0001 61 40", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_err("820700 01 00 0001 61 30", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* RH 3 */
    expect_err("82050001 0001 61", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);     /* no options */
    /* filters */
    expect_err("82080001 0003 612b62 00", MQTT_V311, MQTT_ERR_TOPIC_FILTER, 0x8f);
    expect_err("82080001 0003 23 2f61 00", MQTT_V311, MQTT_ERR_TOPIC_FILTER, 0x8f);
    expect_err("82080001 0003 61 2f23 00", MQTT_V311, 0, 0x80);
    expect_err("82050001 0000 00", MQTT_V311, MQTT_ERR_TOPIC_FILTER, 0x8f);  /* empty */
    /* shared subscriptions (v5) */
    expect_ok("82100001 00 000a 2473686172652f672f78 00", MQTT_V5);
    expect_err("820f0001 00 0009 2473686172652f2f78 00", MQTT_V5, MQTT_ERR_TOPIC_FILTER, 0x8f);
    expect_err("820e0001 00 0008 2473686172652f 67 00", MQTT_V5, MQTT_ERR_TOPIC_FILTER, 0x8f);
    expect_err("82100001 00 000a 2473686172652f672f78 04", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    /* 3.1.1 has no shared subscriptions: "$share/g" is an ordinary filter there */
    expect_ok("820e0001 0008 2473686172652f 67 00", MQTT_V311);
    /* subscription identifier: once, non-zero */
    expect_ok("82090001 02 0b05 0001 61 00", MQTT_V5);
    expect_err("820b0001 04 0b050b06 0001 61 00", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("82090001 02 0b00 0001 61 00", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    /* UNSUBSCRIBE */
    expect_err("a2020001", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("a2070001 0003 612f2b", MQTT_V311, 0, 0x80);
    expect_err("a2070001 0003 2b2b61", MQTT_V311, MQTT_ERR_TOPIC_FILTER, 0x8f);
    expect_err("a2080001 00 0002 6100", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_err("a2080001 02 0b01 0001 61", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* sub id */
}

static void test_reject_others(void **state)
{
    (void)state;
    /* CONNACK */
    expect_err("20020200", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);   /* reserved ack flag */
    expect_err("20020106", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);    /* return code 6 */
    expect_err("20020105", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);    /* session present + 5 */
    expect_err("2003000000", MQTT_V311, MQTT_ERR_MALFORMED, 0x81); /* 3.1.1 length */
    expect_err("2003000100", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);    /* v5 reason 0x01 */
    expect_err("200200", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);
    expect_err("2002 0000", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);    /* no property length */
    expect_err("20050000 02 2400", MQTT_V5, 0, 0x80);
    expect_err("20050000 02 2402", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* max QoS 2 */
    expect_err("20050000 02 2502", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("20050000 02 2802", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("20050000 02 2902", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("20050000 02 2a02", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("20060000 03 210000", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* receive max 0 */
    expect_err("20080000 05 2700000000", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* max size 0 */
    expect_err("20060000 03 160000", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* data no method */
    expect_err("20060000 03 230001", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* topic alias */
    /* CONNECT request problem / response information must be 0 or 1 */
    expect_err("1010 0004 4d515454 05 02 003c 02 1702 0001 63", MQTT_V5, MQTT_ERR_PROTOCOL,
               0x82);
    expect_err("1010 0004 4d515454 05 02 003c 02 1902 0001 63", MQTT_V5, MQTT_ERR_PROTOCOL,
               0x82);
    /* SUBACK / UNSUBACK */
    expect_err("90020001", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);      /* no return codes */
    expect_err("9003000103", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("900400010087", MQTT_V311, MQTT_ERR_PROTOCOL, 0x82);  /* v5 code in 3.1.1 */
    expect_ok("900400010087", MQTT_V5);
    expect_err("90040001 00 03", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_err("b003000100", MQTT_V311, MQTT_ERR_MALFORMED, 0x81);   /* 3.1.1 UNSUBACK */
    expect_err("b0030001 00", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);     /* no reason codes */
    expect_err("b0040001 00 02", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    /* DISCONNECT / AUTH */
    expect_ok("e00104", MQTT_V5);
    expect_err("e00103", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
    expect_ok("e0078e 05 1100000000", MQTT_V5);
    expect_err("e00504 03 21000a", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82); /* receive max */
    expect_err("f00118", MQTT_V5, MQTT_ERR_MALFORMED, 0x81);          /* no prop length */
    expect_ok("f0021800", MQTT_V5);
    expect_err("f0020100", MQTT_V5, MQTT_ERR_PROTOCOL, 0x82);
}

/* ---- helpers ---- */

static void test_utf8(void **state)
{
    (void)state;
    assert_true(mqtt_utf8_valid((const uint8_t *)"", 0));
    assert_true(mqtt_utf8_valid((const uint8_t *)"abc", 3));
    assert_true(mqtt_utf8_valid((const uint8_t *)"\xc2\x80\xdf\xbf", 4));
    assert_true(mqtt_utf8_valid((const uint8_t *)"\xe0\xa0\x80\xef\xbf\xbf", 6));
    assert_true(mqtt_utf8_valid((const uint8_t *)"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8));
    assert_true(mqtt_utf8_valid((const uint8_t *)"\xef\xbb\xbf", 3)); /* BOM is allowed */
    assert_false(mqtt_utf8_valid((const uint8_t *)"a\0b", 3));
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xc0\x80", 2));     /* overlong NUL */
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xc1\xbf", 2));
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xe0\x9f\xbf", 3)); /* overlong */
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* U+D800 */
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xed\xbf\xbf", 3)); /* U+DFFF */
    assert_true(mqtt_utf8_valid((const uint8_t *)"\xed\x9f\xbf", 3));  /* U+D7FF */
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xf5\x80\x80\x80", 4));
    assert_false(mqtt_utf8_valid((const uint8_t *)"\x80", 1));
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xe2\x82", 2));     /* truncated */
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xe2\x28\xa1", 3));
    assert_false(mqtt_utf8_valid((const uint8_t *)"\xff", 1));
    static uint8_t big[65536];
    memset(big, 'a', sizeof(big));
    assert_true(mqtt_utf8_valid(big, 65535));
    assert_false(mqtt_utf8_valid(big, 65536));
}

static void test_topics(void **state)
{
    (void)state;
#define NAME(s) mqtt_topic_name_valid((s), strlen(s))
#define FILT(s) mqtt_topic_filter_valid((s), strlen(s))
    assert_true(NAME("a"));
    assert_true(NAME("/"));
    assert_true(NAME("a//b/"));
    assert_true(NAME("$SYS/x"));
    assert_false(NAME(""));
    assert_false(NAME("a/+"));
    assert_false(NAME("a/#"));
    assert_false(NAME("a+b"));
    assert_true(FILT("#"));
    assert_true(FILT("+"));
    assert_true(FILT("a/#"));
    assert_true(FILT("+/+/#"));
    assert_true(FILT("/+/"));
    assert_true(FILT("a//b"));
    assert_false(FILT(""));
    assert_false(FILT("a#"));
    assert_false(FILT("a/#/b"));
    assert_false(FILT("#/"));
    assert_false(FILT("a+"));
    assert_false(FILT("+a/b"));
    assert_false(FILT("##"));
    assert_false(mqtt_topic_filter_valid("a\0b", 3));
#undef NAME
#undef FILT
    struct mqtt_str g;
    struct mqtt_str f;
    assert_int_equal(mqtt_parse_shared("a/b", 3, &g, &f), 0);
    assert_int_equal(mqtt_parse_shared("$share", 6, &g, &f), 0);
    assert_int_equal(mqtt_parse_shared("$share/grp/a/+", 14, &g, &f), 1);
    assert_true(str_is(g, "grp"));
    assert_true(str_is(f, "a/+"));
    assert_int_equal(mqtt_parse_shared("$share/g/#", 10, &g, &f), 1);
    assert_true(str_is(f, "#"));
    assert_int_equal(mqtt_parse_shared("$share/", 7, &g, &f), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(mqtt_parse_shared("$share/g", 8, &g, &f), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(mqtt_parse_shared("$share/g/", 9, &g, &f), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(mqtt_parse_shared("$share//a", 9, &g, &f), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(mqtt_parse_shared("$share/g+/a", 11, &g, &f), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(mqtt_parse_shared("$share/#/a", 10, &g, &f), MQTT_ERR_TOPIC_FILTER);
    assert_int_equal(mqtt_parse_shared("$share/g/a#", 11, NULL, NULL), MQTT_ERR_TOPIC_FILTER);
}

static void test_filter_match(void **state)
{
    (void)state;
    static const struct {
        const char *f;
        const char *t;
        bool m;
    } cases[] = {
        {"sport/tennis/player1/#", "sport/tennis/player1", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
        {"sport/#", "sport", true},
        {"#", "sport", true},
        {"#", "/", true},
        {"sport/tennis/+", "sport/tennis/player1", true},
        {"sport/tennis/+", "sport/tennis/player1/ranking", false},
        {"sport/+", "sport", false},
        {"sport/+", "sport/", true},
        {"+/+", "/finance", true},
        {"/+", "/finance", true},
        {"+", "/finance", false},
        {"a/b", "a/b", true},
        {"a/b", "a/bc", false},
        {"a/b", "a", false},
        {"a", "a/b", false},
        {"a/+/c", "a//c", true},
        {"#", "$SYS/x", false},
        {"+/monitor/Clients", "$SYS/monitor/Clients", false},
        {"$SYS/#", "$SYS/monitor/Clients", true},
        {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
        {"a/#", "a/", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool m = mqtt_filter_match(cases[i].f, strlen(cases[i].f), cases[i].t,
                                   strlen(cases[i].t));
        if (m != cases[i].m) {
            fail_msg("filter %s topic %s: got %d", cases[i].f, cases[i].t, m);
        }
    }
}

static void test_err_reason(void **state)
{
    (void)state;
    assert_int_equal(mqtt_err_reason(MQTT_ERR_MALFORMED), 0x81);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_PROTOCOL), 0x82);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_TOO_LARGE), 0x95);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_UNSUPPORTED_VERSION), 0x84);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_PAYLOAD_FORMAT), 0x99);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_TOPIC_NAME), 0x90);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_TOPIC_FILTER), 0x8F);
    assert_int_equal(mqtt_err_reason(MQTT_ERR_CLIENT_ID), 0x85);
    assert_int_equal(mqtt_err_reason(-12345), 0x80);
    assert_string_equal(mqtt_err_str(MQTT_ERR_PROTOCOL), "protocol error");
}

/* ---- seeded mutation: decode never crashes and accepted packets round-trip ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static void test_mutation(void **state)
{
    (void)state;
    static const char *seeds[] = {
        "101900044d5154540502003c08110000001e210014000470756235",
        "101e00044d51545404c2003c0006707562333131000475736572000470617373",
        "34280003612f6200011b2600016b00017603000a746578742f706c61696e0101020000003c68656c6c6f",
        "8216000107260001730001740003612f2b010003782f2301",
        "200900000622000a210014",
        "90050001000101",
        "b00400020011",
        "e0078e05110000000a",
        "f0021800",
        "a2080002000003612f2b",
        "50070001 80 03 1f0000",
    };
    uint8_t seed[256];
    uint8_t buf[256];
    uint8_t out[512];
    size_t accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = unhex(seeds[rnd() % (sizeof(seeds) / sizeof(seeds[0]))], seed, sizeof(seed));
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            uint32_t r = rnd();
            switch (r % 4) {
            case 0:
                buf[rnd() % n] = (uint8_t)rnd();
                break;
            case 1:
                buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 2:
                if (n > 1) {
                    n--;
                }
                break;
            default:
                if (n < sizeof(buf)) {
                    buf[n++] = (uint8_t)rnd();
                }
                break;
            }
        }
        /* keep the remaining length consistent half of the time */
        if ((rnd() & 1) && n >= 2 && n - 2 < 128) {
            buf[1] = (uint8_t)(n - 2);
        }
        size_t plen = 0;
        int fr = mqtt_frame(buf, n, 0, &plen);
        assert_true(fr == 0 || fr == 1 || fr == MQTT_ERR_MALFORMED);
        if (fr != 1) {
            continue;
        }
        for (int v = MQTT_V311; v <= MQTT_V5; v++) {
            struct mqtt_packet p;
            if (mqtt_decode(buf, plen, (enum mqtt_version)v, &p) != 0) {
                continue;
            }
            accepted++;
            enum mqtt_version ev = p.type == MQTT_CONNECT
                                       ? (enum mqtt_version)p.u.connect.protocol_level
                                       : (enum mqtt_version)v;
            int m = mqtt_encode(&p, ev, out, sizeof(out));
            assert_true(m > 0);
            assert_int_equal((size_t)m, mqtt_encoded_size(&p, ev));
            struct mqtt_packet q;
            assert_int_equal(mqtt_decode(out, (size_t)m, ev, &q), 0);
            assert_packet_eq(&p, &q, ev);
        }
    }
    /* the loop must actually exercise the accepting paths */
    assert_true(accepted > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_captured_v311),
        cmocka_unit_test(test_captured_v5),
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_round_trip_all_types),
        cmocka_unit_test(test_encode_invalid),
        cmocka_unit_test(test_frame_partial),
        cmocka_unit_test(test_frame_boundaries),
        cmocka_unit_test(test_reject_fixed_header),
        cmocka_unit_test(test_reject_connect),
        cmocka_unit_test(test_reject_publish),
        cmocka_unit_test(test_reject_acks),
        cmocka_unit_test(test_reject_subscribe),
        cmocka_unit_test(test_reject_others),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_topics),
        cmocka_unit_test(test_filter_match),
        cmocka_unit_test(test_err_reason),
        cmocka_unit_test(test_mutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

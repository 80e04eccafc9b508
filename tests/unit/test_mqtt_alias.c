/*
 * MQTT 5 outbound topic aliases: the per-connection table (assignment, reuse, least
 * recently used replacement, forget, reset, the server cap) and the PUBLISH head rewrite
 * (decoded back with mqtt_codec).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adapters/mqtt/mqtt_alias.h"
#include "adapters/mqtt/mqtt_codec.h"

static enum mqtt_alias_use get(struct mqtt_alias_out *a, const char *t, uint16_t *alias)
{
    return mqtt_alias_out_get(a, t, strlen(t), alias);
}

static void test_disabled_and_short(void **state)
{
    struct mqtt_alias_out a = {0};
    uint16_t x = 99;
    (void)state;
    assert_int_equal(get(&a, "sensors/a", &x), MQTT_ALIAS_NONE);   /* max 0 */
    assert_int_equal(x, 0);
    mqtt_alias_out_reset(&a, 0);
    assert_int_equal(get(&a, "sensors/a", &x), MQTT_ALIAS_NONE);
    mqtt_alias_out_reset(&a, 10);
    assert_int_equal(get(&a, "a/b", &x), MQTT_ALIAS_NONE);         /* no saving */
    assert_int_equal(get(&a, "a/bc", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 1);
    mqtt_alias_out_clear(&a);
    assert_int_equal(a.max, 0);
    mqtt_alias_out_clear(&a);                                       /* twice: no-op */
}

static void test_assign_then_use(void **state)
{
    struct mqtt_alias_out a = {0};
    uint16_t x;
    (void)state;
    mqtt_alias_out_reset(&a, 5);
    assert_int_equal(get(&a, "sensors/eu/t1", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 1);
    assert_int_equal(get(&a, "sensors/eu/t2", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 2);
    assert_int_equal(get(&a, "sensors/eu/t1", &x), MQTT_ALIAS_USE);
    assert_int_equal(x, 1);
    assert_int_equal(get(&a, "sensors/eu/t2", &x), MQTT_ALIAS_USE);
    assert_int_equal(x, 2);
    /* a prefix or an extension is another topic */
    assert_int_equal(get(&a, "sensors/eu/t", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 3);
    assert_int_equal(get(&a, "sensors/eu/t10", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 4);
    mqtt_alias_out_clear(&a);
}

static void test_lru_replacement(void **state)
{
    struct mqtt_alias_out a = {0};
    uint16_t x;
    (void)state;
    mqtt_alias_out_reset(&a, 3);
    assert_int_equal(get(&a, "topic/a", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(get(&a, "topic/b", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(get(&a, "topic/c", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 3);
    assert_int_equal(get(&a, "topic/a", &x), MQTT_ALIAS_USE);      /* a is recent again */
    assert_int_equal(get(&a, "topic/d", &x), MQTT_ALIAS_ASSIGN);   /* replaces b */
    assert_int_equal(x, 2);
    assert_int_equal(get(&a, "topic/b", &x), MQTT_ALIAS_ASSIGN);   /* replaces c */
    assert_int_equal(x, 3);
    assert_int_equal(get(&a, "topic/a", &x), MQTT_ALIAS_USE);
    assert_int_equal(x, 1);
    assert_int_equal(get(&a, "topic/d", &x), MQTT_ALIAS_USE);
    assert_int_equal(x, 2);
    assert_int_equal(get(&a, "topic/b", &x), MQTT_ALIAS_USE);
    assert_int_equal(x, 3);
    assert_int_equal(get(&a, "topic/c", &x), MQTT_ALIAS_ASSIGN);   /* replaces a */
    assert_int_equal(x, 1);
    assert_int_equal(a.n, 3);
    mqtt_alias_out_clear(&a);
}

static void test_forget(void **state)
{
    struct mqtt_alias_out a = {0};
    uint16_t x, y;
    (void)state;
    mqtt_alias_out_reset(&a, 4);
    assert_int_equal(get(&a, "keep/one", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(get(&a, "lost/two", &y), MQTT_ALIAS_ASSIGN);
    mqtt_alias_out_forget(&a, y);                /* its PUBLISH never left */
    mqtt_alias_out_forget(&a, y);                /* twice, and unknown ones: no-op */
    mqtt_alias_out_forget(&a, 0);
    mqtt_alias_out_forget(&a, 4);
    assert_int_equal(get(&a, "lost/two", &x), MQTT_ALIAS_ASSIGN);  /* assigned again */
    assert_int_equal(x, y);                                        /* slot re-used */
    assert_int_equal(get(&a, "keep/one", &x), MQTT_ALIAS_USE);
    assert_int_equal(x, 1);
    mqtt_alias_out_forget(&a, 1);
    assert_int_equal(get(&a, "new/three", &x), MQTT_ALIAS_ASSIGN); /* the forgotten first */
    assert_int_equal(x, 1);
    assert_int_equal(a.n, 2);
    mqtt_alias_out_clear(&a);
}

static void test_reset_and_cap(void **state)
{
    struct mqtt_alias_out a = {0};
    char t[32];
    uint16_t x;
    (void)state;
    mqtt_alias_out_reset(&a, 8);
    assert_int_equal(get(&a, "before/reset", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(get(&a, "before/reset", &x), MQTT_ALIAS_USE);
    mqtt_alias_out_reset(&a, 8);                 /* a new connection: nothing known */
    assert_int_equal(get(&a, "other/topic", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 1);
    assert_int_equal(get(&a, "before/reset", &x), MQTT_ALIAS_ASSIGN);
    assert_int_equal(x, 2);
    mqtt_alias_out_reset(&a, 65535);
    assert_int_equal(a.max, MQTT_ALIAS_OUT_CAP);
    for (int i = 0; i < MQTT_ALIAS_OUT_CAP + 100; i++) {
        snprintf(t, sizeof(t), "dev/%d/temp", i);
        assert_int_equal(get(&a, t, &x), MQTT_ALIAS_ASSIGN);
        assert_true(x >= 1 && x <= MQTT_ALIAS_OUT_CAP);
    }
    /* the most recent MQTT_ALIAS_OUT_CAP topics are all known, with distinct aliases */
    {
        static uint8_t seen[MQTT_ALIAS_OUT_CAP + 1];
        for (int i = 100; i < MQTT_ALIAS_OUT_CAP + 100; i++) {
            snprintf(t, sizeof(t), "dev/%d/temp", i);
            assert_int_equal(get(&a, t, &x), MQTT_ALIAS_USE);
            assert_int_equal(seen[x], 0);
            seen[x] = 1;
        }
    }
    snprintf(t, sizeof(t), "dev/%d/temp", 99);
    assert_int_equal(get(&a, t, &x), MQTT_ALIAS_ASSIGN);
    mqtt_alias_out_clear(&a);
}

/* ---- PUBLISH head rewrite ---- */

static size_t encode_publish(uint8_t *buf, size_t cap, const char *topic, uint8_t qos,
                             const uint8_t *payload, size_t plen, const char *ctype,
                             size_t n_user)
{
    struct mqtt_packet p;
    struct mqtt_user_prop ups[4] = {
        {{"k1", 2}, {"v1", 2}}, {{"k2", 2}, {"v2", 2}}, {{"k3", 2}, {"v3", 2}},
        {{"k4", 2}, {"v4", 2}},
    };
    int n;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = qos;
    p.u.publish.packet_id = qos > 0 ? 1 : 0;
    p.u.publish.topic.ptr = topic;
    p.u.publish.topic.len = strlen(topic);
    p.u.publish.payload.ptr = payload;
    p.u.publish.payload.len = plen;
    if (ctype != NULL) {
        p.u.publish.props.content_type.ptr = ctype;
        p.u.publish.props.content_type.len = strlen(ctype);
        mqtt_prop_set(&p.u.publish.props, MQTT_PROP_CONTENT_TYPE);
    }
    if (n_user > 0) {
        p.u.publish.props.user.items = ups;
        p.u.publish.props.user.count = n_user;
        mqtt_prop_set(&p.u.publish.props, MQTT_PROP_USER);
    }
    n = mqtt_encode(&p, MQTT_V5, buf, cap);
    assert_true(n > 0);
    return (size_t)n;
}

/* Rewrite pkt with alias, reassemble head + tail, decode it and check it against the
 * original. */
static void check_rewrite(const uint8_t *pkt, size_t len, uint8_t qos, uint16_t alias,
                          bool with_topic)
{
    static uint8_t whole[70000];
    uint8_t head[300];
    size_t tail = 0, pid_off = 0, hlen, plen = 0;
    struct mqtt_packet orig, got;
    struct mqtt_iter ia = {0}, ib = {0};
    struct mqtt_user_prop ua, ub;

    assert_int_equal(mqtt_decode(pkt, len, MQTT_V5, &orig), 0);
    hlen = mqtt_publish_alias_head(pkt, len, qos > 0, alias, with_topic, head, sizeof(head),
                                   &tail, &pid_off);
    assert_true(hlen > 0 && hlen <= sizeof(head));
    if (qos > 0) {
        head[pid_off] = 0x12;
        head[pid_off + 1] = 0x34;
    }
    memcpy(whole, head, hlen);
    memcpy(whole + hlen, pkt + tail, len - tail);
    assert_int_equal(mqtt_frame(whole, hlen + len - tail, 0, &plen), 1);
    assert_int_equal(plen, hlen + len - tail);
    assert_int_equal(mqtt_decode(whole, plen, MQTT_V5, &got), 0);
    assert_int_equal(got.type, MQTT_PUBLISH);
    assert_int_equal(got.u.publish.qos, qos);
    if (qos > 0) {
        assert_int_equal(got.u.publish.packet_id, 0x1234);
    }
    assert_true(mqtt_prop_has(&got.u.publish.props, MQTT_PROP_TOPIC_ALIAS));
    assert_int_equal(got.u.publish.props.topic_alias, alias);
    if (with_topic) {
        assert_int_equal(got.u.publish.topic.len, orig.u.publish.topic.len);
        assert_memory_equal(got.u.publish.topic.ptr, orig.u.publish.topic.ptr,
                            orig.u.publish.topic.len);
    } else {
        assert_int_equal(got.u.publish.topic.len, 0);
    }
    assert_int_equal(got.u.publish.payload.len, orig.u.publish.payload.len);
    if (orig.u.publish.payload.len > 0) {
        assert_memory_equal(got.u.publish.payload.ptr, orig.u.publish.payload.ptr,
                            orig.u.publish.payload.len);
    }
    assert_int_equal(got.u.publish.props.present & ~(1ull << MQTT_PROP_TOPIC_ALIAS),
                     orig.u.publish.props.present);
    assert_int_equal(got.u.publish.props.content_type.len,
                     orig.u.publish.props.content_type.len);
    assert_int_equal(got.u.publish.props.user.count, orig.u.publish.props.user.count);
    while (mqtt_user_prop_next(&orig.u.publish.props.user, &ia, &ua)) {
        assert_true(mqtt_user_prop_next(&got.u.publish.props.user, &ib, &ub));
        assert_memory_equal(ua.name.ptr, ub.name.ptr, ua.name.len);
        assert_memory_equal(ua.value.ptr, ub.value.ptr, ua.value.len);
    }
}

static void test_head_rewrite(void **state)
{
    static uint8_t pkt[70000], payload[66000];
    size_t len;
    (void)state;
    memset(payload, 'p', sizeof(payload));
    for (uint8_t qos = 0; qos <= 2; qos++) {
        len = encode_publish(pkt, sizeof(pkt), "sensors/eu/t1", qos, payload, 5, NULL, 0);
        check_rewrite(pkt, len, qos, 1, true);
        check_rewrite(pkt, len, qos, 1, false);
        len = encode_publish(pkt, sizeof(pkt), "sensors/eu/t1", qos, payload, 5, "text/plain", 2);
        check_rewrite(pkt, len, qos, 300, true);
        check_rewrite(pkt, len, qos, 65535, false);
        len = encode_publish(pkt, sizeof(pkt), "sensors/eu/t1", qos, NULL, 0, NULL, 0);
        check_rewrite(pkt, len, qos, 7, false);
        /* Remaining Length crossing 128 both ways (1 <-> 2 length bytes) */
        for (size_t pl = 100; pl < 130; pl++) {
            len = encode_publish(pkt, sizeof(pkt), "sensors/eu/t1", qos, payload, pl, NULL, 0);
            check_rewrite(pkt, len, qos, 2, true);
            check_rewrite(pkt, len, qos, 2, false);
        }
        len = encode_publish(pkt, sizeof(pkt), "sensors/eu/t1", qos, payload, 65000, "x", 1);
        check_rewrite(pkt, len, qos, 2, true);
        check_rewrite(pkt, len, qos, 2, false);
    }
    /* property length crossing 128 (1 -> 2 length bytes) */
    {
        char ct[140];
        for (size_t n = 115; n < 130; n++) {
            memset(ct, 'c', n);
            ct[n] = '\0';
            len = encode_publish(pkt, sizeof(pkt), "sensors/eu/t1", 1, payload, 3, ct, 0);
            check_rewrite(pkt, len, 1, 9, true);
            check_rewrite(pkt, len, 1, 9, false);
        }
    }
}

static void test_head_errors(void **state)
{
    static uint8_t pkt[512];
    uint8_t head[64];
    size_t len, tail = 0, pid = 0, need;
    char topic[200];
    (void)state;
    memset(topic, 't', sizeof(topic) - 1);
    topic[sizeof(topic) - 1] = '\0';
    len = encode_publish(pkt, sizeof(pkt), topic, 1, (const uint8_t *)"x", 1, NULL, 0);
    need = mqtt_publish_alias_head(pkt, len, true, 1, true, head, sizeof(head), &tail, &pid);
    assert_true(need > sizeof(head));            /* too small: the size it needs */
    need = mqtt_publish_alias_head(pkt, len, true, 1, false, head, sizeof(head), &tail, &pid);
    assert_true(need > 0 && need <= sizeof(head));
    /* not a PUBLISH, alias 0, truncated, wrong pid assumption */
    pkt[0] = 0x40;
    assert_int_equal(mqtt_publish_alias_head(pkt, len, true, 1, true, head, sizeof(head), &tail,
                                             &pid), 0);
    pkt[0] = 0x32;
    assert_int_equal(mqtt_publish_alias_head(pkt, len, true, 0, true, head, sizeof(head), &tail,
                                             &pid), 0);
    assert_int_equal(mqtt_publish_alias_head(pkt, len - 1, true, 1, true, head, sizeof(head),
                                             &tail, &pid), 0);
    assert_int_equal(mqtt_publish_alias_head(pkt, 1, true, 1, true, head, sizeof(head), &tail,
                                             &pid), 0);
    {
        static const uint8_t bad[] = {0x30, 0x03, 0x00, 0x05, 'a'};   /* topic overruns */
        assert_int_equal(mqtt_publish_alias_head(bad, sizeof(bad), false, 1, true, head,
                                                 sizeof(head), &tail, &pid), 0);
    }
    {
        static const uint8_t noprops[] = {0x30, 0x06, 0x00, 0x04, 'a', '/', 'b', 'c'};
        assert_int_equal(mqtt_publish_alias_head(noprops, sizeof(noprops), false, 1, true,
                                                 head, sizeof(head), &tail, &pid), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled_and_short),
        cmocka_unit_test(test_assign_then_use),
        cmocka_unit_test(test_lru_replacement),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_reset_and_cap),
        cmocka_unit_test(test_head_rewrite),
        cmocka_unit_test(test_head_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * libFuzzer harness for the MQTT 3.1.1 / 5.0 codec (adapters/mqtt/mqtt_codec.c).
 *
 * The input is framed as a stream of packets. Each framed packet is decoded as 3.1.1, as
 * v5, and (with its first byte forced to 0x10) as a CONNECT. Every packet that decodes is
 * encoded again, the result is decoded and compared field by field with the first decode,
 * and a second encode must give identical bytes (the encoding is canonical). Any
 * mismatch aborts. Every v5 PUBLISH without a Topic Alias is also rewritten to carry one
 * (mqtt_publish_alias_head, with and without its topic) and must decode to the same
 * packet plus the alias. The topic helpers are exercised on the input too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/mqtt_alias.h"
#include "adapters/mqtt/mqtt_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    check(a->present == b->present);
    check(a->payload_format == b->payload_format && a->message_expiry == b->message_expiry);
    check(str_eq(a->content_type, b->content_type) && str_eq(a->response_topic, b->response_topic));
    check(bin_eq(a->correlation_data, b->correlation_data));
    check(a->session_expiry == b->session_expiry && a->server_keep_alive == b->server_keep_alive);
    check(str_eq(a->assigned_client_id, b->assigned_client_id));
    check(str_eq(a->auth_method, b->auth_method) && bin_eq(a->auth_data, b->auth_data));
    check(a->request_problem_info == b->request_problem_info);
    check(a->request_response_info == b->request_response_info);
    check(a->will_delay == b->will_delay);
    check(str_eq(a->response_info, b->response_info));
    check(str_eq(a->server_reference, b->server_reference));
    check(str_eq(a->reason_string, b->reason_string));
    check(a->receive_max == b->receive_max && a->topic_alias_max == b->topic_alias_max);
    check(a->topic_alias == b->topic_alias && a->max_qos == b->max_qos);
    check(a->retain_available == b->retain_available);
    check(a->max_packet_size == b->max_packet_size);
    check(a->wildcard_sub_available == b->wildcard_sub_available);
    check(a->sub_id_available == b->sub_id_available);
    check(a->shared_sub_available == b->shared_sub_available);
    check(a->user.count == b->user.count && a->sub_ids.count == b->sub_ids.count);
    struct mqtt_iter ia = {0};
    struct mqtt_iter ib = {0};
    struct mqtt_user_prop ua;
    struct mqtt_user_prop ub;
    size_t n = 0;
    while (mqtt_user_prop_next(&a->user, &ia, &ua)) {
        check(mqtt_user_prop_next(&b->user, &ib, &ub));
        check(str_eq(ua.name, ub.name) && str_eq(ua.value, ub.value));
        n++;
    }
    check(n == a->user.count && !mqtt_user_prop_next(&b->user, &ib, &ub));
    struct mqtt_iter sa = {0};
    struct mqtt_iter sb = {0};
    uint32_t xa;
    uint32_t xb;
    n = 0;
    while (mqtt_sub_id_next(&a->sub_ids, &sa, &xa)) {
        check(mqtt_sub_id_next(&b->sub_ids, &sb, &xb));
        check(xa == xb && xa != 0);
        n++;
    }
    check(n == a->sub_ids.count && !mqtt_sub_id_next(&b->sub_ids, &sb, &xb));
}

static void packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b, enum mqtt_version v)
{
    bool v5 = v == MQTT_V5;
    check(a->type == b->type);
    switch (a->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *x = &a->u.connect;
        const struct mqtt_connect *y = &b->u.connect;
        check(x->protocol_level == y->protocol_level && x->clean_start == y->clean_start);
        check(x->keep_alive == y->keep_alive && str_eq(x->client_id, y->client_id));
        check(x->will == y->will && x->will_qos == y->will_qos);
        check(x->will_retain == y->will_retain && str_eq(x->will_topic, y->will_topic));
        check(bin_eq(x->will_payload, y->will_payload));
        check(x->has_username == y->has_username && str_eq(x->username, y->username));
        check(x->has_password == y->has_password && bin_eq(x->password, y->password));
        props_eq(&x->props, &y->props);
        props_eq(&x->will_props, &y->will_props);
        break;
    }
    case MQTT_CONNACK:
        check(a->u.connack.session_present == b->u.connack.session_present);
        check(a->u.connack.reason == b->u.connack.reason);
        props_eq(&a->u.connack.props, &b->u.connack.props);
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish;
        const struct mqtt_publish *y = &b->u.publish;
        check(x->dup == y->dup && x->qos == y->qos && x->retain == y->retain);
        check(str_eq(x->topic, y->topic) && x->packet_id == y->packet_id);
        check(bin_eq(x->payload, y->payload));
        props_eq(&x->props, &y->props);
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        check(a->u.ack.packet_id == b->u.ack.packet_id && a->u.ack.packet_id != 0);
        check(a->u.ack.reason == b->u.ack.reason);
        props_eq(&a->u.ack.props, &b->u.ack.props);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        bool opts = a->type == MQTT_SUBSCRIBE;
        check(a->u.subscribe.packet_id == b->u.subscribe.packet_id);
        check(a->u.subscribe.subs.count == b->u.subscribe.subs.count);
        check(a->u.subscribe.subs.count > 0);
        props_eq(&a->u.subscribe.props, &b->u.subscribe.props);
        struct mqtt_iter ia = {0};
        struct mqtt_iter ib = {0};
        struct mqtt_subscription sa;
        struct mqtt_subscription sb;
        size_t n = 0;
        while (mqtt_sub_next(&a->u.subscribe.subs, opts, &ia, &sa)) {
            check(mqtt_sub_next(&b->u.subscribe.subs, opts, &ib, &sb));
            check(str_eq(sa.filter, sb.filter) && sa.qos == sb.qos && sa.qos < 3);
            check(sa.no_local == sb.no_local && sa.retain_handling == sb.retain_handling);
            check(sa.retain_as_published == sb.retain_as_published);
            check(v5 || (!sa.no_local && !sa.retain_as_published && sa.retain_handling == 0));
            if (mqtt_parse_shared(sa.filter.ptr, sa.filter.len, NULL, NULL) == 0 || !v5) {
                check(mqtt_topic_filter_valid(sa.filter.ptr, sa.filter.len));
            }
            n++;
        }
        check(n == a->u.subscribe.subs.count);
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        check(a->u.suback.packet_id == b->u.suback.packet_id);
        check(bin_eq(a->u.suback.reasons, b->u.suback.reasons));
        props_eq(&a->u.suback.props, &b->u.suback.props);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        check(a->u.disconnect.reason == b->u.disconnect.reason);
        props_eq(&a->u.disconnect.props, &b->u.disconnect.props);
        break;
    default:
        break;
    }
}

/* The canonical encoding enc (need bytes) of the v5 PUBLISH p, rewritten with an alias:
 * decodes as p with the alias added (and an empty topic unless with_topic). */
static void alias_rewrite(const struct mqtt_packet *p, const uint8_t *enc, size_t need,
                          bool with_topic)
{
    uint8_t small[64], *head = small;
    size_t tail = 0, pid_off = 0, hlen, total;
    uint16_t alias = (uint16_t)(need % 65535 + 1);
    struct mqtt_packet q;
    uint8_t *whole;

    hlen = mqtt_publish_alias_head(enc, need, p->u.publish.qos > 0, alias, with_topic, small,
                                   sizeof(small), &tail, &pid_off);
    if (hlen > sizeof(small)) {
        head = malloc(hlen);
        check(head != NULL);
        check(mqtt_publish_alias_head(enc, need, p->u.publish.qos > 0, alias, with_topic, head,
                                      hlen, &tail, &pid_off) == hlen);
    }
    check(hlen > 0 && tail <= need);
    total = hlen + need - tail;
    whole = malloc(total);
    check(whole != NULL);
    memcpy(whole, head, hlen);
    memcpy(whole + hlen, enc + tail, need - tail);
    check(mqtt_decode(whole, total, MQTT_V5, &q) == 0 && q.type == MQTT_PUBLISH);
    check(mqtt_prop_has(&q.u.publish.props, MQTT_PROP_TOPIC_ALIAS));
    check(q.u.publish.props.topic_alias == alias);
    check(with_topic ? str_eq(q.u.publish.topic, p->u.publish.topic) : q.u.publish.topic.len == 0);
    check(p->u.publish.qos == 0 || (pid_off + 2 <= hlen &&
                                    q.u.publish.packet_id == p->u.publish.packet_id));
    q.u.publish.props.present &= ~(1ull << MQTT_PROP_TOPIC_ALIAS);
    q.u.publish.props.topic_alias = 0;
    q.u.publish.topic = p->u.publish.topic;
    packet_eq(p, &q, MQTT_V5);
    free(whole);
    if (head != small) {
        free(head);
    }
}

static void round_trip(const uint8_t *pkt, size_t len, enum mqtt_version v)
{
    struct mqtt_packet p;
    int rc = mqtt_decode(pkt, len, v, &p);
    if (rc != 0) {
        check(rc < 0 && mqtt_err_reason(rc) >= 0x80);
        return;
    }
    if (p.type == MQTT_CONNECT) {
        v = (enum mqtt_version)p.u.connect.protocol_level;
    }
    if (p.type == MQTT_PUBLISH && p.u.publish.topic.len > 0) {
        check(mqtt_topic_name_valid(p.u.publish.topic.ptr, p.u.publish.topic.len));
    }
    size_t need = mqtt_encoded_size(&p, v);
    check(need > 0 && need <= len + 16);
    uint8_t *out = malloc(need);
    uint8_t *again = malloc(need);
    check(out != NULL && again != NULL);
    check(need < 2 || mqtt_encode(&p, v, out, need - 1) < 0);
    check(mqtt_encode(&p, v, out, need) == (int)need);
    size_t plen = 0;
    check(mqtt_frame(out, need, 0, &plen) == 1 && plen == need);
    struct mqtt_packet q;
    check(mqtt_decode(out, need, v, &q) == 0);
    packet_eq(&p, &q, v);
    check(mqtt_encode(&q, v, again, need) == (int)need);
    check(memcmp(out, again, need) == 0);
    if (v == MQTT_V5 && p.type == MQTT_PUBLISH && p.u.publish.topic.len > 0 &&
        !mqtt_prop_has(&p.u.publish.props, MQTT_PROP_TOPIC_ALIAS)) {
        alias_rewrite(&p, out, need, true);
        alias_rewrite(&p, out, need, false);
    }
    free(out);
    free(again);
}

static void helpers(const uint8_t *data, size_t size)
{
    size_t half = size / 2;
    const char *f = (const char *)data;
    const char *t = (const char *)data + half;
    size_t tlen = size - half;
    bool fv = mqtt_topic_filter_valid(f, half);
    bool tv = mqtt_topic_name_valid(t, tlen);
    if (fv && tv) {
        (void)mqtt_filter_match(f, half, t, tlen);
    }
    if (tv) {
        /* a valid topic name is a valid filter without wildcards and matches itself */
        check(mqtt_topic_filter_valid(t, tlen) && mqtt_filter_match(t, tlen, t, tlen));
    }
    struct mqtt_str g;
    struct mqtt_str rest;
    if (mqtt_parse_shared(f, half, &g, &rest) == 1) {
        check(g.len > 0 && mqtt_topic_filter_valid(rest.ptr, rest.len));
    }
    (void)mqtt_utf8_valid(data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    int packets = 0;
    while (pos < size && packets < 64) {
        size_t plen = 0;
        int fr = mqtt_frame(data + pos, size - pos, 1u << 20, &plen);
        if (fr != 1) {
            check(fr == 0 || fr == MQTT_ERR_MALFORMED || fr == MQTT_ERR_TOO_LARGE);
            break;
        }
        check(plen >= 2 && plen <= size - pos);
        round_trip(data + pos, plen, MQTT_V311);
        round_trip(data + pos, plen, MQTT_V5);
        uint8_t *copy = malloc(plen);
        check(copy != NULL);
        memcpy(copy, data + pos, plen);
        copy[0] = 0x10;
        round_trip(copy, plen, MQTT_V5);
        free(copy);
        pos += plen;
        packets++;
    }
    helpers(data, size);
    return 0;
}

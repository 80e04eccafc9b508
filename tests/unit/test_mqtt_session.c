/*
 * MQTT session logic without sockets: sessions are fed bytes through a fake transport
 * (tests/unit: the transport table of gateway/transport.h) on a real gateway + log in a
 * mkdtemp() directory. Packets are built and parsed with mqtt_codec.
 */
#include "mqtt_fixture.h"

/* ---- tests ---- */

static void test_connect_v5_and_v311(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1);
    do_connect(a, "dev-a", MQTT_V5, true, 0);
    do_connect(b, "dev-b", MQTT_V311, true, 0);
    assert_false(a->closed);
    assert_false(b->closed);
    assert_int_equal(f->b->n_connected, 2);
}

static void test_publish_acked_after_durable(void **state)
{
    struct fixture *f = *state;
    struct fake *c = open_conn(f, 0);
    struct mqtt_packet r;

    do_connect(c, "pub", MQTT_V5, true, 0);
    do_publish(c, MQTT_V5, "sensors/a", "21.5", 1, 42);
    /* flush always: the fsync runs off the loop, so no PUBACK before the loop turns */
    assert_int_equal(evbuffer_get_length(c->out), 0);
    for (int i = 0; i < 2000 && evbuffer_get_length(c->out) == 0; i++) {
        spin(f, 1);
    }
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_PUBACK);
    assert_int_equal(r.u.ack.packet_id, 42);
    assert_int_equal(r.u.ack.reason, 0);
    assert_int_equal(records_in(f, "sensors"), 1);
}

static void test_qos2_no_duplicate(void **state)
{
    struct fixture *f = *state;
    struct fake *c = open_conn(f, 0);
    struct mqtt_packet r, rel;

    do_connect(c, "q2", MQTT_V311, true, 0);
    do_publish(c, MQTT_V311, "q2t/x", "once", 2, 7);
    spin(f, 50);
    do_publish(c, MQTT_V311, "q2t/x", "once", 2, 7);   /* resend before PUBREL */
    spin(f, 50);
    assert_true(next_pkt(c, MQTT_V311, &r));
    assert_int_equal(r.type, MQTT_PUBREC);
    assert_true(next_pkt(c, MQTT_V311, &r));
    assert_int_equal(r.type, MQTT_PUBREC);
    memset(&rel, 0, sizeof(rel));
    rel.type = MQTT_PUBREL;
    rel.u.ack.packet_id = 7;
    send_pkt(c, &rel, MQTT_V311);
    assert_true(next_pkt(c, MQTT_V311, &r));
    assert_int_equal(r.type, MQTT_PUBCOMP);
    assert_int_equal(records_in(f, "q2t"), 1);
    /* after PUBREL the id is free again: a new message with it is stored */
    do_publish(c, MQTT_V311, "q2t/x", "twice", 2, 7);
    spin(f, 50);
    assert_int_equal(records_in(f, "q2t"), 2);
}

static void test_bad_input(void **state)
{
    struct fixture *f = *state;
    struct fake *c = open_conn(f, 0), *d = open_conn(f, 1), *g = open_conn(f, 2);
    struct mqtt_packet r;
    static const uint8_t bad_len[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};

    do_connect(c, "bad1", MQTT_V5, true, 0);
    feed(c, bad_len, sizeof(bad_len));
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_DISCONNECT);
    assert_int_equal(r.u.disconnect.reason, 0x81);
    assert_true(c->closed);

    feed(d, "GET / HTTP/1.1\r\n", 16);            /* not MQTT: closed at once, silently */
    assert_true(d->closed);
    assert_int_equal(evbuffer_get_length(d->out), 0);

    do_connect(g, "bystander", MQTT_V5, true, 0);      /* others unaffected */
    do_publish(g, MQTT_V5, "by/x", "ok", 1, 3);
    for (int i = 0; i < 2000 && evbuffer_get_length(g->out) == 0; i++) {
        spin(f, 1);
    }
    assert_true(next_pkt(g, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_PUBACK);
    assert_false(g->closed);
}

static void test_second_connect(void **state)
{
    struct fixture *f = *state;
    struct fake *c = open_conn(f, 0);
    struct mqtt_packet p, r;

    do_connect(c, "twice", MQTT_V5, true, 0);
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = MQTT_V5;
    p.u.connect.client_id.ptr = "twice";
    p.u.connect.client_id.len = 5;
    send_pkt(c, &p, MQTT_V5);
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_DISCONNECT);
    assert_int_equal(r.u.disconnect.reason, 0x82);
    assert_true(c->closed);
}

static void test_oversize_and_wildcard(void **state)
{
    struct fixture *f = *state;
    struct fake *c = open_conn(f, 0), *d = open_conn(f, 1), *e = open_conn(f, 2);
    struct mqtt_packet r;
    char big[5000];

    do_connect(c, "big", MQTT_V5, true, 0);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    do_publish(c, MQTT_V5, "big/x", big, 0, 0);
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.u.disconnect.reason, 0x95);
    assert_true(c->closed);

    do_connect(d, "wild", MQTT_V5, true, 0);
    {
        /* hand-built: the encoder refuses wildcards in topic names */
        static const uint8_t pkt[] = {0x30, 0x06, 0x00, 0x03, 'a', '/', '#', 0x00};
        feed(d, pkt, sizeof(pkt));
    }
    assert_true(next_pkt(d, MQTT_V5, &r));
    assert_int_equal(r.u.disconnect.reason, 0x90);

    /* 3.1.1: no DISCONNECT from a server, just closed */
    do_connect(e, "wild3", MQTT_V311, true, 0);
    {
        static const uint8_t pkt[] = {0x30, 0x05, 0x00, 0x03, 'a', '/', '+'};
        feed(e, pkt, sizeof(pkt));
    }
    assert_int_equal(evbuffer_get_length(e->out), 0);
    assert_true(e->closed);
}

static void test_fanout_shares_encoding(void **state)
{
    struct fixture *f = *state;
    struct fake *s1 = open_conn(f, 0), *s2 = open_conn(f, 1), *p = open_conn(f, 2);
    struct mqtt_packet r1, r2;

    do_connect(s1, "sub1", MQTT_V311, true, 0);
    do_connect(s2, "sub2", MQTT_V311, true, 0);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(s1, MQTT_V311, "fan/#", 0);
    do_subscribe(s2, MQTT_V311, "fan/+", 0);
    do_publish(p, MQTT_V311, "fan/one", "payload-1", 0, 0);
    for (int i = 0; i < 2000 && evbuffer_get_length(s2->out) == 0; i++) {
        spin(f, 1);
    }
    assert_true(next_pkt(s1, MQTT_V311, &r1));
    assert_int_equal(r1.type, MQTT_PUBLISH);
    assert_memory_equal(r1.u.publish.topic.ptr, "fan/one", 7);
    assert_true(next_pkt(s2, MQTT_V311, &r2));
    assert_memory_equal(r2.u.publish.payload.ptr, "payload-1", 9);
    /* one encoding, shared by reference between both sessions */
    assert_int_equal(s1->n_bufs, 1);
    assert_int_equal(s2->n_bufs, 1);
    assert_ptr_equal(s1->bufs[0], s2->bufs[0]);
}

static void test_slow_subscriber_lags_and_catches_up(void **state)
{
    struct fixture *f = *state;
    struct fake *fast = open_conn(f, 0), *slow = open_conn(f, 1), *p = open_conn(f, 2);
    struct mqtt_packet r;
    int got_fast = 0, got_slow = 0;

    do_connect(fast, "fast", MQTT_V311, true, 0);
    do_connect(slow, "slow", MQTT_V311, true, 0);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(fast, MQTT_V311, "lag/#", 1);
    do_subscribe(slow, MQTT_V311, "lag/#", 1);
    slow->pending = 1000000;           /* over the high-water mark */
    for (int i = 0; i < 20; i++) {
        do_publish(p, MQTT_V311, "lag/x", "m", 1, (uint16_t)(i + 1));
    }
    spin(f, 200);
    while (next_pkt(fast, MQTT_V311, &r)) {
        got_fast += r.type == MQTT_PUBLISH;
    }
    while (next_pkt(slow, MQTT_V311, &r)) {
        got_slow += r.type == MQTT_PUBLISH;
    }
    assert_int_equal(got_fast, 20);    /* not stalled by the slow one */
    assert_int_equal(got_slow, 0);
    slow->pending = 0;
    mqtt_transport_events.drained(slow->sess);
    while (next_pkt(slow, MQTT_V311, &r)) {
        got_slow += r.type == MQTT_PUBLISH;
    }
    assert_int_equal(got_slow, 20);    /* caught up from the log, in one go */
}

static void test_inflight_window(void **state)
{
    struct fixture *f = *state;
    struct fake *s = open_conn(f, 0), *p = open_conn(f, 1);
    struct mqtt_packet r, ack;
    uint16_t pids[8];
    int n = 0;

    f->b->lim.max_inflight = 3;
    do_connect(s, "win", MQTT_V311, true, 0);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(s, MQTT_V311, "win/#", 1);
    for (int i = 0; i < 5; i++) {
        do_publish(p, MQTT_V311, "win/x", "w", 1, (uint16_t)(i + 1));
    }
    spin(f, 200);
    while (next_pkt(s, MQTT_V311, &r)) {
        if (r.type == MQTT_PUBLISH) {
            pids[n++] = r.u.publish.packet_id;
        }
    }
    assert_int_equal(n, 3);            /* bounded by the window */
    memset(&ack, 0, sizeof(ack));
    ack.type = MQTT_PUBACK;
    ack.u.ack.packet_id = pids[0];
    send_pkt(s, &ack, MQTT_V311);
    ack.u.ack.packet_id = pids[1];
    send_pkt(s, &ack, MQTT_V311);
    while (next_pkt(s, MQTT_V311, &r)) {
        n += r.type == MQTT_PUBLISH;
    }
    assert_int_equal(n, 5);            /* the rest after acks */
}

static void test_persistent_resume(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *p = open_conn(f, 1), *b;
    struct mqtt_packet r;
    int got = 0;

    do_connect(a, "keep", MQTT_V5, true, 300);
    do_subscribe(a, MQTT_V5, "keep/#", 1);
    a->closed = true;
    a->notified = true;
    mqtt_transport_events.closed(a->sess);      /* connection lost */
    do_connect(p, "pub", MQTT_V311, true, 0);
    for (int i = 0; i < 3; i++) {
        do_publish(p, MQTT_V311, "keep/x", "k", 1, (uint16_t)(i + 1));
    }
    spin(f, 200);
    b = open_conn(f, 2);
    {
        struct mqtt_packet c;
        memset(&c, 0, sizeof(c));
        c.type = MQTT_CONNECT;
        c.u.connect.protocol_level = MQTT_V5;
        c.u.connect.clean_start = false;
        c.u.connect.client_id.ptr = "keep";
        c.u.connect.client_id.len = 4;
        c.u.connect.props.session_expiry = 300;
        mqtt_prop_set(&c.u.connect.props, MQTT_PROP_SESSION_EXPIRY);
        send_pkt(b, &c, MQTT_V5);
    }
    assert_true(next_pkt(b, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_CONNACK);
    assert_true(r.u.connack.session_present);
    while (next_pkt(b, MQTT_V5, &r)) {
        got += r.type == MQTT_PUBLISH;
    }
    assert_int_equal(got, 3);
    /* the store file exists */
    {
        char path[128];
        snprintf(path, sizeof(path), "%s/__mqtt/6b656570.json", f->dir);
        assert_int_equal(access(path, F_OK), 0);
    }
}

static void test_retained(void **state)
{
    struct fixture *f = *state;
    struct fake *p = open_conn(f, 0), *s = open_conn(f, 1);
    struct mqtt_packet pk, r;

    do_connect(p, "rp", MQTT_V311, true, 0);
    memset(&pk, 0, sizeof(pk));
    pk.type = MQTT_PUBLISH;
    pk.u.publish.qos = 1;
    pk.u.publish.packet_id = 1;
    pk.u.publish.retain = true;
    pk.u.publish.topic.ptr = "ret/a";
    pk.u.publish.topic.len = 5;
    pk.u.publish.payload.ptr = (const uint8_t *)"kept";
    pk.u.publish.payload.len = 4;
    send_pkt(p, &pk, MQTT_V311);
    for (int i = 0; i < 2000 && evbuffer_get_length(p->out) == 0; i++) {
        spin(f, 1);
    }
    assert_true(next_pkt(p, MQTT_V311, &r));
    assert_int_equal(r.type, MQTT_PUBACK);     /* after both appends */
    assert_int_equal(mqtt_retain_count(f->b->retain), 1);
    do_connect(s, "rs", MQTT_V311, true, 0);
    do_subscribe(s, MQTT_V311, "ret/#", 1);
    assert_true(next_pkt(s, MQTT_V311, &r));
    assert_int_equal(r.type, MQTT_PUBLISH);
    assert_true(r.u.publish.retain);
    assert_memory_equal(r.u.publish.payload.ptr, "kept", 4);
}

static void test_burst_with_bad_topic(void **state)
{
    struct fixture *f = *state;
    struct fake *c = open_conn(f, 0);
    struct mqtt_packet p, r;
    uint8_t buf[256];
    int n1, n2;

    do_connect(c, "burst", MQTT_V5, true, 0);
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = 1;
    p.u.publish.packet_id = 1;
    p.u.publish.topic.ptr = "$bad/x";          /* no log topic can be named "$bad" */
    p.u.publish.topic.len = 6;
    n1 = mqtt_encode(&p, MQTT_V5, buf, sizeof(buf));
    p.u.publish.packet_id = 2;
    p.u.publish.topic.ptr = "good/x";
    n2 = mqtt_encode(&p, MQTT_V5, buf + n1, sizeof(buf) - (size_t)n1);
    assert_true(n1 > 0 && n2 > 0);
    feed(c, buf, (size_t)(n1 + n2));            /* one read: one batch */
    for (int i = 0; i < 2000 && records_in(f, "good") == 0; i++) {
        spin(f, 1);
    }
    spin(f, 20);
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_PUBACK);
    assert_int_equal(r.u.ack.packet_id, 1);
    assert_int_equal(r.u.ack.reason, 0x90);     /* refused, with a reason */
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.u.ack.packet_id, 2);
    assert_int_equal(r.u.ack.reason, 0);        /* the good one still stored */
    assert_int_equal(records_in(f, "good"), 1);
}

/* Drain c: count PUBLISH packets, remember payloads (as strings) and packet ids. */
static int take_publishes(struct fake *c, enum mqtt_version v, char (*pay)[16], uint16_t *pids,
                          int cap)
{
    struct mqtt_packet r;
    int n = 0;
    while (next_pkt(c, v, &r)) {
        if (r.type != MQTT_PUBLISH) {
            continue;
        }
        assert_true(n < cap);
        assert_true(r.u.publish.payload.len < 16);
        memcpy(pay[n], r.u.publish.payload.ptr, r.u.publish.payload.len);
        pay[n][r.u.publish.payload.len] = '\0';
        pids[n] = r.u.publish.packet_id;
        n++;
    }
    return n;
}

static void send_puback(struct fake *c, enum mqtt_version v, uint16_t pid)
{
    struct mqtt_packet ack;
    memset(&ack, 0, sizeof(ack));
    ack.type = MQTT_PUBACK;
    ack.u.ack.packet_id = pid;
    send_pkt(c, &ack, v);
}

static void publish_n(struct fixture *f, struct fake *p, const char *topic, int from, int n)
{
    char msg[24];
    for (int i = from; i < from + n; i++) {
        snprintf(msg, sizeof(msg), "m%d", i);
        do_publish(p, MQTT_V311, topic, msg, 1, (uint16_t)(i + 1));
    }
    for (int i = 0; i < 2000 && records_in(f, "sh") < from + n; i++) {
        spin(f, 1);
    }
    spin(f, 20);
}

static void test_shared_round_robin(void **state)
{
    struct fixture *f = *state;
    struct fake *m[3], *p = open_conn(f, 3);
    char pay[3][40][16];
    uint16_t pids[40];
    int got[3], seen[30] = {0};

    for (int i = 0; i < 3; i++) {
        char cid[16];
        snprintf(cid, sizeof(cid), "rr%d", i);
        m[i] = open_conn(f, i);
        do_connect(m[i], cid, MQTT_V311, true, 0);
        do_subscribe(m[i], MQTT_V311, "$share/g/sh/#", i == 0 ? 0 : 1);
    }
    do_connect(p, "pub", MQTT_V311, true, 0);
    spin(f, 5);
    publish_n(f, p, "sh/x", 0, 30);
    for (int i = 0; i < 3; i++) {
        got[i] = take_publishes(m[i], MQTT_V311, pay[i], pids, 40);
        for (int j = 0; j < got[i]; j++) {
            int k = atoi(pay[i][j] + 1);
            assert_true(k >= 0 && k < 30);
            seen[k]++;
            if (i > 0) {
                send_puback(m[i], MQTT_V311, pids[j]);
            }
        }
    }
    assert_int_equal(got[0], 10);       /* one partition, spread per message */
    assert_int_equal(got[1], 10);
    assert_int_equal(got[2], 10);
    for (int k = 0; k < 30; k++) {
        assert_int_equal(seen[k], 1);   /* each exactly once */
    }
    mqtt_subs_commit(f->b->subs);
    assert_int_equal(sl_group_committed(f->gw.log, "mqtt-share.g", "sh", 0), 30);
}

static void test_shared_full_window_skipped(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1), *p = open_conn(f, 2);
    char pay[8][16];
    uint16_t pids[8];
    int n;

    f->b->lim.max_inflight = 1;
    do_connect(a, "wa", MQTT_V311, true, 0);
    do_connect(b, "wb", MQTT_V311, true, 0);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(a, MQTT_V311, "$share/w/sh/#", 1);
    do_subscribe(b, MQTT_V311, "$share/w/sh/#", 1);
    spin(f, 5);
    publish_n(f, p, "sh/x", 0, 1);
    assert_int_equal(take_publishes(a, MQTT_V311, pay, pids, 8), 1);   /* a's window full */
    assert_string_equal(pay[0], "m0");
    publish_n(f, p, "sh/x", 1, 2);
    n = take_publishes(b, MQTT_V311, pay, pids, 8);
    assert_int_equal(n, 1);                                  /* a skipped, b took m1 */
    assert_string_equal(pay[0], "m1");
    assert_int_equal(take_publishes(a, MQTT_V311, pay + 1, pids + 1, 7), 0);
    send_puback(b, MQTT_V311, pids[0]);                      /* m2 waited for a window */
    assert_int_equal(take_publishes(b, MQTT_V311, pay, pids, 8), 1);
    assert_string_equal(pay[0], "m2");
    assert_int_equal(take_publishes(a, MQTT_V311, pay, pids, 8), 0);
    /* over the high-water mark counts as full too */
    send_puback(b, MQTT_V311, pids[0]);
    b->pending = 1000000;
    publish_n(f, p, "sh/x", 3, 1);
    assert_int_equal(take_publishes(b, MQTT_V311, pay, pids, 8), 0);
    mqtt_subs_commit(f->b->subs);
    assert_int_equal(sl_group_committed(f->gw.log, "mqtt-share.w", "sh", 0), 0);  /* m0 */
}

static void test_shared_disconnect_redelivers(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *b = open_conn(f, 1), *p = open_conn(f, 2);
    char pa[8][16], pb[8][16];
    uint16_t ia[8], ib[8];
    int na, nb;

    do_connect(a, "da", MQTT_V5, true, 300);          /* persistent: stays a member */
    do_connect(b, "db", MQTT_V311, true, 0);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(a, MQTT_V5, "$share/d/sh/#", 1);
    do_subscribe(b, MQTT_V311, "$share/d/sh/#", 1);
    spin(f, 5);
    publish_n(f, p, "sh/x", 0, 4);
    na = take_publishes(a, MQTT_V5, pa, ia, 8);
    nb = take_publishes(b, MQTT_V311, pb, ib, 8);
    assert_int_equal(na, 2);
    assert_int_equal(nb, 2);
    assert_string_equal(pa[0], "m0");
    assert_string_equal(pa[1], "m2");
    send_puback(a, MQTT_V5, ia[0]);                    /* m0 acked, m2 not */
    for (int i = 0; i < nb; i++) {
        send_puback(b, MQTT_V311, ib[i]);
    }
    a->closed = true;
    a->notified = true;
    mqtt_transport_events.closed(a->sess);             /* connection lost */
    spin(f, 20);
    nb = take_publishes(b, MQTT_V311, pb, ib, 8);
    assert_int_equal(nb, 1);                           /* m2 went to b, once */
    assert_string_equal(pb[0], "m2");
    mqtt_subs_commit(f->b->subs);
    assert_int_equal(sl_group_committed(f->gw.log, "mqtt-share.d", "sh", 0), 2);
    send_puback(b, MQTT_V311, ib[0]);
    mqtt_subs_commit(f->b->subs);
    assert_int_equal(sl_group_committed(f->gw.log, "mqtt-share.d", "sh", 0), 4);
    /* a comes back: no resend of m2 (b has it), new messages spread again */
    {
        struct fake *a2 = open_conn(f, 3);
        do_connect(a2, "da", MQTT_V5, false, 300);
        spin(f, 5);
        assert_int_equal(take_publishes(a2, MQTT_V5, pa, ia, 8), 0);
        publish_n(f, p, "sh/x", 4, 2);
        na = take_publishes(a2, MQTT_V5, pa, ia, 8);
        nb = take_publishes(b, MQTT_V311, pb, ib, 8);
        assert_int_equal(na + nb, 2);
        assert_int_equal(na, 1);
    }
}

static void test_shared_restart_resumes(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *p = open_conn(f, 1), *c;
    struct mqtt_limits lim;
    char pay[8][16];
    uint16_t pids[8];
    char *err = NULL;
    int n;

    do_connect(a, "ra", MQTT_V311, true, 0);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(a, MQTT_V311, "$share/r/sh/#", 1);
    spin(f, 5);
    publish_n(f, p, "sh/x", 0, 5);
    n = take_publishes(a, MQTT_V311, pay, pids, 8);
    assert_int_equal(n, 5);
    send_puback(a, MQTT_V311, pids[0]);
    send_puback(a, MQTT_V311, pids[1]);
    send_puback(a, MQTT_V311, pids[3]);                /* m2 and m4 unacknowledged */
    mqtt_subs_commit(f->b->subs);
    assert_int_equal(sl_group_committed(f->gw.log, "mqtt-share.r", "sh", 0), 2);
    /* restart the listener */
    lim = f->b->lim;
    mqtt_broker_free(&f->b);
    assert_int_equal(sl_group_committed(f->gw.log, "mqtt-share.r", "sh", 0), 2);
    f->b = mqtt_broker_new(&f->gw, &lim, f->dir, &err);
    assert_non_null(f->b);
    c = open_conn(f, 2);
    do_connect(c, "rc", MQTT_V311, true, 0);
    do_subscribe(c, MQTT_V311, "$share/r/sh/#", 1);
    spin(f, 20);
    n = take_publishes(c, MQTT_V311, pay, pids, 8);
    assert_int_equal(n, 3);                            /* at least once: from m2 on */
    assert_string_equal(pay[0], "m2");
    assert_string_equal(pay[1], "m3");
    assert_string_equal(pay[2], "m4");
}

/* ---- outbound topic aliases ---- */

/* CONNECT v5 with Topic Alias Maximum alias_max (0: property absent) and Maximum Packet
 * Size max_packet (0: absent). */
static void do_connect_alias(struct fake *c, const char *cid, bool clean, uint32_t expiry,
                             uint16_t alias_max, uint32_t max_packet, bool present)
{
    struct mqtt_packet p, r;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = MQTT_V5;
    p.u.connect.clean_start = clean;
    p.u.connect.keep_alive = 30;
    p.u.connect.client_id.ptr = cid;
    p.u.connect.client_id.len = strlen(cid);
    if (expiry) {
        p.u.connect.props.session_expiry = expiry;
        mqtt_prop_set(&p.u.connect.props, MQTT_PROP_SESSION_EXPIRY);
    }
    if (alias_max) {
        p.u.connect.props.topic_alias_max = alias_max;
        mqtt_prop_set(&p.u.connect.props, MQTT_PROP_TOPIC_ALIAS_MAX);
    }
    if (max_packet) {
        p.u.connect.props.max_packet_size = max_packet;
        mqtt_prop_set(&p.u.connect.props, MQTT_PROP_MAX_PACKET_SIZE);
    }
    send_pkt(c, &p, MQTT_V5);
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_CONNACK);
    assert_int_equal(r.u.connack.reason, 0);
    assert_int_equal(r.u.connack.session_present, present);
}

/* Publish (QoS 1, from a 3.1.1 client) and wait until the log holds `total` records of
 * log topic root. */
static void pub_stored(struct fixture *f, struct fake *p, const char *root, const char *topic,
                       const char *msg, uint16_t pid, int64_t total)
{
    do_publish(p, MQTT_V311, topic, msg, 1, pid);
    for (int i = 0; i < 2000 && records_in(f, root) < total; i++) {
        spin(f, 1);
    }
    spin(f, 5);
    evbuffer_drain(p->out, evbuffer_get_length(p->out));     /* the PUBACKs */
}

/* The next PUBLISH on c: its topic (copied into topic), alias (0 none), dup, packet id. */
static void expect_publish(struct fake *c, const char *topic, uint16_t alias, const char *data)
{
    struct mqtt_packet r;
    assert_true(next_pkt(c, MQTT_V5, &r));
    assert_int_equal(r.type, MQTT_PUBLISH);
    assert_int_equal(r.u.publish.topic.len, strlen(topic));
    assert_memory_equal(r.u.publish.topic.ptr, topic, strlen(topic));
    if (alias == 0) {
        assert_false(mqtt_prop_has(&r.u.publish.props, MQTT_PROP_TOPIC_ALIAS));
    } else {
        assert_true(mqtt_prop_has(&r.u.publish.props, MQTT_PROP_TOPIC_ALIAS));
        assert_int_equal(r.u.publish.props.topic_alias, alias);
    }
    assert_int_equal(r.u.publish.payload.len, strlen(data));
    assert_memory_equal(r.u.publish.payload.ptr, data, strlen(data));
}

static void test_alias_out_assign_and_reuse(void **state)
{
    struct fixture *f = *state;
    struct fake *al = open_conn(f, 0), *v5 = open_conn(f, 1), *v3 = open_conn(f, 2);
    struct fake *p = open_conn(f, 3);
    struct mqtt_packet r;

    do_connect_alias(al, "al", true, 0, 4, 0, false);
    do_connect(v5, "plain5", MQTT_V5, true, 0);
    do_connect(v3, "plain3", MQTT_V311, true, 0);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(al, MQTT_V5, "al/#", 0);
    do_subscribe(v5, MQTT_V5, "al/#", 0);
    do_subscribe(v3, MQTT_V311, "al/#", 0);
    pub_stored(f, p, "al", "al/t1", "a", 1, 1);
    pub_stored(f, p, "al", "al/t2", "b", 2, 2);
    pub_stored(f, p, "al", "al/t1", "c", 3, 3);
    pub_stored(f, p, "al", "al/t2", "d", 4, 4);
    pub_stored(f, p, "al", "al/t1", "e", 5, 5);
    pub_stored(f, p, "al", "al", "f", 6, 6);          /* short topic: no alias */
    expect_publish(al, "al/t1", 1, "a");               /* assignment: topic + alias */
    expect_publish(al, "al/t2", 2, "b");
    expect_publish(al, "", 1, "c");                    /* later: empty topic + alias */
    expect_publish(al, "", 2, "d");
    expect_publish(al, "", 1, "e");
    expect_publish(al, "al", 0, "f");
    assert_false(next_pkt(al, MQTT_V5, &r));
    /* v5 without Topic Alias Maximum and 3.1.1: full topics, no alias property */
    expect_publish(v5, "al/t1", 0, "a");
    expect_publish(v5, "al/t2", 0, "b");
    expect_publish(v5, "al/t1", 0, "c");
    for (int i = 0; i < 3; i++) {
        assert_true(next_pkt(v3, MQTT_V311, &r));
        assert_int_equal(r.u.publish.topic.len, 5);
        assert_memory_equal(r.u.publish.topic.ptr, i % 2 ? "al/t2" : "al/t1", 5);
    }
    /* the fast path is intact: one shared encoding per version, by reference; the alias
     * client copies small packets whole (cheaper than a second, by-reference write) */
    assert_int_equal(v5->n_bufs, 6);
    assert_int_equal(v3->n_bufs, 6);
    assert_int_equal(al->n_bufs, 1);                  /* only "al", sent without alias */
    assert_ptr_equal(al->bufs[0], v5->bufs[5]);
    for (size_t i = 0; i < 6; i++) {
        assert_ptr_not_equal(v3->bufs[i], v5->bufs[i]);
    }
    /* a large one: the alias client sends the v5 encoding's properties and payload by
     * reference after its own head */
    {
        char big[1000];
        memset(big, 'B', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        pub_stored(f, p, "al", "al/t2", big, 7, 7);
        expect_publish(al, "", 2, big);
        expect_publish(v5, "al/t2", 0, "d");
        expect_publish(v5, "al/t1", 0, "e");
        expect_publish(v5, "al", 0, "f");
        expect_publish(v5, "al/t2", 0, big);
        assert_int_equal(al->n_bufs, 2);
        assert_int_equal(v5->n_bufs, 7);
        assert_ptr_equal(al->bufs[1], v5->bufs[6]);
    }
}

static void test_alias_out_replacement(void **state)
{
    struct fixture *f = *state;
    struct fake *al = open_conn(f, 0), *p = open_conn(f, 1);
    static const char *const topics[] = {"rep/aa", "rep/bb", "rep/aa", "rep/cc", "rep/bb",
                                         "rep/aa", "rep/cc"};
    /* max 2, least recently used replaced: aa->1, bb->2, aa (1), cc replaces bb (2),
     * bb replaces aa (1), aa replaces cc (2), cc replaces bb (1) */
    static const char *const want_topic[] = {"rep/aa", "rep/bb", "", "rep/cc", "rep/bb",
                                             "rep/aa", "rep/cc"};
    static const uint16_t want_alias[] = {1, 2, 1, 2, 1, 2, 1};
    char msg[16];

    do_connect_alias(al, "rep", true, 0, 2, 0, false);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(al, MQTT_V5, "rep/#", 1);
    for (int i = 0; i < 7; i++) {
        snprintf(msg, sizeof(msg), "m%d", i);
        pub_stored(f, p, "rep", topics[i], msg, (uint16_t)(i + 1), i + 1);
    }
    for (int i = 0; i < 7; i++) {
        snprintf(msg, sizeof(msg), "m%d", i);
        expect_publish(al, want_topic[i], want_alias[i], msg);
    }
}

static void test_alias_out_reset_and_full_topic_resend(void **state)
{
    struct fixture *f = *state;
    struct fake *a = open_conn(f, 0), *p = open_conn(f, 1), *b, *c;
    struct mqtt_packet r;
    uint16_t pids[4];

    do_connect_alias(a, "keepal", true, 300, 8, 0, false);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(a, MQTT_V5, "ka/#", 1);
    pub_stored(f, p, "ka", "ka/x", "one", 1, 1);
    pub_stored(f, p, "ka", "ka/x", "two", 2, 2);
    expect_publish(a, "ka/x", 1, "one");
    expect_publish(a, "", 1, "two");                 /* both left unacknowledged */
    a->closed = true;
    a->notified = true;
    mqtt_transport_events.closed(a->sess);            /* connection lost */

    /* reconnect without aliases: DUP resends with the full topic, no alias property */
    b = open_conn(f, 2);
    do_connect_alias(b, "keepal", false, 300, 0, 0, true);
    for (int i = 0; i < 2; i++) {
        assert_true(next_pkt(b, MQTT_V5, &r));
        assert_int_equal(r.type, MQTT_PUBLISH);
        assert_true(r.u.publish.dup);
        assert_int_equal(r.u.publish.topic.len, 4);
        assert_memory_equal(r.u.publish.topic.ptr, "ka/x", 4);
        assert_false(mqtt_prop_has(&r.u.publish.props, MQTT_PROP_TOPIC_ALIAS));
        pids[i] = r.u.publish.packet_id;
    }
    assert_false(next_pkt(b, MQTT_V5, &r));
    pub_stored(f, p, "ka", "ka/x", "three", 3, 3);
    expect_publish(b, "ka/x", 0, "three");

    /* take-over by a connection with aliases while b is still connected: the resends
     * carry full topics again, then the table starts empty */
    c = open_conn(f, 3);
    do_connect_alias(c, "keepal", false, 300, 8, 0, true);
    assert_true(b->closed);
    for (int i = 0; i < 3; i++) {
        assert_true(next_pkt(c, MQTT_V5, &r));
        assert_int_equal(r.type, MQTT_PUBLISH);
        assert_true(r.u.publish.dup);
        assert_memory_equal(r.u.publish.topic.ptr, "ka/x", 4);
        assert_false(mqtt_prop_has(&r.u.publish.props, MQTT_PROP_TOPIC_ALIAS));
        if (i < 2) {
            assert_int_equal(r.u.publish.packet_id, pids[i]);
        }
    }
    pub_stored(f, p, "ka", "ka/x", "four", 4, 4);
    pub_stored(f, p, "ka", "ka/x", "five", 5, 5);
    expect_publish(c, "ka/x", 1, "four");             /* assigned anew on this connection */
    expect_publish(c, "", 1, "five");
}

static void test_alias_out_size_limit(void **state)
{
    struct fixture *f = *state;
    struct fake *al = open_conn(f, 0), *p = open_conn(f, 1);
    /* "lim/topic" QoS 0 PUBLISH of 10 bytes of payload: 2 + 2 + 9 + 1 + 10 = 24 bytes;
     * with the alias assignment 27. A client limit of 24 takes it only without alias. */
    do_connect_alias(al, "lim", true, 0, 8, 24, false);
    do_connect(p, "pub", MQTT_V311, true, 0);
    do_subscribe(al, MQTT_V5, "lim/#", 0);
    do_publish(p, MQTT_V311, "lim/topic", "0123456789", 0, 0);
    for (int i = 0; i < 2000 && evbuffer_get_length(al->out) == 0; i++) {
        spin(f, 1);
    }
    expect_publish(al, "lim/topic", 0, "0123456789");
    do_publish(p, MQTT_V311, "lim/topic", "abcdefghij", 0, 0);
    for (int i = 0; i < 2000 && evbuffer_get_length(al->out) == 0; i++) {
        spin(f, 1);
    }
    expect_publish(al, "lim/topic", 0, "abcdefghij");  /* never an unknown alias */
    do_publish(p, MQTT_V311, "lim/topic", "short", 0, 0);
    for (int i = 0; i < 2000 && evbuffer_get_length(al->out) == 0; i++) {
        spin(f, 1);
    }
    expect_publish(al, "lim/topic", 1, "short");       /* fits with the assignment */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_v5_and_v311, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_acked_after_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_no_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_and_wildcard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fanout_shares_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_subscriber_lags_and_catches_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_inflight_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistent_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_with_bad_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_full_window_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_disconnect_redelivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_restart_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_out_assign_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_out_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_out_reset_and_full_topic_resend, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_alias_out_size_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

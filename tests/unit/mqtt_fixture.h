/*
 * The MQTT session tests' fixture (tests/unit/test_mqtt_session.c, test_mqtt_connect.c):
 * a fake transport that collects what a session writes, and a real gateway + log + broker
 * in a mkdtemp() directory; helpers build packets with mqtt_codec, feed them in and read
 * the answers back. Test-only; every function is static inline.
 */
#ifndef SLUICE_TESTS_UNIT_MQTT_FIXTURE_H
#define SLUICE_TESTS_UNIT_MQTT_FIXTURE_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include "adapters/mqtt/mqtt.h"
#include "adapters/mqtt/mqtt_codec.h"
#include "adapters/mqtt/mqtt_retain.h"
#include "adapters/mqtt/mqtt_session.h"
#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/config.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "routing/route.h"
#include "fixture.h"

/* ---- fake transport ---- */

struct fake {
    struct evbuffer *out;
    struct evbuffer *in;
    struct sl_buf *bufs[64];      /* shared buffers handed to write_buf */
    size_t n_bufs;
    size_t pending;               /* what pending() reports */
    bool closed;
    bool paused;
    bool notified;                /* closed event delivered */
    void *sess;
};

static inline int f_write(void *conn, const void *d, size_t n)
{
    struct fake *f = conn;
    return f->closed ? -EPIPE : evbuffer_add(f->out, d, n);
}

static inline int f_write_buf(void *conn, struct sl_buf *b, size_t off, size_t n)
{
    struct fake *f = conn;
    if (f->closed) {
        return -EPIPE;
    }
    if (f->n_bufs < 64) {
        f->bufs[f->n_bufs++] = sl_buf_ref(b);
    }
    return evbuffer_add(f->out, b->data + off, n);
}

static inline size_t f_pending(void *conn)
{
    return ((struct fake *)conn)->pending;
}

static inline void f_pause(void *conn, bool p)
{
    ((struct fake *)conn)->paused = p;
}

static inline void f_close(void *conn, bool flush)
{
    (void)flush;
    ((struct fake *)conn)->closed = true;
}

static inline void f_rebind(void *conn, void *sess)
{
    ((struct fake *)conn)->sess = sess;
}

static inline const char *f_peer(void *conn)
{
    (void)conn;
    return "fake:1";
}

static const struct sl_transport_ops fake_ops = {
    .write = f_write, .write_buf = f_write_buf, .pending = f_pending, .pause_read = f_pause,
    .close = f_close, .rebind = f_rebind, .peer = f_peer,
};

/* ---- fixture ---- */

#define N_CONNS 6

struct fixture {
    char dir[64];
    struct sl_gateway gw;
    struct sl_config *cfg;
    struct mqtt_broker *b;
    struct fake conns[N_CONNS];
};

static inline int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct mqtt_limits lim;
    char *err = NULL;

    assert_non_null(fx_tmpdir(f->dir, "/tmp/sl_mqtt_"));
    fx_gw_open(&f->gw, &f->cfg, f->dir, 1);
    mqtt_limits_defaults(&lim);
    lim.max_packet_size = 4096;
    lim.high_water = 1000;
    f->b = mqtt_broker_new(&f->gw, &lim, f->dir, &err);
    assert_non_null(f->b);
    for (int i = 0; i < N_CONNS; i++) {
        f->conns[i].out = evbuffer_new();
        f->conns[i].in = evbuffer_new();
    }
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fixture *f = *state;
    /* what the TCP transport does after close(): deliver the closed event */
    for (int i = 0; i < N_CONNS; i++) {
        if (f->conns[i].sess != NULL && f->conns[i].closed && !f->conns[i].notified) {
            f->conns[i].notified = true;
            mqtt_transport_events.closed(f->conns[i].sess);
        }
    }
    mqtt_broker_free(&f->b);
    assert_null(f->b);
    for (int i = 0; i < N_CONNS; i++) {
        for (size_t j = 0; j < f->conns[i].n_bufs; j++) {
            sl_buf_unref(&f->conns[i].bufs[j]);
        }
        evbuffer_free(f->conns[i].out);
        evbuffer_free(f->conns[i].in);
    }
    fx_gw_close(&f->gw, &f->cfg);
    /* no sl_metrics_reset(): publish.c caches its per-listener counters */
    fx_rm_tree(f->dir);
    free(f);
    return 0;
}

static inline void spin(struct fixture *f, int ms)
{
    for (int i = 0; i < ms; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

/* A session on connection i. */
static inline struct fake *open_conn(struct fixture *f, int i)
{
    struct fake *c = &f->conns[i];
    struct sl_transport t = {.ops = &fake_ops, .conn = c};
    c->sess = mqtt_session_new(f->b, &t);
    assert_non_null(c->sess);
    return c;
}

static inline void feed(struct fake *c, const void *bytes, size_t n)
{
    evbuffer_add(c->in, bytes, n);
    mqtt_transport_events.data(c->sess, c->in);
}

static inline void send_pkt(struct fake *c, const struct mqtt_packet *p, enum mqtt_version v)
{
    static uint8_t buf[8192];
    int n = mqtt_encode(p, v, buf, sizeof(buf));
    assert_true(n > 0);
    feed(c, buf, (size_t)n);
}

/* Take the next packet written to c; false when there is none. Decoded views point into
 * raw (static storage: valid until the next call). */
static inline bool next_pkt(struct fake *c, enum mqtt_version v, struct mqtt_packet *out)
{
    static uint8_t raw[8192];
    size_t len = evbuffer_get_length(c->out), plen = 0;
    if (len == 0) {
        return false;
    }
    if (len > sizeof(raw)) {
        len = sizeof(raw);
    }
    evbuffer_copyout(c->out, raw, len);
    if (mqtt_frame(raw, len, 0, &plen) != 1) {
        return false;
    }
    evbuffer_drain(c->out, plen);
    assert_int_equal(mqtt_decode(raw, plen, v, out), 0);
    return true;
}

/* CONNECT (reason 0 asserted); returns the CONNACK's properties. */
static inline struct mqtt_props do_connect(struct fake *c, const char *cid,
                                           enum mqtt_version v, bool clean, uint32_t expiry)
{
    struct mqtt_packet p, r;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = (uint8_t)v;
    p.u.connect.clean_start = clean;
    p.u.connect.keep_alive = 30;
    p.u.connect.client_id.ptr = cid;
    p.u.connect.client_id.len = strlen(cid);
    if (v == MQTT_V5 && expiry) {
        p.u.connect.props.session_expiry = expiry;
        mqtt_prop_set(&p.u.connect.props, MQTT_PROP_SESSION_EXPIRY);
    }
    send_pkt(c, &p, v);
    assert_true(next_pkt(c, v, &r));
    assert_int_equal(r.type, MQTT_CONNACK);
    assert_int_equal(r.u.connack.reason, 0);
    return r.u.connack.props;
}

static inline void do_publish(struct fake *c, enum mqtt_version v, const char *topic,
                              const char *data, uint8_t qos, uint16_t pid)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = qos;
    p.u.publish.packet_id = pid;
    p.u.publish.topic.ptr = topic;
    p.u.publish.topic.len = strlen(topic);
    p.u.publish.payload.ptr = (const uint8_t *)data;
    p.u.publish.payload.len = strlen(data);
    send_pkt(c, &p, v);
}

static inline void do_subscribe(struct fake *c, enum mqtt_version v, const char *filter,
                                uint8_t qos)
{
    struct mqtt_packet p, r;
    struct mqtt_subscription s = {.filter = {filter, strlen(filter)}, .qos = qos};
    memset(&p, 0, sizeof(p));
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.packet_id = 1;
    p.u.subscribe.subs.items = &s;
    p.u.subscribe.subs.count = 1;
    send_pkt(c, &p, v);
    assert_true(next_pkt(c, v, &r));
    assert_int_equal(r.type, MQTT_SUBACK);
    assert_int_equal(r.u.suback.reasons.len, 1);
    assert_int_equal(r.u.suback.reasons.ptr[0], qos);
}

static inline int64_t records_in(struct fixture *f, const char *topic)
{
    int64_t total = 0;
    int32_t n = sl_log_partitions(f->gw.log, topic);
    for (int32_t p = 0; p < n; p++) {
        total += sl_log_offset_for_time(f->gw.log, topic, p, INT64_MAX);
    }
    return total;
}

#endif

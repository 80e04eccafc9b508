/*
 * libFuzzer target: MQTT session packet handling. Each input is fed (in two chunks) to a
 * fresh session over a fake transport, on one broker + log shared by all runs (in a
 * mkdtemp() directory, flush: os), so state built by earlier inputs (subscriptions,
 * retained messages, stored sessions) is exercised too. Whatever comes back must be a
 * sequence of well-formed MQTT packets; to a v5 client every PUBLISH must decode, and its
 * topic aliases must be consistent (within the client's maximum, an empty topic only
 * with an alias assigned earlier on this connection, none on a DUP resend).
 */
#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "adapters/mqtt/mqtt_codec.h"
#include "adapters/mqtt/mqtt_session.h"
#include "gateway/config.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "routing/route.h"

struct fake {
    struct evbuffer *out;
    bool closed;
    void *sess;
};

static int f_write(void *c, const void *d, size_t n)
{
    struct fake *f = c;
    return f->closed ? -EPIPE : evbuffer_add(f->out, d, n);
}

static int f_write_buf(void *c, struct sl_buf *b, size_t off, size_t n)
{
    return f_write(c, b->data + off, n);
}

static size_t f_pending(void *c)
{
    return evbuffer_get_length(((struct fake *)c)->out);
}

static void f_pause(void *c, bool p)
{
    (void)c;
    (void)p;
}

static void f_close(void *c, bool flush)
{
    (void)flush;
    ((struct fake *)c)->closed = true;
}

static void f_rebind(void *c, void *s)
{
    ((struct fake *)c)->sess = s;
}

static const char *f_peer(void *c)
{
    (void)c;
    return "fuzz";
}

static const struct sl_transport_ops ops = {
    .write = f_write, .write_buf = f_write_buf, .pending = f_pending, .pause_read = f_pause,
    .close = f_close, .rebind = f_rebind, .peer = f_peer,
};

static struct sl_gateway gw;
static struct mqtt_broker *broker;
static char dir[] = "/tmp/sl_fuzz_mqtt_XXXXXX";

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* At exit: free everything and remove the directory. */
static void fini(void)
{
    /* The daemon's order: the log closes first (its pending append callbacks still
     * reach the broker), then the adapter's state is freed. */
    sl_log_close(&gw.log);
    mqtt_broker_free(&broker);
    rt_table_free(&gw.routes);
    sl_config_free(&gw.cfg);
    event_base_free(gw.base);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
    struct sl_log_options lo;
    struct mqtt_limits lim;
    struct sl_config *cfg;
    char *err = NULL;

    if (mkdtemp(dir) == NULL) {
        abort();
    }
    evthread_use_pthreads();
    gw.base = event_base_new();
    cfg = sl_config_defaults();
    free(cfg->data_dir);
    cfg->data_dir = strdup(dir);
    cfg->topic_defaults.flush = SL_FLUSH_OS;
    gw.cfg = cfg;
    sl_gateway_log_options(cfg, &lo);
    gw.log = sl_log_open(gw.base, &lo, &err);
    gw.routes = rt_table_new();
    mqtt_limits_defaults(&lim);
    lim.max_packet_size = 65536;
    broker = gw.log != NULL ? mqtt_broker_new(&gw, &lim, dir, &err) : NULL;
    if (broker == NULL) {
        abort();
    }
    atexit(fini);
}

/* Topic aliases the server assigned on the current connection (lengths of their topics
 * + 1; 0 unassigned). The topics themselves need not be kept: the check is that an
 * empty topic only ever uses an assigned alias. */
static uint32_t aliases_seen[MQTT_ALIAS_OUT_CAP + 1];

/* A PUBLISH to a v5 client: decodes, and its alias use is consistent. max: the
 * session's alias maximum (it never grows during a connection). */
static void check_publish_v5(const uint8_t *pkt, size_t len, uint16_t max)
{
    struct mqtt_packet p;
    const struct mqtt_publish *pb = &p.u.publish;
    if (mqtt_decode(pkt, len, MQTT_V5, &p) != 0 || p.type != MQTT_PUBLISH) {
        abort();
    }
    if (!mqtt_prop_has(&pb->props, MQTT_PROP_TOPIC_ALIAS)) {
        if (pb->topic.len == 0) {
            abort();
        }
        return;
    }
    if (pb->dup || pb->props.topic_alias == 0 || pb->props.topic_alias > max) {
        abort();
    }
    if (pb->topic.len > 0) {
        aliases_seen[pb->props.topic_alias] = (uint32_t)pb->topic.len + 1;
    } else if (aliases_seen[pb->props.topic_alias] == 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct fake f = {0};
    struct evbuffer *in;
    struct sl_transport t = {.ops = &ops, .conn = &f};
    size_t half = size / 2;

    if (!ready) {
        init();
        ready = true;
    }
    f.out = evbuffer_new();
    in = evbuffer_new();
    f.sess = mqtt_session_new(broker, &t);
    evbuffer_add(in, data, half);
    mqtt_transport_events.data(f.sess, in);
    if (!f.closed) {
        evbuffer_add(in, data + half, size - half);
        mqtt_transport_events.data(f.sess, in);
    }
    for (int i = 0; i < 4; i++) {
        event_base_loop(gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    if (!f.closed) {
        mqtt_transport_events.drained(f.sess);
    }
    /* what comes back is well-formed MQTT (v5 decoding accepts every server packet we
     * send in either version's framing) */
    {
        size_t len = evbuffer_get_length(f.out);
        uint8_t *out = evbuffer_pullup(f.out, -1);
        size_t off = 0, plen;
        const struct mqtt_session *s = f.sess;
        bool v5 = s != NULL && s->version == MQTT_V5;
        while (off < len && mqtt_frame(out + off, len - off, 0, &plen) == 1) {
            if (v5 && (out[off] >> 4) == MQTT_PUBLISH) {
                check_publish_v5(out + off, plen, s->alias_out.max);
            }
            off += plen;
        }
        if (off != len) {
            abort();
        }
        memset(aliases_seen, 0, sizeof(aliases_seen));
    }
    f.closed = true;
    mqtt_transport_events.closed(f.sess);
    for (int i = 0; i < 2; i++) {
        event_base_loop(gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    evbuffer_free(in);
    evbuffer_free(f.out);
    return 0;
}

/*
 * mqtt_load: an MQTT 3.1.1 load generator on libevent (packets built and parsed with
 * sluice's mqtt_codec). Runs against any broker; tests/bench/mqtt_bench.sh runs it
 * against mosquitto and sluice side by side.
 *
 *   mqtt_load -p PORT -m pub    -c CONNS -n MSGS -q QOS -s SIZE [-r RATE] [-w WINDOW]
 *       publishers; throughput = messages / time until the last PUBACK (QoS 1) or the
 *       PINGRESP that follows the last QoS 0 publish (the broker read them all);
 *       with -r, a fixed total rate. Latency: PUBLISH -> PUBACK (QoS 1).
 *   mqtt_load -p PORT -m fanout -S SUBS -n MSGS -q QOS -s SIZE -r RATE
 *       SUBS subscribers on one topic, one publisher at RATE msg/s; reports delivered
 *       messages/s and publish -> delivery latency percentiles.
 *   mqtt_load -p PORT -m idle   -c CONNS -d SECONDS
 *       CONNS connected idle clients held for SECONDS (the script reads the broker's RSS).
 *
 * Output: one line of key=value pairs. Every loop is bounded by -n / -d and a deadline.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "adapters/mqtt/mqtt_codec.h"

enum mode { M_PUB, M_FANOUT, M_IDLE };

struct conn {
    struct bufferevent *bev;
    int idx;
    bool sub;                        /* a subscriber (fanout) */
    bool up;                         /* CONNACK (and SUBACK) received */
    uint64_t sent;
    uint16_t pid;
    uint32_t inflight;
    int64_t *sent_at;                /* by packet id, for PUBACK latency */
};

static struct {
    struct event_base *base;
    const char *host;
    int port;
    enum mode mode;
    int conns, subs;
    uint64_t msgs;
    int qos;
    size_t size;
    double rate;
    int window;
    int secs;
    int n_up;
    uint64_t sent, acked, delivered, expected;
    int64_t t0, t_end;
    bool sending_done;
    int pings_pending;
    uint32_t *lat;                   /* microseconds */
    size_t n_lat, cap_lat;
    struct conn *cs;
    struct event *timer;
    double credit;
    int64_t last_tick;
    uint8_t *payload;
    int failed;
} g;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void lat_add(int64_t ns)
{
    if (g.n_lat < g.cap_lat) {
        g.lat[g.n_lat++] = (uint32_t)(ns / 1000 > UINT32_MAX ? UINT32_MAX : ns / 1000);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double p)
{
    if (g.n_lat == 0) {
        return 0;
    }
    size_t i = (size_t)(p * (double)(g.n_lat - 1));
    return g.lat[i];
}

static void send_pkt(struct conn *c, const struct mqtt_packet *p)
{
    uint8_t buf[65536 + 256];
    int n = mqtt_encode(p, MQTT_V311, buf, sizeof(buf));
    if (n > 0) {
        bufferevent_write(c->bev, buf, (size_t)n);
    }
}

static void send_connect(struct conn *c)
{
    struct mqtt_packet p;
    char cid[64];
    memset(&p, 0, sizeof(p));
    snprintf(cid, sizeof(cid), "load-%d-%d", (int)getpid(), c->idx);
    p.type = MQTT_CONNECT;
    p.u.connect.protocol_level = MQTT_V311;
    p.u.connect.clean_start = true;
    p.u.connect.keep_alive = 600;
    p.u.connect.client_id.ptr = cid;
    p.u.connect.client_id.len = strlen(cid);
    send_pkt(c, &p);
}

static bool publish_one(struct conn *c)
{
    struct mqtt_packet p;
    int64_t t = now_ns();
    if (g.qos > 0 && c->inflight >= (uint32_t)g.window) {
        return false;
    }
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = (uint8_t)g.qos;
    p.u.publish.topic.ptr = "bench/load";
    p.u.publish.topic.len = 10;
    memcpy(g.payload, &t, sizeof(t));
    p.u.publish.payload.ptr = g.payload;
    p.u.publish.payload.len = g.size;
    if (g.qos > 0) {
        if (++c->pid == 0) {
            c->pid = 1;
        }
        p.u.publish.packet_id = c->pid;
        c->sent_at[c->pid] = t;
        c->inflight++;
    }
    send_pkt(c, &p);
    c->sent++;
    g.sent++;
    if (g.sent >= g.msgs) {
        g.sending_done = true;
    }
    return true;
}

static void maybe_finish(void)
{
    bool done = false;
    if (g.mode == M_PUB) {
        done = g.sending_done && (g.qos > 0 ? g.acked >= g.msgs : g.pings_pending == 0);
    } else if (g.mode == M_FANOUT) {
        done = g.sending_done && g.delivered >= g.expected;
    }
    if (done && g.t_end == 0) {
        g.t_end = now_ns();
        event_base_loopbreak(g.base);
    }
}

static void send_ping(struct conn *c)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof(p));
    p.type = MQTT_PINGREQ;
    send_pkt(c, &p);
    g.pings_pending++;
}

/* Unlimited-rate publishing: keep each publisher's output busy. */
static void pump(struct conn *c)
{
    if (g.rate > 0 || !c->up || c->sub || g.sending_done) {
        return;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    for (int i = 0; i < 256 && !g.sending_done && evbuffer_get_length(out) < 262144; i++) {
        if (!publish_one(c)) {
            break;
        }
    }
    if (g.sending_done && g.qos == 0 && g.mode == M_PUB) {
        for (int i = 0; i < g.conns; i++) {
            if (!g.cs[i].sub) {
                send_ping(&g.cs[i]);
            }
        }
    }
}

static void all_up(void)
{
    g.t0 = now_ns();
    g.last_tick = g.t0;
    for (int i = 0; i < g.conns + g.subs; i++) {
        pump(&g.cs[i]);
    }
}

static void on_packet(struct conn *c, const uint8_t *pkt, size_t len)
{
    struct mqtt_packet p;
    if (mqtt_decode(pkt, len, MQTT_V311, &p) != 0) {
        g.failed++;
        return;
    }
    switch (p.type) {
    case MQTT_CONNACK:
        if (p.u.connack.reason != 0) {
            g.failed++;
            return;
        }
        if (c->sub) {
            struct mqtt_packet s;
            struct mqtt_subscription e = {.filter = {"bench/#", 7}, .qos = (uint8_t)g.qos};
            memset(&s, 0, sizeof(s));
            s.type = MQTT_SUBSCRIBE;
            s.u.subscribe.packet_id = 1;
            s.u.subscribe.subs.items = &e;
            s.u.subscribe.subs.count = 1;
            send_pkt(c, &s);
            return;
        }
        c->up = true;
        if (++g.n_up == g.conns + g.subs && g.mode != M_IDLE) {
            all_up();
        } else if (g.n_up == g.conns + g.subs) {
            g.t0 = now_ns();
        }
        break;
    case MQTT_SUBACK:
        c->up = true;
        if (++g.n_up == g.conns + g.subs) {
            all_up();
        }
        break;
    case MQTT_PUBACK:
        if (c->inflight > 0) {
            c->inflight--;
        }
        g.acked++;
        lat_add(now_ns() - c->sent_at[p.u.ack.packet_id]);
        pump(c);
        break;
    case MQTT_PUBLISH: {
        int64_t t;
        if (p.u.publish.payload.len >= sizeof(t)) {
            memcpy(&t, p.u.publish.payload.ptr, sizeof(t));
            lat_add(now_ns() - t);
        }
        g.delivered++;
        if (p.u.publish.qos == 1) {
            struct mqtt_packet a;
            memset(&a, 0, sizeof(a));
            a.type = MQTT_PUBACK;
            a.u.ack.packet_id = p.u.publish.packet_id;
            send_pkt(c, &a);
        }
        break;
    }
    case MQTT_PINGRESP:
        g.pings_pending--;
        break;
    default:
        break;
    }
    maybe_finish();
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    /* Bounded by the input: each round consumes one whole packet or stops. */
    for (;;) {
        size_t len = evbuffer_get_length(in), plen = 0;
        uint8_t *buf;
        if (len < 2) {
            break;
        }
        buf = evbuffer_pullup(in, (ev_ssize_t)(len < 70000 ? len : 70000));
        if (mqtt_frame(buf, len < 70000 ? len : 70000, 0, &plen) != 1) {
            break;
        }
        on_packet(c, buf, plen);
        evbuffer_drain(in, plen);
    }
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pump(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        send_connect(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        g.failed++;
        fprintf(stderr, "mqtt_load: connection %d closed\n", c->idx);
        event_base_loopbreak(g.base);
    }
}

/* Fixed-rate publishing: every millisecond, send what the rate allows. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    int64_t t = now_ns();
    (void)fd;
    (void)what;
    (void)arg;
    if (g.secs > 0 && g.t0 != 0 && t - g.t0 > (int64_t)g.secs * 1000000000 + 10000000000LL) {
        event_base_loopbreak(g.base);          /* hard deadline */
        return;
    }
    if (g.n_up < g.conns + g.subs || g.rate <= 0 || g.sending_done) {
        return;
    }
    g.credit += g.rate * (double)(t - g.last_tick) / 1e9;
    g.last_tick = t;
    int pubs = g.conns;
    int i = 0;
    while (g.credit >= 1.0 && !g.sending_done && i < 100000) {
        struct conn *c = &g.cs[g.subs + (int)(g.sent % (uint64_t)pubs)];
        if (!publish_one(c)) {
            break;
        }
        g.credit -= 1.0;
        i++;
    }
    if (g.sending_done && g.qos == 0 && g.mode == M_PUB) {
        for (int k = g.subs; k < g.subs + g.conns; k++) {
            send_ping(&g.cs[k]);
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: mqtt_load -p PORT [-h HOST] -m pub|fanout|idle [-c CONNS] [-S SUBS]"
                    " [-n MSGS] [-q 0|1] [-s SIZE] [-r RATE] [-w WINDOW] [-d SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct timeval ms = {0, 1000};
    int opt;

    g.host = "127.0.0.1";
    g.conns = 1;
    g.msgs = 100000;
    g.size = 64;
    g.window = 64;
    g.secs = 5;
    g.mode = M_PUB;
    while ((opt = getopt(argc, argv, "h:p:m:c:S:n:q:s:r:w:d:")) != -1) {
        switch (opt) {
        case 'h': g.host = optarg; break;
        case 'p': g.port = atoi(optarg); break;
        case 'm':
            g.mode = strcmp(optarg, "fanout") == 0 ? M_FANOUT
                     : strcmp(optarg, "idle") == 0 ? M_IDLE : M_PUB;
            break;
        case 'c': g.conns = atoi(optarg); break;
        case 'S': g.subs = atoi(optarg); break;
        case 'n': g.msgs = strtoull(optarg, NULL, 10); break;
        case 'q': g.qos = atoi(optarg); break;
        case 's': g.size = (size_t)atol(optarg); break;
        case 'r': g.rate = atof(optarg); break;
        case 'w': g.window = atoi(optarg); break;
        case 'd': g.secs = atoi(optarg); break;
        default: usage();
        }
    }
    if (g.port <= 0 || g.conns < 0 || g.size < 8 || g.size > 65536 || g.qos < 0 || g.qos > 1) {
        usage();
    }
    if (g.mode == M_FANOUT) {
        g.conns = 1;
        g.expected = g.msgs * (uint64_t)g.subs;
    }
    {
        struct rlimit rl = {200000, 200000};
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    g.cap_lat = 4000000;
    g.lat = malloc(g.cap_lat * sizeof(*g.lat));
    g.payload = calloc(1, g.size);
    g.base = event_base_new();
    g.cs = calloc((size_t)(g.conns + g.subs), sizeof(*g.cs));
    if (g.lat == NULL || g.payload == NULL || g.base == NULL || g.cs == NULL) {
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g.port);
    inet_pton(AF_INET, g.host, &sa.sin_addr);
    for (int i = 0; i < g.conns + g.subs; i++) {
        struct conn *c = &g.cs[i];
        c->idx = i;
        c->sub = i < g.subs;
        if (!c->sub && g.qos > 0) {
            c->sent_at = calloc(65536, sizeof(*c->sent_at));
        }
        c->bev = bufferevent_socket_new(g.base, -1, BEV_OPT_CLOSE_ON_FREE);
        bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
        bufferevent_setwatermark(c->bev, EV_WRITE, 65536, 0);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            fprintf(stderr, "mqtt_load: connect %d failed\n", i);
            return 1;
        }
        if (g.mode == M_IDLE && i % 500 == 499) {
            event_base_loop(g.base, EVLOOP_NONBLOCK);   /* let the accepts happen */
        }
    }
    g.timer = event_new(g.base, -1, EV_PERSIST, on_tick, NULL);
    event_add(g.timer, &ms);
    if (g.mode == M_IDLE) {
        struct timeval end = {g.secs, 0};
        event_base_loopexit(g.base, &end);
        event_base_dispatch(g.base);
        printf("mode=idle conns=%d up=%d failed=%d\n", g.conns, g.n_up, g.failed);
        return g.n_up == g.conns ? 0 : 1;
    }
    event_base_dispatch(g.base);
    if (g.t_end == 0) {
        g.t_end = now_ns();
    }
    double secs = (double)(g.t_end - g.t0) / 1e9;
    qsort(g.lat, g.n_lat, sizeof(*g.lat), cmp_u32);
    if (g.mode == M_PUB) {
        printf("mode=pub qos=%d conns=%d size=%zu msgs=%llu secs=%.3f msgs_per_sec=%.0f "
               "p50_us=%u p99_us=%u failed=%d\n", g.qos, g.conns, g.size,
               (unsigned long long)g.sent, secs, (double)g.sent / secs, pct(0.5), pct(0.99),
               g.failed);
    } else {
        printf("mode=fanout qos=%d subs=%d size=%zu msgs=%llu delivered=%llu secs=%.3f "
               "delivered_per_sec=%.0f p50_us=%u p99_us=%u failed=%d\n", g.qos, g.subs, g.size,
               (unsigned long long)g.sent, (unsigned long long)g.delivered, secs,
               (double)g.delivered / secs, pct(0.5), pct(0.99), g.failed);
    }
    return g.failed == 0 && g.t_end != 0 ? 0 : 1;
}

#include "gateway/tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "gateway/envelope.h"
#include "gateway/logging.h"
#include "gateway/metrics.h"

#define TCP_LOW_WATER_DEFAULT (64u * 1024u)
#define TCP_CLOSE_FLUSH_SECS 2

struct tcp_conn {
    struct tcp_conn *prev, *next;    /* server's list of open or closing conns */
    struct sl_tcp_server *srv;
    struct bufferevent *bev;
    void *sess;
    struct sl_transport t;
    bool closing;                    /* close() called: no more events but `closed` */
    bool notify;                     /* call events->closed when reaped */
    bool reap;                       /* on the reap list */
    char peer[64];
};

struct sl_tcp_server {
    struct event_base *base;
    struct evconnlistener *lis;
    const struct sl_transport_events *ev;
    sl_tcp_accept_fn accept;
    void *arg;
    uint32_t max_conns;
    struct sl_ratelimit refused_log;
    uint32_t n_conns;
    size_t low_water;
    int port;
    const char *name;
    struct tcp_conn *conns;
    struct event *reap_ev;
};

static void conn_unlink(struct tcp_conn *c)
{
    struct sl_tcp_server *s = c->srv;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    s->n_conns--;
}

/* Schedule the final step (free + closed event) from the loop. */
static void conn_schedule_reap(struct tcp_conn *c)
{
    if (!c->reap) {
        c->reap = true;
        event_active(c->srv->reap_ev, EV_TIMEOUT, 0);
    }
}

static void conn_release_bev(struct tcp_conn *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct sl_tcp_server *s = arg;
    struct tcp_conn *c = s->conns, *next;
    (void)fd;
    (void)what;
    /* Bounded by the list: every reaped conn leaves it. */
    while (c != NULL) {
        next = c->next;
        if (c->reap) {
            bool notify = c->notify;
            void *sess = c->sess;
            conn_release_bev(c);
            conn_unlink(c);
            free(c);
            if (notify && sess != NULL) {
                s->ev->closed(sess);
            }
        }
        c = next;
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    if (c->closing || c->sess == NULL) {
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
        return;
    }
    c->srv->ev->data(c->sess, bufferevent_get_input(bev));
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct tcp_conn *c = arg;
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
            conn_schedule_reap(c);
        }
        return;
    }
    if (c->srv->ev->drained != NULL && c->sess != NULL) {
        c->srv->ev->drained(c->sess);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct tcp_conn *c = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        c->notify = !c->closing ? c->sess != NULL : c->notify;
        c->closing = true;
        conn_schedule_reap(c);
    }
}

/* ---- the transport table ---- */

static int t_write(void *conn, const void *data, size_t len)
{
    struct tcp_conn *c = conn;
    if (c->closing || c->bev == NULL) {
        return -EPIPE;
    }
    return evbuffer_add(bufferevent_get_output(c->bev), data, len) == 0 ? 0 : -ENOMEM;
}

static void buf_cleanup(const void *data, size_t len, void *arg)
{
    struct sl_buf *b = arg;
    (void)data;
    (void)len;
    sl_buf_unref(&b);
}

static int t_write_buf(void *conn, struct sl_buf *buf, size_t off, size_t len)
{
    struct tcp_conn *c = conn;
    if (c->closing || c->bev == NULL) {
        return -EPIPE;
    }
    sl_buf_ref(buf);
    if (evbuffer_add_reference(bufferevent_get_output(c->bev), buf->data + off, len,
                               buf_cleanup, buf) != 0) {
        sl_buf_unref(&buf);
        return -ENOMEM;
    }
    return 0;
}

static size_t t_pending(void *conn)
{
    struct tcp_conn *c = conn;
    return c->bev != NULL ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

static void t_pause_read(void *conn, bool paused)
{
    struct tcp_conn *c = conn;
    if (c->bev == NULL || c->closing) {
        return;
    }
    if (paused) {
        bufferevent_disable(c->bev, EV_READ);
    } else {
        bufferevent_enable(c->bev, EV_READ);
    }
}

static void t_close(void *conn, bool flush)
{
    struct tcp_conn *c = conn;
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->notify = c->sess != NULL;
    if (c->bev == NULL) {
        conn_schedule_reap(c);
        return;
    }
    bufferevent_disable(c->bev, EV_READ);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (flush && evbuffer_get_length(out) > 0) {
        /* Try once right away (works even when the loop is about to stop), then let
         * the loop finish within a bounded time. */
        evbuffer_write(out, bufferevent_getfd(c->bev));
    }
    if (flush && evbuffer_get_length(out) > 0) {
        struct timeval tv = {TCP_CLOSE_FLUSH_SECS, 0};
        bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
        bufferevent_set_timeouts(c->bev, NULL, &tv);
        bufferevent_enable(c->bev, EV_WRITE);
        return;
    }
    conn_schedule_reap(c);
}

static void t_rebind(void *conn, void *sess)
{
    struct tcp_conn *c = conn;
    c->sess = sess;
    if (sess == NULL) {
        c->notify = false;
    }
}

static const char *t_peer(void *conn)
{
    return ((struct tcp_conn *)conn)->peer;
}

static const struct sl_transport_ops tcp_transport_ops = {
    .write = t_write,
    .write_buf = t_write_buf,
    .pending = t_pending,
    .pause_read = t_pause_read,
    .close = t_close,
    .rebind = t_rebind,
    .peer = t_peer,
};

/* ---- the listener ---- */

static void format_peer(const struct sockaddr *sa, char *out, size_t outsz)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(out, outsz, "%s:%d", host, port);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct sl_tcp_server *s = arg;
    struct tcp_conn *c;
    int one = 1;
    (void)lis;
    (void)salen;

    if (s->max_conns > 0 && s->n_conns >= s->max_conns) {
        char peer[64];

        format_peer(sa, peer, sizeof(peer));
        evutil_closesocket(fd);
        sl_listener_refused(&s->refused_log, s->name, s->max_conns, peer);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->srv = s;
    c->t.ops = &tcp_transport_ops;
    c->t.conn = c;
    format_peer(sa, c->peer, sizeof(c->peer));
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
    c->sess = s->accept(s->arg, &c->t);
    if (c->sess == NULL) {
        c->closing = true;
        conn_schedule_reap(c);
        return;
    }
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, s->low_water, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct sl_tcp_server *sl_tcp_server_new(struct event_base *base, const struct sl_tcp_options *o,
                                        const struct sl_transport_events *events,
                                        sl_tcp_accept_fn accept, void *arg, char **err)
{
    struct sl_tcp_server *s = calloc(1, sizeof(*s));
    struct evutil_addrinfo hints, *ai = NULL;
    char portstr[16];
    int rc;

    if (s == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    s->base = base;
    s->ev = events;
    s->accept = accept;
    s->arg = arg;
    s->max_conns = o->max_connections;
    s->low_water = o->write_low_water ? o->write_low_water : TCP_LOW_WATER_DEFAULT;
    s->name = o->name ? o->name : "tcp";
    s->port = -1;
    s->reap_ev = event_new(base, -1, 0, on_reap, s);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
    snprintf(portstr, sizeof(portstr), "%d", o->port);
    rc = evutil_getaddrinfo(o->host, portstr, &hints, &ai);
    if (rc != 0 || ai == NULL || s->reap_ev == NULL) {
        if (asprintf(err, "cannot resolve %s: %s", o->host,
                     rc != 0 ? evutil_gai_strerror(rc) : "no address") < 0) {
            *err = NULL;
        }
        if (ai != NULL) {
            evutil_freeaddrinfo(ai);
        }
        sl_tcp_server_free(&s);
        return NULL;
    }
    s->lis = evconnlistener_new_bind(base, on_accept, s,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                     ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (s->lis == NULL) {
        if (asprintf(err, "cannot listen on %s:%d: %s", o->host, o->port,
                     strerror(errno)) < 0) {
            *err = NULL;
        }
        sl_tcp_server_free(&s);
        return NULL;
    }
    {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&ss, &sl) == 0) {
            s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    return s;
}

int sl_tcp_server_port(const struct sl_tcp_server *s)
{
    return s != NULL ? s->port : -1;
}

uint32_t sl_tcp_server_connections(const struct sl_tcp_server *s)
{
    return s != NULL ? s->n_conns : 0;
}

void sl_tcp_server_stop_accepting(struct sl_tcp_server *s)
{
    if (s != NULL && s->lis != NULL) {
        evconnlistener_free(s->lis);
        s->lis = NULL;
    }
}

void sl_tcp_server_free(struct sl_tcp_server **ps)
{
    struct sl_tcp_server *s;
    if (ps == NULL || *ps == NULL) {
        return;
    }
    s = *ps;
    sl_tcp_server_stop_accepting(s);
    while (s->conns != NULL) {
        struct tcp_conn *c = s->conns;
        conn_release_bev(c);
        conn_unlink(c);
        free(c);
    }
    if (s->reap_ev != NULL) {
        event_free(s->reap_ev);
    }
    free(s);
    *ps = NULL;
}

void sl_listener_refused(struct sl_ratelimit *rl, const char *listener, uint32_t limit,
                         const char *peer)
{
    char labels[96];

    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    sl_metric_incr("sluice_listener_refused_connections_total",
                   "connections refused by a listener's max_connections", labels);
    sl_logf_limited(rl, 10000, SL_LL_WARN, "[%s:listener] connection limit %u reached: refused%s%s",
                    listener, limit, peer != NULL ? " " : "", peer != NULL ? peer : "");
}

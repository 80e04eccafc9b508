/*
 * A TCP server on the core libevent loop (evconnlistener + one bufferevent per
 * connection) implementing the transport table of gateway/transport.h, so any session
 * code (MQTT now, AMQP and STOMP later) can run over it.
 *
 * Thread affinity: everything here runs on the loop thread of the event_base given to
 * sl_tcp_server_new.
 */
#ifndef SL_TCP_H
#define SL_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/transport.h"

struct event_base;
struct sl_ratelimit;
struct sl_tcp_server;

/* Called for each accepted connection. Borrows t for the copy it makes (t is valid for
 * the connection's lifetime). Returns the session (passed back to every event), or NULL
 * to refuse: the connection is then closed at once and no event is ever called. */
typedef void *(*sl_tcp_accept_fn)(void *arg, const struct sl_transport *t);

struct sl_tcp_options {
    const char *host;               /* borrowed during sl_tcp_server_new */
    int port;                       /* 0: any free port (see sl_tcp_server_port) */
    uint32_t max_connections;       /* beyond this, accepted sockets are closed (0: none) */
    size_t write_low_water;         /* events->drained fires at or below this (default 64 KiB) */
    const char *name;               /* for log lines, "[NAME:tcp]"; borrowed for life */
};

/*
 * Bind and listen. events is borrowed for the server's lifetime (usually a static
 * table). Returns a new server, or NULL with *err malloc'd. Loop thread.
 */
struct sl_tcp_server *sl_tcp_server_new(struct event_base *base, const struct sl_tcp_options *o,
                                        const struct sl_transport_events *events,
                                        sl_tcp_accept_fn accept, void *arg, char **err);

/* The bound port, or -1. Loop thread. */
int sl_tcp_server_port(const struct sl_tcp_server *s);

/* Open connections right now. Loop thread. */
uint32_t sl_tcp_server_connections(const struct sl_tcp_server *s);

/* Stop accepting (connections stay). Loop thread. NULL is a no-op. */
void sl_tcp_server_stop_accepting(struct sl_tcp_server *s);

/*
 * Free the server: stop listening; every connection still open is closed without
 * calling its session's closed event (the owner must have closed its sessions first,
 * or no longer care). Sets *s to NULL; NULL is a no-op. Loop thread.
 */
void sl_tcp_server_free(struct sl_tcp_server **s);

/*
 * A listener (tcp, mqtt, http...) refused a connection at its max_connections: counts it
 * in sluice_listener_refused_connections_total{listener} and logs
 * "[LISTENER:listener] connection limit LIMIT reached: refused" (with " PEER" if peer is
 * not NULL) through rl, at most once per 10 s. Any thread (rl is the caller's own).
 */
void sl_listener_refused(struct sl_ratelimit *rl, const char *listener, uint32_t limit,
                         const char *peer);

#endif

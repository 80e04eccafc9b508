/*
 * MQTT listener internals: the broker (one per listener instance) and the per-connection
 * session state machine. A session reaches its peer only through struct sl_transport
 * (gateway/transport.h), so it runs over TCP now and over a WebSocket later, and unit
 * tests drive it with a fake transport.
 *
 * Thread affinity: everything here runs on the core loop thread.
 */
#ifndef SL_MQTT_SESSION_H
#define SL_MQTT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapters/mqtt/mqtt_alias.h"
#include "adapters/mqtt/mqtt_codec.h"
#include "gateway/transport.h"

struct event;
struct evbuffer;
struct sl_gateway;
struct sl_env;
struct sl_buf;
struct sl_metric;
struct mqtt_subs;
struct mqtt_retain;
struct mqtt_store;
struct mqtt_reader;
struct pub_wait;

/* Envelope header names for MQTT properties without a CloudEvents attribute. */
#define MQTT_H_QOS "mqtt-qos"
#define MQTT_H_RETAIN "mqtt-retain"
#define MQTT_H_RESPONSE_TOPIC "mqtt-response-topic"
#define MQTT_H_CORRELATION "mqtt-correlation-data"
#define MQTT_H_PAYLOAD_FORMAT "mqtt-payload-format"
#define MQTT_H_EXPIRY "mqtt-message-expiry"

/* Listener settings (config keys of listeners.mqtt, see conf/sluice.yaml). A SIGHUP
 * reload replaces broker->lim: sessions read max_keepalive, max_inflight and
 * max_session_expiry into their own fields at CONNECT and copy the rest they announce
 * (mqtt_session_take_limits); high_water, max_session_expiry (at a v5 DISCONNECT),
 * max_connections and allow_anonymous are read where they are used. */
struct mqtt_limits {
    uint32_t max_connections;
    uint32_t max_packet_size;        /* inbound, bytes */
    uint16_t receive_max;            /* inbound QoS 1/2 not yet acked per client */
    uint16_t max_inflight;           /* outbound QoS 1/2 unacked, default when the client
                                        gives no receive maximum (3.1.1) */
    uint16_t topic_alias_max;        /* inbound aliases accepted per client */
    uint32_t max_subscriptions;      /* per client */
    uint32_t max_session_expiry;     /* seconds */
    uint16_t max_keepalive;          /* seconds, 0: what the client asks */
    size_t high_water;               /* output bytes queued before a subscriber lags */
    bool allow_anonymous;
};

/* Decides CONNECT credentials: 0 allow, else a v5 reason code (0x86, 0x87, 0x89), or
 * MQTT_AUTH_PENDING (mqtt_auth.h): the session parks (reads nothing more from its
 * client) until mqtt_broker_auth_done(b, ticket, verdict) arrives. Borrows everything. */
typedef int (*mqtt_auth_fn)(void *arg, uint64_t ticket, const char *client_id,
                            const struct mqtt_str *user, const struct mqtt_bin *password);

struct mqtt_broker {
    struct sl_gateway *gw;           /* borrowed */
    struct mqtt_limits lim;
    const char *listener;            /* "mqtt": the routing source name */
    mqtt_auth_fn auth;
    void *auth_arg;
    struct mqtt_session *all;        /* every session: connected or offline persistent */
    struct mqtt_session **by_id;     /* client id hash buckets */
    struct mqtt_session *parked;     /* CONNECTs waiting for a password verdict */
    size_t n_parked;
    uint64_t next_ticket;            /* auth tickets: never reused */
    size_t n_buckets;
    size_t n_connected;
    struct mqtt_subs *subs;
    struct mqtt_retain *retain;
    struct mqtt_store *store;        /* NULL: sessions are not persisted */
    struct event *tick;              /* 1 s housekeeping */
    uint64_t next_anon;
    bool stopping;
    struct sl_metric *m_conns;       /* gauge */
    struct sl_metric *m_sessions;    /* gauge */
    struct sl_metric *m_in, *m_out, *m_dropped, *m_lagging;
};

/* MQTT_S_AUTH: a CONNECT parked until its password verdict (broker->parked). */
enum mqtt_state { MQTT_S_CONNECT = 0, MQTT_S_ACTIVE, MQTT_S_CLOSING, MQTT_S_OFFLINE,
                  MQTT_S_AUTH };

/* One subscription of a session. */
struct mqtt_sub_entry {
    char *filter;                    /* the filter proper (without $share/group/) */
    char *share_group;               /* NULL unless $share */
    uint8_t qos;
    bool no_local;
    bool rap;                        /* retain as published */
    uint8_t retain_handling;
    uint32_t sub_id;                 /* v5 subscription identifier, 0 none */
    void *shared;                    /* mqtt_sub.c's shared-group state */
};

/* A (log topic, partition) the session's subscriptions cover: where it stands. */
struct mqtt_tp {
    struct mqtt_reader *reader;      /* the shared reader of this topic */
    int32_t partition;
    int64_t lag_from;                /* -1: in sync with the reader; else the next offset
                                        to deliver by catch-up reads */
};

enum mqtt_out_state { MQTT_OUT_WAIT_ACK = 0, MQTT_OUT_WAIT_REC, MQTT_OUT_WAIT_COMP };

/* An outbound QoS 1/2 message not yet fully acknowledged. */
struct mqtt_out {
    uint16_t packet_id;
    uint8_t qos;
    uint8_t state;                   /* enum mqtt_out_state */
    struct mqtt_reader *reader;      /* NULL for retained deliveries */
    int32_t partition;
    int64_t offset;
    struct sl_buf *pkt;              /* the encoded PUBLISH (for a resend with DUP): always
                                        the full topic, never a topic alias */
    size_t pid_off;                  /* offset of the packet id in pkt */
    void *share;                     /* mqtt_share.c: the shared group's partition it was
                                        handed out from (ack advances the group), or NULL */
};

struct mqtt_session {
    struct mqtt_broker *b;
    struct mqtt_session *next, *prev;        /* broker->all */
    struct mqtt_session *hnext;              /* broker->by_id */
    struct sl_transport t;                   /* valid while connected */
    bool connected;
    uint8_t state;                           /* enum mqtt_state */
    uint8_t version;                         /* enum mqtt_version, 0 before CONNECT */
    bool clean_start;
    bool will_pending;                       /* will armed until a normal DISCONNECT */
    bool output_paused;                      /* over high water: lagging */
    bool read_paused;                        /* inbound receive maximum reached */
    bool in_store;                           /* a persisted copy exists */
    bool dirty;                              /* persisted copy out of date */
    int refs;                                /* deferred free */
    char *client_id;
    uint16_t keepalive;
    int64_t last_rx_ms;
    uint32_t session_expiry;                 /* seconds; 0xFFFFFFFF never */
    bool expiry_capped;                      /* lowered to max_session_expiry: CONNACK
                                                (v5) tells the client the value used */
    int64_t expire_at_ms;                    /* offline: when to drop, 0 none */
    uint32_t max_packet_out;                 /* client's maximum packet size, 0 none */
    /* The listener's limits for this connection, taken from b->lim at accept and again
     * at CONNECT (CONNACK announces them to v5 clients), so a SIGHUP reload that
     * changes b->lim applies to connections made after it and never to this one. */
    uint32_t max_packet_in;                  /* max_packet_size */
    uint16_t receive_max_in;                 /* receive_maximum */
    uint16_t alias_max_in;                   /* topic_alias_maximum */
    uint32_t max_subs;                       /* max_subscriptions */
    uint16_t send_quota_max;                 /* client's receive maximum */
    uint16_t inflight_in;                    /* inbound publishes awaiting durability */
    struct pub_wait *pq_head, *pq_tail;      /* their acks, in arrival order */
    /* inbound QoS 2 packet ids (stored until PUBREL) */
    uint16_t *q2;
    uint16_t n_q2, cap_q2;
    /* inbound topic aliases (v5), for this network connection */
    char **alias;
    uint16_t n_alias;
    /* outbound topic aliases (v5, client's Topic Alias Maximum > 0), for this connection */
    struct mqtt_alias_out alias_out;
    /* will */
    struct sl_env *will;
    uint8_t will_qos;
    bool will_retain;
    uint32_t will_delay;
    int64_t will_at_ms;                      /* armed will: publish at, 0 none */
    /* subscriptions and positions */
    struct mqtt_sub_entry *subs;
    uint32_t n_subs, cap_subs;
    struct mqtt_tp *tps;
    uint32_t n_tps, cap_tps;
    /* outbound */
    struct mqtt_out *out;
    uint16_t n_out, cap_out;
    uint16_t next_pid;
    uint64_t stamp;                          /* fan-out: record last considered */
    uint8_t best_qos;                        /* fan-out scratch */
    int32_t best_sub;                        /* fan-out scratch */
    bool catchup_scheduled;
    /* a CONNECT parked for its password verdict (state MQTT_S_AUTH) */
    uint64_t auth_ticket;
    uint8_t *auth_pkt;                       /* the CONNECT packet, copied */
    size_t auth_len;
    uint8_t auth_version;                    /* its protocol level */
    struct mqtt_session *pk_next, *pk_prev;  /* broker->parked */
    struct evbuffer *held;                   /* bytes read after a parked CONNECT, not yet
                                                processed; NULL when none */
};

/* ---- broker (mqtt.c) ---- */

/* A new broker on gw with the given limits (copied). NULL on failure with *err. */
struct mqtt_broker *mqtt_broker_new(struct sl_gateway *gw, const struct mqtt_limits *lim,
                                    const char *data_dir, char **err);
/* Send DISCONNECT 0x8B to every client, persist sessions, free. *b set to NULL. */
void mqtt_broker_free(struct mqtt_broker **b);
/* Default limits. */
void mqtt_limits_defaults(struct mqtt_limits *lim);
/* The session for client_id, or NULL. */
struct mqtt_session *mqtt_broker_find(struct mqtt_broker *b, const char *client_id);
void mqtt_broker_index(struct mqtt_broker *b, struct mqtt_session *s);
void mqtt_broker_unindex(struct mqtt_broker *b, struct mqtt_session *s);
/* The password verdict for ticket (0 allow, else a CONNACK reason, or -1: decide again
 * through b->auth, e.g. the users changed while it was computed, which may park the
 * CONNECT again with a new ticket): finish the parked CONNECT as handle_connect would
 * have, then process what the client sent meanwhile.
 * A ticket whose session went away (closed, superseded, refused) is ignored. */
void mqtt_broker_auth_done(struct mqtt_broker *b, uint64_t ticket, int verdict);
/* Refuse every parked CONNECT with reason (CONNACK, then close): listener stop. */
void mqtt_broker_refuse_parked(struct mqtt_broker *b, uint8_t reason);
/* Run housekeeping now (keepalive, wills, expiry, new topics, store). */
void mqtt_broker_tick(struct mqtt_broker *b, int64_t now_ms);
/* Count a protocol error by reason code. */
void mqtt_count_error(uint8_t reason);
int64_t mqtt_now_ms(void);

/* ---- session (mqtt_session.c) ---- */

/* A new session on transport t (copied). Returns NULL on out of memory. */
struct mqtt_session *mqtt_session_new(struct mqtt_broker *b, const struct sl_transport *t);
/* Transport events. */
void mqtt_session_data(void *sess, struct evbuffer *in);
void mqtt_session_drained(void *sess);
void mqtt_session_closed(void *sess);
extern const struct sl_transport_events mqtt_transport_events;
/* Send DISCONNECT (v5 with reason; 3.1.1: none) and close the transport. */
void mqtt_session_kick(struct mqtt_session *s, uint8_t reason, const char *why);
/* Destroy a session for good: leave subscriptions, drop the store file. */
void mqtt_session_destroy(struct mqtt_session *s);
/* Take the per-connection limits (max_packet_in, receive_max_in, alias_max_in,
 * max_subs) from s->b->lim, as they are now. */
void mqtt_session_take_limits(struct mqtt_session *s);
/* Publish the armed will now. */
void mqtt_session_fire_will(struct mqtt_session *s);
/* Write one packet (encoded here). 0 or -errno. */
int mqtt_session_send(struct mqtt_session *s, const struct mqtt_packet *p);
/* A new packet id not in use by s->out. */
uint16_t mqtt_session_pid(struct mqtt_session *s);

#endif

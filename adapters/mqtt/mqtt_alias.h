/*
 * MQTT 5 outbound topic aliases (MQTT 5.0 3.3.2.3.4, 3.1.2.11.6).
 *
 * A client that sends Topic Alias Maximum > 0 in CONNECT lets the server replace topic
 * names by small integers on that network connection. The table here is the server's
 * side of it for one connection: topic -> alias, up to min(client maximum,
 * MQTT_ALIAS_OUT_CAP) aliases, the least recently used one re-assigned when full (by
 * sending the full topic with that alias again). It starts empty on every connection and
 * is dropped when the connection goes; a PUBLISH resent on a later connection carries its
 * full topic and no alias.
 *
 * mqtt_publish_alias_head() turns an already encoded v5 PUBLISH (the one shared by every
 * subscriber) into one carrying the alias without re-encoding it: only the head (fixed
 * header, topic, packet id, property length, the alias property) is written per client,
 * the other properties and the payload are sent from the shared buffer by reference.
 *
 * Pure: no I/O, no globals. A table belongs to one session (loop thread); the head
 * function may run on any thread.
 */
#ifndef SL_MQTT_ALIAS_H
#define SL_MQTT_ALIAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Server-side cap on the aliases used per connection, whatever the client allows. */
#define MQTT_ALIAS_OUT_CAP 1024
/* Topics shorter than this are sent as they are: an alias (3 bytes) would not save. */
#define MQTT_ALIAS_MIN_TOPIC 4

struct mqtt_alias_slot;

struct mqtt_alias_out {
    uint16_t max;                    /* aliases usable on this connection, 0: none */
    uint16_t n;                      /* aliases handed out so far: 1..n */
    uint16_t cap;                    /* slots allocated (grows up to max) */
    uint16_t head, tail;             /* recency list of aliases, most recent first; 0 none */
    uint32_t n_buckets;              /* power of two, 0 before the first use */
    uint16_t *buckets;               /* topic hash -> first alias of its chain, 0 none */
    struct mqtt_alias_slot *slots;   /* [alias - 1] */
};

enum mqtt_alias_use {
    MQTT_ALIAS_NONE = 0,             /* send the topic, no alias */
    MQTT_ALIAS_USE,                  /* the client knows the alias: empty topic + alias */
    MQTT_ALIAS_ASSIGN,               /* (re)assignment: topic + alias */
};

/* Start a connection's table: empty, with min(client_max, MQTT_ALIAS_OUT_CAP) aliases
 * (0: aliases never used). Frees what a previous connection left. Allocates nothing:
 * the table grows on use. */
void mqtt_alias_out_reset(struct mqtt_alias_out *a, uint16_t client_max);

/* Free the table (the connection is gone); a is then as after reset(a, 0). */
void mqtt_alias_out_clear(struct mqtt_alias_out *a);

/*
 * The alias to send topic (len bytes, borrowed) with. MQTT_ALIAS_USE: the client already
 * maps *alias to topic. MQTT_ALIAS_ASSIGN: *alias is now recorded for topic (a new alias,
 * or the least recently used one re-assigned); the PUBLISH must carry the topic. If that
 * PUBLISH is then not sent, call mqtt_alias_out_forget(). MQTT_ALIAS_NONE: send the topic
 * without alias (no table, topic shorter than MQTT_ALIAS_MIN_TOPIC, out of memory).
 */
enum mqtt_alias_use mqtt_alias_out_get(struct mqtt_alias_out *a, const char *topic, size_t len,
                                       uint16_t *alias);

/* Forget what alias stands for (its assigning PUBLISH was not sent): the topic gets an
 * assignment again next time. No-op for an alias not in use. */
void mqtt_alias_out_forget(struct mqtt_alias_out *a, uint16_t alias);

/*
 * Rewrite the head of pkt (len bytes: one whole encoded MQTT 5 PUBLISH, with a packet
 * identifier field iff has_pid, without a Topic Alias property) to carry Topic Alias
 * alias (> 0), with the topic name when with_topic, else an empty one. Borrows pkt and
 * head. Writes into head (cap bytes) the fixed header (first byte as in pkt, new
 * Remaining Length), the topic, the packet identifier as in pkt, the new property length
 * and the alias property; *tail_off is where the rest (the other properties and the
 * payload) starts in pkt, sent unchanged after head; *pid_off is the packet
 * identifier's offset in head. Returns the head length (<= cap); the size head needs
 * (> cap, nothing written) when cap is too small; 0 when pkt is not such a PUBLISH or the
 * result would exceed the largest packet. Any thread.
 */
size_t mqtt_publish_alias_head(const uint8_t *pkt, size_t len, bool has_pid, uint16_t alias,
                               bool with_topic, uint8_t *head, size_t cap, size_t *tail_off,
                               size_t *pid_off);

#endif

/*
 * Persistent MQTT sessions: one JSON file per client under <data_dir>/__mqtt/ holding
 * the session's subscriptions, its position per (topic, partition), its unacknowledged
 * outbound QoS 1/2 messages (as log coordinates, re-read from the log to resend) and
 * the inbound QoS 2 packet ids awaiting PUBREL. Written temp + fsync + rename when
 * subscriptions change, at connect and disconnect, and every few seconds for sessions
 * whose positions moved (never per message): positions are at-least-once, so a restart
 * may resend, never lose.
 *
 * Thread affinity: loop thread only.
 */
#ifndef SL_MQTT_STORE_H
#define SL_MQTT_STORE_H

#include "adapters/mqtt/mqtt_session.h"

struct mqtt_store;

/* Open (creating <data_dir>/__mqtt). NULL with *err malloc'd. */
struct mqtt_store *mqtt_store_open(const char *data_dir, char **err);
/* Free; *st set to NULL; NULL is a no-op. */
void mqtt_store_free(struct mqtt_store **st);

/* Write s's state durably (temp + fsync + rename). Borrows both. 0 or -errno. */
int mqtt_store_save(struct mqtt_store *st, struct mqtt_session *s);
/* Remove client_id's file (if any). */
void mqtt_store_remove(struct mqtt_store *st, const char *client_id);
/* Recreate every stored session as an offline session of b. Returns how many. */
int mqtt_store_load_all(struct mqtt_store *st, struct mqtt_broker *b);

#endif

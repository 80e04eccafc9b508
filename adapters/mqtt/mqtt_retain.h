/*
 * Retained messages: durable in the internal log topic `__mqtt_retained` (one
 * partition, no retention limits, one record per retained publish keyed by MQTT topic;
 * an empty payload clears), replayed at start into a topic -> last message map. The
 * topic is compacted (see mqtt_retain.c): when it holds more than about twice the live
 * set, the live set is re-appended at its tail and the log start moved up to it.
 *
 * Thread affinity: loop thread only.
 */
#ifndef SL_MQTT_RETAIN_H
#define SL_MQTT_RETAIN_H

#include <stddef.h>

#include "adapters/mqtt/mqtt_session.h"

#define MQTT_RETAIN_TOPIC "__mqtt_retained"

struct mqtt_retain;

/* Open: create the internal topic if needed (its settings are applied on every open),
 * replay it, and start a compaction if one is due. Borrows gw for life.
 * Returns a new store, or NULL with *err malloc'd. */
struct mqtt_retain *mqtt_retain_open(struct sl_gateway *gw, char **err);
/* Free the map; *r set to NULL; NULL is a no-op. Sets held back by a compaction get
 * -ESHUTDOWN; while appends are still pending in the log the struct itself lives on
 * until their callbacks (which then only answer their callers) have run. */
void mqtt_retain_free(struct mqtt_retain **r);

/* Status callback of mqtt_retain_set: 0 once durable, or -errno. */
typedef void (*mqtt_retain_cb)(void *arg, int status);
/*
 * Make env (borrowed; a reference is kept) the retained message of env->subject, or
 * clear it when env has no or empty data. Durable before cb fires (cb may be NULL).
 * While a compaction drains (about one fsync) the set is held back and appended after
 * the compacted records. Returns 0 if accepted (cb will fire), or -errno with cb called
 * already.
 */
int mqtt_retain_set(struct mqtt_retain *r, struct sl_env *env, mqtt_retain_cb cb, void *arg);

/* Send every retained message matching sub's filter to s. Borrows both. */
void mqtt_retain_deliver(struct mqtt_retain *r, struct mqtt_session *s,
                         const struct mqtt_sub_entry *sub);

/* Retained topics held now. */
size_t mqtt_retain_count(const struct mqtt_retain *r);
/* Compactions completed since open. */
uint64_t mqtt_retain_compactions(const struct mqtt_retain *r);

/* Test hook: called at each stage of a compaction (a test copies the data directory
 * there to see what a kill -9 at that moment leaves). Loop thread. */
enum {
    MQTT_RETAIN_STAGE_ROLLED = 1,    /* drained and rolled, nothing re-appended yet */
    MQTT_RETAIN_STAGE_DURABLE,       /* live set re-appended and durable, start not moved */
    MQTT_RETAIN_STAGE_DONE,          /* log start moved, old segments deleted */
};
extern void (*mqtt_retain_compact_hook)(struct mqtt_retain *r, int stage);
/* The retained message of topic (borrowed), or NULL. */
const struct sl_env *mqtt_retain_get(const struct mqtt_retain *r, const char *topic);

#endif

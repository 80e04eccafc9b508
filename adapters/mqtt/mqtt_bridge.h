/*
 * The MQTT bridge (bridges: {NAME: {type: mqtt}}): sluice as an MQTT 3.1.1 / 5 client
 * of a remote broker, through paho MQTTAsync (libpaho-mqtt3as).
 *
 * Ingress: the `subscribe` filters (at `qos`) are published into the log through the
 * routing table with the source {.bridge = NAME}; every event carries the header
 * sluice-bridge: NAME, MQTT 5 user properties become headers (CloudEvents attributes
 * when a `specversion` property is present) and the content type property becomes
 * datacontenttype. paho sends the PUBACK when its messageArrived callback returns, so
 * the callback (on paho's thread) hands the message to the loop through the mailbox
 * and waits until the append is durable; a failed append is retried (with backoff)
 * before the callback returns, so nothing is acknowledged that is not in the log.
 * With `clean_start: false` (the default) the broker keeps the session, and redelivers
 * after a crash whatever was not acknowledged.
 *
 * Egress: for each egress binding `to: {bridge: NAME}` one cursor per partition of the
 * bound topic, starting at the committed position of group "__bridge.NAME" (or at the
 * end, committed at once, the first time). Records that came in over this bridge are
 * skipped (loop prevention; MQTT 5 subscriptions also set No Local). Each matching
 * record is published to the rendered destination at `qos`, with MQTT 5 user
 * properties from its headers and CloudEvents attributes; the position advances, and
 * is committed every 200 ms, only past records the broker acknowledged. A connection
 * loss rewinds to the last acknowledged record (at-least-once).
 *
 * Threads: paho calls are made on a worker thread per bridge (paho holds its client
 * lock while a messageArrived callback runs, so the loop never calls paho itself);
 * paho callbacks post to the loop's mailbox; everything else runs on the loop.
 */
#ifndef MQTT_BRIDGE_H
#define MQTT_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/bridge.h"

extern const struct sl_bridge_ops mqtt_bridge_ops;

/*
 * The URL paho accepts for a configured one: mqtt:// becomes tcp://, mqtts:// becomes
 * ssl://; tcp://, ssl://, ws:// and wss:// are kept. Writes into out (NUL-terminated).
 * Returns 0, -EINVAL for another scheme or a missing host, -ENOSPC. Sets *tls for
 * ssl:// and wss://. Borrows everything; pure; any thread.
 */
int mqtt_bridge_url(const char *url, char *out, size_t outsz, bool *tls);

/*
 * Egress acknowledgement window of one partition: records handed out in offset order,
 * each with the number of publishes still awaiting the broker's ack. `acked` is the
 * next offset not yet fully confirmed: every record below it is done, so it is the
 * position safe to commit. Pure; the owner's thread only.
 */
struct mqtt_bridge_window {
    int64_t *offset;
    uint32_t *pending;
    size_t head, count, cap;
    int64_t acked;
};

/* A window of cap records whose confirmed position starts at `start`. 0 or -ENOMEM. */
int mqtt_bridge_window_init(struct mqtt_bridge_window *w, size_t cap, int64_t start);
/* Free the arrays (the struct is the caller's). NULL is a no-op. */
void mqtt_bridge_window_free(struct mqtt_bridge_window *w);
/* No room for another record. */
bool mqtt_bridge_window_full(const struct mqtt_bridge_window *w);
/* A record at `offset` (greater than every one before) was handed out with `sends`
 * publishes (0: nothing to send for it, it is done). -ENOSPC when full. */
int mqtt_bridge_window_push(struct mqtt_bridge_window *w, int64_t offset, uint32_t sends);
/* One publish of the record at `offset` was confirmed: returns true if the record was
 * in the window (acked may advance), false otherwise (stale; ignored). */
bool mqtt_bridge_window_ack(struct mqtt_bridge_window *w, int64_t offset);
/* Forget what is in flight (after a connection loss); acked stays: resend from it. */
void mqtt_bridge_window_reset(struct mqtt_bridge_window *w);

#endif

/*
 * MQTT subscriptions and fan-out.
 *
 * One shared reader per log topic (a cursor per partition) decodes each record once and
 * hands it to every session whose filter matches (filters are deduplicated per reader,
 * so 1,000 subscribers on one filter cost one match per record). The PUBLISH bytes are
 * encoded once per (protocol version, QoS 0 / QoS > 0) and shared between sessions by
 * reference; only the few bytes up to the packet identifier are copied per session.
 *
 * A session that cannot take a message now (output over the high-water mark, or its
 * outbound window full) lags: it remembers the offset per (topic, partition) and later
 * catches up by reading the log itself, then rejoins the shared reader. Offline
 * persistent sessions lag the same way, so nothing is held in memory for them.
 * Filters whose first level is a wildcard cover every topic, including topics created
 * later (found by the broker's housekeeping tick). Internal topics ("__...") and
 * '$'-topics are not covered by leading wildcards.
 *
 * $share/{group}/{filter}: one shared group ("mqtt-share.{group}") per covered topic reads
 * it with its own cursors from the group's committed offsets and hands each matching
 * message to exactly one connected member, round robin per message, skipping members that
 * cannot take it now (the group waits if none can). The committed offset (sl_group_commit,
 * by mqtt_subs_commit) stays at the first message not yet delivered (QoS 0) or
 * acknowledged (PUBACK / PUBCOMP); a member going offline or leaving gives its
 * unacknowledged messages back, to be offered to the others.
 *
 * Thread affinity: loop thread only.
 */
#ifndef SL_MQTT_SUB_H
#define SL_MQTT_SUB_H

#include <stdbool.h>
#include <stdint.h>

#include "adapters/mqtt/mqtt_session.h"
#include "gateway/log/log.h"

/* New / free the manager of broker b (borrowed). NULL on out of memory. */
struct mqtt_subs *mqtt_subs_new(struct mqtt_broker *b);
void mqtt_subs_free(struct mqtt_subs **m);

/*
 * Activate s->subs[i] (already filled in): join the readers (or groups) it covers.
 * from: NULL to start at the end (new messages only), else replay history from there
 * (`sluice-from`). Returns 0 or -errno.
 */
int mqtt_subs_add(struct mqtt_subs *m, struct mqtt_session *s, uint32_t i,
                  const struct sl_start *from);
/* Deactivate s->subs[i] (before the caller removes the entry). */
void mqtt_subs_remove(struct mqtt_subs *m, struct mqtt_session *s, uint32_t i);
/* Deactivate every subscription of s and drop its outbound state (session destroyed). */
void mqtt_subs_session_gone(struct mqtt_subs *m, struct mqtt_session *s);

/* The session went offline (persistent): lag every position from where it stands; its
 * unacknowledged shared-subscription messages go to other members (dropped from its
 * window: not resent on resume). */
void mqtt_subs_offline(struct mqtt_session *s);
/* The session is connected again: resend unacknowledged messages with DUP, catch up. */
void mqtt_subs_resume(struct mqtt_session *s);
/* Output drained / an ack arrived: deliver what the session lags behind. */
void mqtt_subs_kick(struct mqtt_session *s);

/* An outbound ack from the client: PUBACK, PUBREC or PUBCOMP with its reason. */
void mqtt_subs_ack(struct mqtt_session *s, enum mqtt_type type, uint16_t pid, uint8_t reason);

/* Send env to s now as a retained message (retain flag set) at QoS min(qos, message). */
int mqtt_subs_send_retained(struct mqtt_session *s, const struct sl_env *env, uint8_t qos,
                            uint32_t sub_id);

/* Housekeeping: commit shared-subscription offsets delivered or acknowledged since the
 * last call; re-offer messages a shared group is waiting with. */
void mqtt_subs_commit(struct mqtt_subs *m);
/* An event just landed in topic: open its reader now if wildcards cover it. */
void mqtt_subs_topic_seen(struct mqtt_subs *m, const char *topic);
/* Housekeeping: open readers for topics created since the last call (wildcards). */
void mqtt_subs_discover(struct mqtt_subs *m);

/* Record an outbound inflight entry restored from the store (resent on resume). */
int mqtt_subs_restore_out(struct mqtt_session *s, const char *topic, int32_t partition,
                          int64_t offset, uint16_t pid, uint8_t qos, uint8_t state);
/* Restore a position: the session lags on (topic, partition) from offset. */
int mqtt_subs_restore_pos(struct mqtt_session *s, const char *topic, int32_t partition,
                          int64_t offset);
/* Current position of each tp (for the store): calls fn(topic, partition, next). */
typedef void (*mqtt_pos_fn)(void *arg, const char *topic, int32_t partition, int64_t next);
void mqtt_subs_positions(struct mqtt_session *s, mqtt_pos_fn fn, void *arg);
/* Topic of a reader. */
const char *mqtt_reader_topic(const struct mqtt_reader *r);

#endif

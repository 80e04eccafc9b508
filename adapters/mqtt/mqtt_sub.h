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
 * $share/{group}/{filter}: see mqtt_share.h (groups with their own cursors, one member per
 * message); mqtt_subs_add / _remove / _commit hand them over, and they deliver through
 * mqtt_subs_deliver below.
 *
 * Thread affinity: loop thread only.
 */
#ifndef SL_MQTT_SUB_H
#define SL_MQTT_SUB_H

#include <stdbool.h>
#include <stddef.h>
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
 * last call; re-offer messages a shared group is waiting with (mqtt_share_commit). */
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

/* ---- delivery, shared with mqtt_share.c ---- */

/* Encodings of one record, built lazily and shared across sessions. */
struct mqtt_enc {
    const struct sl_env *env;
    const char *subject;
    uint8_t msg_qos;
    bool msg_retain;
    int64_t expiry_left;             /* seconds, -1 none */
    struct sl_buf *pkt[2][2];        /* [v5][has packet id] */
    size_t pid_off[2];
};

/* Prepare e for env (borrowed: must outlive e): its QoS, retain flag and expiry from the
 * MQTT headers; subject env's, else fallback_subject (borrowed). Encodes nothing yet. */
void mqtt_enc_init(struct mqtt_enc *e, const struct sl_env *env, const char *fallback_subject);
/* Drop the encodings e built (references; sessions' windows keep their own). */
void mqtt_enc_clear(struct mqtt_enc *e);
/* Can s take a message at qos now (connected, under high water, window not full)? Sets
 * s->output_paused when over high water. */
bool mqtt_subs_can_take(struct mqtt_session *s, uint8_t qos);
/*
 * Deliver e to s at qos (retain flag, subscription identifier sub_id > 0 for MQTT 5).
 * QoS > 0 adds an outbound window entry holding a new reference to the encoding, with
 * (r, partition, offset) to re-read it for a resend (r NULL: not re-readable). Expired
 * or too large for the client: counted as dropped, returns 0. Returns 0 (sent or
 * skipped) or -EAGAIN when s cannot take it now. Borrows s, e and r.
 */
int mqtt_subs_deliver(struct mqtt_session *s, struct mqtt_enc *e, uint8_t qos, bool retain,
                      uint32_t sub_id, struct mqtt_reader *r, int32_t partition, int64_t offset);

#endif

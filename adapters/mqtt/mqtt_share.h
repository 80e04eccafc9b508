/*
 * MQTT shared subscriptions: $share/{group}/{filter}.
 *
 * One shared group ("mqtt-share.{group}") per covered topic reads it with its own cursors
 * from the group's committed offsets and hands each matching message to exactly one
 * connected member, round robin per message, skipping members that cannot take it now
 * (the group waits if none can). The committed offset (sl_group_commit, by
 * mqtt_share_commit) stays at the first message not yet delivered (QoS 0) or
 * acknowledged (PUBACK / PUBCOMP); a member going offline or leaving gives its
 * unacknowledged messages back, to be offered to the others. Messages go out through
 * mqtt_sub.c's encodings and outbound windows (mqtt_subs_deliver).
 *
 * Used by mqtt_sub.c only (the state lives in struct mqtt_subs).
 * Thread affinity: loop thread only.
 */
#ifndef SL_MQTT_SHARE_H
#define SL_MQTT_SHARE_H

#include <stdint.h>

#include "adapters/mqtt/mqtt_session.h"

struct mqtt_share_member;
struct mqtt_share_grp;

/* The shared-subscription state of a broker's subscription manager (embedded in it). */
struct mqtt_shares {
    struct mqtt_broker *b;
    struct mqtt_share_member *members;   /* every member of every group */
    struct mqtt_share_grp *groups;
};

/* Set up sh, empty, for broker b (borrowed). Cannot fail. Loop thread. */
void mqtt_share_init(struct mqtt_shares *sh, struct mqtt_broker *b);
/* Every member leaves: groups commit and go (sh itself is the caller's). Loop thread. */
void mqtt_share_fini(struct mqtt_shares *sh);

/*
 * s joins group e->share_group on log topic `topic` (exists) with e's filter and QoS;
 * the group is created at its committed offsets if new. Borrows s, e and topic (the
 * filter is copied). Returns 0 or -ENOMEM. Loop thread.
 */
int mqtt_share_join(struct mqtt_shares *sh, struct mqtt_session *s, struct mqtt_sub_entry *e,
                    const char *topic);
/* s leaves group `group` (name without "mqtt-share.") for `filter`: its unacknowledged
 * messages go to the other members; the group goes, committed, with its last member.
 * Borrows everything. Loop thread. */
void mqtt_share_remove(struct mqtt_shares *sh, struct mqtt_session *s, const char *group,
                       const char *filter);
/* s went offline: its unacknowledged messages go to the other members, dropped from its
 * window (not resent on resume). Borrows s. Loop thread. */
void mqtt_share_offline(struct mqtt_shares *sh, struct mqtt_session *s);
/* o (o->share set) was acknowledged: the group may commit past it; clears o->share.
 * Borrows o. Loop thread. */
void mqtt_share_acked(struct mqtt_out *o);
/* Offer waiting messages of the groups of s again (after an ack or a drain). Borrows s.
 * Loop thread. */
void mqtt_share_kick(struct mqtt_shares *sh, struct mqtt_session *s);
/* Housekeeping: commit what was delivered or acknowledged since the last call; re-offer
 * messages a group is waiting with. Loop thread. */
void mqtt_share_commit(struct mqtt_shares *sh);

#endif

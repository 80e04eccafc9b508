/*
 * SUBSCRIBE and UNSUBSCRIBE from a connected MQTT session (3.1.1 and 5.0): each filter
 * is checked (wildcards, `$share/{group}/{filter}`, subscription options, the
 * `max_subscriptions` limit), the session's subscription list and the broker's table
 * (mqtt_sub.h) are updated, SUBACK / UNSUBACK go out with a reason code per filter,
 * retained messages are replayed for new subscriptions, a v5 `sluice-from` user
 * property starts the subscription in the log's history, and a persistent session is
 * saved. Split from mqtt_session.c, which dispatches the packets here.
 */
#ifndef SL_MQTT_SUBSCRIBE_H
#define SL_MQTT_SUBSCRIBE_H

#include "adapters/mqtt/mqtt_codec.h"

struct mqtt_session;

/* Handle a decoded SUBSCRIBE (borrowed) of connected session s. Loop thread. */
void mqtt_session_subscribe(struct mqtt_session *s, const struct mqtt_subscribe *sp);

/* Handle a decoded UNSUBSCRIBE (borrowed) of connected session s. Loop thread. */
void mqtt_session_unsubscribe(struct mqtt_session *s, const struct mqtt_subscribe *sp);

#endif

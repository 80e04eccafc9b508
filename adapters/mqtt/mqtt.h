/*
 * The MQTT listener (listener kind "mqtt"): sluice as the broker an IoT device talks to,
 * MQTT 3.1.1 and 5.0 over TCP on the core libevent loop (gateway/tcp.c). Sessions
 * (mqtt_session.c) publish through sl_gateway_publish and subscribe through shared log
 * readers (mqtt_sub.c); retained messages live in the log topic __mqtt_retained
 * (mqtt_retain.c); persistent sessions under <data_dir>/__mqtt/ (mqtt_store.c).
 *
 * Thread affinity: every op runs on the core loop thread; password hashes run on the
 * listener's auth workers (mqtt_auth.c), their verdicts come back through the mailbox.
 */
#ifndef SL_MQTT_H
#define SL_MQTT_H

#include "adapters/mqtt/mqtt_auth.h"
#include "adapters/mqtt/mqtt_session.h"
#include "gateway/adapter.h"

/* The ops table of the "mqtt" listener kind. */
extern const struct sl_adapter_ops mqtt_adapter_ops;

/* The TCP port the started listener is bound to (useful with port 0), or -1.
 * Borrows a. Loop thread. */
int mqtt_adapter_port(const struct sl_adapter *a);

/* The broker behind a started listener (for tests), or NULL. Borrows a. Loop thread. */
struct mqtt_broker *mqtt_adapter_broker(const struct sl_adapter *a);

/* Limits from a listener config (fields the config does not set keep their defaults).
 * Borrows cfg. Any thread. */
void mqtt_limits_from_config(const struct sl_listener_cfg *cfg, struct mqtt_limits *lim);

/* Password checks (mqtt_password_ok, the worker pool): adapters/mqtt/mqtt_auth.h. */

#endif

/*
 * The MQTT bridge's conversions between paho MQTT messages and envelopes (used by
 * mqtt_bridge.c only). Ingress: the topic becomes the subject, MQTT 5 user properties
 * become headers (CloudEvents attributes when a `specversion` property is present), the
 * content type becomes datacontenttype, and the event gets the header
 * SL_BRIDGE_HEADER: bridge. Egress: the reverse, as MQTT 5 properties.
 *
 * Pure (no I/O, no shared state): any thread.
 */
#ifndef MQTT_BRIDGE_ENV_H
#define MQTT_BRIDGE_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include <MQTTAsync.h>

struct sl_env;

/*
 * The envelope for a message received by bridge `bridge` on topic (tlen bytes, not
 * NUL-terminated necessarily). Returns a new reference, or NULL with *why set to a
 * permanent problem ("bad_subject") or "oom". *loop is set when the message carries this
 * bridge's own SL_BRIDGE_HEADER (its own echo). Borrows everything. Runs on paho's
 * receive thread.
 */
struct sl_env *mqtt_bridge_env_from_msg(const char *bridge, const char *topic, size_t tlen,
                                        const MQTTAsync_message *msg, bool *loop,
                                        const char **why);

/*
 * Add to props (the caller's; freed with MQTTProperties_free) the MQTT 5 content type and
 * user properties of env: specversion 1.0, CloudEvents attributes, extensions, headers
 * (except SL_BRIDGE_HEADER and non-UTF-8 ones), then SL_BRIDGE_HEADER: bridge. A property
 * paho cannot add is left out. Borrows bridge and env. Runs on the loop thread.
 */
void mqtt_bridge_env_props(const char *bridge, const struct sl_env *env, MQTTProperties *props);

#endif

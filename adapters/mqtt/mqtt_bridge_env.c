/*
 * The MQTT bridge's conversions between MQTT messages and envelopes: a received message
 * (topic, payload, MQTT 5 properties) into an event, an event into MQTT 5 properties for
 * an egress publish. See mqtt_bridge_env.h.
 */
#include "adapters/mqtt/mqtt_bridge_env.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "adapters/mqtt/mqtt_codec.h"
#include "gateway/bridge.h"
#include "gateway/envelope.h"
#include "routing/route.h"

/* ---- ingress: message -> envelope ---- */

static bool is_ce_attr(const char *name)
{
    static const char *const attrs[] = {"id", "source", "type", "time", "dataschema", NULL};
    for (size_t i = 0; attrs[i] != NULL; i++) {
        if (strcmp(attrs[i], name) == 0) {
            return true;
        }
    }
    return false;
}

struct sl_env *mqtt_bridge_env_from_msg(const char *bridge, const char *topic, size_t tlen,
                                        const MQTTAsync_message *msg, bool *loop,
                                        const char **why)
{
    struct sl_env *env = sl_env_new();
    const MQTTProperties *props = &msg->properties;
    bool ce = false;
    char name[256];

    *loop = false;
    *why = "oom";
    if (env == NULL) {
        return NULL;
    }
    if (tlen == 0 || tlen > RT_MAX_SUBJECT || memchr(topic, '\0', tlen) != NULL) {
        *why = "bad_subject";
        goto fail;
    }
    if (sl_env_set_attr(env, "subject", topic, tlen) != 0 ||
        sl_env_set_data(env, msg->payload, (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0))
            != 0 ||
        sl_env_set_origin(env, "mqtt", bridge, env->subject) != 0) {
        goto fail;
    }
    for (int i = 0; i < props->count; i++) {
        const MQTTProperty *p = &props->array[i];
        if (p->identifier == MQTTPROPERTY_CODE_USER_PROPERTY &&
            p->value.data.len == 11 && memcmp(p->value.data.data, "specversion", 11) == 0) {
            ce = true;
        }
    }
    for (int i = 0; i < props->count; i++) {
        const MQTTProperty *p = &props->array[i];
        if (p->identifier == MQTTPROPERTY_CODE_CONTENT_TYPE) {
            if (sl_env_set_attr(env, "datacontenttype", p->value.data.data,
                                (size_t)p->value.data.len) == -ENOMEM) {
                goto fail;
            }
            continue;
        }
        if (p->identifier != MQTTPROPERTY_CODE_USER_PROPERTY ||
            (size_t)p->value.data.len >= sizeof(name)) {
            continue;
        }
        memcpy(name, p->value.data.data, (size_t)p->value.data.len);
        name[p->value.data.len] = '\0';
        if (strcmp(name, SL_BRIDGE_HEADER) == 0) {
            if ((size_t)p->value.value.len == strlen(bridge) &&
                memcmp(p->value.value.data, bridge, strlen(bridge)) == 0) {
                *loop = true;
            }
            continue;                /* ours is added below */
        }
        if (strcmp(name, "specversion") == 0 && ce) {
            continue;
        }
        if (ce && is_ce_attr(name)) {
            int rc = sl_env_set_attr(env, name, p->value.value.data,
                                     (size_t)p->value.value.len);
            if (rc == -ENOMEM) {
                goto fail;
            }
            if (rc == 0) {
                continue;
            }
        }
        if (sl_env_add_header(env, name, p->value.value.data, p->value.value.len) != 0) {
            goto fail;
        }
    }
    if (sl_env_add_header(env, SL_BRIDGE_HEADER, bridge, (int32_t)strlen(bridge)) != 0) {
        goto fail;
    }
    return env;
fail:
    sl_env_unref(&env);
    return NULL;
}

/* ---- egress: envelope -> MQTT 5 properties ---- */

static void add_user(MQTTProperties *props, const char *name, size_t nl, const void *value,
                     size_t vl)
{
    MQTTProperty p;

    memset(&p, 0, sizeof(p));
    p.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
    p.value.data.data = (char *)(uintptr_t)name;
    p.value.data.len = (int)nl;
    p.value.value.data = (char *)(uintptr_t)value;
    p.value.value.len = (int)vl;
    MQTTProperties_add(props, &p);   /* copies; a failure leaves the property out */
}

void mqtt_bridge_env_props(const char *bridge, const struct sl_env *env, MQTTProperties *props)
{
    static const char *const attrs[] = {"id", "source", "type", "time", "dataschema", NULL};

    if (env->datacontenttype != NULL) {
        MQTTProperty p;
        memset(&p, 0, sizeof(p));
        p.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
        p.value.data.data = env->datacontenttype;
        p.value.data.len = (int)strlen(env->datacontenttype);
        MQTTProperties_add(props, &p);
    }
    add_user(props, "specversion", 11, "1.0", 3);
    for (size_t i = 0; attrs[i] != NULL; i++) {
        const char *v = sl_env_get_attr(env, attrs[i]);
        if (v != NULL) {
            add_user(props, attrs[i], strlen(attrs[i]), v, strlen(v));
        }
    }
    for (size_t i = 0; i < env->n_ext; i++) {
        add_user(props, env->ext[i].name, strlen(env->ext[i].name), env->ext[i].value,
                 strlen(env->ext[i].value));
    }
    for (size_t i = 0; i < env->n_headers; i++) {
        const struct sl_env_hdr *h = &env->headers[i];
        size_t nl = strlen(h->name);
        if (h->value == NULL || strcmp(h->name, SL_BRIDGE_HEADER) == 0 ||
            !mqtt_utf8_valid((const uint8_t *)h->name, nl) ||
            !mqtt_utf8_valid(h->value->data, h->value->len)) {
            continue;
        }
        add_user(props, h->name, nl, h->value->data, h->value->len);
    }
    add_user(props, SL_BRIDGE_HEADER, strlen(SL_BRIDGE_HEADER), bridge, strlen(bridge));
}

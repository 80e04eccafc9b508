#include "adapters/mqtt/mqtt_subscribe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/mqtt_retain.h"
#include "adapters/mqtt/mqtt_session.h"
#include "adapters/mqtt/mqtt_store.h"
#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/envelope.h"
#include "gateway/log/log.h"

/* The `sluice-from` user property of a v5 SUBSCRIBE: earliest | offset | RFC 3339. */
static int parse_from(const struct mqtt_props *pr, struct sl_start *st)
{
    struct mqtt_iter it;
    struct mqtt_user_prop up;
    memset(&it, 0, sizeof(it));
    while (mqtt_user_prop_next(&pr->user, &it, &up)) {
        char v[64];
        if (up.name.len != 10 || memcmp(up.name.ptr, "sluice-from", 10) != 0) {
            if (!(up.name.len == 11 && memcmp(up.name.ptr, "sluice-from", 11) == 0)) {
                continue;
            }
        }
        if (up.value.len == 0 || up.value.len >= sizeof(v)) {
            return -EINVAL;
        }
        memcpy(v, up.value.ptr, up.value.len);
        v[up.value.len] = '\0';
        if (strcmp(v, "earliest") == 0) {
            st->kind = SL_START_EARLIEST;
            st->value = 0;
            return 1;
        }
        if (strcmp(v, "latest") == 0) {
            st->kind = SL_START_LATEST;
            return 1;
        }
        char *end;
        long long off = strtoll(v, &end, 10);
        if (*end == '\0' && off >= 0) {
            st->kind = SL_START_OFFSET;
            st->value = off;
            return 1;
        }
        int64_t ms;
        if (sl_rfc3339_parse_ms(v, up.value.len, &ms) == 0) {
            st->kind = SL_START_TIME;
            st->value = ms;
            return 1;
        }
        return -EINVAL;
    }
    return 0;
}

static int find_sub(const struct mqtt_session *s, const char *filter, size_t flen,
                    const char *group, size_t glen)
{
    for (uint32_t i = 0; i < s->n_subs; i++) {
        const struct mqtt_sub_entry *e = &s->subs[i];
        if (strlen(e->filter) == flen && memcmp(e->filter, filter, flen) == 0 &&
            ((e->share_group == NULL && group == NULL) ||
             (e->share_group != NULL && group != NULL && strlen(e->share_group) == glen &&
              memcmp(e->share_group, group, glen) == 0))) {
            return (int)i;
        }
    }
    return -1;
}

static void send_retained_for(struct mqtt_session *s, uint32_t i)
{
    if (s->b->retain != NULL) {
        mqtt_retain_deliver(s->b->retain, s, &s->subs[i]);
    }
}

void mqtt_session_subscribe(struct mqtt_session *s, const struct mqtt_subscribe *sp)
{
    struct mqtt_broker *b = s->b;
    struct mqtt_iter it;
    struct mqtt_subscription sub;
    uint8_t reasons[256];
    uint32_t send_retained[256];
    bool is_new[256];
    size_t n = 0, n_ret = 0;
    uint32_t sub_id = 0;
    struct sl_start from;
    int has_from;
    struct mqtt_packet ack;

    if (mqtt_prop_has(&sp->props, MQTT_PROP_SUBSCRIPTION_ID)) {
        struct mqtt_iter si;
        memset(&si, 0, sizeof(si));
        mqtt_sub_id_next(&sp->props.sub_ids, &si, &sub_id);
    }
    has_from = s->version == MQTT_V5 ? parse_from(&sp->props, &from) : 0;
    memset(&it, 0, sizeof(it));
    while (n < sizeof(reasons) && mqtt_sub_next(&sp->subs, true, &it, &sub)) {
        struct mqtt_str group = {0}, filter = sub.filter;
        int sh = mqtt_parse_shared(sub.filter.ptr, sub.filter.len, &group, &filter);
        int idx;
        uint8_t reason = sub.qos;

        is_new[n] = false;
        if (sh < 0) {
            reasons[n++] = 0x8F;
            continue;
        }
        if (has_from < 0) {
            reasons[n++] = 0x83;   /* implementation specific: bad sluice-from */
            continue;
        }
        idx = find_sub(s, filter.ptr, filter.len, sh ? group.ptr : NULL, group.len);
        if (idx >= 0) {
            struct mqtt_sub_entry *e = &s->subs[idx];
            e->qos = sub.qos;
            e->no_local = sub.no_local;
            e->rap = sub.retain_as_published;
            e->retain_handling = sub.retain_handling;
            e->sub_id = sub_id;
        } else {
            struct mqtt_sub_entry *e;
            if (s->n_subs >= s->max_subs) {
                reasons[n++] = 0x97;
                continue;
            }
            if (s->n_subs == s->cap_subs) {
                uint32_t cap = s->cap_subs ? s->cap_subs * 2 : 2;
                struct mqtt_sub_entry *ne = realloc(s->subs, cap * sizeof(*ne));
                if (ne == NULL) {
                    reasons[n++] = 0x97;
                    continue;
                }
                s->subs = ne;
                s->cap_subs = cap;
            }
            e = &s->subs[s->n_subs];
            memset(e, 0, sizeof(*e));
            e->filter = mqtt_str_dup(&filter);
            e->share_group = sh ? mqtt_str_dup(&group) : NULL;
            e->qos = sub.qos;
            e->no_local = sub.no_local;
            e->rap = sub.retain_as_published;
            e->retain_handling = sub.retain_handling;
            e->sub_id = sub_id;
            if (e->filter == NULL || (sh && e->share_group == NULL)) {
                free(e->filter);
                free(e->share_group);
                reasons[n++] = 0x97;
                continue;
            }
            s->n_subs++;
            if (mqtt_subs_add(b->subs, s, s->n_subs - 1, has_from > 0 ? &from : NULL) != 0) {
                s->n_subs--;
                free(e->filter);
                free(e->share_group);
                reasons[n++] = 0x80;
                continue;
            }
            idx = (int)s->n_subs - 1;
            is_new[n] = true;
        }
        if (!sh && (sub.retain_handling == 0 || (sub.retain_handling == 1 && is_new[n]))) {
            send_retained[n_ret++] = (uint32_t)idx;
        }
        reasons[n++] = reason;
    }
    s->dirty = true;
    memset(&ack, 0, sizeof(ack));
    ack.type = MQTT_SUBACK;
    ack.u.suback.packet_id = sp->packet_id;
    ack.u.suback.reasons.ptr = reasons;
    ack.u.suback.reasons.len = n;
    mqtt_session_send(s, &ack);
    for (size_t i = 0; i < n_ret; i++) {
        send_retained_for(s, send_retained[i]);
    }
    if (b->store != NULL && s->session_expiry != 0) {
        mqtt_store_save(b->store, s);
    }
}

void mqtt_session_unsubscribe(struct mqtt_session *s, const struct mqtt_subscribe *sp)
{
    struct mqtt_iter it;
    struct mqtt_subscription sub;
    uint8_t reasons[256];
    size_t n = 0;
    struct mqtt_packet ack;

    memset(&it, 0, sizeof(it));
    while (n < sizeof(reasons) && mqtt_sub_next(&sp->subs, false, &it, &sub)) {
        struct mqtt_str group = {0}, filter = sub.filter;
        int sh = mqtt_parse_shared(sub.filter.ptr, sub.filter.len, &group, &filter);
        int idx = sh < 0 ? -1 : find_sub(s, filter.ptr, filter.len, sh ? group.ptr : NULL,
                                         group.len);
        if (idx < 0) {
            reasons[n++] = 0x11;
            continue;
        }
        mqtt_subs_remove(s->b->subs, s, (uint32_t)idx);
        free(s->subs[idx].filter);
        free(s->subs[idx].share_group);
        s->subs[idx] = s->subs[--s->n_subs];
        reasons[n++] = 0;
    }
    memset(&ack, 0, sizeof(ack));
    ack.type = MQTT_UNSUBACK;
    ack.u.suback.packet_id = sp->packet_id;
    ack.u.suback.reasons.ptr = reasons;
    ack.u.suback.reasons.len = n;
    mqtt_session_send(s, &ack);
    s->dirty = true;
    if (s->b->store != NULL && s->session_expiry != 0) {
        mqtt_store_save(s->b->store, s);
    }
}

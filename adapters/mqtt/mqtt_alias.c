/*
 * MQTT 5 outbound topic aliases: the per-connection table (hash chains over the slots,
 * a recency list for the replacement) and the PUBLISH head rewrite. See mqtt_alias.h.
 */
#include "adapters/mqtt/mqtt_alias.h"

#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/mqtt_codec.h"

struct mqtt_alias_slot {
    char *topic;                     /* NULL: not assigned (never, or forgotten) */
    uint32_t hash;
    uint16_t len;
    uint16_t prev, next;             /* recency list, aliases, 0 none */
    uint16_t hnext;                  /* hash chain, alias, 0 none */
};

#define SLOT(a, x) (&(a)->slots[(x) - 1])

static uint32_t topic_hash(const char *t, size_t len)
{
    uint32_t h = 2166136261u;        /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (uint8_t)t[i]) * 16777619u;
    }
    return h;
}

void mqtt_alias_out_clear(struct mqtt_alias_out *a)
{
    for (uint16_t x = 1; x <= a->n; x++) {
        free(SLOT(a, x)->topic);
    }
    free(a->slots);
    free(a->buckets);
    memset(a, 0, sizeof(*a));
}

void mqtt_alias_out_reset(struct mqtt_alias_out *a, uint16_t client_max)
{
    mqtt_alias_out_clear(a);
    a->max = client_max < MQTT_ALIAS_OUT_CAP ? client_max : MQTT_ALIAS_OUT_CAP;
}

static void lru_unlink(struct mqtt_alias_out *a, uint16_t x)
{
    struct mqtt_alias_slot *s = SLOT(a, x);
    if (s->prev != 0) {
        SLOT(a, s->prev)->next = s->next;
    } else {
        a->head = s->next;
    }
    if (s->next != 0) {
        SLOT(a, s->next)->prev = s->prev;
    } else {
        a->tail = s->prev;
    }
    s->prev = s->next = 0;
}

static void lru_push_front(struct mqtt_alias_out *a, uint16_t x)
{
    struct mqtt_alias_slot *s = SLOT(a, x);
    s->prev = 0;
    s->next = a->head;
    if (a->head != 0) {
        SLOT(a, a->head)->prev = x;
    } else {
        a->tail = x;
    }
    a->head = x;
}

static void lru_push_back(struct mqtt_alias_out *a, uint16_t x)
{
    struct mqtt_alias_slot *s = SLOT(a, x);
    s->next = 0;
    s->prev = a->tail;
    if (a->tail != 0) {
        SLOT(a, a->tail)->next = x;
    } else {
        a->head = x;
    }
    a->tail = x;
}

/* Take alias x out of its hash chain and free its topic. */
static void slot_drop(struct mqtt_alias_out *a, uint16_t x)
{
    struct mqtt_alias_slot *s = SLOT(a, x);
    uint16_t *p = &a->buckets[s->hash & (a->n_buckets - 1)];
    while (*p != 0 && *p != x) {
        p = &SLOT(a, *p)->hnext;
    }
    if (*p == x) {
        *p = s->hnext;
    }
    s->hnext = 0;
    free(s->topic);
    s->topic = NULL;
}

/* A slot for a new assignment: a forgotten one, a new one, or the least recently used. */
static uint16_t pick_slot(struct mqtt_alias_out *a)
{
    if (a->tail != 0 && SLOT(a, a->tail)->topic == NULL) {
        return a->tail;
    }
    if (a->n < a->max) {
        if (a->n == a->cap) {
            uint32_t cap = a->cap != 0 ? (uint32_t)a->cap * 2 : 8;
            struct mqtt_alias_slot *n;
            if (cap > a->max) {
                cap = a->max;
            }
            n = realloc(a->slots, cap * sizeof(*n));
            if (n == NULL) {
                return 0;
            }
            a->slots = n;
            a->cap = (uint16_t)cap;
        }
        memset(SLOT(a, a->n + 1), 0, sizeof(struct mqtt_alias_slot));
        a->n++;
        lru_push_back(a, a->n);
        return a->n;
    }
    slot_drop(a, a->tail);
    return a->tail;
}

enum mqtt_alias_use mqtt_alias_out_get(struct mqtt_alias_out *a, const char *topic, size_t len,
                                       uint16_t *alias)
{
    uint32_t h;
    uint16_t x;
    char *copy;

    *alias = 0;
    if (a->max == 0 || len < MQTT_ALIAS_MIN_TOPIC || len > 65535) {
        return MQTT_ALIAS_NONE;
    }
    if (a->buckets == NULL) {
        uint32_t nb = 8;
        while (nb < a->max) {
            nb *= 2;
        }
        a->buckets = calloc(nb, sizeof(*a->buckets));
        if (a->buckets == NULL) {
            return MQTT_ALIAS_NONE;
        }
        a->n_buckets = nb;
    }
    h = topic_hash(topic, len);
    for (x = a->buckets[h & (a->n_buckets - 1)]; x != 0; x = SLOT(a, x)->hnext) {
        const struct mqtt_alias_slot *s = SLOT(a, x);
        if (s->hash == h && s->len == len && memcmp(s->topic, topic, len) == 0) {
            if (a->head != x) {
                lru_unlink(a, x);
                lru_push_front(a, x);
            }
            *alias = x;
            return MQTT_ALIAS_USE;
        }
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        return MQTT_ALIAS_NONE;
    }
    memcpy(copy, topic, len);
    copy[len] = '\0';
    x = pick_slot(a);
    if (x == 0) {
        free(copy);
        return MQTT_ALIAS_NONE;
    }
    {
        struct mqtt_alias_slot *s = SLOT(a, x);
        uint16_t *b = &a->buckets[h & (a->n_buckets - 1)];
        s->topic = copy;
        s->len = (uint16_t)len;
        s->hash = h;
        s->hnext = *b;
        *b = x;
    }
    lru_unlink(a, x);
    lru_push_front(a, x);
    *alias = x;
    return MQTT_ALIAS_ASSIGN;
}

void mqtt_alias_out_forget(struct mqtt_alias_out *a, uint16_t alias)
{
    if (alias == 0 || alias > a->n || SLOT(a, alias)->topic == NULL) {
        return;
    }
    slot_drop(a, alias);
    lru_unlink(a, alias);
    lru_push_back(a, alias);         /* re-used first */
}

/* ------------------------------------------------------------ PUBLISH head ---- */

static size_t vbi_size(uint32_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static size_t vbi_put(uint8_t *p, uint32_t v)
{
    size_t n = 0;
    do {
        uint8_t b = (uint8_t)(v % 128);
        v /= 128;
        p[n++] = (uint8_t)(b | (v > 0 ? 0x80 : 0));
    } while (v > 0);
    return n;
}

/* A Variable Byte Integer at p (at most avail bytes): its length, 0 if malformed. */
static size_t vbi_get(const uint8_t *p, size_t avail, uint32_t *v)
{
    uint32_t val = 0, mul = 1;
    for (size_t i = 0; i < 4 && i < avail; i++) {
        val += (uint32_t)(p[i] & 0x7f) * mul;
        if ((p[i] & 0x80) == 0) {
            *v = val;
            return i + 1;
        }
        mul *= 128;
    }
    return 0;
}

size_t mqtt_publish_alias_head(const uint8_t *pkt, size_t len, bool has_pid, uint16_t alias,
                               bool with_topic, uint8_t *head, size_t cap, size_t *tail_off,
                               size_t *pid_off)
{
    uint32_t rl, plen, new_plen, new_rl;
    size_t vlen, off, topic_at, tlen, pvlen, props, new_tlen, hlen, o;
    size_t pid_len = has_pid ? 2 : 0;

    if (len < 2 || (pkt[0] & 0xF0) != 0x30 || alias == 0) {
        return 0;
    }
    vlen = vbi_get(pkt + 1, len - 1, &rl);
    if (vlen == 0 || 1 + vlen + (size_t)rl != len) {
        return 0;
    }
    off = 1 + vlen;
    if (len - off < 2) {
        return 0;
    }
    tlen = (size_t)pkt[off] << 8 | pkt[off + 1];
    topic_at = off + 2;
    if (len - off - 2 < tlen + pid_len) {
        return 0;
    }
    off += 2 + tlen + pid_len;        /* the property length */
    pvlen = vbi_get(pkt + off, len - off, &plen);
    if (pvlen == 0 || len - off - pvlen < plen) {
        return 0;
    }
    props = off + pvlen;
    new_plen = plen + 3;
    new_tlen = with_topic ? tlen : 0;
    if ((uint64_t)rl - tlen + new_tlen - pvlen + vbi_size(new_plen) + 3 > MQTT_VBI_MAX) {
        return 0;
    }
    new_rl = (uint32_t)(rl - tlen + new_tlen - pvlen + vbi_size(new_plen) + 3);
    hlen = 1 + vbi_size(new_rl) + 2 + new_tlen + pid_len + vbi_size(new_plen) + 3;
    if (hlen > cap) {
        return hlen;
    }
    head[0] = pkt[0];
    o = 1 + vbi_put(head + 1, new_rl);
    head[o++] = (uint8_t)(new_tlen >> 8);
    head[o++] = (uint8_t)new_tlen;
    memcpy(head + o, pkt + topic_at, new_tlen);
    o += new_tlen;
    *pid_off = o;
    if (has_pid) {
        memcpy(head + o, pkt + topic_at + tlen, 2);
        o += 2;
    }
    o += vbi_put(head + o, new_plen);
    head[o++] = MQTT_PROP_TOPIC_ALIAS;
    head[o++] = (uint8_t)(alias >> 8);
    head[o++] = (uint8_t)alias;
    *tail_off = props;
    return o;
}

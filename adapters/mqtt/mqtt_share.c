/*
 * MQTT shared subscriptions ($share/{group}/{filter}): a group per (name, topic) reading
 * the topic with its own cursors, one member per message, commits past what was delivered
 * or acknowledged. See mqtt_share.h.
 */
#include "adapters/mqtt/mqtt_share.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "adapters/mqtt/mqtt_sub.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"

#define READ_BATCH 256

/* Offsets, ascending. */
struct offs {
    int64_t *v;
    size_t n, cap;
};

struct mqtt_share_grp;

/* One partition of a shared group: where the group stands in it. */
struct mqtt_share_part {
    struct mqtt_share_grp *g;
    int32_t partition;
    struct sl_cursor *cur;           /* the next offset never handed out */
    int64_t committed;               /* last committed, -1 none */
    struct offs pend;                /* handed out at QoS 1/2, not acknowledged yet */
    struct offs redo;                /* released by a member that left: hand out again */
    bool blocked;                    /* no member could take the next message */
};

/* A shared group on one topic: every $share/{name}/ filter whose first level is it. */
struct mqtt_share_grp {
    struct mqtt_share_grp *next;
    struct mqtt_shares *sh;
    char *group;                     /* "mqtt-share.<name>" */
    char *topic;
    struct mqtt_share_part *parts;
    int32_t n_parts;
    struct mqtt_share_member **mem;  /* in join order */
    uint32_t n_mem, cap_mem;
    uint32_t rr;                     /* the member offered the next message first */
    struct event *ev;                /* deferred pump */
    bool pumping, again;
    bool live;                       /* fully opened: commit when it goes */
};

/* A shared-subscription member: one session's $share filter on one topic. */
struct mqtt_share_member {
    struct mqtt_share_member *next;  /* mqtt_shares.members */
    struct mqtt_share_grp *g;
    struct mqtt_session *s;
    char *filter;
    struct sl_group_member *gm;      /* log group membership (the members gauge) */
    uint8_t qos;
};

/*
 * A shared group reads its topic with one cursor per partition (starting at the group's
 * committed offset) and offers each record to one member: members whose filter matches,
 * round robin from the one after the last taker, skipping those that cannot take it now
 * (disconnected, over the high-water mark, window full). If a member matches but none
 * can take it, the partition waits there (re-tried on an ack, a drain, a join, the
 * tick). A record no member's filter matches is passed over. QoS 1/2 hand-outs stay in
 * `pend` until PUBACK / PUBCOMP; a member that disconnects or leaves releases its
 * unacknowledged ones into `redo`, offered again (first) to the others. The committed
 * offset is the lowest of pend, redo and the cursor: only past what was delivered
 * (QoS 0) or acknowledged.
 */

static int offs_reserve(struct offs *o)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        int64_t *n = realloc(o->v, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        o->v = n;
        o->cap = cap;
    }
    return 0;
}

/* Insert v in order (capacity reserved by the caller, or reserved here). */
static int offs_insert(struct offs *o, int64_t v)
{
    size_t i = o->n;
    if (offs_reserve(o) != 0) {
        return -ENOMEM;
    }
    while (i > 0 && o->v[i - 1] > v) {
        i--;
    }
    memmove(o->v + i + 1, o->v + i, (o->n - i) * sizeof(*o->v));
    o->v[i] = v;
    o->n++;
    return 0;
}

static bool offs_remove(struct offs *o, int64_t v)
{
    for (size_t i = 0; i < o->n; i++) {
        if (o->v[i] == v) {
            memmove(o->v + i, o->v + i + 1, (o->n - i - 1) * sizeof(*o->v));
            o->n--;
            return true;
        }
    }
    return false;
}

/* Offer one record to the group's members. 0: handed out (or matched by no member),
 * 1: a member matches but none can take it now. */
static int share_offer(struct mqtt_share_part *p, const char *topic, int32_t partition,
                       const struct sl_record *rec)
{
    struct mqtt_share_grp *g = p->g;
    struct sl_env *env;
    struct mqtt_enc e;
    size_t slen;
    bool matched = false, taken = false;

    if (offs_reserve(&p->pend) != 0) {
        return 1;
    }
    env = sl_env_from_record(rec, partition);
    if (env == NULL) {
        sl_metric_add(g->sh->b->m_dropped, 1);
        return 0;
    }
    mqtt_enc_init(&e, env, topic);
    slen = strlen(e.subject);
    for (uint32_t k = 0; k < g->n_mem; k++) {
        uint32_t idx = (g->rr + k) % g->n_mem;
        struct mqtt_share_member *sm = g->mem[idx];
        struct mqtt_session *s = sm->s;
        uint16_t before = s->n_out;
        uint8_t q;

        if (!mqtt_filter_match(sm->filter, strlen(sm->filter), e.subject, slen)) {
            continue;
        }
        matched = true;
        q = sm->qos < e.msg_qos ? sm->qos : e.msg_qos;
        if (!mqtt_subs_can_take(s, q) ||
            mqtt_subs_deliver(s, &e, q, false, 0, NULL, partition, rec->offset) != 0) {
            continue;
        }
        if (s->n_out > before) {
            s->out[s->n_out - 1].share = p;
            offs_insert(&p->pend, rec->offset);    /* reserved above */
        }
        g->rr = (idx + 1) % g->n_mem;
        taken = true;
        break;
    }
    mqtt_enc_clear(&e);
    sl_env_unref(&env);
    return matched && !taken ? 1 : 0;
}

static int share_record(void *arg, const char *topic, int32_t partition,
                        const struct sl_record *rec)
{
    struct mqtt_share_part *p = arg;
    if (share_offer(p, topic, partition, rec) != 0) {
        /* The cursor moves past it anyway (a seek would re-wake it every loop turn):
         * it waits in redo, offered first next time. */
        if (offs_insert(&p->redo, rec->offset) != 0) {
            sl_metric_add(p->g->sh->b->m_dropped, 1);
        }
        p->blocked = true;
        return 1;
    }
    return 0;
}

struct share_redo {
    struct mqtt_share_part *p;
    int64_t offset;
    bool blocked;
};

static int share_redo_record(void *arg, const char *topic, int32_t partition,
                             const struct sl_record *rec)
{
    struct share_redo *r = arg;
    if (rec->offset == r->offset) {
        r->blocked = share_offer(r->p, topic, partition, rec) != 0;
    }
    return 1;   /* another offset: that record is gone (retention) */
}

static void share_pump_part(struct mqtt_share_part *p)
{
    struct mqtt_share_grp *g = p->g;
    struct sl_log *log = g->sh->b->gw->log;

    if (p->cur == NULL) {
        return;
    }
    /* Bounded by redo.n: each turn hands one out, drops a gone one, or stops. */
    while (p->redo.n > 0) {
        struct share_redo r = {.p = p, .offset = p->redo.v[0]};
        int64_t next = 0;
        int n = sl_log_read(log, g->topic, p->partition, r.offset, 1, 0, share_redo_record,
                            &r, &next);
        if (r.blocked) {
            p->blocked = true;
            return;
        }
        if (n < 0) {
            sl_metric_add(g->sh->b->m_dropped, 1);
        }
        offs_remove(&p->redo, r.offset);
    }
    p->blocked = false;
    /* Bounded by the high watermark, or stops at the first message nobody can take. */
    while (!p->blocked && sl_cursor_poll(p->cur, READ_BATCH, 0, share_record, p) > 0) {
    }
}

static void share_pump(struct mqtt_share_grp *g)
{
    if (g->sh->b->stopping) {
        return;
    }
    if (g->pumping) {
        g->again = true;
        return;
    }
    g->pumping = true;
    do {
        g->again = false;
        for (int32_t i = 0; i < g->n_parts; i++) {
            share_pump_part(&g->parts[i]);
        }
    } while (g->again);
    g->pumping = false;
}

static void share_wake(struct sl_cursor *cur, void *arg)
{
    struct mqtt_share_part *p = arg;
    (void)cur;
    share_pump(p->g);
}

static void share_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    share_pump(arg);
}

/* Pump g from the loop soon (after a join or a member going away). */
static void share_schedule(struct mqtt_share_grp *g)
{
    if (g->ev != NULL) {
        event_active(g->ev, EV_TIMEOUT, 0);
    }
}

/* The lowest offset the group has not finished with in p. */
static int64_t share_commit_point(const struct mqtt_share_part *p)
{
    int64_t c = sl_cursor_position(p->cur);
    if (p->pend.n > 0 && p->pend.v[0] < c) {
        c = p->pend.v[0];
    }
    if (p->redo.n > 0 && p->redo.v[0] < c) {
        c = p->redo.v[0];
    }
    return c;
}

static void share_grp_commit(struct mqtt_share_grp *g)
{
    struct sl_log *log = g->sh->b->gw->log;
    for (int32_t i = 0; i < g->n_parts; i++) {
        struct mqtt_share_part *p = &g->parts[i];
        int64_t c;
        if (p->cur == NULL) {
            continue;
        }
        c = share_commit_point(p);
        if (c > p->committed &&
            sl_group_commit(log, g->group, g->topic, p->partition, c) == 0) {
            p->committed = c;
        }
    }
}

static void share_grp_free(struct mqtt_share_grp *g)
{
    if (g->live) {
        share_grp_commit(g);
    }
    if (g->parts != NULL) {
        for (int32_t i = 0; i < g->n_parts; i++) {
            sl_cursor_close(&g->parts[i].cur);
            free(g->parts[i].pend.v);
            free(g->parts[i].redo.v);
        }
    }
    if (g->ev != NULL) {
        event_free(g->ev);
    }
    free(g->parts);
    free(g->mem);
    free(g->group);
    free(g->topic);
    free(g);
}

/* The group (name, topic), created (positions from the committed offsets) if new. */
static struct mqtt_share_grp *share_grp_get(struct mqtt_shares *sh, const char *name,
                                            const char *topic)
{
    struct sl_log *log = sh->b->gw->log;
    struct mqtt_share_grp *g;
    int32_t n;

    for (g = sh->groups; g != NULL; g = g->next) {
        if (strcmp(g->group + strlen("mqtt-share."), name) == 0 &&
            strcmp(g->topic, topic) == 0) {
            return g;
        }
    }
    n = sl_log_partitions(log, topic);
    if (n <= 0 || (g = calloc(1, sizeof(*g))) == NULL) {
        return NULL;
    }
    g->sh = sh;
    if (asprintf(&g->group, "mqtt-share.%s", name) < 0) {
        g->group = NULL;
    }
    g->topic = strdup(topic);
    g->parts = calloc((size_t)n, sizeof(*g->parts));
    g->ev = event_new(sh->b->gw->base, -1, 0, share_ev, g);
    if (g->group == NULL || g->topic == NULL || g->parts == NULL || g->ev == NULL) {
        free(g->parts);
        g->parts = NULL;
        share_grp_free(g);
        return NULL;
    }
    g->n_parts = n;
    for (int32_t i = 0; i < n; i++) {
        struct mqtt_share_part *p = &g->parts[i];
        int64_t c = sl_group_committed(log, g->group, topic, i);
        struct sl_start st = {.kind = c >= 0 ? SL_START_OFFSET : SL_START_LATEST, .value = c};
        int err = 0;
        p->g = g;
        p->partition = i;
        p->committed = c;
        p->cur = sl_cursor_open(log, topic, i, st, share_wake, p, &err);
        if (p->cur == NULL) {
            share_grp_free(g);
            return NULL;
        }
    }
    g->live = true;
    g->next = sh->groups;
    sh->groups = g;
    return g;
}

static void share_grp_unlink(struct mqtt_shares *sh, struct mqtt_share_grp *g)
{
    for (struct mqtt_share_grp **pg = &sh->groups; *pg != NULL; pg = &(*pg)->next) {
        if (*pg == g) {
            *pg = g->next;
            return;
        }
    }
}

/*
 * s no longer takes messages for g (disconnected, or left it): its unacknowledged
 * hand-outs go back to the group, to be offered to the others. PUBREC'd ones (the client
 * has the message; only PUBREL/PUBCOMP remain) count as delivered. offline: the session
 * also forgets them (no resend with DUP on resume: another member has them).
 */
static void share_release(struct mqtt_share_grp *g, struct mqtt_session *s, bool offline)
{
    bool any = false;
    for (uint16_t i = 0; i < s->n_out;) {
        struct mqtt_out *o = &s->out[i];
        struct mqtt_share_part *p = o->share;
        if (p == NULL || p->g != g) {
            i++;
            continue;
        }
        o->share = NULL;
        offs_remove(&p->pend, o->offset);
        if (o->state == MQTT_OUT_WAIT_COMP) {
            i++;
            continue;
        }
        if (offs_insert(&p->redo, o->offset) != 0) {
            sl_metric_add(s->b->m_dropped, 1);   /* out of memory: not offered again */
        }
        any = true;
        if (!offline) {
            i++;
            continue;
        }
        sl_buf_unref(&o->pkt);
        memmove(o, o + 1, (size_t)(s->n_out - i - 1) * sizeof(*o));
        s->n_out--;
        s->dirty = true;
    }
    if (any) {
        share_schedule(g);
    }
}

/* Is s a member of g (through another filter than skip)? */
static bool share_is_member(const struct mqtt_share_grp *g, const struct mqtt_session *s,
                            const struct mqtt_share_member *skip)
{
    for (uint32_t i = 0; i < g->n_mem; i++) {
        if (g->mem[i] != skip && g->mem[i]->s == s) {
            return true;
        }
    }
    return false;
}

static void share_assigned(struct sl_group_member *gm, void *arg, const int32_t *parts,
                           size_t n)
{
    (void)gm;
    (void)arg;
    (void)parts;
    (void)n;
}

int mqtt_share_join(struct mqtt_shares *sh, struct mqtt_session *s, struct mqtt_sub_entry *e,
                    const char *topic)
{
    struct mqtt_share_grp *g = share_grp_get(sh, e->share_group, topic);
    struct mqtt_share_member *sm;

    if (g == NULL) {
        return -ENOMEM;
    }
    if (g->n_mem == g->cap_mem) {
        uint32_t cap = g->cap_mem ? g->cap_mem * 2 : 4;
        struct mqtt_share_member **n = realloc(g->mem, cap * sizeof(*n));
        if (n == NULL) {
            goto fail;
        }
        g->mem = n;
        g->cap_mem = cap;
    }
    sm = calloc(1, sizeof(*sm));
    if (sm == NULL || (sm->filter = strdup(e->filter)) == NULL) {
        free(sm);
        goto fail;
    }
    sm->g = g;
    sm->s = s;
    sm->qos = e->qos;
    /* membership only shows in the metrics: hand-out is per message, not by partition */
    sm->gm = sl_group_join(sh->b->gw->log, g->group, topic, share_assigned, NULL);
    g->mem[g->n_mem++] = sm;
    sm->next = sh->members;
    sh->members = sm;
    share_schedule(g);
    return 0;
fail:
    if (g->n_mem == 0) {
        share_grp_unlink(sh, g);
        share_grp_free(g);
    }
    return -ENOMEM;
}

/* Take sm out of its group (the group goes, committed, with its last member). */
static void share_leave(struct mqtt_shares *sh, struct mqtt_share_member *sm)
{
    struct mqtt_share_grp *g = sm->g;
    for (uint32_t i = 0; i < g->n_mem; i++) {
        if (g->mem[i] == sm) {
            memmove(g->mem + i, g->mem + i + 1, (g->n_mem - i - 1) * sizeof(*g->mem));
            g->n_mem--;
            if (g->rr > i) {
                g->rr--;
            }
            break;
        }
    }
    if (g->rr >= g->n_mem) {
        g->rr = 0;
    }
    if (!share_is_member(g, sm->s, NULL)) {
        share_release(g, sm->s, false);
    }
    sl_group_leave(&sm->gm);
    free(sm->filter);
    free(sm);
    if (g->n_mem == 0) {
        share_grp_unlink(sh, g);
        share_grp_free(g);
    }
}

void mqtt_share_remove(struct mqtt_shares *sh, struct mqtt_session *s, const char *group,
                       const char *filter)
{
    for (struct mqtt_share_member **p = &sh->members; *p != NULL;) {
        struct mqtt_share_member *sm = *p;
        if (sm->s == s && strcmp(sm->filter, filter) == 0 &&
            strcmp(sm->g->group + strlen("mqtt-share."), group) == 0) {
            *p = sm->next;
            share_leave(sh, sm);
        } else {
            p = &sm->next;
        }
    }
}

/* s went offline: what it has not acknowledged goes to the other members. */
void mqtt_share_offline(struct mqtt_shares *sh, struct mqtt_session *s)
{
    for (struct mqtt_share_member *sm = sh->members; sm != NULL; sm = sm->next) {
        if (sm->s == s) {
            share_release(sm->g, s, true);
        }
    }
}

/* An acknowledged hand-out: the group may commit past it. */
void mqtt_share_acked(struct mqtt_out *o)
{
    struct mqtt_share_part *p = o->share;
    offs_remove(&p->pend, o->offset);
    o->share = NULL;
}

/* Offer waiting messages of the groups of s again (after an ack or a drain). */
void mqtt_share_kick(struct mqtt_shares *sh, struct mqtt_session *s)
{
    for (struct mqtt_share_member *sm = sh->members; sm != NULL; sm = sm->next) {
        if (sm->s == s) {
            share_pump(sm->g);
        }
    }
}

/* ---------------------------------------------------------------- lifetime ---- */

void mqtt_share_init(struct mqtt_shares *sh, struct mqtt_broker *b)
{
    sh->b = b;
    sh->members = NULL;
    sh->groups = NULL;
}

void mqtt_share_fini(struct mqtt_shares *sh)
{
    while (sh->members != NULL) {
        struct mqtt_share_member *sm = sh->members;
        sh->members = sm->next;
        share_leave(sh, sm);
    }
}

void mqtt_share_commit(struct mqtt_shares *sh)
{
    for (struct mqtt_share_grp *g = sh->groups; g != NULL; g = g->next) {
        share_grp_commit(g);
        for (int32_t i = 0; i < g->n_parts; i++) {
            if (g->parts[i].blocked || g->parts[i].redo.n > 0) {
                share_schedule(g);   /* a member may have become able since */
                break;
            }
        }
    }
}

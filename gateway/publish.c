/*
 * The one publish path: route -> finalize -> encode -> append -> ack once durable.
 *
 * Per call: every envelope is routed to one or more (topic, partition) targets; the
 * records for one target share one RecordBatch (one sl_log_append); the caller's
 * callback fires once, after the last append met its flush policy. Small calls (the
 * common case: one event) use stack scratch and one heap block for the in-flight state.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/metrics.h"
#include "gateway/strutil.h"
#include "routing/route.h"

#define PUB_INLINE_TOPICS 4
#define PUB_INLINE_RECS 16
#define PUB_INLINE_HDRS 192

struct pub_topic {
    char name[RT_TOPIC_MAX + 1];
    size_t len;                    /* strlen(name) */
    struct sl_topic *t;            /* the log's topic, looked up once per call */
    int32_t sticky;                /* keyless partition for this call, -1: not chosen */
};

struct pub_rec {
    size_t topic;                  /* index into the call's topic table */
    int32_t partition;
    size_t env;                    /* envelope index */
    bool first_topic;              /* the envelope's first target: fills its item */
    const uint8_t *key;
    int32_t key_len;
};

struct pub_op;

struct pub_group {
    struct pub_op *op;             /* the append callback's argument is the group */
    int32_t partition;
    size_t n;                      /* records in this group */
    size_t first;                  /* index of its first record in group_env */
};

/* In flight: one heap block holding the op, then items[n], groups[n_groups],
 * group_env[n_recs]. */
struct pub_op {
    sl_publish_fn fn;
    void *arg;
    size_t n;                      /* envelopes */
    struct sl_pub_item *items;     /* per envelope: first topic's placement */
    size_t pending;                /* appends not yet called back, +1 while issuing */
    int status;
    const char *error;
    struct pub_group *groups;
    size_t n_groups;
    size_t *group_env;             /* record j (group order): its envelope, or SIZE_MAX */
};

/* Scratch for one call: inline arrays, heap only past them. */
struct pub_scratch {
    struct pub_topic topics_inline[PUB_INLINE_TOPICS];
    struct pub_rec recs_inline[PUB_INLINE_RECS];
    struct pub_topic *topics;
    size_t n_topics, cap_topics;
    struct pub_rec *recs;
    size_t n_recs, cap_recs;
    int64_t now;                   /* the call's arrival time, -1 until read */
    /* The last routing decision (after the explicit topic's fallback) and the subject it
     * was made for. Valid only if the lookup asked for no header: then it is a function
     * of the table, the source and the subject alone, all the same for the whole call,
     * so an envelope with the same subject gets the same decision. */
    bool memo_valid;
    bool memo_ti_known;            /* memo_ti holds memo's topics' indexes */
    /* An explicit topic and no ingress rule for the source (rt_route_has_ingress, asked
     * once per call): every decision is that topic, only the key follows the subject. */
    bool direct;
    const char *memo_subject;
    struct rt_decision memo;
    size_t memo_ti[RT_MAX_TOPICS];
    /* The last keyed record's partition: the same key to the same topic (whose
     * partition count does not change during the call) lands in the same partition. */
    bool pkey_valid;
    size_t pkey_topic;
    const uint8_t *pkey;
    int32_t pkey_len;
    int32_t pkey_partition;
};

/* Header lookups for the router that note whether the router asked at all. */
struct hdr_probe {
    const struct sl_env *env;
    bool asked;
};

static const char *env_header_value(void *arg, const char *name)
{
    const struct sl_env *env = arg;
    const struct sl_env_hdr *h = sl_env_find_header(env, name);
    if (h != NULL) {
        return h->value != NULL ? (const char *)h->value->data : "";
    }
    return sl_env_get_attr(env, name);
}

static const char *probe_header_value(void *arg, const char *name)
{
    struct hdr_probe *pr = arg;
    pr->asked = true;
    return env_header_value((void *)pr->env, name);
}

static void op_release(struct pub_op *op)
{
    if (--op->pending == 0) {
        struct sl_publish_result res = {
            .status = op->status,
            .error = op->error,
            .n = op->n,
            .items = op->items,
        };
        op->fn(op->arg, &res);
        free(op);
    }
}

static void append_done(void *arg, const struct sl_append_result *res)
{
    struct pub_group *g = arg;
    struct pub_op *op = g->op;

    if (res->status != 0) {
        if (op->status == 0) {
            op->status = res->status;
            op->error = "append failed";
        }
    } else {
        for (size_t j = 0; j < g->n; j++) {
            size_t e = op->group_env[g->first + j];
            if (e != SIZE_MAX) {
                op->items[e].partition = res->partition;
                op->items[e].offset = res->base_offset + (int64_t)j;
            }
        }
    }
    op_release(op);
}

/* The key a decision asks for, as bytes borrowed from env (or NULL for none). */
static void decision_key(const struct sl_env *env, const struct rt_decision *d,
                         const uint8_t **key, int32_t *len)
{
    *key = NULL;
    *len = -1;
    if (d->key == RT_KEY_SUBJECT) {
        *key = (const uint8_t *)env->subject;
        *len = (int32_t)strlen(env->subject);
    } else if (d->key == RT_KEY_HEADER && d->key_header != NULL) {
        const char *v = env_header_value((void *)env, d->key_header);
        if (v != NULL) {
            *key = (const uint8_t *)v;
            *len = (int32_t)strlen(v);
        }
    }
}

/* The log's topic, created first if allowed; NULL with *rc = -errno if not. */
static struct sl_topic *ensure_topic(struct sl_gateway *gw, const char *topic, int *rc)
{
    struct sl_topic *t = sl_log_find_topic(gw->log, topic);

    if (t != NULL && sl_log_topic_partitions(t) > 0) {
        return t;
    }
    if (gw->cfg != NULL && !gw->cfg->auto_create) {
        *rc = -ENOENT;
        return NULL;
    }
    *rc = sl_log_topic_configure(gw->log, topic, NULL);
    if (*rc != 0) {
        return NULL;
    }
    t = sl_log_find_topic(gw->log, topic);
    if (t == NULL) {
        *rc = -ENOENT;
    }
    return t;
}

/* Grow one of the scratch arrays: inline first, then the heap. */
static int grow(void **arr, size_t *cap, size_t elem, void *inline_arr)
{
    size_t nc = *cap * 2;
    void *na;
    if (*arr == inline_arr) {
        na = malloc(nc * elem);
        if (na != NULL) {
            memcpy(na, *arr, *cap * elem);
        }
    } else {
        na = realloc(*arr, nc * elem);
    }
    if (na == NULL) {
        return -ENOMEM;
    }
    *arr = na;
    *cap = nc;
    return 0;
}

/* The index of topic name in the call's table, adding it (and creating the topic in
 * the log if allowed) the first time. */
static int topic_index(struct sl_gateway *gw, struct pub_scratch *sc, const char *name,
                       size_t *idx)
{
    struct sl_topic *t;
    int rc = 0;

    for (size_t i = 0; i < sc->n_topics; i++) {
        if (strcmp(sc->topics[i].name, name) == 0) {
            *idx = i;
            return 0;
        }
    }
    if (!sl_log_topic_name_valid(name)) {
        return -EINVAL;
    }
    t = ensure_topic(gw, name, &rc);
    if (t == NULL) {
        return rc;
    }
    if (sc->n_topics == sc->cap_topics &&
        grow((void **)&sc->topics, &sc->cap_topics, sizeof(*sc->topics),
             sc->topics_inline) != 0) {
        return -ENOMEM;
    }
    sl_strlcpy(sc->topics[sc->n_topics].name, name, sizeof(sc->topics[0].name));
    sc->topics[sc->n_topics].len = strlen(sc->topics[sc->n_topics].name);
    sc->topics[sc->n_topics].sticky = -1;
    sc->topics[sc->n_topics].t = t;
    *idx = sc->n_topics++;
    return 0;
}

/* The routing decision for env into sc->memo: the previous envelope's when that one
 * provably holds (same subject, no header asked), else a lookup. 0 or -errno. */
static int route_decide(struct sl_gateway *gw, const struct sl_pub_source *src,
                        struct pub_scratch *sc, const struct sl_env *env)
{
    struct rt_decision *d = &sc->memo;
    struct hdr_probe probe = {.env = env, .asked = false};
    int rc;

    if (sc->direct) {
        /* The lookup would answer default addressing or -EINVAL, and the explicit topic
         * replaces both (below): no lookup. The topic stays; the key is the subject's. */
        if (!sc->memo_valid) {
            d->rule = NULL;
            d->n_topics = 1;
            d->key_header = NULL;
            sl_strlcpy(d->topics[0], src->topic, sizeof(d->topics[0]));
            sc->memo_valid = true;
            sc->memo_ti_known = false;
        }
        d->key = strcmp(env->subject, src->topic) != 0 ? RT_KEY_SUBJECT : RT_KEY_NONE;
        sc->memo_subject = env->subject;
        return 0;
    }
    if (sc->memo_valid && strcmp(sc->memo_subject, env->subject) == 0) {
        return 0;
    }
    sc->memo_valid = false;
    sc->memo_ti_known = false;
    rc = rt_route_ingress(gw->routes, src->listener, src->bridge, env->subject,
                          probe_header_value, &probe, d);
    if (rc != 0 && src->topic == NULL) {
        return rc;
    }
    if ((rc != 0 || d->rule == NULL) && src->topic != NULL) {
        /* Explicit topic (HTTP): the key is what the request gave; else a subject of
         * its own is the key, as with every protocol (DESIGN.md's addressing), so one
         * subject keeps its order across protocols. A subject that is just the topic
         * (the default) is no key: such events spread over the partitions. */
        d->rule = NULL;
        d->n_topics = 1;
        sl_strlcpy(d->topics[0], src->topic, sizeof(d->topics[0]));
        d->key = strcmp(env->subject, src->topic) != 0 ? RT_KEY_SUBJECT : RT_KEY_NONE;
    }
    sc->memo_valid = !probe.asked;
    sc->memo_subject = env->subject;
    return 0;
}

/* The partition for a keyed record of topic ti: the previous keyed record's if it had
 * the same topic and key bytes, else the partitioner's. */
static int32_t keyed_partition(struct sl_gateway *gw, struct pub_scratch *sc, size_t ti,
                               const uint8_t *key, int32_t key_len)
{
    int32_t p;

    if (sc->pkey_valid && sc->pkey_topic == ti && sc->pkey_len == key_len &&
        (key_len <= 0 || memcmp(sc->pkey, key, (size_t)key_len) == 0)) {
        return sc->pkey_partition;
    }
    p = sl_log_topic_partition_for(sc->topics[ti].t, key, key_len);
    sc->pkey_valid = p >= 0;
    sc->pkey_topic = ti;
    sc->pkey = key;
    sc->pkey_len = key_len;
    sc->pkey_partition = p;
    return p;
}

/* Route one envelope and add a record per target topic. */
static int route_env(struct sl_gateway *gw, const struct sl_pub_source *src,
                     struct pub_scratch *sc, struct sl_env *env, size_t i)
{
    const struct rt_decision *dp = &sc->memo;
    int rc;

    if (env->subject == NULL || env->subject[0] == '\0') {
        return -EINVAL;
    }
    rc = route_decide(gw, src, sc, env);
    if (rc != 0) {
        return rc;
    }
    if (src->has_partition) {
        /* The partition is one of src->topic's: refused (nothing changed, nothing
         * created) if a route sends the event elsewhere or the topic has no such
         * partition; a topic created by this publish gets the default count. */
        int32_t n = sl_log_partitions(gw->log, src->topic);
        if (dp->rule != NULL && (dp->n_topics != 1 || strcmp(dp->topics[0], src->topic) != 0)) {
            return -ENOTSUP;
        }
        if (n <= 0 && gw->cfg != NULL && gw->cfg->auto_create) {
            n = gw->cfg->topic_defaults.partitions;
        }
        if (n > 0 && (src->partition < 0 || src->partition >= n)) {
            return -ERANGE;
        }
    }
    if (dp->rule != NULL) {
        for (size_t s = 0; s < dp->rule->n_set; s++) {
            if (dp->rule->set[s].value == NULL) {
                continue;           /* removal is not supported yet: keep the header */
            }
            if (sl_env_add_header(env, dp->rule->set[s].name, dp->rule->set[s].value,
                                  (int32_t)strlen(dp->rule->set[s].value)) != 0) {
                return -ENOMEM;
            }
        }
    }
    rc = sl_env_finalize_now(env, &sc->now);
    if (rc != 0) {
        return rc;
    }
    for (size_t t = 0; t < dp->n_topics; t++) {
        struct pub_rec *r;
        size_t ti;

        if (sc->memo_ti_known) {
            ti = sc->memo_ti[t];       /* the same decision's topic: the same index */
        } else {
            rc = topic_index(gw, sc, dp->topics[t], &ti);
            if (rc != 0) {
                return rc;
            }
            sc->memo_ti[t] = ti;
        }
        if (sc->n_recs == sc->cap_recs &&
            grow((void **)&sc->recs, &sc->cap_recs, sizeof(*sc->recs),
                 sc->recs_inline) != 0) {
            return -ENOMEM;
        }
        r = &sc->recs[sc->n_recs];
        r->topic = ti;
        r->env = i;
        r->first_topic = t == 0;
        if (env->key != NULL) {
            r->key = env->key->data;
            r->key_len = (int32_t)env->key->len;
        } else {
            decision_key(env, dp, &r->key, &r->key_len);
        }
        if (src->has_partition) {
            r->partition = src->partition;     /* range checked above */
        } else if (r->key != NULL) {
            r->partition = keyed_partition(gw, sc, ti, r->key, r->key_len);
        } else {
            /* keyless: one partition per topic for the whole call (sticky) */
            if (sc->topics[ti].sticky < 0) {
                sc->topics[ti].sticky = sl_log_topic_partition_for(sc->topics[ti].t, NULL,
                                                                   -1);
            }
            r->partition = sc->topics[ti].sticky;
        }
        if (r->partition < 0) {
            return r->partition;
        }
        sc->n_recs++;
    }
    sc->memo_ti_known = sc->memo_valid;
    return 0;
}

static int cmp_rec(const void *a, const void *b)
{
    const struct pub_rec *x = a;
    const struct pub_rec *y = b;
    if (x->topic != y->topic) {
        return x->topic < y->topic ? -1 : 1;
    }
    if (x->partition != y->partition) {
        return x->partition < y->partition ? -1 : 1;
    }
    return x->env < y->env ? -1 : (x->env > y->env ? 1 : 0);
}

/* Are the records in cmp_rec's order already? The common batch (one topic, one key or
 * none) is: the records are made in envelope order. */
static bool recs_sorted(const struct pub_scratch *sc)
{
    for (size_t j = 1; j < sc->n_recs; j++) {
        if (cmp_rec(&sc->recs[j - 1], &sc->recs[j]) > 0) {
            return false;
        }
    }
    return true;
}

/*
 * Put the records in cmp_rec's order. They are made in envelope order, so a stable pass
 * over their (topic, partition) groups gives it: count each group, order the few groups,
 * place each record after the ones before it. The usual unsorted call (one topic, keys
 * spread over its partitions) has a handful of groups; past PUB_SORT_GROUPS, or without
 * memory for the pass, qsort.
 */
#define PUB_SORT_GROUPS 64

static void sort_recs(struct pub_scratch *sc)
{
    struct {
        size_t topic;
        int32_t partition;
        size_t next;               /* where its next record goes */
    } g[PUB_SORT_GROUPS];
    uint8_t order[PUB_SORT_GROUPS];
    size_t n_g = 0;
    size_t last = 0;
    struct pub_rec *out;
    uint8_t *gi;

    out = malloc(sc->n_recs * (sizeof(*out) + 1));
    if (out == NULL) {
        qsort(sc->recs, sc->n_recs, sizeof(*sc->recs), cmp_rec);
        return;
    }
    gi = (uint8_t *)(out + sc->n_recs);
    for (size_t j = 0; j < sc->n_recs; j++) {
        const struct pub_rec *r = &sc->recs[j];
        if (n_g == 0 || g[last].topic != r->topic || g[last].partition != r->partition) {
            for (last = 0; last < n_g; last++) {
                if (g[last].topic == r->topic && g[last].partition == r->partition) {
                    break;
                }
            }
            if (last == n_g) {
                if (n_g == PUB_SORT_GROUPS) {
                    free(out);
                    qsort(sc->recs, sc->n_recs, sizeof(*sc->recs), cmp_rec);
                    return;
                }
                g[n_g].topic = r->topic;
                g[n_g].partition = r->partition;
                g[n_g].next = 0;
                n_g++;
            }
        }
        g[last].next++;            /* a count until the offsets below */
        gi[j] = (uint8_t)last;
    }
    /* the groups in (topic, partition) order: insertion sort of their indexes */
    for (size_t a = 0; a < n_g; a++) {
        size_t b = a;
        while (b > 0 && (g[order[b - 1]].topic > g[a].topic ||
                         (g[order[b - 1]].topic == g[a].topic &&
                          g[order[b - 1]].partition > g[a].partition))) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = (uint8_t)a;
    }
    for (size_t a = 0, at = 0; a < n_g; a++) {
        size_t count = g[order[a]].next;
        g[order[a]].next = at;
        at += count;
    }
    for (size_t j = 0; j < sc->n_recs; j++) {
        out[g[gi[j]].next++] = sc->recs[j];
    }
    memcpy(sc->recs, out, sc->n_recs * sizeof(*out));
    free(out);
}

/* Events accepted per listener: the few listener names are cached. */
static struct sl_metric *published_counter(const char *listener)
{
    static struct {
        char name[32];
        struct sl_metric *m;
    } cache[8];
    static unsigned cache_gen;
    char labels[64];

    if (cache_gen != sl_metrics_generation()) {
        memset(cache, 0, sizeof(cache));      /* the registry was reset */
        cache_gen = sl_metrics_generation();
    }

    for (size_t i = 0; i < sizeof(cache) / sizeof(cache[0]); i++) {
        if (cache[i].m != NULL && strcmp(cache[i].name, listener) == 0) {
            return cache[i].m;
        }
        if (cache[i].m == NULL) {
            snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
            cache[i].m = sl_metric_counter("sluice_published_events_total",
                                           "Events acknowledged or accepted for publishing",
                                           labels);
            snprintf(cache[i].name, sizeof(cache[i].name), "%s", listener);
            return cache[i].m;
        }
    }
    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    return sl_metric_counter("sluice_published_events_total", "", labels);
}

/* Allocate the in-flight op for n envelopes and the sorted records' groups. */
static struct pub_op *op_new(const struct pub_scratch *sc, size_t n)
{
    size_t n_groups = 0;
    struct pub_op *op;
    char *p;

    for (size_t j = 0; j < sc->n_recs; j++) {
        if (j == 0 || sc->recs[j].topic != sc->recs[j - 1].topic ||
            sc->recs[j].partition != sc->recs[j - 1].partition) {
            n_groups++;
        }
    }
    op = malloc(sizeof(*op) + n * sizeof(*op->items) + n_groups * sizeof(*op->groups) +
                sc->n_recs * sizeof(*op->group_env));
    if (op == NULL) {
        return NULL;
    }
    memset(op, 0, sizeof(*op));
    p = (char *)(op + 1);
    op->items = (struct sl_pub_item *)p;
    p += n * sizeof(*op->items);
    op->groups = (struct pub_group *)p;
    p += n_groups * sizeof(*op->groups);
    op->group_env = (size_t *)p;
    op->n = n;
    for (size_t i = 0; i < n; i++) {
        op->items[i].topic[0] = '\0';
        op->items[i].partition = -1;
        op->items[i].offset = -1;
    }
    return op;
}

int sl_gateway_publish(struct sl_gateway *gw, const struct sl_pub_source *src,
                       struct sl_env **envs, size_t n, sl_publish_fn fn, void *arg)
{
    struct pub_scratch sc;
    struct sl_hdr hdrs_inline[PUB_INLINE_HDRS];
    struct sl_rec_in rin_inline[PUB_INLINE_RECS];
    struct sl_hdr *hdrs = hdrs_inline;
    struct sl_rec_in *rin = rin_inline;
    struct pub_op *op = NULL;
    size_t n_hdrs = 0;
    int rc = 0;

    if (n == 0) {
        return -EINVAL;
    }
    sc.topics = sc.topics_inline;
    sc.cap_topics = PUB_INLINE_TOPICS;
    sc.n_topics = 0;
    sc.recs = sc.recs_inline;
    sc.cap_recs = PUB_INLINE_RECS;
    sc.n_recs = 0;
    sc.now = -1;
    sc.memo_valid = false;
    sc.memo_ti_known = false;
    sc.direct = src->topic != NULL &&
                !rt_route_has_ingress(gw->routes, src->listener, src->bridge);
    sc.pkey_valid = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = route_env(gw, src, &sc, envs[i], i);
    }
    if (rc != 0) {
        goto out;
    }
    if (!recs_sorted(&sc)) {
        sort_recs(&sc);
    }
    for (size_t j = 0; j < sc.n_recs; j++) {
        n_hdrs += sl_env_record_headers(envs[sc.recs[j].env]);
    }
    if (n_hdrs > PUB_INLINE_HDRS) {
        hdrs = malloc(n_hdrs * sizeof(*hdrs));
    }
    if (sc.n_recs > PUB_INLINE_RECS) {
        rin = malloc(sc.n_recs * sizeof(*rin));
    }
    op = op_new(&sc, n);
    if (hdrs == NULL || rin == NULL || op == NULL) {
        free(op);
        rc = -ENOMEM;
        goto out;
    }
    op->fn = fn;
    op->arg = arg;
    op->pending = 1;
    /* Encode every record (header arrays borrow from the envelopes) and group them. */
    struct sl_hdr *hp = hdrs;
    for (size_t j = 0; j < sc.n_recs; j++) {
        const struct pub_rec *r = &sc.recs[j];
        sl_env_to_record(envs[r->env], hp, &rin[j]);
        hp += rin[j].n_headers;
        rin[j].key = r->key;
        rin[j].key_len = r->key_len;
        op->group_env[j] = r->first_topic ? r->env : SIZE_MAX;
        if (r->first_topic) {
            memcpy(op->items[r->env].topic, sc.topics[r->topic].name,
                   sc.topics[r->topic].len + 1);
        }
        if (j == 0 || r->topic != sc.recs[j - 1].topic ||
            r->partition != sc.recs[j - 1].partition) {
            struct pub_group *g = &op->groups[op->n_groups++];
            g->op = op;
            g->partition = r->partition;
            g->first = j;
            g->n = 0;
        }
        op->groups[op->n_groups - 1].n++;
    }
    for (size_t g = 0; g < op->n_groups; g++) {
        struct pub_group *grp = &op->groups[g];
        struct sl_topic *topic = sc.topics[sc.recs[grp->first].topic].t;
        int arc;

        op->pending++;
        arc = sl_log_append_topic(gw->log, topic, grp->partition, &rin[grp->first], grp->n,
                                  append_done, grp);
        if (arc != 0) {
            op->pending--;
            if (op->status == 0) {
                op->status = arc;
                op->error = "append refused";
            }
            break;
        }
    }
    if (src->listener != NULL) {
        sl_metric_add(published_counter(src->listener), n);
    }
    op_release(op);
    rc = 0;
out:
    if (hdrs != hdrs_inline) {
        free(hdrs);
    }
    if (rin != rin_inline) {
        free(rin);
    }
    if (sc.topics != sc.topics_inline) {
        free(sc.topics);
    }
    if (sc.recs != sc.recs_inline) {
        free(sc.recs);
    }
    return rc;
}

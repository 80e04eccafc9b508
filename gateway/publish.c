/*
 * The one publish path: route -> finalize -> encode -> append -> ack once durable.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/metrics.h"
#include "routing/route.h"

struct pub_group {
    const char *topic;             /* points into op->topics */
    int32_t partition;
    size_t n;                      /* records in this group */
    size_t first;                  /* index into op->recs */
};

struct pub_op {
    struct sl_gateway *gw;
    sl_publish_fn fn;
    void *arg;
    size_t n;                      /* envelopes */
    struct sl_pub_item *items;     /* per envelope: first topic's placement */
    size_t pending;                /* appends not yet called back, +1 while issuing */
    int status;
    const char *error;
    /* per group: which envelopes' items it fills */
    struct pub_group *groups;
    size_t n_groups;
    size_t *group_env;             /* for record j (group order): its envelope index,
                                      or SIZE_MAX for a second-topic copy */
};

struct pub_append {
    struct pub_op *op;
    size_t group;
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

static void op_finish(struct pub_op *op)
{
    struct sl_publish_result res = {
        .status = op->status,
        .error = op->error,
        .n = op->n,
        .items = op->items,
    };
    op->fn(op->arg, &res);
    free(op->items);
    free(op->groups);
    free(op->group_env);
    free(op);
}

static void op_release(struct pub_op *op)
{
    if (--op->pending == 0) {
        op_finish(op);
    }
}

static void append_done(void *arg, const struct sl_append_result *res)
{
    struct pub_append *pa = arg;
    struct pub_op *op = pa->op;
    struct pub_group *g = &op->groups[pa->group];

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
    free(pa);
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

static int ensure_topic(struct sl_gateway *gw, const char *topic)
{
    if (sl_log_partitions(gw->log, topic) > 0) {
        return 0;
    }
    if (gw->cfg != NULL && !gw->cfg->auto_create) {
        return -ENOENT;
    }
    return sl_log_topic_configure(gw->log, topic, NULL);
}

struct pub_rec {
    const char *topic;
    int32_t partition;
    size_t env;                    /* envelope index */
    bool first_topic;
    const uint8_t *key;
    int32_t key_len;
};

static int cmp_rec(const void *a, const void *b)
{
    const struct pub_rec *x = a;
    const struct pub_rec *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c != 0) {
        return c;
    }
    if (x->partition != y->partition) {
        return x->partition < y->partition ? -1 : 1;
    }
    return x->env < y->env ? -1 : (x->env > y->env ? 1 : 0);
}

/* Per call: the keyless partition chosen for a topic (sticky for the whole call). */
struct sticky {
    char topic[250];
    int32_t partition;
};

/* Events accepted per listener: the few listener names are cached. */
static struct sl_metric *published_counter(const char *listener)
{
    static struct {
        const char *name;
        struct sl_metric *m;
    } cache[8];
    char labels[64];

    for (size_t i = 0; i < sizeof(cache) / sizeof(cache[0]); i++) {
        if (cache[i].name == NULL) {
            snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
            cache[i].m = sl_metric_counter("sluice_published_events_total",
                                           "Events acknowledged or accepted for publishing",
                                           labels);
            cache[i].name = listener;   /* listener names are static strings */
            return cache[i].m;
        }
        if (strcmp(cache[i].name, listener) == 0) {
            return cache[i].m;
        }
    }
    snprintf(labels, sizeof(labels), "listener=\"%s\"", listener);
    return sl_metric_counter("sluice_published_events_total", "", labels);
}

int sl_gateway_publish(struct sl_gateway *gw, const struct sl_pub_source *src,
                       struct sl_env **envs, size_t n, sl_publish_fn fn, void *arg)
{
    struct rt_decision d;
    struct pub_rec *recs = NULL;
    char (*topics)[250] = NULL;       /* storage for resolved topic names */
    struct sticky *sticky = NULL;
    size_t n_recs = 0, cap_recs = 0, n_sticky = 0;
    struct sl_hdr *hdrs = NULL;
    struct sl_rec_in *rin = NULL;
    struct pub_op *op = NULL;
    int rc = 0;

    if (n == 0) {
        return -EINVAL;
    }
    cap_recs = n;
    recs = calloc(cap_recs, sizeof(*recs));
    topics = calloc(cap_recs, sizeof(*topics));
    sticky = calloc(cap_recs, sizeof(*sticky));
    if (recs == NULL || topics == NULL || sticky == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct sl_env *env = envs[i];
        if (env->subject == NULL || env->subject[0] == '\0') {
            rc = -EINVAL;
            goto out;
        }
        rc = rt_route_ingress(gw->routes, src->listener, src->bridge, env->subject,
                              env_header_value, env, &d);
        if (rc != 0 && src->topic == NULL) {
            goto out;
        }
        if ((rc != 0 || d.rule == NULL) && src->topic != NULL) {
            d.rule = NULL;
            /* Explicit topic (HTTP): the key is what the request gave, nothing else. */
            d.n_topics = 1;
            snprintf(d.topics[0], sizeof(d.topics[0]), "%s", src->topic);
            d.key = RT_KEY_NONE;
        }
        if (d.rule != NULL) {
            for (size_t s = 0; s < d.rule->n_set; s++) {
                if (d.rule->set[s].value == NULL) {
                    continue;       /* removal is not supported yet: keep the header */
                }
                if (sl_env_add_header(env, d.rule->set[s].name, d.rule->set[s].value,
                                      (int32_t)strlen(d.rule->set[s].value)) != 0) {
                    rc = -ENOMEM;
                    goto out;
                }
            }
        }
        rc = sl_env_finalize(env);
        if (rc != 0) {
            goto out;
        }
        for (size_t t = 0; t < d.n_topics; t++) {
            struct pub_rec *r;
            const uint8_t *key;
            int32_t key_len;

            if (!sl_log_topic_name_valid(d.topics[t])) {
                rc = -EINVAL;
                goto out;
            }
            rc = ensure_topic(gw, d.topics[t]);
            if (rc != 0) {
                goto out;
            }
            if (n_recs == cap_recs) {
                size_t nc = cap_recs * 2;
                struct pub_rec *nr = realloc(recs, nc * sizeof(*recs));
                char (*nt)[250] = realloc(topics, nc * sizeof(*topics));
                struct sticky *ns = realloc(sticky, nc * sizeof(*sticky));
                if (nr != NULL) {
                    recs = nr;
                }
                if (nt != NULL) {
                    topics = nt;
                    /* re-point stored topic names at the moved storage */
                    for (size_t k = 0; k < n_recs; k++) {
                        recs[k].topic = topics[k];
                    }
                }
                if (ns != NULL) {
                    sticky = ns;
                }
                if (nr == NULL || nt == NULL || ns == NULL) {
                    rc = -ENOMEM;
                    goto out;
                }
                cap_recs = nc;
            }
            r = &recs[n_recs];
            memcpy(topics[n_recs], d.topics[t], sizeof(topics[0]));
            r->topic = topics[n_recs];
            r->env = i;
            r->first_topic = t == 0;
            if (env->key != NULL) {
                key = env->key->data;
                key_len = (int32_t)env->key->len;
            } else {
                decision_key(env, &d, &key, &key_len);
            }
            r->key = key;
            r->key_len = key_len;
            if (key != NULL) {
                r->partition = sl_log_partition_for(gw->log, r->topic, key, key_len);
            } else {
                size_t k;
                for (k = 0; k < n_sticky; k++) {
                    if (strcmp(sticky[k].topic, r->topic) == 0) {
                        break;
                    }
                }
                if (k == n_sticky) {
                    memcpy(sticky[k].topic, r->topic, sizeof(sticky[k].topic));
                    sticky[k].partition = sl_log_partition_for(gw->log, r->topic, NULL, -1);
                    n_sticky++;
                }
                r->partition = sticky[k].partition;
            }
            if (r->partition < 0) {
                rc = r->partition;
                goto out;
            }
            n_recs++;
        }
    }
    qsort(recs, n_recs, sizeof(*recs), cmp_rec);

    op = calloc(1, sizeof(*op));
    if (op != NULL) {
        op->items = calloc(n, sizeof(*op->items));
        op->groups = calloc(n_recs, sizeof(*op->groups));
        op->group_env = calloc(n_recs, sizeof(*op->group_env));
    }
    size_t n_hdrs = 0;
    for (size_t j = 0; j < n_recs; j++) {
        n_hdrs += sl_env_record_headers(envs[recs[j].env]);
    }
    hdrs = malloc(n_hdrs * sizeof(*hdrs));
    rin = malloc(n_recs * sizeof(*rin));
    if (op == NULL || op->items == NULL || op->groups == NULL || op->group_env == NULL ||
        hdrs == NULL || rin == NULL) {
        if (op != NULL) {
            free(op->items);
            free(op->groups);
            free(op->group_env);
            free(op);
            op = NULL;
        }
        rc = -ENOMEM;
        goto out;
    }
    op->gw = gw;
    op->fn = fn;
    op->arg = arg;
    op->n = n;
    op->pending = 1;
    for (size_t i = 0; i < n; i++) {
        op->items[i].partition = -1;
        op->items[i].offset = -1;
    }
    /* Encode every record (header arrays borrow from the envelopes) and group them. */
    struct sl_hdr *hp = hdrs;
    for (size_t j = 0; j < n_recs; j++) {
        struct sl_env *env = envs[recs[j].env];
        sl_env_to_record(env, hp, &rin[j]);
        hp += rin[j].n_headers;
        rin[j].key = recs[j].key;
        rin[j].key_len = recs[j].key_len;
        op->group_env[j] = recs[j].first_topic ? recs[j].env : SIZE_MAX;
        if (recs[j].first_topic) {
            snprintf(op->items[recs[j].env].topic, sizeof(op->items[0].topic), "%s",
                     recs[j].topic);
        }
        if (op->n_groups == 0 ||
            strcmp(op->groups[op->n_groups - 1].topic, recs[j].topic) != 0 ||
            op->groups[op->n_groups - 1].partition != recs[j].partition) {
            op->groups[op->n_groups].topic = recs[j].topic;
            op->groups[op->n_groups].partition = recs[j].partition;
            op->groups[op->n_groups].first = j;
            op->n_groups++;
        }
        op->groups[op->n_groups - 1].n++;
    }
    for (size_t g = 0; g < op->n_groups; g++) {
        struct pub_append *pa = malloc(sizeof(*pa));
        int arc;
        if (pa == NULL) {
            arc = -ENOMEM;
        } else {
            pa->op = op;
            pa->group = g;
            op->pending++;
            arc = sl_log_append(gw->log, op->groups[g].topic, op->groups[g].partition,
                                &rin[op->groups[g].first], op->groups[g].n, append_done, pa);
            if (arc != 0) {
                op->pending--;
                free(pa);
            }
        }
        if (arc != 0) {
            if (op->status == 0) {
                op->status = arc;
                op->error = "append refused";
            }
            break;
        }
    }
    /* Group topics point into topics[] which we free below: appends copied them. */
    for (size_t g = 0; g < op->n_groups; g++) {
        op->groups[g].topic = NULL;
    }
    if (src->listener != NULL) {
        sl_metric_add(published_counter(src->listener), n);
    }
    op_release(op);
    rc = 0;
out:
    free(recs);
    free(topics);
    free(sticky);
    free(hdrs);
    free(rin);
    return rc;
}

/*
 * Routing table: compiling ingress rules and egress bindings into it (rule copies, the
 * packed per-rule lookup data, one trie per ingress source and per egress topic) and
 * looking events up in it (rt_route_ingress, rt_route_egress). The trie forest is in
 * route_trie.c, the syntax of subjects, patterns and templates in route_syntax.c.
 */
#include "routing/route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/route_syntax.h"
#include "routing/route_trie.h"

#define RT_NAME_MAX 255          /* listener / bridge names */

/* ---- small helpers ------------------------------------------------------------------ */

static char *dup_str(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

__attribute__((format(printf, 3, 4)))
static int set_err(char **err, int line, const char *fmt, ...)
{
    if (err != NULL) {
        char *msg = NULL;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0) {
            msg = NULL;
        }
        va_end(ap);
        *err = NULL;
        if (msg != NULL) {
            if (asprintf(err, "line %d: %s", line, msg) < 0) {
                *err = NULL;
            }
            free(msg);
        }
    }
    return -EINVAL;
}

/* ---- the table ------------------------------------------------------------------------ */

struct in_rule {
    struct rt_ingress pub;       /* first: decisions point here; strings owned */
    const char *topic_ptrs[RT_MAX_TOPICS];  /* pub.topics: point into topic_text */
    char topic_text[];           /* the topic names, NUL-separated (lookups read the
                                  * table's copy: in_hot.text) */
};

#define HOT_INLINE 16            /* topic names up to this long (with NULs) live in in_hot */

/*
 * What a lookup reads of rule `id`, 32 bytes in one array indexed by id, so that
 * checking a candidate and resolving the decision usually touch one cache line instead
 * of the rule's scattered allocations.
 */
struct in_hot {
    const struct in_rule *rule;
    uint8_t n_topics;
    uint8_t templated;           /* bit i: topic i uses {N} */
    uint8_t key;                 /* enum rt_key */
    uint8_t when;                /* has header predicates */
    uint32_t text_size;          /* bytes of the topic names, NUL-separated */
    union {
        char text[HOT_INLINE];   /* text_size <= HOT_INLINE */
        uint32_t off;            /* else: offset in rt_table.topic_text */
    } topics;
};

_Static_assert(RT_MAX_TOPICS <= 8, "in_hot.templated is 8 bits");
_Static_assert(sizeof(struct in_hot) == 32, "two rules per cache line");

struct rt_table {
    struct in_rule **in;
    size_t n_in, cap_in;
    struct rt_egress **eg;
    size_t n_eg, cap_eg;
    struct in_hot *in_hot;       /* per ingress id: what a lookup reads, packed */
    size_t cap_hot;
    char *topic_text;            /* rules' topic names too long for in_hot, NUL-separated */
    size_t topic_len, topic_cap;
    struct map sources;          /* "l:NAME" / "b:NAME" -> keyed_root (ingress tries) */
    struct map topics;           /* topic -> keyed_root (egress tries) */
    struct forest forest;        /* the nodes of every trie above */
};

struct rt_table *rt_table_new(void)
{
    return calloc(1, sizeof(struct rt_table));
}

static void kvs_free(const struct rt_kv *kv, size_t n)
{
    if (kv == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free((char *)kv[i].name);
        free((char *)kv[i].value);
    }
    free((struct rt_kv *)kv);
}

static void in_rule_free(struct in_rule *r)
{
    if (r == NULL) {
        return;
    }
    struct rt_ingress *p = &r->pub;
    free((char *)p->listener);
    free((char *)p->bridge);
    free((char *)p->match);
    kvs_free(p->when, p->n_when);
    free((char *)p->key_header);
    kvs_free(p->set, p->n_set);
    free(r);
}

static void egress_free(struct rt_egress *e)
{
    if (e == NULL) {
        return;
    }
    free((char *)e->topic);
    free((char *)e->match);
    free((char *)e->bridge);
    free((char *)e->listener);
    free((char *)e->destination);
    free(e);
}

void rt_table_free(struct rt_table **t)
{
    if (t == NULL || *t == NULL) {
        return;
    }
    struct rt_table *tb = *t;
    for (size_t i = 0; i < tb->n_in; i++) {
        in_rule_free(tb->in[i]);
    }
    free(tb->in);
    for (size_t i = 0; i < tb->n_eg; i++) {
        egress_free(tb->eg[i]);
    }
    free(tb->eg);
    free(tb->in_hot);
    free(tb->topic_text);
    rt_keyed_map_free(&tb->sources);
    rt_keyed_map_free(&tb->topics);
    rt_forest_free(&tb->forest);
    free(tb);
    *t = NULL;
}

size_t rt_table_n_ingress(const struct rt_table *t)
{
    return t != NULL ? t->n_in : 0;
}

size_t rt_table_n_egress(const struct rt_table *t)
{
    return t != NULL ? t->n_eg : 0;
}

/* Make room for one more pointer in *v (n used of *cap). 0 or -ENOMEM. */
static int grow_ptrs(void **v, size_t elem, size_t n, size_t *cap)
{
    if (n < *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap * 2 : 16;
    void *nv = realloc(*v, ncap * elem);
    if (nv == NULL) {
        return -ENOMEM;
    }
    *v = nv;
    *cap = ncap;
    return 0;
}

/* Build the source key "l:NAME" / "b:NAME" into buf (RT_NAME_MAX + 3). Length or -1. */
static int source_key(const char *listener, const char *bridge, char *buf)
{
    const char *name = listener != NULL ? listener : bridge;
    size_t len = strnlen(name, RT_NAME_MAX + 1);
    if (len == 0 || len > RT_NAME_MAX) {
        return -1;
    }
    buf[0] = listener != NULL ? 'l' : 'b';
    buf[1] = ':';
    memcpy(buf + 2, name, len);
    buf[len + 2] = '\0';
    return (int)len + 2;
}

static struct rt_kv *kvs_dup(const struct rt_kv *kv, size_t n)
{
    struct rt_kv *out = calloc(n, sizeof(*out));
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i].name = strdup(kv[i].name);
        out[i].value = dup_str(kv[i].value);
        if (out[i].name == NULL || (kv[i].value != NULL && out[i].value == NULL)) {
            kvs_free(out, n);
            return NULL;
        }
    }
    return out;
}

static int check_ingress(const struct rt_ingress *r, struct levels *lv, bool *templated,
                         char **err)
{
    const char *why = NULL;
    int line = r->line;
    if ((r->listener == NULL) == (r->bridge == NULL)) {
        return set_err(err, line, "an ingress rule needs exactly one of listener / bridge");
    }
    const char *src = r->listener != NULL ? r->listener : r->bridge;
    if (src[0] == '\0' || strcmp(src, "*") == 0 || strlen(src) > RT_NAME_MAX) {
        return set_err(err, line, "source name \"%s\" is not allowed (empty, \"*\" or too "
                       "long)", src);
    }
    const char *match = r->match != NULL ? r->match : "#";
    if (rt_split_pattern(match, lv, &why) < 0) {
        return set_err(err, line, "match \"%s\": %s", match, why);
    }
    if (r->n_topics == 0 || r->n_topics > RT_MAX_TOPICS || r->topics == NULL) {
        return set_err(err, line, "an ingress rule needs 1..%d topics", RT_MAX_TOPICS);
    }
    for (size_t i = 0; i < r->n_topics; i++) {
        if (r->topics[i] == NULL) {
            return set_err(err, line, "topic %zu is missing", i + 1);
        }
        if (rt_check_topic_template(r->topics[i], &templated[i], &why) < 0) {
            return set_err(err, line, "topic \"%s\": %s", r->topics[i], why);
        }
    }
    if (r->key != RT_KEY_SUBJECT && r->key != RT_KEY_HEADER && r->key != RT_KEY_NONE) {
        return set_err(err, line, "unknown key kind %d", (int)r->key);
    }
    if (r->key == RT_KEY_HEADER && (r->key_header == NULL || r->key_header[0] == '\0')) {
        return set_err(err, line, "key header:NAME needs a header name");
    }
    if (r->n_when > 0 && r->when == NULL) {
        return set_err(err, line, "header predicates missing");
    }
    for (size_t i = 0; i < r->n_when; i++) {
        if (r->when[i].name == NULL || r->when[i].value == NULL) {
            return set_err(err, line, "a header predicate needs a name and a value");
        }
    }
    if (r->n_set > 0 && r->set == NULL) {
        return set_err(err, line, "header rewrites missing");
    }
    for (size_t i = 0; i < r->n_set; i++) {
        if (r->set[i].name == NULL || r->set[i].name[0] == '\0') {
            return set_err(err, line, "a header rewrite needs a name");
        }
    }
    return 0;
}

static size_t topic_text_size(const struct rt_ingress *r)
{
    size_t size = 0;
    for (size_t i = 0; i < r->n_topics; i++) {
        size += strlen(r->topics[i]) + 1;
    }
    return size;
}

static struct in_rule *in_rule_copy(const struct rt_ingress *r)
{
    struct in_rule *c = calloc(1, sizeof(*c) + topic_text_size(r));
    if (c == NULL) {
        return NULL;
    }
    char *tp = c->topic_text;
    for (size_t i = 0; i < r->n_topics; i++) {
        size_t len = strlen(r->topics[i]) + 1;
        memcpy(tp, r->topics[i], len);
        c->topic_ptrs[i] = tp;
        tp += len;
    }
    struct rt_ingress *p = &c->pub;
    p->topics = c->topic_ptrs;
    p->n_topics = r->n_topics;
    p->line = r->line;
    p->key = r->key;
    p->listener = dup_str(r->listener);
    p->bridge = dup_str(r->bridge);
    p->match = strdup(r->match != NULL ? r->match : "#");
    bool ok = p->match != NULL && (p->listener != NULL || p->bridge != NULL);
    if (ok && r->key == RT_KEY_HEADER) {
        p->key_header = strdup(r->key_header);
        ok = p->key_header != NULL;
    }
    if (ok && r->n_when > 0) {
        p->when = kvs_dup(r->when, r->n_when);
        p->n_when = p->when != NULL ? r->n_when : 0;
        ok = p->when != NULL;
    }
    if (ok && r->n_set > 0) {
        p->set = kvs_dup(r->set, r->n_set);
        p->n_set = p->set != NULL ? r->n_set : 0;
        ok = p->set != NULL;
    }
    if (!ok) {
        in_rule_free(c);
        return NULL;
    }
    return c;
}

/* Copy r's topic names into *text (HOT_INLINE bytes) if they fit, else after
 * t->topic_text's end (topic_len is left alone: the caller moves it once the rule is
 * in). 0 or -ENOMEM. */
static int topic_text_add(struct rt_table *t, const struct rt_ingress *r, char *text)
{
    size_t size = topic_text_size(r);
    if (size > HOT_INLINE && t->topic_len + size > t->topic_cap) {
        size_t cap = t->topic_cap ? t->topic_cap * 2 : 1024;
        while (cap < t->topic_len + size) {
            cap *= 2;
        }
        char *grown = cap <= UINT32_MAX ? realloc(t->topic_text, cap) : NULL;
        if (grown == NULL) {
            return -ENOMEM;
        }
        t->topic_text = grown;
        t->topic_cap = cap;
    }
    char *p = size <= HOT_INLINE ? text : t->topic_text + t->topic_len;
    for (size_t i = 0; i < r->n_topics; i++) {
        size_t len = strlen(r->topics[i]) + 1;
        memcpy(p, r->topics[i], len);
        p += len;
    }
    return 0;
}

int rt_add_ingress(struct rt_table *t, const struct rt_ingress *r, char **err)
{
    struct levels lv;
    bool templated[RT_MAX_TOPICS] = { false };
    if (t == NULL || r == NULL) {
        return set_err(err, r != NULL ? r->line : 0, "no table or rule");
    }
    int rc = check_ingress(r, &lv, templated, err);
    if (rc < 0) {
        return rc;
    }
    if (t->n_in >= RT_NO_ID - 1) {
        return set_err(err, r->line, "too many rules");
    }
    char key[RT_NAME_MAX + 3];
    int klen = source_key(r->listener, r->bridge, key);
    struct in_rule *c = in_rule_copy(r);
    void *v = t->in, *vh = t->in_hot;
    int grown = grow_ptrs(&v, sizeof(*t->in), t->n_in, &t->cap_in);
    if (grown == 0) {
        grown = grow_ptrs(&vh, sizeof(*t->in_hot), t->n_in, &t->cap_hot);
    }
    t->in = v;
    t->in_hot = vh;
    struct in_hot hot = { .rule = c, .n_topics = (uint8_t)r->n_topics,
                          .key = (uint8_t)r->key,
                          .text_size = (uint32_t)topic_text_size(r) };
    if (c == NULL || grown < 0 || topic_text_add(t, r, hot.topics.text) < 0) {
        in_rule_free(c);
        return -ENOMEM;
    }
    hot.when = c->pub.n_when > 0;
    if (hot.text_size > HOT_INLINE) {
        hot.topics.off = (uint32_t)t->topic_len;  /* kept only if the rule goes in */
    }
    for (size_t i = 0; i < r->n_topics; i++) {
        hot.templated |= (uint8_t)(templated[i] ? 1u << i : 0);
    }
    struct keyed_root *k = rt_keyed_root_get_or_add(&t->sources, &t->forest, key, (size_t)klen);
    if (k == NULL ||
        rt_trie_insert(&t->forest, k->root, c->pub.match, &lv, (uint32_t)t->n_in) < 0) {
        /* rt_trie_insert pushes the id last: on failure no list holds it. */
        in_rule_free(c);
        return -ENOMEM;
    }
    if (hot.text_size > HOT_INLINE) {
        t->topic_len += hot.text_size;
    }
    t->in_hot[t->n_in] = hot;
    t->in[t->n_in++] = c;
    return 0;
}

int rt_add_egress(struct rt_table *t, const struct rt_egress *r, char **err)
{
    struct levels lv;
    const char *why = NULL;
    if (t == NULL || r == NULL) {
        return set_err(err, r != NULL ? r->line : 0, "no table or binding");
    }
    if (!rt_topic_name_valid(r->topic)) {
        return set_err(err, r->line, "egress topic \"%s\" is not a valid topic name",
                       r->topic != NULL ? r->topic : "");
    }
    if ((r->bridge == NULL) == (r->listener == NULL)) {
        return set_err(err, r->line, "an egress binding needs exactly one of bridge / "
                       "listener");
    }
    const char *target = r->bridge != NULL ? r->bridge : r->listener;
    if (target[0] == '\0' || strcmp(target, "*") == 0) {
        return set_err(err, r->line, "target name \"%s\" is not allowed", target);
    }
    const char *match = r->match != NULL ? r->match : "#";
    if (rt_split_pattern(match, &lv, &why) < 0) {
        return set_err(err, r->line, "match \"%s\": %s", match, why);
    }
    const char *dest = r->destination != NULL ? r->destination : "{subject}";
    if (rt_check_dest_template(dest) < 0) {
        return set_err(err, r->line, "destination \"%s\": only {subject}, {topic} and "
                       "{1}..{9} may appear in braces", dest);
    }
    if (t->n_eg >= RT_NO_ID - 1) {
        return set_err(err, r->line, "too many bindings");
    }
    struct rt_egress *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    c->line = r->line;
    c->topic = strdup(r->topic);
    c->match = strdup(match);
    c->bridge = dup_str(r->bridge);
    c->listener = dup_str(r->listener);
    c->destination = strdup(dest);
    void *v = t->eg;
    int grown = grow_ptrs(&v, sizeof(*t->eg), t->n_eg, &t->cap_eg);
    t->eg = v;
    if (c->topic == NULL || c->match == NULL || (c->bridge == NULL && c->listener == NULL) ||
        c->destination == NULL || grown < 0) {
        egress_free(c);
        return -ENOMEM;
    }
    struct keyed_root *k = rt_keyed_root_get_or_add(&t->topics, &t->forest, c->topic,
                                                    strlen(c->topic));
    if (k == NULL || rt_trie_insert(&t->forest, k->root, c->match, &lv, (uint32_t)t->n_eg) < 0) {
        egress_free(c);
        return -ENOMEM;
    }
    t->eg[t->n_eg++] = c;
    return 0;
}

/* ---- lookups ------------------------------------------------------------------------ */

struct subject {
    const char *s;
    struct levels lv;
    uint64_t hash[RT_MAX_LEVELS];
    bool dollar;                 /* first level starts with '$' */
};

/* Split and hash s. With a root (else 0) whose literal children are in the edge table,
 * start loading the first level's edge slot while the other levels are hashed. */
static int subject_prepare(const char *s, struct subject *sj, const struct forest *f,
                           uint32_t root)
{
    if (s == NULL || rt_split_levels(s, &sj->lv) < 0) {
        return -1;
    }
    sj->s = s;
    for (int i = 0; i < sj->lv.n; i++) {
        sj->hash[i] = rt_hash_bytes(s + sj->lv.off[i], sj->lv.len[i]);
        if (i == 0 && root != 0 && f->nodes[root].kid == KIDS_MANY) {
            __builtin_prefetch(&f->edges[rt_edge_hash(root, sj->hash[0]) & (f->cap_edges - 1)]);
        }
    }
    sj->dollar = s[0] == '$';
    return 0;
}

/* Ingress walk: find the smallest rule id that matches and whose predicates hold. */
struct in_walk {
    const struct rt_table *t;
    const struct subject *sj;
    rt_header_fn hdr;
    void *hdr_arg;
    uint32_t best;
};

static bool predicates_hold(const struct rt_ingress *r, rt_header_fn hdr, void *arg)
{
    for (size_t i = 0; i < r->n_when; i++) {
        const char *v = hdr != NULL ? hdr(arg, r->when[i].name) : NULL;
        if (v == NULL || strcmp(v, r->when[i].value) != 0) {
            return false;
        }
    }
    return true;
}

static void in_consider(struct in_walk *w, const struct ids *l)
{
    for (uint32_t i = 0; i < l->n; i++) {
        uint32_t id = rt_ids_at(l, i);
        if (id >= w->best) {
            return;
        }
        if (!w->t->in_hot[id].when ||
            predicates_hold(&w->t->in[id]->pub, w->hdr, w->hdr_arg)) {
            w->best = id;
            return;
        }
    }
}

static void in_walk_node(struct in_walk *w, uint32_t idx, int depth)
{
    const struct forest *f = &w->t->forest;
    const struct node *n = &f->nodes[idx];
    if (n->min_id >= w->best) {
        return;                 /* nothing below can beat what we have */
    }
    /* Start the likely next loads while this node is worked on: the '+' child, and the
     * rule this subtree starts with (often the answer). Hints only. */
    __builtin_prefetch(&f->nodes[n->plus]);
    __builtin_prefetch(&w->t->in_hot[n->min_id]);
    const struct subject *sj = w->sj;
    bool skip_wild = depth == 0 && sj->dollar;
    if (!skip_wild && n->rest != RT_NO_ID) {
        struct ids l = rt_node_ids(f, idx, true);
        in_consider(w, &l);
    }
    if (depth == sj->lv.n) {
        struct ids l = rt_node_ids(f, idx, false);
        in_consider(w, &l);
        return;
    }
    uint32_t min_id;
    uint32_t child = rt_child_find(f, idx, sj->s + sj->lv.off[depth], sj->lv.len[depth],
                                   sj->hash[depth], &min_id);
    if (min_id < w->best) {
        __builtin_prefetch(&w->t->in_hot[min_id]);   /* without waiting for the child */
    }
    if (child != 0) {
        in_walk_node(w, child, depth + 1);
    }
    if (n->plus != 0 && !skip_wild) {
        in_walk_node(w, n->plus, depth + 1);
    }
}

/* Resolve a topic template against the subject into out (RT_TOPIC_MAX + 1). */
static int resolve_topic(const char *tpl, bool templated, const struct subject *sj,
                         char *out)
{
    size_t pos = 0;
    if (!templated) {
        size_t len = strlen(tpl);
        memcpy(out, tpl, len + 1);  /* validated at add time: len <= RT_TOPIC_MAX */
        return 0;
    }
    for (const char *p = tpl; *p != '\0'; p++) {
        const char *piece = p;
        size_t len = 1;
        if (*p == '{') {
            int lvl = p[1] - '1';
            if (lvl >= sj->lv.n) {
                return -EINVAL;
            }
            piece = sj->s + sj->lv.off[lvl];
            len = sj->lv.len[lvl];
            p += 2;
        }
        if (pos + len > RT_TOPIC_MAX) {
            return -EINVAL;
        }
        memcpy(out + pos, piece, len);
        pos += len;
    }
    out[pos] = '\0';
    return rt_topic_name_valid(out) ? 0 : -EINVAL;
}

bool rt_route_has_ingress(const struct rt_table *t, const char *listener, const char *bridge)
{
    char key[RT_NAME_MAX + 3];
    const struct keyed_root *k;
    int klen;

    if (t == NULL || (listener == NULL) == (bridge == NULL)) {
        return false;
    }
    klen = source_key(listener, bridge, key);
    if (klen <= 0) {
        return false;
    }
    k = rt_map_get(&t->sources, key, (size_t)klen, rt_hash_bytes(key, (size_t)klen));
    return k != NULL && k->root != 0;
}

int rt_route_ingress(const struct rt_table *t, const char *listener, const char *bridge,
                     const char *subject, rt_header_fn hdr, void *hdr_arg,
                     struct rt_decision *out)
{
    struct subject sj;
    out->rule = NULL;
    out->n_topics = 0;
    out->key = RT_KEY_SUBJECT;
    out->key_header = NULL;
    char key[RT_NAME_MAX + 3];
    int klen = (t != NULL && (listener != NULL || bridge != NULL)) ?
               source_key(listener, bridge, key) : -1;
    const struct keyed_root *k = klen <= 0 ? NULL :
        rt_map_get(&t->sources, key, (size_t)klen, rt_hash_bytes(key, (size_t)klen));
    uint32_t root = k != NULL ? k->root : 0;
    if (subject_prepare(subject, &sj, root ? &t->forest : NULL, root) < 0 ||
        (listener != NULL && bridge != NULL)) {
        return -EINVAL;
    }
    struct in_walk w = { .t = t, .sj = &sj, .hdr = hdr, .hdr_arg = hdr_arg,
                         .best = RT_NO_ID };
    if (root != 0) {
        in_walk_node(&w, root, 0);
    }
    if (w.best == RT_NO_ID) {
        /* Default addressing: topic = first level, key = the subject. */
        if (resolve_topic("{1}", true, &sj, out->topics[0]) < 0) {
            return -EINVAL;
        }
        out->n_topics = 1;
        return 0;
    }
    const struct in_hot *h = &t->in_hot[w.best];
    const char *tpl = h->text_size <= HOT_INLINE ? h->topics.text :
                      t->topic_text + h->topics.off;
    for (size_t i = 0; i < h->n_topics; i++) {
        if (resolve_topic(tpl, (h->templated >> i) & 1, &sj, out->topics[i]) < 0) {
            out->n_topics = 0;
            return -EINVAL;
        }
        tpl += strlen(tpl) + 1;
    }
    out->rule = &h->rule->pub;
    out->n_topics = h->n_topics;
    out->key = (enum rt_key)h->key;
    out->key_header = h->key == RT_KEY_HEADER ? h->rule->pub.key_header : NULL;
    return 0;
}

/* Egress walk: the smallest matching binding id >= from. */
struct eg_walk {
    const struct forest *f;
    const struct subject *sj;
    uint32_t from;
    uint32_t best;
};

static void eg_consider(struct eg_walk *w, const struct ids *l)
{
    /* lower bound of w->from in the sorted list */
    uint32_t lo = 0, hi = l->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rt_ids_at(l, mid) < w->from) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < l->n && rt_ids_at(l, lo) < w->best) {
        w->best = rt_ids_at(l, lo);
    }
}

static void eg_walk_node(struct eg_walk *w, uint32_t idx, int depth)
{
    const struct node *n = &w->f->nodes[idx];
    if (n->min_id >= w->best || w->f->max_ids[idx] < w->from) {
        return;
    }
    const struct subject *sj = w->sj;
    bool skip_wild = depth == 0 && sj->dollar;
    if (!skip_wild) {
        struct ids l = rt_node_ids(w->f, idx, true);
        eg_consider(w, &l);
    }
    if (depth == sj->lv.n) {
        struct ids l = rt_node_ids(w->f, idx, false);
        eg_consider(w, &l);
        return;
    }
    uint32_t min_id;
    uint32_t child = rt_child_find(w->f, idx, sj->s + sj->lv.off[depth], sj->lv.len[depth],
                                   sj->hash[depth], &min_id);
    if (child != 0) {
        eg_walk_node(w, child, depth + 1);
    }
    if (n->plus != 0 && !skip_wild) {
        eg_walk_node(w, n->plus, depth + 1);
    }
}

void rt_route_egress(const struct rt_table *t, const char *topic, const char *subject,
                     rt_egress_fn fn, void *arg)
{
    struct subject sj;
    if (t == NULL || topic == NULL || fn == NULL) {
        return;
    }
    size_t tlen = strlen(topic);
    const struct keyed_root *k = rt_map_get(&t->topics, topic, tlen, rt_hash_bytes(topic, tlen));
    if (k == NULL || subject_prepare(subject, &sj, &t->forest, k->root) < 0) {
        return;
    }
    /* One walk per match, each finding the next id in file order: no buffer needed. */
    struct eg_walk w = { .f = &t->forest, .sj = &sj, .from = 0 };
    for (;;) {
        w.best = RT_NO_ID;
        eg_walk_node(&w, k->root, 0);
        if (w.best == RT_NO_ID || w.best >= t->n_eg) {
            return;
        }
        fn(arg, t->eg[w.best]);
        w.from = w.best + 1;
    }
}

/*
 * Routing table: per-source (ingress) and per-topic (egress) tries over subject levels.
 *
 * A trie node has literal children (found through one table-wide hash of (parent node,
 * level text) -> child), one child for '+' / '*', the ids of the patterns that end at
 * the node ("here") and the ids of the patterns whose next level is '#' ("rest"). Ids
 * are insertion indexes, so each list is sorted ascending. A lookup splits the subject
 * into levels (and hashes each level once), then walks every branch that can match:
 * the literal child, the '+' child, and the '#' list at each node it reaches. Every node
 * is reached by one path only, so a walk visits at most the nodes of the trie, and in
 * practice a handful: its cost follows the subject's depth and the number of wildcard
 * branches, not the number of rules. Each node also records the smallest and largest
 * rule id below it, so a walk skips subtrees that cannot improve its answer.
 */
#include "routing/route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RT_NAME_MAX 255          /* listener / bridge names */
#define RT_NO_ID UINT32_MAX

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t len)
{
    /* FNV-1a, then a final avalanche (splitmix64 finaliser) for power-of-two tables. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

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

/* ---- subjects and patterns ---------------------------------------------------------- */

struct levels {
    int n;
    uint16_t off[RT_MAX_LEVELS];
    uint16_t len[RT_MAX_LEVELS];
};

/* Split s into levels. 0, or -1 when s is empty, too long or has too many levels. */
static int split_levels(const char *s, struct levels *lv)
{
    size_t total = strnlen(s, RT_MAX_SUBJECT + 1);
    if (total == 0 || total > RT_MAX_SUBJECT) {
        return -1;
    }
    lv->n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= total; i++) {
        if (i == total || s[i] == '/') {
            if (lv->n == RT_MAX_LEVELS) {
                return -1;
            }
            lv->off[lv->n] = (uint16_t)start;
            lv->len[lv->n] = (uint16_t)(i - start);
            lv->n++;
            start = i + 1;
        }
    }
    return 0;
}

static bool level_is(const char *s, const struct levels *lv, int i, char c)
{
    return lv->len[i] == 1 && s[lv->off[i]] == c;
}

static bool level_is_one(const char *s, const struct levels *lv, int i)
{
    return level_is(s, lv, i, '+') || level_is(s, lv, i, '*');
}

/* Split and check a pattern. 0 or -1; *why says what is wrong. */
static int split_pattern(const char *p, struct levels *lv, const char **why)
{
    if (split_levels(p, lv) < 0) {
        *why = "empty, longer than 1024 bytes or deeper than 32 levels";
        return -1;
    }
    for (int i = 0; i < lv->n; i++) {
        const char *l = p + lv->off[i];
        size_t len = lv->len[i];
        if (len == 1 && (l[0] == '+' || l[0] == '*')) {
            continue;
        }
        if (len == 1 && l[0] == '#') {
            if (i != lv->n - 1) {
                *why = "'#' must be the last level";
                return -1;
            }
            continue;
        }
        for (size_t j = 0; j < len; j++) {
            if (l[j] == '+' || l[j] == '*' || l[j] == '#') {
                *why = "a wildcard ('+', '*', '#') must be a whole level";
                return -1;
            }
        }
    }
    return 0;
}

bool rt_pattern_valid(const char *pattern)
{
    struct levels lv;
    const char *why;
    return pattern != NULL && split_pattern(pattern, &lv, &why) == 0;
}

bool rt_subject_valid(const char *subject)
{
    struct levels lv;
    return subject != NULL && split_levels(subject, &lv) == 0;
}

static bool topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool rt_topic_name_valid(const char *name)
{
    if (name == NULL) {
        return false;
    }
    size_t len = strnlen(name, RT_TOPIC_MAX + 1);
    if (len == 0 || len > RT_TOPIC_MAX) {
        return false;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!topic_char_ok(name[i])) {
            return false;
        }
    }
    return true;
}

bool rt_match(const char *pattern, const char *subject)
{
    struct levels pl, sl;
    const char *why;
    if (pattern == NULL || subject == NULL || split_pattern(pattern, &pl, &why) < 0 ||
        split_levels(subject, &sl) < 0) {
        return false;
    }
    bool dollar = subject[0] == '$';
    for (int i = 0; i < pl.n; i++) {
        if (level_is(pattern, &pl, i, '#')) {
            return !(i == 0 && dollar);
        }
        if (i >= sl.n) {
            return false;
        }
        if (level_is_one(pattern, &pl, i)) {
            if (i == 0 && dollar) {
                return false;
            }
            continue;
        }
        if (pl.len[i] != sl.len[i] ||
            memcmp(pattern + pl.off[i], subject + sl.off[i], pl.len[i]) != 0) {
            return false;
        }
    }
    return pl.n == sl.n;
}

/* ---- id lists and the small hash map ------------------------------------------------ */

/* A view of the rule ids at a node, ascending: the first inline, the others after it. */
struct ids {
    uint32_t first;
    uint32_t n;
    const uint32_t *more;        /* ids 2..n */
};

static uint32_t ids_at(const struct ids *l, uint32_t i)
{
    return i == 0 ? l->first : l->more[i - 1];
}

/* Further ids of a node beyond the inline first one (rare: same pattern twice). */
struct id_vec {
    uint32_t *v;
    uint32_t n;
};

static int id_vec_push(struct id_vec *l, uint32_t id)
{
    uint32_t *v = realloc(l->v, (l->n + 1) * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    l->v = v;
    l->v[l->n++] = id;
    return 0;
}

/* String-keyed open-addressing map for the few sources and egress topics. */
struct map_ent {
    uint64_t hash;
    const char *key;             /* owned by the value; NULL: empty slot */
    size_t len;
    void *val;
};

struct map {
    struct map_ent *ent;
    size_t cap;                  /* 0 or a power of two */
    size_t n;
};

static void *map_get(const struct map *m, const char *key, size_t len, uint64_t hash)
{
    if (m->cap == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const struct map_ent *e = &m->ent[i];
        if (e->key == NULL) {
            return NULL;
        }
        if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) {
            return e->val;
        }
    }
}

static void map_place(struct map_ent *ent, size_t cap, const struct map_ent *src)
{
    size_t mask = cap - 1;
    size_t i = src->hash & mask;
    while (ent[i].key != NULL) {
        i = (i + 1) & mask;
    }
    ent[i] = *src;
}

/* Insert a key known to be absent; key must stay valid as long as the map. */
static int map_put(struct map *m, const char *key, size_t len, uint64_t hash, void *val)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4;
        struct map_ent *ent = calloc(cap, sizeof(*ent));
        if (ent == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->ent[i].key != NULL) {
                map_place(ent, cap, &m->ent[i]);
            }
        }
        free(m->ent);
        m->ent = ent;
        m->cap = cap;
    }
    struct map_ent e = { .hash = hash, .key = key, .len = len, .val = val };
    map_place(m->ent, m->cap, &e);
    m->n++;
    return 0;
}

/* ---- trie ----------------------------------------------------------------------------- */

/*
 * All tries of a table live in one forest: nodes in one array (referred to by index;
 * index 0 is a sentinel meaning "none"), long level texts in one arena, and every
 * literal edge (parent, level text) -> child of a node with two or more literal children
 * in one open-addressing table whose 16-byte slots hold a hash of (parent, level), the
 * parent, the child and the child's smallest rule id; a hit is confirmed against the
 * child's level. The id lets a lookup load the child's rule while the child node is on
 * its way: one dependent cache miss fewer.
 *
 * Compact on purpose, because with many rules a lookup's cost is its cache misses:
 * a node is 32 bytes (two per cache line) and holds only what a lookup reads; what it
 * rarely reads (largest id below, the overflow id lists) lives in arrays beside it.
 * Nodes are appended in insertion order, so the nodes a pattern creates (for
 * "site7/+/temp": "site7", its '+', "temp") are adjacent: one or two cache lines.
 */
#define NODE_INLINE 8            /* level texts up to this long live in the node */
#define KIDS_MANY UINT32_MAX     /* node.kid: the literal children are in the edge table */
#define NODE_EXTRA 0x01          /* node.flags: forest.extras[idx] holds more ids */

struct node_extra {
    struct id_vec here;          /* ids after node.here */
    struct id_vec rest;          /* ids after node.rest */
};

/*
 * 32 bytes. A node with one literal child keeps it inline (kid, with 8 bits of its edge
 * hash), so chains of single children never touch the edge table; only nodes with two
 * or more literal children put their edges there.
 */
struct node {
    uint32_t plus;               /* the '+' / '*' child, 0 if none */
    uint32_t min_id;             /* smallest id in here/rest of this subtree */
    uint32_t here;               /* first id of patterns ending here, RT_NO_ID if none */
    uint32_t rest;               /* first id of patterns with '#' next, RT_NO_ID if none */
    uint32_t kid;                /* 0: no literal child; KIDS_MANY: two or more, in the
                                  * edge table; else the only literal child */
    uint8_t kid_tag;             /* bits 32..39 of the only literal child's edge hash */
    uint8_t flags;               /* NODE_EXTRA */
    uint16_t level_len;          /* <= RT_MAX_SUBJECT */
    union {
        char text[NODE_INLINE];  /* level_len <= NODE_INLINE */
        uint32_t off;            /* else: offset in the arena */
    } level;
};

_Static_assert(sizeof(struct node) == 32, "two trie nodes per cache line");
_Static_assert(RT_MAX_SUBJECT <= UINT16_MAX, "level_len is 16 bits");

struct edge {                    /* 16 bytes */
    uint32_t tag;                /* high half of the edge hash */
    uint32_t parent;
    uint32_t child;              /* 0: empty slot */
    uint32_t min_id;             /* the child's min_id when linked (ids only grow after) */
};

struct forest {
    struct node *nodes;
    uint32_t *max_ids;           /* per node: largest id in here/rest of its subtree */
    struct node_extra **extras;  /* per node: NULL unless a list has more than one id */
    uint32_t n_nodes, cap_nodes;
    struct edge *edges;
    size_t n_edges, cap_edges;   /* cap: 0 or a power of two */
    char *arena;
    size_t arena_len, arena_cap;
};

static struct ids node_ids(const struct forest *f, uint32_t idx, bool rest)
{
    const struct node *n = &f->nodes[idx];
    struct ids l = { .first = rest ? n->rest : n->here, .n = 0, .more = NULL };
    if (l.first != RT_NO_ID) {
        l.n = 1;
        if (n->flags & NODE_EXTRA) {
            const struct node_extra *x = f->extras[idx];
            const struct id_vec *v = rest ? &x->rest : &x->here;
            l.n += v->n;
            l.more = v->v;
        }
    }
    return l;
}

static int node_push_id(struct forest *f, uint32_t idx, bool rest, uint32_t id)
{
    struct node *n = &f->nodes[idx];
    uint32_t *first = rest ? &n->rest : &n->here;
    if (*first == RT_NO_ID) {
        *first = id;
        return 0;
    }
    if (f->extras[idx] == NULL) {
        f->extras[idx] = calloc(1, sizeof(*f->extras[idx]));
        if (f->extras[idx] == NULL) {
            return -ENOMEM;
        }
        n->flags |= NODE_EXTRA;
    }
    struct node_extra *x = f->extras[idx];
    return id_vec_push(rest ? &x->rest : &x->here, id);
}

static uint64_t edge_hash(uint32_t parent, uint64_t level_hash)
{
    uint64_t h = level_hash ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 32;
    return h;
}

static const char *node_level(const struct forest *f, const struct node *n)
{
    return n->level_len <= NODE_INLINE ? n->level.text : f->arena + n->level.off;
}

static bool level_eq(const struct forest *f, uint32_t idx, const char *level, size_t len)
{
    const struct node *c = &f->nodes[idx];
    return c->level_len == len && memcmp(node_level(f, c), level, len) == 0;
}

/* The literal child of `parent` named `level`, or 0. When found in the edge table,
 * *min_id is its smallest rule id (else RT_NO_ID). */
static uint32_t child_find(const struct forest *f, uint32_t parent, const char *level,
                           size_t len, uint64_t level_hash, uint32_t *min_id)
{
    *min_id = RT_NO_ID;
    uint32_t kid = f->nodes[parent].kid;
    if (kid == 0) {
        return 0;
    }
    uint64_t h = edge_hash(parent, level_hash);
    if (kid != KIDS_MANY) {
        /* the only child: its parent is `parent` by construction */
        return f->nodes[parent].kid_tag == (uint8_t)(h >> 32) &&
               level_eq(f, kid, level, len) ? kid : 0;
    }
    uint32_t tag = (uint32_t)(h >> 32);
    size_t mask = f->cap_edges - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct edge *e = &f->edges[i];
        if (e->child == 0) {
            return 0;
        }
        if (e->tag == tag && e->parent == parent && level_eq(f, e->child, level, len)) {
            *min_id = e->min_id;  /* known before the child's node arrives */
            return e->child;
        }
    }
}

static void edge_place(struct edge *edges, size_t cap, uint64_t h, uint32_t parent,
                       uint32_t child, uint32_t min_id)
{
    size_t mask = cap - 1;
    size_t i = h & mask;
    while (edges[i].child != 0) {
        i = (i + 1) & mask;
    }
    edges[i].tag = (uint32_t)(h >> 32);
    edges[i].parent = parent;
    edges[i].child = child;
    edges[i].min_id = min_id;
}

static int edge_add(struct forest *f, uint32_t parent, uint64_t level_hash, uint32_t child)
{
    if ((f->n_edges + 1) * 4 > f->cap_edges * 3) {   /* load <= 3/4 */
        size_t cap = f->cap_edges ? f->cap_edges * 2 : 64;
        struct edge *edges = calloc(cap, sizeof(*edges));
        if (edges == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < f->cap_edges; i++) {
            const struct edge *e = &f->edges[i];
            if (e->child != 0) {
                /* rehash: the slot's parent and the child's level give the full hash */
                const struct node *c = &f->nodes[e->child];
                uint64_t h = edge_hash(e->parent, hash_bytes(node_level(f, c),
                                                             c->level_len));
                edge_place(edges, cap, h, e->parent, e->child, c->min_id);
            }
        }
        free(f->edges);
        f->edges = edges;
        f->cap_edges = cap;
    }
    edge_place(f->edges, f->cap_edges, edge_hash(parent, level_hash), parent, child,
               f->nodes[child].min_id);
    f->n_edges++;
    return 0;
}

/* Link a new literal child under parent. 0 or -ENOMEM (then the child is unreachable). */
static int child_add(struct forest *f, uint32_t parent, uint64_t level_hash, uint32_t child)
{
    struct node *p = &f->nodes[parent];
    if (p->kid == 0) {
        p->kid = child;
        p->kid_tag = (uint8_t)(edge_hash(parent, level_hash) >> 32);
        return 0;
    }
    if (p->kid != KIDS_MANY) {
        /* second child: move the first into the edge table */
        const struct node *k = &f->nodes[p->kid];
        if (edge_add(f, parent, hash_bytes(node_level(f, k), k->level_len), p->kid) < 0) {
            return -ENOMEM;      /* kid stays inline and still works */
        }
        p->kid = KIDS_MANY;
    }
    return edge_add(f, parent, level_hash, child);
}

/* Make room for one more node (in nodes, max_ids and extras). 0 or -ENOMEM. */
static int nodes_grow(struct forest *f)
{
    if (f->n_nodes < f->cap_nodes) {
        return 0;
    }
    if (f->cap_nodes >= UINT32_MAX / 4) {
        return -ENOMEM;
    }
    uint32_t cap = f->cap_nodes ? f->cap_nodes * 2 : 64;
    uint32_t *max_ids = realloc(f->max_ids, (size_t)cap * sizeof(*max_ids));
    if (max_ids == NULL) {
        return -ENOMEM;
    }
    f->max_ids = max_ids;
    struct node_extra **extras = realloc(f->extras, (size_t)cap * sizeof(*extras));
    if (extras == NULL) {
        return -ENOMEM;
    }
    f->extras = extras;
    struct node *nodes = aligned_alloc(64, (size_t)cap * sizeof(*nodes));
    if (nodes == NULL) {
        return -ENOMEM;
    }
    if (f->nodes != NULL) {
        memcpy(nodes, f->nodes, (size_t)f->n_nodes * sizeof(*nodes));
    }
    free(f->nodes);
    f->nodes = nodes;
    f->cap_nodes = cap;
    return 0;
}

/* A new node (index, or 0 on out of memory); long level texts go to the arena. */
static uint32_t node_add(struct forest *f, const char *level, size_t len)
{
    if (nodes_grow(f) < 0) {
        return 0;
    }
    if (f->n_nodes == 0) {      /* first node: index 0 is the "none" sentinel (cap >= 64) */
        memset(&f->nodes[0], 0, sizeof(f->nodes[0]));
        f->max_ids[0] = 0;
        f->extras[0] = NULL;
        f->n_nodes = 1;
    }
    if (len > NODE_INLINE && f->arena_len + len > f->arena_cap) {
        size_t cap = f->arena_cap ? f->arena_cap * 2 : 1024;
        while (cap < f->arena_len + len) {
            cap *= 2;
        }
        if (cap > UINT32_MAX) {
            return 0;
        }
        char *arena = realloc(f->arena, cap);
        if (arena == NULL) {
            return 0;
        }
        f->arena = arena;
        f->arena_cap = cap;
    }
    uint32_t idx = f->n_nodes++;
    struct node *n = &f->nodes[idx];
    memset(n, 0, sizeof(*n));
    n->min_id = RT_NO_ID;
    n->here = RT_NO_ID;
    n->rest = RT_NO_ID;
    n->level_len = (uint16_t)len;
    if (len <= NODE_INLINE) {
        memcpy(n->level.text, level, len);
    } else {
        n->level.off = (uint32_t)f->arena_len;
        memcpy(f->arena + f->arena_len, level, len);
        f->arena_len += len;
    }
    f->max_ids[idx] = 0;
    f->extras[idx] = NULL;
    return idx;
}

static void forest_free(struct forest *f)
{
    for (uint32_t i = 1; i < f->n_nodes; i++) {
        if (f->extras[i] != NULL) {
            free(f->extras[i]->here.v);
            free(f->extras[i]->rest.v);
            free(f->extras[i]);
        }
    }
    free(f->nodes);
    free(f->max_ids);
    free(f->extras);
    free(f->edges);
    free(f->arena);
    memset(f, 0, sizeof(*f));
}

static void node_note_id(struct forest *f, uint32_t idx, uint32_t id)
{
    if (id < f->nodes[idx].min_id) {
        f->nodes[idx].min_id = id;
    }
    if (id > f->max_ids[idx]) {
        f->max_ids[idx] = id;
    }
}

/* Add pattern p (already split and validated) with id under root. 0 or -ENOMEM.
 * The id is pushed last, so on failure no list holds it (new empty nodes may stay;
 * they match nothing). */
static int trie_insert(struct forest *f, uint32_t root, const char *p,
                       const struct levels *lv, uint32_t id)
{
    uint32_t n = root;
    for (int i = 0; i < lv->n; i++) {
        node_note_id(f, n, id);
        if (level_is(p, lv, i, '#')) {
            return node_push_id(f, n, true, id);
        }
        uint32_t next;
        if (level_is_one(p, lv, i)) {
            next = f->nodes[n].plus;
            if (next == 0) {
                next = node_add(f, "+", 1);
                if (next == 0) {
                    return -ENOMEM;
                }
                f->nodes[n].plus = next;
            }
        } else {
            const char *l = p + lv->off[i];
            size_t len = lv->len[i];
            uint64_t h = hash_bytes(l, len);
            uint32_t unused;
            next = child_find(f, n, l, len, h, &unused);
            if (next == 0) {
                next = node_add(f, l, len);
                if (next != 0) {
                    node_note_id(f, next, id);   /* before child_add records min_id */
                }
                if (next == 0 || child_add(f, n, h, next) < 0) {
                    return -ENOMEM;
                }
            }
        }
        n = next;
    }
    node_note_id(f, n, id);
    return node_push_id(f, n, false, id);
}

/* A root with its key in a map (sources: "l:NAME" / "b:NAME"; egress: the topic). */
struct keyed_root {
    char *key;
    uint32_t root;
};

static void keyed_root_free(struct keyed_root *k)
{
    if (k != NULL) {
        free(k->key);
        free(k);
    }
}

static struct keyed_root *keyed_root_get_or_add(struct map *m, struct forest *f,
                                                const char *key, size_t len)
{
    uint64_t h = hash_bytes(key, len);
    struct keyed_root *k = map_get(m, key, len, h);
    if (k != NULL) {
        return k;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return NULL;
    }
    k->key = strndup(key, len);
    k->root = node_add(f, "", 0);
    if (k->key == NULL || k->root == 0 || map_put(m, k->key, len, h, k) < 0) {
        keyed_root_free(k);
        return NULL;
    }
    return k;
}

static void keyed_map_free(struct map *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->ent[i].key != NULL) {
            keyed_root_free(m->ent[i].val);
        }
    }
    free(m->ent);
    m->ent = NULL;
    m->cap = m->n = 0;
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
    keyed_map_free(&tb->sources);
    keyed_map_free(&tb->topics);
    forest_free(&tb->forest);
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

/* Check an ingress topic template; *templated tells whether it has {N}. */
static int check_topic_template(const char *tpl, bool *templated, const char **why)
{
    *templated = false;
    size_t len = strlen(tpl);
    if (len == 0) {
        *why = "empty topic name";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (tpl[i] == '{') {
            if (i + 2 < len && tpl[i + 1] >= '1' && tpl[i + 1] <= '9' &&
                tpl[i + 2] == '}') {
                *templated = true;
                i += 2;
                continue;
            }
            *why = "'{' must start {1}..{9}";
            return -1;
        }
        if (!topic_char_ok(tpl[i])) {
            *why = "topic names use only [a-zA-Z0-9._-] (and {1}..{9})";
            return -1;
        }
    }
    if (!*templated && !rt_topic_name_valid(tpl)) {
        *why = "not a valid topic name (1..249 of [a-zA-Z0-9._-], not \".\" or \"..\")";
        return -1;
    }
    return 0;
}

static int check_dest_template(const char *tpl)
{
    for (const char *p = tpl; *p != '\0'; p++) {
        if (*p == '{') {
            if (strncmp(p, "{subject}", 9) == 0) {
                p += 8;
            } else if (strncmp(p, "{topic}", 7) == 0) {
                p += 6;
            } else if (p[1] >= '1' && p[1] <= '9' && p[2] == '}') {
                p += 2;
            } else {
                return -1;
            }
        } else if (*p == '}') {
            return -1;
        }
    }
    return 0;
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
    if (split_pattern(match, lv, &why) < 0) {
        return set_err(err, line, "match \"%s\": %s", match, why);
    }
    if (r->n_topics == 0 || r->n_topics > RT_MAX_TOPICS || r->topics == NULL) {
        return set_err(err, line, "an ingress rule needs 1..%d topics", RT_MAX_TOPICS);
    }
    for (size_t i = 0; i < r->n_topics; i++) {
        if (r->topics[i] == NULL) {
            return set_err(err, line, "topic %zu is missing", i + 1);
        }
        if (check_topic_template(r->topics[i], &templated[i], &why) < 0) {
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
    struct keyed_root *k = keyed_root_get_or_add(&t->sources, &t->forest, key, (size_t)klen);
    if (k == NULL ||
        trie_insert(&t->forest, k->root, c->pub.match, &lv, (uint32_t)t->n_in) < 0) {
        /* trie_insert pushes the id last: on failure no list holds it. */
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
    if (split_pattern(match, &lv, &why) < 0) {
        return set_err(err, r->line, "match \"%s\": %s", match, why);
    }
    const char *dest = r->destination != NULL ? r->destination : "{subject}";
    if (check_dest_template(dest) < 0) {
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
    struct keyed_root *k = keyed_root_get_or_add(&t->topics, &t->forest, c->topic,
                                                 strlen(c->topic));
    if (k == NULL || trie_insert(&t->forest, k->root, c->match, &lv, (uint32_t)t->n_eg) < 0) {
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
    if (s == NULL || split_levels(s, &sj->lv) < 0) {
        return -1;
    }
    sj->s = s;
    for (int i = 0; i < sj->lv.n; i++) {
        sj->hash[i] = hash_bytes(s + sj->lv.off[i], sj->lv.len[i]);
        if (i == 0 && root != 0 && f->nodes[root].kid == KIDS_MANY) {
            __builtin_prefetch(&f->edges[edge_hash(root, sj->hash[0]) & (f->cap_edges - 1)]);
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
        uint32_t id = ids_at(l, i);
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
        struct ids l = node_ids(f, idx, true);
        in_consider(w, &l);
    }
    if (depth == sj->lv.n) {
        struct ids l = node_ids(f, idx, false);
        in_consider(w, &l);
        return;
    }
    uint32_t min_id;
    uint32_t child = child_find(f, idx, sj->s + sj->lv.off[depth], sj->lv.len[depth],
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
    k = map_get(&t->sources, key, (size_t)klen, hash_bytes(key, (size_t)klen));
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
        map_get(&t->sources, key, (size_t)klen, hash_bytes(key, (size_t)klen));
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
        if (ids_at(l, mid) < w->from) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < l->n && ids_at(l, lo) < w->best) {
        w->best = ids_at(l, lo);
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
        struct ids l = node_ids(w->f, idx, true);
        eg_consider(w, &l);
    }
    if (depth == sj->lv.n) {
        struct ids l = node_ids(w->f, idx, false);
        eg_consider(w, &l);
        return;
    }
    uint32_t min_id;
    uint32_t child = child_find(w->f, idx, sj->s + sj->lv.off[depth], sj->lv.len[depth],
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
    const struct keyed_root *k = map_get(&t->topics, topic, tlen, hash_bytes(topic, tlen));
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

/* ---- destination rendering ---------------------------------------------------------- */

struct writer {
    char *out;
    size_t size;
    size_t pos;
};

static void put(struct writer *wr, const char *s, size_t len)
{
    if (wr->pos < wr->size) {
        size_t room = wr->size - wr->pos;
        memcpy(wr->out + wr->pos, s, len < room ? len : room);
    }
    wr->pos += len;
}

int rt_render_destination(const struct rt_egress *b, const char *topic, const char *subject,
                          char *out, size_t outsz)
{
    const char *tpl = b->destination != NULL ? b->destination : "{subject}";
    struct levels lv;
    bool have_levels = subject != NULL && split_levels(subject, &lv) == 0;
    struct writer wr = { .out = out, .size = outsz, .pos = 0 };
    if (topic == NULL) {
        topic = "";
    }
    if (subject == NULL) {
        subject = "";
    }
    for (const char *p = tpl; *p != '\0'; p++) {
        if (*p == '{' && strncmp(p, "{subject}", 9) == 0) {
            put(&wr, subject, strlen(subject));
            p += 8;
        } else if (*p == '{' && strncmp(p, "{topic}", 7) == 0) {
            put(&wr, topic, strlen(topic));
            p += 6;
        } else if (*p == '{' && p[1] >= '1' && p[1] <= '9' && p[2] == '}') {
            int lvl = p[1] - '1';
            if (!have_levels || lvl >= lv.n) {
                return -EINVAL;
            }
            put(&wr, subject + lv.off[lvl], lv.len[lvl]);
            p += 2;
        } else {
            put(&wr, p, 1);
        }
    }
    if (wr.pos >= outsz || wr.pos > INT32_MAX) {
        if (outsz > 0) {
            out[0] = '\0';
        }
        return -ENOSPC;
    }
    out[wr.pos] = '\0';
    return (int)wr.pos;
}

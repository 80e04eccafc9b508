/*
 * Routing internals: the compiled trie forest (route_trie.c). Shared by route.c;
 * not for use outside routing/.
 *
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
 *
 * The read side (what a lookup calls per level: hashing, the id views, the child
 * search, the map lookup) is static inline here, so that the walks in route.c compile
 * as they did when all of this was one file; the build side is in route_trie.c.
 *
 * Built on one thread (the table's owner), then read-only: any number of threads may
 * read a forest at once as long as nobody adds to it.
 */
#ifndef SL_ROUTE_TRIE_H
#define SL_ROUTE_TRIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "routing/route.h"
#include "routing/route_syntax.h"

#define RT_NO_ID UINT32_MAX

static inline uint64_t rt_hash_bytes(const char *s, size_t len)
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

/* ---- id lists and the small hash map ------------------------------------------------ */

/* A view of the rule ids at a node, ascending: the first inline, the others after it. */
struct ids {
    uint32_t first;
    uint32_t n;
    const uint32_t *more;        /* ids 2..n */
};

static inline uint32_t rt_ids_at(const struct ids *l, uint32_t i)
{
    return i == 0 ? l->first : l->more[i - 1];
}

/* Further ids of a node beyond the inline first one (rare: same pattern twice). */
struct id_vec {
    uint32_t *v;
    uint32_t n;
};

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

static inline void *rt_map_get(const struct map *m, const char *key, size_t len, uint64_t hash)
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

static inline struct ids rt_node_ids(const struct forest *f, uint32_t idx, bool rest)
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

static inline uint64_t rt_edge_hash(uint32_t parent, uint64_t level_hash)
{
    uint64_t h = level_hash ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 32;
    return h;
}

static inline const char *rt_node_level(const struct forest *f, const struct node *n)
{
    return n->level_len <= NODE_INLINE ? n->level.text : f->arena + n->level.off;
}

static inline bool rt_level_eq(const struct forest *f, uint32_t idx, const char *level, size_t len)
{
    const struct node *c = &f->nodes[idx];
    return c->level_len == len && memcmp(rt_node_level(f, c), level, len) == 0;
}

/* The literal child of `parent` named `level`, or 0. When found in the edge table,
 * *min_id is its smallest rule id (else RT_NO_ID). */
static inline uint32_t rt_child_find(const struct forest *f, uint32_t parent, const char *level,
                                     size_t len, uint64_t level_hash, uint32_t *min_id)
{
    *min_id = RT_NO_ID;
    uint32_t kid = f->nodes[parent].kid;
    if (kid == 0) {
        return 0;
    }
    uint64_t h = rt_edge_hash(parent, level_hash);
    if (kid != KIDS_MANY) {
        /* the only child: its parent is `parent` by construction */
        return f->nodes[parent].kid_tag == (uint8_t)(h >> 32) &&
               rt_level_eq(f, kid, level, len) ? kid : 0;
    }
    uint32_t tag = (uint32_t)(h >> 32);
    size_t mask = f->cap_edges - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct edge *e = &f->edges[i];
        if (e->child == 0) {
            return 0;
        }
        if (e->tag == tag && e->parent == parent && rt_level_eq(f, e->child, level, len)) {
            *min_id = e->min_id;  /* known before the child's node arrives */
            return e->child;
        }
    }
}

/* A root with its key in a map (sources: "l:NAME" / "b:NAME"; egress: the topic). */
struct keyed_root {
    char *key;
    uint32_t root;
};

/* Add pattern p (already split into lv and validated) with id under root. 0 or -ENOMEM.
 * The id is pushed last, so on failure no list holds it (new empty nodes may stay;
 * they match nothing). Borrows p and lv (level texts are copied). The forest's owner. */
int rt_trie_insert(struct forest *f, uint32_t root, const char *p, const struct levels *lv,
                   uint32_t id);

/* The keyed_root of key (len bytes) in m, created with a new empty root in f if absent.
 * Returns a pointer owned by m (freed by rt_keyed_map_free), NULL on out of memory.
 * Borrows key (copied). The forest's owner. */
struct keyed_root *rt_keyed_root_get_or_add(struct map *m, struct forest *f, const char *key,
                                            size_t len);

/* Free every keyed_root in m and m's slots; m is left empty. The roots' nodes stay in
 * the forest (rt_forest_free). The forest's owner. */
void rt_keyed_map_free(struct map *m);

/* Free every node, edge and id list of f; f is left empty (all zero). The forest's
 * owner, once no reader is left. */
void rt_forest_free(struct forest *f);

#endif

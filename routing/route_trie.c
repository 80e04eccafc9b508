/*
 * The compiled trie forest, build side: id lists, the small string map, node and edge
 * storage, inserting a pattern, and the keyed roots (one per ingress source or egress
 * topic). The layout and the read side are in route_trie.h.
 */
#include "routing/route_trie.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- id lists and the small hash map ------------------------------------------------ */

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
                uint64_t h = rt_edge_hash(e->parent, rt_hash_bytes(rt_node_level(f, c),
                                                                   c->level_len));
                edge_place(edges, cap, h, e->parent, e->child, c->min_id);
            }
        }
        free(f->edges);
        f->edges = edges;
        f->cap_edges = cap;
    }
    edge_place(f->edges, f->cap_edges, rt_edge_hash(parent, level_hash), parent, child,
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
        p->kid_tag = (uint8_t)(rt_edge_hash(parent, level_hash) >> 32);
        return 0;
    }
    if (p->kid != KIDS_MANY) {
        /* second child: move the first into the edge table */
        const struct node *k = &f->nodes[p->kid];
        if (edge_add(f, parent, rt_hash_bytes(rt_node_level(f, k), k->level_len), p->kid) < 0) {
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

void rt_forest_free(struct forest *f)
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

int rt_trie_insert(struct forest *f, uint32_t root, const char *p,
                   const struct levels *lv, uint32_t id)
{
    uint32_t n = root;
    for (int i = 0; i < lv->n; i++) {
        node_note_id(f, n, id);
        if (rt_level_is(p, lv, i, '#')) {
            return node_push_id(f, n, true, id);
        }
        uint32_t next;
        if (rt_level_is_one(p, lv, i)) {
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
            uint64_t h = rt_hash_bytes(l, len);
            uint32_t unused;
            next = rt_child_find(f, n, l, len, h, &unused);
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

static void keyed_root_free(struct keyed_root *k)
{
    if (k != NULL) {
        free(k->key);
        free(k);
    }
}

struct keyed_root *rt_keyed_root_get_or_add(struct map *m, struct forest *f,
                                            const char *key, size_t len)
{
    uint64_t h = rt_hash_bytes(key, len);
    struct keyed_root *k = rt_map_get(m, key, len, h);
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

void rt_keyed_map_free(struct map *m)
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

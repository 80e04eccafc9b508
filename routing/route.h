/*
 * sluice routing table: ingress rules (source + subject pattern + header predicates ->
 * log topics, partition key, header rewrites) and egress bindings (topic + subject
 * filter -> adapter destination), compiled into per-source / per-topic tries over
 * subject levels. Lookup walks the trie (literal child by hash, the '+' child, the '#'
 * list at each node), so its cost depends on the subject's depth, not on the number
 * of rules. Lookups never allocate.
 *
 * Pure: no I/O, no libevent, no globals. A table is built (rt_table_new, rt_add_*) on
 * one thread and is then read-only: any number of threads may look it up at once as
 * long as nobody adds to it. On reload the owner builds a new table and swaps.
 *
 * Subjects and patterns
 * - A subject is a '/'-separated name of 1..RT_MAX_SUBJECT bytes and at most
 *   RT_MAX_LEVELS levels. Empty levels are allowed and are ordinary levels ("a//b" has
 *   three levels, the middle one empty; "a/" has two), as in MQTT. The empty string is
 *   not a subject. Wildcard characters in a subject carry no meaning (they are text).
 * - A pattern has the same limits. A level that is exactly "+" or "*" matches any one
 *   level (including an empty one); a level that is exactly "#" matches the rest, zero or
 *   more levels, and must be the last level ("a/#" matches "a", "a/b", "a/b/c").
 *   '+', '*' and '#' anywhere else inside a level ("a+", "x#y") make the pattern
 *   invalid. Empty levels are allowed, literally ("/a/+" matches "/a/b").
 * - MQTT's rule: a subject whose first level starts with '$' is not matched by a
 *   pattern whose first level is '+', '*' or '#' ("$SYS/x" is matched by "$SYS/#" only).
 *
 * Default addressing (DESIGN.md "Addressing"): when no rule matches, the log topic is
 * the subject's first level and the partition key is the whole subject.
 *
 * Templates
 * - Ingress topic names may contain "{1}".."{9}", replaced by that subject level
 *   (1-based); after substitution the name must be a valid Kafka topic name
 *   ([a-zA-Z0-9._-], 1..249 bytes, not "." or ".."), else the lookup fails (-EINVAL).
 *   A reference to a level the subject does not have also fails the lookup.
 * - Egress destinations may contain "{subject}", "{topic}" and "{1}".."{9}".
 *   Any other '{' or '}' in a template is rejected when the rule is added.
 */
#ifndef SL_ROUTE_H
#define SL_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define RT_MAX_TOPICS 8          /* topics per ingress rule */
#define RT_MAX_LEVELS 32         /* levels per subject or pattern */
#define RT_MAX_SUBJECT 1024      /* bytes per subject or pattern, excluding the NUL */
#define RT_TOPIC_MAX 249         /* Kafka's limit on a topic name */

struct rt_table;                      /* immutable after build; rebuilt on reload */

enum rt_key { RT_KEY_SUBJECT = 0, RT_KEY_HEADER, RT_KEY_NONE };

struct rt_kv { const char *name; const char *value; };

struct rt_ingress {                   /* all strings copied by rt_add_ingress */
    const char *listener;             /* source: exactly one of listener / bridge */
    const char *bridge;               /* (non-empty, not "*") */
    const char *match;                /* subject pattern; NULL means "#" */
    const struct rt_kv *when;         /* all must hold: header name equals value */
    size_t n_when;
    const char *const *topics;        /* 1..RT_MAX_TOPICS log topics, may use {1}..{9} */
    size_t n_topics;
    enum rt_key key;
    const char *key_header;           /* RT_KEY_HEADER: the header naming the key */
    const struct rt_kv *set;          /* header rewrites the caller applies to the event, in
                                       * order: set name to value (value NULL: remove it) */
    size_t n_set;
    int line;                         /* config line, reported back for errors/debug */
};

struct rt_egress {                    /* all strings copied by rt_add_egress */
    const char *topic;                /* log topic (a literal, valid Kafka name) */
    const char *match;                /* subject filter, same syntax; NULL means "#" */
    const char *bridge;               /* target: exactly one of bridge / listener */
    const char *listener;
    const char *destination;          /* template; NULL means "{subject}" */
    int line;
};

/* Result of an ingress lookup. */
struct rt_decision {
    const struct rt_ingress *rule;    /* the matching rule (owned by the table, valid while
                                       * the table is), NULL for default addressing */
    size_t n_topics;
    char topics[RT_MAX_TOPICS][RT_TOPIC_MAX + 1];  /* resolved topic names */
    enum rt_key key;
    const char *key_header;           /* owned by the table; NULL unless RT_KEY_HEADER */
};

/* Header lookup supplied by the caller: returns the value (NUL-terminated) or NULL. */
typedef const char *(*rt_header_fn)(void *arg, const char *name);

/* Called for each matching egress binding; `binding` is owned by the table. */
typedef void (*rt_egress_fn)(void *arg, const struct rt_egress *binding);

/*
 * A new, empty table (no rules: default addressing, no egress bindings).
 * Returns a new table the caller owns (free with rt_table_free), NULL on out of memory.
 * Any thread.
 */
struct rt_table *rt_table_new(void);

/* Free the table and every rule it holds; sets *t to NULL. NULL or *t NULL: no-op.
 * Pointers returned by lookups (decision.rule, key_header, bindings) die with it. */
void rt_table_free(struct rt_table **t);

/*
 * Add an ingress rule after the ones already added (first match wins in this order).
 * Borrows r and everything it points to; copies all of it. Returns 0; -EINVAL when the
 * rule is malformed (pattern, source, topics, key, templates), with *err set to a
 * malloc'd message naming r->line (caller frees; err may be NULL); -ENOMEM.
 * The thread that owns the table, before it is shared for lookups.
 */
int rt_add_ingress(struct rt_table *t, const struct rt_ingress *r, char **err);

/* Add an egress binding; same contract as rt_add_ingress. */
int rt_add_egress(struct rt_table *t, const struct rt_egress *r, char **err);

/* Number of ingress rules / egress bindings added so far. Any thread. */
size_t rt_table_n_ingress(const struct rt_table *t);
size_t rt_table_n_egress(const struct rt_table *t);

/*
 * Whether any ingress rule has this source (listener or bridge, exactly one non-NULL).
 * False means rt_route_ingress answers default addressing (rule NULL) or -EINVAL for
 * every subject from it, whatever the headers. Borrows everything; pure; any thread,
 * table read-only.
 */
bool rt_route_has_ingress(const struct rt_table *t, const char *listener, const char *bridge);

/*
 * Route an event: the first ingress rule, in insertion (file) order, whose source is
 * (listener or bridge, exactly one non-NULL; both NULL: no rule applies), whose pattern
 * matches `subject` and whose header predicates all hold (hdr may be NULL: then only
 * rules without predicates match). With no matching rule, default addressing.
 * Borrows everything; fills *out. Returns 0, or -EINVAL if the subject is empty, too
 * long, has too many levels, both sources are given, or a resolved topic name is invalid.
 * Pure, allocation-free; any thread, table read-only.
 */
int rt_route_ingress(const struct rt_table *t, const char *listener, const char *bridge,
                     const char *subject, rt_header_fn hdr, void *hdr_arg,
                     struct rt_decision *out);

/*
 * Call fn(arg, binding) for every egress binding whose topic equals `topic` and whose
 * filter matches `subject`, in insertion (file) order, each once. An invalid subject
 * matches nothing. Borrows everything; allocation-free; any thread, table read-only.
 * fn must not modify the table.
 */
void rt_route_egress(const struct rt_table *t, const char *topic, const char *subject,
                     rt_egress_fn fn, void *arg);

/*
 * Render b->destination for (topic, subject) into out (size outsz, NUL-terminated).
 * Returns the length written (excluding the NUL), -ENOSPC if it does not fit, -EINVAL
 * if the template names a level ({N}) the subject does not have. Borrows everything;
 * any thread.
 */
int rt_render_destination(const struct rt_egress *b, const char *topic, const char *subject,
                          char *out, size_t outsz);

/*
 * Does the pattern match the subject? (syntax above: '+', '*', '#', the '$' rule).
 * False when either is invalid. Pure; any thread. Reused by subscription code.
 */
bool rt_match(const char *pattern, const char *subject);

/* Is this a valid pattern (syntax and limits above)? Pure; any thread. */
bool rt_pattern_valid(const char *pattern);

/* Is this a valid subject (1..RT_MAX_SUBJECT bytes, 1..RT_MAX_LEVELS levels)? */
bool rt_subject_valid(const char *subject);

/* Kafka's topic-name rule: [a-zA-Z0-9._-], 1..249 bytes, not "." or "..". */
bool rt_topic_name_valid(const char *name);

#endif

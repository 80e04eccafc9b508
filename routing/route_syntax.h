/*
 * Routing internals: the syntax of subjects, patterns, topic names and templates
 * (route_syntax.c). Shared by route.c and route_trie.c; not for use outside routing/.
 * Pure: no state, no allocation; any thread.
 */
#ifndef SL_ROUTE_SYNTAX_H
#define SL_ROUTE_SYNTAX_H

#include <stdbool.h>
#include <stdint.h>

#include "routing/route.h"

struct levels {
    int n;
    uint16_t off[RT_MAX_LEVELS];
    uint16_t len[RT_MAX_LEVELS];
};

/* Split s into levels. 0, or -1 when s is empty, too long or has too many levels.
 * Borrows s (lv points into it by offset); pure; any thread. */
int rt_split_levels(const char *s, struct levels *lv);

/* Split and check a pattern. 0 or -1; *why says what is wrong (a static string).
 * Borrows p; pure; any thread. */
int rt_split_pattern(const char *p, struct levels *lv, const char **why);

/* Check an ingress topic template; *templated tells whether it has {N}. 0, or -1 with
 * *why (a static string) saying what is wrong. Borrows tpl; pure; any thread. */
int rt_check_topic_template(const char *tpl, bool *templated, const char **why);

/* Check an egress destination template: 0, or -1 if a brace is not {subject}, {topic}
 * or {1}..{9}. Borrows tpl; pure; any thread. */
int rt_check_dest_template(const char *tpl);

/* Level i of a split name is exactly the character c. */
static inline bool rt_level_is(const char *s, const struct levels *lv, int i, char c)
{
    return lv->len[i] == 1 && s[lv->off[i]] == c;
}

/* Level i is a one-level wildcard ("+" or "*"). */
static inline bool rt_level_is_one(const char *s, const struct levels *lv, int i)
{
    return rt_level_is(s, lv, i, '+') || rt_level_is(s, lv, i, '*');
}

#endif

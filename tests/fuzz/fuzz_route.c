/*
 * libFuzzer harness for routing/. Input: lines; the first is a subject, the rest
 * are patterns (at most 64). Oracle: the trie must agree with rt_match, which matches
 * one pattern against one subject level by level with no trie:
 * - ingress: the rule chosen is the first pattern (in order) for which rt_match holds;
 * - egress: the bindings reported are exactly those for which rt_match holds, in order.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "routing/route.h"

#define MAX_PATTERNS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct egress_seen {
    int lines[MAX_PATTERNS];
    int n;
};

static void on_binding(void *arg, const struct rt_egress *b)
{
    struct egress_seen *s = arg;
    if (s->n >= MAX_PATTERNS) {
        abort();                 /* more calls than bindings */
    }
    s->lines[s->n++] = b->line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) {
        return 0;
    }
    char *buf = malloc(size + 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *lines[MAX_PATTERNS + 1];
    int n = 0;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l != NULL && n <= MAX_PATTERNS;
         l = strtok_r(NULL, "\n", &save)) {
        lines[n++] = l;
    }
    if (n == 0) {
        free(buf);
        return 0;
    }
    const char *subject = lines[0];
    struct rt_table *t = rt_table_new();
    if (t == NULL) {
        free(buf);
        return 0;
    }
    const char *topics[] = { "t" };
    int expect_in = 0;
    struct egress_seen want = { .n = 0 };
    for (int i = 1; i < n; i++) {
        struct rt_ingress r = { .listener = "l", .match = lines[i], .topics = topics,
                                .n_topics = 1, .line = i };
        struct rt_egress e = { .topic = "t", .match = lines[i], .bridge = "b",
                               .destination = "{subject}/{1}", .line = i };
        char *err = NULL;
        int rc = rt_add_ingress(t, &r, &err);
        if ((rc == 0) != rt_pattern_valid(lines[i]) || (rc != 0 && err == NULL)) {
            abort();
        }
        free(err);
        if (rt_add_egress(t, &e, NULL) != rc) {
            abort();
        }
        if (rc == 0 && rt_match(lines[i], subject)) {
            if (expect_in == 0) {
                expect_in = i;
            }
            want.lines[want.n++] = i;
        }
    }
    struct rt_decision d;
    int rc = rt_route_ingress(t, "l", NULL, subject, NULL, NULL, &d);
    if (rc == 0) {
        int got = d.rule != NULL ? d.rule->line : 0;
        if (got != expect_in || d.n_topics != 1) {
            abort();
        }
    } else if (expect_in != 0) {
        abort();                 /* a rule with a literal topic cannot fail */
    }
    struct egress_seen got = { .n = 0 };
    rt_route_egress(t, "t", subject, on_binding, &got);
    if (got.n != want.n || memcmp(got.lines, want.lines, sizeof(int) * (size_t)got.n) != 0) {
        abort();
    }
    char out[64];
    if (rt_table_n_egress(t) > 0) {
        struct rt_egress b = { .destination = "{subject}/{1}" };
        (void)rt_render_destination(&b, "t", subject, out, sizeof(out));
    }
    rt_table_free(&t);
    free(buf);
    return 0;
}

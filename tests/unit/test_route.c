/* Unit tests for routing/: matching, ingress rules, default addressing, egress. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "routing/route.h"

/* ---- helpers ---------------------------------------------------------------------- */

struct hdrs {
    const char *names[4];
    const char *values[4];
    size_t n;
};

static const char *hdr_get(void *arg, const char *name)
{
    const struct hdrs *h = arg;
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->names[i], name) == 0) {
            return h->values[i];
        }
    }
    return NULL;
}

/* Add a simple listener rule: match -> one topic, key subject. */
static void add_rule(struct rt_table *t, const char *listener, const char *match,
                     const char *topic, int line)
{
    const char *topics[] = { topic };
    struct rt_ingress r = { .listener = listener, .match = match, .topics = topics,
                            .n_topics = 1, .key = RT_KEY_SUBJECT, .line = line };
    char *err = NULL;
    int rc = rt_add_ingress(t, &r, &err);
    if (rc != 0) {
        fprintf(stderr, "add_rule: %s\n", err ? err : "?");
    }
    assert_int_equal(rc, 0);
    assert_null(err);
}

/* Route via listener, expect success; return the matching rule's line (0: default). */
static int route_line(const struct rt_table *t, const char *listener, const char *subject,
                      struct rt_decision *d)
{
    assert_int_equal(rt_route_ingress(t, listener, NULL, subject, NULL, NULL, d), 0);
    return d->rule != NULL ? d->rule->line : 0;
}

/* ---- rt_match / validity ---------------------------------------------------------- */

static void test_match_literal_and_wildcards(void **state)
{
    (void)state;
    assert_true(rt_match("a/b/c", "a/b/c"));
    assert_false(rt_match("a/b/c", "a/b"));
    assert_false(rt_match("a/b", "a/b/c"));
    assert_false(rt_match("a/b/c", "a/b/d"));
    assert_true(rt_match("a/+/c", "a/x/c"));
    assert_true(rt_match("a/*/c", "a/x/c"));
    assert_false(rt_match("a/+/c", "a/x/y/c"));
    assert_true(rt_match("+", "a"));
    assert_false(rt_match("+", "a/b"));
    assert_true(rt_match("+/+", "a/b"));
    assert_true(rt_match("a/#", "a"));
    assert_true(rt_match("a/#", "a/b"));
    assert_true(rt_match("a/#", "a/b/c/d"));
    assert_false(rt_match("a/#", "ab"));
    assert_false(rt_match("a/#", "b/a"));
    assert_true(rt_match("#", "x/y/z"));
    assert_true(rt_match("a/+/#", "a/b"));
    assert_false(rt_match("a/+/#", "a"));
    /* empty levels are ordinary levels */
    assert_true(rt_match("a/+", "a/"));
    assert_true(rt_match("+/a", "/a"));
    assert_true(rt_match("a//b", "a//b"));
    assert_false(rt_match("a/b", "a//b"));
    /* wildcard characters in a subject are just text */
    assert_false(rt_match("a/b", "a/+"));
    assert_true(rt_match("a/+", "a/+"));
}

static void test_match_dollar_rule(void **state)
{
    (void)state;
    assert_false(rt_match("#", "$SYS/x"));
    assert_false(rt_match("+/x", "$SYS/x"));
    assert_false(rt_match("*/x", "$SYS/x"));
    assert_false(rt_match("+", "$SYS"));
    assert_true(rt_match("$SYS/#", "$SYS/x"));
    assert_true(rt_match("$SYS/+", "$SYS/x"));
    assert_true(rt_match("$SYS/#", "$SYS"));
    /* only the first level is special */
    assert_true(rt_match("a/+", "a/$x"));
    assert_true(rt_match("a/#", "a/$x/y"));
}

static void test_pattern_validity(void **state)
{
    (void)state;
    assert_true(rt_pattern_valid("a"));
    assert_true(rt_pattern_valid("#"));
    assert_true(rt_pattern_valid("+/+/#"));
    assert_true(rt_pattern_valid("a//b"));
    assert_true(rt_pattern_valid("/a"));
    assert_false(rt_pattern_valid(""));
    assert_false(rt_pattern_valid(NULL));
    assert_false(rt_pattern_valid("a/#/b"));
    assert_false(rt_pattern_valid("#/a"));
    assert_false(rt_pattern_valid("a+/b"));
    assert_false(rt_pattern_valid("a/b#"));
    assert_false(rt_pattern_valid("a/x*y"));
    assert_false(rt_pattern_valid("++"));
    /* invalid patterns match nothing */
    assert_false(rt_match("a/#/b", "a/x/b"));
    assert_false(rt_match("a+/b", "a+/b"));

    /* limits: 32 levels ok, 33 not; 1024 bytes ok, 1025 not */
    char buf[1200];
    size_t pos = 0;
    for (int i = 0; i < 32; i++) {
        pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%sx", i ? "/" : "");
    }
    assert_true(rt_pattern_valid(buf));
    assert_true(rt_subject_valid(buf));
    snprintf(buf + pos, sizeof(buf) - pos, "/x");
    assert_false(rt_pattern_valid(buf));
    assert_false(rt_subject_valid(buf));
    memset(buf, 'a', 1024);
    buf[1024] = '\0';
    assert_true(rt_subject_valid(buf));
    buf[1024] = 'a';
    buf[1025] = '\0';
    assert_false(rt_subject_valid(buf));
    assert_false(rt_subject_valid(""));
}

static void test_topic_name_valid(void **state)
{
    (void)state;
    assert_true(rt_topic_name_valid("orders"));
    assert_true(rt_topic_name_valid("a.b_c-D9"));
    assert_false(rt_topic_name_valid(""));
    assert_false(rt_topic_name_valid("."));
    assert_false(rt_topic_name_valid(".."));
    assert_false(rt_topic_name_valid("a b"));
    assert_false(rt_topic_name_valid("$SYS"));
    char buf[260];
    memset(buf, 'a', 249);
    buf[249] = '\0';
    assert_true(rt_topic_name_valid(buf));
    buf[249] = 'a';
    buf[250] = '\0';
    assert_false(rt_topic_name_valid(buf));
}

/* ---- ingress ------------------------------------------------------------------------ */

static void test_default_addressing(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    assert_non_null(t);
    struct rt_decision d;
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "orders/eu/created", NULL, NULL, &d),
                     0);
    assert_null(d.rule);
    assert_int_equal(d.n_topics, 1);
    assert_string_equal(d.topics[0], "orders");
    assert_int_equal(d.key, RT_KEY_SUBJECT);
    assert_null(d.key_header);

    assert_int_equal(rt_route_ingress(t, NULL, "legacy", "jobs", NULL, NULL, &d), 0);
    assert_string_equal(d.topics[0], "jobs");

    /* first level not a valid topic name */
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "$SYS/x", NULL, NULL, &d), -EINVAL);
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "bad topic/x", NULL, NULL, &d),
                     -EINVAL);
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "/x", NULL, NULL, &d), -EINVAL);
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "../x", NULL, NULL, &d), -EINVAL);
    /* empty subject, NULL subject, both sources */
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "", NULL, NULL, &d), -EINVAL);
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, NULL, NULL, NULL, &d), -EINVAL);
    assert_int_equal(rt_route_ingress(t, "mqtt", "b", "a", NULL, NULL, &d), -EINVAL);
    /* no source at all: default addressing */
    assert_int_equal(rt_route_ingress(t, NULL, NULL, "a/b", NULL, NULL, &d), 0);
    assert_string_equal(d.topics[0], "a");
    rt_table_free(&t);
    assert_null(t);
    rt_table_free(&t);      /* no-op */
    rt_table_free(NULL);    /* no-op */
}

static void test_first_match_wins(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    add_rule(t, "mqtt", "sensors/#", "all", 10);
    add_rule(t, "mqtt", "sensors/+/temp", "temps", 11);
    add_rule(t, "mqtt", "sensors/dev1/temp", "dev1", 12);
    add_rule(t, "mqtt", "other/+/temp", "othertemps", 13);
    add_rule(t, "mqtt", "other/dev1/temp", "otherdev1", 14);
    struct rt_decision d;
    /* the earlier, broader rule wins over later, more specific ones */
    assert_int_equal(route_line(t, "mqtt", "sensors/dev1/temp", &d), 10);
    assert_string_equal(d.topics[0], "all");
    assert_int_equal(route_line(t, "mqtt", "sensors", &d), 10);
    assert_int_equal(route_line(t, "mqtt", "other/dev1/temp", &d), 13);
    assert_string_equal(d.topics[0], "othertemps");
    assert_int_equal(route_line(t, "mqtt", "other/dev2/temp", &d), 13);
    /* no match: default */
    assert_int_equal(route_line(t, "mqtt", "other/dev1/hum", &d), 0);
    assert_string_equal(d.topics[0], "other");
    rt_table_free(&t);
}

static void test_sources_are_separate(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    add_rule(t, "mqtt", "a/#", "from-mqtt", 1);
    const char *topics[] = { "from-legacy" };
    struct rt_ingress r = { .bridge = "mqtt", .match = "a/#", .topics = topics,
                            .n_topics = 1, .line = 2 };
    assert_int_equal(rt_add_ingress(t, &r, NULL), 0);
    struct rt_decision d;
    assert_int_equal(route_line(t, "mqtt", "a/b", &d), 1);
    assert_string_equal(d.topics[0], "from-mqtt");
    /* listener http has no rules: default addressing */
    assert_int_equal(route_line(t, "http", "a/b", &d), 0);
    assert_string_equal(d.topics[0], "a");
    /* a bridge named like a listener is a different source */
    assert_int_equal(rt_route_ingress(t, NULL, "mqtt", "a/b", NULL, NULL, &d), 0);
    assert_non_null(d.rule);
    assert_int_equal(d.rule->line, 2);
    assert_string_equal(d.topics[0], "from-legacy");
    assert_string_equal(d.rule->bridge, "mqtt");
    assert_null(d.rule->listener);
    rt_table_free(&t);
}

/* rt_route_has_ingress: true only for a source some rule names. */
static void test_has_ingress(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    const char *topics[] = { "from-legacy" };
    struct rt_ingress r = { .bridge = "legacy", .match = "a/#", .topics = topics,
                            .n_topics = 1, .line = 2 };

    assert_false(rt_route_has_ingress(NULL, "http", NULL));
    assert_false(rt_route_has_ingress(t, "mqtt", NULL));
    add_rule(t, "mqtt", "a/#", "from-mqtt", 1);
    assert_true(rt_route_has_ingress(t, "mqtt", NULL));
    assert_false(rt_route_has_ingress(t, "http", NULL));
    assert_false(rt_route_has_ingress(t, NULL, "mqtt"));      /* a bridge is another source */
    assert_false(rt_route_has_ingress(t, NULL, "legacy"));
    assert_int_equal(rt_add_ingress(t, &r, NULL), 0);
    assert_true(rt_route_has_ingress(t, NULL, "legacy"));
    assert_false(rt_route_has_ingress(t, NULL, NULL));
    assert_false(rt_route_has_ingress(t, "mqtt", "legacy"));  /* both: no rule applies */
    rt_table_free(&t);
}

static void test_header_predicates(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    const char *t1[] = { "priority" };
    const char *t2[] = { "normal" };
    struct rt_kv when[] = { { "prio", "high" }, { "region", "eu" } };
    struct rt_ingress r1 = { .listener = "http", .match = "orders/#", .when = when,
                             .n_when = 2, .topics = t1, .n_topics = 1, .line = 1 };
    struct rt_ingress r2 = { .listener = "http", .match = "orders/#", .topics = t2,
                             .n_topics = 1, .line = 2 };
    assert_int_equal(rt_add_ingress(t, &r1, NULL), 0);
    assert_int_equal(rt_add_ingress(t, &r2, NULL), 0);
    struct rt_decision d;
    struct hdrs both = { { "prio", "region" }, { "high", "eu" }, 2 };
    struct hdrs one = { { "prio" }, { "high" }, 1 };
    struct hdrs wrong = { { "prio", "region" }, { "high", "us" }, 2 };
    assert_int_equal(rt_route_ingress(t, "http", NULL, "orders/x", hdr_get, &both, &d), 0);
    assert_string_equal(d.topics[0], "priority");
    assert_int_equal(d.rule->n_when, 2);
    assert_int_equal(rt_route_ingress(t, "http", NULL, "orders/x", hdr_get, &one, &d), 0);
    assert_string_equal(d.topics[0], "normal");
    assert_int_equal(rt_route_ingress(t, "http", NULL, "orders/x", hdr_get, &wrong, &d), 0);
    assert_string_equal(d.topics[0], "normal");
    /* no header function: predicates cannot hold */
    assert_int_equal(rt_route_ingress(t, "http", NULL, "orders/x", NULL, NULL, &d), 0);
    assert_string_equal(d.topics[0], "normal");
    rt_table_free(&t);
}

static void test_predicate_on_later_more_specific_rule(void **state)
{
    (void)state;
    /* Rule 1 (specific, predicate) fails its predicate; rule 2 (broad) then wins over
     * rule 3 (specific, no predicate) because it comes first. */
    struct rt_table *t = rt_table_new();
    const char *ta[] = { "a" }, *tb[] = { "b" }, *tc[] = { "c" };
    struct rt_kv when[] = { { "x", "1" } };
    struct rt_ingress r1 = { .listener = "l", .match = "s/t", .when = when, .n_when = 1,
                             .topics = ta, .n_topics = 1, .line = 1 };
    struct rt_ingress r2 = { .listener = "l", .match = "#", .topics = tb, .n_topics = 1,
                             .line = 2 };
    struct rt_ingress r3 = { .listener = "l", .match = "s/t", .topics = tc, .n_topics = 1,
                             .line = 3 };
    assert_int_equal(rt_add_ingress(t, &r1, NULL), 0);
    assert_int_equal(rt_add_ingress(t, &r2, NULL), 0);
    assert_int_equal(rt_add_ingress(t, &r3, NULL), 0);
    struct rt_decision d;
    struct hdrs x1 = { { "x" }, { "1" }, 1 };
    struct hdrs x2 = { { "x" }, { "2" }, 1 };
    assert_int_equal(rt_route_ingress(t, "l", NULL, "s/t", hdr_get, &x1, &d), 0);
    assert_string_equal(d.topics[0], "a");
    assert_int_equal(rt_route_ingress(t, "l", NULL, "s/t", hdr_get, &x2, &d), 0);
    assert_string_equal(d.topics[0], "b");
    rt_table_free(&t);
}

static void test_multiple_topics_key_and_set(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    const char *topics[] = { "orders", "audit", "dev-{2}" };
    struct rt_kv set[] = { { "ce-source", "sluice" }, { "x-drop", NULL } };
    struct rt_ingress r = { .listener = "amqp", .match = "orders/+/created", .topics = topics,
                            .n_topics = 3, .key = RT_KEY_HEADER, .key_header = "customer",
                            .set = set, .n_set = 2, .line = 42 };
    char *err = NULL;
    assert_int_equal(rt_add_ingress(t, &r, &err), 0);
    struct rt_decision d;
    assert_int_equal(route_line(t, "amqp", "orders/eu/created", &d), 42);
    assert_int_equal(d.n_topics, 3);
    assert_string_equal(d.topics[0], "orders");
    assert_string_equal(d.topics[1], "audit");
    assert_string_equal(d.topics[2], "dev-eu");
    assert_int_equal(d.key, RT_KEY_HEADER);
    assert_string_equal(d.key_header, "customer");
    assert_ptr_equal(d.key_header, d.rule->key_header);
    assert_ptr_not_equal(d.key_header, r.key_header);   /* copied */
    assert_int_equal(d.rule->n_set, 2);
    assert_string_equal(d.rule->set[0].name, "ce-source");
    assert_string_equal(d.rule->set[0].value, "sluice");
    assert_null(d.rule->set[1].value);
    assert_string_equal(d.rule->match, "orders/+/created");

    /* key none */
    const char *tn[] = { "n" };
    struct rt_ingress rn = { .listener = "amqp", .match = "n", .topics = tn, .n_topics = 1,
                             .key = RT_KEY_NONE, .line = 43 };
    assert_int_equal(rt_add_ingress(t, &rn, NULL), 0);
    assert_int_equal(route_line(t, "amqp", "n", &d), 43);
    assert_int_equal(d.key, RT_KEY_NONE);
    assert_null(d.key_header);
    rt_table_free(&t);
}

static void test_level_substitution(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    add_rule(t, "mqtt", "devices/+/#", "dev-{2}", 1);
    add_rule(t, "mqtt", "x/#", "x-{3}-{2}", 2);
    struct rt_decision d;
    assert_int_equal(route_line(t, "mqtt", "devices/d17/temp", &d), 1);
    assert_string_equal(d.topics[0], "dev-d17");
    assert_int_equal(route_line(t, "mqtt", "x/a/b/c", &d), 2);
    assert_string_equal(d.topics[0], "x-b-a");
    /* the substituted level makes an invalid topic name */
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "devices/a b/t", NULL, NULL, &d),
                     -EINVAL);
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "devices/$x/t", NULL, NULL, &d),
                     -EINVAL);
    /* "{2}" resolving to an empty level gives "dev-": still valid */
    assert_int_equal(route_line(t, "mqtt", "devices//t", &d), 1);
    assert_string_equal(d.topics[0], "dev-");
    /* level 3 missing */
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "x/a", NULL, NULL, &d), -EINVAL);
    /* result longer than 249 bytes */
    char subj[400];
    memcpy(subj, "devices/", 8);
    memset(subj + 8, 'a', 250);
    subj[258] = '\0';
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, subj, NULL, NULL, &d), -EINVAL);
    subj[8 + 245] = '\0';
    assert_int_equal(route_line(t, "mqtt", subj, &d), 1);
    assert_int_equal(strlen(d.topics[0]), 249);
    rt_table_free(&t);
}

static void test_dollar_subjects_in_table(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    add_rule(t, "mqtt", "#", "everything", 1);
    add_rule(t, "mqtt", "+/x", "plusx", 2);
    add_rule(t, "mqtt", "$SYS/#", "sys", 3);
    struct rt_decision d;
    assert_int_equal(route_line(t, "mqtt", "$SYS/x", &d), 3);
    assert_string_equal(d.topics[0], "sys");
    assert_int_equal(route_line(t, "mqtt", "a/x", &d), 1);
    rt_table_free(&t);

    t = rt_table_new();
    add_rule(t, "mqtt", "#", "everything", 1);
    /* $-subject matched by no rule falls to default, whose topic "$SYS" is invalid */
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "$SYS/x", NULL, NULL, &d), -EINVAL);
    rt_table_free(&t);
}

static void expect_bad_ingress(struct rt_table *t, const struct rt_ingress *r,
                               const char *needle)
{
    char *err = NULL;
    assert_int_equal(rt_add_ingress(t, r, &err), -EINVAL);
    assert_non_null(err);
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, needle);
    }
    assert_non_null(strstr(err, needle));
    assert_non_null(strstr(err, "line 7"));
    free(err);
    /* err may be NULL */
    assert_int_equal(rt_add_ingress(t, r, NULL), -EINVAL);
}

static void test_invalid_ingress_rules(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    const char *ok[] = { "t" };
    struct rt_ingress base = { .listener = "mqtt", .match = "a/#", .topics = ok,
                               .n_topics = 1, .line = 7 };
    struct rt_ingress r;

    r = base; r.match = "a/#/b";
    expect_bad_ingress(t, &r, "'#' must be the last level");
    r = base; r.match = "a+/b";
    expect_bad_ingress(t, &r, "whole level");
    r = base; r.match = "";
    expect_bad_ingress(t, &r, "match");
    r = base; r.listener = NULL;
    expect_bad_ingress(t, &r, "exactly one");
    r = base; r.bridge = "b";
    expect_bad_ingress(t, &r, "exactly one");
    r = base; r.listener = "*";
    expect_bad_ingress(t, &r, "not allowed");
    r = base; r.listener = "";
    expect_bad_ingress(t, &r, "not allowed");
    r = base; r.n_topics = 0;
    expect_bad_ingress(t, &r, "topics");
    r = base; r.n_topics = RT_MAX_TOPICS + 1;
    expect_bad_ingress(t, &r, "topics");
    const char *bad1[] = { "a b" };
    r = base; r.topics = bad1;
    expect_bad_ingress(t, &r, "topic \"a b\"");
    const char *bad2[] = { "dev-{0}" };
    r = base; r.topics = bad2;
    expect_bad_ingress(t, &r, "{1}..{9}");
    const char *bad3[] = { "dev-{2" };
    r = base; r.topics = bad3;
    expect_bad_ingress(t, &r, "{1}..{9}");
    const char *bad4[] = { ".." };
    r = base; r.topics = bad4;
    expect_bad_ingress(t, &r, "valid topic");
    r = base; r.key = RT_KEY_HEADER;
    expect_bad_ingress(t, &r, "header name");
    struct rt_kv when[] = { { "x", NULL } };
    r = base; r.when = when; r.n_when = 1;
    expect_bad_ingress(t, &r, "predicate");

    /* nothing was added; match NULL means "#" */
    assert_int_equal(rt_table_n_ingress(t), 0);
    r = base; r.match = NULL;
    assert_int_equal(rt_add_ingress(t, &r, NULL), 0);
    assert_int_equal(rt_table_n_ingress(t), 1);
    struct rt_decision d;
    assert_int_equal(route_line(t, "mqtt", "q/w/e", &d), 7);
    assert_string_equal(d.rule->match, "#");
    rt_table_free(&t);
}

static void test_many_rules(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    char pat[64], topic[64];
    for (int i = 0; i < 10000; i++) {
        if (i % 10 == 9) {
            snprintf(pat, sizeof(pat), "site%d/alerts/#", i);
        } else {
            snprintf(pat, sizeof(pat), "site%d/+/temp", i);
        }
        snprintf(topic, sizeof(topic), "t%d", i);
        add_rule(t, "mqtt", pat, topic, i + 1);
    }
    add_rule(t, "mqtt", "site5/dev1/temp", "shadowed", 10001);
    add_rule(t, "mqtt", "+/+/hum", "hums", 10002);
    assert_int_equal(rt_table_n_ingress(t), 10002);
    struct rt_decision d;
    assert_int_equal(route_line(t, "mqtt", "site0/d/temp", &d), 1);
    assert_string_equal(d.topics[0], "t0");
    assert_int_equal(route_line(t, "mqtt", "site5/dev1/temp", &d), 6);
    assert_int_equal(route_line(t, "mqtt", "site9998/x/temp", &d), 9999);
    assert_string_equal(d.topics[0], "t9998");
    assert_int_equal(route_line(t, "mqtt", "site9999/alerts", &d), 10000);
    assert_int_equal(route_line(t, "mqtt", "site9999/alerts/a/b", &d), 10000);
    assert_int_equal(route_line(t, "mqtt", "site9999/x/temp", &d), 0);
    assert_string_equal(d.topics[0], "site9999");
    assert_int_equal(route_line(t, "mqtt", "site123/x/hum", &d), 10002);
    assert_int_equal(route_line(t, "mqtt", "site10000/x/temp", &d), 0);
    /* spot-check every 97th rule against rt_match */
    for (int i = 0; i < 10000; i += 97) {
        char subj[64];
        snprintf(subj, sizeof(subj), "site%d/alerts/temp", i);
        int line = route_line(t, "mqtt", subj, &d);
        assert_int_equal(line, i + 1);
        assert_true(rt_match(d.rule->match, subj));
    }
    rt_table_free(&t);
}

/*
 * The compact layout's edge cases: level texts that live in the node (<= 8 bytes) or
 * in the arena, siblings that share a length, many siblings (edge table regrowth),
 * topic names held in the rule's 32-byte lookup record (<= 16 bytes with NULs) or in
 * the table's text, templates in both, header keys, and a second identical pattern.
 */
static void test_layout_levels_and_topics(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    char pat[96], topic[64], subj[96];
    /* 1..300: siblings under the root, alternately short and long (arena) texts */
    for (int i = 0; i < 300; i++) {
        if (i % 2 == 0) {
            snprintf(pat, sizeof(pat), "s%d/x", i);
        } else {
            snprintf(pat, sizeof(pat), "a-rather-long-level-%07d/x", i);
        }
        snprintf(topic, sizeof(topic), "t%d", i);
        add_rule(t, "mqtt", pat, topic, i + 1);
    }
    /* 301: 8-byte level (inline, at the limit); 302: 9 bytes (arena), same prefix */
    add_rule(t, "mqtt", "abcdefgh/+", "eight", 301);
    add_rule(t, "mqtt", "abcdefghi/+", "nine", 302);
    /* 303: two topics that fit inline exactly (16 bytes with NULs), one templated */
    const char *fit[] = { "topic-a", "{1}-{2}" };
    struct rt_ingress r = { .listener = "mqtt", .match = "fit/+", .topics = fit,
                            .n_topics = 2, .key = RT_KEY_HEADER, .key_header = "k",
                            .line = 303 };
    assert_int_equal(rt_add_ingress(t, &r, NULL), 0);
    /* 304: three topics too long to fit, templated in the middle and last */
    const char *big[] = { "a-very-long-topic-name", "x.{2}.y", "z-{1}" };
    struct rt_ingress r2 = { .listener = "mqtt", .match = "big/+/#", .topics = big,
                             .n_topics = 3, .key = RT_KEY_NONE, .line = 304 };
    assert_int_equal(rt_add_ingress(t, &r2, NULL), 0);
    /* 305: the same pattern as 303, never chosen */
    add_rule(t, "mqtt", "fit/+", "never", 305);
    struct rt_decision d;
    for (int i = 0; i < 300; i++) {
        if (i % 2 == 0) {
            snprintf(subj, sizeof(subj), "s%d/x", i);
        } else {
            snprintf(subj, sizeof(subj), "a-rather-long-level-%07d/x", i);
        }
        assert_int_equal(route_line(t, "mqtt", subj, &d), i + 1);
        snprintf(topic, sizeof(topic), "t%d", i);
        assert_string_equal(d.topics[0], topic);
        assert_int_equal(d.n_topics, 1);
        assert_int_equal(d.key, RT_KEY_SUBJECT);
        assert_null(d.key_header);
    }
    /* same length, different text: default addressing */
    assert_int_equal(route_line(t, "mqtt", "s9/x", &d), 0);
    assert_int_equal(route_line(t, "mqtt", "a-rather-long-level-0000000/x", &d), 0);
    assert_int_equal(route_line(t, "mqtt", "abcdefgh/1", &d), 301);
    assert_string_equal(d.topics[0], "eight");
    assert_int_equal(route_line(t, "mqtt", "abcdefghi/1", &d), 302);
    assert_string_equal(d.topics[0], "nine");
    assert_int_equal(route_line(t, "mqtt", "abcdefgj/1", &d), 0);
    assert_int_equal(route_line(t, "mqtt", "fit/b", &d), 303);
    assert_int_equal(d.n_topics, 2);
    assert_string_equal(d.topics[0], "topic-a");
    assert_string_equal(d.topics[1], "fit-b");
    assert_int_equal(d.key, RT_KEY_HEADER);
    assert_string_equal(d.key_header, "k");
    assert_int_equal(route_line(t, "mqtt", "big/q/r", &d), 304);
    assert_int_equal(d.n_topics, 3);
    assert_string_equal(d.topics[0], "a-very-long-topic-name");
    assert_string_equal(d.topics[1], "x.q.y");
    assert_string_equal(d.topics[2], "z-big");
    assert_int_equal(d.key, RT_KEY_NONE);
    assert_null(d.key_header);
    /* the public rule still carries every topic as given */
    assert_int_equal(d.rule->n_topics, 3);
    assert_string_equal(d.rule->topics[1], "x.{2}.y");
    /* a template that resolves to an invalid name fails the lookup */
    assert_int_equal(rt_route_ingress(t, "mqtt", NULL, "big/a b/c", NULL, NULL, &d),
                     -EINVAL);
    rt_table_free(&t);
}

static void test_children_and_duplicates(void **state)
{
    (void)state;
    /* one, two, then many literal children under one node; the same pattern twice */
    struct rt_table *t = rt_table_new();
    char pat[64], topic[64];
    for (int i = 0; i < 40; i++) {
        snprintf(pat, sizeof(pat), "p/level-name-longer-than-eight-%d/x", i);
        snprintf(topic, sizeof(topic), "t%d", i);
        add_rule(t, "l", pat, topic, i + 1);
        /* every child added so far is still found */
        for (int j = 0; j <= i; j++) {
            char subj[64];
            struct rt_decision d;
            snprintf(subj, sizeof(subj), "p/level-name-longer-than-eight-%d/x", j);
            assert_int_equal(route_line(t, "l", subj, &d), j + 1);
        }
    }
    add_rule(t, "l", "p/level-name-longer-than-eight-3/x", "dup", 100);
    add_rule(t, "l", "q/#", "q1", 101);
    add_rule(t, "l", "q/#", "q2", 102);
    struct rt_decision d;
    assert_int_equal(route_line(t, "l", "p/level-name-longer-than-eight-3/x", &d), 4);
    assert_int_equal(route_line(t, "l", "p/level-name-longer-than-eight-40/x", &d), 0);
    assert_int_equal(route_line(t, "l", "q/z", &d), 101);
    /* a later duplicate wins when the earlier one's predicate fails */
    const char *tq[] = { "q3" };
    struct rt_kv when[] = { { "h", "v" } };
    struct rt_ingress r = { .listener = "l", .match = "r/+", .when = when, .n_when = 1,
                            .topics = tq, .n_topics = 1, .line = 103 };
    assert_int_equal(rt_add_ingress(t, &r, NULL), 0);
    add_rule(t, "l", "r/+", "q4", 104);
    assert_int_equal(route_line(t, "l", "r/a", &d), 104);
    rt_table_free(&t);
}

/* ---- egress ------------------------------------------------------------------------- */

struct seen {
    int lines[16];
    int n;
};

static void on_binding(void *arg, const struct rt_egress *b)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    s->lines[s->n++] = b->line;
}

static void add_binding(struct rt_table *t, const char *topic, const char *match,
                        const char *bridge, const char *dest, int line)
{
    struct rt_egress e = { .topic = topic, .match = match, .bridge = bridge,
                           .destination = dest, .line = line };
    char *err = NULL;
    int rc = rt_add_egress(t, &e, &err);
    if (rc != 0) {
        fprintf(stderr, "add_binding: %s\n", err ? err : "?");
    }
    assert_int_equal(rc, 0);
}

static void test_egress_matching(void **state)
{
    (void)state;
    struct rt_table *t = rt_table_new();
    add_binding(t, "orders", "orders/eu/#", "edge", "out/{subject}", 1);
    add_binding(t, "orders", "#", "all", NULL, 2);
    add_binding(t, "orders", "orders/+/created", "created", "c/{2}", 3);
    add_binding(t, "orders", "orders/eu/created", "exact", "x", 4);
    add_binding(t, "sensors", "#", "s", "s", 5);
    add_binding(t, "orders", "orders/us/#", "us", "us", 6);
    assert_int_equal(rt_table_n_egress(t), 6);

    struct seen s = { .n = 0 };
    rt_route_egress(t, "orders", "orders/eu/created", on_binding, &s);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.lines[0], 1);
    assert_int_equal(s.lines[1], 2);
    assert_int_equal(s.lines[2], 3);
    assert_int_equal(s.lines[3], 4);

    s.n = 0;
    rt_route_egress(t, "orders", "orders/us/created", on_binding, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.lines[0], 2);
    assert_int_equal(s.lines[1], 3);
    assert_int_equal(s.lines[2], 6);

    s.n = 0;
    rt_route_egress(t, "orders", "orders/eu", on_binding, &s);   /* "orders/eu/#" too */
    assert_int_equal(s.n, 2);
    assert_int_equal(s.lines[0], 1);
    assert_int_equal(s.lines[1], 2);

    s.n = 0;
    rt_route_egress(t, "nothing", "orders/eu", on_binding, &s);
    rt_route_egress(t, "orders", "", on_binding, &s);
    rt_route_egress(t, "orders", "$SYS/x", on_binding, &s);
    assert_int_equal(s.n, 0);

    s.n = 0;
    rt_route_egress(t, "sensors", "a/b", on_binding, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.lines[0], 5);

    /* bad bindings */
    struct rt_egress bad = { .topic = "orders", .match = "a/#/b", .bridge = "x", .line = 9 };
    char *err = NULL;
    assert_int_equal(rt_add_egress(t, &bad, &err), -EINVAL);
    assert_non_null(strstr(err, "line 9"));
    free(err);
    bad.match = "#";
    bad.topic = "bad topic";
    assert_int_equal(rt_add_egress(t, &bad, NULL), -EINVAL);
    bad.topic = "orders";
    bad.listener = "http";
    assert_int_equal(rt_add_egress(t, &bad, NULL), -EINVAL);
    bad.listener = NULL;
    bad.destination = "out/{nope}";
    assert_int_equal(rt_add_egress(t, &bad, NULL), -EINVAL);
    bad.destination = "out/}";
    assert_int_equal(rt_add_egress(t, &bad, NULL), -EINVAL);
    assert_int_equal(rt_table_n_egress(t), 6);

    /* the same filter twice: both, in order */
    add_binding(t, "orders", "orders/eu/#", "again", "again", 7);
    s.n = 0;
    rt_route_egress(t, "orders", "orders/eu/x", on_binding, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.lines[0], 1);
    assert_int_equal(s.lines[1], 2);
    assert_int_equal(s.lines[2], 7);
    rt_table_free(&t);
}

static void test_render_destination(void **state)
{
    (void)state;
    struct rt_egress b = { .topic = "orders", .bridge = "edge",
                           .destination = "out/{topic}/{subject}/{2}-{1}" };
    char out[64];
    int n = rt_render_destination(&b, "orders", "orders/eu/created", out, sizeof(out));
    assert_string_equal(out, "out/orders/orders/eu/created/eu-orders");
    assert_int_equal(n, (int)strlen(out));

    b.destination = NULL;     /* default {subject} */
    assert_int_equal(rt_render_destination(&b, "orders", "a/b", out, sizeof(out)), 3);
    assert_string_equal(out, "a/b");

    b.destination = "q.{9}";  /* level 9 missing */
    assert_int_equal(rt_render_destination(&b, "orders", "a/b", out, sizeof(out)), -EINVAL);

    b.destination = "{subject}";
    assert_int_equal(rt_render_destination(&b, "orders", "abcd", out, 4), -ENOSPC);
    assert_int_equal(rt_render_destination(&b, "orders", "abcd", out, 5), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(rt_render_destination(&b, "orders", "abcd", out, 0), -ENOSPC);

    /* the binding copy owned by the table renders the same */
    struct rt_table *t = rt_table_new();
    add_binding(t, "orders", "#", "edge", "x/{1}", 1);
    struct seen s = { .n = 0 };
    rt_route_egress(t, "orders", "orders/eu", on_binding, &s);
    assert_int_equal(s.n, 1);
    rt_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_literal_and_wildcards),
        cmocka_unit_test(test_match_dollar_rule),
        cmocka_unit_test(test_pattern_validity),
        cmocka_unit_test(test_topic_name_valid),
        cmocka_unit_test(test_default_addressing),
        cmocka_unit_test(test_first_match_wins),
        cmocka_unit_test(test_sources_are_separate),
        cmocka_unit_test(test_has_ingress),
        cmocka_unit_test(test_header_predicates),
        cmocka_unit_test(test_predicate_on_later_more_specific_rule),
        cmocka_unit_test(test_multiple_topics_key_and_set),
        cmocka_unit_test(test_level_substitution),
        cmocka_unit_test(test_dollar_subjects_in_table),
        cmocka_unit_test(test_invalid_ingress_rules),
        cmocka_unit_test(test_many_rules),
        cmocka_unit_test(test_layout_levels_and_topics),
        cmocka_unit_test(test_children_and_duplicates),
        cmocka_unit_test(test_egress_matching),
        cmocka_unit_test(test_render_destination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The publish path: routing, partition keys, batching, ack after the flush policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/gateway.h"
#include "gateway/log/log.h"
#include "gateway/metrics.h"
#include "routing/route.h"

#include "fixture.h"

struct fixture {
    char dir[64];
    struct sl_gateway gw;
    struct sl_config *cfg;
};

struct result {
    int calls;
    int status;
    size_t n;
    struct sl_pub_item items[16];
};

static void on_published(void *arg, const struct sl_publish_result *res)
{
    struct result *r = arg;
    r->calls++;
    r->status = res->status;
    r->n = res->n;
    for (size_t i = 0; i < res->n && i < 16; i++) {
        r->items[i] = res->items[i];
    }
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(fx_tmpdir(f->dir, "/tmp/sl_publish_"));
    fx_gw_open(&f->gw, &f->cfg, f->dir, 4);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fx_gw_close(&f->gw, &f->cfg);
    fx_rm_tree(f->dir);
    free(f);
    return 0;
}

static struct sl_env *mk(const char *subject, const char *data)
{
    struct sl_env *e = sl_env_new();
    sl_env_set_attr(e, "subject", subject, strlen(subject));
    sl_env_set_data(e, data, strlen(data));
    return e;
}

static void run_until(struct fixture *f, struct result *r)
{
    for (int i = 0; i < 200 && r->calls == 0; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

struct got {
    int n;
    char data[8][64];
    char subject[8][64];
    char hdr[8][64];
};

static int collect(void *arg, const char *topic, int32_t partition, const struct sl_record *rec)
{
    struct got *g = arg;
    struct sl_env *e = sl_env_from_record(rec, partition);
    (void)topic;
    if (e != NULL && g->n < 8) {
        snprintf(g->data[g->n], 64, "%.*s", (int)e->data->len, (const char *)e->data->data);
        snprintf(g->subject[g->n], 64, "%s", e->subject != NULL ? e->subject : "");
        const struct sl_env_hdr *h = sl_env_find_header(e, "x-route");
        snprintf(g->hdr[g->n], 64, "%s", h != NULL ? (const char *)h->value->data : "");
        g->n++;
    }
    sl_env_unref(&e);
    return 0;
}

static void test_default_addressing(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_pub_source src = {.listener = "mqtt"};
    struct sl_env *e = mk("orders/eu/created", "one");
    int64_t next;
    struct got g = {0};

    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.items[0].topic, "orders");
    /* key = subject: Kafka's partitioner over 4 partitions */
    assert_int_equal(r.items[0].partition,
                     sl_murmur2_partition("orders/eu/created", 17, 4));
    assert_int_equal(r.items[0].offset, 0);
    assert_int_equal(sl_log_read(f->gw.log, "orders", r.items[0].partition, 0, 10, 1 << 20,
                                 collect, &g, &next), 1);
    assert_string_equal(g.data[0], "one");
    assert_string_equal(g.subject[0], "orders/eu/created");
    assert_non_null(e->id);                   /* finalized */
    sl_env_unref(&e);
}

static void test_explicit_topic_keyless_batch_is_sticky(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_pub_source src = {.listener = "http", .topic = "inbox"};
    struct sl_env *e[5];
    for (int i = 0; i < 5; i++) {
        char d[16];
        snprintf(d, sizeof(d), "m%d", i);
        e[i] = mk("inbox", d);              /* the subject is the topic: no key */
    }
    assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 5, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(r.items[i].topic, "inbox");
        assert_int_equal(r.items[i].partition, r.items[0].partition);  /* one batch */
        assert_int_equal(r.items[i].offset, i);                          /* in order */
        sl_env_unref(&e[i]);
    }
}

/* An explicit topic (HTTP): a subject of its own is the default key, as with every
 * protocol, so one subject keeps its order across protocols; an explicit key wins. */
static void test_explicit_topic_subject_is_key(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_pub_source src = {.listener = "http", .topic = "inbox"};
    const char *subjects[5] = {"inbox/a", "inbox/b", "inbox/c", "elsewhere/d", "inbox/a"};
    struct sl_env *e[5];

    for (int i = 0; i < 5; i++) {
        e[i] = mk(subjects[i], "x");
    }
    assert_int_equal(sl_env_set_key(e[4], "k1", 2), 0);
    assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 5, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(r.items[i].topic, "inbox");
        assert_int_equal(r.items[i].partition,
                         sl_murmur2_partition(subjects[i], (int32_t)strlen(subjects[i]), 4));
    }
    assert_int_equal(r.items[4].partition, sl_murmur2_partition("k1", 2, 4));
    for (int i = 0; i < 5; i++) {
        sl_env_unref(&e[i]);
    }
}

/* An explicit topic and no rule for the source skips the route lookup; once a rule for
 * the source exists, the next call routes again (a subject it matches goes elsewhere),
 * and a subject equal to the topic is still no key. */
static void test_explicit_topic_then_rule(void **state)
{
    struct fixture *f = *state;
    const char *topics[] = {"routed"};
    struct rt_ingress rule = {.listener = "http", .match = "inbox/r", .topics = topics,
                              .n_topics = 1, .line = 1};
    struct sl_pub_source src = {.listener = "http", .topic = "inbox"};
    const char *subjects[4] = {"inbox/a", "inbox/r", "inbox", "other/b"};
    const char *want[2][4] = {{"inbox", "inbox", "inbox", "inbox"},
                              {"inbox", "routed", "inbox", "inbox"}};
    char *err = NULL;

    for (int call = 0; call < 2; call++) {
        struct result r = {0};
        struct sl_env *e[4];
        for (int i = 0; i < 4; i++) {
            e[i] = mk(subjects[i], "x");
        }
        if (call == 1) {
            assert_int_equal(rt_add_ingress(f->gw.routes, &rule, &err), 0);
        }
        assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 4, on_published, &r), 0);
        run_until(f, &r);
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.status, 0);
        for (int i = 0; i < 4; i++) {
            assert_string_equal(r.items[i].topic, want[call][i]);
            if (i != 2) {
                assert_int_equal(r.items[i].partition,
                                 sl_murmur2_partition(subjects[i],
                                                      (int32_t)strlen(subjects[i]), 4));
            }
        }
        for (int i = 0; i < 4; i++) {
            sl_env_unref(&e[i]);
        }
    }
}

struct big_result {
    int calls;
    int status;
    size_t n;
    struct sl_pub_item items[160];
};

static void on_published_big(void *arg, const struct sl_publish_result *res)
{
    struct big_result *r = arg;
    r->calls++;
    r->status = res->status;
    r->n = res->n;
    for (size_t i = 0; i < res->n && i < 160; i++) {
        r->items[i] = res->items[i];
    }
}

/* A batch of 160 events over `kinds` subjects g/<k> (interleaved), routed to topic g-<k>
 * and keyed by subject: each event's offset counts the earlier events of its subject,
 * whether the records are put in order by groups (few) or by qsort (past 64 groups). */
static void batch_groups(struct fixture *f, int kinds)
{
    const char *topics[] = {"g-{2}"};
    struct rt_ingress rule = {.listener = "mqtt", .match = "g/+", .topics = topics,
                              .n_topics = 1, .line = 1};
    struct sl_pub_source src = {.listener = "mqtt"};
    struct big_result *r = calloc(1, sizeof(*r));
    struct sl_env *e[160];
    int seen[80] = {0};
    char *err = NULL;

    assert_int_equal(rt_add_ingress(f->gw.routes, &rule, &err), 0);
    for (int i = 0; i < 160; i++) {
        char subject[16];
        snprintf(subject, sizeof(subject), "g/%d", (i * 7 + i / 3) % kinds);
        e[i] = mk(subject, "x");
    }
    assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 160, on_published_big, r), 0);
    for (int i = 0; i < 2000 && r->calls == 0; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->status, 0);
    for (int i = 0; i < 160; i++) {
        int k = (i * 7 + i / 3) % kinds;
        char want[16];
        snprintf(want, sizeof(want), "g-%d", k);
        assert_string_equal(r->items[i].topic, want);
        assert_int_equal(r->items[i].partition,
                         sl_murmur2_partition(e[i]->subject, (int32_t)strlen(e[i]->subject),
                                              4));
        assert_int_equal(r->items[i].offset, seen[k]++);
    }
    for (int i = 0; i < 160; i++) {
        sl_env_unref(&e[i]);
    }
    free(r);
}

static void test_batch_few_groups(void **state)
{
    batch_groups(*state, 5);
}

static void test_batch_many_groups(void **state)
{
    batch_groups(*state, 70);
}

/* An explicit partition (HTTP ?partition=) goes before the key; one the topic does not
 * have is -ERANGE, and with a route that sends the event elsewhere -ENOTSUP. */
static void test_explicit_partition(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct result r2 = {0};
    struct sl_pub_source src = {.listener = "http", .topic = "inbox", .has_partition = true,
                                .partition = 3};
    struct sl_env *e = mk("inbox", "keyed");
    const char *topics[] = {"elsewhere"};
    struct rt_ingress rule = {.listener = "http", .match = "routed/#", .topics = topics,
                              .n_topics = 1, .line = 1};
    const char *inbox[] = {"inbox"};
    struct rt_ingress same = {.listener = "http", .match = "inbox/#", .topics = inbox,
                              .n_topics = 1, .line = 2};
    char *err = NULL;

    sl_env_set_key(e, "k1", 2);
    assert_true(sl_murmur2_partition("k1", 2, 4) != 3);   /* the key alone would go elsewhere */
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.items[0].topic, "inbox");
    assert_int_equal(r.items[0].partition, 3);
    sl_env_unref(&e);

    src.partition = 4;                              /* the topic has 0..3 */
    e = mk("inbox", "x");
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), -ERANGE);
    sl_env_unref(&e);

    /* an unknown topic is not created by a refused partition */
    src.topic = "brandnew";
    e = mk("brandnew", "x");
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), -ERANGE);
    assert_true(sl_log_partitions(f->gw.log, "brandnew") < 0);
    sl_env_unref(&e);

    assert_int_equal(rt_add_ingress(f->gw.routes, &rule, &err), 0);
    assert_int_equal(rt_add_ingress(f->gw.routes, &same, &err), 0);
    src.topic = "inbox";
    src.partition = 0;
    e = mk("routed/a", "x");
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), -ENOTSUP);
    sl_env_unref(&e);
    assert_int_equal(r.calls, 1);                   /* the refusals were never called back */
    /* a route that sends the subject to the path's own topic keeps the partition */
    e = mk("inbox/a", "y");
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r2), 0);
    run_until(f, &r2);
    assert_int_equal(r2.calls, 1);
    assert_int_equal(r2.status, 0);
    assert_string_equal(r2.items[0].topic, "inbox");
    assert_int_equal(r2.items[0].partition, 0);
    sl_env_unref(&e);
}

static void test_route_two_topics_header_key_and_rewrite(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    const char *topics[] = {"fleet", "audit"};
    struct rt_kv set[] = {{"x-route", "fleet-rule"}};
    struct rt_ingress rule = {.listener = "mqtt", .match = "trucks/+/gps", .topics = topics,
                              .n_topics = 2, .key = RT_KEY_HEADER, .key_header = "vin",
                              .set = set, .n_set = 1, .line = 1};
    char *err = NULL;
    struct sl_pub_source src = {.listener = "mqtt"};
    struct sl_env *e = mk("trucks/7/gps", "pos");
    struct got g = {0};
    int64_t next;

    assert_int_equal(rt_add_ingress(f->gw.routes, &rule, &err), 0);
    sl_env_add_header(e, "vin", "VIN123", 6);
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.items[0].topic, "fleet");
    assert_int_equal(r.items[0].partition, sl_murmur2_partition("VIN123", 6, 4));
    int32_t p = sl_murmur2_partition("VIN123", 6, 4);
    assert_int_equal(sl_log_read(f->gw.log, "audit", p, 0, 10, 1 << 20, collect, &g, &next), 1);
    assert_string_equal(g.data[0], "pos");
    assert_string_equal(g.hdr[0], "fleet-rule");
    /* another listener does not match the rule: default addressing */
    struct result r2 = {0};
    struct sl_pub_source http = {.listener = "http"};
    struct sl_env *e2 = mk("trucks/7/gps", "x");
    assert_int_equal(sl_gateway_publish(&f->gw, &http, &e2, 1, on_published, &r2), 0);
    run_until(f, &r2);
    assert_string_equal(r2.items[0].topic, "trucks");
    sl_env_unref(&e);
    sl_env_unref(&e2);
}

static void test_ack_waits_for_fsync(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_pub_source src = {.listener = "mqtt"};
    struct sl_env *e = mk("durable/x", "d");
    /* flush: always (the default): the callback cannot fire inside publish. */
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), 0);
    assert_int_equal(r.calls, 0);
    run_until(f, &r);
    assert_int_equal(r.calls, 1);
    sl_env_unref(&e);
}

/* The per-listener counter survives a registry reset (no dangling cached pointer). */
static void test_counter_after_metrics_reset(void **state)
{
    struct fixture *f = *state;
    struct sl_pub_source src = {.listener = "mqtt"};
    sl_metrics_reset();                       /* earlier tests counted too */
    for (int round = 0; round < 2; round++) {
        struct result r = {0};
        struct sl_env *e = mk("count/x", "d");
        assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), 0);
        run_until(f, &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(sl_metric_value(sl_metric_counter("sluice_published_events_total", "",
                                                           "listener=\"mqtt\"")), 1);
        sl_env_unref(&e);
        sl_metrics_reset();
    }
}

static void test_refusals(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_pub_source src = {.listener = "mqtt"};
    struct sl_env *e = sl_env_new();
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), -EINVAL);
    sl_env_unref(&e);
    e = mk("bad topic!/x", "d");                 /* first level not a Kafka topic name */
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), -EINVAL);
    sl_env_unref(&e);
    f->cfg->auto_create = false;
    e = mk("neverseen/x", "d");
    assert_int_equal(sl_gateway_publish(&f->gw, &src, &e, 1, on_published, &r), -ENOENT);
    f->cfg->auto_create = true;
    sl_env_unref(&e);
    for (int i = 0; i < 20; i++) {
        event_base_loop(f->gw.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
    assert_int_equal(r.calls, 0);                 /* refused: never called back */
}

/* Within one call the routing of the previous envelope is reused only when it provably
 * holds: a batch of one subject whose rule has a header predicate routes each envelope
 * by its own headers (a reused decision sends b and the headerless one to tenant-a). */
static void test_batch_same_subject_header_predicates(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    const char *topics[] = {"tenant-a"};
    struct rt_kv when[] = {{"x-tenant", "a"}};
    struct rt_ingress rule = {.listener = "mqtt", .match = "orders/#", .when = when,
                              .n_when = 1, .topics = topics, .n_topics = 1, .line = 1};
    const char *tenant[6] = {"a", "b", "a", NULL, "a", "b"};
    const char *want[6] = {"tenant-a", "orders", "tenant-a", "orders", "tenant-a", "orders"};
    struct sl_pub_source src = {.listener = "mqtt"};
    struct sl_env *e[6];
    char *err = NULL;

    assert_int_equal(rt_add_ingress(f->gw.routes, &rule, &err), 0);
    for (int i = 0; i < 6; i++) {
        e[i] = mk("orders/1", "x");
        if (tenant[i] != NULL) {
            sl_env_add_header(e[i], "x-tenant", tenant[i], 1);
        }
    }
    assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 6, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    for (int i = 0; i < 6; i++) {
        assert_string_equal(r.items[i].topic, want[i]);
        assert_int_equal(r.items[i].partition, sl_murmur2_partition("orders/1", 8, 4));
        sl_env_unref(&e[i]);
    }
}

/* A batch whose subjects change, back and forth: each envelope gets its own subject's
 * route (a template that uses a level), default addressing, and its own key's partition;
 * records out of partition order are still appended in envelope order per partition. */
static void test_batch_differing_subjects(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    const char *topics[] = {"o-{2}"};
    struct rt_ingress rule = {.listener = "mqtt", .match = "orders/+", .topics = topics,
                              .n_topics = 1, .line = 1};
    const char *subjects[8] = {"orders/eu", "orders/eu", "orders/us", "orders/us",
                               "sensors/1", "orders/eu", "sensors/2", "sensors/1"};
    const char *want[8] = {"o-eu", "o-eu", "o-us", "o-us", "sensors", "o-eu", "sensors",
                           "sensors"};
    struct sl_pub_source src = {.listener = "mqtt"};
    struct sl_env *e[8];
    char *err = NULL;

    /* the two sensors keys must land in different partitions for the check to bite */
    assert_int_not_equal(sl_murmur2_partition("sensors/1", 9, 4),
                         sl_murmur2_partition("sensors/2", 9, 4));
    assert_int_equal(rt_add_ingress(f->gw.routes, &rule, &err), 0);
    for (int i = 0; i < 8; i++) {
        e[i] = mk(subjects[i], "x");
    }
    assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 8, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(r.items[i].topic, want[i]);
        assert_int_equal(r.items[i].partition,
                         sl_murmur2_partition(subjects[i], (int32_t)strlen(subjects[i]), 4));
    }
    /* per topic and partition, offsets follow the envelopes' order */
    assert_int_equal(r.items[0].offset, 0);
    assert_int_equal(r.items[1].offset, 1);
    assert_int_equal(r.items[5].offset, 2);
    assert_int_equal(r.items[2].offset, 0);
    assert_int_equal(r.items[3].offset, 1);
    assert_int_equal(r.items[4].offset, 0);
    assert_int_equal(r.items[7].offset, 1);
    assert_int_equal(r.items[6].offset, 0);
    for (int i = 0; i < 8; i++) {
        sl_env_unref(&e[i]);
    }
}

/* The same key to two topics with different partition counts: each topic's own
 * partitioner (a partition reused across topics would be the 4-partition one's). */
static void test_batch_same_key_two_topics(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    const char *topics[] = {"fleet", "audit3"};
    struct rt_ingress rule = {.listener = "mqtt", .match = "trucks/#", .topics = topics,
                              .n_topics = 2, .key = RT_KEY_HEADER, .key_header = "vin",
                              .line = 1};
    struct sl_topic_config tc;
    struct sl_pub_source src = {.listener = "mqtt"};
    struct sl_env *e[2];
    char *err = NULL;
    const char *key = NULL;
    char buf[16];
    struct got g = {0};
    int64_t next;

    for (int i = 0; i < 100 && key == NULL; i++) {   /* a key that tells 4 from 3 */
        snprintf(buf, sizeof(buf), "v%d", i);
        if (sl_murmur2_partition(buf, (int32_t)strlen(buf), 4) !=
            sl_murmur2_partition(buf, (int32_t)strlen(buf), 3)) {
            key = buf;
        }
    }
    assert_non_null(key);
    sl_topic_config_defaults(&tc);
    tc.partitions = 3;
    tc.flush = SL_FLUSH_OS;
    assert_int_equal(sl_log_topic_configure(f->gw.log, "audit3", &tc), 0);
    assert_int_equal(rt_add_ingress(f->gw.routes, &rule, &err), 0);
    for (int i = 0; i < 2; i++) {
        e[i] = mk("trucks/1", "x");
        sl_env_add_header(e[i], "vin", key, strlen(key));
    }
    assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 2, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.status, 0);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(r.items[i].topic, "fleet");
        assert_int_equal(r.items[i].partition,
                         sl_murmur2_partition(key, (int32_t)strlen(key), 4));
        sl_env_unref(&e[i]);
    }
    assert_int_equal(sl_log_read(f->gw.log, "audit3",
                                 sl_murmur2_partition(key, (int32_t)strlen(key), 3), 0, 10,
                                 1 << 20, collect, &g, &next), 2);
}

/* One call reads the clock once: the times it generates are all the same. */
static void test_batch_one_time(void **state)
{
    struct fixture *f = *state;
    struct result r = {0};
    struct sl_pub_source src = {.listener = "http", .topic = "inbox"};
    struct sl_env *e[16];

    for (int i = 0; i < 16; i++) {
        e[i] = mk("inbox", "x");
    }
    assert_int_equal(sl_env_set_attr(e[3], "time", "2020-01-02T03:04:05.678Z", 24), 0);
    assert_int_equal(sl_gateway_publish(&f->gw, &src, e, 16, on_published, &r), 0);
    run_until(f, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(e[3]->time, "2020-01-02T03:04:05.678Z");
    for (int i = 1; i < 16; i++) {
        if (i != 3) {
            assert_string_equal(e[i]->time, e[0]->time);
            assert_int_equal(e[i]->timestamp_ms, e[0]->timestamp_ms);
        }
    }
    for (int i = 0; i < 16; i++) {
        sl_env_unref(&e[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_addressing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_topic_keyless_batch_is_sticky, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_explicit_topic_subject_is_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_two_topics_header_key_and_rewrite, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ack_waits_for_fsync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_after_metrics_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_same_subject_header_predicates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batch_differing_subjects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_topic_then_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_few_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_many_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_same_key_two_topics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_one_time, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The gateway core: the loop, the log, the routing table and the adapters, and the
 * one publish path every adapter uses (DESIGN.md: decode -> envelope -> routing table
 * -> log append -> ack once durable).
 *
 * Thread affinity: everything here runs on the core loop thread. Other threads reach
 * the core through gw->mailbox (sl_mailbox_post).
 */
#ifndef SL_GATEWAY_H
#define SL_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/envelope.h"
#include "gateway/log/log.h"

struct event_base;
struct evbuffer;
struct sl_mailbox;
struct rt_table;
struct sl_adapter;

struct sl_gateway {
    struct event_base *base;
    struct sl_mailbox *mailbox;      /* other threads -> loop */
    struct sl_log *log;
    struct rt_table *routes;         /* replaced on reload */
    struct sl_config *cfg;           /* replaced on reload */
    struct sl_adapter **adapters;
    size_t n_adapters;
    int64_t started_ms;
    volatile int stopping;
};

/* Where an event came from, for ingress routing. */
struct sl_pub_source {
    const char *listener;            /* "http", "mqtt", ... (exactly one of the two) */
    const char *bridge;              /* a bridge's name */
    const char *topic;               /* explicit topic (HTTP POST /topics/{t}), or NULL:
                                        a matching route wins, else this topic, else
                                        the subject's first level */
    bool has_partition;              /* explicit partition of `topic` (HTTP ?partition=), */
    int32_t partition;               /* in place of the key's: sl_gateway_publish returns
                                        -ERANGE if the topic has no such partition (an
                                        unknown topic is not created then) and -ENOTSUP if
                                        a matching route sends the event to another topic */
};

/* Where one published event landed (its first target topic). */
struct sl_pub_item {
    char topic[250];
    int32_t partition;
    int64_t offset;
};

struct sl_publish_result {
    int status;                      /* 0, or -errno of the first failure */
    const char *error;               /* static text for a failure, else NULL */
    size_t n;                        /* = number of envelopes published */
    const struct sl_pub_item *items; /* valid during the callback only */
};
typedef void (*sl_publish_fn)(void *arg, const struct sl_publish_result *res);

/*
 * Publish n envelopes as one unit: each is routed (routes, else src->topic, else the
 * subject's first level), finalized (id, time, ...), encoded and appended, records for
 * the same (topic, partition) sharing one RecordBatch. fn fires exactly once on the
 * loop thread when every append met its topic's flush policy, or with the first error
 * (nothing is acknowledged partially: status != 0 means do not ack). Envelopes are
 * borrowed for the call (encoded before return); each env->subject must be set.
 * Returns 0 if accepted (fn will fire, possibly before this returns), or -errno
 * (-EINVAL: bad subject/topic, -ENOENT: unknown topic with auto_create off) with fn
 * not called.
 */
int sl_gateway_publish(struct sl_gateway *gw, const struct sl_pub_source *src,
                       struct sl_env **envs, size_t n, sl_publish_fn fn, void *arg);

/* A routing table built from cfg->routes (an empty table when there are none).
 * NULL with *err malloc'd ("FILE:LINE: ...") on a bad rule. Any thread. */
struct rt_table *sl_gateway_build_routes(const struct sl_config *cfg, char **err);

/* Log options from the config (data_dir, defaults, auto_create, retention check). */
void sl_gateway_log_options(const struct sl_config *cfg, struct sl_log_options *opts);

/* Apply the config's log section (defaults and auto_create, also to existing topics
 * without an override, as a restart would) and create or re-configure every topic it
 * names. At the start and at a reload. 0, or -errno with *err. Loop thread. */
int sl_gateway_apply_topics(struct sl_gateway *gw, const struct sl_config *cfg, char **err);

/* The metrics collector for the log: per partition appended records/bytes, high
 * watermark, size; per group committed offset and lag; fsync latency histogram.
 * arg is the gateway. Loop thread. */
void sl_gateway_collect_metrics(void *arg, struct evbuffer *out);

#endif

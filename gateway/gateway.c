/*
 * Gateway assembly helpers: config -> log options, topics, routing table; the log's
 * /metrics collector.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/metrics.h"
#include "routing/route.h"

static struct rt_kv *kv_array(const struct sl_kv *src, size_t n)
{
    struct rt_kv *a = calloc(n > 0 ? n : 1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        a[i].name = src[i].key;
        a[i].value = src[i].value;
    }
    return a;
}

static int add_route(struct rt_table *t, const struct sl_config *cfg,
                     const struct sl_route_cfg *r, char **err)
{
    char *rerr = NULL;
    int rc;

    if (r->egress) {
        struct rt_egress e = {
            .topic = r->from_topic,
            .match = r->match != NULL ? r->match : "#",
            .bridge = r->to_bridge,
            .listener = r->to_listener,
            .destination = r->destination != NULL ? r->destination : "{subject}",
            .line = r->line,
        };
        rc = rt_add_egress(t, &e, &rerr);
    } else {
        struct rt_kv *when = kv_array(r->when_headers, r->n_when_headers);
        struct rt_kv *set = kv_array(r->set_headers, r->n_set_headers);
        struct rt_ingress in = {
            .listener = r->from_listener,
            .bridge = r->from_bridge,
            .match = r->match != NULL ? r->match : "#",
            .when = when,
            .n_when = r->n_when_headers,
            .topics = (const char *const *)r->to_topics,
            .n_topics = r->n_to_topics,
            .key = r->key == SL_KEY_HEADER ? RT_KEY_HEADER :
                   (r->key == SL_KEY_NONE ? RT_KEY_NONE : RT_KEY_SUBJECT),
            .key_header = r->key_header,
            .set = set,
            .n_set = r->n_set_headers,
            .line = r->line,
        };
        if (when == NULL || set == NULL) {
            free(when);
            free(set);
            *err = strdup("out of memory");
            return -ENOMEM;
        }
        rc = rt_add_ingress(t, &in, &rerr);
        free(when);
        free(set);
    }
    if (rc != 0) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s:%d: routes: %s", cfg->path != NULL ? cfg->path : "-",
                 r->line, rerr != NULL ? rerr : "invalid route");
        *err = strdup(buf);
    }
    free(rerr);
    return rc;
}

struct rt_table *sl_gateway_build_routes(const struct sl_config *cfg, char **err)
{
    struct rt_table *t = rt_table_new();
    if (t == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (add_route(t, cfg, &cfg->routes[i], err) != 0) {
            rt_table_free(&t);
            return NULL;
        }
    }
    return t;
}

void sl_gateway_log_options(const struct sl_config *cfg, struct sl_log_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->data_dir = cfg->data_dir;
    opts->defaults = cfg->topic_defaults;
    opts->auto_create = cfg->auto_create;
    opts->retention_check_ms = cfg->retention_check_ms;
    opts->coalesce = true;
}

static bool has_override(void *arg, const char *topic)
{
    const struct sl_config *cfg = arg;

    for (size_t i = 0; i < cfg->n_topics; i++) {
        if (strcmp(cfg->topics[i].name, topic) == 0) {
            return true;
        }
    }
    return false;
}

int sl_gateway_apply_topics(struct sl_gateway *gw, const struct sl_config *cfg, char **err)
{
    int rc = sl_log_set_defaults(gw->log, &cfg->topic_defaults, cfg->auto_create,
                                 has_override, (void *)cfg);

    if (rc != 0) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s: log: invalid topic defaults", cfg->path);
        *err = strdup(buf);
        return rc;
    }
    for (size_t i = 0; i < cfg->n_topics; i++) {
        rc = sl_log_topic_configure(gw->log, cfg->topics[i].name, &cfg->topics[i].cfg);
        if (rc != 0) {
            char buf[512];
            snprintf(buf, sizeof(buf), "%s:%d: topics.%s: %s", cfg->path, cfg->topics[i].line,
                     cfg->topics[i].name,
                     rc == -EINVAL ? "invalid (partitions can only grow)" : strerror(-rc));
            *err = strdup(buf);
            return rc;
        }
    }
    return 0;
}

/* ---- /metrics for the log ---- */

struct collect_ctx {
    struct evbuffer *out;
    int pass;
};

static int collect_topic(void *arg, const char *topic, const struct sl_topic_config *cfg,
                         const struct sl_partition_info *parts, int32_t n_parts)
{
    struct collect_ctx *c = arg;
    for (int32_t i = 0; i < n_parts; i++) {
        const struct sl_partition_info *p = &parts[i];
        switch (c->pass) {
        case 0:
            evbuffer_add_printf(c->out,
                                "sluice_log_records_appended_total{topic=\"%s\",partition=\"%d\"} %llu\n",
                                topic, p->partition, (unsigned long long)p->records_appended);
            break;
        case 1:
            evbuffer_add_printf(c->out,
                                "sluice_log_bytes_appended_total{topic=\"%s\",partition=\"%d\"} %llu\n",
                                topic, p->partition, (unsigned long long)p->bytes_appended);
            break;
        case 2:
            evbuffer_add_printf(c->out,
                                "sluice_log_high_watermark{topic=\"%s\",partition=\"%d\"} %lld\n",
                                topic, p->partition, (long long)p->high_watermark);
            break;
        case 3:
            evbuffer_add_printf(c->out,
                                "sluice_log_start_offset{topic=\"%s\",partition=\"%d\"} %lld\n",
                                topic, p->partition, (long long)p->log_start_offset);
            break;
        case 4:
            evbuffer_add_printf(c->out,
                                "sluice_log_size_bytes{topic=\"%s\",partition=\"%d\"} %llu\n",
                                topic, p->partition, (unsigned long long)p->bytes);
            break;
        default:
            evbuffer_add_printf(c->out,
                                "sluice_log_partition_failed{topic=\"%s\",partition=\"%d\"} %d\n",
                                topic, p->partition, p->failed ? 1 : 0);
            break;
        }
    }
    return 0;
}

struct lag_ctx {
    struct sl_gateway *gw;
    struct evbuffer *out;
    int pass;
};

static int collect_group(void *arg, const char *group, const char *topic, int32_t partition,
                         int64_t committed, int members)
{
    struct lag_ctx *c = arg;
    char esc[2 * 256 + 1];
    int64_t hw;

    group = sl_metric_label_escape(group, esc, sizeof(esc));   /* any bytes a client sent */

    if (c->pass == 0) {
        evbuffer_add_printf(c->out,
                            "sluice_group_committed_offset{group=\"%s\",topic=\"%s\",partition=\"%d\"} %lld\n",
                            group, topic, partition, (long long)committed);
        return 0;
    }
    if (c->pass == 2) {
        evbuffer_add_printf(c->out,
                            "sluice_group_members{group=\"%s\",topic=\"%s\",partition=\"%d\"} %d\n",
                            group, topic, partition, members);
        return 0;
    }
    hw = sl_log_high_watermark(c->gw->log, topic, partition);
    if (hw >= 0) {
        evbuffer_add_printf(c->out,
                            "sluice_group_lag{group=\"%s\",topic=\"%s\",partition=\"%d\"} %lld\n",
                            group, topic, partition,
                            (long long)(hw - (committed > 0 ? committed : 0)));
    }
    return 0;
}

void sl_gateway_collect_metrics(void *arg, struct evbuffer *out)
{
    static const char *const heads[] = {
        "# HELP sluice_log_records_appended_total Records appended since start\n"
        "# TYPE sluice_log_records_appended_total counter\n",
        "# HELP sluice_log_bytes_appended_total Bytes appended since start\n"
        "# TYPE sluice_log_bytes_appended_total counter\n",
        "# HELP sluice_log_high_watermark Next offset to become visible\n"
        "# TYPE sluice_log_high_watermark gauge\n",
        "# HELP sluice_log_start_offset First offset still kept\n"
        "# TYPE sluice_log_start_offset gauge\n",
        "# HELP sluice_log_size_bytes Bytes on disk\n"
        "# TYPE sluice_log_size_bytes gauge\n",
        "# HELP sluice_log_partition_failed 1 after an fsync error: appends refused until "
        "restart\n"
        "# TYPE sluice_log_partition_failed gauge\n",
    };
    struct sl_gateway *gw = arg;
    struct collect_ctx c = {.out = out};
    struct lag_ctx lc = {.gw = gw, .out = out};
    struct sl_log_stats st;
    struct sl_group_stats gs;

    if (gw->log == NULL) {
        return;
    }
    for (c.pass = 0; c.pass < 6; c.pass++) {
        evbuffer_add(out, heads[c.pass], strlen(heads[c.pass]));
        sl_log_foreach_topic(gw->log, collect_topic, &c);
    }
    static const char *const group_heads[] = {
        "# HELP sluice_group_committed_offset Committed offset\n"
        "# TYPE sluice_group_committed_offset gauge\n",
        "# HELP sluice_group_lag High watermark minus committed offset\n"
        "# TYPE sluice_group_lag gauge\n",
        "# HELP sluice_group_members Members in the group now\n"
        "# TYPE sluice_group_members gauge\n",
    };
    for (lc.pass = 0; lc.pass < 3; lc.pass++) {
        evbuffer_add(out, group_heads[lc.pass], strlen(group_heads[lc.pass]));
        sl_group_foreach(gw->log, collect_group, &lc);
    }

    sl_group_get_stats(gw->log, &gs);
    evbuffer_add_printf(out, "# HELP sluice_group_commits_total Offset commits taken\n"
                             "# TYPE sluice_group_commits_total counter\n"
                             "sluice_group_commits_total %llu\n"
                             "# HELP sluice_group_saves_total Group offset files written "
                             "(off the loop thread)\n"
                             "# TYPE sluice_group_saves_total counter\n"
                             "sluice_group_saves_total %llu\n"
                             "# HELP sluice_group_save_errors_total Group offset saves that "
                             "failed (retried by the next save)\n"
                             "# TYPE sluice_group_save_errors_total counter\n"
                             "sluice_group_save_errors_total %llu\n",
                        (unsigned long long)gs.commits, (unsigned long long)gs.saves,
                        (unsigned long long)gs.save_errors);
    sl_log_get_stats(gw->log, &st);
    evbuffer_add_printf(out, "# HELP sluice_log_fsync_seconds fsync latency\n"
                             "# TYPE sluice_log_fsync_seconds histogram\n");
    for (int i = 0; i < SL_LOG_FSYNC_BUCKETS; i++) {
        /* sl_log_get_stats already gives cumulative bucket counts */
        evbuffer_add_printf(out, "sluice_log_fsync_seconds_bucket{le=\"%g\"} %llu\n",
                            sl_log_fsync_bucket_le[i], (unsigned long long)st.fsync_bucket[i]);
    }
    evbuffer_add_printf(out, "sluice_log_fsync_seconds_bucket{le=\"+Inf\"} %llu\n"
                             "sluice_log_fsync_seconds_sum %.6f\n"
                             "sluice_log_fsync_seconds_count %llu\n",
                        (unsigned long long)st.fsyncs, st.fsync_seconds_sum,
                        (unsigned long long)st.fsyncs);
    evbuffer_add_printf(out, "# HELP sluice_log_append_errors_total Appends that failed\n"
                             "# TYPE sluice_log_append_errors_total counter\n"
                             "sluice_log_append_errors_total %llu\n"
                             "# HELP sluice_log_recovered_truncated_bytes Bytes cut from torn "
                             "segment tails at start\n"
                             "# TYPE sluice_log_recovered_truncated_bytes gauge\n"
                             "sluice_log_recovered_truncated_bytes %llu\n",
                        (unsigned long long)st.append_errors,
                        (unsigned long long)st.recovered_truncated_bytes);
    evbuffer_add_printf(out, "# HELP sluice_log_fsync_errors_total Failed fsyncs (each stops "
                             "appends to its partition until restart)\n"
                             "# TYPE sluice_log_fsync_errors_total counter\n"
                             "sluice_log_fsync_errors_total %llu\n"
                             "# HELP sluice_log_segments_deleted_total Segments removed by "
                             "retention or compaction\n"
                             "# TYPE sluice_log_segments_deleted_total counter\n"
                             "sluice_log_segments_deleted_total %llu\n"
                             "# HELP sluice_log_read_skipped_offsets_total Offsets reads stepped "
                             "over because a damaged segment ended early\n"
                             "# TYPE sluice_log_read_skipped_offsets_total counter\n"
                             "sluice_log_read_skipped_offsets_total %llu\n",
                        (unsigned long long)st.fsync_errors,
                        (unsigned long long)st.segments_deleted,
                        (unsigned long long)st.read_skipped_offsets);
    evbuffer_add_printf(out, "# HELP sluice_log_batches_compressed_total Batches written "
                             "compressed (topic compression)\n"
                             "# TYPE sluice_log_batches_compressed_total counter\n"
                             "sluice_log_batches_compressed_total %llu\n"
                             "# HELP sluice_log_batches_uncompressed_total Batches of a "
                             "compressed topic written uncompressed (no smaller, or no "
                             "memory)\n"
                             "# TYPE sluice_log_batches_uncompressed_total counter\n"
                             "sluice_log_batches_uncompressed_total %llu\n"
                             "# HELP sluice_log_batches_decompressed_total Compressed batches "
                             "decompressed by reads\n"
                             "# TYPE sluice_log_batches_decompressed_total counter\n"
                             "sluice_log_batches_decompressed_total %llu\n",
                        (unsigned long long)st.batches_compressed,
                        (unsigned long long)st.batches_uncompressed,
                        (unsigned long long)st.batches_decompressed);
}

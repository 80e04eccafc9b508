/*
 * Embedded log: topics, the append path with group commit, the fsync threads, reads,
 * retention and statistics. Loop thread only, except run_job (on the fsync workers of
 * log->fsyncq), which touches nothing but its job's segment snapshots and the file of
 * the segment a job zero-fills ahead (see job_prepare).
 *
 * A failed fsync fails its partition: the kernel may have dropped the dirty pages and
 * reports the error once (the next fdatasync returns 0), so nothing written to that
 * partition can be trusted as durable any more. The partition stays readable up to its
 * high watermark and refuses appends until a restart validates its files.
 */
#include "gateway/log/log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "gateway/log/log_internal.h"
#include "gateway/logging.h"
#include "gateway/workq.h"

/* The daemon's logger (gateway/logging.c) when it is linked in, as in sluice; the log
 * core also links without it (unit tests, benchmarks), and then writes to stderr. */
#pragma weak sl_logf

const double sl_log_fsync_bucket_le[SL_LOG_FSYNC_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
};

void sl_topic_config_defaults(struct sl_topic_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->partitions = 1;
    cfg->segment_bytes = 1024ULL * 1024 * 1024;
    cfg->segment_ms = 7LL * 24 * 3600 * 1000;
    cfg->retention_bytes = -1;
    cfg->retention_ms = 7LL * 24 * 3600 * 1000;
    cfg->flush = SL_FLUSH_ALWAYS;
    cfg->flush_interval_ms = 1000;
    cfg->index_interval_bytes = 4096;
    cfg->preallocate = 1024 * 1024;
    cfg->compression = SL_RB_CODEC_NONE;
}

/* The bytes of a topic name, [a-zA-Z0-9._-]: one table look-up per byte (this runs for
 * every publish). NUL is not one, so the scan stops at the end. */
static const bool topic_char[256] = {
    ['-'] = true, ['.'] = true, ['_'] = true,
    ['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true,
    ['5'] = true, ['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true,
    ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true, ['F'] = true,
    ['G'] = true, ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true, ['L'] = true,
    ['M'] = true, ['N'] = true, ['O'] = true, ['P'] = true, ['Q'] = true, ['R'] = true,
    ['S'] = true, ['T'] = true, ['U'] = true, ['V'] = true, ['W'] = true, ['X'] = true,
    ['Y'] = true, ['Z'] = true,
    ['a'] = true, ['b'] = true, ['c'] = true, ['d'] = true, ['e'] = true, ['f'] = true,
    ['g'] = true, ['h'] = true, ['i'] = true, ['j'] = true, ['k'] = true, ['l'] = true,
    ['m'] = true, ['n'] = true, ['o'] = true, ['p'] = true, ['q'] = true, ['r'] = true,
    ['s'] = true, ['t'] = true, ['u'] = true, ['v'] = true, ['w'] = true, ['x'] = true,
    ['y'] = true, ['z'] = true,
};

bool sl_log_topic_name_valid(const char *name)
{
    size_t len = 0;

    if (name == NULL) {
        return false;
    }
    while (len <= 249 && topic_char[(unsigned char)name[len]]) {
        len++;
    }
    if (len == 0 || len > 249 || name[len] != '\0') {
        return false;
    }
    /* "." and ".." are not names */
    return !(name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')));
}

int64_t sl_log_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* NULL if cfg is usable, else what is wrong with it. */
static const char *config_problem(const struct sl_topic_config *cfg)
{
    if (cfg->partitions <= 0 || cfg->partitions > 100000) {
        return "partitions must be from 1 to 100000";
    }
    if (cfg->segment_bytes == 0 || cfg->segment_bytes > SL_SEGMENT_BYTES_MAX) {
        return "segment_bytes must be from 1 to 2147483647 (2 GiB - 1)";
    }
    if (cfg->segment_ms < 0) {
        return "segment_ms must not be negative";
    }
    if (cfg->flush != SL_FLUSH_OS && cfg->flush != SL_FLUSH_INTERVAL &&
        cfg->flush != SL_FLUSH_ALWAYS) {
        return "unknown flush policy";
    }
    if (cfg->compression != SL_RB_CODEC_NONE && cfg->compression != SL_RB_CODEC_GZIP &&
        cfg->compression != SL_RB_CODEC_LZ4 && cfg->compression != SL_RB_CODEC_ZSTD) {
        return "compression must be none, gzip, lz4 or zstd";
    }
    return NULL;
}

static bool config_valid(const struct sl_topic_config *cfg)
{
    return config_problem(cfg) == NULL;
}

/* A warning about topic-partition, or the whole topic when id < 0 (the daemon's log
 * when linked in, else stderr). */
static void log_partition_warn(const char *topic, int32_t id, const char *what)
{
    char name[272];

    if (id >= 0) {
        snprintf(name, sizeof(name), "%s-%" PRId32, topic, id);
    } else {
        snprintf(name, sizeof(name), "%s", topic);
    }
    if (sl_logf != NULL) {
        sl_warn("[log] %s: %s", name, what);
    } else {
        fprintf(stderr, "warn [log] %s: %s\n", name, what);
    }
}

static void log_partition_error(const struct sl_partition *p, const char *what, int status)
{
    if (sl_logf != NULL) {
        sl_error("[log] %s-%" PRId32 ": %s: %s", p->topic->name, p->id, what, strerror(-status));
    } else {
        fprintf(stderr, "error [log] %s-%" PRId32 ": %s: %s\n", p->topic->name, p->id, what,
                strerror(-status));
    }
}

/* ---- topics ---- */

static size_t topic_lower_bound(struct sl_log *log, const char *name)
{
    size_t lo = 0, hi = log->n_topics;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(log->topics[mid]->name, name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

struct sl_topic *sl_log_find_topic(struct sl_log *log, const char *name)
{
    size_t i;

    if (name == NULL) {
        return NULL;
    }
    i = topic_lower_bound(log, name);
    if (i < log->n_topics && strcmp(log->topics[i]->name, name) == 0) {
        return log->topics[i];
    }
    return NULL;
}

/* Open partitions [t->n_parts, n) of t. 0 or -errno (with *err possibly set). */
static int topic_grow(struct sl_log *log, struct sl_topic *t, int32_t n, char **err)
{
    struct sl_partition **parts;

    if (n <= t->n_parts) {
        return 0;
    }
    parts = realloc(t->parts, (size_t)n * sizeof(*parts));
    if (parts == NULL) {
        return -ENOMEM;
    }
    t->parts = parts;
    while (t->n_parts < n) {
        uint64_t cut = 0;
        struct sl_partition *p = sl_partition_open(log, t, t->n_parts, log->data_dir, &cut,
                                                   err);
        if (p == NULL) {
            return -EIO;
        }
        if (cut > 0) {
            char what[160];

            snprintf(what, sizeof(what), "recovery cut %" PRIu64 " bytes of torn or "
                     "corrupt data after the last valid batch (now at offset %" PRId64 ")",
                     cut, p->written_offset);
            log_partition_warn(t->name, t->n_parts, what);
            log->stats.recovered_truncated_bytes += cut;
        }
        t->parts[t->n_parts++] = p;
    }
    return 0;
}

static void topic_free(struct sl_topic *t)
{
    if (t == NULL) {
        return;
    }
    for (int32_t i = 0; i < t->n_parts; i++) {
        sl_partition_close(&t->parts[i]);
    }
    free(t->parts);
    free(t->name);
    free(t);
}

static void update_interval_timer(struct sl_log *log);

static struct sl_topic *topic_create(struct sl_log *log, const char *name,
                                     const struct sl_topic_config *cfg, int32_t n_parts,
                                     int *errp, char **err)
{
    struct sl_topic *t = calloc(1, sizeof(*t));
    size_t at;
    int rc;

    if (t == NULL || (t->name = strdup(name)) == NULL) {
        free(t);
        *errp = -ENOMEM;
        return NULL;
    }
    t->cfg = *cfg;
    if (log->n_topics == log->cap_topics) {
        size_t cap = log->cap_topics ? log->cap_topics * 2 : 16;
        struct sl_topic **v = realloc(log->topics, cap * sizeof(*v));

        if (v == NULL) {
            topic_free(t);
            *errp = -ENOMEM;
            return NULL;
        }
        log->topics = v;
        log->cap_topics = cap;
    }
    rc = topic_grow(log, t, n_parts, err);
    if (rc < 0) {
        topic_free(t);
        *errp = rc;
        return NULL;
    }
    at = topic_lower_bound(log, name);
    memmove(log->topics + at + 1, log->topics + at, (log->n_topics - at) * sizeof(*log->topics));
    log->topics[at] = t;
    log->n_topics++;
    update_interval_timer(log);
    return t;
}

struct sl_topic *sl_log_get_topic(struct sl_log *log, const char *name, int *errp)
{
    struct sl_topic *t = sl_log_find_topic(log, name);
    char *err = NULL;

    if (t != NULL) {
        return t;
    }
    if (!sl_log_topic_name_valid(name)) {
        *errp = -EINVAL;
        return NULL;
    }
    if (!log->opts.auto_create) {
        *errp = -ENOENT;
        return NULL;
    }
    t = topic_create(log, name, &log->opts.defaults, log->opts.defaults.partitions, errp, &err);
    free(err);
    return t;
}

int sl_log_topic_configure(struct sl_log *log, const char *topic,
                           const struct sl_topic_config *cfg)
{
    struct sl_topic_config def;
    struct sl_topic *t;
    char *err = NULL;
    int rc = 0;

    if (cfg == NULL) {
        def = log->opts.defaults;
        cfg = &def;
    }
    if (!sl_log_topic_name_valid(topic) || !config_valid(cfg)) {
        return -EINVAL;
    }
    t = sl_log_find_topic(log, topic);
    if (t == NULL) {
        t = topic_create(log, topic, cfg, cfg->partitions, &rc, &err);
        free(err);
        return t != NULL ? 0 : rc;
    }
    t->cfg = *cfg;
    if (t->cfg.partitions < t->n_parts) {
        char what[128];

        snprintf(what, sizeof(what), "partitions cannot shrink: %" PRId32 " configured, "
                 "the topic keeps its %" PRId32, cfg->partitions, t->n_parts);
        log_partition_warn(topic, -1, what);
        t->cfg.partitions = t->n_parts;      /* partitions only grow, as in Kafka */
    }
    if (cfg->partitions > t->n_parts) {
        rc = topic_grow(log, t, cfg->partitions, &err);
        free(err);
        sl_groups_topic_changed(log, topic);
    }
    update_interval_timer(log);
    return rc;
}

int sl_log_set_defaults(struct sl_log *log, const struct sl_topic_config *defaults,
                        bool auto_create, bool (*keep)(void *arg, const char *topic),
                        void *arg)
{
    if (defaults == NULL || !config_valid(defaults)) {
        return -EINVAL;
    }
    log->opts.defaults = *defaults;
    log->opts.auto_create = auto_create;
    for (size_t i = 0; i < log->n_topics; i++) {
        struct sl_topic *t = log->topics[i];

        if (keep != NULL && keep(arg, t->name)) {
            continue;
        }
        t->cfg = *defaults;
        t->cfg.partitions = t->n_parts;      /* as discover() does at a start */
    }
    update_interval_timer(log);
    return 0;
}

int32_t sl_log_partitions(struct sl_log *log, const char *topic)
{
    struct sl_topic *t = sl_log_find_topic(log, topic);

    return t != NULL ? t->n_parts : -ENOENT;
}

int64_t sl_log_high_watermark(struct sl_log *log, const char *topic, int32_t partition)
{
    struct sl_topic *t = sl_log_find_topic(log, topic);

    if (t == NULL || partition < 0 || partition >= t->n_parts) {
        return -ENOENT;
    }
    return t->parts[partition]->hw;
}

static int32_t topic_partition_for(struct sl_topic *t, const uint8_t *key, int32_t key_len)
{
    if (key != NULL && key_len >= 0) {
        return sl_murmur2_partition(key, (size_t)key_len, t->n_parts);
    }
    return (int32_t)(t->rr++ % (uint32_t)t->n_parts);
}

int32_t sl_log_topic_partitions(const struct sl_topic *t)
{
    return t->n_parts;
}

int32_t sl_log_topic_partition_for(struct sl_topic *t, const uint8_t *key, int32_t key_len)
{
    return topic_partition_for(t, key, key_len);
}

int32_t sl_log_partition_for(struct sl_log *log, const char *topic,
                             const uint8_t *key, int32_t key_len)
{
    struct sl_topic *t = sl_log_find_topic(log, topic);

    if (t == NULL) {
        return -ENOENT;
    }
    return topic_partition_for(t, key, key_len);
}

/* ---- fsync workers ---- */

/* Sync the job's segment snapshot, then write the zeros it plans ahead (if any); sets
 * status, sync_failed, syncs, seconds and fill_status. Runs on an fsync worker, or on
 * the loop thread at close once the workers are gone (no fill is planned then). */
static void run_job(struct sl_fsync_job *job)
{
    double t0 = mono_seconds();

    job->status = 0;
    job->sync_failed = false;
    job->syncs = 0;
    for (size_t i = 0; i < job->n_segs; i++) {
        int rc = sl_segment_sync(job->segs[i]);

        job->syncs++;
        if (rc < 0) {
            job->sync_failed = true;
            if (job->status == 0) {
                job->status = rc;
            }
        }
    }
    job->seconds = mono_seconds() - t0;
    if (job->fill_seg != NULL) {
        /* after the fsyncs, so the fill never delays them; the job's acks do wait for it
         * (finish_job runs once run_job returns): one page-cache write of a step, once
         * per step of data */
        job->fill_status = job->sync_failed ? -ECANCELED
                                            : sl_segment_fill(job->fill_seg, job->fill_from,
                                                              job->fill_to);
    }
}

static struct sl_fsync_job *job_of(struct sl_work *w)
{
    return (struct sl_fsync_job *)((char *)w - offsetof(struct sl_fsync_job, work));
}

/* The job's work, on an fsync worker. */
static void fsync_run(struct sl_work *w)
{
    run_job(job_of(w));
}

/*
 * Snapshot the dirty segments of p into its job. 0 or -ENOMEM.
 *
 * For an `always` topic with preallocation, the job also zero-fills the active segment's
 * next step ahead when less than one step of zeros is left (sl_segment_fill_begin): the
 * worker writes them after its fsyncs, so the loop thread does not (an append that runs
 * out of zeros would write them itself, on the loop; with half a step as the threshold
 * a busy partition's writes during one job, ~450 KiB in the REST batch bench, still ran
 * out about one time in four). Until the job is back
 * (finish_job, sl_partition_filling) every write that would reach the zeros, and any
 * roll, waits in the open batch; in `always` mode those records could not be acknowledged
 * before the next job anyway. Not at close: run_job runs inline then.
 */
static int job_prepare(struct sl_partition *p)
{
    struct sl_fsync_job *job = &p->job;
    const struct sl_topic_config *cfg = &p->topic->cfg;
    size_t first = p->dirty_idx >= 0 ? (size_t)p->dirty_idx : p->n_segs;
    size_t n = p->n_segs - first;

    job->fill_seg = NULL;
    job->fill_status = 0;
    if (n > job->cap_segs) {
        struct sl_segment **v = realloc(job->segs, n * sizeof(*v));

        if (v == NULL) {
            return -ENOMEM;
        }
        job->segs = v;
        job->cap_segs = n;
    }
    if (n > 0) {
        memcpy(job->segs, p->segs + first, n * sizeof(*job->segs));
    }
    job->n_segs = n;
    job->part = p;
    job->ring_end = p->written_end;
    job->hw_target = p->written_offset;
    job->status = 0;
    job->sync_failed = false;
    job->syncs = 0;
    job->seconds = 0;
    p->job_first_idx = first;
    p->dirty_idx = -1;
    p->sync_end = p->written_end;
    p->job_inflight = true;
    if (cfg->flush == SL_FLUSH_ALWAYS && cfg->preallocate > 0 && !p->log->closing &&
        !p->failed) {
        struct sl_segment *act = p->segs[p->n_segs - 1];

        sl_segment_set_preallocate(act, cfg->preallocate, cfg->segment_bytes);
        if (sl_segment_fill_begin(act, &job->fill_from, &job->fill_to)) {
            job->fill_seg = act;
        }
    }
    return 0;
}

static void record_fsync(struct sl_log *log, const struct sl_fsync_job *job)
{
    if (job->syncs == 0) {
        return;
    }
    log->stats.fsyncs++;
    log->stats.fsync_seconds_sum += job->seconds;
    for (int i = 0; i < SL_LOG_FSYNC_BUCKETS; i++) {
        if (job->seconds <= sl_log_fsync_bucket_le[i]) {
            log->stats.fsync_bucket[i]++;
        }
    }
}

static void write_open(struct sl_partition *p);
static void maybe_start_job(struct sl_partition *p);

/*
 * An fsync of p failed: make p read-only until restart (see the top of this file). The
 * open batch is dropped unwritten; the caller fails every waiting append.
 */
static void partition_fail(struct sl_log *log, struct sl_partition *p, int status)
{
    log->stats.fsync_errors++;
    if (p->failed) {
        return;
    }
    p->failed = true;
    log_partition_error(p, "fsync failed, refusing appends until restart", status);
    p->dirty_idx = -1;
    if (p->open != NULL) {
        sl_rb_builder_reset(p->open, p->next_offset);
    }
    p->written_end = p->tail;
    p->sync_end = p->tail;
}

/* Fire the callbacks of p's waiting appends up to ring position end, in order: each
 * with its own error if it had one, else status (-EIO for all once p has failed). */
static void ack_until(struct sl_log *log, struct sl_partition *p, uint64_t end, int status)
{
    while (p->head != end) {
        struct sl_pending e = p->ring[p->head & (p->ring_cap - 1)];
        struct sl_append_result res = {.partition = p->id, .base_offset = e.base,
                                       .last_offset = e.last};

        p->head++;
        res.status = p->failed ? -EIO : e.status != 0 ? e.status : status;
        if (res.status != 0) {
            log->stats.append_errors++;
        }
        e.cb(e.arg, &res);
    }
}

/* The job's zero-fill ahead is over: on success the zeros are the active segment's
 * room (sl_segment_fill_end); a failure is not an fsync failure, the segment simply has
 * no more room ahead (the next appends write their own zeros, or append past the end).
 * Writes held back by the fill may go now. */
static void end_fill(struct sl_partition *p, struct sl_fsync_job *job)
{
    sl_segment_fill_end(job->fill_seg, job->fill_status);
    if (job->fill_status == 0) {
        p->fill_warned = false;
    } else if (job->fill_status != -ECANCELED && !p->fill_warned) {
        char what[160];

        p->fill_warned = true;
        snprintf(what, sizeof(what), "preallocate: zero-fill ahead of the active segment "
                 "failed: %s (appends go on past its end)", strerror(-job->fill_status));
        log_partition_warn(p->topic->name, p->id, what);
    }
    job->fill_seg = NULL;
}

/* The job of p completed: make its records visible and fire their callbacks. A failed
 * job makes nothing visible; a failed fsync also fails the partition and with it every
 * append still waiting. */
static void finish_job(struct sl_log *log, struct sl_fsync_job *job)
{
    struct sl_partition *p = job->part;
    uint64_t end = job->ring_end;

    p->job_inflight = false;
    record_fsync(log, job);
    if (job->fill_seg != NULL) {
        end_fill(p, job);
    }
    if (job->sync_failed) {
        partition_fail(log, p, job->status);
    } else if (job->status == 0) {
        sl_partition_set_hw(p, job->hw_target);
    }
    /* else no snapshot (out of memory): nothing synced, dirty_idx still covers it */
    if (p->roll_after_fill) {
        /* asked for during the fill: made now, before the writes it held back */
        int rc = 0;

        p->roll_after_fill = false;
        if (!p->failed) {
            rc = sl_partition_roll(p);
        }
        if (rc < 0) {
            log_partition_error(p, "roll after the zero-fill ahead failed", rc);
        }
    }
    if (p->failed) {
        end = p->tail;                   /* appends are refused now: tail stays put */
    } else if ((int64_t)(end - p->head) < 0) {
        end = p->head;                   /* acked already by ack_written (not `always`) */
    }
    ack_until(log, p, end, job->status);
    if (log->closing || p->failed) {
        return;
    }
    write_open(p);
    maybe_start_job(p);
}

/* The job is back, on the loop thread. */
static void fsync_done(struct sl_work *w)
{
    struct sl_fsync_job *job = job_of(w);

    finish_job(job->part->log, job);
}

/* Submit p's job to the fsync workers (or fail what waits if there is no memory for it). */
static void start_job(struct sl_partition *p)
{
    struct sl_log *log = p->log;

    if (job_prepare(p) < 0) {
        /* no memory for a snapshot: fail what is waiting instead of blocking */
        p->job.n_segs = 0;
        p->job.ring_end = p->written_end;
        p->job.hw_target = p->written_offset;
        p->job.status = -ENOMEM;
        p->job.sync_failed = false;
        p->job.syncs = 0;
        p->job.part = p;
        p->sync_end = p->written_end;
        p->job_inflight = true;
        finish_job(log, &p->job);
        return;
    }
    p->job.work.run = fsync_run;
    p->job.work.done = fsync_done;
    sl_workq_submit(log->fsyncq, &p->job.work);
}

static void maybe_start_job(struct sl_partition *p)
{
    if (!p->job_inflight && p->written_end != p->head) {
        start_job(p);
    }
}

/* ---- append ---- */

static void fail_now(struct sl_log *log, struct sl_partition *p, sl_append_cb cb, void *arg,
                     int status)
{
    struct sl_append_result res = { .status = status, .partition = p->id,
                                    .base_offset = -1, .last_offset = -1 };

    log->stats.append_errors++;
    cb(arg, &res);
}

/* The bytes to write for the finished batch buf[0, *len) of p: compressed into
 * log->zwrite (valid until the next call) when p's topic asks for it and that makes it
 * smaller, else buf itself. A codec failure (out of memory) writes the batch
 * uncompressed: Kafka readers take both. *codec: what was applied. Loop thread. */
static const uint8_t *compress_for(struct sl_partition *p, const uint8_t *buf, size_t *len,
                                   enum sl_rb_codec *codec)
{
    struct sl_log *log = p->log;

    *codec = SL_RB_CODEC_NONE;
    if (buf == NULL || p->topic->cfg.compression == SL_RB_CODEC_NONE) {
        return buf;
    }
    if (sl_rb_compress(buf, *len, p->topic->cfg.compression, &log->zwrite) == 1) {
        *codec = p->topic->cfg.compression;
        *len = log->zwrite.len;
        return log->zwrite.data;
    }
    return buf;
}

/* Count a batch of p's written after compress_for gave codec. Loop thread. */
static void count_written(struct sl_partition *p, enum sl_rb_codec codec)
{
    if (codec != SL_RB_CODEC_NONE) {
        p->log->stats.batches_compressed++;
    } else if (p->topic->cfg.compression != SL_RB_CODEC_NONE) {
        p->log->stats.batches_uncompressed++;
    }
}

/* Write p's open batch (the appends of this loop turn) to its active segment. */
static void write_open(struct sl_partition *p)
{
    struct sl_rb_builder *b = p->open;
    enum sl_rb_codec codec;
    const uint8_t *buf;
    size_t len;
    int64_t base, last;
    int rc;

    if (b == NULL || b->count == 0 || p->failed) {
        return;
    }
    buf = sl_rb_builder_finish(b, &len);
    base = b->base_offset;
    last = base + b->count - 1;
    if (p->topic->cfg.compression != SL_RB_CODEC_NONE && sl_partition_write_waits(p, len, last)) {
        /* as below, decided on the uncompressed length (which bounds the compressed
         * one): the batch is compressed once, when it can be written, not at every
         * turn it waits */
        return;
    }
    buf = compress_for(p, buf, &len, &codec);
    rc = sl_partition_write(p, buf, len, base, last, b->max_timestamp, (uint32_t)b->count);
    if (rc == -EAGAIN) {
        /* the job's zero-fill runs where this would go, or a roll must wait for it: not
         * a failure; the batch stays open and finish_job writes it, in order */
        return;
    }
    if (rc >= 0) {
        count_written(p, codec);
    }
    if (rc < 0) {
        for (uint64_t i = p->written_end; i != p->tail; i++) {
            p->ring[i & (p->ring_cap - 1)].status = rc;
        }
        p->next_offset = p->written_offset;
    }
    p->written_end = p->tail;
    sl_rb_builder_reset(b, p->next_offset);
}

/* Not `always` (a coalesced turn of `os` or `interval` appends): what is written is
 * acknowledged now, without waiting for an fsync. */
static void ack_written(struct sl_log *log, struct sl_partition *p)
{
    sl_partition_set_hw(p, p->written_offset);
    ack_until(log, p, p->written_end, 0);
}

static void flush_event(evutil_socket_t fd, short what, void *arg)
{
    struct sl_log *log = arg;

    while (log->flush_list != NULL) {
        struct sl_partition *p = log->flush_list;

        log->flush_list = p->flush_next;
        p->flush_next = NULL;
        p->open_queued = false;
        write_open(p);
        if (p->topic->cfg.flush != SL_FLUSH_ALWAYS && !p->failed) {
            ack_written(log, p);
        }
        maybe_start_job(p);
    }
}

static int ring_reserve(struct sl_partition *p)
{
    uint64_t cap;
    struct sl_pending *v;

    if (p->tail - p->head < p->ring_cap) {
        return 0;
    }
    cap = p->ring_cap ? p->ring_cap * 2 : 64;
    v = malloc(cap * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    for (uint64_t i = p->head; i != p->tail; i++) {
        v[i & (cap - 1)] = p->ring[i & (p->ring_cap - 1)];
    }
    free(p->ring);
    p->ring = v;
    p->ring_cap = cap;
    return 0;
}

static size_t estimate(const struct sl_rec_in *recs, size_t n)
{
    size_t sum = SL_RB_HEADER_SIZE;

    for (size_t i = 0; i < n; i++) {
        sum += 24 + (size_t)(recs[i].key_len > 0 ? recs[i].key_len : 0) +
               (size_t)(recs[i].value_len > 0 ? recs[i].value_len : 0);
        for (size_t h = 0; h < recs[i].n_headers; h++) {
            sum += 10 + recs[i].headers[h].name_len +
                   (size_t)(recs[i].headers[h].value_len > 0 ? recs[i].headers[h].value_len : 0);
        }
    }
    return sum;
}

/* Add recs to b; on failure restore b as it was. 0 or -errno. */
static int builder_add_all(struct sl_rb_builder *b, const struct sl_rec_in *recs, size_t n)
{
    struct sl_rb_builder saved = *b;

    for (size_t i = 0; i < n; i++) {
        int rc = sl_rb_builder_add(b, &recs[i]);

        if (rc < 0) {
            saved.buf = b->buf;            /* the buffer may have moved */
            saved.cap = b->cap;
            *b = saved;
            return rc;
        }
    }
    return 0;
}

/* flush always: encode into the open batch, ack after the next fsync that covers it. */
static void append_queued(struct sl_log *log, struct sl_partition *p,
                          const struct sl_rec_in *recs, size_t n, sl_append_cb cb, void *arg)
{
    struct sl_pending *e;
    int rc;

    if (p->open == NULL) {
        p->open = malloc(sizeof(*p->open));
        if (p->open == NULL) {
            fail_now(log, p, cb, arg, -ENOMEM);
            return;
        }
        sl_rb_builder_init(p->open);
        sl_rb_builder_reset(p->open, p->next_offset);
    }
    if (ring_reserve(p) < 0) {
        fail_now(log, p, cb, arg, -ENOMEM);
        return;
    }
    if (p->open->count > 0 && sl_segment_size(p->segs[p->n_segs - 1]) + p->open->len +
                              estimate(recs, n) > p->topic->cfg.segment_bytes) {
        write_open(p);                     /* a roll is due: this batch goes to the next */
    }
    if (p->open->count == 0) {
        sl_rb_builder_reset(p->open, p->next_offset);
    }
    rc = builder_add_all(p->open, recs, n);
    if (rc < 0) {
        fail_now(log, p, cb, arg, rc);
        return;
    }
    e = &p->ring[p->tail & (p->ring_cap - 1)];
    e->cb = cb;
    e->arg = arg;
    e->base = p->next_offset;
    e->last = p->next_offset + (int64_t)n - 1;
    e->status = 0;
    p->tail++;
    p->next_offset += (int64_t)n;
    if (!p->open_queued) {
        p->open_queued = true;
        p->flush_next = log->flush_list;
        log->flush_list = p;
        event_active(log->flush_ev, EV_WRITE, 0);
    }
}

/* flush os / interval: write now, ack now. */
static void append_direct(struct sl_log *log, struct sl_partition *p,
                          const struct sl_rec_in *recs, size_t n, sl_append_cb cb, void *arg)
{
    struct sl_rb_builder *b = &log->builder;
    struct sl_append_result res;
    enum sl_rb_codec codec;
    const uint8_t *buf;
    size_t len;
    int64_t base = p->next_offset;
    int rc;

    sl_rb_builder_reset(b, base);
    rc = builder_add_all(b, recs, n);
    if (rc < 0) {
        fail_now(log, p, cb, arg, rc);
        return;
    }
    buf = sl_rb_builder_finish(b, &len);
    buf = compress_for(p, buf, &len, &codec);
    rc = sl_partition_write(p, buf, len, base, base + (int64_t)n - 1, b->max_timestamp,
                            (uint32_t)n);
    if (rc < 0) {
        fail_now(log, p, cb, arg, rc);
        return;
    }
    count_written(p, codec);
    p->next_offset = p->written_offset;
    p->written_end = p->tail;
    sl_partition_set_hw(p, p->written_offset);
    res.status = 0;
    res.partition = p->id;
    res.base_offset = base;
    res.last_offset = base + (int64_t)n - 1;
    cb(arg, &res);
}

int sl_log_append(struct sl_log *log, const char *topic, int32_t partition,
                  const struct sl_rec_in *recs, size_t n, sl_append_cb cb, void *arg)
{
    struct sl_topic *t;
    int err = 0;

    if (log == NULL || recs == NULL || n == 0 || n > INT32_MAX || cb == NULL) {
        return -EINVAL;
    }
    if (log->closing) {
        return -ESHUTDOWN;
    }
    t = sl_log_get_topic(log, topic, &err);
    if (t == NULL) {
        return err;
    }
    return sl_log_append_topic(log, t, partition, recs, n, cb, arg);
}

int sl_log_append_topic(struct sl_log *log, struct sl_topic *t, int32_t partition,
                        const struct sl_rec_in *recs, size_t n, sl_append_cb cb, void *arg)
{
    struct sl_partition *p;

    if (log == NULL || t == NULL || recs == NULL || n == 0 || n > INT32_MAX || cb == NULL) {
        return -EINVAL;
    }
    if (log->closing) {
        return -ESHUTDOWN;
    }
    if (partition == -1) {
        partition = topic_partition_for(t, recs[0].key, recs[0].key_len);
    }
    if (partition < 0 || partition >= t->n_parts) {
        return -EINVAL;
    }
    p = t->parts[partition];
    if (p->failed) {
        log->stats.append_errors++;
        return -EIO;
    }
    if (t->cfg.flush == SL_FLUSH_ALWAYS || p->tail != p->head || log->opts.coalesce ||
        sl_partition_filling(p)) {
        append_queued(log, p, recs, n, cb, arg);
    } else {
        append_direct(log, p, recs, n, cb, arg);
    }
    return 0;
}

/* ---- reads, describe ---- */

static struct sl_partition *lookup(struct sl_log *log, const char *topic, int32_t partition,
                                   int *errp)
{
    struct sl_topic *t = sl_log_find_topic(log, topic);

    if (t == NULL) {
        *errp = -ENOENT;
        return NULL;
    }
    if (partition < 0 || partition >= t->n_parts) {
        *errp = -EINVAL;
        return NULL;
    }
    return t->parts[partition];
}

int sl_log_read(struct sl_log *log, const char *topic, int32_t partition, int64_t offset,
                size_t max_records, size_t max_bytes, sl_record_fn fn, void *arg,
                int64_t *next_offset)
{
    int err = 0;
    struct sl_partition *p = lookup(log, topic, partition, &err);

    if (p == NULL) {
        return err;
    }
    if (fn == NULL) {
        return -EINVAL;
    }
    return sl_partition_read(p, offset, max_records, max_bytes ? max_bytes : SIZE_MAX, fn, arg,
                             next_offset);
}

int64_t sl_log_offset_for_time(struct sl_log *log, const char *topic, int32_t partition,
                               int64_t ts_ms)
{
    int err = 0;
    struct sl_partition *p = lookup(log, topic, partition, &err);

    if (p == NULL) {
        return -ENOENT;
    }
    return sl_partition_offset_for_time(p, ts_ms);
}

static int describe_topic(struct sl_topic *t, sl_topic_fn fn, void *arg)
{
    struct sl_partition_info *info = calloc((size_t)t->n_parts, sizeof(*info));
    int rc;

    if (info == NULL) {
        return -ENOMEM;
    }
    for (int32_t i = 0; i < t->n_parts; i++) {
        sl_partition_describe(t->parts[i], &info[i]);
    }
    rc = fn(arg, t->name, &t->cfg, info, t->n_parts);
    free(info);
    return rc;
}

int sl_log_foreach_topic(struct sl_log *log, sl_topic_fn fn, void *arg)
{
    for (size_t i = 0; i < log->n_topics; i++) {
        int rc = describe_topic(log->topics[i], fn, arg);

        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int sl_log_describe(struct sl_log *log, const char *topic, sl_topic_fn fn, void *arg)
{
    struct sl_topic *t = sl_log_find_topic(log, topic);

    if (t == NULL) {
        return -ENOENT;
    }
    return describe_topic(t, fn, arg);
}

/* ---- maintenance, timers ---- */

void sl_log_maintain(struct sl_log *log)
{
    int64_t now = sl_log_now_ms();

    for (size_t i = 0; i < log->n_topics; i++) {
        struct sl_topic *t = log->topics[i];

        for (int32_t j = 0; j < t->n_parts; j++) {
            struct sl_partition *p = t->parts[j];

            log->stats.segments_deleted += sl_partition_maintain(p, now);
            for (struct sl_cursor *c = p->cursors; c != NULL; c = c->next) {
                if (c->pos < p->log_start) {
                    c->pos = p->log_start;
                }
            }
        }
    }
}

int sl_log_partition_info(struct sl_log *log, const char *topic, int32_t partition,
                          struct sl_partition_info *out)
{
    int err = 0;
    struct sl_partition *p = lookup(log, topic, partition, &err);

    if (p == NULL) {
        return -ENOENT;
    }
    sl_partition_describe(p, out);
    return 0;
}

int sl_log_roll(struct sl_log *log, const char *topic, int32_t partition)
{
    int err = 0;
    struct sl_partition *p = lookup(log, topic, partition, &err);

    if (p == NULL) {
        return -ENOENT;
    }
    if (p->failed) {
        return -EIO;
    }
    return sl_partition_roll(p);
}

int sl_log_delete_records(struct sl_log *log, const char *topic, int32_t partition,
                          int64_t offset)
{
    int err = 0;
    struct sl_partition *p = lookup(log, topic, partition, &err);
    int rc;

    if (p == NULL) {
        return -ENOENT;
    }
    if (log->closing) {
        return -ESHUTDOWN;
    }
    rc = sl_partition_delete_records(p, offset);
    if (rc < 0) {
        if (rc != -EINVAL) {
            log_partition_error(p, "cannot advance the log start", rc);
        }
        return rc;
    }
    log->stats.segments_deleted += (uint64_t)rc;
    return 0;
}

static void retention_event(evutil_socket_t fd, short what, void *arg)
{
    sl_log_maintain(arg);
}

static void interval_event(evutil_socket_t fd, short what, void *arg)
{
    struct sl_log *log = arg;

    for (size_t i = 0; i < log->n_topics; i++) {
        struct sl_topic *t = log->topics[i];

        if (t->cfg.flush != SL_FLUSH_INTERVAL) {
            continue;
        }
        for (int32_t j = 0; j < t->n_parts; j++) {
            struct sl_partition *p = t->parts[j];

            if (!p->job_inflight && p->dirty_idx >= 0 && !p->failed) {
                start_job(p);
            }
        }
    }
}

/* The interval timer runs at the shortest flush_interval_ms of the `interval` topics. */
static void update_interval_timer(struct sl_log *log)
{
    int64_t ms = 0;

    if (log->interval_ev == NULL) {
        return;
    }
    for (size_t i = 0; i < log->n_topics; i++) {
        const struct sl_topic_config *c = &log->topics[i]->cfg;

        if (c->flush == SL_FLUSH_INTERVAL) {
            int64_t v = c->flush_interval_ms > 0 ? c->flush_interval_ms : 1000;

            if (ms == 0 || v < ms) {
                ms = v;
            }
        }
    }
    if (ms == log->interval_ms) {
        return;
    }
    log->interval_ms = ms;
    event_del(log->interval_ev);
    if (ms > 0) {
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

        event_add(log->interval_ev, &tv);
    }
}

void sl_log_get_stats(struct sl_log *log, struct sl_log_stats *out)
{
    *out = log->stats;
}

/* ---- open / close ---- */

struct found {
    char *name;
    int32_t parts;
};

static int note_found(struct found **v, size_t *n, size_t *cap, const char *name, size_t len,
                      int32_t part)
{
    for (size_t i = 0; i < *n; i++) {
        if (strlen((*v)[i].name) == len && memcmp((*v)[i].name, name, len) == 0) {
            if (part + 1 > (*v)[i].parts) {
                (*v)[i].parts = part + 1;
            }
            return 0;
        }
    }
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct found *nv = realloc(*v, c * sizeof(*nv));

        if (nv == NULL) {
            return -ENOMEM;
        }
        *v = nv;
        *cap = c;
    }
    (*v)[*n].name = strndup(name, len);
    if ((*v)[*n].name == NULL) {
        return -ENOMEM;
    }
    (*v)[*n].parts = part + 1;
    (*n)++;
    return 0;
}

/* Discover <topic>-<partition> directories and open them. */
static int discover(struct sl_log *log, char **err)
{
    DIR *d = opendir(log->data_dir);
    struct dirent *de;
    struct found *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        if (asprintf(err, "%s: %s", log->data_dir, strerror(errno)) < 0) {
            *err = NULL;
        }
        return -EIO;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        const char *dash = strrchr(de->d_name, '-');
        char *end;
        long part;
        char name[256];
        size_t len;

        if (dash == NULL || de->d_name[0] == '.' || dash[1] < '0' || dash[1] > '9') {
            continue;
        }
        len = (size_t)(dash - de->d_name);
        if (len == 0 || len >= sizeof(name)) {
            continue;
        }
        errno = 0;
        part = strtol(dash + 1, &end, 10);
        if (errno != 0 || *end != '\0' || part < 0 || part >= 100000) {
            continue;
        }
        memcpy(name, de->d_name, len);
        name[len] = '\0';
        if (!sl_log_topic_name_valid(name)) {
            continue;
        }
        rc = note_found(&v, &n, &cap, name, len, (int32_t)part);
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            struct sl_topic_config cfg = log->opts.defaults;
            int e = 0;

            cfg.partitions = v[i].parts;
            if (topic_create(log, v[i].name, &cfg, v[i].parts, &e, err) == NULL) {
                rc = e;
            }
        }
        free(v[i].name);
    }
    free(v);
    if (rc < 0 && err != NULL && *err == NULL) {
        if (asprintf(err, "%s: %s", log->data_dir, strerror(-rc)) < 0) {
            *err = NULL;
        }
    }
    return rc;
}

/* fsync the directory holding path (which it modifies and restores). 0 or -errno. */
static int sync_parent(char *path)
{
    char *slash = strrchr(path, '/');
    int rc;

    if (slash == NULL) {
        return sl_sync_dir(".");
    }
    if (slash == path) {
        return sl_sync_dir("/");
    }
    *slash = '\0';
    rc = sl_sync_dir(path);
    *slash = '/';
    return rc;
}

/* mkdir -p; each directory created is made durable in its parent. 0 or -errno. */
static int mkdir_p(const char *path)
{
    char *tmp = strdup(path);
    int rc = 0;

    if (tmp == NULL) {
        return -ENOMEM;
    }
    for (char *s = tmp + 1; ; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;

            *s = '\0';
            if (mkdir(tmp, 0755) == 0) {
                rc = sync_parent(tmp);
            } else if (errno != EEXIST) {
                rc = -errno;
            }
            if (rc < 0) {
                break;
            }
            *s = c;
            if (c == '\0') {
                break;
            }
        }
    }
    free(tmp);
    return rc;
}

struct sl_log *sl_log_open(struct event_base *base, const struct sl_log_options *opts,
                           char **err)
{
    struct sl_log *log;
    int64_t rms;
    struct timeval tv;
    const char *problem;
    int rc;

    if (err != NULL) {
        *err = NULL;
    }
    if (base == NULL || opts == NULL || opts->data_dir == NULL) {
        if (err != NULL) {
            *err = strdup("sl_log_open: invalid options");
        }
        return NULL;
    }
    problem = config_problem(&opts->defaults);
    if (problem != NULL) {
        if (err != NULL && asprintf(err, "sl_log_open: %s", problem) < 0) {
            *err = NULL;
        }
        return NULL;
    }
    log = calloc(1, sizeof(*log));
    if (log == NULL) {
        return NULL;
    }
    log->base = base;
    log->opts = *opts;
    log->opts.data_dir = NULL;
    sl_rb_builder_init(&log->builder);
    log->data_dir = strdup(opts->data_dir);
    rc = log->data_dir != NULL ? mkdir_p(log->data_dir) : -ENOMEM;
    if (rc < 0) {
        if (err != NULL && asprintf(err, "%s: cannot create: %s", opts->data_dir,
                                    strerror(-rc)) < 0) {
            *err = NULL;
        }
        goto fail;
    }
    log->flush_ev = event_new(base, -1, 0, flush_event, log);
    log->wake_ev = event_new(base, -1, 0, sl_cursor_wake_event, log);
    log->group_ev = event_new(base, -1, 0, sl_group_event, log);
    log->retention_ev = event_new(base, -1, EV_PERSIST, retention_event, log);
    log->interval_ev = event_new(base, -1, EV_PERSIST, interval_event, log);
    if (!log->flush_ev || !log->wake_ev || !log->group_ev ||
        !log->retention_ev || !log->interval_ev) {
        goto fail;
    }
    if (discover(log, err) < 0 || sl_groups_load(log, err) < 0) {
        goto fail;
    }
    /* as many workers as start (at least one, else the open fails) */
    log->fsyncq = sl_workq_new(base, SL_LOG_FSYNC_THREADS, "sl-fsync", NULL);
    if (log->fsyncq == NULL) {
        if (err != NULL) {
            *err = strdup("sl_log_open: cannot start the fsync thread");
        }
        goto fail;
    }
    rc = sl_groups_start(log);
    if (rc < 0) {
        if (err != NULL && asprintf(err, "sl_log_open: cannot start the group saver: %s",
                                    strerror(-rc)) < 0) {
            *err = NULL;
        }
        goto fail;
    }
    rms = opts->retention_check_ms > 0 ? opts->retention_check_ms : 300000;
    tv.tv_sec = rms / 1000;
    tv.tv_usec = (rms % 1000) * 1000;
    event_add(log->retention_ev, &tv);
    log->interval_ms = 0;
    update_interval_timer(log);
    return log;

fail:
    sl_log_close(&log);
    return NULL;
}

/* Sync p's dirty segments on this thread and complete what waits (used at close). */
static void sync_inline(struct sl_log *log, struct sl_partition *p)
{
    if (p->failed || (p->dirty_idx < 0 && p->written_end == p->head)) {
        return;
    }
    if (job_prepare(p) < 0) {
        p->job.n_segs = 0;
        p->job.ring_end = p->written_end;
        p->job.hw_target = p->written_offset;
        p->job.status = -ENOMEM;
        p->job.sync_failed = false;
        p->job.syncs = 0;
        p->job_inflight = true;
        finish_job(log, &p->job);
        return;
    }
    run_job(&p->job);
    finish_job(log, &p->job);
}

void sl_log_close(struct sl_log **logp)
{
    struct sl_log *log = logp ? *logp : NULL;

    if (log == NULL) {
        return;
    }
    log->closing = true;
    for (size_t i = 0; i < log->n_topics; i++) {
        for (int32_t j = 0; j < log->topics[i]->n_parts; j++) {
            write_open(log->topics[i]->parts[j]);
        }
    }
    log->flush_list = NULL;
    /* the workers drain the queue, then every job's finish_job runs here */
    sl_workq_free(&log->fsyncq);
    /* Every job is back and with it every zero-fill ahead: the open batches those held
     * back (write_open above left them) are written now, then synced inline. */
    for (size_t i = 0; i < log->n_topics; i++) {
        for (int32_t j = 0; j < log->topics[i]->n_parts; j++) {
            write_open(log->topics[i]->parts[j]);
            sync_inline(log, log->topics[i]->parts[j]);
        }
    }
    sl_groups_stop(log);           /* unsaved commits written; their callbacks fire */
    sl_cursor_detach_all(log);
    sl_groups_free(log);
    if (log->flush_ev) {
        event_free(log->flush_ev);
    }
    if (log->wake_ev) {
        event_free(log->wake_ev);
    }
    if (log->group_ev) {
        event_free(log->group_ev);
    }
    if (log->retention_ev) {
        event_free(log->retention_ev);
    }
    if (log->interval_ev) {
        event_free(log->interval_ev);
    }
    for (size_t i = 0; i < log->n_topics; i++) {
        topic_free(log->topics[i]);
    }
    free(log->topics);
    sl_rb_builder_free(&log->builder);
    sl_rb_zbuf_free(&log->zwrite);
    sl_rb_zbuf_free(&log->zread);
    free(log->read_buf);
    free(log->data_dir);
    free(log);
    *logp = NULL;
}

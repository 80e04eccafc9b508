/*
 * sluice embedded log: topics -> partitions -> segments (Kafka layout on disk).
 *
 * Thread affinity: every function here runs on the core loop thread (the thread that
 * runs the event_base given to sl_log_open), unless its comment says otherwise. fsync
 * runs on a background thread owned by the log; its completions come back to the loop.
 *
 * Visibility: a record becomes readable (part of the high watermark) once its append
 * has met the topic's flush policy, the same moment its append callback fires.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/log/recordbatch.h"

struct event_base;
struct sl_log;
struct sl_cursor;
struct sl_group_member;

enum sl_flush {
    SL_FLUSH_OS = 0,       /* leave it to the page cache; ack after write() */
    SL_FLUSH_INTERVAL,     /* fdatasync every flush_interval_ms; ack after write() */
    SL_FLUSH_ALWAYS,       /* ack after fdatasync; concurrent appends share one fsync */
};

/* Largest segment_bytes: Kafka's limit for segment.bytes (Int.MaxValue). */
#define SL_SEGMENT_BYTES_MAX 2147483647ULL

struct sl_topic_config {
    int32_t partitions;          /* > 0 */
    uint64_t segment_bytes;      /* roll the active segment past this size (1 .. MAX) */
    int64_t segment_ms;          /* roll a segment older than this (0: never) */
    int64_t retention_bytes;     /* per partition; -1: unlimited */
    int64_t retention_ms;        /* -1: unlimited */
    enum sl_flush flush;
    int64_t flush_interval_ms;   /* SL_FLUSH_INTERVAL only */
    uint32_t index_interval_bytes; /* one .index entry per this many bytes of log */
    uint32_t preallocate;        /* always/interval: zero-fill the active segment this
                                  * much at a time ahead of its end (0: never); always:
                                  * mostly on the fsync worker, after a job's fsyncs */
    enum sl_rb_codec compression; /* batches written from now on: none, gzip, lz4 or
                                  * zstd (not snappy); compressed on the loop thread */
};

/* Kafka-like defaults: 1 partition, 1 GiB segments, 7 days, flush always. */
void sl_topic_config_defaults(struct sl_topic_config *cfg);

struct sl_log_options {
    const char *data_dir;                /* borrowed during sl_log_open only */
    struct sl_topic_config defaults;     /* for auto-created topics */
    bool auto_create;                    /* create unknown topics on first append */
    int64_t retention_check_ms;          /* how often retention and age-roll run (0: 5 min) */
    /* flush os / interval: gather a loop turn's appends to a partition into one batch
     * and one write, acked at the end of the turn (false: each append written and
     * acked before sl_log_append returns). The daemon sets it; a busy listener then
     * makes one write per partition per turn instead of one per request. */
    bool coalesce;
};

/*
 * Open (creating data_dir if needed) and recover every topic found there: the active
 * segment of each partition is validated and a torn or corrupt tail truncated; missing
 * or bad indexes are rebuilt. Returns NULL and sets *err (malloc'd) on failure.
 * Loop thread. The log keeps `base` borrowed for its lifetime.
 */
struct sl_log *sl_log_open(struct event_base *base, const struct sl_log_options *opts,
                           char **err);

/* Flush everything, stop the fsync thread, close files, free, set *log to NULL.
 * Pending append callbacks fire (with their final status) before it returns. */
void sl_log_close(struct sl_log **log);

/* Topic names follow Kafka's rules: [a-zA-Z0-9._-], 1..249 chars, not "." or "..". */
bool sl_log_topic_name_valid(const char *name);

/*
 * A reload of the log section: auto_create and the settings later auto-created topics
 * start from become these, and every existing topic for which keep(arg, name) is false
 * (keep NULL: every topic) takes them now, keeping its partition count, as it would at
 * the next start. Returns 0, or -EINVAL (bad config: nothing changed). Loop thread.
 */
int sl_log_set_defaults(struct sl_log *log, const struct sl_topic_config *defaults,
                        bool auto_create, bool (*keep)(void *arg, const char *topic),
                        void *arg);

/*
 * Create a topic, or with an existing one apply new settings (partitions can only
 * grow). cfg NULL: the defaults. Returns 0, or -EINVAL (bad name/config), -errno.
 */
int sl_log_topic_configure(struct sl_log *log, const char *topic,
                           const struct sl_topic_config *cfg);

/* Number of partitions, or -ENOENT. */
int32_t sl_log_partitions(struct sl_log *log, const char *topic);

/* The partition's high watermark (next offset to become visible), or -ENOENT for an
 * unknown topic or partition. Loop thread. */
int64_t sl_log_high_watermark(struct sl_log *log, const char *topic, int32_t partition);

/* Kafka's default partitioner: murmur2(key) & 0x7fffffff % partitions for a key;
 * keyless records rotate round-robin. Topic must exist (else -ENOENT). */
int32_t sl_log_partition_for(struct sl_log *log, const char *topic,
                             const uint8_t *key, int32_t key_len);

/*
 * A topic looked up once for several calls (the publish path: partition count,
 * partitioner, append). The handle is borrowed from the log: valid while the topic
 * exists, so a caller keeps it only within the loop-thread call it looked it up in.
 * Loop thread.
 */
struct sl_topic;
/* The topic named name, or NULL if there is none (NULL name: NULL). */
struct sl_topic *sl_log_find_topic(struct sl_log *log, const char *name);
/* Its partition count. */
int32_t sl_log_topic_partitions(const struct sl_topic *t);
/* sl_log_partition_for for a topic in hand. */
int32_t sl_log_topic_partition_for(struct sl_topic *t, const uint8_t *key, int32_t key_len);

struct sl_partition_info {
    int32_t partition;
    int64_t log_start_offset;  /* first offset still kept */
    int64_t high_watermark;    /* next offset to be made visible */
    uint64_t bytes;            /* on disk, all segments */
    uint32_t segments;
    uint64_t records_appended; /* since start */
    uint64_t bytes_appended;   /* since start */
    bool failed;               /* read-only after an fsync error, until restart */
};

/* Calls fn once per topic in name order; stops early if fn returns nonzero. */
typedef int (*sl_topic_fn)(void *arg, const char *topic, const struct sl_topic_config *cfg,
                           const struct sl_partition_info *parts, int32_t n_parts);
int sl_log_foreach_topic(struct sl_log *log, sl_topic_fn fn, void *arg);

/* One topic; -ENOENT if missing. */
int sl_log_describe(struct sl_log *log, const char *topic, sl_topic_fn fn, void *arg);

struct sl_append_result {
    int status;              /* 0, or -errno (-ENOENT unknown topic, -EIO, -ENOSPC, ...) */
    int32_t partition;
    int64_t base_offset;     /* offset of the first record appended */
    int64_t last_offset;
};
typedef void (*sl_append_cb)(void *arg, const struct sl_append_result *res);

/*
 * Append n records to one partition as one RecordBatch. Record memory is borrowed for
 * the duration of the call only (it is encoded before return). cb fires on the loop
 * thread exactly once when the append met the topic's flush policy (or failed); for
 * `os` and `interval` that may be before sl_log_append returns (with
 * sl_log_options.coalesce: at the end of the loop turn, one write per partition). partition -1: choose
 * by the first record's key (sl_log_partition_for). Returns 0 if accepted (cb will
 * fire), or -errno with cb not called. Topic auto-created if allowed.
 * After an fsync error on a partition, its waiting appends fail with -EIO, nothing more
 * becomes visible there, and later appends to it return -EIO, until a restart.
 */
int sl_log_append(struct sl_log *log, const char *topic, int32_t partition,
                  const struct sl_rec_in *recs, size_t n, sl_append_cb cb, void *arg);
/* sl_log_append to a topic in hand (from sl_log_find_topic, t not NULL). */
int sl_log_append_topic(struct sl_log *log, struct sl_topic *t, int32_t partition,
                        const struct sl_rec_in *recs, size_t n, sl_append_cb cb, void *arg);

/* A record read back; pointers valid during the callback only. Return nonzero to stop. */
typedef int (*sl_record_fn)(void *arg, const char *topic, int32_t partition,
                            const struct sl_record *rec);

/*
 * Read visible records from offset (below the log start: from the log start) up to
 * max_records / about max_bytes (0: no byte limit). *next_offset gets the offset after
 * the last delivered; a record for which fn returned nonzero counts as delivered.
 * A compressed batch is decompressed whole into a buffer of the log's that keeps the
 * last one (a read of the next record of that batch does not decompress it again).
 * Returns records delivered (0 at the end), or -ENOENT, -EINVAL, -EIO (also for a
 * batch that does not decompress), -ENOMEM.
 */
int sl_log_read(struct sl_log *log, const char *topic, int32_t partition, int64_t offset,
                size_t max_records, size_t max_bytes, sl_record_fn fn, void *arg,
                int64_t *next_offset);

/* First offset with timestamp >= ts_ms, or the high watermark if none. -ENOENT. */
int64_t sl_log_offset_for_time(struct sl_log *log, const char *topic, int32_t partition,
                               int64_t ts_ms);

/* Apply retention and age-based roll now (also runs on a timer). */
void sl_log_maintain(struct sl_log *log);

/* One partition as sl_log_describe reports it, into *out (borrowed). 0, or -ENOENT for
 * an unknown topic or partition. Loop thread. */
int sl_log_partition_info(struct sl_log *log, const char *topic, int32_t partition,
                          struct sl_partition_info *out);

/*
 * Start a new active segment at the partition's next offset, so that what was written
 * before lies in closed segments that sl_log_delete_records can delete whole. No-op when
 * the active segment is empty. While the partition's fsync worker zero-fills the active
 * segment ahead (flush: always with preallocate) the roll is made when it is done,
 * before anything appended later is written (a failure then is logged, not returned).
 * 0, or -ENOENT (unknown topic or partition), -EIO (failed partition, file error).
 * Loop thread.
 */
int sl_log_roll(struct sl_log *log, const char *topic, int32_t partition);

/*
 * Kafka's DeleteRecords: make offset (at most the high watermark) the partition's log
 * start offset. The new start is durable before this returns (<partition dir>/
 * log-start-offset: temp file, fsync, rename, fsync dir; this runs on the calling
 * thread), so a crash at any later point reopens with it; then every segment lying
 * entirely below it is deleted (the active one rolled first when all of it is below),
 * and any the fsync thread holds now by a later sl_log_maintain or the next open.
 * Records below the start are gone as after retention: reads and cursors below it
 * move up to it. An offset at or below the current start is a no-op.
 * Returns 0, or -ENOENT, -EINVAL (offset beyond the high watermark), -EIO (failed
 * partition), -ESHUTDOWN (closing), -errno of the start file. Loop thread.
 */
int sl_log_delete_records(struct sl_log *log, const char *topic, int32_t partition,
                          int64_t offset);

/* ---- cursors ---- */

enum sl_start_kind { SL_START_EARLIEST, SL_START_LATEST, SL_START_OFFSET, SL_START_TIME };
struct sl_start {
    enum sl_start_kind kind;
    int64_t value;                       /* offset or ms since the epoch */
};

/* Called on the loop thread, from the event loop (never from inside sl_log_append),
 * when records became visible at or past the cursor's position. Edge-triggered: it
 * fires once, and is re-armed when sl_cursor_poll reaches the high watermark. */
typedef void (*sl_cursor_wake_fn)(struct sl_cursor *cur, void *arg);

/* Open a cursor; the topic is auto-created if allowed. NULL with -errno in *errp.
 * A cursor starts armed; if records are already visible past its start, its wake
 * fires once from the loop soon after. wake may be NULL (poll only). */
struct sl_cursor *sl_cursor_open(struct sl_log *log, const char *topic, int32_t partition,
                                 struct sl_start start, sl_cursor_wake_fn wake, void *arg,
                                 int *errp);

/* Deliver up to max_records from the cursor position and advance past them.
 * Returns records delivered, 0 when caught up (re-arms wake), or -errno. */
int sl_cursor_poll(struct sl_cursor *cur, size_t max_records, size_t max_bytes,
                   sl_record_fn fn, void *arg);

int64_t sl_cursor_position(const struct sl_cursor *cur);
void sl_cursor_seek(struct sl_cursor *cur, int64_t offset);
void sl_cursor_close(struct sl_cursor **cur);

/* ---- consumer groups ---- */

/* A member's new assignment, replacing its previous one (n may be 0). Loop thread. */
typedef void (*sl_group_assign_fn)(struct sl_group_member *m, void *arg,
                                   const int32_t *partitions, size_t n);

/*
 * Join group `group` on `topic`. Partitions are spread over members (range
 * assignment, members ordered by join time); every member whose assignment changes
 * gets its callback (deferred to the loop, never inside this call).
 */
struct sl_group_member *sl_group_join(struct sl_log *log, const char *group,
                                      const char *topic, sl_group_assign_fn fn, void *arg);
/* Leave: the remaining members are rebalanced. Sets *m to NULL. */
void sl_group_leave(struct sl_group_member **m);

/*
 * Committed offsets live in memory and in one file per group (<data_dir>/__groups). A
 * commit changes the memory at once and schedules a save of the group's file, which a
 * worker thread writes and fsyncs (file, then directory) off the loop. At most one save
 * per group is in flight; commits made meanwhile go into one follow-up save. A failed
 * save is logged and counted; the offsets stay committed in memory and the group's next
 * save (its next commit, or sl_log_close) writes them again. sl_log_close writes every
 * unsaved commit and waits for the saves before it returns.
 */

/*
 * Commit an offset (the next offset to consume): sl_group_committed returns it at once;
 * it is durable after the group's next save, which starts at the end of this loop turn.
 * Not checked against the partition (use sl_group_commit_many for that). Borrows the
 * strings. Returns 0, or -EINVAL (bad name, partition or offset), -ENOMEM, -ESHUTDOWN
 * (the log is closing and its saver stopped). Loop thread.
 */
int sl_group_commit(struct sl_log *log, const char *group, const char *topic,
                    int32_t partition, int64_t offset);

/* One partition's offset in sl_group_commit_many. */
struct sl_group_offset {
    int32_t partition;
    int64_t offset;
};

/* A sl_group_commit_many finished: status 0 once the save covering it is durable, or
 * the save's -errno. Loop thread, from the event loop (never inside the commit call). */
typedef void (*sl_group_commit_cb)(void *arg, int status);

/*
 * Commit offsets of n partitions of one existing topic for group, all or nothing:
 * everything is checked first, and on any error nothing changes and cb is not called.
 * Each partition must exist and each offset be 0 .. its high watermark; a partition
 * listed twice gets its last offset. The new offsets are visible at once (as with
 * sl_group_commit); cb(arg, status) fires exactly once on the loop thread when the
 * group's save that covers them completed (status 0: durable; -errno: the save failed,
 * the offsets stay committed in memory, see above). Borrows the strings and offs.
 * Returns 0 (cb will fire), or -EINVAL (bad group name, n == 0, NULL cb), -ENOENT
 * (unknown topic or partition), -ERANGE (an offset below 0 or beyond the high
 * watermark), -ENOMEM, -ESHUTDOWN (closing). On -ENOENT and -ERANGE, *bad (if not NULL)
 * gets the index of the first offending entry. Loop thread.
 */
int sl_group_commit_many(struct sl_log *log, const char *group, const char *topic,
                         const struct sl_group_offset *offs, size_t n,
                         sl_group_commit_cb cb, void *arg, size_t *bad);

/* The committed offset (durable or still being saved), or -1 if none. */
int64_t sl_group_committed(struct sl_log *log, const char *group, const char *topic,
                           int32_t partition);

/* Every (group, topic, partition, committed) known; stops if fn returns nonzero. */
typedef int (*sl_group_fn)(void *arg, const char *group, const char *topic,
                           int32_t partition, int64_t committed, int members);
int sl_group_foreach(struct sl_log *log, sl_group_fn fn, void *arg);

struct sl_group_stats {
    uint64_t commits;            /* sl_group_commit and sl_group_commit_many calls taken */
    uint64_t saves;              /* group files written (fsynced or failed) */
    uint64_t save_errors;        /* saves that failed */
};

/* Copy the consumer groups' counters into *out (borrowed). Loop thread. */
void sl_group_get_stats(struct sl_log *log, struct sl_group_stats *out);

/* ---- statistics (for /metrics) ---- */

#define SL_LOG_FSYNC_BUCKETS 12

/* Upper bounds, in seconds, of the fsync duration histogram buckets (0.0001 .. 1.0);
 * the +Inf bucket is `fsyncs`. */
extern const double sl_log_fsync_bucket_le[SL_LOG_FSYNC_BUCKETS];

struct sl_log_stats {
    uint64_t fsyncs;                                /* fdatasync calls made */
    uint64_t fsync_bucket[SL_LOG_FSYNC_BUCKETS];    /* cumulative: fsyncs <= le[i] */
    double fsync_seconds_sum;
    uint64_t append_errors;                         /* appends failed through their cb,
                                                     * or refused by a failed partition */
    uint64_t fsync_errors;                          /* failed fsyncs (each fails a partition) */
    uint64_t recovered_truncated_bytes;             /* cut from torn tails at open */
    uint64_t segments_deleted;                      /* by retention and
                                                     * sl_log_delete_records */
    uint64_t read_skipped_offsets;                  /* offsets reads skipped: a segment's
                                                     * valid data ended before the next
                                                     * segment's base (lost to damage);
                                                     * counted by every read that crosses */
    uint64_t batches_compressed;                    /* written compressed (topic
                                                     * compression not none) */
    uint64_t batches_uncompressed;                  /* topic compression not none, but
                                                     * written as they were: no smaller,
                                                     * or the codec failed (memory) */
    uint64_t batches_decompressed;                  /* by reads (the one-batch cache's
                                                     * misses) */
};

/* Copy the counters into *out (borrowed). Loop thread. */
void sl_log_get_stats(struct sl_log *log, struct sl_log_stats *out);

#endif

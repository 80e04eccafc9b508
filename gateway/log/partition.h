/*
 * One partition of a topic: its directory, its segments in base-offset order, the
 * high watermark, the group-commit queue of pending appends and its cursors.
 *
 * Private to gateway/log/. Thread affinity: the log's loop thread for everything; the
 * fsync workers only touch the snapshot of segments held in a struct sl_fsync_job
 * (sl_segment_sync) and the file of its fill segment (sl_segment_fill).
 */
#ifndef SL_PARTITION_H
#define SL_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gateway/log/log.h"
#include "gateway/log/recordbatch.h"
#include "gateway/log/segment.h"
#include "gateway/workq.h"

struct sl_topic;
struct sl_partition;

/* One `always` append waiting for its fsync. */
struct sl_pending {
    sl_append_cb cb;
    void *arg;
    int64_t base;
    int64_t last;
    int status;
};

/* One fdatasync request for the fsync workers (embedded in its partition, submitted to
 * the log's sl_workq through work). The loop sets it up before submitting it and reads
 * the results once it is back; the worker reads the rest and sets only status,
 * sync_failed, syncs, seconds and fill_status. */
struct sl_fsync_job {
    struct sl_partition *part;
    struct sl_segment **segs;        /* snapshot; the thread syncs these */
    size_t n_segs;
    size_t cap_segs;
    uint64_t ring_end;               /* pending entries [head, ring_end) are covered */
    int64_t hw_target;               /* written offset when the job was queued */
    int status;                      /* result, set by the thread */
    bool sync_failed;                /* an fsync failed (not just: no snapshot) */
    uint32_t syncs;
    double seconds;                  /* of the fsyncs (the fill not included) */
    /* After the fsyncs, the thread zero-fills [fill_from, fill_to) of fill_seg (the
     * active segment, sl_segment_fill_begin): preallocation off the loop thread. */
    struct sl_segment *fill_seg;     /* NULL: no fill */
    uint64_t fill_from;
    uint64_t fill_to;
    int fill_status;                 /* sl_segment_fill's, or -ECANCELED if not run */
    struct sl_work work;             /* on the log's fsync queue */
};

struct sl_partition {
    struct sl_log *log;
    struct sl_topic *topic;
    int32_t id;
    char *dir;

    struct sl_segment **segs;        /* base-offset order; last one is active */
    size_t n_segs;
    size_t cap_segs;

    int64_t log_start;
    int64_t hw;                      /* visible */
    int64_t next_offset;             /* next offset to hand out (open batch included) */
    int64_t written_offset;          /* after the last batch written to the active segment */
    uint64_t records_appended;
    uint64_t bytes_appended;

    /* group commit: ring of pending appends, counters grow, index = counter & mask */
    struct sl_pending *ring;
    uint64_t ring_cap;               /* power of two or 0 */
    uint64_t head;                   /* oldest pending */
    uint64_t sync_end;               /* [head, sync_end): covered by the job in flight */
    uint64_t written_end;            /* [sync_end, written_end): written, wait next fsync */
    uint64_t tail;                   /* [written_end, tail): in the open batch */
    struct sl_rb_builder *open;      /* open batch of this loop turn (lazily allocated) */
    bool open_queued;                /* on log->flush_list */
    struct sl_partition *flush_next;

    bool job_inflight;
    struct sl_fsync_job job;
    /* While the job zero-fills the active segment ahead (job.fill_seg set, from
     * job_prepare to finish_job: sl_partition_filling): nothing is written at or past
     * job.fill_from, and the active segment is not rolled, trimmed or closed. Writes
     * wait in the open batch; a roll asked for meanwhile is made when the job is back
     * (finish_job), before they are written. */
    bool roll_after_fill;
    bool fill_warned;                /* a failed fill was logged (again after a success) */
    ssize_t dirty_idx;               /* first segment with unsynced writes, -1: clean */
    size_t job_first_idx;            /* while job_inflight: first snapshot segment */

    bool failed;                     /* an fsync failed: read-only until restart */

    struct sl_cursor *cursors;       /* doubly linked */
};

/*
 * Open partition `id` of `topic` under data_dir (a new directory is made durable in
 * data_dir): discover its segments, recover the last two (a crash soon after a roll
 * can leave both with unsynced data; truncated bytes are added to *truncated), or
 * create an empty segment 0.
 * Returns a new partition or NULL with *err (malloc'd). Loop thread.
 */
struct sl_partition *sl_partition_open(struct sl_log *log, struct sl_topic *topic,
                                       int32_t id, const char *data_dir,
                                       uint64_t *truncated, char **err);

/* Close segments and free (cursors must have been detached); *p set to NULL. */
void sl_partition_close(struct sl_partition **p);

/* Write one encoded batch (borrowed) to the active segment, rolling first by size or
 * age, and rolling and retrying once if the segment cannot address it (-EOVERFLOW).
 * Updates written_offset, dirty_idx and counters. 0 or -errno; -EAGAIN, nothing
 * written, while the job's fill is in flight (sl_partition_filling) and the batch would
 * reach its zeros or a roll is due (by size, age, the index's limit, or asked for): the
 * caller keeps the batch and writes it once the job is back. Loop thread. */
int sl_partition_write(struct sl_partition *p, const uint8_t *batch, size_t len,
                       int64_t base, int64_t last, int64_t max_ts, uint32_t records);

/* Whether sl_partition_write of a batch of len bytes ending at offset last would return
 * -EAGAIN now (true only while the job's fill is in flight; a shorter batch waits no
 * more often than a longer one). Loop thread. */
bool sl_partition_write_waits(const struct sl_partition *p, size_t len, int64_t last);

/* Whether p's job is zero-filling its active segment ahead (see roll_after_fill).
 * Loop thread. */
static inline bool sl_partition_filling(const struct sl_partition *p)
{
    return p->job.fill_seg != NULL;
}

/* Start a new active segment at written_offset. No-op if the active one is empty.
 * While a fill is in flight the roll is only noted (roll_after_fill) and made when the
 * fill is over, before anything else is written. 0 or -errno. Loop thread. */
int sl_partition_roll(struct sl_partition *p);

/* See sl_log_read. Uses the log's read buffer. Where a segment's valid data ends before
 * the next segment's base (a damaged tail), the offsets in between are lost: the read
 * steps over them (counted in read_skipped_offsets) instead of stopping there. */
int sl_partition_read(struct sl_partition *p, int64_t offset, size_t max_records,
                      size_t max_bytes, sl_record_fn fn, void *arg, int64_t *next_offset);

/* See sl_log_offset_for_time. */
int64_t sl_partition_offset_for_time(struct sl_partition *p, int64_t ts_ms);

/* Age roll and retention at wall-clock time now_ms, and segments left below the log
 * start by sl_partition_delete_records; returns segments deleted. */
unsigned sl_partition_maintain(struct sl_partition *p, int64_t now_ms);

/* See sl_log_delete_records. Returns segments deleted (>= 0) or -errno. */
int sl_partition_delete_records(struct sl_partition *p, int64_t offset);

/* Bytes of all segments. */
uint64_t sl_partition_bytes(const struct sl_partition *p);

/* Fill *out (borrowed). */
void sl_partition_describe(const struct sl_partition *p, struct sl_partition_info *out);

/* Make [.., hw) visible and schedule the wake of cursors behind it. */
void sl_partition_set_hw(struct sl_partition *p, int64_t hw);

#endif

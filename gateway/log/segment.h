/*
 * One log segment: <dir>/<20-digit base offset>.log (RecordBatch v2, back to back),
 * .index (sparse: 8-byte entries, relative offset u32 BE + file position u32 BE) and
 * .timeindex (12-byte entries: timestamp i64 BE + relative offset u32 BE), as Kafka
 * lays them out.
 *
 * Thread affinity: the owner's thread (the core loop) for everything except
 * sl_segment_sync and sl_segment_fill, which the log's fsync threads may call
 * concurrently with appends.
 */
#ifndef SL_SEGMENT_H
#define SL_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sl_segment;

/*
 * Open the segment with base_offset in dir, creating empty files if create is true
 * and they are missing. An existing segment is opened as it is: call
 * sl_segment_recover on the active (last) segment. Older segments trust their index
 * but rebuild it if it is missing or inconsistent. NULL and *err (malloc'd) on failure.
 */
struct sl_segment *sl_segment_open(const char *dir, int64_t base_offset, bool create,
                                   uint32_t index_interval_bytes, char **err);

/*
 * Validate every batch from the start of the .log (length, magic, CRC, offsets
 * increasing), truncate the file at the first bad or torn batch, and rebuild both
 * indexes to match. Returns the number of bytes truncated (>= 0) or -errno.
 */
int64_t sl_segment_recover(struct sl_segment *seg);

/* Append one encoded batch whose offsets are [base_offset, last_offset]. Adds index
 * entries every index_interval_bytes. 0 or -errno (a failed write is rolled back);
 * -EAGAIN, writing nothing, while a fill is in flight (sl_segment_fill_begin) and the
 * batch would reach its start. Loop thread. */
int sl_segment_append(struct sl_segment *seg, const uint8_t *batch, size_t len,
                      int64_t base_offset, int64_t last_offset, int64_t max_timestamp);

/*
 * Zero-fill the .log this many bytes at a time ahead of its last batch (0: never, the
 * default), never past up_to (the size the segment rolls at) unless one append needs
 * it. Appends then overwrite zeros instead of growing the file, so an fdatasync need
 * not commit a size change. The zeros are not part of the segment: reads stop at the
 * last batch, sl_segment_trim and close cut them, recovery drops them (not counted as
 * torn). An append that runs out of zeros writes the next ones itself, on the caller's
 * thread; sl_segment_fill_begin / sl_segment_fill / sl_segment_fill_end write them
 * ahead on another thread instead. Loop thread.
 */
void sl_segment_set_preallocate(struct sl_segment *seg, uint32_t bytes, uint64_t up_to);

/*
 * Plan the next zero-fill ahead, to be written by another thread: when preallocation is
 * on, less than one step is left in zeros ahead of the last batch and the file may
 * still grow (the roll size, the index's limit), *from (the file's length now) and
 * *to (the same end an append's own zero-fill would have) are set and true returned. The
 * segment is then "filling" until sl_segment_fill_end: appends that would reach *from
 * return -EAGAIN, sl_segment_trim returns -EBUSY, and it must not be closed or deleted.
 * false (no fill, nothing marked) otherwise, or while a fill is in flight. Loop thread.
 */
bool sl_segment_fill_begin(struct sl_segment *seg, uint64_t *from, uint64_t *to);

/* Write the zeros sl_segment_fill_begin planned: exactly the I/O of an append's own
 * zero-fill (pwritev, then sync_file_range WRITE; on failure the file is cut back to
 * from), touching no field of seg but its file descriptor. 0 or -errno. Any thread, at
 * most once per sl_segment_fill_begin, concurrently with the loop's appends below from. */
int sl_segment_fill(struct sl_segment *seg, uint64_t from, uint64_t to);

/* The fill is over (status: sl_segment_fill's result, or < 0 if it was not run): on
 * success the zeros become the segment's room ahead. Ends the "filling" state. No-op
 * if no fill is planned. Loop thread, after sl_segment_fill returned. */
void sl_segment_fill_end(struct sl_segment *seg, int status);

/* Cut the zeros written ahead. 1 if the file was cut (its new length wants an
 * fdatasync to be durable), 0 if nothing to cut, -EBUSY while a fill is in flight,
 * -errno. Loop thread. */
int sl_segment_trim(struct sl_segment *seg);

/* fdatasync the .log (indexes are rebuilt on recovery, so they are synced lazily). The
 * first successful sync of a segment this process created also fsyncs its directory,
 * so the new file's entry is durable before any append in it is acknowledged. */
int sl_segment_sync(struct sl_segment *seg);

/* fsync the directory at path, making entries created in it durable. 0 or -errno.
 * Any thread. */
int sl_sync_dir(const char *path);

/* Test hook: the largest .log a segment may grow to. Default UINT32_MAX, the most its
 * index can address; sl_segment_append returns -EOVERFLOW past it. Loop thread. */
extern uint64_t sl_segment_max_bytes;

/* File position of the batch containing `offset`, or of the first batch after it;
 * the segment size if offset is past the end. 0 or -errno. */
int sl_segment_find(struct sl_segment *seg, int64_t offset, uint64_t *pos);

/* First offset in this segment whose batch max timestamp >= ts_ms, or -1 if none. */
int64_t sl_segment_find_time(struct sl_segment *seg, int64_t ts_ms);

/* pread from the .log. Returns bytes read (short at end of file) or -errno. */
ssize_t sl_segment_read(struct sl_segment *seg, uint64_t pos, void *buf, size_t len);

int64_t sl_segment_base_offset(const struct sl_segment *seg);
int64_t sl_segment_next_offset(const struct sl_segment *seg);   /* last offset + 1 */
int64_t sl_segment_max_timestamp(const struct sl_segment *seg); /* -1 if empty */
uint64_t sl_segment_size(const struct sl_segment *seg);         /* .log bytes */
int64_t sl_segment_created_ms(const struct sl_segment *seg);    /* for age-based roll */

/* Trim (sl_segment_trim), close files and free; *seg set to NULL. Never while a fill is
 * in flight (sl_segment_fill_begin .. sl_segment_fill_end). */
void sl_segment_close(struct sl_segment **seg);
/* Close and delete the three files; *seg set to NULL. */
int sl_segment_delete(struct sl_segment **seg);

#endif

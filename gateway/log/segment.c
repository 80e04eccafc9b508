/*
 * One log segment: the .log file of RecordBatch v2 batches plus Kafka's sparse .index
 * and .timeindex. Both indexes are also kept in memory (small arrays) so lookups never
 * read the index files; the files are only appended to, and rewritten whole on rebuild.
 *
 * Index rule (Kafka's, plus the first batch): an entry (batch last offset, batch
 * position) is added for the first batch and then for a batch that starts at least
 * index_interval_bytes after the previous entry's batch. A time index entry (max
 * timestamp so far, last offset of the batch that first reached it) is added alongside
 * whenever the max timestamp grew since the previous time index entry.
 */
#include "gateway/log/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "gateway/log/recordbatch.h"

#define IDX_ENTRY 8
#define TIDX_ENTRY 12
#define SCAN_CHUNK (1u << 20)

uint64_t sl_segment_max_bytes = UINT32_MAX;

struct idx_entry {
    uint32_t rel;   /* last offset of the batch - base offset */
    uint32_t pos;   /* file position of the batch */
};

struct tidx_entry {
    int64_t ts;
    uint32_t rel;
};

struct sl_segment {
    char *dir_path;              /* set while the new file's directory entry is unsynced */
    char *log_path;
    char *idx_path;
    char *tidx_path;
    int log_fd;
    int idx_fd;
    int tidx_fd;
    int64_t base;
    uint32_t interval;
    uint64_t size;               /* end of the last batch: what readers see */
    uint64_t alloc;              /* file length: size plus zeros written ahead of it */
    uint32_t prealloc;           /* zero-fill this much at a time (0: never) */
    uint64_t prealloc_up_to;     /* ... but not past this (the roll size) */
    bool filling;                /* a zero-fill of [fill_from, fill_to) runs on another
                                  * thread (sl_segment_fill_begin .. _end) */
    uint64_t fill_from;
    uint64_t fill_to;
    int64_t next_offset;
    int64_t max_ts;
    int64_t max_ts_offset;       /* last offset of the batch that first reached max_ts */
    int64_t created_ms;
    uint64_t since_index;        /* log bytes since the last index entry's batch */
    struct idx_entry *idx;
    size_t n_idx;
    size_t cap_idx;
    struct tidx_entry *tidx;
    size_t n_tidx;
    size_t cap_tidx;
};

/* ---- small helpers ---- */

static void set_err(char **err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0) {
        *err = NULL;
    }
    va_end(ap);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t pos)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, pos);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        p += n;
        len -= (size_t)n;
        pos += n;
    }
    return 0;
}

static ssize_t pread_all(int fd, void *buf, size_t len, off_t pos)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, p + got, len - got, pos + (off_t)got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Read a whole (small) file; *out malloc'd. 0, -ENOENT or -errno. */
static int read_file(int fd, uint8_t **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    *len = (size_t)st.st_size;
    *out = malloc(*len ? *len : 1);
    if (*out == NULL) {
        return -ENOMEM;
    }
    ssize_t n = pread_all(fd, *out, *len, 0);
    if (n < 0 || (size_t)n != *len) {
        free(*out);
        *out = NULL;
        return n < 0 ? (int)n : -EIO;
    }
    return 0;
}

/* ---- in-memory index ---- */

static int idx_push(struct sl_segment *seg, uint32_t rel, uint32_t pos)
{
    if (seg->n_idx == seg->cap_idx) {
        size_t cap = seg->cap_idx ? seg->cap_idx * 2 : 64;
        struct idx_entry *n = realloc(seg->idx, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        seg->idx = n;
        seg->cap_idx = cap;
    }
    seg->idx[seg->n_idx].rel = rel;
    seg->idx[seg->n_idx].pos = pos;
    seg->n_idx++;
    return 0;
}

static int tidx_push(struct sl_segment *seg, int64_t ts, uint32_t rel)
{
    if (seg->n_tidx == seg->cap_tidx) {
        size_t cap = seg->cap_tidx ? seg->cap_tidx * 2 : 64;
        struct tidx_entry *n = realloc(seg->tidx, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        seg->tidx = n;
        seg->cap_tidx = cap;
    }
    seg->tidx[seg->n_tidx].ts = ts;
    seg->tidx[seg->n_tidx].rel = rel;
    seg->n_tidx++;
    return 0;
}

static void encode_idx(uint8_t *p, const struct idx_entry *e)
{
    put_be32(p, e->rel);
    put_be32(p + 4, e->pos);
}

static void encode_tidx(uint8_t *p, const struct tidx_entry *e)
{
    put_be32(p, (uint32_t)((uint64_t)e->ts >> 32));
    put_be32(p + 4, (uint32_t)e->ts);
    put_be32(p + 8, e->rel);
}

/* Append one entry to an index file; on a failed write, cut the file back to whole
 * entries (a partial entry would make the file "bad" and force a rebuild anyway). */
static void index_file_append(int fd, const uint8_t *entry, size_t len, size_t n_before)
{
    off_t at = (off_t)(n_before * len);
    if (pwrite_all(fd, entry, len, at) != 0) {
        if (ftruncate(fd, at) != 0) {
            /* The next open sees a bad index and rebuilds it. */
        }
    }
}

/*
 * Account for one batch at pos (in memory). When write_files is set, new entries are
 * also appended to the index files. Returns 0 or -ENOMEM / -EOVERFLOW.
 */
static int track_batch(struct sl_segment *seg, uint64_t pos, uint64_t len, int64_t last_offset,
                       int64_t max_ts, bool write_files)
{
    if (pos > UINT32_MAX || last_offset - seg->base > (int64_t)UINT32_MAX) {
        return -EOVERFLOW;
    }
    if (max_ts > seg->max_ts) {
        seg->max_ts = max_ts;
        seg->max_ts_offset = last_offset;
    }
    if (seg->n_idx == 0 || seg->since_index >= seg->interval) {
        uint32_t rel = (uint32_t)(last_offset - seg->base);
        if (idx_push(seg, rel, (uint32_t)pos) != 0) {
            return -ENOMEM;
        }
        if (write_files) {
            uint8_t e[IDX_ENTRY];
            encode_idx(e, &seg->idx[seg->n_idx - 1]);
            index_file_append(seg->idx_fd, e, IDX_ENTRY, seg->n_idx - 1);
        }
        if (seg->max_ts >= 0 && (seg->n_tidx == 0 || seg->max_ts > seg->tidx[seg->n_tidx - 1].ts)) {
            if (tidx_push(seg, seg->max_ts, (uint32_t)(seg->max_ts_offset - seg->base)) != 0) {
                return -ENOMEM;
            }
            if (write_files) {
                uint8_t e[TIDX_ENTRY];
                encode_tidx(e, &seg->tidx[seg->n_tidx - 1]);
                index_file_append(seg->tidx_fd, e, TIDX_ENTRY, seg->n_tidx - 1);
            }
        }
        seg->since_index = 0;
    }
    seg->since_index += len;
    seg->next_offset = last_offset + 1;
    seg->size = pos + len;
    return 0;
}

static void reset_state(struct sl_segment *seg)
{
    seg->n_idx = 0;
    seg->n_tidx = 0;
    seg->size = 0;
    seg->next_offset = seg->base;
    seg->max_ts = -1;
    seg->max_ts_offset = -1;
    seg->since_index = 0;
}

/* Rewrite both index files from the in-memory arrays. */
static int write_index_files(struct sl_segment *seg)
{
    size_t ilen = seg->n_idx * IDX_ENTRY;
    size_t tlen = seg->n_tidx * TIDX_ENTRY;
    uint8_t *buf = malloc((ilen > tlen ? ilen : tlen) + 1);
    int rc;

    if (buf == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < seg->n_idx; i++) {
        encode_idx(buf + i * IDX_ENTRY, &seg->idx[i]);
    }
    rc = ftruncate(seg->idx_fd, 0) != 0 ? -errno : pwrite_all(seg->idx_fd, buf, ilen, 0);
    if (rc == 0) {
        for (size_t i = 0; i < seg->n_tidx; i++) {
            encode_tidx(buf + i * TIDX_ENTRY, &seg->tidx[i]);
        }
        rc = ftruncate(seg->tidx_fd, 0) != 0 ? -errno : pwrite_all(seg->tidx_fd, buf, tlen, 0);
    }
    free(buf);
    return rc;
}

/*
 * Walk the .log from pos 0 in large chunks, rebuilding the in-memory state. With verify,
 * each batch's CRC and offset order are checked and the walk stops at the first bad or
 * torn batch; without, only headers are read. *valid_end gets the end of the last good
 * batch. 0 or -errno.
 */
static int scan_log(struct sl_segment *seg, bool verify, uint64_t file_size, uint64_t *valid_end)
{
    size_t cap = SCAN_CHUNK;
    uint8_t *buf = malloc(cap);
    uint64_t win_pos = 0;   /* file position of buf[0] */
    size_t win_len = 0;
    uint64_t pos = 0;
    int rc = 0;

    if (buf == NULL) {
        return -ENOMEM;
    }
    reset_state(seg);
    while (pos < file_size) {
        /* How many bytes of this batch we need in the window. */
        size_t need = SL_RB_HEADER_SIZE;
        struct sl_rb_batch b;
        for (int pass = 0; pass < 2; pass++) {
            if (pos < win_pos || pos + need > win_pos + win_len) {
                if (need > cap) {
                    uint8_t *nb = realloc(buf, need);
                    if (nb == NULL) {
                        rc = -ENOMEM;
                        goto out;
                    }
                    buf = nb;
                    cap = need;
                }
                uint64_t want = file_size - pos < cap ? file_size - pos : cap;
                ssize_t n = pread_all(seg->log_fd, buf, (size_t)want, (off_t)pos);
                if (n < 0) {
                    rc = (int)n;
                    goto out;
                }
                win_pos = pos;
                win_len = (size_t)n;
            }
            if (pass == 1 || !verify) {
                break;
            }
            /* Verify needs the whole batch: find its length first (bounded by the file). */
            enum sl_rb_status hs =
                sl_rb_parse_header(buf + (pos - win_pos), win_len - (size_t)(pos - win_pos), &b);
            if (hs == SL_RB_SHORT || hs == SL_RB_CORRUPT || pos + b.total_len > file_size) {
                goto out;
            }
            need = b.total_len;
        }
        const uint8_t *p = buf + (pos - win_pos);
        size_t avail = win_len - (size_t)(pos - win_pos);
        enum sl_rb_status st = verify ? sl_rb_parse(p, avail, &b) : sl_rb_parse_header(p, avail, &b);
        if (st == SL_RB_SHORT || st == SL_RB_CORRUPT || pos + b.total_len > file_size) {
            break;
        }
        int64_t last = b.base_offset + b.last_offset_delta;
        if (b.base_offset < seg->next_offset) {
            break; /* offsets must increase, and start at or after the segment base */
        }
        if (track_batch(seg, pos, b.total_len, last, b.max_timestamp, false) != 0) {
            break; /* no longer indexable (past 4 GiB or 2^32 offsets): treat as the end */
        }
        pos += b.total_len;
    }
out:
    *valid_end = seg->size;
    free(buf);
    return rc;
}

/* ---- loading an existing segment's indexes ---- */

static bool load_indexes(struct sl_segment *seg)
{
    uint8_t *ib = NULL;
    uint8_t *tb = NULL;
    size_t il;
    size_t tl;
    bool ok = false;

    if (read_file(seg->idx_fd, &ib, &il) != 0 || read_file(seg->tidx_fd, &tb, &tl) != 0) {
        goto out;
    }
    if (il % IDX_ENTRY != 0 || tl % TIDX_ENTRY != 0 || il == 0) {
        goto out;
    }
    for (size_t i = 0; i < il / IDX_ENTRY; i++) {
        uint32_t rel = get_be32(ib + i * IDX_ENTRY);
        uint32_t pos = get_be32(ib + i * IDX_ENTRY + 4);
        if (pos >= seg->size || (i == 0 && pos != 0) ||
            (i > 0 && (rel <= seg->idx[i - 1].rel || pos <= seg->idx[i - 1].pos))) {
            goto out;
        }
        if (idx_push(seg, rel, pos) != 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < tl / TIDX_ENTRY; i++) {
        const uint8_t *p = tb + i * TIDX_ENTRY;
        int64_t ts = (int64_t)(((uint64_t)get_be32(p) << 32) | get_be32(p + 4));
        uint32_t rel = get_be32(p + 8);
        if (ts < 0 || rel > seg->idx[seg->n_idx - 1].rel ||
            (i > 0 && (ts <= seg->tidx[i - 1].ts || rel < seg->tidx[i - 1].rel))) {
            goto out;
        }
        if (tidx_push(seg, ts, rel) != 0) {
            goto out;
        }
    }
    if (seg->n_tidx > 0) {
        seg->max_ts = seg->tidx[seg->n_tidx - 1].ts;
        seg->max_ts_offset = seg->base + seg->tidx[seg->n_tidx - 1].rel;
    }

    /* Walk the headers after the last entry: it must be a batch ending at its offset. */
    const struct idx_entry *last = &seg->idx[seg->n_idx - 1];
    uint64_t pos = last->pos;
    uint64_t file_size = seg->size;
    bool first = true;
    seg->since_index = 0;
    while (pos < file_size) {
        uint8_t h[SL_RB_HEADER_SIZE];
        struct sl_rb_batch b;
        ssize_t n = pread_all(seg->log_fd, h, sizeof(h), (off_t)pos);
        if (n < 0) {
            goto out;
        }
        enum sl_rb_status st = sl_rb_parse_header(h, (size_t)n, &b);
        if (st == SL_RB_SHORT || st == SL_RB_CORRUPT || pos + b.total_len > file_size) {
            if (first) {
                goto out;
            }
            break; /* a torn tail: sl_segment_recover's business */
        }
        int64_t lo = b.base_offset + b.last_offset_delta;
        if (first && lo != seg->base + last->rel) {
            goto out;
        }
        if (!first && b.base_offset < seg->next_offset) {
            break;
        }
        if (b.max_timestamp > seg->max_ts) {
            seg->max_ts = b.max_timestamp;
            seg->max_ts_offset = lo;
        }
        seg->next_offset = lo + 1;
        seg->since_index += b.total_len;
        pos += b.total_len;
        first = false;
    }
    seg->size = pos;
    ok = true;
out:
    free(ib);
    free(tb);
    return ok;
}

/* ---- preallocation ---- */

/*
 * Where a zero-fill that must cover `need` bytes ends: the next multiple of seg->prealloc
 * above need, but not past the roll size (zeros past it are waste) nor past what the
 * index can address. 0 if that is not past both need and the file's length (alloc).
 */
static uint64_t fill_end(const struct sl_segment *seg, uint64_t need)
{
    uint64_t limit = sl_segment_max_bytes < UINT32_MAX ? sl_segment_max_bytes : UINT32_MAX;
    uint64_t to = (need / seg->prealloc + 1) * seg->prealloc;

    if (seg->prealloc_up_to < limit) {
        limit = seg->prealloc_up_to;
    }
    if (to > limit) {
        to = limit;
    }
    if (to <= need || to <= seg->alloc) {
        return 0;
    }
    return to;
}

/*
 * Write zeros over [from, to) of fd, then start their writeback (sync_file_range WRITE)
 * so the next fdatasync finds them on disk. On failure the file is cut back to from.
 * Pure I/O on fd: any thread. 0 or -errno.
 */
static int zero_fill(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[64 * 1024];
    uint64_t pos = from;

    while (pos < to) {
        struct iovec iov[16];
        int n = 0;
        uint64_t left = to - pos;
        ssize_t w;

        for (; n < 16 && left > 0; n++) {
            iov[n].iov_base = (void *)zeros;
            iov[n].iov_len = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
            left -= iov[n].iov_len;
        }
        w = pwritev(fd, iov, n, (off_t)pos);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int rc = w < 0 ? -errno : -EIO;

            if (ftruncate(fd, (off_t)from) != 0) {
                /* left longer: recovery drops zeros past the last batch */
            }
            return rc;
        }
        pos += (uint64_t)w;
    }
    (void)sync_file_range(fd, (off_t)from, (off_t)(to - from), SYNC_FILE_RANGE_WRITE);
    return 0;
}

/*
 * Make the file at least `need` bytes long by writing zeros past seg->alloc, up to the
 * next multiple of seg->prealloc above need (fill_end). An fdatasync of data written over
 * these zeros then has no file size or extent change to commit through the journal
 * (about half the cost of an appending fsync on ext4 here). On failure the file is cut
 * back and the caller simply appends past the end. On the caller's thread (the loop):
 * the synchronous path, for what sl_segment_fill_begin did not plan ahead.
 */
static void extend(struct sl_segment *seg, uint64_t need)
{
    uint64_t to = fill_end(seg, need);

    if (to != 0 && zero_fill(seg->log_fd, seg->alloc, to) == 0) {
        seg->alloc = to;
    }
}

/* Cut the zeros written ahead of the last batch. 1 if the file was cut, 0 if there was
 * nothing to cut, -errno. */
static int trim(struct sl_segment *seg)
{
    if (seg->filling) {
        return -EBUSY;      /* another thread writes zeros there: cut after it is done */
    }
    if (seg->alloc <= seg->size) {
        return 0;
    }
    if (ftruncate(seg->log_fd, (off_t)seg->size) != 0) {
        return -errno;
    }
    seg->alloc = seg->size;
    return 1;
}

/* Bytes of fd in [from, to) up to and including the last non-zero one, -errno. */
static int64_t nonzero_extent(int fd, uint64_t from, uint64_t to)
{
    uint8_t buf[64 * 1024];
    uint64_t last = from;    /* end of the last non-zero byte seen */

    for (uint64_t pos = from; pos < to;) {
        size_t want = to - pos < sizeof(buf) ? (size_t)(to - pos) : sizeof(buf);
        ssize_t n = pread_all(fd, buf, want, (off_t)pos);

        if (n < 0) {
            return n;
        }
        if (n == 0) {
            break;
        }
        for (ssize_t i = n - 1; i >= 0; i--) {
            if (buf[i] != 0) {
                last = pos + (uint64_t)i + 1;
                break;
            }
        }
        pos += (uint64_t)n;
    }
    return (int64_t)(last - from);
}

/* ---- public API ---- */

static char *seg_path(const char *dir, int64_t base, const char *ext)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%020" PRId64 "%s", dir, base, ext) < 0) {
        return NULL;
    }
    return p;
}

struct sl_segment *sl_segment_open(const char *dir, int64_t base_offset, bool create,
                                   uint32_t index_interval_bytes, char **err)
{
    struct sl_segment *seg;
    struct stat st;
    bool fresh = false;

    if (err != NULL) {
        *err = NULL;
    }
    if (dir == NULL || base_offset < 0) {
        set_err(err, "segment: bad arguments");
        return NULL;
    }
    seg = calloc(1, sizeof(*seg));
    if (seg == NULL) {
        set_err(err, "segment: out of memory");
        return NULL;
    }
    seg->log_fd = seg->idx_fd = seg->tidx_fd = -1;
    seg->base = base_offset;
    seg->interval = index_interval_bytes;
    seg->log_path = seg_path(dir, base_offset, ".log");
    seg->idx_path = seg_path(dir, base_offset, ".index");
    seg->tidx_path = seg_path(dir, base_offset, ".timeindex");
    if (seg->log_path == NULL || seg->idx_path == NULL || seg->tidx_path == NULL) {
        set_err(err, "segment: out of memory");
        goto fail;
    }
    seg->log_fd = open(seg->log_path, O_RDWR | O_CLOEXEC);
    if (seg->log_fd < 0 && errno == ENOENT && create) {
        seg->log_fd = open(seg->log_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        fresh = true;
    }
    if (seg->log_fd < 0) {
        set_err(err, "%s: %s", seg->log_path, strerror(errno));
        goto fail;
    }
    if (fresh && (seg->dir_path = strdup(dir)) == NULL) {
        set_err(err, "segment: out of memory");
        goto fail;
    }
    /* Missing indexes are created (and rebuilt below). */
    seg->idx_fd = open(seg->idx_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (seg->idx_fd < 0) {
        set_err(err, "%s: %s", seg->idx_path, strerror(errno));
        goto fail;
    }
    seg->tidx_fd = open(seg->tidx_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (seg->tidx_fd < 0) {
        set_err(err, "%s: %s", seg->tidx_path, strerror(errno));
        goto fail;
    }
    if (fstat(seg->log_fd, &st) != 0) {
        set_err(err, "%s: %s", seg->log_path, strerror(errno));
        goto fail;
    }
    seg->created_ms = fresh ? now_ms()
                            : (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    reset_state(seg);
    seg->size = (uint64_t)st.st_size;
    seg->alloc = seg->size;     /* load_indexes stops size at the last batch */
    if (seg->size == 0) {
        /* Empty log: any index content is stale. */
        if (ftruncate(seg->idx_fd, 0) != 0 || ftruncate(seg->tidx_fd, 0) != 0) {
            set_err(err, "%s: %s", seg->idx_path, strerror(errno));
            goto fail;
        }
        return seg;
    }
    if (!load_indexes(seg)) {
        uint64_t end;
        int rc = scan_log(seg, false, (uint64_t)st.st_size, &end);
        if (rc == 0) {
            rc = write_index_files(seg);
        }
        if (rc != 0) {
            set_err(err, "%s: rebuilding index: %s", seg->log_path, strerror(-rc));
            goto fail;
        }
    }
    return seg;
fail:
    sl_segment_close(&seg);
    return NULL;
}

int64_t sl_segment_recover(struct sl_segment *seg)
{
    struct stat st;
    uint64_t end;
    int64_t torn = 0;
    int rc;

    if (fstat(seg->log_fd, &st) != 0) {
        return -errno;
    }
    rc = scan_log(seg, true, (uint64_t)st.st_size, &end);
    if (rc != 0) {
        return rc;
    }
    if (end < (uint64_t)st.st_size) {
        /* A crash leaves the zeros written ahead (preallocation) after the last batch:
         * cut with the rest, but only what is not zero counts as torn. */
        torn = nonzero_extent(seg->log_fd, end, (uint64_t)st.st_size);
        if (torn < 0) {
            return torn;
        }
        if (ftruncate(seg->log_fd, (off_t)end) != 0) {
            return -errno;
        }
    }
    seg->alloc = end;
    rc = write_index_files(seg);
    if (rc != 0) {
        return rc;
    }
    return torn;
}

int sl_segment_append(struct sl_segment *seg, const uint8_t *batch, size_t len,
                      int64_t base_offset, int64_t last_offset, int64_t max_timestamp)
{
    if (batch == NULL || len < SL_RB_HEADER_SIZE || base_offset < seg->next_offset ||
        last_offset < base_offset) {
        return -EINVAL;
    }
    if (seg->size + len > sl_segment_max_bytes || seg->size + len > UINT32_MAX ||
        last_offset - seg->base > (int64_t)UINT32_MAX) {
        return -EOVERFLOW; /* the index cannot address it: roll a new segment */
    }
    uint64_t at = seg->size;
    if (seg->filling && at + len > seg->fill_from) {
        return -EAGAIN;     /* another thread is writing zeros there */
    }
    if (seg->prealloc > 0 && at + len > seg->alloc) {
        extend(seg, at + len);
    }
    int rc = pwrite_all(seg->log_fd, batch, len, (off_t)at);
    if (rc != 0) {
        /* Not while a fill runs past it: the next append overwrites the partial batch
         * (it lies below fill_from), or trim cuts it. */
        if (!seg->filling) {
            if (ftruncate(seg->log_fd, (off_t)at) != 0) {
                /* Recovery truncates the partial batch at the next start. */
            }
            seg->alloc = at;
        }
        return rc;
    }
    rc = track_batch(seg, at, len, last_offset, max_timestamp, true);
    if (rc != 0) {
        /* Only -ENOMEM can get here (ranges were checked): undo the write. */
        seg->size = at;
        if (seg->filling) {
            return rc;      /* as above: below fill_from, overwritten or trimmed later */
        }
        seg->alloc = at;
        if (ftruncate(seg->log_fd, (off_t)at) != 0) {
            return -errno;
        }
        return rc;
    }
    if (seg->alloc < seg->size) {
        seg->alloc = seg->size;
    }
    return 0;
}

int sl_segment_sync(struct sl_segment *seg)
{
    int rc;

    if (fdatasync(seg->log_fd) != 0) {
        return -errno;
    }
    if (seg->dir_path == NULL) {
        return 0;
    }
    /* Created by this process: its directory entry (and the indexes') is not durable
     * until the directory is synced. Once per segment; the caller (one fsync job per
     * partition at a time) never runs this concurrently for one segment. */
    rc = sl_sync_dir(seg->dir_path);
    if (rc == 0) {
        free(seg->dir_path);
        seg->dir_path = NULL;
    }
    return rc;
}

int sl_sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    if (fsync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    return rc;
}

/* Read the batch header at pos. 0, or -EIO when the log does not frame there. */
static int header_at(struct sl_segment *seg, uint64_t pos, struct sl_rb_batch *b)
{
    uint8_t h[SL_RB_HEADER_SIZE];
    ssize_t n = pread_all(seg->log_fd, h, sizeof(h), (off_t)pos);
    if (n < 0) {
        return (int)n;
    }
    enum sl_rb_status st = sl_rb_parse_header(h, (size_t)n, b);
    if (st == SL_RB_SHORT || st == SL_RB_CORRUPT || pos + b->total_len > seg->size) {
        return -EIO;
    }
    return 0;
}

int sl_segment_find(struct sl_segment *seg, int64_t offset, uint64_t *pos)
{
    if (offset >= seg->next_offset) {
        *pos = seg->size;
        return 0;
    }
    /* Greatest index entry whose (last) offset <= offset. */
    uint64_t p = 0;
    size_t lo = 0;
    size_t hi = seg->n_idx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg->base + (int64_t)seg->idx[mid].rel <= offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo > 0) {
        p = seg->idx[lo - 1].pos;
    }
    while (p < seg->size) {
        struct sl_rb_batch b;
        int rc = header_at(seg, p, &b);
        if (rc != 0) {
            return rc;
        }
        if (b.base_offset + b.last_offset_delta >= offset) {
            break;
        }
        p += b.total_len;
    }
    *pos = p;
    return 0;
}

int64_t sl_segment_find_time(struct sl_segment *seg, int64_t ts_ms)
{
    if (seg->size == 0 || seg->max_ts < ts_ms) {
        return -1;
    }
    /* Greatest time index entry with ts < ts_ms: every batch before the one it names has a
     * smaller max timestamp, so the scan may start at that batch. */
    uint64_t p = 0;
    size_t lo = 0;
    size_t hi = seg->n_tidx;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg->tidx[mid].ts < ts_ms) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo > 0 && sl_segment_find(seg, seg->base + seg->tidx[lo - 1].rel, &p) != 0) {
        p = 0;
    }
    while (p < seg->size) {
        struct sl_rb_batch b;
        if (header_at(seg, p, &b) != 0) {
            return -1;
        }
        if (b.max_timestamp >= ts_ms) {
            return b.base_offset;
        }
        p += b.total_len;
    }
    return -1;
}

ssize_t sl_segment_read(struct sl_segment *seg, uint64_t pos, void *buf, size_t len)
{
    if (pos >= seg->size) {
        return 0;
    }
    if (len > seg->size - pos) {
        len = (size_t)(seg->size - pos);   /* never the zeros written ahead */
    }
    return pread_all(seg->log_fd, buf, len, (off_t)pos);
}

void sl_segment_set_preallocate(struct sl_segment *seg, uint32_t bytes, uint64_t up_to)
{
    seg->prealloc = bytes;
    seg->prealloc_up_to = up_to;
}

int sl_segment_trim(struct sl_segment *seg)
{
    return trim(seg);
}

bool sl_segment_fill_begin(struct sl_segment *seg, uint64_t *from, uint64_t *to)
{
    uint64_t end;

    if (seg->filling || seg->prealloc == 0 || seg->log_fd < 0 ||
        seg->alloc - seg->size >= seg->prealloc) {
        return false;
    }
    end = fill_end(seg, seg->alloc);
    if (end == 0) {
        return false;       /* at the roll size or the index's limit already */
    }
    seg->filling = true;
    seg->fill_from = seg->alloc;
    seg->fill_to = end;
    *from = seg->fill_from;
    *to = seg->fill_to;
    return true;
}

int sl_segment_fill(struct sl_segment *seg, uint64_t from, uint64_t to)
{
    return zero_fill(seg->log_fd, from, to);   /* log_fd is set at open, kept to close */
}

void sl_segment_fill_end(struct sl_segment *seg, int status)
{
    if (!seg->filling) {
        return;
    }
    seg->filling = false;
    if (status == 0 && seg->fill_to > seg->alloc) {
        seg->alloc = seg->fill_to;
    }
}

int64_t sl_segment_base_offset(const struct sl_segment *seg)
{
    return seg->base;
}

int64_t sl_segment_next_offset(const struct sl_segment *seg)
{
    return seg->next_offset;
}

int64_t sl_segment_max_timestamp(const struct sl_segment *seg)
{
    return seg->max_ts;
}

uint64_t sl_segment_size(const struct sl_segment *seg)
{
    return seg->size;
}

int64_t sl_segment_created_ms(const struct sl_segment *seg)
{
    return seg->created_ms;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

void sl_segment_close(struct sl_segment **segp)
{
    if (segp == NULL || *segp == NULL) {
        return;
    }
    struct sl_segment *seg = *segp;
    if (seg->log_fd >= 0) {
        (void)trim(seg);      /* closed segments end at their last batch, as Kafka's */
    }
    /* Never with a fill in flight (the log drains its jobs before closing segments):
     * trim refuses to cut under it, and the fd would go while another thread writes. */
    close_fd(&seg->log_fd);
    close_fd(&seg->idx_fd);
    close_fd(&seg->tidx_fd);
    free(seg->dir_path);
    free(seg->log_path);
    free(seg->idx_path);
    free(seg->tidx_path);
    free(seg->idx);
    free(seg->tidx);
    free(seg);
    *segp = NULL;
}

int sl_segment_delete(struct sl_segment **segp)
{
    if (segp == NULL || *segp == NULL) {
        return 0;
    }
    struct sl_segment *seg = *segp;
    int rc = 0;
    const char *paths[3] = {seg->log_path, seg->idx_path, seg->tidx_path};

    close_fd(&seg->log_fd);
    close_fd(&seg->idx_fd);
    close_fd(&seg->tidx_fd);
    for (int i = 0; i < 3; i++) {
        if (unlink(paths[i]) != 0 && errno != ENOENT && rc == 0) {
            rc = -errno;
        }
    }
    sl_segment_close(segp);
    return rc;
}

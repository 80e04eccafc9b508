/*
 * One partition: segment discovery and recovery, roll, reads, retention, and the log
 * start offset (DeleteRecords), kept in <dir>/log-start-offset when it is not simply the
 * first segment's base. Loop thread only (see partition.h).
 */
#include "gateway/log/partition.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/log/log_internal.h"

#define READ_CHUNK (256 * 1024)
#define START_FILE "log-start-offset"

static void set_err(char **err, const char *what, const char *dir, int e)
{
    if (err == NULL) {
        return;
    }
    if (asprintf(err, "%s %s: %s", what, dir, strerror(e)) < 0) {
        *err = NULL;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int segs_push(struct sl_partition *p, struct sl_segment *seg)
{
    if (p->n_segs == p->cap_segs) {
        size_t cap = p->cap_segs ? p->cap_segs * 2 : 8;
        struct sl_segment **n = realloc(p->segs, cap * sizeof(*n));

        if (n == NULL) {
            return -ENOMEM;
        }
        p->segs = n;
        p->cap_segs = cap;
    }
    p->segs[p->n_segs++] = seg;
    return 0;
}

/* Base offsets of the .log files in dir, sorted. */
static int list_segments(const char *dir, int64_t **out, size_t *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int64_t *v = NULL;
    size_t n = 0, cap = 0;

    if (d == NULL) {
        return -errno;
    }
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        char *end;
        long long base;

        if (len != 24 || strcmp(name + 20, ".log") != 0) {
            continue;
        }
        errno = 0;
        base = strtoll(name, &end, 10);
        if (errno != 0 || end != name + 20 || base < 0) {
            continue;
        }
        if (n == cap) {
            size_t c = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, c * sizeof(*nv));

            if (nv == NULL) {
                free(v);
                closedir(d);
                return -ENOMEM;
            }
            v = nv;
            cap = c;
        }
        v[n++] = base;
    }
    closedir(d);
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_i64);
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* The log start offset in <dir>/log-start-offset, or -1 if there is none (or it does not
 * parse: the first segment's base is then the start, which is never above it). */
static int64_t start_file_read(const char *dir)
{
    char path[PATH_MAX];
    char buf[32];
    ssize_t n;
    int fd;
    char *end;
    long long v;

    if (snprintf(path, sizeof(path), "%s/" START_FILE, dir) >= (int)sizeof(path)) {
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '\n' || v < 0) {
        return -1;
    }
    return (int64_t)v;
}

/* Make offset the durable log start: write a temp file, fsync, rename over
 * <dir>/log-start-offset, fsync dir. The rename is the commit point. 0 or -errno. */
static int start_file_write(const char *dir, int64_t offset)
{
    char path[PATH_MAX], tmp[PATH_MAX], text[32];
    int len = snprintf(text, sizeof(text), "%" PRId64 "\n", offset);
    int fd, rc = 0;

    if (snprintf(path, sizeof(path), "%s/" START_FILE, dir) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/" START_FILE ".tmp", dir) >= (int)sizeof(tmp)) {
        return -ENAMETOOLONG;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    if (write(fd, text, (size_t)len) != len) {
        rc = errno != 0 ? -errno : -EIO;
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    return sl_sync_dir(dir);
}

/*
 * Delete the oldest segment, never the active one, keeping the fsync job's and the dirty
 * segment's indexes in step. Returns false when it cannot go now: it is the active one,
 * or the fsync thread holds it (a later maintain pass deletes it).
 */
static bool drop_oldest(struct sl_partition *p)
{
    struct sl_segment *old = p->segs[0];

    if (p->n_segs < 2 || (p->job_inflight && p->job_first_idx == 0)) {
        return false;
    }
    sl_log_zread_forget(p->log, p);
    sl_segment_delete(&old);
    memmove(p->segs, p->segs + 1, (p->n_segs - 1) * sizeof(*p->segs));
    p->n_segs--;
    if (p->job_inflight) {
        p->job_first_idx--;
    }
    if (p->dirty_idx > 0) {
        p->dirty_idx--;
    }
    if (p->log_start < sl_segment_base_offset(p->segs[0])) {
        p->log_start = sl_segment_base_offset(p->segs[0]);
    }
    return true;
}

/* Delete the segments lying entirely below the log start (the active one excepted).
 * Returns how many went. */
static unsigned drop_below_start(struct sl_partition *p)
{
    unsigned n = 0;

    while (p->n_segs > 1 && sl_segment_base_offset(p->segs[1]) <= p->log_start &&
           drop_oldest(p)) {
        n++;
    }
    return n;
}

struct sl_partition *sl_partition_open(struct sl_log *log, struct sl_topic *topic,
                                       int32_t id, const char *data_dir,
                                       uint64_t *truncated, char **err)
{
    struct sl_partition *p = calloc(1, sizeof(*p));
    int64_t *bases = NULL;
    size_t n_bases = 0;
    uint32_t iib = topic->cfg.index_interval_bytes ? topic->cfg.index_interval_bytes : 4096;
    int64_t start;
    int rc;

    if (p == NULL) {
        set_err(err, "partition", topic->name, ENOMEM);
        return NULL;
    }
    p->log = log;
    p->topic = topic;
    p->id = id;
    p->dirty_idx = -1;
    p->job.part = p;
    if (asprintf(&p->dir, "%s/%s-%d", data_dir, topic->name, id) < 0) {
        p->dir = NULL;
        set_err(err, "partition", topic->name, ENOMEM);
        goto fail;
    }
    if (mkdir(p->dir, 0755) == 0) {
        rc = sl_sync_dir(data_dir);       /* the new directory's entry */
        if (rc < 0) {
            set_err(err, "sync", data_dir, -rc);
            goto fail;
        }
    } else if (errno != EEXIST) {
        set_err(err, "mkdir", p->dir, errno);
        goto fail;
    }
    rc = list_segments(p->dir, &bases, &n_bases);
    if (rc < 0) {
        set_err(err, "scan", p->dir, -rc);
        goto fail;
    }
    for (size_t i = 0; i < n_bases; i++) {
        struct sl_segment *seg = sl_segment_open(p->dir, bases[i], false, iib, err);

        if (seg == NULL) {
            goto fail;
        }
        if (segs_push(p, seg) < 0) {
            sl_segment_close(&seg);
            set_err(err, "partition", p->dir, ENOMEM);
            goto fail;
        }
    }
    start = start_file_read(p->dir);
    if (p->n_segs == 0) {
        /* empty, or everything was deleted below a recorded start: begin there */
        struct sl_segment *seg = sl_segment_open(p->dir, start > 0 ? start : 0, true, iib, err);

        if (seg == NULL) {
            goto fail;
        }
        if (segs_push(p, seg) < 0) {
            sl_segment_close(&seg);
            set_err(err, "partition", p->dir, ENOMEM);
            goto fail;
        }
    } else {
        /* The active segment and the one before it: a crash soon after a roll can leave
         * unsynced data in both. Damage further back (several rolls between two fsyncs)
         * is stepped over by reads (sl_partition_read). */
        for (size_t i = p->n_segs >= 2 ? p->n_segs - 2 : 0; i < p->n_segs; i++) {
            int64_t cut = sl_segment_recover(p->segs[i]);

            if (cut < 0) {
                set_err(err, "recover", p->dir, (int)-cut);
                goto fail;
            }
            if (truncated != NULL) {
                *truncated += (uint64_t)cut;
            }
        }
    }
    free(bases);
    p->log_start = sl_segment_base_offset(p->segs[0]);
    p->written_offset = sl_segment_next_offset(p->segs[p->n_segs - 1]);
    p->next_offset = p->written_offset;
    p->hw = p->written_offset;
    /* A start recorded by sl_partition_delete_records: segments a crash left below it
     * go now. Never above what the log holds (recovery may have cut a torn tail). */
    if (start > p->written_offset) {
        start = p->written_offset;
    }
    if (start > p->log_start) {
        p->log_start = start;
    }
    (void)drop_below_start(p);
    return p;

fail:
    free(bases);
    sl_partition_close(&p);
    return NULL;
}

void sl_partition_close(struct sl_partition **pp)
{
    struct sl_partition *p = pp ? *pp : NULL;

    if (p == NULL) {
        return;
    }
    if (p->log != NULL) {
        sl_log_zread_forget(p->log, p);  /* another partition may get this address */
    }
    for (size_t i = 0; i < p->n_segs; i++) {
        sl_segment_close(&p->segs[i]);
    }
    free(p->segs);
    free(p->job.segs);
    free(p->ring);
    if (p->open != NULL) {
        sl_rb_builder_free(p->open);
        free(p->open);
    }
    free(p->dir);
    free(p);
    *pp = NULL;
}

int sl_partition_roll(struct sl_partition *p)
{
    uint32_t iib = p->topic->cfg.index_interval_bytes ? p->topic->cfg.index_interval_bytes
                                                      : 4096;
    char *err = NULL;
    struct sl_segment *seg;
    int rc;

    if (sl_segment_size(p->segs[p->n_segs - 1]) == 0) {
        return 0;
    }
    if (sl_partition_filling(p)) {
        p->roll_after_fill = true;          /* finish_job rolls once the zeros are in */
        return 0;
    }
    seg = sl_segment_open(p->dir, p->written_offset, true, iib, &err);
    if (seg == NULL) {
        free(err);
        return -EIO;
    }
    rc = segs_push(p, seg);
    if (rc < 0) {
        sl_segment_delete(&seg);
        return rc;
    }
    /* The old segment ends at its last batch, as Kafka's do. Its new length is synced
     * with the next job, before any append in the new segment is acknowledged. */
    if (sl_segment_trim(p->segs[p->n_segs - 2]) > 0 &&
        (p->dirty_idx < 0 || (size_t)p->dirty_idx > p->n_segs - 2)) {
        p->dirty_idx = (ssize_t)(p->n_segs - 2);
    }
    return rc;
}

/* Whether writing len more bytes rolls the active segment first (by size or age). */
static bool roll_due(const struct sl_partition *p, size_t len)
{
    const struct sl_topic_config *cfg = &p->topic->cfg;
    struct sl_segment *act = p->segs[p->n_segs - 1];
    uint64_t size = sl_segment_size(act);

    return size > 0 && (size + len > cfg->segment_bytes ||
                        (cfg->segment_ms > 0 &&
                         sl_log_now_ms() - sl_segment_created_ms(act) >= cfg->segment_ms));
}

bool sl_partition_write_waits(const struct sl_partition *p, size_t len, int64_t last)
{
    struct sl_segment *act = p->segs[p->n_segs - 1];

    if (!sl_partition_filling(p)) {
        return false;
    }
    return p->roll_after_fill || sl_segment_size(act) + len > p->job.fill_from ||
           last - sl_segment_base_offset(act) > (int64_t)UINT32_MAX || roll_due(p, len);
}

int sl_partition_write(struct sl_partition *p, const uint8_t *batch, size_t len,
                       int64_t base, int64_t last, int64_t max_ts, uint32_t records)
{
    const struct sl_topic_config *cfg = &p->topic->cfg;
    struct sl_segment *act = p->segs[p->n_segs - 1];
    int rc;

    if (sl_partition_write_waits(p, len, last)) {
        return -EAGAIN;
    }
    if (roll_due(p, len)) {
        rc = sl_partition_roll(p);
        if (rc < 0) {
            return rc;
        }
        act = p->segs[p->n_segs - 1];
    }
    sl_segment_set_preallocate(act, cfg->flush != SL_FLUSH_OS ? cfg->preallocate : 0,
                               cfg->segment_bytes);
    rc = sl_segment_append(act, batch, len, base, last, max_ts);
    if (rc == -EOVERFLOW && sl_segment_size(act) > 0) {
        /* the segment's index cannot address more (4 GiB or 2^32 offsets): roll, retry */
        rc = sl_partition_roll(p);
        if (rc < 0) {
            return rc;
        }
        act = p->segs[p->n_segs - 1];
        sl_segment_set_preallocate(act, cfg->flush != SL_FLUSH_OS ? cfg->preallocate : 0,
                               cfg->segment_bytes);
        rc = sl_segment_append(act, batch, len, base, last, max_ts);
    }
    if (rc < 0) {
        return rc;
    }
    p->written_offset = last + 1;
    if (p->dirty_idx < 0) {
        p->dirty_idx = (ssize_t)(p->n_segs - 1);
    }
    p->records_appended += records;
    p->bytes_appended += len;
    return 0;
}

/* Index of the last segment whose base offset <= offset (0 if offset is below all). */
static size_t find_segment(const struct sl_partition *p, int64_t offset)
{
    size_t lo = 0, hi = p->n_segs;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (sl_segment_base_offset(p->segs[mid]) <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int ensure_read_buf(struct sl_log *log, size_t need)
{
    uint8_t *b;

    if (log->read_cap >= need) {
        return 0;
    }
    b = realloc(log->read_buf, need);
    if (b == NULL) {
        return -ENOMEM;
    }
    log->read_buf = b;
    log->read_cap = need;
    return 0;
}

/* The batch at the start of the read buffer does not fit: grow the buffer to hold it. */
static int grow_for_batch(struct sl_log *log, size_t got)
{
    const uint8_t *b = log->read_buf;
    uint32_t blen;
    size_t total;

    if (got < SL_RB_LOG_OVERHEAD) {
        return -EIO;
    }
    blen = (uint32_t)b[8] << 24 | (uint32_t)b[9] << 16 | (uint32_t)b[10] << 8 | b[11];
    total = SL_RB_LOG_OVERHEAD + (size_t)blen;
    if (blen > (256u << 20) || total <= log->read_cap) {
        return -EIO;
    }
    return ensure_read_buf(log, total);
}

/* Point b's records at its decompressed records: from the log's one-batch cache when b
 * is the batch decompressed last (a reader taking one record at a time comes back to
 * the same batch), else decompressed into it. 0; -ENOMEM; -EIO when the records do not
 * decompress (corrupt, beyond SL_RB_MAX_DECOMPRESSED, or an unsupported codec). */
static int read_decompress(struct sl_partition *p, struct sl_rb_batch *b)
{
    struct sl_log *log = p->log;
    struct sl_rb_batch out;
    enum sl_rb_status st;

    if (log->zread_part == p && log->zread_base == b->base_offset &&
        log->zread_crc == b->crc && log->zread_total == b->total_len) {
        b->records = log->zread.data;
        b->records_len = log->zread.len;
        return 0;
    }
    log->zread_part = NULL;              /* zread is about to be overwritten */
    st = sl_rb_decompress(b, &log->zread, &out);
    if (st == SL_RB_NOMEM) {
        return -ENOMEM;
    }
    if (st != SL_RB_OK) {
        return -EIO;
    }
    log->stats.batches_decompressed++;
    log->zread_part = p;
    log->zread_base = b->base_offset;
    log->zread_crc = b->crc;
    log->zread_total = b->total_len;
    *b = out;
    return 0;
}

/* How a segment's readable data ended early. */
enum seg_end {
    SEG_OK = 0,
    SEG_TORN,                            /* a torn or unwritten tail */
    SEG_CORRUPT,                         /* a batch that does not parse or check */
};

int sl_partition_read(struct sl_partition *p, int64_t offset, size_t max_records,
                      size_t max_bytes, sl_record_fn fn, void *arg, int64_t *next_offset)
{
    struct sl_log *log = p->log;
    int64_t hw = p->hw;
    size_t delivered = 0, bytes = 0;
    bool stop = false;
    int err = 0;

    if (offset < p->log_start) {
        offset = p->log_start;
    }
    if (next_offset != NULL) {
        *next_offset = offset;
    }
    if (offset >= hw || max_records == 0) {
        return 0;
    }
    if (ensure_read_buf(log, READ_CHUNK) < 0) {
        return -ENOMEM;
    }
    for (size_t si = find_segment(p, offset); si < p->n_segs && !stop; si++) {
        struct sl_segment *seg = p->segs[si];
        enum seg_end bad = SEG_OK;
        int64_t next_base;
        uint64_t pos;

        if (sl_segment_find(seg, offset, &pos) < 0) {
            bad = SEG_CORRUPT;
        }
        while (!stop && bad == SEG_OK) {
            ssize_t got = sl_segment_read(seg, pos, log->read_buf, log->read_cap);
            size_t off = 0;

            if (got < 0) {
                err = (int)got;
                stop = true;
                break;
            }
            if (got == 0) {
                break;                       /* end of this segment */
            }
            while (off < (size_t)got && !stop) {
                struct sl_rb_batch b;
                enum sl_rb_status st = sl_rb_parse(log->read_buf + off, (size_t)got - off, &b);
                struct sl_rb_iter it;
                struct sl_record rec;
                int r;

                if (st == SL_RB_SHORT) {
                    if (off > 0) {
                        break;               /* cut at the chunk end: re-read from it */
                    }
                    if ((size_t)got < log->read_cap) {
                        bad = SEG_TORN;      /* torn or unwritten tail: end of data */
                        break;
                    }
                    if (grow_for_batch(log, (size_t)got) == 0) {
                        break;               /* bigger than the buffer: re-read */
                    }
                    bad = SEG_CORRUPT;
                    break;
                }
                if (st != SL_RB_OK) {
                    bad = SEG_CORRUPT;
                    break;
                }
                if (b.base_offset >= hw) {
                    stop = true;
                    break;
                }
                if (b.base_offset + b.last_offset_delta < offset) {
                    off += b.total_len;      /* wholly before offset: not even decoded */
                    continue;
                }
                if (sl_rb_codec_of(&b) != SL_RB_CODEC_NONE) {
                    int zr = read_decompress(p, &b);

                    if (zr == -ENOMEM) {
                        err = zr;
                        stop = true;
                        break;
                    }
                    if (zr < 0) {
                        bad = SEG_CORRUPT;
                        break;
                    }
                }
                sl_rb_iter_init(&it, &b);
                while ((r = sl_rb_iter_next(&it, &rec)) == 1) {
                    if (rec.offset < offset) {
                        continue;
                    }
                    if (rec.offset >= hw) {
                        stop = true;
                        break;
                    }
                    delivered++;
                    bytes += (size_t)(rec.key_len > 0 ? rec.key_len : 0) +
                             (size_t)(rec.value_len > 0 ? rec.value_len : 0) +
                             rec.headers_len;
                    offset = rec.offset + 1;
                    if (fn(arg, p->topic->name, p->id, &rec) != 0 ||
                        delivered >= max_records || bytes >= max_bytes) {
                        stop = true;
                        break;
                    }
                }
                if (r < 0) {
                    bad = SEG_CORRUPT;
                    break;
                }
                if (!stop && offset <= b.base_offset + b.last_offset_delta) {
                    offset = b.base_offset + b.last_offset_delta + 1;
                }
                off += b.total_len;
            }
            pos += off;                      /* off == 0: the buffer grew, re-read */
        }
        if (stop) {
            break;
        }
        if (si + 1 == p->n_segs) {
            if (bad == SEG_CORRUPT) {
                err = -EIO;                  /* the active segment was validated at open */
            }
            break;
        }
        /* An older segment whose valid data ends before the next segment's base: the
         * offsets in between are lost (a damaged tail). Step over them, or every
         * sequential reader would stall here. */
        next_base = sl_segment_base_offset(p->segs[si + 1]);
        if (offset < next_base) {
            int64_t to = next_base < hw ? next_base : hw;

            log->stats.read_skipped_offsets += (uint64_t)(to - offset);
            offset = to;
            if (offset >= hw) {
                break;
            }
        }
    }
    if (next_offset != NULL) {
        *next_offset = offset;
    }
    if (delivered == 0 && err != 0) {
        return err;
    }
    return (int)delivered;
}

int64_t sl_partition_offset_for_time(struct sl_partition *p, int64_t ts_ms)
{
    for (size_t i = 0; i < p->n_segs; i++) {
        int64_t off;

        if (sl_segment_max_timestamp(p->segs[i]) < ts_ms) {
            continue;
        }
        off = sl_segment_find_time(p->segs[i], ts_ms);
        if (off < 0) {
            continue;
        }
        if (off < p->log_start) {
            off = p->log_start;
        }
        return off < p->hw ? off : p->hw;
    }
    return p->hw;
}

uint64_t sl_partition_bytes(const struct sl_partition *p)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < p->n_segs; i++) {
        sum += sl_segment_size(p->segs[i]);
    }
    return sum;
}

unsigned sl_partition_maintain(struct sl_partition *p, int64_t now_ms)
{
    const struct sl_topic_config *cfg = &p->topic->cfg;
    struct sl_segment *act = p->segs[p->n_segs - 1];
    uint64_t total;
    unsigned deleted;

    if (cfg->segment_ms > 0 && sl_segment_size(act) > 0 && p->tail == p->written_end &&
        !p->failed &&
        now_ms - sl_segment_created_ms(act) >= cfg->segment_ms) {
        (void)sl_partition_roll(p);
    }
    deleted = drop_below_start(p);           /* left by sl_partition_delete_records */
    total = sl_partition_bytes(p);
    while (p->n_segs > 1) {
        struct sl_segment *old = p->segs[0];
        uint64_t size = sl_segment_size(old);
        int64_t max_ts = sl_segment_max_timestamp(old);
        bool by_bytes = cfg->retention_bytes >= 0 && total > (uint64_t)cfg->retention_bytes;
        bool by_age = cfg->retention_ms >= 0 && max_ts < now_ms - cfg->retention_ms;

        if (!by_bytes && !by_age) {
            break;
        }
        if (sl_segment_base_offset(p->segs[1]) > p->hw) {
            break;                            /* would drop unacknowledged records */
        }
        if (!drop_oldest(p)) {
            break;                            /* the fsync thread holds it */
        }
        total -= size;
        deleted++;
    }
    return deleted;
}

int sl_partition_delete_records(struct sl_partition *p, int64_t offset)
{
    int rc;

    if (offset < 0 || offset > p->hw) {
        return -EINVAL;
    }
    if (offset <= p->log_start) {
        return 0;
    }
    if (p->failed) {
        return -EIO;
    }
    rc = start_file_write(p->dir, offset);
    if (rc < 0) {
        return rc;
    }
    p->log_start = offset;
    for (struct sl_cursor *c = p->cursors; c != NULL; c = c->next) {
        if (c->pos < offset) {
            c->pos = offset;
        }
    }
    /* Everything written lies below the start and is durable: roll, so the old active
     * segment can go too. */
    if (offset == p->written_offset && p->tail == p->head &&
        (p->open == NULL || p->open->count == 0)) {
        (void)sl_partition_roll(p);
    }
    return (int)drop_below_start(p);
}

void sl_partition_describe(const struct sl_partition *p, struct sl_partition_info *out)
{
    memset(out, 0, sizeof(*out));
    out->partition = p->id;
    out->log_start_offset = p->log_start;
    out->high_watermark = p->hw;
    out->bytes = sl_partition_bytes(p);
    out->segments = (uint32_t)p->n_segs;
    out->records_appended = p->records_appended;
    out->bytes_appended = p->bytes_appended;
    out->failed = p->failed;
}

void sl_partition_set_hw(struct sl_partition *p, int64_t hw)
{
    if (hw <= p->hw) {
        return;
    }
    p->hw = hw;
    for (struct sl_cursor *c = p->cursors; c != NULL; c = c->next) {
        if (c->armed && c->pos < hw) {
            sl_cursor_schedule(c);
        }
    }
}

/*
 * Private state of the embedded log, shared by log.c, partition.c, cursor.c and
 * group.c. Not for use outside gateway/log/. Loop thread unless noted.
 */
#ifndef SL_LOG_INTERNAL_H
#define SL_LOG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "gateway/log/log.h"
#include "gateway/log/partition.h"

/* fsync worker threads. At most one fsync per partition is in flight (group commit),
 * so workers only run different partitions' fsyncs side by side. */
#define SL_LOG_FSYNC_THREADS 4

struct sl_group;
struct sl_group_save;

/* The consumer groups' offset saver (group.c): one worker thread (an sl_workq) writes
 * and fsyncs the offsets files the loop thread rendered; at most one save per group in
 * flight. Loop thread. */
struct sl_group_saver {
    struct sl_workq *q;              /* the saver's thread; NULL before start, after stop */
    bool stopping;                   /* sl_groups_stop is draining: no retries */
    bool stopped;                    /* sl_groups_stop ran: commits refused */
    int inflight;                    /* saves submitted, not yet done */
    struct event *save_ev;           /* start the saves of the groups changed this turn */
    struct sl_group *save_list;      /* groups with changes to save (loop thread) */
    char *dir;                       /* <data_dir>/__groups */
    struct sl_group_stats stats;
};

struct sl_topic {
    char *name;
    struct sl_topic_config cfg;
    struct sl_partition **parts;
    int32_t n_parts;
    uint32_t rr;                     /* keyless round-robin */
};

struct sl_cursor {
    struct sl_log *log;              /* NULL once the log closed under it */
    struct sl_partition *part;
    int64_t pos;
    sl_cursor_wake_fn wake;
    void *arg;
    bool armed;
    bool in_wake_list;
    struct sl_cursor *prev, *next;           /* partition's list */
    struct sl_cursor *wprev, *wnext;         /* log's wake list */
};

struct sl_log {
    struct event_base *base;
    char *data_dir;
    struct sl_log_options opts;      /* opts.data_dir not kept */
    bool closing;

    struct sl_topic **topics;        /* sorted by name */
    size_t n_topics;
    size_t cap_topics;

    struct sl_rb_builder builder;    /* direct (os / interval) appends */
    uint8_t *read_buf;
    size_t read_cap;
    /* Compression: zwrite holds a batch compressed on its way to a segment (write_open,
     * append_direct); zread the records of the last compressed batch a read
     * decompressed, kept as a one-entry cache for readers that take one record at a
     * time. Its key: partition (NULL: nothing cached), base offset, CRC and size. */
    struct sl_rb_zbuf zwrite;
    struct sl_rb_zbuf zread;
    const struct sl_partition *zread_part;
    int64_t zread_base;
    uint32_t zread_crc;
    size_t zread_total;
    struct sl_log_stats stats;

    struct sl_workq *fsyncq;         /* fsync workers: partitions sync in parallel */

    struct event *flush_ev;          /* write open batches at the end of the turn */
    struct event *wake_ev;           /* cursor wakes */
    struct event *group_ev;          /* deferred assignment callbacks */
    struct event *retention_ev;
    struct event *interval_ev;
    int64_t interval_ms;             /* period of interval_ev, 0: off */

    struct sl_partition *flush_list;
    struct sl_cursor *wake_head, *wake_tail;
    struct sl_cursor *wake_last;     /* during a wake run: the last cursor of this run */
    bool wake_running;

    /* consumer groups (group.c) */
    struct sl_group **groups;
    size_t n_groups;
    struct sl_group_member *assign_head, *assign_tail;
    struct sl_group_saver gsave;
};

/* Forget the cached decompressed batch if it is p's (p NULL: whoever's): p's segments
 * are going away (retention, DeleteRecords, close). Loop thread. */
static inline void sl_log_zread_forget(struct sl_log *log, const struct sl_partition *p)
{
    if (p == NULL || log->zread_part == p) {
        log->zread_part = NULL;
    }
}

/* log.c */
/* Find, or create with the defaults when auto_create allows. NULL with -errno. */
struct sl_topic *sl_log_get_topic(struct sl_log *log, const char *name, int *errp);
int64_t sl_log_now_ms(void);

/* cursor.c */
void sl_cursor_schedule(struct sl_cursor *cur);
void sl_cursor_wake_event(evutil_socket_t fd, short what, void *arg);
void sl_cursor_detach_all(struct sl_log *log);

/* group.c */
int sl_groups_load(struct sl_log *log, char **err);
void sl_groups_free(struct sl_log *log);
void sl_group_event(evutil_socket_t fd, short what, void *arg);
void sl_groups_topic_changed(struct sl_log *log, const char *topic);
/* Create the saver's event and start its thread (sl_log_open, after sl_groups_load).
 * 0 or -errno; on failure sl_groups_stop still cleans up. */
int sl_groups_start(struct sl_log *log);
/* Write every unsaved change and wait for every save in flight (their callbacks fire),
 * then stop the saver's thread and free its event. Commits are refused afterwards.
 * Safe on a saver never (or partly) started. sl_log_close, before sl_groups_free. */
void sl_groups_stop(struct sl_log *log);

#endif

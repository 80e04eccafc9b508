/*
 * Cursors: a position in one partition, woken (edge-triggered, deferred to the loop)
 * when records become visible past it. Loop thread only.
 */
#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

#include "gateway/log/log.h"
#include "gateway/log/log_internal.h"

static void wake_list_remove(struct sl_log *log, struct sl_cursor *c)
{
    if (!c->in_wake_list) {
        return;
    }
    if (log->wake_running && log->wake_last == c) {
        log->wake_last = c->wprev;
        if (log->wake_last == NULL) {
            log->wake_running = false;       /* nothing of this run is left */
        }
    }
    if (c->wprev != NULL) {
        c->wprev->wnext = c->wnext;
    } else {
        log->wake_head = c->wnext;
    }
    if (c->wnext != NULL) {
        c->wnext->wprev = c->wprev;
    } else {
        log->wake_tail = c->wprev;
    }
    c->wprev = c->wnext = NULL;
    c->in_wake_list = false;
}

void sl_cursor_schedule(struct sl_cursor *c)
{
    struct sl_log *log = c->log;

    c->armed = false;
    if (c->in_wake_list || c->wake == NULL) {
        return;
    }
    c->in_wake_list = true;
    c->wnext = NULL;
    c->wprev = log->wake_tail;
    if (log->wake_tail != NULL) {
        log->wake_tail->wnext = c;
    } else {
        log->wake_head = c;
    }
    log->wake_tail = c;
    event_active(log->wake_ev, EV_WRITE, 0);
}

void sl_cursor_wake_event(evutil_socket_t fd, short what, void *arg)
{
    struct sl_log *log = arg;

    /* Only the cursors queued before this run: those queued by the callbacks wait for
     * the next loop turn (the event is active again). */
    log->wake_last = log->wake_tail;
    log->wake_running = log->wake_last != NULL;
    while (log->wake_running && log->wake_head != NULL) {
        struct sl_cursor *c = log->wake_head;

        if (c == log->wake_last) {
            log->wake_running = false;
        }
        wake_list_remove(log, c);
        c->wake(c, c->arg);              /* may close c or any other cursor */
    }
    log->wake_running = false;
    log->wake_last = NULL;
}

struct sl_cursor *sl_cursor_open(struct sl_log *log, const char *topic, int32_t partition,
                                 struct sl_start start, sl_cursor_wake_fn wake, void *arg,
                                 int *errp)
{
    int err = 0;
    struct sl_topic *t;
    struct sl_partition *p;
    struct sl_cursor *c;

    if (errp != NULL) {
        *errp = 0;
    }
    if (log == NULL || log->closing) {
        err = -EINVAL;
        goto fail;
    }
    t = sl_log_get_topic(log, topic, &err);
    if (t == NULL) {
        goto fail;
    }
    if (partition < 0 || partition >= t->n_parts) {
        err = -EINVAL;
        goto fail;
    }
    p = t->parts[partition];
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    c->log = log;
    c->part = p;
    c->wake = wake;
    c->arg = arg;
    switch (start.kind) {
    case SL_START_EARLIEST:
        c->pos = p->log_start;
        break;
    case SL_START_LATEST:
        c->pos = p->hw;
        break;
    case SL_START_OFFSET:
        c->pos = start.value < p->log_start ? p->log_start
                                            : (start.value > p->hw ? p->hw : start.value);
        break;
    case SL_START_TIME:
        c->pos = sl_partition_offset_for_time(p, start.value);
        break;
    default:
        free(c);
        err = -EINVAL;
        goto fail;
    }
    c->next = p->cursors;
    if (p->cursors != NULL) {
        p->cursors->prev = c;
    }
    p->cursors = c;
    c->armed = true;
    if (c->pos < p->hw) {
        sl_cursor_schedule(c);           /* records already wait: wake once */
    }
    return c;

fail:
    if (errp != NULL) {
        *errp = err;
    }
    return NULL;
}

int sl_cursor_poll(struct sl_cursor *c, size_t max_records, size_t max_bytes,
                   sl_record_fn fn, void *arg)
{
    int64_t next = 0;
    int n;

    if (c == NULL || fn == NULL) {
        return -EINVAL;
    }
    if (c->log == NULL) {
        return -ESHUTDOWN;
    }
    n = sl_partition_read(c->part, c->pos, max_records, max_bytes ? max_bytes : SIZE_MAX,
                          fn, arg, &next);
    if (n < 0) {
        return n;
    }
    c->pos = next;
    if (c->pos >= c->part->hw) {
        c->armed = true;                 /* caught up: wake on the next append */
    }
    return n;
}

int64_t sl_cursor_position(const struct sl_cursor *c)
{
    return c != NULL ? c->pos : -1;
}

void sl_cursor_seek(struct sl_cursor *c, int64_t offset)
{
    if (c == NULL || c->log == NULL) {
        return;
    }
    if (offset < c->part->log_start) {
        offset = c->part->log_start;
    }
    if (offset > c->part->hw) {
        offset = c->part->hw;
    }
    c->pos = offset;
    if (c->pos < c->part->hw && !c->in_wake_list) {
        sl_cursor_schedule(c);
    } else if (c->pos >= c->part->hw) {
        c->armed = true;
    }
}

void sl_cursor_close(struct sl_cursor **cp)
{
    struct sl_cursor *c = cp ? *cp : NULL;

    if (c == NULL) {
        return;
    }
    if (c->log != NULL) {
        struct sl_partition *p = c->part;

        wake_list_remove(c->log, c);
        if (c->prev != NULL) {
            c->prev->next = c->next;
        } else {
            p->cursors = c->next;
        }
        if (c->next != NULL) {
            c->next->prev = c->prev;
        }
    }
    free(c);
    *cp = NULL;
}

void sl_cursor_detach_all(struct sl_log *log)
{
    for (size_t i = 0; i < log->n_topics; i++) {
        struct sl_topic *t = log->topics[i];

        for (int32_t j = 0; j < t->n_parts; j++) {
            struct sl_cursor *c = t->parts[j]->cursors;

            while (c != NULL) {
                struct sl_cursor *next = c->next;

                c->log = NULL;
                c->part = NULL;
                c->in_wake_list = false;
                c->prev = c->next = c->wprev = c->wnext = NULL;
                c = next;
            }
            t->parts[j]->cursors = NULL;
        }
    }
    log->wake_head = log->wake_tail = NULL;
}

/*
 * Consumer groups: members of (group, topic) in join order, range assignment like
 * Kafka's RangeAssignor, assignment callbacks deferred to the loop, committed offsets
 * kept in <data_dir>/__groups/<hex group name> (write temp, fsync, rename, fsync dir).
 * A name longer than HASHED_NAME_OVER bytes would not fit NAME_MAX in hex, so its file
 * is "h" + the hex SHA-256 of the name, and its first line "group <hex name>" keeps
 * the real name.
 *
 * Saves: a commit changes the offsets in memory, bumps the group's generation and puts
 * the group on the saver's list; at the end of the turn (save_ev) the loop renders the
 * group's file into a buffer and submits it to the saver's sl_workq, whose thread
 * writes, fsyncs, renames and fsyncs the directory, then hands the save back to the loop
 * (save_done). One save per group is in flight; commits made meanwhile are written by one
 * follow-up save. Loop thread only, except save_run (the saver thread), which touches
 * nothing but the struct sl_group_save it was handed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "gateway/log/log.h"
#include "gateway/log/log_internal.h"
#include "gateway/logging.h"
#include "gateway/workq.h"

/* The daemon's logger when linked in (see log.c); stderr otherwise. */
#pragma weak sl_logf

#define GROUPS_DIR "__groups"
#define MAX_GROUP_NAME 255
#define HASHED_NAME_OVER 100     /* 2 x 100 hex chars + ".tmp" fits NAME_MAX (255) */
#define HASHED_PREFIX "group "   /* first line of a hashed file: "group <hex name>" */

struct sl_group_topic;

struct sl_group_member {
    struct sl_log *log;                  /* NULL once the log closed */
    struct sl_group_topic *gt;
    sl_group_assign_fn fn;
    void *arg;
    int32_t start;                       /* assignment: [start, start + count) */
    int32_t count;
    bool pending;                        /* on the log's assign list */
    struct sl_group_member *prev, *next;     /* members in join order */
    struct sl_group_member *aprev, *anext;   /* assign list */
};

struct sl_group_topic {
    struct sl_group *group;
    char *topic;
    int64_t *committed;                  /* by partition, -1: none */
    int32_t n_committed;
    struct sl_group_member *head, *tail;
    int n_members;
};

/* A sl_group_commit_many waiting for the save that covers generation gen. */
struct sl_group_waiter {
    uint64_t gen;
    sl_group_commit_cb cb;
    void *arg;
    struct sl_group_waiter *next;
};

/* One group's save, handed to the saver thread while g->saving. */
struct sl_group_save {
    struct sl_log *log;                  /* loop thread only */
    struct sl_group *g;                  /* loop thread only */
    const char *dir;                     /* the saver's, borrowed */
    char *path, *tmp;                    /* the group's file and its temp, kept */
    char *text;                          /* the file's contents, rendered on the loop */
    size_t len;
    uint64_t gen;                        /* the group's generation it holds */
    int status;                          /* 0 or -errno, set by the saver */
    struct sl_work work;                 /* on the saver's queue */
};

struct sl_group {
    char *name;
    struct sl_group_topic **topics;
    size_t n_topics;
    uint64_t gen;                        /* bumped by every commit */
    uint64_t saved_gen;                  /* gen of the last save started; 0 after a
                                          * failed one (all of it to write again) */
    bool saving;                         /* save in flight */
    bool queued;                         /* on gsave.save_list */
    struct sl_group *save_next;
    struct sl_group_waiter *wait_head, *wait_tail;   /* by gen */
    struct sl_group_save save;
};

/* ---- lookup ---- */

static struct sl_group *group_find(struct sl_log *log, const char *name, bool create)
{
    struct sl_group *g;
    struct sl_group **v;

    for (size_t i = 0; i < log->n_groups; i++) {
        if (strcmp(log->groups[i]->name, name) == 0) {
            return log->groups[i];
        }
    }
    if (!create) {
        return NULL;
    }
    v = realloc(log->groups, (log->n_groups + 1) * sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    log->groups = v;
    g = calloc(1, sizeof(*g));
    if (g == NULL || (g->name = strdup(name)) == NULL) {
        free(g);
        return NULL;
    }
    log->groups[log->n_groups++] = g;
    return g;
}

static struct sl_group_topic *gt_find(struct sl_group *g, const char *topic, bool create)
{
    struct sl_group_topic *gt;
    struct sl_group_topic **v;

    for (size_t i = 0; i < g->n_topics; i++) {
        if (strcmp(g->topics[i]->topic, topic) == 0) {
            return g->topics[i];
        }
    }
    if (!create) {
        return NULL;
    }
    v = realloc(g->topics, (g->n_topics + 1) * sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    g->topics = v;
    gt = calloc(1, sizeof(*gt));
    if (gt == NULL || (gt->topic = strdup(topic)) == NULL) {
        free(gt);
        return NULL;
    }
    gt->group = g;
    g->topics[g->n_topics++] = gt;
    return gt;
}

/* Room for partitions 0 .. partition in gt->committed. 0 or -ENOMEM. */
static int gt_reserve(struct sl_group_topic *gt, int32_t partition)
{
    if (partition >= gt->n_committed) {
        int64_t *v = realloc(gt->committed, ((size_t)partition + 1) * sizeof(*v));

        if (v == NULL) {
            return -ENOMEM;
        }
        for (int32_t i = gt->n_committed; i <= partition; i++) {
            v[i] = -1;
        }
        gt->committed = v;
        gt->n_committed = partition + 1;
    }
    return 0;
}

static int gt_set_committed(struct sl_group_topic *gt, int32_t partition, int64_t offset)
{
    int rc = gt_reserve(gt, partition);

    if (rc == 0) {
        gt->committed[partition] = offset;
    }
    return rc;
}

/* ---- assignment ---- */

static void assign_list_remove(struct sl_log *log, struct sl_group_member *m)
{
    if (!m->pending) {
        return;
    }
    if (m->aprev != NULL) {
        m->aprev->anext = m->anext;
    } else {
        log->assign_head = m->anext;
    }
    if (m->anext != NULL) {
        m->anext->aprev = m->aprev;
    } else {
        log->assign_tail = m->aprev;
    }
    m->aprev = m->anext = NULL;
    m->pending = false;
}

static void assign_list_push(struct sl_log *log, struct sl_group_member *m)
{
    if (m->pending) {
        return;
    }
    m->pending = true;
    m->anext = NULL;
    m->aprev = log->assign_tail;
    if (log->assign_tail != NULL) {
        log->assign_tail->anext = m;
    } else {
        log->assign_head = m;
    }
    log->assign_tail = m;
    event_active(log->group_ev, EV_WRITE, 0);
}

/* Range assignment over members in join order; queue callbacks for changed members. */
static void rebalance(struct sl_log *log, struct sl_group_topic *gt)
{
    struct sl_topic *t = sl_log_find_topic(log, gt->topic);
    int32_t parts = t != NULL ? t->n_parts : 0;
    int32_t members = gt->n_members;
    int32_t i = 0;

    for (struct sl_group_member *m = gt->head; m != NULL; m = m->next, i++) {
        int32_t per = parts / members;
        int32_t extra = parts % members;
        int32_t start = i * per + (i < extra ? i : extra);
        int32_t count = per + (i < extra ? 1 : 0);

        if (count == 0) {
            start = 0;
        }
        if (start != m->start || count != m->count) {
            m->start = start;
            m->count = count;
            assign_list_push(log, m);
        }
    }
}

void sl_group_event(evutil_socket_t fd, short what, void *arg)
{
    struct sl_log *log = arg;
    struct sl_group_member *last = log->assign_tail;
    bool done = last == NULL;

    while (!done && log->assign_head != NULL) {
        struct sl_group_member *m = log->assign_head;
        int32_t small[64];
        int32_t *v = small;
        int32_t n = m->count;

        done = m == last;
        assign_list_remove(log, m);
        if (n > (int32_t)(sizeof(small) / sizeof(small[0]))) {
            v = malloc((size_t)n * sizeof(*v));
            if (v == NULL) {
                assign_list_push(log, m);        /* retry on the next turn */
                continue;
            }
        }
        for (int32_t k = 0; k < n; k++) {
            v[k] = m->start + k;
        }
        m->fn(m, m->arg, v, (size_t)n);          /* may leave; m not touched after */
        if (v != small) {
            free(v);
        }
    }
}

struct sl_group_member *sl_group_join(struct sl_log *log, const char *group,
                                      const char *topic, sl_group_assign_fn fn, void *arg)
{
    struct sl_group *g;
    struct sl_group_topic *gt;
    struct sl_group_member *m;
    int err = 0;

    if (log == NULL || group == NULL || fn == NULL || log->closing ||
        strlen(group) == 0 || strlen(group) > MAX_GROUP_NAME) {
        return NULL;
    }
    if (sl_log_get_topic(log, topic, &err) == NULL) {
        return NULL;
    }
    g = group_find(log, group, true);
    gt = g != NULL ? gt_find(g, topic, true) : NULL;
    m = gt != NULL ? calloc(1, sizeof(*m)) : NULL;
    if (m == NULL) {
        return NULL;
    }
    m->log = log;
    m->gt = gt;
    m->fn = fn;
    m->arg = arg;
    m->start = 0;
    m->count = 0;
    m->prev = gt->tail;
    if (gt->tail != NULL) {
        gt->tail->next = m;
    } else {
        gt->head = m;
    }
    gt->tail = m;
    gt->n_members++;
    assign_list_push(log, m);                    /* a new member always hears once */
    rebalance(log, gt);
    return m;
}

void sl_group_leave(struct sl_group_member **mp)
{
    struct sl_group_member *m = mp ? *mp : NULL;

    if (m == NULL) {
        return;
    }
    if (m->log != NULL) {
        struct sl_group_topic *gt = m->gt;

        assign_list_remove(m->log, m);
        if (m->prev != NULL) {
            m->prev->next = m->next;
        } else {
            gt->head = m->next;
        }
        if (m->next != NULL) {
            m->next->prev = m->prev;
        } else {
            gt->tail = m->prev;
        }
        gt->n_members--;
        rebalance(m->log, gt);
    }
    free(m);
    *mp = NULL;
}

void sl_groups_topic_changed(struct sl_log *log, const char *topic)
{
    for (size_t i = 0; i < log->n_groups; i++) {
        struct sl_group_topic *gt = gt_find(log->groups[i], topic, false);

        if (gt != NULL && gt->n_members > 0) {
            rebalance(log, gt);
        }
    }
}

/* ---- durable offsets ---- */

/* prefix + bytes in lowercase hex, malloc'd; NULL without memory. */
static char *hex_of(const char *prefix, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    size_t pl = strlen(prefix);
    char *s = malloc(pl + n * 2 + 1);

    if (s == NULL) {
        return NULL;
    }
    memcpy(s, prefix, pl);
    for (size_t i = 0; i < n; i++) {
        snprintf(s + pl + i * 2, 3, "%02x", b[i]);
    }
    s[pl + n * 2] = '\0';
    return s;
}

static bool name_hashed(const char *group)
{
    return strlen(group) > HASHED_NAME_OVER;
}

/* The file name of a group's offsets (see the top of this file), malloc'd; NULL on
 * failure. */
static char *group_file_name(const char *group)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!name_hashed(group)) {
        return hex_of("", group, strlen(group));
    }
    if (EVP_Digest(group, strlen(group), md, &md_len, EVP_sha256(), NULL) != 1) {
        return NULL;
    }
    return hex_of("h", md, md_len);
}

static int unhex(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);

    if (n == 0 || n % 2 != 0 || n / 2 >= cap) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;

        if (sscanf(s + i * 2, "%2x", &v) != 1 || v == 0) {
            return -EINVAL;
        }
        out[i] = (char)v;
    }
    out[n / 2] = '\0';
    return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static void group_error(const struct sl_group *g, const char *what, int status)
{
    if (sl_logf != NULL) {
        sl_error("[log] group %s: %s: %s", g->name, what, strerror(-status));
    } else {
        fprintf(stderr, "error [log] group %s: %s: %s\n", g->name, what, strerror(-status));
    }
}

/* Render g's offsets file into g->save (text, and the paths the first time). 0 or
 * -ENOMEM. Loop thread. */
static int save_render(struct sl_log *log, struct sl_group *g)
{
    struct sl_group_save *s = &g->save;
    FILE *mem;

    if (s->path == NULL) {
        char *hex = group_file_name(g->name);

        if (hex == NULL || asprintf(&s->path, "%s/%s", log->gsave.dir, hex) < 0) {
            s->path = NULL;
        } else if (asprintf(&s->tmp, "%s.tmp", s->path) < 0) {
            free(s->path);
            s->path = s->tmp = NULL;
        }
        free(hex);
        if (s->path == NULL) {
            return -ENOMEM;
        }
    }
    free(s->text);
    s->text = NULL;
    s->len = 0;
    mem = open_memstream(&s->text, &s->len);
    if (mem == NULL) {
        return -ENOMEM;
    }
    if (name_hashed(g->name)) {
        char *real = hex_of(HASHED_PREFIX, g->name, strlen(g->name));

        if (real == NULL) {
            fclose(mem);
            return -ENOMEM;
        }
        fprintf(mem, "%s\n", real);
        free(real);
    }
    for (size_t i = 0; i < g->n_topics; i++) {
        struct sl_group_topic *gt = g->topics[i];

        for (int32_t p = 0; p < gt->n_committed; p++) {
            if (gt->committed[p] >= 0) {
                fprintf(mem, "%s %" PRId32 " %" PRId64 "\n", gt->topic, p, gt->committed[p]);
            }
        }
    }
    return fclose(mem) == 0 ? 0 : -ENOMEM;
}

/* Write s's text to its temp file, fsync, rename over the group's file, fsync the
 * directory. 0 or -errno. Saver thread (touches s's buffers and paths only). */
static int save_write(const struct sl_group_save *s)
{
    int fd, dfd, rc;

    fd = open(s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    rc = write_all(fd, s->text, s->len);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(s->tmp, s->path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        unlink(s->tmp);
        return rc;
    }
    dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        rc = -errno;
    }
    if (dfd >= 0) {
        close(dfd);
    }
    return rc;
}

static struct sl_group_save *save_of(struct sl_work *w)
{
    return (struct sl_group_save *)((char *)w - offsetof(struct sl_group_save, work));
}

/* The save's work, on the saver thread: write it unless it could not be rendered. */
static void save_run(struct sl_work *w)
{
    struct sl_group_save *s = save_of(w);

    if (s->status == 0) {
        s->status = save_write(s);
    }
}

static void save_done(struct sl_work *w);

/* Start a save of g (not saving): render its file now and hand it to the saver. A save
 * that cannot be rendered goes through the queue all the same (save_run skips it) and
 * completes with -ENOMEM. */
static void save_start(struct sl_log *log, struct sl_group *g)
{
    struct sl_group_saver *gs = &log->gsave;
    struct sl_group_save *s = &g->save;
    int rc = save_render(log, g);

    s->log = log;
    s->g = g;
    s->dir = gs->dir;
    s->gen = g->gen;
    s->status = rc;
    s->work.run = save_run;
    s->work.done = save_done;
    g->saved_gen = g->gen;
    g->saving = true;
    gs->inflight++;
    sl_workq_submit(gs->q, &s->work);
}

/* Have g saved at the end of this turn (or after its save in flight). */
static void save_schedule(struct sl_log *log, struct sl_group *g)
{
    struct sl_group_saver *gs = &log->gsave;

    if (g->queued) {
        return;
    }
    g->queued = true;
    g->save_next = gs->save_list;
    gs->save_list = g;
    event_active(gs->save_ev, EV_WRITE, 0);
}

/* save_ev: start the saves of the groups committed to since their last save. A group
 * whose save is in flight gets its follow-up when that one completes. */
static void save_event(evutil_socket_t fd, short what, void *arg)
{
    struct sl_log *log = arg;
    struct sl_group *g = log->gsave.save_list;

    log->gsave.save_list = NULL;
    while (g != NULL) {
        struct sl_group *next = g->save_next;

        g->save_next = NULL;
        g->queued = false;
        if (!g->saving && g->gen > g->saved_gen) {
            save_start(log, g);
        }
        g = next;
    }
}

/* Fire g's waiters covered by generation gen, in order, with status. */
static void waiters_fire(struct sl_group *g, uint64_t gen, int status)
{
    while (g->wait_head != NULL && g->wait_head->gen <= gen) {
        struct sl_group_waiter *w = g->wait_head;

        g->wait_head = w->next;
        if (g->wait_head == NULL) {
            g->wait_tail = NULL;
        }
        w->cb(w->arg, status);           /* may commit again: g is not saving now */
        free(w);
    }
}

/* Complete a save the saver finished: count, log a failure, fire the waiters it
 * covers, schedule a follow-up for commits made meanwhile. Loop thread. */
static void save_done(struct sl_work *w)
{
    struct sl_group_save *s = save_of(w);
    struct sl_log *log = s->log;
    struct sl_group *g = s->g;
    struct sl_group_saver *gs = &log->gsave;

    gs->inflight--;
    gs->stats.saves++;
    g->saving = false;
    free(s->text);
    s->text = NULL;
    s->len = 0;
    if (s->status < 0) {
        gs->stats.save_errors++;
        group_error(g, "cannot save the committed offsets", s->status);
        if (!gs->stopping) {
            g->saved_gen = 0;            /* written again by the group's next save */
        }
    }
    waiters_fire(g, s->gen, s->status);
    if (g->gen > s->gen && !gs->stopping) {
        save_schedule(log, g);           /* commits made while it was in flight */
    }
}

int sl_groups_start(struct sl_log *log)
{
    struct sl_group_saver *gs = &log->gsave;

    if (asprintf(&gs->dir, "%s/" GROUPS_DIR, log->data_dir) < 0) {
        gs->dir = NULL;
        return -ENOMEM;
    }
    gs->save_ev = event_new(log->base, -1, 0, save_event, log);
    if (gs->save_ev == NULL) {
        return -ENOMEM;
    }
    gs->q = sl_workq_new(log->base, 1, "sl-gsave", NULL);
    if (gs->q == NULL) {
        return -EAGAIN;
    }
    return 0;
}

void sl_groups_stop(struct sl_log *log)
{
    struct sl_group_saver *gs = &log->gsave;

    if (gs->stopped) {
        return;
    }
    gs->stopping = true;
    if (gs->q != NULL) {
        /* save what is unsaved, again after each completion (its waiters may commit) */
        for (;;) {
            gs->save_list = NULL;
            for (size_t i = 0; i < log->n_groups; i++) {
                struct sl_group *g = log->groups[i];

                g->queued = false;
                g->save_next = NULL;
                if (!g->saving && g->gen > g->saved_gen) {
                    save_start(log, g);
                }
            }
            if (gs->inflight == 0) {
                break;
            }
            sl_workq_wait(gs->q);      /* blocks for a save in flight, runs its save_done */
        }
        sl_workq_free(&gs->q);
    }
    gs->stopped = true;
    if (gs->save_ev != NULL) {
        event_free(gs->save_ev);
        gs->save_ev = NULL;
    }
    free(gs->dir);
    gs->dir = NULL;
}

static bool group_name_ok(const char *group)
{
    return group != NULL && group[0] != '\0' && strlen(group) <= MAX_GROUP_NAME;
}

/* Commits are taken while the saver runs (until sl_groups_stop). */
static bool saver_running(const struct sl_log *log)
{
    return log->gsave.q != NULL && !log->gsave.stopped;
}

int sl_group_commit(struct sl_log *log, const char *group, const char *topic,
                    int32_t partition, int64_t offset)
{
    struct sl_group *g;
    struct sl_group_topic *gt;
    int rc;

    if (log == NULL || !group_name_ok(group) || !sl_log_topic_name_valid(topic) ||
        partition < 0 || partition >= 100000 || offset < 0) {
        return -EINVAL;
    }
    if (!saver_running(log)) {
        return -ESHUTDOWN;
    }
    g = group_find(log, group, true);
    gt = g != NULL ? gt_find(g, topic, true) : NULL;
    if (gt == NULL) {
        return -ENOMEM;
    }
    rc = gt_set_committed(gt, partition, offset);
    if (rc < 0) {
        return rc;
    }
    log->gsave.stats.commits++;
    g->gen++;
    save_schedule(log, g);
    return 0;
}

int sl_group_commit_many(struct sl_log *log, const char *group, const char *topic,
                         const struct sl_group_offset *offs, size_t n,
                         sl_group_commit_cb cb, void *arg, size_t *bad)
{
    struct sl_topic *t;
    struct sl_group *g;
    struct sl_group_topic *gt;
    struct sl_group_waiter *w;
    int32_t max_part = 0;

    if (log == NULL || !group_name_ok(group) || offs == NULL || n == 0 || cb == NULL) {
        return -EINVAL;
    }
    if (log->closing || !saver_running(log)) {
        return -ESHUTDOWN;
    }
    t = sl_log_find_topic(log, topic);
    if (t == NULL) {
        if (bad != NULL) {
            *bad = 0;
        }
        return -ENOENT;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t p = offs[i].partition;

        if (p < 0 || p >= t->n_parts) {
            if (bad != NULL) {
                *bad = i;
            }
            return -ENOENT;
        }
        if (offs[i].offset < 0 || offs[i].offset > t->parts[p]->hw) {
            if (bad != NULL) {
                *bad = i;
            }
            return -ERANGE;
        }
        if (p > max_part) {
            max_part = p;
        }
    }
    /* Everything that can fail before anything changes. */
    w = malloc(sizeof(*w));
    g = w != NULL ? group_find(log, group, true) : NULL;
    gt = g != NULL ? gt_find(g, topic, true) : NULL;
    if (gt == NULL || gt_reserve(gt, max_part) < 0) {
        free(w);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        gt->committed[offs[i].partition] = offs[i].offset;
    }
    log->gsave.stats.commits++;
    g->gen++;
    w->gen = g->gen;
    w->cb = cb;
    w->arg = arg;
    w->next = NULL;
    if (g->wait_tail != NULL) {
        g->wait_tail->next = w;
    } else {
        g->wait_head = w;
    }
    g->wait_tail = w;
    save_schedule(log, g);
    return 0;
}

void sl_group_get_stats(struct sl_log *log, struct sl_group_stats *out)
{
    *out = log->gsave.stats;
}

int64_t sl_group_committed(struct sl_log *log, const char *group, const char *topic,
                           int32_t partition)
{
    struct sl_group *g;
    struct sl_group_topic *gt;

    if (log == NULL || group == NULL || topic == NULL) {
        return -1;
    }
    g = group_find(log, group, false);
    gt = g != NULL ? gt_find(g, topic, false) : NULL;
    if (gt == NULL || partition < 0 || partition >= gt->n_committed) {
        return -1;
    }
    return gt->committed[partition];
}

int sl_group_foreach(struct sl_log *log, sl_group_fn fn, void *arg)
{
    for (size_t i = 0; i < log->n_groups; i++) {
        struct sl_group *g = log->groups[i];

        for (size_t j = 0; j < g->n_topics; j++) {
            struct sl_group_topic *gt = g->topics[j];
            struct sl_topic *t = sl_log_find_topic(log, gt->topic);
            int32_t parts = t != NULL ? t->n_parts : 0;

            if (gt->n_committed > parts) {
                parts = gt->n_committed;
            }
            for (int32_t p = 0; p < parts; p++) {
                int64_t c = p < gt->n_committed ? gt->committed[p] : -1;
                int rc;

                if (c < 0 && gt->n_members == 0) {
                    continue;
                }
                rc = fn(arg, g->name, gt->topic, p, c, gt->n_members);
                if (rc != 0) {
                    return rc;
                }
            }
        }
    }
    return 0;
}

/* "h" + 64 lowercase hex digits: the file of a hashed group name. */
static bool hashed_file(const char *file)
{
    if (file[0] != 'h' || strlen(file) != 65) {
        return false;
    }
    for (const char *c = file + 1; *c != '\0'; c++) {
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* The real name from a hashed file's first line; it must hash to the file's name.
 * 0, or -EINVAL (not a valid hashed group file: ignored). */
static int hashed_name(FILE *f, const char *file, char *name, size_t cap)
{
    char line[2 * MAX_GROUP_NAME + sizeof(HASHED_PREFIX) + 2];
    size_t len;
    char *want;
    int rc;

    if (fgets(line, sizeof(line), f) == NULL ||
        strncmp(line, HASHED_PREFIX, strlen(HASHED_PREFIX)) != 0) {
        return -EINVAL;
    }
    len = strlen(line);
    if (len == 0 || line[len - 1] != '\n') {
        return -EINVAL;
    }
    line[len - 1] = '\0';
    if (unhex(line + strlen(HASHED_PREFIX), name, cap) < 0 || !name_hashed(name)) {
        return -EINVAL;
    }
    want = group_file_name(name);
    if (want == NULL) {
        return -ENOMEM;
    }
    rc = strcmp(want, file) == 0 ? 0 : -EINVAL;
    free(want);
    return rc;
}

static int load_file(struct sl_log *log, const char *dir, const char *file)
{
    char name[MAX_GROUP_NAME + 1];
    char *path = NULL;
    char line[512];
    struct sl_group *g;
    bool hashed = hashed_file(file);
    FILE *f;
    int rc = 0;

    if (!hashed && unhex(file, name, sizeof(name)) < 0) {
        return 0;                                /* not ours (or a .tmp): ignore */
    }
    if (asprintf(&path, "%s/%s", dir, file) < 0) {
        return -ENOMEM;
    }
    f = fopen(path, "re");
    free(path);
    if (f == NULL) {
        return -errno;
    }
    if (hashed) {
        rc = hashed_name(f, file, name, sizeof(name));
        if (rc < 0) {
            fclose(f);
            return rc == -ENOMEM ? rc : 0;       /* not ours: ignore */
        }
    }
    g = group_find(log, name, true);
    if (g == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char topic[256];
        int32_t part;
        int64_t off;
        struct sl_group_topic *gt;

        if (sscanf(line, "%255s %" SCNd32 " %" SCNd64, topic, &part, &off) != 3 ||
            part < 0 || part >= 100000 || off < 0 || !sl_log_topic_name_valid(topic)) {
            continue;
        }
        gt = gt_find(g, topic, true);
        rc = gt != NULL ? gt_set_committed(gt, part, off) : -ENOMEM;
    }
    fclose(f);
    return rc;
}

int sl_groups_load(struct sl_log *log, char **err)
{
    char *dir = NULL;
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (asprintf(&dir, "%s/" GROUPS_DIR, log->data_dir) < 0) {
        return -ENOMEM;
    }
    if (mkdir(dir, 0755) == 0) {
        rc = sl_sync_dir(log->data_dir);         /* the new directory's entry */
    } else if (errno != EEXIST) {
        rc = -errno;
    }
    if (rc < 0) {
        goto out;
    }
    d = opendir(dir);
    if (d == NULL) {
        rc = -errno;
        goto out;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            rc = load_file(log, dir, de->d_name);
        }
    }
    closedir(d);
out:
    if (rc < 0 && err != NULL && *err == NULL) {
        if (asprintf(err, "%s: %s", dir, strerror(-rc)) < 0) {
            *err = NULL;
        }
    }
    free(dir);
    return rc;
}

void sl_groups_free(struct sl_log *log)
{
    for (size_t i = 0; i < log->n_groups; i++) {
        struct sl_group *g = log->groups[i];

        for (size_t j = 0; j < g->n_topics; j++) {
            struct sl_group_topic *gt = g->topics[j];

            for (struct sl_group_member *m = gt->head; m != NULL; m = m->next) {
                m->log = NULL;                   /* the holder still frees it by leaving */
                m->gt = NULL;
                m->pending = false;
            }
            free(gt->committed);
            free(gt->topic);
            free(gt);
        }
        waiters_fire(g, UINT64_MAX, -ESHUTDOWN);   /* none after sl_groups_stop */
        free(g->save.text);
        free(g->save.path);
        free(g->save.tmp);
        free(g->topics);
        free(g->name);
        free(g);
    }
    free(log->groups);
    log->groups = NULL;
    log->n_groups = 0;
    log->assign_head = log->assign_tail = NULL;
}

#include "gateway/workq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_workq {
    pthread_mutex_t mu;
    pthread_cond_t cv;               /* work queued, or stop */
    pthread_cond_t done_cv;          /* a work completed (sl_workq_wait) */
    bool stop;                       /* under mu */
    struct sl_work *head, *tail;     /* queued, under mu */
    uint64_t completed;              /* works run and posted back, under mu */
    uint64_t seen;                   /* completed as of the last wait (loop thread) */
    size_t pending;                  /* submitted, done not yet run (loop thread) */
    struct sl_mailbox *mb;           /* completions back to the loop */
    pthread_t *threads;
    int n_threads;
    char name[16];
};

/* The mailbox message of a completed work: its done, on the loop thread. */
static void work_done(struct sl_msg *m)
{
    struct sl_work *w = (struct sl_work *)((char *)m - offsetof(struct sl_work, msg));

    w->q->pending--;
    w->done(w);                      /* may free w */
}

static void *worker_main(void *arg)
{
    struct sl_workq *q = arg;

    pthread_setname_np(pthread_self(), q->name);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct sl_work *w;

        while (q->head == NULL && !q->stop) {
            pthread_cond_wait(&q->cv, &q->mu);
        }
        w = q->head;
        if (w == NULL) {
            break;                   /* stopping, and the queue is drained */
        }
        q->head = w->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        pthread_mutex_unlock(&q->mu);

        w->run(w);
        sl_mailbox_post(q->mb, &w->msg);   /* w is the loop's again: not touched after */

        pthread_mutex_lock(&q->mu);
        q->completed++;
        pthread_cond_broadcast(&q->done_cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

struct sl_workq *sl_workq_new(struct event_base *base, int threads, const char *name,
                              char **err)
{
    struct sl_workq *q;

    if (err != NULL) {
        *err = NULL;
    }
    q = threads > 0 ? calloc(1, sizeof(*q)) : NULL;
    if (q == NULL || (q->threads = calloc((size_t)threads, sizeof(*q->threads))) == NULL ||
        (q->mb = sl_mailbox_new(base)) == NULL) {
        if (err != NULL) {
            *err = strdup(threads > 0 ? "out of memory" : "no threads asked for");
        }
        if (q != NULL) {
            free(q->threads);
            free(q);
        }
        return NULL;
    }
    snprintf(q->name, sizeof(q->name), "%s", name != NULL ? name : "sl-workq");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    pthread_cond_init(&q->done_cv, NULL);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&q->threads[i], NULL, worker_main, q) != 0) {
            break;                   /* fewer workers: the queue still works */
        }
        q->n_threads++;
    }
    if (q->n_threads == 0) {
        if (err != NULL && asprintf(err, "%s: cannot start a worker thread", q->name) < 0) {
            *err = NULL;
        }
        sl_workq_free(&q);
    }
    return q;
}

int sl_workq_threads(const struct sl_workq *q)
{
    return q->n_threads;
}

void sl_workq_submit(struct sl_workq *q, struct sl_work *w)
{
    w->next = NULL;
    w->q = q;
    w->msg.fn = work_done;
    q->pending++;
    pthread_mutex_lock(&q->mu);
    if (q->tail != NULL) {
        q->tail->next = w;
    } else {
        q->head = w;
    }
    q->tail = w;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

int sl_workq_wait(struct sl_workq *q)
{
    for (;;) {
        int n = sl_mailbox_drain(q->mb);

        if (n > 0 || q->pending == 0) {
            return n;
        }
        /* A worker posts before it counts: once completed moves past seen, the
         * drain above (or the next one) finds its work. */
        pthread_mutex_lock(&q->mu);
        while (q->completed == q->seen) {
            pthread_cond_wait(&q->done_cv, &q->mu);
        }
        q->seen = q->completed;
        pthread_mutex_unlock(&q->mu);
    }
}

void sl_workq_free(struct sl_workq **qp)
{
    struct sl_workq *q = qp != NULL ? *qp : NULL;

    if (q == NULL) {
        return;
    }
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->n_threads; i++) {
        pthread_join(q->threads[i], NULL);   /* each drains the queue first */
    }
    sl_mailbox_free(&q->mb);         /* every pending done, in completion order */
    pthread_cond_destroy(&q->done_cv);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->threads);
    free(q);
    *qp = NULL;
}

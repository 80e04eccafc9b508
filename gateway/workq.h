/*
 * A small pool of worker threads fed by the loop thread: each piece of work runs on a
 * worker, then its completion runs back on the loop thread (through a sl_mailbox), in
 * the order the work completed. The work is intrusive (struct sl_work embedded in the
 * caller's job) and the queue never allocates after sl_workq_new. Used for the log's
 * fsyncs, the consumer groups' offset saves and the MQTT password checks.
 */
#ifndef SL_WORKQ_H
#define SL_WORKQ_H

#include "gateway/mailbox.h"

struct event_base;
struct sl_workq;

/* One piece of work: embed it in your own struct and recover that with container_of-style
 * math. The caller owns it throughout; it must stay valid from sl_workq_submit until its
 * done has returned. */
struct sl_work {
    void (*run)(struct sl_work *w);  /* on a worker thread */
    void (*done)(struct sl_work *w); /* on the loop thread, after run, in completion order */
    struct sl_work *next;            /* private: the queue */
    struct sl_workq *q;              /* private: the queue it was submitted to */
    struct sl_msg msg;               /* private: the way back to the loop */
};

/* Start up to `threads` workers (named "<name>" where the platform allows, truncated to
 * 15 bytes) whose completions run on base's loop. evthread_use_pthreads() must have been
 * called before base was created. Fewer workers than asked is not an error as long as
 * one started; with none, NULL and *err (if err) a strdup'd reason the caller frees.
 * name is copied. Loop thread. */
struct sl_workq *sl_workq_new(struct event_base *base, int threads, const char *name,
                              char **err);

/* How many workers started (at least 1). Any thread. */
int sl_workq_threads(const struct sl_workq *q);

/* Queue w (w->run and w->done set; borrowed until its done returns). Loop thread, and
 * not once sl_workq_free has begun. */
void sl_workq_submit(struct sl_workq *q, struct sl_work *w);

/* Run the done of every completed work; if none has completed but some is still queued
 * or running, first block until one completes. Returns how many dones ran (0: nothing
 * outstanding). For a close that must wait for its work before going on. Loop thread. */
int sl_workq_wait(struct sl_workq *q);

/* Stop the queue: the workers run what is queued first, then exit and are joined; then
 * the done of every completed work runs here, in completion order. Frees the queue and
 * sets *q to NULL; NULL or *q NULL is a no-op. Loop thread. */
void sl_workq_free(struct sl_workq **q);

#endif

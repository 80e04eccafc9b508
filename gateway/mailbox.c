#include "gateway/mailbox.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct sl_mailbox {
    pthread_mutex_t lock;
    struct sl_msg *head;
    struct sl_msg *tail;
    struct event *ev;
    atomic_bool running;             /* the loop is running messages */
    atomic_bool queued;              /* head != NULL, readable without the lock */
};

static void mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_mailbox_drain(arg);
}

struct sl_mailbox *sl_mailbox_new(struct event_base *base)
{
    struct sl_mailbox *mb = calloc(1, sizeof(*mb));
    if (mb == NULL) {
        return NULL;
    }
    pthread_mutex_init(&mb->lock, NULL);
    mb->ev = event_new(base, -1, 0, mailbox_cb, mb);
    if (mb->ev == NULL) {
        pthread_mutex_destroy(&mb->lock);
        free(mb);
        return NULL;
    }
    return mb;
}

void sl_mailbox_post_chain(struct sl_mailbox *mb, struct sl_msg *first, struct sl_msg *last)
{
    int was_empty;

    last->next = NULL;
    pthread_mutex_lock(&mb->lock);
    was_empty = mb->head == NULL;
    if (was_empty) {
        mb->head = first;
    } else {
        mb->tail->next = first;
    }
    mb->tail = last;
    atomic_store_explicit(&mb->queued, true, memory_order_relaxed);
    pthread_mutex_unlock(&mb->lock);
    if (was_empty) {
        event_active(mb->ev, EV_READ, 0);
    }
}

void sl_mailbox_post(struct sl_mailbox *mb, struct sl_msg *m)
{
    sl_mailbox_post_chain(mb, m, m);
}

int sl_mailbox_drain(struct sl_mailbox *mb)
{
    struct sl_msg *m;
    int n = 0;

    pthread_mutex_lock(&mb->lock);
    m = mb->head;
    mb->head = mb->tail = NULL;
    atomic_store_explicit(&mb->running, true, memory_order_relaxed);
    atomic_store_explicit(&mb->queued, false, memory_order_relaxed);
    pthread_mutex_unlock(&mb->lock);
    while (m != NULL) {
        struct sl_msg *next = m->next;
        m->fn(m);
        m = next;
        n++;
    }
    atomic_store_explicit(&mb->running, false, memory_order_relaxed);
    return n;
}

bool sl_mailbox_busy(struct sl_mailbox *mb)
{
    return atomic_load_explicit(&mb->running, memory_order_relaxed) ||
           atomic_load_explicit(&mb->queued, memory_order_relaxed);
}

void sl_mailbox_free(struct sl_mailbox **mbp)
{
    struct sl_mailbox *mb = mbp != NULL ? *mbp : NULL;
    if (mb == NULL) {
        return;
    }
    while (sl_mailbox_drain(mb) > 0) {
    }
    event_free(mb->ev);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
    *mbp = NULL;
}

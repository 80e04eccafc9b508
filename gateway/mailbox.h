/*
 * Cross-thread hand-off into an event loop (DESIGN.md principle 4): a FIFO queue of
 * intrusive messages plus one wake-up. Posting from any thread appends the message and,
 * when the queue was empty, activates one event on the owning loop; the loop then runs
 * every queued message's fn in order, on its own thread. One lock, taken only to link
 * or swap the list.
 */
#ifndef SL_MAILBOX_H
#define SL_MAILBOX_H

#include <stdbool.h>

struct event_base;
struct sl_mailbox;

/* A message: embed it in your own struct and recover it with container_of-style math.
 * fn runs on the loop thread and owns the message from then on. */
struct sl_msg {
    struct sl_msg *next;
    void (*fn)(struct sl_msg *m);
};

/* Create a mailbox served by `base`'s loop. evthread_use_pthreads() must have been
 * called before `base` was created. Loop thread. NULL on out of memory. */
struct sl_mailbox *sl_mailbox_new(struct event_base *base);

/* Queue m (ownership passes to the mailbox, then to m->fn). Any thread. */
void sl_mailbox_post(struct sl_mailbox *mb, struct sl_msg *m);

/* Queue the chain first..last (linked through next; last->next is set to NULL) with at
 * most one wake-up: a thread that produces messages in bursts posts each burst at once.
 * Ownership passes as for sl_mailbox_post. Any thread. */
void sl_mailbox_post_chain(struct sl_mailbox *mb, struct sl_msg *first, struct sl_msg *last);

/* Run whatever is queued now, on the calling (loop) thread. Returns how many ran. */
int sl_mailbox_drain(struct sl_mailbox *mb);

/* Whether the loop is running messages or has some queued: a hint (it may change at
 * once) for a producer deciding how much work to do itself before posting. Any thread. */
bool sl_mailbox_busy(struct sl_mailbox *mb);

/* Free the mailbox; messages still queued are run first. Loop thread. *mb set to NULL. */
void sl_mailbox_free(struct sl_mailbox **mb);

#endif

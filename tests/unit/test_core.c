/* Mailbox (cross-thread hand-off into the loop) and the metrics registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/mailbox.h"
#include "gateway/metrics.h"

#define N_THREADS 4
#define N_PER_THREAD 5000

struct counted {
    struct sl_msg msg;              /* first member: the message is the struct */
    int thread;
    int seq;
};

static int ran;
static int last_seq[N_THREADS];
static int out_of_order;
static pthread_t loop_thread;
static int wrong_thread;

static void on_msg(struct sl_msg *m)
{
    struct counted *c = (struct counted *)m;
    if (!pthread_equal(pthread_self(), loop_thread)) {
        wrong_thread++;
    }
    if (c->seq != last_seq[c->thread] + 1) {
        out_of_order++;
    }
    last_seq[c->thread] = c->seq;
    ran++;
    free(c);
}

struct producer {
    struct sl_mailbox *mb;
    int thread;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 1; i <= N_PER_THREAD; i++) {
        struct counted *c = malloc(sizeof(*c));
        c->msg.fn = on_msg;
        c->thread = p->thread;
        c->seq = i;
        sl_mailbox_post(p->mb, &c->msg);
    }
    return NULL;
}

static void test_mailbox_many_threads_fifo(void **state)
{
    (void)state;
    evthread_use_pthreads();
    struct event_base *base = event_base_new();
    struct sl_mailbox *mb = sl_mailbox_new(base);
    pthread_t th[N_THREADS];
    struct producer p[N_THREADS];

    assert_non_null(mb);
    loop_thread = pthread_self();
    for (int t = 0; t < N_THREADS; t++) {
        p[t].mb = mb;
        p[t].thread = t;
        pthread_create(&th[t], NULL, produce, &p[t]);
    }
    /* Run the loop until everything arrived (bounded: 10 s). */
    for (int i = 0; i < 10000 && ran < N_THREADS * N_PER_THREAD; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(ran, N_THREADS * N_PER_THREAD);
    assert_int_equal(out_of_order, 0);           /* FIFO per producer */
    assert_int_equal(wrong_thread, 0);           /* fn runs on the loop thread */
    sl_mailbox_free(&mb);
    assert_null(mb);
    event_base_free(base);
}

static void collector(void *arg, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# TYPE dyn gauge\ndyn %d\n", *(int *)arg);
}

/* Label values are escaped as the text format requires, and cut to fit. */
static void test_metric_label_escape(void **state)
{
    char out[64];
    char small[6];

    (void)state;
    assert_string_equal(sl_metric_label_escape("plain-group.1", out, sizeof(out)),
                        "plain-group.1");
    assert_string_equal(sl_metric_label_escape("a\"b\\c\nd", out, sizeof(out)),
                        "a\\\"b\\\\c\\nd");
    /* never half an escape at the cut */
    assert_string_equal(sl_metric_label_escape("abcd\"e", small, sizeof(small)), "abcd");
    assert_string_equal(sl_metric_label_escape("", out, sizeof(out)), "");
}

static void test_metrics_render(void **state)
{
    (void)state;
    struct evbuffer *out = evbuffer_new();
    int dyn = 7;

    struct sl_metric *a = sl_metric_counter("t_requests_total", "Requests", "code=\"201\"");
    struct sl_metric *b = sl_metric_counter("t_requests_total", "Requests", "code=\"400\"");
    struct sl_metric *g = sl_metric_gauge("t_connections", "Open connections", "");
    assert_ptr_equal(a, sl_metric_counter("t_requests_total", "x", "code=\"201\""));
    assert_ptr_not_equal(a, b);
    sl_metric_add(a, 3);
    sl_metric_incr("t_requests_total", "", "code=\"400\"");
    sl_metric_inc_gauge(g, 5);
    sl_metric_inc_gauge(g, -2);
    assert_int_equal(sl_metric_value(a), 3);
    assert_int_equal(sl_metric_value(b), 1);
    assert_int_equal(sl_metric_value(g), 3);
    sl_metrics_add_collector(collector, &dyn);
    sl_metrics_render(out);
    size_t len = evbuffer_get_length(out);
    char *text = calloc(1, len + 1);
    evbuffer_remove(out, text, len);
    assert_non_null(strstr(text, "# HELP t_requests_total Requests\n"
                                 "# TYPE t_requests_total counter\n"
                                 "t_requests_total{code=\"201\"} 3\n"
                                 "t_requests_total{code=\"400\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE t_connections gauge\nt_connections 3\n"));
    assert_non_null(strstr(text, "dyn 7\n"));
    /* HELP/TYPE once per name */
    assert_ptr_equal(strstr(text, "# TYPE t_requests_total"),
                     strrchr(text, '#') > text ? strstr(text, "# TYPE t_requests_total") : NULL);
    free(text);
    sl_metrics_remove_collector(collector, &dyn);
    evbuffer_drain(out, evbuffer_get_length(out));
    sl_metrics_render(out);
    len = evbuffer_get_length(out);
    text = calloc(1, len + 1);
    evbuffer_remove(out, text, len);
    assert_null(strstr(text, "dyn 7"));
    free(text);
    evbuffer_free(out);
    sl_metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mailbox_many_threads_fifo),
        cmocka_unit_test(test_metrics_render),
        cmocka_unit_test(test_metric_label_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

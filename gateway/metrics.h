/*
 * Prometheus metrics: a process-wide registry of counters and gauges with fixed label
 * sets, plus collectors that add dynamic series (per topic, per group) when /metrics
 * is rendered.
 *
 * Thread affinity: sl_metric_counter / sl_metric_gauge / sl_metric_incr may be called
 * from any thread (creation takes a lock; updates are atomic). Rendering and
 * collectors run on the loop thread.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct sl_metric;

/*
 * The series `name{labels}` (labels: Prometheus label text without braces, e.g.
 * `listener="http",reason="bad_json"`, or "" for none), created at zero on first use.
 * The pointer stays valid until sl_metrics_reset. help is used once per name.
 * NULL only on out of memory (updates through NULL are no-ops).
 */
struct sl_metric *sl_metric_counter(const char *name, const char *help, const char *labels);
struct sl_metric *sl_metric_gauge(const char *name, const char *help, const char *labels);

void sl_metric_add(struct sl_metric *m, uint64_t n);    /* counter += n */
void sl_metric_set(struct sl_metric *m, int64_t v);     /* gauge = v */
void sl_metric_inc_gauge(struct sl_metric *m, int64_t d); /* gauge += d */
int64_t sl_metric_value(const struct sl_metric *m);

/* Look up and add 1 in one call (for rare events such as errors). */
void sl_metric_incr(const char *name, const char *help, const char *labels);

/* A label value for the text format: `\`, `"` and newline escaped as it requires,
 * cut to fit out (cap > 0). Returns out. Any thread. */
const char *sl_metric_label_escape(const char *in, char *out, size_t cap);

/* A collector appends full exposition lines (with # HELP / # TYPE) to out. */
typedef void (*sl_metrics_collect_fn)(void *arg, struct evbuffer *out);
/* Register / remove a collector. Loop thread. */
int sl_metrics_add_collector(sl_metrics_collect_fn fn, void *arg);
void sl_metrics_remove_collector(sl_metrics_collect_fn fn, void *arg);

/* Render every series in the Prometheus text format (0.0.4) into out. Loop thread. */
void sl_metrics_render(struct evbuffer *out);

/* Drop every series and collector (tests, shutdown). No metric pointer survives it. */
void sl_metrics_reset(void);

/* Incremented by every sl_metrics_reset: a module caching metric pointers compares it
 * with the value it cached them under. Any thread. */
unsigned sl_metrics_generation(void);

#endif

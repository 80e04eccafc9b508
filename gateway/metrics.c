#include "gateway/metrics.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct sl_metric {
    struct sl_metric *next;
    char *name;
    char *help;
    char *labels;
    bool gauge;
    _Atomic int64_t value;
};

struct collector {
    sl_metrics_collect_fn fn;
    void *arg;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_metric *registry;       /* insertion order, newest last */
static struct sl_metric **registry_tail = &registry;
static struct collector *collectors;
static size_t n_collectors;
static atomic_uint generation;

unsigned sl_metrics_generation(void)
{
    return atomic_load(&generation);
}

static struct sl_metric *metric_get(const char *name, const char *help, const char *labels,
                                    bool gauge)
{
    struct sl_metric *m;

    if (labels == NULL) {
        labels = "";
    }
    pthread_mutex_lock(&registry_lock);
    for (m = registry; m != NULL; m = m->next) {
        if (strcmp(m->name, name) == 0 && strcmp(m->labels, labels) == 0) {
            pthread_mutex_unlock(&registry_lock);
            return m;
        }
    }
    m = calloc(1, sizeof(*m));
    if (m != NULL) {
        m->name = strdup(name);
        m->help = strdup(help != NULL ? help : "");
        m->labels = strdup(labels);
        m->gauge = gauge;
        if (m->name == NULL || m->help == NULL || m->labels == NULL) {
            free(m->name);
            free(m->help);
            free(m->labels);
            free(m);
            m = NULL;
        } else {
            *registry_tail = m;
            registry_tail = &m->next;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return m;
}

struct sl_metric *sl_metric_counter(const char *name, const char *help, const char *labels)
{
    return metric_get(name, help, labels, false);
}

struct sl_metric *sl_metric_gauge(const char *name, const char *help, const char *labels)
{
    return metric_get(name, help, labels, true);
}

void sl_metric_add(struct sl_metric *m, uint64_t n)
{
    if (m != NULL) {
        atomic_fetch_add_explicit(&m->value, (int64_t)n, memory_order_relaxed);
    }
}

void sl_metric_set(struct sl_metric *m, int64_t v)
{
    if (m != NULL) {
        atomic_store_explicit(&m->value, v, memory_order_relaxed);
    }
}

void sl_metric_inc_gauge(struct sl_metric *m, int64_t d)
{
    if (m != NULL) {
        atomic_fetch_add_explicit(&m->value, d, memory_order_relaxed);
    }
}

int64_t sl_metric_value(const struct sl_metric *m)
{
    return m != NULL ? atomic_load_explicit(&m->value, memory_order_relaxed) : 0;
}

void sl_metric_incr(const char *name, const char *help, const char *labels)
{
    sl_metric_add(sl_metric_counter(name, help, labels), 1);
}

int sl_metrics_add_collector(sl_metrics_collect_fn fn, void *arg)
{
    struct collector *c = realloc(collectors, (n_collectors + 1) * sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    collectors = c;
    collectors[n_collectors].fn = fn;
    collectors[n_collectors].arg = arg;
    n_collectors++;
    return 0;
}

void sl_metrics_remove_collector(sl_metrics_collect_fn fn, void *arg)
{
    for (size_t i = 0; i < n_collectors; i++) {
        if (collectors[i].fn == fn && collectors[i].arg == arg) {
            memmove(&collectors[i], &collectors[i + 1],
                    (n_collectors - i - 1) * sizeof(*collectors));
            n_collectors--;
            return;
        }
    }
}

void sl_metrics_render(struct evbuffer *out)
{
    struct sl_metric *m;
    struct sl_metric *first;

    pthread_mutex_lock(&registry_lock);
    /* Group series by name: HELP/TYPE once, before the first series of a name. */
    for (first = registry; first != NULL; first = first->next) {
        bool seen = false;
        for (m = registry; m != first; m = m->next) {
            if (strcmp(m->name, first->name) == 0) {
                seen = true;
                break;
            }
        }
        if (seen) {
            continue;
        }
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", first->name, first->help,
                            first->name, first->gauge ? "gauge" : "counter");
        for (m = first; m != NULL; m = m->next) {
            if (strcmp(m->name, first->name) != 0) {
                continue;
            }
            if (m->labels[0] != '\0') {
                evbuffer_add_printf(out, "%s{%s} %lld\n", m->name, m->labels,
                                    (long long)atomic_load(&m->value));
            } else {
                evbuffer_add_printf(out, "%s %lld\n", m->name,
                                    (long long)atomic_load(&m->value));
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);
    for (size_t i = 0; i < n_collectors; i++) {
        collectors[i].fn(collectors[i].arg, out);
    }
}

void sl_metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    while (registry != NULL) {
        struct sl_metric *m = registry;
        registry = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m);
    }
    registry_tail = &registry;
    pthread_mutex_unlock(&registry_lock);
    free(collectors);
    collectors = NULL;
    n_collectors = 0;
    atomic_fetch_add(&generation, 1);
}

const char *sl_metric_label_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;

    for (; *in != '\0'; in++) {
        const char *esc = *in == '\\' ? "\\\\"
                        : *in == '"'  ? "\\\""
                        : *in == '\n' ? "\\n"
                                      : NULL;
        size_t n = esc != NULL ? 2 : 1;

        if (o + n >= cap) {
            break;
        }
        if (esc != NULL) {
            out[o++] = esc[0];
            out[o++] = esc[1];
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
    return out;
}

#include "gateway/bridge.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/mqtt/mqtt_bridge.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/metrics.h"

const struct sl_bridge_ops *const sl_bridge_kinds[] = {
    &mqtt_bridge_ops,
    NULL,
};

struct sl_bridges {
    struct sl_bridge **v;
    size_t n;
};

const struct sl_bridge_ops *sl_bridge_kind(const char *type)
{
    for (size_t i = 0; type != NULL && sl_bridge_kinds[i] != NULL; i++) {
        if (strcmp(sl_bridge_kinds[i]->type, type) == 0) {
            return sl_bridge_kinds[i];
        }
    }
    return NULL;
}

const char *sl_bridge_type_name(enum sl_bridge_type type)
{
    switch (type) {
    case SL_BRIDGE_AMQP:
        return "amqp";
    case SL_BRIDGE_MQTT:
        return "mqtt";
    case SL_BRIDGE_KAFKA:
        return "kafka";
    }
    return "?";
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void add_label_value(struct evbuffer *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"') {
            evbuffer_add_printf(out, "\\%c", *s);
        } else if (*s == '\n') {
            evbuffer_add(out, "\\n", 2);
        } else {
            evbuffer_add(out, s, 1);
        }
    }
}

static void collect(void *arg, struct evbuffer *out)
{
    struct sl_bridges *set = arg;
    bool head = false;

    for (size_t i = 0; i < set->n; i++) {
        struct sl_bridge *b = set->v[i];
        struct sl_bridge_status st = {.state = "unknown"};
        if (b->ops->status == NULL) {
            continue;
        }
        b->ops->status(b, &st);
        if (!head) {
            evbuffer_add_printf(out, "# HELP sluice_bridge_info Bridge state and last error "
                                "(always 1).\n# TYPE sluice_bridge_info gauge\n");
            head = true;
        }
        evbuffer_add_printf(out, "sluice_bridge_info{bridge=\"");
        add_label_value(out, b->name);
        evbuffer_add_printf(out, "\",type=\"%s\",state=\"", b->ops->type);
        add_label_value(out, st.state);
        evbuffer_add_printf(out, "\",last_error=\"");
        add_label_value(out, st.last_error);
        evbuffer_add_printf(out, "\"} 1\n");
    }
}

static int start_one(struct sl_bridges *set, struct sl_gateway *gw,
                     const struct sl_bridge_cfg *bc)
{
    const char *tname = sl_bridge_type_name(bc->type);
    const struct sl_bridge_ops *ops = sl_bridge_kind(tname);
    struct sl_bridge *b, **arr;
    char *err = NULL;

    if (ops == NULL) {
        sl_warn("[%s:bridge] type %s configured at line %d, but this build has no %s "
                "bridge yet; ignored", bc->name, tname, bc->line, tname);
        return 0;
    }
    b = calloc(1, sizeof(*b));
    arr = realloc(set->v, (set->n + 1) * sizeof(*arr));
    if (arr != NULL) {
        set->v = arr;
    }
    if (b == NULL || arr == NULL) {
        free(b);
        sl_error("[%s:bridge] out of memory", bc->name);
        return -1;
    }
    b->ops = ops;
    b->gw = gw;
    snprintf(b->name, sizeof(b->name), "%s", bc->name);
    if (ops->create(b, bc, &err) != 0) {
        sl_error("[%s:bridge] %s", b->name, err != NULL ? err : "create failed");
        free(err);
        free(b);
        return -1;
    }
    if (ops->start(b, &err) != 0) {
        sl_error("[%s:bridge] %s", b->name, err != NULL ? err : "start failed");
        free(err);
        ops->destroy(b);
        free(b);
        return -1;
    }
    set->v[set->n++] = b;
    return 0;
}

int sl_bridges_start(struct sl_gateway *gw, const struct sl_config *cfg,
                     struct sl_bridges **out)
{
    struct sl_bridges *set = calloc(1, sizeof(*set));

    *out = NULL;
    if (set == NULL) {
        sl_error("[core] bridges: out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->n_bridges; i++) {
        if (start_one(set, gw, &cfg->bridges[i]) != 0) {
            sl_bridges_stop(set);
            sl_bridges_free(&set);
            return -1;
        }
    }
    if (set->n > 0 && sl_metrics_add_collector(collect, set) != 0) {
        sl_warn("[core] bridges: cannot register the metrics collector");
    }
    *out = set;
    return 0;
}

size_t sl_bridges_count(const struct sl_bridges *set)
{
    return set != NULL ? set->n : 0;
}

void sl_bridges_stop(struct sl_bridges *set)
{
    if (set == NULL) {
        return;
    }
    for (size_t i = set->n; i-- > 0;) {
        set->v[i]->ops->stop(set->v[i]);
    }
}

void sl_bridges_free(struct sl_bridges **setp)
{
    struct sl_bridges *set;

    if (setp == NULL || *setp == NULL) {
        return;
    }
    set = *setp;
    if (set->n > 0) {
        sl_metrics_remove_collector(collect, set);
    }
    for (size_t i = set->n; i-- > 0;) {
        set->v[i]->ops->destroy(set->v[i]);
        free(set->v[i]);
    }
    free(set->v);
    free(set);
    *setp = NULL;
}

int64_t sl_bridge_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, uint32_t rnd)
{
    int64_t d, half;

    if (min_ms < 1) {
        min_ms = 1;
    }
    if (max_ms < min_ms) {
        max_ms = min_ms;
    }
    d = min_ms;
    for (unsigned i = 0; i < attempt && d < max_ms; i++) {
        d = d > max_ms / 2 ? max_ms : d * 2;
    }
    if (d > max_ms) {
        d = max_ms;
    }
    half = d / 2;
    return d - half + (int64_t)(rnd % (uint64_t)(half + 1));
}

bool sl_bridge_record_from(const struct sl_record *rec, const char *name)
{
    struct sl_rb_hdr_iter it;
    struct sl_hdr h;
    size_t hl = sizeof(SL_BRIDGE_HEADER) - 1;
    size_t nl = strlen(name);

    sl_rb_hdr_iter_init(&it, rec);
    while (sl_rb_hdr_iter_next(&it, &h) == 1) {
        if (h.name_len == hl && memcmp(h.name, SL_BRIDGE_HEADER, hl) == 0 &&
            h.value_len >= 0 && (size_t)h.value_len == nl && memcmp(h.value, name, nl) == 0) {
            return true;
        }
    }
    return false;
}

bool sl_bridge_env_from(const struct sl_env *env, const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < env->n_headers; i++) {
        const struct sl_env_hdr *h = &env->headers[i];
        if (strcmp(h->name, SL_BRIDGE_HEADER) == 0 && h->value != NULL &&
            h->value->len == nl && memcmp(h->value->data, name, nl) == 0) {
            return true;
        }
    }
    return false;
}

int sl_bridge_group_name(const char *name, char *out, size_t outsz)
{
    return snprintf(out, outsz, "%s%s", SL_BRIDGE_GROUP_PREFIX, name);
}

/*
 * sluice configuration loader.
 *
 * Two stages: gateway/config_yaml.c turns the text into a small node tree (each node
 * keeps its line), then the option tables here map the tree onto struct sl_config. The
 * tables carry name, type, offset, default, reloadable flag and help; the same tables
 * apply the defaults and print --help-config. Every error is collected as
 * "FILE:LINE: KEY: message" and all of them are returned together, sorted by line.
 * The option table types and the applying functions are declared in
 * gateway/config_opt.h; the listeners, bridges and routes sections (their tables, custom
 * options and checks) live in gateway/config_sections.c.
 */
#include "gateway/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config_opt.h"
#include "gateway/config_sections.h"
#include "gateway/config_yaml.h"

#define MAX_FILE_BYTES (16u << 20)

/* ------------------------------------------------------------ option tables ---- */

static void topics_fn(struct cy_ctx *, const struct opt *, const struct cy_node *, void *,
                      const char *, int);

static const struct enum_name log_levels[] = {
    {"error", SL_LL_ERROR}, {"warn", SL_LL_WARN}, {"info", SL_LL_INFO},
    {"debug", SL_LL_DEBUG}, {NULL, 0},
};
static const struct enum_name backends[] = {
    {"embedded", SL_BACKEND_EMBEDDED}, {"kafka", SL_BACKEND_KAFKA}, {NULL, 0},
};
static const struct enum_name flushes[] = {
    {"always", SL_FLUSH_ALWAYS}, {"interval", SL_FLUSH_INTERVAL}, {"os", SL_FLUSH_OS},
    {NULL, 0},
};
/* Kafka's compression.type without snappy (and without "producer": sluice is the
 * producer of every batch it writes). */
static const struct enum_name compressions[] = {
    {"none", SL_RB_CODEC_NONE}, {"gzip", SL_RB_CODEC_GZIP}, {"lz4", SL_RB_CODEC_LZ4},
    {"zstd", SL_RB_CODEC_ZSTD}, {NULL, 0},
};
static const struct opt gateway_opts[] = {
    {.name = "data_dir", .type = OPT_STRING, FIELD(struct sl_config, data_dir),
     .def = "./data",
     .help = "Directory of the embedded log: one <topic>-<partition>/ directory each."},
    {.name = "log_level", .type = OPT_ENUM, FIELD(struct sl_config, log_level),
     .def = "info", .enums = log_levels, .flags = OPT_RELOAD,
     .help = "Diagnostics written to stderr / the journal."},
    {.name = NULL},
};

static const struct opt log_opts[] = {
    {.name = "backend", .type = OPT_ENUM, FIELD(struct sl_config, backend),
     .def = "embedded", .enums = backends,
     .help = "embedded: segments on local disk; kafka: every topic lives in a Kafka cluster."},
    {.name = "kafka", .type = OPT_KV,
     LIST(struct sl_config, kafka_properties, n_kafka_properties),
     .help = "librdkafka properties (bootstrap.servers, ...), for backend kafka only."},
    {.name = "auto_create", .type = OPT_BOOL, FIELD(struct sl_config, auto_create),
     .def = "true", .flags = OPT_RELOAD,
     .help = "Create an unknown topic on its first publish or subscribe."},
    {.name = "retention_check_interval", .type = OPT_DURATION,
     FIELD(struct sl_config, retention_check_ms), .def = "5m", .min = 1, .max = INT64_MAX,
     .help = "How often retention and age-based segment roll run."},
    {.name = NULL},
};

/* Per-topic settings: the log section's defaults, and each topics.<name> override. */
static const struct opt topic_opts[] = {
    {.name = "partitions", .type = OPT_INT, FIELD(struct sl_topic_config, partitions),
     .def = "1", .min = 1, .max = 100000, .flags = OPT_RELOAD,
     .help = "Partitions of a topic (an existing topic can only grow)."},
    {.name = "flush", .type = OPT_ENUM, FIELD(struct sl_topic_config, flush),
     .def = "always", .enums = flushes, .flags = OPT_RELOAD,
     .help = "always: fsync before the ack (appends share one fsync); interval: fsync "
             "every flush_interval; os: leave it to the page cache."},
    {.name = "flush_interval", .type = OPT_DURATION,
     FIELD(struct sl_topic_config, flush_interval_ms), .def = "1s", .min = 1,
     .max = INT64_MAX, .flags = OPT_RELOAD, .help = "fsync period for flush: interval."},
    {.name = "segment_bytes", .type = OPT_SIZE, FIELD(struct sl_topic_config, segment_bytes),
     .def = "1GiB", .min = 1, .max = SL_SEGMENT_BYTES_MAX, .flags = OPT_RELOAD,
     .help = "Roll the active segment past this size."},
    {.name = "segment_age", .type = OPT_DURATION, FIELD(struct sl_topic_config, segment_ms),
     .def = "7d", .min = 0, .max = INT64_MAX, .flags = OPT_RELOAD,
     .help = "Roll a segment older than this (0: never)."},
    {.name = "retention_bytes", .type = OPT_SIZE,
     FIELD(struct sl_topic_config, retention_bytes), .def = "-1", .min = 0,
     .max = INT64_MAX, .flags = OPT_RELOAD | OPT_UNLIMITED,
     .help = "Per partition: delete the oldest segments beyond this size (-1: unlimited)."},
    {.name = "retention", .type = OPT_DURATION, FIELD(struct sl_topic_config, retention_ms),
     .def = "7d", .min = 0, .max = INT64_MAX, .flags = OPT_RELOAD | OPT_UNLIMITED,
     .help = "Delete segments whose newest record is older than this (-1: unlimited)."},
    {.name = "index_interval_bytes", .type = OPT_SIZE,
     FIELD(struct sl_topic_config, index_interval_bytes), .def = "4KiB", .min = 1,
     .max = UINT32_MAX, .flags = OPT_RELOAD,
     .help = "One .index entry per this many bytes of log."},
    {.name = "preallocate", .type = OPT_SIZE, FIELD(struct sl_topic_config, preallocate),
     .def = "1MiB", .min = 0, .max = 8 * 1024 * 1024, .flags = OPT_RELOAD,
     .help = "flush always/interval: zero-fill the active segment this much at a time "
             "ahead of its end (never past segment_bytes), so an fsync commits no size "
             "change (0: never; always: the fsync worker writes them, but the event loop "
             "still does for a segment's first append and for interval, so keep it small)."},
    {.name = "compression", .type = OPT_ENUM, FIELD(struct sl_topic_config, compression),
     .def = "none", .enums = compressions, .flags = OPT_RELOAD,
     .help = "Compress each batch as it is written (Kafka's compression.type): none, gzip, "
             "lz4 or zstd; on the event loop, and a read decompresses a whole batch. A "
             "change applies to batches written after it."},
    {.name = NULL},
};

static const struct table gateway_tabs[] = {{gateway_opts, 0}, {NULL, 0}};
static const struct table log_tabs[] = {
    {log_opts, 0}, {topic_opts, offsetof(struct sl_config, topic_defaults)}, {NULL, 0},
};
static const struct table topic_elem_tabs[] = {
    {topic_opts, offsetof(struct sl_topic_override, cfg)}, {NULL, 0},
};

/* Sections are applied in this order whatever their order in the file: topics see the
 * final log defaults, routes see every bridge. */
static const struct opt top_opts[] = {
    {.name = "gateway", .type = OPT_SECTION, .sub = gateway_tabs, .help = "The daemon."},
    {.name = "log", .type = OPT_SECTION, .sub = log_tabs,
     .help = "The partitioned log, and the defaults of every topic."},
    {.name = "topics", .type = OPT_CUSTOM, .fn = topics_fn, .sub = topic_elem_tabs,
     .elem = "<topic>", .flags = OPT_RELOAD,
     .help = "Per-topic overrides; each starts from the log section's values."},
    {.name = "listeners", .type = OPT_SECTION, .sub = config_listeners_tabs,
     .help = "Servers; http is on 127.0.0.1:8080 unless disabled."},
    {.name = "bridges", .type = OPT_CUSTOM, .fn = config_bridges_fn, .sub = config_bridge_tabs,
     .elem = "<name>", .help = "Named outbound clients that routes refer to."},
    {.name = "routes", .type = OPT_CUSTOM, .fn = config_routes_fn, .sub = config_route_tabs,
     .elem = "[]", .flags = OPT_RELOAD, .help = "Ingress rules and egress bindings, in order."},
    {.name = NULL},
};
static const struct table top_tabs[] = {{top_opts, 0}, {NULL, 0}};

/* ------------------------------------------------------------ applying ---- */

static void store_int(void *p, size_t size, int64_t v)
{
    if (size == sizeof(int64_t)) {
        memcpy(p, &v, sizeof(v));
    } else if (size == sizeof(int32_t) && v < 0) {
        int32_t x = (int32_t)v;
        memcpy(p, &x, sizeof(x));
    } else if (size == sizeof(uint32_t)) {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, sizeof(x));
    }
}

static const struct opt *find_opt(const struct table *tabs, const char *name, size_t *base_off)
{
    for (const struct table *t = tabs; t->opts; t++) {
        for (const struct opt *o = t->opts; o->name; o++) {
            if (strcmp(o->name, name) == 0) {
                if (base_off) {
                    *base_off = t->base_off;
                }
                return o;
            }
        }
    }
    return NULL;
}

static void enum_list(const struct enum_name *e, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (; e->name && off < size; e++) {
        off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", e->name);
    }
}

const struct enum_name *config_enum_find(const struct enum_name *e, const char *s)
{
    for (; e->name; e++) {
        if (strcmp(e->name, s) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Set a scalar-valued option from text; 0, or -1 with the error recorded. */
static int set_scalar(struct cy_ctx *c, const struct opt *o, const char *s, void *base,
                      const char *path, int line)
{
    void *p = (char *)base + o->off;
    char list[160];
    switch (o->type) {
    case OPT_STRING: {
        if (!*s) {
            cy_err(c, line, path, "must not be empty");
            return -1;
        }
        if (o->enums && !config_enum_find(o->enums, s)) {
            enum_list(o->enums, list, sizeof(list));
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not one of: %s", s, list);
            return -1;
        }
        const char *why = o->check ? o->check(s) : NULL;
        if (why) {
            cy_err(c, line, path, "'" CY_VAL_FMT "': %s", s, why);
            return -1;
        }
        char *d = cy_strdup(c, s);
        if (!d) {
            return -1;
        }
        free(*(char **)p);
        *(char **)p = d;
        return 0;
    }
    case OPT_BOOL: {
        bool b;
        if (cy_parse_bool(s, &b) != 0) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not a boolean (true or false)", s);
            return -1;
        }
        *(bool *)p = b;
        return 0;
    }
    case OPT_INT: {
        int64_t v;
        if (cy_parse_int(s, &v) != 0 || v < o->min || v > o->max) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not an integer from %" PRId64 " to %" PRId64,
                   s, o->min, o->max);
            return -1;
        }
        store_int(p, o->size, v);
        return 0;
    }
    case OPT_SIZE: {
        uint64_t v;
        if ((o->flags & OPT_UNLIMITED) && cy_is_unlimited(s)) {
            store_int(p, o->size, -1);
            return 0;
        }
        if (sl_parse_size(s, &v) != 0) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not a size (like 4096, 64KiB, 128MiB, "
                   "1GB)%s", s, (o->flags & OPT_UNLIMITED) ? " or -1 / unlimited" : "");
            return -1;
        }
        if (v < (uint64_t)o->min || v > (uint64_t)o->max) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is out of range (%" PRId64 " to %" PRId64
                   " bytes)", s, o->min, o->max);
            return -1;
        }
        store_int(p, o->size, (int64_t)v);
        return 0;
    }
    case OPT_DURATION: {
        int64_t v;
        if ((o->flags & OPT_UNLIMITED) && cy_is_unlimited(s)) {
            store_int(p, o->size, -1);
            return 0;
        }
        if (sl_parse_duration_ms(s, &v) != 0) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not a duration (like 50ms, 30s, 5m, 12h, "
                   "7d, 2w; a bare number is milliseconds)%s", s,
                   (o->flags & OPT_UNLIMITED) ? " or -1 / unlimited" : "");
            return -1;
        }
        if (v < o->min || v > o->max) {
            cy_err(c, line, path, "'" CY_VAL_FMT "' is out of range (at least %" PRId64 " ms)",
                   s, o->min);
            return -1;
        }
        store_int(p, o->size, v);
        return 0;
    }
    case OPT_ENUM: {
        const struct enum_name *e = config_enum_find(o->enums, s);
        if (!e) {
            enum_list(o->enums, list, sizeof(list));
            cy_err(c, line, path, "'" CY_VAL_FMT "' is not one of: %s", s, list);
            return -1;
        }
        store_int(p, o->size, e->value);
        return 0;
    }
    default:
        return -1;
    }
}

const char *config_kind_name(const struct cy_node *v)
{
    switch (v->kind) {
    case CY_MAP:
        return "a mapping";
    case CY_SEQ:
        return "a list";
    case CY_ALIAS:
        return "an alias";
    default:
        return "a value";
    }
}

int config_node_line(const struct cy_node *v, int keyline)
{
    return (!v || cy_is_null(v)) && keyline > 0 ? keyline : (v ? v->line : keyline);
}

/* The text of a non-null scalar, or NULL with the error recorded. */
const char *config_expect_scalar(struct cy_ctx *c, const struct cy_node *v, const char *path,
                                 int keyline)
{
    int line = config_node_line(v, keyline);
    if (v->kind == CY_ALIAS) {
        cy_err(c, line, path, "aliases (*" CY_VAL_FMT ") are not supported", v->str);
        return NULL;
    }
    if (v->kind != CY_SCALAR) {
        cy_err(c, line, path, "expected a single value, not %s", config_kind_name(v));
        return NULL;
    }
    if (cy_is_null(v)) {
        cy_err(c, line, path, "missing value");
        return NULL;
    }
    return v->str;
}

bool config_expect_map(struct cy_ctx *c, const struct cy_node *v, const char *path, int keyline)
{
    if (v->kind == CY_MAP) {
        return true;
    }
    if (v->kind == CY_ALIAS) {
        cy_err(c, config_node_line(v, keyline), path, "aliases (*" CY_VAL_FMT ") are not supported",
               v->str);
    } else {
        cy_err(c, config_node_line(v, keyline), path, "expected a mapping, not %s",
               config_kind_name(v));
    }
    return false;
}

struct keyref {
    const char *s;
    int line;
    size_t idx;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int r = strcmp(x->s, y->s);
    if (r) {
        return r;
    }
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

/* Mapping keys must be scalars and unique. */
void config_check_keys(struct cy_ctx *c, const struct cy_node *m, const char *path)
{
    size_t n = m->n / 2, k = 0;
    struct keyref *refs = cy_calloc(c, n, sizeof(*refs));
    if (!refs) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cy_node *key = m->kids[2 * i];
        if (key->kind != CY_SCALAR) {
            cy_err(c, key->line, path, "a mapping key must be a plain value, not %s",
                   config_kind_name(key));
            continue;
        }
        refs[k].s = key->str;
        refs[k].line = key->line;
        refs[k].idx = i;
        k++;
    }
    qsort(refs, k, sizeof(*refs), keyref_cmp);
    char kp[CY_PATH_LEN];
    for (size_t i = 1; i < k; i++) {
        size_t first = i - 1;
        while (i < k && strcmp(refs[i].s, refs[first].s) == 0) {
            cy_join_path(kp, path, refs[i].s);
            cy_err(c, refs[i].line, kp, "duplicate key (first at line %d)", refs[first].line);
            i++;
        }
    }
    free(refs);
}

static void free_kv(struct sl_kv *kv, size_t n)
{
    for (size_t i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void set_kv(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *base,
                   const char *path, int keyline)
{
    struct sl_kv **pv = (struct sl_kv **)(void *)((char *)base + o->off);
    size_t *pn = (size_t *)(void *)((char *)base + o->count_off);
    if (cy_is_null(v) || !config_expect_map(c, v, path, keyline)) {
        return;
    }
    config_check_keys(c, v, path);
    struct sl_kv *kv = cy_calloc(c, v->n / 2, sizeof(*kv));
    if (!kv) {
        return;
    }
    free_kv(*pv, *pn);
    *pv = kv;
    *pn = 0;
    char kp[CY_PATH_LEN];
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const struct cy_node *k = v->kids[i], *val = v->kids[i + 1];
        if (k->kind != CY_SCALAR) {
            continue;
        }
        cy_join_path(kp, path, k->str);
        const char *s = config_expect_scalar(c, val, kp, k->line);
        if (!s) {
            continue;
        }
        const char *why = o->check ? o->check(s) : NULL;
        if (why) {
            /* not echoed: a value checked here may be a secret (a password hash) */
            cy_err(c, config_node_line(val, k->line), kp, "%s", why);
            continue;
        }
        kv[*pn].key = cy_strdup(c, k->str);
        kv[*pn].value = cy_strdup(c, s);
        kv[*pn].line = k->line;
        (*pn)++;
    }
}

static void strlist_add(struct cy_ctx *c, const struct opt *o, const struct cy_node *item,
                        void *base, const char *path, int keyline)
{
    char ***pv = (char ***)(void *)((char *)base + o->off);
    size_t *pn = (size_t *)(void *)((char *)base + o->count_off);
    const char *s = config_expect_scalar(c, item, path, keyline);
    if (!s) {
        return;
    }
    int line = config_node_line(item, keyline);
    if (!*s) {
        cy_err(c, line, path, "empty value");
        return;
    }
    const char *why = o->check ? o->check(s) : NULL;
    if (why) {
        cy_err(c, line, path, "'" CY_VAL_FMT "': %s", s, why);
        return;
    }
    char **nv = realloc(*pv, (*pn + 1) * sizeof(*nv));
    if (!nv) {
        c->oom = true;
        return;
    }
    *pv = nv;
    nv[*pn] = cy_strdup(c, s);
    if (nv[*pn]) {
        (*pn)++;
    }
}

static void set_strlist(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *base,
                        const char *path, int keyline)
{
    if (v->kind != CY_SEQ || (o->flags & OPT_SINGLE)) {
        strlist_add(c, o, v, base, path, keyline);
        return;
    }
    char ip[CY_PATH_LEN];
    for (size_t i = 0; i < v->n; i++) {
        snprintf(ip, sizeof(ip), "%.*s[%zu]", CY_PATH_LEN - 30, path, i);
        strlist_add(c, o, v->kids[i], base, ip, v->kids[i]->line);
    }
}

static void apply_opt(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *base,
                      const char *path, int keyline)
{
    switch (o->type) {
    case OPT_SECTION:
        config_apply_map(c, v, o->sub, base, path, keyline);
        return;
    case OPT_CUSTOM:
        o->fn(c, o, v, (char *)base + o->off, path, keyline);
        return;
    case OPT_KV:
        set_kv(c, o, v, base, path, keyline);
        return;
    case OPT_STRLIST:
        set_strlist(c, o, v, base, path, keyline);
        return;
    default: {
        const char *s = config_expect_scalar(c, v, path, keyline);
        if (s) {
            set_scalar(c, o, s, base, path, config_node_line(v, keyline));
        }
        return;
    }
    }
}

/* Apply mapping m to base through tabs: unknown keys and duplicates are errors; options
 * are applied in table order; a null m is an empty mapping. */
void config_apply_map(struct cy_ctx *c, const struct cy_node *m, const struct table *tabs,
                      void *base, const char *path, int keyline)
{
    char kp[CY_PATH_LEN];
    if (cy_is_null(m) || !config_expect_map(c, m, path, keyline)) {
        m = NULL;
    } else {
        config_check_keys(c, m, path);
        for (size_t i = 0; i + 1 < m->n; i += 2) {
            const struct cy_node *k = m->kids[i];
            if (k->kind == CY_SCALAR && !find_opt(tabs, k->str, NULL)) {
                cy_join_path(kp, path, k->str);
                cy_err(c, k->line, kp, "unknown key");
            }
        }
    }
    for (const struct table *t = tabs; t->opts; t++) {
        for (const struct opt *o = t->opts; o->name; o++) {
            const struct cy_node *k = NULL;
            const struct cy_node *v = cy_map_get(m, o->name, &k);
            cy_join_path(kp, path, o->name);
            if (v) {
                apply_opt(c, o, v, (char *)base + t->base_off, kp, k->line);
            } else if (o->flags & OPT_REQUIRED) {
                cy_err(c, keyline > 0 ? keyline : 1, kp, "required key is missing");
            }
        }
    }
}

/* Defaults from the tables' `def` texts (sections recursively). */
void config_apply_defaults(struct cy_ctx *c, const struct table *tabs, void *base)
{
    for (const struct table *t = tabs; t->opts; t++) {
        void *b = (char *)base + t->base_off;
        for (const struct opt *o = t->opts; o->name; o++) {
            if (o->type == OPT_SECTION) {
                config_apply_defaults(c, o->sub, b);
            } else if (o->def && o->type <= OPT_ENUM && o->def[0] != '\0' &&
                       !strchr(o->def, '<')) {
                set_scalar(c, o, o->def, b, o->name, 0);
            }
        }
    }
}

/* ------------------------------------------------------------ custom options ---- */

static void topics_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v, void *field,
                      const char *path, int keyline)
{
    struct sl_config *cfg = field;
    if (cy_is_null(v) || !config_expect_map(c, v, path, keyline)) {
        return;
    }
    config_check_keys(c, v, path);
    cfg->topics = cy_calloc(c, v->n / 2, sizeof(*cfg->topics));
    if (!cfg->topics) {
        return;
    }
    char kp[CY_PATH_LEN];
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const struct cy_node *k = v->kids[i];
        if (k->kind != CY_SCALAR) {
            continue;
        }
        cy_join_path(kp, path, k->str);
        const char *why = cy_check_topic(k->str);
        if (why) {
            cy_err(c, k->line, kp, "%s", why);
            continue;
        }
        struct sl_topic_override *t = &cfg->topics[cfg->n_topics++];
        t->name = cy_strdup(c, k->str);
        t->cfg = cfg->topic_defaults;
        t->line = k->line;
        config_apply_map(c, v->kids[i + 1], o->sub, t, kp, k->line);
    }
}

/* Checks across sections, once everything is applied. */
static void config_check(struct cy_ctx *c, struct sl_config *cfg, const struct cy_node *root)
{
    const struct cy_node *lk = NULL;
    const struct cy_node *logn = cy_map_get(root, "log", &lk);
    if (cfg->backend == SL_BACKEND_KAFKA) {
        static const char *const brokers[] = {
            "bootstrap.servers", "metadata.broker.list", "test.mock.num.brokers", NULL,
        };
        bool servers = false;
        for (size_t i = 0; i < cfg->n_kafka_properties; i++) {
            for (size_t j = 0; brokers[j]; j++) {
                servers |= strcmp(cfg->kafka_properties[i].key, brokers[j]) == 0;
            }
        }
        if (!servers) {
            cy_err(c, cy_key_line(logn, "backend", lk ? lk->line : 1), "log.kafka",
                   "backend kafka needs bootstrap.servers");
        }
    }
    struct sl_listener_cfg *ls[] = {&cfg->http, &cfg->mqtt, &cfg->amqp, &cfg->stomp,
                                    &cfg->kafka};
    for (size_t i = 0; i < 5; i++) {
        for (size_t j = 0; j < i; j++) {
            struct sl_listener_cfg *a = ls[i], *b = ls[j];
            if (a->present && a->enabled && b->present && b->enabled && a->port != 0 &&
                a->port == b->port && a->host && b->host && strcmp(a->host, b->host) == 0) {
                char kp[64];
                snprintf(kp, sizeof(kp), "listeners.%s.bind", config_listeners_opts[i].name);
                cy_err(c, a->line ? a->line : 1, kp, "%s:%d is also used by listeners.%s",
                       a->host, a->port, config_listeners_opts[j].name);
            }
        }
    }
}

/* ------------------------------------------------------------ public API ---- */

static struct sl_config *config_new(struct cy_ctx *c)
{
    struct sl_config *cfg = cy_calloc(c, 1, sizeof(*cfg));
    if (!cfg) {
        return NULL;
    }
    config_apply_defaults(c, top_tabs, cfg);
    config_listener_init(c, &config_listeners_opts[0], &cfg->http);
    return cfg;
}

int sl_parse_size(const char *s, uint64_t *out)
{
    return cy_parse_size(s, out);
}

int sl_parse_duration_ms(const char *s, int64_t *out)
{
    return cy_parse_duration_ms(s, out);
}

struct sl_config *sl_config_defaults(void)
{
    struct cy_ctx c = {.name = "defaults"};
    struct sl_config *cfg = config_new(&c);
    if (c.oom || c.n_errs) {
        sl_config_free(&cfg);
    }
    cy_ctx_clear(&c);
    return cfg;
}

struct sl_config *sl_config_parse(const char *name, const char *text, size_t len,
                                  char **errors)
{
    struct cy_ctx c = {.name = name ? name : "<config>"};
    struct cy_node *root = NULL;
    struct sl_config *cfg = config_new(&c);
    if (cfg) {
        cfg->path = cy_strdup(&c, c.name);
    }
    if (cfg && !c.oom && cy_load_tree(&c, text ? text : "", text ? len : 0, &root)) {
        if (!cy_is_null(root)) {
            config_apply_map(&c, root, top_tabs, cfg, "", 0);
            if (root->kind == CY_MAP) {
                config_check(&c, cfg, root);
            }
        }
    }
    cy_node_free(root);
    char *text_err = cy_errors_text(&c);
    bool failed = c.oom || c.n_errs > 0;
    cy_ctx_clear(&c);
    if (failed) {
        sl_config_free(&cfg);
    }
    if (errors) {
        *errors = text_err;
    } else {
        free(text_err);
    }
    return cfg;
}

struct sl_config *sl_config_load(const char *path, char **errors)
{
    char *msg = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (asprintf(&msg, "%s:0: cannot open: %s\n", path, strerror(errno)) < 0) {
            msg = NULL;
        }
        goto fail;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    errno = 0;
    while (buf) {
        if (len == cap) {
            char *nb = cap >= MAX_FILE_BYTES ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            break;
        }
    }
    int read_errno = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!buf || read_errno) {
        free(buf);
        if (asprintf(&msg, "%s:0: cannot read: %s\n", path,
                     read_errno ? strerror(read_errno) : "larger than 16 MiB or out of memory")
            < 0) {
            msg = NULL;
        }
        goto fail;
    }
    struct sl_config *cfg = sl_config_parse(path, buf, len, errors);
    free(buf);
    return cfg;
fail:
    if (errors) {
        *errors = msg;
    } else {
        free(msg);
    }
    return NULL;
}

static void free_listener(struct sl_listener_cfg *l)
{
    free(l->host);
    free(l->web_root);
    free_kv(l->mqtt_users, l->n_mqtt_users);
}

void sl_config_free(struct sl_config **pcfg)
{
    if (!pcfg || !*pcfg) {
        return;
    }
    struct sl_config *cfg = *pcfg;
    free(cfg->path);
    free(cfg->data_dir);
    free_kv(cfg->kafka_properties, cfg->n_kafka_properties);
    for (size_t i = 0; i < cfg->n_topics; i++) {
        free(cfg->topics[i].name);
    }
    free(cfg->topics);
    free_listener(&cfg->http);
    free_listener(&cfg->mqtt);
    free_listener(&cfg->amqp);
    free_listener(&cfg->stomp);
    free_listener(&cfg->kafka);
    for (size_t i = 0; i < cfg->n_bridges; i++) {
        struct sl_bridge_cfg *b = &cfg->bridges[i];
        free(b->name);
        free(b->url);
        free(b->client_id);
        free_kv(b->properties, b->n_properties);
        free_strv(b->consume, b->n_consume);
        free_strv(b->subscribe, b->n_subscribe);
        free(b->username);
        free(b->password);
    }
    free(cfg->bridges);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct sl_route_cfg *r = &cfg->routes[i];
        free(r->from_listener);
        free(r->from_bridge);
        free(r->from_topic);
        free(r->match);
        free_kv(r->when_headers, r->n_when_headers);
        free_strv(r->to_topics, r->n_to_topics);
        free(r->key_header);
        free_kv(r->set_headers, r->n_set_headers);
        free(r->to_bridge);
        free(r->to_listener);
        free(r->destination);
    }
    free(cfg->routes);
    free(cfg);
    *pcfg = NULL;
}

/* ------------------------------------------------------------ reload ---- */

struct diff {
    char *buf;
    size_t len, off;
    int n;
};

static void diff_add(struct diff *d, const char *path)
{
    if (d->buf && d->len > d->off) {
        int r = snprintf(d->buf + d->off, d->len - d->off, "%s%s", d->n ? ", " : "", path);
        d->off = r < 0 ? d->off : d->off + (size_t)r;
        if (d->off >= d->len) {
            d->off = d->len;
        }
    }
    d->n++;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool kv_eq(const struct sl_kv *a, size_t na, const struct sl_kv *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!str_eq(a[i].key, b[i].key) || !str_eq(a[i].value, b[i].value)) {
            return false;
        }
    }
    return true;
}

static bool strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!str_eq(a[i], b[i])) {
            return false;
        }
    }
    return true;
}

/* One option's values in two bases equal? */
static bool opt_eq(const struct opt *o, const void *a, const void *b)
{
    const char *pa = (const char *)a + o->off, *pb = (const char *)b + o->off;
    switch (o->type) {
    case OPT_STRING:
        return str_eq(*(char *const *)(const void *)pa, *(char *const *)(const void *)pb);
    case OPT_KV:
        return kv_eq(*(struct sl_kv *const *)(const void *)pa,
                     *(const size_t *)(const void *)((const char *)a + o->count_off),
                     *(struct sl_kv *const *)(const void *)pb,
                     *(const size_t *)(const void *)((const char *)b + o->count_off));
    case OPT_STRLIST:
        return strv_eq(*(char **const *)(const void *)pa,
                       *(const size_t *)(const void *)((const char *)a + o->count_off),
                       *(char **const *)(const void *)pb,
                       *(const size_t *)(const void *)((const char *)b + o->count_off));
    case OPT_CUSTOM:
        if (o->eq) {
            return o->eq(o, pa, pb);
        }
        if (o->fn == config_mqtt_version_fn) {
            return memcmp(pa, pb, o->size) == 0;
        }
        return true;
    default:
        return memcmp(pa, pb, o->size) == 0;
    }
}

static bool bridge_eq(const struct sl_bridge_cfg *a, const struct sl_bridge_cfg *b)
{
    if (!str_eq(a->name, b->name)) {
        return false;
    }
    for (const struct opt *o = config_bridge_opts; o->name; o++) {
        if (!opt_eq(o, a, b)) {
            return false;
        }
    }
    return true;
}

static void diff_tabs(struct diff *d, const struct table *tabs, const void *a, const void *b,
                      const char *prefix)
{
    char path[CY_PATH_LEN];
    for (const struct table *t = tabs; t->opts; t++) {
        const char *ba = (const char *)a + t->base_off, *bb = (const char *)b + t->base_off;
        for (const struct opt *o = t->opts; o->name; o++) {
            cy_join_path(path, prefix, o->name);
            if (o->flags & OPT_RELOAD) {
                continue;
            }
            if (o->type == OPT_SECTION) {
                diff_tabs(d, o->sub, ba, bb, path);
            } else if (o->fn == config_listener_fn) {
                /* a listener added or removed is one change; else key by key, so the
                 * keys its table marks reloadable (listeners.mqtt.users, ...) are not */
                const struct sl_listener_cfg *la = (const void *)(ba + o->off),
                                             *lb = (const void *)(bb + o->off);
                if (la->present != lb->present) {
                    diff_add(d, path);
                } else if (la->present) {
                    diff_tabs(d, o->sub, la, lb, path);
                }
            } else if (o->fn == config_bridges_fn) {
                const struct sl_config *ca = (const void *)ba, *cb = (const void *)bb;
                bool same = ca->n_bridges == cb->n_bridges;
                for (size_t i = 0; same && i < ca->n_bridges; i++) {
                    same = bridge_eq(&ca->bridges[i], &cb->bridges[i]);
                }
                if (!same) {
                    diff_add(d, path);
                }
            } else if (!opt_eq(o, ba, bb)) {
                diff_add(d, path);
            }
        }
    }
}

int sl_config_restart_changes(const struct sl_config *old, const struct sl_config *cur,
                              char *buf, size_t len)
{
    struct diff d = {.buf = buf, .len = len};
    if (buf && len) {
        buf[0] = '\0';
    }
    if (!old || !cur) {
        return 0;
    }
    diff_tabs(&d, top_tabs, old, cur, "");
    return d.n;
}

/* ------------------------------------------------------------ help ---- */

static const char *type_name(const struct opt *o)
{
    static const char *const names[] = {
        [OPT_STRING] = "string", [OPT_BOOL] = "bool", [OPT_INT] = "integer",
        [OPT_SIZE] = "size", [OPT_DURATION] = "duration", [OPT_ENUM] = "enum",
        [OPT_KV] = "map of string: string", [OPT_STRLIST] = "list of strings",
        [OPT_SECTION] = "section", [OPT_CUSTOM] = "custom",
    };
    if (o->type == OPT_CUSTOM && o->type_name) {
        return o->type_name;
    }
    if (o->type == OPT_STRLIST && (o->flags & OPT_SINGLE)) {
        return "string";
    }
    return names[o->type];
}

/* parent_reload: the enclosing section is reloadable as a whole; parent_def: the
 * enclosing element's default (a listener's bind). */
static void print_tabs(FILE *out, const struct table *tabs, const char *prefix, int depth,
                       bool parent_reload, const char *parent_def)
{
    char path[CY_PATH_LEN], list[160];
    if (depth > 8) {
        return;
    }
    for (const struct table *t = tabs; t->opts; t++) {
        for (const struct opt *o = t->opts; o->name; o++) {
            cy_join_path(path, prefix, o->name);
            bool nested = o->type == OPT_SECTION || (o->type == OPT_CUSTOM && o->sub);
            bool reload = parent_reload || (o->flags & OPT_RELOAD);
            const char *def = o->def ? o->def : (o->type == OPT_CUSTOM ? parent_def : NULL);
            if (nested) {
                char sub[CY_PATH_LEN];
                if (o->elem && o->elem[0] == '<') {
                    snprintf(sub, sizeof(sub), "%.*s.%s", CY_PATH_LEN - 20, path, o->elem);
                } else {
                    snprintf(sub, sizeof(sub), "%.*s%s", CY_PATH_LEN - 20, path,
                             o->elem ? o->elem : "");
                }
                fprintf(out, "\n%s  [%s%s%s]\n    %s\n", sub,
                        reload ? "reloadable" : "restart",
                        o->def ? "; default bind: " : "", o->def ? o->def : "", o->help);
                print_tabs(out, o->sub, sub, depth + 1, reload, o->def);
                continue;
            }
            fprintf(out, "  %-40s %s", path, type_name(o));
            if (o->type == OPT_ENUM || (o->type == OPT_STRING && o->enums)) {
                enum_list(o->enums, list, sizeof(list));
                fprintf(out, " (%s)", list);
            }
            if (o->flags & OPT_UNLIMITED) {
                fprintf(out, " or -1 (unlimited)");
            }
            fprintf(out, "; default: %s%s%s\n      %s\n", def ? def : "none",
                    (o->flags & OPT_REQUIRED) ? "; required" : "",
                    reload ? "; reloadable" : "", o->help);
        }
    }
}

void sl_config_print_help(FILE *out)
{
    fprintf(out, "sluice configuration (YAML). Sizes: 4096, 64KiB, 128MiB, 1GiB, 1GB; "
                 "durations: 50ms, 30s, 5m, 12h, 7d, 2w (a bare number is ms).\n"
                 "Options marked reloadable take effect on SIGHUP; the others need a "
                 "restart.\n");
    print_tabs(out, top_tabs, "", 0, false, NULL);
}

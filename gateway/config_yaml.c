/*
 * The generic half of the configuration loader (see gateway/config_yaml.h): libyaml
 * events into a line-annotated node tree, lookups in it, the error collector, and the
 * parsers and checks for value texts. gateway/config.c maps the tree onto sl_config.
 */
#include "gateway/config_yaml.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MAX_DEPTH 64              /* deepest nesting of YAML collections accepted */
#define MAX_ERRORS 200            /* errors kept; the rest are counted */

/* ---------------------------------------------------------------- node tree ---- */

void cy_node_free(struct cy_node *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        cy_node_free(n->kids[i]);
    }
    free(n->kids);
    free(n->str);
    free(n);
}

bool cy_is_null(const struct cy_node *n)
{
    if (!n) {
        return true;
    }
    if (n->kind != CY_SCALAR || !n->plain) {
        return false;
    }
    return n->str[0] == '\0' || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

/* The value of `key` in mapping m (first occurrence) and the key node, or NULL. */
const struct cy_node *cy_map_get(const struct cy_node *m, const char *key,
                                 const struct cy_node **keynode)
{
    if (!m || m->kind != CY_MAP) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < m->n; i += 2) {
        const struct cy_node *k = m->kids[i];
        if (k->kind == CY_SCALAR && strcmp(k->str, key) == 0) {
            if (keynode) {
                *keynode = k;
            }
            return m->kids[i + 1];
        }
    }
    return NULL;
}

/* Line of `key` in m, or `dflt` when m has no such key. */
int cy_key_line(const struct cy_node *m, const char *key, int dflt)
{
    const struct cy_node *k = NULL;
    if (cy_map_get(m, key, &k) && k) {
        return k->line;
    }
    return dflt;
}

/* ------------------------------------------------------------------- errors ---- */

void *cy_calloc(struct cy_ctx *c, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        c->oom = true;
    }
    return p;
}

char *cy_strdup(struct cy_ctx *c, const char *s)
{
    char *d = strdup(s);
    if (!d) {
        c->oom = true;
    }
    return d;
}

void cy_join_path(char *out, const char *parent, const char *key)
{
    if (!parent || !*parent) {
        snprintf(out, CY_PATH_LEN, "%.200s", key);
    } else {
        snprintf(out, CY_PATH_LEN, "%.*s.%.100s", CY_PATH_LEN - 110, parent, key);
    }
}

void cy_err(struct cy_ctx *c, int line, const char *path, const char *fmt, ...)
{
    if (c->n_errs >= MAX_ERRORS) {
        c->dropped++;
        return;
    }
    if (c->n_errs == c->cap_errs) {
        size_t cap = c->cap_errs ? c->cap_errs * 2 : 16;
        struct cy_error *v = realloc(c->errs, cap * sizeof(*v));
        if (!v) {
            c->oom = true;
            return;
        }
        c->errs = v;
        c->cap_errs = cap;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *text = NULL;
    int r;
    if (path && *path) {
        r = asprintf(&text, "%s:%d: %s: %s", c->name, line, path, msg);
    } else {
        r = asprintf(&text, "%s:%d: %s", c->name, line, msg);
    }
    if (r < 0) {
        c->oom = true;
        return;
    }
    for (char *p = text; *p; p++) {     /* one error per line, whatever the keys hold */
        if ((unsigned char)*p < 0x20) {
            *p = '?';
        }
    }
    c->errs[c->n_errs].line = line;
    c->errs[c->n_errs].seq = c->n_errs;
    c->errs[c->n_errs].msg = text;
    c->n_errs++;
}

static int error_cmp(const void *a, const void *b)
{
    const struct cy_error *x = a, *y = b;
    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* All errors, sorted by line, one per line; NULL if none (or out of memory). */
char *cy_errors_text(struct cy_ctx *c)
{
    if (c->oom) {
        char *t = NULL;
        if (asprintf(&t, "%s: out of memory while loading the configuration\n", c->name) < 0) {
            return NULL;
        }
        return t;
    }
    if (c->n_errs == 0) {
        return NULL;
    }
    qsort(c->errs, c->n_errs, sizeof(*c->errs), error_cmp);
    size_t len = 1;
    for (size_t i = 0; i < c->n_errs; i++) {
        len += strlen(c->errs[i].msg) + 1;
    }
    len += 64;
    char *t = malloc(len);
    if (!t) {
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < c->n_errs; i++) {
        size_t l = strlen(c->errs[i].msg);
        memcpy(t + off, c->errs[i].msg, l);
        off += l;
        t[off++] = '\n';
    }
    if (c->dropped) {
        off += (size_t)snprintf(t + off, len - off, "%s: %zu more errors\n", c->name,
                                c->dropped);
    }
    t[off] = '\0';
    return t;
}

void cy_ctx_clear(struct cy_ctx *c)
{
    for (size_t i = 0; i < c->n_errs; i++) {
        free(c->errs[i].msg);
    }
    free(c->errs);
    c->errs = NULL;
    c->n_errs = c->cap_errs = 0;
}

/* ------------------------------------------------------------- YAML loading ---- */

static void syntax_error(struct cy_ctx *c, yaml_parser_t *p)
{
    int line = (int)p->problem_mark.line + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        c->oom = true;
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        cy_err(c, line, NULL, "YAML error: %s (at byte %zu)",
               p->problem ? p->problem : "cannot read input", p->problem_offset);
        return;
    }
    if (p->context) {
        cy_err(c, line, NULL, "YAML syntax error: %s %s (line %d)",
               p->problem ? p->problem : "error", p->context, (int)p->context_mark.line + 1);
    } else {
        cy_err(c, line, NULL, "YAML syntax error: %s", p->problem ? p->problem : "error");
    }
}

static bool node_push(struct cy_ctx *c, struct cy_node *parent, struct cy_node *kid)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct cy_node **v = realloc(parent->kids, cap * sizeof(*v));
        if (!v) {
            c->oom = true;
            return false;
        }
        parent->kids = v;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return true;
}

/* Build a node from `ev` (consumed) and, for a collection, the events up to its end.
 * NULL on failure (error recorded). */
static struct cy_node *load_node(struct cy_ctx *c, yaml_parser_t *p, yaml_event_t *ev,
                                 int depth)
{
    struct cy_node *n = cy_calloc(c, 1, sizeof(*n));
    if (!n) {
        yaml_event_delete(ev);
        return NULL;
    }
    n->line = (int)ev->start_mark.line + 1;
    yaml_event_type_t end = YAML_NO_EVENT;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *v = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        n->kind = CY_SCALAR;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        if (memchr(v, '\0', len)) {
            cy_err(c, n->line, NULL, "a NUL character in a value is not allowed");
            yaml_event_delete(ev);
            cy_node_free(n);
            return NULL;
        }
        n->str = strndup(v, len);
        yaml_event_delete(ev);
        if (!n->str) {
            c->oom = true;
            cy_node_free(n);
            return NULL;
        }
        return n;
    }
    case YAML_ALIAS_EVENT:
        n->kind = CY_ALIAS;
        n->str = strdup((const char *)ev->data.alias.anchor);
        yaml_event_delete(ev);
        if (!n->str) {
            c->oom = true;
            cy_node_free(n);
            return NULL;
        }
        return n;
    case YAML_SEQUENCE_START_EVENT:
        n->kind = CY_SEQ;
        end = YAML_SEQUENCE_END_EVENT;
        break;
    case YAML_MAPPING_START_EVENT:
        n->kind = CY_MAP;
        end = YAML_MAPPING_END_EVENT;
        break;
    default:
        cy_err(c, n->line, NULL, "YAML error: unexpected event");
        yaml_event_delete(ev);
        cy_node_free(n);
        return NULL;
    }
    yaml_event_delete(ev);
    if (depth >= MAX_DEPTH) {
        cy_err(c, n->line, NULL, "nesting deeper than %d levels", MAX_DEPTH);
        cy_node_free(n);
        return NULL;
    }
    for (;;) {
        yaml_event_t kev;
        if (!yaml_parser_parse(p, &kev)) {
            syntax_error(c, p);
            cy_node_free(n);
            return NULL;
        }
        if (kev.type == end) {
            yaml_event_delete(&kev);
            return n;
        }
        struct cy_node *kid = load_node(c, p, &kev, depth + 1);
        if (!kid || !node_push(c, n, kid)) {
            cy_node_free(kid);
            cy_node_free(n);
            return NULL;
        }
    }
}

/* Parse text into a tree. Returns false on a YAML error (recorded). *root NULL for an
 * empty stream. */
bool cy_load_tree(struct cy_ctx *c, const char *text, size_t len, struct cy_node **root)
{
    yaml_parser_t p;
    yaml_event_t ev;
    bool ok = false;
    *root = NULL;
    if (!yaml_parser_initialize(&p)) {
        c->oom = true;
        return false;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int docs = 0;
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            syntax_error(c, &p);
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            ok = true;
            break;
        }
        if (t == YAML_DOCUMENT_START_EVENT) {
            int line = (int)ev.start_mark.line + 1;
            yaml_event_delete(&ev);
            if (++docs > 1) {
                cy_err(c, line, NULL, "only one YAML document is allowed");
                break;
            }
            continue;
        }
        if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        *root = load_node(c, &p, &ev, 0);
        if (!*root) {
            break;
        }
    }
    yaml_parser_delete(&p);
    if (!ok) {
        cy_node_free(*root);
        *root = NULL;
    }
    return ok;
}

/* ------------------------------------------------------------ value parsers ---- */

struct unit {
    const char *name;
    uint64_t mult;
};

static const struct unit size_units[] = {
    {"", 1}, {"B", 1},
    {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
    {"KB", 1000ull}, {"MB", 1000000ull}, {"GB", 1000000000ull}, {"TB", 1000000000000ull},
    {"k", 1ull << 10}, {"K", 1ull << 10}, {"m", 1ull << 20}, {"M", 1ull << 20},
    {"g", 1ull << 30}, {"G", 1ull << 30}, {"t", 1ull << 40}, {"T", 1ull << 40},
    {NULL, 0},
};

static const struct unit duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    {"d", 86400000}, {"w", 604800000}, {NULL, 0},
};

/* Digits, an optional space, a unit from the table. Rejects signs, overflow, junk. */
static int parse_units(const char *s, const struct unit *units, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)s[0])) {
        return -EINVAL;
    }
    uint64_t n = 0;
    const char *p = s;
    while (isdigit((unsigned char)*p)) {
        uint64_t d = (uint64_t)(*p - '0');
        if (n > (UINT64_MAX - d) / 10) {
            return -EINVAL;
        }
        n = n * 10 + d;
        p++;
    }
    bool space = *p == ' ';
    if (space) {
        p++;
    }
    for (const struct unit *u = units; u->name; u++) {
        if (strcmp(p, u->name) != 0 || (space && !*p)) {
            continue;
        }
        if (n > UINT64_MAX / u->mult) {
            return -EINVAL;
        }
        *out = n * u->mult;
        return 0;
    }
    return -EINVAL;
}

int cy_parse_size(const char *s, uint64_t *out)
{
    return parse_units(s, size_units, out);
}

int cy_parse_duration_ms(const char *s, int64_t *out)
{
    uint64_t v;
    if (parse_units(s, duration_units, &v) != 0 || v > (uint64_t)INT64_MAX) {
        return -EINVAL;
    }
    *out = (int64_t)v;
    return 0;
}

int cy_parse_int(const char *s, int64_t *out)
{
    if (!*s || isspace((unsigned char)*s)) {
        return -EINVAL;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int cy_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    for (size_t i = 0; yes[i]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

bool cy_is_unlimited(const char *s)
{
    return strcmp(s, "-1") == 0 || strcmp(s, "unlimited") == 0;
}

/* Kafka's rule, kept local: [a-zA-Z0-9._-], 1..249 chars, not "." or "..". */
const char *cy_check_topic(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0 ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len) {
        return "invalid topic name (1 to 249 characters of a-z A-Z 0-9 . _ -, not '.' or '..')";
    }
    return NULL;
}

const char *cy_check_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 128 ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len) {
        return "invalid name (1 to 128 characters of a-z A-Z 0-9 . _ -)";
    }
    return NULL;
}

/* '/'-separated levels; '+' or '*' only as a whole level; '#' only as the whole last. */
const char *cy_check_pattern(const char *s)
{
    if (!*s) {
        return "empty pattern";
    }
    const char *lvl = s;
    for (;;) {
        const char *slash = strchr(lvl, '/');
        size_t len = slash ? (size_t)(slash - lvl) : strlen(lvl);
        const char *hash = memchr(lvl, '#', len);
        if (hash && (len != 1 || slash)) {
            return "'#' must be a whole level and the last one";
        }
        if ((memchr(lvl, '+', len) || memchr(lvl, '*', len)) && len != 1) {
            return "'+' and '*' must be a whole level";
        }
        if (!slash) {
            return NULL;
        }
        lvl = slash + 1;
    }
}

/* Text with {subject} and {topic} placeholders only. */
const char *cy_check_template(const char *s)
{
    if (!*s) {
        return "empty destination";
    }
    for (const char *p = s; *p; p++) {
        if (*p == '{') {
            if (strncmp(p, "{subject}", 9) == 0) {
                p += 8;
            } else if (strncmp(p, "{topic}", 7) == 0) {
                p += 6;
            } else {
                return "unknown placeholder (use {subject} or {topic})";
            }
        } else if (*p == '}') {
            return "unbalanced '}'";
        }
    }
    return NULL;
}

/* HOST:PORT, [IPv6]:PORT; host an IPv4 address, a bracketed IPv6 one or a DNS name. */
const char *cy_parse_bind(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) {
        return "expected HOST:PORT (for IPv6: [ADDRESS]:PORT)";
    }
    int64_t v;
    if (cy_parse_int(colon + 1, &v) != 0 || v < 0 || v > 65535 || colon[1] == '+' ||
        colon[1] == '-') {
        return "port must be a number from 0 to 65535";
    }
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    char buf[256];
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']' || hlen - 2 >= sizeof(buf)) {
            return "expected [IPv6]:PORT";
        }
        memcpy(buf, h + 1, hlen - 2);
        buf[hlen - 2] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            return "not an IPv6 address";
        }
    } else {
        if (hlen >= sizeof(buf) || hlen > 253) {
            return "host name too long";
        }
        memcpy(buf, h, hlen);
        buf[hlen] = '\0';
        struct in_addr a4;
        if (strspn(buf, "0123456789.") == hlen) {
            if (inet_pton(AF_INET, buf, &a4) != 1) {
                return "not an IPv4 address";
            }
        } else if (strchr(buf, ':')) {
            return "IPv6 addresses go in brackets: [ADDRESS]:PORT";
        } else {
            const char *lbl = buf;
            for (;;) {
                const char *dot = strchr(lbl, '.');
                size_t l = dot ? (size_t)(dot - lbl) : strlen(lbl);
                if (l == 0 || l > 63 || lbl[0] == '-' || lbl[l - 1] == '-' ||
                    strspn(lbl, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789-") < l) {
                    return "not a valid host name";
                }
                if (!dot) {
                    break;
                }
                lbl = dot + 1;
            }
        }
    }
    char *d = strdup(buf);
    if (!d) {
        return "out of memory";
    }
    free(*host);
    *host = d;
    *port = (int)v;
    return NULL;
}

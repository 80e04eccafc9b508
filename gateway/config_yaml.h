/*
 * The generic half of the configuration loader: libyaml's event parser turned into a
 * small tree of nodes that keep their line, lookups in that tree, the error collector
 * ("NAME:LINE: PATH: message", sorted by line), and parsers and checks for the value
 * texts (sizes, durations, integers, booleans, HOST:PORT, names, patterns, templates).
 * Nothing here knows struct sl_config: gateway/config.c maps the tree onto it through
 * its option tables.
 *
 * Thread affinity: none. No globals, no locks: each function touches only what it is
 * handed (and errno), so any thread may call it; a cy_ctx and the tree loaded with it
 * belong to one thread at a time.
 */
#ifndef SL_CONFIG_YAML_H
#define SL_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CY_PATH_LEN 384               /* dotted key paths ("a.b[2].c") fit in this */
#define CY_VAL_FMT "%.80s"            /* values quoted in messages are cut to 80 bytes */

enum cy_kind { CY_SCALAR, CY_SEQ, CY_MAP, CY_ALIAS };

struct cy_node {
    enum cy_kind kind;
    int line;                  /* 1-based line of the node's first character */
    bool plain;                /* plain (unquoted) scalar: may mean null */
    char *str;                 /* scalar text, alias name */
    struct cy_node **kids;     /* sequence items; mapping: key0, value0, key1, value1 ... */
    size_t n, cap;
};

struct cy_error {
    int line;
    size_t seq;                /* order of arrival, for a stable sort */
    char *msg;
};

/* One load: the name used in messages and what went wrong. Zero-initialise it, set
 * `name`, and release it with cy_ctx_clear. */
struct cy_ctx {
    const char *name;          /* borrowed; the file name in messages */
    struct cy_error *errs;
    size_t n_errs, cap_errs, dropped;
    bool oom;                  /* an allocation failed: the load must fail */
};

/* ------------------------------------------------------------------ errors ---- */

/*
 * Record "NAME:LINE: PATH: message" (no "PATH: " when path is NULL or empty); control
 * characters become '?' so each error stays on one line. Past 200 errors only a count
 * is kept. Borrows path and the arguments; sets c->oom when out of memory. Any thread.
 */
__attribute__((format(printf, 4, 5)))
void cy_err(struct cy_ctx *c, int line, const char *path, const char *fmt, ...);

/*
 * All the errors, sorted by line (ties in order of arrival), one per line; after an
 * allocation failure a single "out of memory" line instead. Returns a new malloc'd
 * text the caller frees, or NULL when there is no error (or no memory for the text).
 * Sorts c->errs in place. Any thread.
 */
char *cy_errors_text(struct cy_ctx *c);

/* Free the recorded errors and empty the list; name, oom and dropped are left as they
 * are, c itself is the caller's. Any thread. */
void cy_ctx_clear(struct cy_ctx *c);

/* calloc (at least one element, even for n == 0) and strdup that set c->oom when they
 * return NULL. The result is new and the caller's to free. Any thread. */
void *cy_calloc(struct cy_ctx *c, size_t n, size_t size);
char *cy_strdup(struct cy_ctx *c, const char *s);

/* out (CY_PATH_LEN bytes) = "parent.key", or "key" when parent is NULL or empty; long
 * parts are cut. Borrows both. Pure, any thread. */
void cy_join_path(char *out, const char *parent, const char *key);

/* -------------------------------------------------------------- node tree ---- */

/*
 * Parse one YAML document from text[0..len) (borrowed; need not be NUL-terminated).
 * On success returns true with *root a new tree (free with cy_node_free), or NULL for
 * an empty stream. On a syntax error, a second document, nesting deeper than 64 levels
 * or a NUL in a scalar, records the error in c, sets *root NULL and returns false (and
 * sets c->oom when out of memory). Any thread.
 */
bool cy_load_tree(struct cy_ctx *c, const char *text, size_t len, struct cy_node **root);

/* Free a tree and everything below it; NULL is a no-op. Any thread. */
void cy_node_free(struct cy_node *n);

/* n is missing (NULL) or a plain scalar "", "~", "null", "Null" or "NULL". Borrows n.
 * Pure, any thread. */
bool cy_is_null(const struct cy_node *n);

/*
 * The value of the first `key` in mapping m, or NULL (also when m is NULL or not a
 * mapping); *keynode (if keynode is not NULL) is set to the key's node when found.
 * Returns pointers into m's tree, borrowed like m. Pure, any thread.
 */
const struct cy_node *cy_map_get(const struct cy_node *m, const char *key,
                                 const struct cy_node **keynode);

/* Line of `key` in mapping m, or `dflt` when m has no such key. Borrows m and key. Pure,
 * any thread. */
int cy_key_line(const struct cy_node *m, const char *key, int dflt);

/* ----------------------------------------------------------- value parsers ---- */

/* Digits, an optional space and a unit: none/B, KiB MiB GiB TiB (also k m g t, K M G T),
 * KB MB GB TB (powers of 1000); no sign, no overflow. 0 with *out set, or -EINVAL with
 * *out untouched. Borrows s. Pure, any thread. */
int cy_parse_size(const char *s, uint64_t *out);

/* Milliseconds from digits, an optional space and a unit: none/ms, s, m, h, d, w. 0 with
 * *out set, or -EINVAL with *out untouched. Borrows s. Pure, any thread. */
int cy_parse_duration_ms(const char *s, int64_t *out);

/* A whole decimal long long (strtoll; no leading space, no trailing junk). 0 with *out
 * set, or -EINVAL with *out untouched. Borrows s. Any thread (sets errno). */
int cy_parse_int(const char *s, int64_t *out);

/* true/yes/on or false/no/off, any case. 0 with *out set, or -EINVAL with *out
 * untouched. Borrows s. Pure, any thread. */
int cy_parse_bool(const char *s, bool *out);

/* s is "-1" or "unlimited". Borrows s. Pure, any thread. */
bool cy_is_unlimited(const char *s);

/*
 * HOST:PORT or [IPv6]:PORT, the host an IPv4 address, a bracketed IPv6 address or a DNS
 * name, the port 0..65535. On success returns NULL, replaces *host (the old value is
 * freed) with a new malloc'd copy of the host without brackets, which the caller owns,
 * and sets *port. Otherwise returns a static text saying why and leaves *host and *port
 * alone. Borrows s. Any thread.
 */
const char *cy_parse_bind(const char *s, char **host, int *port);

/* The checks below return NULL when s is acceptable, else a static text saying why. */

/* A topic name by Kafka's rule: 1..249 of [a-zA-Z0-9._-], not "." or "..". Borrows s.
 * Pure, any thread. */
const char *cy_check_topic(const char *s);

/* A bridge name: 1..128 of [a-zA-Z0-9._-]. Borrows s. Pure, any thread. */
const char *cy_check_name(const char *s);

/* A subject pattern, non-empty: '/'-separated levels; '+' or '*' only as a whole level;
 * '#' only as the whole last level. Borrows s. Pure, any thread. */
const char *cy_check_pattern(const char *s);

/* A destination template: non-empty, its only placeholders {subject} and {topic}.
 * Borrows s. Pure, any thread. */
const char *cy_check_template(const char *s);

#endif

/*
 * The option tables of the configuration loader and the functions that apply them,
 * shared by gateway/config.c (the gateway, log and topics sections, the top table,
 * defaults, reload diff and --help-config; it implements everything declared here) and
 * gateway/config_sections.c (listeners, bridges, routes). Not for other modules: they
 * use gateway/config.h.
 *
 * A table maps the keys of one YAML mapping onto fields of a base struct: each option
 * has a name, a type, the field's offset, a default written as in YAML, a reloadable
 * flag and help. Errors go to the cy_ctx as "NAME:LINE: PATH: message".
 *
 * Thread affinity: none; a cy_ctx and what is applied through it belong to one thread
 * at a time.
 */
#ifndef SL_CONFIG_OPT_H
#define SL_CONFIG_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/config_yaml.h"

enum opt_type {
    OPT_STRING, OPT_BOOL, OPT_INT, OPT_SIZE, OPT_DURATION, OPT_ENUM,
    OPT_KV,           /* mapping of string -> string: struct sl_kv *, size_t count */
    OPT_STRLIST,      /* list of strings (or one string): char **, size_t count; appends */
    OPT_SECTION,      /* a nested mapping applied with `sub` to the same base */
    OPT_CUSTOM,       /* `fn` does the work */
};

#define OPT_RELOAD    0x1u   /* SIGHUP applies it without a restart */
#define OPT_UNLIMITED 0x2u   /* "-1" or "unlimited" store -1 */
#define OPT_REQUIRED  0x4u
#define OPT_SINGLE    0x8u   /* OPT_STRLIST: one scalar only (e.g. to.topic) */

struct enum_name {
    const char *name;
    int value;
};

struct opt;

struct table {
    const struct opt *opts;
    size_t base_off;           /* added to the base pointer for this table's offsets */
};

typedef void (*opt_fn)(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                       void *field, const char *path, int keyline);

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;                /* offsetof the field in the table's base */
    size_t size;               /* sizeof the field: ints, sizes, durations, enums */
    size_t count_off;          /* OPT_KV, OPT_STRLIST: offsetof the size_t count */
    const char *def;           /* default, written as in YAML; NULL: none */
    int64_t min, max;          /* OPT_INT, OPT_SIZE, OPT_DURATION */
    unsigned flags;
    const struct enum_name *enums; /* OPT_ENUM; OPT_STRING: the allowed values */
    const char *(*check)(const char *s); /* OPT_STRING, OPT_STRLIST, OPT_KV (each value):
                                            NULL or why not */
    const struct table *sub;   /* OPT_SECTION, and OPT_CUSTOM elements (for help) */
    const char *elem;          /* OPT_CUSTOM: path element in help: "<topic>", "[]" */
    opt_fn fn;                 /* OPT_CUSTOM */
    /* OPT_CUSTOM: are the values at a and b (the base plus off) equal, for the reload
     * diff; NULL: compared by the diff itself where it knows fn, else never a change */
    bool (*eq)(const struct opt *o, const void *a, const void *b);
    const char *type_name;     /* OPT_CUSTOM: the type shown in help */
    const char *help;
};

#define FIELD(T, f) .off = offsetof(T, f), .size = sizeof(((T *)0)->f)
#define LIST(T, f, n) .off = offsetof(T, f), .count_off = offsetof(T, n)

/*
 * Apply mapping m (borrowed; a null node is an empty mapping) to base through tabs:
 * unknown keys and duplicates are errors; options are applied in table order; a missing
 * OPT_REQUIRED key is reported at keyline. Strings stored are new allocations owned by
 * base's struct (freed by sl_config_free).
 */
void config_apply_map(struct cy_ctx *c, const struct cy_node *m, const struct table *tabs,
                      void *base, const char *path, int keyline);
/* Store the tables' `def` texts into base (sections recursively). */
void config_apply_defaults(struct cy_ctx *c, const struct table *tabs, void *base);

/* The entry named s in e (terminated by a NULL name), or NULL. Borrows both. */
const struct enum_name *config_enum_find(const struct enum_name *e, const char *s);
/* "a mapping", "a list", "an alias" or "a value", for messages. */
const char *config_kind_name(const struct cy_node *v);
/* The line to report a value at: its key's line when it is null or absent. */
int config_node_line(const struct cy_node *v, int keyline);
/* The text of a non-null scalar (borrowed from v), or NULL with the error recorded. */
const char *config_expect_scalar(struct cy_ctx *c, const struct cy_node *v, const char *path,
                                 int keyline);
/* true if v is a mapping, else false with the error recorded. */
bool config_expect_map(struct cy_ctx *c, const struct cy_node *v, const char *path, int keyline);
/* Report keys of mapping m that are not scalars or appear twice. */
void config_check_keys(struct cy_ctx *c, const struct cy_node *m, const char *path);

#endif

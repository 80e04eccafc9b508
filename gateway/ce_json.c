#include "gateway/ce_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "gateway/json_scan.h"

#define CE_MAX_B64 (256u * 1024u * 1024u)

static void set_err(char *err, size_t errsz, const char *fmt, const char *what)
{
    if (err != NULL && errsz > 0) {
        snprintf(err, errsz, fmt, what);
    }
}

bool ce_json_is_json_type(const char *ct)
{
    size_t n;

    if (ct == NULL) {
        return false;
    }
    while (*ct == ' ') {
        ct++;
    }
    n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ') {
        n--;
    }
    if ((n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
        (n == 9 && strncasecmp(ct, "text/json", 9) == 0)) {
        return true;
    }
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* Strict base64 (RFC 4648, padded, no whitespace). Returns a new buffer or NULL. */
static struct sl_buf *b64_decode(const char *s, size_t len, int *errp)
{
    struct sl_buf *buf;
    unsigned char *tmp;
    size_t pad = 0;
    int got;

    *errp = -EINVAL;
    if (len % 4 != 0 || len > CE_MAX_B64) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (c == '=' && i >= len - 2) {
            pad++;
            if (i == len - 2 && s[len - 1] != '=') {
                return NULL;
            }
            continue;
        }
        if (!ok) {
            return NULL;
        }
    }
    if (len == 0) {
        *errp = 0;
        return sl_buf_new("", 0);
    }
    tmp = malloc(len / 4 * 3 + 1);
    if (tmp == NULL) {
        *errp = -ENOMEM;
        return NULL;
    }
    got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
    if (got < 0 || (size_t)got < pad) {
        free(tmp);
        return NULL;
    }
    buf = sl_buf_new(tmp, (size_t)got - pad);
    free(tmp);
    *errp = buf != NULL ? 0 : -ENOMEM;
    return buf;
}

/* Every member name the decoder knows (CloudEvents, plus sluice's "offset", "partition"
 * and "headers"), in index order; a second one is rejected (bit i of a mask per event).
 * Other names are extensions. */
enum ce_member {
    CE_SPECVERSION, CE_DATA, CE_DATA_BASE64, CE_OFFSET, CE_PARTITION,
    CE_ID, CE_SOURCE, CE_TYPE, CE_SUBJECT, CE_TIME, CE_DATACONTENTTYPE, CE_DATASCHEMA,
    CE_HEADERS, CE_EXTENSION,
};

_Static_assert(CE_SOURCE - CE_ID == SL_ATTR_SOURCE && CE_TYPE - CE_ID == SL_ATTR_TYPE &&
               CE_SUBJECT - CE_ID == SL_ATTR_SUBJECT && CE_TIME - CE_ID == SL_ATTR_TIME &&
               CE_DATACONTENTTYPE - CE_ID == SL_ATTR_DATACONTENTTYPE &&
               CE_DATASCHEMA - CE_ID == SL_ATTR_DATASCHEMA && SL_ATTR_ID == 0,
               "the context attributes are in sl_env_attr's order");

static const char *const ce_members[] = {
    "specversion", "data", "data_base64", "offset", "partition",
    "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
    "headers",
};


static enum ce_member member_index(const char *name, size_t len)
{
    int i;

    switch (len) {     /* at most two names share a length: one or two comparisons */
    case 2:
        i = CE_ID;
        break;
    case 4:
        i = name[0] == 'd' ? CE_DATA : name[1] == 'y' ? CE_TYPE : CE_TIME;
        break;
    case 6:
        i = name[0] == 'o' ? CE_OFFSET : CE_SOURCE;
        break;
    case 7:
        i = name[0] == 's' ? CE_SUBJECT : CE_HEADERS;
        break;
    case 9:
        i = CE_PARTITION;
        break;
    case 10:
        i = CE_DATASCHEMA;
        break;
    case 11:
        i = name[0] == 's' ? CE_SPECVERSION : CE_DATA_BASE64;
        break;
    case 15:
        i = CE_DATACONTENTTYPE;
        break;
    default:
        return CE_EXTENSION;
    }
    return memcmp(ce_members[i], name, len) == 0 ? (enum ce_member)i : CE_EXTENSION;
}

/* ---------- decoding: one pass over the text, no tree ----------
 *
 * json_scan validates the text as it goes; an event object's members are collected as
 * byte spans (struct member), and once the object is closed the envelope is built from
 * them, strings decoded only where they hold escapes. A batch is read in the same pass,
 * event by event. Errors keep the order a whole-text parse would give: bad JSON anywhere
 * in the text first, then an empty or oversized batch, then the first bad event.
 */

struct member {
    enum ce_member kind;
    struct js_val key;
    struct js_val val;
};

#define MEMBERS_INLINE 24
#define NAME_MAX_LEN 63              /* longer names are cut (only messages see them) */

struct reader {
    struct js js;
    bool oom;
    struct member *m;                /* the current event's members */
    size_t n_m;
    size_t cap_m;
    char *scratch[2];                /* decoded strings (two may be needed at once) */
    size_t scratch_cap[2];
    struct member inline_m[MEMBERS_INLINE];
};

static void reader_init(struct reader *r, const char *json, size_t len)
{
    js_init(&r->js, json, len);
    r->oom = false;
    r->m = r->inline_m;
    r->n_m = 0;
    r->cap_m = MEMBERS_INLINE;
    r->scratch[0] = r->scratch[1] = NULL;
    r->scratch_cap[0] = r->scratch_cap[1] = 0;
}

static void reader_free(struct reader *r)
{
    if (r->m != r->inline_m) {
        free(r->m);
    }
    free(r->scratch[0]);
    free(r->scratch[1]);
}

/* The string v decoded into scratch slot, NUL-terminated. NULL on out of memory. */
static const char *cstr_of(struct reader *r, const struct js_val *v, int slot, size_t *len)
{
    size_t need = v->end - v->start + 1;

    if (need > r->scratch_cap[slot]) {
        char *grown = realloc(r->scratch[slot], need);
        if (grown == NULL) {
            r->oom = true;
            return NULL;
        }
        r->scratch[slot] = grown;
        r->scratch_cap[slot] = need;
    }
    *len = js_decode(&r->js, v, r->scratch[slot]);
    return r->scratch[slot];
}

/* The string v: a pointer into the input when it has no escapes (not NUL-terminated),
 * else as cstr_of. NULL on out of memory. */
static const char *str_of(struct reader *r, const struct js_val *v, int slot, size_t *len)
{
    if (!v->escaped) {
        *len = v->end - v->start;
        return (const char *)r->js.p + v->start;
    }
    return cstr_of(r, v, slot, len);
}

/* The string v as a C string in out (NAME_MAX_LEN + 1 bytes), cut if longer: names and
 * message text. */
static void name_of(const struct reader *r, const struct js_val *v, char *out)
{
    char tmp[6 * NAME_MAX_LEN + 1];
    struct js_val cut = *v;
    size_t n;

    /* at most NAME_MAX_LEN characters' worth of input (an escape is at most 6 bytes a
     * character, or 12 for a pair of 4 bytes), never splitting an escape */
    if (cut.end - cut.start > sizeof(tmp) - 1) {
        size_t i = cut.start;
        while (i < cut.end && i - cut.start < sizeof(tmp) - 13) {
            i += r->js.p[i] != '\\' ? 1 : r->js.p[i + 1] != 'u' ? 2 : 6;
        }
        cut.end = i;
    }
    n = js_decode(&r->js, &cut, tmp);
    if (n > NAME_MAX_LEN) {
        n = NAME_MAX_LEN;
    }
    memcpy(out, tmp, n);
    out[n] = '\0';
}

/* Append member (key, val) to the current event's list. False on out of memory. */
static bool add_member(struct reader *r, const struct js_val *key, const struct js_val *val)
{
    struct member *m;

    if (r->n_m == r->cap_m) {
        size_t cap = r->cap_m * 2;
        struct member *grown = r->m == r->inline_m ? malloc(cap * sizeof(*grown))
                                                   : realloc(r->m, cap * sizeof(*grown));
        if (grown == NULL) {
            r->oom = true;
            return false;
        }
        if (r->m == r->inline_m) {
            memcpy(grown, r->inline_m, sizeof(r->inline_m));
        }
        r->m = grown;
        r->cap_m = cap;
    }
    m = &r->m[r->n_m++];
    m->key = *key;
    m->val = *val;
    if (!key->escaped) {
        m->kind = member_index((const char *)r->js.p + key->start, key->end - key->start);
    } else {
        char name[NAME_MAX_LEN + 1];
        name_of(r, key, name);
        /* a cut name is longer than any member name, so never mistaken for one */
        m->kind = member_index(name, strlen(name));
    }
    return true;
}

/* Read the object at the next byte (an event): its members into r->m. False on bad JSON
 * (r->js.why) or out of memory (r->oom). */
static bool collect_members(struct reader *r)
{
    struct js_val key;
    struct js_val val;
    bool first = true;
    int rc;

    r->n_m = 0;
    if (!js_open(&r->js)) {
        return false;
    }
    while ((rc = js_member(&r->js, &first, &key)) == 1) {
        if (!js_value(&r->js, &val) || !add_member(r, &key, &val)) {
            return false;
        }
    }
    return rc == 0;
}

/* An integer-valued number as its decimal text ("42", "-7", exact up to 2^53), any
 * other as "%.17g". d is finite. */
static void number_text(double d, char *buf, size_t size)
{
    if (d == trunc(d) && fabs(d) <= 9007199254740992.0) {
        snprintf(buf, size, "%" PRId64, (int64_t)d);
    } else {
        snprintf(buf, size, "%.17g", d);
    }
}

/* Apply member m (other than specversion/data/data_base64/headers) to env. 0 or
 * -errno. */
static int apply_member(struct reader *r, struct sl_env *env, const struct member *m,
                        char *err, size_t errsz)
{
    char name[NAME_MAX_LEN + 1];
    char num[64];
    const char *text;
    size_t len;
    int rc;

    if (m->kind == CE_OFFSET || m->kind == CE_PARTITION) {
        return 0;
    }
    if (m->kind != CE_EXTENSION) {
        const char *attr = ce_members[m->kind];
        if (m->val.type != JS_STRING) {
            set_err(err, errsz, "attribute \"%s\" must be a string", attr);
            return -EINVAL;
        }
        if (m->val.end == m->val.start &&
            (m->kind == CE_ID || m->kind == CE_SOURCE || m->kind == CE_TYPE)) {
            set_err(err, errsz, "attribute \"%s\" must not be empty", attr);
            return -EINVAL;
        }
        text = str_of(r, &m->val, 0, &len);
        /* CE_ID .. CE_DATASCHEMA are in sl_env_attr's order; text without escapes has
         * no NUL byte (the scanner refuses control characters) */
        rc = text == NULL ? -ENOMEM
                          : sl_env_set_attr_at(env, (enum sl_env_attr)(m->kind - CE_ID), text,
                                               len, !m->val.escaped);
        if (rc == -EINVAL) {
            set_err(err, errsz, "bad value for attribute \"%s\"", attr);
        } else if (rc != 0) {
            set_err(err, errsz, "%s", "out of memory");
        }
        return rc;
    }
    if (m->val.type == JS_NULL) {
        return 0;
    }
    name_of(r, &m->key, name);     /* a cut name is too long to be valid anyway */
    if (!sl_env_ext_name_valid(name)) {
        set_err(err, errsz, "bad extension name \"%.40s\" (want [a-z0-9]{1,20})", name);
        return -EINVAL;
    }
    if (sl_env_get_attr(env, name) != NULL) {
        set_err(err, errsz, "bad JSON: duplicate member \"%s\"", name);
        return -EINVAL;
    }
    switch (m->val.type) {
    case JS_STRING:
        text = str_of(r, &m->val, 0, &len);
        if (text == NULL) {
            set_err(err, errsz, "%s", "out of memory");
            return -ENOMEM;
        }
        break;
    case JS_NUMBER: {
        double d = js_number(&r->js, &m->val);
        if (!isfinite(d)) {
            set_err(err, errsz, "%s", "out of memory");
            return -ENOMEM;
        }
        number_text(d, num, sizeof(num));
        text = num;
        len = strlen(num);
        break;
    }
    case JS_TRUE:
    case JS_FALSE:
        text = m->val.type == JS_TRUE ? "true" : "false";
        len = strlen(text);
        break;
    default:
        set_err(err, errsz, "extension \"%s\" must be a string, number or boolean", name);
        return -EINVAL;
    }
    rc = sl_env_set_attr(env, name, text, len);
    if (rc == -EINVAL) {
        set_err(err, errsz, "bad value for attribute \"%s\"", name);
    } else if (rc != 0) {
        set_err(err, errsz, "%s", "out of memory");
    }
    return rc;
}

/* Set env->data from "data" / "data_base64" (either may be NULL). 0 or -errno. */
static int apply_data(struct reader *r, struct sl_env *env, const struct member *data,
                      const struct member *b64, char *err, size_t errsz)
{
    const char *ct = env->datacontenttype;
    const char *text;
    size_t len;
    int rc = 0;

    if (data != NULL && b64 != NULL) {
        set_err(err, errsz, "%s", "\"data\" and \"data_base64\" are mutually exclusive");
        return -EINVAL;
    }
    if (b64 != NULL) {
        struct sl_buf *buf;
        if (b64->val.type != JS_STRING) {
            set_err(err, errsz, "%s", "\"data_base64\" must be a string");
            return -EINVAL;
        }
        text = str_of(r, &b64->val, 0, &len);
        buf = text != NULL ? b64_decode(text, len, &rc) : NULL;
        if (text == NULL) {
            rc = -ENOMEM;
        }
        if (buf == NULL) {
            set_err(err, errsz, "%s", rc == -ENOMEM ? "out of memory" : "bad data_base64");
            return rc;
        }
        sl_env_set_data_buf(env, buf);
        sl_buf_unref(&buf);
        return 0;
    }
    if (data == NULL) {
        return 0;
    }
    if (data->val.type == JS_STRING && !ce_json_is_json_type(ct)) {
        text = str_of(r, &data->val, 0, &len);
        rc = text != NULL ? sl_env_set_data(env, text, len) : -ENOMEM;
        if (rc == 0 && ct == NULL) {
            rc = sl_env_set_attr_at(env, SL_ATTR_DATACONTENTTYPE, "text/plain; charset=utf-8",
                                    25, true);
        }
    } else {
        /* JSON text: the sender's bytes as they are (a string with its quotes). */
        size_t start = data->val.start - (data->val.type == JS_STRING);
        size_t end = data->val.end + (data->val.type == JS_STRING);
        rc = sl_env_set_data(env, r->js.p + start, end - start);
        if (rc == 0 && ct == NULL) {
            rc = sl_env_set_attr_at(env, SL_ATTR_DATACONTENTTYPE, "application/json", 16,
                                    true);
        }
    }
    if (rc != 0) {
        set_err(err, errsz, "%s", "out of memory");
    }
    return rc;
}

static void set_header_err(char *err, size_t errsz, size_t i, const char *why)
{
    if (err != NULL && errsz > 0) {
        snprintf(err, errsz, "header %zu: %s", i, why);
    }
}

/* The header object at the next byte of hs (entry i of "headers", already validated):
 * exactly "name" (a string) and one of "value" (a string or null) or "value_base64" (a
 * string). Appends it to env's headers. 0 or -errno. */
static int apply_header(struct reader *r, struct js *hs, struct sl_env *env, size_t i,
                        char *err, size_t errsz)
{
    static const char shape[] = "want {\"name\": string, \"value\": string or null} or "
                                "{\"name\": string, \"value_base64\": string}";
    struct js_val key;
    struct js_val v[3];              /* name, value, value_base64 */
    bool have[3] = {false, false, false};
    bool first = true;
    const char *name;
    const char *value;
    size_t name_len;
    size_t value_len;
    int rc;

    if (js_peek(hs) != '{') {
        set_header_err(err, errsz, i, shape);
        return -EINVAL;
    }
    js_open(hs);
    while (js_member(hs, &first, &key) == 1) {
        static const char *const names[] = {"name", "value", "value_base64"};
        char kname[NAME_MAX_LEN + 1];
        int slot = -1;
        name_of(r, &key, kname);
        for (int k = 0; k < 3; k++) {
            if (strcmp(kname, names[k]) == 0) {
                slot = k;
            }
        }
        if (slot < 0 || have[slot]) {
            set_header_err(err, errsz, i, shape);
            return -EINVAL;
        }
        have[slot] = true;
        js_value(hs, &v[slot]);
    }
    if (!have[0] || v[0].type != JS_STRING || have[1] == have[2] ||
        (have[1] && v[1].type != JS_STRING && v[1].type != JS_NULL) ||
        (have[2] && v[2].type != JS_STRING)) {
        set_header_err(err, errsz, i, shape);
        return -EINVAL;
    }
    name = cstr_of(r, &v[0], 1, &name_len);
    if (name == NULL) {
        set_header_err(err, errsz, i, "out of memory");
        return -ENOMEM;
    }
    if (have[2]) {
        struct sl_buf *buf = NULL;
        value = str_of(r, &v[2], 0, &value_len);
        rc = -ENOMEM;
        if (value != NULL) {
            buf = b64_decode(value, value_len, &rc);
        }
        if (buf == NULL) {
            set_header_err(err, errsz, i, rc == -ENOMEM ? "out of memory" : "bad value_base64");
            return rc;
        }
        rc = sl_env_add_header(env, name, buf->data, (int32_t)buf->len);
        sl_buf_unref(&buf);
    } else if (v[1].type == JS_NULL) {
        rc = sl_env_add_header(env, name, NULL, -1);
    } else {
        value = str_of(r, &v[1], 0, &value_len);
        if (value == NULL) {
            set_header_err(err, errsz, i, "out of memory");
            return -ENOMEM;
        }
        if (value_len > (size_t)INT32_MAX) {
            set_header_err(err, errsz, i, "value too long");
            return -EINVAL;
        }
        rc = sl_env_add_header(env, name, value, (int32_t)value_len);
    }
    if (rc != 0) {
        set_header_err(err, errsz, i, "out of memory");
    }
    return rc;
}

/* The "headers" member (NULL if there is none): an array of header objects, added to
 * env's headers in order. 0 or -errno. */
static int apply_headers(struct reader *r, struct sl_env *env, const struct member *hdrs,
                         char *err, size_t errsz)
{
    struct js hs;
    bool first = true;
    size_t i = 0;

    if (hdrs == NULL) {
        return 0;
    }
    if (hdrs->val.type != JS_ARRAY) {
        set_err(err, errsz, "%s", "\"headers\" must be an array of header objects");
        return -EINVAL;
    }
    /* Walk the array again (it has been validated), starting at its '['. */
    js_init(&hs, r->js.p, hdrs->val.end);
    hs.i = hdrs->val.start;
    js_open(&hs);
    while (js_element(&hs, &first) == 1) {
        int rc = apply_header(r, &hs, env, i++, err, errsz);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The envelope for the members just collected. NULL with err set. */
static struct sl_env *build_event(struct reader *r, char *err, size_t errsz)
{
    const struct member *sv = NULL;
    const struct member *data = NULL;
    const struct member *b64 = NULL;
    const struct member *hdrs = NULL;
    unsigned seen = 0;
    struct sl_env *env;

    /* Known members first: a second one is ambiguous (which "id" did the sender mean?). */
    for (size_t k = 0; k < r->n_m; k++) {
        const struct member *m = &r->m[k];
        if (m->kind == CE_EXTENSION) {
            continue;
        }
        if (seen & (1u << m->kind)) {
            set_err(err, errsz, "bad JSON: duplicate member \"%s\"", ce_members[m->kind]);
            return NULL;
        }
        seen |= 1u << m->kind;
        if (m->kind == CE_SPECVERSION) {
            sv = m;
        } else if (m->kind == CE_DATA) {
            data = m;
        } else if (m->kind == CE_DATA_BASE64) {
            b64 = m;
        } else if (m->kind == CE_HEADERS) {
            hdrs = m;
        }
    }
    if (sv == NULL) {
        set_err(err, errsz, "%s", "missing \"specversion\"");
        return NULL;
    }
    {
        size_t len;
        const char *v = sv->val.type == JS_STRING ? str_of(r, &sv->val, 0, &len) : NULL;
        if (v == NULL || len != 3 || memcmp(v, "1.0", 3) != 0) {
            set_err(err, errsz, "%s", r->oom ? "out of memory" : "\"specversion\" must be \"1.0\"");
            return NULL;
        }
    }
    env = sl_env_new();
    if (env == NULL) {
        set_err(err, errsz, "%s", "out of memory");
        return NULL;
    }
    for (size_t k = 0; k < r->n_m; k++) {
        const struct member *m = &r->m[k];
        if (m == sv || m == data || m == b64 || m == hdrs) {
            continue;
        }
        if (apply_member(r, env, m, err, errsz) != 0) {
            sl_env_unref(&env);
            return NULL;
        }
    }
    if (apply_data(r, env, data, b64, err, errsz) != 0 ||
        apply_headers(r, env, hdrs, err, errsz) != 0) {
        sl_env_unref(&env);
        return NULL;
    }
    return env;
}

/* "bad JSON at line L column C: why" for the scanner's error. */
static void set_bad_json(char *err, size_t errsz, const struct reader *r)
{
    size_t line;
    size_t col;

    if (err == NULL || errsz == 0) {
        return;
    }
    js_position(r->js.p, r->js.at, &line, &col);
    snprintf(err, errsz, "bad JSON at line %zu column %zu: %s", line, col, r->js.why);
}

/* The root must open an object or array: else bad JSON at the first non-blank byte. */
static int check_root(struct reader *r)
{
    int c = js_peek(&r->js);

    if (c == '{' || c == '[') {
        return c;
    }
    js_fail(&r->js, r->js.i, c < 0 ? "'[' or '{' expected near end of input"
                                   : "'[' or '{' expected");
    return -1;
}

struct sl_env *ce_json_parse_event(const char *json, size_t len, char *err, size_t errsz)
{
    struct reader r;
    struct sl_env *env = NULL;
    char sub[200];
    struct js_val skipped;
    const char *why = NULL;

    reader_init(&r, json, len);
    switch (check_root(&r)) {
    case '{':
        if (collect_members(&r) && js_end(&r.js)) {
            env = build_event(&r, sub, sizeof(sub));
            why = sub;
        }
        break;
    case '[':
        if (js_value(&r.js, &skipped) && js_end(&r.js)) {
            why = "a CloudEvent must be a JSON object";
        }
        break;
    default:
        break;
    }
    if (r.oom) {
        set_err(err, errsz, "%s", "out of memory");
        sl_env_unref(&env);
    } else if (r.js.why != NULL) {
        set_bad_json(err, errsz, &r);
    } else if (env == NULL) {
        set_err(err, errsz, "%s", why);
    }
    reader_free(&r);
    return env;
}

void ce_json_free_batch(struct sl_env ***envsp, size_t n)
{
    struct sl_env **envs = envsp != NULL ? *envsp : NULL;

    if (envs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sl_env_unref(&envs[i]);
    }
    free(envs);
    *envsp = NULL;
}

int ce_json_parse_batch(const char *json, size_t len, size_t max_events,
                        struct sl_env ***out, size_t *n, char *err, size_t errsz)
{
    struct reader r;
    struct sl_env **envs = NULL;
    size_t cap = 0;
    size_t count = 0;                /* elements seen */
    size_t built = 0;                /* envelopes in envs */
    size_t bad_at = 0;               /* the first bad event, when sub is set */
    bool bad = false;
    char sub[200];
    int rc = 0;

    *out = NULL;
    *n = 0;
    reader_init(&r, json, len);
    switch (check_root(&r)) {
    case '[': {
        bool first = true;
        int more;
        js_open(&r.js);
        while ((more = js_element(&r.js, &first)) == 1) {
            struct js_val skipped;
            bool build = !bad && count < max_events;
            if (js_peek(&r.js) != '{' || !build) {
                /* not an event, or one that will not be built: validated only */
                if (!js_value(&r.js, &skipped)) {
                    break;
                }
                if (build) {
                    bad = true;
                    bad_at = count;
                    snprintf(sub, sizeof(sub), "a CloudEvent must be a JSON object");
                }
            } else if (!collect_members(&r)) {
                break;
            } else {
                struct sl_env *env;
                if (built == cap) {
                    size_t ncap = cap > 0 ? cap * 2 : 16;
                    struct sl_env **grown = realloc(envs, ncap * sizeof(*grown));
                    if (grown == NULL) {
                        r.oom = true;
                        break;
                    }
                    envs = grown;
                    cap = ncap;
                }
                env = build_event(&r, sub, sizeof(sub));
                if (env == NULL) {
                    bad = true;
                    bad_at = count;
                } else {
                    envs[built++] = env;
                }
            }
            count++;
        }
        if (more == 0) {
            js_end(&r.js);
        }
        break;
    }
    case '{': {
        struct js_val skipped;
        if (js_value(&r.js, &skipped)) {
            js_end(&r.js);
        }
        break;
    }
    default:
        break;
    }
    if (r.oom) {
        set_err(err, errsz, "%s", "out of memory");
        rc = -ENOMEM;
    } else if (r.js.why != NULL) {
        set_bad_json(err, errsz, &r);
        rc = strcmp(r.js.why, "out of memory") == 0 ? -ENOMEM : -EINVAL;
    } else if (count == 0) {
        set_err(err, errsz, "%s", "a batch must be a non-empty JSON array of CloudEvents");
        rc = -EINVAL;
    } else if (count > max_events) {
        set_err(err, errsz, "%s", "too many events in the batch");
        rc = -E2BIG;
    } else if (bad) {
        /* Keep the "bad JSON" prefix first: callers map it to a reason code. */
        if (err != NULL && errsz > 0 && strncmp(sub, "bad JSON", 8) == 0) {
            snprintf(err, errsz, "bad JSON in event %zu%s", bad_at, sub + 8);
        } else if (err != NULL && errsz > 0) {
            snprintf(err, errsz, "event %zu: %s", bad_at, sub);
        }
        rc = -EINVAL;
    }
    reader_free(&r);
    if (rc != 0) {
        ce_json_free_batch(&envs, built);
        return rc;
    }
    *out = envs;
    *n = count;
    return 0;
}

/* ---------- output ---------- */

int ce_json_buf_add(struct ce_json_buf *b, const void *p, size_t n)
{
    if (n >= SIZE_MAX / 2 - b->len) {
        return -ENOMEM;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 256;
        char *grown;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        grown = realloc(b->data, cap);
        if (grown == NULL) {
            return -ENOMEM;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void ce_json_buf_free(struct ce_json_buf *b)
{
    if (b != NULL) {
        free(b->data);
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
    }
}

static int set_str(json_t *obj, const char *key, const char *value)
{
    json_t *s;

    if (value == NULL) {
        return 0;
    }
    s = json_string(value);
    if (s == NULL) {
        /* Not UTF-8: keep the member out rather than emit invalid JSON. */
        return 0;
    }
    return json_object_set_new(obj, key, s);
}

/* Text: no NUL or control characters other than tab, CR, LF (UTF-8 validity is
 * checked by json_stringn). */
static bool is_text(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* p[0..len) as a new base64 JSON string, or NULL on out of memory. */
static json_t *b64_string(const uint8_t *p, size_t len)
{
    size_t cap;
    unsigned char *b64;
    json_t *s;

    if (len > (size_t)INT32_MAX / 4 * 3) {
        return NULL;
    }
    cap = (len + 2) / 3 * 4 + 1;
    b64 = malloc(cap);
    if (b64 == NULL) {
        return NULL;
    }
    EVP_EncodeBlock(b64, p, (int)len);
    s = json_string((const char *)b64);
    free(b64);
    return s;
}

/* True if the payload is one JSON value the decoder would take as "data" unchanged
 * (json_scan's strict RFC 8259, whitespace around it allowed). Then its bytes can be
 * written into the output as they are. */
static bool data_is_json(const struct sl_buf *d)
{
    struct js s;
    struct js_val v;

    js_init(&s, d->data, d->len);
    return js_value(&s, &v) && js_end(&s);
}

/* Add "data" (a string) or "data_base64" to obj, or set *raw when the payload is JSON
 * to be spliced in as it is. 0 or -1 (out of memory). */
static int set_data(json_t *obj, const struct sl_env *env, bool *raw)
{
    const struct sl_buf *d = env->data;
    json_t *v;

    *raw = false;
    if (d == NULL) {
        return 0;
    }
    if (ce_json_is_json_type(env->datacontenttype) && data_is_json(d)) {
        *raw = true;
        return 0;
    }
    v = is_text(d->data, d->len) ? json_stringn((const char *)d->data, d->len) : NULL;
    if (v != NULL) {
        return json_object_set_new(obj, "data", v);
    }
    return json_object_set_new(obj, "data_base64", b64_string(d->data, d->len));
}

/* The "headers" array for env's headers, or NULL on out of memory. A header whose name
 * is not UTF-8 cannot be named in JSON and is left out. */
static json_t *headers_array(const struct sl_env *env)
{
    json_t *arr = json_array();
    int rc = 0;

    for (size_t i = 0; arr != NULL && rc == 0 && i < env->n_headers; i++) {
        const struct sl_env_hdr *h = &env->headers[i];
        json_t *name = json_string(h->name);
        json_t *o;
        if (name == NULL) {
            continue;
        }
        o = json_object();
        rc |= json_object_set_new(o, "name", name);
        if (h->value == NULL) {
            rc |= json_object_set_new(o, "value", json_null());
        } else {
            /* A NUL would need \u0000, which the decoder refuses: base64 it. */
            json_t *v = memchr(h->value->data, 0, h->value->len) == NULL
                            ? json_stringn((const char *)h->value->data, h->value->len)
                            : NULL;
            if (v != NULL) {
                rc |= json_object_set_new(o, "value", v);
            } else {
                rc |= json_object_set_new(o, "value_base64",
                                          b64_string(h->value->data, h->value->len));
            }
        }
        rc |= json_array_append_new(arr, o);
    }
    if (rc != 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Every member of env's event but a raw JSON "data", in output order. */
static json_t *event_object(const struct sl_env *env, bool *raw)
{
    json_t *obj = json_object();
    char idbuf[48];
    int rc = 0;

    *raw = false;
    if (obj == NULL) {
        return NULL;
    }
    rc |= json_object_set_new(obj, "specversion", json_string("1.0"));
    if (env->id == NULL && env->offset >= 0) {
        snprintf(idbuf, sizeof(idbuf), "%" PRId32 "-%" PRId64, env->partition, env->offset);
        rc |= set_str(obj, "id", idbuf);
    } else {
        rc |= set_str(obj, "id", env->id);
    }
    rc |= set_str(obj, "source", env->source);
    rc |= set_str(obj, "type", env->type);
    rc |= set_str(obj, "subject", env->subject);
    rc |= set_str(obj, "time", env->time);
    rc |= set_str(obj, "datacontenttype", env->datacontenttype);
    rc |= set_str(obj, "dataschema", env->dataschema);
    for (size_t i = 0; i < env->n_ext; i++) {
        rc |= set_str(obj, env->ext[i].name, env->ext[i].value);
    }
    if (env->offset >= 0) {
        rc |= json_object_set_new(obj, "partition", json_integer(env->partition));
        rc |= json_object_set_new(obj, "offset", json_integer(env->offset));
        if (env->key != NULL) {
            json_t *k = json_stringn((const char *)env->key->data, env->key->len);
            if (k != NULL) {
                rc |= json_object_set_new(obj, "partitionkey", k);
            }
        }
    }
    if (env->n_headers > 0) {
        rc |= json_object_set_new(obj, "headers", headers_array(env));
    }
    rc |= set_data(obj, env, raw);
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int ce_json_render_event(const struct sl_env *env, struct ce_json_buf *out)
{
    size_t mark = out->len;
    bool raw;
    json_t *obj = event_object(env, &raw);
    char *text;
    size_t n;
    int rc;

    if (obj == NULL) {
        return -ENOMEM;
    }
    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        return -ENOMEM;
    }
    n = strlen(text);     /* "{...}": at least specversion is in it */
    if (!raw) {
        rc = ce_json_buf_add(out, text, n);
    } else {
        rc = ce_json_buf_add(out, text, n - 1);
        if (rc == 0) {
            rc = ce_json_buf_add(out, ",\"data\":", 8);
        }
        if (rc == 0) {
            rc = ce_json_buf_add(out, env->data->data, env->data->len);
        }
        if (rc == 0) {
            rc = ce_json_buf_add(out, "}", 1);
        }
    }
    free(text);
    if (rc != 0) {
        out->len = mark;
        if (out->data != NULL) {
            out->data[mark] = '\0';
        }
    }
    return rc;
}

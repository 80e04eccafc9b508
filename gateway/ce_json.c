#include "gateway/ce_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

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

static bool ext_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 20) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
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

/* Every CloudEvents member name the decoder knows, in index order; a second one is
 * rejected (bit i of a mask per event). Other names are extensions. */
enum ce_member {
    CE_SPECVERSION, CE_DATA, CE_DATA_BASE64, CE_OFFSET, CE_PARTITION,
    CE_ID, CE_SOURCE, CE_TYPE, CE_SUBJECT, CE_TIME, CE_DATACONTENTTYPE, CE_DATASCHEMA,
    CE_EXTENSION,
};

static const char *const ce_members[] = {
    "specversion", "data", "data_base64", "offset", "partition",
    "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
};

static enum ce_member member_index(const char *name)
{
    for (int i = 0; i < CE_EXTENSION; i++) {
        if (ce_members[i][0] == name[0] && strcmp(ce_members[i], name) == 0) {
            return (enum ce_member)i;
        }
    }
    return CE_EXTENSION;
}

/* 1 for the bytes a JSON string may hold as they are: printable ASCII but '"' and '\\'. */
static const unsigned char str_plain[256] = {
    [0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7f] = 1,
};

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the strict UTF-8 sequence at s[0..n) (no overlongs, surrogates or code
 * points above U+10FFFF), or 0 if there is none. s[0] >= 0x80. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t need;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 1;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 2;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80;
        hi = s[0] == 0xed ? 0x9f : 0xbf;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 3;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;
        hi = s[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n <= need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t k = 2; k <= need; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return need + 1;
}

/* The escape at s[0] == '\\' (n bytes left): its length, or 0 with *why set. */
static size_t escape_len(const unsigned char *s, size_t n, const char **why)
{
    if (n >= 2 && s[1] != '\0' && strchr("\"\\/bfnrt", s[1]) != NULL) {
        return 2;
    }
    if (n < 6 || s[1] != 'u' || !is_hex(s[2]) || !is_hex(s[3]) || !is_hex(s[4]) ||
        !is_hex(s[5])) {
        *why = "invalid escape";
        return 0;
    }
    if (s[2] == '0' && s[3] == '0' && s[4] == '0' && s[5] == '0') {
        *why = "\\u0000 is not allowed";
        return 0;
    }
    return 6;
}

/* Length of the number token at s[0] (n bytes left) if it follows the JSON grammar and
 * is not followed by more number characters, else 0. */
static size_t number_len(const unsigned char *s, size_t n)
{
    size_t i = 0;

    if (i < n && s[i] == '-') {
        i++;
    }
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && is_digit(s[i])) {
        while (i < n && is_digit(s[i])) {
            i++;
        }
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        if (++i >= n || !is_digit(s[i])) {
            return 0;
        }
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        if (i >= n || !is_digit(s[i])) {
            return 0;
        }
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    if (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == '+' || s[i] == '-' ||
                  s[i] == 'e' || s[i] == 'E')) {
        return 0;
    }
    return i;
}

/*
 * One pass over the raw text for what cJSON accepts but RFC 8259 (and jansson before it)
 * rejects: outside strings, control bytes other than tab, LF, CR (cJSON skips them as
 * whitespace), non-ASCII bytes (a UTF-8 BOM, which cJSON skips) and numbers such as
 * "01", "1." or "-.5"; inside strings, raw control bytes, invalid UTF-8, unknown escapes,
 * \u escapes without four hex digits (cJSON decodes them as U+0000) and \u0000 (which
 * cJSON would turn into a truncated C string). Escapes are consumed whole, so the text
 * "\\u0000" (an escaped backslash) is not mistaken for one. Syntax is left to cJSON.
 * Returns NULL, or the reason with *at set to the offset of the offending byte.
 */
static const char *json_prescan(const unsigned char *p, size_t len, size_t *at)
{
    const char *why = NULL;
    size_t i = 0;
    size_t k;

    while (i < len) {
        unsigned char c = p[i];

        if (c == '"') {
            for (i++; i < len; i += k) {
                while (i < len && str_plain[p[i]]) {
                    i++;
                }
                if (i == len || p[i] == '"') {
                    break;
                }
                c = p[i];
                if (c == '\\') {
                    k = escape_len(p + i, len - i, &why);
                } else if (c < 0x20) {
                    why = "control character in a string";
                    k = 0;
                } else {
                    k = utf8_len(p + i, len - i);
                    why = "invalid UTF-8";
                }
                if (k == 0) {
                    *at = i;
                    return why;
                }
            }
            i++;
        } else if (c == '-' || is_digit(c)) {
            k = number_len(p + i, len - i);
            if (k == 0) {
                *at = i;
                return "invalid number";
            }
            i += k;
        } else if ((c >= 0x20 && c < 0x7f) || is_ws(c)) {
            i++;
        } else {
            *at = i;
            return "invalid character";
        }
    }
    return NULL;
}

/* "bad JSON at line L column C: why" for the byte at offset at. */
static void set_bad_json(char *err, size_t errsz, const char *json, size_t at,
                         const char *why)
{
    size_t line = 1;
    size_t col = 1;

    if (err == NULL || errsz == 0) {
        return;
    }
    for (size_t i = 0; i < at; i++) {
        if (json[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(err, errsz, "bad JSON at line %zu column %zu: %s", line, col, why);
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

/* True if v holds a number cJSON could not represent (it overflowed to infinity). */
static bool has_non_finite(const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        return !isfinite(v->valuedouble);
    }
    for (const cJSON *c = v->child; c != NULL; c = c->next) {
        if (has_non_finite(c)) {
            return true;
        }
    }
    return false;
}

/* Apply member v (named name, of kind idx) other than specversion/data/data_base64.
 * 0 or -errno. */
static int apply_member(struct sl_env *env, enum ce_member idx, const char *name,
                        const cJSON *v, char *err, size_t errsz)
{
    char num[64];
    const char *text;
    int rc;

    if (idx == CE_OFFSET || idx == CE_PARTITION) {
        return 0;
    }
    if (idx != CE_EXTENSION) {
        if (!cJSON_IsString(v)) {
            set_err(err, errsz, "attribute \"%s\" must be a string", name);
            return -EINVAL;
        }
        text = v->valuestring;
        if (text[0] == '\0' && (idx == CE_ID || idx == CE_SOURCE || idx == CE_TYPE)) {
            set_err(err, errsz, "attribute \"%s\" must not be empty", name);
            return -EINVAL;
        }
    } else {
        if (cJSON_IsNull(v)) {
            return 0;
        }
        if (!ext_name_valid(name)) {
            set_err(err, errsz, "bad extension name \"%.40s\" (want [a-z0-9]{1,20})", name);
            return -EINVAL;
        }
        if (sl_env_get_attr(env, name) != NULL) {
            set_err(err, errsz, "bad JSON: duplicate member \"%s\"", name);
            return -EINVAL;
        }
        if (cJSON_IsString(v)) {
            text = v->valuestring;
        } else if (cJSON_IsNumber(v)) {
            if (!isfinite(v->valuedouble)) {
                set_err(err, errsz, "bad JSON: number out of range in \"%s\"", name);
                return -EINVAL;
            }
            number_text(v->valuedouble, num, sizeof(num));
            text = num;
        } else if (cJSON_IsBool(v)) {
            text = cJSON_IsTrue(v) ? "true" : "false";
        } else {
            set_err(err, errsz, "extension \"%s\" must be a string, number or boolean", name);
            return -EINVAL;
        }
    }
    rc = sl_env_set_attr(env, name, text, strlen(text));
    if (rc == -EINVAL) {
        set_err(err, errsz, "bad value for attribute \"%s\"", name);
    } else if (rc != 0) {
        set_err(err, errsz, "%s", "out of memory");
    }
    return rc;
}

/* Set env->data from "data" / "data_base64". 0 or -errno. */
static int apply_data(struct sl_env *env, const cJSON *data, const cJSON *b64, char *err,
                      size_t errsz)
{
    const char *ct = sl_env_get_attr(env, "datacontenttype");
    int rc = 0;

    if (data != NULL && b64 != NULL) {
        set_err(err, errsz, "%s", "\"data\" and \"data_base64\" are mutually exclusive");
        return -EINVAL;
    }
    if (b64 != NULL) {
        struct sl_buf *buf;
        if (!cJSON_IsString(b64)) {
            set_err(err, errsz, "%s", "\"data_base64\" must be a string");
            return -EINVAL;
        }
        buf = b64_decode(b64->valuestring, strlen(b64->valuestring), &rc);
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
    if (cJSON_IsString(data) && !ce_json_is_json_type(ct)) {
        rc = sl_env_set_data(env, data->valuestring, strlen(data->valuestring));
        if (rc == 0 && ct == NULL) {
            rc = sl_env_set_attr(env, "datacontenttype", "text/plain; charset=utf-8", 25);
        }
    } else {
        char *text;
        if (has_non_finite(data)) {
            set_err(err, errsz, "%s", "bad JSON: number out of range in \"data\"");
            return -EINVAL;
        }
        text = cJSON_PrintUnformatted(data);
        if (text == NULL) {
            rc = -ENOMEM;
        } else {
            rc = sl_env_set_data(env, text, strlen(text));
            cJSON_free(text);
        }
        if (rc == 0 && ct == NULL) {
            rc = sl_env_set_attr(env, "datacontenttype", "application/json", 16);
        }
    }
    if (rc != 0) {
        set_err(err, errsz, "%s", "out of memory");
    }
    return rc;
}

/* One event from a parsed JSON value (borrowed). A new envelope, or NULL with err set. */
static struct sl_env *event_from_value(const cJSON *obj, char *err, size_t errsz)
{
    const cJSON *sv = NULL;
    const cJSON *data = NULL;
    const cJSON *b64 = NULL;
    unsigned seen = 0;
    struct sl_env *env;

    if (!cJSON_IsObject(obj)) {
        set_err(err, errsz, "%s", "a CloudEvent must be a JSON object");
        return NULL;
    }
    /* Known members first: a second one is ambiguous (which "id" did the sender mean?). */
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        enum ce_member i = member_index(m->string);
        if (i == CE_EXTENSION) {
            continue;
        }
        if (seen & (1u << i)) {
            set_err(err, errsz, "bad JSON: duplicate member \"%s\"", m->string);
            return NULL;
        }
        seen |= 1u << i;
        if (i == CE_SPECVERSION) {
            sv = m;
        } else if (i == CE_DATA) {
            data = m;
        } else if (i == CE_DATA_BASE64) {
            b64 = m;
        }
    }
    if (sv == NULL) {
        set_err(err, errsz, "%s", "missing \"specversion\"");
        return NULL;
    }
    if (!cJSON_IsString(sv) || strcmp(sv->valuestring, "1.0") != 0) {
        set_err(err, errsz, "%s", "\"specversion\" must be \"1.0\"");
        return NULL;
    }
    env = sl_env_new();
    if (env == NULL) {
        set_err(err, errsz, "%s", "out of memory");
        return NULL;
    }
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        if (m == sv || m == data || m == b64) {
            continue;
        }
        if (apply_member(env, member_index(m->string), m->string, m, err, errsz) != 0) {
            sl_env_unref(&env);
            return NULL;
        }
    }
    if (apply_data(env, data, b64, err, errsz) != 0) {
        sl_env_unref(&env);
        return NULL;
    }
    return env;
}

/* Parse json[0..len) (need not be NUL-terminated): an object or array, nothing after it
 * but whitespace. A new tree (cJSON_Delete), or NULL with "bad JSON ..." in err. */
static cJSON *load(const char *json, size_t len, char *err, size_t errsz)
{
    const char *end = NULL;
    const char *why;
    size_t at = 0;
    cJSON *root;

    if (len == 0) {
        set_bad_json(err, errsz, json, 0, "'[' or '{' expected near end of input");
        return NULL;
    }
    why = json_prescan((const unsigned char *)json, len, &at);
    if (why != NULL) {
        set_bad_json(err, errsz, json, at, why);
        return NULL;
    }
    root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (root == NULL) {
        at = end != NULL && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        set_bad_json(err, errsz, json, at, "syntax error");
        return NULL;
    }
    if (!cJSON_IsObject(root) && !cJSON_IsArray(root)) {
        while (is_ws((unsigned char)json[at])) {
            at++;
        }
        set_bad_json(err, errsz, json, at, "'[' or '{' expected");
        cJSON_Delete(root);
        return NULL;
    }
    at = (size_t)(end - json);
    while (at < len && is_ws((unsigned char)json[at])) {
        at++;
    }
    if (at < len) {
        set_bad_json(err, errsz, json, at, "end of input expected");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

struct sl_env *ce_json_parse_event(const char *json, size_t len, char *err, size_t errsz)
{
    cJSON *root = load(json, len, err, errsz);
    struct sl_env *env;

    if (root == NULL) {
        return NULL;
    }
    env = event_from_value(root, err, errsz);
    cJSON_Delete(root);
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
    cJSON *root;
    const cJSON *item;
    struct sl_env **envs;
    size_t count = 0;
    size_t i = 0;
    char sub[200];

    *out = NULL;
    *n = 0;
    root = load(json, len, err, errsz);
    if (root == NULL) {
        return -EINVAL;
    }
    for (item = root->child; cJSON_IsArray(root) && item != NULL; item = item->next) {
        count++;
    }
    if (count == 0) {
        set_err(err, errsz, "%s", "a batch must be a non-empty JSON array of CloudEvents");
        cJSON_Delete(root);
        return -EINVAL;
    }
    if (count > max_events) {
        set_err(err, errsz, "%s", "too many events in the batch");
        cJSON_Delete(root);
        return -E2BIG;
    }
    envs = calloc(count, sizeof(*envs));
    if (envs == NULL) {
        set_err(err, errsz, "%s", "out of memory");
        cJSON_Delete(root);
        return -ENOMEM;
    }
    for (item = root->child; item != NULL; item = item->next, i++) {
        envs[i] = event_from_value(item, sub, sizeof(sub));
        if (envs[i] == NULL) {
            /* Keep the "bad JSON" prefix first: callers map it to a reason code. */
            if (err != NULL && errsz > 0 && strncmp(sub, "bad JSON", 8) == 0) {
                snprintf(err, errsz, "bad JSON in event %zu%s", i, sub + 8);
            } else if (err != NULL && errsz > 0) {
                snprintf(err, errsz, "event %zu: %s", i, sub);
            }
            ce_json_free_batch(&envs, i);
            cJSON_Delete(root);
            return -EINVAL;
        }
    }
    cJSON_Delete(root);
    *out = envs;
    *n = count;
    return 0;
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

static int set_data(json_t *obj, const struct sl_env *env)
{
    const struct sl_buf *d = env->data;
    json_t *v;

    if (d == NULL) {
        return 0;
    }
    if (ce_json_is_json_type(env->datacontenttype)) {
        v = json_loadb((const char *)d->data, d->len, JSON_DECODE_ANY, NULL);
        if (v != NULL) {
            return json_object_set_new(obj, "data", v);
        }
    }
    v = is_text(d->data, d->len) ? json_stringn((const char *)d->data, d->len) : NULL;
    if (v != NULL) {
        return json_object_set_new(obj, "data", v);
    }
    {
        size_t cap = (d->len + 2) / 3 * 4 + 1;
        unsigned char *b64 = malloc(cap);
        int rc;
        if (b64 == NULL) {
            return -1;
        }
        EVP_EncodeBlock(b64, d->data, (int)d->len);
        rc = json_object_set_new(obj, "data_base64", json_string((const char *)b64));
        free(b64);
        return rc;
    }
}

json_t *ce_json_from_env(const struct sl_env *env)
{
    json_t *obj = json_object();
    char idbuf[48];
    int rc = 0;

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
    rc |= set_data(obj, env);
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

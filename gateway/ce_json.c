#include "gateway/ce_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static const char *const ce_string_attrs[] = {
    "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", NULL,
};

static bool is_string_attr(const char *name)
{
    for (size_t i = 0; ce_string_attrs[i] != NULL; i++) {
        if (strcmp(ce_string_attrs[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Apply one member other than specversion/data/data_base64. 0 or -errno. */
static int apply_member(struct sl_env *env, const char *name, const json_t *v, char *err,
                        size_t errsz)
{
    char num[64];
    const char *text;
    size_t len;
    int rc;

    if (is_string_attr(name)) {
        if (!json_is_string(v)) {
            set_err(err, errsz, "attribute \"%s\" must be a string", name);
            return -EINVAL;
        }
        text = json_string_value(v);
        len = json_string_length(v);
        if (len == 0 && (strcmp(name, "id") == 0 || strcmp(name, "source") == 0 ||
                         strcmp(name, "type") == 0)) {
            set_err(err, errsz, "attribute \"%s\" must not be empty", name);
            return -EINVAL;
        }
    } else {
        if (strcmp(name, "offset") == 0 || strcmp(name, "partition") == 0 || json_is_null(v)) {
            return 0;
        }
        if (!ext_name_valid(name)) {
            set_err(err, errsz, "bad extension name \"%.40s\" (want [a-z0-9]{1,20})", name);
            return -EINVAL;
        }
        if (json_is_string(v)) {
            text = json_string_value(v);
            len = json_string_length(v);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            text = num;
            len = strlen(num);
        } else if (json_is_boolean(v)) {
            text = json_is_true(v) ? "true" : "false";
            len = strlen(text);
        } else if (json_is_real(v)) {
            snprintf(num, sizeof(num), "%.17g", json_real_value(v));
            text = num;
            len = strlen(num);
        } else {
            set_err(err, errsz, "extension \"%s\" must be a string, number or boolean", name);
            return -EINVAL;
        }
    }
    if (memchr(text, '\0', len) != NULL) {
        set_err(err, errsz, "attribute \"%s\" contains NUL", name);
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

/* Set env->data from "data" / "data_base64". 0 or -errno. */
static int apply_data(struct sl_env *env, const json_t *data, const json_t *b64, char *err,
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
        if (!json_is_string(b64)) {
            set_err(err, errsz, "%s", "\"data_base64\" must be a string");
            return -EINVAL;
        }
        buf = b64_decode(json_string_value(b64), json_string_length(b64), &rc);
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
    if (json_is_string(data) && !ce_json_is_json_type(ct)) {
        rc = sl_env_set_data(env, json_string_value(data), json_string_length(data));
        if (rc == 0 && ct == NULL) {
            rc = sl_env_set_attr(env, "datacontenttype", "text/plain; charset=utf-8", 25);
        }
    } else {
        char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) {
            rc = -ENOMEM;
        } else {
            rc = sl_env_set_data(env, text, strlen(text));
            free(text);
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

struct sl_env *ce_json_event_from_value(const json_t *obj, char *err, size_t errsz)
{
    const json_t *sv;
    const char *name;
    json_t *v;
    struct sl_env *env;

    if (!json_is_object(obj)) {
        set_err(err, errsz, "%s", "a CloudEvent must be a JSON object");
        return NULL;
    }
    sv = json_object_get(obj, "specversion");
    if (sv == NULL) {
        set_err(err, errsz, "%s", "missing \"specversion\"");
        return NULL;
    }
    if (!json_is_string(sv) || strcmp(json_string_value(sv), "1.0") != 0) {
        set_err(err, errsz, "%s", "\"specversion\" must be \"1.0\"");
        return NULL;
    }
    env = sl_env_new();
    if (env == NULL) {
        set_err(err, errsz, "%s", "out of memory");
        return NULL;
    }
    /* json_object_foreach needs a non-const object; it does not modify it. */
    json_object_foreach((json_t *)obj, name, v) {
        if (strcmp(name, "specversion") == 0 || strcmp(name, "data") == 0 ||
            strcmp(name, "data_base64") == 0) {
            continue;
        }
        if (apply_member(env, name, v, err, errsz) != 0) {
            sl_env_unref(&env);
            return NULL;
        }
    }
    if (apply_data(env, json_object_get(obj, "data"), json_object_get(obj, "data_base64"),
                   err, errsz) != 0) {
        sl_env_unref(&env);
        return NULL;
    }
    return env;
}

static json_t *load(const char *json, size_t len, char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL && err != NULL && errsz > 0) {
        snprintf(err, errsz, "bad JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
    }
    return root;
}

struct sl_env *ce_json_parse_event(const char *json, size_t len, char *err, size_t errsz)
{
    json_t *root = load(json, len, err, errsz);
    struct sl_env *env;

    if (root == NULL) {
        return NULL;
    }
    env = ce_json_event_from_value(root, err, errsz);
    json_decref(root);
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
    json_t *root;
    struct sl_env **envs;
    size_t count;
    char sub[200];

    *out = NULL;
    *n = 0;
    root = load(json, len, err, errsz);
    if (root == NULL) {
        return -EINVAL;
    }
    if (!json_is_array(root) || json_array_size(root) == 0) {
        set_err(err, errsz, "%s", "a batch must be a non-empty JSON array of CloudEvents");
        json_decref(root);
        return -EINVAL;
    }
    count = json_array_size(root);
    if (count > max_events) {
        set_err(err, errsz, "%s", "too many events in the batch");
        json_decref(root);
        return -E2BIG;
    }
    envs = calloc(count, sizeof(*envs));
    if (envs == NULL) {
        set_err(err, errsz, "%s", "out of memory");
        json_decref(root);
        return -ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        envs[i] = ce_json_event_from_value(json_array_get(root, i), sub, sizeof(sub));
        if (envs[i] == NULL) {
            if (err != NULL && errsz > 0) {
                snprintf(err, errsz, "event %zu: %s", i, sub);
            }
            ce_json_free_batch(&envs, i);
            json_decref(root);
            return -EINVAL;
        }
    }
    json_decref(root);
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

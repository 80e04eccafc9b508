#include "gateway/envelope.h"
#include "gateway/strutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- buffers ---- */

struct sl_buf *sl_buf_new(const void *data, size_t len)
{
    struct sl_buf *b = malloc(sizeof(*b) + len + 1);
    if (b == NULL) {
        return NULL;
    }
    atomic_init(&b->refs, 1);
    b->len = len;
    if (len > 0) {
        memcpy(b->data, data, len);
    }
    b->data[len] = '\0';
    return b;
}

struct sl_buf *sl_buf_ref(struct sl_buf *b)
{
    if (b != NULL) {
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    }
    return b;
}

void sl_buf_unref(struct sl_buf **bp)
{
    struct sl_buf *b = bp != NULL ? *bp : NULL;
    if (b == NULL) {
        return;
    }
    *bp = NULL;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        free(b);
    }
}

/* ---- envelopes ---- */

/*
 * An envelope and its strings in one allocation: the attribute, extension, header-name
 * and origin strings are carved from a small arena behind the struct while they fit
 * (most events need 100-200 bytes), and fall back to malloc beyond it. Strings are
 * never written after publish (the envelope is immutable then), so the arena needs no
 * lock; it goes away with the envelope at the last unref. Replacing a string while
 * building leaves its old arena bytes unused.
 */
#define ENV_ARENA 256

struct env_block {
    struct sl_env env;              /* must stay first: sl_env_unref frees the block */
    size_t used;
    char arena[ENV_ARENA];
};

static struct env_block *env_block(const struct sl_env *env)
{
    return (struct env_block *)(void *)env;
}

/* Room for a string of len bytes plus its NUL, from env's arena if it fits, else malloc
 * (NULL when out of memory). The caller writes it. */
static char *env_stralloc(struct sl_env *env, size_t len)
{
    struct env_block *blk = env_block(env);
    char *s;

    if (len < ENV_ARENA - blk->used) {
        s = blk->arena + blk->used;
        blk->used += len + 1;
    } else {
        s = malloc(len + 1);
    }
    return s;
}

/* A copy of value[0..len) plus a NUL, from env's arena if it fits, else malloc. */
static char *env_strndup(struct sl_env *env, const char *value, size_t len)
{
    char *s = env_stralloc(env, len);

    if (s == NULL) {
        return NULL;
    }
    memcpy(s, value, len);
    s[len] = '\0';
    return s;
}

/* Release a string from env_strndup (NULL: no-op; arena bytes stay with the block). */
static void env_str_free(struct sl_env *env, char *s)
{
    uintptr_t lo = (uintptr_t)env_block(env)->arena;

    if (s != NULL && ((uintptr_t)s < lo || (uintptr_t)s >= lo + ENV_ARENA)) {
        free(s);
    }
}

struct sl_env *sl_env_new(void)
{
    struct env_block *blk = malloc(sizeof(*blk));
    struct sl_env *env;

    if (blk == NULL) {
        return NULL;
    }
    memset(&blk->env, 0, sizeof(blk->env));
    blk->used = 0;
    env = &blk->env;
    atomic_init(&env->refs, 1);
    env->partition = -1;
    env->offset = -1;
    env->timestamp_ms = -1;
    return env;
}

struct sl_env *sl_env_ref(struct sl_env *env)
{
    if (env != NULL) {
        atomic_fetch_add_explicit(&env->refs, 1, memory_order_relaxed);
    }
    return env;
}

void sl_env_unref(struct sl_env **envp)
{
    struct sl_env *env = envp != NULL ? *envp : NULL;
    if (env == NULL) {
        return;
    }
    *envp = NULL;
    if (atomic_fetch_sub_explicit(&env->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    env_str_free(env, env->id);
    env_str_free(env, env->source);
    env_str_free(env, env->type);
    env_str_free(env, env->subject);
    env_str_free(env, env->time);
    env_str_free(env, env->datacontenttype);
    env_str_free(env, env->dataschema);
    for (size_t i = 0; i < env->n_ext; i++) {
        env_str_free(env, env->ext[i].name);
        env_str_free(env, env->ext[i].value);
        env_str_free(env, env->ext[i].header_name);
    }
    free(env->ext);
    for (size_t i = 0; i < env->n_headers; i++) {
        env_str_free(env, env->headers[i].name);
        sl_buf_unref(&env->headers[i].value);
    }
    free(env->headers);
    sl_buf_unref(&env->key);
    sl_buf_unref(&env->data);
    env_str_free(env, env->origin_name);
    env_str_free(env, env->destination);
    free(env_block(env));
}

static int set_str(struct sl_env *env, char **field, const char *value, size_t len)
{
    char *s = env_strndup(env, value, strnlen(value, len));
    if (s == NULL) {
        return -ENOMEM;
    }
    env_str_free(env, *field);
    *field = s;
    return 0;
}

bool sl_env_ext_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 20) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9'))) {
            return false;
        }
    }
    return true;
}

/* The context attributes with a field of their own, in the order the Kafka binding
 * writes them. */
static char **core_attr(struct sl_env *env, const char *name)
{
    /* by first letter: one comparison per lookup (this runs for every attribute of
     * every event decoded) */
    switch (name[0]) {
    case 'i':
        return strcmp(name, "id") == 0 ? &env->id : NULL;
    case 's':
        return strcmp(name, "source") == 0    ? &env->source
               : strcmp(name, "subject") == 0 ? &env->subject
                                              : NULL;
    case 't':
        return strcmp(name, "type") == 0 ? &env->type
               : strcmp(name, "time") == 0 ? &env->time
                                           : NULL;
    case 'd':
        return strcmp(name, "datacontenttype") == 0 ? &env->datacontenttype
               : strcmp(name, "dataschema") == 0    ? &env->dataschema
                                                    : NULL;
    default:
        return NULL;
    }
}

static bool is_specversion(const char *name)
{
    return name[0] == 's' && strcmp(name, "specversion") == 0;
}

static int set_str_len(struct sl_env *env, char **field, const char *value, size_t len);

/* Set a context attribute's field to value[0..len), which holds no NUL byte. */
static int set_core(struct sl_env *env, char **field, const char *value, size_t len)
{
    if (field == &env->time) {
        int64_t ms;
        if (sl_rfc3339_parse_ms(value, len, &ms) != 0) {
            return -EINVAL;
        }
        env->timestamp_ms = ms;
    } else if ((field == &env->id || field == &env->source || field == &env->type) &&
               len == 0) {
        return -EINVAL;     /* REQUIRED attributes must be non-empty strings */
    }
    return set_str_len(env, field, value, len);
}

int sl_env_set_attr_at(struct sl_env *env, enum sl_env_attr attr, const char *value,
                       size_t len, bool nul_free)
{
    char **field;

    switch (attr) {
    case SL_ATTR_ID:
        field = &env->id;
        break;
    case SL_ATTR_SOURCE:
        field = &env->source;
        break;
    case SL_ATTR_TYPE:
        field = &env->type;
        break;
    case SL_ATTR_SUBJECT:
        field = &env->subject;
        break;
    case SL_ATTR_TIME:
        field = &env->time;
        break;
    case SL_ATTR_DATACONTENTTYPE:
        field = &env->datacontenttype;
        break;
    case SL_ATTR_DATASCHEMA:
        field = &env->dataschema;
        break;
    default:
        return -EINVAL;
    }
    if (!nul_free && memchr(value, '\0', len) != NULL) {
        return -EINVAL;
    }
    return set_core(env, field, value, len);
}

int sl_env_set_attr(struct sl_env *env, const char *name, const char *value, size_t len)
{
    char **field;

    if (memchr(value, '\0', len) != NULL) {
        return -EINVAL;
    }
    if (is_specversion(name)) {
        return (len == 3 && memcmp(value, "1.0", 3) == 0) ? 0 : -EINVAL;
    }
    field = core_attr(env, name);
    if (field != NULL) {
        return set_core(env, field, value, len);
    }
    if (!sl_env_ext_name_valid(name)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < env->n_ext; i++) {
        if (strcmp(env->ext[i].name, name) == 0) {
            return set_str(env, &env->ext[i].value, value, len);
        }
    }
    struct sl_env_ext *ext = realloc(env->ext, (env->n_ext + 1) * sizeof(*ext));
    if (ext == NULL) {
        return -ENOMEM;
    }
    env->ext = ext;
    {
        char hname[24];
        size_t nlen = strlen(name);
        memcpy(hname, "ce_", 3);
        memcpy(hname + 3, name, nlen + 1);
        ext[env->n_ext].name = env_strndup(env, name, nlen);
        ext[env->n_ext].value = env_strndup(env, value, len);
        ext[env->n_ext].header_name = env_strndup(env, hname, nlen + 3);
    }
    if (ext[env->n_ext].name == NULL || ext[env->n_ext].value == NULL ||
        ext[env->n_ext].header_name == NULL) {
        env_str_free(env, ext[env->n_ext].name);
        env_str_free(env, ext[env->n_ext].value);
        env_str_free(env, ext[env->n_ext].header_name);
        return -ENOMEM;
    }
    env->n_ext++;
    return 0;
}

const char *sl_env_get_attr(const struct sl_env *env, const char *name)
{
    char **field;

    if (is_specversion(name)) {
        return "1.0";
    }
    field = core_attr((struct sl_env *)env, name);
    if (field != NULL) {
        return *field;
    }
    for (size_t i = 0; i < env->n_ext; i++) {
        if (strcmp(env->ext[i].name, name) == 0) {
            return env->ext[i].value;
        }
    }
    return NULL;
}

int sl_env_add_header(struct sl_env *env, const char *name, const void *value,
                      int32_t value_len)
{
    struct sl_env_hdr *h = realloc(env->headers, (env->n_headers + 1) * sizeof(*h));
    if (h == NULL) {
        return -ENOMEM;
    }
    env->headers = h;
    h = &env->headers[env->n_headers];
    h->name = env_strndup(env, name, strlen(name));
    h->value = NULL;
    if (h->name == NULL) {
        return -ENOMEM;
    }
    if (value != NULL && value_len >= 0) {
        h->value = sl_buf_new(value, (size_t)value_len);
        if (h->value == NULL) {
            env_str_free(env, h->name);
            return -ENOMEM;
        }
    }
    env->n_headers++;
    return 0;
}

const struct sl_env_hdr *sl_env_find_header(const struct sl_env *env, const char *name)
{
    for (size_t i = 0; i < env->n_headers; i++) {
        if (strcmp(env->headers[i].name, name) == 0) {
            return &env->headers[i];
        }
    }
    return NULL;
}

int sl_env_set_key(struct sl_env *env, const void *key, size_t len)
{
    struct sl_buf *b = sl_buf_new(key, len);
    if (b == NULL) {
        return -ENOMEM;
    }
    sl_buf_unref(&env->key);
    env->key = b;
    return 0;
}

int sl_env_set_data(struct sl_env *env, const void *data, size_t len)
{
    struct sl_buf *b = sl_buf_new(data, len);
    if (b == NULL) {
        return -ENOMEM;
    }
    sl_buf_unref(&env->data);
    env->data = b;
    return 0;
}

void sl_env_set_data_buf(struct sl_env *env, struct sl_buf *data)
{
    struct sl_buf *b = sl_buf_ref(data);
    sl_buf_unref(&env->data);
    env->data = b;
}

/* set_str for a value whose length is known to be its strlen (no strnlen again). */
static int set_str_len(struct sl_env *env, char **field, const char *value, size_t len)
{
    char *s = env_strndup(env, value, len);
    if (s == NULL) {
        return -ENOMEM;
    }
    env_str_free(env, *field);
    *field = s;
    return 0;
}

int sl_env_set_origin(struct sl_env *env, const char *adapter, const char *name,
                      const char *destination)
{
    sl_strlcpy(env->origin_adapter, adapter != NULL ? adapter : "",
               sizeof(env->origin_adapter));
    if (name != NULL && set_str_len(env, &env->origin_name, name, strlen(name)) != 0) {
        return -ENOMEM;
    }
    if (destination != NULL && set_str_len(env, &env->destination, destination,
                                           strlen(destination)) != 0) {
        return -ENOMEM;
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Event ids: UUID v4 from a per-thread xoshiro256** generator seeded once from
 * getrandom(). Ids need uniqueness, not secrecy, and a getrandom() call per event
 * would cost a system call on the publish path.
 */
static _Thread_local uint64_t rng_state[4];
static _Thread_local bool rng_seeded;

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t *st = rng_state;
    uint64_t result = rotl64(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return result;
}

static int rng_seed(void)
{
    size_t got = 0;
    uint8_t *p = (uint8_t *)rng_state;
    while (got < sizeof(rng_state)) {
        ssize_t n = getrandom(p + got, sizeof(rng_state) - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        got += (size_t)n;
    }
    if ((rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3]) == 0) {
        rng_state[0] = 1;        /* the all-zero state is the one fixed point */
    }
    rng_seeded = true;
    return 0;
}

static int make_uuid(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[16];
    uint64_t a, b;
    char *o = out;
    int i = 0;

    if (!rng_seeded) {
        int rc = rng_seed();
        if (rc != 0) {
            return rc;
        }
    }
    a = rng_next();
    b = rng_next();
    memcpy(r, &a, 8);
    memcpy(r + 8, &b, 8);
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    /* 8-4-4-4-12 hex digits: the groups end after bytes 4, 6, 8, 10 and 16 */
    for (int g = 0; g < 5; g++) {
        static const uint8_t end[5] = {4, 6, 8, 10, 16};
        if (g > 0) {
            *o++ = '-';
        }
        for (; i < end[g]; i++) {
            o[0] = hex[r[i] >> 4];
            o[1] = hex[r[i] & 15];
            o += 2;
        }
    }
    *o = '\0';
    return 0;
}

/* env->source = "/sluice/<adapter>/<name>", cut at SOURCE_MAX bytes. 0 or -ENOMEM. */
#define SOURCE_MAX 299

static size_t default_source(const struct sl_env *env, char *buf, size_t sz);

static int set_default_source(struct sl_env *env)
{
    const char *adapter = env->origin_adapter[0] != '\0' ? env->origin_adapter : "core";
    const char *name = env->origin_name != NULL ? env->origin_name : "default";
    size_t al = strlen(adapter), nl = strlen(name);
    size_t n = 8 + al + 1 + nl;
    char *s;

    if (n > SOURCE_MAX) {
        char buf[SOURCE_MAX + 1];
        n = default_source(env, buf, sizeof(buf));
        return set_str_len(env, &env->source, buf, n);
    }
    /* written in place: no copy through a buffer */
    s = env_stralloc(env, n);
    if (s == NULL) {
        return -ENOMEM;
    }
    memcpy(s, "/sluice/", 8);
    memcpy(s + 8, adapter, al);
    s[8 + al] = '/';
    memcpy(s + 9 + al, name, nl + 1);
    env_str_free(env, env->source);
    env->source = s;
    return 0;
}

/* Concatenate "/sluice/<adapter>/<name>" into buf (size sz). */
static size_t default_source(const struct sl_env *env, char *buf, size_t sz)
{
    const char *parts[4] = {"/sluice/",
                            env->origin_adapter[0] != '\0' ? env->origin_adapter : "core", "/",
                            env->origin_name != NULL ? env->origin_name : "default"};
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(parts[i]);
        if (l > sz - 1 - n) {
            l = sz - 1 - n;
        }
        memcpy(buf + n, parts[i], l);
        n += l;
    }
    buf[n] = '\0';
    return n;
}

/* The arrival time: *now if already read (>= 0), else the clock, kept in *now. */
static int64_t arrival_ms(int64_t *now)
{
    if (*now < 0) {
        *now = now_ms();
    }
    return *now;
}

/*
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" for ms into out (>= 25 bytes), its length returned. The
 * last millisecond formatted on this thread is kept: a busy thread finalizes many events
 * in the same millisecond, and formatting costs about as much as the rest of finalize.
 * Keyed by the exact value, so it never answers for another millisecond.
 */
static size_t format_time_cached(int64_t ms, char *out)
{
    static _Thread_local int64_t cached_ms = INT64_MIN;
    static _Thread_local char cached[32];
    static _Thread_local size_t cached_len;

    if (ms != cached_ms) {
        sl_rfc3339_format_ms(ms, cached, sizeof(cached));
        cached_len = strlen(cached);
        cached_ms = ms;
    }
    memcpy(out, cached, cached_len + 1);
    return cached_len;
}

int sl_env_finalize(struct sl_env *env)
{
    int64_t now = -1;
    return sl_env_finalize_now(env, &now);
}

int sl_env_finalize_now(struct sl_env *env, int64_t *now)
{
    char buf[300];

    if (env->id == NULL) {
        char *id = env_stralloc(env, 36);    /* the UUID is made in place */
        int rc;
        if (id == NULL) {
            return -ENOMEM;
        }
        rc = make_uuid(id);
        if (rc != 0) {
            env_str_free(env, id);
            return rc;
        }
        env->id = id;
    }
    if (env->source == NULL && set_default_source(env) != 0) {
        return -ENOMEM;
    }
    if (env->type == NULL && set_str_len(env, &env->type, "io.sluice.message", 17) != 0) {
        return -ENOMEM;
    }
    if (env->time == NULL) {
        env->timestamp_ms = arrival_ms(now);
        size_t n = format_time_cached(env->timestamp_ms, buf);
        if (set_str_len(env, &env->time, buf, n) != 0) {
            return -ENOMEM;
        }
    } else if (env->timestamp_ms < 0) {
        if (sl_rfc3339_parse_ms(env->time, strlen(env->time), &env->timestamp_ms) != 0) {
            env->timestamp_ms = arrival_ms(now);
        }
    }
    return 0;
}

/* ---- RFC 3339 ---- */

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    /* Days since 1970-01-01 in the proleptic Gregorian calendar. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int sl_rfc3339_parse_ms(const char *s, size_t len, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, ms = 0;
    size_t i;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (len < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec)) {
        return -EINVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60) {
        return -EINVAL;
    }
    i = 19;
    if (i < len && s[i] == '.') {
        size_t start = ++i;
        int scale = 100;
        while (i < len && isdigit((unsigned char)s[i])) {
            if (scale > 0) {
                ms += (s[i] - '0') * scale;
                scale /= 10;
            }
            i++;
        }
        if (i == start) {
            return -EINVAL;
        }
    }
    int64_t offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59) {
            return -EINVAL;
        }
        offset_min = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != len) {
        return -EINVAL;
    }
    if (sec == 60) {
        sec = 59;               /* leap second: clamp */
    }
    int64_t days = days_from_civil(y, mo, d);
    *out_ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms;
    return 0;
}

/* Howard Hinnant's civil_from_days: days since 1970-01-01 -> y, m, d. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *o, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

void sl_rfc3339_format_ms(int64_t ms, char *out, size_t outsz)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t frac = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t sod = secs - days * 86400;
    int64_t y;
    int m, d;
    char tmp[32];
    char *o = tmp;

    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        y = y < 0 ? 0 : 9999;      /* outside RFC 3339's range: clamp */
    }
    o = put_digits(o, y, 4);
    *o++ = '-';
    o = put_digits(o, m, 2);
    *o++ = '-';
    o = put_digits(o, d, 2);
    *o++ = 'T';
    o = put_digits(o, sod / 3600, 2);
    *o++ = ':';
    o = put_digits(o, sod / 60 % 60, 2);
    *o++ = ':';
    o = put_digits(o, sod % 60, 2);
    *o++ = '.';
    o = put_digits(o, frac, 3);
    *o++ = 'Z';
    size_t n = (size_t)(o - tmp);
    if (outsz == 0) {
        return;
    }
    if (n >= outsz) {
        n = outsz - 1;
    }
    memcpy(out, tmp, n);
    out[n] = '\0';
}

/* ---- Kafka protocol binding ---- */

static const struct {
    const char *header;            /* "ce_" + name, as a literal (no allocation) */
    size_t header_len;
    size_t field;                  /* offsetof the attribute's field in sl_env */
} binding_attrs[] = {
    {"ce_id", 5, offsetof(struct sl_env, id)},
    {"ce_source", 9, offsetof(struct sl_env, source)},
    {"ce_type", 7, offsetof(struct sl_env, type)},
    {"ce_subject", 10, offsetof(struct sl_env, subject)},
    {"ce_time", 7, offsetof(struct sl_env, time)},
    {"ce_dataschema", 13, offsetof(struct sl_env, dataschema)},
};
#define N_BINDING_ATTRS (sizeof(binding_attrs) / sizeof(binding_attrs[0]))

size_t sl_env_record_headers(const struct sl_env *env)
{
    /* ce_specversion + attributes + extensions + content-type + own headers */
    return 1 + N_BINDING_ATTRS + env->n_ext + 1 + env->n_headers;
}

static void put_hdr(struct sl_hdr *h, const char *name, size_t name_len, const char *value)
{
    h->name = name;
    h->name_len = name_len;
    h->value = (const uint8_t *)value;
    h->value_len = (int32_t)strlen(value);
}

void sl_env_to_record(const struct sl_env *env, struct sl_hdr *hdrs, struct sl_rec_in *rec)
{
    size_t n = 0;

    put_hdr(&hdrs[n++], "ce_specversion", 14, "1.0");
    for (size_t i = 0; i < N_BINDING_ATTRS; i++) {
        const char *v = *(const char *const *)((const char *)env + binding_attrs[i].field);
        if (v != NULL) {
            put_hdr(&hdrs[n++], binding_attrs[i].header, binding_attrs[i].header_len, v);
        }
    }
    for (size_t i = 0; i < env->n_ext; i++) {
        put_hdr(&hdrs[n++], env->ext[i].header_name, strlen(env->ext[i].header_name),
                env->ext[i].value);
    }
    if (env->datacontenttype != NULL) {
        put_hdr(&hdrs[n++], "content-type", 12, env->datacontenttype);
    }
    for (size_t i = 0; i < env->n_headers; i++) {
        hdrs[n].name = env->headers[i].name;
        hdrs[n].name_len = strlen(env->headers[i].name);
        if (env->headers[i].value != NULL) {
            hdrs[n].value = env->headers[i].value->data;
            hdrs[n].value_len = (int32_t)env->headers[i].value->len;
        } else {
            hdrs[n].value = NULL;
            hdrs[n].value_len = -1;
        }
        n++;
    }
    rec->timestamp = env->timestamp_ms;
    rec->key = env->key != NULL ? env->key->data : NULL;
    rec->key_len = env->key != NULL ? (int32_t)env->key->len : -1;
    rec->value = env->data != NULL ? env->data->data : NULL;
    rec->value_len = env->data != NULL ? (int32_t)env->data->len : -1;
    rec->headers = hdrs;
    rec->n_headers = n;
}

struct sl_env *sl_env_from_record(const struct sl_record *rec, int32_t partition)
{
    struct sl_env *env = sl_env_new();
    struct sl_rb_hdr_iter it;
    struct sl_hdr h;
    char name[256];
    int rc;

    if (env == NULL) {
        return NULL;
    }
    env->partition = partition;
    env->offset = rec->offset;
    env->timestamp_ms = rec->timestamp;
    if (rec->key_len >= 0 && sl_env_set_key(env, rec->key, (size_t)rec->key_len) != 0) {
        goto fail;
    }
    if (rec->value_len >= 0 &&
        sl_env_set_data(env, rec->value, (size_t)rec->value_len) != 0) {
        goto fail;
    }
    sl_rb_hdr_iter_init(&it, rec);
    while ((rc = sl_rb_hdr_iter_next(&it, &h)) == 1) {
        if (h.name_len >= sizeof(name)) {
            continue;               /* longer than any header sluice writes: skip */
        }
        memcpy(name, h.name, h.name_len);
        name[h.name_len] = '\0';
        if (h.name_len > 3 && memcmp(name, "ce_", 3) == 0 && h.value_len >= 0) {
            int64_t keep_ts = env->timestamp_ms;
            rc = sl_env_set_attr(env, name + 3, (const char *)h.value, (size_t)h.value_len);
            env->timestamp_ms = keep_ts;   /* the record timestamp is authoritative */
            if (rc == -ENOMEM) {
                goto fail;
            }
            if (rc == 0) {
                continue;
            }
            /* not a valid attribute: keep it as a plain header */
        } else if (strcmp(name, "content-type") == 0 && h.value_len >= 0) {
            if (set_str(env, &env->datacontenttype, (const char *)h.value,
                        (size_t)h.value_len) != 0) {
                goto fail;
            }
            continue;
        }
        if (sl_env_add_header(env, name, h.value, h.value_len) != 0) {
            goto fail;
        }
    }
    if (rc < 0) {
        goto fail;
    }
    return env;
fail:
    sl_env_unref(&env);
    return NULL;
}

/*
 * Password checks off the loop: a bounded count of checks on a sl_workq (gateway/workq.h),
 * verdicts back on the loop through its mailbox, a cache of successes. See mqtt_auth.h.
 */
#include "adapters/mqtt/mqtt_auth.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "gateway/logging.h"
#include "gateway/metrics.h"
#include "gateway/workq.h"

#define AUTH_MAX_THREADS 16
#define AUTH_KEY_LEN 32

/* One queued check: its work runs the hash on a worker, its done is the verdict. */
struct auth_job {
    struct sl_work work;
    struct mqtt_auth *a;
    uint64_t ticket;
    char *stored;
    uint8_t *password;
    size_t len;
    uint8_t key[AUTH_KEY_LEN];       /* cache key, when the cache is on */
    bool ok;                         /* written by the worker, read in the done */
};

struct cache_entry {
    uint8_t key[AUTH_KEY_LEN];
    int64_t expires_ms;              /* 0: empty */
};

struct mqtt_auth {
    struct sl_workq *q;              /* NULL: inline, or stopped */
    atomic_bool cancel;              /* stopping: queued checks skip the hash (workers read it) */
    /* loop thread only */
    mqtt_auth_done_fn done;          /* NULL once stopped */
    void *arg;
    size_t pending;                  /* jobs alive: queued, running or done not yet run */
    size_t max_pending;
    bool stopped;
    uint8_t secret[AUTH_KEY_LEN];
    struct cache_entry *cache;
    size_t cache_size;
    struct sl_metric *m_ok, *m_bad, *m_hits, *m_refused, *m_pending;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ hash ---- */

/* Standard base64 (OpenSSL's decoder) to bytes; the length without padding, or -1. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    int n, pad = 0;
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap) {
        return -1;
    }
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0) {
        return -1;
    }
    pad = (in[len - 1] == '=') + (len > 1 && in[len - 2] == '=');
    return n - pad;
}

bool mqtt_password_ok(const char *stored, const uint8_t *password, size_t len)
{
    static const char prefix[] = "pbkdf2-sha256$";
    unsigned char salt[128], want[128], got[128];
    const char *p, *s1, *s2;
    long iter;
    int n_salt, n_hash;
    char *end;
    bool ok;

    if (strncmp(stored, prefix, sizeof(prefix) - 1) != 0) {
        return false;
    }
    p = stored + sizeof(prefix) - 1;
    iter = strtol(p, &end, 10);
    if (end == p || *end != '$' || iter < 1 || iter > 10000000) {
        return false;
    }
    s1 = end + 1;
    s2 = strchr(s1, '$');
    if (s2 == NULL) {
        return false;
    }
    n_salt = b64_decode(s1, (size_t)(s2 - s1), salt, sizeof(salt));
    n_hash = b64_decode(s2 + 1, strlen(s2 + 1), want, sizeof(want));
    if (n_salt <= 0 || n_hash < 16 || len > INT32_MAX) {
        return false;
    }
    if (PKCS5_PBKDF2_HMAC((const char *)password, (int)len, salt, n_salt, (int)iter,
                          EVP_sha256(), n_hash, got) != 1) {
        return false;
    }
    ok = CRYPTO_memcmp(got, want, (size_t)n_hash) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

/* ----------------------------------------------------------------- cache ---- */

/* key = HMAC-SHA256(secret, stored || 0 || password). */
static bool cache_key(const struct mqtt_auth *a, const char *stored, const uint8_t *pw,
                      size_t len, uint8_t key[AUTH_KEY_LEN])
{
    size_t n_stored = strlen(stored) + 1;
    unsigned int n = 0;
    uint8_t *msg = malloc(n_stored + len);
    bool ok;

    if (msg == NULL) {
        return false;
    }
    memcpy(msg, stored, n_stored);
    memcpy(msg + n_stored, pw, len);
    ok = HMAC(EVP_sha256(), a->secret, sizeof(a->secret), msg, n_stored + len, key, &n) != NULL &&
         n == AUTH_KEY_LEN;
    OPENSSL_cleanse(msg, n_stored + len);
    free(msg);
    return ok;
}

static struct cache_entry *cache_slot(const struct mqtt_auth *a, const uint8_t key[AUTH_KEY_LEN])
{
    size_t i = ((size_t)key[0] << 24 | (size_t)key[1] << 16 | (size_t)key[2] << 8 | key[3]) %
               a->cache_size;
    return &a->cache[i];
}

static bool cache_hit(const struct mqtt_auth *a, const uint8_t key[AUTH_KEY_LEN])
{
    const struct cache_entry *e = cache_slot(a, key);
    return e->expires_ms != 0 && e->expires_ms > now_ms() &&
           CRYPTO_memcmp(e->key, key, AUTH_KEY_LEN) == 0;
}

static void cache_put(struct mqtt_auth *a, const uint8_t key[AUTH_KEY_LEN])
{
    struct cache_entry *e = cache_slot(a, key);
    memcpy(e->key, key, AUTH_KEY_LEN);
    e->expires_ms = now_ms() + MQTT_AUTH_CACHE_TTL_MS;
}

void mqtt_auth_cache_clear(struct mqtt_auth *a)
{
    if (a != NULL && a->cache != NULL) {
        OPENSSL_cleanse(a->cache, a->cache_size * sizeof(*a->cache));
    }
}

/* ------------------------------------------------------------------ jobs ---- */

static void job_free(struct auth_job *j)
{
    if (j->password != NULL) {
        OPENSSL_cleanse(j->password, j->len);
    }
    free(j->password);
    free(j->stored);
    OPENSSL_cleanse(j->key, sizeof(j->key));
    free(j);
}

/* Release a (no work queue left). */
static void auth_destroy(struct mqtt_auth *a)
{
    mqtt_auth_cache_clear(a);
    free(a->cache);
    OPENSSL_cleanse(a->secret, sizeof(a->secret));
    free(a);
}

static void job_gone(struct mqtt_auth *a)
{
    a->pending--;
    if (!a->stopped) {
        sl_metric_set(a->m_pending, (int64_t)a->pending);
    }
}

static void count_verdict(struct mqtt_auth *a, bool ok)
{
    sl_metric_add(ok ? a->m_ok : a->m_bad, 1);
}

/* On a worker: the hash, unless the checker is stopping (a check still queued then is
 * dropped without its hash, as before the workers were joined). */
static void job_run(struct sl_work *w)
{
    struct auth_job *j = (struct auth_job *)((char *)w - offsetof(struct auth_job, work));

    if (!atomic_load_explicit(&j->a->cancel, memory_order_relaxed)) {
        j->ok = mqtt_password_ok(j->stored, j->password, j->len);
    }
    OPENSSL_cleanse(j->password, j->len);
}

/* The verdict, on the loop thread (the work queue runs it; during mqtt_auth_stop too,
 * when done is already NULL and the verdict is dropped). */
static void job_done(struct sl_work *w)
{
    struct auth_job *j = (struct auth_job *)((char *)w - offsetof(struct auth_job, work));
    struct mqtt_auth *a = j->a;
    uint64_t ticket = j->ticket;
    bool ok = j->ok;

    job_gone(a);
    if (a->done != NULL) {
        count_verdict(a, ok);
        if (ok && a->cache != NULL) {
            cache_put(a, j->key);
        }
    }
    job_free(j);
    if (a->done != NULL) {
        a->done(a->arg, ticket, ok);
    }
}

/* ---------------------------------------------------------------- public ---- */

struct mqtt_auth *mqtt_auth_new(struct event_base *base, unsigned n_threads, size_t max_pending,
                                size_t cache_size, mqtt_auth_done_fn done, void *arg)
{
    struct mqtt_auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    if (RAND_bytes(a->secret, sizeof(a->secret)) != 1 ||
        (cache_size > 0 && (a->cache = calloc(cache_size, sizeof(*a->cache))) == NULL)) {
        free(a);
        return NULL;
    }
    atomic_init(&a->cancel, false);
    a->done = done;
    a->arg = arg;
    a->max_pending = max_pending > 0 ? max_pending : 1;
    a->cache_size = cache_size;
    a->m_ok = sl_metric_counter("sluice_mqtt_auth_checks_total",
                                "MQTT password hashes computed, by result",
                                "result=\"ok\"");
    a->m_bad = sl_metric_counter("sluice_mqtt_auth_checks_total",
                                 "MQTT password hashes computed, by result",
                                 "result=\"bad_password\"");
    a->m_hits = sl_metric_counter("sluice_mqtt_auth_cache_hits_total",
                                  "MQTT CONNECTs accepted from the verified-password cache "
                                  "(no hash computed)", "");
    a->m_refused = sl_metric_counter("sluice_mqtt_auth_refused_total",
                                     "MQTT CONNECTs refused with Server busy because too many "
                                     "password checks were pending", "");
    a->m_pending = sl_metric_gauge("sluice_mqtt_auth_pending",
                                   "MQTT password checks queued or running", "");
    if (base == NULL) {
        n_threads = 0;
    }
    if (n_threads > AUTH_MAX_THREADS) {
        n_threads = AUTH_MAX_THREADS;
    }
    if (n_threads > 0) {
        a->q = sl_workq_new(base, (int)n_threads, "sl-auth", NULL);
        if (a->q == NULL || (unsigned)sl_workq_threads(a->q) < n_threads) {
            sl_warn("[mqtt:auth] could not start password worker %u",
                    a->q != NULL ? (unsigned)sl_workq_threads(a->q) : 0u);
        }
        if (a->q == NULL) {
            auth_destroy(a);
            return NULL;
        }
    }
    return a;
}

int mqtt_auth_check(struct mqtt_auth *a, uint64_t ticket, const char *stored,
                    const uint8_t *password, size_t len)
{
    uint8_t key[AUTH_KEY_LEN];
    bool keyed = false;
    struct auth_job *j;

    if (a->stopped) {
        return 0x89;
    }
    if (a->cache != NULL) {
        keyed = cache_key(a, stored, password, len, key);
        if (keyed && cache_hit(a, key)) {
            sl_metric_add(a->m_hits, 1);
            OPENSSL_cleanse(key, sizeof(key));
            return 0;
        }
    }
    if (a->q == NULL) {
        /* inline mode (tests, fuzzer) */
        bool ok = mqtt_password_ok(stored, password, len);
        count_verdict(a, ok);
        if (ok && keyed) {
            cache_put(a, key);
        }
        OPENSSL_cleanse(key, sizeof(key));
        return ok ? 0 : 0x86;
    }
    if (a->pending >= a->max_pending) {
        sl_metric_add(a->m_refused, 1);
        OPENSSL_cleanse(key, sizeof(key));
        return 0x89;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL || (j->stored = strdup(stored)) == NULL ||
        (j->password = malloc(len > 0 ? len : 1)) == NULL) {
        if (j != NULL) {
            free(j->stored);
            free(j);
        }
        OPENSSL_cleanse(key, sizeof(key));
        return 0x97;
    }
    memcpy(j->password, password, len);
    j->len = len;
    j->ticket = ticket;
    j->a = a;
    if (keyed) {
        memcpy(j->key, key, sizeof(key));
        OPENSSL_cleanse(key, sizeof(key));
    } else {
        /* no key: a verdict must not fill the cache with garbage that could match */
        RAND_bytes(j->key, sizeof(j->key));
    }
    a->pending++;
    sl_metric_set(a->m_pending, (int64_t)a->pending);
    j->work.run = job_run;
    j->work.done = job_done;
    sl_workq_submit(a->q, &j->work);
    return MQTT_AUTH_PENDING;
}

size_t mqtt_auth_pending(const struct mqtt_auth *a)
{
    return a != NULL ? a->pending : 0;
}

void mqtt_auth_stop(struct mqtt_auth *a)
{
    if (a == NULL || a->stopped) {
        return;
    }
    a->stopped = true;
    a->done = NULL;
    /* The workers finish the hash each is in; what is still queued skips its hash. Then
     * every done runs here (done NULL: dropped), so nothing of ours is left in flight. */
    atomic_store_explicit(&a->cancel, true, memory_order_relaxed);
    sl_workq_free(&a->q);
    sl_metric_set(a->m_pending, (int64_t)a->pending);
}

void mqtt_auth_free(struct mqtt_auth **pa)
{
    struct mqtt_auth *a;
    if (pa == NULL || *pa == NULL) {
        return;
    }
    a = *pa;
    *pa = NULL;
    mqtt_auth_stop(a);
    auth_destroy(a);
}

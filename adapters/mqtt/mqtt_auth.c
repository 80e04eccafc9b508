/*
 * Password checks off the loop: a bounded queue, worker threads, verdicts through the
 * gateway mailbox, a cache of successes. See mqtt_auth.h.
 */
#include "adapters/mqtt/mqtt_auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "gateway/logging.h"
#include "gateway/mailbox.h"
#include "gateway/metrics.h"

#define AUTH_MAX_THREADS 16
#define AUTH_KEY_LEN 32

/* One queued check; becomes the verdict message once computed. */
struct auth_job {
    struct sl_msg msg;               /* first: the mailbox hands back &msg */
    struct auth_job *next;           /* queue link (under mu) */
    struct mqtt_auth *a;
    uint64_t ticket;
    char *stored;
    uint8_t *password;
    size_t len;
    uint8_t key[AUTH_KEY_LEN];       /* cache key, when the cache is on */
    bool ok;
};

struct cache_entry {
    uint8_t key[AUTH_KEY_LEN];
    int64_t expires_ms;              /* 0: empty */
};

struct mqtt_auth {
    /* queue, shared with the workers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct auth_job *head, *tail;
    bool quit;
    pthread_t th[AUTH_MAX_THREADS];
    unsigned n_threads;
    /* loop thread only */
    struct sl_mailbox *mb;
    mqtt_auth_done_fn done;          /* NULL once stopped */
    void *arg;
    size_t pending;                  /* jobs alive: queued, running or in the mailbox */
    size_t max_pending;
    bool stopped;
    bool owner_gone;                 /* freed by its owner: the last verdict frees it */
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

static void auth_release(struct mqtt_auth *a)
{
    if (!a->owner_gone || a->pending > 0) {
        return;
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
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

/* The verdict, on the loop thread (the mailbox runs it). */
static void on_verdict(struct sl_msg *m)
{
    struct auth_job *j = (struct auth_job *)m;
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
    auth_release(a);
}

static void *worker(void *arg)
{
    struct mqtt_auth *a = arg;
    for (;;) {
        struct auth_job *j;
        pthread_mutex_lock(&a->mu);
        while (!a->quit && a->head == NULL) {
            pthread_cond_wait(&a->cv, &a->mu);
        }
        if (a->quit) {
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        j = a->head;
        a->head = j->next;
        if (a->head == NULL) {
            a->tail = NULL;
        }
        pthread_mutex_unlock(&a->mu);
        j->ok = mqtt_password_ok(j->stored, j->password, j->len);
        OPENSSL_cleanse(j->password, j->len);
        j->msg.fn = on_verdict;
        sl_mailbox_post(a->mb, &j->msg);
    }
}

/* ---------------------------------------------------------------- public ---- */

struct mqtt_auth *mqtt_auth_new(struct sl_mailbox *mb, unsigned n_threads, size_t max_pending,
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
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->mb = mb;
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
    if (mb == NULL) {
        n_threads = 0;
    }
    if (n_threads > AUTH_MAX_THREADS) {
        n_threads = AUTH_MAX_THREADS;
    }
    for (unsigned i = 0; i < n_threads; i++) {
        if (pthread_create(&a->th[i], NULL, worker, a) != 0) {
            sl_warn("[mqtt:auth] could not start password worker %u", i);
            break;
        }
        a->n_threads++;
    }
    if (n_threads > 0 && a->n_threads == 0) {
        a->owner_gone = true;
        auth_release(a);
        return NULL;
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
    if (a->n_threads == 0) {
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
    pthread_mutex_lock(&a->mu);
    if (a->tail != NULL) {
        a->tail->next = j;
    } else {
        a->head = j;
    }
    a->tail = j;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return MQTT_AUTH_PENDING;
}

size_t mqtt_auth_pending(const struct mqtt_auth *a)
{
    return a != NULL ? a->pending : 0;
}

void mqtt_auth_stop(struct mqtt_auth *a)
{
    struct auth_job *j;
    if (a == NULL || a->stopped) {
        return;
    }
    a->stopped = true;
    a->done = NULL;
    pthread_mutex_lock(&a->mu);
    a->quit = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    for (unsigned i = 0; i < a->n_threads; i++) {
        pthread_join(a->th[i], NULL);
    }
    /* the workers are gone: what is still queued was never started */
    while ((j = a->head) != NULL) {
        a->head = j->next;
        job_gone(a);
        job_free(j);
    }
    a->tail = NULL;
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
    a->owner_gone = true;
    auth_release(a);
}

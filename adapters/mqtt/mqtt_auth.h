/*
 * MQTT password checks off the loop thread. PBKDF2 with a high iteration count costs
 * milliseconds of CPU per CONNECT; run on the core loop (DESIGN.md principle 4) it would
 * stall every session. A work queue (gateway/workq.h, workers named "sl-auth") computes
 * it instead: the loop submits a check (a copy of the stored hash and the password) with
 * a ticket, a worker runs PBKDF2 and the verdict comes back on the loop through the
 * queue's mailbox, where it is handed to the owner's done callback with the ticket. The owner (the listener)
 * resolves the ticket to a parked session itself, so a verdict for a session that went
 * away finds nothing and does nothing.
 *
 * Bounded: at most max_pending checks are queued or running; past that a check is
 * refused at once (0x89 Server busy), so a flood of CONNECTs cannot queue unbounded work.
 *
 * Cache: a successful check is remembered as HMAC-SHA256(process secret, stored hash ||
 * 0 || password) in a fixed-size table with a time to live, so a reconnect storm of
 * legitimate devices costs one PBKDF2 per user and password, not per connection. A
 * changed stored hash (another password in the config) never matches an old entry.
 *
 * Inline mode (no event base or no threads: unit tests, the fuzzer): checks run inside
 * mqtt_auth_check and never return MQTT_AUTH_PENDING.
 *
 * Thread affinity: every function here runs on the loop thread; the workers only touch
 * their own job and the checker's cancel flag.
 */
#ifndef SL_MQTT_AUTH_H
#define SL_MQTT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mqtt_auth;

/* mqtt_auth_check's "the verdict comes later through done". */
#define MQTT_AUTH_PENDING (-1)

/* Defaults of the listener (constants until the config grows options). */
#define MQTT_AUTH_THREADS 2
#define MQTT_AUTH_MAX_PENDING 256
#define MQTT_AUTH_CACHE_SIZE 1024
#define MQTT_AUTH_CACHE_TTL_MS (10 * 60 * 1000)

/* The verdict of a queued check: ok is whether the password matched. Loop thread. */
typedef void (*mqtt_auth_done_fn)(void *arg, uint64_t ticket, bool ok);

/* A checker whose n_threads workers (at most 16) post verdicts to base's loop (base NULL
 * or n_threads 0: inline; evthread_use_pthreads() before base was made), at most max_pending checks in flight, cache_size remembered successes (0: no
 * cache). done(arg, ...) receives the verdicts. NULL on failure. Loop thread. */
struct mqtt_auth *mqtt_auth_new(struct event_base *base, unsigned n_threads, size_t max_pending,
                                size_t cache_size, mqtt_auth_done_fn done, void *arg);

/* Check password (borrowed, copied when queued) against stored ("pbkdf2-sha256$..."):
 * 0 it matches (a cache hit or an inline check), 0x86 it does not (inline), 0x89 too many
 * checks pending (refused, counted), 0x97 out of memory, or MQTT_AUTH_PENDING: done
 * receives ticket later, unless mqtt_auth_stop comes first. Loop thread. */
int mqtt_auth_check(struct mqtt_auth *a, uint64_t ticket, const char *stored,
                    const uint8_t *password, size_t len);

/* Checks queued or running whose verdict was not delivered yet. Loop thread. */
size_t mqtt_auth_pending(const struct mqtt_auth *a);

/* Forget every remembered success (the users changed). Loop thread. */
void mqtt_auth_cache_clear(struct mqtt_auth *a);

/* Stop: the workers finish the hash each is computing, queued checks are dropped without
 * theirs, the workers are joined and every verdict left is dropped here; done is never
 * called again and no check is in flight afterwards. Idempotent. Loop thread; not from
 * inside done. */
void mqtt_auth_stop(struct mqtt_auth *a);

/* Stop, then release. NULL is a no-op; *a set to NULL. Loop thread. */
void mqtt_auth_free(struct mqtt_auth **a);

/* Does password match a configured hash "pbkdf2-sha256$ITER$SALT_B64$HASH_B64"
 * (OpenSSL's PKCS5_PBKDF2_HMAC, compared in constant time)? Borrows both. CPU-bound:
 * the listener calls it from the workers. Any thread. */
bool mqtt_password_ok(const char *stored, const uint8_t *password, size_t len);

#endif

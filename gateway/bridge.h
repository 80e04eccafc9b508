/*
 * Bridges: sluice as a client of other brokers (DESIGN.md "bridges"). One const ops
 * table per kind of client (the kind: mqtt, later amqp and kafka), one struct sl_bridge
 * per `bridges:` entry (the instance). Kinds are registered in one static array
 * (bridge.c). A configured bridge whose kind this build lacks is logged and ignored.
 *
 * Ingress: a bridge hands what it receives to sl_gateway_publish with the source
 * {.bridge = NAME}, marks each event with the header SL_BRIDGE_HEADER: NAME, and
 * acknowledges to the remote broker only once the append is durable.
 * Egress: for each egress binding `to: {bridge: NAME}` the bridge reads the bound
 * topic's partitions with cursors, skips records carrying its own SL_BRIDGE_HEADER
 * (loop prevention), and commits its position (consumer group "__bridge.NAME") only
 * after the remote broker confirmed.
 *
 * Thread affinity: every op and every sl_bridges_* function runs on the core loop
 * thread; the helpers below are pure and run on any thread.
 */
#ifndef SL_BRIDGE_H
#define SL_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/log/recordbatch.h"

struct sl_gateway;
struct sl_bridge;
struct sl_env;

/* The header that marks an event as having come in over a bridge (value: its name). */
#define SL_BRIDGE_HEADER "sluice-bridge"
/* Consumer-group prefix under which an egress bridge commits its positions. */
#define SL_BRIDGE_GROUP_PREFIX "__bridge."

struct sl_bridge_status {
    const char *state;               /* static text: "connecting", "connected", ... */
    char last_error[200];            /* "" when none */
};

struct sl_bridge_ops {
    const char *type;                /* the `type:` value ("mqtt", ...) */
    /* Allocate b->ctx from the config and validate it (no connection yet).
     * Borrows cfg for the call (copy what you keep). 0, or -1 with *err malloc'd. */
    int (*create)(struct sl_bridge *b, const struct sl_bridge_cfg *cfg, char **err);
    /* Start connecting (asynchronously; reconnects on its own). 0, or -1 with *err. */
    int (*start)(struct sl_bridge *b, char **err);
    /* Stop consuming and sending; commit what was confirmed. The log is still open. */
    void (*stop)(struct sl_bridge *b);
    /* Free b->ctx. Called after stop and after the log closed (or after a failed
     * create/start). */
    void (*destroy)(struct sl_bridge *b);
    /* Optional: the state shown in /metrics as sluice_bridge_info{bridge, type, state,
     * last_error} 1 (the counters and gauges live in the metrics registry). */
    void (*status)(struct sl_bridge *b, struct sl_bridge_status *st);
};

struct sl_bridge {
    const struct sl_bridge_ops *ops;
    struct sl_gateway *gw;           /* borrowed */
    char name[64];                   /* the bridges: key */
    void *ctx;                       /* the kind's private state */
};

/* The registered kinds, NULL-terminated. */
extern const struct sl_bridge_ops *const sl_bridge_kinds[];

/* The kind for a `type:` name, or NULL. Any thread. */
const struct sl_bridge_ops *sl_bridge_kind(const char *type);

/* "amqp", "mqtt", "kafka" ("?" for anything else). Any thread. */
const char *sl_bridge_type_name(enum sl_bridge_type type);

/* The running bridges of a gateway. */
struct sl_bridges;

/*
 * Create and start one bridge per cfg->bridges entry whose kind exists (others are
 * logged and skipped), and register their metrics collector. Borrows gw and cfg (the
 * kinds copy what they keep). Returns 0 with *out set (a set that may hold no bridge;
 * free with sl_bridges_free), or -1 after logging why (nothing left running).
 * Call after the log and the listeners are up. Loop thread.
 */
int sl_bridges_start(struct sl_gateway *gw, const struct sl_config *cfg,
                     struct sl_bridges **out);

/* Number of running bridges in the set (0 for NULL). Any thread. */
size_t sl_bridges_count(const struct sl_bridges *set);

/* Stop every bridge (in reverse order), before the log closes. NULL: no-op. Loop thread. */
void sl_bridges_stop(struct sl_bridges *set);

/* Destroy the bridges and the set, after the log closed; *set set to NULL; NULL and
 * *set NULL are no-ops. Loop thread. */
void sl_bridges_free(struct sl_bridges **set);

/*
 * Reconnect delay for the attempt-th consecutive failure (0-based): min * 2^attempt
 * capped at max, then "equal jitter": half of it plus rnd mod the other half (+1).
 * So attempt 0 gives [min/2, min], later ones stay within [cap/2, cap]. max < min
 * is treated as max = min; min < 1 as 1. Pure; any thread.
 */
int64_t sl_bridge_backoff_ms(int64_t min_ms, int64_t max_ms, unsigned attempt, uint32_t rnd);

/* Did this record come in over the bridge `name` (header SL_BRIDGE_HEADER equal to
 * name)? Reads the raw header block without decoding the record. Borrows both. Pure. */
bool sl_bridge_record_from(const struct sl_record *rec, const char *name);

/* The same for an envelope. Borrows both. Pure. */
bool sl_bridge_env_from(const struct sl_env *env, const char *name);

/* The consumer group an egress bridge commits under: "__bridge.<name>" into out
 * (NUL-terminated, truncated to outsz). Returns the full length. Pure. */
int sl_bridge_group_name(const char *name, char *out, size_t outsz);

#endif

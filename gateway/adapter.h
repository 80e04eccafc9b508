/*
 * Adapters: one const ops table per kind of protocol listener (the kind), one
 * struct sl_adapter per configured listener (the instance). Kinds are registered in
 * one static array (adapter.c).
 *
 * Thread affinity: every op is called on the core loop thread.
 */
#ifndef SL_ADAPTER_H
#define SL_ADAPTER_H

#include <stddef.h>

#include "gateway/config.h"

struct sl_gateway;
struct sl_adapter;

struct sl_adapter_ops {
    const char *name;                /* the listeners: key ("http", "mqtt", ...) */
    /* Allocate a->ctx from the listener's config and validate it (no sockets yet).
     * 0, or -1 with *err malloc'd. */
    int (*create)(struct sl_adapter *a, const struct sl_listener_cfg *cfg, char **err);
    /* Bind and start serving. 0, or -1 with *err malloc'd. */
    int (*start)(struct sl_adapter *a, char **err);
    /* Optional: the config was reloaded (SIGHUP); connections stay up. */
    void (*reload)(struct sl_adapter *a, const struct sl_listener_cfg *cfg);
    /* Stop accepting and close connections; in-flight acks are given or refused. */
    void (*stop)(struct sl_adapter *a);
    /* Free a->ctx. Called after stop (or after a failed create/start). */
    void (*destroy)(struct sl_adapter *a);
};

struct sl_adapter {
    const struct sl_adapter_ops *ops;
    struct sl_gateway *gw;           /* borrowed */
    char name[32];                   /* instance name, e.g. "http" */
    void *ctx;                       /* the kind's private state */
};

/* The registered kinds, NULL-terminated. */
extern const struct sl_adapter_ops *const sl_adapter_kinds[];

/* The kind called name, or NULL. */
const struct sl_adapter_ops *sl_adapter_kind(const char *name);

#endif

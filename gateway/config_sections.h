/*
 * The listeners, bridges and routes sections of the configuration, for gateway/config.c:
 * the tables its top table and reload diff refer to, and the custom options it compares
 * or calls. Not for other modules: they use gateway/config.h.
 *
 * Every function here applies YAML nodes (borrowed) through a cy_ctx, records errors in
 * it as "NAME:LINE: PATH: message", and stores new allocations into the struct sl_config
 * being built (freed by sl_config_free). Thread affinity: none; a cy_ctx and what is
 * applied through it belong to one thread at a time.
 */
#ifndef SL_CONFIG_SECTIONS_H
#define SL_CONFIG_SECTIONS_H

#include "gateway/config_opt.h"

/* listeners.{http,mqtt,amqp,stomp,kafka}: OPT_CUSTOM entries (config_listener_fn) in
 * the order of struct sl_config's listener fields, each with its default bind in def. */
extern const struct opt config_listeners_opts[];
/* bridges.<name>: the options of one bridge (base struct sl_bridge_cfg). */
extern const struct opt config_bridge_opts[];
/* The `sub` tables of the listeners section, a bridge and a route. */
extern const struct table config_listeners_tabs[];
extern const struct table config_bridge_tabs[];
extern const struct table config_route_tabs[];

/* Mark listener l (field of o, an entry of config_listeners_opts) present and enabled
 * with o's default bind and its table's defaults. */
void config_listener_init(struct cy_ctx *c, const struct opt *o, struct sl_listener_cfg *l);

/* opt_fn of a listener entry: config_listener_init, then mapping v over it. field is the
 * struct sl_listener_cfg. */
void config_listener_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                        void *field, const char *path, int keyline);
/* opt_fn of bridges.<name>.mqtt_version: "3", "3.1.1", "5" or "5.0" into the int field. */
void config_mqtt_version_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                            void *field, const char *path, int keyline);
/* opt_fn of the bridges mapping: fills cfg->bridges (field is the struct sl_config),
 * with each bridge's defaults, client_id "sluice-<name>" unless given, and the checks of
 * its type's keys and URL scheme. */
void config_bridges_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                       void *field, const char *path, int keyline);
/* opt_fn of the routes list: fills cfg->routes (field is the struct sl_config; applied
 * after the bridges, which routes may name), match "#" unless given, and the checks of
 * each route's ingress or egress shape. */
void config_routes_fn(struct cy_ctx *c, const struct opt *o, const struct cy_node *v,
                      void *field, const char *path, int keyline);

#endif

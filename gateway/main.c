/*
 * sluice: the daemon. Loads the config, opens the log, starts the listeners, runs the
 * core loop. Signals set flags through libevent; the loop acts on them.
 *
 *   sluice -c FILE            run
 *   sluice -c FILE --check    validate the config, exit 0 or 1
 *   sluice --help-config      every option with its default
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "gateway/adapter.h"
#include "gateway/bridge.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/mailbox.h"
#include "gateway/metrics.h"
#include "routing/route.h"

#define SLUICE_VERSION "0.1.0"

struct daemon {
    struct sl_gateway gw;
    struct event *sig_term;
    struct event *sig_int;
    struct event *sig_hup;
    struct event *watchdog;
    struct sl_bridges *bridges;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice [-c FILE] [--check] [--help-config] [--version]\n"
            "  -c, --config FILE   configuration (default conf/sluice.yaml)\n"
            "      --check         validate the configuration and exit 0/1\n"
            "      --help-config   list every option with its default\n");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Validate what the loader cannot on its own: the routes compile. */
static int check_config(const char *path)
{
    char *errors = NULL;
    struct sl_config *cfg = sl_config_load(path, &errors);
    struct rt_table *rt;

    if (cfg == NULL) {
        fprintf(stderr, "%s", errors != NULL ? errors : "config: unknown error\n");
        if (errors != NULL && errors[0] != '\0' && errors[strlen(errors) - 1] != '\n') {
            fputc('\n', stderr);
        }
        free(errors);
        return 1;
    }
    rt = sl_gateway_build_routes(cfg, &errors);
    if (rt == NULL) {
        fprintf(stderr, "%s\n", errors != NULL ? errors : "routes: invalid");
        free(errors);
        sl_config_free(&cfg);
        return 1;
    }
    rt_table_free(&rt);
    sl_config_free(&cfg);
    printf("%s: OK\n", path);
    return 0;
}

/* Stop accepting (adapters stay allocated: append callbacks still pending reach them
 * while the log closes). */
static void stop_adapters(struct sl_gateway *gw)
{
    for (size_t i = gw->n_adapters; i-- > 0;) {
        gw->adapters[i]->ops->stop(gw->adapters[i]);
    }
}

static void destroy_adapters(struct sl_gateway *gw)
{
    for (size_t i = gw->n_adapters; i-- > 0;) {
        struct sl_adapter *a = gw->adapters[i];
        a->ops->destroy(a);
        free(a);
    }
    free(gw->adapters);
    gw->adapters = NULL;
    gw->n_adapters = 0;
}

static int start_listener(struct sl_gateway *gw, const char *kind,
                          const struct sl_listener_cfg *lc)
{
    const struct sl_adapter_ops *ops;
    struct sl_adapter *a, **arr;
    char *err = NULL;

    if (!lc->present || !lc->enabled) {
        return 0;
    }
    ops = sl_adapter_kind(kind);
    if (ops == NULL) {
        sl_warn("[%s:listener] configured at line %d, but this build has no %s adapter yet; "
                "ignored", kind, lc->line, kind);
        return 0;
    }
    a = calloc(1, sizeof(*a));
    arr = realloc(gw->adapters, (gw->n_adapters + 1) * sizeof(*arr));
    if (a == NULL || arr == NULL) {
        free(a);
        sl_error("[%s:listener] out of memory", kind);
        return -1;
    }
    gw->adapters = arr;
    a->ops = ops;
    a->gw = gw;
    snprintf(a->name, sizeof(a->name), "%s", kind);
    if (ops->create(a, lc, &err) != 0) {
        sl_error("[%s:listener] %s", kind, err != NULL ? err : "create failed");
        free(err);
        free(a);
        return -1;
    }
    if (ops->start(a, &err) != 0) {
        sl_error("[%s:listener] %s", kind, err != NULL ? err : "start failed");
        free(err);
        ops->destroy(a);
        free(a);
        return -1;
    }
    gw->adapters[gw->n_adapters++] = a;
    return 0;
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    (void)what;
    sl_info("[core] signal %d: draining and stopping", (int)sig);
    sd_notify(0, "STOPPING=1");
    d->gw.stopping = 1;
    event_base_loopbreak(d->gw.base);
}

/* The section of cfg for the listener named name ("http", "mqtt", ...), or NULL. */
static const struct sl_listener_cfg *listener_cfg(const struct sl_config *cfg, const char *name)
{
    const struct {
        const char *name;
        const struct sl_listener_cfg *lc;
    } ls[] = {
        {"http", &cfg->http}, {"mqtt", &cfg->mqtt}, {"amqp", &cfg->amqp},
        {"stomp", &cfg->stomp}, {"kafka", &cfg->kafka},
    };
    for (size_t i = 0; i < sizeof(ls) / sizeof(ls[0]); i++) {
        if (strcmp(ls[i].name, name) == 0) {
            return ls[i].lc;
        }
    }
    return NULL;
}

/* SIGHUP: reload routes, topic settings and what each listener's reload op takes (the
 * mqtt listener's users and per-client limits); listeners and connections stay. A bad
 * file keeps the running config. */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    struct sl_gateway *gw = &d->gw;
    char *err = NULL;
    struct sl_config *cfg;
    struct rt_table *rt;

    (void)sig;
    (void)what;
    sd_notify(0, "RELOADING=1");
    cfg = sl_config_load(gw->cfg->path, &err);
    if (cfg == NULL) {
        sl_error("[core] reload of %s failed, keeping the running config:\n%s", gw->cfg->path,
                 err != NULL ? err : "");
        free(err);
        sd_notify(0, "READY=1");
        return;
    }
    rt = sl_gateway_build_routes(cfg, &err);
    if (rt == NULL) {
        sl_error("[core] reload failed, keeping the running config: %s", err);
        free(err);
        sl_config_free(&cfg);
        sd_notify(0, "READY=1");
        return;
    }
    {
        char changed[512];
        if (sl_config_restart_changes(gw->cfg, cfg, changed, sizeof(changed)) > 0) {
            sl_warn("[core] reload: changes to %s take effect only after a restart", changed);
        }
    }
    if (sl_gateway_apply_topics(gw, cfg, &err) != 0) {
        sl_error("[core] reload: %s (other settings applied)", err);
        free(err);
        err = NULL;
    }
    rt_table_free(&gw->routes);
    gw->routes = rt;
    for (size_t i = 0; i < gw->n_adapters; i++) {
        struct sl_adapter *a = gw->adapters[i];
        const struct sl_listener_cfg *lc = listener_cfg(cfg, a->name);
        /* a listener the new file removes or disables keeps running as it is until a
         * restart (the warning above names it) */
        if (a->ops->reload != NULL && lc != NULL && lc->present && lc->enabled) {
            a->ops->reload(a, lc);
        }
    }
    sl_logging_set_level(cfg->log_level);
    sl_config_free(&gw->cfg);
    gw->cfg = cfg;
    sl_info("[core] reloaded %s: %zu routes, %zu topic overrides", cfg->path, cfg->n_routes,
            cfg->n_topics);
    sd_notify(0, "READY=1");
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

static int run(const char *path)
{
    struct daemon d;
    struct sl_gateway *gw = &d.gw;
    struct sl_log_options lo;
    char *err = NULL;
    int rc = 1;
    uint64_t wd_usec = 0;

    memset(&d, 0, sizeof(d));
    gw->cfg = sl_config_load(path, &err);
    if (gw->cfg == NULL) {
        fprintf(stderr, "%s\n", err != NULL ? err : "config: unknown error");
        free(err);
        return 1;
    }
    sl_logging_set_level(gw->cfg->log_level);
    if (gw->cfg->backend != SL_BACKEND_EMBEDDED) {
        sl_error("[core] log.backend kafka is not implemented yet; use embedded");
        sl_config_free(&gw->cfg);
        return 1;
    }
    gw->routes = sl_gateway_build_routes(gw->cfg, &err);
    if (gw->routes == NULL) {
        sl_error("%s", err);
        free(err);
        sl_config_free(&gw->cfg);
        return 1;
    }
    evthread_use_pthreads();
    gw->base = event_base_new();
    gw->mailbox = gw->base != NULL ? sl_mailbox_new(gw->base) : NULL;
    if (gw->mailbox == NULL) {
        sl_error("[core] cannot create the event loop");
        goto out;
    }
    gw->started_ms = now_ms();
    sl_gateway_log_options(gw->cfg, &lo);
    gw->log = sl_log_open(gw->base, &lo, &err);
    if (gw->log == NULL) {
        sl_error("[log] cannot open %s: %s", gw->cfg->data_dir, err != NULL ? err : "?");
        free(err);
        goto out;
    }
    if (sl_gateway_apply_topics(gw, gw->cfg, &err) != 0) {
        sl_error("[log] %s", err);
        free(err);
        goto out;
    }
    sl_metrics_add_collector(sl_gateway_collect_metrics, gw);

    d.sig_term = evsignal_new(gw->base, SIGTERM, on_term, &d);
    d.sig_int = evsignal_new(gw->base, SIGINT, on_term, &d);
    d.sig_hup = evsignal_new(gw->base, SIGHUP, on_hup, &d);
    signal(SIGPIPE, SIG_IGN);
    if (d.sig_term == NULL || d.sig_int == NULL || d.sig_hup == NULL ||
        evsignal_add(d.sig_term, NULL) || evsignal_add(d.sig_int, NULL) ||
        evsignal_add(d.sig_hup, NULL)) {
        sl_error("[core] cannot install signal handlers");
        goto out;
    }
    if (start_listener(gw, "http", &gw->cfg->http) != 0 ||
        start_listener(gw, "mqtt", &gw->cfg->mqtt) != 0 ||
        start_listener(gw, "amqp", &gw->cfg->amqp) != 0 ||
        start_listener(gw, "stomp", &gw->cfg->stomp) != 0 ||
        start_listener(gw, "kafka", &gw->cfg->kafka) != 0) {
        goto out;
    }
    if (sl_bridges_start(gw, gw->cfg, &d.bridges) != 0) {
        goto out;
    }
    if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0) {
        struct timeval tv = {.tv_sec = (time_t)(wd_usec / 2 / 1000000),
                             .tv_usec = (suseconds_t)(wd_usec / 2 % 1000000)};
        d.watchdog = event_new(gw->base, -1, EV_PERSIST, on_watchdog, &d);
        if (d.watchdog != NULL) {
            event_add(d.watchdog, &tv);
        }
    }
    sl_info("[core] sluice %s ready: data_dir %s, %zu listener(s), %zu bridge(s)",
            SLUICE_VERSION, gw->cfg->data_dir, gw->n_adapters, sl_bridges_count(d.bridges));
    sd_notify(0, "READY=1");
    event_base_dispatch(gw->base);
    rc = gw->stopping ? 0 : 1;
out:
    stop_adapters(gw);
    sl_bridges_stop(d.bridges);    /* egress commits; ingress hand-offs still complete */
    if (gw->mailbox != NULL) {
        sl_mailbox_drain(gw->mailbox);   /* requests handed over before the stop */
    }
    sl_metrics_remove_collector(sl_gateway_collect_metrics, gw);
    sl_log_close(&gw->log);        /* flushes; pending append callbacks fire */
    destroy_adapters(gw);
    sl_bridges_free(&d.bridges);
    if (gw->mailbox != NULL) {
        sl_mailbox_free(&gw->mailbox);
    }
    if (d.watchdog != NULL) {
        event_free(d.watchdog);
    }
    if (d.sig_term != NULL) {
        event_free(d.sig_term);
    }
    if (d.sig_int != NULL) {
        event_free(d.sig_int);
    }
    if (d.sig_hup != NULL) {
        event_free(d.sig_hup);
    }
    rt_table_free(&gw->routes);
    sl_config_free(&gw->cfg);
    if (gw->base != NULL) {
        event_base_free(gw->base);
    }
    sl_metrics_reset();
    libevent_global_shutdown();
    if (rc == 0) {
        sl_info("[core] stopped cleanly");
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"help-config", no_argument, NULL, 'H'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = "conf/sluice.yaml";
    int check = 0;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'H':
            sl_config_print_help(stdout);
            return 0;
        case 'V':
            printf("sluice %s\n", SLUICE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (check) {
        return check_config(path);
    }
    return run(path);
}

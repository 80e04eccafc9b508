/*
 * lws_floor: the floor under sluice's REST figures. An HTTP server on Debian's
 * libwebsockets 4.1, one service thread like sluice's, that reads each POST body and
 * answers 201 with a 48-byte JSON body, and does nothing else: no loop hand-off, no
 * log, no fsync. tests/bench/run.sh drives it with the same clients as sluice, so
 * BENCHMARKS.md can say what share of what lws itself serves on this machine sluice
 * reaches.
 *
 *   lws_floor PORT       serves 127.0.0.1:PORT until SIGTERM or SIGINT
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

static volatile sig_atomic_t stop;

static int floor_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    static const char body[] = "{\"topic\":\"bench\",\"partition\":0,\"offset\":1234567}";
    uint8_t buf[LWS_PRE + 512];
    uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        /* head and body in one write, as sluice's rest.c does for small answers */
        if (lws_add_http_common_headers(wsi, 201, "application/json", sizeof(body) - 1,
                                        &p, end) != 0 ||
            lws_finalize_http_header(wsi, &p, end) != 0) {
            return -1;
        }
        memcpy(p, body, sizeof(body) - 1);
        p += sizeof(body) - 1;
        if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) !=
            (int)(p - start)) {
            return -1;
        }
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    static const struct lws_protocols protocols[] = {
        {"http", floor_cb, 0, 0, 0, NULL, 0},
        {NULL, NULL, 0, 0, 0, NULL, 0},
    };
    struct lws_context_creation_info info;
    struct lws_context *ctx;

    if (argc != 2 || atoi(argv[1]) <= 0) {
        lwsl_user("usage: lws_floor PORT\n");
        return 2;
    }
    memset(&info, 0, sizeof(info));
    info.port = atoi(argv[1]);
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    lws_set_log_level(LLL_ERR, NULL);
    ctx = lws_create_context(&info);
    if (ctx == NULL) {
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop && lws_service(ctx, 0) >= 0) {
    }
    lws_context_destroy(ctx);
    return 0;
}

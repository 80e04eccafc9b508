/*
 * The HTTP/REST adapter (listener kind "http"): libwebsockets serves HTTP/1.1 in its
 * own service thread (Debian's lws 4.1 has no libevent support), collects each
 * request (method, path, query, Content-Type and ce-* headers, body up to max_body),
 * and hands it to the core loop with one sl_mailbox_post. The loop runs rest_api.c's
 * handler; its answer comes back on a mutex-protected reply queue plus one
 * lws_cancel_service wake-up, and the lws thread writes it on the connection if that
 * connection (looked up by id) is still there. A HEAD answer goes out with the headers
 * (Content-Length of the body GET would get) and no body.
 *
 * Stop is graceful and bounded: new connections are closed at accept and new requests
 * answered 503 with Connection: close (never handed to the loop, so never in the log);
 * parked long-poll reads answer at once; the loop runs until the requests it already
 * has are answered (a publish once the log made it durable), at most 4 s; the lws
 * thread then writes those answers (at most 1 s more) before everything is closed.
 *
 * Known limits of lws 4.1.6: request headers lws does not know can only be looked up
 * by name (lws_hdr_custom_copy), not enumerated, so binary mode reads a fixed set of
 * CloudEvents headers (see rest.c: ce_headers[]) and does not carry arbitrary other
 * headers; chunked request bodies are refused with 411 (Content-Length is required); a
 * percent-encoded CR or LF in the request line ends it there (the query would come
 * through cut short), so such requests are refused with 400.
 */
#ifndef SL_REST_H
#define SL_REST_H

#include "gateway/adapter.h"

/* The ops table of the "http" listener kind. Its ops run on the loop thread. */
extern const struct sl_adapter_ops rest_adapter_ops;

/* The TCP port the started adapter listens on (useful with port 0), or -1.
 * Borrows a. Loop thread. */
int rest_adapter_port(const struct sl_adapter *a);

#endif

/*
 * The HTTP/REST request handlers, run on the core loop thread. Pure of libwebsockets:
 * a request comes in as a struct rest_req (built by the transport, rest.c, or by a
 * test), a response goes out through a completion callback, immediately or later
 * (publish answers after the append met the topic's flush policy; long-poll reads
 * answer when records arrive or the wait ends).
 *
 * Endpoints (DESIGN.md "Contract the tests rely on"):
 *   POST /topics/{t}                      publish: binary (ce-* headers), structured
 *                                         (application/cloudevents+json) or batch
 *                                         (application/cloudevents-batch+json, one ack)
 *   GET  /topics/{t}/partitions/{p}/records?offset=N&max=M&wait_ms=T
 *   GET  /topics/{t}/records?group=G&max=M&wait_ms=T   group read, no auto-commit
 *   POST /topics/{t}/offsets?group=G      commit {"offsets":[{"partition":P,"offset":N}]}
 *   GET  /topics, GET /topics/{t}, GET /healthz, GET /metrics
 *   GET  /, /file                         static files under web_root
 * HEAD is accepted wherever GET is and answered like it (status, headers, body length);
 * the transport does not send the body of a HEAD answer.
 * A partition read from an offset beyond the high watermark is refused with 416 (an
 * offset equal to it waits for the next record). Group names (group=) are 1..249 bytes
 * of printable UTF-8.
 * REST group readers are stateless: they do not join the group (no membership, no
 * partition assignment); they read every partition from the group's committed
 * offsets (the log start when none) and commit explicitly.
 * Errors: JSON {"error": "...", "code": N}, 4xx for bad input (each counted in
 * sluice_http_invalid_requests_total{reason=...}); every response is counted in
 * sluice_http_requests_total{code=...}.
 */
#ifndef SL_REST_API_H
#define SL_REST_API_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/envelope.h"

struct sl_gateway;
struct rest_api;

struct rest_hdr {
    char *name;                  /* lower-case, NUL-terminated */
    char *value;                 /* NUL-terminated (no NUL inside) */
};

struct rest_req {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* "/topics/x", no query */
    const char *query;           /* raw "a=1&b=2" (not decoded), or NULL */
    const struct rest_hdr *headers; /* in arrival order */
    size_t n_headers;
    struct sl_buf *body;         /* NULL: no body */
    struct rest_parsed *parsed;  /* optional: rest_api_preparse's result, owned by the
                                    caller; the handler may take its envelopes */
};

#define REST_MAX_EXTRA_HEADERS 4

struct rest_resp {
    int status;
    const char *content_type;    /* static text */
    char *body;                  /* malloc'd (owned by whoever holds the response) */
    size_t body_len;
    size_t n_extra;
    struct {
        const char *name;        /* static, e.g. "allow:" (lws style, with the colon) */
        char value[96];
    } extra[REST_MAX_EXTRA_HEADERS];
};

/* The completion: called exactly once per rest_api_handle, on the loop thread, possibly
 * before rest_api_handle returns. resp is lent for the call; the callee may take
 * resp->body (set it to NULL), else it is freed after the call. */
typedef void (*rest_done_fn)(void *arg, struct rest_resp *resp);

/*
 * Decode a CloudEvents JSON body (structured or batch mode publish) ahead of the
 * handler, so the transport thread does the JSON work and the loop thread only routes
 * and appends. Returns NULL when the request has nothing to pre-decode (not a publish,
 * or not a CloudEvents JSON body), else a result, successful or not, that the handler
 * picks up through req->parsed. Pure: borrows req; any thread.
 */
struct rest_parsed *rest_api_preparse(const struct rest_req *req);
/* Free a result (and the envelopes the handler did not take); *p set to NULL. */
void rest_parsed_free(struct rest_parsed **p);

struct rest_api_opts {
    const char *listener;        /* instance name ("http"), copied */
    uint64_t max_body;           /* 0: 1 MiB */
    int64_t max_wait_ms;         /* 0: 30 s */
    const char *web_root;        /* copied; NULL: no static files */
};

/* A new handler set for gw (borrowed; must outlive it). NULL on out of memory. Loop thread. */
struct rest_api *rest_api_new(struct sl_gateway *gw, const struct rest_api_opts *opts);

/*
 * Begin a graceful stop: long-poll reads parked now are answered at once with what they
 * have, and later reads do not wait (wait_ms is taken as 0). Publishes carry on and are
 * answered when the log acknowledges them, as usual. NULL is a no-op. Loop thread.
 */
void rest_api_drain(struct rest_api *api);

/*
 * Answer every request still waiting (long-poll reads with what they have, pending
 * publishes with 503; their later publish callbacks are absorbed) and free. *api set to
 * NULL; NULL is a no-op. Loop thread.
 */
void rest_api_free(struct rest_api **api);

/*
 * Handle one request. req and everything it points to are borrowed for the call only
 * (the body buffer is referenced if kept). done(arg, resp) fires exactly once.
 * Loop thread.
 */
void rest_api_handle(struct rest_api *api, const struct rest_req *req, rest_done_fn done,
                     void *arg);

/*
 * Fill resp (borrowed) with the JSON error {"error": msg, "code": status} (resp->body
 * malloc'd) and, for a 4xx, count it in sluice_http_invalid_requests_total{reason=...}.
 * The one place where errors become HTTP responses; the transport uses it too (413
 * before a body is read, 503 when the loop is gone). Any thread.
 */
void rest_api_error(struct rest_resp *resp, int status, const char *reason, const char *msg);

/* Count a response in sluice_http_requests_total{code="N"}. rest_api_handle's
 * responses are counted already; the transport calls this for the ones it makes
 * itself. Any thread. */
void rest_api_count_response(int status);
/* Count one request refused as invalid in sluice_http_invalid_requests_total{reason}
 * (reason: a short literal). Any thread. */
void rest_api_count_invalid(const char *reason);

/* Free resp->body (resp itself is not freed). */
void rest_resp_clear(struct rest_resp *resp);

/* Percent-decode src[0..len) into dst (at least len+1 bytes), '+' to space if plus.
 * Returns the decoded length, or -1 on a bad escape or an encoded NUL. Any thread. */
long rest_pct_decode(const char *src, size_t len, char *dst, int plus);

#endif

/*
 * What the REST handlers share between rest_api.c (responses, query parsing, the pending
 * list, publish, topics, static files, routing, lifetime) and rest_read.c (partition and
 * group reads with long-poll, group commits, record rendering). Not for other modules:
 * they use rest_api.h.
 * Thread affinity: loop thread only, unless a function says otherwise.
 */
#ifndef SL_REST_INTERNAL_H
#define SL_REST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "adapters/rest/rest_api.h"
#include "gateway/ce_json.h"

#define REST_ERR_LEN 256

#define CT_JSON "application/json"

/* Freed pendings an api keeps for reuse (a publish allocates none then). */
#if defined(__SANITIZE_ADDRESS__)
#define REST_SPARE_PENDING 0         /* under ASan every pending is freed: a use after
                                        free is caught, not hidden by the reuse */
#else
#define REST_SPARE_PENDING 64
#endif

struct event;
struct sl_cursor;

enum pending_kind { PENDING_PUBLISH, PENDING_READ };

/* A request answered later: a publish waiting for its acknowledgement, or a long-poll
 * read parked on cursors. Linked in its rest_api's list until answered. */
struct pending {
    struct pending *prev;
    struct pending *next;
    struct rest_api *api;          /* NULL once orphaned by rest_api_free */
    enum pending_kind kind;
    rest_done_fn done;
    void *arg;
    char topic[250];
    /* publish */
    bool batch;
    /* read */
    struct sl_cursor **curs;
    size_t n_curs;
    struct event *timer;
    size_t max;
    size_t bytes;
    struct ce_json_buf out;        /* "[" then the events so far, comma-separated */
    size_t n_out;                  /* events in out */
};

struct rest_api {
    struct sl_gateway *gw;
    char *listener;
    uint64_t max_body;
    int64_t max_wait_ms;
    char *web_root;
    struct pending *pending;
    struct pending *spare;         /* freed pendings kept for reuse (linked by next) */
    size_t n_spare;                /* at most REST_SPARE_PENDING */
    bool draining;                 /* rest_api_drain: reads answer at once */
};

/* ---------- responses (rest_api.c) ---------- */

/* Deliver resp (borrowed; its body is freed after done unless done took it): count it in
 * sluice_http_requests_total, call done(arg, resp). Loop thread. */
void rest_finish(rest_done_fn done, void *arg, struct rest_resp *resp);
/* Answer the JSON error {"error": msg, "code": status} through rest_api_error. Borrows
 * reason and msg. Loop thread. */
void rest_reply_error(rest_done_fn done, void *arg, int status, const char *reason,
                      const char *msg);
/* Answer status with obj as compact JSON. Takes the reference to obj (NULL, or a dump
 * that fails, answers 503). Loop thread. */
void rest_reply_json(rest_done_fn done, void *arg, int status, json_t *obj);
/* Answer an internal error (-errno) with its HTTP status and reason (the one mapping),
 * the text "msg: strerror". Borrows msg. Loop thread. */
void rest_reply_errno(rest_done_fn done, void *arg, int err, const char *msg);

/* ---------- small parsers (rest_api.c; pure, any thread) ---------- */

/* Find name in the raw query (borrowed) and percent-decode its value into out (outsz
 * bytes). 1: found, 0: absent, -1: bad escape or too long. */
int rest_query_get(const char *query, const char *name, char *out, size_t outsz);
/* A decimal in [min, max] (no sign '+', no spaces) into *out. false if not. */
bool rest_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* A numeric query parameter in [min, max]. 1 found, 0 absent (*out = dflt), -1 bad. */
int rest_query_num(const char *query, const char *name, int64_t min, int64_t max,
                   int64_t dflt, int64_t *out);

/* ---------- pending list (rest_api.c) ---------- */

/* A new pending request of kind for topic (copied), linked first in api's list (reused
 * from api's spares when it has one). Borrows api, done and arg until answered. NULL on
 * out of memory. Loop thread. */
struct pending *rest_pending_new(struct rest_api *api, enum pending_kind kind,
                                 const char *topic, rest_done_fn done, void *arg);
/* Unlink p from its api's list (no-op when orphaned). Loop thread. */
void rest_pending_unlink(struct pending *p);
/* Free p (unlinked) with its cursors, timer and rendered output; p itself goes to its
 * api's spares while there is room (freed with the api), else is freed. Loop thread. */
void rest_pending_free(struct pending *p);

/* ---------- reads (rest_read.c) ---------- */

/* Answer the read p (PENDING_READ) with 200 and the events gathered so far (503 if the
 * array cannot be closed); unlinks and frees p. Loop thread. */
void rest_read_answer(struct pending *p);

/* GET /topics/{topic}/partitions/{pstr}/records: borrows everything; answers through
 * done exactly once, now or when records arrive or the wait ends. Loop thread. */
void rest_read_partition(struct rest_api *api, const struct rest_req *req,
                         const char *topic, const char *pstr, rest_done_fn done,
                         void *arg);
/* GET /topics/{topic}/records?group=G: every partition from the group's committed
 * offsets (the log start when none). Borrows everything; answers through done exactly
 * once, now or later. Loop thread. */
void rest_read_group(struct rest_api *api, const struct rest_req *req,
                     const char *topic, rest_done_fn done, void *arg);
/* POST /topics/{topic}/offsets?group=G: commit the body's offsets for the group, all or
 * none (sl_group_commit_many). Borrows everything; answers through done exactly once:
 * at once for a refused request, else once the group's save is durable. Loop thread. */
void rest_read_commit(struct rest_api *api, const struct rest_req *req, const char *topic,
                      rest_done_fn done, void *arg);

#endif

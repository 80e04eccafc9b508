#include "adapters/rest/rest.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <libwebsockets.h>

#include "adapters/rest/rest_api.h"
#include "gateway/envelope.h"
#include "gateway/gateway.h"
#include "gateway/logging.h"
#include "gateway/mailbox.h"
#include "gateway/metrics.h"
#include "gateway/tcp.h"

#define REST_BUCKETS 1024
#define REST_MAX_HDRS 24
#define REST_CHUNK 16384
#define REST_DRAIN_MS 4000           /* stop: wait this long for in-flight requests... */
#define REST_FLUSH_MS 1000           /* ...then this long for their answers to be written */

enum rest_stop_mode { RUN = 0, STOP_FLUSH, STOP_NOW };

/* The CloudEvents HTTP headers looked up by name (lws 4.1 cannot enumerate unknown
 * headers). Names as lws_hdr_custom_copy wants them: lower case, with the colon. */
#define CE_HDR(n) {n ":", sizeof(n ":") - 1}
static const struct {
    const char *name;
    int len;                         /* strlen(name), colon included */
} ce_headers[] = {
    CE_HDR("ce-specversion"), CE_HDR("ce-id"), CE_HDR("ce-source"), CE_HDR("ce-type"),
    CE_HDR("ce-subject"), CE_HDR("ce-time"), CE_HDR("ce-dataschema"),
    CE_HDR("ce-partitionkey"), CE_HDR("ce-traceparent"), CE_HDR("ce-tracestate"),
    CE_HDR("ce-sequence"), CE_HDR("ce-dataref"), CE_HDR("ce-correlationid"),
    CE_HDR("ce-causationid"),
};
#undef CE_HDR

/* A request's strings (path, query, header names and values) are copied into its
 * message's arena when they fit, and malloc'd only when they do not: with messages
 * reused through the lws thread's cache, a typical request allocates nothing there
 * but its body. */
#define REST_ARENA 1024
#if defined(__SANITIZE_ADDRESS__)
#define REST_MSG_CACHE 0             /* under ASan every message is freed, so that a use
                                        after free is caught, not hidden by the reuse */
#else
#define REST_MSG_CACHE 256           /* idle messages kept by the lws thread */
#endif

struct rest_ctx;

/* One request on its way to the loop, then its answer on its way back. */
struct rest_msg {
    struct sl_msg m;                 /* must stay first */
    struct rest_msg *rnext;          /* reply queue link */
    struct rest_ctx *ctx;
    uint64_t conn_id;
    uint32_t seq;
    struct rest_req req;
    const char *method;              /* static */
    char *path;
    char *query;
    struct rest_hdr hdrs[REST_MAX_HDRS];
    size_t n_hdrs;
    size_t body_got;
    bool in_handle;
    bool answered;
    bool close_after;
    bool head;                       /* HEAD: headers only, Content-Length of the body */
    bool http10;                     /* the request said HTTP/1.0: so does the answer */
    struct rest_resp resp;
    /* msg_new zeroes the fields above, not the arena */
    size_t arena_used;
    char arena[REST_ARENA];
};

enum conn_state {
    CONN_IDLE = 0,
    CONN_BODY,                       /* reading the request body */
    CONN_WAITING,                    /* the loop has the request */
    CONN_WRITING,                    /* writing the answer */
    CONN_DISCARD,                    /* answered early; dropping the rest of the body */
    CONN_CLOSING,                    /* answered; lws flushes and closes */
};

/* lws per-session data: owned by the lws thread. */
struct rest_conn {
    struct rest_conn *hnext;
    struct lws *wsi;
    uint64_t id;                     /* 0: not registered */
    uint32_t seq;
    enum conn_state state;
    struct rest_msg *msg;            /* request being read, or answer being written */
    size_t sent;                     /* body bytes written */
    bool hdr_sent;
    bool body_pending;               /* request body bytes still to come */
    bool body_done;                  /* this request's BODY_COMPLETION came */
};

struct rest_ctx {
    atomic_uint refs;
    struct sl_adapter *a;
    char *host;
    int port;
    int bound_port;
    uint64_t max_body;
    int64_t max_wait_ms;
    uint32_t max_connections;
    char *web_root;
    struct rest_api *api;            /* loop thread */
    struct lws_context *lws;
    pthread_t thread;
    bool thread_running;
    atomic_int stop;                 /* enum rest_stop_mode */
    /* Graceful stop: set by rest_stop; from then on new connections are refused and new
     * requests answered 503 on the lws thread, never handed to the loop. */
    atomic_int draining;
    atomic_uint in_flight;           /* requests handed to the loop, not yet answered */
    /* reply queue: loop -> lws thread */
    pthread_mutex_t lock;
    struct rest_msg *rhead;
    struct rest_msg *rtail;
    /* loop thread only: answers made during one loop turn, handed over together by
     * reply_ev (one wake-up of the lws thread per turn, not one per answer) */
    struct rest_msg *lhead;
    struct rest_msg *ltail;
    unsigned l_count;
    struct event *reply_ev;
    /* lws thread only */
    struct sl_msg *phead;            /* requests read during one lws pass, posted */
    struct sl_msg *ptail;            /* together after it (one wake-up of the loop) */
    struct rest_conn *buckets[REST_BUCKETS];
    struct rest_msg *msg_cache;      /* idle messages, linked by rnext */
    unsigned n_msg_cache;
    uint64_t next_id;
    uint32_t n_conns;                /* open connections (conn_opened/closed) */
    struct sl_ratelimit refused_log; /* max_connections warnings */
    struct sl_metric *conn_gauge;
};

/* cap bytes for one of m's strings: from its arena when they fit, else malloc'd. */
static char *msg_alloc(struct rest_msg *m, size_t cap)
{
    if (cap <= REST_ARENA - m->arena_used) {
        char *p = m->arena + m->arena_used;
        m->arena_used += cap;
        return p;
    }
    return malloc(cap);
}

/* Give back what the last msg_alloc of p did not use (used bytes are kept). */
static void msg_trim(struct rest_msg *m, char *p, size_t cap, size_t used)
{
    if (m->arena_used >= cap && p == m->arena + (m->arena_used - cap)) {
        m->arena_used -= cap - used;
    }
}

static char *msg_strndup(struct rest_msg *m, const char *s, size_t len)
{
    char *p = msg_alloc(m, len + 1);

    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void msg_str_free(struct rest_msg *m, char *p)
{
    uintptr_t a = (uintptr_t)m->arena, q = (uintptr_t)p;

    if (q < a || q >= a + REST_ARENA) {
        free(p);
    }
}

static void msg_free_req(struct rest_msg *m)
{
    for (size_t i = 0; i < m->n_hdrs; i++) {
        msg_str_free(m, m->hdrs[i].name);
        msg_str_free(m, m->hdrs[i].value);
    }
    m->n_hdrs = 0;
    msg_str_free(m, m->path);
    msg_str_free(m, m->query);
    m->method = m->path = m->query = NULL;
    m->arena_used = 0;
    sl_buf_unref(&m->req.body);
    rest_parsed_free(&m->req.parsed);
}

/* Any thread (the lws thread recycles instead). */
static void msg_free(struct rest_msg *m)
{
    if (m != NULL) {
        msg_free_req(m);
        rest_resp_clear(&m->resp);
        free(m);
    }
}

/* A message for a new request, from the cache when it has one. Thread that runs the
 * lws callbacks (the service thread; rest_stop's lws_context_destroy after it ended). */
static struct rest_msg *msg_new(struct rest_ctx *ctx)
{
    struct rest_msg *m = ctx->msg_cache;

    if (m != NULL) {
        ctx->msg_cache = m->rnext;
        ctx->n_msg_cache--;
    } else if ((m = malloc(sizeof(*m))) == NULL) {
        return NULL;
    }
    memset(m, 0, offsetof(struct rest_msg, arena));
    return m;
}

/* msg_free, keeping the message for msg_new while the cache has room. Same thread as
 * msg_new. */
static void msg_recycle(struct rest_ctx *ctx, struct rest_msg *m)
{
    if (m == NULL) {
        return;
    }
    if (ctx->n_msg_cache + 1 > REST_MSG_CACHE) {   /* (REST_MSG_CACHE may be 0) */
        msg_free(m);
        return;
    }
    msg_free_req(m);
    rest_resp_clear(&m->resp);
    m->rnext = ctx->msg_cache;
    ctx->msg_cache = m;
    ctx->n_msg_cache++;
}

static void ctx_unref(struct rest_ctx *ctx)
{
    if (atomic_fetch_sub(&ctx->refs, 1) != 1) {
        return;
    }
    while (ctx->rhead != NULL) {
        struct rest_msg *m = ctx->rhead;
        ctx->rhead = m->rnext;
        msg_free(m);
    }
    while (ctx->msg_cache != NULL) {
        struct rest_msg *m = ctx->msg_cache;
        ctx->msg_cache = m->rnext;
        free(m);
    }
    pthread_mutex_destroy(&ctx->lock);
    free(ctx->host);
    free(ctx->web_root);
    free(ctx);
}

/* ---------- loop side ---------- */

/* Hand the answers gathered this loop turn to the lws thread: one lock, and one
 * wake-up if its queue was empty. Loop thread. */
static void replies_flush(struct rest_ctx *ctx)
{
    struct rest_msg *first = ctx->lhead;
    unsigned n = ctx->l_count;
    bool was_empty;

    if (first == NULL) {
        return;
    }
    pthread_mutex_lock(&ctx->lock);
    was_empty = ctx->rhead == NULL;
    if (was_empty) {
        ctx->rhead = first;
    } else {
        ctx->rtail->rnext = first;
    }
    ctx->rtail = ctx->ltail;
    pthread_mutex_unlock(&ctx->lock);
    ctx->lhead = ctx->ltail = NULL;
    ctx->l_count = 0;
    if (was_empty && ctx->lws != NULL) {
        lws_cancel_service(ctx->lws);
    }
    atomic_fetch_sub(&ctx->in_flight, n);
}

static void reply_ev_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replies_flush(arg);
}

/* Queue an answered message for the lws thread. It goes at the end of this loop turn
 * (reply_ev runs after the callbacks already active, such as the rest of a mailbox
 * drain or of a batch of flush completions), with the turn's other answers. Loop
 * thread. */
static void reply_push(struct rest_msg *m)
{
    struct rest_ctx *ctx = m->ctx;

    m->rnext = NULL;
    if (ctx->lhead == NULL) {
        ctx->lhead = m;
    } else {
        ctx->ltail->rnext = m;
    }
    ctx->ltail = m;
    ctx->l_count++;
    if (ctx->reply_ev == NULL) {
        replies_flush(ctx);            /* stopped: no more loop turns to wait for */
    } else if (ctx->l_count == 1) {
        event_active(ctx->reply_ev, EV_WRITE, 0);
    }
}

static void on_done(void *arg, struct rest_resp *resp)
{
    struct rest_msg *m = arg;

    m->resp = *resp;
    resp->body = NULL;
    m->answered = true;
    if (!m->in_handle) {
        reply_push(m);
    }
}

/* The mailbox message: runs the handler on the loop thread. */
static void msg_run(struct sl_msg *sm)
{
    struct rest_msg *m = (struct rest_msg *)sm;
    struct rest_ctx *ctx = m->ctx;

    if (ctx->api == NULL) {
        msg_free(m);           /* after rest_stop: nobody is left to write an answer */
        atomic_fetch_sub(&ctx->in_flight, 1);
        ctx_unref(ctx);
        return;
    }
    m->in_handle = true;
    rest_api_handle(ctx->api, &m->req, on_done, m);
    m->in_handle = false;
    /* The request's strings and body are freed with the message on the lws thread,
     * which allocated them (envelopes it decoded are freed here, by the publish). */
    if (m->answered) {
        reply_push(m);
    }
    ctx_unref(ctx);
}

/* ---------- lws side ---------- */

static void conn_register(struct rest_ctx *ctx, struct rest_conn *c, struct lws *wsi)
{
    size_t b;

    if (c->id != 0) {
        return;
    }
    c->wsi = wsi;
    c->id = ++ctx->next_id;
    b = c->id & (REST_BUCKETS - 1);
    c->hnext = ctx->buckets[b];
    ctx->buckets[b] = c;
}

static void conn_unregister(struct rest_ctx *ctx, struct rest_conn *c)
{
    struct rest_conn **pp;

    if (c->id == 0) {
        return;
    }
    for (pp = &ctx->buckets[c->id & (REST_BUCKETS - 1)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            break;
        }
    }
    c->id = 0;
    if (c->state != CONN_WAITING) {
        msg_recycle(ctx, c->msg);  /* WAITING: the loop owns it */
    }
    c->msg = NULL;
}

/*
 * Open connections, counted from accept to close whether or not a request came (lws
 * unbinds a keep-alive connection's per-request state between requests, so the
 * rest_conn is not it). The wsi's opaque user data marks a counted connection, and one
 * past max_connections, whose first request gets a 503. lws thread.
 */
static char conn_counted, conn_over;

static void conn_opened(struct rest_ctx *ctx, struct lws *wsi)
{
    bool over = ctx->n_conns >= ctx->max_connections;

    ctx->n_conns++;
    sl_metric_inc_gauge(ctx->conn_gauge, 1);
    lws_set_opaque_user_data(wsi, over ? &conn_over : &conn_counted);
}

static void conn_closed(struct rest_ctx *ctx, struct lws *wsi)
{
    void *mark = lws_get_opaque_user_data(wsi);

    if (mark == &conn_counted || mark == &conn_over) {
        lws_set_opaque_user_data(wsi, NULL);
        ctx->n_conns--;
        sl_metric_inc_gauge(ctx->conn_gauge, -1);
    }
}

static struct rest_conn *conn_find(struct rest_ctx *ctx, uint64_t id)
{
    struct rest_conn *c = ctx->buckets[id & (REST_BUCKETS - 1)];

    while (c != NULL && c->id != id) {
        c = c->hnext;
    }
    return c;
}

/* c's answer is now m, nothing of it written yet. */
static void conn_take_answer(struct rest_conn *c, struct rest_msg *m)
{
    c->msg = m;
    c->state = CONN_WRITING;
    c->sent = 0;
    c->hdr_sent = false;
}

/* Start writing m's answer on c, from its WRITEABLE callback. */
static void conn_answer(struct rest_conn *c, struct rest_msg *m)
{
    conn_take_answer(c, m);
    lws_callback_on_writable(c->wsi);
}

/* An answer made on the lws thread itself (413, 411, 503). */
static void conn_reject(struct rest_conn *c, int status, const char *reason, const char *text)
{
    struct rest_msg *m = c->msg;

    if (m == NULL) {
        m = calloc(1, sizeof(*m));
        if (m == NULL) {
            return;
        }
    } else {
        msg_free_req(m);
    }
    rest_api_error(&m->resp, status, reason, text);
    rest_api_count_response(status);
    m->close_after = true;
    conn_answer(c, m);
}

static int on_writeable(struct rest_ctx *ctx, struct rest_conn *c, struct lws *wsi);

/*
 * Write m's answer on c now, from the wake-up that brought it, instead of asking lws
 * for a WRITEABLE callback and another poll round: when it goes out in one write and
 * the connection stays open. Anything else (a large answer, a close, a failed write)
 * goes through c's own WRITEABLE callback as before, which is where lws lets a
 * connection be closed. lws thread, inside lws_service.
 */
static void conn_answer_now(struct rest_ctx *ctx, struct rest_conn *c, struct rest_msg *m)
{
    if (m->close_after || m->resp.body_len > REST_CHUNK / 2 || atomic_load(&ctx->draining)) {
        conn_answer(c, m);
        return;
    }
    conn_take_answer(c, m);
    if (on_writeable(ctx, c, c->wsi) != 0) {
        c->state = CONN_CLOSING;       /* the WRITEABLE callback closes it */
        lws_callback_on_writable(c->wsi);
    }
    /* still CONN_WRITING: on_writeable asked for WRITEABLE callbacks for the rest */
}

static void drain_replies(struct rest_ctx *ctx)
{
    struct rest_msg *m;

    pthread_mutex_lock(&ctx->lock);
    m = ctx->rhead;
    ctx->rhead = ctx->rtail = NULL;
    pthread_mutex_unlock(&ctx->lock);
    while (m != NULL) {
        struct rest_msg *next = m->rnext;
        struct rest_conn *c = conn_find(ctx, m->conn_id);
        if (c != NULL && c->seq == m->seq && c->state == CONN_WAITING) {
            conn_answer_now(ctx, c, m);
        } else {
            msg_recycle(ctx, m);   /* the connection went away meanwhile */
        }
        m = next;
    }
}

/* A copy of header tok's value, in m's arena when it fits; NULL when absent. */
static char *hdr_dup(struct rest_msg *m, struct lws *wsi, enum lws_token_indexes tok)
{
    int len = lws_hdr_total_length(wsi, tok);
    char *s;

    if (len <= 0) {
        return NULL;
    }
    s = msg_alloc(m, (size_t)len + 1);
    if (s != NULL && lws_hdr_copy(wsi, s, len + 1, tok) < 0) {
        msg_str_free(m, s);
        s = NULL;
    }
    return s;
}

/* Add header name: value (value from msg_alloc, now owned by m). */
static int add_hdr(struct rest_msg *m, const char *name, size_t name_len, char *value)
{
    if (value == NULL) {
        return 0;
    }
    if (m->n_hdrs == REST_MAX_HDRS ||
        (m->hdrs[m->n_hdrs].name = msg_strndup(m, name, name_len)) == NULL) {
        msg_str_free(m, value);
        return -1;
    }
    m->hdrs[m->n_hdrs++].value = value;
    return 0;
}

/* Append src to *p, percent-encoding what would change meaning in a query. */
static char *query_escape(char *p, const char *src, size_t len, bool value)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '%' || ch == '&' || ch == '+' || ch <= 0x20 || ch >= 0x7f ||
            (!value && ch == '=')) {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        } else {
            *p++ = (char)ch;
        }
    }
    return p;
}

/*
 * The query, re-encoded: lws hands URI arguments over already percent-decoded, one
 * fragment per argument; rest_api wants the raw form, so each fragment's name and
 * value are escaped again and joined with '&'.
 */
static char *collect_query(struct rest_msg *m, struct lws *wsi)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    char frag[8192];
    size_t cap;
    char *q, *p;

    if (total <= 0) {
        return NULL;
    }
    cap = (size_t)total * 3 + 256 * 3 + 1;
    q = msg_alloc(m, cap);
    if (q == NULL) {
        return NULL;
    }
    p = q;
    for (int i = 0; i < 256; i++) {
        int flen = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        const char *eq;
        if (flen < 0) {
            break;
        }
        if (i > 0) {
            *p++ = '&';
        }
        eq = memchr(frag, '=', (size_t)flen);
        if (eq == NULL) {
            p = query_escape(p, frag, (size_t)flen, false);
        } else {
            p = query_escape(p, frag, (size_t)(eq - frag), false);
            *p++ = '=';
            p = query_escape(p, eq + 1, (size_t)(flen - (eq + 1 - frag)), true);
        }
    }
    *p = '\0';
    msg_trim(m, q, cap, (size_t)(p - q) + 1);
    return q;
}

static const char *method_name(int meth)
{
    switch (meth) {
    case LWSHUMETH_GET:
        return "GET";
    case LWSHUMETH_POST:
        return "POST";
    case LWSHUMETH_OPTIONS:
        return "OPTIONS";
    case LWSHUMETH_PUT:
        return "PUT";
    case LWSHUMETH_PATCH:
        return "PATCH";
    case LWSHUMETH_DELETE:
        return "DELETE";
    case LWSHUMETH_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

static void post_msg(struct rest_ctx *ctx, struct rest_conn *c)
{
    struct rest_msg *m = c->msg;

    /* Counted before the draining check, and rest_stop sets draining before it waits
     * for the count to fall to 0: so a request is either refused here or waited for. */
    atomic_fetch_add(&ctx->in_flight, 1);
    if (atomic_load(&ctx->draining)) {
        atomic_fetch_sub(&ctx->in_flight, 1);
        conn_reject(c, 503, "shutting_down", "shutting down");
        return;
    }
    c->state = CONN_WAITING;
    m->req.method = m->method;
    m->req.path = m->path;
    m->req.query = m->query;
    m->req.headers = m->hdrs;
    m->req.n_headers = m->n_hdrs;
    m->m.fn = msg_run;
    atomic_fetch_add(&ctx->refs, 1);
    m->m.next = NULL;
    if (ctx->phead == NULL) {
        ctx->phead = &m->m;
    } else {
        ctx->ptail->next = &m->m;
    }
    ctx->ptail = &m->m;
}

/* Post the requests read during the last lws pass, in order, with one wake-up of the
 * loop. JSON bodies (structured and batch mode) are decoded by whichever thread has
 * time: here when the loop is busy, else by the loop itself; so that with batches
 * neither thread waits while the other decodes. lws thread. */
static void requests_flush(struct rest_ctx *ctx)
{
    struct sl_mailbox *mb = ctx->a->gw->mailbox;

    if (ctx->phead == NULL) {
        return;
    }
    if (sl_mailbox_busy(mb)) {
        for (struct sl_msg *sm = ctx->phead; sm != NULL; sm = sm->next) {
            struct rest_msg *m = (struct rest_msg *)sm;
            m->req.parsed = rest_api_preparse(&m->req);
        }
    }
    sl_mailbox_post_chain(mb, ctx->phead, ctx->ptail);
    ctx->phead = ctx->ptail = NULL;
}

/* LWS_CALLBACK_HTTP: a request's head is in. */
static int on_http(struct rest_ctx *ctx, struct rest_conn *c, struct lws *wsi, const char *uri)
{
    struct rest_msg *m;
    char *uri_ptr;
    int uri_len, meth;
    char cl[32];
    long long clen = -1;

    conn_register(ctx, c, wsi);
    c->seq++;
    c->body_done = false;
    if (c->state != CONN_WAITING) {
        msg_recycle(ctx, c->msg);  /* WAITING: the loop owns it (lws parses a pipelined
                                      request only after the answer: test_pipelined) */
    }
    c->state = CONN_IDLE;
    c->msg = m = msg_new(ctx);
    if (m == NULL) {
        return -1;
    }
    m->ctx = ctx;
    m->conn_id = c->id;
    m->seq = c->seq;
    meth = lws_http_get_uri_and_method(wsi, &uri_ptr, &uri_len);
    m->head = meth == LWSHUMETH_HEAD;
    m->method = method_name(meth);
    uri = uri != NULL ? uri : "/";
    m->path = msg_strndup(m, uri, strlen(uri));
    m->query = collect_query(m, wsi);
    if (m->path == NULL) {
        return -1;
    }
    add_hdr(m, "content-type", strlen("content-type"),
            hdr_dup(m, wsi, WSI_TOKEN_HTTP_CONTENT_TYPE));
    for (size_t i = 0; i < sizeof(ce_headers) / sizeof(ce_headers[0]); i++) {
        int nlen = ce_headers[i].len;
        int vlen = lws_hdr_custom_length(wsi, ce_headers[i].name, nlen);
        char *v;
        if (vlen < 0) {
            continue;
        }
        v = msg_alloc(m, (size_t)vlen + 1);
        if (v != NULL &&
            lws_hdr_custom_copy(wsi, v, vlen + 1, ce_headers[i].name, nlen) < 0) {
            msg_str_free(m, v);
            v = NULL;
        }
        add_hdr(m, ce_headers[i].name, (size_t)nlen - 1, v);   /* without the colon */
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char *end;
        if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0) {
            clen = -2;             /* longer than any valid length */
        } else {
            clen = strtoll(cl, &end, 10);
            if (*end != '\0' || clen < 0) {
                clen = -2;
            }
        }
    }
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    c->body_pending = clen > 0;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0) {
        /* lws 4.1 ends the request line at a percent-encoded CR or LF (%0D, %0A) and
         * skips the rest, HTTP version included: the query it hands over is cut short
         * and would silently mean something else. A request line without a version
         * (HTTP/0.9) lands here too. */
        conn_reject(c, 400, "bad_uri", "control character in the request URI, or no "
                    "HTTP version");
        return 0;
    }
    {
        char version[16];

        if (lws_hdr_copy(wsi, version, sizeof(version), WSI_TOKEN_HTTP) < 0 ||
            (strcmp(version, "HTTP/1.1") != 0 &&
             !(m->http10 = strcmp(version, "HTTP/1.0") == 0))) {
            /* lws takes whatever follows the URI as the version ("HTTP/9.9", or
             * "HTTP/1.1 extra" from a line with one space too many) */
            conn_reject(c, 505, "bad_version", "only HTTP/1.0 and HTTP/1.1 are served");
            return 0;
        }
    }
    if (atomic_load(&ctx->draining)) {
        conn_reject(c, 503, "shutting_down", "shutting down");
        return 0;
    }
    if (lws_get_opaque_user_data(wsi) == &conn_over) {
        /* Accepted past max_connections (lws itself takes at most max_connections +
         * 16 sockets; the rest wait in the listen backlog): answered and closed. */
        sl_listener_refused(&ctx->refused_log, "http", ctx->max_connections, NULL);
        conn_reject(c, 503, "too_many_connections", "connection limit reached");
        return 0;
    }
    if (clen >= 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        /* Both framings: RFC 9112 6.1 lets a server refuse it, and must, or the two
         * ends can disagree on where the body ends. */
        conn_reject(c, 400, "bad_framing", "both Content-Length and Transfer-Encoding");
        return 0;
    }
    if (meth == LWSHUMETH_POST || meth == LWSHUMETH_PUT || meth == LWSHUMETH_PATCH) {
        if (clen == -2) {
            conn_reject(c, 400, "bad_content_length", "bad Content-Length");
            return 0;
        }
        if (clen == -1 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
            conn_reject(c, 411, "length_required", "Content-Length required");
            return 0;
        }
        if (clen > 0 && (uint64_t)clen > ctx->max_body) {
            conn_reject(c, 413, "body_too_big", "request body too large");
            return 0;
        }
        if (clen > 0) {
            struct sl_buf *b = malloc(sizeof(*b) + (size_t)clen + 1);
            if (b == NULL) {
                conn_reject(c, 503, "no_memory", "out of memory");
                return 0;
            }
            /* Same layout and allocator as sl_buf_new (envelope.c frees with free()):
             * the body is written in place as it arrives, copied only once. */
            atomic_init(&b->refs, 1);
            b->len = (size_t)clen;
            b->data[clen] = '\0';
            m->req.body = b;
            c->state = CONN_BODY;
            return 0;
        }
    }
    post_msg(ctx, c);
    return 0;
}

static int on_body(struct rest_ctx *ctx, struct rest_conn *c, const void *in, size_t len)
{
    struct rest_msg *m = c->msg;

    (void)ctx;
    if (c->state != CONN_BODY || m == NULL || m->req.body == NULL) {
        return 0;              /* rejected request: discard its body */
    }
    if (m->body_got + len > m->req.body->len) {
        conn_reject(c, 413, "body_too_big", "request body longer than Content-Length");
        return 0;
    }
    memcpy(m->req.body->data + m->body_got, in, len);
    m->body_got += len;
    return 0;
}

static int on_body_done(struct rest_ctx *ctx, struct rest_conn *c)
{
    if (c->body_done) {
        /* lws 4.1 with a pipelined request after one with a body: it calls this
         * again and again without returning from lws_service, which stalls every
         * connection. Closing this one ends it; a client that pipelines retries
         * what was not answered (RFC 9112, 9.3.2). */
        rest_api_count_invalid("pipelined_after_body");
        return -1;
    }
    c->body_done = true;
    c->body_pending = false;
    if (c->state == CONN_DISCARD) {
        return -1;             /* the early answer went out; the body is drained: close */
    }
    if (c->state != CONN_BODY || c->msg == NULL) {
        return 0;
    }
    if (c->msg->body_got != c->msg->req.body->len) {
        conn_reject(c, 400, "short_body", "request body shorter than Content-Length");
        return 0;
    }
    post_msg(ctx, c);
    return 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

/* Append s (n bytes) at *p if it fits before end. */
static bool put(uint8_t **p, const uint8_t *end, const char *s, size_t n)
{
    if ((size_t)(end - *p) < n) {
        return false;
    }
    memcpy(*p, s, n);
    *p += n;
    return true;
}

/*
 * m's HTTP/1 response head, written at p: what lws_add_http_common_headers, the
 * extra headers and lws_finalize_http_header write, without their formatting cost
 * (about a tenth of the HTTP thread's instructions per small publish). Only for an
 * answer that then goes out whole in one LWS_WRITE_HTTP_HEADERS write: lws keeps no
 * state from those calls that such an answer needs (its Content-Length accounting
 * only serves LWS_WRITE_HTTP writes, and the connection's keep-alive was decided from
 * the request). Returns the end of the head, or NULL if it does not fit.
 */
static uint8_t *h1_head(const struct rest_msg *m, const struct rest_resp *r, uint8_t *p,
                        const uint8_t *end)
{
    const char *reason = reason_phrase(r->status);
    char num[24];

    if (r->status < 100 || r->status > 999 ||
        !put(&p, end, m->http10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9)) {
        return NULL;
    }
    num[0] = (char)('0' + r->status / 100);
    num[1] = (char)('0' + r->status / 10 % 10);
    num[2] = (char)('0' + r->status % 10);
    num[3] = ' ';
    if (!put(&p, end, num, 4) || !put(&p, end, reason, strlen(reason)) ||
        !put(&p, end, "\r\ncontent-type: ", 16) ||
        !put(&p, end, r->content_type, strlen(r->content_type)) ||
        !put(&p, end, "\r\ncontent-length: ", 18)) {
        return NULL;
    }
    /* the length without snprintf: digits backwards into num */
    {
        size_t len = r->body_len, i = sizeof(num);
        do {
            num[--i] = (char)('0' + len % 10);
            len /= 10;
        } while (len > 0);
        if (!put(&p, end, num + i, sizeof(num) - i) || !put(&p, end, "\r\n", 2)) {
            return NULL;
        }
    }
    for (size_t i = 0; i < r->n_extra; i++) {
        if (!put(&p, end, r->extra[i].name, strlen(r->extra[i].name)) ||
            !put(&p, end, " ", 1) ||
            !put(&p, end, r->extra[i].value, strlen(r->extra[i].value)) ||
            !put(&p, end, "\r\n", 2)) {
            return NULL;
        }
    }
    if (m->close_after && !put(&p, end, "connection: close\r\n", 19)) {
        return NULL;
    }
    return put(&p, end, "\r\n", 2) ? p : NULL;
}

static int on_writeable(struct rest_ctx *ctx, struct rest_conn *c, struct lws *wsi)
{
    uint8_t buf[LWS_PRE + REST_CHUNK];
    uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    struct rest_msg *m = c->msg;
    struct rest_resp *r;
    size_t total, n;

    if (c->state != CONN_WRITING || m == NULL) {
        return 0;
    }
    r = &m->resp;
    /* HEAD: the same head as GET, Content-Length included, but never a body. */
    total = m->head ? 0 : r->body_len;
    if (!c->hdr_sent) {
        uint8_t *h;

        if (atomic_load(&ctx->draining)) {
            m->close_after = true;     /* stopping: tell the client not to reuse it */
        }
        h = h1_head(m, r, p, end);
        if (h != NULL && (size_t)(end - h) >= total) {
            /* Small answer: head and body in one write (one syscall). */
            if (total > 0) {
                memcpy(h, r->body, total);
            }
            h += total;
            if (lws_write(wsi, start, (size_t)(h - start), LWS_WRITE_HTTP_HEADERS) !=
                (int)(h - start)) {
                return -1;
            }
            c->hdr_sent = true;
            c->sent = total;
        }
    }
    if (!c->hdr_sent) {
        if (lws_add_http_common_headers(wsi, (unsigned int)r->status, r->content_type,
                                        r->body_len, &p, end) != 0) {
            return -1;
        }
        for (size_t i = 0; i < r->n_extra; i++) {
            if (lws_add_http_header_by_name(wsi, (const unsigned char *)r->extra[i].name,
                                            (const unsigned char *)r->extra[i].value,
                                            (int)strlen(r->extra[i].value), &p, end) != 0) {
                return -1;
            }
        }
        if (m->close_after &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                         (const unsigned char *)"close", 5, &p, end) != 0) {
            return -1;
        }
        if (lws_finalize_http_header(wsi, &p, end) != 0) {
            return -1;
        }
        c->hdr_sent = true;
        if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) !=
            (int)(p - start)) {
            return -1;
        }
    }
    n = total - c->sent;
    if (n > REST_CHUNK) {
        n = REST_CHUNK;
    }
    if (n > 0) {
        memcpy(start, r->body + c->sent, n);
        if (lws_write(wsi, start, n,
                      c->sent + n == total ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
            (int)n) {
            return -1;
        }
        c->sent += n;
    }
    if (c->sent < total) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    /* Done: free the answer, then keep the connection for the next request. */
    {
        bool close_after = m->close_after;
        msg_recycle(ctx, m);
        c->msg = NULL;
        c->state = CONN_IDLE;
        if (close_after && c->body_pending) {
            /* Answered early (413...): read and drop the rest of the body before
             * closing, so that a client still sending sees the answer, not a reset.
             * Bounded by a timeout. */
            c->state = CONN_DISCARD;
            lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, 5);
            return 0;
        }
        if (close_after || lws_http_transaction_completed(wsi) != 0) {
            c->state = CONN_CLOSING;   /* lws flushes what it buffered, then closes */
            return -1;
        }
    }
    return 0;
}

/* Whether the lws thread still has answers to write (or early answers to finish)
 * before a graceful stop may end it. A connection still WAITING is not counted: by
 * the time rest_stop asks for the flush, the loop has answered all it will. */
static bool conns_busy(struct rest_ctx *ctx)
{
    bool queued;

    pthread_mutex_lock(&ctx->lock);
    queued = ctx->rhead != NULL;
    pthread_mutex_unlock(&ctx->lock);
    if (queued) {
        return true;
    }
    for (size_t b = 0; b < REST_BUCKETS; b++) {
        for (struct rest_conn *c = ctx->buckets[b]; c != NULL; c = c->hnext) {
            if (c->state == CONN_BODY || c->state == CONN_WRITING ||
                c->state == CONN_DISCARD || c->state == CONN_CLOSING) {
                return true;
            }
        }
    }
    return false;
}

static int rest_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct lws_context *lctx = lws_get_context(wsi);
    struct rest_ctx *ctx = lctx != NULL ? lws_context_user(lctx) : NULL;
    struct rest_conn *c = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(ctx, c, wsi, in);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(ctx, c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_done(ctx, c);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (c->state == CONN_CLOSING) {
            return -1;                 /* see conn_answer_now */
        }
        return on_writeable(ctx, c, wsi);
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* user is not a rest_conn here. Stopping: close new connections at once. */
        return ctx != NULL && atomic_load(&ctx->draining) ? 1 : 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A WebSocket upgrade: not served yet (README). Refused here, or lws would
         * answer 101 itself, past max_connections and without any idle timeout. */
        rest_api_count_invalid("websocket_upgrade");
        return 1;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        if (ctx != NULL) {
            conn_opened(ctx, wsi);
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (ctx != NULL) {
            conn_closed(ctx, wsi);     /* if CLOSED_HTTP did not come first */
        }
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (ctx != NULL) {
            conn_closed(ctx, wsi);
        }
        /* fall through */
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c != NULL) {
            conn_unregister(ctx, c);
        }
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (ctx != NULL) {
            drain_replies(ctx);
        }
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/*
 * A connection whose first line lws cannot parse as HTTP (garbage, an unknown method)
 * is handed here as a raw socket (LWS_SERVER_OPTION_FALLBACK_TO_APPLY_LISTEN_ACCEPT_
 * CONFIG), instead of lws's own 403 HTML page: it gets a 400 with the JSON error body
 * every other bad request gets, is counted, and is closed. lws thread.
 */
static int raw_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len)
{
    static const char body[] = "{\"error\":\"malformed HTTP request line\",\"code\":400}";
    struct lws_context *lctx = lws_get_context(wsi);
    struct rest_ctx *ctx = lctx != NULL ? lws_context_user(lctx) : NULL;
    uint8_t buf[LWS_PRE + 256];
    int n;

    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_ADOPT:
    case LWS_CALLBACK_RAW_RX:
        lws_callback_on_writable(wsi);     /* the rest of the input is not read */
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE:
        rest_api_count_invalid("bad_request_line");
        rest_api_count_response(400);
        n = snprintf((char *)buf + LWS_PRE, sizeof(buf) - LWS_PRE,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
        (void)lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_RAW);
        return -1;
    case LWS_CALLBACK_RAW_CLOSE:
    case LWS_CALLBACK_WSI_DESTROY:
        if (ctx != NULL) {
            conn_closed(ctx, wsi);
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols rest_protocols[] = {
    {"http", rest_lws_cb, sizeof(struct rest_conn), 0, 0, NULL, 0},
    {"sluice-bad-http", raw_lws_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *service_thread(void *arg)
{
    struct rest_ctx *ctx = arg;

    for (;;) {
        int stop = atomic_load(&ctx->stop);
        if (stop == STOP_NOW || (stop == STOP_FLUSH && !conns_busy(ctx))) {
            break;
        }
        int rc = lws_service(ctx->lws, 0);
        requests_flush(ctx);
        if (rc < 0) {
            break;
        }
    }
    return NULL;
}

/* ---------- ops ---------- */

static int rest_create(struct sl_adapter *a, const struct sl_listener_cfg *cfg, char **err)
{
    struct rest_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    atomic_init(&ctx->refs, 1);
    atomic_init(&ctx->stop, RUN);
    atomic_init(&ctx->draining, 0);
    atomic_init(&ctx->in_flight, 0);
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->a = a;
    ctx->host = strdup(cfg->host != NULL ? cfg->host : "127.0.0.1");
    ctx->port = cfg->port;
    ctx->bound_port = -1;
    ctx->max_body = cfg->max_body > 0 ? cfg->max_body : 1024 * 1024;
    ctx->max_wait_ms = cfg->max_wait_ms > 0 ? cfg->max_wait_ms : 30000;
    ctx->max_connections = cfg->max_connections > 0 ? cfg->max_connections : 10000;
    ctx->web_root = cfg->web_root != NULL ? strdup(cfg->web_root) : NULL;
    a->ctx = ctx;
    if (ctx->host == NULL || (cfg->web_root != NULL && ctx->web_root == NULL)) {
        *err = strdup("out of memory");
        return -1;
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        *err = strdup("http: port out of range");
        return -1;
    }
    return 0;
}

/*
 * lws's error lines: a request whose head does not fit max_http_header_data is closed by
 * lws without an answer ("Ran out of header data space"); it is counted as invalid.
 * Every error line goes to sluice's log, at most one a minute. lws thread.
 */
static void lws_log_emit(int level, const char *line)
{
    static struct sl_ratelimit rl;
    size_t n = strlen(line);

    (void)level;
    if (strstr(line, "Ran out of header data space") != NULL) {
        rest_api_count_invalid("head_too_large");
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        n--;
    }
    sl_logf_limited(&rl, 60000, SL_LL_WARN, "[http:lws] %.*s", (int)n, line);
}

static int rest_start(struct sl_adapter *a, char **err)
{
    struct rest_ctx *ctx = a->ctx;
    struct lws_context_creation_info info;
    struct rest_api_opts opts = {.listener = a->name,
                                 .max_body = ctx->max_body,
                                 .max_wait_ms = ctx->max_wait_ms,
                                 .web_root = ctx->web_root};
    struct lws_vhost *vh;
    char text[160];

    ctx->api = rest_api_new(a->gw, &opts);
    if (ctx->api == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    ctx->conn_gauge = sl_metric_gauge("sluice_http_connections", "open HTTP connections",
                                      "");
    ctx->reply_ev = event_new(a->gw->base, -1, 0, reply_ev_cb, ctx);
    if (ctx->reply_ev == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    lws_set_log_level(LLL_ERR, lws_log_emit);
    memset(&info, 0, sizeof(info));
    info.port = ctx->port;
    info.iface = (strcmp(ctx->host, "0.0.0.0") == 0 || ctx->host[0] == '\0' ||
                  strcmp(ctx->host, "*") == 0) ? NULL : ctx->host;
    info.protocols = rest_protocols;
    info.vhost_name = "sluice";
    info.user = ctx;
    info.gid = -1;
    info.uid = -1;
    info.count_threads = 1;
    info.max_http_header_data = 8192;
    info.max_http_header_pool = (unsigned short)(ctx->max_connections > 4096
                                                     ? 4096 : ctx->max_connections);
    info.fd_limit_per_thread = ctx->max_connections + 16;
    info.options |= LWS_SERVER_OPTION_FALLBACK_TO_APPLY_LISTEN_ACCEPT_CONFIG;
    info.listen_accept_role = "raw-skt";
    info.listen_accept_protocol = "sluice-bad-http";
    info.keepalive_timeout = 60;
    info.timeout_secs = 60;
    if (info.iface != NULL && strchr(info.iface, ':') == NULL) {
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    ctx->lws = lws_create_context(&info);
    if (ctx->lws == NULL) {
        snprintf(text, sizeof(text), "http: cannot listen on %s:%d", ctx->host, ctx->port);
        *err = strdup(text);
        return -1;
    }
    vh = lws_get_vhost_by_name(ctx->lws, "sluice");
    ctx->bound_port = vh != NULL ? lws_get_vhost_listen_port(vh) : ctx->port;
    if (pthread_create(&ctx->thread, NULL, service_thread, ctx) != 0) {
        *err = strdup("http: cannot start the service thread");
        return -1;
    }
    ctx->thread_running = true;
    sl_info("[http:%s] listening on %s:%d", a->name, ctx->host, ctx->bound_port);
    return 0;
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/*
 * Run the loop until every request already handed to it has been answered (publishes
 * complete through the log's flush completions, events on this same loop), or until
 * REST_DRAIN_MS. New requests are refused meanwhile (ctx->draining). Loop thread, from
 * outside the loop's dispatch.
 */
static void drain_in_flight(struct rest_ctx *ctx)
{
    struct event_base *base = ctx->a->gw->base;
    struct timeval tv = {.tv_sec = REST_DRAIN_MS / 1000, .tv_usec = REST_DRAIN_MS % 1000 * 1000};
    bool expired = false;
    struct event *deadline;

    if (base == NULL || atomic_load(&ctx->in_flight) == 0) {
        return;
    }
    deadline = evtimer_new(base, drain_deadline_cb, &expired);
    if (deadline == NULL || evtimer_add(deadline, &tv) != 0) {
        if (deadline != NULL) {
            event_free(deadline);
        }
        return;
    }
    while (atomic_load(&ctx->in_flight) > 0 && !expired) {
        if (event_base_loop(base, EVLOOP_ONCE) != 0) {
            break;             /* nothing to run, or re-entered from a callback */
        }
    }
    event_free(deadline);
    if (atomic_load(&ctx->in_flight) > 0) {
        sl_warn("[http:%s] stopping with %u request(s) still unanswered after %d ms",
                ctx->a->name, atomic_load(&ctx->in_flight), REST_DRAIN_MS);
    }
}

/* Let the service thread write the answers queued for it, then end it: at most
 * REST_FLUSH_MS, after which it is stopped where it is. */
static void stop_service_thread(struct rest_ctx *ctx)
{
    struct timespec ts;

    atomic_store(&ctx->stop, STOP_FLUSH);
    lws_cancel_service(ctx->lws);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += REST_FLUSH_MS / 1000;
    ts.tv_nsec += REST_FLUSH_MS % 1000 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(ctx->thread, NULL, &ts) != 0) {
        sl_warn("[http:%s] answers still being written after %d ms; closing", ctx->a->name,
                REST_FLUSH_MS);
        atomic_store(&ctx->stop, STOP_NOW);
        lws_cancel_service(ctx->lws);
        pthread_join(ctx->thread, NULL);
    }
}

/*
 * Graceful stop: refuse new connections and requests (503, Connection: close), answer
 * parked long-poll reads now, let requests already handed to the loop finish (a
 * publish is answered once the log made it durable), write those answers, then close
 * everything. Bounded by REST_DRAIN_MS + REST_FLUSH_MS.
 */
static void rest_stop(struct sl_adapter *a)
{
    struct rest_ctx *ctx = a->ctx;

    if (ctx == NULL) {
        return;
    }
    if (ctx->thread_running) {
        atomic_store(&ctx->draining, 1);
        rest_api_drain(ctx->api);
        drain_in_flight(ctx);
        replies_flush(ctx);
        stop_service_thread(ctx);
        ctx->thread_running = false;
    }
    if (ctx->lws != NULL) {
        struct lws_context *l = ctx->lws;
        ctx->lws = NULL;
        lws_context_destroy(l);    /* closes connections: their callbacks run here */
    }
    if (ctx->reply_ev != NULL) {
        event_free(ctx->reply_ev);
        ctx->reply_ev = NULL;
    }
    rest_api_free(&ctx->api);      /* answers what is left into the reply queue */
    replies_flush(ctx);
}

static void rest_destroy(struct sl_adapter *a)
{
    struct rest_ctx *ctx = a->ctx;

    if (ctx == NULL) {
        return;
    }
    rest_stop(a);
    a->ctx = NULL;
    ctx_unref(ctx);
}

static void rest_reload(struct sl_adapter *a, const struct sl_listener_cfg *cfg)
{
    (void)a;
    (void)cfg;                     /* bind, limits and web_root apply at the next start */
}

int rest_adapter_port(const struct sl_adapter *a)
{
    const struct rest_ctx *ctx = a != NULL ? a->ctx : NULL;

    return ctx != NULL ? ctx->bound_port : -1;
}

const struct sl_adapter_ops rest_adapter_ops = {
    .name = "http",
    .create = rest_create,
    .start = rest_start,
    .reload = rest_reload,
    .stop = rest_stop,
    .destroy = rest_destroy,
};

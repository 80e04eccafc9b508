/*
 * MQTT 3.1.1 / 5.0 packet codec: see mqtt_codec.h. Byte layouts follow OASIS MQTT
 * Version 3.1.1 (sections 2 and 3) and MQTT Version 5.0 (sections 1.5, 2 and 3).
 */
#include "adapters/mqtt/mqtt_codec.h"

#include <errno.h>
#include <string.h>

/* ---- helpers: UTF-8, topics ---------------------------------------------------- */

/* Well-formed UTF-8 (RFC 3629: shortest form, no surrogates, <= U+10FFFF) without U+0000. */
static bool utf8_check(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t n;
        uint8_t lo = 0x80;
        uint8_t hi = 0xBF;
        if (b < 0x80) {
            if (b == 0) {
                return false;
            }
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            n = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2;
            if (b == 0xE0) {
                lo = 0xA0;
            } else if (b == 0xED) {
                hi = 0x9F; /* U+D800..U+DFFF are surrogates */
            }
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3;
            if (b == 0xF0) {
                lo = 0x90;
            } else if (b == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return false;
        }
        if (len - i - 1 < n) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += n + 1;
    }
    return true;
}

bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    return len <= 65535 && (len == 0 || s != NULL) && utf8_check(s, len);
}

bool mqtt_topic_name_valid(const char *t, size_t len)
{
    if (len == 0 || !mqtt_utf8_valid((const uint8_t *)t, len)) {
        return false;
    }
    return memchr(t, '+', len) == NULL && memchr(t, '#', len) == NULL;
}

bool mqtt_topic_filter_valid(const char *f, size_t len)
{
    if (len == 0 || !mqtt_utf8_valid((const uint8_t *)f, len)) {
        return false;
    }
    size_t start = 0;
    while (start <= len) {
        const char *slash = memchr(f + start, '/', len - start);
        size_t end = slash != NULL ? (size_t)(slash - f) : len;
        size_t n = end - start;
        const char *lvl = f + start;
        if (memchr(lvl, '+', n) != NULL && n != 1) {
            return false;
        }
        if (memchr(lvl, '#', n) != NULL && (n != 1 || end != len)) {
            return false;
        }
        start = end + 1;
    }
    return true;
}

int mqtt_parse_shared(const char *f, size_t len, struct mqtt_str *group, struct mqtt_str *filter)
{
    static const char prefix[] = "$share/";
    const size_t plen = sizeof(prefix) - 1;
    if (len < plen || memcmp(f, prefix, plen) != 0) {
        return 0;
    }
    const char *g = f + plen;
    const char *slash = memchr(g, '/', len - plen);
    if (slash == NULL || slash == g) {
        return MQTT_ERR_TOPIC_FILTER;
    }
    size_t glen = (size_t)(slash - g);
    if (memchr(g, '+', glen) != NULL || memchr(g, '#', glen) != NULL) {
        return MQTT_ERR_TOPIC_FILTER;
    }
    const char *rest = slash + 1;
    size_t rlen = len - plen - glen - 1;
    if (!mqtt_topic_filter_valid(rest, rlen) || !mqtt_utf8_valid((const uint8_t *)g, glen)) {
        return MQTT_ERR_TOPIC_FILTER;
    }
    if (group != NULL) {
        group->ptr = g;
        group->len = glen;
    }
    if (filter != NULL) {
        filter->ptr = rest;
        filter->len = rlen;
    }
    return 1;
}

static size_t level_end(const char *s, size_t from, size_t len)
{
    const char *slash = memchr(s + from, '/', len - from);
    return slash != NULL ? (size_t)(slash - s) : len;
}

bool mqtt_filter_match(const char *f, size_t flen, const char *t, size_t tlen)
{
    if (flen == 0 || tlen == 0) {
        return false;
    }
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) {
        return false;
    }
    size_t fi = 0;
    size_t ti = 0;
    bool topic_done = false;
    for (;;) {
        size_t fe = level_end(f, fi, flen);
        if (fe - fi == 1 && f[fi] == '#') {
            return true;
        }
        if (topic_done) {
            return false;
        }
        size_t te = level_end(t, ti, tlen);
        bool plus = fe - fi == 1 && f[fi] == '+';
        if (!plus && (fe - fi != te - ti || memcmp(f + fi, t + ti, fe - fi) != 0)) {
            return false;
        }
        bool f_last = fe == flen;
        bool t_last = te == tlen;
        if (f_last) {
            return t_last;
        }
        fi = fe + 1;
        if (t_last) {
            topic_done = true;
        } else {
            ti = te + 1;
        }
    }
}

/* ---- errors ---------------------------------------------------------------------- */

uint8_t mqtt_err_reason(int err)
{
    switch (err) {
    case MQTT_ERR_MALFORMED:
        return 0x81;
    case MQTT_ERR_PROTOCOL:
        return 0x82;
    case MQTT_ERR_TOO_LARGE:
        return 0x95;
    case MQTT_ERR_UNSUPPORTED_VERSION:
        return 0x84;
    case MQTT_ERR_PAYLOAD_FORMAT:
        return 0x99;
    case MQTT_ERR_TOPIC_NAME:
        return 0x90;
    case MQTT_ERR_TOPIC_FILTER:
        return 0x8F;
    case MQTT_ERR_CLIENT_ID:
        return 0x85;
    case MQTT_ERR_INVALID:
        return 0x83;
    default:
        return 0x80;
    }
}

const char *mqtt_err_str(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case MQTT_ERR_MALFORMED:
        return "malformed packet";
    case MQTT_ERR_PROTOCOL:
        return "protocol error";
    case MQTT_ERR_TOO_LARGE:
        return "packet too large";
    case MQTT_ERR_UNSUPPORTED_VERSION:
        return "unsupported protocol version";
    case MQTT_ERR_PAYLOAD_FORMAT:
        return "payload format invalid";
    case MQTT_ERR_TOPIC_NAME:
        return "topic name invalid";
    case MQTT_ERR_TOPIC_FILTER:
        return "topic filter invalid";
    case MQTT_ERR_CLIENT_ID:
        return "client identifier not valid";
    case MQTT_ERR_INVALID:
        return "packet cannot be encoded";
    case -ENOSPC:
        return "output buffer too small";
    default:
        return "unknown error";
    }
}

/* ---- framing --------------------------------------------------------------------- */

/* Remaining Length at buf[1..]: 1 (value, header length), 0 need more, or MALFORMED. */
static int read_remaining(const uint8_t *buf, size_t len, uint32_t *value, size_t *hdr_len,
                          bool *minimal)
{
    uint32_t v = 0;
    for (size_t i = 0; i < 4; i++) {
        if (1 + i >= len) {
            return 0;
        }
        uint8_t b = buf[1 + i];
        v |= (uint32_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            *value = v;
            *hdr_len = 2 + i;
            *minimal = i == 0 || b != 0;
            return 1;
        }
    }
    return MQTT_ERR_MALFORMED;
}

int mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, size_t *packet_len)
{
    uint32_t rl;
    size_t hdr;
    bool minimal;
    int rc = read_remaining(buf, len, &rl, &hdr, &minimal);
    if (rc <= 0) {
        return rc;
    }
    size_t total = hdr + rl;
    if (max_packet != 0 && total > max_packet) {
        return MQTT_ERR_TOO_LARGE;
    }
    if (len < total) {
        return 0;
    }
    *packet_len = total;
    return 1;
}

/* ---- reader ---------------------------------------------------------------------- */

struct rd {
    const uint8_t *p;
    const uint8_t *end;
};

static size_t rd_left(const struct rd *r)
{
    return (size_t)(r->end - r->p);
}

static int rd_u8(struct rd *r, uint8_t *v)
{
    if (rd_left(r) < 1) {
        return MQTT_ERR_MALFORMED;
    }
    *v = *r->p++;
    return 0;
}

static int rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2) {
        return MQTT_ERR_MALFORMED;
    }
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4) {
        return MQTT_ERR_MALFORMED;
    }
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) |
         r->p[3];
    r->p += 4;
    return 0;
}

/* A Variable Byte Integer; v5 requires the minimal encoding [MQTT-1.5.5-1]. */
static int rd_vbi(struct rd *r, uint32_t *v)
{
    uint32_t val = 0;
    for (size_t i = 0; i < 4; i++) {
        uint8_t b;
        if (rd_u8(r, &b) != 0) {
            return MQTT_ERR_MALFORMED;
        }
        val |= (uint32_t)(b & 0x7F) << (7 * i);
        if ((b & 0x80) == 0) {
            if (i > 0 && b == 0) {
                return MQTT_ERR_MALFORMED;
            }
            *v = val;
            return 0;
        }
    }
    return MQTT_ERR_MALFORMED;
}

static int rd_bin(struct rd *r, struct mqtt_bin *out)
{
    uint16_t n;
    if (rd_u16(r, &n) != 0 || rd_left(r) < n) {
        return MQTT_ERR_MALFORMED;
    }
    out->ptr = r->p;
    out->len = n;
    r->p += n;
    return 0;
}

static int rd_str(struct rd *r, struct mqtt_str *out)
{
    struct mqtt_bin b;
    if (rd_bin(r, &b) != 0 || !utf8_check(b.ptr, b.len)) {
        return MQTT_ERR_MALFORMED;
    }
    out->ptr = (const char *)b.ptr;
    out->len = b.len;
    return 0;
}

/* ---- properties ------------------------------------------------------------------ */

enum ptype { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VBI, PT_STR, PT_BIN, PT_PAIR };

#define WILL_CTX 0 /* property context of the Will Properties (type 0 is reserved) */
#define B(t) (1u << (t))
#define ACKS (B(MQTT_PUBACK) | B(MQTT_PUBREC) | B(MQTT_PUBREL) | B(MQTT_PUBCOMP))
#define ALL_CTX 0xFFFEu /* every packet type 1..15 */

struct prop_def {
    uint8_t type;
    uint16_t ctx; /* bit per packet type, bit 0 for Will Properties */
};

static const struct prop_def prop_defs[0x2B] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, B(MQTT_PUBLISH) | B(WILL_CTX)},
    [MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, B(MQTT_PUBLISH) | B(WILL_CTX)},
    [MQTT_PROP_CONTENT_TYPE] = {PT_STR, B(MQTT_PUBLISH) | B(WILL_CTX)},
    [MQTT_PROP_RESPONSE_TOPIC] = {PT_STR, B(MQTT_PUBLISH) | B(WILL_CTX)},
    [MQTT_PROP_CORRELATION_DATA] = {PT_BIN, B(MQTT_PUBLISH) | B(WILL_CTX)},
    [MQTT_PROP_SUBSCRIPTION_ID] = {PT_VBI, B(MQTT_PUBLISH) | B(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY] = {PT_U32, B(MQTT_CONNECT) | B(MQTT_CONNACK) | B(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_STR, B(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, B(MQTT_CONNACK)},
    [MQTT_PROP_AUTH_METHOD] = {PT_STR, B(MQTT_CONNECT) | B(MQTT_CONNACK) | B(MQTT_AUTH)},
    [MQTT_PROP_AUTH_DATA] = {PT_BIN, B(MQTT_CONNECT) | B(MQTT_CONNACK) | B(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, B(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY] = {PT_U32, B(WILL_CTX)},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, B(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFO] = {PT_STR, B(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {PT_STR, B(MQTT_CONNACK) | B(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {PT_STR, B(MQTT_CONNACK) | ACKS | B(MQTT_SUBACK) |
                                             B(MQTT_UNSUBACK) | B(MQTT_DISCONNECT) |
                                             B(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAX] = {PT_U16, B(MQTT_CONNECT) | B(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAX] = {PT_U16, B(MQTT_CONNECT) | B(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, B(MQTT_PUBLISH)},
    [MQTT_PROP_MAX_QOS] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_USER] = {PT_PAIR, ALL_CTX | B(WILL_CTX)},
    [MQTT_PROP_MAX_PACKET_SIZE] = {PT_U32, B(MQTT_CONNECT) | B(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, B(MQTT_CONNACK)},
};

static uint8_t prop_type(uint32_t id)
{
    return id < sizeof(prop_defs) / sizeof(prop_defs[0]) ? prop_defs[id].type : PT_NONE;
}

/* Read one property value of the given type into the right field of *out. */
static int read_prop_value(struct rd *r, uint32_t id, struct mqtt_props *out)
{
    uint32_t u = 0;
    int rc;
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT:
        rc = rd_u8(r, &out->payload_format);
        return rc != 0 ? rc : (out->payload_format > 1 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_MESSAGE_EXPIRY:
        return rd_u32(r, &out->message_expiry);
    case MQTT_PROP_CONTENT_TYPE:
        return rd_str(r, &out->content_type);
    case MQTT_PROP_RESPONSE_TOPIC:
        rc = rd_str(r, &out->response_topic);
        if (rc == 0 && !mqtt_topic_name_valid(out->response_topic.ptr, out->response_topic.len)) {
            rc = MQTT_ERR_PROTOCOL; /* [MQTT-3.3.2-14]: a Topic Name, no wildcards */
        }
        return rc;
    case MQTT_PROP_CORRELATION_DATA:
        return rd_bin(r, &out->correlation_data);
    case MQTT_PROP_SUBSCRIPTION_ID:
        rc = rd_vbi(r, &u);
        return rc != 0 ? rc : (u == 0 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_SESSION_EXPIRY:
        return rd_u32(r, &out->session_expiry);
    case MQTT_PROP_ASSIGNED_CLIENT_ID:
        return rd_str(r, &out->assigned_client_id);
    case MQTT_PROP_SERVER_KEEP_ALIVE:
        return rd_u16(r, &out->server_keep_alive);
    case MQTT_PROP_AUTH_METHOD:
        return rd_str(r, &out->auth_method);
    case MQTT_PROP_AUTH_DATA:
        return rd_bin(r, &out->auth_data);
    case MQTT_PROP_REQUEST_PROBLEM_INFO:
        rc = rd_u8(r, &out->request_problem_info);
        return rc != 0 ? rc : (out->request_problem_info > 1 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_WILL_DELAY:
        return rd_u32(r, &out->will_delay);
    case MQTT_PROP_REQUEST_RESPONSE_INFO:
        rc = rd_u8(r, &out->request_response_info);
        return rc != 0 ? rc : (out->request_response_info > 1 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_RESPONSE_INFO:
        return rd_str(r, &out->response_info);
    case MQTT_PROP_SERVER_REFERENCE:
        return rd_str(r, &out->server_reference);
    case MQTT_PROP_REASON_STRING:
        return rd_str(r, &out->reason_string);
    case MQTT_PROP_RECEIVE_MAX:
        rc = rd_u16(r, &out->receive_max);
        return rc != 0 ? rc : (out->receive_max == 0 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_TOPIC_ALIAS_MAX:
        return rd_u16(r, &out->topic_alias_max);
    case MQTT_PROP_TOPIC_ALIAS:
        rc = rd_u16(r, &out->topic_alias);
        return rc != 0 ? rc : (out->topic_alias == 0 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_MAX_QOS:
        rc = rd_u8(r, &out->max_qos);
        return rc != 0 ? rc : (out->max_qos > 1 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_RETAIN_AVAILABLE:
        rc = rd_u8(r, &out->retain_available);
        return rc != 0 ? rc : (out->retain_available > 1 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_USER: {
        struct mqtt_str k;
        struct mqtt_str v;
        rc = rd_str(r, &k);
        return rc != 0 ? rc : rd_str(r, &v);
    }
    case MQTT_PROP_MAX_PACKET_SIZE:
        rc = rd_u32(r, &out->max_packet_size);
        return rc != 0 ? rc : (out->max_packet_size == 0 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
        rc = rd_u8(r, &out->wildcard_sub_available);
        return rc != 0 ? rc : (out->wildcard_sub_available > 1 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_SUB_ID_AVAILABLE:
        rc = rd_u8(r, &out->sub_id_available);
        return rc != 0 ? rc : (out->sub_id_available > 1 ? MQTT_ERR_PROTOCOL : 0);
    case MQTT_PROP_SHARED_SUB_AVAILABLE:
        rc = rd_u8(r, &out->shared_sub_available);
        return rc != 0 ? rc : (out->shared_sub_available > 1 ? MQTT_ERR_PROTOCOL : 0);
    default:
        return MQTT_ERR_MALFORMED;
    }
}

/* Decode a v5 property block (length + properties) for context ctx into *out. */
static int decode_props(struct rd *r, unsigned ctx, struct mqtt_props *out)
{
    uint32_t plen;
    memset(out, 0, sizeof(*out));
    if (rd_vbi(r, &plen) != 0 || rd_left(r) < plen) {
        return MQTT_ERR_MALFORMED;
    }
    struct rd pr = {r->p, r->p + plen};
    out->user.raw = r->p;
    out->user.raw_len = plen;
    out->sub_ids.raw = r->p;
    out->sub_ids.raw_len = plen;
    r->p += plen;
    while (rd_left(&pr) > 0) {
        uint32_t id;
        if (rd_vbi(&pr, &id) != 0 || prop_type(id) == PT_NONE) {
            return MQTT_ERR_MALFORMED;
        }
        if ((prop_defs[id].ctx & B(ctx)) == 0) {
            return MQTT_ERR_PROTOCOL;
        }
        bool repeatable = id == MQTT_PROP_USER ||
                          (id == MQTT_PROP_SUBSCRIPTION_ID && ctx == MQTT_PUBLISH);
        if (!repeatable && mqtt_prop_has(out, (enum mqtt_prop_id)id)) {
            return MQTT_ERR_PROTOCOL;
        }
        int rc = read_prop_value(&pr, id, out);
        if (rc != 0) {
            return rc;
        }
        mqtt_prop_set(out, (enum mqtt_prop_id)id);
        if (id == MQTT_PROP_USER) {
            out->user.count++;
        } else if (id == MQTT_PROP_SUBSCRIPTION_ID) {
            out->sub_ids.count++;
        }
    }
    if (mqtt_prop_has(out, MQTT_PROP_AUTH_DATA) && !mqtt_prop_has(out, MQTT_PROP_AUTH_METHOD)) {
        return MQTT_ERR_PROTOCOL; /* 3.1.2.11.10 / 3.2.2.3.18 / 3.15.2.2.3 */
    }
    return 0;
}

/* Skip one property value (the block was validated by decode_props). */
static int skip_prop(struct rd *r, uint32_t id)
{
    struct mqtt_bin b;
    uint32_t u;
    switch (prop_type(id)) {
    case PT_BYTE:
        return rd_left(r) >= 1 ? (r->p += 1, 0) : MQTT_ERR_MALFORMED;
    case PT_U16:
        return rd_left(r) >= 2 ? (r->p += 2, 0) : MQTT_ERR_MALFORMED;
    case PT_U32:
        return rd_left(r) >= 4 ? (r->p += 4, 0) : MQTT_ERR_MALFORMED;
    case PT_VBI:
        return rd_vbi(r, &u);
    case PT_STR:
    case PT_BIN:
        return rd_bin(r, &b);
    case PT_PAIR:
        return rd_bin(r, &b) != 0 ? MQTT_ERR_MALFORMED : rd_bin(r, &b);
    default:
        return MQTT_ERR_MALFORMED;
    }
}

/* Leave *r just past the id of the next property `want` in a validated block; false at end. */
static bool prop_seek(struct mqtt_iter *it, const uint8_t *raw, size_t raw_len, uint32_t want,
                      struct rd *r)
{
    if (!it->started) {
        it->p = raw;
        it->started = true;
    }
    r->p = it->p;
    r->end = raw + raw_len;
    while (rd_left(r) > 0) {
        uint32_t id;
        if (rd_vbi(r, &id) != 0) {
            break;
        }
        if (id == want) {
            return true;
        }
        if (skip_prop(r, id) != 0) {
            break;
        }
    }
    it->p = r->end;
    return false;
}

bool mqtt_user_prop_next(const struct mqtt_user_props *l, struct mqtt_iter *it,
                         struct mqtt_user_prop *out)
{
    struct rd r;
    struct mqtt_bin k, v;
    if (l->items != NULL) {
        if (it->i >= l->count) {
            return false;
        }
        *out = l->items[it->i++];
        return true;
    }
    if (l->raw == NULL || !prop_seek(it, l->raw, l->raw_len, MQTT_PROP_USER, &r)) {
        return false;
    }
    /* the decoder validated the UTF-8 already */
    if (rd_bin(&r, &k) != 0 || rd_bin(&r, &v) != 0) {
        it->p = r.end;
        return false;
    }
    out->name.ptr = (const char *)k.ptr;
    out->name.len = k.len;
    out->value.ptr = (const char *)v.ptr;
    out->value.len = v.len;
    it->p = r.p;
    it->i++;
    return true;
}

bool mqtt_sub_id_next(const struct mqtt_u32_list *l, struct mqtt_iter *it, uint32_t *out)
{
    struct rd r;
    if (l->items != NULL) {
        if (it->i >= l->count) {
            return false;
        }
        *out = l->items[it->i++];
        return true;
    }
    if (l->raw == NULL || !prop_seek(it, l->raw, l->raw_len, MQTT_PROP_SUBSCRIPTION_ID, &r)) {
        return false;
    }
    if (rd_vbi(&r, out) != 0) {
        it->p = r.end;
        return false;
    }
    it->p = r.p;
    it->i++;
    return true;
}

static void split_options(uint8_t o, struct mqtt_subscription *s)
{
    s->qos = o & 0x03;
    s->no_local = (o >> 2) & 1;
    s->retain_as_published = (o >> 3) & 1;
    s->retain_handling = (o >> 4) & 0x03;
}

bool mqtt_sub_next(const struct mqtt_sub_list *l, bool with_options, struct mqtt_iter *it,
                   struct mqtt_subscription *out)
{
    if (l->items != NULL) {
        if (it->i >= l->count) {
            return false;
        }
        *out = l->items[it->i++];
        return true;
    }
    if (l->raw == NULL) {
        return false;
    }
    if (!it->started) {
        it->p = l->raw;
        it->started = true;
    }
    struct rd r = {it->p, l->raw + l->raw_len};
    if (rd_left(&r) == 0) {
        return false;
    }
    memset(out, 0, sizeof(*out));
    uint8_t o = 0;
    struct mqtt_bin f;
    if (rd_bin(&r, &f) != 0 || (with_options && rd_u8(&r, &o) != 0)) {
        it->p = r.end;
        return false;
    }
    out->filter.ptr = (const char *)f.ptr;
    out->filter.len = f.len;
    split_options(o, out);
    it->p = r.p;
    it->i++;
    return true;
}

/* ---- decoder --------------------------------------------------------------------- */

static bool in_set(uint8_t code, const uint8_t *set, size_t n)
{
    return memchr(set, code, n) != NULL;
}

static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_suback311[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B,
                                        0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97,
                                        0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
                                        0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

static int check_payload_format(const struct mqtt_props *props, const struct mqtt_bin *payload)
{
    if (mqtt_prop_has(props, MQTT_PROP_PAYLOAD_FORMAT) && props->payload_format == 1 &&
        !utf8_check(payload->ptr, payload->len)) {
        return MQTT_ERR_PAYLOAD_FORMAT;
    }
    return 0;
}

static int decode_connect_flags(uint8_t flags, uint8_t level, struct mqtt_connect *c)
{
    if (flags & 0x01) {
        return MQTT_ERR_MALFORMED; /* [MQTT-3.1.2-3] reserved flag */
    }
    c->clean_start = (flags >> 1) & 1;
    c->will = (flags >> 2) & 1;
    c->will_qos = (flags >> 3) & 3;
    c->will_retain = (flags >> 5) & 1;
    c->has_password = (flags >> 6) & 1;
    c->has_username = (flags >> 7) & 1;
    if (c->will_qos == 3) {
        return MQTT_ERR_MALFORMED;
    }
    if (!c->will && (c->will_qos != 0 || c->will_retain)) {
        return MQTT_ERR_PROTOCOL; /* [MQTT-3.1.2-11] [MQTT-3.1.2-13] (3.1.1 numbering) */
    }
    if (level == MQTT_V311 && c->has_password && !c->has_username) {
        return MQTT_ERR_PROTOCOL; /* 3.1.1 [MQTT-3.1.2-22] */
    }
    return 0;
}

static int decode_connect(struct rd *r, struct mqtt_connect *c, bool rl_minimal)
{
    struct mqtt_str name;
    uint8_t flags;
    int rc;
    memset(c, 0, sizeof(*c));
    if (rd_str(r, &name) != 0 || rd_u8(r, &c->protocol_level) != 0) {
        return MQTT_ERR_MALFORMED;
    }
    if (name.len == 6 && memcmp(name.ptr, "MQIsdp", 6) == 0) {
        return MQTT_ERR_UNSUPPORTED_VERSION; /* MQTT 3.1 */
    }
    if (name.len != 4 || memcmp(name.ptr, "MQTT", 4) != 0) {
        return MQTT_ERR_PROTOCOL;
    }
    uint8_t level = c->protocol_level;
    if (level != MQTT_V311 && level != MQTT_V5) {
        return MQTT_ERR_UNSUPPORTED_VERSION;
    }
    if (level == MQTT_V5 && !rl_minimal) {
        return MQTT_ERR_MALFORMED;
    }
    if (rd_u8(r, &flags) != 0 || rd_u16(r, &c->keep_alive) != 0) {
        return MQTT_ERR_MALFORMED;
    }
    if ((rc = decode_connect_flags(flags, level, c)) != 0) {
        return rc;
    }
    if (level == MQTT_V5 && (rc = decode_props(r, MQTT_CONNECT, &c->props)) != 0) {
        return rc;
    }
    if ((rc = rd_str(r, &c->client_id)) != 0) {
        return rc;
    }
    if (level == MQTT_V311 && c->client_id.len == 0 && !c->clean_start) {
        return MQTT_ERR_CLIENT_ID; /* 3.1.1 [MQTT-3.1.3-8]: CONNACK 0x02 */
    }
    if (c->will) {
        if (level == MQTT_V5 && (rc = decode_props(r, WILL_CTX, &c->will_props)) != 0) {
            return rc;
        }
        if ((rc = rd_str(r, &c->will_topic)) != 0 || (rc = rd_bin(r, &c->will_payload)) != 0) {
            return rc;
        }
        if (!mqtt_topic_name_valid(c->will_topic.ptr, c->will_topic.len)) {
            return MQTT_ERR_TOPIC_NAME;
        }
        if ((rc = check_payload_format(&c->will_props, &c->will_payload)) != 0) {
            return rc;
        }
    }
    if (c->has_username && (rc = rd_str(r, &c->username)) != 0) {
        return rc;
    }
    if (c->has_password && (rc = rd_bin(r, &c->password)) != 0) {
        return rc;
    }
    return rd_left(r) == 0 ? 0 : MQTT_ERR_MALFORMED;
}

static int decode_connack(struct rd *r, enum mqtt_version v, struct mqtt_connack *c)
{
    uint8_t flags;
    int rc;
    if (rd_u8(r, &flags) != 0 || rd_u8(r, &c->reason) != 0) {
        return MQTT_ERR_MALFORMED;
    }
    if (flags & 0xFE) {
        return MQTT_ERR_MALFORMED; /* [MQTT-3.2.2-1] reserved bits */
    }
    c->session_present = flags & 1;
    if (v == MQTT_V5) {
        if (!in_set(c->reason, rc_connack, sizeof(rc_connack))) {
            return MQTT_ERR_PROTOCOL;
        }
        if ((rc = decode_props(r, MQTT_CONNACK, &c->props)) != 0) {
            return rc;
        }
    } else if (c->reason > 5) {
        return MQTT_ERR_PROTOCOL;
    }
    if (c->session_present && c->reason != 0) {
        return MQTT_ERR_PROTOCOL; /* [MQTT-3.2.2-4] / v5 [MQTT-3.2.2-6] */
    }
    return rd_left(r) == 0 ? 0 : MQTT_ERR_MALFORMED;
}

static int decode_publish(struct rd *r, uint8_t flags, enum mqtt_version v, struct mqtt_publish *p)
{
    int rc;
    p->dup = (flags >> 3) & 1;
    p->qos = (flags >> 1) & 3;
    p->retain = flags & 1;
    if (p->qos == 3) {
        return MQTT_ERR_MALFORMED; /* [MQTT-3.3.1-4] */
    }
    if (p->dup && p->qos == 0) {
        return MQTT_ERR_PROTOCOL; /* [MQTT-3.3.1-2] */
    }
    if ((rc = rd_str(r, &p->topic)) != 0) {
        return rc;
    }
    if (p->qos > 0) {
        if (rd_u16(r, &p->packet_id) != 0) {
            return MQTT_ERR_MALFORMED;
        }
        if (p->packet_id == 0) {
            return MQTT_ERR_PROTOCOL; /* [MQTT-2.3.1-1] / 2.2.1 */
        }
    }
    if (v == MQTT_V5 && (rc = decode_props(r, MQTT_PUBLISH, &p->props)) != 0) {
        return rc;
    }
    if (p->topic.len == 0) {
        if (v == MQTT_V311) {
            return MQTT_ERR_TOPIC_NAME; /* [MQTT-4.7.3-1] */
        }
        if (!mqtt_prop_has(&p->props, MQTT_PROP_TOPIC_ALIAS)) {
            return MQTT_ERR_PROTOCOL; /* v5 3.3.2.1 */
        }
    } else if (!mqtt_topic_name_valid(p->topic.ptr, p->topic.len)) {
        return MQTT_ERR_TOPIC_NAME; /* [MQTT-3.3.2-2] */
    }
    p->payload.ptr = r->p;
    p->payload.len = rd_left(r);
    r->p = r->end;
    return check_payload_format(&p->props, &p->payload);
}

static int decode_ack(struct rd *r, enum mqtt_type t, enum mqtt_version v, struct mqtt_ack *a)
{
    int rc;
    if (rd_u16(r, &a->packet_id) != 0) {
        return MQTT_ERR_MALFORMED;
    }
    if (a->packet_id == 0) {
        return MQTT_ERR_PROTOCOL;
    }
    if (v == MQTT_V5 && rd_left(r) > 0) {
        rd_u8(r, &a->reason);
        bool pub = t == MQTT_PUBACK || t == MQTT_PUBREC;
        if (pub ? !in_set(a->reason, rc_puback, sizeof(rc_puback))
                : !in_set(a->reason, rc_pubrel, sizeof(rc_pubrel))) {
            return MQTT_ERR_PROTOCOL;
        }
        /* Remaining Length < 4: no Property Length (3.4.2.2.1) */
        if (rd_left(r) > 0 && (rc = decode_props(r, t, &a->props)) != 0) {
            return rc;
        }
    }
    return rd_left(r) == 0 ? 0 : MQTT_ERR_MALFORMED;
}

static int decode_sub_entries(struct rd *r, enum mqtt_type t, enum mqtt_version v,
                              struct mqtt_sub_list *l)
{
    l->raw = r->p;
    l->raw_len = rd_left(r);
    while (rd_left(r) > 0) {
        struct mqtt_subscription s;
        int rc;
        memset(&s, 0, sizeof(s));
        if ((rc = rd_str(r, &s.filter)) != 0) {
            return rc;
        }
        if (t == MQTT_SUBSCRIBE) {
            uint8_t o;
            if (rd_u8(r, &o) != 0) {
                return MQTT_ERR_MALFORMED;
            }
            if ((o & (v == MQTT_V5 ? 0xC0 : 0xFC)) != 0 || (o & 3) == 3) {
                return MQTT_ERR_MALFORMED; /* [MQTT-3.8.3-4] / v5 [MQTT-3.8.3-5] */
            }
            split_options(o, &s);
            if (s.retain_handling == 3) {
                return MQTT_ERR_PROTOCOL;
            }
        }
        int shared = v == MQTT_V5 ? mqtt_parse_shared(s.filter.ptr, s.filter.len, NULL, NULL) : 0;
        if (shared < 0) {
            return shared;
        }
        if (shared == 0 && !mqtt_topic_filter_valid(s.filter.ptr, s.filter.len)) {
            return MQTT_ERR_TOPIC_FILTER;
        }
        if (shared == 1 && s.no_local) {
            return MQTT_ERR_PROTOCOL; /* [MQTT-3.8.3-4] */
        }
        l->count++;
    }
    return l->count == 0 ? MQTT_ERR_PROTOCOL : 0; /* [MQTT-3.8.3-3] [MQTT-3.10.3-2] */
}

static int decode_subscribe(struct rd *r, enum mqtt_type t, enum mqtt_version v,
                            struct mqtt_subscribe *s)
{
    int rc;
    if (rd_u16(r, &s->packet_id) != 0) {
        return MQTT_ERR_MALFORMED;
    }
    if (s->packet_id == 0) {
        return MQTT_ERR_PROTOCOL;
    }
    if (v == MQTT_V5 && (rc = decode_props(r, t, &s->props)) != 0) {
        return rc;
    }
    return decode_sub_entries(r, t, v, &s->subs);
}

static int decode_suback(struct rd *r, enum mqtt_type t, enum mqtt_version v,
                         struct mqtt_suback *s)
{
    int rc;
    if (rd_u16(r, &s->packet_id) != 0) {
        return MQTT_ERR_MALFORMED;
    }
    if (s->packet_id == 0) {
        return MQTT_ERR_PROTOCOL;
    }
    if (t == MQTT_UNSUBACK && v == MQTT_V311) {
        return rd_left(r) == 0 ? 0 : MQTT_ERR_MALFORMED;
    }
    if (v == MQTT_V5 && (rc = decode_props(r, t, &s->props)) != 0) {
        return rc;
    }
    s->reasons.ptr = r->p;
    s->reasons.len = rd_left(r);
    r->p = r->end;
    if (s->reasons.len == 0) {
        return MQTT_ERR_PROTOCOL;
    }
    const uint8_t *set = rc_suback;
    size_t n = sizeof(rc_suback);
    if (t == MQTT_UNSUBACK) {
        set = rc_unsuback;
        n = sizeof(rc_unsuback);
    } else if (v == MQTT_V311) {
        set = rc_suback311;
        n = sizeof(rc_suback311);
    }
    for (size_t i = 0; i < s->reasons.len; i++) {
        if (!in_set(s->reasons.ptr[i], set, n)) {
            return MQTT_ERR_PROTOCOL;
        }
    }
    return 0;
}

static int decode_disconnect(struct rd *r, enum mqtt_type t, enum mqtt_version v,
                             struct mqtt_disconnect *d)
{
    int rc;
    if (v == MQTT_V311 || rd_left(r) == 0) {
        return rd_left(r) == 0 ? 0 : MQTT_ERR_MALFORMED;
    }
    rd_u8(r, &d->reason);
    if (t == MQTT_DISCONNECT ? !in_set(d->reason, rc_disconnect, sizeof(rc_disconnect))
                             : !in_set(d->reason, rc_auth, sizeof(rc_auth))) {
        return MQTT_ERR_PROTOCOL;
    }
    /* DISCONNECT: Remaining Length < 2 means no Property Length (3.14.2.2.1); an AUTH
     * with a Reason Code always carries the Property Length (3.15.2). */
    if ((t == MQTT_AUTH || rd_left(r) > 0) && (rc = decode_props(r, t, &d->props)) != 0) {
        return rc;
    }
    return rd_left(r) == 0 ? 0 : MQTT_ERR_MALFORMED;
}

static int check_fixed_flags(enum mqtt_type t, uint8_t flags)
{
    switch (t) {
    case MQTT_PUBLISH:
        return 0; /* checked by decode_publish */
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return flags == 0x2 ? 0 : MQTT_ERR_MALFORMED; /* [MQTT-3.6.1-1] [MQTT-3.8.1-1] ... */
    default:
        return flags == 0 ? 0 : MQTT_ERR_MALFORMED; /* [MQTT-2.2.2-2] */
    }
}

int mqtt_decode(const uint8_t *pkt, size_t len, enum mqtt_version v, struct mqtt_packet *out)
{
    uint32_t rl;
    size_t hdr;
    bool minimal;
    memset(out, 0, sizeof(*out));
    if (read_remaining(pkt, len, &rl, &hdr, &minimal) != 1 || hdr + rl != len) {
        return MQTT_ERR_MALFORMED;
    }
    enum mqtt_type t = (enum mqtt_type)(pkt[0] >> 4);
    uint8_t flags = pkt[0] & 0x0F;
    out->type = t;
    struct rd r = {pkt + hdr, pkt + len};
    if (t == MQTT_CONNECT) {
        int rc = check_fixed_flags(t, flags);
        return rc != 0 ? rc : decode_connect(&r, &out->u.connect, minimal);
    }
    if (v != MQTT_V311 && v != MQTT_V5) {
        return MQTT_ERR_UNSUPPORTED_VERSION;
    }
    if (v == MQTT_V5 && !minimal) {
        return MQTT_ERR_MALFORMED; /* [MQTT-1.5.5-1] */
    }
    if ((unsigned)t == 0 || (t == MQTT_AUTH && v == MQTT_V311)) {
        return MQTT_ERR_MALFORMED; /* reserved packet type */
    }
    int rc = check_fixed_flags(t, flags);
    if (rc != 0) {
        return rc;
    }
    switch (t) {
    case MQTT_CONNACK:
        return decode_connack(&r, v, &out->u.connack);
    case MQTT_PUBLISH:
        return decode_publish(&r, flags, v, &out->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return decode_ack(&r, t, v, &out->u.ack);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return decode_subscribe(&r, t, v, &out->u.subscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return decode_suback(&r, t, v, &out->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return rl == 0 ? 0 : MQTT_ERR_MALFORMED;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return decode_disconnect(&r, t, v, &out->u.disconnect);
    default:
        return MQTT_ERR_MALFORMED;
    }
}

/* ---- encoder --------------------------------------------------------------------- */

/* A writer that counts when buf is NULL and stops writing (but keeps counting) at cap. */
struct wr {
    uint8_t *buf;
    size_t cap;
    size_t pos;
    bool bad; /* something cannot be encoded */
};

static void wr_bytes(struct wr *w, const void *p, size_t n)
{
    if (w->buf != NULL && n > 0 && w->pos <= w->cap && n <= w->cap - w->pos) {
        memcpy(w->buf + w->pos, p, n);
    }
    w->pos += n;
}

static void wr_u8(struct wr *w, uint8_t v)
{
    wr_bytes(w, &v, 1);
}

static void wr_u16(struct wr *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, 2);
}

static void wr_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, 4);
}

static void wr_vbi(struct wr *w, uint32_t v)
{
    if (v > MQTT_VBI_MAX) {
        w->bad = true;
        return;
    }
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        if (v > 0) {
            b |= 0x80;
        }
        wr_u8(w, b);
    } while (v > 0);
}

static void wr_bin(struct wr *w, const void *p, size_t n)
{
    if (n > 65535 || (n > 0 && p == NULL)) {
        w->bad = true;
        return;
    }
    wr_u16(w, (uint16_t)n);
    wr_bytes(w, p, n);
}

static void wr_str(struct wr *w, struct mqtt_str s)
{
    wr_bin(w, s.ptr, s.len);
}

static void wr_binv(struct wr *w, struct mqtt_bin b)
{
    wr_bin(w, b.ptr, b.len);
}

/* Write every present property in ascending identifier order (no length prefix). */
static void wr_prop_list(struct wr *w, const struct mqtt_props *p)
{
    static const uint8_t order[] = {
        MQTT_PROP_PAYLOAD_FORMAT, MQTT_PROP_MESSAGE_EXPIRY, MQTT_PROP_CONTENT_TYPE,
        MQTT_PROP_RESPONSE_TOPIC, MQTT_PROP_CORRELATION_DATA, MQTT_PROP_SUBSCRIPTION_ID,
        MQTT_PROP_SESSION_EXPIRY, MQTT_PROP_ASSIGNED_CLIENT_ID, MQTT_PROP_SERVER_KEEP_ALIVE,
        MQTT_PROP_AUTH_METHOD, MQTT_PROP_AUTH_DATA, MQTT_PROP_REQUEST_PROBLEM_INFO,
        MQTT_PROP_WILL_DELAY, MQTT_PROP_REQUEST_RESPONSE_INFO, MQTT_PROP_RESPONSE_INFO,
        MQTT_PROP_SERVER_REFERENCE, MQTT_PROP_REASON_STRING, MQTT_PROP_RECEIVE_MAX,
        MQTT_PROP_TOPIC_ALIAS_MAX, MQTT_PROP_TOPIC_ALIAS, MQTT_PROP_MAX_QOS,
        MQTT_PROP_RETAIN_AVAILABLE, MQTT_PROP_USER, MQTT_PROP_MAX_PACKET_SIZE,
        MQTT_PROP_WILDCARD_SUB_AVAILABLE, MQTT_PROP_SUB_ID_AVAILABLE,
        MQTT_PROP_SHARED_SUB_AVAILABLE,
    };
    for (size_t i = 0; i < sizeof(order); i++) {
        uint8_t id = order[i];
        if (id == MQTT_PROP_SUBSCRIPTION_ID) {
            struct mqtt_iter it = {0};
            uint32_t sid;
            while (mqtt_sub_id_next(&p->sub_ids, &it, &sid)) {
                if (sid == 0) {
                    w->bad = true;
                }
                wr_u8(w, id);
                wr_vbi(w, sid);
            }
            continue;
        }
        if (id == MQTT_PROP_USER) {
            struct mqtt_iter it = {0};
            struct mqtt_user_prop up;
            while (mqtt_user_prop_next(&p->user, &it, &up)) {
                wr_u8(w, id);
                wr_str(w, up.name);
                wr_str(w, up.value);
            }
            continue;
        }
        if (!mqtt_prop_has(p, (enum mqtt_prop_id)id)) {
            continue;
        }
        wr_u8(w, id);
        switch (id) {
        case MQTT_PROP_PAYLOAD_FORMAT:
            wr_u8(w, p->payload_format);
            break;
        case MQTT_PROP_MESSAGE_EXPIRY:
            wr_u32(w, p->message_expiry);
            break;
        case MQTT_PROP_CONTENT_TYPE:
            wr_str(w, p->content_type);
            break;
        case MQTT_PROP_RESPONSE_TOPIC:
            wr_str(w, p->response_topic);
            break;
        case MQTT_PROP_CORRELATION_DATA:
            wr_binv(w, p->correlation_data);
            break;
        case MQTT_PROP_SESSION_EXPIRY:
            wr_u32(w, p->session_expiry);
            break;
        case MQTT_PROP_ASSIGNED_CLIENT_ID:
            wr_str(w, p->assigned_client_id);
            break;
        case MQTT_PROP_SERVER_KEEP_ALIVE:
            wr_u16(w, p->server_keep_alive);
            break;
        case MQTT_PROP_AUTH_METHOD:
            wr_str(w, p->auth_method);
            break;
        case MQTT_PROP_AUTH_DATA:
            wr_binv(w, p->auth_data);
            break;
        case MQTT_PROP_REQUEST_PROBLEM_INFO:
            wr_u8(w, p->request_problem_info);
            break;
        case MQTT_PROP_WILL_DELAY:
            wr_u32(w, p->will_delay);
            break;
        case MQTT_PROP_REQUEST_RESPONSE_INFO:
            wr_u8(w, p->request_response_info);
            break;
        case MQTT_PROP_RESPONSE_INFO:
            wr_str(w, p->response_info);
            break;
        case MQTT_PROP_SERVER_REFERENCE:
            wr_str(w, p->server_reference);
            break;
        case MQTT_PROP_REASON_STRING:
            wr_str(w, p->reason_string);
            break;
        case MQTT_PROP_RECEIVE_MAX:
            wr_u16(w, p->receive_max);
            break;
        case MQTT_PROP_TOPIC_ALIAS_MAX:
            wr_u16(w, p->topic_alias_max);
            break;
        case MQTT_PROP_TOPIC_ALIAS:
            wr_u16(w, p->topic_alias);
            break;
        case MQTT_PROP_MAX_QOS:
            wr_u8(w, p->max_qos);
            break;
        case MQTT_PROP_RETAIN_AVAILABLE:
            wr_u8(w, p->retain_available);
            break;
        case MQTT_PROP_MAX_PACKET_SIZE:
            wr_u32(w, p->max_packet_size);
            break;
        case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
            wr_u8(w, p->wildcard_sub_available);
            break;
        case MQTT_PROP_SUB_ID_AVAILABLE:
            wr_u8(w, p->sub_id_available);
            break;
        default: /* MQTT_PROP_SHARED_SUB_AVAILABLE */
            wr_u8(w, p->shared_sub_available);
            break;
        }
    }
}

static size_t props_size(const struct mqtt_props *p)
{
    struct wr c = {0};
    wr_prop_list(&c, p);
    return c.bad ? MQTT_PACKET_MAX : c.pos;
}

static void wr_props(struct wr *w, const struct mqtt_props *p)
{
    size_t n = props_size(p);
    if (n > MQTT_VBI_MAX) {
        w->bad = true;
        return;
    }
    wr_vbi(w, (uint32_t)n);
    wr_prop_list(w, p);
}

static void enc_connect(struct wr *w, const struct mqtt_connect *c, enum mqtt_version v)
{
    static const struct mqtt_str name = {"MQTT", 4};
    wr_str(w, name);
    wr_u8(w, (uint8_t)v);
    if (c->will_qos > 2) {
        w->bad = true;
    }
    uint8_t flags = (uint8_t)((c->clean_start ? 0x02 : 0) | (c->will ? 0x04 : 0) |
                              (c->will ? (c->will_qos & 3) << 3 : 0) |
                              (c->will && c->will_retain ? 0x20 : 0) |
                              (c->has_password ? 0x40 : 0) | (c->has_username ? 0x80 : 0));
    wr_u8(w, flags);
    wr_u16(w, c->keep_alive);
    if (v == MQTT_V5) {
        wr_props(w, &c->props);
    }
    wr_str(w, c->client_id);
    if (c->will) {
        if (v == MQTT_V5) {
            wr_props(w, &c->will_props);
        }
        wr_str(w, c->will_topic);
        wr_binv(w, c->will_payload);
    }
    if (c->has_username) {
        wr_str(w, c->username);
    }
    if (c->has_password) {
        wr_binv(w, c->password);
    }
}

static void enc_publish(struct wr *w, const struct mqtt_publish *p, enum mqtt_version v)
{
    if (p->qos > 2) {
        w->bad = true;
    }
    wr_str(w, p->topic);
    if (p->qos > 0) {
        wr_u16(w, p->packet_id);
    }
    if (v == MQTT_V5) {
        wr_props(w, &p->props);
    }
    wr_bytes(w, p->payload.ptr, p->payload.len);
    if (p->payload.len > 0 && p->payload.ptr == NULL) {
        w->bad = true;
    }
}

static void enc_subscribe(struct wr *w, enum mqtt_type t, const struct mqtt_subscribe *s,
                          enum mqtt_version v)
{
    struct mqtt_iter it = {0};
    struct mqtt_subscription e;
    wr_u16(w, s->packet_id);
    if (v == MQTT_V5) {
        wr_props(w, &s->props);
    }
    while (mqtt_sub_next(&s->subs, t == MQTT_SUBSCRIBE, &it, &e)) {
        wr_str(w, e.filter);
        if (t == MQTT_SUBSCRIBE) {
            if (e.qos > 2 || e.retain_handling > 2) {
                w->bad = true;
            }
            uint8_t o = e.qos & 3;
            if (v == MQTT_V5) {
                o |= (uint8_t)((e.no_local ? 0x04 : 0) | (e.retain_as_published ? 0x08 : 0) |
                               ((e.retain_handling & 3) << 4));
            }
            wr_u8(w, o);
        }
    }
}

/* The body (everything after the fixed header). */
static void enc_body(struct wr *w, const struct mqtt_packet *p, enum mqtt_version v)
{
    enum mqtt_type t = p->type;
    switch (t) {
    case MQTT_CONNECT:
        enc_connect(w, &p->u.connect, v);
        break;
    case MQTT_CONNACK:
        wr_u8(w, p->u.connack.session_present ? 1 : 0);
        wr_u8(w, p->u.connack.reason);
        if (v == MQTT_V5) {
            wr_props(w, &p->u.connack.props);
        }
        break;
    case MQTT_PUBLISH:
        enc_publish(w, &p->u.publish, v);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: {
        const struct mqtt_ack *a = &p->u.ack;
        wr_u16(w, a->packet_id);
        size_t np = v == MQTT_V5 ? props_size(&a->props) : 0;
        if (v == MQTT_V5 && (a->reason != 0 || np > 0)) {
            wr_u8(w, a->reason);
            if (np > 0) {
                wr_props(w, &a->props);
            }
        }
        break;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        enc_subscribe(w, t, &p->u.subscribe, v);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        wr_u16(w, p->u.suback.packet_id);
        if (v == MQTT_V5) {
            wr_props(w, &p->u.suback.props);
        }
        if (v == MQTT_V5 || t == MQTT_SUBACK) {
            wr_bytes(w, p->u.suback.reasons.ptr, p->u.suback.reasons.len);
        }
        break;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: {
        const struct mqtt_disconnect *d = &p->u.disconnect;
        if (v == MQTT_V311) {
            w->bad = t == MQTT_AUTH;
            break;
        }
        size_t np = props_size(&d->props);
        if (d->reason != 0 || np > 0) {
            wr_u8(w, d->reason);
            if (np > 0 || t == MQTT_AUTH) {
                wr_props(w, &d->props);
            }
        }
        break;
    }
    default:
        w->bad = true;
        break;
    }
}

static uint8_t first_byte(const struct mqtt_packet *p)
{
    uint8_t flags = 0;
    switch (p->type) {
    case MQTT_PUBLISH:
        flags = (uint8_t)((p->u.publish.dup ? 0x08 : 0) | ((p->u.publish.qos & 3) << 1) |
                          (p->u.publish.retain ? 0x01 : 0));
        break;
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        flags = 0x02;
        break;
    default:
        break;
    }
    return (uint8_t)(((unsigned)p->type << 4) | flags);
}

static size_t vbi_len(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* Body length, or SIZE_MAX when p cannot be encoded. */
static size_t body_len(const struct mqtt_packet *p, enum mqtt_version v)
{
    if (v != MQTT_V311 && v != MQTT_V5) {
        return SIZE_MAX;
    }
    struct wr c = {0};
    enc_body(&c, p, v);
    if (c.bad || c.pos > MQTT_VBI_MAX) {
        return SIZE_MAX;
    }
    return c.pos;
}

size_t mqtt_encoded_size(const struct mqtt_packet *p, enum mqtt_version v)
{
    size_t body = body_len(p, v);
    return body == SIZE_MAX ? 0 : 1 + vbi_len(body) + body;
}

int mqtt_encode(const struct mqtt_packet *p, enum mqtt_version v, uint8_t *out, size_t cap)
{
    size_t body = body_len(p, v);
    if (body == SIZE_MAX) {
        return MQTT_ERR_INVALID;
    }
    size_t total = 1 + vbi_len(body) + body;
    if (total > cap || out == NULL) {
        return -ENOSPC;
    }
    struct wr w = {out, cap, 0, false};
    wr_u8(&w, first_byte(p));
    wr_vbi(&w, (uint32_t)body);
    enc_body(&w, p, v);
    if (w.bad || w.pos != total) {
        return MQTT_ERR_INVALID;
    }
    return (int)total;
}

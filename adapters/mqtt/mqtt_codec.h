/*
 * MQTT 3.1.1 (OASIS, protocol level 4) and MQTT 5.0 (level 5) packet codec.
 *
 * Pure: no I/O, no allocation, no globals; every function may run on any thread.
 *
 * Decoding is zero-copy: strings, binary data, the payload and lists inside a decoded
 * struct mqtt_packet are views into the caller's packet bytes and stay valid exactly as
 * long as those bytes do. Lists (user properties, subscription identifiers, SUBSCRIBE and
 * UNSUBSCRIBE entries) are read back with the mqtt_*_next() iterators, which work both
 * on decoded views and on caller-filled arrays (the encoding side).
 *
 * The decoder enforces the specification's MUSTs that can be checked inside one packet
 * (reserved bits, QoS 3, UTF-8 rules, packet identifiers, topic names and filters,
 * property placement, duplicates and values, reason code sets). It does not check rules
 * that need session state (topic alias range, receive maximum, direction of a packet,
 * client-to-server subscription identifiers in PUBLISH, packet size limits the session
 * negotiated beyond what mqtt_frame() was given).
 */
#ifndef SL_MQTT_CODEC_H
#define SL_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Protocol level byte of CONNECT. */
enum mqtt_version {
    MQTT_V311 = 4,
    MQTT_V5 = 5,
};

/* Control packet types (high nibble of the first byte). */
enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15, /* MQTT 5 only */
};

/* Errors (negative). mqtt_err_reason() is the one place they become reason codes. */
enum mqtt_err {
    MQTT_ERR_MALFORMED = -1001,           /* 0x81 Malformed Packet */
    MQTT_ERR_PROTOCOL = -1002,            /* 0x82 Protocol Error */
    MQTT_ERR_TOO_LARGE = -1003,           /* 0x95 Packet too large */
    MQTT_ERR_UNSUPPORTED_VERSION = -1004, /* 0x84 Unsupported Protocol Version */
    MQTT_ERR_PAYLOAD_FORMAT = -1005,      /* 0x99 Payload format invalid */
    MQTT_ERR_TOPIC_NAME = -1006,          /* 0x90 Topic Name invalid */
    MQTT_ERR_TOPIC_FILTER = -1007,        /* 0x8F Topic Filter invalid */
    MQTT_ERR_CLIENT_ID = -1008,           /* 0x85 Client Identifier not valid */
    MQTT_ERR_INVALID = -1009,             /* encode: the struct cannot be encoded (0x83) */
};

/* Largest Remaining Length / Variable Byte Integer value. */
#define MQTT_VBI_MAX 268435455u
/* Largest whole packet: 1 type byte + 4 length bytes + MQTT_VBI_MAX. */
#define MQTT_PACKET_MAX (5u + MQTT_VBI_MAX)

/* v5 property identifiers. */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAX = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAX_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER = 0x26,
    MQTT_PROP_MAX_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* A UTF-8 string view (not NUL-terminated). */
struct mqtt_str {
    const char *ptr;
    size_t len;
};

/* A NUL-terminated malloc'd copy of m, or NULL (out of memory). Any thread. */
static inline char *mqtt_str_dup(const struct mqtt_str *m)
{
    char *p = malloc(m->len + 1);
    if (p != NULL) {
        memcpy(p, m->ptr, m->len);
        p[m->len] = '\0';
    }
    return p;
}

/* A binary data view. */
struct mqtt_bin {
    const uint8_t *ptr;
    size_t len;
};

struct mqtt_user_prop {
    struct mqtt_str name;
    struct mqtt_str value;
};

/*
 * Ordered lists. To encode, the caller sets items/count (raw NULL). After decoding,
 * items is NULL, count is the number of entries and raw/raw_len is the validated wire
 * region they are read from. Read either form with the matching mqtt_*_next().
 */
struct mqtt_user_props {
    const struct mqtt_user_prop *items;
    size_t count;
    const uint8_t *raw; /* the whole property block */
    size_t raw_len;
};

struct mqtt_u32_list {
    const uint32_t *items;
    size_t count;
    const uint8_t *raw; /* the whole property block */
    size_t raw_len;
};

/* Every v5 property. A scalar or string property is present iff its bit
 * (1ull << id) is set in present (see mqtt_prop_has / mqtt_prop_set); the two lists are
 * present iff count > 0 (the decoder sets their bits too). */
struct mqtt_props {
    uint64_t present;
    uint8_t payload_format;            /* 0x01 */
    uint32_t message_expiry;           /* 0x02 */
    struct mqtt_str content_type;      /* 0x03 */
    struct mqtt_str response_topic;    /* 0x08 */
    struct mqtt_bin correlation_data;  /* 0x09 */
    struct mqtt_u32_list sub_ids;      /* 0x0B, several only in PUBLISH */
    uint32_t session_expiry;           /* 0x11 */
    struct mqtt_str assigned_client_id;/* 0x12 */
    uint16_t server_keep_alive;        /* 0x13 */
    struct mqtt_str auth_method;       /* 0x15 */
    struct mqtt_bin auth_data;         /* 0x16 */
    uint8_t request_problem_info;      /* 0x17 */
    uint32_t will_delay;               /* 0x18 */
    uint8_t request_response_info;     /* 0x19 */
    struct mqtt_str response_info;     /* 0x1A */
    struct mqtt_str server_reference;  /* 0x1C */
    struct mqtt_str reason_string;     /* 0x1F */
    uint16_t receive_max;              /* 0x21 */
    uint16_t topic_alias_max;          /* 0x22 */
    uint16_t topic_alias;              /* 0x23 */
    uint8_t max_qos;                   /* 0x24 */
    uint8_t retain_available;          /* 0x25 */
    struct mqtt_user_props user;       /* 0x26, order preserved */
    uint32_t max_packet_size;          /* 0x27 */
    uint8_t wildcard_sub_available;    /* 0x28 */
    uint8_t sub_id_available;          /* 0x29 */
    uint8_t shared_sub_available;      /* 0x2A */
};

static inline bool mqtt_prop_has(const struct mqtt_props *p, enum mqtt_prop_id id)
{
    return (p->present >> (unsigned)id) & 1u;
}

static inline void mqtt_prop_set(struct mqtt_props *p, enum mqtt_prop_id id)
{
    p->present |= 1ull << (unsigned)id;
}

struct mqtt_connect {
    uint8_t protocol_level;   /* set even when decode fails with UNSUPPORTED_VERSION */
    bool clean_start;         /* Clean Session in 3.1.1 */
    uint16_t keep_alive;
    struct mqtt_props props;
    struct mqtt_str client_id;
    bool will;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_props will_props;
    struct mqtt_str will_topic;
    struct mqtt_bin will_payload;
    bool has_username;
    struct mqtt_str username;
    bool has_password;
    struct mqtt_bin password;
};

struct mqtt_connack {
    bool session_present;
    uint8_t reason;           /* v5 reason code, 3.1.1 return code (0..5) */
    struct mqtt_props props;
};

struct mqtt_publish {
    bool dup;
    uint8_t qos;
    bool retain;
    struct mqtt_str topic;    /* may be empty in v5 with a Topic Alias */
    uint16_t packet_id;       /* QoS 1 and 2 only */
    struct mqtt_props props;
    struct mqtt_bin payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t reason;           /* v5; 0 in 3.1.1 */
    struct mqtt_props props;
};

/* One SUBSCRIBE entry (UNSUBSCRIBE uses the filter only). */
struct mqtt_subscription {
    struct mqtt_str filter;
    uint8_t qos;
    bool no_local;            /* v5 */
    bool retain_as_published; /* v5 */
    uint8_t retain_handling;  /* v5: 0..2 */
};

struct mqtt_sub_list {
    const struct mqtt_subscription *items;
    size_t count;
    const uint8_t *raw;       /* the entries region of the payload */
    size_t raw_len;
};

/* SUBSCRIBE and UNSUBSCRIBE. */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    struct mqtt_sub_list subs;
};

/* SUBACK and UNSUBACK: one reason code byte per topic filter (3.1.1 UNSUBACK: none). */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    struct mqtt_bin reasons;
};

/* DISCONNECT and AUTH (v5; a 3.1.1 DISCONNECT has reason 0 and no properties). */
struct mqtt_disconnect {
    uint8_t reason;
    struct mqtt_props props;
};

struct mqtt_packet {
    enum mqtt_type type;
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;             /* PUBACK PUBREC PUBREL PUBCOMP */
        struct mqtt_subscribe subscribe; /* SUBSCRIBE UNSUBSCRIBE */
        struct mqtt_suback suback;       /* SUBACK UNSUBACK */
        struct mqtt_disconnect disconnect; /* DISCONNECT AUTH */
    } u;                                 /* PINGREQ / PINGRESP use none */
};

/* Iterator state for the mqtt_*_next() functions: zero-initialise before the first call. */
struct mqtt_iter {
    const uint8_t *p;
    size_t i;
    bool started;
};

/*
 * Frame one packet at the start of buf.
 * Borrows buf (len bytes). max_packet: the largest whole packet accepted (0: no limit
 * beyond MQTT_PACKET_MAX). Returns 1 with *packet_len = fixed header + remaining length
 * when the whole packet is in buf, 0 when more bytes are needed (*packet_len untouched),
 * MQTT_ERR_MALFORMED for a Remaining Length longer than 4 bytes, MQTT_ERR_TOO_LARGE
 * (checked as soon as the length is known) for a packet over max_packet.
 * A non-minimal Remaining Length is accepted here (3.1.1 allows it); mqtt_decode()
 * rejects it for v5. Any thread.
 */
int mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, size_t *packet_len);

/*
 * Decode one framed packet (exactly len bytes, as given by mqtt_frame()).
 * Borrows pkt; *out receives views into pkt (valid while pkt is) and owns nothing, so
 * there is nothing to free. v is the session's version; CONNECT ignores it and reads
 * the protocol level from the packet (out->u.connect.protocol_level is set even when
 * the result is MQTT_ERR_UNSUPPORTED_VERSION, so the session can pick the CONNACK).
 * Returns 0, or a negative MQTT_ERR_* (*out is then unspecified). Any thread.
 */
int mqtt_decode(const uint8_t *pkt, size_t len, enum mqtt_version v, struct mqtt_packet *out);

/*
 * Bytes mqtt_encode() writes for p in version v (CONNECT: v is the protocol level
 * written). Borrows p. Returns 0 when p cannot be encoded (a string over 65535 bytes,
 * QoS 3, AUTH in 3.1.1, a packet over MQTT_PACKET_MAX ...). Any thread.
 */
size_t mqtt_encoded_size(const struct mqtt_packet *p, enum mqtt_version v);

/*
 * Encode p for version v into out (cap bytes). Borrows p and out.
 * v5 properties are written in ascending identifier order (user properties and
 * subscription identifiers in their list order); 3.1.1 ignores properties and reason
 * codes that have no 3.1.1 encoding. v5 acks, DISCONNECT and AUTH use the shortest form.
 * Returns the number of bytes written, -ENOSPC if cap is too small (nothing useful in
 * out), or MQTT_ERR_INVALID. Any thread.
 */
int mqtt_encode(const struct mqtt_packet *p, enum mqtt_version v, uint8_t *out, size_t cap);

/* The v5 reason code for a negative MQTT_ERR_* (0x80 Unspecified error for anything
 * else). Pure, any thread. */
uint8_t mqtt_err_reason(int err);

/* A short static description of an MQTT_ERR_* for logs. Any thread. */
const char *mqtt_err_str(int err);

/* MQTT's UTF-8 rules: well-formed (shortest form, no surrogates, <= U+10FFFF), no
 * U+0000, at most 65535 bytes. Borrows s. Any thread. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);

/* A topic name: valid UTF-8, at least one byte, no '+' or '#'. Borrows t. Any thread. */
bool mqtt_topic_name_valid(const char *t, size_t len);

/* A topic filter: valid UTF-8, at least one byte, '+' alone in its level, '#' alone in
 * the last level. Does not interpret "$share/" (see mqtt_parse_shared). Any thread. */
bool mqtt_topic_filter_valid(const char *f, size_t len);

/*
 * Shared subscription syntax (v5): "$share/{group}/{filter}".
 * Borrows f. Returns 0 if f does not start with "$share/" (an ordinary filter),
 * 1 if it is a valid shared subscription (group and filter, when not NULL, receive views
 * into f), MQTT_ERR_TOPIC_FILTER if it starts with "$share/" but the group is empty or
 * holds '/', '+' or '#', or the filter part is missing or invalid. Any thread.
 */
int mqtt_parse_shared(const char *f, size_t len, struct mqtt_str *group, struct mqtt_str *filter);

/* Does topic name t match filter f (both assumed valid)? '+' and '#' in the first level
 * do not match topics starting with '$'; "a/#" matches "a". Borrows both. Any thread. */
bool mqtt_filter_match(const char *f, size_t flen, const char *t, size_t tlen);

/* Next user property of l (decoded or caller-built) into *out; false at the end.
 * Borrows l; it must be zero-initialised before the first call. Any thread. */
bool mqtt_user_prop_next(const struct mqtt_user_props *l, struct mqtt_iter *it,
                         struct mqtt_user_prop *out);

/* Next subscription identifier of l into *out; false at the end. As above. */
bool mqtt_sub_id_next(const struct mqtt_u32_list *l, struct mqtt_iter *it, uint32_t *out);

/* Next entry of a SUBSCRIBE (with_options true) or UNSUBSCRIBE (false) list; the
 * options fields are zero for UNSUBSCRIBE. As above. */
bool mqtt_sub_next(const struct mqtt_sub_list *l, bool with_options, struct mqtt_iter *it,
                   struct mqtt_subscription *out);

#endif

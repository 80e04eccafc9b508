/*
 * The event envelope: a CloudEvents 1.0 event plus partition key, ordered headers and
 * a refcounted immutable payload, and where it came from. Every adapter maps its
 * protocol onto this; the log stores it as a Kafka record with the CloudEvents Kafka
 * binding (binary mode: `ce_<attr>` headers, `content-type`, other headers verbatim).
 *
 * Thread affinity: an envelope is built by one thread, then treated as immutable;
 * references (sl_env_ref/unref, sl_buf_ref/unref) are atomic and may be taken and
 * dropped from any thread.
 */
#ifndef SL_ENVELOPE_H
#define SL_ENVELOPE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/log/recordbatch.h"

/* Refcounted immutable bytes, shared (never copied) across fan-out. data is followed
 * by one NUL byte that is not counted in len, so text payloads can be used as C strings. */
struct sl_buf {
    atomic_uint refs;
    size_t len;
    uint8_t data[];
};

/* A new buffer holding a copy of data[0..len). NULL on out of memory. Any thread. */
struct sl_buf *sl_buf_new(const void *data, size_t len);
/* A new reference to b (b may be NULL). Any thread. */
struct sl_buf *sl_buf_ref(struct sl_buf *b);
/* Drop a reference; frees at zero; *b set to NULL; NULL is a no-op. Any thread. */
void sl_buf_unref(struct sl_buf **b);

struct sl_env_hdr {
    char *name;                  /* NUL-terminated */
    struct sl_buf *value;        /* NULL: a null header value */
};

struct sl_env_ext {              /* a CloudEvents extension attribute */
    char *name;                  /* [a-z0-9]{1,20} */
    char *value;
    char *header_name;           /* "ce_" + name, for the Kafka binding */
};

struct sl_env;
struct sl_publish_result;
typedef void (*sl_env_ack_fn)(struct sl_env *env, const struct sl_publish_result *res,
                              void *arg);

struct sl_env {
    atomic_uint refs;
    /* CloudEvents 1.0 context attributes (specversion is always "1.0"). */
    char *id;
    char *source;
    char *type;
    char *subject;
    char *time;                  /* RFC 3339 as given or generated */
    char *datacontenttype;
    char *dataschema;
    struct sl_env_ext *ext;
    size_t n_ext;
    int64_t timestamp_ms;        /* the record timestamp; from time, else arrival */
    /* Partition key (NULL: none, spread) and protocol headers, in arrival order. */
    struct sl_buf *key;
    struct sl_env_hdr *headers;
    size_t n_headers;
    /* Payload (the CloudEvents data), NULL for none. */
    struct sl_buf *data;
    /* Origin: adapter kind ("http", "mqtt", ...), listener or bridge name, destination. */
    char origin_adapter[16];
    char *origin_name;
    char *destination;
    /* Read back from the log: where it is stored (-1 when not from the log). */
    int32_t partition;
    int64_t offset;
    /* Ack hook the source adapter fills in (optional). */
    sl_env_ack_fn ack;
    void *ack_arg;
};

/* A new empty envelope with one reference. NULL on out of memory. Any thread. */
struct sl_env *sl_env_new(void);
struct sl_env *sl_env_ref(struct sl_env *env);
/* Drop a reference; frees everything at zero; *env set to NULL. Any thread. */
void sl_env_unref(struct sl_env **env);

/*
 * Set a CloudEvents attribute by its name: id, source, type, subject, time,
 * datacontenttype, dataschema, specversion (must be "1.0"), or an extension
 * ([a-z0-9]{1,20}). The value is copied. Returns 0, -EINVAL (bad name or value,
 * e.g. time not RFC 3339, specversion not 1.0), -ENOMEM. Building thread only.
 */
int sl_env_set_attr(struct sl_env *env, const char *name, const char *value, size_t len);
/* The context attributes with a field of their own (specversion and extensions have
 * none). */
enum sl_env_attr {
    SL_ATTR_ID,
    SL_ATTR_SOURCE,
    SL_ATTR_TYPE,
    SL_ATTR_SUBJECT,
    SL_ATTR_TIME,
    SL_ATTR_DATACONTENTTYPE,
    SL_ATTR_DATASCHEMA,
};

/*
 * sl_env_set_attr for one of those by its index, without looking the name up (decoders
 * that already know which attribute a member is). nul_free: the caller knows value has
 * no NUL byte (e.g. JSON string text without escapes, where the scanner refuses control
 * characters), so it is not searched for one. The value is copied. Same returns as
 * sl_env_set_attr (-EINVAL also for an attr out of range). Building thread only.
 */
int sl_env_set_attr_at(struct sl_env *env, enum sl_env_attr attr, const char *value,
                       size_t len, bool nul_free);
/* CloudEvents extension attribute names: [a-z0-9]{1,20}. Pure; any thread. */
bool sl_env_ext_name_valid(const char *name);

/* The attribute's value or NULL (same names; "specversion" gives "1.0"). */
const char *sl_env_get_attr(const struct sl_env *env, const char *name);

/* Append a header (name and value copied; value NULL for null). 0 or -ENOMEM. */
int sl_env_add_header(struct sl_env *env, const char *name, const void *value,
                      int32_t value_len);
/* First header with this name, or NULL. */
const struct sl_env_hdr *sl_env_find_header(const struct sl_env *env, const char *name);

/* Set key or data from bytes (copied) or a buffer (a reference taken). 0 or -ENOMEM. */
int sl_env_set_key(struct sl_env *env, const void *key, size_t len);
int sl_env_set_data(struct sl_env *env, const void *data, size_t len);
void sl_env_set_data_buf(struct sl_env *env, struct sl_buf *data);

/* Origin (copied). 0 or -ENOMEM. */
int sl_env_set_origin(struct sl_env *env, const char *adapter, const char *name,
                      const char *destination);

/*
 * Fill what the source did not give: id (random UUID v4), source
 * ("/sluice/<adapter>/<name>"), type ("io.sluice.message"), time (now, RFC 3339 UTC
 * with milliseconds) and timestamp_ms. 0 or -ENOMEM.
 */
int sl_env_finalize(struct sl_env *env);
/*
 * The same, with the arrival time shared by the caller: *now (ms since the epoch) if it
 * is >= 0, else the clock is read (only if the envelope needs it) and kept in *now. A
 * caller finalizing a batch starts with *now = -1, so the batch reads the clock at most
 * once and its generated times are all the same.
 */
int sl_env_finalize_now(struct sl_env *env, int64_t *now);

/* Milliseconds since the epoch from RFC 3339 text; -EINVAL if not RFC 3339. */
int sl_rfc3339_parse_ms(const char *s, size_t len, int64_t *out_ms);
/* Format ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 25 bytes). */
void sl_rfc3339_format_ms(int64_t ms, char *out, size_t outsz);

/*
 * Kafka binding, encode: fill *rec with the record for env (key, value = data,
 * timestamp, headers ce_specversion, ce_id, ce_source, ce_type, ce_subject, ce_time,
 * ce_dataschema, ce_<ext>, content-type, then env's own headers). Pointers borrow from
 * env and from hdrs, an array of at least sl_env_record_headers(env) entries the
 * caller provides. Any thread.
 */
size_t sl_env_record_headers(const struct sl_env *env);
void sl_env_to_record(const struct sl_env *env, struct sl_hdr *hdrs, struct sl_rec_in *rec);

/*
 * Kafka binding, decode: a new envelope (one reference) from a record read from the
 * log; data and key are copied into buffers. Records not written by sluice (no ce_
 * headers) still decode: id "<partition>-<offset>" is synthesised by the caller if it
 * wants one. NULL on out of memory or a corrupt header block. Any thread.
 */
struct sl_env *sl_env_from_record(const struct sl_record *rec, int32_t partition);

#endif

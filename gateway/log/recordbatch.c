/*
 * Kafka RecordBatch v2 codec. See recordbatch.h for the layout.
 *
 * The builder reserves the 61-byte batch header, then encodes each record straight into
 * the growing buffer: the record's exact size is computed first (cheap varint size
 * arithmetic), so the length prefix is written once and nothing is moved. No per-record
 * allocation: the buffer only grows (doubling) and is reused across batches.
 *
 * The decoder never trusts a length: every field is checked against the end of the
 * bytes it was given, and the iterator allocates nothing.
 */
#include "gateway/log/recordbatch.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <isa-l/crc.h>
#include <librdkafka/rdkafka.h>
#include <lz4frame.h>
#include <sys/types.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

/* Byte positions of the v2 batch header fields. */
enum {
    RB_OFF_BASE_OFFSET = 0,
    RB_OFF_BATCH_LENGTH = 8,
    RB_OFF_LEADER_EPOCH = 12,
    RB_OFF_MAGIC = 16,
    RB_OFF_CRC = 17,
    RB_OFF_ATTRIBUTES = 21,
    RB_OFF_LAST_OFFSET_DELTA = 23,
    RB_OFF_BASE_TIMESTAMP = 27,
    RB_OFF_MAX_TIMESTAMP = 35,
    RB_OFF_PRODUCER_ID = 43,
    RB_OFF_PRODUCER_EPOCH = 51,
    RB_OFF_BASE_SEQUENCE = 53,
    RB_OFF_RECORD_COUNT = 57,
};

#define RB_MAGIC 2
#define RB_ATTR_COMPRESSION_MASK 0x07
#define RB_ATTR_LOG_APPEND_TIME 0x08
#define RB_ATTR_CONTROL 0x20
#define RB_MAX_VARINT 10

/* ---- big-endian helpers ---- */

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

/* ---- CRC-32C, murmur2 ---- */

uint32_t sl_crc32c(const void *data, size_t len)
{
    /* ISA-L's crc32_iscsi neither pre- nor post-inverts: seed with ~0, invert the result,
     * and chain chunks on the raw (uninverted) value. */
    const unsigned char *p = data;
    unsigned int crc = 0xFFFFFFFFu;

    while (len > 0) {
        int chunk = len > (size_t)INT_MAX ? INT_MAX : (int)len;
        crc = crc32_iscsi((unsigned char *)p, chunk, crc);
        p += chunk;
        len -= (size_t)chunk;
    }
    return ~crc;
}

int32_t sl_murmur2(const void *key, size_t len)
{
    /* Kafka's Utils.murmur2: MurmurHash2, seed 0x9747b28c, little-endian 4-byte words. */
    const uint32_t m = 0x5bd1e995u;
    const uint8_t *p = key;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t words = len / 4;

    for (size_t i = 0; i < words; i++, p += 4) {
        uint32_t k = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                     ((uint32_t)p[3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        h ^= p[0];
        h *= m;
        break;
    default:
        break;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

int32_t sl_murmur2_partition(const void *key, size_t len, int32_t partitions)
{
    if (partitions <= 0) {
        return -EINVAL;
    }
    /* librdkafka's partitioner does not look at rkt or the opaques. */
    return rd_kafka_msg_partitioner_murmur2(NULL, key, len, partitions, NULL, NULL);
}

/* ---- varints ---- */

static size_t varint_size(int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 1;

    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

size_t sl_varint_put(uint8_t *out, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;

    while (u >= 0x80) {
        out[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    out[n++] = (uint8_t)u;
    return n;
}

size_t sl_varint_get(const uint8_t *p, const uint8_t *end, int64_t *v)
{
    uint64_t u = 0;

    for (size_t i = 0; i < RB_MAX_VARINT; i++) {
        if (p + i >= end) {
            return 0;
        }
        uint8_t b = p[i];
        if (i == RB_MAX_VARINT - 1 && b > 1) {
            return 0; /* more than 64 bits */
        }
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
            return i + 1;
        }
    }
    return 0; /* longer than 10 bytes */
}

/* A varint that must fit an int32 (Kafka's varint, as opposed to varlong). */
static size_t varint32_get(const uint8_t *p, const uint8_t *end, int32_t *v)
{
    int64_t x;
    size_t n = sl_varint_get(p, end, &x);

    if (n == 0 || n > 5 || x < INT32_MIN || x > INT32_MAX) {
        return 0;
    }
    *v = (int32_t)x;
    return n;
}

/* ---- builder ---- */

void sl_rb_builder_init(struct sl_rb_builder *b)
{
    memset(b, 0, sizeof(*b));
    sl_rb_builder_reset(b, 0);
}

void sl_rb_builder_free(struct sl_rb_builder *b)
{
    if (b == NULL) {
        return;
    }
    free(b->buf);
    memset(b, 0, sizeof(*b));
}

void sl_rb_builder_reset(struct sl_rb_builder *b, int64_t base_offset)
{
    b->len = SL_RB_HEADER_SIZE;
    b->base_offset = base_offset;
    b->base_timestamp = -1;
    b->max_timestamp = -1;
    b->count = 0;
}

/* The capacity for a buffer of cap bytes that must hold need: doubled from at least 4 KiB,
 * but not past clamp unless need itself is (then exactly need). 0 on overflow. Pure. */
static size_t grow_cap(size_t cap, size_t need, size_t clamp)
{
    if (cap < 4096) {
        cap = 4096;
    }
    while (cap < need && cap <= SIZE_MAX / 2) {
        cap *= 2;
    }
    if (cap > clamp) {
        cap = need > clamp ? need : clamp;
    }
    return cap < need ? 0 : cap;
}

static int builder_reserve(struct sl_rb_builder *b, size_t extra)
{
    if (b->len + extra <= b->cap && b->buf != NULL) {
        return 0;
    }
    size_t cap = grow_cap(b->cap, b->len + extra, SIZE_MAX);
    uint8_t *nb = cap != 0 ? realloc(b->buf, cap) : NULL;
    if (nb == NULL) {
        return -ENOMEM;
    }
    b->buf = nb;
    b->cap = cap;
    return 0;
}

static int len_ok(int32_t len, const void *ptr)
{
    return len == -1 || (len >= 0 && (len == 0 || ptr != NULL));
}

/* The builder's hot path: most of a record's varints (lengths of header names and
 * values, small deltas) fit one byte, and most of its byte strings are short. */
static inline size_t vsize(int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    return u < 0x80 ? 1 : varint_size(v);
}

static inline uint8_t *vput(uint8_t *p, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    if (u < 0x80) {
        *p = (uint8_t)u;
        return p + 1;
    }
    return p + sl_varint_put(p, v);
}

/* Copy n bytes to p, short copies inline (two overlapping loads and stores of a fixed
 * size), longer ones through memcpy; returns p + n. */
static inline uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    const uint8_t *s = src;

    if (n >= 16 && n <= 32) {
        uint8_t a[16], b[16];
        memcpy(a, s, 16);
        memcpy(b, s + n - 16, 16);
        memcpy(p, a, 16);
        memcpy(p + n - 16, b, 16);
    } else if (n >= 8 && n < 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(p, &a, 8);
        memcpy(p + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(p, &a, 4);
        memcpy(p + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++) {
            p[i] = s[i];
        }
    } else {
        memcpy(p, s, n);
    }
    return p + n;
}

int sl_rb_builder_add(struct sl_rb_builder *b, const struct sl_rec_in *rec)
{
    if (rec == NULL || !len_ok(rec->key_len, rec->key) || !len_ok(rec->value_len, rec->value) ||
        b->count == INT32_MAX || (rec->n_headers > 0 && rec->headers == NULL) ||
        rec->n_headers > INT32_MAX) {
        return -EINVAL;
    }
    int64_t base_ts = b->count == 0 ? rec->timestamp : b->base_timestamp;
    int64_t ts_delta;
    if (__builtin_sub_overflow(rec->timestamp, base_ts, &ts_delta)) {
        return -EINVAL;
    }
    int32_t off_delta = b->count;

    /* Exact body size (everything after the length varint). */
    uint64_t body = 1 + vsize(ts_delta) + vsize(off_delta) +
                    vsize(rec->key_len) + (rec->key_len > 0 ? (uint64_t)rec->key_len : 0) +
                    vsize(rec->value_len) +
                    (rec->value_len > 0 ? (uint64_t)rec->value_len : 0) +
                    vsize((int64_t)rec->n_headers);
    for (size_t i = 0; i < rec->n_headers; i++) {
        const struct sl_hdr *h = &rec->headers[i];
        if (h->name_len > INT32_MAX || (h->name_len > 0 && h->name == NULL) ||
            !len_ok(h->value_len, h->value)) {
            return -EINVAL;
        }
        body += vsize((int64_t)h->name_len) + h->name_len + vsize(h->value_len) +
                (h->value_len > 0 ? (uint64_t)h->value_len : 0);
    }
    if (body > INT32_MAX) {
        return -EINVAL;
    }
    size_t total = vsize((int64_t)body) + (size_t)body;
    if (b->len + total - SL_RB_LOG_OVERHEAD > INT32_MAX) {
        return -EINVAL; /* batchLength would overflow */
    }
    if (builder_reserve(b, total) != 0) {
        return -ENOMEM;
    }

    uint8_t *p = b->buf + b->len;
    p = vput(p, (int64_t)body);
    *p++ = 0; /* record attributes */
    p = vput(p, ts_delta);
    p = vput(p, off_delta);
    p = vput(p, rec->key_len);
    if (rec->key_len > 0) {
        p = put_bytes(p, rec->key, (size_t)rec->key_len);
    }
    p = vput(p, rec->value_len);
    if (rec->value_len > 0) {
        p = put_bytes(p, rec->value, (size_t)rec->value_len);
    }
    p = vput(p, (int64_t)rec->n_headers);
    for (size_t i = 0; i < rec->n_headers; i++) {
        const struct sl_hdr *h = &rec->headers[i];
        p = vput(p, (int64_t)h->name_len);
        p = put_bytes(p, h->name, h->name_len);
        p = vput(p, h->value_len);
        if (h->value_len > 0) {
            p = put_bytes(p, h->value, (size_t)h->value_len);
        }
    }
    b->len += total;
    if (b->count == 0) {
        b->base_timestamp = rec->timestamp;
        b->max_timestamp = rec->timestamp;
    } else if (rec->timestamp > b->max_timestamp) {
        b->max_timestamp = rec->timestamp;
    }
    b->count++;
    return 0;
}

const uint8_t *sl_rb_builder_finish(struct sl_rb_builder *b, size_t *len)
{
    if (builder_reserve(b, 0) != 0) {
        *len = 0;
        return NULL;
    }
    uint8_t *h = b->buf;
    int32_t last_delta = b->count > 0 ? b->count - 1 : 0;

    put_be64(h + RB_OFF_BASE_OFFSET, (uint64_t)b->base_offset);
    put_be32(h + RB_OFF_BATCH_LENGTH, (uint32_t)(b->len - SL_RB_LOG_OVERHEAD));
    put_be32(h + RB_OFF_LEADER_EPOCH, 0);
    h[RB_OFF_MAGIC] = RB_MAGIC;
    put_be16(h + RB_OFF_ATTRIBUTES, 0);
    put_be32(h + RB_OFF_LAST_OFFSET_DELTA, (uint32_t)last_delta);
    put_be64(h + RB_OFF_BASE_TIMESTAMP, (uint64_t)b->base_timestamp);
    put_be64(h + RB_OFF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);
    put_be64(h + RB_OFF_PRODUCER_ID, (uint64_t)-1);
    put_be16(h + RB_OFF_PRODUCER_EPOCH, (uint16_t)-1);
    put_be32(h + RB_OFF_BASE_SEQUENCE, (uint32_t)-1);
    put_be32(h + RB_OFF_RECORD_COUNT, (uint32_t)b->count);
    put_be32(h + RB_OFF_CRC, sl_crc32c(h + RB_OFF_ATTRIBUTES, b->len - RB_OFF_ATTRIBUTES));
    *len = b->len;
    return b->buf;
}

/* ---- decoder ---- */

static bool codec_supported(int codec)
{
    return codec == SL_RB_CODEC_NONE || codec == SL_RB_CODEC_GZIP ||
           codec == SL_RB_CODEC_LZ4 || codec == SL_RB_CODEC_ZSTD;
}

enum sl_rb_status sl_rb_parse_header(const uint8_t *buf, size_t len, struct sl_rb_batch *out)
{
    memset(out, 0, sizeof(*out));
    if (len < SL_RB_LOG_OVERHEAD) {
        return SL_RB_SHORT;
    }
    out->base_offset = (int64_t)get_be64(buf + RB_OFF_BASE_OFFSET);
    out->batch_length = (int32_t)get_be32(buf + RB_OFF_BATCH_LENGTH);
    if (out->batch_length < SL_RB_HEADER_SIZE - SL_RB_LOG_OVERHEAD || out->base_offset < 0) {
        return SL_RB_CORRUPT;
    }
    if (len > RB_OFF_MAGIC && buf[RB_OFF_MAGIC] != RB_MAGIC) {
        return SL_RB_CORRUPT;
    }
    if (len < SL_RB_HEADER_SIZE) {
        return SL_RB_SHORT;
    }
    out->total_len = SL_RB_LOG_OVERHEAD + (size_t)out->batch_length;
    out->partition_leader_epoch = (int32_t)get_be32(buf + RB_OFF_LEADER_EPOCH);
    out->magic = (int8_t)buf[RB_OFF_MAGIC];
    out->crc = get_be32(buf + RB_OFF_CRC);
    out->attributes = (int16_t)get_be16(buf + RB_OFF_ATTRIBUTES);
    out->last_offset_delta = (int32_t)get_be32(buf + RB_OFF_LAST_OFFSET_DELTA);
    out->base_timestamp = (int64_t)get_be64(buf + RB_OFF_BASE_TIMESTAMP);
    out->max_timestamp = (int64_t)get_be64(buf + RB_OFF_MAX_TIMESTAMP);
    out->producer_id = (int64_t)get_be64(buf + RB_OFF_PRODUCER_ID);
    out->producer_epoch = (int16_t)get_be16(buf + RB_OFF_PRODUCER_EPOCH);
    out->base_sequence = (int32_t)get_be32(buf + RB_OFF_BASE_SEQUENCE);
    out->record_count = (int32_t)get_be32(buf + RB_OFF_RECORD_COUNT);

    size_t records_len = out->total_len - SL_RB_HEADER_SIZE;
    int codec = out->attributes & RB_ATTR_COMPRESSION_MASK;
    int64_t last;
    /* Each record takes at least one byte, but only once decompressed: a compressed
     * section may be far shorter than its record count (sl_rb_decompress checks). */
    if (out->last_offset_delta < 0 || out->record_count < 0 ||
        (int64_t)out->record_count > (int64_t)out->last_offset_delta + 1 ||
        (codec == SL_RB_CODEC_NONE && (size_t)out->record_count > records_len) ||
        __builtin_add_overflow(out->base_offset, out->last_offset_delta, &last)) {
        return SL_RB_CORRUPT;
    }
    /* Records are only exposed when all of their bytes are present. */
    if (len >= out->total_len) {
        out->records = buf + SL_RB_HEADER_SIZE;
        out->records_len = records_len;
    }
    if ((out->attributes & RB_ATTR_CONTROL) != 0 || !codec_supported(codec)) {
        return SL_RB_UNSUPPORTED;
    }
    return SL_RB_OK;
}

enum sl_rb_status sl_rb_parse(const uint8_t *buf, size_t len, struct sl_rb_batch *out)
{
    enum sl_rb_status st = sl_rb_parse_header(buf, len, out);

    if (st == SL_RB_SHORT || st == SL_RB_CORRUPT) {
        return st;
    }
    if (len < out->total_len) {
        return SL_RB_SHORT;
    }
    if (sl_crc32c(buf + RB_OFF_ATTRIBUTES, out->total_len - RB_OFF_ATTRIBUTES) != out->crc) {
        return SL_RB_CORRUPT;
    }
    return st;
}

void sl_rb_iter_init(struct sl_rb_iter *it, const struct sl_rb_batch *batch)
{
    it->batch = batch;
    it->pos = 0;
    it->index = 0;
}

/* A length-prefixed byte field: -1 (null) or 0..remaining. */
static const uint8_t *bytes_get(const uint8_t *p, const uint8_t *end, const uint8_t **data,
                                int32_t *len)
{
    size_t n = varint32_get(p, end, len);

    if (n == 0) {
        return NULL;
    }
    p += n;
    if (*len == -1) {
        *data = NULL;
        return p;
    }
    if (*len < 0 || (size_t)(end - p) < (size_t)*len) {
        return NULL;
    }
    *data = p;
    return p + *len;
}

/* One header at p; returns the byte after it, or NULL when malformed. */
static const uint8_t *header_get(const uint8_t *p, const uint8_t *end, struct sl_hdr *h)
{
    const uint8_t *name;
    int32_t name_len;

    p = bytes_get(p, end, &name, &name_len);
    if (p == NULL || name_len < 0) {
        return NULL; /* header keys are non-null strings */
    }
    h->name = (const char *)name;
    h->name_len = (size_t)name_len;
    return bytes_get(p, end, &h->value, &h->value_len);
}

static int iter_fail(struct sl_rb_iter *it)
{
    /* Park the iterator at the end so later calls keep failing rather than resyncing. */
    it->index = -1;
    return SL_RB_CORRUPT;
}

int sl_rb_iter_next(struct sl_rb_iter *it, struct sl_record *rec)
{
    const struct sl_rb_batch *bt = it->batch;

    if (it->index < 0) {
        return SL_RB_CORRUPT;
    }
    if (it->index >= bt->record_count) {
        return it->pos == bt->records_len ? 0 : iter_fail(it);
    }
    if (bt->records == NULL) {
        return iter_fail(it);
    }
    const uint8_t *p = bt->records + it->pos;
    const uint8_t *end = bt->records + bt->records_len;
    int32_t rec_len;
    size_t n = varint32_get(p, end, &rec_len);
    if (n == 0 || rec_len < 1 || (size_t)(end - p - n) < (size_t)rec_len) {
        return iter_fail(it);
    }
    p += n;
    const uint8_t *rend = p + rec_len;
    p++; /* attributes: unused in v2 */

    int64_t ts_delta;
    int32_t off_delta;
    if ((n = sl_varint_get(p, rend, &ts_delta)) == 0) {
        return iter_fail(it);
    }
    p += n;
    if ((n = varint32_get(p, rend, &off_delta)) == 0) {
        return iter_fail(it);
    }
    p += n;
    /* Offsets stay within lastOffsetDelta, with room for the records before and after
     * this one (the iterator keeps no previous delta, so this is the stateless bound). */
    if (off_delta < it->index ||
        off_delta > bt->last_offset_delta - (bt->record_count - 1 - it->index)) {
        return iter_fail(it);
    }
    if ((bt->attributes & RB_ATTR_LOG_APPEND_TIME) != 0) {
        rec->timestamp = bt->max_timestamp;
    } else if (__builtin_add_overflow(bt->base_timestamp, ts_delta, &rec->timestamp)) {
        return iter_fail(it);
    }
    if ((p = bytes_get(p, rend, &rec->key, &rec->key_len)) == NULL ||
        (p = bytes_get(p, rend, &rec->value, &rec->value_len)) == NULL) {
        return iter_fail(it);
    }
    int32_t n_headers;
    if ((n = varint32_get(p, rend, &n_headers)) == 0 || n_headers < 0) {
        return iter_fail(it);
    }
    p += n;
    /* Each header takes at least 2 bytes: bounds the walk before it starts. */
    if ((size_t)n_headers > (size_t)(rend - p) / 2) {
        return iter_fail(it);
    }
    rec->headers_raw = p;
    for (int32_t i = 0; i < n_headers; i++) {
        struct sl_hdr h;
        if ((p = header_get(p, rend, &h)) == NULL) {
            return iter_fail(it);
        }
    }
    if (p != rend) {
        return iter_fail(it);
    }
    rec->headers_len = (size_t)(rend - rec->headers_raw);
    rec->n_headers = (uint32_t)n_headers;
    rec->offset = bt->base_offset + off_delta;
    it->pos = (size_t)(rend - bt->records);
    it->index++;
    return 1;
}

void sl_rb_hdr_iter_init(struct sl_rb_hdr_iter *it, const struct sl_record *rec)
{
    it->p = rec->headers_raw;
    it->end = rec->headers_raw + rec->headers_len;
    it->left = rec->n_headers;
}

int sl_rb_hdr_iter_next(struct sl_rb_hdr_iter *it, struct sl_hdr *h)
{
    if (it->left == 0) {
        return 0;
    }
    const uint8_t *p = header_get(it->p, it->end, h);
    if (p == NULL) {
        it->left = 0;
        return SL_RB_CORRUPT;
    }
    it->p = p;
    it->left--;
    return 1;
}

/* ---- compression ----
 *
 * One frame per batch, over the whole records section, in the formats Kafka and
 * librdkafka use: gzip (a gzip member, zlib's deflate with windowBits 15 + 16), LZ4's
 * frame format (independent blocks of at most 64 KiB, no block or content checksum, no
 * content size: what KafkaLZ4BlockOutputStream and librdkafka write), and a zstd frame.
 * The decoders take any standard frame, concatenated frames included, and grow their
 * output up to SL_RB_MAX_DECOMPRESSED.
 */

#define RB_GZIP_LEVEL Z_DEFAULT_COMPRESSION   /* 6, as Kafka's and librdkafka's default */
#define RB_ZSTD_LEVEL 3                       /* Kafka's and zstd's default */
#define RB_LZ4_LEVEL 0                        /* fast (librdkafka's default) */

void sl_rb_zbuf_free(struct sl_rb_zbuf *z)
{
    if (z == NULL) {
        return;
    }
    if (z->deflate != NULL) {
        deflateEnd(z->deflate);
        free(z->deflate);
    }
    if (z->inflate != NULL) {
        inflateEnd(z->inflate);
        free(z->inflate);
    }
    ZSTD_freeCCtx(z->zstd_c);
    ZSTD_freeDCtx(z->zstd_d);
    if (z->lz4_d != NULL) {
        LZ4F_freeDecompressionContext(z->lz4_d);
    }
    free(z->data);
    memset(z, 0, sizeof(*z));
}

#define ZBUF_CLAMP ((size_t)SL_RB_MAX_DECOMPRESSED + 1)

/* Make z->data hold at least need bytes (contents kept). 0 or -ENOMEM. */
static int zbuf_reserve(struct sl_rb_zbuf *z, size_t need)
{
    if (need <= z->cap && z->data != NULL) {
        return 0;
    }
    /* Doubling stops at the decoders' limit (they ask for one byte past it to see an
     * overflow): a 64 MiB batch or bomb costs 64 MiB, not 128. */
    size_t cap = grow_cap(z->cap, need, ZBUF_CLAMP);
    uint8_t *nb = cap != 0 ? realloc(z->data, cap) : NULL;
    if (nb == NULL) {
        return -ENOMEM;
    }
    z->data = nb;
    z->cap = cap;
    return 0;
}

/* Compress src into dst[0, cap); the compressed size, 0 if it does not fit, or -errno. */
static ssize_t gzip_compress(struct sl_rb_zbuf *z, const uint8_t *src, size_t len,
                             uint8_t *dst, size_t cap)
{
    z_stream *s = z->deflate;

    if (len > UINT_MAX || cap > UINT_MAX) {
        return -EINVAL;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            return -ENOMEM;
        }
        if (deflateInit2(s, RB_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(s);
            return -ENOMEM;
        }
        z->deflate = s;
    } else if (deflateReset(s) != Z_OK) {
        return -EIO;
    }
    s->next_in = (Bytef *)src;
    s->avail_in = (uInt)len;
    s->next_out = dst;
    s->avail_out = (uInt)cap;
    int rc = deflate(s, Z_FINISH);
    if (rc == Z_STREAM_END) {
        return (ssize_t)(cap - s->avail_out);
    }
    return rc == Z_OK || rc == Z_BUF_ERROR ? 0 : -EIO;
}

static ssize_t lz4_compress(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    LZ4F_preferences_t prefs;

    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
    prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
    prefs.compressionLevel = RB_LZ4_LEVEL;
    if (LZ4F_compressFrameBound(len, &prefs) > cap) {
        return 0;                       /* LZ4F wants room for the worst case */
    }
    size_t n = LZ4F_compressFrame(dst, cap, src, len, &prefs);
    return LZ4F_isError(n) ? -EIO : (ssize_t)n;
}

static ssize_t zstd_compress(struct sl_rb_zbuf *z, const uint8_t *src, size_t len,
                             uint8_t *dst, size_t cap)
{
    if (z->zstd_c == NULL) {
        z->zstd_c = ZSTD_createCCtx();
        if (z->zstd_c == NULL) {
            return -ENOMEM;
        }
        if (ZSTD_isError(ZSTD_CCtx_setParameter(z->zstd_c, ZSTD_c_compressionLevel,
                                                RB_ZSTD_LEVEL))) {
            return -EIO;
        }
    }
    size_t n = ZSTD_compress2(z->zstd_c, dst, cap, src, len);
    if (ZSTD_isError(n)) {
        return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? 0 : -EIO;
    }
    return (ssize_t)n;
}

static size_t compress_bound(enum sl_rb_codec codec, size_t len)
{
    switch (codec) {
    case SL_RB_CODEC_GZIP:
        return len + len / 1000 + 64;  /* deflate's stored blocks + gzip wrapper */
    case SL_RB_CODEC_LZ4: {
        LZ4F_preferences_t prefs;
        memset(&prefs, 0, sizeof(prefs));
        prefs.frameInfo.blockSizeID = LZ4F_max64KB;
        prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        return LZ4F_compressFrameBound(len, &prefs);
    }
    case SL_RB_CODEC_ZSTD:
        return ZSTD_compressBound(len);
    default:
        return 0;
    }
}

int sl_rb_compress(const uint8_t *batch, size_t len, enum sl_rb_codec codec,
                   struct sl_rb_zbuf *z)
{
    struct sl_rb_batch b;
    size_t rlen, bound;
    ssize_t n;

    if (codec != SL_RB_CODEC_GZIP && codec != SL_RB_CODEC_LZ4 && codec != SL_RB_CODEC_ZSTD) {
        return -EINVAL;
    }
    if (sl_rb_parse_header(batch, len, &b) != SL_RB_OK || b.total_len != len ||
        sl_rb_codec_of(&b) != SL_RB_CODEC_NONE) {
        return -EINVAL;
    }
    rlen = b.records_len;
    if (rlen == 0 || rlen > SL_RB_MAX_DECOMPRESSED) {
        return 0;    /* beyond what sl_rb_decompress takes back: stored uncompressed */
    }
    /* Room for the worst case, so one call always finishes; a result that is not
     * smaller than the records is not used. */
    bound = compress_bound(codec, rlen);
    if (bound == 0 || bound > (size_t)INT32_MAX || zbuf_reserve(z, SL_RB_HEADER_SIZE + bound) < 0) {
        return bound == 0 || bound > (size_t)INT32_MAX ? -EINVAL : -ENOMEM;
    }
    uint8_t *dst = z->data + SL_RB_HEADER_SIZE;
    switch (codec) {
    case SL_RB_CODEC_GZIP:
        n = gzip_compress(z, b.records, rlen, dst, bound);
        break;
    case SL_RB_CODEC_LZ4:
        n = lz4_compress(b.records, rlen, dst, bound);
        break;
    default:
        n = zstd_compress(z, b.records, rlen, dst, bound);
        break;
    }
    if (n < 0) {
        return (int)n;
    }
    if (n == 0 || (size_t)n >= rlen) {
        return 0;
    }
    uint8_t *h = z->data;
    memcpy(h, batch, SL_RB_HEADER_SIZE);
    put_be32(h + RB_OFF_BATCH_LENGTH,
             (uint32_t)(SL_RB_HEADER_SIZE - SL_RB_LOG_OVERHEAD + (size_t)n));
    put_be16(h + RB_OFF_ATTRIBUTES,
             (uint16_t)((b.attributes & ~RB_ATTR_COMPRESSION_MASK) | (int)codec));
    z->len = SL_RB_HEADER_SIZE + (size_t)n;
    put_be32(h + RB_OFF_CRC, sl_crc32c(h + RB_OFF_ATTRIBUTES, z->len - RB_OFF_ATTRIBUTES));
    return 1;
}

/* The next output size to try: double, up to one byte past the cap (so output beyond
 * SL_RB_MAX_DECOMPRESSED is seen as such); 0 when already there. */
static size_t next_out_cap(size_t cur)
{
    const size_t limit = (size_t)SL_RB_MAX_DECOMPRESSED + 1;

    if (cur >= limit) {
        return 0;
    }
    return cur > limit / 2 ? limit : cur * 2;
}

/* The output buffer is full: grow it to next_out_cap. SL_RB_CORRUPT once it is past the
 * cap (the input inflates beyond SL_RB_MAX_DECOMPRESSED), SL_RB_NOMEM, or SL_RB_OK. */
static enum sl_rb_status out_grow(struct sl_rb_zbuf *z)
{
    size_t ncap = next_out_cap(z->cap);

    if (ncap == 0) {
        return SL_RB_CORRUPT;
    }
    return zbuf_reserve(z, ncap) < 0 ? SL_RB_NOMEM : SL_RB_OK;
}

/* The first output size to try for in_len compressed bytes. */
static size_t first_out_cap(size_t in_len, size_t hint)
{
    size_t cap = hint > 0 ? hint + 1 : in_len * 4;

    if (cap < 4096) {
        cap = 4096;
    }
    return cap > (size_t)SL_RB_MAX_DECOMPRESSED + 1 ? (size_t)SL_RB_MAX_DECOMPRESSED + 1 : cap;
}

static enum sl_rb_status gzip_decompress(struct sl_rb_zbuf *z, const uint8_t *src, size_t len)
{
    z_stream *s = z->inflate;
    size_t cap = first_out_cap(len, 0);

    if (len > UINT_MAX) {
        return SL_RB_CORRUPT;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            return SL_RB_NOMEM;
        }
        if (inflateInit2(s, 15 + 16) != Z_OK) {
            free(s);
            return SL_RB_NOMEM;
        }
        z->inflate = s;
    } else if (inflateReset(s) != Z_OK) {
        return SL_RB_CORRUPT;
    }
    if (zbuf_reserve(z, cap) < 0) {
        return SL_RB_NOMEM;
    }
    s->next_in = (Bytef *)src;
    s->avail_in = (uInt)len;
    z->len = 0;
    for (;;) {
        size_t room = z->cap - z->len;
        if (room > UINT_MAX) {
            room = UINT_MAX;
        }
        s->next_out = z->data + z->len;
        s->avail_out = (uInt)room;
        int rc = inflate(s, Z_NO_FLUSH);
        z->len += room - s->avail_out;
        if (z->len > SL_RB_MAX_DECOMPRESSED) {
            return SL_RB_CORRUPT;
        }
        if (rc == Z_STREAM_END) {
            if (s->avail_in == 0) {
                return SL_RB_OK;
            }
            if (inflateReset(s) != Z_OK) {   /* another gzip member follows */
                return SL_RB_CORRUPT;
            }
            continue;
        }
        if (rc == Z_MEM_ERROR) {
            return SL_RB_NOMEM;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return SL_RB_CORRUPT;
        }
        if (s->avail_out != 0) {
            return SL_RB_CORRUPT;            /* input used up before the member's end */
        }
        enum sl_rb_status st = out_grow(z);
        if (st != SL_RB_OK) {
            return st;
        }
    }
}

static enum sl_rb_status lz4_decompress(struct sl_rb_zbuf *z, const uint8_t *src, size_t len)
{
    size_t in = 0;
    size_t r = 1;

    if (z->lz4_d == NULL) {
        LZ4F_dctx *d;
        if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION))) {
            return SL_RB_NOMEM;
        }
        z->lz4_d = d;
    } else {
        LZ4F_resetDecompressionContext(z->lz4_d);
    }
    if (zbuf_reserve(z, first_out_cap(len, 0)) < 0) {
        return SL_RB_NOMEM;
    }
    z->len = 0;
    while (in < len) {
        size_t out_n = z->cap - z->len;
        size_t in_n = len - in;
        r = LZ4F_decompress(z->lz4_d, z->data + z->len, &out_n, src + in, &in_n, NULL);
        if (LZ4F_isError(r)) {
            LZ4F_resetDecompressionContext(z->lz4_d);
            return SL_RB_CORRUPT;
        }
        z->len += out_n;
        in += in_n;
        if (z->len > SL_RB_MAX_DECOMPRESSED) {
            return SL_RB_CORRUPT;
        }
        if (z->len == z->cap) {
            enum sl_rb_status st = out_grow(z);
            if (st != SL_RB_OK) {
                return st;
            }
        } else if (in_n == 0 && out_n == 0) {
            return SL_RB_CORRUPT;            /* no progress */
        }
    }
    /* A frame may still hold output after its last input byte: drain it. */
    while (r != 0) {
        size_t out_n = z->cap - z->len;
        size_t in_n = 0;
        r = LZ4F_decompress(z->lz4_d, z->data + z->len, &out_n, src + len, &in_n, NULL);
        if (LZ4F_isError(r) || out_n == 0) {
            LZ4F_resetDecompressionContext(z->lz4_d);
            return SL_RB_CORRUPT;            /* truncated: the frame wants more input */
        }
        z->len += out_n;
        if (z->len > SL_RB_MAX_DECOMPRESSED) {
            return SL_RB_CORRUPT;
        }
        if (z->len == z->cap) {
            enum sl_rb_status st = out_grow(z);
            if (st != SL_RB_OK) {
                return st;
            }
        }
    }
    return SL_RB_OK;
}

static enum sl_rb_status zstd_decompress(struct sl_rb_zbuf *z, const uint8_t *src, size_t len)
{
    unsigned long long hint = ZSTD_getFrameContentSize(src, len);
    size_t r = 1;

    if (z->zstd_d == NULL) {
        z->zstd_d = ZSTD_createDCtx();
        if (z->zstd_d == NULL) {
            return SL_RB_NOMEM;
        }
    } else {
        ZSTD_DCtx_reset(z->zstd_d, ZSTD_reset_session_only);
    }
    if (hint == ZSTD_CONTENTSIZE_UNKNOWN || hint == ZSTD_CONTENTSIZE_ERROR ||
        hint > SL_RB_MAX_DECOMPRESSED) {
        hint = 0;                            /* a lie is caught by the cap below */
    }
    if (zbuf_reserve(z, first_out_cap(len, (size_t)hint)) < 0) {
        return SL_RB_NOMEM;
    }
    ZSTD_inBuffer inb = {src, len, 0};
    z->len = 0;
    for (;;) {
        ZSTD_outBuffer outb = {z->data, z->cap, z->len};
        r = ZSTD_decompressStream(z->zstd_d, &outb, &inb);
        z->len = outb.pos;
        if (ZSTD_isError(r)) {
            ZSTD_DCtx_reset(z->zstd_d, ZSTD_reset_session_only);
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? SL_RB_NOMEM
                                                                        : SL_RB_CORRUPT;
        }
        if (z->len > SL_RB_MAX_DECOMPRESSED) {
            return SL_RB_CORRUPT;
        }
        if (r == 0 && inb.pos == inb.size) {
            return SL_RB_OK;                 /* the last frame ended with the input */
        }
        if (outb.pos < outb.size) {
            if (inb.pos == inb.size) {
                ZSTD_DCtx_reset(z->zstd_d, ZSTD_reset_session_only);
                return SL_RB_CORRUPT;        /* truncated frame */
            }
            continue;                        /* the next frame, or more of this one */
        }
        enum sl_rb_status st = out_grow(z);
        if (st != SL_RB_OK) {
            return st;
        }
    }
}

enum sl_rb_status sl_rb_decompress(const struct sl_rb_batch *in, struct sl_rb_zbuf *z,
                                   struct sl_rb_batch *out)
{
    enum sl_rb_codec codec = sl_rb_codec_of(in);
    enum sl_rb_status st;

    *out = *in;
    if (codec == SL_RB_CODEC_NONE) {
        return SL_RB_OK;
    }
    if (!codec_supported(codec)) {
        return SL_RB_UNSUPPORTED;
    }
    if (in->records == NULL || in->records_len == 0) {
        return SL_RB_CORRUPT;
    }
    switch (codec) {
    case SL_RB_CODEC_GZIP:
        st = gzip_decompress(z, in->records, in->records_len);
        break;
    case SL_RB_CODEC_LZ4:
        st = lz4_decompress(z, in->records, in->records_len);
        break;
    default:
        st = zstd_decompress(z, in->records, in->records_len);
        break;
    }
    if (st != SL_RB_OK) {
        z->len = 0;
        return st;
    }
    if ((size_t)in->record_count > z->len) {
        return SL_RB_CORRUPT;                /* each record takes at least one byte */
    }
    out->records = z->data;
    out->records_len = z->len;
    return SL_RB_OK;
}

const char *sl_rb_codec_name(enum sl_rb_codec codec)
{
    switch (codec) {
    case SL_RB_CODEC_NONE:
        return "none";
    case SL_RB_CODEC_GZIP:
        return "gzip";
    case SL_RB_CODEC_SNAPPY:
        return "snappy";
    case SL_RB_CODEC_LZ4:
        return "lz4";
    case SL_RB_CODEC_ZSTD:
        return "zstd";
    }
    return "unknown";
}

/*
 * Kafka RecordBatch v2 codec (magic 2, CRC-32C, varint records, record headers).
 * Pure: no I/O, no globals; any thread. The builder produces uncompressed batches;
 * sl_rb_compress turns one into a gzip, lz4 or zstd batch and sl_rb_decompress gives a
 * compressed one's records back. Snappy and control batches are SL_RB_UNSUPPORTED.
 *
 * Layout (big-endian): baseOffset i64, batchLength i32, partitionLeaderEpoch i32,
 * magic i8 (=2), crc u32 (CRC-32C of attributes..end), attributes i16,
 * lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64, producerId i64,
 * producerEpoch i16, baseSequence i32, records count i32, then records:
 * length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
 * keyLength varint, key, valueLength varint, value, headers count varint,
 * each header: keyLength varint, key, valueLength varint, value.
 */
#ifndef SL_RECORDBATCH_H
#define SL_RECORDBATCH_H

#include <stddef.h>
#include <stdint.h>

#define SL_RB_HEADER_SIZE 61         /* bytes before the first record */
#define SL_RB_LOG_OVERHEAD 12        /* baseOffset + batchLength */

/* A record header as input or as a decoded view. value NULL with value_len -1: null. */
struct sl_hdr {
    const char *name;
    size_t name_len;
    const uint8_t *value;
    int32_t value_len;
};

/* A record to encode. key_len / value_len -1 means null. */
struct sl_rec_in {
    int64_t timestamp;               /* ms since the epoch */
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value;
    int32_t value_len;
    const struct sl_hdr *headers;
    size_t n_headers;
};

/* A decoded record: a view into the batch's bytes (valid while those bytes are). */
struct sl_record {
    int64_t offset;
    int64_t timestamp;
    const uint8_t *key;
    int32_t key_len;                 /* -1: null */
    const uint8_t *value;
    int32_t value_len;               /* -1: null */
    uint32_t n_headers;
    const uint8_t *headers_raw;      /* iterate with sl_rb_header_next */
    size_t headers_len;
};

/* Encoder: a growable buffer, reusable after sl_rb_builder_reset. */
struct sl_rb_builder {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int64_t base_offset;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int32_t count;
};

void sl_rb_builder_init(struct sl_rb_builder *b);
void sl_rb_builder_free(struct sl_rb_builder *b);
/* Start a new batch whose first record gets base_offset. */
void sl_rb_builder_reset(struct sl_rb_builder *b, int64_t base_offset);
/* Append one record (offset = base_offset + count). 0, or -ENOMEM / -EINVAL. */
int sl_rb_builder_add(struct sl_rb_builder *b, const struct sl_rec_in *rec);
/* Finish: fills batchLength, lastOffsetDelta, timestamps, count and CRC. Returns the
 * batch bytes (owned by the builder) and its length in *len. */
const uint8_t *sl_rb_builder_finish(struct sl_rb_builder *b, size_t *len);

enum sl_rb_status {
    SL_RB_OK = 0,
    SL_RB_SHORT = 1,           /* not enough bytes for the whole batch (torn tail) */
    SL_RB_CORRUPT = -1,        /* bad length, magic, CRC or record framing */
    SL_RB_UNSUPPORTED = -2,    /* snappy, an unknown codec, or a control batch */
    SL_RB_NOMEM = -3,          /* sl_rb_decompress: out of memory */
};

/* Compression codecs: the attributes' low 3 bits, Kafka's numbering. */
enum sl_rb_codec {
    SL_RB_CODEC_NONE = 0,
    SL_RB_CODEC_GZIP = 1,
    SL_RB_CODEC_SNAPPY = 2,          /* recognised, never produced nor decoded */
    SL_RB_CODEC_LZ4 = 3,
    SL_RB_CODEC_ZSTD = 4,
};

/* Largest records section sl_rb_decompress produces (64 MiB): a batch that inflates
 * beyond it is refused as corrupt, which bounds what a decompression bomb can cost.
 * Kafka's default message.max.bytes is 1 MiB, so real batches are far below it. The
 * fuzz build caps at 1 MiB so that bombs cost the fuzzer little time. */
#ifdef SL_FUZZING
#define SL_RB_MAX_DECOMPRESSED (1u << 20)
#else
#define SL_RB_MAX_DECOMPRESSED (64u << 20)
#endif

struct sl_rb_batch {
    int64_t base_offset;
    int32_t batch_length;            /* bytes after the batchLength field */
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
    const uint8_t *records;          /* first record */
    size_t records_len;
    size_t total_len;                /* SL_RB_LOG_OVERHEAD + batch_length */
};

/* Parse the header of the batch at buf and check its CRC; does not walk records.
 * Batches compressed with gzip, lz4 or zstd parse as SL_RB_OK: their records section is
 * the compressed frame, so decompress (sl_rb_decompress) before sl_rb_iter. */
enum sl_rb_status sl_rb_parse(const uint8_t *buf, size_t len, struct sl_rb_batch *out);
/* Parse the header only, no CRC check (for scanning a file by batch length). */
enum sl_rb_status sl_rb_parse_header(const uint8_t *buf, size_t len, struct sl_rb_batch *out);

struct sl_rb_iter {
    const struct sl_rb_batch *batch;
    size_t pos;
    int32_t index;
};
void sl_rb_iter_init(struct sl_rb_iter *it, const struct sl_rb_batch *batch);
/* 1: *rec filled; 0: no more records; SL_RB_CORRUPT: bad framing. */
int sl_rb_iter_next(struct sl_rb_iter *it, struct sl_record *rec);

struct sl_rb_hdr_iter {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t left;
};
void sl_rb_hdr_iter_init(struct sl_rb_hdr_iter *it, const struct sl_record *rec);
/* 1: *h filled (name not NUL-terminated); 0: done; SL_RB_CORRUPT. */
int sl_rb_hdr_iter_next(struct sl_rb_hdr_iter *it, struct sl_hdr *h);

/*
 * Scratch for sl_rb_compress / sl_rb_decompress: an output buffer that only grows and
 * the codec contexts (zlib streams, zstd and lz4 contexts), created on first use and
 * reused, so steady-state calls allocate nothing. Owned by one caller and used by one
 * thread at a time; start it zeroed ({0}) and release it with sl_rb_zbuf_free.
 * data[0, len) is the last call's output.
 */
struct sl_rb_zbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    void *deflate;                   /* z_stream, gzip wrapper */
    void *inflate;                   /* z_stream, gzip wrapper */
    void *zstd_c;                    /* ZSTD_CCtx */
    void *zstd_d;                    /* ZSTD_DCtx */
    void *lz4_d;                     /* LZ4F_dctx */
};

/* Free z's buffer and contexts and zero it; NULL is a no-op. */
void sl_rb_zbuf_free(struct sl_rb_zbuf *z);

/*
 * Compress a finished uncompressed batch (batch[0, len), borrowed; what
 * sl_rb_builder_finish returns) with codec (gzip, lz4 or zstd) into z->data[0, z->len):
 * the same header (offsets, timestamps, count, producer fields) with the codec in the
 * attributes, the records section replaced by one standard frame of the codec (gzip
 * member; LZ4 frame with independent 64 KiB blocks and no content checksum, as Kafka
 * and librdkafka write it; zstd frame), batchLength and CRC-32C recomputed.
 * Returns 1 when z holds the compressed batch; 0 when compression would not make the
 * batch smaller (write batch itself, z unspecified); -EINVAL when batch is not one
 * whole uncompressed batch or codec is none / snappy / unknown; -ENOMEM; -EIO if the
 * codec library fails. Any thread (z's).
 */
int sl_rb_compress(const uint8_t *batch, size_t len, enum sl_rb_codec codec,
                   struct sl_rb_zbuf *z);

/*
 * Decompress the records of batch in (as sl_rb_parse left it: every byte present) into
 * z->data and fill *out with a copy of *in whose records / records_len point there, so
 * sl_rb_iter walks it unchanged (valid until z's next use). An uncompressed batch is
 * copied as it is, z untouched. Concatenated frames are accepted. SL_RB_OK;
 * SL_RB_CORRUPT for truncated or malformed data, trailing garbage, or output beyond
 * SL_RB_MAX_DECOMPRESSED; SL_RB_UNSUPPORTED for snappy or an unknown codec;
 * SL_RB_NOMEM. Never reads outside in's records. Any thread (z's).
 */
enum sl_rb_status sl_rb_decompress(const struct sl_rb_batch *in, struct sl_rb_zbuf *z,
                                   struct sl_rb_batch *out);

/* The codec of a parsed batch (attributes & 7). */
static inline enum sl_rb_codec sl_rb_codec_of(const struct sl_rb_batch *b)
{
    return (enum sl_rb_codec)(b->attributes & 0x07);
}

/* Kafka's name of a codec (compression.type): "none", "gzip", "snappy", "lz4", "zstd";
 * "unknown" for anything else. Pure. */
const char *sl_rb_codec_name(enum sl_rb_codec codec);

/* CRC-32C (Castagnoli) as Kafka computes it: crc32c("123456789") == 0xE3069283. */
uint32_t sl_crc32c(const void *data, size_t len);

/* Kafka's murmur2 (the Java client's Utils.murmur2), and the default partitioner's
 * partition: (murmur2(key) & 0x7fffffff) % partitions. */
int32_t sl_murmur2(const void *key, size_t len);
int32_t sl_murmur2_partition(const void *key, size_t len, int32_t partitions);

/* Zig-zag varint helpers (Kafka's varint / varlong). Return bytes used, 0 on error. */
size_t sl_varint_put(uint8_t *out, int64_t v);
size_t sl_varint_get(const uint8_t *p, const uint8_t *end, int64_t *v);

#endif

/*
 * libFuzzer harness for the RecordBatch v2 codec.
 *
 * 1. The input is parsed as a sequence of batches (as a segment file would be): every
 *    record and every header of each batch is walked (also when only its CRC is wrong);
 *    a compressed batch is decompressed first (the seeds hold one batch per codec).
 * 2. Round trip: records are derived from the input bytes, encoded with the builder,
 *    parsed back and compared field by field; then compressed with a codec the input
 *    picks, parsed and decompressed back to the same records section.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log/recordbatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Scratch reused across inputs, as the log reuses its own. */
static struct sl_rb_zbuf zin, zout;

static void walk_batches(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        struct sl_rb_batch b;
        enum sl_rb_status st = sl_rb_parse(data + pos, size - pos, &b);
        enum sl_rb_status hs = sl_rb_parse_header(data + pos, size - pos, &b);
        if (st == SL_RB_OK && hs != SL_RB_OK) {
            abort(); /* header-only parsing must accept what full parsing accepts */
        }
        if (st == SL_RB_OK && (b.total_len < SL_RB_HEADER_SIZE || b.total_len > size - pos)) {
            abort();
        }
        /* Walk the records of any batch whose header parses and whose bytes are all here,
         * CRC or not: the fuzzer cannot forge CRCs, and the walker must be safe anyway. */
        if (hs != SL_RB_OK || b.records == NULL) {
            return;
        }
        if (sl_rb_codec_of(&b) != SL_RB_CODEC_NONE) {
            struct sl_rb_batch d;
            enum sl_rb_status ds = sl_rb_decompress(&b, &zin, &d);
            if (ds == SL_RB_UNSUPPORTED || (ds == SL_RB_OK && d.records != zin.data) ||
                (ds == SL_RB_OK && d.records_len > SL_RB_MAX_DECOMPRESSED)) {
                abort(); /* parse_header accepted the codec; output stays in zin */
            }
            if (ds != SL_RB_OK) {
                pos += b.total_len;
                continue;
            }
            b = d;
        }
        {
            struct sl_rb_iter it;
            struct sl_record r;
            int rc;
            int32_t n = 0;
            sl_rb_iter_init(&it, &b);
            while ((rc = sl_rb_iter_next(&it, &r)) == 1) {
                const uint8_t *lo = b.records;
                const uint8_t *hi = b.records + b.records_len;
                if ((r.key_len > 0 && (r.key < lo || r.key + r.key_len > hi)) ||
                    (r.value_len > 0 && (r.value < lo || r.value + r.value_len > hi)) ||
                    r.offset < b.base_offset || r.offset > b.base_offset + b.last_offset_delta) {
                    abort();
                }
                struct sl_rb_hdr_iter hi_it;
                struct sl_hdr h;
                uint32_t nh = 0;
                sl_rb_hdr_iter_init(&hi_it, &r);
                while ((rc = sl_rb_hdr_iter_next(&hi_it, &h)) == 1) {
                    nh++;
                }
                /* The record walk validated the headers already. */
                if (rc != 0 || nh != r.n_headers) {
                    abort();
                }
                n++;
            }
            if (rc == 0 && n != b.record_count) {
                abort();
            }
        }
        pos += b.total_len;
    }
}

/* A little reader over the fuzz input for deriving records. */
struct src {
    const uint8_t *p;
    size_t left;
};

static uint32_t take(struct src *s, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v <<= 8;
        if (s->left > 0) {
            v |= *s->p++;
            s->left--;
        }
    }
    return v;
}

/* A length in -1..limit from one byte; the bytes come from the input itself. */
static int32_t take_len(struct src *s, int32_t limit)
{
    uint32_t v = take(s, 1);
    if (v == 0xff) {
        return -1;
    }
    int32_t len = (int32_t)(v % (uint32_t)(limit + 1));
    return len > (int32_t)s->left ? (int32_t)s->left : len;
}

/* Compress the built batch with the codec pick chooses; it must parse, keep its header
 * fields and decompress to the same records section. */
static void compress_roundtrip(const uint8_t *buf, size_t len, const struct sl_rb_batch *pb,
                               uint8_t pick)
{
    static const enum sl_rb_codec codecs[] = {SL_RB_CODEC_GZIP, SL_RB_CODEC_LZ4,
                                              SL_RB_CODEC_ZSTD};
    enum sl_rb_codec codec = codecs[pick % 3];
    int rc = sl_rb_compress(buf, len, codec, &zout);
    struct sl_rb_batch cb, d;

    if (rc == 0 || rc == -ENOMEM) {
        return;
    }
    if (rc != 1 || zout.len >= len || sl_rb_parse(zout.data, zout.len, &cb) != SL_RB_OK ||
        sl_rb_codec_of(&cb) != codec || cb.base_offset != pb->base_offset ||
        cb.record_count != pb->record_count || cb.max_timestamp != pb->max_timestamp ||
        cb.base_timestamp != pb->base_timestamp ||
        cb.last_offset_delta != pb->last_offset_delta) {
        abort();
    }
    if (sl_rb_decompress(&cb, &zin, &d) != SL_RB_OK || d.records_len != pb->records_len ||
        memcmp(d.records, pb->records, d.records_len) != 0) {
        abort();
    }
}

#define MAX_RECS 16
#define MAX_HDRS 4

static void roundtrip(const uint8_t *data, size_t size)
{
    struct src s = {data, size};
    struct sl_rec_in in[MAX_RECS];
    struct sl_hdr hdrs[MAX_RECS][MAX_HDRS];
    int n = (int)(take(&s, 1) % (MAX_RECS + 1));
    int64_t base = (int64_t)(take(&s, 4) & 0x7fffffff);

    for (int i = 0; i < n; i++) {
        struct sl_rec_in *r = &in[i];
        r->timestamp = (int64_t)(int32_t)take(&s, 4) * 1000;
        r->key_len = take_len(&s, 64);
        r->key = r->key_len >= 0 ? s.p : NULL;
        if (r->key_len > 0) {
            s.p += r->key_len;
            s.left -= (size_t)r->key_len;
        }
        r->value_len = take_len(&s, 200);
        r->value = r->value_len >= 0 ? s.p : NULL;
        if (r->value_len > 0) {
            s.p += r->value_len;
            s.left -= (size_t)r->value_len;
        }
        r->n_headers = take(&s, 1) % (MAX_HDRS + 1);
        r->headers = hdrs[i];
        for (size_t k = 0; k < r->n_headers; k++) {
            int32_t nl = take_len(&s, 16);
            hdrs[i][k].name_len = nl < 0 ? 0 : (size_t)nl;
            hdrs[i][k].name = (const char *)s.p;
            s.p += hdrs[i][k].name_len;
            s.left -= hdrs[i][k].name_len;
            hdrs[i][k].value_len = take_len(&s, 32);
            hdrs[i][k].value = hdrs[i][k].value_len >= 0 ? s.p : NULL;
            if (hdrs[i][k].value_len > 0) {
                s.p += hdrs[i][k].value_len;
                s.left -= (size_t)hdrs[i][k].value_len;
            }
        }
    }

    struct sl_rb_builder b;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, base);
    for (int i = 0; i < n; i++) {
        if (sl_rb_builder_add(&b, &in[i]) != 0) {
            abort();
        }
    }
    size_t len;
    const uint8_t *buf = sl_rb_builder_finish(&b, &len);
    struct sl_rb_batch pb;
    if (buf == NULL || sl_rb_parse(buf, len, &pb) != SL_RB_OK || pb.total_len != len ||
        pb.record_count != n || pb.base_offset != base) {
        abort();
    }
    struct sl_rb_iter it;
    struct sl_record r;
    sl_rb_iter_init(&it, &pb);
    for (int i = 0; i < n; i++) {
        if (sl_rb_iter_next(&it, &r) != 1 || r.offset != base + i ||
            r.timestamp != in[i].timestamp || r.key_len != in[i].key_len ||
            r.value_len != in[i].value_len || r.n_headers != in[i].n_headers ||
            (r.key_len > 0 && memcmp(r.key, in[i].key, (size_t)r.key_len) != 0) ||
            (r.value_len > 0 && memcmp(r.value, in[i].value, (size_t)r.value_len) != 0)) {
            abort();
        }
        struct sl_rb_hdr_iter hi;
        struct sl_hdr h;
        sl_rb_hdr_iter_init(&hi, &r);
        for (size_t k = 0; k < in[i].n_headers; k++) {
            const struct sl_hdr *e = &in[i].headers[k];
            if (sl_rb_hdr_iter_next(&hi, &h) != 1 || h.name_len != e->name_len ||
                memcmp(h.name, e->name, h.name_len) != 0 || h.value_len != e->value_len ||
                (h.value_len > 0 && memcmp(h.value, e->value, (size_t)h.value_len) != 0)) {
                abort();
            }
        }
        if (sl_rb_hdr_iter_next(&hi, &h) != 0) {
            abort();
        }
    }
    if (sl_rb_iter_next(&it, &r) != 0) {
        abort();
    }
    compress_roundtrip(buf, len, &pb, size > 0 ? data[size - 1] : 0);
    sl_rb_builder_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    walk_batches(data, size);
    roundtrip(data, size);
    return 0;
}

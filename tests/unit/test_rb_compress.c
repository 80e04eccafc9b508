/*
 * Unit tests for batch compression (sl_rb_compress / sl_rb_decompress in
 * gateway/log/recordbatch.c): round trips per codec, the frames checked with the plain
 * library decoders, frames made by the libraries decoded by ours, and truncated,
 * garbage and oversized (bomb) input refused as corrupt.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#include "gateway/log/recordbatch.h"

#define N_RECS 200

static const enum sl_rb_codec codecs[] = {SL_RB_CODEC_GZIP, SL_RB_CODEC_LZ4, SL_RB_CODEC_ZSTD};

/* ---- helpers ---- */

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The records to encode: keys, values (null, empty, compressible text) and headers. */
struct sample {
    struct sl_rec_in recs[N_RECS];
    struct sl_hdr hdrs[N_RECS][2];
    char keys[N_RECS][16];
    char vals[N_RECS][96];
};

static struct sample *sample_make(void)
{
    struct sample *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    for (int i = 0; i < N_RECS; i++) {
        struct sl_rec_in *r = &s->recs[i];
        snprintf(s->keys[i], sizeof(s->keys[i]), "device-%d", i % 7);
        snprintf(s->vals[i], sizeof(s->vals[i]),
                 "{\"temperature\": %d.5, \"unit\": \"celsius\", \"seq\": %d}", 20 + i % 5, i);
        r->timestamp = 1700000000000LL + i * 3 - (i % 4 == 3 ? 10 : 0);
        r->key = (const uint8_t *)s->keys[i];
        r->key_len = i % 10 == 9 ? -1 : (int32_t)strlen(s->keys[i]);
        if (i % 10 == 9) {
            r->key = NULL;
        }
        r->value = (const uint8_t *)s->vals[i];
        r->value_len = (int32_t)strlen(s->vals[i]);
        if (i % 17 == 5) {
            r->value = NULL;
            r->value_len = -1;
        } else if (i % 17 == 6) {
            r->value_len = 0;
        }
        s->hdrs[i][0] = (struct sl_hdr){"ce-type", 7, (const uint8_t *)"reading", 7};
        s->hdrs[i][1] = (struct sl_hdr){"trace", 5, NULL, -1};
        r->headers = s->hdrs[i];
        r->n_headers = (size_t)(i % 3);
    }
    return s;
}

/* A malloc'd uncompressed batch of the sample's first n records at base. */
static uint8_t *build(const struct sample *s, size_t n, int64_t base, size_t *len)
{
    struct sl_rb_builder b;
    sl_rb_builder_init(&b);
    sl_rb_builder_reset(&b, base);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sl_rb_builder_add(&b, &s->recs[i]), 0);
    }
    const uint8_t *p = sl_rb_builder_finish(&b, len);
    uint8_t *copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, p, *len);
    sl_rb_builder_free(&b);
    return copy;
}

/* A malloc'd batch with orig's header, codec and the given records section (any bytes),
 * its batchLength and CRC right. */
static uint8_t *wrap(const uint8_t *orig, enum sl_rb_codec codec, const uint8_t *recs,
                     size_t rlen, size_t *len)
{
    *len = SL_RB_HEADER_SIZE + rlen;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    memcpy(b, orig, SL_RB_HEADER_SIZE);
    if (rlen > 0) {
        memcpy(b + SL_RB_HEADER_SIZE, recs, rlen);
    }
    put32(b + 8, (uint32_t)(*len - SL_RB_LOG_OVERHEAD));
    b[21] = 0;
    b[22] = (uint8_t)codec;
    put32(b + 17, sl_crc32c(b + 21, *len - 21));
    return b;
}

/* Parse batch, decompress it through z and compare every record with s's first n. */
static void check_records(const uint8_t *batch, size_t len, struct sl_rb_zbuf *z,
                          const struct sample *s, size_t n, int64_t base)
{
    struct sl_rb_batch b, d;
    struct sl_rb_iter it;
    struct sl_record r;

    assert_int_equal(sl_rb_parse(batch, len, &b), SL_RB_OK);
    assert_int_equal(sl_rb_decompress(&b, z, &d), SL_RB_OK);
    assert_int_equal(d.record_count, (int32_t)n);
    sl_rb_iter_init(&it, &d);
    for (size_t i = 0; i < n; i++) {
        const struct sl_rec_in *in = &s->recs[i];
        assert_int_equal(sl_rb_iter_next(&it, &r), 1);
        assert_true(r.offset == base + (int64_t)i);
        assert_true(r.timestamp == in->timestamp);
        assert_int_equal(r.key_len, in->key_len);
        if (in->key_len > 0) {
            assert_memory_equal(r.key, in->key, (size_t)in->key_len);
        }
        assert_int_equal(r.value_len, in->value_len);
        if (in->value_len > 0) {
            assert_memory_equal(r.value, in->value, (size_t)in->value_len);
        } else if (in->value_len < 0) {
            assert_null(r.value);
        }
        assert_int_equal(r.n_headers, in->n_headers);
        struct sl_rb_hdr_iter hi;
        struct sl_hdr h;
        sl_rb_hdr_iter_init(&hi, &r);
        for (size_t k = 0; k < in->n_headers; k++) {
            assert_int_equal(sl_rb_hdr_iter_next(&hi, &h), 1);
            assert_int_equal(h.name_len, in->headers[k].name_len);
            assert_memory_equal(h.name, in->headers[k].name, h.name_len);
            assert_int_equal(h.value_len, in->headers[k].value_len);
            if (h.value_len > 0) {
                assert_memory_equal(h.value, in->headers[k].value, (size_t)h.value_len);
            }
        }
        assert_int_equal(sl_rb_hdr_iter_next(&hi, &h), 0);
    }
    assert_int_equal(sl_rb_iter_next(&it, &r), 0);
}

/* ---- plain library decoders (the reference for "standard frames") ---- */

static uint8_t *lib_gunzip(const uint8_t *src, size_t len, size_t cap, size_t *out_len)
{
    z_stream s;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    memset(&s, 0, sizeof(s));
    assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
    s.next_in = (Bytef *)src;
    s.avail_in = (uInt)len;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
    assert_int_equal(s.avail_in, 0);
    *out_len = cap - s.avail_out;
    inflateEnd(&s);
    return out;
}

static uint8_t *lib_unlz4(const uint8_t *src, size_t len, size_t cap, size_t *out_len)
{
    LZ4F_dctx *d;
    uint8_t *out = malloc(cap);
    size_t in = 0, got = 0, r = 1;
    assert_non_null(out);
    assert_false(LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)));
    while (in < len && r != 0) {
        size_t on = cap - got, inn = len - in;
        r = LZ4F_decompress(d, out + got, &on, src + in, &inn, NULL);
        assert_false(LZ4F_isError(r));
        got += on;
        in += inn;
    }
    assert_int_equal(r, 0);
    assert_int_equal(in, len);
    LZ4F_freeDecompressionContext(d);
    *out_len = got;
    return out;
}

static uint8_t *lib_unzstd(const uint8_t *src, size_t len, size_t cap, size_t *out_len)
{
    ZSTD_DStream *d = ZSTD_createDStream();
    uint8_t *out = malloc(cap);
    assert_non_null(d);
    assert_non_null(out);
    ZSTD_inBuffer inb = {src, len, 0};
    ZSTD_outBuffer outb = {out, cap, 0};
    size_t r = ZSTD_decompressStream(d, &outb, &inb);
    assert_false(ZSTD_isError(r));
    assert_int_equal(r, 0);
    assert_int_equal(inb.pos, len);
    ZSTD_freeDStream(d);
    *out_len = outb.pos;
    return out;
}

/* ---- tests ---- */

/* Builder -> compress -> parse (CRC) -> decompress -> iterate, for every codec; the
 * header fields are those of the uncompressed batch, and the scratch buffer is reused. */
static void test_roundtrip(void **state)
{
    (void)state;
    struct sample *s = sample_make();
    size_t len;
    uint8_t *orig = build(s, N_RECS, 1000, &len);
    struct sl_rb_zbuf z = {0}, dz = {0};

    for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
        struct sl_rb_batch ob, cb;
        assert_int_equal(sl_rb_compress(orig, len, codecs[c], &z), 1);
        assert_true(z.len < len);
        uint8_t *comp = malloc(z.len);
        size_t clen = z.len;
        assert_non_null(comp);
        memcpy(comp, z.data, clen);

        assert_int_equal(sl_rb_parse(orig, len, &ob), SL_RB_OK);
        assert_int_equal(sl_rb_parse(comp, clen, &cb), SL_RB_OK);
        assert_int_equal(sl_rb_codec_of(&cb), codecs[c]);
        assert_int_equal(cb.attributes & ~7, ob.attributes & ~7);
        assert_int_equal(cb.total_len, clen);
        assert_int_equal(be32(comp + 8), clen - SL_RB_LOG_OVERHEAD);
        assert_true(cb.base_offset == ob.base_offset);
        assert_int_equal(cb.last_offset_delta, ob.last_offset_delta);
        assert_true(cb.base_timestamp == ob.base_timestamp);
        assert_true(cb.max_timestamp == ob.max_timestamp);
        assert_true(cb.producer_id == ob.producer_id);
        assert_int_equal(cb.producer_epoch, ob.producer_epoch);
        assert_int_equal(cb.base_sequence, ob.base_sequence);
        assert_int_equal(cb.record_count, ob.record_count);
        assert_int_equal(cb.partition_leader_epoch, ob.partition_leader_epoch);

        check_records(comp, clen, &dz, s, N_RECS, 1000);
        /* the decompressed section is the original one, byte for byte */
        assert_int_equal(dz.len, len - SL_RB_HEADER_SIZE);
        assert_memory_equal(dz.data, orig + SL_RB_HEADER_SIZE, dz.len);

        /* steady state: the same batch again reuses the buffers */
        uint8_t *zdata = z.data, *ddata = dz.data;
        assert_int_equal(sl_rb_compress(orig, len, codecs[c], &z), 1);
        assert_int_equal(z.len, clen);
        assert_memory_equal(z.data, comp, clen);
        check_records(comp, clen, &dz, s, N_RECS, 1000);
        assert_ptr_equal(z.data, zdata);
        assert_ptr_equal(dz.data, ddata);

        /* a one-record batch and a batch with an odd base offset */
        size_t l1;
        uint8_t *one = build(s, 1, 0, &l1);
        int rc = sl_rb_compress(one, l1, codecs[c], &z);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) {
            check_records(z.data, z.len, &dz, s, 1, 0);
        }
        free(one);
        free(comp);
    }
    /* an uncompressed batch comes back as it is */
    struct sl_rb_batch b, d;
    assert_int_equal(sl_rb_parse(orig, len, &b), SL_RB_OK);
    assert_int_equal(sl_rb_decompress(&b, &dz, &d), SL_RB_OK);
    assert_ptr_equal(d.records, b.records);
    sl_rb_zbuf_free(&z);
    sl_rb_zbuf_free(&dz);
    sl_rb_zbuf_free(NULL);
    free(orig);
    free(s);
}

/* What sl_rb_compress writes decodes with the libraries' own decoders, and the LZ4
 * frame is the one Kafka writes: independent blocks, 64 KiB max, no checksums. */
static void test_standard_frames(void **state)
{
    (void)state;
    struct sample *s = sample_make();
    size_t len, got;
    uint8_t *orig = build(s, N_RECS, 7, &len);
    const uint8_t *recs = orig + SL_RB_HEADER_SIZE;
    size_t rlen = len - SL_RB_HEADER_SIZE;
    struct sl_rb_zbuf z = {0};
    uint8_t *out;

    assert_int_equal(sl_rb_compress(orig, len, SL_RB_CODEC_GZIP, &z), 1);
    assert_int_equal(z.data[SL_RB_HEADER_SIZE], 0x1f);          /* gzip magic */
    assert_int_equal(z.data[SL_RB_HEADER_SIZE + 1], 0x8b);
    out = lib_gunzip(z.data + SL_RB_HEADER_SIZE, z.len - SL_RB_HEADER_SIZE, rlen + 16, &got);
    assert_int_equal(got, rlen);
    assert_memory_equal(out, recs, rlen);
    free(out);

    assert_int_equal(sl_rb_compress(orig, len, SL_RB_CODEC_LZ4, &z), 1);
    const uint8_t *f = z.data + SL_RB_HEADER_SIZE;
    assert_int_equal(f[0] | f[1] << 8 | f[2] << 16 | (uint32_t)f[3] << 24, 0x184D2204u);
    assert_int_equal(f[4] & 0xC0, 0x40);   /* version 01 */
    assert_int_equal(f[4] & 0x20, 0x20);   /* independent blocks */
    assert_int_equal(f[4] & 0x1C, 0);      /* no block checksum, content size, checksum */
    assert_int_equal(f[5], 0x40);          /* block max size 64 KiB */
    out = lib_unlz4(f, z.len - SL_RB_HEADER_SIZE, rlen + 16, &got);
    assert_int_equal(got, rlen);
    assert_memory_equal(out, recs, rlen);
    free(out);

    assert_int_equal(sl_rb_compress(orig, len, SL_RB_CODEC_ZSTD, &z), 1);
    out = lib_unzstd(z.data + SL_RB_HEADER_SIZE, z.len - SL_RB_HEADER_SIZE, rlen + 16, &got);
    assert_int_equal(got, rlen);
    assert_memory_equal(out, recs, rlen);
    free(out);

    sl_rb_zbuf_free(&z);
    free(orig);
    free(s);
}

/* Compress src with each library directly, in forms other writers use. Returns a
 * malloc'd frame (two concatenated when twice). */
static uint8_t *lib_gzip(const uint8_t *src, size_t len, bool twice, size_t *out_len)
{
    size_t cap = 2 * (compressBound((uLong)len) + 64), used = 0;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    for (int k = 0; k < (twice ? 2 : 1); k++) {
        z_stream s;
        size_t part = k == 0 && twice ? len / 2 : len;
        const uint8_t *from = k == 1 ? src + len / 2 : src;
        if (k == 1) {
            part = len - len / 2;
        }
        memset(&s, 0, sizeof(s));
        assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
        s.next_in = (Bytef *)from;
        s.avail_in = (uInt)part;
        s.next_out = out + used;
        s.avail_out = (uInt)(cap - used);
        assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
        used = cap - s.avail_out;
        deflateEnd(&s);
    }
    *out_len = used;
    return out;
}

static uint8_t *lib_lz4(const uint8_t *src, size_t len, bool twice, size_t *out_len)
{
    /* lz4's defaults, unlike Kafka's: linked blocks, 4 MiB blocks, content checksum and
     * size, block checksums */
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof(prefs));
    prefs.frameInfo.blockSizeID = LZ4F_max4MB;
    prefs.frameInfo.blockMode = LZ4F_blockLinked;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
    prefs.frameInfo.contentSize = twice ? 0 : len;
    size_t cap = 2 * LZ4F_compressFrameBound(len, &prefs), used = 0;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    for (int k = 0; k < (twice ? 2 : 1); k++) {
        size_t part = twice ? (k == 0 ? len / 2 : len - len / 2) : len;
        const uint8_t *from = k == 1 ? src + len / 2 : src;
        size_t n = LZ4F_compressFrame(out + used, cap - used, from, part, &prefs);
        assert_false(LZ4F_isError(n));
        used += n;
    }
    *out_len = used;
    return out;
}

static uint8_t *lib_zstd(const uint8_t *src, size_t len, bool twice, size_t *out_len)
{
    /* streaming, without the content size in the frame header (as a Java writer may) */
    ZSTD_CCtx *c = ZSTD_createCCtx();
    size_t cap = 2 * ZSTD_compressBound(len) + 64, used = 0;
    uint8_t *out = malloc(cap);
    assert_non_null(c);
    assert_non_null(out);
    for (int k = 0; k < (twice ? 2 : 1); k++) {
        size_t part = twice ? (k == 0 ? len / 2 : len - len / 2) : len;
        const uint8_t *from = k == 1 ? src + len / 2 : src;
        ZSTD_inBuffer inb = {from, part, 0};
        ZSTD_outBuffer outb = {out + used, cap - used, 0};
        ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
        ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
        size_t r;
        do {
            r = ZSTD_compressStream2(c, &outb, &inb, ZSTD_e_end);
            assert_false(ZSTD_isError(r));
        } while (r != 0);
        assert_true(ZSTD_getFrameContentSize(out + used, outb.pos) ==
                    ZSTD_CONTENTSIZE_UNKNOWN);
        used += outb.pos;
    }
    ZSTD_freeCCtx(c);
    *out_len = used;
    return out;
}

typedef uint8_t *(*lib_fn)(const uint8_t *, size_t, bool, size_t *);

/* Frames the libraries make (other settings than ours, concatenated frames too) decode
 * through sl_rb_decompress. */
static void test_library_frames(void **state)
{
    (void)state;
    struct sample *s = sample_make();
    size_t len;
    uint8_t *orig = build(s, N_RECS, 42, &len);
    const lib_fn fns[] = {lib_gzip, lib_lz4, lib_zstd};
    struct sl_rb_zbuf z = {0};

    for (size_t c = 0; c < 3; c++) {
        for (int twice = 0; twice < 2; twice++) {
            size_t flen, blen;
            uint8_t *frame = fns[c](orig + SL_RB_HEADER_SIZE, len - SL_RB_HEADER_SIZE,
                                    twice != 0, &flen);
            uint8_t *batch = wrap(orig, codecs[c], frame, flen, &blen);
            check_records(batch, blen, &z, s, N_RECS, 42);
            free(batch);
            free(frame);
        }
    }
    sl_rb_zbuf_free(&z);
    free(orig);
    free(s);
}

/* Bad input to sl_rb_compress: -EINVAL; a batch that does not shrink: 0. */
static void test_compress_refusals(void **state)
{
    (void)state;
    struct sample *s = sample_make();
    size_t len;
    uint8_t *orig = build(s, 10, 0, &len);
    struct sl_rb_zbuf z = {0};

    assert_int_equal(sl_rb_compress(orig, len, SL_RB_CODEC_NONE, &z), -EINVAL);
    assert_int_equal(sl_rb_compress(orig, len, SL_RB_CODEC_SNAPPY, &z), -EINVAL);
    assert_int_equal(sl_rb_compress(orig, len, (enum sl_rb_codec)7, &z), -EINVAL);
    assert_int_equal(sl_rb_compress(orig, len - 1, SL_RB_CODEC_LZ4, &z), -EINVAL);
    assert_int_equal(sl_rb_compress(orig, len + 0, SL_RB_CODEC_LZ4, &z), 1);
    uint8_t *twice = malloc(z.len);
    size_t tl = z.len;
    assert_non_null(twice);
    memcpy(twice, z.data, tl);
    assert_int_equal(sl_rb_compress(twice, tl, SL_RB_CODEC_GZIP, &z), -EINVAL);
    free(twice);

    /* one record of random bytes: no codec makes it smaller */
    uint8_t noise[300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (uint8_t)(x >> 16);
    }
    struct sl_rb_builder b;
    struct sl_rec_in r = {.timestamp = 1, .key_len = -1, .value = noise,
                          .value_len = (int32_t)sizeof(noise)};
    const uint8_t *p;
    size_t pl;
    sl_rb_builder_init(&b);
    assert_int_equal(sl_rb_builder_add(&b, &r), 0);
    p = sl_rb_builder_finish(&b, &pl);
    for (size_t c = 0; c < 3; c++) {
        assert_int_equal(sl_rb_compress(p, pl, codecs[c], &z), 0);
    }
    sl_rb_builder_free(&b);
    sl_rb_zbuf_free(&z);
    free(orig);
    free(s);
}

/* Truncated frames, garbage, flipped bytes and wrong record counts: never a crash, and
 * CORRUPT wherever the codec can tell. */
static void test_corrupt_input(void **state)
{
    (void)state;
    struct sample *s = sample_make();
    size_t len;
    uint8_t *orig = build(s, N_RECS, 0, &len);
    struct sl_rb_zbuf z = {0}, dz = {0};
    struct sl_rb_batch b, d;

    for (size_t c = 0; c < 3; c++) {
        assert_int_equal(sl_rb_compress(orig, len, codecs[c], &z), 1);
        const uint8_t *frame = z.data + SL_RB_HEADER_SIZE;
        size_t flen = z.len - SL_RB_HEADER_SIZE;

        /* every truncation (exact-size copies, so ASan sees any overread) */
        for (size_t cut = 0; cut < flen; cut++) {
            size_t bl;
            uint8_t *part = wrap(orig, codecs[c], frame, cut, &bl);
            assert_int_equal(sl_rb_parse(part, bl, &b), SL_RB_OK);
            assert_int_equal(sl_rb_decompress(&b, &dz, &d), SL_RB_CORRUPT);
            free(part);
        }
        /* trailing garbage after a whole frame */
        {
            uint8_t *more = malloc(flen + 7);
            size_t bl;
            assert_non_null(more);
            memcpy(more, frame, flen);
            memset(more + flen, 0x5A, 7);
            uint8_t *bt = wrap(orig, codecs[c], more, flen + 7, &bl);
            assert_int_equal(sl_rb_parse(bt, bl, &b), SL_RB_OK);
            assert_int_equal(sl_rb_decompress(&b, &dz, &d), SL_RB_CORRUPT);
            free(bt);
            free(more);
        }
        /* every single-byte flip: CORRUPT, or OK and then only iterable or not */
        uint8_t *mut = malloc(flen);
        assert_non_null(mut);
        for (size_t i = 0; i < flen; i++) {
            size_t bl;
            memcpy(mut, frame, flen);
            mut[i] ^= (uint8_t)(1u << (i % 8));
            uint8_t *bt = wrap(orig, codecs[c], mut, flen, &bl);
            assert_int_equal(sl_rb_parse(bt, bl, &b), SL_RB_OK);
            enum sl_rb_status st = sl_rb_decompress(&b, &dz, &d);
            assert_true(st == SL_RB_OK || st == SL_RB_CORRUPT);
            if (st == SL_RB_OK) {
                struct sl_rb_iter it;
                struct sl_record r;
                int rc;
                sl_rb_iter_init(&it, &d);
                while ((rc = sl_rb_iter_next(&it, &r)) == 1) {
                }
                assert_true(rc == 0 || rc == SL_RB_CORRUPT);
            }
            free(bt);
        }
        free(mut);
        /* garbage */
        {
            uint8_t junk[200];
            size_t bl;
            for (size_t i = 0; i < sizeof(junk); i++) {
                junk[i] = (uint8_t)(i * 37 + c);
            }
            uint8_t *bt = wrap(orig, codecs[c], junk, sizeof(junk), &bl);
            assert_int_equal(sl_rb_parse(bt, bl, &b), SL_RB_OK);
            assert_int_equal(sl_rb_decompress(&b, &dz, &d), SL_RB_CORRUPT);
            free(bt);
        }
        /* more records claimed than decompressed bytes */
        {
            uint8_t *bt = malloc(z.len);
            assert_non_null(bt);
            memcpy(bt, z.data, z.len);
            put32(bt + 57, (uint32_t)(len * 2));
            put32(bt + 23, (uint32_t)(len * 2));
            put32(bt + 17, sl_crc32c(bt + 21, z.len - 21));
            assert_int_equal(sl_rb_parse(bt, z.len, &b), SL_RB_OK);
            assert_int_equal(sl_rb_decompress(&b, &dz, &d), SL_RB_CORRUPT);
            free(bt);
        }
    }
    /* snappy is recognised and not decoded; a batch without its bytes is refused */
    {
        size_t bl;
        uint8_t *bt = wrap(orig, SL_RB_CODEC_SNAPPY, orig + SL_RB_HEADER_SIZE, 10, &bl);
        assert_int_equal(sl_rb_parse(bt, bl, &b), SL_RB_UNSUPPORTED);
        assert_int_equal(sl_rb_decompress(&b, &dz, &d), SL_RB_UNSUPPORTED);
        free(bt);
        bt = wrap(orig, SL_RB_CODEC_ZSTD, orig + SL_RB_HEADER_SIZE, 10, &bl);
        assert_int_equal(sl_rb_parse_header(bt, bl - 1, &b), SL_RB_OK);
        assert_null(b.records);
        assert_int_equal(sl_rb_decompress(&b, &dz, &d), SL_RB_CORRUPT);
        free(bt);
    }
    sl_rb_zbuf_free(&z);
    sl_rb_zbuf_free(&dz);
    free(orig);
    free(s);
}

/* Frames that inflate past SL_RB_MAX_DECOMPRESSED are refused, whatever they claim. */
static void test_bombs(void **state)
{
    (void)state;
    size_t big = (size_t)SL_RB_MAX_DECOMPRESSED + 4096;
    uint8_t *zeros = calloc(1, big);
    struct sample *s = sample_make();
    size_t len;
    uint8_t *orig = build(s, 1, 0, &len);
    const lib_fn fns[] = {lib_gzip, lib_lz4, lib_zstd};
    struct sl_rb_zbuf z = {0};
    struct sl_rb_batch b, d;

    assert_non_null(zeros);
    for (size_t c = 0; c < 3; c++) {
        size_t flen, bl;
        uint8_t *frame = fns[c](zeros, big, false, &flen);
        uint8_t *bt = wrap(orig, codecs[c], frame, flen, &bl);
        assert_true(bl < big / 100);
        assert_int_equal(sl_rb_parse(bt, bl, &b), SL_RB_OK);
        assert_int_equal(sl_rb_decompress(&b, &z, &d), SL_RB_CORRUPT);
        assert_true(z.cap <= (size_t)SL_RB_MAX_DECOMPRESSED + 1);
        free(bt);
        free(frame);
    }
    /* exactly at the cap is still accepted (as bytes; they are no records) */
    {
        size_t flen, bl;
        uint8_t *frame = lib_zstd(zeros, SL_RB_MAX_DECOMPRESSED, false, &flen);
        uint8_t *bt = wrap(orig, SL_RB_CODEC_ZSTD, frame, flen, &bl);
        assert_int_equal(sl_rb_parse(bt, bl, &b), SL_RB_OK);
        assert_int_equal(sl_rb_decompress(&b, &z, &d), SL_RB_OK);
        assert_int_equal(d.records_len, SL_RB_MAX_DECOMPRESSED);
        free(bt);
        free(frame);
    }
    sl_rb_zbuf_free(&z);
    free(zeros);
    free(orig);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_standard_frames),
        cmocka_unit_test(test_library_frames),
        cmocka_unit_test(test_compress_refusals),
        cmocka_unit_test(test_corrupt_input),
        cmocka_unit_test(test_bombs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * libFuzzer harness for the strict JSON scanner (gateway/json_scan.c), with jansson (a
 * strict RFC 8259 parser) as the oracle:
 * 1. The scanner accepts the input as one value iff jansson does (JSON_DECODE_ANY),
 *    but where the two documented limits differ: jansson refuses integers beyond
 *    int64 ("too big integer"), which the scanner keeps; jansson nests 2048 deep, the
 *    scanner 1000; jansson's reader skips NUL bytes (a quirk of its stream buffer), the
 *    scanner refuses them.
 * 2. When both accept, the scanner's values are jansson's: the same types, every
 *    string byte for byte (js_decode), every number (js_number), walked with js_open /
 *    js_member / js_element into objects without repeated names and into arrays.
 * 3. A rejection's offset is within the input.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                          \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "fuzz_json_scan: %s (line %d)\n", #c, __LINE__);            \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static void compare(struct js *s, const json_t *j);

/* Members of the object at s (opened with js_open on a copy); -1 on a scan error. */
static long count_members(struct js probe)
{
    struct js_val key;
    struct js_val v;
    bool first = true;
    long n = 0;
    int rc;

    while ((rc = js_member(&probe, &first, &key)) == 1) {
        CHECK(js_value(&probe, &v));
        n++;
    }
    return rc == 0 ? n : -1;
}

static void compare_object(struct js *s, const json_t *j)
{
    struct js_val key;
    bool first = true;
    long n = count_members(*s);
    bool unique;

    CHECK(json_is_object(j));
    CHECK(n >= 0);
    /* Repeated names: jansson keeps the last value and the count differs. */
    unique = (size_t)n == json_object_size(j);
    while (js_member(s, &first, &key) == 1) {
        char *name = malloc(key.end - key.start + 1);
        CHECK(name != NULL);
        js_decode(s, &key, name);
        if (unique) {
            const json_t *v = json_object_get(j, name);
            CHECK(v != NULL);
            compare(s, v);
        } else {
            struct js_val skipped;
            CHECK(js_value(s, &skipped));
        }
        free(name);
    }
    CHECK(s->why == NULL);
}

static void compare(struct js *s, const json_t *j)
{
    int c = js_peek(s);
    struct js_val v;

    if (c == '{' || c == '[') {
        CHECK(js_open(s));
        if (c == '{') {
            compare_object(s, j);
        } else {
            bool first = true;
            size_t i = 0;
            CHECK(json_is_array(j));
            while (js_element(s, &first) == 1) {
                CHECK(i < json_array_size(j));
                compare(s, json_array_get(j, i++));
            }
            CHECK(s->why == NULL && i == json_array_size(j));
        }
        return;
    }
    CHECK(js_value(s, &v));
    switch (v.type) {
    case JS_STRING: {
        char *out = malloc(v.end - v.start + 1);
        size_t n;
        CHECK(out != NULL && json_is_string(j));
        n = js_decode(s, &v, out);
        CHECK(n == json_string_length(j) && memcmp(out, json_string_value(j), n) == 0);
        CHECK(out[n] == '\0');
        free(out);
        break;
    }
    case JS_NUMBER:
        CHECK(json_is_number(j));
        CHECK(js_number(s, &v) == json_number_value(j));
        break;
    case JS_TRUE:
        CHECK(json_is_true(j));
        break;
    case JS_FALSE:
        CHECK(json_is_false(j));
        break;
    case JS_NULL:
        CHECK(json_is_null(j));
        break;
    default:
        CHECK(!"a container from js_value here");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct js s;
    struct js_val v;
    json_error_t jerr;
    json_t *j;
    bool ok;

    js_init(&s, data, size);
    ok = js_value(&s, &v) && js_end(&s);
    CHECK(ok == (s.why == NULL));
    CHECK(ok || s.at <= size);
    j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        if (strstr(jerr.text, "too big") != NULL ||
            strstr(jerr.text, "maximum parsing depth") != NULL) {
            return 0;
        }
        CHECK(!ok);
        return 0;
    }
    if (!ok) {
        CHECK(strcmp(s.why, "nested too deep") == 0 || memchr(data, '\0', size) != NULL);
        json_decref(j);
        return 0;
    }
    /* Both accept: walk again, comparing values. */
    js_init(&s, data, size);
    compare(&s, j);
    CHECK(js_end(&s));
    json_decref(j);
    return 0;
}

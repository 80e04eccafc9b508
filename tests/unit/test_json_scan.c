/* The strict JSON scanner (gateway/json_scan.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/json_scan.h"

/* Scan text (strlen) as one value followed by nothing but whitespace. NULL if it is
 * valid, else the reason; *at gets its offset. */
static const char *scan(const char *text, size_t *at)
{
    static struct js s;
    struct js_val v;

    js_init(&s, text, strlen(text));
    if (js_value(&s, &v) && js_end(&s)) {
        return NULL;
    }
    *at = s.at;
    return s.why;
}

static void expect_ok(const char *text)
{
    size_t at = 0;
    const char *why = scan(text, &at);

    if (why != NULL) {
        fail_msg("%s: rejected at %zu: %s", text, at, why);
    }
}

/* Rejected, at offset at, for a reason containing want. */
static void expect_bad(const char *text, size_t at, const char *want)
{
    size_t got_at = 0;
    const char *why = scan(text, &got_at);

    if (why == NULL) {
        fail_msg("%s: accepted", text);
    }
    if (strstr(why, want) == NULL || got_at != at) {
        fail_msg("%s: got \"%s\" at %zu, want \"%s\" at %zu", text, why, got_at, want, at);
    }
}

static void test_valid(void **state)
{
    (void)state;
    expect_ok("{}");
    expect_ok("[]");
    expect_ok(" \t\r\n{ \"a\" : [ 1 , -2.5e+3 , true , false , null , \"x\" , { } , [ ] ] } \n");
    expect_ok("0");
    expect_ok("-0");
    expect_ok("0.5");
    expect_ok("1E-7");
    expect_ok("123456789012345678901234567890");
    expect_ok("\"\"");
    expect_ok("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\ude00\"");
    expect_ok("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    expect_ok("{\"a\":{\"a\":{\"a\":1}},\"a\":2}");   /* repeated names: the caller's call */
    expect_ok("1.7976931348623157e308");            /* DBL_MAX */
    expect_ok("1e-400");                            /* underflow to 0 is finite */
}

static void test_invalid(void **state)
{
    (void)state;
    expect_bad("", 0, "value expected");
    expect_bad("   ", 3, "value expected");
    expect_bad("{", 1, "member name expected");
    expect_bad("[", 1, "value expected");
    expect_bad("[1", 2, "',' or ']' expected");
    expect_bad("[1,]", 3, "value expected");
    expect_bad("[,1]", 1, "value expected");
    expect_bad("{\"a\":1,}", 7, "member name expected");
    expect_bad("{\"a\" 1}", 5, "':' expected");
    expect_bad("{\"a\":}", 5, "value expected");
    expect_bad("{\"a\":1 \"b\":2}", 7, "',' or '}' expected");
    expect_bad("{1:2}", 1, "member name");
    expect_bad("[1] [2]", 4, "end of input expected");
    expect_bad("[tru]", 1, "value expected");
    expect_bad("[nul", 1, "value expected");
    expect_bad("[True]", 1, "value expected");
    expect_bad("[01]", 1, "invalid number");
    expect_bad("[1.]", 1, "invalid number");
    expect_bad("[-.5]", 1, "invalid number");
    expect_bad("[.5]", 1, "value expected");
    expect_bad("[1e]", 1, "invalid number");
    expect_bad("[+1]", 1, "value expected");
    expect_bad("[-]", 1, "invalid number");
    expect_bad("[1e400]", 1, "number out of range");
    expect_bad("[-1e400]", 1, "number out of range");
    expect_bad("[2E+400]", 1, "number out of range");             /* capital E, sign */
    expect_bad("[1.7976931348623159e308]", 1, "number out of range");   /* rounds to inf */
    expect_bad("[\"abc", 5, "unterminated string");
    expect_bad("[\"a\\", 3, "invalid escape");
    expect_bad("[\"a\\q\"]", 3, "invalid escape");
    expect_bad("[\"\\u12\"]", 2, "invalid escape");
    expect_bad("[\"\\uZZZZ\"]", 2, "invalid escape");
    expect_bad("[\"\\u0000\"]", 2, "\\u0000");
    expect_bad("[\"\\ud800\"]", 2, "unpaired surrogate");
    expect_bad("[\"\\ud800\\u0041\"]", 2, "unpaired surrogate");
    expect_bad("[\"\\udc00\\ud800\"]", 2, "unpaired surrogate");
    expect_bad("[\"a\x01\"]", 3, "control character");
    expect_bad("[\"a\tb\"]", 3, "control character");
    expect_bad("[\"\xc3\"]", 2, "invalid UTF-8");
    expect_bad("[\"\xc0\xaf\"]", 2, "invalid UTF-8");         /* overlong */
    expect_bad("[\"\xed\xa0\x80\"]", 2, "invalid UTF-8");     /* a surrogate */
    expect_bad("[\"\xf4\x90\x80\x80\"]", 2, "invalid UTF-8"); /* above U+10FFFF */
    expect_bad("\xef\xbb\xbf[]", 0, "value expected");        /* a BOM */
    expect_bad("[1,\x0b 2]", 3, "value expected");            /* not JSON whitespace */
    expect_bad("[1]x", 3, "end of input expected");
}

/* Numbers long enough to need strtod's verdict, and long enough to need a heap copy. */
static void test_long_numbers(void **state)
{
    char text[1200];

    (void)state;
    /* 1 and 299 zeros: below 1e300, no strtod needed. 1 and 308 zeros: 1e308, fine. */
    memset(text, '0', sizeof(text));
    text[0] = '1';
    text[300] = '\0';
    expect_ok(text);
    text[300] = '0';
    text[309] = '\0';
    expect_ok(text);
    /* 1 and 309 zeros: 1e309, too large */
    text[309] = '0';
    text[310] = '\0';
    expect_bad(text, 0, "number out of range");
    /* 0.<1000 zeros>1e1000 is 0.1: fine (the copy for strtod goes to the heap) */
    memset(text, '0', sizeof(text));
    text[1] = '.';
    memcpy(text + 1002, "1e1000", 7);
    expect_ok(text);
    memcpy(text + 1002, "1e1402", 7);       /* 1e400 */
    expect_bad(text, 0, "number out of range");
}

static void test_depth(void **state)
{
    char *text = malloc(5 * JS_MAX_DEPTH + 16);
    size_t n = 0;

    (void)state;
    for (int i = 0; i < JS_MAX_DEPTH; i++) {
        text[n++] = '[';
    }
    for (int i = 0; i < JS_MAX_DEPTH; i++) {
        text[n++] = ']';
    }
    text[n] = '\0';
    expect_ok(text);
    /* one level more */
    memmove(text + 1, text, n + 1);
    text[0] = '[';
    text[n + 1] = ']';
    text[n + 2] = '\0';
    expect_bad(text, JS_MAX_DEPTH, "nested too deep");
    /* objects count the same way */
    n = 0;
    for (int i = 0; i <= JS_MAX_DEPTH; i++) {
        memcpy(text + n, i < JS_MAX_DEPTH ? "{\"a\":" : "{", i < JS_MAX_DEPTH ? 5 : 1);
        n += i < JS_MAX_DEPTH ? 5 : 1;
    }
    text[n] = '\0';
    expect_bad(text, 5 * JS_MAX_DEPTH, "nested too deep");
    free(text);
}

/* Stepping into containers: js_open, js_member, js_element see the same rules. */
static void test_walk(void **state)
{
    static const char text[] = " { \"a\" : [1, \"two\", {\"x\": null}], \"b\\u0021\": true } ";
    struct js s;
    struct js_val key;
    struct js_val v;
    bool first = true;
    char buf[64];

    (void)state;
    js_init(&s, text, strlen(text));
    assert_true(js_open(&s));
    assert_int_equal(js_member(&s, &first, &key), 1);
    assert_int_equal(js_decode(&s, &key, buf), 1);
    assert_string_equal(buf, "a");
    assert_int_equal(js_peek(&s), '[');
    assert_true(js_open(&s));
    {
        bool efirst = true;
        enum js_type want[] = {JS_NUMBER, JS_STRING, JS_OBJECT};
        for (int k = 0; k < 3; k++) {
            assert_int_equal(js_element(&s, &efirst), 1);
            assert_true(js_value(&s, &v));
            assert_int_equal(v.type, want[k]);
        }
        assert_int_equal(js_element(&s, &efirst), 0);
        assert_memory_equal(text + v.start, "{\"x\": null}", v.end - v.start);
    }
    assert_int_equal(js_member(&s, &first, &key), 1);
    assert_true(key.escaped);
    assert_int_equal(js_decode(&s, &key, buf), 2);
    assert_string_equal(buf, "b!");
    assert_true(js_value(&s, &v));
    assert_int_equal(v.type, JS_TRUE);
    assert_int_equal(js_member(&s, &first, &key), 0);
    assert_int_equal(s.depth, 0);
    assert_true(js_end(&s));

    /* an error inside a stepped-into container stops everything after it */
    js_init(&s, "[1,,2]", 6);
    first = true;
    assert_true(js_open(&s));
    assert_int_equal(js_element(&s, &first), 1);
    assert_true(js_value(&s, &v));
    assert_int_equal(js_element(&s, &first), 1);
    assert_false(js_value(&s, &v));
    assert_string_equal(s.why, "value expected");
    assert_int_equal(s.at, 3);
    assert_int_equal(js_element(&s, &first), -1);
    assert_false(js_end(&s));
    assert_int_equal(js_peek(&s), -1);
}

static void test_decode(void **state)
{
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"\"plain\"", "plain"},
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t"},
        {"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac"},
        {"\"\\uD83D\\uDE00!\"", "\xf0\x9f\x98\x80!"},
        {"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf"},
        {"\"a\\\\u0041\"", "a\\u0041"},          /* an escaped backslash, then text */
        {"\"\xc3\xa9\\n\"", "\xc3\xa9\n"},
    };

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct js s;
        struct js_val v;
        char out[64];
        size_t n;

        js_init(&s, cases[k].json, strlen(cases[k].json));
        assert_true(js_value(&s, &v));
        assert_int_equal(v.type, JS_STRING);
        n = js_decode(&s, &v, out);
        assert_int_equal(n, strlen(cases[k].want));
        assert_string_equal(out, cases[k].want);
        assert_true(n <= v.end - v.start);
    }
}

static void test_numbers(void **state)
{
    static const struct {
        const char *json;
        double want;
    } cases[] = {
        {"0", 0}, {"-7", -7}, {"2.5", 2.5}, {"1e3", 1000}, {"-1.5E-2", -0.015},
        {"9007199254740993", 9007199254740992.0},
    };

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct js s;
        struct js_val v;

        js_init(&s, cases[k].json, strlen(cases[k].json));
        assert_true(js_value(&s, &v));
        assert_int_equal(v.type, JS_NUMBER);
        assert_int_equal(v.end - v.start, strlen(cases[k].json));
        assert_true(js_number(&s, &v) == cases[k].want);
    }
}

/* The input need not be NUL-terminated: nothing past len is read (ASan checks it with
 * an exact-size heap copy of each prefix of a document). */
static void test_no_overread(void **state)
{
    static const char doc[] = "{\"k\":[1.5e3,\"\\u00e9\\ud83d\\ude00x\",true,null,{}],\"z\":-0}";
    size_t len = strlen(doc);

    (void)state;
    for (size_t n = 0; n <= len; n++) {
        char *copy = malloc(n > 0 ? n : 1);
        struct js s;
        struct js_val v;
        bool ok;

        memcpy(copy, doc, n);
        js_init(&s, copy, n);
        ok = js_value(&s, &v) && js_end(&s);
        assert_int_equal(ok, n == len);
        if (!ok) {
            assert_true(s.at <= n);
        }
        free(copy);
    }
}

static void test_position(void **state)
{
    size_t line;
    size_t col;

    (void)state;
    js_position("ab\ncd\n\nx", 7, &line, &col);
    assert_int_equal(line, 4);
    assert_int_equal(col, 1);
    js_position("ab\ncd", 4, &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_long_numbers),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_no_overread),
        cmocka_unit_test(test_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* CloudEvents JSON format <-> envelope (gateway/ce_json.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway/ce_json.h"

#define J(s) (s), strlen(s)

static void test_full_event(void **state)
{
    char err[200] = "";
    const char *src = "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/src\","
                      "\"type\":\"com.example.t\",\"subject\":\"orders/eu\","
                      "\"time\":\"2024-01-02T03:04:05.678Z\",\"dataschema\":\"urn:s\","
                      "\"partitionkey\":\"k1\",\"traceid\":\"abc\",\"count\":7,"
                      "\"flag\":true,\"data\":{\"a\":[1,2]}}";
    struct sl_env *env = ce_json_parse_event(J(src), err, sizeof(err));

    (void)state;
    assert_non_null(env);
    assert_string_equal(env->id, "e1");
    assert_string_equal(env->source, "/src");
    assert_string_equal(env->type, "com.example.t");
    assert_string_equal(env->subject, "orders/eu");
    assert_string_equal(env->dataschema, "urn:s");
    assert_string_equal(env->datacontenttype, "application/json");
    assert_string_equal(sl_env_get_attr(env, "partitionkey"), "k1");
    assert_string_equal(sl_env_get_attr(env, "traceid"), "abc");
    assert_string_equal(sl_env_get_attr(env, "count"), "7");
    assert_string_equal(sl_env_get_attr(env, "flag"), "true");
    assert_non_null(env->data);
    assert_int_equal(env->data->len, strlen("{\"a\":[1,2]}"));
    assert_memory_equal(env->data->data, "{\"a\":[1,2]}", env->data->len);
    sl_env_unref(&env);
    assert_null(env);
}

static void test_lenient_id_source_type(void **state)
{
    char err[200] = "";
    struct sl_env *env = ce_json_parse_event(J("{\"specversion\":\"1.0\"}"), err, sizeof(err));

    (void)state;
    assert_non_null(env);
    assert_null(env->id);
    assert_null(env->source);
    assert_null(env->data);
    sl_env_unref(&env);
}

static void test_text_and_base64_data(void **state)
{
    char err[200];
    struct sl_env *env;

    (void)state;
    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"datacontenttype\":\"text/plain\","
                                "\"data\":\"hi there\"}"),
                              err, sizeof(err));
    assert_non_null(env);
    assert_int_equal(env->data->len, 8);
    assert_memory_equal(env->data->data, "hi there", 8);
    sl_env_unref(&env);

    /* A JSON string with a JSON content type stays JSON text (quoted). */
    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"data\":\"q\","
                                "\"datacontenttype\":\"application/json\"}"),
                              err, sizeof(err));
    assert_non_null(env);
    assert_int_equal(env->data->len, 3);
    assert_memory_equal(env->data->data, "\"q\"", 3);
    sl_env_unref(&env);

    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"data_base64\":\"AAH/\"}"), err,
                              sizeof(err));
    assert_non_null(env);
    assert_int_equal(env->data->len, 3);
    assert_int_equal(env->data->data[0], 0);
    assert_int_equal(env->data->data[1], 1);
    assert_int_equal(env->data->data[2], 0xff);
    sl_env_unref(&env);

    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"data_base64\":\"YQ==\"}"), err,
                              sizeof(err));
    assert_non_null(env);
    assert_int_equal(env->data->len, 1);
    assert_int_equal(env->data->data[0], 'a');
    sl_env_unref(&env);
}

static void expect_bad(const char *json, const char *needle)
{
    char err[200] = "";
    struct sl_env *env = ce_json_parse_event(json, strlen(json), err, sizeof(err));

    assert_null(env);
    if (strstr(err, needle) == NULL) {
        fail_msg("error \"%s\" does not mention \"%s\" for %s", err, needle, json);
    }
}

static void test_bad_inputs(void **state)
{
    (void)state;
    expect_bad("{", "bad JSON");
    expect_bad("[]", "object");
    expect_bad("{\"id\":\"x\"}", "specversion");
    expect_bad("{\"specversion\":\"0.3\"}", "specversion");
    expect_bad("{\"specversion\":1}", "specversion");
    expect_bad("{\"specversion\":\"1.0\",\"id\":5}", "\"id\"");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\"}", "empty");
    expect_bad("{\"specversion\":\"1.0\",\"time\":\"yesterday\"}", "time");
    expect_bad("{\"specversion\":\"1.0\",\"Bad_Name\":\"x\"}", "extension name");
    expect_bad("{\"specversion\":\"1.0\",\"ext\":{\"a\":1}}", "extension");
    expect_bad("{\"specversion\":\"1.0\",\"data\":1,\"data_base64\":\"AA==\"}", "exclusive");
    expect_bad("{\"specversion\":\"1.0\",\"data_base64\":\"A\"}", "base64");
    expect_bad("{\"specversion\":\"1.0\",\"data_base64\":\"AA=A\"}", "base64");
    expect_bad("{\"specversion\":\"1.0\",\"data_base64\":7}", "data_base64");
    expect_bad("{\"specversion\":\"1.0\",\"specversion\":\"1.0\"}", "bad JSON");
}

static void test_batch(void **state)
{
    char err[200] = "";
    struct sl_env **envs = NULL;
    size_t n = 99;
    const char *two = "[{\"specversion\":\"1.0\",\"id\":\"a\"},{\"specversion\":\"1.0\",\"id\":\"b\"}]";

    (void)state;
    assert_int_equal(ce_json_parse_batch(J(two), 10, &envs, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(envs[0]->id, "a");
    assert_string_equal(envs[1]->id, "b");
    ce_json_free_batch(&envs, n);
    assert_null(envs);
    ce_json_free_batch(NULL, 0);

    assert_int_equal(ce_json_parse_batch(J(two), 1, &envs, &n, err, sizeof(err)), -E2BIG);
    assert_null(envs);
    assert_int_equal(ce_json_parse_batch(J("[]"), 10, &envs, &n, err, sizeof(err)), -EINVAL);
    assert_int_equal(ce_json_parse_batch(J("{}"), 10, &envs, &n, err, sizeof(err)), -EINVAL);
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\"},{\"id\":\"x\"}]"), 10,
                                         &envs, &n, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "event 1"));
    assert_null(envs);
    assert_int_equal(n, 0);
}

static void test_is_json_type(void **state)
{
    (void)state;
    assert_true(ce_json_is_json_type("application/json"));
    assert_true(ce_json_is_json_type("Application/JSON; charset=utf-8"));
    assert_true(ce_json_is_json_type("application/cloudevents+json"));
    assert_true(ce_json_is_json_type("text/json"));
    assert_false(ce_json_is_json_type("text/plain"));
    assert_false(ce_json_is_json_type("application/jsonx"));
    assert_false(ce_json_is_json_type(NULL));
}

/* env rendered by ce_json_render_event: the text (malloc'd, NUL-terminated). */
static char *render(const struct sl_env *env)
{
    struct ce_json_buf b = {0};

    assert_int_equal(ce_json_render_event(env, &b), 0);
    assert_non_null(b.data);
    assert_int_equal(strlen(b.data), b.len);
    return b.data;
}

/* env rendered, then loaded by jansson (which checks that it is one JSON object). */
static json_t *out_of(struct sl_env *env)
{
    char *text = render(env);
    json_error_t jerr;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

    if (o == NULL || !json_is_object(o)) {
        fail_msg("rendered %s: %s", text, jerr.text);
    }
    free(text);
    return o;
}

static void test_output(void **state)
{
    struct sl_env *env = sl_env_new();
    json_t *o;
    const uint8_t bin[3] = {0xff, 0x00, 0x01};

    (void)state;
    assert_int_equal(sl_env_set_attr(env, "id", "x1", 2), 0);
    assert_int_equal(sl_env_set_attr(env, "datacontenttype", "application/json", 16), 0);
    assert_int_equal(sl_env_set_attr(env, "myext", "v", 1), 0);
    assert_int_equal(sl_env_set_data(env, "{\"n\":1}", 7), 0);
    assert_int_equal(sl_env_set_key(env, "key1", 4), 0);
    env->partition = 2;
    env->offset = 41;
    o = out_of(env);
    assert_string_equal(json_string_value(json_object_get(o, "specversion")), "1.0");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "x1");
    assert_string_equal(json_string_value(json_object_get(o, "myext")), "v");
    assert_int_equal(json_integer_value(json_object_get(o, "partition")), 2);
    assert_int_equal(json_integer_value(json_object_get(o, "offset")), 41);
    assert_string_equal(json_string_value(json_object_get(o, "partitionkey")), "key1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "data"), "n")), 1);
    assert_null(json_object_get(o, "data_base64"));
    json_decref(o);

    /* JSON content type that does not parse: falls back to a string. */
    assert_int_equal(sl_env_set_data(env, "{nope", 5), 0);
    o = out_of(env);
    assert_string_equal(json_string_value(json_object_get(o, "data")), "{nope");
    json_decref(o);

    /* Binary: data_base64. */
    assert_int_equal(sl_env_set_attr(env, "datacontenttype", "application/octet-stream", 24), 0);
    assert_int_equal(sl_env_set_data(env, bin, 3), 0);
    o = out_of(env);
    assert_null(json_object_get(o, "data"));
    assert_string_equal(json_string_value(json_object_get(o, "data_base64")), "/wAB");
    json_decref(o);

    /* Valid UTF-8 with control bytes is not text either. */
    assert_int_equal(sl_env_set_data(env, "\x01\x02", 2), 0);
    o = out_of(env);
    assert_null(json_object_get(o, "data"));
    assert_string_equal(json_string_value(json_object_get(o, "data_base64")), "AQI=");
    json_decref(o);
    assert_int_equal(sl_env_set_data(env, "a\tb\n", 4), 0);
    o = out_of(env);
    assert_string_equal(json_string_value(json_object_get(o, "data")), "a\tb\n");
    json_decref(o);
    sl_env_unref(&env);

    /* No id, from the log: "<partition>-<offset>". Not from the log: no offset members. */
    env = sl_env_new();
    env->partition = 0;
    env->offset = 5;
    o = out_of(env);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "0-5");
    json_decref(o);
    env->offset = -1;
    env->partition = -1;
    o = out_of(env);
    assert_null(json_object_get(o, "offset"));
    assert_null(json_object_get(o, "data"));
    json_decref(o);
    sl_env_unref(&env);
}

static void test_round_trip(void **state)
{
    char err[200];
    const char *src = "{\"specversion\":\"1.0\",\"id\":\"r\",\"source\":\"/s\",\"type\":\"t\","
                      "\"datacontenttype\":\"text/plain\",\"data\":\"caf\xc3\xa9\","
                      "\"offset\":3,\"partition\":1}";
    struct sl_env *env = ce_json_parse_event(J(src), err, sizeof(err));
    json_t *o;
    char *text;
    struct sl_env *again;

    (void)state;
    assert_non_null(env);
    assert_null(sl_env_get_attr(env, "offset"));   /* read-only members are ignored */
    o = out_of(env);
    text = render(env);
    again = ce_json_parse_event(text, strlen(text), err, sizeof(err));
    assert_non_null(again);
    assert_string_equal(again->id, "r");
    assert_int_equal(again->data->len, env->data->len);
    assert_memory_equal(again->data->data, env->data->data, env->data->len);
    free(text);
    json_decref(o);
    sl_env_unref(&again);
    sl_env_unref(&env);
}

/* Parse from an exact-size heap copy (no NUL after it), so ASan sees any over-read. */
static struct sl_env *parse_exact(const char *json, char *err, size_t errsz)
{
    size_t len = strlen(json);
    char *copy = malloc(len > 0 ? len : 1);
    struct sl_env *env;

    assert_non_null(copy);
    memcpy(copy, json, len);
    env = ce_json_parse_event(copy, len, err, errsz);
    free(copy);
    return env;
}

static void test_strict_json(void **state)
{
    char err[200] = "";
    struct sl_env *env;

    (void)state;
    /* \u0000 anywhere (value, key, data, nested data) is bad JSON, as with jansson. */
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"a\\u0000b\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"x\\u0000\":\"v\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"data\":\"\\u0000\"}", "\\u0000");
    expect_bad("{\"specversion\":\"1.0\",\"data\":{\"k\":[\"\\u0000\"]}}", "bad JSON");
    /* An escaped backslash before real \u0000 is still caught. */
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\\\\\\u0000\"}", "bad JSON");
    /* \u escapes need four hex digits (a lenient parser might read U+0000). */
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\\uZZZZ\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\\u00\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\\q\"}", "bad JSON");
    /* Raw control bytes, invalid UTF-8, a BOM, loose numbers, trailing text, scalars. */
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"a\x01\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\x01\"id\":\"a\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\xc3\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\xed\xa0\x80\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"\xc0\xaf\"}", "bad JSON");
    expect_bad("\xef\xbb\xbf{\"specversion\":\"1.0\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"n\":01}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"n\":1.}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"n\":-.5}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"n\":1e}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"n\":1e400}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"data\":[1,-1e400]}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\"} x", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\"}{}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",}", "bad JSON");
    expect_bad("\"x\"", "bad JSON");
    expect_bad("", "bad JSON");
    expect_bad("  ", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"a", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"a\\", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"a\\u00", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"n\":-", "bad JSON");

    /* The text "\\u0000" (escaped backslash, then "u0000") is not an escape of NUL. */
    env = parse_exact("{\"specversion\":\"1.0\",\"id\":\"a\\\\u0000\",\"x\":\"\\\\\\\\u0000\"}",
                      err, sizeof(err));
    assert_non_null(env);
    assert_string_equal(env->id, "a\\u0000");
    assert_string_equal(sl_env_get_attr(env, "x"), "\\\\u0000");
    sl_env_unref(&env);

    /* Not NUL-terminated, trailing whitespace allowed, escapes and UTF-8 decoded. */
    env = parse_exact(" {\"specversion\":\"1.0\",\"id\":\"\\u00e9\\ud83d\\ude00\\/\\t\","
                      "\"data\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}\r\n\t ",
                      err, sizeof(err));
    assert_non_null(env);
    assert_string_equal(env->id, "\xc3\xa9\xf0\x9f\x98\x80/\t");
    assert_int_equal(env->data->len, 10);
    assert_memory_equal(env->data->data, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    sl_env_unref(&env);
    env = parse_exact("{\"specversion\":\"1.0\",\"id\":\"7\"}", err, sizeof(err));
    assert_non_null(env);
    sl_env_unref(&env);
    assert_null(parse_exact("{\"specversion\":\"1.0\",\"n\":12", err, sizeof(err)));
    assert_non_null(strstr(err, "bad JSON"));
    assert_null(parse_exact("[", err, sizeof(err)));
    assert_non_null(strstr(err, "bad JSON"));
    assert_null(parse_exact("{\"specversion\":\"1.0\",\"b\":tru", err, sizeof(err)));
    assert_non_null(strstr(err, "bad JSON"));

    /* The position is reported. */
    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\n\"id\":\"a\\u0000\"}"), err,
                              sizeof(err));
    assert_null(env);
    assert_non_null(strstr(err, "line 2"));
}

/* The string scan goes 16 bytes at a time: a byte that ends the plain run is found
 * at every position of a long string, in the wide loop and in its tail. */
static void test_strict_json_long_strings(void **state)
{
    static const struct {
        const char *ins;              /* put at position pos of a run of 'a' */
        const char *want;             /* decoded text at that position, NULL: bad JSON */
    } cases[] = {
        {"\x01", NULL}, {"\x1f", NULL}, {"\x80", NULL}, {"\xff", NULL},
        {"\xc3", NULL},                 /* truncated UTF-8 sequence */
        {"\x7f", "\x7f"},              /* DEL is allowed as it is */
        {"\xc3\xa9", "\xc3\xa9"}, {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
        {"\\n", "\n"}, {"\\\"", "\""}, {"\\u0041", "A"},
    };
    char json[200];
    char want[128];
    char err[200];

    (void)state;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int pos = 0; pos < 40; pos++) {
            struct sl_env *env;
            int n = snprintf(json, sizeof(json),
                             "{\"specversion\":\"1.0\",\"id\":\"%.*s%s%.*s\"}", pos,
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", cases[c].ins, 39 - pos,
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
            assert_true(n > 0 && (size_t)n < sizeof(json));
            env = ce_json_parse_event(json, (size_t)n, err, sizeof(err));
            if (cases[c].want == NULL) {
                assert_null(env);
                assert_non_null(strstr(err, "bad JSON"));
                continue;
            }
            assert_non_null(env);
            snprintf(want, sizeof(want), "%.*s%s%.*s", pos,
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", cases[c].want, 39 - pos,
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
            assert_string_equal(env->id, want);
            sl_env_unref(&env);
        }
    }
}

/* Parsing on short-lived threads: each thread's arena is its own, and is freed when
 * the thread exits (make asan's leak check fails otherwise). */
static void *parse_on_thread(void *arg)
{
    const char *batch = "[{\"specversion\":\"1.0\",\"id\":\"t1\",\"source\":\"/s\","
                        "\"type\":\"t\",\"data\":{\"k\":[1,2,3]}},"
                        "{\"specversion\":\"1.0\",\"id\":\"t2\",\"source\":\"/s\","
                        "\"type\":\"t\",\"data\":\"text\"}]";
    struct sl_env **envs = NULL;
    size_t n = 0;
    char err[200];
    int *ok = arg;

    for (int i = 0; i < 50; i++) {
        if (ce_json_parse_batch(batch, strlen(batch), 10, &envs, &n, err, sizeof(err)) != 0 ||
            n != 2 || strcmp(envs[1]->id, "t2") != 0) {
            *ok = 0;
        }
        ce_json_free_batch(&envs, n);
    }
    return NULL;
}

static void test_parse_on_threads(void **state)
{
    pthread_t th[3];
    int ok[3] = {1, 1, 1};

    (void)state;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, parse_on_thread, &ok[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(ok[i], 1);
    }
}

static void test_duplicates(void **state)
{
    char err[200] = "";
    struct sl_env **envs = NULL;
    size_t n = 0;

    (void)state;
    expect_bad("{\"specversion\":\"1.0\",\"id\":\"a\",\"id\":\"b\"}", "duplicate member \"id\"");
    expect_bad("{\"id\":\"a\",\"specversion\":\"1.0\",\"id\":\"a\"}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"data\":1,\"data\":2}", "duplicate member \"data\"");
    expect_bad("{\"specversion\":\"1.0\",\"data_base64\":\"AA==\",\"data_base64\":\"AA==\"}",
               "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"offset\":1,\"offset\":2}", "bad JSON");
    expect_bad("{\"specversion\":\"1.0\",\"traceid\":\"a\",\"traceid\":1}",
               "duplicate member \"traceid\"");
    /* Repeated names inside data are the payload's business. */
    {
        struct sl_env *env = ce_json_parse_event(
            J("{\"specversion\":\"1.0\",\"data\":{\"k\":1,\"k\":2}}"), err, sizeof(err));
        assert_non_null(env);
        assert_int_equal(env->data->len, strlen("{\"k\":1,\"k\":2}"));
        assert_memory_equal(env->data->data, "{\"k\":1,\"k\":2}", env->data->len);
        sl_env_unref(&env);
    }
    /* In a batch, the event is named and the error stays "bad JSON" first. */
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\"},"
                                           "{\"specversion\":\"1.0\",\"type\":\"a\",\"type\":\"a\"}]"),
                                         10, &envs, &n, err, sizeof(err)),
                     -EINVAL);
    assert_null(envs);
    assert_int_equal(strncmp(err, "bad JSON in event 1", 19), 0);
}

static void test_number_extensions(void **state)
{
    char err[200] = "";
    const char *src = "{\"specversion\":\"1.0\",\"a\":42,\"b\":-7,\"c\":9007199254740992,"
                      "\"d\":-9007199254740992,\"e\":0,\"f\":-0,\"g\":1.5,\"h\":0.1,"
                      "\"i\":1e2,\"j\":7.0,\"k\":1e300,\"l\":false,\"m\":null,\"o\":2.5e-3}";
    struct sl_env *env = ce_json_parse_event(J(src), err, sizeof(err));

    (void)state;
    assert_non_null(env);
    assert_string_equal(sl_env_get_attr(env, "a"), "42");
    assert_string_equal(sl_env_get_attr(env, "b"), "-7");
    assert_string_equal(sl_env_get_attr(env, "c"), "9007199254740992");
    assert_string_equal(sl_env_get_attr(env, "d"), "-9007199254740992");
    assert_string_equal(sl_env_get_attr(env, "e"), "0");
    assert_string_equal(sl_env_get_attr(env, "f"), "0");
    assert_string_equal(sl_env_get_attr(env, "g"), "1.5");
    assert_string_equal(sl_env_get_attr(env, "h"), "0.10000000000000001");   /* %.17g */
    assert_string_equal(sl_env_get_attr(env, "i"), "100");
    assert_string_equal(sl_env_get_attr(env, "j"), "7");
    assert_string_equal(sl_env_get_attr(env, "k"), "1.0000000000000001e+300");
    assert_string_equal(sl_env_get_attr(env, "l"), "false");
    assert_null(sl_env_get_attr(env, "m"));
    assert_string_equal(sl_env_get_attr(env, "o"), "0.0025000000000000001");
    sl_env_unref(&env);
}

static void test_nested_data_round_trip(void **state)
{
    char err[200] = "";
    const char *data = "{\"a\":{\"b\":[1,-2,3.5,true,false,null,{\"c\":\"x\\ny\\\"z\\u00e9\"}]},"
                       "\"e\":[],\"f\":{},\"g\":\"\\u001f\"}";
    char src[512];
    struct sl_env *env;
    json_t *want;
    json_t *o;

    (void)state;
    snprintf(src, sizeof(src), "{\"specversion\":\"1.0\",\"id\":\"n1\",\"data\" : %s }", data);
    env = ce_json_parse_event(J(src), err, sizeof(err));
    assert_non_null(env);
    assert_string_equal(env->datacontenttype, "application/json");
    /* The sender's bytes of the value, without the whitespace around it. */
    assert_int_equal(env->data->len, strlen(data));
    assert_memory_equal(env->data->data, data, env->data->len);
    want = json_loads(data, 0, NULL);
    assert_non_null(want);
    {
        json_t *got = json_loadb((const char *)env->data->data, env->data->len, 0, NULL);
        assert_non_null(got);
        assert_true(json_equal(got, want));
        json_decref(got);
    }
    /* And back out through the encoder as the same JSON value under "data". */
    o = out_of(env);
    assert_true(json_equal(json_object_get(o, "data"), want));
    assert_string_equal(json_string_value(json_object_get(o, "id")), "n1");
    json_decref(o);
    json_decref(want);
    sl_env_unref(&env);

    /* Scalar data values are JSON text too; null is "null". */
    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"data\":null}"), err, sizeof(err));
    assert_non_null(env);
    assert_int_equal(env->data->len, 4);
    assert_memory_equal(env->data->data, "null", 4);
    assert_string_equal(env->datacontenttype, "application/json");
    sl_env_unref(&env);
    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"data\":[],\"datacontenttype\":"
                                "\"text/plain\"}"),
                              err, sizeof(err));
    assert_non_null(env);
    assert_memory_equal(env->data->data, "[]", 2);
    assert_string_equal(env->datacontenttype, "text/plain");
    sl_env_unref(&env);
}

/* env->data is exactly want (strlen bytes). */
static void assert_data(const struct sl_env *env, const char *want)
{
    assert_non_null(env);
    assert_non_null(env->data);
    if (env->data->len != strlen(want) || memcmp(env->data->data, want, env->data->len) != 0) {
        fail_msg("data is \"%.*s\", want \"%s\"", (int)env->data->len,
                 (const char *)env->data->data, want);
    }
}

/* Parse {"specversion":"1.0",<members>} from an exact-size copy; data must be want. */
static void expect_data(const char *members, const char *want)
{
    char src[1024];
    char err[200] = "";
    struct sl_env *env;

    snprintf(src, sizeof(src), "{\"specversion\":\"1.0\",%s}", members);
    env = parse_exact(src, err, sizeof(err));
    if (env == NULL) {
        fail_msg("%s: %s", src, err);
    }
    assert_data(env, want);
    sl_env_unref(&env);
}

static void test_raw_data(void **state)
{
    char err[200] = "";
    struct sl_env *env;

    (void)state;
    /* Integers beyond 2^53 keep every digit (a double would round them). */
    expect_data("\"data\":{\"id\":12345678901234567890123}",
                "{\"id\":12345678901234567890123}");
    expect_data("\"data\":12345678901234567890123", "12345678901234567890123");
    expect_data("\"data\":-9007199254740993", "-9007199254740993");
    /* Numbers are stored as written, not re-spelled. */
    expect_data("\"data\":1.0", "1.0");
    expect_data("\"data\":1e2", "1e2");
    expect_data("\"data\":0.1", "0.1");
    expect_data("\"data\":[1.0,1e2,0.1,-0,1E+2,2.50]", "[1.0,1e2,0.1,-0,1E+2,2.50]");
    expect_data("\"data\":true", "true");
    expect_data("\"data\":false,\"id\":\"x\"", "false");
    /* Whitespace inside an object or array is kept as sent; around the value it is not. */
    expect_data("\"data\" :\r\n { \"a\" : [ 1 ,\n\t2 ] , \"b\":{ } }\n ,\"id\":\"x\"",
                "{ \"a\" : [ 1 ,\n\t2 ] , \"b\":{ } }");
    expect_data("\"id\":\"x\",\"data\": [ ] ", "[ ]");
    /* Escapes inside nested strings are not decoded, key order and repeats are kept. */
    expect_data("\"data\":{\"z\":\"\\u00e9\\/\\n\",\"a\":1,\"z\":2}",
                "{\"z\":\"\\u00e9\\/\\n\",\"a\":1,\"z\":2}");
    /* Nested arrays and objects, with "data" members, brackets and commas in strings. */
    expect_data("\"data\":[[[]],{\"data\":{\"data\":[1,{\"x\":\"},]\\\"{\"}]}},[{}]],"
                "\"type\":\"t\"",
                "[[[]],{\"data\":{\"data\":[1,{\"x\":\"},]\\\"{\"}]}},[{}]]");
    expect_data("\"ext\":\"data\",\"subject\":\"data\",\"data\":[\"data\"]", "[\"data\"]");
    /* A JSON string under a JSON content type is the sender's JSON text too. */
    expect_data("\"datacontenttype\":\"application/json\",\"data\":\"caf\\u00e9 \\/\"",
                "\"caf\\u00e9 \\/\"");
    /* A text string is still stored decoded. */
    expect_data("\"data\":\"caf\\u00e9 \\/\"", "caf\xc3\xa9 /");

    /* A member name is compared unescaped: "d\u0061ta" is "data". */
    expect_data("\"d\\u0061ta\":{\"n\":1.50}", "{\"n\":1.50}");
    expect_data("\"\\u0064\\u0061\\u0074\\u0061\" : [ 1e2 ]", "[ 1e2 ]");
    expect_bad("{\"specversion\":\"1.0\",\"data\":7,\"d\\u0061t\\u0041\":5}",
               "extension name \"datA\"");
    expect_bad("{\"specversion\":\"1.0\",\"d\\u0061ta\":1,\"data\":2}",
               "duplicate member \"data\"");
    /* A name that only starts like "data" is an extension. */
    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"datax\":1,\"d\\u0061tay\":2}"), err,
                              sizeof(err));
    assert_non_null(env);
    assert_null(env->data);
    assert_string_equal(sl_env_get_attr(env, "datax"), "1");
    assert_string_equal(sl_env_get_attr(env, "datay"), "2");
    sl_env_unref(&env);
    /* Out-of-range numbers are still refused. */
    expect_bad("{\"specversion\":\"1.0\",\"data\":{\"n\":1e400}}", "bad JSON");
}

static void test_raw_data_batch(void **state)
{
    char err[200] = "";
    struct sl_env **envs = NULL;
    size_t n = 0;
    const char *src =
        " [ {\"specversion\":\"1.0\",\"data\":{\"id\":12345678901234567890123}} ,\n"
        "[1,{\"data\":2}],"
        "{\"data\" : [ 1.0 , { \"data\" : 0.1 } ] ,\"specversion\":\"1.0\"},"
        "{\"specversion\":\"1.0\"},"
        "{\"specversion\":\"1.0\",\"data\":\"t\\u00e9xt\"},"
        "{\"specversion\":\"1.0\",\"d\\u0061ta\":1e2},"
        "{\"specversion\":\"1.0\",\"ext\":{\"data\":1},\"data\":null}"
        " ] ";
    char *copy;

    (void)state;
    /* Element 1 is not an object: refused, but it must not shift the others' spans. */
    assert_int_equal(ce_json_parse_batch(J(src), 10, &envs, &n, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "event 1: a CloudEvent must be a JSON object"));

    /* The same without element 1 (and element 6's object extension), exact-size copy. */
    src = " [ {\"specversion\":\"1.0\",\"data\":{\"id\":12345678901234567890123}} ,\n"
          "{\"data\" : [ 1.0 , { \"data\" : 0.1 } ] ,\"specversion\":\"1.0\"},"
          "{\"specversion\":\"1.0\"},"
          "{\"specversion\":\"1.0\",\"data\":\"t\\u00e9xt\"},"
          "{\"specversion\":\"1.0\",\"d\\u0061ta\":1e2},"
          "{\"specversion\":\"1.0\",\"data\":null}"
          " ] ";
    copy = malloc(strlen(src));
    assert_non_null(copy);
    memcpy(copy, src, strlen(src));
    assert_int_equal(ce_json_parse_batch(copy, strlen(src), 10, &envs, &n, err, sizeof(err)), 0);
    free(copy);
    assert_int_equal(n, 6);
    assert_data(envs[0], "{\"id\":12345678901234567890123}");
    assert_data(envs[1], "[ 1.0 , { \"data\" : 0.1 } ]");
    assert_null(envs[2]->data);
    assert_data(envs[3], "t\xc3\xa9xt");
    assert_data(envs[4], "1e2");
    assert_data(envs[5], "null");
    ce_json_free_batch(&envs, n);

    /* More events than the first span allocation holds, each with its own data. */
    {
        char big[120 * 48 + 8];
        size_t used = 0;
        big[used++] = '[';
        for (int i = 0; i < 120; i++) {
            used += (size_t)snprintf(big + used, sizeof(big) - used,
                                     "%s{\"specversion\":\"1.0\",\"data\":[%d.0]}",
                                     i == 0 ? "" : ",", i);
        }
        big[used++] = ']';
        assert_int_equal(ce_json_parse_batch(big, used, 120, &envs, &n, err, sizeof(err)), 0);
        assert_int_equal(n, 120);
        for (int i = 0; i < 120; i++) {
            char want[16];
            snprintf(want, sizeof(want), "[%d.0]", i);
            assert_data(envs[i], want);
        }
        ce_json_free_batch(&envs, n);
    }
}

static void test_batch_more(void **state)
{
    char err[200] = "";
    struct sl_env **envs = NULL;
    size_t n = 0;
    char big[64 * 40 + 8];
    size_t used = 0;

    (void)state;
    /* Elements that are not objects are named; the rest of the rules apply per event. */
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\"},3]"), 10, &envs, &n,
                                         err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "event 1: a CloudEvent must be a JSON object"));
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\"}] ,"), 10, &envs, &n,
                                         err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(strncmp(err, "bad JSON", 8), 0);
    assert_int_equal(ce_json_parse_batch(J("\"[]\""), 10, &envs, &n, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(strncmp(err, "bad JSON", 8), 0);
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\",\"id\":\"\"}]"), 10,
                                         &envs, &n, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "event 0: attribute \"id\" must not be empty");
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\",\"data\":\"\\u0000\"}]"),
                                         10, &envs, &n, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(strncmp(err, "bad JSON", 8), 0);

    /* max_events is checked before any envelope is built, even with bad events in it. */
    big[used++] = '[';
    for (int i = 0; i < 40; i++) {
        used += (size_t)snprintf(big + used, sizeof(big) - used, "%s{\"id\":\"x\"}",
                                 i == 0 ? "" : ",");
    }
    big[used++] = ']';
    assert_int_equal(ce_json_parse_batch(big, used, 39, &envs, &n, err, sizeof(err)), -E2BIG);
    assert_null(envs);
    assert_int_equal(ce_json_parse_batch(big, used, 40, &envs, &n, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "event 0"));
}

/* Render an event whose datacontenttype is ct and payload data[0..len): the text. */
static char *render_data(const char *ct, const void *data, size_t len)
{
    struct sl_env *env = sl_env_new();
    char *text;

    assert_non_null(env);
    assert_int_equal(sl_env_set_attr(env, "id", "r1", 2), 0);
    if (ct != NULL) {
        assert_int_equal(sl_env_set_attr(env, "datacontenttype", ct, strlen(ct)), 0);
    }
    assert_int_equal(sl_env_set_data(env, data, len), 0);
    text = render(env);
    sl_env_unref(&env);
    return text;
}

/* The rendered event for (ct, data) must end in exactly tail. */
static void expect_render_tail(const char *ct, const char *data, const char *tail)
{
    char *text = render_data(ct, data, strlen(data));
    size_t n = strlen(text);
    size_t t = strlen(tail);

    if (n < t || strcmp(text + n - t, tail) != 0) {
        fail_msg("rendered %s, want it to end in %s", text, tail);
    }
    free(text);
}

static void test_render_raw_data(void **state)
{
    char *text;

    (void)state;
    /* JSON payloads come out byte for byte: no rounding, no re-spelling. */
    text = render_data("application/json", J("{\"id\":12345678901234567890123}"));
    assert_string_equal(text, "{\"specversion\":\"1.0\",\"id\":\"r1\",\"datacontenttype\":"
                              "\"application/json\",\"data\":{\"id\":12345678901234567890123}}");
    free(text);
    expect_render_tail("application/json", "1e2", ",\"data\":1e2}");
    expect_render_tail("application/json", "0.1", ",\"data\":0.1}");
    expect_render_tail("application/json", "[1.0,1E+2,-0,2.50]", ",\"data\":[1.0,1E+2,-0,2.50]}");
    expect_render_tail("application/cloudevents+json; charset=utf-8",
                       "{ \"a\" : [ 1 ,\n\t2 ] ,\"z\":\"\\u00e9\\/\",\"z\":1 }",
                       ",\"data\":{ \"a\" : [ 1 ,\n\t2 ] ,\"z\":\"\\u00e9\\/\",\"z\":1 }}");
    expect_render_tail("text/json", " null\n", ",\"data\": null\n}");
    expect_render_tail("application/json", "\"s\"", ",\"data\":\"s\"}");
    /* A JSON type whose payload the decoder would refuse: a string, as before. */
    expect_render_tail("application/json", "{nope", ",\"data\":\"{nope\"}");
    expect_render_tail("application/json", "01", ",\"data\":\"01\"}");
    expect_render_tail("application/json", "[1e400]", ",\"data\":\"[1e400]\"}");
    expect_render_tail("application/json", "{} {}", ",\"data\":\"{} {}\"}");
    expect_render_tail("application/json", "[\"\\u0000\"]", ",\"data\":\"[\\\"\\\\u0000\\\"]\"}");
    expect_render_tail("application/json", "", ",\"data\":\"\"}");
    /* Not a JSON type: JSON-looking text is a string. */
    expect_render_tail("text/plain", "{\"n\":1e2}", ",\"data\":\"{\\\"n\\\":1e2}\"}");
    /* Every output is one JSON object that the decoder takes back. */
    {
        const char *payloads[] = {"1e2", "[1,2", "\xff", "{\"a\":\"\xc3\"}", "\x01", "tru",
                                  "12345678901234567890123", " [ ] "};
        for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
            char err[200] = "";
            struct sl_env *env;
            text = render_data("application/json", payloads[i], strlen(payloads[i]));
            env = ce_json_parse_event(text, strlen(text), err, sizeof(err));
            if (env == NULL) {
                fail_msg("rendered %s does not parse: %s", text, err);
            }
            sl_env_unref(&env);
            free(text);
        }
    }
}

static void test_render_text_and_base64(void **state)
{
    const uint8_t bin[4] = {0xff, 0x00, 0x01, 0x80};
    char *text;

    (void)state;
    expect_render_tail("text/plain", "caf\xc3\xa9\t\"q\"\n",
                       ",\"data\":\"caf\xc3\xa9\\t\\\"q\\\"\\n\"}");
    expect_render_tail(NULL, "plain", ",\"data\":\"plain\"}");
    text = render_data("application/octet-stream", bin, sizeof(bin));
    assert_non_null(strstr(text, ",\"data_base64\":\"/wABgA==\"}"));
    assert_null(strstr(text, "\"data\""));
    free(text);
    /* Invalid UTF-8 or control bytes under a JSON type: base64 too. */
    text = render_data("application/json", "\"\xc3\"", 3);
    assert_non_null(strstr(text, "\"data_base64\":\"IsMi\""));
    free(text);
}

static void add_hdr(struct sl_env *env, const char *name, const void *v, int32_t len)
{
    assert_int_equal(sl_env_add_header(env, name, v, len), 0);
}

static void test_render_headers(void **state)
{
    struct sl_env *env = sl_env_new();
    char *text;
    json_t *o;
    json_t *h;

    (void)state;
    assert_int_equal(sl_env_set_attr(env, "id", "h1", 2), 0);
    /* No headers: no "headers" member. */
    text = render(env);
    assert_null(strstr(text, "headers"));
    free(text);
    add_hdr(env, "device", "d-17", 4);
    add_hdr(env, "unit", "celsius", 7);
    add_hdr(env, "device", "again", 5);
    add_hdr(env, "nothing", NULL, -1);
    add_hdr(env, "bin", "\xff\x00\x01", 3);
    add_hdr(env, "nul", "a\0b", 3);
    add_hdr(env, "empty", "", 0);
    add_hdr(env, "caf\xc3\xa9", "\xc3\xa9t\xc3\xa9\n", 6);
    add_hdr(env, "bad\xff", "skipped", 7);
    assert_int_equal(sl_env_set_data(env, "{\"n\":1e2}", 9), 0);
    assert_int_equal(sl_env_set_attr(env, "datacontenttype", "application/json", 16), 0);
    text = render(env);
    assert_string_equal(
        text, "{\"specversion\":\"1.0\",\"id\":\"h1\",\"datacontenttype\":\"application/json\","
              "\"headers\":[{\"name\":\"device\",\"value\":\"d-17\"},"
              "{\"name\":\"unit\",\"value\":\"celsius\"},"
              "{\"name\":\"device\",\"value\":\"again\"},"
              "{\"name\":\"nothing\",\"value\":null},"
              "{\"name\":\"bin\",\"value_base64\":\"/wAB\"},"
              "{\"name\":\"nul\",\"value_base64\":\"YQBi\"},"
              "{\"name\":\"empty\",\"value\":\"\"},"
              "{\"name\":\"caf\xc3\xa9\",\"value\":\"\xc3\xa9t\xc3\xa9\\n\"}],"
              "\"data\":{\"n\":1e2}}");
    free(text);
    o = out_of(env);
    h = json_object_get(o, "headers");
    assert_int_equal(json_array_size(h), 8);
    json_decref(o);
    sl_env_unref(&env);
}

static void test_parse_headers(void **state)
{
    char err[200] = "";
    const char *src = "{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":\"1\"},"
                      "{\"value\":null,\"name\":\"b\"},{\"name\":\"a\",\"value_base64\":\"/wAB\"},"
                      "{\"name\":\"\",\"value\":\"\"}],\"data\":1}";
    struct sl_env *env = ce_json_parse_event(J(src), err, sizeof(err));
    struct sl_env **envs = NULL;
    size_t n = 0;

    (void)state;
    assert_non_null(env);
    assert_null(sl_env_get_attr(env, "headers"));
    assert_int_equal(env->n_ext, 0);
    assert_int_equal(env->n_headers, 4);
    assert_string_equal(env->headers[0].name, "a");
    assert_int_equal(env->headers[0].value->len, 1);
    assert_memory_equal(env->headers[0].value->data, "1", 1);
    assert_string_equal(env->headers[1].name, "b");
    assert_null(env->headers[1].value);
    assert_string_equal(env->headers[2].name, "a");
    assert_int_equal(env->headers[2].value->len, 3);
    assert_memory_equal(env->headers[2].value->data, "\xff\x00\x01", 3);
    assert_string_equal(env->headers[3].name, "");
    assert_int_equal(env->headers[3].value->len, 0);
    sl_env_unref(&env);

    env = ce_json_parse_event(J("{\"specversion\":\"1.0\",\"headers\":[]}"), err, sizeof(err));
    assert_non_null(env);
    assert_int_equal(env->n_headers, 0);
    sl_env_unref(&env);

    /* The shape is strict; a shape error is not "bad JSON" (REST: bad_event). */
    expect_bad("{\"specversion\":\"1.0\",\"headers\":{}}", "\"headers\" must be an array");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":null}", "\"headers\" must be an array");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":\"x\"}", "\"headers\" must be an array");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[1]}", "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\"}]}", "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":\"1\"},"
               "{\"value\":\"1\"}]}",
               "header 1: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":1,\"value\":\"1\"}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":1}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":[]}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":\"1\","
               "\"value_base64\":\"AA==\"}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value_base64\":null}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value_base64\":\"A\"}]}",
               "header 0: bad value_base64");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":\"1\","
               "\"x\":1}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"value\":\"1\","
               "\"value\":\"2\"}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[{\"name\":\"a\",\"name\":\"b\","
               "\"value\":\"2\"}]}",
               "header 0: want");
    expect_bad("{\"specversion\":\"1.0\",\"headers\":[],\"headers\":[]}",
               "bad JSON: duplicate member \"headers\"");
    {
        char msg[200] = "";
        assert_null(ce_json_parse_event(J("{\"specversion\":\"1.0\",\"headers\":[[]]}"), msg,
                                        sizeof(msg)));
        assert_int_not_equal(strncmp(msg, "bad JSON", 8), 0);
    }

    /* Batch mode too, the failing event named. */
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\",\"headers\":[{\"name\":"
                                           "\"k\",\"value\":\"v\"}]},{\"specversion\":\"1.0\"}]"),
                                         10, &envs, &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(envs[0]->n_headers, 1);
    assert_string_equal(envs[0]->headers[0].name, "k");
    assert_memory_equal(envs[0]->headers[0].value->data, "v", 1);
    assert_int_equal(envs[1]->n_headers, 0);
    ce_json_free_batch(&envs, n);
    assert_int_equal(ce_json_parse_batch(J("[{\"specversion\":\"1.0\"},{\"specversion\":\"1.0\","
                                           "\"headers\":[{\"name\":\"k\"}]}]"),
                                         10, &envs, &n, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "event 1: header 0: want"));
}

static void assert_buf_equal(const struct sl_buf *a, const struct sl_buf *b)
{
    if (a == NULL || b == NULL) {
        assert_true(a == NULL && b == NULL);
        return;
    }
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

static void assert_str_same(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        assert_true(a == NULL && b == NULL);
        return;
    }
    assert_string_equal(a, b);
}

/* Same attributes, extensions, headers (in order) and payload bytes. */
static void assert_env_equal(const struct sl_env *a, const struct sl_env *b)
{
    assert_str_same(a->id, b->id);
    assert_str_same(a->source, b->source);
    assert_str_same(a->type, b->type);
    assert_str_same(a->subject, b->subject);
    assert_str_same(a->time, b->time);
    assert_str_same(a->datacontenttype, b->datacontenttype);
    assert_str_same(a->dataschema, b->dataschema);
    assert_int_equal(a->n_ext, b->n_ext);
    for (size_t i = 0; i < a->n_ext; i++) {
        assert_string_equal(a->ext[i].name, b->ext[i].name);
        assert_string_equal(a->ext[i].value, b->ext[i].value);
    }
    assert_int_equal(a->n_headers, b->n_headers);
    for (size_t i = 0; i < a->n_headers; i++) {
        assert_string_equal(a->headers[i].name, b->headers[i].name);
        assert_buf_equal(a->headers[i].value, b->headers[i].value);
    }
    assert_buf_equal(a->data, b->data);
}

static void test_render_round_trip(void **state)
{
    const char *srcs[] = {
        "{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"/s\",\"type\":\"t\","
        "\"subject\":\"x/y\",\"time\":\"2024-01-02T03:04:05.678Z\",\"dataschema\":\"urn:s\","
        "\"traceid\":\"abc\",\"n\":7,\"headers\":[{\"name\":\"device\",\"value\":\"d-17\"},"
        "{\"name\":\"unit\",\"value\":\"celsius\"},{\"name\":\"device\",\"value\":\"again\"},"
        "{\"name\":\"z\",\"value\":null},{\"name\":\"b\",\"value_base64\":\"AP8=\"}],"
        "\"data\":{\"id\":12345678901234567890123, \"f\" : [1e2, 0.1, 1.0]}}",
        "{\"specversion\":\"1.0\",\"id\":\"b\",\"data\":\"caf\xc3\xa9\\n\"}",
        "{\"specversion\":\"1.0\",\"id\":\"c\",\"datacontenttype\":\"application/json\","
        "\"data\":\"str\"}",
        "{\"specversion\":\"1.0\",\"id\":\"d\",\"data_base64\":\"AAECAwT/\"}",
        "{\"specversion\":\"1.0\",\"id\":\"e\",\"datacontenttype\":\"text/json\","
        "\"data_base64\":\"WzEsIDJd\"}",
        "{\"specversion\":\"1.0\",\"id\":\"f\",\"headers\":[]}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        char err[200] = "";
        struct sl_env *env = ce_json_parse_event(J(srcs[i]), err, sizeof(err));
        struct sl_env *again;
        char *text;
        char *text2;
        if (env == NULL) {
            fail_msg("%s: %s", srcs[i], err);
        }
        text = render(env);
        again = ce_json_parse_event(text, strlen(text), err, sizeof(err));
        if (again == NULL) {
            fail_msg("rendered %s: %s", text, err);
        }
        assert_env_equal(env, again);
        text2 = render(again);
        assert_string_equal(text, text2);
        free(text2);
        free(text);
        sl_env_unref(&again);
        sl_env_unref(&env);
    }

    /* The exception (the output rules kept from before): a payload under a JSON type that
     * is not JSON comes out as a string, which the decoder then stores as JSON text. */
    {
        char err[200] = "";
        char *text = render_data("text/json", "{} //", 5);
        struct sl_env *again = ce_json_parse_event(text, strlen(text), err, sizeof(err));
        assert_non_null(again);
        assert_data(again, "\"{} //\"");
        sl_env_unref(&again);
        free(text);
        /* And whitespace around a JSON payload is written out but not part of the value. */
        text = render_data("application/json", "[1, 2]\n", 7);
        again = ce_json_parse_event(text, strlen(text), err, sizeof(err));
        assert_non_null(again);
        assert_data(again, "[1, 2]");
        sl_env_unref(&again);
        free(text);
    }
}

/* Every member name the decoder knows is recognised (a second one is a duplicate), and
 * a name of the same length that differs in its first or last letter is an extension. */
static void test_member_names(void **state)
{
    static const struct {
        const char *name;
        const char *value;
        const char *near[2];       /* same length, other names: extensions */
    } known[] = {
        {"specversion", "\"1.0\"", {"xpecversion", "specversiox"}},
        {"data", "1", {"xata", "datx"}},
        {"data_base64", "\"AA==\"", {"xata0base64", "data0base6x"}},
        {"offset", "1", {"xffset", "offsex"}},
        {"partition", "1", {"xartition", "partitiox"}},
        {"id", "\"a\"", {"xd", "ix"}},
        {"source", "\"a\"", {"xource", "sourcx"}},
        {"type", "\"a\"", {"xype", "typx"}},
        {"subject", "\"a\"", {"xubject", "subjecx"}},
        {"time", "\"2020-01-01T00:00:00Z\"", {"xime", "timx"}},
        {"datacontenttype", "\"a/b\"", {"xatacontenttype", "datacontenttypx"}},
        {"dataschema", "\"a\"", {"xataschema", "dataschemx"}},
        {"headers", "[]", {"xeaders", "headerx"}},
    };
    char text[256];
    char err[200];
    char want[64];

    (void)state;
    for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
        struct sl_env *env;
        const char *sv = strcmp(known[k].name, "specversion") == 0 ? "" : "\"specversion\":\"1.0\",";

        snprintf(text, sizeof(text), "{%s\"%s\":%s,\"%s\":%s}", sv, known[k].name,
                 known[k].value, known[k].name, known[k].value);
        snprintf(want, sizeof(want), "duplicate member \"%s\"", known[k].name);
        expect_bad(text, want);
        for (int j = 0; j < 2; j++) {
            snprintf(text, sizeof(text), "{\"specversion\":\"1.0\",\"%s\":\"v\"}",
                     known[k].near[j]);
            env = ce_json_parse_event(text, strlen(text), err, sizeof(err));
            assert_non_null(env);
            assert_string_equal(sl_env_get_attr(env, known[k].near[j]), "v");
            sl_env_unref(&env);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_event),
        cmocka_unit_test(test_lenient_id_source_type),
        cmocka_unit_test(test_text_and_base64_data),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_is_json_type),
        cmocka_unit_test(test_output),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_strict_json),
        cmocka_unit_test(test_strict_json_long_strings),
        cmocka_unit_test(test_parse_on_threads),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_number_extensions),
        cmocka_unit_test(test_nested_data_round_trip),
        cmocka_unit_test(test_batch_more),
        cmocka_unit_test(test_raw_data),
        cmocka_unit_test(test_raw_data_batch),
        cmocka_unit_test(test_render_raw_data),
        cmocka_unit_test(test_render_text_and_base64),
        cmocka_unit_test(test_render_headers),
        cmocka_unit_test(test_parse_headers),
        cmocka_unit_test(test_render_round_trip),
        cmocka_unit_test(test_member_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

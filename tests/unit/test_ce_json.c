/* CloudEvents JSON format <-> envelope (gateway/ce_json.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

static json_t *out_of(struct sl_env *env)
{
    json_t *o = ce_json_from_env(env);
    assert_non_null(o);
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
    text = json_dumps(o, JSON_COMPACT);
    assert_non_null(text);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * CloudEvents JSON event format (structured content mode and batch mode) <-> the
 * envelope. Pure: json_scan (decoding, one pass over the text: no tree is built, and
 * strings without escapes are read where they lie), jansson (encoding) and OpenSSL's
 * base64 only, no I/O; any thread.
 *
 * Parsing rules (structured mode):
 * - The input is strict RFC 8259 JSON (an object, or for a batch an array, and nothing
 *   after it but whitespace), UTF-8, nested at most 1000 deep (JS_MAX_DEPTH). Strings
 *   must not contain \u0000 (envelope attributes and text payloads are C strings).
 * - The event must be a JSON object; "specversion" is required and must be "1.0".
 * - A member name that occurs twice in the event object (an attribute such as "id", an
 *   extension, "data", "data_base64", "headers", "offset" or "partition") is rejected as
 *   bad JSON: the sender's intent is ambiguous. Null-valued extensions are ignored, so a repeated
 *   one goes unnoticed; objects nested inside "data" may repeat names (kept as sent).
 * - id, source and type are lenient: a missing one is left NULL, to be filled by
 *   sl_env_finalize at publish time. A present one must be a non-empty string.
 * - subject, time (RFC 3339), datacontenttype, dataschema must be strings when present.
 * - "data" and "data_base64" are mutually exclusive. data_base64 must be valid base64.
 *   A JSON string under "data" whose datacontenttype is not JSON is stored as its UTF-8
 *   bytes (and datacontenttype defaults to "text/plain; charset=utf-8"); any other data
 *   value (or a string under a JSON datacontenttype) is stored as the sender's bytes of
 *   that value, from its first byte to its last, unchanged (datacontenttype defaults to
 *   "application/json"): numbers keep their spelling and every digit (1.0, 1e2,
 *   12345678901234567890123), escapes in strings stay escaped, and whitespace inside an
 *   object or array is kept as sent (only the whitespace around the value is not part of
 *   it). A member name is matched after unescaping: "d\u0061ta" is "data".
 * - A number too large for a double (1e400) anywhere in the text is bad JSON, as it is
 *   for jansson (before 2026-11-26 only in data or an extension).
 * - "headers" is a sluice member, not a CloudEvents attribute (so not an extension): the
 *   envelope's ordered headers (record headers; MQTT 5 user properties, mqtt-* headers
 *   and the like), an array, in order, of {"name": N, "value": V} (V a string, or null
 *   for a null value) or {"name": N, "value_base64": B}. The shape is strict: each entry
 *   an object with a string "name" and exactly one of "value" / "value_base64" and no
 *   other member, B valid base64; anything else is a bad event ("header 2: ..."). Each
 *   entry is appended with sl_env_add_header. Names may repeat.
 * - Every other member is an extension: name [a-z0-9]{1,20}, value a string, number or
 *   boolean (stored as text: integers up to 2^53 in decimal, "42", "-7"; other numbers
 *   as "%.17g"); null members are ignored. The members "offset" and "partition" (which
 *   reads add) are ignored so that read output can be re-posted.
 *   The "partitionkey" extension is kept as an extension; callers may use it as the key.
 *
 * Output rules (reads): specversion, the attributes that are set (id defaults to
 * "<partition>-<offset>" for records without one), extensions, for records read from the
 * log "partition", "offset" and, when the key is UTF-8, "partitionkey"; then "headers"
 * when env has any (as above: "value" when the value is UTF-8 without NUL bytes,
 * "value_base64" otherwise, null for a null value; a header whose name is not UTF-8 is
 * left out); then data, last:
 * - when datacontenttype is JSON and the payload is one JSON value as the decoder
 *   accepts it (json_scan's strict RFC 8259, finite numbers; whitespace around
 *   it allowed), "data" is the stored bytes verbatim: numbers keep their spelling and
 *   every digit (12345678901234567890123, 1e2, 0.1), whitespace and escapes stay;
 * - else when the payload is UTF-8 text (no control characters but tab, CR, LF),
 *   "data" is it as a JSON string;
 * - else "data_base64".
 * An attribute or extension whose value is not UTF-8 is left out. An event read back
 * can be posted again unchanged: its payload and headers come back byte for byte, but
 * for a payload under a JSON type that is not JSON (rendered as a string, which the
 * decoder then stores as JSON text, quotes and escapes included) and for whitespace
 * around a JSON payload (written out, but the decoder keeps the value only).
 */
#ifndef SL_CE_JSON_H
#define SL_CE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/envelope.h"

/*
 * Parse one structured-mode event from json[0..len). Borrows json. Returns a new
 * envelope (one reference, caller unrefs), or NULL with a message in err (errsz bytes,
 * may be 0) on bad input or out of memory. Any thread.
 */
struct sl_env *ce_json_parse_event(const char *json, size_t len, char *err, size_t errsz);

/*
 * Parse a batch (a JSON array of events, at least 1 and at most max_events). On
 * success returns 0 and sets *out to a malloc'd array of *n new envelopes (free with
 * ce_json_free_batch). Each event is decoded as by ce_json_parse_event; an error in one
 * names it ("event 3: ..." or, for bad JSON, "bad JSON in event 3: ..."). On failure
 * returns -EINVAL (err says which event and why),
 * -E2BIG (too many events) or -ENOMEM, with *out NULL. Any thread.
 */
int ce_json_parse_batch(const char *json, size_t len, size_t max_events,
                        struct sl_env ***out, size_t *n, char *err, size_t errsz);

/* Unref every envelope and free the array; *envs set to NULL; NULL is a no-op. */
void ce_json_free_batch(struct sl_env ***envs, size_t n);

/* True for JSON media types: application/json, text/json, anything ending in "+json"
 * (parameters after ';' ignored, case-insensitive). NULL is false. */
bool ce_json_is_json_type(const char *content_type);

/* A growable text buffer the renderer appends to. Zero-initialise it; data (NULL while
 * empty) is kept NUL-terminated after len bytes; free with ce_json_buf_free, or take
 * data (malloc'd) and free it yourself. */
struct ce_json_buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Append p[0..n). 0, or -ENOMEM with b unchanged. Any thread. */
int ce_json_buf_add(struct ce_json_buf *b, const void *p, size_t n);
/* Free b's data and zero it; NULL is a no-op. */
void ce_json_buf_free(struct ce_json_buf *b);

/*
 * Append to out env as one structured-mode event, a compact JSON object, following the
 * output rules above. env is borrowed. 0, or -ENOMEM with out as it was. Any thread.
 */
int ce_json_render_event(const struct sl_env *env, struct ce_json_buf *out);

#endif

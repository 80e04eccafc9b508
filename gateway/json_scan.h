/*
 * A strict RFC 8259 JSON scanner over a buffer held in memory: it validates as it goes
 * and hands out the byte spans of values without building a tree, so a decoder can
 * read the few members it wants straight from the input. Pure, no allocation, any
 * thread; a struct js is used by one thread at a time.
 *
 * Strict means what jansson accepts (and cJSON, fed the same text, does not always):
 * UTF-8 only (no overlong forms, surrogates or code points above U+10FFFF, no BOM),
 * whitespace only space, tab, LF and CR, no control bytes in strings, only the escapes
 * \" \\ \/ \b \f \n \r \t \uXXXX, \u escapes with four hex digits and surrogates in
 * high-low pairs, no \u0000 (decoded strings are C strings), numbers by the grammar
 * ("01", "1.", "-.5", "1e" are errors) and finite as doubles (1e400 is an error),
 * containers nested at most JS_MAX_DEPTH deep, no trailing commas.
 *
 * The first error stops the scan: every call after it fails, and s->why / s->at keep
 * the reason and the offset of the offending byte (len for a premature end).
 */
#ifndef SL_JSON_SCAN_H
#define SL_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#define JS_MAX_DEPTH 1000

enum js_type { JS_STRING, JS_NUMBER, JS_TRUE, JS_FALSE, JS_NULL, JS_OBJECT, JS_ARRAY };

struct js {
    const unsigned char *p;
    size_t len;
    size_t i;                 /* the next byte to read */
    unsigned depth;           /* containers opened with js_open and not yet closed */
    const char *why;          /* the first error, NULL while there is none */
    size_t at;                /* its offset */
};

/* A value's bytes in the input: p[start..end). For a string, what is between the quotes
 * (escapes undecoded; escaped says whether there are any); for anything else, the whole
 * value, from its first byte to its last. */
struct js_val {
    enum js_type type;
    bool escaped;
    size_t start;
    size_t end;
};

/* Start scanning p[0..len) (borrowed; need not be NUL-terminated). */
void js_init(struct js *s, const void *p, size_t len);

/* Record an error at offset at (only the first one counts). Returns false. */
bool js_fail(struct js *s, size_t at, const char *why);

/* Skip whitespace; the next byte, or -1 at the end of the input. */
int js_peek(struct js *s);

/* Scan one value (whitespace before it skipped), containers whole. True with *v set
 * and s->i just after it, or false (s->why set). */
bool js_value(struct js *s, struct js_val *v);

/* Step into the object or array that starts at the next byte, for js_member or
 * js_element. False if there is none or it would nest too deep. */
bool js_open(struct js *s);

/* In an object opened with js_open: 1 with the next member's name in *key and s->i at
 * its value (read it with js_value, or step into it with js_open), 0 once the closing
 * '}' is consumed, -1 on error. *first is true before the first call (it is cleared). */
int js_member(struct js *s, bool *first, struct js_val *key);

/* In an array opened with js_open: 1 with s->i at the next element, 0 once the closing
 * ']' is consumed, -1 on error. *first as for js_member. */
int js_element(struct js *s, bool *first);

/* True if nothing but whitespace is left; else false with the error "end of input
 * expected". */
bool js_end(struct js *s);

/* The string v (JS_STRING) of s's input decoded into out, which must have room for
 * v->end - v->start + 1 bytes (decoding never lengthens a string). NUL-terminated;
 * returns the length. */
size_t js_decode(const struct js *s, const struct js_val *v, char *out);

/* The number v (JS_NUMBER) as a double (finite: the scanner refused any other). */
double js_number(const struct js *s, const struct js_val *v);

/* 1-based line and column of offset at in text[0..len) (at <= len), for messages. */
void js_position(const void *text, size_t at, size_t *line, size_t *col);

#endif

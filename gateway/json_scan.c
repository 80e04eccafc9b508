#include "gateway/json_scan.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void js_init(struct js *s, const void *p, size_t len)
{
    s->p = p;
    s->len = len;
    s->i = 0;
    s->depth = 0;
    s->why = NULL;
    s->at = 0;
}

bool js_fail(struct js *s, size_t at, const char *why)
{
    if (s->why == NULL) {
        s->why = why;
        s->at = at;
    }
    return false;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static unsigned hex_val(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* The four hex digits at s[0..4) (checked by the caller) as a number. */
static unsigned hex4(const unsigned char *s)
{
    return hex_val(s[0]) << 12 | hex_val(s[1]) << 8 | hex_val(s[2]) << 4 | hex_val(s[3]);
}

/* js_peek without the error check (callers stop at the first error anyway): the next
 * non-blank byte or -1. Inline, as it runs before every token. */
static inline int peek(struct js *s)
{
    while (s->i < s->len) {
        unsigned char c = s->p[s->i];
        if (!is_ws(c)) {
            return c;
        }
        s->i++;
    }
    return -1;
}

int js_peek(struct js *s)
{
    return s->why != NULL ? -1 : peek(s);
}

/* 1 for the bytes a JSON string may hold as they are: printable ASCII but '"' and '\\'. */
static const unsigned char str_plain[256] = {
    [0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7f] = 1,
};

/* The first i' >= i with p[i'] not plain (or len). Sixteen bytes at a time with SSE2:
 * a byte stops the scan if it is '"', '\\', below 0x20 or at 0x80 and above (both
 * below 0x20 as signed bytes): exactly the bytes str_plain leaves out. */
static size_t skip_plain(const unsigned char *p, size_t i, size_t len)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);

    while (len - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                 _mm_cmpeq_epi8(v, bslash)),
                                    _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);

        if (mask != 0) {
            return i + (size_t)__builtin_ctz(mask);
        }
        i += 16;
    }
#endif
    while (i < len && str_plain[p[i]]) {
        i++;
    }
    return i;
}

/* Length of the strict UTF-8 sequence at s[0..n) (no overlongs, surrogates or code
 * points above U+10FFFF), or 0 if there is none. s[0] >= 0x80. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t need;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 1;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 2;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80;
        hi = s[0] == 0xed ? 0x9f : 0xbf;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 3;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;
        hi = s[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n <= need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t k = 2; k <= need; k++) {
        if ((s[k] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return need + 1;
}

/* True if s[0..n) starts with \uXXXX (four hex digits). */
static bool is_u_escape(const unsigned char *s, size_t n)
{
    return n >= 6 && s[0] == '\\' && s[1] == 'u' && is_hex(s[2]) && is_hex(s[3]) &&
           is_hex(s[4]) && is_hex(s[5]);
}

/* The escape at s[0] == '\\' (n bytes left): its length (a surrogate pair is one
 * escape of 12), or 0 with *why set. */
static size_t escape_len(const unsigned char *s, size_t n, const char **why)
{
    unsigned u;

    if (n >= 2 && s[1] != '\0' && strchr("\"\\/bfnrt", s[1]) != NULL) {
        return 2;
    }
    if (!is_u_escape(s, n)) {
        *why = "invalid escape";
        return 0;
    }
    u = hex4(s + 2);
    if (u == 0) {
        *why = "\\u0000 is not allowed";
        return 0;
    }
    if (u >= 0xdc00 && u <= 0xdfff) {
        *why = "unpaired surrogate escape";
        return 0;
    }
    if (u >= 0xd800 && u <= 0xdbff) {
        if (!is_u_escape(s + 6, n - 6) || hex4(s + 8) < 0xdc00 || hex4(s + 8) > 0xdfff) {
            *why = "unpaired surrogate escape";
            return 0;
        }
        return 12;
    }
    return 6;
}

/* The string starting at s->p[s->i] == '"'. */
static bool scan_string(struct js *s, struct js_val *v)
{
    const unsigned char *p = s->p;
    size_t len = s->len;
    size_t i = s->i + 1;
    const char *why = NULL;
    size_t k;

    v->type = JS_STRING;
    v->escaped = false;
    v->start = i;
    for (;;) {
        unsigned char c;

        i = skip_plain(p, i, len);
        if (i == len) {
            return js_fail(s, len, "unterminated string");
        }
        c = p[i];
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            k = escape_len(p + i, len - i, &why);
            v->escaped = true;
        } else if (c < 0x20) {
            why = "control character in a string";
            k = 0;
        } else {
            k = utf8_len(p + i, len - i);
            why = "invalid UTF-8";
        }
        if (k == 0) {
            return js_fail(s, i, why);
        }
        i += k;
    }
    v->end = i;
    s->i = i + 1;
    return true;
}

/* Length of the number token at s[0] (n bytes left) if it follows the JSON grammar and
 * is not followed by more number characters, else 0. *exp: whether it has an exponent. */
static size_t number_len(const unsigned char *s, size_t n, bool *exp)
{
    size_t i = 0;

    *exp = false;
    if (i < n && s[i] == '-') {
        i++;
    }
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && is_digit(s[i])) {
        while (i < n && is_digit(s[i])) {
            i++;
        }
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        if (++i >= n || !is_digit(s[i])) {
            return 0;
        }
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *exp = true;
        if (++i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        if (i >= n || !is_digit(s[i])) {
            return 0;
        }
        while (i < n && is_digit(s[i])) {
            i++;
        }
    }
    if (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == '+' || s[i] == '-' ||
                  s[i] == 'e' || s[i] == 'E')) {
        return 0;
    }
    return i;
}

/* strtod of the number token p[0..n) (grammar checked). False only when a copy of a
 * token longer than 127 bytes could not be allocated. */
static bool token_strtod(const unsigned char *p, size_t n, double *out)
{
    char tmp[128];
    char *buf = n < sizeof(tmp) ? tmp : malloc(n + 1);

    if (buf == NULL) {
        return false;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    if (buf != tmp) {
        free(buf);
    }
    return true;
}

/* The number starting at s->p[s->i]. */
static bool scan_number(struct js *s, struct js_val *v)
{
    const unsigned char *p = s->p + s->i;
    bool exp;
    size_t n = number_len(p, s->len - s->i, &exp);
    double d;

    if (n == 0) {
        return js_fail(s, s->i, "invalid number");
    }
    /* Below 1e300 unless it has an exponent or 300 digits: no strtod needed. */
    if (n >= 300 || exp) {
        if (!token_strtod(p, n, &d)) {
            return js_fail(s, s->i, "out of memory");
        }
        if (!isfinite(d)) {
            return js_fail(s, s->i, "number out of range");
        }
    }
    v->type = JS_NUMBER;
    v->escaped = false;
    v->start = s->i;
    v->end = s->i + n;
    s->i += n;
    return true;
}

/* true, false or null at s->p[s->i]. */
static bool scan_literal(struct js *s, struct js_val *v)
{
    static const struct {
        const char *text;
        size_t len;
        enum js_type type;
    } lit[] = {{"true", 4, JS_TRUE}, {"false", 5, JS_FALSE}, {"null", 4, JS_NULL}};
    const unsigned char *p = s->p + s->i;
    size_t left = s->len - s->i;

    for (size_t k = 0; k < sizeof(lit) / sizeof(lit[0]); k++) {
        if (p[0] == (unsigned char)lit[k].text[0]) {
            if (left < lit[k].len || memcmp(p, lit[k].text, lit[k].len) != 0) {
                break;
            }
            v->type = lit[k].type;
            v->escaped = false;
            v->start = s->i;
            v->end = s->i + lit[k].len;
            s->i += lit[k].len;
            return true;
        }
    }
    return js_fail(s, s->i, "value expected");
}

/* A scalar at s->p[s->i] (not at the end of the input). */
static bool scan_scalar(struct js *s, struct js_val *v)
{
    unsigned char c = s->p[s->i];

    if (c == '"') {
        return scan_string(s, v);
    }
    if (c == '-' || is_digit(c)) {
        return scan_number(s, v);
    }
    return scan_literal(s, v);
}

/* The object or array at s->p[s->i], validated and skipped whole. Iterative: bit d of
 * obj says whether the container at local depth d is an object. */
static bool skip_container(struct js *s, struct js_val *v)
{
    uint64_t obj[(JS_MAX_DEPTH + 63) / 64];
    unsigned d = 0;
    struct js_val tmp;
    int c;

    v->type = s->p[s->i] == '{' ? JS_OBJECT : JS_ARRAY;
    v->escaped = false;
    v->start = s->i;
    for (;;) {
        /* here s->p[s->i] opens a container */
        bool is_obj = s->p[s->i] == '{';
        if (s->depth + d >= JS_MAX_DEPTH) {
            return js_fail(s, s->i, "nested too deep");
        }
        if (is_obj) {
            obj[d / 64] |= (uint64_t)1 << (d % 64);
        } else {
            obj[d / 64] &= ~((uint64_t)1 << (d % 64));
        }
        d++;
        s->i++;
        c = peek(s);
        if (c == (is_obj ? '}' : ']')) {
            s->i++;
            goto closed;
        }
        for (;;) {
            /* a member (name and ':') or an element starts here */
            if (is_obj) {
                if (c != '"') {
                    return js_fail(s, s->i, "member name expected");
                }
                if (!scan_string(s, &tmp)) {
                    return false;
                }
                if (peek(s) != ':') {
                    return js_fail(s, s->i, "':' expected");
                }
                s->i++;
                c = peek(s);
            }
            if (c == '{' || c == '[') {
                break;              /* descend */
            }
            if (c < 0) {
                return js_fail(s, s->len, "value expected");
            }
            if (!scan_scalar(s, &tmp)) {
                return false;
            }
        after:
            c = peek(s);
            if (c == ',') {
                s->i++;
                c = peek(s);
                continue;
            }
            if (c != (is_obj ? '}' : ']')) {
                return js_fail(s, s->i,
                               is_obj ? "',' or '}' expected" : "',' or ']' expected");
            }
            s->i++;
        closed:
            d--;
            if (d == 0) {
                v->end = s->i;
                return true;
            }
            is_obj = (obj[(d - 1) / 64] >> ((d - 1) % 64)) & 1;
            goto after;
        }
    }
}

bool js_value(struct js *s, struct js_val *v)
{
    int c = js_peek(s);

    if (s->why != NULL) {
        return false;
    }
    if (c < 0) {
        return js_fail(s, s->len, "value expected");
    }
    if (c == '{' || c == '[') {
        return skip_container(s, v);
    }
    return scan_scalar(s, v);
}

bool js_open(struct js *s)
{
    int c = js_peek(s);

    if (s->why != NULL) {
        return false;
    }
    if (c != '{' && c != '[') {
        return js_fail(s, s->i, "'[' or '{' expected");
    }
    if (s->depth >= JS_MAX_DEPTH) {
        return js_fail(s, s->i, "nested too deep");
    }
    s->depth++;
    s->i++;
    return true;
}

/* After an element or member (or the opening bracket when *first): 1 if another one
 * follows (its ',' consumed), 0 after consuming close, -1 on error. */
static int next_item(struct js *s, bool *first, int close, const char *expected)
{
    int c = js_peek(s);
    bool was_first = *first;

    *first = false;
    if (s->why != NULL) {
        return -1;
    }
    if (c == close) {
        s->i++;
        s->depth--;
        return 0;
    }
    if (was_first) {
        return 1;
    }
    if (c != ',') {
        js_fail(s, s->i, expected);
        return -1;
    }
    s->i++;
    return 1;
}

int js_member(struct js *s, bool *first, struct js_val *key)
{
    bool was_first = *first;
    int rc = next_item(s, first, '}', "',' or '}' expected");

    if (rc <= 0) {
        return rc;
    }
    if (peek(s) != '"') {
        js_fail(s, s->i,
                was_first ? "member name or '}' expected" : "member name expected");
        return -1;
    }
    if (!scan_string(s, key)) {
        return -1;
    }
    if (peek(s) != ':') {
        js_fail(s, s->i, "':' expected");
        return -1;
    }
    s->i++;
    return 1;
}

int js_element(struct js *s, bool *first)
{
    bool was_first = *first;
    int rc = next_item(s, first, ']', "',' or ']' expected");

    if (rc <= 0) {
        return rc;
    }
    if (!was_first && peek(s) == ']') {
        js_fail(s, s->i, "value expected");     /* a trailing comma */
        return -1;
    }
    return s->why == NULL ? 1 : -1;
}

bool js_end(struct js *s)
{
    int c = js_peek(s);

    if (s->why != NULL) {
        return false;
    }
    return c < 0 ? true : js_fail(s, s->i, "end of input expected");
}

/* Write code point u as UTF-8 at out; returns the length. */
static size_t put_utf8(char *out, unsigned u)
{
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xc0 | u >> 6);
        out[1] = (char)(0x80 | (u & 0x3f));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (char)(0xe0 | u >> 12);
        out[1] = (char)(0x80 | ((u >> 6) & 0x3f));
        out[2] = (char)(0x80 | (u & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | u >> 18);
    out[1] = (char)(0x80 | ((u >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((u >> 6) & 0x3f));
    out[3] = (char)(0x80 | (u & 0x3f));
    return 4;
}

size_t js_decode(const struct js *s, const struct js_val *v, char *out)
{
    const unsigned char *p = s->p + v->start;
    size_t n = v->end - v->start;
    size_t o = 0;

    if (!v->escaped) {
        memcpy(out, p, n);
        out[n] = '\0';
        return n;
    }
    for (size_t i = 0; i < n;) {
        const unsigned char *e = memchr(p + i, '\\', n - i);
        size_t plain = e != NULL ? (size_t)(e - (p + i)) : n - i;
        unsigned u;

        memcpy(out + o, p + i, plain);
        o += plain;
        i += plain;
        if (i == n) {
            break;
        }
        switch (p[i + 1]) {     /* the scanner checked every escape */
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u':
            u = hex4(p + i + 2);
            if (u >= 0xd800 && u <= 0xdbff) {
                u = 0x10000 + ((u - 0xd800) << 10) + (hex4(p + i + 8) - 0xdc00);
                i += 6;
            }
            o += put_utf8(out + o, u);
            i += 4;
            break;
        default:                /* " \ / */
            out[o++] = (char)p[i + 1];
            break;
        }
        i += 2;
    }
    out[o] = '\0';
    return o;
}

double js_number(const struct js *s, const struct js_val *v)
{
    double d = 0;

    if (!token_strtod(s->p + v->start, v->end - v->start, &d)) {
        d = NAN;
    }
    return d;
}

void js_position(const void *text, size_t at, size_t *line, size_t *col)
{
    const unsigned char *p = text;

    *line = 1;
    *col = 1;
    for (size_t i = 0; i < at; i++) {
        if (p[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

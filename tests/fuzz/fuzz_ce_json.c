/*
 * libFuzzer harness for the CloudEvents JSON decoder (gateway/ce_json.h), a differential
 * oracle with jansson (strict RFC 8259) as the reference. Public API only.
 *
 * Input: byte 0 picks the mode (bit 0: batch; bit 7 set: a batch limit of
 * ((byte >> 1) & 63) + 1 events is tried too), the rest is the JSON text.
 *
 * 1. jansson refuses the text as JSON (numbers it cannot hold, beyond int64 or a double,
 *    set aside: the decoder keeps those verbatim) => the decoder fails, "bad JSON ...".
 * 2. Otherwise a model built from the text (member lists from a small scanner over the
 *    valid text, every value decoded by jansson) says per event which outcomes the
 *    contract allows: success, bad JSON (duplicate member, a double overflow in data or an
 *    extension, nesting beyond 1000) or a bad event (missing or wrong specversion,
 *    attribute types, empty id/source/type, time not RFC 3339, data and data_base64,
 *    bad base64, extension name or type, header shape); where the contract leaves the
 *    kind open (two problems of both kinds, wrong root container, a double overflow
 *    elsewhere) either kind is accepted. The decoder's outcome and error kind (its "bad
 *    JSON" prefix, the event it names in a batch) must be one of those.
 * 3. On success every event is compared with the model: each attribute and extension
 *    byte for byte, datacontenttype defaults, data (the decoded string, or the sender's
 *    bytes of the value exactly, cross-checked with json_equal against jansson's tree),
 *    data_base64, headers in order, the event count.
 * 4. Each event is rendered; the output must be JSON and decode again to the same
 *    attributes, extensions, headers and payload (the stated exceptions: a non-JSON
 *    payload under a JSON type comes back as the JSON string text, whitespace around a
 *    JSON payload is dropped, a missing datacontenttype gets the text default); when
 *    nothing changed, rendering again gives the same bytes.
 * A failure prints what differs and the input to stderr and aborts.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gateway/ce_json.h"
#include "gateway/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DEPTH 1000       /* the contract's nesting limit */

#define OUT_OK 1u
#define OUT_BADJSON 2u
#define OUT_BADEVENT 4u

/* ---------- failure report ---------- */

static const char *g_text;
static size_t g_len;
static bool g_batch;

static void dump(const char *what, const char *p, size_t n)
{
    fprintf(stderr, "  %s (%zu bytes): \"", what, n);
    for (size_t i = 0; i < n && i < 4000; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
            fputc(c, stderr);
        } else {
            fprintf(stderr, "\\x%02x", c);
        }
    }
    fprintf(stderr, "%s\"\n", n > 4000 ? "..." : "");
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "\nfuzz_ce_json: ORACLE FAILURE (%s mode): ", g_batch ? "batch" : "event");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    dump("input text", g_text, g_len);
    abort();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        abort();
    }
    return p;
}

static char *xmemdup(const void *p, size_t n)
{
    char *d = xmalloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* ---------- number tokens ---------- */

struct numtok {
    size_t s, e;
    bool inf;        /* a valid number beyond a double */
    bool int_ovf;    /* a valid integer beyond int64 (jansson's limit) */
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The length of the longest prefix of p[0..n) that is an RFC 8259 number (0 if none),
 * taken greedily as jansson's lexer does; *is_int if it has no fraction or exponent. */
static size_t number_prefix(const char *p, size_t n, bool *is_int)
{
    size_t i = 0;

    *is_int = true;
    if (i < n && p[i] == '-') {
        i++;
    }
    if (i < n && p[i] == '0') {
        i++;
    } else if (i < n && is_digit(p[i])) {
        while (i < n && is_digit(p[i])) {
            i++;
        }
    } else {
        return 0;
    }
    if (i + 1 < n && p[i] == '.' && is_digit(p[i + 1])) {
        *is_int = false;
        for (i++; i < n && is_digit(p[i]); i++) {
        }
    }
    if (i + 1 < n && (p[i] == 'e' || p[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (p[j] == '+' || p[j] == '-')) {
            j++;
        }
        if (j < n && is_digit(p[j])) {
            *is_int = false;
            for (i = j; i < n && is_digit(p[i]); i++) {
            }
        }
    }
    return i;
}

/* The number tokens outside strings of p[0..n), as jansson's lexer would take them (on
 * text that is not JSON they are a guess, used only to set aside what jansson refuses
 * for range). */
static size_t scan_numbers(const char *p, size_t n, struct numtok **out)
{
    size_t cap = 8;
    size_t k = 0;
    struct numtok *t = xmalloc(cap * sizeof(*t));

    for (size_t i = 0; i < n;) {
        size_t len;
        bool is_int;
        if (p[i] == '"') {
            for (i++; i < n && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                    i++;
                }
            }
            i++;
        } else if ((p[i] == '-' || is_digit(p[i])) &&
                   (len = number_prefix(p + i, n - i, &is_int)) > 0) {
            char *tmp = xmemdup(p + i, len);
            if (k == cap) {
                cap *= 2;
                t = realloc(t, cap * sizeof(*t));
                if (t == NULL) {
                    abort();
                }
            }
            t[k] = (struct numtok){.s = i, .e = i + len};
            t[k].inf = isinf(strtod(tmp, NULL));
            if (is_int) {
                errno = 0;
                (void)strtoll(tmp, NULL, 10);
                t[k].int_ovf = errno == ERANGE;
            }
            free(tmp);
            k++;
            i += len;
        } else {
            i++;
        }
    }
    *out = t;
    return k;
}

/* ---------- the reference: jansson ---------- */

/*
 * 1 if p[0..n) is JSON for jansson (flags: 0 = an object or array at the root, or
 * JSON_DECODE_ANY), numbers beyond int64 or a double replaced by " 0 " first if that is all
 * jansson objects to; 0 if not. *tree (if not NULL) gets the parse (caller decrefs).
 */
static int ref_parse(const char *p, size_t n, size_t flags, json_t **tree)
{
    json_error_t e;
    json_t *j;

    if (tree != NULL) {
        *tree = NULL;
    }
    /* A raw NUL byte is never JSON (in a string it is a control character), but
     * jansson 2.14 drops one that follows a token it had to look past ("[true\0]" is
     * accepted): its stream reader takes the NUL for the end of its own buffer. */
    if (memchr(p, '\0', n) != NULL) {
        return 0;
    }
    j = json_loadb(p, n, flags, &e);

    if (j == NULL && json_error_code(&e) == json_error_numeric_overflow) {
        struct numtok *t;
        size_t nt = scan_numbers(p, n, &t);
        char *s = xmalloc(3 * n + 1);
        size_t sn = 0;
        size_t at = 0;
        for (size_t i = 0; i < nt; i++) {
            if (t[i].inf || t[i].int_ovf) {
                memcpy(s + sn, p + at, t[i].s - at);
                sn += t[i].s - at;
                memcpy(s + sn, " 0 ", 3);   /* spaced: "1" "-1e400" must not become "10" */
                sn += 3;
                at = t[i].e;
            }
        }
        memcpy(s + sn, p + at, n - at);
        sn += n - at;
        free(t);
        j = json_loadb(s, sn, flags, &e);
        free(s);
        if (j == NULL && json_error_code(&e) == json_error_numeric_overflow) {
            fail("oracle: a numeric overflow left after setting numbers aside: %s", e.text);
        }
    }
    if (j == NULL && json_error_code(&e) == json_error_out_of_memory) {
        fail("oracle: jansson out of memory");
    }
    if (tree != NULL) {
        *tree = j;
    } else {
        json_decref(j);
    }
    return j != NULL;
}

/* The JSON string value at p[0..n) decoded (a NUL-terminated copy; *len its length). */
static char *jstr(const char *p, size_t n, size_t *len)
{
    json_error_t e;
    json_t *j = json_loadb(p, n, JSON_DECODE_ANY, &e);
    char *s;

    if (j == NULL || !json_is_string(j)) {
        fail("oracle: scanner gave a string span jansson refuses: %s", j ? "?" : e.text);
    }
    *len = json_string_length(j);
    s = xmemdup(json_string_value(j), *len);
    json_decref(j);
    return s;
}

/* ---------- a scanner over text jansson accepted ---------- */

struct span {
    size_t s, e;
};

static size_t skip_ws(const char *p, size_t i, size_t n)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) {
        i++;
    }
    return i;
}

static size_t skip_str(const char *p, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\') {
            i++;
        } else if (p[i] == '"') {
            return i + 1;
        }
    }
    return n;
}

static size_t skip_val(const char *p, size_t i, size_t n)
{
    if (i >= n) {
        return n;
    }
    if (p[i] == '"') {
        return skip_str(p, i, n);
    }
    if (p[i] == '{' || p[i] == '[') {
        size_t depth = 0;
        while (i < n) {
            char c = p[i];
            if (c == '"') {
                i = skip_str(p, i, n);
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return i + 1;
            }
            i++;
        }
        return n;
    }
    while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' &&
           p[i] != '\t' && p[i] != '\n' && p[i] != '\r') {
        i++;
    }
    return i;
}

static size_t max_depth(const char *p, size_t n)
{
    size_t d = 0;
    size_t max = 0;

    for (size_t i = 0; i < n;) {
        if (p[i] == '"') {
            i = skip_str(p, i, n);
            continue;
        }
        if (p[i] == '{' || p[i] == '[') {
            if (++d > max) {
                max = d;
            }
        } else if ((p[i] == '}' || p[i] == ']') && d > 0) {
            d--;
        }
        i++;
    }
    return max;
}

struct member {
    char *key;          /* decoded */
    size_t klen;
    struct span v;      /* the value's bytes */
};

/* The members of the object at o (p[o.s] == '{'), in order, duplicates kept. */
static size_t members(const char *p, struct span o, struct member **out)
{
    size_t cap = 8;
    size_t k = 0;
    struct member *m = xmalloc(cap * sizeof(*m));
    size_t i = skip_ws(p, o.s + 1, o.e);

    while (i < o.e && p[i] == '"') {
        size_t ke = skip_str(p, i, o.e);
        if (k == cap) {
            cap *= 2;
            m = realloc(m, cap * sizeof(*m));
            if (m == NULL) {
                abort();
            }
        }
        m[k].key = jstr(p + i, ke - i, &m[k].klen);
        i = skip_ws(p, ke, o.e);
        i = skip_ws(p, i + 1, o.e);                     /* ':' */
        m[k].v.s = i;
        m[k].v.e = skip_val(p, i, o.e);
        k++;
        i = skip_ws(p, m[k - 1].v.e, o.e);
        if (i < o.e && p[i] == ',') {
            i = skip_ws(p, i + 1, o.e);
        }
    }
    *out = m;
    return k;
}

static void free_members(struct member *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].key);
    }
    free(m);
}

/* The elements of the array at a (p[a.s] == '['), in order. */
static size_t elems(const char *p, struct span a, struct span **out)
{
    size_t cap = 8;
    size_t k = 0;
    struct span *v = xmalloc(cap * sizeof(*v));
    size_t i = skip_ws(p, a.s + 1, a.e);

    while (i < a.e && p[i] != ']') {
        if (k == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof(*v));
            if (v == NULL) {
                abort();
            }
        }
        v[k].s = i;
        v[k].e = skip_val(p, i, a.e);
        i = skip_ws(p, v[k].e, a.e);
        k++;
        if (i < a.e && p[i] == ',') {
            i = skip_ws(p, i + 1, a.e);
        }
    }
    *out = v;
    return k;
}

/* ---------- the model of one event ---------- */

enum { A_ID, A_SOURCE, A_TYPE, A_SUBJECT, A_TIME, A_CT, A_SCHEMA, N_ATTR };
static const char *const attr_names[N_ATTR] = {
    "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
};

enum {
    K_SPEC, K_DATA, K_B64, K_OFFSET, K_PARTITION, K_ID, K_SOURCE, K_TYPE, K_SUBJECT,
    K_TIME, K_CT, K_SCHEMA, K_HEADERS, K_EXT,
};
static const char *const known[K_EXT] = {
    "specversion", "data", "data_base64", "offset", "partition", "id", "source", "type",
    "subject", "time", "datacontenttype", "dataschema", "headers",
};

static int known_index(const char *k)
{
    for (int i = 0; i < K_EXT; i++) {
        if (strcmp(k, known[i]) == 0) {
            return i;
        }
    }
    return K_EXT;
}

struct kv {
    char *name;
    char *value;        /* NULL: a null header value */
    size_t vlen;
};

struct expect {
    unsigned bad;           /* OUT_BADJSON / OUT_BADEVENT: what is wrong with it */
    bool maybe_badjson;     /* "bad JSON" is a defensible answer as well */
    char *attr[N_ATTR];
    size_t attr_len[N_ATTR];
    int64_t time_ms;
    struct kv ext[64];
    size_t n_ext;
    size_t n_ext_over;      /* extensions beyond ext[] (counted, not compared) */
    struct kv *hdr;
    size_t n_hdr;
    bool has_data;
    char *data;
    size_t data_len;
    bool data_raw;          /* the sender's bytes of a "data" value */
    bool data_ovf;          /* they hold numbers jansson cannot represent */
};

static unsigned allowed(const struct expect *x)
{
    unsigned a = x->bad != 0 ? x->bad : OUT_OK;
    return x->maybe_badjson ? a | OUT_BADJSON : a;
}

static void free_expect(struct expect *x)
{
    for (int i = 0; i < N_ATTR; i++) {
        free(x->attr[i]);
    }
    for (size_t i = 0; i < x->n_ext; i++) {
        free(x->ext[i].name);
        free(x->ext[i].value);
    }
    for (size_t i = 0; i < x->n_hdr; i++) {
        free(x->hdr[i].name);
        free(x->hdr[i].value);
    }
    free(x->hdr);
    free(x->data);
}

static int b64v(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Strict RFC 4648 base64 (padded, no whitespace) into a new buffer, or NULL. */
static char *b64_dec(const char *s, size_t n, size_t *outlen)
{
    size_t pad = 0;
    char *o;
    size_t k = 0;

    if (n % 4 != 0) {
        return NULL;
    }
    if (n > 0 && s[n - 1] == '=') {
        pad = s[n - 2] == '=' ? 2 : 1;
    }
    for (size_t i = 0; i < n - pad; i++) {
        if (b64v((unsigned char)s[i]) < 0) {
            return NULL;
        }
    }
    o = xmalloc(n / 4 * 3 + 1);
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = s[i + j] == '=' ? 0 : b64v((unsigned char)s[i + j]);
            v = v << 6 | (uint32_t)d;
        }
        o[k++] = (char)(v >> 16);
        o[k++] = (char)(v >> 8);
        o[k++] = (char)v;
    }
    *outlen = k - pad;
    return o;
}

static bool ext_name_ok(const char *k, size_t n)
{
    if (n == 0 || n > 20) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9'))) {
            return false;
        }
    }
    return true;
}

/* An extension number as the contract stores it. */
static void num_text(double d, char *buf, size_t size)
{
    if (d == trunc(d) && fabs(d) <= 9007199254740992.0) {
        snprintf(buf, size, "%" PRId64, (int64_t)d);
    } else {
        snprintf(buf, size, "%.17g", d);
    }
}

static void model_headers(const char *p, struct span v, struct expect *x)
{
    struct span *e;
    size_t n;

    if (p[v.s] != '[') {
        x->bad |= OUT_BADEVENT;
        return;
    }
    n = elems(p, v, &e);
    x->hdr = xmalloc(n * sizeof(*x->hdr));
    for (size_t i = 0; i < n; i++) {
        struct member *m;
        size_t nm;
        int name = -1;
        int val = -1;
        int b64 = -1;
        bool shape = p[e[i].s] == '{';
        if (!shape) {
            x->bad |= OUT_BADEVENT;
            continue;
        }
        nm = members(p, e[i], &m);
        for (size_t j = 0; j < nm; j++) {
            int *slot = strcmp(m[j].key, "name") == 0           ? &name
                        : strcmp(m[j].key, "value") == 0        ? &val
                        : strcmp(m[j].key, "value_base64") == 0 ? &b64
                                                                : NULL;
            if (slot == NULL || *slot >= 0) {
                shape = false;
            } else {
                *slot = (int)j;
            }
        }
        if (!shape || name < 0 || p[m[name].v.s] != '"' || (val < 0) == (b64 < 0) ||
            (val >= 0 && p[m[val].v.s] != '"' && p[m[val].v.s] != 'n') ||
            (b64 >= 0 && p[m[b64].v.s] != '"')) {
            x->bad |= OUT_BADEVENT;
            free_members(m, nm);
            continue;
        }
        {
            struct kv *h = &x->hdr[x->n_hdr];
            size_t nl;
            h->name = jstr(p + m[name].v.s, m[name].v.e - m[name].v.s, &nl);
            h->value = NULL;
            h->vlen = 0;
            if (b64 >= 0) {
                size_t bl;
                char *b = jstr(p + m[b64].v.s, m[b64].v.e - m[b64].v.s, &bl);
                h->value = b64_dec(b, bl, &h->vlen);
                free(b);
                if (h->value == NULL) {
                    free(h->name);
                    x->bad |= OUT_BADEVENT;
                    free_members(m, nm);
                    continue;
                }
            } else if (p[m[val].v.s] == '"') {
                h->value = jstr(p + m[val].v.s, m[val].v.e - m[val].v.s, &h->vlen);
            }
            x->n_hdr++;
        }
        free_members(m, nm);
    }
    free(e);
}

/* What the contract says of the event whose value is p[ev]. */
static void model_event(const char *p, struct span ev, const struct numtok *t, size_t nt,
                        struct expect *x)
{
    struct member *m;
    size_t nm;
    int first[K_EXT];
    int count[K_EXT] = {0};
    int *kind;
    const char *ct = NULL;

    memset(x, 0, sizeof(*x));
    for (size_t i = 0; i < nt; i++) {
        if (t[i].s >= ev.s && t[i].e <= ev.e) {
            /* a double overflow outside data and extensions: the contract is silent */
            x->maybe_badjson |= t[i].inf;
        }
    }
    if (p[ev.s] != '{') {
        x->bad |= OUT_BADEVENT;
        return;
    }
    nm = members(p, ev, &m);
    kind = xmalloc((nm + 1) * sizeof(*kind));
    for (int k = 0; k < K_EXT; k++) {
        first[k] = -1;
    }
    for (size_t i = 0; i < nm; i++) {
        kind[i] = known_index(m[i].key);
        if (kind[i] < K_EXT) {
            if (count[kind[i]]++ > 0) {
                x->bad |= OUT_BADJSON;          /* a known member twice */
            } else {
                first[kind[i]] = (int)i;
            }
        } else if (p[m[i].v.s] != 'n') {
            for (size_t j = 0; j < i; j++) {
                if (kind[j] == K_EXT && p[m[j].v.s] != 'n' && strcmp(m[j].key, m[i].key) == 0) {
                    x->bad |= OUT_BADJSON;      /* an extension twice, neither null */
                }
            }
        }
    }
    /* specversion */
    if (first[K_SPEC] < 0) {
        x->bad |= OUT_BADEVENT;
    } else {
        struct span v = m[first[K_SPEC]].v;
        if (p[v.s] != '"') {
            x->bad |= OUT_BADEVENT;
        } else {
            size_t l;
            char *s = jstr(p + v.s, v.e - v.s, &l);
            if (l != 3 || memcmp(s, "1.0", 3) != 0) {
                x->bad |= OUT_BADEVENT;
            }
            free(s);
        }
    }
    /* context attributes */
    for (int a = 0; a < N_ATTR; a++) {
        int i = first[K_ID + a];
        struct span v;
        if (i < 0) {
            continue;
        }
        v = m[i].v;
        if (p[v.s] != '"') {
            x->bad |= OUT_BADEVENT;
            continue;
        }
        x->attr[a] = jstr(p + v.s, v.e - v.s, &x->attr_len[a]);
        if (x->attr_len[a] == 0 && (a == A_ID || a == A_SOURCE || a == A_TYPE)) {
            x->bad |= OUT_BADEVENT;
        }
        if (a == A_TIME && sl_rfc3339_parse_ms(x->attr[a], x->attr_len[a], &x->time_ms) != 0) {
            x->bad |= OUT_BADEVENT;
        }
    }
    ct = x->attr[A_CT];
    /* extensions */
    for (size_t i = 0; i < nm; i++) {
        struct span v = m[i].v;
        char c = p[v.s];
        char num[64];
        char *val = NULL;
        size_t vl = 0;
        if (kind[i] != K_EXT || c == 'n') {
            continue;                       /* known, or null: ignored */
        }
        if (!ext_name_ok(m[i].key, m[i].klen)) {
            x->bad |= OUT_BADEVENT;
            continue;
        }
        if (c == '"') {
            val = jstr(p + v.s, v.e - v.s, &vl);
        } else if (c == 't' || c == 'f') {
            val = xmemdup(c == 't' ? "true" : "false", c == 't' ? 4 : 5);
            vl = strlen(val);
        } else if (c == '{' || c == '[') {
            x->bad |= OUT_BADEVENT;
            continue;
        } else {
            char *tok = xmemdup(p + v.s, v.e - v.s);
            double d = strtod(tok, NULL);
            free(tok);
            if (isinf(d)) {
                x->bad |= OUT_BADJSON;      /* out of range in an extension */
                continue;
            }
            num_text(d, num, sizeof(num));
            vl = strlen(num);
            val = xmemdup(num, vl);
        }
        if (x->n_ext < sizeof(x->ext) / sizeof(x->ext[0])) {
            x->ext[x->n_ext].name = xmemdup(m[i].key, m[i].klen);
            x->ext[x->n_ext].value = val;
            x->ext[x->n_ext].vlen = vl;
            x->n_ext++;
        } else {
            free(val);
            x->n_ext_over++;
        }
    }
    /* data */
    if (first[K_DATA] >= 0 && first[K_B64] >= 0) {
        x->bad |= OUT_BADEVENT;
    } else if (first[K_B64] >= 0) {
        struct span v = m[first[K_B64]].v;
        if (p[v.s] != '"') {
            x->bad |= OUT_BADEVENT;
        } else {
            size_t l;
            char *s = jstr(p + v.s, v.e - v.s, &l);
            x->data = b64_dec(s, l, &x->data_len);
            x->has_data = x->data != NULL;
            if (x->data == NULL) {
                x->bad |= OUT_BADEVENT;
            }
            free(s);
        }
    } else if (first[K_DATA] >= 0) {
        struct span v = m[first[K_DATA]].v;
        x->has_data = true;
        if (p[v.s] == '"' && !ce_json_is_json_type(ct)) {
            x->data = jstr(p + v.s, v.e - v.s, &x->data_len);
            if (ct == NULL) {
                x->attr[A_CT] = xmemdup("text/plain; charset=utf-8", 25);
                x->attr_len[A_CT] = 25;
            }
        } else {
            x->data = xmemdup(p + v.s, v.e - v.s);
            x->data_len = v.e - v.s;
            x->data_raw = true;
            if (ct == NULL) {
                x->attr[A_CT] = xmemdup("application/json", 16);
                x->attr_len[A_CT] = 16;
            }
        }
        for (size_t i = 0; i < nt; i++) {
            if (t[i].s >= v.s && t[i].e <= v.e) {
                if (t[i].inf) {
                    x->bad |= OUT_BADJSON;  /* out of range in data */
                }
                x->data_ovf |= t[i].inf || t[i].int_ovf;
            }
        }
    }
    if (first[K_HEADERS] >= 0) {
        model_headers(p, m[first[K_HEADERS]].v, x);
    }
    free(kind);
    free_members(m, nm);
}

/* ---------- comparing an envelope with the model ---------- */

static bool same(const char *got, const char *want, size_t want_len)
{
    if (got == NULL || want == NULL) {
        return got == want;
    }
    return strlen(got) == want_len && memcmp(got, want, want_len) == 0;
}

static bool same_buf(const struct sl_buf *b, const void *p, size_t n)
{
    return b != NULL && b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

/* env is event i's decoding; jev is jansson's tree of it (numbers set aside). */
static void check_env(const struct sl_env *env, const struct expect *x, const json_t *jev,
                      size_t i)
{
    for (int a = 0; a < N_ATTR; a++) {
        const char *got = sl_env_get_attr(env, attr_names[a]);
        if (!same(got, x->attr[a], x->attr_len[a])) {
            fail("event %zu: attribute %s is \"%s\", want \"%s\"", i, attr_names[a],
                 got ? got : "(null)", x->attr[a] ? x->attr[a] : "(null)");
        }
        /* the scanner's view against jansson's tree (defaults aside) */
        {
            const json_t *jv = json_object_get(jev, attr_names[a]);
            if (jv != NULL && (!json_is_string(jv) || json_string_length(jv) != x->attr_len[a] ||
                               memcmp(json_string_value(jv), x->attr[a], x->attr_len[a]) != 0)) {
                fail("oracle: scanner and jansson disagree on %s", attr_names[a]);
            }
        }
    }
    if (x->attr[A_TIME] != NULL && env->timestamp_ms != x->time_ms) {
        fail("event %zu: timestamp_ms %" PRId64 ", want %" PRId64 " from time", i,
             env->timestamp_ms, x->time_ms);
    }
    if (env->n_ext != x->n_ext + x->n_ext_over) {
        fail("event %zu: %zu extensions, want %zu", i, env->n_ext, x->n_ext + x->n_ext_over);
    }
    for (size_t k = 0; k < x->n_ext; k++) {
        const char *got = sl_env_get_attr(env, x->ext[k].name);
        if (!same(got, x->ext[k].value, x->ext[k].vlen)) {
            fail("event %zu: extension %s is \"%s\", want \"%s\"", i, x->ext[k].name,
                 got ? got : "(null)", x->ext[k].value);
        }
    }
    if (env->offset >= 0) {
        fail("event %zu: offset %" PRId64 " set by the decoder", i, env->offset);
    }
    if (!x->has_data) {
        if (env->data != NULL) {
            fail("event %zu: a payload of %zu bytes where the event has none", i, env->data->len);
        }
    } else {
        if (!same_buf(env->data, x->data, x->data_len)) {
            if (env->data == NULL) {
                fail("event %zu: no payload", i);
            }
            fprintf(stderr, "\n");
            dump("payload", (const char *)env->data->data, env->data->len);
            dump("want", x->data, x->data_len);
            fail("event %zu: payload differs (%s)", i,
                 x->data_raw ? "the sender's bytes of \"data\"" : "decoded data/data_base64");
        }
        if (x->data_raw && !x->data_ovf) {
            json_t *got = NULL;
            const json_t *want = json_object_get(jev, "data");
            if (ref_parse(x->data, x->data_len, JSON_DECODE_ANY, &got) != 1 || want == NULL ||
                !json_equal(got, want)) {
                json_decref(got);
                fail("event %zu: payload is not jansson's value of \"data\"", i);
            }
            json_decref(got);
        }
    }
    if (env->n_headers != x->n_hdr) {
        fail("event %zu: %zu headers, want %zu", i, env->n_headers, x->n_hdr);
    }
    for (size_t k = 0; k < x->n_hdr; k++) {
        const struct sl_env_hdr *h = &env->headers[k];
        const json_t *jh = json_array_get(json_object_get(jev, "headers"), k);
        if (strcmp(h->name, x->hdr[k].name) != 0 ||
            (x->hdr[k].value == NULL ? h->value != NULL
                                     : !same_buf(h->value, x->hdr[k].value, x->hdr[k].vlen))) {
            fail("event %zu: header %zu differs (name \"%s\", want \"%s\")", i, k, h->name,
                 x->hdr[k].name);
        }
        if (!json_is_string(json_object_get(jh, "name")) ||
            strcmp(json_string_value(json_object_get(jh, "name")), x->hdr[k].name) != 0) {
            fail("oracle: scanner and jansson disagree on header %zu", k);
        }
    }
}

/* ---------- render, re-parse, decode again ---------- */

static bool is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void check_render(const struct sl_env *env, size_t i)
{
    struct ce_json_buf b = {0};
    const char *r;
    size_t rn;
    struct member *m;
    size_t nm;
    int d = -1;
    int d64 = -1;
    struct sl_env *env2;
    char err[256] = "";
    const char *want;
    size_t want_len;
    bool exact;

    /* rendering appends: start after something */
    if (ce_json_buf_add(&b, "[", 1) != 0 || ce_json_render_event(env, &b) != 0) {
        fail("event %zu: render failed", i);
    }
    if (b.data == NULL || b.data[0] != '[' || b.len < 3 || b.data[b.len] != '\0') {
        fail("event %zu: render did not append after the buffer's contents", i);
    }
    r = b.data + 1;
    rn = b.len - 1;
    if (ref_parse(r, rn, 0, NULL) != 1 || r[0] != '{') {
        dump("rendered", r, rn);
        fail("event %zu: rendered event is not a JSON object", i);
    }
    nm = members(r, (struct span){0, rn}, &m);
    for (size_t k = 0; k < nm; k++) {
        for (size_t j = 0; j < k; j++) {
            if (strcmp(m[j].key, m[k].key) == 0) {
                dump("rendered", r, rn);
                fail("event %zu: rendered member \"%s\" twice", i, m[k].key);
            }
        }
        if (strcmp(m[k].key, "data") == 0) {
            d = (int)k;
        } else if (strcmp(m[k].key, "data_base64") == 0) {
            d64 = (int)k;
        }
    }
    if ((env->data == NULL) != (d < 0 && d64 < 0) || (d >= 0 && d64 >= 0)) {
        dump("rendered", r, rn);
        fail("event %zu: rendered data / data_base64 does not match the payload", i);
    }
    /* What the payload must come back as. */
    want = env->data != NULL ? (const char *)env->data->data : NULL;
    want_len = env->data != NULL ? env->data->len : 0;
    if (d64 >= 0) {
        size_t sl, bl;
        char *s = jstr(r + m[d64].v.s, m[d64].v.e - m[d64].v.s, &sl);
        char *bytes = b64_dec(s, sl, &bl);
        if (bytes == NULL || bl != want_len || memcmp(bytes, want, bl) != 0) {
            fail("event %zu: rendered data_base64 is not the payload", i);
        }
        free(s);
        free(bytes);
    } else if (d >= 0) {
        struct span v = m[d].v;
        size_t ts = 0;
        size_t te = want_len;
        while (ts < te && is_json_ws(want[ts])) {
            ts++;
        }
        while (te > ts && is_json_ws(want[te - 1])) {
            te--;
        }
        if (ce_json_is_json_type(env->datacontenttype) && v.e - v.s == te - ts &&
            memcmp(r + v.s, want + ts, te - ts) == 0) {
            /* spliced as it is: comes back without the whitespace around it */
            want += ts;
            want_len = te - ts;
        } else {
            size_t sl;
            char *s;
            if (r[v.s] != '"') {
                dump("rendered", r, rn);
                fail("event %zu: rendered data is neither the payload nor a string", i);
            }
            s = jstr(r + v.s, v.e - v.s, &sl);
            if (sl != want_len || memcmp(s, want, sl) != 0) {
                fail("event %zu: rendered data string is not the payload", i);
            }
            free(s);
            if (ce_json_is_json_type(env->datacontenttype)) {
                /* A JSON type but not JSON: the payload must not be JSON the decoder
                 * takes, and comes back as the string's JSON text. */
                json_t *pj = NULL;
                bool inf = false;
                struct numtok *t;
                size_t nt = scan_numbers(want, want_len, &t);
                for (size_t k = 0; k < nt; k++) {
                    inf |= t[k].inf;
                }
                free(t);
                if (want_len > 0 && !inf &&
                    ref_parse(want, want_len, JSON_DECODE_ANY, &pj) == 1 &&
                    max_depth(want, want_len) < MAX_DEPTH) {
                    json_decref(pj);
                    dump("payload", want, want_len);
                    fail("event %zu: JSON payload under a JSON type rendered as a string", i);
                }
                json_decref(pj);
                want = r + v.s;
                want_len = v.e - v.s;
            }
        }
    }
    free_members(m, nm);
    if (max_depth(r, rn) > MAX_DEPTH) {
        /* payload of depth 1000 from data_base64, one deeper inside the event */
        ce_json_buf_free(&b);
        return;
    }
    env2 = ce_json_parse_event(r, rn, err, sizeof(err));
    if (env2 == NULL) {
        dump("rendered", r, rn);
        fail("event %zu: rendered event does not decode again: %s", i, err);
    }
    exact = true;
    for (int a = 0; a < N_ATTR; a++) {
        const char *v1 = sl_env_get_attr(env, attr_names[a]);
        const char *v2 = sl_env_get_attr(env2, attr_names[a]);
        if (a == A_CT && v1 == NULL) {
            /* no type given: a data string gets the text default */
            v1 = d >= 0 ? "text/plain; charset=utf-8" : NULL;
            exact = v2 == NULL;
        }
        if (!same(v2, v1, v1 ? strlen(v1) : 0)) {
            dump("rendered", r, rn);
            fail("event %zu: round trip changed %s: \"%s\" -> \"%s\"", i, attr_names[a],
                 v1 ? v1 : "(null)", v2 ? v2 : "(null)");
        }
    }
    if (env2->n_ext != env->n_ext) {
        fail("event %zu: round trip changed the extension count %zu -> %zu", i, env->n_ext,
             env2->n_ext);
    }
    for (size_t k = 0; k < env->n_ext; k++) {
        const char *v2 = sl_env_get_attr(env2, env->ext[k].name);
        if (v2 == NULL || strcmp(v2, env->ext[k].value) != 0) {
            fail("event %zu: round trip changed extension %s", i, env->ext[k].name);
        }
    }
    if (env2->n_headers != env->n_headers) {
        fail("event %zu: round trip changed the header count", i);
    }
    for (size_t k = 0; k < env->n_headers; k++) {
        const struct sl_env_hdr *h1 = &env->headers[k];
        const struct sl_env_hdr *h2 = &env2->headers[k];
        if (strcmp(h1->name, h2->name) != 0 || (h1->value == NULL) != (h2->value == NULL) ||
            (h1->value != NULL && !same_buf(h2->value, h1->value->data, h1->value->len))) {
            fail("event %zu: round trip changed header %zu", i, k);
        }
    }
    if (want == NULL ? env2->data != NULL : !same_buf(env2->data, want, want_len)) {
        dump("rendered", r, rn);
        fail("event %zu: round trip changed the payload", i);
    }
    if (env->data != NULL && !same_buf(env2->data, env->data->data, env->data->len)) {
        exact = false;
    }
    if (exact) {
        struct ce_json_buf b2 = {0};
        if (ce_json_render_event(env2, &b2) != 0 || b2.len != rn || memcmp(b2.data, r, rn) != 0) {
            dump("first", r, rn);
            dump("second", b2.data ? b2.data : "", b2.len);
            fail("event %zu: rendering the round-tripped event gives other bytes", i);
        }
        ce_json_buf_free(&b2);
    }
    sl_env_unref(&env2);
    ce_json_buf_free(&b);
}

/* ---------- outcomes ---------- */

static bool is_badjson(const char *err)
{
    return strncmp(err, "bad JSON", 8) == 0;
}

static void run_event(const char *text, size_t len, struct span root, const struct numtok *t,
                      size_t nt, const json_t *tree, size_t depth)
{
    struct expect x;
    char err[256] = "";
    struct sl_env *env;
    unsigned a;

    model_event(text, root, t, nt, &x);
    if (text[root.s] != '{') {
        x.maybe_badjson = true;             /* root container of the wrong kind */
    }
    a = allowed(&x);
    if (depth > MAX_DEPTH) {
        a = OUT_BADJSON;
    }
    env = ce_json_parse_event(text, len, err, sizeof(err));
    if (env == NULL) {
        unsigned got = is_badjson(err) ? OUT_BADJSON : OUT_BADEVENT;
        if (err[0] == '\0' || !(a & got)) {
            fail("decoder refused the event (\"%s\"); allowed outcomes 0x%x", err, a);
        }
    } else {
        if (!(a & OUT_OK)) {
            fail("decoder accepted the event; allowed outcomes 0x%x (2 bad JSON, 4 bad event)",
                 a);
        }
        check_env(env, &x, tree, 0);
        check_render(env, 0);
        sl_env_unref(&env);
    }
    free_expect(&x);
}

/* Check a failed batch's rc and err against the events' allowed outcomes a[0..n). */
static void check_batch_failure(int rc, const char *err, const unsigned *a, size_t n,
                                bool e2big_ok, bool global_badjson)
{
    size_t at;
    bool any_badjson = global_badjson;

    for (size_t i = 0; i < n; i++) {
        any_badjson |= (a[i] & OUT_BADJSON) != 0;
    }
    if (rc == -E2BIG) {
        if (!e2big_ok) {
            fail("batch: -E2BIG (\"%s\") with no more events than the limit", err);
        }
        return;
    }
    if (rc != -EINVAL) {
        fail("batch: rc %d (\"%s\")", rc, err);
    }
    if (global_badjson && !is_badjson(err)) {
        fail("batch: error \"%s\" where only bad JSON fits", err);
    }
    if (sscanf(err, "bad JSON in event %zu", &at) == 1) {
        if (at >= n || !(a[at] & OUT_BADJSON)) {
            fail("batch: \"%s\" but event %zu is not bad JSON", err, at);
        }
    } else if (is_badjson(err)) {
        if (!any_badjson) {
            fail("batch: \"%s\" but no event is bad JSON", err);
        }
    } else if (strncmp(err, "event ", 6) == 0 && sscanf(err, "event %zu", &at) == 1) {
        if (at >= n || !(a[at] & OUT_BADEVENT)) {
            fail("batch: \"%s\" but event %zu is not a bad event", err, at);
        }
    } else {
        fail("batch: error \"%s\" names no event", err);
    }
}

static void run_batch(const char *text, size_t len, size_t max, struct span root,
                      const struct numtok *t, size_t nt, const json_t *tree, size_t depth)
{
    struct sl_env **envs = NULL;
    size_t n = 0;
    char err[256] = "";
    int rc;

    if (text[root.s] != '[') {
        rc = ce_json_parse_batch(text, len, SIZE_MAX, &envs, &n, err, sizeof(err));
        if (rc != -EINVAL || envs != NULL || n != 0 || err[0] == '\0') {
            fail("batch: an object at the root gave rc %d (\"%s\")", rc, err);
        }
        return;
    }
    {
        struct span *ev;
        size_t count = elems(text, root, &ev);
        struct expect *x = xmalloc((count + 1) * sizeof(*x));
        unsigned *a = xmalloc((count + 1) * sizeof(*a));
        bool all_ok = count > 0 && depth <= MAX_DEPTH;

        if (json_array_size(tree) != count) {
            fail("oracle: scanner counts %zu events, jansson %zu", count, json_array_size(tree));
        }
        for (size_t i = 0; i < count; i++) {
            model_event(text, ev[i], t, nt, &x[i]);
            a[i] = allowed(&x[i]);
            all_ok &= (a[i] & OUT_OK) != 0;
        }
        rc = ce_json_parse_batch(text, len, SIZE_MAX, &envs, &n, err, sizeof(err));
        if (rc == 0) {
            bool must_fail = false;
            for (size_t i = 0; i < count; i++) {
                must_fail |= !(a[i] & OUT_OK);
            }
            if (!all_ok || must_fail) {
                fail("batch accepted (%zu events); it must fail (depth %zu)", count, depth);
            }
            if (envs == NULL || n != count) {
                fail("batch: %zu events decoded, want %zu", n, count);
            }
            for (size_t i = 0; i < n; i++) {
                check_env(envs[i], &x[i], json_array_get(tree, i), i);
                check_render(envs[i], i);
            }
            ce_json_free_batch(&envs, n);
            if (envs != NULL) {
                fail("batch: ce_json_free_batch left the pointer set");
            }
        } else {
            if (envs != NULL || n != 0) {
                fail("batch: failed with rc %d but set the output", rc);
            }
            if (count == 0) {
                if (rc != -EINVAL || is_badjson(err) || err[0] == '\0') {
                    fail("batch: empty array gave rc %d \"%s\", want a bad event", rc, err);
                }
            } else {
                bool any_fail = depth > MAX_DEPTH;
                for (size_t i = 0; i < count; i++) {
                    any_fail |= a[i] != OUT_OK;
                }
                if (!any_fail) {
                    fail("batch refused (rc %d, \"%s\"); every event is valid", rc, err);
                }
                check_batch_failure(rc, err, a, count, false, depth > MAX_DEPTH);
            }
        }
        if (max != SIZE_MAX) {
            /* The same text with a limit: too many events is -E2BIG (or, as the events
             * are read, an error one of them allows); else the same answer. */
            char err2[256] = "";
            int rc2 = ce_json_parse_batch(text, len, max, &envs, &n, err2, sizeof(err2));
            if (rc2 == 0) {
                if (rc != 0 || count > max || n != count) {
                    fail("batch with limit %zu accepted %zu events (rc %d without the limit)",
                         max, n, rc);
                }
                ce_json_free_batch(&envs, n);
            } else if (count > max && count > 0) {
                if (envs != NULL || n != 0) {
                    fail("batch: failed with rc %d but set the output", rc2);
                }
                check_batch_failure(rc2, err2, a, count, true, depth > MAX_DEPTH);
            } else if (rc2 != rc || strcmp(err, err2) != 0) {
                fail("batch with limit %zu (>= %zu events): rc %d \"%s\", without: rc %d \"%s\"",
                     max, count, rc2, err2, rc, err);
            }
        }
        for (size_t i = 0; i < count; i++) {
            free_expect(&x[i]);
        }
        free(x);
        free(a);
        free(ev);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text;
    size_t len;
    size_t max;
    json_t *tree = NULL;
    struct numtok *t;
    size_t nt;

    if (size < 1 || size > 65536) {
        return 0;
    }
    g_batch = data[0] & 1;
    max = (data[0] & 0x80) ? (size_t)((data[0] >> 1) & 0x3f) + 1 : SIZE_MAX;
    /* libFuzzer's buffer ends right after the text: ASan sees any read past len */
    text = (const char *)data + 1;
    len = size - 1;
    g_text = text;
    g_len = len;

    if (ref_parse(text, len, 0, &tree) != 1) {
        /* 1. not JSON: the decoder must say so */
        char err[256] = "";
        if (!g_batch) {
            struct sl_env *env = ce_json_parse_event(text, len, err, sizeof(err));
            if (env != NULL || !is_badjson(err)) {
                fail("jansson refuses the text; decoder gave %s \"%s\"",
                     env ? "an event" : "error", err);
            }
        } else {
            struct sl_env **envs = NULL;
            size_t n = 0;
            int rc = ce_json_parse_batch(text, len, SIZE_MAX, &envs, &n, err, sizeof(err));
            if (rc != -EINVAL || envs != NULL || n != 0 || !is_badjson(err)) {
                fail("jansson refuses the text; batch rc %d \"%s\"", rc, err);
            }
            if (max != SIZE_MAX) {
                rc = ce_json_parse_batch(text, len, max, &envs, &n, err, sizeof(err));
                if (!((rc == -EINVAL && is_badjson(err)) || rc == -E2BIG) || envs != NULL) {
                    fail("jansson refuses the text; batch (limit %zu) rc %d \"%s\"", max, rc, err);
                }
            }
        }
        return 0;
    }
    nt = scan_numbers(text, len, &t);
    {
        size_t s = skip_ws(text, 0, len);
        struct span root = {s, skip_val(text, s, len)};
        size_t depth = max_depth(text, len);
        if (!g_batch) {
            run_event(text, len, root, t, nt, tree, depth);
        } else {
            run_batch(text, len, max, root, t, nt, tree, depth);
        }
    }
    free(t);
    json_decref(tree);
    return 0;
}

#include "gateway/ce_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <jansson.h>
#include <openssl/evp.h>

#define CE_MAX_B64 (256u * 1024u * 1024u)

/* ---------- cJSON's allocations: a per-thread arena while parsing ----------
 *
 * cJSON allocates each node and each string separately (about 20 allocations for a
 * small event), and the tree lives only until its events are built. So while load()'s
 * tree is in use, cJSON allocates from this thread's arena: bump allocation in chunks,
 * nothing freed one by one, everything dropped at once by arena_end(). The hooks are
 * process-wide (cJSON_InitHooks, installed before main() by a constructor, so no thread
 * ever sees them change), the arena per thread: on a thread without an active arena
 * they are malloc and free. A thread keeps one chunk between parses; a thread-specific
 * key frees it when the thread exits.
 */
#define ARENA_CHUNK (64u * 1024u)
#define ARENA_KEEP (1024u * 1024u)      /* bytes of chunks kept between parses */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;                        /* usable bytes after the header */
    size_t used;
    max_align_t data[];
};

struct arena {
    struct arena_chunk *chunks;         /* newest first */
    size_t hint;                        /* size for the next chunk: the last parse's */
    bool active;
    bool keyed;                         /* registered with arena_key */
};

static __thread struct arena tls_arena;
static pthread_key_t arena_key;

static void arena_release(void *arg)
{
    struct arena *a = arg;

    while (a->chunks != NULL) {
        struct arena_chunk *c = a->chunks;
        a->chunks = c->next;
        free(c);
    }
}

static void *arena_malloc(size_t size)
{
    struct arena *a = &tls_arena;
    struct arena_chunk *c;
    size_t need = (size + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);

    if (!a->active) {
        return malloc(size);
    }
    if (size > SIZE_MAX / 2) {
        return NULL;
    }
    if (!a->keyed) {
        a->keyed = pthread_setspecific(arena_key, a) == 0;
    }
    c = a->chunks;
    if (c == NULL || c->size - c->used < need) {
        size_t csize = a->hint > ARENA_CHUNK ? a->hint : ARENA_CHUNK;
        if (csize < need) {
            csize = need;
        }
        a->hint = 0;
        c = malloc(sizeof(*c) + csize);
        if (c == NULL) {
            return NULL;
        }
        c->size = csize;
        c->used = 0;
        c->next = a->chunks;
        a->chunks = c;
    }
    c->used += need;
    return (char *)c->data + c->used - need;
}

static bool in_arena(const struct arena *a, const void *p)
{
    for (const struct arena_chunk *c = a->chunks; c != NULL; c = c->next) {
        uintptr_t lo = (uintptr_t)c->data;
        if ((uintptr_t)p >= lo && (uintptr_t)p < lo + c->size) {
            return true;
        }
    }
    return false;
}

static void arena_free(void *p)
{
    if (p != NULL && !(tls_arena.active && in_arena(&tls_arena, p))) {
        free(p);
    }
}

__attribute__((constructor)) static void hooks_init(void)
{
    cJSON_Hooks h = {.malloc_fn = arena_malloc, .free_fn = arena_free};

    if (pthread_key_create(&arena_key, arena_release) != 0) {
        abort();                        /* before main(): nothing else can be done */
    }
    cJSON_InitHooks(&h);
}

/* Start allocating cJSON nodes from this thread's arena (not re-entrant: one tree per
 * thread at a time). */
static void arena_begin(void)
{
    tls_arena.active = true;
}

/* Drop everything allocated since arena_begin (the tree must not be used after this).
 * One chunk is kept for the next parse; if this one needed several, they are freed and
 * the next chunk is made as large as they were together (up to ARENA_KEEP), so that a
 * run of similar parses settles on one allocation that is reused. */
static void arena_end(void)
{
    struct arena *a = &tls_arena;
    struct arena_chunk *c = a->chunks;
    size_t total = 0;

    a->active = false;
    if (c != NULL && c->next == NULL && c->size <= ARENA_KEEP) {
        c->used = 0;
        return;
    }
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        total += c->size;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->hint = total < ARENA_KEEP ? total : ARENA_KEEP;
}

static void set_err(char *err, size_t errsz, const char *fmt, const char *what)
{
    if (err != NULL && errsz > 0) {
        snprintf(err, errsz, fmt, what);
    }
}

bool ce_json_is_json_type(const char *ct)
{
    size_t n;

    if (ct == NULL) {
        return false;
    }
    while (*ct == ' ') {
        ct++;
    }
    n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ') {
        n--;
    }
    if ((n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
        (n == 9 && strncasecmp(ct, "text/json", 9) == 0)) {
        return true;
    }
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* Strict base64 (RFC 4648, padded, no whitespace). Returns a new buffer or NULL. */
static struct sl_buf *b64_decode(const char *s, size_t len, int *errp)
{
    struct sl_buf *buf;
    unsigned char *tmp;
    size_t pad = 0;
    int got;

    *errp = -EINVAL;
    if (len % 4 != 0 || len > CE_MAX_B64) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (c == '=' && i >= len - 2) {
            pad++;
            if (i == len - 2 && s[len - 1] != '=') {
                return NULL;
            }
            continue;
        }
        if (!ok) {
            return NULL;
        }
    }
    if (len == 0) {
        *errp = 0;
        return sl_buf_new("", 0);
    }
    tmp = malloc(len / 4 * 3 + 1);
    if (tmp == NULL) {
        *errp = -ENOMEM;
        return NULL;
    }
    got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
    if (got < 0 || (size_t)got < pad) {
        free(tmp);
        return NULL;
    }
    buf = sl_buf_new(tmp, (size_t)got - pad);
    free(tmp);
    *errp = buf != NULL ? 0 : -ENOMEM;
    return buf;
}

/* Every member name the decoder knows (CloudEvents, plus sluice's "offset", "partition"
 * and "headers"), in index order; a second one is rejected (bit i of a mask per event).
 * Other names are extensions. */
enum ce_member {
    CE_SPECVERSION, CE_DATA, CE_DATA_BASE64, CE_OFFSET, CE_PARTITION,
    CE_ID, CE_SOURCE, CE_TYPE, CE_SUBJECT, CE_TIME, CE_DATACONTENTTYPE, CE_DATASCHEMA,
    CE_HEADERS, CE_EXTENSION,
};

static const char *const ce_members[] = {
    "specversion", "data", "data_base64", "offset", "partition",
    "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
    "headers",
};

static const unsigned char ce_member_len[] = {11, 4, 11, 6, 9, 2, 6, 4, 7, 4, 15, 10, 7};
_Static_assert(sizeof(ce_member_len) == CE_EXTENSION, "a length per member name");

static enum ce_member member_index(const char *name)
{
    size_t len = strlen(name);

    for (int i = 0; i < CE_EXTENSION; i++) {
        if (ce_member_len[i] == len && ce_members[i][0] == name[0] &&
            memcmp(ce_members[i], name, len) == 0) {
            return (enum ce_member)i;
        }
    }
    return CE_EXTENSION;
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

/* The escape at s[0] == '\\' (n bytes left): its length, or 0 with *why set. */
static size_t escape_len(const unsigned char *s, size_t n, const char **why)
{
    if (n >= 2 && s[1] != '\0' && strchr("\"\\/bfnrt", s[1]) != NULL) {
        return 2;
    }
    if (n < 6 || s[1] != 'u' || !is_hex(s[2]) || !is_hex(s[3]) || !is_hex(s[4]) ||
        !is_hex(s[5])) {
        *why = "invalid escape";
        return 0;
    }
    if (s[2] == '0' && s[3] == '0' && s[4] == '0' && s[5] == '0') {
        *why = "\\u0000 is not allowed";
        return 0;
    }
    return 6;
}

/* Length of the number token at s[0] (n bytes left) if it follows the JSON grammar and
 * is not followed by more number characters, else 0. */
static size_t number_len(const unsigned char *s, size_t n)
{
    size_t i = 0;

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

/* The byte span [start, end) of an event's "data" value in the raw input; end == 0 when
 * the event has no "data" member. */
struct data_span {
    size_t start;
    size_t end;
};

/* Spans are kept in blocks of this many, small enough that a block is a small-bin
 * allocation: one large malloc per batch makes glibc consolidate every free small chunk
 * (cJSON's nodes), which costs more than the whole pre-scan. */
#define SPAN_BLOCK 32

struct span_block {
    struct span_block *next;
    struct data_span v[SPAN_BLOCK];
};

/* Where the pre-scan records each event's "data" span: the root object (batch false) or
 * the elements of the root array (batch true), at most max of them. Events are recorded
 * and read back in increasing order. */
struct data_spans {
    bool batch;
    size_t max;
    size_t n_blocks;                /* blocks in the list, head included */
    struct span_block *tail;        /* the last block (events up to n_blocks * 32 - 1) */
    const struct span_block *rd;    /* the reader's block, holding events from rd_base */
    size_t rd_base;
    struct span_block head;         /* events 0..31: on the caller's stack */
};

static void data_spans_init(struct data_spans *sp, bool batch, size_t max)
{
    sp->batch = batch;
    sp->max = batch ? max : 1;
    sp->n_blocks = 1;
    sp->tail = &sp->head;
    sp->rd = &sp->head;
    sp->rd_base = 0;
    sp->head.next = NULL;
    memset(sp->head.v, 0, batch ? sizeof(sp->head.v) : sizeof(sp->head.v[0]));
}

static void data_spans_free(struct data_spans *sp)
{
    struct span_block *b = sp->head.next;

    while (b != NULL) {
        struct span_block *next = b->next;
        free(b);
        b = next;
    }
    sp->head.next = NULL;
    sp->tail = &sp->head;
    sp->n_blocks = 1;
}

/* The span of event i (not below the last i asked for), or NULL if it has none. */
static const struct data_span *data_spans_get(struct data_spans *sp, size_t i)
{
    while (i - sp->rd_base >= SPAN_BLOCK) {
        if (sp->rd->next == NULL) {
            return NULL;
        }
        sp->rd = sp->rd->next;
        sp->rd_base += SPAN_BLOCK;
    }
    return sp->rd->v[i - sp->rd_base].end != 0 ? &sp->rd->v[i - sp->rd_base] : NULL;
}

/* Record [start, end) for event i (not below the last i recorded; the first "data" wins,
 * a second one is rejected later as a duplicate). 0, or -ENOMEM. */
static int data_spans_set(struct data_spans *sp, size_t i, size_t start, size_t end)
{
    struct data_span *v;

    if (i >= sp->max) {
        return 0;   /* too many events: the batch is refused before its events are read */
    }
    while (i / SPAN_BLOCK >= sp->n_blocks) {
        struct span_block *b = calloc(1, sizeof(*b));
        if (b == NULL) {
            return -ENOMEM;
        }
        sp->tail->next = b;
        sp->tail = b;
        sp->n_blocks++;
    }
    v = &sp->tail->v[i % SPAN_BLOCK];
    if (v->end == 0) {
        v->start = start;
        v->end = end;
    }
    return 0;
}

/* The value of the hex digit c (is_hex(c)). */
static unsigned hex_val(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/* True if the member name whose raw bytes (between the quotes, escapes already checked)
 * are k[0..n) is "data" once unescaped, as cJSON sees it: "d\u0061ta" is "data" too. */
static bool key_is_data(const unsigned char *k, size_t n)
{
    static const char want[] = "data";
    size_t j = 0;

    if (n == 4) {
        return memcmp(k, want, 4) == 0;
    }
    for (size_t i = 0; i < n; j++) {
        unsigned c;
        if (j == 4) {
            return false;
        }
        if (k[i] != '\\') {
            c = k[i++];
        } else if (i + 6 <= n && k[i + 1] == 'u') {
            c = hex_val(k[i + 2]) << 12 | hex_val(k[i + 3]) << 8 | hex_val(k[i + 4]) << 4 |
                hex_val(k[i + 5]);
            i += 6;
        } else {
            return false;   /* \" \\ \/ \b \f \n \r \t: not a letter */
        }
        if (c != (unsigned char)want[j]) {
            return false;
        }
    }
    return j == 4;
}

/* The pre-scan's view of the structure: just enough to find each event's "data" value.
 * It trusts the syntax (cJSON checks it): on bad input the spans are junk but in bounds,
 * and unused. */
struct prescan {
    const unsigned char *p;
    struct data_spans *spans;
    size_t depth;       /* containers open */
    size_t ev_depth;    /* depth inside an event object: 1, 2 (batch) or 0 (wrong root) */
    size_t index;       /* the event being read: elements of the root array so far */
    size_t data_start;  /* where the current "data" value starts, if in_data */
    bool in_event;      /* the container at ev_depth is an object */
    bool want_key;      /* at event level, the next string is a member name */
    bool in_data;       /* at event level, the current member is "data" */
};

/* 1 for the bytes the pre-scan tracks structure by. */
static const unsigned char json_struct[256] = {
    ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1, [','] = 1,
};

/* The member that ends at p[i] (',' or '}' at event level) was "data": record its span,
 * trailing whitespace trimmed. 0 or -ENOMEM. */
static int end_data(struct prescan *s, size_t i)
{
    size_t end = i;

    s->in_data = false;
    while (end > s->data_start && is_ws(s->p[end - 1])) {
        end--;
    }
    return end > s->data_start ? data_spans_set(s->spans, s->index, s->data_start, end) : 0;
}

/* The structural byte p[i] (json_struct). 0 or -ENOMEM. */
static int on_struct(struct prescan *s, size_t i)
{
    unsigned char c = s->p[i];
    bool at_event = s->in_event && s->depth == s->ev_depth;

    switch (c) {
    case '{':
    case '[':
        if (s->depth == 0) {
            bool array = c == '[';
            s->ev_depth = array != s->spans->batch ? 0 : array ? 2 : 1;
        }
        s->depth++;
        if (s->depth == s->ev_depth) {
            s->in_event = c == '{';
            s->want_key = true;
            s->in_data = false;
        }
        return 0;
    case '}':
    case ']':
        if (s->depth > 0) {
            s->depth--;
        }
        if (at_event) {
            s->in_event = false;
            return s->in_data ? end_data(s, i) : 0;
        }
        return 0;
    default: /* ',' */
        if (at_event) {
            s->want_key = true;
            return s->in_data ? end_data(s, i) : 0;
        }
        if (s->depth == 1 && s->ev_depth == 2) {
            s->index++;
        }
        return 0;
    }
}

/*
 * One pass over the raw text for what cJSON accepts but RFC 8259 (and jansson before it)
 * rejects: outside strings, control bytes other than tab, LF, CR (cJSON skips them as
 * whitespace), non-ASCII bytes (a UTF-8 BOM, which cJSON skips) and numbers such as
 * "01", "1." or "-.5"; inside strings, raw control bytes, invalid UTF-8, unknown escapes,
 * \u escapes without four hex digits (cJSON decodes them as U+0000) and \u0000 (which
 * cJSON would turn into a truncated C string). Escapes are consumed whole, so the text
 * "\\u0000" (an escaped backslash) is not mistaken for one. Syntax is left to cJSON.
 * On the way, records in spans the byte span of each event's top-level "data" value.
 * Returns NULL, or the reason with *at set to the offset of the offending byte; *oom set
 * (and "out of memory" returned) when spans could not grow.
 */
static const char *json_prescan(const unsigned char *p, size_t len, struct data_spans *spans,
                                size_t *at, bool *oom)
{
    struct prescan s = {.p = p, .spans = spans};
    const char *why = NULL;
    size_t i = 0;
    size_t k;

    *oom = false;
    while (i < len) {
        unsigned char c = p[i];

        if (c == '"') {
            size_t open = i;
            for (i++; i < len; i += k) {
                i = skip_plain(p, i, len);
                if (i == len || p[i] == '"') {
                    break;
                }
                c = p[i];
                if (c == '\\') {
                    k = escape_len(p + i, len - i, &why);
                } else if (c < 0x20) {
                    why = "control character in a string";
                    k = 0;
                } else {
                    k = utf8_len(p + i, len - i);
                    why = "invalid UTF-8";
                }
                if (k == 0) {
                    *at = i;
                    return why;
                }
            }
            if (s.want_key && s.in_event && s.depth == s.ev_depth) {
                /* A member name: if "data", its value starts after the ':'. */
                s.want_key = false;
                s.in_data = key_is_data(p + open + 1, i - open - 1);
                if (s.in_data) {
                    k = i + 1;
                    while (k < len && (is_ws(p[k]) || p[k] == ':')) {
                        k++;
                    }
                    s.data_start = k;
                }
            }
            i++;
        } else if (c == '-' || is_digit(c)) {
            k = number_len(p + i, len - i);
            if (k == 0) {
                *at = i;
                return "invalid number";
            }
            i += k;
        } else if (json_struct[c]) {
            if (on_struct(&s, i) != 0) {
                *at = i;
                *oom = true;
                return "out of memory";
            }
            i++;
        } else if ((c >= 0x20 && c < 0x7f) || is_ws(c)) {
            i++;
        } else {
            *at = i;
            return "invalid character";
        }
    }
    return NULL;
}

/* "bad JSON at line L column C: why" for the byte at offset at. */
static void set_bad_json(char *err, size_t errsz, const char *json, size_t at,
                         const char *why)
{
    size_t line = 1;
    size_t col = 1;

    if (err == NULL || errsz == 0) {
        return;
    }
    for (size_t i = 0; i < at; i++) {
        if (json[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(err, errsz, "bad JSON at line %zu column %zu: %s", line, col, why);
}

/* An integer-valued number as its decimal text ("42", "-7", exact up to 2^53), any
 * other as "%.17g". d is finite. */
static void number_text(double d, char *buf, size_t size)
{
    if (d == trunc(d) && fabs(d) <= 9007199254740992.0) {
        snprintf(buf, size, "%" PRId64, (int64_t)d);
    } else {
        snprintf(buf, size, "%.17g", d);
    }
}

/* True if v holds a number cJSON could not represent (it overflowed to infinity). */
static bool has_non_finite(const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        return !isfinite(v->valuedouble);
    }
    for (const cJSON *c = v->child; c != NULL; c = c->next) {
        if (has_non_finite(c)) {
            return true;
        }
    }
    return false;
}

/* Apply member v (named name, of kind idx) other than specversion/data/data_base64.
 * 0 or -errno. */
static int apply_member(struct sl_env *env, enum ce_member idx, const char *name,
                        const cJSON *v, char *err, size_t errsz)
{
    char num[64];
    const char *text;
    int rc;

    if (idx == CE_OFFSET || idx == CE_PARTITION) {
        return 0;
    }
    if (idx != CE_EXTENSION) {
        if (!cJSON_IsString(v)) {
            set_err(err, errsz, "attribute \"%s\" must be a string", name);
            return -EINVAL;
        }
        text = v->valuestring;
        if (text[0] == '\0' && (idx == CE_ID || idx == CE_SOURCE || idx == CE_TYPE)) {
            set_err(err, errsz, "attribute \"%s\" must not be empty", name);
            return -EINVAL;
        }
    } else {
        if (cJSON_IsNull(v)) {
            return 0;
        }
        if (!sl_env_ext_name_valid(name)) {
            set_err(err, errsz, "bad extension name \"%.40s\" (want [a-z0-9]{1,20})", name);
            return -EINVAL;
        }
        if (sl_env_get_attr(env, name) != NULL) {
            set_err(err, errsz, "bad JSON: duplicate member \"%s\"", name);
            return -EINVAL;
        }
        if (cJSON_IsString(v)) {
            text = v->valuestring;
        } else if (cJSON_IsNumber(v)) {
            if (!isfinite(v->valuedouble)) {
                set_err(err, errsz, "bad JSON: number out of range in \"%s\"", name);
                return -EINVAL;
            }
            number_text(v->valuedouble, num, sizeof(num));
            text = num;
        } else if (cJSON_IsBool(v)) {
            text = cJSON_IsTrue(v) ? "true" : "false";
        } else {
            set_err(err, errsz, "extension \"%s\" must be a string, number or boolean", name);
            return -EINVAL;
        }
    }
    rc = sl_env_set_attr(env, name, text, strlen(text));
    if (rc == -EINVAL) {
        set_err(err, errsz, "bad value for attribute \"%s\"", name);
    } else if (rc != 0) {
        set_err(err, errsz, "%s", "out of memory");
    }
    return rc;
}

/* Set env->data from "data" / "data_base64"; raw is the sender's bytes of the "data"
 * value (NULL if there is none). 0 or -errno. */
static int apply_data(struct sl_env *env, const cJSON *data, const char *raw, size_t raw_len,
                      const cJSON *b64, char *err, size_t errsz)
{
    const char *ct = sl_env_get_attr(env, "datacontenttype");
    int rc = 0;

    if (data != NULL && b64 != NULL) {
        set_err(err, errsz, "%s", "\"data\" and \"data_base64\" are mutually exclusive");
        return -EINVAL;
    }
    if (b64 != NULL) {
        struct sl_buf *buf;
        if (!cJSON_IsString(b64)) {
            set_err(err, errsz, "%s", "\"data_base64\" must be a string");
            return -EINVAL;
        }
        buf = b64_decode(b64->valuestring, strlen(b64->valuestring), &rc);
        if (buf == NULL) {
            set_err(err, errsz, "%s", rc == -ENOMEM ? "out of memory" : "bad data_base64");
            return rc;
        }
        sl_env_set_data_buf(env, buf);
        sl_buf_unref(&buf);
        return 0;
    }
    if (data == NULL) {
        return 0;
    }
    if (cJSON_IsString(data) && !ce_json_is_json_type(ct)) {
        rc = sl_env_set_data(env, data->valuestring, strlen(data->valuestring));
        if (rc == 0 && ct == NULL) {
            rc = sl_env_set_attr(env, "datacontenttype", "text/plain; charset=utf-8", 25);
        }
    } else {
        /* JSON text: the sender's bytes as they are, never cJSON's re-spelling (doubles
         * would round integers beyond 2^53 and turn 1.0 into 1). cJSON has validated it. */
        if (has_non_finite(data)) {
            set_err(err, errsz, "%s", "bad JSON: number out of range in \"data\"");
            return -EINVAL;
        }
        if (raw == NULL) {
            set_err(err, errsz, "%s", "internal error: \"data\" not located in the input");
            return -EINVAL;
        }
        rc = sl_env_set_data(env, raw, raw_len);
        if (rc == 0 && ct == NULL) {
            rc = sl_env_set_attr(env, "datacontenttype", "application/json", 16);
        }
    }
    if (rc != 0) {
        set_err(err, errsz, "%s", "out of memory");
    }
    return rc;
}

static void set_header_err(char *err, size_t errsz, size_t i, const char *why)
{
    if (err != NULL && errsz > 0) {
        snprintf(err, errsz, "header %zu: %s", i, why);
    }
}

/* The header object h (entry i of "headers"): exactly "name" (a string) and one of
 * "value" (a string or null) or "value_base64" (a string). Appends it to env's headers.
 * 0 or -errno. */
static int apply_header(struct sl_env *env, const cJSON *h, size_t i, char *err, size_t errsz)
{
    static const char shape[] = "want {\"name\": string, \"value\": string or null} or "
                                "{\"name\": string, \"value_base64\": string}";
    const cJSON *name = NULL;
    const cJSON *value = NULL;
    const cJSON *b64 = NULL;
    struct sl_buf *buf = NULL;
    int rc;

    if (!cJSON_IsObject(h)) {
        set_header_err(err, errsz, i, shape);
        return -EINVAL;
    }
    for (const cJSON *m = h->child; m != NULL; m = m->next) {
        const cJSON **slot = strcmp(m->string, "name") == 0          ? &name
                             : strcmp(m->string, "value") == 0        ? &value
                             : strcmp(m->string, "value_base64") == 0 ? &b64
                                                                      : NULL;
        if (slot == NULL || *slot != NULL) {
            set_header_err(err, errsz, i, shape);
            return -EINVAL;
        }
        *slot = m;
    }
    if (!cJSON_IsString(name) || (value == NULL) == (b64 == NULL) ||
        (value != NULL && !cJSON_IsString(value) && !cJSON_IsNull(value)) ||
        (b64 != NULL && !cJSON_IsString(b64))) {
        set_header_err(err, errsz, i, shape);
        return -EINVAL;
    }
    if (b64 != NULL) {
        buf = b64_decode(b64->valuestring, strlen(b64->valuestring), &rc);
        if (buf == NULL) {
            set_header_err(err, errsz, i, rc == -ENOMEM ? "out of memory" : "bad value_base64");
            return rc;
        }
        rc = sl_env_add_header(env, name->valuestring, buf->data, (int32_t)buf->len);
        sl_buf_unref(&buf);
    } else if (cJSON_IsNull(value)) {
        rc = sl_env_add_header(env, name->valuestring, NULL, -1);
    } else {
        size_t len = strlen(value->valuestring);
        if (len > (size_t)INT32_MAX) {
            set_header_err(err, errsz, i, "value too long");
            return -EINVAL;
        }
        rc = sl_env_add_header(env, name->valuestring, value->valuestring, (int32_t)len);
    }
    if (rc != 0) {
        set_header_err(err, errsz, i, "out of memory");
    }
    return rc;
}

/* The "headers" member (NULL if there is none): an array of header objects, added to
 * env's headers in order. 0 or -errno. */
static int apply_headers(struct sl_env *env, const cJSON *hdrs, char *err, size_t errsz)
{
    size_t i = 0;

    if (hdrs == NULL) {
        return 0;
    }
    if (!cJSON_IsArray(hdrs)) {
        set_err(err, errsz, "%s", "\"headers\" must be an array of header objects");
        return -EINVAL;
    }
    for (const cJSON *h = hdrs->child; h != NULL; h = h->next, i++) {
        int rc = apply_header(env, h, i, err, errsz);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* One event from a parsed JSON value (borrowed) whose "data" value is json[span] (span
 * NULL if the event has none). A new envelope, or NULL with err set. */
static struct sl_env *event_from_value(const cJSON *obj, const char *json,
                                       const struct data_span *span, char *err, size_t errsz)
{
    const cJSON *sv = NULL;
    const cJSON *data = NULL;
    const cJSON *b64 = NULL;
    const cJSON *hdrs = NULL;
    unsigned seen = 0;
    struct sl_env *env;
    unsigned char kinds[32];             /* member_index of the first members, kept */
    size_t k = 0;

    if (!cJSON_IsObject(obj)) {
        set_err(err, errsz, "%s", "a CloudEvent must be a JSON object");
        return NULL;
    }
    /* Known members first: a second one is ambiguous (which "id" did the sender mean?). */
    for (const cJSON *m = obj->child; m != NULL; m = m->next, k++) {
        enum ce_member i = member_index(m->string);
        if (k < sizeof(kinds)) {
            kinds[k] = (unsigned char)i;
        }
        if (i == CE_EXTENSION) {
            continue;
        }
        if (seen & (1u << i)) {
            set_err(err, errsz, "bad JSON: duplicate member \"%s\"", m->string);
            return NULL;
        }
        seen |= 1u << i;
        if (i == CE_SPECVERSION) {
            sv = m;
        } else if (i == CE_DATA) {
            data = m;
        } else if (i == CE_DATA_BASE64) {
            b64 = m;
        } else if (i == CE_HEADERS) {
            hdrs = m;
        }
    }
    if (sv == NULL) {
        set_err(err, errsz, "%s", "missing \"specversion\"");
        return NULL;
    }
    if (!cJSON_IsString(sv) || strcmp(sv->valuestring, "1.0") != 0) {
        set_err(err, errsz, "%s", "\"specversion\" must be \"1.0\"");
        return NULL;
    }
    env = sl_env_new();
    if (env == NULL) {
        set_err(err, errsz, "%s", "out of memory");
        return NULL;
    }
    k = 0;
    for (const cJSON *m = obj->child; m != NULL; m = m->next, k++) {
        enum ce_member i;
        if (m == sv || m == data || m == b64 || m == hdrs) {
            continue;
        }
        i = k < sizeof(kinds) ? (enum ce_member)kinds[k] : member_index(m->string);
        if (apply_member(env, i, m->string, m, err, errsz) != 0) {
            sl_env_unref(&env);
            return NULL;
        }
    }
    if (apply_data(env, data, span != NULL ? json + span->start : NULL,
                   span != NULL ? span->end - span->start : 0, b64, err, errsz) != 0 ||
        apply_headers(env, hdrs, err, errsz) != 0) {
        sl_env_unref(&env);
        return NULL;
    }
    return env;
}

/* Parse json[0..len) (need not be NUL-terminated): an object or array, nothing after it
 * but whitespace; each event's "data" span goes to spans (initialised by the caller). A
 * new tree (cJSON_Delete), or NULL with *rc -EINVAL and "bad JSON ..." in err, or -ENOMEM. */
static cJSON *load(const char *json, size_t len, struct data_spans *spans, int *rc, char *err,
                   size_t errsz)
{
    const char *end = NULL;
    const char *why;
    size_t at = 0;
    bool oom;
    cJSON *root;

    *rc = -EINVAL;
    if (len == 0) {
        set_bad_json(err, errsz, json, 0, "'[' or '{' expected near end of input");
        return NULL;
    }
    why = json_prescan((const unsigned char *)json, len, spans, &at, &oom);
    if (oom) {
        *rc = -ENOMEM;
        set_err(err, errsz, "%s", why);
        return NULL;
    }
    if (why != NULL) {
        set_bad_json(err, errsz, json, at, why);
        return NULL;
    }
    root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (root == NULL) {
        at = end != NULL && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        set_bad_json(err, errsz, json, at, "syntax error");
        return NULL;
    }
    if (!cJSON_IsObject(root) && !cJSON_IsArray(root)) {
        while (is_ws((unsigned char)json[at])) {
            at++;
        }
        set_bad_json(err, errsz, json, at, "'[' or '{' expected");
        cJSON_Delete(root);
        return NULL;
    }
    at = (size_t)(end - json);
    while (at < len && is_ws((unsigned char)json[at])) {
        at++;
    }
    if (at < len) {
        set_bad_json(err, errsz, json, at, "end of input expected");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

struct sl_env *ce_json_parse_event(const char *json, size_t len, char *err, size_t errsz)
{
    struct data_spans spans;
    struct sl_env *env;
    cJSON *root;
    int rc;

    data_spans_init(&spans, false, 1);
    arena_begin();
    root = load(json, len, &spans, &rc, err, errsz);
    if (root == NULL) {
        arena_end();
        data_spans_free(&spans);
        return NULL;
    }
    env = event_from_value(root, json, data_spans_get(&spans, 0), err, errsz);
    arena_end();                         /* the tree goes with the arena */
    data_spans_free(&spans);
    return env;
}

void ce_json_free_batch(struct sl_env ***envsp, size_t n)
{
    struct sl_env **envs = envsp != NULL ? *envsp : NULL;

    if (envs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sl_env_unref(&envs[i]);
    }
    free(envs);
    *envsp = NULL;
}

int ce_json_parse_batch(const char *json, size_t len, size_t max_events,
                        struct sl_env ***out, size_t *n, char *err, size_t errsz)
{
    struct data_spans spans;
    cJSON *root;
    const cJSON *item;
    struct sl_env **envs;
    size_t count = 0;
    size_t i = 0;
    char sub[200];
    int rc;

    *out = NULL;
    *n = 0;
    data_spans_init(&spans, true, max_events);
    arena_begin();                       /* the tree goes with arena_end() */
    root = load(json, len, &spans, &rc, err, errsz);
    if (root == NULL) {
        arena_end();
        data_spans_free(&spans);
        return rc;
    }
    for (item = root->child; cJSON_IsArray(root) && item != NULL; item = item->next) {
        count++;
    }
    if (count == 0) {
        set_err(err, errsz, "%s", "a batch must be a non-empty JSON array of CloudEvents");
        arena_end();
        data_spans_free(&spans);
        return -EINVAL;
    }
    if (count > max_events) {
        set_err(err, errsz, "%s", "too many events in the batch");
        arena_end();
        data_spans_free(&spans);
        return -E2BIG;
    }
    envs = calloc(count, sizeof(*envs));
    if (envs == NULL) {
        set_err(err, errsz, "%s", "out of memory");
        arena_end();
        data_spans_free(&spans);
        return -ENOMEM;
    }
    for (item = root->child; item != NULL; item = item->next, i++) {
        envs[i] = event_from_value(item, json, data_spans_get(&spans, i), sub, sizeof(sub));
        if (envs[i] == NULL) {
            /* Keep the "bad JSON" prefix first: callers map it to a reason code. */
            if (err != NULL && errsz > 0 && strncmp(sub, "bad JSON", 8) == 0) {
                snprintf(err, errsz, "bad JSON in event %zu%s", i, sub + 8);
            } else if (err != NULL && errsz > 0) {
                snprintf(err, errsz, "event %zu: %s", i, sub);
            }
            ce_json_free_batch(&envs, i);
            arena_end();
            data_spans_free(&spans);
            return -EINVAL;
        }
    }
    arena_end();
    data_spans_free(&spans);
    *out = envs;
    *n = count;
    return 0;
}

/* ---------- output ---------- */

int ce_json_buf_add(struct ce_json_buf *b, const void *p, size_t n)
{
    if (n >= SIZE_MAX / 2 - b->len) {
        return -ENOMEM;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 256;
        char *grown;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        grown = realloc(b->data, cap);
        if (grown == NULL) {
            return -ENOMEM;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void ce_json_buf_free(struct ce_json_buf *b)
{
    if (b != NULL) {
        free(b->data);
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
    }
}

static int set_str(json_t *obj, const char *key, const char *value)
{
    json_t *s;

    if (value == NULL) {
        return 0;
    }
    s = json_string(value);
    if (s == NULL) {
        /* Not UTF-8: keep the member out rather than emit invalid JSON. */
        return 0;
    }
    return json_object_set_new(obj, key, s);
}

/* Text: no NUL or control characters other than tab, CR, LF (UTF-8 validity is
 * checked by json_stringn). */
static bool is_text(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') || p[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* p[0..len) as a new base64 JSON string, or NULL on out of memory. */
static json_t *b64_string(const uint8_t *p, size_t len)
{
    size_t cap;
    unsigned char *b64;
    json_t *s;

    if (len > (size_t)INT32_MAX / 4 * 3) {
        return NULL;
    }
    cap = (len + 2) / 3 * 4 + 1;
    b64 = malloc(cap);
    if (b64 == NULL) {
        return NULL;
    }
    EVP_EncodeBlock(b64, p, (int)len);
    s = json_string((const char *)b64);
    free(b64);
    return s;
}

/* True if the payload is one JSON value the decoder would take as "data" unchanged:
 * json_prescan's RFC 8259 strictness, parsed whole by cJSON (whitespace around it
 * allowed), every number finite. Then its bytes can be written into the output as they
 * are. */
static bool data_is_json(const struct sl_buf *d)
{
    struct data_spans spans;
    const char *text = (const char *)d->data;
    const char *end = NULL;
    size_t at = 0;
    bool oom;
    bool ok;
    cJSON *v;

    if (d->len == 0) {
        return false;
    }
    /* Not a batch: spans holds one entry on the stack and never allocates. */
    data_spans_init(&spans, false, 1);
    ok = json_prescan(d->data, d->len, &spans, &at, &oom) == NULL;
    data_spans_free(&spans);
    if (!ok) {
        return false;
    }
    v = cJSON_ParseWithLengthOpts(text, d->len, &end, false);
    if (v == NULL) {
        return false;
    }
    ok = !has_non_finite(v) && end != NULL && end >= text && end <= text + d->len;
    cJSON_Delete(v);
    if (!ok) {
        return false;
    }
    at = (size_t)(end - text);
    while (at < d->len && is_ws(d->data[at])) {
        at++;
    }
    return at == d->len;
}

/* Add "data" (a string) or "data_base64" to obj, or set *raw when the payload is JSON
 * to be spliced in as it is. 0 or -1 (out of memory). */
static int set_data(json_t *obj, const struct sl_env *env, bool *raw)
{
    const struct sl_buf *d = env->data;
    json_t *v;

    *raw = false;
    if (d == NULL) {
        return 0;
    }
    if (ce_json_is_json_type(env->datacontenttype) && data_is_json(d)) {
        *raw = true;
        return 0;
    }
    v = is_text(d->data, d->len) ? json_stringn((const char *)d->data, d->len) : NULL;
    if (v != NULL) {
        return json_object_set_new(obj, "data", v);
    }
    return json_object_set_new(obj, "data_base64", b64_string(d->data, d->len));
}

/* The "headers" array for env's headers, or NULL on out of memory. A header whose name
 * is not UTF-8 cannot be named in JSON and is left out. */
static json_t *headers_array(const struct sl_env *env)
{
    json_t *arr = json_array();
    int rc = 0;

    for (size_t i = 0; arr != NULL && rc == 0 && i < env->n_headers; i++) {
        const struct sl_env_hdr *h = &env->headers[i];
        json_t *name = json_string(h->name);
        json_t *o;
        if (name == NULL) {
            continue;
        }
        o = json_object();
        rc |= json_object_set_new(o, "name", name);
        if (h->value == NULL) {
            rc |= json_object_set_new(o, "value", json_null());
        } else {
            /* A NUL would need \u0000, which the decoder refuses: base64 it. */
            json_t *v = memchr(h->value->data, 0, h->value->len) == NULL
                            ? json_stringn((const char *)h->value->data, h->value->len)
                            : NULL;
            if (v != NULL) {
                rc |= json_object_set_new(o, "value", v);
            } else {
                rc |= json_object_set_new(o, "value_base64",
                                          b64_string(h->value->data, h->value->len));
            }
        }
        rc |= json_array_append_new(arr, o);
    }
    if (rc != 0) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Every member of env's event but a raw JSON "data", in output order. */
static json_t *event_object(const struct sl_env *env, bool *raw)
{
    json_t *obj = json_object();
    char idbuf[48];
    int rc = 0;

    *raw = false;
    if (obj == NULL) {
        return NULL;
    }
    rc |= json_object_set_new(obj, "specversion", json_string("1.0"));
    if (env->id == NULL && env->offset >= 0) {
        snprintf(idbuf, sizeof(idbuf), "%" PRId32 "-%" PRId64, env->partition, env->offset);
        rc |= set_str(obj, "id", idbuf);
    } else {
        rc |= set_str(obj, "id", env->id);
    }
    rc |= set_str(obj, "source", env->source);
    rc |= set_str(obj, "type", env->type);
    rc |= set_str(obj, "subject", env->subject);
    rc |= set_str(obj, "time", env->time);
    rc |= set_str(obj, "datacontenttype", env->datacontenttype);
    rc |= set_str(obj, "dataschema", env->dataschema);
    for (size_t i = 0; i < env->n_ext; i++) {
        rc |= set_str(obj, env->ext[i].name, env->ext[i].value);
    }
    if (env->offset >= 0) {
        rc |= json_object_set_new(obj, "partition", json_integer(env->partition));
        rc |= json_object_set_new(obj, "offset", json_integer(env->offset));
        if (env->key != NULL) {
            json_t *k = json_stringn((const char *)env->key->data, env->key->len);
            if (k != NULL) {
                rc |= json_object_set_new(obj, "partitionkey", k);
            }
        }
    }
    if (env->n_headers > 0) {
        rc |= json_object_set_new(obj, "headers", headers_array(env));
    }
    rc |= set_data(obj, env, raw);
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int ce_json_render_event(const struct sl_env *env, struct ce_json_buf *out)
{
    size_t mark = out->len;
    bool raw;
    json_t *obj = event_object(env, &raw);
    char *text;
    size_t n;
    int rc;

    if (obj == NULL) {
        return -ENOMEM;
    }
    text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        return -ENOMEM;
    }
    n = strlen(text);     /* "{...}": at least specversion is in it */
    if (!raw) {
        rc = ce_json_buf_add(out, text, n);
    } else {
        rc = ce_json_buf_add(out, text, n - 1);
        if (rc == 0) {
            rc = ce_json_buf_add(out, ",\"data\":", 8);
        }
        if (rc == 0) {
            rc = ce_json_buf_add(out, env->data->data, env->data->len);
        }
        if (rc == 0) {
            rc = ce_json_buf_add(out, "}", 1);
        }
    }
    free(text);
    if (rc != 0) {
        out->len = mark;
        if (out->data != NULL) {
            out->data[mark] = '\0';
        }
    }
    return rc;
}

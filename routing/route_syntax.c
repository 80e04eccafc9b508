/*
 * The syntax of routing names, apart from any table: splitting subjects and patterns
 * into levels, checking them and topic names, matching one pattern against one subject
 * (rt_match), checking ingress topic and egress destination templates, and rendering
 * egress destinations (rt_render_destination). Rules and limits: routing/route.h.
 */
#include "routing/route_syntax.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* ---- subjects and patterns ---------------------------------------------------------- */

int rt_split_levels(const char *s, struct levels *lv)
{
    size_t total = strnlen(s, RT_MAX_SUBJECT + 1);
    if (total == 0 || total > RT_MAX_SUBJECT) {
        return -1;
    }
    lv->n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= total; i++) {
        if (i == total || s[i] == '/') {
            if (lv->n == RT_MAX_LEVELS) {
                return -1;
            }
            lv->off[lv->n] = (uint16_t)start;
            lv->len[lv->n] = (uint16_t)(i - start);
            lv->n++;
            start = i + 1;
        }
    }
    return 0;
}

int rt_split_pattern(const char *p, struct levels *lv, const char **why)
{
    if (rt_split_levels(p, lv) < 0) {
        *why = "empty, longer than 1024 bytes or deeper than 32 levels";
        return -1;
    }
    for (int i = 0; i < lv->n; i++) {
        const char *l = p + lv->off[i];
        size_t len = lv->len[i];
        if (len == 1 && (l[0] == '+' || l[0] == '*')) {
            continue;
        }
        if (len == 1 && l[0] == '#') {
            if (i != lv->n - 1) {
                *why = "'#' must be the last level";
                return -1;
            }
            continue;
        }
        for (size_t j = 0; j < len; j++) {
            if (l[j] == '+' || l[j] == '*' || l[j] == '#') {
                *why = "a wildcard ('+', '*', '#') must be a whole level";
                return -1;
            }
        }
    }
    return 0;
}

bool rt_pattern_valid(const char *pattern)
{
    struct levels lv;
    const char *why;
    return pattern != NULL && rt_split_pattern(pattern, &lv, &why) == 0;
}

bool rt_subject_valid(const char *subject)
{
    struct levels lv;
    return subject != NULL && rt_split_levels(subject, &lv) == 0;
}

static bool topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool rt_topic_name_valid(const char *name)
{
    if (name == NULL) {
        return false;
    }
    size_t len = strnlen(name, RT_TOPIC_MAX + 1);
    if (len == 0 || len > RT_TOPIC_MAX) {
        return false;
    }
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!topic_char_ok(name[i])) {
            return false;
        }
    }
    return true;
}

bool rt_match(const char *pattern, const char *subject)
{
    struct levels pl, sl;
    const char *why;
    if (pattern == NULL || subject == NULL || rt_split_pattern(pattern, &pl, &why) < 0 ||
        rt_split_levels(subject, &sl) < 0) {
        return false;
    }
    bool dollar = subject[0] == '$';
    for (int i = 0; i < pl.n; i++) {
        if (rt_level_is(pattern, &pl, i, '#')) {
            return !(i == 0 && dollar);
        }
        if (i >= sl.n) {
            return false;
        }
        if (rt_level_is_one(pattern, &pl, i)) {
            if (i == 0 && dollar) {
                return false;
            }
            continue;
        }
        if (pl.len[i] != sl.len[i] ||
            memcmp(pattern + pl.off[i], subject + sl.off[i], pl.len[i]) != 0) {
            return false;
        }
    }
    return pl.n == sl.n;
}

/* ---- templates ---------------------------------------------------------------------- */

int rt_check_topic_template(const char *tpl, bool *templated, const char **why)
{
    *templated = false;
    size_t len = strlen(tpl);
    if (len == 0) {
        *why = "empty topic name";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (tpl[i] == '{') {
            if (i + 2 < len && tpl[i + 1] >= '1' && tpl[i + 1] <= '9' &&
                tpl[i + 2] == '}') {
                *templated = true;
                i += 2;
                continue;
            }
            *why = "'{' must start {1}..{9}";
            return -1;
        }
        if (!topic_char_ok(tpl[i])) {
            *why = "topic names use only [a-zA-Z0-9._-] (and {1}..{9})";
            return -1;
        }
    }
    if (!*templated && !rt_topic_name_valid(tpl)) {
        *why = "not a valid topic name (1..249 of [a-zA-Z0-9._-], not \".\" or \"..\")";
        return -1;
    }
    return 0;
}

int rt_check_dest_template(const char *tpl)
{
    for (const char *p = tpl; *p != '\0'; p++) {
        if (*p == '{') {
            if (strncmp(p, "{subject}", 9) == 0) {
                p += 8;
            } else if (strncmp(p, "{topic}", 7) == 0) {
                p += 6;
            } else if (p[1] >= '1' && p[1] <= '9' && p[2] == '}') {
                p += 2;
            } else {
                return -1;
            }
        } else if (*p == '}') {
            return -1;
        }
    }
    return 0;
}

/* ---- destination rendering ---------------------------------------------------------- */

struct writer {
    char *out;
    size_t size;
    size_t pos;
};

static void put(struct writer *wr, const char *s, size_t len)
{
    if (wr->pos < wr->size) {
        size_t room = wr->size - wr->pos;
        memcpy(wr->out + wr->pos, s, len < room ? len : room);
    }
    wr->pos += len;
}

int rt_render_destination(const struct rt_egress *b, const char *topic, const char *subject,
                          char *out, size_t outsz)
{
    const char *tpl = b->destination != NULL ? b->destination : "{subject}";
    struct levels lv;
    bool have_levels = subject != NULL && rt_split_levels(subject, &lv) == 0;
    struct writer wr = { .out = out, .size = outsz, .pos = 0 };
    if (topic == NULL) {
        topic = "";
    }
    if (subject == NULL) {
        subject = "";
    }
    for (const char *p = tpl; *p != '\0'; p++) {
        if (*p == '{' && strncmp(p, "{subject}", 9) == 0) {
            put(&wr, subject, strlen(subject));
            p += 8;
        } else if (*p == '{' && strncmp(p, "{topic}", 7) == 0) {
            put(&wr, topic, strlen(topic));
            p += 6;
        } else if (*p == '{' && p[1] >= '1' && p[1] <= '9' && p[2] == '}') {
            int lvl = p[1] - '1';
            if (!have_levels || lvl >= lv.n) {
                return -EINVAL;
            }
            put(&wr, subject + lv.off[lvl], lv.len[lvl]);
            p += 2;
        } else {
            put(&wr, p, 1);
        }
    }
    if (wr.pos >= outsz || wr.pos > INT32_MAX) {
        if (outsz > 0) {
            out[0] = '\0';
        }
        return -ENOSPC;
    }
    out[wr.pos] = '\0';
    return (int)wr.pos;
}

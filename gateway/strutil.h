/*
 * Small string helpers for hot paths, where snprintf("%s") costs more than the copy.
 * Pure; any thread.
 */
#ifndef SL_STRUTIL_H
#define SL_STRUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Copy src into dst of size sz (> 0), truncating, always NUL-terminated. Returns the
 * length copied. */
static inline size_t sl_strlcpy(char *dst, const char *src, size_t sz)
{
    size_t n = strnlen(src, sz - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* Write v in decimal at p (room for 20 characters needed); returns the end. */
static inline char *sl_put_i64(char *p, int64_t v)
{
    char tmp[20];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    if (v < 0) {
        *p++ = '-';
    }
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

#endif

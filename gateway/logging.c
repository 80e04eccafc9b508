#include "gateway/logging.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static _Atomic int current_level = SL_LL_INFO;

void sl_logging_set_level(enum sl_log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum sl_log_level sl_logging_level(void)
{
    return (enum sl_log_level)atomic_load(&current_level);
}

void sl_logf(enum sl_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[2048];
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if ((int)level > atomic_load(&current_level)) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fprintf per line: stdio's lock keeps lines from different threads whole. */
    fprintf(stderr, "%s.%03ldZ %s %s\n", ts, now.tv_nsec / 1000000, names[level], line);
}

void sl_logf_limited(struct sl_ratelimit *rl, long long interval_ms, enum sl_log_level level,
                     const char *fmt, ...)
{
    struct timespec now;
    long long now_ms, next;
    unsigned long long held;
    char line[1900];
    va_list ap;

    if ((int)level > atomic_load(&current_level)) {
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    now_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    next = atomic_load(&rl->next_ms);
    if (now_ms < next ||
        !atomic_compare_exchange_strong(&rl->next_ms, &next, now_ms + interval_ms)) {
        atomic_fetch_add(&rl->held, 1);
        return;
    }
    held = atomic_exchange(&rl->held, 0);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (held > 0) {
        sl_logf(level, "%s (and %llu more like it since the last report)", line, held);
    } else {
        sl_logf(level, "%s", line);
    }
}

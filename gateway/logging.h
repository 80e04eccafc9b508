/*
 * Daemon log lines on stderr (journald adds its own timestamps under systemd):
 * "LEVEL [instance] message". Any thread.
 */
#ifndef SL_LOGGING_H
#define SL_LOGGING_H

#include "gateway/config.h"

void sl_logging_set_level(enum sl_log_level level);
enum sl_log_level sl_logging_level(void);
void sl_logf(enum sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A repeating event's log line, at most once per interval: the others are counted and
 * the next line that goes out says how many were left out. Zero-initialise one per
 * event source (static or in a struct). */
struct sl_ratelimit {
    _Atomic long long next_ms;       /* monotonic ms before which lines are held back */
    _Atomic unsigned long long held; /* lines left out since the last one written */
};

/* sl_logf through rl: written if interval_ms has passed since rl's last line, else
 * counted. Any thread. */
void sl_logf_limited(struct sl_ratelimit *rl, long long interval_ms, enum sl_log_level level,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define sl_error(...) sl_logf(SL_LL_ERROR, __VA_ARGS__)
#define sl_warn(...) sl_logf(SL_LL_WARN, __VA_ARGS__)
#define sl_info(...) sl_logf(SL_LL_INFO, __VA_ARGS__)
#define sl_debug(...) sl_logf(SL_LL_DEBUG, __VA_ARGS__)

#endif

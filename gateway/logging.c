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

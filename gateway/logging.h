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

#define sl_error(...) sl_logf(SL_LL_ERROR, __VA_ARGS__)
#define sl_warn(...) sl_logf(SL_LL_WARN, __VA_ARGS__)
#define sl_info(...) sl_logf(SL_LL_INFO, __VA_ARGS__)
#define sl_debug(...) sl_logf(SL_LL_DEBUG, __VA_ARGS__)

#endif

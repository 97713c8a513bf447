/* Logging to stderr (journald) or syslog. Never pass a secret to these functions. */
#ifndef ALERTMAIL_LOG_H
#define ALERTMAIL_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* verbosity: 0 quiet (errors only), 1 normal (notices and up), 2 verbose (info), 3 debug. */
void log_init(const char *ident, int verbosity, bool use_syslog);
/* Prefix each stderr line with the local time (for a log file; journald has its own). */
void log_set_timestamps(bool on);
void log_msg(int priority, const char *subsystem, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(sub, ...) log_msg(LOG_ERR, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_msg(LOG_WARNING, sub, __VA_ARGS__)
#define log_notice(sub, ...) log_msg(LOG_NOTICE, sub, __VA_ARGS__)
#define log_info(sub, ...) log_msg(LOG_INFO, sub, __VA_ARGS__)
#define log_debug(sub, ...) log_msg(LOG_DEBUG, sub, __VA_ARGS__)

#endif

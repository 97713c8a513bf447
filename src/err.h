/* A caller-supplied error: functions return a status and fill this with a human message. */
#ifndef ALERTMAIL_ERR_H
#define ALERTMAIL_ERR_H

#include <stdarg.h>

struct err {
	char msg[1024];
};

void err_set(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_vset(struct err *e, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Prefixes the existing message: "prefix: old message". */
void err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

#include "config.h"

#include "err.h"

#include <stdio.h>
#include <string.h>

void err_vset(struct err *e, const char *fmt, va_list ap)
{
	if (e == NULL)
		return;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
}

void err_set(struct err *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vset(e, fmt, ap);
	va_end(ap);
}

void err_prefix(struct err *e, const char *fmt, ...)
{
	char prefix[512];
	size_t plen, olen, room;
	va_list ap;

	if (e == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	plen = strlen(prefix);
	olen = strnlen(e->msg, sizeof(e->msg) - 1);
	/* Truncating the tail of a long message is fine: the prefix says where. */
	room = sizeof(e->msg) - 1 - plen - 2;
	if (olen > room)
		olen = room;
	memmove(e->msg + plen + 2, e->msg, olen);
	memcpy(e->msg, prefix, plen);
	e->msg[plen] = ':';
	e->msg[plen + 1] = ' ';
	e->msg[plen + 2 + olen] = '\0';
}

#include "config.h"

#include "err.h"

#include <stdio.h>
#include <string.h>

#include "charset.h"

/* Copies text into dst (size bytes) with its control characters escaped, so that a message
 * that quotes alert or config data stays one line of text that a terminal cannot be steered
 * by. A message too long for dst loses its tail, never half of an escape or a character. */
static void escape_into(char *dst, size_t size, const char *text)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t n = strlen(text), i = 0, o = 0;

	while (i < n) {
		char t[8];
		size_t adv, len = charset_escape_char(s + i, n - i, &adv, t);

		if (o + len >= size)
			break;
		memcpy(dst + o, t, len);
		o += len;
		i += adv;
	}
	dst[o] = '\0';
}

/* A message cut short by vsnprintf may end in part of a character: drop that part. */
static void drop_cut_char(char *s)
{
	size_t n = strlen(s), i = n, want;
	unsigned char lead;

	while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0 || (unsigned char)s[i - 1] < 0xc0)
		return;
	lead = (unsigned char)s[i - 1];
	want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	if (n - (i - 1) < want)
		s[i - 1] = '\0';
}

void err_vset(struct err *e, const char *fmt, va_list ap)
{
	char raw[sizeof(e->msg)];

	if (e == NULL)
		return;
	if (vsnprintf(raw, sizeof(raw), fmt, ap) >= (int)sizeof(raw))
		drop_cut_char(raw);
	escape_into(e->msg, sizeof(e->msg), raw);
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
	char raw[512], prefix[512];
	size_t plen, olen, room;
	va_list ap;

	if (e == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape_into(prefix, sizeof(prefix), raw);
	plen = strlen(prefix);
	olen = strnlen(e->msg, sizeof(e->msg) - 1);
	/* Truncating the tail of a long message is fine: the prefix says where. */
	room = sizeof(e->msg) - 1 - plen - 2;
	if (olen > room) {
		olen = room;
		/* Not in the middle of a character. */
		while (olen > 0 && ((unsigned char)e->msg[olen] & 0xc0) == 0x80)
			olen--;
	}
	memmove(e->msg + plen + 2, e->msg, olen);
	memcpy(e->msg, prefix, plen);
	e->msg[plen] = ':';
	e->msg[plen + 1] = ' ';
	e->msg[plen + 2 + olen] = '\0';
}

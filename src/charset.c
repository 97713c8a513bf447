#include "config.h"

#include "charset.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"

/* By hand: <ctype.h> answers by locale, mail syntax is ASCII. */
bool charset_is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool charset_is_atext(unsigned char c)
{
	return charset_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

long charset_utf8_decode(const unsigned char *s, size_t n, size_t *adv)
{
	unsigned char c = s[0];
	size_t need, i;
	long cp, min;

	*adv = 1;
	if (c < 0x80)
		return c;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return -1;
	}
	if (n <= need)
		return -1;
	for (i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*adv = need + 1;
	return cp;
}

size_t charset_utf8_invalid_at(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		size_t adv;
		if (charset_utf8_decode(s + i, n - i, &adv) < 0)
			return i;
		i += adv;
	}
	return n;
}

bool charset_utf8_valid(const char *str)
{
	size_t n = strlen(str);

	return charset_utf8_invalid_at(str, n) == n;
}

bool charset_is_control(long cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 ||
	       cp == 0x2029;
}

size_t charset_escape_char(const unsigned char *s, size_t n, size_t *adv, char dst[8])
{
	long cp = charset_utf8_decode(s, n, adv);

	if (cp < 0 || (cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t') || cp == 0x7f)
		return (size_t)snprintf(dst, 8, "\\x%02x", s[0]);
	if (cp == '\n' || cp == '\r' || cp == '\t') {
		dst[0] = '\\';
		dst[1] = (char)(cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't');
		dst[2] = '\0';
		return 2;
	}
	if (charset_is_control(cp))
		return (size_t)snprintf(dst, 8, "\\u%04lx", cp);
	memcpy(dst, s, *adv);
	dst[*adv] = '\0';
	return *adv;
}

void charset_utf8_put(struct buf *b, long cp)
{
	unsigned char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (unsigned char)(0xc0 | (cp >> 6));
		s[1] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (unsigned char)(0xe0 | (cp >> 12));
		s[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		s[2] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		s[0] = (unsigned char)(0xf0 | (cp >> 18));
		s[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		s[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		s[3] = (unsigned char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_add(b, s, n);
}

#include "config.h"

#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: check failed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#ifndef FUZZ_SRCDIR
#define FUZZ_SRCDIR "."
#endif

void fuzz_set_datadir(void)
{
	setenv("ALERTMAIL_DATADIR", FUZZ_SRCDIR, 0);
}

static void check_line(const char *what, const char *s, size_t len, const char *prefix)
{
	size_t plen = strlen(prefix);

	if (len < plen || memcmp(s, prefix, plen) != 0)
		fuzz_fail("%s does not start with '%s': '%.*s'", what, prefix, (int)len, s);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			fuzz_fail("%s contains the control character 0x%02x at %zu: '%.*s'", what,
			          c, i, (int)len, s);
	}
}

void fuzz_check_message(const char *what, const char *msg, const char *prefix)
{
	check_line(what, msg, strlen(msg), prefix);
}

void fuzz_check_messages(const char *what, const char *s, size_t len, const char *prefix)
{
	size_t i = 0;

	if (len > 0 && s[len - 1] != '\n')
		fuzz_fail("%s does not end with a line break", what);
	while (i < len) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t n = (size_t)(nl - (s + i));

		check_line(what, s + i, n, prefix);
		i += n + 1;
	}
}

void fuzz_fields_split(const uint8_t *data, size_t size, struct fuzz_fields *f)
{
	const char *p = (const char *)data;
	size_t left = size;

	memset(f, 0, sizeof(*f));
	while (f->n < FUZZ_MAX_FIELDS) {
		const char *nul = left > 0 ? memchr(p, '\0', left) : NULL;
		size_t n = nul != NULL ? (size_t)(nul - p) : left;

		f->v[f->n] = xstrndup(p != NULL ? p : "", n);
		f->len[f->n] = n;
		f->n++;
		if (nul == NULL)
			break;
		p = nul + 1;
		left -= n + 1;
	}
}

void fuzz_fields_free(struct fuzz_fields *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i]);
	memset(f, 0, sizeof(*f));
}

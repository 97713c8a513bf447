/* Growable byte buffers and checked allocation. */
#ifndef ALERTMAIL_BUF_H
#define ALERTMAIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* always NUL-terminated once anything was added */
	size_t len;
	size_t cap;
};

/* Allocation failure is fatal: the process logs and aborts. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Appends s with control characters and bytes that are not UTF-8 escaped (\r, \n, \t, \xNN,
 * \uNNNN; see charset_escape_char): safe for one log line. */
void buf_add_escaped(struct buf *b, const char *s);
/* Hands the NUL-terminated contents to the caller and empties the buffer. */
char *buf_steal(struct buf *b);

#endif

/* Characters of mail syntax (ASCII classes, not the locale's) and UTF-8. Pure functions. */
#ifndef ALERTMAIL_CHARSET_H
#define ALERTMAIL_CHARSET_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

bool charset_is_alnum(unsigned char c);
/* RFC 5322 atext. */
bool charset_is_atext(unsigned char c);

/* Decodes one UTF-8 sequence at s (n > 0 bytes). Returns the code point, or -1 for an invalid
 * byte (overlong forms, surrogates and values past U+10FFFF too); *adv is then 1 so each bad
 * byte can be replaced on its own. */
long charset_utf8_decode(const unsigned char *s, size_t n, size_t *adv);
/* True when the whole NUL-terminated string is valid UTF-8 by the rules above. */
bool charset_utf8_valid(const char *str);
/* The offset of the first byte of s (n bytes) that is not valid UTF-8, or n when all are. */
size_t charset_utf8_invalid_at(const char *str, size_t n);

/* Characters that break a line or steer a terminal, and so must never reach a header or a
 * log line as they are: the C0 controls, DEL, the C1 controls (NEL among them) and the
 * Unicode line and paragraph separators (U+2028, U+2029). */
bool charset_is_control(long cp);

/* Writes into dst the text for the character at s (n > 0 bytes): the character itself, or
 * an escape when it is a control (\n, \r, \t, \xNN for the other C0 controls and DEL,
 * \uNNNN for the rest) or a byte that is not valid UTF-8 (\xNN). Sets *adv to the bytes
 * consumed; returns the length written (dst is NUL-terminated). */
size_t charset_escape_char(const unsigned char *s, size_t n, size_t *adv, char dst[8]);

/* Appends the UTF-8 encoding of the code point cp (0 to 0x10FFFF) to b. */
void charset_utf8_put(struct buf *b, long cp);

#endif

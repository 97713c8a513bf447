/* Characters of mail syntax (ASCII classes, not the locale's) and UTF-8. Pure functions. */
#ifndef ALERTMAIL_CHARSET_H
#define ALERTMAIL_CHARSET_H

#include <stdbool.h>
#include <stddef.h>

bool charset_is_alnum(unsigned char c);
/* RFC 5322 atext. */
bool charset_is_atext(unsigned char c);

/* Decodes one UTF-8 sequence at s (n > 0 bytes). Returns the code point, or -1 for an invalid
 * byte (overlong forms, surrogates and values past U+10FFFF too); *adv is then 1 so each bad
 * byte can be replaced on its own. */
long charset_utf8_decode(const unsigned char *s, size_t n, size_t *adv);
/* True when the whole NUL-terminated string is valid UTF-8 by the rules above. */
bool charset_utf8_valid(const char *str);

#endif

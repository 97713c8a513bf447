/* The invariants of a message that message_compose() made, checked by reading it back the way
 * a mail reader would: line ends, line lengths, header syntax, encoded words, the mailboxes of
 * From and To, and the quoted-printable bodies. A violation is fuzz_fail(). */
#ifndef ALERTMAIL_FUZZ_MSGCHECK_H
#define ALERTMAIL_FUZZ_MSGCHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "mailbox.h"

/* What the message must decode to. The strings are the composer's input, before it cleans
 * them (the checker cleans them its own way); NULL for a field means "not known: check the
 * syntax only". */
struct msgcheck_expect {
	const char *subject;
	const struct mailbox *from;
	const struct mailbox *to;
	size_t nto;
	bool multipart; /* an HTML part was given */
	const char *text;
	const char *html;
};

void msgcheck_message(const char *m, size_t len, const struct msgcheck_expect *x);

/* Header text as the composer promises to write it: valid UTF-8 (each bad byte U+FFFD), every
 * run of control characters and spaces one space, trimmed. Caller frees. */
char *msgcheck_clean_header(const char *in);

#endif

/* RFC 5322 / MIME composition: headers, RFC 2047 encoded words, quoted-printable. */
#ifndef ALERTMAIL_MESSAGE_H
#define ALERTMAIL_MESSAGE_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "mailbox.h"

struct message_in {
	const struct mailbox *from;
	const struct mailbox *to; /* count nto */
	size_t nto;
	const char *subject;  /* UTF-8; CR/LF/TAB runs become one space */
	const char *text;     /* UTF-8 text body; any line ends */
	const char *html;     /* UTF-8 HTML body or NULL */
	const char *alert_id; /* Message-ID is derived from it: same id, same Message-ID */
	time_t date;
	/* An alert fanned out to several channels is a message of its own on each: the channel
	 * goes into the Message-ID too. NULL: the alert's id alone. */
	const char *id_channel;
};

/* Composes the whole message with CRLF line ends into out (appended). Headers: Date,
 * Message-ID, From, To, Subject, MIME-Version, Auto-Submitted: auto-generated, Content-Type,
 * Content-Transfer-Encoding. No line exceeds 998 octets; header values can never contain a
 * bare CR or LF from the input. */
int message_compose(const struct message_in *in, struct buf *out, struct err *e);

/* Building blocks, exposed for tests. */
/* Appends "Name: value" folded at 78 columns; non-ASCII words become RFC 2047 encoded words
 * (UTF-8, B or Q), each at most 75 octets, never splitting a UTF-8 sequence. CRLF-terminated. */
void message_header_unstructured(struct buf *out, const char *name, const char *value);
/* Appends text as quoted-printable (RFC 2045), normalising line ends to CRLF. */
void message_qp_encode(struct buf *out, const char *text, size_t len);
/* The Message-ID value (with angle brackets) for an alert id and a domain. */
char *message_id_for(const char *alert_id, const char *domain);
/* The same for the alert's message on one of the channels it fans out to:
 * <alert.ID+CHANNEL@domain> (either part hashed when it does not fit a dot-atom). channel
 * NULL: message_id_for(). */
char *message_id_for_channel(const char *alert_id, const char *channel, const char *domain);

#endif

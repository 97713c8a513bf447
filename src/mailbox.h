/* Mail addresses: a mailbox with its display name, and a bare envelope address. */
#ifndef ALERTMAIL_MAILBOX_H
#define ALERTMAIL_MAILBOX_H

#include "err.h"

/* One mailbox: an optional display name (UTF-8) and an addr-spec local@domain. */
struct mailbox {
	char *display; /* NULL when absent */
	char *addr;
};

/* Parses "Name <local@domain>", "<local@domain>" or "local@domain". The display name may be
 * quoted. Refuses CR, LF, NUL, other control characters (C1, NEL, U+2028 and U+2029 too),
 * text that is not UTF-8, more than 998 bytes in all, and anything that is not a single
 * plausible address. */
int mailbox_parse(const char *in, struct mailbox *out, struct err *e);
void mailbox_free(struct mailbox *m);
/* Checks a bare envelope address (for MAIL FROM / RCPT TO): local@domain, no <>, spaces,
 * control characters. */
int message_check_addr(const char *addr, struct err *e);
/* Checks the domain of an address: a host name or an address literal such as [192.0.2.1].
 * Returns 0 when it is plausible, -1 when not. */
int mailbox_check_domain(const char *domain);

#endif

/* Server replies with a known cause, Office 365's above all: a one-line hint at the cause and
 * the fix for each, and the few 5xx replies that are temporary all the same. Pure functions
 * over one table. */
#ifndef ALERTMAIL_SMTP_HINT_H
#define ALERTMAIL_SMTP_HINT_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp.h"

struct smtp_hint {
	int code;             /* the reply code */
	const char *enhanced; /* the enhanced status code, exactly */
	const char *needle;   /* a part of the text, any case; NULL: any text */
	bool temporary;       /* a 5xx that goes away by itself: TEMPFAIL, not PERMFAIL */
	const char *text;     /* the hint: one line, no trailing period */
};

/* The table entry for a reply, or NULL when alertmail knows nothing particular about it. */
const struct smtp_hint *smtp_hint_find(const struct smtp_reply *r);
/* The hint text for a reply, or NULL. */
const char *smtp_hint_for(const struct smtp_reply *r);
/* True for a reply that is temporary whatever its code says. */
bool smtp_hint_temporary(const struct smtp_reply *r);
/* Appends " (hint: ...)" for r to the line in detail, in the room that is left: what detail
 * already holds (the server's reply) is never cut for it; a hint that does not fit whole is
 * cut at a word and ends in "...", or left out when too little of it would fit. */
void smtp_hint_append(const struct smtp_reply *r, char *detail, size_t detail_len);

#endif

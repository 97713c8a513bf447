/* A notification: an alert rendered through a channel's template into a message and envelope. */
#ifndef ALERTMAIL_NOTIFY_H
#define ALERTMAIL_NOTIFY_H

#include <stddef.h>

#include "alert.h"
#include "buf.h"
#include "conf.h"
#include "err.h"
#include "mailtmpl.h"

struct notification {
	struct buf message; /* the whole RFC 5322 message, CRLF line ends */
	char *mail_from;    /* envelope sender (addr-spec) */
	char **rcpt;        /* envelope recipients (addr-spec) */
	size_t nrcpt;
	char *subject; /* as rendered, for logs */
};

/* Renders a for channel ch through template t. Recipients are the channel's, or to[] when
 * nto > 0. */
int notify_build(const struct config *cfg, const struct channel *ch, const struct mail_template *t,
                 const struct alert *a, char *const *to, size_t nto, struct notification *n,
                 struct err *e);
/* The same for one entry of an alert fanned out to several channels: the Message-ID names
 * the channel too (message_id_for_channel), so that each channel's message is its own. */
int notify_build_fanout(const struct config *cfg, const struct channel *ch,
                        const struct mail_template *t, const struct alert *a,
                        struct notification *n, struct err *e);
void notify_free(struct notification *n);

#endif

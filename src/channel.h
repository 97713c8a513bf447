/* Failover across a channel's servers, one connection per server entry. */
#ifndef ALERTMAIL_CHANNEL_H
#define ALERTMAIL_CHANNEL_H

#include <stddef.h>

#include "conf.h"
#include "smtp.h"

/* The connections of one config, one per server entry (never shared between entries). */
struct smtp_pool;

struct smtp_pool *smtp_pool_new(const struct config *c);
/* The connection for a server entry of the pool's config. */
struct smtp_conn *smtp_pool_get(struct smtp_pool *p, const struct server *s);
void smtp_pool_free(struct smtp_pool *p);

struct attempt {
	const struct server *server;
	struct smtp_result result;
};

struct delivery {
	/* OK once a server accepted; PERMFAIL if every server refused for good. */
	enum outcome outcome;
	struct attempt *attempts;
	size_t nattempts;
	const struct server *accepted_by;
};

/* Tries the channel's servers in order until one accepts. Every failure (connection, TLS,
 * AUTH, SMTP) moves on to the next server. */
enum outcome channel_deliver(const struct channel *ch, struct smtp_pool *pool,
                             const char *mail_from, char *const *rcpt, size_t nrcpt,
                             const char *msg, size_t len, struct delivery *d);
void delivery_free(struct delivery *d);

/* Pure: the outcome of a whole delivery from its attempts. */
enum outcome delivery_outcome(const struct attempt *a, size_t n);

#endif

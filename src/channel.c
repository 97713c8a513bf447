#include "config.h"

#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct smtp_pool {
	const struct config *config;
	struct smtp_conn **conns; /* parallel to config->servers */
};

struct smtp_pool *smtp_pool_new(const struct config *c)
{
	struct smtp_pool *p = xcalloc(1, sizeof(*p));

	p->config = c;
	p->conns = xcalloc(c->nservers ? c->nservers : 1, sizeof(struct smtp_conn *));
	return p;
}

struct smtp_conn *smtp_pool_get(struct smtp_pool *p, const struct server *s)
{
	/* Server entries live in one array, config->servers, and conns is parallel to it, so an
	 * entry's index there is its connection's index: no lookup by name or host, and two
	 * entries for the same host never share a connection. Callers pass entries of the pool's
	 * own config; the range check only guards against a mistake. */
	size_t i = (size_t)(s - p->config->servers);

	if (i >= p->config->nservers)
		return NULL;
	if (p->conns[i] == NULL)
		p->conns[i] = smtp_conn_new(s);
	return p->conns[i];
}

void smtp_pool_free(struct smtp_pool *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->config->nservers; i++)
		smtp_conn_free(p->conns[i]);
	free(p->conns);
	free(p);
}

enum outcome delivery_outcome(const struct attempt *a, size_t n)
{
	bool all_perm = n > 0;

	for (size_t i = 0; i < n; i++) {
		if (a[i].result.outcome == OUTCOME_OK)
			return OUTCOME_OK;
		if (a[i].result.outcome != OUTCOME_PERMFAIL)
			all_perm = false;
	}
	return all_perm ? OUTCOME_PERMFAIL : OUTCOME_TEMPFAIL;
}

enum outcome channel_deliver(const struct channel *ch, struct smtp_pool *pool,
                             const char *mail_from, char *const *rcpt, size_t nrcpt,
                             const char *msg, size_t len, struct delivery *d)
{
	memset(d, 0, sizeof(*d));
	d->attempts = xcalloc(ch->nservers, sizeof(*d->attempts));
	for (size_t i = 0; i < ch->nservers; i++) {
		const struct server *s = ch->servers[i];
		struct attempt *a = &d->attempts[d->nattempts++];
		struct smtp_conn *conn = smtp_pool_get(pool, s);

		a->server = s;
		if (conn == NULL) {
			a->result.outcome = OUTCOME_TEMPFAIL;
			snprintf(a->result.detail, sizeof(a->result.detail),
			         "cannot create a connection");
			continue;
		}
		smtp_send(conn, mail_from, rcpt, nrcpt, msg, len, &a->result);
		log_debug("smtp", "transcript with %s:\n%s", s->name, smtp_transcript(conn));
		if (a->result.outcome == OUTCOME_OK) {
			d->accepted_by = s;
			break;
		}
		log_info("channel", "%s: server %s: %s", ch->name, s->name, a->result.detail);
	}
	d->outcome = delivery_outcome(d->attempts, d->nattempts);
	return d->outcome;
}

void delivery_free(struct delivery *d)
{
	free(d->attempts);
	memset(d, 0, sizeof(*d));
}

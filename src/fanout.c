/* Routing in the daemon, and fan-out: an alert that routing sends to N channels becomes N
 * entries of the spool, each pinned to its channel by its queue id ("QID+CHANNEL") and from
 * then on delivered, deferred, retried and failed on its own.
 *
 * Why nothing is lost when the daemon dies at any point: the alert's own entry (active/QID)
 * is not pinned until the entries for its other channels are durable. Until then a restart
 * finds it unpinned and fans it out again; an entry that exists already is kept, not made a
 * second time. The steps, for a batch of alerts at once:
 *   1. each other channel: active/QID+CHANNEL, a hard link to the same file (or a copy of its
 *      bytes written into tmp/ where the kernel refuses the link);
 *   2. the batch made durable: one syncfs for the copies written (none when all are links),
 *      their links into active/, one fsync of active/;
 *   3. each alert pinned to its first channel: rename active/QID -> active/QID+CHANNEL;
 *   4. the alert and its other entries back into the ready queue, each prepared and delivered
 *      as a pinned entry. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"
#include "conf.h"
#include "daemon_int.h"
#include "log.h"
#include "route.h"
#include "spool.h"

/* Alerts fanned out per batch: the sync is shared by this many; their deliveries wait for it. */
#define FANOUT_BATCH 256

_Static_assert(CONFIG_CHANNEL_NAME_MAX <= SPOOL_PIN_MAX, "a queue id holds any channel name");

/* An alert being fanned out, from its routing until its batch is durable. */
struct fanout {
	char **qids;  /* the entries made for the other channels (or made already) */
	char **chans; /* their channels */
	size_t n;
	char first[CONFIG_CHANNEL_NAME_MAX + 1]; /* the alert's own entry's channel */
	char pin[SPOOL_QID_MAX];                 /* its queue id pinned to that channel */
	char *failed; /* an entry could not be made: the alert waits, unpinned */
	bool by_continue;
};

void fanout_free(struct fanout *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->qids[i]);
		free(f->chans[i]);
	}
	free(f->qids);
	free(f->chans);
	free(f->failed);
	free(f);
}

/* The entries for picks[1..n-1] into the spool's batch, recorded in j->fan. */
static void fanout_make(struct daemon *d, struct job *j, const struct route_pick *picks, size_t n,
                        const struct buf *data)
{
	struct fanout *f = xcalloc(1, sizeof(*f));
	struct err e;

	j->fan = f;
	f->qids = xcalloc(n, sizeof(*f->qids));
	f->chans = xcalloc(n, sizeof(*f->chans));
	f->by_continue = picks[n - 1].rule == ROUTE_RULE_CONTINUE;
	snprintf(f->first, sizeof(f->first), "%s", picks[0].channel->name);
	if (d->copies == NULL)
		d->copies = spool_copies_new();
	if (spool_qid_pin(j->qid, f->first, f->pin) < 0) {
		f->failed = xasprintf("queue id %s with channel %s is too long", j->qid, f->first);
		return;
	}
	for (size_t i = 1; i < n; i++) {
		const char *name = picks[i].channel->name;
		char qid[SPOOL_QID_MAX];
		int rc;

		if (spool_qid_pin(j->qid, name, qid) < 0) {
			f->failed =
			    xasprintf("queue id %s with channel %s is too long", j->qid, name);
			return;
		}
		rc = spool_copy(d->spool, d->copies, j->qid, qid, data->data, data->len, &e);
		if (rc < 0) {
			f->failed = xasprintf("the entry for channel %s: %s", name, e.msg);
			return;
		}
		/* Made by an earlier fan-out of this alert, before the daemon stopped: that entry
		 * is the channel's, delivered on its own. */
		if (rc == 1) {
			log_info("route", "%s: the entry %s for channel %s exists already", j->qid,
			         qid, name);
			continue;
		}
		f->qids[f->n] = xstrdup(qid);
		f->chans[f->n] = xstrdup(name);
		f->n++;
	}
}

const struct channel *job_channel(struct daemon *d, struct job *j, const struct buf *data,
                                  struct err *e)
{
	const char *pin = spool_qid_channel(j->qid);
	struct route_pick *picks;
	const struct channel *ch = NULL;
	size_t n;

	if (pin == NULL && j->meta.channel[0] != '\0')
		pin = j->meta.channel;
	/* Pinned: never routed again, whatever the routes say now. */
	if (pin != NULL) {
		ch = config_channel(d->cfg, pin);
		if (ch == NULL)
			err_set(e,
			        "channel %s: the entry is pinned to this channel (%s), which the "
			        "config no longer defines",
			        pin,
			        pin == j->meta.channel
			            ? "it was routed there before"
			            : "one of the entries of an alert fanned out");
		return ch;
	}
	picks = xcalloc(d->cfg->nchannels + 1, sizeof(*picks));
	n = route_pick(d->cfg, j->alert, picks, NULL, e);
	if (n > 0)
		ch = picks[0].channel;
	if (n > 1)
		fanout_make(d, j, picks, n, data);
	free(picks);
	return ch;
}

/* The alert waits, unpinned, for its next round: the entries it still lacks are made then
 * (those made already are kept). Its own channel has not had it either: nothing is lost. */
static void fanout_defer(struct daemon *d, struct job *j, const char *why)
{
	struct err e;
	time_t wall = time(NULL);
	int64_t wait = d->cfg->retry_initial_ms;

	j->meta.attempts++;
	if (j->meta.first_failed == 0)
		j->meta.first_failed = wall;
	j->meta.channel[0] = '\0';
	snprintf(j->meta.last_error, sizeof(j->meta.last_error), "fan-out: %s", why);
	j->meta.next_attempt = wall + (time_t)(wait / 1000);
	if (spool_defer(d->spool, j->qid, &j->meta, &e) < 0) {
		log_err("spool", "%s: cannot defer: %s", j->qid, e.msg);
	} else {
		log_err("route", "%s id=%s: cannot fan out: %s; the alert waits %lld s", j->qid,
		        j->alert->id, why, (long long)(wait / 1000));
		retry_push(d, now_ms() + wait, j->qid);
		d->deferred++;
	}
	job_free(j);
}

void fanout_hold(struct daemon *d, struct job *j)
{
	j->next = NULL;
	if (d->fan_tail != NULL)
		d->fan_tail->next = j;
	else
		d->fan_head = j;
	d->fan_tail = j;
	if (++d->nfan >= FANOUT_BATCH)
		fanout_commit(d);
}

/* The job for one other channel: the alert as j has it (the same id, even one made up for an
 * alert without), parsed once: the tree is copied, the file not read again. NULL when even
 * that fails (no memory is the only way): the entry is delivered after the next start. */
static struct job *copy_job(const struct job *j, const char *qid, const char *channel)
{
	struct job *c = job_new(qid);
	char name[SPOOL_QID_MAX + 16];
	struct err e;

	c->meta.received = j->meta.received;
	snprintf(c->meta.channel, sizeof(c->meta.channel), "%s", channel);
	c->fanned = true;
	snprintf(name, sizeof(name), "alert %s", qid);
	if (alert_from_tree(ynode_copy(j->alert->tree), name, j->alert->time, &c->alert, &e) < 0) {
		log_err("route", "%s: %s", qid, e.msg);
		job_free(c);
		return NULL;
	}
	if (strcmp(c->alert->id, j->alert->id) != 0) {
		free(c->alert->id);
		c->alert->id = xstrdup(j->alert->id);
	}
	return c;
}

/* One line for the decision: the alert, its channels and their entries. */
static void fanout_log(const struct job *j, const struct fanout *f)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "%s as %s", f->first, j->qid);
	for (size_t i = 0; i < f->n; i++)
		buf_printf(&b, ", %s as %s", f->chans[i], f->qids[i]);
	log_notice("route", "id=%s: to %zu channels by %s: %s", j->alert->id, f->n + 1,
	           f->by_continue ? "routes with continue" : "a route", b.data);
	buf_free(&b);
}

/* Pins the alert's own entry to its first channel: 0, or 1 when an entry for that channel
 * exists already (an earlier fan-out of the alert, under routes since changed, made it): that
 * one is delivered on its own, and this one is removed. */
static int fanout_pin(struct daemon *d, struct job *j, const struct fanout *f)
{
	struct err e;
	int rc = spool_rename_active(d->spool, j->qid, f->pin, &e);

	if (rc == 0) {
		snprintf(j->qid, sizeof(j->qid), "%s", f->pin);
	} else if (rc < 0) {
		/* Delivered as it is: should the daemon stop first, the alert fans out again
		 * (its other entries are kept) and this channel may get it twice. */
		log_warn("route", "%s: not pinned to channel %s by name: %s", j->qid, f->first,
		         e.msg);
	}
	fanout_log(j, f);
	if (rc != 1)
		return 0;
	log_info("route", "%s: the entry %s for channel %s exists already", j->qid, f->pin,
	         f->first);
	if (spool_done(d->spool, j->qid, &e) < 0)
		log_err("spool", "%s: %s", j->qid, e.msg);
	return 1;
}

/* One held alert after its batch's sync: pinned to its first channel and back to the ready
 * queue with its other entries; or, an entry missing, deferred unpinned while the entries
 * that exist go on. */
static void fanout_start(struct daemon *d, struct job *j, bool durable)
{
	struct fanout *f = j->fan;
	const char *failed = f->failed;
	bool redundant = false;

	j->fan = NULL;
	if (failed == NULL && !durable)
		failed = "the entries could not be made durable";
	if (failed == NULL)
		redundant = fanout_pin(d, j, f) == 1;
	for (size_t i = 0; i < f->n; i++) {
		struct job *c;
		/* Not durable: the alert makes it again at its next round. */
		if (!durable && !spool_exists(d->spool, SPOOL_ACTIVE, f->qids[i]))
			continue;
		c = copy_job(j, f->qids[i], f->chans[i]);
		if (c != NULL)
			ready_push(d, c);
	}
	if (redundant) {
		job_free(j);
	} else if (failed != NULL) {
		fanout_defer(d, j, failed);
	} else {
		/* Pinned in memory too, whatever became of the rename. */
		snprintf(j->meta.channel, sizeof(j->meta.channel), "%s", f->first);
		j->fanned = true;
		ready_push(d, j);
	}
	fanout_free(f);
}

void fanout_commit(struct daemon *d)
{
	struct err e;
	bool durable;

	if (d->fan_head == NULL)
		return;
	durable = spool_copies_commit(d->spool, d->copies, &e) == 0;
	if (!durable)
		log_err("route", "fan-out of %zu alerts: %s", d->nfan, e.msg);
	while (d->fan_head != NULL) {
		struct job *j = d->fan_head;

		d->fan_head = j->next;
		j->next = NULL;
		fanout_start(d, j, durable);
	}
	d->fan_tail = NULL;
	d->nfan = 0;
}

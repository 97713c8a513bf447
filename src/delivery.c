/* Delivery: jobs (one alert each: prepared, tried, then delivered, deferred or failed), their
 * rounds across a channel's servers with failover memory and busy-server backoff, and each
 * server's slots (a libcurl multi to open a session, our own watch on the open session). */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "conf.h"
#include "daemon_dedup.h"
#include "daemon_int.h"
#include "duration.h"
#include "log.h"
#include "mailtmpl.h"
#include "notify.h"
#include "queue.h"
#include "smtp.h"
#include "smtp_hint.h"
#include "spool.h"

static void iso_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "@%lld", (long long)t);
}

/* ---- jobs ---- */

struct job *job_new(const char *qid)
{
	struct job *j = xcalloc(1, sizeof(*j));

	snprintf(j->qid, sizeof(j->qid), "%s", qid);
	buf_init(&j->meta.history);
	return j;
}

void job_free(struct job *j)
{
	if (j == NULL)
		return;
	alert_free(j->alert);
	notify_free(&j->n);
	spool_meta_free(&j->meta);
	fanout_free(j->fan);
	free(j);
}

/* Moves the alert to failed/ with the reason and its history of attempts. */
void job_fail(struct daemon *d, struct job *j, const char *why)
{
	struct buf r;
	struct err e;
	char now[32];

	iso_time(time(NULL), now, sizeof(now));
	buf_init(&r);
	buf_printf(&r, "%s\n", why);
	buf_printf(&r, "queue id: %s\n", j->qid);
	if (j->alert != NULL)
		buf_printf(&r, "alert id: %s\n", j->alert->id);
	if (j->chan != NULL)
		buf_printf(&r, "channel: %s\n", j->chan->conf->name);
	buf_printf(&r, "failed at: %s\n", now);
	if (j->meta.history.len > 0) {
		buf_adds(&r, "attempts:\n");
		buf_add(&r, j->meta.history.data, j->meta.history.len);
	}
	if (spool_fail(d->spool, SPOOL_ACTIVE, j->qid, r.data, &e) < 0)
		log_err("spool", "%s: cannot move to failed/: %s", j->qid, e.msg);
	else
		log_warn("delivery", "%s%s%s: failed: %s", j->qid, j->alert ? " id=" : "",
		         j->alert ? j->alert->id : "", why);
	d->failed++;
	dedup_job_failed(d, j);
	buf_free(&r);
	job_free(j);
}

/* Reads and parses the alert into j->alert; a bad alert goes to failed/ here. */
static int job_read(struct daemon *d, struct job *j, struct buf *b)
{
	struct err e;
	char name[SPOOL_QID_MAX + 16];

	if (spool_read(d->spool, SPOOL_ACTIVE, j->qid, d->cfg->max_alert_size, b, &e) < 0) {
		buf_free(b);
		job_fail(d, j, e.msg);
		return -1;
	}
	snprintf(name, sizeof(name), "alert %s", j->qid);
	if (alert_parse(b->data, b->len, name, time(NULL), &j->alert, &e) < 0) {
		buf_free(b);
		job_fail(d, j, e.msg);
		return -1;
	}
	return 0;
}

/* Reads, parses and renders the alert; a bad alert goes to failed/ here. Returns 1 for an
 * alert fanned out to several channels: it waits for its entries to be durable (fanout.c). */
int job_prepare(struct daemon *d, struct job *j)
{
	struct buf b;
	struct err e;
	const struct channel *ch;
	int rc;

	buf_init(&b);
	/* A fan-out entry made here has its alert already. */
	if (j->alert == NULL && job_read(d, j, &b) < 0)
		return -1;
	ch = job_channel(d, j, &b, &e);
	buf_free(&b);
	if (ch == NULL) {
		job_fail(d, j, e.msg);
		return -1;
	}
	if (j->fan != NULL)
		return 1;
	j->chan = &d->chans[ch - d->cfg->channels];
	if (dedup_job_check(d, j) != 0)
		return -1;
	if (j->fanned || spool_qid_channel(j->qid) != NULL)
		rc = notify_build_fanout(d->cfg, ch, j->chan->tmpl, j->alert, &j->n, &e);
	else
		rc = notify_build(d->cfg, ch, j->chan->tmpl, j->alert, NULL, 0, &j->n, &e);
	if (rc < 0) {
		job_fail(d, j, e.msg);
		return -1;
	}
	snprintf(j->meta.channel, sizeof(j->meta.channel), "%s", ch->name);
	j->prepared = true;
	return 0;
}

/* ---- rounds: a channel's servers in turn, failover memory, busy servers ---- */

static struct srv *srv_of(struct daemon *d, const struct server *s)
{
	return &d->srvs[s - d->cfg->servers];
}

/* Recursion, and its bound: an attempt that ends at once (a resting server, a session that
 * cannot start) goes on to the job's next server from inside the call that began it:
 * try_server -> slot_start -> ... -> slot_finish -> attempt_done -> next_server -> try_server.
 * A job tries each server of its channel once per round (j->tries) and starts over once on
 * a fresh session and once with a fresh token; srv_drain does not nest for the same server
 * (srv->draining). The depth is bounded by the number of servers, not by the queue. */
static void try_server(struct daemon *d, struct job *j);
static void srv_drain(struct daemon *d, struct srv *srv);
static struct slot *free_slot(struct srv *srv);
static void slot_start(struct daemon *d, struct srv *srv, struct slot *sl, struct job *j);

static void round_failed(struct daemon *d, struct job *j)
{
	struct err e;
	int64_t now = now_ms();
	time_t wall = time(NULL);
	uint32_t rnd = 0;
	int64_t wait;

	j->meta.attempts++;
	if (j->meta.first_failed == 0)
		j->meta.first_failed = wall;
	if (!j->any_temp) {
		/* The last refusal, with its hint, is what a reader of the reason needs first. */
		char why[sizeof(j->meta.last_error) + 64];
		snprintf(why, sizeof(why), "every server refused it permanently; the last: %s",
		         j->meta.last_error);
		job_fail(d, j, why);
		return;
	}
	if (queue_give_up((int64_t)j->meta.first_failed * 1000, (int64_t)wall * 1000,
	                  d->cfg->retry_give_up_after_ms)) {
		char why[128], span[32];
		duration_format(d->cfg->retry_give_up_after_ms, span, sizeof(span));
		snprintf(why, sizeof(why), "gave up after %s of temporary failures (%d rounds)", span,
		         j->meta.attempts);
		job_fail(d, j, why);
		return;
	}
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = 0; /* the backoff loses its jitter, nothing more */
	wait = queue_backoff_ms(j->meta.attempts, d->cfg->retry_initial_ms,
	                        d->cfg->retry_max_interval_ms, rnd);
	j->meta.next_attempt = wall + (time_t)(wait / 1000);
	if (spool_defer(d->spool, j->qid, &j->meta, &e) < 0) {
		log_err("spool", "%s: cannot defer: %s", j->qid, e.msg);
	} else {
		char when[32];
		iso_time(j->meta.next_attempt, when, sizeof(when));
		log_notice("delivery", "%s id=%s channel=%s: deferred, attempt %d, next at %s: %s",
		           j->qid, j->alert->id, j->chan->conf->name, j->meta.attempts, when,
		           j->meta.last_error);
		retry_push(d, now + wait, j->qid);
		d->deferred++;
	}
	job_free(j);
}

/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void next_server(struct daemon *d, struct job *j)
{
	j->tries++;
	if (j->tries >= j->chan->conf->nservers) {
		round_failed(d, j);
		return;
	}
	j->cur = (j->cur + 1) % j->chan->conf->nservers;
	try_server(d, j);
}

static void record_attempt(struct job *j, const struct server *s, const char *what)
{
	char when[32], line[1024];

	iso_time(time(NULL), when, sizeof(when));
	snprintf(line, sizeof(line), "%s %s: %s", when, s->name, what);
	spool_meta_add_attempt(&j->meta, line);
	snprintf(j->meta.last_error, sizeof(j->meta.last_error), "%s: %s", s->name, what);
}

/* Replies after which the server rests: it is busy, or (a daily quota reached) will refuse
 * every message for a while; failover goes on meanwhile. */
static bool busy_reply(const struct smtp_reply *r)
{
	return r->code == 421 || r->code == 432 || r->code == 454 ||
	       (r->code >= 500 && smtp_hint_temporary(r));
}

/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void attempt_done(struct daemon *d, struct srv *srv, struct job *j,
                         const struct smtp_result *r)
{
	struct err e;
	int64_t now = now_ms();
	int64_t latency = now - j->started;

	rate_end(&srv->rate, now);
	if (r->outcome == OUTCOME_OK) {
		struct chan *c = j->chan;
		srv->busy_count = 0;
		if (c->preferred != j->cur) {
			log_notice("channel", "%s: now delivering through %s (failover from %s)",
			           c->conf->name, srv->conf->name, c->conf->servers[c->preferred]->name);
			c->preferred = j->cur;
			c->preferred_since = now;
		}
		if (spool_done(d->spool, j->qid, &e) < 0)
			log_err("spool", "%s: %s", j->qid, e.msg);
		log_notice("delivery", "%s id=%s channel=%s server=%s: %s [%lld ms]", j->qid,
		           j->alert->id, c->conf->name, srv->conf->name, r->detail, (long long)latency);
		d->delivered++;
		dedup_job_sent(d, j);
		job_free(j);
		return;
	}
	log_info("delivery", "%s id=%s channel=%s server=%s: %s: %s [%lld ms]", j->qid, j->alert->id,
	         j->chan->conf->name, srv->conf->name, outcome_name(r->outcome), r->detail,
	         (long long)latency);
	record_attempt(j, srv->conf, r->detail);
	if (r->outcome == OUTCOME_TEMPFAIL)
		j->any_temp = true;
	if (busy_reply(&r->reply)) {
		srv->busy_count++;
		srv->busy_until = now + queue_server_backoff_ms(srv->busy_count);
		log_notice("server", "%s answered %d: not used for %lld s", srv->conf->name,
		           r->reply.code, (long long)((srv->busy_until - now) / 1000));
	}
	next_server(d, j);
}

/* The server rests (busy replies, no token): the job goes on to the next one. */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void skip_server(struct daemon *d, struct srv *srv, struct job *j)
{
	char what[256];

	snprintf(what, sizeof(what), "not tried: the server is backing off for %lld s more",
	         (long long)(srv->busy_until - now_ms()) / 1000 + 1);
	record_attempt(j, srv->conf, what);
	j->any_temp = true;
	next_server(d, j);
}

/* Whether the rate limit holds jobs back now; says so once, until no job waits. */
static bool rate_holds(struct srv *srv, int64_t now)
{
	int64_t at = rate_next(&srv->rate, now);

	if (at <= now)
		return false;
	if (!srv->rate_held) {
		char period[32];
		srv->rate_held = true;
		duration_format(srv->conf->rate_period_ms, period, sizeof(period));
		log_notice("server", "%s: rate limit of %ld per %s reached: alerts wait", srv->conf->name,
		           srv->conf->rate_count, period);
	}
	return true;
}

/* A token is being fetched for one of the server's slots: the others wait for it rather than
 * ask the token endpoint too. */
static bool srv_fetching(const struct srv *srv)
{
	for (size_t i = 0; i < srv->nslots; i++)
		if (srv->slots[i].fetch != NULL)
			return true;
	return false;
}

/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void try_server(struct daemon *d, struct job *j)
{
	const struct server *s = j->chan->conf->servers[j->cur];
	struct srv *srv = srv_of(d, s);
	struct slot *sl;

	if (srv->busy_until > now_ms()) {
		skip_server(d, srv, j);
		return;
	}
	/* Jobs that wait keep their order: none overtakes them. */
	sl = srv_fetching(srv) || srv->wait_head != NULL || rate_holds(srv, now_ms())
	         ? NULL
	         : free_slot(srv);
	if (sl == NULL) {
		j->next = NULL;
		if (srv->wait_tail != NULL)
			srv->wait_tail->next = j;
		else
			srv->wait_head = j;
		srv->wait_tail = j;
		d->waiting++;
		return;
	}
	/* Counted here, once per message and server: not again when it is started over on a
	 * fresh session or with a fresh token. */
	rate_start(&srv->rate);
	slot_start(d, srv, sl, j);
}

/* Jobs waiting for the server go on: into its free slots, or past it while it rests. An
 * attempt that fails at once ends in slot_finish, which calls this again: that nested call
 * returns at once and this loop takes the next job, so that the stack does not grow with the
 * number of jobs waiting (a storm of them would exhaust it). */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void srv_drain(struct daemon *d, struct srv *srv)
{
	if (srv->draining)
		return;
	srv->draining = true;
	while (srv->wait_head != NULL && !srv_fetching(srv)) {
		struct job *w = srv->wait_head;
		int64_t now = now_ms();
		bool resting = srv->busy_until > now;
		struct slot *sl = resting ? NULL : free_slot(srv);

		if (!resting && (sl == NULL || rate_holds(srv, now)))
			break;
		srv->wait_head = w->next;
		if (srv->wait_head == NULL)
			srv->wait_tail = NULL;
		d->waiting--;
		if (resting) {
			skip_server(d, srv, w);
		} else {
			rate_start(&srv->rate);
			slot_start(d, srv, sl, w);
		}
	}
	srv->draining = false;
	if (srv->wait_head == NULL && srv->rate_held) {
		srv->rate_held = false;
		log_info("server", "%s: no alert waits for the rate limit any more", srv->conf->name);
	}
}

void srvs_end_rest(struct daemon *d)
{
	for (size_t i = 0; i < d->cfg->nservers; i++)
		d->srvs[i].busy_until = 0;
}

int64_t srvs_release(struct daemon *d, int64_t now)
{
	int64_t next = INT64_MAX;

	for (size_t i = 0; i < d->cfg->nservers; i++) {
		struct srv *srv = &d->srvs[i];
		int64_t at;
		if (srv->wait_head == NULL || !srv->rate_held)
			continue;
		srv_drain(d, srv);
		at = rate_next(&srv->rate, now);
		if (srv->wait_head != NULL && srv->rate_held && at < next)
			next = at;
	}
	return next;
}

void round_start(struct daemon *d, struct job *j)
{
	struct chan *c = j->chan;

	/* After switch_back_after, the primary gets its chance again. */
	if (c->preferred != 0 && now_ms() - c->preferred_since >= c->conf->switch_back_after_ms) {
		log_notice("channel", "%s: trying the primary %s again", c->conf->name,
		           c->conf->servers[0]->name);
		c->preferred = 0;
	}
	j->cur = c->preferred;
	j->tries = 0;
	j->any_temp = false;
	try_server(d, j);
}

/* ---- a server's slots: opening sessions through libcurl, driving them ourselves ---- */

static struct daemon *the_daemon; /* for libcurl's callbacks, which carry the slot only */

/* Watches the slot's session socket for events (0: not at all). */
static void io_watch(struct slot *sl, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = &sl->io};

	if (sl->iofd < 0 || events == sl->io_events)
		return;
	if (events == 0)
		/* Fails only for an fd not in the set: nothing to undo. */
		(void)epoll_ctl(the_daemon->epfd, EPOLL_CTL_DEL, sl->iofd, NULL);
	else if (epoll_ctl(the_daemon->epfd, sl->io_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sl->iofd,
	                   &ev) < 0)
		log_err("daemon", "epoll session socket: %s", strerror(errno));
	sl->io_events = events;
}

/* Takes a transfer out of the slot's multi. It fails for a handle not in it, or when called
 * from one of libcurl's callbacks: either would be a bug here, and the handle is about to be
 * freed, so it is logged. */
static void multi_remove(struct slot *sl, void *handle)
{
	CURLMcode mc = curl_multi_remove_handle(sl->multi, handle);

	if (mc != CURLM_OK)
		log_err("daemon", "%s: libcurl: removing a transfer: %s", sl->srv->conf->name,
		        curl_multi_strerror(mc));
}

/* Ends the slot's session, if any: no wait on the server, whatever state it is in. */
static void slot_drop(struct slot *sl)
{
	if (sl->fetch != NULL) {
		multi_remove(sl, oauth2_fetch_handle(sl->fetch));
		oauth2_fetch_free(sl->fetch);
		sl->fetch = NULL;
	}
	io_watch(sl, 0);
	if (sl->iofd >= 0)
		close(sl->iofd);
	sl->iofd = -1;
	smtp_close(sl->conn);
	if (sl->in_multi)
		multi_remove(sl, smtp_conn_handle(sl->conn));
	sl->in_multi = false;
	sl->opening = false;
}

static void slot_finish(struct daemon *d, struct slot *sl, const struct smtp_result *r);

/* Drives the message on the slot's open session as far as it goes without waiting. */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
void slot_drive(struct daemon *d, struct slot *sl)
{
	struct smtp_result r;
	enum smtp_tx_wait w = smtp_tx_step(sl->conn, &r);

	if (w == SMTP_TX_DONE) {
		slot_finish(d, sl, &r);
		return;
	}
	io_watch(sl, w == SMTP_TX_WANT_WRITE ? EPOLLOUT : EPOLLIN);
}

/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void slot_send(struct daemon *d, struct slot *sl)
{
	struct job *j = sl->job;
	struct smtp_result r;

	if (smtp_tx_start(sl->conn, j->n.mail_from, j->n.rcpt, j->n.nrcpt, j->n.message.data,
	                  j->n.message.len, &r) < 0) {
		slot_finish(d, sl, &r);
		return;
	}
	slot_drive(d, sl);
}

/* Has libcurl open a session on the slot (TCP, TLS, EHLO, AUTH). */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void slot_open(struct daemon *d, struct slot *sl)
{
	struct smtp_result r;

	if (smtp_open_begin(sl->conn, &r) < 0) {
		slot_finish(d, sl, &r);
		return;
	}
	if (curl_multi_add_handle(sl->multi, smtp_conn_handle(sl->conn)) != CURLM_OK) {
		snprintf(r.detail, sizeof(r.detail), "cannot start a transfer");
		r.outcome = OUTCOME_TEMPFAIL;
		slot_finish(d, sl, &r);
		return;
	}
	sl->in_multi = true;
	sl->opening = true;
}

/* No token, no session: the attempt fails for now, and the server rests, so that a storm of
 * alerts does not become a storm of requests to a token endpoint that refuses them. */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void token_failed(struct daemon *d, struct slot *sl, const char *why)
{
	struct srv *srv = sl->srv;
	struct smtp_result r;
	int64_t now = now_ms();

	memset(&r, 0, sizeof(r));
	r.outcome = OUTCOME_TEMPFAIL;
	r.stage = STAGE_AUTH;
	snprintf(r.detail, sizeof(r.detail), "no OAuth2 token: %s", why);
	srv->busy_count++;
	srv->busy_until = now + queue_server_backoff_ms(srv->busy_count);
	log_err("oauth2", "%s: %s; server not used for %lld s", srv->conf->name, r.detail,
	        (long long)((srv->busy_until - now) / 1000));
	slot_finish(d, sl, &r);
}

/* Fetches a token (in the slot's multi, like the session itself) before the session opens. */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void slot_fetch_token(struct daemon *d, struct slot *sl)
{
	char why[512];

	sl->fetch = oauth2_fetch_new(sl->srv->conf, why, sizeof(why));
	if (sl->fetch == NULL) {
		token_failed(d, sl, why);
		return;
	}
	if (curl_multi_add_handle(sl->multi, oauth2_fetch_handle(sl->fetch)) != CURLM_OK) {
		oauth2_fetch_free(sl->fetch);
		sl->fetch = NULL;
		token_failed(d, sl, "cannot start a transfer");
		return;
	}
	log_debug("oauth2", "%s: fetching a token", sl->srv->conf->name);
}

static void token_fetched(struct daemon *d, struct slot *sl, CURLcode cc)
{
	struct srv *srv = sl->srv;
	struct oauth2_fetch *f = sl->fetch;
	char why[768];
	int64_t now = now_ms();
	int rc;

	sl->fetch = NULL;
	multi_remove(sl, oauth2_fetch_handle(f));
	rc = oauth2_fetch_end(f, (int)cc, now, &srv->token, why, sizeof(why));
	oauth2_fetch_free(f);
	if (rc < 0) {
		token_failed(d, sl, why);
		return;
	}
	log_info("oauth2", "%s: new token, valid for %lld s", srv->conf->name,
	         (long long)((srv->token.expires_at - now) / 1000));
	slot_open(d, sl);
	srv_drain(d, srv);
}

/* Starts j on the slot: over its open session, or opening one first. */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void slot_start(struct daemon *d, struct srv *srv, struct slot *sl, struct job *j)
{
	j->started = now_ms();
	sl->job = j;
	d->inflight++;
	j->reused = smtp_is_open(sl->conn);
	if (j->reused) {
		slot_send(d, sl);
		return;
	}
	slot_drop(sl);
	if (oauth2_uses_grant(srv->conf) && !oauth2_token_usable(&srv->token, j->started)) {
		slot_fetch_token(d, sl);
		return;
	}
	slot_open(d, sl);
}

/* libcurl finished opening the session: on to the message, or the attempt failed. */
static void slot_opened(struct daemon *d, struct slot *sl, CURLcode cc)
{
	struct smtp_result r;

	sl->opening = false;
	if (smtp_open_end(sl->conn, (int)cc, &r) != OUTCOME_OK) {
		slot_finish(d, sl, &r);
		return;
	}
	sl->iofd = fcntl(smtp_socket(sl->conn), F_DUPFD_CLOEXEC, 0);
	if (sl->iofd < 0) {
		snprintf(r.detail, sizeof(r.detail), "cannot watch the session: %s", strerror(errno));
		r.outcome = OUTCOME_TEMPFAIL;
		slot_finish(d, sl, &r);
		return;
	}
	slot_send(d, sl);
}

/* The attempt on this slot is over: the session is kept when it is still good. */
/* NOLINTNEXTLINE(misc-no-recursion): bounded, see "Recursion, and its bound" above */
static void slot_finish(struct daemon *d, struct slot *sl, const struct smtp_result *r)
{
	struct job *j = sl->job;
	struct srv *srv = sl->srv;

	if (!smtp_is_open(sl->conn) || r->outcome != OUTCOME_OK)
		slot_drop(sl);
	else
		/* Idle: a server that closes the session (or says 421 first) is noticed. */
		io_watch(sl, EPOLLIN | EPOLLRDHUP);
	sl->job = NULL;
	d->inflight--;
	if (j == NULL)
		return;
	/* A kept session the server has closed meanwhile fails before any reply: that is not
	 * the server's answer to this alert. Once, on a fresh session. */
	if (r->outcome != OUTCOME_OK && j->reused && !j->reopened && r->reply.code == 0) {
		j->reopened = true;
		log_debug("delivery", "%s: the kept session to %s had ended; opening a new one",
		          j->qid, srv->conf->name);
		slot_start(d, srv, sl, j);
		return;
	}
	/* A kept token the server refuses may have been revoked: once, with a fresh one. */
	if (r->outcome != OUTCOME_OK && !j->token_retried && smtp_token_rejected(sl->conn, r)) {
		j->token_retried = true;
		log_notice("oauth2", "%s: %s refused the kept token (%d %s); fetching a new one",
		           j->qid, srv->conf->name, r->reply.code, r->reply.enhanced);
		slot_start(d, srv, sl, j);
		return;
	}
	attempt_done(d, srv, j, r);
	srv_drain(d, srv);
}

/* An event on a session socket: the message moves on, or an idle session has ended. */
void slot_event(struct daemon *d, struct slot *sl)
{
	if (slot_in_tx(sl)) {
		slot_drive(d, sl);
		return;
	}
	if (sl->job == NULL) {
		log_debug("server", "%s: a kept session ended", sl->srv->conf->name);
		slot_drop(sl);
	}
}

static struct slot *free_slot(struct srv *srv)
{
	for (size_t i = 0; i < srv->nslots; i++)
		if (srv->slots[i].job == NULL)
			return &srv->slots[i];
	return NULL;
}

/* libcurl's part of a slot (opening its session) has news. */
void slot_collect(struct daemon *d, struct slot *sl)
{
	for (;;) {
		int left;
		CURLMsg *m = curl_multi_info_read(sl->multi, &left);

		if (m == NULL)
			break;
		if (m->msg == CURLMSG_DONE && sl->fetch != NULL &&
		    m->easy_handle == oauth2_fetch_handle(sl->fetch)) {
			token_fetched(d, sl, m->data.result);
			continue;
		}
		if (m->msg != CURLMSG_DONE || !sl->opening || sl->job == NULL)
			continue;
		/* The handle stays in the multi: the session lives there. */
		slot_opened(d, sl, m->data.result);
	}
}

/* ---- libcurl's sockets and timers in our epoll ---- */

static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct slot *sl = userp;
	struct watch *w = socketp;
	struct epoll_event ev = {0};

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (w != NULL) {
			/* Fails only for a socket not in the set, or unknown to libcurl. */
			(void)epoll_ctl(the_daemon->epfd, EPOLL_CTL_DEL, s, NULL);
			w->fd = -1;
			w->next_dead = the_daemon->dead_watches;
			the_daemon->dead_watches = w;
			(void)curl_multi_assign(sl->multi, s, NULL);
		}
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	if (w == NULL) {
		w = xcalloc(1, sizeof(*w));
		w->kind = WATCH_CURL;
		w->fd = s;
		w->slot = sl;
		ev.data.ptr = w;
		if (epoll_ctl(the_daemon->epfd, EPOLL_CTL_ADD, s, &ev) < 0) {
			log_err("daemon", "epoll add socket %d: %s", s, strerror(errno));
			free(w);
			return -1;
		}
		/* Fails only for a socket libcurl does not know: no callback comes for it. */
		(void)curl_multi_assign(sl->multi, s, w);
		return 0;
	}
	ev.data.ptr = w;
	if (epoll_ctl(the_daemon->epfd, EPOLL_CTL_MOD, s, &ev) < 0)
		log_err("daemon", "epoll mod socket %d: %s", s, strerror(errno));
	return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct slot *sl = userp;

	(void)multi;
	sl->timer_at = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	return 0;
}

/* ---- building and tearing down for a config ---- */

/* The servers' state and the channels' templates, of a config with nservers and nchannels. */
static void free_srvs(struct srv *srvs, size_t nservers)
{
	for (size_t i = 0; i < nservers; i++) {
		struct srv *srv = &srvs[i];
		for (size_t k = 0; k < srv->nslots; k++) {
			struct slot *sl = &srv->slots[k];
			/* No wait on any server: in-flight alerts stay in active/ for the next start. */
			slot_drop(sl);
			if (sl->job != NULL)
				job_free(sl->job);
			/* The multi first: its connections call back into the conn when closed. */
			curl_multi_cleanup(sl->multi);
			smtp_conn_free(sl->conn);
		}
		free(srv->slots);
		rate_free(&srv->rate);
		oauth2_token_clear(&srv->token);
		while (srv->wait_head != NULL) {
			struct job *j = srv->wait_head;
			srv->wait_head = j->next;
			job_free(j);
		}
	}
	free(srvs);
}

static void free_chans(struct chan *chans, size_t nchannels)
{
	for (size_t i = 0; chans != NULL && i < nchannels; i++)
		mail_template_free(chans[i].tmpl);
	free(chans);
}

void srvs_free(struct daemon *d)
{
	if (d->srvs == NULL)
		return;
	free_srvs(d->srvs, d->cfg->nservers);
	d->srvs = NULL;
	free_chans(d->chans, d->cfg->nchannels);
	d->chans = NULL;
}

/* The slot's multi, its sockets and timers in our epoll, one connection at most. */
/* NULL when libcurl cannot make or set up the multi handle (no memory). */
static CURLM *slot_multi_new(struct slot *sl)
{
	CURLM *m = curl_multi_init();

	if (m != NULL &&
	    (curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
	     curl_multi_setopt(m, CURLMOPT_SOCKETDATA, sl) != CURLM_OK ||
	     curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
	     curl_multi_setopt(m, CURLMOPT_TIMERDATA, sl) != CURLM_OK ||
	     curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 1L) != CURLM_OK)) {
		(void)curl_multi_cleanup(m);
		m = NULL;
	}
	return m;
}

int srvs_build(struct daemon *d, struct config *cfg, struct chan **chans_out, struct err *e)
{
	const char *dirs[2];
	size_t nd = config_template_dirs(cfg, dirs);
	struct chan *chans = xcalloc(cfg->nchannels ? cfg->nchannels : 1, sizeof(*chans));

	the_daemon = d;
	/* Templates first: a reload with a broken template keeps the old config. */
	for (size_t i = 0; i < cfg->nchannels; i++) {
		chans[i].conf = &cfg->channels[i];
		if (mail_template_load(dirs, nd, cfg->channels[i].template, &chans[i].tmpl, e) < 0) {
			err_prefix(e, "channel %s", cfg->channels[i].name);
			for (size_t k = 0; k < i; k++)
				mail_template_free(chans[k].tmpl);
			free(chans);
			return -1;
		}
	}
	*chans_out = chans;
	d->srvs = xcalloc(cfg->nservers ? cfg->nservers : 1, sizeof(*d->srvs));
	for (size_t i = 0; i < cfg->nservers; i++) {
		struct srv *srv = &d->srvs[i];
		srv->conf = &cfg->servers[i];
		rate_init(&srv->rate, srv->conf->rate_count, srv->conf->rate_period_ms);
		srv->nslots = (size_t)srv->conf->max_connections;
		srv->slots = xcalloc(srv->nslots, sizeof(*srv->slots));
		for (size_t k = 0; k < srv->nslots; k++) {
			struct slot *sl = &srv->slots[k];
			sl->srv = srv;
			sl->timer_at = -1;
			sl->iofd = -1;
			sl->io.kind = WATCH_SESSION;
			sl->io.slot = sl;
			sl->conn = smtp_conn_new(srv->conf);
			smtp_conn_share_token(sl->conn, &srv->token);
			sl->multi = slot_multi_new(sl);
			if (sl->multi == NULL) {
				err_set(e, "server %s: libcurl cannot set up a connection (out of memory)",
				        srv->conf->name);
				/* The slots after this one are not set up: nothing of theirs to free. */
				srv->nslots = k + 1;
				free_srvs(d->srvs, cfg->nservers);
				d->srvs = NULL;
				free_chans(chans, cfg->nchannels);
				*chans_out = NULL;
				return -1;
			}
		}
	}
	return 0;
}

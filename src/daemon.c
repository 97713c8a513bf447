#include "config.h"

#include "daemon.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "channel.h"
#include "conf.h"
#include "duration.h"
#include "log.h"
#include "mailtmpl.h"
#include "notify.h"
#include "queue.h"
#include "route.h"
#include "sdnotify.h"
#include "smtp.h"
#include "spool.h"

/* Alerts held in memory at once; the rest wait in new/ and are taken as these drain. */
#define QUEUE_WINDOW 4096
/* The safety net under inotify: new/ is read again this often, and tmp/ cleaned this often. */
#define RESCAN_MS (60 * 1000)
#define CLEAN_TMP_MS (3600 * 1000)
#define TMP_MAX_AGE (24 * 3600)
/* On SIGTERM, deliveries in progress get this long to finish; the rest stay in the spool. */
#define STOP_GRACE_MS (10 * 1000)

struct job;

/* What epoll reports on: our own descriptors, and libcurl's sockets of one server. */
enum watch_kind { WATCH_INOTIFY, WATCH_SIGNAL, WATCH_CURL, WATCH_SESSION };

struct srv;
struct slot;

struct watch {
	enum watch_kind kind;
	int fd;
	struct slot *slot;
};

/* One connection of a server: at most max_connections sessions at once. Each slot has its own
 * multi handle, so its connection is its own: never shared with another server entry, and
 * reused by the next alert through this slot. */
struct slot {
	struct srv *srv;
	CURLM *multi;
	struct smtp_conn *conn;
	struct job *job;  /* NULL: idle */
	int64_t timer_at; /* libcurl's next timeout for this multi, -1 for none */
	bool in_multi;    /* the handle is in the multi: opening, or an open session */
	bool opening;     /* libcurl is opening the session */
	/* The open session's socket, watched by us (a dup, so that libcurl's own registration of
	 * the socket in epoll, if any, stays apart). */
	int iofd;
	uint32_t io_events;
	struct watch io;
};

/* A server entry's delivery state. */
struct srv {
	const struct server *conf;
	struct slot *slots;
	size_t nslots;
	int busy_count;   /* 421/432/454 in a row */
	int64_t busy_until;
	struct job *wait_head, *wait_tail; /* jobs waiting for a free slot */
};

/* A channel's state: failover memory. */
struct chan {
	const struct channel *conf;
	struct mail_template *tmpl;
	size_t preferred; /* the server new deliveries start with */
	int64_t preferred_since;
};

struct job {
	char qid[SPOOL_QID_MAX];
	struct spool_meta meta;
	struct alert *alert;
	struct chan *chan;
	struct notification n;
	bool prepared;
	size_t cur;   /* index in the channel's servers being tried */
	size_t tries; /* servers tried in this round */
	bool any_temp;
	int64_t started; /* of the current attempt */
	bool reused;     /* the attempt went over a session opened for an earlier message */
	bool reopened;   /* ... and was started again on a fresh one when that session had died */
	struct job *next;
};

struct retry {
	int64_t due; /* monotonic ms */
	char qid[SPOOL_QID_MAX];
};

struct daemon {
	const char *config_path;
	struct config *cfg;
	struct spool *spool;
	struct srv *srvs;
	struct chan *chans;
	int epfd;
	struct watch inotify, signals;
	struct job *ready_head, *ready_tail;
	size_t nready;
	size_t inflight;
	size_t waiting;
	struct retry *retries; /* a min-heap by due */
	size_t nretries, retries_cap;
	bool new_backlog; /* new/ may hold more than the window took */
	int64_t status_at;  /* when STATUS= was last sent */
	char status_last[256];
	bool stopping, reload_pending, retry_now;
	int64_t stop_deadline;
	int64_t next_rescan, next_clean;
	unsigned long delivered, deferred, failed;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the retry heap ---- */

static void heap_swap(struct retry *a, struct retry *b)
{
	struct retry t = *a;

	*a = *b;
	*b = t;
}

static void retry_push(struct daemon *d, int64_t due, const char *qid)
{
	size_t i;

	if (d->nretries == d->retries_cap) {
		d->retries_cap = d->retries_cap ? d->retries_cap * 2 : 64;
		d->retries = xrealloc(d->retries, d->retries_cap * sizeof(*d->retries));
	}
	i = d->nretries++;
	d->retries[i].due = due;
	snprintf(d->retries[i].qid, sizeof(d->retries[i].qid), "%s", qid);
	while (i > 0 && d->retries[(i - 1) / 2].due > d->retries[i].due) {
		heap_swap(&d->retries[(i - 1) / 2], &d->retries[i]);
		i = (i - 1) / 2;
	}
}

static void retry_pop(struct daemon *d, struct retry *out)
{
	size_t i = 0;

	*out = d->retries[0];
	d->retries[0] = d->retries[--d->nretries];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < d->nretries && d->retries[l].due < d->retries[m].due)
			m = l;
		if (r < d->nretries && d->retries[r].due < d->retries[m].due)
			m = r;
		if (m == i)
			break;
		heap_swap(&d->retries[i], &d->retries[m]);
		i = m;
	}
}

/* ---- jobs ---- */

static struct job *job_new(const char *qid)
{
	struct job *j = xcalloc(1, sizeof(*j));

	snprintf(j->qid, sizeof(j->qid), "%s", qid);
	buf_init(&j->meta.history);
	return j;
}

static void job_free(struct job *j)
{
	if (j == NULL)
		return;
	alert_free(j->alert);
	notify_free(&j->n);
	spool_meta_free(&j->meta);
	free(j);
}

static void ready_push(struct daemon *d, struct job *j)
{
	j->next = NULL;
	if (d->ready_tail != NULL)
		d->ready_tail->next = j;
	else
		d->ready_head = j;
	d->ready_tail = j;
	d->nready++;
}

static struct job *ready_pop(struct daemon *d)
{
	struct job *j = d->ready_head;

	if (j == NULL)
		return NULL;
	d->ready_head = j->next;
	if (d->ready_head == NULL)
		d->ready_tail = NULL;
	d->nready--;
	j->next = NULL;
	return j;
}

/* Moves the alert to failed/ with the reason and its history of attempts. */
static void job_fail(struct daemon *d, struct job *j, const char *why)
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
	buf_free(&r);
	job_free(j);
}

/* Reads, parses and renders the alert; a bad alert goes to failed/ here. */
static int job_prepare(struct daemon *d, struct job *j)
{
	struct buf b;
	struct err e;
	const struct channel *ch;
	char name[SPOOL_QID_MAX + 16];

	buf_init(&b);
	if (spool_read(d->spool, SPOOL_ACTIVE, j->qid, ALERT_MAX_SIZE, &b, &e) < 0) {
		buf_free(&b);
		job_fail(d, j, e.msg);
		return -1;
	}
	snprintf(name, sizeof(name), "alert %s", j->qid);
	if (alert_parse(b.data, b.len, name, time(NULL), &j->alert, &e) < 0) {
		buf_free(&b);
		job_fail(d, j, e.msg);
		return -1;
	}
	buf_free(&b);
	ch = route_select(d->cfg, j->alert, &e);
	if (ch == NULL) {
		job_fail(d, j, e.msg);
		return -1;
	}
	j->chan = &d->chans[ch - d->cfg->channels];
	if (notify_build(d->cfg, ch, j->chan->tmpl, j->alert, NULL, 0, &j->n, &e) < 0) {
		job_fail(d, j, e.msg);
		return -1;
	}
	snprintf(j->meta.channel, sizeof(j->meta.channel), "%s", ch->name);
	j->prepared = true;
	return 0;
}

static struct srv *srv_of(struct daemon *d, const struct server *s)
{
	return &d->srvs[s - d->cfg->servers];
}

static void try_server(struct daemon *d, struct job *j);

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
		job_fail(d, j, "every server refused it permanently");
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
	RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
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

static bool busy_reply(int code)
{
	return code == 421 || code == 432 || code == 454;
}

static void attempt_done(struct daemon *d, struct srv *srv, struct job *j,
                         const struct smtp_result *r)
{
	struct err e;
	int64_t now = now_ms();
	int64_t latency = now - j->started;

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
		job_free(j);
		return;
	}
	log_info("delivery", "%s id=%s channel=%s server=%s: %s: %s [%lld ms]", j->qid, j->alert->id,
	         j->chan->conf->name, srv->conf->name, outcome_name(r->outcome), r->detail,
	         (long long)latency);
	record_attempt(j, srv->conf, r->detail);
	if (r->outcome == OUTCOME_TEMPFAIL)
		j->any_temp = true;
	if (busy_reply(r->reply.code)) {
		srv->busy_count++;
		srv->busy_until = now + queue_server_backoff_ms(srv->busy_count);
		log_notice("server", "%s answered %d: not used for %lld s", srv->conf->name,
		           r->reply.code, (long long)((srv->busy_until - now) / 1000));
	}
	next_server(d, j);
}

static struct daemon *the_daemon; /* for libcurl's callbacks, which carry the slot only */

/* Watches the slot's session socket for events (0: not at all). */
static void io_watch(struct slot *sl, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = &sl->io};

	if (sl->iofd < 0 || events == sl->io_events)
		return;
	if (events == 0)
		epoll_ctl(the_daemon->epfd, EPOLL_CTL_DEL, sl->iofd, NULL);
	else if (epoll_ctl(the_daemon->epfd, sl->io_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sl->iofd,
	                   &ev) < 0)
		log_err("daemon", "epoll session socket: %s", strerror(errno));
	sl->io_events = events;
}

/* Ends the slot's session, if any: no wait on the server, whatever state it is in. */
static void slot_drop(struct slot *sl)
{
	io_watch(sl, 0);
	if (sl->iofd >= 0)
		close(sl->iofd);
	sl->iofd = -1;
	smtp_close(sl->conn);
	if (sl->in_multi)
		curl_multi_remove_handle(sl->multi, smtp_conn_handle(sl->conn));
	sl->in_multi = false;
	sl->opening = false;
}

static void slot_finish(struct daemon *d, struct slot *sl, const struct smtp_result *r);

/* Drives the message on the slot's open session as far as it goes without waiting. */
static void slot_drive(struct daemon *d, struct slot *sl)
{
	struct smtp_result r;
	enum smtp_tx_wait w = smtp_tx_step(sl->conn, &r);

	if (w == SMTP_TX_DONE) {
		slot_finish(d, sl, &r);
		return;
	}
	io_watch(sl, w == SMTP_TX_WANT_WRITE ? EPOLLOUT : EPOLLIN);
}

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

/* Starts j on the slot: over its open session, or opening one first. */
static void slot_start(struct daemon *d, struct srv *srv, struct slot *sl, struct job *j)
{
	struct smtp_result r;

	(void)srv;
	j->started = now_ms();
	sl->job = j;
	d->inflight++;
	j->reused = smtp_is_open(sl->conn);
	if (j->reused) {
		slot_send(d, sl);
		return;
	}
	slot_drop(sl);
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

static struct slot *free_slot(struct srv *srv);

/* The attempt on this slot is over: the session is kept when it is still good. */
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
	attempt_done(d, srv, j, r);
	/* Free slots go to jobs waiting for this server. */
	for (;;) {
		struct slot *free_sl = free_slot(srv);
		struct job *w = srv->wait_head;
		if (free_sl == NULL || w == NULL)
			break;
		srv->wait_head = w->next;
		if (srv->wait_head == NULL)
			srv->wait_tail = NULL;
		d->waiting--;
		slot_start(d, srv, free_sl, w);
	}
}

/* An event on a session socket: the message moves on, or an idle session has ended. */
static void slot_event(struct daemon *d, struct slot *sl)
{
	if (sl->job != NULL && !sl->opening) {
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

static void try_server(struct daemon *d, struct job *j)
{
	const struct server *s = j->chan->conf->servers[j->cur];
	struct srv *srv = srv_of(d, s);
	struct slot *sl;

	if (srv->busy_until > now_ms()) {
		char what[256];
		snprintf(what, sizeof(what), "not tried: the server is backing off for %lld s more",
		         (long long)((srv->busy_until - now_ms()) / 1000 + 1));
		record_attempt(j, s, what);
		j->any_temp = true;
		next_server(d, j);
		return;
	}
	sl = free_slot(srv);
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
	slot_start(d, srv, sl, j);
}

static void start_round(struct daemon *d, struct job *j)
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

/* libcurl's part of a slot (opening its session) has news. */
static void slot_collect(struct daemon *d, struct slot *sl)
{
	for (;;) {
		int left;
		CURLMsg *m = curl_multi_info_read(sl->multi, &left);

		if (m == NULL)
			break;
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
			epoll_ctl(the_daemon->epfd, EPOLL_CTL_DEL, s, NULL);
			free(w);
			curl_multi_assign(sl->multi, s, NULL);
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
		curl_multi_assign(sl->multi, s, w);
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

static void srvs_free(struct daemon *d)
{
	if (d->srvs == NULL)
		return;
	for (size_t i = 0; i < d->cfg->nservers; i++) {
		struct srv *srv = &d->srvs[i];
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
		while (srv->wait_head != NULL) {
			struct job *j = srv->wait_head;
			srv->wait_head = j->next;
			job_free(j);
		}
	}
	free(d->srvs);
	d->srvs = NULL;
	for (size_t i = 0; i < d->cfg->nchannels; i++)
		mail_template_free(d->chans[i].tmpl);
	free(d->chans);
	d->chans = NULL;
}

static int srvs_build(struct daemon *d, struct config *cfg, struct chan **chans_out,
                      struct err *e)
{
	const char *dirs[2];
	size_t nd = config_template_dirs(cfg, dirs);
	struct chan *chans = xcalloc(cfg->nchannels ? cfg->nchannels : 1, sizeof(*chans));

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
			sl->multi = curl_multi_init();
			curl_multi_setopt(sl->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
			curl_multi_setopt(sl->multi, CURLMOPT_SOCKETDATA, sl);
			curl_multi_setopt(sl->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
			curl_multi_setopt(sl->multi, CURLMOPT_TIMERDATA, sl);
			curl_multi_setopt(sl->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 1L);
		}
	}
	return 0;
}

/* ---- the spool ---- */

static int claim_one(void *ctx, const char *name)
{
	struct daemon *d = ctx;
	char qid[SPOOL_QID_MAX];
	struct err e;
	int rc;

	if (d->nready >= QUEUE_WINDOW) {
		d->new_backlog = true;
		return 1;
	}
	rc = spool_claim(d->spool, name, qid, &e);
	if (rc < 0)
		log_warn("spool", "%s", e.msg);
	if (rc == 0) {
		struct job *j = job_new(qid);
		j->meta.received = time(NULL);
		ready_push(d, j);
	}
	return 0;
}

static void scan_new(struct daemon *d)
{
	struct err e;

	d->new_backlog = false;
	if (spool_list(d->spool, SPOOL_NEW, claim_one, d, &e) < 0)
		log_err("spool", "%s", e.msg);
}

static int recover_active(void *ctx, const char *qid)
{
	struct daemon *d = ctx;
	struct job *j = job_new(qid);
	struct err e;

	/* Taken by a daemon that stopped before finishing: deliver it again (at least once). */
	if (spool_meta_read(d->spool, qid, &j->meta, &e) < 0) {
		memset(&j->meta, 0, sizeof(j->meta));
		buf_init(&j->meta.history);
		j->meta.received = time(NULL);
	}
	ready_push(d, j);
	return 0;
}

static int recover_deferred(void *ctx, const char *qid)
{
	struct daemon *d = ctx;
	struct spool_meta m;
	struct err e;
	int64_t due = now_ms();

	if (spool_meta_read(d->spool, qid, &m, &e) == 0) {
		time_t wall = time(NULL);
		if (m.next_attempt > wall)
			due += (int64_t)(m.next_attempt - wall) * 1000;
		spool_meta_free(&m);
	}
	retry_push(d, due, qid);
	return 0;
}

static void retries_due(struct daemon *d)
{
	int64_t now = now_ms();

	/* Stopping: what is deferred stays deferred. */
	if (d->stopping)
		return;
	while (d->nretries > 0 && (d->retry_now || d->retries[0].due <= now) &&
	       d->nready < QUEUE_WINDOW) {
		struct retry r;
		struct job *j;
		struct err e;

		retry_pop(d, &r);
		if (spool_activate(d->spool, r.qid, &e) < 0) {
			/* Moved away by `alertmail retry` or removed: nothing to do. */
			log_debug("spool", "%s", e.msg);
			continue;
		}
		j = job_new(r.qid);
		spool_meta_free(&j->meta);
		if (spool_meta_read(d->spool, r.qid, &j->meta, &e) < 0) {
			memset(&j->meta, 0, sizeof(j->meta));
			buf_init(&j->meta.history);
		}
		ready_push(d, j);
	}
	if (d->nretries == 0 || d->nready < QUEUE_WINDOW)
		d->retry_now = false;
}

/* ---- reload ---- */

static void reload(struct daemon *d)
{
	struct config *cfg;
	struct buf errors;
	struct chan *chans;
	struct srv *old_srvs = d->srvs;
	struct chan *old_chans = d->chans;
	struct config *old_cfg = d->cfg;
	struct err e;

	d->reload_pending = false;
	sdnotify("RELOADING=1");
	buf_init(&errors);
	if (config_load(d->config_path, &cfg, &errors) < 0) {
		log_err("daemon", "reload: %s has errors; keeping the running config:\n%s",
		        d->config_path, errors.data);
		buf_free(&errors);
		sdnotify("READY=1");
		return;
	}
	buf_free(&errors);
	if (strcmp(cfg->spool, old_cfg->spool) != 0)
		log_warn("daemon", "reload: a new spool (%s) takes effect at the next start only",
		         cfg->spool);
	d->srvs = NULL;
	if (srvs_build(d, cfg, &chans, &e) < 0) {
		log_err("daemon", "reload: %s; keeping the running config", e.msg);
		free(d->srvs);
		d->srvs = old_srvs;
		config_free(cfg);
		sdnotify("READY=1");
		return;
	}
	{
		struct srv *new_srvs = d->srvs;
		d->srvs = old_srvs;
		d->chans = old_chans;
		srvs_free(d);
		config_free(old_cfg);
		d->srvs = new_srvs;
		d->chans = chans;
		d->cfg = cfg;
	}
	log_notice("daemon", "reloaded %s: %zu servers, %zu channels", d->config_path, cfg->nservers,
	           cfg->nchannels);
	sdnotify("READY=1");
}

/* ---- the loop ---- */

static void on_signal(struct daemon *d)
{
	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(d->signals.fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			break;
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			if (!d->stopping) {
				log_notice("daemon", "stopping (signal %u): %zu deliveries in progress",
				           si.ssi_signo, d->inflight);
				sdnotify("STOPPING=1");
				d->stopping = true;
				d->stop_deadline = now_ms() + STOP_GRACE_MS;
			}
			break;
		case SIGHUP:
			d->reload_pending = true;
			break;
		case SIGUSR1:
			log_notice("daemon", "retrying %zu deferred alerts now", d->nretries);
			d->retry_now = true;
			break;
		default:
			break;
		}
	}
}

static void on_inotify(struct daemon *d)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(d->inotify.fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)(void *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				d->new_backlog = true;
			else if (ev->len > 0 && !d->stopping)
				claim_one(d, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
}

static void dispatch(struct daemon *d)
{
	while (!d->stopping && !d->reload_pending) {
		struct job *j = ready_pop(d);
		if (j == NULL)
			break;
		if (job_prepare(d, j) < 0)
			continue;
		start_round(d, j);
	}
	if (d->new_backlog && d->nready < QUEUE_WINDOW / 2 && !d->stopping)
		scan_new(d);
}

static int64_t next_wakeup(struct daemon *d)
{
	int64_t t = d->next_rescan;

	if (d->next_clean < t)
		t = d->next_clean;
	if (d->nretries > 0 && d->retries[0].due < t)
		t = d->retries[0].due;
	if (d->stopping && d->stop_deadline < t)
		t = d->stop_deadline;
	for (size_t i = 0; i < d->cfg->nservers; i++)
		for (size_t k = 0; k < d->srvs[i].nslots; k++) {
			struct slot *sl = &d->srvs[i].slots[k];
			if (sl->timer_at >= 0 && sl->timer_at < t)
				t = sl->timer_at;
			if (sl->job != NULL && !sl->opening && smtp_tx_deadline(sl->conn) < t)
				t = smtp_tx_deadline(sl->conn);
		}
	return t;
}

static void curl_timers(struct daemon *d)
{
	int64_t now = now_ms();

	for (size_t i = 0; i < d->cfg->nservers; i++) {
		struct srv *srv = &d->srvs[i];
		for (size_t k = 0; k < srv->nslots; k++) {
			struct slot *sl = &srv->slots[k];
			int running;
			/* Our own wait on a reply: smtp_tx_step times it out. */
			if (sl->job != NULL && !sl->opening && smtp_tx_deadline(sl->conn) <= now)
				slot_drive(d, sl);
			if (sl->timer_at < 0 || sl->timer_at > now)
				continue;
			sl->timer_at = -1;
			curl_multi_socket_action(sl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
			slot_collect(d, sl);
		}
	}
}

/* STATUS= for systemd when it changed, at most once a second; returns when to look again. */
static int64_t status(struct daemon *d, int64_t now)
{
	char s[256];

	snprintf(s, sizeof(s),
	         "%lu delivered, %lu deferred, %lu failed; %zu in progress, %zu queued, %zu waiting "
	         "to retry",
	         d->delivered, d->deferred, d->failed, d->inflight, d->nready + d->waiting,
	         d->nretries);
	if (strcmp(s, d->status_last) == 0)
		return INT64_MAX;
	if (now - d->status_at < 1000)
		return d->status_at + 1000;
	sdnotify("STATUS=%s", s);
	snprintf(d->status_last, sizeof(d->status_last), "%s", s);
	d->status_at = now;
	return INT64_MAX;
}

static int setup_fds(struct daemon *d, struct err *e)
{
	sigset_t set;
	struct epoll_event ev = {.events = EPOLLIN};
	char path[4096];

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->signals.kind = WATCH_SIGNAL;
	d->signals.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	d->inotify.kind = WATCH_INOTIFY;
	d->inotify.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->signals.fd < 0 || d->inotify.fd < 0 || d->epfd < 0) {
		err_set(e, "daemon: cannot set up the event loop: %s", strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/new", d->cfg->spool);
	if (inotify_add_watch(d->inotify.fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		err_set(e, "daemon: cannot watch %s: %s", path, strerror(errno));
		return -1;
	}
	ev.data.ptr = &d->signals;
	epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->signals.fd, &ev);
	ev.data.ptr = &d->inotify;
	epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->inotify.fd, &ev);
	return 0;
}

static void loop(struct daemon *d)
{
	for (;;) {
		struct epoll_event evs[64];
		int64_t now, timeout, status_again;
		int n;

		if (d->reload_pending && d->inflight == 0 && !d->stopping)
			reload(d);
		retries_due(d);
		dispatch(d);
		if (d->stopping && (d->inflight == 0 || now_ms() >= d->stop_deadline))
			break;
		now = now_ms();
		status_again = status(d, now);
		timeout = next_wakeup(d) - now;
		if (status_again - now < timeout)
			timeout = status_again - now;
		if (timeout < 0)
			timeout = 0;
		if (d->retry_now && d->nretries > 0)
			timeout = 0;
		n = epoll_wait(d->epfd, evs, 64, (int)(timeout > 3600000 ? 3600000 : timeout));
		if (n < 0 && errno != EINTR) {
			log_err("daemon", "epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = evs[i].data.ptr;
			if (w->kind == WATCH_SIGNAL) {
				on_signal(d);
			} else if (w->kind == WATCH_INOTIFY) {
				on_inotify(d);
			} else if (w->kind == WATCH_SESSION) {
				slot_event(d, w->slot);
			} else {
				struct slot *sl = w->slot;
				int fd = w->fd, running;
				int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
				            ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
				            ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
				/* w may be freed inside: only sl and fd are used after. */
				curl_multi_socket_action(sl->multi, fd, flags, &running);
				slot_collect(d, sl);
			}
		}
		curl_timers(d);
		now = now_ms();
		if (now >= d->next_rescan) {
			d->new_backlog = true;
			d->next_rescan = now + RESCAN_MS;
		}
		if (now >= d->next_clean) {
			struct err e;
			int removed = spool_clean_tmp(d->spool, TMP_MAX_AGE, &e);
			if (removed < 0)
				log_warn("spool", "%s", e.msg);
			else if (removed > 0)
				log_notice("spool", "removed %d files older than a day from tmp/", removed);
			d->next_clean = now + CLEAN_TMP_MS;
		}
	}
}

int daemon_run(const char *config_path)
{
	struct daemon d;
	struct buf errors;
	struct err e;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.config_path = config_path;
	d.epfd = d.signals.fd = d.inotify.fd = -1;
	the_daemon = &d;
	buf_init(&errors);
	if (config_load(config_path, &d.cfg, &errors) < 0) {
		fputs(errors.data, stderr);
		buf_free(&errors);
		return 2;
	}
	buf_free(&errors);
	/* A template that does not compile is a config error (exit 2), as in check. */
	if (srvs_build(&d, d.cfg, &d.chans, &e) < 0) {
		log_err("daemon", "%s", e.msg);
		rc = 2;
		goto out;
	}
	if (spool_open(d.cfg->spool, true, &d.spool, &e) < 0 || spool_lock(d.spool, &e) < 0 ||
	    setup_fds(&d, &e) < 0) {
		log_err("daemon", "%s", e.msg);
		rc = 1;
		goto out;
	}
	/* What a previous run left: claimed alerts first, then the deferred, then new/. */
	spool_list(d.spool, SPOOL_ACTIVE, recover_active, &d, &e);
	spool_list(d.spool, SPOOL_DEFERRED, recover_deferred, &d, &e);
	scan_new(&d);
	d.next_rescan = now_ms() + RESCAN_MS;
	d.next_clean = now_ms();
	log_notice("daemon", "alertmail %s running: spool %s, %zu queued, %zu deferred",
	           PACKAGE_VERSION, d.cfg->spool, d.nready, d.nretries);
	sdnotify("READY=1");
	loop(&d);
	log_notice("daemon", "stopped: %lu delivered, %lu deferred, %lu failed; %zu left in the "
	           "spool for the next start",
	           d.delivered, d.deferred, d.failed, d.inflight + d.nready + d.waiting);
	rc = 0;
out:
	while (d.ready_head != NULL)
		job_free(ready_pop(&d));
	srvs_free(&d);
	free(d.retries);
	if (d.epfd >= 0)
		close(d.epfd);
	if (d.signals.fd >= 0)
		close(d.signals.fd);
	if (d.inotify.fd >= 0)
		close(d.inotify.fd);
	spool_close(d.spool);
	config_free(d.cfg);
	return rc;
}

/* The daemon: the event loop (epoll over inotify, signals, libcurl's sockets and the open
 * sessions; timers), the retry heap, taking alerts from the spool and recovering them, reload
 * and stop. Delivery itself is in delivery.c. */
#include "config.h"

#include "daemon.h"

#include <curl/curl.h>
#include <errno.h>
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

#include "conf.h"
#include "daemon_dedup.h"
#include "daemon_int.h"
#include "log.h"
#include "privs.h"
#include "sdnotify.h"
#include "smtp.h"
#include "spool.h"

/* Alerts held in memory at once; the rest wait in new/ and are taken as these drain. */
#define QUEUE_WINDOW 4096
/* The safety net under inotify: new/ is read again this often, and tmp/ cleaned this often. */
#define RESCAN_MS (INT64_C(60) * 1000)
#define CLEAN_TMP_MS (INT64_C(3600) * 1000)
#define TMP_MAX_AGE ((time_t)24 * 3600)
/* On SIGTERM, deliveries in progress get this long to finish; the rest stay in the spool. */
#define STOP_GRACE_MS (INT64_C(10) * 1000)

struct retry {
	int64_t due; /* monotonic ms */
	char qid[SPOOL_QID_MAX];
};

/* ---- the retry heap ---- */

static void heap_swap(struct retry *a, struct retry *b)
{
	struct retry t = *a;

	*a = *b;
	*b = t;
}

void retry_push(struct daemon *d, int64_t due, const char *qid)
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

/* ---- the ready queue: alerts taken from the spool, waiting for their round ---- */

void ready_push(struct daemon *d, struct job *j)
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

/* ---- the spool ---- */

/* Remembers the names in new/ that could not be taken; true when name is newly stuck. A name
 * taken, or gone, is forgotten. At most STUCK_MAX are remembered: beyond, each is said again. */
static bool stuck_note(struct daemon *d, const char *name, bool stuck)
{
	for (size_t i = 0; i < d->nstuck; i++) {
		if (strcmp(d->stuck[i], name) != 0)
			continue;
		if (!stuck) {
			free(d->stuck[i]);
			d->stuck[i] = d->stuck[--d->nstuck];
		}
		return false;
	}
	if (!stuck)
		return false;
	if (d->nstuck < STUCK_MAX) {
		d->stuck = xrealloc(d->stuck, (d->nstuck + 1) * sizeof(*d->stuck));
		d->stuck[d->nstuck++] = xstrdup(name);
	}
	return true;
}

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
	if (rc == 2)
		log_warn("spool", "%s", e.msg);
	/* An entry that cannot be taken (a directory its writer made unwritable) is tried again
	 * at each rescan, and said once. */
	if (stuck_note(d, name, rc < 0))
		log_warn("spool", "%s (said once; tried again every minute)", e.msg);
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

/* Frees the watches libcurl gave up, once no event of the current batch can name them. */
static void watches_reap(struct daemon *d)
{
	while (d->dead_watches != NULL) {
		struct watch *w = d->dead_watches;
		d->dead_watches = w->next_dead;
		free(w);
	}
}

/* The checks of a start, for the files a new config names (a new secret file owned by another
 * user is refused on reload as at a start): on a problem, the running config stays. */
static int reload_files_ok(const struct config *cfg)
{
	struct privs_id me;
	struct buf problems;
	int bad;

	buf_init(&problems);
	privs_id_current(&me);
	bad = privs_check_files(cfg, &me, &problems, NULL);
	privs_id_free(&me);
	if (bad > 0)
		log_err("daemon",
		        "reload: %s names files other users could change; keeping the running "
		        "config:\n%s",
		        cfg->path, problems.data);
	buf_free(&problems);
	return bad > 0 ? -1 : 0;
}

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
	if (reload_files_ok(cfg) < 0) {
		config_free(cfg);
		sdnotify("READY=1");
		return;
	}
	if (strcmp(cfg->spool, old_cfg->spool) != 0)
		log_warn("daemon", "reload: a new spool (%s) takes effect at the next start only",
		         cfg->spool);
	if ((cfg->user == NULL) != (old_cfg->user == NULL) ||
	    (cfg->user != NULL && strcmp(cfg->user, old_cfg->user) != 0))
		log_warn("daemon", "reload: a new user: takes effect at the next start only");
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
		watches_reap(d);
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
			/* Now means now: servers resting after busy replies are tried too. */
			srvs_end_rest(d);
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
		int rc;

		if (j == NULL) {
			/* Alerts fanned out wait for one sync, then go on with their entries. */
			if (d->fan_head == NULL)
				break;
			fanout_commit(d);
			continue;
		}
		rc = job_prepare(d, j);
		if (rc > 0)
			fanout_hold(d, j);
		else if (rc == 0)
			round_start(d, j);
	}
	fanout_commit(d);
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
	if (d->release_at < t)
		t = d->release_at;
	if (dedup_daemon_next(d) < t)
		t = dedup_daemon_next(d);
	for (size_t i = 0; i < d->cfg->nservers; i++)
		for (size_t k = 0; k < d->srvs[i].nslots; k++) {
			struct slot *sl = &d->srvs[i].slots[k];
			if (sl->timer_at >= 0 && sl->timer_at < t)
				t = sl->timer_at;
			if (slot_in_tx(sl) && smtp_tx_deadline(sl->conn) < t)
				t = smtp_tx_deadline(sl->conn);
		}
	return t;
}

/* libcurl acts on the slot's socket fd (or its timeout); what it finished is collected. */
static void slot_act(struct daemon *d, struct slot *sl, curl_socket_t fd, int flags)
{
	int running;
	CURLMcode mc = curl_multi_socket_action(sl->multi, fd, flags, &running);

	if (mc != CURLM_OK)
		log_err("daemon", "%s: libcurl: %s", sl->srv->conf->name, curl_multi_strerror(mc));
	slot_collect(d, sl);
}

static void curl_timers(struct daemon *d)
{
	int64_t now = now_ms();

	for (size_t i = 0; i < d->cfg->nservers; i++) {
		struct srv *srv = &d->srvs[i];
		for (size_t k = 0; k < srv->nslots; k++) {
			struct slot *sl = &srv->slots[k];
			/* Our own wait on a reply: smtp_tx_step times it out. */
			if (slot_in_tx(sl) && smtp_tx_deadline(sl->conn) <= now)
				slot_drive(d, sl);
			if (sl->timer_at < 0 || sl->timer_at > now)
				continue;
			sl->timer_at = -1;
			slot_act(d, sl, CURL_SOCKET_TIMEOUT, 0);
		}
	}
}

/* STATUS= for systemd when it changed, at most once a second; returns when to look again. */
static int64_t status(struct daemon *d, int64_t now)
{
	char s[256];

	snprintf(s, sizeof(s),
	         "%lu delivered, %lu deferred, %lu failed, %lu deduplicated; %zu in progress, %zu "
	         "queued, %zu waiting to retry",
	         d->delivered, d->deferred, d->failed, d->deduplicated, d->inflight,
	         d->nready + d->waiting, d->nretries);
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
	/* Unblocked, they would end the process instead of reaching the signalfd. */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		err_set(e, "daemon: cannot block signals: %s", strerror(errno));
		return -1;
	}
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
	if (snprintf(path, sizeof(path), "%s/new", d->cfg->spool) >= (int)sizeof(path)) {
		err_set(e, "daemon: the spool's path is too long: %s", d->cfg->spool);
		return -1;
	}
	if (inotify_add_watch(d->inotify.fd, path, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		err_set(e, "daemon: cannot watch %s: %s", path, strerror(errno));
		return -1;
	}
	/* Without these the daemon would hear neither signals nor new alerts. */
	ev.data.ptr = &d->signals;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->signals.fd, &ev) < 0) {
		err_set(e, "daemon: cannot watch signals: %s", strerror(errno));
		return -1;
	}
	ev.data.ptr = &d->inotify;
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->inotify.fd, &ev) < 0) {
		err_set(e, "daemon: cannot watch %s: %s", path, strerror(errno));
		return -1;
	}
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
		dedup_daemon_tick(d);
		now = now_ms();
		d->release_at = d->stopping ? INT64_MAX : srvs_release(d, now);
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
			if (w->kind == WATCH_CURL && w->fd < 0)
				continue; /* libcurl closed it while this batch was handled */
			if (w->kind == WATCH_SIGNAL) {
				on_signal(d);
			} else if (w->kind == WATCH_INOTIFY) {
				on_inotify(d);
			} else if (w->kind == WATCH_SESSION) {
				slot_event(d, w->slot);
			} else {
				struct slot *sl = w->slot;
				int fd = w->fd;
				int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
				            ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
				            ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
				slot_act(d, sl, fd, flags);
			}
		}
		watches_reap(d);
		curl_timers(d);
		watches_reap(d);
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
	dedup_daemon_start(&d);
	/* What a previous run left: claimed alerts first, then the deferred, then new/. */
	if (spool_list(d.spool, SPOOL_ACTIVE, recover_active, &d, &e) < 0)
		log_err("daemon", "recovering active/: %s", e.msg);
	if (spool_list(d.spool, SPOOL_DEFERRED, recover_deferred, &d, &e) < 0)
		log_err("daemon", "recovering deferred/: %s", e.msg);
	scan_new(&d);
	d.next_rescan = now_ms() + RESCAN_MS;
	d.next_clean = now_ms();
	log_notice("daemon", "alertmail %s running: spool %s, %zu queued, %zu deferred",
	           PACKAGE_VERSION, d.cfg->spool, d.nready, d.nretries);
	sdnotify("READY=1");
	loop(&d);
	log_notice(
	    "daemon",
	    "stopped: %lu delivered, %lu deferred, %lu failed, %lu deduplicated; %zu left in "
	    "the spool for the next start",
	    d.delivered, d.deferred, d.failed, d.deduplicated, d.inflight + d.nready + d.waiting);
	rc = 0;
out:
	dedup_daemon_stop(&d);
	while (d.ready_head != NULL)
		job_free(ready_pop(&d));
	spool_copies_free(d.spool, d.copies);
	srvs_free(&d);
	watches_reap(&d);
	free(d.retries);
	for (size_t i = 0; i < d.nstuck; i++)
		free(d.stuck[i]);
	free(d.stuck);
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

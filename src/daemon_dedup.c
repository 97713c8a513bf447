/* De-duplication in the daemon: the decision for each spool entry about to be sent, its end
 * (delivered, failed), and the state file kept current from the event loop. */
#include "config.h"

#include "daemon_dedup.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alert.h"
#include "conf.h"
#include "daemon_int.h"
#include "dedup.h"
#include "dedup_state.h"
#include "log.h"
#include "spool.h"

/* Appended changes are fsync'd at most this often: a storm costs one fsync a second, and a
 * power loss at worst sends again what repeats the last second's alerts. (A crash of the
 * daemon alone loses nothing written: the kernel has it.) */
#define SYNC_MS 1000
/* Keys that are over are dropped this often; a write that failed is tried again this often. */
#define PRUNE_MS (INT64_C(60) * 1000)
#define RETRY_MS (INT64_C(10) * 1000)

struct dedup_daemon {
	struct dedup_state *st;
	int64_t synced_at; /* monotonic ms of the last fsync */
	int64_t prune_at;
	int64_t retry_at; /* after a failed write: when to try again */
	bool failing;     /* the last write failed (said once, until one succeeds) */
	unsigned long evicted_said;
};

/* The state outlives the process, so its times are the wall clock's. */
static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A key whose alert has been on its way this long has lost it: its spool entry was removed by
 * hand (a retry gives up after give_up_after and then fails it, which forgets the key). */
static int64_t stale_ms(const struct daemon *d)
{
	return d->cfg->retry_give_up_after_ms + INT64_C(86400) * 1000;
}

static bool in_spool(const struct daemon *d, enum spool_dir dir, const char *qid)
{
	char path[4096];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/%s/%s", spool_root(d->spool), spool_dir_name(dir),
	             qid) >= (int)sizeof(path))
		return false;
	return lstat(path, &st) == 0;
}

/* What became of an entry that was on its way when the state was last written. */
static enum dedup_fate fate_of(void *ctx, const char *qid)
{
	const struct daemon *d = ctx;

	if (in_spool(d, SPOOL_ACTIVE, qid) || in_spool(d, SPOOL_DEFERRED, qid))
		return DEDUP_FATE_PENDING;
	/* Failed, or put back into new/ by alertmail retry (it will be taken anew). */
	if (in_spool(d, SPOOL_FAILED, qid) || in_spool(d, SPOOL_NEW, qid))
		return DEDUP_FATE_FORGET;
	return DEDUP_FATE_DELIVERED;
}

void dedup_daemon_start(struct daemon *d)
{
	struct dedup_daemon *dd = xcalloc(1, sizeof(*dd));
	struct dedup_table *t;
	struct dedup_load r;
	struct err e;
	const char *path;

	d->dedup = dd;
	if (dedup_state_open(d->cfg->state, DEDUP_MAX_KEYS, wall_ms(), stale_ms(d), &dd->st, &r,
	                     &e) < 0)
		log_err("dedup",
		        "%s; starting without the saved state (nothing is lost: an alert "
		        "that repeats one sent before may be sent again)",
		        e.msg);
	t = dedup_state_table(dd->st);
	path = dedup_state_path(dd->st);
	if (r.bad > 0)
		log_warn(
		    "dedup",
		    "%s: %zu damaged lines left out (the first, line %u: %s); going on with the "
		    "%zu keys read",
		    path, r.bad, r.first_bad_line, r.first_bad, dedup_table_count(t));
	if (r.dropped > 0)
		log_warn("dedup",
		         "%s: %zu keys beyond the bound of %d left out (the least recently "
		         "seen)",
		         path, r.dropped, DEDUP_MAX_KEYS);
	dedup_table_settle(t, fate_of, d);
	/* A clean snapshot at once: damage, expired keys and settled ones are then behind us. */
	if (dedup_state_existed(dd->st) && dedup_state_compact(dd->st, &e) < 0) {
		log_err("dedup", "%s", e.msg);
		dd->failing = true;
		dd->retry_at = now_ms() + RETRY_MS;
	}
	if (dedup_table_count(t) > 0 || r.lines > 0)
		log_info("dedup", "%s: %zu keys, %zu of them with an alert on its way", path,
		         dedup_table_count(t), dedup_table_pending(t));
	dd->prune_at = now_ms() + PRUNE_MS;
}

void dedup_daemon_stop(struct daemon *d)
{
	struct dedup_daemon *dd = d->dedup;
	struct err e;

	if (dd == NULL)
		return;
	if (dedup_state_write(dd->st, &e) < 0 || dedup_state_sync(dd->st, &e) < 0)
		log_err("dedup", "%s", e.msg);
	dedup_state_close(dd->st);
	free(dd);
	d->dedup = NULL;
}

void dedup_daemon_tick(struct daemon *d)
{
	struct dedup_daemon *dd = d->dedup;
	struct dedup_table *t;
	int64_t now = now_ms();
	struct err e;

	if (dd == NULL)
		return;
	t = dedup_state_table(dd->st);
	if (now >= dd->prune_at) {
		unsigned long ev = dedup_table_evicted(t);
		dedup_table_prune(t, wall_ms(), stale_ms(d));
		dd->prune_at = now + PRUNE_MS;
		/* Said at most once a minute: a table at its bound evicts with every new key. */
		if (ev != dd->evicted_said) {
			log_warn("dedup",
			         "%lu keys forgotten because %d were kept (the least recently seen "
			         "go first; their next alerts are sent)",
			         ev - dd->evicted_said, DEDUP_MAX_KEYS);
			dd->evicted_said = ev;
		}
	}
	if (dd->failing && now < dd->retry_at)
		return;
	if (dedup_state_write(dd->st, &e) < 0) {
		if (!dd->failing)
			log_err("dedup",
			        "%s; the state is kept in memory and written again every %lld s",
			        e.msg, (long long)(RETRY_MS / 1000));
		dd->failing = true;
		dd->retry_at = now + RETRY_MS;
		return;
	}
	if (dd->failing)
		log_notice("dedup", "%s: written again", dedup_state_path(dd->st));
	dd->failing = false;
	if (dedup_state_unsynced(dd->st) && now - dd->synced_at >= SYNC_MS) {
		if (dedup_state_sync(dd->st, &e) < 0)
			log_err("dedup", "%s", e.msg);
		dd->synced_at = now;
	}
}

int64_t dedup_daemon_next(const struct daemon *d)
{
	const struct dedup_daemon *dd = d->dedup;

	if (dd == NULL)
		return INT64_MAX;
	if (dd->failing)
		return dd->retry_at;
	if (dedup_state_unsynced(dd->st))
		return dd->synced_at + SYNC_MS;
	return INT64_MAX;
}

int dedup_job_check(struct daemon *d, struct job *j)
{
	const struct channel *ch = j->chan->conf;
	struct dedup_alert a;
	struct dedup_decision dec;
	const char *missing;
	struct buf why;
	struct err e;

	memset(&j->dedup, 0, sizeof(j->dedup));
	if (ch->dedup_window_ms <= 0 || d->dedup == NULL)
		return 0;
	if (dedup_alert_make(j->alert, ch->name, ch->dedup_key, ch->ndedup_key, j->qid, &a,
	                     &missing) < 0) {
		log_debug(
		    "dedup",
		    "id=%s channel=%s: no value for '%s' (dedup_key): never a duplicate, sent",
		    j->alert->id, ch->name, missing);
		return 0;
	}
	dedup_decide(dedup_state_table(d->dedup->st), &a, ch->dedup_window_ms, wall_ms(), &dec);
	buf_init(&why);
	dedup_describe(&dec, j->alert->id, &why);
	if (!dec.duplicate) {
		if (dec.why == DEDUP_NEW || dec.why == DEDUP_AGAIN)
			log_debug("dedup", "id=%s channel=%s: %s", j->alert->id, ch->name,
			          why.data);
		else
			log_info("dedup", "id=%s channel=%s: %s", j->alert->id, ch->name, why.data);
		buf_free(&why);
		j->dedup.on = true;
		j->dedup.key = a.key;
		j->dedup.window_ms = ch->dedup_window_ms;
		dedup_template_data(j->alert->tree, &dec);
		return 0;
	}
	/* Handled, as a delivery is: the alert it repeats carries what it says. */
	if (spool_done(d->spool, j->qid, &e) < 0)
		log_err("spool", "%s: %s", j->qid, e.msg);
	log_notice("dedup", "id=%s channel=%s: %s", j->alert->id, ch->name, why.data);
	buf_free(&why);
	d->deduplicated++;
	job_free(j);
	return 1;
}

void dedup_job_sent(struct daemon *d, const struct job *j)
{
	if (d->dedup == NULL || !j->dedup.on)
		return;
	dedup_sent(dedup_state_table(d->dedup->st), &j->dedup.key, j->qid, j->dedup.window_ms,
	           wall_ms());
}

void dedup_job_failed(struct daemon *d, const struct job *j)
{
	if (d->dedup == NULL || !j->dedup.on)
		return;
	dedup_forget(dedup_state_table(d->dedup->st), &j->dedup.key, j->qid);
}

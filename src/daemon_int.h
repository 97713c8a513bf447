/* Internals shared by the daemon's files (daemon.c: the loop; delivery.c: jobs, rounds and
 * each server's slots); no other module includes it. */
#ifndef ALERTMAIL_DAEMON_INT_H
#define ALERTMAIL_DAEMON_INT_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dedup.h"
#include "notify.h"
#include "oauth2.h"
#include "rate.h"
#include "spool.h"

struct config;
struct channel;
struct server;
struct mail_template;
struct smtp_conn;
struct err;

struct job;

/* What epoll reports on: our own descriptors, and libcurl's sockets of one server. */
enum watch_kind { WATCH_INOTIFY, WATCH_SIGNAL, WATCH_CURL, WATCH_SESSION };

struct srv;
struct slot;

struct watch {
	enum watch_kind kind;
	int fd; /* -1: libcurl is done with the socket; freed after the current batch of events */
	struct slot *slot;
	struct watch *next_dead;
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
	struct oauth2_fetch *fetch; /* a token being fetched for the session to open, in multi */
	/* The open session's socket, watched by us (a dup, so that libcurl's own registration of
	 * the socket in epoll, if any, stays apart). */
	int iofd;
	uint32_t io_events;
	struct watch io;
};

/* Whether alertmail itself speaks on the slot's session now (not libcurl opening it, nor a
 * token being fetched for it). */
static inline bool slot_in_tx(const struct slot *sl)
{
	return sl->job != NULL && !sl->opening && sl->fetch == NULL;
}

/* A server entry's delivery state. */
struct srv {
	const struct server *conf;
	struct slot *slots;
	size_t nslots;
	int busy_count;   /* 421/432/454 in a row */
	int64_t busy_until;
	struct oauth2_token token; /* auth xoauth2 by the grant: shared by the slots */
	struct rate_limit rate;
	bool rate_held; /* jobs wait for the rate limit (logged once per episode) */
	struct job *wait_head, *wait_tail; /* jobs waiting for a free slot */
	bool draining; /* srv_drain is running for it: a nested call leaves the jobs to it */
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
	bool token_retried; /* a kept OAuth2 token was refused, and a fresh one tried */
	struct job *next;
	struct dedup_mark dedup; /* sent by a de-duplication decision: its key ends with it */
	/* fanout.c: the entries for the alert's other channels, from job_prepare until the
	 * batch they are part of is durable; NULL: the alert goes to one channel. */
	struct fanout *fan;
	/* One of the entries of an alert fanned out: its Message-ID names the channel. */
	bool fanned;
};

struct retry;
struct dedup_daemon;

struct daemon {
	const char *config_path;
	/* Watches libcurl gave up while a batch of events was being handled: a later event of the
	 * same batch may still point at one, so they are freed only after the batch. */
	struct watch *dead_watches;
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
	int64_t release_at; /* when a server's rate limit next lets a waiting job go */
	unsigned long delivered, deferred, failed;
	char **stuck; /* names in new/ that could not be taken, said once (STUCK_MAX at most) */
	size_t nstuck;
	struct dedup_daemon *dedup; /* daemon_dedup.c */
	unsigned long deduplicated;
	/* fanout.c: alerts fanned out, held until their copies are durable, as one batch. */
	struct job *fan_head, *fan_tail;
	size_t nfan;
	struct spool_copies *copies;
};

#define STUCK_MAX 256

/* Monotonic milliseconds: the clock of every due time, deadline and timer here. */
static inline int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* delivery.c: jobs, their rounds across a channel's servers, and each server's slots. */
struct job *job_new(const char *qid);
void job_free(struct job *j);
/* Reads, parses and renders the alert; a bad alert goes to failed/ here. 1: the alert fans
 * out to several channels and waits for fanout_commit(). */
int job_prepare(struct daemon *d, struct job *j);
/* Moves the alert to failed/ with the reason and its history of attempts; frees j. */
void job_fail(struct daemon *d, struct job *j, const char *why);
/* A round: the channel's servers in turn from the preferred one, until one takes the alert;
 * when none does, it is deferred or failed. */
void round_start(struct daemon *d, struct job *j);
/* Drives the message on the slot's open session as far as it goes without waiting. */
void slot_drive(struct daemon *d, struct slot *sl);
/* An event on a session socket: the message moves on, or an idle session has ended. */
void slot_event(struct daemon *d, struct slot *sl);
/* libcurl's part of a slot (opening its session) has news. */
void slot_collect(struct daemon *d, struct slot *sl);
/* d->srvs and *chans_out (templates loaded) for cfg; on error nothing is kept. */
int srvs_build(struct daemon *d, struct config *cfg, struct chan **chans_out, struct err *e);
/* Ends every session without waiting on a server; jobs in flight stay in active/. */
void srvs_free(struct daemon *d);
/* Jobs held back by a server's rate limit go on when it allows; returns when it next will
 * (monotonic ms), or INT64_MAX when no job waits for that. */
int64_t srvs_release(struct daemon *d, int64_t now);
/* Servers resting after busy replies or a failed token fetch may be tried again at once. */
void srvs_end_rest(struct daemon *d);

/* fanout.c: routing an entry, and one alert becoming an entry per channel. */
/* The channel of j: the one it is pinned to (its queue id "QID+CHANNEL", else the channel of
 * an earlier attempt in meta/QID), else routing's first. When routing gives several, the
 * entries for the others are made (data: the alert file's bytes) and j->fan holds them. NULL
 * with the reason in e when there is none. */
const struct channel *job_channel(struct daemon *d, struct job *j, const struct buf *data,
                                  struct err *e);
/* j (j->fan set, j prepared) waits for the batch of fan-outs to be made durable. */
void fanout_hold(struct daemon *d, struct job *j);
/* Makes the held fan-outs durable with one sync, pins each alert to its first channel and
 * starts every entry's round. */
void fanout_commit(struct daemon *d);
void fanout_free(struct fanout *f);

/* daemon.c */
/* Schedules qid's next round at due (monotonic ms). */
void retry_push(struct daemon *d, int64_t due, const char *qid);
/* Queues j for its round, after the jobs queued already. */
void ready_push(struct daemon *d, struct job *j);

#endif

/* De-duplication in the daemon: the hooks of the delivery path and the event loop around the
 * pure decision (dedup.c) and the state file (dedup_state.c). Internal to the daemon's files. */
#ifndef ALERTMAIL_DAEMON_DEDUP_H
#define ALERTMAIL_DAEMON_DEDUP_H

#include <stdint.h>

struct daemon;
struct job;

/* At start, once the spool is open: reads the state file (what it cannot read is logged and
 * left out, never fatal) and settles the keys whose alert was on its way against the spool. */
void dedup_daemon_start(struct daemon *d);
/* At the end: the last changes written and fsync'd. */
void dedup_daemon_stop(struct daemon *d);
/* Once per turn of the loop: changes written (one write for the batch), fsync'd at most once
 * a second, keys that are over dropped now and then. */
void dedup_daemon_tick(struct daemon *d);
/* When the tick next has something to do (monotonic ms), INT64_MAX for nothing. */
int64_t dedup_daemon_next(const struct daemon *d);

/* In job_prepare, once the entry's channel is known and before its message is built: 1 when
 * it repeats an alert sent or on its way within the channel's dedup_window, and is done with
 * (removed from the spool, logged, counted, freed); else 0, the job goes on, and its template
 * data may say how many repeats of the previous alert were not sent. */
int dedup_job_check(struct daemon *d, struct job *j);
/* The job's message was accepted: the window of its key starts. */
void dedup_job_sent(struct daemon *d, const struct job *j);
/* The job failed for good: its key is forgotten, so that the next alert with it is sent. */
void dedup_job_failed(struct daemon *d, const struct job *j);

#endif

/* A send-rate limit (rate: N/PERIOD): at most N messages in any window of PERIOD as the server
 * sees them. Pure: the caller gives the time (monotonic ms). */
#ifndef ALERTMAIL_RATE_H
#define ALERTMAIL_RATE_H

#include <stddef.h>
#include <stdint.h>

/* A message counts from its start until one period after its end: the server saw its MAIL
 * somewhere in between, so no window at the server holds more than count MAIL commands,
 * whatever the time each session took to open. A burst up to the count goes at once. */
struct rate_limit {
	long count; /* 0: no limit */
	int64_t period_ms;
	size_t inflight;  /* started, not ended */
	int64_t *done_at; /* when each message that ended within the last period ended, in order */
	size_t done_head, done_n;
};

void rate_init(struct rate_limit *r, long count, int64_t period_ms);
void rate_free(struct rate_limit *r);
/* When the next message may start: now or earlier means at once; INT64_MAX when one in
 * progress must end first. */
int64_t rate_next(struct rate_limit *r, int64_t now);
/* A message starts; and ends (delivered or not). */
void rate_start(struct rate_limit *r);
void rate_end(struct rate_limit *r, int64_t now);

#endif

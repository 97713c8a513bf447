#include "config.h"

#include "rate.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

void rate_init(struct rate_limit *r, long count, int64_t period_ms)
{
	memset(r, 0, sizeof(*r));
	r->count = count > 0 ? count : 0;
	r->period_ms = period_ms;
}

void rate_free(struct rate_limit *r)
{
	free(r->done_at);
	r->done_at = NULL;
	r->done_n = 0;
}

int64_t rate_next(struct rate_limit *r, int64_t now)
{
	size_t cap = (size_t)r->count;

	if (r->count == 0)
		return now;
	while (r->done_n > 0 && r->done_at[r->done_head] + r->period_ms <= now) {
		r->done_head = (r->done_head + 1) % cap;
		r->done_n--;
	}
	if (r->inflight + r->done_n < cap)
		return now;
	if (r->done_n == 0)
		return INT64_MAX;
	return r->done_at[r->done_head] + r->period_ms;
}

void rate_start(struct rate_limit *r)
{
	if (r->count > 0)
		r->inflight++;
}

void rate_end(struct rate_limit *r, int64_t now)
{
	size_t cap = (size_t)r->count;

	if (r->count == 0 || r->inflight == 0)
		return;
	r->inflight--;
	if (r->done_at == NULL)
		r->done_at = xcalloc(cap, sizeof(*r->done_at));
	/* Cannot be full: a start needs room. Kept safe all the same: the oldest goes. */
	if (r->done_n == cap) {
		r->done_head = (r->done_head + 1) % cap;
		r->done_n--;
	}
	r->done_at[(r->done_head + r->done_n) % cap] = now;
	r->done_n++;
}

/* The send-rate limit: bursts, windows, messages in progress, and a simulation checked the way
 * the server would count. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "rate.h"
#include "tap.h"

static void basics(void)
{
	struct rate_limit r;

	rate_init(&r, 0, 60000);
	for (int i = 0; i < 1000; i++)
		rate_start(&r);
	ok(rate_next(&r, 5) == 5, "no limit: always now");
	rate_free(&r);

	rate_init(&r, 3, 1000);
	ok(rate_next(&r, 0) == 0, "3/s: the first may go");
	rate_start(&r);
	rate_start(&r);
	rate_start(&r);
	ok(rate_next(&r, 10) == INT64_MAX, "three in progress: wait for one to end");
	rate_end(&r, 100);
	ok(rate_next(&r, 100) == 1100, "one ended at 100: the next at 1100");
	ok(rate_next(&r, 1099) == 1100, "... not before");
	ok(rate_next(&r, 1100) == 1100, "... at 1100 it may go");
	rate_end(&r, 200);
	rate_end(&r, 300);
	ok(rate_next(&r, 1150) == 1150, "at 1150 one window slot is free (100 + 1000 passed)");
	rate_start(&r);
	ok(rate_next(&r, 1150) == 1200, "after that start, the next at 1200");
	ok(rate_next(&r, 5000) == 5000, "long after: free");
	rate_end(&r, 5000);
	rate_end(&r, 5000); /* more ends than starts: ignored */
	ok(r.inflight == 0, "an end without a start is ignored");
	rate_free(&r);
}

/* A day of random traffic: sessions take 0 to 300 ms to reach MAIL and up to 2 s to end; the
 * server's view (the MAIL times) never has more than count in a period. */
static void simulation(void)
{
	enum { N = 2000 };
	static int64_t mail_at[N];
	struct rate_limit r;
	int64_t now = 0;
	int worst = 0;
	unsigned seed = 7;
	struct {
		int64_t end;
	} busy[8] = {{0}};
	int sent = 0;

	rate_init(&r, 30, 60000);
	while (sent < N) {
		int slot = -1;
		int64_t next;
		/* Sessions that end by now end. */
		for (int i = 0; i < 8; i++)
			if (busy[i].end > 0 && busy[i].end <= now) {
				rate_end(&r, busy[i].end);
				busy[i].end = 0;
			}
		for (int i = 0; i < 8 && slot < 0; i++)
			if (busy[i].end == 0)
				slot = i;
		next = rate_next(&r, now);
		if (slot >= 0 && next <= now) {
			int64_t open = (int64_t)(rand_r(&seed) % 300);
			rate_start(&r);
			mail_at[sent++] = now + open;
			busy[slot].end = now + open + 1 + (int64_t)(rand_r(&seed) % 2000);
			continue;
		}
		now += 1 + (int64_t)(rand_r(&seed) % 50);
	}
	for (int i = 0; i < N; i++) {
		int c = 0;
		for (int k = 0; k < N; k++)
			if (mail_at[k] >= mail_at[i] && mail_at[k] < mail_at[i] + 60000)
				c++;
		if (c > worst)
			worst = c;
	}
	ok(worst <= 30, "2000 messages at 30/min: at most 30 MAIL commands in any minute (%d)",
	   worst);
	ok(worst >= 29, "... and the limit is used, not wasted (%d in the busiest minute)", worst);
	ok(now < (int64_t)N / 30 * 60000 + INT64_C(4) * 60000,
	   "... in about the time the rate allows (%lld min for %d)", (long long)(now / 60000), N);
	rate_free(&r);
}

int main(void)
{
	basics();
	simulation();
	return done_testing();
}

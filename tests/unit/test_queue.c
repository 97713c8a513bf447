#include "config.h"

#include <stdint.h>

#include "queue.h"
#include "tap.h"

int main(void)
{
	int64_t min, max;

	/* Without jitter's extremes: random 500 of 1000 is the base itself. */
	ok(queue_backoff_ms(1, 30000, 900000, 500) == 30000, "first retry after initial");
	ok(queue_backoff_ms(2, 30000, 900000, 500) == 60000, "doubles");
	ok(queue_backoff_ms(5, 30000, 900000, 500) == 480000, "30s * 2^4 = 8m");
	ok(queue_backoff_ms(6, 30000, 900000, 500) == 900000, "capped at max_interval");
	ok(queue_backoff_ms(60, 30000, 900000, 500) == 900000, "no overflow after many attempts");
	ok(queue_backoff_ms(0, 30000, 900000, 500) == 30000, "attempt 0 counts as the first");
	ok(queue_backoff_ms(1, 30000, 900000, 0) == 24000, "jitter: -20%%");
	ok(queue_backoff_ms(1, 30000, 900000, 1000) == 36000, "jitter: +20%%");
	ok(queue_backoff_ms(10, 30000, 900000, 1000) == 900000, "jitter never above max");
	ok(queue_backoff_ms(1, 1000, 900000, 0) == 1000, "never below 1s");
	min = max = queue_backoff_ms(3, 30000, 900000, 0);
	for (uint32_t r = 0; r < 5000; r += 7) {
		int64_t d = queue_backoff_ms(3, 30000, 900000, r * 2654435761U);
		if (d < min)
			min = d;
		if (d > max)
			max = d;
	}
	ok(min >= 96000 && max <= 144000 && max - min > 40000,
	   "jitter spreads 2m by +-20%% (%lld..%lld)", (long long)min, (long long)max);

	ok(!queue_give_up(0, 86399999, 86400000), "not yet after 24h - 1ms");
	ok(queue_give_up(0, 86400000, 86400000), "give up at 24h");

	ok(queue_server_backoff_ms(1) == 30000, "busy server: 30s");
	ok(queue_server_backoff_ms(2) == 60000, "then 1m");
	ok(queue_server_backoff_ms(100) == 600000, "at most 10m");
	return done_testing();
}

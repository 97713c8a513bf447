#include "config.h"

#include "queue.h"

int64_t queue_backoff_ms(int attempts, int64_t initial_ms, int64_t max_ms, uint32_t random)
{
	int64_t base = initial_ms;
	int64_t spread, d;

	if (attempts < 1)
		attempts = 1;
	for (int i = 1; i < attempts && base < max_ms; i++)
		base *= 2;
	if (base > max_ms)
		base = max_ms;
	/* +-20% in 1/1000 steps of the base. */
	spread = base / 5;
	d = base - spread + (int64_t)((uint64_t)(random % 1001) * (uint64_t)(2 * spread) / 1000);
	if (d > max_ms)
		d = max_ms;
	if (d < 1000)
		d = 1000;
	return d;
}

bool queue_give_up(int64_t first_failed_ms, int64_t now_ms, int64_t give_up_ms)
{
	return now_ms - first_failed_ms >= give_up_ms;
}

int64_t queue_server_backoff_ms(int busy_count)
{
	int64_t d = 30000;

	for (int i = 1; i < busy_count && d < 600000; i++)
		d *= 2;
	return d > 600000 ? 600000 : d;
}

/* What is due when: the retry schedule. Pure functions, no I/O. */
#ifndef ALERTMAIL_QUEUE_H
#define ALERTMAIL_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

/* The wait after the n-th failed attempt (n >= 1): initial doubled per attempt, capped at max,
 * spread by jitter in [-20%, +20%] (random is any 32-bit value) so that alerts deferred
 * together do not all come back together; never above max, never below 1 s. */
int64_t queue_backoff_ms(int attempts, int64_t initial_ms, int64_t max_ms, uint32_t random);

/* True once an alert that first failed at first_failed_ms has been failing for give_up_ms. */
bool queue_give_up(int64_t first_failed_ms, int64_t now_ms, int64_t give_up_ms);

/* The wait before a server that answered "busy" (421, 432, 454) is tried again, after its
 * n-th such answer in a row: 30 s doubling to 10 min. */
int64_t queue_server_backoff_ms(int busy_count);

#endif

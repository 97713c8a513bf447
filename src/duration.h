/* Durations ("30s", "15m", "1h30m", "500ms") and rates ("30/min"). Pure functions. */
#ifndef ALERTMAIL_DURATION_H
#define ALERTMAIL_DURATION_H

#include <stdint.h>

#include "err.h"

/* Parses a duration into milliseconds. Units: ms, s, m, h, d; several may be combined in
 * descending order ("1h30m"). A bare number is refused: the unit must be said. */
int duration_parse(const char *s, int64_t *ms, struct err *e);
/* Formats milliseconds compactly ("1h30m", "250ms", "0s") into out. */
void duration_format(int64_t ms, char *out, unsigned long outlen);

/* A rate "N/s", "N/sec", "N/min", "N/h", "N/hour", "N/day": count per period. */
int rate_parse(const char *s, long *count, int64_t *period_ms, struct err *e);

#endif

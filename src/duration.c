#include "config.h"

#include "duration.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct unit {
	const char *name;
	int64_t ms;
};

/* Longest names first so that "ms" is not read as "m". */
static const struct unit units[] = {
	{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

#define DURATION_MAX_MS ((int64_t)366 * 86400000)

int duration_parse(const char *s, int64_t *ms, struct err *e)
{
	const char *p = s;
	int64_t total = 0;
	int64_t last_unit = INT64_MAX;

	if (s == NULL || *s == '\0') {
		err_set(e, "expected a duration like 30s, 15m or 24h, got an empty value");
		return -1;
	}
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	while (*p != '\0') {
		char *end;
		long long v;
		const struct unit *u = NULL;

		if (!isdigit((unsigned char)*p))
			goto bad;
		errno = 0;
		v = strtoll(p, &end, 10);
		if (errno != 0 || v < 0 || v > DURATION_MAX_MS)
			goto bad;
		p = end;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].name);
			if (strncmp(p, units[i].name, n) == 0 && !isalpha((unsigned char)p[n])) {
				u = &units[i];
				p += n;
				break;
			}
		}
		if (u == NULL || u->ms >= last_unit)
			goto bad;
		last_unit = u->ms;
		if (v > (DURATION_MAX_MS - total) / u->ms)
			goto toolong;
		total += v * u->ms;
	}
	*ms = total;
	return 0;
bad:
	err_set(e, "expected a duration like 30s, 15m, 24h or 1h30m (units ms, s, m, h, d), got '%s'", s);
	return -1;
toolong:
	err_set(e, "duration '%s' is longer than a year", s);
	return -1;
}

void duration_format(int64_t ms, char *out, unsigned long outlen)
{
	size_t used = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (ms == 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	for (size_t i = sizeof(units) / sizeof(units[0]); i-- > 0;) {
		int64_t n = ms / units[i].ms;
		if (n == 0)
			continue;
		ms -= n * units[i].ms;
		if (used < outlen) {
			int w = snprintf(out + used, outlen - used, "%lld%s", (long long)n, units[i].name);
			if (w > 0)
				used += (size_t)w;
		}
	}
}

int rate_parse(const char *s, long *count, int64_t *period_ms, struct err *e)
{
	static const struct unit periods[] = {
		{"s", 1000},       {"sec", 1000},        {"second", 1000}, {"m", 60000},
		{"min", 60000},    {"minute", 60000},    {"h", 3600000},   {"hour", 3600000},
		{"d", 86400000},   {"day", 86400000},
	};
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || errno != 0 || v <= 0 || v > 1000000 || *end != '/')
		goto bad;
	end++;
	for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
		if (strcmp(end, periods[i].name) == 0) {
			*count = v;
			*period_ms = periods[i].ms;
			return 0;
		}
	}
	/* Or any duration: 10/5m. */
	if (isdigit((unsigned char)*end)) {
		struct err de;
		int64_t ms;
		if (duration_parse(end, &ms, &de) == 0 && ms >= 1000 && ms <= 7 * 86400000LL) {
			*count = v;
			*period_ms = ms;
			return 0;
		}
	}
bad:
	err_set(e,
	        "expected a rate like 30/min (N per s, min, hour, day, or a duration from 1s to "
	        "7d: 10/5m), got '%s'",
	        s);
	return -1;
}

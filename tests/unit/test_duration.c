#include "config.h"

#include <stdint.h>

#include "duration.h"
#include "tap.h"

static void dur(const char *in, int64_t want)
{
	int64_t ms = -1;
	struct err e;
	int rc = duration_parse(in, &ms, &e);

	ok(rc == 0 && ms == want, "duration '%s' = %lld ms (got %lld)", in, (long long)want,
	   (long long)ms);
}

static void bad(const char *in)
{
	int64_t ms;
	struct err e = {{0}};

	ok(duration_parse(in, &ms, &e) < 0 && strstr(e.msg, "duration") != NULL,
	   "duration '%s' refused: %s", in, e.msg);
}

int main(void)
{
	char out[32];
	long count;
	int64_t period;
	struct err e;

	dur("30s", 30000);
	dur("15m", 900000);
	dur("24h", 86400000);
	dur("1h30m", 5400000);
	dur("500ms", 500);
	dur("2d", 172800000);
	dur("1m30s250ms", 90250);
	dur("0", 0);
	bad("");
	bad("30");
	bad("s");
	bad("30x");
	bad("-5s");
	bad("30m1h");
	bad("1h1h");
	bad("10 s");
	bad("400d");
	bad("99999999999999999999s");

	duration_format(5400000, out, sizeof(out));
	is_str(out, "1h30m", "format 1h30m");
	duration_format(250, out, sizeof(out));
	is_str(out, "250ms", "format 250ms");
	duration_format(0, out, sizeof(out));
	is_str(out, "0s", "format 0");

	ok(rate_parse("30/min", &count, &period, &e) == 0 && count == 30 && period == 60000,
	   "rate 30/min");
	ok(rate_parse("5/s", &count, &period, &e) == 0 && count == 5 && period == 1000, "rate 5/s");
	ok(rate_parse("100/hour", &count, &period, &e) == 0 && count == 100 && period == 3600000,
	   "rate 100/hour");
	ok(rate_parse("30", &count, &period, &e) < 0, "rate without period refused");
	ok(rate_parse("0/min", &count, &period, &e) < 0, "rate of 0 refused");
	ok(rate_parse("30/fortnight", &count, &period, &e) < 0, "unknown period refused");
	ok(rate_parse("4/3s", &count, &period, &e) == 0 && count == 4 && period == 3000,
	   "rate 4/3s: a duration as the period");
	ok(rate_parse("10/1h30m", &count, &period, &e) == 0 && count == 10 && period == 5400000,
	   "rate 10/1h30m");
	ok(rate_parse("1/500ms", &count, &period, &e) < 0, "a period under a second is refused");
	ok(rate_parse("1/8d", &count, &period, &e) < 0, "a period over a week is refused");
	ok(rate_parse("1/3", &count, &period, &e) < 0, "a period without a unit is refused");
	return done_testing();
}

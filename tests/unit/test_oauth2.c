/* The token endpoint's replies, read the way Entra ID writes them, and a token's life. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "oauth2.h"
#include "secret.h"
#include "tap.h"

static char why[1024];
static char *token;
static int64_t life;

static int parse(long status, const char *body)
{
	secret_free(token);
	token = NULL;
	return oauth2_parse_reply(status, body, strlen(body), &token, &life, why, sizeof(why));
}

static void good_replies(void)
{
	ok(parse(200, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
	              "\"access_token\":\"eyJ0eXAi.eyJhdWQi.c2ln-_\"}") == 0,
	   "a v2 reply is read");
	is_str(token, "eyJ0eXAi.eyJhdWQi.c2ln-_", "... its access_token");
	ok(life == 3599, "... and its lifetime (%lld)", (long long)life);

	ok(parse(200, "{\"token_type\":\"Bearer\",\"expires_in\":\"3600\",\"access_token\":\"abc\"}") ==
	       0 && life == 3600,
	   "expires_in as a string of digits (the v1 endpoint's way)");
	ok(parse(200, "{\"access_token\":\"abc\"}") == 0 && life == 3600,
	   "no expires_in: an hour, Entra ID's usual lifetime");
	ok(parse(200, "{\"token_type\":\"bearer\",\"access_token\":\"abc\"}") == 0,
	   "token_type is read without regard to case");
	ok(parse(200, "{\"access_token\":\"ab\\/cd+ef==\"}") == 0, "JSON escapes are decoded");
	is_str(token, "ab/cd+ef==", "... \\/ is a slash");
	ok(parse(200, "  {\n\t\"access_token\" : \"abc\" ,\n \"extra\": {\"x\": [1, 2]}}\n") == 0,
	   "white space and unknown members are fine");
	{
		char big[4200] = "{\"access_token\":\"";
		size_t n = strlen(big);
		memset(big + n, 'A', 4000);
		memcpy(big + n + 4000, "\"}", 3);
		ok(parse(200, big) == 0 && token != NULL && strlen(token) == 4000,
		   "a 4000-character token");
	}
}

static void bad_replies(void)
{
	ok(parse(400, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: Invalid "
	              "client secret provided.\\r\\nTrace ID: 1-2\\r\\nCorrelation ID: 3-4\\r\\n"
	              "Timestamp: 2026-11-25 10:00:00Z\",\"error_codes\":[7000215]}") < 0,
	   "an error reply is an error");
	is_str(why,
	       "HTTP 400: invalid_client: AADSTS7000215: Invalid client secret provided. Trace ID: "
	       "1-2 Correlation ID: 3-4 Timestamp: 2026-11-25 10:00:00Z",
	       "... error and error_description, on one line");
	ok(token == NULL, "... and no token");

	ok(parse(200, "{\"error\":\"temporarily_unavailable\"}") < 0, "an error with HTTP 200");
	is_str(why, "HTTP 200: temporarily_unavailable", "... still an error");
	ok(parse(401, "{\"error_description\":\"no\"}") < 0, "a status without an error name");
	is_str(why, "HTTP 401: no error given: no", "... said so");
	ok(parse(503, "<html><body>Service Unavailable</body></html>") < 0, "an HTML page");
	is_str(why, "HTTP 503 with no JSON reply", "... no JSON");
	ok(parse(200, "") < 0, "an empty body");
	is_str(why, "HTTP 200 with no JSON reply", "... said so");
	ok(parse(200, "[\"access_token\"]") < 0, "a JSON array is not a reply");
	ok(parse(200, "{\"access_token\": \"abc\", \"access_token\": \"def\"}") < 0,
	   "a duplicate member is refused");
	ok(parse(200, "{\"token_type\":\"Bearer\",\"expires_in\":3599}") < 0, "no access_token");
	is_str(why, "the reply has no access_token", "... said so");
	ok(parse(200, "{\"access_token\":{\"a\":1}}") < 0, "an access_token that is not a string");
	ok(parse(200, "{\"token_type\":\"mac\",\"access_token\":\"abc\"}") < 0, "token_type mac");
	ok(strstr(why, "not Bearer") != NULL, "... is not Bearer: %s", why);
	ok(parse(200, "{\"access_token\":\"ab\\r\\nMAIL FROM:<x>\"}") < 0,
	   "a token with a line break is refused");
	ok(parse(200, "{\"access_token\":\"ab cd\"}") < 0, "a token with a space is refused");
	ok(parse(200, "{\"access_token\":\"ab\\u0000cd\"}") < 0, "a token with a NUL is refused");
	ok(parse(200, "{\"access_token\":\"\"}") < 0, "an empty token is refused");
	ok(parse(200, "{\"access_token\":\"abc\",\"expires_in\":-5}") < 0, "a negative lifetime");
	ok(parse(200, "{\"access_token\":\"abc\",\"expires_in\":\"soon\"}") < 0, "a lifetime in words");
	ok(parse(200, "{\"access_token\":\"abc\",\"expires_in\":99999999999}") < 0,
	   "a lifetime over a year");
	ok(parse(200, "{\"access_token\":\"abc\",\"expires_in\":1.5}") < 0, "a fractional lifetime");

	/* Hostile text stays one bounded line of plain ASCII. */
	{
		static char body[8192];
		size_t n;
		snprintf(body, sizeof(body), "{\"error\":\"x\\ny\",\"error_description\":\"");
		n = strlen(body);
		for (int i = 0; i < 2000; i++)
			body[n++] = (i % 50 == 0) ? '\t' : 'd';
		memcpy(body + n, " caf\xc3\xa9 \\u001b[31m\"}", 20);
		ok(parse(400, body) < 0, "a long description with control characters");
		ok(strchr(why, '\n') == NULL && strchr(why, '\t') == NULL &&
		       strchr(why, '\x1b') == NULL,
		   "... no control character left");
		ok(strncmp(why, "HTTP 400: x y: ", 15) == 0, "... the error name on one line: %.30s",
		   why);
		ok(strlen(why) < 600, "... bounded (%zu bytes)", strlen(why));
	}
	{
		char small[24];
		ok(oauth2_parse_reply(400, "{\"error\":\"invalid_client\"}", 26, &token, &life, small,
		                      sizeof(small)) < 0 &&
		       strlen(small) == sizeof(small) - 1,
		   "a small buffer is filled, not overrun");
	}
}

static void lifetimes(void)
{
	struct oauth2_token t = {0};
	char url[256];

	ok(oauth2_refresh_margin_ms(3599000) == 300000, "an hour's token is replaced 5 min early");
	ok(oauth2_refresh_margin_ms(3000) == 300, "a 3 s token 0.3 s early");
	ok(oauth2_refresh_margin_ms(0) == 0, "no lifetime, no margin");
	ok(!oauth2_token_usable(&t, 0), "no token: not usable");
	t.value = strdup("abc");
	t.refresh_at = 1000;
	t.expires_at = 1100;
	ok(oauth2_token_usable(&t, 999), "usable before its refresh time");
	ok(!oauth2_token_usable(&t, 1000), "not from its refresh time on");
	oauth2_token_clear(&t);
	ok(t.value == NULL && t.refresh_at == 0 && !t.fresh, "cleared");
	oauth2_default_url("contoso.onmicrosoft.com", url, sizeof(url));
	is_str(url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
	       "the default endpoint of a tenant");
}

int main(void)
{
	good_replies();
	bad_replies();
	lifetimes();
	secret_free(token);
	return done_testing();
}

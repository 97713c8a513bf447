#include "config.h"

#include "oauth2.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "conf.h"
#include "err.h"
#include "secret.h"
#include "yamltree.h"

bool oauth2_uses_grant(const struct server *s)
{
	return s->auth == AUTH_XOAUTH2 && s->oauth2.token_file == NULL;
}

bool oauth2_token_usable(const struct oauth2_token *t, int64_t now)
{
	return t->value != NULL && now < t->refresh_at;
}

void oauth2_token_clear(struct oauth2_token *t)
{
	secret_free(t->value);
	t->value = NULL;
	t->refresh_at = 0;
	t->expires_at = 0;
	t->fresh = false;
}

int64_t oauth2_refresh_margin_ms(int64_t lifetime_ms)
{
	int64_t m = lifetime_ms / 10;

	return m > 300000 ? 300000 : m;
}

int oauth2_default_url(const char *tenant, char *out, size_t len)
{
	return snprintf(out, len, "https://login.microsoftonline.com/%s/oauth2/v2.0/token", tenant);
}

/* Text from the endpoint, made fit for one log line: control characters become spaces, runs
 * of spaces one, anything outside printable ASCII a '?'; no space at either end. Appends at
 * most max bytes. */
static void add_clean(char *out, size_t out_len, const char *s, size_t len, size_t max)
{
	size_t o = strlen(out);
	bool space = true; /* no space first */

	for (size_t i = 0; i < len && max > 0 && o + 1 < out_len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f || ch == ' ') {
			if (space)
				continue;
			ch = ' ';
		} else if (ch > 0x7e) {
			ch = '?';
		}
		space = ch == ' ';
		out[o++] = (char)ch;
		max--;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

static const struct ynode *scalar(const struct ynode *root, const char *key)
{
	const struct ynode *n = ynode_get(root, key);

	return n != NULL && n->kind == YNODE_SCALAR ? n : NULL;
}

/* A token goes into the SASL string as it is: only the characters of a JWT or an opaque
 * token (RFC 6750's b64token), never a space or a line break. */
static bool token_chars_ok(const char *s, size_t len)
{
	static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	                         "-._~+/=";

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\0' || strchr(ok, s[i]) == NULL)
			return false;
	return true;
}

int oauth2_parse_reply(long status, const char *body, size_t len, char **token,
                       int64_t *lifetime_s, char *why, size_t why_len)
{
	struct ynode *root = NULL;
	const struct ynode *n, *desc;
	struct err e;
	int rc = -1;

	*token = NULL;
	*lifetime_s = 0;
	why[0] = '\0';
	if (len == 0 || ytree_parse(body, len, "reply", &root, &e) < 0 || root->kind != YNODE_MAP) {
		snprintf(why, why_len, "HTTP %ld with no JSON reply", status);
		goto out;
	}
	n = scalar(root, "error");
	if (status != 200 || n != NULL) {
		/* Entra ID's descriptions run over several lines (trace and correlation ids):
		 * all of it is kept, on one line, as far as it fits. */
		char error[96] = "", text[512] = "";
		desc = scalar(root, "error_description");
		if (n != NULL)
			add_clean(error, sizeof(error), n->str, n->len, sizeof(error) - 1);
		if (desc != NULL)
			add_clean(text, sizeof(text), desc->str, desc->len, sizeof(text) - 1);
		snprintf(why, why_len, "HTTP %ld: %s%s%s", status,
		         error[0] != '\0' ? error : "no error given", text[0] != '\0' ? ": " : "",
		         text);
		goto out;
	}
	n = scalar(root, "token_type");
	if (n != NULL && strcasecmp(n->str, "bearer") != 0) {
		snprintf(why, why_len, "token_type is '%.40s', not Bearer", n->str);
		goto out;
	}
	n = scalar(root, "access_token");
	if (n == NULL) {
		snprintf(why, why_len, "the reply has no access_token");
		goto out;
	}
	if (!token_chars_ok(n->str, n->len)) {
		snprintf(why, why_len, "the access_token has characters a bearer token cannot have");
		goto out;
	}
	/* Entra ID's v2 endpoint gives a number, its v1 endpoint a string of digits. Without
	 * one, an hour (Entra ID's usual lifetime); a 535 then fetches a new one anyway. */
	*lifetime_s = 3600;
	desc = scalar(root, "expires_in");
	if (desc != NULL) {
		char *end = NULL;
		long long v = strtoll(desc->str, &end, 10);
		if (end == desc->str || *end != '\0' || v <= 0 || v > 366LL * 86400) {
			snprintf(why, why_len, "expires_in is not a number of seconds: '%.40s'",
			         desc->str);
			goto out;
		}
		*lifetime_s = v;
	}
	*token = xstrndup(n->str, n->len);
	rc = 0;
out:
	/* The tree holds the token: wipe it. */
	if (root != NULL) {
		n = ynode_get(root, "access_token");
		if (n != NULL && n->kind == YNODE_SCALAR)
			explicit_bzero(n->str, n->len);
	}
	ynode_free(root);
	return rc;
}

/* ---- the request ---- */

struct oauth2_fetch {
	const struct server *server;
	CURL *curl;
	char url[1024];
	char *form; /* holds the client secret: wiped */
	size_t form_len;
	char *reply; /* holds the token: a fixed buffer, wiped */
	size_t reply_len;
	bool reply_too_big;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct oauth2_fetch *f = userp;
	size_t n = size * nmemb;

	if (n > OAUTH2_MAX_REPLY - f->reply_len) {
		f->reply_too_big = true;
		return 0; /* ends the transfer */
	}
	memcpy(f->reply + f->reply_len, data, n);
	f->reply_len += n;
	return n;
}

/* The form of the grant, in one buffer of its final size: one grown by realloc would leave
 * copies of the secret in freed memory. */
static int form_build(struct oauth2_fetch *f, const struct oauth2_conf *o)
{
	const char *keys[] = {"grant_type", "client_id", "client_secret", "scope"};
	const char *values[] = {"client_credentials", o->client_id, o->client_secret,
	                        o->scope != NULL ? o->scope : OAUTH2_DEFAULT_SCOPE};
	char *esc[4] = {NULL, NULL, NULL, NULL};
	size_t len = 0, off = 0;
	int rc = -1;

	for (size_t i = 0; i < 4; i++) {
		esc[i] = curl_easy_escape(f->curl, values[i], 0);
		if (esc[i] == NULL)
			goto out;
		len += strlen(keys[i]) + 1 + strlen(esc[i]) + 1;
	}
	f->form_len = len + 1;
	f->form = xmalloc(f->form_len);
	for (size_t i = 0; i < 4; i++)
		off += (size_t)snprintf(f->form + off, f->form_len - off, "%s%s=%s", i > 0 ? "&" : "",
		                        keys[i], esc[i]);
	rc = 0;
out:
	for (size_t i = 0; i < 4; i++) {
		if (esc[i] != NULL) {
			explicit_bzero(esc[i], strlen(esc[i]));
			curl_free(esc[i]);
		}
	}
	return rc;
}

void oauth2_fetch_free(struct oauth2_fetch *f)
{
	if (f == NULL)
		return;
	if (f->curl != NULL)
		curl_easy_cleanup(f->curl);
	if (f->form != NULL) {
		explicit_bzero(f->form, f->form_len);
		free(f->form);
	}
	explicit_bzero(f->reply, OAUTH2_MAX_REPLY);
	free(f->reply);
	free(f);
}

#define MUST(call, what)                                                                  \
	do {                                                                              \
		if ((call) != CURLE_OK) {                                                 \
			snprintf(why, why_len, "libcurl refused the option %s", what);    \
			oauth2_fetch_free(f);                                             \
			return NULL;                                                      \
		}                                                                         \
	} while (0)

struct oauth2_fetch *oauth2_fetch_new(const struct server *s, char *why, size_t why_len)
{
	const struct oauth2_conf *o = &s->oauth2;
	struct oauth2_fetch *f = xcalloc(1, sizeof(*f));
	CURL *h;
	int n;

	f->server = s;
	f->reply = xmalloc(OAUTH2_MAX_REPLY);
	if (o->token_url != NULL)
		n = snprintf(f->url, sizeof(f->url), "%s", o->token_url);
	else
		n = oauth2_default_url(o->tenant, f->url, sizeof(f->url));
	/* The config bounds both; a cut URL would send the secret to another path. */
	if (n < 0 || (size_t)n >= sizeof(f->url)) {
		snprintf(why, why_len, "the token endpoint's URL is longer than %zu bytes",
		         sizeof(f->url) - 1);
		oauth2_fetch_free(f);
		return NULL;
	}
	if (o->client_id == NULL || o->client_secret == NULL) {
		snprintf(why, why_len, "no client_id or client secret for the token endpoint");
		oauth2_fetch_free(f);
		return NULL;
	}
	f->curl = h = curl_easy_init();
	if (h == NULL) {
		snprintf(why, why_len, "cannot create a libcurl handle");
		oauth2_fetch_free(f);
		return NULL;
	}
	if (form_build(f, o) < 0) {
		snprintf(why, why_len, "cannot encode the token request");
		oauth2_fetch_free(f);
		return NULL;
	}

	MUST(curl_easy_setopt(h, CURLOPT_URL, f->url), "URL");
	MUST(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https"), "PROTOCOLS_STR");
	MUST(curl_easy_setopt(h, CURLOPT_PROXY, ""), "PROXY");
	MUST(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->errbuf), "ERRORBUFFER");
	MUST(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L), "NOSIGNAL");
	MUST(curl_easy_setopt(h, CURLOPT_POSTFIELDS, f->form), "POSTFIELDS");
	MUST(curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(f->form)), "POSTFIELDSIZE");
	MUST(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write), "WRITEFUNCTION");
	MUST(curl_easy_setopt(h, CURLOPT_WRITEDATA, f), "WRITEDATA");
	MUST(curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2), "SSLVERSION");
	MUST(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L), "SSL_VERIFYPEER");
	MUST(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L), "SSL_VERIFYHOST");
	if (o->ca_file != NULL)
		MUST(curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file), "CAINFO");
	MUST(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms),
	     "CONNECTTIMEOUT_MS");
	MUST(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->connect_timeout_ms + s->timeout_ms),
	     "TIMEOUT_MS");
	/* One request now and then: no connection is kept for it. */
	MUST(curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L), "FORBID_REUSE");
	MUST(curl_easy_setopt(h, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION), "USERAGENT");
	MUST(curl_easy_setopt(h, CURLOPT_PRIVATE, f), "PRIVATE");
	return f;
}

#undef MUST

void *oauth2_fetch_handle(struct oauth2_fetch *f)
{
	return f->curl;
}

/* The secret must never reach a message, even if an endpoint echoed it. */
static void redact(char *s, const char *secret)
{
	size_t n = secret != NULL ? strlen(secret) : 0;
	char *p;

	if (n < 4)
		return;
	while ((p = strstr(s, secret)) != NULL) {
		static const char mark[] = "[redacted]";
		size_t tail = strlen(p + n);
		if (n >= sizeof(mark) - 1) {
			memcpy(p, mark, sizeof(mark) - 1);
			memmove(p + sizeof(mark) - 1, p + n, tail + 1);
		} else {
			memset(p, '*', n);
		}
	}
}

int oauth2_fetch_end(struct oauth2_fetch *f, int cc, int64_t now, struct oauth2_token *t,
                     char *why, size_t why_len)
{
	char what[640];
	long status = 0;
	int64_t lifetime_s = 0;
	char *token = NULL;
	int rc = -1;

	what[0] = '\0';
	if (f->reply_too_big) {
		snprintf(what, sizeof(what), "the reply is larger than %d bytes", OAUTH2_MAX_REPLY);
	} else if (cc != CURLE_OK) {
		snprintf(what, sizeof(what), "%s",
		         f->errbuf[0] != '\0' ? f->errbuf : curl_easy_strerror((CURLcode)cc));
	} else {
		/* status stays 0 if libcurl has none: oauth2_parse_reply refuses that. */
		(void)curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
		if (oauth2_parse_reply(status, f->reply, f->reply_len, &token, &lifetime_s, what,
		                       sizeof(what)) == 0) {
			oauth2_token_clear(t);
			t->value = token;
			t->expires_at = now + lifetime_s * 1000;
			t->refresh_at = t->expires_at - oauth2_refresh_margin_ms(lifetime_s * 1000);
			t->fresh = true;
			rc = 0;
		}
	}
	explicit_bzero(f->reply, OAUTH2_MAX_REPLY);
	f->reply_len = 0;
	if (rc < 0) {
		redact(what, f->server->oauth2.client_secret);
		snprintf(why, why_len, "token endpoint %s: %s", f->url, what);
	}
	return rc;
}

int oauth2_token_get(const struct server *s, struct oauth2_token *t, int64_t now, char *why,
                     size_t why_len)
{
	struct oauth2_fetch *f;
	CURLcode cc;
	int rc;

	if (oauth2_token_usable(t, now)) {
		t->fresh = false;
		return 0;
	}
	f = oauth2_fetch_new(s, why, why_len);
	if (f == NULL)
		return -1;
	cc = curl_easy_perform(f->curl);
	rc = oauth2_fetch_end(f, (int)cc, now, t, why, why_len);
	oauth2_fetch_free(f);
	return rc;
}

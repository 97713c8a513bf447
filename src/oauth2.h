/* OAuth2 access tokens for auth: xoauth2: the client-credentials grant against a token endpoint
 * (Microsoft Entra ID's by default), a token kept in memory until shortly before it expires. */
#ifndef ALERTMAIL_OAUTH2_H
#define ALERTMAIL_OAUTH2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;

/* A token and its life, on the monotonic clock (ms). */
struct oauth2_token {
	char *value; /* NULL: none; wiped when cleared */
	int64_t refresh_at; /* from here on, a new one is fetched before the next session */
	int64_t expires_at;
	bool fresh; /* fetched for the session now being opened: a 535 is not the cache's fault */
};

/* Whether s gets its tokens by the client-credentials grant (auth xoauth2 without token_file). */
bool oauth2_uses_grant(const struct server *s);

/* Whether t holds a token that may be used at now (before its refresh time). */
bool oauth2_token_usable(const struct oauth2_token *t, int64_t now);
/* Forgets the token (after a 535 with it, or at a reload). */
void oauth2_token_clear(struct oauth2_token *t);

/* The largest token endpoint reply read, in bytes. */
#define OAUTH2_MAX_REPLY 65536

/* Pure: reads the token endpoint's reply (HTTP status and JSON body). On success returns 0 with
 * the access token in *token (free it with secret_free) and its lifetime in seconds. Otherwise
 * returns -1 with a line in why made from the endpoint's error and error_description, or the
 * HTTP status when the body says nothing usable; the secret is never in it. */
int oauth2_parse_reply(long status, const char *body, size_t len, char **token,
                       int64_t *lifetime_s, char *why, size_t why_len);

/* How long before its expiry a token of that lifetime is replaced: a tenth of it, at most five
 * minutes, so that a token is never used in its last moments and never fetched needlessly. */
int64_t oauth2_refresh_margin_ms(int64_t lifetime_ms);

/* One request to the token endpoint, driven by the caller: curl_easy_perform on its handle, or
 * a multi handle in an event loop. */
struct oauth2_fetch;

/* Sets up the POST of the client-credentials grant for server s (HTTPS only, certificate and
 * host name verified, TLS 1.2 at least, no proxy from the environment, bounded by the server's
 * timeouts). Returns NULL with why set when it cannot. */
struct oauth2_fetch *oauth2_fetch_new(const struct server *s, char *why, size_t why_len);
void *oauth2_fetch_handle(struct oauth2_fetch *f); /* the CURL easy handle */
/* The transfer has ended with curl code cc: on success the token goes into t (refresh_at and
 * expires_at from now) and 0 is returned; else -1 with why ("token endpoint ...: ..."). */
int oauth2_fetch_end(struct oauth2_fetch *f, int cc, int64_t now, struct oauth2_token *t,
                     char *why, size_t why_len);
void oauth2_fetch_free(struct oauth2_fetch *f);

/* Makes sure t holds a usable token for s, fetching one (blocking) when it does not; for the
 * commands (test, check --connect). Returns 0, or -1 with why. */
int oauth2_token_get(const struct server *s, struct oauth2_token *t, int64_t now, char *why,
                     size_t why_len);

/* The default token endpoint of a tenant; out gets the URL. Returns its length, as snprintf
 * does: len or more means it was cut. */
int oauth2_default_url(const char *tenant, char *out, size_t len);

#define OAUTH2_DEFAULT_SCOPE "https://outlook.office365.com/.default"

#endif

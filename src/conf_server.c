#include "config.h"

#include "conf_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clientcert.h"
#include "duration.h"

static const char *const server_keys[] = {
    "host",          "port",
    "tls",           "verify",
    "ca_file",       "client_cert",
    "client_key",    "auth",
    "username",      "password_file",
    "password_env",  "password_sealed",
    "password",      "allow_plaintext_auth",
    "timeout",       "connect_timeout",
    "total_timeout", "max_connections",
    "rate",          "helo",
    "oauth2",        NULL,
};

static const char *const oauth2_keys[] = {
	"token_file", "tenant", "client_id", "client_secret_file", "client_secret_env",
	"client_secret_sealed", "token_url", "scope", "ca_file", NULL,
};

/* A tenant is a domain name or a directory id: it goes into the token endpoint's URL. */
static bool tenant_valid(const char *t)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.";

	return *t != '\0' && strspn(t, ok) == strlen(t) && strlen(t) <= 253;
}

/* oauth2.client_secret_*: like a password, one source, read unless CONFIG_NO_SECRETS. */
static void parse_client_secret(struct cparse *p, struct server *s, const struct ynode *map)
{
	static const struct secret_key keys[] = {
		{"client_secret_file", SECRET_FILE},
		{"client_secret_env", SECRET_ENV},
		{"client_secret_sealed", SECRET_SEALED},
	};
	const struct ynode *at = NULL;
	char owner[160];

	snprintf(owner, sizeof(owner), "server '%s'", s->name);
	if (cp_secret(p, owner, "oauth2.", map, keys, sizeof(keys) / sizeof(keys[0]),
	               &s->oauth2.client_secret, &at) == 0)
		cp_error(p, map,
		     "server '%s': oauth2 needs the client secret: client_secret_file, "
		     "client_secret_env or client_secret_sealed",
		     s->name);
}

/* auth xoauth2: where the bearer token comes from: a token file kept current by something
 * else (read again for every session), or the client-credentials grant. */
static void parse_oauth2(struct cparse *p, struct server *s, const struct ynode *key,
                         const struct ynode *map)
{
	struct oauth2_conf *o = &s->oauth2;
	const struct ynode *n;
	char what[160];

	if (map == NULL) {
		if (s->auth == AUTH_XOAUTH2)
			cp_error(p, key,
			     "server '%s': auth xoauth2 needs an oauth2 block: tenant, client_id and "
			     "client_secret_file (or token_file)",
			     s->name);
		return;
	}
	if (s->auth != AUTH_XOAUTH2) {
		cp_error(p, map, "server '%s': oauth2 is for auth: xoauth2", s->name);
		return;
	}
	if (!cp_expect_kind(p, map, YNODE_MAP, "oauth2"))
		return;
	snprintf(what, sizeof(what), "server '%s' oauth2", s->name);
	cp_check_keys(p, map, what, oauth2_keys);

	n = ynode_get(map, "token_file");
	if (n != NULL) {
		for (size_t i = 1; oauth2_keys[i] != NULL; i++) {
			if (ynode_get(map, oauth2_keys[i]) != NULL) {
				cp_error(p, ynode_get(map, oauth2_keys[i]),
				     "server '%s': oauth2.%s is for the client-credentials grant; "
				     "with token_file the token comes from the file",
				     s->name, oauth2_keys[i]);
				return;
			}
		}
		o->token_file = cp_secret_path(p, n, "oauth2.token_file");
		if (o->token_file != NULL && !p->no_secrets) {
			char *token = NULL;
			struct err e;
			/* Checked now for a clear error at start; read again for every session. */
			if (secret_read_file(o->token_file, &token, &e) < 0)
				cp_error(p, n, "oauth2.token_file: %s", e.msg);
			secret_free(token);
		}
		return;
	}

	/* The client-credentials grant. */
	n = ynode_get(map, "client_id");
	if (n == NULL)
		cp_error(p, map, "server '%s': oauth2 needs client_id (the application id)", s->name);
	else
		o->client_id = cp_str(p, n, "oauth2.client_id");
	n = ynode_get(map, "tenant");
	if (n != NULL) {
		o->tenant = cp_str(p, n, "oauth2.tenant");
		if (o->tenant != NULL && !tenant_valid(o->tenant)) {
			cp_error(p, n,
			     "oauth2.tenant: expected a domain (contoso.onmicrosoft.com) or a "
			     "directory id, got '%s'",
			     o->tenant);
			free(o->tenant);
			o->tenant = NULL;
		}
	}
	n = ynode_get(map, "token_url");
	if (n != NULL) {
		o->token_url = cp_str(p, n, "oauth2.token_url");
		/* The client secret goes in the request: never in clear. */
		if (o->token_url != NULL && (strncasecmp(o->token_url, "https://", 8) != 0 ||
		                             strlen(o->token_url) > 1000 ||
		                             strpbrk(o->token_url, " \t\r\n") != NULL))
			cp_error(p, n, "oauth2.token_url: expected an https:// URL, got '%s'",
			     o->token_url);
	} else if (ynode_get(map, "tenant") == NULL) {
		cp_error(p, map,
		     "server '%s': oauth2 needs tenant (your domain or directory id), or token_url",
		     s->name);
	}
	n = ynode_get(map, "scope");
	if (n != NULL)
		o->scope = cp_str(p, n, "oauth2.scope");
	n = ynode_get(map, "ca_file");
	if (n != NULL) {
		o->ca_file = cp_path(p, n, "oauth2.ca_file");
		if (o->ca_file != NULL && access(o->ca_file, R_OK) != 0)
			cp_error(p, n, "oauth2.ca_file %s: %s", o->ca_file, strerror(errno));
	}
	parse_client_secret(p, s, map);
}

/* client_cert and client_key: the certificate presented for mutual TLS, checked now (files,
 * PEM, the key's mode, that the key matches) so that a mistake shows at start with its place;
 * libcurl reads both files again for every session. */
static void parse_client_cert(struct cparse *p, struct server *s, const struct ynode *map)
{
	const struct ynode *cn = ynode_get(map, "client_cert");
	const struct ynode *kn = ynode_get(map, "client_key");
	enum clientcert_part which;
	struct err e, note;

	if (cn == NULL) {
		if (kn != NULL)
			cp_error(p, kn,
			         "server '%s': client_key needs client_cert (the certificate)",
			         s->name);
		return;
	}
	/* Without client_key the certificate file holds the key: a secret file either way. */
	s->client_cert = cp_secret_path(p, cn, "client_cert");
	if (kn != NULL)
		s->client_key = cp_secret_path(p, kn, "client_key");
	if (s->tls == TLS_NONE) {
		cp_error(p, cn,
		         "server '%s': client_cert needs TLS (tls: starttls or tls), not tls: none",
		         s->name);
		return;
	}
	if (s->client_cert == NULL || (kn != NULL && s->client_key == NULL) || p->no_secrets)
		return;
	if (clientcert_check(s->client_cert, s->client_key, &which, &note, &e) < 0)
		cp_error(p, which == CLIENTCERT_KEY && kn != NULL ? kn : cn, "server '%s': %s: %s",
		         s->name,
		         which == CLIENTCERT_KEY && kn != NULL ? "client_key" : "client_cert",
		         e.msg);
	else if (note.msg[0] != '\0')
		cp_warn(p, cn, "server '%s': client_cert: %s", s->name, note.msg);
}

/* Office 365 throttles a mailbox beyond 3 connections (432 4.3.2) and 30 messages a minute:
 * a config that would meet that says so at once. */
static void office365_limits(struct cparse *p, const struct server *s, const struct ynode *key,
                             const struct ynode *map)
{
	if (s->host == NULL || strcasecmp(s->host, "smtp.office365.com") != 0)
		return;
	if (s->max_connections > 3)
		cp_warn(p, ynode_get(map, "max_connections"),
		      "server '%s': Office 365 allows 3 connections per mailbox; with "
		      "max_connections %ld the excess is refused (432 4.3.2)",
		      s->name, s->max_connections);
	if (s->rate_count == 0 ||
	    (double)s->rate_count * 60000.0 / (double)s->rate_period_ms > 30.0)
		cp_warn(p, ynode_get(map, "rate") != NULL ? ynode_get(map, "rate") : key,
		      "server '%s': Office 365 accepts 30 messages a minute per mailbox; set rate: "
		      "30/min (or less) so that a storm waits here instead of being throttled",
		      s->name);
}

void conf_parse_server(struct cparse *p, struct server *s, const struct ynode *key,
                       const struct ynode *map)
{
	const struct ynode *n;
	const struct ynode *pw_at = NULL;
	static const struct secret_key pw_keys[] = {
		{"password_file", SECRET_FILE},
		{"password_env", SECRET_ENV},
		{"password_sealed", SECRET_SEALED},
		{"password", SECRET_INLINE},
	};
	bool auth_bad = false; /* an unusable auth value: no follow-up errors about it */
	int sources = 0;
	char what[160];

	s->name = xstrdup(key->str);
	s->line = key->line;
	s->column = key->column;
	s->tls = TLS_STARTTLS;
	s->verify = true;
	s->auth = AUTH_NONE;
	s->timeout_ms = 30000;
	s->connect_timeout_ms = -1;
	s->total_timeout_ms = 300000;
	s->max_connections = 2;
	s->port = -1;
	if (!cp_expect_kind(p, map, YNODE_MAP, "a server"))
		return;
	snprintf(what, sizeof(what), "server '%s'", s->name);
	cp_check_keys(p, map, what, server_keys);

	n = ynode_get(map, "host");
	if (n == NULL) {
		cp_error(p, key, "server '%s': 'host' is missing", s->name);
	} else {
		s->host = cp_str(p, n, "host");
		if (s->host != NULL && !cp_host_valid(s->host)) {
			cp_error(p, n,
			     "host: expected a host name (letters, digits, '-', '.', '_'), "
			     "an IPv4 or an IPv6 address, got '%s'",
			     s->host);
			free(s->host);
			s->host = NULL;
		}
	}
	n = ynode_get(map, "tls");
	if (n != NULL && cp_expect_kind(p, n, YNODE_SCALAR, "tls")) {
		if (strcmp(n->str, "starttls") == 0)
			s->tls = TLS_STARTTLS;
		else if (strcmp(n->str, "tls") == 0)
			s->tls = TLS_IMPLICIT;
		else if (strcmp(n->str, "none") == 0)
			s->tls = TLS_NONE;
		else
			cp_error(p, n, "tls: expected starttls, tls or none, got '%s'", n->str);
	}
	n = ynode_get(map, "port");
	if (n != NULL)
		cp_long(p, n, "port", 1, 65535, &s->port);
	if (s->port < 0)
		s->port = s->tls == TLS_IMPLICIT ? 465 : s->tls == TLS_STARTTLS ? 587 : 25;
	n = ynode_get(map, "verify");
	if (n != NULL) {
		cp_bool(p, n, "verify", &s->verify);
		if (!s->verify)
			cp_warn(p, n, "server '%s': certificate verification is off", s->name);
	}
	n = ynode_get(map, "ca_file");
	if (n != NULL) {
		s->ca_file = cp_path(p, n, "ca_file");
		if (s->ca_file != NULL && access(s->ca_file, R_OK) != 0)
			cp_error(p, n, "ca_file %s: %s", s->ca_file, strerror(errno));
	}
	parse_client_cert(p, s, map);
	n = ynode_get(map, "username");
	if (n != NULL)
		s->username = cp_str(p, n, "username");
	n = ynode_get(map, "auth");
	if (n != NULL && cp_expect_kind(p, n, YNODE_SCALAR, "auth")) {
		if (strcmp(n->str, "none") == 0)
			s->auth = AUTH_NONE;
		else if (strcmp(n->str, "plain") == 0)
			s->auth = AUTH_PLAIN;
		else if (strcmp(n->str, "login") == 0)
			s->auth = AUTH_LOGIN;
		else if (strcmp(n->str, "xoauth2") == 0)
			s->auth = AUTH_XOAUTH2;
		else {
			cp_error(p, n, "auth: expected none, plain, login or xoauth2, got '%s'",
			     n->str);
			auth_bad = true;
		}
	} else if (n == NULL && s->username != NULL) {
		s->auth = AUTH_AUTO;
	}

	sources = cp_secret(p, what, "", map, pw_keys, sizeof(pw_keys) / sizeof(pw_keys[0]),
	                     &s->password, &pw_at);
	parse_oauth2(p, s, key, ynode_get(map, "oauth2"));
	if (s->auth == AUTH_XOAUTH2 && sources > 0) {
		cp_error(p, pw_at, "server '%s': auth xoauth2 takes a token (oauth2), not a password",
		     s->name);
		sources = -1; /* reported: no "needs a password" either */
	}
	if (!auth_bad && s->auth != AUTH_NONE && s->username == NULL)
		cp_error(p, ynode_get(map, "auth"), "server '%s': auth %s needs a username", s->name,
		     auth_mech_name(s->auth));
	if (!auth_bad && s->auth != AUTH_NONE && s->auth != AUTH_XOAUTH2 && sources == 0)
		cp_error(p, key,
		     "server '%s': auth %s needs a password "
		     "(password_file, password_env, password_sealed or password)",
		     s->name, auth_mech_name(s->auth));
	if (!auth_bad && s->auth == AUTH_NONE && sources > 0)
		cp_error(p, pw_at, "server '%s': a password is given but auth is none", s->name);

	n = ynode_get(map, "allow_plaintext_auth");
	if (n != NULL)
		cp_bool(p, n, "allow_plaintext_auth", &s->allow_plaintext_auth);
	if (s->tls == TLS_NONE && s->auth != AUTH_NONE && !s->allow_plaintext_auth)
		cp_error(p, ynode_get(map, "tls"),
		     "server '%s': tls none with auth would send the password in clear; use tls: "
		     "starttls or tls, or set allow_plaintext_auth: true if the network is trusted",
		     s->name);
	if (s->tls == TLS_NONE && s->auth != AUTH_NONE && s->allow_plaintext_auth)
		cp_warn(p, ynode_get(map, "allow_plaintext_auth"),
		      "server '%s': the password is sent without TLS", s->name);

	n = ynode_get(map, "timeout");
	if (n != NULL)
		cp_timeout(p, n, "timeout", TIMEOUT_MAX_MS, &s->timeout_ms);
	n = ynode_get(map, "connect_timeout");
	if (n != NULL)
		cp_timeout(p, n, "connect_timeout", TIMEOUT_MAX_MS, &s->connect_timeout_ms);
	if (s->connect_timeout_ms < 0)
		s->connect_timeout_ms = s->timeout_ms;
	n = ynode_get(map, "total_timeout");
	if (n != NULL)
		cp_timeout(p, n, "total_timeout", TOTAL_TIMEOUT_MAX_MS, &s->total_timeout_ms);
	if (s->timeout_ms < 1000 || s->connect_timeout_ms < 1000)
		cp_error(p, key, "server '%s': timeouts must be at least 1s", s->name);
	if (s->total_timeout_ms < s->timeout_ms)
		cp_error(p, ynode_get(map, "total_timeout") ? ynode_get(map, "total_timeout") : key,
		     "server '%s': total_timeout must not be shorter than timeout", s->name);
	n = ynode_get(map, "max_connections");
	if (n != NULL)
		cp_long(p, n, "max_connections", 1, 100, &s->max_connections);
	n = ynode_get(map, "rate");
	if (n != NULL && cp_expect_kind(p, n, YNODE_SCALAR, "rate")) {
		struct err e;
		if (rate_parse(n->str, &s->rate_count, &s->rate_period_ms, &e) < 0)
			cp_error(p, n, "rate: %s", e.msg);
	}
	office365_limits(p, s, key, map);
	n = ynode_get(map, "helo");
	if (n != NULL) {
		s->helo = cp_str(p, n, "helo");
		if (s->helo != NULL &&
		    strspn(s->helo, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                    "0123456789.-[]:") != strlen(s->helo))
			cp_error(p, n, "helo: expected a host name or address literal, got '%s'",
			     s->helo);
	}
}


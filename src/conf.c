#include "config.h"

#include "conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alert.h"
#include "duration.h"
#include "err.h"
#include "mailbox.h"
#include "secret.h"

/* Longer waits are mistakes; the bounds also keep every timeout in milliseconds within a
 * 32-bit long, the type libcurl takes them as. */
#define TIMEOUT_MAX_MS (3600 * 1000LL)
#define TOTAL_TIMEOUT_MAX_MS (86400 * 1000LL)

/* Server and channel names, and host names: letters, digits, '-', '.', and '_' (which
 * internal host names use). */
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"

/* One parse: the file name for positions and every error found. */
struct cparse {
	const char *file;
	bool no_secrets; /* CONFIG_NO_SECRETS: positions and sources checked, nothing read */
	struct secret_ctx secrets; /* what opening a sealed value needs: the state directory */
	struct buf *errors;
	struct buf *warnings;
	int nerrors;
};

/* Appends "file:line:column: message" and a line break to out. Values from the file are in
 * messages, so control characters are escaped: each message stays one line of plain text. */
__attribute__((format(printf, 4, 0))) static void
add_message(struct buf *out, const char *file, const struct ynode *at, const char *fmt, va_list ap)
{
	struct buf msg;

	if (at != NULL && at->line > 0)
		buf_printf(out, "%s:%u:%u: ", file, at->line, at->column);
	else
		buf_printf(out, "%s: ", file);
	buf_init(&msg);
	buf_vprintf(&msg, fmt, ap);
	buf_add_escaped(out, msg.data != NULL ? msg.data : "");
	buf_free(&msg);
	buf_addc(out, '\n');
}

__attribute__((format(printf, 3, 4))) static void cerr(struct cparse *p, const struct ynode *at,
                                                       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_message(p->errors, p->file, at, fmt, ap);
	va_end(ap);
	p->nerrors++;
}

__attribute__((format(printf, 3, 4))) static void cwarn(struct cparse *p, const struct ynode *at,
                                                        const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_message(p->warnings, p->file, at, fmt, ap);
	va_end(ap);
}

size_t config_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t *row;
	size_t d;

	if (la > 64 || lb > 64)
		return (size_t)-1;
	row = xcalloc(lb + 1, sizeof(*row));
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = diag + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	d = row[lb];
	free(row);
	return d;
}

static const char *closest(const char *word, const char *const *known)
{
	const char *best = NULL;
	size_t best_d = (size_t)-1;
	/* One edit per three letters, and at least two: a typo or two in a key of any length is
	 * forgiven, while a word that merely shares some letters with a known key gets no
	 * suggestion (the caller lists the known keys instead). */
	size_t limit = strlen(word) / 3 + 1;

	if (limit < 2)
		limit = 2;
	for (size_t i = 0; known[i] != NULL; i++) {
		size_t d = config_edit_distance(word, known[i]);
		/* A shortened key ("switch_back") is as good as a near miss. */
		if (strlen(word) >= 4 && strncmp(known[i], word, strlen(word)) == 0)
			d = 1;
		if (d < best_d) {
			best_d = d;
			best = known[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

static void list_known(struct buf *b, const char *const *known)
{
	for (size_t i = 0; known[i] != NULL; i++)
		buf_printf(b, "%s%s", i ? ", " : "", known[i]);
}

/* Reports every key of map that is not in known; returns the number of unknown keys. */
static int check_keys(struct cparse *p, const struct ynode *map, const char *where,
                      const char *const *known)
{
	int bad = 0;

	for (size_t i = 0; i < map->count; i++) {
		const struct ynode *k = map->keys[i];
		size_t j;
		for (j = 0; known[j] != NULL; j++)
			if (strcmp(k->str, known[j]) == 0)
				break;
		if (known[j] != NULL)
			continue;
		const char *hint = closest(k->str, known);
		if (hint != NULL) {
			cerr(p, k, "unknown key '%s' in %s; did you mean '%s'?", k->str, where,
			     hint);
		} else {
			struct buf kb;
			buf_init(&kb);
			list_known(&kb, known);
			cerr(p, k, "unknown key '%s' in %s; expected one of: %s", k->str, where,
			     kb.data);
			buf_free(&kb);
		}
		bad++;
	}
	return bad;
}

static bool expect_kind(struct cparse *p, const struct ynode *n, enum ynode_kind kind,
                        const char *what)
{
	if (n->kind == kind && !(kind == YNODE_SCALAR && ynode_is_null(n)))
		return true;
	cerr(p, n, "%s: expected a %s, got %s", what, ynode_kind_name(kind),
	     ynode_is_null(n) ? "nothing" : ynode_kind_name(n->kind));
	return false;
}

/* A non-empty string without control characters (they could end up in headers or logs). */
static char *get_str(struct cparse *p, const struct ynode *n, const char *what)
{
	if (!expect_kind(p, n, YNODE_SCALAR, what))
		return NULL;
	for (size_t i = 0; i < n->len; i++) {
		unsigned char c = (unsigned char)n->str[i];
		if (c < 0x20 || c == 0x7f) {
			cerr(p, n, "%s: control characters (such as line breaks) are not allowed",
			     what);
			return NULL;
		}
	}
	return xstrdup(n->str);
}

static bool get_bool(struct cparse *p, const struct ynode *n, const char *what, bool *out)
{
	int v = ynode_bool(n);

	if (v < 0) {
		cerr(p, n, "%s: expected true or false, got '%s'", what,
		     n->kind == YNODE_SCALAR ? n->str : ynode_kind_name(n->kind));
		return false;
	}
	*out = v == 1;
	return true;
}

static bool get_long(struct cparse *p, const struct ynode *n, const char *what, long min, long max,
                     long *out)
{
	char *end;
	long v;

	if (!expect_kind(p, n, YNODE_SCALAR, what))
		return false;
	errno = 0;
	v = strtol(n->str, &end, 10);
	if (end == n->str || *end != '\0' || errno != 0 || v < min || v > max) {
		cerr(p, n, "%s: expected a whole number from %ld to %ld, got '%s'", what, min, max,
		     n->str);
		return false;
	}
	*out = v;
	return true;
}

/* A size in bytes: "65536", "512KiB", "1MiB" (also K, KB, M, MB, all powers of 1024). */
static bool get_size(struct cparse *p, const struct ynode *n, const char *what, size_t min,
                     size_t max, size_t *out)
{
	static const struct {
		const char *suffix;
		size_t mult;
	} units[] = {{"", 1}, {"K", 1024}, {"KB", 1024}, {"KiB", 1024},
	             {"M", 1048576}, {"MB", 1048576}, {"MiB", 1048576}};
	char *end;
	unsigned long long v;

	if (!expect_kind(p, n, YNODE_SCALAR, what))
		return false;
	errno = 0;
	v = strtoull(n->str, &end, 10);
	if (end != n->str && errno == 0 && n->str[0] != '-') {
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (strcmp(end, units[i].suffix) == 0 && v <= max / units[i].mult &&
			    v * units[i].mult >= min) {
				*out = (size_t)(v * units[i].mult);
				return true;
			}
		}
	}
	cerr(p, n, "%s: expected a size from %zu KiB to %zu MiB such as 1MiB or 512KiB, got '%s'",
	     what, min / 1024, max / 1048576, n->str);
	return false;
}

static bool get_duration(struct cparse *p, const struct ynode *n, const char *what, int64_t *out)
{
	struct err e;

	if (!expect_kind(p, n, YNODE_SCALAR, what))
		return false;
	if (duration_parse(n->str, out, &e) < 0) {
		cerr(p, n, "%s: %s", what, e.msg);
		return false;
	}
	return true;
}

/* A list of strings, where a single string is a list of one. list_count reports a list of
 * the wrong shape and returns 0 for it; list_item gives each item's node, so that an error
 * about an item points at that item. */
static size_t list_count(struct cparse *p, const struct ynode *n, const char *what)
{
	if (n->kind == YNODE_SCALAR && !ynode_is_null(n))
		return 1;
	if (!expect_kind(p, n, YNODE_SEQ, what))
		return 0;
	if (n->count == 0)
		cerr(p, n, "%s: the list is empty", what);
	return n->count;
}

static const struct ynode *list_item(const struct ynode *n, size_t i)
{
	return n->kind == YNODE_SEQ ? n->values[i] : n;
}

/* The daemon's working directory is not the config's: relative paths would mislead. */
static char *get_path(struct cparse *p, const struct ynode *n, const char *what)
{
	char *v = get_str(p, n, what);

	if (v != NULL && v[0] != '/') {
		cerr(p, n, "%s: expected an absolute path, got '%s'", what, v);
		free(v);
		return NULL;
	}
	return v;
}

/* A secret file: an absolute path, or $CREDENTIALS_DIRECTORY/NAME (systemd's LoadCredential=),
 * expanded here. Commands that read no secret run outside the service: for them the variable
 * need not be set, and the path stays as written. */
static char *get_secret_path(struct cparse *p, const struct ynode *n, const char *what)
{
	char *v, *path = NULL;
	struct err e;

	if (n->kind != YNODE_SCALAR || !secret_path_is_credential(n->str))
		return get_path(p, n, what);
	v = get_str(p, n, what);
	if (v != NULL && secret_path_expand(v, p->no_secrets ? NULL : &path, &e) < 0)
		cerr(p, n, "%s: %s", what, e.msg);
	else if (v != NULL && p->no_secrets)
		return v;
	free(v);
	return path;
}

/* A secret that one of several keys may give: a server's password, an oauth2 client secret. */
struct secret_key {
	const char *key;
	enum secret_source source;
};

/* "a (mode 0600), b or c": the other ways to give a secret than inline, for the warning. */
static void list_alternatives(struct buf *b, const struct secret_key *keys, size_t nkeys)
{
	size_t n = 0, total = 0;

	for (size_t i = 0; i < nkeys; i++)
		total += keys[i].source != SECRET_INLINE;
	for (size_t i = 0; i < nkeys; i++) {
		if (keys[i].source == SECRET_INLINE)
			continue;
		n++;
		buf_printf(b, "%s%s%s", n == 1 ? "" : n == total ? " or " : ", ", keys[i].key,
		           keys[i].source == SECRET_FILE ? " (mode 0600)" : "");
	}
}

/* Reads the secret that map gives through one of keys: a file's path, a variable's name, a
 * sealed value or the value itself, into *out (unless CONFIG_NO_SECRETS). Errors and warnings
 * are reported at the key, as "OWNER: PREFIXKEY: ...". At most one of the keys may be present;
 * returns how many are, *at the last one. */
static int get_secret(struct cparse *p, const char *owner, const char *prefix,
                      const struct ynode *map, const struct secret_key *keys, size_t nkeys,
                      char **out, const struct ynode **at)
{
	int sources = 0;

	for (size_t i = 0; i < nkeys; i++) {
		const struct ynode *n = ynode_get(map, keys[i].key);
		char *where = NULL;
		char what[96];
		struct err e, note;

		if (n == NULL)
			continue;
		sources++;
		*at = n;
		snprintf(what, sizeof(what), "%s%s", prefix, keys[i].key);
		if (keys[i].source == SECRET_FILE) {
			where = get_secret_path(p, n, what);
		} else if (keys[i].source != SECRET_INLINE) {
			where = get_str(p, n, what);
		} else if (expect_kind(p, n, YNODE_SCALAR, what)) {
			struct buf alt;
			where = xstrdup(n->str);
			buf_init(&alt);
			list_alternatives(&alt, keys, nkeys);
			cwarn(p, n, "%s: an inline %s is discouraged; use %s", owner, what,
			      alt.data);
			buf_free(&alt);
		}
		/* The first source that yields the secret keeps it: a second one (an error below)
		 * cannot overwrite and leak it. */
		if (where != NULL && !p->no_secrets && *out == NULL) {
			if (secret_resolve(&p->secrets, keys[i].source, where, out, &note, &e) < 0)
				cerr(p, n, "%s: %s: %s", owner, what, e.msg);
			else if (note.msg[0] != '\0')
				cwarn(p, n, "%s: %s: %s", owner, what, note.msg);
		}
		secret_free(where);
	}
	if (sources > 1) {
		struct buf names;
		buf_init(&names);
		for (size_t i = 0; i < nkeys; i++)
			buf_printf(&names, "%s%s%s", i > 0 ? ", " : "", prefix, keys[i].key);
		cerr(p, *at, "%s: give only one of %s", owner, names.data);
		buf_free(&names);
	}
	return sources;
}

/* A sender or recipient: "Name <local@domain>" or a bare address. */
static char *get_mailbox(struct cparse *p, const struct ynode *n, const char *what)
{
	char *v = get_str(p, n, what);
	struct mailbox mb;
	struct err e;

	if (v == NULL)
		return NULL;
	if (mailbox_parse(v, &mb, &e) < 0) {
		cerr(p, n, "%s: %s", what, e.msg);
		free(v);
		return NULL;
	}
	mailbox_free(&mb);
	return v;
}

/* A timeout within [0, max_ms]; the lower bounds are cross-field checks. */
static void get_timeout(struct cparse *p, const struct ynode *n, const char *what, int64_t max_ms,
                        int64_t *out)
{
	int64_t v;
	char max[32];

	if (!get_duration(p, n, what, &v))
		return;
	if (v > max_ms) {
		duration_format(max_ms, max, sizeof(max));
		cerr(p, n, "%s: expected at most %s, got '%s'", what, max, n->str);
		return;
	}
	*out = v;
}

/* What goes into the server's URL: a host name, an IPv4 address or an IPv6 address. Nothing
 * else ('@', '/', '?', '#', spaces) can change what the URL means. */
static bool host_valid(const char *h)
{
	unsigned char addr[16];
	size_t len = strlen(h);

	if (strchr(h, ':') != NULL)
		return strspn(h, "0123456789abcdefABCDEF:.") == len &&
		       inet_pton(AF_INET6, h, addr) == 1;
	/* Only digits and dots: an IPv4 address, never a name. */
	if (len > 0 && strspn(h, "0123456789.") == len)
		return inet_pton(AF_INET, h, addr) == 1;
	if (len == 0 || len > 253 || strspn(h, NAME_CHARS) != len)
		return false;
	return h[0] != '-' && h[0] != '.' && strstr(h, "..") == NULL;
}

/* Server and channel names appear in every log line about them and on command lines: plain
 * words only, so that no control character reaches a log and none needs quoting. */
static void check_name(struct cparse *p, const struct ynode *key, const char *what)
{
	if (key->len > 0 && strspn(key->str, NAME_CHARS) == key->len)
		return;
	cerr(p, key, "%s name '%s': use only letters, digits, '-', '.' and '_'", what, key->str);
}

static void free_str_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *const top_keys[] = {
	"spool", "state", "templates", "from", "default_channel", "servers", "channels", "routes",
	"retry", "max_alert_size", NULL,
};
static const char *const server_keys[] = {
	"host", "port", "tls", "verify", "ca_file", "auth", "username", "password_file",
	"password_env", "password_sealed", "password", "allow_plaintext_auth", "timeout",
	"connect_timeout", "total_timeout", "max_connections", "rate", "helo", "oauth2", NULL,
};
static const char *const channel_keys[] = {
	"servers", "to", "template", "switch_back_after", "from", NULL,
};
static const char *const route_keys[] = {"match", "channel", "channels", "continue", NULL};
static const char *const retry_keys[] = {"initial", "max_interval", "give_up_after", NULL};

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
	if (get_secret(p, owner, "oauth2.", map, keys, sizeof(keys) / sizeof(keys[0]),
	               &s->oauth2.client_secret, &at) == 0)
		cerr(p, map,
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
			cerr(p, key,
			     "server '%s': auth xoauth2 needs an oauth2 block: tenant, client_id and "
			     "client_secret_file (or token_file)",
			     s->name);
		return;
	}
	if (s->auth != AUTH_XOAUTH2) {
		cerr(p, map, "server '%s': oauth2 is for auth: xoauth2", s->name);
		return;
	}
	if (!expect_kind(p, map, YNODE_MAP, "oauth2"))
		return;
	snprintf(what, sizeof(what), "server '%s' oauth2", s->name);
	check_keys(p, map, what, oauth2_keys);

	n = ynode_get(map, "token_file");
	if (n != NULL) {
		for (size_t i = 1; oauth2_keys[i] != NULL; i++) {
			if (ynode_get(map, oauth2_keys[i]) != NULL) {
				cerr(p, ynode_get(map, oauth2_keys[i]),
				     "server '%s': oauth2.%s is for the client-credentials grant; "
				     "with token_file the token comes from the file",
				     s->name, oauth2_keys[i]);
				return;
			}
		}
		o->token_file = get_secret_path(p, n, "oauth2.token_file");
		if (o->token_file != NULL && !p->no_secrets) {
			char *token = NULL;
			struct err e;
			/* Checked now for a clear error at start; read again for every session. */
			if (secret_read_file(o->token_file, &token, &e) < 0)
				cerr(p, n, "oauth2.token_file: %s", e.msg);
			secret_free(token);
		}
		return;
	}

	/* The client-credentials grant. */
	n = ynode_get(map, "client_id");
	if (n == NULL)
		cerr(p, map, "server '%s': oauth2 needs client_id (the application id)", s->name);
	else
		o->client_id = get_str(p, n, "oauth2.client_id");
	n = ynode_get(map, "tenant");
	if (n != NULL) {
		o->tenant = get_str(p, n, "oauth2.tenant");
		if (o->tenant != NULL && !tenant_valid(o->tenant)) {
			cerr(p, n,
			     "oauth2.tenant: expected a domain (contoso.onmicrosoft.com) or a "
			     "directory id, got '%s'",
			     o->tenant);
			free(o->tenant);
			o->tenant = NULL;
		}
	}
	n = ynode_get(map, "token_url");
	if (n != NULL) {
		o->token_url = get_str(p, n, "oauth2.token_url");
		/* The client secret goes in the request: never in clear. */
		if (o->token_url != NULL && (strncasecmp(o->token_url, "https://", 8) != 0 ||
		                             strlen(o->token_url) > 1000 ||
		                             strpbrk(o->token_url, " \t\r\n") != NULL))
			cerr(p, n, "oauth2.token_url: expected an https:// URL, got '%s'",
			     o->token_url);
	} else if (ynode_get(map, "tenant") == NULL) {
		cerr(p, map,
		     "server '%s': oauth2 needs tenant (your domain or directory id), or token_url",
		     s->name);
	}
	n = ynode_get(map, "scope");
	if (n != NULL)
		o->scope = get_str(p, n, "oauth2.scope");
	n = ynode_get(map, "ca_file");
	if (n != NULL) {
		o->ca_file = get_path(p, n, "oauth2.ca_file");
		if (o->ca_file != NULL && access(o->ca_file, R_OK) != 0)
			cerr(p, n, "oauth2.ca_file %s: %s", o->ca_file, strerror(errno));
	}
	parse_client_secret(p, s, map);
}

/* Office 365 throttles a mailbox beyond 3 connections (432 4.3.2) and 30 messages a minute:
 * a config that would meet that says so at once. */
static void office365_limits(struct cparse *p, const struct server *s, const struct ynode *key,
                             const struct ynode *map)
{
	if (s->host == NULL || strcasecmp(s->host, "smtp.office365.com") != 0)
		return;
	if (s->max_connections > 3)
		cwarn(p, ynode_get(map, "max_connections"),
		      "server '%s': Office 365 allows 3 connections per mailbox; with "
		      "max_connections %ld the excess is refused (432 4.3.2)",
		      s->name, s->max_connections);
	if (s->rate_count == 0 ||
	    (double)s->rate_count * 60000.0 / (double)s->rate_period_ms > 30.0)
		cwarn(p, ynode_get(map, "rate") != NULL ? ynode_get(map, "rate") : key,
		      "server '%s': Office 365 accepts 30 messages a minute per mailbox; set rate: "
		      "30/min (or less) so that a storm waits here instead of being throttled",
		      s->name);
}

static void parse_server(struct cparse *p, struct server *s, const struct ynode *key,
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
	if (!expect_kind(p, map, YNODE_MAP, "a server"))
		return;
	snprintf(what, sizeof(what), "server '%s'", s->name);
	check_keys(p, map, what, server_keys);

	n = ynode_get(map, "host");
	if (n == NULL) {
		cerr(p, key, "server '%s': 'host' is missing", s->name);
	} else {
		s->host = get_str(p, n, "host");
		if (s->host != NULL && !host_valid(s->host)) {
			cerr(p, n,
			     "host: expected a host name (letters, digits, '-', '.', '_'), "
			     "an IPv4 or an IPv6 address, got '%s'",
			     s->host);
			free(s->host);
			s->host = NULL;
		}
	}
	n = ynode_get(map, "tls");
	if (n != NULL && expect_kind(p, n, YNODE_SCALAR, "tls")) {
		if (strcmp(n->str, "starttls") == 0)
			s->tls = TLS_STARTTLS;
		else if (strcmp(n->str, "tls") == 0)
			s->tls = TLS_IMPLICIT;
		else if (strcmp(n->str, "none") == 0)
			s->tls = TLS_NONE;
		else
			cerr(p, n, "tls: expected starttls, tls or none, got '%s'", n->str);
	}
	n = ynode_get(map, "port");
	if (n != NULL)
		get_long(p, n, "port", 1, 65535, &s->port);
	if (s->port < 0)
		s->port = s->tls == TLS_IMPLICIT ? 465 : s->tls == TLS_STARTTLS ? 587 : 25;
	n = ynode_get(map, "verify");
	if (n != NULL) {
		get_bool(p, n, "verify", &s->verify);
		if (!s->verify)
			cwarn(p, n, "server '%s': certificate verification is off", s->name);
	}
	n = ynode_get(map, "ca_file");
	if (n != NULL) {
		s->ca_file = get_path(p, n, "ca_file");
		if (s->ca_file != NULL && access(s->ca_file, R_OK) != 0)
			cerr(p, n, "ca_file %s: %s", s->ca_file, strerror(errno));
	}
	n = ynode_get(map, "username");
	if (n != NULL)
		s->username = get_str(p, n, "username");
	n = ynode_get(map, "auth");
	if (n != NULL && expect_kind(p, n, YNODE_SCALAR, "auth")) {
		if (strcmp(n->str, "none") == 0)
			s->auth = AUTH_NONE;
		else if (strcmp(n->str, "plain") == 0)
			s->auth = AUTH_PLAIN;
		else if (strcmp(n->str, "login") == 0)
			s->auth = AUTH_LOGIN;
		else if (strcmp(n->str, "xoauth2") == 0)
			s->auth = AUTH_XOAUTH2;
		else {
			cerr(p, n, "auth: expected none, plain, login or xoauth2, got '%s'",
			     n->str);
			auth_bad = true;
		}
	} else if (n == NULL && s->username != NULL) {
		s->auth = AUTH_AUTO;
	}

	sources = get_secret(p, what, "", map, pw_keys, sizeof(pw_keys) / sizeof(pw_keys[0]),
	                     &s->password, &pw_at);
	parse_oauth2(p, s, key, ynode_get(map, "oauth2"));
	if (s->auth == AUTH_XOAUTH2 && sources > 0) {
		cerr(p, pw_at, "server '%s': auth xoauth2 takes a token (oauth2), not a password",
		     s->name);
		sources = -1; /* reported: no "needs a password" either */
	}
	if (!auth_bad && s->auth != AUTH_NONE && s->username == NULL)
		cerr(p, ynode_get(map, "auth"), "server '%s': auth %s needs a username", s->name,
		     auth_mech_name(s->auth));
	if (!auth_bad && s->auth != AUTH_NONE && s->auth != AUTH_XOAUTH2 && sources == 0)
		cerr(p, key,
		     "server '%s': auth %s needs a password "
		     "(password_file, password_env, password_sealed or password)",
		     s->name, auth_mech_name(s->auth));
	if (!auth_bad && s->auth == AUTH_NONE && sources > 0)
		cerr(p, pw_at, "server '%s': a password is given but auth is none", s->name);

	n = ynode_get(map, "allow_plaintext_auth");
	if (n != NULL)
		get_bool(p, n, "allow_plaintext_auth", &s->allow_plaintext_auth);
	if (s->tls == TLS_NONE && s->auth != AUTH_NONE && !s->allow_plaintext_auth)
		cerr(p, ynode_get(map, "tls"),
		     "server '%s': tls none with auth would send the password in clear; use tls: "
		     "starttls or tls, or set allow_plaintext_auth: true if the network is trusted",
		     s->name);
	if (s->tls == TLS_NONE && s->auth != AUTH_NONE && s->allow_plaintext_auth)
		cwarn(p, ynode_get(map, "allow_plaintext_auth"),
		      "server '%s': the password is sent without TLS", s->name);

	n = ynode_get(map, "timeout");
	if (n != NULL)
		get_timeout(p, n, "timeout", TIMEOUT_MAX_MS, &s->timeout_ms);
	n = ynode_get(map, "connect_timeout");
	if (n != NULL)
		get_timeout(p, n, "connect_timeout", TIMEOUT_MAX_MS, &s->connect_timeout_ms);
	if (s->connect_timeout_ms < 0)
		s->connect_timeout_ms = s->timeout_ms;
	n = ynode_get(map, "total_timeout");
	if (n != NULL)
		get_timeout(p, n, "total_timeout", TOTAL_TIMEOUT_MAX_MS, &s->total_timeout_ms);
	if (s->timeout_ms < 1000 || s->connect_timeout_ms < 1000)
		cerr(p, key, "server '%s': timeouts must be at least 1s", s->name);
	if (s->total_timeout_ms < s->timeout_ms)
		cerr(p, ynode_get(map, "total_timeout") ? ynode_get(map, "total_timeout") : key,
		     "server '%s': total_timeout must not be shorter than timeout", s->name);
	n = ynode_get(map, "max_connections");
	if (n != NULL)
		get_long(p, n, "max_connections", 1, 100, &s->max_connections);
	n = ynode_get(map, "rate");
	if (n != NULL && expect_kind(p, n, YNODE_SCALAR, "rate")) {
		struct err e;
		if (rate_parse(n->str, &s->rate_count, &s->rate_period_ms, &e) < 0)
			cerr(p, n, "rate: %s", e.msg);
	}
	office365_limits(p, s, key, map);
	n = ynode_get(map, "helo");
	if (n != NULL) {
		s->helo = get_str(p, n, "helo");
		if (s->helo != NULL &&
		    strspn(s->helo, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                    "0123456789.-[]:") != strlen(s->helo))
			cerr(p, n, "helo: expected a host name or address literal, got '%s'",
			     s->helo);
	}
}

static bool channel_has_server(const struct channel *ch, const struct server *s)
{
	for (size_t i = 0; i < ch->nservers; i++)
		if (ch->servers[i] == s)
			return true;
	return false;
}

static void parse_channel(struct cparse *p, const struct config *c, struct channel *ch,
                          const struct ynode *key, const struct ynode *map)
{
	const struct ynode *n;
	char what[160];

	ch->name = xstrdup(key->str);
	ch->line = key->line;
	ch->column = key->column;
	ch->switch_back_after_ms = 300000;
	if (!expect_kind(p, map, YNODE_MAP, "a channel"))
		return;
	snprintf(what, sizeof(what), "channel '%s'", ch->name);
	check_keys(p, map, what, channel_keys);

	n = ynode_get(map, "servers");
	if (n == NULL) {
		cerr(p, key,
		     "channel '%s': 'servers' is missing (a list of server names, primary first)",
		     ch->name);
	} else {
		size_t count = list_count(p, n, "servers");

		ch->servers = xcalloc(count ? count : 1, sizeof(*ch->servers));
		for (size_t i = 0; i < count; i++) {
			const struct ynode *at = list_item(n, i);
			char *name = get_str(p, at, "servers");
			struct server *s;

			if (name == NULL)
				continue;
			s = (struct server *)config_server(c, name);
			if (s == NULL) {
				struct buf kb;
				buf_init(&kb);
				for (size_t j = 0; j < c->nservers; j++)
					buf_printf(&kb, "%s%s", j ? ", " : "", c->servers[j].name);
				cerr(p, at,
				     "channel '%s': unknown server '%s'; servers defined: %s",
				     ch->name, name, kb.data ? kb.data : "(none)");
				buf_free(&kb);
			} else if (channel_has_server(ch, s)) {
				cerr(p, at, "channel '%s': server '%s' is listed twice", ch->name,
				     name);
			} else {
				ch->servers[ch->nservers++] = s;
			}
			free(name);
		}
	}
	n = ynode_get(map, "to");
	if (n == NULL) {
		cerr(p, key, "channel '%s': 'to' is missing (a list of recipient addresses)",
		     ch->name);
	} else {
		size_t count = list_count(p, n, "to");

		ch->to = xcalloc(count ? count : 1, sizeof(*ch->to));
		for (size_t i = 0; i < count; i++) {
			char *addr = get_mailbox(p, list_item(n, i), "to");
			if (addr != NULL)
				ch->to[ch->nto++] = addr;
		}
	}
	n = ynode_get(map, "template");
	ch->template = n != NULL ? get_str(p, n, "template") : xstrdup("default");
	if (ch->template != NULL && (strchr(ch->template, '/') != NULL || ch->template[0] == '.' ||
	                             ch->template[0] == '\0')) {
		cerr(p, n, "template: a template name must not contain '/' or start with '.'");
		free(ch->template);
		ch->template = NULL;
	}
	n = ynode_get(map, "from");
	if (n != NULL)
		ch->from = get_mailbox(p, n, "from");
	n = ynode_get(map, "switch_back_after");
	if (n != NULL)
		get_duration(p, n, "switch_back_after", &ch->switch_back_after_ms);
}

static void parse_route_channels(struct cparse *p, const struct config *c, struct route *r,
                                 const struct ynode *n, const char *what)
{
	size_t count = list_count(p, n, what);

	r->channels = xcalloc(count ? count : 1, sizeof(*r->channels));
	for (size_t i = 0; i < count; i++) {
		const struct ynode *at = list_item(n, i);
		char *name = get_str(p, at, what);
		if (name == NULL)
			continue;
		if (config_channel(c, name) == NULL)
			cerr(p, at, "route: unknown channel '%s'", name);
		r->channels[r->nchannels++] = name;
	}
}

static void parse_route(struct cparse *p, const struct config *c, struct route *r,
                        const struct ynode *map)
{
	const struct ynode *n, *one, *many;

	r->line = map->line;
	r->column = map->column;
	if (!expect_kind(p, map, YNODE_MAP, "a route"))
		return;
	check_keys(p, map, "a route", route_keys);
	n = ynode_get(map, "match");
	if (n != NULL && expect_kind(p, n, YNODE_MAP, "match")) {
		for (size_t i = 0; i < n->count; i++)
			if (n->values[i]->kind != YNODE_SCALAR)
				cerr(p, n->values[i],
				     "match: the value for '%s' must be a string or glob",
				     n->keys[i]->str);
		r->match = ynode_copy(n);
	}
	one = ynode_get(map, "channel");
	many = ynode_get(map, "channels");
	if (one != NULL && many != NULL)
		cerr(p, many, "a route takes 'channel' or 'channels', not both");
	else if (one == NULL && many == NULL)
		cerr(p, map, "a route needs 'channel' (or 'channels')");
	else
		parse_route_channels(p, c, r, one != NULL ? one : many,
		                     one != NULL ? "channel" : "channels");
	n = ynode_get(map, "continue");
	if (n != NULL)
		get_bool(p, n, "continue", &r->cont);
}

static bool template_exists(const struct config *c, const char *name)
{
	const char *dirs[2];
	size_t nd = config_template_dirs(c, dirs);

	for (size_t i = 0; i < nd; i++) {
		char *path = xasprintf("%s/%s/subject.mustache", dirs[i], name);
		int rc = access(path, R_OK);
		free(path);
		if (rc == 0)
			return true;
	}
	return false;
}

static void parse_top(struct cparse *p, struct config *c, const struct ynode *root)
{
	const struct ynode *n;

	c->spool = xstrdup(LOCALSTATEDIR "/spool/alertmail");
	c->state = xstrdup(CONFIG_STATE_DEFAULT);
	c->templates = xstrdup(SYSCONFDIR "/alertmail/templates");
	c->max_alert_size = ALERT_MAX_SIZE;
	c->retry_initial_ms = 30000;
	c->retry_max_interval_ms = 15 * 60000;
	c->retry_give_up_after_ms = 24 * 3600000LL;
	if (!expect_kind(p, root, YNODE_MAP, "the config"))
		return;
	check_keys(p, root, "the config", top_keys);

	/* spool, state and templates get the same checks: a table of their offsets in struct
	 * config runs them in one loop instead of three copies, and replaces a default only
	 * with a valid path. */
	static const struct {
		const char *key;
		size_t offset;
	} paths[] = {
		{"spool", offsetof(struct config, spool)},
		{"state", offsetof(struct config, state)},
		{"templates", offsetof(struct config, templates)},
	};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		char **slot = (char **)((char *)c + paths[i].offset);
		n = ynode_get(root, paths[i].key);
		if (n == NULL)
			continue;
		char *v = get_path(p, n, paths[i].key);
		if (v == NULL)
			continue;
		free(*slot);
		*slot = v;
	}
	p->secrets.state_dir = c->state;
	n = ynode_get(root, "from");
	if (n != NULL) {
		c->from = get_mailbox(p, n, "from");
	} else {
		c->from = xasprintf("alertmail@%s", config_host_name());
	}

	n = ynode_get(root, "servers");
	if (n != NULL && expect_kind(p, n, YNODE_MAP, "servers")) {
		c->servers = xcalloc(n->count ? n->count : 1, sizeof(*c->servers));
		for (size_t i = 0; i < n->count; i++) {
			check_name(p, n->keys[i], "server");
			parse_server(p, &c->servers[c->nservers++], n->keys[i], n->values[i]);
		}
	}
	n = ynode_get(root, "channels");
	if (n != NULL && expect_kind(p, n, YNODE_MAP, "channels")) {
		c->channels = xcalloc(n->count ? n->count : 1, sizeof(*c->channels));
		for (size_t i = 0; i < n->count; i++) {
			check_name(p, n->keys[i], "channel");
			parse_channel(p, c, &c->channels[c->nchannels++], n->keys[i], n->values[i]);
		}
	}
	n = ynode_get(root, "routes");
	if (n != NULL && expect_kind(p, n, YNODE_SEQ, "routes")) {
		c->routes = xcalloc(n->count ? n->count : 1, sizeof(*c->routes));
		for (size_t i = 0; i < n->count; i++)
			parse_route(p, c, &c->routes[c->nroutes++], n->values[i]);
	}
	n = ynode_get(root, "max_alert_size");
	if (n != NULL)
		get_size(p, n, "max_alert_size", 1024, 64 * 1048576, &c->max_alert_size);
	n = ynode_get(root, "retry");
	if (n != NULL && expect_kind(p, n, YNODE_MAP, "retry")) {
		const struct ynode *v;
		check_keys(p, n, "retry", retry_keys);
		v = ynode_get(n, "initial");
		if (v != NULL)
			get_duration(p, v, "retry.initial", &c->retry_initial_ms);
		v = ynode_get(n, "max_interval");
		if (v != NULL)
			get_duration(p, v, "retry.max_interval", &c->retry_max_interval_ms);
		v = ynode_get(n, "give_up_after");
		if (v != NULL)
			get_duration(p, v, "retry.give_up_after", &c->retry_give_up_after_ms);
		if (c->retry_initial_ms < 1000)
			cerr(p, n, "retry.initial must be at least 1s");
		if (c->retry_max_interval_ms < c->retry_initial_ms)
			cerr(p, n, "retry.max_interval must not be shorter than retry.initial");
	}

	/* Cross-field checks. */
	n = ynode_get(root, "default_channel");
	if (n != NULL) {
		c->default_channel = get_str(p, n, "default_channel");
		if (c->default_channel != NULL && config_channel(c, c->default_channel) == NULL)
			cerr(p, n, "default_channel: unknown channel '%s'", c->default_channel);
	} else if (c->nchannels == 1) {
		c->default_channel = xstrdup(c->channels[0].name);
	}
	for (size_t i = 0; i < c->nchannels; i++) {
		struct channel *ch = &c->channels[i];
		if (ch->template != NULL && !template_exists(c, ch->template)) {
			const struct ynode *chn = ynode_get(ynode_get(root, "channels"), ch->name);
			const struct ynode *at = ynode_get(chn, "template");
			cerr(p, at ? at : chn,
			     "channel '%s': unknown template '%s' "
			     "(no %s/subject.mustache in %s or the built-in templates)",
			     ch->name, ch->template, ch->template, c->templates);
		}
	}
	if (c->nchannels == 0)
		cerr(p, root, "no channels are defined; add a 'channels' mapping");
}

int config_load(const char *path, struct config **out, struct buf *errors)
{
	return config_load_flags(path, 0, out, errors);
}

int config_load_flags(const char *path, unsigned flags, struct config **out, struct buf *errors)
{
	struct config *c = xcalloc(1, sizeof(*c));
	struct cparse p = {.file = path,
	                   .no_secrets = (flags & CONFIG_NO_SECRETS) != 0,
	                   .errors = errors,
	                   .warnings = &c->warnings};
	struct ynode *root = NULL;
	struct err e;

	*out = NULL;
	c->path = xstrdup(path);
	buf_init(&c->warnings);
	if (ytree_parse_file(path, CONFIG_MAX_SIZE, &root, &e) < 0) {
		buf_printf(errors, "%s\n", e.msg);
		config_free(c);
		return -1;
	}
	parse_top(&p, c, root);
	ynode_free(root);
	if (p.nerrors > 0) {
		config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nservers; i++) {
		struct server *s = &c->servers[i];
		free(s->name);
		free(s->host);
		free(s->ca_file);
		free(s->username);
		secret_free(s->password);
		free(s->oauth2.token_file);
		free(s->oauth2.tenant);
		free(s->oauth2.client_id);
		secret_free(s->oauth2.client_secret);
		free(s->oauth2.token_url);
		free(s->oauth2.scope);
		free(s->oauth2.ca_file);
		free(s->helo);
	}
	free(c->servers);
	for (size_t i = 0; i < c->nchannels; i++) {
		struct channel *ch = &c->channels[i];
		free(ch->name);
		free(ch->servers);
		free_str_list(ch->to, ch->nto);
		free(ch->template);
		free(ch->from);
	}
	free(c->channels);
	for (size_t i = 0; i < c->nroutes; i++) {
		ynode_free(c->routes[i].match);
		free_str_list(c->routes[i].channels, c->routes[i].nchannels);
	}
	free(c->routes);
	free(c->path);
	free(c->spool);
	free(c->state);
	free(c->templates);
	free(c->from);
	free(c->default_channel);
	buf_free(&c->warnings);
	free(c);
}

const char *config_host_name(void)
{
	static char host[256];

	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	/* POSIX leaves a truncated name without its NUL. */
	host[sizeof(host) - 1] = '\0';
	return host;
}

const char *config_default_path(const char *cli_path)
{
	const char *env;

	if (cli_path != NULL)
		return cli_path;
	env = getenv("ALERTMAIL_CONFIG");
	if (env != NULL && *env != '\0')
		return env;
	return SYSCONFDIR "/alertmail/alertmail.yaml";
}

const struct server *config_server(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nservers; i++)
		if (c->servers[i].name != NULL && strcmp(c->servers[i].name, name) == 0)
			return &c->servers[i];
	return NULL;
}

const struct channel *config_channel(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nchannels; i++)
		if (c->channels[i].name != NULL && strcmp(c->channels[i].name, name) == 0)
			return &c->channels[i];
	return NULL;
}

size_t config_template_dirs(const struct config *c, const char *dirs[2])
{
	const char *builtin = getenv("ALERTMAIL_DATADIR");
	static char builtin_dir[4096];

	if (builtin != NULL && *builtin != '\0')
		snprintf(builtin_dir, sizeof(builtin_dir), "%s/templates", builtin);
	else
		snprintf(builtin_dir, sizeof(builtin_dir), "%s/templates", PKGDATADIR);
	dirs[0] = c->templates;
	dirs[1] = builtin_dir;
	return 2;
}

void server_format_addr(const struct server *s, char *out, size_t len)
{
	const char *host = s->host ? s->host : "?";

	if (strchr(host, ':') != NULL)
		snprintf(out, len, "[%s]:%ld", host, s->port);
	else
		snprintf(out, len, "%s:%ld", host, s->port);
}

const char *tls_mode_name(enum tls_mode m)
{
	switch (m) {
	case TLS_STARTTLS:
		return "starttls";
	case TLS_IMPLICIT:
		return "tls";
	case TLS_NONE:
		return "none";
	}
	return "?";
}

const char *auth_mech_name(enum auth_mech m)
{
	switch (m) {
	case AUTH_NONE:
		return "none";
	case AUTH_AUTO:
		return "plain or login";
	case AUTH_PLAIN:
		return "plain";
	case AUTH_LOGIN:
		return "login";
	case AUTH_XOAUTH2:
		return "xoauth2";
	}
	return "?";
}

#include "config.h"

#include "conf_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "mailbox.h"

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

__attribute__((format(printf, 3, 4))) void cp_error(struct cparse *p, const struct ynode *at,
                                                       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_message(p->errors, p->file, at, fmt, ap);
	va_end(ap);
	p->nerrors++;
}

__attribute__((format(printf, 3, 4))) void cp_warn(struct cparse *p, const struct ynode *at,
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
int cp_check_keys(struct cparse *p, const struct ynode *map, const char *where,
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
			cp_error(p, k, "unknown key '%s' in %s; did you mean '%s'?", k->str, where,
			     hint);
		} else {
			struct buf kb;
			buf_init(&kb);
			list_known(&kb, known);
			cp_error(p, k, "unknown key '%s' in %s; expected one of: %s", k->str, where,
			     kb.data);
			buf_free(&kb);
		}
		bad++;
	}
	return bad;
}

bool cp_expect_kind(struct cparse *p, const struct ynode *n, enum ynode_kind kind,
                        const char *what)
{
	if (n->kind == kind && !(kind == YNODE_SCALAR && ynode_is_null(n)))
		return true;
	cp_error(p, n, "%s: expected a %s, got %s", what, ynode_kind_name(kind),
	     ynode_is_null(n) ? "nothing" : ynode_kind_name(n->kind));
	return false;
}

/* A non-empty string without control characters (they could end up in headers or logs). */
char *cp_str(struct cparse *p, const struct ynode *n, const char *what)
{
	if (!cp_expect_kind(p, n, YNODE_SCALAR, what))
		return NULL;
	for (size_t i = 0; i < n->len; i++) {
		unsigned char c = (unsigned char)n->str[i];
		if (c < 0x20 || c == 0x7f) {
			cp_error(p, n, "%s: control characters (such as line breaks) are not allowed",
			     what);
			return NULL;
		}
	}
	return xstrdup(n->str);
}

bool cp_bool(struct cparse *p, const struct ynode *n, const char *what, bool *out)
{
	int v = ynode_bool(n);

	if (v < 0) {
		cp_error(p, n, "%s: expected true or false, got '%s'", what,
		     n->kind == YNODE_SCALAR ? n->str : ynode_kind_name(n->kind));
		return false;
	}
	*out = v == 1;
	return true;
}

bool cp_long(struct cparse *p, const struct ynode *n, const char *what, long min, long max,
                     long *out)
{
	char *end;
	long v;

	if (!cp_expect_kind(p, n, YNODE_SCALAR, what))
		return false;
	errno = 0;
	v = strtol(n->str, &end, 10);
	if (end == n->str || *end != '\0' || errno != 0 || v < min || v > max) {
		cp_error(p, n, "%s: expected a whole number from %ld to %ld, got '%s'", what, min, max,
		     n->str);
		return false;
	}
	*out = v;
	return true;
}

/* A size in bytes: "65536", "512KiB", "1MiB" (also K, KB, M, MB, all powers of 1024). */
bool cp_size(struct cparse *p, const struct ynode *n, const char *what, size_t min,
                     size_t max, size_t *out)
{
	static const struct {
		const char *suffix;
		size_t mult;
	} units[] = {{"", 1}, {"K", 1024}, {"KB", 1024}, {"KiB", 1024},
	             {"M", 1048576}, {"MB", 1048576}, {"MiB", 1048576}};
	char *end;
	unsigned long long v;

	if (!cp_expect_kind(p, n, YNODE_SCALAR, what))
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
	cp_error(p, n, "%s: expected a size from %zu KiB to %zu MiB such as 1MiB or 512KiB, got '%s'",
	     what, min / 1024, max / 1048576, n->str);
	return false;
}

bool cp_duration(struct cparse *p, const struct ynode *n, const char *what, int64_t *out)
{
	struct err e;

	if (!cp_expect_kind(p, n, YNODE_SCALAR, what))
		return false;
	if (duration_parse(n->str, out, &e) < 0) {
		cp_error(p, n, "%s: %s", what, e.msg);
		return false;
	}
	return true;
}

/* A list of strings, where a single string is a list of one. cp_list_count reports a list of
 * the wrong shape and returns 0 for it; cp_list_item gives each item's node, so that an error
 * about an item points at that item. */
size_t cp_list_count(struct cparse *p, const struct ynode *n, const char *what)
{
	if (n->kind == YNODE_SCALAR && !ynode_is_null(n))
		return 1;
	if (!cp_expect_kind(p, n, YNODE_SEQ, what))
		return 0;
	if (n->count == 0)
		cp_error(p, n, "%s: the list is empty", what);
	return n->count;
}

const struct ynode *cp_list_item(const struct ynode *n, size_t i)
{
	return n->kind == YNODE_SEQ ? n->values[i] : n;
}

/* The daemon's working directory is not the config's: relative paths would mislead. */
char *cp_path(struct cparse *p, const struct ynode *n, const char *what)
{
	char *v = cp_str(p, n, what);

	if (v != NULL && v[0] != '/') {
		cp_error(p, n, "%s: expected an absolute path, got '%s'", what, v);
		free(v);
		return NULL;
	}
	return v;
}

/* A secret file: an absolute path, or $CREDENTIALS_DIRECTORY/NAME (systemd's LoadCredential=),
 * expanded here. Commands that read no secret run outside the service: for them the variable
 * need not be set, and the path stays as written. */
char *cp_secret_path(struct cparse *p, const struct ynode *n, const char *what)
{
	char *v, *path = NULL;
	struct err e;

	if (n->kind != YNODE_SCALAR || !secret_path_is_credential(n->str)) {
		struct config *c = p->cfg;
		v = cp_path(p, n, what);
		if (v != NULL && c != NULL) {
			c->secret_files = xrealloc(c->secret_files,
			                           (c->nsecret_files + 1) * sizeof(char *));
			c->secret_files[c->nsecret_files++] = xstrdup(v);
		}
		return v;
	}
	v = cp_str(p, n, what);
	if (v != NULL && secret_path_expand(v, p->no_secrets ? NULL : &path, &e) < 0)
		cp_error(p, n, "%s: %s", what, e.msg);
	else if (v != NULL && p->no_secrets)
		return v;
	free(v);
	return path;
}

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
int cp_secret(struct cparse *p, const char *owner, const char *prefix,
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
			where = cp_secret_path(p, n, what);
		} else if (keys[i].source != SECRET_INLINE) {
			where = cp_str(p, n, what);
		} else if (cp_expect_kind(p, n, YNODE_SCALAR, what)) {
			struct buf alt;
			where = xstrdup(n->str);
			buf_init(&alt);
			list_alternatives(&alt, keys, nkeys);
			cp_warn(p, n, "%s: an inline %s is discouraged; use %s", owner, what,
			      alt.data);
			buf_free(&alt);
		}
		/* The first source that yields the secret keeps it: a second one (an error below)
		 * cannot overwrite and leak it. */
		if (where != NULL && !p->no_secrets && *out == NULL) {
			if (secret_resolve(&p->secrets, keys[i].source, where, out, &note, &e) < 0)
				cp_error(p, n, "%s: %s: %s", owner, what, e.msg);
			else if (note.msg[0] != '\0')
				cp_warn(p, n, "%s: %s: %s", owner, what, note.msg);
		}
		secret_free(where);
	}
	if (sources > 1) {
		struct buf names;
		buf_init(&names);
		for (size_t i = 0; i < nkeys; i++)
			buf_printf(&names, "%s%s%s", i > 0 ? ", " : "", prefix, keys[i].key);
		cp_error(p, *at, "%s: give only one of %s", owner, names.data);
		buf_free(&names);
	}
	return sources;
}

/* A sender or recipient: "Name <local@domain>" or a bare address. */
char *cp_mailbox(struct cparse *p, const struct ynode *n, const char *what)
{
	char *v = cp_str(p, n, what);
	struct mailbox mb;
	struct err e;

	if (v == NULL)
		return NULL;
	if (mailbox_parse(v, &mb, &e) < 0) {
		cp_error(p, n, "%s: %s", what, e.msg);
		free(v);
		return NULL;
	}
	mailbox_free(&mb);
	return v;
}

/* A timeout within [0, max_ms]; the lower bounds are cross-field checks. */
void cp_timeout(struct cparse *p, const struct ynode *n, const char *what, int64_t max_ms,
                        int64_t *out)
{
	int64_t v;

	if (!cp_duration(p, n, what, &v))
		return;
	if (v > max_ms) {
		char max[32];
		duration_format(max_ms, max, sizeof(max));
		cp_error(p, n, "%s: expected at most %s, got '%s'", what, max, n->str);
		return;
	}
	*out = v;
}

/* What goes into the server's URL: a host name, an IPv4 address or an IPv6 address. Nothing
 * else ('@', '/', '?', '#', spaces) can change what the URL means. */
bool cp_host_valid(const char *h)
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
void cp_check_name(struct cparse *p, const struct ynode *key, const char *what)
{
	if (key->len > 0 && strspn(key->str, NAME_CHARS) == key->len)
		return;
	cp_error(p, key, "%s name '%s': use only letters, digits, '-', '.' and '_'", what, key->str);
}

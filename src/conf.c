#include "config.h"

#include "conf_int.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert.h"
#include "route.h"

static void free_str_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *const top_keys[] = {
	"spool", "state", "templates", "from", "default_channel", "servers", "channels", "routes",
	"retry", "max_alert_size", "user", "dedup_window", "dedup_key", NULL,
};
static const char *const channel_keys[] = {
	"servers", "to", "template", "switch_back_after", "from", "dedup_window", "dedup_key",
	NULL,
};
static const char *const route_keys[] = {"match", "channel", "channels", "continue", NULL};
static const char *const retry_keys[] = {"initial", "max_interval", "give_up_after", NULL};

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
	if (!cp_expect_kind(p, map, YNODE_MAP, "a channel"))
		return;
	snprintf(what, sizeof(what), "channel '%s'", ch->name);
	cp_check_keys(p, map, what, channel_keys);

	n = ynode_get(map, "servers");
	if (n == NULL) {
		cp_error(p, key,
		     "channel '%s': 'servers' is missing (a list of server names, primary first)",
		     ch->name);
	} else {
		size_t count = cp_list_count(p, n, "servers");

		ch->servers = xcalloc(count ? count : 1, sizeof(struct server *));
		for (size_t i = 0; i < count; i++) {
			const struct ynode *at = cp_list_item(n, i);
			char *name = cp_str(p, at, "servers");
			struct server *s;

			if (name == NULL)
				continue;
			s = (struct server *)config_server(c, name);
			if (s == NULL) {
				struct buf kb;
				buf_init(&kb);
				for (size_t j = 0; j < c->nservers; j++)
					buf_printf(&kb, "%s%s", j ? ", " : "", c->servers[j].name);
				cp_error(p, at,
				     "channel '%s': unknown server '%s'; servers defined: %s",
				     ch->name, name, kb.data ? kb.data : "(none)");
				buf_free(&kb);
			} else if (channel_has_server(ch, s)) {
				cp_error(p, at, "channel '%s': server '%s' is listed twice", ch->name,
				     name);
			} else {
				ch->servers[ch->nservers++] = s;
			}
			free(name);
		}
	}
	n = ynode_get(map, "to");
	if (n == NULL) {
		cp_error(p, key, "channel '%s': 'to' is missing (a list of recipient addresses)",
		     ch->name);
	} else {
		size_t count = cp_list_count(p, n, "to");

		ch->to = xcalloc(count ? count : 1, sizeof(*ch->to));
		for (size_t i = 0; i < count; i++) {
			char *addr = cp_mailbox(p, cp_list_item(n, i), "to");
			if (addr != NULL)
				ch->to[ch->nto++] = addr;
		}
	}
	n = ynode_get(map, "template");
	ch->template = n != NULL ? cp_str(p, n, "template") : xstrdup("default");
	if (ch->template != NULL && (strchr(ch->template, '/') != NULL || ch->template[0] == '.' ||
	                             ch->template[0] == '\0')) {
		cp_error(p, n, "template: a template name must not contain '/' or start with '.'");
		free(ch->template);
		ch->template = NULL;
	}
	n = ynode_get(map, "from");
	if (n != NULL)
		ch->from = cp_mailbox(p, n, "from");
	n = ynode_get(map, "switch_back_after");
	if (n != NULL)
		cp_duration(p, n, "switch_back_after", &ch->switch_back_after_ms);
}

static void parse_route_channels(struct cparse *p, const struct config *c, struct route *r,
                                 const struct ynode *n, const char *what)
{
	size_t count = cp_list_count(p, n, what);

	r->channels = xcalloc(count ? count : 1, sizeof(*r->channels));
	for (size_t i = 0; i < count; i++) {
		const struct ynode *at = cp_list_item(n, i);
		char *name = cp_str(p, at, what);
		if (name == NULL)
			continue;
		if (config_channel(c, name) == NULL)
			cp_error(p, at, "route: unknown channel '%s'", name);
		for (size_t k = 0; k < r->nchannels; k++)
			if (strcmp(r->channels[k], name) == 0)
				cp_error(p, at, "route: channel '%s' is listed twice", name);
		r->channels[r->nchannels++] = name;
	}
}

/* match: a mapping of field paths to values or globs; empty (or null) matches every alert. */
static void parse_route_match(struct cparse *p, struct route *r, const struct ynode *n)
{
	if (ynode_is_null(n))
		return;
	if (!cp_expect_kind(p, n, YNODE_MAP, "match"))
		return;
	for (size_t i = 0; i < n->count; i++) {
		const struct ynode *k = n->keys[i], *v = n->values[i];
		const char *seg = k->str;

		/* ynode_path() takes each part between dots as a key of a mapping. */
		if (strlen(k->str) != k->len)
			cp_error(p, k, "match: a field path must not contain a NUL byte");
		for (;;) {
			size_t len = strcspn(seg, ".");
			if (len == 0 || len >= YNODE_PATH_PART_MAX) {
				cp_error(p, k,
				         "match: '%s' is not a field path: each part between dots "
				         "must be 1 to %d bytes (labels.team)",
				         k->str, YNODE_PATH_PART_MAX - 1);
				break;
			}
			if (seg[len] == '\0')
				break;
			seg += len + 1;
		}
		if (v->kind != YNODE_SCALAR) {
			cp_error(
			    p, v,
			    "match: the value for '%s' must be a single value or glob, not a %s",
			    k->str, ynode_kind_name(v->kind));
		} else if (ynode_is_null(v)) {
			cp_error(
			    p, v,
			    "match: '%s' has no value; give a value or a glob ('*' matches any "
			    "value)",
			    k->str);
		} else if (route_glob_stars(v->str) > ROUTE_GLOB_STARS_MAX) {
			cp_error(
			    p, v,
			    "match: the pattern for '%s' has %zu '*'; at most %d are allowed, so "
			    "that no pattern makes matching slow",
			    k->str, route_glob_stars(v->str), ROUTE_GLOB_STARS_MAX);
		}
	}
	r->match = ynode_copy(n);
}

static void parse_route(struct cparse *p, const struct config *c, struct route *r,
                        const struct ynode *map)
{
	const struct ynode *n, *one, *many;

	r->line = map->line;
	r->column = map->column;
	if (!cp_expect_kind(p, map, YNODE_MAP, "a route"))
		return;
	cp_check_keys(p, map, "a route", route_keys);
	n = ynode_get(map, "match");
	if (n != NULL)
		parse_route_match(p, r, n);
	one = ynode_get(map, "channel");
	many = ynode_get(map, "channels");
	if (one != NULL && many != NULL)
		cp_error(p, many, "a route takes 'channel' or 'channels', not both");
	else if (one == NULL && many == NULL)
		cp_error(p, map, "a route needs 'channel' (or 'channels')");
	else
		parse_route_channels(p, c, r, one != NULL ? one : many,
		                     one != NULL ? "channel" : "channels");
	n = ynode_get(map, "continue");
	if (n != NULL)
		cp_bool(p, n, "continue", &r->cont);
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
	c->retry_max_interval_ms = 15 * 60000LL;
	c->retry_give_up_after_ms = 24 * 3600000LL;
	if (!cp_expect_kind(p, root, YNODE_MAP, "the config"))
		return;
	cp_check_keys(p, root, "the config", top_keys);

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
		char *v = cp_path(p, n, paths[i].key);
		if (v == NULL)
			continue;
		free(*slot);
		*slot = v;
	}
	p->secrets.state_dir = c->state;
	n = ynode_get(root, "from");
	if (n != NULL) {
		c->from = cp_mailbox(p, n, "from");
	} else {
		c->from = xasprintf("alertmail@%s", config_host_name());
	}

	n = ynode_get(root, "servers");
	if (n != NULL && cp_expect_kind(p, n, YNODE_MAP, "servers")) {
		c->servers = xcalloc(n->count ? n->count : 1, sizeof(*c->servers));
		for (size_t i = 0; i < n->count; i++) {
			cp_check_name(p, n->keys[i], "server");
			conf_parse_server(p, &c->servers[c->nservers++], n->keys[i], n->values[i]);
		}
	}
	n = ynode_get(root, "channels");
	if (n != NULL && cp_expect_kind(p, n, YNODE_MAP, "channels")) {
		c->channels = xcalloc(n->count ? n->count : 1, sizeof(*c->channels));
		for (size_t i = 0; i < n->count; i++) {
			cp_check_name(p, n->keys[i], "channel");
			if (n->keys[i]->len > CONFIG_CHANNEL_NAME_MAX)
				cp_error(p, n->keys[i], "channel name '%s': longer than %d bytes",
				         n->keys[i]->str, CONFIG_CHANNEL_NAME_MAX);
			parse_channel(p, c, &c->channels[c->nchannels++], n->keys[i], n->values[i]);
		}
	}
	n = ynode_get(root, "routes");
	if (n != NULL && cp_expect_kind(p, n, YNODE_SEQ, "routes")) {
		c->routes = xcalloc(n->count ? n->count : 1, sizeof(*c->routes));
		for (size_t i = 0; i < n->count; i++)
			parse_route(p, c, &c->routes[c->nroutes++], n->values[i]);
	}
	n = ynode_get(root, "max_alert_size");
	if (n != NULL)
		cp_size(p, n, "max_alert_size", 1024, (size_t)64 * 1048576, &c->max_alert_size);
	n = ynode_get(root, "user");
	if (n != NULL) {
		c->user = cp_str(p, n, "user");
		if (c->user != NULL && getpwnam(c->user) == NULL) {
			cp_error(p, n, "user: no such user '%s' on this host", c->user);
			free(c->user);
			c->user = NULL;
		}
	}
	n = ynode_get(root, "retry");
	if (n != NULL && cp_expect_kind(p, n, YNODE_MAP, "retry")) {
		const struct ynode *v;
		cp_check_keys(p, n, "retry", retry_keys);
		v = ynode_get(n, "initial");
		if (v != NULL)
			cp_duration(p, v, "retry.initial", &c->retry_initial_ms);
		v = ynode_get(n, "max_interval");
		if (v != NULL)
			cp_duration(p, v, "retry.max_interval", &c->retry_max_interval_ms);
		v = ynode_get(n, "give_up_after");
		if (v != NULL)
			cp_duration(p, v, "retry.give_up_after", &c->retry_give_up_after_ms);
		if (c->retry_initial_ms < 1000)
			cp_error(p, n, "retry.initial must be at least 1s");
		if (c->retry_max_interval_ms < c->retry_initial_ms)
			cp_error(p, n, "retry.max_interval must not be shorter than retry.initial");
	}

	/* Cross-field checks. */
	n = ynode_get(root, "default_channel");
	if (n != NULL) {
		c->default_channel = cp_str(p, n, "default_channel");
		if (c->default_channel != NULL && config_channel(c, c->default_channel) == NULL)
			cp_error(p, n, "default_channel: unknown channel '%s'", c->default_channel);
	} else if (c->nchannels == 1) {
		c->default_channel = xstrdup(c->channels[0].name);
	}
	for (size_t i = 0; i < c->nchannels; i++) {
		struct channel *ch = &c->channels[i];
		if (ch->template != NULL && !template_exists(c, ch->template)) {
			const struct ynode *chn = ynode_get(ynode_get(root, "channels"), ch->name);
			const struct ynode *at = ynode_get(chn, "template");
			cp_error(p, at ? at : chn,
			     "channel '%s': unknown template '%s' "
			     "(no %s/subject.mustache in %s or the built-in templates)",
			     ch->name, ch->template, ch->template, c->templates);
		}
	}
	if (c->nchannels == 0)
		cp_error(p, root, "no channels are defined; add a 'channels' mapping");
	conf_parse_dedup(p, c, root);
}

int config_load(const char *path, struct config **out, struct buf *errors)
{
	return config_load_flags(path, 0, out, errors);
}

/* The parse shared by config_load_flags() and config_parse(): root is the document, name the
 * file name that positions use. Takes ownership of root. */
static int config_from_tree(struct ynode *root, const char *name, unsigned flags,
                            struct config **out, struct buf *errors)
{
	struct config *c = xcalloc(1, sizeof(*c));
	struct cparse p = {.file = name,
	                   .cfg = c,
	                   .no_secrets = (flags & CONFIG_NO_SECRETS) != 0,
	                   .errors = errors,
	                   .warnings = &c->warnings};

	c->path = xstrdup(name);
	buf_init(&c->warnings);
	parse_top(&p, c, root);
	ynode_free(root);
	if (p.nerrors > 0) {
		config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int config_load_flags(const char *path, unsigned flags, struct config **out, struct buf *errors)
{
	struct ynode *root = NULL;
	struct err e;

	*out = NULL;
	if (ytree_parse_file(path, CONFIG_MAX_SIZE, &root, &e) < 0) {
		buf_printf(errors, "%s\n", e.msg);
		return -1;
	}
	return config_from_tree(root, path, flags, out, errors);
}

int config_parse(const char *data, size_t len, const char *name, unsigned flags,
                 struct config **out, struct buf *errors)
{
	struct ynode *root = NULL;
	struct err e;

	*out = NULL;
	if (len > CONFIG_MAX_SIZE) {
		buf_printf(errors, "%s: larger than the limit of %zu bytes\n", name,
		           CONFIG_MAX_SIZE);
		return -1;
	}
	if (ytree_parse(data, len, name, &root, &e) < 0) {
		buf_printf(errors, "%s\n", e.msg);
		return -1;
	}
	return config_from_tree(root, name, flags, out, errors);
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
		free(s->client_cert);
		free(s->client_key);
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
	conf_free_dedup(c);
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
	free(c->user);
	for (size_t i = 0; i < c->nsecret_files; i++)
		free(c->secret_files[i]);
	free(c->secret_files);
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


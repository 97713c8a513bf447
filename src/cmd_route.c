/* alertmail route: which routes an alert matches and why, and the channels (their servers and
 * recipients) it would go to; sends nothing and changes nothing in the spool. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"
#include "buf.h"
#include "commands.h"
#include "conf.h"
#include "json.h"
#include "route.h"
#include "yamltree.h"

#define USAGE "usage: alertmail route [--json] FILE|-\n"

/* What routing made of an alert: the picks and each route's state. */
struct decision {
	const struct config *cfg;
	const struct alert *alert;
	const char *file;
	struct route_pick *picks;
	size_t npicks;
	enum route_state *states;
	struct err why; /* when npicks is 0 */
};

static const char *state_word(enum route_state s, bool json)
{
	switch (s) {
	case ROUTE_STATE_SKIPPED:
		return json ? "skipped" : "not used: the alert names its own channel";
	case ROUTE_STATE_NO_MATCH:
		return json ? "no_match" : "no match";
	case ROUTE_STATE_TAKEN:
		return json ? "taken" : "matched";
	case ROUTE_STATE_NOT_REACHED:
		return json ? "not_reached" : "matches, but not reached";
	}
	return "?";
}

/* The route before i that ended routing (matched without continue). */
static size_t stopper(const struct decision *dc, size_t i)
{
	size_t last = 0;

	for (size_t k = 0; k < i; k++)
		if (dc->states[k] == ROUTE_STATE_TAKEN)
			last = k;
	return last;
}

/* A value from the alert or the config, quoted and escaped as JSON: safe for a terminal. */
static void add_quoted(struct buf *b, const char *s, size_t len)
{
	json_add_string(b, s, len);
}

static void add_value(struct buf *b, const struct route_key_check *k)
{
	const struct ynode *v = k->value;

	if (v == NULL) {
		buf_adds(b, "no value");
	} else if (v->kind == YNODE_SCALAR) {
		buf_adds(b, "value ");
		add_quoted(b, v->str, v->len);
	} else if (v->kind == YNODE_MAP) {
		buf_printf(b, "value a mapping of %zu keys", v->count);
	} else if (k->matched != NULL) {
		buf_printf(b, "value a list of %zu, item %zu ", v->count, k->item + 1);
		add_quoted(b, k->matched->str, k->matched->len);
	} else {
		buf_printf(b, "value a list of %zu", v->count);
		if (v->count > 0 && k->result == ROUTE_KEY_DIFFERENT)
			buf_adds(b, ", no item matches");
	}
}

static void add_channel_list(struct buf *b, char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_adds(b, ", ");
		buf_add_escaped(b, names[i]);
	}
}

static void print_route(const struct decision *dc, size_t i)
{
	const struct route *r = &dc->cfg->routes[i];
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "route %zu (", i + 1);
	buf_add_escaped(&b, dc->cfg->path);
	buf_printf(&b, ":%u:%u): ", r->line, r->column);
	if (dc->states[i] == ROUTE_STATE_SKIPPED)
		buf_printf(&b, "%s (it %s)", state_word(dc->states[i], false),
		           route_matches(r, dc->alert) ? "would match" : "would not match");
	else
		buf_adds(&b, state_word(dc->states[i], false));
	if (dc->states[i] == ROUTE_STATE_NOT_REACHED)
		buf_printf(&b, " (route %zu matched and has no continue: true)",
		           stopper(dc, i) + 1);
	buf_adds(&b, "; channels ");
	add_channel_list(&b, r->channels, r->nchannels);
	if (r->cont)
		buf_adds(&b, "; continue: true");
	printf("%s\n", b.data);
	if (r->match == NULL || r->match->count == 0)
		printf("  (no match keys: every alert matches)\n");
	for (size_t k = 0; r->match != NULL && k < r->match->count; k++) {
		const char *key = r->match->keys[k]->str;
		const struct ynode *want = r->match->values[k];
		struct route_key_check c;

		route_key_check(dc->alert->tree, key, want->str, &c);
		buf_reset(&b);
		buf_adds(&b, "  ");
		buf_add_escaped(&b, key);
		buf_adds(&b, ": ");
		add_value(&b, &c);
		buf_adds(&b, route_is_glob(want->str) ? ", glob " : ", pattern ");
		add_quoted(&b, want->str, want->len);
		buf_printf(&b, ": %s", route_key_result_name(c.result));
		printf("%s\n", b.data);
	}
	buf_free(&b);
}

static void add_rule(struct buf *b, const struct decision *dc, const struct route_pick *p)
{
	switch (p->rule) {
	case ROUTE_RULE_ALERT:
		buf_adds(b, "by the alert's own channel field");
		break;
	case ROUTE_RULE_ROUTE:
		buf_printf(b, "by route %zu, the first that matches", p->route + 1);
		break;
	case ROUTE_RULE_CONTINUE:
		buf_printf(b, "by route %zu, after route %zu with continue: true", p->route + 1,
		           stopper(dc, p->route) + 1);
		break;
	case ROUTE_RULE_DEFAULT:
		buf_adds(b, "by default_channel: no route matches");
		break;
	}
}

static void print_channel(const struct decision *dc, const struct route_pick *p)
{
	const struct channel *ch = p->channel;
	struct buf b;

	buf_init(&b);
	buf_adds(&b, "channel ");
	buf_add_escaped(&b, ch->name);
	buf_adds(&b, ": ");
	add_rule(&b, dc, p);
	buf_adds(&b, "\n  servers (failover order):");
	for (size_t i = 0; i < ch->nservers; i++) {
		const struct server *s = ch->servers[i];
		char addr[300];
		server_format_addr(s, addr, sizeof(addr));
		buf_printf(&b, "%s %s %s (%s)", i ? "," : "", s->name, addr, tls_mode_name(s->tls));
	}
	buf_adds(&b, "\n  to: ");
	for (size_t i = 0; i < ch->nto; i++) {
		if (i > 0)
			buf_adds(&b, ", ");
		buf_add_escaped(&b, ch->to[i]);
	}
	printf("%s\n", b.data);
	buf_free(&b);
}

static void print_text(const struct decision *dc)
{
	struct buf b;

	buf_init(&b);
	buf_adds(&b, "alert ");
	buf_add_escaped(&b, dc->file);
	buf_adds(&b, ": id ");
	buf_add_escaped(&b, dc->alert->id);
	if (dc->alert->channel != NULL) {
		buf_adds(&b, ", channel ");
		buf_add_escaped(&b, dc->alert->channel);
	}
	printf("%s\n", b.data);
	if (dc->cfg->nroutes == 0)
		printf("no routes in %s\n", dc->cfg->path);
	for (size_t i = 0; i < dc->cfg->nroutes; i++)
		print_route(dc, i);
	for (size_t i = 0; i < dc->npicks; i++)
		print_channel(dc, &dc->picks[i]);
	buf_reset(&b);
	if (dc->npicks > 0) {
		buf_printf(&b, "goes to %zu channel%s: ", dc->npicks, dc->npicks == 1 ? "" : "s");
		for (size_t i = 0; i < dc->npicks; i++) {
			if (i > 0)
				buf_adds(&b, ", ");
			buf_add_escaped(&b, dc->picks[i].channel->name);
		}
	} else {
		buf_adds(&b, "goes nowhere: ");
		buf_adds(&b, dc->why.msg);
		buf_adds(&b, "; the daemon would move it to failed/ (and submit refuses it)");
	}
	printf("%s\n", b.data);
	buf_free(&b);
}

/* ---- JSON ---- */

static struct ynode *str_node(const char *s)
{
	if (s == NULL)
		return ynode_new_scalar("null", 4, true);
	return ynode_new_scalar(s, strlen(s), false);
}

static struct ynode *num_node(size_t n)
{
	char t[32];

	snprintf(t, sizeof(t), "%zu", n);
	return ynode_new_scalar(t, strlen(t), true);
}

static struct ynode *bool_node(bool v)
{
	return ynode_new_scalar(v ? "true" : "false", v ? 4 : 5, true);
}

static struct ynode *route_json(const struct decision *dc, size_t i)
{
	const struct route *r = &dc->cfg->routes[i];
	struct ynode *o = ynode_new_map(), *chans = ynode_new_seq(), *keys = ynode_new_seq();
	char pos[64];

	snprintf(pos, sizeof(pos), ":%u:%u", r->line, r->column);
	{
		char *where = xasprintf("%s%s", dc->cfg->path, pos);
		ynode_map_set(o, "route", num_node(i + 1));
		ynode_map_set(o, "position", str_node(where));
		free(where);
	}
	ynode_map_set(o, "state", str_node(state_word(dc->states[i], true)));
	ynode_map_set(o, "matches", bool_node(route_matches(r, dc->alert)));
	ynode_map_set(o, "continue", bool_node(r->cont));
	for (size_t k = 0; k < r->nchannels; k++)
		ynode_seq_add(chans, str_node(r->channels[k]));
	ynode_map_set(o, "channels", chans);
	for (size_t k = 0; r->match != NULL && k < r->match->count; k++) {
		const char *key = r->match->keys[k]->str;
		const struct ynode *want = r->match->values[k];
		struct ynode *kj = ynode_new_map();
		struct route_key_check c;

		route_key_check(dc->alert->tree, key, want->str, &c);
		ynode_map_set(kj, "key", str_node(key));
		ynode_map_set(kj, "pattern", str_node(want->str));
		ynode_map_set(kj, "glob", bool_node(route_is_glob(want->str)));
		ynode_map_set(kj, "value", c.value != NULL ? ynode_copy(c.value) : str_node(NULL));
		ynode_map_set(kj, "item",
		              c.matched != NULL && c.value != NULL && c.value->kind == YNODE_SEQ
		                  ? num_node(c.item + 1)
		                  : str_node(NULL));
		ynode_map_set(kj, "result", str_node(route_key_result_name(c.result)));
		ynode_seq_add(keys, kj);
	}
	ynode_map_set(o, "keys", keys);
	return o;
}

static struct ynode *channel_json(const struct route_pick *p)
{
	const struct channel *ch = p->channel;
	struct ynode *o = ynode_new_map(), *servers = ynode_new_seq(), *to = ynode_new_seq();

	ynode_map_set(o, "channel", str_node(ch->name));
	ynode_map_set(o, "rule", str_node(route_rule_name(p->rule)));
	ynode_map_set(o, "route",
	              p->rule == ROUTE_RULE_ROUTE || p->rule == ROUTE_RULE_CONTINUE
	                  ? num_node(p->route + 1)
	                  : str_node(NULL));
	for (size_t i = 0; i < ch->nservers; i++) {
		const struct server *s = ch->servers[i];
		struct ynode *sj = ynode_new_map();
		ynode_map_set(sj, "server", str_node(s->name));
		ynode_map_set(sj, "host", str_node(s->host));
		ynode_map_set(sj, "port", num_node((size_t)s->port));
		ynode_map_set(sj, "tls", str_node(tls_mode_name(s->tls)));
		ynode_seq_add(servers, sj);
	}
	ynode_map_set(o, "servers", servers);
	for (size_t i = 0; i < ch->nto; i++)
		ynode_seq_add(to, str_node(ch->to[i]));
	ynode_map_set(o, "to", to);
	return o;
}

static void print_json(const struct decision *dc)
{
	struct ynode *root = ynode_new_map(), *alert = ynode_new_map();
	struct ynode *routes = ynode_new_seq(), *chans = ynode_new_seq();
	struct buf b;

	ynode_map_set(alert, "file", str_node(dc->file));
	ynode_map_set(alert, "id", str_node(dc->alert->id));
	ynode_map_set(alert, "channel", str_node(dc->alert->channel));
	ynode_map_set(root, "alert", alert);
	for (size_t i = 0; i < dc->cfg->nroutes; i++)
		ynode_seq_add(routes, route_json(dc, i));
	ynode_map_set(root, "routes", routes);
	for (size_t i = 0; i < dc->npicks; i++)
		ynode_seq_add(chans, channel_json(&dc->picks[i]));
	ynode_map_set(root, "channels", chans);
	ynode_map_set(root, "default_channel", str_node(dc->cfg->default_channel));
	ynode_map_set(root, "routed", bool_node(dc->npicks > 0));
	ynode_map_set(root, "reason", str_node(dc->npicks > 0 ? NULL : dc->why.msg));
	buf_init(&b);
	json_add_node(&b, root, true);
	printf("%s\n", b.data);
	buf_free(&b);
	ynode_free(root);
}

static int route_alert(const struct config *cfg, const char *path, bool json)
{
	const char *name = path != NULL ? path : "<stdin>";
	struct decision dc = {.cfg = cfg, .file = name};
	struct alert *a = NULL;
	struct buf in;
	struct err e;
	int rc;

	buf_init(&in);
	/* Read and checked as submit does: the same errors for the same alert. */
	if (commands_read_input(path, name, cfg->max_alert_size, &in, &e) < 0 ||
	    alert_parse(in.data, in.len, name, time(NULL), &a, &e) < 0) {
		fprintf(stderr, "alertmail: route: %s\n", e.msg);
		buf_free(&in);
		return EXIT_USAGE;
	}
	buf_free(&in);
	dc.alert = a;
	dc.picks = xcalloc(cfg->nchannels + 1, sizeof(*dc.picks));
	dc.states = xcalloc(cfg->nroutes + 1, sizeof(*dc.states));
	dc.npicks = route_pick(cfg, a, dc.picks, dc.states, &dc.why);
	if (json)
		print_json(&dc);
	else
		print_text(&dc);
	rc = dc.npicks > 0 ? EXIT_OK : EXIT_FAILURE_RUNTIME;
	free(dc.picks);
	free(dc.states);
	alert_free(a);
	return rc;
}

int cmd_route(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	struct config *cfg;
	bool json = false;
	int rc;

	optind = 1;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			fputs(USAGE, stdout);
			return EXIT_OK;
		} else {
			fputs(USAGE, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr,
		        "alertmail: route: which alert? give a file, or - for standard input\n");
		fputs(USAGE, stderr);
		return EXIT_USAGE;
	}
	if (argc - optind > 1) {
		fprintf(stderr, "alertmail: route: one alert at a time; unexpected argument '%s'\n",
		        argv[optind + 1]);
		return EXIT_USAGE;
	}
	if (strcmp(argv[optind], "-") != 0)
		path = argv[optind];
	/* No mail is sent: no password is read, and any user who may read the config may ask. */
	cfg = commands_load_config(g, CONFIG_NO_SECRETS);
	if (cfg == NULL)
		return EXIT_USAGE;
	rc = route_alert(cfg, path, json);
	config_free(cfg);
	return rc;
}

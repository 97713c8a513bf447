/* Routing: matching one key (exact, glob, nested, lists), the channels of an alert with
 * continue and repeats, what became of each route, the config's checks of routes, and the
 * cost of a hostile glob. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "conf.h"
#include "route.h"
#include "tap.h"
#include "yamltree.h"

static char dir[256];
static struct buf errors;

static struct ynode *tree(const char *yaml)
{
	struct ynode *t = NULL;
	struct err e;

	must(ytree_parse(yaml, strlen(yaml), "alert", &t, &e) == 0, "parse %s", yaml);
	return t;
}

static struct alert *alert_of(const char *yaml)
{
	struct alert *a = NULL;
	struct err e;

	must(alert_parse(yaml, strlen(yaml), "alert", 0, &a, &e) == 0, "alert %s", yaml);
	return a;
}

/* The config: three channels on one server, and the routes given. */
static struct config *conf(const char *extra)
{
	struct config *c = NULL;
	struct buf b;

	buf_init(&b);
	buf_printf(&b,
	           "templates: %s\n"
	           "servers:\n  relay: { host: 127.0.0.1, port: 25, tls: none }\n"
	           "channels:\n"
	           "  ops: { servers: [relay], to: ops@example.com }\n"
	           "  dba: { servers: [relay], to: dba@example.com }\n"
	           "  pager: { servers: [relay], to: pager@example.com }\n"
	           "%s",
	           dir, extra);
	buf_reset(&errors);
	config_parse(b.data, b.len, "test.yaml", CONFIG_NO_SECRETS, &c, &errors);
	buf_free(&b);
	return c;
}

static int has(const char *needle)
{
	return errors.data != NULL && strstr(errors.data, needle) != NULL;
}

static enum route_key_result check(const char *yaml, const char *key, const char *pattern)
{
	struct ynode *t = tree(yaml);
	struct route_key_check k;
	enum route_key_result r = route_key_check(t, key, pattern, &k);

	ynode_free(t);
	return r;
}

static void test_keys(void)
{
	struct ynode *t;
	struct route_key_check k;

	ok(check("severity: critical", "severity", "critical") == ROUTE_KEY_EQUAL, "equal");
	ok(check("severity: critical", "severity", "warning") == ROUTE_KEY_DIFFERENT,
	   "a different value: no match");
	ok(check("severity: critical", "severity", "Critical") == ROUTE_KEY_DIFFERENT,
	   "case matters");
	ok(check("severity: critical", "severity", "crit*") == ROUTE_KEY_GLOB, "a glob with *");
	ok(check("host: db7", "host", "db?") == ROUTE_KEY_GLOB, "a glob with ?");
	ok(check("host: db7", "host", "db[0-9]") == ROUTE_KEY_GLOB, "a glob with a class");
	ok(check("host: db-core", "host", "db") == ROUTE_KEY_DIFFERENT,
	   "no glob character: the whole value must be equal");
	ok(check("host: \"a*b\"", "host", "a\\*b") == ROUTE_KEY_GLOB &&
	       check("host: axb", "host", "a\\*b") == ROUTE_KEY_DIFFERENT,
	   "a backslash takes a glob character literally");
	ok(check("host: \"db*\"", "host", "db*") == ROUTE_KEY_EQUAL,
	   "a value equal to a glob pattern is equal");
	ok(check("labels: {team: db-core}", "labels.team", "db-*") == ROUTE_KEY_GLOB,
	   "a nested field, by its dotted path");
	ok(check("a: {b: {c: x}}", "a.b.c", "x") == ROUTE_KEY_EQUAL, "three levels");
	ok(check("labels: {team: db}", "labels.owner", "*") == ROUTE_KEY_MISSING,
	   "a missing field does not match, not even '*'");
	ok(check("labels: db", "labels.team", "*") == ROUTE_KEY_MISSING,
	   "a path through a scalar: missing");
	ok(check("team: ~", "team", "*") == ROUTE_KEY_MISSING &&
	       check("team:", "team", "*") == ROUTE_KEY_MISSING,
	   "a null value counts as missing");
	ok(check("labels: {team: db}", "labels", "*") == ROUTE_KEY_NOT_SINGLE,
	   "a mapping is not a single value");
	ok(check("count: 5", "count", "5") == ROUTE_KEY_EQUAL &&
	       check("count: 05", "count", "5") == ROUTE_KEY_DIFFERENT,
	   "numbers compare as their text");
	ok(check("ok: true", "ok", "true") == ROUTE_KEY_EQUAL, "booleans compare as their text");
	ok(check("host: \"a\\0b\"", "host", "a*") == ROUTE_KEY_DIFFERENT,
	   "a value with a NUL byte is never a glob match");

	t = tree("tags: [web, disk-full, disk]");
	ok(route_key_check(t, "tags", "disk", &k) == ROUTE_KEY_EQUAL && k.item == 2 &&
	       k.matched == t->values[0]->values[2],
	   "a list: the item that is equal, over an earlier glob match");
	ok(route_key_check(t, "tags", "disk*", &k) == ROUTE_KEY_GLOB && k.item == 1,
	   "a list: the first item that matches the glob");
	ok(route_key_check(t, "tags", "db", &k) == ROUTE_KEY_DIFFERENT && k.matched == NULL,
	   "a list without a matching item: no match");
	ynode_free(t);
	ok(check("tags: []", "tags", "*") == ROUTE_KEY_NOT_SINGLE &&
	       check("tags: [{a: b}]", "tags", "*") == ROUTE_KEY_NOT_SINGLE,
	   "an empty list, a list of mappings: not a single value");
	ok(check("tags: [{a: b}, x]", "tags", "x") == ROUTE_KEY_EQUAL,
	   "a list: mappings in it are passed over");

	ok(route_glob_stars("a") == 0 && route_glob_stars("*a*") == 2 &&
	       route_glob_stars("**a***") == 2 && route_glob_stars("\\*a\\**") == 1,
	   "stars counted: runs once, escaped ones not");
	ok(route_is_glob("a?") && route_is_glob("[ab]") && !route_is_glob("a.b-c"),
	   "glob characters: * ? [");
}

/* The channel names picked, "a,b", with their rules: "a:route1,b:continue2". */
static char *picks_of(const struct config *c, const char *yaml, enum route_state *states,
                      struct err *e)
{
	struct alert *a = alert_of(yaml);
	struct route_pick p[8];
	size_t n = route_pick(c, a, p, states, e);
	struct buf b;

	buf_init(&b);
	for (size_t i = 0; i < n; i++) {
		buf_printf(&b, "%s%s:%s", i ? "," : "", p[i].channel->name,
		           route_rule_name(p[i].rule));
		if (p[i].rule == ROUTE_RULE_ROUTE || p[i].rule == ROUTE_RULE_CONTINUE)
			buf_printf(&b, "%zu", p[i].route + 1);
	}
	if (n == 0)
		buf_adds(&b, "-");
	alert_free(a);
	return buf_steal(&b);
}

static void test_pick(void)
{
	enum route_state st[8];
	struct config *c;
	struct err e;
	char *got;

	c = conf("default_channel: ops\n"
	         "routes:\n"
	         "  - match: { severity: critical, labels.team: \"db*\" }\n"
	         "    channels: [dba, pager]\n"
	         "    continue: true\n"
	         "  - match: { source: web* }\n"
	         "    channel: ops\n"
	         "  - match: { severity: critical }\n"
	         "    channels: [pager, ops]\n"
	         "  - match: {}\n"
	         "    channel: ops\n");
	must(c != NULL, "config: %s", errors.data);

	got = picks_of(c, "severity: critical\nlabels: {team: dbcore}\n", st, &e);
	is_str(got, "dba:route1,pager:route1,ops:continue3",
	       "continue: the next matching route adds its channels, without repeats");
	ok(st[0] == ROUTE_STATE_TAKEN && st[1] == ROUTE_STATE_NO_MATCH &&
	       st[2] == ROUTE_STATE_TAKEN && st[3] == ROUTE_STATE_NOT_REACHED,
	   "states: taken, no match (passed over), taken, then not reached after no continue");
	free(got);
	got = picks_of(c, "severity: critical\nlabels: {team: web}\n", st, &e);
	is_str(got, "pager:route3,ops:route3", "all keys required: route 1 fails on one key");
	ok(st[0] == ROUTE_STATE_NO_MATCH && st[2] == ROUTE_STATE_TAKEN, "... and says so");
	free(got);
	got = picks_of(c, "source: web7\nseverity: critical\n", st, &e);
	is_str(got, "ops:route2", "first match wins: route 3 matches too, but is not reached");
	ok(st[2] == ROUTE_STATE_NOT_REACHED, "... and is marked not reached");
	free(got);
	got = picks_of(c, "title: anything\n", st, &e);
	is_str(got, "ops:route4", "an empty match matches every alert");
	free(got);
	got = picks_of(c, "channel: dba\nseverity: critical\nlabels: {team: db}\n", st, &e);
	is_str(got, "dba:alert", "the alert's own channel overrides every route");
	ok(st[0] == ROUTE_STATE_SKIPPED && st[3] == ROUTE_STATE_SKIPPED, "... routes skipped");
	free(got);
	got = picks_of(c, "channel: nosuch\n", NULL, &e);
	ok(strcmp(got, "-") == 0 && strstr(e.msg, "channel 'nosuch'") != NULL,
	   "an unknown channel of the alert's own: none, and why: %s", e.msg);
	free(got);
	config_free(c);

	c = conf("default_channel: pager\n"
	         "routes:\n  - match: { severity: critical }\n    channel: ops\n"
	         "    continue: true\n");
	must(c != NULL, "config: %s", errors.data);
	got = picks_of(c, "severity: info\n", st, &e);
	is_str(got, "pager:default_channel", "no route matches: default_channel");
	free(got);
	got = picks_of(c, "severity: critical\n", st, &e);
	is_str(got, "ops:route1", "a route matched with continue and no other: not the default");
	free(got);
	config_free(c);

	c = conf("routes:\n  - match: { severity: critical }\n    channel: ops\n");
	must(c != NULL, "config: %s", errors.data);
	got = picks_of(c, "severity: info\n", st, &e);
	ok(strcmp(got, "-") == 0 && strstr(e.msg, "no route matches it") != NULL,
	   "no route and no default_channel: nowhere, and why: %s", e.msg);
	free(got);
	{
		struct alert *a = alert_of("severity: critical\n");
		const struct channel *ch = route_select(c, a, &e);
		ok(ch != NULL && strcmp(ch->name, "ops") == 0, "route_select: the first channel");
		alert_free(a);
	}
	config_free(c);
}

static void test_config(void)
{
	struct config *c;
	char longname[CONFIG_CHANNEL_NAME_MAX + 2];

	c = conf("routes:\n  - match: { labels: { team: db } }\n    channel: ops\n");
	ok(c == NULL && has("test.yaml:9:22: match: the value for 'labels' must be a single value"),
	   "a match value that is a mapping: an error at its position: %s", errors.data);
	c = conf("routes:\n  - match: { tags: [a, b] }\n    channel: ops\n");
	ok(c == NULL && has("test.yaml:9:20: match: the value for 'tags' must be a single value"),
	   "a match value that is a list: an error at its position: %s", errors.data);
	c = conf("routes:\n  - match: { team: }\n    channel: ops\n");
	ok(c == NULL && has("match: 'team' has no value"), "an empty match value: %s", errors.data);
	c = conf("routes:\n  - match: { host: \"*a*a*a*a*a*a*a*a*b\" }\n    channel: ops\n");
	ok(c == NULL && has("test.yaml:9:20: match: the pattern for 'host' has 9 '*'; at most 8"),
	   "nine '*' in a pattern: refused at its position: %s", errors.data);
	c = conf("routes:\n  - match: { host: \"*a**a*a*a*a*a*a*b\\\\*\" }\n    channel: ops\n");
	ok(c != NULL, "eight runs of '*' and an escaped one: accepted%s%s", c ? "" : ": ",
	   c ? "" : errors.data);
	config_free(c);
	c = conf("routes:\n  - match: { labels..team: x, .a: x, b.: x }\n    channel: ops\n");
	ok(c == NULL && has("'labels..team' is not a field path") && has("'.a' is not") &&
	       has("'b.' is not"),
	   "field paths with empty parts: %s", errors.data);
	c = conf("routes:\n  - match: { severity: critical }\n    channels: [ops, dba, ops]\n");
	ok(c == NULL && has("test.yaml:10:26: route: channel 'ops' is listed twice"),
	   "a channel listed twice in a route: %s", errors.data);
	c = conf("routes:\n  - match: { severity: critical }\n    channels: [ops, nope]\n");
	ok(c == NULL && has("test.yaml:10:21: route: unknown channel 'nope'"),
	   "an unknown channel in a route, at its position: %s", errors.data);
	c = conf("routes:\n  - match:\n    channel: ops\n  - channel: dba\n");
	ok(c != NULL && c->nroutes == 2 && c->routes[0].match == NULL && c->routes[1].match == NULL,
	   "match: with nothing, or no match at all: a catch-all%s%s", c ? "" : ": ",
	   c ? "" : errors.data);
	config_free(c);
	memset(longname, 'c', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	{
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "  %s: { servers: [relay], to: x@example.com }\n", longname);
		c = conf(b.data);
		buf_free(&b);
	}
	ok(c == NULL && has("longer than 64 bytes"), "a channel name of 65 bytes: %s", errors.data);
	longname[CONFIG_CHANNEL_NAME_MAX] = '\0';
	{
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "  %s: { servers: [relay], to: x@example.com }\n", longname);
		c = conf(b.data);
		buf_free(&b);
	}
	ok(c != NULL, "a channel name of 64 bytes: accepted");
	config_free(c);
}

/* The worst a pattern within the limit does against a value as long as an alert may be. */
static void test_cost(void)
{
	size_t len = (size_t)1 << 20;
	char *v = malloc(len + 2);
	struct ynode *t = ynode_new_map();
	struct route_key_check k;
	clock_t start;
	double cpu;
	int misses = 0;

	if (v == NULL)
		exit(99);
	memset(v, 'a', len);
	v[len] = 'b';
	v[len + 1] = '\0';
	ynode_map_set(t, "description", ynode_new_scalar(v, len + 1, false));
	start = clock();
	for (int i = 0; i < 20; i++)
		misses += route_key_check(t, "description", "*a*a*a*a*a*a*a*b?", &k) ==
		          ROUTE_KEY_DIFFERENT;
	cpu = (double)(clock() - start) / CLOCKS_PER_SEC;
	ok(misses == 20 && cpu < 3.0,
	   "8 '*' against a 1 MiB value, 20 times: %.3f s of CPU (bound 3 s)", cpu);
	ynode_free(t);
	free(v);
}

int main(void)
{
	char p[600];

	snprintf(dir, sizeof(dir), "/tmp/alertmail-test-route-XXXXXX");
	must(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(p, sizeof(p), "%s/default", dir);
	must(mkdir(p, 0700) == 0, "mkdir %s", p);
	snprintf(p, sizeof(p), "%s/default/subject.mustache", dir);
	{
		FILE *f = fopen(p, "w");
		must(f != NULL && fputs("{{title}}", f) >= 0 && fclose(f) == 0, "write %s", p);
	}
	buf_init(&errors);
	test_keys();
	test_pick();
	test_config();
	test_cost();
	buf_free(&errors);
	tap_remove_tree(dir);
	return done_testing();
}

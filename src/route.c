#include "config.h"

#include "route.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

bool route_is_glob(const char *pattern)
{
	return strpbrk(pattern, "*?[") != NULL;
}

size_t route_glob_stars(const char *pattern)
{
	size_t n = 0;
	bool in_run = false;

	for (const char *p = pattern; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0') {
			p++;
			in_run = false;
			continue;
		}
		if (*p == '*' && !in_run)
			n++;
		in_run = *p == '*';
	}
	return n;
}

/* One scalar against the pattern. A value with a NUL byte is compared whole, never as a glob
 * (fnmatch would see only its first part). */
static enum route_key_result scalar_check(const struct ynode *v, const char *pattern, size_t plen)
{
	if (v->len == plen && memcmp(v->str, pattern, plen) == 0)
		return ROUTE_KEY_EQUAL;
	if (route_is_glob(pattern) && memchr(v->str, '\0', v->len) == NULL &&
	    fnmatch(pattern, v->str, 0) == 0)
		return ROUTE_KEY_GLOB;
	return ROUTE_KEY_DIFFERENT;
}

enum route_key_result route_key_check(const struct ynode *tree, const char *key,
                                      const char *pattern, struct route_key_check *out)
{
	const struct ynode *v = ynode_path(tree, key);
	size_t plen = strlen(pattern);
	bool any_scalar = false;

	memset(out, 0, sizeof(*out));
	out->value = v;
	if (v == NULL || ynode_is_null(v)) {
		out->value = NULL;
		out->result = ROUTE_KEY_MISSING;
		return out->result;
	}
	if (v->kind == YNODE_SCALAR) {
		out->result = scalar_check(v, pattern, plen);
		if (out->result != ROUTE_KEY_DIFFERENT)
			out->matched = v;
		return out->result;
	}
	out->result = ROUTE_KEY_NOT_SINGLE;
	if (v->kind != YNODE_SEQ)
		return out->result;
	/* A list (tags: [db, disk]) matches when any of its values does; the first one that
	 * matches exactly wins over an earlier glob match, so that "equal" is said when true. */
	for (size_t i = 0; i < v->count; i++) {
		const struct ynode *it = v->values[i];
		enum route_key_result r;

		if (it->kind != YNODE_SCALAR || ynode_is_null(it))
			continue;
		any_scalar = true;
		r = scalar_check(it, pattern, plen);
		if (r == ROUTE_KEY_DIFFERENT || (r == ROUTE_KEY_GLOB && out->matched != NULL))
			continue;
		out->result = r;
		out->matched = it;
		out->item = i;
		if (r == ROUTE_KEY_EQUAL)
			break;
	}
	if (out->matched == NULL && any_scalar)
		out->result = ROUTE_KEY_DIFFERENT;
	return out->result;
}

bool route_matches(const struct route *r, const struct alert *a)
{
	if (r->match == NULL)
		return true;
	for (size_t i = 0; i < r->match->count; i++) {
		struct route_key_check k;
		const struct ynode *want = r->match->values[i];
		enum route_key_result res;

		/* The config allows only scalars here; anything else never matches. */
		if (want->kind != YNODE_SCALAR)
			return false;
		res = route_key_check(a->tree, r->match->keys[i]->str, want->str, &k);
		if (res != ROUTE_KEY_EQUAL && res != ROUTE_KEY_GLOB)
			return false;
	}
	return true;
}

/* Adds ch to out unless it is there already; returns the new count. */
static size_t pick_add(struct route_pick *out, size_t n, const struct channel *ch,
                       enum route_rule rule, size_t route)
{
	for (size_t i = 0; i < n; i++)
		if (out[i].channel == ch)
			return n;
	out[n].channel = ch;
	out[n].rule = rule;
	out[n].route = route;
	return n + 1;
}

size_t route_pick(const struct config *c, const struct alert *a, struct route_pick *out,
                  enum route_state *states, struct err *e)
{
	bool taking = true, matched = false;
	size_t n = 0;

	for (size_t i = 0; states != NULL && i < c->nroutes; i++)
		states[i] = ROUTE_STATE_SKIPPED;
	if (a->channel != NULL) {
		const struct channel *ch = config_channel(c, a->channel);
		if (ch == NULL) {
			err_set(e, "the alert names channel '%s', which the config does not define",
			        a->channel);
			return 0;
		}
		return pick_add(out, 0, ch, ROUTE_RULE_ALERT, 0);
	}
	for (size_t i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];
		bool m = route_matches(r, a);

		if (states != NULL)
			states[i] = !m       ? ROUTE_STATE_NO_MATCH
			            : taking ? ROUTE_STATE_TAKEN
			                     : ROUTE_STATE_NOT_REACHED;
		if (!m || !taking)
			continue;
		for (size_t k = 0; k < r->nchannels; k++) {
			const struct channel *ch = config_channel(c, r->channels[k]);
			/* The config checks every name; a missing one cannot be a destination. */
			if (ch != NULL)
				n = pick_add(out, n, ch,
				             matched ? ROUTE_RULE_CONTINUE : ROUTE_RULE_ROUTE, i);
		}
		matched = true;
		taking = r->cont;
		/* Without states to fill, the routes after the last one taken do not matter. */
		if (!taking && states == NULL)
			break;
	}
	if (matched && n > 0)
		return n;
	if (c->default_channel != NULL) {
		const struct channel *ch = config_channel(c, c->default_channel);
		if (ch != NULL)
			return pick_add(out, 0, ch, ROUTE_RULE_DEFAULT, 0);
	}
	err_set(e, "the alert names no channel, no route matches it and there is no "
	           "default_channel");
	return 0;
}

const struct channel *route_select(const struct config *c, const struct alert *a, struct err *e)
{
	struct route_pick *picks = xcalloc(c->nchannels + 1, sizeof(*picks));
	const struct channel *ch = NULL;

	if (route_pick(c, a, picks, NULL, e) > 0)
		ch = picks[0].channel;
	free(picks);
	return ch;
}

const char *route_rule_name(enum route_rule r)
{
	switch (r) {
	case ROUTE_RULE_ALERT:
		return "alert";
	case ROUTE_RULE_ROUTE:
		return "route";
	case ROUTE_RULE_CONTINUE:
		return "continue";
	case ROUTE_RULE_DEFAULT:
		return "default_channel";
	}
	return "?";
}

const char *route_key_result_name(enum route_key_result r)
{
	switch (r) {
	case ROUTE_KEY_EQUAL:
		return "equal";
	case ROUTE_KEY_GLOB:
		return "glob match";
	case ROUTE_KEY_DIFFERENT:
		return "no match";
	case ROUTE_KEY_MISSING:
		return "field missing";
	case ROUTE_KEY_NOT_SINGLE:
		return "not a single value";
	}
	return "?";
}

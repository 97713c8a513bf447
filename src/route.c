#include "config.h"

#include "route.h"

#include <fnmatch.h>
#include <string.h>

#include "buf.h"

bool route_matches(const struct route *r, const struct alert *a)
{
	if (r->match == NULL)
		return true;
	for (size_t i = 0; i < r->match->count; i++) {
		const struct ynode *want = r->match->values[i];
		const struct ynode *got = ynode_path(a->tree, r->match->keys[i]->str);
		if (got == NULL || got->kind != YNODE_SCALAR || want->kind != YNODE_SCALAR)
			return false;
		if (strcmp(got->str, want->str) != 0 && fnmatch(want->str, got->str, 0) != 0)
			return false;
	}
	return true;
}

const struct channel *route_select(const struct config *c, const struct alert *a, struct err *e)
{
	const struct channel *ch;

	if (a->channel != NULL) {
		ch = config_channel(c, a->channel);
		if (ch == NULL) {
			/* Escaped: the reason goes into a log line and the reason file. */
			struct buf name;
			buf_init(&name);
			buf_add_escaped(&name, a->channel);
			err_set(e, "the alert names channel '%s', which the config does not define",
			        name.data != NULL ? name.data : "");
			buf_free(&name);
		}
		return ch;
	}
	/* The first matching route decides; its first channel carries the alert. */
	for (size_t i = 0; i < c->nroutes; i++) {
		if (c->routes[i].nchannels > 0 && route_matches(&c->routes[i], a))
			return config_channel(c, c->routes[i].channels[0]);
	}
	if (c->default_channel != NULL)
		return config_channel(c, c->default_channel);
	err_set(e, "the alert names no channel, no route matches it and there is no default_channel");
	return NULL;
}

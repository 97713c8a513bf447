/* Which channels an alert goes to, and why: its own `channel`, else the channels of the first
 * matching route and of each later matching route while the one before had `continue: true`,
 * else the default channel. Pure: no I/O, for the daemon, submit and `alertmail route`. */
#ifndef ALERTMAIL_ROUTE_H
#define ALERTMAIL_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "alert.h"
#include "conf.h"
#include "err.h"

/* The most '*' in one match pattern (a run of them counts once), checked when the config is
 * loaded: together with fnmatch's cost per '*' this bounds the time a hostile pattern can
 * take against a long value, whatever the C library. */
#define ROUTE_GLOB_STARS_MAX 8

/* How one key of a route's match fared against the alert. */
enum route_key_result {
	ROUTE_KEY_EQUAL,      /* the value is the pattern, byte for byte */
	ROUTE_KEY_GLOB,       /* the value matches the pattern as a shell glob */
	ROUTE_KEY_DIFFERENT,  /* a value (or a list of them), and no match */
	ROUTE_KEY_MISSING,    /* the alert has no such field, or it is null */
	ROUTE_KEY_NOT_SINGLE, /* the field is a mapping, or a list without any scalar item */
};

struct route_key_check {
	enum route_key_result result;
	const struct ynode *value;   /* the alert's value at the key; NULL when missing */
	const struct ynode *matched; /* the scalar that matched: value, or an item of a list */
	size_t item;                 /* matched is value->values[item] when value is a list */
};

/* Pure: the key (a dotted path: labels.team) of a match against the alert's tree, and the
 * pattern: equal, or a glob (only a pattern with '*', '?' or '[' is one; a backslash takes
 * the next character literally). A list value matches when one of its scalar items does. */
enum route_key_result route_key_check(const struct ynode *tree, const char *key,
                                      const char *pattern, struct route_key_check *out);

/* True when the pattern has glob characters ('*', '?', '['). */
bool route_is_glob(const char *pattern);
/* The '*' of a pattern as ROUTE_GLOB_STARS_MAX counts them: runs count once, an escaped one
 * not at all. */
size_t route_glob_stars(const char *pattern);

/* Pure: every key of r->match holds for a (an empty or absent match holds for any alert). */
bool route_matches(const struct route *r, const struct alert *a);

/* Why a channel was chosen. */
enum route_rule {
	ROUTE_RULE_ALERT,    /* the alert's own channel field */
	ROUTE_RULE_ROUTE,    /* the first matching route */
	ROUTE_RULE_CONTINUE, /* a later matching route, after one with continue: true */
	ROUTE_RULE_DEFAULT,  /* default_channel: no route matched */
};

struct route_pick {
	const struct channel *channel;
	enum route_rule rule;
	size_t route; /* the route's index in c->routes, for ROUTE_RULE_ROUTE and _CONTINUE */
};

/* What routing made of each route. */
enum route_state {
	ROUTE_STATE_SKIPPED,     /* not looked at: the alert names its channel */
	ROUTE_STATE_NO_MATCH,    /* looked at, did not match */
	ROUTE_STATE_TAKEN,       /* matched, and its channels were taken */
	ROUTE_STATE_NOT_REACHED, /* matches, but a route before it without continue ended routing */
};

/* Pure: the channels for a, in order, without repeats, into out (room for c->nchannels);
 * returns how many. 0 with the reason in e: the alert names a channel the config does not
 * define, or no route matches it and there is no default_channel. states, unless NULL, gets
 * what became of each route (room for c->nroutes). */
size_t route_pick(const struct config *c, const struct alert *a, struct route_pick *out,
                  enum route_state *states, struct err *e);

/* The first channel route_pick() gives; NULL with the reason in e when there is none. */
const struct channel *route_select(const struct config *c, const struct alert *a, struct err *e);

const char *route_rule_name(enum route_rule r);
const char *route_key_result_name(enum route_key_result r);

#endif

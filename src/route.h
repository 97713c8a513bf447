/* Which channel an alert goes to: its own `channel`, else the first matching route, else the
 * default channel. */
#ifndef ALERTMAIL_ROUTE_H
#define ALERTMAIL_ROUTE_H

#include <stdbool.h>

#include "alert.h"
#include "conf.h"
#include "err.h"

/* Pure: true when every key of r->match (a dotted field path) names a scalar in the alert that
 * equals the value or matches it as a shell glob (fnmatch). */
bool route_matches(const struct route *r, const struct alert *a);

/* The channel for a; NULL with a reason in e when there is none. */
const struct channel *route_select(const struct config *c, const struct alert *a, struct err *e);

#endif

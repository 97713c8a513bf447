/* The config's de-duplication keys: dedup_window and dedup_key, at the top level and per
 * channel, the channel's own overriding the top level's. */
#include "config.h"

#include "conf_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "duration.h"

/* dedup_window: 0 (off), or from 1 s to DEDUP_WINDOW_MAX_MS. */
static void parse_window(struct cparse *p, const struct ynode *n, const char *what, int64_t *out)
{
	int64_t v;

	if (!cp_duration(p, n, what, &v))
		return;
	if (v != 0 && (v < 1000 || v > DEDUP_WINDOW_MAX_MS)) {
		cp_error(p, n, "%s: expected 0 (off) or a duration from 1s to 30d, got '%s'", what,
		         n->str);
		return;
	}
	*out = v;
}

/* dedup_key: a field path or a list of them; returns -1 when it has errors. */
static int parse_key(struct cparse *p, const struct ynode *n, const char *what, char ***out,
                     size_t *nout)
{
	size_t count = cp_list_count(p, n, what);
	char **v;
	size_t nv = 0;
	int bad = count == 0 ? -1 : 0;

	if (count > DEDUP_FIELDS_MAX) {
		cp_error(p, n, "%s: at most %d fields, got %zu", what, DEDUP_FIELDS_MAX, count);
		return -1;
	}
	v = xcalloc(count ? count : 1, sizeof(*v));
	for (size_t i = 0; i < count; i++) {
		const struct ynode *at = cp_list_item(n, i);
		char *f = cp_str(p, at, what);
		const char *why;
		bool twice = false;

		if (f == NULL) {
			bad = -1;
			continue;
		}
		why = dedup_field_check(f);
		for (size_t k = 0; k < nv && why == NULL; k++)
			twice = twice || strcmp(v[k], f) == 0;
		if (why != NULL || twice) {
			cp_error(p, at, "%s: '%s': %s", what, f,
			         why != NULL ? why : "the field is listed twice");
			free(f);
			bad = -1;
			continue;
		}
		v[nv++] = f;
	}
	if (bad < 0) {
		for (size_t i = 0; i < nv; i++)
			free(v[i]);
		free(v);
		return -1;
	}
	*out = v;
	*nout = nv;
	return 0;
}

static char **copy_list(char *const *v, size_t n)
{
	char **c = xcalloc(n ? n : 1, sizeof(*c));

	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

void conf_parse_dedup(struct cparse *p, struct config *c, const struct ynode *root)
{
	const struct ynode *chans = ynode_get(root, "channels");
	const struct ynode *top_key = ynode_get(root, "dedup_key");
	const struct ynode *n;
	bool any_window;

	if (root->kind != YNODE_MAP)
		return;
	n = ynode_get(root, "dedup_window");
	if (n != NULL)
		parse_window(p, n, "dedup_window", &c->dedup_window_ms);
	if (top_key == NULL ||
	    parse_key(p, top_key, "dedup_key", &c->dedup_key, &c->ndedup_key) < 0) {
		/* The default: an alert's own id. */
		c->dedup_key = xcalloc(1, sizeof(*c->dedup_key));
		c->dedup_key[0] = xstrdup("id");
		c->ndedup_key = 1;
	}
	any_window = c->dedup_window_ms > 0;
	for (size_t i = 0; i < c->nchannels; i++) {
		struct channel *ch = &c->channels[i];
		const struct ynode *map = ynode_get(chans, ch->name);
		const struct ynode *key = ynode_get(map, "dedup_key");
		char what[160];

		ch->dedup_window_ms = c->dedup_window_ms;
		n = ynode_get(map, "dedup_window");
		if (n != NULL) {
			snprintf(what, sizeof(what), "channel '%s': dedup_window", ch->name);
			parse_window(p, n, what, &ch->dedup_window_ms);
		}
		snprintf(what, sizeof(what), "channel '%s': dedup_key", ch->name);
		if (key == NULL || parse_key(p, key, what, &ch->dedup_key, &ch->ndedup_key) < 0) {
			ch->dedup_key = copy_list(c->dedup_key, c->ndedup_key);
			ch->ndedup_key = c->ndedup_key;
		}
		any_window = any_window || ch->dedup_window_ms > 0;
		if (key != NULL && ch->dedup_window_ms == 0)
			cp_warn(
			    p, key,
			    "channel '%s': dedup_key has no effect: de-duplication is off for the "
			    "channel (no dedup_window)",
			    ch->name);
	}
	if (top_key != NULL && !any_window)
		cp_warn(p, top_key,
		        "dedup_key has no effect: no dedup_window turns de-duplication on");
}

void conf_free_dedup(struct config *c)
{
	for (size_t i = 0; i < c->nchannels; i++) {
		struct channel *ch = &c->channels[i];
		for (size_t k = 0; k < ch->ndedup_key; k++)
			free(ch->dedup_key[k]);
		free(ch->dedup_key);
	}
	for (size_t k = 0; k < c->ndedup_key; k++)
		free(c->dedup_key[k]);
	free(c->dedup_key);
}

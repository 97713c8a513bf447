/* Mustache templates: compile once, render many; HTML escaping. */
#ifndef ALERTMAIL_TEMPLATE_H
#define ALERTMAIL_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "yamltree.h"

enum tmpl_escape {
	TMPL_ESCAPE_NONE, /* subject and text bodies */
	TMPL_ESCAPE_HTML, /* HTML bodies: & " < > ' escaped */
};

struct tmpl; /* a compiled template */

/* Bounds of one render: partials inside partials at most this deep, and at most this many
 * bytes of output (a render that would add more fails, leaving nothing). */
#define TMPL_MAX_PARTIAL_DEPTH 32
#define TMPL_MAX_OUTPUT ((size_t)16 << 20)

/* Partials are looked up by name when first rendered. compiled(), when set, is asked first and
 * returns a partial compiled in advance (it stays the caller's), or NULL to go on to load().
 * load() puts the source of the partial in src and returns 0, or returns -1 when there is no
 * such partial (it then renders as empty). Either may be NULL. */
struct tmpl_partials {
	int (*load)(void *ctx, const char *name, struct buf *src);
	void *ctx;
	const struct tmpl *(*compiled)(void *ctx, const char *name);
};

int tmpl_compile(const char *src, size_t len, const char *name, struct tmpl **out, struct err *e);
/* Appends the rendering of t with data (the root context) to out. Falsey values: missing,
 * YAML null/false (plain), empty lists. Partial depth is bounded. */
int tmpl_render(const struct tmpl *t, const struct ynode *data, enum tmpl_escape esc,
                const struct tmpl_partials *partials, struct buf *out, struct err *e);
/* The same, bounded instead by out->len, which may not grow beyond max_len: several renders
 * into one buffer share one budget that way. */
int tmpl_render_within(const struct tmpl *t, const struct ynode *data, enum tmpl_escape esc,
                       const struct tmpl_partials *partials, size_t max_len, struct buf *out,
                       struct err *e);
void tmpl_free(struct tmpl *t);

/* The name given to tmpl_compile() ("template" when it was NULL), as errors use it. */
const char *tmpl_name(const struct tmpl *t);
/* Calls fn for every partial tag in t, sections included, in source order, with the tag's
 * position and whether it is inside a section (normal or inverted: rendered only as the data
 * decide); lets a caller find and compile partials in advance, and find partials that would
 * include each other whatever the data. Stops at the first non-zero value fn returns and
 * returns it; 0 otherwise. */
int tmpl_foreach_partial(const struct tmpl *t,
                         int (*fn)(void *ctx, const char *name, unsigned line, unsigned column,
                                   bool in_section),
                         void *ctx);

#endif

/* Mustache templates: compile once, render many; HTML escaping; mail templates. */
#ifndef ALERTMAIL_TEMPLATE_H
#define ALERTMAIL_TEMPLATE_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "yamltree.h"

enum tmpl_escape {
	TMPL_ESCAPE_NONE, /* subject and text bodies */
	TMPL_ESCAPE_HTML, /* HTML bodies: & " < > ' escaped */
};

struct tmpl; /* a compiled template */

/* Partials are looked up by name when first rendered. load() puts the source of the partial in
 * src and returns 0, or returns -1 when there is no such partial (it then renders as empty). */
struct tmpl_partials {
	int (*load)(void *ctx, const char *name, struct buf *src);
	void *ctx;
};

int tmpl_compile(const char *src, size_t len, const char *name, struct tmpl **out, struct err *e);
/* Appends the rendering of t with data (the root context) to out. Falsey values: missing,
 * YAML null/false (plain), empty lists. Partial depth is bounded. */
int tmpl_render(const struct tmpl *t, const struct ynode *data, enum tmpl_escape esc,
                const struct tmpl_partials *partials, struct buf *out, struct err *e);
void tmpl_free(struct tmpl *t);

/* A mail template is a directory NAME/ holding subject.mustache, text.mustache and optionally
 * html.mustache; partials are NAME/<partial>.mustache. The first of dirs that has NAME/ wins. */
struct mail_template;

int mail_template_load(const char *const *dirs, size_t ndirs, const char *name,
                       struct mail_template **out, struct err *e);
/* Renders all parts; html is NULL when the template has no HTML body. Caller frees. */
int mail_template_render(const struct mail_template *t, const struct ynode *data, char **subject,
                         char **text, char **html, struct err *e);
const char *mail_template_dir(const struct mail_template *t);
void mail_template_free(struct mail_template *t);

#endif

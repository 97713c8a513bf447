/* Mail templates on disk: a directory of Mustache files for the subject, text and HTML parts. */
#ifndef ALERTMAIL_MAILTMPL_H
#define ALERTMAIL_MAILTMPL_H

#include <stddef.h>

#include "err.h"
#include "yamltree.h"

/* A mail template is a directory NAME/ holding subject.mustache, text.mustache and optionally
 * html.mustache; partials are NAME/<partial>.mustache. The first of dirs that has NAME/ wins.
 * Loading fails, with file:line:column, on a partial that does not exist and on partials that
 * include each other outside any section (without end, or deeper than the render allows). */
struct mail_template;

int mail_template_load(const char *const *dirs, size_t ndirs, const char *name,
                       struct mail_template **out, struct err *e);
/* The longest subject, in bytes: a longer one is cut and ends in an ellipsis. */
#define MAILTMPL_SUBJECT_MAX 998

/* Renders all parts; html is NULL when the template has no HTML body. Caller frees. The
 * subject is made one line (line breaks and other control characters become spaces) of at
 * most MAILTMPL_SUBJECT_MAX bytes. All parts together are at most TMPL_MAX_OUTPUT bytes, or
 * the render fails. */
int mail_template_render(const struct mail_template *t, const struct ynode *data, char **subject,
                         char **text, char **html, struct err *e);
const char *mail_template_dir(const struct mail_template *t);
void mail_template_free(struct mail_template *t);

#endif

#include "config.h"

#include "mailtmpl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "template.h"

/* A template or partial file: bounded so that a careless one cannot swell the daemon. */
#define MAILTMPL_MAX_FILE (1u << 20)

/* A partial compiled at load time; a NULL tmpl records that there is no such file. */
struct partial {
	char *name;
	struct tmpl *t;
};

struct mail_template {
	char *dir; /* the NAME/ directory that was chosen */
	struct tmpl *subject, *text, *html;
	struct partial *partials; /* every partial the parts can reach, read when loading */
	size_t npartials, cap;
};

static bool partial_find(const struct mail_template *mt, const char *name, struct tmpl **t)
{
	for (size_t i = 0; i < mt->npartials; i++) {
		if (strcmp(mt->partials[i].name, name) == 0) {
			*t = mt->partials[i].t;
			return true;
		}
	}
	return false;
}

static void partial_add(struct mail_template *mt, const char *name, struct tmpl *t)
{
	if (mt->npartials == mt->cap) {
		mt->cap = mt->cap ? mt->cap * 2 : 4;
		mt->partials = xrealloc(mt->partials, mt->cap * sizeof(*mt->partials));
	}
	mt->partials[mt->npartials].name = xstrdup(name);
	mt->partials[mt->npartials].t = t;
	mt->npartials++;
}

/* Rendering takes its partials from here only: all were read and compiled when loading. */
static const struct tmpl *compiled_partial(void *ctx, const char *name)
{
	struct tmpl *t = NULL;

	partial_find(ctx, name, &t);
	return t;
}

/* Reads a whole file: 0 when read, 1 when it does not exist, -1 on any other error. */
static int read_source(const char *path, struct buf *b, struct err *e)
{
	char chunk[8192];
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		err_set(e, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		if (b->len + (size_t)n > MAILTMPL_MAX_FILE) {
			err_set(e, "%s: larger than the limit of %u bytes", path,
			        MAILTMPL_MAX_FILE);
			close(fd);
			return -1;
		}
		buf_add(b, chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

/* Loads and compiles dir/file: 0 when compiled, 1 when the file does not exist, -1 on error. */
static int load_part(const char *dir, const char *file, struct tmpl **out, struct err *e)
{
	char *path = xasprintf("%s/%s", dir, file);
	struct buf b;
	int rc;

	*out = NULL;
	buf_init(&b);
	rc = read_source(path, &b, e);
	if (rc == 0 && tmpl_compile(b.data ? b.data : "", b.len, path, out, e) < 0)
		rc = -1;
	buf_free(&b);
	free(path);
	return rc;
}

static bool name_is_safe(const char *name)
{
	return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

/* What collect_partial() needs: the mail template that gets the partials and the compiled
 * part whose tags are walked, which error positions refer to. */
struct collect {
	struct mail_template *mt;
	const struct tmpl *t;
	struct err *e;
};

/* Loads the partial named by one tag unless it is known already. */
static int collect_partial(void *ctx, const char *name, unsigned line, unsigned column)
{
	struct collect *c = ctx;
	struct tmpl *p;
	char *file;
	int rc;

	if (partial_find(c->mt, name, &p))
		return 0;
	/* The name becomes a file name: keep it inside the template's directory. */
	if (!name_is_safe(name)) {
		err_set(c->e, "%s:%u:%u: partial name '%s' must not contain '/' or start with '.'",
		        tmpl_name(c->t), line, column, name);
		return -1;
	}
	file = xasprintf("%s.mustache", name);
	rc = load_part(c->mt->dir, file, &p, c->e);
	free(file);
	if (rc < 0)
		return -1;
	partial_add(c->mt, name, p);
	return 0;
}

/* Loads every partial that t names and that is not known yet. */
static int collect_partials(struct mail_template *mt, const struct tmpl *t, struct err *e)
{
	struct collect c = {.mt = mt, .t = t, .e = e};

	return tmpl_foreach_partial(t, collect_partial, &c) < 0 ? -1 : 0;
}

static int find_template_dir(const char *const *dirs, size_t ndirs, const char *name, char **out,
                             struct err *e)
{
	struct buf tried;

	*out = NULL;
	for (size_t i = 0; i < ndirs; i++) {
		char *path = xasprintf("%s/%s", dirs[i], name);
		struct stat st;
		int rc = stat(path, &st);

		if (rc == 0 && S_ISDIR(st.st_mode)) {
			*out = path;
			return 0;
		}
		if (rc < 0 && errno != ENOENT && errno != ENOTDIR) {
			err_set(e, "template '%s': %s: %s", name, path, strerror(errno));
			free(path);
			return -1;
		}
		free(path);
	}
	buf_init(&tried);
	for (size_t i = 0; i < ndirs; i++)
		buf_printf(&tried, "%s%s", i > 0 ? ", " : "", dirs[i]);
	err_set(e, "template '%s' not found in %s", name,
	        ndirs > 0 ? tried.data : "(no directories)");
	buf_free(&tried);
	return -1;
}

int mail_template_load(const char *const *dirs, size_t ndirs, const char *name,
                       struct mail_template **out, struct err *e)
{
	static const char *const required[] = {"subject.mustache", "text.mustache"};
	struct mail_template *mt;
	struct tmpl **parts[2];
	int rc;

	*out = NULL;
	if (!name_is_safe(name)) {
		err_set(e, "template name '%s' must not be empty, contain '/' or start with '.'",
		        name);
		return -1;
	}
	mt = xcalloc(1, sizeof(*mt));
	if (find_template_dir(dirs, ndirs, name, &mt->dir, e) < 0)
		goto fail;
	parts[0] = &mt->subject;
	parts[1] = &mt->text;
	for (size_t i = 0; i < 2; i++) {
		rc = load_part(mt->dir, required[i], parts[i], e);
		if (rc < 0)
			goto fail;
		if (rc == 1) {
			err_set(e,
			        "template '%s' in %s: %s is missing (subject.mustache and "
			        "text.mustache "
			        "are required)",
			        name, mt->dir, required[i]);
			goto fail;
		}
	}
	if (load_part(mt->dir, "html.mustache", &mt->html, e) < 0)
		goto fail;
	if (collect_partials(mt, mt->subject, e) < 0 || collect_partials(mt, mt->text, e) < 0 ||
	    (mt->html != NULL && collect_partials(mt, mt->html, e) < 0))
		goto fail;
	/* Partials of partials: the list grows while we walk it. */
	for (size_t i = 0; i < mt->npartials; i++) {
		const struct tmpl *p = mt->partials[i].t;
		if (p != NULL && collect_partials(mt, p, e) < 0)
			goto fail;
	}
	*out = mt;
	return 0;
fail:
	mail_template_free(mt);
	return -1;
}

/* A subject is one header line: control characters and line breaks, with the blanks around
 * them, become one space, and the ends are trimmed. */
static char *one_line(const char *s, size_t len)
{
	struct buf b;
	size_t i = 0;

	buf_init(&b);
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		size_t j = i;
		bool ctl = false;

		if (c >= 0x20 && c != 0x7f) {
			if (c != ' ') {
				buf_addc(&b, (char)c);
				i++;
				continue;
			}
		}
		while (j < len && ((unsigned char)s[j] <= 0x20 || s[j] == 0x7f)) {
			ctl = ctl || s[j] != ' ';
			j++;
		}
		if (b.len > 0 && j < len) {
			if (ctl)
				buf_addc(&b, ' ');
			else
				buf_add(&b, s + i, j - i);
		}
		i = j;
	}
	return buf_steal(&b);
}

/* A NUL from the data would silently cut a C string short: drop it. */
static char *take_body(struct buf *b)
{
	size_t j = 0;

	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] != '\0')
			b->data[j++] = b->data[i];
	if (b->data != NULL) {
		b->len = j;
		b->data[j] = '\0';
	}
	return buf_steal(b);
}

int mail_template_render(const struct mail_template *t, const struct ynode *data, char **subject,
                         char **text, char **html, struct err *e)
{
	struct tmpl_partials partials = {.compiled = compiled_partial, .ctx = (void *)t};
	struct buf b;

	*subject = NULL;
	*text = NULL;
	if (html != NULL)
		*html = NULL;
	buf_init(&b);
	if (tmpl_render(t->subject, data, TMPL_ESCAPE_NONE, &partials, &b, e) < 0)
		goto fail;
	*subject = one_line(b.data, b.len);
	buf_reset(&b);
	if (tmpl_render(t->text, data, TMPL_ESCAPE_NONE, &partials, &b, e) < 0)
		goto fail;
	*text = take_body(&b);
	if (html != NULL && t->html != NULL) {
		if (tmpl_render(t->html, data, TMPL_ESCAPE_HTML, &partials, &b, e) < 0)
			goto fail;
		*html = take_body(&b);
	}
	buf_free(&b);
	return 0;
fail:
	buf_free(&b);
	free(*subject);
	free(*text);
	*subject = NULL;
	*text = NULL;
	return -1;
}

const char *mail_template_dir(const struct mail_template *t)
{
	return t->dir;
}

void mail_template_free(struct mail_template *t)
{
	if (t == NULL)
		return;
	tmpl_free(t->subject);
	tmpl_free(t->text);
	tmpl_free(t->html);
	for (size_t i = 0; i < t->npartials; i++) {
		free(t->partials[i].name);
		tmpl_free(t->partials[i].t);
	}
	free(t->partials);
	free(t->dir);
	free(t);
}

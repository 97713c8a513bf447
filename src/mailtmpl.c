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
#include "charset.h"
#include "template.h"

/* A template or partial file: bounded so that a careless one cannot swell the daemon. */
#define MAILTMPL_MAX_FILE (1u << 20)

/* A partial tag outside any section: the partial it names is always rendered. */
struct include {
	size_t to; /* index in partials[] */
	unsigned line, column;
};

/* A partial compiled at load time, and the partials it always includes. */
struct partial {
	char *name;
	struct tmpl *t;
	struct include *always;
	size_t nalways;
};

struct mail_template {
	char *dir; /* the NAME/ directory that was chosen */
	struct tmpl *subject, *text, *html;
	struct partial *partials; /* every partial the parts can reach, read when loading */
	size_t npartials, cap;
};

/* The index of the partial called name, or -1. */
static long partial_find(const struct mail_template *mt, const char *name)
{
	for (size_t i = 0; i < mt->npartials; i++)
		if (strcmp(mt->partials[i].name, name) == 0)
			return (long)i;
	return -1;
}

static size_t partial_add(struct mail_template *mt, const char *name, struct tmpl *t)
{
	if (mt->npartials == mt->cap) {
		mt->cap = mt->cap ? mt->cap * 2 : 4;
		mt->partials = xrealloc(mt->partials, mt->cap * sizeof(*mt->partials));
	}
	memset(&mt->partials[mt->npartials], 0, sizeof(mt->partials[0]));
	mt->partials[mt->npartials].name = xstrdup(name);
	mt->partials[mt->npartials].t = t;
	return mt->npartials++;
}

/* Rendering takes its partials from here only: all were read and compiled when loading. */
static const struct tmpl *compiled_partial(void *ctx, const char *name)
{
	const struct mail_template *mt = ctx;
	long i = partial_find(mt, name);

	return i < 0 ? NULL : mt->partials[i].t;
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
	long from; /* the partial whose tags these are, or -1 for a part */
	struct err *e;
};

/* Loads the partial named by one tag unless it is known already, and records the tag when
 * it is outside any section. */
static int collect_partial(void *ctx, const char *name, unsigned line, unsigned column,
                           bool in_section)
{
	struct collect *c = ctx;
	long i = partial_find(c->mt, name);

	if (i < 0) {
		struct tmpl *p;
		char *file;
		int rc;

		/* The name becomes a file name: keep it inside the template's directory. */
		if (!name_is_safe(name)) {
			err_set(
			    c->e,
			    "%s:%u:%u: partial name '%s' must not contain '/' or start with '.'",
			    tmpl_name(c->t), line, column, name);
			return -1;
		}
		file = xasprintf("%s.mustache", name);
		rc = load_part(c->mt->dir, file, &p, c->e);
		if (rc == 1)
			/* Mustache renders a missing partial as nothing; in a mail template it is
			 * a mistake to be told of, not a silent gap in every message. */
			err_set(c->e, "%s:%u:%u: partial '%s': there is no %s in %s",
			        tmpl_name(c->t), line, column, name, file, c->mt->dir);
		free(file);
		if (rc != 0)
			return -1;
		i = (long)partial_add(c->mt, name, p);
	}
	if (c->from >= 0 && !in_section) {
		struct partial *from = &c->mt->partials[c->from];
		from->always = xrealloc(from->always, (from->nalways + 1) * sizeof(*from->always));
		from->always[from->nalways].to = (size_t)i;
		from->always[from->nalways].line = line;
		from->always[from->nalways].column = column;
		from->nalways++;
	}
	return 0;
}

/* Loads every partial that t names and that is not known yet; from is t's index when t is a
 * partial, else -1. */
static int collect_partials(struct mail_template *mt, const struct tmpl *t, long from,
                            struct err *e)
{
	struct collect c = {.mt = mt, .t = t, .from = from, .e = e};

	return tmpl_foreach_partial(t, collect_partial, &c) < 0 ? -1 : 0;
}

/* What check_includes() walks with: the partials on the current path of includes. */
struct walk {
	const struct mail_template *mt;
	size_t path[TMPL_MAX_PARTIAL_DEPTH + 1];
	size_t depth;
	unsigned char *state; /* per partial: 0 not seen, 1 on the path, 2 done */
	size_t *height;       /* per partial done: the longest chain of includes from it */
	struct err *e;
};

static void path_names(const struct walk *w, size_t from, size_t last, struct buf *out)
{
	for (size_t i = from; i < w->depth; i++)
		buf_printf(out, "%s -> ", w->mt->partials[w->path[i]].name);
	buf_adds(out, w->mt->partials[last].name);
}

/* Follows the includes that no section guards from partial i: a partial that comes back to
 * itself that way would be rendered without end, and a chain longer than the renderer's
 * partial depth fails every render. Both are errors when the template is loaded. */
/* NOLINTNEXTLINE(misc-no-recursion): w->depth stops at TMPL_MAX_PARTIAL_DEPTH */
static int walk_includes(struct walk *w, size_t i)
{
	const struct partial *p = &w->mt->partials[i];
	size_t height = 1;
	struct buf names;

	w->state[i] = 1;
	w->path[w->depth++] = i;
	for (size_t k = 0; k < p->nalways; k++) {
		size_t to = p->always[k].to;

		if (w->state[to] == 2 && w->depth + w->height[to] <= TMPL_MAX_PARTIAL_DEPTH) {
			if (1 + w->height[to] > height)
				height = 1 + w->height[to];
			continue;
		}
		buf_init(&names);
		if (w->state[to] == 1) {
			size_t first = 0;
			while (w->path[first] != to)
				first++;
			path_names(w, first, to, &names);
			err_set(
			    w->e,
			    "%s:%u:%u: partial '%s' includes itself (%s) outside any section: it "
			    "would be rendered without end",
			    tmpl_name(p->t), p->always[k].line, p->always[k].column,
			    w->mt->partials[to].name, names.data);
			buf_free(&names);
			return -1;
		}
		if (w->state[to] == 2 || w->depth >= TMPL_MAX_PARTIAL_DEPTH) {
			path_names(w, 0, to, &names);
			err_set(w->e,
			        "%s:%u:%u: partials include each other more than %d levels deep "
			        "outside any section (%s%s)",
			        tmpl_name(p->t), p->always[k].line, p->always[k].column,
			        TMPL_MAX_PARTIAL_DEPTH, names.data,
			        w->state[to] == 2 ? " -> ..." : "");
			buf_free(&names);
			return -1;
		}
		buf_free(&names);
		if (walk_includes(w, to) < 0)
			return -1;
		if (1 + w->height[to] > height)
			height = 1 + w->height[to];
	}
	w->depth--;
	w->state[i] = 2;
	w->height[i] = height;
	return 0;
}

static int check_includes(const struct mail_template *mt, struct err *e)
{
	struct walk w = {.mt = mt, .e = e};
	int rc = 0;

	w.state = xcalloc(mt->npartials, 1);
	w.height = xcalloc(mt->npartials, sizeof(*w.height));
	for (size_t i = 0; rc == 0 && i < mt->npartials; i++)
		if (w.state[i] == 0)
			rc = walk_includes(&w, i);
	free(w.state);
	free(w.height);
	return rc;
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
	if (collect_partials(mt, mt->subject, -1, e) < 0 ||
	    collect_partials(mt, mt->text, -1, e) < 0 ||
	    (mt->html != NULL && collect_partials(mt, mt->html, -1, e) < 0))
		goto fail;
	/* Partials of partials: the list grows while we walk it. */
	for (size_t i = 0; i < mt->npartials; i++)
		if (collect_partials(mt, mt->partials[i].t, (long)i, e) < 0)
			goto fail;
	if (check_includes(mt, e) < 0)
		goto fail;
	*out = mt;
	return 0;
fail:
	mail_template_free(mt);
	return -1;
}

/* A subject is one header line: runs of blanks and control characters (line breaks of any
 * kind: CR, LF, NEL, U+2028, U+2029) become one space when they hold any control character,
 * and the ends are trimmed. A longer one is cut, between characters, and ends in an ellipsis:
 * the text body has the whole. */
static char *one_line(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	struct buf b;
	size_t i = 0, adv;

	buf_init(&b);
	while (i < len) {
		long cp = charset_utf8_decode(s + i, len - i, &adv);
		size_t j = i;
		bool ctl = false;

		if (cp != ' ' && !charset_is_control(cp)) {
			buf_add(&b, s + i, adv);
			i += adv;
			continue;
		}
		while (j < len) {
			cp = charset_utf8_decode(s + j, len - j, &adv);
			if (cp != ' ' && !charset_is_control(cp))
				break;
			ctl = ctl || cp != ' ';
			j += adv;
		}
		if (b.len > 0 && j < len) {
			if (ctl)
				buf_addc(&b, ' ');
			else
				buf_add(&b, s + i, j - i);
		}
		i = j;
	}
	if (b.len > MAILTMPL_SUBJECT_MAX) {
		size_t cut = MAILTMPL_SUBJECT_MAX - 3;
		while (cut > 0 && ((unsigned char)b.data[cut] & 0xc0) == 0x80)
			cut--;
		while (cut > 0 && b.data[cut - 1] == ' ')
			cut--;
		b.len = cut;
		buf_adds(&b, "\xe2\x80\xa6"); /* U+2026 HORIZONTAL ELLIPSIS */
	}
	return buf_steal(&b);
}

/* A body from len bytes at s. A NUL from the data would silently cut a C string short: it is
 * dropped. */
static char *take_body(const char *s, size_t len)
{
	char *d = xmalloc(len + 1);
	size_t j = 0;

	for (size_t i = 0; i < len; i++)
		if (s[i] != '\0')
			d[j++] = s[i];
	d[j] = '\0';
	return d;
}

int mail_template_render(const struct mail_template *t, const struct ynode *data, char **subject,
                         char **text, char **html, struct err *e)
{
	struct tmpl_partials partials = {.compiled = compiled_partial, .ctx = (void *)t};
	size_t subject_end, text_end;
	struct buf b;

	*subject = NULL;
	*text = NULL;
	if (html != NULL)
		*html = NULL;
	/* The parts are rendered one after the other into one buffer, so that they share one
	 * bound: TMPL_MAX_OUTPUT for the whole message, not for each part. */
	buf_init(&b);
	if (tmpl_render_within(t->subject, data, TMPL_ESCAPE_NONE, &partials, TMPL_MAX_OUTPUT, &b,
	                       e) < 0)
		goto fail;
	subject_end = b.len;
	if (tmpl_render_within(t->text, data, TMPL_ESCAPE_NONE, &partials, TMPL_MAX_OUTPUT, &b, e) <
	    0)
		goto fail;
	text_end = b.len;
	if (html != NULL && t->html != NULL &&
	    tmpl_render_within(t->html, data, TMPL_ESCAPE_HTML, &partials, TMPL_MAX_OUTPUT, &b, e) <
	        0)
		goto fail;
	*subject = one_line(b.data, subject_end);
	*text = take_body(b.data + subject_end, text_end - subject_end);
	if (html != NULL && t->html != NULL)
		*html = take_body(b.data + text_end, b.len - text_end);
	buf_free(&b);
	return 0;
fail:
	buf_free(&b);
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
		free(t->partials[i].always);
	}
	free(t->partials);
	free(t->dir);
	free(t);
}

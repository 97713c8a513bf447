#include "config.h"

#include "template.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits that keep a careless template or a hostile alert from hanging or swelling the daemon
 * (with the partial depth and the output in template.h). */
#define TMPL_MAX_NESTING 100      /* sections inside sections, checked when compiling */
#define TMPL_MAX_STEPS 10000000ul /* nodes visited by one render: nested loops multiply */

#define NPOS ((size_t)-1)

enum node_kind {
	NODE_TEXT,     /* literal text, at most one line */
	NODE_INDENT,   /* a source line starts here: a standalone partial indents it */
	NODE_VAR,      /* {{name}}, {{{name}}}, {{&name}} */
	NODE_SECTION,  /* {{#name}}...{{/name}} */
	NODE_INVERTED, /* {{^name}}...{{/name}} */
	NODE_PARTIAL,  /* {{>name}} */
};

struct node {
	enum node_kind kind;
	unsigned line, column; /* of the tag, for errors at render time */
	char *text;            /* TEXT: the literal; PARTIAL: the indentation when standalone */
	size_t len;
	char *name;   /* VAR, SECTION, INVERTED, PARTIAL: the name as written */
	char **parts; /* the name split at dots; none for the implicit iterator "." */
	size_t nparts;
	bool escape;     /* VAR: subject to the escape mode of the render */
	bool standalone; /* PARTIAL: alone on its line, so its lines are indented */
	struct node *children;
	size_t nchildren;
};

struct nodelist {
	struct node *v;
	size_t n, cap;
};

struct tmpl {
	char *name;
	struct node *nodes;
	size_t n;
};

/* Sets e to "name:line:column: message". Messages quote the source and the names in it (a
 * partial's name is its template's name), which may hold line breaks and other control
 * characters: err_set escapes them, so each stays one line in a log. */
__attribute__((format(printf, 5, 0))) static void error_vset(struct err *e, const char *name,
                                                             unsigned line, unsigned column,
                                                             const char *fmt, va_list ap)
{
	char what[768];

	vsnprintf(what, sizeof(what), fmt, ap);
	err_set(e, "%s:%u:%u: %s", name, line, column, what);
}

/* ---- compiling ---- */

/* A section being parsed: the node it will become and the children collected so far. */
struct frame {
	struct node proto;
	struct nodelist list;
};

struct parser {
	const char *src;
	size_t len;
	const char *name;
	struct err *e;
	const char *open, *close; /* the current delimiters: defaults or pointers into src */
	size_t olen, clen;
	size_t pos;                                /* first byte not yet turned into nodes */
	struct frame frames[TMPL_MAX_NESTING + 1]; /* frames[0] is the template itself */
	size_t depth;
	size_t at; /* the offset that line and column describe, moving forward as parsing does */
	unsigned line, column;
};

/* NOLINTNEXTLINE(misc-no-recursion): sections nest TMPL_MAX_NESTING deep at most */
static void nodes_free(struct node *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].text);
		free(v[i].name);
		for (size_t j = 0; j < v[i].nparts; j++)
			free(v[i].parts[j]);
		free(v[i].parts);
		nodes_free(v[i].children, v[i].nchildren);
	}
	free(v);
}

static void locate(struct parser *p, size_t off, unsigned *line, unsigned *column)
{
	if (off < p->at) {
		p->at = 0;
		p->line = 1;
		p->column = 1;
	}
	for (; p->at < off; p->at++) {
		if (p->src[p->at] == '\n') {
			p->line++;
			p->column = 1;
		} else {
			p->column++;
		}
	}
	*line = p->line;
	*column = p->column;
}

__attribute__((format(printf, 3, 4))) static int parse_error(struct parser *p, size_t off,
                                                             const char *fmt, ...)
{
	unsigned line, column;
	va_list ap;

	locate(p, off, &line, &column);
	va_start(ap, fmt);
	error_vset(p->e, p->name, line, column, fmt, ap);
	va_end(ap);
	return -1;
}

static struct node *emit(struct parser *p, enum node_kind kind, size_t off)
{
	struct nodelist *l = &p->frames[p->depth].list;
	struct node *n;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	n = &l->v[l->n++];
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	locate(p, off, &n->line, &n->column);
	return n;
}

static size_t find(const struct parser *p, size_t from, const char *s, size_t n)
{
	for (size_t i = from; n <= p->len && i <= p->len - n; i++)
		if (p->src[i] == s[0] && memcmp(p->src + i, s, n) == 0)
			return i;
	return NPOS;
}

/* The closing delimiter preceded by c, as in "}}}" or "=}}": returns the offset of c. */
static size_t find_closing(const struct parser *p, size_t from, char c)
{
	size_t i = from;

	for (;;) {
		i = find(p, i, p->close, p->clen);
		if (i == NPOS)
			return NPOS;
		if (i > from && p->src[i - 1] == c)
			return i - 1;
		i++;
	}
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool is_line_start(const struct parser *p, size_t off)
{
	return off == 0 || p->src[off - 1] == '\n';
}

static bool line_is_empty(const struct parser *p, size_t off)
{
	return off >= p->len || p->src[off] == '\n' ||
	       (p->src[off] == '\r' && off + 1 < p->len && p->src[off + 1] == '\n');
}

/* Literal text, one node per line, each non-empty line marked so that partials can indent it. */
static void emit_text(struct parser *p, size_t a, size_t b)
{
	while (a < b) {
		size_t end = a;
		struct node *n;

		if (is_line_start(p, a) && !line_is_empty(p, a))
			emit(p, NODE_INDENT, a);
		while (end < b && p->src[end] != '\n')
			end++;
		if (end < b)
			end++;
		n = emit(p, NODE_TEXT, a);
		n->text = xstrndup(p->src + a, end - a);
		n->len = end - a;
		a = end;
	}
}

/* Fills n->name and n->parts from the trimmed tag content [a, b). */
static int parse_name(struct parser *p, size_t a, size_t b, size_t tag, struct node *n)
{
	const char *s = p->src + a;
	size_t len = b - a, from = 0;

	if (len == 0)
		return parse_error(p, tag, "expected a name in the tag");
	for (size_t i = 0; i < len; i++)
		if (is_space(s[i]) || s[i] == '\0')
			return parse_error(p, tag, "expected one name in the tag, found '%.*s'",
			                   (int)len, s);
	n->name = xstrndup(s, len);
	if (len == 1 && s[0] == '.')
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (i == from)
			return parse_error(p, tag, "expected a name between the dots of '%.*s'",
			                   (int)len, s);
		n->parts = xrealloc(n->parts, (n->nparts + 1) * sizeof(*n->parts));
		n->parts[n->nparts++] = xstrndup(s + from, i - from);
		from = i + 1;
	}
	return 0;
}

static int set_delimiters(struct parser *p, size_t a, size_t b, size_t tag)
{
	size_t a1 = a, b1, a2, b2;

	b1 = a1;
	while (b1 < b && !is_space(p->src[b1]))
		b1++;
	a2 = b1;
	while (a2 < b && is_space(p->src[a2]))
		a2++;
	b2 = a2;
	while (b2 < b && !is_space(p->src[b2]))
		b2++;
	if (b1 == a1 || b2 == a2 || b2 != b)
		return parse_error(
		    p, tag, "expected two delimiters separated by a space, as in {{=<%% %%>=}}");
	if (memchr(p->src + a1, '=', b1 - a1) != NULL || memchr(p->src + a2, '=', b2 - a2) != NULL)
		return parse_error(p, tag, "a delimiter must not contain '='");
	p->open = p->src + a1;
	p->olen = b1 - a1;
	p->close = p->src + a2;
	p->clen = b2 - a2;
	return 0;
}

static int open_section(struct parser *p, size_t a, size_t b, size_t tag, bool inverted)
{
	struct frame *f;

	if (p->depth >= TMPL_MAX_NESTING)
		return parse_error(p, tag, "sections nested deeper than %d levels",
		                   TMPL_MAX_NESTING);
	f = &p->frames[++p->depth];
	memset(f, 0, sizeof(*f));
	f->proto.kind = inverted ? NODE_INVERTED : NODE_SECTION;
	locate(p, tag, &f->proto.line, &f->proto.column);
	return parse_name(p, a, b, tag, &f->proto);
}

static int close_section(struct parser *p, size_t a, size_t b, size_t tag)
{
	struct frame *f = &p->frames[p->depth];
	struct node *n;

	if (p->depth == 0)
		return parse_error(p, tag, "unexpected end of section '%.*s': no section is open",
		                   (int)(b - a), p->src + a);
	if (strlen(f->proto.name) != b - a || memcmp(f->proto.name, p->src + a, b - a) != 0)
		return parse_error(
		    p, tag, "expected the end of section '%s' (opened at %u:%u), found '%.*s'",
		    f->proto.name, f->proto.line, f->proto.column, (int)(b - a), p->src + a);
	p->depth--;
	n = emit(p, f->proto.kind, tag);
	*n = f->proto;
	n->children = f->list.v;
	n->nchildren = f->list.n;
	memset(f, 0, sizeof(*f));
	return 0;
}

/* Parses the tag at start; p->pos moves past it, and past its whole line when standalone. */
static int parse_tag(struct parser *p, size_t start)
{
	size_t cs = start + p->olen, ce, end, ls, eol, a, b;
	char sigil = (char)(cs < p->len ? p->src[cs] : '\0');
	bool standalone;
	struct node *n;

	switch (sigil) {
	case '#':
	case '^':
	case '/':
	case '!':
	case '>':
	case '=':
	case '{':
	case '&':
		cs++;
		break;
	default:
		sigil = '\0';
		break;
	}
	if (sigil == '{' || sigil == '=')
		ce = find_closing(p, cs, sigil == '{' ? '}' : '=');
	else
		ce = find(p, cs, p->close, p->clen);
	if (ce == NPOS)
		return parse_error(p, start, "unclosed tag: expected '%s%.*s'",
		                   sigil == '{'   ? "}"
		                   : sigil == '=' ? "="
		                                  : "",
		                   (int)p->clen, p->close);
	end = ce + (sigil == '{' || sigil == '=' ? 1 : 0) + p->clen;

	/* Standalone: only blanks before the tag on its line and after it up to the line end.
	 * Scanning back over blanks only keeps long lines with many tags linear. */
	ls = start;
	while (ls > 0 && is_blank(p->src[ls - 1]))
		ls--;
	eol = end;
	while (eol < p->len && is_blank(p->src[eol]))
		eol++;
	standalone = sigil != '\0' && sigil != '{' && sigil != '&' && is_line_start(p, ls);
	if (standalone && eol < p->len) {
		if (p->src[eol] == '\n')
			eol++;
		else if (p->src[eol] == '\r' && eol + 1 < p->len && p->src[eol + 1] == '\n')
			eol += 2;
		else
			standalone = false;
	}
	emit_text(p, p->pos, standalone ? ls : start);
	if (!standalone && is_line_start(p, start))
		emit(p, NODE_INDENT, start);
	p->pos = standalone ? eol : end;

	a = cs;
	b = ce;
	while (a < b && is_space(p->src[a]))
		a++;
	while (b > a && is_space(p->src[b - 1]))
		b--;
	switch (sigil) {
	case '!':
		return 0;
	case '=':
		return set_delimiters(p, a, b, start);
	case '#':
	case '^':
		return open_section(p, a, b, start, sigil == '^');
	case '/':
		return close_section(p, a, b, start);
	case '>':
		n = emit(p, NODE_PARTIAL, start);
		n->standalone = standalone;
		if (standalone) {
			n->text = xstrndup(p->src + ls, start - ls);
			n->len = start - ls;
		}
		/* Partial names are looked up, not resolved through the context: no dot splitting.
		 */
		if (a == b)
			return parse_error(p, start, "expected a partial name in the tag");
		for (size_t i = a; i < b; i++)
			if (is_space(p->src[i]) || p->src[i] == '\0')
				return parse_error(
				    p, start, "expected one partial name in the tag, found '%.*s'",
				    (int)(b - a), p->src + a);
		n->name = xstrndup(p->src + a, b - a);
		return 0;
	default:
		n = emit(p, NODE_VAR, start);
		n->escape = sigil == '\0';
		return parse_name(p, a, b, start, n);
	}
}

int tmpl_compile(const char *src, size_t len, const char *name, struct tmpl **out, struct err *e)
{
	struct parser *p = xcalloc(1, sizeof(*p));
	struct tmpl *t;
	int rc = 0;

	*out = NULL;
	p->src = src;
	p->len = len;
	p->name = name != NULL ? name : "template";
	p->e = e;
	p->open = "{{";
	p->olen = 2;
	p->close = "}}";
	p->clen = 2;
	p->line = p->column = 1;
	while (rc == 0 && p->pos < p->len) {
		size_t start = find(p, p->pos, p->open, p->olen);
		if (start == NPOS) {
			emit_text(p, p->pos, p->len);
			p->pos = p->len;
		} else {
			rc = parse_tag(p, start);
		}
	}
	if (rc == 0 && p->depth > 0) {
		const struct node *s = &p->frames[p->depth].proto;
		err_set(e, "%s:%u:%u: unclosed section '%s': expected %.*s/%s%.*s before the end",
		        p->name, s->line, s->column, s->name, (int)p->olen, p->open, s->name,
		        (int)p->clen, p->close);
		rc = -1;
	}
	if (rc < 0) {
		for (size_t i = 0; i <= p->depth; i++) {
			nodes_free(p->frames[i].list.v, p->frames[i].list.n);
			free(p->frames[i].proto.name);
			for (size_t j = 0; j < p->frames[i].proto.nparts; j++)
				free(p->frames[i].proto.parts[j]);
			free(p->frames[i].proto.parts);
		}
		free(p);
		return -1;
	}
	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(p->name);
	t->nodes = p->frames[0].list.v;
	t->n = p->frames[0].list.n;
	free(p);
	*out = t;
	return 0;
}

void tmpl_free(struct tmpl *t)
{
	if (t == NULL)
		return;
	nodes_free(t->nodes, t->n);
	free(t->name);
	free(t);
}

const char *tmpl_name(const struct tmpl *t)
{
	return t->name;
}

/* NOLINTNEXTLINE(misc-no-recursion): sections nest TMPL_MAX_NESTING deep at most */
static int foreach_partial(const struct node *v, size_t n, bool in_section,
                           int (*fn)(void *ctx, const char *name, unsigned line, unsigned column,
                                     bool in_section),
                           void *ctx)
{
	for (size_t i = 0; i < n; i++) {
		int rc = 0;

		if (v[i].kind == NODE_SECTION || v[i].kind == NODE_INVERTED)
			rc = foreach_partial(v[i].children, v[i].nchildren, true, fn, ctx);
		else if (v[i].kind == NODE_PARTIAL)
			rc = fn(ctx, v[i].name, v[i].line, v[i].column, in_section);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int tmpl_foreach_partial(const struct tmpl *t,
                         int (*fn)(void *ctx, const char *name, unsigned line, unsigned column,
                                   bool in_section),
                         void *ctx)
{
	return foreach_partial(t->nodes, t->n, false, fn, ctx);
}

/* ---- rendering ---- */

/* Compiled partials by name; a NULL tmpl records that there is no such partial. */
struct pentry {
	char *name;
	struct tmpl *t;
};

struct pcache {
	struct pentry *v;
	size_t n, cap;
};

static bool pcache_get(const struct pcache *c, const char *name, struct tmpl **t)
{
	for (size_t i = 0; i < c->n; i++) {
		if (strcmp(c->v[i].name, name) == 0) {
			*t = c->v[i].t;
			return true;
		}
	}
	return false;
}

static void pcache_add(struct pcache *c, const char *name, struct tmpl *t)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
	}
	c->v[c->n].name = xstrdup(name);
	c->v[c->n].t = t;
	c->n++;
}

static void pcache_free(struct pcache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].name);
		tmpl_free(c->v[i].t);
	}
	free(c->v);
	c->v = NULL;
	c->n = c->cap = 0;
}

struct render {
	struct buf *out;
	size_t start;   /* out->len before rendering */
	size_t max_len; /* out->len may not grow beyond this */
	size_t base;    /* where the budget that max_len ends started, for messages */
	enum tmpl_escape esc;
	const struct tmpl_partials *loader;
	struct pcache loaded; /* loaded through loader during this render */
	const struct ynode **stack;
	size_t nstack, cap;
	struct buf indent; /* the current indentation is indent.data[indent_from..indent.len) */
	size_t indent_from;
	unsigned partial_depth;
	unsigned long steps;
	struct err *e;
};

__attribute__((format(printf, 4, 5))) static int
render_error(struct render *r, const struct tmpl *t, const struct node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(r->e, t->name, n->line, n->column, fmt, ap);
	va_end(ap);
	return -1;
}

static void push(struct render *r, const struct ynode *v)
{
	if (r->nstack == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->stack = xrealloc(r->stack, r->cap * sizeof(const struct ynode *));
	}
	r->stack[r->nstack++] = v;
}

/* The first part of a name resolves through the whole context stack, the rest only against
 * what the previous part found, so that a.b never picks up a b from an outer context. */
static const struct ynode *lookup(const struct render *r, const struct node *n)
{
	const struct ynode *v = NULL;

	if (n->nparts == 0)
		return r->nstack > 0 ? r->stack[r->nstack - 1] : NULL;
	for (size_t i = r->nstack; v == NULL && i > 0; i--)
		v = ynode_get(r->stack[i - 1], n->parts[0]);
	for (size_t i = 1; v != NULL && i < n->nparts; i++)
		v = ynode_get(v, n->parts[i]);
	return v;
}

static bool truthy(const struct ynode *v)
{
	if (v == NULL)
		return false;
	switch (v->kind) {
	case YNODE_SEQ:
		return v->count > 0;
	case YNODE_MAP:
		return true;
	case YNODE_SCALAR:
		return !ynode_is_null(v) && ynode_bool(v) != 0;
	}
	return false;
}

static void put_value(struct render *r, const struct ynode *v, bool escape)
{
	size_t from = 0;

	if (v == NULL || v->kind != YNODE_SCALAR || ynode_is_null(v))
		return;
	if (!escape || r->esc == TMPL_ESCAPE_NONE) {
		buf_add(r->out, v->str, v->len);
		return;
	}
	for (size_t i = 0; i < v->len; i++) {
		const char *rep;
		switch (v->str[i]) {
		case '&':
			rep = "&amp;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			continue;
		}
		buf_add(r->out, v->str + from, i - from);
		buf_adds(r->out, rep);
		from = i + 1;
	}
	buf_add(r->out, v->str + from, v->len - from);
}

static int render_nodes(struct render *r, const struct tmpl *t, const struct node *v, size_t n);

/* Finds the compiled partial for name (NULL when there is none): one compiled in advance, or
 * one loaded and compiled on first use. */
static int find_partial(struct render *r, const struct tmpl *t, const struct node *n,
                        const struct tmpl **out)
{
	struct tmpl *p = NULL;
	struct buf src;

	*out = NULL;
	if (r->loader != NULL && r->loader->compiled != NULL) {
		*out = r->loader->compiled(r->loader->ctx, n->name);
		if (*out != NULL)
			return 0;
	}
	if (pcache_get(&r->loaded, n->name, &p)) {
		*out = p;
		return 0;
	}
	if (r->loader == NULL || r->loader->load == NULL)
		return 0;
	buf_init(&src);
	if (r->loader->load(r->loader->ctx, n->name, &src) < 0) {
		pcache_add(&r->loaded, n->name, NULL);
	} else if (tmpl_compile(src.data ? src.data : "", src.len, n->name, &p, r->e) < 0) {
		/* err_prefix escapes the names, as every error is. */
		err_prefix(r->e, "%s:%u:%u: partial '%s'", t->name, n->line, n->column, n->name);
		buf_free(&src);
		return -1;
	} else {
		pcache_add(&r->loaded, n->name, p);
		*out = p;
	}
	buf_free(&src);
	return 0;
}

/* NOLINTNEXTLINE(misc-no-recursion): TMPL_MAX_PARTIAL_DEPTH partials, TMPL_MAX_NESTING deep */
static int render_partial(struct render *r, const struct tmpl *t, const struct node *n)
{
	size_t from = r->indent_from, len = r->indent.len;
	const struct tmpl *p;
	int rc;

	if (find_partial(r, t, n, &p) < 0)
		return -1;
	if (p == NULL)
		return 0;
	if (r->partial_depth >= TMPL_MAX_PARTIAL_DEPTH)
		return render_error(r, t, n,
		                    "partials nested deeper than %d levels (does '%s' recurse "
		                    "without end?)",
		                    TMPL_MAX_PARTIAL_DEPTH, n->name);
	/* A standalone partial adds its indentation to the current one; an inline partial starts
	 * afresh, as if its text had been pasted in place of the tag. */
	if (n->standalone)
		buf_add(&r->indent, n->text, n->len);
	else
		r->indent_from = r->indent.len;
	r->partial_depth++;
	rc = render_nodes(r, p, p->nodes, p->n);
	r->partial_depth--;
	r->indent_from = from;
	r->indent.len = len;
	return rc;
}

/* Counts one step of the render: a node visited, or a turn of a loop (a loop over an empty
 * body visits no node, and loops inside each other still multiply). */
static int step(struct render *r, const struct tmpl *t, const struct node *n)
{
	if (++r->steps <= TMPL_MAX_STEPS)
		return 0;
	return render_error(r, t, n,
	                    "rendering takes more than %lu steps (loops over long lists inside "
	                    "each other?)",
	                    TMPL_MAX_STEPS);
}

/* NOLINTNEXTLINE(misc-no-recursion): TMPL_MAX_PARTIAL_DEPTH partials, TMPL_MAX_NESTING deep */
static int render_section(struct render *r, const struct tmpl *t, const struct node *n)
{
	const struct ynode *v = lookup(r, n);
	int rc = 0;

	if (n->kind == NODE_INVERTED)
		return truthy(v) ? 0 : render_nodes(r, t, n->children, n->nchildren);
	if (!truthy(v))
		return 0;
	if (v->kind != YNODE_SEQ) {
		push(r, v);
		rc = render_nodes(r, t, n->children, n->nchildren);
		r->nstack--;
		return rc;
	}
	for (size_t i = 0; rc == 0 && i < v->count; i++) {
		if (step(r, t, n) < 0)
			return -1;
		push(r, v->values[i]);
		rc = render_nodes(r, t, n->children, n->nchildren);
		r->nstack--;
	}
	return rc;
}

/* NOLINTNEXTLINE(misc-no-recursion): TMPL_MAX_PARTIAL_DEPTH partials, TMPL_MAX_NESTING deep */
static int render_nodes(struct render *r, const struct tmpl *t, const struct node *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct node *nd = &v[i];

		if (step(r, t, nd) < 0)
			return -1;
		switch (nd->kind) {
		case NODE_TEXT:
			buf_add(r->out, nd->text, nd->len);
			break;
		case NODE_INDENT:
			if (r->indent.len > r->indent_from)
				buf_add(r->out, r->indent.data + r->indent_from,
				        r->indent.len - r->indent_from);
			break;
		case NODE_VAR:
			put_value(r, lookup(r, nd), nd->escape);
			break;
		case NODE_SECTION:
		case NODE_INVERTED:
			if (render_section(r, t, nd) < 0)
				return -1;
			break;
		case NODE_PARTIAL:
			if (render_partial(r, t, nd) < 0)
				return -1;
			break;
		}
		if (r->out->len > r->max_len)
			return render_error(r, t, nd,
			                    "the output grows beyond the limit of %zu bytes",
			                    r->max_len - r->base);
	}
	return 0;
}

/* Renders t into out, whose length may not grow beyond max_len; base is where the budget
 * started, for the message that names the limit. */
static int render_bounded(const struct tmpl *t, const struct ynode *data, enum tmpl_escape esc,
                          const struct tmpl_partials *partials, size_t base, size_t max_len,
                          struct buf *out, struct err *e)
{
	struct render r;
	int rc;

	memset(&r, 0, sizeof(r));
	r.out = out;
	r.start = out->len;
	r.max_len = max_len;
	r.base = base;
	r.esc = esc;
	r.loader = partials;
	r.e = e;
	buf_init(&r.indent);
	if (data != NULL)
		push(&r, data);
	rc = render_nodes(&r, t, t->nodes, t->n);
	/* Leave out as it was on failure, and NUL-terminated in any case. */
	if (rc < 0)
		out->len = r.start;
	buf_add(out, "", 0);
	free(r.stack);
	buf_free(&r.indent);
	pcache_free(&r.loaded);
	return rc;
}

int tmpl_render(const struct tmpl *t, const struct ynode *data, enum tmpl_escape esc,
                const struct tmpl_partials *partials, struct buf *out, struct err *e)
{
	return render_bounded(t, data, esc, partials, out->len, out->len + TMPL_MAX_OUTPUT, out, e);
}

int tmpl_render_within(const struct tmpl *t, const struct ynode *data, enum tmpl_escape esc,
                       const struct tmpl_partials *partials, size_t max_len, struct buf *out,
                       struct err *e)
{
	return render_bounded(t, data, esc, partials, 0, max_len, out, e);
}

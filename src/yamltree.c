#include "config.h"

#include "yamltree.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "buf.h"

struct ybuilder {
	yaml_parser_t parser;
	const char *name;
	const char *data; /* the input, for the position of a reader error */
	size_t len;
	struct err *e;
	unsigned depth;
	size_t nodes; /* built so far, keys included */
};

static struct ynode *node_new(enum ynode_kind kind, const yaml_mark_t *m)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	if (m != NULL) {
		n->line = (unsigned)m->line + 1;
		n->column = (unsigned)m->column + 1;
	}
	return n;
}

/* NOLINTNEXTLINE(misc-no-recursion): YTREE_MAX_DEPTH parsed, as many again by --set */
void ynode_free(struct ynode *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->count; i++) {
		if (n->keys != NULL)
			ynode_free(n->keys[i]);
		ynode_free(n->values[i]);
	}
	free(n->keys);
	free(n->values);
	/* A scalar may be a password (an inline one in the config): wipe it. */
	if (n->str != NULL)
		explicit_bzero(n->str, n->len);
	free(n->str);
	free(n);
}

static void node_push(struct ynode *n, struct ynode *key, struct ynode *value)
{
	/* Grow by powers of two: count is the size in use. */
	if ((n->count & (n->count - 1)) == 0) {
		size_t cap = n->count ? n->count * 2 : 1;
		n->values = xrealloc(n->values, cap * sizeof(struct ynode *));
		if (n->kind == YNODE_MAP)
			n->keys = xrealloc(n->keys, cap * sizeof(struct ynode *));
	}
	if (n->kind == YNODE_MAP)
		n->keys[n->count] = key;
	n->values[n->count] = value;
	n->count++;
}

/* libyaml gives a reader error (bytes that are not UTF-8, a control character) a byte offset
 * instead of a mark: line and column are counted here the way libyaml counts them, in
 * characters, with CR LF, CR, LF, NEL, LS and PS each ending a line. */
static void offset_position(const struct ybuilder *b, size_t off, size_t *line, size_t *column)
{
	const unsigned char *s = (const unsigned char *)b->data;

	*line = 1;
	*column = 1;
	if (off > b->len)
		off = b->len;
	/* libyaml skips a UTF-8 byte order mark before it counts. */
	for (size_t i = b->len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0; i < off; i++) {
		bool brk = s[i] == '\n' ||
		           (s[i] == '\r' && (i + 1 >= b->len || s[i + 1] != '\n')) ||
		           (s[i] == 0xc2 && i + 1 < off && s[i + 1] == 0x85) ||
		           (s[i] == 0xe2 && i + 2 < off && s[i + 1] == 0x80 &&
		            (s[i + 2] == 0xa8 || s[i + 2] == 0xa9));
		if (brk) {
			(*line)++;
			*column = 1;
			i += s[i] == 0xc2 ? 1 : s[i] == 0xe2 ? 2 : 0;
		} else if ((s[i] & 0xc0) != 0x80 && s[i] != '\r') {
			(*column)++;
		}
	}
}

static int parser_error(struct ybuilder *b)
{
	const yaml_parser_t *p = &b->parser;
	const char *what = p->problem ? p->problem : "malformed YAML";
	size_t line, column;

	if (p->error == YAML_READER_ERROR) {
		offset_position(b, p->problem_offset, &line, &column);
		if (p->problem_value < 0)
			err_set(b->e, "%s:%zu:%zu: %s (the text must be UTF-8)", b->name, line,
			        column, what);
		else if (strstr(what, "octet") != NULL)
			err_set(b->e, "%s:%zu:%zu: %s 0x%02x (the text must be UTF-8)", b->name,
			        line, column, what, (unsigned)p->problem_value);
		else
			err_set(b->e, "%s:%zu:%zu: %s (U+%04X)", b->name, line, column, what,
			        (unsigned)p->problem_value);
	} else if (p->context != NULL) {
		err_set(b->e, "%s:%zu:%zu: %s %s (line %zu)", b->name, p->problem_mark.line + 1,
		        p->problem_mark.column + 1, what, p->context, p->context_mark.line + 1);
	} else {
		err_set(b->e, "%s:%zu:%zu: %s", b->name, p->problem_mark.line + 1,
		        p->problem_mark.column + 1, what);
	}
	return -1;
}

static int next_event(struct ybuilder *b, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&b->parser, ev))
		return parser_error(b);
	return 0;
}

static int build_node(struct ybuilder *b, yaml_event_t *ev, struct ynode **out);

/* A key and its place in its mapping, for check_duplicates(). */
struct keyref {
	const struct ynode *key;
	size_t index;
};

static bool same_key(const struct ynode *a, const struct ynode *b)
{
	return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

static int keyref_cmp(const void *pa, const void *pb)
{
	const struct keyref *a = pa, *b = pb;
	size_t n = a->key->len < b->key->len ? a->key->len : b->key->len;
	int c = memcmp(a->key->str, b->key->str, n);

	if (c != 0)
		return c;
	if (a->key->len != b->key->len)
		return a->key->len < b->key->len ? -1 : 1;
	/* Equal keys stay in document order: each run starts with the first occurrence. */
	return a->index < b->index ? -1 : a->index > b->index;
}

/* Duplicate keys, found by sorting the keys rather than comparing each with all the others:
 * a mapping of many keys must not take quadratic time. Of several duplicates, the one that
 * comes first in the document is reported. */
static int check_duplicates(struct ybuilder *b, const struct ynode *n)
{
	struct keyref *r;
	size_t run = 0, dup = 0, first = 0;

	if (n->count < 2)
		return 0;
	r = xmalloc(n->count * sizeof(*r));
	for (size_t i = 0; i < n->count; i++) {
		r[i].key = n->keys[i];
		r[i].index = i;
	}
	qsort(r, n->count, sizeof(*r), keyref_cmp);
	for (size_t i = 1; i < n->count; i++) {
		if (!same_key(r[i].key, r[run].key)) {
			run = i;
			continue;
		}
		/* The second of a run is the first repetition of that key. */
		if (i == run + 1 && (dup == 0 || r[i].index < r[dup].index)) {
			dup = i;
			first = run;
		}
	}
	if (dup > 0)
		err_set(b->e, "%s:%u:%u: duplicate key '%s' (first at line %u)", b->name,
		        r[dup].key->line, r[dup].key->column, r[dup].key->str, r[first].key->line);
	free(r);
	return dup > 0 ? -1 : 0;
}

/* NOLINTNEXTLINE(misc-no-recursion): b->depth stops at YTREE_MAX_DEPTH */
static int build_children(struct ybuilder *b, struct ynode *n, yaml_event_type_t end)
{
	for (;;) {
		yaml_event_t ev;
		struct ynode *key = NULL, *value = NULL;

		if (next_event(b, &ev) < 0)
			return -1;
		if (ev.type == end) {
			yaml_event_delete(&ev);
			return n->kind == YNODE_MAP ? check_duplicates(b, n) : 0;
		}
		if (build_node(b, &ev, n->kind == YNODE_MAP ? &key : &value) < 0)
			return -1;
		if (n->kind == YNODE_MAP) {
			if (key->kind != YNODE_SCALAR) {
				err_set(b->e,
				        "%s:%u:%u: a mapping key must be a plain string, not a %s",
				        b->name, key->line, key->column,
				        ynode_kind_name(key->kind));
				ynode_free(key);
				return -1;
			}
			if (next_event(b, &ev) < 0) {
				ynode_free(key);
				return -1;
			}
			if (build_node(b, &ev, &value) < 0) {
				ynode_free(key);
				return -1;
			}
		}
		node_push(n, key, value);
	}
}

/* Consumes ev (deletes it) and builds the node it starts. */
/* NOLINTNEXTLINE(misc-no-recursion): b->depth stops at YTREE_MAX_DEPTH */
static int build_node(struct ybuilder *b, yaml_event_t *ev, struct ynode **out)
{
	struct ynode *n;
	int rc = 0;

	*out = NULL;
	if ((ev->type == YAML_SCALAR_EVENT || ev->type == YAML_MAPPING_START_EVENT ||
	     ev->type == YAML_SEQUENCE_START_EVENT) &&
	    ++b->nodes > YTREE_MAX_NODES) {
		err_set(b->e, "%s:%zu:%zu: more than %d values (keys, values and list items)",
		        b->name, ev->start_mark.line + 1, ev->start_mark.column + 1,
		        YTREE_MAX_NODES);
		yaml_event_delete(ev);
		return -1;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		n = node_new(YNODE_SCALAR, &ev->start_mark);
		n->str = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
		n->len = ev->data.scalar.length;
		n->plain = ev->data.scalar.plain_implicit &&
		           ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		/* libyaml frees its copy without wiping it, and it may be a password. */
		explicit_bzero(ev->data.scalar.value, ev->data.scalar.length);
		*out = n;
		break;
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT:
		if (b->depth >= YTREE_MAX_DEPTH) {
			err_set(b->e, "%s:%zu:%zu: nested deeper than %d levels", b->name,
			        ev->start_mark.line + 1, ev->start_mark.column + 1,
			        YTREE_MAX_DEPTH);
			rc = -1;
			break;
		}
		n = node_new(ev->type == YAML_MAPPING_START_EVENT ? YNODE_MAP : YNODE_SEQ,
		             &ev->start_mark);
		b->depth++;
		rc = build_children(b, n,
		                    ev->type == YAML_MAPPING_START_EVENT ? YAML_MAPPING_END_EVENT
		                                                         : YAML_SEQUENCE_END_EVENT);
		b->depth--;
		if (rc < 0)
			ynode_free(n);
		else
			*out = n;
		break;
	case YAML_ALIAS_EVENT:
		err_set(b->e, "%s:%zu:%zu: YAML aliases (*%s) are not supported", b->name,
		        ev->start_mark.line + 1, ev->start_mark.column + 1,
		        (const char *)ev->data.alias.anchor);
		rc = -1;
		break;
	default:
		err_set(b->e, "%s:%zu:%zu: unexpected YAML event", b->name, ev->start_mark.line + 1,
		        ev->start_mark.column + 1);
		rc = -1;
		break;
	}
	yaml_event_delete(ev);
	return rc;
}

int ytree_parse(const char *data, size_t len, const char *name, struct ynode **out, struct err *e)
{
	struct ybuilder b = {.name = name, .data = data, .len = len, .e = e};
	struct ynode *root = NULL;
	yaml_event_t ev;
	int rc = -1;

	*out = NULL;
	/* UTF-8 only: libyaml would take a text that starts with a UTF-16 byte order mark for
	 * UTF-16. (Telling it UTF-8 instead would make it keep a UTF-8 byte order mark.) */
	if (len >= 2 && (((unsigned char)data[0] == 0xff && (unsigned char)data[1] == 0xfe) ||
	                 ((unsigned char)data[0] == 0xfe && (unsigned char)data[1] == 0xff))) {
		err_set(e,
		        "%s:1:1: a UTF-16 byte order mark (0x%02x 0x%02x): the text must be UTF-8",
		        name, (unsigned char)data[0], (unsigned char)data[1]);
		return -1;
	}
	if (!yaml_parser_initialize(&b.parser)) {
		err_set(e, "%s: cannot initialise the YAML parser", name);
		return -1;
	}
	yaml_parser_set_input_string(&b.parser, (const unsigned char *)data, len);
	if (next_event(&b, &ev) < 0) /* STREAM-START */
		goto out;
	yaml_event_delete(&ev);
	if (next_event(&b, &ev) < 0)
		goto out;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		root = node_new(YNODE_MAP, NULL);
		root->line = root->column = 1;
		rc = 0;
		goto out;
	}
	yaml_event_delete(&ev); /* DOCUMENT-START */
	if (next_event(&b, &ev) < 0)
		goto out;
	if (build_node(&b, &ev, &root) < 0)
		goto out;
	if (next_event(&b, &ev) < 0) /* DOCUMENT-END */
		goto out;
	yaml_event_delete(&ev);
	if (next_event(&b, &ev) < 0)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT) {
		err_set(e, "%s:%zu:%zu: only one YAML document is allowed", name,
		        ev.start_mark.line + 1, ev.start_mark.column + 1);
		yaml_event_delete(&ev);
		goto out;
	}
	yaml_event_delete(&ev);
	if (root->kind == YNODE_SCALAR && root->plain && ynode_is_null(root)) {
		ynode_free(root);
		root = node_new(YNODE_MAP, NULL);
		root->line = root->column = 1;
	}
	rc = 0;
out:
	yaml_parser_delete(&b.parser);
	if (rc < 0) {
		ynode_free(root);
		root = NULL;
	}
	*out = root;
	return rc;
}

int ytree_parse_file(const char *path, size_t max_size, struct ynode **out, struct err *e)
{
	struct stat st;
	char *b = NULL;
	size_t cap = 0, len = 0;
	int fd, rc = -1;

	*out = NULL;
	/* O_NONBLOCK: a FIFO in the file's place must not hang the program; it is refused below
	 * like any other file that is not regular. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, "%s: not a regular file", path);
		goto out;
	}
	if ((max_size > 0 && (uintmax_t)st.st_size > max_size) ||
	    (uintmax_t)st.st_size >= SIZE_MAX) {
		err_set(e, "%s: larger than the limit of %zu bytes", path, max_size);
		goto out;
	}
	/* One buffer of the size fstat gave, plus one byte to notice a file that grew meanwhile:
	 * the text may hold a password, and a buffer grown by realloc would leave copies of it
	 * in freed memory. */
	cap = (size_t)st.st_size + 1;
	b = xmalloc(cap);
	while (len < cap) {
		ssize_t n = read(fd, b + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == cap) {
		err_set(e, "%s: the file changed while it was read", path);
		goto out;
	}
	rc = ytree_parse(b, len, path, out, e);
out:
	close(fd);
	if (b != NULL) {
		explicit_bzero(b, cap);
		free(b);
	}
	return rc;
}

const struct ynode *ynode_get(const struct ynode *n, const char *key)
{
	size_t klen = strlen(key);

	if (n == NULL || n->kind != YNODE_MAP)
		return NULL;
	for (size_t i = 0; i < n->count; i++)
		if (n->keys[i]->len == klen && memcmp(n->keys[i]->str, key, klen) == 0)
			return n->values[i];
	return NULL;
}

const struct ynode *ynode_path(const struct ynode *n, const char *path)
{
	char part[YNODE_PATH_PART_MAX];
	const char *p = path;

	while (n != NULL) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		if (len >= sizeof(part))
			return NULL;
		memcpy(part, p, len);
		part[len] = '\0';
		n = ynode_get(n, part);
		if (dot == NULL)
			return n;
		p = dot + 1;
	}
	return NULL;
}

bool ynode_is_null(const struct ynode *n)
{
	if (n == NULL)
		return true;
	if (n->kind != YNODE_SCALAR || !n->plain)
		return false;
	return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
	       strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

int ynode_bool(const struct ynode *n)
{
	if (n == NULL || n->kind != YNODE_SCALAR || !n->plain)
		return -1;
	if (strcmp(n->str, "true") == 0 || strcmp(n->str, "True") == 0 ||
	    strcmp(n->str, "TRUE") == 0)
		return 1;
	if (strcmp(n->str, "false") == 0 || strcmp(n->str, "False") == 0 ||
	    strcmp(n->str, "FALSE") == 0)
		return 0;
	return -1;
}

struct ynode *ynode_new_map(void)
{
	return node_new(YNODE_MAP, NULL);
}

struct ynode *ynode_new_seq(void)
{
	return node_new(YNODE_SEQ, NULL);
}

struct ynode *ynode_new_scalar(const char *s, size_t len, bool plain)
{
	struct ynode *n = node_new(YNODE_SCALAR, NULL);

	n->str = xstrndup(s, len);
	n->len = len;
	n->plain = plain;
	return n;
}

void ynode_map_set(struct ynode *map, const char *key, struct ynode *value)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < map->count; i++) {
		if (map->keys[i]->len == klen && memcmp(map->keys[i]->str, key, klen) == 0) {
			ynode_free(map->values[i]);
			map->values[i] = value;
			return;
		}
	}
	node_push(map, ynode_new_scalar(key, klen, false), value);
}

void ynode_seq_add(struct ynode *seq, struct ynode *item)
{
	node_push(seq, NULL, item);
}

/* NOLINTNEXTLINE(misc-no-recursion): YTREE_MAX_DEPTH parsed, as many again by --set */
struct ynode *ynode_copy(const struct ynode *n)
{
	struct ynode *c = node_new(n->kind, NULL);

	c->line = n->line;
	c->column = n->column;
	c->plain = n->plain;
	if (n->str != NULL) {
		c->str = xstrndup(n->str, n->len);
		c->len = n->len;
	}
	for (size_t i = 0; i < n->count; i++)
		node_push(c, n->kind == YNODE_MAP ? ynode_copy(n->keys[i]) : NULL,
		          ynode_copy(n->values[i]));
	return c;
}

/* NOLINTNEXTLINE(misc-no-recursion): a tree is YTREE_MAX_DEPTH deep at most */
size_t ynode_count(const struct ynode *n)
{
	size_t c = 1;

	for (size_t i = 0; i < n->count; i++)
		c += (n->kind == YNODE_MAP ? 1 : 0) + ynode_count(n->values[i]);
	return c;
}

const char *ynode_kind_name(enum ynode_kind k)
{
	switch (k) {
	case YNODE_SCALAR:
		return "scalar";
	case YNODE_MAP:
		return "mapping";
	case YNODE_SEQ:
		return "list";
	}
	return "?";
}

#include "config.h"

#include "json.h"

#include <ctype.h>
#include <string.h>

/* The length of the well-formed UTF-8 sequence at p (1 to 4 bytes), or 0 when it is not
 * well-formed; then *bad is the length of its maximal subpart, which Unicode recommends to
 * replace by one U+FFFD (so "\xe2\x82" is one replacement, "\xc0\xaf" two). */
static size_t utf8_seq(const unsigned char *p, size_t n, size_t *bad)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
	} else if (c == 0xe0) {
		need = 2;
		lo = 0xa0; /* no overlong forms */
	} else if (c == 0xed) {
		need = 2;
		hi = 0x9f; /* no surrogates */
	} else if (c >= 0xe1 && c <= 0xef) {
		need = 2;
	} else if (c == 0xf0) {
		need = 3;
		lo = 0x90;
	} else if (c >= 0xf1 && c <= 0xf3) {
		need = 3;
	} else if (c == 0xf4) {
		need = 3;
		hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= n || p[i] < lo || p[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

static unsigned code_point(const unsigned char *p, size_t n)
{
	static const unsigned char lead_mask[] = {0x7f, 0x1f, 0x0f, 0x07};
	unsigned cp = p[0] & lead_mask[n - 1];

	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (p[i] & 0x3f);
	return cp;
}

/* Characters that JSON allows raw but a YAML reader does not take back as they were: libyaml
 * refuses the C1 controls and U+FFFE/U+FFFF, reads NEL, LS and PS as line breaks, and a BOM
 * is best not left inside text. Escaped, they survive the daemon's reading of the spool. */
static bool yaml_unsafe(const unsigned char *p, size_t n)
{
	unsigned cp;

	if (n == 1)
		return false;
	cp = code_point(p, n);
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff ||
	       cp == 0xfffe || cp == 0xffff;
}

void json_add_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	buf_addc(out, '"');
	while (i < len) {
		unsigned char c = p[i];
		size_t n, bad = 0;

		switch (c) {
		case '"':
			buf_adds(out, "\\\"");
			i++;
			continue;
		case '\\':
			buf_adds(out, "\\\\");
			i++;
			continue;
		case '\b':
			buf_adds(out, "\\b");
			i++;
			continue;
		case '\f':
			buf_adds(out, "\\f");
			i++;
			continue;
		case '\n':
			buf_adds(out, "\\n");
			i++;
			continue;
		case '\r':
			buf_adds(out, "\\r");
			i++;
			continue;
		case '\t':
			buf_adds(out, "\\t");
			i++;
			continue;
		default:
			break;
		}
		/* DEL is legal in JSON but as harmful as the C0 controls on a terminal. */
		if (c < 0x20 || c == 0x7f) {
			buf_printf(out, "\\u%04x", c);
			i++;
			continue;
		}
		n = utf8_seq(p + i, len - i, &bad);
		if (n == 0) {
			buf_adds(out, "\xef\xbf\xbd");
			i += bad;
			continue;
		}
		if (yaml_unsafe(p + i, n)) {
			buf_printf(out, "\\u%04x", code_point(p + i, n));
			i += n;
			continue;
		}
		buf_add(out, p + i, n);
		i += n;
	}
	buf_addc(out, '"');
}

size_t json_string_chars(const char *s, size_t len)
{
	struct buf b;
	size_t n = 0;

	buf_init(&b);
	json_add_string(&b, s, len);
	for (size_t i = 0; i < b.len; i++)
		if (((unsigned char)b.data[i] & 0xc0) != 0x80)
			n++;
	buf_free(&b);
	return n;
}

static size_t digits(const char *s, size_t i, size_t len)
{
	size_t start = i;

	while (i < len && isdigit((unsigned char)s[i]))
		i++;
	return i - start;
}

/* True when s is a number in JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * Each such text is also an int or a float of the YAML core schema, with the same value. */
static bool json_number(const char *s, size_t len)
{
	size_t i = 0, n;

	if (i < len && s[i] == '-')
		i++;
	n = digits(s, i, len);
	if (n == 0 || (n > 1 && s[i] == '0'))
		return false;
	i += n;
	if (i < len && s[i] == '.') {
		n = digits(s, i + 1, len);
		if (n == 0)
			return false;
		i += 1 + n;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		n = digits(s, i, len);
		if (n == 0)
			return false;
		i += n;
	}
	return i == len;
}

static void add_scalar(struct buf *out, const struct ynode *n)
{
	if (n->plain) {
		int b;
		if (ynode_is_null(n)) {
			buf_adds(out, "null");
			return;
		}
		b = ynode_bool(n);
		if (b >= 0) {
			buf_adds(out, b ? "true" : "false");
			return;
		}
		if (json_number(n->str, n->len)) {
			buf_add(out, n->str, n->len);
			return;
		}
	}
	json_add_string(out, n->str, n->len);
}

static void newline(struct buf *out, bool pretty, unsigned depth)
{
	if (!pretty)
		return;
	buf_addc(out, '\n');
	for (unsigned i = 0; i < depth; i++)
		buf_adds(out, "  ");
}

/* NOLINTNEXTLINE(misc-no-recursion): YTREE_MAX_DEPTH parsed, as many again by --set */
static void add_node(struct buf *out, const struct ynode *n, bool pretty, unsigned depth)
{
	bool map = n->kind == YNODE_MAP;

	if (n->kind == YNODE_SCALAR) {
		add_scalar(out, n);
		return;
	}
	buf_addc(out, map ? '{' : '[');
	for (size_t i = 0; i < n->count; i++) {
		if (i > 0)
			buf_addc(out, ',');
		newline(out, pretty, depth + 1);
		if (map) {
			/* Keys are strings whatever they look like: JSON has no other kind. */
			json_add_string(out, n->keys[i]->str, n->keys[i]->len);
			buf_adds(out, pretty ? ": " : ":");
		}
		add_node(out, n->values[i], pretty, depth + 1);
	}
	if (n->count > 0)
		newline(out, pretty, depth);
	buf_addc(out, map ? '}' : ']');
}

void json_add_node(struct buf *out, const struct ynode *n, bool pretty)
{
	add_node(out, n, pretty, 0);
}

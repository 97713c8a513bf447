#include "config.h"

#include <stdlib.h>
#include <time.h>

#include "buf.h"
#include "tap.h"
#include "yamltree.h"

static struct ynode *parse(const char *s, struct err *e)
{
	struct ynode *n = NULL;

	e->msg[0] = '\0';
	if (ytree_parse(s, strlen(s), "t.yaml", &n, e) < 0)
		return NULL;
	return n;
}

/* Parses len bytes (NULs included) and expects an error that contains want. */
static void refused(const char *s, size_t len, const char *want, const char *what)
{
	struct ynode *n = NULL;
	struct err e;

	e.msg[0] = '\0';
	if (ytree_parse(s, len, "t.yaml", &n, &e) == 0) {
		ok(0, "%s: refused", what);
		ynode_free(n);
		return;
	}
	if (!ok(strstr(e.msg, want) != NULL, "%s: %s", what, e.msg))
		diag("want: %s", want);
}

/* Input that is not UTF-8, or holds characters YAML does not allow: refused with the
 * position of the offending byte, counted in characters as libyaml counts its marks. */
static void test_bad_text(void)
{
	refused("a: 1\ntitle: ab\xff\n", 17, "t.yaml:2:10: invalid leading UTF-8 octet 0xff",
	        "byte 0xFF");
	refused("a: 1\ntitle: ab\xfe\n", 17, "t.yaml:2:10: invalid leading UTF-8 octet 0xfe",
	        "byte 0xFE");
	refused("\xff\xfe"
	        "a\0:\0 \0b\0\n\0",
	        14, "t.yaml:1:1: a UTF-16 byte order mark (0xff 0xfe): the text must be UTF-8",
	        "a UTF-16 byte order mark");
	refused("\xfe\xff\0a\0:\0 \0b\0\n", 14,
	        "t.yaml:1:1: a UTF-16 byte order mark (0xfe 0xff): the text must be UTF-8",
	        "a UTF-16 big-endian byte order mark");
	{
		struct err e;
		struct ynode *n = parse("\xef\xbb\xbf"
		                        "a: 1\n",
		                        &e);
		ok(n != NULL && ynode_get(n, "a") != NULL,
		   "a UTF-8 byte order mark is taken and skipped (%s)", e.msg);
		ynode_free(n);
	}
	refused("x: \xc3\xa9\xc0\xaf\n", 8, "t.yaml:1:5: invalid length of a UTF-8 sequence",
	        "an overlong form (C0 AF for '/'), after a two-byte character");
	refused("\xef\xbb\xbf"
	        "x: \xff\n",
	        8, "t.yaml:1:4: invalid leading UTF-8 octet 0xff",
	        "after a UTF-8 byte order mark, columns count from after it");
	refused("x: \xe0\x80\xaf\n", 7, "t.yaml:1:4: invalid length of a UTF-8 sequence",
	        "an overlong three-byte form");
	refused("x: \xed\xa0\x80\n", 7, "t.yaml:1:4: invalid Unicode character (U+D800)",
	        "a surrogate in UTF-8");
	refused("x: 1\r\ny: 2\rz: \xe2\x82", 16, "t.yaml:3:4: incomplete UTF-8 octet sequence",
	        "a sequence cut by the end of the file, after CR LF and CR line ends");
	refused("x: \xe2\x82z\n", 7, "t.yaml:1:5: invalid trailing UTF-8 octet 0x7a",
	        "a sequence cut by an ASCII byte");
	refused("a: 1\nb: x\0y\n", 12, "t.yaml:2:5: control characters are not allowed (U+0000)",
	        "a NUL byte in the file");
	refused("a: \x1b[31m\n", 10, "t.yaml:1:4: control characters are not allowed (U+001B)",
	        "an ESC byte in the file");
	refused("a: 1\xc2\x85"
	        "b: \xef\xbf\xbf\n",
	        14, "t.yaml:2:4: control characters are not allowed (U+FFFF)",
	        "U+FFFF, on the line after a NEL (a line break for YAML)");
	refused("a: \"x\\ud800y\"\n", 14, "t.yaml:1:", "a surrogate escape in a quoted string");
	refused("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	        "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
	        160, "t.yaml:2:8: YAML aliases (*a) are not supported",
	        "billion laughs: refused at the first alias, before anything is expanded");
	{
		/* NUL and line breaks through escapes are values, kept whole with their length. */
		struct err e;
		struct ynode *n = parse("a: \"x\\0y\\r\\nz\\L\"\n", &e);
		const struct ynode *v = ynode_get(n, "a");
		ok(v != NULL && v->len == 9 && memcmp(v->str, "x\0y\r\nz\xe2\x80\xa8", 9) == 0,
		   "escaped NUL, CR, LF and LS are kept in the value, with its length");
		ynode_free(n);
	}
}

/* Documents built to be expensive: deep, wide, long. */
static void test_bounds(void)
{
	struct buf b;
	struct ynode *n;
	struct err e;

	buf_init(&b);
	buf_adds(&b, "a: ");
	for (int i = 0; i < 10000; i++)
		buf_addc(&b, '[');
	for (int i = 0; i < 10000; i++)
		buf_addc(&b, ']');
	refused(b.data, b.len, "t.yaml:1:67: nested deeper than 64 levels",
	        "10,000 levels of lists");
	buf_reset(&b);
	buf_adds(&b, "a: ");
	for (int i = 0; i < 10000; i++)
		buf_adds(&b, "{a: ");
	buf_adds(&b, "1");
	for (int i = 0; i < 10000; i++)
		buf_addc(&b, '}');
	refused(b.data, b.len, "t.yaml:1:256: nested deeper than 64 levels",
	        "10,000 levels of mappings");
	buf_reset(&b);
	for (int i = 0; i < 70; i++)
		buf_printf(&b, "%*sk:\n", 2 * i, "");
	refused(b.data, b.len, "t.yaml:65:129: nested deeper than 64 levels",
	        "block mappings nested 70 deep");

	/* 49,999 keys: 99,999 nodes with the root, within the limit; the sort finds the one
	 * duplicate, reported where it is, with its first occurrence. */
	buf_reset(&b);
	for (int i = 0; i < 49999; i++)
		buf_printf(&b, "k%d: %d\n", i, i);
	n = parse(b.data, &e);
	ok(n != NULL && n->count == 49999 && ynode_count(n) == 99999, "49,999 keys are read (%s)",
	   e.msg);
	ynode_free(n);
	b.len -= strlen("k49998: 49998\n");
	buf_adds(&b, "k7: again\n");
	refused(b.data, b.len, "t.yaml:49999:1: duplicate key 'k7' (first at line 8)",
	        "a duplicate after 49,998 keys");
	refused("b: 1\na: 2\nc: 3\na: 4\nb: 5\n", 25,
	        "t.yaml:4:1: duplicate key 'a' (first at line 2)",
	        "of two duplicates, the first in the document is reported");
	refused("{x: 1, y: 2, \"x\": 3}", 20, "t.yaml:1:14: duplicate key 'x' (first at line 1)",
	        "a duplicate in flow style, quoted");

	/* The node limit: 100,000 nodes in all. */
	buf_reset(&b);
	buf_adds(&b, "[0");
	for (int i = 1; i < 99999; i++)
		buf_adds(&b, ",0");
	buf_adds(&b, "]");
	n = parse(b.data, &e);
	ok(n != NULL && n->count == 99999 && ynode_count(n) == YTREE_MAX_NODES,
	   "a list of 99,999 items: 100,000 nodes, the limit, is read (%s)", e.msg);
	ynode_free(n);
	b.len--;
	buf_adds(&b, ",0]");
	refused(b.data, b.len,
	        "t.yaml:1:200000: more than 100000 values (keys, values and list items)",
	        "one node more is refused, at its position");
	buf_free(&b);
}

int main(void)
{
	struct err e;
	struct ynode *n;
	const struct ynode *v;

	n = parse("a: 1\nb:\n  c: [x, 'y', null]\n  d: \"q\"\n", &e);
	ok(n != NULL && n->kind == YNODE_MAP && n->count == 2, "mapping parsed");
	v = ynode_path(n, "b.c");
	ok(v != NULL && v->kind == YNODE_SEQ && v->count == 3, "nested list by dotted path");
	ok(v != NULL && v->line == 3 && v->column == 6, "position of the list is 3:6 (got %u:%u)",
	   v ? v->line : 0, v ? v->column : 0);
	ok(v != NULL && v->values[0]->plain && !v->values[1]->plain, "plain vs quoted scalars");
	ok(v != NULL && ynode_is_null(v->values[2]), "plain null");
	v = ynode_path(n, "b.d");
	ok(v != NULL && !v->plain && strcmp(v->str, "q") == 0, "quoted string");
	ok(ynode_path(n, "b.zz") == NULL && ynode_path(n, "a.b") == NULL, "missing paths are NULL");
	ynode_free(n);

	n = parse("{\"json\": true, \"n\": [1, 2]}", &e);
	ok(n != NULL && ynode_bool(ynode_get(n, "json")) == 1, "JSON input");
	ynode_free(n);

	n = parse("", &e);
	ok(n != NULL && n->kind == YNODE_MAP && n->count == 0, "empty document is an empty map");
	ynode_free(n);

	n = parse("a: 1\na: 2\n", &e);
	ok(n == NULL && strstr(e.msg, "t.yaml:2:1: duplicate key 'a'") != NULL, "duplicate key: %s",
	   e.msg);

	n = parse("\"a\\nb\\tc\": 1\n\"a\\nb\\tc\": 2\n", &e);
	is_str(n == NULL ? e.msg : NULL, "t.yaml:2:1: duplicate key 'a\\nb\\tc' (first at line 1)",
	       "a duplicate key is quoted with its control characters escaped: one line");

	n = parse("a: 1\nb: 2\nc: 3\nb: 4\na: 5\n", &e);
	is_str(n == NULL ? e.msg : NULL, "t.yaml:4:1: duplicate key 'b' (first at line 2)",
	       "of several duplicates, the first a reader meets is reported");
	n = parse("x: {k: 1, k: 2, k: 3}\n", &e);
	is_str(n == NULL ? e.msg : NULL, "t.yaml:1:11: duplicate key 'k' (first at line 1)",
	       "a key three times: its second place");
	n = parse("a: 1\nab: 2\nb: 3\n\"a\": 4\n", &e);
	is_str(n == NULL ? e.msg : NULL, "t.yaml:4:1: duplicate key 'a' (first at line 1)",
	       "a quoted key repeats a plain one");
	{
		/* Many keys, as many as the node limit allows: comparing each key with those before
		 * it took about 5 s of CPU for this many (quadratic); sorting takes a few ms. */
		struct buf y;
		clock_t start;
		double cpu;

		buf_init(&y);
		for (int i = 0; i < 49000; i++)
			buf_printf(&y, "k%d: %d\n", i, i);
		start = clock();
		n = NULL;
		ok(ytree_parse(y.data, y.len, "t.yaml", &n, &e) == 0 && n->count == 49000,
		   "49,000 keys parse");
		ynode_free(n);
		buf_adds(&y, "k0: again\n");
		ok(ytree_parse(y.data, y.len, "t.yaml", &n, &e) < 0 &&
		       strcmp(e.msg, "t.yaml:49001:1: duplicate key 'k0' (first at line 1)") == 0,
		   "... and the last one repeating the first is found: %s", e.msg);
		cpu = (double)(clock() - start) / CLOCKS_PER_SEC;
		ok(cpu < 3, "both within 3 s of CPU, not quadratic (%.2f s)", cpu);
		buf_free(&y);
	}

	n = parse("a: &x [1]\nb: *x\n", &e);
	ok(n == NULL && strstr(e.msg, "t.yaml:2:4") != NULL && strstr(e.msg, "alias") != NULL,
	   "aliases refused with position: %s", e.msg);

	n = parse("a: [1, 2\nb: 3\n", &e);
	ok(n == NULL && strncmp(e.msg, "t.yaml:", 7) == 0, "syntax error with position: %s", e.msg);

	n = parse("a: 1\n---\nb: 2\n", &e);
	ok(n == NULL && strstr(e.msg, "one YAML document") != NULL, "several documents refused");

	{
		char deep[1000];
		size_t i;
		for (i = 0; i < 200; i++)
			deep[i] = '[';
		deep[i] = '\0';
		n = parse(deep, &e);
		ok(n == NULL && strstr(e.msg, "nested deeper") != NULL, "deep nesting bounded: %s",
		   e.msg);
	}

	n = parse("? [a]\n: 1\n", &e);
	ok(n == NULL && strstr(e.msg, "key must be") != NULL, "complex keys refused");

	n = ynode_new_map();
	ynode_map_set(n, "k", ynode_new_scalar("v1", 2, false));
	ynode_map_set(n, "k", ynode_new_scalar("v2", 2, false));
	ok(n->count == 1 && strcmp(ynode_get(n, "k")->str, "v2") == 0, "map_set replaces");
	{
		struct ynode *c = ynode_copy(n);
		ok(c->count == 1 && strcmp(ynode_get(c, "k")->str, "v2") == 0, "copy");
		ynode_free(c);
	}
	ynode_free(n);

	test_bad_text();
	test_bounds();

	ok(ytree_parse_file("/nonexistent/x.yaml", 0, &n, &e) < 0 &&
	       strstr(e.msg, "/nonexistent/x.yaml") != NULL,
	   "missing file names the path");
	return done_testing();
}

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
		/* Many keys: comparing each with those before it took minutes for this many. */
		struct buf y;
		clock_t start;
		double cpu;

		buf_init(&y);
		for (int i = 0; i < 200000; i++)
			buf_printf(&y, "k%d: %d\n", i, i);
		start = clock();
		n = NULL;
		ok(ytree_parse(y.data, y.len, "t.yaml", &n, &e) == 0 && n->count == 200000,
		   "200,000 keys parse");
		ynode_free(n);
		buf_adds(&y, "k0: again\n");
		ok(ytree_parse(y.data, y.len, "t.yaml", &n, &e) < 0 &&
		       strcmp(e.msg, "t.yaml:200001:1: duplicate key 'k0' (first at line 1)") == 0,
		   "... and the last one repeating the first is found: %s", e.msg);
		cpu = (double)(clock() - start) / CLOCKS_PER_SEC;
		ok(cpu < 20, "both within 20 s of CPU, not quadratic (%.2f s)", cpu);
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

	ok(ytree_parse_file("/nonexistent/x.yaml", 0, &n, &e) < 0 &&
	       strstr(e.msg, "/nonexistent/x.yaml") != NULL,
	   "missing file names the path");
	return done_testing();
}

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "json.h"
#include "tap.h"
#include "yamltree.h"

#define PYTHON "/usr/bin/python3"

static char *str_json(const char *s, size_t len)
{
	struct buf b;

	buf_init(&b);
	json_add_string(&b, s, len);
	return buf_steal(&b);
}

static char *node_json(const struct ynode *n, bool pretty)
{
	struct buf b;

	buf_init(&b);
	json_add_node(&b, n, pretty);
	return buf_steal(&b);
}

/* The YAML text yaml, parsed and written as compact JSON; NULL when it does not parse. */
static char *yaml_json(const char *yaml)
{
	struct ynode *n;
	struct err e;
	char *s;

	if (ytree_parse(yaml, strlen(yaml), "t.yaml", &n, &e) < 0) {
		diag("%s", e.msg);
		return NULL;
	}
	s = node_json(n, false);
	ynode_free(n);
	return s;
}

/* Equal trees, where the core schema's spellings of null and of a boolean are equal. */
/* NOLINTNEXTLINE(misc-no-recursion): parsed trees: YTREE_MAX_DEPTH */
static bool same_tree(const struct ynode *a, const struct ynode *b)
{
	if (a->kind != b->kind || a->count != b->count)
		return false;
	if (a->kind == YNODE_SCALAR && a->plain && b->plain && ynode_is_null(a))
		return ynode_is_null(b);
	if (a->kind == YNODE_SCALAR && a->plain && b->plain && ynode_bool(a) >= 0)
		return ynode_bool(a) == ynode_bool(b);
	if (a->kind == YNODE_SCALAR)
		return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
	for (size_t i = 0; i < a->count; i++) {
		if (a->kind == YNODE_MAP && !same_tree(a->keys[i], b->keys[i]))
			return false;
		if (!same_tree(a->values[i], b->values[i]))
			return false;
	}
	return true;
}

/* What Python's json module makes of text, written back by it with sorted keys and ASCII
 * escapes: an independent reading. NULL when Python refuses the text or cannot run. */
static char *python_reads(const char *text)
{
	const char *tmpdir = getenv("TMPDIR");
	char path[512];
	char cmd[1024];
	char line[4096];
	struct buf out;
	FILE *f;
	int fd, status;

	snprintf(path, sizeof(path), "%s/test_json.XXXXXX",
	         tmpdir != NULL && tmpdir[0] == '/' && strchr(tmpdir, '\'') == NULL ? tmpdir
	                                                                            : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(path);
		return NULL;
	}
	fputs(text, f);
	if (fclose(f) != 0) {
		unlink(path);
		return NULL;
	}
	snprintf(cmd, sizeof(cmd),
	         PYTHON " -c 'import json,sys; d=json.load(sys.stdin); "
	                "print(json.dumps(d, sort_keys=True, ensure_ascii=True))' <'%s'",
	         path);
	/* NOLINTNEXTLINE(cert-env33-c): the command is the test's own, the path a mkstemp one */
	f = popen(cmd, "r");
	if (f == NULL) {
		unlink(path);
		return NULL;
	}
	buf_init(&out);
	while (fgets(line, sizeof(line), f) != NULL)
		buf_adds(&out, line);
	status = pclose(f);
	unlink(path);
	if (status != 0) {
		buf_free(&out);
		return NULL;
	}
	if (out.len > 0 && out.data[out.len - 1] == '\n')
		out.data[--out.len] = '\0';
	return buf_steal(&out);
}

static void test_strings(void)
{
	char *s;

	s = str_json("plain text", 10);
	is_str(s, "\"plain text\"", "a plain string is quoted");
	free(s);
	s = str_json("q\"b\\s/", 6);
	is_str(s, "\"q\\\"b\\\\s/\"", "quote and backslash escaped, slash left");
	free(s);
	s = str_json("\b\f\n\r\t", 5);
	is_str(s, "\"\\b\\f\\n\\r\\t\"", "short escapes for BS, FF, LF, CR, TAB");
	free(s);
	s = str_json("a\x01z\x1f\x7f", 5);
	is_str(s, "\"a\\u0001z\\u001f\\u007f\"", "other control characters and DEL as \\u00XX");
	free(s);
	s = str_json("a\0b", 3);
	is_str(s, "\"a\\u0000b\"", "NUL inside the string");
	free(s);
	s = str_json("", 0);
	is_str(s, "\"\"", "empty string");
	free(s);
	ok(json_string_chars("ab", 2) == 4 && json_string_chars("a\x01", 2) == 9 &&
	       json_string_chars("\xc3\xa9\xe2\x82\xac", 5) == 4 && json_string_chars("\"", 1) == 4,
	   "json_string_chars counts the characters written, quotes and escapes included");
}

static void test_utf8(void)
{
	char *s;

	s = str_json("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
	is_str(s, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
	       "valid UTF-8 (2, 3, 4 bytes) kept as is");
	free(s);
	s = str_json("a\xff"
	             "b",
	             3);
	is_str(s,
	       "\"a\xef\xbf\xbd"
	       "b\"",
	       "a stray 0xff becomes U+FFFD");
	free(s);
	s = str_json("\xe2\x82", 2);
	is_str(s, "\"\xef\xbf\xbd\"", "a truncated sequence at the end is one U+FFFD");
	free(s);
	s = str_json("\xe2\x82x", 3);
	is_str(s, "\"\xef\xbf\xbdx\"", "a truncated sequence before ASCII is one U+FFFD");
	free(s);
	s = str_json("\xc0\xaf", 2);
	is_str(s, "\"\xef\xbf\xbd\xef\xbf\xbd\"", "an overlong form is refused byte by byte");
	free(s);
	s = str_json("\xed\xa0\x80", 3);
	is_str(s, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", "an encoded surrogate is refused");
	free(s);
	s = str_json("\xf4\x90\x80\x80", 4);
	is_str(s, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"",
	       "a code point above U+10FFFF is refused");
	free(s);
	s = str_json("\xc2\x85\xc2\x9f\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf\xef\xbf\xbe\xef\xbf\xbf",
	             19);
	is_str(s, "\"\\u0085\\u009f\\u2028\\u2029\\ufeff\\ufffe\\uffff\"",
	       "C1 controls, LS, PS, BOM and U+FFFE/U+FFFF escaped for YAML readers");
	free(s);
	s = str_json("\x80", 1);
	is_str(s, "\"\xef\xbf\xbd\"", "a lone continuation byte becomes U+FFFD");
	free(s);
}

static void test_scalars(void)
{
	char *s;

	s = yaml_json("[1, -2, 0, -0, 1.5, -2.5e3, 1E+5, 3e-2]");
	is_str(s, "[1,-2,0,-0,1.5,-2.5e3,1E+5,3e-2]", "plain numbers in JSON's form stay numbers");
	free(s);
	s = yaml_json("[0123, +1, .5, 1., 0x1f, 0o17, .inf, -.inf, .nan, 1_000, 12abc]");
	is_str(s,
	       "[\"0123\",\"+1\",\".5\",\"1.\",\"0x1f\",\"0o17\",\".inf\",\"-.inf\",\".nan\","
	       "\"1_000\",\"12abc\"]",
	       "numbers JSON cannot write unchanged stay strings, text kept");
	free(s);
	s = yaml_json("[true, false, True, FALSE, yes, no, on]");
	is_str(s, "[true,false,true,false,\"yes\",\"no\",\"on\"]",
	       "core schema booleans; YAML 1.1 yes/no/on are strings");
	free(s);
	s = yaml_json("- ~\n- null\n- Null\n- NULL\n-\n- nil\n");
	is_str(s, "[null,null,null,null,null,\"nil\"]", "core schema nulls, the empty one too");
	free(s);
	s = yaml_json("['1', \"true\", 'null', \"~\", '']");
	is_str(s, "[\"1\",\"true\",\"null\",\"~\",\"\"]", "quoted scalars are always strings");
	free(s);
	s = yaml_json("{1: a, true: b, null: c}");
	is_str(s, "{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\"}", "keys are always strings");
	free(s);
	s = yaml_json("a: !!str 1\nb: !!int 2\n");
	is_str(s, "{\"a\":\"1\",\"b\":\"2\"}", "tagged scalars are strings");
	free(s);
}

static void test_nesting(void)
{
	struct ynode *n;
	struct err e;
	const char *yaml = "title: Disk full\n"
	                   "labels:\n"
	                   "  team: db\n"
	                   "  hosts: [db1, db2]\n"
	                   "empty_map: {}\n"
	                   "empty_list: []\n"
	                   "deep: [[1, [2, {x: [3]}]]]\n";
	char *s;

	s = yaml_json(yaml);
	is_str(s,
	       "{\"title\":\"Disk full\",\"labels\":{\"team\":\"db\",\"hosts\":[\"db1\",\"db2\"]},"
	       "\"empty_map\":{},\"empty_list\":[],\"deep\":[[1,[2,{\"x\":[3]}]]]}",
	       "nested mappings and lists, empty ones, compact");
	free(s);
	if (ytree_parse(yaml, strlen(yaml), "t.yaml", &n, &e) < 0) {
		ok(0, "parse: %s", e.msg);
		return;
	}
	s = node_json(n, true);
	is_str(s,
	       "{\n"
	       "  \"title\": \"Disk full\",\n"
	       "  \"labels\": {\n"
	       "    \"team\": \"db\",\n"
	       "    \"hosts\": [\n"
	       "      \"db1\",\n"
	       "      \"db2\"\n"
	       "    ]\n"
	       "  },\n"
	       "  \"empty_map\": {},\n"
	       "  \"empty_list\": [],\n"
	       "  \"deep\": [\n"
	       "    [\n"
	       "      1,\n"
	       "      [\n"
	       "        2,\n"
	       "        {\n"
	       "          \"x\": [\n"
	       "            3\n"
	       "          ]\n"
	       "        }\n"
	       "      ]\n"
	       "    ]\n"
	       "  ]\n"
	       "}",
	       "the same, pretty: two spaces per level");
	free(s);
	ynode_free(n);

	n = ynode_new_scalar("solo", 4, false);
	s = node_json(n, true);
	is_str(s, "\"solo\"", "a scalar alone");
	free(s);
	ynode_free(n);
}

/* Whatever the input, the output is JSON that ytree_parse reads back to the same tree, and
 * (where Python is installed) that Python's json module reads as meant. */
static void test_readers(void)
{
	const char *yaml = "id: \"a\\\"b\\\\c\\u0001\\u007f\\t\"\n"
	                   "bad: \"x\\xff\\xe2\\x82y\"\n"
	                   "nul: \"a\\0b\"\n"
	                   "n: [1, -2.5e3, 0123, true, ~, '1']\n"
	                   "utf8: \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"\n"
	                   "nested: {a: [{b: {}}, []]}\n";
	struct ynode *n, *back;
	struct err e;
	char *compact, *pretty;

	if (ytree_parse(yaml, strlen(yaml), "t.yaml", &n, &e) < 0) {
		ok(0, "parse: %s", e.msg);
		return;
	}
	compact = node_json(n, false);
	pretty = node_json(n, true);
	if (!ok(ytree_parse(compact, strlen(compact), "out.json", &back, &e) == 0,
	        "ytree_parse reads the compact output"))
		diag("%s\n%s", e.msg, compact);
	if (back != NULL) {
		char *again;
		ok(same_tree(n, back), "... as the same tree");
		again = node_json(back, false);
		is_str(again, compact, "... and writes it again the same");
		free(again);
		ynode_free(back);
	}
	if (!ok(ytree_parse(pretty, strlen(pretty), "out.json", &back, &e) == 0,
	        "ytree_parse reads the pretty output"))
		diag("%s", e.msg);
	if (back != NULL) {
		ok(same_tree(n, back), "... as the same tree");
		ynode_free(back);
	}

	if (access(PYTHON, X_OK) != 0) {
		ok(1, "# SKIP " PYTHON " is not installed");
		ok(1, "# SKIP " PYTHON " is not installed");
		ok(1, "# SKIP " PYTHON " is not installed");
	} else {
		const char *want =
		    "{\"bad\": \"x\\u00ff\\u00e2\\u0082y\", "
		    "\"id\": \"a\\\"b\\\\c\\u0001\\u007f\\t\", "
		    "\"n\": [1, -2500.0, \"0123\", true, null, \"1\"], "
		    "\"nested\": {\"a\": [{\"b\": {}}, []]}, \"nul\": \"a\\u0000b\", "
		    "\"utf8\": \"\\u00e9\\u20ac\\ud83d\\ude00\"}";
		char raw[] = {'{',        '"',        'r',        '"', ':', '"', 'a',
		              (char)0xff, (char)0xc0, (char)0xaf, 'b', '"', '}', '\0'};
		char *py = python_reads(compact);
		is_str(py, want, "Python reads the compact output as meant");
		free(py);
		py = python_reads(pretty);
		is_str(py, want, "Python reads the pretty output as meant");
		free(py);
		/* A string that no YAML parser would hand over: raw invalid bytes. */
		ynode_map_set(n, "raw", ynode_new_scalar(raw, strlen(raw), false));
		free(compact);
		compact = node_json(ynode_get(n, "raw"), false);
		py = python_reads(compact);
		is_str(py, "\"{\\\"r\\\":\\\"a\\ufffd\\ufffd\\ufffdb\\\"}\"",
		       "Python reads invalid UTF-8 as U+FFFD");
		free(py);
	}
	free(compact);
	free(pretty);
	ynode_free(n);
}

int main(void)
{
	test_strings();
	test_utf8();
	test_scalars();
	test_nesting();
	test_readers();
	return done_testing();
}

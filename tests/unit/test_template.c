/* Unit tests of the template module beyond the Mustache spec: escaping, truthiness, limits,
 * error positions, partials compiled in advance. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tap.h"
#include "template.h"
#include "yamltree.h"

static struct ynode *yaml(const char *text)
{
	struct ynode *n;
	struct err e = {{0}};

	if (ytree_parse(text, strlen(text), "data", &n, &e) < 0) {
		diag("bad test data: %s", e.msg);
		abort();
	}
	return n;
}

/* Partials for tmpl_render come from a YAML mapping of name to source. */
static int map_partial(void *ctx, const char *name, struct buf *src)
{
	const struct ynode *v = ynode_get(ctx, name);

	if (v == NULL || v->kind != YNODE_SCALAR)
		return -1;
	buf_add(src, v->str, v->len);
	return 0;
}

/* Compiles and renders; returns the output, or NULL with the error in e. */
static char *render_p(const char *src, const char *data, enum tmpl_escape esc, const char *partials,
                      struct err *e)
{
	struct ynode *d = data != NULL ? yaml(data) : NULL;
	struct ynode *p = partials != NULL ? yaml(partials) : NULL;
	struct tmpl_partials loader = {.load = map_partial, .ctx = p};
	struct tmpl *t = NULL;
	struct buf out;
	char *res = NULL;

	e->msg[0] = '\0';
	buf_init(&out);
	if (tmpl_compile(src, strlen(src), "t", &t, e) == 0 &&
	    tmpl_render(t, d, esc, p != NULL ? &loader : NULL, &out, e) == 0)
		res = buf_steal(&out);
	buf_free(&out);
	tmpl_free(t);
	ynode_free(d);
	ynode_free(p);
	return res;
}

static char *render(const char *src, const char *data, enum tmpl_escape esc, struct err *e)
{
	return render_p(src, data, esc, NULL, e);
}

static void check(const char *src, const char *data, enum tmpl_escape esc, const char *want,
                  const char *what)
{
	struct err e;
	char *got = render(src, data, esc, &e);

	is_str(got, want, "%s", what);
	if (got == NULL)
		diag("error: %s", e.msg);
	free(got);
}

/* Expects compiling or rendering to fail with an error that contains want. */
static void check_error_p(const char *src, const char *data, const char *partials, const char *want,
                          const char *what)
{
	struct err e;
	char *got = render_p(src, data, TMPL_ESCAPE_HTML, partials, &e);

	ok(got == NULL && strstr(e.msg, want) != NULL, "%s", what);
	if (got != NULL)
		diag("rendered instead: '%.200s'", got);
	else if (strstr(e.msg, want) == NULL)
		diag("error '%s' lacks '%s'", e.msg, want);
	free(got);
}

static void check_error(const char *src, const char *data, const char *want, const char *what)
{
	check_error_p(src, data, NULL, want, what);
}

static void test_escaping(void)
{
	const char *data = "x: 'a & b \"c\" <d> it''s'";

	check("{{x}}", data, TMPL_ESCAPE_HTML, "a &amp; b &quot;c&quot; &lt;d&gt; it&#39;s",
	      "html: & \" < > and ' are escaped");
	check("{{{x}}}|{{&x}}", data, TMPL_ESCAPE_HTML, "a & b \"c\" <d> it's|a & b \"c\" <d> it's",
	      "html: triple mustache and ampersand are not escaped");
	check("{{x}}", data, TMPL_ESCAPE_NONE, "a & b \"c\" <d> it's", "none: nothing is escaped");
	check("{{x}}={{{x}}}", "x: '<&>'", TMPL_ESCAPE_NONE, "<&>=<&>",
	      "none: {{x}} equals {{{x}}}");
	check("{{#l}}{{.}}{{/l}}", "l: ['<', \"'\"]", TMPL_ESCAPE_HTML, "&lt;&#39;",
	      "html: implicit iterator is escaped");
	check("<p>{{x}}</p>", "x: plain text", TMPL_ESCAPE_HTML, "<p>plain text</p>",
	      "html: template text itself is never escaped");
}

static void test_values(void)
{
	check("[{{missing}}]", "{}", TMPL_ESCAPE_HTML, "[]", "missing value renders empty");
	check("[{{missing}}]", NULL, TMPL_ESCAPE_HTML, "[]", "no data at all renders empty");
	check("[{{a.b.c}}]", "a: scalar", TMPL_ESCAPE_HTML, "[]", "dotted name through a scalar");
	check("[{{n}}|{{t}}|{{e}}]", "n: ~\nt: null\ne:", TMPL_ESCAPE_HTML, "[||]",
	      "YAML nulls render empty");
	check("[{{m}}|{{l}}]", "m: {a: 1}\nl: [1, 2]", TMPL_ESCAPE_HTML, "[|]",
	      "maps and lists interpolate as empty");
	check("{{n}} {{f}} {{q}} {{b}}", "n: 0\nf: 1.50\nq: 'x y'\nb: true", TMPL_ESCAPE_NONE,
	      "0 1.50 x y true", "scalars render as written");
	check("[{{#missing}}x{{/missing}}{{^missing}}y{{/missing}}]", "{}", TMPL_ESCAPE_HTML, "[y]",
	      "missing is falsey");
}

static void test_truthiness(void)
{
	static const struct {
		const char *data;
		const char *want;
	} cases[] = {
	    {"v: false", "no"},   {"v: False", "no"}, {"v: ~", "no"},        {"v: null", "no"},
	    {"v:", "no"},         {"v: []", "no"},    {"v: 'false'", "yes"}, {"v: \"\"", "yes"},
	    {"v: 0", "yes"},      {"v: true", "yes"}, {"v: {}", "yes"},      {"v: [0]", "yes"},
	    {"v: 'null'", "yes"}, {"v: text", "yes"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct err e;
		char *got =
		    render("{{#v}}yes{{/v}}{{^v}}no{{/v}}", cases[i].data, TMPL_ESCAPE_HTML, &e);
		is_str(got, cases[i].want, "truthiness of '%s'", cases[i].data);
		free(got);
	}
	check("{{#v}}<{{.}}>{{/v}}", "v: 0", TMPL_ESCAPE_HTML, "<0>",
	      "a truthy scalar section pushes itself");
}

static void test_sections(void)
{
	const char *data = "top: T\n"
	                   "alerts:\n"
	                   "  - name: a\n"
	                   "    labels: [{k: x, v: 1}, {k: y}]\n"
	                   "  - name: b\n"
	                   "    labels: []\n"
	                   "  - name: c\n";

	check("{{#alerts}}{{name}}:{{#labels}}{{k}}={{v}}{{top}},{{/labels}}"
	      "{{^labels}}none{{/labels}};{{/alerts}}",
	      data, TMPL_ESCAPE_HTML, "a:x=1T,y=T,;b:none;c:none;",
	      "nested sections over lists of maps, with outer lookups");
	check("{{#a}}{{#b}}{{c}}{{/b}}{{/a}}", "a: {b: {c: deep}}", TMPL_ESCAPE_HTML, "deep",
	      "nested map sections");
	check("{{#l}}{{#.}}({{.}}){{/.}}{{/l}}", "l: [[1, 2], [], [3]]", TMPL_ESCAPE_HTML,
	      "(1)(2)(3)", "implicit iterator over nested lists");
	check("{{#a}}{{b.c}}{{/a}}", "a: {b: {}}\nb: {c: ERROR}", TMPL_ESCAPE_HTML, "",
	      "dotted names resolve against the first part only");
	check("{{alertmail.hostname}}/{{#severity_is.critical}}red{{/severity_is.critical}}",
	      "alertmail: {hostname: mon1}\nseverity_is: {critical: true}", TMPL_ESCAPE_HTML,
	      "mon1/red", "dotted names in interpolation and sections");
	check("{{#severity_is.warning}}amber{{/severity_is.warning}}{{^severity_is.warning}}"
	      "other{{/severity_is.warning}}",
	      "severity_is: {critical: true}", TMPL_ESCAPE_HTML, "other",
	      "a dotted name missing its last part is falsey");
	check("a\n  {{#s}}\n  b\n  {{/s}}\nc\n", "s: true", TMPL_ESCAPE_HTML, "a\n  b\nc\n",
	      "standalone section lines vanish");
}

static void test_partials(void)
{
	struct err e;
	char *got;

	check_error_p("{{>self}}", "{}", "self: 'x{{>self}}'", "nested deeper than 32",
	              "self-recursive partial is an error, not a crash");
	check_error_p("{{>a}}", "{}", "a: '{{>b}}'\nb: '{{>a}}'", "b:1:1: partials nested deeper",
	              "mutually recursive partials: the error names the innermost tag");
	/* Leaves need their own empty list: a missing one would be found in the parent. */
	got = render_p(
	    "{{>node}}",
	    "{name: r, kids: [{name: a, kids: [{name: b, kids: []}]}, {name: c, kids: []}]}",
	    TMPL_ESCAPE_HTML, "node: '{{name}}({{#kids}}{{>node}}{{/kids}})'", &e);
	is_str(got, "r(a(b())c())", "recursion ended by the data works");
	free(got);
	got = render_p("<ul>\n  {{>item}}\n</ul>\n", "{}", TMPL_ESCAPE_HTML,
	               "item: \"<li>\\n  {{>inner}}\\n</li>\\n\"\ninner: \"one\\ntwo\\n\"", &e);
	is_str(got, "<ul>\n  <li>\n    one\n    two\n  </li>\n</ul>\n",
	       "standalone partial indentation adds up when nested");
	free(got);
	got = render_p("x {{>p}} y", "{}", TMPL_ESCAPE_HTML, "p: \"1\\n2\"", &e);
	is_str(got, "x 1\n2 y", "an inline partial is not indented");
	free(got);
	got = render_p("[{{>missing}}]", "{}", TMPL_ESCAPE_HTML, "{}", &e);
	is_str(got, "[]", "a missing partial renders empty");
	free(got);
	got = render("[{{>any}}]", "{}", TMPL_ESCAPE_HTML, &e);
	is_str(got, "[]", "no partial loader: partials render empty");
	free(got);
	check_error_p("ok\n{{>bad}}", "{}", "bad: \"fine\\n{{#x}}\"", "partial 'bad'",
	              "a partial that does not compile is named in the error");
	check_error_p("ok\n{{>bad}}", "{}", "bad: \"fine\\n{{#x}}\"",
	              "bad:2:1: unclosed section 'x'",
	              "the error gives the position inside the partial");
}

static void test_limits(void)
{
	struct buf src;

	/* 30 * 30 * 30 copies of a 1 KiB string is about 27 MB. */
	check_error(
	    "{{#l}}{{#l}}{{#l}}{{s}}{{/l}}{{/l}}{{/l}}",
	    "s: '"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "................................................................................"
	    "'\n"
	    "l: [1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10,1,2,3,4,5,6,7,8,9,10]",
	    "limit of 16777216 bytes", "output size is bounded");
	check_error("{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}"
	            "{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}",
	            "l: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]",
	            "more than 10000000 steps", "nested loops that output nothing still end");
	/* Loops with nothing inside: each turn counts, though it visits no node. */
	buf_init(&src);
	buf_adds(&src, "l: [");
	for (int i = 0; i < 1000; i++)
		buf_printf(&src, "%s%d", i > 0 ? "," : "", i);
	buf_adds(&src, "]");
	check_error("{{#l}}{{#l}}{{#l}}{{/l}}{{/l}}{{/l}}", src.data,
	            "t:1:13: rendering takes more "
	            "than 10000000 steps",
	            "empty loops inside each other (10^9 turns) are bounded");
	buf_free(&src);
	buf_init(&src);
	for (int i = 0; i < 101; i++)
		buf_adds(&src, "{{#a}}");
	check_error(src.data, "{}", "nested deeper than 100", "section nesting is bounded");
	buf_free(&src);

	/* Partials that each include the next twice: 2^30 renders of the last, unless bounded. */
	buf_init(&src);
	for (int i = 0; i < 30; i++)
		buf_printf(&src, "p%d: '{{>p%d}}{{>p%d}}'\n", i, i + 1, i + 1);
	buf_adds(&src, "p30: 'x'\n");
	check_error_p("{{>p0}}", "{}", src.data, "more than 10000000 steps",
	              "partials that double at each level are stopped by the step bound");
	buf_free(&src);
}

/* tmpl_render_within: several renders into one buffer share one bound. */
static void test_shared_bound(void)
{
	const char *src = "{{v}}{{v}}";
	struct ynode *d = yaml("v: '0123456789'");
	struct tmpl *t = NULL;
	struct buf out;
	struct err e;

	buf_init(&out);
	if (!ok(tmpl_compile(src, strlen(src), "t", &t, &e) == 0, "compile for the shared bound")) {
		ynode_free(d);
		return;
	}
	ok(tmpl_render_within(t, d, TMPL_ESCAPE_NONE, NULL, 25, &out, &e) == 0 && out.len == 20,
	   "20 bytes within a bound of 25");
	ok(tmpl_render_within(t, d, TMPL_ESCAPE_NONE, NULL, 25, &out, &e) < 0 && out.len == 20 &&
	       strcmp(out.data + 10, "0123456789") == 0 &&
	       strstr(e.msg, "t:1:1: the output grows beyond the limit of 25 bytes") != NULL,
	   "a second render that would pass the shared bound fails and adds nothing: %s", e.msg);
	buf_reset(&out);
	ok(tmpl_render(t, d, TMPL_ESCAPE_NONE, NULL, &out, &e) == 0 && out.len == 20,
	   "tmpl_render has the bound of TMPL_MAX_OUTPUT of its own");
	buf_free(&out);
	tmpl_free(t);
	ynode_free(d);
}

static void test_errors(void)
{
	check_error("Hello {{name", "{}", "t:1:7: unclosed tag: expected '}}'", "unclosed tag");
	check_error("a\nb {{{x}}\n", "{}", "t:2:3: unclosed tag: expected '}}}'",
	            "unclosed triple mustache");
	check_error("a\n\n  {{#sec}}x\n", "{}", "t:3:3: unclosed section 'sec': expected {{/sec}}",
	            "unclosed section names where it opened");
	check_error("{{#a}}\n{{#b}}\n{{/a}}\n{{/b}}", "{}",
	            "t:3:1: expected the end of section 'b' (opened at 2:1), found 'a'",
	            "sections closed in the wrong order");
	check_error("x {{/a}}", "{}", "t:1:3: unexpected end of section 'a'",
	            "end without a section");
	check_error("{{}}", "{}", "t:1:1: expected a name", "empty tag");
	check_error("{{ a b }}", "{}", "expected one name in the tag, found 'a b'", "two names");
	check_error("{{a..b}}", "{}", "expected a name between the dots", "empty dotted part");
	check_error("{{#a.}}{{/a.}}", "{}", "expected a name between the dots", "trailing dot");
	check_error("{{>}}", "{}", "expected a partial name", "empty partial tag");
	check_error("{{ a\nb }}", "{}", "t:1:1: expected one name in the tag, found 'a\\nb'",
	            "an error quoting the source escapes its line break: one line");
	check_error("{{#a\x01}}", "{}", "unclosed section 'a\\x01'",
	            "an unclosed section's name is escaped");
	check_error("x\n{{=<% %>}}", "{}", "t:2:1: unclosed tag: expected '=}}'",
	            "set delimiters without the closing '='");
	check_error("{{=<%=}}", "{}", "expected two delimiters",
	            "set delimiters with one delimiter");
	check_error("{{=<% %> !=}}", "{}", "expected two delimiters",
	            "set delimiters with three delimiters");
	check_error("{{= =}}", "{}", "expected two delimiters", "set delimiters with none");
	check_error("{{=<= =>=}}", "{}", "must not contain '='", "a delimiter containing '='");
	check_error("{{=<% %>=}}\n<%#a%>x<%/b%>", "{}", "t:2:8: expected the end of section 'a'",
	            "errors after a delimiter change");
	check_error("{{=<% %>=}}<%x", "{}", "unclosed tag: expected '%>'",
	            "unclosed tag with new delimiters names them");
	check("{{=<% %>=}}<%x%>{{x}}<%={{ }}=%>{{x}}", "x: 1", TMPL_ESCAPE_HTML, "1{{x}}1",
	      "delimiters can be changed back");
}

static void test_render_buffer(void)
{
	struct tmpl *t = NULL, *bad = NULL;
	struct ynode *d = yaml("x: 1");
	struct buf out;
	struct err e;
	const char *self = "{{>self}}";
	int rc;

	buf_init(&out);
	buf_adds(&out, "head:");
	rc = tmpl_compile("{{x}}", 5, "t", &t, &e);
	ok(rc == 0 && tmpl_render(t, d, TMPL_ESCAPE_HTML, NULL, &out, &e) == 0 &&
	       tmpl_render(t, d, TMPL_ESCAPE_HTML, NULL, &out, &e) == 0,
	   "a compiled template renders many times");
	is_str(out.data, "head:11", "rendering appends to the buffer");
	rc = tmpl_compile(self, strlen(self), "loop", &bad, &e);
	{
		struct ynode *p = yaml("self: '{{>self}}'");
		struct tmpl_partials loader = {.load = map_partial, .ctx = p};
		ok(rc == 0 && tmpl_render(bad, d, TMPL_ESCAPE_HTML, &loader, &out, &e) < 0,
		   "a failing render reports failure");
		ynode_free(p);
	}
	is_str(out.data, "head:11", "a failing render leaves the buffer as it was");
	buf_free(&out);
	tmpl_free(t);
	tmpl_free(bad);
	ynode_free(d);
}

/* Records each partial tag as "name@line:column "; stops after limit tags unless limit is 0. */
struct seen {
	struct buf out;
	int calls, limit;
};

static int see_partial(void *ctx, const char *name, unsigned line, unsigned column, bool in_section)
{
	struct seen *s = ctx;

	buf_printf(&s->out, "%s@%u:%u%s ", name, line, column, in_section ? "(s)" : "");
	return ++s->calls == s->limit ? -7 : 0;
}

/* Partials from two sources: one compiled in advance, named "pre", and sources in a map. */
struct two_sources {
	const struct tmpl *pre;
	const struct ynode *map;
};

static const struct tmpl *compiled_partial(void *ctx, const char *name)
{
	const struct two_sources *ts = ctx;

	return strcmp(name, "pre") == 0 ? ts->pre : NULL;
}

static int load_partial(void *ctx, const char *name, struct buf *src)
{
	const struct two_sources *ts = ctx;

	return map_partial((void *)ts->map, name, src);
}

static void test_precompiled_partials(void)
{
	const char *src = "a{{>p}}{{#s}}{{>q}}{{^n}}{{>p}}{{/n}}{{/s}}\n  {{> r }}\n";
	const char *pre_src = "P{{x}}{{>inner}}";
	struct tmpl *t = NULL, *pre = NULL;
	struct seen seen = {.limit = 0};
	struct ynode *d = yaml("x: 1");
	struct ynode *map = yaml("{pre: loaded, inner: I, other: O}");
	struct two_sources ts = {.map = map};
	struct tmpl_partials both = {
	    .compiled = compiled_partial, .load = load_partial, .ctx = &ts};
	struct tmpl_partials compiled_only = {.compiled = compiled_partial, .ctx = &ts};
	struct buf out;
	struct err e;
	int rc;

	buf_init(&seen.out);
	buf_init(&out);
	if (!ok(tmpl_compile(src, strlen(src), "t", &t, &e) == 0,
	        "compile a template with partials")) {
		diag("%s", e.msg);
		goto out;
	}
	is_str(tmpl_name(t), "t", "tmpl_name gives the name used in errors");
	rc = tmpl_foreach_partial(t, see_partial, &seen);
	ok(rc == 0, "tmpl_foreach_partial returns 0 when fn always does");
	is_str(seen.out.data, "p@1:2 q@1:14(s) p@1:26(s) r@2:3 ",
	       "every partial tag, in sections too, in source order, with its position and "
	       "whether a section (normal or inverted) holds it");
	buf_reset(&seen.out);
	seen.calls = 0;
	seen.limit = 2;
	rc = tmpl_foreach_partial(t, see_partial, &seen);
	ok(rc == -7 && seen.calls == 2,
	   "tmpl_foreach_partial stops at the first non-zero value of fn");

	if (!ok(tmpl_compile(pre_src, strlen(pre_src), "pre", &pre, &e) == 0,
	        "compile a partial in advance")) {
		diag("%s", e.msg);
		goto out;
	}
	ts.pre = pre;
	tmpl_free(t);
	src = "{{>pre}}|{{>other}}|{{>none}}";
	if (!ok(tmpl_compile(src, strlen(src), "t", &t, &e) == 0, "compile a template using it")) {
		diag("%s", e.msg);
		goto out;
	}
	ok(tmpl_render(t, d, TMPL_ESCAPE_NONE, &both, &out, &e) == 0,
	   "render with partials from both sources");
	is_str(out.data, "P1I|O|", "compiled() is asked before load(), and load() serves the rest");
	buf_reset(&out);
	ok(tmpl_render(t, d, TMPL_ESCAPE_NONE, &compiled_only, &out, &e) == 0,
	   "render again with compiled() only");
	is_str(out.data, "P1||",
	       "without load() the other partials render as empty; the compiled one is still the "
	       "caller's");
out:
	buf_free(&out);
	buf_free(&seen.out);
	tmpl_free(t);
	tmpl_free(pre);
	ynode_free(d);
	ynode_free(map);
}

int main(void)
{
	test_escaping();
	test_values();
	test_truthiness();
	test_sections();
	test_partials();
	test_limits();
	test_shared_bound();
	test_errors();
	test_render_buffer();
	test_precompiled_partials();
	return done_testing();
}

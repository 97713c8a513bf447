/* Unit tests of the template module beyond the Mustache spec: escaping, truthiness, limits,
 * error positions, mail templates on disk and the shipped default template. */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
static char *render_p(const char *src, const char *data, enum tmpl_escape esc,
                      const char *partials, struct err *e)
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
static void check_error_p(const char *src, const char *data, const char *partials,
                          const char *want, const char *what)
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
	check("{{x}}={{{x}}}", "x: '<&>'", TMPL_ESCAPE_NONE, "<&>=<&>", "none: {{x}} equals {{{x}}}");
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
		{"v: false", "no"},     {"v: False", "no"},   {"v: ~", "no"},      {"v: null", "no"},
		{"v:", "no"},           {"v: []", "no"},      {"v: 'false'", "yes"}, {"v: \"\"", "yes"},
		{"v: 0", "yes"},        {"v: true", "yes"},   {"v: {}", "yes"},    {"v: [0]", "yes"},
		{"v: 'null'", "yes"},   {"v: text", "yes"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct err e;
		char *got = render("{{#v}}yes{{/v}}{{^v}}no{{/v}}", cases[i].data, TMPL_ESCAPE_HTML, &e);
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
	got = render_p("{{>node}}",
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
	check_error_p("ok\n{{>bad}}", "{}", "bad: \"fine\\n{{#x}}\"", "bad:2:1: unclosed section 'x'",
	              "the error gives the position inside the partial");
}

static void test_limits(void)
{
	struct buf src;

	/* 30 * 30 * 30 copies of a 1 KiB string is about 27 MB. */
	check_error("{{#l}}{{#l}}{{#l}}{{s}}{{/l}}{{/l}}{{/l}}",
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
	            "l: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]", "more than 10000000 steps",
	            "nested loops that output nothing still end");
	buf_init(&src);
	for (int i = 0; i < 101; i++)
		buf_adds(&src, "{{#a}}");
	check_error(src.data, "{}", "nested deeper than 100", "section nesting is bounded");
	buf_free(&src);
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
	check_error("x {{/a}}", "{}", "t:1:3: unexpected end of section 'a'", "end without a section");
	check_error("{{}}", "{}", "t:1:1: expected a name", "empty tag");
	check_error("{{ a b }}", "{}", "expected one name in the tag, found 'a b'", "two names");
	check_error("{{a..b}}", "{}", "expected a name between the dots", "empty dotted part");
	check_error("{{#a.}}{{/a.}}", "{}", "expected a name between the dots", "trailing dot");
	check_error("{{>}}", "{}", "expected a partial name", "empty partial tag");
	check_error("x\n{{=<% %>}}", "{}", "t:2:1: unclosed tag: expected '=}}'",
	            "set delimiters without the closing '='");
	check_error("{{=<%=}}", "{}", "expected two delimiters", "set delimiters with one delimiter");
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

/* ---- mail templates on disk ---- */

static char tmpdir[] = "/tmp/alertmail-test-template-XXXXXX";

static void write_file(const char *rel, const char *content)
{
	char *path = xasprintf("%s/%s", tmpdir, rel);
	FILE *f;

	/* Create the parent directories of rel. */
	for (char *s = strchr(path + strlen(tmpdir) + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			diag("mkdir %s: %s", path, strerror(errno));
		*s = '/';
	}
	f = fopen(path, "w");
	if (f == NULL) {
		diag("cannot write %s: %s", path, strerror(errno));
		abort();
	}
	fputs(content, f);
	fclose(f);
	free(path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void test_mail_template(void)
{
	char *d1 = xasprintf("%s/d1", tmpdir), *d2 = xasprintf("%s/d2", tmpdir);
	const char *dirs[] = {d1, d2};
	struct mail_template *mt = NULL;
	struct ynode *data = yaml("severity: critical\n"
	                          "title: \"Disk <full>\\non\\tdb01\"\n"
	                          "source: db01\n");
	char *subject, *text, *html, *want;
	struct err e;

	write_file("d1/alert/subject.mustache", "  [{{severity}}]\r\n  {{title}}  \n\n");
	write_file("d1/alert/text.mustache", "{{title}} from {{source}}\n{{>footer}}");
	write_file("d1/alert/html.mustache", "<p>{{title}}</p>\n{{>footer}}");
	write_file("d1/alert/footer.mustache", "-- {{source}} & co{{>missing}}\n");
	write_file("d2/alert/subject.mustache", "shadowed");
	write_file("d2/alert/text.mustache", "shadowed");
	write_file("d2/plain/subject.mustache", "{{title}}");
	write_file("d2/plain/text.mustache", "{{{title}}}");
	write_file("d2/nosubject/text.mustache", "text");
	write_file("d2/notext/subject.mustache", "subject");
	write_file("d2/broken/subject.mustache", "ok");
	write_file("d2/broken/text.mustache", "line one\n  {{#x}} never closed\n");
	write_file("d2/escape/subject.mustache", "s");
	write_file("d2/escape/text.mustache", "{{>../../secret}}");
	write_file("d2/badpartial/subject.mustache", "s");
	write_file("d2/badpartial/text.mustache", "{{>inc}}");
	write_file("d2/badpartial/inc.mustache", "{{/oops}}");

	if (!ok(mail_template_load(dirs, 2, "alert", &mt, &e) == 0, "load a mail template"))
		diag("%s", e.msg);
	want = xasprintf("%s/alert", d1);
	is_str(mt ? mail_template_dir(mt) : NULL, want, "the first directory that has it wins");
	free(want);
	if (mt != NULL && mail_template_render(mt, data, &subject, &text, &html, &e) == 0) {
		is_str(subject, "[critical] Disk <full> on db01",
		       "subject: one line, trimmed, breaks folded into spaces, not escaped");
		is_str(text, "Disk <full>\non\tdb01 from db01\n-- db01 & co\n",
		       "text: not escaped, partial from the template directory");
		is_str(html, "<p>Disk &lt;full&gt;\non\tdb01</p>\n-- db01 & co\n",
		       "html: values escaped, partial shared with the text");
		free(subject);
		free(text);
		free(html);
	} else {
		ok(0, "render the mail template");
		diag("%s", e.msg);
	}
	mail_template_free(mt);
	mt = NULL;

	if (!ok(mail_template_load(dirs, 2, "plain", &mt, &e) == 0, "load a template without HTML"))
		diag("%s", e.msg);
	html = (char *)"unset";
	if (mt != NULL && mail_template_render(mt, data, &subject, &text, &html, &e) == 0) {
		ok(html == NULL, "no html.mustache: html is NULL");
		is_str(text, "Disk <full>\non\tdb01", "text of a template without HTML");
		free(subject);
		free(text);
	} else {
		ok(0, "render a template without HTML");
		diag("%s", e.msg);
	}
	mail_template_free(mt);
	mt = NULL;

	ok(mail_template_load(dirs, 2, "nosubject", &mt, &e) < 0 && mt == NULL &&
	       strstr(e.msg, "subject.mustache is missing") != NULL,
	   "missing subject: clear error (%s)", e.msg);
	ok(mail_template_load(dirs, 2, "notext", &mt, &e) < 0 &&
	       strstr(e.msg, "text.mustache is missing") != NULL,
	   "missing text: clear error (%s)", e.msg);
	want = xasprintf("%s/broken/text.mustache:2:3: unclosed section 'x'", d2);
	ok(mail_template_load(dirs, 2, "broken", &mt, &e) < 0 && strstr(e.msg, want) != NULL,
	   "a compile error names file:line:column (%s)", e.msg);
	free(want);
	ok(mail_template_load(dirs, 2, "nope", &mt, &e) < 0 &&
	       strstr(e.msg, "template 'nope' not found in") != NULL && strstr(e.msg, d2) != NULL,
	   "unknown template: error lists the directories (%s)", e.msg);
	ok(mail_template_load(dirs, 2, "../d1/alert", &mt, &e) < 0 && strstr(e.msg, "'/'") != NULL,
	   "a name with '/' is refused");
	ok(mail_template_load(dirs, 2, ".hidden", &mt, &e) < 0, "a name starting with '.' is refused");
	ok(mail_template_load(dirs, 2, "", &mt, &e) < 0, "an empty name is refused");
	ok(mail_template_load(dirs, 2, "escape", &mt, &e) < 0 &&
	       strstr(e.msg, "text.mustache:1:1: partial name '../../secret'") != NULL,
	   "a partial name leaving the directory is refused (%s)", e.msg);
	ok(mail_template_load(dirs, 2, "badpartial", &mt, &e) < 0 &&
	       strstr(e.msg, "inc.mustache:1:1: unexpected end of section 'oops'") != NULL,
	   "a broken partial fails the load (%s)", e.msg);
	ok(mail_template_load(dirs, 0, "alert", &mt, &e) < 0, "no directories: not found");

	ynode_free(data);
	free(d1);
	free(d2);
}

/* ---- the shipped default template ---- */

#define ALERT_DATA \
	"id: 20240501-abc\n" \
	"title: Disk full on db01 <root> & \"var\"\n" \
	"severity: %s\n" \
	"source: db01\n" \
	"description: |\n" \
	"  /var is at 100%%.\n" \
	"  Writes fail since 10:02.\n" \
	"time: '2024-05-01T10:03:00Z'\n" \
	"channel: ops\n" \
	"status: firing\n" \
	"labels: {team: dba, env: prod}\n" \
	"label_list: [{key: team, value: dba}, {key: env, value: prod}]\n" \
	"severity_is: {%s: true}\n" \
	"alertmail: {hostname: mon.example.org, version: 0.1.0}\n"

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void test_default_template(void)
{
	const char *top = getenv("top_srcdir");
	char *dir = xasprintf("%s/templates", top != NULL && *top != '\0' ? top : ".");
	const char *dirs[] = {dir};
	static const char *const severities[][2] = {
		{"critical", "#c62828"}, {"warning", "#f0a202"}, {"info", "#1565c0"}, {"debug", "#6b7280"},
	};
	struct mail_template *mt = NULL;
	struct err e;

	if (!ok(mail_template_load(dirs, 1, "default", &mt, &e) == 0, "load the default template")) {
		diag("%s", e.msg);
		free(dir);
		return;
	}
	for (size_t i = 0; i < sizeof(severities) / sizeof(severities[0]); i++) {
		char *text_data = xasprintf(ALERT_DATA, severities[i][0], severities[i][0]);
		struct ynode *data = yaml(text_data);
		char *subject = NULL, *text = NULL, *html = NULL, *want;
		bool good;

		if (mail_template_render(mt, data, &subject, &text, &html, &e) < 0) {
			ok(0, "render the default template (%s)", severities[i][0]);
			diag("%s", e.msg);
			goto next;
		}
		want = xasprintf("[%s] Disk full on db01 <root> & \"var\"", severities[i][0]);
		is_str(subject, want, "default subject (%s)", severities[i][0]);
		free(want);
		ok(html != NULL && strstr(html, severities[i][1]) != NULL,
		   "default html has the %s colour", severities[i][0]);
		good = true;
		for (size_t j = 0; j < sizeof(severities) / sizeof(severities[0]); j++)
			if (j != i && strstr(html, severities[j][1]) != NULL)
				good = false;
		ok(good, "default html has no other severity colour (%s)", severities[i][0]);
		if (i == 0) {
			ok(strstr(text, "Severity:  critical\n") && strstr(text, "Source:    db01\n") &&
			       strstr(text, "Time:      2024-05-01T10:03:00Z\n") &&
			       strstr(text, "Disk full on db01 <root> & \"var\"\n") &&
			       strstr(text, "/var is at 100%.\nWrites fail since 10:02.\n") &&
			       strstr(text, "  team: dba\n  env: prod\n") &&
			       strstr(text, "sent by alertmail 0.1.0 on mon.example.org"),
			   "default text shows every field");
			/* The description's own final newline may add one blank line, not more. */
			if (!ok(strstr(text, "{{") == NULL && strstr(text, "\n\n\n\n") == NULL,
			        "default text has no stray tags or runs of blank lines"))
				diag("text:\n%s", text);
			ok(strstr(html, "Disk full on db01 &lt;root&gt; &amp; &quot;var&quot;") &&
			       strstr(html, "white-space:pre-wrap") &&
			       strstr(html, ">/var is at 100%.\nWrites fail since 10:02.\n</div>") &&
			       strstr(html, ">team</td>") && strstr(html, ">prod</td>") &&
			       strstr(html, "sent by alertmail on mon.example.org") &&
			       strstr(html, "max-width:600px") && strstr(html, "2024-05-01T10:03:00Z"),
			   "default html shows every field, escaped");
			ok(count(html, "<tr") == count(html, "</tr>") &&
			       count(html, "<td") == count(html, "</td>") &&
			       count(html, "<table") == count(html, "</table>") &&
			       count(html, "<div") == count(html, "</div>") && strstr(html, "{{") == NULL,
			   "default html tags are balanced");
		}
		free(subject);
		free(text);
		free(html);
	next:
		ynode_free(data);
		free(text_data);
	}
	{
		struct ynode *data = yaml("title: bare");
		char *subject = NULL, *text = NULL, *html = NULL;

		ok(mail_template_render(mt, data, &subject, &text, &html, &e) == 0 &&
		       strcmp(subject, "[alert] bare") == 0 && strstr(html, "#6b7280") != NULL &&
		       strstr(html, ">Labels<") == NULL && strstr(text, "Labels") == NULL,
		   "default template with almost no data");
		free(subject);
		free(text);
		free(html);
		ynode_free(data);
	}
	mail_template_free(mt);
	free(dir);
}

int main(void)
{
	test_escaping();
	test_values();
	test_truthiness();
	test_sections();
	test_partials();
	test_limits();
	test_errors();
	test_render_buffer();
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "create a temporary directory: %s", strerror(errno));
	} else {
		test_mail_template();
		nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	test_default_template();
	return done_testing();
}

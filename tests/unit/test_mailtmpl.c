/* Unit tests of mail templates: finding and loading them on disk, rendering the three parts,
 * and the shipped default template. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "err.h"
#include "mailtmpl.h"
#include "tap.h"
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

/* ---- mail templates on disk ---- */

static char tmpdir[] = "/tmp/alertmail-test-mailtmpl-XXXXXX";

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
	must(fclose(f) == 0, "write %s", path);
	free(path);
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
	write_file("d1/alert/footer.mustache", "-- {{source}} & co{{>sig}}\n");
	write_file("d1/alert/sig.mustache", "");
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
	ok(mail_template_load(dirs, 2, ".hidden", &mt, &e) < 0,
	   "a name starting with '.' is refused");
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

/* ---- hostile templates and data: partials, sizes, line breaks ---- */

/* Loads template NAME from d3 and returns the error ("" when it loaded). */
static const char *load_error(const char *name, struct err *e)
{
	char *d3 = xasprintf("%s/d3", tmpdir);
	const char *dirs[] = {d3};
	struct mail_template *mt = NULL;

	e->msg[0] = '\0';
	if (mail_template_load(dirs, 1, name, &mt, e) == 0)
		e->msg[0] = '\0';
	mail_template_free(mt);
	free(d3);
	return e->msg;
}

/* Writes d3/NAME/ with a subject, a text and the partials given as "name", "source", ... */
static void write_template(const char *name, const char *text, const char *const *partials)
{
	char *rel = xasprintf("d3/%s/subject.mustache", name);

	write_file(rel, "s");
	free(rel);
	rel = xasprintf("d3/%s/text.mustache", name);
	write_file(rel, text);
	free(rel);
	for (size_t i = 0; partials != NULL && partials[i] != NULL; i += 2) {
		rel = xasprintf("d3/%s/%s.mustache", name, partials[i]);
		write_file(rel, partials[i + 1]);
		free(rel);
	}
}

static void test_hostile_partials(void)
{
	static const char *const self[] = {"a", "x{{>a}}", NULL};
	static const char *const ab[] = {"a", "{{>b}}", "b", "text\n  {{>a}}\n", NULL};
	static const char *const guarded[] = {"a", "[{{#items}}{{>a}}{{/items}}]", NULL};
	static const char *const inverted[] = {"a", "{{^stop}}{{>a}}{{/stop}}", NULL};
	struct err e;
	const char *msg;
	char *want;

	write_template("missing", "line\n  {{>nothere}}", NULL);
	msg = load_error("missing", &e);
	want = xasprintf("%s/d3/missing/text.mustache:2:3: partial 'nothere': there is no "
	                 "nothere.mustache in %s/d3/missing",
	                 tmpdir, tmpdir);
	ok(strstr(msg, want) != NULL, "a missing partial is an error when loading: %s", msg);
	free(want);

	write_template("self", "{{>a}}", self);
	msg = load_error("self", &e);
	ok(strstr(msg, "/d3/self/a.mustache:1:2: partial 'a' includes itself (a -> a) outside any "
	               "section: it would be rendered without end") != NULL,
	   "a partial that includes itself outside a section fails the load: %s", msg);

	write_template("ab", "{{>a}}", ab);
	msg = load_error("ab", &e);
	ok(strstr(msg, "/d3/ab/b.mustache:2:3: partial 'a' includes itself (a -> b -> a)") != NULL,
	   "A -> B -> A fails the load, at the tag that closes the loop: %s", msg);

	/* Recursion under a section ends as the data do: it loads, and renders. */
	write_template("guarded", "{{>a}}", guarded);
	msg = load_error("guarded", &e);
	ok(msg[0] == '\0', "a partial including itself inside a section loads %s", msg);
	write_template("inverted", "{{>a}}", inverted);
	msg = load_error("inverted", &e);
	ok(msg[0] == '\0', "... inside an inverted section too %s", msg);
	{
		char *d3 = xasprintf("%s/d3", tmpdir);
		const char *dirs[] = {d3};
		struct mail_template *mt = NULL;
		struct ynode *finite = yaml("items: [{items: [{items: []}]}, {items: []}]");
		struct ynode *forever = yaml("items: [1]");
		char *subject = NULL, *text = NULL, *html = NULL;

		if (mail_template_load(dirs, 1, "guarded", &mt, &e) == 0) {
			int rc = mail_template_render(mt, finite, &subject, &text, &html, &e);
			ok(rc == 0 && strcmp(text, "[[[]][]]") == 0,
			   "recursion that the data end renders (%s)", rc == 0 ? text : e.msg);
			free(subject);
			free(text);
			/* An item without "items" finds the outer one again: without end. */
			ok(mail_template_render(mt, forever, &subject, &text, &html, &e) < 0 &&
			       strstr(e.msg, "partials nested deeper than 32 levels") != NULL &&
			       subject == NULL && text == NULL,
			   "recursion that the data do not end is stopped at the partial depth: %s",
			   e.msg);
		} else {
			ok(0, "load 'guarded': %s", e.msg);
		}
		mail_template_free(mt);
		ynode_free(finite);
		ynode_free(forever);
		free(d3);
	}

	/* A chain of partials, each including the next: 32 deep renders, 33 cannot. */
	for (int depth = 32; depth <= 33; depth++) {
		char name[16];

		snprintf(name, sizeof(name), "chain%d", depth);
		write_template(name, "{{>p1}}", NULL);
		for (int i = 1; i <= depth; i++) {
			char *rel = xasprintf("d3/%s/p%d.mustache", name, i);
			char *src =
			    i < depth ? xasprintf("%d{{>p%d}}", i, i + 1) : xasprintf("%d", i);
			write_file(rel, src);
			free(rel);
			free(src);
		}
		msg = load_error(name, &e);
		if (depth == 32)
			ok(msg[0] == '\0', "a chain of 32 partials loads %s", msg);
		else
			ok(strstr(msg, "p32.mustache:1:3: partials include each other more than 32 "
			               "levels deep outside any section (p1 -> p2 -> ") != NULL,
			   "a chain of 33 partials fails the load: %s", msg);
	}
	{
		/* The same depth reached again through a partial already checked. */
		write_template("rejoin", "{{>p1}}{{>q1}}", NULL);
		for (int i = 1; i <= 30; i++) {
			char *rel = xasprintf("d3/rejoin/p%d.mustache", i);
			char *src = i < 30 ? xasprintf("{{>p%d}}", i + 1) : xasprintf("end");
			write_file(rel, src);
			free(rel);
			free(src);
		}
		for (int i = 1; i <= 5; i++) {
			char *rel = xasprintf("d3/rejoin/q%d.mustache", i);
			char *src = i < 5 ? xasprintf("{{>q%d}}", i + 1) : xasprintf("{{>p1}}");
			write_file(rel, src);
			free(rel);
			free(src);
		}
		msg = load_error("rejoin", &e);
		ok(strstr(msg,
		          "q5.mustache:1:1: partials include each other more than 32 levels "
		          "deep outside any section (q1 -> q2 -> q3 -> q4 -> q5 -> p1 -> ...)") !=
		       NULL,
		   "a chain that reaches a checked partial from deeper is measured too: %s", msg);
	}
}

static void test_hostile_data(void)
{
	char *d3 = xasprintf("%s/d3", tmpdir);
	const char *dirs[] = {d3};
	struct mail_template *mt = NULL;
	char *subject = NULL, *text = NULL, *html = NULL;
	struct ynode *data;
	struct buf big;
	struct err e;

	write_file("d3/hostile/subject.mustache", "[{{severity}}] {{title}}");
	write_file("d3/hostile/text.mustache", "{{title}}\n{{description}}");
	write_file("d3/hostile/html.mustache", "<p>{{title}}</p>{{description}}");
	if (!ok(mail_template_load(dirs, 1, "hostile", &mt, &e) == 0, "load 'hostile'")) {
		diag("%s", e.msg);
		free(d3);
		return;
	}

	/* Every line break of Unicode, and the C0 and C1 controls, become spaces. */
	data = yaml("severity: \"crit\\r\\nBcc: x@example.com\"\n"
	            "title: \"a\\x85b\\u2028c\\u2029d\\re\\nf\\x00g\\x1bh\\x9bi\\u000bj\"\n");
	if (mail_template_render(mt, data, &subject, &text, &html, &e) == 0)
		is_str(subject, "[crit Bcc: x@example.com] a b c d e f g h i j",
		       "subject: CR, LF, NEL, LS, PS, NUL, ESC, CSI, VT all become spaces");
	else
		ok(0, "render line breaks: %s", e.msg);
	free(subject);
	free(text);
	free(html);
	ynode_free(data);

	/* A long title: the subject is cut at 998 bytes, between characters, the body keeps all. */
	buf_init(&big);
	buf_adds(&big, "title: \"");
	for (int i = 0; i < 2000; i++)
		buf_adds(&big, "\xc3\xa9"); /* é: two bytes each, so 998 falls inside one */
	buf_adds(&big, "\"\n");
	data = yaml(big.data);
	if (mail_template_render(mt, data, &subject, &text, &html, &e) == 0) {
		size_t n = strlen(subject);
		ok(n <= MAILTMPL_SUBJECT_MAX && n >= MAILTMPL_SUBJECT_MAX - 4 &&
		       strcmp(subject + n - 3, "\xe2\x80\xa6") == 0 &&
		       strncmp(subject, "[] \xc3\xa9\xc3\xa9", 7) == 0 && subject[n - 4] == '\xa9',
		   "a 4000-byte subject is cut to %zu bytes, between characters, with an ellipsis",
		   n);
		ok(strlen(text) == 4001, "the text body keeps the whole title (%zu bytes)",
		   strlen(text));
	} else {
		ok(0, "render a long title: %s", e.msg);
	}
	free(subject);
	free(text);
	free(html);
	ynode_free(data);
	buf_free(&big);

	/* The parts of one message share one bound: 6 MiB in each of subject, text and HTML fit
	 * no more than 16 MiB in all. */
	buf_init(&big);
	buf_adds(&big, "title: ");
	for (size_t i = 0; i < ((size_t)6 << 20); i++)
		buf_addc(&big, 'x');
	buf_adds(&big, "\n");
	data = yaml(big.data);
	subject = text = html = (char *)"unset";
	ok(mail_template_render(mt, data, &subject, &text, &html, &e) < 0 &&
	       strstr(e.msg, "html.mustache:1:4: the output grows beyond the limit of 16777216 "
	                     "bytes") != NULL &&
	       subject == NULL && text == NULL && html == NULL,
	   "6 MiB in each of three parts: the message's bound of 16 MiB stops the third: %s",
	   e.msg);
	ynode_free(data);
	buf_free(&big);
	mail_template_free(mt);
	free(d3);
}

/* ---- the shipped default template ---- */

#define ALERT_DATA                                                                                 \
	"id: 20240501-abc\n"                                                                       \
	"title: Disk full on db01 <root> & \"var\"\n"                                              \
	"severity: %s\n"                                                                           \
	"source: db01\n"                                                                           \
	"description: |\n"                                                                         \
	"  /var is at 100%%.\n"                                                                    \
	"  Writes fail since 10:02.\n"                                                             \
	"time: '2024-05-01T10:03:00Z'\n"                                                           \
	"channel: ops\n"                                                                           \
	"status: firing\n"                                                                         \
	"labels: {team: dba, env: prod}\n"                                                         \
	"label_list: [{key: team, value: dba}, {key: env, value: prod}]\n"                         \
	"severity_is: {%s: true}\n"                                                                \
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
	    {"critical", "#c62828"},
	    {"warning", "#f0a202"},
	    {"info", "#1565c0"},
	    {"debug", "#6b7280"},
	};
	struct mail_template *mt = NULL;
	struct err e;

	if (!ok(mail_template_load(dirs, 1, "default", &mt, &e) == 0,
	        "load the default template")) {
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
		if (text == NULL || html == NULL) {
			ok(0, "the default template has a text and an html part (%s)",
			   severities[i][0]);
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
			ok(strstr(text, "Severity:  critical\n") &&
			       strstr(text, "Source:    db01\n") &&
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
			       strstr(html,
			              ">/var is at 100%.\nWrites fail since 10:02.\n</div>") &&
			       strstr(html, ">team</td>") && strstr(html, ">prod</td>") &&
			       strstr(html, "sent by alertmail on mon.example.org") &&
			       strstr(html, "max-width:600px") &&
			       strstr(html, "2024-05-01T10:03:00Z"),
			   "default html shows every field, escaped");
			ok(count(html, "<tr") == count(html, "</tr>") &&
			       count(html, "<td") == count(html, "</td>") &&
			       count(html, "<table") == count(html, "</table>") &&
			       count(html, "<div") == count(html, "</div>") &&
			       strstr(html, "{{") == NULL,
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
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "create a temporary directory: %s", strerror(errno));
	} else {
		test_mail_template();
		test_hostile_partials();
		test_hostile_data();
		tap_remove_tree(tmpdir);
	}
	test_default_template();
	return done_testing();
}

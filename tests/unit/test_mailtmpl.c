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
	if (mkdtemp(tmpdir) == NULL) {
		ok(0, "create a temporary directory: %s", strerror(errno));
	} else {
		test_mail_template();
		tap_remove_tree(tmpdir);
	}
	test_default_template();
	return done_testing();
}

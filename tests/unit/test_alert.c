#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "buf.h"
#include "conf.h"
#include "tap.h"

/* 2026-11-25T07:45:59Z */
#define T0 ((time_t)1795592759)

static void time_is(const char *in, time_t want)
{
	time_t got = 0;
	int rc = alert_parse_time(in, &got);

	ok(rc == 0 && got == want, "time '%s' = %lld (got %lld, rc %d)", in, (long long)want,
	   (long long)got, rc);
}

static void time_bad(const char *in, const char *why)
{
	time_t got = 0;

	ok(alert_parse_time(in, &got) < 0, "time '%s' refused: %s", in, why);
}

static void test_parse_time(void)
{
	time_is("2026-11-25T07:45:59Z", T0);
	time_is("2026-11-25t07:45:59z", T0);
	time_is("2026-11-25 07:45:59Z", T0);
	time_is("2026-11-25T07:45:59", T0);
	time_is("2026-11-25T07:45Z", T0 - 59);
	time_is("2026-11-25T08:45:59+01:00", T0);
	time_is("2026-11-25T08:45:59+0100", T0);
	time_is("2026-11-25T02:15:59-0530", T0);
	time_is("2026-11-25T02:15:59-05:30", T0);
	time_is("2026-11-25T07:45:59.123Z", T0);
	time_is("2026-11-25T07:45:59,5Z", T0);
	time_is("2026-11-25T07:45:59.999999999+00:00", T0);
	time_is("1970-01-01T00:00:00Z", 0);
	time_is("2024-02-29T12:00:00Z", 1709208000);
	time_is("2000-02-29T00:00:00Z", 951782400);
	time_is("2026-12-31T23:59:59Z", 1798761599);
	time_is("2026-04-30T00:00:00Z", 1777507200);
	time_is("2026-12-31T23:59:60Z", 1798761600);

	time_bad("", "empty");
	time_bad("2026-11-25", "no time");
	time_bad("2026-11-25T07", "no minutes");
	time_bad("2026-11-25T07:45:5Z", "one digit of seconds");
	time_bad("26-11-25T07:45:59Z", "two-digit year");
	time_bad("2026/11/25T07:45:59Z", "slashes");
	time_bad("2026-11-25X07:45:59Z", "X for T");
	time_bad("2026-00-10T00:00:00Z", "month 0");
	time_bad("2026-13-01T00:00:00Z", "month 13");
	time_bad("2026-01-00T00:00:00Z", "day 0");
	time_bad("2026-01-32T00:00:00Z", "January 32");
	time_bad("2026-02-30T00:00:00Z", "February 30");
	time_bad("2025-02-29T00:00:00Z", "February 29 of a common year");
	time_bad("1900-02-29T00:00:00Z", "February 29 of 1900 (divisible by 100, not 400)");
	time_bad("2026-04-31T00:00:00Z", "April 31");
	time_bad("2026-06-31T00:00:00Z", "June 31");
	time_bad("2026-11-31T00:00:00Z", "November 31");
	time_bad("2026-11-25T24:00:00Z", "hour 24");
	time_bad("2026-11-25T07:60:00Z", "minute 60");
	time_bad("2026-11-25T07:45:61Z", "second 61");
	time_bad("2026-11-25T07:45:59.Z", "a dot without digits");
	time_bad("2026-11-25T07:45:59+1:00", "one-digit offset hour");
	time_bad("2026-11-25T07:45:59+24:00", "offset of 24 hours");
	time_bad("2026-11-25T07:45:59+01:60", "offset minute 60");
	time_bad("2026-11-25T07:45:59+01", "offset without minutes");
	time_bad("2026-11-25T07:45:59Zx", "text after the zone");
	time_bad("2026-11-25T07:45:59 Z", "a space before the zone");
	time_bad("2026-11-25T07:45:59Z ", "a space after the zone");
	time_bad("yesterday", "words");
}

static struct alert *parse(const char *text, struct err *e)
{
	struct alert *a = NULL;

	e->msg[0] = '\0';
	if (alert_parse(text, strlen(text), "a.yaml", T0, &a, e) < 0)
		return NULL;
	return a;
}

static bool id_format_ok(const char *id, const char *stamp)
{
	size_t n = strlen(stamp);

	if (id == NULL || strlen(id) != n + 1 + 16 || strncmp(id, stamp, n) != 0 || id[n] != '-')
		return false;
	return strspn(id + n + 1, "0123456789abcdef") == 16;
}

static void test_from_tree(void)
{
	struct alert *a;
	struct err e;

	a = parse("id: abc-1\ntitle: Disk full\nseverity: critical\nsource: db1\n"
	          "description: \"/var at 99%\"\nstatus: firing\nchannel: ops\n"
	          "time: 2026-11-25T08:45:59+01:00\nlabels: { team: dba }\n",
	          &e);
	ok(a != NULL, "alert with every well-known field%s%s", a ? "" : ": ", e.msg);
	if (a != NULL) {
		is_str(a->id, "abc-1", "id as given");
		is_str(a->title, "Disk full", "title");
		is_str(a->severity, "critical", "severity");
		is_str(a->source, "db1", "source");
		is_str(a->description, "/var at 99%", "description");
		is_str(a->status, "firing", "status");
		is_str(a->channel, "ops", "channel");
		ok(a->time == T0, "time parsed with its offset");
		is_str(a->time_str, "2026-11-25T08:45:59+01:00", "time_str as given");
		alert_free(a);
	}

	a = parse("title: t\n", &e);
	ok(a != NULL && id_format_ok(a->id, "20261125T074559Z"),
	   "no id: one generated from the arrival time: %s", a ? a->id : e.msg);
	ok(a != NULL && a->time == T0, "no time: the arrival time");
	is_str(a ? a->time_str : NULL, "2026-11-25T07:45:59Z", "no time: time_str made from it");
	ok(a != NULL && a->severity == NULL && a->channel == NULL, "absent fields are NULL");
	alert_free(a);

	a = parse("id: \"\"\ntitle: t\n", &e);
	ok(a != NULL && id_format_ok(a->id, "20261125T074559Z"), "empty id: one generated: %s",
	   a ? a->id : e.msg);
	alert_free(a);
	a = parse("title: t\nid: \"a-1\\nqueue id: forged\"\n", &e);
	is_str(
	    a == NULL ? e.msg : NULL,
	    "a.yaml:2:5: 'id' contains a control character (U+000A at byte 4): an id is one line "
	    "of text",
	    "an id with a line break is refused: ids go into log lines");
	a = parse("id: \"a\\x7f\"\n", &e);
	ok(a == NULL && strstr(e.msg, "(U+007F at byte") != NULL, "an id with DEL is refused");
	a = parse("id: \"alert-é-1 (x)\"\n", &e);
	ok(a != NULL && strcmp(a->id, "alert-é-1 (x)") == 0,
	   "an id with spaces and non-ASCII is taken as it is");
	alert_free(a);

	a = parse("id: ~\ntitle: ~\n", &e);
	ok(a != NULL && id_format_ok(a->id, "20261125T074559Z") && a->title == NULL,
	   "null id and title: as if absent");
	alert_free(a);

	a = parse("title: [a, b]\n", &e);
	is_str(a == NULL ? e.msg : NULL, "a.yaml:1:8: 'title' must be a string, not a list",
	       "non-scalar title: an error with position");
	a = parse("severity: x\nsource: { a: 1 }\n", &e);
	is_str(a == NULL ? e.msg : NULL, "a.yaml:2:9: 'source' must be a string, not a mapping",
	       "non-scalar source: an error with position");
	a = parse("title: t\ntime: 2026-02-30T00:00:00Z\n", &e);
	ok(a == NULL && strncmp(e.msg, "a.yaml:2:7: time: expected an ISO 8601", 38) == 0 &&
	       strstr(e.msg, "got '2026-02-30T00:00:00Z'") != NULL,
	   "impossible time: an error with position: %s", e.msg);
	a = parse("title: t\ntime: \"2026-01-01\\nX-Injected: 1\"\n", &e);
	ok(a == NULL && strstr(e.msg, "got '2026-01-01\\nX-Injected: 1'") != NULL &&
	       strchr(e.msg, '\n') == NULL,
	   "a bad time is quoted escaped: the error stays one line: %s", e.msg);
	a = parse("title: t\ntime: soon\n", &e);
	ok(a == NULL && strstr(e.msg, "a.yaml:2:7: time:") != NULL, "bad time: %s", e.msg);
	a = parse("title: t\nlabels: [a, b]\n", &e);
	is_str(a == NULL ? e.msg : NULL,
	       "a.yaml:2:9: 'labels' must be a mapping of names to values", "labels must be a map");
	a = parse("title: t\nlabels: x\n", &e);
	ok(a == NULL && strstr(e.msg, "'labels' must be a mapping") != NULL,
	   "labels as a string refused");
	a = parse("title: t\nlabels: ~\n", &e);
	ok(a != NULL, "null labels: as if absent");
	alert_free(a);
	a = parse("[a, b]\n", &e);
	is_str(a == NULL ? e.msg : NULL,
	       "a.yaml:1:1: an alert must be a mapping of fields, not a list",
	       "an alert that is not a mapping");
	a = parse("title: \"a\\0b\"\n", &e);
	ok(a == NULL && strstr(e.msg, "'title' contains a NUL byte") != NULL, "NUL byte refused");
	a = parse("title: t\nsource: \"db\\x00\"\n", &e);
	is_str(a == NULL ? e.msg : NULL, "a.yaml:2:9: 'source' contains a NUL byte",
	       "NUL byte in another string field refused, with position");
	a = parse("title: t\nlabels: {k: \"a\\0b\"}\n", &e);
	ok(a != NULL, "a NUL byte in a label is data: the templates render it safely");
	alert_free(a);

	/* The id is one line of text, at most ALERT_ID_MAX bytes: it goes into logs and reasons. */
	a = parse("id: \"a\\nb\"\n", &e);
	is_str(a == NULL ? e.msg : NULL,
	       "a.yaml:1:5: 'id' contains a control character (U+000A at byte 2): an id is one "
	       "line of text",
	       "an id with a line break refused");
	a = parse("id: \"a\\rb\"\n", &e);
	ok(a == NULL && strstr(e.msg, "U+000D") != NULL, "an id with a CR refused");
	a = parse("id: \"ab\\Lc\"\n", &e);
	ok(a == NULL && strstr(e.msg, "(U+2028 at byte 3)") != NULL,
	   "an id with a line separator refused: %s", e.msg);
	a = parse("id: \"ab\\x1b[2J\"\n", &e);
	ok(a == NULL && strstr(e.msg, "U+001B") != NULL, "an id with ESC refused");
	a = parse("id: \"x\\x9b\"\n", &e);
	ok(a == NULL && strstr(e.msg, "U+009B") != NULL, "an id with a C1 control refused");
	{
		char *src = xasprintf("id: %0*d\n", ALERT_ID_MAX, 7);
		a = parse(src, &e);
		ok(a != NULL && strlen(a->id) == ALERT_ID_MAX, "an id of %d bytes is taken",
		   ALERT_ID_MAX);
		alert_free(a);
		free(src);
		src = xasprintf("id: %0*d\n", ALERT_ID_MAX + 1, 7);
		a = parse(src, &e);
		ok(a == NULL && strstr(e.msg, "a.yaml:1:5: 'id' is 257 bytes long, more than the "
		                              "limit of 256") != NULL,
		   "an id of one byte more is refused: %s", e.msg);
		free(src);
	}
	a = parse("id: \"caf\xc3\xa9 \xe2\x9c\x93\"\n", &e);
	ok(a != NULL, "an id with spaces and non-ASCII is fine");
	alert_free(a);

	/* alert_check_field: one field's rules, for submit --set. */
	{
		struct ynode *t = ynode_new_map();
		ynode_map_set(t, "title", ynode_new_map());
		ynode_map_set(t, "time", ynode_new_scalar("never", 5, false));
		ynode_map_set(t, "other", ynode_new_map());
		ynode_map_set(t, "id", ynode_new_scalar("a\xff", 2, false));
		ok(alert_check_field(t, "title", "x", &e) < 0 && strstr(e.msg, "'title' must be a "
		                                                               "string") != NULL,
		   "check_field: title as a mapping");
		ok(alert_check_field(t, "time", "x", &e) < 0 &&
		       strstr(e.msg, "time: expected") != NULL,
		   "check_field: a bad time");
		ok(alert_check_field(t, "id", "x", &e) < 0 &&
		       strstr(e.msg, "a byte that is not UTF-8 (0xff at byte 2)") != NULL,
		   "check_field: an id that is not UTF-8: %s", e.msg);
		ok(alert_check_field(t, "other", "x", &e) == 0 &&
		       alert_check_field(t, "labels", "x", &e) == 0,
		   "check_field: other keys and absent fields pass");
		ynode_free(t);
	}

	/* Keys that libyaml would not read back from the JSON that alertmail submit stores. */
	{
		struct buf y;

		buf_init(&y);
		buf_adds(&y, "title: t\nlabels:\n  ? ");
		for (int i = 0; i < 1022; i++)
			buf_addc(&y, 'k');
		buf_adds(&y, "\n  : v\n");
		a = parse(y.data, &e);
		ok(a != NULL, "a key of 1022 characters (1024 as JSON) is taken%s%s", a ? "" : ": ",
		   a ? "" : e.msg);
		alert_free(a);
		buf_reset(&y);
		buf_adds(&y, "title: t\nlabels:\n  ? ");
		for (int i = 0; i < 1023; i++)
			buf_addc(&y, 'k');
		buf_adds(&y, "\n  : v\n");
		a = parse(y.data, &e);
		is_str(a == NULL ? e.msg : NULL,
		       "a.yaml:3:5: a key longer than 1024 characters as JSON, quotes and escapes "
		       "included (YAML's limit for keys)",
		       "a key of 1023 characters is refused, with its position");
		buf_reset(&y);
		buf_adds(&y, "title: t\n\"");
		for (int i = 0; i < 200; i++)
			buf_adds(&y, "\\x01");
		buf_adds(&y, "\": v\n");
		a = parse(y.data, &e);
		ok(a == NULL && strstr(e.msg, "a.yaml:2:1: a key longer than 1024") != NULL,
		   "a short key that is long as JSON (200 control characters, \\u0001 each) is "
		   "refused");
		buf_free(&y);
	}

	/* From a tree made by the program, as alertmail test does. */
	{
		struct ynode *t = ynode_new_map();
		ynode_map_set(t, "title", ynode_new_scalar("built", 5, false));
		ok(alert_from_tree(t, "built", T0, &a, &e) == 0 && strcmp(a->title, "built") == 0,
		   "alert_from_tree on a built tree");
		alert_free(a);
		t = ynode_new_seq();
		ok(alert_from_tree(t, "built", T0, &a, &e) < 0 && a == NULL,
		   "alert_from_tree takes the tree even on failure (no leak under ASan)");
	}
}

static const struct ynode *at(const struct ynode *n, const char *path)
{
	return ynode_path(n, path);
}

static const char *str_at(const struct ynode *n, const char *path)
{
	const struct ynode *v = at(n, path);

	return v != NULL && v->kind == YNODE_SCALAR ? v->str : NULL;
}

static void test_template_data(void)
{
	struct alert *a;
	struct ynode *d;
	struct err e;
	const struct ynode *list;

	a = parse("id: x1\ntitle: t\nseverity: critical\n"
	          "labels: { zone: b, app: web, env: prod }\nextra: { deep: yes }\n",
	          &e);
	ok(a != NULL, "alert for template data%s%s", a ? "" : ": ", e.msg);
	if (a == NULL)
		return;
	d = alert_template_data(a, "ops");
	list = at(d, "label_list");
	ok(list != NULL && list->kind == YNODE_SEQ && list->count == 3,
	   "label_list has one item per label");
	if (list != NULL && list->count == 3) {
		static const char *const keys[] = {"zone", "app", "env"};
		static const char *const values[] = {"b", "web", "prod"};
		for (size_t i = 0; i < 3; i++) {
			is_str(str_at(list->values[i], "key"), keys[i],
			       "label_list[%zu].key in order", i);
			is_str(str_at(list->values[i], "value"), values[i], "label_list[%zu].value",
			       i);
		}
	}
	is_str(str_at(d, "severity_is.critical"), "true", "severity_is.critical is true");
	ok(at(d, "severity_is.warning") == NULL, "severity_is.warning is absent");
	is_str(str_at(d, "alertmail.hostname"), config_host_name(), "alertmail.hostname");
	is_str(str_at(d, "alertmail.version"), PACKAGE_VERSION, "alertmail.version");
	is_str(str_at(d, "channel"), "ops", "channel");
	is_str(str_at(d, "id"), "x1", "id");
	is_str(str_at(d, "time"), "2026-11-25T07:45:59Z", "time filled in");
	is_str(str_at(d, "title"), "t", "the alert's own fields");
	is_str(str_at(d, "extra.deep"), "yes", "nested fields of the alert");
	ok(at(a->tree, "label_list") == NULL, "the alert's tree is left alone");
	ynode_free(d);
	alert_free(a);

	a = parse("title: t\nchannel: from-alert\n", &e);
	d = a != NULL ? alert_template_data(a, NULL) : NULL;
	ok(d != NULL && at(d, "label_list") != NULL && at(d, "label_list")->count == 0,
	   "no labels: an empty label_list");
	ok(d != NULL && at(d, "severity_is") == NULL, "no severity: no severity_is");
	is_str(d ? str_at(d, "channel") : NULL, "from-alert", "no channel given: the alert's own");
	ynode_free(d);
	alert_free(a);
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static void test_new_id(void)
{
	enum { N = 1000 };
	char **ids = calloc(N, sizeof(*ids));
	size_t bad_format = 0, dups = 0;

	if (ids == NULL)
		exit(99);
	for (size_t i = 0; i < N; i++) {
		ids[i] = alert_new_id(T0);
		if (!id_format_ok(ids[i], "20261125T074559Z"))
			bad_format++;
	}
	ok(bad_format == 0, "alert_new_id: UTC time, '-', 16 hex digits (%s)", ids[0]);
	qsort(ids, N, sizeof(*ids), cmp_str);
	for (size_t i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			dups++;
	ok(dups == 0, "alert_new_id: %d ids in the same second are all different", N);
	for (size_t i = 0; i < N; i++)
		free(ids[i]);
	free(ids);
	{
		char *id = alert_new_id(0);
		ok(id_format_ok(id, "19700101T000000Z"), "alert_new_id(0): %s", id);
		free(id);
	}
}

int main(void)
{
	test_parse_time();
	test_from_tree();
	test_template_data();
	test_new_id();
	return done_testing();
}

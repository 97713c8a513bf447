/* The alert parser, and what follows it for an alert the daemon takes: the template data, the
 * default template (templates/default of the source tree, or of $ALERTMAIL_DATADIR), the
 * notification with its message, and the JSON that alertmail submit stores when it changes an
 * alert. The input is one alert file. Checks: errors say where and are one line; the JSON reads
 * back as the same tree and the same alert; the message passes msgcheck.c with the subject
 * that was rendered. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"
#include "buf.h"
#include "conf.h"
#include "fuzz.h"
#include "json.h"
#include "mailtmpl.h"
#include "msgcheck.h"
#include "notify.h"
#include "yamltree.h"

#define NAME "alert fuzz"
#define ARRIVAL 1764057600 /* 2025-11-25T08:00:00Z */

static struct mail_template *default_template(void)
{
	static struct mail_template *t;
	const char *dirs[2];
	struct config none = {.templates = NULL};
	struct err e;

	if (t != NULL)
		return t;
	fuzz_set_datadir();
	/* The built-in template directory, as the config module finds it. */
	config_template_dirs(&none, dirs);
	if (mail_template_load(&dirs[1], 1, "default", &t, &e) < 0)
		fuzz_fail("the default template: %s", e.msg);
	return t;
}

/* Whether b reads as a (the JSON of a): the same shape and keys; scalars with the same text,
 * except that JSON writes YAML's nulls and booleans its own way. */
static bool same_reading(const struct ynode *a, const struct ynode *b)
{
	if (a->kind != b->kind || a->count != b->count)
		return false;
	if (a->kind == YNODE_SCALAR) {
		if (a->plain && ynode_is_null(a))
			return b->plain && ynode_is_null(b);
		if (a->plain && ynode_bool(a) >= 0)
			return ynode_bool(a) == ynode_bool(b);
		return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
	}
	for (size_t i = 0; i < a->count; i++) {
		if (a->kind == YNODE_MAP &&
		    (a->keys[i]->len != b->keys[i]->len ||
		     memcmp(a->keys[i]->str, b->keys[i]->str, a->keys[i]->len) != 0))
			return false;
		if (!same_reading(a->values[i], b->values[i]))
			return false;
	}
	return true;
}

static void check_json(const struct alert *a, bool pretty)
{
	struct ynode *back;
	struct alert *b;
	struct buf j;
	struct err e;

	buf_init(&j);
	json_add_node(&j, a->tree, pretty);
	if (ytree_parse(j.data, j.len, "json", &back, &e) < 0)
		fuzz_fail("the alert's JSON does not read back: %s\n%s", e.msg, j.data);
	if (!same_reading(a->tree, back))
		fuzz_fail("the alert's JSON reads back as another tree:\n%s", j.data);
	ynode_free(back);
	if (alert_parse(j.data, j.len, "json", ARRIVAL, &b, &e) < 0)
		fuzz_fail("the alert's JSON is refused: %s\n%s", e.msg, j.data);
	if (a->time != b->time)
		fuzz_fail("the alert's JSON has another time");
	alert_free(b);
	buf_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char from[] = "Alert Mail <alertmail@example.org>";
	static char to0[] = "Ops Team <ops@example.org>", to1[] = "oncall@example.org";
	static char *to[] = {to0, to1};
	static char chname[] = "ops", tname[] = "default";
	struct config cfg = {.from = from};
	struct channel ch = {.name = chname, .to = to, .nto = 2, .template = tname};
	const struct mail_template *t = default_template();
	struct notification n;
	struct alert *a;
	struct err e;

	if (alert_parse((const char *)data, size, NAME, ARRIVAL, &a, &e) < 0) {
		if (a != NULL)
			fuzz_fail("a refused alert gave an alert");
		fuzz_check_message("an alert error", e.msg, NAME ":");
		return 0;
	}
	if (a->id == NULL || a->id[0] == '\0' || a->time_str == NULL)
		fuzz_fail("an alert without an id or a time");
	check_json(a, true);
	check_json(a, false);

	if (notify_build(&cfg, &ch, t, a, NULL, 0, &n, &e) < 0) {
		/* The template's limits may refuse an alert: say so as errors do. */
		fuzz_check_message("a notification error", e.msg, "");
	} else {
		struct mailbox mfrom, mto[2];
		struct msgcheck_expect x = {
		    .subject = n.subject, .from = &mfrom, .to = mto, .nto = 2};
		const char *ct = strstr(n.message.data, "\r\nContent-Type: multipart/");
		const char *hend = strstr(n.message.data, "\r\n\r\n");

		if (mailbox_parse(from, &mfrom, &e) < 0 || mailbox_parse(to0, &mto[0], &e) < 0 ||
		    mailbox_parse(to1, &mto[1], &e) < 0)
			fuzz_fail("the harness's addresses: %s", e.msg);
		for (const char *s = n.subject; *s != '\0'; s++)
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				fuzz_fail("a rendered subject holds a control character");
		x.multipart = ct != NULL && hend != NULL && ct < hend;
		msgcheck_message(n.message.data, n.message.len, &x);
		if (strcmp(n.mail_from, "alertmail@example.org") != 0 || n.nrcpt != 2)
			fuzz_fail("the envelope changed");
		mailbox_free(&mfrom);
		mailbox_free(&mto[0]);
		mailbox_free(&mto[1]);
		notify_free(&n);
	}
	alert_free(a);
	return 0;
}

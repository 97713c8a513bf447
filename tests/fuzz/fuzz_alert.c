/* The alert parser, and what the daemon does with an alert it takes: the route to a channel
 * (a config with routes on fields, labels and globs), the template data, the default template
 * (templates/default of the source tree, or of $ALERTMAIL_DATADIR), the notification with its
 * message; and the JSON that alertmail submit stores when it changes an alert. The input is
 * one alert file. Checks: errors say where and are one line; the id, which log lines carry, has
 * no control character; the JSON reads back as the same tree and the same alert; a route's
 * error is one line; the message passes msgcheck.c with the subject that was rendered and the
 * channel's mailboxes. */
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
#include "route.h"
#include "yamltree.h"

#define NAME "alert fuzz"
#define ARRIVAL 1764057600 /* 2025-11-25T08:00:00Z */

/* The config of a daemon, parsed once: two channels, routes that look at fields, labels and
 * globs, and the built-in templates. */
static const char config_text[] =
    "from: '\"Alert Mail\" <alertmail@example.org>'\n"
    "servers: { relay: { host: 127.0.0.1, port: 25, tls: none } }\n"
    "channels:\n"
    "  ops: { servers: [relay], to: [\"Ops Team <ops@example.org>\", oncall@example.org] }\n"
    "  db:\n"
    "    servers: [relay]\n"
    "    to: \"=?UTF-8?Q?DBA?= <dba@example.org>\"\n"
    "    from: \"Datenbank-Überwachung <db-alerts@example.org>\"\n"
    "routes:\n"
    "  - match: { severity: critical, labels.team: \"db*\" }\n"
    "    channel: db\n"
    "  - match: { source: \"*[Dd]b-??.example.org\" }\n"
    "    channels: [db, ops]\n"
    "  - match: { title: \"*disk*\" }\n"
    "    channel: ops\n"
    "default_channel: ops\n";

struct env {
	struct config *cfg;
	struct mail_template *t;
};

static const struct env *env(void)
{
	static struct env v;
	const char *dirs[2];
	struct buf errors;
	struct err e;

	if (v.cfg != NULL)
		return &v;
	fuzz_set_datadir();
	buf_init(&errors);
	if (config_parse(config_text, sizeof(config_text) - 1, "fuzz.yaml", 0, &v.cfg, &errors) < 0)
		fuzz_fail("the harness's config: %s", errors.data);
	buf_free(&errors);
	/* The built-in template directory, as the config module finds it. */
	config_template_dirs(v.cfg, dirs);
	if (mail_template_load(&dirs[1], 1, "default", &v.t, &e) < 0)
		fuzz_fail("the default template: %s", e.msg);
	return &v;
}

/* Whether b reads as a (the JSON of a): the same shape and keys; scalars with the same text,
 * except that JSON writes YAML's nulls and booleans its own way. */
/* NOLINTNEXTLINE(misc-no-recursion): a tree is YTREE_MAX_DEPTH deep at most */
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

/* The message of a notification, read back: its From and To are the channel's. */
static void check_notification(const struct config *cfg, const struct channel *ch,
                               const struct notification *n)
{
	struct mailbox from, to[8];
	struct msgcheck_expect x = {.subject = n->subject, .from = &from, .to = to, .nto = ch->nto};
	const char *ct = strstr(n->message.data, "\r\nContent-Type: multipart/");
	const char *hend = strstr(n->message.data, "\r\n\r\n");
	struct err e;

	if (ch->nto > 8 || mailbox_parse(ch->from != NULL ? ch->from : cfg->from, &from, &e) < 0)
		fuzz_fail("the harness's channel '%s'", ch->name);
	for (size_t i = 0; i < ch->nto; i++)
		if (mailbox_parse(ch->to[i], &to[i], &e) < 0)
			fuzz_fail("the harness's recipient '%s': %s", ch->to[i], e.msg);
	for (const char *s = n->subject; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			fuzz_fail("a rendered subject holds a control character");
	x.multipart = ct != NULL && hend != NULL && ct < hend;
	msgcheck_message(n->message.data, n->message.len, &x);
	if (strcmp(n->mail_from, from.addr) != 0 || n->nrcpt != ch->nto)
		fuzz_fail("the envelope is not the channel's");
	for (size_t i = 0; i < ch->nto; i++) {
		if (strcmp(n->rcpt[i], to[i].addr) != 0)
			fuzz_fail("recipient %zu is not the channel's", i + 1);
		mailbox_free(&to[i]);
	}
	mailbox_free(&from);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct env *v = env();
	const struct channel *ch;
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
	fuzz_check_message("the alert's id", a->id, "");
	check_json(a, true);
	check_json(a, false);

	ch = route_select(v->cfg, a, &e);
	if (ch == NULL) {
		if (a->channel == NULL)
			fuzz_fail("no channel for an alert, with a default channel");
		fuzz_check_message("a route error", e.msg, "");
	} else if (a->channel != NULL && strcmp(ch->name, a->channel) != 0) {
		fuzz_fail("the alert names channel '%s' and went to '%s'", a->channel, ch->name);
	} else if (notify_build(v->cfg, ch, v->t, a, NULL, 0, &n, &e) < 0) {
		/* The template's limits may refuse an alert: say so as errors do. */
		fuzz_check_message("a notification error", e.msg, "");
	} else {
		check_notification(v->cfg, ch, &n);
		notify_free(&n);
	}
	alert_free(a);
	return 0;
}

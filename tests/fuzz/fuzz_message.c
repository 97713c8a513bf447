/* The message composer and the address parser. The input is fields cut at NUL bytes:
 *
 *   FROM \0 TO \0 SUBJECT \0 TEXT [\0 HTML [\0 ALERT-ID [\0 DATE]]]
 *
 * TO holds one address per line. Addresses that mailbox_parse() refuses are replaced by fixed
 * ones, so that the composer runs whatever the addresses are. Every message composed is read
 * back (msgcheck.c): CRLF only, no line over 998 octets, headers in 7-bit ASCII with encoded
 * words of at most 75 octets, a Subject and mailboxes that decode to the input as cleaned,
 * quoted-printable bodies that decode to the input bodies. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "mailbox.h"
#include "message.h"
#include "msgcheck.h"

#define MAX_TO 8
#define DEFAULT_DATE 1764057600 /* 2025-11-25T08:00:00Z */

/* Parses in, or the fallback when mailbox_parse refuses it (the refusal checked); 0 when in
 * itself was taken. */
static int parse_or(const char *in, const char *fallback, struct mailbox *m)
{
	struct err e;

	if (mailbox_parse(in, m, &e) == 0) {
		struct err e2;
		if (m->addr == NULL || message_check_addr(m->addr, &e2) < 0)
			fuzz_fail("mailbox_parse took '%s' but its address is not one", in);
		if (m->display != NULL && m->display[0] == '\0')
			fuzz_fail("mailbox_parse gave an empty display name for '%s'", in);
		return 0;
	}
	if (m->addr != NULL || m->display != NULL)
		fuzz_fail("mailbox_parse refused '%s' but left a result", in);
	fuzz_check_message("a refused address's error", e.msg, "");
	if (mailbox_parse(fallback, m, &e) < 0)
		fuzz_fail("the fallback address '%s': %s", fallback, e.msg);
	return -1;
}

static void check_message_id(const char *id, const char *domain)
{
	char *mid = message_id_for(id, domain);
	size_t n = strlen(mid);
	const char *at = strrchr(mid, '@');

	if (n < 10 || strncmp(mid, "<alert.", 7) != 0 || mid[n - 1] != '>' || at == NULL)
		fuzz_fail("message_id_for gave '%s'", mid);
	{
		char *dom = xstrndup(at + 1, (size_t)(mid + n - 1 - at - 1));
		if (mailbox_check_domain(dom) < 0)
			fuzz_fail("message_id_for gave the domain '%s'", dom);
		free(dom);
	}
	free(mid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields f;
	struct mailbox from, to[MAX_TO];
	struct message_in in;
	struct msgcheck_expect x;
	struct buf out;
	struct err e;
	size_t nto = 0;
	int rc;

	fuzz_fields_split(data, size, &f);
	memset(&in, 0, sizeof(in));
	memset(&x, 0, sizeof(x));
	parse_or(f.v[0], "Alerts <alerts@example.org>", &from);
	if (f.n > 1) {
		char *p = f.v[1];
		while (nto < MAX_TO) {
			char *nl = strchr(p, '\n');
			if (nl != NULL)
				*nl = '\0';
			if (parse_or(p, "ops@example.org", &to[nto]) == 0)
				nto++;
			else
				mailbox_free(&to[nto]);
			if (nl == NULL)
				break;
			p = nl + 1;
		}
	}
	if (nto == 0)
		parse_or("Ops <ops@example.org>", "", &to[nto++]);

	in.from = &from;
	in.to = to;
	in.nto = nto;
	in.subject = f.n > 2 ? f.v[2] : "";
	in.text = f.n > 3 ? f.v[3] : "";
	in.html = f.n > 4 ? f.v[4] : NULL;
	in.alert_id = f.n > 5 ? f.v[5] : "fuzz-alert-1";
	in.date = f.n > 6 ? (time_t)strtoll(f.v[6], NULL, 10) : DEFAULT_DATE;
	check_message_id(in.alert_id, strchr(from.addr, '@') + 1);
	if (f.n > 5)
		check_message_id(in.alert_id, f.v[0]);

	buf_init(&out);
	buf_adds(&out, "kept"); /* composing appends */
	rc = message_compose(&in, &out, &e);
	if (rc < 0) {
		fuzz_check_message("a refused message's error", e.msg, "message: ");
		if (out.len != 4)
			fuzz_fail("a refused message left output");
	} else {
		x.subject = in.subject;
		x.from = &from;
		x.to = to;
		x.nto = nto;
		x.multipart = in.html != NULL;
		x.text = in.text;
		x.html = in.html;
		if (memcmp(out.data, "kept", 4) != 0)
			fuzz_fail("composing changed what was in the buffer");
		msgcheck_message(out.data + 4, out.len - 4, &x);
	}
	buf_free(&out);
	mailbox_free(&from);
	for (size_t i = 0; i < nto; i++)
		mailbox_free(&to[i]);
	fuzz_fields_free(&f);
	return 0;
}

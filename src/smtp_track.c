/* Every line of a session, libcurl's or alertmail's own (smtptx.c): the stage it moves to,
 * the replies and their bounds, the AUTH guard, the transcript with AUTH redacted, and the
 * reason when alertmail stops a session itself. */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"
#include "smtp.h"
#include "smtp_conn.h"

/* Bound on the transcript kept for one session: enough for any sane exchange. */
#define TRANSCRIPT_MAX ((size_t)64 * 1024)

#define STR_(x) #x
#define STR(x) STR_(x)
const char smtp_line_too_long[] = "reply line longer than " STR(SMTP_REPLY_LINE_MAX) " octets";
static const char too_many_lines[] =
    "multi-line reply longer than " STR(SMTP_REPLY_LINES_MAX) " lines";

/* The one way a session changes stage, so every transition can be followed in debug logs. */
void smtp_set_stage(struct smtp_conn *c, enum smtp_stage to)
{
	if (c->stage != to)
		log_debug("smtp", "%s: %s -> %s", c->server->name, smtp_stage_name(c->stage),
		          smtp_stage_name(to));
	c->stage = to;
}

void smtp_transcript_add(struct smtp_conn *c, const char *dir, const char *line, size_t len)
{
	if (c->transcript.len > TRANSCRIPT_MAX)
		return;
	/* A transcript line is for reading: a very long reply line is cut. */
	if (len > 1024)
		len = 1024;
	buf_adds(&c->transcript, dir);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch == '\r' || ch == '\n')
			continue;
		buf_addc(&c->transcript, (char)((ch >= 0x20 && ch < 0x7f) ? ch : '?'));
	}
	buf_addc(&c->transcript, '\n');
	if (c->transcript.len > TRANSCRIPT_MAX)
		buf_adds(&c->transcript, "[transcript truncated]\n");
}

static bool command_is(const char *line, size_t len, const char *cmd)
{
	size_t n = strlen(cmd);

	if (len < n || strncasecmp(line, cmd, n) != 0)
		return false;
	return len == n || line[n] == ' ' || line[n] == '\r' || line[n] == '\n' || line[n] == ':';
}

void smtp_abort(struct smtp_conn *c, enum smtp_abort kind, const char *why)
{
	if (c->abort_reason != NULL)
		return;
	c->abort_reason = why;
	c->abort_kind = kind;
	/* Lines before the first whole reply are the greeting's. */
	c->abort_stage = c->stage == STAGE_CONNECT ? STAGE_GREETING : c->stage;
	log_debug("smtp", "%s: stopping the session at %s: %s", c->server->name,
	          smtp_stage_name(c->abort_stage), why);
	/* Nothing after a hostile reply is worth reading: whoever reads next (libcurl, which
	 * would otherwise read on until its timeout, or smtptx.c) meets the end at once. */
	if (kind == ABORT_HOSTILE && c->sock != CURL_SOCKET_BAD)
		shutdown(c->sock, SHUT_RD);
}

void smtp_detail_append(struct smtp_result *r, const char *text)
{
	size_t n = strlen(r->detail);

	snprintf(r->detail + n, sizeof(r->detail) - n, "%s", text);
}

void smtp_abort_result(struct smtp_conn *c, struct smtp_result *r)
{
	char tail[sizeof(r->detail)];
	char *hint;

	switch (c->abort_reason != NULL ? c->abort_kind : ABORT_NONE) {
	case ABORT_NONE:
		return;
	case ABORT_AUTH:
		r->outcome = OUTCOME_PERMFAIL;
		r->stage = STAGE_AUTH;
		snprintf(r->detail, sizeof(r->detail), "AUTH failed: %s", c->abort_reason);
		return;
	case ABORT_REFUSED:
		/* The refusal itself decides, as if libcurl had stopped there. */
		r->stage = c->abort_stage;
		r->outcome = smtp_classify(CURLE_REMOTE_ACCESS_DENIED, r->stage, &c->reply, "",
		                           r->detail, sizeof(r->detail));
		/* The reason goes with the refusal; a hint for the reply stays last. */
		hint = strstr(r->detail, " (hint: ");
		snprintf(tail, sizeof(tail), "%s", hint != NULL ? hint : "");
		if (hint != NULL)
			*hint = '\0';
		smtp_detail_append(r, "; ");
		smtp_detail_append(r, c->abort_reason);
		smtp_detail_append(r, tail);
		return;
	case ABORT_HOSTILE:
		r->outcome = OUTCOME_TEMPFAIL;
		r->stage = c->abort_stage;
		smtp_describe_hostile(r->stage, c->abort_reason, r->detail, sizeof(r->detail));
		return;
	}
}

void smtp_note_unfinished(struct smtp_conn *c, size_t partial, struct smtp_result *r)
{
	char note[128];

	/* A greeting begun is no silent server, which is what the plain timeout would say. */
	if (r->stage == STAGE_GREETING && c->in_reply && c->reply_lines > 0) {
		snprintf(
		    r->detail, sizeof(r->detail),
		    "timed out waiting for the greeting: the server stopped in the middle of it, "
		    "after %zu line%s",
		    c->reply_lines, c->reply_lines == 1 ? "" : "s");
		return;
	}
	if (partial > 0)
		snprintf(note, sizeof(note),
		         "; the server stopped in the middle of a reply line (%zu octets without a "
		         "line end)",
		         partial);
	else if (c->in_reply && c->reply_lines > 0)
		snprintf(note, sizeof(note),
		         "; the server stopped in the middle of its reply, after %zu line%s",
		         c->reply_lines, c->reply_lines == 1 ? "" : "s");
	else
		return;
	smtp_detail_append(r, note);
}

void smtp_line_in(struct smtp_conn *c, const char *line, size_t len)
{
	size_t text_len = len;
	int last;

	smtp_transcript_add(c, "<- ", line, len);
	if (c->abort_reason != NULL && c->abort_kind == ABORT_HOSTILE)
		return;
	while (text_len > 0 && (line[text_len - 1] == '\n' || line[text_len - 1] == '\r'))
		text_len--;
	if (!c->in_reply) {
		memset(&c->pending, 0, sizeof(c->pending));
		c->in_reply = true;
		c->reply_lines = 0;
	}
	/* libcurl reads a reply for as long as it goes on, and the daemon's own reader too:
	 * a server that never ends one must not hold a session, or the daemon, until a timeout. */
	if (text_len > SMTP_REPLY_LINE_MAX) {
		smtp_abort(c, ABORT_HOSTILE, smtp_line_too_long);
		return;
	}
	if (++c->reply_lines > SMTP_REPLY_LINES_MAX) {
		smtp_abort(c, ABORT_HOSTILE, too_many_lines);
		return;
	}
	last = smtp_parse_reply_line(line, len, &c->pending);
	/* Exactly what libcurl 7.88 takes as the AUTH capability ("AUTH " in capitals): a line it
	 * would ignore ("auth ...", "AUTH=...") must not count as an offer here either. */
	if (c->stage == STAGE_EHLO && len >= 9 && memcmp(line + 4, "AUTH ", 5) == 0) {
		size_t n = strcspn(line + 9, "\r\n");
		c->ehlo_auth = true;
		snprintf(c->auth_offer, sizeof(c->auth_offer), "%.*s",
		         (int)(n < sizeof(c->auth_offer) ? n : sizeof(c->auth_offer) - 1),
		         line + 9);
	}
	if (last != 1)
		return;
	c->in_reply = false;
	if (c->quitting)
		return;
	c->reply = c->pending;
	/* libcurl skips AUTH when the server offers none and goes on to MAIL: with credentials
	 * configured that would send the alert unauthenticated. Stop before MAIL instead. */
	if (c->stage == STAGE_EHLO && c->reply.code == 250 && !c->ehlo_auth &&
	    c->server->auth != AUTH_NONE && (c->server->tls != TLS_STARTTLS || c->tls_up))
		smtp_abort(c, ABORT_AUTH,
		           "the server does not offer AUTH, which this server entry requires "
		           "(auth is configured); nothing was sent");
	/* After a refused EHLO libcurl tries HELO, which offers no AUTH: with credentials
	 * configured the refusal is the end, and the reason to give. */
	if (c->stage == STAGE_EHLO && !c->sent_helo && c->reply.code >= 400 &&
	    c->server->auth != AUTH_NONE)
		smtp_abort(c, ABORT_REFUSED,
		           c->tls_up
		               ? "the EHLO after STARTTLS was refused, and HELO offers no AUTH, "
		                 "which this server entry requires; nothing was sent"
		               : "HELO offers no AUTH, which this server entry requires; nothing "
		                 "was sent");
	if (c->stage == STAGE_CONNECT) {
		/* A greeting: a new connection, with nothing done on it yet. */
		smtp_set_stage(c, STAGE_GREETING);
		c->auth_done = false;
		c->tls_up = false;
	} else if (c->stage == STAGE_STARTTLS && c->reply.code == 220) {
		smtp_set_stage(c, STAGE_TLS);
		c->tls_up = true;
	} else if (c->stage == STAGE_DATA && c->reply.code == 354) {
		smtp_set_stage(c, STAGE_BODY);
	} else if (c->stage == STAGE_AUTH && c->reply.code == 235) {
		c->auth_done = true;
	}
}

void smtp_line_out(struct smtp_conn *c, const char *line, size_t len)
{
	if (command_is(line, len, "EHLO") || command_is(line, len, "HELO")) {
		smtp_set_stage(c, STAGE_EHLO);
		c->ehlo_auth = false;
		c->sent_helo = command_is(line, len, "HELO");
	} else if (command_is(line, len, "STARTTLS")) {
		smtp_set_stage(c, STAGE_STARTTLS);
	} else if (command_is(line, len, "AUTH")) {
		/* Show the mechanism, never the initial response. */
		size_t n = len < 5 ? len : 5;
		while (n < len && line[n] != ' ' && line[n] != '\r' && line[n] != '\n')
			n++;
		smtp_set_stage(c, STAGE_AUTH);
		smtp_transcript_add(c, "-> ", line, n);
		if (n < len && line[n] == ' ')
			smtp_transcript_add(c, "-> ", "   [initial response redacted]", 30);
		return;
	} else if (c->stage == STAGE_AUTH && !command_is(line, len, "MAIL") &&
	           !command_is(line, len, "QUIT")) {
		smtp_transcript_add(c, "-> ", "[AUTH response redacted]", 24);
		return;
	} else if (command_is(line, len, "MAIL")) {
		smtp_set_stage(c, STAGE_MAIL);
		/* A second line of defence: whatever libcurl decided, no unauthenticated mail when
		 * credentials are configured. The session stops at the reply to MAIL. */
		if (c->server->auth != AUTH_NONE && !c->auth_done)
			smtp_abort(c, ABORT_AUTH,
			           "MAIL FROM was about to be sent without a completed AUTH; the "
			           "session was stopped before any recipient or data");
	} else if (command_is(line, len, "RCPT")) {
		smtp_set_stage(c, STAGE_RCPT);
	} else if (command_is(line, len, "DATA")) {
		smtp_set_stage(c, STAGE_DATA);
	} else if (command_is(line, len, "QUIT")) {
		c->quitting = true;
		/* In a session, QUIT means libcurl gave up on it (a refusal or a timeout) and would
		 * now wait up to a whole reply timeout for the 221, from a server that may be hung.
		 * Reading ends here: the QUIT is sent, the wait is not. */
		if (c->in_session && c->sock != CURL_SOCKET_BAD)
			shutdown(c->sock, SHUT_RD);
	}
	smtp_transcript_add(c, "-> ", line, len);
}

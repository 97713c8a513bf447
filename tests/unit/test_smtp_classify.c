#include "config.h"

#include <curl/curl.h>

#include "channel.h"
#include "smtp.h"
#include "tap.h"

static struct smtp_reply reply(const char *line)
{
	struct smtp_reply r;

	memset(&r, 0, sizeof(r));
	smtp_parse_reply_line(line, strlen(line), &r);
	return r;
}

static void classify(int cc, enum smtp_stage st, const char *line, enum outcome want,
                     const char *needle)
{
	struct smtp_reply r = reply(line ? line : "");
	char detail[768];
	enum outcome o;

	if (line == NULL)
		memset(&r, 0, sizeof(r));
	o = smtp_classify(cc, st, &r, "", detail, sizeof(detail));
	ok(o == want && strstr(detail, needle) != NULL, "%s at %s, curl %d -> %s: %s",
	   line ? line : "(no reply)", smtp_stage_name(st), cc, outcome_name(want), detail);
}

int main(void)
{
	struct smtp_reply r;

	memset(&r, 0, sizeof(r));
	ok(smtp_parse_reply_line("250 2.0.0 OK <x@y> [Hostname=z]\r\n", 33, &r) == 1 && r.code == 250 &&
	       strcmp(r.enhanced, "2.0.0") == 0 && strcmp(r.text, "OK <x@y> [Hostname=z]") == 0,
	   "final line with enhanced code");
	memset(&r, 0, sizeof(r));
	ok(smtp_parse_reply_line("250-SIZE 35882577", 17, &r) == 0 && r.code == 250 &&
	       r.enhanced[0] == '\0',
	   "continuation line");
	ok(smtp_parse_reply_line("250 PIPELINING", 14, &r) == 1 &&
	       strcmp(r.text, "SIZE 35882577 PIPELINING") == 0,
	   "multi-line text joined: %s", r.text);
	memset(&r, 0, sizeof(r));
	ok(smtp_parse_reply_line("220", 3, &r) == 1 && r.code == 220, "bare code");
	ok(smtp_parse_reply_line("hello", 5, &r) == -1, "not a reply");
	ok(smtp_parse_reply_line("25x ok", 6, &r) == -1, "bad code");
	memset(&r, 0, sizeof(r));
	ok(smtp_parse_reply_line("535 5.7.139 Authentication unsuccessful", 39, &r) == 1 &&
	       strcmp(r.enhanced, "5.7.139") == 0,
	   "three-digit enhanced detail");
	memset(&r, 0, sizeof(r));
	smtp_parse_reply_line("250 2.1 not enhanced", 20, &r);
	ok(r.enhanced[0] == '\0', "2.1 is not an enhanced code");
	memset(&r, 0, sizeof(r));
	smtp_parse_reply_line("550 bad\x01\xffthing", 14, &r);
	ok(strcmp(r.text, "bad??thing") == 0, "control and 8-bit bytes masked");

	classify(CURLE_OK, STAGE_DONE, "250 2.0.0 OK queued", OUTCOME_OK, "accepted: 250 2.0.0 OK");
	classify(CURLE_SEND_ERROR, STAGE_MAIL, "451 4.7.500 Server busy", OUTCOME_TEMPFAIL,
	         "MAIL FROM refused: 451 4.7.500 Server busy");
	classify(CURLE_SEND_ERROR, STAGE_RCPT, "550 5.1.10 RESOLVER.ADR.RecipientNotFound",
	         OUTCOME_PERMFAIL, "RCPT TO refused: 550 5.1.10");
	classify(CURLE_WEIRD_SERVER_REPLY, STAGE_BODY, "451 4.3.0 try later", OUTCOME_TEMPFAIL,
	         "end of the message refused: 451");
	classify(CURLE_WEIRD_SERVER_REPLY, STAGE_BODY, "554 5.2.252 SendAsDenied", OUTCOME_PERMFAIL,
	         "554 5.2.252");
	classify(CURLE_LOGIN_DENIED, STAGE_AUTH, "535 5.7.3 Authentication unsuccessful",
	         OUTCOME_PERMFAIL, "AUTH refused: 535 5.7.3");
	classify(CURLE_LOGIN_DENIED, STAGE_AUTH, "454 4.7.0 Temporary authentication failure",
	         OUTCOME_TEMPFAIL, "AUTH refused: 454");
	classify(CURLE_SEND_ERROR, STAGE_MAIL, "530 5.7.57 Client not authenticated to send mail",
	         OUTCOME_PERMFAIL, "530 5.7.57");
	classify(CURLE_SEND_ERROR, STAGE_MAIL, "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit",
	         OUTCOME_TEMPFAIL, "432 4.3.2");
	classify(CURLE_COULDNT_CONNECT, STAGE_CONNECT, NULL, OUTCOME_TEMPFAIL, "cannot connect");
	classify(CURLE_OPERATION_TIMEDOUT, STAGE_GREETING, NULL, OUTCOME_TEMPFAIL,
	         "waiting for the greeting");
	classify(CURLE_USE_SSL_FAILED, STAGE_EHLO, "250 AUTH LOGIN PLAIN", OUTCOME_TEMPFAIL,
	         "does not offer STARTTLS");
	classify(CURLE_PEER_FAILED_VERIFICATION, STAGE_TLS, "220 2.0.0 SMTP server ready",
	         OUTCOME_TEMPFAIL, "TLS failed, nothing was sent");
	classify(CURLE_GOT_NOTHING, STAGE_BODY, "354 Start mail input", OUTCOME_TEMPFAIL,
	         "connection lost after the message was sent");
	classify(CURLE_RECV_ERROR, STAGE_EHLO, NULL, OUTCOME_TEMPFAIL, "connection lost during EHLO");
	classify(CURLE_LOGIN_DENIED, STAGE_AUTH, "250 AUTH CRAM-MD5", OUTCOME_PERMFAIL, "AUTH failed");
	classify(CURLE_WEIRD_SERVER_REPLY, STAGE_TLS, "220 2.0.0 SMTP server ready", OUTCOME_TEMPFAIL,
	         "TLS failed, nothing was sent: the server sent more than its 220");
	classify(CURLE_WEIRD_SERVER_REPLY, STAGE_GREETING, "421 4.3.2 Service not available",
	         OUTCOME_TEMPFAIL, "the server refused the session in its greeting: 421 4.3.2");
	classify(CURLE_OPERATION_TIMEDOUT, STAGE_BODY, "354 go ahead", OUTCOME_TEMPFAIL,
	         "timed out waiting for the reply to the end of the message (it may have been "
	         "delivered)");
	/* A positive last reply never decides a failure. */
	classify(CURLE_SSL_CONNECT_ERROR, STAGE_TLS, "220 ready", OUTCOME_TEMPFAIL, "TLS failed");
	/* STARTTLS answered with neither 220 nor a refusal: TLS never started. */
	classify(CURLE_USE_SSL_FAILED, STAGE_STARTTLS, "354 Start mail input", OUTCOME_TEMPFAIL,
	         "STARTTLS answered 354 Start mail input instead of 220: TLS did not start, "
	         "nothing was sent");
	classify(CURLE_REMOTE_ACCESS_DENIED, STAGE_EHLO, "550 5.7.1 EHLO refused", OUTCOME_PERMFAIL,
	         "EHLO refused: 550 5.7.1 EHLO refused");

	{
		char d[768];
		smtp_describe_hostile(STAGE_GREETING, "multi-line reply longer than 100 lines", d,
		                      sizeof(d));
		ok(strcmp(d,
		          "the greeting: multi-line reply longer than 100 lines; the session was "
		          "closed, nothing was sent") == 0,
		   "hostile greeting: %s", d);
		smtp_describe_hostile(STAGE_EHLO, "reply line longer than 2048 octets", d,
		                      sizeof(d));
		ok(strcmp(d,
		          "the reply to EHLO: reply line longer than 2048 octets; the session was "
		          "closed, the message was not sent") == 0,
		   "hostile EHLO reply: %s", d);
		smtp_describe_hostile(STAGE_BODY, "x", d, sizeof(d));
		ok(strstr(d, "the reply to the end of the message: x;") == d &&
		       strstr(d, "may have been delivered") != NULL,
		   "hostile reply after the data: %s", d);
		smtp_describe_hostile(STAGE_RCPT, "x", d, 20);
		ok(strlen(d) == 19, "hostile detail cut to its buffer: %s", d);
	}

	{
		struct attempt a[3];
		memset(a, 0, sizeof(a));
		a[0].result.outcome = OUTCOME_TEMPFAIL;
		a[1].result.outcome = OUTCOME_PERMFAIL;
		ok(delivery_outcome(a, 2) == OUTCOME_TEMPFAIL, "temp + perm = tempfail (retry later)");
		a[0].result.outcome = OUTCOME_PERMFAIL;
		ok(delivery_outcome(a, 2) == OUTCOME_PERMFAIL, "perm everywhere = permfail");
		a[2].result.outcome = OUTCOME_OK;
		ok(delivery_outcome(a, 3) == OUTCOME_OK, "one accepting server = ok");
		ok(delivery_outcome(a, 0) == OUTCOME_TEMPFAIL, "no attempt = tempfail");
	}
	return done_testing();
}

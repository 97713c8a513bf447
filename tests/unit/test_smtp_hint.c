#include "config.h"

#include <curl/curl.h>
#include <stdlib.h>

#include "smtp.h"
#include "smtp_hint.h"
#include "tap.h"

static struct smtp_reply reply(const char *line)
{
	struct smtp_reply r;

	memset(&r, 0, sizeof(r));
	smtp_parse_reply_line(line, strlen(line), &r);
	return r;
}

/* The reply has a hint that contains needle (NULL: the reply has no hint at all). */
static void hint(const char *line, const char *needle)
{
	struct smtp_reply r = reply(line);
	const char *h = smtp_hint_for(&r);

	if (needle == NULL)
		ok(h == NULL, "no hint for %s%s%s", line, h ? ": " : "", h ? h : "");
	else
		ok(h != NULL && strstr(h, needle) != NULL, "%s -> %s", line, h ? h : "(no hint)");
}

/* What smtp_classify makes of the reply at stage st: the outcome and a detail line holding
 * each of the needles. */
static void classify(enum smtp_stage st, const char *line, enum outcome want, const char *n1,
                     const char *n2)
{
	struct smtp_reply r = reply(line);
	char detail[768];
	enum outcome o = smtp_classify(CURLE_SEND_ERROR, st, &r, "", detail, sizeof(detail));

	ok(o == want && strstr(detail, n1) != NULL && (n2 == NULL || strstr(detail, n2) != NULL),
	   "%s at %s -> %s: %s", line, smtp_stage_name(st), outcome_name(want), detail);
}

int main(void)
{
	/* Each reply of the table, with the texts Office 365 sends. */
	hint("432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", "max_connections: 3");
	hint("432 4.3.2 Concurrent connections limit exceeded. Visit "
	     "https://aka.ms/concurrent_sending "
	     "for more information.",
	     "3 concurrent connections per mailbox");
	hint("421 4.3.2 Concurrent connections limit exceeded.", "max_connections: 3");
	hint("421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to "
	     "support TLS 1.2. Visit https://aka.ms/smtp_auth_tls",
	     "TLS-intercepting proxy or middlebox");
	hint(
	    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
	    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
	    "Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false");
	hint(
	    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
	    "Mailbox.",
	    "end of December 2026: use auth: xoauth2");
	hint("535 5.7.139 Authentication unsuccessful, user is locked by your organization's "
	     "security "
	     "defaults policy. Contact your administrator.",
	     "security defaults");
	hint("535 5.7.139 Authentication unsuccessful, basic authentication is disabled.",
	     "use auth: xoauth2");
	hint("550 5.7.30 Basic authentication is not supported for Client Submission.",
	     "use auth: xoauth2");
	hint("535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]",
	     "SMTP.SendAsApp");
	hint("535 5.7.3 Authentication unsuccessful", "FullAccess on the mailbox");
	hint("550 5.7.60 SMTP; Client does not have permissions to send as this sender",
	     "set from: to the mailbox in username:");
	hint("554 5.2.252 SendAsDenied; alerts@contoso.com not allowed to send as ops@contoso.com",
	     "Send As");
	hint("554 5.2.0 "
	     "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
	     "Send As");
	hint("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to "
	     "process message due to a permanent exception",
	     "10,000 recipients a day");
	hint("554 5.2.0 storedrv.submission.exception:submissionquotaexceededexception",
	     "10,000 recipients a day");
	hint("530 5.7.57 Client not authenticated to send mail. [AM0PR01CA0123]",
	     "set auth: xoauth2");

	/* Near misses: another code, another enhanced code, or the text that decides missing. */
	hint("535 5.7.8 Error: authentication failed: authentication failure", NULL);
	hint("535 5.7.30 Authentication unsuccessful", NULL);
	hint("550 5.7.3 Authentication unsuccessful", NULL);
	hint("535 Authentication unsuccessful", NULL);
	hint("554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuota", NULL);
	hint("554 5.2.0 STOREDRV.Submission.Exception:OutboundSpamException", NULL);
	hint("552 5.2.0 SubmissionQuotaExceeded", NULL);
	hint("554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException", NULL);
	hint("421 4.3.2 Service not available, closing transmission channel", NULL);
	hint("451 4.3.2 Concurrent connections limit exceeded", NULL);
	hint("550 5.7.606 Access denied, banned sending IP", NULL);
	hint("550 5.7.30 Relay access denied", NULL);
	hint("530 5.7.0 Must issue a STARTTLS command first", NULL);
	hint("250 2.0.0 OK", NULL);
	{
		struct smtp_reply r = reply("535 5.7.3 Authentication unsuccessful");
		const struct smtp_hint *a = smtp_hint_find(&r);
		r = reply("535 5.7.139 Authentication unsuccessful");
		ok(a != NULL && smtp_hint_find(&r) != NULL && smtp_hint_find(&r) != a,
		   "535 5.7.3 and 535 5.7.139 have hints of their own");
		ok(smtp_hint_find(NULL) == NULL, "no reply, no hint");
	}

	/* Temporary in spite of the 5xx: the daily quota only. */
	{
		struct smtp_reply r;
		r = reply(
		    "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException");
		ok(smtp_hint_temporary(&r), "554 5.2.0 SubmissionQuotaExceeded is temporary");
		r = reply("554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException");
		ok(!smtp_hint_temporary(&r), "554 5.2.0 SendAsDenied is not");
		r = reply("554 5.2.0 Something else");
		ok(!smtp_hint_temporary(&r), "554 5.2.0 with another text is not");
		r = reply(
		    "550 5.7.60 SMTP; Client does not have permissions to send as this sender");
		ok(!smtp_hint_temporary(&r), "550 5.7.60 is not");
	}

	/* Through smtp_classify: the line as before, then the hint; the quota's outcome. */
	classify(
	    STAGE_BODY, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
	    OUTCOME_TEMPFAIL,
	    "the end of the message refused: 554 5.2.0 "
	    "STOREDRV.Submission.Exception:SubmissionQuotaExceededException (hint: the mailbox "
	    "reached Office 365's limit of 10,000 recipients a day",
	    NULL);
	classify(STAGE_BODY, "554 5.2.0 STOREDRV.Submission.Exception:OutboundSpamException",
	         OUTCOME_PERMFAIL, "554 5.2.0", NULL);
	classify(
	    STAGE_MAIL, "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
	    OUTCOME_PERMFAIL,
	    "MAIL FROM refused: 550 5.7.60 SMTP; Client does not have permissions to send as this "
	    "sender (hint: the sender is not the authenticated mailbox",
	    "Send As on this address)");
	classify(STAGE_AUTH,
	         "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is "
	         "disabled for the Tenant.",
	         OUTCOME_PERMFAIL, "AUTH refused: 535 5.7.139 ", "use auth: xoauth2)");
	classify(STAGE_AUTH, "535 5.7.3 Authentication unsuccessful", OUTCOME_PERMFAIL,
	         "AUTH refused: 535 5.7.3 Authentication unsuccessful (hint: the credentials were "
	         "refused",
	         NULL);
	classify(STAGE_GREETING, "432 4.3.2 Concurrent connections limit exceeded.",
	         OUTCOME_TEMPFAIL,
	         "refused the session in its greeting: 432 4.3.2 Concurrent connections limit "
	         "exceeded. (hint: Office 365 allows 3",
	         NULL);
	classify(STAGE_EHLO, "421 4.7.66 TLS 1.0 and 1.1 are not supported.", OUTCOME_TEMPFAIL,
	         "EHLO refused: 421 4.7.66 ", "(hint: alertmail always uses TLS 1.2 or later");
	classify(STAGE_MAIL, "530 5.7.57 Client not authenticated to send mail", OUTCOME_PERMFAIL,
	         "MAIL FROM refused: 530 5.7.57 ", "(hint: Office 365 takes mail only after AUTH");
	classify(STAGE_RCPT, "550 5.1.10 RESOLVER.ADR.RecipientNotFound", OUTCOME_PERMFAIL,
	         "RCPT TO refused: 550 5.1.10 RESOLVER.ADR.RecipientNotFound", NULL);
	{
		struct smtp_reply r = reply("550 5.1.10 RESOLVER.ADR.RecipientNotFound");
		char detail[768];
		smtp_classify(CURLE_SEND_ERROR, STAGE_RCPT, &r, "", detail, sizeof(detail));
		ok(strstr(detail, "hint") == NULL, "a reply without a hint gets none: %s", detail);
	}

	/* The longest reply the parser keeps, with a hint: the reply whole, the hint cut after it.
	 */
	{
		char line[600], detail[768], want[600];
		struct smtp_reply r;
		size_t n;
		memcpy(line, "535 5.7.139 ", 12);
		memset(line + 12, 'x', sizeof(line) - 12);
		memcpy(line + 12, "SmtpClientAuthentication is disabled ", 37);
		line[sizeof(line) - 1] = '\0';
		r = reply(line);
		ok(strlen(r.text) == sizeof(r.text) - 1,
		   "the reply text is as long as it can be (%zu)", strlen(r.text));
		smtp_classify(CURLE_LOGIN_DENIED, STAGE_GREETING, &r, "", detail, sizeof(detail));
		n = strlen(detail);
		snprintf(want, sizeof(want), "%d %s %s (hint: ", r.code, r.enhanced, r.text);
		ok(strstr(detail, want) != NULL, "the reply is whole in the detail, then the hint");
		ok(n < sizeof(detail) && n > sizeof(detail) - 30 &&
		       strcmp(detail + n - 4, "...)") == 0,
		   "the hint is cut to fit and says so (%zu octets): ...%s", n, detail + n - 60);
		ok(detail[n - 5] != ' ',
		   "the hint is cut at a word, without a space before the dots");
		/* Too little room for a useful part of the hint: none at all, the reply whole. */
		smtp_classify(CURLE_LOGIN_DENIED, STAGE_AUTH, &r, "", detail, 585);
		ok(strstr(detail, r.text) != NULL && strstr(detail, "(hint") == NULL,
		   "with too little room the hint is left out (%zu octets)", strlen(detail));
	}
	{
		char d[40] = "short line";
		struct smtp_reply r = reply("535 5.7.3 Authentication unsuccessful");
		smtp_hint_append(&r, d, sizeof(d));
		is_str(d, "short line", "no room for a hint of some use: the line unchanged");
		smtp_hint_append(&r, d, 0);
		ok(1, "a zero-sized detail is left alone");
	}
	{
		char d[120] = "AUTH refused: 535 5.7.3 Authentication unsuccessful";
		struct smtp_reply r = reply("535 5.7.3 Authentication unsuccessful");
		smtp_hint_append(&r, d, sizeof(d));
		ok(strlen(d) < sizeof(d) &&
		       strstr(d, "(hint: the credentials were refused") != NULL &&
		       strcmp(d + strlen(d) - 4, "...)") == 0,
		   "a small detail buffer: the hint cut to it: %s", d);
	}
	return done_testing();
}

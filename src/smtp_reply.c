#include "config.h"

#include "smtp.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "smtp_hint.h"

/* The server's replies, what a session's end means, and names for both: pure functions. */

const char *outcome_name(enum outcome o)
{
	switch (o) {
	case OUTCOME_OK:
		return "ok";
	case OUTCOME_TEMPFAIL:
		return "tempfail";
	case OUTCOME_PERMFAIL:
		return "permfail";
	}
	return "?";
}

/* Each stage's short name and the phrase for "... refused" and "timed out ...". */
static const struct {
	const char *name;
	const char *doing;
} stages[] = {
	[STAGE_CONNECT] = {"connect", "connecting"},
	[STAGE_GREETING] = {"greeting", "waiting for the server's greeting"},
	[STAGE_EHLO] = {"EHLO", "EHLO"},
	[STAGE_STARTTLS] = {"STARTTLS", "STARTTLS"},
	[STAGE_TLS] = {"TLS handshake", "TLS handshake"},
	[STAGE_AUTH] = {"AUTH", "AUTH"},
	[STAGE_MAIL] = {"MAIL FROM", "MAIL FROM"},
	[STAGE_RCPT] = {"RCPT TO", "RCPT TO"},
	[STAGE_DATA] = {"DATA", "DATA"},
	[STAGE_BODY] = {"end of data", "the end of the message"},
	[STAGE_DONE] = {"done", "done"},
};

const char *smtp_stage_name(enum smtp_stage s)
{
	return (unsigned)s < sizeof(stages) / sizeof(stages[0]) ? stages[s].name : "?";
}

static const char *stage_doing(enum smtp_stage s)
{
	return (unsigned)s < sizeof(stages) / sizeof(stages[0]) ? stages[s].doing : "?";
}

int smtp_parse_reply_line(const char *line, size_t len, struct smtp_reply *r)
{
	size_t i = 0, tlen;
	const char *text;
	int last;

	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	r->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = len == 3 || line[3] == ' ';
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	/* An enhanced status code: class "." subject "." detail, digits, then a space or the end. */
	if (tlen >= 5 && (text[0] == '2' || text[0] == '4' || text[0] == '5') && text[1] == '.') {
		size_t j = 2, dots = 1;
		while (j < tlen && j < sizeof(r->enhanced) - 1 &&
		       (isdigit((unsigned char)text[j]) || text[j] == '.')) {
			if (text[j] == '.')
				dots++;
			j++;
		}
		if (dots == 2 && isdigit((unsigned char)text[j - 1]) && (j == tlen || text[j] == ' ')) {
			memcpy(r->enhanced, text, j);
			r->enhanced[j] = '\0';
			text += j;
			tlen -= j;
			while (tlen > 0 && *text == ' ') {
				text++;
				tlen--;
			}
		}
	}
	/* Keep printable ASCII only: the text goes to logs and reason files. */
	i = strlen(r->text);
	if (i > 0 && tlen > 0 && i + 1 < sizeof(r->text))
		r->text[i++] = ' ';
	for (size_t k = 0; k < tlen && i + 1 < sizeof(r->text); k++) {
		unsigned char c = (unsigned char)text[k];
		r->text[i++] = (char)((c >= 0x20 && c < 0x7f) ? c : '?');
	}
	r->text[i] = '\0';
	return last;
}

void smtp_describe_hostile(enum smtp_stage stage, const char *why, char *detail, size_t detail_len)
{
	if (stage == STAGE_CONNECT || stage == STAGE_GREETING)
		snprintf(detail, detail_len,
		         "the greeting: %s; the session was closed, nothing was sent", why);
	else if (stage == STAGE_BODY || stage == STAGE_DONE)
		snprintf(detail, detail_len,
		         "the reply to the end of the message: %s; the session was closed (the "
		         "message may have been delivered)",
		         why);
	else
		snprintf(detail, detail_len,
		         "the reply to %s: %s; the session was closed, the message was not sent",
		         stage_doing(stage), why);
}

enum outcome smtp_classify(int curl_code, enum smtp_stage stage, const struct smtp_reply *reply,
                           const char *errbuf, char *detail, size_t detail_len)
{
	CURLcode cc = (CURLcode)curl_code;
	const char *why = (errbuf != NULL && errbuf[0] != '\0') ? errbuf : curl_easy_strerror(cc);
	const char *enh = reply->enhanced[0] ? reply->enhanced : "";
	const char *sep = reply->enhanced[0] ? " " : "";

	if (cc == CURLE_OK) {
		if (reply->code > 0)
			snprintf(detail, detail_len, "accepted: %d %s%s%s", reply->code, enh, sep,
			         reply->text);
		else
			snprintf(detail, detail_len, "accepted");
		return OUTCOME_OK;
	}
	/* The server said no: its reply decides. */
	if (reply->code >= 400 && reply->code < 600 && stage != STAGE_CONNECT) {
		if (stage == STAGE_GREETING)
			snprintf(detail, detail_len, "the server refused the session in its greeting: %d %s%s%s",
			         reply->code, enh, sep, reply->text);
		else
			snprintf(detail, detail_len, "%s refused: %d %s%s%s", stage_doing(stage), reply->code,
			         enh, sep, reply->text);
		/* A known reply gets a hint; a few 5xx (a daily quota) pass by themselves. */
		smtp_hint_append(reply, detail, detail_len);
		return reply->code < 500 || smtp_hint_temporary(reply) ? OUTCOME_TEMPFAIL
		                                                        : OUTCOME_PERMFAIL;
	}
	/* libcurl refuses lines that arrive with the 220 to STARTTLS, before TLS: what an attacker
	 * injecting commands into the plaintext part would send (CVE-2021-22947). */
	if (cc == CURLE_WEIRD_SERVER_REPLY && (stage == STAGE_STARTTLS || stage == STAGE_TLS)) {
		snprintf(detail, detail_len,
		         "TLS failed, nothing was sent: the server sent more than its 220 reply to "
		         "STARTTLS before the handshake (response injection?): %s",
		         why);
		return OUTCOME_TEMPFAIL;
	}
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(detail, detail_len, "cannot resolve the host name: %s", why);
		return OUTCOME_TEMPFAIL;
	case CURLE_COULDNT_CONNECT:
		snprintf(detail, detail_len, "cannot connect: %s", why);
		return OUTCOME_TEMPFAIL;
	case CURLE_OPERATION_TIMEDOUT:
		if (stage == STAGE_BODY)
			snprintf(detail, detail_len,
			         "timed out waiting for the reply to the end of the message (it may have "
			         "been delivered): %s",
			         why);
		else
			snprintf(detail, detail_len, "timed out %s%s: %s",
			         stage == STAGE_GREETING ? "waiting for the greeting (connected, server silent)"
			         : stage == STAGE_CONNECT ? "connecting"
			                                  : "waiting for the reply to ",
			         stage == STAGE_GREETING || stage == STAGE_CONNECT ? "" : stage_doing(stage),
			         why);
		return OUTCOME_TEMPFAIL;
	case CURLE_USE_SSL_FAILED:
		/* Offered, then answered with neither 220 nor a refusal (a 354, say): stripped. */
		if (stage == STAGE_STARTTLS && reply->code > 0) {
			snprintf(detail, detail_len,
			         "STARTTLS answered %d %s%s%s instead of 220: TLS did not start, "
			         "nothing was sent",
			         reply->code, enh, sep, reply->text);
			return OUTCOME_TEMPFAIL;
		}
		snprintf(detail, detail_len,
		         "the server does not offer STARTTLS, which tls: starttls requires; nothing was "
		         "sent");
		return OUTCOME_TEMPFAIL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		snprintf(detail, detail_len, "TLS failed, nothing was sent: %s", why);
		return OUTCOME_TEMPFAIL;
	case CURLE_LOGIN_DENIED:
		snprintf(detail, detail_len, "AUTH failed: %s", why);
		return OUTCOME_PERMFAIL;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_PARTIAL_FILE:
		if (stage == STAGE_BODY)
			snprintf(detail, detail_len,
			         "connection lost after the message was sent, before the server's reply "
			         "(it may have been delivered): %s",
			         why);
		else
			snprintf(detail, detail_len, "connection lost during %s: %s", stage_doing(stage),
			         why);
		return OUTCOME_TEMPFAIL;
	default:
		snprintf(detail, detail_len, "%s failed: %s", stage_doing(stage), why);
		return OUTCOME_TEMPFAIL;
	}
}

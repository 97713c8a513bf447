#include "config.h"

#include "smtp_hint.h"

#include <string.h>
#include <strings.h>

/* Office 365's replies are documented by Microsoft (client submission limits, SMTP AUTH,
 * OAuth client credentials); the texts below say what each one means for alertmail's config. */
#define HINT_CONCURRENCY                                                                           \
	"Office 365 allows 3 concurrent connections per mailbox, counting every program that "     \
	"sends as it: set max_connections: 3 or lower on this server"
#define HINT_SENDAS                                                                                \
	"the sender is not the authenticated mailbox: set from: to the mailbox in username:, or "  \
	"grant that mailbox Send As on this address"
#define HINT_BASIC_AUTH_OFF                                                                        \
	"Office 365 takes no password for this mailbox (an authentication policy, security "       \
	"defaults, or the default from the end of December 2026): use auth: xoauth2"

static const struct smtp_hint hints[] = {
    /* Both texts Office 365 gives for more than 3 sessions of one mailbox at once. */
    {432, "4.3.2", NULL, false, HINT_CONCURRENCY},
    {421, "4.3.2", "concurrent connections limit", false, HINT_CONCURRENCY},
    {421, "4.7.66", NULL, false,
     "alertmail always uses TLS 1.2 or later, so something in between (a TLS-intercepting "
     "proxy or middlebox) spoke TLS 1.0/1.1 to Office 365: exempt this connection from TLS "
     "inspection or update that device"},
    {535, "5.7.139", "basic authentication is disabled", false, HINT_BASIC_AUTH_OFF},
    /* SmtpClientAuthentication disabled for the tenant or the mailbox, security defaults, and
     * the other texts of 5.7.139: all say SMTP AUTH is not allowed for this mailbox. */
    {535, "5.7.139", NULL, false,
     "SMTP AUTH is disabled for this mailbox or the tenant, or blocked by security defaults: "
     "enable it for the mailbox (Set-CASMailbox -Identity <mailbox> "
     "-SmtpClientAuthenticationDisabled $false) or for the tenant, or turn off security "
     "defaults; password SMTP AUTH is off by default from the end of December 2026: use "
     "auth: xoauth2"},
    {550, "5.7.30", "basic authentication", false, HINT_BASIC_AUTH_OFF},
    {535, "5.7.3", NULL, false,
     "the credentials were refused: with auth: login a wrong password; with auth: xoauth2 a "
     "wrong or expired token, username: not the mailbox, an app without admin consent for "
     "SMTP.SendAsApp (Office 365 Exchange Online), or a service principal without FullAccess "
     "on the mailbox (New-ServicePrincipal, Add-MailboxPermission)"},
    {550, "5.7.60", NULL, false, HINT_SENDAS},
    {554, "5.2.252", NULL, false, HINT_SENDAS},
    {554, "5.2.0", "SendAsDenied", false, HINT_SENDAS},
    /* A daily quota frees itself: the alert waits in the queue instead of failing at once. */
    {554, "5.2.0", "SubmissionQuotaExceeded", true,
     "the mailbox reached Office 365's limit of 10,000 recipients a day (a rolling 24 hours); "
     "temporary: the daemon keeps the alert and sends it once the count is below the limit"},
    {530, "5.7.57", NULL, false,
     "Office 365 takes mail only after AUTH: set auth: xoauth2 (or login), username: and its "
     "credentials on this server entry"},
};

/* The least of a hint worth showing; less than this is noise. */
#define HINT_MIN 40

static bool text_has(const char *text, const char *needle)
{
	size_t n = strlen(needle);

	for (const char *p = text; *p != '\0'; p++)
		if (strncasecmp(p, needle, n) == 0)
			return true;
	return false;
}

const struct smtp_hint *smtp_hint_find(const struct smtp_reply *r)
{
	if (r == NULL || r->enhanced[0] == '\0')
		return NULL;
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		const struct smtp_hint *h = &hints[i];
		if (h->code == r->code && strcmp(h->enhanced, r->enhanced) == 0 &&
		    (h->needle == NULL || text_has(r->text, h->needle)))
			return h;
	}
	return NULL;
}

const char *smtp_hint_for(const struct smtp_reply *r)
{
	const struct smtp_hint *h = smtp_hint_find(r);

	return h != NULL ? h->text : NULL;
}

bool smtp_hint_temporary(const struct smtp_reply *r)
{
	const struct smtp_hint *h = smtp_hint_find(r);

	return h != NULL && h->temporary;
}

void smtp_hint_append(const struct smtp_reply *r, char *detail, size_t detail_len)
{
	static const char open[] = " (hint: ";
	const char *hint = smtp_hint_for(r);
	size_t used, room, n;

	if (hint == NULL || detail_len == 0)
		return;
	used = strnlen(detail, detail_len - 1);
	room = detail_len - 1 - used;
	if (room < sizeof(open) - 1 + HINT_MIN + 4)
		return;
	room -= sizeof(open) - 1;
	n = strlen(hint);
	memcpy(detail + used, open, sizeof(open) - 1);
	used += sizeof(open) - 1;
	if (n + 1 <= room) {
		memcpy(detail + used, hint, n);
		used += n;
		detail[used++] = ')';
	} else {
		/* Cut at the last space that leaves room for "...)". */
		n = room - 4;
		while (n > HINT_MIN && hint[n] != ' ')
			n--;
		memcpy(detail + used, hint, n);
		used += n;
		memcpy(detail + used, "...)", 4);
		used += 4;
	}
	detail[used] = '\0';
}

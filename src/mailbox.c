#include "config.h"

#include "mailbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "charset.h"

/* RFC 5321 4.5.3.1 limits. */
#define ADDR_MAX 254
#define LOCAL_MAX 64
#define DOMAIN_MAX 253
#define LABEL_MAX 63
/* A whole mailbox, display name included, fits on one header line (RFC 5322 2.1.1). */
#define MAILBOX_MAX 998

static bool domain_ok(const char *d)
{
	size_t n = strlen(d), i, label = 0;

	if (n == 0 || n > DOMAIN_MAX)
		return false;
	if (d[0] == '[') {
		/* An address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
		if (n < 3 || d[n - 1] != ']')
			return false;
		for (i = 1; i < n - 1; i++) {
			if (!charset_is_alnum((unsigned char)d[i]) && d[i] != '.' && d[i] != ':')
				return false;
		}
		return true;
	}
	for (i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > LABEL_MAX)
				return false;
			label = 0;
		} else if (charset_is_alnum(c) || c == '-' || c == '_') {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

int mailbox_check_domain(const char *domain)
{
	return domain_ok(domain) ? 0 : -1;
}

int message_check_addr(const char *addr, struct err *e)
{
	const char *p, *at;
	size_t len, local, i;

	if (addr == NULL || addr[0] == '\0') {
		err_set(e, "empty address");
		return -1;
	}
	/* First the characters that must not be echoed into an error message or a log. */
	for (p = addr; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n') {
			err_set(e, "address contains a line break (CR or LF)");
			return -1;
		}
		if (c < 0x20 || c == 0x7f) {
			err_set(e, "address contains a control character (0x%02x)", c);
			return -1;
		}
		if (c >= 0x80) {
			err_set(e, "address contains non-ASCII characters, which need SMTPUTF8 "
			           "(write an international domain in its xn-- form)");
			return -1;
		}
	}
	len = (size_t)(p - addr);
	for (p = addr; *p != '\0'; p++) {
		if (*p == ' ') {
			err_set(e, "address '%s' contains a space", addr);
			return -1;
		}
		if (*p == '<' || *p == '>') {
			err_set(e, "address '%s' contains '%c': give the bare address here", addr,
			        *p);
			return -1;
		}
	}
	if (len > ADDR_MAX) {
		err_set(e, "address '%s' is longer than %d characters", addr, ADDR_MAX);
		return -1;
	}
	at = strchr(addr, '@');
	if (at == NULL) {
		err_set(e, "address '%s' has no '@'", addr);
		return -1;
	}
	if (strchr(at + 1, '@') != NULL) {
		err_set(e, "address '%s' has more than one '@'", addr);
		return -1;
	}
	local = (size_t)(at - addr);
	if (local == 0) {
		err_set(e, "address '%s' has an empty local part", addr);
		return -1;
	}
	if (at[1] == '\0') {
		err_set(e, "address '%s' has an empty domain", addr);
		return -1;
	}
	if (local > LOCAL_MAX) {
		err_set(e, "address '%s' has a local part longer than %d characters", addr,
		        LOCAL_MAX);
		return -1;
	}
	/* A dot-atom local part; quoted local parts are legal but not worth the risk here. */
	for (i = 0; i < local; i++) {
		if (addr[i] == '.') {
			if (i == 0 || i + 1 == local || addr[i + 1] == '.') {
				err_set(e, "address '%s' has a misplaced '.' in the local part",
				        addr);
				return -1;
			}
		} else if (!charset_is_atext((unsigned char)addr[i])) {
			err_set(e, "address '%s' has an invalid character '%c' in the local part",
			        addr, addr[i]);
			return -1;
		}
	}
	if (!domain_ok(at + 1)) {
		err_set(e, "address '%s' has an invalid domain '%s'", addr, at + 1);
		return -1;
	}
	return 0;
}

/* Copies the display part, removing the quotes and backslashes of quoted strings. */
static char *display_unquote(const char *s, size_t n)
{
	struct buf b;
	bool quoted = false;
	size_t i, start, end;
	char *d;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		if (s[i] == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && s[i] == '\\' && i + 1 < n)
			i++;
		buf_addc(&b, s[i]);
	}
	d = buf_steal(&b);
	for (start = 0; d[start] == ' '; start++)
		;
	for (end = strlen(d); end > start && d[end - 1] == ' '; end--)
		;
	if (start == end) {
		free(d);
		return NULL;
	}
	memmove(d, d + start, end - start);
	d[end - start] = '\0';
	return d;
}

int mailbox_parse(const char *in, struct mailbox *out, struct err *e)
{
	const char *p, *s, *end, *lt = NULL, *gt = NULL;
	bool quoted = false;
	char *addr;

	out->display = NULL;
	out->addr = NULL;
	if (in == NULL)
		in = "";
	if (strlen(in) > MAILBOX_MAX) {
		err_set(e, "address '%.40s...' is %zu bytes long, more than the limit of %d", in,
		        strlen(in), MAILBOX_MAX);
		return -1;
	}
	for (p = in; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n') {
			err_set(e, "address contains a line break (CR or LF)");
			return -1;
		}
		if (c < 0x20 || c == 0x7f) {
			err_set(e, "address contains a control character (0x%02x)", c);
			return -1;
		}
	}
	if (!charset_utf8_valid(in)) {
		err_set(e, "address is not valid UTF-8");
		return -1;
	}
	/* The other line breaks and controls of Unicode (NEL, U+2028, U+2029, C1), which a
	 * display name could otherwise carry into a header. */
	for (size_t i = 0, n = strlen(in), adv; i < n; i += adv) {
		long cp = charset_utf8_decode((const unsigned char *)in + i, n - i, &adv);
		if (charset_is_control(cp)) {
			err_set(e,
			        "address contains a control character or line separator (U+%04lX)",
			        cp);
			return -1;
		}
	}
	for (s = in; *s == ' '; s++)
		;
	for (end = s + strlen(s); end > s && end[-1] == ' '; end--)
		;
	if (s == end) {
		err_set(e, "empty address");
		return -1;
	}
	for (p = s; p < end; p++) {
		if (quoted) {
			if (*p == '\\' && p + 1 < end)
				p++;
			else if (*p == '"')
				quoted = false;
		} else if (*p == '"' && lt == NULL) {
			quoted = true;
		} else if (*p == '<') {
			if (lt != NULL) {
				err_set(e, "address '%s' has more than one '<'", in);
				return -1;
			}
			lt = p;
		} else if (*p == '>') {
			if (lt == NULL || gt != NULL) {
				err_set(e, "address '%s' has unbalanced '<' and '>'", in);
				return -1;
			}
			gt = p;
		} else if ((*p == ',' || *p == ';') && (lt == NULL || gt != NULL)) {
			err_set(e, "address '%s' holds more than one address (give one per item)",
			        in);
			return -1;
		}
	}
	if (quoted) {
		err_set(e, "address '%s' has an unterminated quoted string", in);
		return -1;
	}
	if (lt != NULL && gt == NULL) {
		err_set(e, "address '%s' has unbalanced '<' and '>'", in);
		return -1;
	}
	if (gt != NULL && gt + 1 != end) {
		err_set(e, "address '%s' has text after '>' (give one address per item)", in);
		return -1;
	}
	if (lt == NULL) {
		addr = xstrndup(s, (size_t)(end - s));
	} else {
		addr = xstrndup(lt + 1, (size_t)(gt - lt - 1));
		if (addr[0] == '\0') {
			err_set(e, "address '%s' has nothing between '<' and '>'", in);
			free(addr);
			return -1;
		}
	}
	if (message_check_addr(addr, e) < 0) {
		free(addr);
		return -1;
	}
	out->addr = addr;
	if (lt != NULL)
		out->display = display_unquote(s, (size_t)(lt - s));
	return 0;
}

void mailbox_free(struct mailbox *m)
{
	if (m == NULL)
		return;
	free(m->display);
	free(m->addr);
	m->display = NULL;
	m->addr = NULL;
}

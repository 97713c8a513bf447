#include "config.h"

#include "message.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"

/* RFC 5322 2.1.1 recommends 78 columns; RFC 2047 caps an encoded word at 75 octets;
 * RFC 2045 caps a quoted-printable line at 76. */
#define HDR_COLS 78
#define EW_MAX 75
#define QP_COLS 76
/* Longer alert ids are hashed so the Message-ID stays short. */
#define ID_MAX 64
#define ID_HASH_HEX 32
#define BOUNDARY_HEX 24

/* Always Q: it keeps mostly-ASCII alert subjects readable in the raw message. */
#define EW_PREFIX "=?UTF-8?Q?"
#define EW_SUFFIX "?="
#define EW_OVERHEAD (sizeof(EW_PREFIX) - 1 + sizeof(EW_SUFFIX) - 1)

/* Upper case in QP and Q (RFC 2045 requires it), lower case in identifiers. */
static const char hexdigits[] = "0123456789ABCDEF";
static const char lowerhex[] = "0123456789abcdef";

/* ---- UTF-8 ---- */

/* Bodies are declared charset=utf-8, so make that true: bad bytes become U+FFFD. */
static char *body_clean(const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in), i = 0, adv;
	struct buf b;

	buf_init(&b);
	while (i < n) {
		long cp = charset_utf8_decode(s + i, n - i, &adv);

		if (cp < 0)
			charset_utf8_put(&b, 0xfffd);
		else
			buf_add(&b, s + i, adv);
		i += adv;
	}
	return buf_steal(&b);
}

/* Header text: valid UTF-8, every control character (C0, DEL, C1, the line and paragraph
 * separators) turned into a space, runs of spaces collapsed, no space at either end. No line
 * break of any kind can survive into a header. */
static char *header_clean(const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in), i = 0, adv;
	bool space = false;
	struct buf b;

	buf_init(&b);
	while (i < n) {
		long cp = charset_utf8_decode(s + i, n - i, &adv);

		i += adv;
		if (cp < 0)
			cp = 0xfffd;
		if (cp == ' ' || charset_is_control(cp)) {
			space = true;
			continue;
		}
		if (space && b.len > 0)
			buf_addc(&b, ' ');
		space = false;
		charset_utf8_put(&b, cp);
	}
	return buf_steal(&b);
}

/* ---- Header lines ---- */

struct hdr {
	struct buf *out;
	size_t col;  /* octets on the current physical line */
	bool tokens; /* a token is already on the logical line, so folding is possible */
};

static void hdr_begin(struct hdr *h, struct buf *out, const char *name)
{
	h->out = out;
	buf_adds(out, name);
	buf_addc(out, ':');
	h->col = strlen(name) + 1;
	h->tokens = false;
}

/* Appends one unbreakable token after a space. The fold goes before the space, so the
 * space becomes the folding whitespace and unfolding gives back the same text. */
static void hdr_token(struct hdr *h, const char *s, size_t n)
{
	if (h->tokens && h->col + 1 + n > HDR_COLS) {
		buf_add(h->out, "\r\n", 2);
		h->col = 0;
	}
	buf_addc(h->out, ' ');
	buf_add(h->out, s, n);
	h->col += 1 + n;
	h->tokens = true;
}

static void hdr_end(struct hdr *h)
{
	buf_add(h->out, "\r\n", 2);
}

/* Q encoding with the narrowest literal set of RFC 2047 5(3), valid in phrases too, so one
 * encoder serves Subject and display names. */
static bool q_literal(unsigned char c)
{
	return charset_is_alnum(c) || c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_cost(const unsigned char *s, size_t n)
{
	size_t i, cost = 0;

	for (i = 0; i < n; i++)
		cost += q_literal(s[i]) || s[i] == ' ' ? 1 : 3;
	return cost;
}

static void q_put(struct buf *b, const unsigned char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == ' ') {
			buf_addc(b, '_');
		} else if (q_literal(s[i])) {
			buf_addc(b, (char)s[i]);
		} else {
			char t[3] = {'=', hexdigits[s[i] >> 4], hexdigits[s[i] & 0xf]};
			buf_add(b, t, sizeof(t));
		}
	}
}

/* Emits clean UTF-8 text as encoded words, each within 75 octets and, where possible, the
 * line. Words are cut between characters only. Whitespace between adjacent encoded words
 * is dropped by decoders, so spaces travel inside the words. */
static void hdr_encoded(struct hdr *h, const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;
	struct buf w;

	buf_init(&w);
	while (i < len) {
		size_t adv, room;

		charset_utf8_decode(s + i, len - i, &adv);
		/* Fill the rest of this line, or a whole fresh one when not even one more
		 * character fits here. */
		if (h->col + 1 + EW_OVERHEAD + q_cost(s + i, adv) <= HDR_COLS)
			room = HDR_COLS - h->col - 1;
		else
			room = HDR_COLS - 1;
		if (room > EW_MAX)
			room = EW_MAX;
		buf_reset(&w);
		buf_adds(&w, EW_PREFIX);
		do {
			charset_utf8_decode(s + i, len - i, &adv);
			if (w.len > sizeof(EW_PREFIX) - 1 &&
			    w.len + q_cost(s + i, adv) + sizeof(EW_SUFFIX) - 1 > room)
				break;
			q_put(&w, s + i, adv);
			i += adv;
		} while (i < len);
		buf_adds(&w, EW_SUFFIX);
		hdr_token(h, w.data, w.len);
	}
	buf_free(&w);
}

/* Some readers (Python's email package among them) keep the space between two encoded words
 * of a phrase, against RFC 2047 6.2, so a display name goes into a single word when it can. */
static void hdr_encoded_phrase(struct hdr *h, const char *text, size_t len)
{
	struct buf w;

	if (EW_OVERHEAD + q_cost((const unsigned char *)text, len) > EW_MAX) {
		hdr_encoded(h, text, len);
		return;
	}
	buf_init(&w);
	buf_adds(&w, EW_PREFIX);
	q_put(&w, (const unsigned char *)text, len);
	buf_adds(&w, EW_SUFFIX);
	hdr_token(h, w.data, w.len);
	buf_free(&w);
}

/* A word is sent as an encoded word when it is not ASCII, when a reader could mistake it
 * for an encoded word, or when it is too long to fit on any folded line. */
static bool word_needs_encoding(const char *s, size_t n)
{
	size_t i;

	if (n > HDR_COLS - 1)
		return true;
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] >= 0x80)
			return true;
		if (s[i] == '=' && i + 1 < n && s[i + 1] == '?')
			return true;
	}
	return false;
}

static size_t word_len(const char *s)
{
	const char *sp = strchr(s, ' ');

	return sp != NULL ? (size_t)(sp - s) : strlen(s);
}

void message_header_unstructured(struct buf *out, const char *name, const char *value)
{
	char *clean = header_clean(value != NULL ? value : "");
	const char *p = clean;
	struct hdr h;

	hdr_begin(&h, out, name);
	while (*p != '\0') {
		size_t n = word_len(p);

		if (!word_needs_encoding(p, n)) {
			hdr_token(&h, p, n);
		} else {
			/* Neighbouring words that need encoding go into one run, spaces and all:
			 * a plain space between two encoded words would be lost. */
			while (p[n] == ' ' && word_needs_encoding(p + n + 1, word_len(p + n + 1)))
				n += 1 + word_len(p + n + 1);
			hdr_encoded(&h, p, n);
		}
		p += n;
		if (*p == ' ')
			p++;
	}
	hdr_end(&h);
	free(clean);
}

/* A cleaned display name as a phrase: atoms as they are, other ASCII as one quoted string,
 * and anything else (non-ASCII, too long, looks encoded) as encoded words. */
static void hdr_phrase(struct hdr *h, const char *clean)
{
	size_t n = strlen(clean), i;
	bool atoms = true, encode = false;
	struct buf q;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)clean[i];

		if (c >= 0x80 || (c == '=' && clean[i + 1] == '?'))
			encode = true;
		else if (c != ' ' && !charset_is_atext(c))
			atoms = false;
	}
	buf_init(&q);
	if (!encode && atoms) {
		const char *p;

		for (p = clean; *p != '\0'; p++) {
			if (word_len(p) > HDR_COLS - 1)
				encode = true;
			p += word_len(p);
			if (*p == '\0')
				break;
		}
		for (p = clean; *p != '\0' && !encode; p++) {
			hdr_token(h, p, word_len(p));
			p += word_len(p);
			if (*p == '\0')
				break;
		}
	} else if (!encode) {
		buf_addc(&q, '"');
		for (i = 0; i < n; i++) {
			if (clean[i] == '"' || clean[i] == '\\')
				buf_addc(&q, '\\');
			buf_addc(&q, clean[i]);
		}
		buf_addc(&q, '"');
		if (q.len > HDR_COLS - 1)
			encode = true;
		else
			hdr_token(h, q.data, q.len);
	}
	if (encode)
		hdr_encoded_phrase(h, clean, n);
	buf_free(&q);
}

static void hdr_mailbox(struct hdr *h, const struct mailbox *m, bool last)
{
	char *display = header_clean(m->display != NULL ? m->display : "");
	struct buf t;

	buf_init(&t);
	if (display[0] != '\0') {
		hdr_phrase(h, display);
		buf_printf(&t, "<%s>", m->addr);
	} else {
		buf_adds(&t, m->addr);
	}
	if (!last)
		buf_addc(&t, ',');
	hdr_token(h, t.data, t.len);
	buf_free(&t);
	free(display);
}

/* ---- Message ---- */

/* SHA-256 only fails when OpenSSL cannot allocate: as fatal as any other out of memory. */
static void sha256_hex(const void *data, size_t len, char *hex, size_t nhex)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    (size_t)mdlen * 2 < nhex) {
		fprintf(stderr, "alertmail: SHA-256 failed\n");
		abort();
	}
	for (i = 0; i < nhex; i++)
		hex[i] = lowerhex[(md[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
	hex[nhex] = '\0';
}

/* The id goes into a dot-atom as "alert.<id>": no empty, leading or trailing dot labels. */
static bool id_usable(const char *id)
{
	size_t n = strlen(id), i;

	if (n == 0 || n > ID_MAX || id[0] == '.' || id[n - 1] == '.')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!charset_is_alnum(c) && c != '.' && c != '_' && c != '-')
			return false;
		if (c == '.' && id[i + 1] == '.')
			return false;
	}
	return true;
}

char *message_id_for(const char *alert_id, const char *domain)
{
	char hex[ID_HASH_HEX + 1];

	if (alert_id == NULL)
		alert_id = "";
	/* The From domain is checked by message_compose; this guards other callers. */
	if (domain == NULL || mailbox_check_domain(domain) < 0)
		domain = "localhost";
	if (id_usable(alert_id))
		return xasprintf("<alert.%s@%s>", alert_id, domain);
	sha256_hex(alert_id, strlen(alert_id), hex, ID_HASH_HEX);
	return xasprintf("<alert.%s@%s>", hex, domain);
}

char *message_id_for_channel(const char *alert_id, const char *channel, const char *domain)
{
	char idhex[ID_HASH_HEX + 1], chhex[ID_HASH_HEX + 1];
	const char *id = alert_id != NULL ? alert_id : "";

	if (channel == NULL)
		return message_id_for(alert_id, domain);
	if (domain == NULL || mailbox_check_domain(domain) < 0)
		domain = "localhost";
	if (!id_usable(id)) {
		sha256_hex(id, strlen(id), idhex, ID_HASH_HEX);
		id = idhex;
	}
	if (!id_usable(channel)) {
		sha256_hex(channel, strlen(channel), chhex, ID_HASH_HEX);
		channel = chhex;
	}
	/* '+' is atext and never in a usable id: the two parts stay apart. */
	return xasprintf("<alert.%s+%s@%s>", id, channel, domain);
}

static int format_date(time_t t, char *dst, size_t size)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	/* RFC 5322 wants a four-digit year from 1900 on. */
	if (tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
		return -1;
	snprintf(dst, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* The boundary contains "=_", which quoted-printable never produces ('=' is always followed
 * by a hex digit or a line end), so no body can contain it. Derived from the content, it
 * looks random yet the same alert gives the same bytes. */
static void make_boundary(const struct message_in *in, char *dst, size_t size)
{
	char hex[BOUNDARY_HEX + 1];
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "%s%c%lld%c%s%c%s", in->alert_id, 0, (long long)in->date, 0,
	           in->text != NULL ? in->text : "", 0, in->html);
	sha256_hex(b.data, b.len, hex, BOUNDARY_HEX);
	buf_free(&b);
	snprintf(dst, size, "=_alertmail_%s", hex);
}

static void add_part(struct buf *out, const char *type, const char *body)
{
	char *clean = body_clean(body != NULL ? body : "");

	buf_printf(out, "Content-Type: %s; charset=utf-8\r\n", type);
	buf_adds(out, "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	message_qp_encode(out, clean, strlen(clean));
	free(clean);
}

static bool ends_crlf(const struct buf *b)
{
	return b->len >= 2 && b->data[b->len - 2] == '\r' && b->data[b->len - 1] == '\n';
}

int message_compose(const struct message_in *in, struct buf *out, struct err *e)
{
	char date[64];
	const char *domain;
	char *msgid;
	struct hdr h;
	struct buf m;
	size_t i;

	if (in->from == NULL || in->from->addr == NULL) {
		err_set(e, "message: no From address");
		return -1;
	}
	if (message_check_addr(in->from->addr, e) < 0) {
		err_prefix(e, "message: From");
		return -1;
	}
	if (in->to == NULL || in->nto == 0) {
		err_set(e, "message: no recipients");
		return -1;
	}
	for (i = 0; i < in->nto; i++) {
		if (message_check_addr(in->to[i].addr, e) < 0) {
			err_prefix(e, "message: To (recipient %zu)", i + 1);
			return -1;
		}
	}
	if (in->alert_id == NULL) {
		err_set(e, "message: no alert id");
		return -1;
	}
	if (format_date(in->date, date, sizeof(date)) < 0) {
		err_set(e, "message: date %lld is out of range", (long long)in->date);
		return -1;
	}
	domain = strchr(in->from->addr, '@') + 1;
	msgid = message_id_for_channel(in->alert_id, in->id_channel, domain);

	buf_init(&m);
	buf_printf(&m, "Date: %s\r\nMessage-ID: %s\r\n", date, msgid);
	free(msgid);
	hdr_begin(&h, &m, "From");
	hdr_mailbox(&h, in->from, true);
	hdr_end(&h);
	hdr_begin(&h, &m, "To");
	for (i = 0; i < in->nto; i++)
		hdr_mailbox(&h, &in->to[i], i + 1 == in->nto);
	hdr_end(&h);
	message_header_unstructured(&m, "Subject", in->subject);
	buf_adds(&m, "MIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\n");
	if (in->html == NULL) {
		add_part(&m, "text/plain", in->text);
		/* Every line, the last included, must end in CRLF for SMTP. */
		if (!ends_crlf(&m))
			buf_add(&m, "\r\n", 2);
	} else {
		/* The CRLF before each delimiter belongs to the delimiter, so a part that does
		 * not end in a line break comes back without one. */
		char boundary[64];
		make_boundary(in, boundary, sizeof(boundary));
		buf_printf(&m, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n",
		           boundary);
		buf_printf(&m, "--%s\r\n", boundary);
		add_part(&m, "text/plain", in->text);
		buf_printf(&m, "\r\n--%s\r\n", boundary);
		add_part(&m, "text/html", in->html);
		buf_printf(&m, "\r\n--%s--\r\n", boundary);
	}
	buf_add(out, m.data, m.len);
	buf_free(&m);
	return 0;
}

/* ---- Quoted-printable ---- */

void message_qp_encode(struct buf *out, const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0, col = 0;

	while (i < len) {
		unsigned char c = s[i];
		bool last;
		char tok[3];
		size_t n;

		if (c == '\r' || c == '\n') {
			/* CRLF, bare LF and bare CR are each one hard line break. */
			buf_add(out, "\r\n", 2);
			col = 0;
			i += c == '\r' && i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
			continue;
		}
		last = i + 1 == len || s[i + 1] == '\r' || s[i + 1] == '\n';
		/* Trailing whitespace is encoded: transports may strip it. */
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) {
			tok[0] = (char)c;
			n = 1;
		} else {
			tok[0] = '=';
			tok[1] = hexdigits[c >> 4];
			tok[2] = hexdigits[c & 0xf];
			n = 3;
		}
		/* Keep room for the '=' of a soft break unless this ends the line. */
		if (col + n > (last ? QP_COLS : QP_COLS - 1)) {
			buf_add(out, "=\r\n", 3);
			col = 0;
		}
		/* mbox writers turn "From " at a line start into ">From ". */
		if (col == 0 && c == 'F' && len - i >= 5 && memcmp(s + i, "From ", 5) == 0) {
			tok[0] = '=';
			tok[1] = hexdigits[c >> 4];
			tok[2] = hexdigits[c & 0xf];
			n = 3;
		}
		buf_add(out, tok, n);
		col += n;
		i++;
	}
}

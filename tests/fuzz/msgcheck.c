#include "config.h"

#include "msgcheck.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "charset.h"
#include "fuzz.h"

/* RFC 5322 2.1.1, RFC 2047 2, RFC 2045 6.7. */
#define LINE_MAX_OCTETS 998
#define HDR_COLS 78
#define EW_MAX 75
#define QP_COLS 76
#define EW_PREFIX "=?UTF-8?Q?"
#define EW_SUFFIX "?="
#define MAX_FIELDS 64

struct field {
	char name[80];
	struct buf value; /* unfolded: the CRLF of each fold removed, the blank after it kept */
};

struct header {
	struct field v[MAX_FIELDS];
	size_t n;
};

static void header_free(struct header *h)
{
	for (size_t i = 0; i < h->n; i++)
		buf_free(&h->v[i].value);
	h->n = 0;
}

static const struct field *header_get(const struct header *h, const char *name)
{
	const struct field *found = NULL;

	for (size_t i = 0; i < h->n; i++) {
		if (strcmp(h->v[i].name, name) != 0)
			continue;
		if (found != NULL)
			fuzz_fail("header field %s appears twice", name);
		found = &h->v[i];
	}
	if (found == NULL)
		fuzz_fail("header field %s is missing", name);
	return found;
}


char *msgcheck_clean_header(const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in), i = 0, adv;
	bool blank = false;
	struct buf b;

	buf_init(&b);
	while (i < n) {
		long cp = charset_utf8_decode(s + i, n - i, &adv);

		i += adv;
		if (cp < 0)
			cp = 0xfffd;
		/* Line breaks of every kind, U+2028 and U+2029 among them, are blanks too. */
		if (cp <= 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 ||
		    cp == 0x2029) {
			blank = true;
			continue;
		}
		if (blank && b.len > 0)
			buf_addc(&b, ' ');
		blank = false;
		charset_utf8_put(&b, cp);
	}
	return buf_steal(&b);
}

/* A body as the composer sends it, before quoted-printable: bad bytes U+FFFD, CRLF, CR and LF
 * each one CRLF. */
static char *clean_body(const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in), i = 0, adv;
	struct buf b;

	buf_init(&b);
	while (i < n) {
		long cp = charset_utf8_decode(s + i, n - i, &adv);

		if (s[i] == '\r' || s[i] == '\n') {
			buf_add(&b, "\r\n", 2);
			i += s[i] == '\r' && i + 1 < n && s[i + 1] == '\n' ? 2 : 1;
			continue;
		}
		if (cp < 0)
			charset_utf8_put(&b, 0xfffd);
		else
			buf_add(&b, s + i, adv);
		i += adv;
	}
	return buf_steal(&b);
}

static bool utf8_ok(const char *s, size_t n)
{
	size_t i = 0, adv;

	while (i < n) {
		if (s[i] == '\0' ||
		    charset_utf8_decode((const unsigned char *)s + i, n - i, &adv) < 0)
			return false;
		i += adv;
	}
	return true;
}

static void check_same(const char *what, const char *got, size_t glen, const char *want)
{
	if (glen != strlen(want) || memcmp(got, want, glen) != 0)
		fuzz_fail("%s decodes to '%.*s', expected '%s'", what, (int)glen, got, want);
}

/* CRLF only, no NUL, no line over 998 octets, and a CRLF at the end. */
static void check_lines(const char *m, size_t len)
{
	size_t col = 0;

	if (len < 2 || m[len - 2] != '\r' || m[len - 1] != '\n')
		fuzz_fail("the message does not end with CRLF");
	for (size_t i = 0; i < len; i++) {
		if (m[i] == '\0')
			fuzz_fail("a NUL byte at offset %zu", i);
		if (m[i] == '\r' && (i + 1 == len || m[i + 1] != '\n'))
			fuzz_fail("a bare CR at offset %zu", i);
		if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
			fuzz_fail("a bare LF at offset %zu", i);
		if (m[i] == '\r' || m[i] == '\n') {
			col = 0;
			continue;
		}
		if (++col > LINE_MAX_OCTETS)
			fuzz_fail("a line longer than %d octets ends after offset %zu",
			          LINE_MAX_OCTETS, i);
	}
}

/* A Subject line beyond 78 columns holds one token that cannot be folded. */
static void check_fold(const char *line, size_t n, bool first)
{
	const char *rest = line;
	size_t left = n;

	if (n <= HDR_COLS)
		return;
	if (first) {
		rest += strlen("Subject:");
		left -= strlen("Subject:");
	}
	if (left == 0 || rest[0] != ' ' || memchr(rest + 1, ' ', left - 1) != NULL)
		fuzz_fail("a Subject line of %zu columns that could have been folded: '%.*s'", n,
		          (int)n, line);
}

/* Parses the header section [0, end) into fields; returns the offset of the body. */
static size_t parse_header(const char *m, size_t len, struct header *h)
{
	const char *blank = NULL;
	size_t i = 0, body;
	bool subject = false;

	for (size_t j = 0; j + 3 < len; j++) {
		if (memcmp(m + j, "\r\n\r\n", 4) == 0) {
			blank = m + j;
			break;
		}
	}
	if (blank == NULL)
		fuzz_fail("no empty line ends the header");
	body = (size_t)(blank - m) + 4;
	while (i < body - 2) {
		const char *line = m + i;
		const char *crlf = strstr(line, "\r\n");
		size_t n = (size_t)(crlf - line);

		for (size_t k = 0; k < n; k++) {
			unsigned char c = (unsigned char)line[k];
			if ((c < 0x20 && c != '\t') || c >= 0x7f)
				fuzz_fail("header byte 0x%02x in '%.*s'", c, (int)n, line);
		}
		if (line[0] == ' ' || line[0] == '\t') {
			if (h->n == 0)
				fuzz_fail("the header starts with a continuation line");
			buf_add(&h->v[h->n - 1].value, line, n);
			if (subject)
				check_fold(line, n, false);
		} else {
			const char *colon = memchr(line, ':', n);
			size_t nlen = colon != NULL ? (size_t)(colon - line) : 0;
			struct field *f;

			if (nlen == 0 || nlen >= sizeof(f->name))
				fuzz_fail("not a header field: '%.*s'", (int)n, line);
			for (size_t k = 0; k < nlen; k++)
				if (line[k] <= ' ' || line[k] >= 0x7f)
					fuzz_fail("bad field name '%.*s'", (int)nlen, line);
			if (h->n == MAX_FIELDS)
				fuzz_fail("more than %d header fields", MAX_FIELDS);
			f = &h->v[h->n++];
			memcpy(f->name, line, nlen);
			f->name[nlen] = '\0';
			buf_init(&f->value);
			buf_add(&f->value, colon + 1, n - nlen - 1);
			subject = strcmp(f->name, "Subject") == 0;
			if (subject)
				check_fold(line, n, true);
		}
		i += n + 2;
	}
	return body;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lower case too: RFC 2045 and 2047 want upper case */
}

/* One encoded word, whole: =?UTF-8?Q?...?=, at most 75 octets, only the characters that are
 * safe in a phrase, and whole UTF-8 characters. Appends what it decodes to. */
static void decode_ew(const char *w, size_t n, struct buf *out)
{
	const size_t pl = strlen(EW_PREFIX), sl = strlen(EW_SUFFIX);
	size_t start = out->len;

	if (n > EW_MAX)
		fuzz_fail("an encoded word of %zu octets: '%.*s'", n, (int)n, w);
	if (n < pl + sl || memcmp(w, EW_PREFIX, pl) != 0 || memcmp(w + n - sl, EW_SUFFIX, sl) != 0)
		fuzz_fail("not an encoded word: '%.*s'", (int)n, w);
	for (size_t i = pl; i < n - sl; i++) {
		unsigned char c = (unsigned char)w[i];

		if (c == '_') {
			buf_addc(out, ' ');
		} else if (c == '=') {
			int hi = i + 2 < n - sl ? hexval(w[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(w[i + 2]) : -1;
			if (lo < 0)
				fuzz_fail("a bad =XX in the encoded word '%.*s'", (int)n, w);
			buf_addc(out, (char)(hi * 16 + lo));
			i += 2;
		} else if (charset_is_alnum(c) || c == '!' || c == '*' || c == '+' || c == '-' ||
		           c == '/') {
			buf_addc(out, (char)c);
		} else {
			fuzz_fail("'%c' in the encoded word '%.*s'", c, (int)n, w);
		}
	}
	if (out->len == start)
		fuzz_fail("an empty encoded word");
	if (!utf8_ok(out->data + start, out->len - start))
		fuzz_fail("the encoded word '%.*s' is not whole UTF-8 characters", (int)n, w);
}

static bool has_ew_start(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '=' && s[i + 1] == '?')
			return true;
	return false;
}

/* Unstructured text (RFC 2047 section 6.2): the space between two encoded words is dropped,
 * any other space kept. The composer writes " TOKEN" for each token. */
static void decode_unstructured(const char *v, size_t n, struct buf *out)
{
	size_t i = 0;
	bool prev_ew = false;

	while (i < n) {
		size_t j;
		bool ew;

		if (v[i] != ' ' || i + 1 == n || v[i + 1] == ' ')
			fuzz_fail("not one space before each token: '%.*s'", (int)n, v);
		i++;
		for (j = i; j < n && v[j] != ' '; j++)
			;
		ew = has_ew_start(v + i, j - i);
		if (out->len > 0 && !(ew && prev_ew))
			buf_addc(out, ' ');
		if (ew)
			decode_ew(v + i, j - i, out);
		else
			buf_add(out, v + i, j - i);
		prev_ew = ew;
		i = j;
	}
}

/* A mailbox list as the composer writes it: for each mailbox, a display name (atoms, one
 * quoted string, or encoded words) and "<addr>", or the bare address; "," after all but the
 * last. Fails unless it decodes to the mailboxes expected (NULL: any). */
static void decode_mailboxes(const char *what, const char *v, size_t n, const struct mailbox *want,
                             size_t nwant)
{
	struct buf display;
	size_t i = 0, count = 0;
	bool prev_ew = false, last = false;

	buf_init(&display);
	while (i < n) {
		size_t j;

		if (last)
			fuzz_fail("%s: text after the last mailbox: '%.*s'", what, (int)n, v);
		if (v[i] != ' ' || i + 1 == n)
			fuzz_fail("%s: not one space before each token: '%.*s'", what, (int)n, v);
		i++;
		if (v[i] == '"') {
			if (display.len > 0)
				fuzz_fail("%s: a quoted string after other words: '%.*s'", what,
				          (int)n, v);
			for (j = i + 1; j < n && v[j] != '"'; j++) {
				if (v[j] == '\\')
					j++;
				if (j < n)
					buf_addc(&display, v[j]);
			}
			if (j >= n)
				fuzz_fail("%s: an unterminated quoted string: '%.*s'", what, (int)n,
				          v);
			j++;
			if (display.len == 0)
				fuzz_fail("%s: an empty quoted display name", what);
			prev_ew = false;
		} else {
			const char *at;
			for (j = i; j < n && v[j] != ' '; j++)
				;
			at = memchr(v + i, '@', j - i);
			if (at != NULL) {
				/* The address: <addr> after a display name, else bare. */
				const char *a = v + i;
				size_t alen = j - i;
				char *addr;
				struct err e;

				last = a[alen - 1] != ',';
				if (!last)
					alen--;
				if (display.len > 0) {
					if (alen < 2 || a[0] != '<' || a[alen - 1] != '>')
						fuzz_fail(
						    "%s: '%.*s' after a display name is not <addr>",
						    what, (int)alen, a);
					a++;
					alen -= 2;
				}
				addr = xstrndup(a, alen);
				if (message_check_addr(addr, &e) < 0)
					fuzz_fail("%s: the address '%s' is not one: %s", what, addr,
					          e.msg);
				if (want != NULL) {
					char *dclean;
					if (count >= nwant)
						fuzz_fail("%s: more mailboxes than %zu", what,
						          nwant);
					if (strcmp(addr, want[count].addr) != 0)
						fuzz_fail("%s: mailbox %zu is '%s', expected '%s'",
						          what, count + 1, addr, want[count].addr);
					dclean = msgcheck_clean_header(
					    want[count].display != NULL ? want[count].display : "");
					check_same(what, display.data ? display.data : "",
					           display.len, dclean);
					free(dclean);
				}
				free(addr);
				count++;
				buf_reset(&display);
				prev_ew = false;
				i = j;
				continue;
			}
			if (has_ew_start(v + i, j - i)) {
				if (display.len > 0 && !prev_ew)
					buf_addc(&display, ' ');
				decode_ew(v + i, j - i, &display);
				prev_ew = true;
			} else {
				for (size_t k = i; k < j; k++)
					if (!charset_is_atext((unsigned char)v[k]))
						fuzz_fail("%s: '%c' in the atom '%.*s'", what, v[k],
						          (int)(j - i), v + i);
				if (display.len > 0)
					buf_addc(&display, ' ');
				buf_add(&display, v + i, j - i);
				prev_ew = false;
			}
		}
		i = j;
	}
	if (!last || display.len > 0)
		fuzz_fail("%s: the list does not end with an address: '%.*s'", what, (int)n, v);
	if (want != NULL && count != nwant)
		fuzz_fail("%s: %zu mailboxes, expected %zu", what, count, nwant);
	buf_free(&display);
}

/* Quoted-printable (RFC 2045 6.7) as the composer writes it: lines of at most 76 octets, no
 * blank at a line's end, '=' only before two upper-case hex digits or as a soft break, no
 * line starting "From ". Appends what [b, b + n) decodes to. */
static void decode_qp(const char *b, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		const char *crlf = NULL;
		size_t len, k;
		bool soft = false;

		for (k = i; k + 1 < n; k++) {
			if (b[k] == '\r' && b[k + 1] == '\n') {
				crlf = b + k;
				break;
			}
		}
		len = crlf != NULL ? (size_t)(crlf - (b + i)) : n - i;
		if (len > QP_COLS)
			fuzz_fail("a quoted-printable line of %zu octets", len);
		if (len > 0 && (b[i + len - 1] == ' ' || b[i + len - 1] == '\t'))
			fuzz_fail("a quoted-printable line ends with a blank");
		if (len >= 5 && memcmp(b + i, "From ", 5) == 0)
			fuzz_fail("a quoted-printable line starts with 'From '");
		for (k = i; k < i + len; k++) {
			unsigned char c = (unsigned char)b[k];

			if (c == '=') {
				int hi, lo;
				if (k + 1 == i + len) {
					soft = true;
					break;
				}
				hi = k + 2 < i + len ? hexval(b[k + 1]) : -1;
				lo = hi >= 0 ? hexval(b[k + 2]) : -1;
				if (lo < 0)
					fuzz_fail("a bad '=' in quoted-printable: '%.*s'", (int)len,
					          b + i);
				buf_addc(out, (char)(hi * 16 + lo));
				k += 2;
			} else if ((c >= 33 && c <= 126) || c == ' ' || c == '\t') {
				buf_addc(out, (char)c);
			} else {
				fuzz_fail("byte 0x%02x in quoted-printable", c);
			}
		}
		if (soft && crlf == NULL)
			fuzz_fail("a soft line break at the end of a part");
		if (crlf != NULL && !soft)
			buf_add(out, "\r\n", 2);
		i += len + (crlf != NULL ? 2 : 0);
	}
}

static void check_body(const char *what, const char *b, size_t n, const char *want, bool last_crlf)
{
	struct buf got;

	buf_init(&got);
	decode_qp(b, n, &got);
	if (!utf8_ok(got.data != NULL ? got.data : "", got.len))
		fuzz_fail("%s: the decoded body is not UTF-8 without NUL", what);
	if (want != NULL) {
		char *clean = clean_body(want);
		struct buf w;

		buf_init(&w);
		buf_adds(&w, clean);
		/* A single part's last line ends with CRLF like any line of the message. */
		if (last_crlf && w.len > 0 &&
		    !(w.len >= 2 && memcmp(w.data + w.len - 2, "\r\n", 2) == 0))
			buf_add(&w, "\r\n", 2);
		check_same(what, got.data != NULL ? got.data : "", got.len,
		           w.data != NULL ? w.data : "");
		buf_free(&w);
		free(clean);
	}
	buf_free(&got);
}

static const char *find_mem(const char *h, size_t hn, const char *needle)
{
	size_t nn = strlen(needle);

	for (size_t i = 0; nn <= hn && i <= hn - nn; i++)
		if (memcmp(h + i, needle, nn) == 0)
			return h + i;
	return NULL;
}

static void check_value(const struct header *h, const char *name, const char *want)
{
	const struct field *f = header_get(h, name);

	if (strcmp(f->value.data, want) != 0)
		fuzz_fail("%s is '%s', expected '%s'", name, f->value.data, want);
}

static void check_msgid(const struct header *h)
{
	const struct field *f = header_get(h, "Message-ID");
	const char *v = f->value.data;
	size_t n = f->value.len;
	const char *at;

	if (n < 10 || strncmp(v, " <alert.", 8) != 0 || v[n - 1] != '>')
		fuzz_fail("Message-ID '%s' is not <alert.ID@DOMAIN>", v);
	at = memchr(v, '@', n);
	if (at == NULL || memchr(at + 1, '@', (size_t)(v + n - at - 1)) != NULL)
		fuzz_fail("Message-ID '%s' has not one '@'", v);
	for (size_t i = 2; i < n - 1; i++)
		if (!charset_is_atext((unsigned char)v[i]) && v[i] != '.' && v[i] != '@' &&
		    v[i] != '[' && v[i] != ']' && v[i] != ':')
			fuzz_fail("Message-ID '%s' has '%c'", v, v[i]);
}

void msgcheck_message(const char *m, size_t len, const struct msgcheck_expect *x)
{
	struct header h = {.n = 0};
	const struct field *f;
	size_t body;

	check_lines(m, len);
	body = parse_header(m, len, &h);
	header_get(&h, "Date");
	check_msgid(&h);
	check_value(&h, "MIME-Version", " 1.0");
	check_value(&h, "Auto-Submitted", " auto-generated");

	{
		struct buf s;
		buf_init(&s);
		f = header_get(&h, "Subject");
		decode_unstructured(f->value.data, f->value.len, &s);
		if (!utf8_ok(s.data != NULL ? s.data : "", s.len))
			fuzz_fail("the Subject decodes to bytes that are not UTF-8");
		for (size_t i = 0; s.data != NULL && i < s.len; i++)
			if ((unsigned char)s.data[i] < 0x20 || s.data[i] == 0x7f)
				fuzz_fail("the Subject decodes to a control character");
		if (x->subject != NULL) {
			char *clean = msgcheck_clean_header(x->subject);
			check_same("Subject", s.data != NULL ? s.data : "", s.len, clean);
			free(clean);
		}
		buf_free(&s);
	}
	f = header_get(&h, "From");
	decode_mailboxes("From", f->value.data, f->value.len, x->from, 1);
	f = header_get(&h, "To");
	decode_mailboxes("To", f->value.data, f->value.len, x->to, x->nto);

	f = header_get(&h, "Content-Type");
	if (!x->multipart) {
		if (strcmp(f->value.data, " text/plain; charset=utf-8") != 0)
			fuzz_fail("Content-Type '%s' of a single part", f->value.data);
		check_value(&h, "Content-Transfer-Encoding", " quoted-printable");
		check_body("the text body", m + body, len - body, x->text, true);
	} else {
		static const char pre[] = " multipart/alternative; boundary=\"";
		static const char part_text[] =
		    "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
		static const char part_html[] =
		    "Content-Type: text/html; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
		const char *v = f->value.data, *p = m + body, *end = m + len, *d;
		struct buf delim;
		size_t blen;

		if (strncmp(v, pre, strlen(pre)) != 0 || v[f->value.len - 1] != '"')
			fuzz_fail("Content-Type '%s' of a multipart message", v);
		blen = f->value.len - strlen(pre) - 1;
		buf_init(&delim);
		buf_printf(&delim, "--%.*s\r\n", (int)blen, v + strlen(pre));
		if ((size_t)(end - p) < delim.len || memcmp(p, delim.data, delim.len) != 0)
			fuzz_fail("the body does not start with the boundary");
		p += delim.len;
		if ((size_t)(end - p) < strlen(part_text) ||
		    memcmp(p, part_text, strlen(part_text)) != 0)
			fuzz_fail("the text part's header");
		p += strlen(part_text);
		buf_reset(&delim);
		buf_printf(&delim, "\r\n--%.*s\r\n", (int)blen, v + strlen(pre));
		d = find_mem(p, (size_t)(end - p), delim.data);
		if (d == NULL)
			fuzz_fail("no boundary after the text part");
		check_body("the text part", p, (size_t)(d - p), x->text, false);
		p = d + delim.len;
		if ((size_t)(end - p) < strlen(part_html) ||
		    memcmp(p, part_html, strlen(part_html)) != 0)
			fuzz_fail("the HTML part's header");
		p += strlen(part_html);
		buf_reset(&delim);
		buf_printf(&delim, "\r\n--%.*s--\r\n", (int)blen, v + strlen(pre));
		d = find_mem(p, (size_t)(end - p), delim.data);
		if (d == NULL || d + delim.len != end)
			fuzz_fail("the closing boundary is not where the message ends");
		check_body("the HTML part", p, (size_t)(d - p), x->html, false);
		buf_free(&delim);
	}
	header_free(&h);
}

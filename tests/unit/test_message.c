#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "message.h"
#include "tap.h"

/* ---- Helpers: an independent reading of what message.c writes ---- */

static bool utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t k, need;
		uint32_t cp;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			need = 1;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			need = 2;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			need = 3;
		else
			return false;
		if (i + need >= n)
			return false;
		cp = s[i] & (0x3f >> need);
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* Every line ends in CRLF, there is no bare CR or LF, and no line is longer than max. */
static bool lines_ok(const char *s, size_t max)
{
	size_t col = 0;

	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			if (s[1] != '\n')
				return false;
			s++;
			col = 0;
		} else if (*s == '\n' || ++col > max) {
			return false;
		}
	}
	return col == 0;
}

static char *unfold(const char *s)
{
	struct buf b;

	buf_init(&b);
	for (; *s != '\0'; s++) {
		if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t'))
			s++;
		else
			buf_addc(&b, *s);
	}
	return buf_steal(&b);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes one "=?UTF-8?Q?...?=" word; false if it is not one, is longer than 75 octets or
 * does not hold whole UTF-8 characters. */
static bool q_word(const char *w, size_t n, struct buf *out)
{
	static const char prefix[] = "=?UTF-8?Q?";
	size_t i, start = out->len;

	if (n > 75 || n < sizeof(prefix) + 1 || memcmp(w, prefix, sizeof(prefix) - 1) != 0 ||
	    w[n - 2] != '?' || w[n - 1] != '=')
		return false;
	for (i = sizeof(prefix) - 1; i < n - 2; i++) {
		if (w[i] == '_') {
			buf_addc(out, ' ');
		} else if (w[i] == '=') {
			int hi = i + 2 < n - 2 ? hexval(w[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(w[i + 2]) : -1;

			if (lo < 0)
				return false;
			buf_addc(out, (char)(hi * 16 + lo));
			i += 2;
		} else if (w[i] == '?' || w[i] == ' ') {
			return false;
		} else {
			buf_addc(out, w[i]);
		}
	}
	return utf8_ok((const unsigned char *)out->data + start, out->len - start);
}

/* Reads an unstructured header line back ("Name: value\r\n", possibly folded): whitespace
 * between two encoded words is dropped (RFC 2047 6.2). Sets *bad when an encoded word is
 * malformed, too long or splits a character. */
static char *header_decode(const char *line, bool *bad)
{
	char *u = unfold(line);
	const char *p = strchr(u, ':');
	bool prev_ew = false, first = true;
	struct buf b;

	*bad = false;
	buf_init(&b);
	p = p != NULL ? p + 1 : u;
	while (*p != '\0' && *p != '\r') {
		size_t n;
		bool ew;

		while (*p == ' ')
			p++;
		n = strcspn(p, " \r");
		if (n == 0)
			break;
		ew = n >= 2 && p[0] == '=' && p[1] == '?';
		if (!first && !(ew && prev_ew))
			buf_addc(&b, ' ');
		if (ew) {
			if (!q_word(p, n, &b))
				*bad = true;
		} else {
			buf_add(&b, p, n);
		}
		prev_ew = ew;
		first = false;
		p += n;
	}
	free(u);
	return buf_steal(&b);
}

static char *subject_of(const char *value)
{
	struct buf b;

	buf_init(&b);
	message_header_unstructured(&b, "Subject", value);
	return buf_steal(&b);
}

/* Counts CRLFs not followed by folding whitespace: the number of header lines. */
static int header_lines(const char *s)
{
	int n = 0;

	for (; *s != '\0'; s++) {
		if (s[0] == '\r' && s[1] == '\n' && s[2] != ' ' && s[2] != '\t')
			n++;
	}
	return n;
}

static char *repeat(const char *s, size_t times)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < times; i++)
		buf_adds(&b, s);
	return buf_steal(&b);
}

/* A strict quoted-printable decoder: false on a line over 76, a bad escape, trailing
 * whitespace or a bare CR or LF. Hard line breaks decode to LF. */
static bool qp_decode(const char *s, struct buf *out)
{
	while (*s != '\0') {
		size_t n = strcspn(s, "\r\n"), i;
		bool soft = false;

		if (n > 76)
			return false;
		if (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			return false;
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '=' && i + 1 == n) {
				soft = true;
			} else if (c == '=') {
				if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
					return false;
				buf_addc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
				i += 2;
			} else if ((c < 33 || c > 126) && c != ' ' && c != '\t') {
				return false;
			} else {
				buf_addc(out, (char)c);
			}
		}
		s += n;
		if (*s == '\0')
			break;
		if (s[0] != '\r' || s[1] != '\n')
			return false;
		s += 2;
		if (!soft)
			buf_addc(out, '\n');
	}
	return true;
}

static char *qp(const char *text)
{
	struct buf b;

	buf_init(&b);
	message_qp_encode(&b, text, strlen(text));
	return buf_steal(&b);
}

/* Line ends as the decoder gives them back. */
static char *lf_only(const char *s)
{
	struct buf b;

	buf_init(&b);
	for (; *s != '\0'; s++) {
		if (*s == '\r') {
			buf_addc(&b, '\n');
			if (s[1] == '\n')
				s++;
		} else {
			buf_addc(&b, *s);
		}
	}
	return buf_steal(&b);
}

static void qp_roundtrip(const char *text, const char *what)
{
	char *enc = qp(text), *want = lf_only(text);
	struct buf dec;
	bool decoded;

	buf_init(&dec);
	decoded = qp_decode(enc, &dec);
	ok(decoded && strcmp(dec.data != NULL ? dec.data : "", want) == 0,
	   "qp: %s decodes back, lines within 76", what);
	buf_free(&dec);
	free(enc);
	free(want);
}

/* ---- Quoted-printable ---- */

static void test_qp(void)
{
	char *s, *in;

	s = qp("");
	is_str(s, "", "qp: empty body stays empty");
	free(s);
	s = qp("a=b");
	is_str(s, "a=3Db", "qp: '=' is encoded");
	free(s);
	s = qp("a b\tc");
	is_str(s, "a b\tc", "qp: inner space and tab stay");
	free(s);
	s = qp("x \ny\t\r\nz ");
	is_str(s, "x=20\r\ny=09\r\nz=20", "qp: whitespace before a line end or the end is encoded");
	free(s);
	s = qp("caf\xc3\xa9 \xe2\x82\xac");
	is_str(s, "caf=C3=A9 =E2=82=AC", "qp: non-ASCII bytes are encoded in upper-case hex");
	free(s);
	s = qp("a\nb\rc\r\nd\r\r\ne\n");
	is_str(s, "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n", "qp: bare LF and bare CR become CRLF");
	free(s);
	s = qp("\x01\x7f\x00");
	is_str(s, "=01=7F", "qp: control characters are encoded");
	free(s);
	s = qp("From here\nnot From here\n");
	is_str(s, "=46rom here\r\nnot From here\r\n", "qp: 'From ' at a line start is encoded");
	free(s);

	in = repeat("a", 76);
	s = qp(in);
	is_str(s, in, "qp: a 76-character line needs no soft break");
	free(s);
	free(in);
	in = repeat("a", 77);
	s = qp(in);
	ok(strncmp(s, "aaaaaaaaaa", 10) == 0 && strlen(s) == 75 + 3 + 2 &&
	       strcmp(s + 75, "=\r\naa") == 0,
	   "qp: a 77-character line gets a soft break after 75");
	free(s);
	free(in);
	s = qp("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=b");
	is_str(
	    s,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\r\n=3Db",
	    "qp: an escape is never split by a soft break");
	free(s);
	s = qp("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa \n");
	ok(strstr(s, "=\r\n=20\r\n") != NULL, "qp: trailing space at column 76 moves, encoded");
	free(s);

	qp_roundtrip("", "empty");
	qp_roundtrip("plain line\n", "a plain line");
	in = repeat("x", 5000);
	qp_roundtrip(in, "one 5000-character line");
	free(in);
	in = repeat("\xc3\xa9", 2000);
	qp_roundtrip(in, "2000 two-byte characters");
	free(in);
	in = repeat("a=\xf0\x9f\x94\xa5 \t", 700);
	qp_roundtrip(in, "mixed escapes, emoji and whitespace on one line");
	free(in);
	in = repeat("= \r\n\r.\n \t\n", 50);
	qp_roundtrip(in, "mixed line ends and trailing whitespace");
	free(in);
	for (size_t w = 70; w <= 80; w++) {
		char *line = repeat("b", w);
		struct buf t;

		buf_init(&t);
		buf_adds(&t, line);
		buf_adds(&t, "= \xc3\xa9 \n");
		buf_adds(&t, line);
		buf_adds(&t, "\t");
		qp_roundtrip(t.data, "escapes near column 76");
		buf_free(&t);
		free(line);
	}
}

/* ---- RFC 2047 and folding ---- */

static void check_encoded_subject(const char *value, const char *want, const char *what)
{
	char *h = subject_of(value), *dec;
	bool bad;

	dec = header_decode(h, &bad);
	ok(!bad, "subject %s: every encoded word within 75 octets, whole UTF-8 characters", what);
	ok(lines_ok(h, 78), "subject %s: folded within 78 columns", what);
	ok(header_lines(h) == 1, "subject %s: a single header field", what);
	is_str(dec, want, "subject %s: decodes to the input", what);
	free(dec);
	free(h);
}

static void test_headers(void)
{
	char *s, *in, *u, *dec;
	bool bad;

	s = subject_of("Disk full on db-01");
	is_str(s, "Subject: Disk full on db-01\r\n", "subject: printable ASCII stays as is");
	free(s);
	s = subject_of(NULL);
	is_str(s, "Subject:\r\n", "subject: NULL gives an empty field");
	free(s);
	s = subject_of("Alert: caf\xc3\xa9 au lait");
	is_str(s, "Subject: Alert: =?UTF-8?Q?caf=C3=A9?= au lait\r\n",
	       "subject: only the non-ASCII word is encoded");
	free(s);
	s = subject_of("\xc3\xa9t\xc3\xa9 \xc3\xa9t\xc3\xa9 ok");
	is_str(s, "Subject: =?UTF-8?Q?=C3=A9t=C3=A9_=C3=A9t=C3=A9?= ok\r\n",
	       "subject: adjacent encoded words share one run, the space inside");
	free(s);
	s = subject_of("x_\xc3\xa9?=\"(,)<@>.:;[\\]");
	is_str(s,
	       "Subject: =?UTF-8?Q?x=5F=C3=A9=3F=3D=22=28=2C=29=3C=40=3E=2E=3A=3B=5B=5C=5D?=\r\n",
	       "subject: '_', '?', '=' and phrase specials are escaped inside encoded words");
	free(s);
	s = subject_of("see =?UTF-8?Q?x?= here");
	is_str(s, "Subject: see =?UTF-8?Q?=3D=3FUTF-8=3FQ=3Fx=3F=3D?= here\r\n",
	       "subject: a word that looks encoded is encoded, so it reads literally");
	free(s);
	s = subject_of("  a \t\t b\x01\x7f"
	               "c\xc2\x85"
	               "d  ");
	is_str(s, "Subject: a b c d\r\n",
	       "subject: controls become spaces, runs collapse, ends trim");
	free(s);
	s = subject_of("a\xe2\x80\xa8"
	               "b\xe2\x80\xa9"
	               "c\xc2\x9b"
	               "d\r\n\r\ne");
	is_str(s, "Subject: a b c d e\r\n",
	       "subject: LS, PS, CSI (C1) and CR LF become spaces, never a line");
	free(s);
	s = subject_of("x\r\nBcc: victim@example.com\r\n\r\nbody");
	is_str(s, "Subject: x Bcc: victim@example.com body\r\n",
	       "subject: an injected header stays text in the one Subject line");
	free(s);
	s = subject_of("=?utf-8?q?=0D=0ABcc:_victim@example.com?=");
	ok(header_lines(s) == 1 && strstr(s, "=?utf-8?q?") == NULL,
	   "subject: an encoded word from the data is itself encoded, so it reads literally: %s",
	   s);
	dec = header_decode(s, &bad);
	is_str(dec, "=?utf-8?q?=0D=0ABcc:_victim@example.com?=",
	       "subject: ... and decodes to the text as given, no CR LF");
	free(dec);
	free(s);
	s = subject_of("bad \xff byte");
	is_str(s, "Subject: bad =?UTF-8?Q?=EF=BF=BD?= byte\r\n",
	       "subject: an invalid byte becomes U+FFFD");
	free(s);
	s = subject_of("\xc0\xaf \xed\xa0\x80 \xe2\x82");
	dec = header_decode(s, &bad);
	is_str(dec,
	       "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
	       "\xef\xbf\xbd\xef\xbf\xbd",
	       "subject: overlong, surrogate and truncated sequences become U+FFFD");
	free(dec);
	free(s);

	/* Folding. */
	in = repeat("word ", 40);
	s = subject_of(in);
	u = unfold(s);
	in[strlen(in) - 1] = '\0';
	ok(lines_ok(s, 78) && header_lines(s) == 1, "fold: a 200-character subject folds at 78");
	ok(strncmp(u, "Subject: ", 9) == 0 && strncmp(u + 9, in, strlen(in)) == 0 &&
	       strcmp(u + 9 + strlen(in), "\r\n") == 0,
	   "fold: unfolding gives back the subject");
	free(u);
	free(s);
	free(in);

	in = repeat("\xe2\x82\xac", 200);
	check_encoded_subject(in, in, "of 200 three-byte characters");
	free(in);
	in = repeat("\xf0\x9f\x98\x80", 200);
	check_encoded_subject(in, in, "of 200 four-byte characters");
	free(in);
	in = repeat("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x", 60);
	check_encoded_subject(in, in, "of mixed 1- to 4-byte characters");
	free(in);
	in = repeat("u", 300);
	check_encoded_subject(in, in, "with a 300-character word");
	free(in);
	check_encoded_subject(
	    "[FIRING] h\xc3\xb4te \xe6\x9d\xb1\xe4\xba\xac db-01 is down \xf0\x9f\x94\xa5",
	    "[FIRING] h\xc3\xb4te \xe6\x9d\xb1\xe4\xba\xac db-01 is down \xf0\x9f\x94\xa5",
	    "mixing plain and encoded words");
	for (size_t k = 0; k < 12; k++) {
		/* Shift the encoded run across the line so every cut position is tried. */
		char *pad = repeat("p", k * 3 + 1);
		char *run = repeat("\xf0\x9f\x98\x80\xc3\xa9", 30);
		char *v = xasprintf("%s %s", pad, run);

		s = subject_of(v);
		dec = header_decode(s, &bad);
		ok(!bad && lines_ok(s, 78) && strcmp(dec, v) == 0,
		   "subject: encoded run after %zu columns of ASCII", k * 3 + 1);
		free(dec);
		free(s);
		free(v);
		free(run);
		free(pad);
	}

	/* Injection: whatever the subject holds, exactly one header field comes out. */
	static const char *const evil[] = {
	    "Alert\r\nBcc: evil@x",
	    "Alert\nBcc: evil@x",
	    "Alert\rBcc: evil@x",
	    "Alert\r\n\r\nbody",
	    "Alert\r\n Bcc: evil@x",
	    "\r\nBcc: evil@x\r\n",
	    "Caf\xc3\xa9\r\nBcc: evil@x",
	    ("Alert\xc2\x85"
	     "Bcc: evil@x"),
	};
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		s = subject_of(evil[i]);
		ok(header_lines(s) == 1 && strstr(s, "\nBcc") == NULL && lines_ok(s, 78),
		   "injection: subject %zu stays one header field", i + 1);
		free(s);
	}
}

/* ---- Addresses ---- */

static void good_mailbox(const char *in, const char *display, const char *addr)
{
	struct mailbox m;
	struct err e = {{0}};
	int rc = mailbox_parse(in, &m, &e);

	if (!ok(rc == 0, "mailbox_parse accepts '%s'", in))
		diag("%s", e.msg);
	is_str(m.addr, addr, "  address");
	if (display == NULL)
		ok(m.display == NULL, "  no display name");
	else
		is_str(m.display, display, "  display name");
	mailbox_free(&m);
}

static void bad_mailbox(const char *in, const char *what, const char *needle)
{
	struct mailbox m;
	struct err e = {{0}};
	int rc = mailbox_parse(in, &m, &e);

	ok(rc < 0 && m.addr == NULL && m.display == NULL, "mailbox_parse refuses %s", what);
	if (!ok(strstr(e.msg, needle) != NULL, "  the error says '%s'", needle))
		diag("got: %s", e.msg);
	mailbox_free(&m);
}

static void test_mailbox(void)
{
	struct err e = {{0}};
	char *s, *in;

	good_mailbox("Name <a@b>", "Name", "a@b");
	good_mailbox("\"Quoted, Name\" <a@b>", "Quoted, Name", "a@b");
	good_mailbox("\"Say \\\"hi\\\" \\\\ o\" <a@b>", "Say \"hi\" \\ o", "a@b");
	good_mailbox("<a@b>", NULL, "a@b");
	good_mailbox("a@b", NULL, "a@b");
	good_mailbox("  Ops Team   <first.last+tag@sub.example.com>  ", "Ops Team",
	             "first.last+tag@sub.example.com");
	good_mailbox("J\xc3\xbcrgen M\xc3\xbcller <jm@example.de>", "J\xc3\xbcrgen M\xc3\xbcller",
	             "jm@example.de");
	good_mailbox("root@[192.0.2.1]", NULL, "root@[192.0.2.1]");
	good_mailbox("\"\" <a@b>", NULL, "a@b");

	bad_mailbox("Name <a@b>\r\nBcc: x@y", "a CR LF", "line break");
	bad_mailbox("a@b\n", "a trailing LF", "line break");
	bad_mailbox("a@b\r", "a bare CR", "line break");
	bad_mailbox("a\x01@b", "a control character", "control character");
	bad_mailbox("Na\tme <a@b>", "a tab", "control character");
	bad_mailbox("a@b\x7f", "DEL", "control character");
	bad_mailbox("", "an empty string", "empty address");
	bad_mailbox("   ", "spaces only", "empty address");
	bad_mailbox("nobody", "a missing @", "no '@'");
	bad_mailbox("Name <nobody>", "a missing @ in <>", "no '@'");
	bad_mailbox("@example.com", "an empty local part", "empty local part");
	bad_mailbox("a@", "an empty domain", "empty domain");
	bad_mailbox("a@b@c", "two @", "more than one '@'");
	bad_mailbox("a@b, c@d", "two bare addresses", "more than one address");
	bad_mailbox("a@b; c@d", "a semicolon list", "more than one address");
	bad_mailbox("A <a@b>, B <c@d>", "two named addresses", "more than one address");
	bad_mailbox("<a@b>, c@d", "an address after <>", "more than one address");
	bad_mailbox("<a@b> c@d", "text after <>", "text after '>'");
	bad_mailbox("Name <a@b", "a missing '>'", "unbalanced");
	bad_mailbox("Name a@b>", "a missing '<'", "unbalanced");
	bad_mailbox("<<a@b>>", "doubled brackets", "more than one '<'");
	bad_mailbox("<a@b>>", "an extra '>'", "unbalanced");
	bad_mailbox("\"Unterminated <a@b>", "an unterminated quote", "unterminated");
	bad_mailbox("Name <>", "empty brackets", "nothing between");
	bad_mailbox("a b@c", "a space in a bare address", "space");
	bad_mailbox("a..b@c", "a double dot in the local part", "misplaced '.'");
	bad_mailbox(".a@c", "a leading dot", "misplaced '.'");
	bad_mailbox("a(b)@c", "a special in the local part", "invalid character");
	bad_mailbox("a@b..c", "an empty domain label", "invalid domain");
	bad_mailbox("a@exa mple.com", "a space in the domain", "space");
	bad_mailbox("\xff <a@b>", "invalid UTF-8", "UTF-8");
	bad_mailbox("Na\xc2\x85me <a@b>", "a NEL in the display name", "U+0085");
	bad_mailbox("Na\xe2\x80\xa8me <a@b>", "an LS in the display name", "U+2028");
	bad_mailbox("Na\xe2\x80\xa9me <a@b>", "a PS in the display name", "U+2029");
	bad_mailbox("Na\xc2\x9bme <a@b>", "a C1 control (CSI) in the display name", "U+009B");
	bad_mailbox("\"a\\\"\" <x@y>\"", "a quote after the address", "text after '>'");
	bad_mailbox("a@b\r\nRCPT TO:<evil@example.com>", "RCPT TO injection", "line break");
	bad_mailbox("<a@b>\rDATA", "a bare CR and a command", "line break");
	s = repeat("n", 993);
	in = xasprintf("%s <a@b>", s);
	bad_mailbox(in, "a 999-byte mailbox", "more than the limit of 998");
	free(in);
	free(s);
	s = repeat("n", 992);
	in = xasprintf("%s <a@b>", s);
	good_mailbox(in, s, "a@b");
	free(in);
	free(s);
	bad_mailbox("\xc3\xa4@example.com", "a non-ASCII address", "non-ASCII");
	s = repeat("l", 65);
	in = xasprintf("%s@example.com", s);
	bad_mailbox(in, "a 65-character local part", "longer than 64");
	free(in);
	free(s);
	s = repeat("d", 260);
	in = xasprintf("a@%s", s);
	bad_mailbox(in, "a 262-character address", "longer than 254");
	free(in);
	free(s);
	s = repeat("d", 64);
	in = xasprintf("a@%s.example.com", s);
	bad_mailbox(in, "a 64-character domain label", "invalid domain");
	free(in);
	free(s);

	ok(message_check_addr("a@b", &e) == 0, "check_addr: a@b");
	ok(message_check_addr("first.last+tag@sub.example.com", &e) == 0,
	   "check_addr: a dotted, tagged address");
	ok(message_check_addr("a@b\r\nRCPT TO:<x@y>", &e) < 0 && strstr(e.msg, "line break"),
	   "check_addr: refuses CR LF (SMTP command injection)");
	ok(message_check_addr("a@b\n", &e) < 0, "check_addr: refuses LF");
	ok(message_check_addr("<a@b>", &e) < 0 && strstr(e.msg, "'<'"), "check_addr: refuses <>");
	ok(message_check_addr("a@b>", &e) < 0, "check_addr: refuses '>'");
	ok(message_check_addr("a@b SIZE=1", &e) < 0 && strstr(e.msg, "space"),
	   "check_addr: refuses a space (ESMTP parameter injection)");
	ok(message_check_addr("a\x1b@b", &e) < 0 && strstr(e.msg, "control"),
	   "check_addr: refuses a control character");
	ok(message_check_addr("ab", &e) < 0 && strstr(e.msg, "'@'"), "check_addr: refuses no @");
	ok(message_check_addr("", &e) < 0, "check_addr: refuses empty");
	ok(message_check_addr(NULL, &e) < 0, "check_addr: refuses NULL");
	ok(message_check_addr("Name <a@b>", &e) < 0, "check_addr: refuses a display name");
}

/* ---- Message-ID ---- */

static void test_message_id(void)
{
	char *a, *b, *s;

	a = message_id_for("abc-123", "example.org");
	is_str(a, "<alert.abc-123@example.org>", "msgid: a plain id is used as is");
	b = message_id_for("abc-123", "example.org");
	is_str(b, a, "msgid: the same id gives the same Message-ID");
	free(b);
	b = message_id_for("abc-124", "example.org");
	ok(strcmp(a, b) != 0, "msgid: another id gives another Message-ID");
	free(b);
	free(a);

	a = message_id_for("has space", "example.org");
	is_str(a, "<alert.47b5c36fc0b017ba576f10f988d0cbcb@example.org>",
	       "msgid: an id with a space falls back to a SHA-256 prefix");
	b = message_id_for("has space", "example.org");
	is_str(b, a, "msgid: the hashed form is stable too");
	free(b);
	free(a);
	a = message_id_for("x/y", "example.org");
	is_str(a, "<alert.bd3c9047d6816c3172f52ddb42bf77c7@example.org>", "msgid: '/' is hashed");
	free(a);
	s = repeat("a", 64);
	a = message_id_for(s, "example.org");
	b = xasprintf("<alert.%s@example.org>", s);
	is_str(a, b, "msgid: a 64-character id is used as is");
	free(b);
	free(a);
	free(s);
	s = repeat("a", 65);
	a = message_id_for(s, "example.org");
	is_str(a, "<alert.635361c48bb9eab14198e76ea8ab7f1a@example.org>",
	       "msgid: a 65-character id is hashed");
	free(a);
	free(s);
	a = message_id_for("a..b", "example.org");
	is_str(a, "<alert.f62b42414c514fa689d3e087ba397c60@example.org>",
	       "msgid: a double dot (not a dot-atom) is hashed");
	free(a);
	a = message_id_for("a.", "example.org");
	ok(strncmp(a, "<alert.", 7) == 0 && strlen(a) == 7 + 32 + 13,
	   "msgid: a trailing dot is hashed");
	free(a);
	a = message_id_for("", "example.org");
	is_str(a, "<alert.e3b0c44298fc1c149afbf4c8996fb924@example.org>",
	       "msgid: an empty id is hashed");
	free(a);
	a = message_id_for("x\r\nBcc: y", "example.org");
	ok(strchr(a, '\r') == NULL && strchr(a, ' ') == NULL, "msgid: CR LF in the id cannot leak");
	free(a);
	a = message_id_for("abc", "bad domain>");
	is_str(a, "<alert.abc@localhost>", "msgid: an unusable domain is replaced");
	free(a);

	/* One alert fanned out to several channels: a message of its own on each. */
	a = message_id_for_channel("abc-123", "ops", "example.org");
	is_str(a, "<alert.abc-123+ops@example.org>", "msgid: fanned out, the channel follows '+'");
	b = message_id_for_channel("abc-123", "dba", "example.org");
	ok(strcmp(a, b) != 0, "msgid: fanned out, each channel's Message-ID differs");
	free(b);
	b = message_id_for_channel("abc-123", "ops", "example.org");
	is_str(b, a, "msgid: fanned out, the same alert and channel give the same Message-ID");
	free(b);
	free(a);
	a = message_id_for_channel("has space", "a..b", "example.org");
	is_str(a,
	       "<alert.47b5c36fc0b017ba576f10f988d0cbcb+f62b42414c514fa689d3e087ba397c60"
	       "@example.org>",
	       "msgid: fanned out, an unusable id or channel is hashed, each on its own");
	free(a);
	a = message_id_for_channel("abc", NULL, "example.org");
	is_str(a, "<alert.abc@example.org>", "msgid: no channel: the alert's own Message-ID");
	free(a);
}

/* ---- Whole messages ---- */

static int compose(const struct message_in *in, struct buf *out, struct err *e)
{
	buf_init(out);
	return message_compose(in, out, e);
}

static void test_compose(void)
{
	struct mailbox from = {"Alertmail", "alerts@example.org"};
	struct mailbox to[] = {
	    {NULL, "ops@example.com"},
	    {"Ops, Night", "night@example.com"},
	};
	struct message_in in = {&from, to,        1,          "Disk full", "Line 1\nLine 2\n",
	                        NULL,  "abc-123", 1700000000, NULL};
	struct err e = {{0}};
	struct buf out;
	const char *p;
	char *bnd;

	ok(compose(&in, &out, &e) == 0, "compose: a text message");
	is_str(out.data,
	       "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	       "Message-ID: <alert.abc-123@example.org>\r\n"
	       "From: Alertmail <alerts@example.org>\r\n"
	       "To: ops@example.com\r\n"
	       "Subject: Disk full\r\n"
	       "MIME-Version: 1.0\r\n"
	       "Auto-Submitted: auto-generated\r\n"
	       "Content-Type: text/plain; charset=utf-8\r\n"
	       "Content-Transfer-Encoding: quoted-printable\r\n"
	       "\r\n"
	       "Line 1\r\n"
	       "Line 2\r\n",
	       "compose: headers in order, body in quoted-printable");
	buf_free(&out);

	in.text = "no final newline";
	in.date = 0;
	ok(compose(&in, &out, &e) == 0 &&
	       strncmp(out.data, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n", 39) == 0,
	   "compose: the epoch as a date");
	ok(lines_ok(out.data, 998) && strstr(out.data, "\r\n\r\nno final newline\r\n") != NULL,
	   "compose: the message ends in CRLF even when the text does not");
	buf_free(&out);

	in.text = "";
	in.subject = "";
	ok(compose(&in, &out, &e) == 0 && lines_ok(out.data, 998) &&
	       strstr(out.data, "\r\nSubject:\r\n") != NULL &&
	       strcmp(out.data + out.len - 4, "\r\n\r\n") == 0,
	   "compose: empty subject and body");
	buf_free(&out);

	in.nto = 2;
	in.text = "bad \xff byte\n";
	in.html = "<p>caf\xc3\xa9</p>\n";
	in.subject = "Caf\xc3\xa9\r\nBcc: evil@x";
	in.date = 1700000000;
	ok(compose(&in, &out, &e) == 0, "compose: text and HTML");
	ok(lines_ok(out.data, 998), "compose: every line ends in CRLF, none over 998");
	ok(strstr(out.data, "\r\nTo: ops@example.com, \"Ops, Night\" <night@example.com>\r\n") !=
	       NULL,
	   "compose: To lists every recipient, a display name with a comma quoted");
	ok(strstr(out.data, "\nBcc") == NULL && strstr(out.data, "Bcc: evil@x\r\nMIME") != NULL,
	   "compose: CR LF in the subject becomes a space");
	ok(strstr(out.data, "\r\nContent-Type: multipart/alternative;\r\n boundary=\"=_") != NULL,
	   "compose: multipart/alternative with a '=_' boundary");
	p = strstr(out.data, "boundary=\"");
	bnd = p != NULL ? xstrndup(p + 10, strcspn(p + 10, "\"")) : xstrdup("?");
	p = strstr(out.data, "\r\n\r\n");
	ok(p != NULL && strstr(p, "text/plain") < strstr(p, "text/html") &&
	       strstr(p, "text/plain") != NULL,
	   "compose: the text part comes first");
	ok(strstr(out.data, "bad =EF=BF=BD byte") != NULL,
	   "compose: invalid UTF-8 in a body becomes U+FFFD");
	ok(strstr(out.data, "<p>caf=C3=A9</p>\r\n") != NULL,
	   "compose: the HTML part in quoted-printable");
	{
		struct buf closing;

		buf_init(&closing);
		buf_printf(&closing, "\r\n--%s--\r\n", bnd);
		ok(out.len >= closing.len &&
		       strcmp(out.data + out.len - closing.len, closing.data) == 0,
		   "compose: the closing delimiter ends the message");
		buf_free(&closing);
	}
	free(bnd);
	{
		struct buf again;

		ok(compose(&in, &again, &e) == 0 && strcmp(again.data, out.data) == 0,
		   "compose: the same input gives the same bytes");
		buf_free(&again);
	}
	buf_free(&out);

	/* A display name built without mailbox_parse cannot inject either. */
	{
		struct mailbox evil = {"Ops\r\nBcc: evil@x", "alerts@example.org"};
		struct message_in in2 = in;

		in2.from = &evil;
		ok(compose(&in2, &out, &e) == 0 && strstr(out.data, "\nBcc") == NULL &&
		       strstr(out.data, "From: \"Ops Bcc: evil@x\" <alerts@example.org>\r\n") !=
		           NULL,
		   "compose: CR LF in a display name becomes a space");
		buf_free(&out);
		evil.display = "=?UTF-8?Q?x?=";
		ok(compose(&in2, &out, &e) == 0 &&
		       strstr(out.data, "From: =?UTF-8?Q?=3D=3FUTF-8=3FQ=3Fx=3F=3D?= <alerts") !=
		           NULL,
		   "compose: a display name that looks encoded is encoded");
		buf_free(&out);
	}

	/* Errors leave the output alone and say what is wrong. */
	{
		struct mailbox bad_to = {NULL, "ops@example.com\r\nRCPT TO:<x@y>"};
		struct mailbox bad_from = {NULL, "alerts"};
		struct message_in in2 = in;

		buf_init(&out);
		buf_adds(&out, "kept");
		in2.to = &bad_to;
		in2.nto = 1;
		ok(message_compose(&in2, &out, &e) < 0 && strstr(e.msg, "recipient 1") != NULL &&
		       strcmp(out.data, "kept") == 0,
		   "compose: a recipient with CR LF is refused, output untouched");
		in2 = in;
		in2.from = &bad_from;
		ok(message_compose(&in2, &out, &e) < 0 && strstr(e.msg, "From") != NULL,
		   "compose: a From without @ is refused");
		in2 = in;
		in2.nto = 0;
		ok(message_compose(&in2, &out, &e) < 0 && strstr(e.msg, "no recipients") != NULL,
		   "compose: no recipients is refused");
		in2 = in;
		in2.alert_id = NULL;
		ok(message_compose(&in2, &out, &e) < 0 && strstr(e.msg, "alert id") != NULL,
		   "compose: no alert id is refused");
		in2 = in;
		in2.date = (time_t)400000000000LL;
		ok(message_compose(&in2, &out, &e) < 0 && strstr(e.msg, "date") != NULL,
		   "compose: a date past year 9999 is refused");
		ok(strcmp(out.data, "kept") == 0, "compose: errors append nothing");
		buf_free(&out);
	}

	/* Many recipients with long names fold at 78 and read back whole. */
	{
		struct mailbox many[10];
		char *names[10];
		char *u;

		for (size_t i = 0; i < 10; i++) {
			names[i] = xasprintf("On-call person number %zu", i);
			many[i].display = names[i];
			many[i].addr = i == 9 ? "last-person@example.com" : "oncall@example.com";
		}
		many[3].display = "\xc3\x85sa \xc3\x96"
		                  "berg";
		in.to = many;
		in.nto = 10;
		ok(compose(&in, &out, &e) == 0, "compose: ten recipients");
		p = strstr(out.data, "\r\nTo:");
		u = p != NULL ? xstrndup(p + 2, (size_t)(strstr(p, "\r\nSubject:") - p))
		              : xstrdup("");
		ok(lines_ok(u, 78), "compose: the To field folds within 78 columns");
		free(u);
		u = unfold(out.data);
		ok(strstr(u, "To: On-call person number 0 <oncall@example.com>, On-call person "
		             "number 1 <oncall@example.com>, On-call person number 2 "
		             "<oncall@example.com>, =?UTF-8?Q?=C3=85sa_=C3=96berg?= "
		             "<oncall@example.com>, ") != NULL &&
		       strstr(u, "On-call person number 9 <last-person@example.com>\r\nSubject:") !=
		           NULL,
		   "compose: the unfolded To holds every mailbox, comma-separated");
		free(u);
		buf_free(&out);
		for (size_t i = 0; i < 10; i++)
			free(names[i]);
	}
}

/* ---- Messages and log text: data shown escaped, one line ---- */

static void test_escaping(void)
{
	struct err e;
	struct buf b;
	char *s;

	err_set(&e, "bad '%s'", "a\r\nb\tc\x1b[2J\x7f");
	is_str(e.msg, "bad 'a\\r\\nb\\tc\\x1b[2J\\x7f'",
	       "err_set: C0 controls and DEL in the data are escaped");
	err_set(&e, "bad '%s'", "x\xc2\x85y\xe2\x80\xa8z\xe2\x80\xa9\xc2\x9b\xc3\xa9");
	is_str(e.msg, "bad 'x\\u0085y\\u2028z\\u2029\\u009b\xc3\xa9'",
	       "err_set: NEL, LS, PS and C1 are escaped, other UTF-8 kept");
	err_set(&e, "bad '%s'",
	        "a\xff"
	        "b\xc0\xaf");
	is_str(e.msg, "bad 'a\\xffb\\xc0\\xaf'",
	       "err_set: bytes that are not UTF-8 are shown as \\xNN");
	s = repeat("\xc3\xa9", 600);
	err_set(&e, "%s", s);
	ok(strlen(e.msg) == 1022 && strncmp(e.msg + 1020, "\xc3\xa9", 2) == 0,
	   "err_set: a long message is cut between characters (%zu bytes)", strlen(e.msg));
	free(s);
	s = repeat("\n", 600);
	err_set(&e, "%s", s);
	ok(strlen(e.msg) == 1022 && strspn(e.msg, "\\n") == 1022,
	   "err_set: ... and between escapes (%zu bytes)", strlen(e.msg));
	free(s);
	err_set(&e, "inner");
	err_prefix(&e, "outer %s", "x\ny");
	is_str(e.msg, "outer x\\ny: inner", "err_prefix: the prefix is escaped too");
	buf_init(&b);
	buf_add_escaped(&b, "a\nb\xe2\x80\xa8\xff");
	is_str(b.data, "a\\nb\\u2028\\xff", "buf_add_escaped: the same rules");
	buf_free(&b);
}

int main(void)
{
	test_escaping();
	test_qp();
	test_headers();
	test_mailbox();
	test_message_id();
	test_compose();
	return done_testing();
}

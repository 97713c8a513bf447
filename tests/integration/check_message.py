#!/usr/bin/python3
"""Checks a message composed by alertmail against the case it was made from, with Python's
email package as an independent parser (policy.default: RFC 5322, RFC 2047, MIME).

  check_message.py check CASE.yaml MESSAGE.eml
  check_message.py same-id A.eml B.eml      both carry the same Message-ID
  check_message.py differ-id A.eml B.eml    the Message-IDs differ

Prints one line per problem found; exits 0 when there is none, 1 otherwise, 2 on bad use.

Case files are the YAML that tests/unit/mkmessage reads, limited to what this file can read
without a YAML library: top-level "key: value" lines where value is an integer, a
double-quoted string on one line, or a flow list of such strings.
"""

import email
import email.policy
import email.utils
import hashlib
import re
import sys

HEADERS_SINGLE = ['Date', 'Message-ID', 'From', 'To', 'Subject', 'MIME-Version',
                  'Auto-Submitted', 'Content-Type', 'Content-Transfer-Encoding']
HEADERS_MULTI = HEADERS_SINGLE[:-1]
ENCODED_WORD = re.compile(rb'=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=')
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
DOT_ATOM = ATEXT + r'+(?:\.' + ATEXT + r'+)*'
MSG_ID = re.compile(r'^<' + DOT_ATOM + r'@(?:' + DOT_ATOM + r'|\[[^\[\]\\\s]*\])>$')
ID_USABLE = re.compile(r'[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*')

# YAML double-quoted escapes (YAML 1.1 5.6, as libyaml reads them).
SIMPLE_ESCAPES = {'0': '\0', 'a': '\a', 'b': '\b', 't': '\t', '\t': '\t', 'n': '\n',
                  'v': '\v', 'f': '\f', 'r': '\r', 'e': '\x1b', ' ': ' ', '"': '"',
                  '/': '/', '\\': '\\', 'N': '\x85', '_': '\xa0', 'L': '\u2028',
                  'P': '\u2029'}
HEX_ESCAPES = {'x': 2, 'u': 4, 'U': 8}


class CaseError(Exception):
    pass


def read_quoted(s, i):
    """Reads a double-quoted scalar starting at s[i] == '"'; returns (text, next index)."""
    out = []
    i += 1
    while True:
        if i >= len(s):
            raise CaseError('unterminated string')
        c = s[i]
        if c == '"':
            return ''.join(out), i + 1
        if c != '\\':
            out.append(c)
            i += 1
            continue
        e = s[i + 1:i + 2]
        if e in SIMPLE_ESCAPES:
            out.append(SIMPLE_ESCAPES[e])
            i += 2
        elif e in HEX_ESCAPES:
            n = HEX_ESCAPES[e]
            out.append(chr(int(s[i + 2:i + 2 + n], 16)))
            i += 2 + n
        else:
            raise CaseError('unknown escape \\' + e)


def read_case(path):
    case = {}
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            m = re.match(r'^([a-z]+):\s*(.*)$', line)
            if not m:
                raise CaseError('%s:%d: not a "key: value" line' % (path, lineno))
            key, rest = m.group(1), m.group(2)
            if rest.startswith('"'):
                value, end = read_quoted(rest, 0)
            elif rest.startswith('['):
                value, end = [], 1
                while True:
                    while rest[end:end + 1] in (' ', ','):
                        end += 1
                    if rest[end:end + 1] == ']':
                        end += 1
                        break
                    item, end = read_quoted(rest, end)
                    value.append(item)
            elif re.match(r'^-?[0-9]+$', rest):
                value, end = int(rest), len(rest)
            else:
                raise CaseError('%s:%d: unsupported value' % (path, lineno))
            if rest[end:].strip():
                raise CaseError('%s:%d: trailing text' % (path, lineno))
            case[key] = value
    if isinstance(case.get('to'), str):
        case['to'] = [case['to']]
    return case


def clean_header_text(s):
    """What the subject should read as: controls become spaces, runs collapse, ends trimmed."""
    return re.sub('[\x00-\x20\x7f-\x9f]+', ' ', s).strip(' ')


def normalise_eol(s):
    return s.replace('\r\n', '\n').replace('\r', '\n')


def expected_message_id(alert_id, domain):
    if len(alert_id) <= 64 and ID_USABLE.fullmatch(alert_id):
        return '<alert.%s@%s>' % (alert_id, domain)
    return '<alert.%s@%s>' % (hashlib.sha256(alert_id.encode('utf-8')).hexdigest()[:32], domain)


def short(value):
    s = ascii(value)
    return s if len(s) <= 200 else s[:200] + '... (%d characters)' % len(s)


class Checker:
    def __init__(self):
        self.problems = []

    def expect(self, cond, what):
        if not cond:
            self.problems.append(what)
        return cond

    def equal(self, got, want, what):
        return self.expect(got == want, '%s: got %s, want %s' % (what, short(got), short(want)))

    def raw(self, data):
        """Octet-level rules: CRLF everywhere, line lengths, encoded-word lengths, 7 bit."""
        self.expect(data.endswith(b'\r\n'), 'the message does not end with CRLF')
        self.expect(re.search(rb'(?<!\r)\n', data) is None, 'a line ends in a bare LF')
        self.expect(re.search(rb'\r(?!\n)', data) is None, 'a bare CR')
        self.expect(all(b < 0x80 for b in data), 'the message is not 7-bit ASCII')
        head, sep, body = data.partition(b'\r\n\r\n')
        self.expect(sep != b'', 'no blank line after the header')
        for n, line in enumerate(data.split(b'\r\n'), 1):
            self.expect(len(line) <= 998, 'line %d has %d octets (> 998)' % (n, len(line)))
        for line in head.split(b'\r\n'):
            if not line.startswith(b'Message-ID:'):
                self.expect(len(line) <= 78, 'header line over 78 octets: %s' % ascii(line))
        for line in body.split(b'\r\n'):
            if not line.startswith(b'--=_'):
                self.expect(len(line) <= 76, 'body line over 76 octets: %s' % ascii(line[:80]))
        for word in ENCODED_WORD.findall(head):
            self.expect(len(word) <= 75, 'encoded word over 75 octets: %s' % ascii(word))
        for line in head.split(b'\r\n'):
            self.expect(line[:1] in (b' ', b'\t') or b':' in line,
                        'header line neither field nor continuation: %s' % ascii(line))

    def text_part(self, part, subtype, want, what):
        self.equal(part.get_content_type(), 'text/' + subtype, what + ' content type')
        self.equal(part.get_content_charset(), 'utf-8', what + ' charset')
        self.equal(str(part.get('Content-Transfer-Encoding', '')), 'quoted-printable',
                   what + ' transfer encoding')
        self.equal(normalise_eol(part.get_content()), want, what + ' decoded')
        self.expect(not part.defects, '%s defects: %s' % (what, part.defects))

    def mailbox(self, got, given, what):
        name, addr = email.utils.parseaddr(given)
        self.equal(got.addr_spec, addr, what + ' address')
        self.equal(got.display_name, name, what + ' display name')

    def message(self, case, data):
        self.raw(data)
        msg = email.message_from_bytes(data, policy=email.policy.default)
        html = case.get('html')
        self.equal(list(msg.keys()), HEADERS_MULTI if html is not None else HEADERS_SINGLE,
                   'header names')
        self.expect(not msg.defects, 'message defects: %s' % msg.defects)
        for name, value in msg.items():
            self.expect(not getattr(value, 'defects', ()),
                        '%s header defects: %s' % (name, getattr(value, 'defects', ())))

        subject = str(msg.get('Subject', ''))
        self.equal(subject, clean_header_text(case['subject']), 'Subject')
        self.expect('\r' not in subject and '\n' not in subject, 'line break in Subject')

        froms = msg['From'].addresses if msg['From'] is not None else ()
        if self.equal(len(froms), 1, 'From mailboxes'):
            self.mailbox(froms[0], case['from'], 'From')
        tos = msg['To'].addresses if msg['To'] is not None else ()
        if self.equal(len(tos), len(case['to']), 'To mailboxes'):
            for i, (got, given) in enumerate(zip(tos, case['to']), 1):
                self.mailbox(got, given, 'To %d' % i)

        msgid = str(msg.get('Message-ID', ''))
        self.expect(MSG_ID.match(msgid) is not None, 'Message-ID %s is not a msg-id' % ascii(msgid))
        domain = email.utils.parseaddr(case['from'])[1].rpartition('@')[2]
        self.equal(msgid, expected_message_id(case['id'], domain), 'Message-ID')

        date = msg['Date'].datetime if msg['Date'] is not None else None
        if self.expect(date is not None, 'no Date'):
            self.equal(date.utcoffset().total_seconds(), 0, 'Date zone')
            self.equal(int(date.timestamp()), case['date'], 'Date')
        self.equal(str(msg.get('MIME-Version', '')), '1.0', 'MIME-Version')
        self.equal(str(msg.get('Auto-Submitted', '')), 'auto-generated', 'Auto-Submitted')

        text = normalise_eol(case['text'])
        if html is None:
            # A single part gets a final line break so the message ends in CRLF.
            if text and not text.endswith('\n'):
                text += '\n'
            self.text_part(msg, 'plain', text, 'text')
            return
        self.equal(msg.get_content_type(), 'multipart/alternative', 'top content type')
        boundary = msg.get_boundary() or ''
        self.expect('=_' in boundary, 'boundary %s lacks "=_"' % ascii(boundary))
        parts = list(msg.iter_parts())
        if self.equal(len(parts), 2, 'number of parts'):
            self.text_part(parts[0], 'plain', text, 'text part')
            self.text_part(parts[1], 'html', normalise_eol(html), 'html part')


def message_id_of(path):
    with open(path, 'rb') as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    return str(msg.get('Message-ID', ''))


def main(argv):
    c = Checker()
    if len(argv) == 4 and argv[1] == 'check':
        try:
            case = read_case(argv[2])
        except (CaseError, ValueError, OSError) as e:
            print('cannot read the case: %s' % e)
            return 2
        with open(argv[3], 'rb') as f:
            data = f.read()
        c.message(case, data)
    elif len(argv) == 4 and argv[1] in ('same-id', 'differ-id'):
        a, b = message_id_of(argv[2]), message_id_of(argv[3])
        c.expect(a != '', 'no Message-ID in ' + argv[2])
        if argv[1] == 'same-id':
            c.equal(b, a, 'Message-ID of the second message')
        else:
            c.expect(a != b, 'both messages have Message-ID %s' % ascii(a))
    else:
        print(__doc__.strip().split('\n\n')[1])
        return 2
    for p in c.problems:
        print(p)
    return 1 if c.problems else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))

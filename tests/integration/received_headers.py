#!/usr/bin/python3
"""Checks the header sections of messages as a server stored them (a Maildir file), for
hostile_input.test: that alert data made no header of its own.

  received_headers.py FILE...

For each message, with Python's email package (policy.default) and on the raw bytes:
  - the top-level header fields are exactly alertmail's (Date, Message-ID, From, To, Subject,
    MIME-Version, Auto-Submitted, Content-Type, and Content-Transfer-Encoding unless
    multipart), each once, plus the trace fields the server adds (Return-Path, Delivered-To,
    X-Original-To, Received);
  - each MIME part has only Content-Type and Content-Transfer-Encoding;
  - in the raw header sections (the message's and each part's) every line starts with one of
    those names and a colon, or is a folded continuation; no CR remains (the server stores LF
    line ends, so a CR would be a bare one from the data);
  - no line of the whole message is longer than 998 octets;
  - the decoded Subject, From and To hold no control character, NEL, U+2028 or U+2029.

Prints one line of JSON per message (file, alert id from the Message-ID, decoded subject, to,
from, the text part decoded) and one "problem: ..." line per problem; exits 0 when there is no
problem, 1 otherwise, 2 on bad use.
"""

import email
import email.policy
import json
import re
import sys

OWN = ['date', 'message-id', 'from', 'to', 'subject', 'mime-version', 'auto-submitted',
       'content-type', 'content-transfer-encoding']
TRACE = {'return-path', 'delivered-to', 'x-original-to', 'received'}
PART = {'content-type', 'content-transfer-encoding'}
CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029]')
MSGID = re.compile(r'<alert\.([^@>]*)@')


def header_block(raw):
    """The raw header section of raw (bytes) and the rest."""
    end = raw.find(b'\n\n')
    if end < 0:
        return raw, b''
    return raw[:end + 1], raw[end + 2:]


def raw_lines_problems(block, allowed, where):
    problems = []
    for line in block.split(b'\n'):
        if line == b'':
            continue
        if b'\r' in line:
            problems.append('%s: a CR in the header line %r' % (where, line[:80]))
        if line[:1] in (b' ', b'\t'):
            continue
        name = line.split(b':', 1)[0].decode('ascii', 'replace').lower()
        if b':' not in line or name not in allowed:
            problems.append('%s: a header line that is not one of ours: %r' % (where, line[:80]))
    return problems


def check(path):
    with open(path, 'rb') as f:
        raw = f.read()
    problems = []
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    names = [k.lower() for k in msg.keys()]
    own = [n for n in names if n not in TRACE]
    want = [n for n in OWN if n != 'content-transfer-encoding' or not msg.is_multipart()]
    if sorted(own) != sorted(want):
        problems.append('header fields %s, expected %s' % (own, want))
    block, body = header_block(raw)
    problems += raw_lines_problems(block, set(OWN) | TRACE, 'message')
    if msg.is_multipart():
        boundary = msg.get_boundary().encode('ascii')
        for chunk in body.split(b'--' + boundary)[1:]:
            if chunk.startswith(b'--'):
                break
            pblock, _ = header_block(chunk.lstrip(b'\n'))
            problems += raw_lines_problems(pblock, PART, 'part')
        for part in msg.iter_parts():
            extra = [k.lower() for k in part.keys() if k.lower() not in PART]
            if extra:
                problems.append('part header fields %s' % extra)
    for n, line in enumerate(raw.split(b'\n'), 1):
        if len(line) > 998:
            problems.append('line %d is %d octets long' % (n, len(line)))
            break
    out = {'file': path}
    for name in ('subject', 'from', 'to'):
        value = str(msg.get(name, ''))
        if CONTROL.search(value):
            problems.append('%s has a control character or line separator: %r' % (name, value))
        out[name] = value
    m = MSGID.search(str(msg.get('message-id', '')))
    out['id'] = m.group(1) if m else None
    text = msg.get_body(preferencelist=('plain',))
    out['text'] = text.get_content() if text is not None else None
    print(json.dumps(out))
    for p in problems:
        print('problem: %s: %s' % (path, p))
    return not problems


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    good = True
    for path in sys.argv[1:]:
        good = check(path) and good
    return 0 if good else 1


if __name__ == '__main__':
    sys.exit(main())

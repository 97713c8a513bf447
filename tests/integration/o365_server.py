#!/usr/bin/python3
"""Scripted SMTP server that behaves like Office 365 client submission.

A test peer for alertmail's integration tests, built on aiosmtpd (run it with
Debian's /usr/bin/python3, which sees python3-aiosmtpd).  It imitates
smtp.office365.com on port 587: the greeting, the EHLO lists before and after
STARTTLS, AUTH LOGIN/XOAUTH2 only after TLS, and the replies Exchange Online
gives -- and it injects faults on request (--fault NAME, --reply STAGE=TEXT).

It listens on loopback only, exits by itself after --max-lifetime seconds,
and writes:
  --maildir DIR   each accepted message as a file in DIR/new (Maildir layout),
                  the raw bytes as received (after dot-unstuffing), and its
                  envelope in DIR/envelope/<same name>
  --log FILE      a transcript: every line the client sent (AUTH included,
                  nothing redacted; message content summarised) and every
                  reply, one per line:  HH:MM:SS.mmm #CONN C:|S:|-- text
  --pidfile, --portfile   written once it listens (--port 0 picks a port)

Fault stages (see FAULTS): connect ehlo ehlo_tls starttls auth mail rcpt data
data_end rset quit.  A stage's reply replaces the normal one; the reply DROP
closes the connection without any reply; SILENT (connect only) never greets.
ehlo_tls is the EHLO after STARTTLS only (ehlo: every EHLO); after a 421 to
EHLO the server closes the connection, as it does after a 421 greeting.
--delay STAGE=SECONDS (or a "delay:STAGE" entry in FAULTS) waits before the
reply at STAGE, e.g. to make a client's timeouts fire.
"""

import argparse
import asyncio
import base64
import binascii
import datetime
import email.utils
import ipaddress
import os
import signal
import socket
import ssl
import sys
import time
import uuid

from aiosmtpd.smtp import SMTP

DROP = "DROP"      # close the connection instead of replying
SILENT = "SILENT"  # (connect) accept TCP, never send a greeting

# Faults: name -> {stage: reply, ...} plus flags.  Extend by adding entries.
#   flags: "starttls": False   -> STARTTLS is not advertised nor accepted
#          "auth_in_clear": "MECHS" -> AUTH offered (and accepted) before TLS
#          "starttls_inject": TEXT  -> TEXT sent in the same write as the 220
#                                      to STARTTLS (response injection)
#          "delay:STAGE": SECONDS   -> wait that long before the reply at STAGE
#          "auth_lines": [LINE, ...] -> EHLO lines advertising AUTH instead of
#                                      "AUTH <mechanisms>" (AUTH still accepted)
#   hostile replies at a stage (connect ehlo ehlo_tls mail rcpt data data_end); after
#   them the server answers nothing more and holds the connection until the client closes:
#          "stall:STAGE": TEXT      -> TEXT as the reply, CRLF only where TEXT has one: a
#                                      reply that stops in the middle of a line
#          "endless:STAGE": LINE    -> LINE (a "250-..." continuation) again and again: a
#                                      multi-line reply that never ends
#          "longline:STAGE": N      -> "250-" and N octets without a line end
FAULTS = {
    "none": {},
    "silent": {"connect": SILENT},
    "greeting-421": {"connect": "421 4.3.2 Service not available, closing transmission channel"},
    "no-starttls": {"starttls": False, "auth_in_clear": "LOGIN PLAIN"},
    "starttls-refused": {"starttls": "454 4.7.0 Temporary authentication failure"},
    "starttls-inject": {"starttls_inject": "250-injected.example Hello\r\n250 AUTH PLAIN LOGIN\r\n"},
    "auth-disabled": {"auth": "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
                              "is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled "
                              "for more information."},
    "auth-tempfail": {"auth": "454 4.7.0 Temporary authentication failure"},
    # AUTH advertised only in forms that are not the RFC 4954 "AUTH " keyword in
    # capitals: lowercase, and the old "AUTH=" form.  A client that takes these
    # for no AUTH at all must not send mail unauthenticated.
    "auth-lowercase": {"auth_lines": ["auth login xoauth2", "AUTH=LOGIN"]},
    "tempfail-mail": {"mail": "451 4.7.500 Server busy. Please try again later."},
    "throttle": {"mail": "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"},
    "sender-denied": {"mail": "550 5.7.60 SMTP; Client does not have permissions to send as this sender"},
    "permfail-rcpt": {"rcpt": "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"},
    "tempfail-rcpt": {"rcpt": "451 4.4.0 Temporary server error. Please try again later"},
    "tempfail-data": {"data_end": "451 4.3.0 Mail server temporarily rejected message."},
    "sendas-denied": {"data_end": "554 5.2.252 SendAsDenied; sender not allowed to send as this mailbox"},
    "quota": {"data_end": "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"},
    # What Office 365 answers a client that negotiated TLS 1.0 or 1.1 (here: any TLS, so
    # that a client which never offers them can see the reply a middlebox would cause).
    "tls-legacy": {"ehlo_tls": "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update "
                               "your client to support TLS 1.2. Visit https://aka.ms/smtp_auth_tls"},
    # STARTTLS stripping: a reply to STARTTLS that is neither 220 nor a refusal.
    "starttls-354": {"starttls": "354 Start mail input; end with <CRLF>.<CRLF>"},
    # EHLO refused: before TLS (every EHLO), or only the one after STARTTLS.
    "ehlo-refused": {"ehlo": "550 5.7.1 Client host rejected: EHLO refused"},
    "ehlo-tls-refused": {"ehlo_tls": "550 5.7.1 Client host rejected: EHLO refused"},
    # A reply that stops in the middle of a line, and holds the connection.
    "stall-greeting": {"stall:connect": "220-AM0PR01CA0123.outlook.office365.com Microsoft "
                                        "ESMTP MAIL Service ready\r\n220-AM0PR01"},
    "stall-ehlo": {"stall:ehlo": "250-AM0PR01CA0123.outlook.office365.com Hello [127.0.0.1]"
                                 "\r\n250-SIZE"},
    "stall-mail": {"stall:mail": "250 2.1.0 Sen"},
    "stall-rcpt": {"stall:rcpt": "250-2.1.5 Recipient OK\r\n250-2.1."},
    # A multi-line reply that never ends (as fast as the client reads).
    "endless-greeting": {"endless:connect": "220-AM0PR01CA0123.outlook.office365.com ready"},
    "endless-ehlo": {"endless:ehlo": "250-SIZE 157286400"},
    "endless-ehlo-tls": {"endless:ehlo_tls": "250-AUTH LOGIN XOAUTH2"},
    "endless-rcpt": {"endless:rcpt": "250-2.1.5 Recipient OK"},
    "endless-data-end": {"endless:data_end": "250-2.0.0 Queued"},
    # A reply line of 1 MiB without a line end.
    "longline-ehlo": {"longline:ehlo": 1 << 20},
    "longline-ehlo-tls": {"longline:ehlo_tls": 1 << 20},
    "longline-mail": {"longline:mail": 1 << 20},
    "longline-data": {"longline:data": 1 << 20},
    "drop-after-data": {"data_end": DROP},
    "hang-after-data": {"delay:data_end": 3600},
    "drop-at-mail": {"mail": DROP},
}
# One help line per fault (--list-faults); every entry of FAULTS has one.
FAULT_HELP = {
    "none": "no fault: behave like Office 365",
    "silent": "accept TCP and never greet",
    "greeting-421": "greet with 421 4.3.2 and close",
    "no-starttls": "no STARTTLS in EHLO; AUTH LOGIN PLAIN offered in clear",
    "starttls-refused": "answer STARTTLS with 454 4.7.0",
    "starttls-inject": "send injected EHLO lines in the same write as the 220 to STARTTLS",
    "auth-disabled": "answer AUTH with 535 5.7.139 (SMTP AUTH disabled for the tenant)",
    "auth-tempfail": "answer AUTH with 454 4.7.0",
    "auth-lowercase": "advertise AUTH only as 'auth login xoauth2' and 'AUTH=LOGIN'",
    "tempfail-mail": "answer MAIL with 451 4.7.500",
    "throttle": "answer MAIL with 432 4.3.2 (sender thread limit)",
    "sender-denied": "answer MAIL with 550 5.7.60 (no permission to send as this sender)",
    "permfail-rcpt": "answer RCPT with 550 5.1.10",
    "tempfail-rcpt": "answer RCPT with 451 4.4.0",
    "tempfail-data": "answer the end of the data with 451 4.3.0",
    "sendas-denied": "answer the end of the data with 554 5.2.252 SendAsDenied",
    "quota": "answer the end of the data with 554 5.2.0 SubmissionQuotaExceeded",
    "tls-legacy": "answer the EHLO after TLS with 421 4.7.66 (TLS 1.0/1.1 not supported)",
    "starttls-354": "answer STARTTLS with 354 (neither 220 nor a refusal)",
    "ehlo-refused": "answer every EHLO with 550 5.7.1 (HELO still works)",
    "ehlo-tls-refused": "answer the EHLO after STARTTLS with 550 5.7.1 (HELO still works)",
    "stall-greeting": "greet with one line of a multi-line 220, then half a line, then nothing",
    "stall-ehlo": "answer EHLO with one line, then '250-SIZE' without a line end, then nothing",
    "stall-mail": "answer MAIL with half a line ('250 2.1.0 Sen'), then nothing",
    "stall-rcpt": "answer RCPT with one line, then half a line, then nothing",
    "endless-greeting": "greet with '220-...' lines that never end",
    "endless-ehlo": "answer EHLO with '250-...' lines that never end",
    "endless-ehlo-tls": "answer the EHLO after STARTTLS with '250-...' lines that never end",
    "endless-rcpt": "answer RCPT with '250-...' lines that never end",
    "endless-data-end": "answer the end of the data with '250-...' lines that never end",
    "longline-ehlo": "answer EHLO with a 1 MiB line without a line end",
    "longline-ehlo-tls": "answer the EHLO after STARTTLS with a 1 MiB line without a line end",
    "longline-mail": "answer MAIL with a 1 MiB line without a line end",
    "longline-data": "answer DATA with a 1 MiB line without a line end",
    "drop-after-data": "close the connection after the data, without a reply",
    "hang-after-data": "never answer the end of the data (an hour)",
    "drop-at-mail": "close the connection at MAIL, without a reply",
}
assert set(FAULT_HELP) == set(FAULTS), "every fault needs one help line in FAULT_HELP"

STAGES = ("connect", "ehlo", "ehlo_tls", "starttls", "auth", "mail", "rcpt", "data", "data_end", "rset", "quit")

MAX_SIZE = 157286400          # what Exchange Online advertises
MAX_LINE = 12288 + 2          # RFC 4954: AUTH lines up to 12288 octets
READER_LIMIT = 65536


def now_date():
    return email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc))


class Transcript:
    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8", errors="backslashreplace") if path else None

    def write(self, conn, tag, text):
        if not self.f:
            return
        t = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(t)) + ".%03d" % int((t % 1) * 1000)
        for line in text.split("\n"):
            self.f.write("%s #%d %s %s\n" % (stamp, conn, tag, line.rstrip("\r")))
        self.f.flush()


class Config:
    """Everything the connections share."""

    def __init__(self, args):
        self.args = args
        self.hostname = args.hostname
        self.backend = args.hostname.split(".")[0].replace("CA", "MB") + ".namprd00.prod.outlook.com"
        self.transcript = Transcript(args.log)
        self.tls_context = None
        self.tls_enabled = False
        self.conn_counter = 0
        self.messages = 0
        # Merge faults in order; --reply overrides.
        self.fault = {}
        for name in args.fault or []:
            self.fault.update(FAULTS[name])
        for spec in args.reply or []:
            stage, _, text = spec.partition("=")
            self.fault[stage] = text
        for spec in args.delay or []:
            stage, _, secs = spec.partition("=")
            self.fault["delay:" + stage] = float(secs)
        self.active = 0
        if args.cert and not args.no_tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.cert, args.key)
            versions = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                        "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
            low = args.tls_max and versions[args.tls_max] < ssl.TLSVersion.TLSv1_2
            tls_min = args.tls_min or ("1.0" if low else "1.2")
            if versions[tls_min] < ssl.TLSVersion.TLSv1_2:
                # OpenSSL 3 refuses TLS < 1.2 at the default security level.
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = versions[tls_min]
            if args.tls_max:
                ctx.maximum_version = versions[args.tls_max]
            if args.client_ca:
                # The handshake itself refuses a client without a certificate from this CA.
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(args.client_ca)
            self.tls_context = ctx
            self.tls_enabled = True

    def fault_active(self, conn):
        return self.args.fault_times is None or conn <= self.args.fault_times


class O365SMTP(SMTP):
    """One connection.  aiosmtpd provides the transport, STARTTLS plumbing and
    the idle timeout; the command loop and the replies are our own."""

    def __init__(self, cfg):
        self.cfg = cfg
        cfg.conn_counter += 1
        self.conn = cfg.conn_counter
        self.faults = cfg.fault if cfg.fault_active(self.conn) else {}
        # STARTTLS is offered when TLS is configured, unless a fault hides it;
        # without it AUTH is offered in clear (--no-tls, no-starttls).
        self.advertise_starttls = cfg.tls_enabled and self.faults.get("starttls") is not False
        if cfg.args.auth_mechanisms is not None:
            mechs = cfg.args.auth_mechanisms.replace(",", " ").split()
        elif self.advertise_starttls:
            mechs = ["LOGIN", "XOAUTH2"]
        else:
            mechs = (self.faults.get("auth_in_clear") or "LOGIN PLAIN").split()
        self.mechanisms = [m.upper() for m in mechs]
        super().__init__(handler=None, hostname=cfg.hostname, tls_context=cfg.tls_context,
                         timeout=cfg.args.idle_timeout, enable_SMTPUTF8=True,
                         data_size_limit=MAX_SIZE)
        self.tls_active = False
        self.authenticated = False
        self.auth_user = None
        self.helo = None
        self._dropped = False
        self._counted = False
        self._reset_envelope()

    # -- helpers -------------------------------------------------------
    def log(self, tag, text):
        self.cfg.transcript.write(self.conn, tag, text)

    def _reset_envelope(self):
        self.mail_from = None
        self.mail_options = []
        self.rcpts = []
        self.bdat_chunks = []

    async def push(self, status):
        if self._dropped or self.transport is None:
            return
        if isinstance(status, bytes):
            data = status
        else:
            data = status.encode("utf-8")
        self.log("S:", data.decode("utf-8", "backslashreplace"))
        self._writer.write(data + b"\r\n")
        await self._writer.drain()

    async def stage_delay(self, stage):
        d = self.faults.get("delay:" + stage)
        if d:
            self.log("--", "fault: waiting %gs before the reply at %s" % (d, stage))
            await asyncio.sleep(d)

    async def reply(self, stage, normal):
        """Send the fault reply for STAGE if one is set, else NORMAL.
        Returns False if the connection was dropped or the reply was not
        the normal kind (so the command took no effect)."""
        await self.stage_delay(stage)
        if await self.hostile(stage):
            return False
        r = self.faults.get(stage)
        if r is None:
            await self.push(normal)
            return True
        if r == DROP:
            self.drop("fault at %s" % stage)
            return False
        await self.push(r)
        return r[:1] == normal[:1] and r[:3] == normal[:3]

    def fault_reply(self, stage):
        r = self.faults.get(stage)
        return r if isinstance(r, str) else None

    def drop(self, why):
        self.log("--", "closing connection without reply (%s)" % why)
        self._dropped = True
        if self.transport is not None:
            self.transport.close()

    async def hostile(self, stage):
        """Plays a hostile fault set for STAGE (stall, endless, longline), then holds the
        connection until the client closes it.  Returns False if there is none."""
        stall = self.faults.get("stall:" + stage)
        endless = self.faults.get("endless:" + stage)
        longline = self.faults.get("longline:" + stage)
        if stall is None and endless is None and longline is None:
            return False
        if stall is not None:
            self.log("--", "fault stall at %s: a reply cut off in the middle of a line" % stage)
            self.log("S:", stall)
            self._writer.write(stall.encode())
            await self._writer.drain()
        elif longline is not None:
            longline = self.cfg.args.longline_size or longline
            self.log("--", "fault longline at %s: 250- and %d octets without a line end" %
                     (stage, longline))
            # In pieces, so that the line starts at once however long it is.
            self._writer.write(b"250-")
            left = longline
            try:
                while left > 0 and self.transport is not None and not self.transport.is_closing():
                    n = min(left, 65536)
                    self._writer.write(b"x" * n)
                    await self._writer.drain()
                    left -= n
            except (ConnectionError, OSError):
                pass
            if left:
                self.log("--", "fault longline at %s: the client closed with %d octets unsent" %
                         (stage, left))
        else:
            self.log("--", "fault endless at %s: '%s' again and again" % (stage, endless))
            batch = (endless + "\r\n").encode() * 64
            sent = 0
            try:
                while self.transport is not None and not self.transport.is_closing():
                    self._writer.write(batch)
                    await self._writer.drain()
                    sent += 64
                    await asyncio.sleep(0)
            except (ConnectionError, OSError):
                pass
            finally:
                # Also when the lost connection cancels this task.
                self.log("--", "fault endless at %s: %d lines sent before the client closed" %
                         (stage, sent))
        await self.hold()
        return True

    async def hold(self):
        """Answers nothing more; logs what the client sends until it closes."""
        self._dropped = True
        while self.transport is not None and not self.transport.is_closing():
            try:
                data = await self._reader.read(4096)
            except (ConnectionError, OSError):
                break
            if not data:
                break
            self.log("C:", data.decode("utf-8", "backslashreplace").rstrip("\r\n"))
        if self.transport is not None:
            self.transport.close()

    async def readline(self):
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as e:
            # Swallow the over-long line, then report it.
            await self._reader.readexactly(e.consumed)
            while True:
                try:
                    await self._reader.readuntil(b"\n")
                    break
                except asyncio.LimitOverrunError as e2:
                    await self._reader.readexactly(e2.consumed)
            return None
        return line

    # -- connection ----------------------------------------------------
    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.cfg.active += 1
            self._counted = True
            peer = transport.get_extra_info("peername")
            self.log("--", "connect from %s port %s" % (peer[0], peer[1]) if peer else "connect")
        else:
            self.tls_active = True
            obj = transport.get_extra_info("ssl_object")
            self.log("--", "TLS established: %s %s" % (obj.version(), obj.cipher()[0]) if obj else "TLS established")

    def connection_lost(self, error):
        if self._counted:
            self.cfg.active -= 1
            self._counted = False
        self.log("--", "connection closed" + (" (%s)" % error if error else ""))
        super().connection_lost(error)

    async def _handle_client(self):
        self._reader._limit = READER_LIMIT
        greeting = self.faults.get("connect")
        if greeting == SILENT:
            self.log("--", "fault silent: no greeting; holding the connection")
            while self.transport is not None:
                data = await self._reader.read(4096)
                if not data:
                    break
                self.log("C:", data.decode("utf-8", "backslashreplace").rstrip("\r\n"))
            return
        limit = self.cfg.args.max_connections
        if limit and self.cfg.active > limit:
            await self.push("421 4.3.2 Concurrent connections limit exceeded. "
                            "Visit https://aka.ms/concurrent_sending for more information.")
            self.transport.close()
            return
        await self.stage_delay("connect")
        if await self.hostile("connect"):
            return
        if greeting == DROP:
            self.drop("fault at connect")
            return
        if greeting:
            await self.push(greeting)
            if greeting.startswith("421"):
                self.transport.close()
                return
        else:
            await self.push("220 %s Microsoft ESMTP MAIL Service ready at %s" % (self.cfg.hostname, now_date()))
        bogus = 0
        while self.transport is not None and not self._dropped:
            try:
                line = await self.readline()
                if line is None:
                    self.log("C:", "<command line longer than %d octets>" % (READER_LIMIT))
                    await self.push("500 5.5.2 Command line too long")
                    continue
                if not line:
                    break
                text = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                self.log("C:", text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
                if len(line) > MAX_LINE:
                    await self.push("500 5.5.2 Command line too long")
                    continue
                self._reset_timeout()
                verb, _, arg = text.partition(" ")
                verb = verb.upper()
                method = getattr(self, "cmd_" + verb, None)
                if method is None:
                    bogus += 1
                    await self.push("500 5.3.3 Unrecognized command '%s'" % verb[:32])
                    if bogus >= 10:
                        await self.push("421 4.7.0 Too many errors on this connection, closing transmission channel")
                        self.transport.close()
                    continue
                await method(arg.strip())
            except asyncio.CancelledError:
                raise
            except (ConnectionError, asyncio.IncompleteReadError):
                break
            except Exception as e:  # keep the test server alive; report it
                self.log("--", "server error: %r" % (e,))
                print("o365_server: error: %r" % (e,), file=sys.stderr)
                try:
                    await self.push("451 4.3.0 Internal test server error")
                except Exception:
                    break
        if self.transport is not None:
            self.transport.close()

    # -- commands --------------------------------------------------------
    def ehlo_lines(self):
        lines = ["SIZE %d" % MAX_SIZE, "PIPELINING", "DSN", "ENHANCEDSTATUSCODES"]
        if self.advertise_starttls and not self.tls_active:
            lines.append("STARTTLS")
        if self.auth_offered():
            if "auth_lines" in self.faults:
                lines += self.faults["auth_lines"]
            else:
                lines.append("AUTH " + " ".join(self.mechanisms))
        lines += ["8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
        return lines

    def auth_offered(self):
        if self.cfg.args.no_auth or not self.mechanisms:
            return False
        return self.tls_active or not self.advertise_starttls

    def peer_ip(self):
        peer = self.session.peer if self.session else None
        return peer[0] if peer else "127.0.0.1"

    async def cmd_EHLO(self, arg):
        if not arg:
            await self.push("501 5.5.4 Invalid domain name")
            return
        await self.stage_delay("ehlo")
        if self.tls_active and await self.hostile("ehlo_tls"):
            return
        if await self.hostile("ehlo"):
            return
        r = self.fault_reply("ehlo_tls") if self.tls_active else None
        if r is None:
            r = self.fault_reply("ehlo")
        if r is not None:
            if r == DROP:
                self.drop("fault at ehlo")
            else:
                await self.push(r)
                if r.startswith("421"):
                    self.transport.close()
            return
        self.helo = arg
        self.session.extended_smtp = True
        self._reset_envelope()
        lines = ["%s Hello [%s]" % (self.cfg.hostname, self.peer_ip())] + self.ehlo_lines()
        out = ["250-" + l for l in lines[:-1]] + ["250 " + lines[-1]]
        await self.push("\r\n".join(out))

    async def cmd_HELO(self, arg):
        if not arg:
            await self.push("501 5.5.4 Invalid domain name")
            return
        self.helo = arg
        self._reset_envelope()
        await self.push("250 %s Hello [%s]" % (self.cfg.hostname, self.peer_ip()))

    async def cmd_STARTTLS(self, arg):
        if not self.advertise_starttls or self.tls_active:
            await self.push("500 5.3.3 Unrecognized command 'STARTTLS'" if not self.advertise_starttls
                            else "503 5.5.2 Already in TLS mode")
            return
        if arg:
            await self.push("501 5.5.4 Syntax error")
            return
        await self.stage_delay("starttls")
        r = self.fault_reply("starttls")
        if r is not None:
            if r == DROP:
                self.drop("fault at starttls")
            else:
                await self.push(r)
            return
        inject = self.faults.get("starttls_inject")
        if inject:
            self.log("--", "fault starttls-inject: extra lines in the same write as the 220")
            self.log("S:", "220 2.0.0 SMTP server ready")
            self.log("S:", inject.rstrip("\r\n"))
            self._writer.write(b"220 2.0.0 SMTP server ready\r\n" + inject.encode())
            await self._writer.drain()
        else:
            await self.push("220 2.0.0 SMTP server ready")
        # The upgrade, as aiosmtpd's own smtp_STARTTLS does it.
        import asyncio.sslproto as sslproto
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(self.loop, self, self.tls_context, waiter,
                                                  server_side=True)
        self._original_transport = self.transport
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await asyncio.wait_for(waiter, 30)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.log("--", "TLS handshake failed: %s" % (e,))
            self._dropped = True
            self._original_transport.close()
            return
        # RFC 3207: forget everything learnt before TLS.
        self.helo = None
        self.authenticated = False
        self._reset_envelope()

    async def cmd_AUTH(self, arg):
        if self.helo is None:
            await self.push("503 5.5.2 Send hello first")
            return
        if self.authenticated:
            await self.push("503 5.5.2 Already authenticated")
            return
        if not self.auth_offered():
            await self.push("504 5.7.4 Unrecognized authentication type")
            return
        if self.mail_from is not None:
            await self.push("503 5.5.2 Bad sequence of commands")
            return
        parts = arg.split()
        if not parts:
            await self.push("501 5.5.4 Invalid arguments")
            return
        mech = parts[0].upper()
        initial = parts[1] if len(parts) > 1 else None
        if mech not in self.mechanisms:
            await self.push("504 5.7.4 Unrecognized authentication type")
            return
        creds = await getattr(self, "auth_" + mech.replace("-", "_"), self.auth_unknown)(initial)
        if creds is None:          # aborted or malformed; reply already sent
            return
        user, good = creds
        await self.stage_delay("auth")
        r = self.faults.get("auth")
        if r == DROP:
            self.drop("fault at auth")
            return
        if r is not None:
            await self.push(r)
            return
        if good:
            self.authenticated = True
            self.auth_user = user
            self.log("--", "authenticated as %s with %s" % (user, mech))
            await self.push("235 2.7.0 Authentication successful")
        else:
            await self.push("535 5.7.3 Authentication unsuccessful [%s]" % self.cfg.backend)

    async def auth_unknown(self, initial):
        await self.push("504 5.7.4 Unrecognized authentication type")
        return None

    async def challenge(self, text):
        """334 challenge; returns the decoded answer, or None (reply sent)."""
        await self.push("334 " + base64.b64encode(text.encode()).decode() if text else "334 ")
        line = await self.readline()
        if line is None:
            await self.push("500 5.5.2 Line too long")
            return None
        if not line:
            raise ConnectionResetError("EOF during AUTH")
        answer = line.rstrip(b"\r\n")
        self.log("C:", answer.decode("ascii", "backslashreplace"))
        return await self.decode(answer)

    async def decode(self, b64):
        if b64 == b"*" or b64 == "*":
            await self.push("501 5.7.0 Authentication cancelled")
            return None
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            await self.push("501 5.5.2 Cannot Decode response")
            return None

    def check(self, user, password):
        a = self.cfg.args
        return a.user is not None and user == a.user and password == a.password

    async def auth_LOGIN(self, initial):
        if initial is not None:
            user = await self.decode(initial)
        else:
            user = await self.challenge("Username:")
        if user is None:
            return None
        password = await self.challenge("Password:")
        if password is None:
            return None
        u = user.decode("utf-8", "replace")
        return u, self.check(u, password.decode("utf-8", "replace"))

    async def auth_PLAIN(self, initial):
        if initial is not None and initial != "=":
            blob = await self.decode(initial)
        else:
            blob = await self.challenge("")
        if blob is None:
            return None
        parts = blob.split(b"\0")
        if len(parts) != 3:
            await self.push("501 5.5.2 Cannot Decode response")
            return None
        u = parts[1].decode("utf-8", "replace")
        return u, self.check(u, parts[2].decode("utf-8", "replace"))

    async def auth_XOAUTH2(self, initial):
        if initial is not None:
            blob = await self.decode(initial)
        else:
            blob = await self.challenge("")
        if blob is None:
            return None
        # user=<mailbox>\x01auth=Bearer <token>\x01\x01
        fields = {}
        for part in blob.split(b"\x01"):
            k, _, v = part.partition(b"=")
            if k:
                fields[k.decode("ascii", "replace")] = v.decode("utf-8", "replace")
        u = fields.get("user", "")
        auth = fields.get("auth", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        a = self.cfg.args
        if a.token_file is not None:
            return u, a.user is not None and u == a.user and token is not None and \
                self.token_current(token)
        expected = a.token if a.token is not None else a.password
        good = a.user is not None and u == a.user and token is not None and token == expected
        return u, good

    def token_current(self, token):
        """Whether TOKEN is in --token-file ("TOKEN EXPIRY" lines) and not expired."""
        try:
            with open(self.cfg.args.token_file) as f:
                lines = f.read().split("\n")
        except OSError:
            return False
        now = time.time()
        for line in lines:
            t, _, exp = line.partition(" ")
            if t == token:
                if exp.strip() and float(exp) <= now:
                    self.log("--", "token expired %.1f s ago" % (now - float(exp)))
                    return False
                return True
        self.log("--", "token unknown or revoked")
        return False

    def need_auth_or_tls(self):
        """Reply for MAIL/RCPT/DATA when the session may not send yet."""
        if self.helo is None:
            return "503 5.5.2 Send hello first"
        if self.advertise_starttls and not self.tls_active and not self.cfg.args.tls_optional:
            return "451 5.7.3 STARTTLS is required to send mail"
        if not self.cfg.args.no_auth and not self.authenticated:
            return "530 5.7.57 Client not authenticated to send mail"
        return None

    @staticmethod
    def parse_path(arg, keyword):
        if not arg[:len(keyword)].upper() == keyword:
            return None, None
        rest = arg[len(keyword):].strip()
        if not rest.startswith("<"):
            addr, _, params = rest.partition(" ")
            return addr, params.split()
        end = rest.find(">")
        if end < 0:
            return None, None
        return rest[1:end], rest[end + 1:].split()

    async def cmd_MAIL(self, arg):
        err = self.need_auth_or_tls()
        if err:
            await self.push(err)
            return
        if self.mail_from is not None:
            await self.push("503 5.5.2 Sender already specified")
            return
        addr, params = self.parse_path(arg, "FROM:")
        if addr is None:
            await self.push("501 5.5.4 Invalid arguments")
            return
        for p in params:
            k, _, v = p.partition("=")
            if k.upper() == "SIZE" and v.isdigit() and int(v) > MAX_SIZE:
                await self.push("552 5.3.4 Message size exceeds fixed maximum message size")
                return
        a = self.cfg.args
        if a.enforce_sender and self.auth_user is not None and addr.lower() != self.auth_user.lower():
            await self.push("550 5.7.60 SMTP; Client does not have permissions to send as this sender")
            return
        if await self.reply("mail", "250 2.1.0 Sender OK"):
            self.mail_from = addr
            self.mail_options = params

    async def cmd_RCPT(self, arg):
        err = self.need_auth_or_tls()
        if err:
            await self.push(err)
            return
        if self.mail_from is None:
            await self.push("503 5.5.2 Need mail command")
            return
        addr, params = self.parse_path(arg, "TO:")
        if not addr:
            await self.push("501 5.5.4 Invalid arguments")
            return
        if await self.reply("rcpt", "250 2.1.5 Recipient OK"):
            self.rcpts.append(addr)

    async def cmd_DATA(self, arg):
        err = self.need_auth_or_tls()
        if err:
            await self.push(err)
            return
        if self.mail_from is None:
            await self.push("503 5.5.2 Need mail command")
            return
        if not self.rcpts:
            await self.push("503 5.5.2 Need rcpt command")
            return
        if not await self.reply("data", "354 Start mail input; end with <CRLF>.<CRLF>"):
            return
        chunks = []
        size = 0
        too_long = False
        while True:
            line = await self.readline()
            if line is None:
                too_long = True
                continue
            if not line:
                raise ConnectionResetError("EOF during DATA")
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size <= MAX_SIZE:
                chunks.append(line)
        content = b"".join(chunks)
        self.log("C:", "<message content: %d octets, %d lines>" % (size, len(chunks)))
        self.log("C:", ".")
        if too_long:
            await self.push("500 5.5.2 Line too long")
            self._reset_envelope()
            return
        if size > MAX_SIZE:
            await self.push("552 5.3.4 Message size exceeds fixed maximum message size")
            self._reset_envelope()
            return
        await self.finish_message(content, "DATA")

    async def cmd_BDAT(self, arg):
        parts = arg.split()
        if not parts or not parts[0].isdigit() or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() != "LAST"):
            await self.push("501 5.5.4 Invalid arguments")
            return
        n = int(parts[0])
        last = len(parts) == 2
        chunk = await self._reader.readexactly(n) if n else b""
        self.log("C:", "<BDAT chunk: %d octets>" % n)
        err = self.need_auth_or_tls()
        if err is None and self.mail_from is None:
            err = "503 5.5.2 Need mail command"
        if err is None and not self.rcpts:
            err = "503 5.5.2 Need rcpt command"
        if err:
            await self.push(err)
            self._reset_envelope()
            return
        self.bdat_chunks.append(chunk)
        if not last:
            await self.push("250 2.0.0 BDAT %d octets received" % n)
            return
        await self.finish_message(b"".join(self.bdat_chunks), "BDAT")

    async def finish_message(self, content, how):
        await self.stage_delay("data_end")
        if await self.hostile("data_end"):
            self.log("--", "message not saved")
            return
        r = self.faults.get("data_end")
        if r == DROP:
            self.log("--", "fault drop-after-data: message not saved")
            self.drop("fault at data_end")
            return
        if r is not None:
            await self.push(r)
            self._reset_envelope()
            return
        name = self.save(content)
        self.log("--", "message saved as %s" % name)
        mid = "<%s@%s>" % (uuid.uuid4().hex.upper(), self.cfg.backend)
        await self.push("250 2.0.0 OK %s [Hostname=%s]" % (mid, self.cfg.backend))
        self._reset_envelope()

    def save(self, content):
        self.cfg.messages += 1
        d = self.cfg.args.maildir
        name = "%.6f.P%dM%d.o365" % (time.time(), os.getpid(), self.cfg.messages)
        if not d:
            return name + " (no --maildir)"
        tmp = os.path.join(d, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(content)
        with open(os.path.join(d, "envelope", name), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write("mail_from: %s\n" % self.mail_from)
            f.write("mail_options: %s\n" % " ".join(self.mail_options))
            for r in self.rcpts:
                f.write("rcpt_to: %s\n" % r)
            f.write("auth_user: %s\n" % (self.auth_user or ""))
            f.write("tls: %s\n" % ("yes" if self.tls_active else "no"))
            f.write("helo: %s\n" % self.helo)
        os.rename(tmp, os.path.join(d, "new", name))
        return name

    async def cmd_RSET(self, arg):
        self._reset_envelope()
        await self.reply("rset", "250 2.0.0 Resetting")

    async def cmd_NOOP(self, arg):
        await self.push("250 2.0.0 OK")

    async def cmd_VRFY(self, arg):
        await self.push("252 2.1.5 Cannot VRFY user")

    async def cmd_HELP(self, arg):
        await self.push("214-This server supports the following commands:\r\n"
                        "214 HELO EHLO STARTTLS RCPT DATA RSET MAIL QUIT HELP AUTH BDAT")

    async def cmd_QUIT(self, arg):
        if await self.reply("quit", "221 2.0.0 Service closing transmission channel"):
            pass
        if self.transport is not None:
            self.transport.close()


def loopback_only(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="faults: " + ", ".join(sorted(FAULTS)) + "; stages: " + ", ".join(STAGES))
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.1, ::1)")
    p.add_argument("--port", type=int, default=587, help="port (0: any free port; see --portfile)")
    p.add_argument("--cert", help="server certificate (PEM; may hold the chain) for STARTTLS")
    p.add_argument("--key", help="private key for --cert")
    p.add_argument("--no-tls", action="store_true", help="plain SMTP: no STARTTLS; AUTH offered in clear")
    p.add_argument("--tls-min", choices=["1.0", "1.1", "1.2", "1.3"],
                   help="lowest TLS version (default 1.2; 1.0 with a --tls-max below 1.2); "
                   "--tls-min 1.1 --tls-max 1.1 speaks TLS 1.1 only")
    p.add_argument("--tls-max", choices=["1.0", "1.1", "1.2", "1.3"],
                   help="highest TLS version (below 1.2 lowers OpenSSL's security level)")
    p.add_argument("--client-ca", metavar="FILE",
                   help="require a client certificate signed by a CA in FILE (TLS handshake)")
    p.add_argument("--user", help="the one mailbox that may authenticate")
    p.add_argument("--password", help="its password (LOGIN, PLAIN)")
    p.add_argument("--token", help="its XOAUTH2 bearer token (default: --password)")
    p.add_argument("--token-file", help='XOAUTH2: accept the tokens listed in this file, one '
                   '"TOKEN EXPIRY-UNIX-TIME" per line, read at each AUTH, until they expire')
    p.add_argument("--no-auth", action="store_true", help="accept mail without AUTH and offer no AUTH")
    p.add_argument("--tls-optional", action="store_true",
                   help="offer STARTTLS but also accept mail without it (like a relay)")
    p.add_argument("--auth-mechanisms", help='mechanisms advertised and accepted (default "LOGIN XOAUTH2" '
                   'after TLS; "LOGIN PLAIN" in clear); "" for none')
    p.add_argument("--enforce-sender", action="store_true",
                   help="MAIL FROM must be the authenticated user (else 550 5.7.60)")
    p.add_argument("--hostname", default="AM0PR01CA0123.outlook.office365.com", help="name in greeting and EHLO")
    p.add_argument("--maildir", help="save accepted messages here (Maildir: tmp/ new/ cur/, plus envelope/)")
    p.add_argument("--log", help="append a transcript of the session(s) here")
    p.add_argument("--pidfile", help="write the PID here once listening")
    p.add_argument("--portfile", help="write the port here once listening")
    p.add_argument("--fault", action="append", choices=sorted(FAULTS) + ["closed"], metavar="NAME",
                   help="inject a fault (repeatable): " + ", ".join(sorted(FAULTS)) +
                   "; 'closed' is lib.sh's closed_port (this server exits at once)")
    p.add_argument("--reply", action="append", metavar="STAGE=TEXT",
                   help="replace the reply at STAGE (%s) with TEXT; TEXT DROP closes the connection"
                   % ", ".join(STAGES))
    p.add_argument("--delay", action="append", metavar="STAGE=SECONDS",
                   help="wait before the reply at STAGE (the connection stays open)")
    p.add_argument("--longline-size", type=int, metavar="OCTETS",
                   help="the length of the line the longline-* faults send (default 1 MiB)")
    p.add_argument("--list-faults", action="store_true",
                   help="print every fault with its help line, and exit")
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="greet connection N+1 and beyond with 421 4.3.2 Concurrent connections limit exceeded")
    p.add_argument("--fault-times", type=int, metavar="N",
                   help="apply faults to the first N connections only, then behave normally")
    p.add_argument("--idle-timeout", type=float, default=60, help="close idle connections after this (s)")
    p.add_argument("--max-lifetime", type=float, default=600, help="exit after this many seconds")
    args = p.parse_args(argv)
    if not loopback_only(args.host):
        p.error("--host must be a loopback address")
    for spec in args.reply or []:
        stage, eq, _ = spec.partition("=")
        if not eq or stage not in STAGES:
            p.error("--reply wants STAGE=TEXT with STAGE one of " + ", ".join(STAGES))
    for spec in args.delay or []:
        stage, eq, secs = spec.partition("=")
        try:
            float(secs)
        except ValueError:
            eq = ""
        if not eq or stage not in STAGES:
            p.error("--delay wants STAGE=SECONDS with STAGE one of " + ", ".join(STAGES))
    if args.cert and not args.key:
        args.key = args.cert
    if not args.cert and not args.no_tls:
        p.error("--cert/--key are needed (or --no-tls)")
    return args


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


async def serve(args):
    cfg = Config(args)
    if args.maildir:
        for sub in ("tmp", "new", "cur", "envelope"):
            os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    server = await loop.create_server(lambda: O365SMTP(cfg), host=args.host, port=args.port,
                                      family=family, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print("listening on %s port %d pid %d" % (args.host, port, os.getpid()), file=sys.stderr, flush=True)
    cfg.transcript.write(0, "--", "listening on %s port %d faults=%s" %
                         (args.host, port, ",".join(args.fault or []) or "none"))
    if args.pidfile:
        write_atomic(args.pidfile, "%d\n" % os.getpid())
    if args.portfile:
        write_atomic(args.portfile, "%d\n" % port)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(s.name))
    try:
        why = await asyncio.wait_for(stop, args.max_lifetime)
    except asyncio.TimeoutError:
        why = "max-lifetime"
    cfg.transcript.write(0, "--", "stopping (%s)" % why)
    server.close()
    for t in asyncio.all_tasks():
        if t is not asyncio.current_task():
            t.cancel()
    return 0


def main(argv):
    if "--list-faults" in argv:
        for name in sorted(FAULTS):
            print("%-18s %s" % (name, FAULT_HELP[name]))
        return 0
    args = parse_args(argv)
    if args.fault and "closed" in args.fault:
        # Nobody listens: lib.sh's closed_port is the way to get such a port.
        return 0
    try:
        return asyncio.run(serve(args))
    except OSError as e:
        print("o365_server: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

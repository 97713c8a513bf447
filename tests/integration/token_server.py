#!/usr/bin/python3
"""A token endpoint like Microsoft Entra ID's, for alertmail's OAuth2 tests.

It answers POST /<tenant>/oauth2/v2.0/token with the client-credentials grant
over HTTPS on loopback, as login.microsoftonline.com does: a JSON reply with
access_token, token_type and expires_in; or, for a bad request, an HTTP 400/401
with error, error_description (several lines, with trace and correlation ids),
error_codes, timestamp.

Tokens are long (like Entra's, over 1,500 characters).  Each one issued is
appended to --tokens FILE as "TOKEN EXPIRY" (Unix time); the scripted Office 365
server (o365_server.py --token-file FILE) accepts exactly the tokens in that file
that have not expired.  Emptying the file revokes every token.

The secret expected is read from --secret-file at each request, so a test can
change it.  --fault NAME makes every request fail:
  down      HTTP 503 with an HTML page (no JSON)
  slow      wait --slow-seconds before answering (normally)
  garbage   HTTP 200 with a body that is not JSON
  no-token  HTTP 200 with JSON that has no access_token
  bad-token HTTP 200 with an access_token holding a line break
  no-consent  tokens are issued but not listed in --tokens (as Entra ID issues a token
            without the SMTP.SendAsApp role when admin consent is missing: the mail
            server then refuses it with 535 5.7.3)

It listens on loopback only, exits by itself after --max-lifetime seconds, and
writes --log (one line per request: time, client id, scope, outcome; never the
secret), --pidfile and --portfile once it listens.
"""

import argparse
import datetime
import http.server
import ipaddress
import json
import os
import secrets
import signal
import ssl
import sys
import threading
import time
import urllib.parse
import uuid


def entra_error(status, error, code, text):
    now = datetime.datetime.now(datetime.timezone.utc)
    trace, corr = uuid.uuid4(), uuid.uuid4()
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    return status, {
        "error": error,
        "error_description": "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
        % (code, text, trace, corr, stamp),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": str(trace),
        "correlation_id": str(corr),
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "token-endpoint"

    def log_message(self, fmt, *args):  # quiet: the --log file says what matters
        pass

    def note(self, text):
        a = self.server.args
        if a.log:
            with open(a.log, "a") as f:
                f.write("%s %s\n" % (datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3], text))

    def send(self, status, body, ctype="application/json; charset=utf-8"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store, no-cache")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send(*entra_error(405, "invalid_request", 900561,
                               "The endpoint only accepts POST requests."))

    def do_POST(self):
        a = self.server.args
        n = int(self.headers.get("Content-Length") or 0)
        if n > 65536:
            self.send(413, b"too large", "text/plain")
            return
        form = urllib.parse.parse_qs(self.rfile.read(n).decode("utf-8", "replace"))
        field = lambda k: (form.get(k) or [""])[0]
        client_id, scope = field("client_id"), field("scope")
        ctype = self.headers.get("Content-Type", "")
        fault = a.fault
        if fault == "slow":
            time.sleep(a.slow_seconds)
        status, body = self.answer(form, field, ctype, fault)
        what = body.get("error", "token") if isinstance(body, dict) else "html"
        self.note("POST %s client_id=%s scope=%s -> %d %s" % (self.path, client_id, scope, status, what))
        if isinstance(body, dict):
            self.send(status, body)
        else:
            self.send(status, body, "text/html")

    def answer(self, form, field, ctype, fault):
        a = self.server.args
        if fault == "down":
            return 503, b"<html><body><h1>Service Unavailable</h1></body></html>"
        if fault == "garbage":
            return 200, b"<html>not json</html>"
        want_path = "/%s/oauth2/v2.0/token" % a.tenant
        if self.path != want_path:
            tenant = self.path.strip("/").split("/")[0]
            return entra_error(400, "invalid_request", 90002,
                               "Tenant '%s' not found. Check to make sure you have the correct "
                               "tenant ID and are signing into the correct cloud." % tenant)
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return entra_error(400, "invalid_request", 900144,
                               "The request body must contain the following parameter: 'grant_type'.")
        if field("grant_type") != "client_credentials":
            return entra_error(400, "unsupported_grant_type", 70003,
                               "The app requested an unsupported grant type.")
        if field("client_id") != a.client_id:
            return entra_error(400, "unauthorized_client", 700016,
                               "Application with identifier '%s' was not found in the directory "
                               "'%s'." % (field("client_id"), a.tenant))
        with open(a.secret_file) as f:
            want = f.read().rstrip("\n")
        if field("client_secret") != want:
            return entra_error(401, "invalid_client", 7000215,
                               "Invalid client secret provided. Ensure the secret being sent in "
                               "the request is the client secret value, not the client secret ID.")
        if field("scope") != a.scope:
            return entra_error(400, "invalid_scope", 1002012,
                               "The provided value for scope %s is not valid." % field("scope"))
        if fault == "no-token":
            return 200, {"token_type": "Bearer", "expires_in": 3599}
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(1400) + "." + \
            secrets.token_urlsafe(200)
        if fault == "bad-token":
            token = token[:100] + "\r\nX" + token[100:]
        if fault == "no-consent":
            self.server.issued += 1
            return 200, {"token_type": "Bearer", "expires_in": a.expires_in, "access_token": token}
        with self.server.lock:
            with open(a.tokens, "a") as f:
                f.write("%s %d\n" % (token, int(time.time() + a.expires_in)))
        self.server.issued += 1
        return 200, {"token_type": "Bearer", "expires_in": a.expires_in,
                     "ext_expires_in": a.expires_in, "access_token": token}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--tenant", default="contoso.example")
    p.add_argument("--client-id", required=True)
    p.add_argument("--secret-file", required=True)
    p.add_argument("--scope", default="https://outlook.office365.com/.default")
    p.add_argument("--expires-in", type=int, default=3599)
    p.add_argument("--tokens", required=True, help="append each issued token here")
    p.add_argument("--fault", choices=["down", "slow", "garbage", "no-token", "bad-token", "no-consent"])
    p.add_argument("--slow-seconds", type=float, default=30)
    p.add_argument("--log")
    p.add_argument("--pidfile")
    p.add_argument("--portfile")
    p.add_argument("--max-lifetime", type=float, default=600)
    a = p.parse_args()
    if not ipaddress.ip_address(a.host).is_loopback:
        sys.exit("token_server: loopback addresses only")
    srv = Server((a.host, a.port), Handler)
    srv.args, srv.lock, srv.issued = a, threading.Lock(), 0
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
    signal.alarm(max(1, int(a.max_lifetime)))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    if a.portfile:
        with open(a.portfile + ".tmp", "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(a.portfile + ".tmp", a.portfile)
    srv.serve_forever()


if __name__ == "__main__":
    main()

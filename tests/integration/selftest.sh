#!/bin/bash
# tests/integration/selftest.sh -- checks the integration-test infrastructure
# itself (lib.sh, o365_server.py, the private Postfix instances, the test PKI)
# without alertmail: swaks and a small Python SMTP probe play the client.
# Prints TAP.  Needs root (Postfix) and the Debian packages postfix,
# python3-aiosmtpd, sasl2-bin, libsasl2-modules, libsasl2-modules-db, openssl,
# swaks, libnet-ssleay-perl (swaks' TLS), iproute2 (ss).
. "$(dirname "$0")/lib.sh"

require_cmd openssl swaks saslpasswd2
require_aiosmtpd
require_postfix

_start_ms=$(_am_now_ms)
CA=$(test_ca) || bail_out "make_ca failed"
USER_O365=alerts@contoso.example
PASS_O365='Correct-Horse-9'
USER_PF=relayuser@example.com
PASS_PF='Sub-Pass-42'

# ---------------------------------------------------------------------------
# probe PORT [--ca FILE] [--name HOST] [--connect ADDR] [--greeting-timeout S]
#       [--tls-legacy] [--timeout S] STEP...
# A scripted SMTP client.  Prints every reply line as "<<< line", every
# command as ">>> line" and events as "!!! ...".  Steps:
#   ehlo | starttls | auth-login:U:P | auth-plain:U:P | xoauth2:U:TOKEN
#   xoauth2-334:U:TOKEN | data:TEXT (DATA + TEXT + ".") | bdat:TEXT (one
#   BDAT LAST chunk) | expect-close
#   anything else: sent as a command line
# ---------------------------------------------------------------------------
cat >"$T/probe.py" <<'PY'
import base64, socket, ssl, sys

args = sys.argv[1:]
port = int(args.pop(0))
ca = None; name = "localhost"; gto = 5.0; host = "127.0.0.1"; legacy = False; rto = 5.0
while args and args[0].startswith("--"):
    opt = args.pop(0)
    if opt == "--ca": ca = args.pop(0)
    elif opt == "--name": name = args.pop(0)
    elif opt == "--greeting-timeout": gto = float(args.pop(0))
    elif opt == "--connect": host = args.pop(0)
    elif opt == "--tls-legacy": legacy = True
    elif opt == "--timeout": rto = float(args.pop(0))
sock = socket.create_connection((host, port), timeout=5)
buf = b""

def out(s):
    print(s, flush=True)

def read_reply(timeout=None):
    global buf
    sock.settimeout(timeout or rto)
    lines = []
    while True:
        while b"\n" not in buf:
            try:
                d = sock.recv(65536)
            except socket.timeout:
                out("!!! timeout"); return None
            except (ConnectionError, ssl.SSLError) as e:
                out("!!! closed (%s)" % e); return None
            if not d:
                out("!!! closed"); return None
            buf += d
        line, buf = buf.split(b"\n", 1)
        line = line.rstrip(b"\r").decode("utf-8", "replace")
        out("<<< " + line); lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines

def send(line, show=None):
    out(">>> " + (show or line))
    sock.sendall(line.encode() + b"\r\n")

def code(lines):
    return lines[-1][:3] if lines else None

def b64(s):
    return base64.b64encode(s.encode()).decode()

if read_reply(gto) is None:
    sys.exit(0)
for step in args:
    kind, _, rest = step.partition(":")
    if step == "ehlo":
        send("EHLO probe.example"); r = read_reply()
    elif step == "starttls":
        send("STARTTLS"); r = read_reply()
        if code(r) != "220":
            continue
        if buf:
            out("!!! extra data after 220: %r" % buf); buf = b""
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if legacy:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        try:
            sock = ctx.wrap_socket(sock, server_hostname=name)
            out("!!! TLS %s" % sock.version())
        except (ssl.SSLError, OSError) as e:
            out("!!! TLS error: %s" % e); break
    elif kind == "auth-login":
        u, p = rest.split(":", 1)
        send("AUTH LOGIN"); r = read_reply()
        if code(r) == "334":
            send(b64(u)); r = read_reply()
        if code(r) == "334":
            send(b64(p)); r = read_reply()
    elif kind == "auth-plain":
        u, p = rest.split(":", 1)
        send("AUTH PLAIN " + b64("\0%s\0%s" % (u, p))); r = read_reply()
    elif kind in ("xoauth2", "xoauth2-334"):
        u, tok = rest.split(":", 1)
        ir = b64("user=%s\x01auth=Bearer %s\x01\x01" % (u, tok))
        if kind == "xoauth2":
            send("AUTH XOAUTH2 " + ir, "AUTH XOAUTH2 <%d octets>" % len(ir)); r = read_reply()
        else:
            send("AUTH XOAUTH2"); r = read_reply()
            if code(r) == "334":
                send(ir, "<%d octets>" % len(ir)); r = read_reply()
    elif kind == "data":
        send("DATA"); r = read_reply()
        if code(r) == "354":
            body = rest.replace("\\n", "\r\n")
            out(">>> <%d octets>" % len(body))
            sock.sendall(body.encode() + b"\r\n.\r\n"); r = read_reply()
    elif kind == "bdat":
        body = rest.replace("\\n", "\r\n").encode()
        out(">>> BDAT %d LAST + <%d octets>" % (len(body), len(body)))
        sock.sendall(b"BDAT %d LAST\r\n" % len(body) + body); r = read_reply()
    elif step == "expect-close":
        r = read_reply()
        if r is not None:
            out("!!! still open")
    else:
        send(step); r = read_reply()
    if r is None:
        break
sock.close()
PY
probe() {
    "$ALERTMAIL_PYTHON" "$T/probe.py" "$@" 2>&1
}
# after OUT PREFIX -- the probe output that follows the first command
# starting with PREFIX, up to the next command.
after() {
    printf '%s\n' "$1" | awk -v p=">>> $2" 'f && /^>>> /{ exit } f { print } !f && index($0, p) == 1 { f = 1 }'
}

# ===========================================================================
# Test PKI
# ===========================================================================
check "make_ca: localhost cert chains to the test CA" \
    openssl verify -CAfile "$CA/ca.pem" "$CA/localhost.crt"
check "make_ca: localhost cert valid for DNS:localhost" \
    openssl verify -CAfile "$CA/ca.pem" -verify_hostname localhost "$CA/localhost.crt"
check "make_ca: localhost cert valid for IP 127.0.0.1" \
    openssl verify -CAfile "$CA/ca.pem" -verify_ip 127.0.0.1 "$CA/localhost.crt"
check "make_ca: localhost cert valid for IP ::1" \
    openssl verify -CAfile "$CA/ca.pem" -verify_ip ::1 "$CA/localhost.crt"
check "make_ca: wrong-name cert chains to the CA" \
    openssl verify -CAfile "$CA/ca.pem" "$CA/wrongname.crt"
check_fails "make_ca: wrong-name cert is not valid for localhost" \
    openssl verify -CAfile "$CA/ca.pem" -verify_hostname localhost "$CA/wrongname.crt"
out=$(openssl x509 -in "$CA/wrongname.crt" -noout -ext subjectAltName 2>&1)
like "$out" "DNS:wrong\.example" "make_ca: wrong-name cert SAN is wrong.example"
unlike "$out" "localhost|127\.0\.0\.1" "make_ca: wrong-name cert SAN lacks localhost"
out=$(openssl verify -CAfile "$CA/ca.pem" "$CA/untrusted.crt" 2>&1)
like "$out" "self-signed certificate|unable to get local issuer" "make_ca: untrusted cert does not chain to the CA"
check "make_ca: untrusted cert has the localhost names" \
    openssl verify -CAfile "$CA/untrusted.crt" -verify_hostname localhost "$CA/untrusted.crt"
out=$(openssl verify -CAfile "$CA/ca.pem" "$CA/expired.crt" 2>&1)
like "$out" "certificate has expired" "make_ca: expired cert is expired"
check "make_ca: expired cert is otherwise good (CA, localhost)" \
    openssl verify -CAfile "$CA/ca.pem" -no_check_time -verify_hostname localhost "$CA/expired.crt"
check_fails "make_ca: expired cert's notAfter is in the past" \
    openssl x509 -in "$CA/expired.crt" -noout -checkend 0
check "make_ca: keys are EC P-256" \
    bash -c "openssl pkey -in '$CA/localhost.key' -noout -text | grep -q 'prime256v1\|P-256'"

# ===========================================================================
# Ports
# ===========================================================================
cport=$(closed_port)
s=$(_am_now_ms)
wait_port 127.0.0.1 "$cport" 1 2>/dev/null
rc=$?
el=$(( $(_am_now_ms) - s ))
ok $(( rc == 1 && el < 2000 ? 0 : 1 )) "wait_port on a closed port gives up within its bound (${el} ms)"
out=$(probe "$cport")
like "$out" "!!! closed|Connection refused" "closed_port refuses connections"
p1=$(free_port); p2=$(free_port)
ok $(( p1 != p2 ? 0 : 1 )) "free_port never hands out the same port twice ($p1, $p2)"

# ===========================================================================
# Postfix anonymous relay
# ===========================================================================
s=$(_am_now_ms)
RELAY_PORT=$(start_postfix_relay relay)
ok $? "start_postfix_relay starts (port ${RELAY_PORT:-none}, $(( $(_am_now_ms) - s )) ms)" ||
    { diag_file "$T/relay/postfix.log"; bail_out "no relay"; }
RELAY_MD=$(postfix_maildir relay)
out=$(probe "$RELAY_PORT" ehlo QUIT)
like "$out" "^<<< 220 relay\.test\.invalid ESMTP" "relay: greets"
unlike "$out" "250[- ]AUTH|250[- ]STARTTLS" "relay: offers neither AUTH nor STARTTLS"
check "relay: swaks sends anonymously to a remote domain" \
    swaks --server 127.0.0.1 --port "$RELAY_PORT" --helo client.example \
    --from alerts@example.org --to oncall@remote.example --h-Subject "relay one" --body "first body" \
    --timeout 10
check "relay: message arrives in the Maildir" wait_maildir "$RELAY_MD" 1 10
f=$(maildir_files "$RELAY_MD" | head -n 1)
file_has "$f" "^Subject: relay one" "relay: delivered message has its Subject"
file_has "$f" "^Delivered-To: oncall@remote\.example" "relay: delivered to the envelope recipient"
out=$(probe "$RELAY_PORT" ehlo "MAIL FROM:<a@example.org>" "RCPT TO:<x@one.example>" \
    "RCPT TO:<y@two.example>" "data:Subject: two rcpts\n\nbody" QUIT)
like "$out" "<<< 250 2\.0\.0 Ok: queued" "relay: python client sends to two domains"
check "relay: both recipients delivered (3 messages)" wait_maildir "$RELAY_MD" 3 10
if has_ipv6_loopback; then
    check "relay: listens on ::1 too" wait_port ::1 "$RELAY_PORT" 2
else
    skip "relay: listens on ::1 too" "no IPv6 loopback"
fi

# ===========================================================================
# Postfix submission (runs alongside the relay)
# ===========================================================================
s=$(_am_now_ms)
SUB_PORT=$(start_postfix_submission "$USER_PF" "$PASS_PF" submission)
ok $? "start_postfix_submission starts (port ${SUB_PORT:-none}, $(( $(_am_now_ms) - s )) ms)" ||
    { diag_file "$T/submission/postfix.log"; bail_out "no submission server"; }
SUB_MD=$(postfix_maildir submission)
rp=$(server_pid relay); sp=$(server_pid submission)
ok $(( rp != sp ? 0 : 1 )) "relay and submission masters run at the same time (PIDs $rp, $sp)"
pid_alive "$rp" && pid_alive "$sp"
ok $? "both masters alive"
out=$(probe "$SUB_PORT" ehlo "AUTH PLAIN $(printf '\0%s\0%s' "$USER_PF" "$PASS_PF" | base64 -w0)" \
    "MAIL FROM:<$USER_PF>" QUIT)
like "$out" "<<< 250-STARTTLS" "submission: STARTTLS offered before TLS"
unlike "$out" "<<< 250[- ]AUTH" "submission: AUTH not offered before TLS"
like "$(after "$out" 'AUTH PLAIN')" "^<<< 5[0-9][0-9] " "submission: AUTH refused before TLS"
like "$(after "$out" 'MAIL FROM')" "^<<< 530 5\.7\.0 Must issue a STARTTLS command first" "submission: MAIL refused before TLS"
out=$(probe "$SUB_PORT" --ca "$CA/ca.pem" ehlo starttls ehlo "MAIL FROM:<$USER_PF>" \
    "RCPT TO:<someone@remote.example>" QUIT)
like "$out" "!!! TLS TLSv1\.[23]" "submission: STARTTLS with the test CA's localhost cert"
like "$out" "<<< 250-AUTH (PLAIN LOGIN|LOGIN PLAIN)$" "submission: AUTH PLAIN LOGIN offered after TLS"
like "$(after "$out" 'RCPT TO')" "^<<< 554 5\.7\.1 " "submission: unauthenticated mail to a remote domain refused"
check "submission: swaks STARTTLS + AUTH LOGIN (verified TLS)" \
    swaks --server 127.0.0.1 --port "$SUB_PORT" --helo client.example --tls --tls-verify \
    --tls-ca-path "$CA/ca.pem" --auth LOGIN --auth-user "$USER_PF" --auth-password "$PASS_PF" \
    --from "$USER_PF" --to oncall@remote.example --h-Subject "sub login" --body "via LOGIN" --timeout 10
check "submission: swaks STARTTLS + AUTH PLAIN (verified TLS)" \
    swaks --server localhost --port "$SUB_PORT" --helo client.example --tls --tls-verify \
    --tls-ca-path "$CA/ca.pem" --auth PLAIN --auth-user "$USER_PF" --auth-password "$PASS_PF" \
    --from "$USER_PF" --to oncall@remote.example --h-Subject "sub plain" --body "via PLAIN" --timeout 10
out=$(probe "$SUB_PORT" --ca "$CA/ca.pem" ehlo starttls ehlo "auth-login:$USER_PF:wrong-password" QUIT)
like "$out" "<<< 535 5\.7\.8 " "submission: wrong password refused"
check "submission: two messages delivered" wait_maildir "$SUB_MD" 2 10
file_has "$(maildir_files "$SUB_MD" | head -n 1)" "Authenticated sender: $USER_PF" \
    "submission: message records the authenticated sender"
is "$(maildir_count "$RELAY_MD")" 3 "relay Maildir unaffected by submission traffic"

# ===========================================================================
# Office 365 imitation: normal behaviour
# ===========================================================================
s=$(_am_now_ms)
O_PORT=$(start_o365 --user "$USER_O365" --password "$PASS_O365")
ok $? "start_o365 starts (port ${O_PORT:-none}, $(( $(_am_now_ms) - s )) ms)" || bail_out "no o365 server"
O_LOG=$(o365_transcript o365)
O_MD=$(o365_maildir o365)
out=$(probe "$O_PORT" ehlo "MAIL FROM:<$USER_O365>" "AUTH LOGIN" QUIT)
like "$out" "^<<< 220 [A-Z0-9]+\.outlook\.office365\.com Microsoft ESMTP MAIL Service ready at [A-Z][a-z]{2}, [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} \+0000$" \
    "o365: greeting"
caps=$(printf '%s\n' "$out" | sed -n 's/^<<< 250[- ]//p' | tail -n +2 | tr '\n' ' ')
is "$caps" "SIZE 157286400 PIPELINING DSN ENHANCEDSTATUSCODES STARTTLS 8BITMIME BINARYMIME CHUNKING SMTPUTF8 " \
    "o365: EHLO before TLS (no AUTH)"
like "$(after "$out" 'MAIL FROM')" "^<<< 451 5\.7\.3 STARTTLS is required to send mail" "o365: MAIL before STARTTLS refused"
like "$(after "$out" 'AUTH LOGIN')" "^<<< 504 5\.7\.4 Unrecognized authentication type" "o365: AUTH before STARTTLS refused"
out=$(probe "$O_PORT" --ca "$CA/ca.pem" ehlo starttls ehlo "MAIL FROM:<$USER_O365>" \
    "auth-login:$USER_O365:bad-password" "auth-plain:$USER_O365:$PASS_O365" QUIT)
like "$(after "$out" 'STARTTLS')" "^<<< 220 2\.0\.0 SMTP server ready" "o365: STARTTLS reply"
like "$out" "!!! TLS TLSv1\.[23]" "o365: TLS verified against the test CA for localhost"
caps=$(printf '%s\n' "$out" | sed -n '/!!! TLS/,$p' | sed -n 's/^<<< 250[- ]//p' | tail -n +2 | tr '\n' ' ')
is "$caps" "SIZE 157286400 PIPELINING DSN ENHANCEDSTATUSCODES AUTH LOGIN XOAUTH2 8BITMIME BINARYMIME CHUNKING SMTPUTF8 " \
    "o365: EHLO after TLS (AUTH LOGIN XOAUTH2, no STARTTLS, no PLAIN)"
like "$(after "$out" 'MAIL FROM')" "^<<< 530 5\.7\.57 Client not authenticated to send mail" "o365: MAIL before AUTH refused"
like "$out" "<<< 535 5\.7\.3 Authentication unsuccessful" "o365: bad credentials refused"
like "$(after "$out" 'AUTH PLAIN')" "^<<< 504 5\.7\.4 " "o365: PLAIN refused"
check "o365: swaks STARTTLS + AUTH LOGIN (verified TLS) sends" \
    swaks --server localhost --port "$O_PORT" --helo client.example --tls --tls-verify \
    --tls-ca-path "$CA/ca.pem" --auth LOGIN --auth-user "$USER_O365" --auth-password "$PASS_O365" \
    --from "$USER_O365" --to oncall@example.net --h-Subject "o365 one" --body "o365 body" --timeout 10
file_has "$O_LOG" "S: 250 2\.0\.0 OK <[0-9A-F]+@[A-Za-z0-9.]+> \[Hostname=[A-Za-z0-9.]+\]$" "o365: final reply has id and Hostname"
is "$(maildir_count "$O_MD")" 1 "o365: message saved"
f=$(maildir_files "$O_MD" | head -n 1)
file_has "$f" "^Subject: o365 one" "o365: saved message is the message as sent"
file_lacks "$f" "^Received:" "o365: saved raw (no headers added)"
file_has "$O_MD/envelope/$(basename "$f")" "^rcpt_to: oncall@example\.net$" "o365: envelope saved"
file_has "$O_LOG" "C: AUTH LOGIN" "o365: transcript records AUTH"
# XOAUTH2 with an Entra-sized token: lines far beyond aiosmtpd's 512 default.
TOKEN=$(head -c 1800 /dev/urandom | base64 -w0 | tr '+/' '-_' | cut -c1-2200)
out=$(probe "$O_PORT" --ca "$CA/ca.pem" ehlo starttls ehlo "xoauth2:$USER_O365:$PASS_O365" QUIT)
like "$out" "<<< 235 2\.7\.0 Authentication successful" "o365: XOAUTH2 initial response accepted (password as token)"
out=$(probe "$O_PORT" --ca "$CA/ca.pem" ehlo starttls ehlo "xoauth2:$USER_O365:$TOKEN" QUIT)
like "$out" "^>>> AUTH XOAUTH2 <[0-9]{4} octets>$" "o365: XOAUTH2 initial response longer than 2000 octets sent"
like "$(after "$out" 'AUTH XOAUTH2 <')" "^<<< 535 5\.7\.3 " "o365: long XOAUTH2 line read whole (wrong token refused)"
O_TOK_PORT=$(start_o365 --name o365tok --user "$USER_O365" --token "$TOKEN")
out=$(probe "$O_TOK_PORT" --ca "$CA/ca.pem" ehlo starttls ehlo "xoauth2:$USER_O365:$TOKEN" \
    "MAIL FROM:<$USER_O365>" "RCPT TO:<x@example.net>" "data:Subject: oauth\n\nhi" QUIT)
like "$out" "<<< 235 2\.7\.0 Authentication successful" "o365 --token: 2200-char bearer token accepted"
like "$out" "<<< 250 2\.0\.0 OK " "o365 --token: message accepted after XOAUTH2"
out=$(probe "$O_TOK_PORT" --ca "$CA/ca.pem" ehlo starttls ehlo "xoauth2-334:$USER_O365:$TOKEN" QUIT)
like "$(after "$out" 'AUTH XOAUTH2')" "^<<< 334 $" "o365: XOAUTH2 without initial response gets 334"
like "$(after "$out" '<')" "^<<< 235 2\.7\.0" "o365: XOAUTH2 token after 334 accepted"

# ===========================================================================
# Office 365 imitation: certificates
# ===========================================================================
for c in wrongname untrusted expired; do
    port=$(start_o365 --name "cert-$c" --cert "$CA/$c.crt" --key "$CA/$c.key" \
        --user "$USER_O365" --password "$PASS_O365")
    out=$(probe "$port" --ca "$CA/ca.pem" ehlo starttls ehlo "auth-login:$USER_O365:$PASS_O365" QUIT)
    case $c in
        wrongname) want="Hostname mismatch|doesn't match|IP address mismatch" ;;
        untrusted) want="self-signed certificate|unable to get local issuer" ;;
        expired) want="certificate has expired" ;;
    esac
    like "$out" "!!! TLS error: .*($want)" "o365 with $c cert: verifying client refuses TLS"
    file_lacks "$(o365_transcript "cert-$c")" " C: AUTH" "o365 with $c cert: no AUTH reached the server"
done

# ===========================================================================
# Office 365 imitation: faults
# ===========================================================================
# fault_probe FAULT STEPS... -- start a server with --fault FAULT and run the
# normal submission dialogue (TLS, LOGIN, MAIL, RCPT, DATA) against it.
fault_run() {
    local fault=$1; shift
    local port
    port=$(start_o365 --name "f-$fault" --fault "$fault" --user "$USER_O365" --password "$PASS_O365" "$@") ||
        return 1
    probe "$port" --ca "$CA/ca.pem" ehlo starttls ehlo "auth-login:$USER_O365:$PASS_O365" \
        "MAIL FROM:<$USER_O365>" "RCPT TO:<oncall@example.net>" "data:Subject: fault\n\nbody" QUIT
}

port=$(start_o365 --fault closed)
out=$(probe "$port")
like "$out" "!!! closed|refused" "fault closed: connection refused"

port=$(start_o365 --name f-silent --fault silent)
s=$(_am_now_ms)
out=$(probe "$port" --greeting-timeout 1)
el=$(( $(_am_now_ms) - s ))
like "$out" "^!!! timeout$" "fault silent: TCP accepted, no greeting (${el} ms)"
file_lacks "$(o365_transcript f-silent)" "#1 S:" "fault silent: server sent nothing"

out=$(probe "$(start_o365 --name f-no-starttls --fault no-starttls --user "$USER_O365" --password "$PASS_O365")" \
    ehlo STARTTLS QUIT)
unlike "$out" "<<< 250[- ]STARTTLS" "fault no-starttls: STARTTLS not advertised"
like "$out" "<<< 250-AUTH LOGIN PLAIN" "fault no-starttls: AUTH LOGIN PLAIN advertised in clear"
like "$(after "$out" 'STARTTLS')" "^<<< 5[0-9][0-9] " "fault no-starttls: STARTTLS command refused"
file_lacks "$(o365_transcript f-no-starttls)" " C: AUTH" "fault no-starttls: transcript shows no AUTH"

out=$(fault_run tempfail-mail)
like "$out" "<<< 235 2\.7\.0" "fault tempfail-mail: AUTH succeeds"
like "$(after "$out" 'MAIL FROM')" "^<<< 451 4\.7\.500 Server busy" "fault tempfail-mail: 451 4.7.500 at MAIL"

out=$(fault_run permfail-rcpt)
like "$(after "$out" 'RCPT TO')" "^<<< 550 5\.1\.10 RESOLVER\.ADR\.RecipientNotFound" "fault permfail-rcpt: 550 5.1.10 at RCPT"

out=$(fault_run tempfail-data)
like "$(after "$out" '<')" "^<<< 451 4\.3\.0 " "fault tempfail-data: 451 4.3.0 after the data"
is "$(maildir_count "$(o365_maildir f-tempfail-data)")" 0 "fault tempfail-data: nothing saved"

out=$(fault_run drop-after-data)
like "$(after "$out" '<')" "^!!! closed" "fault drop-after-data: connection closed without a reply"
is "$(maildir_count "$(o365_maildir f-drop-after-data)")" 0 "fault drop-after-data: nothing saved"

out=$(fault_run auth-disabled)
like "$out" "<<< 535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant" \
    "fault auth-disabled: 535 5.7.139 even with the right password"

out=$(fault_run throttle)
like "$(after "$out" 'MAIL FROM')" "^<<< 432 4\.3\.2 STOREDRV\.ClientSubmit; sender thread limit exceeded" "fault throttle: 432 4.3.2 at MAIL"

port=$(start_o365 --name f-once --fault tempfail-mail --fault-times 1 --user "$USER_O365" --password "$PASS_O365")
steps=(ehlo starttls ehlo "auth-login:$USER_O365:$PASS_O365" "MAIL FROM:<$USER_O365>"
    "RCPT TO:<oncall@example.net>" "data:Subject: retry\n\nbody" QUIT)
out1=$(probe "$port" --ca "$CA/ca.pem" "${steps[@]}")
out2=$(probe "$port" --ca "$CA/ca.pem" "${steps[@]}")
like "$out1" "<<< 451 4\.7\.500" "--fault-times 1: first connection fails"
like "$out2" "<<< 250 2\.0\.0 OK" "--fault-times 1: second connection succeeds"

out=$(fault_run none --reply "rcpt=452 4.5.3 Too many recipients")
like "$(after "$out" 'RCPT TO')" "^<<< 452 4\.5\.3 Too many recipients" "--reply STAGE=TEXT replaces a reply"

out=$(fault_run starttls-inject)
like "$out" "!!! extra data after 220: .*250-injected" "fault starttls-inject: lines follow the 220 in the same write"

port=$(start_o365 --name delay --no-tls --no-auth --delay ehlo=1.5)
s=$(_am_now_ms)
out=$(probe "$port" ehlo QUIT)
el=$(( $(_am_now_ms) - s ))
ok $(( el >= 1400 && el < 4000 ? 0 : 1 )) "--delay ehlo=1.5 delays the EHLO reply (${el} ms)"

port=$(start_o365 --name f-hang --fault hang-after-data --user "$USER_O365" --password "$PASS_O365")
out=$(probe "$port" --ca "$CA/ca.pem" --timeout 1 ehlo starttls ehlo "auth-login:$USER_O365:$PASS_O365" \
    "MAIL FROM:<$USER_O365>" "RCPT TO:<oncall@example.net>" "data:Subject: hang\n\nbody")
like "$(after "$out" '<')" "^!!! timeout$" "fault hang-after-data: no reply after the data, connection open"
file_has "$(o365_transcript f-hang)" "waiting 3600s before the reply at data_end" "fault hang-after-data: transcript says so"

port=$(start_o365 --name maxconn --no-tls --no-auth --max-connections 1)
exec 7<>"/dev/tcp/127.0.0.1/$port"
out=$(probe "$port")
exec 7<&- 7>&-
like "$out" "^<<< 421 4\.3\.2 Concurrent connections limit exceeded" "--max-connections 1: a second connection gets 421 4.3.2"

port=$(start_o365 --name plain --no-tls --no-auth)
out=$(probe "$port" ehlo "MAIL FROM:<a@example.org>" "RCPT TO:<b@example.net>" "data:Subject: plain\n\nx" QUIT)
unlike "$out" "<<< 250[- ](STARTTLS|AUTH)" "--no-tls --no-auth: neither STARTTLS nor AUTH offered"
like "$out" "<<< 250 2\.0\.0 OK" "--no-tls --no-auth: mail accepted in clear"
is "$(maildir_count "$(o365_maildir plain)")" 1 "--no-tls --no-auth: message saved"
out=$(probe "$port" ehlo "MAIL FROM:<a@example.org>" "RCPT TO:<b@example.net>" "bdat:Subject: chunked\n\nbody" QUIT)
like "$(after "$out" 'BDAT')" "^<<< 250 2\.0\.0 OK" "CHUNKING: a BDAT LAST message is accepted"
check "CHUNKING: message saved byte for byte" \
    bash -c "printf 'Subject: chunked\r\n\r\nbody' | cmp - '$(o365_maildir plain)/new/'\$(ls -t '$(o365_maildir plain)/new' | head -n 1)"

port=$(start_o365 --name mechs --auth-mechanisms "PLAIN LOGIN XOAUTH2" --user "$USER_O365" --password "$PASS_O365")
out=$(probe "$port" --ca "$CA/ca.pem" ehlo starttls ehlo "auth-plain:$USER_O365:$PASS_O365" QUIT)
like "$out" "<<< 250-AUTH PLAIN LOGIN XOAUTH2" "--auth-mechanisms changes what is advertised"
like "$out" "<<< 235 2\.7\.0" "--auth-mechanisms: PLAIN then accepted"

port=$(start_o365 --name tls11 --tls-max 1.1 --user "$USER_O365" --password "$PASS_O365")
out=$(probe "$port" --ca "$CA/ca.pem" ehlo starttls)
like "$out" "!!! TLS error" "--tls-max 1.1: a TLS 1.2+ client refuses the handshake"
out=$(probe "$port" --ca "$CA/ca.pem" --tls-legacy ehlo starttls ehlo QUIT)
like "$out" "^!!! TLS TLSv1\.1$" "--tls-max 1.1: the server does speak TLS 1.1"

if has_ipv6_loopback; then
    port=$(start_o365 --name v6 --host ::1 --user "$USER_O365" --password "$PASS_O365")
    out=$(probe "$port" --connect ::1 --ca "$CA/ca.pem" --name ::1 ehlo starttls ehlo \
        "auth-login:$USER_O365:$PASS_O365" QUIT)
    like "$out" "<<< 235 2\.7\.0" "--host ::1: TLS verified for IP ::1, AUTH accepted"
else
    skip "--host ::1" "no IPv6 loopback"
fi

c=$(transcript_count f-once " C: MAIL FROM")
is "$c" 2 "transcript_count counts MAIL commands over two connections"
check "wait_match finds a transcript line" wait_match "$(o365_transcript f-once)" "#2 -- message saved" 2

# ===========================================================================
# lib.sh itself
# ===========================================================================
cat >"$T/child.sh" <<EOF
. "$ALERTMAIL_IT_DIR/lib.sh"
echo "shell=\${BASH_VERSION:+bash}"
echo "T=\$T"
p=\$(start_o365 --no-tls --no-auth) || exit 3
echo "o365=\$(server_pid o365)"
p=\$(start_postfix_relay) || exit 4
echo "master=\$(server_pid relay)"
[ "\${1:-}" = hang ] && { echo ready; sleep 60; }
exit 0
EOF
s=$(_am_now_ms)
out=$(sh "$T/child.sh" 2>&1)
like "$out" "^shell=bash$" "lib.sh re-executes a script sourced from sh under bash"
cT=$(printf '%s\n' "$out" | sed -n 's/^T=//p')
cO=$(printf '%s\n' "$out" | sed -n 's/^o365=//p')
cM=$(printf '%s\n' "$out" | sed -n 's/^master=//p')
! pid_alive "$cO" && ! _am_group_alive "$cM" && [ -n "$cO" ] && [ -n "$cM" ] && [ ! -e "$cT" ]
ok $? "cleanup trap on exit: servers stopped by PID, work dir removed ($(( $(_am_now_ms) - s )) ms)" ||
    diag "$out"
# The same on SIGTERM.
bash "$T/child.sh" hang >"$T/child.out" 2>&1 &
cpid=$!
deadline=$(( $(_am_now_ms) + 15000 ))
while ! grep -q '^ready' "$T/child.out" && [ "$(_am_now_ms)" -lt "$deadline" ]; do sleep 0.05; done
cO=$(sed -n 's/^o365=//p' "$T/child.out"); cM=$(sed -n 's/^master=//p' "$T/child.out")
cT=$(sed -n 's/^T=//p' "$T/child.out")
kill -TERM "$cpid"
# bash runs the trap once the foreground sleep ends; end that sleep by its PID.
sleep 0.2
for p in $(ps -o pid= --ppid "$cpid"); do kill -TERM "$p" 2>/dev/null; done
wait "$cpid"
crc=$?
! pid_alive "$cO" && ! _am_group_alive "$cM" && [ -n "$cO" ] && [ -n "$cM" ] && [ ! -e "$cT" ]
ok $? "cleanup trap on SIGTERM: servers stopped, work dir removed (exit $crc)" || diag_file "$T/child.out"

out=$(bash -c ". '$ALERTMAIL_IT_DIR/lib.sh'; skip_all 'no widget'" 2>&1)
rc=$?
is "$out/$rc" "1..0 # SKIP no widget/0" "skip_all prints a TAP skip"
out=$(ALERTMAIL_REQUIRE_ALL=1 bash -c ". '$ALERTMAIL_IT_DIR/lib.sh'; skip_all 'no widget'" 2>&1)
rc=$?
like "$out" "^not ok 1 - required but would be skipped: no widget" "ALERTMAIL_REQUIRE_ALL=1 turns skip_all into a failure"
is "$rc" 1 "ALERTMAIL_REQUIRE_ALL=1: exit status 1"

# ===========================================================================
# Everything stops
# ===========================================================================
s=$(_am_now_ms)
names=$(awk '{ print $2 }' "$_AM_SERVERS")
masters=$(awk '$1 == "postfix" { print $3 }' "$_AM_SERVERS")
all_stopped=0
for n in $names; do
    stop_server "$n" || { all_stopped=1; diag "could not stop $n"; }
done
ok $all_stopped "every server stops by PID within its bound ($(( $(_am_now_ms) - s )) ms)"
left=$(ps -e -o pid=,args= | grep -F -- "$T" | grep -v -e grep -e "ps -e" || true)
for m in $masters; do
    _am_group_alive "$m" && left="$left
postfix process group $m"
done
is "$left" "" "no process of this test is left (postfix, python)"
diag "selftest ran in $(( $(_am_now_ms) - _start_ms )) ms"
finish

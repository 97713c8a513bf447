#!/bin/bash
# Quick start: installs what is missing (Debian 12, as root), builds alertmail, starts the bundled
# scripted SMTP server on 127.0.0.1 (it behaves like Office 365: STARTTLS, then AUTH LOGIN) with a
# throw-away test CA, runs the daemon on a temporary spool, submits a sample alert, shows the
# delivered message, and stops the daemon and the server. Nothing outside the build tree and a
# temporary directory is touched.
set -eu
top=$(cd "$(dirname "$0")" && pwd)

"$top/tests/install-deps"
cd "$top"
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p build
cd build
# Configured exactly as tests/run configures build/ (-Werror), so that the two Quick start
# commands share one build. A build/ configured otherwise is configured again and cleaned.
if ! { [ -f Makefile ] && ./config.status --config 2>/dev/null | grep -q -- '--enable-werror'; }; then
	"$top/configure" --enable-werror CFLAGS="-g -O2" LDFLAGS="" >configure.out 2>&1 ||
		{ cat configure.out; exit 1; }
	make clean >/dev/null 2>&1 || true
fi
make -j2 >make.out 2>&1 || { cat make.out; exit 1; }
set +eu

# The test library gives a temporary directory, the test CA and the server, and stops the server
# (by PID) and removes the directory when this script ends.
. "$top/tests/integration/lib.sh"
export ALERTMAIL_DATADIR=$top
CA=$(test_ca) || exit 1
USER=alerts@demo.example
printf '%s\n' 'demo-password' >"$T/demo.pass"
chmod 600 "$T/demo.pass"
port=$(start_o365 --name demo --user "$USER" --password demo-password) || exit 1

cat >"$T/alertmail.yaml" <<EOF_CONFIG
# The demo's config: a spool in a temporary directory, one channel delivering through the local
# scripted server.
spool: $T/spool
state: $T/state
from: "alertmail demo <$USER>"
servers:
  local:
    host: localhost
    port: $port
    tls: starttls
    ca_file: $CA/ca.pem
    auth: login
    username: $USER
    password_file: $T/demo.pass
    timeout: 5s
channels:
  ops:
    servers: [local]
    to: ["Operations <ops@demo.example>"]
EOF_CONFIG

echo "== config ($T/alertmail.yaml)"
sed 's/^/   /' "$T/alertmail.yaml"
echo
echo "== alertmail check --connect"
./alertmail -c "$T/alertmail.yaml" check --connect | grep -v '^s[pt]' | sed 's/^/   /'
echo
echo "== alertmail run (the daemon, in the background; its log: $T/daemon.log)"
ALERTMAIL=$top/build/alertmail
start_daemon daemon "$T/alertmail.yaml" || { cat "$T/daemon.log"; exit 1; }
echo "   running as PID $DAEMON_PID"
echo
echo "== alertmail submit (a monitoring system drops an alert)"
cat >"$T/alert.yaml" <<'EOF_ALERT'
title: "Disk /var almost full on db01 — 97 %"
severity: critical
source: db01.example.com
description: |
  /var is at 97 % (58.2 of 60 GB).
  Largest grower: /var/lib/postgresql (+4 GB since yesterday).
labels:
  team: database
  service: billing
EOF_ALERT
sed 's/^/   /' "$T/alert.yaml"
./alertmail -c "$T/alertmail.yaml" submit "$T/alert.yaml" | sed 's/^/   id: /'
rc=1
wait_maildir "$(o365_maildir demo)" 1 10 && rc=0
echo
echo "== the daemon's log"
sed 's/^/   /' "$T/daemon.log"
echo
[ "$rc" -eq 0 ] || { echo "not delivered"; exit 1; }
msg=$(maildir_files "$(o365_maildir demo)" | head -n 1)
echo "== the message's header as the server received it ($msg)"
tr -d '\r' <"$msg" | sed -n '1,/^$/p' | sed 's/^/   /'
echo
echo "== read back with Python's email parser"
/usr/bin/python3 - "$msg" <<'PY'
import email, email.policy, sys
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)
for h in ('From', 'To', 'Subject', 'Date', 'Message-ID'):
    print('   %-11s %s' % (h + ':', m[h]))
print()
for line in m.get_body(preferencelist=('plain',)).get_content().splitlines():
    print('   | ' + line)
PY
echo
stop_daemon daemon
if [ "$rc" -eq 0 ]; then
	echo "Delivered. Next: write /etc/alertmail/alertmail.yaml (see conf/alertmail.yaml and the README),"
	echo "run alertmail check --connect and alertmail test --channel ops, then start the service"
	echo "(contrib/README)."
fi
exit "$rc"

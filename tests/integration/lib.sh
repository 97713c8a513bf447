# shellcheck shell=bash
# tests/integration/lib.sh -- shared helpers for alertmail's integration tests.
#
# This is a BASH library.  Test scripts source it first thing:
#
#     #!/bin/bash
#     . "$(dirname "$0")/lib.sh"
#
# automake runs the .test scripts with $(SHELL), which may be dash; the guard
# below re-executes the sourcing script under bash before anything else runs.
#
# Every server started here listens on loopback only (127.0.0.1, and ::1 for
# Postfix when the machine has it), is recorded by PID under $T and is stopped
# by PID by the cleanup trap (TERM, bounded wait, then KILL).  Every wait is
# bounded in time, and every server also exits by itself after
# $ALERTMAIL_SERVER_LIFETIME seconds.  servers.test uses each helper.
#
# API (details above each function):
#   TAP       plan N | ok STATUS DESC | check DESC CMD... | check_fails DESC CMD...
#             is GOT WANT DESC | like TEXT ERE DESC | unlike TEXT ERE DESC
#             file_has FILE ERE DESC | file_lacks FILE ERE DESC | skip DESC WHY
#             todo STATUS DESC WHY | diag MSG | diag_file FILE [N] | bail_out WHY
#             skip_all WHY (a failure when ALERTMAIL_REQUIRE_ALL=1) | finish
#             require_cmd CMD... | require_aiosmtpd | require_postfix
#   work dir  $T (removed on exit; ALERTMAIL_KEEP_TMP=1 keeps it)
#             at_cleanup CMD  (do not set your own EXIT trap)
#   ports     free_port | closed_port | wait_port HOST PORT [S] | port_listening HOST PORT
#             has_ipv6_loopback
#   PKI       make_ca DIR | test_ca  (-> $T/ca)
#   servers   start_o365 [--name N] [o365_server.py options]      -> port
#             start_token_server [--name N] [token_server.py options] -> port
#             start_postfix_relay [NAME]                          -> port
#             start_postfix_submission USER PASSWORD [NAME]       -> port
#             start_postfix_mtls [NAME]  (client certificate required) -> port
#             start_tls_server NAME [openssl s_server options]     -> port
#             server_pid NAME | server_dir NAME | stop_server NAME
#             stop_pid PID [S] [group] | pid_alive PID
#   results   o365_maildir [NAME] | o365_transcript [NAME] | postfix_maildir NAME
#             maildir_count DIR | maildir_files DIR | wait_maildir DIR N [S]
#             transcript_count NAME ERE | wait_match FILE ERE [S]
#   daemon    start_daemon NAME CONFIG [ENV=V...] (sets DAEMON_PID; log $T/NAME.log;
#             $ALERTMAIL_DAEMON_WRAPPER, if set, runs it: valgrind and its options)
#             daemon_pid NAME | stop_daemon NAME [S] (DAEMON_RC, DAEMON_STOP_MS)
#             kill_daemon NAME | reap_daemon NAME
#             submit_alerts SPOOL N PREFIX [YAML] | spool_count SPOOL DIR
#             wait_spool_idle SPOOL [S] | count_matches FILE ERE | wait_count FILE ERE N [S]
#             maildir_alert_ids DIR | postfix_queue_count NAME | wait_postfix_idle NAME [S]
#   failover  failover_init [norelay] (ALERTMAIL, CA, AM_USER, PASS, RCPT, RELAY_PORT)
#             o365 NAME [options] (-> PORT) | setup_case CASE relay|scripted PORT [K=V...]
#             server_yaml | primary_yaml | plain_yaml | write_conf CASE "A, B"
#             run_alertmail CASE (OUT, RC, EL, ID) | attempt_ms SERVER
#             primary_reports CASE OUTCOME ERE | fails_over CASE | nothing_reached CASE SERVER
#             stderr_clean CASE [PASSWORD] | lacks_secret FILE PASSWORD DESC
#             secret_in FILE PASSWORD | messages_with_id DIR ID | failover_relay_total

if [ -z "${BASH_VERSION:-}" ]; then
    if [ -n "${ALERTMAIL_LIB_REEXEC:-}" ]; then
        echo "lib.sh: bash is required" >&2
        exit 99
    fi
    ALERTMAIL_LIB_REEXEC=1
    export ALERTMAIL_LIB_REEXEC
    exec bash "$0" "$@"
fi
unset ALERTMAIL_LIB_REEXEC

# ---------------------------------------------------------------------------
# Settings (environment may override)
# ---------------------------------------------------------------------------
ALERTMAIL_IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ALERTMAIL_PYTHON=${ALERTMAIL_PYTHON:-/usr/bin/python3}   # Debian's python sees python3-aiosmtpd
ALERTMAIL_O365_SERVER=${ALERTMAIL_O365_SERVER:-$ALERTMAIL_IT_DIR/o365_server.py}
# Upper bound on the life of every server started here, in seconds.  Servers
# exit by themselves after it even if this script is killed with SIGKILL.
ALERTMAIL_SERVER_LIFETIME=${ALERTMAIL_SERVER_LIFETIME:-600}
# Default bound for start-up waits, in seconds.
ALERTMAIL_START_TIMEOUT=${ALERTMAIL_START_TIMEOUT:-15}
PF_DAEMON_DIR=${PF_DAEMON_DIR:-/usr/lib/postfix/sbin}

# ---------------------------------------------------------------------------
# TAP
# ---------------------------------------------------------------------------
_tap_n=0          # tests run so far
_tap_failed=0     # failures so far
_tap_plan=""      # plan announced with `plan N`, empty in done-testing style

# plan N -- announce the number of tests up front.
plan() {
    _tap_plan=$1
    echo "1..$1"
}

# diag MSG... -- a diagnostic line (goes to stdout, as TAP comments).
diag() {
    local line
    printf '%s\n' "$*" | while IFS= read -r line; do printf '# %s\n' "$line"; done
}

# diag_file FILE [MAXLINES] -- show the tail of a file as diagnostics.
diag_file() {
    local f=$1 max=${2:-40}
    if [ -f "$f" ]; then
        diag "--- $f (last $max lines) ---"
        tail -n "$max" "$f" | while IFS= read -r line; do printf '#   %s\n' "$line"; done
    else
        diag "--- $f: no such file ---"
    fi
}

# ok STATUS DESC -- STATUS is an exit status: 0 passes, anything else fails.
#   some_command; ok $? "some_command works"
ok() {
    local status=$1; shift
    _tap_n=$((_tap_n + 1))
    if [ "$status" -eq 0 ] 2>/dev/null; then
        echo "ok $_tap_n - $*"
        return 0
    fi
    _tap_failed=$((_tap_failed + 1))
    echo "not ok $_tap_n - $*"
    return 1
}

# check DESC CMD [ARGS...] -- run CMD; ok if it exits 0.  On failure the exit
# status and the tail of its output (stdout+stderr) are shown as diagnostics.
check() {
    local desc=$1; shift
    local out status
    out=$(mktemp "${T:-/tmp}/check.XXXXXX")
    "$@" >"$out" 2>&1
    status=$?
    if ok "$status" "$desc"; then
        rm -f "$out"
        return 0
    fi
    diag "command: $*"
    diag "exit status: $status"
    diag_file "$out" 25
    rm -f "$out"
    return 1
}

# check_fails DESC CMD [ARGS...] -- ok if CMD exits non-zero.
check_fails() {
    local desc=$1; shift
    local out status
    out=$(mktemp "${T:-/tmp}/check.XXXXXX")
    "$@" >"$out" 2>&1
    status=$?
    if [ "$status" -ne 0 ]; then
        ok 0 "$desc"
        rm -f "$out"
        return 0
    fi
    ok 1 "$desc"
    diag "command unexpectedly succeeded: $*"
    diag_file "$out" 25
    rm -f "$out"
    return 1
}

# is GOT EXPECTED DESC -- string equality.
is() {
    if [ "$1" = "$2" ]; then
        ok 0 "$3"
        return 0
    fi
    ok 1 "$3"
    diag "     got: '$1'"
    diag "expected: '$2'"
    return 1
}

# like TEXT ERE DESC -- TEXT matches the extended regular expression ERE
# (grep -E, any line).   unlike TEXT ERE DESC -- no line matches.
like() {
    if printf '%s\n' "$1" | grep -Eq -- "$2"; then
        ok 0 "$3"
        return 0
    fi
    ok 1 "$3"
    diag "text does not match /$2/:"
    diag "$1"
    return 1
}
unlike() {
    if ! printf '%s\n' "$1" | grep -Eq -- "$2"; then
        ok 0 "$3"
        return 0
    fi
    ok 1 "$3"
    diag "text unexpectedly matches /$2/:"
    diag "$1"
    return 1
}

# file_has FILE ERE DESC / file_lacks FILE ERE DESC -- grep -E on a file.
file_has() {
    if [ -f "$1" ] && grep -Eq -- "$2" "$1"; then
        ok 0 "$3"
        return 0
    fi
    ok 1 "$3"
    diag "no line of $1 matches /$2/"
    diag_file "$1" 30
    return 1
}
file_lacks() {
    if [ -f "$1" ] && ! grep -Eq -- "$2" "$1"; then
        ok 0 "$3"
        return 0
    fi
    ok 1 "$3"
    if [ -f "$1" ]; then
        diag "$1 has a line matching /$2/:"
        grep -En -- "$2" "$1" | head -n 10 | while IFS= read -r line; do diag "  $line"; done
    else
        diag "$1: no such file"
    fi
    return 1
}

# skip DESC REASON -- a test that is skipped (counts as passed).
skip() {
    _tap_n=$((_tap_n + 1))
    echo "ok $_tap_n - $1 # SKIP $2"
}

# todo STATUS DESC REASON -- an expected failure.
todo() {
    _tap_n=$((_tap_n + 1))
    if [ "$1" -eq 0 ] 2>/dev/null; then
        echo "ok $_tap_n - $2 # TODO $3"
    else
        echo "not ok $_tap_n - $2 # TODO $3"
    fi
}

# skip_all REASON -- skip the whole script (call before any test ran).  With
# ALERTMAIL_REQUIRE_ALL=1 (CI) this is a failure instead: nothing may be
# skipped silently.
skip_all() {
    if [ "${ALERTMAIL_REQUIRE_ALL:-0}" = 1 ]; then
        if [ -z "$_tap_plan" ]; then echo "1..$((_tap_n + 1))"; fi
        _tap_n=$((_tap_n + 1))
        echo "not ok $_tap_n - required but would be skipped: $*"
        diag "ALERTMAIL_REQUIRE_ALL=1: install what is missing instead of skipping"
        exit 1
    fi
    echo "1..0 # SKIP $*"
    exit 0
}

# bail_out REASON -- abort the script (TAP "Bail out!").
bail_out() {
    echo "Bail out! $*"
    exit 1
}

# finish -- end of script: prints the plan in done-testing style, checks the
# count against a plan given up front, and exits 0 only if all passed.
finish() {
    if [ -z "$_tap_plan" ]; then
        echo "1..$_tap_n"
    elif [ "$_tap_plan" -ne "$_tap_n" ]; then
        diag "planned $_tap_plan tests but ran $_tap_n"
        exit 1
    fi
    if [ "$_tap_failed" -ne 0 ]; then
        diag "failed $_tap_failed of $_tap_n"
        exit 1
    fi
    exit 0
}

# require_cmd CMD... -- skip_all unless every CMD is on PATH (or executable).
require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip_all "$c not installed"
    done
}
# require_aiosmtpd -- skip_all unless the scripted server can run.
require_aiosmtpd() {
    [ -x "$ALERTMAIL_PYTHON" ] || skip_all "$ALERTMAIL_PYTHON not found"
    "$ALERTMAIL_PYTHON" -c 'import aiosmtpd' 2>/dev/null ||
        skip_all "python3-aiosmtpd not installed for $ALERTMAIL_PYTHON"
}
# require_postfix -- skip_all unless a private Postfix instance can run.
require_postfix() {
    [ "$(id -u)" = 0 ] || skip_all "a private Postfix instance needs root"
    if [ ! -x /usr/sbin/postfix ] || [ ! -x "$PF_DAEMON_DIR/master" ]; then
        skip_all "postfix not installed"
    fi
    command -v saslpasswd2 >/dev/null 2>&1 || skip_all "sasl2-bin not installed"
}

# ---------------------------------------------------------------------------
# Work directory, process bookkeeping and cleanup
# ---------------------------------------------------------------------------
# T: this test's private directory.  World-traversable (0755) so that Postfix
# daemons running as postfix/nobody can reach files below it.
_am_tmp=${TMPDIR:-/tmp}
# Postfix daemons (users postfix, nobody) must reach $T: every ancestor needs
# o+x.  Otherwise use /tmp.
_am_d=$(cd "$_am_tmp" 2>/dev/null && pwd -P) || _am_d=/nonexistent
while [ -n "$_am_d" ] && [ "$_am_d" != / ]; do
    case $(stat -c %A "$_am_d" 2>/dev/null) in
        ?????????[xt]) _am_d=${_am_d%/*} ;;
        *) _am_tmp=/tmp; break ;;
    esac
done
T=$(mktemp -d "$_am_tmp/alertmail-it.XXXXXX") || { echo "Bail out! mktemp failed"; exit 1; }
unset _am_tmp _am_d
chmod 755 "$T"
export T
_AM_SERVERS=$T/.servers      # one line per server: KIND NAME PID
_AM_PORTS=$T/.ports          # ports handed out by free_port
: >"$_AM_SERVERS"
: >"$_AM_PORTS"
_am_cleanup_hooks=()

# at_cleanup CMD... -- run CMD (via eval) in the cleanup trap, before servers stop.
at_cleanup() {
    _am_cleanup_hooks+=("$*")
}

# _am_now_ms -- milliseconds since the epoch.
_am_now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
}

# pid_alive PID -- the process exists and is not a zombie.
pid_alive() {
    local pid=$1 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# _am_group_alive PGID -- some live (non-zombie) process is in that process group.
_am_group_alive() {
    local pgid=$1 p
    for p in $(ps -e -o pid=,pgid= | awk -v g="$pgid" '$2 == g { print $1 }'); do
        pid_alive "$p" && return 0
    done
    return 1
}

# stop_pid PID [TIMEOUT_S] [GROUP] -- SIGTERM, wait up to TIMEOUT_S (default 5)
# for it to go, then SIGKILL.  With GROUP=group the signals go to the process
# group PID leads (a Postfix master and its children).  Returns 0 once gone.
stop_pid() {
    local pid=$1 timeout=${2:-5} group=${3:-} target deadline
    [ -n "$pid" ] || return 0
    target=$pid
    [ "$group" = group ] && target=-$pid
    _am_alive_target() { if [ "$group" = group ]; then _am_group_alive "$pid"; else pid_alive "$pid"; fi; }
    _am_alive_target || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM -- "$target" 2>/dev/null
    deadline=$(( $(_am_now_ms) + timeout * 1000 ))
    while _am_alive_target && [ "$(_am_now_ms)" -lt "$deadline" ]; do
        sleep 0.05
    done
    if _am_alive_target; then
        echo "lib.sh: $pid did not stop within ${timeout}s; sending SIGKILL" >&2
        kill -KILL -- "$target" 2>/dev/null
        deadline=$(( $(_am_now_ms) + 2000 ))
        while _am_alive_target && [ "$(_am_now_ms)" -lt "$deadline" ]; do sleep 0.05; done
    fi
    wait "$pid" 2>/dev/null
    ! _am_alive_target
}

# _am_track KIND NAME PID -- remember a server for cleanup.
_am_track() {
    echo "$1 $2 $3" >>"$_AM_SERVERS"
}

# server_pid NAME -- PID of a server started by this library.
server_pid() {
    awk -v n="$1" '$2 == n { p = $3 } END { if (p == "") exit 1; print p }' "$_AM_SERVERS"
}

# server_dir NAME -- directory of a server ($T/NAME): Maildir/, logs, config.
server_dir() {
    echo "$T/$1"
}

# stop_server NAME -- stop one server by its recorded PID (bounded).
stop_server() {
    local name=$1 kind pid
    read -r kind _ pid < <(awk -v n="$name" '$2 == n' "$_AM_SERVERS" | tail -n 1) || {
        echo "stop_server: no server named $name" >&2
        return 1
    }
    case $kind in
        postfix) stop_pid "$pid" 8 group ;;
        *) stop_pid "$pid" 5 ;;
    esac
    local rc=$?
    awk -v n="$name" '$2 != n' "$_AM_SERVERS" >"$_AM_SERVERS.new" && mv "$_AM_SERVERS.new" "$_AM_SERVERS"
    return $rc
}

_am_cleanup() {
    local rc=$? h kind name pid
    trap - EXIT INT TERM HUP
    for h in "${_am_cleanup_hooks[@]+"${_am_cleanup_hooks[@]}"}"; do
        eval "$h" || true
    done
    if [ -s "$_AM_SERVERS" ]; then
        # Newest first.
        tac "$_AM_SERVERS" | while read -r kind name pid; do
            case $kind in
                postfix) stop_pid "$pid" 8 group ;;
                *) stop_pid "$pid" 5 ;;
            esac
        done
    fi
    if [ "${ALERTMAIL_KEEP_TMP:-0}" = 1 ]; then
        echo "# kept work directory $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap _am_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------
# has_ipv6_loopback -- ::1 is usable on this machine.
has_ipv6_loopback() {
    "$ALERTMAIL_PYTHON" - <<'EOF' 2>/dev/null
import socket, sys
try:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("::1", 0))
    s.close()
except OSError:
    sys.exit(1)
EOF
}

# free_port -- print a TCP port that nothing listens on, on 127.0.0.1 (and
# ::1 when present).  Chosen at random in 20000-32767, below Linux's
# ephemeral range, and never twice in one test.
free_port() {
    local port
    port=$("$ALERTMAIL_PYTHON" - "$_AM_PORTS" <<'EOF'
import random, socket, sys
used = set(open(sys.argv[1]).read().split())
def free(fam, host, port):
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError as e:
        # ::1 absent: only IPv4 matters.
        return fam == socket.AF_INET6 and e.errno in (97, 99)
    finally:
        s.close()
for _ in range(200):
    p = random.randint(20000, 32767)
    if str(p) in used:
        continue
    if free(socket.AF_INET, "127.0.0.1", p) and free(socket.AF_INET6, "::1", p):
        print(p)
        sys.exit(0)
sys.exit(1)
EOF
    ) || { echo "free_port: no free port found" >&2; return 1; }
    echo "$port" >>"$_AM_PORTS"
    echo "$port"
}

# closed_port -- a loopback port with nothing listening (connections are refused).
closed_port() {
    free_port
}

# port_listening HOST PORT -- something listens there (checked with ss, no connection made).
port_listening() {
    local host=$1 port=$2 addr
    case $host in
        *:*) addr="[$host]:$port" ;;
        localhost) addr="127.0.0.1:$port" ;;
        *) addr="$host:$port" ;;
    esac
    if command -v ss >/dev/null 2>&1; then
        ss -Hltn "sport = :$port" 2>/dev/null | awk '{ print $4 }' |
            grep -Fxq -e "$addr" -e "*:$port" -e "0.0.0.0:$port" -e "[::]:$port"
    else
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
    fi
}

# wait_port HOST PORT [TIMEOUT_S] -- wait (bounded, default 10 s) until
# something listens on HOST:PORT.  Returns 1 on timeout.
wait_port() {
    local host=$1 port=$2 timeout=${3:-10} deadline
    deadline=$(( $(_am_now_ms) + timeout * 1000 ))
    while ! port_listening "$host" "$port"; do
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "wait_port: nothing listening on $host:$port after ${timeout}s" >&2
            return 1
        fi
        sleep 0.05
    done
    return 0
}

# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------
# make_ca DIR -- a test PKI in DIR (EC P-256), made with the openssl CLI:
#   ca.pem, ca.key                    test CA
#   localhost.crt/.key                CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1, signed by the CA
#   wrongname.crt/.key                CN=wrong.example, SAN DNS:wrong.example, signed by the CA
#   untrusted.crt/.key                self-signed, same names as localhost (not trusted by ca.pem)
#   expired.crt/.key                  localhost names, signed by the CA, valid only in January 2020
#   localhost-chain.pem               localhost.crt followed by ca.pem
#   otherca.pem, otherca.key          a second CA, which ca.pem does not trust
#   foreign.crt/.key                  localhost names, signed by the other CA (an unknown CA)
#   client.crt/.key                   CN=alertmail client, clientAuth, signed by the CA
#   client-other.crt/.key             the same, signed by the other CA
#   client-expired.crt/.key           the same, signed by the CA, valid only in January 2020
#   client-combined.pem               client.crt followed by its key, in one file
# Client keys (and client-combined.pem) are mode 0600, as alertmail wants its key files.
# Idempotent: does nothing if DIR holds the whole set.
make_ca() {
    local d=$1
    [ -f "$d/ca.pem" ] && [ -f "$d/client-combined.pem" ] && return 0
    mkdir -p "$d" || return 1
    (
        set -e
        cd "$d"
        umask 022
        local ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
        local san_local="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
        cat >leaf.ext <<EOF
[ localhost ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
$san_local
[ wrongname ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
[ client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
        # shellcheck disable=SC2086
        openssl req -x509 $ec -keyout ca.key -out ca.pem -days 3650 -sha256 \
            -subj "/O=alertmail tests/CN=alertmail test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        for n in localhost wrongname expired; do
            cn=localhost
            [ "$n" = wrongname ] && cn=wrong.example
            # shellcheck disable=SC2086
            openssl req -new $ec -keyout "$n.key" -out "$n.csr" -subj "/O=alertmail tests/CN=$cn" 2>/dev/null
        done
        openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 825 -sha256 -extfile leaf.ext -extensions localhost -out localhost.crt 2>/dev/null
        openssl x509 -req -in wrongname.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 825 -sha256 -extfile leaf.ext -extensions wrongname -out wrongname.crt 2>/dev/null
        # Expired: `openssl ca` accepts explicit start and end dates.
        mkdir -p ca-db/new
        : >ca-db/index.txt
        echo 1000 >ca-db/serial
        cat >ca.cnf <<EOF
[ ca ]
default_ca = testca
[ testca ]
dir = ./ca-db
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
organizationName = optional
commonName = supplied
[ localhost ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
$san_local
EOF
        openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key \
            -startdate 20200101000000Z -enddate 20200131000000Z \
            -extensions localhost -in expired.csr -out expired.crt 2>/dev/null
        # shellcheck disable=SC2086
        openssl req -x509 $ec -keyout untrusted.key -out untrusted.crt -days 825 -sha256 \
            -subj "/O=alertmail tests/CN=localhost" \
            -addext "basicConstraints=critical,CA:FALSE" \
            -addext "$san_local" 2>/dev/null
        cat localhost.crt ca.pem >localhost-chain.pem
        # A second CA, for a server certificate and a client certificate nobody here trusts.
        # shellcheck disable=SC2086
        openssl req -x509 $ec -keyout otherca.key -out otherca.pem -days 3650 -sha256 \
            -subj "/O=another test CA/CN=another test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        for n in foreign client client-other client-expired; do
            cn=localhost
            case $n in client*) cn="alertmail client" ;; esac
            # shellcheck disable=SC2086
            openssl req -new $ec -keyout "$n.key" -out "$n.csr" -subj "/O=alertmail tests/CN=$cn" 2>/dev/null
        done
        openssl x509 -req -in foreign.csr -CA otherca.pem -CAkey otherca.key -CAcreateserial \
            -days 825 -sha256 -extfile leaf.ext -extensions localhost -out foreign.crt 2>/dev/null
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 825 -sha256 -extfile leaf.ext -extensions client -out client.crt 2>/dev/null
        openssl x509 -req -in client-other.csr -CA otherca.pem -CAkey otherca.key -CAcreateserial \
            -days 825 -sha256 -extfile leaf.ext -extensions client -out client-other.crt 2>/dev/null
        cat >>ca.cnf <<EOF
[ client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
        openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key \
            -startdate 20200101000000Z -enddate 20200131000000Z \
            -extensions client -in client-expired.csr -out client-expired.crt 2>/dev/null
        cat client.crt client.key >client-combined.pem
        rm -f ./*.csr
        chmod 644 ./*.key ./*.crt ./*.pem
        chmod 600 client*.key client-combined.pem
    ) || { echo "make_ca: openssl failed in $d" >&2; return 1; }
}

# test_ca -- make (once) and print the directory of the test's PKI, $T/ca.
test_ca() {
    make_ca "$T/ca" >&2 || return 1
    echo "$T/ca"
}

# ---------------------------------------------------------------------------
# Maildirs
# ---------------------------------------------------------------------------
# maildir_count DIR -- number of messages in the Maildir DIR (new/ and cur/).
maildir_count() {
    local d=$1
    find "$d/new" "$d/cur" -maxdepth 1 -type f 2>/dev/null | wc -l | tr -d ' '
}

# maildir_files DIR -- paths of the messages in DIR, oldest first.
maildir_files() {
    local d=$1
    find "$d/new" "$d/cur" -maxdepth 1 -type f -printf '%T@ %p\n' 2>/dev/null | sort -n | cut -d' ' -f2-
}

# wait_maildir DIR N [TIMEOUT_S] -- wait (bounded, default 15 s) until the
# Maildir DIR holds at least N messages.  Returns 1 on timeout.
wait_maildir() {
    local d=$1 n=$2 timeout=${3:-15} deadline
    deadline=$(( $(_am_now_ms) + timeout * 1000 ))
    while [ "$(maildir_count "$d")" -lt "$n" ]; do
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "wait_maildir: $d has $(maildir_count "$d") of $n messages after ${timeout}s" >&2
            return 1
        fi
        sleep 0.05
    done
    return 0
}

# ---------------------------------------------------------------------------
# Scripted Office 365 server
# ---------------------------------------------------------------------------
# start_o365 [--name NAME] [o365_server.py options...]
#   Starts o365_server.py in the background on 127.0.0.1 (a free port unless
#   --port is given), waits until it listens, and prints its port.
#   Its files are in $T/NAME (NAME defaults to "o365"; each server needs its
#   own name):  Maildir/  (accepted messages)  envelope/  transcript.log
#   server.out (stderr)  pid  port.
#   Defaults added unless given: --cert/--key from $T/ca (made on demand;
#   not with --no-tls), --maildir, --log, --pidfile, --portfile,
#   --max-lifetime $ALERTMAIL_SERVER_LIFETIME.
#   --fault closed starts nothing and prints closed_port.
start_o365() {
    local name=o365
    if [ "${1:-}" = --name ]; then name=$2; shift 2; fi
    local dir=$T/$name a has_cert=0 no_tls=0 closed=0 prev=""
    for a in "$@"; do
        case $a in
            --cert|--cert=*) has_cert=1 ;;
            --no-tls) no_tls=1 ;;
            --fault=closed) closed=1 ;;
            closed) [ "$prev" = --fault ] && closed=1 ;;
        esac
        prev=$a
    done
    if [ "$closed" = 1 ]; then
        closed_port
        return
    fi
    mkdir "$dir" || { echo "start_o365: $dir exists; give each server its own --name" >&2; return 1; }
    local -a args=(--host 127.0.0.1 --port 0 --portfile "$dir/port" --pidfile "$dir/pid"
        --maildir "$dir/Maildir" --log "$dir/transcript.log"
        --max-lifetime "$ALERTMAIL_SERVER_LIFETIME")
    if [ "$has_cert" = 0 ] && [ "$no_tls" = 0 ]; then
        local ca
        ca=$(test_ca) || return 1
        args+=(--cert "$ca/localhost.crt" --key "$ca/localhost.key")
    fi
    "$ALERTMAIL_PYTHON" "$ALERTMAIL_O365_SERVER" "${args[@]}" "$@" \
        </dev/null >"$dir/server.out" 2>&1 &
    local pid=$!
    _am_track o365 "$name" "$pid"
    local deadline=$(( $(_am_now_ms) + ALERTMAIL_START_TIMEOUT * 1000 ))
    while [ ! -s "$dir/port" ]; do
        if ! pid_alive "$pid"; then
            echo "start_o365: server exited during start-up:" >&2
            sed 's/^/  /' "$dir/server.out" >&2
            return 1
        fi
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "start_o365: no port after ${ALERTMAIL_START_TIMEOUT}s" >&2
            stop_pid "$pid"
            return 1
        fi
        sleep 0.02
    done
    local port host
    port=$(cat "$dir/port")
    host=$(sed -n 's/^listening on \(.*\) port .*/\1/p' "$dir/server.out" | head -n 1)
    wait_port "${host:-127.0.0.1}" "$port" 5 || return 1
    echo "$port"
}

# start_token_server [--name N] [token_server.py options] -> port
#   An OAuth2 token endpoint on loopback, HTTPS with the test CA's localhost
#   certificate (see token_server.py). Its log is $T/N/requests.log; unless
#   given, issued tokens go to $T/N/tokens (for o365_server.py --token-file).
start_token_server() {
    local name=tokens
    if [ "${1:-}" = --name ]; then name=$2; shift 2; fi
    local dir=$T/$name ca
    mkdir "$dir" || { echo "start_token_server: $dir exists; give each its own --name" >&2; return 1; }
    ca=$(test_ca) || return 1
    : >"$dir/requests.log"
    local -a args=(--host 127.0.0.1 --port 0 --portfile "$dir/port" --pidfile "$dir/pid"
        --cert "$ca/localhost.crt" --key "$ca/localhost.key" --log "$dir/requests.log"
        --max-lifetime "$ALERTMAIL_SERVER_LIFETIME")
    case " $* " in *" --tokens "*|*" --tokens="*) ;; *) args+=(--tokens "$dir/tokens") ;; esac
    "$ALERTMAIL_PYTHON" "$ALERTMAIL_IT_DIR/token_server.py" "${args[@]}" "$@" \
        </dev/null >"$dir/server.out" 2>&1 &
    local pid=$!
    _am_track tokens "$name" "$pid"
    local deadline=$(( $(_am_now_ms) + ALERTMAIL_START_TIMEOUT * 1000 ))
    while [ ! -s "$dir/port" ]; do
        if ! pid_alive "$pid"; then
            echo "start_token_server: server exited during start-up:" >&2
            sed 's/^/  /' "$dir/server.out" >&2
            return 1
        fi
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "start_token_server: no port after ${ALERTMAIL_START_TIMEOUT}s" >&2
            stop_pid "$pid"
            return 1
        fi
        sleep 0.02
    done
    local port
    port=$(cat "$dir/port")
    wait_port 127.0.0.1 "$port" 5 || return 1
    echo "$port"
}

# start_tls_server NAME [openssl s_server options] -- a TLS server from the first
# byte (openssl s_server, test CA's localhost certificate) on 127.0.0.1, for
# handshakes only (it speaks no SMTP).  Its output is $T/NAME/server.out.
# Prints the port.
start_tls_server() {
    local name=$1 dir=$T/$1 ca port pid; shift
    mkdir "$dir" || { echo "start_tls_server: $dir exists" >&2; return 1; }
    ca=$(test_ca) || return 1
    port=$(free_port) || return 1
    timeout "$ALERTMAIL_SERVER_LIFETIME" openssl s_server -accept "127.0.0.1:$port" \
        -cert "$ca/localhost.crt" -key "$ca/localhost.key" -quiet "$@" \
        </dev/null >"$dir/server.out" 2>&1 &
    pid=$!
    _am_track tls "$name" "$pid"
    wait_port 127.0.0.1 "$port" "$ALERTMAIL_START_TIMEOUT" || { sed 's/^/  /' "$dir/server.out" >&2; return 1; }
    echo "$port"
}

# o365_transcript NAME -- path of the transcript of server NAME.
o365_transcript() {
    echo "$T/${1:-o365}/transcript.log"
}

# transcript_count NAME ERE -- how many transcript lines of o365 server NAME
# match ERE, e.g. transcript_count o365 ' C: AUTH'   (0 if none).
transcript_count() {
    local n
    n=$(grep -Ec -- "$2" "$T/$1/transcript.log" 2>/dev/null) || true
    echo "${n:-0}"
}

# wait_match FILE ERE [TIMEOUT_S] -- wait (bounded, default 10 s) until a line
# of FILE matches ERE.  Returns 1 on timeout.
wait_match() {
    local f=$1 re=$2 timeout=${3:-10} deadline
    deadline=$(( $(_am_now_ms) + timeout * 1000 ))
    until grep -Eq -- "$re" "$f" 2>/dev/null; do
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "wait_match: no line of $f matches /$re/ after ${timeout}s" >&2
            return 1
        fi
        sleep 0.05
    done
}

# ---------------------------------------------------------------------------
# Private Postfix instances
# ---------------------------------------------------------------------------
# A private instance lives in $T/NAME:
#   conf/{main.cf,master.cf[,sasl/smtpd.conf,sasldb2]}   config_directory
#   queue/  data/                                        queue and data directories
#   Maildir/                                             every accepted message, any domain
#   postfix.log                                          the instance's log (maillog_file)
#   port  pid
# Nothing outside $T is read or written except the stock files of the postfix
# package (/etc/postfix/postfix-files etc. via meta_directory); /etc/postfix
# needs no main.cf: postfix -c works as root without alternate_config_directories.
# Delivery: virtual(8) to $T/NAME/Maildir/ as user nobody; every domain is a
# virtual mailbox domain and all other transports are error:, so nothing ever
# leaves the machine.

_pf_write_config() {
    local name=$1 port=$2 dir=$T/$1 ipv6=$3
    local uid gid
    uid=$(id -u nobody) && gid=$(id -g nobody) || return 1
    mkdir -p "$dir/conf" "$dir/queue" "$dir/data" "$dir/Maildir" || return 1
    chown "$uid:$gid" "$dir/Maildir"
    chown postfix "$dir/data"
    chmod 755 "$dir" "$dir/conf" "$dir/Maildir"
    local listen_ifaces="127.0.0.1" protocols=ipv4
    if [ "$ipv6" = 1 ]; then listen_ifaces="127.0.0.1, [::1]"; protocols=all; fi
    cat >"$dir/conf/main.cf" <<EOF
# Private Postfix instance for alertmail integration tests ($name).
compatibility_level = 3.6
config_directory = $dir/conf
queue_directory = $dir/queue
data_directory = $dir/data
meta_directory = /etc/postfix
maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir
syslog_name = postfix-$name
myhostname = $name.test.invalid
mydomain = test.invalid
myorigin = \$myhostname
inet_interfaces = $listen_ifaces
inet_protocols = $protocols
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_banner = \$myhostname ESMTP alertmail-test-$name
biff = no
append_dot_mydomain = no
smtputf8_enable = yes
smtpd_peername_lookup = no
alias_maps =
alias_database =
mydestination =
relay_domains =
relayhost =
# Every domain is delivered locally into one Maildir; nothing is relayed out.
virtual_mailbox_domains = static:all
virtual_mailbox_base = $dir
virtual_mailbox_maps = static:Maildir/
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = 1
default_transport = error:outbound delivery disabled in test instance
relay_transport = error:outbound delivery disabled in test instance
local_transport = error:local delivery disabled in test instance
message_size_limit = 52428800
virtual_mailbox_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
smtpd_client_connection_rate_limit = 0
smtpd_timeout = 60s
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
EOF
    {
        echo "# service type private unpriv chroot wakeup maxproc command"
        echo "127.0.0.1:$port inet n - n - - smtpd"
        if [ "$ipv6" = 1 ]; then echo "[::1]:$port inet n - n - - smtpd"; fi
        cat <<'EOF'
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    } >"$dir/conf/master.cf"
}

# _pf_start NAME PORT -- create directories, start master (bounded lifetime)
# and record its PID.  Returns non-zero if it did not come up.
_pf_start() {
    local name=$1 port=$2 dir=$T/$1
    # Postfix waits until main.cf is older than the current second before it
    # trusts it (up to ~2 s); back-date the freshly written files.
    touch -d "@$(( $(date +%s) - 10 ))" "$dir/conf"/*.cf
    if ! timeout 30 /usr/sbin/postfix -c "$dir/conf" check >"$dir/check.out" 2>&1; then
        echo "_pf_start: postfix check failed for $name:" >&2
        sed 's/^/  /' "$dir/check.out" "$dir/postfix.log" >&2 2>/dev/null
        return 1
    fi
    # -w: wait until initialised; -e: exit by itself after the lifetime bound.
    if ! MAIL_CONFIG=$dir/conf timeout 30 "$PF_DAEMON_DIR/master" -c "$dir/conf" -w \
        -e "$ALERTMAIL_SERVER_LIFETIME" >"$dir/master.out" 2>&1 </dev/null; then
        echo "_pf_start: master failed to start for $name:" >&2
        sed 's/^/  /' "$dir/master.out" "$dir/postfix.log" >&2 2>/dev/null
        return 1
    fi
    local pid="" deadline=$(( $(_am_now_ms) + ALERTMAIL_START_TIMEOUT * 1000 ))
    while [ -z "$pid" ]; do
        pid=$(awk 'NR == 1 { print $1 }' "$dir/queue/pid/master.pid" 2>/dev/null)
        if [ -z "$pid" ] && [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "_pf_start: no master.pid for $name" >&2
            return 1
        fi
        [ -n "$pid" ] || sleep 0.05
    done
    _am_track postfix "$name" "$pid"
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
    wait_port 127.0.0.1 "$port" "$ALERTMAIL_START_TIMEOUT" || {
        sed 's/^/  /' "$dir/postfix.log" >&2
        return 1
    }
}

# start_postfix_relay [NAME] -- a private Postfix instance that is an anonymous
# relay on 127.0.0.1 (and ::1 if present): no TLS, no AUTH, accepts mail for
# any domain from anyone and delivers it into $T/NAME/Maildir.
# NAME defaults to "relay".  Prints the port.
start_postfix_relay() {
    _pf_instance start_postfix_relay "${1:-relay}" _pf_conf_relay
}

# _pf_instance WHAT NAME CONFIGURE [ARGS...] -- a private Postfix instance NAME on a free port:
# the common config, then `CONFIGURE DIR ARGS...` adds its own; three tries (a port taken
# meanwhile).  Prints the port.
_pf_instance() {
    local what=$1 name=$2 conf=$3 port ipv6=0 try
    shift 3
    [ -e "$T/$name" ] && { echo "$what: $T/$name exists" >&2; return 1; }
    has_ipv6_loopback && ipv6=1
    for try in 1 2 3; do
        rm -rf "${T:?}/$name"
        port=$(free_port) || return 1
        _pf_write_config "$name" "$port" "$ipv6" || return 1
        "$conf" "$T/$name" "$@" || return 1
        if _pf_start "$name" "$port"; then
            echo "$port"
            return 0
        fi
        stop_server "$name" 2>/dev/null
        echo "$what: attempt $try failed" >&2
    done
    return 1
}

# _pf_conf_relay DIR -- an anonymous relay: no TLS, no AUTH.
_pf_conf_relay() {
    cat >>"$1/conf/main.cf" <<'EOF'
# Anonymous relay: no TLS, no AUTH.
smtpd_tls_security_level = none
smtpd_sasl_auth_enable = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
EOF
}

# start_postfix_submission USER PASSWORD [NAME] -- a private Postfix instance
# that is a submission server: STARTTLS required (test CA's localhost cert,
# TLS 1.2+), SASL AUTH PLAIN and LOGIN offered only after STARTTLS (Cyrus
# sasldb under $T/NAME/conf), mail accepted only from authenticated clients,
# delivered into $T/NAME/Maildir.  The SASL user is USER as given (an
# address such as alerts@example.com is fine).  NAME defaults to "submission".
# Prints the port.
start_postfix_submission() {
    local ca
    ca=$(test_ca) || return 1
    _pf_instance start_postfix_submission "${3:-submission}" _pf_conf_submission "$1" "$2" \
        "${3:-submission}" "$ca"
}

# _pf_conf_submission DIR USER PASSWORD NAME CA -- STARTTLS required, SASL AUTH (PLAIN, LOGIN)
# after TLS for USER with PASSWORD only.
_pf_conf_submission() {
    local dir=$1 user=$2 pass=$3 name=$4 ca=$5
    mkdir -p "$dir/conf/sasl"
    chmod 755 "$dir/conf/sasl"
    # A realm-less user: smtpd_sasl_local_domain is empty, and the entry is
    # made for realm $myhostname, which is what Cyrus uses by default.
    printf '%s' "$pass" | saslpasswd2 -f "$dir/conf/sasl/sasldb2" -p -c \
        -u "$name.test.invalid" "$user" || { echo "saslpasswd2 failed" >&2; return 1; }
    chown postfix "$dir/conf/sasl/sasldb2"
    chmod 640 "$dir/conf/sasl/sasldb2"
    cat >"$dir/conf/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $dir/conf/sasl/sasldb2
EOF
    cat >>"$dir/conf/main.cf" <<EOF
# Submission: STARTTLS required, AUTH only after TLS, only authenticated clients.
smtpd_tls_security_level = encrypt
smtpd_tls_chain_files = $ca/localhost.key, $ca/localhost.crt
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_auth_only = yes
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $dir/conf/sasl
smtpd_sasl_local_domain =
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_sasl_authenticated_header = yes
broken_sasl_auth_clients = no
smtpd_client_restrictions =
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
EOF
}

# start_postfix_mtls [NAME] -- a private Postfix instance that takes mail only from
# clients with a certificate signed by the test CA (mutual TLS): STARTTLS required (the
# test CA's localhost cert, TLS 1.2+), a trusted client certificate required
# (smtpd_tls_req_ccert; without one the session gets 421 4.7.1 after the handshake), no
# AUTH; the Received header and $T/NAME/postfix.log name the client certificate.
# NAME defaults to "mtls".  Prints the port.
start_postfix_mtls() {
    local ca
    ca=$(test_ca) || return 1
    _pf_instance start_postfix_mtls "${1:-mtls}" _pf_conf_mtls "$ca"
}

# _pf_conf_mtls DIR CA -- STARTTLS and a client certificate signed by CA required, no AUTH.
_pf_conf_mtls() {
    cat >>"$1/conf/main.cf" <<EOF
# Mutual TLS: STARTTLS and a client certificate from the test CA required, no AUTH.
smtpd_tls_security_level = encrypt
smtpd_tls_chain_files = $2/localhost.key, $2/localhost.crt
smtpd_tls_CAfile = $2/ca.pem
smtpd_tls_req_ccert = yes
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = no
smtpd_client_restrictions =
smtpd_relay_restrictions = permit_tls_all_clientcerts, reject
smtpd_recipient_restrictions = permit_tls_all_clientcerts, reject
EOF
}

# postfix_maildir NAME -- the Maildir of a Postfix instance.
postfix_maildir() {
    echo "$T/$1/Maildir"
}
# o365_maildir NAME -- the Maildir of an o365 server.
o365_maildir() {
    echo "$T/${1:-o365}/Maildir"
}

# ---------------------------------------------------------------------------
# The daemon (alertmail run)
# ---------------------------------------------------------------------------
# These need $ALERTMAIL (the built program).  A daemon is a child of the test
# script (so that its exit status can be collected), recorded for cleanup like
# a server (kind "daemon": TERM, bounded wait, KILL) and forgotten once reaped.

# start_daemon NAME CONFIG [ENV=VALUE...] -- runs `env ENV... $ALERTMAIL -c
# CONFIG -v run` in the background, stderr appended to $T/NAME.log, and waits
# (bounded) for its "running:" line.  Sets DAEMON_PID.  Returns 1 if it exited
# or did not come up in time.  Call it directly, not in $(...).
# _am_running_count NAME -- how many "running" lines daemon NAME has logged; 0 while its log
# does not exist yet (grep -c then prints nothing, and an empty string is no number to test).
_am_running_count() {
    local n
    n=$(grep -c 'daemon: alertmail .* running:' "$T/$1.log" 2>/dev/null) || true
    echo "${n:-0}"
}

# RUN_OPTS: the options for `alertmail run` here: --allow-root when this runs as root (the
# tests' daemons run as whoever runs the tests; the daemon refuses root unless told).
RUN_OPTS=()
[ "$(id -u)" -ne 0 ] || RUN_OPTS=(--allow-root)

start_daemon() {
    local name=$1 conf=$2 before deadline; shift 2
    before=$(_am_running_count "$name")
    # shellcheck disable=SC2086  # the wrapper is a command line (e.g. valgrind and options)
    env "$@" ${ALERTMAIL_DAEMON_WRAPPER:-} "$ALERTMAIL" -c "$conf" -v run "${RUN_OPTS[@]}" </dev/null \
        >>"$T/$name.out" 2>>"$T/$name.log" &
    DAEMON_PID=$!
    _am_track daemon "$name" "$DAEMON_PID"
    echo "$DAEMON_PID" >"$T/$name.pid"
    deadline=$(( $(_am_now_ms) + ALERTMAIL_START_TIMEOUT * 1000 ))
    while [ "$(_am_running_count "$name")" -le "$before" ]; do
        if ! pid_alive "$DAEMON_PID"; then
            echo "start_daemon: $name exited during start-up" >&2
            reap_daemon "$name"
            return 1
        fi
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "start_daemon: $name not running after ${ALERTMAIL_START_TIMEOUT}s" >&2
            return 1
        fi
        sleep 0.02
    done
}

# daemon_pid NAME -- the PID of the running daemon NAME.
daemon_pid() {
    server_pid "$1"
}

# reap_daemon NAME -- collect the exit status of daemon NAME (DAEMON_RC) once it
# is gone, and forget it.
reap_daemon() {
    local pid
    pid=$(server_pid "$1") || return 0
    wait "$pid" 2>/dev/null
    DAEMON_RC=$?
    awk -v n="$1" '$2 != n' "$_AM_SERVERS" >"$_AM_SERVERS.new" && mv "$_AM_SERVERS.new" "$_AM_SERVERS"
}

# stop_daemon NAME [TIMEOUT_S] -- SIGTERM, wait up to TIMEOUT_S (default 12) for
# the daemon to exit.  Sets DAEMON_RC (its exit status) and DAEMON_STOP_MS (how
# long it took).  After the timeout: SIGKILL, DAEMON_RC=timeout, returns 1.
stop_daemon() {
    local name=$1 timeout=${2:-12} pid start deadline
    pid=$(server_pid "$name") || { echo "stop_daemon: no daemon $name" >&2; return 1; }
    start=$(_am_now_ms)
    deadline=$(( start + timeout * 1000 ))
    kill -TERM "$pid" 2>/dev/null
    while pid_alive "$pid" && [ "$(_am_now_ms)" -lt "$deadline" ]; do sleep 0.02; done
    # shellcheck disable=SC2034  # for the caller
    DAEMON_STOP_MS=$(( $(_am_now_ms) - start ))
    if pid_alive "$pid"; then
        echo "stop_daemon: $name (PID $pid) still running after ${timeout}s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
        reap_daemon "$name"
        # shellcheck disable=SC2034  # for the caller
        DAEMON_RC=timeout
        return 1
    fi
    reap_daemon "$name"
}

# kill_daemon NAME -- SIGKILL the daemon and reap it.
kill_daemon() {
    local pid
    pid=$(server_pid "$1") || return 0
    kill -KILL "$pid" 2>/dev/null
    reap_daemon "$1"
}

# submit_alerts SPOOL N PREFIX [EXTRA_YAML] -- N alerts with the ids PREFIX-00000,
# PREFIX-00001, ... written into SPOOL/tmp/ and renamed into SPOOL/new/ the way
# writers do, by one Python process.  EXTRA_YAML (e.g. "channel: ops") is added
# to each.
submit_alerts() {
    "$ALERTMAIL_PYTHON" - "$@" <<'PY'
import os, sys
spool, n, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
extra = sys.argv[4] + "\n" if len(sys.argv) > 4 and sys.argv[4] else ""
for i in range(n):
    aid = "%s-%05d" % (prefix, i)
    tmp = os.path.join(spool, "tmp", aid)
    with open(tmp, "w") as f:
        f.write("id: %s\ntitle: test alert %d of %s\nseverity: warning\nsource: host%d\n%s"
                % (aid, i, prefix, i % 7, extra))
    os.rename(tmp, os.path.join(spool, "new", aid))
PY
    local rc=$?
    # shellcheck disable=SC2012 # a listing for a human
    [ $rc -eq 0 ] || diag "submit_alerts: failed ($rc): $(ls -la "$1" "$1/tmp" "$1/new" 2>&1 | tr '\n' '|')"
    return $rc
}

# spool_count SPOOL DIR -- how many files SPOOL/DIR holds (dot-files not counted).
spool_count() {
    find "$1/$2" -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null | wc -l | tr -d ' '
}

# wait_spool_idle SPOOL [TIMEOUT_S] -- wait (bounded, default 15 s) until new/,
# active/, deferred/ and meta/ of SPOOL are empty.  Returns 1 on timeout.
wait_spool_idle() {
    local s=$1 timeout=${2:-15} deadline d n
    deadline=$(( $(_am_now_ms) + timeout * 1000 ))
    while :; do
        n=0
        for d in new active deferred meta; do n=$(( n + $(spool_count "$s" "$d") )); done
        [ "$n" -eq 0 ] && return 0
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "wait_spool_idle: $n files left in $s after ${timeout}s" >&2
            return 1
        fi
        sleep 0.05
    done
}

# count_matches FILE ERE -- lines of FILE matching ERE (0 if none or no file).
count_matches() {
    local n
    n=$(grep -Ec -- "$2" "$1" 2>/dev/null) || true
    echo "${n:-0}"
}

# wait_count FILE ERE N [TIMEOUT_S] -- wait (bounded, default 10 s) until at least
# N lines of FILE match ERE.  Returns 1 on timeout.
wait_count() {
    local f=$1 re=$2 n=$3 timeout=${4:-10} deadline
    deadline=$(( $(_am_now_ms) + timeout * 1000 ))
    while [ "$(count_matches "$f" "$re")" -lt "$n" ]; do
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "wait_count: $(count_matches "$f" "$re") of $n lines of $f match /$re/ after ${timeout}s" >&2
            return 1
        fi
        sleep 0.05
    done
}

# maildir_alert_ids DIR -- the alert id of every message in the Maildir DIR,
# from its Message-ID <alert.ID@domain>, one line per message (unsorted).
maildir_alert_ids() {
    find "$1/new" "$1/cur" -maxdepth 1 -type f -print0 2>/dev/null |
        xargs -0 -r grep -h -i -m 1 '^Message-ID:' |
        sed -n 's/^[Mm][Ee][Ss][Ss][Aa][Gg][Ee]-[Ii][Dd]: *<alert\.\([^@]*\)@.*/\1/p'
}

# postfix_queue_count NAME -- messages in the queue of Postfix instance NAME
# (not yet delivered into its Maildir).
postfix_queue_count() {
    find "$T/$1/queue/maildrop" "$T/$1/queue/incoming" "$T/$1/queue/active" \
        "$T/$1/queue/deferred" "$T/$1/queue/hold" -type f 2>/dev/null | wc -l | tr -d ' '
}

# wait_postfix_idle NAME [TIMEOUT_S] -- wait (bounded, default 15 s) until the
# queue of Postfix instance NAME is empty.  Returns 1 on timeout.
wait_postfix_idle() {
    local name=$1 timeout=${2:-15} deadline
    deadline=$(( $(_am_now_ms) + timeout * 1000 ))
    while [ "$(postfix_queue_count "$name")" -gt 0 ]; do
        if [ "$(_am_now_ms)" -ge "$deadline" ]; then
            echo "wait_postfix_idle: $(postfix_queue_count "$name") messages in $name's queue after ${timeout}s" >&2
            return 1
        fi
        sleep 0.05
    done
}

# ---------------------------------------------------------------------------
# Failover cases (faults.test, hostile.test): `alertmail -v -v test` against a
# faulty primary (a scripted server, a closed port, a bad certificate) with a
# healthy secondary (the shared Postfix relay, or a scripted server per case).
# ---------------------------------------------------------------------------
# failover_init -- call first: finds $ALERTMAIL (the built program), makes the
# test CA ($CA), the user $AM_USER with $PASS in $T/password ($BADPASS in
# $T/badpassword), the recipient $RCPT, and starts the Postfix relay shared by
# the relay-backed cases (RELAY_PORT; empty without Postfix, and then scripted
# secondaries stand in; a failure with ALERTMAIL_REQUIRE_ALL=1).  RELAY_CASES
# counts the cases that used the relay.  failover_init norelay starts no relay.
failover_init() {
    : "${top_srcdir:=$(cd "$ALERTMAIL_IT_DIR/../.." && pwd)}"
    if [ -z "${ALERTMAIL:-}" ]; then
        if [ -n "${top_builddir:-}" ] && [ -x "$top_builddir/alertmail" ]; then
            ALERTMAIL=$top_builddir/alertmail
        elif [ -x ./alertmail ]; then
            ALERTMAIL=$(pwd)/alertmail
        else
            bail_out "alertmail not built: set ALERTMAIL or run from the build directory"
        fi
    fi
    [ -x "$ALERTMAIL" ] || bail_out "$ALERTMAIL is not executable"
    ALERTMAIL_DATADIR=$top_srcdir
    export ALERTMAIL_DATADIR
    unset ALERTMAIL_CONFIG
    CA=$(test_ca) || bail_out "make_ca failed"
    AM_USER=alerts@contoso.example
    PASS='Fault-Secret-4217'
    BADPASS='Wrong-Guess-8093'
    RCPT=oncall@example.net
    printf '%s\n' "$PASS" >"$T/password"
    printf '%s\n' "$BADPASS" >"$T/badpassword"
    chmod 600 "$T/password" "$T/badpassword"
    local s pf_missing
    RELAY_PORT=""
    RELAY_CASES=0
    [ "${1:-}" = norelay ] && return 0
    pf_missing=""
    if [ "$(id -u)" != 0 ]; then
        pf_missing="a private Postfix instance needs root"
    elif [ ! -x /usr/sbin/postfix ] || [ ! -x "$PF_DAEMON_DIR/master" ]; then
        pf_missing="postfix not installed"
    fi
    if [ -z "$pf_missing" ]; then
        s=$(_am_now_ms)
        RELAY_PORT=$(start_postfix_relay relay)
        ok $? "Postfix relay for the secondary starts (port ${RELAY_PORT:-none}, $(( $(_am_now_ms) - s )) ms)" ||
            { diag_file "$T/relay/postfix.log"; bail_out "no relay"; }
    elif [ "${ALERTMAIL_REQUIRE_ALL:-0}" = 1 ]; then
        ok 1 "Postfix relay for the secondary: $pf_missing"
    else
        skip "Postfix relay as the secondary (scripted secondaries instead)" "$pf_missing"
    fi
}

# secret_forms PASSWORD -- the password as it could travel or be logged:
# plain, base64 (AUTH LOGIN's second response) and the AUTH PLAIN blob.
secret_forms() {
    printf '%s\n' "$1"
    printf '%s' "$1" | base64 -w0; echo
    printf '\0%s\0%s' "$AM_USER" "$1" | base64 -w0; echo
}

# secret_in FILE PASSWORD -- print the forms of PASSWORD found in FILE;
# true if there is one.
secret_in() {
    local f=$1 form found=1
    while IFS= read -r form; do
        [ -n "$form" ] || continue
        if grep -Fq -- "$form" "$f"; then echo "$form"; found=0; fi
    done < <(secret_forms "$2")
    return $found
}

# lacks_secret FILE PASSWORD DESC -- FILE exists and holds the password in no form.
lacks_secret() {
    local f=$1 pw=$2 desc=$3 hit
    if [ ! -f "$f" ]; then
        ok 1 "$desc"
        diag "$f: no such file"
        return 1
    fi
    if ! hit=$(secret_in "$f" "$pw"); then
        ok 0 "$desc"
        return 0
    fi
    ok 1 "$desc"
    diag "$f contains: $hit"
    return 1
}

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------
# server_yaml NAME [KEY=VALUE]... -- one server entry, keys in the order given.
server_yaml() {
    local name=$1 kv; shift
    echo "  $name:"
    for kv in "$@"; do
        echo "    ${kv%%=*}: ${kv#*=}"
    done
}

# primary_yaml NAME PORT [KEY=VALUE]... -- a STARTTLS + AUTH LOGIN server on
# localhost trusting the test CA.  KEY=VALUE replaces a default (or adds a
# key); KEY= removes it.
primary_yaml() {
    local name=$1 port=$2 kv k i found; shift 2
    local -a keys=(host port tls ca_file auth username password_file timeout)
    local -a vals=(localhost "$port" starttls "$CA/ca.pem" login "$AM_USER" "$T/password" 5s)
    for kv in "$@"; do
        k=${kv%%=*}
        found=0
        for i in "${!keys[@]}"; do
            if [ "${keys[$i]}" = "$k" ]; then vals[i]=${kv#*=}; found=1; fi
        done
        [ "$found" = 1 ] || { keys+=("$k"); vals+=("${kv#*=}"); }
    done
    local -a kvs=()
    for i in "${!keys[@]}"; do
        [ -n "${vals[$i]}" ] && kvs+=("${keys[$i]}=${vals[$i]}")
    done
    server_yaml "$name" "${kvs[@]}"
}

# plain_yaml NAME PORT -- an anonymous server without TLS on 127.0.0.1.
plain_yaml() {
    server_yaml "$1" host=127.0.0.1 port="$2" tls=none auth=none timeout=10s
}

# write_conf CASE "NAME, NAME..." -- $T/CASE.yaml: the server entries from
# stdin and channel c over the servers listed, in that order.
write_conf() {
    {
        echo "from: \"Alerts <$AM_USER>\""
        echo "servers:"
        cat
        echo "channels:"
        echo "  c:"
        echo "    servers: [$2]"
        echo "    to: [$RCPT]"
    } >"$T/$1.yaml"
}

# run_alertmail CASE -- `alertmail -v -v test --channel c` with $T/CASE.yaml,
# bounded.  Sets OUT (stdout), RC, EL (wall time, ms) and ID (the test
# notification's id); stdout and stderr are kept in $T/CASE.out and .err.
run_alertmail() {
    local c=$1 s e
    s=$(date +%s%N)
    timeout 30 "$ALERTMAIL" -v -v -c "$T/$c.yaml" test --channel c >"$T/$c.out" 2>"$T/$c.err"
    RC=$?
    e=$(date +%s%N)
    # shellcheck disable=SC2034  # for the caller, as OUT, RC and ID
    EL=$(( (e - s) / 1000000 ))
    OUT=$(cat "$T/$c.out")
    ID=$(sed -n 's/^sending test notification \([^ ]*\) .*/\1/p' "$T/$c.out")
    if [ "$RC" = 124 ]; then
        diag "$c: alertmail did not finish within 30 s"
    fi
}

# attempt_ms SERVER -- the time taken by SERVER's attempt, from the "[N ms]" at
# the end of its line in $OUT (a large number if there is no such line).
attempt_ms() {
    local n
    n=$(printf '%s\n' "$OUT" | sed -n "s/^$1 .* \[\([0-9]*\) ms\]\$/\1/p" | head -n 1)
    echo "${n:-999999}"
}

# messages_with_id DIR ID -- how many messages in Maildir DIR carry ID's Message-ID.
messages_with_id() {
    local n=0 f
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        grep -Fqi "Message-ID: <alert.$2@" "$f" && n=$((n + 1))
    done < <(maildir_files "$1")
    echo "$n"
}

# ---------------------------------------------------------------------------
# A failover case
# ---------------------------------------------------------------------------
# setup_case CASE SECONDARY PRIMARY_PORT [KEY=VALUE]...
#   SECONDARY: relay (the Postfix relay; a scripted server without Postfix) or
#   scripted.  Writes $T/CASE.yaml (primary, secondary) and sets SEC_MD (the
#   secondary's Maildir) and SEC_BEFORE (its message count now).
setup_case() {
    local c=$1 kind=$2 pport=$3 sport; shift 3
    if [ "$kind" = relay ] && [ -n "$RELAY_PORT" ]; then
        sport=$RELAY_PORT
        SEC_MD=$(postfix_maildir relay)
        SEC_KIND=relay
        RELAY_CASES=$((RELAY_CASES + 1))
    else
        sport=$(start_o365 --name "sec-$c" --no-tls --no-auth) || bail_out "$c: no secondary"
        SEC_MD=$(o365_maildir "sec-$c")
        SEC_KIND=scripted
    fi
    SEC_BEFORE=$(maildir_count "$SEC_MD")
    {
        primary_yaml primary "$pport" "$@"
        plain_yaml secondary "$sport"
    } | write_conf "$c" "primary, secondary"
}

# primary_reports CASE OUTCOME ERE -- the primary's attempt line shows OUTCOME
# and its detail matches ERE.
primary_reports() {
    like "$OUT" "^primary +localhost:[0-9]+ \(starttls\): $2: $3" "$1: primary reported as $2: ${3//\\/}" ||
        diag_file "$T/$1.err" 15
}

# fails_over CASE -- exit 0, delivered through the secondary, exactly one
# message (this notification) in the secondary's Maildir.
fails_over() {
    local c=$1 n
    is "$RC" 0 "$c: exit status 0"
    like "$OUT" "^secondary +127\.0\.0\.1:[0-9]+ \(none\): OK: accepted: 250 " "$c: secondary accepted"
    like "$OUT" "^delivered through secondary$" "$c: delivered through secondary"
    wait_maildir "$SEC_MD" $((SEC_BEFORE + 1)) 10
    n=$(messages_with_id "$SEC_MD" "$ID")
    is "$n/$(maildir_count "$SEC_MD")" "1/$((SEC_BEFORE + 1))" \
        "$c: the $SEC_KIND secondary's Maildir got exactly this one message"
}

# nothing_reached CASE SERVER -- the scripted server SERVER saw no AUTH, no
# MAIL, no password in any form, and saved nothing.
nothing_reached() {
    local c=$1 srv=$2 tr
    tr=$(o365_transcript "$srv")
    file_lacks "$tr" " C: AUTH" "$c: no AUTH reached the primary"
    file_lacks "$tr" " C: MAIL" "$c: no MAIL reached the primary"
    lacks_secret "$tr" "$PASS" "$c: the password is nowhere in the primary's transcript"
    is "$(maildir_count "$(o365_maildir "$srv")")" 0 "$c: the primary saved nothing"
}

# stderr_clean CASE [PASSWORD] -- alertmail printed transcripts at -v -v and
# the password appears in none of them.
stderr_clean() {
    local c=$1 pw=${2:-$PASS}
    file_has "$T/$c.err" "transcript with secondary" "$c: -v -v prints SMTP transcripts"
    lacks_secret "$T/$c.err" "$pw" "$c: the password is nowhere on alertmail's stderr"
}

# o365 NAME [options] -- start a scripted Office 365 server (user $AM_USER,
# password $PASS) and set PORT to its port.
o365() {
    local name=$1; shift
    # shellcheck disable=SC2034  # for the caller
    PORT=$(start_o365 --name "$name" --user "$AM_USER" --password "$PASS" "$@") ||
        bail_out "$name did not start"
}

# failover_relay_total -- the shared relay got one message per relay-backed case, and no more.
failover_relay_total() {
    if [ -n "$RELAY_PORT" ]; then
        sleep 0.3
        is "$(maildir_count "$(postfix_maildir relay)")" "$RELAY_CASES" \
            "relay: $RELAY_CASES messages in all, one per relay-backed case"
    fi
}

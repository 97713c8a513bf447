#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alert.h"
#include "conf.h"
#include "route.h"
#include "secret.h"
#include "tap.h"

static char dir[256];
static char path[512];
static struct buf errors;

static void write_file(const char *p, const char *text, mode_t mode)
{
	FILE *f = fopen(p, "w");

	if (f == NULL) {
		perror(p);
		exit(99);
	}
	fputs(text, f);
	must(fclose(f) == 0 && chmod(p, mode) == 0, "write %s", p);
}

static void write_bytes(const char *p, const char *data, size_t len, mode_t mode)
{
	FILE *f = fopen(p, "w");

	if (f == NULL || fwrite(data, 1, len, f) != len) {
		perror(p);
		exit(99);
	}
	must(fclose(f) == 0 && chmod(p, mode) == 0, "write %s", p);
}

/* secret_read_file on a file of len bytes of data; returns its result, the secret in *out. */
static int read_secret(const char *data, size_t len, char **out, struct err *e)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/secret", dir);
	write_bytes(p, data, len, 0600);
	return secret_read_file(p, out, e);
}

static void test_secret(void)
{
	char p[600], q[600];
	char *big = malloc(SECRET_MAX_SIZE + 2);
	char *out = (char *)1;
	struct err e, note;
	int rc;

	if (big == NULL)
		exit(99);
	memset(big, 'x', SECRET_MAX_SIZE + 1);
	rc = read_secret(big, SECRET_MAX_SIZE, &out, &e);
	ok(rc == 0 && out != NULL && strlen(out) == SECRET_MAX_SIZE,
	   "secret: a file of exactly %d bytes is read whole", SECRET_MAX_SIZE);
	secret_free(out);
	out = (char *)1;
	rc = read_secret(big, SECRET_MAX_SIZE + 1, &out, &e);
	ok(rc < 0 && out == NULL && strstr(e.msg, "larger than 65536 bytes") != NULL,
	   "secret: one byte over the limit is refused, nothing returned: %s", e.msg);
	/* The limit is on the file: a trailing line break past it does not make it fit. */
	big[SECRET_MAX_SIZE] = '\n';
	rc = read_secret(big, SECRET_MAX_SIZE + 1, &out, &e);
	ok(rc < 0 && out == NULL, "secret: the limit is on the file, line break included");
	free(big);

	rc = read_secret("pw\r\n", 4, &out, &e);
	is_str(rc == 0 ? out : NULL, "pw", "secret: a trailing CRLF is dropped");
	secret_free(out);
	rc = read_secret("pw\n\n", 4, &out, &e);
	is_str(rc == 0 ? out : NULL, "pw\n", "secret: only one trailing line break is dropped");
	secret_free(out);
	rc = read_secret("\n", 1, &out, &e);
	ok(rc < 0 && out == NULL && strstr(e.msg, "is empty") != NULL,
	   "secret: a line break alone is an empty password");
	rc = read_secret("", 0, &out, &e);
	ok(rc < 0 && strstr(e.msg, "is empty") != NULL, "secret: an empty file is refused");
	rc = read_secret("p\0w", 3, &out, &e);
	ok(rc < 0 && out == NULL && strstr(e.msg, "NUL byte") != NULL,
	   "secret: a NUL byte is refused");

	snprintf(p, sizeof(p), "%s/secret.fifo", dir);
	if (mkfifo(p, 0600) == 0) {
		/* Without O_NONBLOCK the open would wait for a writer: fail instead of hanging. */
		alarm(10);
		rc = secret_read_file(p, &out, &e);
		alarm(0);
		ok(rc < 0 && out == NULL && strstr(e.msg, "not a regular file") != NULL,
		   "secret: a FIFO is refused without blocking: %s", e.msg);
	} else {
		ok(0, "mkfifo %s", p);
	}
	rc = secret_read_file(dir, &out, &e);
	ok(rc < 0 && strstr(e.msg, "not a regular file") != NULL, "secret: a directory is refused");
	snprintf(p, sizeof(p), "%s/secret", dir);
	snprintf(q, sizeof(q), "%s/secret.link", dir);
	write_bytes(p, "pw", 2, 0600);
	if (symlink(p, q) == 0) {
		rc = secret_read_file(q, &out, &e);
		ok(rc < 0 && out == NULL, "secret: a symbolic link is refused: %s", e.msg);
	} else {
		ok(0, "symlink %s", q);
	}
	must(chmod(p, 0604) == 0, "chmod %s", p);
	rc = secret_read_file(p, &out, &e);
	ok(rc < 0 && strstr(e.msg, "(mode 0604)") != NULL && strstr(e.msg, "chmod 600") != NULL,
	   "secret: a file others may read is refused");

	setenv("ALERTMAIL_TEST_SECRET", "from env", 1);
	rc = secret_resolve(NULL, SECRET_ENV, "ALERTMAIL_TEST_SECRET", &out, &note, &e);
	is_str(rc == 0 ? out : NULL, "from env", "secret: from the environment");
	secret_free(out);
	setenv("ALERTMAIL_TEST_SECRET", "", 1);
	rc = secret_resolve(NULL, SECRET_ENV, "ALERTMAIL_TEST_SECRET", &out, &note, &e);
	ok(rc < 0 && out == NULL && strstr(e.msg, "ALERTMAIL_TEST_SECRET is not set") != NULL,
	   "secret: an empty variable counts as unset");
	rc = secret_resolve(NULL, SECRET_INLINE, "inline", &out, &note, &e);
	is_str(rc == 0 ? out : NULL, "inline", "secret: inline");
	secret_free(out);
	secret_free(NULL);
}

/* Writes the config (with the temp dir substituted for @D@) and loads it. */
static struct config *load(const char *text)
{
	struct buf b;
	struct config *c = NULL;

	buf_init(&b);
	for (const char *p = text; *p; p++) {
		if (strncmp(p, "@D@", 3) == 0) {
			buf_adds(&b, dir);
			p += 2;
		} else {
			buf_addc(&b, *p);
		}
	}
	write_file(path, b.data, 0600);
	buf_free(&b);
	buf_reset(&errors);
	config_load(path, &c, &errors);
	return c;
}

static int has(const char *needle)
{
	return errors.data != NULL && strstr(errors.data, needle) != NULL;
}

static size_t lines(void)
{
	size_t n = 0;

	for (const char *p = errors.data; p && *p; p++)
		n += *p == '\n';
	return n;
}

#define BASE                                                                                       \
	"templates: @D@/tpl\n"                                                                     \
	"from: \"Alerts <alerts@example.com>\"\n"

int main(void)
{
	struct config *c;
	char p[600];

	snprintf(dir, sizeof(dir), "/tmp/alertmail-test-config-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 99;
	snprintf(path, sizeof(path), "%s/alertmail.yaml", dir);
	snprintf(p, sizeof(p), "%s/tpl", dir);
	must(mkdir(p, 0700) == 0, "mkdir %s", p);
	snprintf(p, sizeof(p), "%s/tpl/default", dir);
	must(mkdir(p, 0700) == 0, "mkdir %s", p);
	snprintf(p, sizeof(p), "%s/tpl/default/subject.mustache", dir);
	write_file(p, "{{title}}", 0644);
	buf_init(&errors);

	test_secret();

	/* A full, valid config with the contract's keys. */
	snprintf(p, sizeof(p), "%s/o365.pass", dir);
	write_file(p, "s3cret\n", 0600);
	setenv("ALERTMAIL_TEST_PW", "envpw", 1);
	c = load(BASE "spool: @D@/spool\n"
	              "state: @D@/state\n"
	              "default_channel: ops\n"
	              "servers:\n"
	              "  office365:\n"
	              "    host: smtp.office365.com\n"
	              "    port: 587\n"
	              "    tls: starttls\n"
	              "    verify: true\n"
	              "    auth: login\n"
	              "    username: alerts@example.com\n"
	              "    password_file: @D@/o365.pass\n"
	              "    timeout: 20s\n"
	              "    max_connections: 3\n"
	              "    rate: 30/min\n"
	              "  relay:\n"
	              "    host: localhost\n"
	              "    port: 25\n"
	              "    tls: none\n"
	              "    auth: none\n"
	              "  env:\n"
	              "    host: ::1\n"
	              "    tls: tls\n"
	              "    username: u\n"
	              "    password_env: ALERTMAIL_TEST_PW\n"
	              "channels:\n"
	              "  ops:\n"
	              "    servers: [office365, relay]\n"
	              "    to: [ops@example.com, \"On Call <oncall@example.com>\"]\n"
	              "    template: default\n"
	              "    switch_back_after: 10m\n"
	              "routes:\n"
	              "  - match: { severity: critical }\n"
	              "    channel: ops\n"
	              "retry:\n"
	              "  initial: 1m\n"
	              "  max_interval: 1h\n"
	              "  give_up_after: 2d\n");
	ok(c != NULL, "valid config loads%s%s", c ? "" : ": ", c ? "" : errors.data);
	if (c != NULL) {
		const struct server *s = config_server(c, "office365");
		const struct server *r = config_server(c, "relay");
		const struct server *v = config_server(c, "env");
		const struct channel *ch = config_channel(c, "ops");
		ok(s && strcmp(s->password, "s3cret") == 0, "password_file read, newline dropped");
		ok(s && s->auth == AUTH_LOGIN && s->tls == TLS_STARTTLS && s->port == 587,
		   "server fields");
		ok(s && s->timeout_ms == 20000 && s->connect_timeout_ms == 20000 &&
		       s->total_timeout_ms == 300000,
		   "timeout 20s; connect_timeout follows it; total_timeout defaults to 5m");
		ok(s && s->max_connections == 3 && s->rate_count == 30 &&
		       s->rate_period_ms == 60000,
		   "max_connections and rate");
		ok(r && r->tls == TLS_NONE && r->auth == AUTH_NONE && r->port == 25, "relay");
		ok(v && v->port == 465 && v->auth == AUTH_AUTO && strcmp(v->password, "envpw") == 0,
		   "tls: tls defaults to port 465; a username alone: plain or login; password_env");
		ok(ch && ch->nservers == 2 && ch->servers[0] == s && ch->servers[1] == r,
		   "channel failover order");
		ok(ch && ch->nto == 2 && ch->switch_back_after_ms == 600000,
		   "channel to and switch back");
		ok(c->nroutes == 1 && c->routes[0].nchannels == 1, "route");
		ok(c->retry_initial_ms == 60000 && c->retry_max_interval_ms == 3600000 &&
		       c->retry_give_up_after_ms == 172800000,
		   "retry durations");
		ok(strcmp(c->default_channel, "ops") == 0, "default_channel");
		config_free(c);
	}

	/* Defaults. */
	c = load(BASE "servers:\n  relay: { host: 127.0.0.1, tls: none }\n"
	              "channels:\n  ops: { servers: [relay], to: a@example.com }\n");
	ok(c != NULL, "minimal config loads%s", c ? "" : errors.data);
	if (c != NULL) {
		const struct server *r = config_server(c, "relay");
		ok(r->verify && r->timeout_ms == 30000 && r->max_connections == 2,
		   "defaults: verify on, timeout 30s, 2 connections");
		ok(strcmp(c->default_channel, "ops") == 0, "the only channel is the default");
		ok(c->retry_initial_ms == 30000 && c->retry_max_interval_ms == 900000 &&
		       c->retry_give_up_after_ms == 86400000,
		   "retry defaults 30s, 15m, 24h");
		ok(strcmp(c->channels[0].template, "default") == 0, "template defaults to default");
		config_free(c);
	}
	c = load(BASE "servers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: [a@b.c] }\n");
	ok(c != NULL && c->servers[0].tls == TLS_STARTTLS && c->servers[0].port == 587,
	   "tls defaults to starttls on port 587");
	config_free(c);

	/* Every error in one run, each with file:line:column. */
	c = load(BASE "servers:\n"
	              "  a:\n"
	              "    hots: x\n"
	              "    port: 70000\n"
	              "    tls: sometimes\n"
	              "    timeout: 30\n"
	              "channels:\n"
	              "  ops:\n"
	              "    servers: [a, b]\n"
	              "    to: [\"bad address\"]\n"
	              "    template: nosuch\n"
	              "    switch_back: 5m\n");
	ok(c == NULL, "bad config refused");
	snprintf(p, sizeof(p), "%s:5:5: unknown key 'hots' in server 'a'; did you mean 'host'?",
	         path);
	ok(has(p), "unknown key with suggestion and position");
	ok(has("server 'a': 'host' is missing"), "missing host");
	snprintf(p, sizeof(p), "%s:6:11: port: expected a whole number from 1 to 65535", path);
	ok(has(p), "port out of range with position");
	snprintf(p, sizeof(p), "%s:7:10: tls: expected starttls, tls or none, got 'sometimes'",
	         path);
	ok(has(p), "bad tls value");
	snprintf(p, sizeof(p), "%s:8:14: timeout: expected a duration like 30s", path);
	ok(has(p), "duration without a unit");
	snprintf(p, sizeof(p), "%s:11:18: channel 'ops': unknown server 'b'; servers defined: a",
	         path);
	ok(has(p), "unknown server in a channel");
	ok(has("to: ") && has(":12:"), "bad recipient address");
	ok(has("unknown template 'nosuch'"), "unknown template");
	ok(has("unknown key 'switch_back' in channel 'ops'; did you mean 'switch_back_after'?"),
	   "channel key suggestion");
	ok(lines() >= 9, "all errors reported at once (%zu lines)", lines());
	diag("errors:\n%s", errors.data);

	/* Secrets. */
	snprintf(p, sizeof(p), "%s/open.pass", dir);
	write_file(p, "pw\n", 0644);
	c = load(BASE "servers:\n  s:\n    host: h\n    username: u\n"
	              "    password_file: @D@/open.pass\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("is accessible by group or others (mode 0644)") && has("chmod 600"),
	   "a password file readable by others is refused: %s", errors.data);
	write_file(p, "pw\n", 0640);
	c = load(BASE "servers:\n  s:\n    host: h\n    username: u\n"
	              "    password_file: @D@/open.pass\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("(mode 0640)"), "a password file readable by the group is refused");
	c = load(BASE "servers:\n  s:\n    host: h\n    username: u\n    password_file: @D@/none\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("No such file"), "a missing password file is an error");
	unsetenv("ALERTMAIL_NOPE");
	c = load(BASE "servers:\n  s:\n    host: h\n    username: u\n"
	              "    password_env: ALERTMAIL_NOPE\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("ALERTMAIL_NOPE is not set"), "an unset password_env is an error");
	c = load(BASE "servers:\n  s:\n    host: h\n    username: u\n    password: p\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && c->warnings.data && strstr(c->warnings.data, "discouraged"),
	   "an inline password works, with a warning");
	config_free(c);
	c = load(BASE "servers:\n  s:\n    host: h\n    username: u\n    password: p\n"
	              "    password_env: ALERTMAIL_TEST_PW\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("only one of"), "two password sources refused");
	c = load(BASE "servers:\n  s:\n    host: h\n    auth: login\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("needs a username") && has("needs a password"),
	   "auth without credentials refused");
	c = load(BASE "servers:\n  s:\n    host: h\n    tls: none\n"
	              "    username: u\n    password: p\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("in clear") && has("allow_plaintext_auth"),
	   "plaintext AUTH refused without allow_plaintext_auth");
	c = load(BASE "servers:\n  s:\n    host: h\n    tls: none\n"
	              "    username: u\n    password: p\n"
	              "    allow_plaintext_auth: true\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && strstr(c->warnings.data, "without TLS"),
	   "plaintext AUTH allowed when said, with a warning");
	config_free(c);

	/* Office 365's limits, said at once. */
	c = load(BASE "servers:\n  s:\n    host: smtp.office365.com\n    max_connections: 5\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && c->warnings.data && strstr(c->warnings.data, "3 connections per mailbox") &&
	       strstr(c->warnings.data, "set rate: 30/min"),
	   "Office 365 with 5 connections and no rate: two warnings");
	config_free(c);
	c = load(BASE "servers:\n  s:\n    host: SMTP.Office365.com\n    max_connections: 3\n"
	              "    rate: 60/min\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && c->warnings.data && strstr(c->warnings.data, "30 messages a minute") &&
	       strstr(c->warnings.data, ":7:11:") && !strstr(c->warnings.data, "connections"),
	   "Office 365 at 60/min: a warning at the rate's position");
	config_free(c);
	c = load(BASE "servers:\n  s:\n    host: smtp.office365.com\n    max_connections: 3\n"
	              "    rate: 1/2s\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && (c->warnings.data == NULL || c->warnings.data[0] == '\0'),
	   "Office 365 within its limits (1/2s, 3 connections): no warning");
	config_free(c);
	c = load(BASE "servers:\n  s:\n    host: smtp.example.com\n    max_connections: 10\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && (c->warnings.data == NULL || c->warnings.data[0] == '\0'),
	   "another server: no Office 365 warning");
	config_free(c);

	c = load(BASE "servers:\n  s:\n    host: h\n    auth: cram-md5\n"
	              "    username: u\n    password: p\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("auth: expected none, plain, login or xoauth2, got 'cram-md5'") &&
	       !has("auth is none") && lines() == 1,
	   "a bad auth value is one error, without follow-ups about it");

	/* Commands that send no mail read no secret: a password file they may not read, or an
	 * unset variable, does not stop them; the shape is still checked. */
	{
		struct config *nc = NULL;
		load(BASE "servers:\n  s:\n    host: h\n    username: u\n"
		          "    password_file: @D@/nonexistent.pass\n"
		          "channels:\n  ops: { servers: [s], to: a@b.c }\n");
		buf_reset(&errors);
		ok(config_load_flags(path, CONFIG_NO_SECRETS, &nc, &errors) == 0 && nc != NULL &&
		       nc->servers[0].password == NULL,
		   "CONFIG_NO_SECRETS: a password file is not read%s", errors.data ? errors.data : "");
		config_free(nc);
		nc = NULL;
		load(BASE "servers:\n  s:\n    host: h\n    username: u\n    password_file: relative\n"
		          "channels:\n  ops: { servers: [s], to: a@b.c }\n");
		buf_reset(&errors);
		ok(config_load_flags(path, CONFIG_NO_SECRETS, &nc, &errors) < 0,
		   "CONFIG_NO_SECRETS: a malformed password_file is still an error");
		config_free(nc);
	}

	/* Client certificates: the shape here; the files themselves in client_cert.test. */
	c = load(BASE "servers:\n  s:\n    host: h\n    client_key: @D@/k.pem\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has(":6:17: server 's': client_key needs client_cert"),
	   "client_key without client_cert refused with position: %s",
	   errors.data ? errors.data : "");
	c = load(BASE "servers:\n  s:\n    host: h\n    tls: none\n    client_cert: @D@/c.pem\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has(":7:18: server 's': client_cert needs TLS"),
	   "client_cert with tls: none refused with position");
	c = load(BASE "servers:\n  s:\n    host: h\n    client_cert: @D@/none.pem\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has(":6:18: server 's': client_cert: ") && has("none.pem: No such file"),
	   "a missing client_cert refused with position");
	{
		struct config *nc = NULL;
		buf_reset(&errors);
		ok(config_load_flags(path, CONFIG_NO_SECRETS, &nc, &errors) == 0 && nc != NULL &&
		       nc->servers[0].client_cert != NULL && nc->servers[0].client_key == NULL,
		   "CONFIG_NO_SECRETS: client certificate files are not read");
		config_free(nc);
	}

	c = load(BASE "max_alert_size: 64KiB\nservers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && c->max_alert_size == 65536, "max_alert_size: 64KiB");
	config_free(c);
	c = load(BASE "servers:\n  s: { host: h }\nchannels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && c->max_alert_size == 1048576, "max_alert_size defaults to 1 MiB");
	config_free(c);
	c = load(BASE "max_alert_size: 2\nservers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has(":3:17: max_alert_size: expected a size"), "max_alert_size below 1 KiB refused");
	c = load(BASE "max_alert_size: 1GiB\nservers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("max_alert_size: expected a size"), "max_alert_size with an unknown unit refused");

	/* Cross-field and shape errors. */
	c = load(BASE "default_channel: nope\nservers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n"
	              "routes:\n  - match: { severity: critical }\n    channel: other\n");
	ok(c == NULL && has("default_channel: unknown channel 'nope'") &&
	       has("route: unknown channel 'other'"),
	   "unknown channels in default_channel and routes");
	c = load(BASE "servers: [a, b]\nchannels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has(":3:10: servers: expected a mapping, got list"), "wrong shape: %s",
	   errors.data);
	c = load(BASE "servres: {}\n");
	ok(c == NULL && has("did you mean 'servers'?") && has("no channels are defined"),
	   "top-level typo suggestion");
	c = load(BASE "servers:\n  s: { host: \"h\\nX: y\" }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("control characters"), "line breaks in a host refused");
	c = load(BASE "spool: relative/path\nservers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c == NULL && has("spool: expected an absolute path"), "relative spool refused");
	c = load("a: [\n");
	ok(c == NULL && has(path), "YAML syntax error names the file: %s", errors.data);
	c = load(BASE "servers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c, template: ../x }\n");
	ok(c == NULL && has("must not contain '/'"), "template names cannot escape the directory");

	/* Timeouts are bounded, so that no later conversion can overflow. */
	c = load(BASE "servers:\n  s: { host: h, timeout: 1h, connect_timeout: 1h, "
	              "total_timeout: 1d }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	ok(c != NULL && c->servers[0].timeout_ms == 3600000 &&
	       c->servers[0].connect_timeout_ms == 3600000 &&
	       c->servers[0].total_timeout_ms == 86400000,
	   "timeouts at their bounds (1h, 1h, 1d) are accepted%s", c ? "" : errors.data);
	config_free(c);
	c = load(BASE "servers:\n  s:\n    host: h\n    timeout: 61m\n    connect_timeout: 2h\n"
	              "    total_timeout: 1d1ms\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	snprintf(p, sizeof(p), "%s:6:14: timeout: expected at most 1h, got '61m'", path);
	ok(c == NULL && has(p), "timeout over 1h refused with position: %s", errors.data);
	snprintf(p, sizeof(p), "%s:7:22: connect_timeout: expected at most 1h, got '2h'", path);
	ok(has(p), "connect_timeout over 1h refused with position");
	snprintf(p, sizeof(p), "%s:8:20: total_timeout: expected at most 1d, got '1d1ms'", path);
	ok(has(p), "total_timeout over 1d refused with position");

	/* Hosts: a name, an IPv4 or an IPv6 address; nothing that changes the URL. */
	{
		static const char *const good[] = {
		    "smtp.office365.com", "relay_1.internal", "localhost",
		    "mail.example.com.",  "127.0.0.1",        "::1",
		    "2001:db8::25",       "::ffff:192.0.2.1", "xn--bcher-kva.example",
		};
		static const char *const bad[] = {
		    "a@b",          "/",    "h/path",    "h?x",       "h#x",   "-h",
		    ".h",           "a..b", "1.2.3",     "999.1.1.1", "1:2:3", "'[::1]'",
		    "fe80::1%eth0", "h x",  "user:pw@h", "\"\"",      "h:25",
		};
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			char text[400];
			snprintf(text, sizeof(text),
			         BASE "servers:\n  s:\n    host: \"%s\"\n"
			              "channels:\n  ops: { servers: [s], to: a@b.c }\n",
			         good[i]);
			c = load(text);
			ok(c != NULL, "host '%s' accepted%s", good[i], c ? "" : errors.data);
			config_free(c);
		}
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char text[400];
			snprintf(text, sizeof(text),
			         BASE "servers:\n  s:\n    host: %s\n"
			              "channels:\n  ops: { servers: [s], to: a@b.c }\n",
			         bad[i]);
			c = load(text);
			snprintf(p, sizeof(p), "%s:5:11: host: expected a host name", path);
			ok(c == NULL && has(p) && lines() == 1, "host %s refused with position: %s",
			   bad[i], errors.data);
		}
	}

	/* Names of servers and channels: plain words, and nothing raw in the messages. */
	c = load(BASE "servers:\n  \"my relay\": { host: h }\n  ok-1.a_b: { host: h }\n"
	              "channels:\n  \"ops\\x01\": { servers: [ok-1.a_b], to: a@b.c }\n");
	snprintf(p, sizeof(p),
	         "%s:4:3: server name 'my relay': use only letters, digits, '-', '.' and '_'",
	         path);
	ok(c == NULL && has(p), "a server name with a space is refused with position: %s",
	   errors.data);
	snprintf(p, sizeof(p), "%s:7:3: channel name 'ops\\x01': use only", path);
	ok(has(p), "a channel name with a control character is refused, the character escaped");
	ok(strchr(errors.data, '\x01') == NULL, "no control character in the errors");
	c = load(BASE "servers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c, \"x\\ny\": 1 }\n");
	ok(c == NULL && has("unknown key 'x\\ny'") && lines() == 1,
	   "an unknown key's line break is escaped: %s", errors.data);

	/* Paths a daemon opens must be absolute. */
	snprintf(p, sizeof(p), "%s/o365.pass", dir);
	c = load(BASE "servers:\n  s:\n    host: h\n    username: u\n    password_file: o365.pass\n"
	              "    ca_file: ca.pem\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n");
	snprintf(p, sizeof(p), "%s:7:20: password_file: expected an absolute path, got 'o365.pass'",
	         path);
	ok(c == NULL && has(p), "a relative password_file is refused with position: %s",
	   errors.data);
	snprintf(p, sizeof(p), "%s:8:14: ca_file: expected an absolute path, got 'ca.pem'", path);
	ok(has(p), "a relative ca_file is refused with position");
	ok(lines() == 2, "and nothing else (%zu lines)", lines());

	/* Each list item's error points at that item, after an item that failed before it. */
	c = load(BASE "servers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [{x: 1}, nosuch], to: a@b.c }\n");
	snprintf(p, sizeof(p), "%s:6:28: channel 'ops': unknown server 'nosuch'", path);
	ok(c == NULL && has(p), "unknown server after a bad item: the right position: %s",
	   errors.data);
	c = load(BASE "servers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: [[a], \"bad address\"] }\n");
	snprintf(p, sizeof(p), "%s:6:34: to: ", path);
	ok(c == NULL && has(p) && lines() == 2,
	   "bad recipient after a bad item: the right position: %s", errors.data);
	c = load(BASE "servers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [1, s, s], to: a@b.c }\n");
	snprintf(p, sizeof(p), "%s:6:26: channel 'ops': server 's' is listed twice", path);
	ok(c == NULL && has(p), "a server listed twice: the second one's position: %s",
	   errors.data);
	c = load(BASE "servers:\n  s: { host: h }\n"
	              "channels:\n  ops: { servers: [s], to: a@b.c }\n"
	              "routes:\n  - channels: [{}, ops, nope]\n");
	snprintf(p, sizeof(p), "%s:8:25: route: unknown channel 'nope'", path);
	ok(c == NULL && has(p), "route channels: the unknown one's position: %s", errors.data);

	/* from and to are checked alike, wherever they are. */
	c = load("templates: @D@/tpl\nfrom: \"no at sign\"\nservers:\n  s: { host: h }\n"
	         "channels:\n  ops: { servers: [s], to: \"x y\", from: \"<bad\" }\n");
	ok(c == NULL && has(":2:7: from: ") && has(":6:28: to: ") && has(":6:41: from: ") &&
	       lines() == 3,
	   "bad from (top and channel) and to, each with its position: %s", errors.data);

	ok(config_edit_distance("hots", "host") == 2 && config_edit_distance("", "abc") == 3,
	   "edit distance");

	/* The host name behind the defaults. */
	{
		char want[256];
		if (gethostname(want, sizeof(want)) != 0 || want[0] == '\0')
			snprintf(want, sizeof(want), "localhost");
		want[sizeof(want) - 1] = '\0';
		is_str(config_host_name(), want, "config_host_name is this machine's name");
		c = load("templates: @D@/tpl\nservers:\n  s: { host: h }\n"
		         "channels:\n  ops: { servers: [s], to: a@b.c }\n");
		snprintf(p, sizeof(p), "alertmail@%s", want);
		is_str(c ? c->from : NULL, p, "from defaults to alertmail@<host name>");
		config_free(c);
	}

	/* The config file itself: only a regular file, never waiting on a FIFO, bounded. */
	{
		char fifo[600];
		struct config *fc = NULL;
		snprintf(fifo, sizeof(fifo), "%s/config.fifo", dir);
		if (mkfifo(fifo, 0600) == 0) {
			alarm(10);
			buf_reset(&errors);
			config_load(fifo, &fc, &errors);
			alarm(0);
			ok(fc == NULL && has("config.fifo: not a regular file"),
			   "a FIFO as the config is refused without blocking: %s", errors.data);
		} else {
			ok(0, "mkfifo %s", fifo);
		}
		buf_reset(&errors);
		config_load(dir, &fc, &errors);
		ok(fc == NULL && has("not a regular file"), "a directory as the config is refused");
		FILE *f = fopen(path, "w");
		if (f == NULL)
			exit(99);
		for (int i = 0; i < 4 * 1024 * 1024 / 16 + 1; i++)
			fputs("# 12345678901234", f);
		must(fclose(f) == 0, "write %s", path);
		buf_reset(&errors);
		config_load(path, &fc, &errors);
		ok(fc == NULL && has("larger than the limit of 4194304 bytes"),
		   "a config over 4 MiB is refused: %s", errors.data);
	}

	/* A config in memory (the fuzz harness's way in): the same parse, under the name given. */
	{
		char *mem = xasprintf("templates: %s/tpl\nfrom: a@example.org\n"
		                      "servers: { s: { host: h } }\n"
		                      "channels: { ops: { servers: [s], to: b@example.org } }\n",
		                      dir);
		struct config *mc = NULL;

		buf_reset(&errors);
		ok(config_parse(mem, strlen(mem), "mem.yaml", CONFIG_NO_SECRETS, &mc, &errors) ==
		           0 &&
		       mc != NULL && strcmp(mc->path, "mem.yaml") == 0 &&
		       strcmp(mc->default_channel, "ops") == 0,
		   "config_parse: a config in memory%s%s", errors.data ? ": " : "",
		   errors.data ? errors.data : "");
		if (mc != NULL) {
			static const char bad[] = "title: t\nchannel: \"ops\\nX-Injected: 1\"\n";
			struct alert *a;
			struct err e;

			ok(alert_parse(bad, sizeof(bad) - 1, "a", 0, &a, &e) == 0 &&
			       route_select(mc, a, &e) == NULL &&
			       strcmp(e.msg,
			              "the alert names channel 'ops\\nX-Injected: 1', which the "
			              "config does not define") == 0,
			   "route_select: an unknown channel is quoted escaped, one line: %s",
			   e.msg);
			alert_free(a);
		}
		config_free(mc);
		free(mem);
		buf_reset(&errors);
		ok(config_parse("from: [x\n", 9, "mem.yaml", 0, &mc, &errors) < 0 && mc == NULL &&
		       errors.data != NULL && strncmp(errors.data, "mem.yaml:", 9) == 0,
		   "config_parse: errors name the name given: %s", errors.data);
	}

	/* Config path resolution. */
	setenv("ALERTMAIL_CONFIG", "/x/env.yaml", 1);
	is_str(config_default_path("/cli.yaml"), "/cli.yaml", "-c wins");
	is_str(config_default_path(NULL), "/x/env.yaml", "then $ALERTMAIL_CONFIG");
	unsetenv("ALERTMAIL_CONFIG");
	ok(strstr(config_default_path(NULL), "/alertmail/alertmail.yaml") != NULL,
	   "then the compiled-in default");

	buf_free(&errors);
	tap_remove_tree(dir);
	return done_testing();
}

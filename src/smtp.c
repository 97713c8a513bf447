#include "config.h"

#include "smtp.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mailbox.h"
#include "secret.h"
#include "smtp_conn.h"

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
	/* libcurl 7.88 cuts a reply line that fills half its buffer (8 KiB), keeps its start
	 * and reads on, for up to a whole reply timeout: that line is far past the bound. */
	static const char excessive[] = "Excessive server response line";
	struct smtp_conn *c = userp;
	size_t start = 0;

	(void)h;
	if (type == CURLINFO_TEXT && size >= sizeof(excessive) - 1 &&
	    memcmp(data, excessive, sizeof(excessive) - 1) == 0)
		smtp_abort(c, ABORT_HOSTILE, smtp_line_too_long);
	if (type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
		return 0;
	/* One callback may carry several lines. */
	while (start < size) {
		size_t end = start;
		while (end < size && data[end] != '\n')
			end++;
		if (end < size)
			end++;
		if (type == CURLINFO_HEADER_IN)
			smtp_line_in(c, data + start, end - start);
		else
			smtp_line_out(c, data + start, end - start);
		start = end;
	}
	return 0;
}

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct smtp_conn *c = userp;
	size_t room = size * nmemb;
	size_t left = c->body_len - c->body_off;
	size_t n = left < room ? left : room;

	memcpy(ptr, c->body + c->body_off, n);
	c->body_off += n;
	return n;
}

/* Server replies reach us through the debug callback, which sees each line first. The header
 * callback is the one whose answer libcurl obeys: returning short stops the session. */
/* NOLINTNEXTLINE(readability-non-const-parameter): libcurl's curl_write_callback type */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userp)
{
	struct smtp_conn *c = userp;

	(void)ptr;
	if (c->abort_reason != NULL)
		return 0;
	return size * nmemb;
}

static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
	struct smtp_conn *c = clientp;

	(void)purpose;
	c->sock = fd;
	return CURL_SOCKOPT_OK;
}

static int on_close_socket(void *clientp, curl_socket_t fd)
{
	struct smtp_conn *c = clientp;

	if (c->sock == fd)
		c->sock = CURL_SOCKET_BAD;
	return close(fd);
}

static char *make_url(const struct server *s)
{
	struct buf b;
	char *esc;
	const char *helo = s->helo != NULL ? s->helo : config_host_name();

	buf_init(&b);
	buf_adds(&b, s->tls == TLS_IMPLICIT ? "smtps://" : "smtp://");
	if (strchr(s->host, ':') != NULL)
		buf_printf(&b, "[%s]", s->host);
	else
		buf_adds(&b, s->host);
	/* libcurl takes the EHLO name from the URL's path. */
	esc = curl_easy_escape(NULL, helo, 0);
	buf_printf(&b, ":%ld/%s", s->port, esc ? esc : "localhost");
	curl_free(esc);
	return buf_steal(&b);
}

struct smtp_conn *smtp_conn_new(const struct server *s)
{
	struct smtp_conn *c = xcalloc(1, sizeof(*c));

	c->server = s;
	c->url = make_url(s);
	c->sock = CURL_SOCKET_BAD;
	c->token = &c->own_token;
	buf_init(&c->transcript);
	return c;
}

void smtp_conn_share_token(struct smtp_conn *c, struct oauth2_token *t)
{
	c->token = t;
}

bool smtp_token_rejected(struct smtp_conn *c, const struct smtp_result *r)
{
	if (!oauth2_uses_grant(c->server) || c->token_was_fresh || r->reply.code != 535 ||
	    r->stage != STAGE_AUTH)
		return false;
	oauth2_token_clear(c->token);
	return true;
}

/* The blocking commands' way to a token: the one kept, or one fetched now. */
static int token_ready(struct smtp_conn *c, struct smtp_result *r)
{
	char why[700];
	int64_t t0 = smtp_now_ms();

	if (!oauth2_uses_grant(c->server))
		return 0;
	if (oauth2_token_get(c->server, c->token, t0, why, sizeof(why)) < 0) {
		char detail[768];
		r->stage = STAGE_AUTH;
		snprintf(detail, sizeof(detail), "no OAuth2 token: %s", why);
		smtp_session_fail(r, OUTCOME_TEMPFAIL, detail);
		r->elapsed_ms = smtp_now_ms() - t0;
		return -1;
	}
	if (c->token->fresh)
		log_info("oauth2", "%s: new token, valid for %lld s", c->server->name,
		         (long long)((c->token->expires_at - t0) / 1000));
	return 0;
}

void smtp_session_release(struct smtp_conn *c)
{
	/* The handle must not keep pointers to what is freed here (setting one cannot fail). */
	if (c->curl != NULL)
		(void)curl_easy_setopt(c->curl, CURLOPT_MAIL_RCPT, NULL);
	curl_slist_free_all(c->rcpt_list);
	c->rcpt_list = NULL;
	free(c->mail_from);
	c->mail_from = NULL;
	c->body = NULL;
}

void smtp_conn_free(struct smtp_conn *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	c->curl = NULL;
	smtp_session_release(c);
	free(c->url);
	buf_free(&c->transcript);
	buf_free(&c->out);
	buf_free(&c->in);
	oauth2_token_clear(&c->own_token);
	free(c);
}

const char *smtp_transcript(const struct smtp_conn *c)
{
	return c->transcript.data ? c->transcript.data : "";
}

void *smtp_conn_handle(struct smtp_conn *c)
{
	return c->curl;
}

/* libcurl takes whole seconds here; round up so that a bound is never shorter than configured. */
static long seconds_up(int64_t ms)
{
	return (long)((ms + 999) / 1000);
}

static const char *login_options(enum auth_mech m)
{
	switch (m) {
	case AUTH_PLAIN:
		return "AUTH=PLAIN";
	case AUTH_LOGIN:
		return "AUTH=LOGIN";
	case AUTH_XOAUTH2:
		return "AUTH=XOAUTH2";
	case AUTH_AUTO:
		return "AUTH=PLAIN;AUTH=LOGIN";
	case AUTH_NONE:
		break;
	}
	return NULL;
}

/* Any option refused stops the session: most would weaken security or lose a bound. */
#define MUST(call, what)                                                                          \
	do {                                                                                      \
		if ((call) != CURLE_OK) {                                                         \
			snprintf(why, why_len, "libcurl refused the option %s", what);            \
			return -1;                                                                \
		}                                                                                 \
	} while (0)

/* Sets every option of a session; the handle keeps its connection cache between calls. */
int smtp_setup(struct smtp_conn *c, char *why, size_t why_len)
{
	const struct server *s = c->server;
	CURL *h;

	if (c->curl == NULL)
		c->curl = curl_easy_init();
	if (c->curl == NULL) {
		snprintf(why, why_len, "cannot create a libcurl handle");
		return -1;
	}
	h = c->curl;
	curl_easy_reset(h);
	c->errbuf[0] = '\0';
	MUST(curl_easy_setopt(h, CURLOPT_URL, c->url), "URL");
	MUST(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps"), "PROTOCOLS_STR");
	/* No proxy from the environment (ALL_PROXY): mail goes to the configured server only. */
	MUST(curl_easy_setopt(h, CURLOPT_PROXY, ""), "PROXY");
	MUST(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf), "ERRORBUFFER");
	MUST(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L), "NOSIGNAL");
	MUST(curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L), "TCP_NODELAY");
	MUST(curl_easy_setopt(h, CURLOPT_VERBOSE, 1L), "VERBOSE");
	MUST(curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug), "DEBUGFUNCTION");
	MUST(curl_easy_setopt(h, CURLOPT_DEBUGDATA, c), "DEBUGDATA");
	MUST(curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header), "HEADERFUNCTION");
	MUST(curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_sockopt), "SOCKOPTFUNCTION");
	MUST(curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, c), "SOCKOPTDATA");
	MUST(curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket),
	     "CLOSESOCKETFUNCTION");
	MUST(curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c), "CLOSESOCKETDATA");
	MUST(curl_easy_setopt(h, CURLOPT_HEADERDATA, c), "HEADERDATA");
	MUST(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms),
	     "CONNECTTIMEOUT_MS");
	MUST(curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, seconds_up(s->timeout_ms)),
	     "SERVER_RESPONSE_TIMEOUT");
	MUST(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->total_timeout_ms), "TIMEOUT_MS");

	if (s->tls == TLS_STARTTLS)
		MUST(curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL), "USE_SSL");
	else if (s->tls == TLS_NONE)
		MUST(curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE), "USE_SSL");
	MUST(curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2), "SSLVERSION");
	MUST(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->verify ? 1L : 0L), "SSL_VERIFYPEER");
	MUST(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->verify ? 2L : 0L), "SSL_VERIFYHOST");
	if (s->ca_file != NULL)
		MUST(curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file), "CAINFO");
	/* Mutual TLS. Read by libcurl for every session: a renewed certificate is taken up. */
	if (s->client_cert != NULL) {
		MUST(curl_easy_setopt(h, CURLOPT_SSLCERT, s->client_cert), "SSLCERT");
		MUST(curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM"), "SSLCERTTYPE");
		MUST(curl_easy_setopt(h, CURLOPT_SSLKEY,
		                      s->client_key != NULL ? s->client_key : s->client_cert),
		     "SSLKEY");
		MUST(curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM"), "SSLKEYTYPE");
		/* libcurl reads the key again for every session: a key replaced since the config
		 * was checked by one with a passphrase must fail, not make OpenSSL ask for it on a
		 * terminal and stop the daemon's loop. */
		MUST(curl_easy_setopt(h, CURLOPT_KEYPASSWD, ""), "KEYPASSWD");
	}

	/* Credentials only where TLS is guaranteed, or where plaintext is explicitly allowed. */
	if (s->auth != AUTH_NONE && (s->tls != TLS_NONE || s->allow_plaintext_auth)) {
		MUST(curl_easy_setopt(h, CURLOPT_USERNAME, s->username), "USERNAME");
		if (s->auth == AUTH_XOAUTH2 && oauth2_uses_grant(s)) {
			/* Fetched by the caller before the session; libcurl keeps a copy. */
			if (c->token->value == NULL) {
				snprintf(why, why_len, "no OAuth2 token");
				return -1;
			}
			c->token_was_fresh = c->token->fresh;
			c->token->fresh = false;
			MUST(curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, c->token->value),
			     "XOAUTH2_BEARER");
		} else if (s->auth == AUTH_XOAUTH2) {
			/* The token is read for every session: whatever keeps the file current
			 * (a token service) is followed without a reload. libcurl keeps a copy. */
			char *token = NULL;
			struct err e;
			CURLcode cc;
			if (secret_read_file(s->oauth2.token_file, &token, &e) < 0) {
				snprintf(why, why_len, "oauth2.token_file: %s", e.msg);
				return -1;
			}
			cc = curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, token);
			secret_free(token);
			MUST(cc, "XOAUTH2_BEARER");
		} else {
			MUST(curl_easy_setopt(h, CURLOPT_PASSWORD, s->password), "PASSWORD");
		}
		MUST(curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS, login_options(s->auth)),
		     "LOGIN_OPTIONS");
	}
	return 0;
}

#undef MUST

int64_t smtp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Per session; what belongs to the connection (AUTH done, TLS up) is reset at its greeting,
 * because a reused connection starts at MAIL without one. */
void smtp_session_begin(struct smtp_conn *c, struct smtp_result *r)
{
	memset(r, 0, sizeof(*r));
	buf_reset(&c->transcript);
	memset(&c->reply, 0, sizeof(c->reply));
	c->in_reply = false;
	c->quitting = false;
	c->ehlo_auth = false;
	c->auth_offer[0] = '\0';
	c->abort_reason = NULL;
	c->abort_kind = ABORT_NONE;
	c->reply_lines = 0;
	c->stage = STAGE_CONNECT;
	c->started = smtp_now_ms();
}

enum outcome smtp_session_fail(struct smtp_result *r, enum outcome o, const char *detail)
{
	r->outcome = o;
	snprintf(r->detail, sizeof(r->detail), "%s", detail);
	return o;
}

/* A server that wants a client certificate, or refuses the one given, says so in the TLS
 * handshake (an alert: "tlsv13 alert certificate required", "alert unknown ca") or right
 * after it (Postfix: 421 to the next command), in its own words: name the setting that
 * decides. Problems with the server's own certificate are found here, and are no alert. */
static void client_cert_hint(struct smtp_conn *c, struct smtp_result *r)
{
	static const char *const alerts[] = {"alert certificate",       "alert bad certificate",
	                                     "alert unknown ca",        "alert access denied",
	                                     "alert handshake failure", NULL};
	bool after_tls = r->stage == STAGE_TLS || (r->stage == STAGE_EHLO && c->tls_up) ||
	                 r->curl_code == CURLE_SSL_CONNECT_ERROR;
	bool about_certs = c->reply.code >= 400 && strstr(c->reply.text, "ertificate") != NULL;
	/* With TLS 1.3 the client's part of the handshake is over before the server checks the
	 * certificate: its alert ends the session before any reply, and libcurl's error is only
	 * that reading failed. */
	bool closed_after_tls =
	    r->stage == STAGE_EHLO && c->tls_up && c->reply.code == 220 && r->reply.code == 220;

	for (size_t i = 0; alerts[i] != NULL && !about_certs; i++)
		about_certs = strstr(c->errbuf, alerts[i]) != NULL;
	if (!after_tls || !(about_certs || closed_after_tls) || r->outcome == OUTCOME_OK)
		return;
	if (!about_certs)
		smtp_detail_append(
		    r, c->server->client_cert != NULL
		           ? " (hint: the server closed the session right after the TLS "
		             "handshake, as servers do that refuse a client certificate: "
		             "client_cert must be signed by a CA the server trusts, and current)"
		           : " (hint: the server closed the session right after the TLS "
		             "handshake, as servers do that require a client certificate: "
		             "client_cert and client_key)");
	else if (c->server->client_cert != NULL)
		smtp_detail_append(r,
		                   " (hint: the server refused the client certificate: client_cert "
		                   "must be signed by a CA the server trusts, and current)");
	else
		smtp_detail_append(
		    r, " (hint: the server may require a client certificate: client_cert "
		       "and client_key)");
}

enum outcome smtp_session_end(struct smtp_conn *c, CURLcode cc, struct smtp_result *r)
{
	enum smtp_stage stage = c->stage;
	curl_off_t connect_us = 0, appconnect_us = 0;

	/* A reused connection starts at MAIL: the stage is right as it is. */
	if (stage == STAGE_CONNECT) {
		/* Left 0 where libcurl has no time: the stage stays CONNECT. */
		(void)curl_easy_getinfo(c->curl, CURLINFO_CONNECT_TIME_T, &connect_us);
		(void)curl_easy_getinfo(c->curl, CURLINFO_APPCONNECT_TIME_T, &appconnect_us);
		if (connect_us > 0)
			stage = (c->server->tls == TLS_IMPLICIT && appconnect_us == 0) ? STAGE_TLS
			                                                                : STAGE_GREETING;
	}
	if (cc == CURLE_OK)
		stage = STAGE_DONE;
	r->stage = stage;
	r->reply = c->reply;
	r->curl_code = (int)cc;
	r->outcome = smtp_classify((int)cc, stage, &c->reply, c->errbuf, r->detail, sizeof(r->detail));
	if (cc == CURLE_OPERATION_TIMEDOUT)
		smtp_note_unfinished(c, 0, r);
	/* Debian's libcurl 7.88 also bounds all the reply lines of a session (CVE-2023-38039),
	 * and may stop a long multi-line reply before the bound above: the same hostile reply. */
	if (cc != CURLE_OK && c->abort_reason == NULL &&
	    strncmp(c->errbuf, "Too large response headers", 26) == 0) {
		snprintf(c->abort_text, sizeof(c->abort_text),
		         "replies larger than libcurl accepts (%s)", c->errbuf);
		smtp_abort(c, ABORT_HOSTILE, c->abort_text);
	}
	if (cc != CURLE_OK && c->abort_reason != NULL) {
		smtp_abort_result(c, r);
	} else if (cc == CURLE_LOGIN_DENIED && c->reply.code < 400 && c->ehlo_auth) {
		/* No refusal from the server: libcurl found none of the permitted mechanisms. */
		snprintf(r->detail, sizeof(r->detail),
		         "AUTH failed: the server offers AUTH %s, and this server entry allows only %s",
		         c->auth_offer, auth_mech_name(c->server->auth));
	}
	if (cc != CURLE_OK)
		client_cert_hint(c, r);
	r->elapsed_ms = smtp_now_ms() - c->started;
	return r->outcome;
}

int smtp_check_envelope(const char *mail_from, char *const *rcpt, size_t nrcpt,
                        struct smtp_result *r)
{
	struct err e;

	/* Callers check addresses; this is the last guard before they reach the wire. */
	if (message_check_addr(mail_from, &e) < 0) {
		smtp_session_fail(r, OUTCOME_PERMFAIL,
		                  "the envelope sender is not a valid address");
		return -1;
	}
	for (size_t i = 0; i < nrcpt; i++) {
		if (message_check_addr(rcpt[i], &e) < 0) {
			smtp_session_fail(r, OUTCOME_PERMFAIL,
			                  "an envelope recipient is not a valid address");
			return -1;
		}
	}
	if (nrcpt == 0) {
		smtp_session_fail(r, OUTCOME_PERMFAIL, "no recipients");
		return -1;
	}
	return 0;
}

static int send_begin(struct smtp_conn *c, const char *mail_from, char *const *rcpt, size_t nrcpt,
                      const char *msg, size_t len, struct smtp_result *r)
{
	char why[256];

	smtp_session_begin(c, r);
	smtp_session_release(c);
	if (smtp_check_envelope(mail_from, rcpt, nrcpt, r) < 0)
		return -1;
	if (smtp_setup(c, why, sizeof(why)) < 0) {
		smtp_session_fail(r, OUTCOME_TEMPFAIL, why);
		return -1;
	}
	c->mail_from = xasprintf("<%s>", mail_from);
	for (size_t i = 0; i < nrcpt; i++) {
		char *to = xasprintf("<%s>", rcpt[i]);
		struct curl_slist *n = curl_slist_append(c->rcpt_list, to);
		free(to);
		if (n == NULL) {
			smtp_session_release(c);
			smtp_session_fail(r, OUTCOME_TEMPFAIL, "out of memory");
			return -1;
		}
		c->rcpt_list = n;
	}
	/* libcurl copies MAIL_FROM: refused (no memory), it would send MAIL FROM:<>. */
	if (curl_easy_setopt(c->curl, CURLOPT_MAIL_FROM, c->mail_from) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_MAIL_RCPT, c->rcpt_list) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_READDATA, c) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len) != CURLE_OK) {
		smtp_session_release(c);
		smtp_session_fail(r, OUTCOME_TEMPFAIL,
		                  "libcurl refused the envelope or the message");
		return -1;
	}
	c->body = msg;
	c->body_len = len;
	c->body_off = 0;
	c->in_session = true;
	return 0;
}

static enum outcome send_end(struct smtp_conn *c, int curl_code, struct smtp_result *r)
{
	c->in_session = false;
	/* After a failure libcurl may keep the connection (a timeout waiting for the final reply
	 * does), and a late reply would then answer the next MAIL. Kill it: the next session
	 * connects afresh, and closing it later sends no QUIT that waits on a hung server. */
	if (curl_code != CURLE_OK && c->sock != CURL_SOCKET_BAD)
		shutdown(c->sock, SHUT_RDWR);
	smtp_session_end(c, (CURLcode)curl_code, r);
	smtp_session_release(c);
	return r->outcome;
}

enum outcome smtp_send(struct smtp_conn *c, const char *mail_from, char *const *rcpt, size_t nrcpt,
                       const char *msg, size_t len, struct smtp_result *r)
{
	/* A second time only with a fresh token, when the kept one was refused. */
	for (int round = 0; round < 2; round++) {
		if (token_ready(c, r) < 0)
			return r->outcome;
		if (send_begin(c, mail_from, rcpt, nrcpt, msg, len, r) < 0)
			return r->outcome;
		if (send_end(c, curl_easy_perform(c->curl), r) == OUTCOME_OK ||
		    !smtp_token_rejected(c, r))
			break;
	}
	return r->outcome;
}

static void cert_expiry(struct smtp_conn *c, struct smtp_result *r)
{
	struct curl_certinfo *ci = NULL;

	if (curl_easy_getinfo(c->curl, CURLINFO_CERTINFO, &ci) != CURLE_OK || ci == NULL ||
	    ci->num_of_certs < 1)
		return;
	for (struct curl_slist *s = ci->certinfo[0]; s != NULL; s = s->next) {
		if (strncmp(s->data, "Expire date:", 12) == 0) {
			snprintf(r->cert_expiry, sizeof(r->cert_expiry), "%s", s->data + 12);
			return;
		}
	}
}

/* curl treats a CONNECT_ONLY connection as dead when it closes it and sends no QUIT: say
 * goodbye ourselves, and wait (bounded) for the 221. */
static void probe_quit(struct smtp_conn *c)
{
	curl_socket_t sock = CURL_SOCKET_BAD;
	int64_t deadline =
	    smtp_now_ms() + (c->server->timeout_ms < 2000 ? c->server->timeout_ms : 2000);
	char reply[512];
	size_t n = 0, got = 0;

	if (curl_easy_send(c->curl, "QUIT\r\n", 6, &n) != CURLE_OK || n != 6)
		return;
	smtp_transcript_add(c, "-> ", "QUIT", 4);
	if (curl_easy_getinfo(c->curl, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
	    sock == CURL_SOCKET_BAD)
		return;
	while (got < sizeof(reply) - 1) {
		struct pollfd pfd = {.fd = sock, .events = POLLIN};
		int64_t left = deadline - smtp_now_ms();
		CURLcode rc;

		if (left <= 0)
			break;
		rc = curl_easy_recv(c->curl, reply + got, sizeof(reply) - 1 - got, &n);
		if (rc == CURLE_AGAIN) {
			if (poll(&pfd, 1, (int)left) <= 0)
				break;
			continue;
		}
		if (rc != CURLE_OK || n == 0)
			break;
		got += n;
		if (memchr(reply, '\n', got) != NULL)
			break;
	}
	reply[got] = '\0';
	if (got > 0)
		smtp_transcript_add(c, "<- ", reply, strcspn(reply, "\r\n"));
}

static enum outcome probe_once(struct smtp_conn *c, struct smtp_result *r)
{
	char why[256];
	CURLcode cc;

	smtp_session_begin(c, r);
	if (token_ready(c, r) < 0)
		return r->outcome;
	if (smtp_setup(c, why, sizeof(why)) < 0)
		return smtp_session_fail(r, OUTCOME_TEMPFAIL, why);
	/* CONNECT_ONLY runs the whole SMTP connect phase: greeting, EHLO, STARTTLS, AUTH. */
	if (curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_CERTINFO, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK)
		return smtp_session_fail(r, OUTCOME_TEMPFAIL, "libcurl refused CONNECT_ONLY");
	cc = curl_easy_perform(c->curl);
	smtp_session_end(c, cc, r);
	if (cc == CURLE_OK) {
		if (c->server->tls != TLS_NONE)
			cert_expiry(c, r);
		probe_quit(c);
	}
	/* Close now; the next use makes a fresh handle and session. */
	curl_easy_cleanup(c->curl);
	c->curl = NULL;
	return r->outcome;
}

enum outcome smtp_probe(struct smtp_conn *c, struct smtp_result *r)
{
	if (probe_once(c, r) != OUTCOME_OK && smtp_token_rejected(c, r))
		probe_once(c, r);
	return r->outcome;
}

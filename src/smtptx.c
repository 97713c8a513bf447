/* Sessions in the caller's event loop.
 *
 * libcurl 7.88 waits for the reply to the end of the data in a blocking loop of its own, even
 * under the multi interface: one slow server would stall every delivery. So libcurl opens the
 * session (TCP, TLS, EHLO, AUTH; CONNECT_ONLY), and alertmail speaks MAIL, RCPT, DATA and the
 * message itself through curl_easy_send/recv, never blocking. Its commands and the replies go
 * through the same tracking as libcurl's (stages, replies, transcript, the AUTH guard). */
#include "config.h"

#include "smtp.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "mailbox.h"
#include "smtp_conn.h"

int smtp_open_begin(struct smtp_conn *c, struct smtp_result *r)
{
	char why[256];

	smtp_session_begin(c, r);
	smtp_session_release(c);
	c->open = false;
	c->opening = true;
	c->auth_done = false;
	c->tls_up = false;
	if (smtp_setup(c, why, sizeof(why)) < 0) {
		c->opening = false;
		smtp_session_fail(r, OUTCOME_TEMPFAIL, why);
		return -1;
	}
	if (curl_easy_setopt(c->curl, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK) {
		c->opening = false;
		smtp_session_fail(r, OUTCOME_TEMPFAIL, "libcurl refused CONNECT_ONLY");
		return -1;
	}
	return 0;
}

enum outcome smtp_open_end(struct smtp_conn *c, int curl_code, struct smtp_result *r)
{
	c->opening = false;
	smtp_session_end(c, (CURLcode)curl_code, r);
	c->open = curl_code == CURLE_OK && c->sock != CURL_SOCKET_BAD;
	if (curl_code == CURLE_OK && !c->open)
		smtp_session_fail(r, OUTCOME_TEMPFAIL, "the session opened without a socket");
	return r->outcome;
}

bool smtp_is_open(const struct smtp_conn *c)
{
	return c->open;
}

int smtp_socket(const struct smtp_conn *c)
{
	return c->open ? (int)c->sock : -1;
}

void smtp_close(struct smtp_conn *c)
{
	/* The caller removes the handle from its multi handle, which closes the connection;
	 * the server gets no QUIT that could keep anyone waiting. */
	if (c->sock != CURL_SOCKET_BAD)
		shutdown(c->sock, SHUT_RDWR);
	c->open = false;
	c->tx = TX_IDLE;
}

/* Queues one command line for sending, recorded like libcurl's own commands. */
static void tx_command(struct smtp_conn *c, const char *line)
{
	smtp_line_out(c, line, strlen(line));
	buf_adds(&c->out, line);
	buf_adds(&c->out, "\r\n");
}

static void tx_wait(struct smtp_conn *c, int64_t now)
{
	int64_t t = now + c->server->timeout_ms;

	c->tx_deadline = t < c->tx_end ? t : c->tx_end;
}

int smtp_tx_start(struct smtp_conn *c, const char *mail_from, char *const *rcpt, size_t nrcpt,
                  const char *msg, size_t len, struct smtp_result *r)
{
	char *line;
	int64_t now = smtp_now_ms();

	/* The transcript and the stage are this message's; the session's AUTH state stays. */
	memset(r, 0, sizeof(*r));
	buf_reset(&c->transcript);
	memset(&c->reply, 0, sizeof(c->reply));
	c->in_reply = false;
	c->abort_reason = NULL;
	c->abort_kind = ABORT_NONE;
	c->reply_lines = 0;
	c->stage = STAGE_MAIL;
	c->started = now;
	if (smtp_check_envelope(mail_from, rcpt, nrcpt, r) < 0)
		return -1;
	if (c->server->auth != AUTH_NONE && !c->auth_done) {
		smtp_session_fail(r, OUTCOME_PERMFAIL,
		                  "AUTH failed: the session is not authenticated; nothing was sent");
		return -1;
	}
	buf_reset(&c->out);
	buf_reset(&c->in);
	c->out_off = 0;
	c->tx_to = (char **)rcpt;
	c->tx_nto = nrcpt;
	c->tx_rcpt = 0;
	c->body = msg;
	c->body_len = len;
	c->tx_started = now;
	c->tx_end = now + c->server->total_timeout_ms;
	line = xasprintf("MAIL FROM:<%s>", mail_from);
	tx_command(c, line);
	free(line);
	c->tx = TX_MAIL;
	tx_wait(c, now);
	return 0;
}

int64_t smtp_tx_deadline(const struct smtp_conn *c)
{
	return c->tx_deadline;
}

/* Appends the message with every line that starts with '.' doubled, then the final dot. */
static void tx_body(struct smtp_conn *c)
{
	const char *p = c->body, *end = c->body + c->body_len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		if (*p == '.')
			buf_addc(&c->out, '.');
		buf_add(&c->out, p, n);
		p += n;
	}
	if (c->body_len == 0 || c->body[c->body_len - 1] != '\n')
		buf_adds(&c->out, "\r\n");
	buf_adds(&c->out, ".\r\n");
	smtp_transcript_add(c, "-> ", "[message]", 9);
}

/* Ends the message with a result: an error as libcurl would have reported it. */
static enum smtp_tx_wait tx_finish(struct smtp_conn *c, CURLcode cc, const char *why,
                                   struct smtp_result *r)
{
	memset(r, 0, sizeof(*r));
	r->stage = cc == CURLE_OK ? STAGE_DONE : c->stage;
	r->reply = c->reply;
	r->curl_code = (int)cc;
	r->outcome = smtp_classify((int)cc, r->stage, &c->reply, why, r->detail, sizeof(r->detail));
	if (cc == CURLE_OPERATION_TIMEDOUT)
		smtp_note_unfinished(c, c->in.len, r);
	if (cc != CURLE_OK)
		smtp_abort_result(c, r);
	r->elapsed_ms = smtp_now_ms() - c->started;
	c->tx = cc == CURLE_OK ? TX_IDLE : TX_DONE;
	c->tx_to = NULL;
	c->body = NULL;
	/* After any failure the session is not used again: a late reply would answer the next
	 * command. */
	if (cc != CURLE_OK)
		smtp_close(c);
	return SMTP_TX_DONE;
}

/* One complete reply arrived: the next step of the transaction. */
static enum smtp_tx_wait tx_reply(struct smtp_conn *c, int64_t now, struct smtp_result *r)
{
	int code = c->reply.code;

	if (c->abort_reason != NULL)
		return tx_finish(c, CURLE_LOGIN_DENIED, "", r);
	switch (c->tx) {
	case TX_MAIL:
	case TX_RCPT:
		if (code < 200 || code >= 300)
			return tx_finish(c, CURLE_SEND_ERROR, "", r);
		if (c->tx_rcpt < c->tx_nto) {
			char *line = xasprintf("RCPT TO:<%s>", c->tx_to[c->tx_rcpt++]);
			tx_command(c, line);
			free(line);
			c->tx = TX_RCPT;
		} else {
			tx_command(c, "DATA");
			c->tx = TX_DATA;
		}
		break;
	case TX_DATA:
		if (code != 354)
			return tx_finish(c, CURLE_SEND_ERROR, "", r);
		smtp_set_stage(c, STAGE_BODY);
		tx_body(c);
		c->tx = TX_BODY;
		break;
	case TX_BODY:
		if (code < 200 || code >= 300)
			return tx_finish(c, CURLE_WEIRD_SERVER_REPLY, "", r);
		return tx_finish(c, CURLE_OK, "", r);
	default:
		return tx_finish(c, CURLE_WEIRD_SERVER_REPLY, "a reply nobody asked for", r);
	}
	tx_wait(c, now);
	return c->out_off < c->out.len ? SMTP_TX_WANT_WRITE : SMTP_TX_WANT_READ;
}

/* NOLINTNEXTLINE(misc-no-recursion): one level per reply that sends a command: nrcpt + 2 */
enum smtp_tx_wait smtp_tx_step(struct smtp_conn *c, struct smtp_result *r)
{
	int64_t now = smtp_now_ms();

	if (c->tx == TX_IDLE || c->tx == TX_DONE || !c->open)
		return tx_finish(c, CURLE_FAILED_INIT, "no transaction in progress", r);
	/* Write what is pending, as far as the socket takes it. */
	while (c->out_off < c->out.len) {
		size_t n = 0;
		CURLcode cc = curl_easy_send(c->curl, c->out.data + c->out_off, c->out.len - c->out_off,
		                             &n);
		if (cc == CURLE_AGAIN)
			break;
		if (cc != CURLE_OK)
			return tx_finish(c, CURLE_SEND_ERROR, curl_easy_strerror(cc), r);
		c->out_off += n;
	}
	if (c->out_off >= c->out.len) {
		buf_reset(&c->out);
		c->out_off = 0;
	}
	/* Read whatever has come; each whole reply moves the transaction on. */
	for (;;) {
		char chunk[4096];
		size_t n = 0;
		CURLcode cc = curl_easy_recv(c->curl, chunk, sizeof(chunk), &n);
		if (cc == CURLE_AGAIN)
			break;
		if (cc != CURLE_OK)
			return tx_finish(c, CURLE_RECV_ERROR, curl_easy_strerror(cc), r);
		if (n == 0)
			return tx_finish(c, CURLE_GOT_NOTHING, "the server closed the connection", r);
		buf_add(&c->in, chunk, n);
		for (;;) {
			char *nl = memchr(c->in.data, '\n', c->in.len);
			size_t len;
			enum smtp_tx_wait w;
			if (nl == NULL)
				break;
			len = (size_t)(nl - c->in.data) + 1;
			smtp_line_in(c, c->in.data, len);
			memmove(c->in.data, c->in.data + len, c->in.len - len + 1);
			c->in.len -= len;
			if (c->abort_reason != NULL)
				return tx_finish(c, CURLE_WRITE_ERROR, "", r);
			if (c->in_reply)
				continue;
			w = tx_reply(c, now, r);
			if (w == SMTP_TX_DONE)
				return w;
			if (w == SMTP_TX_WANT_WRITE)
				return smtp_tx_step(c, r);
		}
		/* What is left is the start of a line: one beyond the bound never becomes a reply,
		 * and memory stays bounded whatever the server sends. */
		if (c->in.len > SMTP_REPLY_LINE_MAX + 2) {
			smtp_abort(c, ABORT_HOSTILE, smtp_line_too_long);
			return tx_finish(c, CURLE_WRITE_ERROR, "", r);
		}
	}
	if (now >= c->tx_deadline)
		return tx_finish(c, CURLE_OPERATION_TIMEDOUT,
		                 now >= c->tx_end ? "total_timeout reached" : "server response timeout",
		                 r);
	return c->out_off < c->out.len ? SMTP_TX_WANT_WRITE : SMTP_TX_WANT_READ;
}

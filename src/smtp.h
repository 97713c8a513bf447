/* Delivery through libcurl: one server, one message, an outcome with the server's reply. */
#ifndef ALERTMAIL_SMTP_H
#define ALERTMAIL_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conf.h"

enum outcome {
	OUTCOME_OK,
	OUTCOME_TEMPFAIL, /* try again later: 4xx, network, TLS trouble, a daily quota */
	OUTCOME_PERMFAIL, /* 5xx: this server will not take it */
};

/* How far a session got: where it failed, or STAGE_DONE. */
enum smtp_stage {
	STAGE_CONNECT,  /* TCP connect */
	STAGE_GREETING, /* connected, waiting for 220 */
	STAGE_EHLO,
	STAGE_STARTTLS,
	STAGE_TLS, /* TLS handshake and certificate check */
	STAGE_AUTH,
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_DATA,     /* the DATA command */
	STAGE_BODY,     /* message sent, waiting for the final reply */
	STAGE_DONE,
};

/* Bounds on one reply from a server, far beyond any real one (RFC 5321 allows 512 octets a
 * line; an EHLO reply has a dozen lines): a reply that breaks them ends the session. */
#define SMTP_REPLY_LINE_MAX 2048
#define SMTP_REPLY_LINES_MAX 100

struct smtp_reply {
	int code; /* 0: none */
	char enhanced[16];
	char text[512]; /* the reply text without code and enhanced code; lines joined by spaces */
};

struct smtp_result {
	enum outcome outcome;
	enum smtp_stage stage;
	struct smtp_reply reply; /* the last reply from the server */
	int curl_code;
	char detail[768]; /* one line for a human: what happened */
	int64_t elapsed_ms;
	char cert_expiry[64]; /* probe only: the server certificate's notAfter, if TLS */
};

struct smtp_conn;
struct oauth2_token;

/* A connection to one server entry. Each entry has its own, so connections are never shared
 * between entries with different TLS settings. */
struct smtp_conn *smtp_conn_new(const struct server *s);
void smtp_conn_free(struct smtp_conn *c);

/* auth xoauth2 by the client-credentials grant: the connection uses t (kept by the caller, who
 * fetches it before opening a session) instead of a token of its own. */
void smtp_conn_share_token(struct smtp_conn *c, struct oauth2_token *t);
/* After a failed session: true when the server refused (535) a token that was not fetched for
 * this very session; the token is then forgotten, and one more try with a fresh one is due. */
bool smtp_token_rejected(struct smtp_conn *c, const struct smtp_result *r);

/* Sends one message (CRLF line ends). Returns the outcome, also stored in r. */
enum outcome smtp_send(struct smtp_conn *c, const char *mail_from, char *const *rcpt, size_t nrcpt,
                       const char *msg, size_t len, struct smtp_result *r);
void *smtp_conn_handle(struct smtp_conn *c); /* the CURL easy handle */

/* For an event loop that must never block: libcurl opens the session (TCP, TLS, EHLO, AUTH)
 * on smtp_conn_handle(c), which the caller adds to a multi handle of its own (one per
 * connection) and leaves there while the session is open; alertmail then speaks the
 * transaction itself, one message after the other on the same session. */
int smtp_open_begin(struct smtp_conn *c, struct smtp_result *r);
enum outcome smtp_open_end(struct smtp_conn *c, int curl_code, struct smtp_result *r);
bool smtp_is_open(const struct smtp_conn *c);
int smtp_socket(const struct smtp_conn *c); /* the open session's socket, or -1 */
/* Ends the session without a wait; the caller then removes the handle from its multi. */
void smtp_close(struct smtp_conn *c);

enum smtp_tx_wait {
	SMTP_TX_WANT_READ,  /* call smtp_tx_step when the socket is readable or at the deadline */
	SMTP_TX_WANT_WRITE, /* ... when it is writable or at the deadline */
	SMTP_TX_DONE,       /* r holds the outcome */
};

/* Starts one message on an open session (rcpt and msg must live until it is done); -1 with r
 * filled when it cannot start. */
int smtp_tx_start(struct smtp_conn *c, const char *mail_from, char *const *rcpt, size_t nrcpt,
                  const char *msg, size_t len, struct smtp_result *r);
enum smtp_tx_wait smtp_tx_step(struct smtp_conn *c, struct smtp_result *r);
int64_t smtp_tx_deadline(const struct smtp_conn *c); /* monotonic ms */

/* Opens a session (TCP, TLS, EHLO, AUTH) and closes it without sending mail. */
enum outcome smtp_probe(struct smtp_conn *c, struct smtp_result *r);

/* The session transcript of the last send or probe, AUTH exchange redacted. */
const char *smtp_transcript(const struct smtp_conn *c);

/* Pure: decides the outcome of a finished session from curl's code, the stage it reached and
 * the server's last reply; writes a human line into detail, with a hint where the reply's
 * cause is known (smtp_hint.h). errbuf is curl's error text. */
enum outcome smtp_classify(int curl_code, enum smtp_stage stage, const struct smtp_reply *reply,
                           const char *errbuf, char *detail, size_t detail_len);
/* Pure: the detail for a session that alertmail stopped at stage because the server's reply
 * broke one of the bounds above (why: "reply line longer than 2048 octets"). */
void smtp_describe_hostile(enum smtp_stage stage, const char *why, char *detail, size_t detail_len);
/* Pure: parses one reply line "250-2.1.0 text" into code, enhanced code and text; returns 1 for
 * the last line of a reply, 0 for a continuation line, -1 if it is not a reply line. */
int smtp_parse_reply_line(const char *line, size_t len, struct smtp_reply *r);

const char *outcome_name(enum outcome o);
const char *smtp_stage_name(enum smtp_stage s);

#endif

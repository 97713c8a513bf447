/* Internals shared by smtp.c, smtptx.c and smtp_track.c; no other module includes it. smtp.c
 * drives sessions through libcurl, smtptx.c speaks the transaction itself on a session libcurl
 * opened, and both go through the same tracking of stages, replies and the transcript
 * (smtp_track.c). */
#ifndef ALERTMAIL_SMTP_CONN_H
#define ALERTMAIL_SMTP_CONN_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conf.h"
#include "oauth2.h"
#include "smtp.h"

/* The transaction alertmail speaks itself once libcurl has opened the session. */
enum tx_state {
	TX_IDLE,
	TX_MAIL,  /* MAIL FROM sent or being sent: waiting for its reply */
	TX_RCPT,  /* RCPT TO number tx_rcpt - 1 */
	TX_DATA,  /* DATA: waiting for 354 */
	TX_BODY,  /* the message and the final dot: waiting for 250 */
	TX_DONE,
};

/* Why alertmail stopped a session itself: the header callback then refuses the next line. */
enum smtp_abort {
	ABORT_NONE,
	ABORT_AUTH,    /* credentials configured, and the session would go on without AUTH */
	ABORT_REFUSED, /* a refusal libcurl would step over: EHLO refused, with AUTH to come */
	ABORT_HOSTILE, /* a reply beyond the bounds (SMTP_REPLY_LINE_MAX, SMTP_REPLY_LINES_MAX) */
};

struct smtp_conn {
	const struct server *server;
	CURL *curl;
	char *url;
	char errbuf[CURL_ERROR_SIZE];
	struct buf transcript;
	/* Per session: */
	enum smtp_stage stage;
	struct smtp_reply reply;   /* the last complete reply */
	struct smtp_reply pending; /* a multi-line reply being read */
	bool in_reply;
	bool auth_done;
	bool quitting;   /* after QUIT: the 221 must not hide the reply that mattered */
	bool in_session; /* between send_begin and send_end (smtp_send) */
	/* The socket of this handle's connection. A handle's connections live in its own cache (or
	 * its own multi handle in the daemon), so there is at most one. */
	curl_socket_t sock;
	bool tls_up;    /* STARTTLS answered 220: the next EHLO is the one AUTH relies on */
	bool ehlo_auth; /* the EHLO reply being read offers AUTH */
	bool sent_helo; /* the last greeting command was HELO (libcurl's after a refused EHLO) */
	char auth_offer[128]; /* the mechanisms of that offer, for messages */
	/* auth xoauth2 by the client-credentials grant: the token in use, the conn's own or one
	 * shared by every connection to the server (the daemon's). */
	struct oauth2_token own_token;
	struct oauth2_token *token;
	bool token_was_fresh; /* the session now open(ing) got a token fetched just for it */
	/* Set by smtp_abort() to stop the session from a callback: why, and where. */
	const char *abort_reason;
	enum smtp_abort abort_kind;
	enum smtp_stage abort_stage;
	char abort_text[CURL_ERROR_SIZE + 48]; /* a reason made up from libcurl's error */
	size_t reply_lines;                    /* lines of the reply being read */
	int64_t started;
	/* The envelope and body of the message being sent, owned until the session ends. */
	char *mail_from;
	struct curl_slist *rcpt_list;
	const char *body;
	size_t body_len;
	size_t body_off;
	/* An open session driven by alertmail's own loop (smtp_open_* and smtp_tx_*). */
	bool open;
	bool opening;
	enum tx_state tx;
	size_t tx_rcpt;       /* the next recipient to send */
	char **tx_to;         /* the recipients of the message in progress */
	size_t tx_nto;
	struct buf out;       /* bytes to send */
	size_t out_off;
	struct buf in;        /* bytes received, not yet a whole line */
	int64_t tx_deadline;  /* of the current wait */
	int64_t tx_end;       /* total_timeout of the whole message */
	int64_t tx_started;
};

/* "reply line longer than SMTP_REPLY_LINE_MAX octets", for every reader of replies. */
extern const char smtp_line_too_long[];

/* Every line of a session, libcurl's or alertmail's own, goes through these: stages, replies,
 * the AUTH guard and the transcript (with AUTH redacted) stay the same whoever speaks. */
void smtp_line_in(struct smtp_conn *c, const char *line, size_t len);
void smtp_line_out(struct smtp_conn *c, const char *line, size_t len);
void smtp_transcript_add(struct smtp_conn *c, const char *dir, const char *line, size_t len);
void smtp_set_stage(struct smtp_conn *c, enum smtp_stage to);
/* Stops the session (the first reason counts): libcurl is refused the next reply line, and
 * after a hostile reply reading ends at once. */
void smtp_abort(struct smtp_conn *c, enum smtp_abort kind, const char *why);
/* After a failed session: if alertmail stopped it, puts that reason into r. */
void smtp_abort_result(struct smtp_conn *c, struct smtp_result *r);
/* Appends text to r's detail, as far as it has room. */
void smtp_detail_append(struct smtp_result *r, const char *text);
/* After a timeout: says in r that the server stopped in the middle of a reply line (partial
 * octets read without a line end) or of a multi-line reply. */
void smtp_note_unfinished(struct smtp_conn *c, size_t partial, struct smtp_result *r);

/* The life of one session: begin, set up the handle, then end with a result or fail early. */
void smtp_session_begin(struct smtp_conn *c, struct smtp_result *r);
void smtp_session_release(struct smtp_conn *c);
int smtp_setup(struct smtp_conn *c, char *why, size_t why_len);
enum outcome smtp_session_end(struct smtp_conn *c, CURLcode cc, struct smtp_result *r);
enum outcome smtp_session_fail(struct smtp_result *r, enum outcome o, const char *detail);
int64_t smtp_now_ms(void); /* monotonic */

/* Refuses an envelope that is not valid addresses, or has no recipient (PERMFAIL in r). */
int smtp_check_envelope(const char *mail_from, char *const *rcpt, size_t nrcpt,
                        struct smtp_result *r);

#endif

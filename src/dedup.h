/* De-duplication: the key of an alert on a channel, the decision whether it repeats one sent
 * (or on its way) within the channel's dedup_window, the table of keys with its expiry and
 * its bound, and the text form of that table in the state file. Pure: the caller gives the
 * time (wall-clock ms, since the state outlives the process) and does the file I/O
 * (dedup_state.c). */
#ifndef ALERTMAIL_DEDUP_H
#define ALERTMAIL_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "buf.h"

/* The longest dedup_window: a longer one would hide an alert that fires again for good. */
#define DEDUP_WINDOW_MAX_MS (30 * 86400000LL)
/* Fields of a dedup_key, and their nesting. */
#define DEDUP_FIELDS_MAX 16
#define DEDUP_FIELD_MAX 256
/* Keys kept at once; beyond it the least recently seen are forgotten (their next alert is
 * sent). The state file then holds at most about three lines per key. */
#define DEDUP_MAX_KEYS 50000
/* A key is a hash (SHA-256, the first 128 bits) of the channel and the fields' values: a
 * fixed size however long the values, and no collision anyone can make on purpose. */
#define DEDUP_KEY_LEN 16
/* The first line of the state file. */
#define DEDUP_FILE_HEADER "alertmail-dedup 1"
/* The state file keeps at most this much of a channel's name (it is for reading only: the key
 * has the whole name). */
#define DEDUP_CHANNEL_MAX 128
/* A line of the state file is at most this long (ids of 256 bytes and names of 128 make
 * about 600): a longer one is damage. */
#define DEDUP_LINE_MAX 1024

struct dedup_key {
	unsigned char h[DEDUP_KEY_LEN];
};

/* One alert about to be sent through one channel, as the decision sees it. */
struct dedup_alert {
	struct dedup_key key;
	uint64_t severity; /* a hash of the severity ("" when it has none) */
	bool resolved;     /* status: resolved */
	const char *id;
	const char *qid;
	const char *channel;
};

/* What a spool entry that a decision sent carries to its end (delivered, or failed for good). */
struct dedup_mark {
	bool on;
	struct dedup_key key;
	int64_t window_ms;
};

/* Checks a dedup_key field path: names of letters, digits, '_' and '-', separated by dots.
 * Returns NULL when it is good, else what is wrong. */
const char *dedup_field_check(const char *path);

/* The alert's key on channel: the channel's name and the values of the fields (dotted paths,
 * looked up in the alert as written; a generated id is no value). Returns 0, or -1 when a
 * field is missing, null or not a single value (a mapping, a list): *missing names it, and
 * such an alert is never a duplicate. */
int dedup_alert_make(const struct alert *a, const char *channel, char *const *fields,
                     size_t nfields, const char *qid, struct dedup_alert *out,
                     const char **missing);

/* Why an alert is sent or not. */
enum dedup_why {
	DEDUP_NEW,          /* no alert with this key is known: sent */
	DEDUP_EXPIRED,      /* the last one went out longer than dedup_window ago: sent */
	DEDUP_SEVERITY,     /* another severity than the last one: sent */
	DEDUP_RESOLVED,     /* resolved after it fired: sent */
	DEDUP_REFIRED,      /* firing again after it was resolved: sent */
	DEDUP_AGAIN,        /* this very spool entry again (a retry, a restart): sent */
	DEDUP_DUP_PENDING,  /* repeats one still on its way (queued, in flight, deferred) */
	DEDUP_DUP_SENT,     /* repeats one sent within dedup_window */
	DEDUP_DUP_DELIVERED /* this very entry was delivered already (a crash undid its removal) */
};

struct dedup_decision {
	enum dedup_why why;
	bool duplicate;
	/* A duplicate: how many repeats of that alert were not sent so far, this one included.
	 * Sent: how many repeats of the previous alert with this key were not sent (0: none),
	 * for the template's dedup.suppressed. */
	unsigned long suppressed;
	/* When the alert this one repeats was sent (or taken, when on its way); sent: when the
	 * previous alert with this key was (0: none). Wall-clock ms. */
	int64_t previous_at;
	char previous_id[ALERT_ID_MAX + 1];
};

struct dedup_table;

struct dedup_table *dedup_table_new(size_t max_keys);
void dedup_table_free(struct dedup_table *t);
size_t dedup_table_count(const struct dedup_table *t);
/* Keys whose alert is on its way. */
size_t dedup_table_pending(const struct dedup_table *t);
/* Keys forgotten so far because the table was full (the caller logs the first of each run). */
unsigned long dedup_table_evicted(const struct dedup_table *t);

/* Decides about a, now (wall ms), for a channel with this window (> 0), and records the
 * result: a key whose alert is sent points to that alert (on its way) from now on; a
 * duplicate is counted. */
void dedup_decide(struct dedup_table *t, const struct dedup_alert *a, int64_t window_ms,
                  int64_t now, struct dedup_decision *out);
/* The entry qid, which the key's last decision sent, was delivered now: the window starts.
 * Nothing happens when the key points to another entry meanwhile (or to none). */
void dedup_sent(struct dedup_table *t, const struct dedup_key *k, const char *qid,
                int64_t window_ms, int64_t now);
/* The entry qid failed for good: the key is forgotten, so that the next alert with it is
 * sent. Nothing happens when the key points to another entry. */
void dedup_forget(struct dedup_table *t, const struct dedup_key *k, const char *qid);

/* Drops the keys that are over: a key whose alert was sent, once dedup_window has passed
 * since it and since its last repeat; a key on its way for longer than stale_ms (its entry
 * must have been removed by hand, else it would have ended). Returns how many. */
size_t dedup_table_prune(struct dedup_table *t, int64_t now, int64_t stale_ms);

/* The keys whose alert was on its way when the state was written, each given to fn once
 * (after a load): fn returns what became of the entry qid. */
enum dedup_fate {
	DEDUP_FATE_PENDING,   /* still in the spool: on its way */
	DEDUP_FATE_DELIVERED, /* gone: delivered (the window counts from when it was taken) */
	DEDUP_FATE_FORGET,    /* failed, or back in new/ for another try: forget the key */
};
void dedup_table_settle(struct dedup_table *t, enum dedup_fate (*fn)(void *ctx, const char *qid),
                        void *ctx);

/* The state file's text. A snapshot is the header line and one line per key; changes are
 * appended to it as further lines, each replacing what an earlier line said about its key:
 *
 *   k HASH STATE AT SEEN EXPIRES SUPPRESSED CARRIED CARRIED_AT SEVERITY R QID CHANNEL ID
 *   f HASH
 *
 * HASH the key (32 hex digits); STATE p (on its way) or s (sent); AT when it was taken (p) or
 * delivered (s), SEEN its last repeat, EXPIRES when a sent key is over, CARRIED and CARRIED_AT
 * what its alert's template was given (wall ms); SEVERITY 16 hex digits; R r (resolved) or
 * a; then the entry's queue id, the channel and the alert's id (the rest of the line). An f
 * line forgets a key. */
/* The whole table as a snapshot; the changes since are marked as written. */
void dedup_table_format(struct dedup_table *t, struct buf *out);
/* The lines for the changes since the last format or changes; returns how many. */
size_t dedup_table_changes(struct dedup_table *t, struct buf *out);
bool dedup_table_dirty(const struct dedup_table *t);

/* What a load found. */
struct dedup_load {
	size_t lines;   /* records read */
	size_t bad;     /* lines that were not records: skipped */
	size_t expired; /* keys over already: dropped */
	size_t dropped; /* keys beyond the table's bound: the least recently seen dropped */
	bool bad_header;
	unsigned first_bad_line; /* 1-based; 0: none */
	char first_bad[128];     /* what was wrong with it */
};

/* Applies a state file's text to an empty table; whatever cannot be read is skipped and
 * counted, never fatal. Keys over by now (see prune) are dropped. */
void dedup_table_load(struct dedup_table *t, const char *text, size_t len, int64_t now,
                      int64_t stale_ms, struct dedup_load *r);

/* The alert's own decision for its template: "dedup" with suppressed (the count) and since
 * (ISO 8601, when the previous alert with the key went), when repeats were not sent. */
void dedup_template_data(struct ynode *tree, const struct dedup_decision *d);

/* The decision about the alert id, for the log line "dedup: id=... channel=...: " it ends:
 * "duplicate of the alert sent at TIME (N so far)", "sent: its severity changed", ... */
void dedup_describe(const struct dedup_decision *d, const char *id, struct buf *out);

#endif

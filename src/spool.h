/* The spool: the directories alerts live in and every change of an alert's state.
 *
 *   tmp/       writers create and fill a file here
 *   new/       writers rename the complete file here; the daemon takes it from here
 *   active/    claimed by the daemon: being delivered (the daemon's own)
 *   deferred/  waiting for the next attempt (the daemon's own); meta/QID holds the retry state
 *   meta/      one small file per deferred alert: attempts, times, last error
 *   failed/    given up on or unparseable; QID.reason beside each
 *
 * Each alert the daemon takes gets a queue id (QID) that sorts by arrival and is unique on
 * the file system: "<seconds>.<microseconds>.<inode>". An alert routed to several channels
 * becomes one entry per channel, each pinned to its channel by its id: "QID+CHANNEL". A state
 * change is a rename(); where a crash must not undo it, the file is fsync'd first and the
 * directory after. */
#ifndef ALERTMAIL_SPOOL_H
#define ALERTMAIL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "err.h"

enum spool_dir {
	SPOOL_TMP,
	SPOOL_NEW,
	SPOOL_ACTIVE,
	SPOOL_DEFERRED,
	SPOOL_META,
	SPOOL_FAILED,
	SPOOL_NDIRS,
};

/* A queue id with room for a pin: "<seconds>.<microseconds>.<inode>+<channel>". */
#define SPOOL_QID_MAX 128
#define SPOOL_NAME_MAX 256
/* The longest channel name a queue id can be pinned to. */
#define SPOOL_PIN_MAX 64

struct spool;

/* Opens the spool at root; with create, makes missing directories: the root 02750, tmp/ and
 * new/ 02770 so that the group may submit, the daemon's own 02750 so that it may look. */
int spool_open(const char *root, bool create, struct spool **out, struct err *e);
void spool_close(struct spool *s);
const char *spool_root(const struct spool *s);
const char *spool_dir_name(enum spool_dir d);

/* The daemon's exclusive claim on the spool: a lock on root/.lock (an open file description
 * lock, fcntl F_OFD_SETLK) holding its PID.
 * A second daemon on the same spool is refused with the PID of the first. */
int spool_lock(struct spool *s, struct err *e);
/* The PID of the daemon holding the lock, or 0 when none does. */
long spool_lock_holder(struct spool *s);

/* Writers: stores data as one alert (tmp/ with O_EXCL, fsync, rename into new/, fsync of new/).
 * name receives the file name in new/. */
int spool_submit(struct spool *s, const void *data, size_t len, char name[SPOOL_NAME_MAX],
                 struct err *e);

/* Daemon: takes new/NAME into active/QID. Returns 1 if NAME was gone (taken or removed). What
 * is not a regular file (a symbolic link, a FIFO, a directory) goes to failed/QID unread, with
 * its reason: 2, with what it was in e. */
int spool_claim(struct spool *s, const char *name, char qid[SPOOL_QID_MAX], struct err *e);
/* Reads DIR/QID whole, refusing more than max bytes. */
int spool_read(struct spool *s, enum spool_dir d, const char *qid, size_t max, struct buf *out,
               struct err *e);

/* The retry state of a deferred alert. */
struct spool_meta {
	int attempts;
	time_t received;     /* when the daemon took it */
	time_t first_failed; /* the first failed attempt: give_up_after counts from here */
	time_t next_attempt;
	char channel[128];
	char last_error[768];
	/* Every attempt so far, one line each ("<time> <server>: <what happened>"), newest last;
	 * the oldest are dropped beyond SPOOL_HISTORY_MAX lines. Free with spool_meta_free(). */
	struct buf history;
};

#define SPOOL_HISTORY_MAX 200

/* Appends one attempt line to m->history (control characters become spaces). */
void spool_meta_add_attempt(struct spool_meta *m, const char *line);
void spool_meta_free(struct spool_meta *m);

int spool_meta_read(struct spool *s, const char *qid, struct spool_meta *m, struct err *e);
/* Pure: the text form of the meta file, and back. */
void spool_meta_format(const struct spool_meta *m, struct buf *out);
int spool_meta_parse(const char *text, size_t len, struct spool_meta *m);

/* State changes of a claimed alert (in active/): */
/* Delivered: active/QID and meta/QID are removed. */
int spool_done(struct spool *s, const char *qid, struct err *e);
/* Deferred: meta/QID written (fsync), then active/QID -> deferred/QID (fsync). */
int spool_defer(struct spool *s, const char *qid, const struct spool_meta *m, struct err *e);
/* Due again: deferred/QID -> active/QID. */
int spool_activate(struct spool *s, const char *qid, struct err *e);
/* Given up or unparseable: failed/QID.reason written (fsync), then DIR/QID -> failed/QID
 * (fsync), meta/QID removed. */
int spool_fail(struct spool *s, enum spool_dir from, const char *qid, const char *reason,
               struct err *e);
/* failed/QID (or deferred/QID) -> new/QID for another round; the reason or meta is removed. */
int spool_requeue(struct spool *s, enum spool_dir from, const char *qid, struct err *e);

/* Calls fn for each entry of a directory that is an alert (no dot-files, no .reason files),
 * in directory order; stops when fn returns non-zero and returns that. */
int spool_list(struct spool *s, enum spool_dir d, int (*fn)(void *ctx, const char *name),
               void *ctx, struct err *e);

/* Removes files in tmp/ older than max_age seconds; returns how many. */
int spool_clean_tmp(struct spool *s, time_t max_age, struct err *e);

/* Fan-out: the entries of one alert for its other channels, copies of active/QID made under
 * new queue ids, and made durable for a whole batch of alerts at once. A copy is a hard link
 * where the kernel allows one (no data written); else the bytes (data, len: the file as
 * read) are written into tmp/ and linked into active/ at the commit. */
struct spool_copies;
struct spool_copies *spool_copies_new(void);
/* Adds active/NEWQID, a copy of active/QID, to the batch: 0 once made or to be made by the
 * commit, 1 when an entry NEWQID exists already (in active/, deferred/ or failed/: an earlier
 * fan-out of the same alert got that far), -1 on error. */
int spool_copy(struct spool *s, struct spool_copies *b, const char *qid, const char *newqid,
               const void *data, size_t len, struct err *e);
/* Makes every copy of the batch durable (the ones written: one syncfs for all; then one fsync
 * of active/), and empties the batch. On error the copies not yet in active/ are dropped and
 * named in e; those in active/ stay (they are complete). */
int spool_copies_commit(struct spool *s, struct spool_copies *b, struct err *e);
/* Frees the batch; copies written but not committed are removed from tmp/. */
void spool_copies_free(struct spool *s, struct spool_copies *b);
/* Renames active/QID to active/NEWQID (and meta/QID, if any): 0; 1 when an entry NEWQID
 * exists already (in active/, deferred/ or failed/), which is left as it is. No fsync: after
 * a crash the entry has one name or the other. */
int spool_rename_active(struct spool *s, const char *qid, const char *newqid, struct err *e);

/* True when DIR/NAME exists. */
bool spool_exists(struct spool *s, enum spool_dir d, const char *name);

/* Pure: the channel a queue id (or a name in new/) is pinned to: CHANNEL of
 * "<digits>.<6 digits>.<digits>+CHANNEL" (letters, digits, '-', '.', '_', at most
 * SPOOL_PIN_MAX bytes), else NULL. */
const char *spool_qid_channel(const char *qid);
/* Pure: qid (without any pin it has) pinned to channel, into out; -1 when it does not fit. */
int spool_qid_pin(const char *qid, const char *channel, char out[SPOOL_QID_MAX]);

/* Pure: true for a name the daemon may take from new/ (not a dot-file, no '/'). */
bool spool_name_ok(const char *name);

#endif

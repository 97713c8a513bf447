/* The de-duplication state file, STATE/dedup.state: a snapshot of the table (written to a
 * temporary file, fsync'd and renamed into place) followed by the changes since, appended in
 * batches; a load takes the last word about each key. A crash never corrupts it: a rename is
 * all or nothing, and an append cut short is at most a last line without its line break, which
 * a load leaves out. The file is compacted (a new snapshot) when what was appended outgrows
 * the last snapshot, so that it stays under twice a snapshot's size. */
#ifndef ALERTMAIL_DEDUP_STATE_H
#define ALERTMAIL_DEDUP_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "dedup.h"
#include "err.h"

#define DEDUP_STATE_FILE "dedup.state"
/* A larger state file is read up to this size: what is beyond is lost, as if damaged. */
#define DEDUP_STATE_MAX_SIZE ((size_t)64 * 1024 * 1024)

struct dedup_state;

/* Reads dir/dedup.state into a new table (of at most max_keys), dropping what is over by now
 * (wall ms; see dedup_table_prune). *out is always set and usable: when the file cannot be
 * read, the table is empty and -1 says why in e; what could not be read in a file that could
 * is in *r. A missing file is an empty state, no error. */
int dedup_state_open(const char *dir, size_t max_keys, int64_t now, int64_t stale_ms,
                     struct dedup_state **out, struct dedup_load *r, struct err *e);
struct dedup_table *dedup_state_table(struct dedup_state *s);
const char *dedup_state_path(const struct dedup_state *s);
/* Whether the file was there when opened. */
bool dedup_state_existed(const struct dedup_state *s);

/* Writes the changes of the table: appended (no fsync), or as a new snapshot when the file
 * needs one (none yet, more appended than the last snapshot holds, an earlier write that
 * failed). */
int dedup_state_write(struct dedup_state *s, struct err *e);
/* A new snapshot now. */
int dedup_state_compact(struct dedup_state *s, struct err *e);
/* Appended lines not yet fsync'd; and fsync (fdatasync) of them. */
bool dedup_state_unsynced(const struct dedup_state *s);
int dedup_state_sync(struct dedup_state *s, struct err *e);
void dedup_state_close(struct dedup_state *s);

#endif

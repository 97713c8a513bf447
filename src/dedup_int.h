/* Internals of de-duplication, shared by its files (dedup.c: keys, decisions, the table;
 * dedup_text.c: the table's text form); no other module includes it. */
#ifndef ALERTMAIL_DEDUP_INT_H
#define ALERTMAIL_DEDUP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dedup.h"
#include "spool.h"

struct dedup_entry {
	struct dedup_key key;
	bool pending;  /* its alert is on its way (else: delivered at `at`) */
	bool resolved; /* its alert was a resolution */
	bool dirty;    /* changed since its last line was written */
	bool written;  /* a line about it is in the file: removing it needs an f line */
	int64_t at;    /* taken (pending), or delivered (wall ms) */
	int64_t seen;  /* its last repeat, or `at` */
	int64_t expires;
	unsigned long suppressed; /* repeats not sent since its alert */
	unsigned long carried;    /* what its alert's template was given */
	int64_t carried_at;
	uint64_t severity;
	char qid[SPOOL_QID_MAX];
	char *channel;
	char *id;
	struct dedup_entry *hnext;         /* hash chain */
	struct dedup_entry *lprev, *lnext; /* least recently seen first */
	struct dedup_entry *dprev, *dnext; /* changed since the last write */
};

struct dedup_table {
	struct dedup_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count, max;
	struct dedup_entry *lru_head, *lru_tail;
	struct dedup_entry *dirty_head;
	struct buf forgets; /* f lines not written yet */
	size_t nforgets;
	unsigned long evicted;
};

struct dedup_entry *dedup_entry_find(const struct dedup_table *t, const struct dedup_key *k);
/* Into the hash and, as the most recently seen, the LRU list; no bound applied. */
void dedup_entry_insert(struct dedup_table *t, struct dedup_entry *en);
/* Out of the table, freed; an f line for the file when a line about it was written. */
void dedup_entry_remove(struct dedup_table *t, struct dedup_entry *en);
void dedup_entry_free(struct dedup_entry *en);
/* Off the list of changes to write. */
void dedup_entry_clean(struct dedup_table *t, struct dedup_entry *en);
void dedup_lru_append(struct dedup_table *t, struct dedup_entry *en);
void dedup_key_hex(const struct dedup_key *k, char out[2 * DEDUP_KEY_LEN + 1]);

#endif

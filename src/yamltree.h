/* libyaml events -> a small tree that remembers line and column, shared by config and alerts. */
#ifndef ALERTMAIL_YAMLTREE_H
#define ALERTMAIL_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

enum ynode_kind {
	YNODE_SCALAR,
	YNODE_MAP,
	YNODE_SEQ,
};

struct ynode {
	enum ynode_kind kind;
	unsigned line;   /* 1-based position of the node's start */
	unsigned column; /* 1-based */
	/* Scalars: the text, NUL-terminated (may also contain NULs: use len). */
	char *str;
	size_t len;
	bool plain; /* unquoted and untagged: may be read as null, bool or number */
	/* Maps: count key/value pairs in keys[] and values[].
	 * Sequences: count items in values[]. */
	size_t count;
	struct ynode **keys;
	struct ynode **values;
};

/* Limits that keep a hostile document bounded: mappings and lists nested at most this deep,
 * and at most this many nodes (keys, values and list items) in one document, which bounds
 * the memory of the tree whatever the size of the file (a node costs about 100 bytes, however
 * short its text). */
#define YTREE_MAX_DEPTH 64
#define YTREE_MAX_NODES 100000

/* Parses one YAML (or JSON) document, UTF-8. Aliases and duplicate keys are errors.
 * An empty document gives an empty map. The error names name:line:column. */
int ytree_parse(const char *data, size_t len, const char *name, struct ynode **out, struct err *e);
int ytree_parse_file(const char *path, size_t max_size, struct ynode **out, struct err *e);
void ynode_free(struct ynode *n);

/* Map lookup by key; NULL when absent or n is not a map. */
const struct ynode *ynode_get(const struct ynode *n, const char *key);
/* Resolves a dotted path ("labels.team") through nested maps; each part between dots is a
 * key of fewer than YNODE_PATH_PART_MAX bytes (a longer one finds nothing). */
#define YNODE_PATH_PART_MAX 256
const struct ynode *ynode_path(const struct ynode *n, const char *path);

/* YAML 1.2 core schema readings of a plain scalar. */
bool ynode_is_null(const struct ynode *n);
/* Returns 1 true, 0 false, -1 not a boolean. */
int ynode_bool(const struct ynode *n);

/* Builders, for data made by the program (test alerts, template extras). */
struct ynode *ynode_new_map(void);
struct ynode *ynode_new_seq(void);
struct ynode *ynode_new_scalar(const char *s, size_t len, bool plain);
void ynode_map_set(struct ynode *map, const char *key, struct ynode *value);
void ynode_seq_add(struct ynode *seq, struct ynode *item);
struct ynode *ynode_copy(const struct ynode *n);
/* The nodes of the tree n, itself and the keys included, as YTREE_MAX_NODES counts them. */
size_t ynode_count(const struct ynode *n);

const char *ynode_kind_name(enum ynode_kind k);

#endif

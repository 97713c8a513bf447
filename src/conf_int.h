/* Internals of the config parser, shared by its files (conf.c: the top level, channels and
 * routes; conf_server.c: server entries; conf_parse.c: reading values with their positions);
 * no other module includes it. */
#ifndef ALERTMAIL_CONF_INT_H
#define ALERTMAIL_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conf.h"
#include "secret.h"
#include "yamltree.h"

/* Longer waits are mistakes; the bounds also keep every timeout in milliseconds within a
 * 32-bit long, the type libcurl takes them as. */
#define TIMEOUT_MAX_MS (3600 * 1000LL)
#define TOTAL_TIMEOUT_MAX_MS (86400 * 1000LL)

/* Server and channel names, and host names: letters, digits, '-', '.', and '_' (which
 * internal host names use). */
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"

/* One parse: the file name for positions and every error found. */
struct cparse {
	const char *file;
	struct config *cfg; /* what is being filled */
	bool no_secrets; /* CONFIG_NO_SECRETS: positions and sources checked, nothing read */
	struct secret_ctx secrets; /* what opening a sealed value needs: the state directory */
	struct buf *errors;
	struct buf *warnings;
	int nerrors;
};

/* A key that gives a secret, and how. */
struct secret_key {
	const char *key;
	enum secret_source source;
};

/* Errors and warnings at a node's position ("file:line:column: ..."), collected, not fatal. */
__attribute__((format(printf, 3, 4))) void cp_error(struct cparse *p, const struct ynode *at,
                                                    const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void cp_warn(struct cparse *p, const struct ynode *at,
                                                   const char *fmt, ...);

/* Reports every key of map that is not in known; returns the number of unknown keys. */
int cp_check_keys(struct cparse *p, const struct ynode *map, const char *where,
                  const char *const *known);

bool cp_expect_kind(struct cparse *p, const struct ynode *n, enum ynode_kind kind,
                    const char *what);

/* A non-empty string without control characters (they could end up in headers or logs). */
char *cp_str(struct cparse *p, const struct ynode *n, const char *what);

bool cp_bool(struct cparse *p, const struct ynode *n, const char *what, bool *out);

bool cp_long(struct cparse *p, const struct ynode *n, const char *what, long min, long max,
             long *out);

/* A size in bytes: "65536", "512KiB", "1MiB" (also K, KB, M, MB, all powers of 1024). */
bool cp_size(struct cparse *p, const struct ynode *n, const char *what, size_t min, size_t max,
             size_t *out);

bool cp_duration(struct cparse *p, const struct ynode *n, const char *what, int64_t *out);

/* A list of strings, where a single string is a list of one. cp_list_count reports a list of
 * the wrong shape and returns 0 for it; cp_list_item gives each item's node, so that an error
 * about an item points at that item. */
size_t cp_list_count(struct cparse *p, const struct ynode *n, const char *what);

const struct ynode *cp_list_item(const struct ynode *n, size_t i);

/* The daemon's working directory is not the config's: relative paths would mislead. */
char *cp_path(struct cparse *p, const struct ynode *n, const char *what);

/* A secret file: an absolute path, or $CREDENTIALS_DIRECTORY/NAME (systemd's LoadCredential=),
 * expanded here. Commands that read no secret run outside the service: for them the variable
 * need not be set, and the path stays as written. */
char *cp_secret_path(struct cparse *p, const struct ynode *n, const char *what);

/* Reads the secret that map gives through one of keys: a file's path, a variable's name, a
 * sealed value or the value itself, into *out (unless CONFIG_NO_SECRETS). Errors and warnings
 * are reported at the key, as "OWNER: PREFIXKEY: ...". At most one of the keys may be present;
 * returns how many are, *at the last one. */
int cp_secret(struct cparse *p, const char *owner, const char *prefix, const struct ynode *map,
              const struct secret_key *keys, size_t nkeys, char **out, const struct ynode **at);

/* A sender or recipient: "Name <local@domain>" or a bare address. */
char *cp_mailbox(struct cparse *p, const struct ynode *n, const char *what);

/* A timeout within [0, max_ms]; the lower bounds are cross-field checks. */
void cp_timeout(struct cparse *p, const struct ynode *n, const char *what, int64_t max_ms,
                int64_t *out);

/* What goes into the server's URL: a host name, an IPv4 address or an IPv6 address. Nothing
 * else ('@', '/', '?', '#', spaces) can change what the URL means. */
bool cp_host_valid(const char *h);

/* Server and channel names appear in every log line about them and on command lines: plain
 * words only, so that no control character reaches a log and none needs quoting. */
void cp_check_name(struct cparse *p, const struct ynode *key, const char *what);

/* conf_dedup.c: dedup_window and dedup_key, at the top level and in each channel (after the
 * channels are parsed); and freeing them. */
void conf_parse_dedup(struct cparse *p, struct config *c, const struct ynode *root);
void conf_free_dedup(struct config *c);

/* conf_server.c: one entry of servers:, with its defaults, secrets and cross-field checks. */
void conf_parse_server(struct cparse *p, struct server *s, const struct ynode *key,
                       const struct ynode *map);

#endif

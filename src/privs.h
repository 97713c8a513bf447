/* Privileges: the user the daemon runs as (dropping root for the configured one), and whether
 * the directories and secret files it uses are safe from other users and usable by it. */
#ifndef ALERTMAIL_PRIVS_H
#define ALERTMAIL_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

struct config;

/* Who the daemon is, for judging what it can reach: a user, its groups and its name. */
struct privs_id {
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int ngroups;
	char name[64];
};

/* The identity of the user named user, with its supplementary groups. */
int privs_id_of_user(const char *user, struct privs_id *id, struct err *e);
/* The identity this process runs with (effective IDs and its groups). */
void privs_id_current(struct privs_id *id);
void privs_id_free(struct privs_id *id);

/* Becomes user for good: its groups, its group and its user ID, real, effective and saved.
 * Fails, changing nothing it could not undo, unless the process runs as root, and for root
 * itself or a user in root's group (neither would give up anything). */
int privs_drop(const char *user, struct err *e);

/* Checks, for the daemon running as id, the spool and its directories, the state directory
 * and every secret file of cfg: nothing that other users may change (a world-writable new/
 * would let anyone send mail as the alerts' sender), nothing owned by a user other than id or
 * root, and everything usable by id. Missing directories are fine (the daemon makes them).
 * Appends one line per problem to problems, each naming the path, what is wrong and the
 * command that fixes it; returns the number of problems. With notes, also a line for the spool
 * and the state directory when they are fine or not made yet. */
int privs_check_files(const struct config *cfg, const struct privs_id *id, struct buf *problems,
                      struct buf *notes);

/* The umask of the daemon and the commands: nothing they create is writable by the group or
 * visible to others, unless a mode is set on purpose (the spool's group directories). */
#define PRIVS_UMASK 0027

#endif

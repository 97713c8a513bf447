#include "config.h"

#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "spool.h"

static void set_name(struct privs_id *id, const char *name)
{
	snprintf(id->name, sizeof(id->name), "%s", name);
}

int privs_id_of_user(const char *user, struct privs_id *id, struct err *e)
{
	struct passwd *pw;
	int n = 0;

	memset(id, 0, sizeof(*id));
	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		err_set(e, "no such user '%s'%s%s", user, errno != 0 ? ": " : "",
		        errno != 0 ? strerror(errno) : "");
		return -1;
	}
	id->uid = pw->pw_uid;
	id->gid = pw->pw_gid;
	set_name(id, pw->pw_name);
	/* The first call only counts: it fails, telling how many groups there are. */
	getgrouplist(pw->pw_name, pw->pw_gid, NULL, &n);
	if (n < 1)
		n = 1;
	id->groups = xcalloc((size_t)n, sizeof(gid_t));
	if (getgrouplist(pw->pw_name, pw->pw_gid, id->groups, &n) < 0) {
		id->groups[0] = pw->pw_gid;
		n = 1;
	}
	id->ngroups = n;
	return 0;
}

void privs_id_current(struct privs_id *id)
{
	struct passwd *pw;
	int n;

	memset(id, 0, sizeof(*id));
	id->uid = geteuid();
	id->gid = getegid();
	pw = getpwuid(id->uid);
	if (pw != NULL)
		set_name(id, pw->pw_name);
	else
		snprintf(id->name, sizeof(id->name), "uid %lu", (unsigned long)id->uid);
	n = getgroups(0, NULL);
	if (n > 0) {
		id->groups = xcalloc((size_t)n, sizeof(gid_t));
		n = getgroups(n, id->groups);
	}
	id->ngroups = n > 0 ? n : 0;
}

void privs_id_free(struct privs_id *id)
{
	free(id->groups);
	id->groups = NULL;
	id->ngroups = 0;
}

static bool in_groups(const struct privs_id *id, gid_t g)
{
	if (g == id->gid)
		return true;
	for (int i = 0; i < id->ngroups; i++)
		if (id->groups[i] == g)
			return true;
	return false;
}

int privs_drop(const char *user, struct err *e)
{
	struct privs_id id;
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (privs_id_of_user(user, &id, e) < 0)
		return -1;
	if (geteuid() != 0) {
		err_set(e, "cannot become user '%s': only root can change its user", id.name);
		privs_id_free(&id);
		return -1;
	}
	if (id.uid == 0) {
		err_set(e, "user: %s is root: name a user of its own (for example alertmail), or "
		           "leave user: out and pass --allow-root",
		        id.name);
		privs_id_free(&id);
		return -1;
	}
	/* Root's group is as good as root for much of the system: it must not come along. */
	if (in_groups(&id, 0)) {
		err_set(e, "cannot become user '%s': it belongs to group 0 (root's), which the daemon "
		           "would keep; give it a user outside that group",
		        id.name);
		privs_id_free(&id);
		return -1;
	}
	/* Groups first: once the user ID is no longer root, they cannot be changed. */
	if (setgroups((size_t)id.ngroups, id.groups) < 0 || setresgid(id.gid, id.gid, id.gid) < 0 ||
	    setresuid(id.uid, id.uid, id.uid) < 0) {
		err_set(e, "cannot become user '%s': %s", id.name, strerror(errno));
		privs_id_free(&id);
		return -1;
	}
	privs_id_free(&id);
	/* Gone for good: no ID left that is root's, and no way back. */
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
	    ruid == 0 || euid == 0 || suid == 0 || rgid == 0 || egid == 0 || sgid == 0 ||
	    setuid(0) == 0) {
		err_set(e, "cannot become user '%s': root's IDs remain after the change", user);
		return -1;
	}
	/* A change of user resets this to the system's default; keep secrets out of cores. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	return 0;
}


/* Whether id has every permission of want (a mask of 4 read, 2 write, 1 search) on st, as
 * the kernel decides it without ACLs: the owner's bits, else the group's, else the others'. */
static bool can(const struct privs_id *id, const struct stat *st, unsigned want)
{
	unsigned bits;

	if (id->uid == 0)
		return true;
	if (st->st_uid == id->uid)
		bits = (st->st_mode >> 6) & 7;
	else if (in_groups(id, st->st_gid))
		bits = (st->st_mode >> 3) & 7;
	else
		bits = st->st_mode & 7;
	return (bits & want) == want;
}

static void user_name(uid_t uid, char *out, size_t size)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL)
		snprintf(out, size, "%s", pw->pw_name);
	else
		snprintf(out, size, "uid %lu", (unsigned long)uid);
}

static void group_name(gid_t gid, char *out, size_t size)
{
	struct group *gr = getgrgid(gid);

	if (gr != NULL)
		snprintf(out, size, "%s", gr->gr_name);
	else
		snprintf(out, size, "gid %lu", (unsigned long)gid);
}

/* What a file or directory must be. */
struct want {
	const char *what;  /* "spool", "state", "secret": the first word of each line */
	const char *why;   /* what a user who may change it could do */
	bool dir;          /* a directory: read, write and search; else a file: read */
	bool group_writes; /* the group may write (tmp/ and new/: submitters) */
};

static int check_path(const char *path, const struct want *w, const struct privs_id *id,
                      struct buf *out, struct buf *notes)
{
	char owner[64], group[64];
	unsigned mode;
	struct stat st;
	int bad = 0;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT && w->dir) {
			if (notes != NULL)
				buf_printf(notes, "%-10s %s: does not exist yet (created by the daemon)\n",
				           w->what, path);
			return 0;
		}
		buf_printf(out, "%-10s %s: %s\n", w->what, path, strerror(errno));
		return 1;
	}
	if (w->dir != S_ISDIR(st.st_mode)) {
		buf_printf(out, "%-10s %s: not a %s\n", w->what, path,
		           w->dir ? "directory" : "file");
		return 1;
	}
	mode = (unsigned)(st.st_mode & 07777);
	user_name(st.st_uid, owner, sizeof(owner));
	group_name(st.st_gid, group, sizeof(group));
	if ((st.st_mode & S_IWOTH) != 0) {
		buf_printf(out,
		           "%-10s %s: writable by any user (mode %04o), who could %s; fix: chmod o-w "
		           "%s\n",
		           w->what, path, mode, w->why, path);
		bad++;
	}
	if ((st.st_mode & S_IWGRP) != 0 && !w->group_writes) {
		buf_printf(out,
		           "%-10s %s: writable by the group %s (mode %04o), whose members could %s; "
		           "fix: chmod g-w %s\n",
		           w->what, path, group, mode, w->why, path);
		bad++;
	}
	if (st.st_uid != id->uid && st.st_uid != 0) {
		if (id->uid == 0)
			buf_printf(out, "%-10s %s: owned by %s, not by root (the daemon's user), who could "
			                "%s; fix: chown root %s\n",
			           w->what, path, owner, w->why, path);
		else
			buf_printf(out,
			           "%-10s %s: owned by %s, neither the daemon's user (%s) nor root, who "
			           "could %s; fix: chown %s %s\n",
			           w->what, path, owner, id->name, w->why, id->name, path);
		bad++;
	} else if (!can(id, &st, w->dir ? 7 : 4)) {
		/* Its own file: the mode is what is missing; root's: the owner. */
		bool own = st.st_uid == id->uid;
		buf_printf(out,
		           "%-10s %s: the daemon's user %s cannot %s it (owner %s, group %s, mode "
		           "%04o); fix: %s %s %s\n",
		           w->what, path, id->name, w->dir ? "read and write in" : "read", owner,
		           group, mode, own ? "chmod" : "chown",
		           own ? (w->dir ? "u+rwx" : "u+r") : id->name, path);
		bad++;
	}
	if (bad == 0 && notes != NULL)
		buf_printf(notes, "%-10s %s: ok\n", w->what, path);
	return bad;
}

int privs_check_files(const struct config *cfg, const struct privs_id *id, struct buf *problems,
                      struct buf *notes)
{
	static const struct want spool = {"spool", "add, change or remove alerts", true, false};
	static const struct want submit = {"spool", "add, change or remove alerts", true, true};
	static const struct want state = {"state", "replace the host key", true, false};
	static const struct want secret = {"secret", "read or replace the secret", false, false};
	int bad = check_path(cfg->spool, &spool, id, problems, notes);

	for (int d = 0; d < SPOOL_NDIRS; d++) {
		char *path = xasprintf("%s/%s", cfg->spool, spool_dir_name((enum spool_dir)d));
		bad += check_path(path, d == SPOOL_TMP || d == SPOOL_NEW ? &submit : &spool, id,
		                  problems, NULL);
		free(path);
	}
	bad += check_path(cfg->state, &state, id, problems, notes);
	for (size_t i = 0; i < cfg->nsecret_files; i++)
		bad += check_path(cfg->secret_files[i], &secret, id, problems, NULL);
	return bad;
}

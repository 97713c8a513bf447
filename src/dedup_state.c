/* The de-duplication state file: load, appended changes, snapshots. */
#include "config.h"

#include "dedup_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

#define TMP_NAME DEDUP_STATE_FILE ".tmp"
/* Appended bytes beyond the last snapshot's size and this call for a new snapshot: the file
 * stays under twice the size of a snapshot (at the bound of keys, within what a load reads),
 * and each byte of state is written about twice. */
#define COMPACT_SLACK ((size_t)256 * 1024)

struct dedup_state {
	char *dir;
	char *path;
	struct dedup_table *t;
	int fd;          /* the file, for appending; -1: none yet, the next write is a snapshot */
	size_t snapshot; /* bytes of the last snapshot */
	size_t appended; /* bytes appended since */
	bool unsynced;   /* appended since the last fsync */
	bool must_write; /* an earlier append failed: the file may end in a partial line */
	bool existed;
};

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads the file whole, up to DEDUP_STATE_MAX_SIZE. Returns 1 when there is none. */
static int read_file(const char *path, struct buf *out, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;

	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(e, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	for (;;) {
		char chunk[65536];
		ssize_t n;
		size_t want = sizeof(chunk);

		if (out->len >= DEDUP_STATE_MAX_SIZE)
			break;
		if (DEDUP_STATE_MAX_SIZE - out->len < want)
			want = DEDUP_STATE_MAX_SIZE - out->len;
		n = read(fd, chunk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

int dedup_state_open(const char *dir, size_t max_keys, int64_t now, int64_t stale_ms,
                     struct dedup_state **out, struct dedup_load *r, struct err *e)
{
	struct dedup_state *s = xcalloc(1, sizeof(*s));
	struct buf b;
	int rc;

	memset(r, 0, sizeof(*r));
	s->dir = xstrdup(dir);
	s->path = xasprintf("%s/%s", dir, DEDUP_STATE_FILE);
	s->t = dedup_table_new(max_keys);
	s->fd = -1;
	*out = s;
	buf_init(&b);
	rc = read_file(s->path, &b, e);
	if (rc == 0) {
		s->existed = true;
		dedup_table_load(s->t, b.data != NULL ? b.data : "", b.len, now, stale_ms, r);
	}
	buf_free(&b);
	return rc < 0 ? -1 : 0;
}

struct dedup_table *dedup_state_table(struct dedup_state *s)
{
	return s->t;
}

const char *dedup_state_path(const struct dedup_state *s)
{
	return s->path;
}

bool dedup_state_existed(const struct dedup_state *s)
{
	return s->existed;
}

int dedup_state_compact(struct dedup_state *s, struct err *e)
{
	struct buf b;
	int dirfd, fd;
	bool synced;

	if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
		err_set(e, "cannot make the state directory %s: %s", s->dir, strerror(errno));
		return -1;
	}
	dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		err_set(e, "state directory %s: %s", s->dir, strerror(errno));
		return -1;
	}
	/* Left by a writer that stopped before its rename: never the state itself. */
	(void)unlinkat(dirfd, TMP_NAME, 0);
	fd = openat(dirfd, TMP_NAME,
	            O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err_set(e, "%s/%s: %s", s->dir, TMP_NAME, strerror(errno));
		close(dirfd);
		return -1;
	}
	buf_init(&b);
	dedup_table_format(s->t, &b);
	if (write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0) {
		err_set(e, "%s/%s: %s", s->dir, TMP_NAME, strerror(errno));
		goto fail;
	}
	if (renameat(dirfd, TMP_NAME, dirfd, DEDUP_STATE_FILE) < 0) {
		err_set(e, "%s: rename from %s: %s", s->path, TMP_NAME, strerror(errno));
		goto fail;
	}
	/* A failed fsync of the directory leaves the snapshot in place, only perhaps not for a
	 * power loss: it is used all the same, and said. */
	synced = fsync(dirfd) == 0;
	if (!synced)
		err_set(e, "state directory %s: fsync: %s", s->dir, strerror(errno));
	buf_free(&b);
	close(dirfd);
	/* The file just renamed into place is the one appended to from now on. */
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	s->snapshot = b.len;
	s->appended = 0;
	s->unsynced = false;
	s->must_write = false;
	s->existed = true;
	return synced ? 0 : -1;
fail:
	buf_free(&b);
	close(fd);
	(void)unlinkat(dirfd, TMP_NAME, 0);
	close(dirfd);
	/* The table's changes went into the failed snapshot only: the next write makes one. */
	s->must_write = true;
	return -1;
}

int dedup_state_write(struct dedup_state *s, struct err *e)
{
	struct buf b;
	int rc = 0;

	if (s->fd < 0 || s->must_write) {
		if (s->fd < 0 && !s->must_write && !dedup_table_dirty(s->t))
			return 0; /* nothing to keep yet: no file for it */
		return dedup_state_compact(s, e);
	}
	if (!dedup_table_dirty(s->t))
		return 0;
	buf_init(&b);
	dedup_table_changes(s->t, &b);
	/* The snapshot holds these changes too. */
	if (s->appended + b.len > s->snapshot + COMPACT_SLACK) {
		buf_free(&b);
		return dedup_state_compact(s, e);
	}
	if (write_all(s->fd, b.data, b.len) < 0) {
		err_set(e, "%s: %s", s->path, strerror(errno));
		/* What was not written is only in the table now: a snapshot will hold it. */
		s->must_write = true;
		rc = -1;
	} else {
		s->appended += b.len;
		s->unsynced = true;
	}
	buf_free(&b);
	return rc;
}

bool dedup_state_unsynced(const struct dedup_state *s)
{
	return s->unsynced;
}

int dedup_state_sync(struct dedup_state *s, struct err *e)
{
	if (!s->unsynced || s->fd < 0)
		return 0;
	s->unsynced = false;
	if (fdatasync(s->fd) < 0) {
		err_set(e, "%s: fsync: %s", s->path, strerror(errno));
		s->must_write = true;
		return -1;
	}
	return 0;
}

void dedup_state_close(struct dedup_state *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	dedup_table_free(s->t);
	free(s->dir);
	free(s->path);
	free(s);
}

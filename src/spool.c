#include "config.h"

#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

struct spool {
	char *root;
	int rootfd;
	int fd[SPOOL_NDIRS];
	int lockfd;
};

static const struct {
	const char *name;
	mode_t mode;
} dirs[SPOOL_NDIRS] = {
	/* Writers of other users in the spool's group create files in tmp/ and rename them into
	 * new/; setgid keeps the group on what they create. */
	[SPOOL_TMP] = {"tmp", 02770},
	[SPOOL_NEW] = {"new", 02770},
	/* The daemon's own: the group may look (alertmail queue), not change. */
	[SPOOL_ACTIVE] = {"active", 02750},
	[SPOOL_DEFERRED] = {"deferred", 02750},
	[SPOOL_META] = {"meta", 02750},
	[SPOOL_FAILED] = {"failed", 02750},
};

const char *spool_dir_name(enum spool_dir d)
{
	return (unsigned)d < SPOOL_NDIRS ? dirs[d].name : "?";
}

const char *spool_root(const struct spool *s)
{
	return s->root;
}

bool spool_name_ok(const char *name)
{
	return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL &&
	       strlen(name) < SPOOL_NAME_MAX;
}

static int sync_dir(struct spool *s, enum spool_dir d, struct err *e)
{
	if (fsync(s->fd[d]) < 0) {
		err_set(e, "spool: fsync %s/%s: %s", s->root, dirs[d].name, strerror(errno));
		return -1;
	}
	return 0;
}

int spool_open(const char *root, bool create, struct spool **out, struct err *e)
{
	struct spool *s = xcalloc(1, sizeof(*s));

	*out = NULL;
	s->root = xstrdup(root);
	s->rootfd = -1;
	s->lockfd = -1;
	for (int i = 0; i < SPOOL_NDIRS; i++)
		s->fd[i] = -1;
	if (create) {
		if (mkdir(root, 0700) == 0) {
			/* As below: the umask must not take the group's way in to tmp/ and new/. */
			if (chmod(root, 02750) < 0 && chmod(root, 0750) < 0) {
				err_set(e, "spool: chmod %s: %s", root, strerror(errno));
				goto fail;
			}
		} else if (errno != EEXIST) {
			err_set(e, "spool: cannot create %s: %s", root, strerror(errno));
			goto fail;
		}
	}
	s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0) {
		err_set(e, "spool: %s: %s", root, strerror(errno));
		goto fail;
	}
	for (int i = 0; i < SPOOL_NDIRS; i++) {
		if (create && mkdirat(s->rootfd, dirs[i].name, 0700) == 0) {
			/* mkdir obeys the umask; the group bits are the point here. */
			/* Where setgid may not be set (systemd's RestrictSUIDSGID=), the group modes are
			 * still set; tmpfiles.d makes the directories with setgid beforehand. */
			if (fchmodat(s->rootfd, dirs[i].name, dirs[i].mode, 0) < 0 &&
			    fchmodat(s->rootfd, dirs[i].name, dirs[i].mode & ~(mode_t)S_ISGID, 0) < 0) {
				err_set(e, "spool: chmod %s/%s: %s", root, dirs[i].name, strerror(errno));
				goto fail;
			}
		} else if (create && errno != EEXIST) {
			err_set(e, "spool: cannot create %s/%s: %s", root, dirs[i].name, strerror(errno));
			goto fail;
		}
		s->fd[i] = openat(s->rootfd, dirs[i].name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->fd[i] < 0) {
			err_set(e, "spool: %s/%s: %s", root, dirs[i].name, strerror(errno));
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	spool_close(s);
	return -1;
}

void spool_close(struct spool *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < SPOOL_NDIRS; i++)
		if (s->fd[i] >= 0)
			close(s->fd[i]);
	if (s->rootfd >= 0)
		close(s->rootfd);
	if (s->lockfd >= 0)
		close(s->lockfd);
	free(s->root);
	free(s);
}

static long read_pid(int fd)
{
	char b[32];
	ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	b[n] = '\0';
	pid = strtol(b, &end, 10);
	return (end == b || pid <= 0) ? 0 : pid;
}

/* An open-file-description lock: the holder's, released when the daemon exits however it
 * exits, and testable (F_OFD_GETLK) without taking it, so a look never blocks a start. */
static int lock_op(int fd, int cmd, short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};

	if (fcntl(fd, cmd, &fl) < 0)
		return -1;
	return cmd == F_OFD_GETLK ? fl.l_type != F_UNLCK : 0;
}

int spool_lock(struct spool *s, struct err *e)
{
	char b[32];
	int fd, n;

	fd = openat(s->rootfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		err_set(e, "spool: %s/.lock: %s", s->root, strerror(errno));
		return -1;
	}
	(void)fchmod(fd, 0644); /* for the PID in it, read by others; the lock works without */
	if (lock_op(fd, F_OFD_SETLK, F_WRLCK) < 0) {
		int saved = errno;
		if (saved == EAGAIN || saved == EACCES)
			err_set(e, "spool: %s is in use by another alertmail daemon (PID %ld)", s->root,
			        read_pid(fd));
		else
			err_set(e, "spool: lock %s/.lock: %s", s->root, strerror(saved));
		close(fd);
		return -1;
	}
	n = snprintf(b, sizeof(b), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, b, (size_t)n, 0) != n) {
		err_set(e, "spool: write %s/.lock: %s", s->root, strerror(errno));
		close(fd);
		return -1;
	}
	s->lockfd = fd;
	return 0;
}

long spool_lock_holder(struct spool *s)
{
	int fd = openat(s->rootfd, ".lock", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	long pid = 0;

	if (fd < 0)
		return 0;
	if (lock_op(fd, F_OFD_GETLK, F_RDLCK) == 1)
		pid = read_pid(fd);
	close(fd);
	return pid;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

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

/* Writes dir/name through dir/.name.tmp: complete and fsync'd before it appears. */
static int write_file_at(struct spool *s, enum spool_dir d, const char *name, const void *data,
                         size_t len, struct err *e)
{
	char tmp[SPOOL_NAME_MAX + 16];
	int fd;

	if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp)) {
		err_set(e, "spool: %s/%s/%s: the name is too long", s->root, dirs[d].name, name);
		return -1;
	}
	fd = openat(s->fd[d], tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		err_set(e, "spool: create %s/%s/%s: %s", s->root, dirs[d].name, tmp, strerror(errno));
		return -1;
	}
	/* The group reads it whatever the umask. */
	if (fchmod(fd, 0640) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		err_set(e, "spool: write %s/%s/%s: %s", s->root, dirs[d].name, tmp, strerror(errno));
		close(fd);
		unlinkat(s->fd[d], tmp, 0);
		return -1;
	}
	close(fd);
	if (renameat(s->fd[d], tmp, s->fd[d], name) < 0) {
		err_set(e, "spool: rename %s/%s/%s: %s", s->root, dirs[d].name, tmp, strerror(errno));
		unlinkat(s->fd[d], tmp, 0);
		return -1;
	}
	return 0;
}

static void unique_name(char *out, size_t len, const char *tag)
{
	struct timeval tv;
	unsigned char r[4] = {0};

	gettimeofday(&tv, NULL);
	if (RAND_bytes(r, sizeof(r)) != 1)
		r[0] = (unsigned char)getpid();
	snprintf(out, len, "%lld.%06ld.%s%ld.%02x%02x%02x%02x", (long long)tv.tv_sec,
	         (long)tv.tv_usec, tag, (long)getpid(), r[0], r[1], r[2], r[3]);
}

int spool_submit(struct spool *s, const void *data, size_t len, char name[SPOOL_NAME_MAX],
                 struct err *e)
{
	int fd;

	unique_name(name, SPOOL_NAME_MAX, "P");
	fd = openat(s->fd[SPOOL_TMP], name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	            0640);
	if (fd < 0) {
		err_set(e, "spool: create %s/tmp/%s: %s", s->root, name, strerror(errno));
		return -1;
	}
	/* The daemon may be another user of the group: it must be able to read what we write. */
	if (write_all(fd, data, len) < 0 || fchmod(fd, 0640) < 0 || fsync(fd) < 0) {
		err_set(e, "spool: write %s/tmp/%s: %s", s->root, name, strerror(errno));
		close(fd);
		unlinkat(s->fd[SPOOL_TMP], name, 0);
		return -1;
	}
	close(fd);
	if (renameat(s->fd[SPOOL_TMP], name, s->fd[SPOOL_NEW], name) < 0) {
		err_set(e, "spool: rename tmp/%s -> new/%s: %s", name, name, strerror(errno));
		unlinkat(s->fd[SPOOL_TMP], name, 0);
		return -1;
	}
	/* Accepted means durable: the entry in new/ must survive a crash. */
	return sync_dir(s, SPOOL_NEW, e);
}

static const char *file_kind(mode_t mode)
{
	if (S_ISLNK(mode))
		return "a symbolic link";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	return "not a regular file";
}

/* Anything in new/ but a regular file is moved to failed/ as it is, unread: a symbolic link
 * could point at what the daemon may read and its writer may not (a secret, the host key); a
 * FIFO would block a reader. The rename moves the entry itself, never what it points to.
 * Returns 2 when it was moved, with what it was in e. */
static int fail_entry(struct spool *s, enum spool_dir from, const char *name, const char *qid,
                      const char *reason, struct err *e);

static int refuse_irregular(struct spool *s, const char *name, const char *qid, mode_t mode,
                            struct err *e)
{
	char *reason = xasprintf("new/%s is %s, not a regular file: alertmail takes only regular "
	                         "files from new/ and did not read it\n",
	                         name, file_kind(mode));
	struct err fe;
	int rc = fail_entry(s, SPOOL_NEW, name, qid, reason, &fe);

	free(reason);
	if (rc < 0 && errno == ENOENT)
		return 1;
	if (rc < 0) {
		err_set(e, "spool: new/%s: %s, not a regular file, left there: %s", name,
		        file_kind(mode), fe.msg);
		return -1;
	}
	err_set(e, "spool: new/%s: %s, not a regular file: moved to failed/%s unread", name,
	        file_kind(mode), qid);
	return 2;
}

int spool_claim(struct spool *s, const char *name, char qid[SPOOL_QID_MAX], struct err *e)
{
	struct stat st;
	struct timeval tv;

	if (!spool_name_ok(name)) {
		err_set(e, "spool: new/%s: not a name the daemon takes", name);
		return -1;
	}
	if (fstatat(s->fd[SPOOL_NEW], name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 1;
		err_set(e, "spool: new/%s: %s", name, strerror(errno));
		return -1;
	}
	/* Time orders the queue; the inode makes the id unique on this file system. */
	gettimeofday(&tv, NULL);
	snprintf(qid, SPOOL_QID_MAX, "%lld.%06ld.%llu", (long long)tv.tv_sec, (long)tv.tv_usec,
	         (unsigned long long)st.st_ino);
	/* An entry pinned to a channel (a fan-out entry put back by alertmail retry) keeps its
	 * pin: the copies of one alert share an inode, and the pin tells them apart. */
	if (spool_qid_channel(name) != NULL)
		(void)spool_qid_pin(qid, spool_qid_channel(name), qid); /* always fits */
	if (!S_ISREG(st.st_mode))
		return refuse_irregular(s, name, qid, st.st_mode, e);
	/* No fsync: after a crash the alert is in new/ or in active/, and both are delivered. */
	if (renameat(s->fd[SPOOL_NEW], name, s->fd[SPOOL_ACTIVE], qid) < 0) {
		if (errno == ENOENT)
			return 1;
		err_set(e, "spool: rename new/%s -> active/%s: %s", name, qid, strerror(errno));
		return -1;
	}
	return 0;
}

int spool_read(struct spool *s, enum spool_dir d, const char *qid, size_t max, struct buf *out,
               struct err *e)
{
	char chunk[65536];
	struct stat st;
	int fd;

	fd = openat(s->fd[d], qid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		err_set(e, "spool: %s/%s: %s", dirs[d].name, qid, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(e, "spool: %s/%s: not a regular file", dirs[d].name, qid);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > max) {
		err_set(e, "spool: %s/%s: %lld bytes, more than the limit of %zu", dirs[d].name, qid,
		        (long long)st.st_size, max);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, "spool: read %s/%s: %s", dirs[d].name, qid, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > max) {
			err_set(e, "spool: %s/%s: grew beyond the limit of %zu bytes", dirs[d].name, qid,
			        max);
			close(fd);
			return -1;
		}
		buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	if (out->data == NULL)
		buf_add(out, "", 0);
	return 0;
}

/* One line of text for the meta file: no line breaks or control characters. */
static void meta_text(struct buf *out, const char *key, const char *v)
{
	buf_adds(out, key);
	buf_adds(out, ": ");
	for (; *v != '\0'; v++)
		buf_addc(out, (char)(((unsigned char)*v < 0x20 || *v == 0x7f) ? ' ' : *v));
	buf_addc(out, '\n');
}

void spool_meta_format(const struct spool_meta *m, struct buf *out)
{
	buf_printf(out, "attempts: %d\n", m->attempts);
	buf_printf(out, "received: %lld\n", (long long)m->received);
	buf_printf(out, "first_failed: %lld\n", (long long)m->first_failed);
	buf_printf(out, "next_attempt: %lld\n", (long long)m->next_attempt);
	meta_text(out, "channel", m->channel);
	meta_text(out, "last_error", m->last_error);
	for (const char *p = m->history.data; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		buf_adds(out, "attempt: ");
		buf_add(out, p, n);
		buf_addc(out, '\n');
		p += n + (nl ? 1 : 0);
	}
}

void spool_meta_add_attempt(struct spool_meta *m, const char *line)
{
	size_t lines = 0;

	for (size_t i = 0; i < m->history.len; i++)
		lines += m->history.data[i] == '\n';
	if (lines >= SPOOL_HISTORY_MAX) {
		/* Keep the newest: drop the first line. */
		const char *nl = memchr(m->history.data, '\n', m->history.len);
		size_t cut = (size_t)(nl - m->history.data) + 1;
		memmove(m->history.data, m->history.data + cut, m->history.len - cut + 1);
		m->history.len -= cut;
	}
	for (; *line != '\0'; line++)
		buf_addc(&m->history,
		         (char)(((unsigned char)*line < 0x20 || *line == 0x7f) ? ' ' : *line));
	buf_addc(&m->history, '\n');
}

void spool_meta_free(struct spool_meta *m)
{
	buf_free(&m->history);
}

static void copy_field(char *dst, size_t size, const char *v, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

/* 9999-12-31T23:59:59Z */
#define META_TIME_MAX 253402300799LL

int spool_meta_parse(const char *text, size_t len, struct spool_meta *m)
{
	const char *p = text, *end = text + len;
	unsigned seen = 0; /* one bit per numeric key */

	memset(m, 0, sizeof(*m));
	buf_init(&m->history);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *colon;
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		colon = memchr(p, ':', n);
		if (colon != NULL && colon + 1 < p + n && colon[1] == ' ') {
			const char *val = colon + 2;
			size_t vlen = (size_t)(p + n - val);
			size_t klen = (size_t)(colon - p);

			if (klen == 7 && memcmp(p, "channel", 7) == 0) {
				copy_field(m->channel, sizeof(m->channel), val, vlen);
			} else if (klen == 7 && memcmp(p, "attempt", 7) == 0) {
				buf_add(&m->history, val, vlen);
				buf_addc(&m->history, '\n');
			} else if (klen == 10 && memcmp(p, "last_error", 10) == 0) {
				copy_field(m->last_error, sizeof(m->last_error), val, vlen);
			} else {
				char num[32], *stop;
				long long v;
				if (vlen >= sizeof(num)) {
					spool_meta_free(m);
					return -1;
				}
				copy_field(num, sizeof(num), val, vlen);
				errno = 0;
				v = strtoll(num, &stop, 10);
				/* Times are seconds from 1970 to the year 9999: the daemon computes with
				 * them in milliseconds, which a larger number would overflow. */
				if (stop == num || *stop != '\0' || errno != 0 || v < 0 ||
				    v > META_TIME_MAX) {
					spool_meta_free(m);
					return -1;
				}
				if (klen == 8 && memcmp(p, "attempts", 8) == 0 && v < 1000000) {
					m->attempts = (int)v;
					seen |= 1;
				} else if (klen == 8 && memcmp(p, "received", 8) == 0) {
					m->received = (time_t)v;
					seen |= 2;
				} else if (klen == 12 && memcmp(p, "first_failed", 12) == 0) {
					m->first_failed = (time_t)v;
					seen |= 4;
				} else if (klen == 12 && memcmp(p, "next_attempt", 12) == 0) {
					m->next_attempt = (time_t)v;
					seen |= 8;
				} else {
					spool_meta_free(m);
					return -1;
				}
			}
		}
		p += n + (nl ? 1 : 0);
	}
	if (seen != 15) {
		spool_meta_free(m);
		return -1;
	}
	return 0;
}

int spool_meta_read(struct spool *s, const char *qid, struct spool_meta *m, struct err *e)
{
	struct buf b;
	int rc;

	buf_init(&b);
	rc = spool_read(s, SPOOL_META, qid, 16384, &b, e);
	if (rc == 0 && spool_meta_parse(b.data, b.len, m) < 0) {
		err_set(e, "spool: meta/%s: malformed", qid);
		rc = -1;
	}
	buf_free(&b);
	return rc;
}

static int move(struct spool *s, enum spool_dir from, const char *qid, enum spool_dir to,
                struct err *e)
{
	if (renameat(s->fd[from], qid, s->fd[to], qid) < 0) {
		err_set(e, "spool: rename %s/%s -> %s/%s: %s", dirs[from].name, qid, dirs[to].name, qid,
		        strerror(errno));
		return -1;
	}
	return 0;
}

int spool_done(struct spool *s, const char *qid, struct err *e)
{
	/* No fsync: if a crash undoes this, the alert is delivered once more (at least once). */
	if (unlinkat(s->fd[SPOOL_ACTIVE], qid, 0) < 0 && errno != ENOENT) {
		err_set(e, "spool: remove active/%s: %s", qid, strerror(errno));
		return -1;
	}
	unlinkat(s->fd[SPOOL_META], qid, 0);
	return 0;
}

int spool_defer(struct spool *s, const char *qid, const struct spool_meta *m, struct err *e)
{
	struct buf b;
	int rc;

	buf_init(&b);
	spool_meta_format(m, &b);
	rc = write_file_at(s, SPOOL_META, qid, b.data, b.len, e);
	buf_free(&b);
	if (rc < 0 || sync_dir(s, SPOOL_META, e) < 0)
		return -1;
	if (move(s, SPOOL_ACTIVE, qid, SPOOL_DEFERRED, e) < 0) {
		unlinkat(s->fd[SPOOL_META], qid, 0);
		return -1;
	}
	return sync_dir(s, SPOOL_DEFERRED, e);
}

int spool_activate(struct spool *s, const char *qid, struct err *e)
{
	/* No fsync: in deferred/ or in active/, a restart finds it either way. */
	return move(s, SPOOL_DEFERRED, qid, SPOOL_ACTIVE, e);
}

/* The reason first, so that an entry in failed/ always has one, then DIR/NAME -> failed/QID
 * and the fsync of failed/. With the errno of a failed rename left for the caller. */
static int fail_entry(struct spool *s, enum spool_dir from, const char *name, const char *qid,
                      const char *reason, struct err *e)
{
	char rname[SPOOL_QID_MAX + 8];

	snprintf(rname, sizeof(rname), "%s.reason", qid);
	if (write_file_at(s, SPOOL_FAILED, rname, reason, strlen(reason), e) < 0)
		return -1;
	if (renameat(s->fd[from], name, s->fd[SPOOL_FAILED], qid) < 0) {
		int saved = errno;
		err_set(e, "spool: rename %s/%s -> failed/%s: %s", dirs[from].name, name, qid,
		        strerror(saved));
		unlinkat(s->fd[SPOOL_FAILED], rname, 0);
		errno = saved;
		return -1;
	}
	return sync_dir(s, SPOOL_FAILED, e);
}

int spool_fail(struct spool *s, enum spool_dir from, const char *qid, const char *reason,
               struct err *e)
{
	if (fail_entry(s, from, qid, qid, reason, e) < 0)
		return -1;
	unlinkat(s->fd[SPOOL_META], qid, 0);
	return 0;
}

int spool_requeue(struct spool *s, enum spool_dir from, const char *qid, struct err *e)
{
	char rname[SPOOL_QID_MAX + 8];

	if (move(s, from, qid, SPOOL_NEW, e) < 0)
		return -1;
	if (sync_dir(s, SPOOL_NEW, e) < 0)
		return -1;
	snprintf(rname, sizeof(rname), "%s.reason", qid);
	unlinkat(s->fd[SPOOL_FAILED], rname, 0);
	unlinkat(s->fd[SPOOL_META], qid, 0);
	return 0;
}

/* A directory stream of its own over one of the spool's directories. */
static DIR *open_dir(struct spool *s, enum spool_dir d, struct err *e)
{
	int fd = openat(s->fd[d], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;

	if (dir == NULL) {
		err_set(e, "spool: list %s/%s: %s", s->root, dirs[d].name, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	return dir;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

int spool_list(struct spool *s, enum spool_dir d, int (*fn)(void *ctx, const char *name),
               void *ctx, struct err *e)
{
	DIR *dir = open_dir(s, d, e);
	int rc = 0;

	if (dir == NULL)
		return -1;
	for (;;) {
		struct dirent *de = readdir(dir);
		if (de == NULL)
			break;
		if (!spool_name_ok(de->d_name) || ends_with(de->d_name, ".reason"))
			continue;
		rc = fn(ctx, de->d_name);
		if (rc != 0)
			break;
	}
	closedir(dir);
	return rc;
}

int spool_clean_tmp(struct spool *s, time_t max_age, struct err *e)
{
	DIR *dir = open_dir(s, SPOOL_TMP, e);
	time_t now = time(NULL);
	int removed = 0;

	if (dir == NULL)
		return -1;
	for (;;) {
		struct dirent *de = readdir(dir);
		struct stat st;
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(s->fd[SPOOL_TMP], de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode) || st.st_mtime > now - max_age)
			continue;
		if (unlinkat(s->fd[SPOOL_TMP], de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}

/* ---- fan-out ---- */

/* A copy written into tmp/, to be linked into active/ by the commit. */
struct spool_copy_tmp {
	char tmp[SPOOL_NAME_MAX];
	char qid[SPOOL_QID_MAX];
};

struct spool_copies {
	struct spool_copy_tmp *v;
	size_t n, cap;
	bool linked; /* some copy was linked into active/ directly: active/ needs its fsync */
};

struct spool_copies *spool_copies_new(void)
{
	return xcalloc(1, sizeof(struct spool_copies));
}

bool spool_exists(struct spool *s, enum spool_dir d, const char *name)
{
	struct stat st;

	return fstatat(s->fd[d], name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The bytes of a copy into tmp/ (O_EXCL, no fsync: the commit syncs the whole batch). */
static int copy_write(struct spool *s, struct spool_copies *b, const char *newqid, const void *data,
                      size_t len, struct err *e)
{
	struct spool_copy_tmp *t;
	int fd;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 16;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	t = &b->v[b->n];
	unique_name(t->tmp, sizeof(t->tmp), "F");
	snprintf(t->qid, sizeof(t->qid), "%s", newqid);
	fd = openat(s->fd[SPOOL_TMP], t->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	            0640);
	if (fd < 0) {
		err_set(e, "spool: create %s/tmp/%s: %s", s->root, t->tmp, strerror(errno));
		return -1;
	}
	if (write_all(fd, data, len) < 0 || fchmod(fd, 0640) < 0) {
		err_set(e, "spool: write %s/tmp/%s: %s", s->root, t->tmp, strerror(errno));
		close(fd);
		unlinkat(s->fd[SPOOL_TMP], t->tmp, 0);
		return -1;
	}
	close(fd);
	b->n++;
	return 0;
}

int spool_copy(struct spool *s, struct spool_copies *b, const char *qid, const char *newqid,
               const void *data, size_t len, struct err *e)
{
	if (spool_exists(s, SPOOL_DEFERRED, newqid) || spool_exists(s, SPOOL_FAILED, newqid))
		return 1;
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->v[i].qid, newqid) == 0)
			return 1;
	/* A hard link writes no data: the alert's bytes are durable since it was accepted. */
	if (linkat(s->fd[SPOOL_ACTIVE], qid, s->fd[SPOOL_ACTIVE], newqid, 0) == 0) {
		b->linked = true;
		return 0;
	}
	if (errno == EEXIST)
		return 1;
	if (errno == ENOENT) {
		err_set(e, "spool: active/%s: %s", qid, strerror(errno));
		return -1;
	}
	/* EPERM: fs.protected_hardlinks, where the daemon may read the writer's file but not
	 * write it; EMLINK, EXDEV or a file system without hard links: a copy of the bytes. */
	return copy_write(s, b, newqid, data, len, e);
}

int spool_copies_commit(struct spool *s, struct spool_copies *b, struct err *e)
{
	int rc = 0;
	size_t i = 0;

	if (b->n > 0 && syncfs(s->fd[SPOOL_TMP]) < 0) {
		err_set(e, "spool: syncfs %s/tmp: %s", s->root, strerror(errno));
		rc = -1;
	}
	for (; rc == 0 && i < b->n; i++) {
		struct spool_copy_tmp *t = &b->v[i];
		/* A link, not a rename: it never replaces an entry of that name. */
		if (linkat(s->fd[SPOOL_TMP], t->tmp, s->fd[SPOOL_ACTIVE], t->qid, 0) < 0 &&
		    errno != EEXIST) {
			err_set(e, "spool: link tmp/%s -> active/%s: %s", t->tmp, t->qid,
			        strerror(errno));
			rc = -1;
			break;
		}
		unlinkat(s->fd[SPOOL_TMP], t->tmp, 0);
		b->linked = true;
	}
	if (rc < 0) {
		/* The copies not linked yet are dropped; the caller fans the alert out again. */
		for (; i < b->n; i++)
			unlinkat(s->fd[SPOOL_TMP], b->v[i].tmp, 0);
	}
	if (b->linked) {
		struct err se;
		/* After an error, e keeps the first one. */
		if (sync_dir(s, SPOOL_ACTIVE, &se) < 0 && rc == 0) {
			*e = se;
			rc = -1;
		}
	}
	b->n = 0;
	b->linked = false;
	return rc;
}

void spool_copies_free(struct spool *s, struct spool_copies *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		unlinkat(s->fd[SPOOL_TMP], b->v[i].tmp, 0);
	free(b->v);
	free(b);
}

int spool_rename_active(struct spool *s, const char *qid, const char *newqid, struct err *e)
{
	int rc;

	if (spool_exists(s, SPOOL_DEFERRED, newqid) || spool_exists(s, SPOOL_FAILED, newqid))
		return 1;
	rc = renameat2(s->fd[SPOOL_ACTIVE], qid, s->fd[SPOOL_ACTIVE], newqid, RENAME_NOREPLACE);
	if (rc < 0 && errno == EEXIST)
		return 1;

	/* A file system without RENAME_NOREPLACE: the check and the rename are not atomic, but
	 * only this daemon names entries in active/. */
	if (rc < 0 && errno == EINVAL) {
		if (spool_exists(s, SPOOL_ACTIVE, newqid))
			return 1;
		rc = renameat(s->fd[SPOOL_ACTIVE], qid, s->fd[SPOOL_ACTIVE], newqid);
	}
	if (rc < 0) {
		err_set(e, "spool: rename active/%s -> active/%s: %s", qid, newqid,
		        strerror(errno));
		return -1;
	}
	/* The retry state of an entry deferred before it could fan out goes with it. */
	if (renameat(s->fd[SPOOL_META], qid, s->fd[SPOOL_META], newqid) < 0 && errno != ENOENT)
		unlinkat(s->fd[SPOOL_META], qid, 0);
	return 0;
}

#define PIN_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
#define DIGITS "0123456789"

/* The length of the "<digits>.<6 digits>.<digits>" at the start of s, or 0. */
static size_t qid_base_len(const char *s)
{
	const char *p = s;
	size_t n = strspn(p, DIGITS);

	if (n == 0 || p[n] != '.')
		return 0;
	p += n + 1;
	n = strspn(p, DIGITS);
	if (n != 6 || p[n] != '.')
		return 0;
	p += n + 1;
	n = strspn(p, DIGITS);
	if (n == 0)
		return 0;
	return (size_t)(p + n - s);
}

const char *spool_qid_channel(const char *qid)
{
	size_t base = qid_base_len(qid);
	const char *ch;
	size_t len;

	if (base == 0 || qid[base] != '+')
		return NULL;
	ch = qid + base + 1;
	len = strlen(ch);
	if (len == 0 || len > SPOOL_PIN_MAX || strspn(ch, PIN_CHARS) != len)
		return NULL;
	return ch;
}

int spool_qid_pin(const char *qid, const char *channel, char out[SPOOL_QID_MAX])
{
	size_t base = spool_qid_channel(qid) != NULL ? qid_base_len(qid) : strlen(qid);
	char tmp[SPOOL_QID_MAX];
	int n;

	if (strlen(channel) > SPOOL_PIN_MAX)
		return -1;
	/* out may be qid itself. */
	n = snprintf(tmp, sizeof(tmp), "%.*s+%s", (int)base, qid, channel);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	memcpy(out, tmp, (size_t)n + 1);
	return 0;
}

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"
#include "tap.h"

/* Everything happens under this directory; each part of the test has a spool of its own. */
static char top[256];
static char root[512];

/* root/sub/name, from one of a few rotating buffers so that two may appear in one call. */
static const char *P(const char *sub, const char *name)
{
	static char b[4][1024];
	static int i;
	char *p = b[i++ % 4];

	if (sub == NULL && name == NULL)
		snprintf(p, sizeof(b[0]), "%s", root);
	else if (sub == NULL)
		snprintf(p, sizeof(b[0]), "%s/%s", root, name);
	else if (name == NULL)
		snprintf(p, sizeof(b[0]), "%s/%s", root, sub);
	else
		snprintf(p, sizeof(b[0]), "%s/%s/%s", root, sub, name);
	return p;
}

static void new_root(const char *name)
{
	snprintf(root, sizeof(root), "%s/%s", top, name);
}

static void put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror(path);
		exit(99);
	}
	close(fd);
}

static void puts_file(const char *path, const char *text)
{
	put(path, text, strlen(text));
}

/* The whole file into b (reset first); -1 if it cannot be read. */
static int slurp(const char *path, struct buf *b)
{
	char chunk[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	buf_reset(b);
	if (fd < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_add(b, chunk, (size_t)n);
	close(fd);
	if (b->data == NULL)
		buf_add(b, "", 0);
	return n < 0 ? -1 : 0;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int is_file(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Entries of root/sub other than . and ..; with dots, dot-files count too. */
static int count_in(const char *sub, int dots)
{
	DIR *d = opendir(P(sub, NULL));
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.' && !dots)
			continue;
		n++;
	}
	closedir(d);
	return n;
}

static int has(const struct err *e, const char *needle)
{
	return strstr(e->msg, needle) != NULL;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

/* "<seconds>.<microseconds>.<inode>": digits only, six digits of microseconds. */
static int qid_parse(const char *q, long long *sec, long *usec, unsigned long long *ino)
{
	const char *d1 = strchr(q, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char *end;

	if (d1 == NULL || d2 == NULL || d1 == q || d2 - d1 != 7 || d2[1] == '\0' ||
	    strchr(d2 + 1, '.') != NULL)
		return -1;
	for (const char *p = q; *p; p++)
		if (*p != '.' && (*p < '0' || *p > '9'))
			return -1;
	*sec = strtoll(q, &end, 10);
	*usec = strtol(d1 + 1, &end, 10);
	*ino = strtoull(d2 + 1, &end, 10);
	return 0;
}

static struct spool *open_ok(bool create)
{
	struct spool *s = NULL;
	struct err e = {""};

	if (spool_open(root, create, &s, &e) < 0) {
		printf("Bail out! spool_open %s: %s\n", root, e.msg);
		exit(99);
	}
	return s;
}

/* Submits text and claims it: the QID in active/. */
static void submit_claim(struct spool *s, const char *text, char qid[SPOOL_QID_MAX])
{
	char name[SPOOL_NAME_MAX];
	struct err e = {""};

	if (spool_submit(s, text, strlen(text), name, &e) < 0 ||
	    spool_claim(s, name, qid, &e) != 0) {
		printf("Bail out! submit and claim: %s\n", e.msg);
		exit(99);
	}
}

static void test_pure(void)
{
	ok(spool_name_ok("1700000000.123456.P42.abcd0123"), "name_ok: a submitted name");
	ok(spool_name_ok("x"), "name_ok: one character");
	ok(!spool_name_ok(""), "name_ok: empty refused");
	ok(!spool_name_ok(".hidden") && !spool_name_ok(".") && !spool_name_ok(".."),
	   "name_ok: dot-files, . and .. refused");
	ok(!spool_name_ok("a/b") && !spool_name_ok("../x") && !spool_name_ok("/etc"),
	   "name_ok: names with '/' refused");
	{
		char longname[SPOOL_NAME_MAX + 1];
		memset(longname, 'a', SPOOL_NAME_MAX);
		longname[SPOOL_NAME_MAX] = '\0';
		ok(!spool_name_ok(longname), "name_ok: %d characters refused", SPOOL_NAME_MAX);
		longname[SPOOL_NAME_MAX - 1] = '\0';
		ok(spool_name_ok(longname), "name_ok: %d characters taken", SPOOL_NAME_MAX - 1);
	}
	ok(strcmp(spool_dir_name(SPOOL_TMP), "tmp") == 0 &&
	       strcmp(spool_dir_name(SPOOL_NEW), "new") == 0 &&
	       strcmp(spool_dir_name(SPOOL_ACTIVE), "active") == 0 &&
	       strcmp(spool_dir_name(SPOOL_DEFERRED), "deferred") == 0 &&
	       strcmp(spool_dir_name(SPOOL_META), "meta") == 0 &&
	       strcmp(spool_dir_name(SPOOL_FAILED), "failed") == 0,
	   "dir_name for each directory");
	is_str(spool_dir_name(SPOOL_NDIRS), "?", "dir_name out of range");
}

static void test_open(void)
{
	static const struct {
		const char *name;
		mode_t mode;
	} want[] = {
	    {"tmp", 02770},      {"new", 02770},  {"active", 02750},
	    {"deferred", 02750}, {"meta", 02750}, {"failed", 02750},
	};
	struct spool *s = (struct spool *)1;
	struct err e = {""};
	int rc;

	new_root("open");
	rc = spool_open(root, false, &s, &e);
	ok(rc == -1 && s == NULL, "open without create: a missing root fails, no handle");
	ok(has(&e, root) && has(&e, "No such file"), "the error names the root and the cause: %s",
	   e.msg);
	ok(!exists(root), "open without create made nothing");

	rc = spool_open(root, true, &s, &e);
	ok(rc == 0 && s != NULL, "open with create%s%s", rc ? ": " : "", rc ? e.msg : "");
	if (s == NULL)
		exit(99);
	is_str(spool_root(s), root, "spool_root is the root given");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct stat st = {0};
		const char *p = P(want[i].name, NULL);
		ok(lstat(p, &st) == 0 && S_ISDIR(st.st_mode), "%s/ made", want[i].name);
		ok((st.st_mode & 07777) == want[i].mode,
		   "%s/ has mode %04o under umask 077 (got %04o)", want[i].name,
		   (unsigned)want[i].mode, (unsigned)(st.st_mode & 07777));
	}
	ok(count_in(NULL, 1) == 6, "six directories in the root, nothing else");
	ok((mode_of(root) & 0010) != 0,
	     "root is searchable by the group that may submit, under umask 077 (got %04o)",
	     (unsigned)mode_of(root));
	spool_close(s);

	s = NULL;
	rc = spool_open(root, true, &s, &e);
	ok(rc == 0 && s != NULL, "open with create again: existing directories are fine");
	spool_close(s);
	ok(mode_of(P("tmp", NULL)) == 02770 && mode_of(P("failed", NULL)) == 02750,
	   "modes unchanged by a second open");
	s = NULL;
	rc = spool_open(root, false, &s, &e);
	ok(rc == 0 && s != NULL, "open without create of a complete spool");
	spool_close(s);
	spool_close(NULL);
	ok(1, "spool_close(NULL) is harmless");

	rmdir(P("meta", NULL));
	s = (struct spool *)1;
	rc = spool_open(root, false, &s, &e);
	ok(rc == -1 && s == NULL && has(&e, "/meta") && has(&e, "No such file"),
	   "open without create: a missing directory is named: %s", e.msg);
	s = NULL;
	rc = spool_open(root, true, &s, &e);
	ok(rc == 0 && mode_of(P("meta", NULL)) == 02750, "open with create makes the missing one");
	spool_close(s);

	new_root("open-file");
	puts_file(root, "not a directory\n");
	s = (struct spool *)1;
	rc = spool_open(root, true, &s, &e);
	ok(rc == -1 && s == NULL && has(&e, root), "a root that is a file is refused: %s", e.msg);

	/* spool_close after an early failure must close only what spool_open opened. */
	{
		int null = open("/dev/null", O_RDONLY);
		int alive;
		if (null < 0 || dup2(null, 0) < 0)
			exit(99);
		close(null);
		new_root("no-such-parent/spool");
		s = (struct spool *)1;
		rc = spool_open(root, true, &s, &e);
		ok(rc == -1 && s == NULL && has(&e, "cannot create") && has(&e, "No such file"),
		   "create under a missing parent fails: %s", e.msg);
		alive = fcntl(0, F_GETFD) != -1;
		ok(alive,
		     "a failed create leaves standard input open");
		if (!alive) {
			null = open("/dev/null", O_RDONLY);
			if (null > 0) {
				must(dup2(null, 0) == 0, "dup2 /dev/null");
				close(null);
			}
		}
	}
}

static void test_submit(void)
{
	static const char data[] = "title: disk full\n\0binary\xff\nseverity: critical\n";
	char name[SPOOL_NAME_MAX], name2[SPOOL_NAME_MAX];
	struct spool *s;
	struct err e = {""};
	struct buf b;
	char pid[32];
	int rc;

	buf_init(&b);
	new_root("submit");
	s = open_ok(true);
	rc = spool_submit(s, data, sizeof(data) - 1, name, &e);
	ok(rc == 0, "submit%s%s", rc ? ": " : "", rc ? e.msg : "");
	ok(spool_name_ok(name), "the name is one the daemon takes: %s", name);
	snprintf(pid, sizeof(pid), ".P%ld.", (long)getpid());
	ok(strstr(name, pid) != NULL, "the name carries the writer's PID");
	ok(count_in("new", 1) == 1 && is_file(P("new", name)),
	   "exactly one file in new/, by that name");
	ok(count_in("tmp", 1) == 0, "nothing left in tmp/");
	ok(slurp(P("new", name), &b) == 0 && b.len == sizeof(data) - 1 &&
	       memcmp(b.data, data, b.len) == 0,
	   "content identical, NUL and 8-bit bytes included");
	ok((mode_of(P("new", name)) & 0040) != 0,
	     "a submitted alert is readable by the spool's group under umask 077 (got %04o)",
	     (unsigned)mode_of(P("new", name)));

	rc = spool_submit(s, "", 0, name2, &e);
	ok(rc == 0 && strcmp(name, name2) != 0, "an empty alert is submitted under another name");
	ok(is_file(P("new", name2)) && slurp(P("new", name2), &b) == 0 && b.len == 0,
	   "the empty alert is an empty file");
	ok(count_in("new", 1) == 2 && count_in("tmp", 1) == 0, "two files in new/, tmp/ empty");
	spool_close(s);
	buf_free(&b);
}

static int collect(void *ctx, const char *name)
{
	struct buf *b = ctx;

	buf_adds(b, name);
	buf_addc(b, '\n');
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_claim(void)
{
	enum { N = 1000 };
	char name[SPOOL_NAME_MAX], qid[SPOOL_QID_MAX], qid2[SPOOL_QID_MAX];
	struct spool *s;
	struct err e = {""};
	struct stat st;
	struct buf b;
	long long sec = 0;
	long usec = -1;
	unsigned long long ino = 0;
	int failed0;
	time_t now;
	int rc;

	buf_init(&b);
	new_root("claim");
	s = open_ok(true);
	if (spool_submit(s, "alert\n", 6, name, &e) < 0 || lstat(P("new", name), &st) < 0)
		exit(99);
	now = time(NULL);
	memset(qid, 0, sizeof(qid));
	rc = spool_claim(s, name, qid, &e);
	ok(rc == 0, "claim%s%s", rc ? ": " : "", rc ? e.msg : "");
	ok(!exists(P("new", name)) && is_file(P("active", qid)), "new/NAME moved to active/QID");
	ok(slurp(P("active", qid), &b) == 0 && strcmp(b.data, "alert\n") == 0,
	   "content unchanged by the claim");
	ok(qid_parse(qid, &sec, &usec, &ino) == 0, "QID is <sec>.<usec>.<inode>: %s", qid);
	ok(sec >= now - 5 && sec <= now + 5 && usec >= 0 && usec < 1000000,
	   "QID's time is now, microseconds in range");
	ok(ino == (unsigned long long)st.st_ino, "QID's inode is the file's");
	ok(spool_name_ok(qid) && strlen(qid) < SPOOL_QID_MAX, "a QID is a valid name");

	rc = spool_claim(s, name, qid2, &e);
	ok(rc == 1, "claiming the same name again returns 1 (gone)");
	rc = spool_claim(s, "1700000000.000000.P1.00000000", qid2, &e);
	ok(rc == 1, "claiming a name that never was returns 1");

	puts_file(P("new", ".hidden"), "x");
	e.msg[0] = '\0';
	rc = spool_claim(s, ".hidden", qid2, &e);
	ok(rc == -1 && e.msg[0] != '\0' && is_file(P("new", ".hidden")),
	   "a dot-file is refused with an error and left alone: %s", e.msg);
	e.msg[0] = '\0';
	rc = spool_claim(s, "../active/x", qid2, &e);
	ok(rc == -1 && e.msg[0] != '\0', "a name with '/' is refused: %s", e.msg);
	e.msg[0] = '\0';
	rc = spool_claim(s, "", qid2, &e);
	ok(rc == -1 && e.msg[0] != '\0', "an empty name is refused");

	/* Anything but a regular file goes to failed/ unread, with its reason; the rename moves
	 * the entry itself, so a symbolic link's target is neither read nor moved. */
	failed0 = count_in("failed", 0);
	must(mkdir(P("new", "adir"), 0700) == 0, "mkdir new/adir");
	e.msg[0] = '\0';
	rc = spool_claim(s, "adir", qid2, &e);
	ok(rc == 2 && has(&e, "new/adir: a directory, not a regular file: moved to failed/"),
	   "a directory is refused: %s", e.msg);
	ok(!exists(P("new", "adir")) && count_in("active", 1) == 1 && count_in("failed", 0) == failed0 + 2,
	   "the directory is moved to failed/, with its reason");
	puts_file(P(NULL, "target"), "secret\n");
	if (symlink(P(NULL, "target"), P("new", "alink")) < 0)
		exit(99);
	e.msg[0] = '\0';
	rc = spool_claim(s, "alink", qid2, &e);
	ok(rc == 2 && has(&e, "new/alink: a symbolic link, not a regular file: moved to failed/"),
	   "a symlink is refused: %s", e.msg);
	ok(!exists(P("new", "alink")) && count_in("failed", 0) == failed0 + 4 && exists(P(NULL, "target")),
	   "the symlink itself is moved to failed/; its target stays where it was");
	{
		char rname[SPOOL_QID_MAX + 8];
		struct buf reason;
		buf_init(&reason);
		snprintf(rname, sizeof(rname), "%s.reason", qid2);
		ok(spool_read(s, SPOOL_FAILED, rname, 4096, &reason, &e) == 0 &&
		       strstr(reason.data, "new/alink is a symbolic link, not a regular file") != NULL &&
		       strstr(reason.data, "secret") == NULL,
		   "the reason says what it was; nothing of the target was read");
		buf_free(&reason);
	}
	if (mkfifo(P("new", "afifo"), 0600) < 0)
		exit(99);
	e.msg[0] = '\0';
	rc = spool_claim(s, "afifo", qid2, &e);
	ok(rc == 2 && has(&e, "new/afifo: a FIFO, not a regular file: moved to failed/"),
	   "a FIFO is refused, without blocking, and moved to failed/");
	unlink(P(NULL, "target"));
	unlink(P("new", ".hidden"));
	must(spool_done(s, qid, &e) == 0, "spool_done: %s", e.msg);

	/* Many claims: unique, and ordered by time as strings. */
	{
		static char qids[N][SPOOL_QID_MAX];
		static char *sorted[N];
		int fails = 0, bad = 0, dups = 0, disorder = 0, n = 0;
		long long psec = 0;
		long pusec = 0;

		for (int i = 0; i < N; i++)
			if (spool_submit(s, "x", 1, name, &e) < 0)
				fails++;
		ok(fails == 0 && count_in("new", 1) == N, "%d alerts submitted", N);
		buf_reset(&b);
		must(spool_list(s, SPOOL_NEW, collect, &b, &e) == 0, "spool_list: %s", e.msg);
		for (char *p = b.data, *nl; p != NULL && *p != '\0'; p = nl + 1) {
			nl = strchr(p, '\n');
			*nl = '\0';
			if (n >= N || spool_claim(s, p, qids[n], &e) != 0) {
				fails++;
				continue;
			}
			if (qid_parse(qids[n], &sec, &usec, &ino) < 0)
				bad++;
			else if (n > 0 && (sec < psec || (sec == psec && usec < pusec) ||
			                   ((sec > psec || usec > pusec) &&
			                    strcmp(qids[n - 1], qids[n]) >= 0)))
				disorder++;
			psec = sec;
			pusec = usec;
			n++;
		}
		ok(fails == 0 && n == N, "%d claims", n);
		ok(bad == 0, "every QID well-formed");
		ok(disorder == 0, "QIDs follow the clock, and sort as strings as they do in time");
		for (int i = 0; i < n; i++)
			sorted[i] = qids[i];
		qsort(sorted, (size_t)n, sizeof(sorted[0]), cmp_str);
		for (int i = 1; i < n; i++)
			if (strcmp(sorted[i - 1], sorted[i]) == 0)
				dups++;
		ok(dups == 0, "%d QIDs, all different", n);
		ok(count_in("active", 1) == N && count_in("new", 1) == 0,
		   "all in active/, new/ empty");
		for (int i = 0; i < n; i++)
			must(spool_done(s, qids[i], &e) == 0, "spool_done: %s", e.msg);
		ok(count_in("active", 1) == 0, "spool_done emptied active/");
	}
	spool_close(s);
	buf_free(&b);
}

static void on_alarm(int sig)
{
	static const char msg[] = "Bail out! spool_read blocked on a FIFO\n";

	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

static void test_read(void)
{
	enum { BIG = 200000 };
	char qid[SPOOL_QID_MAX], want[64];
	struct spool *s;
	struct err e = {""};
	struct buf b;
	char *big;
	int rc;

	buf_init(&b);
	new_root("read");
	s = open_ok(true);
	submit_claim(s, "0123456789", qid);
	rc = spool_read(s, SPOOL_ACTIVE, qid, 1024, &b, &e);
	ok(rc == 0 && b.len == 10 && strcmp(b.data, "0123456789") == 0, "read returns the content");
	buf_reset(&b);
	rc = spool_read(s, SPOOL_ACTIVE, qid, 10, &b, &e);
	ok(rc == 0 && b.len == 10, "a file of exactly max bytes is read");
	buf_reset(&b);
	e.msg[0] = '\0';
	rc = spool_read(s, SPOOL_ACTIVE, qid, 9, &b, &e);
	ok(rc == -1, "a file of max + 1 bytes is refused");
	ok(has(&e, "10 bytes") && has(&e, "limit of 9"),
	   "the error gives the size and the limit: %s", e.msg);

	put(P("active", "empty"), "", 0);
	buf_reset(&b);
	rc = spool_read(s, SPOOL_ACTIVE, "empty", 100, &b, &e);
	ok(rc == 0 && b.data != NULL && b.len == 0 && b.data[0] == '\0',
	   "an empty file reads as an empty string");

	big = xmalloc(BIG);
	for (int i = 0; i < BIG; i++)
		big[i] = (char)('a' + i % 26);
	put(P("active", "big"), big, BIG);
	buf_reset(&b);
	rc = spool_read(s, SPOOL_ACTIVE, "big", BIG, &b, &e);
	ok(rc == 0 && b.len == BIG && memcmp(b.data, big, BIG) == 0,
	   "a file larger than one read chunk comes back whole");
	free(big);

	if (mkfifo(P("active", "fifo"), 0600) < 0)
		exit(99);
	signal(SIGALRM, on_alarm);
	alarm(10);
	buf_reset(&b);
	e.msg[0] = '\0';
	rc = spool_read(s, SPOOL_ACTIVE, "fifo", 100, &b, &e);
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	ok(rc == -1 && has(&e, "fifo") && has(&e, "not a regular file"),
	   "a FIFO is refused without blocking: %s", e.msg);

	puts_file(P(NULL, "target"), "secret\n");
	if (symlink(P(NULL, "target"), P("active", "link")) < 0)
		exit(99);
	buf_reset(&b);
	e.msg[0] = '\0';
	rc = spool_read(s, SPOOL_ACTIVE, "link", 100, &b, &e);
	ok(rc == -1 && has(&e, "link") && b.len == 0, "a symlink is not followed: %s", e.msg);

	e.msg[0] = '\0';
	rc = spool_read(s, SPOOL_DEFERRED, "nosuch", 100, &b, &e);
	snprintf(want, sizeof(want), "deferred/nosuch");
	ok(rc == -1 && has(&e, want) && has(&e, "No such file"), "a missing file is named: %s",
	   e.msg);
	spool_close(s);
	buf_free(&b);
}

static void test_meta(void)
{
	struct spool_meta m = {0}, r;
	struct buf b;
	int nl = 0;

	buf_init(&b);
	m.attempts = 3;
	m.received = 1700000000;
	m.first_failed = 1700000030;
	m.next_attempt = 4102444800; /* 2100: past 32 bits */
	snprintf(m.channel, sizeof(m.channel), "ops");
	snprintf(m.last_error, sizeof(m.last_error), "451 4.7.0 Try again\r\nlater\rX\nY\tZ\x7f!");
	spool_meta_format(&m, &b);
	for (size_t i = 0; i < b.len; i++)
		nl += b.data[i] == '\n';
	ok(nl == 6 && strchr(b.data, '\r') == NULL, "format: six lines, no CR");
	ok(strstr(b.data, "attempts: 3\n") && strstr(b.data, "received: 1700000000\n") &&
	       strstr(b.data, "first_failed: 1700000030\n") &&
	       strstr(b.data, "next_attempt: 4102444800\n") && strstr(b.data, "channel: ops\n"),
	   "format: one 'key: value' line per field");
	ok(spool_meta_parse(b.data, b.len, &r) == 0, "parse what format wrote");
	ok(r.attempts == 3 && r.received == 1700000000 && r.first_failed == 1700000030 &&
	       r.next_attempt == 4102444800,
	   "numbers round-trip");
	is_str(r.channel, "ops", "channel round-trips");
	ok(strchr(r.last_error, '\r') == NULL && strchr(r.last_error, '\n') == NULL,
	   "last_error comes back as one line");
	is_str(r.last_error, "451 4.7.0 Try again  later X Y Z !",
	       "last_error: control characters became spaces, the rest kept");

	memset(&m, 0, sizeof(m));
	buf_reset(&b);
	spool_meta_format(&m, &b);
	ok(spool_meta_parse(b.data, b.len, &r) == 0 && r.attempts == 0 && r.channel[0] == '\0' &&
	       r.last_error[0] == '\0',
	   "an all-zero meta round-trips");
	memset(m.last_error, 'e', sizeof(m.last_error) - 1);
	m.last_error[sizeof(m.last_error) - 1] = '\0';
	buf_reset(&b);
	spool_meta_format(&m, &b);
	ok(spool_meta_parse(b.data, b.len, &r) == 0 &&
	       strlen(r.last_error) == sizeof(r.last_error) - 1,
	   "a last_error of the largest size round-trips");

#define GOOD "attempts: 1\nreceived: 10\nfirst_failed: 20\nnext_attempt: 30\n"
	ok(spool_meta_parse(GOOD, strlen(GOOD), &r) == 0 && r.attempts == 1 && r.next_attempt == 30,
	   "parse: the four numbers alone are enough");
#define LAST "attempts: 1\nreceived: 10\nfirst_failed: 20\nnext_attempt: 253402300799\n"
	ok(spool_meta_parse(LAST, strlen(LAST), &r) == 0 && r.next_attempt == 253402300799LL,
	   "parse: the last second of the year 9999 is a time");
	ok(spool_meta_parse(GOOD "channel: c\nlast_error: x",
	                    strlen(GOOD "channel: c\nlast_error: x"), &r) == 0 &&
	       strcmp(r.channel, "c") == 0 && strcmp(r.last_error, "x") == 0,
	   "parse: a last line without a newline");
	{
		static const char *const bad[] = {
		    "",
		    "attempts: 1\nreceived: 10\nfirst_failed: 20\n",
		    "attempts: 1\nreceived: 10\nnext_attempt: 30\n",
		    "received: 10\nfirst_failed: 20\nnext_attempt: 30\n",
		    "attempts: x\nreceived: 10\nfirst_failed: 20\nnext_attempt: 30\n",
		    "attempts: 1\nreceived: 10s\nfirst_failed: 20\nnext_attempt: 30\n",
		    "attempts: 1\nreceived: \nfirst_failed: 20\nnext_attempt: 30\n",
		    "attempts: -1\nreceived: 10\nfirst_failed: 20\nnext_attempt: 30\n",
		    "attempts: 1000000\nreceived: 10\nfirst_failed: 20\nnext_attempt: 30\n",
		    /* NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one string, wrapped */
		    "attempts: 1\nreceived: 99999999999999999999\nfirst_failed: 20\nnext_attempt: "
		    "30\n",
		    /* Beyond the year 9999, or before 1970: milliseconds of it would overflow. */
		    "attempts: 1\nreceived: 10\nfirst_failed: 20\nnext_attempt: 99999999999999999\n",
		    "attempts: 1\nreceived: 10\nfirst_failed: 253402300800\nnext_attempt: 30\n",
		    "attempts: 1\nreceived: -5\nfirst_failed: 20\nnext_attempt: 30\n",
		    GOOD "retries: 5\n",
		    "attempts:1\nreceived:10\nfirst_failed:20\nnext_attempt:30\n",
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct buf q;
			buf_init(&q);
			buf_add_escaped(&q, bad[i]);
			ok(spool_meta_parse(bad[i], strlen(bad[i]), &r) == -1, "parse rejects '%s'",
			   q.data ? q.data : "");
			buf_free(&q);
		}
	}
	{
		static const char dup[] = "attempts: 1\nattempts: 2\nattempts: 3\nattempts: 4\n";
		ok(spool_meta_parse(dup, strlen(dup), &r) == -1,
		     "parse rejects one key four times and received, first_failed, next_attempt "
		     "missing");
	}
	{
		/* 31 zeros, then what makes the value malformed (or a different number). */
		static const char longv[] =
		    "attempts: 1\nreceived: 0000000000000000000000000000000x\n"
		    "first_failed: 20\nnext_attempt: 30\n";
		int rc = spool_meta_parse(longv, strlen(longv), &r);
		ok(rc == -1,
		     "parse rejects a numeric value longer than 31 characters (got rc %d, received "
		     "%lld)",
		     rc, (long long)r.received);
	}
#undef GOOD
	buf_free(&b);
}

static void test_states(void)
{
	char qid[SPOOL_QID_MAX], qid2[SPOOL_QID_MAX], rname[SPOOL_QID_MAX + 8];
	struct spool_meta m = {0}, r;
	struct spool *s;
	struct err e = {""};
	struct buf b;
	int rc;

	buf_init(&b);
	new_root("states");
	s = open_ok(true);

	/* defer, meta_read, activate, done */
	submit_claim(s, "one\n", qid);
	m.attempts = 2;
	m.received = 1700000000;
	m.first_failed = 1700000010;
	m.next_attempt = 1700000070;
	snprintf(m.channel, sizeof(m.channel), "pager");
	snprintf(m.last_error, sizeof(m.last_error), "421 4.3.2 busy\r\n");
	rc = spool_defer(s, qid, &m, &e);
	ok(rc == 0, "defer%s%s", rc ? ": " : "", rc ? e.msg : "");
	ok(!exists(P("active", qid)) && is_file(P("deferred", qid)),
	   "active/QID moved to deferred/");
	ok(is_file(P("meta", qid)) && count_in("meta", 1) == 1,
	   "meta/QID written, no temporary left");
	ok(slurp(P("deferred", qid), &b) == 0 && strcmp(b.data, "one\n") == 0,
	   "content unchanged in deferred/");
	memset(&r, 0xff, sizeof(r));
	rc = spool_meta_read(s, qid, &r, &e);
	ok(rc == 0 && r.attempts == 2 && r.received == 1700000000 && r.first_failed == 1700000010 &&
	       r.next_attempt == 1700000070 && strcmp(r.channel, "pager") == 0,
	   "meta_read gives back what defer wrote%s%s", rc ? ": " : "", rc ? e.msg : "");
	is_str(r.last_error, "421 4.3.2 busy  ", "meta_read: last_error on one line");

	m.attempts = 3;
	rc = spool_activate(s, qid, &e);
	ok(rc == 0 && is_file(P("active", qid)) && !exists(P("deferred", qid)),
	   "activate: deferred/QID back to active/");
	ok(is_file(P("meta", qid)), "activate keeps meta/QID for the next attempt");
	rc = spool_defer(s, qid, &m, &e);
	ok(rc == 0 && spool_meta_read(s, qid, &r, &e) == 0 && r.attempts == 3,
	   "a second defer replaces the meta");
	ok(count_in("meta", 1) == 1, "still one file in meta/");
	must(spool_activate(s, qid, &e) == 0, "spool_activate: %s", e.msg);
	rc = spool_done(s, qid, &e);
	ok(rc == 0 && !exists(P("active", qid)) && !exists(P("meta", qid)),
	   "done removes active/QID and meta/QID");
	rc = spool_done(s, qid, &e);
	ok(rc == 0, "done of an alert already gone is not an error");

	e.msg[0] = '\0';
	rc = spool_activate(s, qid, &e);
	ok(rc == -1 && has(&e, "deferred/") && has(&e, qid), "activate of a missing QID: %s",
	   e.msg);
	e.msg[0] = '\0';
	rc = spool_meta_read(s, qid, &r, &e);
	ok(rc == -1 && has(&e, qid), "meta_read of a missing meta: %s", e.msg);
	puts_file(P("meta", "garbled"), "attempts: many\n");
	e.msg[0] = '\0';
	rc = spool_meta_read(s, "garbled", &r, &e);
	ok(rc == -1 && has(&e, "meta/garbled") && has(&e, "malformed"),
	   "meta_read of a malformed meta: %s", e.msg);
	unlink(P("meta", "garbled"));
	e.msg[0] = '\0';
	rc = spool_defer(s, "1.000000.1", &m, &e);
	ok(rc == -1 && has(&e, "active/1.000000.1"), "defer of a missing QID fails: %s", e.msg);
	unlink(P("meta", "1.000000.1"));

	/* fail from active, with a meta left by an earlier deferral */
	submit_claim(s, "two\n", qid);
	must(spool_defer(s, qid, &m, &e) == 0 && spool_activate(s, qid, &e) == 0, "%s", e.msg);
	rc = spool_fail(s, SPOOL_ACTIVE, qid, "550 5.1.1 no such user\n", &e);
	snprintf(rname, sizeof(rname), "%s.reason", qid);
	ok(rc == 0, "fail from active%s%s", rc ? ": " : "", rc ? e.msg : "");
	ok(!exists(P("active", qid)) && is_file(P("failed", qid)), "active/QID moved to failed/");
	ok(slurp(P("failed", rname), &b) == 0 && strcmp(b.data, "550 5.1.1 no such user\n") == 0,
	   "failed/QID.reason holds the reason");
	ok(slurp(P("failed", qid), &b) == 0 && strcmp(b.data, "two\n") == 0,
	   "content unchanged in failed/");
	ok(!exists(P("meta", qid)), "fail removes meta/QID");
	ok(count_in("failed", 1) == 2, "failed/ holds the alert and its reason, no temporary");

	/* requeue from failed */
	rc = spool_requeue(s, SPOOL_FAILED, qid, &e);
	ok(rc == 0, "requeue from failed%s%s", rc ? ": " : "", rc ? e.msg : "");
	ok(is_file(P("new", qid)) && !exists(P("failed", qid)) && !exists(P("failed", rname)),
	   "failed/QID moved to new/, the reason removed");
	ok(count_in("failed", 1) == 0, "failed/ empty");
	{
		const char *name = qid; /* in new/, the requeued alert keeps its QID as its name */
		rc = spool_claim(s, name, qid2, &e);
	}
	ok(rc == 0 && strcmp(qid, qid2) != 0 && is_file(P("active", qid2)),
	   "the requeued alert is claimed again, under a new QID");
	ok(spool_read(s, SPOOL_ACTIVE, qid2, 100, &b, &e) == 0 && strstr(b.data, "two\n") != NULL,
	   "with its content");
	buf_reset(&b);

	/* fail from deferred */
	rc = spool_defer(s, qid2, &m, &e);
	rc = rc == 0 ? spool_fail(s, SPOOL_DEFERRED, qid2, "gave up after 24h: 421 busy", &e) : rc;
	snprintf(rname, sizeof(rname), "%s.reason", qid2);
	ok(rc == 0, "fail from deferred%s%s", rc ? ": " : "", rc ? e.msg : "");
	ok(!exists(P("deferred", qid2)) && is_file(P("failed", qid2)),
	   "deferred/QID moved to failed/");
	ok(slurp(P("failed", rname), &b) == 0 && strcmp(b.data, "gave up after 24h: 421 busy") == 0,
	   "the reason written");
	ok(!exists(P("meta", qid2)), "meta/QID removed");

	/* requeue from deferred */
	submit_claim(s, "three\n", qid);
	must(spool_defer(s, qid, &m, &e) == 0, "spool_defer: %s", e.msg);
	rc = spool_requeue(s, SPOOL_DEFERRED, qid, &e);
	ok(rc == 0 && is_file(P("new", qid)) && !exists(P("deferred", qid)) &&
	       !exists(P("meta", qid)),
	   "requeue from deferred: to new/, meta removed");
	e.msg[0] = '\0';
	rc = spool_requeue(s, SPOOL_FAILED, "1.000000.1", &e);
	ok(rc == -1 && has(&e, "failed/1.000000.1"), "requeue of a missing QID fails: %s", e.msg);

	e.msg[0] = '\0';
	rc = spool_fail(s, SPOOL_ACTIVE, "1.000000.2", "why", &e);
	ok(rc == -1 && has(&e, "active/1.000000.2"), "fail of a missing QID fails: %s", e.msg);
	ok(!exists(P("failed", "1.000000.2.reason")),
	     "a failed spool_fail leaves no reason without an alert");
	unlink(P("failed", "1.000000.2.reason"));

	spool_close(s);
	buf_free(&b);
}

struct counter {
	int calls;
	int stop_at;
	int ret;
	struct buf names;
};

static int count_cb(void *ctx, const char *name)
{
	struct counter *c = ctx;

	c->calls++;
	buf_adds(&c->names, name);
	buf_addc(&c->names, '\n');
	return c->calls == c->stop_at ? c->ret : 0;
}

static void test_list(void)
{
	struct counter c = {0};
	struct spool *s;
	struct err e = {""};
	int rc;

	buf_init(&c.names);
	new_root("list");
	s = open_ok(true);
	rc = spool_list(s, SPOOL_NEW, count_cb, &c, &e);
	ok(rc == 0 && c.calls == 0, "an empty directory: no calls, 0");

	puts_file(P("new", "a"), "");
	puts_file(P("new", "b"), "");
	puts_file(P("new", ".hidden"), "");
	puts_file(P("new", ".b.tmp"), "");
	puts_file(P("new", "c.reason"), "");
	rc = spool_list(s, SPOOL_NEW, count_cb, &c, &e);
	ok(rc == 0 && c.calls == 2, "new/: two alerts among five files (%d calls)", c.calls);
	ok(c.names.data &&
	       (strcmp(c.names.data, "a\nb\n") == 0 || strcmp(c.names.data, "b\na\n") == 0),
	   "the alerts, no dot-files, no .reason");

	puts_file(P("failed", "1.000000.7"), "");
	puts_file(P("failed", "1.000000.7.reason"), "");
	puts_file(P("failed", ".1.000000.8.reason.tmp"), "");
	c.calls = 0;
	buf_reset(&c.names);
	rc = spool_list(s, SPOOL_FAILED, count_cb, &c, &e);
	ok(rc == 0 && c.calls == 1 && strcmp(c.names.data, "1.000000.7\n") == 0,
	   "failed/: the alert alone, not its reason");

	for (int i = 0; i < 5; i++) {
		char n[16];
		snprintf(n, sizeof(n), "x%d", i);
		puts_file(P("active", n), "");
	}
	c.calls = 0;
	c.stop_at = 2;
	c.ret = 7;
	rc = spool_list(s, SPOOL_ACTIVE, count_cb, &c, &e);
	ok(rc == 7 && c.calls == 2,
	   "stops when fn returns non-zero, returning it (rc %d, %d calls)", rc, c.calls);
	c.calls = 0;
	c.stop_at = 1;
	c.ret = -3;
	rc = spool_list(s, SPOOL_ACTIVE, count_cb, &c, &e);
	ok(rc == -3 && c.calls == 1, "a negative return value too");
	c.calls = 0;
	c.stop_at = 0;
	rc = spool_list(s, SPOOL_ACTIVE, count_cb, &c, &e);
	ok(rc == 0 && c.calls == 5, "all five when fn returns 0");
	spool_close(s);
	buf_free(&c.names);
}

static void test_lock(void)
{
	struct spool *a, *b, *c;
	struct err e = {""};
	struct buf t;
	char want[64];
	int rc;

	buf_init(&t);
	new_root("lock");
	a = open_ok(true);
	b = open_ok(false);
	ok(spool_lock_holder(a) == 0, "no holder before anyone locks");
	rc = spool_lock(a, &e);
	ok(rc == 0, "lock%s%s", rc ? ": " : "", rc ? e.msg : "");
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	ok(slurp(P(NULL, ".lock"), &t) == 0 && strcmp(t.data, want) == 0, ".lock holds our PID");
	ok(spool_lock_holder(a) == (long)getpid() && spool_lock_holder(b) == (long)getpid(),
	   "lock_holder gives the PID, through either handle");
	e.msg[0] = '\0';
	rc = spool_lock(b, &e);
	snprintf(want, sizeof(want), "PID %ld", (long)getpid());
	ok(rc == -1, "a second handle on the same spool is refused");
	ok(has(&e, want) && has(&e, root), "the refusal names the spool and the holder's PID: %s",
	   e.msg);
	ok(spool_lock_holder(b) == (long)getpid(),
	   "the refused attempt left the lock and PID alone");
	spool_close(a);
	ok(spool_lock_holder(b) == 0, "no holder after spool_close of the holder");
	rc = spool_lock(b, &e);
	ok(rc == 0 && spool_lock_holder(b) == (long)getpid(), "the other handle may lock now");
	spool_close(b);

	/* Another process holds it. */
	{
		int ready[2], release[2];
		pid_t child;
		char ch;
		int status = 0;

		if (pipe(ready) < 0 || pipe(release) < 0)
			exit(99);
		must(fflush(stdout) == 0, "flush before fork"); /* or the child repeats it */
		child = fork();
		if (child < 0)
			exit(99);
		if (child == 0) {
			struct spool *cs = NULL;
			close(ready[0]);
			close(release[1]);
			if (spool_open(root, false, &cs, NULL) == 0 && spool_lock(cs, NULL) == 0) {
				if (write(ready[1], "x", 1) != 1)
					_exit(3);
				while (read(release[0], &ch, 1) > 0)
					;
			}
			spool_close(cs);
			_exit(0);
		}
		close(ready[1]);
		close(release[0]);
		ok(read(ready[0], &ch, 1) == 1, "a child process locks the spool");
		c = open_ok(false);
		ok(spool_lock_holder(c) == (long)child, "lock_holder gives the child's PID");
		e.msg[0] = '\0';
		rc = spool_lock(c, &e);
		snprintf(want, sizeof(want), "(PID %ld)", (long)child);
		ok(rc == -1 && has(&e, want), "refused, naming the child's PID: %s", e.msg);
		close(release[1]);
		must(waitpid(child, &status, 0) == child, "waitpid");
		close(ready[0]);
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child ends");
		ok(spool_lock_holder(c) == 0,
		   "no holder once the child is gone, its PID still in .lock");
		rc = spool_lock(c, &e);
		snprintf(want, sizeof(want), "%ld\n", (long)getpid());
		ok(rc == 0 && slurp(P(NULL, ".lock"), &t) == 0 && strcmp(t.data, want) == 0,
		   "a stale .lock is taken over and rewritten with our PID");
		spool_close(c);
	}

	/* spool_lock_holder takes a shared lock for a moment: a daemon starting right then. */
	{
		int fd = open(P(NULL, ".lock"), O_RDONLY);
		c = open_ok(false);
		if (fd < 0 || flock(fd, LOCK_SH | LOCK_NB) < 0)
			exit(99);
		e.msg[0] = '\0';
		rc = spool_lock(c, &e);
		ok(rc == 0,
		     "lock succeeds while a lock_holder probe holds its momentary shared lock (%s)",
		     rc == 0 ? "locked" : e.msg);
		close(fd);
		spool_close(c);
	}
	buf_free(&t);
}

static void test_clean_tmp(void)
{
	struct timespec ts[2];
	struct spool *s;
	struct err e = {""};
	time_t now = time(NULL);
	int rc;

	new_root("clean");
	s = open_ok(true);
	puts_file(P("tmp", "old"), "x");
	puts_file(P("tmp", ".old-dot"), "x");
	puts_file(P("tmp", "young"), "x");
	puts_file(P("new", "old-in-new"), "x");
	must(mkdir(P("tmp", "olddir"), 0700) == 0, "mkdir tmp/olddir");
	if (symlink("/nonexistent", P("tmp", "oldlink")) < 0)
		exit(99);
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	ts[0].tv_sec = ts[1].tv_sec = now - 3600;
	utimensat(AT_FDCWD, P("tmp", "old"), ts, 0);
	utimensat(AT_FDCWD, P("tmp", ".old-dot"), ts, 0);
	utimensat(AT_FDCWD, P("new", "old-in-new"), ts, 0);
	utimensat(AT_FDCWD, P("tmp", "olddir"), ts, 0);
	utimensat(AT_FDCWD, P("tmp", "oldlink"), ts, AT_SYMLINK_NOFOLLOW);
	ts[0].tv_sec = ts[1].tv_sec = now - 10;
	utimensat(AT_FDCWD, P("tmp", "young"), ts, 0);

	rc = spool_clean_tmp(s, 600, &e);
	ok(rc == 2, "two files older than 10 minutes removed (rc %d)", rc);
	ok(!exists(P("tmp", "old")) && !exists(P("tmp", ".old-dot")), "the old files are gone");
	ok(is_file(P("tmp", "young")), "a young file stays");
	ok(exists(P("tmp", "olddir")) && exists(P("tmp", "oldlink")),
	   "an old directory and an old symlink stay: regular files only");
	ok(is_file(P("new", "old-in-new")), "an old file in new/ is not touched");
	rc = spool_clean_tmp(s, 600, &e);
	ok(rc == 0, "nothing more to remove");
	rc = spool_clean_tmp(s, 5, &e);
	ok(rc == 1 && !exists(P("tmp", "young")), "with max_age 5s the 10s-old file goes too");
	spool_close(s);
}

/* Fan-out: the pin in a queue id, copies of an entry (hard links, or bytes written where the
 * kernel refuses the link), their commit, the pinning rename, and a claim that keeps a pin. */
static void test_fanout(void)
{
	char qid[SPOOL_QID_MAX], pinned[SPOOL_QID_MAX], c1[SPOOL_QID_MAX], c2[SPOOL_QID_MAX];
	char name[SPOOL_NAME_MAX], back[SPOOL_QID_MAX];
	struct spool_copies *b;
	struct spool *s;
	struct err e = {""};
	struct stat st1, st2;
	struct buf got;
	int rc;

	is_str(spool_qid_channel("1764000000.000001.42+ops"), "ops", "pin: the channel of a qid");
	is_str(spool_qid_channel("1764000000.000001.42+a.b-c_d"), "a.b-c_d",
	       "pin: channel names with . - _");
	ok(spool_qid_channel("1764000000.000001.42") == NULL &&
	       spool_qid_channel("1764000000.000001.42+") == NULL &&
	       spool_qid_channel("alert+ops") == NULL &&
	       spool_qid_channel("1764000000.0001.42+ops") == NULL &&
	       spool_qid_channel("1764000000.000001.42+o/ps") == NULL &&
	       spool_qid_channel("1764000000.000001.42+o+ps") == NULL,
	   "pin: none without '+', with nothing after it, on a writer's name, bad channel chars");
	{
		char ch[SPOOL_PIN_MAX + 2], q[SPOOL_QID_MAX + 80];
		memset(ch, 'c', sizeof(ch) - 1);
		ch[sizeof(ch) - 1] = '\0';
		snprintf(q, sizeof(q), "1764000000.000001.42+%s", ch);
		ok(spool_qid_channel(q) == NULL && spool_qid_pin("1.000001.2", ch, pinned) < 0,
		   "pin: a channel name over %d bytes is none", SPOOL_PIN_MAX);
	}
	ok(spool_qid_pin("1764000000.000001.42", "ops", pinned) == 0 &&
	       strcmp(pinned, "1764000000.000001.42+ops") == 0 &&
	       spool_qid_pin(pinned, "dba", pinned) == 0 &&
	       strcmp(pinned, "1764000000.000001.42+dba") == 0,
	   "pin: made, and a pin replaced, in place: %s", pinned);

	buf_init(&got);
	new_root("fanout");
	s = open_ok(true);
	submit_claim(s, "id: f1\n", qid);
	b = spool_copies_new();
	spool_qid_pin(qid, "dba", c1);
	spool_qid_pin(qid, "pager", c2);
	rc = spool_copy(s, b, qid, c1, "id: f1\n", 7, &e);
	ok(rc == 0 && is_file(P("active", c1)), "copy: a hard link in active/ at once%s%s",
	   rc < 0 ? ": " : "", rc < 0 ? e.msg : "");
	ok(lstat(P("active", qid), &st1) == 0 && lstat(P("active", c1), &st2) == 0 &&
	       st1.st_ino == st2.st_ino && st2.st_nlink == 2,
	   "copy: the same file, two names");
	rc = spool_copy(s, b, qid, c1, "id: f1\n", 7, &e);
	ok(rc == 1, "copy: an entry of that name in active/ exists already: 1");
	put(P("deferred", c2), "id: f1\n", 7);
	ok(spool_copy(s, b, qid, c2, "id: f1\n", 7, &e) == 1 && !exists(P("active", c2)),
	   "copy: an entry of that name in deferred/ exists already: kept, not made twice");
	unlink(P("deferred", c2));
	put(P("failed", c2), "id: f1\n", 7);
	ok(spool_copy(s, b, qid, c2, "id: f1\n", 7, &e) == 1, "copy: ... in failed/ too");
	unlink(P("failed", c2));
	ok(spool_copy(s, b, "1.000000.1", c2, "x", 1, &e) < 0 && has(&e, "active/1.000000.1"),
	   "copy: of an entry that is not there: an error: %s", e.msg);
	ok(spool_copies_commit(s, b, &e) == 0, "commit: links only%s%s", e.msg[0] ? ": " : "",
	   e.msg);
	spool_qid_pin(qid, "ops", pinned);
	ok(spool_rename_active(s, qid, pinned, &e) == 0 && !exists(P("active", qid)) &&
	       is_file(P("active", pinned)),
	   "pin: active/QID renamed to active/QID+ops");
	ok(spool_rename_active(s, c1, pinned, &e) == 1 && is_file(P("active", c1)) &&
	       is_file(P("active", pinned)),
	   "pin: never over an existing entry: 1, both left as they are");
	put(P("failed", c2), "id: f1\n", 7);
	ok(spool_rename_active(s, c1, c2, &e) == 1 && is_file(P("active", c1)),
	   "pin: nor when the entry of that name is in failed/ (or deferred/)");
	unlink(P("failed", c2));
	ok(spool_rename_active(s, "1.000000.1", c2, &e) < 0 && has(&e, "1.000000.1"),
	   "pin: an entry that is not there: an error: %s", e.msg);
	put(P("meta", c1), "attempts: 1\n", 12);
	ok(spool_rename_active(s, c1, c2, &e) == 0 && is_file(P("meta", c2)) &&
	       !exists(P("meta", c1)),
	   "pin: the entry's meta/ file goes with it");

	/* A pinned entry put back into new/ (alertmail retry) keeps its channel when claimed. */
	ok(rename(P("active", c2), P("new", c2)) == 0, "(setup: %s back in new/)", c2);
	rc = spool_claim(s, c2, back, &e);
	ok(rc == 0 &&
	       strcmp(spool_qid_channel(back) ? spool_qid_channel(back) : "", "pager") == 0 &&
	       strncmp(back, qid, 3) == 0,
	   "claim: a pinned name keeps its pin in the new queue id: %s", back);
	snprintf(name, sizeof(name), "report+ops");
	put(P("new", name), "id: w\n", 6);
	rc = spool_claim(s, name, back, &e);
	ok(rc == 0 && spool_qid_channel(back) == NULL,
	   "claim: a writer's name with '+' pins nothing: %s", back);
	spool_copies_free(s, b);
	spool_close(s);

	/* Where the kernel refuses the link (fs.protected_hardlinks: the daemon may read a
	 * writer's file but not write it), the bytes are written into tmp/ and linked into
	 * active/ by the commit. Run as another user to make the kernel refuse. */
	if (geteuid() != 0) {
		ok(1, "copy by bytes # SKIP needs root to act as another user");
		buf_free(&got);
		return;
	}
	new_root("fanout-bytes");
	s = open_ok(true);
	submit_claim(s, "id: f2\n", qid);
	must(chmod(P("active", qid), 0640) == 0 && chown(P("active", qid), 0, 0) == 0, "chown");
	spool_close(s);
	{
		pid_t pid;
		int status = 0;
		const char *dirs[] = {NULL, "tmp", "new", "active", "deferred", "meta", "failed"};

		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
			must(chown(P(dirs[i], NULL), 65534, 0) == 0, "chown %s", dirs[i]);
		must(chmod(top, 0711) == 0, "chmod %s", top);
		(void)fflush(stdout);
		pid = fork();
		must(pid >= 0, "fork");
		if (pid == 0) {
			/* nobody, in root's group: it may read the file (0640) but not write it. */
			if (setgid(0) != 0 || setuid(65534) != 0)
				_exit(2);
			s = NULL;
			if (spool_open(root, false, &s, &e) < 0)
				_exit(3);
			b = spool_copies_new();
			spool_qid_pin(qid, "dba", c1);
			if (spool_copy(s, b, qid, c1, "id: f2\n", 7, &e) != 0)
				_exit(4);
			/* Not in active/ before the commit: a crash loses it, not a half file. */
			if (spool_exists(s, SPOOL_ACTIVE, c1) || count_in("tmp", 0) != 1)
				_exit(5);
			if (spool_copies_commit(s, b, &e) != 0)
				_exit(6);
			spool_copies_free(s, b);
			spool_close(s);
			_exit(0);
		}
		must(waitpid(pid, &status, 0) == pid && chmod(top, 0700) == 0, "waitpid");
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		   "copy by bytes: made in tmp/, in active/ only after the commit (status %d)",
		   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	spool_qid_pin(qid, "dba", c1);
	ok(lstat(P("active", qid), &st1) == 0 && lstat(P("active", c1), &st2) == 0 &&
	       st1.st_ino != st2.st_ino && slurp(P("active", c1), &got) == 0 &&
	       strcmp(got.data, "id: f2\n") == 0 && st2.st_uid == 65534 &&
	       (st2.st_mode & 07777) == 0640,
	   "copy by bytes: a file of its own, the daemon's, mode 0640, the same bytes");
	ok(count_in("tmp", 1) == 0, "copy by bytes: nothing left in tmp/");
	buf_free(&got);
}

int main(void)
{
	/* The spool must not depend on the caller's umask. */
	umask(077);
	snprintf(top, sizeof(top), "/tmp/alertmail-test-spool-XXXXXX");
	if (mkdtemp(top) == NULL)
		return 99;

	test_pure();
	test_open();
	test_submit();
	test_claim();
	test_read();
	test_meta();
	test_states();
	test_list();
	test_lock();
	test_clean_tmp();
	test_fanout();

	tap_remove_tree(top);
	return done_testing();
}

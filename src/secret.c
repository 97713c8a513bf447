#include "config.h"

#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"

/* Reads until EOF or until cap bytes are in b; returns the number read, or -1. */
static ssize_t read_full(int fd, char *b, size_t cap)
{
	size_t len = 0;

	while (len < cap) {
		ssize_t n = read(fd, b + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return (ssize_t)len;
}

int secret_read_file(const char *path, char **out, struct err *e)
{
	/* One byte more than allowed tells a file at the limit from a larger one. The size is
	 * fixed: a buffer grown by realloc would leave copies of the secret in freed memory. */
	const size_t cap = SECRET_MAX_SIZE + 1;
	struct stat st;
	char *b;
	ssize_t got;
	size_t len;
	int fd, rc = -1;

	*out = NULL;
	/* O_NONBLOCK: a FIFO in the file's place must not hang the program; it is refused below
	 * like any other file that is not regular. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		err_set(e,
		        "%s is accessible by group or others (mode %04o); make it private with: "
		        "chmod 600 %s",
		        path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	b = xmalloc(cap);
	got = read_full(fd, b, cap);
	if (got < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		goto out;
	}
	len = (size_t)got;
	if (len > SECRET_MAX_SIZE) {
		err_set(e, "%s: larger than %d bytes", path, SECRET_MAX_SIZE);
		goto out;
	}
	/* One trailing line break is the editor's, not the password's. */
	if (len > 0 && b[len - 1] == '\n')
		len--;
	if (len > 0 && b[len - 1] == '\r')
		len--;
	if (len == 0) {
		err_set(e, "%s is empty", path);
		goto out;
	}
	if (memchr(b, '\0', len) != NULL) {
		err_set(e, "%s contains a NUL byte", path);
		goto out;
	}
	*out = xstrndup(b, len);
	rc = 0;
out:
	close(fd);
	explicit_bzero(b, cap);
	free(b);
	return rc;
}

int secret_resolve(enum secret_source source, const char *where, char **out, struct err *e)
{
	const char *v;

	*out = NULL;
	switch (source) {
	case SECRET_FILE:
		return secret_read_file(where, out, e);
	case SECRET_ENV:
		v = getenv(where);
		if (v == NULL || *v == '\0') {
			err_set(e, "the environment variable %s is not set", where);
			return -1;
		}
		*out = xstrdup(v);
		return 0;
	case SECRET_INLINE:
		*out = xstrdup(where);
		return 0;
	}
	err_set(e, "unknown kind of secret source");
	return -1;
}

void secret_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

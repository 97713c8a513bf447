#include "config.h"

#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "hostkey.h"

#define CREDENTIALS_VAR "CREDENTIALS_DIRECTORY"

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

/* If path names a file directly in the credentials directory that systemd gave this process,
 * opens that directory and returns its descriptor, with *base the file's name in it; else -1.
 * The directory is compared by identity, not by name, and must be private: systemd makes it
 * mode 0500 (0550 with its ACL), read-only. */
static int credentials_dir(const char *path, const char **base)
{
	const char *cred = getenv(CREDENTIALS_VAR);
	const char *slash = strrchr(path, '/');
	struct stat dir_st, cred_st;
	char *dir;
	int fd;

	if (cred == NULL || cred[0] != '/' || slash == NULL || slash[1] == '\0')
		return -1;
	dir = xstrndup(path, slash == path ? 1 : (size_t)(slash - path));
	/* O_PATH: a directory its user may search but not list (systemd's is r-x) is enough. */
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	if (fstat(fd, &dir_st) < 0 || stat(cred, &cred_st) < 0 || dir_st.st_dev != cred_st.st_dev ||
	    dir_st.st_ino != cred_st.st_ino || (dir_st.st_mode & (S_IWGRP | S_IRWXO)) != 0) {
		close(fd);
		return -1;
	}
	*base = slash + 1;
	return fd;
}

int secret_read_file(const char *path, char **out, struct err *e)
{
	/* One byte more than allowed tells a file at the limit from a larger one. The size is
	 * fixed: a buffer grown by realloc would leave copies of the secret in freed memory. */
	const size_t cap = SECRET_MAX_SIZE + 1;
	/* O_NONBLOCK: a FIFO in the file's place must not hang the program; it is refused below
	 * like any other file that is not regular. */
	const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
	const char *base = NULL;
	struct stat st;
	char *b;
	ssize_t got;
	size_t len;
	int fd, dirfd, rc = -1;
	bool credential;

	*out = NULL;
	dirfd = credentials_dir(path, &base);
	credential = dirfd >= 0;
	if (credential) {
		fd = openat(dirfd, base, flags);
		close(dirfd);
	} else {
		fd = open(path, flags);
	}
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
	if (credential && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0) {
		err_set(e,
		        "%s is accessible by others or writable by the group (mode %04o); systemd "
		        "makes a credential readable by the service's user only",
		        path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	if (!credential && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
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

/* The part after "$CREDENTIALS_DIRECTORY/" or "${CREDENTIALS_DIRECTORY}/", or NULL. */
static const char *credential_name(const char *written)
{
	static const char *const forms[] = {"$" CREDENTIALS_VAR "/", "${" CREDENTIALS_VAR "}/"};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		if (strncmp(written, forms[i], strlen(forms[i])) == 0)
			return written + strlen(forms[i]);
	return NULL;
}

bool secret_path_is_credential(const char *written)
{
	return credential_name(written) != NULL;
}

int secret_path_expand(const char *written, char **out, struct err *e)
{
	const char *name = credential_name(written);
	const char *dir;
	size_t dlen;

	if (out != NULL)
		*out = NULL;
	if (name == NULL) {
		if (written[0] != '/') {
			err_set(e, "expected an absolute path or $%s/NAME, got '%s'", CREDENTIALS_VAR,
			        written);
			return -1;
		}
		if (out != NULL)
			*out = xstrdup(written);
		return 0;
	}
	/* A credential's name, as systemd takes it: a file name. */
	if (*name == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strlen(name) > 255) {
		err_set(e, "expected $%s/NAME, NAME a credential's name as in LoadCredential=NAME:..., "
		           "got '%s'",
		        CREDENTIALS_VAR, written);
		return -1;
	}
	if (out == NULL)
		return 0;
	dir = getenv(CREDENTIALS_VAR);
	if (dir == NULL || *dir == '\0') {
		err_set(e,
		        "$%s is not set: systemd sets it for a service with LoadCredential= (%s is the "
		        "service's private copy of the file); outside the service, give the file's own "
		        "path",
		        CREDENTIALS_VAR, written);
		return -1;
	}
	if (dir[0] != '/') {
		err_set(e, "$%s is not an absolute path: '%s'", CREDENTIALS_VAR, dir);
		return -1;
	}
	dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	*out = xasprintf("%.*s/%s", (int)dlen, dir, name);
	return 0;
}

int secret_resolve(const struct secret_ctx *ctx, enum secret_source source, const char *where,
                   char **out, struct err *note, struct err *e)
{
	char prev_fp[SEAL_FP_LEN];
	const char *v;
	int rc;

	*out = NULL;
	note->msg[0] = '\0';
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
	case SECRET_SEALED:
		if (ctx == NULL || ctx->state_dir == NULL) {
			err_set(e, "sealed values cannot be opened here (no state directory)");
			return -1;
		}
		rc = hostkey_open(ctx->state_dir, where, out, prev_fp, e);
		if (rc == 1)
			err_set(note,
			        "sealed to the previous host key (%s, %s/%s, kept by the last "
			        "rotation): seal it anew with alertmail secret seal",
			        prev_fp, ctx->state_dir, HOSTKEY_OLD_FILE);
		return rc < 0 ? -1 : 0;
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

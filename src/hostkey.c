#include "config.h"

#include "hostkey.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "secret.h"

/* A key file is never encrypted: the callback refuses instead of prompting on a terminal. */
/* NOLINTNEXTLINE(readability-non-const-parameter): OpenSSL's pem_password_cb type */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int hostkey_load(const char *state_dir, enum hostkey_which which, EVP_PKEY **out, struct err *e)
{
	const char *name = which == HOSTKEY_CURRENT ? HOSTKEY_FILE : HOSTKEY_OLD_FILE;
	char *path = xasprintf("%s/%s", state_dir, name);
	char *pem = NULL;
	struct stat st;
	BIO *bio;
	int rc = -1;

	*out = NULL;
	if (lstat(path, &st) < 0 && errno == ENOENT) {
		free(path);
		return 1;
	}
	/* The same checks as for a password file: regular, not a link, private, bounded. */
	if (secret_read_file(path, &pem, e) < 0) {
		err_prefix(e, "host key");
		free(path);
		return -1;
	}
	bio = BIO_new_mem_buf(pem, -1);
	if (bio != NULL)
		*out = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (*out == NULL || EVP_PKEY_id(*out) != EVP_PKEY_X25519) {
		err_set(e, "host key %s: not an X25519 private key in PEM", path);
		EVP_PKEY_free(*out);
		*out = NULL;
	} else {
		rc = 0;
	}
	secret_free(pem);
	free(path);
	return rc;
}

void hostkey_fingerprint(EVP_PKEY *key, char fp[SEAL_FP_LEN])
{
	unsigned char pub[SEAL_KEY_LEN];

	if (seal_public(key, pub, NULL) < 0)
		snprintf(fp, SEAL_FP_LEN, "?");
	else
		seal_fingerprint(pub, fp);
}

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

/* Writes key into a new file of the directory, created with O_EXCL and mode 0600 and given the
 * directory's owner when root writes it, then fsync'd; its name goes to tmp. The PEM text is
 * in memory that OpenSSL wipes when freed. */
static int write_temp(int dirfd, const char *dir, EVP_PKEY *key, char *tmp, size_t tmp_len,
                      struct err *e)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	unsigned int rnd = 0;
	struct stat dst;
	char *data = NULL;
	long len;
	int fd;

	(void)RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
	snprintf(tmp, tmp_len, "%s.tmp-%ld-%08x", HOSTKEY_FILE, (long)getpid(), rnd);
	len = 0;
	if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
		len = BIO_get_mem_data(bio, &data);
	if (len <= 0) {
		err_set(e, "cannot write the key as PEM (OpenSSL)");
		BIO_free(bio);
		return -1;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err_set(e, "%s/%s: %s", dir, tmp, strerror(errno));
		BIO_free(bio);
		return -1;
	}
	/* Whoever makes the key (root running alertmail secret pubkey, say), the daemon, which
	 * owns the state directory, must be able to read it. */
	if (geteuid() == 0 && fstat(dirfd, &dst) == 0 && dst.st_uid != 0 &&
	    fchown(fd, dst.st_uid, dst.st_gid) < 0) {
		err_set(e, "%s/%s: chown: %s", dir, tmp, strerror(errno));
		goto fail;
	}
	if (write_all(fd, data, (size_t)len) < 0 || fsync(fd) < 0) {
		err_set(e, "%s/%s: %s", dir, tmp, strerror(errno));
		goto fail;
	}
	BIO_free(bio);
	if (close(fd) < 0) {
		err_set(e, "%s/%s: %s", dir, tmp, strerror(errno));
		unlinkat(dirfd, tmp, 0);
		return -1;
	}
	return 0;
fail:
	BIO_free(bio);
	close(fd);
	unlinkat(dirfd, tmp, 0);
	return -1;
}

static int open_dir(const char *dir, struct err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		err_set(e, "state directory %s: %s", dir, strerror(errno));
	return fd;
}

int hostkey_ensure(const char *state_dir, EVP_PKEY **out, bool *created, struct err *e)
{
	char tmp[128];
	EVP_PKEY *key = NULL;
	int rc, dirfd;

	*created = false;
	rc = hostkey_load(state_dir, HOSTKEY_CURRENT, out, e);
	if (rc <= 0)
		return rc;
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
		err_set(e, "cannot make the state directory %s: %s", state_dir, strerror(errno));
		return -1;
	}
	dirfd = open_dir(state_dir, e);
	if (dirfd < 0)
		return -1;
	if (seal_keygen(&key, e) < 0 || write_temp(dirfd, state_dir, key, tmp, sizeof(tmp), e) < 0)
		goto fail;
	/* link(), not rename(): a key that another process made meanwhile is kept, and used. */
	if (linkat(dirfd, tmp, dirfd, HOSTKEY_FILE, 0) < 0) {
		int saved = errno;
		unlinkat(dirfd, tmp, 0);
		if (saved == EEXIST) {
			EVP_PKEY_free(key);
			close(dirfd);
			rc = hostkey_load(state_dir, HOSTKEY_CURRENT, out, e);
			if (rc == 1)
				err_set(e, "%s/%s: made and removed by another process meanwhile",
				        state_dir, HOSTKEY_FILE);
			return rc == 0 ? 0 : -1;
		}
		err_set(e, "%s/%s: %s", state_dir, HOSTKEY_FILE, strerror(saved));
		goto fail;
	}
	unlinkat(dirfd, tmp, 0);
	if (fsync(dirfd) < 0) {
		err_set(e, "state directory %s: fsync: %s", state_dir, strerror(errno));
		goto fail;
	}
	close(dirfd);
	*out = key;
	*created = true;
	return 0;
fail:
	EVP_PKEY_free(key);
	close(dirfd);
	return -1;
}

int hostkey_rotate(const char *state_dir, EVP_PKEY **out, struct err *e)
{
	char tmp[128], old_tmp[160];
	EVP_PKEY *cur = NULL, *key = NULL;
	int rc, dirfd;

	*out = NULL;
	rc = hostkey_load(state_dir, HOSTKEY_CURRENT, &cur, e);
	if (rc == 1)
		err_set(e,
		        "there is no host key to rotate in %s; alertmail secret pubkey makes the "
		        "first one",
		        state_dir);
	if (rc != 0)
		return -1;
	EVP_PKEY_free(cur);
	dirfd = open_dir(state_dir, e);
	if (dirfd < 0)
		return -1;
	if (seal_keygen(&key, e) < 0 || write_temp(dirfd, state_dir, key, tmp, sizeof(tmp), e) < 0)
		goto fail;
	/* host.key stays in place throughout: linked to a temporary name, that replaces
	 * host.key.old, and only then does the new key replace host.key. */
	snprintf(old_tmp, sizeof(old_tmp), "%s.old", tmp);
	if (linkat(dirfd, HOSTKEY_FILE, dirfd, old_tmp, 0) < 0) {
		err_set(e, "%s/%s: %s", state_dir, old_tmp, strerror(errno));
		unlinkat(dirfd, tmp, 0);
		goto fail;
	}
	if (renameat(dirfd, old_tmp, dirfd, HOSTKEY_OLD_FILE) < 0) {
		err_set(e, "%s/%s: %s", state_dir, HOSTKEY_OLD_FILE, strerror(errno));
		unlinkat(dirfd, old_tmp, 0);
		unlinkat(dirfd, tmp, 0);
		goto fail;
	}
	if (renameat(dirfd, tmp, dirfd, HOSTKEY_FILE) < 0) {
		err_set(e, "%s/%s: %s (the current key is unchanged)", state_dir, HOSTKEY_FILE,
		        strerror(errno));
		unlinkat(dirfd, tmp, 0);
		goto fail;
	}
	if (fsync(dirfd) < 0) {
		err_set(e, "state directory %s: fsync: %s", state_dir, strerror(errno));
		goto fail;
	}
	close(dirfd);
	*out = key;
	return 0;
fail:
	EVP_PKEY_free(key);
	close(dirfd);
	return -1;
}

int hostkey_open(const char *state_dir, const char *sealed, char **out, char prev_fp[SEAL_FP_LEN],
                 struct err *e)
{
	char fp[SEAL_FP_LEN];
	EVP_PKEY *key = NULL;
	struct err e2;
	int rc;

	*out = NULL;
	prev_fp[0] = '\0';
	rc = hostkey_load(state_dir, HOSTKEY_CURRENT, &key, e);
	if (rc == 1)
		err_set(e,
		        "this host has no key yet (no %s/%s): alertmail secret pubkey makes one; "
		        "then seal the value to it",
		        state_dir, HOSTKEY_FILE);
	if (rc != 0)
		return SEAL_NOT_OPENED;
	rc = seal_decrypt(key, sealed, out, e);
	hostkey_fingerprint(key, fp);
	EVP_PKEY_free(key);
	if (rc != SEAL_NOT_OPENED)
		return rc;

	/* Sealed before the last rotation? */
	rc = hostkey_load(state_dir, HOSTKEY_PREVIOUS, &key, &e2);
	if (rc < 0) {
		err_set(
		    e,
		    "cannot open with this host's key (%s), and the previous key is unusable: %s",
		    fp, e2.msg);
		return SEAL_NOT_OPENED;
	}
	if (rc == 0) {
		rc = seal_decrypt(key, sealed, out, &e2);
		if (rc == 0)
			hostkey_fingerprint(key, prev_fp);
		EVP_PKEY_free(key);
		if (rc == 0)
			return 1;
	}
	err_set(e,
	        "cannot open: sealed to another host's key, or altered (this host's key is %s; "
	        "alertmail secret pubkey prints it)",
	        fp);
	return SEAL_NOT_OPENED;
}

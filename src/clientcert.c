#include "config.h"

#include "clientcert.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "secret.h"

/* A key with a passphrase would make OpenSSL ask on the terminal: refuse instead. */
/* NOLINTNEXTLINE(readability-non-const-parameter): OpenSSL's pem_password_cb type */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(int *)u = 1;
	return -1;
}

/* OpenSSL's reason for the last failure, for messages. */
static const char *ssl_reason(void)
{
	unsigned long code = ERR_peek_last_error();
	const char *r = code != 0 ? ERR_reason_error_string(code) : NULL;

	return r != NULL ? r : "no details";
}

/* Reads the first certificate of a PEM file (a certificate, its chain after it); *has_key
 * tells whether the file holds a private key too. */
static X509 *read_cert(const char *path, bool *has_key, struct err *e)
{
	struct stat st;
	BIO *bio;
	X509 *x;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		err_set(e, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		err_set(e, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_size > CLIENTCERT_MAX_SIZE) {
		err_set(e, "%s: larger than %ld bytes", path, CLIENTCERT_MAX_SIZE);
		close(fd);
		return NULL;
	}
	bio = BIO_new_fd(fd, BIO_CLOSE);
	if (bio == NULL) {
		close(fd);
		err_set(e, "%s: out of memory", path);
		return NULL;
	}
	ERR_clear_error();
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	/* Only the markers are looked for: the key itself is read as a secret, if at all. */
	*has_key = false;
	if (x != NULL && BIO_reset(bio) == 0) {
		char line[256];
		while (BIO_gets(bio, line, sizeof(line)) > 0) {
			if (strncmp(line, "-----BEGIN ", 11) == 0 &&
			    strstr(line, "PRIVATE KEY-----") != NULL) {
				*has_key = true;
				break;
			}
		}
		OPENSSL_cleanse(line, sizeof(line));
	}
	BIO_free(bio);
	if (x == NULL)
		err_set(e, "%s: no PEM certificate in it (-----BEGIN CERTIFICATE-----): %s", path,
		        ssl_reason());
	return x;
}

/* The private key of a PEM text, which is a secret: it is wiped by the caller. */
static EVP_PKEY *read_key(const char *path, const char *pem, size_t len, struct err *e)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k;
	int asked = 0;

	if (bio == NULL) {
		err_set(e, "%s: out of memory", path);
		return NULL;
	}
	ERR_clear_error();
	k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
	BIO_free(bio);
	if (k == NULL && asked)
		err_set(e,
		        "%s: the private key is encrypted; alertmail needs it without a passphrase "
		        "(openssl pkey -in FILE -out NEWFILE)",
		        path);
	else if (k == NULL)
		err_set(e, "%s: no PEM private key in it (-----BEGIN PRIVATE KEY-----): %s", path,
		        ssl_reason());
	return k;
}

static void time_text(const ASN1_TIME *t, char *out, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, len, "an unreadable date");
}

int clientcert_check(const char *cert_path, const char *key_path, enum clientcert_part *which,
                     struct err *note, struct err *e)
{
	const char *kpath = key_path != NULL ? key_path : cert_path;
	char *pem = NULL;
	EVP_PKEY *k = NULL;
	bool has_key = false;
	X509 *x;
	int rc = -1;

	note->msg[0] = '\0';
	*which = CLIENTCERT_CERT;
	x = read_cert(cert_path, &has_key, e);
	if (x == NULL)
		return -1;
	if (key_path == NULL && !has_key) {
		err_set(
		    e, "%s holds a certificate but no private key: give its key file as client_key",
		    cert_path);
		goto out;
	}
	*which = key_path != NULL ? CLIENTCERT_KEY : CLIENTCERT_CERT;
	if (secret_read_file(kpath, &pem, e) < 0)
		goto out;
	k = read_key(kpath, pem, strlen(pem), e);
	if (k == NULL) {
		if (key_path == NULL)
			err_prefix(e, "the private key is read from client_cert when there is no "
			              "client_key");
		goto out;
	}
	ERR_clear_error();
	if (X509_check_private_key(x, k) != 1) {
		err_set(e, "%s: this private key does not belong to the certificate in %s", kpath,
		        cert_path);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		char when[64];
		time_text(X509_get0_notAfter(x), when, sizeof(when));
		err_set(note,
		        "%s: the certificate expired on %s; a server that checks client "
		        "certificates will refuse the session",
		        cert_path, when);
	} else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		char when[64];
		time_text(X509_get0_notBefore(x), when, sizeof(when));
		err_set(note, "%s: the certificate is valid only from %s", cert_path, when);
	}
	rc = 0;
out:
	EVP_PKEY_free(k);
	X509_free(x);
	secret_free(pem);
	ERR_clear_error();
	return rc;
}

/* Client certificates (mutual TLS): the certificate and private key a server entry presents,
 * checked when the config is loaded the way libcurl will load them for every session. */
#ifndef ALERTMAIL_CLIENTCERT_H
#define ALERTMAIL_CLIENTCERT_H

#include <stddef.h>

#include "err.h"

/* The largest certificate file read (a certificate and its chain). */
#define CLIENTCERT_MAX_SIZE (1024L * 1024)

enum clientcert_part {
	CLIENTCERT_CERT, /* the error is about client_cert */
	CLIENTCERT_KEY,  /* ... about client_key (or the key in client_cert) */
};

/* Checks that cert_path holds a PEM certificate (the first one is the client's; a chain may
 * follow), and that key_path (NULL: cert_path itself, which must then hold the key after the
 * certificates) holds a PEM private key without a passphrase that matches it. The file with the key
 * is read like a secret (secret_read_file: private to its owner, regular, not a link). Returns 0,
 * with note->msg "" or a warning (an expired certificate), or -1 with e set and *which the key it
 * is about. */
int clientcert_check(const char *cert_path, const char *key_path, enum clientcert_part *which,
                     struct err *note, struct err *e);

#endif

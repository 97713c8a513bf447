/* The host key pair for sealed values, in the state directory:
 *
 *   STATE/host.key       the current private key (PEM, PKCS#8, X25519), mode 0600
 *   STATE/host.key.old   the previous one, kept by a rotation so that values sealed to it still
 *                        open (with a warning) until they are sealed again
 *
 * A key file that the group or others may access is refused. Files are written with O_EXCL
 * under a temporary name, fsync'd and renamed (linked, for a first key, so that two processes
 * making one at once end up with the same key). */
#ifndef ALERTMAIL_HOSTKEY_H
#define ALERTMAIL_HOSTKEY_H

#include <stdbool.h>

#include "err.h"
#include "seal.h"

#define HOSTKEY_FILE "host.key"
#define HOSTKEY_OLD_FILE "host.key.old"

enum hostkey_which {
	HOSTKEY_CURRENT,
	HOSTKEY_PREVIOUS,
};

/* Loads a private key. Returns 0 and the key, 1 if there is no such file (*out NULL), or -1
 * with e set (unreadable, accessible by group or others, not an X25519 key). */
int hostkey_load(const char *state_dir, enum hostkey_which which, EVP_PKEY **out, struct err *e);

/* Loads the current key, first making a key pair if there is none (and the state directory,
 * one level, if it is missing); *created says whether it was made. Run by root, the new file
 * is given the owner of the state directory, the daemon's user. Returns 0, or -1 with e set. */
int hostkey_ensure(const char *state_dir, EVP_PKEY **out, bool *created, struct err *e);

/* Makes a new key pair: the current private key becomes host.key.old (replacing an older one,
 * whose values then no longer open), the new one host.key. At every moment host.key is there.
 * Returns 0 and the new key, or -1 with e set and nothing changed. */
int hostkey_rotate(const char *state_dir, EVP_PKEY **out, struct err *e);

/* Opens a sealed value with the current key, else the previous one. Returns 0 (the current
 * key opened it), 1 (the previous key did: its fingerprint in prev_fp), SEAL_MALFORMED or
 * SEAL_NOT_OPENED with e set (a missing or unusable key is SEAL_NOT_OPENED too). */
int hostkey_open(const char *state_dir, const char *sealed, char **out, char prev_fp[SEAL_FP_LEN],
                 struct err *e);

/* The fingerprint of a key's public half ("?" if it has none). */
void hostkey_fingerprint(EVP_PKEY *key, char fp[SEAL_FP_LEN]);

#endif

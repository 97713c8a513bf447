/* Passwords and other secrets: fetched from where the config says, kept in memory that is
 * wiped when freed. */
#ifndef ALERTMAIL_SECRET_H
#define ALERTMAIL_SECRET_H

#include <stdbool.h>

#include "err.h"

/* The largest secret accepted (a file, a sealed value's plaintext), in bytes. */
#define SECRET_MAX_SIZE 65536

enum secret_source {
	SECRET_FILE,   /* password_file: a file that only its owner may access */
	SECRET_ENV,    /* password_env: an environment variable */
	SECRET_INLINE, /* password: the value in the config itself */
	SECRET_SEALED, /* password_sealed: a value sealed to this host's key (seal.h, hostkey.h) */
};

/* What resolving a secret needs besides its source. */
struct secret_ctx {
	const char *state_dir; /* where the host keys that open sealed values are */
};

/* Reads a secret file: a regular file (not a symbolic link) that neither its group nor others
 * may access, at most SECRET_MAX_SIZE bytes, without NUL bytes. One trailing line break is
 * dropped. A file directly in systemd's credentials directory (the real $CREDENTIALS_DIRECTORY:
 * the same directory, private to its owner) may be readable by its group, because systemd
 * shows the read access it grants the service's user through an ACL as mode 0440; never more.
 * Returns 0 and the secret in *out (free it with secret_free), or -1 with e set, *out NULL and
 * every buffer that held part of the file wiped. */
int secret_read_file(const char *path, char **out, struct err *e);

/* Whether a secret file's path is written "$CREDENTIALS_DIRECTORY/NAME" or
 * "${CREDENTIALS_DIRECTORY}/NAME": the copy systemd makes for LoadCredential=NAME:... */
bool secret_path_is_credential(const char *written);
/* A secret file's path as the config writes it: absolute, or as above with the variable
 * expanded. Returns 0 and the path in *out (free it), or -1 with e set: a relative path, a bad
 * credential name, the variable not set (outside the service). With out NULL only the form is
 * checked, and the variable need not be set. */
int secret_path_expand(const char *written, char **out, struct err *e);

/* The secret from source: where is the file's path (expanded), the variable's name, the sealed
 * value or the value itself. Returns 0 and the secret in *out (free it with secret_free), or
 * -1 with e set. note->msg is "" unless something worked that should be fixed: a sealed value
 * that only the previous host key opens (what to do, with that key's fingerprint). */
int secret_resolve(const struct secret_ctx *ctx, enum secret_source source, const char *where,
                   char **out, struct err *note, struct err *e);

/* Wipes and frees a secret; NULL is fine. */
void secret_free(char *s);

#endif

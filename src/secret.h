/* Passwords: fetched from where the config says, kept in memory that is wiped when freed. */
#ifndef ALERTMAIL_SECRET_H
#define ALERTMAIL_SECRET_H

#include "err.h"

/* The largest password file accepted, in bytes. */
#define SECRET_MAX_SIZE 65536

enum secret_source {
	SECRET_FILE,   /* password_file: a file that only its owner may access */
	SECRET_ENV,    /* password_env: an environment variable */
	SECRET_INLINE, /* password: the value in the config itself */
};

/* Reads a password file: a regular file (not a symbolic link) that neither its group nor
 * others may access, at most SECRET_MAX_SIZE bytes, without NUL bytes. One trailing line break
 * is dropped. Returns 0 and the secret in *out (free it with secret_free), or -1 with e set,
 * *out NULL and every buffer that held part of the file wiped. */
int secret_read_file(const char *path, char **out, struct err *e);

/* The secret from source: where is the file's path, the variable's name or the value itself.
 * Returns 0 and the secret in *out (free it with secret_free), or -1 with e set. */
int secret_resolve(enum secret_source source, const char *where, char **out, struct err *e);

/* Wipes and frees a secret; NULL is fine. */
void secret_free(char *s);

#endif

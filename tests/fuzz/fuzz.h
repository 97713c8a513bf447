/* What the fuzz harnesses share: libFuzzer's entry point, failed checks, checks of error
 * messages, and the input cut into fields. Each harness is built twice: against libFuzzer
 * (make fuzz, with clang) and against replay.c, which runs it over the seed corpus and the
 * regression inputs in make check. */
#ifndef ALERTMAIL_FUZZ_H
#define ALERTMAIL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A check that failed: prints what, and aborts, which libFuzzer reports as a crash with the
 * input that caused it. */
__attribute__((format(printf, 1, 2), noreturn)) void fuzz_fail(const char *fmt, ...);

/* An error message must say where (start with prefix, a file name and ':') and be one line of
 * text: no control character (C0 or DEL) can reach a log line or a reason file through it. */
void fuzz_check_message(const char *what, const char *msg, const char *prefix);
/* The same for every line of a buffer of messages, each ended by '\n'. */
void fuzz_check_messages(const char *what, const char *s, size_t len, const char *prefix);

/* Points $ALERTMAIL_DATADIR, where the built-in templates are, at the source tree, unless it
 * is set. */
void fuzz_set_datadir(void);

/* The input cut at NUL bytes into NUL-terminated copies: v[0] is what comes before the first
 * NUL, and so on; n counts them (an empty input is one empty field). Fields beyond
 * FUZZ_MAX_FIELDS are dropped. */
#define FUZZ_MAX_FIELDS 16
struct fuzz_fields {
	char *v[FUZZ_MAX_FIELDS];
	size_t len[FUZZ_MAX_FIELDS];
	size_t n;
};
void fuzz_fields_split(const uint8_t *data, size_t size, struct fuzz_fields *f);
void fuzz_fields_free(struct fuzz_fields *f);

#endif

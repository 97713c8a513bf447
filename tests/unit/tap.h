/* A minimal TAP producer for unit tests run by automake's harness. */
#ifndef ALERTMAIL_TAP_H
#define ALERTMAIL_TAP_H

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n;
static int tap_failed;

__attribute__((format(printf, 2, 0))) static void tap_vok(int cond, const char *fmt, va_list ap)
{
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	vprintf(fmt, ap);
	printf("\n");
	(void)fflush(stdout); /* a line lost is a test missing for the harness */
}

__attribute__((format(printf, 2, 3), unused)) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

/* String equality with a diagnostic on mismatch. */
__attribute__((format(printf, 3, 4), unused)) static int is_str(const char *got, const char *want,
                                                             const char *fmt, ...)
{
	va_list ap;
	int cond = got != NULL && want != NULL && strcmp(got, want) == 0;

	va_start(ap, fmt);
	tap_vok(cond, fmt, ap);
	va_end(ap);
	if (!cond)
		printf("#   got:  '%s'\n#   want: '%s'\n", got ? got : "(null)", want ? want : "(null)");
	return cond;
}

__attribute__((format(printf, 1, 2), unused)) static void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* For a test's own setup (files, modes, directories): if that fails, what follows means
 * nothing, so the test stops with TAP's "Bail out!" (exit 99, a hard error for automake). */
__attribute__((format(printf, 2, 3), unused)) static void must(int cond, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (cond)
		return;
	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s\n", strerror(saved));
	exit(99);
}

__attribute__((unused)) static int tap_remove_entry(const char *path, const struct stat *st,
                                                    int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes the test's temporary directory and all in it; says so if it cannot. */
__attribute__((unused)) static void tap_remove_tree(const char *dir)
{
	if (nftw(dir, tap_remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		diag("could not remove %s: %s", dir, strerror(errno));
}

/* Prints the plan and returns the exit status. */
__attribute__((unused)) static int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif

/* Runs a fuzz harness without libFuzzer, over files: the seed corpus and the regression inputs
 * of its target (tests/fuzz/corpus/TARGET/ and tests/fuzz/regressions/TARGET/ under
 * $top_srcdir), or the files and directories given as arguments. One TAP line per input. A
 * harness that finds a fault aborts, so the last "# NAME" line before the abort names the
 * input. Built with any compiler: make check runs it, and tests/run --asan under the
 * sanitizers. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET names the harness's corpus directory"
#endif

static int n_run, n_failed;

static int read_file(const char *path, struct buf *b)
{
	char chunk[8192];
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return -1;
	for (;;) {
		size_t n = fread(chunk, 1, sizeof(chunk), f);
		if (n == 0)
			break;
		buf_add(b, chunk, n);
	}
	if (ferror(f)) {
		(void)fclose(f); /* read only: nothing to lose */
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

static void run_file(const char *path)
{
	struct buf b;
	uint8_t *copy;
	size_t len;

	buf_init(&b);
	n_run++;
	printf("# %s\n", path);
	/* Before the input runs: if it crashes the process, the log names it. */
	(void)fflush(stdout);
	if (read_file(path, &b) < 0) {
		n_failed++;
		printf("not ok %d - %s: %s\n", n_run, path, strerror(errno));
		buf_free(&b);
		return;
	}
	/* An exact copy, as libFuzzer gives: a read past the input is then a fault ASan sees. */
	len = b.len;
	copy = xmalloc(len);
	if (len > 0)
		memcpy(copy, b.data, len);
	buf_free(&b);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
	printf("ok %d - %s (%zu bytes)\n", n_run, path, len);
	(void)fflush(stdout); /* a line lost shows as a test missing from the plan */
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file in dir (not in subdirectories), in name order, so runs are repeatable. */
static void run_dir(const char *dir, int required)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0;

	if (d == NULL) {
		if (required || errno != ENOENT) {
			n_run++;
			n_failed++;
			printf("not ok %d - %s: %s\n", n_run, dir, strerror(errno));
		}
		return;
	}
	for (;;) {
		const struct dirent *de = readdir(d);
		if (de == NULL)
			break;
		if (de->d_name[0] == '.')
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			run_file(names[i]);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		for (int i = 1; i < argc; i++) {
			struct stat st;
			if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
				run_dir(argv[i], 1);
			else
				run_file(argv[i]);
		}
	} else {
		const char *top = getenv("top_srcdir");
		char *dir;

		if (top == NULL || *top == '\0')
			top = ".";
		dir = xasprintf("%s/tests/fuzz/corpus/%s", top, FUZZ_TARGET);
		run_dir(dir, 1);
		free(dir);
		/* A target may have no regression inputs (yet). */
		dir = xasprintf("%s/tests/fuzz/regressions/%s", top, FUZZ_TARGET);
		run_dir(dir, 0);
		free(dir);
	}
	printf("1..%d\n", n_run);
	return n_failed > 0 ? 1 : 0;
}

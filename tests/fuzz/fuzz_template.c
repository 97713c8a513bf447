/* The Mustache compiler and renderer. The input is fields cut at NUL bytes:
 *
 *   TEMPLATE [\0 DATA [\0 PARTIAL]...]
 *
 * DATA is YAML (or JSON), the root context; it may fail to parse, and the template is then
 * rendered without data. Each PARTIAL is its name, a line break and its source. Checks: errors
 * say where; a render that fails leaves the output as it was; the output stays within the
 * renderer's limit; and, unless the first render was slow: rendering twice gives the same bytes,
 * text without tags comes out unchanged, and HTML escaping changes nothing when no value holds
 * a character it escapes. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "fuzz.h"
#include "template.h"
#include "yamltree.h"

#define NAME "fuzz.mustache"
/* The renderer's output limit (TMPL_MAX_OUTPUT in template.c): it checks after each node, so
 * one node may add what its source or a value holds beyond it, and an indentation that
 * partials inside partials build up. */
#define OUTPUT_LIMIT (16u << 20)
/* A render that takes longer than this (CPU seconds) is not repeated: nested loops up to the
 * renderer's step limit take seconds under the sanitizers, and three of them would near
 * libFuzzer's timeout. */
#define SLOW_RENDER 1.0

struct partials {
	const struct fuzz_fields *f;
	unsigned loads;
};

static int load_partial(void *ctx, const char *name, struct buf *src)
{
	struct partials *p = ctx;

	p->loads++;
	for (size_t i = 2; i < p->f->n; i++) {
		const char *s = p->f->v[i];
		const char *nl = strchr(s, '\n');
		size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);

		if (strlen(name) == n && memcmp(s, name, n) == 0) {
			if (nl != NULL)
				buf_add(src, nl + 1, p->f->len[i] - n - 1);
			return 0;
		}
	}
	return -1;
}

/* Renders into a buffer that already holds something, which must stay. Returns the render's
 * status; out gets what was added. */
static int render(const struct tmpl *t, const struct ynode *data, enum tmpl_escape esc,
                  const struct fuzz_fields *f, size_t bound, struct buf *out)
{
	static const char kept[] = "kept";
	struct partials p = {.f = f};
	struct tmpl_partials tp = {.load = load_partial, .ctx = &p};
	struct buf b;
	struct err e;
	int rc;

	buf_init(&b);
	buf_adds(&b, kept);
	rc = tmpl_render(t, data, esc, &tp, &b, &e);
	if (b.data == NULL || b.data[b.len] != '\0')
		fuzz_fail("the output is not NUL-terminated");
	if (b.len < 4 || memcmp(b.data, kept, 4) != 0)
		fuzz_fail("rendering changed what the buffer held");
	if (rc < 0) {
		fuzz_check_message("a render error", e.msg, "");
		if (b.len != 4)
			fuzz_fail("a failed render left %zu bytes of output", b.len - 4);
	} else if (b.len - 4 > bound) {
		fuzz_fail("a render of %zu bytes, beyond %zu", b.len - 4, bound);
	}
	buf_add(out, b.data + 4, b.len - 4);
	buf_free(&b);
	return rc;
}

static bool has_escaped_char(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '&' || s[i] == '"' || s[i] == '<' || s[i] == '>' || s[i] == '\'')
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fields f;
	struct ynode *tree = NULL;
	struct tmpl *t = NULL;
	struct buf plain, again, html;
	struct err e;
	size_t bound;
	clock_t start;
	int rc, rc2, rc3;

	fuzz_fields_split(data, size, &f);
	if (f.n > 1 && ytree_parse(f.v[1], f.len[1], "data", &tree, &e) < 0)
		tree = NULL;
	if (tmpl_compile(f.v[0], f.len[0], NAME, &t, &e) < 0) {
		fuzz_check_message("a compile error", e.msg, NAME ":");
		if (t != NULL)
			fuzz_fail("a failed compile gave a template");
		goto out;
	}
	if (strcmp(tmpl_name(t), NAME) != 0)
		fuzz_fail("the template's name is '%s'", tmpl_name(t));
	/* Beyond the limit: one node's text, one value (escaped: at most six times as long), and
	 * the indentation of partials nested up to 32 deep. */
	bound = OUTPUT_LIMIT + 40 * size + 64;

	buf_init(&plain);
	buf_init(&again);
	buf_init(&html);
	start = clock();
	rc = render(t, tree, TMPL_ESCAPE_NONE, &f, bound, &plain);
	if ((double)(clock() - start) / CLOCKS_PER_SEC > SLOW_RENDER)
		goto done;
	rc2 = render(t, tree, TMPL_ESCAPE_NONE, &f, bound, &again);
	if (rc != rc2 || plain.len != again.len || memcmp(plain.data, again.data, plain.len) != 0)
		fuzz_fail("two renders of the same template and data differ");
	rc3 = render(t, tree, TMPL_ESCAPE_HTML, &f, bound, &html);
	if (rc == 0 && rc3 == 0 && !has_escaped_char(plain.data, plain.len) &&
	    (html.len != plain.len || memcmp(html.data, plain.data, plain.len) != 0))
		fuzz_fail("HTML escaping changed an output that has nothing to escape");
	if (rc == 0 && memmem(f.v[0], f.len[0], "{{", 2) == NULL &&
	    (plain.len != f.len[0] || memcmp(plain.data, f.v[0], f.len[0]) != 0))
		fuzz_fail("a template without tags did not render as itself");
done:
	buf_free(&plain);
	buf_free(&again);
	buf_free(&html);
out:
	tmpl_free(t);
	ynode_free(tree);
	fuzz_fields_free(&f);
	return 0;
}

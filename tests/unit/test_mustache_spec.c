/* Runs every case of the core modules of the Mustache specification (tests/mustache-spec/,
 * found through MUSTACHE_SPEC_DIR) against the template module. Lambdas are not supported
 * and their optional module is not run. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "tap.h"
#include "template.h"
#include "yamltree.h"

static const char *const modules[] = {
	"comments", "delimiters", "interpolation", "inverted", "partials", "sections",
};

/* A YAML 1.2 core-schema float with a fraction or an exponent: [-+]?digits[.digits][e[-+]digits] */
static bool looks_like_float(const char *s)
{
	bool digits = false, fraction = false, exponent = false;

	if (*s == '-' || *s == '+')
		s++;
	for (; *s >= '0' && *s <= '9'; s++)
		digits = true;
	if (*s == '.') {
		fraction = true;
		for (s++; *s >= '0' && *s <= '9'; s++)
			digits = true;
	}
	if (digits && (*s == 'e' || *s == 'E')) {
		exponent = true;
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return false;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return digits && (fraction || exponent) && *s == '\0';
}

/* The spec's data assumes a host language that reads 1.210 as a number and prints it as 1.21:
 * rewrite plain floats in the data the way such a language prints them (shortest exact form).
 * The renderer itself prints scalars as written. */
/* NOLINTNEXTLINE(misc-no-recursion): parsed trees: YTREE_MAX_DEPTH */
static void normalise_floats(struct ynode *n)
{
	if (n->kind == YNODE_SCALAR) {
		char out[64];
		double d;

		if (!n->plain || !looks_like_float(n->str))
			return;
		d = strtod(n->str, NULL);
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(out, sizeof(out), "%.*g", prec, d);
			if (strtod(out, NULL) == d)
				break;
		}
		free(n->str);
		n->str = xstrdup(out);
		n->len = strlen(out);
		return;
	}
	for (size_t i = 0; i < n->count; i++)
		normalise_floats(n->values[i]);
}

/* Partials come from the test's "partials" mapping. */
static int load_partial(void *ctx, const char *name, struct buf *src)
{
	const struct ynode *v = ynode_get(ctx, name);

	if (v == NULL || v->kind != YNODE_SCALAR)
		return -1;
	buf_add(src, v->str, v->len);
	return 0;
}

static const char *scalar(const struct ynode *test, const char *key)
{
	const struct ynode *v = ynode_get(test, key);

	return v != NULL && v->kind == YNODE_SCALAR ? v->str : NULL;
}

static void run_case(const char *module, const struct ynode *test)
{
	const char *name = scalar(test, "name");
	const char *source = scalar(test, "template");
	const char *expected = scalar(test, "expected");
	const struct ynode *partials = ynode_get(test, "partials");
	struct ynode *data = NULL;
	struct tmpl_partials loader = {.load = load_partial, .ctx = (void *)partials};
	struct tmpl *t = NULL;
	struct buf out;
	struct err e = {{0}};

	if (name == NULL || source == NULL || expected == NULL) {
		ok(0, "%s: a case with name, template and expected (line %u)", module, test->line);
		return;
	}
	if (ynode_get(test, "data") != NULL) {
		data = ynode_copy(ynode_get(test, "data"));
		normalise_floats(data);
	}
	buf_init(&out);
	if (tmpl_compile(source, ynode_get(test, "template")->len, name, &t, &e) < 0 ||
	    tmpl_render(t, data, TMPL_ESCAPE_HTML, &loader, &out, &e) < 0) {
		ok(0, "%s: %s", module, name);
		diag("error: %s", e.msg);
	} else {
		is_str(out.data, expected, "%s: %s", module, name);
	}
	buf_free(&out);
	tmpl_free(t);
	ynode_free(data);
}

int main(void)
{
	const char *dir = getenv("MUSTACHE_SPEC_DIR");
	int cases = 0;

	if (dir == NULL || *dir == '\0')
		dir = "tests/mustache-spec";
	for (size_t m = 0; m < sizeof(modules) / sizeof(modules[0]); m++) {
		char *path = xasprintf("%s/%s.yml", dir, modules[m]);
		const struct ynode *tests;
		struct ynode *doc;
		struct err e = {{0}};

		if (ytree_parse_file(path, 0, &doc, &e) < 0) {
			ok(0, "%s: read the module", modules[m]);
			diag("%s", e.msg);
			free(path);
			continue;
		}
		tests = ynode_get(doc, "tests");
		if (tests == NULL || tests->kind != YNODE_SEQ || tests->count == 0)
			ok(0, "%s: the module has a list of tests", modules[m]);
		for (size_t i = 0; tests != NULL && tests->kind == YNODE_SEQ && i < tests->count; i++) {
			run_case(modules[m], tests->values[i]);
			cases++;
		}
		ynode_free(doc);
		free(path);
	}
	diag("%d spec cases run", cases);
	return done_testing();
}

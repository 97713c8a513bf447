/* Composes one message from a YAML case file and writes it to stdout, so that an independent
 * MIME parser can check message.c (tests/integration/message_parse.test).
 *
 * Case file fields: from, to (a list, or one address), subject, text, html (optional),
 * id, date (unix seconds). Exit status: 0 written, 1 bad case or compose error, 2 usage. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "message.h"
#include "yamltree.h"

#define CASE_MAX_SIZE ((size_t)4 * 1024 * 1024)
/* 9999-12-31T23:59:59Z, the last date with a four-digit year. */
#define DATE_MAX 253402300799LL

/* A scalar field as a C string; embedded NULs are refused rather than silently cut. */
static int get_str(const struct ynode *root, const char *key, int required, const char **out,
                   struct err *e)
{
	const struct ynode *n = ynode_get(root, key);

	*out = NULL;
	if (n == NULL) {
		if (!required)
			return 0;
		err_set(e, "missing field '%s'", key);
		return -1;
	}
	if (n->kind != YNODE_SCALAR) {
		err_set(e, "%u:%u: '%s' must be a string", n->line, n->column, key);
		return -1;
	}
	if (strlen(n->str) != n->len) {
		err_set(e, "%u:%u: '%s' contains a NUL character", n->line, n->column, key);
		return -1;
	}
	*out = n->str;
	return 0;
}

static int get_date(const struct ynode *root, time_t *out, struct err *e)
{
	const char *s;
	char *end;
	long long v;

	if (get_str(root, "date", 1, &s, e) < 0)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > DATE_MAX) {
		err_set(e, "date '%s' is not a plausible number of seconds", s);
		return -1;
	}
	*out = (time_t)v;
	return 0;
}

static int parse_to(const struct ynode *root, struct mailbox **out, size_t *nout, struct err *e)
{
	const struct ynode *to = ynode_get(root, "to");
	const struct ynode *const *items;
	size_t n, i;

	*out = NULL;
	*nout = 0;
	if (to == NULL) {
		err_set(e, "missing field 'to'");
		return -1;
	}
	if (to->kind == YNODE_SCALAR) {
		items = (const struct ynode *const *)&to;
		n = 1;
	} else if (to->kind == YNODE_SEQ) {
		items = (const struct ynode *const *)to->values;
		n = to->count;
	} else {
		err_set(e, "%u:%u: 'to' must be a list of addresses", to->line, to->column);
		return -1;
	}
	*out = xcalloc(n, sizeof(**out));
	for (i = 0; i < n; i++) {
		if (items[i]->kind != YNODE_SCALAR || strlen(items[i]->str) != items[i]->len) {
			err_set(e, "%u:%u: not an address", items[i]->line, items[i]->column);
			return -1;
		}
		if (mailbox_parse(items[i]->str, &(*out)[i], e) < 0) {
			err_prefix(e, "%u:%u: to", items[i]->line, items[i]->column);
			return -1;
		}
		*nout = i + 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ynode *root = NULL;
	struct mailbox from = {NULL, NULL};
	struct mailbox *to = NULL;
	struct message_in in;
	const char *from_s = NULL;
	struct err e;
	struct buf out;
	size_t nto = 0, i;
	int rc = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: mkmessage CASE.yaml\n");
		return 2;
	}
	memset(&in, 0, sizeof(in));
	buf_init(&out);
	e.msg[0] = '\0';
	if (ytree_parse_file(argv[1], CASE_MAX_SIZE, &root, &e) < 0)
		goto done;
	if (root->kind != YNODE_MAP) {
		err_set(&e, "the case must be a mapping");
		goto done;
	}
	if (get_str(root, "from", 1, &from_s, &e) < 0 ||
	    get_str(root, "subject", 1, &in.subject, &e) < 0 ||
	    get_str(root, "text", 1, &in.text, &e) < 0 ||
	    get_str(root, "html", 0, &in.html, &e) < 0 ||
	    get_str(root, "id", 1, &in.alert_id, &e) < 0 || get_date(root, &in.date, &e) < 0)
		goto done;
	if (mailbox_parse(from_s, &from, &e) < 0) {
		err_prefix(&e, "from");
		goto done;
	}
	if (parse_to(root, &to, &nto, &e) < 0)
		goto done;
	in.from = &from;
	in.to = to;
	in.nto = nto;
	if (message_compose(&in, &out, &e) < 0)
		goto done;
	if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
		err_set(&e, "stdout: write failed");
		goto done;
	}
	rc = 0;
done:
	if (rc != 0)
		fprintf(stderr, "mkmessage: %s: %s\n", argv[1], e.msg);
	for (i = 0; i < nto; i++)
		mailbox_free(&to[i]);
	free(to);
	mailbox_free(&from);
	ynode_free(root);
	buf_free(&out);
	return rc;
}

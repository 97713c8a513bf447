/* alertmail retry: failed alerts back to pending; deferred ones retried now, by the daemon when
 * one runs (SIGUSR1), else moved back to pending here. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "alert.h"
#include "buf.h"
#include "commands.h"
#include "conf.h"
#include "spool.h"
#include "yamltree.h"

#define USAGE "usage: alertmail retry ID...|--all\n"

/* As submit accepts them; a larger file cannot be an alert that ID names. */

/* One alert of the spool that an ID may name. */
struct item {
	enum spool_dir dir;
	char *qid;
	char *id; /* the alert's own id, read when first needed; NULL if it has none */
	bool id_read;
	bool done; /* acted on already: an alert named twice is moved once */
};

struct items {
	struct item *v;
	size_t n;
	enum spool_dir dir; /* the directory being listed */
};

static int add_item(void *ctx, const char *name)
{
	struct items *it = ctx;
	struct item *i;

	it->v = xrealloc(it->v, (it->n + 1) * sizeof(*it->v));
	i = &it->v[it->n++];
	memset(i, 0, sizeof(*i));
	i->dir = it->dir;
	i->qid = xstrdup(name);
	return 0;
}

/* The alert's id field. Only the tree is read: an alert that fails the other checks still has
 * an id a user may name. */
static const char *item_id(struct spool *s, struct item *i)
{
	struct ynode *tree;
	struct buf b;
	struct err e;

	if (i->id_read)
		return i->id;
	i->id_read = true;
	buf_init(&b);
	if (spool_read(s, i->dir, i->qid, ALERT_MAX_SIZE, &b, &e) == 0 &&
	    ytree_parse(b.data, b.len, i->qid, &tree, &e) == 0) {
		const struct ynode *id = ynode_get(tree, "id");
		if (id != NULL && id->kind == YNODE_SCALAR && !ynode_is_null(id) && id->len > 0)
			i->id = xstrdup(id->str);
		ynode_free(tree);
	}
	buf_free(&b);
	return i->id;
}

/* "QID" or "QID (alert ID)", escaped for a terminal. */
static char *describe(struct spool *s, struct item *i)
{
	const char *id = item_id(s, i);
	struct buf b;

	buf_init(&b);
	buf_add_escaped(&b, i->qid);
	if (id != NULL) {
		buf_adds(&b, " (alert ");
		buf_add_escaped(&b, id);
		buf_addc(&b, ')');
	}
	return buf_steal(&b);
}

/* Acts on one alert. daemon: the PID holding the spool, or 0. Returns -1 when a move failed. */
static int retry_item(struct spool *s, struct item *i, long daemon)
{
	char *what = describe(s, i);
	struct err e;
	int rc = 0;

	i->done = true;
	if (i->dir == SPOOL_FAILED || (i->dir == SPOOL_DEFERRED && daemon == 0)) {
		if (spool_requeue(s, i->dir, i->qid, &e) < 0) {
			fprintf(stderr, "alertmail: retry: %s: %s\n", what, e.msg);
			rc = -1;
		} else {
			printf("%s: moved from %s/ to new/\n", what, spool_dir_name(i->dir));
		}
	} else if (i->dir == SPOOL_DEFERRED) {
		/* The daemon owns its retry state: moving the file under it would race with it. */
		printf("%s: deferred; the daemon (PID %ld) is asked to retry it now\n", what,
		       daemon);
	} else {
		printf("%s: already pending (%s/)\n", what, spool_dir_name(i->dir));
	}
	free(what);
	return rc;
}

/* Every alert in failed/, deferred/, new/ and active/, by directory. */
static int read_items(struct spool *s, struct items *it, struct err *e)
{
	static const enum spool_dir dirs[] = {SPOOL_FAILED, SPOOL_DEFERRED, SPOOL_NEW,
	                                      SPOOL_ACTIVE};

	for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
		it->dir = dirs[d];
		if (spool_list(s, dirs[d], add_item, it, e) < 0)
			return -1;
	}
	return 0;
}

/* Acts on the alerts ID names: a queue id, else the alert id of one or more alerts. Returns
 * 0, 1 when none matches, -1 when a move failed. */
static int retry_id(struct spool *s, struct items *it, const char *id, long daemon)
{
	size_t matched = 0;
	bool by_qid;
	int rc = 0;

	for (size_t k = 0; k < it->n; k++) {
		if (strcmp(it->v[k].qid, id) != 0)
			continue;
		matched++;
		if (!it->v[k].done && retry_item(s, &it->v[k], daemon) < 0)
			rc = -1;
	}
	by_qid = matched > 0;
	/* An alert id may be shared (a resubmitted alert): every alert with it is meant. */
	for (size_t k = 0; k < it->n && !by_qid; k++) {
		const char *aid = item_id(s, &it->v[k]);
		if (aid == NULL || strcmp(aid, id) != 0)
			continue;
		matched++;
		if (!it->v[k].done && retry_item(s, &it->v[k], daemon) < 0)
			rc = -1;
	}
	if (matched == 0) {
		struct buf b;
		buf_init(&b);
		buf_add_escaped(&b, id);
		fprintf(
		    stderr,
		    "alertmail: retry: %s: no failed, deferred or pending alert has this queue id "
		    "or alert id\n",
		    b.data);
		buf_free(&b);
		return 1;
	}
	return rc;
}

/* Asks the daemon to retry its deferred alerts now. Not being allowed to is no failure: they
 * are retried at their time anyway. */
static void signal_daemon(long pid)
{
	if (kill((pid_t)pid, SIGUSR1) == 0) {
		printf("asked the daemon (PID %ld) to retry deferred alerts now\n", pid);
		return;
	}
	if (errno == EPERM)
		fprintf(
		    stderr,
		    "alertmail: retry: not allowed to signal the daemon (PID %ld): %s; deferred "
		    "alerts are retried at their scheduled time (run retry as the daemon's user or "
		    "root to retry them now)\n",
		    pid, strerror(errno));
	else
		fprintf(
		    stderr,
		    "alertmail: retry: cannot signal the daemon (PID %ld): %s; deferred alerts are "
		    "retried at their scheduled time\n",
		    pid, strerror(errno));
}

static int retry(const struct config *cfg, bool all, char **ids, int nids)
{
	struct items it = {0};
	struct spool *s;
	struct stat st;
	struct err e;
	long daemon;
	int rc = EXIT_OK;

	if (stat(cfg->spool, &st) < 0 && errno == ENOENT) {
		fprintf(stderr,
		        "alertmail: retry: the spool %s does not exist: the daemon (alertmail run) "
		        "creates it when it starts\n",
		        cfg->spool);
		return EXIT_FAILURE_RUNTIME;
	}
	if (spool_open(cfg->spool, false, &s, &e) < 0) {
		fprintf(stderr, "alertmail: retry: %s\n", e.msg);
		return EXIT_FAILURE_RUNTIME;
	}
	daemon = spool_lock_holder(s);
	if (read_items(s, &it, &e) < 0) {
		fprintf(stderr, "alertmail: retry: %s\n", e.msg);
		rc = EXIT_FAILURE_RUNTIME;
		goto out;
	}
	if (all) {
		size_t n = 0;
		for (size_t k = 0; k < it.n; k++) {
			if (it.v[k].dir != SPOOL_FAILED)
				continue;
			n++;
			if (retry_item(s, &it.v[k], daemon) < 0)
				rc = EXIT_FAILURE_RUNTIME;
		}
		if (n == 0)
			printf("no failed alerts\n");
	}
	for (int k = 0; k < nids; k++)
		if (retry_id(s, &it, ids[k], daemon) != 0)
			rc = EXIT_FAILURE_RUNTIME;
	if (daemon != 0)
		signal_daemon(daemon);
out:
	for (size_t k = 0; k < it.n; k++) {
		free(it.v[k].qid);
		free(it.v[k].id);
	}
	free(it.v);
	spool_close(s);
	return rc;
}

int cmd_retry(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"all", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config *cfg;
	bool all = false;
	int rc;

	optind = 1;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'a') {
			all = true;
		} else if (c == 'h') {
			fputs(USAGE, stdout);
			return EXIT_OK;
		} else {
			fputs(USAGE, stderr);
			return EXIT_USAGE;
		}
	}
	if (all == (optind < argc)) {
		fprintf(stderr, "alertmail: retry: %s\n",
		        all ? "--all takes no IDs" : "which alerts? give their IDs or --all");
		fputs(USAGE, stderr);
		return EXIT_USAGE;
	}
	for (int k = optind; k < argc; k++) {
		if (argv[k][0] == '\0') {
			fprintf(stderr, "alertmail: retry: an empty ID\n");
			return EXIT_USAGE;
		}
	}
	cfg = commands_load_config(g, CONFIG_NO_SECRETS);
	if (cfg == NULL)
		return EXIT_USAGE;
	rc = retry(cfg, all, argv + optind, argc - optind);
	config_free(cfg);
	return rc;
}

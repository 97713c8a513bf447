/* alertmail queue: what is in the spool, read from the alert, meta and reason files only (none
 * of them ever holds a secret; nothing of the config but the spool's path is used). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alert.h"
#include "buf.h"
#include "commands.h"
#include "conf.h"
#include "json.h"
#include "spool.h"
#include "yamltree.h"

#define USAGE "usage: alertmail queue [--json]\n"

/* Alerts larger than this are refused by submit; a bigger file is shown as unreadable. */
#define QUEUE_REASON_MAX ((size_t)65536)

/* One alert as listed. Strings are NULL where unknown. */
struct entry {
	enum spool_dir dir;
	char *qid;
	char *id;
	char *channel;
	char *title;
	char *error;      /* why the alert could not be read */
	char *meta_error; /* why a deferred alert's retry state could not be read */
	bool has_meta;
	int attempts;
	time_t next_attempt;
	char *last_error;
	char *reason;
};

struct names {
	char **v;
	size_t n;
};

static int add_name(void *ctx, const char *name)
{
	struct names *ns = ctx;

	ns->v = xrealloc(ns->v, (ns->n + 1) * sizeof(*ns->v));
	ns->v[ns->n++] = xstrdup(name);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True when DIR/name is no longer there: the daemon moved it while we listed. */
static bool gone(const struct spool *s, enum spool_dir d, const char *name)
{
	struct stat st;
	char *path = xasprintf("%s/%s/%s", spool_root(s), spool_dir_name(d), name);
	bool rc = lstat(path, &st) < 0 && errno == ENOENT;

	free(path);
	return rc;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* The first line of failed/QID.reason, or NULL; *channel: its "channel: " line, or NULL. */
static char *read_reason(struct spool *s, const char *qid, char **channel)
{
	char *rname = xasprintf("%s.reason", qid);
	struct buf b;
	struct err e;
	char *line = NULL;

	*channel = NULL;
	buf_init(&b);
	if (spool_read(s, SPOOL_FAILED, rname, QUEUE_REASON_MAX, &b, &e) == 0) {
		const char *c = strstr(b.data, "\nchannel: ");
		line = xstrndup(b.data, strcspn(b.data, "\n"));
		if (c != NULL)
			*channel = xstrndup(c + 10, strcspn(c + 10, "\n"));
	}
	buf_free(&b);
	free(rname);
	return line;
}

/* Fills e from DIR/QID and, by state, its meta or reason file. Returns 1 when the alert went
 * away meanwhile (it is then left out). */
static int read_entry(struct spool *s, enum spool_dir d, const char *qid, struct entry *en)
{
	char *name = xasprintf("%s/%s", spool_dir_name(d), qid);
	struct alert *a = NULL;
	struct buf b;
	struct err e;

	memset(en, 0, sizeof(*en));
	en->dir = d;
	en->qid = xstrdup(qid);
	buf_init(&b);
	if (spool_read(s, d, qid, ALERT_MAX_SIZE, &b, &e) < 0) {
		if (gone(s, d, qid)) {
			buf_free(&b);
			free(name);
			free(en->qid);
			return 1;
		}
		en->error = xstrdup(e.msg);
	} else if (alert_parse(b.data, b.len, name, time(NULL), &a, &e) < 0) {
		en->error = xasprintf("unparseable: %s", e.msg);
	} else {
		const struct ynode *id = ynode_get(a->tree, "id");
		/* alert_parse invents an id when there is none: that one is not the alert's. */
		if (id != NULL && id->kind == YNODE_SCALAR && !ynode_is_null(id) && id->len > 0)
			en->id = xstrdup(a->id);
		en->channel = dup_or_null(a->channel);
		en->title = dup_or_null(a->title);
		alert_free(a);
	}
	buf_free(&b);
	free(name);
	if (d == SPOOL_DEFERRED) {
		struct spool_meta m;
		if (spool_meta_read(s, qid, &m, &e) == 0) {
			en->has_meta = true;
			en->attempts = m.attempts;
			en->next_attempt = m.next_attempt;
			en->last_error = m.last_error[0] != '\0' ? xstrdup(m.last_error) : NULL;
			/* Routes or the default chose the channel the daemon delivers through. */
			if (en->channel == NULL && m.channel[0] != '\0')
				en->channel = xstrdup(m.channel);
			spool_meta_free(&m);
		} else {
			en->meta_error = xstrdup(e.msg);
		}
	} else if (d == SPOOL_FAILED) {
		char *channel;
		en->reason = read_reason(s, qid, &channel);
		/* The channel it failed on, which routes or the default chose. */
		if (en->channel == NULL)
			en->channel = channel;
		else
			free(channel);
	}
	/* One of the entries of an alert fanned out: its channel is in its queue id. */
	if (spool_qid_channel(qid) != NULL) {
		free(en->channel);
		en->channel = xstrdup(spool_qid_channel(qid));
	}
	return 0;
}

static void entry_free(struct entry *en)
{
	free(en->qid);
	free(en->id);
	free(en->channel);
	free(en->title);
	free(en->error);
	free(en->meta_error);
	free(en->last_error);
	free(en->reason);
}

struct listing {
	struct entry *v;
	size_t n;
};

/* Reads every alert of d into l, in queue-id order (which is arrival order). */
static int list_dir(struct spool *s, enum spool_dir d, struct listing *l, struct err *e)
{
	struct names ns = {0};
	int rc = spool_list(s, d, add_name, &ns, e);

	if (rc == 0 && ns.n > 0) {
		qsort(ns.v, ns.n, sizeof(*ns.v), cmp_names);
		l->v = xrealloc(l->v, (l->n + ns.n) * sizeof(*l->v));
		for (size_t i = 0; i < ns.n; i++)
			if (read_entry(s, d, ns.v[i], &l->v[l->n]) == 0)
				l->n++;
	}
	for (size_t i = 0; i < ns.n; i++)
		free(ns.v[i]);
	free(ns.v);
	return rc;
}

static void format_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	/* A time beyond the calendar (a meta file edited by hand) shows as its seconds. */
	if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "@%lld", (long long)t);
}

static const char *state_name(enum spool_dir d)
{
	switch (d) {
	case SPOOL_NEW:
		return "new";
	case SPOOL_ACTIVE:
		return "active";
	case SPOOL_DEFERRED:
		return "deferred";
	case SPOOL_FAILED:
		return "failed";
	default:
		return "?";
	}
}

/* Text from the spool goes to a terminal: control characters escaped, "-" for nothing. */
static void add_text(struct buf *b, const char *s)
{
	buf_add_escaped(b, s != NULL ? s : "-");
}

static void print_entry(const struct entry *en)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "%-9s",
	           en->dir == SPOOL_DEFERRED ? "deferred"
	           : en->dir == SPOOL_FAILED ? "failed"
	                                     : "pending");
	add_text(&b, en->qid);
	if (en->error != NULL && en->id == NULL && en->title == NULL) {
		buf_adds(&b, "  ");
		add_text(&b, en->error);
	} else {
		buf_adds(&b, "  id ");
		add_text(&b, en->id);
		buf_adds(&b, "  channel ");
		add_text(&b, en->channel);
		if (en->title != NULL) {
			buf_adds(&b, "  \"");
			add_text(&b, en->title);
			buf_adds(&b, "\"");
		} else {
			buf_adds(&b, "  (no title)");
		}
	}
	if (en->dir == SPOOL_ACTIVE) {
		buf_adds(&b, "  being delivered");
	} else if (en->dir == SPOOL_DEFERRED && en->has_meta) {
		char t[32];
		format_time(en->next_attempt, t, sizeof(t));
		buf_printf(&b, "  attempts %d, next attempt %s, last error: ", en->attempts, t);
		add_text(&b, en->last_error);
	} else if (en->dir == SPOOL_DEFERRED) {
		buf_adds(&b, "  retry state unreadable: ");
		add_text(&b, en->meta_error);
	} else if (en->dir == SPOOL_FAILED) {
		buf_adds(&b, "  reason: ");
		add_text(&b, en->reason != NULL ? en->reason : "(none recorded)");
	}
	printf("%s\n", b.data);
	buf_free(&b);
}

static struct ynode *str_or_null(const char *s)
{
	if (s == NULL)
		return ynode_new_scalar("null", 4, true);
	return ynode_new_scalar(s, strlen(s), false);
}

static struct ynode *entry_json(const struct entry *en)
{
	struct ynode *o = ynode_new_map();

	ynode_map_set(o, "qid", str_or_null(en->qid));
	ynode_map_set(o, "state", str_or_null(state_name(en->dir)));
	ynode_map_set(o, "id", str_or_null(en->id));
	ynode_map_set(o, "channel", str_or_null(en->channel));
	ynode_map_set(o, "title", str_or_null(en->title));
	if (en->has_meta) {
		char t[32], n[32];
		snprintf(n, sizeof(n), "%d", en->attempts);
		ynode_map_set(o, "attempts", ynode_new_scalar(n, strlen(n), true));
		format_time(en->next_attempt, t, sizeof(t));
		ynode_map_set(o, "next_attempt", str_or_null(t));
	} else {
		ynode_map_set(o, "attempts", str_or_null(NULL));
		ynode_map_set(o, "next_attempt", str_or_null(NULL));
	}
	ynode_map_set(o, "last_error", str_or_null(en->last_error));
	ynode_map_set(o, "reason", str_or_null(en->reason));
	ynode_map_set(o, "error", str_or_null(en->error != NULL ? en->error : en->meta_error));
	return o;
}

static void print_json(const struct listing *l)
{
	struct ynode *root = ynode_new_map();
	struct ynode *pending = ynode_new_seq(), *deferred = ynode_new_seq();
	struct ynode *failed = ynode_new_seq();
	struct buf b;

	for (size_t i = 0; i < l->n; i++) {
		struct ynode *seq = l->v[i].dir == SPOOL_DEFERRED ? deferred
		                    : l->v[i].dir == SPOOL_FAILED ? failed
		                                                  : pending;
		ynode_seq_add(seq, entry_json(&l->v[i]));
	}
	ynode_map_set(root, "pending", pending);
	ynode_map_set(root, "deferred", deferred);
	ynode_map_set(root, "failed", failed);
	buf_init(&b);
	json_add_node(&b, root, true);
	printf("%s\n", b.data);
	buf_free(&b);
	ynode_free(root);
}

static int list_spool(const struct config *cfg, bool json)
{
	static const enum spool_dir order[] = {SPOOL_NEW, SPOOL_ACTIVE, SPOOL_DEFERRED,
	                                       SPOOL_FAILED};
	struct listing l = {0};
	size_t counts[SPOOL_NDIRS] = {0};
	struct spool *s;
	struct stat st;
	struct err e;
	int rc = EXIT_OK;

	if (stat(cfg->spool, &st) < 0 && errno == ENOENT) {
		fprintf(stderr,
		        "alertmail: queue: the spool %s does not exist: the daemon (alertmail run) "
		        "creates it when it starts\n",
		        cfg->spool);
		return EXIT_FAILURE_RUNTIME;
	}
	if (spool_open(cfg->spool, false, &s, &e) < 0) {
		fprintf(stderr, "alertmail: queue: %s\n", e.msg);
		return EXIT_FAILURE_RUNTIME;
	}
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (list_dir(s, order[i], &l, &e) < 0) {
			fprintf(stderr, "alertmail: queue: %s\n", e.msg);
			rc = EXIT_FAILURE_RUNTIME;
			goto out;
		}
	}
	if (json) {
		print_json(&l);
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		print_entry(&l.v[i]);
		counts[l.v[i].dir]++;
	}
	printf("%zu pending, %zu deferred, %zu failed\n", counts[SPOOL_NEW] + counts[SPOOL_ACTIVE],
	       counts[SPOOL_DEFERRED], counts[SPOOL_FAILED]);
out:
	for (size_t i = 0; i < l.n; i++)
		entry_free(&l.v[i]);
	free(l.v);
	spool_close(s);
	return rc;
}

int cmd_queue(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config *cfg;
	bool json = false;
	int rc;

	optind = 1;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'j') {
			json = true;
		} else if (c == 'h') {
			fputs(USAGE, stdout);
			return EXIT_OK;
		} else {
			fputs(USAGE, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "alertmail: queue: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	cfg = commands_load_config(g, CONFIG_NO_SECRETS);
	if (cfg == NULL)
		return EXIT_USAGE;
	rc = list_spool(cfg, json);
	config_free(cfg);
	return rc;
}

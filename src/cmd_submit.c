/* alertmail submit: one alert, checked against the config, written into the spool. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "buf.h"
#include "charset.h"
#include "commands.h"
#include "conf.h"
#include "json.h"
#include "route.h"
#include "spool.h"
#include "yamltree.h"

#define USAGE "usage: alertmail submit [--channel NAME] [--set KEY=VALUE]... [FILE|-]\n"

/* What the command was asked to do. */
struct submit_args {
	const char *path; /* NULL or "-": standard input */
	const char *channel;
	const char **sets;
	size_t nsets;
};

int commands_read_input(const char *path, const char *name, size_t max, struct buf *out,
                        struct err *e)
{
	char chunk[65536];
	struct stat st;
	int fd = STDIN_FILENO;

	if (path != NULL) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err_set(e, "%s: %s", name, strerror(errno));
			return -1;
		}
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		err_set(e, "%s: is a directory, not an alert", name);
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(e, "%s: %s", name, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (out->len + (size_t)n > max) {
			err_set(e, "%s: larger than the limit of %zu bytes (max_alert_size)", name,
			        max);
			goto fail;
		}
		buf_add(out, chunk, (size_t)n);
	}
	if (path != NULL)
		close(fd);
	if (out->data == NULL)
		buf_add(out, "", 0);
	return 0;
fail:
	if (path != NULL)
		close(fd);
	return -1;
}

/* Drops "what:0:0: " from a message about a node that --set or --channel made: such a node
 * has no position in any file. */
static void drop_position(struct err *e, const char *what)
{
	struct buf prefix;

	/* The message has what escaped, as err_set() wrote it. */
	buf_init(&prefix);
	buf_add_escaped(&prefix, what);
	buf_adds(&prefix, ":0:0: ");
	if (strncmp(e->msg, prefix.data, prefix.len) == 0)
		memmove(e->msg, e->msg + prefix.len, strlen(e->msg + prefix.len) + 1);
	buf_free(&prefix);
}

/* The alert rules for the field that --set changed (the first part of its key), applied to
 * tree as changed: only that field can have been made invalid, and the tree, which may be
 * large, is neither copied nor checked whole for each --set. */
static int check_changed(const struct ynode *tree, const char *arg, const char *what, struct err *e)
{
	char *key = xstrndup(arg, strcspn(arg, ".="));
	int rc = alert_check_field(tree, key, what, e);

	free(key);
	if (rc < 0) {
		drop_position(e, what);
		err_prefix(e, "%s", what);
	}
	return rc;
}

/* The value slot of key (klen bytes) in a mapping, or NULL. */
static struct ynode **map_slot(struct ynode *map, const char *key, size_t klen)
{
	for (size_t i = 0; i < map->count; i++)
		if (map->keys[i]->len == klen && memcmp(map->keys[i]->str, key, klen) == 0)
			return &map->values[i];
	return NULL;
}

/* --set KEY=VALUE: KEY is a field, or a dotted path through mappings that are made where
 * missing (labels.team=db). VALUE is always a string: a shell argument has no type, and
 * "007" must stay "007". */
static int apply_set(struct ynode *root, const char *arg, struct err *e)
{
	const char *eq = strchr(arg, '=');
	const char *p = arg;
	struct ynode *node = root;
	size_t depth = 1, bad;

	if (eq == NULL || eq == arg) {
		err_set(e, "--set %s: expected KEY=VALUE", arg);
		return -1;
	}
	/* The alert file is UTF-8, and so is what --set puts in it: a shell argument may be any
	 * bytes. */
	bad = charset_utf8_invalid_at(arg, strlen(arg));
	if (bad < strlen(arg)) {
		err_set(e, "--set %s: byte %zu (0x%02x) is not UTF-8", arg, bad + 1,
		        (unsigned char)arg[bad]);
		return -1;
	}
	for (const char *q = arg; q < eq; q++)
		depth += *q == '.';
	if (depth > YTREE_MAX_DEPTH) {
		err_set(e,
		        "--set %.40s...: the key has %zu parts; alerts nest at most %d levels deep",
		        arg, depth, YTREE_MAX_DEPTH);
		return -1;
	}
	for (;;) {
		const char *dot = memchr(p, '.', (size_t)(eq - p));
		size_t len = dot != NULL ? (size_t)(dot - p) : (size_t)(eq - p);
		struct ynode **slot;
		char *key;

		if (len == 0) {
			err_set(e, "--set %s: '%.*s' has an empty field name", arg, (int)(eq - arg),
			        arg);
			return -1;
		}
		/* The alert is stored as JSON, whose keys libyaml reads back up to a length. */
		if (json_string_chars(p, len) > JSON_KEY_MAX) {
			err_set(e,
			        "--set %.40s...: the field name '%.20s...' is longer than %d characters "
			        "as JSON, quotes and escapes included",
			        arg, p, JSON_KEY_MAX);
			return -1;
		}
		key = xstrndup(p, len);
		if (dot == NULL) {
			ynode_map_set(node, key, ynode_new_scalar(eq + 1, strlen(eq + 1), false));
			free(key);
			return 0;
		}
		slot = map_slot(node, p, len);
		if (slot == NULL || ynode_is_null(*slot)) {
			struct ynode *child = ynode_new_map();
			ynode_map_set(node, key, child);
			node = child;
		} else if ((*slot)->kind == YNODE_MAP) {
			node = *slot;
		} else {
			err_set(e, "--set %s: '%.*s' is a %s, not a mapping", arg, (int)(dot - arg),
			        arg, ynode_kind_name((*slot)->kind));
			free(key);
			return -1;
		}
		free(key);
		p = dot + 1;
	}
}

/* NOLINTNEXTLINE(misc-no-recursion): trees read back by ytree_parse: YTREE_MAX_DEPTH */
static bool same_node(const struct ynode *a, const struct ynode *b)
{
	if (a->kind != b->kind || a->count != b->count || a->plain != b->plain || a->len != b->len)
		return false;
	if (a->len > 0 && memcmp(a->str, b->str, a->len) != 0)
		return false;
	for (size_t i = 0; i < a->count; i++) {
		if (a->kind == YNODE_MAP && !same_node(a->keys[i], b->keys[i]))
			return false;
		if (!same_node(a->values[i], b->values[i]))
			return false;
	}
	return true;
}

/* The input with a line "id: ..." added at its end, if that reads back as the same alert with
 * the id: the submitter's bytes stay as they were. Not for JSON, flow style, an indented or
 * an ended document, or an input whose last value the added line would change: false then. */
static bool append_id(const struct buf *in, const struct ynode *tree, const char *id,
                      struct buf *out)
{
	struct ynode *back;
	struct err e;
	bool same;

	buf_add(out, in->data, in->len);
	if (in->len > 0 && in->data[in->len - 1] != '\n')
		buf_addc(out, '\n');
	buf_adds(out, "id: ");
	json_add_string(out, id, strlen(id));
	buf_addc(out, '\n');
	if (ytree_parse(out->data, out->len, "", &back, &e) < 0) {
		buf_reset(out);
		return false;
	}
	same = back->kind == YNODE_MAP && back->count == tree->count + 1;
	for (size_t i = 0; same && i < tree->count; i++)
		same = same_node(tree->keys[i], back->keys[i]) &&
		       same_node(tree->values[i], back->values[i]);
	if (same) {
		const struct ynode *k = back->keys[tree->count], *v = back->values[tree->count];
		same =
		    strcmp(k->str, "id") == 0 && v->kind == YNODE_SCALAR && strcmp(v->str, id) == 0;
	}
	ynode_free(back);
	if (!same)
		buf_reset(out);
	return same;
}

static bool has_id(const struct ynode *tree)
{
	const struct ynode *n = ynode_get(tree, "id");

	/* An empty or null id counts as none, as alert_from_tree reads it. */
	return n != NULL && n->kind == YNODE_SCALAR && !ynode_is_null(n) && n->len > 0;
}

/* Makes the bytes to store: the input itself when nothing changes, else the changed alert as
 * JSON. An alert without an id gets one here, so that the id printed is the id stored.
 * Returns 0, or -1 with e set (a usage or input error). */
static int make_output(const struct submit_args *args, const struct buf *in, const struct alert *a,
                       char *channel_from, size_t fromlen, struct buf *out, struct err *e)
{
	struct ynode *tree;
	char *id;

	if (args->nsets == 0 && args->channel == NULL) {
		if (has_id(a->tree)) {
			buf_add(out, in->data, in->len);
			return 0;
		}
		id = alert_new_id(time(NULL));
		if (append_id(in, a->tree, id, out)) {
			free(id);
			return 0;
		}
		tree = ynode_copy(a->tree);
	} else {
		tree = ynode_copy(a->tree);
		for (size_t i = 0; i < args->nsets; i++) {
			char what[512];

			snprintf(what, sizeof(what), "--set %s", args->sets[i]);
			if (apply_set(tree, args->sets[i], e) < 0 ||
			    check_changed(tree, args->sets[i], what, e) < 0) {
				ynode_free(tree);
				return -1;
			}
			if (strncmp(args->sets[i], "channel=", 8) == 0)
				snprintf(channel_from, fromlen, "%s", what);
		}
		if (args->channel != NULL) {
			ynode_map_set(
			    tree, "channel",
			    ynode_new_scalar(args->channel, strlen(args->channel), false));
			snprintf(channel_from, fromlen, "--channel");
		}
		id = has_id(tree) ? NULL : alert_new_id(time(NULL));
	}
	if (id != NULL)
		ynode_map_set(tree, "id", ynode_new_scalar(id, strlen(id), false));
	free(id);
	/* As the size, the structure must stay within what the daemon reads. */
	if (ynode_count(tree) > YTREE_MAX_NODES) {
		err_set(e,
		        "with its changes the alert has %zu values (keys, values and list items), "
		        "more than the limit of %d",
		        ynode_count(tree), YTREE_MAX_NODES);
		ynode_free(tree);
		return -1;
	}
	json_add_node(out, tree, true);
	buf_addc(out, '\n');
	ynode_free(tree);
	return 0;
}

/* The config's channels, for a message: "ops, dev". */
static void list_channels(const struct config *cfg, struct buf *out)
{
	for (size_t i = 0; i < cfg->nchannels; i++) {
		if (i > 0)
			buf_adds(out, ", ");
		buf_add_escaped(out, cfg->channels[i].name);
	}
	if (cfg->nchannels == 0)
		buf_adds(out, "none");
}

/* The alert must reach a channel the config defines: the one it names, else the routes' or
 * the default. where says what named it, for the message. */
static int check_channel(const struct config *cfg, const struct alert *a, const char *where,
                         struct err *e)
{
	struct buf names, ch;

	if (a->channel == NULL) {
		if (route_select(cfg, a, e) == NULL) {
			err_prefix(e, "%s", where);
			return -1;
		}
		return 0;
	}
	if (config_channel(cfg, a->channel) != NULL)
		return 0;
	buf_init(&names);
	buf_init(&ch);
	list_channels(cfg, &names);
	buf_add_escaped(&ch, a->channel);
	err_set(e, "%s: unknown channel '%s'; the config %s defines: %s", where, ch.data, cfg->path,
	        names.data);
	buf_free(&names);
	buf_free(&ch);
	return -1;
}

/* Where the alert's channel came from when no option set it, for messages: its position in
 * the input, or the input. */
static void channel_origin(const struct alert *orig, const char *name, char *out, size_t len)
{
	const struct ynode *n = ynode_get(orig->tree, "channel");

	if (n != NULL)
		snprintf(out, len, "%s:%u:%u", name, n->line, n->column);
	else
		snprintf(out, len, "%s", name);
}

/* Stores data in the spool; the spool is the daemon's to create, with its owner and modes. */
static int store(const struct config *cfg, const struct buf *data, const struct globals *g)
{
	char name[SPOOL_NAME_MAX];
	struct spool *s;
	struct stat st;
	struct err e;

	if (stat(cfg->spool, &st) < 0 && errno == ENOENT) {
		fprintf(stderr,
		        "alertmail: submit: the spool %s does not exist: start the daemon "
		        "(alertmail run), which creates it, or check 'spool' in %s\n",
		        cfg->spool, cfg->path);
		return -1;
	}
	if (spool_open(cfg->spool, false, &s, &e) < 0) {
		fprintf(stderr, "alertmail: submit: %s\n", e.msg);
		return -1;
	}
	if (spool_submit(s, data->data, data->len, name, &e) < 0) {
		fprintf(stderr, "alertmail: submit: %s\n", e.msg);
		spool_close(s);
		return -1;
	}
	if (g->verbosity >= 2)
		fprintf(stderr, "alertmail: submit: stored as %s/new/%s\n", cfg->spool, name);
	spool_close(s);
	return 0;
}

static int submit(const struct globals *g, const struct config *cfg, const struct submit_args *args)
{
	const char *name = args->path != NULL ? args->path : "<stdin>";
	struct alert *orig = NULL, *final = NULL;
	struct buf in, out;
	char where[600] = "";
	struct err e;
	int rc = EXIT_USAGE;

	buf_init(&in);
	buf_init(&out);
	if (commands_read_input(args->path, name, cfg->max_alert_size, &in, &e) < 0 ||
	    alert_parse(in.data, in.len, name, time(NULL), &orig, &e) < 0 ||
	    make_output(args, &in, orig, where, sizeof(where), &out, &e) < 0) {
		fprintf(stderr, "alertmail: submit: %s\n", e.msg);
		goto out;
	}
	if (out.len > cfg->max_alert_size) {
		fprintf(stderr,
		        "alertmail: submit: %s: with its changes the alert is %zu bytes, more than "
		        "the limit of %zu (max_alert_size)\n",
		        name, out.len, cfg->max_alert_size);
		goto out;
	}
	/* What is stored is read back as the daemon will read it. */
	if (alert_parse(out.data, out.len, name, time(NULL), &final, &e) < 0) {
		fprintf(stderr, "alertmail: submit: the alert as it would be stored: %s\n", e.msg);
		rc = EXIT_FAILURE_RUNTIME;
		goto out;
	}
	if (where[0] == '\0')
		channel_origin(orig, name, where, sizeof(where));
	if (check_channel(cfg, final, where, &e) < 0) {
		fprintf(stderr, "alertmail: submit: %s\n", e.msg);
		goto out;
	}
	if (store(cfg, &out, g) < 0) {
		rc = EXIT_FAILURE_RUNTIME;
		goto out;
	}
	printf("%s\n", final->id);
	rc = EXIT_OK;
out:
	alert_free(orig);
	alert_free(final);
	buf_free(&in);
	buf_free(&out);
	return rc;
}

int cmd_submit(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"channel", required_argument, NULL, 'C'},
	    {"set", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct submit_args args = {0};
	struct config *cfg;
	int rc;

	args.sets = xcalloc((size_t)argc, sizeof(*args.sets));
	optind = 1;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'C') {
			args.channel = optarg;
		} else if (c == 's' && optarg != NULL) { /* it is: a required_argument */
			args.sets[args.nsets++] = optarg;
		} else if (c == 'h') {
			fputs(USAGE, stdout);
			free(args.sets);
			return EXIT_OK;
		} else {
			fputs(USAGE, stderr);
			free(args.sets);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr,
		        "alertmail: submit: one alert at a time; unexpected argument '%s'\n",
		        argv[optind + 1]);
		free(args.sets);
		return EXIT_USAGE;
	}
	if (optind < argc && strcmp(argv[optind], "-") != 0)
		args.path = argv[optind];
	if (args.channel != NULL && args.channel[0] == '\0') {
		fprintf(stderr, "alertmail: submit: --channel needs a channel name\n");
		free(args.sets);
		return EXIT_USAGE;
	}
	cfg = commands_load_config(g, CONFIG_NO_SECRETS);
	if (cfg == NULL) {
		free(args.sets);
		return EXIT_USAGE;
	}
	rc = submit(g, cfg, &args);
	config_free(cfg);
	free(args.sets);
	return rc;
}

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "buf.h"
#include "commands.h"
#include "conf.h"
#include "hostkey.h"
#include "secret.h"
#include "yamltree.h"

/* The secret on standard input: up to SECRET_MAX_SIZE bytes and a CRLF, and one byte more to
 * tell a secret that is too large. */
#define INPUT_CAP (SECRET_MAX_SIZE + 3)

#define USAGE                                                                                      \
	"usage: alertmail secret pubkey\n"                                                         \
	"       alertmail secret seal [--pubkey FILE]   (the secret on standard input)\n"          \
	"       alertmail secret rotate [--force]\n"

/* The state directory of the config. Only `state:` is read: these commands are also how a new
 * host's key is made before its config is complete. Without a config file at all, the default
 * directory. The config's tree goes to *tree (NULL without a file) if tree is not NULL. */
static int state_dir(const struct globals *g, char **state, struct ynode **tree)
{
	const struct ynode *n;
	struct ynode *root = NULL;
	struct stat st;
	struct err e;

	*state = NULL;
	if (tree != NULL)
		*tree = NULL;
	if (stat(g->config_path, &st) < 0 && errno == ENOENT) {
		*state = xstrdup(CONFIG_STATE_DEFAULT);
		fprintf(stderr,
		        "alertmail: secret: no config at %s; using the default state "
		        "directory %s\n",
		        g->config_path, *state);
		return 0;
	}
	if (ytree_parse_file(g->config_path, CONFIG_MAX_SIZE, &root, &e) < 0) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	n = ynode_get(root, "state");
	if (n == NULL) {
		*state = xstrdup(CONFIG_STATE_DEFAULT);
	} else if (n->kind != YNODE_SCALAR || n->str[0] != '/' || strlen(n->str) != n->len) {
		fprintf(stderr, "%s:%u:%u: state: expected an absolute path\n", g->config_path,
		        n->line, n->column);
		ynode_free(root);
		return -1;
	} else {
		*state = xstrdup(n->str);
	}
	if (tree != NULL)
		*tree = root;
	else
		ynode_free(root);
	return 0;
}

/* The host's key pair, made if there is none yet (which is said on stderr). */
static EVP_PKEY *host_key(const char *state)
{
	EVP_PKEY *key = NULL;
	bool created;
	struct err e;

	if (hostkey_ensure(state, &key, &created, &e) < 0) {
		fprintf(stderr, "alertmail: secret: %s\n", e.msg);
		return NULL;
	}
	if (created)
		fprintf(stderr, "alertmail: secret: made a new host key pair: %s/%s\n", state,
		        HOSTKEY_FILE);
	return key;
}

static int cmd_pubkey(const struct globals *g)
{
	unsigned char pub[SEAL_KEY_LEN];
	char text[SEAL_PUBKEY_TEXT_LEN];
	EVP_PKEY *key;
	char *state;
	struct err e;

	if (state_dir(g, &state, NULL) < 0)
		return EXIT_USAGE;
	key = host_key(state);
	free(state);
	if (key == NULL)
		return EXIT_FAILURE_RUNTIME;
	if (seal_public(key, pub, &e) < 0) {
		fprintf(stderr, "alertmail: secret: %s\n", e.msg);
		EVP_PKEY_free(key);
		return EXIT_FAILURE_RUNTIME;
	}
	EVP_PKEY_free(key);
	seal_pubkey_format(pub, text);
	printf("%s\n", text);
	return EXIT_OK;
}

/* A public key from a file, as alertmail secret pubkey printed it on some host. */
static int read_pubkey(const char *path, unsigned char pub[SEAL_KEY_LEN])
{
	char text[512];
	size_t n;
	FILE *f = fopen(path, "r");
	struct err e;

	if (f == NULL) {
		fprintf(stderr, "alertmail: secret: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	if (ferror(f)) {
		fprintf(stderr, "alertmail: secret: %s: %s\n", path, strerror(errno));
		(void)fclose(f);
		return -1;
	}
	(void)fclose(f); /* read only: a close has nothing to lose */
	text[n] = '\0';
	if (strlen(text) != n || seal_pubkey_parse(text, pub, &e) < 0) {
		fprintf(stderr, "alertmail: secret: %s: %s\n", path,
		        strlen(text) != n ? "contains a NUL byte" : e.msg);
		return -1;
	}
	return 0;
}

/* Reads until EOF, a full buffer or (from a terminal) the end of the line. */
static size_t read_input(int fd, char *b, size_t cap, bool line, int *err_no)
{
	size_t len = 0;

	*err_no = 0;
	while (len < cap) {
		ssize_t n = read(fd, b + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*err_no = errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (line && b[len - 1] == '\n')
			break;
	}
	return len;
}

/* The secret to seal from standard input: one trailing line break dropped, not empty, at most
 * SECRET_MAX_SIZE bytes, no NUL byte. From a terminal, one line typed without echo. The buffer
 * has a fixed size, so no copy of the secret is left behind in freed memory. */
static char *read_secret(size_t *len_out)
{
	const size_t cap = INPUT_CAP;
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) == 1;
	bool echo_off = false;
	char *b = xmalloc(cap);
	size_t len;
	int err_no;

	if (tty) {
		fprintf(stderr, "alertmail: secret: type the secret and Enter (it is not shown): ");
		(void)fflush(stderr); /* the prompt has no newline */
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	len = read_input(STDIN_FILENO, b, cap, tty, &err_no);
	if (echo_off)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	if (tty)
		fputc('\n', stderr);
	if (err_no != 0) {
		fprintf(stderr, "alertmail: secret: standard input: %s\n", strerror(err_no));
		goto fail;
	}
	if (len > 0 && b[len - 1] == '\n')
		len--;
	if (len > 0 && b[len - 1] == '\r')
		len--;
	if (len > SECRET_MAX_SIZE) {
		fprintf(stderr, "alertmail: secret: the secret is larger than %d bytes\n",
		        SECRET_MAX_SIZE);
		goto fail;
	}
	if (len == 0) {
		fprintf(stderr,
		        "alertmail: secret: the secret is empty; give it on standard input\n");
		goto fail;
	}
	if (memchr(b, '\0', len) != NULL) {
		fprintf(stderr, "alertmail: secret: the secret contains a NUL byte\n");
		goto fail;
	}
	*len_out = len;
	return b;
fail:
	explicit_bzero(b, cap);
	free(b);
	return NULL;
}

static int cmd_seal(const struct globals *g, const char *pubkey_file)
{
	unsigned char pub[SEAL_KEY_LEN];
	char *secret, *sealed = NULL;
	size_t len = 0;
	struct err e;
	int rc;

	if (pubkey_file != NULL) {
		if (read_pubkey(pubkey_file, pub) < 0)
			return EXIT_USAGE;
	} else {
		EVP_PKEY *key;
		char *state;
		if (state_dir(g, &state, NULL) < 0)
			return EXIT_USAGE;
		key = host_key(state);
		free(state);
		if (key == NULL)
			return EXIT_FAILURE_RUNTIME;
		rc = seal_public(key, pub, &e);
		EVP_PKEY_free(key);
		if (rc < 0) {
			fprintf(stderr, "alertmail: secret: %s\n", e.msg);
			return EXIT_FAILURE_RUNTIME;
		}
	}
	secret = read_secret(&len);
	if (secret == NULL)
		return EXIT_USAGE;
	rc = seal_encrypt(pub, secret, len, &sealed, &e);
	explicit_bzero(secret, INPUT_CAP);
	free(secret);
	if (rc < 0) {
		fprintf(stderr, "alertmail: secret: %s\n", e.msg);
		return EXIT_USAGE;
	}
	printf("%s\n", sealed);
	free(sealed);
	return EXIT_OK;
}

/* A sealed value in the config, and which key opens it. */
struct sealed_value {
	char where[512]; /* "FILE:LINE:COLUMN: server 'NAME': KEY" */
	int opens;       /* 0 the current key, 1 only the previous one, < 0 neither */
	char why[1024];  /* when neither: what hostkey_open said */
};

struct sealed_list {
	struct sealed_value *v;
	size_t n;
};

/* Collects every scalar under a key that ends in "_sealed", wherever it is, so that a sealed
 * key added to the config later is found too. path holds the keys down to n. */
/* NOLINTNEXTLINE(misc-no-recursion): depth stops at YTREE_MAX_DEPTH */
static void find_sealed(const struct globals *g, const char *state, const struct ynode *n,
                        const char **path, size_t depth, struct sealed_list *out)
{
	if (n == NULL || depth >= YTREE_MAX_DEPTH)
		return;
	for (size_t i = 0; i < n->count; i++) {
		const struct ynode *v = n->values[i];
		const char *k = n->kind == YNODE_MAP ? n->keys[i]->str : NULL;
		size_t klen = k != NULL ? strlen(k) : 0;

		if (k != NULL && v->kind == YNODE_SCALAR && klen > 7 &&
		    strcmp(k + klen - 7, "_sealed") == 0) {
			struct sealed_value *s;
			struct buf name;
			struct err e;
			char prev_fp[SEAL_FP_LEN];
			char *plain = NULL;
			size_t first = 0;

			out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
			s = &out->v[out->n++];
			buf_init(&name);
			if (depth >= 2 && strcmp(path[0], "servers") == 0) {
				buf_printf(&name, "server '%s': ", path[1]);
				first = 2;
			}
			for (size_t j = first; j < depth; j++)
				buf_printf(&name, "%s.", path[j]);
			buf_adds(&name, k);
			snprintf(s->where, sizeof(s->where), "%s:%u:%u: %s", g->config_path,
			         v->line, v->column, name.data);
			buf_free(&name);
			s->opens = hostkey_open(state, v->str, &plain, prev_fp, &e);
			snprintf(s->why, sizeof(s->why), "%s", s->opens < 0 ? e.msg : "");
			secret_free(plain);
			continue;
		}
		if (v->kind == YNODE_SCALAR)
			continue;
		path[depth] = k != NULL ? k : "-";
		find_sealed(g, state, v, path, depth + 1, out);
	}
}

static int cmd_rotate(const struct globals *g, bool force)
{
	const char *path[YTREE_MAX_DEPTH];
	struct sealed_list list = {NULL, 0};
	unsigned char pub[SEAL_KEY_LEN];
	char text[SEAL_PUBKEY_TEXT_LEN], fp[SEAL_FP_LEN], old_fp[SEAL_FP_LEN] = "?";
	struct ynode *tree = NULL;
	EVP_PKEY *key = NULL;
	size_t lost = 0;
	char *state;
	struct err e;
	int rc = EXIT_OK;

	if (state_dir(g, &state, &tree) < 0)
		return EXIT_USAGE;
	find_sealed(g, state, tree, path, 0, &list);
	for (size_t i = 0; i < list.n; i++)
		lost += list.v[i].opens == 1;
	/* A second rotation discards the key the first one kept: refused while values still
	 * need it, as that would break a running setup at its next start or reload. */
	if (lost > 0 && !force) {
		fprintf(stderr,
		        "alertmail: secret rotate: refused: %zu value%s in %s open%s only with the "
		        "previous host key (%s/%s), which another rotation would discard:\n",
		        lost, lost == 1 ? "" : "s", g->config_path, lost == 1 ? "s" : "", state,
		        HOSTKEY_OLD_FILE);
		for (size_t i = 0; i < list.n; i++)
			if (list.v[i].opens == 1)
				fprintf(stderr, "  %s\n", list.v[i].where);
		fprintf(stderr, "seal each anew (alertmail secret seal) and put it in the config "
		                "first; or rotate --force to discard that key all the same\n");
		rc = EXIT_USAGE;
		goto out;
	}
	if (hostkey_load(state, HOSTKEY_CURRENT, &key, &e) == 0)
		hostkey_fingerprint(key, old_fp);
	EVP_PKEY_free(key);
	key = NULL;
	if (hostkey_rotate(state, &key, &e) < 0 || seal_public(key, pub, &e) < 0) {
		fprintf(stderr, "alertmail: secret rotate: %s\n", e.msg);
		rc = EXIT_FAILURE_RUNTIME;
		goto out;
	}
	seal_pubkey_format(pub, text);
	seal_fingerprint(pub, fp);
	printf("new host key:      %s (%s)\n", text, fp);
	printf("previous host key: %s, kept as %s/%s: values sealed to it still open, with a "
	       "warning, until they are sealed anew\n",
	       old_fp, state, HOSTKEY_OLD_FILE);
	if (list.n == 0) {
		printf("no sealed values in %s\n", tree != NULL ? g->config_path : "(no config)");
		goto out;
	}
	printf("%zu sealed value%s to seal anew, to the new key:\n", list.n,
	       list.n == 1 ? "" : "s");
	for (size_t i = 0; i < list.n; i++) {
		const struct sealed_value *s = &list.v[i];
		printf("  %s%s\n", s->where,
		       s->opens == 1 ? " (no longer opens: sealed to the discarded key)" : "");
		if (s->opens < 0)
			printf("    (did not open before the rotation either: %s)\n", s->why);
	}
	printf("for each: alertmail secret seal <FILE (or type the secret), put what it prints in "
	       "place of the value, then alertmail check, and reload the daemon\n");
out:
	EVP_PKEY_free(key);
	ynode_free(tree);
	free(list.v);
	free(state);
	return rc;
}

int cmd_secret(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *sub, *pubkey_file = NULL;
	bool force = false;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(USAGE, stdout);
		return EXIT_OK;
	}
	if (argc < 2) {
		fputs(USAGE, stderr);
		return EXIT_USAGE;
	}
	sub = argv[1];
	optind = 1;
	for (;;) {
		int c = getopt_long(argc - 1, argv + 1, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'p' && strcmp(sub, "seal") == 0) {
			pubkey_file = optarg;
		} else if (c == 'f' && strcmp(sub, "rotate") == 0) {
			force = true;
		} else if (c == 'h') {
			fputs(USAGE, stdout);
			return EXIT_OK;
		} else {
			fputs(USAGE, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "alertmail: secret %s: unexpected argument '%s'\n", sub,
		        argv[optind + 1]);
		return EXIT_USAGE;
	}
	if (strcmp(sub, "pubkey") == 0)
		return cmd_pubkey(g);
	if (strcmp(sub, "seal") == 0)
		return cmd_seal(g, pubkey_file);
	if (strcmp(sub, "rotate") == 0)
		return cmd_rotate(g, force);
	fprintf(stderr, "alertmail: secret: unknown subcommand '%s'\n", sub);
	fputs(USAGE, stderr);
	return EXIT_USAGE;
}

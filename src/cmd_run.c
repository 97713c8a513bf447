#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "conf.h"
#include "daemon.h"
#include "hostkey.h"
#include "log.h"
#include "privs.h"

/* The host key pair for sealed values is made at the first start, so that `alertmail secret
 * pubkey` has one to print. Failing to make it stops nothing that needs no sealed value: the
 * config load says so for any that does. */
static void host_key_at_start(const char *state)
{
	EVP_PKEY *key = NULL;
	char fp[SEAL_FP_LEN];
	bool created;
	struct err e;

	if (hostkey_ensure(state, &key, &created, &e) < 0) {
		log_err("secret", "no host key, sealed values cannot be opened: %s", e.msg);
		return;
	}
	hostkey_fingerprint(key, fp);
	EVP_PKEY_free(key);
	if (created)
		log_notice("secret", "made a new host key pair: %s/%s", state, HOSTKEY_FILE);
	log_notice("secret", "host key %s (%s/%s)", fp, state, HOSTKEY_FILE);
}

/* Root keeps nothing it does not need: with user: in the config, the daemon becomes that user
 * before it reads a secret, a key or the spool, so that every reload later reads what the first
 * start read, with the same rights. Root stays only when told (--allow-root). */
static int become_user(const struct config *cfg, bool allow_root)
{
	struct privs_id me, want;
	struct err e;
	int rc = 0;

	privs_id_current(&me);
	/* user: root is no user of its own: it takes --allow-root like no user: at all. */
	if (cfg->user != NULL && me.uid == 0 && privs_id_of_user(cfg->user, &want, &e) == 0) {
		bool root = want.uid == 0;
		privs_id_free(&want);
		if (root && !allow_root) {
			fprintf(stderr, "alertmail: run: refusing to run as root: user: %s is root; name "
			                "a user of its own (for example user: alertmail), or pass "
			                "--allow-root\n",
			        cfg->user);
			privs_id_free(&me);
			return -1;
		}
		if (root) {
			log_warn("daemon", "running as root (user: %s, --allow-root): a user of its own "
			                   "would keep a flaw in the daemon from being root's",
			         cfg->user);
			privs_id_free(&me);
			return 0;
		}
	}
	if (cfg->user != NULL && me.uid == 0) {
		if (privs_drop(cfg->user, &e) < 0) {
			fprintf(stderr, "alertmail: run: %s\n", e.msg);
			rc = -1;
		}
	} else if (cfg->user != NULL) {
		if (privs_id_of_user(cfg->user, &want, &e) < 0) {
			fprintf(stderr, "alertmail: run: user: %s\n", e.msg);
			rc = -1;
		} else if (want.uid != me.uid) {
			fprintf(stderr,
			        "alertmail: run: the config says user: %s, but the daemon runs as %s, and "
			        "only root can change its user: start it as root or as %s\n",
			        cfg->user, me.name, cfg->user);
			rc = -1;
		}
		privs_id_free(&want);
	} else if (me.uid == 0 && !allow_root) {
		fprintf(stderr, "alertmail: run: refusing to run as root: set user: in the config "
		                "(the daemon then becomes that user, for example user: alertmail), start "
		                "it as that user (systemd: User=), or pass --allow-root\n");
		rc = -1;
	} else if (me.uid == 0) {
		log_warn("daemon", "running as root (--allow-root): a user of its own (user: in the "
		                   "config) would keep a flaw in the daemon from being root's");
	}
	privs_id_free(&me);
	return rc;
}

/* The spool, the state directory and the secret files, as the user the daemon now is: a
 * problem stops the start, with what to fix. */
static int files_at_start(const struct config *cfg)
{
	struct privs_id me;
	struct buf problems;
	int bad;

	buf_init(&problems);
	privs_id_current(&me);
	bad = privs_check_files(cfg, &me, &problems, NULL);
	privs_id_free(&me);
	for (const char *p = problems.data; bad > 0 && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		fprintf(stderr, "alertmail: run: %.*s\n", (int)n, p);
		p += n + (nl != NULL ? 1 : 0);
	}
	buf_free(&problems);
	return bad > 0 ? -1 : 0;
}

/* Loads the config as the daemon will, first without secrets for the user to become, the files
 * to check and the state directory (where the host key must be before sealed values can open),
 * and logs its warnings: a value that only the previous host key
 * opens is one. Returns 0, or -1 with the errors printed. */
static int config_at_start(const char *path, bool allow_root)
{
	struct config *cfg = NULL;
	struct buf errors;
	const char *p;

	buf_init(&errors);
	if (config_load_flags(path, CONFIG_NO_SECRETS, &cfg, &errors) < 0)
		goto fail;
	if (become_user(cfg, allow_root) < 0 || files_at_start(cfg) < 0)
		goto fail_quiet;
	host_key_at_start(cfg->state);
	config_free(cfg);
	if (config_load(path, &cfg, &errors) < 0)
		goto fail;
	for (p = cfg->warnings.data; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		log_warn("config", "%.*s", (int)n, p);
		p += n + (nl != NULL ? 1 : 0);
	}
	config_free(cfg);
	buf_free(&errors);
	return 0;
fail:
	fputs(errors.data != NULL ? errors.data : "config: unknown error\n", stderr);
fail_quiet:
	config_free(cfg);
	buf_free(&errors);
	return -1;
}

int cmd_run(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"allow-root", no_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool allow_root = false;

	optind = 1;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'R') {
			allow_root = true;
			continue;
		}
		if (c == 'h') {
			printf("usage: alertmail run [--allow-root]\n");
			return EXIT_OK;
		}
		fprintf(stderr, "usage: alertmail run [--allow-root]\n");
		return EXIT_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "alertmail: run: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	/* Under systemd the journal stamps each line; written to a file, the lines need a time. */
	log_set_timestamps(getenv("JOURNAL_STREAM") == NULL);
	if (config_at_start(g->config_path, allow_root) < 0)
		return EXIT_USAGE;
	/* The daemon stays in the foreground: systemd and the init script do the rest. */
	return daemon_run(g->config_path);
}

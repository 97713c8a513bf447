#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "conf.h"
#include "daemon.h"
#include "hostkey.h"
#include "log.h"

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

/* Loads the config as the daemon will, first without secrets for the state directory (where
 * the host key must be before sealed values can open), and logs its warnings: a value that only
 * the previous host key opens is one. Returns 0, or -1 with the errors printed. */
static int config_at_start(const char *path)
{
	struct config *cfg = NULL;
	struct buf errors;
	const char *p;

	buf_init(&errors);
	if (config_load_flags(path, CONFIG_NO_SECRETS, &cfg, &errors) < 0)
		goto fail;
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
	buf_free(&errors);
	return -1;
}

int cmd_run(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'h') {
			printf("usage: alertmail run\n");
			return EXIT_OK;
		}
		fprintf(stderr, "usage: alertmail run\n");
		return EXIT_USAGE;
	}
	if (optind < argc) {
		fprintf(stderr, "alertmail: run: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	/* Under systemd the journal stamps each line; written to a file, the lines need a time. */
	log_set_timestamps(getenv("JOURNAL_STREAM") == NULL);
	if (config_at_start(g->config_path) < 0)
		return EXIT_USAGE;
	/* The daemon stays in the foreground: systemd and the init script do the rest. */
	return daemon_run(g->config_path);
}

#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "commands.h"
#include "conf.h"
#include "hostkey.h"
#include "mailtmpl.h"
#include "privs.h"
#include "smtp.h"

/* With -q only problems are printed. */
static bool quiet;

/* The host key pair for sealed values, and the previous one a rotation kept: usable and
 * private, or not made yet. Whoever cannot even look into the state directory is told so; the
 * config load has already failed if a sealed value needed the key. */
static int check_hostkey(const char *state)
{
	static const struct {
		enum hostkey_which which;
		const char *file;
	} keys[] = {{HOSTKEY_CURRENT, HOSTKEY_FILE}, {HOSTKEY_PREVIOUS, HOSTKEY_OLD_FILE}};
	int bad = 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char *path = xasprintf("%s/%s", state, keys[i].file);
		char fp[SEAL_FP_LEN];
		EVP_PKEY *key = NULL;
		struct stat st;
		struct err e;
		int rc;

		if (lstat(path, &st) < 0 && errno != ENOENT) {
			if (!quiet)
				printf("%-10s %s: not checked: %s\n", "host key", path,
				       strerror(errno));
			free(path);
			continue;
		}
		rc = hostkey_load(state, keys[i].which, &key, &e);
		if (rc < 0) {
			printf("%-10s %s\n", "host key", e.msg);
			bad++;
		} else if (rc == 0 && !quiet) {
			hostkey_fingerprint(key, fp);
			printf("%-10s %s: ok, %s%s\n", "host key", path, fp,
			       keys[i].which == HOSTKEY_PREVIOUS ? " (the previous key)" : "");
		} else if (rc == 1 && keys[i].which == HOSTKEY_CURRENT && !quiet) {
			printf("%-10s %s: none yet (made by the daemon's first start, or alertmail "
			       "secret pubkey)\n",
			       "host key", path);
		}
		EVP_PKEY_free(key);
		free(path);
	}
	return bad;
}

/* Who may change the spool, the state directory and the secret files, judged for the user the
 * daemon runs as: user: in the config, else whoever runs the check (under systemd, the unit's
 * User=, as ExecStartPre= runs it). */
static int check_files(const struct config *cfg)
{
	struct privs_id id;
	struct buf problems, notes;
	struct err e;
	int bad;

	if (cfg->user != NULL) {
		if (privs_id_of_user(cfg->user, &id, &e) < 0) {
			printf("%-10s %s\n", "user", e.msg);
			return 1;
		}
	} else {
		privs_id_current(&id);
	}
	buf_init(&problems);
	buf_init(&notes);
	bad = privs_check_files(cfg, &id, &problems, &notes);
	if (!quiet && notes.len > 0)
		fputs(notes.data, stdout);
	if (bad > 0)
		fputs(problems.data, stdout);
	else if (!quiet)
		printf("%-10s %s: no other user can change the spool, the state directory or the "
		       "secret files\n",
		       "files", id.name);
	buf_free(&problems);
	buf_free(&notes);
	privs_id_free(&id);
	return bad;
}

static int check_templates(const struct config *cfg)
{
	const char *dirs[2];
	size_t nd = config_template_dirs(cfg, dirs);
	int bad = 0;

	for (size_t i = 0; i < cfg->nchannels; i++) {
		const struct channel *ch = &cfg->channels[i];
		struct mail_template *t;
		struct err e;

		/* Channels that share a template check it once each: cheap and simple. */
		if (mail_template_load(dirs, nd, ch->template, &t, &e) < 0) {
			printf("template   %s (channel %s): %s\n", ch->template, ch->name, e.msg);
			bad++;
			continue;
		}
		if (!quiet)
			printf("template   %s (channel %s): ok, %s\n", ch->template, ch->name,
			       mail_template_dir(t));
		mail_template_free(t);
	}
	return bad;
}

static int probe_servers(const struct config *cfg, int verbosity)
{
	struct smtp_pool *pool = smtp_pool_new(cfg);
	int bad = 0;

	for (size_t i = 0; i < cfg->nservers; i++) {
		const struct server *s = &cfg->servers[i];
		struct smtp_conn *conn = smtp_pool_get(pool, s);
		struct smtp_result r;
		char addr[300];

		if (conn == NULL) {
			printf("server     %s: cannot create a connection\n", s->name);
			bad++;
			continue;
		}
		smtp_probe(conn, &r);
		server_format_addr(s, addr, sizeof(addr));
		if (r.outcome == OUTCOME_OK) {
			if (!quiet) {
				printf("server     %s %s (tls %s, auth %s): ok [%lld ms]", s->name,
				       addr, tls_mode_name(s->tls), auth_mech_name(s->auth),
				       (long long)r.elapsed_ms);
				if (r.cert_expiry[0] != '\0')
					printf(", certificate expires %s", r.cert_expiry);
				printf("\n");
			}
		} else {
			printf("server     %s %s (tls %s, auth %s): FAILED (%s): %s [%lld ms]\n",
			       s->name, addr, tls_mode_name(s->tls), auth_mech_name(s->auth),
			       outcome_name(r.outcome), r.detail, (long long)r.elapsed_ms);
			bad++;
		}
		/* -v -v: the session as in test, on stderr, AUTH redacted. */
		if (verbosity >= 3)
			fprintf(stderr, "alertmail: smtp: transcript with %s:\n%s", s->name,
			        smtp_transcript(conn));
	}
	smtp_pool_free(pool);
	return bad;
}

int cmd_check(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"connect", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct config *cfg;
	bool connect = false;
	int bad = 0;

	optind = 1;
	for (;;) {
		int c = getopt_long(argc, argv, "h", opts, NULL);
		if (c == -1)
			break;
		if (c == 'C') {
			connect = true;
		} else if (c == 'h') {
			printf("usage: alertmail check [--connect]\n");
			return EXIT_OK;
		} else {
			fprintf(stderr, "usage: alertmail check [--connect]\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "alertmail: check: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	cfg = commands_load_config(g, 0);
	if (cfg == NULL)
		return EXIT_USAGE;
	quiet = g->verbosity == 0;
	if (!quiet)
		printf("config     %s: ok (%zu server%s, %zu channel%s, %zu route%s)\n", cfg->path,
		       cfg->nservers, cfg->nservers == 1 ? "" : "s", cfg->nchannels,
		       cfg->nchannels == 1 ? "" : "s", cfg->nroutes, cfg->nroutes == 1 ? "" : "s");
	bad += check_templates(cfg);
	bad += check_files(cfg);
	bad += check_hostkey(cfg->state);
	if (bad > 0) {
		config_free(cfg);
		return EXIT_USAGE;
	}
	if (connect && probe_servers(cfg, g->verbosity) > 0) {
		config_free(cfg);
		return EXIT_FAILURE_RUNTIME;
	}
	config_free(cfg);
	return EXIT_OK;
}

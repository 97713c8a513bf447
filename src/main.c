#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "commands.h"
#include "conf.h"
#include "log.h"
#include "privs.h"

struct config *commands_load_config(const struct globals *g, unsigned flags)
{
	struct config *cfg;
	struct buf errors;

	buf_init(&errors);
	if (config_load_flags(g->config_path, flags, &cfg, &errors) < 0) {
		fputs(errors.data ? errors.data : "config: unknown error\n", stderr);
		buf_free(&errors);
		return NULL;
	}
	buf_free(&errors);
	if (cfg->warnings.len > 0 && g->verbosity > 0) {
		const char *p = cfg->warnings.data;
		while (*p != '\0') {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			fprintf(stderr, "warning: %.*s\n", (int)n, p);
			p += n + (nl ? 1 : 0);
		}
	}
	return cfg;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: alertmail [-c FILE] [-v|-q] COMMAND [ARGS]\n"
	        "\n"
	        "commands:\n"
	        "  run                   the daemon, in the foreground: takes alerts from the spool\n"
	        "                        and delivers them (SIGHUP reloads, SIGTERM stops)\n"
	        "  submit [--channel NAME] [--set KEY=VALUE]... [FILE|-]\n"
	        "                        validate an alert and put it into the spool; prints its id\n"
	        "  route [--json] FILE|- show which routes an alert matches and why, and the\n"
	        "                        channels (servers, recipients) it would go to\n"
	        "  queue [--json]        list pending, deferred and failed alerts\n"
	        "  retry ID...|--all     put failed alerts back in the queue; retry deferred ones now\n"
	        "  test [--channel NAME] [--to ADDR]... [--server NAME]\n"
	        "                        "
	        "send a test notification now, through the channel's servers\n"
	        "  check [--connect]     "
	        "validate the config and templates; --connect also opens a\n"
	        "                        "
	        "session (TLS, EHLO, AUTH) to every server, sending no mail\n"
	        "  secret pubkey|seal [--pubkey FILE]|rotate [--force]\n"
	        "                        the host key for sealed secrets: print the public key; seal\n"
	        "                        a secret read on stdin; make a new key pair and list what\n"
	        "                        must be sealed anew\n"
	        "  version               "
	        "show the version and the libraries in use\n"
	        "\n"
	        "options:\n"
	        "  -c FILE   config file (default: $ALERTMAIL_CONFIG, else %s)\n"
	        "  -v        more detail (twice: SMTP transcripts, AUTH redacted)\n"
	        "  -q        errors only\n",
	        config_default_path(NULL));
}

struct command {
	const char *name;
	int (*fn)(const struct globals *g, int argc, char **argv);
};

static const struct command commands[] = {
	{"run", cmd_run},
	{"submit", cmd_submit},
	{"route", cmd_route},
	{"queue", cmd_queue},
	{"retry", cmd_retry},
	{"test", cmd_test},
	{"check", cmd_check},
	{"secret", cmd_secret},
	{"version", cmd_version},
};

/* The command line, after the checks that make the process safe to run. */
static int dispatch(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct globals g = {0};
	const char *cli_config = NULL;
	int verbosity = 1;
	int rc;

	for (;;) {
		int c = getopt_long(argc, argv, "+c:vqh", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'c':
			cli_config = optarg;
			break;
		case 'v':
			verbosity++;
			break;
		case 'q':
			verbosity = 0;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	g.config_path = config_default_path(cli_config);
	g.verbosity = verbosity;
	log_init("alertmail", verbosity, false);

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			fprintf(stderr, "alertmail: cannot initialise libcurl\n");
			return EXIT_FAILURE_RUNTIME;
		}
		/* Subcommands parse their own options from their name on. */
		optind++;
		rc = commands[i].fn(&g, argc - optind + 1, argv + optind - 1);
		curl_global_cleanup();
		return rc;
	}
	fprintf(stderr, "alertmail: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return EXIT_USAGE;
}

/* Output that never reached stdout (a full disk, a closed pipe) fails the command, as in
 * coreutils: whoever reads it must not take a cut listing, or no id, for a whole one. */
static int stdout_close(int rc)
{
	bool lost = fflush(stdout) != 0;

	if (lost || ferror(stdout)) {
		fprintf(stderr, "alertmail: standard output: %s\n",
		        lost ? strerror(errno) : "a write failed");
		return rc == EXIT_OK ? EXIT_FAILURE_RUNTIME : rc;
	}
	/* Flushed, so EBADF means stdout was closed and nothing was written to it. */
	if (fclose(stdout) != 0 && errno != EBADF) {
		fprintf(stderr, "alertmail: standard output: %s\n", strerror(errno));
		return rc == EXIT_OK ? EXIT_FAILURE_RUNTIME : rc;
	}
	return rc;
}

int main(int argc, char **argv)
{
	/* Passwords are in memory from the config on: keep them out of core files. Failure is
	 * no reason not to run. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
	/* Whatever umask the caller had: nothing made here is for the world. */
	umask(PRIVS_UMASK);
	/* Without the locale, text is taken as ASCII: still safe. */
	(void)setlocale(LC_CTYPE, "");
	return stdout_close(dispatch(argc, argv));
}

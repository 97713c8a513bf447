#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "daemon.h"
#include "log.h"

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
	/* The daemon stays in the foreground: systemd and the init script do the rest. */
	return daemon_run(g->config_path);
}

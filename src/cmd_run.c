#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "commands.h"
#include "daemon.h"

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
	/* The daemon stays in the foreground: systemd and the init script do the rest. */
	return daemon_run(g->config_path);
}

/* The subcommands; each returns an exit status. */
#ifndef ALERTMAIL_COMMANDS_H
#define ALERTMAIL_COMMANDS_H

#include <stddef.h>

enum exit_status {
	EXIT_OK = 0,
	EXIT_FAILURE_RUNTIME = 1, /* delivery or runtime failure */
	EXIT_USAGE = 2,           /* usage, config or input error */
};

struct globals {
	const char *config_path; /* resolved: -c, $ALERTMAIL_CONFIG or the default */
	int verbosity;
};

struct config;
struct buf;
struct err;
/* Loads the config, printing every error and warning; NULL on failure. */
struct config *commands_load_config(const struct globals *g, unsigned flags);
/* Reads an alert file whole (path NULL: standard input; name for messages), refusing more
 * than max bytes (max_alert_size), as submit reads it. */
int commands_read_input(const char *path, const char *name, size_t max, struct buf *out,
                        struct err *e);

int cmd_run(const struct globals *g, int argc, char **argv);
int cmd_submit(const struct globals *g, int argc, char **argv);
int cmd_route(const struct globals *g, int argc, char **argv);
int cmd_queue(const struct globals *g, int argc, char **argv);
int cmd_retry(const struct globals *g, int argc, char **argv);
int cmd_test(const struct globals *g, int argc, char **argv);
int cmd_check(const struct globals *g, int argc, char **argv);
int cmd_secret(const struct globals *g, int argc, char **argv);
int cmd_version(const struct globals *g, int argc, char **argv);

#endif

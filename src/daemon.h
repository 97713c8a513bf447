/* The daemon: one event loop that takes alerts from the spool and delivers them. */
#ifndef ALERTMAIL_DAEMON_H
#define ALERTMAIL_DAEMON_H

/* Runs until SIGTERM or SIGINT; returns the exit status (0 after a clean stop). The config is
 * read from config_path, and read again on SIGHUP. */
int daemon_run(const char *config_path);

#endif

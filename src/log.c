#include "config.h"

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_ident = "alertmail";
static int log_level = 1;
static bool log_syslog;
static bool log_timestamps;

void log_set_timestamps(bool on)
{
	log_timestamps = on;
}

void log_init(const char *ident, int verbosity, bool use_syslog)
{
	log_ident = ident;
	log_level = verbosity;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(ident, LOG_PID, LOG_MAIL);
}

static int threshold(void)
{
	switch (log_level) {
	case 0:
		return LOG_ERR;
	case 1:
		return LOG_NOTICE;
	case 2:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

void log_msg(int priority, const char *subsystem, const char *fmt, ...)
{
	char line[2048];
	const char *text = line;
	size_t sublen = strlen(subsystem);
	va_list ap;

	if (priority > threshold())
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Module errors name their module ("spool: ..."): logged under it, once is enough. */
	if (strncmp(line, subsystem, sublen) == 0 && line[sublen] == ':' && line[sublen + 1] == ' ')
		text += sublen + 2;
	if (log_syslog)
		syslog(priority, "%s: %s", subsystem, text);
	else if (log_timestamps) {
		char when[32];
		time_t now = time(NULL);
		struct tm tm;
		if (localtime_r(&now, &tm) == NULL ||
		    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm) == 0)
			snprintf(when, sizeof(when), "@%lld", (long long)now);
		fprintf(stderr, "%s %s: %s: %s\n", when, log_ident, subsystem, text);
	} else {
		fprintf(stderr, "%s: %s: %s\n", log_ident, subsystem, text);
	}
}

/* One alert: a YAML/JSON mapping with well-known fields, kept whole for templates. */
#ifndef ALERTMAIL_ALERT_H
#define ALERTMAIL_ALERT_H

#include <stddef.h>
#include <time.h>

#include "err.h"
#include "yamltree.h"

/* The default of max_alert_size, the largest alert file taken into the spool or delivered. */
#define ALERT_MAX_SIZE ((size_t)1 << 20)
/* The longest id, in bytes: it is in every log line and reason about the alert. */
#define ALERT_ID_MAX 256

struct alert {
	struct ynode *tree; /* the whole mapping, for templates */
	char *id;           /* given, or generated */
	char *channel;      /* NULL: routes or default_channel decide */
	char *title;
	char *severity;
	char *source;
	char *description;
	char *status;
	time_t time;    /* when it was raised */
	char *time_str; /* ISO 8601, as given or made from time */
};

/* Takes ownership of tree (a mapping); name is for error positions. arrival is used when the
 * alert has no time. */
int alert_from_tree(struct ynode *tree, const char *name, time_t arrival, struct alert **out,
                    struct err *e);
int alert_parse(const char *data, size_t len, const char *name, time_t arrival, struct alert **out,
                struct err *e);
/* Applies the rules of one well-known field to its value in tree (a mapping): the strings
 * (id, channel, title, severity, source, description, status, time) are scalars without NUL
 * bytes, the id one line of at most ALERT_ID_MAX bytes, the time ISO 8601, labels a mapping.
 * Absent and null values, and other keys, pass. Returns 0, or -1 with e set. */
int alert_check_field(const struct ynode *tree, const char *key, const char *name, struct err *e);
void alert_free(struct alert *a);

/* A fresh unique id: UTC time and random bits, e.g. 20261125T074559Z-1f3a9c0b2d4e6f70. */
char *alert_new_id(time_t now);
/* Parses ISO 8601 date-times: 2026-11-25T07:45:59Z, with +hh:mm offsets, fractions, or a space
 * instead of T. Returns 0 and the UTC time, or -1. */
int alert_parse_time(const char *s, time_t *out);

/* The data templates see: the alert, plus id, time, channel, label_list ([{key, value}]),
 * severity_is (severity -> true) and alertmail.{hostname, version}. */
struct ynode *alert_template_data(const struct alert *a, const char *channel);

#endif

#include "config.h"

#include "alert.h"

#include <ctype.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "charset.h"
#include "conf.h"
#include "json.h"

/* Exactly n digits at p, as a number; -1 if any is not a digit (the string's end included). */
static int digits(const char *p, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static int days_in_month(int year, int mon)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return mon == 2 && leap ? 29 : days[mon - 1];
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static long days_from_civil(long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

/* A zone after the time: Z, +hh:mm, +hhmm or nothing (UTC). Sets the offset east of UTC in
 * seconds; returns the rest of the string, or NULL. */
static const char *parse_zone(const char *p, int *off)
{
	int sign, oh, om;

	*off = 0;
	if (*p == 'Z' || *p == 'z')
		return p + 1;
	/* Without a zone the time is taken as UTC: alerts from machines should carry a zone. */
	if (*p != '+' && *p != '-')
		return p;
	sign = *p == '-' ? -1 : 1;
	oh = digits(p + 1, 2);
	if (oh < 0 || oh > 23)
		return NULL;
	p += 3;
	if (*p == ':')
		p++;
	om = digits(p, 2);
	if (om < 0 || om > 59)
		return NULL;
	*off = sign * (oh * 3600 + om * 60);
	return p + 2;
}

int alert_parse_time(const char *s, time_t *out)
{
	int year, mon, day, hour, min, sec = 0, off;
	const char *p = s;

	/* Each check runs only when the ones before it found characters up to its position,
	 * so that nothing is read past the string's end. */
	year = digits(p, 4);
	if (year < 0 || p[4] != '-')
		return -1;
	mon = digits(p + 5, 2);
	if (mon < 1 || mon > 12 || p[7] != '-')
		return -1;
	day = digits(p + 8, 2);
	if (day < 1 || day > days_in_month(year, mon))
		return -1;
	if (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
		return -1;
	hour = digits(p + 11, 2);
	if (hour < 0 || hour > 23 || p[13] != ':')
		return -1;
	min = digits(p + 14, 2);
	if (min < 0 || min > 59)
		return -1;
	p += 16;
	if (*p == ':') {
		/* 60: a leap second. */
		sec = digits(p + 1, 2);
		if (sec < 0 || sec > 60)
			return -1;
		p += 3;
		if (*p == '.' || *p == ',') {
			p++;
			if (!isdigit((unsigned char)*p))
				return -1;
			while (isdigit((unsigned char)*p))
				p++;
		}
	}
	p = parse_zone(p, &off);
	if (p == NULL || *p != '\0')
		return -1;
	/* In time_t before multiplying: a long may be 32 bits. */
	*out = (time_t)days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400 +
	       (time_t)hour * 3600 + (time_t)min * 60 + sec - off;
	return 0;
}

static char *format_time(time_t t)
{
	struct tm tm;
	char s[32];

	if (gmtime_r(&t, &tm) == NULL || strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(s, sizeof(s), "@%lld", (long long)t);
	return xstrdup(s);
}

char *alert_new_id(time_t now)
{
	unsigned char r[8];
	struct tm tm;
	char ts[32];

	if (RAND_bytes(r, sizeof(r)) != 1) {
		/* Uniqueness, not secrecy, is what matters here. */
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(random() >> 8);
	}
	if (gmtime_r(&now, &tm) == NULL || strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm) == 0)
		snprintf(ts, sizeof(ts), "%lld", (long long)now);
	return xasprintf("%s-%02x%02x%02x%02x%02x%02x%02x%02x", ts, r[0], r[1], r[2], r[3], r[4],
	                 r[5], r[6], r[7]);
}

/* The well-known fields that are strings; labels is the other one. */
static const char *const string_fields[] = {"id",     "channel",     "title",  "severity",
                                            "source", "description", "status", "time"};

static bool is_string_field(const char *key)
{
	for (size_t i = 0; i < sizeof(string_fields) / sizeof(string_fields[0]); i++)
		if (strcmp(key, string_fields[i]) == 0)
			return true;
	return false;
}

/* An id is one line of text, short enough for a log line and a file of reasons. */
static int check_id(const struct ynode *n, const char *name, struct err *e)
{
	const unsigned char *s = (const unsigned char *)n->str;
	size_t i = 0, adv;

	if (n->len > ALERT_ID_MAX) {
		err_set(e, "%s:%u:%u: 'id' is %zu bytes long, more than the limit of %d", name,
		        n->line, n->column, n->len, ALERT_ID_MAX);
		return -1;
	}
	while (i < n->len) {
		long cp = charset_utf8_decode(s + i, n->len - i, &adv);
		char what[48];

		if (cp < 0)
			snprintf(what, sizeof(what), "a byte that is not UTF-8 (0x%02x", s[i]);
		else if (charset_is_control(cp))
			snprintf(what, sizeof(what), "a control character (U+%04lX", cp);
		else
			what[0] = '\0';
		if (what[0] != '\0') {
			err_set(
			    e, "%s:%u:%u: 'id' contains %s at byte %zu): an id is one line of text",
			    name, n->line, n->column, what, i + 1);
			return -1;
		}
		i += adv;
	}
	return 0;
}

int alert_check_field(const struct ynode *tree, const char *key, const char *name, struct err *e)
{
	const struct ynode *n = ynode_get(tree, key);
	time_t t;

	if (n == NULL || ynode_is_null(n))
		return 0;
	if (strcmp(key, "labels") == 0) {
		if (n->kind != YNODE_MAP) {
			err_set(e, "%s:%u:%u: 'labels' must be a mapping of names to values", name,
			        n->line, n->column);
			return -1;
		}
		return 0;
	}
	if (!is_string_field(key))
		return 0;
	if (n->kind != YNODE_SCALAR) {
		err_set(e, "%s:%u:%u: '%s' must be a string, not a %s", name, n->line, n->column,
		        key, ynode_kind_name(n->kind));
		return -1;
	}
	if (strlen(n->str) != n->len) {
		err_set(e, "%s:%u:%u: '%s' contains a NUL byte", name, n->line, n->column, key);
		return -1;
	}
	if (strcmp(key, "id") == 0)
		return check_id(n, name, e);
	if (strcmp(key, "time") == 0 && alert_parse_time(n->str, &t) < 0) {
		err_set(e,
		        "%s:%u:%u: time: expected an ISO 8601 date and time such as "
		        "2026-11-25T07:45:00Z, got '%s'",
		        name, n->line, n->column, n->str);
		return -1;
	}
	return 0;
}

/* A checked string field, copied; NULL when absent or null. */
static char *string_field(const struct ynode *tree, const char *key)
{
	const struct ynode *n = ynode_get(tree, key);

	return n == NULL || ynode_is_null(n) ? NULL : xstrdup(n->str);
}

/* The first key in n whose JSON form is too long to be read back, or NULL. An alert that
 * alertmail submit changes is stored as JSON, and the daemon must be able to read it. */
/* NOLINTNEXTLINE(misc-no-recursion): a tree is YTREE_MAX_DEPTH deep at most */
static const struct ynode *long_key(const struct ynode *n)
{
	for (size_t i = 0; i < n->count; i++) {
		const struct ynode *k;

		if (n->kind == YNODE_MAP &&
		    json_string_chars(n->keys[i]->str, n->keys[i]->len) > JSON_KEY_MAX)
			return n->keys[i];
		k = long_key(n->values[i]);
		if (k != NULL)
			return k;
	}
	return NULL;
}

int alert_from_tree(struct ynode *tree, const char *name, time_t arrival, struct alert **out,
                    struct err *e)
{
	struct alert *a = xcalloc(1, sizeof(*a));
	const struct ynode *key;

	*out = NULL;
	a->tree = tree;
	if (tree->kind != YNODE_MAP) {
		err_set(e, "%s:%u:%u: an alert must be a mapping of fields, not a %s", name,
		        tree->line, tree->column, ynode_kind_name(tree->kind));
		goto fail;
	}
	key = long_key(tree);
	if (key != NULL) {
		err_set(e,
		        "%s:%u:%u: a key longer than %d characters as JSON, quotes and escapes "
		        "included (YAML's limit for keys)",
		        name, key->line, key->column, JSON_KEY_MAX);
		goto fail;
	}
	for (size_t i = 0; i < sizeof(string_fields) / sizeof(string_fields[0]); i++)
		if (alert_check_field(tree, string_fields[i], name, e) < 0)
			goto fail;
	if (alert_check_field(tree, "labels", name, e) < 0)
		goto fail;
	a->id = string_field(tree, "id");
	a->channel = string_field(tree, "channel");
	a->title = string_field(tree, "title");
	a->severity = string_field(tree, "severity");
	a->source = string_field(tree, "source");
	a->description = string_field(tree, "description");
	a->status = string_field(tree, "status");
	a->time_str = string_field(tree, "time");
	if (a->id != NULL && a->id[0] == '\0') {
		free(a->id);
		a->id = NULL;
	}
	if (a->id == NULL)
		a->id = alert_new_id(arrival);
	if (a->time_str != NULL) {
		alert_parse_time(a->time_str, &a->time);
	} else {
		a->time = arrival;
		a->time_str = format_time(arrival);
	}
	*out = a;
	return 0;
fail:
	alert_free(a);
	return -1;
}

int alert_parse(const char *data, size_t len, const char *name, time_t arrival, struct alert **out,
                struct err *e)
{
	struct ynode *tree;

	*out = NULL;
	if (ytree_parse(data, len, name, &tree, e) < 0)
		return -1;
	return alert_from_tree(tree, name, arrival, out, e);
}

void alert_free(struct alert *a)
{
	if (a == NULL)
		return;
	ynode_free(a->tree);
	free(a->id);
	free(a->channel);
	free(a->title);
	free(a->severity);
	free(a->source);
	free(a->description);
	free(a->status);
	free(a->time_str);
	free(a);
}

static struct ynode *str_node(const char *s)
{
	return ynode_new_scalar(s, strlen(s), false);
}

struct ynode *alert_template_data(const struct alert *a, const char *channel)
{
	struct ynode *d = ynode_copy(a->tree);
	const struct ynode *labels = ynode_get(a->tree, "labels");
	struct ynode *list = ynode_new_seq();
	struct ynode *am = ynode_new_map();

	ynode_map_set(d, "id", str_node(a->id));
	ynode_map_set(d, "time", str_node(a->time_str));
	/* A YAML block scalar ends with a line break; templates put their own after it. */
	if (a->description != NULL) {
		size_t n = strlen(a->description);
		while (n > 0 && (a->description[n - 1] == '\n' || a->description[n - 1] == '\r'))
			n--;
		ynode_map_set(d, "description", ynode_new_scalar(a->description, n, false));
	}
	if (channel != NULL)
		ynode_map_set(d, "channel", str_node(channel));
	if (labels != NULL && labels->kind == YNODE_MAP) {
		for (size_t i = 0; i < labels->count; i++) {
			struct ynode *kv = ynode_new_map();
			ynode_map_set(kv, "key", ynode_copy(labels->keys[i]));
			ynode_map_set(kv, "value", ynode_copy(labels->values[i]));
			ynode_seq_add(list, kv);
		}
	}
	ynode_map_set(d, "label_list", list);
	if (a->severity != NULL && a->severity[0] != '\0') {
		struct ynode *is = ynode_new_map();
		ynode_map_set(is, a->severity, ynode_new_scalar("true", 4, true));
		ynode_map_set(d, "severity_is", is);
	}
	ynode_map_set(am, "hostname", str_node(config_host_name()));
	ynode_map_set(am, "version", str_node(PACKAGE_VERSION));
	ynode_map_set(d, "alertmail", am);
	return d;
}

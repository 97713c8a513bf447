/* De-duplication: the text form of the table, written to and read from the state file (see
 * dedup.h for the format). No I/O. */
#include "config.h"

#include "dedup.h"
#include "dedup_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "spool.h"

/* ---- the text form ---- */

static void entry_line(const struct dedup_entry *en, struct buf *out)
{
	char hex[2 * DEDUP_KEY_LEN + 1];

	dedup_key_hex(&en->key, hex);
	buf_printf(out, "k %s %c %lld %lld %lld %lu %lu %lld %016llx %c %s %s %s\n", hex,
	           en->pending ? 'p' : 's', (long long)en->at, (long long)en->seen,
	           (long long)en->expires, en->suppressed, en->carried, (long long)en->carried_at,
	           (unsigned long long)en->severity, en->resolved ? 'r' : 'a', en->qid, en->channel,
	           en->id);
}

void dedup_table_format(struct dedup_table *t, struct buf *out)
{
	buf_printf(out, "%s\n", DEDUP_FILE_HEADER);
	/* Least recently seen first: a load keeps the order, and so the bound's choice. */
	for (struct dedup_entry *en = t->lru_head; en != NULL; en = en->lnext) {
		entry_line(en, out);
		en->written = true;
		dedup_entry_clean(t, en);
	}
	buf_reset(&t->forgets);
	t->nforgets = 0;
}

size_t dedup_table_changes(struct dedup_table *t, struct buf *out)
{
	size_t n = t->nforgets;

	/* Forgetting first: a key forgotten and taken again since is then taken. */
	if (t->forgets.len > 0)
		buf_add(out, t->forgets.data, t->forgets.len);
	buf_reset(&t->forgets);
	t->nforgets = 0;
	while (t->dirty_head != NULL) {
		struct dedup_entry *en = t->dirty_head;
		entry_line(en, out);
		en->written = true;
		dedup_entry_clean(t, en);
		n++;
	}
	return n;
}

/* ---- reading it back ---- */

/* The next field up to a space (or the end of the line); NULL when there is none. */
static const char *field(const char **p, const char *end, size_t *len)
{
	const char *s = *p, *q;

	if (s >= end || *s == ' ')
		return NULL;
	q = memchr(s, ' ', (size_t)(end - s));
	if (q == NULL)
		q = end;
	*len = (size_t)(q - s);
	*p = q < end ? q + 1 : q;
	return s;
}

/* The latest time a record may hold (the year 9999), and the most repeats. */
#define TIME_MAX_MS 253402300799999LL
#define COUNT_MAX 4000000000UL

static bool read_ll(const char **p, const char *end, long long max, long long *out)
{
	size_t len;
	const char *s = field(p, end, &len);
	char tmp[24], *stop;

	if (s == NULL || len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (strspn(tmp, "0123456789") != len)
		return false;
	errno = 0;
	*out = strtoll(tmp, &stop, 10);
	return errno == 0 && *stop == '\0' && *out <= max;
}

static bool read_hex(const char **p, const char *end, unsigned char *out, size_t n)
{
	size_t len;
	const char *s = field(p, end, &len);

	if (s == NULL || len != 2 * n)
		return false;
	for (size_t i = 0; i < 2 * n; i++) {
		const char *d = strchr("0123456789abcdef", s[i]);
		if (s[i] == '\0' || d == NULL)
			return false;
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)((d - "0123456789abcdef") << 4);
		else
			out[i / 2] |= (unsigned char)(d - "0123456789abcdef");
	}
	return true;
}

static bool read_flag(const char **p, const char *end, const char *two, bool *out)
{
	size_t len;
	const char *s = field(p, end, &len);

	if (s == NULL || len != 1 || (s[0] != two[0] && s[0] != two[1]))
		return false;
	*out = s[0] == two[0];
	return true;
}

static bool all_in(const char *s, size_t len, const char *set)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\0' || strchr(set, s[i]) == NULL)
			return false;
	return true;
}

/* One k line (after "k "), into a fresh entry; NULL and *why when it is not one. */
static struct dedup_entry *parse_k(const char *p, const char *end, const char **why)
{
	struct dedup_entry en, *out;
	long long at, seen, expires, supp, carried, carried_at;
	unsigned char sev[8];
	const char *s;
	size_t len;

	memset(&en, 0, sizeof(en));
	*why = "a field is missing or malformed";
	if (!read_hex(&p, end, en.key.h, DEDUP_KEY_LEN) || !read_flag(&p, end, "ps", &en.pending) ||
	    !read_ll(&p, end, TIME_MAX_MS, &at) || !read_ll(&p, end, TIME_MAX_MS, &seen) ||
	    !read_ll(&p, end, TIME_MAX_MS, &expires) || !read_ll(&p, end, COUNT_MAX, &supp) ||
	    !read_ll(&p, end, COUNT_MAX, &carried) || !read_ll(&p, end, TIME_MAX_MS, &carried_at) ||
	    !read_hex(&p, end, sev, sizeof(sev)) || !read_flag(&p, end, "ra", &en.resolved))
		return NULL;
	s = field(&p, end, &len);
	if (s == NULL || len >= SPOOL_QID_MAX || !all_in(s, len, "0123456789.")) {
		*why = "not a queue id";
		return NULL;
	}
	memcpy(en.qid, s, len);
	s = field(&p, end, &len);
	if (s == NULL || len > DEDUP_CHANNEL_MAX ||
	    !all_in(s, len, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")) {
		*why = "not a channel name";
		return NULL;
	}
	en.channel = xstrndup(s, len);
	/* The id: the rest of the line, one line of text as alert ids are. */
	len = (size_t)(end - p);
	en.id = xstrndup(p, len);
	if (len == 0 || len > ALERT_ID_MAX || strlen(en.id) != len || !charset_utf8_valid(en.id)) {
		*why = "not an alert id";
		free(en.channel);
		free(en.id);
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)en.id[i] < 0x20 || en.id[i] == 0x7f) {
			*why = "not an alert id";
			free(en.channel);
			free(en.id);
			return NULL;
		}
	}
	en.at = at;
	en.seen = seen;
	en.expires = expires;
	en.suppressed = (unsigned long)supp;
	en.carried = (unsigned long)carried;
	en.carried_at = carried_at;
	for (int i = 0; i < 8; i++)
		en.severity = (en.severity << 8) | sev[i];
	en.written = true;
	out = xmalloc(sizeof(*out));
	*out = en;
	return out;
}

static void bad_line(struct dedup_load *r, unsigned line, const char *why)
{
	if (r->bad++ == 0) {
		r->first_bad_line = line;
		snprintf(r->first_bad, sizeof(r->first_bad), "%s", why);
	}
}

/* One line of the file; false when it is not a record. */
static bool load_line(struct dedup_table *t, const char *p, const char *end, const char **why)
{
	struct dedup_key k = {{0}};
	struct dedup_entry *en, *old;

	if (end - p >= 2 && p[0] == 'f' && p[1] == ' ') {
		p += 2;
		if (!read_hex(&p, end, k.h, DEDUP_KEY_LEN) || p != end) {
			*why = "a malformed f line";
			return false;
		}
		old = dedup_entry_find(t, &k);
		if (old != NULL)
			dedup_entry_remove(t, old);
		return true;
	}
	if (end - p < 2 || p[0] != 'k' || p[1] != ' ') {
		*why = "neither a k nor an f line";
		return false;
	}
	en = parse_k(p + 2, end, why);
	if (en == NULL)
		return false;
	old = dedup_entry_find(t, &en->key);
	if (old != NULL)
		dedup_entry_remove(t, old);
	/* Unbounded while loading: the bound is applied once all is read, by last repeat. */
	dedup_entry_insert(t, en);
	return true;
}

static int by_seen(const void *a, const void *b)
{
	const struct dedup_entry *x = *(const struct dedup_entry *const *)a;
	const struct dedup_entry *y = *(const struct dedup_entry *const *)b;

	return x->seen < y->seen ? -1 : x->seen > y->seen;
}

/* The least recently seen first, as the bound wants them; beyond max, the least recently seen
 * are dropped. Returns how many. */
static size_t lru_sort(struct dedup_table *t)
{
	struct dedup_entry **v;
	size_t n = 0, drop;

	if (t->count == 0)
		return 0;
	v = xcalloc(t->count, sizeof(struct dedup_entry *));
	for (struct dedup_entry *en = t->lru_head; en != NULL && n < t->count; en = en->lnext)
		v[n++] = en;
	/* Equal times keep no order that matters. */
	qsort(v, n, sizeof(struct dedup_entry *), by_seen);
	t->lru_head = t->lru_tail = NULL;
	for (size_t i = 0; i < n; i++)
		dedup_lru_append(t, v[i]);
	drop = n > t->max ? n - t->max : 0;
	for (size_t i = 0; i < drop; i++)
		dedup_entry_remove(t, v[i]);
	free(v);
	return drop;
}

void dedup_table_load(struct dedup_table *t, const char *text, size_t len, int64_t now,
                      int64_t stale_ms, struct dedup_load *r)
{
	const char *p = text, *end = text + len;
	unsigned line = 0;

	memset(r, 0, sizeof(*r));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *why = NULL;
		line++;
		if (nl == NULL) {
			/* A last line without its line break was being written when the writer
			 * stopped: it is not taken, whatever it looks like. */
			bad_line(r, line, "the last line is cut short");
			break;
		}
		if (line == 1) {
			if ((size_t)(nl - p) != strlen(DEDUP_FILE_HEADER) ||
			    memcmp(p, DEDUP_FILE_HEADER, (size_t)(nl - p)) != 0) {
				r->bad_header = true;
				bad_line(r, line, "not the header '" DEDUP_FILE_HEADER "'");
				/* A line that looks like a record is still taken below. */
				if (nl - p < 2 || (p[0] != 'k' && p[0] != 'f') || p[1] != ' ') {
					p = nl + 1;
					continue;
				}
			} else {
				p = nl + 1;
				continue;
			}
		}
		if (nl - p > DEDUP_LINE_MAX)
			bad_line(r, line, "a line longer than 1024 bytes");
		else if (!load_line(t, p, nl, &why))
			bad_line(r, line, why);
		else
			r->lines++;
		p = nl + 1;
	}
	r->expired = dedup_table_prune(t, now, stale_ms);
	r->dropped = lru_sort(t);
	/* What was read is in the file; only what changes from here is written. */
	buf_reset(&t->forgets);
	t->nforgets = 0;
}

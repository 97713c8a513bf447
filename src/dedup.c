/* De-duplication: keys, decisions, the table of keys and its text form. No I/O. */
#include "config.h"

#include "dedup.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "charset.h"
#include "spool.h"
#include "yamltree.h"

struct dedup_entry {
	struct dedup_key key;
	bool pending;  /* its alert is on its way (else: delivered at `at`) */
	bool resolved; /* its alert was a resolution */
	bool dirty;    /* changed since its last line was written */
	bool written;  /* a line about it is in the file: removing it needs an f line */
	int64_t at;    /* taken (pending), or delivered (wall ms) */
	int64_t seen;  /* its last repeat, or `at` */
	int64_t expires;
	unsigned long suppressed; /* repeats not sent since its alert */
	unsigned long carried;    /* what its alert's template was given */
	int64_t carried_at;
	uint64_t severity;
	char qid[SPOOL_QID_MAX];
	char *channel;
	char *id;
	struct dedup_entry *hnext;         /* hash chain */
	struct dedup_entry *lprev, *lnext; /* least recently seen first */
	struct dedup_entry *dprev, *dnext; /* changed since the last write */
};

struct dedup_table {
	struct dedup_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count, max;
	struct dedup_entry *lru_head, *lru_tail;
	struct dedup_entry *dirty_head;
	struct buf forgets; /* f lines not written yet */
	size_t nforgets;
	unsigned long evicted;
};

/* ---- keys ---- */

const char *dedup_field_check(const char *path)
{
	size_t len = strlen(path), seg = 0, depth = 1;

	if (len == 0)
		return "an empty field name";
	if (len > DEDUP_FIELD_MAX)
		return "a field path longer than 256 characters";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c == '.') {
			if (seg == 0)
				return "an empty name between dots (write labels.team)";
			seg = 0;
			depth++;
			continue;
		}
		if (!(charset_is_alnum(c) || c == '_' || c == '-'))
			return "a field name is made of letters, digits, '_' and '-', nested ones "
			       "joined by dots (labels.team)";
		seg++;
	}
	if (seg == 0)
		return "an empty name between dots (write labels.team)";
	if (depth > YTREE_MAX_DEPTH)
		return "more nested names than an alert may have (64)";
	return NULL;
}

static void hash_add(EVP_MD_CTX *ctx, const void *p, size_t n)
{
	unsigned char len[8];

	/* Each part with its length: no two lists of values give the same input. */
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)n >> (8 * i));
	if (EVP_DigestUpdate(ctx, len, sizeof(len)) != 1 || EVP_DigestUpdate(ctx, p, n) != 1)
		abort(); /* only without memory, as in xmalloc */
}

static EVP_MD_CTX *hash_begin(const char *what)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		abort(); /* only without memory, as in xmalloc */
	hash_add(ctx, what, strlen(what));
	return ctx;
}

static void hash_end(EVP_MD_CTX *ctx, unsigned char *out, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen < n)
		abort(); /* SHA-256 does not fail */
	memcpy(out, md, n);
	EVP_MD_CTX_free(ctx);
}

static uint64_t severity_hash(const char *s)
{
	EVP_MD_CTX *ctx = hash_begin("alertmail dedup severity");
	unsigned char h[8];
	uint64_t v = 0;

	hash_add(ctx, s, strlen(s));
	hash_end(ctx, h, sizeof(h));
	for (int i = 0; i < 8; i++)
		v = (v << 8) | h[i];
	return v;
}

int dedup_alert_make(const struct alert *a, const char *channel, char *const *fields,
                     size_t nfields, const char *qid, struct dedup_alert *out, const char **missing)
{
	EVP_MD_CTX *ctx;

	memset(out, 0, sizeof(*out));
	*missing = NULL;
	for (size_t i = 0; i < nfields; i++) {
		const struct ynode *v = ynode_path(a->tree, fields[i]);
		if (v == NULL || v->kind != YNODE_SCALAR || ynode_is_null(v)) {
			*missing = fields[i];
			return -1;
		}
	}
	ctx = hash_begin("alertmail dedup key");
	hash_add(ctx, channel, strlen(channel));
	for (size_t i = 0; i < nfields; i++) {
		const struct ynode *v = ynode_path(a->tree, fields[i]);
		hash_add(ctx, fields[i], strlen(fields[i]));
		hash_add(ctx, v->str, v->len);
	}
	hash_end(ctx, out->key.h, DEDUP_KEY_LEN);
	out->severity = severity_hash(a->severity != NULL ? a->severity : "");
	out->resolved = a->status != NULL && strcasecmp(a->status, "resolved") == 0;
	out->id = a->id;
	out->qid = qid;
	out->channel = channel;
	return 0;
}

/* ---- the table ---- */

static size_t bucket_of(const struct dedup_table *t, const struct dedup_key *k)
{
	uint64_t v = 14695981039346656037ULL;

	/* Keys are SHA-256 already; folding every byte keeps the table even for any others. */
	for (size_t i = 0; i < DEDUP_KEY_LEN; i++)
		v = (v ^ k->h[i]) * 1099511628211ULL;
	return (size_t)(v ^ (v >> 32)) & (t->nbuckets - 1);
}

struct dedup_table *dedup_table_new(size_t max_keys)
{
	struct dedup_table *t = xcalloc(1, sizeof(*t));

	t->max = max_keys > 0 ? max_keys : 1;
	t->nbuckets = 256;
	t->buckets = xcalloc(t->nbuckets, sizeof(struct dedup_entry *));
	buf_init(&t->forgets);
	return t;
}

static void entry_free(struct dedup_entry *en)
{
	free(en->channel);
	free(en->id);
	free(en);
}

void dedup_table_free(struct dedup_table *t)
{
	if (t == NULL)
		return;
	while (t->lru_head != NULL) {
		struct dedup_entry *en = t->lru_head;
		t->lru_head = en->lnext;
		entry_free(en);
	}
	free(t->buckets);
	buf_free(&t->forgets);
	free(t);
}

size_t dedup_table_count(const struct dedup_table *t)
{
	return t->count;
}

size_t dedup_table_pending(const struct dedup_table *t)
{
	size_t n = 0;

	for (const struct dedup_entry *en = t->lru_head; en != NULL; en = en->lnext)
		n += en->pending;
	return n;
}

unsigned long dedup_table_evicted(const struct dedup_table *t)
{
	return t->evicted;
}

bool dedup_table_dirty(const struct dedup_table *t)
{
	return t->dirty_head != NULL || t->nforgets > 0;
}

static struct dedup_entry *find(const struct dedup_table *t, const struct dedup_key *k)
{
	for (struct dedup_entry *en = t->buckets[bucket_of(t, k)]; en != NULL; en = en->hnext)
		if (memcmp(en->key.h, k->h, DEDUP_KEY_LEN) == 0)
			return en;
	return NULL;
}

static void lru_unlink(struct dedup_table *t, struct dedup_entry *en)
{
	if (en->lprev != NULL)
		en->lprev->lnext = en->lnext;
	else
		t->lru_head = en->lnext;
	if (en->lnext != NULL)
		en->lnext->lprev = en->lprev;
	else
		t->lru_tail = en->lprev;
	en->lprev = en->lnext = NULL;
}

static void lru_append(struct dedup_table *t, struct dedup_entry *en)
{
	en->lprev = t->lru_tail;
	en->lnext = NULL;
	if (t->lru_tail != NULL)
		t->lru_tail->lnext = en;
	else
		t->lru_head = en;
	t->lru_tail = en;
}

static void mark_dirty(struct dedup_table *t, struct dedup_entry *en)
{
	if (en->dirty)
		return;
	en->dirty = true;
	en->dprev = NULL;
	en->dnext = t->dirty_head;
	if (t->dirty_head != NULL)
		t->dirty_head->dprev = en;
	t->dirty_head = en;
}

static void mark_clean(struct dedup_table *t, struct dedup_entry *en)
{
	if (!en->dirty)
		return;
	if (en->dprev != NULL)
		en->dprev->dnext = en->dnext;
	else
		t->dirty_head = en->dnext;
	if (en->dnext != NULL)
		en->dnext->dprev = en->dprev;
	en->dirty = false;
	en->dprev = en->dnext = NULL;
}

static void key_hex(const struct dedup_key *k, char out[2 * DEDUP_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < DEDUP_KEY_LEN; i++) {
		out[2 * i] = hex[k->h[i] >> 4];
		out[2 * i + 1] = hex[k->h[i] & 15];
	}
	out[(size_t)2 * DEDUP_KEY_LEN] = '\0';
}

/* Takes en out of the table and frees it; the file learns of it by an f line. */
static void entry_remove(struct dedup_table *t, struct dedup_entry *en)
{
	struct dedup_entry **pp = &t->buckets[bucket_of(t, &en->key)];

	while (*pp != en)
		pp = &(*pp)->hnext;
	*pp = en->hnext;
	lru_unlink(t, en);
	mark_clean(t, en);
	if (en->written) {
		char hex[2 * DEDUP_KEY_LEN + 1];
		key_hex(&en->key, hex);
		buf_printf(&t->forgets, "f %s\n", hex);
		t->nforgets++;
	}
	t->count--;
	entry_free(en);
}

static void grow(struct dedup_table *t)
{
	size_t old_n = t->nbuckets;
	struct dedup_entry **old = t->buckets;

	t->nbuckets *= 2;
	t->buckets = xcalloc(t->nbuckets, sizeof(struct dedup_entry *));
	for (size_t i = 0; i < old_n; i++) {
		while (old[i] != NULL) {
			struct dedup_entry *en = old[i];
			size_t b = bucket_of(t, &en->key);
			old[i] = en->hnext;
			en->hnext = t->buckets[b];
			t->buckets[b] = en;
		}
	}
	free(old);
}

/* A new key, the most recently seen; at the bound, the least recently seen key goes. */
static struct dedup_entry *entry_add(struct dedup_table *t, const struct dedup_key *k,
                                     const char *channel, const char *id)
{
	struct dedup_entry *en = xcalloc(1, sizeof(*en));
	size_t b;

	while (t->count >= t->max && t->lru_head != NULL) {
		entry_remove(t, t->lru_head);
		t->evicted++;
	}
	if (t->count >= t->nbuckets / 2)
		grow(t);
	en->key = *k;
	/* xstrndup copies n bytes whatever the string's length. */
	en->channel = xstrndup(channel, strnlen(channel, DEDUP_CHANNEL_MAX));
	en->id = xstrdup(id);
	b = bucket_of(t, k);
	en->hnext = t->buckets[b];
	t->buckets[b] = en;
	lru_append(t, en);
	t->count++;
	return en;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* The key now points to a's spool entry, on its way. */
static void entry_take(struct dedup_entry *en, const struct dedup_alert *a, int64_t window_ms,
                       int64_t now)
{
	en->pending = true;
	en->resolved = a->resolved;
	en->severity = a->severity;
	en->at = now;
	en->seen = now;
	en->expires = now + window_ms;
	en->suppressed = 0;
	snprintf(en->qid, sizeof(en->qid), "%s", a->qid);
	if (strcmp(en->id, a->id) != 0) {
		free(en->id);
		en->id = xstrdup(a->id);
	}
}

void dedup_decide(struct dedup_table *t, const struct dedup_alert *a, int64_t window_ms,
                  int64_t now, struct dedup_decision *out)
{
	struct dedup_entry *en = find(t, &a->key);

	memset(out, 0, sizeof(*out));
	if (en == NULL) {
		en = entry_add(t, &a->key, a->channel, a->id);
		entry_take(en, a, window_ms, now);
		en->carried = 0;
		en->carried_at = 0;
		out->why = DEDUP_NEW;
		mark_dirty(t, en);
		return;
	}
	lru_unlink(t, en);
	lru_append(t, en);
	snprintf(out->previous_id, sizeof(out->previous_id), "%s", en->id);
	if (strcmp(en->qid, a->qid) == 0) {
		/* This spool entry was decided about before: it is the key's alert. */
		if (en->pending) {
			out->why = DEDUP_AGAIN;
			out->suppressed = en->carried;
			out->previous_at = en->carried_at;
			return;
		}
		out->why = DEDUP_DUP_DELIVERED;
		out->duplicate = true;
		out->previous_at = en->at;
		return;
	}
	/* A clock set back must not stretch the window. */
	if (en->at > now)
		en->at = now;
	if (a->resolved != en->resolved)
		out->why = a->resolved ? DEDUP_RESOLVED : DEDUP_REFIRED;
	else if (a->severity != en->severity)
		out->why = DEDUP_SEVERITY;
	else if (en->pending)
		out->why = DEDUP_DUP_PENDING;
	else if (now - en->at < window_ms)
		out->why = DEDUP_DUP_SENT;
	else
		out->why = DEDUP_EXPIRED;
	out->previous_at = en->at;
	if (out->why == DEDUP_DUP_PENDING || out->why == DEDUP_DUP_SENT) {
		out->duplicate = true;
		en->suppressed++;
		en->seen = now;
		en->expires = max64(en->expires, now + window_ms);
		out->suppressed = en->suppressed;
		mark_dirty(t, en);
		return;
	}
	out->suppressed = en->suppressed;
	en->carried = en->suppressed;
	en->carried_at = en->at;
	entry_take(en, a, window_ms, now);
	mark_dirty(t, en);
}

void dedup_sent(struct dedup_table *t, const struct dedup_key *k, const char *qid,
                int64_t window_ms, int64_t now)
{
	struct dedup_entry *en = find(t, k);

	if (en == NULL || !en->pending || strcmp(en->qid, qid) != 0)
		return;
	en->pending = false;
	en->at = now;
	en->expires = max64(en->expires, now + window_ms);
	mark_dirty(t, en);
}

void dedup_forget(struct dedup_table *t, const struct dedup_key *k, const char *qid)
{
	struct dedup_entry *en = find(t, k);

	if (en != NULL && strcmp(en->qid, qid) == 0)
		entry_remove(t, en);
}

static bool entry_over(const struct dedup_entry *en, int64_t now, int64_t stale_ms)
{
	if (en->pending)
		return now - en->at >= stale_ms;
	return now >= en->expires;
}

size_t dedup_table_prune(struct dedup_table *t, int64_t now, int64_t stale_ms)
{
	size_t n = 0;
	struct dedup_entry *en = t->lru_head;

	while (en != NULL) {
		struct dedup_entry *next = en->lnext;
		if (entry_over(en, now, stale_ms)) {
			entry_remove(t, en);
			n++;
		}
		en = next;
	}
	return n;
}

void dedup_table_settle(struct dedup_table *t, enum dedup_fate (*fn)(void *ctx, const char *qid),
                        void *ctx)
{
	struct dedup_entry *en = t->lru_head;

	while (en != NULL) {
		struct dedup_entry *next = en->lnext;
		if (en->pending) {
			switch (fn(ctx, en->qid)) {
			case DEDUP_FATE_PENDING:
				break;
			case DEDUP_FATE_DELIVERED:
				/* When exactly is not known: from when it was taken, the earliest,
				 * so that the window rather ends too soon than too late. */
				en->pending = false;
				mark_dirty(t, en);
				break;
			case DEDUP_FATE_FORGET:
				entry_remove(t, en);
				break;
			}
		}
		en = next;
	}
}

/* ---- the text form ---- */

static void entry_line(const struct dedup_entry *en, struct buf *out)
{
	char hex[2 * DEDUP_KEY_LEN + 1];

	key_hex(&en->key, hex);
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
		mark_clean(t, en);
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
		mark_clean(t, en);
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
		old = find(t, &k);
		if (old != NULL)
			entry_remove(t, old);
		return true;
	}
	if (end - p < 2 || p[0] != 'k' || p[1] != ' ') {
		*why = "neither a k nor an f line";
		return false;
	}
	en = parse_k(p + 2, end, why);
	if (en == NULL)
		return false;
	old = find(t, &en->key);
	if (old != NULL)
		entry_remove(t, old);
	/* Unbounded while loading: the bound is applied once all is read, by last repeat. */
	if (t->count >= t->nbuckets / 2)
		grow(t);
	{
		size_t b = bucket_of(t, &en->key);
		en->hnext = t->buckets[b];
		t->buckets[b] = en;
	}
	lru_append(t, en);
	t->count++;
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
		lru_append(t, v[i]);
	drop = n > t->max ? n - t->max : 0;
	for (size_t i = 0; i < drop; i++)
		entry_remove(t, v[i]);
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

/* ---- for templates and logs ---- */

static void iso_ms(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "@%lld", (long long)t);
}

void dedup_template_data(struct ynode *tree, const struct dedup_decision *d)
{
	struct ynode *m;
	char n[32];

	if (d->duplicate || d->suppressed == 0)
		return;
	m = ynode_new_map();
	snprintf(n, sizeof(n), "%lu", d->suppressed);
	ynode_map_set(m, "suppressed", ynode_new_scalar(n, strlen(n), false));
	if (d->previous_at > 0) {
		char when[32];
		iso_ms(d->previous_at, when, sizeof(when));
		ynode_map_set(m, "since", ynode_new_scalar(when, strlen(when), false));
	}
	ynode_map_set(tree, "dedup", m);
}

void dedup_describe(const struct dedup_decision *d, const char *id, struct buf *out)
{
	char when[32];

	iso_ms(d->previous_at, when, sizeof(when));
	switch (d->why) {
	case DEDUP_NEW:
		buf_adds(out, "sent: the first alert with its key");
		break;
	case DEDUP_EXPIRED:
		buf_printf(out,
		           "sent: the last alert with its key went at %s, longer than "
		           "dedup_window ago",
		           when);
		break;
	case DEDUP_SEVERITY:
		buf_adds(out, "sent: its severity changed");
		break;
	case DEDUP_RESOLVED:
		buf_adds(out, "sent: it is resolved");
		break;
	case DEDUP_REFIRED:
		buf_adds(out, "sent: it fires again after its resolution");
		break;
	case DEDUP_AGAIN:
		buf_adds(out, "sent: this queue entry again (a retry or a restart)");
		break;
	case DEDUP_DUP_PENDING:
		buf_printf(out, "duplicate of the alert queued at %s (on its way)", when);
		break;
	case DEDUP_DUP_SENT:
		buf_printf(out, "duplicate of the alert sent at %s", when);
		break;
	case DEDUP_DUP_DELIVERED:
		buf_printf(out,
		           "this queue entry was delivered at %s already (a crash undid its "
		           "removal from the spool)",
		           when);
		return;
	}
	if (d->duplicate && strcmp(d->previous_id, id) != 0) {
		buf_adds(out, ", id=");
		buf_add_escaped(out, d->previous_id);
	}
	if (d->duplicate)
		buf_printf(out, " (%lu so far)", d->suppressed);
	else if (d->suppressed > 0) {
		buf_printf(out, "; %lu repeats of the previous one were not sent", d->suppressed);
	}
}

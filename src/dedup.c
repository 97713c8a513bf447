/* De-duplication: keys, decisions, the table of keys. No I/O. */
#include "config.h"

#include "dedup.h"
#include "dedup_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "charset.h"
#include "spool.h"
#include "yamltree.h"

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

void dedup_entry_free(struct dedup_entry *en)
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
		dedup_entry_free(en);
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

struct dedup_entry *dedup_entry_find(const struct dedup_table *t, const struct dedup_key *k)
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

void dedup_lru_append(struct dedup_table *t, struct dedup_entry *en)
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

void dedup_entry_clean(struct dedup_table *t, struct dedup_entry *en)
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

void dedup_key_hex(const struct dedup_key *k, char out[2 * DEDUP_KEY_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < DEDUP_KEY_LEN; i++) {
		out[2 * i] = hex[k->h[i] >> 4];
		out[2 * i + 1] = hex[k->h[i] & 15];
	}
	out[(size_t)2 * DEDUP_KEY_LEN] = '\0';
}

/* Takes en out of the table and frees it; the file learns of it by an f line. */
void dedup_entry_remove(struct dedup_table *t, struct dedup_entry *en)
{
	struct dedup_entry **pp = &t->buckets[bucket_of(t, &en->key)];

	while (*pp != en)
		pp = &(*pp)->hnext;
	*pp = en->hnext;
	lru_unlink(t, en);
	dedup_entry_clean(t, en);
	if (en->written) {
		char hex[2 * DEDUP_KEY_LEN + 1];
		dedup_key_hex(&en->key, hex);
		buf_printf(&t->forgets, "f %s\n", hex);
		t->nforgets++;
	}
	t->count--;
	dedup_entry_free(en);
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

void dedup_entry_insert(struct dedup_table *t, struct dedup_entry *en)
{
	size_t b;

	if (t->count >= t->nbuckets / 2)
		grow(t);
	b = bucket_of(t, &en->key);
	en->hnext = t->buckets[b];
	t->buckets[b] = en;
	dedup_lru_append(t, en);
	t->count++;
}

/* A new key, the most recently seen; at the bound, the least recently seen key goes. */
static struct dedup_entry *entry_add(struct dedup_table *t, const struct dedup_key *k,
                                     const char *channel, const char *id)
{
	struct dedup_entry *en = xcalloc(1, sizeof(*en));

	while (t->count >= t->max && t->lru_head != NULL) {
		dedup_entry_remove(t, t->lru_head);
		t->evicted++;
	}
	en->key = *k;
	/* xstrndup copies n bytes whatever the string's length. */
	en->channel = xstrndup(channel, strnlen(channel, DEDUP_CHANNEL_MAX));
	en->id = xstrdup(id);
	dedup_entry_insert(t, en);
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
	struct dedup_entry *en = dedup_entry_find(t, &a->key);

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
	dedup_lru_append(t, en);
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
	struct dedup_entry *en = dedup_entry_find(t, k);

	if (en == NULL || !en->pending || strcmp(en->qid, qid) != 0)
		return;
	en->pending = false;
	en->at = now;
	en->expires = max64(en->expires, now + window_ms);
	mark_dirty(t, en);
}

void dedup_forget(struct dedup_table *t, const struct dedup_key *k, const char *qid)
{
	struct dedup_entry *en = dedup_entry_find(t, k);

	if (en != NULL && strcmp(en->qid, qid) == 0)
		dedup_entry_remove(t, en);
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
			dedup_entry_remove(t, en);
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
				dedup_entry_remove(t, en);
				break;
			}
		}
		en = next;
	}
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

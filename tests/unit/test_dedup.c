/* De-duplication: field paths, keys, the decision over sequences of alerts, expiry, the bound,
 * the state file's text (round trips, damage, every truncation), settling after a restart,
 * template data, log text, the config keys and their errors, and the cost of a storm. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "conf.h"
#include "dedup.h"
#include "dedup_state.h"
#include "tap.h"

#define W 10000 /* the window of most cases: 10 s */

static struct alert *parse(const char *yaml)
{
	struct alert *a = NULL;
	struct err e;

	if (alert_parse(yaml, strlen(yaml), "alert", 1000, &a, &e) < 0) {
		printf("Bail out! alert does not parse: %s\n", e.msg);
		exit(99);
	}
	return a;
}

/* ---- field paths ---- */

static void test_fields(void)
{
	static const struct {
		const char *path;
		int good;
	} cases[] = {
	    {"id", 1},      {"labels.team", 1}, {"a-b_c.D9", 1}, {"a.b.c.d.e", 1},
	    {"", 0},        {"a..b", 0},        {".a", 0},       {"a.", 0},
	    {"a b", 0},     {"a/b", 0},         {"a*", 0},       {"\xc3\xa9t\xc3\xa9", 0},
	    {"labels.", 0}, {"x\ty", 0},
	};
	char long_path[300], deep[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = dedup_field_check(cases[i].path);
		ok((why == NULL) == cases[i].good, "field '%s': %s", cases[i].path,
		   why != NULL ? why : "good");
	}
	memset(long_path, 'a', 257);
	long_path[257] = '\0';
	ok(dedup_field_check(long_path) != NULL, "field: 257 characters are refused");
	long_path[256] = '\0';
	ok(dedup_field_check(long_path) == NULL, "field: 256 characters are fine");
	/* 65 names joined by dots: deeper than any alert. */
	for (size_t i = 0; i < 65; i++) {
		deep[2 * i] = 'a';
		deep[2 * i + 1] = '.';
	}
	deep[129] = '\0';
	ok(dedup_field_check(deep) != NULL, "field: 65 levels are refused");
}

/* ---- keys ---- */

static int same_key(const struct dedup_alert *x, const struct dedup_alert *y)
{
	return memcmp(x->key.h, y->key.h, DEDUP_KEY_LEN) == 0;
}

static void test_keys(void)
{
	static char *const by_id[] = {"id"};
	static char *const by_st[] = {"source", "title"};
	static char *const by_ab[] = {"a", "b"};
	static char *const by_team[] = {"labels.team"};
	static char *const by_labels[] = {"labels"};
	static const struct {
		const char *a, *b;
		char *const *fields;
		size_t nfields;
		const char *ch_a, *ch_b;
		int same;
		const char *what;
	} cases[] = {
	    {"id: x\n", "id: x\n", by_id, 1, "ops", "ops", 1, "same id, same channel: one key"},
	    {"id: x\n", "id: x\n", by_id, 1, "ops", "dev", 0, "same id, other channel: another"},
	    {"id: x\n", "id: y\n", by_id, 1, "ops", "ops", 0, "other id: another key"},
	    {"id: x\nseverity: warning\n", "id: x\nseverity: critical\n", by_id, 1, "ops", "ops", 1,
	     "severity is not in the key (a change is decided on)"},
	    {"id: 1\nsource: db\ntitle: disk\n", "id: 2\nsource: db\ntitle: disk\n", by_st, 2,
	     "ops", "ops", 1, "[source, title]: other ids, one key"},
	    {"id: 1\nsource: db\ntitle: disk\n", "id: 1\nsource: db\ntitle: load\n", by_st, 2,
	     "ops", "ops", 0, "[source, title]: another title, another key"},
	    {"a: \"x y\"\nb: z\n", "a: x\nb: \"y z\"\n", by_ab, 2, "ops", "ops", 0,
	     "values are kept apart: 'x y'+'z' is not 'x'+'y z'"},
	    {"a: \"x\"\nb: \"\"\n", "a: \"\"\nb: \"x\"\n", by_ab, 2, "ops", "ops", 0,
	     "values are kept apart: 'x'+'' is not ''+'x'"},
	    {"labels: {team: db}\nid: 1\n", "labels: {team: db, x: y}\nid: 2\n", by_team, 1, "ops",
	     "ops", 1, "labels.team: nested fields"},
	    {"id: 10\n", "id: \"10\"\n", by_id, 1, "ops", "ops", 1,
	     "a number and the same text: one key (values are text)"},
	};
	static const struct {
		const char *alert;
		char *const *fields;
		size_t nfields;
		const char *missing;
	} missing[] = {
	    {"title: no id\n", by_id, 1, "id"},
	    {"id: 1\ntitle: disk\n", by_st, 2, "source"},
	    {"id: 1\nsource: db\n", by_st, 2, "title"},
	    {"id: 1\nsource: ~\ntitle: t\n", by_st, 2, "source"},
	    {"id: 1\nsource:\ntitle: t\n", by_st, 2, "source"},
	    {"id: 1\nlabels: {team: db}\n", by_labels, 1, "labels"},
	    {"id: 1\nlabels: {x: y}\n", by_team, 1, "labels.team"},
	    {"id: 1\nlabels: {team: [a, b]}\n", by_team, 1, "labels.team"},
	};
	struct dedup_alert x, y;
	const char *miss;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct alert *a = parse(cases[i].a), *b = parse(cases[i].b);
		int ra = dedup_alert_make(a, cases[i].ch_a, cases[i].fields, cases[i].nfields, "q1",
		                          &x, &miss);
		int rb = dedup_alert_make(b, cases[i].ch_b, cases[i].fields, cases[i].nfields, "q2",
		                          &y, &miss);
		ok(ra == 0 && rb == 0 && same_key(&x, &y) == cases[i].same, "key: %s",
		   cases[i].what);
		alert_free(a);
		alert_free(b);
	}
	for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
		struct alert *a = parse(missing[i].alert);
		int rc = dedup_alert_make(a, "ops", missing[i].fields, missing[i].nfields, "q", &x,
		                          &miss);
		ok(rc < 0 && miss != NULL && strcmp(miss, missing[i].missing) == 0,
		   "key: no value for '%s' in case %zu: never a duplicate", missing[i].missing, i);
		alert_free(a);
	}
	{
		struct alert *w = parse("id: 1\nseverity: warning\n");
		struct alert *c = parse("id: 1\nseverity: critical\n");
		struct alert *n = parse("id: 1\n");
		struct alert *r = parse("id: 1\nstatus: resolved\n");
		struct alert *rr = parse("id: 1\nstatus: RESOLVED\n");
		struct alert *f = parse("id: 1\nstatus: firing\n");
		struct dedup_alert dw, dc, dn, dr, drr, df;
		dedup_alert_make(w, "ops", by_id, 1, "q", &dw, &miss);
		dedup_alert_make(c, "ops", by_id, 1, "q", &dc, &miss);
		dedup_alert_make(n, "ops", by_id, 1, "q", &dn, &miss);
		dedup_alert_make(r, "ops", by_id, 1, "q", &dr, &miss);
		dedup_alert_make(rr, "ops", by_id, 1, "q", &drr, &miss);
		dedup_alert_make(f, "ops", by_id, 1, "q", &df, &miss);
		ok(dw.severity != dc.severity && dw.severity != dn.severity,
		   "severity: warning, critical and none differ");
		ok(dr.resolved && drr.resolved && !df.resolved && !dn.resolved,
		   "status: resolved (any case) is a resolution; firing or none is not");
		ok(strcmp(dw.id, "1") == 0 && strcmp(dw.qid, "q") == 0 &&
		       strcmp(dw.channel, "ops") == 0,
		   "the alert's id, queue id and channel are kept");
		alert_free(w);
		alert_free(c);
		alert_free(n);
		alert_free(r);
		alert_free(rr);
		alert_free(f);
	}
}

/* ---- the decision, over sequences ---- */

enum op { DECIDE, SENT, FORGET };

struct step {
	enum op op;
	int64_t t;
	const char *qid;
	const char *alert; /* DECIDE: the alert; SENT, FORGET: unused */
	enum dedup_why why;
	unsigned long suppressed;
	int64_t previous_at;
};

static const char *why_name(enum dedup_why w)
{
	static const char *const names[] = {"NEW",         "EXPIRED",  "SEVERITY",
	                                    "RESOLVED",    "REFIRED",  "AGAIN",
	                                    "DUP_PENDING", "DUP_SENT", "DUP_DELIVERED"};
	return (size_t)w < sizeof(names) / sizeof(names[0]) ? names[w] : "?";
}

static void run_steps(const char *name, const struct step *steps, size_t n, char *const *fields,
                      size_t nfields)
{
	struct dedup_table *t = dedup_table_new(100);
	struct dedup_key last = {{0}};

	for (size_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		if (s->op == DECIDE) {
			struct alert *a = parse(s->alert);
			struct dedup_alert da;
			struct dedup_decision d;
			const char *miss;
			int dup = s->why >= DEDUP_DUP_PENDING;
			if (dedup_alert_make(a, "ops", fields, nfields, s->qid, &da, &miss) < 0) {
				ok(0, "%s %zu: no key", name, i);
				alert_free(a);
				continue;
			}
			last = da.key;
			dedup_decide(t, &da, W, s->t, &d);
			ok(d.why == s->why && d.duplicate == dup && d.suppressed == s->suppressed &&
			       (s->previous_at < 0 || d.previous_at == s->previous_at),
			   "%s %zu: t=%lld %s: %s, %lu (got %s, %lu, at %lld)", name, i,
			   (long long)s->t, s->qid, why_name(s->why), s->suppressed,
			   why_name(d.why), d.suppressed, (long long)d.previous_at);
			alert_free(a);
		} else if (s->op == SENT) {
			dedup_sent(t, &last, s->qid, W, s->t);
		} else {
			dedup_forget(t, &last, s->qid);
		}
	}
	dedup_table_free(t);
}

static void test_decisions(void)
{
	static char *const by_id[] = {"id"};
	static char *const by_st[] = {"source", "title"};
#define WARN "id: disk\nseverity: warning\n"
#define CRIT "id: disk\nseverity: critical\n"
#define CRIT_RES "id: disk\nseverity: critical\nstatus: resolved\n"
#define CRIT_FIRING "id: disk\nseverity: critical\nstatus: firing\n"
	static const struct step life[] = {
	    {DECIDE, 0, "q1", WARN, DEDUP_NEW, 0, 0},
	    /* A burst while the first is on its way. */
	    {DECIDE, 1, "q2", WARN, DEDUP_DUP_PENDING, 1, 0},
	    {DECIDE, 2, "q3", WARN, DEDUP_DUP_PENDING, 2, 0},
	    {SENT, 5, "q1", NULL, 0, 0, 0},
	    {DECIDE, 6, "q4", WARN, DEDUP_DUP_SENT, 3, 5},
	    /* q1 again (its removal undone by a crash): delivered already. */
	    {DECIDE, 6, "q1", WARN, DEDUP_DUP_DELIVERED, 0, 5},
	    {DECIDE, 7, "q5", CRIT, DEDUP_SEVERITY, 3, 5},
	    {DECIDE, 8, "q6", CRIT, DEDUP_DUP_PENDING, 1, 7},
	    /* q5 retried: still the key's alert, with what its template had. */
	    {DECIDE, 8, "q5", CRIT, DEDUP_AGAIN, 3, 5},
	    /* A late delivery of an older entry changes nothing. */
	    {SENT, 9, "q1", NULL, 0, 0, 0},
	    {DECIDE, 9, "q7", CRIT, DEDUP_DUP_PENDING, 2, 7},
	    {SENT, 10, "q5", NULL, 0, 0, 0},
	    {DECIDE, 11, "q8", CRIT_RES, DEDUP_RESOLVED, 2, 10},
	    {SENT, 12, "q8", NULL, 0, 0, 0},
	    {DECIDE, 13, "q9", CRIT_RES, DEDUP_DUP_SENT, 1, 12},
	    {DECIDE, 14, "q10", CRIT_FIRING, DEDUP_REFIRED, 1, 12},
	    {SENT, 15, "q10", NULL, 0, 0, 0},
	    {DECIDE, 15 + W - 1, "q11", CRIT, DEDUP_DUP_SENT, 1, 15},
	    {DECIDE, 15 + W, "q12", CRIT, DEDUP_EXPIRED, 1, 15},
	    /* q12 fails for good: forgotten, the next is sent. */
	    {DECIDE, 15 + W + 1, "q13", CRIT, DEDUP_DUP_PENDING, 1, 15 + W},
	    {FORGET, 15 + W + 2, "q13", NULL, 0, 0, 0}, /* not the key's entry: nothing */
	    {DECIDE, 15 + W + 3, "q14", CRIT, DEDUP_DUP_PENDING, 2, 15 + W},
	    {FORGET, 15 + W + 4, "q12", NULL, 0, 0, 0},
	    {DECIDE, 15 + W + 5, "q15", CRIT, DEDUP_NEW, 0, 0},
	};
	/* The window counts from the delivery, not from when the alert was taken. */
	static const struct step late[] = {
	    {DECIDE, 0, "q1", WARN, DEDUP_NEW, 0, 0},
	    {DECIDE, 50000, "q2", WARN, DEDUP_DUP_PENDING, 1, 0},
	    {SENT, 100000, "q1", NULL, 0, 0, 0},
	    {DECIDE, 100000 + W - 1, "q3", WARN, DEDUP_DUP_SENT, 2, 100000},
	    {DECIDE, 100000 + W, "q4", WARN, DEDUP_EXPIRED, 2, 100000},
	};
	/* A resolution first, then firing: each is news. */
	static const struct step resolved_first[] = {
	    {DECIDE, 0, "q1", CRIT_RES, DEDUP_NEW, 0, 0},
	    {DECIDE, 1, "q2", CRIT_RES, DEDUP_DUP_PENDING, 1, 0},
	    {DECIDE, 2, "q3", CRIT, DEDUP_REFIRED, 1, 0},
	    {DECIDE, 3, "q4", CRIT_FIRING, DEDUP_DUP_PENDING, 1, 2},
	    {DECIDE, 4, "q5", WARN, DEDUP_SEVERITY, 1, 2},
	};
	/* [source, title]: the ids differ, the key is the same. */
	static const struct step by_source[] = {
	    {DECIDE, 0, "q1", "id: a1\nsource: db\ntitle: disk full\n", DEDUP_NEW, 0, 0},
	    {DECIDE, 1, "q2", "id: a2\nsource: db\ntitle: disk full\n", DEDUP_DUP_PENDING, 1, 0},
	    {SENT, 2, "q1", NULL, 0, 0, 0},
	    {DECIDE, 3, "q3", "id: a3\nsource: db\ntitle: disk full\n", DEDUP_DUP_SENT, 2, 2},
	};
	/* A clock set back: the window is not stretched by the jump. */
	static const struct step clock_back[] = {
	    {DECIDE, 500000, "q1", WARN, DEDUP_NEW, 0, 0},
	    {SENT, 500000, "q1", NULL, 0, 0, 0},
	    {DECIDE, 1000, "q2", WARN, DEDUP_DUP_SENT, 1, 1000},
	    {DECIDE, 1000 + W, "q3", WARN, DEDUP_EXPIRED, 1, 1000},
	};

	run_steps("life", life, sizeof(life) / sizeof(life[0]), by_id, 1);
	run_steps("late", late, sizeof(late) / sizeof(late[0]), by_id, 1);
	run_steps("resolved first", resolved_first,
	          sizeof(resolved_first) / sizeof(resolved_first[0]), by_id, 1);
	run_steps("by source", by_source, sizeof(by_source) / sizeof(by_source[0]), by_st, 2);
	run_steps("clock back", clock_back, sizeof(clock_back) / sizeof(clock_back[0]), by_id, 1);
}

/* ---- a table for the tests that follow: keys k0.. with given states ---- */

/* The alerts mk() made: a dedup_alert points into its alert, kept until 64 more are made. */
static struct alert *held[64];
static size_t nheld;

static void mk_release(void)
{
	for (size_t i = 0; i < 64; i++) {
		alert_free(held[i]);
		held[i] = NULL;
	}
}

static struct dedup_alert mk(const char *id, const char *qid, const char *severity, int resolved)
{
	static char *const by_id[] = {"id"};
	char yaml[256];
	size_t slot;
	struct dedup_alert da;
	const char *miss;
	struct alert *a;

	snprintf(yaml, sizeof(yaml), "id: %s\nseverity: %s\n%s", id, severity,
	         resolved ? "status: resolved\n" : "");
	a = parse(yaml);
	dedup_alert_make(a, "ops", by_id, 1, qid, &da, &miss);
	slot = nheld % 64;
	nheld++;
	alert_free(held[slot]);
	held[slot] = a;
	return da;
}

static unsigned long decide(struct dedup_table *t, const char *id, const char *qid, int64_t now,
                            enum dedup_why *why)
{
	struct dedup_alert a = mk(id, qid, "warning", 0);
	struct dedup_decision d;

	dedup_decide(t, &a, W, now, &d);
	if (why != NULL)
		*why = d.why;
	return d.suppressed;
}

static void test_expiry_and_bound(void)
{
	struct dedup_table *t = dedup_table_new(3);
	struct dedup_alert a;
	enum dedup_why why;

	decide(t, "a", "qa", 0, NULL);
	a = mk("a", "qa", "warning", 0);
	dedup_sent(t, &a.key, "qa", W, 0);
	decide(t, "b", "qb", 0, NULL);
	a = mk("b", "qb", "warning", 0);
	dedup_sent(t, &a.key, "qb", W, 0);
	decide(t, "b", "qb2", 5000, NULL); /* a repeat keeps b until 15 s */
	decide(t, "c", "qc", 0, NULL);     /* on its way: kept until stale */
	ok(dedup_table_prune(t, W - 1, 60000) == 0 && dedup_table_count(t) == 3,
	   "prune: nothing is over before the window");
	ok(dedup_table_prune(t, W, 60000) == 1 && dedup_table_count(t) == 2,
	   "prune: a sent key goes once the window passed since it");
	ok(dedup_table_prune(t, 15000, 60000) == 1 && dedup_table_count(t) == 1,
	   "prune: a key with a repeat goes a window after the repeat");
	ok(dedup_table_prune(t, 59999, 60000) == 0 && dedup_table_pending(t) == 1,
	   "prune: a key on its way stays, whatever the window");
	ok(dedup_table_prune(t, 60000, 60000) == 1 && dedup_table_count(t) == 0,
	   "prune: ... until it is stale (its entry lost by hand)");
	dedup_table_free(t);

	t = dedup_table_new(3);
	decide(t, "k1", "q1", 1, NULL);
	decide(t, "k2", "q2", 2, NULL);
	decide(t, "k3", "q3", 3, NULL);
	decide(t, "k1", "q4", 4, NULL); /* k1 is seen again: k2 is the least recently seen */
	decide(t, "k4", "q5", 5, NULL);
	ok(dedup_table_count(t) == 3 && dedup_table_evicted(t) == 1,
	   "bound: at 3 keys a fourth makes one go");
	decide(t, "k2", "q6", 6, &why);
	ok(why == DEDUP_NEW, "bound: the least recently seen went (k2 is new again)");
	decide(t, "k1", "q7", 7, &why);
	ok(why == DEDUP_DUP_PENDING && dedup_table_evicted(t) == 2,
	   "bound: k1, seen since, stayed (k3 went for k2)");
	decide(t, "k3", "q8", 8, &why);
	ok(why == DEDUP_NEW, "bound: k3 was the one to go");
	dedup_table_free(t);
}

/* ---- the text form ---- */

static struct dedup_table *sample(void)
{
	struct dedup_table *t = dedup_table_new(100);
	struct dedup_alert a;
	struct dedup_decision d;

	a = mk("disk db01", "1795595982.794568.10956896", "warning", 0);
	dedup_decide(t, &a, W, 1000, &d);
	dedup_sent(t, &a.key, a.qid, W, 2000);
	a = mk("disk db01", "1795595983.000001.10956897", "warning", 0);
	dedup_decide(t, &a, W, 2500, &d);
	a = mk("load", "1795595984.5.7", "critical", 1);
	dedup_decide(t, &a, W, 3000, &d);
	a = mk("caf\xc3\xa9", "1795595985.5.8", "info", 0);
	dedup_decide(t, &a, W, 3500, &d);
	return t;
}

static char *text_of(struct dedup_table *t)
{
	struct buf b;

	buf_init(&b);
	dedup_table_format(t, &b);
	return buf_steal(&b);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_format(void)
{
	struct dedup_table *t = sample(), *u;
	char *s1, *s2;
	struct dedup_load r;
	struct buf ch;
	struct dedup_alert a;
	struct dedup_decision d;
	size_t n;

	s1 = text_of(t);
	ok(strncmp(s1, DEDUP_FILE_HEADER "\n", strlen(DEDUP_FILE_HEADER) + 1) == 0 &&
	       count_lines(s1) == 4,
	   "format: the header and one line per key");
	ok(strstr(s1, " s 2000 2500 12500 1 0 0 ") != NULL &&
	       strstr(s1, " 1795595982.794568.10956896 ops disk db01\n") != NULL,
	   "format: a sent key with its times, one repeat, queue id, channel and id (spaces kept)");
	ok(strstr(s1, " p 3000 3000 13000 0 0 0 ") != NULL &&
	       strstr(s1, " r 1795595984.5.7 ") != NULL,
	   "format: a resolved key on its way");
	u = dedup_table_new(100);
	dedup_table_load(u, s1, strlen(s1), 4000, 60000, &r);
	s2 = text_of(u);
	ok(r.lines == 3 && r.bad == 0 && !r.bad_header && strcmp(s1, s2) == 0,
	   "load: read back, the same snapshot");
	free(s2);
	dedup_table_free(u);

	/* Changes appended to a snapshot read back as the table. */
	buf_init(&ch);
	ok(!dedup_table_dirty(t) && dedup_table_changes(t, &ch) == 0 && ch.len == 0,
	   "changes: none after a snapshot");
	a = mk("disk db01", "1795595990.1.1", "warning", 0);
	dedup_decide(t, &a, W, 5000, &d); /* a repeat */
	a = mk("load", "1795595984.5.7", "critical", 1);
	dedup_forget(t, &a.key, "1795595984.5.7");
	a = mk("new", "1795595991.1.1", "warning", 0);
	dedup_decide(t, &a, W, 5100, &d);
	dedup_forget(t, &a.key, "1795595991.1.1"); /* never written: no line needed */
	a = mk("new2", "1795595992.1.1", "warning", 0);
	dedup_decide(t, &a, W, 5200, &d);
	n = dedup_table_changes(t, &ch);
	ok(n == 3 && count_lines(ch.data) == 3 && strncmp(ch.data, "f ", 2) == 0,
	   "changes: the forgotten key first, then the two that changed (%zu lines)", n);
	{
		struct buf all;
		buf_init(&all);
		buf_adds(&all, s1);
		buf_add(&all, ch.data, ch.len);
		u = dedup_table_new(100);
		dedup_table_load(u, all.data, all.len, 6000, 60000, &r);
		s2 = text_of(u);
		free(s1);
		s1 = text_of(t);
		ok(r.bad == 0 && r.lines == 6 && strcmp(s1, s2) == 0,
		   "load: snapshot + changes = the table");
		free(s2);
		dedup_table_free(u);
		buf_free(&all);
	}
	buf_free(&ch);
	free(s1);
	dedup_table_free(t);
}

static void test_damage(void)
{
	static const char good[] =
	    "k 00112233445566778899aabbccddeeff s 1000 1000 90000 3 0 0 0011223344556677 a 1.2.3 "
	    "ops disk\n";
	static const struct {
		const char *what;
		const char *text;
		size_t keys, bad;
	} cases[] = {
	    {"an empty file", "", 0, 0},
	    {"the header only", DEDUP_FILE_HEADER "\n", 0, 0},
	    {"a good file",
	     DEDUP_FILE_HEADER "\n"
	                       "k 00112233445566778899aabbccddeeff s 1000 1000 "
	                       "90000 3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     1, 0},
	    {"another header", "alertmail-dedup 9\n", 0, 1},
	    {"no header, a record",
	     "k 00112233445566778899aabbccddeeff s 1000 1000 90000 3 0 0 "
	     "0011223344556677 a 1.2.3 ops disk\n",
	     1, 1},
	    {"a last line cut short",
	     DEDUP_FILE_HEADER "\n"
	                       "k 00112233445566778899aabbccddeeff s "
	                       "1000 1000 90000 3 0 0 0011223344556677 a 1.2.3 ops di",
	     0, 1},
	    {"garbage between records",
	     DEDUP_FILE_HEADER "\n"
	                       "k 00112233445566778899aabbccddeeff s "
	                       "1000 1000 90000 3 0 0 0011223344556677 a 1.2.3 ops disk\n"
	                       "hello world\n"
	                       "k "
	                       "ffeeddccbbaa99887766554433221100 s 1000 1000 90000 0 0 0 "
	                       "0011223344556677 r 1.2.4 ops "
	                       "load\n",
	     2, 1},
	    {"a short hash",
	     DEDUP_FILE_HEADER "\nk 0011 s 1000 1000 90000 3 0 0 0011223344556677 a "
	                       "1.2.3 ops disk\n",
	     0, 1},
	    {"upper-case hex",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899AABBCCDDEEFF s 1000 1000 "
	                       "90000 3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 1},
	    {"a state neither p nor s",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff x "
	                       "1000 1000 90000 3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 1},
	    {"a negative time",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s -1 1000 "
	                       "90000 3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 1},
	    {"a time past 9999",
	     DEDUP_FILE_HEADER
	     "\nk 00112233445566778899aabbccddeeff s "
	     "999999999999999999 1000 90000 3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 1},
	    {"a count with a sign",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s 1000 "
	                       "1000 90000 +3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 1},
	    {"two spaces",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s 1000  1000 "
	                       "90000 3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 1},
	    {"a queue id with a slash",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s "
	                       "1000 1000 90000 3 0 0 0011223344556677 a ../x ops disk\n",
	     0, 1},
	    {"a channel with a star",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s 1000 "
	                       "1000 90000 3 0 0 0011223344556677 a 1.2.3 o*s disk\n",
	     0, 1},
	    {"no id",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s 1000 1000 90000 3 0 0 "
	                       "0011223344556677 a 1.2.3 ops\n",
	     0, 1},
	    {"an id with a control character",
	     DEDUP_FILE_HEADER
	     "\nk 00112233445566778899aabbccdd"
	     "eeff s 1000 1000 90000 3 0 0 0011223344556677 a 1.2.3 ops di\x1bsk\n",
	     0, 1},
	    {"an id that is not UTF-8",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s "
	                       "1000 1000 90000 3 0 0 0011223344556677 a 1.2.3 ops di\xffsk\n",
	     0, 1},
	    {"a malformed f line", DEDUP_FILE_HEADER "\nf 0011 extra\n", 0, 1},
	    {"an f line forgets",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s 1000 "
	                       "1000 90000 3 0 0 0011223344556677 a 1.2.3 ops disk\nf "
	                       "00112233445566778899aabbccddeeff\n",
	     0, 0},
	    {"a later line replaces",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s 1000 "
	                       "1000 90000 3 0 0 0011223344556677 a 1.2.3 ops disk\nk "
	                       "00112233445566778899aabbccddeeff "
	                       "s 2000 2000 90000 4 0 0 0011223344556677 a 1.2.9 ops disk\n",
	     1, 0},
	    {"expired keys are dropped",
	     DEDUP_FILE_HEADER "\nk 00112233445566778899aabbccddeeff s "
	                       "1000 1000 5000 3 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 0},
	    {"stale keys on their way are dropped",
	     DEDUP_FILE_HEADER
	     "\nk 001122334455667788"
	     "99aabbccddeeff p 1 1 90000 0 0 0 0011223344556677 a 1.2.3 ops disk\n",
	     0, 0},
	};
	struct dedup_table *t;
	struct dedup_load r;
	char *junk, *full, *long_line;
	size_t full_len, complete = 0;
	int monotone = 1;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = dedup_table_new(100);
		dedup_table_load(t, cases[i].text, strlen(cases[i].text), 10000, 9000, &r);
		ok(dedup_table_count(t) == cases[i].keys && r.bad == cases[i].bad,
		   "load: %s: %zu keys, %zu bad lines (got %zu, %zu%s%s)", cases[i].what,
		   cases[i].keys, cases[i].bad, dedup_table_count(t), r.bad, r.bad ? ": " : "",
		   r.first_bad);
		dedup_table_free(t);
	}
	/* NUL bytes and random bytes: no crash, nothing taken that is not a record. */
	junk = malloc(4096);
	must(junk != NULL, "malloc");
	/* A fixed sequence of its own (an LCG), the same in every run. */
	for (uint32_t i = 0, x = 5; i < 4096; i++) {
		x = x * 1103515245U + 12345U;
		junk[i] = (char)(x >> 24);
	}
	t = dedup_table_new(100);
	dedup_table_load(t, junk, 4096, 10000, 9000, &r);
	ok(dedup_table_count(t) == 0 && r.bad > 0, "load: 4 KiB of random bytes: no key, %zu bad",
	   r.bad);
	dedup_table_free(t);
	free(junk);
	{
		static const char nul[] = DEDUP_FILE_HEADER "\nk 0011\0 s\n";
		t = dedup_table_new(100);
		dedup_table_load(t, nul, sizeof(nul) - 1, 10000, 9000, &r);
		ok(dedup_table_count(t) == 0 && r.bad == 1, "load: a NUL byte in a line: bad");
		dedup_table_free(t);
	}
	long_line = malloc(3000);
	must(long_line != NULL, "malloc");
	snprintf(long_line, 3000, "%s\n%.*s", DEDUP_FILE_HEADER, (int)(sizeof(good) - 2), good);
	memset(long_line + strlen(long_line), 'x', 1500);
	long_line[strlen(DEDUP_FILE_HEADER) + sizeof(good) - 1 + 1500] = '\n';
	long_line[strlen(DEDUP_FILE_HEADER) + sizeof(good) + 1500] = '\0';
	t = dedup_table_new(100);
	dedup_table_load(t, long_line, strlen(long_line), 10000, 9000, &r);
	ok(dedup_table_count(t) == 0 && r.bad == 1, "load: a line over 1024 bytes: bad");
	dedup_table_free(t);
	free(long_line);

	/* Every truncation of a file of ten keys: as many keys as complete lines, never more. */
	{
		struct buf b;
		buf_init(&b);
		buf_printf(&b, "%s\n", DEDUP_FILE_HEADER);
		for (int i = 0; i < 10; i++)
			buf_printf(&b,
			           "k %02x112233445566778899aabbccddeeff s 1000 %d 90000 %d 0 0 "
			           "0011223344556677 a 1.2.%d ops alert %d\n",
			           i, 1000 + i, i, i, i);
		full_len = b.len;
		full = buf_steal(&b);
	}
	for (size_t cut = 0; cut <= full_len; cut++) {
		size_t lines = 0;
		for (size_t i = 0; i < cut; i++)
			lines += full[i] == '\n';
		t = dedup_table_new(100);
		dedup_table_load(t, full, cut, 10000, 9000, &r);
		if (dedup_table_count(t) != (lines > 0 ? lines - 1 : 0))
			monotone = 0;
		if (cut == full_len)
			complete = dedup_table_count(t);
		dedup_table_free(t);
	}
	ok(monotone && complete == 10,
	   "load: each of %zu truncations keeps exactly the complete lines", full_len + 1);

	/* The bound at load: the most recently seen are kept. */
	t = dedup_table_new(4);
	dedup_table_load(t, full, full_len, 10000, 9000, &r);
	{
		char *s = text_of(t);
		ok(dedup_table_count(t) == 4 && r.dropped == 6 && strstr(s, "alert 9\n") != NULL &&
		       strstr(s, "alert 6\n") != NULL && strstr(s, "alert 5\n") == NULL,
		   "load: 10 keys into a bound of 4: the 4 seen last are kept, 6 dropped");
		free(s);
	}
	dedup_table_free(t);
	free(full);
}

/* ---- settling keys on their way after a restart ---- */

static enum dedup_fate fate(void *ctx, const char *qid)
{
	(void)ctx;
	if (strcmp(qid, "1.1.1") == 0)
		return DEDUP_FATE_PENDING;
	if (strcmp(qid, "2.2.2") == 0)
		return DEDUP_FATE_DELIVERED;
	return DEDUP_FATE_FORGET;
}

static void test_settle(void)
{
	struct dedup_table *t = dedup_table_new(100);
	enum dedup_why why;

	decide(t, "a", "1.1.1", 1000, NULL);
	decide(t, "b", "2.2.2", 1000, NULL);
	decide(t, "c", "3.3.3", 1000, NULL);
	dedup_table_settle(t, fate, NULL);
	ok(dedup_table_count(t) == 2 && dedup_table_pending(t) == 1,
	   "settle: one still on its way, one delivered, one forgotten");
	decide(t, "a", "9.9.1", 2000, &why);
	ok(why == DEDUP_DUP_PENDING, "settle: still on its way: a repeat is a duplicate");
	decide(t, "b", "9.9.2", 2000, &why);
	ok(why == DEDUP_DUP_SENT, "settle: delivered: a repeat within the window is a duplicate");
	decide(t, "b", "9.9.3", 1000 + W, &why);
	ok(why == DEDUP_EXPIRED, "settle: ... and the window counts from when it was taken");
	decide(t, "c", "9.9.4", 2000, &why);
	ok(why == DEDUP_NEW, "settle: failed or back in new/: forgotten, the next is sent");
	dedup_table_free(t);
}

/* ---- template data and log text ---- */

static void test_texts(void)
{
	struct dedup_decision d;
	struct ynode *tree = ynode_new_map();
	const struct ynode *n;
	struct buf b;

	memset(&d, 0, sizeof(d));
	d.why = DEDUP_SEVERITY;
	d.suppressed = 17;
	d.previous_at = 1795595982000LL;
	dedup_template_data(tree, &d);
	n = ynode_path(tree, "dedup.suppressed");
	ok(n != NULL && strcmp(n->str, "17") == 0, "template: dedup.suppressed is 17");
	n = ynode_path(tree, "dedup.since");
	ok(n != NULL && strcmp(n->str, "2026-11-25T08:39:42Z") == 0,
	   "template: dedup.since is when the previous one went (%s)", n ? n->str : "none");
	ynode_free(tree);
	tree = ynode_new_map();
	d.suppressed = 0;
	dedup_template_data(tree, &d);
	ok(ynode_get(tree, "dedup") == NULL, "template: no dedup without suppressed repeats");
	ynode_free(tree);

	buf_init(&b);
	memset(&d, 0, sizeof(d));
	d.why = DEDUP_DUP_SENT;
	d.duplicate = true;
	d.suppressed = 19;
	d.previous_at = 1795595982000LL;
	snprintf(d.previous_id, sizeof(d.previous_id), "disk");
	dedup_describe(&d, "disk", &b);
	is_str(b.data, "duplicate of the alert sent at 2026-11-25T08:39:42Z (19 so far)",
	       "log: a duplicate");
	buf_reset(&b);
	snprintf(d.previous_id, sizeof(d.previous_id), "other\nid");
	dedup_describe(&d, "disk", &b);
	is_str(b.data,
	       "duplicate of the alert sent at 2026-11-25T08:39:42Z, id=other\\nid (19 so far)",
	       "log: a duplicate of another id names it, escaped");
	buf_reset(&b);
	d.why = DEDUP_DUP_PENDING;
	snprintf(d.previous_id, sizeof(d.previous_id), "disk");
	dedup_describe(&d, "disk", &b);
	is_str(b.data,
	       "duplicate of the alert queued at 2026-11-25T08:39:42Z (on its way) (19 so far)",
	       "log: a duplicate of one on its way");
	buf_reset(&b);
	d.why = DEDUP_RESOLVED;
	d.duplicate = false;
	d.suppressed = 4;
	dedup_describe(&d, "disk", &b);
	is_str(b.data, "sent: it is resolved; 4 repeats of the previous one were not sent",
	       "log: a resolution");
	buf_free(&b);
}

/* ---- the config ---- */

static struct config *conf(const char *yaml, struct buf *errors)
{
	struct config *c = NULL;

	buf_reset(errors);
	config_parse(yaml, strlen(yaml), "t.yaml", 0, &c, errors);
	return c;
}

#define HEAD                                                                                       \
	"templates: /nonexistent\n"                                                                \
	"servers:\n"                                                                               \
	"  s: {host: 127.0.0.1, port: 25, tls: none}\n"

static void test_config(void)
{
	static const struct {
		const char *yaml;
		const char *error;
	} bad[] = {
	    {"dedup_window: 31d\n", "t.yaml:1:15: dedup_window: expected 0 (off) or a duration "
	                            "from 1s to 30d, got '31d'"},
	    {"dedup_window: 500ms\n", "t.yaml:1:15: dedup_window: expected 0 (off) or"},
	    {"dedup_window: soon\n", "t.yaml:1:15: dedup_window: expected a duration"},
	    {"dedup_window: [1h]\n", "t.yaml:1:15: dedup_window: expected a scalar"},
	    {"dedup_key: []\n", "t.yaml:1:12: dedup_key: the list is empty"},
	    {"dedup_key: [id, a..b]\n",
	     "t.yaml:1:17: dedup_key: 'a..b': an empty name between dots"},
	    {"dedup_key: [id, \"a b\"]\n",
	     "t.yaml:1:17: dedup_key: 'a b': a field name is made of"},
	    {"dedup_key: [source, source]\n", "t.yaml:1:21: dedup_key: 'source': the field is "
	                                      "listed twice"},
	    {"dedup_key: {a: b}\n", "t.yaml:1:12: dedup_key: expected a list"},
	    {"dedup_key: [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q]\n",
	     "t.yaml:1:12: dedup_key: at most 16 fields, got 17"},
	    {"dedup_windw: 1h\n",
	     "t.yaml:1:1: unknown key 'dedup_windw' in the config; did you mean "
	     "'dedup_window'?"},
	};
	static const struct {
		const char *chan;
		const char *error;
	} bad_chan[] = {
	    {"    dedup_window: 40d\n",
	     "t.yaml:8:19: channel 'ops': dedup_window: expected 0 (off) "
	     "or a duration from 1s to 30d, got '40d'"},
	    {"    dedup_key: [labels.]\n", "t.yaml:8:17: channel 'ops': dedup_key: 'labels.': an "
	                                   "empty name"},
	    {"    dedup_key: []\n", "t.yaml:8:16: channel 'ops': dedup_key: the list is empty"},
	    {"    dedup_kye: [id]\n", "t.yaml:8:5: unknown key 'dedup_kye' in channel 'ops'; did "
	                              "you mean 'dedup_key'?"},
	};
	struct buf errors, y;
	struct config *c;

	buf_init(&errors);
	buf_init(&y);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&y);
		buf_printf(&y, "%s%schannels:\n  ops: {servers: [s], to: [a@example.com]}\n",
		           bad[i].yaml, HEAD);
		c = conf(y.data, &errors);
		ok(c == NULL && errors.data != NULL && strstr(errors.data, bad[i].error) != NULL,
		   "config: %.*s: %.*s", (int)strcspn(bad[i].yaml, "\n"), bad[i].yaml,
		   errors.data ? (int)strcspn(errors.data, "\n") : 8,
		   errors.data ? errors.data : "no error");
		config_free(c);
	}
	for (size_t i = 0; i < sizeof(bad_chan) / sizeof(bad_chan[0]); i++) {
		buf_reset(&y);
		buf_printf(&y, "%schannels:\n  ops:\n    servers: [s]\n    to: [a@example.com]\n%s",
		           HEAD, bad_chan[i].chan);
		c = conf(y.data, &errors);
		ok(c == NULL && errors.data != NULL &&
		       strstr(errors.data, bad_chan[i].error) != NULL,
		   "config: channel %.*s: %.*s", (int)strcspn(bad_chan[i].chan + 4, "\n"),
		   bad_chan[i].chan + 4, errors.data ? (int)strcspn(errors.data, "\n") : 8,
		   errors.data ? errors.data : "no error");
		config_free(c);
	}

	c = conf(HEAD "channels:\n  ops: {servers: [s], to: [a@example.com]}\n", &errors);
	ok(c != NULL && c->dedup_window_ms == 0 && c->channels[0].dedup_window_ms == 0 &&
	       c->channels[0].ndedup_key == 1 && strcmp(c->channels[0].dedup_key[0], "id") == 0,
	   "config: by default de-duplication is off, and the key would be [id]");
	config_free(c);
	c = conf("dedup_window: 1h\n"
	         "dedup_key: [source, labels.team]\n" HEAD "channels:\n"
	         "  ops: {servers: [s], to: [a@example.com]}\n"
	         "  fast: {servers: [s], to: [a@example.com], dedup_window: 2s}\n"
	         "  raw: {servers: [s], to: [a@example.com], dedup_window: 0}\n"
	         "  ids: {servers: [s], to: [a@example.com], dedup_key: id}\n",
	         &errors);
	ok(c != NULL, "config: top level and channels %s", errors.data ? errors.data : "");
	if (c != NULL) {
		const struct channel *ops = config_channel(c, "ops"),
		                     *fast = config_channel(c, "fast");
		const struct channel *raw = config_channel(c, "raw"),
		                     *ids = config_channel(c, "ids");
		ok(ops->dedup_window_ms == 3600000 && ops->ndedup_key == 2 &&
		       strcmp(ops->dedup_key[1], "labels.team") == 0,
		   "config: a channel takes the top level's window and key");
		ok(fast->dedup_window_ms == 2000 && fast->ndedup_key == 2,
		   "config: a channel's window overrides, the key is inherited");
		ok(raw->dedup_window_ms == 0, "config: dedup_window: 0 turns it off for a channel");
		ok(ids->dedup_window_ms == 3600000 && ids->ndedup_key == 1 &&
		       strcmp(ids->dedup_key[0], "id") == 0,
		   "config: a channel's key overrides (a single string is a list of one)");
		ok(c->warnings.len == 0, "config: no warnings");
	}
	config_free(c);
	c = conf("dedup_key: [source]\n" HEAD
	         "channels:\n  ops: {servers: [s], to: [a@example.com]}\n",
	         &errors);
	ok(c != NULL && c->warnings.data != NULL &&
	       strstr(c->warnings.data, "t.yaml:1:12: dedup_key has no effect") != NULL,
	   "config: a key without any window is a warning: %.*s",
	   c != NULL && c->warnings.data ? (int)strcspn(c->warnings.data, "\n") : 4,
	   c != NULL && c->warnings.data ? c->warnings.data : "none");
	config_free(c);
	buf_free(&errors);
	buf_free(&y);
}

/* ---- the state file: appends, snapshots, reopening ---- */

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	struct buf b;
	char chunk[4096];
	size_t n;

	buf_init(&b);
	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(&b, chunk, n);
	(void)fclose(f);
	*len = b.len;
	return b.data != NULL ? buf_steal(&b) : xstrdup("");
}

static void test_state(void)
{
	char dir[] = "/tmp/alertmail-test-dedup-XXXXXX";
	char path[128], *text, *snap1, *snap2;
	struct dedup_state *st;
	struct dedup_load r;
	struct dedup_alert a;
	struct dedup_decision d;
	struct err e;
	size_t len, len2;
	struct stat sb;
	int rc;

	must(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/%s", dir, DEDUP_STATE_FILE);
	rc = dedup_state_open(dir, 100, 1000, 60000, &st, &r, &e);
	ok(rc == 0 && !dedup_state_existed(st) && dedup_table_count(dedup_state_table(st)) == 0,
	   "state: no file is an empty state, no error");
	ok(dedup_state_write(st, &e) == 0 && stat(path, &sb) < 0,
	   "state: nothing to keep, no file made");
	a = mk("one", "1.1.1", "warning", 0);
	dedup_decide(dedup_state_table(st), &a, W, 1000, &d);
	ok(dedup_state_write(st, &e) == 0 && stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	   "state: the first key makes the file, mode 0600");
	ok(!dedup_state_unsynced(st), "state: ... as a snapshot, fsync'd");
	dedup_sent(dedup_state_table(st), &a.key, "1.1.1", W, 1500);
	a = mk("two", "1.1.2", "warning", 0);
	dedup_decide(dedup_state_table(st), &a, W, 1600, &d);
	ok(dedup_state_write(st, &e) == 0 && dedup_state_unsynced(st),
	   "state: changes are appended, not yet fsync'd");
	ok(dedup_state_sync(st, &e) == 0 && !dedup_state_unsynced(st), "state: fsync'd");
	text = slurp(path, &len);
	ok(text != NULL && count_lines(text) == 4, "state: header, snapshot line, two appended");
	free(text);
	snap1 = text_of(dedup_state_table(st));
	dedup_state_close(st);

	rc = dedup_state_open(dir, 100, 2000, 60000, &st, &r, &e);
	snap2 = text_of(dedup_state_table(st));
	ok(rc == 0 && dedup_state_existed(st) && r.bad == 0 && strcmp(snap1, snap2) == 0,
	   "state: reopened, the same table");
	free(snap1);
	free(snap2);
	ok(dedup_state_compact(st, &e) == 0, "state: a snapshot");
	text = slurp(path, &len);
	ok(text != NULL && count_lines(text) == 3, "state: ... of the header and two keys");
	free(text);
	ok(stat(path, &sb) == 0 && (snprintf(path + strlen(path), 8, ".tmp"), stat(path, &sb) < 0),
	   "state: no temporary file is left");
	path[strlen(path) - 4] = '\0';

	/* Many changes: the file is written anew before it outgrows twice a snapshot. */
	for (int i = 0; i < 20000; i++) {
		char id[32], qid[32];
		snprintf(id, sizeof(id), "k%d", i % 50);
		snprintf(qid, sizeof(qid), "2.%d.1", i);
		a = mk(id, qid, "warning", 0);
		dedup_decide(dedup_state_table(st), &a, W, 3000 + i, &d);
		if (i % 10 == 0)
			must(dedup_state_write(st, &e) == 0, "write: %s", e.msg);
	}
	must(dedup_state_write(st, &e) == 0, "write: %s", e.msg);
	text = slurp(path, &len);
	snap1 = text_of(dedup_state_table(st));
	ok(text != NULL && len < 2 * strlen(snap1) + (size_t)256 * 1024 + 8192,
	   "state: after 20,000 changes to 52 keys the file is %zu bytes (a snapshot is %zu)", len,
	   strlen(snap1));
	free(text);
	free(snap1);
	snap1 = text_of(dedup_state_table(st));
	dedup_state_close(st);

	/* A writer that stopped in the middle of a line: left out, the rest read. */
	{
		FILE *f = fopen(path, "a");
		must(f != NULL && fputs("k 00112233 s 1", f) >= 0 && fclose(f) == 0, "append");
	}
	rc = dedup_state_open(dir, 100, 11000, 60000, &st, &r, &e);
	snap2 = text_of(dedup_state_table(st));
	ok(rc == 0 && r.bad == 1 && strcmp(r.first_bad, "the last line is cut short") == 0 &&
	       strcmp(snap1, snap2) == 0,
	   "state: a last line cut short is left out; the rest is the table as it was");
	free(snap1);
	free(snap2);
	ok(dedup_state_compact(st, &e) == 0, "state: written anew");
	text = slurp(path, &len2);
	ok(text != NULL && strstr(text, "k 00112233 s 1") == NULL && text[len2 - 1] == '\n',
	   "state: ... without the cut line");
	free(text);
	dedup_state_close(st);

	/* Not a file: an error, and an empty state that works. */
	must(unlink(path) == 0 && mkdir(path, 0700) == 0, "mkdir %s", path);
	rc = dedup_state_open(dir, 100, 1000, 60000, &st, &r, &e);
	ok(rc < 0 && strstr(e.msg, "not a regular file") != NULL &&
	       dedup_table_count(dedup_state_table(st)) == 0,
	   "state: a directory in its place: %s", e.msg);
	a = mk("one", "1.1.1", "warning", 0);
	dedup_decide(dedup_state_table(st), &a, W, 1000, &d);
	ok(dedup_state_write(st, &e) < 0 && strstr(e.msg, "Is a directory") != NULL,
	   "state: ... which cannot be replaced: %s", e.msg);
	a = mk("one", "1.1.2", "warning", 0);
	dedup_decide(dedup_state_table(st), &a, W, 1100, &d);
	ok(d.why == DEDUP_DUP_PENDING, "state: ... while the table goes on in memory");
	dedup_state_close(st);
	must(rmdir(path) == 0, "rmdir %s", path);
	tap_remove_tree(dir);
}

/* ---- a storm: many keys and repeats, at the bound, in bounded time ---- */

static void test_storm(void)
{
	struct dedup_table *t = dedup_table_new(DEDUP_MAX_KEYS);
	struct dedup_alert a;
	struct dedup_decision d;
	unsigned long dups = 0;
	clock_t start = clock();
	double cpu;
	struct buf b;

	memset(&a, 0, sizeof(a));
	a.id = "storm";
	a.channel = "ops";
	for (uint32_t i = 0; i < 300000; i++) {
		char qid[32];
		uint32_t k = (i * 2654435761U) % 80000; /* 80,000 keys, some again */
		snprintf(qid, sizeof(qid), "%u.0.0", i);
		memset(a.key.h, 0, DEDUP_KEY_LEN);
		memcpy(a.key.h, &k, sizeof(k));
		a.qid = qid;
		dedup_decide(t, &a, 3600000, 1000 + i, &d);
		dups += d.duplicate;
		if (i % 64 == 0) {
			buf_init(&b);
			dedup_table_changes(t, &b);
			buf_free(&b);
		}
	}
	buf_init(&b);
	dedup_table_format(t, &b);
	cpu = (double)(clock() - start) / CLOCKS_PER_SEC;
	ok(dedup_table_count(t) == DEDUP_MAX_KEYS && dedup_table_evicted(t) > 0 && dups > 0,
	   "storm: 300,000 decisions over 80,000 keys: the table stays at %d (%lu evicted, %lu "
	   "duplicates)",
	   DEDUP_MAX_KEYS, dedup_table_evicted(t), dups);
	ok(cpu < 3, "storm: within 3 s of CPU, with a snapshot (%.2f s, %zu bytes)", cpu, b.len);
	ok(b.len < (size_t)DEDUP_MAX_KEYS * 200, "storm: a snapshot of %zu bytes for %d keys",
	   b.len, DEDUP_MAX_KEYS);
	buf_free(&b);
	dedup_table_free(t);
}

int main(void)
{
	const char *top = getenv("top_srcdir");

	/* The built-in templates, for the config's check that the channels' template exists. */
	setenv("ALERTMAIL_DATADIR", top != NULL ? top : "..", 1);
	test_fields();
	test_keys();
	test_decisions();
	test_expiry_and_bound();
	test_format();
	test_damage();
	test_settle();
	test_texts();
	test_config();
	test_state();
	test_storm();
	mk_release();
	return done_testing();
}

#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert.h"
#include "channel.h"
#include "commands.h"
#include "conf.h"
#include "mailbox.h"
#include "mailtmpl.h"
#include "notify.h"

static const char test_usage[] =
    "usage: alertmail test [--channel NAME] [--to ADDR]... [--server NAME]\n";

static struct alert *test_alert(const char *channel, struct err *e)
{
	const char *host = config_host_name();
	time_t now = time(NULL);
	struct ynode *t = ynode_new_map();
	struct ynode *labels = ynode_new_map();
	struct alert *a;
	char *id = alert_new_id(now);
	char *tid = xasprintf("test-%s", id);
	char *desc;

	desc = xasprintf("This is a test notification sent with 'alertmail test' through channel "
	                 "'%s'.\nIf you can read this, the channel delivers.",
	                 channel);
	ynode_map_set(t, "id", ynode_new_scalar(tid, strlen(tid), false));
	ynode_map_set(t, "title", ynode_new_scalar("alertmail test notification", 27, false));
	ynode_map_set(t, "severity", ynode_new_scalar("info", 4, false));
	ynode_map_set(t, "source", ynode_new_scalar(host, strlen(host), false));
	ynode_map_set(t, "description", ynode_new_scalar(desc, strlen(desc), false));
	ynode_map_set(labels, "kind", ynode_new_scalar("test", 4, false));
	ynode_map_set(labels, "channel", ynode_new_scalar(channel, strlen(channel), false));
	ynode_map_set(t, "labels", labels);
	free(desc);
	free(tid);
	free(id);
	if (alert_from_tree(t, "test alert", now, &a, e) < 0)
		return NULL;
	return a;
}

static void print_attempt(const struct attempt *a)
{
	const struct server *s = a->server;
	const struct smtp_result *r = &a->result;

	char addr[300];

	server_format_addr(s, addr, sizeof(addr));
	printf("%-12s %s (%s): %s: %s [%lld ms]\n", s->name, addr, tls_mode_name(s->tls),
	       r->outcome == OUTCOME_OK ? "OK" : outcome_name(r->outcome), r->detail,
	       (long long)r->elapsed_ms);
}

int cmd_test(const struct globals *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{"channel", required_argument, NULL, 'C'},
		{"to", required_argument, NULL, 't'},
		{"server", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *channel_name = NULL, *server_name = NULL;
	char **to = xcalloc((size_t)argc, sizeof(*to));
	size_t nto = 0;
	struct config *cfg = NULL;
	const struct channel *ch;
	struct channel one;
	const struct server *only = NULL;
	struct mail_template *tmpl = NULL;
	struct alert *alert = NULL;
	struct notification n = {0};
	struct smtp_pool *pool = NULL;
	struct delivery d = {0};
	const char *dirs[2];
	size_t ndirs;
	struct err e;
	bool quiet;
	int rc = EXIT_USAGE, c;

	optind = 1;
	for (;;) {
		c = getopt_long(argc, argv, "C:t:s:h", opts, NULL);
		if (c == -1)
			break;
		switch (c) {
		case 'C':
			channel_name = optarg;
			break;
		case 't':
			if (message_check_addr(optarg, &e) < 0) {
				/* The argument may hold line breaks: never echo them raw. */
				struct buf shown;
				buf_init(&shown);
				buf_add_escaped(&shown, optarg);
				fprintf(stderr, "alertmail: test: --to %s: %s\n", shown.data,
				        e.msg);
				buf_free(&shown);
				goto out;
			}
			to[nto++] = optarg;
			break;
		case 's':
			server_name = optarg;
			break;
		case 'h':
			fputs(test_usage, stdout);
			rc = EXIT_OK;
			goto out;
		default:
			fputs(test_usage, stderr);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "alertmail: test: unexpected argument '%s'\n", argv[optind]);
		goto out;
	}
	cfg = commands_load_config(g, 0);
	if (cfg == NULL)
		goto out;
	if (channel_name == NULL)
		channel_name = cfg->default_channel;
	if (channel_name == NULL) {
		fprintf(stderr, "alertmail: test: say which channel with --channel NAME\n");
		goto out;
	}
	ch = config_channel(cfg, channel_name);
	if (ch == NULL) {
		fprintf(stderr, "alertmail: test: no channel '%s' in %s; channels:", channel_name,
		        cfg->path);
		for (size_t i = 0; i < cfg->nchannels; i++)
			fprintf(stderr, " %s", cfg->channels[i].name);
		fprintf(stderr, "\n");
		goto out;
	}
	if (server_name != NULL) {
		only = config_server(cfg, server_name);
		if (only == NULL) {
			fprintf(stderr, "alertmail: test: no server '%s' in %s\n", server_name,
			        cfg->path);
			goto out;
		}
		/* A named server need not be in the channel's list: try that one alone. */
		one = *ch;
		one.servers = (struct server **)&only;
		one.nservers = 1;
		ch = &one;
	}
	ndirs = config_template_dirs(cfg, dirs);
	if (mail_template_load(dirs, ndirs, ch->template, &tmpl, &e) < 0) {
		fprintf(stderr, "alertmail: test: %s\n", e.msg);
		goto out;
	}
	alert = test_alert(ch->name, &e);
	if (alert == NULL || notify_build(cfg, ch, tmpl, alert, to, nto, &n, &e) < 0) {
		fprintf(stderr, "alertmail: test: %s\n", e.msg);
		goto out;
	}
	quiet = g->verbosity == 0;
	if (!quiet) {
		printf("sending test notification %s through channel %s to", alert->id, ch->name);
		for (size_t i = 0; i < n.nrcpt; i++)
			printf(" %s", n.rcpt[i]);
		printf("\n");
		(void)fflush(stdout); /* errors: main checks stdout at the end */
	}
	pool = smtp_pool_new(cfg);
	channel_deliver(ch, pool, n.mail_from, n.rcpt, n.nrcpt, n.message.data, n.message.len, &d);
	/* With -q a success prints nothing; a failure still shows every attempt. */
	for (size_t i = 0; i < d.nattempts && (!quiet || d.outcome != OUTCOME_OK); i++)
		print_attempt(&d.attempts[i]);
	if (d.outcome == OUTCOME_OK) {
		if (!quiet)
			printf("delivered through %s\n", d.accepted_by->name);
		rc = EXIT_OK;
	} else {
		printf("not delivered: every server failed (%s)\n", outcome_name(d.outcome));
		rc = EXIT_FAILURE_RUNTIME;
	}
out:
	delivery_free(&d);
	smtp_pool_free(pool);
	notify_free(&n);
	alert_free(alert);
	mail_template_free(tmpl);
	config_free(cfg);
	free(to);
	return rc;
}

/* The config parser: the input is one config file. It is parsed twice, as the commands that
 * read no secret do (CONFIG_NO_SECRETS) and as the daemon does (secrets read: files, variables
 * and sealed values, none of which this environment has, so their errors are what runs).
 * Checks: every error and warning says file:line:column or at least the file, and is one line
 * of text; a config that parses has consistent references (channels to servers, routes and the
 * default channel to channels) and addresses that the message composer takes; it is freed
 * without leaks (LeakSanitizer). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "fuzz.h"
#include "mailbox.h"

#define NAME "fuzz.yaml"

static void check_addr(const char *what, const char *s)
{
	struct mailbox m;
	struct err e;

	if (s == NULL)
		fuzz_fail("%s is missing", what);
	if (mailbox_parse(s, &m, &e) < 0)
		fuzz_fail("%s '%s' was accepted but does not parse: %s", what, s, e.msg);
	mailbox_free(&m);
}

static void check_config(const struct config *c)
{
	fuzz_check_messages("a warning", c->warnings.data, c->warnings.len, NAME ":");
	check_addr("from", c->from);
	if (c->nchannels == 0)
		fuzz_fail("a config without channels was accepted");
	if (c->default_channel != NULL && config_channel(c, c->default_channel) == NULL)
		fuzz_fail("default_channel '%s' is not a channel", c->default_channel);
	for (size_t i = 0; i < c->nchannels; i++) {
		const struct channel *ch = &c->channels[i];

		if (ch->name == NULL || ch->template == NULL)
			fuzz_fail("a channel without a name or template was accepted");
		for (size_t j = 0; j < ch->nservers; j++)
			if (ch->servers[j] < c->servers ||
			    ch->servers[j] >= c->servers + c->nservers)
				fuzz_fail("channel '%s': a server that is not in the config",
				          ch->name);
		for (size_t j = 0; j < ch->nto; j++)
			check_addr("a channel's to", ch->to[j]);
		if (ch->from != NULL)
			check_addr("a channel's from", ch->from);
	}
	for (size_t i = 0; i < c->nroutes; i++)
		for (size_t j = 0; j < c->routes[i].nchannels; j++)
			if (config_channel(c, c->routes[i].channels[j]) == NULL)
				fuzz_fail("a route to '%s', which is not a channel",
				          c->routes[i].channels[j]);
	for (size_t i = 0; i < c->nservers; i++)
		if (c->servers[i].name == NULL || c->servers[i].host == NULL)
			fuzz_fail("a server without a name or host was accepted");
}

static void parse(const uint8_t *data, size_t size, unsigned flags)
{
	struct config *c = NULL;
	struct buf errors;

	buf_init(&errors);
	if (config_parse((const char *)data, size, NAME, flags, &c, &errors) < 0) {
		if (c != NULL)
			fuzz_fail("a refused config gave a config");
		if (errors.len == 0)
			fuzz_fail("a config was refused without a message");
		fuzz_check_messages("an error", errors.data, errors.len, NAME ":");
	} else {
		if (c == NULL)
			fuzz_fail("an accepted config gave none");
		if (errors.len != 0)
			fuzz_fail("an accepted config has errors: %s", errors.data);
		check_config(c);
		config_free(c);
	}
	buf_free(&errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Channels need a template that exists: the built-in default, from the source tree. */
	fuzz_set_datadir();
	parse(data, size, CONFIG_NO_SECRETS);
	parse(data, size, 0);
	return 0;
}

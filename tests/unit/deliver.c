/* Test driver: sends one small message through each named server entry in turn, all through
 * one connection pool, as the daemon will. Prints one line per delivery. Used by pool.test to
 * show that consecutive deliveries to one entry share its connection and that entries never
 * share connections with each other.
 *   deliver CONFIG SERVER...   exit 0 if every delivery was accepted, 1 otherwise */
#include "config.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "channel.h"
#include "conf.h"
#include "smtp.h"

static const char message[] = "From: <alerts@example.com>\r\n"
                              "To: <ops@example.com>\r\n"
                              "Subject: pool test\r\n"
                              "\r\n"
                              "pool test\r\n";

int main(int argc, char **argv)
{
	struct config *cfg;
	struct smtp_pool *pool;
	struct buf errors;
	char *rcpt[] = {"ops@example.com"};
	int failed = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: deliver CONFIG SERVER...\n");
		return 2;
	}
	buf_init(&errors);
	if (config_load(argv[1], &cfg, &errors) < 0) {
		fputs(errors.data, stderr);
		buf_free(&errors);
		return 2;
	}
	buf_free(&errors);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fputs("deliver: cannot initialise libcurl\n", stderr);
		return 2;
	}
	pool = smtp_pool_new(cfg);
	for (int i = 2; i < argc; i++) {
		const struct server *s = config_server(cfg, argv[i]);
		struct smtp_result r;

		if (s == NULL) {
			fprintf(stderr, "deliver: no server '%s'\n", argv[i]);
			failed = 1;
			continue;
		}
		smtp_send(smtp_pool_get(pool, s), "alerts@example.com", rcpt, 1, message,
		          strlen(message), &r);
		printf("%s: %s: %s\n", s->name, outcome_name(r.outcome), r.detail);
		if (r.outcome != OUTCOME_OK)
			failed = 1;
	}
	smtp_pool_free(pool);
	config_free(cfg);
	curl_global_cleanup();
	return failed;
}

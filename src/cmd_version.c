#include "config.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <yaml.h>

#include "commands.h"

int cmd_version(const struct globals *g, int argc, char **argv)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

	(void)g;
	if (argc > 1) {
		fprintf(stderr, "alertmail: version takes no arguments\n");
		return EXIT_USAGE;
	}
	(void)argv;
	printf("alertmail %s\n", PACKAGE_VERSION);
	printf("libcurl %s (%s)\n", cv->version, cv->ssl_version ? cv->ssl_version : "no TLS");
	printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
	printf("libyaml %s\n", yaml_get_version_string());
#ifdef HAVE_LIBSYSTEMD
	printf("libsystemd: yes\n");
#else
	printf("libsystemd: no\n");
#endif
	return EXIT_OK;
}

/* The YAML config: parse with positions, defaults, cross-field validation. */
#ifndef ALERTMAIL_CONF_H
#define ALERTMAIL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "yamltree.h"

enum tls_mode {
	TLS_STARTTLS, /* STARTTLS required (default) */
	TLS_IMPLICIT, /* TLS from the first byte (port 465) */
	TLS_NONE,
};

enum auth_mech {
	AUTH_NONE,
	AUTH_AUTO, /* username given, no mechanism named: PLAIN or LOGIN, never weaker ones */
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_XOAUTH2,
};

/* auth: xoauth2: where the bearer token comes from: a file kept current by something else, or
 * the client-credentials grant. */
struct oauth2_conf {
	char *token_file; /* read again for every session */
	char *tenant;
	char *client_id;
	char *client_secret; /* resolved; never log it */
	char *token_url;     /* the tenant's Entra ID endpoint unless given */
	char *scope;
	char *ca_file; /* for the token endpoint; NULL: the system's */
};

struct server {
	char *name;
	char *host;
	long port;
	enum tls_mode tls;
	bool verify;
	char *ca_file;
	char *client_cert; /* PEM certificate presented to the server (mutual TLS); NULL: none */
	char *client_key;  /* its private key; NULL: in client_cert */
	enum auth_mech auth;
	char *username;
	char *password; /* the resolved secret: never log it */
	bool allow_plaintext_auth;
	int64_t timeout_ms;         /* each wait for a reply */
	int64_t connect_timeout_ms; /* TCP, greeting, TLS, EHLO and AUTH together */
	int64_t total_timeout_ms;   /* a whole delivery */
	long max_connections;
	long rate_count; /* 0: no limit */
	int64_t rate_period_ms;
	char *helo; /* EHLO name; NULL: this host's name */
	struct oauth2_conf oauth2; /* auth xoauth2 */
	unsigned line, column;
};

struct channel {
	char *name;
	struct server **servers; /* failover order, primary first */
	size_t nservers;
	char **to;
	size_t nto;
	char *template;
	char *from; /* NULL: the global from */
	int64_t switch_back_after_ms;
	unsigned line, column;
	/* De-duplication, the channel's own or the top level's: dedup_window (0: off) and the
	 * fields of an alert that make its key (dotted paths; default [id]). */
	int64_t dedup_window_ms;
	char **dedup_key;
	size_t ndedup_key;
};

struct route {
	struct ynode *match; /* a mapping of field (dotted) -> value or glob */
	char **channels;
	size_t nchannels;
	bool cont;
	unsigned line, column;
};

struct config {
	char *path;
	char *spool;
	char *state;
	char *templates;
	char *from;
	char *default_channel;
	char *user; /* user: the daemon started as root becomes this user (NULL: none given) */
	/* The secret files the config names (not systemd credentials), for the checks of who may
	 * read them. */
	char **secret_files;
	size_t nsecret_files;
	struct server *servers;
	size_t nservers;
	struct channel *channels;
	size_t nchannels;
	struct route *routes;
	size_t nroutes;
	size_t max_alert_size; /* bytes; larger alert files are refused (default 1 MiB) */
	int64_t retry_initial_ms;
	int64_t retry_max_interval_ms;
	int64_t retry_give_up_after_ms;
	/* Things that are allowed but unwise, one per line, with positions. */
	struct buf warnings;
	/* De-duplication at the top level: what channels take unless they say otherwise. */
	int64_t dedup_window_ms;
	char **dedup_key;
	size_t ndedup_key;
};

/* The longest channel name: an alert's queue id and its retry state carry the name of the
 * channel it is pinned to. */
#define CONFIG_CHANNEL_NAME_MAX 64

/* The largest config file read. */
#define CONFIG_MAX_SIZE ((size_t)4 * 1024 * 1024)
/* The state directory (the host key for sealed values) when the config names none. */
#define CONFIG_STATE_DEFAULT LOCALSTATEDIR "/lib/alertmail"

/* This machine's host name, for the defaults made from it (from, the EHLO name) and for
 * templates; "localhost" when it has none. Valid until the next call. */
const char *config_host_name(void);

/* Where the config is: -c FILE, else $ALERTMAIL_CONFIG, else the compiled-in default. */
const char *config_default_path(const char *cli_path);

/* Loads and validates the config. On failure returns -1 with every error found appended to
 * errors, one per line, each "file:line:column: what is wrong, what was expected". */
int config_load(const char *path, struct config **out, struct buf *errors);
/* Flags for config_load_flags(). CONFIG_NO_SECRETS: read no password (file or environment),
 * for commands that send no mail and may run as another user than the daemon (submit, queue,
 * retry); passwords stay NULL. */
#define CONFIG_NO_SECRETS 1u
int config_load_flags(const char *path, unsigned flags, struct config **out,
                      struct buf *errors);
/* The same for a config in memory (len bytes of YAML); name stands for the file in positions
 * and in the config's path. */
int config_parse(const char *data, size_t len, const char *name, unsigned flags,
                 struct config **out, struct buf *errors);
void config_free(struct config *c);

const struct server *config_server(const struct config *c, const char *name);
const struct channel *config_channel(const struct config *c, const char *name);
/* The template search path: the configured directory, then the built-in one. */
size_t config_template_dirs(const struct config *c, const char *dirs[2]);

/* "host:port", or "[v6]:port" for an IPv6 address, for messages. */
void server_format_addr(const struct server *s, char *out, size_t len);

const char *tls_mode_name(enum tls_mode m);
const char *auth_mech_name(enum auth_mech m);

/* Edit distance, for "did you mean" suggestions; exposed for tests. */
size_t config_edit_distance(const char *a, const char *b);

#endif

/* Sealed values: the primitives against RFC 7748 and RFC 5869, the whole format against
 * vectors made by an independent implementation (seal_kat.h, from seal_ref.py), every kind of
 * damaged value, the host key files (modes, creation, rotation), the config's password_sealed,
 * and secret files under systemd's $CREDENTIALS_DIRECTORY. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "hostkey.h"
#include "seal.h"
#include "seal_kat.h"
#include "secret.h"
#include "tap.h"

static char dir[256];

static void unhex(const char *hex, unsigned char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char byte[3] = {hex[2 * i], '\0', '\0'};
		if (!isxdigit((unsigned char)byte[0]) || !isxdigit((unsigned char)hex[2 * i + 1]))
			exit(99);
		byte[1] = hex[2 * i + 1];
		out[i] = (unsigned char)strtoul(byte, NULL, 16);
	}
}

static int hex_is(const unsigned char *got, const char *want_hex)
{
	size_t len = strlen(want_hex) / 2;
	unsigned char *want = malloc(len);
	int same;

	if (want == NULL)
		exit(99);
	unhex(want_hex, want, len);
	same = memcmp(got, want, len) == 0;
	free(want);
	return same;
}

static EVP_PKEY *raw_key(const char *priv_hex)
{
	unsigned char priv[32];

	unhex(priv_hex, priv, 32);
	return EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
}

static void write_file(const char *p, const char *text, mode_t mode)
{
	FILE *f = fopen(p, "w");

	if (f == NULL) {
		perror(p);
		exit(99);
	}
	fputs(text, f);
	must(fclose(f) == 0 && chmod(p, mode) == 0, "write %s", p);
}

static char *path_in(const char *d, const char *name)
{
	return xasprintf("%s/%s", d, name);
}

static void test_x25519(void)
{
	static const struct {
		const char *k, *u, *out;
	} rfc7748_5_2[] = {
	    {"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
	     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
	     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
	    {"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
	     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
	     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
	};
	unsigned char k[32], u[32], out[32], pub[32];
	EVP_PKEY *alice, *bob;

	for (size_t i = 0; i < 2; i++) {
		unhex(rfc7748_5_2[i].k, k, 32);
		unhex(rfc7748_5_2[i].u, u, 32);
		ok(seal_x25519(k, u, out) == 0 && hex_is(out, rfc7748_5_2[i].out),
		   "x25519: RFC 7748 section 5.2, vector %zu", i + 1);
	}
	/* The iteration of section 5.2: k and u start as the base point 9. */
	memset(k, 0, 32);
	k[0] = 9;
	memcpy(u, k, 32);
	for (int i = 1; i <= 1000; i++) {
		if (seal_x25519(k, u, out) < 0)
			break;
		memcpy(u, k, 32);
		memcpy(k, out, 32);
		if (i == 1)
			ok(hex_is(
			       k,
			       "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"),
			   "x25519: RFC 7748 section 5.2, after one iteration");
	}
	ok(hex_is(k, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"),
	   "x25519: RFC 7748 section 5.2, after 1,000 iterations");

	/* Section 6.1: the key pairs of Alice and Bob, and their shared secret both ways. */
	alice = raw_key("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	bob = raw_key("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
	ok(seal_public(alice, pub, NULL) == 0 &&
	       hex_is(pub, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
	   "x25519: RFC 7748 section 6.1, Alice's public key");
	ok(seal_public(bob, pub, NULL) == 0 &&
	       hex_is(pub, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
	   "x25519: RFC 7748 section 6.1, Bob's public key");
	unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", k, 32);
	ok(seal_x25519(k, pub, out) == 0 &&
	       hex_is(out, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
	   "x25519: RFC 7748 section 6.1, the shared secret (Alice's side)");
	seal_public(alice, pub, NULL);
	unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", k, 32);
	ok(seal_x25519(k, pub, out) == 0 &&
	       hex_is(out, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"),
	   "x25519: RFC 7748 section 6.1, the shared secret (Bob's side)");
	EVP_PKEY_free(alice);
	EVP_PKEY_free(bob);
	/* A point of small order gives an all-zero secret: refused. */
	memset(u, 0, 32);
	ok(seal_x25519(k, u, out) < 0, "x25519: a peer key of small order (0) is refused");
	memset(u, 0, 32);
	u[0] = 1;
	ok(seal_x25519(k, u, out) < 0, "x25519: a peer key of small order (1) is refused");
}

static void test_hkdf(void)
{
	unsigned char ikm[80], salt[80], info[80], okm[82];

	memset(ikm, 0x0b, 22);
	unhex("000102030405060708090a0b0c", salt, 13);
	unhex("f0f1f2f3f4f5f6f7f8f9", info, 10);
	ok(seal_hkdf_sha256(salt, 13, ikm, 22, info, 10, okm, 42) == 0 &&
	       hex_is(okm, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	                   "34007208d5b887185865"),
	   "hkdf-sha256: RFC 5869 test case 1");
	for (int i = 0; i < 80; i++) {
		ikm[i] = (unsigned char)i;
		salt[i] = (unsigned char)(0x60 + i);
		info[i] = (unsigned char)(0xb0 + i);
	}
	ok(seal_hkdf_sha256(salt, 80, ikm, 80, info, 80, okm, 82) == 0 &&
	       hex_is(okm, "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
	                   "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
	                   "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
	   "hkdf-sha256: RFC 5869 test case 2 (longer inputs)");
	memset(ikm, 0x0b, 22);
	ok(seal_hkdf_sha256(NULL, 0, ikm, 22, NULL, 0, okm, 42) == 0 &&
	       hex_is(okm, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	                   "9d201395faa4b61a96c8"),
	   "hkdf-sha256: RFC 5869 test case 3 (no salt, no info)");
}

/* The known answers: what seal_ref.py made, alertmail makes; what it made, alertmail opens. */
static void test_kat(void)
{
	for (size_t i = 0; i < sizeof(seal_kats) / sizeof(seal_kats[0]); i++) {
		const struct seal_kat *v = &seal_kats[i];
		unsigned char pub[32], eph[32], nonce[12], parsed[32];
		char text[SEAL_PUBKEY_TEXT_LEN], fp[SEAL_FP_LEN];
		EVP_PKEY *key = raw_key(v->host_priv);
		char *sealed = NULL, *plain = NULL;
		struct err e;
		int rc;

		unhex(v->host_pub, pub, 32);
		unhex(v->eph_priv, eph, 32);
		unhex(v->nonce, nonce, 12);
		rc = seal_encrypt_with(pub, eph, nonce, v->plain, v->plain_len, &sealed, &e);
		is_str(rc == 0 ? sealed : e.msg, v->sealed, "kat %zu: sealed as the reference does",
		       i + 1);
		free(sealed);
		rc = seal_decrypt(key, v->sealed, &plain, &e);
		ok(rc == 0 && strlen(plain) == v->plain_len &&
		       memcmp(plain, v->plain, v->plain_len) == 0,
		   "kat %zu: the reference's value opens to its %zu bytes", i + 1, v->plain_len);
		secret_free(plain);
		seal_pubkey_format(pub, text);
		is_str(text, v->pubkey_text, "kat %zu: the public key as text", i + 1);
		ok(seal_pubkey_parse(text, parsed, &e) == 0 && memcmp(parsed, pub, 32) == 0,
		   "kat %zu: and read back", i + 1);
		seal_fingerprint(pub, fp);
		is_str(fp, v->fingerprint, "kat %zu: the fingerprint", i + 1);
		EVP_PKEY_free(key);
	}
}

/* How a damaged value fares: never opened, never a plaintext, and the error says which kind. */
static int refused(EVP_PKEY *key, const char *sealed, int want_rc, const char *want_msg)
{
	char *plain = (char *)1;
	struct err e = {{0}};
	int rc = seal_decrypt(key, sealed, &plain, &e);

	if (rc == 0) {
		diag("opened: '%s'", sealed);
		secret_free(plain);
		return 0;
	}
	if (plain != NULL || (want_rc != 0 && rc != want_rc) ||
	    (want_msg != NULL && strstr(e.msg, want_msg) == NULL)) {
		diag("'%s': rc %d: %s", sealed, rc, e.msg);
		return 0;
	}
	return 1;
}

static void test_damage(void)
{
	const struct seal_kat *v = &seal_kats[1];
	EVP_PKEY *key = raw_key(v->host_priv), *other = NULL;
	size_t len = strlen(v->sealed), bad = 0, tried = 0, wrong_msg = 0;
	char *b = xstrdup(v->sealed);
	unsigned char pub[32];
	char *sealed = NULL, *plain = NULL;
	struct err e;

	/* Every byte flipped, each bit in turn: refused, and once past the header and the base64,
	 * as "cannot open". */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			char *plain2 = NULL;
			int rc;
			b[i] = (char)(v->sealed[i] ^ (1 << bit));
			tried++;
			rc = seal_decrypt(key, b, &plain2, &e);
			if (rc == 0 || plain2 != NULL) {
				bad++;
				diag("altered at %zu (bit %d) and still opened", i, bit);
				secret_free(plain2);
			} else if (rc == SEAL_NOT_OPENED &&
			           strcmp(e.msg, "cannot open: sealed to another host's key, or "
			                         "altered") != 0) {
				wrong_msg++;
			}
		}
		b[i] = v->sealed[i];
	}
	ok(bad == 0 && wrong_msg == 0, "damage: all %zu values with one bit flipped are refused",
	   tried);
	free(b);

	/* Cut short anywhere. */
	bad = 0;
	for (size_t n = 0; n < len; n++) {
		char *cut = xstrndup(v->sealed, n);
		bad += !refused(key, cut, 0, NULL);
		free(cut);
	}
	ok(bad == 0, "damage: the value cut short at each of its %zu lengths is refused", len);
	b = xstrndup(v->sealed, 10 + 80);
	ok(refused(key, b, SEAL_MALFORMED, "truncated: 60 bytes"),
	   "damage: too short to hold a secret: 'truncated'");
	free(b);
	b = xstrndup(v->sealed, len - 4);
	ok(refused(key, b, SEAL_NOT_OPENED, "cannot open"),
	   "damage: a tag cut off whole groups of base64: 'cannot open'");
	free(b);

	/* Another key. */
	seal_keygen(&other, &e);
	ok(refused(other, v->sealed, SEAL_NOT_OPENED,
	           "cannot open: sealed to another host's key, or altered"),
	   "damage: another key: 'sealed to another host's key, or altered'");
	seal_public(other, pub, NULL);
	seal_encrypt(pub, "for the other host", 18, &sealed, &e);
	ok(refused(key, sealed, SEAL_NOT_OPENED, "another host's key"),
	   "damage: a value sealed to another key does not open with this one");
	ok(seal_decrypt(other, sealed, &plain, &e) == 0 && strcmp(plain, "for the other host") == 0,
	   "damage: ... and opens with its own");
	secret_free(plain);
	free(sealed);
	EVP_PKEY_free(other);

	/* Versions and shapes. */
	b = xasprintf("sealed:v2:%s", v->sealed + 10);
	ok(refused(key, b, SEAL_MALFORMED, "sealed in format 'v2', which this version"),
	   "damage: a later version is named");
	free(b);
	b = xasprintf("sealed:v0:%s", v->sealed + 10);
	ok(refused(key, b, SEAL_MALFORMED, "format 'v0'"), "damage: v0 is not v1");
	free(b);
	b = xasprintf("Sealed:v1:%s", v->sealed + 10);
	ok(refused(key, b, SEAL_MALFORMED, "not a sealed value"), "damage: the header is exact");
	free(b);
	ok(refused(key, "", SEAL_MALFORMED, "not a sealed value"), "damage: empty");
	ok(refused(key, "sealed:v1:", SEAL_MALFORMED, "not base64"), "damage: a header alone");
	ok(refused(key, "hunter2", SEAL_MALFORMED, "not a sealed value"),
	   "damage: a password where a sealed value belongs is refused, and not repeated");
	b = xasprintf("%.40s\n%s", v->sealed, v->sealed + 40);
	ok(refused(key, b, SEAL_MALFORMED, "not base64"), "damage: a line break inside");
	free(b);
	b = xasprintf("%.40s %s", v->sealed, v->sealed + 40);
	ok(refused(key, b, SEAL_MALFORMED, "not base64"), "damage: a space inside");
	free(b);
	b = xasprintf("%.40s*%s", v->sealed, v->sealed + 41);
	ok(refused(key, b, SEAL_MALFORMED, "not base64"), "damage: a character not of base64");
	free(b);
	b = xasprintf("%s=", v->sealed);
	ok(refused(key, b, SEAL_MALFORMED, "not base64"), "damage: padding too long");
	free(b);
	b = xstrdup(seal_kats[0].sealed);
	b[strlen(b) - 1] = 'A'; /* "==" becomes "=A": data after the padding */
	ok(refused(key, b, SEAL_MALFORMED, "not base64"), "damage: data after the padding");
	free(b);
	EVP_PKEY_free(key);
}

static void test_seal_limits(void)
{
	unsigned char pub[32], eph[32], nonce[12];
	char *big = xmalloc(SECRET_MAX_SIZE + 1);
	char *sealed = NULL, *plain = NULL, *sealed2 = NULL;
	EVP_PKEY *key = NULL;
	struct err e;

	seal_keygen(&key, &e);
	seal_public(key, pub, NULL);
	ok(seal_encrypt(pub, "", 0, &sealed, &e) < 0 && sealed == NULL,
	   "seal: an empty secret is refused");
	memset(big, 'x', SECRET_MAX_SIZE + 1);
	ok(seal_encrypt(pub, big, SECRET_MAX_SIZE + 1, &sealed, &e) < 0,
	   "seal: a secret over %d bytes is refused", SECRET_MAX_SIZE);
	ok(seal_encrypt(pub, big, SECRET_MAX_SIZE, &sealed, &e) == 0 &&
	       seal_decrypt(key, sealed, &plain, &e) == 0 && strlen(plain) == SECRET_MAX_SIZE,
	   "seal: a secret of exactly %d bytes goes through", SECRET_MAX_SIZE);
	secret_free(plain);
	free(sealed);
	free(big);
	ok(seal_encrypt(pub, "same", 4, &sealed, &e) == 0 &&
	       seal_encrypt(pub, "same", 4, &sealed2, &e) == 0 && strcmp(sealed, sealed2) != 0,
	   "seal: the same secret sealed twice gives two different values");
	free(sealed);
	free(sealed2);
	/* Sealed by someone else with a NUL inside: authentic, but not a usable password. */
	memset(eph, 7, 32);
	memset(nonce, 1, 12);
	seal_encrypt_with(pub, eph, nonce, "a\0b", 3, &sealed, &e);
	ok(refused(key, sealed, SEAL_MALFORMED, "contains a NUL byte"),
	   "seal: a sealed secret with a NUL byte is refused");
	free(sealed);
	memset(pub, 0, 32);
	ok(seal_encrypt(pub, "x", 1, &sealed, &e) < 0 && strstr(e.msg, "not a usable public key"),
	   "seal: to a public key of small order: refused");
	ok(seal_pubkey_parse("  alertmail-x25519:3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=\n",
	                     pub, &e) == 0,
	   "pubkey: white space around is fine");
	ok(seal_pubkey_parse("alertmail-x25519:3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK0=", pub,
	                     &e) < 0 &&
	       strstr(e.msg, "not a public key as alertmail secret pubkey prints it"),
	   "pubkey: too short: refused");
	ok(seal_pubkey_parse("x25519:3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=", pub, &e) < 0,
	   "pubkey: without its prefix: refused");
	ok(seal_pubkey_parse("alertmail-x25519:3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK09=", pub,
	                     &e) < 0,
	   "pubkey: non-canonical base64: refused");
	EVP_PKEY_free(key);
}

static mode_t mode_of(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? st.st_mode & 07777 : 0;
}

static void test_hostkey(void)
{
	char *state = path_in(dir, "state");
	char *keyfile = path_in(state, HOSTKEY_FILE);
	char *oldfile = path_in(state, HOSTKEY_OLD_FILE);
	char fp1[SEAL_FP_LEN], fp2[SEAL_FP_LEN], fp3[SEAL_FP_LEN], prev[SEAL_FP_LEN];
	EVP_PKEY *key = NULL, *again = NULL;
	unsigned char pub[32];
	char *v1 = NULL, *v2 = NULL, *plain = NULL;
	struct secret_ctx ctx = {state};
	struct err e, note;
	bool created = false;
	int rc;

	ok(hostkey_load(state, HOSTKEY_CURRENT, &key, &e) == 1 && key == NULL,
	   "hostkey: none in a state directory that does not exist yet");
	ok(hostkey_open(state, seal_kats[0].sealed, &plain, prev, &e) == SEAL_NOT_OPENED &&
	       strstr(e.msg, "this host has no key yet") && strstr(e.msg, "secret pubkey"),
	   "hostkey: without a key, a sealed value says how to make one: %s", e.msg);
	rc = hostkey_ensure(state, &key, &created, &e);
	ok(rc == 0 && created && key != NULL, "hostkey: made, with the state directory");
	ok(mode_of(keyfile) == 0600, "hostkey: the key file is mode 0600 (%04o)",
	   (unsigned)mode_of(keyfile));
	ok(mode_of(state) == 0700, "hostkey: the state directory it made is mode 0700");
	hostkey_fingerprint(key, fp1);
	EVP_PKEY_free(key);
	rc = hostkey_ensure(state, &again, &created, &e);
	hostkey_fingerprint(again, fp2);
	ok(rc == 0 && !created && strcmp(fp1, fp2) == 0, "hostkey: made once, then loaded");
	seal_public(again, pub, NULL);
	EVP_PKEY_free(again);
	seal_encrypt(pub, "first secret", 12, &v1, &e);
	ok(hostkey_open(state, v1, &plain, prev, &e) == 0 && strcmp(plain, "first secret") == 0 &&
	       prev[0] == '\0',
	   "hostkey: a value sealed to it opens, with the current key");
	secret_free(plain);

	must(chmod(keyfile, 0644) == 0, "chmod %s", keyfile);
	ok(hostkey_load(state, HOSTKEY_CURRENT, &key, &e) < 0 &&
	       strstr(e.msg, "accessible by group or others (mode 0644)") &&
	       strstr(e.msg, "chmod 600"),
	   "hostkey: mode 0644 is refused, with what to do: %s", e.msg);
	must(chmod(keyfile, 0640) == 0, "chmod %s", keyfile);
	ok(hostkey_open(state, v1, &plain, prev, &e) < 0 && plain == NULL &&
	       strstr(e.msg, "(mode 0640)"),
	   "hostkey: mode 0640 is refused when opening a value too");
	must(chmod(keyfile, 0600) == 0, "chmod %s", keyfile);

	/* Rotation: the old key is kept and still opens, saying so. */
	rc = hostkey_rotate(state, &key, &e);
	hostkey_fingerprint(key, fp3);
	ok(rc == 0 && strcmp(fp3, fp1) != 0, "hostkey: rotated to a new key");
	ok(mode_of(keyfile) == 0600 && mode_of(oldfile) == 0600,
	   "hostkey: after rotation both files are mode 0600");
	seal_public(key, pub, NULL);
	EVP_PKEY_free(key);
	rc = hostkey_open(state, v1, &plain, prev, &e);
	ok(rc == 1 && strcmp(plain, "first secret") == 0 && strcmp(prev, fp1) == 0,
	   "hostkey: a value sealed before the rotation opens with the previous key");
	secret_free(plain);
	rc = secret_resolve(&ctx, SECRET_SEALED, v1, &plain, &note, &e);
	ok(rc == 0 && strstr(note.msg, "sealed to the previous host key") &&
	       strstr(note.msg, fp1) && strstr(note.msg, "alertmail secret seal"),
	   "secret: such a value comes with a warning naming the key: %s", note.msg);
	secret_free(plain);
	seal_encrypt(pub, "second secret", 13, &v2, &e);
	rc = secret_resolve(&ctx, SECRET_SEALED, v2, &plain, &note, &e);
	ok(rc == 0 && strcmp(plain, "second secret") == 0 && note.msg[0] == '\0',
	   "secret: a value sealed to the new key opens without a warning");
	secret_free(plain);
	ok(secret_resolve(NULL, SECRET_SEALED, v2, &plain, &note, &e) < 0 && plain == NULL,
	   "secret: without a state directory, no sealed value");

	/* A second rotation discards the first key. */
	ok(hostkey_rotate(state, &key, &e) == 0, "hostkey: rotated again");
	EVP_PKEY_free(key);
	ok(hostkey_open(state, v1, &plain, prev, &e) == SEAL_NOT_OPENED && plain == NULL &&
	       strstr(e.msg, "cannot open: sealed to another host's key, or altered"),
	   "hostkey: the value of two keys ago no longer opens");
	ok(hostkey_open(state, v2, &plain, prev, &e) == 1, "hostkey: the last key's still does");
	secret_free(plain);

	/* Files that are not a usable key. */
	write_file(keyfile, "not a key\n", 0600);
	ok(hostkey_load(state, HOSTKEY_CURRENT, &key, &e) < 0 &&
	       strstr(e.msg, "not an X25519 private key"),
	   "hostkey: a file that is no key is refused: %s", e.msg);
	unlink(keyfile);
	ok(symlink(oldfile, keyfile) == 0 && hostkey_load(state, HOSTKEY_CURRENT, &key, &e) < 0,
	   "hostkey: a symbolic link is refused");
	unlink(keyfile);
	must(chmod(oldfile, 0604) == 0, "chmod %s", oldfile);
	rc = hostkey_open(state, v2, &plain, prev, &e);
	ok(rc < 0 && strstr(e.msg, "this host has no key yet"), "hostkey: no current key");
	ok(hostkey_rotate(state, &key, &e) < 0 && strstr(e.msg, "no host key to rotate"),
	   "hostkey: nothing to rotate without a key");
	ok(hostkey_ensure(state, &key, &created, &e) == 0 && created, "hostkey: made anew");
	EVP_PKEY_free(key);
	rc = hostkey_open(state, v2, &plain, prev, &e);
	ok(rc < 0 && strstr(e.msg, "previous key is unusable") && strstr(e.msg, "(mode 0604)"),
	   "hostkey: a previous key readable by others is refused: %s", e.msg);
	free(v1);
	free(v2);
	free(keyfile);
	free(oldfile);
	free(state);
}

/* The config: password_sealed as one more password source. */
static struct buf errors;

static struct config *load_config(const char *cfg_path, const char *server_lines, unsigned flags)
{
	struct config *c = NULL;
	char *text = xasprintf("spool: %s/spool\nstate: %s/cstate\ntemplates: %s/tpl\n"
	                       "from: alerts@example.com\n"
	                       "servers:\n  o365:\n    host: localhost\n    username: u\n%s"
	                       "channels:\n  ops: { servers: [o365], to: ops@example.com }\n",
	                       dir, dir, dir, server_lines);

	write_file(cfg_path, text, 0600);
	free(text);
	buf_reset(&errors);
	config_load_flags(cfg_path, flags, &c, &errors);
	return c;
}

static int has(const char *needle)
{
	return errors.data != NULL && strstr(errors.data, needle) != NULL;
}

static void test_config(void)
{
	char *cfg = path_in(dir, "alertmail.yaml");
	char *state = path_in(dir, "cstate");
	char *lines, *sealed = NULL, *want;
	unsigned char pub[32];
	struct config *c;
	EVP_PKEY *key = NULL, *other = NULL;
	bool created;
	struct err e;

	buf_init(&errors);
	lines = xasprintf("%s/tpl/default/subject.mustache", dir);
	*strrchr(lines, '/') = '\0';
	*strrchr(lines, '/') = '\0';
	must(mkdir(lines, 0700) == 0, "mkdir %s", lines);
	lines[strlen(lines)] = '/';
	must(mkdir(lines, 0700) == 0, "mkdir %s", lines);
	lines[strlen(lines)] = '/';
	write_file(lines, "{{title}}", 0600);
	free(lines);
	must(hostkey_ensure(state, &key, &created, &e) == 0, "hostkey_ensure: %s", e.msg);
	seal_public(key, pub, NULL);
	seal_encrypt(pub, "s3cret pw", 9, &sealed, &e);
	lines = xasprintf("    password_sealed: %s\n", sealed);
	c = load_config(cfg, lines, 0);
	ok(c != NULL && strcmp(c->servers[0].password, "s3cret pw") == 0 &&
	       c->warnings.data == NULL,
	   "config: password_sealed opens to the password, without a warning %s",
	   errors.data ? errors.data : "");
	config_free(c);
	c = load_config(cfg, lines, CONFIG_NO_SECRETS);
	ok(c != NULL && c->servers[0].password == NULL,
	   "config: CONFIG_NO_SECRETS opens no sealed value");
	config_free(c);
	free(lines);
	free(sealed);

	/* Sealed to another host's key: the position, the server and the key. */
	seal_keygen(&other, &e);
	seal_public(other, pub, NULL);
	seal_encrypt(pub, "s3cret pw", 9, &sealed, &e);
	lines = xasprintf("    password_sealed: %s\n", sealed);
	c = load_config(cfg, lines, 0);
	want = xasprintf("%s:9:22: server 'o365': password_sealed: cannot open: sealed to another "
	                 "host's key, or altered",
	                 cfg);
	ok(c == NULL && has(want) && !has("s3cret"), "config: a foreign value: %s", errors.data);
	free(want);
	c = load_config(cfg, lines, CONFIG_NO_SECRETS);
	ok(c != NULL, "config: CONFIG_NO_SECRETS does not try it");
	config_free(c);
	free(lines);
	free(sealed);
	EVP_PKEY_free(other);

	c = load_config(cfg, "    password_sealed: hunter2\n", 0);
	ok(c == NULL && has("server 'o365': password_sealed: not a sealed value"),
	   "config: a plain password under password_sealed is refused");
	c = load_config(cfg, "    password_sealed: sealed:v1:AAAA\n    password_env: X\n", 0);
	ok(c == NULL &&
	       has("give only one of password_file, password_env, password_sealed, password"),
	   "config: password_sealed excludes the other sources");
	c = load_config(cfg, "    password: inline\n", 0);
	ok(c != NULL && strstr(c->warnings.data, "password_sealed"),
	   "config: the inline password's warning names password_sealed");
	config_free(c);
	c = load_config(cfg, "    auth: login\n", 0);
	ok(c == NULL && has("password_sealed"), "config: 'needs a password' names password_sealed");
	EVP_PKEY_free(key);

	/* After a rotation: opens, with a warning at its position naming the key. */
	hostkey_load(state, HOSTKEY_CURRENT, &key, &e);
	seal_public(key, pub, NULL);
	EVP_PKEY_free(key);
	seal_encrypt(pub, "old pw", 6, &sealed, &e);
	must(hostkey_rotate(state, &key, &e) == 0, "hostkey_rotate: %s", e.msg);
	EVP_PKEY_free(key);
	lines = xasprintf("    password_sealed: %s\n", sealed);
	c = load_config(cfg, lines, 0);
	want = xasprintf("%s:9:22: server 'o365': password_sealed: sealed to the previous host key",
	                 cfg);
	ok(c != NULL && strcmp(c->servers[0].password, "old pw") == 0 &&
	       strstr(c->warnings.data, want) && strstr(c->warnings.data, "host.key.old"),
	   "config: after a rotation it opens, with a warning: %s",
	   c != NULL ? c->warnings.data : errors.data);
	free(want);
	config_free(c);
	free(lines);
	free(sealed);
	buf_free(&errors);
	free(state);
	free(cfg);
}

/* Secret files given as $CREDENTIALS_DIRECTORY/NAME, and the modes systemd gives them. */
static void test_credentials(void)
{
	char *cred = path_in(dir, "credentials");
	char *other = path_in(dir, "elsewhere");
	char *file = path_in(cred, "o365.pass");
	char *file2 = path_in(other, "o365.pass");
	char *cfg = path_in(dir, "cred.yaml");
	char *out = NULL, *want;
	struct config *c;
	struct err e;

	must(mkdir(cred, 0700) == 0, "mkdir %s", cred);
	must(mkdir(other, 0700) == 0, "mkdir %s", other);
	write_file(file, "credpw\n", 0440);
	write_file(file2, "credpw\n", 0440);

	unsetenv("CREDENTIALS_DIRECTORY");
	ok(secret_path_expand("$CREDENTIALS_DIRECTORY/o365.pass", &out, &e) < 0 && out == NULL &&
	       strstr(e.msg, "$CREDENTIALS_DIRECTORY is not set") &&
	       strstr(e.msg, "LoadCredential="),
	   "credentials: unset, the error says systemd's LoadCredential= sets it: %s", e.msg);
	ok(secret_path_expand("$CREDENTIALS_DIRECTORY/o365.pass", NULL, &e) == 0,
	   "credentials: the form alone can be checked without it");
	ok(secret_read_file(file, &out, &e) < 0 && strstr(e.msg, "chmod 600"),
	   "credentials: without the variable, mode 0440 is refused as anywhere");

	setenv("CREDENTIALS_DIRECTORY", cred, 1);
	want = xasprintf("%s/o365.pass", cred);
	ok(secret_path_expand("$CREDENTIALS_DIRECTORY/o365.pass", &out, &e) == 0 &&
	       strcmp(out, want) == 0,
	   "credentials: $CREDENTIALS_DIRECTORY/NAME is expanded");
	free(out);
	ok(secret_path_expand("${CREDENTIALS_DIRECTORY}/o365.pass", &out, &e) == 0 &&
	       strcmp(out, want) == 0,
	   "credentials: ${CREDENTIALS_DIRECTORY}/NAME too");
	free(out);
	free(want);
	ok(secret_path_expand("$CREDENTIALS_DIRECTORY/a/b", &out, &e) < 0 &&
	       secret_path_expand("$CREDENTIALS_DIRECTORY/..", &out, &e) < 0 &&
	       secret_path_expand("$CREDENTIALS_DIRECTORY/", &out, &e) < 0,
	   "credentials: a NAME with '/', '..' or nothing is refused");
	ok(secret_path_expand("o365.pass", &out, &e) < 0 && strstr(e.msg, "absolute path"),
	   "credentials: a relative path is still refused");

	ok(secret_read_file(file, &out, &e) == 0 && strcmp(out, "credpw") == 0,
	   "credentials: mode 0440 (systemd's ACL) is fine in $CREDENTIALS_DIRECTORY");
	secret_free(out);
	must(chmod(file, 0400) == 0, "chmod %s", file);
	ok(secret_read_file(file, &out, &e) == 0, "credentials: mode 0400 too");
	secret_free(out);
	must(chmod(file, 0444) == 0, "chmod %s", file);
	ok(secret_read_file(file, &out, &e) < 0 && strstr(e.msg, "accessible by others"),
	   "credentials: readable by others: refused: %s", e.msg);
	must(chmod(file, 0460) == 0, "chmod %s", file);
	ok(secret_read_file(file, &out, &e) < 0, "credentials: writable by the group: refused");
	must(chmod(file, 0440) == 0, "chmod %s", file);
	ok(secret_read_file(file2, &out, &e) < 0 && strstr(e.msg, "chmod 600"),
	   "credentials: mode 0440 elsewhere is refused as before");
	must(chmod(cred, 0755) == 0, "chmod %s", cred);
	ok(secret_read_file(file, &out, &e) < 0 && strstr(e.msg, "chmod 600"),
	   "credentials: a directory others can enter is not systemd's: strict again");
	must(chmod(cred, 0500) == 0, "chmod %s", cred);
	ok(secret_read_file(file, &out, &e) == 0,
	   "credentials: a read-only directory, as systemd leaves it, is fine");
	secret_free(out);
	must(chmod(cred, 0700) == 0, "chmod %s", cred);
	unlink(file2);
	ok(symlink(file, file2) == 0 && chmod(other, 0700) == 0 &&
	       secret_read_file(file2, &out, &e) < 0,
	   "credentials: a link to a credential, from elsewhere, is refused");
	setenv("CREDENTIALS_DIRECTORY", other, 1);
	ok(secret_read_file(file2, &out, &e) < 0,
	   "credentials: a link in the credentials directory is refused");

	/* Through the config. */
	setenv("CREDENTIALS_DIRECTORY", cred, 1);
	buf_init(&errors);
	c = load_config(cfg, "    password_file: $CREDENTIALS_DIRECTORY/o365.pass\n", 0);
	ok(c != NULL && strcmp(c->servers[0].password, "credpw") == 0,
	   "config: password_file: $CREDENTIALS_DIRECTORY/o365.pass %s",
	   errors.data ? errors.data : "");
	config_free(c);
	unsetenv("CREDENTIALS_DIRECTORY");
	c = load_config(cfg, "    password_file: ${CREDENTIALS_DIRECTORY}/o365.pass\n", 0);
	want = xasprintf("%s:9:20: password_file: $CREDENTIALS_DIRECTORY is not set", cfg);
	ok(c == NULL && has(want) && has("LoadCredential="),
	   "config: unset, an error at its position: %s", errors.data);
	free(want);
	c = load_config(cfg, "    password_file: ${CREDENTIALS_DIRECTORY}/o365.pass\n",
	                CONFIG_NO_SECRETS);
	ok(c != NULL, "config: CONFIG_NO_SECRETS needs no $CREDENTIALS_DIRECTORY");
	config_free(c);
	c = load_config(cfg, "    password_file: $CREDENTIALS_DIRECTORY/a/b\n", CONFIG_NO_SECRETS);
	ok(c == NULL && has("credential's name"),
	   "config: CONFIG_NO_SECRETS still checks the form");
	buf_free(&errors);
	free(cred);
	free(other);
	free(file);
	free(file2);
	free(cfg);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/alertmail-test-seal-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 99;
	test_x25519();
	test_hkdf();
	test_kat();
	test_damage();
	test_seal_limits();
	test_hostkey();
	test_config();
	test_credentials();
	tap_remove_tree(dir);
	return done_testing();
}

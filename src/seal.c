#include "config.h"

#include "seal.h"

#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "secret.h"

/* eph_pub | nonce | ciphertext | tag: the fixed part around the ciphertext. */
#define SEAL_OVERHEAD (SEAL_KEY_LEN + SEAL_NONCE_LEN + SEAL_TAG_LEN)
#define SEAL_RAW_MAX (SEAL_OVERHEAD + SECRET_MAX_SIZE)
#define B64_LEN(n) (((size_t)(n) + 2) / 3 * 4)

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding, NUL-terminated; out has room for B64_LEN(len) + 1. */
static void b64_encode(const unsigned char *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static int b64_value(unsigned char c)
{
	const char *p = c != '\0' ? strchr(b64_chars, c) : NULL;

	return p != NULL ? (int)(p - b64_chars) : -1;
}

/* Strict base64: the standard alphabet, padded, no white space, and the unused bits of the last
 * group zero, so that each byte string has exactly one text and any change to the text changes
 * the bytes. Returns the number of bytes written to out, or -1. */
static long b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t o = 0;

	if (len == 0 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;
		unsigned long n;

		for (int j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)in[i + j];
			if (c == '=') {
				if (i + 4 != len || j < 2)
					return -1;
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad > 0)
				return -1;
			v[j] = b64_value(c);
			if (v[j] < 0)
				return -1;
		}
		if ((pad == 1 && (v[2] & 3) != 0) || (pad == 2 && (v[1] & 15) != 0))
			return -1;
		if (o + (size_t)(3 - pad) > cap)
			return -1;
		n = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
		    (unsigned long)v[2] << 6 | (unsigned long)v[3];
		out[o++] = (unsigned char)(n >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(n >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)n;
	}
	return (long)o;
}

int seal_keygen(EVP_PKEY **out, struct err *e)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);

	*out = NULL;
	if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, out) != 1) {
		err_set(e, "cannot make an X25519 key pair (OpenSSL)");
		EVP_PKEY_CTX_free(ctx);
		return -1;
	}
	EVP_PKEY_CTX_free(ctx);
	return 0;
}

int seal_public(EVP_PKEY *key, unsigned char pub[SEAL_KEY_LEN], struct err *e)
{
	size_t len = SEAL_KEY_LEN;

	if (EVP_PKEY_id(key) != EVP_PKEY_X25519 ||
	    EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 || len != SEAL_KEY_LEN) {
		err_set(e, "not an X25519 key");
		return -1;
	}
	return 0;
}

void seal_pubkey_format(const unsigned char pub[SEAL_KEY_LEN], char out[SEAL_PUBKEY_TEXT_LEN])
{
	memcpy(out, SEAL_PUBKEY_PREFIX, sizeof(SEAL_PUBKEY_PREFIX) - 1);
	b64_encode(pub, SEAL_KEY_LEN, out + sizeof(SEAL_PUBKEY_PREFIX) - 1);
}

int seal_pubkey_parse(const char *text, unsigned char pub[SEAL_KEY_LEN], struct err *e)
{
	const size_t plen = sizeof(SEAL_PUBKEY_PREFIX) - 1;
	const char *end;

	text += strspn(text, " \t\r\n");
	end = text + strlen(text);
	while (end > text && strchr(" \t\r\n", end[-1]) != NULL)
		end--;
	if ((size_t)(end - text) != plen + B64_LEN(SEAL_KEY_LEN) ||
	    strncmp(text, SEAL_PUBKEY_PREFIX, plen) != 0 ||
	    b64_decode(text + plen, B64_LEN(SEAL_KEY_LEN), pub, SEAL_KEY_LEN) != SEAL_KEY_LEN) {
		err_set(e, "not a public key as alertmail secret pubkey prints it "
		           "(alertmail-x25519: and 44 characters of base64)");
		return -1;
	}
	return 0;
}

void seal_fingerprint(const unsigned char pub[SEAL_KEY_LEN], char out[SEAL_FP_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char b64[B64_LEN(32) + 1];
	unsigned int mdlen = 0;

	if (EVP_Digest(pub, SEAL_KEY_LEN, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		memcpy(out, "SHA256:?", sizeof("SHA256:?"));
		return;
	}
	/* 32 bytes are 43 characters and one '=' of padding, which is left out. */
	b64_encode(md, 32, b64);
	memcpy(out, "SHA256:", 7);
	memcpy(out + 7, b64, 43);
	out[50] = '\0';
}

/* X25519 of a private key and a raw peer public key; -1 also for an all-zero result, which a
 * peer key of small order gives (it would make the derived key public). */
static int derive(EVP_PKEY *priv, const unsigned char peer_raw[SEAL_KEY_LEN],
                  unsigned char shared[SEAL_KEY_LEN])
{
	static const unsigned char zero[SEAL_KEY_LEN];
	EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_raw, SEAL_KEY_LEN);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(priv, NULL);
	size_t len = SEAL_KEY_LEN;
	int rc = -1;

	if (peer != NULL && ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_derive_set_peer(ctx, peer) == 1 && EVP_PKEY_derive(ctx, shared, &len) == 1 &&
	    len == SEAL_KEY_LEN && CRYPTO_memcmp(shared, zero, SEAL_KEY_LEN) != 0)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	if (rc < 0)
		OPENSSL_cleanse(shared, SEAL_KEY_LEN);
	return rc;
}

int seal_x25519(const unsigned char priv[SEAL_KEY_LEN], const unsigned char peer[SEAL_KEY_LEN],
                unsigned char shared[SEAL_KEY_LEN])
{
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, SEAL_KEY_LEN);
	int rc;

	if (key == NULL)
		return -1;
	rc = derive(key, peer, shared);
	EVP_PKEY_free(key);
	return rc;
}

int seal_hkdf_sha256(const unsigned char *salt, size_t salt_len, const unsigned char *ikm,
                     size_t ikm_len, const unsigned char *info, size_t info_len, unsigned char *out,
                     size_t out_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t len = out_len;
	int rc = -1;

	/* Without a salt OpenSSL uses HashLen zero bytes, as RFC 5869 says. */
	if (ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1 &&
	    (salt_len == 0 || EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_len) == 1) &&
	    EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikm_len) == 1 &&
	    (info_len == 0 || EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_len) == 1) &&
	    EVP_PKEY_derive(ctx, out, &len) == 1 && len == out_len)
		rc = 0;
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

/* The AES-256 key of a value: both public keys bound in as the salt, the format in the info. */
static int value_key(const unsigned char shared[SEAL_KEY_LEN],
                     const unsigned char eph_pub[SEAL_KEY_LEN],
                     const unsigned char host_pub[SEAL_KEY_LEN], unsigned char key[32])
{
	unsigned char salt[2 * SEAL_KEY_LEN];

	memcpy(salt, eph_pub, SEAL_KEY_LEN);
	memcpy(salt + SEAL_KEY_LEN, host_pub, SEAL_KEY_LEN);
	return seal_hkdf_sha256(salt, sizeof(salt), shared, SEAL_KEY_LEN,
	                        (const unsigned char *)SEAL_INFO, sizeof(SEAL_INFO) - 1, key, 32);
}

/* AES-256-GCM with the header as additional data; encrypt or decrypt len bytes of in into out,
 * the tag written (encrypt) or checked (decrypt). Returns 0, or -1 (for decrypt: not
 * authentic). */
static int gcm(bool encrypt, const unsigned char key[32], const unsigned char nonce[SEAL_NONCE_LEN],
               const unsigned char *in, size_t len, unsigned char *out,
               unsigned char tag[SEAL_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, fin = 0;
	int rc = -1;

	if (ctx == NULL)
		return -1;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt ? 1 : 0) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt ? 1 : 0) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)SEAL_HEADER,
	                     (int)(sizeof(SEAL_HEADER) - 1)) != 1 ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto out;
	if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + n, &fin) != 1 || (size_t)n + (size_t)fin != len)
		goto out;
	if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int seal_encrypt_with(const unsigned char pub[SEAL_KEY_LEN],
                      const unsigned char eph_priv[SEAL_KEY_LEN],
                      const unsigned char nonce[SEAL_NONCE_LEN], const char *secret, size_t len,
                      char **out, struct err *e)
{
	unsigned char shared[SEAL_KEY_LEN], key[32];
	EVP_PKEY *eph = NULL;
	unsigned char *raw = NULL;
	size_t raw_len = SEAL_OVERHEAD + len;
	size_t hlen = sizeof(SEAL_HEADER) - 1;
	int rc = -1;

	*out = NULL;
	if (len == 0 || len > SECRET_MAX_SIZE) {
		err_set(e, "a secret to seal must have 1 to %d bytes", SECRET_MAX_SIZE);
		return -1;
	}
	raw = xmalloc(raw_len);
	eph = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, eph_priv, SEAL_KEY_LEN);
	if (eph == NULL || seal_public(eph, raw, e) < 0) {
		err_set(e, "cannot make the ephemeral key (OpenSSL)");
		goto out;
	}
	if (derive(eph, pub, shared) < 0) {
		err_set(e, "not a usable public key");
		goto out;
	}
	memcpy(raw + SEAL_KEY_LEN, nonce, SEAL_NONCE_LEN);
	if (value_key(shared, raw, pub, key) < 0 ||
	    gcm(true, key, nonce, (const unsigned char *)secret, len,
	        raw + SEAL_KEY_LEN + SEAL_NONCE_LEN, raw + raw_len - SEAL_TAG_LEN) < 0) {
		err_set(e, "cannot encrypt (OpenSSL)");
		goto out;
	}
	*out = xmalloc(hlen + B64_LEN(raw_len) + 1);
	memcpy(*out, SEAL_HEADER, hlen);
	b64_encode(raw, raw_len, *out + hlen);
	rc = 0;
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(raw, raw_len);
	free(raw);
	EVP_PKEY_free(eph);
	return rc;
}

int seal_encrypt(const unsigned char pub[SEAL_KEY_LEN], const char *secret, size_t len, char **out,
                 struct err *e)
{
	unsigned char eph[SEAL_KEY_LEN], nonce[SEAL_NONCE_LEN];
	int rc;

	*out = NULL;
	if (RAND_priv_bytes(eph, sizeof(eph)) != 1 || RAND_bytes(nonce, sizeof(nonce)) != 1) {
		err_set(e, "no random bytes (OpenSSL)");
		return -1;
	}
	rc = seal_encrypt_with(pub, eph, nonce, secret, len, out, e);
	OPENSSL_cleanse(eph, sizeof(eph));
	return rc;
}

/* Checks the header of a sealed value; returns where the base64 starts, or NULL with e set. */
static const char *check_header(const char *sealed, struct err *e)
{
	const char *v, *colon;

	if (strncmp(sealed, "sealed:", 7) != 0) {
		err_set(e, "not a sealed value: expected sealed:v1:... as alertmail secret seal "
		           "prints it");
		return NULL;
	}
	v = sealed + 7;
	colon = strchr(v, ':');
	if (colon == NULL || (size_t)(colon - v) != 2 || strncmp(v, "v1", 2) != 0) {
		size_t vlen = colon != NULL ? (size_t)(colon - v) : 0;
		if (vlen > 0 && vlen <= 8 &&
		    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789") >= vlen)
			err_set(e,
			        "sealed in format '%.*s', which this version of alertmail does not "
			        "read "
			        "(it reads v1)",
			        (int)vlen, v);
		else
			err_set(
			    e,
			    "not a sealed value: expected sealed:v1:... as alertmail secret seal "
			    "prints it");
		return NULL;
	}
	return colon + 1;
}

int seal_decrypt(EVP_PKEY *key, const char *sealed, char **out, struct err *e)
{
	unsigned char host_pub[SEAL_KEY_LEN], shared[SEAL_KEY_LEN], vkey[32];
	const char *body;
	unsigned char *raw = NULL;
	char *plain = NULL;
	size_t blen, ct_len;
	long raw_len;
	int rc = SEAL_MALFORMED;

	*out = NULL;
	body = check_header(sealed, e);
	if (body == NULL)
		return SEAL_MALFORMED;
	blen = strlen(body);
	if (blen > B64_LEN(SEAL_RAW_MAX)) {
		err_set(e, "larger than a sealed secret of %d bytes can be", SECRET_MAX_SIZE);
		return SEAL_MALFORMED;
	}
	raw = xmalloc(blen / 4 * 3 + 1);
	raw_len = b64_decode(body, blen, raw, blen / 4 * 3 + 1);
	if (raw_len < 0) {
		err_set(e,
		        "not a sealed value: what follows sealed:v1: is not base64 (was it cut or "
		        "wrapped?)");
		goto out;
	}
	if ((size_t)raw_len < SEAL_OVERHEAD + 1) {
		err_set(e, "truncated: %ld bytes where a sealed value has at least %d", raw_len,
		        (int)SEAL_OVERHEAD + 1);
		goto out;
	}
	if (seal_public(key, host_pub, e) < 0)
		goto out;
	ct_len = (size_t)raw_len - SEAL_OVERHEAD;
	plain = xmalloc(ct_len + 1);
	rc = SEAL_NOT_OPENED;
	if (derive(key, raw, shared) < 0 || value_key(shared, raw, host_pub, vkey) < 0 ||
	    gcm(false, vkey, raw + SEAL_KEY_LEN, raw + SEAL_KEY_LEN + SEAL_NONCE_LEN, ct_len,
	        (unsigned char *)plain, raw + raw_len - SEAL_TAG_LEN) < 0) {
		err_set(e, "cannot open: sealed to another host's key, or altered");
		goto out;
	}
	rc = SEAL_MALFORMED;
	if (memchr(plain, '\0', ct_len) != NULL) {
		err_set(e, "the sealed secret contains a NUL byte");
		goto out;
	}
	plain[ct_len] = '\0';
	*out = plain;
	plain = NULL;
	rc = 0;
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	OPENSSL_cleanse(vkey, sizeof(vkey));
	if (plain != NULL) {
		OPENSSL_cleanse(plain, ct_len + 1);
		free(plain);
	}
	free(raw);
	return rc;
}

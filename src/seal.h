/* Sealed values: a secret encrypted to one host's X25519 public key, as text for the config.
 *
 *   sealed:v1:BASE64(eph_pub[32] | nonce[12] | ciphertext | tag[16])
 *
 * eph_pub is a fresh X25519 key per value; the AES-256-GCM key is
 * HKDF-SHA256(ikm = X25519(eph, host), salt = eph_pub | host_pub, info = SEAL_INFO), and the
 * header "sealed:v1:" is the additional authenticated data. Public keys are written
 * "alertmail-x25519:BASE64(32 bytes)". Pure crypto and formats: no files (see hostkey.h). */
#ifndef ALERTMAIL_SEAL_H
#define ALERTMAIL_SEAL_H

#include <openssl/evp.h>
#include <stddef.h>

#include "err.h"

#define SEAL_KEY_LEN 32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_HEADER "sealed:v1:"
#define SEAL_INFO "alertmail sealed:v1 x25519 hkdf-sha256 aes-256-gcm"
#define SEAL_PUBKEY_PREFIX "alertmail-x25519:"
/* "alertmail-x25519:" and 44 characters of base64, with the NUL. */
#define SEAL_PUBKEY_TEXT_LEN (sizeof(SEAL_PUBKEY_PREFIX) + 44)
/* "SHA256:" and 43 characters of unpadded base64, with the NUL (as OpenSSH writes them). */
#define SEAL_FP_LEN (sizeof("SHA256:") + 43)

/* seal_decrypt's results besides 0. */
enum {
	SEAL_MALFORMED = -1, /* not a sealed value of a known version: e says what is wrong */
	SEAL_NOT_OPENED =
	    -2, /* well formed, but this key does not open it (another key, or altered) */
};

/* A new X25519 key pair. Returns 0, or -1 with e set. */
int seal_keygen(EVP_PKEY **out, struct err *e);
/* The raw public key of an X25519 key. Returns 0, or -1 with e set. */
int seal_public(EVP_PKEY *key, unsigned char pub[SEAL_KEY_LEN], struct err *e);
/* "alertmail-x25519:BASE64" of a public key. */
void seal_pubkey_format(const unsigned char pub[SEAL_KEY_LEN], char out[SEAL_PUBKEY_TEXT_LEN]);
/* Reads what seal_pubkey_format writes; surrounding white space is ignored. */
int seal_pubkey_parse(const char *text, unsigned char pub[SEAL_KEY_LEN], struct err *e);
/* "SHA256:..." of a public key, for logs and messages. */
void seal_fingerprint(const unsigned char pub[SEAL_KEY_LEN], char out[SEAL_FP_LEN]);

/* Seals len bytes of secret to pub with a fresh ephemeral key and nonce. Returns 0 and the
 * sealed value, NUL-terminated, in *out (free it), or -1 with e set. */
int seal_encrypt(const unsigned char pub[SEAL_KEY_LEN], const char *secret, size_t len, char **out,
                 struct err *e);
/* The same with the ephemeral private key and the nonce given: for known-answer tests only. */
int seal_encrypt_with(const unsigned char pub[SEAL_KEY_LEN],
                      const unsigned char eph_priv[SEAL_KEY_LEN],
                      const unsigned char nonce[SEAL_NONCE_LEN], const char *secret, size_t len,
                      char **out, struct err *e);
/* Opens a sealed value with key. Returns 0 and the secret in *out (free it with secret_free;
 * it has no NUL byte and is not empty), SEAL_MALFORMED or SEAL_NOT_OPENED with e set. Every
 * buffer that held the plaintext or key material is wiped. */
int seal_decrypt(EVP_PKEY *key, const char *sealed, char **out, struct err *e);

/* The primitives as seal_encrypt and seal_decrypt use them, exposed for known-answer tests.
 * X25519 of a raw private key and a raw peer public key: 0, or -1 (also for an all-zero
 * result, a peer key of small order). */
int seal_x25519(const unsigned char priv[SEAL_KEY_LEN], const unsigned char peer[SEAL_KEY_LEN],
                unsigned char shared[SEAL_KEY_LEN]);
/* HKDF-SHA256 (RFC 5869); an empty salt stands for HashLen zero bytes. 0, or -1. */
int seal_hkdf_sha256(const unsigned char *salt, size_t salt_len, const unsigned char *ikm,
                     size_t ikm_len, const unsigned char *info, size_t info_len, unsigned char *out,
                     size_t out_len);

#endif

#!/usr/bin/python3
"""An independent implementation of alertmail's sealed values, on Python's `cryptography`.

The format (src/seal.h):

    sealed:v1:BASE64(eph_pub[32] | nonce[12] | ciphertext | tag[16])

    shared = X25519(eph_priv, host_pub)
    key    = HKDF-SHA256(ikm=shared, salt=eph_pub | host_pub, info=INFO, length=32)
    ciphertext, tag = AES-256-GCM(key, nonce, plaintext, aad=b"sealed:v1:")

Public keys are written "alertmail-x25519:" + base64 of the 32 raw bytes.

    seal_ref.py kat > tests/unit/seal_kat.h   the known-answer vectors of tests/unit/test_seal.c
    seal_ref.py seal PUBKEY < secret          seal to a public key ("alertmail-x25519:...")
    seal_ref.py open KEYFILE < sealed         open with a private key file (PEM, as host.key)

Run it with Debian's /usr/bin/python3 (python3-cryptography).
"""

import base64
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HEADER = b"sealed:v1:"
INFO = b"alertmail sealed:v1 x25519 hkdf-sha256 aes-256-gcm"
PUBKEY_PREFIX = "alertmail-x25519:"
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def pub_bytes(priv):
    return priv.public_key().public_bytes(*RAW)


def pubkey_text(pub):
    return PUBKEY_PREFIX + base64.b64encode(pub).decode()


def fingerprint(pub):
    digest = hashes.Hash(hashes.SHA256())
    digest.update(pub)
    return "SHA256:" + base64.b64encode(digest.finalize()).decode().rstrip("=")


def value_key(shared, eph_pub, host_pub):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + host_pub,
                info=INFO).derive(shared)


def seal(host_pub, plaintext, eph_priv=None, nonce=None):
    eph = X25519PrivateKey.from_private_bytes(eph_priv) if eph_priv else X25519PrivateKey.generate()
    nonce = nonce if nonce is not None else os.urandom(12)
    eph_pub = pub_bytes(eph)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(host_pub))
    ct = AESGCM(value_key(shared, eph_pub, host_pub)).encrypt(nonce, plaintext, HEADER)
    return (HEADER + base64.b64encode(eph_pub + nonce + ct)).decode()


def open_sealed(priv, text):
    if not text.startswith(HEADER.decode()):
        raise ValueError("not sealed:v1:")
    raw = base64.b64decode(text[len(HEADER):], validate=True)
    eph_pub, nonce, ct = raw[:32], raw[32:44], raw[44:]
    shared = priv.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    return AESGCM(value_key(shared, eph_pub, pub_bytes(priv))).decrypt(nonce, ct, HEADER)


def check_rfc_vectors():
    """The RFC values that test_seal.c also holds, checked here against `cryptography`."""
    h = bytes.fromhex
    # RFC 7748 section 6.1.
    alice = X25519PrivateKey.from_private_bytes(
        h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
    bob = X25519PrivateKey.from_private_bytes(
        h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
    assert pub_bytes(alice).hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert pub_bytes(bob).hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    assert alice.exchange(bob.public_key()).hex() == \
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    # RFC 7748 section 5.2.
    for k, u, out in [
        ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
         "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
         "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
        ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
         "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
         "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
    ]:
        got = X25519PrivateKey.from_private_bytes(h(k)).exchange(X25519PublicKey.from_public_bytes(h(u)))
        assert got.hex() == out, (k, got.hex())
    # RFC 5869 test cases 1 to 3 (SHA-256).
    okm = HKDF(hashes.SHA256(), 42, h("000102030405060708090a0b0c"),
               h("f0f1f2f3f4f5f6f7f8f9")).derive(b"\x0b" * 22)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")
    okm = HKDF(hashes.SHA256(), 82, bytes(range(0x60, 0xb0)),
               bytes(range(0xb0, 0x100))).derive(bytes(range(0x50)))
    assert okm.hex() == ("b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                         "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                         "cc30c58179ec3e87c14c01d5c1f3434f1d87")
    okm = HKDF(hashes.SHA256(), 42, None, b"").derive(b"\x0b" * 22)
    assert okm.hex() == ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                         "9d201395faa4b61a96c8")


def c_string(b):
    """b as C string literals, one per line of at most about 64 input bytes."""
    pieces, cur = [], ""
    for i, c in enumerate(b):
        if c in b'"\\':
            cur += "\\" + chr(c)
        elif 0x20 <= c < 0x7f:
            cur += chr(c)
        else:
            cur += "\\%03o" % c
        if c == 0x0a or len(cur) >= 64 or i == len(b) - 1:
            pieces.append('"%s"' % cur)
            cur = ""
    return "\n\t ".join(pieces)


# Fixed inputs: the vectors do not change when the script is run again.
KATS = [
    # recipient: RFC 7748's Bob; ephemeral: its Alice.
    ("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
     "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
     "000102030405060708090a0b", b"hunter2"),
    ("c8a9d5a91091ad851c668b0736c1c9a02936c0d3ad62670858088047ba057475",
     "a8abababababababababababababababababababababababababababababab6b",
     "f0e1d2c3b4a5968778695a4b",
     "Pässwörd: with \"quotes\", a tab\tand a line\nbreak, € 100%".encode("utf-8")),
    # A long one: more than one AES block and base64 with padding "=".
    ("e8b7c5a4f3e2d1c0b0a0908070605040302010f0e0d0c0b0a090807060504070",
     "18c5d2b0b3e6f5a4c3b2a1908f7e6d5c4b3a29180f1e2d3c4b5a69788796a55f",
     "0a0b0c0d0e0f101112131415", bytes(range(1, 256)) * 2),
]


def kat():
    check_rfc_vectors()
    print("/* Known answers for sealed values, made by tests/unit/seal_ref.py kat (Python's")
    print(" * `cryptography`, an implementation independent of alertmail's). Do not edit: run")
    print(" *     /usr/bin/python3 tests/unit/seal_ref.py kat > tests/unit/seal_kat.h */")
    print("struct seal_kat {")
    print("\tconst char *host_priv, *host_pub, *eph_priv, *nonce; /* hex */")
    print("\tconst char *pubkey_text, *fingerprint;")
    print("\tconst char *plain;")
    print("\tsize_t plain_len;")
    print("\tconst char *sealed;")
    print("};")
    print("static const struct seal_kat seal_kats[] = {")
    for host_hex, eph_hex, nonce_hex, plain in KATS:
        host = X25519PrivateKey.from_private_bytes(bytes.fromhex(host_hex))
        sealed = seal(pub_bytes(host), plain, bytes.fromhex(eph_hex), bytes.fromhex(nonce_hex))
        assert open_sealed(host, sealed) == plain
        print("\t{\"%s\",\n\t \"%s\",\n\t \"%s\", \"%s\"," %
              (host_hex, pub_bytes(host).hex(), eph_hex, nonce_hex))
        print("\t \"%s\",\n\t \"%s\"," % (pubkey_text(pub_bytes(host)), fingerprint(pub_bytes(host))))
        print("\t %s," % c_string(plain))
        print("\t %d," % len(plain))
        print("\t " + "\n\t ".join('"%s"' % sealed[i:i + 72] for i in range(0, len(sealed), 72)) + "},")
    print("};")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "kat":
        kat()
    elif len(sys.argv) == 3 and sys.argv[1] == "seal":
        text = sys.argv[2].strip()
        if not text.startswith(PUBKEY_PREFIX):
            sys.exit("not an alertmail public key: %s" % text)
        pub = base64.b64decode(text[len(PUBKEY_PREFIX):], validate=True)
        data = sys.stdin.buffer.read()
        if data.endswith(b"\n"):
            data = data[:-1]
        print(seal(pub, data))
    elif len(sys.argv) == 3 and sys.argv[1] == "open":
        with open(sys.argv[2], "rb") as f:
            priv = serialization.load_pem_private_key(f.read(), password=None)
        sys.stdout.buffer.write(open_sealed(priv, sys.stdin.read().strip()))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

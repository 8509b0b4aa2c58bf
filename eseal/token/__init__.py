"""The USB-Key room: everything eseal does with a PKCS#11 token goes through here.

Nothing else in eseal imports python-pkcs11. Keys are addressed by RFC 7512 URIs, every call
is serialised by one process-wide lock (see ``library``), and token keys are handed to the
rest of eseal as ``cryptography`` private keys whose secret never leaves the token.
"""

from eseal.token.keys import (
    KEY_SPECS,
    KeyInfo,
    KeySpec,
    StoredCertificate,
    delete_objects,
    find_private_key,
    generate_keypair,
    key_id_for,
    list_certificates,
    list_keys,
    public_key,
    write_certificate,
)
from eseal.token.library import configure, find_token, lock, refresh, token_labels
from eseal.token.session import TokenSession
from eseal.token.signer import (
    TokenECPrivateKey,
    TokenPrivateKey,
    TokenRSAPrivateKey,
    private_key_for,
    token_private_key,
)
from eseal.token.uri import Pkcs11Uri

__all__ = [
    "KEY_SPECS",
    "KeyInfo",
    "KeySpec",
    "Pkcs11Uri",
    "StoredCertificate",
    "TokenECPrivateKey",
    "TokenPrivateKey",
    "TokenRSAPrivateKey",
    "TokenSession",
    "configure",
    "delete_objects",
    "find_private_key",
    "find_token",
    "generate_keypair",
    "key_id_for",
    "list_certificates",
    "list_keys",
    "lock",
    "private_key_for",
    "public_key",
    "refresh",
    "token_labels",
    "token_private_key",
    "write_certificate",
]

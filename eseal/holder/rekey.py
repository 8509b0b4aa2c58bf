"""Re-keying a USB-Key on the holder's side (the client half of ``eseal.ra.rekey``).

A new key is generated on the token, a CSR is signed with it, and the re-key proof
(``eseal.pki.rekey_proof``) is signed with the *old* key; the CA certifies the new key, the
new certificate is stored beside it, the old key is destroyed, and only then is the CA told
to supersede the old certificate. The CA is reached through :class:`RekeyCa`, which the
caller supplies (the local authority in the CLI, HTTP for a holder without a CA), so this
module never imports the CA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

from eseal.errors import InvalidInput, TokenError

if TYPE_CHECKING:
    from eseal.token.client import UsbKey


class RekeyCa(Protocol):
    """What the re-key client needs from the CA: the local authority now, HTTP later."""

    def current(self, key_id_hex: str, purpose: str) -> x509.Certificate | None:
        """The CA's current certificate for a key (not renewed away, not revoked)."""

    def rekey(self, old_serial: str, csr_pem: bytes, proof: bytes) -> x509.Certificate:
        """Certify the CSR's key on the strength of the old key's proof."""

    def confirm(self, new_serial: str) -> None:
        """The new certificate is on the token: supersede the old key's certificates."""

    def pending(self, serial: str) -> bool:
        """True while ``serial`` came from a re-key not confirmed yet."""


def _serial_of(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def _rekey_result(label: str, purpose: str, old_serial: str | None, cert: x509.Certificate,
                  resumed: bool) -> dict[str, Any]:
    return {"label": label, "profile": purpose, "old_serial": old_serial,
            "new_serial": _serial_of(cert), "not_after": cert.not_valid_after_utc.isoformat(),
            "resumed": resumed}


def rekey_on_token(usbkey: UsbKey, purpose: str, ca: RekeyCa, *,
                   key_spec: str | None = None) -> dict[str, Any]:
    """Replace the login or seal key on an opened (read-write) USB-Key with a new one.

    1. generate the new key on the token under the key's label, 2. sign a CSR with it and
    the re-key proof (``eseal.pki.rekey_proof.rekey_digest``) with the old key, 3. have the CA
    certify it, 4. store the new certificate beside the new key and destroy the old key and
    its certificate, 5. tell the CA, which only then supersedes the old certificate. A
    refusal in 2-3 destroys the new key again; a crash anywhere is finished by running the
    command again (two keys under one label, or an unconfirmed new certificate, are
    recognised and settled).
    """
    from eseal.pki.key_policy import key_spec_of
    from eseal.pki.rekey_proof import csr_der, rekey_digest
    from eseal.token import (
        TokenECPrivateKey,
        delete_objects,
        generate_keypair,
        list_keys,
        token_private_key,
    )
    from eseal.token import write_certificate as store_certificate
    from eseal.token.usbkey import KEY_LABELS, build_csr, remove_objects

    if purpose not in KEY_LABELS:
        raise InvalidInput("PURPOSE_UNKNOWN", f"unknown key purpose {purpose!r} (login or seal)",
                           f"未知密钥用途 {purpose!r}（login 或 seal）", field="profile")
    ts, key_label = usbkey.session, KEY_LABELS[purpose]  # type: ignore[index]
    keys = [k for k in list_keys(ts) if k.label == key_label]
    if not keys:
        raise TokenError("KEY_NOT_FOUND", f"token {usbkey.label!r} holds no {purpose} key",
                         f"USB-Key {usbkey.label!r} 上没有 {purpose} 密钥", field="profile")
    if len(keys) > 2:
        raise TokenError("KEY_AMBIGUOUS", f"token {usbkey.label!r} holds {len(keys)} {purpose} "
                         "keys", f"USB-Key {usbkey.label!r} 上有多个 {purpose} 密钥",
                         field="profile")
    on_token = _holder_certificates(usbkey)
    if len(keys) == 2:  # an earlier run stopped half way: finish it, or undo it
        with_cert = [k for k in keys if k.id in on_token]
        cert: x509.Certificate | None
        if len(with_cert) == 2:  # both certified on the token: the newer one is the new key
            old, new = sorted(keys, key=lambda k: on_token[k.id].not_valid_before_utc)
            cert = on_token[new.id]
        elif len(with_cert) == 1:  # the new key's certificate may be waiting at the CA
            old = with_cert[0]
            new = next(k for k in keys if k is not old)
            cert = ca.current(new.id_hex, purpose)
            if cert is not None:
                store_certificate(ts, cert, label=key_label, id=new.id)
        else:
            raise TokenError("KEY_AMBIGUOUS", f"token {usbkey.label!r} holds two {purpose} keys "
                             "and no certificate for either",
                             f"USB-Key {usbkey.label!r} 上有两个 {purpose} 密钥且均无证书",
                             field="profile")
        if cert is None:  # the CA never certified the new key: drop it, start again
            remove_objects(ts, [new.id])
            keys = [old]
        else:
            delete_objects(ts, id=old.id)
            ca.confirm(_serial_of(cert))
            return _rekey_result(usbkey.label, purpose, None, cert, True)
    old = keys[0]
    installed = on_token.get(old.id)
    if installed is not None and ca.pending(_serial_of(installed)):
        ca.confirm(_serial_of(installed))  # installed last time, not confirmed
        return _rekey_result(usbkey.label, purpose, None, installed, True)
    current = ca.current(old.id_hex, purpose) or installed
    if current is None:
        raise TokenError("CERT_NOT_FOUND", f"no current {purpose} certificate for the key on "
                         f"token {usbkey.label!r}",
                         f"USB-Key {usbkey.label!r} 上的 {purpose} 密钥没有有效证书",
                         field="profile")
    old_serial = _serial_of(current)
    new = generate_keypair(ts, key_spec or key_spec_of(old.public_key), key_label)  # type: ignore[arg-type]
    try:
        csr_pem = build_csr(ts, new, current.subject)
        digest = rekey_digest(csr_der(csr_pem))
        old_key = token_private_key(ts, old.id, old.public_key)
        proof = (old_key.sign_digest(digest) if isinstance(old_key, TokenECPrivateKey)
                 else old_key.sign_digest(digest, "sha256"))
        cert = ca.rekey(old_serial, csr_pem, proof)
    except BaseException:
        remove_objects(ts, [new.id])
        raise
    store_certificate(ts, cert, label=key_label, id=new.id)
    delete_objects(ts, id=old.id)
    ca.confirm(_serial_of(cert))
    return _rekey_result(usbkey.label, purpose, old_serial, cert, False)


def _holder_certificates(usbkey: UsbKey) -> dict[bytes, x509.Certificate]:
    """The newest holder (non-CA) certificate stored under each CKA_ID."""
    from eseal.token.keys import list_certificates
    from eseal.token.usbkey import is_ca_certificate

    found: dict[bytes, x509.Certificate] = {}
    for stored in list_certificates(usbkey.session):
        if is_ca_certificate(stored.certificate):
            continue
        have = found.get(stored.id)
        if have is None or stored.certificate.not_valid_before_utc > have.not_valid_before_utc:
            found[stored.id] = stored.certificate
    return found

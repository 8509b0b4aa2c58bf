"""Key pairs and certificate objects on a token.

Private keys are generated on the token as TOKEN, PRIVATE, SENSITIVE, non-EXTRACTABLE,
SIGN-only objects: they never exist outside it. Each key's CKA_ID is the SHA-1 of its public
key (RFC 5280 method 1, the same value as the certificate's subjectKeyIdentifier), so the
key, its public half and its certificate share one ID, as PKCS#11 tools expect.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from typing import Literal

import pkcs11
from asn1crypto.core import OctetString
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.constants import CertificateType
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from eseal.errors import InvalidInput, TokenError
from eseal.token import library as lib
from eseal.token.session import TokenSession, blame

KeySpec = Literal["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]
KEY_SPECS: tuple[KeySpec, ...] = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072")
_CURVES = {"ec-p256": ("secp256r1", ec.SECP256R1()), "ec-p384": ("secp384r1", ec.SECP384R1())}

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class KeyInfo:
    """What a caller needs to know about a key on a token (never the key itself)."""

    token: str
    label: str
    id: bytes
    public_key: PublicKey

    @property
    def id_hex(self) -> str:
        return self.id.hex()

    @property
    def uri(self) -> str:
        from eseal.token.uri import Pkcs11Uri

        return str(Pkcs11Uri(token=self.token, object=self.label, id=self.id, type="private"))


def key_id_for(public_key: PublicKey) -> bytes:
    """SHA-1 over the subjectPublicKey bits: equals the certificate's SKI (method 1)."""
    point = public_key.public_bytes(
        serialization.Encoding.X962 if isinstance(public_key, ec.EllipticCurvePublicKey)
        else serialization.Encoding.DER,
        serialization.PublicFormat.UncompressedPoint
        if isinstance(public_key, ec.EllipticCurvePublicKey)
        else serialization.PublicFormat.PKCS1,
    )
    return hashlib.sha1(point, usedforsecurity=False).digest()


def _public_from_object(obj: pkcs11.PublicKey) -> PublicKey:
    if obj.key_type == KeyType.EC:
        params = obj[Attribute.EC_PARAMS]
        curve: ec.EllipticCurve
        if params == encode_named_curve_parameters("secp256r1"):
            curve = ec.SECP256R1()
        elif params == encode_named_curve_parameters("secp384r1"):
            curve = ec.SECP384R1()
        else:
            raise TokenError("UNSUPPORTED_CURVE", "key on token uses an unsupported curve",
                             "USB-Key 上的密钥曲线不受支持")
        # EC_POINT is a DER OCTET STRING around the X9.62 point.
        point = OctetString.load(obj[Attribute.EC_POINT]).native
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    if obj.key_type == KeyType.RSA:
        n = int.from_bytes(obj[Attribute.MODULUS], "big")
        e = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise TokenError("UNSUPPORTED_KEY", "key type not supported", "不支持的密钥类型")


_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
_PUBLIC_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
}


def generate_keypair(ts: TokenSession, spec: KeySpec, label: str) -> KeyInfo:
    """Generate a non-extractable signing key pair on the token and return its public half."""
    if spec not in KEY_SPECS:
        raise InvalidInput("UNSUPPORTED_KEY_SPEC", f"unsupported key type {spec!r}",
                           f"不支持的密钥类型 {spec!r}", field="key_type")
    temp_id = os.urandom(20)
    with lib.lock():
        session = ts.session()
        kwargs = dict(id=temp_id, label=label, store=True,
                      capabilities=pkcs11.MechanismFlag.SIGN | pkcs11.MechanismFlag.VERIFY,
                      public_template=_PUBLIC_TEMPLATE, private_template=_PRIVATE_TEMPLATE)
        if spec.startswith("ec-"):
            params = session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[spec][0])},
                local=True)
            pub, priv = params.generate_keypair(**kwargs)
        else:
            pub, priv = session.generate_keypair(KeyType.RSA, int(spec.split("-")[1]), **kwargs)
        try:
            public_key = _public_from_object(pub)
            key_id = key_id_for(public_key)
            pub[Attribute.ID] = key_id
            priv[Attribute.ID] = key_id
        except Exception:
            for obj in (priv, pub):
                with contextlib.suppress(PKCS11Error):
                    obj.destroy()
            raise
    return KeyInfo(token=ts.label, label=label, id=key_id, public_key=public_key)


def find_private_key(ts: TokenSession, *, id: bytes | None = None,
                     label: str | None = None) -> pkcs11.PrivateKey:
    """The private key object with this ID or label (call with the lock held or not)."""
    attrs: dict[Attribute, object] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
    if id is not None:
        attrs[Attribute.ID] = id
    if label is not None:
        attrs[Attribute.LABEL] = label
    with lib.lock():
        found = list(ts.session().get_objects(attrs))
    if len(found) != 1:
        what = f"id {id.hex()}" if id is not None else f"label {label!r}"
        raise blame(ts, TokenError("KEY_NOT_FOUND" if not found else "KEY_AMBIGUOUS",
                         f"{'no' if not found else 'more than one'} private key with {what} "
                         f"on token {ts.label!r}",
                         f"USB-Key {ts.label!r} 上{'没有' if not found else '有多个'}"
                         f"匹配 {what} 的私钥",
                         field="key"))
    return found[0]  # type: ignore[return-value]


def list_keys(ts: TokenSession) -> list[KeyInfo]:
    """Every key pair whose public half is on the token (readable without a PIN)."""
    with lib.lock():
        objs = list(ts.session().get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
        infos = [KeyInfo(ts.label, o.label, o[Attribute.ID], _public_from_object(o))
                 for o in objs]
    return sorted(infos, key=lambda k: k.label)


def public_key(ts: TokenSession, key_id: bytes) -> PublicKey:
    with lib.lock():
        objs = list(ts.session().get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                              Attribute.ID: key_id}))
        if not objs:
            raise blame(ts, TokenError("KEY_NOT_FOUND", f"no public key with id {key_id.hex()}",
                                       f"没有 ID 为 {key_id.hex()} 的公钥", field="key"))
        return _public_from_object(objs[0])


def write_certificate(ts: TokenSession, cert: x509.Certificate, *, label: str,
                      id: bytes | None = None) -> None:
    """Store a certificate as a public X.509 object (readable without the PIN)."""
    with lib.lock():
        ts.session().create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.LABEL: label,
            Attribute.ID: id if id is not None else key_id_for(cert.public_key()),  # type: ignore[arg-type]
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: _der_integer(cert.serial_number),
            Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
        })


def _der_integer(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 8) // 8 or 1, "big")
    return bytes([0x02, len(body)]) + body if len(body) < 0x80 else \
        bytes([0x02, 0x81, len(body)]) + body


@dataclass(frozen=True)
class StoredCertificate:
    label: str
    id: bytes
    certificate: x509.Certificate


def list_certificates(ts: TokenSession) -> list[StoredCertificate]:
    with lib.lock():
        objs = list(ts.session().get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
        raw = [(o[Attribute.LABEL], bytes(o[Attribute.ID]), bytes(o[Attribute.VALUE]))
               for o in objs]
    return [StoredCertificate(label, id_, x509.load_der_x509_certificate(value))
            for label, id_, value in raw]


def delete_objects(ts: TokenSession, *, id: bytes | None = None,
                   label: str | None = None, object_class: ObjectClass | None = None) -> int:
    """Destroy every object matching; returns how many (used to roll back a failed enroll)."""
    attrs: dict[Attribute, object] = {}
    if id is not None:
        attrs[Attribute.ID] = id
    if label is not None:
        attrs[Attribute.LABEL] = label
    if object_class is not None:
        attrs[Attribute.CLASS] = object_class
    if not attrs:
        raise InvalidInput("NOTHING_SELECTED", "refusing to delete every object",
                           "拒绝删除全部对象")
    with lib.lock():
        objs = list(ts.session().get_objects(attrs))
        for obj in objs:
            obj.destroy()
    return len(objs)

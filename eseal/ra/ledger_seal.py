"""The CA's own seal, for documents the CA itself issues (the credential ledger PDF).

A ledger an enterprise files with the authority must be checkable by anyone with the CA's
root, with the same ``eseal verify`` that checks enterprise seals: so it is sealed with a seal
certificate like any other, for a key generated on the CA token (label ``ledger-seal``),
naming the CA operator as the legal person (its registered name and credit code, which the
officer gives once: the operator is a registered enterprise like any other). The key never
leaves the CA token; the certificate is recorded like every other and renewed like one.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from cryptography import x509
from sqlalchemy import select

from eseal import clock
from eseal.ca.authority import Authority
from eseal.ca.issuance import IssuanceRequest
from eseal.errors import InvalidInput
from eseal.pki import identity
from eseal.store.models import CaKey, Certificate
from eseal.token import Pkcs11Uri, TokenPrivateKey, generate_keypair, token_private_key

ROLE = "ledger_seal"
KEY_LABEL = "ledger-seal"


@dataclass(frozen=True)
class LedgerSeal:
    key: TokenPrivateKey
    certificate: x509.Certificate
    chain: list[x509.Certificate]


def _current(auth: Authority) -> tuple[str, bytes] | None:
    with auth.db.read() as s:
        row = s.get(CaKey, ROLE)
        if row is None:
            return None
        spki = s.execute(select(Certificate.der).where(
            Certificate.token_label == auth.settings.ca_token_label,
            Certificate.profile == "seal", Certificate.status == "good",
            Certificate.replaced_by.is_(None), Certificate.not_after > clock.now())
            .order_by(Certificate.not_after.desc())).scalars().first()
        return (row.key_uri, bytes(spki)) if spki is not None else None


def ledger_seal(auth: Authority, *, operator_uscc: str | None, operator_name: str | None,
                actor: str) -> LedgerSeal:
    """The CA's ledger seal, created on first use (then ``operator_*`` are required)."""
    found = _current(auth)
    if found is None:
        if not operator_uscc or not operator_name:
            raise InvalidInput("OPERATOR_IDENTITY_REQUIRED",
                               "the CA has no ledger seal yet: give the CA operator's credit "
                               "code and registered name once (--operator-uscc, --operator-name)",
                               "CA 尚无台账印章：请提供 CA 运营单位的统一社会信用代码和登记名称",
                               field="operator_uscc")
        found = _create(auth, operator_uscc, operator_name, actor)
    uri, der = found
    key_id = Pkcs11Uri.parse(uri).id
    assert key_id is not None
    return LedgerSeal(key=token_private_key(auth.ca_session, key_id),
                      certificate=x509.load_der_x509_certificate(der), chain=auth.chain())


def _create(auth: Authority, uscc: str, name: str, actor: str) -> tuple[str, bytes]:
    details = {"operator_uscc": uscc, "operator_name": name}

    def validate() -> tuple[str, str]:
        return (identity.validate_uscc(uscc),
                identity.validate_registered_name(name, "operator_name"))

    code, reg = auth.refusing(validate, actor=actor, action="ca.ledger_seal.create",
                              target=KEY_LABEL, details=details)
    info = generate_keypair(auth.ca_session, "ec-p256", KEY_LABEL)
    operator = SimpleNamespace(id=None, uscc=code, name=reg)
    draft = auth.prepare(IssuanceRequest(
        profile="seal", public_key=info.public_key, holder=reg, actor=actor, target=KEY_LABEL,
        action="ca.ledger_seal.create", enterprise=operator,
        token_label=auth.settings.ca_token_label), details)
    details["serial"] = draft.serial
    with auth.change(actor=actor, action="ca.ledger_seal.create", target=KEY_LABEL,
                     details=details) as s:
        auth.record(s, draft)
        s.add(CaKey(role=ROLE, key_uri=info.uri, certificate_der=draft.row["der"],
                    created_at=clock.now()))
    return info.uri, draft.row["der"]

"""The token core: keys generated on a SoftHSM token sign for cryptography's builders."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute

from eseal.errors import TokenError
from eseal.settings import Settings
from eseal.token import (
    KEY_SPECS,
    Pkcs11Uri,
    TokenSession,
    find_private_key,
    generate_keypair,
    lock,
    private_key_for,
)
from eseal.token.softhsm import init_token

PIN = "4913-7720"
SO_PIN = "so-8812-4401"


@pytest.fixture
def token(settings: Settings) -> TokenSession:
    init_token(settings.softhsm_conf_path, "t1", PIN, SO_PIN)
    ts = TokenSession("t1", PIN, rw=True).open()
    yield ts
    ts.close()


@pytest.mark.parametrize("spec", KEY_SPECS)
def test_token_key_signs_a_certificate_that_verifies(token: TokenSession, spec: str) -> None:
    info = generate_keypair(token, spec, f"key-{spec}")  # type: ignore[arg-type]
    key = private_key_for(token, info)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(info.public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert.verify_directly_issued_by(cert)


def test_generated_key_is_never_extractable_and_id_is_the_public_key_hash(
        token: TokenSession) -> None:
    info = generate_keypair(token, "ec-p256", "login")
    handle = find_private_key(token, id=info.id)
    with lock():
        assert handle[Attribute.EXTRACTABLE] is False
        assert handle[Attribute.NEVER_EXTRACTABLE] is True
        assert handle[Attribute.SENSITIVE] is True
        with pytest.raises(Exception):  # noqa: B017 - any PKCS#11 refusal will do
            handle[Attribute.VALUE]
    ski = x509.SubjectKeyIdentifier.from_public_key(info.public_key).digest
    assert info.id == ski
    with pytest.raises(TokenError) as exc:
        private_key_for(token, info).private_bytes()  # type: ignore[call-arg]
    assert exc.value.code == "KEY_NOT_EXTRACTABLE"


def test_wrong_pin_is_refused_even_while_the_process_is_logged_in(token: TokenSession) -> None:
    with pytest.raises(TokenError) as exc:
        TokenSession("t1", "wrong-pin").open()
    assert exc.value.code == "PIN_INCORRECT"
    token.close()
    # the failed login left no session behind that would block an SO login
    TokenSession("t1", SO_PIN, so=True).open().close()


def test_unknown_label_lists_the_tokens_that_exist(token: TokenSession) -> None:
    with pytest.raises(TokenError) as exc:
        TokenSession("nope", PIN).open()
    assert exc.value.code == "TOKEN_NOT_FOUND"
    assert "t1" in exc.value.message


def test_pkcs11_uri_round_trips() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=eseal-ca;object=issuing%20ca;type=private;id=%01%ff")
    assert (uri.token, uri.object, uri.type, uri.id) == ("eseal-ca", "issuing ca", "private",
                                                         b"\x01\xff")
    assert Pkcs11Uri.parse(str(uri)) == uri

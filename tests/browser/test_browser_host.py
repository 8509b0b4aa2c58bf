"""The native messaging host over stdio, without a browser, with real SoftHSM USB-Keys.

What it pins down: the host answers ``status`` with JSON even with no key; it signs eseal's
login message with the login key only, for the origin it is given; it seals only with the
seal key, only attributes whose messageDigest is the digest shown and whose signing
certificate is this key's seal certificate, with one token signature; a wrong PIN says how
many tries are left and the PIN never comes back; broken frames get an error reply or a clean
exit and stdout never carries anything but frames.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from eseal.errors import EsealError
from eseal.holder import native_host
from eseal.pki.login_message import login_message
from eseal.token.client import UsbKey
from tests.conftest import NAME_A, USCC_A
from tests.hostkit import frame, host_env, run_host, signed_attrs
from tests.sitekit import CaHome, Holder, ca_home, count_token_signatures

PINS = {"zhang": "4913-7720", "wang": "6624-0195", "zhao": "5802-3317"}
ORIGIN = "http://127.0.0.1:8443"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaHome]:
    tmp = tmp_path_factory.mktemp("host")
    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三")],
                 holders=[Holder("zhang", PINS["zhang"], USCC_A, "legal_rep", "张三"),
                          Holder("wang", PINS["wang"], USCC_A, "agent", "王五"),
                          Holder("zhao", PINS["zhao"], USCC_A, "agent", "赵六")]) as ca:
        yield ca


def _env(site: CaHome) -> dict[str, str]:
    return host_env(site.settings.softhsm_conf_path)


def _certs(label: str) -> dict[str, x509.Certificate]:
    with UsbKey.open(label, PINS[label]) as key:
        return dict(key.certificates())


def _seal_message(digest: bytes, attrs: bytes, **extra: object) -> dict[str, object]:
    return {"command": "sign", "origin": ORIGIN, "token": "zhang",
            "signed_attrs": base64.b64encode(attrs).decode(),
            "document_digest": base64.b64encode(digest).decode(),
            "filing": {"title": "2025 年度报告", "enterprise": NAME_A, "sha256": "ab" * 32},
            **extra}


def test_status_lists_each_key_its_holder_and_tries_without_a_pin(site: CaHome) -> None:
    run = run_host(frame({"command": "status", "id": 7}), env=_env(site))
    assert run.rest == b"" and run.returncode == 0, run.stderr
    [reply] = run.replies
    assert reply["ok"] and reply["id"] == 7 and reply["host"] == "cn.eseal.host"
    tokens = {t["label"]: t for t in reply["tokens"]}
    assert tokens["zhang"]["keys"] == ["login", "seal"]
    assert tokens["wang"]["keys"] == ["login"]
    assert tokens["zhang"]["holder"] == "张三" and tokens["zhang"]["enterprise"] == NAME_A
    assert tokens["zhang"]["uscc"] == USCC_A
    assert tokens["zhang"]["tries_left"] == tokens["zhang"]["max_tries"] > 0
    assert not tokens["zhang"]["locked"]
    assert all(c["not_after"] for c in tokens["zhang"]["certificates"])


def test_status_answers_json_when_no_key_is_plugged_in(tmp_path: Path) -> None:
    from eseal.token.softhsm import write_conf

    empty = write_conf(tmp_path / "softhsm2.conf", tmp_path / "tokens")
    run = run_host(frame({"command": "status"}), env=host_env(empty))
    assert run.replies == [{"ok": True, "host": "cn.eseal.host", "protocol": 1, "tokens": []}]
    run = run_host(frame({"command": "authenticate", "origin": ORIGIN, "pin": "1",
                          "challenge": {"nonce": "n", "issued_at": "t"}}),
                   env=host_env(empty))
    assert run.replies[0]["error"]["code"] == "KEY_NOT_FOUND"
    assert run.replies[0]["error"]["message_zh"]


def test_authenticate_signs_the_login_message_for_the_given_origin_with_the_login_key(
        site: CaHome) -> None:
    challenge = {"nonce": "bm9uY2U", "issued_at": "2026-12-04T10:00:00Z", "purpose": "login",
                 "origin": "https://the-page-said-this.example"}
    run = run_host(frame({"command": "authenticate", "origin": ORIGIN + "/some/path",
                          "token": "zhang", "pin": PINS["zhang"], "challenge": challenge}),
                   env=_env(site))
    [reply] = run.replies
    assert reply["ok"], reply
    answer = reply["answer"]
    assert answer["origin"] == ORIGIN  # the extension's origin, not the challenge's
    certs = _certs("zhang")
    der = base64.b64decode(answer["certificate"])
    assert x509.load_der_x509_certificate(der) == certs["login"]
    message = login_message(nonce="bm9uY2U", origin=ORIGIN, issued_at=challenge["issued_at"])
    certs["login"].public_key().verify(base64.b64decode(answer["signature"]), message,
                                       ec.ECDSA(hashes.SHA256()))
    assert PINS["zhang"] not in str(reply)


def test_seal_signs_the_attributes_once_with_the_seal_key(
        site: CaHome, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = _certs("zhang")
    digest = hashlib.sha256(b"the byte ranges").digest()
    attrs = signed_attrs(digest, certs["seal"])
    calls = count_token_signatures(monkeypatch)
    reply = native_host.handle(_seal_message(digest, attrs, pin=PINS["zhang"]))
    assert len(calls) == 1
    assert reply["certificate_serial"] == format(certs["seal"].serial_number, "x")
    certs["seal"].public_key().verify(base64.b64decode(reply["signature"]), attrs,
                                      ec.ECDSA(hashes.SHA256()))
    assert PINS["zhang"] not in str(reply)


def test_the_host_process_seals_pyhankos_attributes_and_checks_them_without_the_pin(
        site: CaHome) -> None:
    """In its own process (nothing imported beforehand by a test), the host recognises the
    ESS signing-certificate attribute as pyHanko writes it."""
    import asyncio

    from pyhanko.sign.signers.pdf_cms import ExternalSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from eseal.signing.sign import _asn1_cert

    seal = _certs("zhang")["seal"]
    signer = ExternalSigner(_asn1_cert(seal), SimpleCertificateStore.from_certs([]),
                            signature_value=72)
    digest = hashlib.sha256(b"pdf byte ranges").digest()
    attrs = asyncio.run(signer.signed_attrs(digest, "sha256", use_pades=True)).dump()
    check = {**_seal_message(digest, attrs), "command": "check"}
    run = run_host(frame(check) + frame(_seal_message(digest, attrs, pin=PINS["zhang"])),
                   env=_env(site))
    checked, signed = run.replies
    assert checked["ok"] and "signature" not in checked, checked
    assert signed["ok"], signed
    seal.public_key().verify(base64.b64decode(signed["signature"]), attrs,
                             ec.ECDSA(hashes.SHA256()))


def test_seal_refuses_another_digest_the_login_certificate_and_a_key_without_seal(
        site: CaHome, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = _certs("zhang")
    digest = hashlib.sha256(b"shown").digest()
    other = hashlib.sha256(b"slipped in").digest()
    calls = count_token_signatures(monkeypatch)
    cases = {
        "DIGEST_MISMATCH": _seal_message(digest, signed_attrs(other, certs["seal"]),
                                         pin=PINS["zhang"]),
        "SIGNING_CERT_MISMATCH": _seal_message(digest, signed_attrs(digest, certs["login"]),
                                               pin=PINS["zhang"]),
        "KEY_NOT_FOUND": _seal_message(digest, signed_attrs(digest, certs["seal"]),
                                       pin=PINS["wang"], token="wang"),
        "SIGNED_ATTRS_INVALID": _seal_message(digest, b"\x31\x03\x02\x01\x00",
                                              pin=PINS["zhang"]),
    }
    for code, message in cases.items():
        with pytest.raises(EsealError) as err:
            native_host.handle(message)
        assert err.value.code == code
    assert calls == []  # refused before the token was asked for anything
    check = native_host.handle({**_seal_message(digest, signed_attrs(digest, certs["seal"])),
                                "command": "check"})
    assert check["ok"] and "signature" not in check and calls == []


def test_login_never_uses_the_seal_key(site: CaHome, monkeypatch: pytest.MonkeyPatch) -> None:
    certs = _certs("zhang")
    calls = count_token_signatures(monkeypatch)
    reply = native_host.handle({"command": "authenticate", "origin": ORIGIN, "token": "zhang",
                                "pin": PINS["zhang"],
                                "challenge": {"nonce": "x", "issued_at": "y"}})
    assert len(calls) == 1
    signature = base64.b64decode(reply["answer"]["signature"])
    message = login_message(nonce="x", origin=ORIGIN, issued_at="y")
    certs["login"].public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(Exception):  # noqa: B017 - any InvalidSignature
        certs["seal"].public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_a_wrong_pin_says_how_many_tries_are_left_and_is_never_echoed(site: CaHome) -> None:
    message = {"command": "authenticate", "origin": ORIGIN, "token": "zhao", "pin": "0000-9999",
               "challenge": {"nonce": "x", "issued_at": "y"}}
    run = run_host(frame(message) + frame(message), env=_env(site))
    first, second = (r["error"] for r in run.replies)
    assert first["code"] == second["code"] == "PIN_INCORRECT"
    assert second["details"]["tries_left"] == first["details"]["tries_left"] - 1
    assert "0000-9999" not in str(run.replies) and "0000-9999" not in run.stderr
    ok = run_host(frame({**message, "pin": PINS["zhao"]}), env=_env(site))
    assert ok.replies[0]["ok"]  # a right PIN resets the count


@pytest.mark.parametrize("data, code, exit_code", [
    (struct.pack("=I", 0), "MESSAGE_EMPTY", 1),
    (struct.pack("=I", 1024 * 1024 + 1) + b"{" * 64, "MESSAGE_TOO_LARGE", 1),
    (struct.pack("=I", 0xFFFFFFFF), "MESSAGE_TOO_LARGE", 1),
    (struct.pack("=I", 100) + b'{"command":', "MESSAGE_TRUNCATED", 1),
    (b"\x05\x00", "MESSAGE_TRUNCATED", 1),
    (frame(b"not json at all"), "MESSAGE_NOT_JSON", 0),
    (frame(b"\xff\xfe\x00"), "MESSAGE_NOT_JSON", 0),
    (frame({"command": "format-the-disk"}), "COMMAND_UNKNOWN", 0),
    (frame([1, 2, 3]), "MESSAGE_INVALID", 0),
    (frame({"command": "sign", "origin": ORIGIN, "signed_attrs": "%%%"}), "FIELD_MISSING", 0),
    (frame({"command": "authenticate", "origin": "javascript:alert(1)"}), "ORIGIN_INVALID", 0),
])
def test_broken_frames_get_an_error_reply_and_stdout_carries_only_frames(
        site: CaHome, data: bytes, code: str, exit_code: int) -> None:
    after = frame({"command": "status"}) if exit_code == 0 else b""
    run = run_host(data + after, env=_env(site))
    assert run.rest == b"", run.rest[:200]
    assert run.replies[0]["ok"] is False and run.replies[0]["error"]["code"] == code
    assert run.replies[0]["error"]["message_zh"]
    assert run.returncode == exit_code
    if exit_code == 0:  # the conversation goes on after a message it could frame
        assert run.replies[1]["ok"] is True
    assert "Traceback" not in run.stderr

"""A small Python client of the eseal service (httpx), used by the CLI's ``--server`` paths.

It speaks eseal's error contract back: a 4xx/5xx answer becomes a :class:`ServiceError`
carrying the server's code, English and Chinese message and field, so ``eseal login
--server`` prints the same one line and exits non-zero as a local command would.

Login signs with the USB-Key through ``eseal.token.client.UsbKey`` (the one client-side
signing path) over :func:`eseal.auth.login.login_message` (the one definition of the signed
bytes). The origin put into those bytes is the one *this client* talks to (the server URL,
or ``origin=`` when a load balancer's public URL fronts it), never one the server suggests:
that is what makes a relayed challenge useless to a phishing site.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.hazmat.primitives import serialization

from eseal.errors import EsealError
from eseal.pki.login_message import login_message, normalize_origin

if TYPE_CHECKING:
    from eseal.token.client import UsbKey
    from eseal.token.keys import KeySpec


class ServiceError(EsealError):
    """An error answer from the service (its code and messages), or no answer at all."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(str(body.get("code") or f"HTTP_{status}"),
                         str(body.get("message") or f"HTTP {status}"),
                         str(body.get("message_zh") or ""),
                         field=body.get("field") if isinstance(body.get("field"), str) else None,
                         details=body.get("details") if isinstance(body.get("details"), dict)
                         else None)
        self.status = status


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_challenge(challenge: Mapping[str, Any], usbkey: UsbKey, *, origin: str) -> dict[str, str]:
    """The ``/auth/verify`` body: the challenge signed with the token's login key for
    ``origin`` (the site this client believes it is logging in to)."""
    fields = {"nonce": str(challenge["nonce"]), "origin": normalize_origin(origin),
              "purpose": str(challenge.get("purpose", "login")),
              "issued_at": str(challenge["issued_at"])}
    signature = usbkey.sign("login", login_message(**fields))
    der = usbkey.certificate("login").public_bytes(serialization.Encoding.DER)
    return {**fields, "certificate": _b64(der), "signature": _b64(signature)}


class EsealClient:
    """One server, one (optional) session."""

    def __init__(self, base_url: str, *, origin: str | None = None, timeout: float = 30.0,
                 headers: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = normalize_origin(origin or self.base_url)
        self.session: str | None = None
        self.account: dict[str, Any] | None = None
        kwargs: dict[str, Any] = {"base_url": self.base_url, "timeout": timeout,
                                  "headers": dict(headers or {})}
        if transport is not None:
            kwargs["transport"] = transport
        self._http = httpx.Client(**kwargs)

    # -- plumbing -------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Any:
        """Send one request (with the session, if any); the JSON answer or ServiceError."""
        hdrs = dict(headers or {})
        if self.session is not None:
            hdrs.setdefault("Authorization", f"Bearer {self.session}")
        try:
            response = self._http.request(method, path, json=json, params=params, headers=hdrs)
        except httpx.HTTPError as exc:
            raise ServiceError(0, {"code": "SERVICE_UNREACHABLE",
                                   "message": f"cannot reach {self.base_url}: "
                                              f"{type(exc).__name__}",
                                   "message_zh": f"无法连接 {self.base_url}"}) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            raise ServiceError(response.status_code, body if isinstance(body, dict) else {})
        return body

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EsealClient:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving the block ends the session too, also when a step inside it failed: a
        refused upload must not leave a valid session token behind on the server."""
        try:
            if self.session is not None:
                with contextlib.suppress(Exception):  # unreachable service: it expires
                    self.logout()
        finally:
            self.close()

    # -- login ----------------------------------------------------------------------------
    def challenge(self) -> dict[str, Any]:
        return dict(self.request("POST", "/auth/challenge"))

    def verify(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        """Send a signed answer; on success this client holds the session."""
        result = dict(self.request("POST", "/auth/verify", json=dict(answer)))
        self.session = str(result["session"])
        self.account = dict(result["account"])
        return result

    def login(self, usbkey: UsbKey) -> dict[str, Any]:
        """Challenge, sign with the token's login key, verify: the session is kept here."""
        return self.verify(sign_challenge(self.challenge(), usbkey, origin=self.origin))

    def login_with_token(self, label: str, pin: str) -> dict[str, Any]:
        """Open the USB-Key with its PIN (a wrong PIN counts on the token) and log in."""
        from eseal.token.client import UsbKey

        with UsbKey.open(label, pin) as usbkey:
            return self.login(usbkey)

    def me(self) -> dict[str, Any]:
        return dict(self.request("GET", "/auth/me"))

    def logout(self) -> None:
        if self.session is not None:
            self.request("POST", "/auth/logout")
            self.session = None

    # -- enrollment -----------------------------------------------------------------------
    def enrollment_code(self, *, role: str, holder: str, uscc: str | None) -> dict[str, Any]:
        """A single-use code (officers: any role; legal representatives: agents of their
        own enterprise)."""
        body = {"role": role, "holder": holder}
        if self.account and self.account.get("role") == "officer":
            return dict(self.request("POST", "/officer/enrollment-codes",
                                     json={**body, "uscc": uscc}))
        return dict(self.request("POST", f"/enterprises/{uscc}/enrollment-codes", json=body))

    def describe_code(self, code: str) -> dict[str, Any]:
        return dict(self.request("POST", "/enroll/lookup", json={"code": code}))

    def enroll_token(self, *, code: str, label: str, pin: str,
                     key_spec: KeySpec = "ec-p256") -> dict[str, Any]:
        """Enroll a USB-Key with a code: keys are generated on the token (never leave it),
        CSRs signed there, the server certifies them and the certificates and CA chain are
        written back beside the keys. A failure leaves the token as it was."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        from eseal.pki.identity import organization_identifier
        from eseal.pki.oids import ORGANIZATION_IDENTIFIER
        from eseal.token.pin import PinPolicy
        from eseal.token.usbkey import (
            build_csr,
            generate_key,
            install_certificate,
            install_chain,
            keys_by_purpose,
            remove_objects,
        )

        info = self.describe_code(code)
        ts = PinPolicy().login(label, pin, rw=True)
        created: list[bytes] = []
        try:
            present = keys_by_purpose(ts)
            if present:
                raise EsealError("TOKEN_ALREADY_ENROLLED",
                                 f"token {label!r} already holds eseal keys "
                                 f"({', '.join(sorted(present))})",
                                 f"USB-Key {label!r} 上已有 eseal 密钥", field="label")
            csrs: dict[str, str] = {}
            keys = {}
            for purpose in info["keys"]:
                key = generate_key(ts, purpose, key_spec)
                created.append(key.id)
                keys[purpose] = key
                attrs = [x509.NameAttribute(NameOID.COMMON_NAME,
                                            info["enterprise_name"] if purpose == "seal"
                                            else info["holder"])]
                if info.get("enterprise"):
                    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                 info["enterprise_name"]),
                              x509.NameAttribute(ORGANIZATION_IDENTIFIER,
                                                 organization_identifier(info["enterprise"]))]
                csrs[purpose] = build_csr(ts, key, x509.Name(attrs)).decode("ascii")
            result = dict(self.request("POST", "/enroll",
                                       json={"code": code, "label": label, "csrs": csrs}))
            for purpose, item in result["certificates"].items():
                cert = x509.load_pem_x509_certificate(item["pem"].encode("ascii"))
                install_certificate(ts, purpose, cert)
            chain = [x509.load_pem_x509_certificate(p.encode("ascii")) for p in result["chain"]]
            created.extend(install_chain(ts, chain))
            return result
        except BaseException:
            remove_objects(ts, created)
            raise
        finally:
            ts.close()

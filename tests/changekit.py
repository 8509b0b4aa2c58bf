"""Test kit for the enterprise-change journeys: a live site (CA home, enrolled USB-Keys, the
real service on loopback), logged-in HTTP clients, ``openssl ocsp`` verdicts, and reading the
home's database as an auditor would.

Why a kit: the rename, legal-representative, rights, ledger and remote-unblock tests each need
the same site and the same independent checks; each test module builds its own site once
(module scope) because every journey changes the enterprise for good.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pdfkit import make_pdf
from sitekit import Holder, ca_home, eseal_cli, seal_with_token
from sqlalchemy import select

from eseal.ca.authority import Authority
from eseal.holder.client import EsealClient
from eseal.settings import Settings, load_settings
from eseal.store import open_database
from eseal.store.models import AuditEvent, Certificate
from tests.conftest import NAME_A, USCC_A, LiveServer

PINS = {"zhang": "4913-7720", "wang": "6624-0195", "zhao": "5172-3386", "sun": "7390-2264"}
HOLDERS = [Holder("zhang", PINS["zhang"], USCC_A, "legal_rep", "张三"),
           Holder("wang", PINS["wang"], USCC_A, "agent", "王五"),
           Holder("zhao", PINS["zhao"], USCC_A, "agent", "赵六")]


@dataclass
class Site:
    home: Path
    settings: Settings
    server: LiveServer
    root: x509.Certificate
    work: Path
    sessions: dict[str, EsealClient] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def login(self, label: str, pin: str | None = None) -> EsealClient:
        if label not in self.sessions:
            api = EsealClient(self.url)
            api.login_with_token(label, pin or PINS[label])
            self.sessions[label] = api
        return self.sessions[label]

    def forget(self, label: str) -> None:
        api = self.sessions.pop(label, None)
        if api is not None:
            api.close()

    def http(self, label: str | None) -> httpx.Client:
        headers = {}
        if label is not None:
            headers["Authorization"] = f"Bearer {self.login(label).session}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def call(self, label: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        with self.http(label) as http:
            return http.request(method, path, **kw)

    def submit(self, label: str, *, kind: str | None = None,
               title: str = "2025 年度报告") -> httpx.Response:
        params = {"title": title}
        if kind is not None:
            params["type"] = kind
        return self.call(label, "POST", "/filings", content=make_pdf(pages=1).data,
                         params=params, headers={"Content-Type": "application/pdf"})

    def seal_and_upload(self, label: str, filing_id: int) -> tuple[httpx.Response, bytes]:
        draft = self.call(label, "GET", f"/filings/{filing_id}/draft").content
        sealed = seal_with_token(draft, label, PINS[label], server=self.url, reason="同意")
        answer = self.call(label, "POST", f"/filings/{filing_id}/seal", content=sealed,
                           headers={"Content-Type": "application/pdf"})
        return answer, sealed

    def authority(self) -> Authority:
        return Authority.open(load_settings(self.home))

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return eseal_cli(*args, home=self.home, stdin=stdin, cwd=self.work)

    def certificates(self, **where: Any) -> list[Certificate]:
        db = open_database(self.settings.database)
        with db.read() as s:
            q = select(Certificate).order_by(Certificate.created_at, Certificate.serial)
            for key, value in where.items():
                q = q.where(getattr(Certificate, key) == value)
            return list(s.execute(q).scalars())

    def audit(self, action: str | None = None) -> list[AuditEvent]:
        db = open_database(self.settings.database)
        with db.read() as s:
            q = select(AuditEvent).order_by(AuditEvent.id)
            if action is not None:
                q = q.where(AuditEvent.action == action)
            return list(s.execute(q).scalars())

    def pem(self, name: str, cert: x509.Certificate | bytes) -> Path:
        path = self.work / name
        if isinstance(cert, bytes):
            cert = x509.load_der_x509_certificate(cert)
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def ocsp(self, der: bytes) -> str:
        """``openssl ocsp``'s verdict line for a certificate (``good``, ``revoked``) and the
        reason, checked against the root (an independent OCSP client)."""
        with self.authority() as auth:
            issuing = auth.certificate("issuing")
        leaf = self.pem("leaf.pem", der)
        done = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(self.pem("issuing.pem", issuing)), "-cert",
             str(leaf), "-url", f"{self.url}/ocsp", "-CAfile", str(self.pem("root.pem", self.root)),
             "-no_nonce"], capture_output=True, text=True, timeout=60, check=False)
        assert "Response verify OK" in done.stderr, done.stdout + done.stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith(f"{leaf}:"))
        verdict = line.split(":", 1)[1].strip()
        reason = next((x.split(":", 1)[1].strip() for x in done.stdout.splitlines()
                       if x.strip().startswith("Reason:")), None)
        return f"{verdict} ({reason})" if reason else verdict


@contextmanager
def live_site(tmp: Path, *, holders: list[Holder] | None = None,
              toml: str = "") -> Iterator[Site]:
    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三")],
                 holders=HOLDERS if holders is None else holders, toml=toml) as ca:
        work = tmp / "work"
        work.mkdir()
        server = LiveServer(ca.home, ca.port)
        site = Site(ca.home, ca.settings, server, ca.root, work)
        try:
            yield site
        finally:
            for api in site.sessions.values():
                api.close()
            server.stop()

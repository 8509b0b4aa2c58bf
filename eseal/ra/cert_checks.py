"""Checks every lifecycle decision shares: load a certificate row, is it an enterprise's,
is it live, is its enterprise active.

Renewal, re-key, freeze and revocation refuse the same things with the same codes, so the
checks live once here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from eseal import clock
from eseal.ca.issuance import ENTERPRISE_PROFILES
from eseal.errors import Conflict, InvalidInput, NotFound
from eseal.store.models import Certificate, Enterprise

CERTS = Certificate.__table__
_ENTERPRISES = Enterprise.__table__
# Prepared once: batch renewal runs these thousands of times (ORM ``get`` cost 40 % of it).
_CERT_BY_SERIAL = select(CERTS).where(CERTS.c.serial == bindparam("serial"))
_ENTERPRISE_BY_ID = select(_ENTERPRISES).where(_ENTERPRISES.c.id == bindparam("id"))


def status_now() -> datetime:
    """Status times are whole seconds, as the CRL and OCSP encode them."""
    return clock.now().replace(microsecond=0)


def day_text(when: datetime) -> str:
    """A time as refusal messages show it."""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- checks shared by every operation -------------------------------------------------------
def load_certificate(s: Session, serial: str) -> Certificate:
    """The certificate for changing it (row-locked on PostgreSQL; SQLite's write
    transaction already holds the database lock)."""
    row = s.get(Certificate, serial, with_for_update=True)
    if row is None:
        raise NotFound("CERT_NOT_FOUND", f"no certificate with serial {serial}",
                       f"找不到序列号为 {serial} 的证书", field="serial")
    return row


def read_certificate(s: Session, serial: str) -> Any:
    """The certificate as a plain row (cheap; for checks, not for changing it)."""
    row = s.connection().execute(_CERT_BY_SERIAL, {"serial": serial}).first()
    if row is None:
        raise NotFound("CERT_NOT_FOUND", f"no certificate with serial {serial}",
                       f"找不到序列号为 {serial} 的证书", field="serial")
    return row


def enterprise_of(s: Session, row: Any) -> Any:
    return s.connection().execute(_ENTERPRISE_BY_ID, {"id": row.enterprise_id}).first()


def check_enterprise_cert(row: Any) -> None:
    if row.enterprise_id is None or row.profile not in ENTERPRISE_PROFILES:
        raise InvalidInput("CERT_NOT_RENEWABLE",
                           f"certificate {row.serial} is a {row.profile} certificate; only "
                           "enterprise login and seal certificates are renewed",
                           f"证书 {row.serial} 为 {row.profile} 证书，仅企业登录与签章证书可续期",
                           field="serial")


def check_live(row: Any, doing_en: str, doing_zh: str) -> None:
    if row.status == "revoked":
        raise Conflict("CERT_ALREADY_REVOKED",
                       f"certificate {row.serial} is revoked ({row.revocation_reason}); it "
                       f"cannot be {doing_en}",
                       f"证书 {row.serial} 已吊销（{row.revocation_reason}），不能{doing_zh}",
                       field="serial")
    if row.status == "hold":
        raise Conflict("CERT_ALREADY_FROZEN",
                       f"certificate {row.serial} is frozen; unfreeze it before it can be "
                       f"{doing_en}",
                       f"证书 {row.serial} 已冻结，解冻后才能{doing_zh}", field="serial")


def check_cert_enterprise(ent: Any, row: Any) -> Any:
    if ent is None or ent.status != "active":
        uscc = ent.uscc if ent is not None else "?"
        raise Conflict("ENTERPRISE_NOT_ACTIVE",
                       f"enterprise {uscc} of certificate {row.serial} is deregistered: "
                       "nothing new is issued",
                       f"证书 {row.serial} 所属企业 {uscc} 已注销，不再签发证书", field="serial")
    return ent

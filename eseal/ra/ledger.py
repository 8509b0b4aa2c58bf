"""The credential ledger (企业数字凭证管理台账): every key, holder and credential event of one
enterprise, in order, read from the audit log.

Enterprises are asked to keep a register of their USB-Keys, who holds them and every
certificate and PIN event. The CA already records each of those as an audit event (hash
chained, checkpoint signed), so the ledger is a *view* of the log, not a second record that
could disagree with it: the events whose target is the enterprise, one of its certificates,
one of its USB-Keys or one of its accounts, refusals and reads left out. Each row names the
USB-Key and holder (from the certificate or token record), the certificate serial and
profile, and the reason where there is one (revocations).

Rendering: ``to_csv`` (RFC 4180, UTF-8, a header row; Python's ``csv`` reads it back). The
PDF, sealed by the CA's own ledger seal, is drawn and sealed by the CLI
(``eseal enterprise ledger --pdf``) with :mod:`eseal.ra.ledger_seal`'s key.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import or_, select

from eseal.ca.authority import Authority
from eseal.pki import identity
from eseal.store.models import AuditEvent, Certificate, TokenRecord
from eseal.store.models_login import accounts

#: audit action -> (what happened, 中文)
KINDS: dict[str, tuple[str, str]] = {
    "enterprise.register": ("enterprise registered", "企业登记"),
    "enterprise.rename": ("enterprise renamed", "企业名称变更"),
    "enterprise.legal_rep.change": ("legal representative changed", "法定代表人变更"),
    "enterprise.contacts.set": ("emergency contacts changed", "应急联系人变更"),
    "enterprise.deregister": ("enterprise deregistered", "企业注销"),
    "token.enroll": ("USB-Key enrolled", "USB-Key 办理"),
    "token.refresh": ("certificates installed on the USB-Key", "证书写入 USB-Key"),
    "token.unblock": ("USB-Key unblocked by an officer", "USB-Key 现场解锁"),
    "token.pin.change": ("PIN changed", "修改 PIN"),
    "cert.issue": ("certificate issued", "证书签发"),
    "cert.renew": ("certificate renewed", "证书续期"),
    "cert.freeze": ("certificate frozen", "证书冻结"),
    "cert.unfreeze": ("certificate unfrozen", "证书解冻"),
    "cert.revoke": ("certificate revoked", "证书吊销"),
    "account.rights.set": ("rights changed", "权限变更"),
    "account.disable": ("account disabled", "账户停用"),
    "account.lock": ("account locked", "账户锁定"),
    "account.unlock": ("account unlocked", "账户解锁"),
    "unblock.request": ("USB-Key locked: remote unblock asked", "USB-Key 锁定，申请远程解锁"),
    "unblock.approve": ("remote unblock approved", "远程解锁已批准"),
    "unblock.redeem": ("remote unblock authorisation used", "远程解锁授权已使用"),
    "unblock.complete": ("USB-Key unblocked remotely: new PIN set, SO PIN rotated",
                         "远程解锁完成：已设新 PIN，管理员 PIN 已更换"),
}
COLUMNS = ("seq", "at", "event", "event_zh", "usb_key", "holder", "certificate", "profile",
           "reason", "detail", "actor", "audit_id")


@dataclass(frozen=True)
class LedgerRow:
    seq: int
    at: str
    event: str
    event_zh: str
    usb_key: str
    holder: str
    certificate: str
    profile: str
    reason: str
    detail: str
    actor: str
    audit_id: int


def _detail(action: str, d: dict[str, Any]) -> str:
    if action == "enterprise.rename":
        return f"{d.get('old_name')} -> {d.get('new_name')}"
    if action == "enterprise.legal_rep.change":
        return f"{d.get('old_legal_rep')} -> {d.get('new_legal_rep')}"
    if action == "cert.renew":
        return f"new serial {d.get('new_serial')}, notAfter {d.get('not_after')}"
    if action == "account.rights.set":
        return f"{', '.join(d.get('previous') or []) or '-'} -> {', '.join(d.get('types') or [])}"
    if action == "enterprise.contacts.set":
        return f"{len(d.get('contacts') or [])} contacts"
    if action == "account.disable":
        return f"{d.get('role')} {d.get('name')}"
    if action == "cert.issue" and d.get("replaces"):
        return f"replaces {d['replaces']} ({d.get('via')})"
    return ""


def ledger_rows(auth: Authority, uscc: str) -> list[LedgerRow]:
    """The enterprise's credential events from the audit log, oldest first."""
    code = identity.validate_uscc(uscc)
    with auth.db.read() as s:
        ent = auth.enterprise_row(s, code)
        certs = {c.serial: c for c in s.execute(select(
            Certificate.serial, Certificate.holder, Certificate.profile, Certificate.token_label)
            .where(Certificate.enterprise_id == ent.id)).all()}
        tokens = {t.label: t for t in s.execute(select(TokenRecord.label, TokenRecord.holder)
                                                .where(TokenRecord.enterprise_id == ent.id)).all()}
        people = {f"account:{a.id}": a for a in s.execute(select(
            accounts.c.id, accounts.c.name).where(accounts.c.enterprise_id == ent.id)).all()}
        targets = [code, *certs, *tokens, *people]
        events = []
        for i in range(0, len(targets), 500):  # bounded IN lists
            events.extend(s.execute(select(AuditEvent).where(
                AuditEvent.outcome == "ok", AuditEvent.action.in_(KINDS),
                or_(AuditEvent.target.in_(targets[i:i + 500]))))
                .scalars())
    events.sort(key=lambda e: e.id)
    rows: list[LedgerRow] = []
    seen: set[int] = set()
    for e in events:
        if e.id in seen:
            continue
        seen.add(e.id)
        d = dict(e.details or {})
        serial = str(d.get("serial") or (e.target if e.target in certs else "") or "")
        cert = certs.get(serial)
        label = (cert.token_label if cert else None) or (e.target if e.target in tokens else "")
        holder = (cert.holder if cert else None) or d.get("holder") or (
            tokens[label].holder if label in tokens else None) or (
            people[e.target].name if e.target in people else "") or ""
        en, zh = KINDS[e.action]
        rows.append(LedgerRow(
            seq=len(rows) + 1, at=e.at.isoformat(), event=en, event_zh=zh,
            usb_key=label or "", holder=str(holder), certificate=serial,
            profile=cert.profile if cert else "", reason=str(d.get("reason") or ""),
            detail=_detail(e.action, d), actor=e.actor, audit_id=e.id))
    return rows


def to_csv(rows: list[LedgerRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return out.getvalue()

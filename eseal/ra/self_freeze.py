"""挂失: a holder freezes their own USB-Key at once ("this was not me").

A holder who sees a login they did not make must be able to stop the key without waiting for
an officer. What "their own key" covers: every USB-Key the CA handed to this account's
holder (``tokens`` rows with the account's enterprise, role and holder name — the same three
things that name the account), and on those keys every *current* certificate: the login
certificate and, on a legal representative's key, the enterprise's seal certificate, plus the
older certificates of the same keys that a renewal left valid (one credential, as
:func:`eseal.ra.revocation.same_key` says). Whoever holds the key could seal with it as well
as log in, so the seal certificate on it is frozen too. A colleague's key is never touched,
and neither is an expired certificate (it opens nothing any more).

The freeze follows the officer's freeze rules (:func:`eseal.ra.revocation.hold_row`):
certificateHold on the CRL and in OCSP, a freeze window, the sessions opened with each
certificate ended in the same transaction — so the holder's own page session is over too —
and fresh CRLs. It is one transaction audited as ``cert.report_lost`` with the holder as the
actor, plus one ``cert.freeze`` event per certificate (``via: report_lost``) for the
credential ledger. Only an officer lifts it, after checking with the enterprise
(``eseal cert unfreeze`` / ``POST /officer/certificates/{serial}/unfreeze``); the holder
cannot, since whoever has the key could do the same. Pressing twice freezes nothing more:
``KEY_ALREADY_FROZEN`` (409).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from eseal.ca.authority import Authority
from eseal.ca.status import publish_crls
from eseal.errors import Conflict, InvalidInput
from eseal.ra.cert_checks import status_now
from eseal.ra.revocation import hold_row, same_key
from eseal.store.models import Certificate, Enterprise, TokenRecord

ENTERPRISE_ROLES = ("agent", "legal_rep")


@dataclass(frozen=True)
class ReportedLost:
    """What the freeze did: the keys (token labels) and the certificates now on hold."""

    uscc: str
    enterprise: str
    holder: str
    role: str
    tokens: tuple[str, ...]
    frozen: tuple[dict[str, str], ...]  # {serial, profile, token_label}
    frozen_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"uscc": self.uscc, "enterprise": self.enterprise, "holder": self.holder,
                "role": self.role, "tokens": list(self.tokens),
                "frozen": [dict(f) for f in self.frozen],
                "frozen_at": self.frozen_at.isoformat(),
                "sessions_ended": True,
                "unfreeze": {"by": "officer",
                             "en": "Only a CA officer can unfreeze the key, after checking "
                                   "with your enterprise: call or visit the CA service desk "
                                   "with your USB-Key and your ID.",
                             "zh": "只有 CA 管理员核实情况后才能解冻：请携带 USB-Key 和本人"
                                   "身份证件联系或前往 CA 服务窗口。"}}


def holder_tokens(s: Any, *, enterprise_id: int, role: str, holder: str) -> list[str]:
    """Labels of the USB-Keys the CA handed to this holder (in this role, of this
    enterprise)."""
    return list(s.execute(select(TokenRecord.label).where(
        TokenRecord.enterprise_id == enterprise_id, TokenRecord.role == role,
        TokenRecord.holder == holder).order_by(TokenRecord.label)).scalars())


def _on_keys(s: Any, labels: list[str], now: datetime, statuses: tuple[str, ...],
             ) -> list[Certificate]:
    if not labels:
        return []
    return list(s.execute(select(Certificate).where(
        Certificate.token_label.in_(labels), Certificate.issuer_role == "issuing",
        Certificate.status.in_(statuses), Certificate.not_after > now)
        .order_by(Certificate.profile, Certificate.serial).with_for_update()).scalars())


def report_lost(auth: Authority, *, enterprise_id: int, role: str, holder: str, actor: str,
                disputed_login: int | None = None) -> ReportedLost:
    """Freeze every current certificate on the holder's own USB-Key(s) in one transaction.

    The caller passes the session's own account (enterprise, role, holder), so nobody can
    name another's key. Raises (audited, nothing changed): ``KEY_NOT_ON_RECORD`` (422) when
    the CA has no enterprise key of this holder; ``KEY_ALREADY_FROZEN`` (409) when nothing
    on the keys is good any more.
    """
    details: dict[str, Any] = {"holder": holder, "role": role, "via": "portal"}
    if disputed_login is not None:
        details["disputed_login"] = disputed_login
    target = f"holder:{enterprise_id}:{role}:{holder}"
    if role not in ENTERPRISE_ROLES:
        error = InvalidInput("KEY_NOT_ON_RECORD", f"a {role} reports a lost key to an officer",
                             "CA 工作人员的 USB-Key 挂失请联系管理员", field="role")
        auth.record_refusal(actor=actor, action="cert.report_lost", target=target,
                            error=error, details=details)
        raise error
    now = status_now()
    with auth.change(actor=actor, action="cert.report_lost", target=target,
                     details=details) as s:
        ent = s.get(Enterprise, enterprise_id)
        labels = holder_tokens(s, enterprise_id=enterprise_id, role=role, holder=holder)
        details["tokens"] = labels
        if ent is None or not labels:
            raise InvalidInput("KEY_NOT_ON_RECORD",
                               f"the CA has no USB-Key on record for {holder}",
                               f"CA 没有 {holder} 的 USB-Key 记录", field="holder")
        details["uscc"] = ent.uscc
        targets = _on_keys(s, labels, now, ("good",))
        seen = {row.serial for row in targets}
        for row in list(targets):  # renewed-from certificates of the same keys, if elsewhere
            for other in same_key(s, row, now, statuses=("good",)):
                if other.serial not in seen:
                    seen.add(other.serial)
                    targets.append(other)
        if not targets:
            held = _on_keys(s, labels, now, ("hold",))
            raise Conflict("KEY_ALREADY_FROZEN",
                           f"the USB-Key of {holder} is already frozen "
                           f"({len(held)} certificates on hold) or has no valid certificate; "
                           "an officer unfreezes it after checking",
                           f"{holder} 的 USB-Key 已冻结（{len(held)} 张证书处于冻结状态）"
                           "或没有有效证书；需由管理员核实后解冻", field="holder",
                           details={"on_hold": [r.serial for r in held]})
        frozen = []
        for row in targets:
            hold_row(s, row, now)
            frozen.append({"serial": row.serial, "profile": row.profile,
                           "token_label": row.token_label or ""})
            auth.audit.append(s, actor=actor, action="cert.freeze", target=row.serial,
                              details={"via": "report_lost", "holder": holder})
        details["frozen"] = [f["serial"] for f in frozen]
        _tell_the_enterprise(s, ent, holder=holder, role=role, serials=details["frozen"],
                             now=now)
        result = ReportedLost(uscc=ent.uscc, enterprise=ent.name, holder=holder, role=role,
                              tokens=tuple(labels), frozen=tuple(frozen), frozen_at=now)
    publish_crls(auth)
    return result


def _tell_the_enterprise(s: Any, ent: Enterprise, *, holder: str, role: str,
                         serials: list[str], now: datetime) -> None:
    """One mail to the enterprise's contact address: a key of theirs was reported lost."""
    from eseal.auth.accounts import ROLE_NAMES_ZH, queue_notice
    from eseal.ra.notices import recipients_of

    subject = f"eseal: {holder} reported the USB-Key lost / {holder} 已挂失 USB-Key ({ent.uscc})"
    body = (f"{ent.name}:\n{holder} ({role}) reported their USB-Key lost on the portal at "
            f"{now.isoformat()}; its certificates ({', '.join(serials)}) are frozen. A CA "
            "officer unfreezes them after checking with you.\n"
            f"{holder}（{ROLE_NAMES_ZH.get(role, role)}）于 {now.isoformat()} 在网上办事大厅"
            f"挂失了 USB-Key，其证书（{', '.join(serials)}）已冻结。CA 管理员与贵单位核实后方可"
            "解冻。\n")
    queue_notice(s.connection(), recipient=", ".join(recipients_of(ent.contact_email)),
                 subject=subject, body=body, kind="key_reported_lost",
                 dedupe_key=f"lost:{serials[0]}:{now.isoformat()}", now=now)

"""Emergency contacts (应急联系人): at least two people to reach when the legal
representative cannot be, and the notices they get.

An enterprise files its contacts as one list (replacing the previous one, audited with both):
each with a name, a role, a mainland mobile number (11 digits, 1[3-9]xxxxxxxxx, an optional
+86 prefix accepted and dropped) and an e-mail address. The list must hold at least
``MIN_CONTACTS``; a bad entry is refused naming it (``contacts[1].phone``) and nothing
changes. When the legal representative's key is locked, revoked or the legal representative
changes, each contact is mailed through the outbox (``notify_contacts``), once per event.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from eseal import clock
from eseal.auth.accounts import queue_notice
from eseal.ca.authority import Authority
from eseal.errors import InvalidInput
from eseal.pki import identity
from eseal.store.models_enterprise import EmergencyContact

MIN_CONTACTS = 2
MAX_CONTACTS = 10
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]{2,63}")


def check_mobile(phone: Any, field: str) -> str:
    """A mainland China mobile number as 11 digits (``+86``/``86`` prefix dropped)."""
    text = phone if isinstance(phone, str) else ""
    digits = re.sub(r"[\s-]", "", text)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _MOBILE.fullmatch(digits):
        raise InvalidInput("PHONE_INVALID",
                           f"{text!r} is not a mainland mobile number (11 digits starting "
                           f"1[3-9], e.g. 13800138000)",
                           f"{text!r} 不是有效的大陆手机号码（11 位，以 13-19 开头）", field=field)
    return digits


def check_email(email: Any, field: str) -> str:
    text = email if isinstance(email, str) else ""
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        raise InvalidInput("EMAIL_INVALID", f"{text!r} is not an e-mail address",
                           f"{text!r} 不是有效的电子邮件地址", field=field)
    return text


def check_contacts(items: Any) -> list[dict[str, str]]:
    """The validated list, or the first problem naming its entry and field."""
    if not isinstance(items, list) or len(items) < MIN_CONTACTS:
        raise InvalidInput("CONTACTS_TOO_FEW",
                           f"file at least {MIN_CONTACTS} emergency contacts",
                           f"应急联系人至少 {MIN_CONTACTS} 名", field="contacts")
    if len(items) > MAX_CONTACTS:
        raise InvalidInput("CONTACTS_TOO_MANY", f"at most {MAX_CONTACTS} emergency contacts",
                           f"应急联系人最多 {MAX_CONTACTS} 名", field="contacts")
    out = []
    for i, item in enumerate(items):
        where = f"contacts[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput("CONTACT_INVALID", f"{where} must be an object",
                               f"{where} 格式错误", field=where)
        out.append({
            "name": identity.validate_person_name(item.get("name", ""), f"{where}.name"),
            "role": identity.validate_person_name(item.get("role", ""), f"{where}.role"),
            "phone": check_mobile(item.get("phone"), f"{where}.phone"),
            "email": check_email(item.get("email"), f"{where}.email")})
    return out


def set_contacts(auth: Authority, uscc: str, items: Any, *, actor: str,
                 by_enterprise_id: int | None = None) -> list[dict[str, str]]:
    """Replace the enterprise's emergency contacts (audited with the old and new lists)."""
    details: dict[str, Any] = {"uscc": uscc, "count": len(items) if isinstance(items, list)
                               else None}

    def validate() -> tuple[Any, list[dict[str, str]]]:
        code = identity.validate_uscc(uscc)
        ent = auth.enterprise(code)
        if by_enterprise_id is not None and ent.id != by_enterprise_id:
            from eseal.errors import NotFound

            raise NotFound("ENTERPRISE_NOT_FOUND", f"no enterprise {uscc} for you",
                           f"找不到企业 {uscc}", field="uscc")
        return ent, check_contacts(items)

    ent, contacts = auth.refusing(validate, actor=actor, action="enterprise.contacts.set",
                                  target=uscc, details=details)
    details["contacts"] = contacts
    now = clock.now()
    with auth.change(actor=actor, action="enterprise.contacts.set", target=ent.uscc,
                     details=details) as s:
        details["previous"] = [_dict(c) for c in _rows(s, ent.id)]
        s.execute(delete(EmergencyContact).where(EmergencyContact.enterprise_id == ent.id))
        for c in contacts:
            s.add(EmergencyContact(enterprise_id=ent.id, created_at=now, **c))
    return contacts


def _rows(s: Session, enterprise_id: int) -> list[EmergencyContact]:
    return list(s.execute(select(EmergencyContact)
                          .where(EmergencyContact.enterprise_id == enterprise_id)
                          .order_by(EmergencyContact.id)).scalars())


def _dict(c: EmergencyContact) -> dict[str, str]:
    return {"name": c.name, "role": c.role, "phone": c.phone, "email": c.email}


def list_contacts(auth: Authority, uscc: str) -> list[dict[str, str]]:
    with auth.db.read() as s:
        ent = auth.enterprise_row(s, identity.validate_uscc(uscc))
        return [_dict(c) for c in _rows(s, ent.id)]


EVENTS = {
    "key_locked": ("the legal representative's USB-Key is locked", "法定代表人的 USB-Key 已锁定"),
    "key_revoked": ("a certificate of the legal representative was revoked",
                    "法定代表人的证书已被吊销"),
    "legal_rep_changed": ("the legal representative changed", "法定代表人已变更"),
}


def notify_contacts(s: Session, *, enterprise_id: int, uscc: str, event: str, detail: str,
                    dedupe: str) -> int:
    """Queue one mail per emergency contact about ``event`` (caller's transaction);
    returns how many were queued (a repeated ``dedupe`` queues nothing)."""
    en, zh = EVENTS[event]
    now = clock.now()
    queued = 0
    for c in _rows(s, enterprise_id):
        body = (f"{c.name}: {en} ({uscc}). {detail}\n"
                f"{c.name}：{zh}（{uscc}）。{detail}\n"
                "If this was not expected, call the CA at once. 如非预期，请立即联系 CA。\n")
        if queue_notice(s.connection(), recipient=c.email,
                        subject=f"eseal: {en} / {zh}", body=body, kind=f"contact_{event}",
                        dedupe_key=f"contact:{event}:{dedupe}:{c.id}", now=now):
            queued += 1
    return queued


def notify_if_legal_rep(s: Session, *, enterprise_id: int | None, holder: str, event: str,
                        detail: str, dedupe: str) -> int:
    """Tell the contacts when the key in question is the legal representative's."""
    from eseal.store.models import Enterprise

    if enterprise_id is None:
        return 0
    ent = s.get(Enterprise, enterprise_id)
    if ent is None or ent.legal_rep != holder:
        return 0
    return notify_contacts(s, enterprise_id=ent.id, uscc=ent.uscc, event=event, detail=detail,
                           dedupe=dedupe)

"""Remote unblock (远程解锁) of a locked USB-Key, without a trip to the window.

1. *Request* — the holder's side, whose key is locked (so it cannot log in), asks for an
   unblock of its token label. At most one open request per key. If the key is the legal
   representative's, the emergency contacts are told the key is locked.
2. *Approve* — the legal representative approves an agent's request from their own logged-in
   USB-Key; a request for the legal representative's own key is approved by an officer after
   checking identity. Approval answers a one-time *authorisation* (shown once, stored only as
   its SHA-256, valid ``AUTHORISATION_MINUTES``).
3. *Redeem* — the holder's side presents the authorisation once: it gets the token's current
   SO PIN (kept encrypted by the CA, ``eseal.ra.so_pins``) and a fresh SO PIN to set. The
   authorisation is spent in the same transaction: presented again it is refused.
4. The holder's side logs in as SO, sets the new user PIN *on the token* (the user PIN never
   leaves the holder's machine, in any message) and changes the SO PIN to the fresh one.
5. *Complete* — the CA makes the fresh SO PIN the one it keeps. The SO PIN handed out in
   step 3 no longer opens the token, so neither it nor the authorisation can be used again.

Every step and every refusal is audited (``unblock.*``) and appears in the credential ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from eseal import clock
from eseal.ca.authority import Authority
from eseal.errors import Conflict, Forbidden, InvalidInput, NotFound
from eseal.ra.contacts import notify_if_legal_rep
from eseal.ra.so_pins import encrypt_so_pin, kept_so_pin
from eseal.store.models import TokenRecord
from eseal.store.models_enterprise import UnblockRequest
from eseal.token.pin import generate_so_pin
from eseal.token.usbkey import check_label

AUTHORISATION_MINUTES = 60
OPEN = ("requested", "approved", "redeemed")


def _hash(authorisation: str) -> str:
    return hashlib.sha256(authorisation.encode("utf-8")).hexdigest()


def _view(row: UnblockRequest) -> dict[str, Any]:
    return {"id": row.id, "label": row.token_label, "holder_role": row.holder_role,
            "status": row.status, "requested_at": row.requested_at.isoformat(),
            "approved_by": row.approved_by,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None}


def _not_found(request_id: int) -> NotFound:
    return NotFound("UNBLOCK_REQUEST_NOT_FOUND", f"no unblock request {request_id}",
                    f"找不到解锁申请 {request_id}", field="id")


def request_unblock(auth: Authority, label: str, *, actor: str) -> dict[str, Any]:
    """Record that the key ``label`` is locked and its holder asks for a remote unblock."""
    details: dict[str, Any] = {"label": label}

    def validate() -> TokenRecord:
        check_label(label)
        with auth.db.read() as s:
            record = s.get(TokenRecord, label)
            if record is None or record.enterprise_id is None or record.role is None:
                raise Conflict("TOKEN_NOT_ENROLLED",
                               f"the CA has no enrolled USB-Key labelled {label!r}",
                               f"CA 没有标签为 {label!r} 的已办理 USB-Key", field="label")
            if record.so_pin_encrypted is None:
                raise NotFound("SO_PIN_NOT_KEPT",
                               f"the CA keeps no SO PIN for {label!r}: unblock at the window",
                               f"CA 未保管 {label!r} 的管理员 PIN，请到窗口办理", field="label")
            busy = s.execute(select(UnblockRequest.id).where(
                UnblockRequest.token_label == label, UnblockRequest.status.in_(OPEN),
                )).first()
            if busy is not None:
                raise Conflict("UNBLOCK_ALREADY_REQUESTED",
                               f"an unblock of {label!r} is already under way (request "
                               f"{busy[0]})", f"{label!r} 已有进行中的解锁申请", field="label")
            return record

    record = auth.refusing(validate, actor=actor, action="unblock.request", target=label,
                           details=details)
    now = clock.now()
    with auth.change(actor=actor, action="unblock.request", target=label,
                     details=details) as s:
        row = UnblockRequest(token_label=label, enterprise_id=record.enterprise_id,
                             holder_role=record.role, status="requested", requested_at=now)
        s.add(row)
        s.flush()
        details["request_id"] = row.id
        details["holder"] = record.holder
        details["contacts_notified"] = notify_if_legal_rep(
            s, enterprise_id=record.enterprise_id, holder=record.holder or "",
            event="key_locked", detail=f"USB-Key {label}", dedupe=f"{label}:{row.id}") \
            if record.role == "legal_rep" else 0
        view = _view(row)
    return view


def approve_unblock(auth: Authority, request_id: int, *, actor: str, role: str,
                    enterprise_id: int | None) -> dict[str, Any]:
    """Approve (legal representative for agents, officer for the legal representative);
    answers the one-time authorisation, shown once."""
    details: dict[str, Any] = {"request_id": request_id}
    target = f"unblock:{request_id}"

    def validate() -> UnblockRequest:
        with auth.db.read() as s:
            row = s.get(UnblockRequest, request_id)
        if row is None or (role != "officer" and row.enterprise_id != enterprise_id):
            raise _not_found(request_id)
        wanted = "legal_rep" if row.holder_role == "agent" else "officer"
        if role != wanted:
            raise Forbidden("UNBLOCK_APPROVER_FORBIDDEN",
                            "an agent's key is unblocked on the legal representative's "
                            "approval; the legal representative's own key on an officer's",
                            "经办人的 USB-Key 由法定代表人批准解锁；法定代表人的由管理员核验后批准",
                            field="role")
        if row.status != "requested":
            raise Conflict("UNBLOCK_NOT_PENDING", f"request {request_id} is {row.status}",
                           f"解锁申请 {request_id} 状态为 {row.status}", field="id")
        return row

    row = auth.refusing(validate, actor=actor, action="unblock.approve", target=target,
                        details=details)
    authorisation = secrets.token_urlsafe(24)
    expires = clock.now() + timedelta(minutes=AUTHORISATION_MINUTES)
    details.update({"label": row.token_label, "expires_at": expires.isoformat()})
    with auth.change(actor=actor, action="unblock.approve", target=row.token_label,
                     details=details) as s:
        current = s.get_one(UnblockRequest, request_id)
        if current.status != "requested":
            raise Conflict("UNBLOCK_NOT_PENDING", f"request {request_id} is {current.status}",
                           f"解锁申请 {request_id} 状态为 {current.status}", field="id")
        current.status, current.approved_by, current.approved_at = "approved", actor, clock.now()
        current.authorisation_hash, current.expires_at = _hash(authorisation), expires
        view = _view(current)
    return {**view, "authorisation": authorisation}


def _check_authorisation(row: UnblockRequest | None, request_id: int, authorisation: str,
                         status: str) -> UnblockRequest:
    if row is None:
        raise _not_found(request_id)
    if not isinstance(authorisation, str) or row.authorisation_hash is None or \
            not hmac.compare_digest(row.authorisation_hash, _hash(authorisation)):
        raise Forbidden("UNBLOCK_AUTHORISATION_INVALID",
                        "the authorisation does not match this request",
                        "解锁授权与申请不符", field="authorisation")
    if row.status != status:
        raise Conflict("UNBLOCK_AUTHORISATION_USED",
                       f"this authorisation was already used (request {request_id} is "
                       f"{row.status})", "该解锁授权已使用", field="authorisation")
    if row.expires_at is not None and row.expires_at <= clock.now():
        raise Forbidden("UNBLOCK_AUTHORISATION_EXPIRED", "the authorisation has expired",
                        "解锁授权已过期", field="authorisation")
    return row


def redeem_unblock(auth: Authority, request_id: int, authorisation: str, *,
                   actor: str) -> dict[str, str]:
    """Spend the authorisation: the token's current SO PIN and the fresh one to set."""
    details: dict[str, Any] = {"request_id": request_id}

    def validate() -> UnblockRequest:
        with auth.db.read() as s:
            return _check_authorisation(s.get(UnblockRequest, request_id), request_id,
                                        authorisation, "approved")

    row = auth.refusing(validate, actor=actor, action="unblock.redeem",
                        target=f"unblock:{request_id}", details=details)
    label = row.token_label
    so_pin = kept_so_pin(auth, label, actor=actor, purpose="remote unblock")
    fresh = generate_so_pin()
    blob = encrypt_so_pin(auth, label, fresh)
    with auth.change(actor=actor, action="unblock.redeem", target=label,
                     details=details) as s:
        current = _check_authorisation(s.get(UnblockRequest, request_id, with_for_update=True),
                                       request_id, authorisation, "approved")
        current.status, current.redeemed_at = "redeemed", clock.now()
        current.next_so_pin_encrypted = blob
    return {"label": label, "so_pin": so_pin, "next_so_pin": fresh}


def complete_unblock(auth: Authority, request_id: int, authorisation: str, *,
                     actor: str) -> dict[str, Any]:
    """The holder's side set the new PIN and the fresh SO PIN: keep the fresh one."""
    details: dict[str, Any] = {"request_id": request_id}

    def validate() -> UnblockRequest:
        with auth.db.read() as s:
            return _check_authorisation(s.get(UnblockRequest, request_id), request_id,
                                        authorisation, "redeemed")

    row = auth.refusing(validate, actor=actor, action="unblock.complete",
                        target=f"unblock:{request_id}", details=details)
    with auth.change(actor=actor, action="unblock.complete", target=row.token_label,
                     details={**details, "so_pin": "rotated"}) as s:
        current = _check_authorisation(s.get(UnblockRequest, request_id, with_for_update=True),
                                       request_id, authorisation, "redeemed")
        record = s.get_one(TokenRecord, current.token_label)
        record.so_pin_encrypted = current.next_so_pin_encrypted
        current.next_so_pin_encrypted = None
        current.status, current.done_at = "done", clock.now()
        view = _view(current)
    return view


def pending_requests(auth: Authority, *, enterprise_id: int | None,
                     all_enterprises: bool = False) -> list[dict[str, Any]]:
    with auth.db.read() as s:
        q = select(UnblockRequest).where(UnblockRequest.status == "requested")
        if not all_enterprises:
            q = q.where(UnblockRequest.enterprise_id == enterprise_id)
        return [_view(r) for r in s.execute(q.order_by(UnblockRequest.id)).scalars()]


def check_request_id(value: Any) -> int:
    if not isinstance(value, int) or value < 1:
        raise InvalidInput("UNBLOCK_REQUEST_INVALID", "a request id is a positive integer",
                           "解锁申请编号须为正整数", field="id")
    return value

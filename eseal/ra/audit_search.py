"""Audit search for the console: an enterprise's events, an actor, an action, a time range.

Events do not carry an enterprise column; they name what they acted on in ``target``: the
enterprise's credit code (registration, rename, issuance), one of its certificates (freeze,
renewal, revocation), one of its USB-Keys (enrolment, unblock) or one of its accounts
(``account:N``). So "the events of enterprise X" is the events aimed at any of those — the
same rule the credential ledger (:mod:`eseal.ra.ledger`) reads by, here with refusals and
every action included. Targets are looked up by an index (migration 0009), in bounded
``IN`` lists.

Pages are by id (``after_id`` oldest first, ``before_id`` newest first), at most
``MAX_LIMIT`` events. An exact action uses the ``(action, id)`` index; an action prefix
(``cert.``) and an actor substring are exact tests (``substr``/``instr``/``strpos``: no
wildcards, no case folding) applied while walking ids in order, so a rare match may read
much of the log: the time range and the enterprise narrow that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, func, or_, select
from sqlalchemy.orm import Session

from eseal import clock
from eseal.ca.authority import Authority
from eseal.errors import EsealError, InvalidInput, NotFound
from eseal.pki import identity
from eseal.store.models import AuditEvent, Certificate, TokenRecord
from eseal.store.models_login import accounts

MAX_LIMIT = 1000
MAX_ID = 2**31 - 1
_ACTION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._")
_CHUNK = 500


@dataclass(frozen=True)
class AuditQuery:
    enterprise: str | None = None
    actor: str | None = None
    action: str | None = None
    action_prefix: bool = False
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_id: int = 0
    before_id: int | None = None
    limit: int = 100


def _time(text: str | None, field: str) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        return clock.parse_time(text, field=field) if "T" in text or " " in text \
            else clock.parse_time(text + "T00:00:00+00:00", field=field)
    except EsealError:
        raise InvalidInput("AUDIT_TIME_INVALID", f"{field}: not an ISO 8601 time: {text!r}",
                           f"{field} 不是 ISO 8601 时间：{text!r}", field=field) from None


def audit_query(*, enterprise: str | None = None, actor: str | None = None,
                action: str | None = None, outcome: str | None = None,
                since: str | None = None, until: str | None = None, after_id: int = 0,
                before_id: int | None = None, limit: int = 100) -> AuditQuery:
    """Check every parameter; a bad one is a 422 naming it."""
    code = None
    if enterprise:
        try:
            code = identity.validate_uscc(enterprise)
        except InvalidInput as err:
            err.field = "enterprise"  # the search's parameter, not the registry's "uscc"
            raise
    prefix = False
    if action:
        prefix = action.endswith((".", "*"))
        action = action.rstrip("*")
        if not action or len(action) > 64 or any(ch not in _ACTION_CHARS for ch in action):
            raise InvalidInput("AUDIT_ACTION_INVALID",
                               f"action: {action!r} is not an action name or prefix "
                               "(such as cert.freeze, or cert. for every cert.* action)",
                               f"action：{action!r} 不是事件名称或前缀（如 cert.freeze 或 cert.）",
                               field="action")
    if actor is not None and len(actor) > 200:
        raise InvalidInput("SEARCH_TEXT_TOO_LONG", "actor: at most 200 characters",
                           "actor 最多 200 个字符", field="actor")
    if outcome not in (None, "", "ok", "refused"):
        raise InvalidInput("AUDIT_OUTCOME_UNKNOWN", f"outcome: {outcome!r} is not ok or refused",
                           f"outcome：{outcome!r} 不是 ok 或 refused", field="outcome")
    start, end = _time(since, "from"), _time(until, "to")
    if start is not None and end is not None and start > end:
        raise InvalidInput("AUDIT_TIME_INVALID", "to: the end is before the start ('from')",
                           "to：结束时间早于开始时间", field="to")
    if before_id is not None and after_id:
        raise InvalidInput("VALUE_OUT_OF_RANGE", "before_id: give after_id or before_id, "
                           "not both", "after_id 与 before_id 不能同时给出", field="before_id")
    for name, value in (("after_id", after_id), ("before_id", before_id)):
        if value is not None and not 0 <= value <= MAX_ID:
            raise InvalidInput("VALUE_OUT_OF_RANGE", f"{name}: must be 0..{MAX_ID}",
                               f"{name} 须在 0 至 {MAX_ID} 之间", field=name)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("VALUE_OUT_OF_RANGE", f"limit: must be 1..{MAX_LIMIT}",
                           f"limit 须在 1 至 {MAX_LIMIT} 之间", field="limit")
    return AuditQuery(enterprise=code, actor=actor or None, action=action or None,
                      action_prefix=prefix, outcome=outcome or None, since=start, until=end,
                      after_id=after_id, before_id=before_id, limit=limit)


def enterprise_targets(s: Session, auth: Authority, uscc: str) -> list[str]:
    """What an enterprise's events name as their target: its code, certificates, USB-Keys
    and accounts (``ENTERPRISE_NOT_REGISTERED`` 404 naming ``enterprise`` for an unknown
    code)."""
    try:
        ent = auth.enterprise_row(s, uscc)
    except NotFound as err:
        err.field = "enterprise"  # the search's parameter
        raise
    serials = s.execute(select(Certificate.serial)
                        .where(Certificate.enterprise_id == ent.id)).scalars()
    labels = s.execute(select(TokenRecord.label)
                       .where(TokenRecord.enterprise_id == ent.id)).scalars()
    people = s.execute(select(accounts.c.id).where(accounts.c.enterprise_id == ent.id)).scalars()
    return [uscc, *serials, *labels, *(f"account:{i}" for i in people)]


def _where(s: Session, auth: Authority, q: AuditQuery) -> list[ColumnElement[bool]]:
    e = AuditEvent
    where: list[ColumnElement[bool]] = []
    if q.before_id is not None:
        where.append(e.id < q.before_id)
    elif q.after_id:
        where.append(e.id > q.after_id)
    if q.action is not None:
        where.append(func.substr(e.action, 1, len(q.action)) == q.action if q.action_prefix
                     else e.action == q.action)
    if q.actor is not None:
        found = func.strpos if s.get_bind().dialect.name == "postgresql" else func.instr
        where.append(found(e.actor, bindparam(None, q.actor, type_=String)) > 0)
    if q.outcome is not None:
        where.append(e.outcome == q.outcome)
    if q.since is not None:
        where.append(e.at >= q.since)
    if q.until is not None:
        where.append(e.at <= q.until)
    if q.enterprise is not None:
        targets = enterprise_targets(s, auth, q.enterprise)
        where.append(or_(*(e.target.in_(targets[i:i + _CHUNK])
                           for i in range(0, len(targets), _CHUNK))))
    return where


def event_dict(r: AuditEvent) -> dict[str, Any]:
    return {"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "action": r.action,
            "outcome": r.outcome, "target": r.target, "details": r.details,
            "prev_hash": r.prev_hash, "hash": r.hash}


def search_events(auth: Authority, q: AuditQuery) -> list[dict[str, Any]]:
    """One page of events: oldest first after ``after_id``, newest first below ``before_id``."""
    with auth.db.read() as s:
        order = AuditEvent.id.desc() if q.before_id is not None else AuditEvent.id.asc()
        rows = s.execute(select(AuditEvent).where(*_where(s, auth, q)).order_by(order)
                         .limit(q.limit)).scalars()
        return [event_dict(r) for r in rows]

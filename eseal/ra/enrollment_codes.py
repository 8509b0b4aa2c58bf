"""Enrollment codes: single use, stored hashed, redeemed from the holder's own machine.

An officer, or an enterprise's legal representative for its agents, asks for one; the
holder redeems it with ``eseal token enroll --server URL --code C`` (keys are made on their
token, only CSRs travel). Redeeming vets the CSRs against the enterprise and issues the
certificates the role gets (:data:`eseal.auth.accounts.PROFILES_BY_ROLE`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    insert,
    select,
    update,
)

from eseal import clock
from eseal.auth.accounts import (
    ENROLLMENT_CODE_HOURS,
    PROFILES_BY_ROLE,
    ROLE_NAMES_ZH,
    STAFF_ROLES,
    check_role,
    ensure_account,
)
from eseal.ca.issuance import IssuanceRequest, check_csr, enterprise_request
from eseal.errors import Conflict, Forbidden, InvalidInput, NotFound
from eseal.pki import identity
from eseal.ra.staff import staff_request
from eseal.store.models import EnrollmentCode, Enterprise, TokenRecord

if TYPE_CHECKING:
    from eseal.ca.authority import Authority, Issued


_CODES = EnrollmentCode.__table__
_ENTERPRISES = Enterprise.__table__


# --- enrollment codes -------------------------------------------------------------------------
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L


def _code_hash(code: str) -> str:
    return hashlib.sha256(b"eseal-enroll-code-v1\x00" + normalize_code(code).encode()).hexdigest()


def normalize_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


@dataclass(frozen=True)
class NewCode:
    code: str  # shown once, stored only hashed
    role: str
    holder: str
    uscc: str | None
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "role": self.role, "holder": self.holder,
                "enterprise": self.uscc, "expires_at": self.expires_at.isoformat()}


def create_enrollment_code(auth: Authority, *, role: str, holder: str, uscc: str | None,
                           actor: str, by_role: str = "officer",
                           by_enterprise_id: int | None = None,
                           hours: int = ENROLLMENT_CODE_HOURS) -> NewCode:
    """A single-use code for enrolling one holder's USB-Key from their own machine.

    Officers ask for any role; a legal representative (``by_role="legal_rep"``) only for
    agents of their own enterprise. A legal representative's code must name the registered
    legal representative exactly; staff codes (officer, auditor) name no enterprise.
    """
    details = {"role": role, "holder": holder, "uscc": uscc}

    def validate() -> tuple[str, str, Any]:
        the_role = check_role(role)
        name = identity.validate_person_name(holder, "holder")
        if by_role == "legal_rep" and the_role != "agent":
            raise Forbidden("ROLE_FORBIDDEN",
                            "a legal representative asks for enrollment codes for agents only",
                            "法定代表人只能为经办人申请开通码", field="role")
        if the_role in STAFF_ROLES:
            if uscc:
                raise InvalidInput("STAFF_HAS_NO_ENTERPRISE",
                                   f"a {the_role} account belongs to the CA, not to an enterprise",
                                   f"{ROLE_NAMES_ZH[the_role]}账户属于 CA，不属于企业",
                                   field="uscc")
            return the_role, name, None
        if not uscc:
            raise InvalidInput("USCC_REQUIRED", f"a {the_role} code names the enterprise",
                               "须指定企业统一社会信用代码", field="uscc")
        ent = auth.enterprise(identity.validate_uscc(uscc))
        if by_enterprise_id is not None and ent.id != by_enterprise_id:
            raise NotFound("ENTERPRISE_NOT_FOUND", f"no enterprise {uscc} for you",
                           f"找不到企业 {uscc}", field="uscc")
        auth.check_enterprise_active(ent)
        identity.check_holder(the_role, name, ent.legal_rep)
        return the_role, name, ent

    the_role, name, ent = auth.refusing(validate, actor=actor, action="enroll_code.create",
                                        target=uscc, details=details)
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))  # ~99 bits
    code = "-".join(raw[i:i + 5] for i in range(0, 20, 5))
    expires = clock.now() + timedelta(hours=hours)
    with auth.change(actor=actor, action="enroll_code.create",
                     target=ent.uscc if ent else f"staff:{the_role}",
                     details={**details, "expires_at": expires.isoformat()}) as s:
        s.connection().execute(insert(_CODES).values(
            code_hash=_code_hash(code), enterprise_id=ent.id if ent else None, role=the_role,
            holder=name, expires_at=expires, used_at=None, created_by=actor))
    return NewCode(code=code, role=the_role, holder=name, uscc=ent.uscc if ent else None,
                   expires_at=expires)


@dataclass(frozen=True)
class CodeInfo:
    """What a valid code is for: enough for the holder's machine to build its CSRs."""

    role: str
    holder: str
    uscc: str | None
    enterprise_name: str | None
    enterprise_id: int | None
    expires_at: datetime
    profiles: dict[str, str]  # key purpose -> certificate profile

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "holder": self.holder, "enterprise": self.uscc,
                "enterprise_name": self.enterprise_name,
                "expires_at": self.expires_at.isoformat(), "keys": self.profiles}


_CODE_REFUSED = ("ENROLL_CODE_INVALID", "this enrollment code is unknown, used or expired",
                 "开通码无效、已使用或已过期")


def _code_info(conn: Connection, code: str, now: datetime) -> CodeInfo:
    row = conn.execute(
        select(_CODES, _ENTERPRISES.c.uscc, _ENTERPRISES.c.name.label("ent_name"))
        .select_from(_CODES.outerjoin(_ENTERPRISES, _ENTERPRISES.c.id == _CODES.c.enterprise_id))
        .where(_CODES.c.code_hash == _code_hash(code))).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise NotFound(*_CODE_REFUSED, field="code")
    return CodeInfo(role=row.role, holder=row.holder, uscc=row.uscc,
                    enterprise_name=row.ent_name, enterprise_id=row.enterprise_id,
                    expires_at=row.expires_at, profiles=dict(PROFILES_BY_ROLE[row.role]))


def describe_code(auth: Authority, code: str) -> CodeInfo:
    """What an unused, unexpired code enrolls (the code is the credential: no session)."""
    if not isinstance(code, str) or not 8 <= len(normalize_code(code)) <= 64:
        raise NotFound(*_CODE_REFUSED, field="code")
    with auth.db.engine.connect() as conn:
        return _code_info(conn, code, clock.now())


@dataclass(frozen=True)
class Redeemed:
    label: str
    role: str
    holder: str
    uscc: str | None
    account_id: int
    issued: dict[str, Issued]
    chain: list[bytes]  # PEM, issuing CA first

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "role": self.role, "holder": self.holder,
                "enterprise": self.uscc, "account_id": self.account_id,
                "certificates": {p: {"serial": i.serial, "pem": i.pem.decode("ascii"),
                                     "not_after": i.certificate.not_valid_after_utc.isoformat()}
                                 for p, i in self.issued.items()},
                "chain": [pem.decode("ascii") for pem in self.chain]}


def redeem_code(auth: Authority, *, code: str, label: str, csrs: dict[str, bytes],
                actor: str = "holder:enroll") -> Redeemed:
    """Certify the keys a holder generated on their token, once per code.

    Everything that can be checked is checked before the code is spent; the code is then
    taken with one atomic UPDATE (two redemptions racing: one wins). A failure after that
    gives the code back and withdraws what was issued.
    """
    from eseal.pki.csr import load_csr
    from eseal.token.usbkey import check_label

    details: dict[str, Any] = {"label": label}
    now = clock.now()

    def validate() -> tuple[CodeInfo, dict[str, IssuanceRequest]]:
        info = describe_code(auth, code)
        details.update({"role": info.role, "holder": info.holder, "uscc": info.uscc})
        check_label(label)
        wanted = set(info.profiles)
        given = set(csrs)
        if given != wanted:
            raise InvalidInput("CSR_SET_MISMATCH",
                               f"a {info.role} enrolls exactly these keys: "
                               f"{', '.join(sorted(wanted))} (got {', '.join(sorted(given))})",
                               f"{ROLE_NAMES_ZH[info.role]}须提交以下密钥的证书请求："
                               f"{'、'.join(sorted(wanted))}", field="csrs")
        # Each CSR is vetted here, once: the requests below are what gets signed.
        loaded = {}
        for purpose, pem in csrs.items():
            if info.uscc is not None:
                loaded[purpose] = check_csr(pem, profile=info.profiles[purpose],
                                            holder=info.holder)[0]
            else:  # staff: the officer profile; staff_request checks the key policy
                loaded[purpose] = load_csr(pem)
        requests: dict[str, IssuanceRequest] = {}
        with auth.db.read() as s:
            record = s.get(TokenRecord, label)
            if record is not None and record.role is not None:
                raise Conflict("TOKEN_LABEL_IN_USE",
                               f"the CA already has an enrolled token labelled {label!r}; "
                               "give the new USB-Key another label",
                               f"CA 已有标签为 {label!r} 的 USB-Key，请更换标签", field="label")
            ent = auth.enterprise_row(s, info.uscc) if info.uscc is not None else None
            for purpose, csr in loaded.items():
                profile = info.profiles[purpose]
                requests[purpose] = (
                    enterprise_request(csr, enterprise=ent, profile=profile, holder=info.holder,
                                       actor=actor, token_label=label)
                    if ent is not None else
                    staff_request(csr.public_key(), holder=info.holder, label=label,
                                  actor=actor))
                auth.check_key_free(s, requests[purpose].spki_sha256, profile,
                                    renewing=False)
        return info, requests

    info, requests = auth.refusing(validate, actor=actor, action="enroll_code.redeem",
                                   target=label, details=details)
    code_hash = _code_hash(code)
    with auth.change(actor=actor, action="enroll_code.redeem", target=label,
                     details=details) as s:
        taken = s.connection().execute(
            update(_CODES).where(_CODES.c.code_hash == code_hash, _CODES.c.used_at.is_(None),
                                 _CODES.c.expires_at > now).values(used_at=now))
        if taken.rowcount != 1:
            raise NotFound(*_CODE_REFUSED, field="code")
    issued: dict[str, Issued] = {}
    try:
        for purpose, request in requests.items():
            facts = ({"uscc": info.uscc} if info.uscc is not None else {"label": label})
            issued[purpose] = auth.certify(request, details={
                **facts, "profile": request.profile, "holder": request.holder})
        with auth.change(actor=actor, action="token.enroll", target=label,
                         details={**details, "serials": {p: i.serial
                                                         for p, i in issued.items()}}) as s:
            record = s.get(TokenRecord, label)
            if record is None:
                record = TokenRecord(label=label, created_at=now)
                s.add(record)
            elif record.role is not None:
                raise Conflict("TOKEN_LABEL_IN_USE", f"token {label!r} is already enrolled",
                               f"USB-Key {label!r} 已办理过证书", field="label")
            record.enterprise_id = info.enterprise_id
            record.role = info.role
            record.holder = info.holder
            s.flush()
            account_id = ensure_account(s.connection(), role=info.role, name=info.holder,
                                        enterprise_id=info.enterprise_id, now=now)
    except BaseException as exc:
        with auth.db.write() as s:
            s.connection().execute(update(_CODES).where(_CODES.c.code_hash == code_hash)
                                   .values(used_at=None))
        from eseal.ra.enrollment import withdraw

        withdraw(auth, issued, actor=actor, label=label, cause=exc)  # type: ignore[arg-type]
        raise
    from cryptography.hazmat.primitives.serialization import Encoding

    return Redeemed(label=label, role=info.role, holder=info.holder, uscc=info.uscc,
                    account_id=account_id, issued=issued,
                    chain=[c.public_bytes(Encoding.PEM) for c in auth.chain()])

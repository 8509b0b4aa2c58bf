"""Certificate lifecycle after issuance: renewal, holder re-key, freeze, unfreeze, revocation.

Renewal (年检/续期). A certificate may be renewed inside its *window*: from
``renewal_window_days`` (90) before its notAfter until ``renewal_grace_days`` (90) after it,
both ends included. Renewed before it expires, the new certificate carries the remaining
time over (new notAfter = old notAfter + 1 calendar year; 29 February becomes 28 February);
renewed in the grace period, it runs one year from the renewal. Either way the new notAfter
is cut at the issuing CA's notAfter (``RenewalTerms.capped`` says so). An officer renews
the *same key* (``renew_one``/``renew_many``): the key may be certified that way for at most
``max_key_age_years`` (3) from its first certification, counted to the new notAfter; beyond
that the holder must re-key. A renewed certificate stays valid until its own notAfter and is
marked ``replaced_by`` its successor, which is what makes a rerun renew nothing twice.

Re-key (换密钥). The holder generates a new key on the USB-Key, signs a CSR with it, and
signs ``rekey_digest(csr_der)`` — SHA-256 over ``b"eseal-rekey-v1\\x00" ‖ CSR DER`` — with
the *old* key as proof that the holder of the current certificate asks for this key
(``rekey``). The new certificate is issued at once but the old one stays valid until the
client reports that it installed the new one on the token (``confirm_rekey``); only then is
every certificate of the old key revoked with reason ``superseded`` (and marked
``replaced_by``), so the old key stops working for login everywhere, at once.

Freeze, unfreeze, revoke (冻结/解冻/吊销). A freeze puts the certificate on hold
(``certificateHold`` on the CRL and in OCSP) and opens a freeze window; unfreezing closes
the window and the entry simply leaves the next full CRL (``removeFromCRL`` belongs only in
delta CRLs). A frozen certificate may be revoked; it then keeps the hold's time as its
revocation time, so a seal made while it was frozen stays invalid. Reasons are the RFC 5280
names (``eseal.ca.crl.REASONS``). Every status change bumps ``status_version`` (the OCSP
cache key) and is followed by fresh CRLs for both CAs (``eseal.ca.status.publish_crls``).

Every change and every refusal is audited (``Authority.change`` / ``Authority.refusing``);
a refused request changes nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from eseal import clock
from eseal.ca import profiles
from eseal.ca.authority import ENTERPRISE_PROFILES, Authority, Issued, spki_sha256
from eseal.ca.crl import reason_code
from eseal.ca.status import HOLD, publish_crls
from eseal.errors import Conflict, EsealError, InvalidInput, NotFound
from eseal.pki import identity
from eseal.pki.csr import load_csr
from eseal.pki.dates import add_years
from eseal.pki.serials import normalize_serial
from eseal.settings import Settings
from eseal.store.models import Certificate, Enterprise, FreezeWindow

REKEY_LABEL = b"eseal-rekey-v1\x00"

_CERTS = Certificate.__table__
_ENTERPRISES = Enterprise.__table__
# Prepared once: batch renewal runs these thousands of times (ORM ``get`` cost 40 % of it).
_CERT_BY_SERIAL = select(_CERTS).where(_CERTS.c.serial == bindparam("serial"))
_ENTERPRISE_BY_ID = select(_ENTERPRISES).where(_ENTERPRISES.c.id == bindparam("id"))
_MARK_RENEWED = (update(_CERTS).where(_CERTS.c.serial == bindparam("old"),
                                      _CERTS.c.replaced_by.is_(None))
                 .values(replaced_by=bindparam("new")))


def _now() -> datetime:
    """Status times are whole seconds, as the CRL and OCSP encode them."""
    return clock.now().replace(microsecond=0)


def _day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


# --- checks shared by every operation -------------------------------------------------------
def _load(s: Session, serial: str) -> Certificate:
    """The certificate for changing it (row-locked on PostgreSQL; SQLite's write
    transaction already holds the database lock)."""
    row = s.get(Certificate, serial, with_for_update=True)
    if row is None:
        raise NotFound("CERT_NOT_FOUND", f"no certificate with serial {serial}",
                       f"找不到序列号为 {serial} 的证书", field="serial")
    return row


def _read(s: Session, serial: str) -> Any:
    """The certificate as a plain row (cheap; for checks, not for changing it)."""
    row = s.connection().execute(_CERT_BY_SERIAL, {"serial": serial}).first()
    if row is None:
        raise NotFound("CERT_NOT_FOUND", f"no certificate with serial {serial}",
                       f"找不到序列号为 {serial} 的证书", field="serial")
    return row


def _enterprise_of(s: Session, row: Any) -> Any:
    return s.connection().execute(_ENTERPRISE_BY_ID, {"id": row.enterprise_id}).first()


def _check_enterprise_cert(row: Any) -> None:
    if row.enterprise_id is None or row.profile not in ENTERPRISE_PROFILES:
        raise InvalidInput("CERT_NOT_RENEWABLE",
                           f"certificate {row.serial} is a {row.profile} certificate; only "
                           "enterprise login and seal certificates are renewed",
                           f"证书 {row.serial} 为 {row.profile} 证书，仅企业登录与签章证书可续期",
                           field="serial")


def _check_live(row: Any, doing_en: str, doing_zh: str) -> None:
    if row.status == "revoked":
        raise Conflict("CERT_REVOKED",
                       f"certificate {row.serial} is revoked ({row.revocation_reason}); it "
                       f"cannot be {doing_en}",
                       f"证书 {row.serial} 已吊销（{row.revocation_reason}），不能{doing_zh}",
                       field="serial")
    if row.status == "hold":
        raise Conflict("CERT_FROZEN",
                       f"certificate {row.serial} is frozen; unfreeze it before it can be "
                       f"{doing_en}",
                       f"证书 {row.serial} 已冻结，解冻后才能{doing_zh}", field="serial")


def _check_enterprise(ent: Any, row: Any) -> Any:
    if ent is None or ent.status != "active":
        uscc = ent.uscc if ent is not None else "?"
        raise Conflict("ENTERPRISE_DEREGISTERED",
                       f"enterprise {uscc} of certificate {row.serial} is deregistered: "
                       "nothing new is issued",
                       f"证书 {row.serial} 所属企业 {uscc} 已注销，不再签发证书", field="serial")
    return ent


# --- renewal arithmetic ---------------------------------------------------------------------
@dataclass(frozen=True)
class RenewalTerms:
    """When the renewed certificate runs, and why."""

    not_before: datetime
    not_after: datetime
    carried_over: bool  # renewed before expiry: old notAfter + 1 year
    capped: bool  # cut at the issuing CA's notAfter


def renewal_window(not_after: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """(opens, closes) of a certificate's renewal window, both included."""
    return (not_after - timedelta(days=settings.renewal_window_days),
            not_after + timedelta(days=settings.renewal_grace_days))


def renewal_terms(*, not_after: datetime, now: datetime, settings: Settings,
                  issuer_not_after: datetime, key_certified_at: datetime | None = None,
                  serial: str = "") -> RenewalTerms:
    """The validity of a renewal made at ``now``, or the refusal (``Conflict``).

    ``key_certified_at`` (same-key renewal only) enforces the key-age limit: the new
    notAfter may be at most ``max_key_age_years`` after the key's first certification.
    """
    opens, closes = renewal_window(not_after, settings)
    what = f"certificate {serial}" if serial else "the certificate"
    if now < opens:
        raise Conflict("RENEWAL_WINDOW_NOT_OPEN",
                       f"{what} can be renewed from {_day(opens)} "
                       f"({settings.renewal_window_days} days before it expires)",
                       f"证书 {serial} 自 {_day(opens)} 起方可续期"
                       f"（到期前 {settings.renewal_window_days} 天）",
                       field="serial", details={"opens": opens.isoformat()})
    if now > closes:
        raise Conflict("RENEWAL_GRACE_EXPIRED",
                       f"{what} expired on {_day(not_after)} and the "
                       f"{settings.renewal_grace_days}-day grace period ended on "
                       f"{_day(closes)}: apply for a new certificate",
                       f"证书 {serial} 已于 {_day(not_after)} 到期，宽限期已于 {_day(closes)} "
                       "结束，请重新申请证书", field="serial",
                       details={"closed": closes.isoformat()})
    start = now.replace(microsecond=0)
    carried = now <= not_after
    end = add_years(not_after, 1) if carried else add_years(start, 1)
    if key_certified_at is not None:
        limit = add_years(key_certified_at.replace(microsecond=0), settings.max_key_age_years)
        if end > limit:
            raise Conflict("REKEY_REQUIRED",
                           f"the key of {what} was first certified on "
                           f"{_day(key_certified_at)}; a key is renewed without re-key for at "
                           f"most {settings.max_key_age_years} years (until {_day(limit)}): "
                           "generate a new key (eseal token rekey)",
                           f"证书 {serial} 的密钥已使用满 {settings.max_key_age_years} 年"
                           f"（至 {_day(limit)}），请更换密钥（eseal token rekey）",
                           field="serial", details={"key_limit": limit.isoformat()})
    capped = end > issuer_not_after
    if capped:
        end = issuer_not_after
    if end <= start:
        raise Conflict("ISSUER_EXPIRING",
                       "the issuing CA's certificate expires before a renewal could start",
                       "签发 CA 证书即将到期，无法续期", field="serial")
    return RenewalTerms(not_before=start, not_after=end, carried_over=carried, capped=capped)


# --- officer renewal (same key) -------------------------------------------------------------
@dataclass(frozen=True)
class Renewal:
    old_serial: str
    issued: Issued
    terms: RenewalTerms

    @property
    def serial(self) -> str:
        return self.issued.serial

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serial": self.old_serial, "new_serial": self.issued.serial,
            "not_after": self.terms.not_after.isoformat(),
            "carried_over": self.terms.carried_over, "capped": self.terms.capped}
        if self.terms.capped:
            out["note"] = "notAfter cut at the issuing CA's notAfter"
        return out


@dataclass(frozen=True)
class Skipped:
    serial: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"serial": self.serial, "reason": self.reason}


class _LostRace(Exception):
    """Another process renewed the certificate between our check and our write."""

    def __init__(self, skipped: Skipped) -> None:
        super().__init__(skipped.reason)
        self.skipped = skipped


def renew_one(auth: Authority, serial: str, *, actor: str) -> Renewal | Skipped:
    """Renew one certificate with its own key; ``Skipped`` if it was already renewed.

    Raises (audited, nothing changed): ``SERIAL_INVALID``, ``CERT_NOT_FOUND``,
    ``CERT_NOT_RENEWABLE``, ``CERT_REVOKED``, ``CERT_FROZEN``, ``ENTERPRISE_DEREGISTERED``,
    ``RENEWAL_WINDOW_NOT_OPEN``, ``RENEWAL_GRACE_EXPIRED``, ``REKEY_REQUIRED``.
    """
    details: dict[str, Any] = {"serial": serial}

    def vet() -> tuple[Any, Any, RenewalTerms | None]:
        canonical = normalize_serial(serial)
        details["serial"] = canonical
        with auth.db.read() as s:
            row = _read(s, canonical)
            _check_enterprise_cert(row)
            if row.status == "revoked" or not row.replaced_by:
                _check_live(row, "renewed", "续期")
            if row.replaced_by:
                return row, None, None
            ent = _check_enterprise(_enterprise_of(s, row), row)
            terms = renewal_terms(not_after=row.not_after, now=clock.now(),
                                  settings=auth.settings,
                                  issuer_not_after=auth.certificate("issuing").not_valid_after_utc,
                                  key_certified_at=row.key_certified_at, serial=canonical)
        return row, ent, terms

    row, ent, terms = auth.refusing(vet, actor=actor, action="cert.renew", target=serial,
                                    details=details)
    if terms is None or ent is None:
        return Skipped(row.serial, f"already renewed as {row.replaced_by}")
    public_key = x509.load_der_x509_certificate(row.der).public_key()
    draft = auth.draft(enterprise=ent, public_key=public_key, profile=row.profile,
                       holder=row.holder, token_label=row.token_label,
                       not_after=terms.not_after, renewed_from=row.serial,
                       key_certified_at=row.key_certified_at)
    details.update({"new_serial": draft.serial, "not_after": terms.not_after.isoformat(),
                    "carried_over": terms.carried_over, "capped": terms.capped})
    try:
        with auth.change(actor=actor, action="cert.renew", target=row.serial,
                         details=details) as s:
            current = _read(s, row.serial)
            if current.replaced_by:
                raise _LostRace(Skipped(row.serial, f"already renewed as {current.replaced_by}"))
            _check_live(current, "renewed", "续期")
            _check_enterprise(_enterprise_of(s, current), current)
            auth.store(s, draft, renewing=True)
            marked = s.connection().execute(_MARK_RENEWED, {"old": row.serial,
                                                            "new": draft.serial})
            if marked.rowcount != 1:  # renewed by a concurrent transaction: drop ours
                raise _LostRace(Skipped(row.serial, "already renewed"))
    except _LostRace as lost:
        return lost.skipped
    return Renewal(old_serial=row.serial, issued=draft.issued, terms=terms)


@dataclass
class RenewalSummary:
    """What a batch did, as ``eseal cert renew`` prints it."""

    renewed: list[Renewal] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    refused: list[tuple[str, EsealError]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "renewed": [r.to_dict() for r in self.renewed],
            "skipped": [s.to_dict() for s in self.skipped],
            "refused": [{"serial": serial, "code": err.code, "message": err.message,
                         "message_zh": err.message_zh} for serial, err in self.refused],
        }


def renew_many(auth: Authority, serials: Iterable[str], *, actor: str,
               progress: Callable[[], None] | None = None) -> RenewalSummary:
    """Renew each serial once (duplicates ignored); refusals are collected, not raised."""
    summary = RenewalSummary()
    seen: set[str] = set()
    for serial in serials:
        try:
            key = normalize_serial(serial)
        except EsealError:
            key = serial
        if key in seen:
            if progress is not None:
                progress()
            continue
        seen.add(key)
        try:
            outcome = renew_one(auth, serial, actor=actor)
        except EsealError as err:
            summary.refused.append((key, err))
        else:
            if isinstance(outcome, Renewal):
                summary.renewed.append(outcome)
            else:
                summary.skipped.append(outcome)
        if progress is not None:
            progress()
    return summary


def expiring(auth: Authority, within_days: int) -> list[str]:
    """Serials of current enterprise certificates whose notAfter is at most ``within_days``
    away or passed less than the grace period ago (revoked and renewed ones left out;
    frozen ones included, so the officer sees them refused)."""
    if within_days < 0:
        raise InvalidInput("DAYS_INVALID", "--expiring-within needs a number of days >= 0",
                           "--expiring-within 须为不小于 0 的天数", field="expiring_within")
    now = clock.now()
    c = Certificate
    with auth.db.read() as s:
        return list(s.execute(
            select(c.serial).where(
                c.issuer_role == "issuing", c.enterprise_id.is_not(None),
                c.profile.in_(ENTERPRISE_PROFILES), c.status != "revoked",
                c.replaced_by.is_(None),
                c.not_after <= now + timedelta(days=within_days),
                c.not_after >= now - timedelta(days=auth.settings.renewal_grace_days))
            .order_by(c.not_after, c.serial)).scalars())


# --- re-key (the holder's new key) ----------------------------------------------------------
def rekey_message(csr_der: bytes) -> bytes:
    """The bytes whose SHA-256 the *old* key signs to ask for a certificate of the CSR's key:
    a domain-separation label (so no login challenge or seal can be replayed as a re-key
    proof, nor the reverse) followed by the CSR exactly as DER."""
    return REKEY_LABEL + csr_der


def rekey_digest(csr_der: bytes) -> bytes:
    """SHA-256 of ``rekey_message``: what the client's old key signs, and what is checked."""
    return hashlib.sha256(rekey_message(csr_der)).digest()


def csr_der(csr_pem_or_der: bytes) -> bytes:
    """The CSR as DER (the re-key proof covers DER, whatever the transport carried)."""
    return load_csr(csr_pem_or_der).public_bytes(serialization.Encoding.DER)


def verify_rekey_proof(old_certificate: x509.Certificate, csr_der_bytes: bytes,
                       proof: bytes) -> None:
    """Check that the old certificate's key signed ``rekey_digest(csr_der_bytes)``
    (ECDSA, or RSA PKCS#1 v1.5, over the SHA-256 digest)."""
    digest = rekey_digest(csr_der_bytes)
    public = old_certificate.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(proof, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(proof, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            raise InvalidSignature
    except (InvalidSignature, ValueError, TypeError):
        raise InvalidInput("REKEY_PROOF_INVALID",
                           "the re-key proof is not a signature by the current certificate's "
                           "key over this CSR",
                           "换密钥证明无效：不是当前证书密钥对该证书请求的签名",
                           field="proof") from None


def rekey(auth: Authority, old_serial: str, csr_pem: bytes, proof: bytes,
          actor: str) -> Issued:
    """Certify the holder's new key; the old certificate stays valid until
    ``confirm_rekey``. Refusals as ``renew_one`` (no key-age limit: the key is new) plus
    ``CSR_*``, ``KEY_*``, ``REKEY_PROOF_INVALID``, ``REKEY_SAME_KEY``, ``CERT_SUPERSEDED``.
    """
    details: dict[str, Any] = {"serial": old_serial}

    def vet() -> tuple[Any, Any, Any, RenewalTerms]:
        canonical = normalize_serial(old_serial)
        details["serial"] = canonical
        csr = load_csr(csr_pem)
        new_public = csr.public_key()
        profiles.check_key_policy(new_public)
        new_spki = spki_sha256(new_public)
        details["new_key"] = new_spki
        with auth.db.read() as s:
            row = _read(s, canonical)
            _check_enterprise_cert(row)
            _check_live(row, "re-keyed", "更换密钥")
            if row.replaced_by:
                raise Conflict("CERT_SUPERSEDED",
                               f"certificate {canonical} was renewed as {row.replaced_by}; "
                               "re-key the current certificate",
                               f"证书 {canonical} 已续期为 {row.replaced_by}，请对当前证书更换密钥",
                               field="serial", details={"replaced_by": row.replaced_by})
            ent = _check_enterprise(_enterprise_of(s, row), row)
            verify_rekey_proof(x509.load_der_x509_certificate(row.der),
                               csr.public_bytes(serialization.Encoding.DER), proof)
            if new_spki == row.spki_sha256:
                raise InvalidInput("REKEY_SAME_KEY",
                                   "the CSR asks for the key already certified; a re-key "
                                   "needs a new key (an officer renews the same key)",
                                   "证书请求使用的仍是原密钥，更换密钥须使用新密钥", field="csr")
            type(auth).check_csr_subject(csr, ent)
            auth.check_key_free(s, new_spki, row.profile, renewing=False)
            terms = renewal_terms(not_after=row.not_after, now=clock.now(),
                                  settings=auth.settings,
                                  issuer_not_after=auth.certificate("issuing").not_valid_after_utc,
                                  serial=canonical)
        return row, ent, new_public, terms

    row, ent, new_public, terms = auth.refusing(vet, actor=actor, action="cert.rekey",
                                                target=old_serial, details=details)
    draft = auth.draft(enterprise=ent, public_key=new_public, profile=row.profile,
                       holder=row.holder, token_label=row.token_label,
                       not_after=terms.not_after, renewed_from=row.serial)
    details.update({"new_serial": draft.serial, "not_after": terms.not_after.isoformat(),
                    "capped": terms.capped})
    with auth.change(actor=actor, action="cert.rekey", target=row.serial, details=details) as s:
        current = _read(s, row.serial)
        _check_live(current, "re-keyed", "更换密钥")
        if current.replaced_by:
            raise Conflict("CERT_SUPERSEDED",
                           f"certificate {row.serial} was renewed as {current.replaced_by}",
                           f"证书 {row.serial} 已续期为 {current.replaced_by}", field="serial")
        _check_enterprise(_enterprise_of(s, current), current)
        auth.store(s, draft, renewing=False)
    return draft.issued


def _old_key_rows(s: Session, new: Certificate) -> tuple[Certificate, list[Certificate]]:
    """The certificate a re-key started from and every certificate of its key still to be
    superseded (not yet revoked, or not yet pointing at a successor)."""
    old = s.get(Certificate, new.renewed_from) if new.renewed_from else None
    if old is None or old.spki_sha256 == new.spki_sha256:
        raise InvalidInput("NOT_A_REKEY", f"certificate {new.serial} is not the result of a "
                           "re-key", f"证书 {new.serial} 不是换密钥签发的证书", field="serial")
    c = Certificate
    rows = list(s.execute(select(c).where(
        c.spki_sha256 == old.spki_sha256,
        or_(c.status != "revoked", c.replaced_by.is_(None))).order_by(c.serial)).scalars())
    return old, rows


def rekey_pending(auth: Authority, new_serial: str) -> bool:
    """True while ``new_serial`` came from a re-key whose old key is not superseded yet."""
    with auth.db.read() as s:
        new = s.get(Certificate, normalize_serial(new_serial))
        if new is None:
            return False
        try:
            _, rows = _old_key_rows(s, new)
        except InvalidInput:
            return False
        return any(r.status != "revoked" for r in rows)


def confirm_rekey(auth: Authority, new_serial: str, actor: str) -> list[str]:
    """The new certificate is on the token: supersede every certificate of the old key
    (revoked, reason ``superseded``; ``replaced_by`` the new one). Idempotent: returns the
    serials it changed (none on a repeat, which writes nothing)."""
    canonical = auth.refusing(lambda: normalize_serial(new_serial), actor=actor,
                              action="cert.rekey.confirm", target=new_serial)
    details: dict[str, Any] = {"new_serial": canonical}
    with auth.db.read() as s:
        new = s.get(Certificate, canonical)
        if new is not None and new.renewed_from:
            try:
                if not _old_key_rows(s, new)[1]:
                    return []
            except InvalidInput:
                pass  # refused (and audited) below
    now = _now()
    changed: list[str] = []
    with auth.change(actor=actor, action="cert.rekey.confirm", target=canonical,
                     details=details) as s:
        new = _load(s, canonical)
        old, rows = _old_key_rows(s, new)
        _check_live(new, "confirmed", "确认")
        details["old_serial"] = old.serial
        for row in rows:
            if row.status != "revoked":
                _revoke_row(s, row, "superseded", None, now)
            if row.replaced_by is None:
                row.replaced_by = canonical
            changed.append(row.serial)
        details["superseded"] = changed
    if changed:
        publish_crls(auth)
    return changed


# --- freeze, unfreeze, revoke ---------------------------------------------------------------
@dataclass(frozen=True)
class StatusChange:
    """A certificate's status right after a change."""

    serial: str
    status: str
    reason: str | None
    revoked_at: datetime | None
    invalidity_date: datetime | None
    status_version: int

    def to_dict(self) -> dict[str, Any]:
        return {"serial": self.serial, "status": self.status, "reason": self.reason,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "invalidity_date": (self.invalidity_date.isoformat()
                                    if self.invalidity_date else None),
                "status_version": self.status_version}


def _view(row: Certificate) -> StatusChange:
    return StatusChange(row.serial, row.status, row.revocation_reason, row.revoked_at,
                        row.invalidity_date, row.status_version)


def _serial(auth: Authority, serial: str, *, actor: str, action: str,
            details: dict[str, Any] | None = None) -> str:
    return auth.refusing(lambda: normalize_serial(serial), actor=actor, action=action,
                         target=serial, details=details)


def _close_windows(s: Session, serial: str, now: datetime) -> None:
    s.execute(update(FreezeWindow).where(FreezeWindow.serial == serial,
                                         FreezeWindow.unfrozen_at.is_(None))
              .values(unfrozen_at=now))


def _bump(row: Certificate) -> None:
    row.status_version = (row.status_version or 0) + 1


def check_reason(reason: str) -> str:
    """An RFC 5280 reason name a revocation may carry (``certificateHold`` is a freeze;
    ``removeFromCRL`` exists only in delta CRLs)."""
    if reason == HOLD:
        raise InvalidInput("REASON_IS_FREEZE",
                           "certificateHold is a freeze: use `eseal cert freeze`",
                           "certificateHold 表示冻结：请使用 `eseal cert freeze`", field="reason")
    reason_code(reason, field="reason")  # CRL_REASON_UNKNOWN / CRL_REASON_NOT_ALLOWED
    return reason


def _same_key(s: Session, row: Certificate, now: datetime, *,
              statuses: tuple[str, ...]) -> list[Certificate]:
    """Other unexpired certificates of the same key and profile in the given states.

    A same-key renewal leaves the older certificate valid until it expires, so the key's
    certificates are one credential: freezing, unfreezing or revoking one acts on all, or a
    lost or compromised key would still seal under the certificate it was renewed from.
    """
    return list(s.execute(select(Certificate).where(
        Certificate.spki_sha256 == row.spki_sha256, Certificate.profile == row.profile,
        Certificate.serial != row.serial, Certificate.status.in_(statuses),
        Certificate.not_after > now).order_by(Certificate.serial)).scalars())


def freeze(auth: Authority, serial: str, *, actor: str) -> StatusChange:
    """Put a certificate on hold (certificateHold) and open its freeze window."""
    canonical = _serial(auth, serial, actor=actor, action="cert.freeze")
    now = _now()
    with auth.change(actor=actor, action="cert.freeze", target=canonical) as s:
        row = _load(s, canonical)
        if row.issuer_role != "issuing":
            raise InvalidInput("CERT_NOT_FREEZABLE",
                               f"certificate {canonical} is a CA certificate; only "
                               "certificates of the issuing CA are frozen",
                               f"证书 {canonical} 为 CA 证书，只有签发 CA 签发的证书可冻结",
                               field="serial")
        if row.status == "hold":
            raise Conflict("CERT_ALREADY_FROZEN", f"certificate {canonical} is already frozen",
                           f"证书 {canonical} 已处于冻结状态", field="serial")
        _check_live(row, "frozen", "冻结")
        for target in (row, *_same_key(s, row, now, statuses=("good",))):
            target.status, target.revoked_at, target.revocation_reason = "hold", now, HOLD
            _bump(target)
            s.add(FreezeWindow(serial=target.serial, frozen_at=now))
            if target is not row:
                auth.audit.append(s, actor=actor, action="cert.freeze", target=target.serial,
                                  details={"via": canonical, "why": "same key"})
        view = _view(row)
    publish_crls(auth)
    return view


def unfreeze(auth: Authority, serial: str, *, actor: str) -> StatusChange:
    """Lift a hold: the certificate is good again and leaves the next full CRL; its freeze
    window stays recorded."""
    canonical = _serial(auth, serial, actor=actor, action="cert.unfreeze")
    now = _now()
    with auth.change(actor=actor, action="cert.unfreeze", target=canonical) as s:
        row = _load(s, canonical)
        if row.status == "revoked":
            _check_live(row, "unfrozen", "解冻")
        if row.status != "hold":
            raise Conflict("CERT_NOT_FROZEN", f"certificate {canonical} is not frozen",
                           f"证书 {canonical} 未被冻结", field="serial")
        for target in (row, *_same_key(s, row, now, statuses=("hold",))):
            target.status, target.revoked_at, target.revocation_reason = "good", None, None
            _bump(target)
            _close_windows(s, target.serial, now)
            if target is not row:
                auth.audit.append(s, actor=actor, action="cert.unfreeze",
                                  target=target.serial,
                                  details={"via": canonical, "why": "same key"})
        view = _view(row)
    publish_crls(auth)
    return view


def _revoke_row(s: Session, row: Certificate, reason: str,
                invalidity_date: datetime | None, now: datetime) -> StatusChange:
    if row.profile == "root":
        raise InvalidInput("CERT_NOT_REVOCABLE",
                           "the root certificate is a trust anchor: it is withdrawn from "
                           "relying parties, not revoked on a CRL",
                           "根证书是信任锚，不能通过 CRL 吊销", field="serial")
    if row.status == "revoked":
        when = row.revoked_at.isoformat() if row.revoked_at else "?"
        raise Conflict("CERT_ALREADY_REVOKED",
                       f"certificate {row.serial} was already revoked at {when} "
                       f"({row.revocation_reason})",
                       f"证书 {row.serial} 已于 {when} 吊销（{row.revocation_reason}）",
                       field="serial")
    if row.status == "hold":  # keeps the hold's time: seals made while frozen stay invalid
        _close_windows(s, row.serial, now)
    else:
        row.revoked_at = now
    row.status, row.revocation_reason, row.invalidity_date = "revoked", reason, invalidity_date
    _bump(row)
    return _view(row)


def revoke(auth: Authority, serial: str, *, reason: str, actor: str,
           invalidity_date: datetime | None = None) -> StatusChange:
    """Revoke a certificate for an RFC 5280 reason (frozen ones too); CRLs re-issued."""
    details: dict[str, Any] = {"reason": reason}
    if invalidity_date is not None:
        details["invalidity_date"] = str(invalidity_date)
    now = _now()

    def validate() -> tuple[str, datetime | None]:
        canonical = normalize_serial(serial)
        check_reason(reason)
        when = None
        if invalidity_date is not None:
            if not isinstance(invalidity_date, datetime) or invalidity_date.tzinfo is None:
                raise InvalidInput("INVALIDITY_DATE_INVALID",
                                   "the invalidity date must be a time with a time zone",
                                   "失效日期必须是带时区的时间", field="invalidity_date")
            when = invalidity_date.replace(microsecond=0)
            if when > now:
                raise InvalidInput("INVALIDITY_DATE_IN_FUTURE",
                                   "the invalidity date (when the key was known or suspected "
                                   "compromised) cannot be in the future",
                                   "失效日期不能晚于当前时间", field="invalidity_date")
        return canonical, when

    canonical, when = auth.refusing(validate, actor=actor, action="cert.revoke", target=serial,
                                    details=details)
    with auth.change(actor=actor, action="cert.revoke", target=canonical, details=details) as s:
        row = _load(s, canonical)
        view = _revoke_row(s, row, reason, when, now)
        siblings = _same_key(s, row, now, statuses=("good", "hold"))
        for other in siblings:
            _revoke_row(s, other, reason, when, now)
            auth.audit.append(s, actor=actor, action="cert.revoke", target=other.serial,
                              details={"reason": reason, "via": canonical, "why": "same key"})
        details["same_key"] = [other.serial for other in siblings]
    publish_crls(auth)
    return view


def revoke_all(auth: Authority, uscc: str, *, reason: str, actor: str) -> list[StatusChange]:
    """Revoke every certificate of one enterprise not revoked yet, in one transaction with
    one audit event per certificate; a rerun revokes nothing."""
    details: dict[str, Any] = {"uscc": uscc, "reason": reason}

    def validate() -> tuple[str, int]:
        code = identity.validate_uscc(uscc)
        check_reason(reason)
        with auth.db.read() as s:
            return code, int(auth.enterprise_row(s, code).id)

    code, enterprise_id = auth.refusing(validate, actor=actor, action="cert.revoke_all",
                                        target=uscc, details=details)
    now = _now()
    changed: list[StatusChange] = []
    with auth.change(actor=actor, action="cert.revoke_all", target=code,
                     details=details) as s:
        rows = s.execute(select(Certificate).where(
            Certificate.enterprise_id == enterprise_id, Certificate.status != "revoked")
            .order_by(Certificate.serial)).scalars().all()
        for row in rows:
            changed.append(_revoke_row(s, row, reason, None, now))
            auth.audit.append(s, actor=actor, action="cert.revoke", target=row.serial,
                              details={"reason": reason, "via": "cert.revoke_all",
                                       "uscc": code})
        details["serials"] = [c.serial for c in changed]
    if changed:
        publish_crls(auth)
    return changed

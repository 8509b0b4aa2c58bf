"""Staff tokens: the CA's own officers and auditors.

``eseal init`` provisions the first officer's USB-Key with an officer login certificate
(``provision_staff_token``); later officers and auditors get theirs the same way. The SO PIN
is kept wrapped by the CA (``eseal.ra.so_pins``).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eseal import clock
from eseal.auth.accounts import STAFF_ROLES, check_role, ensure_account
from eseal.ca.issuance import IssuanceRequest
from eseal.pki import identity
from eseal.store.models import TokenRecord

if TYPE_CHECKING:
    from eseal.ca.authority import Authority
    from eseal.ca.issuance import Issued


# --- staff (officers, auditors) ------------------------------------------------------------
def staff_request(public_key: Any, *, holder: str, label: str,
                  actor: str) -> IssuanceRequest:
    """The vetted request for an officer-profile login certificate: the holder's name and
    the key policy (the key's freedom is checked against the database by the caller)."""
    from eseal.pki.key_policy import check_key_policy

    name = identity.validate_person_name(holder, "holder")
    check_key_policy(public_key)
    return IssuanceRequest(profile="officer", public_key=public_key, holder=name, actor=actor,
                           target=label, token_label=label)


def issue_staff_certificate(auth: Authority, public_key: Any, *, holder: str, label: str,
                            actor: str) -> Issued:
    """An officer-profile login certificate for a CA staff member's token key."""
    details = {"profile": "officer", "holder": holder, "label": label}

    def vet() -> IssuanceRequest:
        request = staff_request(public_key, holder=holder, label=label, actor=actor)
        with auth.db.read() as s:
            auth.check_key_free(s, request.spki_sha256, "officer", renewing=False)
        return request

    request = auth.refusing(vet, actor=actor, action="cert.issue", target=label,
                            details=details)
    return auth.certify(request, details=details)


@dataclass(frozen=True)
class StaffToken:
    label: str
    pin: str  # shown once by ``eseal init``; never stored
    role: str
    name: str
    serial: str
    account_id: int


def _generated_pin(label: str) -> str:
    from eseal.errors import InvalidInput as _Invalid
    from eseal.token.pin import check_pin

    while True:
        pin = "".join(secrets.choice("23456789abcdefghjkmnpqrstuvwxyz") for _ in range(12))
        try:
            return check_pin(pin, forbidden=[label])
        except _Invalid:
            continue


def softhsm_conf(auth: Authority) -> Path:
    """The SoftHSM configuration in force for this home (``SOFTHSM2_CONF`` unless the home
    names one), as the token commands use it."""
    env = os.environ.get("SOFTHSM2_CONF")
    if env and not auth.settings.softhsm_conf:
        return Path(env)
    return auth.settings.softhsm_conf_path


def provision_staff_token(auth: Authority, *, label: str, name: str, role: str = "officer",
                          actor: str) -> StaffToken:
    """A new SoftHSM USB-Key for a CA officer (or auditor): a generated PIN (returned once),
    an SO PIN kept encrypted by the CA, a login key made on the token and an officer login
    certificate beside it with the CA chain; the account is created. A failure removes the
    token again."""
    from eseal.ra.enrollment import pin_policy
    from eseal.ra.so_pins import check_label_free, keep_so_pin
    from eseal.token.pin import generate_so_pin
    from eseal.token.softhsm import delete_token
    from eseal.token.usbkey import (
        check_label,
        generate_key,
        install_certificate,
        install_chain,
        provision,
    )

    the_role = check_role(role, allowed=STAFF_ROLES)
    holder = identity.validate_person_name(name, "name")
    check_label(label)
    check_label_free(auth, label)
    policy = pin_policy(auth)
    pin, so_pin = _generated_pin(label), generate_so_pin()
    conf = softhsm_conf(auth)
    provision(conf, label, pin, so_pin, policy=policy)
    try:
        keep_so_pin(auth, label, so_pin, actor=actor, generated=True)
        ts = policy.login(label, pin, rw=True)
        try:
            info = generate_key(ts, "login")
            issued = issue_staff_certificate(auth, info.public_key, holder=holder, label=label,
                                             actor=actor)
            install_certificate(ts, "login", issued.certificate)
            install_chain(ts, auth.chain())
        finally:
            ts.close()
        now = clock.now()
        with auth.change(actor=actor, action="staff.provision", target=label,
                         details={"role": the_role, "name": holder,
                                  "serial": issued.serial}) as s:
            record = s.get_one(TokenRecord, label)
            record.role = the_role
            record.holder = holder
            s.flush()
            account_id = ensure_account(s.connection(), role=the_role, name=holder,
                                        enterprise_id=None, now=now)
    except BaseException:
        delete_token(conf, label)
        raise
    return StaffToken(label=label, pin=pin, role=the_role, name=holder, serial=issued.serial,
                      account_id=account_id)
